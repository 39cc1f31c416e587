//! The inbound forwarder on librdkafka's in-process mock cluster: an
//! opt-out reply becomes an `opt_out` on the consent topic keyed by the
//! fact, `<to>|<sender or *>|<scope>` (CONTRACT §10), other replies are not forwarded, and the inbound offsets are
//! committed after the writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, Producer};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use smsgate::contract::consent::{ConsentAction, ConsentEvent, ConsentScope};
use smsgate::gate::feeds::replies::{Forwarded, ReplyEvent, run_forwarder};
use smsgate::policy::Registry;

const INBOUND: &str = "sms.inbound";
const CONSENT: &str = "sms.consent";

fn registry() -> Registry {
    Registry::parse(
        "[senders.huinong-credit]\nbrand = \"惠农信贷\"\nnumbers = [\"106900001234\"]\n",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_out_replies_reach_the_consent_topic_and_offsets_are_committed() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(INBOUND, 1, 1).unwrap();
    cluster.create_topic(CONSENT, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();

    let seeder: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for body in ["TD", "what is this?", "退订全部"] {
        let value = format!(
            r#"{{"from":"+8613812345678","to":"106900001234","body":"{body}","received_at":"2026-11-28T10:00:00+08:00"}}"#
        );
        seeder
            .send(BaseRecord::to(INBOUND).key("106900001234").payload(&value))
            .unwrap();
    }
    seeder
        .send(BaseRecord::to(INBOUND).key("x").payload("not json"))
        .unwrap();
    seeder.flush(Duration::from_secs(5)).unwrap();

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "smsgate-inbound")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[INBOUND]).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(run_forwarder(
        consumer,
        producer,
        CONSENT.to_string(),
        {
            let registry = Arc::new(registry());
            move || registry.clone()
        },
        smsgate::gate::feeds::replies::Commit::AfterAck,
        shutdown,
        move |event| {
            if let ReplyEvent::Done(f) = event {
                let _ = seen_tx.send(f);
            }
        },
    ));
    let mut outcomes = Vec::new();
    while outcomes.len() < 4 {
        let f = tokio::time::timeout(Duration::from_secs(20), seen_rx.recv())
            .await
            .expect("forwarder stalled")
            .unwrap();
        outcomes.push(f);
    }
    assert_eq!(
        outcomes,
        vec![
            Forwarded::OptOut,
            Forwarded::NotOptOut,
            Forwarded::OptOut,
            Forwarded::Invalid
        ]
    );
    // Let the last async commit land, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();

    // The consent topic holds the two opt-outs, each keyed by its fact.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&[CONSENT]).unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.len() < 2 && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            let event = ConsentEvent::parse(m.payload().unwrap()).unwrap();
            assert_eq!(m.key(), Some(event.topic_key().as_bytes()));
            events.push(event);
        }
    }
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].topic_key(),
        "+8613812345678|huinong-credit|marketing"
    );
    assert_eq!(
        (
            events[0].action,
            events[0].scope,
            events[0].sender.as_str(),
            events[0].source.as_str()
        ),
        (
            ConsentAction::OptOut,
            ConsentScope::Marketing,
            "huinong-credit",
            "reply:TD"
        )
    );
    assert_eq!(
        (
            events[1].scope,
            events[1].sender.as_str(),
            events[1].source.as_str()
        ),
        (ConsentScope::All, "*", "reply:退订全部")
    );

    // Every inbound record was committed.
    let check: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "smsgate-inbound")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(INBOUND, 0);
    let committed = check
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let offset = committed.find_partition(INBOUND, 0).unwrap().offset();
    assert_eq!(offset, rdkafka::Offset::Offset(4));
}

/// A forwarder that cannot run (here: its topic cannot be subscribed to) is
/// not silent: the gate keeps deciding, but `/readyz` says not ready and
/// `smsgate_feed_down{feed="replies"}` is 1, which the alert watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_that_cannot_run_makes_the_gate_not_ready() {
    use crate::pipeline_support::{Harness, http_get, wait_for};
    let mut h = Harness::new("forwarder-down");
    // An invalid subscription pattern: the subscribe call fails.
    h.settings.topics.inbound = "^[".into();
    h.seed_consent();
    h.produce_events(50);
    let run = h.start();
    let metrics = run.metrics.clone();
    assert!(
        wait_for(Duration::from_secs(30), || metrics.snapshot().decided()
            >= 50)
        .await,
        "the gate decides without its forwarder"
    );
    let addr = *run.addr.get().expect("metrics server bound");
    let (status, _) = tokio::task::spawn_blocking(move || http_get(addr, "/readyz"))
        .await
        .unwrap();
    assert_eq!(status, 503, "not ready while the forwarder is down");
    let text = metrics.render();
    assert!(
        text.contains("smsgate_feed_down{feed=\"replies\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("smsgate_feed_down{feed=\"release\"} 0"),
        "{text}"
    );
    run.shutdown.trigger();
    let _ = run.task.await;
}
