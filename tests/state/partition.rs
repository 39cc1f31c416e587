//! Caps and duplicates survive through the changelog: a store restored
//! from what another store wrote (raw or compacted) answers every CapView /
//! DedupView question the same way; a replayed input after a restore is a
//! duplicate; the 4th marketing text in 24 h is still capped; state older
//! than its window is dropped and tombstoned.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use proptest::prelude::*;
use smsgate::contract::decision::{Decision, Outcome, ReasonCode};
use smsgate::contract::event::{Category, OutboundSms, Recipient};
use smsgate::policy::view::{CapView, DedupView};
use smsgate::policy::{Origin, Policy, Registry};
use smsgate::state::changelog::ChangelogEntry;
use smsgate::state::{ConsentTable, GateView, MemoryState, PartitionState};

const RECIPIENTS: [&str; 3] = ["+8613812345678", "+8613900000000", "+12125551234"];
const SUBJECTS: [&str; 2] = ["sme-loan", "spring-sale"];

/// Cap retention that keeps every approval (the reference store does).
const KEEP_ALL: Option<u32> = Some(u32::MAX);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap()
}

fn store() -> PartitionState {
    PartitionState::new(Duration::hours(24), Duration::hours(24))
}

fn event(id: &str, to: &str, subject: &str, category: Category) -> OutboundSms {
    OutboundSms {
        message_id: id.into(),
        created_at: FixedOffset::east_opt(0)
            .unwrap()
            .from_utc_datetime(&t0().naive_utc()),
        to: to.into(),
        sender: "huinong-credit".into(),
        category,
        body: "【惠农信贷】春季特惠 回T退订".into(),
        campaign_id: None,
        subject: Some(subject.into()),
        template_id: None,
        recipient: Recipient::default(),
        personalized: false,
    }
}

fn decision(id: &str, outcome: Outcome, now: DateTime<Utc>) -> Decision {
    Decision {
        message_id: Some(id.into()),
        outcome,
        reasons: Vec::new(),
        release_at: None,
        policy_version: Arc::from("sha256:test"),
        decided_at: now,
    }
}

/// What a compacted topic keeps: the last record per key, tombstoned keys
/// removed, in first-write order.
fn compact(log: &[ChangelogEntry]) -> Vec<ChangelogEntry> {
    let mut last: HashMap<&[u8], usize> = HashMap::new();
    for (i, e) in log.iter().enumerate() {
        last.insert(&e.key, i);
    }
    let mut keep: Vec<usize> = last
        .into_values()
        .filter(|i| log[*i].value.is_some())
        .collect();
    keep.sort();
    keep.into_iter().map(|i| log[i].clone()).collect()
}

fn restore(log: &[ChangelogEntry]) -> PartitionState {
    let mut s = store();
    for e in log {
        s.apply_changelog(&e.key, e.value.as_deref()).unwrap();
    }
    s
}

fn assert_same_answers(a: &PartitionState, b: &PartitionState, ids: usize, now: DateTime<Utc>) {
    for i in 0..ids {
        let id = format!("m-{i}");
        assert_eq!(a.seen(&id), b.seen(&id), "{id}");
    }
    for to in RECIPIENTS {
        for subject in SUBJECTS {
            for back in [1, 6, 12, 24, 48] {
                let since = now - Duration::hours(back);
                assert_eq!(
                    a.approved_since(to, subject, since),
                    b.approved_since(to, subject, since),
                    "{to} {subject} {back}h"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_restored_store_answers_like_the_original(
        steps in prop::collection::vec(
            (0usize..20, 0..RECIPIENTS.len(), 0..SUBJECTS.len(), 0u8..3, 0u8..3, 0i64..90),
            1..60,
        ),
        prune_every in 5usize..40,
    ) {
        let mut original = store();
        let mut log = Vec::new();
        let mut now = t0();
        for (i, (id, r, s, cat, outcome, minutes)) in steps.into_iter().enumerate() {
            now += Duration::minutes(minutes * 20);
            let category = [Category::Marketing, Category::Notification, Category::Otp][cat as usize];
            let outcome = [Outcome::Approve, Outcome::Defer, Outcome::Reject][outcome as usize];
            let id = format!("m-{id}");
            let ev = event(&id, RECIPIENTS[r], SUBJECTS[s], category);
            log.extend(original.record(&ev, &decision(&id, outcome, now), now, None, None, KEEP_ALL));
            if i % prune_every == 0 {
                log.extend(original.prune(now));
            }
        }
        // A restore replays the log, then prunes to the current time.
        let mut from_log = restore(&log);
        from_log.prune(now);
        let mut from_compacted = restore(&compact(&log));
        from_compacted.prune(now);
        original.prune(now);
        assert_same_answers(&original, &from_log, 20, now);
        assert_same_answers(&original, &from_compacted, 20, now);
        prop_assert_eq!(original.dedup_entries(), from_compacted.dedup_entries());
        prop_assert_eq!(original.cap_keys(), from_compacted.cap_keys());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The compact memories (hashed ids, packed approvals) answer like the
    /// string-keyed reference store within the windows (80 steps of under
    /// 17 minutes stay inside 24 h).
    #[test]
    fn the_compact_memories_answer_like_the_reference_store(
        steps in prop::collection::vec(
            (0usize..30, 0..RECIPIENTS.len(), 0..SUBJECTS.len(), 0u8..3, 0u8..3, 0i64..17),
            1..80,
        ),
    ) {
        let mut compact = store();
        let mut reference = MemoryState::new();
        let mut now = t0();
        for (id, r, s, cat, outcome, minutes) in steps {
            now += Duration::minutes(minutes);
            let category = [Category::Marketing, Category::Notification, Category::Otp][cat as usize];
            let outcome = [Outcome::Approve, Outcome::Defer, Outcome::Reject][outcome as usize];
            let id = format!("m-{id}");
            let ev = event(&id, RECIPIENTS[r], SUBJECTS[s], category);
            let d = decision(&id, outcome, now);
            compact.record(&ev, &d, now, None, None, KEEP_ALL);
            reference.record(&ev, &d, now);
        }
        for i in 0..32 {
            let id = format!("m-{i}");
            prop_assert_eq!(compact.seen(&id), reference.seen(&id), "{}", id);
        }
        for to in RECIPIENTS {
            for subject in SUBJECTS {
                for back in [0, 30, 60, 600, 1440] {
                    let since = now - Duration::minutes(back);
                    prop_assert_eq!(
                        compact.approved_since(to, subject, since),
                        reference.approved_since(to, subject, since)
                    );
                }
            }
        }
    }
}

fn policy() -> Policy {
    Policy::with_registry(
        Registry::parse("[senders.huinong-credit]\nbrand = \"惠农信贷\"\n").unwrap(),
    )
}

#[test]
fn a_replayed_input_after_restore_is_a_duplicate() {
    let policy = policy();
    let consent = ConsentTable::new();
    let mut before = store();
    let ev = event("m-42", RECIPIENTS[0], SUBJECTS[0], Category::Notification);
    let view = GateView::new(&consent, &before, None);
    let first = policy.decide(&ev, Origin::Intake, &view, t0());
    assert!(!first.has(ReasonCode::Duplicate));
    let log = before.record(&ev, &first, t0(), None, None, KEEP_ALL);

    // kill -9: the input offset was not committed, the changelog was written.
    let after = restore(&log);
    let view = GateView::new(&consent, &after, None);
    let replay = policy.decide(&ev, Origin::Intake, &view, t0() + Duration::minutes(1));
    assert!(replay.has(ReasonCode::Duplicate));
    assert_eq!(replay.outcome, Outcome::Reject);
}

/// CONTRACT §7 / issue 23.1: a crash after the changelog record was written
/// but before the input offset was committed reads the same input record
/// again. It is decided as the first time (its output may never have been
/// written); an upstream retry, another record with the same id, is still
/// a `duplicate`, and a duplicate leaves the memory of the first decision.
#[test]
fn a_re_read_of_the_same_input_record_is_decided_again_not_a_duplicate() {
    let policy = policy();
    let consent = ConsentTable::new();
    let mut before = store();
    let ev = event("m-42", RECIPIENTS[0], SUBJECTS[0], Category::Notification);
    let first = policy.decide(
        &ev,
        Origin::Intake,
        &GateView::new(&consent, &before, Some(7)),
        t0(),
    );
    assert!(!first.has(ReasonCode::Duplicate));
    let mut log = before.record(&ev, &first, t0(), Some(7), None, KEEP_ALL);

    // An upstream retry at offset 9 is a duplicate and changes nothing.
    let view = GateView::new(&consent, &before, Some(9));
    let retry = policy.decide(&ev, Origin::Intake, &view, t0());
    assert!(retry.has(ReasonCode::Duplicate));
    assert!(view.earlier().is_none());
    let earlier = view.earlier();
    log.extend(before.record(&ev, &retry, t0(), Some(9), earlier, KEEP_ALL));

    // kill -9: offset 7 was not committed, the changelog was written.
    let after = restore(&compact(&log));
    let later = t0() + Duration::minutes(1);
    let view = GateView::new(&consent, &after, Some(7));
    let again = policy.decide(&ev, Origin::Intake, &view, later);
    assert!(!again.has(ReasonCode::Duplicate), "{:?}", again.reasons);
    assert_eq!(again.outcome, first.outcome);
    assert_eq!(view.earlier().map(|e| e.outcome), Some(first.outcome));
    let earlier = view.earlier();
    let mut after = after;
    assert!(
        after
            .record(&ev, &again, later, Some(7), earlier, KEEP_ALL)
            .is_empty()
    );
    // The retry read again is still a duplicate.
    let view = GateView::new(&consent, &after, Some(9));
    assert!(
        policy
            .decide(&ev, Origin::Intake, &view, later)
            .has(ReasonCode::Duplicate)
    );
}

/// A re-read of the record whose approval reached the cap does not count
/// that approval twice, and the next text is still capped.
#[test]
fn a_re_read_at_the_cap_counts_its_own_approval_once() {
    let consent = ConsentTable::new();
    let mut s = store();
    let mut log = Vec::new();
    for i in 0..3 {
        let now = t0() + Duration::hours(i);
        let id = format!("m-{i}");
        let ev = event(&id, RECIPIENTS[0], SUBJECTS[0], Category::Marketing);
        log.extend(s.record(
            &ev,
            &decision(&id, Outcome::Approve, now),
            now,
            Some(i),
            None,
            KEEP_ALL,
        ));
    }
    let mut after = restore(&compact(&log));
    let now = t0() + Duration::hours(4);
    let since = now - Duration::hours(24);

    let view = GateView::new(&consent, &after, Some(2));
    assert!(
        view.seen("m-2").is_none(),
        "its own earlier decision is hidden"
    );
    assert_eq!(view.approved_since(RECIPIENTS[0], SUBJECTS[0], since), 2);
    let earlier = view.earlier();
    let ev = event("m-2", RECIPIENTS[0], SUBJECTS[0], Category::Marketing);
    let again = after.record(
        &ev,
        &decision("m-2", Outcome::Approve, now),
        now,
        Some(2),
        earlier,
        KEEP_ALL,
    );
    assert!(again.is_empty(), "nothing new to remember");
    assert_eq!(after.approved_since(RECIPIENTS[0], SUBJECTS[0], since), 3);

    // The next record sees all three.
    let view = GateView::new(&consent, &after, Some(3));
    assert!(view.seen("m-3").is_none());
    assert_eq!(view.approved_since(RECIPIENTS[0], SUBJECTS[0], since), 3);
    assert!(view.earlier().is_none());
}

#[test]
fn the_fourth_marketing_in_24h_is_still_capped_after_restore() {
    let mut before = store();
    let mut log = Vec::new();
    for i in 0..3 {
        let now = t0() + Duration::hours(i * 6);
        let id = format!("m-{i}");
        let ev = event(&id, RECIPIENTS[0], SUBJECTS[0], Category::Marketing);
        log.extend(before.record(
            &ev,
            &decision(&id, Outcome::Approve, now),
            now,
            None,
            None,
            KEEP_ALL,
        ));
    }
    // Compaction keeps only the latest cap record: it holds all three times.
    let after = restore(&compact(&log));
    let fourth_at = t0() + Duration::hours(20);
    let window_start = fourth_at - Duration::hours(24);
    // The cap rule (3 per 24 h) reads this count: a 4th is rejected.
    assert_eq!(
        after.approved_since(RECIPIENTS[0], SUBJECTS[0], window_start),
        3
    );
    // Another subject or recipient is not affected.
    assert_eq!(
        after.approved_since(RECIPIENTS[0], SUBJECTS[1], window_start),
        0
    );
    assert_eq!(
        after.approved_since(RECIPIENTS[1], SUBJECTS[0], window_start),
        0
    );
    // Once the first approval leaves the window, only two count.
    let later = t0() + Duration::hours(25);
    assert_eq!(
        after.approved_since(RECIPIENTS[0], SUBJECTS[0], later - Duration::hours(24)),
        2
    );
}

#[test]
fn only_approved_marketing_counts_against_caps() {
    let mut s = store();
    for (i, (category, outcome)) in [
        (Category::Marketing, Outcome::Reject),
        (Category::Marketing, Outcome::Defer),
        (Category::Notification, Outcome::Approve),
        (Category::Otp, Outcome::Approve),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("m-{i}");
        s.record(
            &event(&id, RECIPIENTS[0], SUBJECTS[0], category),
            &decision(&id, outcome, t0()),
            t0(),
            None,
            None,
            KEEP_ALL,
        );
    }
    assert_eq!(
        s.approved_since(RECIPIENTS[0], SUBJECTS[0], t0() - Duration::hours(24)),
        0
    );
    assert_eq!(s.dedup_entries(), 4);
}

#[test]
fn state_older_than_its_window_is_dropped_and_tombstoned() {
    // Single `dedup/` and `cap/` records (the format before batch records)
    // restored, then expired: each gets its own tombstone.
    let mut writer = store();
    let mut log = Vec::new();
    let ev = event("m-1", RECIPIENTS[0], SUBJECTS[0], Category::Marketing);
    log.extend(writer.record(
        &ev,
        &decision("m-1", Outcome::Approve, t0()),
        t0(),
        None,
        None,
        KEEP_ALL,
    ));
    let mut s = restore(&log);
    assert_eq!((s.dedup_entries(), s.cap_keys()), (1, 1));
    let tombstones = s.prune(t0() + Duration::hours(24) + Duration::seconds(1));
    assert_eq!(tombstones.len(), 2);
    assert!(tombstones.iter().all(|e| e.value.is_none()));
    assert_eq!(s.dedup_entries(), 0);
    assert_eq!(s.cap_keys(), 0);
    log.extend(tombstones);
    // The compacted changelog forgets it as well.
    assert!(compact(&log).is_empty());
}

#[test]
fn a_deferred_event_is_not_a_duplicate_of_itself_at_release_but_a_second_release_is() {
    let policy = policy();
    let consent = ConsentTable::new();
    let ev = event("m-7", RECIPIENTS[0], SUBJECTS[0], Category::Notification);
    let mut s = store();
    let mut log = s.record(
        &ev,
        &decision("m-7", Outcome::Defer, t0()),
        t0(),
        None,
        None,
        KEEP_ALL,
    );

    let held = restore(&log);
    let view = GateView::new(&consent, &held, None);
    let release_at = t0() + Duration::hours(10);
    let released = policy.decide(&ev, Origin::Release, &view, release_at);
    assert!(!released.has(ReasonCode::Duplicate));
    log.extend(s.record(&ev, &released, release_at, None, None, KEEP_ALL));

    // After a restart the deferred record is read again: now a duplicate.
    let restarted = restore(&compact(&log));
    assert_eq!(restarted.seen("m-7").map(|x| x.first_at), Some(t0()));
    let view = GateView::new(&consent, &restarted, None);
    let again = policy.decide(
        &ev,
        Origin::Release,
        &view,
        release_at + Duration::minutes(1),
    );
    assert!(again.has(ReasonCode::Duplicate));
}

#[test]
fn only_recipient_keys_count_as_recipient_keyed() {
    use smsgate::state::partition::key_is_recipient;
    assert!(key_is_recipient(Some(b"+8613812345678"), "+8613812345678"));
    assert!(!key_is_recipient(Some(b"m-1"), "+8613812345678"));
    assert!(!key_is_recipient(None, "+8613812345678"));
}

#[test]
fn a_batch_record_restores_like_its_entries_and_is_deleted_after_the_windows() {
    let mut writer = store();
    let mut entries = Vec::new();
    for (i, to) in RECIPIENTS.iter().enumerate() {
        let id = format!("m-{i}");
        let ev = event(&id, to, SUBJECTS[0], Category::Marketing);
        entries.extend(writer.record(
            &ev,
            &decision(&id, Outcome::Approve, t0()),
            t0(),
            None,
            None,
            KEEP_ALL,
        ));
    }
    let batch = writer.seal(&entries, t0());
    assert!(batch.key.starts_with(b"batch/"));
    assert_eq!(writer.batch_records(), 1);

    // One Kafka record carries all six entries; a restore from it alone
    // answers like the writer.
    let mut reader = store();
    reader
        .apply_changelog(&batch.key, batch.value.as_deref())
        .unwrap();
    for (i, to) in RECIPIENTS.iter().enumerate() {
        let id = format!("m-{i}");
        assert_eq!(reader.seen(&id), writer.seen(&id));
        assert_eq!(
            reader.approved_since(to, SUBJECTS[0], t0() - Duration::hours(1)),
            1
        );
    }
    assert_eq!(reader.batch_records(), 1);
    // A second batch from the same writer never reuses the key.
    assert_ne!(writer.seal(&[], t0()).key, batch.key);

    // Past both windows, the prune deletes the batch with one tombstone.
    let tombstones = reader.prune(t0() + Duration::hours(24) + Duration::seconds(1));
    assert!(
        tombstones
            .iter()
            .any(|e| e.key == batch.key && e.value.is_none())
    );
    assert_eq!(reader.batch_records(), 0);
    assert_eq!(reader.dedup_entries(), 0);
    // Read back, a batch tombstone forgets the batch.
    let mut again = store();
    again
        .apply_changelog(&batch.key, batch.value.as_deref())
        .unwrap();
    again.apply_changelog(&batch.key, None).unwrap();
    assert_eq!(again.batch_records(), 0);
}

#[test]
fn a_prune_deletes_batches_whole_and_single_records_by_key() {
    let mut s = store();
    let ev = event("m-1", RECIPIENTS[0], SUBJECTS[0], Category::Marketing);
    let entries = s.record(
        &ev,
        &decision("m-1", Outcome::Approve, t0()),
        t0(),
        None,
        None,
        KEEP_ALL,
    );
    let written = s.seal(&entries, t0());
    let later = t0() + Duration::hours(24) + Duration::seconds(1);
    // The batch expires whole: its entries need no tombstones of their own.
    assert_eq!(s.prune(later), vec![tombstone(&written.key)]);
    assert_eq!((s.dedup_entries(), s.cap_keys()), (0, 0));
    assert_eq!(s.batch_records(), 0);

    // Entries restored from single records (the format before batches)
    // get a tombstone record each, so the compacted topic forgets them.
    let legacy = store().record(
        &ev,
        &decision("m-1", Outcome::Approve, t0()),
        t0(),
        None,
        None,
        KEEP_ALL,
    );
    let mut s = restore(&legacy);
    let entries = s.record(
        &event("m-2", RECIPIENTS[1], SUBJECTS[0], Category::Otp),
        &decision("m-2", Outcome::Approve, t0()),
        t0(),
        None,
        None,
        KEEP_ALL,
    );
    let written = s.seal(&entries, t0());
    let out = s.prune(later);
    assert_eq!(out.len(), legacy.len() + 1, "{out:?}");
    assert!(out.iter().all(|e| e.value.is_none()));
    let mut log = legacy.clone();
    log.push(written);
    log.extend(out);
    assert_eq!(compact(&log), Vec::new());
    assert_eq!(s.batch_records(), 0);
}

fn tombstone(key: &[u8]) -> ChangelogEntry {
    ChangelogEntry {
        key: key.to_vec(),
        value: None,
    }
}

/// Issue 23.7: a pair's memory holds only what its cap rule can count (the
/// latest `max` approvals), and nothing when the recipient's pack has no
/// cap rule, so no pair's changelog entry grows with its traffic.
#[test]
fn cap_memory_keeps_only_what_the_cap_rule_counts() {
    let mut s = store();
    let since = t0() - Duration::hours(24);
    let mut last = Vec::new();
    for i in 0..1000 {
        let now = t0() + Duration::seconds(i);
        let id = format!("m-{i}");
        let ev = event(&id, RECIPIENTS[0], SUBJECTS[0], Category::Marketing);
        last = s.record(
            &ev,
            &decision(&id, Outcome::Approve, now),
            now,
            None,
            None,
            Some(3),
        );
    }
    let cap = last.iter().find(|e| e.key.starts_with(b"cap/")).unwrap();
    let value = String::from_utf8(cap.value.clone().unwrap()).unwrap();
    assert_eq!(value.matches(',').count(), 2, "three times kept: {value}");
    assert_eq!(s.approved_since(RECIPIENTS[0], SUBJECTS[0], since), 3);
    // Restored from that entry, the cap still answers "3 reached".
    let restored = restore(&last);
    assert_eq!(
        restored.approved_since(RECIPIENTS[0], SUBJECTS[0], since),
        3
    );

    // No cap rule for the recipient: duplicates only.
    let mut s = store();
    let ev = event("m-x", RECIPIENTS[1], SUBJECTS[0], Category::Marketing);
    let entries = s.record(
        &ev,
        &decision("m-x", Outcome::Approve, t0()),
        t0(),
        None,
        None,
        None,
    );
    assert_eq!(entries.len(), 1);
    assert!(entries[0].key.starts_with(b"dedup/"));
    assert_eq!(s.cap_keys(), 0);
}

#[test]
fn the_shipped_packs_say_how_many_approvals_a_pair_needs() {
    let policy = policy();
    assert_eq!(
        policy.cap_retention("+8613812345678", Category::Marketing),
        Some(3)
    );
    assert_eq!(
        policy.cap_retention("+12125551234", Category::Marketing),
        Some(3)
    );
    assert_eq!(
        policy.cap_retention("+8613812345678", Category::Notification),
        None
    );
    assert_eq!(
        policy.cap_retention("+447700900123", Category::Marketing),
        None
    );
}

/// Issue 23.7: `state.max_dedup_entries` bounds the duplicate memory; past
/// it (by a tenth) the oldest ids are forgotten down to nine tenths, and
/// every forgotten id is counted for `smsgate_dedup_evicted_total`.
#[test]
fn the_duplicate_memory_forgets_its_oldest_ids_at_its_bound() {
    let mut s = store().with_max_dedup(1000);
    let mut peak = 0;
    for i in 0..5000 {
        let now = t0() + Duration::milliseconds(i);
        let id = format!("m-{i}");
        let ev = event(&id, RECIPIENTS[0], SUBJECTS[0], Category::Notification);
        s.record(
            &ev,
            &decision(&id, Outcome::Approve, now),
            now,
            None,
            None,
            None,
        );
        peak = peak.max(s.dedup_entries());
    }
    assert!(peak <= 1100, "peak {peak}");
    let left = s.dedup_entries();
    assert!((900..=1100).contains(&left), "{left}");
    assert_eq!(s.take_evicted(), 5000 - left as u64);
    assert_eq!(s.take_evicted(), 0, "taken once");
    // The newest are kept, the oldest forgotten.
    assert!(s.seen("m-4999").is_some());
    assert!(s.seen("m-0").is_none());
    // The periodic prune brings it back under the bound itself.
    let _ = s.prune(t0() + Duration::seconds(10));
    assert!(s.dedup_entries() <= 1000);

    // A restore brings every forgotten id back from its batch record; the
    // restorer puts the state under the bound before it decides, without
    // counting those again.
    let mut writer = store();
    let mut log = Vec::new();
    for i in 0..5000 {
        let now = t0() + Duration::milliseconds(i);
        let id = format!("m-{i}");
        let ev = event(&id, RECIPIENTS[0], SUBJECTS[0], Category::Notification);
        let entries = writer.record(
            &ev,
            &decision(&id, Outcome::Approve, now),
            now,
            None,
            None,
            None,
        );
        log.push(writer.seal(&entries, now));
    }
    let mut restored = store().with_max_dedup(1000);
    for e in &log {
        restored
            .apply_changelog(&e.key, e.value.as_deref())
            .unwrap();
    }
    assert_eq!(restored.dedup_entries(), 5000);
    restored.bound_restored();
    assert!(restored.dedup_entries() <= 1000);
    assert_eq!(restored.take_evicted(), 0, "counted when first forgotten");
    assert!(restored.seen("m-4999").is_some());
}
