//! Every store the gate decides against, shared by the pipeline's decide
//! workers: the consent table (all recipients, read by every decision,
//! written by the consent feed) and one [`PartitionState`] per assigned
//! input partition, each behind its own lock so workers deciding different
//! partitions never wait for each other.
//!
//! Deciding and recording happen in one call under the partition's lock, so
//! two events with the same `message_id` can never both pass as first; the
//! call returns the changelog entries the pipeline must write (to the
//! changelog partition numbered like the input partition) before committing
//! the input offset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Duration, Utc};

use crate::contract::consent::{ConsentError, ConsentEvent};
use crate::contract::decision::{Decision, Outcome};
use crate::contract::event::OutboundSms;
use crate::policy::{Origin, Policy};
use crate::state::FastHash;
use crate::state::changelog::{self, ChangelogEntry, ChangelogError};
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

/// One partition's caps and duplicates, locked while a decision uses them.
type Shared = Arc<Mutex<PartitionState>>;

#[derive(Debug)]
pub struct Stores {
    /// Read by every decision, written only by the consent feed.
    consent: RwLock<ConsentTable>,
    /// The map changes only on assign and revoke; each entry has its own
    /// lock (one worker decides a partition at a time).
    partitions: RwLock<HashMap<i32, Shared, FastHash>>,
    dedup_window: Duration,
    cap_window: Duration,
    /// `state.max_dedup_entries`: each partition's duplicate memory bound.
    max_dedup: usize,
}

// A panic elsewhere cannot leave a store half-updated in a way that matters
// more than stopping the gate would: poisoned locks are used as they are.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stores {
    pub fn new(dedup_window: Duration, cap_window: Duration) -> Stores {
        Stores {
            consent: RwLock::new(ConsentTable::new()),
            partitions: RwLock::new(HashMap::default()),
            dedup_window,
            cap_window,
            max_dedup: usize::MAX,
        }
    }

    /// Bounds every partition's duplicate memory to `max` message ids.
    pub fn with_max_dedup(mut self, max: usize) -> Stores {
        self.max_dedup = max;
        self
    }

    /// Windows taken from the policy.
    pub fn for_policy(policy: &Policy) -> Stores {
        Stores::new(policy.dedup_window(), policy.cap_window())
    }

    /// The consent table, read-locked (consent writes wait meanwhile).
    pub fn consent(&self) -> RwLockReadGuard<'_, ConsentTable> {
        read(&self.consent)
    }

    pub fn apply_consent(&self, event: &ConsentEvent) -> Applied {
        write(&self.consent).apply(event)
    }

    /// Applies one consent record value; returns what `apply` did and the
    /// number of recipients known after.
    pub fn apply_consent_bytes(&self, value: &[u8]) -> Result<(Applied, usize), ConsentError> {
        let mut table = write(&self.consent);
        let applied = table.apply_bytes(value)?;
        Ok((applied, table.recipients()))
    }

    fn fresh(&self) -> Shared {
        Arc::new(Mutex::new(self.empty_partition()))
    }

    /// An input partition was assigned: start it empty, then `restore` its
    /// changelog before deciding its records.
    pub fn assign(&self, partition: i32) {
        let fresh = self.fresh();
        write(&self.partitions).insert(partition, fresh);
    }

    /// An empty partition state to restore into off the shared map, then
    /// [`Stores::install`] (a restore running beside the consumer thread).
    pub fn empty_partition(&self) -> PartitionState {
        PartitionState::new(self.dedup_window, self.cap_window).with_max_dedup(self.max_dedup)
    }

    /// Puts a restored partition state in place of the one `assign` made.
    pub fn install(&self, partition: i32, state: PartitionState) {
        write(&self.partitions).insert(partition, Arc::new(Mutex::new(state)));
    }

    /// Applies one record of the partition's changelog.
    pub fn restore(
        &self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ChangelogError> {
        lock(&self.partition(partition)).apply_changelog(key, value)
    }

    /// The partition moved away: its state now lives with the new owner.
    pub fn revoke(&self, partition: i32) {
        write(&self.partitions).remove(&partition);
    }

    /// The partition's state, created empty if it is not there.
    fn partition(&self, partition: i32) -> Shared {
        if let Some(s) = read(&self.partitions).get(&partition) {
            return s.clone();
        }
        let fresh = self.fresh();
        write(&self.partitions)
            .entry(partition)
            .or_insert(fresh)
            .clone()
    }

    /// Decides one record of `partition` and records the decision; the
    /// partition's state is created empty if it is not there (tools and
    /// tests; the gate uses [`Stores::decide_assigned`]).
    pub fn decide(
        &self,
        policy: &Policy,
        partition: i32,
        bytes: &[u8],
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Decided {
        self.decide_in(&self.partition(partition), policy, None, bytes, origin, now)
    }

    /// Like [`Stores::decide`], but only for a partition assigned here:
    /// `None` once it was revoked (a worker still holding one of its
    /// records after a drain timeout must not decide it on empty state; its
    /// next owner reads it again).
    ///
    /// `offset`: the input record's position in `partition`, so a re-read of
    /// a record decided before is not its own duplicate ([`GateView`]).
    pub fn decide_assigned(
        &self,
        policy: &Policy,
        partition: i32,
        offset: i64,
        bytes: &[u8],
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Option<Decided> {
        let shared = read(&self.partitions).get(&partition).cloned()?;
        Some(self.decide_in(&shared, policy, Some(offset), bytes, origin, now))
    }

    fn decide_in(
        &self,
        shared: &Shared,
        policy: &Policy,
        offset: Option<i64>,
        bytes: &[u8],
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Decided {
        let mut state = lock(shared);
        let consent = read(&self.consent);
        let view = GateView::new(&*consent, &state, offset);
        let (event, mut decision) = policy.decide_bytes(bytes, origin, &view, now);
        let earlier = view.earlier();
        drop(consent);
        // A re-read of a record approved before (its text may be sent
        // already) is not held now that the clock moved into quiet hours:
        // a deferral would send it a second time, later. An opt-out that
        // arrived meanwhile still rejects it.
        if earlier.is_some_and(|e| e.outcome == Outcome::Approve)
            && decision.outcome == Outcome::Defer
        {
            decision = Decision::from_reasons(
                decision.message_id.clone(),
                Vec::new(),
                None,
                decision.policy_version.clone(),
                now,
            );
        }
        let changelog = match &event {
            Some(e) => {
                let keep = policy.cap_retention(&e.to, e.category);
                state.record(e, &decision, now, offset, earlier, keep)
            }
            None => Vec::new(),
        };
        Decided {
            event,
            decision,
            changelog,
        }
    }

    /// Packs a worker batch's changelog entries for `partition` into one
    /// batch record (remembered for deletion once past the windows).
    pub fn seal(
        &self,
        partition: i32,
        entries: &[ChangelogEntry],
        now: DateTime<Utc>,
    ) -> ChangelogEntry {
        let shared = read(&self.partitions).get(&partition).cloned();
        match shared {
            Some(s) => lock(&s).seal(entries, now),
            // Revoked meanwhile: still written (the next restore of the
            // partition picks it up), but not tracked here.
            None => changelog::batch_entry(entries, now, fastrand::u64(..)),
        }
    }

    /// Prunes every partition and hands `emit` what to write: the
    /// tombstones of whole batch records past the windows, and of expired
    /// single records (the format before batches). Neither key is ever
    /// written again, so no later entry can overtake a tombstone.
    pub fn prune(&self, now: DateTime<Utc>, mut emit: impl FnMut(i32, ChangelogEntry)) {
        let partitions: Vec<(i32, Shared)> = read(&self.partitions)
            .iter()
            .map(|(p, s)| (*p, s.clone()))
            .collect();
        for (p, shared) in partitions {
            let mut state = lock(&shared);
            for record in state.prune(now) {
                emit(p, record);
            }
        }
    }

    /// Message ids forgotten before their window because a partition's
    /// memory was full, since the last call (a counter's increment).
    pub fn take_evicted(&self) -> u64 {
        read(&self.partitions)
            .values()
            .map(|s| lock(s).take_evicted())
            .sum()
    }

    /// Remembered message ids and cap keys over all partitions (gauges).
    pub fn sizes(&self) -> (usize, usize) {
        read(&self.partitions).values().fold((0, 0), |(d, c), s| {
            let s = lock(s);
            (d + s.dedup_entries(), c + s.cap_keys())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::decision::ReasonCode;
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
        let old_owner = Stores::for_policy(&policy);
        old_owner.assign(3);
        let first = old_owner.decide(&policy, 3, EVENT.as_bytes(), Origin::Intake, now);
        assert!(!first.decision.has(ReasonCode::Duplicate));
        assert_eq!(first.changelog.len(), 1);

        let new_owner = Stores::for_policy(&policy);
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
    fn an_id_with_quotes_survives_a_restore_from_its_batch_record() {
        let policy = policy();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        let event = EVENT.replace(r#""m-1""#, r#""m-\"1\"\\x""#);
        let old_owner = Stores::for_policy(&policy);
        old_owner.assign(3);
        let first = old_owner.decide(&policy, 3, event.as_bytes(), Origin::Intake, now);
        assert_eq!(first.decision.message_id.as_deref(), Some(r#"m-"1"\x"#));
        let batch = old_owner.seal(3, &first.changelog, now);

        let new_owner = Stores::for_policy(&policy);
        new_owner.assign(3);
        new_owner
            .restore(3, &batch.key, batch.value.as_deref())
            .unwrap();
        let replay = new_owner.decide(&policy, 3, event.as_bytes(), Origin::Intake, now);
        assert!(replay.decision.has(ReasonCode::Duplicate));
    }

    #[test]
    fn a_revoked_partition_is_not_decided_on_empty_state() {
        let policy = policy();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        let stores = Stores::for_policy(&policy);
        stores.assign(3);
        assert!(
            stores
                .decide_assigned(&policy, 3, 0, EVENT.as_bytes(), Origin::Intake, now)
                .is_some()
        );
        stores.revoke(3);
        let late = stores.decide_assigned(&policy, 3, 0, EVENT.as_bytes(), Origin::Intake, now);
        assert!(late.is_none(), "decided after the revoke");
        assert_eq!(stores.sizes(), (0, 0), "no empty state was created");
    }

    /// A re-read of a record approved before (its text may be out) is
    /// approved again, not deferred because the clock moved into quiet
    /// hours meanwhile; a new record at the same time is deferred.
    #[test]
    fn a_re_read_approval_is_not_turned_into_a_deferral() {
        let policy = Policy::with_registry(
            Registry::parse("[senders.jinyun-mall]\nbrand = \"金云商城\"\n").unwrap(),
        );
        let stores = Stores::for_policy(&policy);
        stores.assign(3);
        let consent = ConsentEvent::parse(
            r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"jinyun-mall","at":"2026-10-01T00:00:00Z","source":"web-form","evidence_id":"ev-1"}"#.as_bytes(),
        )
        .unwrap();
        stores.apply_consent(&consent);
        let text = |id: &str| {
            format!(
                r#"{{"message_id":"{id}","created_at":"2026-11-28T10:00:00+08:00","to":"+8613812345678","sender":"jinyun-mall","category":"marketing","subject":"winter-sale","body":"【金云商城】冬季大促，全场8折。回T退订"}}"#
            )
        };
        // 10:00 and 22:00 in Shanghai (marketing allowed 08:00–21:00).
        let day = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        let night = Utc.with_ymd_and_hms(2026, 11, 28, 14, 0, 0).unwrap();
        let first = stores
            .decide_assigned(&policy, 3, 7, text("m-9").as_bytes(), Origin::Intake, day)
            .unwrap();
        assert_eq!(
            first.decision.outcome,
            Outcome::Approve,
            "{:?}",
            first.decision.reasons
        );
        let again = stores
            .decide_assigned(&policy, 3, 7, text("m-9").as_bytes(), Origin::Intake, night)
            .unwrap();
        assert_eq!(
            again.decision.outcome,
            Outcome::Approve,
            "{:?}",
            again.decision.reasons
        );
        assert!(again.changelog.is_empty(), "nothing new to remember");
        let new = stores
            .decide_assigned(
                &policy,
                3,
                8,
                text("m-10").as_bytes(),
                Origin::Intake,
                night,
            )
            .unwrap();
        assert_eq!(
            new.decision.outcome,
            Outcome::Defer,
            "{:?}",
            new.decision.reasons
        );
    }

    #[test]
    fn malformed_input_changes_no_state() {
        let policy = policy();
        let stores = Stores::for_policy(&policy);
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        let d = stores.decide(&policy, 0, b"not json", Origin::Intake, now);
        assert!(d.event.is_none());
        assert!(d.changelog.is_empty());
        assert_eq!(stores.sizes(), (0, 0));
    }
}
