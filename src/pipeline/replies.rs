//! The opt-out loop's first half on this instance: a task that consumes
//! `topics.inbound` in the group `<group_id>-inbound` and writes each
//! opt-out reply to `topics.consent` ([`crate::inbound::run_forwarder`]).
//! Every instance's consent feed then applies it. One group across the
//! instances means each reply is forwarded once (a crash may forward a
//! reply twice, which is harmless).

use std::sync::Arc;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;

use super::kafka;
use super::shutdown::Shutdown;
use crate::config::Settings;
use crate::inbound::{self, Forwarded};
use crate::policy::live::LivePolicy;

/// Spawns the forwarder on the current tokio runtime; logs and returns
/// `None` when its clients cannot be created.
pub fn spawn(
    settings: &Settings,
    policy: &Arc<LivePolicy>,
    shutdown: &Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    let consumer: StreamConsumer = match kafka::inbound_consumer(settings).create() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the inbound consumer; replies are not forwarded");
            return None;
        }
    };
    if let Err(e) = consumer.subscribe(&[&settings.topics.inbound]) {
        tracing::error!(topic = %settings.topics.inbound, error = %e, "cannot subscribe to inbound replies");
        return None;
    }
    let producer: FutureProducer = match kafka::inbound_producer(settings).create() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the opt-out producer; replies are not forwarded");
            return None;
        }
    };
    // The registry in force for each reply, so a reload reaches it.
    let live = policy.clone();
    let registry = move || live.current().shared_registry();
    let topic = settings.topics.consent.clone();
    let stop = shutdown.subscribe();
    tracing::info!(topic = %settings.topics.inbound, "forwarding opt-out replies");
    Some(tokio::spawn(inbound::run_forwarder(
        consumer,
        producer,
        topic,
        registry,
        stop,
        |f| {
            if f == Forwarded::OptOut {
                tracing::debug!("opt-out reply forwarded");
            }
        },
    )))
}
