//! Producing generated records to a real Kafka: `smsgate generate` and the
//! benchmark's preload. Throughput-oriented producer settings (it is a load
//! generator, not the gate), optional rate limit, and a count of records the
//! broker acknowledged, so a caller knows nothing was lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::synth::workload::Workload;

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("cannot create producer: {0}")]
    Client(KafkaError),
    #[error("cannot produce to {topic}: {error}")]
    Send { topic: String, error: KafkaError },
    #[error("{failed} of {sent} records to {topic} were not acknowledged")]
    Lost {
        topic: String,
        sent: u64,
        failed: u64,
    },
    #[error("{0}")]
    Usage(String),
}

/// Counts acknowledgements and failures.
#[derive(Default)]
pub struct Acks {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

pub struct AckContext(Arc<Acks>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A producer for loading a topic fast; `properties` (security settings)
/// are applied first.
pub struct Loader {
    producer: BaseProducer<AckContext>,
    acks: Arc<Acks>,
}

impl Loader {
    pub fn new(
        brokers: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Loader, ProduceError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers);
        for (k, v) in properties {
            c.set(k, v);
        }
        c.set("linger.ms", "20");
        c.set("batch.num.messages", "10000");
        c.set("queue.buffering.max.messages", "500000");
        c.set("partitioner", "murmur2_random");
        c.set("acks", "all");
        let acks = Arc::new(Acks::default());
        let producer = c
            .create_with_context(AckContext(acks.clone()))
            .map_err(ProduceError::Client)?;
        Ok(Loader { producer, acks })
    }

    /// Hands one record to the producer, waiting while its queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        partition: Option<i32>,
    ) -> Result<(), ProduceError> {
        let mut record = BaseRecord::to(topic).key(key).payload(value);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((error, _)) => {
                    return Err(ProduceError::Send {
                        topic: topic.to_string(),
                        error,
                    });
                }
            }
        }
    }

    /// Serves delivery reports without blocking.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until everything sent is acknowledged; fails if any record was not.
    pub fn finish(&self, topic: &str, sent: u64, timeout: Duration) -> Result<(), ProduceError> {
        let _ = self.producer.flush(timeout);
        let failed = self.acks.failed.load(Ordering::Relaxed)
            + sent.saturating_sub(
                self.acks.delivered.load(Ordering::Relaxed)
                    + self.acks.failed.load(Ordering::Relaxed),
            );
        if failed > 0 {
            return Err(ProduceError::Lost {
                topic: topic.to_string(),
                sent,
                failed,
            });
        }
        Ok(())
    }

    pub fn acks(&self) -> &Acks {
        &self.acks
    }
}

/// Produces every recipient's consent events to `topic`, keyed by recipient.
/// Returns how many records were produced.
pub fn produce_consent(
    loader: &Loader,
    topic: &str,
    workload: &Workload,
) -> Result<u64, ProduceError> {
    let before = loader.acks().delivered.load(Ordering::Relaxed);
    let mut sent = 0;
    for i in 0..workload.recipients() {
        for c in workload.consent_for(i) {
            loader.send(topic, c.to.as_bytes(), c.to_json().as_bytes(), None)?;
            sent += 1;
        }
        if i % 1024 == 0 {
            loader.poll();
        }
    }
    loader.finish(topic, sent + before, Duration::from_secs(120))?;
    Ok(sent)
}

/// Produces `events` outbound events, at most `rate` per second when given.
/// Returns how many records of each kind were produced.
pub fn produce_events(
    loader: &Loader,
    topic: &str,
    workload: &mut Workload,
    events: u64,
    rate: Option<f64>,
) -> Result<BTreeMap<&'static str, u64>, ProduceError> {
    let before = loader.acks().delivered.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut kinds = BTreeMap::new();
    for n in 0..events {
        let (value, key, kind) = workload.next_event();
        loader.send(topic, key.as_bytes(), &value, None)?;
        *kinds.entry(kind.as_str()).or_insert(0) += 1;
        if n % 1024 == 0 {
            loader.poll();
        }
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = started + Duration::from_secs_f64((n + 1) as f64 / rate);
            let now = Instant::now();
            if due > now {
                loader.poll();
                std::thread::sleep(due - now);
            }
        }
    }
    loader.finish(topic, events + before, Duration::from_secs(120))?;
    Ok(kinds)
}

/// `smsgate generate`.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub brokers: String,
    pub topic: String,
    pub events: u64,
    /// Events per second; `None` is as fast as the broker takes them.
    pub rate: Option<f64>,
    /// Also produce consent for the recipients first (keyed by recipient).
    pub consent_topic: Option<String>,
    /// Distinct recipients (default: as many as events, at least 1000).
    pub recipients: Option<u64>,
    pub seed: u64,
}

/// Runs `smsgate generate`, writing a one-line summary to stderr.
pub fn generate(opts: &GenerateOptions) -> Result<(), ProduceError> {
    if opts.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(ProduceError::Usage("--rate must be positive".into()));
    }
    let loader = Loader::new(&opts.brokers, &BTreeMap::new())?;
    let now = Utc::now();
    let run = format!("g{}", now.format("%H%M%S"));
    let recipients = opts.recipients.unwrap_or(opts.events).max(1000);
    let mut workload = Workload::new(opts.seed, now, recipients, &run);
    if let Some(consent) = &opts.consent_topic {
        let n = produce_consent(&loader, consent, &workload)?;
        eprintln!("smsgate generate: {n} consent events to {consent}");
    }
    let started = Instant::now();
    let kinds = produce_events(&loader, &opts.topic, &mut workload, opts.events, opts.rate)?;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let mix = kinds
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!(
        "smsgate generate: {} events to {} in {:.1} s ({:.0}/s): {mix}",
        opts.events,
        opts.topic,
        secs,
        opts.events as f64 / secs
    );
    Ok(())
}
