//! Crash without loss: `smsgate run` is killed with SIGKILL at random points
//! while a live stream flows, and restarted each time with the same static
//! membership id (so it takes its partitions back at once). Every input must
//! appear in approved ∪ quarantine at least once, every clean input must be
//! approved at least once, and the committed offsets must reach the end.
//! The number of duplicates (decisions made again after a crash) is printed.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, OUTBOUND_PARTITIONS, Topics};
use support::kafka::{self, Collector, Record};
use support::verify::{Delivery, verify};

const EVENTS: usize = 20_000;
const KILLS: usize = 4;

#[test]
fn kill_9_mid_stream_loses_nothing() {
    let seed = support::seed();
    fastrand::seed(seed);
    eprintln!("[crash] seed {seed} (SMSGATE_TEST_SEED={seed} replays the kill points)");
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "crash");
    let cases = events::clean_stream(&topics.group, EVENTS);
    let records: Vec<Record> = cases.iter().map(|c| c.record.clone()).collect();

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics).instance("crash-0");
    let mut gate = Gate::start(&config, "crash-0");
    gate.wait_ready(Duration::from_secs(60));
    // A live stream: ~5,000 events/s for ~4 s while the gate is killed and restarted.
    let producer = kafka::produce_paced(
        &broker.bootstrap(),
        &topics.outbound,
        records,
        250,
        Duration::from_millis(50),
    );

    let mut points: Vec<usize> = (0..KILLS)
        .map(|_| fastrand::usize(EVENTS / 10..EVENTS * 9 / 10))
        .collect();
    points.sort();
    let started = Instant::now();
    for (i, point) in points.iter().enumerate() {
        let reached =
            support::wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
                collector.count() >= *point
            });
        assert!(
            reached,
            "stream stalled before {point} decisions; log:\n{}",
            gate.log_tail()
        );
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..300)));
        let at = collector.count();
        let status = gate.kill9();
        eprintln!(
            "[crash] kill -9 #{} (pid {}) after {at} decisions at {:.1?}: {status}",
            i + 1,
            gate.pid(),
            started.elapsed()
        );
        gate = Gate::start(&config, &format!("crash-{}", i + 1));
        gate.wait_ready(Duration::from_secs(60));
    }

    let positions = producer.join().expect("producer thread");
    let inputs: HashMap<_, Case> = positions.iter().copied().zip(cases).collect();
    let took = collector.wait_for(&positions, Duration::from_secs(300), Duration::from_secs(3));
    let verdict = verify(
        &topics.outbound,
        &inputs,
        &collector.outputs(),
        Delivery::AtLeastOnce,
    );
    verdict.print("crash");
    eprintln!(
        "[crash] {} inputs, {KILLS} kills: {} duplicates ({:.2} %), all decided after {:.1?}",
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

    let ends = kafka::ends(&positions);
    let committed = kafka::wait_committed(
        &broker.bootstrap(),
        &topics.group,
        &topics.outbound,
        OUTBOUND_PARTITIONS,
        &ends,
        Duration::from_secs(30),
    );
    for (p, end) in &ends {
        assert_eq!(
            committed[p],
            Some(*end),
            "partition {p}: committed offset is not the end"
        );
    }
    let status = gate
        .sigterm(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert!(status.success(), "SIGTERM exit status {status}");
}
