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
        c.set(property_name(k), v);
    }
    // librdkafka drops lines above this level before they reach us; the
    // `debug` property (e.g. "cgrp,fetch") asks for its debug lines.
    if settings.kafka.properties.keys().any(|k| k == "debug") {
        c.set_log_level(RDKafkaLogLevel::Debug);
    } else {
        c.set_log_level(RDKafkaLogLevel::Info);
    }
    c
}

/// Bounds a consumer's local prefetch to [`PREFETCH_KB`] and lets it fetch
/// again 10 ms after it drained below that. librdkafka's defaults (64 MB, and a
/// 1 s pause each time the queue is over a threshold) made a reader that
/// keeps up stall for the rest of each second: in the benchmark the
/// 1.05M-record consent load took 7–8 s instead of 2–3, and the gate
/// consumed 7–28 % fewer records per second (docs/performance.md).
fn prefetch(c: &mut ClientConfig) {
    c.set_if_absent("queued.max.messages.kbytes", &PREFETCH_KB.to_string());
    c.set_if_absent("fetch.queue.backoff.ms", "10");
}

/// Every consumer's prefetch: about a quarter of a second of input at 100k
/// records/s of 300 bytes, refilled every 10 ms. 16 MB for the input was no
/// faster and cost 20–25 MB of RSS in the benchmark (docs/performance.md).
const PREFETCH_KB: u32 = 8 * 1024;

/// Producer batches are compressed (lz4, cheap to compress): the broker
/// then handles one compressed blob per batch instead of every record, which
/// cut the co-located broker's CPU per record by 60 % in the benchmark.
/// Consumers get the same bytes back: the approved output is still the
/// input value byte for byte. A `compression.type` property overrides it.
fn compress(c: &mut ClientConfig) {
    c.set_if_absent("compression.type", "lz4");
}

/// librdkafka property names use dots; environment variables cannot, so
/// `SMSGATE__KAFKA__PROPERTIES__SASL_PASSWORD` (key `sasl_password`) means
/// `sasl.password`.
pub fn property_name(key: &str) -> String {
    key.replace('_', ".")
}

/// The producer of every output record.
pub fn producer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    let queue = (settings.pipeline.max_in_flight * 2).max(100_000);
    // One input fans out to 3 output topics and the changelog, so batches
    // are small; 10 ms (not librdkafka's 5) halves the batches the broker
    // handles: 14 % less broker CPU per record in the benchmark, p99 no
    // worse (docs/performance.md).
    c.set_if_absent("linger.ms", "10");
    compress(&mut c);
    // Same partition for a key as the Java client picks.
    c.set_if_absent("partitioner", "murmur2_random");
    c.set("queue.buffering.max.messages", queue.to_string());
    // Bytes waiting for the broker, bounded too: a record is up to 1 MB, so
    // a count alone would let 20,000 of them take 20 GB.
    c.set(
        "queue.buffering.max.kbytes",
        (settings.pipeline.max_in_flight_bytes / 1024).to_string(),
    );
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    if settings.delivery.exactly_once() {
        transactional(&mut c, settings, "gate");
    }
    c
}

/// Makes a producer transactional. The id is stable per instance with
/// static membership (`<group_id>-<group_instance_id>-<role>`: a restarted
/// instance fences its predecessor's producer and aborts its open
/// transaction at once) and unique per process otherwise (a crashed
/// process's transaction is aborted after `delivery.transaction_timeout_ms`).
/// Zombies are fenced by the consumer group's generation either way
/// (KIP-447: the offsets go into the transaction with the group metadata).
pub fn transactional(c: &mut ClientConfig, settings: &Settings, role: &str) {
    let id = match &settings.kafka.group_instance_id {
        Some(instance) => format!("{}-{instance}-{role}", settings.kafka.group_id),
        None => {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            format!(
                "{}-{role}-{}-{}-{nanos:x}",
                settings.kafka.group_id,
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )
        }
    };
    c.set("transactional.id", id);
    c.set(
        "transaction.timeout.ms",
        settings.delivery.transaction_timeout_ms.to_string(),
    );
}

/// What every reader of the gate's own topics sets: under `exactly_once`
/// only committed records (never an aborted transaction's) are read.
fn read_committed(c: &mut ClientConfig, settings: &Settings) {
    if settings.delivery.exactly_once() {
        c.set("isolation.level", "read_committed");
    } else {
        c.set_if_absent("isolation.level", "read_committed");
    }
}

/// Every group the gate joins (outbound, inbound replies, deferred): a dead
/// member's partitions move after the session timeout, 10 s instead of
/// librdkafka's 45 s, so opt-out replies and held texts do not wait on a
/// crashed instance for long (with `kafka.group_instance_id`, a restart
/// within it keeps its partitions without any rebalance).
fn liveness(c: &mut ClientConfig) {
    c.set_if_absent("session.timeout.ms", "10000");
    c.set_if_absent("heartbeat.interval.ms", "2000");
}

/// The group consumer of `topics.outbound`.
pub fn group_consumer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set("group.id", &settings.kafka.group_id);
    prefetch(&mut c);
    if let Some(id) = &settings.kafka.group_instance_id {
        c.set("group.instance.id", id);
    }
    liveness(&mut c);
    // The poll interval bounds a rebalance: it must cover a revoke's drain.
    let session: u64 = c
        .get("session.timeout.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let poll = (settings.pipeline.drain_timeout_secs * 3000)
        .max(60_000)
        .max(session);
    c.set_if_absent("max.poll.interval.ms", &poll.to_string());
    c.set_if_absent("auto.offset.reset", "earliest");
    read_committed(&mut c, settings);
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
    prefetch(&mut c);
    c.set("enable.auto.commit", "false");
    c.set("enable.partition.eof", "true");
    read_committed(&mut c, settings);
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
    prefetch(&mut c);
    c.set("enable.auto.commit", "false");
    c.set("enable.partition.eof", "true");
    c.set("auto.offset.reset", "earliest");
    read_committed(&mut c, settings);
    c
}

/// The consumer of `topics.deferred` (hold and release), in its own group
/// `<group_id>-release`, committing explicitly.
pub fn release_consumer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set("group.id", format!("{}-release", settings.kafka.group_id));
    prefetch(&mut c);
    if let Some(id) = &settings.kafka.group_instance_id {
        c.set("group.instance.id", format!("{id}-release"));
    }
    liveness(&mut c);
    c.set_if_absent("auto.offset.reset", "earliest");
    read_committed(&mut c, settings);
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c
}

/// The producer that hands released records back to `topics.outbound`
/// (transactional under `exactly_once`: a chunk and its deferred offset
/// commit together).
pub fn release_producer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    c.set_if_absent("linger.ms", "5");
    compress(&mut c);
    c.set_if_absent("partitioner", "murmur2_random");
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    if settings.delivery.exactly_once() {
        transactional(&mut c, settings, "release");
    }
    c
}

/// The start-up probe ([`crate::gate::connect`]): only the connection and
/// security settings matter.
pub fn probe(settings: &Settings) -> ClientConfig {
    base(settings)
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
    prefetch(&mut c);
    if let Some(id) = &settings.kafka.group_instance_id {
        c.set("group.instance.id", format!("{id}-inbound"));
    }
    liveness(&mut c);
    c.set_if_absent("auto.offset.reset", "earliest");
    c.set("enable.auto.commit", "false");
    c
}

/// The producer of the opt-out forwarder (transactional under
/// `exactly_once`: a reply's opt-out and its offset commit together).
pub fn inbound_producer(settings: &Settings) -> ClientConfig {
    let mut c = base(settings);
    compress(&mut c);
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    if settings.delivery.exactly_once() {
        transactional(&mut c, settings, "inbound");
    }
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

/// Logs a client-level error. Connection churn is `debug` (broker loss is
/// reported once, as a state change, and start-up failure as the exit
/// message); anything else — authentication, authorization, a bad topic —
/// is a `warn` an operator must see.
pub fn log_error(client: &'static str, error: &KafkaError, reason: &str) {
    use RDKafkaErrorCode::*;
    match error.rdkafka_error_code() {
        Some(BrokerTransportFailure | AllBrokersDown | PartitionEOF | Resolve) | None => {
            tracing::debug!(client, error = %error, reason, "Kafka client error")
        }
        Some(_) => tracing::warn!(client, error = %error, reason, "Kafka client error"),
    }
}

/// True for the error librdkafka raises when it cannot reach any broker.
pub fn is_all_brokers_down(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
}

/// True when a static member (`group.instance.id`) was fenced. librdkafka
/// makes this fatal; it also happens to the only instance after a
/// coordinator restart (librdkafka#3437), so the gate rebuilds its clients.
pub fn is_fenced(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::FencedInstanceId)
}

/// True for errors after which a client is unusable.
pub fn is_fatal(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal)
        || matches!(error, KafkaError::MessageConsumptionFatal(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_style_property_names_become_librdkafka_names() {
        assert_eq!(property_name("sasl_password"), "sasl.password");
        assert_eq!(property_name("security.protocol"), "security.protocol");
    }

    #[test]
    fn delivery_settings_cannot_be_overridden() {
        let mut s = crate::config::Settings::load(None).unwrap();
        s.kafka
            .properties
            .insert("enable.auto.commit".into(), "true".into());
        s.kafka.properties.insert("acks".into(), "1".into());
        assert_eq!(group_consumer(&s).get("enable.auto.commit"), Some("false"));
        assert_eq!(producer(&s).get("acks"), Some("all"));
        assert_eq!(producer(&s).get("enable.idempotence"), Some("true"));
        let poll: u64 = group_consumer(&s)
            .get("max.poll.interval.ms")
            .unwrap()
            .parse()
            .unwrap();
        assert!(poll >= s.pipeline.drain_timeout_secs * 1000);
    }

    #[test]
    fn every_producer_compresses_with_lz4_unless_a_property_says_otherwise() {
        let mut s = crate::config::Settings::load(None).unwrap();
        let producers =
            |s: &crate::config::Settings| [producer(s), release_producer(s), inbound_producer(s)];
        for c in producers(&s) {
            assert_eq!(c.get("compression.type"), Some("lz4"));
        }
        s.kafka
            .properties
            .insert("compression_type".into(), "zstd".into());
        for c in producers(&s) {
            assert_eq!(c.get("compression.type"), Some("zstd"));
        }
    }

    #[test]
    fn every_consumer_has_a_bounded_prefetch_that_a_property_overrides() {
        let mut s = crate::config::Settings::load(None).unwrap();
        let consumers = |s: &crate::config::Settings| {
            [
                group_consumer(s),
                consent_reader(s),
                changelog_reader(s),
                release_consumer(s),
                inbound_consumer(s),
            ]
        };
        for c in consumers(&s) {
            assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
            assert_eq!(
                c.get("queued.max.messages.kbytes"),
                Some(PREFETCH_KB.to_string().as_str())
            );
        }
        s.kafka
            .properties
            .insert("queued_max_messages_kbytes".into(), "65536".into());
        for c in consumers(&s) {
            assert_eq!(c.get("queued.max.messages.kbytes"), Some("65536"));
        }
    }
}
