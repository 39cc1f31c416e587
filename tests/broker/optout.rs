//! The opt-out loop on a real broker (Kafka): a recipient's "退订" reply on
//! `topics.inbound` is forwarded (once, by the group's forwarder) to
//! `topics.consent` as an `opt_out`; every instance's consent feed applies
//! it and observes `smsgate_optout_latency_seconds`; marketing to that
//! recipient decided afterwards is rejected (`consent.revoked`).

use smsgate_testkit as support;

use std::time::Duration;

use serde_json::json;
use support::broker::Broker;
use support::events::cn_number;
use support::gate::{Gate, GateConfig, OTHER_PARTITIONS, Topics, metric_sum};
use support::kafka::{Collector, Record, TestProducer};
use support::marketing::{afternoon_marketing, decided, opt_in, rfc3339};

fn latency_count(gate: &Gate) -> f64 {
    gate.get("/metrics")
        .and_then(|(_, text)| metric_sum(&text, "smsgate_optout_latency_seconds_count"))
        .unwrap_or(0.0)
}

#[test]
fn an_opt_out_reply_rejects_later_marketing_on_every_instance() {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "optout");
    let producer = TestProducer::new(&broker.bootstrap());
    let to = cn_number(71_000_001);
    producer.send_consent(&topics.consent, OTHER_PARTITIONS, &[opt_in(&to)]);
    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics);
    let mut a = Gate::start(&config, "optout-a");
    let mut b = Gate::start(&config, "optout-b");
    a.wait_ready(Duration::from_secs(60));
    b.wait_ready(Duration::from_secs(60));

    let tag = &topics.group;
    let before = producer.send_all(
        &topics.outbound,
        &[afternoon_marketing(&format!("{tag}-m0"), &to)],
    );
    let got = decided(&collector, &before, &a);
    assert_eq!(got[&before[0]], vec!["approve"], "opted in: approved");

    let reply = json!({
        "from": to, "to": "106900005678", "body": "退订",
        "received_at": rfc3339(chrono::Utc::now()),
    });
    producer.send_all(
        &topics.inbound,
        &[Record {
            key: Some(to.as_bytes().to_vec()),
            value: serde_json::to_vec(&reply).unwrap(),
        }],
    );
    let applied = support::wait_until(Duration::from_secs(60), Duration::from_millis(50), || {
        latency_count(&a) >= 1.0 && latency_count(&b) >= 1.0
    });
    assert!(
        applied,
        "opt-out not applied on both instances (a: {}, b: {}); log a:\n{}\nlog b:\n{}",
        latency_count(&a),
        latency_count(&b),
        a.log_tail(),
        b.log_tail()
    );
    let sums = |g: &Gate| {
        let text = g.get("/metrics").unwrap().1;
        metric_sum(&text, "smsgate_optout_latency_seconds_sum").unwrap()
    };
    let first_sums = [sums(&a), sums(&b)];
    for (g, sum) in [&a, &b].iter().zip(first_sums) {
        eprintln!(
            "[optout] {}: first reply enforced after {sum:.3} s (includes the forwarder group's first join)",
            g.name
        );
        assert!(sum < 60.0, "latency is reply received_at → enforced");
    }
    // A second reply, with every group settled: the steady-state latency.
    let other = cn_number(71_000_002);
    let reply = json!({
        "from": other, "to": "106900005678", "body": "TD",
        "received_at": rfc3339(chrono::Utc::now()),
    });
    producer.send_all(
        &topics.inbound,
        &[Record {
            key: Some(other.as_bytes().to_vec()),
            value: serde_json::to_vec(&reply).unwrap(),
        }],
    );
    assert!(
        support::wait_until(Duration::from_secs(60), Duration::from_millis(20), || {
            latency_count(&a) >= 2.0 && latency_count(&b) >= 2.0
        }),
        "second opt-out not applied on both instances"
    );
    for (g, before) in [&a, &b].iter().zip(first_sums) {
        eprintln!(
            "[optout] {}: second reply enforced after {:.3} s",
            g.name,
            sums(g) - before
        );
    }

    let after = producer.send_all(
        &topics.outbound,
        &[afternoon_marketing(&format!("{tag}-m1"), &to)],
    );
    let got = decided(&collector, &after, &a);
    assert!(
        got[&after[0]][0].split(',').any(|c| c == "consent.revoked"),
        "marketing after the opt-out: {:?}",
        got[&after[0]]
    );
    // The forwarder's own figures: two opt-outs finished (by whichever
    // instance forwarded them), none in progress now.
    let metric = |g: &Gate, name: &str| {
        g.get("/metrics")
            .and_then(|(_, t)| metric_sum(&t, name))
            .unwrap_or(0.0)
    };
    let forwarded = [&a, &b]
        .iter()
        .map(|g| metric(g, "smsgate_replies_total"))
        .sum::<f64>();
    assert_eq!(forwarded, 2.0, "replies finished by the forwarders");
    for g in [&a, &b] {
        assert_eq!(
            metric(g, "smsgate_reply_in_progress_since_seconds"),
            0.0,
            "{}: no reply in progress",
            g.name
        );
    }
    // Every instance enforces it: stop A, the partition moves to B, and
    // B rejects the next text too.
    a.sigterm(Duration::from_secs(40));
    let last = producer.send_all(
        &topics.outbound,
        &[afternoon_marketing(&format!("{tag}-m2"), &to)],
    );
    let got = decided(&collector, &last, &b);
    assert!(
        got[&last[0]][0].split(',').any(|c| c == "consent.revoked"),
        "marketing after the opt-out, on B: {:?}",
        got[&last[0]]
    );
    b.sigterm(Duration::from_secs(40));
}
