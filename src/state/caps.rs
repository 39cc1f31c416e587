//! The frequency-cap memory of one input partition: when marketing to each
//! (recipient, subject) was approved within the cap window — 32 bytes a
//! pair with one approval, no allocation until a second.
//!
//! As for duplicates (see `dedup`), pairs written inside batch records need
//! no tombstone when they expire; only pairs restored from a single
//! `cap/<key>` record (the format before batches) are remembered as such,
//! so the prune can delete that record.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::state::FastHash;
use crate::state::changelog::{self, CapKey, ChangelogEntry};

/// Approval times in Unix milliseconds, oldest first.
#[derive(Debug, Clone)]
enum Approvals {
    One(i64),
    Many(Box<[i64]>),
}

impl Approvals {
    fn from_sorted(times: Vec<i64>) -> Option<Approvals> {
        match times.as_slice() {
            [] => None,
            [t] => Some(Approvals::One(*t)),
            _ => Some(Approvals::Many(times.into_boxed_slice())),
        }
    }

    fn as_slice(&self) -> &[i64] {
        match self {
            Approvals::One(t) => std::slice::from_ref(t),
            Approvals::Many(ts) => ts,
        }
    }

    /// The times at or after `ms` (the list is sorted).
    fn since(&self, ms: i64) -> &[i64] {
        let times = self.as_slice();
        &times[times.partition_point(|t| *t < ms)..]
    }
}

/// Approved marketing per (recipient, subject) of one partition.
#[derive(Debug, Clone, Default)]
pub struct CapMemory {
    pairs: HashMap<CapKey, Approvals, FastHash>,
    /// Pairs restored from single `cap/<key>` records: their record needs a
    /// tombstone once it expires.
    single_records: HashSet<CapKey, FastHash>,
}

impl CapMemory {
    /// Approvals of `key` at or after `since`.
    pub fn count_since(&self, key: &CapKey, since: DateTime<Utc>) -> u32 {
        let since = since.timestamp_millis();
        self.pairs
            .get(key)
            .map(|a| a.since(since).len() as u32)
            .unwrap_or(0)
    }

    /// Counts an approval at `now`, forgets those before `horizon` and all
    /// but the latest `keep` (what the cap rule can count), and returns the
    /// changelog entry of what the pair now holds.
    pub fn approve(
        &mut self,
        key: CapKey,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
        keep: usize,
    ) -> ChangelogEntry {
        let horizon_ms = horizon.timestamp_millis();
        let now_ms = now.timestamp_millis();
        let mut times: Vec<i64> = match self.pairs.get(&key) {
            Some(a) => a.since(horizon_ms).to_vec(),
            None => Vec::with_capacity(1),
        };
        // Clocks only move forward here, but keep the order if one did not.
        let at = times.partition_point(|t| *t <= now_ms);
        times.insert(at, now_ms);
        let surplus = times.len().saturating_sub(keep.max(1));
        times.drain(..surplus);
        let entry = changelog::cap_entry(&key, &times);
        if let Some(a) = Approvals::from_sorted(times) {
            self.pairs.insert(key, a);
        }
        entry
    }

    /// Restores one changelog entry; `single_record` when it was a record
    /// of its own rather than an entry of a batch record.
    pub fn restore(
        &mut self,
        key: CapKey,
        approved: Option<Vec<DateTime<Utc>>>,
        single_record: bool,
    ) {
        let restored = approved.and_then(|times| {
            let mut ms: Vec<i64> = times.iter().map(DateTime::timestamp_millis).collect();
            ms.sort_unstable();
            Approvals::from_sorted(ms)
        });
        match restored {
            Some(a) => {
                self.pairs.insert(key, a);
                if single_record {
                    self.single_records.insert(key);
                }
            }
            None => {
                self.pairs.remove(&key);
                if single_record {
                    self.single_records.remove(&key);
                }
            }
        }
    }

    /// Forgets approvals before `horizon`, pushing the tombstones of the
    /// single records left empty.
    pub fn prune(&mut self, horizon: DateTime<Utc>, tombstones: &mut Vec<ChangelogEntry>) {
        let horizon_ms = horizon.timestamp_millis();
        let singles = &mut self.single_records;
        self.pairs.retain(|key, a| {
            if a.as_slice().first().is_some_and(|t| *t < horizon_ms) {
                match Approvals::from_sorted(a.since(horizon_ms).to_vec()) {
                    Some(rest) => *a = rest,
                    None => {
                        if singles.remove(key) {
                            tombstones.push(changelog::tombstone(key.changelog_key()));
                        }
                        return false;
                    }
                }
            }
            true
        });
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}
