//! Metrics of Kafka transactions (`delivery.guarantee = "exactly_once"`):
//! how many were committed and aborted, and how long a commit took (flush,
//! offsets, commit: the time batches wait).

use std::time::Duration;

use prometheus::{HistogramOpts, IntCounterVec, Opts, Registry};

use super::Metrics;
use super::names::{TRANSACTION_SECONDS, TRANSACTIONS};

/// `transactions` results.
pub const TRANSACTION_COMMITTED: &str = "committed";
pub const TRANSACTION_ABORTED: &str = "aborted";

/// Commit durations, seconds: 1 ms to 10 s.
const COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

pub(super) struct TransactionMetrics {
    results: IntCounterVec,
    seconds: prometheus::Histogram,
}

impl TransactionMetrics {
    pub(super) fn register(r: &Registry) -> TransactionMetrics {
        let results = IntCounterVec::new(
            Opts::new(TRANSACTIONS, "Kafka transactions, by result (exactly_once)"),
            &["result"],
        )
        .expect("valid metric definition");
        let seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                TRANSACTION_SECONDS,
                "Time to commit a transaction: flush, offsets, commit",
            )
            .buckets(COMMIT_BUCKETS.to_vec()),
        )
        .expect("valid metric definition");
        for result in [TRANSACTION_COMMITTED, TRANSACTION_ABORTED] {
            results.with_label_values(&[result]);
        }
        r.register(Box::new(results.clone()))
            .expect("metric registered once");
        r.register(Box::new(seconds.clone()))
            .expect("metric registered once");
        TransactionMetrics { results, seconds }
    }
}

impl Metrics {
    pub fn transaction_committed(&self, took: Duration) {
        self.transactions
            .results
            .with_label_values(&[TRANSACTION_COMMITTED])
            .inc();
        self.transactions.seconds.observe(took.as_secs_f64());
    }

    pub fn transaction_aborted(&self) {
        self.transactions
            .results
            .with_label_values(&[TRANSACTION_ABORTED])
            .inc();
    }
}
