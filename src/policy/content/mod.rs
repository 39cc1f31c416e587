//! Content rules: what the body says, after normalization.
//!
//! [`Facts`] is computed once per event (normalized text, one keyword scan,
//! links, PII) and every content rule reads it, so no rule re-scans the body.

pub mod links;
pub mod normalize;
pub mod phones;
pub mod pii;
pub mod segments;
pub mod signature;

use crate::policy::lexicon::{Hits, Span};

/// What the body contains, shared by every content rule of one decision.
pub struct Facts<'a> {
    /// The normalized body.
    pub text: &'a str,
    /// First match of every keyword list, the sender's own names excluded.
    pub hits: Hits,
    pub links: &'a [links::Link],
    pub pii: &'a [pii::Pii],
    /// The first lending term, when the body is lending content.
    pub lending: Option<Span>,
}

impl Facts<'_> {
    /// The text of a span, for reason details.
    pub fn at(&self, span: Span) -> &str {
        self.text.get(span.0..span.1).unwrap_or_default()
    }
}
