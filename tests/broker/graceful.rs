//! Graceful stop: SIGTERM in the middle of a live stream. The gate must stop
//! taking records, finish and commit what is in flight, and exit 0. The
//! committed offsets then mark exactly what was decided: every input below
//! them has a decision (nothing in flight was lost), none at or above them
//! has one (nothing will be decided twice). A restart with the same static
//! membership id continues from there: in the end every input is decided
//! exactly once — zero duplicates.

use smsgate_testkit as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, OUTBOUND_PARTITIONS, Topics};
use support::kafka::{self, Collector, Record};
use support::verify::{Delivery, wait_and_verify};

const EVENTS: usize = 12_000;

#[test]
fn sigterm_drains_commits_and_a_restart_continues_without_duplicates() {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "graceful");
    let cases = events::clean_stream(&topics.group, EVENTS);
    let records: Vec<Record> = cases.iter().map(|c| c.record.clone()).collect();

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics).instance("graceful-0");
    let mut gate = Gate::start(&config, "graceful-1");
    gate.wait_ready(Duration::from_secs(60));
    let producer = kafka::produce_live(
        &broker.bootstrap(),
        &topics.outbound,
        records,
        1000,
        2000,
        collector.progress(),
    );

    let stop_at = EVENTS * 2 / 5;
    let reached = support::wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
        collector.count() >= stop_at
    });
    assert!(
        reached,
        "stream stalled before {stop_at} decisions; log:\n{}",
        gate.log_tail()
    );
    let sent = Instant::now();
    let status = gate
        .sigterm(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("no exit within 40 s of SIGTERM; log:\n{}", gate.log_tail()));
    eprintln!(
        "[graceful] SIGTERM after {stop_at}+ decisions: exit {status} in {:.2?}",
        sent.elapsed()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "exit code after SIGTERM; log:\n{}",
        gate.log_tail()
    );

    // What the stopped gate committed, against what it decided.
    let committed = kafka::committed(
        &broker.bootstrap(),
        &topics.group,
        &topics.outbound,
        OUTBOUND_PARTITIONS,
    );
    std::thread::sleep(Duration::from_secs(2)); // let the collector read the last outputs
    let decided = collector.per_source();

    // The live stream waits for decisions: restart before collecting its positions.
    let mut gate = Gate::start(&config, "graceful-2");
    gate.wait_ready(Duration::from_secs(60));
    let positions = producer.join().expect("producer thread");
    let mut below_without = Vec::new();
    let mut above_with = Vec::new();
    for &(p, o) in &positions {
        let c = committed[&p].unwrap_or(0);
        match (o < c, decided.contains_key(&(p, o))) {
            (true, false) => below_without.push((p, o)),
            (false, true) => above_with.push((p, o)),
            _ => {}
        }
    }
    eprintln!(
        "[graceful] at stop: committed {committed:?}, {} inputs decided; below commit but undecided {}, decided at/above commit {}",
        decided.len(),
        below_without.len(),
        above_with.len()
    );
    assert!(
        below_without.is_empty(),
        "committed past undecided inputs (lost): {:?}",
        &below_without[..below_without.len().min(10)]
    );
    assert!(
        above_with.is_empty(),
        "decided but not committed at a clean stop (would be decided twice): {:?}",
        &above_with[..above_with.len().min(10)]
    );

    let inputs: HashMap<_, Case> = positions.iter().copied().zip(cases).collect();
    let (took, verdict) = wait_and_verify(
        &collector,
        &topics.outbound,
        &positions,
        &inputs,
        Delivery::ExactlyOnce,
        Duration::from_secs(300),
        "graceful",
    );
    assert!(
        took.is_some(),
        "inputs lost after restart; log:\n{}",
        gate.log_tail()
    );
    verdict.assert_ok();
    assert_eq!(verdict.duplicates, 0, "duplicates after a clean stop");

    topics.assert_committed_to_end(&broker.bootstrap(), &positions, Duration::from_secs(30));
    let status = gate
        .sigterm(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "second SIGTERM exit code");
}
