//! Failover, exactly once: two instances with static membership ids decide a
//! live stream (with marketing to capped (recipient, subject) pairs mixed
//! in), a third joins and takes its share, then one of the first two is
//! killed with SIGKILL and never comes back. Its partitions move to the
//! survivors once its session times out (a static member's leave is not
//! announced), after the broker aborted its open transaction; the survivors
//! restore their state from the committed changelog. A read_committed reader
//! of approved ∪ quarantine ∪ deferred must see every input decided exactly
//! once, no pair over its cap, and the committed offsets must reach the end.

use smsgate_testkit as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, OTHER_PARTITIONS, Topics};
use support::kafka::{self, Collector, Record, TestProducer};
use support::verify::{Approvals, Delivery, assert_key_order, wait_and_verify};

const EVENTS: usize = 30_000;
const PAIRS: usize = 20;
const PER_PAIR: usize = 6;
const CAP: usize = 3;

#[test]
fn a_third_instance_joins_then_one_dies_for_good_and_every_input_is_decided_once() {
    let seed = support::seed();
    fastrand::seed(seed);
    eprintln!("[failover] seed {seed} (SMSGATE_TEST_SEED={seed} replays the choice of victim)");
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "failover");
    let workload = events::capped_stream(&topics.group, EVENTS, PAIRS, PER_PAIR, CAP);
    let cases = workload.outbound;
    let records: Vec<Record> = cases.iter().map(|c| c.record.clone()).collect();
    TestProducer::new(&broker.bootstrap()).send_consent(
        &topics.consent,
        OTHER_PARTITIONS,
        &workload.consent,
    );

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics);
    let start = |id: &str| {
        let mut g = Gate::start(&config.clone().instance(id), id);
        g.wait_ready(Duration::from_secs(60));
        g
    };
    let mut gates = vec![start("failover-a"), start("failover-b")];
    // ~1,000 events/s on this machine, at most 2,000 ahead of the decisions.
    let producer = kafka::produce_live(
        &broker.bootstrap(),
        &topics.outbound,
        records,
        1000,
        2000,
        collector.progress(),
    );
    let started = Instant::now();
    let both = support::wait_until(Duration::from_secs(90), Duration::from_millis(100), || {
        gates.iter().all(|g| g.consumed() > 0.0)
    });
    assert!(
        both,
        "the first two instances do not both decide; logs:\n{}\n{}",
        gates[0].log_tail(),
        gates[1].log_tail()
    );
    eprintln!(
        "[failover] a and b both deciding at {:.1?} ({} outputs)",
        started.elapsed(),
        collector.count()
    );

    let joined_at = EVENTS / 4;
    assert!(
        support::wait_until(Duration::from_secs(120), Duration::from_millis(10), || {
            collector.count() >= joined_at
        }),
        "stream stalled before {joined_at} outputs"
    );
    gates.push(start("failover-c"));
    let c_works = support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        gates[2].consumed() > 0.0
    });
    assert!(
        c_works,
        "the third instance never consumed a record; log:\n{}",
        gates[2].log_tail()
    );
    eprintln!(
        "[failover] c joined and decides at {:.1?} ({} outputs)",
        started.elapsed(),
        collector.count()
    );

    // Let the three share the stream for a while, then kill a or b for good.
    std::thread::sleep(Duration::from_millis(fastrand::u64(1000..4000)));
    let victim = fastrand::usize(0..2);
    let consumed_by_victim = gates[victim].consumed();
    let at = collector.count();
    let mut dead = gates.remove(victim);
    let status = dead.kill9();
    let killed = started.elapsed();
    eprintln!(
        "[failover] kill -9 {} (pid {}) at {killed:.1?} after it consumed {consumed_by_victim} events, {at} outputs so far: {status}; not restarted",
        dead.name,
        dead.pid()
    );

    let positions = producer.join().expect("producer thread");
    assert_key_order(&cases, &positions);
    let inputs: HashMap<_, Case> = positions.iter().copied().zip(cases).collect();
    let (took, verdict) = wait_and_verify(
        &collector,
        &topics.outbound,
        &positions,
        &inputs,
        Delivery::ExactlyOnce,
        Duration::from_secs(300),
        "failover",
    );
    let approvals = Approvals::read(&collector.outputs());
    approvals.print("failover");
    let survivors: Vec<String> = gates
        .iter()
        .map(|g| format!("{} consumed {}", g.name, g.consumed()))
        .collect();
    eprintln!(
        "[failover] {} inputs: {} duplicates; all decided after {:.1?} ({:.1?} after the kill); survivors: {}",
        positions.len(),
        verdict.duplicates,
        started.elapsed(),
        started.elapsed() - killed,
        survivors.join(", ")
    );
    assert!(
        took.is_some(),
        "inputs lost; survivor logs:\n{}\n{}",
        gates[0].log_tail(),
        gates[1].log_tail()
    );
    verdict.assert_ok();
    approvals.assert_capped(PAIRS, CAP, Delivery::ExactlyOnce);

    topics.assert_committed_to_end(&broker.bootstrap(), &positions, Duration::from_secs(30));
    for g in &mut gates {
        let status = g
            .sigterm(Duration::from_secs(40))
            .unwrap_or_else(|| panic!("{} did not exit after SIGTERM", g.name));
        assert_eq!(status.code(), Some(0), "{} exit code", g.name);
    }
}
