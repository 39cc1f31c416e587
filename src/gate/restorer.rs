//! Restoring assigned partitions' caps and duplicates beside the consumer,
//! not inside its rebalance callback.
//!
//! A restore can take longer than `max.poll.interval.ms` (a changelog of
//! millions of entries, a slow broker). Run inside the callback, it made
//! the consumer leave its group, get the partition back and restore again,
//! in a loop. Now the callback only pauses the new partitions and hands
//! them to a thread of their own ([`Restorer::assigned`]); the consumer
//! keeps polling; the intake loop resumes each partition once its state is
//! installed ([`Restorer::resume_restored`]).
//!
//! Fail closed: a partition is decided only with its state fully restored.
//! A restore that fails (an end offset unknown, the changelog unreadable,
//! the deadline passed) leaves the partition paused and the gate not
//! ready, and is tried again with backoff until it succeeds or the
//! partition is revoked. A revoked partition's restore is dropped, whatever
//! stage it is in: state is installed only under the lock that revoke takes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::gate::consumer::GateConsumer;
use crate::gate::feeds::restore::ChangelogReader;
use crate::gate::shutdown::Shutdown;
use crate::state::Stores;
use crate::telemetry::metrics::Metrics;

/// The longest wait between two attempts at a failed restore.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Partitions to restore, from one assignment.
struct Job {
    partitions: Vec<i32>,
    generation: u64,
}

/// Assigned partitions still waiting for their state, by the assignment
/// generation they belong to; `restored` holds those whose state is in
/// place, for the consumer thread to resume.
#[derive(Default)]
struct Waiting {
    pending: HashMap<i32, u64>,
    restored: Vec<i32>,
    /// Waiting partitions and the first offset of theirs that slipped
    /// through the pause: every later record of theirs rewinds there too,
    /// so none is skipped even if the pause did not take hold.
    rewound: Vec<(i32, i64)>,
}

/// What the intake does with a polled record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Decide it.
    No,
    /// Its partition waits for its state: seek back to this offset (the
    /// first of the partition's records that slipped through), so it is
    /// read again after the resume.
    Rewind(i64),
}

pub(crate) struct Restorer {
    jobs: Mutex<Option<Sender<Job>>>,
    waiting: Arc<Mutex<Waiting>>,
    /// Partitions pending or restored-not-resumed: the intake's per-record
    /// check is one atomic load while nothing is being restored.
    outstanding: Arc<AtomicUsize>,
    generation: AtomicU64,
    metrics: Arc<Metrics>,
    /// `topics.outbound`, for pause and resume.
    topic: String,
    /// Ends the restore thread's backoff waits when the gate stops.
    stop: Shutdown,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Restorer {
    /// Starts the restore thread, which owns `reader`.
    pub(crate) fn start(
        reader: ChangelogReader,
        state: Arc<Stores>,
        metrics: Arc<Metrics>,
        topic: String,
    ) -> std::io::Result<Restorer> {
        let (jobs, rx) = channel::<Job>();
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let stop = Shutdown::new();
        let worker = Worker {
            reader,
            state,
            metrics: metrics.clone(),
            waiting: waiting.clone(),
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name("smsgate-restore".into())
            .spawn(move || worker.run(rx))?;
        Ok(Restorer {
            jobs: Mutex::new(Some(jobs)),
            waiting,
            outstanding,
            generation: AtomicU64::new(0),
            metrics,
            topic,
            stop,
        })
    }

    /// Called in the assignment callback, after `state.assign`: pauses the
    /// partitions and queues their restore. Not ready until they are back.
    pub(crate) fn assigned(&self, consumer: &GateConsumer, partitions: &[i32]) {
        if partitions.is_empty() {
            return;
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut w = lock(&self.waiting);
            w.rewound.retain(|(p, _)| !partitions.contains(p));
            for p in partitions {
                if let Some(i) = w.restored.iter().position(|r| r == p) {
                    // Restored for an earlier assignment, never resumed.
                    w.restored.swap_remove(i);
                    self.outstanding.fetch_sub(1, Ordering::SeqCst);
                }
                if w.pending.insert(*p, generation).is_none() {
                    self.outstanding.fetch_add(1, Ordering::SeqCst);
                    self.metrics.restoring(1);
                }
            }
        }
        if let Err(e) = consumer.pause(&self.list(partitions)) {
            // Records polled meanwhile are sent back (`must_wait`).
            tracing::warn!(error = %e, ?partitions, "cannot pause partitions being restored");
        }
        let sent = lock(&self.jobs).as_ref().is_some_and(|tx| {
            tx.send(Job {
                partitions: partitions.to_vec(),
                generation,
            })
            .is_ok()
        });
        if !sent {
            tracing::error!(
                ?partitions,
                "the restore thread has stopped; partitions stay paused"
            );
        }
    }

    /// Called on revoke: a restore of these partitions no longer matters.
    pub(crate) fn revoked(&self, partitions: &[i32]) {
        let mut w = lock(&self.waiting);
        w.rewound.retain(|(p, _)| !partitions.contains(p));
        for p in partitions {
            if w.pending.remove(p).is_some() {
                self.outstanding.fetch_sub(1, Ordering::SeqCst);
                self.metrics.restore_done();
            }
            if let Some(i) = w.restored.iter().position(|r| r == p) {
                w.restored.swap_remove(i);
                self.outstanding.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Whether a polled record of `partition` at `offset` may be decided:
    /// not while its state is not restored, or restored but the partition
    /// not resumed.
    pub(crate) fn hold(&self, partition: i32, offset: i64) -> Hold {
        if self.outstanding.load(Ordering::SeqCst) == 0 {
            return Hold::No;
        }
        let mut w = lock(&self.waiting);
        if !w.pending.contains_key(&partition) && !w.restored.contains(&partition) {
            return Hold::No;
        }
        match w.rewound.iter().find(|(p, _)| *p == partition) {
            Some((_, first)) => Hold::Rewind(*first),
            None => {
                w.rewound.push((partition, offset));
                Hold::Rewind(offset)
            }
        }
    }

    /// On the consumer thread, each turn: resumes partitions whose state
    /// is now in place.
    pub(crate) fn resume_restored(&self, consumer: &GateConsumer) {
        if self.outstanding.load(Ordering::SeqCst) == 0 {
            return;
        }
        let restored = {
            let mut w = lock(&self.waiting);
            // A partition assigned again meanwhile waits for its new restore.
            let (ready, again): (Vec<i32>, Vec<i32>) = std::mem::take(&mut w.restored)
                .into_iter()
                .partition(|p| !w.pending.contains_key(p));
            w.restored = again;
            w.rewound.retain(|(p, _)| !ready.contains(p));
            ready
        };
        if restored.is_empty() {
            return;
        }
        if let Err(e) = consumer.resume(&self.list(&restored)) {
            tracing::error!(error = %e, partitions = ?restored, "cannot resume restored partitions; retrying");
            lock(&self.waiting).restored.extend(restored);
            return;
        }
        self.outstanding.fetch_sub(restored.len(), Ordering::SeqCst);
        tracing::info!(partitions = ?restored, "partitions restored and resumed");
    }

    fn list(&self, partitions: &[i32]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Invalid);
        }
        tpl
    }
}

impl Drop for Restorer {
    /// The gate is stopping or being rebuilt: the thread ends (its channel
    /// closes), and partitions still waiting no longer hold readiness back
    /// (a rebuilt gate restores its own).
    fn drop(&mut self) {
        self.stop.trigger();
        lock(&self.jobs).take();
        let mut w = lock(&self.waiting);
        for _ in w.pending.drain() {
            self.metrics.restore_done();
        }
    }
}

/// The restore thread.
struct Worker {
    reader: ChangelogReader,
    state: Arc<Stores>,
    metrics: Arc<Metrics>,
    waiting: Arc<Mutex<Waiting>>,
    stop: Shutdown,
}

impl Worker {
    fn run(self, jobs: Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            self.restore(job);
        }
    }

    /// Restores one assignment's partitions, again and again until it
    /// succeeds or none of them is still waiting for it.
    fn restore(&self, job: Job) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let partitions = self.still_waiting(&job);
            if partitions.is_empty() || self.stop.is_triggered() {
                return;
            }
            let mut fresh: HashMap<i32, _> = partitions
                .iter()
                .map(|p| (*p, self.state.empty_partition()))
                .collect();
            // A panic is a failed attempt, not a dead thread: every later
            // assignment would wait paused for it.
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.reader
                    .restore(&partitions, |p, key, value| match fresh.get_mut(&p) {
                        Some(s) => s.apply_changelog(key, value),
                        None => Ok(()),
                    })
                    .map_err(|e| e.to_string())
            }))
            .unwrap_or_else(|_| Err("the restore panicked".to_string()));
            match read {
                Ok(done) => {
                    for state in fresh.values_mut() {
                        state.bound_restored();
                    }
                    self.install(&job, fresh);
                    self.metrics.state_restored("partition", done.took);
                    let (dedup, caps) = self.state.sizes();
                    self.metrics.state_entries(dedup, caps);
                    tracing::info!(
                        ?partitions,
                        records = done.records,
                        skipped = done.skipped,
                        dedup,
                        caps,
                        ms = done.took.as_millis() as u64,
                        "partition state restored"
                    );
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, ?partitions, retry_in = ?backoff, "partition state not restored; the partitions stay paused and the gate not ready");
                    if self.sleep_while_waiting(&job, backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Sleeps `d` in short steps; true when the gate stops or none of the
    /// job's partitions waits for it any more (revoked), so a newer
    /// assignment's restore is not held up behind a backoff.
    fn sleep_while_waiting(&self, job: &Job, d: Duration) -> bool {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            if self.stop.is_triggered() || self.still_waiting(job).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop.is_triggered()
    }

    fn still_waiting(&self, job: &Job) -> Vec<i32> {
        let w = lock(&self.waiting);
        job.partitions
            .iter()
            .copied()
            .filter(|p| w.pending.get(p) == Some(&job.generation))
            .collect()
    }

    /// Installs the restored states of partitions still waiting for this
    /// job, under the lock `revoked` takes, and marks them for resuming.
    fn install(&self, job: &Job, fresh: HashMap<i32, crate::state::partition::PartitionState>) {
        let mut w = lock(&self.waiting);
        for (p, state) in fresh {
            if w.pending.get(&p) != Some(&job.generation) {
                continue;
            }
            self.state.install(p, state);
            w.pending.remove(&p);
            w.restored.push(p);
            self.metrics.restore_done();
        }
    }
}
