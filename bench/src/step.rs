//! The decide worker's step without Kafka: parse, decide against the shared
//! state, record the dedup and cap entries, route the output (headers, and
//! the quarantine record for a reject) and seal one changelog batch per 64
//! records and partition, as `pipeline::worker` does between the poll and
//! the produce.
//!
//! It exists because on a shared 2-core host the full benchmark's
//! records/s swing by 1.5× within an hour, far more than most changes to
//! this step: `cargo bench --bench gate_step` times it, and
//! `scripts/bench-instructions` counts its instructions per event under
//! callgrind, which is the same for the same binary and input whatever
//! else the machine does.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::{BenchError, rules_off};
use smsgate::config::Topics;
use smsgate::contract::decision::Source;
use smsgate::gate::decide::BATCH;
use smsgate::gate::route::route;
use smsgate::policy::{Origin, Policy, PolicyError, PolicySource};
use smsgate::state::Stores;
use smsgate::synth::workload::Workload;

/// Input partitions the events are spread over.
pub const PARTITIONS: i32 = 4;

/// The step's clock: a Wednesday 14:00 UTC, so US recipients are deferred
/// by quiet hours and Chinese ones are not, as in the benchmark's runs.
pub fn clock() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_615_200, 0).unwrap_or_default()
}

/// The shipped policy (`packs: None`) or the packs in `packs`, with the
/// example sender registry the benchmark uses.
pub fn policy(packs: Option<&Path>) -> Result<Policy, PolicyError> {
    Policy::load(&PolicySource {
        senders: vec![crate::sample_senders()],
        packs: packs.map(Path::to_path_buf),
    })
}

/// The policy with every rule of the packs `from` (the shipped ones for
/// `None`) switched off, as `smsgate-bench --rules-off` runs the gate: the
/// packs are written to a temporary directory, loaded and removed.
pub fn rules_off_policy(from: Option<&Path>) -> Result<Policy, BenchError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "smsgate-step-rules-off-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let loaded = rules_off::write_packs(from, &dir).and_then(|_| {
        policy(Some(&dir)).map_err(|e| BenchError::Setup(format!("rules-off packs: {e}")))
    });
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

/// `n` events of the benchmark's generator, spread over the partitions,
/// and the generator (it also makes the recipients' consent).
pub fn events(n: u64, seed: u64) -> (Workload, Vec<(i32, Vec<u8>)>) {
    let mut w = Workload::new(seed, clock(), n, "step");
    let events = (0..n)
        .map(|i| ((i % PARTITIONS as u64) as i32, w.next_event().0))
        .collect();
    (w, events)
}

/// Fresh state for one pass: every partition assigned, consent loaded, no
/// duplicates or caps yet (a second pass over the same ids would be all
/// duplicates).
pub fn fresh(policy: &Policy, w: &Workload) -> Stores {
    let stores = Stores::for_policy(policy);
    for p in 0..PARTITIONS {
        stores.assign(p);
    }
    for i in 0..w.recipients() {
        for c in w.consent_for(i) {
            stores.apply_consent(&c);
        }
    }
    stores
}

/// Topic names for the routed outputs (only their names are used).
pub fn topics() -> Topics {
    let name = |t: &str| format!("step.{t}");
    Topics {
        outbound: name("outbound"),
        consent: name("consent"),
        inbound: name("inbound"),
        approved: name("approved"),
        quarantine: name("quarantine"),
        deferred: name("deferred"),
        changelog: None,
    }
}

/// One worker pass over `events`; returns the output bytes routed. Never
/// inlined: `scripts/bench-instructions` counts only inside this function.
#[inline(never)]
pub fn pass(policy: &Policy, stores: &Stores, events: &[(i32, Vec<u8>)], topics: &Topics) -> u64 {
    let t = clock();
    let source_topic: std::sync::Arc<str> = topics.outbound.as_str().into();
    let mut routed = 0u64;
    for (n, batch) in events.chunks(BATCH).enumerate() {
        let mut open: Vec<(i32, Vec<_>)> = Vec::new();
        for (i, (partition, bytes)) in batch.iter().enumerate() {
            let d = stores.decide(policy, *partition, bytes, Origin::Intake, t);
            let source = Source {
                topic: source_topic.clone(),
                partition: *partition,
                offset: (n * BATCH + i) as i64,
            };
            let out = route(topics, &d.decision, bytes, &source);
            routed += out.payload.len() as u64;
            black_box(&out);
            match open.iter_mut().find(|(p, _)| p == partition) {
                Some((_, e)) => e.extend(d.changelog),
                None => open.push((*partition, d.changelog)),
            }
        }
        for (partition, entries) in open {
            black_box(stores.seal(partition, &entries, t));
        }
    }
    routed
}

/// One timed pass from fresh state (the setup is not timed).
pub fn timed(policy: &Policy, w: &Workload, events: &[(i32, Vec<u8>)]) -> (Duration, u64) {
    let stores = fresh(policy, w);
    let topics = topics();
    let started = Instant::now();
    let routed = pass(policy, &stores, events, &topics);
    (started.elapsed(), routed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_decides_and_routes_every_event() {
        let policy = policy(None).unwrap();
        let (w, events) = events(300, 7);
        let stores = fresh(&policy, &w);
        let routed = pass(&policy, &stores, &events, &topics());
        // Every event routes at least its own bytes (quarantine records more).
        let input: u64 = events.iter().map(|(_, e)| e.len() as u64).sum();
        assert!(routed >= input, "{routed} < {input}");
        // The same ids again are all remembered: the state was recorded.
        let again = events
            .iter()
            .filter(|(p, e)| {
                let d = stores.decide(&policy, *p, e, Origin::Intake, clock());
                d.decision
                    .has(smsgate::contract::decision::ReasonCode::Duplicate)
            })
            .count();
        assert!(again >= 290, "only {again} of 300 remembered");
    }
}
