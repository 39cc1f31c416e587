//! End to end on a real broker (Kafka): consent first, then a
//! few thousand outbound events — clean ones, rejections for every
//! implemented reason code, malformed inputs of every kind — through
//! `smsgate run`. Every input offset must yield exactly one decision,
//! approved records must be the input bytes with the input key, quarantine
//! records must carry the right codes, and the group's committed offsets
//! must reach the end of every partition.

use smsgate_testkit as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, Topics, metric_sum};
use support::kafka::{self, Collector, Record, TestProducer};
use support::verify::{Delivery, verify};

const EVENTS: usize = 3000;

#[test]
fn the_harness_reads_back_what_it_produced() {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "harness");
    let producer = TestProducer::new(&broker.bootstrap());
    let records: Vec<Record> = (0..500)
        .map(|i| Record {
            key: Some(format!("k{i}").into_bytes()),
            value: format!("v{i}").into_bytes(),
        })
        .collect();
    let positions = producer.send_all(&topics.approved, &records);
    assert_eq!(positions.len(), 500);
    let ends = kafka::ends(&positions);
    assert_eq!(
        ends.values().sum::<i64>(),
        500,
        "offsets are dense from 0 per partition"
    );
    let collector = Collector::start(
        &broker.bootstrap(),
        &topics.outbound,
        &[(
            &topics.approved,
            support::gate::OTHER_PARTITIONS,
            kafka::Route::Approved,
        )],
    );
    let read_all = support::wait_until(Duration::from_secs(30), Duration::from_millis(20), || {
        collector.count() == records.len()
    });
    assert!(
        read_all,
        "collector read {} of {} records",
        collector.count(),
        records.len()
    );
    let mut values: Vec<Vec<u8>> = collector.outputs().into_iter().map(|o| o.value).collect();
    values.sort();
    let mut want: Vec<Vec<u8>> = records.iter().map(|r| r.value.clone()).collect();
    want.sort();
    assert_eq!(values, want, "read back exactly what was produced");
    let committed = kafka::committed(&broker.bootstrap(), &topics.group, &topics.outbound, 4);
    assert!(
        committed.values().all(Option::is_none),
        "a new group has no offsets: {committed:?}"
    );
}

#[test]
fn every_input_yields_exactly_one_decision_on_the_right_topic() {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "flow");
    let workload = events::mix(&topics.group, EVENTS);
    let producer = TestProducer::new(&broker.bootstrap());
    producer.send_consent(
        &topics.consent,
        support::gate::OTHER_PARTITIONS,
        &workload.consent,
    );
    let records: Vec<Record> = workload.outbound.iter().map(|c| c.record.clone()).collect();
    let positions = producer.send_all(&topics.outbound, &records);
    let inputs: HashMap<_, Case> = positions.iter().copied().zip(workload.outbound).collect();
    eprintln!(
        "[flow] produced {} consent records, {} outbound events ({} bytes)",
        workload.consent.len(),
        positions.len(),
        records.iter().map(|r| r.value.len()).sum::<usize>()
    );

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let started = Instant::now();
    let mut gate = Gate::start(&GateConfig::new(broker, &topics).instance("flow-0"), "flow");
    let ready_after = gate.wait_ready(Duration::from_secs(60));
    // Time the flow from the first decision, not from the group join.
    let first = support::wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
        collector.count() > 0
    });
    assert!(
        first,
        "no decision within 120 s; gate log:\n{}",
        gate.log_tail()
    );
    let first_after = started.elapsed();
    let took = collector.wait_for(&positions, Duration::from_secs(300), Duration::from_secs(2));

    let verdict = verify(
        &topics.outbound,
        &inputs,
        &collector.outputs(),
        Delivery::ExactlyOnce,
    );
    verdict.print("flow");
    let Some(took) = took else {
        verdict.assert_ok();
        panic!(
            "not every input was decided; gate log:\n{}",
            gate.log_tail()
        );
    };
    eprintln!(
        "[flow] ready after {ready_after:.2?}, first decision after {first_after:.1?} (group join); \
         {} events decided in {took:.2?} from the first decision: {:.0} events/s",
        positions.len(),
        positions.len() as f64 / took.as_secs_f64().max(0.001)
    );
    verdict.assert_ok();
    assert_eq!(collector.unsourced(), 0, "outputs without a source");

    let ends = kafka::ends(&positions);
    let committed = kafka::wait_committed(
        &broker.bootstrap(),
        &topics.group,
        &topics.outbound,
        support::gate::OUTBOUND_PARTITIONS,
        &ends,
        Duration::from_secs(30),
    );
    eprintln!("[flow] end offsets {ends:?}, committed {committed:?}");
    for (p, end) in &ends {
        assert_eq!(
            committed[p],
            Some(*end),
            "partition {p}: committed offset is not the end"
        );
    }

    let (status, _) = gate.get("/healthz").expect("GET /healthz");
    assert_eq!(status, 200, "/healthz");
    let (status, metrics) = gate.get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "/metrics");
    let decisions = metric_sum(&metrics, smsgate::telemetry::metrics::DECISIONS);
    eprintln!(
        "[flow] metrics: {} = {decisions:?}, {} = {:?}",
        smsgate::telemetry::metrics::DECISIONS,
        smsgate::telemetry::metrics::CONSENT_RECORDS,
        metric_sum(&metrics, smsgate::telemetry::metrics::CONSENT_RECORDS)
    );
    assert_eq!(
        decisions,
        Some(positions.len() as f64),
        "decisions counted in /metrics"
    );

    let status = gate
        .sigterm(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert!(
        status.success(),
        "SIGTERM exit status {status}; log:\n{}",
        gate.log_tail()
    );
}
