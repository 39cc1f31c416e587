//! Per-partition ordered acknowledgement: which offset may be committed.
//!
//! Many records are in flight at once and the broker acknowledges them in
//! any order. A partition's commit position only moves past a record once
//! that record *and every earlier record of the partition* has been
//! acknowledged: the position is the smallest unacknowledged offset, or one
//! past the highest offset taken when nothing is pending. This module is
//! pure bookkeeping (no Kafka), so it is unit- and property-tested alone.
//!
//! Each assignment of a partition gets a new epoch: an acknowledgement that
//! arrives for an earlier assignment (the partition was revoked and came
//! back) is recognised and ignored.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Identifies one assignment of one partition.
pub type Epoch = u64;

/// An epoch no assignment ever has: deliveries not tied to an input offset
/// (changelog tombstones) carry it, so their acknowledgement changes nothing.
pub const NO_EPOCH: Epoch = 0;

#[derive(Debug, Default)]
struct Track {
    epoch: Epoch,
    /// Offsets taken and not yet acknowledged.
    pending: BTreeSet<i64>,
    /// One past the highest offset taken in this assignment.
    next: Option<i64>,
    /// The last position known to be committed.
    committed: Option<i64>,
}

impl Track {
    fn position(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }
}

/// Ordered-acknowledgement bookkeeping for every assigned partition.
#[derive(Debug)]
pub struct OffsetTracker<K> {
    parts: HashMap<K, Track>,
    next_epoch: Epoch,
    pending_total: usize,
}

impl<K> Default for OffsetTracker<K> {
    fn default() -> Self {
        OffsetTracker {
            parts: HashMap::new(),
            next_epoch: 1,
            pending_total: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> OffsetTracker<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The partition is (re)assigned to us: a fresh epoch, nothing pending.
    pub fn assign(&mut self, part: K) -> Epoch {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        if let Some(old) = self.parts.insert(
            part,
            Track {
                epoch,
                ..Track::default()
            },
        ) {
            self.pending_total -= old.pending.len();
        }
        epoch
    }

    /// The partition left us; what was still pending is forgotten (the next
    /// owner re-reads it from the committed position).
    pub fn revoke(&mut self, part: &K) {
        if let Some(old) = self.parts.remove(part) {
            self.pending_total -= old.pending.len();
        }
    }

    pub fn is_assigned(&self, part: &K) -> bool {
        self.parts.contains_key(part)
    }

    /// A record was taken for processing. `None` when the partition is not
    /// assigned (the record must then be left alone).
    pub fn take(&mut self, part: &K, offset: i64) -> Option<Epoch> {
        let t = self.parts.get_mut(part)?;
        if t.pending.insert(offset) {
            self.pending_total += 1;
        }
        t.next = Some(t.next.map_or(offset + 1, |n| n.max(offset + 1)));
        Some(t.epoch)
    }

    /// The broker acknowledged the output of `offset`. Returns false when
    /// the acknowledgement belongs to an earlier assignment.
    pub fn ack(&mut self, part: &K, epoch: Epoch, offset: i64) -> bool {
        match self.parts.get_mut(part) {
            Some(t) if t.epoch == epoch => {
                if t.pending.remove(&offset) {
                    self.pending_total -= 1;
                }
                true
            }
            _ => false,
        }
    }

    /// True while `epoch` is the current assignment of `part`.
    pub fn is_current(&self, part: &K, epoch: Epoch) -> bool {
        self.parts.get(part).is_some_and(|t| t.epoch == epoch)
    }

    /// The offset that may be committed for `part`: every record before it
    /// has been acknowledged.
    pub fn position(&self, part: &K) -> Option<i64> {
        self.parts.get(part).and_then(Track::position)
    }

    /// Partitions whose committable position moved past the last commit.
    pub fn to_commit(&self) -> Vec<(K, i64)> {
        self.parts
            .iter()
            .filter_map(|(k, t)| {
                let pos = t.position()?;
                (t.committed != Some(pos)).then(|| (k.clone(), pos))
            })
            .collect()
    }

    /// A commit of `offset` succeeded.
    pub fn committed(&mut self, part: &K, offset: i64) {
        if let Some(t) = self.parts.get_mut(part) {
            t.committed = Some(offset);
        }
    }

    pub fn pending(&self, part: &K) -> usize {
        self.parts.get(part).map_or(0, |t| t.pending.len())
    }

    pub fn pending_total(&self) -> usize {
        self.pending_total
    }

    pub fn partitions(&self) -> impl Iterator<Item = &K> {
        self.parts.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn position_waits_for_every_earlier_record() {
        let mut t = OffsetTracker::new();
        let e = t.assign(0);
        for o in 10..15 {
            t.take(&0, o);
        }
        assert_eq!(t.position(&0), Some(10));
        assert!(t.ack(&0, e, 12));
        assert!(t.ack(&0, e, 11));
        assert_eq!(t.position(&0), Some(10), "10 is not acknowledged yet");
        assert!(t.ack(&0, e, 10));
        assert_eq!(t.position(&0), Some(13));
        t.ack(&0, e, 14);
        t.ack(&0, e, 13);
        assert_eq!(t.position(&0), Some(15));
        assert_eq!(t.pending_total(), 0);
    }

    #[test]
    fn nothing_taken_means_nothing_to_commit() {
        let mut t = OffsetTracker::<i32>::new();
        t.assign(3);
        assert_eq!(t.position(&3), None);
        assert!(t.to_commit().is_empty());
    }

    #[test]
    fn to_commit_lists_only_positions_that_moved() {
        let mut t = OffsetTracker::new();
        let e = t.assign(1);
        t.take(&1, 0);
        t.ack(&1, e, 0);
        assert_eq!(t.to_commit(), vec![(1, 1)]);
        t.committed(&1, 1);
        assert!(t.to_commit().is_empty());
    }

    #[test]
    fn records_of_an_unassigned_partition_are_not_taken() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.take(&7, 0), None);
        assert_eq!(t.pending_total(), 0);
    }

    #[test]
    fn an_ack_from_an_earlier_assignment_is_ignored() {
        let mut t = OffsetTracker::new();
        let old = t.assign(0);
        t.take(&0, 5);
        t.revoke(&0);
        let new = t.assign(0);
        t.take(&0, 5);
        assert!(!t.ack(&0, old, 5));
        assert!(!t.is_current(&0, old));
        assert_eq!(t.position(&0), Some(5));
        assert!(t.ack(&0, new, 5));
        assert_eq!(t.position(&0), Some(6));
    }

    #[test]
    fn revoke_forgets_pending_records() {
        let mut t = OffsetTracker::new();
        t.assign(0);
        t.take(&0, 1);
        t.take(&0, 2);
        assert_eq!(t.pending_total(), 2);
        t.revoke(&0);
        assert_eq!(t.pending_total(), 0);
        assert!(!t.is_assigned(&0));
    }

    proptest! {
        /// Whatever order acknowledgements arrive in, the position never
        /// passes an unacknowledged record and ends one past the last offset.
        #[test]
        fn position_never_passes_an_unacknowledged_record(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 1..60),
        ) {
            let mut t = OffsetTracker::new();
            let e = t.assign(0u8);
            let mut offsets = Vec::new();
            let mut o = 100;
            for g in gaps { o += g; offsets.push(o); t.take(&0, o); }
            let mut unacked = offsets.clone();
            for idx in order {
                if unacked.is_empty() { break; }
                let off = unacked.remove(idx.index(unacked.len()));
                t.ack(&0, e, off);
                let pos = t.position(&0).unwrap();
                prop_assert!(unacked.iter().all(|u| *u >= pos));
                let min = unacked.iter().min().copied();
                prop_assert_eq!(pos, min.unwrap_or(offsets[offsets.len() - 1] + 1));
            }
            for off in unacked { t.ack(&0, e, off); }
            prop_assert_eq!(t.position(&0), Some(offsets[offsets.len() - 1] + 1));
            prop_assert_eq!(t.pending_total(), 0);
        }
    }
}
