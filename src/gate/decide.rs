//! Decide workers: the step between polling and producing.
//!
//! The consume loop ([`crate::gate::intake`]) only polls, claims each record's
//! offset and hands an owned copy to the worker that owns its partition
//! (`partition % workers`), so one partition is always decided by one
//! thread, in offset order, while different partitions are decided in
//! parallel. A worker parses and decides the record against the shared
//! [`Stores`], routes it and hands the output to the producer; after each
//! batch it writes the batch's changelog entries as one record per input
//! partition (split under 256 KiB). The delivery callback acknowledges the offset.
//!
//! Jobs travel in batches of up to [`BATCH`] (one queue operation and at
//! most one thread wake-up per batch, not per record). Backpressure: each
//! worker's queue holds at most [`QUEUE_BATCHES`] batches; when it is full
//! the consume loop waits for the worker. Without
//! that bound the loop (much cheaper per record than deciding) claimed all
//! of `pipeline.max_in_flight` at once and every record waited behind the
//! whole backlog: p99 poll → ack went from ~25 ms to ~400 ms in the
//! benchmark. A revoked partition's queued jobs are dropped (their offsets
//! were never committed; the next owner reads them again).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::Utc;

use crate::config::Topics;
use crate::contract::decision::{Decision, Outcome, Source};
use crate::contract::event::OutboundSms;
use crate::gate::delivery::offsets::Epoch;
use crate::gate::delivery::pending::Pending;
use crate::gate::delivery::producer::{Dispatcher, Flight};
use crate::gate::route;
use crate::policy::live::LivePolicy;
use crate::policy::{Origin, Policy};
use crate::state::Stores;
use crate::state::changelog::ChangelogEntry;
use crate::state::partition::key_is_recipient;
use crate::telemetry::mask;
use crate::telemetry::metrics::Metrics;

/// Jobs per hand-over to a worker.
pub const BATCH: usize = 64;

/// Batches queued per worker: a few milliseconds of work. Every queued job
/// adds its decide time to the latency of those behind it (8 batches cost
/// ~10 ms at p99 in the benchmark); two keep the worker busy.
pub const QUEUE_BATCHES: usize = 2;

/// A batch record's entries stay under this many bytes: librdkafka refuses a
/// record over `message.max.bytes` (1 MB by default), and a refused one
/// would be retried forever; 64 decisions take a few kilobytes unless their
/// message ids are huge.
pub const BATCH_RECORD_BYTES: usize = 256 * 1024;

/// One claimed input record, owned so it can cross to a worker thread.
pub(crate) struct Job {
    pub partition: i32,
    pub offset: i64,
    /// The partition's assignment epoch when the offset was claimed: a job
    /// from an earlier assignment is stale and dropped.
    pub epoch: Epoch,
    /// When it was polled, for the latency histograms.
    pub polled_at: Instant,
    pub origin: Origin,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// What deciding and producing one record needs; shared by the workers.
pub(crate) struct Handler {
    /// Read once per batch: a reload takes effect at the next batch.
    pub policy: Arc<LivePolicy>,
    pub state: Arc<Stores>,
    pub topics: Topics,
    /// `topics.outbound`, shared by every decision's source (no copy a record).
    pub source_topic: Arc<str>,
    /// The changelog topic of caps and duplicates.
    pub changelog: String,
    pub flight: Arc<Flight>,
    pub dispatcher: Arc<Dispatcher>,
    pub metrics: Arc<Metrics>,
    /// Set after the final drain: jobs still queued are dropped (never
    /// committed, so read again after the restart).
    pub abandon: AtomicBool,
}

impl Handler {
    /// Decides a batch of jobs: each output is produced as soon as it is
    /// decided; the changelog entries of the batch go out afterwards as
    /// batch records, one per input partition (more when one would pass
    /// [`BATCH_RECORD_BYTES`]). An input's offset is acknowledged
    /// once its output and its batch record both are.
    pub fn handle_batch(&self, batch: &[Job]) {
        // The batch's quarantine lines go out in one write, at its end.
        let _lines = crate::telemetry::logging::hold();
        // `exactly_once`: the whole batch (outputs and changelog) goes into
        // the open transaction; a commit waits for the batch to end.
        let _transaction = self.dispatcher.transactions().map(|t| t.batch());
        let mut open: Vec<Gathered<Pending>> = Vec::new();
        let policy = self.policy.current();
        let mut current = CurrentCache::default();
        for job in batch {
            let Some((entries, input)) = self.handle(&policy, &mut current, job) else {
                continue;
            };
            gather(&mut open, job.partition, entries, input);
        }
        let now = Utc::now();
        for Gathered {
            partition,
            entries,
            inputs,
            ..
        } in open
        {
            let record = self.state.seal(partition, &entries, now);
            self.dispatcher.send_changelog(
                &self.changelog,
                &record.key,
                record.value.as_deref(),
                Pending::changelog(partition, inputs),
            );
        }
    }

    /// Decides one record, records its state and produces its output;
    /// returns its changelog entries and the completion it shares with the
    /// output, when it has any.
    fn handle(
        &self,
        policy: &Policy,
        current: &mut CurrentCache,
        job: &Job,
    ) -> Option<(Vec<ChangelogEntry>, Pending)> {
        if self.abandon.load(Ordering::Relaxed)
            || !current.is_current(&self.flight, job.partition, job.epoch)
        {
            // Revoked since it was claimed: the next owner reads it again.
            return None;
        }
        let (partition, offset) = (job.partition, job.offset);
        // Revoked between the check above and here: not decided either.
        let decided = self.state.decide_assigned(
            policy,
            partition,
            offset,
            &job.value,
            job.origin,
            Utc::now(),
        )?;
        let (event, decision) = (decided.event.as_ref(), &decided.decision);
        if event.is_some_and(|e| !key_is_recipient(job.key.as_deref(), &e.to)) {
            self.metrics.non_recipient_key();
        }
        self.metrics.decided(decision, job.polled_at.elapsed());
        let source = Source {
            topic: self.source_topic.clone(),
            partition,
            offset,
        };
        log_decision(decision, event, &source);
        let out = route::route(&self.topics, decision, &job.value, &source);
        // With changelog entries, the offset waits for the output and the
        // batch record: the state survives before the commit.
        let outstanding = (!decided.changelog.is_empty()).then(|| Arc::new(AtomicUsize::new(2)));
        let pending = || Pending {
            partition,
            epoch: job.epoch,
            offset,
            polled_at: job.polled_at,
            outstanding: outstanding.clone(),
            to_partition: None,
            inputs: Vec::new(),
            held: false,
        };
        self.dispatcher
            .send(&out, job.key.as_deref(), Box::new(pending()));
        outstanding
            .is_some()
            .then(|| (decided.changelog, pending()))
    }
}

/// The changelog entries of one batch record and the inputs they belong to.
struct Gathered<T> {
    partition: i32,
    entries: Vec<ChangelogEntry>,
    inputs: Vec<T>,
    bytes: usize,
}

/// Adds one input's entries to the last batch record of its partition, or
/// starts another when that one would pass [`BATCH_RECORD_BYTES`] (an
/// input's entries always stay together, in order).
fn gather<T>(open: &mut Vec<Gathered<T>>, partition: i32, entries: Vec<ChangelogEntry>, input: T) {
    let bytes: usize = entries
        .iter()
        .map(|e| e.key.len() + e.value.as_ref().map_or(0, Vec::len))
        .sum();
    match open.iter_mut().rev().find(|g| g.partition == partition) {
        Some(g) if g.bytes + bytes <= BATCH_RECORD_BYTES || g.entries.is_empty() => {
            g.entries.extend(entries);
            g.inputs.push(input);
            g.bytes += bytes;
        }
        _ => open.push(Gathered {
            partition,
            entries,
            inputs: vec![input],
            bytes,
        }),
    }
}

/// The `Flight::is_current` answers of one batch, kept while no partition
/// is assigned or revoked: a batch locks the flight once per partition, not
/// once per record.
#[derive(Default)]
struct CurrentCache {
    version: u64,
    known: Vec<(i32, Epoch, bool)>,
}

impl CurrentCache {
    fn is_current(&mut self, flight: &Flight, partition: i32, epoch: Epoch) -> bool {
        // Read before the answers it guards: a change after this read shows
        // as a new version at the next record.
        let version = flight.assignments_version();
        if version != self.version {
            self.known.clear();
            self.version = version;
        }
        if let Some(&(_, _, current)) = self
            .known
            .iter()
            .find(|(p, e, _)| *p == partition && *e == epoch)
        {
            return current;
        }
        let current = flight.is_current(partition, epoch);
        self.known.push((partition, epoch, current));
        current
    }
}

/// Why a job could not be handed over.
#[derive(Debug, thiserror::Error)]
#[error("decide worker {0} has stopped")]
pub(crate) struct WorkerGone(usize);

/// The worker threads and the queue to each. Used from the consume thread
/// only (the loop and its rebalance callbacks); the lock is never contended.
pub(crate) struct Workers {
    inner: Mutex<Queues>,
    handler: Arc<Handler>,
}

struct Queues {
    /// One per worker; emptied by `stop`.
    senders: Vec<mpsc::SyncSender<Vec<Job>>>,
    /// Jobs collected per worker, not yet handed over.
    filling: Vec<Vec<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` (at least 1) workers sharing `handler`.
    pub fn start(n: usize, handler: Arc<Handler>) -> std::io::Result<Workers> {
        let mut q = Queues {
            senders: Vec::new(),
            filling: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::sync_channel::<Vec<Job>>(QUEUE_BATCHES);
            let h = handler.clone();
            let thread = std::thread::Builder::new()
                .name(format!("smsgate-decide{i}"))
                .spawn(move || {
                    // Ends when the sender is dropped and the queue is empty.
                    for batch in rx {
                        h.handle_batch(&batch);
                    }
                })?;
            q.senders.push(tx);
            q.filling.push(Vec::with_capacity(BATCH));
            q.threads.push(thread);
        }
        Ok(Workers {
            inner: Mutex::new(q),
            handler,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `job` to the batch of the worker owning its partition; a full
    /// batch is handed over at once (waiting while that worker's queue is
    /// full). Call [`Workers::flush`] when no record is coming right away.
    pub fn submit(&self, job: Job) -> Result<(), WorkerGone> {
        let mut q = self.lock();
        if q.senders.is_empty() {
            return Err(WorkerGone(0));
        }
        let i = job.partition.unsigned_abs() as usize % q.senders.len();
        q.filling[i].push(job);
        if q.filling[i].len() < BATCH {
            return Ok(());
        }
        let batch = std::mem::replace(&mut q.filling[i], Vec::with_capacity(BATCH));
        q.senders[i].send(batch).map_err(|_| WorkerGone(i))
    }

    /// Hands over every partly filled batch (before waiting for records to
    /// be acknowledged, e.g. in a revoke's drain).
    pub fn flush(&self) -> Result<(), WorkerGone> {
        let mut q = self.lock();
        let q = &mut *q;
        for (i, (batch, sender)) in q.filling.iter_mut().zip(&q.senders).enumerate() {
            if !batch.is_empty() {
                sender
                    .send(std::mem::take(batch))
                    .map_err(|_| WorkerGone(i))?;
            }
        }
        Ok(())
    }

    /// True when some job waits in a partly filled batch.
    pub fn has_unflushed(&self) -> bool {
        self.lock().filling.iter().any(|b| !b.is_empty())
    }

    /// Drops what is still queued (call after the final drain and commit)
    /// and joins the workers.
    pub fn stop(&self) {
        self.handler.abandon.store(true, Ordering::Relaxed);
        let (senders, threads) = {
            let mut q = self.lock();
            q.filling.clear();
            (
                std::mem::take(&mut q.senders),
                std::mem::take(&mut q.threads),
            )
        };
        drop(senders);
        for t in threads {
            let _ = t.join();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(id: &str, value_bytes: usize) -> ChangelogEntry {
        ChangelogEntry {
            key: format!("dedup/{id}").into_bytes(),
            value: Some(vec![b'x'; value_bytes]),
        }
    }

    /// Issue 23.7: a worker batch's changelog entries are split into batch
    /// records under the byte bound, per partition, inputs kept whole.
    #[test]
    fn batch_records_stay_under_the_byte_bound() {
        let mut open = Vec::new();
        let big = BATCH_RECORD_BYTES / 3;
        for i in 0..7 {
            gather(&mut open, 1, vec![entry(&format!("m{i}"), big)], i);
            gather(&mut open, 2, vec![entry(&format!("n{i}"), 10)], 100 + i);
        }
        let records: Vec<(i32, Vec<i32>)> = open
            .iter()
            .map(|g| (g.partition, g.inputs.clone()))
            .collect();
        assert_eq!(
            records,
            vec![
                (1, vec![0, 1]),
                (2, (100..107).collect()),
                (1, vec![2, 3]),
                (1, vec![4, 5]),
                (1, vec![6]),
            ]
        );
        assert!(open.iter().all(|g| g.bytes <= BATCH_RECORD_BYTES));
        // One input bigger than the bound still gets its record.
        let mut open = Vec::new();
        gather(&mut open, 0, vec![entry("huge", BATCH_RECORD_BYTES * 2)], 0);
        gather(&mut open, 0, vec![entry("next", 10)], 1);
        assert_eq!(open.len(), 2);
    }

    fn flight() -> Flight {
        Flight::new(Arc::new(Metrics::new()), Duration::from_millis(10))
    }

    #[test]
    fn a_batch_keeps_its_answers_until_a_partition_is_assigned_or_revoked() {
        let f = flight();
        let e0 = f.assign(0);
        let e1 = f.assign(1);
        let mut current = CurrentCache::default();
        assert!(current.is_current(&f, 0, e0));
        assert!(current.is_current(&f, 1, e1));
        assert!(!current.is_current(&f, 0, e0 + 100), "another epoch");
        assert_eq!(current.known.len(), 3, "one lock per (partition, epoch)");
        assert!(current.is_current(&f, 0, e0));
        assert_eq!(current.known.len(), 3, "answered from the cache");

        f.revoke(0);
        assert!(!current.is_current(&f, 0, e0), "a revoke is seen at once");
        assert!(current.is_current(&f, 1, e1));
        let e0 = f.assign(0);
        assert!(current.is_current(&f, 0, e0), "and so is the new epoch");
    }
}
