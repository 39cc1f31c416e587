//! The opt-out loop's first half on this instance: a task that consumes
//! `topics.inbound` in the group `<group_id>-inbound` and writes each
//! opt-out reply to `topics.consent` ([`run_forwarder`]).
//! Every instance's consent feed then applies it. One group across the
//! instances means each reply is forwarded once: under `exactly_once` the
//! opt-out and the reply's offset commit in one transaction; under
//! `at_least_once` a crash may forward a reply twice, which is harmless.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Settings;
use crate::contract::reply::InboundReply;
use crate::gate::clients;
use crate::gate::shutdown::Shutdown;
use crate::policy::Registry;
use crate::policy::live::LivePolicy;
use crate::policy::optout::opt_out;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::metrics::feeds::FEED_REPLIES;

/// Spawns the forwarder on the current tokio runtime. Its health is in
/// `metrics` (`smsgate_feed_down{feed="replies"}`, readiness): down when its
/// clients cannot be created or it panics; a fenced forwarder makes the
/// gate rebuild, which spawns a new one. `fenced` is triggered when the inbound consumer's
/// static membership is fenced (see [`crate::gate::run`]).
pub fn spawn(
    settings: &Settings,
    policy: &Arc<LivePolicy>,
    shutdown: &Shutdown,
    fenced: &Shutdown,
    metrics: &Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    let down = |why: &str, error: &dyn std::fmt::Display| {
        tracing::error!(error = %error, "{why}; opt-out replies are not forwarded");
        metrics.feed_down(FEED_REPLIES, true);
        tokio::spawn(async {})
    };
    let consumer: StreamConsumer = match clients::inbound_consumer(settings).create() {
        Ok(c) => c,
        Err(e) => return down("cannot create the inbound consumer", &e),
    };
    if let Err(e) = consumer.subscribe(&[&settings.topics.inbound]) {
        return down("cannot subscribe to the inbound topic", &e);
    }
    let producer: FutureProducer = match clients::inbound_producer(settings).create() {
        Ok(p) => p,
        Err(e) => return down("cannot create the opt-out producer", &e),
    };
    metrics.feed_down(FEED_REPLIES, false);
    // The registry in force for each reply, so a reload reaches it.
    let live = policy.clone();
    let registry = move || live.current().shared_registry();
    let topic = settings.topics.consent.clone();
    let stop = shutdown.subscribe();
    tracing::info!(topic = %settings.topics.inbound, "forwarding opt-out replies");
    let fenced = fenced.clone();
    let commit = if settings.delivery.exactly_once() {
        Commit::Transaction(Duration::from_millis(
            settings.delivery.transaction_timeout_ms,
        ))
    } else {
        Commit::AfterAck
    };
    let mut stopping = shutdown.subscribe();
    let replies = metrics.clone();
    let task = tokio::spawn(async move {
        if let Commit::Transaction(timeout) = commit {
            let p = producer.clone();
            // A stop during start-up (broker unreachable) must not wait for
            // the transaction timeout.
            let init = tokio::select! {
                init = tokio::task::spawn_blocking(move || p.init_transactions(timeout)) => init,
                _ = stopping.wait_for(|stop| *stop) => return ForwarderEnd::Stopped,
            };
            let failed = match init {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failed {
                tracing::error!(error = %e, "cannot start the opt-out forwarder's transactions");
                fenced.trigger();
                return ForwarderEnd::Fenced(e);
            }
        }
        // Replies waiting per partition (the gauge is their sum).
        let mut lag: std::collections::HashMap<i32, i64> = Default::default();
        let ended =
            run_forwarder(
                consumer,
                producer,
                topic,
                registry,
                commit,
                stop,
                |event| match event {
                    ReplyEvent::Received { partition, lag: l } => {
                        if let Some(l) = l {
                            lag.insert(partition, l);
                        }
                        replies.reply_received(lag.values().sum());
                    }
                    ReplyEvent::Done(f) => replies.reply_done(f.as_label()),
                },
            )
            .await;
        if let ForwarderEnd::Fenced(why) = &ended {
            tracing::warn!(error = %why, "inbound consumer fenced");
            fenced.trigger();
        }
        ended
    });
    // The supervisor: whatever ends the task but a stop is a feed down.
    let metrics = metrics.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let ended = task.await;
        if shutdown.is_triggered() {
            return;
        }
        // A fenced forwarder needs nothing here: the gate rebuilds.
        if let Err(e) = ended {
            tracing::error!(error = %e, "the opt-out forwarder failed; opt-out replies are not forwarded");
            metrics.feed_down(FEED_REPLIES, true);
        }
    })
}

/// Why the forwarder returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwarderEnd {
    /// `shutdown` turned true or its sender was dropped.
    Stopped,
    /// The consumer's static membership was fenced; it cannot go on.
    Fenced(String),
}

/// How a forwarded reply and its offset are made durable.
#[derive(Debug, Clone, Copy)]
pub enum Commit {
    /// The offset is committed once the opt-out is acknowledged.
    AfterAck,
    /// `exactly_once`: the opt-out and the offset in one transaction (the
    /// producer is transactional, its transactions initialized); the
    /// duration bounds each transactional call.
    Transaction(Duration),
}

/// What happened to one inbound record (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// An opt-out written to the consent topic.
    OptOut,
    /// A reply without an opt-out keyword.
    NotOptOut,
    /// Not a valid reply; skipped (nothing to forward).
    Invalid,
}

impl Forwarded {
    /// The `outcome` label of `smsgate_replies_total`.
    pub fn as_label(self) -> &'static str {
        match self {
            Forwarded::OptOut => "opt_out",
            Forwarded::NotOptOut => "not_opt_out",
            Forwarded::Invalid => "invalid",
        }
    }
}

/// How often the forwarder asks the broker how many replies wait.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// What [`run_forwarder`] reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyEvent {
    /// A reply was received and is being forwarded; `lag` replies wait
    /// behind it on its partition (asked of the broker now and then).
    Received { partition: i32, lag: Option<i64> },
    /// Its outcome, once it is written and its offset committed.
    Done(Forwarded),
}

/// Consumes `topics.inbound` and writes each opt-out to `consent_topic`,
/// keyed by `<to>|<sender>|<scope>` (CONTRACT §1). A record's offset is committed
/// only after its opt-out is acknowledged, so a crash re-reads it; a write
/// that fails is retried with backoff, never skipped. Returns when
/// `shutdown` turns true or its sender is dropped; `on_event` sees each
/// record received and its outcome (for metrics). Returns why it stopped. `registry` gives the registry in force
/// for each reply (it changes on a policy reload).
pub async fn run_forwarder<C: ConsumerContext + 'static>(
    consumer: StreamConsumer<C>,
    producer: FutureProducer,
    consent_topic: String,
    registry: impl Fn() -> Arc<Registry> + Send,
    commit: Commit,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut on_event: impl FnMut(ReplyEvent) + Send,
) -> ForwarderEnd {
    let mut last_lag = None;
    loop {
        if *shutdown.borrow() {
            return ForwarderEnd::Stopped;
        }
        let message = tokio::select! {
            m = consumer.recv() => m,
            _ = shutdown.changed() => return ForwarderEnd::Stopped,
        };
        let message = match message {
            Ok(m) => m.detach(),
            Err(e) if clients::is_fenced(&e) => return ForwarderEnd::Fenced(e.to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "inbound consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // Replies behind this one on its partition: the end offset asked
        // of the broker at most every LAG_EVERY (a short blocking call, off
        // the async workers); `None` in between.
        let mut lag = None;
        if last_lag.is_none_or(|t: std::time::Instant| t.elapsed() >= LAG_EVERY)
            && tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread
        {
            last_lag = Some(std::time::Instant::now());
            let (topic, p) = (message.topic(), message.partition());
            if let Ok((_, high)) = tokio::task::block_in_place(|| {
                consumer.fetch_watermarks(topic, p, Duration::from_millis(500))
            }) {
                lag = Some((high - message.offset() - 1).max(0));
            }
        }
        on_event(ReplyEvent::Received {
            partition: message.partition(),
            lag,
        });
        let parsed = InboundReply::parse(message.payload().unwrap_or_default());
        if let Commit::Transaction(timeout) = commit {
            let (outcome, record) = match &parsed {
                Err(e) => {
                    tracing::warn!(partition = message.partition(), offset = message.offset(), error = %e, "inbound reply skipped");
                    (Forwarded::Invalid, None)
                }
                Ok(reply) => match opt_out(reply, &registry()) {
                    None => (Forwarded::NotOptOut, None),
                    Some(event) => (
                        Forwarded::OptOut,
                        Some((event.topic_key(), event.to_json())),
                    ),
                },
            };
            let mut backoff = Duration::from_millis(100);
            loop {
                match forward_in_transaction(
                    &consumer,
                    &producer,
                    &consent_topic,
                    &message,
                    record.as_ref(),
                    timeout,
                )
                .await
                {
                    Ok(()) => break,
                    Err(Failed::Fatal(why)) => return ForwarderEnd::Fenced(why),
                    Err(Failed::Retry(why)) => {
                        tracing::warn!(error = %why, "opt-out transaction aborted; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => return ForwarderEnd::Stopped,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            on_event(ReplyEvent::Done(outcome));
            continue;
        }
        let outcome = match parsed {
            Err(e) => {
                tracing::warn!(partition = message.partition(), offset = message.offset(), error = %e, "inbound reply skipped");
                Forwarded::Invalid
            }
            Ok(reply) => match opt_out(&reply, &registry()) {
                None => Forwarded::NotOptOut,
                Some(event) => {
                    let value = event.to_json();
                    // One key per fact (CONTRACT §10), not per recipient.
                    let key = event.topic_key();
                    let mut backoff = Duration::from_millis(100);
                    loop {
                        let record = FutureRecord::to(&consent_topic)
                            .key(key.as_str())
                            .payload(value.as_str());
                        match producer.send(record, Duration::from_secs(5)).await {
                            Ok(_) => break,
                            Err((e, _)) => {
                                tracing::warn!(recipient = %crate::telemetry::mask::phone(&event.to), error = %e, "opt-out write failed; retrying");
                                tokio::select! {
                                    _ = tokio::time::sleep(backoff) => {}
                                    _ = shutdown.changed() => return ForwarderEnd::Stopped,
                                }
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                            }
                        }
                    }
                    Forwarded::OptOut
                }
            },
        };
        on_event(ReplyEvent::Done(outcome));
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )
            .is_ok()
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::warn!(error = %e, "inbound commit failed; the reply may be forwarded again");
        }
    }
}

/// Why a transaction of the forwarder failed.
enum Failed {
    /// Aborted; the same reply is tried again.
    Retry(String),
    /// The producer is fenced or failed fatally: the gate rebuilds.
    Fatal(String),
}

/// One reply in one transaction: its opt-out (if any) and its offset.
async fn forward_in_transaction<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    producer: &FutureProducer,
    consent_topic: &str,
    message: &rdkafka::message::OwnedMessage,
    record: Option<&(String, String)>,
    timeout: Duration,
) -> Result<(), Failed> {
    let fail = |e: rdkafka::error::KafkaError| match &e {
        rdkafka::error::KafkaError::Transaction(t) if t.is_fatal() => Failed::Fatal(e.to_string()),
        _ => Failed::Retry(e.to_string()),
    };
    producer.begin_transaction().map_err(fail)?;
    let result = async {
        if let Some((key, value)) = record {
            let r = FutureRecord::to(consent_topic)
                .key(key.as_str())
                .payload(value.as_str());
            producer.send(r, timeout).await.map_err(|(e, _)| fail(e))?;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            message.topic(),
            message.partition(),
            Offset::Offset(message.offset() + 1),
        )
        .map_err(fail)?;
        let group = consumer
            .group_metadata()
            .ok_or_else(|| Failed::Retry("no consumer group metadata".into()))?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || {
            p.send_offsets_to_transaction(&tpl, &group, timeout)?;
            p.commit_transaction(timeout)
        })
        .await
        .map_err(|e| Failed::Retry(e.to_string()))?
        .map_err(fail)
    }
    .await;
    if result.is_err() {
        let p = producer.clone();
        let _ = tokio::task::spawn_blocking(move || p.abort_transaction(timeout)).await;
    }
    result
}
