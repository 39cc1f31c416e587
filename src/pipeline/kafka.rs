//! librdkafka client configurations and the plumbing every client shares.
//!
//! `kafka.properties` (security settings and tuning) is applied to every
//! client first; the settings the delivery guarantee depends on are then
//! forced: manual commits of explicitly tracked offsets, an idempotent
//! producer with `acks=all`.

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Settings;

/// Statistics (broker state, watermarks for lag) arrive this often.
pub const STATS_INTERVAL_MS: u64 = 1000;

fn base(settings: &Settings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers);
    for (k, v) in &settings.kafka.properties {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Info);
    c
}

/// The producer of every output record.
pub fn producer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    let queue = (settings.pipeline.max_in_flight * 2).max(100_000);
    c.set_if_absent("linger.ms", "5");
    // Same partition for a key as the Java client picks.
    c.set_if_absent("partitioner", "murmur2_random");
    c.set("queue.buffering.max.messages", queue.to_string());
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    c
}

/// The group consumer of `topics.outbound`.
pub fn group_consumer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set("group.id", &settings.kafka.group_id);
    if let Some(id) = &settings.kafka.group_instance_id {
        c.set("group.instance.id", id);
    }
    c.set_if_absent("auto.offset.reset", "earliest");
    c.set_if_absent("isolation.level", "read_committed");
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c.set("statistics.interval.ms", STATS_INTERVAL_MS.to_string());
    c
}

/// The reader of `topics.consent`: every partition from the beginning, no
/// group membership, no commits. (librdkafka needs a `group.id` for manual
/// assignment; it is never joined nor committed to.)
pub fn consent_reader(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set(
        "group.id",
        format!("{}.consent-reader", settings.kafka.group_id),
    );
    c.set("enable.auto.commit", "false");
    c.set("enable.partition.eof", "true");
    c.set_if_absent("isolation.level", "read_committed");
    c
}

/// The reader of the changelog topic on assignment: manual assignment from
/// the beginning, no commits (the group id is never joined).
pub fn changelog_reader(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set(
        "group.id",
        format!("{}.changelog-reader", settings.kafka.group_id),
    );
    c.set("enable.auto.commit", "false");
    c.set("enable.partition.eof", "true");
    c.set("auto.offset.reset", "earliest");
    c
}

/// The consumer of `topics.deferred` (hold and release), in its own group
/// `<group_id>-release`, committing explicitly.
pub fn release_consumer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set("group.id", format!("{}-release", settings.kafka.group_id));
    if let Some(id) = &settings.kafka.group_instance_id {
        c.set("group.instance.id", format!("{id}-release"));
    }
    c.set_if_absent("auto.offset.reset", "earliest");
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c
}

/// The producer that hands released records back to `topics.outbound`.
pub fn release_producer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set_if_absent("linger.ms", "5");
    c.set_if_absent("partitioner", "murmur2_random");
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    c
}

/// The admin client that creates the changelog topic when missing.
pub fn admin(settings: &Settings) -> ClientConfig {
    base(settings)
}

/// The consumer of `topics.inbound` for the opt-out forwarder, in its own
/// group `<group_id>-inbound` (one forwarder per reply is enough).
pub fn inbound_consumer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set("group.id", format!("{}-inbound", settings.kafka.group_id));
    if let Some(id) = &settings.kafka.group_instance_id {
        c.set("group.instance.id", format!("{id}-inbound"));
    }
    c.set_if_absent("auto.offset.reset", "earliest");
    c.set("enable.auto.commit", "false");
    c
}

/// The producer of the opt-out forwarder.
pub fn inbound_producer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    c
}

trait SetIfAbsent {
    fn set_if_absent(&mut self, key: &str, value: &str) -> &mut Self;
}

impl SetIfAbsent for ClientConfig {
    fn set_if_absent(&mut self, key: &str, value: &str) -> &mut Self {
        if self.get(key).is_none() {
            self.set(key, value);
        }
        self
    }
}

/// Forwards a librdkafka log line to `tracing` under the target `librdkafka`.
/// Connection noise is `debug`: broker loss is reported once, by the gate,
/// as a state change.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
            tracing::error!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
            tracing::debug!(target: "librdkafka", facility = fac, "{message}")
        }
        _ => tracing::trace!(target: "librdkafka", facility = fac, "{message}"),
    }
}

/// True for the error librdkafka raises when it cannot reach any broker.
pub fn is_all_brokers_down(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
}

/// True for errors after which a client is unusable.
pub fn is_fatal(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal)
        || matches!(error, KafkaError::MessageConsumptionFatal(_))
}
