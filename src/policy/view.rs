//! The narrow read traits through which the policy sees state.
//!
//! The policy never owns or mutates state: `check` passes an in-memory
//! store, the pipeline passes its partition-local stores, tests pass fakes.

use chrono::{DateTime, Utc};

use crate::contract::consent::ConsentFact;
use crate::contract::decision::Outcome;

/// Consent history of one recipient (counted events only: opt-ins without
/// evidence are never handed out).
pub trait ConsentView {
    fn for_each_consent(&self, to: &str, f: &mut dyn FnMut(ConsentFact<'_>));
}

/// Approved marketing counts for frequency caps.
pub trait CapView {
    /// Approved marketing events to `to` on `subject` at or after `since`.
    fn approved_since(&self, to: &str, subject: &str, since: DateTime<Utc>) -> u32;
}

/// What the gate remembers about a `message_id` it already decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// When it was first decided; the dedup window runs from here.
    pub first_at: DateTime<Utc>,
    /// The latest outcome: a deferred event is not a duplicate of itself
    /// when it is decided again at release.
    pub outcome: Outcome,
}

pub trait DedupView {
    fn seen(&self, message_id: &str) -> Option<Seen>;
}

/// Everything `decide` may read.
pub trait StateView: ConsentView + CapView + DedupView {}
impl<T: ConsentView + CapView + DedupView + ?Sized> StateView for T {}

/// A state with nothing in it, for callers that have none.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyState;

impl ConsentView for EmptyState {
    fn for_each_consent(&self, _: &str, _: &mut dyn FnMut(ConsentFact<'_>)) {}
}
impl CapView for EmptyState {
    fn approved_since(&self, _: &str, _: &str, _: DateTime<Utc>) -> u32 {
        0
    }
}
impl DedupView for EmptyState {
    fn seen(&self, _: &str) -> Option<Seen> {
        None
    }
}
