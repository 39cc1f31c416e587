//! The gate end to end on librdkafka's mock cluster, no faults: every input
//! offset yields exactly one output, approved values are the input bytes,
//! quarantine records carry the codes, and committed offsets reach the end.

use crate::pipeline_support;

use std::collections::HashMap;
use std::time::Duration;

use pipeline_support::*;
use rdkafka::message::Message;
use smsgate::contract::decision::ReasonCode;
use smsgate::synth::workload::Kind;

const EVENTS: usize = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_routed_once_and_offsets_are_committed_to_the_end() {
    let mut h = Harness::new("delivery");
    h.seed_consent();
    // Records the generator cannot make: empty value, huge value, no key.
    h.produce_raw(&[
        (b"k-empty", b""),
        (b"k-huge", &vec![b'x'; 70 * 1024]),
        (
            b"+8613800000000",
            b"{\"message_id\":\"m-bad\",\"to\":\"+8613800000000\"}",
        ),
    ]);
    let kinds = h.produce_events(EVENTS);
    let total = EVENTS + 3;
    let run = h.start();
    assert!(
        wait_for(Duration::from_secs(60), || {
            let s = run.metrics.snapshot();
            s.decided() >= total as u64 && s.in_flight == 0
        })
        .await,
        "decided only {:?}",
        run.metrics.snapshot()
    );
    assert!(
        wait_committed_to_end(&h, Duration::from_secs(20)).await,
        "offsets committed to the end while running"
    );
    let addr = *run.addr.get().expect("metrics server bound");
    let (status, _) = tokio::task::spawn_blocking(move || http_get(addr, "/healthz"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, _) = tokio::task::spawn_blocking(move || http_get(addr, "/readyz"))
        .await
        .unwrap();
    assert_eq!(status, 200, "ready once consent caught up");
    let (status, text) = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let consent: Vec<_> = (0..h.generator.recipients())
        .flat_map(|i| h.generator.consent_for(i))
        .collect();
    let counted = consent.iter().filter(|c| c.counts()).count();
    let no_evidence = consent.len() - counted;
    assert!(
        no_evidence > 0,
        "the workload makes opt-ins without evidence"
    );
    assert!(
        text.contains(&format!("smsgate_consent_records_total {counted}")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "smsgate_consent_ignored_total{{reason=\"no_evidence\"}} {no_evidence}"
    )));
    assert!(text.contains(&format!(
        "smsgate_events_consumed_total{{topic=\"sms.outbound\"}} {total}"
    )));
    assert!(text.contains("smsgate_end_to_end_seconds_count"));
    // Committed at least once (the series starts at 0).
    assert!(
        text.contains("smsgate_commits_total{result=\"ok\"}")
            && !text.contains("smsgate_commits_total{result=\"ok\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("smsgate_committed_offset{partition=\"0\"}"));
    run.shutdown.trigger();
    let summary = run.task.await.unwrap().unwrap();
    assert!(summary.drained);
    assert_eq!(summary.decisions.decided(), total as u64);
    // Consent was loaded before any decision: exactly the events made to
    // lack consent are missing it, exactly the opted-out ones are revoked.
    let reason = |code: ReasonCode| {
        summary
            .decisions
            .reasons
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, n)| *n as usize)
    };
    let kind = |k: Kind| kinds.get(&k).copied().unwrap_or(0);
    assert_eq!(reason(ReasonCode::ConsentMissing), kind(Kind::NoConsent));
    assert_eq!(reason(ReasonCode::ConsentRevoked), kind(Kind::OptedOut));
    assert_eq!(
        reason(ReasonCode::PersonalizationRefused),
        kind(Kind::PersonalizationRefused)
    );

    let t = &h.settings.topics;
    let inputs = h.read_topic(&t.outbound, total, Duration::from_secs(20));
    assert_eq!(inputs.len(), total);
    let approved = h.read_topic(
        &t.approved,
        summary.decisions.approved as usize,
        Duration::from_secs(20),
    );
    let quarantined = h.read_topic(
        &t.quarantine,
        summary.decisions.rejected as usize,
        Duration::from_secs(20),
    );
    let deferred = h.read_topic(
        &t.deferred,
        summary.decisions.deferred as usize,
        Duration::from_secs(20),
    );
    let outputs: Vec<_> = approved
        .iter()
        .chain(&quarantined)
        .chain(&deferred)
        .cloned()
        .collect();
    assert_eq!(outputs.len(), total, "one output per input without faults");
    assert_eq!(assert_every_input_has_an_output(&inputs, &outputs), 0);

    let by_source: HashMap<(i32, i64), _> = inputs
        .iter()
        .map(|m| ((m.partition(), m.offset()), m))
        .collect();
    for a in &approved {
        let input = by_source[&source_of(a)];
        assert_eq!(
            a.payload(),
            input.payload(),
            "approved bytes differ from input"
        );
        assert_eq!(a.key(), input.key());
        assert_eq!(header(a, "smsgate-outcome"), Some("approve"));
        assert_eq!(
            header(a, "smsgate-policy"),
            Some(h.policy.version().as_ref())
        );
    }
    let mut malformed = 0;
    for q in &quarantined {
        let input = by_source[&source_of(q)];
        assert_eq!(q.key(), input.key());
        let v: serde_json::Value = serde_json::from_slice(q.payload().unwrap()).unwrap();
        assert_eq!(v["outcome"], "reject");
        assert_eq!(v["source"]["offset"], input.offset());
        let codes: Vec<&str> = v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert!(!codes.is_empty());
        if codes == ["malformed"] {
            malformed += 1;
        }
    }
    assert!(
        malformed >= 3,
        "the three hand-made bad records are malformed"
    );
    for d in &deferred {
        assert!(header(d, "smsgate-release-at").is_some());
    }

    let committed = h.committed();
    for (p, end) in h.end_offsets() {
        assert_eq!(
            committed.get(&p),
            Some(&end),
            "partition {p} committed to its end"
        );
    }
}
