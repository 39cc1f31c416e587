//! Faults on librdkafka's mock cluster: failing produce requests and a
//! broker outage. Nothing may be lost; readiness follows the broker.

use crate::pipeline_support;

use std::time::Duration;

use pipeline_support::*;
use rdkafka::mocking::MockCoordinator;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use smsgate::gate::RunSummary;

const EVENTS: usize = 1000;

async fn finish(h: &Harness, run: Running, total: usize) -> usize {
    assert!(
        wait_for(Duration::from_secs(90), || {
            let s = run.metrics.snapshot();
            s.decided() >= total as u64 && s.in_flight == 0
        })
        .await,
        "stalled at {:?}",
        run.metrics.snapshot()
    );
    assert!(
        wait_committed_to_end(h, Duration::from_secs(60)).await,
        "committed to the end while running, at {:?}",
        run.metrics.snapshot()
    );
    run.shutdown.trigger();
    let summary = run.task.await.unwrap().unwrap();
    assert!(summary.drained);
    let t = &h.settings.topics;
    let inputs = h.read_topic(&t.outbound, total, Duration::from_secs(20));
    assert_eq!(inputs.len(), total);
    let mut outputs = h.read_topic(&t.approved, 1, Duration::from_secs(20));
    outputs.extend(h.read_topic(&t.quarantine, 1, Duration::from_secs(20)));
    outputs.extend(h.read_topic(&t.deferred, 1, Duration::from_secs(5)));
    let duplicates = assert_every_input_has_an_output(&inputs, &outputs);
    let committed = h.committed();
    for (p, end) in h.end_offsets() {
        assert_eq!(
            committed.get(&p),
            Some(&end),
            "partition {p} committed to its end"
        );
    }
    duplicates
}

/// Stops the gate; its summary and how long the stop took (it must end
/// within `hang`).
async fn stop(run: Running, hang: Duration) -> (RunSummary, Duration) {
    let started = std::time::Instant::now();
    run.shutdown.trigger();
    let summary = tokio::time::timeout(hang, run.task)
        .await
        .expect("the stop does not hang")
        .unwrap()
        .unwrap();
    (summary, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_produce_requests_are_retried_and_nothing_is_lost() {
    let mut h = Harness::new("faults-produce");
    // A short delivery timeout, so records librdkafka gives up on come back
    // to the gate, which must produce them again itself.
    h.settings
        .kafka
        .properties
        .insert("message.timeout.ms".into(), "1500".into());
    h.seed_consent();
    h.produce_events(2 * EVENTS);
    // Injected after seeding, so only the gate's produce requests fail:
    // retriable errors librdkafka retries itself, then permanent ones that
    // fail the records back to the gate.
    let errors: Vec<RDKafkaRespErr> = (0..60)
        .map(|i| match i % 4 {
            0 => RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            1 => RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            2 => RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            _ => RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        })
        .collect();
    h.mock
        .cluster()
        .request_errors(RDKafkaApiKey::Produce, &errors);
    let run = h.start();
    let metrics = run.metrics.clone();
    let duplicates = finish(&h, run, 2 * EVENTS).await;
    let failed = metrics.snapshot().produce_errors;
    println!(
        "produce errors injected: 240 requests; deliveries failed and re-produced: {failed}; duplicates: {duplicates}"
    );
    assert!(failed > 0, "the gate's own re-send path was exercised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_flips_readiness_and_loses_nothing() {
    let mut h = Harness::new("faults-outage");
    h.seed_consent();
    h.produce_events(EVENTS);
    let run = h.start();
    assert!(
        wait_for(Duration::from_secs(30), || run.metrics.is_ready()).await,
        "ready before the outage"
    );
    assert!(
        wait_for(Duration::from_secs(30), || run.metrics.snapshot().decided()
            > 0)
        .await
    );

    for b in 1..=3 {
        h.mock.cluster().broker_down(b).unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(20), || !run.metrics.is_ready()).await,
        "unready while every broker is down"
    );
    assert!(run.metrics.render().contains("smsgate_broker_up 0"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    for b in 1..=3 {
        h.mock.cluster().broker_up(b).unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(60), || run.metrics.is_ready()).await,
        "ready again once the brokers are back"
    );
    h.produce_events(EVENTS);
    let duplicates = finish(&h, run, 2 * EVENTS).await;
    println!("broker outage: duplicates: {duplicates}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_at_start_is_an_error_within_the_startup_timeout() {
    let mut h = Harness::new("faults-unreachable");
    h.settings.kafka.brokers = "127.0.0.1:1".into();
    h.settings.kafka.startup_timeout_secs = 2;
    let started = std::time::Instant::now();
    let run = h.start();
    let result = tokio::time::timeout(Duration::from_secs(15), run.task)
        .await
        .expect("no hang")
        .unwrap();
    let error = result.expect_err("cannot succeed without a broker");
    assert!(
        matches!(
            error,
            smsgate::gate::PipelineError::BrokerUnreachable { .. }
        ),
        "{error}"
    );
    assert!(!error.is_config());
    assert!(error.to_string().contains("127.0.0.1:1"));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_every_broker_is_down_is_bounded() {
    let mut h = Harness::new("faults-stop-outage");
    h.settings.pipeline.drain_timeout_secs = 3;
    h.seed_consent();
    h.produce_events(200);
    let run = h.start();
    assert!(
        wait_for(Duration::from_secs(30), || run.metrics.snapshot().decided()
            >= 200)
        .await
    );
    for b in 1..=3 {
        h.mock.cluster().broker_down(b).unwrap();
    }
    assert!(wait_for(Duration::from_secs(20), || !run.metrics.is_ready()).await);
    let (summary, took) = stop(run, Duration::from_secs(30)).await;
    println!("stop with every broker down took {took:?}");
    assert!(
        took < Duration::from_secs(3) + smsgate::gate::CLOSE_TIMEOUT + Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(summary.decisions.decided(), 200);
}

/// Every partition led by broker 2 or 3, the gate's group coordinated by
/// broker 1 alone (every other group by broker 2): taking broker 1 down
/// then takes down only the gate's group coordinator.
fn coordinator_alone_on_broker_1(h: &Harness) {
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
            cluster.partition_leader(topic, p, Some(2 + p % 2)).unwrap();
        }
    }
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 1)
        .unwrap();
    for other in [
        "-release",
        "-inbound",
        ".consent-reader",
        ".changelog-reader",
    ] {
        cluster
            .coordinator(MockCoordinator::Group(format!("{group}{other}")), 2)
            .unwrap();
    }
}

/// A synchronous offset commit waits for the group coordinator (about 45 s
/// on the mock cluster while it is down). With only the coordinator down,
/// every partition still has a leader to read from and produce to, so the
/// gate must go on deciding while its commits wait; once the coordinator
/// is back, everything is committed and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_keep_flowing_while_only_the_group_coordinator_is_down() {
    let mut h = Harness::new("faults-coordinator");
    coordinator_alone_on_broker_1(&h);
    h.seed_consent();
    h.produce_events(100);
    let run = h.start();
    assert!(
        wait_for(Duration::from_secs(30), || run.metrics.snapshot().decided()
            >= 100)
        .await
    );
    assert!(wait_committed_to_end(&h, Duration::from_secs(30)).await);

    h.mock.cluster().broker_down(1).unwrap();
    // These are decided and acknowledged; their commit then waits for the
    // coordinator.
    h.produce_events(50);
    assert!(
        wait_for(Duration::from_secs(15), || run.metrics.snapshot().decided()
            >= 150)
        .await,
        "decided with the coordinator down, at {:?}",
        run.metrics.snapshot()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.produce_events(50);
    assert!(
        wait_for(Duration::from_secs(10), || run.metrics.snapshot().decided()
            >= 200)
        .await,
        "decided while a commit waits for the coordinator, at {:?}",
        run.metrics.snapshot()
    );
    assert!(run.metrics.is_ready(), "the partition leaders are up");

    h.mock.cluster().broker_up(1).unwrap();
    let duplicates = finish(&h, run, 200).await;
    println!("coordinator outage: duplicates: {duplicates}");
}

/// The stop's last commit waits for the coordinator too; the stop waits
/// for it only `FINAL_COMMIT_WAIT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_only_the_group_coordinator_is_down_is_bounded() {
    let mut h = Harness::new("faults-coordinator-stop");
    h.settings.pipeline.drain_timeout_secs = 3;
    coordinator_alone_on_broker_1(&h);
    h.seed_consent();
    h.produce_events(100);
    let run = h.start();
    assert!(wait_committed_to_end(&h, Duration::from_secs(30)).await);
    h.mock.cluster().broker_down(1).unwrap();
    h.produce_events(50);
    assert!(
        wait_for(Duration::from_secs(15), || {
            let s = run.metrics.snapshot();
            s.decided() >= 150 && s.in_flight == 0
        })
        .await,
        "decided with the coordinator down, at {:?}",
        run.metrics.snapshot()
    );
    let (summary, took) = stop(run, Duration::from_secs(40)).await;
    println!("stop with the coordinator down took {took:?}");
    assert!(
        took < Duration::from_secs(3)
            + smsgate::gate::FINAL_COMMIT_WAIT
            + smsgate::gate::CLOSE_TIMEOUT
            + Duration::from_secs(2),
        "{took:?}"
    );
    assert!(summary.drained);
    assert_eq!(summary.decisions.decided(), 150);
}
