//! Partition-local state: frequency caps and duplicates of one input
//! partition, with the changelog that makes them survive a crash or a move.
//!
//! The outbound topic is keyed by recipient, so every event for a
//! (recipient, subject) and — for a given upstream — every retry of a
//! `message_id` land on the same partition, and the instance owning that
//! partition is the only one that needs their state. Records keyed by
//! something else still work, but caps and duplicates then only hold
//! within a partition: the pipeline counts them with
//! [`key_is_recipient`] in the `smsgate_non_recipient_keys_total` metric.
//!
//! Use: on assignment, read the partition's changelog from the start into
//! [`PartitionState::apply_changelog`], then `prune`; for each decision call
//! [`PartitionState::record`], pack what it returns for a batch of inputs
//! with [`PartitionState::seal`] into one record and write it **before**
//! committing those input offsets; call `prune` now and then and
//! write what it returns. Entries of a batch record expire with the batch,
//! so only entries restored from single `dedup/` or `cap/` records (the
//! format before batches) get a tombstone of their own.

use std::cell::Cell;
use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use crate::contract::consent::ConsentFact;
use crate::contract::decision::{Decision, Outcome, ReasonCode};
use crate::contract::event::{Category, OutboundSms};
use crate::policy::view::{CapView, ConsentView, DedupView, Seen};
use crate::state::caps::CapMemory;
use crate::state::changelog::{self, CapKey, Change, ChangelogEntry, ChangelogError};
use crate::state::dedup::DedupMemory;

/// Caps and duplicates of one input partition.
#[derive(Debug, Clone)]
pub struct PartitionState {
    /// How long a decided `message_id` is remembered (24 h).
    dedup_window: Duration,
    /// How long an approval counts against a cap (the policy's cap window).
    cap_window: Duration,
    /// Decided message ids.
    seen: DedupMemory,
    /// Approval times of marketing per (recipient, subject), oldest first.
    caps: CapMemory,
    /// Batch records written or restored (write time, key), oldest first:
    /// each is deleted once everything in it is past its window.
    batches: VecDeque<(DateTime<Utc>, Vec<u8>)>,
    /// Makes batch keys unique (a restarted or second writer never reuses
    /// one, so compaction never merges two batches).
    nonce: u64,
    /// Most message ids remembered (`state.max_dedup_entries`): past it the
    /// oldest are forgotten before their window, so memory stays bounded.
    max_dedup: usize,
    /// Ids forgotten that way since the last [`PartitionState::take_evicted`].
    evicted: u64,
    /// Tombstones of single `dedup/` records forgotten early, written by
    /// the next prune as records of their own (never inside one input's
    /// batch record, which they could make too large).
    pending_tombstones: Vec<ChangelogEntry>,
}

impl PartitionState {
    pub fn new(dedup_window: Duration, cap_window: Duration) -> PartitionState {
        PartitionState {
            dedup_window,
            cap_window,
            seen: DedupMemory::default(),
            caps: CapMemory::default(),
            batches: VecDeque::new(),
            nonce: fastrand::u64(..),
            max_dedup: usize::MAX,
            evicted: 0,
            pending_tombstones: Vec::new(),
        }
    }

    /// Bounds the duplicate memory to `max` ids (see `max_dedup`).
    pub fn with_max_dedup(mut self, max: usize) -> PartitionState {
        self.max_dedup = max.max(1);
        self
    }

    /// Ids forgotten before their window because the memory was full,
    /// since the last call (`smsgate_dedup_evicted_total`).
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    /// Past the bound by a tenth, forgets the oldest ids down to nine
    /// tenths of it: one O(n) pass per n/5 new ids. Returns how many.
    fn bound_dedup(&mut self, force: bool) -> u64 {
        let max = self.max_dedup;
        let over = self.seen.len() > max.saturating_add(max / 10);
        if over || (force && self.seen.len() > max) {
            let keep = max - max / 10;
            return self.seen.evict_oldest(keep, &mut self.pending_tombstones) as u64;
        }
        0
    }

    /// After a restore, before deciding: back under the bound (the ids
    /// forgotten early before the restart come back from their batch
    /// records; they were counted then, so they are not counted again).
    pub fn bound_restored(&mut self) {
        self.bound_dedup(true);
    }

    /// Remembers a decision made for the input record at `offset` (every
    /// well-formed one for duplicates, approved marketing for caps) and
    /// returns the changelog entries to write. `earlier`: what the view
    /// hid because this same record was decided before ([`GateView::earlier`]).
    ///
    /// A duplicate changes nothing: the memory stays the first decision's,
    /// so a re-read of that first record is still known as such. A re-read
    /// decided as before changes nothing either (its approval already
    /// counts against the cap). `cap_retention`: how many approvals of the
    /// pair the recipient's cap rules count ([`crate::policy::Policy::cap_retention`];
    /// `None`: no cap rule, no cap entry).
    pub fn record(
        &mut self,
        event: &OutboundSms,
        decision: &Decision,
        now: DateTime<Utc>,
        offset: Option<i64>,
        earlier: Option<Seen>,
        cap_retention: Option<u32>,
    ) -> Vec<ChangelogEntry> {
        let duplicate = decision
            .reasons
            .iter()
            .any(|r| r.code == ReasonCode::Duplicate);
        if duplicate || earlier.is_some_and(|e| e.outcome == decision.outcome) {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(2);
        let seen = self.seen.remember(
            &event.message_id,
            decision.outcome,
            now,
            self.dedup_window,
            offset,
        );
        out.push(changelog::dedup_entry(&event.message_id, &seen, offset));
        self.evicted += self.bound_dedup(false);
        let counted = earlier.is_some_and(|e| e.outcome == Outcome::Approve);
        if let Some(keep) = cap_retention
            && decision.outcome == Outcome::Approve
            && event.category == Category::Marketing
            && !counted
        {
            let key = CapKey::new(&event.to, event.subject_key());
            let horizon = now - self.cap_window;
            out.push(self.caps.approve(key, now, horizon, keep as usize));
        }
        out
    }

    /// Packs `entries` (from `record`, in order) into one batch
    /// record to write, and remembers it for deletion after the windows.
    pub fn seal(&mut self, entries: &[ChangelogEntry], now: DateTime<Utc>) -> ChangelogEntry {
        self.nonce = self.nonce.wrapping_add(1);
        let batch = changelog::batch_entry(entries, now, self.nonce);
        self.batches.push_back((now, batch.key.clone()));
        batch
    }

    /// Restores one changelog record (read in log order); `released/`
    /// records belong to the deferred index and are skipped here.
    pub fn apply_changelog(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ChangelogError> {
        self.apply(key, value, true)
    }

    /// `single_record`: the entry is a record of its own, not part of a batch.
    fn apply(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        single_record: bool,
    ) -> Result<(), ChangelogError> {
        match changelog::decode(key, value)? {
            Change::Dedup {
                message_id,
                seen,
                offset,
            } => self.seen.restore(&message_id, seen, offset, single_record),
            Change::Cap { key, approved } => self.caps.restore(key, approved, single_record),
            Change::Released => {}
            Change::Batch { at, entries } => match entries {
                Some(entries) => {
                    for e in &entries {
                        if e.key.starts_with(changelog::BATCH_PREFIX.as_bytes()) {
                            continue; // never nested; ignore rather than recurse
                        }
                        self.apply(&e.key, e.value.as_deref(), false)?;
                    }
                    self.batches.push_back((at, key.to_vec()));
                }
                None => self.batches.retain(|(_, k)| k != key),
            },
        }
        Ok(())
    }

    /// Drops what is older than its window and returns the tombstones to
    /// write, each as a record of its own so the compacted changelog
    /// forgets it too: one per batch record past the windows, and one per
    /// expired entry restored from a single `dedup/` or `cap/` record.
    /// Entries written inside batches need none: they go with their batch,
    /// and a restore drops what it brings back past the window.
    pub fn prune(&mut self, now: DateTime<Utc>) -> Vec<ChangelogEntry> {
        let mut out = std::mem::take(&mut self.pending_tombstones);
        self.seen.prune(now - self.dedup_window, &mut out);
        self.evicted += self.bound_dedup(true);
        out.append(&mut self.pending_tombstones);
        self.caps.prune(now - self.cap_window, &mut out);
        // A batch written at W holds nothing live after W + the longer window.
        let horizon = now - self.dedup_window.max(self.cap_window);
        self.batches.retain(|(at, key)| {
            let keep = *at >= horizon;
            if !keep {
                out.push(changelog::tombstone(key.clone()));
            }
            keep
        });
        out
    }

    /// Batch records written or restored and not yet deleted (a gauge).
    pub fn batch_records(&self) -> usize {
        self.batches.len()
    }

    /// Remembered message ids (a gauge).
    pub fn dedup_entries(&self) -> usize {
        self.seen.len()
    }

    /// (recipient, subject) pairs with approvals in the window (a gauge).
    pub fn cap_keys(&self) -> usize {
        self.caps.len()
    }
}

impl CapView for PartitionState {
    fn approved_since(&self, to: &str, subject: &str, since: DateTime<Utc>) -> u32 {
        self.caps.count_since(&CapKey::new(to, subject), since)
    }
}

impl DedupView for PartitionState {
    fn seen(&self, message_id: &str) -> Option<Seen> {
        self.seen.get(message_id).map(|(s, _)| s)
    }
}

/// True when an input record's key is the event's recipient, as the
/// partition-local state needs (anything else is counted in a metric).
pub fn key_is_recipient(key: Option<&[u8]>, to: &str) -> bool {
    key == Some(to.as_bytes())
}

/// What the policy reads in the gate: the shared consent table plus one
/// partition's caps and duplicates, as seen by the input record at
/// `offset`.
///
/// When that very record was decided before (read again after a crash
/// between its changelog write and its offset commit), its own trace is
/// hidden: it is not a `duplicate` of itself, and its own approval does not
/// count against its cap. It is decided as the first time (the same
/// decision, unless consent changed in between), and its output is sent
/// again. An upstream retry, a different record with the same
/// `message_id`, is still a `duplicate`.
pub struct GateView<'a> {
    pub consent: &'a dyn ConsentView,
    pub partition: &'a PartitionState,
    /// The input record being decided, when it has a position.
    pub offset: Option<i64>,
    /// Set when the view hid this record's earlier decision.
    earlier: Cell<Option<Seen>>,
}

impl<'a> GateView<'a> {
    pub fn new(
        consent: &'a dyn ConsentView,
        partition: &'a PartitionState,
        offset: Option<i64>,
    ) -> GateView<'a> {
        GateView {
            consent,
            partition,
            offset,
            earlier: Cell::new(None),
        }
    }

    /// The earlier decision of this same record that the view hid, if any.
    pub fn earlier(&self) -> Option<Seen> {
        self.earlier.get()
    }
}

impl ConsentView for GateView<'_> {
    fn for_each_consent(&self, to: &str, f: &mut dyn FnMut(ConsentFact<'_>)) {
        self.consent.for_each_consent(to, f)
    }
}

impl CapView for GateView<'_> {
    fn approved_since(&self, to: &str, subject: &str, since: DateTime<Utc>) -> u32 {
        let n = self.partition.approved_since(to, subject, since);
        // The policy asks about duplicates first, so `earlier` is known here.
        match self.earlier.get() {
            Some(e) if e.outcome == Outcome::Approve && e.first_at >= since => n.saturating_sub(1),
            _ => n,
        }
    }
}

impl DedupView for GateView<'_> {
    fn seen(&self, message_id: &str) -> Option<Seen> {
        match self.partition.seen.get(message_id) {
            Some((seen, Some(offset))) if Some(offset) == self.offset => {
                self.earlier.set(Some(seen));
                None
            }
            other => other.map(|(s, _)| s),
        }
    }
}
