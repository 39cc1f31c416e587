//! Settings, layered as CONTRACT §9 says: built-in defaults, then
//! `config/default.toml` (or `--config FILE`), then `SMSGATE__SECTION__KEY`
//! environment variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "config/default.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub topics: Topics,
    /// Absent when no file names a registry (then `run` refuses to start).
    #[serde(default)]
    pub policy: PolicySettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub pipeline: PipelineSettings,
    /// The delivery guarantee and its transactions.
    pub delivery: DeliverySettings,
    /// Durable state (caps, duplicates, deferred); every key has a default.
    #[serde(default)]
    pub state: StateSettings,
}

/// `Debug` is written by hand: it hides secret properties.
#[derive(Clone, Deserialize)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    /// Static membership: a stable id per instance (e.g. a pod name).
    pub group_instance_id: Option<String>,
    /// How long start-up may wait for the broker before giving up.
    pub startup_timeout_secs: u64,
    /// librdkafka properties passed through (security.protocol, sasl.*, ssl.*).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret(k) {
                        "[redacted]"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("group_instance_id", &self.group_instance_id)
            .field("startup_timeout_secs", &self.startup_timeout_secs)
            .field("properties", &properties)
            .finish()
    }
}

/// True for a `kafka.properties` key whose value is a secret (a password,
/// a private key, a token, a JAAS line): never printed.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('_', ".");
    [
        "password",
        "secret",
        "jaas",
        "key.pem",
        "oauthbearer.config",
        "token",
    ]
    .iter()
    .any(|s| key.contains(s))
}

#[derive(Debug, Clone, Deserialize)]
pub struct Topics {
    pub outbound: String,
    pub consent: String,
    pub inbound: String,
    pub approved: String,
    pub quarantine: String,
    pub deferred: String,
    /// The compacted changelog of caps and duplicates (same partition count
    /// as `outbound`). Unset: `<kafka.group_id>.gate-state`, so the state
    /// belongs to the consumer group that owns the partitions.
    #[serde(default)]
    pub changelog: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PolicySettings {
    /// Sender registry (CONTRACT §5); required by `run`.
    #[serde(default)]
    pub senders: Option<PathBuf>,
    /// Directory of policy packs; unset uses the packs built into the binary.
    #[serde(default)]
    pub packs: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `smsgate=debug`.
    pub level: String,
}

/// `delivery.guarantee` (CONTRACT §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Kafka transactions: outputs, changelog and input offsets of a
    /// transaction become visible together or not at all.
    ExactlyOnce,
    /// Offsets committed after acknowledgement: nothing lost, but a crash
    /// can decide (and send) the records in flight again. For brokers
    /// without transactions.
    AtLeastOnce,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeliverySettings {
    pub guarantee: Guarantee,
    /// `exactly_once`: a transaction is committed this often…
    pub transaction_interval_ms: u64,
    /// …or once it holds this many input records, whichever comes first.
    pub transaction_max_records: usize,
    /// The broker aborts a transaction left open longer (a crashed gate's):
    /// read_committed readers wait at most this long behind it.
    pub transaction_timeout_ms: u64,
}

impl DeliverySettings {
    pub fn exactly_once(&self) -> bool {
        self.guarantee == Guarantee::ExactlyOnce
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineSettings {
    /// Records in flight (decided, not yet acknowledged) before consuming pauses.
    pub max_in_flight: usize,
    /// Bytes of output records waiting in the producer for the broker: past
    /// it the decide workers wait, then consuming (librdkafka's
    /// `queue.buffering.max.kbytes`; its own default is 1 GiB).
    pub max_in_flight_bytes: usize,
    /// How long a revoked partition or a shutdown may take to drain.
    pub drain_timeout_secs: u64,
    /// How often stored offsets are committed.
    pub commit_interval_ms: u64,
    /// Pause before a record whose delivery failed is produced again.
    pub retry_backoff_ms: u64,
    /// Threads that parse, decide and produce (each owns a fixed share of
    /// the input partitions, so a partition stays in order); 0 = the CPU
    /// cores less one, 1–4.
    pub workers: usize,
}

/// Durable state settings (`[state]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StateSettings {
    /// How long restoring one partition's changelog may take before the gate
    /// gives up on it and decides with what it has (logged as an error).
    pub restore_timeout_secs: u64,
    /// Consume `topics.inbound` and forward opt-out replies to
    /// `topics.consent` (one forwarder per instance, in its own group).
    pub forward_replies: bool,
    /// Most message ids one input partition's duplicate memory holds
    /// (about 65 bytes each); past it the oldest are forgotten before their
    /// window (`smsgate_dedup_evicted_total`, a WARN line).
    pub max_dedup_entries: usize,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            restore_timeout_secs: 120,
            forward_replies: true,
            max_dedup_entries: 2_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

const DEFAULTS: &[(&str, &str)] = &[
    ("kafka.brokers", "127.0.0.1:9092"),
    ("kafka.group_id", "smsgate"),
    ("kafka.startup_timeout_secs", "30"),
    ("topics.outbound", "sms.outbound"),
    ("topics.consent", "sms.consent"),
    ("topics.inbound", "sms.inbound"),
    ("topics.approved", "sms.approved"),
    ("topics.quarantine", "sms.quarantine"),
    ("topics.deferred", "sms.deferred"),
    ("metrics.listen", "127.0.0.1:9898"),
    ("log.format", "pretty"),
    ("log.level", "info"),
    ("pipeline.max_in_flight", "10000"),
    ("pipeline.max_in_flight_bytes", "268435456"),
    ("pipeline.drain_timeout_secs", "20"),
    ("pipeline.commit_interval_ms", "1000"),
    ("pipeline.retry_backoff_ms", "500"),
    ("pipeline.workers", "0"),
    ("delivery.guarantee", "exactly_once"),
    ("delivery.transaction_interval_ms", "100"),
    ("delivery.transaction_max_records", "5000"),
    ("delivery.transaction_timeout_ms", "10000"),
];

impl Settings {
    /// Loads settings. With `file = None`, `config/default.toml` is read when
    /// it exists; a named file must exist.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load_with_env(file, None)
    }

    /// [`Settings::load`] with `env` in place of the process environment
    /// (for tests). Environment values stay strings until a field's type
    /// asks for a number or a bool: a password `00123456` or an instance
    /// id `007` keeps its leading zeros.
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in DEFAULTS {
            builder = builder
                .set_default(*key, *value)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Missing(path.display().to_string()));
                }
                builder =
                    builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
            }
            None => {
                let path = Path::new(DEFAULT_CONFIG_FILE);
                if path.exists() {
                    builder = builder
                        .add_source(config::File::from(path).format(config::FileFormat::Toml));
                }
            }
        }
        builder = builder.add_source(
            config::Environment::with_prefix("SMSGATE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(false)
                .source(env),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.kafka.brokers.trim().is_empty() {
            return bad("kafka.brokers is empty");
        }
        if self.kafka.group_id.trim().is_empty() {
            return bad("kafka.group_id is empty");
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return bad("log.format must be \"pretty\" or \"json\"");
        }
        if self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("metrics.listen must be an address such as 127.0.0.1:9898");
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Invalid(format!(
                "log.level {:?}: {e}",
                self.log.level
            )));
        }
        if self.kafka.startup_timeout_secs == 0 {
            return bad("kafka.startup_timeout_secs must be at least 1");
        }
        if self.pipeline.commit_interval_ms == 0 {
            return bad("pipeline.commit_interval_ms must be at least 1");
        }
        if self.state.max_dedup_entries < 1000 {
            return bad("state.max_dedup_entries must be at least 1000");
        }
        if self.state.restore_timeout_secs == 0 {
            return bad("state.restore_timeout_secs must be at least 1");
        }
        if self.pipeline.max_in_flight_bytes < 1 << 20 {
            return bad("pipeline.max_in_flight_bytes must be at least 1048576 (1 MiB)");
        }
        if self.pipeline.max_in_flight == 0 {
            return bad("pipeline.max_in_flight must be at least 1");
        }
        if self.delivery.transaction_interval_ms == 0 || self.delivery.transaction_max_records == 0
        {
            return bad(
                "delivery.transaction_interval_ms and delivery.transaction_max_records must be at least 1",
            );
        }
        if self.delivery.transaction_timeout_ms < 1000 {
            return bad("delivery.transaction_timeout_ms must be at least 1000");
        }
        if self.pipeline.workers > 64 {
            return bad("pipeline.workers must be at most 64 (0 = one per CPU core)");
        }
        Ok(())
    }

    /// `pipeline.workers`, with 0 resolved to the CPU cores less one (the
    /// consume loop, librdkafka's threads and often the broker need it), at
    /// least 1 and at most 4. On 2 cores a second worker measured no faster.
    pub fn decide_workers(&self) -> usize {
        match self.pipeline.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .saturating_sub(1)
                .clamp(1, 4),
            n => n,
        }
    }

    /// The changelog topic: `topics.changelog`, or `<group_id>.gate-state`.
    pub fn changelog_topic(&self) -> String {
        match &self.topics.changelog {
            Some(t) if !t.trim().is_empty() => t.clone(),
            _ => format!("{}.gate-state", self.kafka.group_id),
        }
    }

    /// The policy source these settings name, plus extra registries.
    pub fn policy_source(&self, extra_senders: &[PathBuf]) -> crate::policy::PolicySource {
        crate::policy::PolicySource {
            senders: self
                .policy
                .senders
                .iter()
                .chain(extra_senders)
                .cloned()
                .collect(),
            packs: self.policy.packs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_alone_are_a_valid_configuration() {
        let dir = std::env::temp_dir().join(format!("smsgate-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("empty.toml");
        std::fs::write(&file, "").unwrap();
        let s = Settings::load(Some(&file)).unwrap();
        assert_eq!(s.kafka.brokers, "127.0.0.1:9092");
        assert!(s.policy.senders.is_none());
        assert_eq!(s.pipeline.retry_backoff_ms, 500);
    }

    #[test]
    fn debug_output_hides_passwords_keys_and_tokens() {
        let dir = std::env::temp_dir().join(format!("smsgate-cfg-debug-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret.toml");
        std::fs::write(
            &file,
            "[kafka.properties]\n\"sasl.username\" = \"gate\"\n\"sasl.password\" = \"hunter2-pw\"\n\
             \"ssl.key.password\" = \"k3y-pw\"\n\"sasl.oauthbearer.client.secret\" = \"s3cret\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file)).unwrap();
        let printed = format!("{s:?}");
        for secret in ["hunter2-pw", "k3y-pw", "s3cret"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        assert!(printed.contains("gate"), "non-secret values stay visible");
        assert!(is_secret("sasl_password") && is_secret("SASL.JAAS.CONFIG"));
        assert!(!is_secret("sasl.username") && !is_secret("ssl.ca.location"));
    }

    #[test]
    fn environment_values_stay_strings_and_typed_fields_still_parse() {
        let env: std::collections::HashMap<String, String> = [
            ("SMSGATE__KAFKA__PROPERTIES__SASL_PASSWORD", "00123456"),
            ("SMSGATE__KAFKA__GROUP_INSTANCE_ID", "007"),
            (
                "SMSGATE__KAFKA__PROPERTIES__ENABLE_SSL_CERTIFICATE_VERIFICATION",
                "TRUE",
            ),
            ("SMSGATE__KAFKA__STARTUP_TIMEOUT_SECS", "7"),
            ("SMSGATE__STATE__FORWARD_REPLIES", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = Settings::load_with_env(None, Some(env)).unwrap();
        assert_eq!(s.kafka.properties["sasl_password"], "00123456");
        assert_eq!(
            s.kafka.properties["enable_ssl_certificate_verification"],
            "TRUE"
        );
        assert_eq!(s.kafka.group_instance_id.as_deref(), Some("007"));
        assert_eq!(s.kafka.startup_timeout_secs, 7);
        assert!(!s.state.forward_replies);
    }
}
