//! Criterion benchmarks of the per-record work of the gate: parsing an
//! outbound event, and parsing plus deciding it with the shipped default
//! policy, over the benchmark's realistic workload (`cargo bench --bench parse`).

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use smsgate::policy::{Origin, Policy, PolicySource};
use smsgate::state::MemoryState;
use smsgate::synth::workload::{Kind, Workload};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T14:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// 10,000 generated events and the state (consent) they are decided against.
fn workload() -> (Vec<(Vec<u8>, Kind)>, MemoryState) {
    let mut w = Workload::new(11, now(), 10_000, "bench");
    let mut state = MemoryState::new();
    for i in 0..w.recipients() {
        for c in w.consent_for(i) {
            state.apply_consent(c);
        }
    }
    let events = (0..10_000)
        .map(|_| {
            let (bytes, _, kind) = w.next_event();
            (bytes, kind)
        })
        .collect();
    (events, state)
}

fn parse(c: &mut Criterion) {
    let (events, _) = workload();
    let pick = |k: Kind, cn: bool| {
        events
            .iter()
            .find(|(b, kind)| *kind == k && (String::from_utf8_lossy(b).contains("+86") == cn))
            .map(|(b, _)| b.clone())
            .unwrap_or_default()
    };
    let mut g = c.benchmark_group("parse");
    for (name, bytes) in [
        ("cn_clean", pick(Kind::Clean, true)),
        ("us_clean", pick(Kind::Clean, false)),
        ("malformed", pick(Kind::Malformed, true)),
    ] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| black_box(smsgate::contract::event::parse(black_box(&bytes))))
        });
    }
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("mix_10k", |b| {
        b.iter(|| {
            for (bytes, _) in &events {
                let _ = black_box(smsgate::contract::event::parse(black_box(bytes)));
            }
        })
    });
    g.finish();
}

fn decide(c: &mut Criterion) {
    let Ok(policy) = Policy::load(&PolicySource {
        senders: vec![smsgate_bench::sample_senders()],
        packs: None,
    }) else {
        panic!("the shipped policy and example registry load");
    };
    let (events, state) = workload();
    let mut g = c.benchmark_group("parse_and_decide");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("mix_10k_default_policy", |b| {
        b.iter(|| {
            for (bytes, _) in &events {
                let _ =
                    black_box(policy.decide_bytes(black_box(bytes), Origin::Intake, &state, now()));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parse, decide);
criterion_main!(benches);
