//! The at-least-once window (issue 23.1), on the mock cluster where one
//! topic's leader can be taken down alone: the changelog record
//! acknowledged, the approved one not (the approved topic's leader down),
//! then a stop and a restart. The re-read inputs are the same records
//! decided before, so each is decided again and approved, never quarantined
//! as its own `duplicate` (before the fix: every approval of the outage).
//!
//! The other direction (the output acknowledged, the changelog record not)
//! decides the re-read inputs again on the state before them: at-least-once
//! duplicates, never a loss; `tests/broker/crash.rs` kills the gate between
//! the two. `exactly_once` closes both by construction (one transaction).

use crate::pipeline_support;

use std::time::Duration;

use pipeline_support::*;
use rdkafka::Message;
use rdkafka::mocking::MockCoordinator;
use smsgate::synth::workload::Kind;

const EVENTS: usize = 200;

/// Every partition led by broker 1 or 2, except those of `alone`, led by
/// broker 3; every group coordinated by broker 1.
fn lead_alone_on_broker_3(h: &Harness, alone: &str) {
    let group = &h.settings.kafka.group_id;
    let t = &h.settings.topics;
    let changelog = t.changelog.clone().unwrap();
    let cluster = h.mock.cluster();
    for topic in [
        &t.outbound,
        &t.consent,
        &t.inbound,
        &t.approved,
        &t.quarantine,
        &t.deferred,
        &changelog,
    ] {
        for p in 0..PARTITIONS {
            let leader = if topic == alone { 3 } else { 1 + p % 2 };
            cluster.partition_leader(topic, p, Some(leader)).unwrap();
        }
    }
    for suffix in [
        "",
        "-release",
        "-inbound",
        ".consent-reader",
        ".changelog-reader",
    ] {
        cluster
            .coordinator(MockCoordinator::Group(format!("{group}{suffix}")), 1)
            .unwrap();
    }
}

/// The inputs (source positions) quarantined as `duplicate`: a retry
/// decided in both runs counts once.
fn duplicates_quarantined(h: &Harness) -> usize {
    h.read_topic(&h.settings.topics.quarantine, 0, Duration::from_secs(5))
        .iter()
        .filter(|m| {
            m.payload()
                .is_some_and(|p| String::from_utf8_lossy(p).contains(r#""code":"duplicate""#))
        })
        .map(source_of)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// Once the gate is ready, takes the leader of `down_topic` down, decides
/// `EVENTS`, stops, brings the leader back and restarts.
async fn outage_then_restart(name: &str, down_topic: impl Fn(&Harness) -> String) -> Outcome {
    let mut h = Harness::new(name);
    h.settings.pipeline.drain_timeout_secs = 2;
    let down = down_topic(&h);
    lead_alone_on_broker_3(&h, &down);
    h.seed_consent();

    let run = h.start();
    assert!(
        wait_for(Duration::from_secs(30), || run.metrics.is_ready()).await,
        "ready (partitions restored)"
    );
    h.mock.cluster().broker_down(3).unwrap();
    let kinds = h.produce_events(EVENTS);
    assert!(
        wait_for(Duration::from_secs(60), || run.metrics.snapshot().decided()
            >= EVENTS as u64)
        .await,
        "decided with {down}'s leader down, at {:?}",
        run.metrics.snapshot()
    );
    // Let the batch records (or outputs) on the live leaders be acknowledged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.shutdown.trigger();
    let first = tokio::time::timeout(Duration::from_secs(60), run.task)
        .await
        .expect("the stop does not hang")
        .unwrap()
        .unwrap();
    assert!(
        !first.drained,
        "{down} was down: the first run cannot drain"
    );
    h.mock.cluster().broker_up(3).unwrap();

    // Only what the first run could not commit is read again.
    let run = h.start();
    assert!(
        wait_committed_to_end(&h, Duration::from_secs(60)).await,
        "committed to the end after the restart"
    );
    run.shutdown.trigger();
    assert!(run.task.await.unwrap().unwrap().drained);

    let t = &h.settings.topics;
    let inputs = h.read_topic(&t.outbound, EVENTS, Duration::from_secs(20));
    assert_eq!(inputs.len(), EVENTS);
    let approved = h.read_topic(&t.approved, 1, Duration::from_secs(20));
    let mut outputs = approved.clone();
    outputs.extend(h.read_topic(&t.quarantine, 1, Duration::from_secs(20)));
    outputs.extend(h.read_topic(&t.deferred, 0, Duration::from_secs(5)));
    let repeated = assert_every_input_has_an_output(&inputs, &outputs);
    Outcome {
        approved: approved.len(),
        repeated,
        duplicates: duplicates_quarantined(&h),
        retries: kinds.get(&Kind::Duplicate).copied().unwrap_or(0),
    }
}

#[derive(Debug)]
struct Outcome {
    /// Records on the approved topic.
    approved: usize,
    /// Inputs with more than one output (decided in both runs).
    #[allow(dead_code)] // printed
    repeated: usize,
    /// Quarantined as `duplicate`.
    duplicates: usize,
    /// Upstream retries the workload made on purpose: each is a `duplicate`.
    retries: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_survive_an_approved_topic_outage_and_a_restart() {
    let o = outage_then_restart("redelivery-approved", |h| {
        h.settings.topics.approved.clone()
    })
    .await;
    println!("approved topic down, then a restart: {o:?}");
    assert_eq!(
        o.duplicates, o.retries,
        "a re-read input was quarantined as its own duplicate"
    );
    assert!(o.approved > 0, "{o:?}");
}
