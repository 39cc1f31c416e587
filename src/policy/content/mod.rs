//! Content rules: what the body says, after normalization.
//!
//! [`Facts`] is computed once per event (normalized text, one keyword scan,
//! links, PII) and every content rule reads it, so no rule re-scans the body.

pub mod fold;
pub mod hosts;
pub mod impersonation;
pub mod lending;
pub mod links;
pub mod normalize;
pub mod phones;
pub mod phrases;
pub mod pii;
pub mod segments;
pub mod signature;
pub mod words;

use crate::policy::lexicon::{Hits, Span};

/// What the body contains, shared by every content rule of one decision.
pub struct Facts<'a> {
    /// The normalized body (links, numbers, PII and signatures are read here).
    pub text: &'a str,
    /// The normalized body folded for keywords ([`fold`]): Traditional to
    /// Simplified, separators between CJK characters and confusable
    /// letters removed. Keyword spans refer to it.
    pub folded: &'a str,
    /// Where the sender's own names are in `folded`.
    pub own: &'a [Span],
    /// First match of every keyword list, the sender's own names excluded.
    pub hits: Hits,
    pub links: &'a [links::Link],
    pub pii: &'a [pii::Pii],
    /// The first lending term or pattern, when the body is a credit offer.
    pub lending: Option<Span>,
}

impl Facts<'_> {
    /// The text of a keyword span (in `folded`), for reason details.
    pub fn at(&self, span: Span) -> &str {
        self.folded.get(span.0..span.1).unwrap_or_default()
    }

    /// The text of a span of the normalized body (links).
    pub fn raw(&self, span: Span) -> &str {
        self.text.get(span.0..span.1).unwrap_or_default()
    }
}
