//! Reaching the broker at start-up.
//!
//! A broker that is not up yet is waited for, until
//! `kafka.startup_timeout_secs`. Credentials or TLS that the broker refuses
//! are not: retrying does not fix a wrong password, so the gate stops at
//! once with the broker's reason (exit code 2, a configuration error).
//! librdkafka reports those only through its error callback, hence the
//! probe: a producer whose context remembers them, polled while it asks for
//! metadata. No error text here carries a credential: librdkafka's reasons
//! name the mechanism and the user, never the password.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Settings;
use crate::gate::Shutdown;
use crate::gate::clients;

/// Why the probe gave up.
#[derive(Debug)]
pub enum Refused {
    /// Authentication or the TLS handshake failed: the broker's reason.
    Credentials(String),
    /// The client configuration is invalid.
    Client(KafkaError),
    /// No broker answered before the deadline: the last error.
    Unreachable(String),
    /// Shutdown was asked for meanwhile.
    Stopped,
}

/// Remembers the first authentication or TLS failure librdkafka reports.
#[derive(Default)]
struct Watch {
    refused: Mutex<Option<String>>,
}

impl Watch {
    fn refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ClientContext for Watch {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        clients::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_credentials(&error) {
            self.refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(|| reason.to_string());
        } else {
            clients::log_error("probe", &error, reason);
        }
    }
}

impl ProducerContext for Watch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// True for the errors retrying does not fix: authentication (SASL) and
/// TLS (a certificate the client does not trust, a key it cannot read).
pub fn is_credentials(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::SSL
        )
    )
}

/// Asks the broker for metadata until it answers (Ok), refuses the
/// credentials, or `timeout` passes.
pub fn probe(settings: &Settings, timeout: Duration, shutdown: &Shutdown) -> Result<(), Refused> {
    let producer: BaseProducer<Watch> = clients::probe(settings)
        .create_with_context(Watch::default())
        .map_err(Refused::Client)?;
    let deadline = Instant::now() + timeout;
    loop {
        // Serves the error callback.
        producer.poll(Duration::ZERO);
        if let Some(reason) = producer.context().refused() {
            return Err(Refused::Credentials(reason));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match producer.client().fetch_metadata(
            None,
            left.clamp(Duration::from_millis(100), Duration::from_secs(1)),
        ) {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        producer.poll(Duration::from_millis(50));
        if let Some(reason) = producer.context().refused() {
            return Err(Refused::Credentials(reason));
        }
        if shutdown.is_triggered() {
            return Err(Refused::Stopped);
        }
        if Instant::now() >= deadline {
            return Err(Refused::Unreachable(last));
        }
    }
}
