//! The changelog topic of caps and duplicates, seen from the pipeline:
//! making sure it exists (compacted, one partition per input partition) and
//! restoring assigned partitions from it before their records are decided.
//!
//! Restores run on their own thread ([`crate::gate::restorer`]) while the
//! partitions wait paused, so the consumer keeps polling (and stays in its
//! group) however long a restore takes; the gate is not ready (`/readyz`
//! 503) until every assigned partition is restored.
//!
//! A restore reads a changelog partition only once no transaction is open
//! on it (its last stable offset has reached its high watermark). Right
//! after the previous owner committed on revoke, its commit markers may not
//! be written yet: the stable end is then still *before* its last
//! transaction, and a restore to that end missed the caps and duplicates
//! of that transaction while the input offsets it committed were already
//! past them (the 4th marketing text approved after a rebalance). A zombie's
//! open transaction is waited for the same way, until it is aborted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Settings;
use crate::state::changelog::ChangelogError;

/// Partition count of `topic`, `None` when it does not exist.
fn partition_count(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Option<usize>, KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len()))
}

/// Why the changelog topic cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogTopicError {
    #[error("changelog topic {topic} has {has} partitions, {outbound} needs {needs}")]
    Partitions {
        topic: String,
        has: usize,
        outbound: String,
        needs: usize,
    },
    #[error("changelog topic {topic}: {error}")]
    Kafka { topic: String, error: String },
}

/// Creates the changelog topic (compacted, as many partitions as
/// `topics.outbound`) when it is missing; fails when it exists with fewer
/// partitions (state of partition *p* lives in changelog partition *p*).
pub fn ensure_topic(
    settings: &Settings,
    runtime: &tokio::runtime::Handle,
    timeout: Duration,
) -> Result<(), ChangelogTopicError> {
    let topic = settings.changelog_topic();
    let kafka = |e: KafkaError| ChangelogTopicError::Kafka {
        topic: topic.clone(),
        error: e.to_string(),
    };
    let mut config = crate::gate::clients::changelog_reader(settings);
    config.set("enable.partition.eof", "false");
    let probe: BaseConsumer = config.create().map_err(kafka)?;
    let Some(needs) = partition_count(&probe, &settings.topics.outbound, timeout).map_err(kafka)?
    else {
        tracing::warn!(topic = %settings.topics.outbound, "outbound topic missing; changelog topic not checked");
        return Ok(());
    };
    match partition_count(&probe, &topic, timeout).map_err(kafka)? {
        Some(has) if has >= needs => return Ok(()),
        Some(has) => {
            return Err(ChangelogTopicError::Partitions {
                topic,
                has,
                outbound: settings.topics.outbound.clone(),
                needs,
            });
        }
        None => {}
    }
    let admin: AdminClient<DefaultClientContext> = crate::gate::clients::admin(settings)
        .create()
        .map_err(kafka)?;
    let new = NewTopic::new(&topic, needs as i32, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact");
    tracing::debug!(topic = %topic, partitions = needs, "creating the changelog topic");
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let created = runtime
        .block_on(async {
            tokio::time::timeout(timeout, admin.create_topics([&new], &options)).await
        })
        .map_err(|_| ChangelogTopicError::Kafka {
            topic: topic.clone(),
            error: "topic creation timed out".into(),
        })?
        .map_err(kafka)?;
    for r in created {
        match r {
            Ok(_) => tracing::info!(topic = %topic, partitions = needs, "changelog topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(ChangelogTopicError::Kafka {
                    topic,
                    error: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Reads changelog partitions back into the [`Stores`].
pub struct ChangelogReader {
    /// read_committed under `exactly_once`: its end offsets are stable ones.
    consumer: BaseConsumer,
    /// read_uncommitted, never reads: its end offsets are high watermarks,
    /// to tell whether a transaction is still open on a partition.
    watermarks: BaseConsumer,
    topic: String,
    timeout: Duration,
}

impl ChangelogReader {
    pub fn new(settings: &Settings) -> Result<ChangelogReader, KafkaError> {
        let mut watermarks = crate::gate::clients::changelog_reader(settings);
        watermarks.set("isolation.level", "read_uncommitted");
        Ok(ChangelogReader {
            consumer: crate::gate::clients::changelog_reader(settings).create()?,
            watermarks: watermarks.create()?,
            topic: settings.changelog_topic(),
            timeout: Duration::from_secs(settings.state.restore_timeout_secs),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The low watermark and end offset of changelog partition `p`, once no
    /// transaction is open on it (see the module notes); fails at `deadline`.
    fn stable_end(&self, p: i32, deadline: Instant) -> Result<(i64, i64), RestoreError> {
        let mut pause = Duration::from_millis(10);
        let mut logged = false;
        let waiting = Instant::now();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (low, stable) = self
                .consumer
                .fetch_watermarks(&self.topic, p, left)
                .map_err(|e| RestoreError::EndOffset(p, e))?;
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, high) = self
                .watermarks
                .fetch_watermarks(&self.topic, p, left)
                .map_err(|e| RestoreError::EndOffset(p, e))?;
            if stable >= high {
                return Ok((low, stable));
            }
            // Commit markers land within milliseconds; say so only when
            // the wait is a real one (a zombie's transaction).
            if !logged && waiting.elapsed() > Duration::from_secs(1) {
                logged = true;
                tracing::info!(
                    partition = p,
                    stable,
                    high,
                    "changelog partition has an open transaction; its restore waits for it to end"
                );
            }
            if Instant::now() + pause > deadline {
                return Err(RestoreError::OpenTransaction {
                    partition: p,
                    stable,
                    high,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Reads `partitions` from the beginning of their changelog partitions
    /// to the end offsets seen now, handing each record to `apply`. Fails
    /// (fail closed: the caller must not decide these partitions) when an
    /// end offset cannot be read, the changelog cannot be assigned, or the
    /// read makes no progress for `state.restore_timeout_secs` (a stall,
    /// not a total: a changelog of any size completes while it is being
    /// read). A record
    /// `apply` refuses is skipped and counted.
    pub fn restore(
        &self,
        partitions: &[i32],
        mut apply: impl FnMut(i32, &[u8], Option<&[u8]>) -> Result<(), ChangelogError>,
    ) -> Result<Restored, RestoreError> {
        let started = Instant::now();
        let mut deadline = started + self.timeout;
        let mut targets: HashMap<i32, i64> = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            let (low, high) = self.stable_end(*p, deadline)?;
            if high > low {
                targets.insert(*p, high);
                tpl.add_partition_offset(&self.topic, *p, Offset::Beginning)
                    .map_err(RestoreError::Assign)?;
            }
        }
        let mut done = Restored::default();
        if targets.is_empty() {
            return Ok(done);
        }
        self.consumer.assign(&tpl).map_err(RestoreError::Assign)?;
        let reading: Vec<i32> = targets.keys().copied().collect();
        let mut apply = |m: &rdkafka::message::BorrowedMessage<'_>| {
            let (p, o) = (m.partition(), m.offset());
            if !reading.contains(&p) {
                return;
            }
            done.records += 1;
            if let Err(e) = apply(p, m.key().unwrap_or_default(), m.payload()) {
                done.skipped += 1;
                tracing::warn!(partition = p, offset = o, error = %e, "changelog record skipped");
            }
        };
        while !targets.is_empty() && Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    targets.remove(&p);
                }
                Some(Err(e)) => tracing::debug!(error = %e, "changelog read error"),
                Some(Ok(m)) => {
                    deadline = Instant::now() + self.timeout;
                    apply(&m);
                    let (p, o) = (m.partition(), m.offset());
                    if targets.get(&p).is_some_and(|end| o + 1 >= *end) {
                        targets.remove(&p);
                    }
                }
            }
        }
        // Records already fetched past the end offsets seen (some brokers
        // report a batch's end low): state too, keep them.
        while targets.is_empty() && Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(50)) {
                None => break,
                Some(Ok(m)) => apply(&m),
                Some(Err(_)) => {}
            }
        }
        let _ = self.consumer.unassign();
        if !targets.is_empty() {
            let mut left: Vec<i32> = targets.into_keys().collect();
            left.sort_unstable();
            return Err(RestoreError::TimedOut(left, self.timeout));
        }
        done.took = started.elapsed();
        Ok(done)
    }
}

/// What a complete restore read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Restored {
    pub records: u64,
    /// Records that could not be applied (logged one by one).
    pub skipped: u64,
    pub took: Duration,
}

/// Why a restore did not complete: the partitions stay paused and it is
/// tried again.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("changelog end offset of partition {0} unknown: {1}")]
    EndOffset(i32, KafkaError),
    #[error("cannot read the changelog: {0}")]
    Assign(KafkaError),
    #[error("changelog partitions {0:?} not read to their end within {1:?}")]
    TimedOut(Vec<i32>, Duration),
    #[error(
        "changelog partition {partition} has a transaction open (stable offset {stable}, end {high}) past the restore timeout"
    )]
    OpenTransaction {
        partition: i32,
        stable: i64,
        high: i64,
    },
}
