//! Test-side Kafka clients: a producer that returns where each record
//! landed, a collector that reads the gate's output topics in the background
//! and indexes them by source, and a reader of a group's committed offsets.
//!
//! Nothing here trusts high watermarks (the earlier test broker reported
//! them low; kept, harmless on Kafka): completeness is judged by counting records against the offsets
//! the producer's delivery reports gave.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// An input record: key and value exactly as produced.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Where the broker put a record: (partition, offset).
pub type Position = (i32, i64);

#[derive(Default, Clone)]
struct Reports {
    /// Delivery report per record index: position, or the error.
    results: Arc<Mutex<HashMap<usize, Result<Position, String>>>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        let entry = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.results.lock().unwrap().insert(*index, entry);
    }
}

/// A producer whose `send_all` returns each record's partition and offset.
pub struct TestProducer {
    producer: BaseProducer<Reports>,
    reports: Reports,
}

impl TestProducer {
    pub fn new(bootstrap: &str) -> TestProducer {
        let reports = Reports::default();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.max.bytes", "2000000")
            .set("message.timeout.ms", "120000")
            .create_with_context(reports.clone())
            .expect("create the test producer");
        TestProducer { producer, reports }
    }

    /// Produces every record to `topic` (partitioned by key) and waits for
    /// all delivery reports; returns positions in input order. Panics if any
    /// record is not delivered.
    pub fn send_all(&self, topic: &str, records: &[Record]) -> Vec<Position> {
        self.reports.results.lock().unwrap().clear();
        for (i, r) in records.iter().enumerate() {
            loop {
                let mut record =
                    BaseRecord::with_opaque_to(topic, Box::new(i)).payload(&r.value[..]);
                if let Some(k) = &r.key {
                    record = record.key(&k[..]);
                }
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => panic!("produce to {topic} failed: {e}"),
                }
            }
            self.producer.poll(Duration::ZERO);
        }
        self.producer
            .flush(Timeout::After(Duration::from_secs(120)))
            .expect("flush the test producer");
        let results = self.reports.results.lock().unwrap();
        (0..records.len())
            .map(|i| match results.get(&i) {
                Some(Ok(p)) => *p,
                Some(Err(e)) => panic!("record {i} to {topic} not delivered: {e}"),
                None => panic!("record {i} to {topic}: no delivery report"),
            })
            .collect()
    }
}

impl TestProducer {
    /// Produces one record to an explicit partition, alone in its batch.
    pub fn send_one(&self, topic: &str, partition: i32, r: &Record) -> Position {
        self.reports.results.lock().unwrap().clear();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(0usize))
            .partition(partition)
            .payload(&r.value[..]);
        if let Some(k) = &r.key {
            record = record.key(&k[..]);
        }
        self.producer
            .send(record)
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}/{partition} failed: {e}"));
        self.producer
            .flush(Timeout::After(Duration::from_secs(60)))
            .expect("flush the test producer");
        match self.reports.results.lock().unwrap().get(&0) {
            Some(Ok(p)) => *p,
            other => panic!("record to {topic}/{partition} not delivered: {other:?}"),
        }
    }

    /// Produces consent records, then one more record alone in its batch on
    /// every partition. A broker that reports the high watermark as a
    /// multi-record batch's base offset + 1 (the earlier test broker did)
    /// still gives the true end offset after a single-record last batch, so
    /// "consent caught up" means every record was read. Harmless on Kafka.
    pub fn send_consent(&self, topic: &str, partitions: u32, records: &[Record]) -> Vec<Position> {
        let mut positions = self.send_all(topic, records);
        for p in 0..partitions as i32 {
            positions.push(self.send_one(topic, p, &crate::events::consent_sentinel(p)));
        }
        positions
    }
}

/// Which output topic a record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Approved,
    Quarantine,
    Deferred,
}

/// `<topic>/<partition>/<offset>` of the input a decision was made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One record read from an output topic.
#[derive(Debug, Clone)]
pub struct Output {
    pub route: Route,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// From the `smsgate-source` header (approved, deferred) or the record's
    /// `source` field (quarantine); `None` when neither can be read.
    pub source: Option<Source>,
    /// Where the output record itself sits.
    pub position: Position,
}

impl Output {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &v[..])
    }

    /// The quarantine record as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).unwrap_or(serde_json::Value::Null)
    }

    /// Reason codes of a quarantine record, in record order.
    pub fn codes(&self) -> Vec<String> {
        self.json()["reasons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["code"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn parse_source_header(v: &[u8]) -> Option<Source> {
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let topic = parts.next()?.to_string();
    Some(Source {
        topic,
        partition,
        offset,
    })
}

fn parse_source_json(v: &serde_json::Value) -> Option<Source> {
    let s = &v["source"];
    Some(Source {
        topic: s["topic"].as_str()?.to_string(),
        partition: i32::try_from(s["partition"].as_i64()?).ok()?,
        offset: s["offset"].as_i64()?,
    })
}

#[derive(Default)]
struct Seen {
    outputs: Vec<Output>,
    /// Decisions per input position (of the input topic).
    per_source: HashMap<Position, usize>,
    /// Outputs whose source could not be read.
    unsourced: usize,
}

/// Reads the approved, quarantine and deferred topics from the beginning in
/// a background thread, for as long as it lives.
pub struct Collector {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    input_topic: String,
}

impl Collector {
    /// Starts reading `routes` (topic name, partition count, route).
    pub fn start(bootstrap: &str, input_topic: &str, routes: &[(&str, u32, Route)]) -> Collector {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("collector-{}", fastrand::u64(..)))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.message.max.bytes", "2000000")
            // As a downstream reader must: an aborted transaction's records
            // (exactly_once) are never seen.
            .set("isolation.level", "read_committed")
            .create()
            .expect("create the collector consumer");
        let mut tpl = TopicPartitionList::new();
        let mut by_topic = HashMap::new();
        for (topic, partitions, route) in routes {
            by_topic.insert(topic.to_string(), *route);
            for p in 0..*partitions as i32 {
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .expect("add partition");
            }
        }
        consumer.assign(&tpl).expect("assign output partitions");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            let input = input_topic.to_string();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(result) = consumer.poll(Duration::from_millis(100)) else {
                        continue;
                    };
                    let Ok(m) = result else { continue };
                    let route = by_topic[m.topic()];
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut out = Output {
                        route,
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().unwrap_or_default().to_vec(),
                        headers,
                        source: None,
                        position: (m.partition(), m.offset()),
                    };
                    out.source = match route {
                        Route::Quarantine => parse_source_json(&out.json()),
                        _ => out.header("smsgate-source").and_then(parse_source_header),
                    };
                    let mut seen = seen.lock().unwrap();
                    match &out.source {
                        Some(s) if s.topic == input => {
                            *seen.per_source.entry((s.partition, s.offset)).or_default() += 1;
                        }
                        _ => seen.unsourced += 1,
                    }
                    seen.outputs.push(out);
                }
            })
        };
        Collector {
            seen,
            stop,
            thread: Some(thread),
            input_topic: input_topic.to_string(),
        }
    }

    /// How many of `inputs` have at least one decision so far.
    pub fn covered(&self, inputs: &[Position]) -> usize {
        let seen = self.seen.lock().unwrap();
        inputs
            .iter()
            .filter(|p| seen.per_source.contains_key(p))
            .count()
    }

    /// Output records read so far.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().outputs.len()
    }

    /// A handle on the count for other threads.
    pub fn progress(&self) -> Progress {
        Progress(self.seen.clone())
    }

    /// Waits until every input has a decision, printing progress; then
    /// keeps reading for `settle` so that late duplicates are seen too.
    /// Returns how long full coverage took, or `None` on timeout.
    pub fn wait_for(
        &self,
        inputs: &[Position],
        timeout: Duration,
        settle: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        let mut last_print = Instant::now();
        let done = crate::wait_until(timeout, Duration::from_millis(20), || {
            let covered = self.covered(inputs);
            if last_print.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "  … {covered}/{} inputs decided after {:.1?}",
                    inputs.len(),
                    start.elapsed()
                );
                last_print = Instant::now();
            }
            covered == inputs.len()
        });
        let took = start.elapsed();
        std::thread::sleep(settle);
        done.then_some(took)
    }

    /// Everything read so far.
    pub fn outputs(&self) -> Vec<Output> {
        self.seen.lock().unwrap().outputs.clone()
    }

    /// Decisions per input position.
    pub fn per_source(&self) -> HashMap<Position, usize> {
        self.seen.lock().unwrap().per_source.clone()
    }

    /// Outputs whose source is missing or names another topic.
    pub fn unsourced(&self) -> usize {
        self.seen.lock().unwrap().unsourced
    }

    pub fn input_topic(&self) -> &str {
        &self.input_topic
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The end offset (last produced offset + 1) per partition of `positions`.
pub fn ends(positions: &[Position]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for &(p, o) in positions {
        let e = ends.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    ends
}

/// The offsets `group` has committed on `topic`, per partition (`None`:
/// nothing committed). Panics if the broker does not answer.
pub fn committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: u32,
) -> BTreeMap<i32, Option<i64>> {
    try_committed(bootstrap, group, topic, partitions)
        .unwrap_or_else(|e| panic!("fetch committed offsets: {e}"))
}

/// [`committed`], or the client error.
pub fn try_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: u32,
) -> Result<BTreeMap<i32, Option<i64>>, rdkafka::error::KafkaError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok((0..partitions as i32)
        .map(|p| {
            let offset = got.find_partition(topic, p).and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
            (p, offset)
        })
        .collect())
}

/// The last stable offset (LSO) and high watermark of every partition of
/// `topics` (name, partitions). A transaction left open holds the LSO at its
/// first record while the high watermark moves on; a read_committed
/// client's watermark query answers the LSO.
pub fn stable_offsets(
    bootstrap: &str,
    topics: &[(&str, u32)],
) -> BTreeMap<(String, i32), (i64, i64)> {
    let client = |isolation: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("watermarks-{}", fastrand::u64(..)))
            .set("isolation.level", isolation)
            .create()
            .expect("create a watermark reader")
    };
    let (all, committed) = (client("read_uncommitted"), client("read_committed"));
    let high = |c: &BaseConsumer, topic: &str, p: i32| {
        c.fetch_watermarks(topic, p, Duration::from_secs(10))
            .map(|(_, high)| high)
            .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"))
    };
    topics
        .iter()
        .flat_map(|&(topic, n)| (0..n as i32).map(move |p| (topic, p)))
        .map(|(topic, p)| {
            let lso = high(&committed, topic, p);
            ((topic.to_string(), p), (lso, high(&all, topic, p)))
        })
        .collect()
}

/// Waits until `group` has committed at least `ends` on every partition of
/// `topic`; returns the last committed offsets seen.
pub fn wait_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: u32,
    ends: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> BTreeMap<i32, Option<i64>> {
    let mut last = BTreeMap::new();
    crate::wait_until(timeout, Duration::from_millis(500), || {
        // A busy or restarting broker may time out: ask again.
        match try_committed(bootstrap, group, topic, partitions) {
            Ok(c) => last = c,
            Err(_) => return false,
        }
        ends.iter()
            .all(|(p, end)| last.get(p).copied().flatten().is_some_and(|c| c >= *end))
    });
    last
}

/// A live stream: produces `records` to `topic` from a background thread
/// in batches of 100 at about `per_sec` records/s, never more than `ahead`
/// records ahead of what `progress` has seen decided — so that the gate has
/// work in flight whenever a test kills or stops it, however slow its
/// restarts. The thread returns the positions in input order.
pub fn produce_live(
    bootstrap: &str,
    topic: &str,
    records: Vec<Record>,
    per_sec: u32,
    ahead: usize,
    progress: Progress,
) -> std::thread::JoinHandle<Vec<Position>> {
    const BATCH: usize = 100;
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    let pause = Duration::from_secs_f64(BATCH as f64 / per_sec.max(1) as f64);
    std::thread::spawn(move || {
        let producer = TestProducer::new(&bootstrap);
        let mut positions = Vec::with_capacity(records.len());
        for chunk in records.chunks(BATCH) {
            while positions.len().saturating_sub(progress.count()) >= ahead {
                std::thread::sleep(Duration::from_millis(10));
            }
            positions.extend(producer.send_all(&topic, chunk));
            std::thread::sleep(pause);
        }
        positions
    })
}

/// A cheap handle on a [`Collector`]'s progress, for other threads.
#[derive(Clone)]
pub struct Progress(Arc<Mutex<Seen>>);

impl Progress {
    /// Output records read so far.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().outputs.len()
    }
}
