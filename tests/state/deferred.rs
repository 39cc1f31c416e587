//! Hold and release: held records are indexed by position, not kept; a
//! night of traffic is a handful of ranges; nothing is released before its
//! time or handed out twice; a restart re-reads from the committed offset,
//! skips what was already released and releases the rest.

use chrono::{DateTime, Duration, TimeZone, Utc};
use smsgate::contract::decision::Outcome;
use smsgate::policy::view::Seen;
use smsgate::state::DeferredIndex;
use smsgate::state::changelog::ChangelogEntry;
use smsgate::state::deferred::{Held, should_release};

/// 08:00 Asia/Shanghai and 09:00 America/New_York, in UTC.
fn shanghai_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap()
}
fn new_york_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 14, 0, 0).unwrap()
}

/// The deferred topic's partition 0 as (offset, release_at).
fn night(records: i64) -> Vec<(i64, DateTime<Utc>)> {
    (0..records)
        .map(|o| {
            let at = if o % 3 == 0 {
                new_york_morning()
            } else {
                shanghai_morning()
            };
            (o, at)
        })
        .collect()
}

fn index_of(log: &[(i64, DateTime<Utc>)]) -> DeferredIndex {
    let mut index = DeferredIndex::new(10_000);
    index.assign(0, 0);
    for (offset, at) in log {
        assert_eq!(index.hold(0, *offset, *at), Held::Held);
    }
    index
}

#[test]
fn a_whole_night_interleaving_two_time_zones_is_two_ranges() {
    let index = index_of(&night(300_000));
    assert_eq!(index.ranges(), 2);
    assert_eq!(index.held_records(), 300_000);
    assert!(!index.is_full());
}

#[test]
fn nothing_is_released_early_and_each_range_is_handed_out_once() {
    let log = night(30);
    let mut index = index_of(&log);
    assert_eq!(index.next_release(), Some(shanghai_morning()));
    assert!(
        index
            .due(shanghai_morning() - Duration::milliseconds(1))
            .is_empty()
    );

    let due = index.due(shanghai_morning());
    assert_eq!(due.len(), 1);
    let range = due[0];
    assert_eq!(
        (range.partition, range.first, range.last, range.records),
        (0, 1, 29, 20)
    );
    assert!(
        index
            .due(shanghai_morning() + Duration::seconds(30))
            .is_empty()
    );

    // Re-reading first..=last releases exactly the records due then.
    let released: Vec<i64> = log
        .iter()
        .filter(|(o, at)| range.covers(*o, *at))
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(released.len(), 20);
    assert!(released.iter().all(|o| o % 3 != 0));

    assert_eq!(index.next_release(), Some(new_york_morning()));
    assert!(
        index
            .due(new_york_morning() - Duration::seconds(1))
            .is_empty()
    );
    assert_eq!(index.due(new_york_morning()).len(), 1);
}

#[test]
fn the_commit_point_stays_at_the_oldest_unreleased_record() {
    let log = night(30);
    let mut index = index_of(&log);
    // New York's range starts at offset 0: nothing can be committed yet.
    let shanghai = index.due(shanghai_morning())[0];
    index.complete(&shanghai);
    assert_eq!(index.committable(0), Some(0));
    let new_york = index.due(new_york_morning())[0];
    let entries = index.complete(&new_york);
    // Everything read is released: commit past the last record, and the
    // released/ markers below that point are tombstoned.
    assert_eq!(index.committable(0), Some(30));
    assert_eq!(index.ranges(), 0);
    assert!(entries.iter().any(|e| e.value.is_none()));
}

/// Under `exactly_once` a hand-back and its deferred offset commit in one
/// transaction: the offset is computed before the index is told, and must
/// be what `committable` says after it is.
#[test]
fn the_offset_committed_with_a_hand_back_is_the_commit_point_after_it() {
    let log = night(30);
    let mut index = index_of(&log);
    let shanghai = index.due(shanghai_morning())[0];
    let after = index.committable_after(&shanghai, None);
    index.complete(&shanghai);
    assert_eq!(after, index.committable(0));
    let new_york = index.due(new_york_morning())[0];
    // A first chunk up to the middle of New York's range, then the rest.
    let middle = (new_york.first + new_york.last) / 2 + 1;
    let after = index.committable_after(&new_york, Some(middle));
    let rest = index.advance(&new_york, middle, 5).expect("a rest");
    assert_eq!(after, index.committable(0));
    assert_eq!(after, Some(middle));
    let after = index.committable_after(&rest, None);
    index.complete(&rest);
    assert_eq!(after, index.committable(0));
    assert_eq!(after, Some(30));
}

fn restart(committed: i64, changelog: &[ChangelogEntry]) -> DeferredIndex {
    let mut index = DeferredIndex::new(10_000);
    index.assign(0, committed);
    for e in changelog {
        index.apply_changelog(&e.key, e.value.as_deref());
    }
    index
}

#[test]
fn after_a_restart_released_ranges_are_skipped_and_held_ones_released() {
    let log = night(30);
    let mut index = index_of(&log);
    let mut changelog = Vec::new();
    // Shanghai is released before the crash; New York is not.
    let shanghai = index.due(shanghai_morning())[0];
    changelog.extend(index.complete(&shanghai));
    let committed = index.committable(0).unwrap();
    assert_eq!(committed, 0);

    // kill -9, restart: read the partition again from the committed offset.
    let mut index = restart(committed, &changelog);
    let mut skipped = 0;
    for (offset, at) in log.iter().filter(|(o, _)| *o >= committed) {
        match index.hold(0, *offset, *at) {
            Held::AlreadyReleased => skipped += 1,
            Held::Held => {}
            Held::NotAssigned => panic!("partition 0 is assigned"),
        }
    }
    assert_eq!(
        skipped, 20,
        "every Shanghai record was released before the crash"
    );
    assert_eq!(index.held_records(), 10);
    // Even a late tick releases nothing twice.
    assert_eq!(index.due(shanghai_morning() + Duration::hours(1)), vec![]);
    let due = index.due(new_york_morning());
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].records, 10);
}

#[test]
fn a_range_does_not_grow_across_released_records() {
    let at = shanghai_morning();
    // A released/ marker for offset 1 only (however it came about).
    let mut earlier = DeferredIndex::new(100);
    earlier.assign(0, 1);
    earlier.hold(0, 1, at);
    let range = earlier.due(at)[0];
    let markers: Vec<ChangelogEntry> = earlier
        .complete(&range)
        .into_iter()
        .filter(|e| e.value.is_some())
        .collect();
    assert_eq!(markers.len(), 1);

    let mut index = restart(0, &markers);
    assert_eq!(index.hold(0, 0, at), Held::Held);
    assert_eq!(index.hold(0, 1, at), Held::AlreadyReleased);
    assert_eq!(index.hold(0, 2, at), Held::Held);
    let due = index.due(at);
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|r| !r.covers(1, at)));
    assert!(due.iter().any(|r| r.covers(0, at)) && due.iter().any(|r| r.covers(2, at)));
}

#[test]
fn a_revoked_partition_is_forgotten_and_unassigned_ones_are_not_held() {
    let mut index = index_of(&night(10));
    index.revoke(0);
    assert_eq!(index.ranges(), 0);
    assert_eq!(index.next_release(), None);
    assert_eq!(index.hold(0, 11, shanghai_morning()), Held::NotAssigned);
    assert_eq!(index.committable(0), None);
}

#[test]
fn the_index_reports_full_at_its_bound() {
    let mut index = DeferredIndex::new(3);
    index.assign(0, 0);
    for minute in 0..3 {
        index.hold(0, minute, shanghai_morning() + Duration::minutes(minute));
    }
    assert!(index.is_full());
    let due = index.due(shanghai_morning());
    index.complete(&due[0]);
    assert!(!index.is_full());
}

#[test]
fn a_record_already_decided_at_release_is_not_released_again() {
    let t = shanghai_morning();
    assert!(should_release(None));
    assert!(should_release(Some(Seen {
        first_at: t,
        outcome: Outcome::Defer
    })));
    assert!(!should_release(Some(Seen {
        first_at: t,
        outcome: Outcome::Approve
    })));
    assert!(!should_release(Some(Seen {
        first_at: t,
        outcome: Outcome::Reject
    })));
}

/// A hand-back that failed (the broker down for minutes) is handed out
/// again after a backoff that doubles up to a minute, with no restart;
/// the overdue figure says how late the texts are meanwhile.
#[test]
fn a_failed_release_is_retried_with_a_growing_backoff() {
    let mut index = index_of(&night(30));
    let due_at = shanghai_morning();
    let [range] = index.due(due_at).try_into().unwrap();
    assert_eq!(index.overdue(due_at), Duration::zero());
    let mut now = due_at;
    let mut waits = Vec::new();
    for _ in 0..8 {
        let at = index.retry(&range, now).unwrap();
        waits.push((at - now).num_seconds());
        assert!(
            index.due(at - Duration::milliseconds(1)).is_empty(),
            "not before its backoff"
        );
        let again = index.due(at);
        assert_eq!(again, vec![range], "handed out again, unchanged");
        now = at;
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(index.overdue(now), now - due_at);
    index.complete(&range);
    assert_eq!(index.overdue(now), Duration::zero());
    assert!(index.due(now + Duration::hours(1)).is_empty());
}

/// A huge range is handed back in chunks: each acknowledged chunk moves the
/// range's start (and the commit point) past it, so a failure re-sends at
/// most one chunk.
#[test]
fn a_range_handed_back_in_part_keeps_the_rest_and_moves_the_commit_point() {
    let log: Vec<_> = (0..100).map(|o| (o, shanghai_morning())).collect();
    let mut index = index_of(&log);
    let [range] = index.due(shanghai_morning()).try_into().unwrap();
    assert_eq!(index.committable(0), Some(0));
    let rest = index.advance(&range, 40, 40).unwrap();
    assert_eq!((rest.first, rest.last, rest.records), (40, 99, 60));
    assert_eq!(index.committable(0), Some(40));
    assert_eq!(index.held_records(), 60);
    // Unfinished, not failed: back at the next look, without a backoff.
    index.retry_now(&rest, shanghai_morning());
    assert_eq!(index.due(shanghai_morning()), vec![rest]);
    assert_eq!(
        index.advance(&rest, 100, 60),
        None,
        "nothing left: complete it"
    );
    index.complete(&rest);
    assert_eq!(index.committable(0), Some(100));
    assert_eq!(index.ranges(), 0);
}

/// A revoked partition's retries are forgotten with it.
#[test]
fn a_revoked_partition_is_not_retried() {
    let mut index = index_of(&night(30));
    let [range] = index.due(shanghai_morning()).try_into().unwrap();
    let at = index.retry(&range, shanghai_morning()).unwrap();
    index.revoke(0);
    assert!(index.due(at).is_empty());
    assert_eq!(index.retry(&range, at), None);
}
