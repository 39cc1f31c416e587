//! Rebalance: while a live stream flows through one gate, a second instance
//! joins the same consumer group, takes some partitions and decides records,
//! then leaves on SIGTERM. Both use dynamic membership (no
//! `group_instance_id`), so the join and the leave each rebalance the group
//! at once. No input may be lost; duplicates are printed.

use smsgate_testkit as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, Topics};
use support::kafka::{self, Collector, Record};
use support::verify::{Delivery, wait_and_verify};

const EVENTS: usize = 20_000;

#[test]
fn a_second_instance_joins_and_leaves_mid_stream_without_loss() {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "rebalance");
    let cases = events::clean_stream(&topics.group, EVENTS);
    let records: Vec<Record> = cases.iter().map(|c| c.record.clone()).collect();

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics);
    let mut first = Gate::start(&config, "rebalance-a");
    first.wait_ready(Duration::from_secs(60));
    // ~500 events/s for 40 s: long enough for a join and a leave.
    let producer = kafka::produce_live(
        &broker.bootstrap(),
        &topics.outbound,
        records,
        500,
        2000,
        collector.progress(),
    );
    let started = Instant::now();

    let joined_at = EVENTS / 5;
    assert!(
        support::wait_until(Duration::from_secs(120), Duration::from_millis(10), || {
            collector.count() >= joined_at
        }),
        "stream stalled before {joined_at} decisions; log:\n{}",
        first.log_tail()
    );
    let mut second = Gate::start(&config, "rebalance-b");
    second.wait_ready(Duration::from_secs(60));
    eprintln!(
        "[rebalance] second instance ready at {:.1?} after {} decisions",
        started.elapsed(),
        collector.count()
    );
    let took_part =
        support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
            second.consumed() > 0.0
        });
    assert!(
        took_part,
        "the second instance never consumed a record (no rebalance?); log:\n{}",
        second.log_tail()
    );
    std::thread::sleep(Duration::from_secs(2));
    let by_second = second.consumed();
    let status = second.sigterm(Duration::from_secs(40)).unwrap_or_else(|| {
        panic!(
            "second instance did not exit after SIGTERM; log:\n{}",
            second.log_tail()
        )
    });
    eprintln!(
        "[rebalance] second instance consumed {by_second} events, left at {:.1?} after {} decisions: exit {status}",
        started.elapsed(),
        collector.count()
    );
    assert_eq!(status.code(), Some(0), "second instance exit code");

    let positions = producer.join().expect("producer thread");
    let inputs: HashMap<_, Case> = positions.iter().copied().zip(cases).collect();
    let (took, verdict) = wait_and_verify(
        &collector,
        &topics.outbound,
        &positions,
        &inputs,
        Delivery::AtLeastOnce,
        Duration::from_secs(300),
        "rebalance",
    );
    eprintln!(
        "[rebalance] {} inputs: {} duplicates across join and leave, all decided after {:.1?}",
        positions.len(),
        verdict.duplicates,
        started.elapsed()
    );
    assert!(
        took.is_some(),
        "inputs lost; first gate log:\n{}",
        first.log_tail()
    );
    verdict.assert_ok();

    topics.assert_committed_to_end(&broker.bootstrap(), &positions, Duration::from_secs(30));
    let status = first
        .sigterm(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "first instance exit code");
}
