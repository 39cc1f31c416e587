//! An in-memory store implementing every policy view, fed in stream order.
//!
//! `check` uses it as is; the gate keeps one per process. Entries older than
//! the longest window are pruned so memory stays bounded.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use crate::consent::{ConsentEvent, ConsentFact};
use crate::decision::{Decision, Outcome};
use crate::event::{Category, OutboundSms};
use crate::policy::view::{CapView, ConsentView, DedupView, Seen};

#[derive(Debug, Default)]
pub struct MemoryState {
    /// Counted consent events per recipient, in arrival order.
    consent: HashMap<String, Vec<ConsentEvent>>,
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
        if !event.counts() {
            self.ignored_without_evidence += 1;
            return false;
        }
        self.consent
            .entry(event.to.clone())
            .or_default()
            .push(event);
        true
    }

    pub fn consent_recipients(&self) -> usize {
        self.consent.len()
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
        if let Some(events) = self.consent.get(to) {
            for e in events {
                f(e.fact());
            }
        }
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
