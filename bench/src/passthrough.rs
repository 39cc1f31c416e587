//! The pass-through: the limit of the gate's own plumbing. The same
//! librdkafka consumer and producer configurations as the gate
//! ([`smsgate::gate::clients`]), the same input topic, partition count,
//! acks and in-flight limit; every record is consumed and produced to the
//! approved topic unchanged, with no parsing and no deciding. Offsets are
//! committed at the gate's interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::procstat::{self, ThreadCpu};
use smsgate::config::Settings;
use smsgate::gate::clients;

/// What one pass-through run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PassReport {
    pub records: u64,
    /// Wall-clock (Unix ms) of the first record polled and the last one acknowledged.
    pub first_poll_unix_ms: u64,
    pub last_ack_unix_ms: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU seconds of this process between the first poll and the last ack.
    pub cpu_seconds: f64,
    /// Seconds its threads waited for a CPU in that window (other load).
    pub run_queue_wait_seconds: f64,
    /// CPU seconds in that window by thread name, busiest first.
    #[serde(default)]
    pub threads: Vec<(String, f64)>,
    pub rss_mb: f64,
    pub failed_deliveries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("timed out after {secs} s with {acked} of {expected} records acknowledged")]
    Timeout {
        secs: u64,
        acked: u64,
        expected: u64,
    },
}

/// Shared between the consume loop and the producer's delivery thread.
#[derive(Default)]
struct Shared {
    acked: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    /// Poll → ack in microseconds, one per record.
    latencies_us: Mutex<Vec<u32>>,
    /// Partition → highest acknowledged offset.
    acked_offsets: Mutex<HashMap<i32, i64>>,
    last_ack: Mutex<Option<Instant>>,
}

struct Sent {
    partition: i32,
    offset: i64,
    polled_at: Instant,
}

struct Delivery(Arc<Shared>);

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<Sent>;
    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        let s = &self.0;
        if result.is_err() {
            s.failed.fetch_add(1, Ordering::Relaxed);
        }
        let us = sent.polled_at.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if let Ok(mut l) = s.latencies_us.lock() {
            l.push(us);
        }
        if let Ok(mut o) = s.acked_offsets.lock() {
            let e = o.entry(sent.partition).or_insert(-1);
            *e = (*e).max(sent.offset);
        }
        if let Ok(mut t) = s.last_ack.lock() {
            *t = Some(Instant::now());
        }
        s.in_flight.fetch_sub(1, Ordering::Relaxed);
        s.acked.fetch_add(1, Ordering::Relaxed);
    }
}

/// The consumer's context: statistics arrive (and are parsed) as for the
/// gate, and ignored.
struct Quiet;

impl ClientContext for Quiet {
    fn stats(&self, _: Statistics) {}
}
impl ConsumerContext for Quiet {}

fn unix_ms(at: Instant) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.saturating_sub(at.elapsed())).as_millis() as u64
}

/// Runs until `expected` records are acknowledged (or `timeout`).
pub fn run(settings: &Settings, expected: u64, timeout: Duration) -> Result<PassReport, PassError> {
    // The plumbing's limit: the gate's clients without transactions
    // (the gate itself runs with whatever `delivery.guarantee` says).
    let mut settings = settings.clone();
    settings.delivery.guarantee = smsgate::config::Guarantee::AtLeastOnce;
    let settings = &settings;
    let shared = Arc::new(Shared::default());
    shared
        .latencies_us
        .lock()
        .map(|mut l| l.reserve(expected as usize))
        .ok();
    let producer: ThreadedProducer<Delivery> =
        clients::producer(settings).create_with_context(Delivery(shared.clone()))?;
    let consumer: BaseConsumer<Quiet> =
        clients::group_consumer(settings).create_with_context(Quiet)?;
    consumer.subscribe(&[&settings.topics.outbound])?;
    let out = settings.topics.approved.as_str();
    let input = settings.topics.outbound.as_str();
    let max_in_flight = settings.pipeline.max_in_flight as u64;
    let commit_every = Duration::from_millis(settings.pipeline.commit_interval_ms);
    let started = Instant::now();
    let mut first: Option<(Instant, f64, f64, ThreadCpu)> = None;
    let mut polled = 0u64;
    let mut last_commit = Instant::now();
    while shared.acked.load(Ordering::Relaxed) < expected {
        if started.elapsed() > timeout {
            return Err(PassError::Timeout {
                secs: timeout.as_secs(),
                acked: shared.acked.load(Ordering::Relaxed),
                expected,
            });
        }
        if last_commit.elapsed() >= commit_every {
            last_commit = Instant::now();
            commit(&consumer, input, &shared, CommitMode::Async);
        }
        if polled >= expected || shared.in_flight.load(Ordering::Relaxed) >= max_in_flight {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let m = match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => m,
            _ => continue,
        };
        let polled_at = Instant::now();
        if first.is_none() {
            first = Some((
                polled_at,
                procstat::self_cpu_seconds(),
                self_wait(),
                ThreadCpu::of(std::process::id()),
            ));
        }
        polled += 1;
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = Box::new(Sent {
            partition: m.partition(),
            offset: m.offset(),
            polled_at,
        });
        let mut record =
            BaseRecord::with_opaque_to(out, sent).payload(m.payload().unwrap_or_default());
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    let cpu_end = procstat::self_cpu_seconds();
    let wait_end = self_wait();
    let threads_end = ThreadCpu::of(std::process::id());
    commit(&consumer, input, &shared, CommitMode::Sync);
    let (t0, cpu0, wait0, threads0) =
        first.unwrap_or_else(|| (started, 0.0, 0.0, ThreadCpu::default()));
    let t1 = shared
        .last_ack
        .lock()
        .ok()
        .and_then(|t| *t)
        .unwrap_or_else(Instant::now);
    let seconds = t1.duration_since(t0).as_secs_f64().max(1e-6);
    let mut lat = shared
        .latencies_us
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    Ok(PassReport {
        records: expected,
        first_poll_unix_ms: unix_ms(t0),
        last_ack_unix_ms: unix_ms(t1),
        seconds,
        rps: expected as f64 / seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        cpu_seconds: cpu_end - cpu0,
        run_queue_wait_seconds: wait_end - wait0,
        threads: threads_end.since(&threads0),
        rss_mb: procstat::self_peak_rss_mb(),
        failed_deliveries: shared.failed.load(Ordering::Relaxed),
    })
}

fn self_wait() -> f64 {
    procstat::run_queue_wait_seconds(std::process::id()).unwrap_or(0.0)
}

fn commit(consumer: &BaseConsumer<Quiet>, topic: &str, shared: &Shared, mode: CommitMode) {
    let mut tpl = TopicPartitionList::new();
    if let Ok(o) = shared.acked_offsets.lock() {
        for (p, off) in o.iter() {
            let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(off + 1));
        }
    }
    if tpl.count() > 0 {
        let _ = consumer.commit(&tpl, mode);
    }
}
