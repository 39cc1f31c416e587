//! Health of the gate's side feeds that run beside the intake: the reply
//! forwarder (opt-outs from `topics.inbound`) and the releaser of deferred
//! texts. If one of them ends while the gate runs (its clients could not be
//! created, it panicked), opt-outs or held texts silently stop flowing;
//! `smsgate_feed_down{feed}` says so, `/readyz` answers 503 and the alert
//! `SmsgateFeedDown` fires.

use prometheus::{IntGaugeVec, Opts, Registry};

use super::Metrics;
use super::names::FEED_DOWN;

/// `feed` label: the reply forwarder.
pub const FEED_REPLIES: &str = "replies";
/// `feed` label: the releaser of deferred texts.
pub const FEED_RELEASE: &str = "release";
const FEEDS: [&str; 2] = [FEED_REPLIES, FEED_RELEASE];

pub(super) struct FeedMetrics {
    down: IntGaugeVec,
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
        r.register(Box::new(down.clone()))
            .expect("metric registered once");
        FeedMetrics { down }
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
        assert!(text.contains("smsgate_feed_down{feed=\"release\"} 1"), "{text}");
        assert!(text.contains("smsgate_ready 0"), "{text}");
        m.feed_down(FEED_RELEASE, false);
        assert!(m.is_ready());
    }
}
