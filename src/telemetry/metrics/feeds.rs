//! Health of the gate's side feeds that run beside the intake: the reply
//! forwarder (opt-outs from `topics.inbound`) and the releaser of deferred
//! texts. If one of them ends while the gate runs (its clients could not be
//! created, it panicked), opt-outs or held texts silently stop flowing;
//! `smsgate_feed_down{feed}` says so, `/readyz` answers 503 and the alert
//! `SmsgateFeedDown` fires. The releaser also reports how late the oldest
//! due text is (`smsgate_release_overdue_seconds`, alert
//! `SmsgateReleaseOverdue`) and its failed hand-backs.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::Metrics;
use super::names::{
    FEED_DOWN, INBOUND_LAG, RELEASE_FAILURES, RELEASE_OVERDUE_SECONDS, REPLIES,
    REPLY_IN_PROGRESS_SINCE,
};

/// `feed` label: the reply forwarder.
pub const FEED_REPLIES: &str = "replies";
/// `feed` label: the releaser of deferred texts.
pub const FEED_RELEASE: &str = "release";
const FEEDS: [&str; 2] = [FEED_REPLIES, FEED_RELEASE];

pub(super) struct FeedMetrics {
    down: IntGaugeVec,
    overdue: Gauge,
    release_failures: IntCounter,
    /// Replies the forwarder finished, by outcome.
    replies: IntCounterVec,
    /// When the reply being forwarded arrived here (Unix seconds; 0 when
    /// none is): a forwarder stuck on one shows as a growing age.
    in_progress_since: Gauge,
    /// Replies waiting behind those received, summed over the forwarder's
    /// partitions: a backlog that does not shrink.
    inbound_lag: IntGauge,
}

impl FeedMetrics {
    pub(super) fn register(r: &Registry) -> FeedMetrics {
        let down = IntGaugeVec::new(
            Opts::new(
                FEED_DOWN,
                "1 while a side feed that should run has ended (replies: opt-out forwarder, release: deferred texts)",
            ),
            &["feed"],
        )
        .expect("valid metric definition");
        for feed in FEEDS {
            down.with_label_values(&[feed]).set(0);
        }
        let overdue = Gauge::new(
            RELEASE_OVERDUE_SECONDS,
            "How long the oldest deferred text that is due has waited past its release time",
        )
        .expect("valid metric definition");
        let release_failures = IntCounter::new(
            RELEASE_FAILURES,
            "Hand-backs of due deferred texts that failed and are retried with backoff",
        )
        .expect("valid metric definition");
        let replies = IntCounterVec::new(
            Opts::new(
                REPLIES,
                "Inbound replies the opt-out forwarder finished, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric definition");
        for outcome in ["opt_out", "not_opt_out", "invalid"] {
            replies.with_label_values(&[outcome]);
        }
        let in_progress_since = Gauge::new(
            REPLY_IN_PROGRESS_SINCE,
            "Unix time the reply being forwarded was received; 0 while none is",
        )
        .expect("valid metric definition");
        let inbound_lag = IntGauge::new(
            INBOUND_LAG,
            "Replies waiting on the inbound topic behind those the forwarder received",
        )
        .expect("valid metric definition");
        for c in [
            Box::new(replies.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(in_progress_since.clone()),
            Box::new(inbound_lag.clone()),
        ] {
            r.register(c).expect("metric registered once");
        }
        r.register(Box::new(down.clone()))
            .expect("metric registered once");
        r.register(Box::new(overdue.clone()))
            .expect("metric registered once");
        r.register(Box::new(release_failures.clone()))
            .expect("metric registered once");
        FeedMetrics {
            down,
            overdue,
            release_failures,
            replies,
            in_progress_since,
            inbound_lag,
        }
    }

    pub(super) fn all_up(&self) -> bool {
        FEEDS
            .iter()
            .all(|feed| self.down.with_label_values(&[feed]).get() == 0)
    }
}

impl Metrics {
    /// `feed`: [`FEED_REPLIES`] or [`FEED_RELEASE`]; `down`: it should run
    /// and does not.
    pub fn feed_down(&self, feed: &'static str, down: bool) {
        self.feeds
            .down
            .with_label_values(&[feed])
            .set(i64::from(down));
        self.refresh_ready();
    }

    /// The oldest due deferred range's wait past its release time.
    pub fn release_overdue(&self, late: std::time::Duration) {
        self.feeds.overdue.set(late.as_secs_f64());
    }

    /// A hand-back of due deferred texts failed (it is retried).
    pub fn release_failed(&self) {
        self.feeds.release_failures.inc();
    }

    /// The forwarder received a reply; `lag` replies wait behind it.
    pub fn reply_received(&self, lag: i64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.feeds.in_progress_since.set(now);
        self.feeds.inbound_lag.set(lag);
    }

    /// The forwarder finished a reply (`outcome`: a [`crate::gate::feeds::replies::Forwarded`] label).
    pub fn reply_done(&self, outcome: &'static str) {
        self.feeds.replies.with_label_values(&[outcome]).inc();
        self.feeds.in_progress_since.set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_down_makes_the_gate_not_ready_until_it_runs_again() {
        let m = Metrics::new();
        m.consent_caught_up();
        assert!(m.is_ready());
        m.feed_down(FEED_RELEASE, true);
        assert!(!m.is_ready());
        let text = m.render();
        assert!(
            text.contains("smsgate_feed_down{feed=\"release\"} 1"),
            "{text}"
        );
        assert!(text.contains("smsgate_ready 0"), "{text}");
        m.feed_down(FEED_RELEASE, false);
        assert!(m.is_ready());
    }

    #[test]
    fn a_reply_in_progress_shows_its_arrival_until_it_is_done() {
        let m = Metrics::new();
        m.reply_received(3);
        let text = m.render();
        assert!(text.contains("smsgate_inbound_lag 3"), "{text}");
        assert!(
            !text.contains("smsgate_reply_in_progress_since_seconds 0\n"),
            "{text}"
        );
        m.reply_done("opt_out");
        let text = m.render();
        assert!(
            text.contains("smsgate_reply_in_progress_since_seconds 0\n"),
            "{text}"
        );
        assert!(
            text.contains("smsgate_replies_total{outcome=\"opt_out\"} 1"),
            "{text}"
        );
    }
}
