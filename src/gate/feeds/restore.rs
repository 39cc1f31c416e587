//! The changelog topic of caps and duplicates, seen from the pipeline:
//! making sure it exists (compacted, one partition per input partition) and
//! restoring assigned partitions from it before their records are decided.
//!
//! Restore runs inside the assignment callback, on the consumer thread, so
//! no record of a partition can be polled before its state is back. The
//! gate is not ready (`/readyz` 503) while a restore runs.

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
use crate::state::Stores;
use crate::telemetry::metrics::Metrics;

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
    consumer: BaseConsumer,
    topic: String,
    timeout: Duration,
}

impl ChangelogReader {
    pub fn new(settings: &Settings) -> Result<ChangelogReader, KafkaError> {
        Ok(ChangelogReader {
            consumer: crate::gate::clients::changelog_reader(settings).create()?,
            topic: settings.changelog_topic(),
            timeout: Duration::from_secs(settings.state.restore_timeout_secs),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Restores `partitions` (already `assign`ed empty in `state`) from the
    /// beginning of their changelog partitions to the end offsets seen now.
    /// Returns false when the deadline passed first (the rest is decided
    /// with what was restored; logged as an error).
    pub fn restore(&self, partitions: &[i32], state: &Stores, metrics: &Metrics) -> bool {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut targets: HashMap<i32, i64> = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.consumer.fetch_watermarks(&self.topic, *p, left) {
                Ok((low, high)) if high > low => {
                    targets.insert(*p, high);
                    let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Beginning);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(partition = p, error = %e, "changelog end offset unknown; partition starts without restored caps and duplicates");
                }
            }
        }
        let mut records = 0u64;
        let mut bad = 0u64;
        if !targets.is_empty() {
            if let Err(e) = self.consumer.assign(&tpl) {
                tracing::error!(error = %e, "cannot read the changelog; partitions start without restored caps and duplicates");
                targets.clear();
            }
            let reading: Vec<i32> = targets.keys().copied().collect();
            let mut apply = |m: &rdkafka::message::BorrowedMessage<'_>| {
                let (p, o) = (m.partition(), m.offset());
                if !reading.contains(&p) {
                    return;
                }
                records += 1;
                if let Err(e) = state.restore(p, m.key().unwrap_or_default(), m.payload()) {
                    bad += 1;
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
                        apply(&m);
                        let (p, o) = (m.partition(), m.offset());
                        if targets.get(&p).is_some_and(|end| o + 1 >= *end) {
                            targets.remove(&p);
                        }
                    }
                }
            }
            // Records already fetched past the end offsets seen (some
            // brokers report a batch's end low): state too, keep them.
            while Instant::now() < deadline {
                match self.consumer.poll(Duration::from_millis(50)) {
                    None => break,
                    Some(Ok(m)) => apply(&m),
                    Some(Err(_)) => {}
                }
            }
            let _ = self.consumer.unassign();
        }
        let complete = targets.is_empty();
        if !complete {
            tracing::error!(partitions = ?targets.keys().collect::<Vec<_>>(), "changelog restore timed out; deciding with what was restored");
        }
        metrics.state_restored("partition", started.elapsed());
        let (dedup, caps) = state.sizes();
        metrics.state_entries(dedup, caps);
        tracing::info!(
            ?partitions,
            records,
            bad,
            dedup,
            caps,
            ms = started.elapsed().as_millis() as u64,
            "partition state restored"
        );
        complete
    }
}
