//! Hold and release of deferred messages with bounded memory: an index of
//! *where* held records are on the deferred topic and *when* they are due,
//! never the records themselves.
//!
//! The deferred topic is the store. As the gate reads a deferred partition
//! it calls [`DeferredIndex::hold`] with each record's offset and its
//! `smsgate-release-at`; records due at the same instant are folded into
//! one [`HeldRange`] (first and last offset), so a whole night of traffic
//! released at 08:00 local is one range per partition and time zone, not
//! millions of entries. When a range is due ([`DeferredIndex::due`]) the
//! pipeline re-reads offsets `first..=last` of that partition, releases the
//! records whose header equals the range's release time
//! ([`HeldRange::covers`]; records of other ranges in between are left to
//! their own range), decides each again in full with `Origin::Release`,
//! and calls [`DeferredIndex::complete`], which returns `released/…`
//! changelog entries to write before the deferred offset is committed.
//!
//! Durability: the committable offset of a partition is the first offset
//! of its oldest unreleased range ([`DeferredIndex::committable`]), so a
//! restart re-reads everything still held. Ranges released above that
//! offset are remembered in the changelog (`released/<partition>/<release
//! ms>/<first>` → last) and skipped when read again ([`Held::AlreadyReleased`]),
//! and [`should_release`] skips a record whose remembered outcome shows it
//! was already decided at release: none is released twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::contract::decision::Outcome;
use crate::policy::view::Seen;
use crate::state::changelog::{self, ChangelogEntry, RELEASED_PREFIX};

/// The longest wait between two attempts to hand back a range.
pub const MAX_RETRY_BACKOFF: chrono::Duration = chrono::Duration::seconds(60);

/// Records of one deferred partition due at the same instant, read
/// consecutively from `first` to `last` (other records may lie between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRange {
    pub partition: i32,
    pub release_at: DateTime<Utc>,
    pub first: i64,
    pub last: i64,
    /// How many held records it stands for (a gauge).
    pub records: u64,
}

impl HeldRange {
    /// True for a record, re-read at release, that this range releases.
    pub fn covers(&self, offset: i64, release_at: DateTime<Utc>) -> bool {
        (self.first..=self.last).contains(&offset)
            && release_at.timestamp_millis() == self.release_at.timestamp_millis()
    }
}

/// What `hold` did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Now indexed for release.
    Held,
    /// Released before a restart: skip it.
    AlreadyReleased,
    /// The partition is not assigned here.
    NotAssigned,
}

/// A range still held or being released.
#[derive(Debug, Clone, Copy)]
struct Range {
    last: i64,
    records: u64,
    /// Handed out by `due`, not yet completed.
    dispatched: bool,
    /// Failed hand-backs in a row (the retry backoff grows with it).
    attempts: u32,
}

impl Range {
    /// This range as handed out: `partition`, release instant `rel` (ms),
    /// starting at `first`.
    fn held(&self, partition: i32, rel: i64, first: i64) -> HeldRange {
        HeldRange {
            partition,
            release_at: DateTime::from_timestamp_millis(rel).unwrap_or_default(),
            first,
            last: self.last,
            records: self.records,
        }
    }
}

#[derive(Debug, Default)]
struct PartitionIndex {
    /// Unreleased ranges by (release ms, first offset).
    ranges: BTreeMap<(i64, i64), Range>,
    /// The range still accepting records, per release instant (ms).
    open: HashMap<i64, i64>,
    /// Released ranges at or above the committed offset, by (release ms,
    /// first) → last: skipped when read again after a restart.
    done: BTreeMap<(i64, i64), i64>,
    /// One past the last offset read.
    next_offset: i64,
}

impl PartitionIndex {
    fn watermark(&self) -> i64 {
        self.ranges
            .keys()
            .map(|(_, first)| *first)
            .min()
            .unwrap_or(self.next_offset)
    }
}

/// The hold index of every deferred partition assigned here.
#[derive(Debug)]
pub struct DeferredIndex {
    partitions: HashMap<i32, PartitionIndex>,
    /// Undispatched ranges in release order: (release ms, partition, first).
    schedule: BTreeSet<(i64, i32, i64)>,
    /// Ranges to hand out again (a failed or unfinished hand-back), by
    /// (not before ms, partition, release ms, first).
    retries: BTreeSet<(i64, i32, i64, i64)>,
    /// Above this many ranges the pipeline pauses the deferred partitions.
    max_ranges: usize,
}

impl DeferredIndex {
    pub fn new(max_ranges: usize) -> DeferredIndex {
        DeferredIndex {
            partitions: HashMap::new(),
            schedule: BTreeSet::new(),
            retries: BTreeSet::new(),
            max_ranges,
        }
    }

    /// A deferred partition was assigned; reading starts at `start_offset`
    /// (its committed offset). Apply its `released/` changelog after this.
    pub fn assign(&mut self, partition: i32, start_offset: i64) {
        self.revoke(partition);
        self.partitions.insert(
            partition,
            PartitionIndex {
                next_offset: start_offset,
                ..PartitionIndex::default()
            },
        );
    }

    /// A deferred partition moved away: forget it (its new owner re-reads
    /// from the committed offset).
    pub fn revoke(&mut self, partition: i32) {
        if self.partitions.remove(&partition).is_some() {
            self.schedule.retain(|(_, p, _)| *p != partition);
            self.retries.retain(|(_, p, _, _)| *p != partition);
        }
    }

    /// Restores one `released/` changelog record of an assigned partition;
    /// other keys are ignored (they belong to the partition state).
    pub fn apply_changelog(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Some((partition, release_ms, first)) = parse_released_key(key) else {
            return;
        };
        let Some(p) = self.partitions.get_mut(&partition) else {
            return;
        };
        match value
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<i64>().ok())
        {
            Some(last) => {
                p.done.insert((release_ms, first), last);
            }
            None => {
                p.done.remove(&(release_ms, first));
            }
        }
    }

    /// Indexes one record read from a deferred partition. A record without
    /// a readable `smsgate-release-at` should be held with a past time, so
    /// it is decided again at once rather than lost.
    pub fn hold(&mut self, partition: i32, offset: i64, release_at: DateTime<Utc>) -> Held {
        let Some(p) = self.partitions.get_mut(&partition) else {
            return Held::NotAssigned;
        };
        let rel = release_at.timestamp_millis();
        p.next_offset = p.next_offset.max(offset + 1);
        let released_before = p
            .done
            .range((rel, i64::MIN)..=(rel, offset))
            .next_back()
            .is_some_and(|(_, last)| *last >= offset);
        if released_before {
            // An open range must not grow across released records, or its
            // re-read would cover them again.
            p.open.remove(&rel);
            return Held::AlreadyReleased;
        }
        if let Some(first) = p.open.get(&rel)
            && let Some(range) = p.ranges.get_mut(&(rel, *first))
        {
            range.last = range.last.max(offset);
            range.records += 1;
            return Held::Held;
        }
        p.open.insert(rel, offset);
        p.ranges.insert(
            (rel, offset),
            Range {
                last: offset,
                records: 1,
                dispatched: false,
                attempts: 0,
            },
        );
        self.schedule.insert((rel, partition, offset));
        Held::Held
    }

    /// Ranges due at `now`, oldest first, then ranges whose retry time has
    /// come; each is handed out once. The pipeline releases them, then
    /// calls `complete`, or `retry` when a hand-back failed, or `advance`
    /// and `retry_now` when it handed back only part of a range.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<HeldRange> {
        let now_ms = now.timestamp_millis();
        let mut out = Vec::new();
        while let Some(&(at, partition, rel, first)) = self.retries.first() {
            if at > now_ms {
                break;
            }
            self.retries.pop_first();
            if let Some(range) = self
                .partitions
                .get(&partition)
                .and_then(|p| p.ranges.get(&(rel, first)))
            {
                out.push(range.held(partition, rel, first));
            }
        }
        while let Some(&(rel, partition, first)) = self.schedule.first() {
            if rel > now_ms {
                break;
            }
            self.schedule.pop_first();
            let Some(p) = self.partitions.get_mut(&partition) else {
                continue;
            };
            if p.open.get(&rel) == Some(&first) {
                p.open.remove(&rel);
            }
            if let Some(range) = p.ranges.get_mut(&(rel, first)) {
                range.dispatched = true;
                out.push(range.held(partition, rel, first));
            }
        }
        out
    }

    /// A hand-back of `range` failed: it is handed out again after a backoff
    /// that doubles with each failure in a row, from 1 s up to
    /// [`MAX_RETRY_BACKOFF`]. Returns when, or `None` for a range no longer
    /// held here (revoked).
    pub fn retry(&mut self, range: &HeldRange, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let rel = range.release_at.timestamp_millis();
        let r = self
            .partitions
            .get_mut(&range.partition)?
            .ranges
            .get_mut(&(rel, range.first))?;
        r.attempts = r.attempts.saturating_add(1);
        let backoff = chrono::Duration::seconds(1i64 << r.attempts.min(16).saturating_sub(1))
            .min(MAX_RETRY_BACKOFF);
        let at = now + backoff;
        self.retries
            .insert((at.timestamp_millis(), range.partition, rel, range.first));
        Some(at)
    }

    /// `range` is handed out again at the next `due`, without a backoff (its
    /// hand-back made progress and paused, see `advance`).
    pub fn retry_now(&mut self, range: &HeldRange, now: DateTime<Utc>) {
        let rel = range.release_at.timestamp_millis();
        if self
            .partitions
            .get(&range.partition)
            .is_some_and(|p| p.ranges.contains_key(&(rel, range.first)))
        {
            self.retries
                .insert((now.timestamp_millis(), range.partition, rel, range.first));
        }
    }

    /// The records of `range` before offset `next` were handed back and
    /// acknowledged (`sent` of them): the range now starts at `next`, so a
    /// later failure or a restart does not hand them back again and the
    /// commit point may pass them. Returns the rest, or `None` when nothing
    /// is left (then call `complete` with `range`).
    pub fn advance(&mut self, range: &HeldRange, next: i64, sent: u64) -> Option<HeldRange> {
        if next > range.last || next <= range.first {
            return None;
        }
        let rel = range.release_at.timestamp_millis();
        let p = self.partitions.get_mut(&range.partition)?;
        let old = p.ranges.remove(&(rel, range.first))?;
        let records = old.records.saturating_sub(sent).max(1);
        p.ranges.insert(
            (rel, next),
            Range {
                records,
                attempts: 0,
                ..old
            },
        );
        Some(HeldRange {
            first: next,
            records,
            ..*range
        })
    }

    /// How long the oldest range that is due has waited past its release
    /// time (`smsgate_release_overdue_seconds`); zero when none is due.
    pub fn overdue(&self, now: DateTime<Utc>) -> chrono::Duration {
        let now_ms = now.timestamp_millis();
        self.partitions
            .values()
            .filter_map(|p| p.ranges.keys().next().map(|(rel, _)| *rel))
            .filter(|rel| *rel <= now_ms)
            .min()
            .map_or(chrono::Duration::zero(), |rel| {
                chrono::Duration::milliseconds(now_ms - rel)
            })
    }

    /// When the next range falls due (to sleep until then, at most ~1 s).
    pub fn next_release(&self) -> Option<DateTime<Utc>> {
        self.schedule
            .first()
            .and_then(|(rel, _, _)| DateTime::from_timestamp_millis(*rel))
    }

    /// Marks a range released (its records decided again and their outputs
    /// acknowledged). Returns the changelog entries to write before
    /// committing `committable(partition)`: the range's `released/` record,
    /// and tombstones for released ranges now wholly below the commit point.
    pub fn complete(&mut self, range: &HeldRange) -> Vec<ChangelogEntry> {
        let Some(p) = self.partitions.get_mut(&range.partition) else {
            return Vec::new();
        };
        let rel = range.release_at.timestamp_millis();
        if p.ranges.remove(&(rel, range.first)).is_none() {
            return Vec::new();
        }
        if p.open.get(&rel) == Some(&range.first) {
            p.open.remove(&rel);
        }
        self.schedule.remove(&(rel, range.partition, range.first));
        p.done.insert((rel, range.first), range.last);
        let mut out = vec![ChangelogEntry {
            key: released_key(range.partition, rel, range.first),
            value: Some(range.last.to_string().into_bytes()),
        }];
        let watermark = p.watermark();
        p.done.retain(|(rel, first), last| {
            let keep = *last >= watermark;
            if !keep {
                out.push(changelog::tombstone(released_key(
                    range.partition,
                    *rel,
                    *first,
                )));
            }
            keep
        });
        out
    }

    /// The offset `committable(range.partition)` becomes once `range` is
    /// handed back before `next` (`None`: all of it): what a transaction
    /// commits together with the hand-back, before the index is told.
    pub fn committable_after(&self, range: &HeldRange, next: Option<i64>) -> Option<i64> {
        let p = self.partitions.get(&range.partition)?;
        let key = (range.release_at.timestamp_millis(), range.first);
        let others = p
            .ranges
            .keys()
            .filter(|k| **k != key)
            .map(|(_, first)| *first);
        Some(others.chain(next).min().unwrap_or(p.next_offset))
    }

    /// The offset to commit on a deferred partition: everything before it
    /// is released.
    pub fn committable(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .map(PartitionIndex::watermark)
    }

    /// True when the pipeline should pause reading deferred partitions
    /// (memory bound reached); it resumes when ranges are completed.
    pub fn is_full(&self) -> bool {
        self.ranges() >= self.max_ranges
    }

    /// Unreleased ranges (a gauge; memory is about 100 bytes each).
    pub fn ranges(&self) -> usize {
        self.partitions.values().map(|p| p.ranges.len()).sum()
    }

    /// Held records the ranges stand for (`smsgate_deferred_held`).
    pub fn held_records(&self) -> u64 {
        self.partitions
            .values()
            .flat_map(|p| p.ranges.values())
            .map(|r| r.records)
            .sum()
    }
}

/// Whether a record re-read at release should be decided again: not if
/// the partition state remembers an outcome other than `defer` for it (it
/// was released before a crash, after its decision was persisted).
pub fn should_release(seen: Option<Seen>) -> bool {
    seen.is_none_or(|s| s.outcome == Outcome::Defer)
}

fn released_key(partition: i32, release_ms: i64, first: i64) -> Vec<u8> {
    format!("{RELEASED_PREFIX}{partition}/{release_ms}/{first}").into_bytes()
}

fn parse_released_key(key: &[u8]) -> Option<(i32, i64, i64)> {
    let rest = std::str::from_utf8(key)
        .ok()?
        .strip_prefix(RELEASED_PREFIX)?;
    let mut parts = rest.split('/');
    let partition = parts.next()?.parse().ok()?;
    let release_ms = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some((partition, release_ms, first))
}
