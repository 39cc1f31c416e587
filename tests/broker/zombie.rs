//! A zombie, exactly once: of two instances (static membership ids, a
//! 6 s session timeout, the broker's minimum), one is frozen with SIGSTOP
//! in the middle of a live stream, inside a transaction that holds records
//! (it commits every 2 s, and its transaction timeout, 60 s, outlasts the
//! freeze). Its session times out and the other instance is assigned its
//! partitions; their restore waits while the zombie's transaction is open
//! on the changelog (deciding on the state before it could exceed a cap).
//! Then the zombie gets SIGCONT and runs on from where it froze, its
//! transaction still open, its group generation stale: it cannot commit,
//! its transaction is aborted, and the other instance restores and
//! decides. Whatever the zombie tries to write must stay invisible: a
//! read_committed reader of approved ∪ quarantine ∪ deferred sees every
//! input decided exactly once (no pair over its cap), and the committed
//! offsets reach the end. What the zombie did after SIGCONT (rebuilt and
//! rejoined, or exited) is read from its log and printed; it must neither
//! crash-loop nor exit with a panic.

use smsgate_testkit as support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::events::{self, Case};
use support::gate::{Gate, GateConfig, OTHER_PARTITIONS, OUTBOUND_PARTITIONS, Topics};
use support::kafka::{self, Collector, Record, TestProducer};
use support::verify::{Approvals, Delivery, assert_key_order, wait_and_verify};

const EVENTS: usize = 30_000;
const PAIRS: usize = 20;
const PER_PAIR: usize = 6;
const CAP: usize = 3;
/// The broker's `group.min.session.timeout.ms` (Kafka's default).
const SESSION_MS: u64 = 6000;

/// The message and error of a JSON log line, for the report.
fn brief(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let field = |k: &str| v[k].as_str().map(str::to_string).unwrap_or_default();
    format!(
        "{} {} {}{}",
        field("timestamp"),
        field("level"),
        field("message"),
        v["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    )
}

#[test]
fn a_zombie_woken_after_its_session_expired_writes_nothing_visible() {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "zombie");
    let workload = events::capped_stream(&topics.group, EVENTS, PAIRS, PER_PAIR, CAP);
    let cases = workload.outbound;
    let records: Vec<Record> = cases.iter().map(|c| c.record.clone()).collect();
    TestProducer::new(&broker.bootstrap()).send_consent(
        &topics.consent,
        OTHER_PARTITIONS,
        &workload.consent,
    );

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    // The session timeout reaches the group consumer through
    // `[kafka.properties]`; the gate's max.poll.interval.ms (≥ 60 s) stays
    // above it, so the freeze is seen by the session, not the poll interval.
    let config =
        GateConfig::new(broker, &topics).property("session.timeout.ms", &SESSION_MS.to_string());
    let start = |id: &str| {
        let mut g = Gate::start(&config.clone().instance(id), id);
        g.wait_ready(Duration::from_secs(60));
        g
    };
    // The zombie commits every 2 s, so the freeze lands in a transaction
    // holding records, and the broker would abort it only after 60 s: it is
    // still open when the zombie wakes.
    let mut zombie = {
        let cfg = config
            .clone()
            .instance("zombie-a")
            .set("SMSGATE__DELIVERY__TRANSACTION_INTERVAL_MS", "2000")
            .set("SMSGATE__DELIVERY__TRANSACTION_TIMEOUT_MS", "60000");
        let mut g = Gate::start(&cfg, "zombie-a");
        g.wait_ready(Duration::from_secs(60));
        g
    };
    let mut other = start("zombie-b");
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
        zombie.consumed() > 0.0 && other.consumed() > 0.0
    });
    assert!(
        both,
        "the two instances do not both decide; logs:\n{}\n{}",
        zombie.log_tail(),
        other.log_tail()
    );
    let frozen_at = EVENTS / 4;
    assert!(
        support::wait_until(Duration::from_secs(120), Duration::from_millis(5), || {
            collector.count() >= frozen_at
        }),
        "stream stalled before {frozen_at} outputs"
    );
    // The reader sees the zombie's outputs when a transaction of it
    // commits, so the threshold is often crossed just after one: freeze
    // halfway into the next, which then holds about a second of records.
    std::thread::sleep(Duration::from_millis(1000));

    let bootstrap = broker.bootstrap();
    let committed = || {
        kafka::committed(
            &bootstrap,
            &topics.group,
            &topics.outbound,
            OUTBOUND_PARTITIONS,
        )
    };
    let zombie_consumed = zombie.consumed();
    let assigned_before = other.log_lines("partitions assigned").len();
    zombie.sigstop();
    let stopped = Instant::now();
    let at_stop = committed();
    eprintln!(
        "[zombie] SIGSTOP {} (pid {}) at {:.1?} after it consumed {zombie_consumed} events; {} outputs so far; committed {at_stop:?}",
        zombie.name,
        zombie.pid(),
        started.elapsed(),
        collector.count()
    );
    // The session expires and the other instance is assigned the zombie's
    // partitions; their restore waits for the zombie's open transaction.
    let reassigned =
        support::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
            other.log_lines("partitions assigned").len() > assigned_before
        });
    let reassigned_after = stopped.elapsed();
    assert!(
        reassigned,
        "the other instance was not assigned the zombie's partitions within 60 s; its log:\n{}",
        other.log_tail()
    );
    // The session runs from the zombie's last heartbeat, up to one
    // heartbeat interval (librdkafka's 3 s) before the freeze.
    assert!(
        reassigned_after >= Duration::from_millis(SESSION_MS - 3000),
        "partitions moved after {reassigned_after:?}, before the session timeout"
    );
    std::thread::sleep(Duration::from_secs(2));
    // Partitions (outputs and changelog) whose last stable offset stays put
    // while records follow it: held by the zombie's open transaction.
    let changelog = format!("{}.gate-state", topics.group);
    let written: Vec<(&str, u32)> = topics
        .routes()
        .iter()
        .map(|(t, n, _)| (*t, *n))
        .chain([(changelog.as_str(), OUTBOUND_PARTITIONS)])
        .collect();
    let before = kafka::stable_offsets(&bootstrap, &written);
    std::thread::sleep(Duration::from_secs(1));
    let after = kafka::stable_offsets(&bootstrap, &written);
    let held: Vec<String> = after
        .iter()
        .filter(|(tp, (lso, high))| before[*tp].0 == *lso && high > lso)
        .map(|((t, p), (lso, high))| format!("{t}/{p} ({} records)", high - lso))
        .collect();
    let other_consumed = other.consumed();
    let waiting = other.log_lines("open transaction").len();
    zombie.sigcont();
    let frozen_for = stopped.elapsed();
    eprintln!(
        "[zombie] the other instance assigned the zombie's partitions {reassigned_after:.1?} after the freeze ({waiting} restore waits logged); SIGCONT after {frozen_for:.1?}, {} consumed {other_consumed} events so far; {} outputs; held by the zombie's open transaction: {}",
        other.name,
        collector.count(),
        held.join(", ")
    );
    assert!(
        !held.is_empty(),
        "no partition held by an open transaction at the wake-up: the zombie froze between transactions; (LSO, high watermark) before {before:?}, after {after:?}"
    );
    // Once the zombie's transaction is aborted, the other instance decides
    // the zombie's partitions (their committed offsets move).
    let mut last = BTreeMap::new();
    let taken_over =
        support::wait_until(Duration::from_secs(90), Duration::from_millis(250), || {
            last = committed();
            at_stop
                .iter()
                .all(|(p, c)| last[p].unwrap_or(-1) > c.unwrap_or(-1))
        });
    assert!(
        taken_over,
        "every partition's commit did not move within 90 s of the wake-up (committed {last:?}); logs:\n{}\n{}",
        zombie.log_tail(),
        other.log_tail()
    );
    eprintln!(
        "[zombie] every partition's commit moved {:.1?} after the wake-up",
        stopped.elapsed() - frozen_for
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
        "zombie",
    );
    let approvals = Approvals::read(&collector.outputs());
    approvals.print("zombie");
    eprintln!(
        "[zombie] {} inputs: {} duplicates; all decided after {:.1?}",
        positions.len(),
        verdict.duplicates,
        started.elapsed()
    );
    assert!(
        took.is_some(),
        "inputs lost; logs:\n{}\n{}",
        zombie.log_tail(),
        other.log_tail()
    );
    verdict.assert_ok();
    approvals.assert_capped(PAIRS, CAP, Delivery::ExactlyOnce);
    topics.assert_committed_to_end(&broker.bootstrap(), &positions, Duration::from_secs(30));

    // What the zombie did after SIGCONT, from its log.
    let woke = zombie
        .log_lines("\"level\":\"WARN\"")
        .into_iter()
        .chain(zombie.log_lines("\"level\":\"ERROR\""))
        .chain(zombie.log_lines("partitions assigned"))
        .chain(zombie.log_lines("partitions revoked"))
        .collect::<Vec<_>>();
    // librdkafka's PartitionEOF and producer-side CONFWARN lines are noise here.
    let mut woke: Vec<String> = woke
        .iter()
        .filter(|l| !l.contains("PartitionEOF") && !l.contains("CONFWARN"))
        .map(|l| brief(l))
        .collect();
    woke.sort();
    eprintln!("[zombie] the zombie's log (warnings, errors, assignments):");
    for line in &woke {
        eprintln!("[zombie]   {line}");
    }
    let rebuilds = zombie.log_lines("rebuilding the Kafka clients").len();
    let panicked = zombie.log_lines("panicked").len();
    match zombie.wait_exit(Duration::ZERO) {
        Some(status) => {
            eprintln!("[zombie] the zombie exited by itself: {status} after {rebuilds} rebuilds");
            assert!(
                panicked == 0,
                "the zombie panicked; log:\n{}",
                zombie.log_tail()
            );
            assert!(
                !status.success(),
                "a zombie that stops must say so with its exit code"
            );
        }
        None => {
            let consumed = zombie.consumed();
            let metrics = zombie.get("/metrics").map(|(_, t)| t).unwrap_or_default();
            let transactions: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("smsgate_transactions_total{"))
                .collect();
            eprintln!(
                "[zombie] the zombie runs on after {rebuilds} rebuilds; it consumed {consumed} events in all; {}",
                transactions.join(", ")
            );
            // A rebuild or two after the wake-up; a loop of them is a bug.
            assert!(
                rebuilds <= 3,
                "the zombie rebuilt {rebuilds} times; log:\n{}",
                zombie.log_tail()
            );
            assert!(
                panicked == 0,
                "the zombie panicked; log:\n{}",
                zombie.log_tail()
            );
            let status = zombie
                .sigterm(Duration::from_secs(40))
                .expect("the zombie exits after SIGTERM");
            assert_eq!(
                status.code(),
                Some(0),
                "the zombie's exit code after SIGTERM"
            );
        }
    }
    let status = other
        .sigterm(Duration::from_secs(40))
        .expect("the other instance exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "the other instance's exit code");
}
