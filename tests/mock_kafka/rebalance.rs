//! Group changes and stops on the mock cluster: a second instance joining
//! and leaving mid-stream, a stop mid-stream followed by a restart, and a
//! tiny in-flight bound (backpressure). No input may go without an output.

use crate::pipeline_support;

use std::time::Duration;

use pipeline_support::*;

const EVENTS: usize = 1500;

fn outputs(h: &Harness) -> Vec<rdkafka::message::OwnedMessage> {
    let t = &h.settings.topics;
    let mut out = h.read_topic(&t.approved, 1, Duration::from_secs(20));
    out.extend(h.read_topic(&t.quarantine, 1, Duration::from_secs(20)));
    out.extend(h.read_topic(&t.deferred, 1, Duration::from_secs(5)));
    out
}

async fn committed_to_end(h: &Harness) -> bool {
    wait_for(Duration::from_secs(30), || {
        let c = h.committed();
        h.end_offsets().iter().all(|(p, end)| c.get(p) == Some(end))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_joining_and_leaving_loses_nothing() {
    let mut h = Harness::new("rebalance");
    h.seed_consent();
    h.produce_events(EVENTS);
    let first = h.start();
    assert!(
        wait_for(Duration::from_secs(30), || first
            .metrics
            .snapshot()
            .decided()
            > 100)
        .await
    );

    let second = h.start();
    h.produce_events(EVENTS);
    assert!(
        wait_for(Duration::from_secs(60), || second
            .metrics
            .snapshot()
            .decided()
            > 0)
        .await,
        "the second instance got partitions"
    );
    second.shutdown.trigger();
    second.task.await.unwrap().unwrap();
    h.produce_events(EVENTS);

    let total = 3 * EVENTS as u64;
    let m = first.metrics.clone();
    assert!(
        wait_for(Duration::from_secs(90), || {
            let s = m.snapshot();
            s.in_flight == 0 && h.committed().values().sum::<i64>() >= total as i64
        })
        .await,
        "first instance took everything back"
    );
    first.shutdown.trigger();
    first.task.await.unwrap().unwrap();
    assert!(committed_to_end(&h).await);
    let inputs = h.read_topic(
        &h.settings.topics.outbound,
        total as usize,
        Duration::from_secs(20),
    );
    assert_eq!(inputs.len(), total as usize);
    let duplicates = assert_every_input_has_an_output(&inputs, &outputs(&h));
    println!("rebalance: duplicates: {duplicates}");
    assert!(
        m.render()
            .contains("smsgate_rebalances_total{kind=\"revoke\"}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_mid_stream_then_a_restart_continues_from_the_commit() {
    let mut h = Harness::new("restart");
    h.seed_consent();
    h.produce_events(3 * EVENTS);
    let first = h.start();
    assert!(
        wait_for(Duration::from_secs(30), || first
            .metrics
            .snapshot()
            .decided()
            > 200)
        .await
    );
    first.shutdown.trigger();
    let summary = first.task.await.unwrap().unwrap();
    assert!(
        summary.drained,
        "in-flight records were acknowledged before exit"
    );
    let committed: i64 = h.committed().values().filter(|o| **o > 0).sum();
    assert!(committed > 0, "the stop committed what was done");

    let second = h.start();
    assert!(
        committed_to_end(&h).await,
        "the restart finished the stream"
    );
    second.shutdown.trigger();
    let again = second.task.await.unwrap().unwrap();
    let total = 3 * EVENTS;
    let inputs = h.read_topic(&h.settings.topics.outbound, total, Duration::from_secs(20));
    let duplicates = assert_every_input_has_an_output(&inputs, &outputs(&h));
    println!(
        "restart: first run decided {}, second {}, duplicates {duplicates}",
        summary.decisions.decided(),
        again.decisions.decided()
    );
    assert_eq!(duplicates, 0, "a clean stop commits everything it produced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_in_flight_bound_holds_back_without_loss() {
    let mut h = Harness::new("backpressure");
    h.settings.pipeline.max_in_flight = 20;
    h.seed_consent();
    h.produce_events(EVENTS);
    let run = h.start();
    let done = committed_to_end(&h).await;
    assert!(
        done,
        "stalled: {:?}, committed {:?}, ends {:?}",
        run.metrics.snapshot(),
        h.committed(),
        h.end_offsets()
    );
    run.shutdown.trigger();
    let summary = run.task.await.unwrap().unwrap();
    assert_eq!(summary.decisions.decided(), EVENTS as u64);
    let inputs = h.read_topic(&h.settings.topics.outbound, EVENTS, Duration::from_secs(20));
    assert_eq!(assert_every_input_has_an_output(&inputs, &outputs(&h)), 0);
}

/// Issue 23.7: the in-flight bound counts bytes too. With the producer
/// allowed only 64 KiB of waiting output (set directly, below the 1 MiB a
/// config file may ask for, so the bound is hit all the time), the workers
/// wait for acknowledgements instead of queueing more, and everything
/// still goes through once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_in_flight_byte_bound_holds_back_without_loss() {
    let mut h = Harness::new("backpressure-bytes");
    h.settings.pipeline.max_in_flight_bytes = 64 * 1024;
    h.seed_consent();
    h.produce_events(EVENTS);
    let run = h.start();
    let done = committed_to_end(&h).await;
    assert!(
        done,
        "stalled: {:?}, committed {:?}, ends {:?}",
        run.metrics.snapshot(),
        h.committed(),
        h.end_offsets()
    );
    run.shutdown.trigger();
    let summary = run.task.await.unwrap().unwrap();
    assert_eq!(summary.decisions.decided(), EVENTS as u64);
    let inputs = h.read_topic(&h.settings.topics.outbound, EVENTS, Duration::from_secs(20));
    assert_eq!(assert_every_input_has_an_output(&inputs, &outputs(&h)), 0);
}
