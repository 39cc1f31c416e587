//! Records in flight: produced, not yet acknowledged by the broker.
//!
//! [`Flight`] holds the offset tracker, the queue of failed deliveries to
//! produce again, and a condition variable woken on every acknowledgement,
//! so a drain (revoke or shutdown) can wait for "nothing pending". The
//! producer's delivery callback runs on the producer's own thread, which
//! keeps acknowledgements flowing while the consumer thread is blocked in a
//! rebalance callback. [`Dispatcher`] sends records and re-sends failed ones.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;

use crate::gate::delivery::blocked::{Blocked, FailureKind};
use crate::gate::delivery::offsets::{Epoch, OffsetTracker};
use crate::gate::delivery::pending::Pending;
use crate::gate::delivery::transaction::Transactions;
use crate::gate::route::Output;
use crate::telemetry::metrics::Metrics;

/// A record whose delivery failed, waiting to be produced again.
struct Retry {
    pending: Box<Pending>,
    topic: String,
    key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    payload: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
    due: Instant,
}

#[derive(Default)]
struct Inner {
    tracker: OffsetTracker<i32>,
    retries: VecDeque<Retry>,
    fatal: Option<String>,
    /// Topics with records held after a permanent failure (not ready).
    blocked: Blocked,
    /// `exactly_once`: why the open transaction must be aborted (a failed
    /// delivery, a failed commit). Nothing is retried then: the gate is
    /// rebuilt and reads again from the committed offsets.
    aborted: Option<String>,
    /// `exactly_once`: why librdkafka failed the open transaction (its
    /// TXNERR line). The records it then purges fail with "purged", so
    /// this is the cause to count and report.
    txn_error: Option<String>,
}

pub struct Flight {
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Threads in `wait_change`: a notify is a system call even when nobody
    /// waits, and the delivery callback runs for every record (it was ~60 %
    /// of the producer thread's time), so it notifies only when this is > 0.
    /// A wake-up missed in the race is bounded by the waiter's timeout.
    waiters: AtomicUsize,
    /// Moves on every assign and revoke: a worker keeps its `is_current`
    /// answers until it does (a lock per record was 1.6 % of its thread).
    assignments: AtomicU64,
    metrics: Arc<Metrics>,
    retry_backoff: Duration,
    /// Milliseconds since `started` of the last produce-failure warning
    /// (one line per second at most) and error (one per 10 s: a lasting
    /// failure repeats on every retry).
    last_warn_ms: AtomicU64,
    last_error_ms: AtomicU64,
    started: Instant,
    /// `exactly_once`: a failed delivery aborts the transaction instead of
    /// being produced again.
    transactional: std::sync::atomic::AtomicBool,
}

impl Flight {
    pub fn new(metrics: Arc<Metrics>, retry_backoff: Duration) -> Flight {
        Flight {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            assignments: AtomicU64::new(0),
            metrics,
            retry_backoff,
            last_warn_ms: AtomicU64::new(0),
            last_error_ms: AtomicU64::new(0),
            started: Instant::now(),
            transactional: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Failed deliveries abort the transaction (`exactly_once`).
    pub fn set_transactional(&self) {
        self.transactional.store(true, Ordering::Relaxed);
    }

    /// Why the open transaction must be (or was) aborted, if it must.
    pub fn aborted(&self) -> Option<String> {
        self.lock().aborted.clone()
    }

    /// Marks the open transaction as failed; the first reason is kept.
    pub fn abort(&self, why: String) {
        self.lock().aborted.get_or_insert(why);
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn assign(&self, partition: i32) -> Epoch {
        let mut inner = self.lock();
        self.assignments.fetch_add(1, Ordering::Release);
        inner.tracker.assign(partition)
    }

    pub fn revoke(&self, partition: i32) {
        let mut inner = self.lock();
        self.assignments.fetch_add(1, Ordering::Release);
        inner.tracker.revoke(&partition);
        // The next owner re-reads these records from the committed offset.
        let (dropped, kept) = std::mem::take(&mut inner.retries)
            .into_iter()
            .partition(|r| r.pending.partition == partition);
        inner.retries = kept;
        for r in dropped.iter().filter(|r| r.pending.held) {
            inner.blocked.release(&r.topic);
        }
        self.metrics.delivery_blocked(inner.blocked.len());
    }

    pub fn is_assigned(&self, partition: i32) -> bool {
        self.lock().tracker.is_assigned(&partition)
    }

    /// Changes whenever a partition is assigned or revoked.
    pub fn assignments_version(&self) -> u64 {
        self.assignments.load(Ordering::Acquire)
    }

    /// True while `partition` is assigned under `epoch` (not revoked since).
    pub fn is_current(&self, partition: i32, epoch: Epoch) -> bool {
        self.lock().tracker.is_current(&partition, epoch)
    }

    pub fn take(&self, partition: i32, offset: i64) -> Option<Epoch> {
        self.lock().tracker.take(&partition, offset)
    }

    pub fn pending_total(&self) -> usize {
        self.lock().tracker.pending_total()
    }

    pub fn pending_in(&self, partitions: &[i32]) -> usize {
        let inner = self.lock();
        partitions.iter().map(|p| inner.tracker.pending(p)).sum()
    }

    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        self.lock().tracker.to_commit()
    }

    pub fn committed(&self, partition: i32, offset: i64) {
        let mut inner = self.lock();
        if inner.tracker.is_assigned(&partition) {
            inner.tracker.committed(&partition, offset);
            self.metrics.committed(partition, offset);
        }
    }

    pub fn fatal(&self) -> Option<String> {
        self.lock().fatal.clone()
    }

    pub fn set_fatal(&self, why: String) {
        self.lock().fatal.get_or_insert(why);
        self.changed.notify_all();
    }

    /// Waits up to `timeout` for an acknowledgement (or anything else that
    /// changes the pending set).
    pub fn wait_change(&self, timeout: Duration) {
        let inner = self.lock();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _ = self.changed.wait_timeout(inner, timeout);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.changed.notify_all();
        }
    }

    fn on_delivered(&self, pending: &Pending, topic: &str) {
        self.metrics.delivered_part(topic);
        let mut inner = None;
        if pending.held {
            let mut guard = self.lock();
            guard.blocked.release(topic);
            self.metrics.delivery_blocked(guard.blocked.len());
            if guard.blocked.is_empty() {
                tracing::info!(topic, "delivery to the topic works again");
            }
            inner = Some(guard);
        }
        for p in std::iter::once(pending).chain(&pending.inputs) {
            if p.epoch != crate::gate::delivery::offsets::NO_EPOCH && p.completes_input() {
                inner.get_or_insert_with(|| self.lock()).tracker.ack(
                    &p.partition,
                    p.epoch,
                    p.offset,
                );
                self.metrics.input_completed(p.polled_at.elapsed());
            }
        }
        drop(inner);
        self.notify();
    }

    fn on_failed(
        &self,
        pending: Box<Pending>,
        error: &KafkaError,
        message: rdkafka::message::OwnedMessage,
    ) {
        let retry = Retry {
            topic: message.topic().to_string(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().cloned(),
            due: Instant::now() + self.retry_backoff,
            pending,
        };
        self.failed(retry, error);
    }

    /// A delivery failed: count and report it, and queue the record to be
    /// produced again while its partition is assigned here (else the next
    /// owner re-reads it from the committed position, which never passed
    /// it). A permanent failure blocks the topic until the record goes.
    fn failed(&self, mut retry: Retry, error: &KafkaError) {
        let cause = self.lock().txn_error.clone();
        let kind = cause
            .as_deref()
            .and_then(FailureKind::of_text)
            .unwrap_or_else(|| FailureKind::of(error));
        self.metrics.produce_failed(&retry.topic, kind.label());
        match &cause {
            Some(cause) => self.report(&retry.topic, &retry.pending, cause, kind),
            None => self.report(&retry.topic, &retry.pending, error, kind),
        }
        let mut inner = self.lock();
        if self.transactional.load(Ordering::Relaxed) {
            // Not produced again: the transaction is aborted and the
            // gate rebuilt; the topic stays blocked until a commit succeeds.
            if kind.is_permanent() && inner.blocked.is_empty() {
                inner.blocked.hold(&retry.topic, kind);
                self.metrics.delivery_blocked(inner.blocked.len());
            }
            let why = match &cause {
                Some(cause) => format!("delivery to {} failed: {cause}", retry.topic),
                None => format!("delivery to {} failed: {error}", retry.topic),
            };
            inner.aborted.get_or_insert(why);
            drop(inner);
            self.changed.notify_all();
            return;
        }
        let current = inner
            .tracker
            .is_current(&retry.pending.partition, retry.pending.owner_epoch());
        if current && kind.is_permanent() && !retry.pending.held {
            retry.pending.held = true;
            inner.blocked.hold(&retry.topic, kind);
        } else if !current && retry.pending.held {
            inner.blocked.release(&retry.topic);
        }
        self.metrics.delivery_blocked(inner.blocked.len());
        if current {
            inner.retries.push_back(retry);
        }
        drop(inner);
        self.notify();
    }

    /// One line per failure, rate-limited: ERROR for a failure that lasts
    /// until an operator acts, WARN for one that passes by itself.
    fn report(&self, topic: &str, p: &Pending, error: &dyn std::fmt::Display, kind: FailureKind) {
        let (last, every_ms) = if kind.is_permanent() {
            (&self.last_error_ms, 10_000)
        } else {
            (&self.last_warn_ms, 1_000)
        };
        let now = self.started.elapsed().as_millis() as u64;
        let before = last.load(Ordering::Relaxed);
        let due = (before == 0 || now.saturating_sub(before) >= every_ms)
            && last
                .compare_exchange(before, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if !due {
            return;
        }
        if kind.is_permanent() {
            tracing::error!(
                topic,
                kind = kind.label(),
                partition = p.partition,
                offset = p.offset,
                error = %error,
                "cannot deliver to {topic}: {error}; the record is held and produced again, \
                 no offset is committed past it, and the gate is not ready until it is delivered"
            );
        } else {
            tracing::warn!(
                topic,
                kind = kind.label(),
                partition = p.partition,
                offset = p.offset,
                error = %error,
                "delivery failed; the record will be produced again"
            );
        }
    }

    fn take_due_retries(&self) -> Vec<Retry> {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut due = Vec::new();
        while inner.retries.front().is_some_and(|r| r.due <= now) {
            if let Some(r) = inner.retries.pop_front() {
                due.push(r);
            }
        }
        due
    }
}

/// The producer's context: delivery reports update the [`Flight`].
pub struct DeliveryContext {
    flight: Arc<Flight>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "TXNERR" {
            // "Current transaction failed in state …: … (TOPIC_AUTHORIZATION_FAILED)"
            let cause = message.trim_start_matches("[thrd:main]: ").to_string();
            self.flight.lock().txn_error.get_or_insert(cause);
        }
        crate::gate::clients::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if crate::gate::clients::is_fatal(&error)
            && self.flight.transactional.load(Ordering::Relaxed)
        {
            // A fenced transactional producer (a newer instance took its
            // transactional.id, or the broker expired its epoch) writes
            // nothing more; the gate is rebuilt with a new one.
            tracing::error!(error = %error, reason, "transactional producer failed fatally");
            self.flight.abort(format!("producer: {error}: {reason}"));
        } else if crate::gate::clients::is_fatal(&error) {
            tracing::error!(error = %error, reason, "producer failed fatally");
            self.flight
                .set_fatal(format!("producer: {error}: {reason}"));
        } else {
            crate::gate::clients::log_error("producer", &error, reason);
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        match result {
            Ok(message) => self.flight.on_delivered(&pending, message.topic()),
            Err((error, message)) => self.flight.on_failed(pending, error, message.detach()),
        }
    }
}

/// Sends output records and re-sends failed ones.
pub struct Dispatcher {
    producer: ThreadedProducer<DeliveryContext>,
    flight: Arc<Flight>,
    metrics: Arc<Metrics>,
    /// `exactly_once`: the open transaction.
    transactions: Option<Transactions>,
}

pub type Producer = ThreadedProducer<DeliveryContext>;

impl Dispatcher {
    /// A producer for `config`; with `transaction_timeout` (for a
    /// `transactional.id` config), its transactions are initialized and the
    /// first begun.
    pub fn new(
        config: &rdkafka::ClientConfig,
        flight: Arc<Flight>,
        metrics: Arc<Metrics>,
        transaction_timeout: Option<Duration>,
    ) -> Result<Dispatcher, KafkaError> {
        let producer: Producer = config.create_with_context(DeliveryContext {
            flight: flight.clone(),
        })?;
        let transactions = match transaction_timeout {
            Some(timeout) => {
                flight.set_transactional();
                Some(Transactions::start(&producer, timeout)?)
            }
            None => None,
        };
        Ok(Dispatcher {
            producer,
            flight,
            metrics,
            transactions,
        })
    }

    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Waits until every record handed to the producer is acknowledged and
    /// its delivery report served (the offset tracker is up to date); false
    /// after `timeout`. (rust-rdkafka's `flush` on a threaded producer
    /// waits in 100 ms steps: a transaction commit took 100 ms instead of
    /// 2 with it, measured.)
    pub fn wait_delivered(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            self.flight.wait_change(Duration::from_millis(1));
        }
        true
    }

    /// The open transaction (`exactly_once`).
    pub fn transactions(&self) -> Option<&Transactions> {
        self.transactions.as_ref()
    }

    /// False once the open transaction must be aborted: nothing more is
    /// sent (those inputs are never committed and are read again after the
    /// rebuild).
    fn may_send(&self) -> bool {
        match &self.transactions {
            None => true,
            Some(t) => {
                t.sent();
                self.flight.aborted().is_none()
            }
        }
    }

    /// Hands one record to the producer, waiting while its queue is full.
    pub fn send(&self, out: &Output<'_>, key: Option<&[u8]>, pending: Box<Pending>) {
        let mut headers = OwnedHeaders::new_with_capacity(out.headers.len());
        for (name, value) in &out.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        if !self.may_send() {
            return;
        }
        let to_partition = pending.to_partition;
        let mut record = BaseRecord::with_opaque_to(out.topic, pending)
            .payload(&*out.payload)
            .headers(headers);
        if let Some(p) = to_partition {
            record = record.partition(p);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        self.metrics.sent();
        self.send_record(record, out.topic)
    }

    /// Hands one changelog record to the producer: `value: None` is a
    /// tombstone (a null value, so compaction deletes the key).
    pub fn send_changelog(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
        pending: Box<Pending>,
    ) {
        if !self.may_send() {
            return;
        }
        let to_partition = pending.to_partition;
        let mut record = BaseRecord::with_opaque_to(topic, pending).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        if let Some(p) = to_partition {
            record = record.partition(p);
        }
        self.metrics.sent();
        self.send_record(record, topic)
    }

    fn send_record(&self, mut record: BaseRecord<'_, [u8], [u8], Box<Pending>>, topic: &str) {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, back)) => {
                    // Refused before it was even queued: treat it like a
                    // failed delivery, so it is retried, never skipped.
                    if crate::gate::clients::is_fatal(&error) {
                        self.flight.set_fatal(format!("producer: {error}"));
                    }
                    let retry = Retry {
                        topic: topic.to_string(),
                        key: back.key.map(<[u8]>::to_vec),
                        payload: back.payload.map(<[u8]>::to_vec),
                        headers: back.headers,
                        due: Instant::now() + self.flight.retry_backoff,
                        pending: back.delivery_opaque,
                    };
                    self.flight.failed(retry, &error);
                    return;
                }
            }
        }
    }

    /// Produces again every failed record whose backoff has passed.
    pub fn resend_due(&self) {
        for retry in self.flight.take_due_retries() {
            {
                let mut inner = self.flight.lock();
                if !inner
                    .tracker
                    .is_current(&retry.pending.partition, retry.pending.owner_epoch())
                {
                    if retry.pending.held {
                        inner.blocked.release(&retry.topic);
                        self.metrics.delivery_blocked(inner.blocked.len());
                    }
                    continue;
                }
            }
            let to_partition = retry.pending.to_partition;
            let mut record = BaseRecord::with_opaque_to(&retry.topic, retry.pending);
            if let Some(v) = &retry.payload {
                record = record.payload(&v[..]);
            }
            if let Some(p) = to_partition {
                record = record.partition(p);
            }
            if let Some(h) = retry.headers {
                record = record.headers(h);
            }
            if let Some(k) = &retry.key {
                record = record.key(&k[..]);
            }
            self.metrics.retried(&retry.topic);
            self.send_record(record, &retry.topic);
        }
    }

    /// Waits until no record of `partitions` (all when `None`) is pending,
    /// re-sending failures meanwhile, or until `deadline`. True when drained.
    pub fn drain(
        &self,
        partitions: Option<&[i32]>,
        deadline: Instant,
        mut tick: impl FnMut(),
    ) -> bool {
        loop {
            let left = match partitions {
                Some(ps) => self.flight.pending_in(ps),
                None => self.flight.pending_total(),
            };
            if left == 0 {
                return true;
            }
            if Instant::now() >= deadline
                || self.flight.fatal().is_some()
                || self.flight.aborted().is_some()
            {
                tracing::warn!(
                    pending = left,
                    "drain deadline reached; uncommitted records will be read again"
                );
                return false;
            }
            self.resend_due();
            tick();
            self.flight.wait_change(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
#[path = "producer_tests.rs"]
mod tests;
