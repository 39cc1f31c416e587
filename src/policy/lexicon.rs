//! Keyword lists of a pack compiled into one Aho-Corasick automaton, so a
//! body is scanned once for every list (lending terms, claims, brands,
//! promotional words, SHAFT terms, opt-out phrases) instead of looping over
//! `contains`.
//!
//! Terms are normalized like bodies and matched ASCII-case-insensitively.
//! A term that starts or ends with an ASCII letter or digit only matches at
//! a word boundary ("IRS" is not found in "FIRST"). Matches inside the
//! sender's own brand or aliases are ignored by the caller's exclusion spans.
//!
//! Terms and bodies are folded ([`fold`](super::content::fold)) before
//! matching. Lists added with [`LexiconBuilder::add_words`] match Chinese
//! terms only as words: a candidate glued to other CJK characters is
//! confirmed by segmentation ([`words`](super::content::words)), so 可借 is
//! not found in 可借鉴 and 下款 not in 以下款项.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::content::fold::fold;
use super::content::normalize::{is_cjk, normalize};
use super::content::words;

/// At most this many keyword lists per pack (one bit each).
pub const MAX_LISTS: usize = 32;

/// A byte range in the normalized text.
pub type Span = (usize, usize);

/// Handle of one list inside a [`Lexicon`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListId(u8);

/// Collects lists before compiling.
#[derive(Debug, Default)]
pub struct LexiconBuilder {
    patterns: Vec<String>,
    index: HashMap<String, usize>,
    masks: Vec<u32>,
    /// Per pattern: confirm CJK word boundaries by segmentation.
    words: Vec<bool>,
    lists: usize,
}

impl LexiconBuilder {
    /// Adds a list; returns its handle. Errors name the bad term.
    pub fn add(&mut self, terms: &[String]) -> Result<ListId, String> {
        self.add_list(terms, false)
    }

    /// Adds a list whose Chinese terms of two or more characters match only
    /// as words.
    pub fn add_words(&mut self, terms: &[String]) -> Result<ListId, String> {
        self.add_list(terms, true)
    }

    fn add_list(&mut self, terms: &[String], as_words: bool) -> Result<ListId, String> {
        if self.lists >= MAX_LISTS {
            return Err(format!("more than {MAX_LISTS} keyword lists in one pack"));
        }
        let id = self.lists;
        self.lists += 1;
        for term in terms {
            let norm = fold(&normalize(term));
            if norm.is_empty() {
                return Err(format!("empty keyword {term:?}"));
            }
            let key = norm.to_ascii_lowercase();
            let at = *self.index.entry(key).or_insert_with(|| {
                self.patterns.push(norm.clone());
                self.masks.push(0);
                self.words.push(false);
                self.patterns.len() - 1
            });
            self.masks[at] |= 1 << id;
            // A single character (贷) is a morpheme, not a word: substring.
            let cjk_edge = norm.chars().next().is_some_and(is_cjk)
                || norm.chars().next_back().is_some_and(is_cjk);
            if as_words && cjk_edge && norm.chars().count() >= 2 {
                self.words[at] = true;
            }
        }
        Ok(ListId(id as u8))
    }

    pub fn build(self) -> Result<Lexicon, String> {
        let edges = self
            .patterns
            .iter()
            .map(|p| {
                let first = p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
                let last = p.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
                (first, last)
            })
            .collect();
        let automaton = if self.patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&self.patterns)
                    .map_err(|e| format!("keyword automaton: {e}"))?,
            )
        };
        if self.words.iter().any(|w| *w) {
            words::warm();
        }
        Ok(Lexicon {
            automaton,
            masks: self.masks,
            edges,
            words: self.words,
        })
    }
}

/// The compiled lists of one pack.
#[derive(Debug, Clone)]
pub struct Lexicon {
    automaton: Option<AhoCorasick>,
    /// Per pattern: which lists it belongs to.
    masks: Vec<u32>,
    /// Per pattern: whether its first / last character needs a word boundary.
    edges: Vec<(bool, bool)>,
    /// Per pattern: confirm CJK word boundaries by segmentation.
    words: Vec<bool>,
}

/// The first match of every list in one body.
#[derive(Debug, Clone)]
pub struct Hits {
    any: u32,
    /// First match per list, as byte offsets (bodies are far below 4 GiB).
    first: [(u32, u32); MAX_LISTS],
}

impl Hits {
    pub fn none() -> Hits {
        Hits {
            any: 0,
            first: [(0, 0); MAX_LISTS],
        }
    }

    /// The first match of `list`, as a span of the scanned text.
    pub fn get(&self, list: ListId) -> Option<Span> {
        (self.any & (1 << list.0) != 0).then(|| {
            let (s, e) = self.first[list.0 as usize];
            (s as usize, e as usize)
        })
    }

    pub fn has(&self, list: ListId) -> bool {
        self.any & (1 << list.0) != 0
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

impl Lexicon {
    /// Scans `text` once; matches overlapping a span of `excluded` are
    /// skipped. `excluded` is called at most once, at the first candidate
    /// match: a body without any keyword never pays for finding its spans.
    pub fn scan<'x>(&self, text: &str, excluded: impl FnOnce() -> &'x [Span]) -> Hits {
        let mut hits = Hits::none();
        let mut excluded = Some(excluded);
        let mut spans: &[Span] = &[];
        let Some(ac) = &self.automaton else {
            return hits;
        };
        let bytes = text.as_bytes();
        for m in ac.find_overlapping_iter(text) {
            let p = m.pattern().as_usize();
            let mask = self.masks[p] & !hits.any;
            if mask == 0 {
                continue;
            }
            let (start, end) = (m.start(), m.end());
            let (left, right) = self.edges[p];
            if (left && start > 0 && is_word(bytes[start - 1]))
                || (right && end < bytes.len() && is_word(bytes[end]))
            {
                continue;
            }
            if let Some(find) = excluded.take() {
                spans = find();
            }
            if spans.iter().any(|&(s, e)| start < e && s < end) {
                continue;
            }
            if self.words[p] && !words::is_word(text, start, end) {
                continue;
            }
            let mut rest = mask;
            while rest != 0 {
                let list = rest.trailing_zeros() as usize;
                hits.first[list] = (start as u32, end as u32);
                rest &= rest - 1;
            }
            hits.any |= mask;
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(lists: &[&[&str]]) -> (Lexicon, Vec<ListId>) {
        let mut b = LexiconBuilder::default();
        let ids = lists
            .iter()
            .map(|l| {
                b.add(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap()
            })
            .collect();
        (b.build().unwrap(), ids)
    }

    #[test]
    fn one_pass_finds_every_list_with_word_boundaries() {
        let (l, ids) = lex(&[&["贷", "loan"], &["IRS", "秒批"], &["loan"]]);
        let text = "FIRST loan 秒批";
        let h = l.scan(text, || &[]);
        assert_eq!(h.get(ids[0]).map(|(s, e)| &text[s..e]), Some("loan"));
        assert_eq!(h.get(ids[1]).map(|(s, e)| &text[s..e]), Some("秒批"));
        assert!(h.has(ids[2]));
        let own = [(0, "惠农信贷".len())];
        let h = l.scan("惠农信贷 hello", || &own);
        assert!(!h.has(ids[0]));
    }

    #[test]
    fn word_lists_match_chinese_terms_as_words() {
        let mut b = LexiconBuilder::default();
        let id = b
            .add_words(&["可借".to_string(), "工行".to_string()])
            .unwrap();
        let l = b.build().unwrap();
        assert!(!l.scan("经验可借鉴", || &[]).has(id));
        assert!(!l.scan("为施工行业提供手套", || &[]).has(id));
        assert!(l.scan("最高可借20万", || &[]).has(id));
        assert!(l.scan("您的工行账户", || &[]).has(id));
    }

    #[test]
    fn exclusions_are_found_only_when_a_term_matches() {
        let (l, ids) = lex(&[&["贷"]]);
        let calls = std::cell::Cell::new(0);
        let none: [Span; 0] = [];
        let h = l.scan("周末全场五折", || {
            calls.set(calls.get() + 1);
            &none
        });
        assert!(!h.has(ids[0]));
        assert_eq!(calls.get(), 0, "no candidate match, no exclusion spans");
        let h = l.scan("贷 and 贷", || {
            calls.set(calls.get() + 1);
            &none
        });
        assert!(h.has(ids[0]));
        assert_eq!(calls.get(), 1, "found once, reused for every later match");
    }
}
