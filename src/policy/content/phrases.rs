//! A list of phrases matched everywhere in a folded body, as words: the
//! detailed pass of rules that need every occurrence and its context
//! (impersonation, SHAFT terms and their harmless compounds), run only when
//! the pack's one-pass scan already found a candidate.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::fold::fold;
use super::normalize::{is_cjk, normalize};
use super::words;
use crate::policy::lexicon::Span;

#[derive(Debug, Clone, Default)]
pub struct Phrases {
    ac: Option<AhoCorasick>,
    /// Per pattern: ASCII word boundary needed at the start / end.
    edges: Vec<(bool, bool)>,
    /// Per pattern: confirm CJK word boundaries by segmentation.
    cjk: Vec<bool>,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

impl Phrases {
    pub fn new(terms: &[String]) -> Result<Phrases, String> {
        let mut patterns = Vec::with_capacity(terms.len());
        for t in terms {
            let p = fold(&normalize(t));
            if p.is_empty() {
                return Err(format!("empty phrase {t:?}"));
            }
            patterns.push(p);
        }
        if patterns.is_empty() {
            return Ok(Phrases::default());
        }
        let edges = patterns
            .iter()
            .map(|p| {
                (
                    p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()),
                    p.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()),
                )
            })
            .collect();
        let cjk: Vec<bool> = patterns
            .iter()
            .map(|p| {
                p.chars().count() >= 2
                    && (p.chars().next().is_some_and(is_cjk)
                        || p.chars().next_back().is_some_and(is_cjk))
            })
            .collect();
        if cjk.iter().any(|c| *c) {
            words::warm();
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| format!("phrase automaton: {e}"))?;
        Ok(Phrases {
            ac: Some(ac),
            edges,
            cjk,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.ac.is_none()
    }

    /// Every word occurrence in `text[range]`: (pattern index, span in `text`).
    pub fn find_in(&self, text: &str, range: Span) -> Vec<(usize, Span)> {
        let mut out = Vec::new();
        let (Some(ac), Some(hay)) = (&self.ac, text.get(range.0..range.1)) else {
            return out;
        };
        let b = text.as_bytes();
        for m in ac.find_overlapping_iter(hay) {
            let p = m.pattern().as_usize();
            let (s, e) = (range.0 + m.start(), range.0 + m.end());
            let (left, right) = self.edges[p];
            if (left && s > 0 && is_word(b[s - 1])) || (right && e < b.len() && is_word(b[e])) {
                continue;
            }
            if self.cjk[p] && !words::is_word(text, s, e) {
                continue;
            }
            out.push((p, (s, e)));
        }
        out
    }

    /// Every word occurrence in `text`.
    pub fn find(&self, text: &str) -> Vec<(usize, Span)> {
        self.find_in(text, (0, text.len()))
    }

    /// Is there any occurrence inside `text[range]`?
    pub fn any_in(&self, text: &str, range: Span) -> bool {
        !self.find_in(text, range).is_empty()
    }
}
