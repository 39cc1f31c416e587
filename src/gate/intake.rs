//! The consume loop: poll `topics.outbound`, claim each record's offset and
//! hand it to its partition's decide worker ([`crate::gate::decide`]); have the
//! acknowledged prefix of each partition committed periodically (by
//! [`crate::gate::committer`], off this thread); prune old state.
//!
//! Backpressure: when `pipeline.max_in_flight` records are unacknowledged
//! the loop stops taking records and waits for acknowledgements, polling
//! only once a second so group membership and rebalances are still served.
//! (Pausing partitions was tried first; rapid pause/resume cycles left a
//! partition stalled in librdkafka 2.12.)
//!
//! A record is never skipped: a failed delivery is produced again; a record
//! that cannot be parsed is quarantined as `malformed`.

use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};

use crate::config::Settings;
use crate::gate::committer::Committer;
use crate::gate::consumer::GateConsumer;
use crate::gate::decide::Job;
use crate::gate::delivery::pending::Pending;
use crate::gate::restorer::Hold;
use crate::gate::shutdown::Shutdown;
use crate::policy::Origin;
use crate::state::Stores;

/// How often a full gate still polls (see the backpressure note above).
const FULL_POLL_EVERY: Duration = Duration::from_secs(1);

/// How often decided message ids and cap entries past their window are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) struct Intake<'a> {
    pub consumer: &'a GateConsumer,
    /// Periodic commits run there, so this loop never waits for them.
    pub committer: &'a Committer,
    pub state: &'a Stores,
    pub settings: &'a Settings,
    /// The changelog topic of caps and duplicates (for prune tombstones).
    pub changelog: &'a str,
}

/// How the loop ended.
pub(crate) enum Ended {
    Stopped,
    Fatal(String),
    /// The static member was fenced: a new consumer can rejoin.
    Fenced(String),
    /// `exactly_once`: the transaction was aborted; the gate is rebuilt
    /// from what was committed.
    Aborted(String),
}

impl Intake<'_> {
    /// Consumes until `shutdown`; ends with [`Ended::Fenced`] when `fenced`
    /// (another feed's consumer was fenced).
    pub fn run(&self, shutdown: &Shutdown, fenced: &Shutdown) -> Ended {
        let ctx = self.consumer.context();
        let delivery = &self.settings.delivery;
        let commit_every = Duration::from_millis(if delivery.exactly_once() {
            delivery.transaction_interval_ms
        } else {
            self.settings.pipeline.commit_interval_ms
        });
        let max_in_flight = self.settings.pipeline.max_in_flight;
        // The consumer is subscribed to `topics.outbound` only.
        let consumed = ctx.metrics.consumed_counter(&self.settings.topics.outbound);
        let mut last_commit = Instant::now();
        let mut last_prune = Instant::now();
        let mut last_poll = Instant::now();
        while !shutdown.is_triggered() {
            if let Some(why) = ctx.flight.fatal() {
                return Ended::Fatal(why);
            }
            if let Some(why) = ctx.flight.aborted() {
                return Ended::Aborted(why);
            }
            if fenced.is_triggered() {
                ctx.metrics
                    .consumer_error(crate::telemetry::metrics::CONSUMER_ERROR_FENCED);
                return Ended::Fenced("a feed's consumer was fenced".into());
            }
            ctx.dispatcher.resend_due();
            ctx.restorer.resume_restored(self.consumer);
            // One clock read per turn: the loop runs once per record.
            let now = Instant::now();
            let full = ctx
                .dispatcher
                .transactions()
                .is_some_and(|t| t.records() >= delivery.transaction_max_records);
            if full || now.duration_since(last_commit) >= commit_every {
                last_commit = now;
                if !self.committer.request() {
                    return Ended::Fatal("the offset commit thread has stopped".into());
                }
            }
            if now.duration_since(last_prune) >= PRUNE_INTERVAL {
                last_prune = now;
                self.prune();
            }
            // Backpressure: at the bound, wait for acknowledgements instead
            // of polling. Polling still happens once per FULL_POLL_EVERY, so
            // rebalances and statistics are served (and, while the broker is
            // unreachable, at most one more record per interval is admitted).
            if ctx.flight.pending_total() >= max_in_flight
                && now.duration_since(last_poll) < FULL_POLL_EVERY
            {
                if let Err(e) = ctx.workers.flush() {
                    return Ended::Fatal(e.to_string());
                }
                ctx.flight.wait_change(Duration::from_millis(20));
                continue;
            }
            last_poll = now;
            // Records batched for the workers go out as soon as the
            // consumer has nothing more at hand.
            let unflushed = ctx.workers.has_unflushed();
            let timeout = if unflushed {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
            match self.consumer.poll(timeout) {
                None if unflushed => {
                    if let Err(e) = ctx.workers.flush() {
                        return Ended::Fatal(e.to_string());
                    }
                }
                None => {}
                Some(Ok(message)) => {
                    consumed.inc();
                    if let Err(why) = self.process(&message, Instant::now()) {
                        return Ended::Fatal(why);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) if crate::gate::clients::is_fenced(&e) => {
                    ctx.metrics
                        .consumer_error(crate::telemetry::metrics::CONSUMER_ERROR_FENCED);
                    return Ended::Fenced(format!("consumer: {e}"));
                }
                Some(Err(e)) if crate::gate::clients::is_fatal(&e) => {
                    return Ended::Fatal(format!("consumer: {e}"));
                }
                Some(Err(e)) => {
                    ctx.metrics
                        .consumer_error(crate::telemetry::metrics::CONSUMER_ERROR_POLL);
                    tracing::debug!(error = %e, "consumer error");
                }
            }
        }
        match ctx.workers.flush() {
            Ok(()) => Ended::Stopped,
            Err(e) => Ended::Fatal(e.to_string()),
        }
    }

    /// Claims the record's offset and queues it for its partition's worker.
    fn process(&self, m: &BorrowedMessage<'_>, polled_at: Instant) -> Result<(), String> {
        let ctx = self.consumer.context();
        let (partition, offset) = (m.partition(), m.offset());
        if let Hold::Rewind(to) = ctx.restorer.hold(partition, offset) {
            return self.rewind(m.topic(), partition, to);
        }
        let Some(epoch) = ctx.flight.take(partition, offset) else {
            // Not (or no longer) ours: the owner reads it from the committed offset.
            return Ok(());
        };
        // A held message handed back at its release time is decided again
        // in full, as a release (see `release`).
        let origin =
            if crate::gate::feeds::release::header(m, crate::gate::feeds::release::HEADER_RELEASE)
                .is_some()
            {
                Origin::Release
            } else {
                Origin::Intake
            };
        let job = Job {
            partition,
            offset,
            epoch,
            polled_at,
            origin,
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().unwrap_or_default().to_vec(),
        };
        ctx.workers.submit(job).map_err(|e| e.to_string())
    }

    /// A record of a partition still being restored slipped through the
    /// pause: seek back to `offset`, so it is read again after the resume.
    fn rewind(&self, topic: &str, partition: i32, offset: i64) -> Result<(), String> {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
            .map_err(|e| e.to_string())?;
        self.consumer
            .seek_partitions(tpl, Duration::from_secs(5))
            .map(|_| ())
            .map_err(|e| format!("cannot rewind partition {partition} being restored: {e}"))
    }

    /// Drops caps and duplicates past their windows and writes the
    /// tombstones (not tied to an input offset: a lost tombstone is
    /// written again by the prune after the next restore).
    fn prune(&self) {
        let ctx = self.consumer.context();
        let _transaction = ctx.dispatcher.transactions().map(|t| t.batch());
        self.state.prune(Utc::now(), |partition, entry| {
            ctx.dispatcher.send_changelog(
                self.changelog,
                &entry.key,
                entry.value.as_deref(),
                Pending::changelog(partition, Vec::new()),
            );
        });
        let (dedup, caps) = self.state.sizes();
        ctx.metrics.state_entries(dedup, caps);
        ctx.metrics.dedup_evicted(self.state.take_evicted());
    }
}
