//! The duplicate memory of one input partition: which `message_id`s were
//! decided, when first, with what latest outcome, and from which input
//! record — 32 bytes an id.
//!
//! An id is kept as a 128-bit keyed hash, not as a string: a million ids
//! cost about 65 MB instead of about 125 MB. Two different ids colliding
//! (odds about n²/2¹²⁹) would make the later one a `duplicate`, a reject,
//! never a wrong approval. The hash key is random per process; the
//! changelog keeps the ids themselves, so a restore hashes them again.
//!
//! Expired ids need no tombstone of their own when they were written inside
//! a batch record (the batch is deleted whole, and a restore drops what it
//! brings back past the window). Only ids restored from a single
//! `dedup/<id>` record (the format before batches) keep their id, so the
//! prune can delete that record.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use chrono::{DateTime, Duration, Utc};
use siphasher::sip128::SipHasher13;

use crate::contract::decision::Outcome;
use crate::policy::view::Seen;
use crate::state::changelog::{self, ChangelogEntry};
use crate::state::consent::IdentityHasher;

/// A keyed 128-bit hash of a `message_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IdHash(u64, u64);

impl Hash for IdHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed hash: one half is the bucket hash.
        state.write_u64(self.0);
    }
}

/// SipHash-1-3 with 128-bit output under a random key: one pass over the
/// id (two 64-bit `RandomState` hashes took twice as long).
#[derive(Debug, Clone)]
struct IdKey(SipHasher13);

impl Default for IdKey {
    fn default() -> IdKey {
        IdKey(SipHasher13::new_with_keys(
            fastrand::u64(..),
            fastrand::u64(..),
        ))
    }
}

/// `first_at` in Unix milliseconds (bits 2–63) and the outcome (bits 0–1).
#[derive(Debug, Clone, Copy)]
struct Packed(u64);

impl Packed {
    fn new(seen: Seen) -> Packed {
        let ms = seen.first_at.timestamp_millis().max(0) as u64;
        let outcome = match seen.outcome {
            Outcome::Approve => 0,
            Outcome::Defer => 1,
            Outcome::Reject => 2,
        };
        Packed(ms << 2 | outcome)
    }

    fn first_ms(self) -> u64 {
        self.0 >> 2
    }

    fn first_at(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.first_ms() as i64).unwrap_or_default()
    }

    fn seen(self) -> Seen {
        let outcome = match self.0 & 3 {
            0 => Outcome::Approve,
            1 => Outcome::Defer,
            _ => Outcome::Reject,
        };
        Seen {
            first_at: self.first_at(),
            outcome,
        }
    }
}

/// One remembered id.
#[derive(Debug, Clone, Copy)]
struct Slot {
    packed: Packed,
    /// The input record's offset the latest decision was made for, or -1:
    /// a re-read of that same record (a crash before its offset was
    /// committed) is not an upstream retry.
    offset: i64,
}

impl Slot {
    fn offset(self) -> Option<i64> {
        (self.offset >= 0).then_some(self.offset)
    }
}

/// Decided message ids of one partition.
#[derive(Debug, Clone, Default)]
pub struct DedupMemory {
    /// This memory's random key of [`IdHash`].
    key: IdKey,
    ids: HashMap<IdHash, Slot, BuildHasherDefault<IdentityHasher>>,
    /// Ids restored from single `dedup/<id>` records: their record needs a
    /// tombstone once they expire.
    single_records: HashMap<IdHash, Box<str>, BuildHasherDefault<IdentityHasher>>,
}

impl DedupMemory {
    fn hash(&self, message_id: &str) -> IdHash {
        let h = self.key.0.hash(message_id.as_bytes());
        IdHash(h.h1, h.h2)
    }

    /// What is remembered of `message_id`, and the offset of the input
    /// record its latest decision was made for (when known).
    pub fn get(&self, message_id: &str) -> Option<(Seen, Option<i64>)> {
        self.ids
            .get(&self.hash(message_id))
            .map(|s| (s.packed.seen(), s.offset()))
    }

    /// Remembers a decision made for the input record at `offset`: the first
    /// time starts the window (again, when the old memory is past it); the
    /// outcome and offset are always the latest.
    pub fn remember(
        &mut self,
        message_id: &str,
        outcome: Outcome,
        now: DateTime<Utc>,
        window: Duration,
        offset: Option<i64>,
    ) -> Seen {
        let fresh = Seen {
            first_at: now,
            outcome,
        };
        let slot = self.ids.entry(self.hash(message_id)).or_insert(Slot {
            packed: Packed::new(fresh),
            offset: -1,
        });
        let first_at = slot.packed.first_at();
        let seen = if now - first_at < window {
            Seen { first_at, outcome }
        } else {
            fresh
        };
        *slot = Slot {
            packed: Packed::new(seen),
            offset: offset.unwrap_or(-1),
        };
        seen
    }

    /// Restores one changelog entry; `single_record` when it was a record
    /// of its own rather than an entry of a batch record.
    pub fn restore(
        &mut self,
        message_id: &str,
        seen: Option<Seen>,
        offset: Option<i64>,
        single_record: bool,
    ) {
        let id = self.hash(message_id);
        match seen {
            Some(s) => {
                let slot = Slot {
                    packed: Packed::new(s),
                    offset: offset.unwrap_or(-1),
                };
                self.ids.insert(id, slot);
                if single_record {
                    self.single_records.insert(id, message_id.into());
                }
            }
            None => {
                self.ids.remove(&id);
                if single_record {
                    self.single_records.remove(&id);
                }
            }
        }
    }

    /// Forgets ids first decided at or before `horizon`, pushing the
    /// tombstones of the single records among them.
    pub fn prune(&mut self, horizon: DateTime<Utc>, tombstones: &mut Vec<ChangelogEntry>) {
        self.prune_ms(horizon.timestamp_millis().max(0) as u64, tombstones);
    }

    /// Forgets the oldest ids (by first decision) until at most `keep` are
    /// left; returns how many were forgotten. One pass to find the cut-off
    /// time, one to drop; ids decided in the same millisecond as the cut-off
    /// go together, so a little more than asked may go.
    pub fn evict_oldest(&mut self, keep: usize, tombstones: &mut Vec<ChangelogEntry>) -> usize {
        let before = self.ids.len();
        if before <= keep {
            return 0;
        }
        let mut times: Vec<u64> = self.ids.values().map(|s| s.packed.first_ms()).collect();
        let (_, cut, _) = times.select_nth_unstable(before - keep - 1);
        let cut = *cut;
        self.prune_ms(cut, tombstones);
        before - self.ids.len()
    }

    fn prune_ms(&mut self, horizon_ms: u64, tombstones: &mut Vec<ChangelogEntry>) {
        let singles = &mut self.single_records;
        self.ids.retain(|id, s| {
            let keep = s.packed.first_ms() > horizon_ms;
            if !keep && let Some(message_id) = singles.remove(id) {
                tombstones.push(changelog::tombstone(changelog::dedup_key(&message_id)));
            }
            keep
        });
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}
