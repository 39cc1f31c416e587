//! Criterion benchmark of the decide worker's step without Kafka: parse,
//! decide against the shared state, record the dedup and cap entries with
//! their changelog entries, and seal one changelog batch per 64 records, as
//! `pipeline::worker` calls `Stores::decide` and `Stores::seal`. Once with
//! the shipped policy and once with every rule switched off (as
//! `smsgate-bench --rules-off` does), so the rules' share of the step shows
//! without a broker (`cargo bench --bench gate_step`).

use std::hint::black_box;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use smsgate::bench::rules_off;
use smsgate::bench::workload::Workload;
use smsgate::policy::{Origin, Policy, PolicySource};
use smsgate::state::Stores;

const EVENTS: usize = 10_000;
const PARTITIONS: i32 = 4;
/// As `pipeline::worker::BATCH`.
const BATCH: usize = 64;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T14:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn load(packs: Option<PathBuf>) -> Policy {
    match Policy::load(&PolicySource {
        senders: vec!["config/senders.example.toml".into()],
        packs,
    }) {
        Ok(p) => p,
        Err(e) => panic!("policy: {e}"),
    }
}

/// Fresh state for one pass: every partition assigned, consent loaded, no
/// duplicates or caps yet (a second pass over the same ids would be all
/// duplicates).
fn fresh(policy: &Policy, w: &Workload) -> Stores {
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

/// One worker pass over `events`: decide each, seal each batch's entries.
fn pass(policy: &Policy, stores: &Stores, events: &[(i32, Vec<u8>)]) {
    let t = now();
    for batch in events.chunks(BATCH) {
        let mut open: Vec<(i32, Vec<_>)> = Vec::new();
        for (partition, bytes) in batch {
            let d = stores.decide(policy, *partition, bytes, Origin::Intake, t);
            black_box(&d.decision);
            match open.iter_mut().find(|(p, _)| p == partition) {
                Some((_, e)) => e.extend(d.changelog),
                None => open.push((*partition, d.changelog)),
            }
        }
        for (partition, entries) in open {
            black_box(stores.seal(partition, &entries, t));
        }
    }
}

fn gate_step(c: &mut Criterion) {
    let mut w = Workload::new(11, now(), EVENTS as u64, "bench");
    let events: Vec<(i32, Vec<u8>)> = (0..EVENTS)
        .map(|i| (i as i32 % PARTITIONS, w.next_event().0))
        .collect();
    let dir = std::env::temp_dir().join(format!("smsgate-gate-step-{}", std::process::id()));
    if let Err(e) = rules_off::write_packs(None, &dir) {
        panic!("rules-off packs: {e}");
    }
    let policies = [
        ("default_policy", load(None)),
        ("rules_off", load(Some(dir.clone()))),
    ];
    let _ = std::fs::remove_dir_all(&dir);

    let mut g = c.benchmark_group("gate_step");
    g.throughput(Throughput::Elements(EVENTS as u64));
    for (name, policy) in &policies {
        g.bench_function(format!("mix_10k_{name}"), |b| {
            b.iter_batched(
                || fresh(policy, &w),
                |stores| pass(policy, &stores, &events),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, gate_step);
criterion_main!(benches);
