//! The broker the benchmark runs against: an Apache Kafka 4.1.0 process
//! started for the run by the end-to-end tests' launcher
//! (`smsgate_testkit::kafka_process`: single node, KRaft, loopback, the
//! jars `scripts/kafka install` fetched and the configuration of
//! `scripts/kafka-broker/`), here with a full-JIT JVM; or an existing Kafka
//! given with `--brokers`. This module only adapts the launcher to the run:
//! its errors become [`BenchError::Broker`], and the records go when the
//! run ends.

use std::path::Path;
use std::time::Duration;

use smsgate_testkit::kafka_process::{self, Jvm, KafkaProcess};

use super::BenchError;

pub use smsgate_testkit::kafka_process::KAFKA_VERSION;

/// A Kafka broker child process, stopped (and its data removed) when dropped.
pub struct Kafka {
    inner: KafkaProcess,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub addr: String,
}

impl Kafka {
    /// Formats `dir` and starts a broker there on a free port, from
    /// `home/libs` (`home` is `$SMSGATE_KAFKA_HOME/4.1.0`), and waits until
    /// it has started. An error names `scripts/kafka install` when the jars
    /// are missing, and the broker's log when it does not start.
    pub fn start(home: &Path, dir: &Path) -> Result<Kafka, BenchError> {
        // Full JIT (unlike the tests' quick-starting broker): the broker's
        // speed is part of what is measured.
        let inner = KafkaProcess::start(home, dir, Jvm::Throughput)?;
        Ok(Kafka {
            addr: inner.bootstrap(),
            inner,
        })
    }

    /// The broker's process id (for its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.inner.pid()
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.inner.stop(Duration::from_secs(20));
        // The records (hundreds of MB for a million events) go; the logs stay.
        let _ = std::fs::remove_dir_all(self.inner.dir().join("data"));
    }
}

/// A free TCP port on the loopback interface (bound, then released).
pub fn free_port() -> Result<u16, BenchError> {
    Ok(kafka_process::free_port()?)
}

/// Creates `names` with `partitions` partitions each through the admin API
/// (on the broker started for the run, or an existing Kafka), and waits
/// until every partition is served.
pub fn create_topics(brokers: &str, names: &[String], partitions: i32) -> Result<(), BenchError> {
    let partitions = u32::try_from(partitions)
        .map_err(|_| BenchError::Setup(format!("{partitions} partitions")))?;
    let topics: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), partitions)).collect();
    Ok(kafka_process::create_topics(brokers, &topics)?)
}
