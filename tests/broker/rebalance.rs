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

/// Issue 23.3: a restore of a 1M-entry changelog runs off the rebalance
/// callback, so a rebalance in its middle neither makes the consumer leave
/// the group and restore again in a loop, nor lets a partition be decided
/// before its state is in: while it runs `/readyz` is 503, and once done
/// the upstream retries of remembered ids are all `duplicate`.
#[test]
fn a_rebalance_during_a_1m_entry_restore_neither_loops_nor_decides_early() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use smsgate::contract::decision::Outcome;
    use smsgate::policy::view::Seen;
    use smsgate::state::changelog::{batch_entry, dedup_entry};

    const IDS: usize = 250_000;
    const PER_BATCH: usize = 1000;
    const RETRIES: usize = 200;
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "restore-1m");
    let changelog = format!("{}.gate-state", topics.group);
    broker.create_topics(&[(&changelog, support::gate::OUTBOUND_PARTITIONS)]);

    // Every id remembered in every changelog partition: 1M entries, so a
    // retry finds its memory whichever partition its key picks.
    let writer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let seen = Seen {
        first_at: chrono::Utc::now(),
        outcome: Outcome::Approve,
    };
    let written = Instant::now();
    for chunk in 0..IDS / PER_BATCH {
        let entries: Vec<_> = (chunk * PER_BATCH..(chunk + 1) * PER_BATCH)
            .map(|n| dedup_entry(&format!("{}-c{n}", topics.group), &seen, None))
            .collect();
        for p in 0..support::gate::OUTBOUND_PARTITIONS as i32 {
            let batch = batch_entry(&entries, chrono::Utc::now(), (chunk * 4) as u64 + p as u64);
            let value = batch.value.unwrap();
            loop {
                let record = BaseRecord::to(&changelog)
                    .partition(p)
                    .key(&batch.key)
                    .payload(&value);
                match writer.send(record) {
                    Ok(()) => break,
                    Err(_) => {
                        writer.poll(Duration::from_millis(20));
                    }
                }
            }
        }
        writer.poll(Duration::ZERO);
    }
    writer.flush(Duration::from_secs(120)).unwrap();
    eprintln!(
        "[restore-1m] wrote {} changelog entries in {:.1?}",
        IDS * 4,
        written.elapsed()
    );

    // Upstream retries of remembered ids, and as many new events.
    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let retries: Vec<Case> = (0..RETRIES)
        .map(|n| events::clean(&topics.group, n * (IDS / RETRIES)))
        .collect();
    let fresh: Vec<Case> = (0..RETRIES)
        .map(|n| events::clean(&format!("{}-new", topics.group), n))
        .collect();
    let records: Vec<Record> = retries
        .iter()
        .chain(&fresh)
        .map(|c| c.record.clone())
        .collect();
    let positions =
        support::kafka::TestProducer::new(&broker.bootstrap()).send_all(&topics.outbound, &records);

    let config = GateConfig::new(broker, &topics);
    let mut first = Gate::start(&config, "restore-1m-a");
    let restoring = support::wait_until(Duration::from_secs(60), Duration::from_millis(20), || {
        !first.log_lines("partitions assigned; restoring").is_empty()
    });
    assert!(restoring, "never assigned; log:\n{}", first.log_tail());
    let ready_mid_restore = first.get("/readyz").map(|(s, _)| s);
    // The rebalance in the middle of the restore.
    let mut second = Gate::start(&config, "restore-1m-b");
    let started = Instant::now();
    first.wait_ready(Duration::from_secs(180));
    second.wait_ready(Duration::from_secs(180));
    let ready_after = started.elapsed();
    let done = collector.wait_for(&positions, Duration::from_secs(120), Duration::from_secs(2));
    let restored: Vec<String> = first
        .log_lines("partition state restored")
        .into_iter()
        .chain(second.log_lines("partition state restored"))
        .collect();
    let assigned = first.log_lines("partitions assigned").len();
    eprintln!(
        "[restore-1m] /readyz during the restore: {ready_mid_restore:?}; both ready {ready_after:.1?} after the second joined; first instance assigned {assigned} times; restores: {}",
        restored
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                format!("{} records in {} ms", v["records"], v["ms"])
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(ready_mid_restore, Some(503), "ready while restoring");
    assert!(
        assigned <= 3,
        "assigned {assigned} times: a restore loop; log:\n{}",
        first.log_tail()
    );
    assert!(
        done.is_some(),
        "inputs not decided; log:\n{}",
        first.log_tail()
    );
    let by_source: HashMap<(i32, i64), Vec<String>> =
        collector.outputs().iter().fold(HashMap::new(), |mut m, o| {
            if let Some(s) = &o.source {
                m.entry((s.partition, s.offset))
                    .or_default()
                    .push(o.codes().join(","));
            }
            m
        });
    for (i, pos) in positions.iter().enumerate() {
        let decisions = &by_source[pos];
        assert_eq!(decisions.len(), 1, "input {pos:?} decided {decisions:?}");
        if i < RETRIES {
            assert!(
                decisions[0].split(',').any(|c| c == "duplicate"),
                "retry {pos:?} of a remembered id decided {decisions:?}: decided before its state was in"
            );
        } else {
            assert_eq!(decisions[0], "", "new event {pos:?} decided {decisions:?}");
        }
    }
    first.sigterm(Duration::from_secs(40));
    second.sigterm(Duration::from_secs(40));
}
