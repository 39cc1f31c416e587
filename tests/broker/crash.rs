//! Crash without loss: `smsgate run` is killed with SIGKILL at random points
//! while a live stream of 50,000 inputs flows, five times, and restarted
//! each time with the same static membership id (so it takes its
//! partitions back at once). Mixed into the stream: marketing texts to 40
//! (recipient, subject) pairs with consent, 6 per pair spread over the whole
//! stream, so frequency caps are at work across every kill. The committed
//! offsets must reach the end, and a read_committed reader of approved ∪
//! quarantine ∪ deferred must see:
//! - `exactly_once` (the default): every input decided exactly once, the
//!   first 3 texts of each pair approved and the others `frequency_cap`;
//! - `at_least_once`: every input at least once, every clean input approved
//!   at least once, no pair over its cap in distinct messages, and no
//!   re-read input quarantined as its own `duplicate`; the repeats
//!   (decisions made again after a crash) are printed.

use smsgate_testkit as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, OTHER_PARTITIONS, OUTBOUND_PARTITIONS, Topics};
use support::kafka::{self, Collector, Record, TestProducer};
use support::verify::{Approvals, Delivery, assert_key_order, wait_and_verify};

const EVENTS: usize = 50_000;
const KILLS: usize = 5;
/// (recipient, subject) pairs that get marketing, and texts per pair.
const PAIRS: usize = 40;
const PER_PAIR: usize = 6;
/// The CN pack's cap: 3 marketing texts per recipient and subject in 24 h.
const CAP: usize = 3;

#[test]
fn kill_9_mid_stream_decides_every_input_exactly_once() {
    kill_9_mid_stream("exactly_once", Delivery::ExactlyOnce);
}

#[test]
fn kill_9_mid_stream_at_least_once_loses_nothing() {
    kill_9_mid_stream("at_least_once", Delivery::AtLeastOnce);
}

fn kill_9_mid_stream(guarantee: &str, delivery: Delivery) {
    let seed = support::seed();
    fastrand::seed(seed);
    eprintln!("[crash] seed {seed} (SMSGATE_TEST_SEED={seed} replays the kill points)");
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "crash");
    let workload = events::capped_stream(&topics.group, EVENTS, PAIRS, PER_PAIR, CAP);
    let cases = workload.outbound;
    let records: Vec<Record> = cases.iter().map(|c| c.record.clone()).collect();
    // The opt-ins are read before the first decision (the gate waits for
    // its consent table).
    TestProducer::new(&broker.bootstrap()).send_consent(
        &topics.consent,
        OTHER_PARTITIONS,
        &workload.consent,
    );

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics)
        .instance("crash-0")
        .set("SMSGATE__DELIVERY__GUARANTEE", guarantee);
    let mut gate = Gate::start(&config, "crash-0");
    gate.wait_ready(Duration::from_secs(60));
    // A live stream, up to 2,000 events/s (about 1,000 on this test's
    // 2-core machine) and at most 3,000 ahead of the decisions, so every
    // kill lands with work in flight.
    let producer = kafka::produce_live(
        &broker.bootstrap(),
        &topics.outbound,
        records,
        2000,
        3000,
        collector.progress(),
    );

    // One kill point in each of KILLS equal slices of the stream (by
    // outputs seen), at a random place in its slice: the kills spread over
    // the whole stream, and so over the life of every pair's cap.
    let (first, last) = (EVENTS / 20, EVENTS * 9 / 10);
    let slice = (last - first) / KILLS;
    let started = Instant::now();
    for i in 0..KILLS {
        let at = first + i * slice + fastrand::usize(0..slice);
        // …and always after this instance has decided something.
        let before = collector.count();
        let working =
            support::wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
                let now = collector.count();
                now > before && now >= at
            });
        assert!(
            working,
            "instance {i} stalled at {} outputs (kill point {at}); log:\n{}",
            collector.count(),
            gate.log_tail()
        );
        let committed = kafka::committed(
            &broker.bootstrap(),
            &topics.group,
            &topics.outbound,
            OUTBOUND_PARTITIONS,
        );
        let status = gate.kill9();
        eprintln!(
            "[crash] kill -9 #{} (pid {}) at {:.1?}: {} outputs so far (kill point {at}), {} inputs committed: {status}",
            i + 1,
            gate.pid(),
            started.elapsed(),
            collector.count(),
            committed.values().flatten().sum::<i64>(),
        );
        gate = Gate::start(&config, &format!("crash-{}", i + 1));
        gate.wait_ready(Duration::from_secs(60));
    }

    let positions = producer.join().expect("producer thread");
    assert_key_order(&cases, &positions);
    let inputs: HashMap<_, Case> = positions.iter().copied().zip(cases).collect();
    let (took, verdict) = wait_and_verify(
        &collector,
        &topics.outbound,
        &positions,
        &inputs,
        delivery,
        Duration::from_secs(300),
        "crash",
    );
    let approvals = Approvals::read(&collector.outputs());
    approvals.print("crash");
    eprintln!(
        "[crash] {guarantee}: {} inputs ({} marketing to {PAIRS} pairs), {KILLS} kills: {} duplicates ({:.2} %), all decided after {:.1?}",
        positions.len(),
        PAIRS * PER_PAIR,
        verdict.duplicates,
        100.0 * verdict.duplicates as f64 / positions.len() as f64,
        started.elapsed()
    );
    assert!(
        took.is_some(),
        "inputs lost; gate log:\n{}",
        gate.log_tail()
    );
    verdict.assert_ok();
    // Issue 23.1: a re-read input is decided as the first time, never
    // quarantined as its own `duplicate` (the changelog remembers which
    // input record each decision was for).
    assert_eq!(
        verdict.replayed_as_duplicate, 0,
        "re-read inputs quarantined as their own duplicates"
    );
    approvals.assert_capped(PAIRS, CAP, delivery);

    topics.assert_committed_to_end(&broker.bootstrap(), &positions, Duration::from_secs(30));
    let status = gate
        .sigterm(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert!(status.success(), "SIGTERM exit status {status}");
}
