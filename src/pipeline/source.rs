//! The consume loop: poll `topics.outbound`, decide, route, produce, and
//! commit the acknowledged prefix of each partition periodically.
//!
//! Backpressure: when `pipeline.max_in_flight` records are unacknowledged
//! the loop stops taking records and waits for acknowledgements, polling
//! only once a second so group membership and rebalances are still served.
//! (Pausing partitions was tried first; rapid pause/resume cycles left a
//! partition stalled in librdkafka 2.12.)
//!
//! A record is never skipped: a failed delivery is produced again; a record
//! that cannot be parsed is quarantined as `malformed`.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};

use super::flight::Pending;
use super::gate_state::GateState;
use super::rebalance::GateConsumer;
use super::route;
use super::shutdown::Shutdown;
use crate::config::Settings;
use crate::decision::{Decision, Outcome, Source};
use crate::event::OutboundSms;
use crate::mask;
use crate::policy::{Origin, Policy};
use crate::state::partition::key_is_recipient;

/// How often a full gate still polls (see the backpressure note above).
const FULL_POLL_EVERY: Duration = Duration::from_secs(1);

/// How often decided message ids and cap entries past their window are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) struct Intake<'a> {
    pub consumer: &'a GateConsumer,
    pub policy: &'a Policy,
    pub state: &'a GateState,
    pub settings: &'a Settings,
    /// The changelog topic of caps and duplicates.
    pub changelog: &'a str,
}

/// How the loop ended.
pub(crate) enum Ended {
    Stopped,
    Fatal(String),
}

impl Intake<'_> {
    pub fn run(&self, shutdown: &Shutdown) -> Ended {
        let ctx = self.consumer.context();
        let commit_every = Duration::from_millis(self.settings.pipeline.commit_interval_ms);
        let max_in_flight = self.settings.pipeline.max_in_flight;
        let mut last_commit = Instant::now();
        let mut last_prune = Instant::now();
        let mut last_poll = Instant::now();
        while !shutdown.is_triggered() {
            if let Some(why) = ctx.flight.fatal() {
                return Ended::Fatal(why);
            }
            ctx.dispatcher.resend_due();
            if last_commit.elapsed() >= commit_every {
                last_commit = Instant::now();
                ctx.commit_now(self.consumer, None, true);
            }
            if last_prune.elapsed() >= PRUNE_INTERVAL {
                last_prune = Instant::now();
                self.prune();
            }
            // Backpressure: at the bound, wait for acknowledgements instead
            // of polling. Polling still happens once per FULL_POLL_EVERY, so
            // rebalances and statistics are served (and, while the broker is
            // unreachable, at most one more record per interval is admitted).
            if ctx.flight.pending_total() >= max_in_flight && last_poll.elapsed() < FULL_POLL_EVERY
            {
                ctx.flight.wait_change(Duration::from_millis(20));
                continue;
            }
            last_poll = Instant::now();
            let timeout = Duration::from_millis(100);
            match self.consumer.poll(timeout) {
                None => {}
                Some(Ok(message)) => self.process(&message),
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) if super::kafka::is_fatal(&e) => {
                    return Ended::Fatal(format!("consumer: {e}"));
                }
                Some(Err(e)) => {
                    ctx.metrics.consumer_error("poll");
                    tracing::debug!(error = %e, "consumer error");
                }
            }
        }
        Ended::Stopped
    }

    fn process(&self, m: &BorrowedMessage<'_>) {
        let polled_at = Instant::now();
        let ctx = self.consumer.context();
        let (partition, offset) = (m.partition(), m.offset());
        ctx.metrics.consumed(m.topic());
        let Some(epoch) = ctx.flight.take(partition, offset) else {
            // Not (or no longer) ours: the owner reads it from the committed offset.
            return;
        };
        let value = m.payload().unwrap_or_default();
        // A held message handed back at its release time is decided again
        // in full, as a release (see `release`).
        let origin = if super::release::header(m, super::release::HEADER_RELEASE).is_some() {
            Origin::Release
        } else {
            Origin::Intake
        };
        let decided = self
            .state
            .decide(self.policy, partition, value, origin, Utc::now());
        let (event, decision) = (decided.event.as_ref(), &decided.decision);
        if event.is_some_and(|e| !key_is_recipient(m.key(), &e.to)) {
            ctx.metrics.non_recipient_key();
        }
        ctx.metrics.decided(decision, polled_at.elapsed());
        let source = Source {
            topic: m.topic().to_string(),
            partition,
            offset,
        };
        log_decision(decision, event, &source);
        let out = route::route(&self.settings.topics, decision, value, &source);
        // The offset is acknowledged once the output and every changelog
        // entry of this decision are: the state survives before the commit.
        let outstanding = (!decided.changelog.is_empty())
            .then(|| Arc::new(AtomicUsize::new(1 + decided.changelog.len())));
        let pending = |to_partition| {
            Box::new(Pending {
                partition,
                epoch,
                offset,
                polled_at,
                outstanding: outstanding.clone(),
                to_partition,
            })
        };
        for entry in &decided.changelog {
            ctx.dispatcher.send_changelog(
                self.changelog,
                &entry.key,
                entry.value.as_deref(),
                pending(Some(partition)),
            );
        }
        ctx.dispatcher.send(&out, m.key(), pending(None));
    }

    /// Drops caps and duplicates past their windows and writes the
    /// tombstones (not tied to an input offset: a lost tombstone is
    /// written again by the prune after the next restore).
    fn prune(&self) {
        let ctx = self.consumer.context();
        let tombstones = self.state.prune(Utc::now());
        let (dedup, caps) = self.state.sizes();
        ctx.metrics.state_entries(dedup, caps);
        for (partition, entry) in tombstones {
            ctx.dispatcher.send_changelog(
                self.changelog,
                &entry.key,
                entry.value.as_deref(),
                Box::new(Pending {
                    partition,
                    epoch: super::offsets::NO_EPOCH,
                    offset: -1,
                    polled_at: Instant::now(),
                    outstanding: None,
                    to_partition: Some(partition),
                }),
            );
        }
    }
}

/// One info line per quarantined event; deferred ones at debug, approved
/// ones at trace. The number is masked, the body never logged.
fn log_decision(decision: &Decision, event: Option<&OutboundSms>, source: &Source) {
    // Masked only when a line is written (most decisions log nothing).
    let to = || {
        event
            .map(|e| mask::phone(&e.to))
            .unwrap_or_else(|| "-".into())
    };
    let message_id = decision.message_id.as_deref().unwrap_or("-");
    let reasons = || {
        decision
            .reasons
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    match decision.outcome {
        Outcome::Reject => tracing::info!(
            message_id,
            to = to(),
            partition = source.partition,
            offset = source.offset,
            outcome = "reject",
            reasons = reasons(),
            "quarantined"
        ),
        Outcome::Defer => tracing::debug!(
            message_id,
            to = to(),
            partition = source.partition,
            offset = source.offset,
            outcome = "defer",
            reasons = reasons(),
            "deferred"
        ),
        Outcome::Approve => tracing::trace!(
            message_id,
            partition = source.partition,
            offset = source.offset,
            "approved"
        ),
    }
}
