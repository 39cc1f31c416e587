//! Shared harness for the in-process pipeline tests: a mock cluster with the
//! gate's topics, seeded consent and events, a gate running on it, and
//! readers for the output topics and committed offsets.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use smsgate::config::Settings;
use smsgate::gate::{Gate, PipelineError, RunSummary, Shutdown};
use smsgate::policy::{Policy, PolicySource};
use smsgate::synth::cluster::MockKafka;
use smsgate::synth::workload::{Kind, Workload};
use smsgate::telemetry::metrics::Metrics;

pub const PARTITIONS: i32 = 4;

pub struct Harness {
    pub mock: MockKafka,
    pub settings: Settings,
    pub policy: Policy,
    pub generator: Workload,
}

pub struct Running {
    pub metrics: Arc<Metrics>,
    /// The metrics server's address, once bound.
    pub addr: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<Result<RunSummary, PipelineError>>,
}

impl Harness {
    /// A 3-broker mock cluster with the topics and the example registry.
    pub fn new(group: &str) -> Harness {
        let _ = smsgate::telemetry::logging::init(&smsgate::config::LogSettings {
            format: "pretty".into(),
            level: std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        });
        let mock = MockKafka::start(3).unwrap();
        let mut settings = Settings::load(None).unwrap();
        settings.kafka.brokers = mock.bootstrap().to_string();
        settings.kafka.group_id = group.to_string();
        settings.kafka.startup_timeout_secs = 10;
        settings.metrics.listen = "127.0.0.1:0".into();
        settings.pipeline.commit_interval_ms = 200;
        settings.pipeline.drain_timeout_secs = 15;
        settings.pipeline.retry_backoff_ms = 100;
        // These tests inject faults into the at-least-once pipeline (retries,
        // ordered commits); under exactly_once the mock cluster's group
        // shows no committed offsets (the delivery test's commit check
        // fails), so exactly_once is tested on Kafka (tests/broker).
        settings.delivery.guarantee = smsgate::config::Guarantee::AtLeastOnce;
        // The mock coordinator waits a session timeout for members it still
        // knows before it completes a rebalance; keep that short.
        settings
            .kafka
            .properties
            .insert("session.timeout.ms".into(), "6000".into());
        settings
            .kafka
            .properties
            .insert("heartbeat.interval.ms".into(), "500".into());
        let senders =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/senders.example.toml");
        settings.policy.senders = Some(senders.clone());
        let policy = Policy::load(&PolicySource {
            senders: vec![senders],
            packs: None,
        })
        .unwrap();
        settings.topics.changelog = Some(settings.changelog_topic());
        mock.create_topics(&settings.topics, PARTITIONS).unwrap();
        let generator = Workload::new(42, chrono::Utc::now(), 500, "mock");
        Harness {
            mock,
            settings,
            policy,
            generator,
        }
    }

    pub fn seed_consent(&self) {
        let seeder = self.mock.producer().unwrap();
        for c in (0..self.generator.recipients()).flat_map(|i| self.generator.consent_for(i)) {
            seeder
                .send(
                    &self.settings.topics.consent,
                    Some(c.to.as_bytes()),
                    c.to_json().as_bytes(),
                )
                .unwrap();
        }
        seeder.flush(Duration::from_secs(10)).unwrap();
    }

    /// Produces `n` generated events to the outbound topic; returns how many
    /// of each kind were made.
    pub fn produce_events(&mut self, n: usize) -> HashMap<Kind, usize> {
        let seeder = self.mock.producer().unwrap();
        let mut kinds = HashMap::new();
        for _ in 0..n {
            let (bytes, key, kind) = self.generator.next_event();
            *kinds.entry(kind).or_default() += 1;
            seeder
                .send(&self.settings.topics.outbound, Some(key.as_bytes()), &bytes)
                .unwrap();
        }
        seeder.flush(Duration::from_secs(30)).unwrap();
        kinds
    }

    pub fn produce_raw(&self, records: &[(&[u8], &[u8])]) {
        let seeder = self.mock.producer().unwrap();
        for (k, v) in records {
            seeder
                .send(&self.settings.topics.outbound, Some(k), v)
                .unwrap();
        }
        seeder.flush(Duration::from_secs(10)).unwrap();
    }

    pub fn start(&self) -> Running {
        let gate = Gate::new(self.settings.clone(), self.policy.clone());
        let metrics = gate.metrics();
        let addr = gate.metrics_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(gate.run(shutdown.clone()));
        Running {
            metrics,
            addr,
            shutdown,
            task,
        }
    }

    /// Every record of `topic`, read from the beginning of each partition
    /// until `min` records are seen and nothing more arrives for a moment.
    pub fn read_topic(&self, topic: &str, min: usize, timeout: Duration) -> Vec<OwnedMessage> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.mock.bootstrap())
            .set("group.id", format!("reader-{}", fastrand::u64(..)))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        // The mock cluster's end offsets are exact: read every partition to
        // its end, so a partition whose fetch lags after an outage is not
        // cut off by a quiet spell on the others.
        let mut ends: HashMap<i32, i64> = (0..PARTITIONS)
            .filter_map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .ok()?;
                (high > 0).then_some((p, high))
            })
            .collect();
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if ends
                        .get(&m.partition())
                        .is_some_and(|end| m.offset() + 1 >= *end)
                    {
                        ends.remove(&m.partition());
                    }
                    out.push(m.detach());
                    quiet_since = Instant::now();
                }
                _ => {
                    if ends.is_empty()
                        && out.len() >= min
                        && quiet_since.elapsed() > Duration::from_millis(500)
                    {
                        break;
                    }
                }
            }
        }
        out
    }

    /// The group's committed offsets on the outbound topic, per partition.
    pub fn committed(&self) -> HashMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.mock.bootstrap())
            .set("group.id", &self.settings.kafka.group_id)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(&self.settings.topics.outbound, p);
        }
        let c = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        c.elements()
            .iter()
            .map(|e| {
                let o = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                };
                (e.partition(), o)
            })
            .collect()
    }

    /// The outbound topic's end offsets.
    pub fn end_offsets(&self) -> HashMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.mock.bootstrap())
            .create()
            .unwrap();
        (0..PARTITIONS)
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(&self.settings.topics.outbound, p, Duration::from_secs(10))
                    .unwrap();
                (p, high)
            })
            .collect()
    }
}

/// Waits until the gate's group has committed every input partition to its
/// end offset, up to `timeout`: every input decided and acknowledged (the
/// decision count alone overshoots when records are read again after a
/// lost assignment).
pub async fn wait_committed_to_end(h: &Harness, timeout: Duration) -> bool {
    let ends = h.end_offsets();
    wait_for(timeout, || {
        let c = h.committed();
        ends.iter().all(|(p, end)| c.get(p) == Some(end))
    })
    .await
}

/// Waits until `cond` holds, up to `timeout`; returns whether it held.
pub async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

pub fn header<'m>(m: &'m OwnedMessage, name: &str) -> Option<&'m str> {
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// `topic/partition/offset` of the input an output record came from.
pub fn source_of(m: &OwnedMessage) -> (i32, i64) {
    if let Some(s) = header(m, "smsgate-source") {
        let mut parts = s.rsplitn(3, '/');
        let offset = parts.next().unwrap().parse().unwrap();
        let partition = parts.next().unwrap().parse().unwrap();
        return (partition, offset);
    }
    panic!("output record without smsgate-source header");
}

/// Checks that every input record has at least one output (approved,
/// quarantine or deferred) and returns how many inputs had more than one.
pub fn assert_every_input_has_an_output(
    inputs: &[OwnedMessage],
    outputs: &[OwnedMessage],
) -> usize {
    let mut seen: HashMap<(i32, i64), usize> = HashMap::new();
    for o in outputs {
        *seen.entry(source_of(o)).or_default() += 1;
    }
    let mut duplicates = 0;
    for i in inputs {
        let n = seen.get(&(i.partition(), i.offset())).copied().unwrap_or(0);
        assert!(
            n >= 1,
            "input {}/{} has no output",
            i.partition(),
            i.offset()
        );
        if n > 1 {
            duplicates += 1;
        }
    }
    duplicates
}

/// A plain HTTP/1.1 GET: (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
