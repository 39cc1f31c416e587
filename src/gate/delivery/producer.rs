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
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::gate::delivery::offsets::{Epoch, OffsetTracker};
use crate::gate::delivery::pending::Pending;
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
    /// (one line per second at most).
    last_warn_ms: AtomicU64,
    started: Instant,
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
            started: Instant::now(),
        }
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
        inner.retries.retain(|r| r.pending.partition != partition);
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
        let topic = message.topic().to_string();
        self.metrics.produce_failed(&topic);
        self.warn_rate_limited(&topic, &pending, error);
        let mut inner = self.lock();
        if inner
            .tracker
            .is_current(&pending.partition, pending.owner_epoch())
        {
            inner.retries.push_back(Retry {
                topic,
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers: message.headers().cloned(),
                due: Instant::now() + self.retry_backoff,
                pending,
            });
        }
        // Else the partition was revoked: the next owner re-reads the record
        // from the committed position, which never passed it.
        drop(inner);
        self.notify();
    }

    fn warn_rate_limited(&self, topic: &str, p: &Pending, error: &KafkaError) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 1000)
            && self
                .last_warn_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                topic,
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
        crate::gate::clients::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if crate::gate::clients::is_fatal(&error) {
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
}

pub type Producer = ThreadedProducer<DeliveryContext>;

impl Dispatcher {
    pub fn new(
        config: &rdkafka::ClientConfig,
        flight: Arc<Flight>,
        metrics: Arc<Metrics>,
    ) -> Result<Dispatcher, KafkaError> {
        let producer: Producer = config.create_with_context(DeliveryContext {
            flight: flight.clone(),
        })?;
        Ok(Dispatcher {
            producer,
            flight,
            metrics,
        })
    }

    pub fn producer(&self) -> &Producer {
        &self.producer
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
                    self.metrics.produce_failed(topic);
                    self.flight
                        .warn_rate_limited(topic, &back.delivery_opaque, &error);
                    let retry = Retry {
                        topic: topic.to_string(),
                        key: back.key.map(<[u8]>::to_vec),
                        payload: back.payload.map(<[u8]>::to_vec),
                        headers: back.headers,
                        due: Instant::now() + self.flight.retry_backoff,
                        pending: back.delivery_opaque,
                    };
                    self.flight.lock().retries.push_back(retry);
                    return;
                }
            }
        }
    }

    /// Produces again every failed record whose backoff has passed.
    pub fn resend_due(&self) {
        for retry in self.flight.take_due_retries() {
            if !self
                .flight
                .lock()
                .tracker
                .is_current(&retry.pending.partition, retry.pending.owner_epoch())
            {
                continue;
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
            if Instant::now() >= deadline || self.flight.fatal().is_some() {
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
mod tests {
    use super::*;
    use rdkafka::message::OwnedMessage;

    fn failed_output(partition: i32) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"value".to_vec()),
            Some(b"+8613800000000".to_vec()),
            "sms.approved".into(),
            rdkafka::Timestamp::NotAvailable,
            partition,
            -1,
            None,
        )
    }

    fn pending(partition: i32, epoch: Epoch, offset: i64) -> Box<Pending> {
        Box::new(Pending {
            partition,
            epoch,
            offset,
            polled_at: Instant::now(),
            outstanding: None,
            to_partition: None,
            inputs: Vec::new(),
        })
    }

    fn timeout() -> KafkaError {
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
    }

    #[test]
    fn a_failed_delivery_is_queued_again_after_the_backoff_and_holds_the_commit() {
        let f = Flight::new(Arc::new(Metrics::new()), Duration::from_millis(30));
        let e = f.assign(0);
        f.take(0, 7);
        f.take(0, 8);
        f.on_delivered(&pending(0, e, 8), "sms.approved");
        f.on_failed(pending(0, e, 7), &timeout(), failed_output(0));
        assert_eq!(f.to_commit(), vec![(0, 7)], "7 is not acknowledged yet");
        assert!(f.take_due_retries().is_empty(), "not before the backoff");
        std::thread::sleep(Duration::from_millis(40));
        let due = f.take_due_retries();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].payload.as_deref(), Some(&b"value"[..]));
        assert_eq!(due[0].key.as_deref(), Some(&b"+8613800000000"[..]));
        assert_eq!(due[0].pending.offset, 7);
        f.on_delivered(&due[0].pending, "sms.approved");
        assert_eq!(f.to_commit(), vec![(0, 9)]);
    }

    #[test]
    fn a_failed_changelog_batch_is_retried_and_completes_its_inputs() {
        let f = Flight::new(Arc::new(Metrics::new()), Duration::ZERO);
        let e = f.assign(0);
        f.take(0, 7);
        let shared = Arc::new(AtomicUsize::new(2));
        let mut input = *pending(0, e, 7);
        input.outstanding = Some(shared.clone());
        let mut output = *pending(0, e, 7);
        output.outstanding = Some(shared);
        f.on_delivered(&output, "sms.approved");
        assert_eq!(
            f.to_commit(),
            vec![(0, 7)],
            "7 waits for its changelog batch"
        );
        let batch = Pending::changelog(0, vec![input]);
        f.on_failed(batch, &timeout(), failed_output(0));
        let due = f.take_due_retries();
        assert_eq!(due.len(), 1, "a batch carrying inputs is produced again");
        f.on_delivered(&due[0].pending, "smsgate.gate-state");
        assert_eq!(f.to_commit(), vec![(0, 8)]);
    }

    #[test]
    fn a_failure_for_a_revoked_partition_is_left_to_the_next_owner() {
        let f = Flight::new(Arc::new(Metrics::new()), Duration::ZERO);
        let e = f.assign(3);
        f.take(3, 1);
        f.revoke(3);
        f.on_failed(pending(3, e, 1), &timeout(), failed_output(3));
        assert!(f.take_due_retries().is_empty());
        assert_eq!(f.pending_total(), 0);
    }

    fn shared_pending(outstanding: Option<Arc<AtomicUsize>>) -> Pending {
        Pending {
            partition: 0,
            epoch: 1,
            offset: 7,
            polled_at: Instant::now(),
            outstanding,
            to_partition: None,
            inputs: Vec::new(),
        }
    }

    #[test]
    fn an_input_completes_only_with_its_output_and_every_changelog_entry() {
        let shared = Arc::new(AtomicUsize::new(3));
        let (output, dedup, cap) = (
            shared_pending(Some(shared.clone())),
            shared_pending(Some(shared.clone())),
            shared_pending(Some(shared)),
        );
        assert!(!dedup.completes_input());
        assert!(!output.completes_input());
        assert!(
            cap.completes_input(),
            "the last acknowledgement completes it"
        );
        assert!(
            shared_pending(None).completes_input(),
            "a lone output completes at once"
        );
    }
}
