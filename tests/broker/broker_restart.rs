//! Broker restart: the Kafka broker is killed (SIGKILL) while the gate
//! works through a backlog, and started again on the same port and data
//! directory a few seconds later. The gate must ride
//! it out — keep retrying, then resume — and lose nothing: every input ends
//! up decided at least once and the committed offsets reach the end.
//! `/readyz` must go unready during the outage and ready again after.

use smsgate_testkit as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, OUTBOUND_PARTITIONS, Topics};
use support::kafka::{self, Collector, Record, TestProducer};
use support::verify::{Delivery, verify};

// After the restart the gate may lose its assignment and restore its
// partitions' caps and duplicates from the changelog inside the rebalance
// callback. 30,000 events and the kill at the first decision: on Kafka the
// gate decided 10,000 events within a second, before a kill at 1,000 landed.
const EVENTS: usize = 30_000;
const OUTAGE: Duration = Duration::from_secs(5);

#[test]
fn the_gate_rides_out_a_broker_restart_without_loss() {
    let broker = Broker::start("restart-broker");
    let topics = Topics::unique(&broker, "restart");
    let cases = events::clean_stream(&topics.group, EVENTS);
    let records: Vec<Record> = cases.iter().map(|c| c.record.clone()).collect();
    let produced = Instant::now();
    let positions = TestProducer::new(&broker.bootstrap()).send_all(&topics.outbound, &records);
    eprintln!(
        "[restart] produced {EVENTS} events in {:.1?}",
        produced.elapsed()
    );
    let inputs: HashMap<_, Case> = positions.iter().copied().zip(cases).collect();

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    // Default librdkafka timeouts: the gate must ride out the outage with
    // what it ships with.
    let config = GateConfig::new(&broker, &topics).instance("restart-0");
    let mut gate = Gate::start(&config, "restart");
    gate.wait_ready(Duration::from_secs(60));
    let started = Instant::now();
    let kill_at = 1;
    assert!(
        support::wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
            collector.count() >= kill_at
        }),
        "stream stalled before {kill_at} decisions; log:\n{}",
        gate.log_tail()
    );
    broker.kill();
    let at_kill = collector.covered(&positions);
    eprintln!(
        "[restart] broker killed at {:.1?} with {at_kill}/{EVENTS} inputs decided",
        started.elapsed()
    );
    assert!(
        at_kill < EVENTS,
        "the backlog was done before the broker went down"
    );
    let mut readiness = Vec::new();
    let outage = Instant::now();
    // Down for OUTAGE, or longer until the gate reports it (at most 30 s).
    while outage.elapsed() < OUTAGE
        || (!readiness.contains(&Some(503)) && outage.elapsed() < Duration::from_secs(30))
    {
        readiness.push(gate.get("/readyz").map(|(s, _)| s));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        gate.running(),
        "the gate exited while the broker was down; log:\n{}",
        gate.log_tail()
    );
    broker.restart();
    eprintln!(
        "[restart] broker back after {:.1?}; /readyz during the outage: {:?}",
        outage.elapsed(),
        readiness
    );

    assert!(
        readiness.contains(&Some(503)),
        "/readyz never went unready while the broker was down: {readiness:?}"
    );

    // Fail at once, with its log, if the gate gives up after the restart
    // (seen on Kafka: a fatal FencedInstanceId on the consumer).
    support::wait_until(Duration::from_secs(600), Duration::from_millis(200), || {
        collector.covered(&positions) >= EVENTS || !gate.running()
    });
    assert!(
        gate.running(),
        "the gate exited after the broker restart; log:\n{}",
        gate.log_tail()
    );
    let took = collector.wait_for(&positions, Duration::from_secs(600), Duration::from_secs(3));
    let verdict = verify(
        &topics.outbound,
        &inputs,
        &collector.outputs(),
        Delivery::AtLeastOnce,
    );
    verdict.print("restart");
    eprintln!(
        "[restart] {EVENTS} inputs: {} duplicates, all decided after {:.1?}",
        verdict.duplicates,
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
        // After the outage the gate may rejoin, restore its partitions' caps
        // and duplicates from the changelog and re-read what it had not
        // committed before it commits the end.
        Duration::from_secs(300),
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
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");
}
