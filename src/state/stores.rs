//! Every store the gate decides against, behind one type the pipeline can
//! hold under one lock: the consent table (all recipients) and one
//! [`PartitionState`] per assigned input partition.
//!
//! Deciding and recording happen in one call, so two events with the same
//! `message_id` can never both pass as first; the call returns the
//! changelog entries the pipeline must write (to the changelog partition
//! numbered like the input partition) before committing the input offset.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::consent::{ConsentError, ConsentEvent};
use crate::decision::Decision;
use crate::event::OutboundSms;
use crate::policy::{Origin, Policy};
use crate::state::changelog::{ChangelogEntry, ChangelogError};
use crate::state::consent::{Applied, ConsentTable};
use crate::state::partition::{GateView, PartitionState};

/// One decision and what it changed.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The parsed event; `None` for malformed input.
    pub event: Option<OutboundSms>,
    pub decision: Decision,
    /// To write to the changelog before the input offset is committed.
    pub changelog: Vec<ChangelogEntry>,
}

#[derive(Debug)]
pub struct Stores {
    consent: ConsentTable,
    partitions: HashMap<i32, PartitionState>,
    dedup_window: Duration,
    cap_window: Duration,
}

impl Stores {
    pub fn new(dedup_window: Duration, cap_window: Duration) -> Stores {
        Stores {
            consent: ConsentTable::new(),
            partitions: HashMap::new(),
            dedup_window,
            cap_window,
        }
    }

    /// Windows taken from the policy.
    pub fn for_policy(policy: &Policy) -> Stores {
        Stores::new(policy.dedup_window(), policy.cap_window())
    }

    pub fn consent(&self) -> &ConsentTable {
        &self.consent
    }

    pub fn apply_consent(&mut self, event: &ConsentEvent) -> Applied {
        self.consent.apply(event)
    }

    pub fn apply_consent_bytes(&mut self, value: &[u8]) -> Result<Applied, ConsentError> {
        self.consent.apply_bytes(value)
    }

    /// An input partition was assigned: start it empty, then `restore` its
    /// changelog before deciding its records.
    pub fn assign(&mut self, partition: i32) {
        self.partitions.insert(
            partition,
            PartitionState::new(self.dedup_window, self.cap_window),
        );
    }

    /// Applies one record of the partition's changelog.
    pub fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ChangelogError> {
        self.partition_mut(partition).apply_changelog(key, value)
    }

    /// The partition moved away: its state now lives with the new owner.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    fn partition_mut(&mut self, partition: i32) -> &mut PartitionState {
        let (d, c) = (self.dedup_window, self.cap_window);
        self.partitions
            .entry(partition)
            .or_insert_with(|| PartitionState::new(d, c))
    }

    /// Decides one record of `partition` and records the decision.
    pub fn decide(
        &mut self,
        policy: &Policy,
        partition: i32,
        bytes: &[u8],
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Decided {
        let (d, c) = (self.dedup_window, self.cap_window);
        let state = self
            .partitions
            .entry(partition)
            .or_insert_with(|| PartitionState::new(d, c));
        let view = GateView {
            consent: &self.consent,
            partition: state,
        };
        let (event, decision) = policy.decide_bytes(bytes, origin, &view, now);
        let changelog = match &event {
            Some(e) => state.record(e, &decision, now),
            None => Vec::new(),
        };
        Decided {
            event,
            decision,
            changelog,
        }
    }

    /// The partition's caps and duplicates (e.g. for `should_release`).
    pub fn partition(&self, partition: i32) -> Option<&PartitionState> {
        self.partitions.get(&partition)
    }

    /// Prunes every partition; returns (partition, tombstone) to write.
    pub fn prune(&mut self, now: DateTime<Utc>) -> Vec<(i32, ChangelogEntry)> {
        self.partitions
            .iter_mut()
            .flat_map(|(p, s)| s.prune(now).into_iter().map(|e| (*p, e)))
            .collect()
    }

    /// Remembered message ids and cap keys over all partitions (gauges).
    pub fn sizes(&self) -> (usize, usize) {
        self.partitions.values().fold((0, 0), |(d, c), s| {
            (d + s.dedup_entries(), c + s.cap_keys())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::ReasonCode;
    use crate::policy::Registry;
    use chrono::TimeZone;

    const EVENT: &str = r#"{"message_id":"m-1","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678","sender":"huinong-credit","category":"notification","body":"【惠农信贷】您的账单已出"}"#;

    fn policy() -> Policy {
        Policy::with_registry(
            Registry::parse("[senders.huinong-credit]\nbrand = \"惠农信贷\"\n").unwrap(),
        )
    }

    #[test]
    fn a_replay_on_the_new_owner_of_a_partition_is_a_duplicate() {
        let policy = policy();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        let mut old_owner = Stores::for_policy(&policy);
        old_owner.assign(3);
        let first = old_owner.decide(&policy, 3, EVENT.as_bytes(), Origin::Intake, now);
        assert!(!first.decision.has(ReasonCode::Duplicate));
        assert_eq!(first.changelog.len(), 1);

        let mut new_owner = Stores::for_policy(&policy);
        new_owner.assign(3);
        for e in &first.changelog {
            new_owner.restore(3, &e.key, e.value.as_deref()).unwrap();
        }
        let replay = new_owner.decide(&policy, 3, EVENT.as_bytes(), Origin::Intake, now);
        assert!(replay.decision.has(ReasonCode::Duplicate));
        // Another partition's state is separate.
        let elsewhere = new_owner.decide(&policy, 4, EVENT.as_bytes(), Origin::Intake, now);
        assert!(!elsewhere.decision.has(ReasonCode::Duplicate));
    }

    #[test]
    fn malformed_input_changes_no_state() {
        let policy = policy();
        let mut stores = Stores::for_policy(&policy);
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        let d = stores.decide(&policy, 0, b"not json", Origin::Intake, now);
        assert!(d.event.is_none());
        assert!(d.changelog.is_empty());
        assert_eq!(stores.sizes(), (0, 0));
    }
}
