//! A registry entry prepared for matching: normalized brand and aliases in
//! a small automaton (their occurrences are excluded from keyword rules, so
//! a lender's own name is not "lending content" and a bank's own name is not
//! impersonation), lowercase link domains.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::policy::content::fold::fold;
use crate::policy::content::hosts::{Protected, to_ascii};
use crate::policy::content::normalize::normalize;
use crate::policy::lexicon::Span;
use crate::policy::registry::Sender;

#[derive(Debug, Clone)]
pub struct SenderProfile {
    /// The brand, normalized like bodies: what the 【signature】 must equal.
    pub brand: String,
    /// Brand and aliases, for excluding the sender's own name from matches.
    names: Option<AhoCorasick>,
    /// Allowed link domains, ASCII (punycode) lowercase.
    pub domains: Vec<String>,
    /// The same, prepared for look-alike comparison.
    pub protected: Vec<Protected>,
    /// Sending numbers as registered.
    pub numbers: Vec<String>,
    pub lender: bool,
}

impl SenderProfile {
    pub fn new(s: &Sender) -> SenderProfile {
        let brand = normalize(&s.brand);
        let names: Vec<String> = std::iter::once(brand.clone())
            .chain(s.aliases.iter().map(|a| normalize(a)))
            // Matched in the folded body (工商銀行 reads 工商银行).
            .map(|n| fold(&n))
            .filter(|n| !n.is_empty())
            .collect();
        let names = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&names)
            .ok();
        SenderProfile {
            brand,
            names,
            domains: s
                .domains
                .iter()
                .map(|d| {
                    to_ascii(d.trim())
                        .map_or_else(|| d.trim().to_ascii_lowercase(), |a| a.to_ascii_lowercase())
                })
                .collect(),
            protected: s.domains.iter().filter_map(|d| Protected::new(d)).collect(),
            numbers: s.numbers.clone(),
            lender: s.lender,
        }
    }

    /// Where the sender's own brand or aliases occur in `text`.
    pub fn own_names(&self, text: &str, out: &mut Vec<Span>) {
        out.clear();
        if let Some(ac) = &self.names {
            out.extend(ac.find_iter(text).map(|m| (m.start(), m.end())));
        }
    }
}
