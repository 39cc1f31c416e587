//! The end-to-end tests' Apache Kafka 4.1.0 broker on a free loopback port.
//!
//! A test-facing wrapper around the one launcher,
//! [`crate::kafka_process::KafkaProcess`] (single node, KRaft, straight from
//! the jars `scripts/kafka install` fetched, with the configuration of
//! `scripts/kafka-broker/`), tuned to start fast ([`Jvm::QuickStart`]).
//! Where the launcher returns errors, [`Broker`] panics with them: a test
//! that needs the broker fails, naming `scripts/kafka install` when Kafka is
//! missing, and is never skipped. Kafka is durable: a restart on the same
//! directory keeps topics, records and committed offsets. Its log is
//! `<dir>/logs/server.log`.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::kafka_process::{self, Jvm, KafkaProcess, LaunchError};
use super::kafka_security::{self, Secure};
use super::process;

pub use super::kafka_process::{KAFKA_VERSION, kafka_home};

/// What a test run says when the broker is missing.
pub const INSTALL_HINT: &str = "the end-to-end tests need Apache Kafka 4.1.0, which is not installed: \
run `scripts/kafka install` (or `scripts/test`, which installs it and runs the whole suite)";

/// The jar folder, when the install finished (it writes `installed` last).
pub fn libs() -> Option<PathBuf> {
    kafka_process::installed_libs(&kafka_home())
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    kafka_process::free_port().unwrap_or_else(|e| panic!("{e}"))
}

/// The value, or a panic with the error (and [`INSTALL_HINT`] when Kafka
/// or Java is missing).
fn or_panic<T>(result: Result<T, LaunchError>) -> T {
    result.unwrap_or_else(|e| match e {
        LaunchError::NotInstalled { libs } => {
            panic!("{INSTALL_HINT} (looked for {})", libs.display())
        }
        LaunchError::Java(_) => panic!("{e}. {INSTALL_HINT}"),
        e => panic!("{e}"),
    })
}

/// A running broker. Killed (SIGKILL) when dropped or when the test binary exits.
pub struct Broker {
    pub port: u16,
    kafka: Mutex<KafkaProcess>,
}

impl Broker {
    /// The broker shared by every test of this test binary.
    pub fn shared() -> &'static Broker {
        static SHARED: OnceLock<Broker> = OnceLock::new();
        SHARED.get_or_init(|| Broker::start("broker"))
    }

    /// Starts a broker of its own in `target/tmp/e2e-<pid>/<name>`.
    /// Panics with [`INSTALL_HINT`] when Kafka is not installed.
    pub fn start(name: &str) -> Broker {
        let kafka = or_panic(KafkaProcess::start(
            &kafka_home(),
            &process::work_dir(name),
            Jvm::QuickStart,
        ));
        Broker {
            port: kafka.port(),
            kafka: Mutex::new(kafka),
        }
    }

    /// Starts a broker of its own with a SASL_SSL listener beside the
    /// PLAINTEXT one: SCRAM-SHA-512 `users`, a test CA, ACLs enforced there
    /// (PLAINTEXT clients are super users, for the test's own setup).
    pub fn start_secure(name: &str, users: &[(&str, &str)]) -> Broker {
        let secure = Secure {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        };
        let kafka = or_panic(KafkaProcess::start_secure(
            &kafka_home(),
            &process::work_dir(name),
            Jvm::QuickStart,
            secure,
        ));
        Broker {
            port: kafka.port(),
            kafka: Mutex::new(kafka),
        }
    }

    /// `127.0.0.1:PORT` of the SASL_SSL listener (panics without one).
    pub fn secure_bootstrap(&self) -> String {
        self.kafka()
            .secure_bootstrap()
            .unwrap_or_else(|| panic!("this broker has no SASL_SSL listener"))
    }

    /// The test CA's certificate (PEM) for `ssl.ca.location`.
    pub fn ca_pem(&self) -> PathBuf {
        self.kafka()
            .ca_pem()
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("this broker has no SASL_SSL listener"))
    }

    /// Runs Kafka's AclCommand with `args` (e.g. `--add --allow-principal
    /// User:x --operation Write --topic t`) as a super user.
    pub fn acl(&self, args: &[&str]) {
        or_panic(kafka_security::acl(&self.kafka(), args));
    }

    /// The launcher; a test that panicked holding it leaves it usable.
    fn kafka(&self) -> MutexGuard<'_, KafkaProcess> {
        self.kafka.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` and `kafka.brokers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log (log4j; all starts append to it).
    pub fn log_path(&self) -> PathBuf {
        self.kafka().log_path()
    }

    /// kill -9 the broker (a crash; the data stays).
    pub fn kill(&self) {
        self.kafka().kill();
    }

    /// Stops the broker with SIGTERM (a controlled shutdown), SIGKILL after 30 s.
    pub fn stop(&self) {
        self.kafka().stop(Duration::from_secs(30));
    }

    /// Starts the broker again on the same ports and data (killing it first
    /// if it runs).
    pub fn restart(&self) {
        or_panic(self.kafka().launch());
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.create_topics(&[(name, partitions)]);
    }

    /// Creates topics (name, partitions) through the admin API, and waits
    /// until the broker serves every partition. An existing topic is fine.
    pub fn create_topics(&self, topics: &[(&str, u32)]) {
        or_panic(kafka_process::create_topics(&self.bootstrap(), topics));
    }
}
