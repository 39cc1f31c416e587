//! Crash without loss: `smsgate run` is killed with SIGKILL at random points
//! while a live stream flows, and restarted each time with the same static
//! membership id (so it takes its partitions back at once). The committed
//! offsets must reach the end, and a read_committed reader of approved ∪
//! quarantine must see:
//! - `exactly_once` (the default): every input decided exactly once;
//! - `at_least_once`: every input at least once, every clean input approved
//!   at least once; the duplicates (decisions made again after a crash)
//!   are printed.

use smsgate_testkit as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, OUTBOUND_PARTITIONS, Topics};
use support::kafka::{self, Collector, Record};
use support::verify::{Delivery, wait_and_verify};

const EVENTS: usize = 30_000;
const KILLS: usize = 4;

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
    let cases = events::clean_stream(&topics.group, EVENTS);
    let records: Vec<Record> = cases.iter().map(|c| c.record.clone()).collect();

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics)
        .instance("crash-0")
        .set("SMSGATE__DELIVERY__GUARANTEE", guarantee);
    let mut gate = Gate::start(&config, "crash-0");
    gate.wait_ready(Duration::from_secs(60));
    // A live stream, up to 1,000 events/s and at most 2,000 ahead of the
    // decisions, so every kill lands with work in flight.
    let producer = kafka::produce_live(
        &broker.bootstrap(),
        &topics.outbound,
        records,
        2000,
        3000,
        collector.progress(),
    );

    let started = Instant::now();
    for i in 0..KILLS {
        // Kill once this instance has worked for a random 0.5–4 s of the live stream.
        let before = collector.count();
        let working =
            support::wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
                collector.count() > before
            });
        assert!(
            working,
            "instance {i} never decided anything; log:\n{}",
            gate.log_tail()
        );
        std::thread::sleep(Duration::from_millis(fastrand::u64(500..4000)));
        let committed = kafka::committed(
            &broker.bootstrap(),
            &topics.group,
            &topics.outbound,
            OUTBOUND_PARTITIONS,
        );
        let status = gate.kill9();
        eprintln!(
            "[crash] kill -9 #{} (pid {}) at {:.1?}: {} outputs so far, {} inputs committed: {status}",
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
    eprintln!(
        "[crash] {guarantee}: {} inputs, {KILLS} kills: {} duplicates ({:.2} %), all decided after {:.1?}",
        positions.len(),
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

    topics.assert_committed_to_end(&broker.bootstrap(), &positions, Duration::from_secs(30));
    let status = gate
        .sigterm(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert!(status.success(), "SIGTERM exit status {status}");
}
