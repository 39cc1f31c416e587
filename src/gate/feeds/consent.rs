//! The consent feed: reads `topics.consent` from the beginning, every
//! partition, without a consumer group, and keeps reading while the gate
//! runs. Each valid event goes into the [`Stores`]; an invalid one is
//! counted and skipped (a consent record never stops the feed).
//!
//! "Caught up" means every partition known at start has been read up to the
//! end offset seen at start (or to its end, whichever comes first). The gate
//! does not decide outbound events before that, and `/readyz` stays 503.
//! Partitions added later are picked up from the beginning.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext, config::RDKafkaLogLevel};

use crate::gate::shutdown::Shutdown;
use crate::state::Stores;
use chrono::Utc;

use crate::contract::consent::ConsentEvent;
use crate::policy::optout;
use crate::state::consent::Applied;
use crate::telemetry::metrics::Metrics;

/// How often the topic's partition list is looked up again.
const METADATA_REFRESH: Duration = Duration::from_secs(10);

struct FeedContext;

impl ClientContext for FeedContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        crate::gate::clients::log(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        crate::gate::clients::log_error("consent reader", &error, reason);
    }
}
impl ConsumerContext for FeedContext {}

pub struct ConsentFeed {
    consumer: BaseConsumer<FeedContext>,
    topic: String,
    state: Arc<Stores>,
    metrics: Arc<Metrics>,
    assigned: HashSet<i32>,
    /// Partition → next offset to read, for re-assigning.
    next: HashMap<i32, i64>,
    /// Partition → end offset seen at start, until reached.
    targets: HashMap<i32, i64>,
    last_refresh: Instant,
    /// When the feed started, for the consent restore time.
    started: Instant,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl ConsentFeed {
    /// Creates the reader and assigns every partition known now, recording
    /// the end offsets it must reach before the gate is ready.
    pub fn start(
        config: &ClientConfig,
        topic: &str,
        state: Arc<Stores>,
        metrics: Arc<Metrics>,
        timeout: Duration,
    ) -> Result<ConsentFeed, KafkaError> {
        let consumer: BaseConsumer<FeedContext> = config.create_with_context(FeedContext)?;
        let mut feed = ConsentFeed {
            consumer,
            topic: topic.to_string(),
            state,
            metrics,
            assigned: HashSet::new(),
            next: HashMap::new(),
            targets: HashMap::new(),
            last_refresh: Instant::now(),
            started: Instant::now(),
        };
        let partitions = feed.partitions(timeout)?;
        if partitions.is_empty() {
            tracing::warn!(
                topic,
                "consent topic has no partitions (missing?); starting with no consent"
            );
        }
        for p in &partitions {
            let (low, high) = feed.consumer.fetch_watermarks(topic, *p, timeout)?;
            if high > low {
                feed.targets.insert(*p, high);
            }
        }
        feed.assign_new(&partitions)?;
        feed.check_caught_up();
        Ok(feed)
    }

    fn partitions(&self, timeout: Duration) -> Result<Vec<i32>, KafkaError> {
        let md = self.consumer.fetch_metadata(Some(&self.topic), timeout)?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect())
    }

    /// Adds partitions not read yet (from the beginning); the ones already
    /// read continue from their positions.
    fn assign_new(&mut self, partitions: &[i32]) -> Result<(), KafkaError> {
        if partitions.iter().all(|p| self.assigned.contains(p)) {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            self.assigned.insert(*p);
        }
        for p in &self.assigned {
            let from = self
                .next
                .get(p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            tpl.add_partition_offset(&self.topic, *p, from)?;
        }
        // Without a group, only a full assign is allowed.
        self.consumer.assign(&tpl)
    }

    fn check_caught_up(&self) {
        if self.targets.is_empty() && !self.metrics.is_consent_caught_up() {
            self.metrics
                .state_restored("consent", self.started.elapsed());
            tracing::info!(topic = %self.topic, ms = self.started.elapsed().as_millis() as u64, "consent caught up");
            self.metrics.consent_caught_up();
        }
    }

    fn reached(&mut self, partition: i32, next_offset: i64) {
        if self
            .targets
            .get(&partition)
            .is_some_and(|end| next_offset >= *end)
        {
            self.targets.remove(&partition);
            self.check_caught_up();
        }
    }

    /// Reads for up to `timeout`; call in a loop.
    pub fn poll(&mut self, timeout: Duration) {
        if self.last_refresh.elapsed() >= METADATA_REFRESH {
            self.last_refresh = Instant::now();
            if let Ok(ps) = self.partitions(Duration::from_secs(5))
                && let Err(e) = self.assign_new(&ps)
            {
                tracing::debug!(error = %e, "cannot assign new consent partitions");
            }
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(50)) {
                None => return,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if self.targets.remove(&p).is_some() {
                        self.check_caught_up();
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "consent read error");
                    return;
                }
                Some(Ok(m)) => {
                    let (partition, offset) = (m.partition(), m.offset());
                    self.apply(m.payload());
                    self.next.insert(partition, offset + 1);
                    self.reached(partition, offset + 1);
                }
            }
        }
    }

    fn apply(&self, payload: Option<&[u8]>) {
        let Some(bytes) = payload else {
            return; // a tombstone (compaction), not an event
        };
        match self.state.apply_consent_bytes(bytes) {
            Ok((Applied::Counted, recipients)) => {
                self.metrics.consent_applied(recipients);
                // Opt-outs that came from a reply: how long since it arrived.
                if contains(bytes, b"\"reply:")
                    && let Ok(event) = ConsentEvent::parse(bytes)
                    && let Some(seconds) = optout::optout_latency(&event, Utc::now())
                {
                    self.metrics.optout_enforced(seconds);
                }
            }
            Ok((Applied::IgnoredWithoutEvidence, _)) => {
                self.metrics
                    .consent_ignored(crate::telemetry::metrics::IGNORED_NO_EVIDENCE);
            }
            Err(e) => {
                self.metrics
                    .consent_ignored(crate::telemetry::metrics::IGNORED_INVALID);
                // The parse error names the field, never the number.
                tracing::warn!(error = %e, "consent record skipped");
            }
        }
    }

    /// Runs until `shutdown` or `done` (the gate's own end, which may come
    /// without a shutdown when it fails).
    pub fn run(mut self, shutdown: Shutdown, done: Shutdown) {
        while !shutdown.is_triggered() && !done.is_triggered() {
            self.poll(Duration::from_millis(200));
        }
    }
}
