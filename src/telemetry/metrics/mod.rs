//! Metrics and health: registration, intent-named update methods and the
//! HTTP server for `/metrics`, `/healthz` and `/readyz`.
//!
//! Names live in [`names`] (re-exported here). Other modules never touch a
//! collector directly: they call [`Metrics::decided`],
//! [`Metrics::produce_failed`] and friends, so a name is written once. Each
//! [`Metrics`] value owns its own registry, so tests and the demo can run
//! several gates in one process.

pub mod feeds;
mod http;
pub mod names;
pub mod server;
mod stores;
mod threads;
mod transactions;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::contract::decision::{Decision, Outcome, ReasonCode};
pub use names::*;

/// Latency buckets in seconds: 100 µs to 30 s, finer between 10 and 100 ms
/// where the end-to-end time and its 50 ms target lie (with only 25 and 50
/// ms there, a quantile was an interpolation across a 25 ms wide bucket).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
    0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every collector of the gate plus the readiness flags behind `/readyz`.
pub struct Metrics {
    registry: Registry,
    events_consumed: IntCounterVec,
    /// `smsgate_decisions_total` per outcome and `smsgate_reasons_total`
    /// per code (in `ALL` order), resolved once: a label lookup per event
    /// showed in the profile.
    decisions_by_outcome: Vec<IntCounter>,
    reasons_by_code: Vec<IntCounter>,
    produced: IntCounterVec,
    produce_errors: IntCounterVec,
    produce_retries: IntCounterVec,
    processing: Histogram,
    end_to_end: Histogram,
    in_flight: IntGauge,
    lag: IntGaugeVec,
    committed_offset: IntGaugeVec,
    commits: IntCounterVec,
    rebalances: IntCounterVec,
    consumer_errors: IntCounterVec,
    consent_records: IntCounter,
    consent_ignored: IntCounterVec,
    consent_recipients: IntGauge,
    policy_info: IntGaugeVec,
    policy_reload_failures: IntCounter,
    ready: IntGauge,
    broker_up: IntGauge,
    delivery_blocked: IntGauge,
    /// Durable-state metrics (`stores.rs`).
    state: stores::StateMetrics,
    /// CPU per thread of this process, read at each scrape (`threads.rs`).
    threads: threads::ThreadMetrics,
    /// Kafka transactions (`transactions.rs`).
    transactions: transactions::TransactionMetrics,
    /// The metrics server's own connection cap (`http.rs`).
    http: http::HttpMetrics,
    /// The reply forwarder and the releaser (`feeds.rs`).
    feeds: feeds::FeedMetrics,
    non_recipient_keys: IntCounter,
    /// Health inputs; `/readyz` is 200 only when all hold.
    consent_caught_up: AtomicBool,
    broker_reachable: AtomicBool,
    stopping: AtomicBool,
    /// Output topics blocked by a permanent produce failure (ACL, missing
    /// topic, record too large): not ready while any is.
    blocked_topics: AtomicUsize,
    /// Sum of `produce_errors` over topics, for [`Metrics::snapshot`].
    produce_errors_total: AtomicU64,
}

// Label values known in advance (names.rs holds metric names only).
/// `consent_ignored` reason: an opt-in without evidence (CONTRACT §3).
pub const IGNORED_NO_EVIDENCE: &str = "no_evidence";
/// `consent_ignored` reason: a record that is not a valid consent event.
pub const IGNORED_INVALID: &str = "invalid";
pub const CONSENT_IGNORED_REASONS: [&str; 2] = [IGNORED_NO_EVIDENCE, IGNORED_INVALID];
/// `produce_errors` kinds (`gate::delivery::blocked::FailureKind`); the
/// first three last until an operator acts.
pub const FAILURE_KINDS: [&str; 5] = [
    "authorization",
    "unknown_topic",
    "too_large",
    "timeout",
    "other",
];
/// `consumer_errors` kind: an error the consume loop's poll returned.
pub const CONSUMER_ERROR_POLL: &str = "poll";
/// `consumer_errors` kind: the static member was fenced; the gate rebuilt
/// its Kafka clients.
pub const CONSUMER_ERROR_FENCED: &str = "fenced";
pub const CONSUMER_ERROR_KINDS: [&str; 2] = [CONSUMER_ERROR_POLL, CONSUMER_ERROR_FENCED];
/// `commits` results.
pub const COMMIT_OK: &str = "ok";
pub const COMMIT_ERROR: &str = "error";

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
        .expect("valid metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every collector in a fresh registry. The definitions are
    /// constants, so registration cannot fail at run time.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let consent_records = counter(
            &r,
            CONSENT_RECORDS,
            "Consent events applied to the consent table",
        );
        let decisions = counter_vec(&r, DECISIONS, "Decisions by outcome", &["outcome"]);
        let reasons = counter_vec(&r, REASONS, "Failed rules by reason code", &["code"]);
        let m = Metrics {
            events_consumed: counter_vec(
                &r,
                EVENTS_CONSUMED,
                "Records polled from an input topic",
                &["topic"],
            ),
            produced: counter_vec(
                &r,
                PRODUCED,
                "Records acknowledged by the broker, by output topic",
                &["topic"],
            ),
            produce_errors: counter_vec(
                &r,
                PRODUCE_ERRORS,
                "Failed deliveries (each is retried), by output topic and kind of failure",
                &["topic", "kind"],
            ),
            produce_retries: counter_vec(
                &r,
                PRODUCE_RETRIES,
                "Records produced again after a failed delivery",
                &["topic"],
            ),
            processing: histogram(&r, PROCESSING_SECONDS, "Time from poll to decision"),
            end_to_end: histogram(
                &r,
                END_TO_END_SECONDS,
                "Time from poll to the broker's acknowledgement of the output",
            ),
            in_flight: gauge(
                &r,
                IN_FLIGHT,
                "Records decided and produced but not yet acknowledged",
            ),
            lag: gauge_vec(
                &r,
                CONSUMER_LAG,
                "Records on the outbound topic not yet polled (high watermark - position)",
                &["partition"],
            ),
            committed_offset: gauge_vec(
                &r,
                COMMITTED_OFFSET,
                "Last committed offset of the outbound topic",
                &["partition"],
            ),
            commits: counter_vec(&r, COMMITS, "Offset commits by result", &["result"]),
            rebalances: counter_vec(
                &r,
                REBALANCES,
                "Rebalance callbacks by kind (assign, revoke, error)",
                &["kind"],
            ),
            consumer_errors: counter_vec(
                &r,
                CONSUMER_ERRORS,
                "Errors reported by the consumer",
                &["kind"],
            ),
            consent_records,
            consent_ignored: counter_vec(
                &r,
                CONSENT_IGNORED,
                "Consent records not applied, by reason",
                &["reason"],
            ),
            consent_recipients: gauge(&r, CONSENT_RECIPIENTS, "Recipients with consent history"),
            policy_info: gauge_vec(&r, POLICY_INFO, "The loaded policy (value 1)", &["version"]),
            policy_reload_failures: counter(
                &r,
                POLICY_RELOAD_FAILURES,
                "Policy reloads (SIGHUP) that left the previous policy in force",
            ),
            ready: gauge(&r, READY, "1 when /readyz answers 200"),
            broker_up: gauge(
                &r,
                BROKER_UP,
                "1 while the consumer has a connection to a broker",
            ),
            delivery_blocked: gauge(
                &r,
                DELIVERY_BLOCKED,
                "Output topics the gate cannot deliver to until an operator acts (an ACL, a missing topic, a record too large)",
            ),
            state: stores::StateMetrics::register(&r),
            threads: threads::ThreadMetrics::register(&r),
            transactions: transactions::TransactionMetrics::register(&r),
            http: http::HttpMetrics::register(&r),
            feeds: feeds::FeedMetrics::register(&r),
            non_recipient_keys: counter(
                &r,
                NON_RECIPIENT_KEYS,
                "Outbound records whose key is not the recipient (`to`)",
            ),
            decisions_by_outcome: Outcome::ALL
                .iter()
                .map(|o| decisions.with_label_values(&[o.as_str()]))
                .collect(),
            reasons_by_code: ReasonCode::ALL
                .iter()
                .map(|c| reasons.with_label_values(&[c.as_str()]))
                .collect(),
            registry: r,
            consent_caught_up: AtomicBool::new(false),
            broker_reachable: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            blocked_topics: AtomicUsize::new(0),
            produce_errors_total: AtomicU64::new(0),
        };
        m.broker_up.set(1);
        // Label sets known in advance start at 0, so a dashboard shows 0
        // (not "no data") and every metric is exported from the start.
        for reason in CONSENT_IGNORED_REASONS {
            m.consent_ignored.with_label_values(&[reason]);
        }
        for kind in CONSUMER_ERROR_KINDS {
            m.consumer_errors.with_label_values(&[kind]);
        }
        for result in [COMMIT_OK, COMMIT_ERROR] {
            m.commits.with_label_values(&[result]);
        }
        m
    }

    /// Starts the per-topic produce series of `topics` at 0 (the gate calls
    /// it with every topic it writes to).
    pub fn output_topics(&self, topics: &[&str]) {
        for topic in topics {
            self.produced.with_label_values(&[topic]);
            for kind in FAILURE_KINDS {
                self.produce_errors.with_label_values(&[topic, kind]);
            }
            self.produce_retries.with_label_values(&[topic]);
        }
    }

    /// The registry, for modules that own further collectors (state stores,
    /// policy reloads) so they are served on the same `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A well-formed outbound record keyed by something other than its
    /// recipient (partitioning by recipient is recommended, CONTRACT §1).
    pub fn non_recipient_key(&self) {
        self.non_recipient_keys.inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.threads.refresh();
        let mut buf = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    pub fn policy_loaded(&self, version: &str) {
        self.policy_info.reset();
        self.policy_info.with_label_values(&[version]).set(1);
    }

    /// A reload that could not load, or would not put in force, the changed
    /// packs or registry.
    pub fn policy_reload_failed(&self) {
        self.policy_reload_failures.inc();
    }

    /// The records-polled counter of an input topic, for its consume loop
    /// to hold (a label lookup per record showed in the profile).
    pub fn consumed_counter(&self, topic: &str) -> IntCounter {
        self.events_consumed.with_label_values(&[topic])
    }

    /// One decision: its outcome, every reason code, and the poll → decision time.
    pub fn decided(&self, decision: &Decision, processing: Duration) {
        if let Some(c) = self.decisions_by_outcome.get(decision.outcome as usize) {
            c.inc();
        }
        for reason in &decision.reasons {
            if let Some(c) = self.reasons_by_code.get(reason.code as usize) {
                c.inc();
            }
        }
        self.processing.observe(processing.as_secs_f64());
    }

    pub fn sent(&self) {
        self.in_flight.inc();
    }

    /// Every record of one input (output and changelog) is acknowledged;
    /// `end_to_end` runs from its poll.
    pub fn input_completed(&self, end_to_end: Duration) {
        self.end_to_end.observe(end_to_end.as_secs_f64());
    }

    /// A delivery failed; the record is produced again (or dropped when its
    /// partition was revoked meanwhile, to be re-read by the new owner).
    /// `kind`: one of [`FAILURE_KINDS`].
    pub fn produce_failed(&self, topic: &str, kind: &'static str) {
        self.in_flight.dec();
        self.produce_errors.with_label_values(&[topic, kind]).inc();
        self.produce_errors_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retried(&self, topic: &str) {
        self.in_flight.inc();
        self.produce_retries.with_label_values(&[topic]).inc();
    }

    pub fn lag(&self, partition: i32, lag: i64) {
        self.lag
            .with_label_values(&[&partition.to_string()])
            .set(lag);
    }

    pub fn committed(&self, partition: i32, offset: i64) {
        self.commits.with_label_values(&[COMMIT_OK]).inc();
        self.committed_offset
            .with_label_values(&[&partition.to_string()])
            .set(offset);
    }

    pub fn commit_failed(&self) {
        self.commits.with_label_values(&[COMMIT_ERROR]).inc();
    }

    /// A partition left this instance: its per-partition series go away.
    pub fn partition_released(&self, partition: i32) {
        let p = partition.to_string();
        let _ = self.lag.remove_label_values(&[&p]);
        let _ = self.committed_offset.remove_label_values(&[&p]);
    }

    pub fn rebalanced(&self, kind: &'static str) {
        self.rebalances.with_label_values(&[kind]).inc();
    }

    /// True once the group consumer has been assigned partitions at least once.
    pub fn has_been_assigned(&self) -> bool {
        self.rebalances.with_label_values(&["assign"]).get() > 0
    }

    /// `kind`: one of [`CONSUMER_ERROR_KINDS`].
    pub fn consumer_error(&self, kind: &'static str) {
        self.consumer_errors.with_label_values(&[kind]).inc();
    }

    pub fn consent_applied(&self, recipients: usize) {
        self.consent_records.inc();
        self.consent_recipients.set(recipients as i64);
    }

    /// `reason`: one of [`CONSENT_IGNORED_REASONS`].
    pub fn consent_ignored(&self, reason: &'static str) {
        self.consent_ignored.with_label_values(&[reason]).inc();
    }

    pub fn consent_caught_up(&self) {
        self.consent_caught_up.store(true, Ordering::SeqCst);
        self.refresh_ready();
    }

    pub fn is_consent_caught_up(&self) -> bool {
        self.consent_caught_up.load(Ordering::SeqCst)
    }

    pub fn broker_reachable(&self, up: bool) {
        self.broker_reachable.store(up, Ordering::SeqCst);
        self.broker_up.set(i64::from(up));
        self.refresh_ready();
    }

    pub fn is_broker_up(&self) -> bool {
        self.broker_reachable.load(Ordering::SeqCst)
    }

    /// How many output topics a permanent produce failure blocks.
    pub fn delivery_blocked(&self, topics: usize) {
        if self.blocked_topics.swap(topics, Ordering::SeqCst) != topics {
            self.delivery_blocked.set(topics as i64);
            self.refresh_ready();
        }
    }

    /// A rebuilt gate (after fencing or an aborted transaction) runs again:
    /// the previous run's stop no longer counts against readiness, and its
    /// new consent table must catch up before anything is decided.
    pub fn restarting(&self) {
        self.stopping.store(false, Ordering::SeqCst);
        self.consent_caught_up.store(false, Ordering::SeqCst);
        self.refresh_ready();
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.refresh_ready();
    }

    /// Ready: consent caught up, assigned partitions restored, a broker
    /// reachable, every output topic deliverable, the side feeds running,
    /// not shutting down.
    pub fn is_ready(&self) -> bool {
        self.consent_caught_up.load(Ordering::SeqCst)
            && self.feeds.all_up()
            && self.state.is_restored()
            && self.broker_reachable.load(Ordering::SeqCst)
            && self.blocked_topics.load(Ordering::SeqCst) == 0
            && !self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn refresh_ready(&self) {
        self.ready.set(i64::from(self.is_ready()));
    }

    /// Totals the demo and tests read back.
    pub fn snapshot(&self) -> Snapshot {
        let count = |o: Outcome| {
            self.decisions_by_outcome
                .get(o as usize)
                .map_or(0, IntCounter::get)
        };
        Snapshot {
            approved: count(Outcome::Approve),
            deferred: count(Outcome::Defer),
            rejected: count(Outcome::Reject),
            in_flight: self.in_flight.get(),
            produce_errors: self.produce_errors_total.load(Ordering::Relaxed),
            reasons: ReasonCode::ALL
                .iter()
                .zip(&self.reasons_by_code)
                .filter_map(|(c, counter)| {
                    let n = counter.get();
                    (n > 0).then_some((*c, n))
                })
                .collect(),
        }
    }
}

/// Decision totals at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub approved: u64,
    pub deferred: u64,
    pub rejected: u64,
    pub in_flight: i64,
    pub produce_errors: u64,
    /// Reason codes seen at least once, in contract order.
    pub reasons: Vec<(ReasonCode, u64)>,
}

impl Snapshot {
    pub fn decided(&self) -> u64 {
        self.approved + self.deferred + self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::decision::Reason;

    #[test]
    fn decisions_and_reasons_are_counted_under_the_contract_names() {
        let m = Metrics::new();
        m.policy_loaded("sha256:abc");
        let d = Decision::from_reasons(
            Some("m-1".into()),
            vec![Reason {
                code: ReasonCode::ConsentMissing,
                rule: "r".into(),
                citation: "c".into(),
                detail: String::new(),
            }],
            None,
            "v".into(),
            chrono::Utc::now(),
        );
        m.decided(&d, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("smsgate_decisions_total{outcome=\"reject\"} 1"));
        assert!(text.contains("smsgate_reasons_total{code=\"consent.missing\"} 1"));
        assert!(text.contains("smsgate_policy_info{version=\"sha256:abc\"} 1"));
        assert_eq!(m.snapshot().rejected, 1);
        assert_eq!(m.snapshot().reasons, vec![(ReasonCode::ConsentMissing, 1)]);
    }

    #[test]
    fn known_label_sets_and_output_topics_start_at_zero() {
        let m = Metrics::new();
        m.output_topics(&["sms.approved", "sms.changelog"]);
        let text = m.render();
        for series in [
            "smsgate_consent_ignored_total{reason=\"no_evidence\"} 0",
            "smsgate_consent_ignored_total{reason=\"invalid\"} 0",
            "smsgate_consumer_errors_total{kind=\"poll\"} 0",
            "smsgate_produced_total{topic=\"sms.approved\"} 0",
            "smsgate_produce_errors_total{kind=\"authorization\",topic=\"sms.changelog\"} 0",
            "smsgate_produce_errors_total{kind=\"too_large\",topic=\"sms.approved\"} 0",
            "smsgate_delivery_blocked 0",
            "smsgate_produce_retries_total{topic=\"sms.approved\"} 0",
            "smsgate_policy_reload_failures_total 0",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }

    #[test]
    fn a_blocked_output_topic_makes_the_gate_not_ready_until_it_clears() {
        let m = Metrics::new();
        m.consent_caught_up();
        m.delivery_blocked(1);
        assert!(!m.is_ready());
        assert!(m.render().contains("smsgate_ready 0"));
        m.delivery_blocked(0);
        assert!(m.is_ready());
        assert!(m.render().contains("smsgate_delivery_blocked 0"));
    }

    #[test]
    fn ready_needs_consent_and_broker_and_not_stopping() {
        let m = Metrics::new();
        assert!(!m.is_ready());
        m.consent_caught_up();
        assert!(m.is_ready());
        m.broker_reachable(false);
        assert!(!m.is_ready());
        assert!(m.render().contains("smsgate_broker_up 0"));
        m.broker_reachable(true);
        assert!(m.is_ready());
        m.stopping();
        assert!(!m.is_ready());
    }
}
