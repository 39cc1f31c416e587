//! An in-memory store implementing every policy view, fed in stream order.
//!
//! `check` uses it as is; the gate keeps one per process. Consent lives in
//! the compact [`ConsentTable`]; caps and duplicates in plain maps (the
//! gate's durable, partition-local version is `state::PartitionState`).
//! Entries older than the longest window are pruned so memory stays bounded.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use crate::contract::consent::{ConsentEvent, ConsentFact};
use crate::contract::decision::{Decision, Outcome};
use crate::contract::event::{Category, OutboundSms};
use crate::policy::view::{CapView, ConsentView, DedupView, Seen};
use crate::state::consent::{Applied, ConsentTable};

#[derive(Debug, Default)]
pub struct MemoryState {
    /// Counted consent events, folded per recipient.
    consent: ConsentTable,
    /// Approval times of marketing per (recipient, subject), oldest first.
    caps: HashMap<(String, String), VecDeque<DateTime<Utc>>>,
    /// Decided message ids.
    seen: HashMap<String, Seen>,
    /// Opt-ins ignored for lack of evidence (reported as a metric).
    pub ignored_without_evidence: u64,
}

impl MemoryState {
    pub fn new() -> MemoryState {
        MemoryState::default()
    }

    /// Adds a consent event; returns false when it was ignored.
    pub fn apply_consent(&mut self, event: ConsentEvent) -> bool {
        let applied = self.consent.apply(&event);
        self.ignored_without_evidence = self.consent.ignored_without_evidence();
        applied == Applied::Counted
    }

    pub fn consent_recipients(&self) -> usize {
        self.consent.recipients()
    }

    /// The consent table (for size metrics).
    pub fn consent(&self) -> &ConsentTable {
        &self.consent
    }

    /// Remembers a decision: every well-formed decision for dedup, approved
    /// marketing for caps.
    pub fn record(&mut self, event: &OutboundSms, decision: &Decision, now: DateTime<Utc>) {
        self.seen
            .entry(event.message_id.clone())
            .and_modify(|s| s.outcome = decision.outcome)
            .or_insert(Seen {
                first_at: now,
                outcome: decision.outcome,
            });
        if decision.outcome == Outcome::Approve && event.category == Category::Marketing {
            self.caps
                .entry((event.to.clone(), event.subject_key().to_string()))
                .or_default()
                .push_back(now);
        }
    }

    /// Drops what is older than `keep` before `now`.
    pub fn prune(&mut self, now: DateTime<Utc>, keep: Duration) {
        let horizon = now - keep;
        self.seen.retain(|_, s| s.first_at >= horizon);
        self.caps.retain(|_, times| {
            while times.front().is_some_and(|t| *t < horizon) {
                times.pop_front();
            }
            !times.is_empty()
        });
    }
}

impl ConsentView for MemoryState {
    fn for_each_consent(&self, to: &str, f: &mut dyn FnMut(ConsentFact<'_>)) {
        self.consent.for_each_consent(to, f)
    }
}

impl CapView for MemoryState {
    fn approved_since(&self, to: &str, subject: &str, since: DateTime<Utc>) -> u32 {
        // Keyed lookup without allocating a tuple of Strings per call would
        // need a borrowed key type; caps are looked up once per marketing event.
        self.caps
            .get(&(to.to_string(), subject.to_string()))
            .map(|t| t.iter().filter(|at| **at >= since).count() as u32)
            .unwrap_or(0)
    }
}

impl DedupView for MemoryState {
    fn seen(&self, message_id: &str) -> Option<Seen> {
        self.seen.get(message_id).copied()
    }
}
