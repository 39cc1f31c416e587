//! The state the pipeline decides against, behind one small type.
//!
//! Today it wraps the in-memory [`MemoryState`]; the durable stores (consent
//! table, caps and dedup with changelogs) replace the inside later without
//! the pipeline changing. Decide-and-record happens under one lock so two
//! events with the same `message_id` can never both pass as first.

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use crate::consent::ConsentEvent;
use crate::decision::Decision;
use crate::event::OutboundSms;
use crate::policy::{Origin, Policy};
use crate::state::MemoryState;

#[derive(Debug, Default)]
pub struct GateState {
    inner: Mutex<MemoryState>,
}

impl GateState {
    pub fn new() -> GateState {
        GateState::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic elsewhere cannot leave MemoryState half-updated in a way
        // that matters more than stopping the gate would.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parses and decides one record value, then records the decision's
    /// state effects (dedup, caps) for well-formed events.
    pub fn decide(
        &self,
        policy: &Policy,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> (Option<OutboundSms>, Decision) {
        let mut state = self.lock();
        let (event, decision) = policy.decide_bytes(bytes, Origin::Intake, &*state, now);
        if let Some(event) = &event {
            state.record(event, &decision, now);
        }
        (event, decision)
    }

    /// Applies one consent event; false when it was ignored (an opt-in
    /// without evidence). Returns the number of recipients known after.
    pub fn apply_consent(&self, event: ConsentEvent) -> (bool, usize) {
        let mut state = self.lock();
        let applied = state.apply_consent(event);
        (applied, state.consent_recipients())
    }

    /// Forgets dedup and cap entries older than `keep`.
    pub fn prune(&self, now: DateTime<Utc>, keep: Duration) {
        self.lock().prune(now, keep);
    }
}
