//! Frequency caps and duplicates survive on a real broker (Kafka): the gate
//! writes them to its changelog topic before committing the inputs that
//! produced them and restores a partition's state when it is assigned. So
//! after a restart, after `kill -9`, and after a partition moves to another
//! instance of the group, the 4th marketing text to one (recipient, subject)
//! in 24 h is still rejected (`frequency_cap`) and a replayed input is a
//! `duplicate`, never approved twice.

use smsgate_testkit as support;

use std::time::Duration;

use support::broker::Broker;
use support::events::cn_number;
use support::gate::{Gate, GateConfig, OTHER_PARTITIONS, Topics};
use support::kafka::{Collector, Position, Record, TestProducer};
use support::marketing::{afternoon_marketing, decided, opt_in};

/// The cap of the CN pack: 3 marketing texts per recipient and subject in 24 h.
const CAP: usize = 3;

fn send_in_order(producer: &TestProducer, topic: &str, records: &[Record]) -> Vec<Position> {
    records
        .iter()
        .map(|r| producer.send_all(topic, std::slice::from_ref(r))[0])
        .collect()
}

struct Setup {
    broker: &'static Broker,
    topics: Topics,
    producer: TestProducer,
    collector: Collector,
    config: GateConfig,
    to: String,
}

fn setup(name: &str, n: usize) -> Setup {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, name);
    let producer = TestProducer::new(&broker.bootstrap());
    let to = cn_number(70_000_000 + n);
    producer.send_consent(&topics.consent, OTHER_PARTITIONS, &[opt_in(&to)]);
    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics);
    Setup {
        broker,
        topics,
        producer,
        collector,
        config,
        to,
    }
}

#[test]
fn a_restart_keeps_caps_and_duplicates() {
    let s = setup("caps-restart", 1);
    let tag = &s.topics.group;
    let texts: Vec<Record> = (0..=CAP)
        .map(|i| afternoon_marketing(&format!("{tag}-m{i}"), &s.to))
        .collect();

    let mut first = Gate::start(&s.config, "caps-restart-a");
    first.wait_ready(Duration::from_secs(60));
    let before = send_in_order(&s.producer, &s.topics.outbound, &texts[..2]);
    let got = decided(&s.collector, &before, &first);
    for p in &before {
        assert_eq!(got[p], vec!["approve"], "text at {p:?} before the restart");
    }
    let status = first.sigterm(Duration::from_secs(40)).expect("exit");
    assert_eq!(status.code(), Some(0));

    let mut second = Gate::start(&s.config, "caps-restart-b");
    second.wait_ready(Duration::from_secs(60));
    // The third text is still under the cap, the fourth is over it, and a
    // replay of the first text is a duplicate.
    let after = send_in_order(
        &s.producer,
        &s.topics.outbound,
        &[texts[2].clone(), texts[3].clone(), texts[0].clone()],
    );
    let got = decided(&s.collector, &after, &second);
    assert_eq!(got[&after[0]], vec!["approve"], "3rd text: under the cap");
    assert!(
        got[&after[1]][0].split(',').any(|c| c == "frequency_cap"),
        "4th text after a restart: {:?}; log:\n{}",
        got[&after[1]],
        second.log_tail()
    );
    assert!(
        got[&after[2]][0].split(',').any(|c| c == "duplicate"),
        "replayed 1st text after a restart: {:?}",
        got[&after[2]]
    );
    second.sigterm(Duration::from_secs(40));
    let _ = s.broker;
}

#[test]
fn kill_9_between_produce_and_commit_does_not_approve_twice() {
    let s = setup("caps-kill", 2);
    let tag = &s.topics.group;
    let texts: Vec<Record> = (0..=CAP)
        .map(|i| afternoon_marketing(&format!("{tag}-m{i}"), &s.to))
        .collect();

    let mut first = Gate::start(&s.config, "caps-kill-a");
    first.wait_ready(Duration::from_secs(60));
    let positions = send_in_order(&s.producer, &s.topics.outbound, &texts[..CAP]);
    decided(&s.collector, &positions, &first);
    // Outputs are acknowledged; the offsets are committed at most once a
    // second, so the kill most likely leaves some of them uncommitted.
    first.kill9();
    let committed = support::kafka::committed(
        &s.broker.bootstrap(),
        &s.topics.group,
        &s.topics.outbound,
        support::gate::OUTBOUND_PARTITIONS,
    );
    let partition = positions[0].0;
    let uncommitted = positions
        .iter()
        .filter(|(_, o)| committed[&partition].is_none_or(|c| c <= *o))
        .count();
    eprintln!(
        "[caps-kill] killed with {uncommitted} of {CAP} decided inputs uncommitted (committed {:?})",
        committed[&partition]
    );

    let mut second = Gate::start(&s.config, "caps-kill-b");
    second.wait_ready(Duration::from_secs(60));
    let last = send_in_order(&s.producer, &s.topics.outbound, &texts[CAP..]);
    let mut all = positions.clone();
    all.extend(&last);
    // Wait until the re-read inputs (if any) are decided again, too.
    let expected_outputs = CAP + uncommitted + 1;
    let settled = support::wait_until(Duration::from_secs(90), Duration::from_millis(50), || {
        s.collector
            .outputs()
            .iter()
            .filter(|o| {
                o.source
                    .as_ref()
                    .is_some_and(|x| x.topic == s.topics.outbound)
            })
            .count()
            >= expected_outputs
    });
    assert!(
        settled,
        "re-read inputs not decided; log:\n{}",
        second.log_tail()
    );
    let got = decided(&s.collector, &all, &second);
    let mut approvals = 0;
    for p in &positions {
        let v = &got[p];
        approvals += v.iter().filter(|x| *x == "approve").count();
        for again in &v[1..] {
            assert!(
                again.split(',').any(|c| c == "duplicate"),
                "input {p:?} decided again after kill -9 as {again:?}, not a duplicate"
            );
        }
    }
    assert_eq!(approvals, CAP, "each text approved exactly once");
    assert!(
        got[&last[0]][0].split(',').any(|c| c == "frequency_cap"),
        "4th text after kill -9: {:?}",
        got[&last[0]]
    );
    eprintln!(
        "[caps-kill] re-decided after restart: {}",
        positions.iter().map(|p| got[p].len() - 1).sum::<usize>()
    );
    second.sigterm(Duration::from_secs(40));
}

#[test]
fn caps_hold_when_a_partition_moves_to_another_instance() {
    let s = setup("caps-move", 3);
    let tag = &s.topics.group;
    let texts: Vec<Record> = (0..=CAP)
        .map(|i| afternoon_marketing(&format!("{tag}-m{i}"), &s.to))
        .collect();

    let mut a = Gate::start(&s.config, "caps-move-a");
    a.wait_ready(Duration::from_secs(60));
    let positions = send_in_order(&s.producer, &s.topics.outbound, &texts[..CAP]);
    let got = decided(&s.collector, &positions, &a);
    for p in &positions {
        assert_eq!(got[p], vec!["approve"]);
    }
    // B joins the group (a rebalance), then A leaves: every partition,
    // the recipient's included, moves to B.
    let mut b = Gate::start(&s.config, "caps-move-b");
    b.wait_ready(Duration::from_secs(60));
    // Ready is not yet a member: wait for B's first assignment, so A's
    // leave is a second rebalance, not one racing B's join.
    let joined = support::wait_until(Duration::from_secs(90), Duration::from_millis(100), || {
        b.get("/metrics")
            .and_then(|(_, text)| support::gate::metric_sum(&text, "smsgate_rebalances_total"))
            .is_some_and(|n| n >= 1.0)
    });
    assert!(joined, "B never joined the group; log:\n{}", b.log_tail());
    let status = a.sigterm(Duration::from_secs(40)).expect("A exits");
    assert_eq!(status.code(), Some(0));
    let last = send_in_order(&s.producer, &s.topics.outbound, &texts[CAP..]);
    let got = decided(&s.collector, &last, &b);
    assert!(
        got[&last[0]][0].split(',').any(|c| c == "frequency_cap"),
        "4th text on the new owner: {:?}; log:\n{}",
        got[&last[0]],
        b.log_tail()
    );
    assert!(b.consumed() >= 1.0, "B decided the 4th text");
    b.sigterm(Duration::from_secs(40));
}

/// The previous owner of a partition committed on revoke, but its commit
/// markers are not written yet (or a zombie's transaction is still open):
/// the changelog's stable end is still before that transaction. A restore
/// must wait for it instead of deciding on the state before it; here the
/// open transaction remembers the very message id waiting on the input.
#[test]
fn a_restore_waits_for_a_transaction_still_open_on_the_changelog() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let broker = Broker::shared();
    let topics = Topics::unique(broker, "caps-open-txn");
    let producer = TestProducer::new(&broker.bootstrap());
    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let case = support::events::clean(&topics.group, 0);
    let input = producer.send_all(&topics.outbound, std::slice::from_ref(&case.record))[0];
    let id = format!("{}-c0", topics.group);

    let changelog = format!("{}.gate-state", topics.group);
    broker.create_topics(&[(&changelog, support::gate::OUTBOUND_PARTITIONS)]);
    let previous: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set(
            "transactional.id",
            format!("{}-previous-owner", topics.group),
        )
        .create()
        .expect("transactional producer");
    previous.init_transactions(Duration::from_secs(30)).unwrap();
    previous.begin_transaction().unwrap();
    let value = format!(
        r#"{{"first_at_ms":{},"outcome":"approve"}}"#,
        chrono::Utc::now().timestamp_millis()
    );
    let key = format!("dedup/{id}");
    previous
        .send(
            BaseRecord::to(&changelog)
                .partition(input.0)
                .key(&key)
                .payload(&value),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    previous.flush(Duration::from_secs(30)).unwrap();

    let mut gate = Gate::start(&GateConfig::new(broker, &topics), "caps-open-txn");
    std::thread::sleep(Duration::from_secs(8));
    let ready = gate.get("/readyz").map(|(code, _)| code);
    eprintln!(
        "[caps-open-txn] with the transaction open for 8 s: /readyz {ready:?}, {} decided",
        collector.count()
    );
    assert_eq!(
        collector.count(),
        0,
        "decided on the state before an open transaction; log:\n{}",
        gate.log_tail()
    );
    assert_eq!(ready, Some(503), "ready while a restore waits");

    previous
        .commit_transaction(Duration::from_secs(30))
        .unwrap();
    let committed = std::time::Instant::now();
    gate.wait_ready(Duration::from_secs(60));
    eprintln!(
        "[caps-open-txn] ready {:?} after the commit",
        committed.elapsed()
    );
    let decided = support::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        collector.count() >= 1
    });
    assert!(decided, "not decided; log:\n{}", gate.log_tail());
    let codes = collector.outputs()[0].codes();
    assert!(
        codes.iter().any(|c| c == "duplicate"),
        "the open transaction's memory was not restored: {codes:?}"
    );
    gate.sigterm(Duration::from_secs(40));
}
