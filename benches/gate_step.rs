//! Criterion benchmark of the decide worker's step without Kafka
//! (`smsgate::bench::step`: parse, decide against the shared state, record
//! the dedup and cap entries, route the output, seal one changelog batch
//! per 64 records and partition). Once with the shipped policy and once
//! with every rule switched off (as `smsgate-bench --rules-off` does), so
//! the rules' share of the step shows without a broker
//! (`cargo bench --bench gate_step`).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use smsgate::bench::{rules_off, step};
use smsgate::policy::Policy;

const EVENTS: u64 = 10_000;

fn load(packs: Option<&std::path::Path>) -> Policy {
    match step::policy(packs) {
        Ok(p) => p,
        Err(e) => panic!("policy: {e}"),
    }
}

fn gate_step(c: &mut Criterion) {
    let (w, events) = step::events(EVENTS, 11);
    let dir = std::env::temp_dir().join(format!("smsgate-gate-step-{}", std::process::id()));
    if let Err(e) = rules_off::write_packs(None, &dir) {
        panic!("rules-off packs: {e}");
    }
    let policies = [
        ("default_policy", load(None)),
        ("rules_off", load(Some(&dir))),
    ];
    let _ = std::fs::remove_dir_all(&dir);
    let topics = step::topics();

    let mut g = c.benchmark_group("gate_step");
    g.throughput(Throughput::Elements(EVENTS));
    for (name, policy) in &policies {
        g.bench_function(format!("mix_10k_{name}"), |b| {
            b.iter_batched(
                || step::fresh(policy, &w),
                |stores| step::pass(policy, &stores, &events, &topics),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, gate_step);
criterion_main!(benches);
