//! Metrics of the durable state: opt-out latency, restore times, held
//! deferred records, and the "partitions restoring" input of `/readyz`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use super::Metrics;
use super::names::{
    DEDUP_EVICTED, DEFERRED_HELD, OPTOUT_LATENCY_SECONDS, STATE_ENTRIES, STATE_RESTORE_SECONDS,
};

/// Opt-out latency and restore buckets, seconds: 10 ms to 10 min.
const SLOW_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

pub(super) struct StateMetrics {
    optout_latency: prometheus::Histogram,
    restore: HistogramVec,
    deferred_held: IntGauge,
    /// Remembered message ids and cap keys of the assigned partitions: the
    /// memory the durable state takes, and what a restore has to read.
    entries: IntGaugeVec,
    /// Message ids forgotten before their window (`state.max_dedup_entries`):
    /// retries of those are no longer caught as duplicates.
    dedup_evicted: IntCounter,
    /// Input partitions assigned but whose changelog is not restored yet.
    restoring: AtomicUsize,
}

impl StateMetrics {
    pub(super) fn register(r: &Registry) -> StateMetrics {
        let optout_latency = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                OPTOUT_LATENCY_SECONDS,
                "Opt-out replies: reply received_at to enforced on this instance",
            )
            .buckets(SLOW_BUCKETS.to_vec()),
        )
        .expect("valid metric definition");
        let restore = HistogramVec::new(
            HistogramOpts::new(
                STATE_RESTORE_SECONDS,
                "Time to restore a store (consent at start, partition on assignment)",
            )
            .buckets(SLOW_BUCKETS.to_vec()),
            &["store"],
        )
        .expect("valid metric definition");
        let deferred_held = IntGauge::new(DEFERRED_HELD, "Deferred records held for release")
            .expect("valid metric definition");
        let entries = IntGaugeVec::new(
            Opts::new(
                STATE_ENTRIES,
                "Entries of the partition-local state (dedup ids, cap keys) of the assigned partitions",
            ),
            &["store"],
        )
        .expect("valid metric definition");
        let dedup_evicted = IntCounter::new(
            DEDUP_EVICTED,
            "Message ids forgotten before their window because a partition's duplicate memory was full",
        )
        .expect("valid metric definition");
        for c in [
            Box::new(optout_latency.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(restore.clone()),
            Box::new(deferred_held.clone()),
            Box::new(entries.clone()),
            Box::new(dedup_evicted.clone()),
        ] {
            r.register(c).expect("metric registered once");
        }
        StateMetrics {
            optout_latency,
            restore,
            deferred_held,
            entries,
            dedup_evicted,
            restoring: AtomicUsize::new(0),
        }
    }

    pub(super) fn is_restored(&self) -> bool {
        self.restoring.load(Ordering::SeqCst) == 0
    }
}

impl Metrics {
    /// An opt-out from a reply is now enforced here, `seconds` after the reply arrived.
    pub fn optout_enforced(&self, seconds: f64) {
        self.state.optout_latency.observe(seconds);
    }

    /// A store finished restoring (`consent`, `partition`).
    pub fn state_restored(&self, store: &'static str, took: Duration) {
        self.state
            .restore
            .with_label_values(&[store])
            .observe(took.as_secs_f64());
    }

    /// A record acknowledged that does not complete an input (a changelog
    /// entry, or an output whose changelog entries are still pending): it
    /// counts as produced, but the end-to-end histogram observes each input
    /// once, when its last record is acknowledged.
    pub fn delivered_part(&self, topic: &str) {
        self.in_flight.dec();
        self.produced.with_label_values(&[topic]).inc();
    }

    /// Sizes of the partition-local state, after a restore or a prune.
    pub fn state_entries(&self, dedup: usize, caps: usize) {
        let e = &self.state.entries;
        e.with_label_values(&["dedup"]).set(dedup as i64);
        e.with_label_values(&["caps"]).set(caps as i64);
    }

    /// `n` message ids forgotten early (memory bound); also a WARN line.
    pub fn dedup_evicted(&self, n: u64) {
        if n > 0 {
            self.state.dedup_evicted.inc_by(n);
            tracing::warn!(
                evicted = n,
                "duplicate memory full: the oldest message ids were forgotten before their window; raise state.max_dedup_entries"
            );
        }
    }

    pub fn deferred_held(&self, records: u64) {
        self.state.deferred_held.set(records as i64);
    }

    /// `n` partitions start restoring: not ready until they are done.
    pub fn restoring(&self, n: usize) {
        self.state.restoring.fetch_add(n, Ordering::SeqCst);
        self.refresh_ready();
    }

    /// One partition finished restoring.
    pub fn restore_done(&self) {
        let _ = self
            .state
            .restoring
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        self.refresh_ready();
    }
}
