//! Hold and release of deferred messages, with bounded memory.
//!
//! A thread consumes `topics.deferred` in the group `<group_id>-release`
//! and keeps only a [`DeferredIndex`] of where held records are and when
//! they are due (positions, not records). Every second it takes the due
//! ranges, re-reads each range's offsets with a second consumer, and hands
//! every record the range covers back to the gate by producing it, key and
//! value unchanged, to `topics.outbound` with the header
//! `smsgate-release` (= its release time). The gate's intake decides such a
//! record again **in full** with `Origin::Release` on the instance that
//! owns the recipient's partition — consent as it is then, caps and
//! duplicates from that partition's state — and routes it like any input
//! (approve, quarantine, or defer again), with the usual ordered commit.
//!
//! The deferred offset is committed only up to the first offset of the
//! oldest range not yet handed back ([`DeferredIndex::committable`]), after
//! the hand-back was acknowledged: a crash or a rebalance re-reads
//! everything still held. A range handed back but not yet committed may be
//! handed back twice after a crash; the gate's duplicate memory then
//! rejects the second copy (`duplicate`: its outcome is no longer `defer`),
//! so nothing is approved twice. When the index holds `max_ranges` ranges
//! the deferred partitions are paused until ranges complete.
//!
//! A hand-back goes in chunks of [`CHUNK_RECORDS`], each acknowledged before
//! the range's start moves past it; one that fails (the broker down, an
//! ACL missing) is retried with a backoff from 1 s doubling to 60 s, with
//! no restart, and `smsgate_release_overdue_seconds` says how late the
//! oldest due text is meanwhile.
//!
//! Under `exactly_once` each chunk is one transaction: the records handed
//! back and the deferred offset the index will commit after them
//! ([`DeferredIndex::committable_after`], with the release group's
//! metadata), so a chunk and the commit point it moves are never split by
//! a crash or a rebalance. The commit point cannot pass a range still held
//! below it (texts of another time zone in between), so a range released
//! above it is handed back again after a restart, and the duplicate
//! memory rejects that second copy as said above (the `released/` entries
//! that would skip it are not written yet). A chunk reads for at most a
//! third of the transaction timeout. The index is told only once the
//! transaction committed; a commit that times out is tried again, an
//! aborted chunk is retried like a failed hand-back (an abort that cannot
//! reach the broker is tried again before the next transaction, up to 5
//! times), and a fenced producer stops the releaser and triggers the
//! gate's rebuild.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, config::RDKafkaLogLevel};

use crate::config::Settings;
use crate::gate::clients;
use crate::gate::route::HEADER_RELEASE_AT;
use crate::gate::shutdown::Shutdown;
use crate::state::DeferredIndex;
use crate::state::deferred::HeldRange;
use crate::telemetry::metrics::Metrics;

/// The header that marks a record handed back for its release decision.
pub const HEADER_RELEASE: &str = "smsgate-release";
/// Where a released record was held: `<deferred topic>/<partition>/<offset>`.
pub const HEADER_RELEASED_FROM: &str = "smsgate-released-from";

/// Distinct release instants held at most before reading pauses.
const MAX_RANGES: usize = 100_000;
/// How often due ranges are looked for.
const TICK: Duration = Duration::from_secs(1);
/// Records handed back between two acknowledgements: a failure re-sends at
/// most this many, and a huge range moves its commit point as it goes.
const CHUNK_RECORDS: u64 = 10_000;
/// Time spent handing back per tick before the consumer polls again.
const TICK_BUDGET: Duration = Duration::from_secs(5);
/// A hand-back fails when the broker makes no progress for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Commits of one release transaction tried on retriable errors.
const COMMIT_TRIES: u32 = 5;
/// Aborts failing in a row before the releaser gives up its producer.
const ABORT_TRIES: u32 = 5;

/// A transactional call's error: fatal ones fence the releaser.
fn fatal(e: KafkaError) -> ReleaseError {
    match &e {
        KafkaError::Transaction(t) if t.is_fatal() => ReleaseError::Fenced(e),
        _ => ReleaseError::Kafka(e),
    }
}

/// How far one hand-back got.
enum HandedBack {
    /// The whole range, this many records.
    All(u64),
    /// The records before `next` (`sent` of them); the rest is still held.
    UpTo { next: i64, sent: u64 },
}

struct ReleaseContext {
    index: Arc<Mutex<DeferredIndex>>,
    topic: String,
}

impl ReleaseContext {
    fn index(&self) -> MutexGuard<'_, DeferredIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for ReleaseContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        clients::log(level, fac, message);
    }
}

impl ConsumerContext for ReleaseContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Commit what is released, then forget: the next owner re-reads
            // from the committed offset.
            let mut commit = TopicPartitionList::new();
            let mut index = self.index();
            for e in tpl.elements() {
                if let Some(o) = index.committable(e.partition()) {
                    let _ =
                        commit.add_partition_offset(&self.topic, e.partition(), Offset::Offset(o));
                }
                index.revoke(e.partition());
            }
            drop(index);
            if commit.count() > 0
                && !consumer.assignment_lost()
                && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
            {
                tracing::warn!(error = %e, "deferred commit on revoke failed; held records will be read again");
            }
        }
    }
}

/// Why a hand-back failed.
#[derive(Debug, thiserror::Error)]
enum ReleaseError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The transactional producer is fenced or failed fatally: it must
    /// never write again.
    #[error("release producer fenced: {0}")]
    Fenced(KafkaError),
}

/// The release loop's clients and index.
pub struct Releaser {
    consumer: BaseConsumer<ReleaseContext>,
    reader: BaseConsumer,
    producer: BaseProducer,
    /// `exactly_once`: every chunk is a transaction bounded by this timeout.
    transactions: Option<Duration>,
    /// A transaction whose abort failed (the broker unreachable): aborted
    /// again before the next one begins.
    open_transaction: std::cell::Cell<bool>,
    /// Failed aborts in a row (see [`Releaser::abort`]).
    abort_failures: std::cell::Cell<u32>,
    index: Arc<Mutex<DeferredIndex>>,
    deferred: String,
    outbound: String,
    metrics: Arc<Metrics>,
    paused: bool,
}

impl Releaser {
    pub fn new(settings: &Settings, metrics: Arc<Metrics>) -> Result<Releaser, KafkaError> {
        let index = Arc::new(Mutex::new(DeferredIndex::new(MAX_RANGES)));
        let consumer: BaseConsumer<ReleaseContext> = clients::release_consumer(settings)
            .create_with_context(ReleaseContext {
                index: index.clone(),
                topic: settings.topics.deferred.clone(),
            })?;
        consumer.subscribe(&[&settings.topics.deferred])?;
        let producer: BaseProducer = clients::release_producer(settings).create()?;
        let transactions = settings
            .delivery
            .exactly_once()
            .then(|| Duration::from_millis(settings.delivery.transaction_timeout_ms));
        if let Some(timeout) = transactions {
            producer.init_transactions(timeout)?;
        }
        Ok(Releaser {
            consumer,
            reader: clients::changelog_reader(settings).create()?,
            producer,
            transactions,
            open_transaction: std::cell::Cell::new(false),
            abort_failures: std::cell::Cell::new(0),
            index,
            deferred: settings.topics.deferred.clone(),
            outbound: settings.topics.outbound.clone(),
            metrics,
            paused: false,
        })
    }

    fn index(&self) -> MutexGuard<'_, DeferredIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs until `shutdown`, then commits what was released. Triggers
    /// `fenced` and returns when its static membership is fenced.
    pub fn run(mut self, shutdown: Shutdown, fenced: Shutdown) {
        tracing::info!(topic = %self.deferred, "holding deferred messages");
        let mut last_tick = Instant::now();
        while !shutdown.is_triggered() {
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => self.hold(&m),
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) if clients::is_fenced(&e) => {
                    tracing::warn!(error = %e, "deferred consumer fenced");
                    fenced.trigger();
                    return;
                }
                Some(Err(e)) => tracing::debug!(error = %e, "deferred consumer error"),
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                if self.release_due(&shutdown).is_err() {
                    fenced.trigger();
                    return;
                }
                self.flow_control();
                self.commit(CommitMode::Async);
                let late = self.index().overdue(Utc::now());
                self.metrics.deferred_held(self.index().held_records());
                self.metrics
                    .release_overdue(late.to_std().unwrap_or_default());
            }
        }
        self.commit(CommitMode::Sync);
    }

    fn hold(&self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let (p, o) = (m.partition(), m.offset());
        // An unreadable release time is released at once (and decided again).
        let at = release_at(m).unwrap_or_else(Utc::now);
        let mut index = self.index();
        if index.committable(p).is_none() {
            index.assign(p, o);
        }
        index.hold(p, o, at);
    }

    fn flow_control(&mut self) {
        let full = self.index().is_full();
        if full == self.paused {
            return;
        }
        if let Ok(assignment) = self.consumer.assignment() {
            let r = if full {
                self.consumer.pause(&assignment)
            } else {
                self.consumer.resume(&assignment)
            };
            if r.is_ok() {
                self.paused = full;
                tracing::info!(paused = full, "deferred reading flow control");
            }
        }
    }

    /// Hands back every due range, a chunk at a time. A failed hand-back is
    /// retried with backoff (`DeferredIndex::retry`); a range not finished
    /// within [`TICK_BUDGET`] keeps what it handed back and goes on at the
    /// next tick, so the consumer keeps polling and no range waits behind
    /// one huge one. Fails only when the producer is fenced.
    fn release_due(&self, shutdown: &Shutdown) -> Result<(), ()> {
        let started = Instant::now();
        let due = self.index().due(Utc::now());
        for mut range in due {
            loop {
                if shutdown.is_triggered() {
                    // Held still: the next owner or a restart releases it.
                    return Ok(());
                }
                if started.elapsed() > TICK_BUDGET {
                    self.index().retry_now(&range, Utc::now());
                    break;
                }
                match self.hand_back_chunk(&range) {
                    Ok(HandedBack::All(n)) => {
                        self.index().complete(&range);
                        tracing::info!(
                            partition = range.partition,
                            first = range.first,
                            last = range.last,
                            records = n,
                            release_at = %crate::contract::decision::format_time(&range.release_at),
                            "deferred range released"
                        );
                        break;
                    }
                    Ok(HandedBack::UpTo { next, sent }) => {
                        match self.index().advance(&range, next, sent) {
                            Some(rest) => range = rest,
                            None => break,
                        }
                    }
                    Err(ReleaseError::Fenced(e)) => {
                        tracing::error!(error = %e, "the releaser's producer is fenced; it writes nothing more");
                        return Err(());
                    }
                    Err(ReleaseError::Kafka(e)) => {
                        self.metrics.release_failed();
                        let at = self.index().retry(&range, Utc::now());
                        tracing::warn!(
                            partition = range.partition,
                            first = range.first,
                            error = %e,
                            retry_at = %at.map(|t| crate::contract::decision::format_time(&t)).unwrap_or_default(),
                            "deferred range not released; retrying"
                        );
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// One chunk of `range` handed back; under `exactly_once` in a
    /// transaction with the deferred offset it lets the index commit.
    fn hand_back_chunk(&self, range: &HeldRange) -> Result<HandedBack, ReleaseError> {
        let Some(timeout) = self.transactions else {
            return Ok(self.hand_back(range, None)?);
        };
        if self.open_transaction.get() {
            self.abort(timeout)?;
        }
        self.producer.begin_transaction().map_err(fatal)?;
        self.open_transaction.set(true);
        // Well inside the transaction timeout, so the broker never aborts
        // a chunk being read (a sparse range may read slowly).
        let budget = timeout / 3;
        let result = self
            .hand_back(range, Some(budget))
            .map_err(ReleaseError::from)
            .and_then(|handed| {
                let next = match handed {
                    HandedBack::All(_) => None,
                    HandedBack::UpTo { next, .. } => Some(next),
                };
                let mut tpl = TopicPartitionList::new();
                if let Some(o) = self.index().committable_after(range, next) {
                    tpl.add_partition_offset(&self.deferred, range.partition, Offset::Offset(o))?;
                }
                let group = self.consumer.group_metadata().ok_or(KafkaError::Canceled)?;
                self.producer
                    .send_offsets_to_transaction(&tpl, &group, timeout)
                    .map_err(fatal)?;
                self.commit_transaction(timeout)?;
                Ok(handed)
            });
        match &result {
            Ok(_) | Err(ReleaseError::Fenced(_)) => {}
            // Aborted now, or (the broker unreachable) before the next.
            Err(ReleaseError::Kafka(_)) => self.abort(timeout)?,
        }
        result
    }

    /// Commits the open transaction. A retriable failure (a timeout) is
    /// retried: the commit may be under way, and only librdkafka knows
    /// how it ends; one that needs an abort is returned for the caller to
    /// abort; a fatal one, or retries that never end, fence the releaser
    /// (the gate rebuilds it).
    fn commit_transaction(&self, timeout: Duration) -> Result<(), ReleaseError> {
        for _ in 0..COMMIT_TRIES {
            match self.producer.commit_transaction(timeout) {
                Ok(()) => {
                    self.open_transaction.set(false);
                    return Ok(());
                }
                Err(KafkaError::Transaction(t)) if t.is_retriable() => continue,
                Err(e) => return Err(fatal(e)),
            }
        }
        Err(ReleaseError::Fenced(KafkaError::Canceled))
    }

    /// Aborts the open transaction. When the broker cannot be reached the
    /// transaction stays open and is aborted before the next one; after
    /// [`ABORT_TRIES`] failures in a row the releaser is fenced instead
    /// (the gate rebuilds it with a new producer).
    fn abort(&self, timeout: Duration) -> Result<(), ReleaseError> {
        match self.producer.abort_transaction(timeout).map_err(fatal) {
            Ok(()) => {
                self.open_transaction.set(false);
                self.abort_failures.set(0);
                Ok(())
            }
            Err(ReleaseError::Kafka(e)) => {
                let failures = self.abort_failures.get() + 1;
                self.abort_failures.set(failures);
                if failures >= ABORT_TRIES {
                    return Err(ReleaseError::Fenced(e));
                }
                Err(ReleaseError::Kafka(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Re-reads the range from its first offset and produces the records it
    /// covers to the outbound topic, at most [`CHUNK_RECORDS`] of them;
    /// returns once they are all acknowledged. Fails when the broker makes
    /// no progress for [`STALL_TIMEOUT`].
    /// `budget`: a chunk stops reading after this long (what it has goes
    /// back, the rest waits for the next chunk).
    fn hand_back(
        &self,
        range: &HeldRange,
        budget: Option<Duration>,
    ) -> Result<HandedBack, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.deferred, range.partition, Offset::Offset(range.first))?;
        self.reader.assign(&tpl)?;
        let result = self.hand_back_assigned(range, budget);
        let _ = self.reader.unassign();
        result
    }

    fn hand_back_assigned(
        &self,
        range: &HeldRange,
        budget: Option<Duration>,
    ) -> Result<HandedBack, KafkaError> {
        let started = Instant::now();
        let mut progress = Instant::now();
        let mut next = range.first;
        let mut sent = 0u64;
        let mut seen = HashSet::new();
        while next <= range.last && sent < CHUNK_RECORDS {
            if next > range.first && budget.is_some_and(|b| started.elapsed() > b) {
                break;
            }
            if progress.elapsed() > STALL_TIMEOUT {
                return Err(KafkaError::Canceled);
            }
            let Some(r) = self.reader.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = match r {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(_)) => continue,
                Err(e) => return Err(e),
            };
            progress = Instant::now();
            let o = m.offset();
            next = next.max(o + 1);
            let at = release_at(&m).unwrap_or_else(Utc::now);
            if o > range.last || !range.covers(o, at) || !seen.insert(o) {
                continue;
            }
            self.send_back(&m, range)?;
            sent += 1;
        }
        // Idempotent producer, acks=all: once flushed without error every
        // record is acknowledged (failures are retried by librdkafka until
        // message.timeout.ms, then surface here as an error).
        self.producer.flush(STALL_TIMEOUT)?;
        if next > range.last {
            Ok(HandedBack::All(sent))
        } else {
            Ok(HandedBack::UpTo { next, sent })
        }
    }

    /// Produces one held record to the outbound topic, key and value
    /// unchanged, with the release headers.
    fn send_back(
        &self,
        m: &rdkafka::message::BorrowedMessage<'_>,
        range: &HeldRange,
    ) -> Result<(), KafkaError> {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: HEADER_RELEASE,
                value: Some(crate::contract::decision::format_time(&range.release_at).as_bytes()),
            })
            .insert(Header {
                key: HEADER_RELEASED_FROM,
                value: Some(
                    format!("{}/{}/{}", self.deferred, range.partition, m.offset()).as_bytes(),
                ),
            });
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&self.outbound).headers(headers);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(v) = m.payload() {
            record = record.payload(v);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn commit(&self, mode: CommitMode) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let index = self.index();
        let mut tpl = TopicPartitionList::new();
        for e in assignment.elements() {
            if let Some(o) = index.committable(e.partition()) {
                let _ = tpl.add_partition_offset(&self.deferred, e.partition(), Offset::Offset(o));
            }
        }
        drop(index);
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, mode)
        {
            tracing::debug!(error = %e, "deferred commit failed; retried");
        }
    }
}

/// The record's `smsgate-release-at`, if readable.
fn release_at(m: &impl Message) -> Option<DateTime<Utc>> {
    header(m, HEADER_RELEASE_AT)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The value of header `name` of `m`.
pub fn header<'m>(m: &'m impl Message, name: &str) -> Option<&'m [u8]> {
    let headers = m.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value)
}
