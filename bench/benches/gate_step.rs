//! Criterion benchmark of the decide worker's step without Kafka
//! (`smsgate_bench::step`: parse, decide against the shared state, record
//! the dedup and cap entries, route the output, seal one changelog batch
//! per 64 records and partition). Once with the shipped policy and once
//! with every rule switched off (as `smsgate-bench --rules-off` does), so
//! the rules' share of the step shows without a broker
//! (`cargo bench --bench gate_step`).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use smsgate::policy::Policy;
use smsgate_bench::step;

const EVENTS: u64 = 10_000;

fn load(policy: Result<Policy, impl std::fmt::Display>) -> Policy {
    match policy {
        Ok(p) => p,
        Err(e) => panic!("policy: {e}"),
    }
}

fn gate_step(c: &mut Criterion) {
    let (w, events) = step::events(EVENTS, 11);
    let policies = [
        ("default_policy", load(step::policy(None))),
        ("rules_off", load(step::rules_off_policy(None))),
    ];
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
