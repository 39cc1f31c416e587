//! `smsgate run` as a black box: a child process configured through
//! `SMSGATE__*` environment variables, with its own metrics port and log file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::broker::{Broker, free_port};
use crate::process::{self, Child};

/// The gate binary under test.
/// The `smsgate` binary under test: `$SMSGATE_BIN`, else the one cargo
/// built beside the running test binary (`target/<profile>/smsgate`; the
/// test binary itself is in `target/<profile>/deps`).
pub fn bin() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("SMSGATE_BIN") {
        return path.into();
    }
    crate::process::profile_dir().join("smsgate")
}

/// The crate root: the gate runs there so `config/…` paths resolve.
pub fn crate_dir() -> &'static Path {
    // testkit/ sits in the workspace root, the smsgate package.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The example sender registry (CONTRACT §5) the tests' events use.
pub fn senders_file() -> PathBuf {
    crate_dir().join("config/senders.example.toml")
}

/// Partitions of the outbound topic in every test.
pub const OUTBOUND_PARTITIONS: u32 = 4;
/// Partitions of each output topic and of the consent topic.
pub const OTHER_PARTITIONS: u32 = 2;

/// One test's topic names and consumer group, unique within the broker.
#[derive(Debug, Clone)]
pub struct Topics {
    pub outbound: String,
    pub consent: String,
    pub inbound: String,
    pub approved: String,
    pub quarantine: String,
    pub deferred: String,
    pub group: String,
}

impl Topics {
    /// Fresh names for test `name`, created on `broker`.
    pub fn unique(broker: &Broker, name: &str) -> Topics {
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let t = Topics {
            outbound: format!("{tag}.outbound"),
            consent: format!("{tag}.consent"),
            inbound: format!("{tag}.inbound"),
            approved: format!("{tag}.approved"),
            quarantine: format!("{tag}.quarantine"),
            deferred: format!("{tag}.deferred"),
            group: format!("{tag}.gate"),
        };
        t.create(broker);
        t
    }

    /// Creates the topics (an existing one is left as it is).
    pub fn create(&self, broker: &Broker) {
        broker.create_topics(&[
            (&self.outbound, OUTBOUND_PARTITIONS),
            (&self.consent, OTHER_PARTITIONS),
            (&self.inbound, OTHER_PARTITIONS),
            (&self.approved, OTHER_PARTITIONS),
            (&self.quarantine, OTHER_PARTITIONS),
            (&self.deferred, OTHER_PARTITIONS),
        ]);
    }

    /// Asserts that the group has committed exactly the end of every
    /// outbound partition `positions` were produced to, waiting up to
    /// `timeout` for the commits.
    pub fn assert_committed_to_end(
        &self,
        bootstrap: &str,
        positions: &[crate::kafka::Position],
        timeout: Duration,
    ) {
        let ends = crate::kafka::ends(positions);
        let committed = crate::kafka::wait_committed(
            bootstrap,
            &self.group,
            &self.outbound,
            OUTBOUND_PARTITIONS,
            &ends,
            timeout,
        );
        for (p, end) in &ends {
            assert_eq!(
                committed[p],
                Some(*end),
                "partition {p}: committed offset is not the end"
            );
        }
    }

    /// The output topics as the collector wants them.
    pub fn routes(&self) -> Vec<(&str, u32, crate::kafka::Route)> {
        use crate::kafka::Route;
        vec![
            (&self.approved, OTHER_PARTITIONS, Route::Approved),
            (&self.quarantine, OTHER_PARTITIONS, Route::Quarantine),
            (&self.deferred, OTHER_PARTITIONS, Route::Deferred),
        ]
    }
}

/// How to run one gate instance.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub brokers: String,
    pub topics: Topics,
    /// Static membership id (`kafka.group_instance_id`), if any.
    pub instance_id: Option<String>,
    /// More `SMSGATE__…` variables, applied last.
    pub env: Vec<(String, String)>,
    /// librdkafka properties for `[kafka.properties]` (a config file is
    /// written for them: the table cannot be set through env variables).
    pub properties: Vec<(String, String)>,
}

impl GateConfig {
    pub fn new(broker: &Broker, topics: &Topics) -> GateConfig {
        GateConfig {
            brokers: broker.bootstrap(),
            topics: topics.clone(),
            instance_id: None,
            env: Vec::new(),
            properties: Vec::new(),
        }
    }

    pub fn instance(mut self, id: &str) -> GateConfig {
        self.instance_id = Some(id.to_string());
        self
    }

    pub fn property(mut self, key: &str, value: &str) -> GateConfig {
        self.properties.push((key.to_string(), value.to_string()));
        self
    }

    /// The config file to run with: `config/default.toml`, or a copy of it
    /// with the `[kafka.properties]` of this config.
    fn config_file(&self, dir: &Path, name: &str) -> PathBuf {
        let default = crate_dir().join("config/default.toml");
        if self.properties.is_empty() {
            return default;
        }
        let mut text = std::fs::read_to_string(&default).expect("read config/default.toml");
        let table = self
            .properties
            .iter()
            .map(|(k, v)| format!("{k:?} = {v:?}\n"))
            .collect::<String>();
        text = text.replacen(
            "[kafka.properties]\n",
            &format!("[kafka.properties]\n{table}"),
            1,
        );
        assert!(
            text.contains(&table),
            "config/default.toml has no [kafka.properties] table"
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write the gate config");
        path
    }

    pub fn set(mut self, key: &str, value: &str) -> GateConfig {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running `smsgate run`. Killed (SIGKILL) when dropped.
pub struct Gate {
    child: Child,
    pub name: String,
    pub metrics: SocketAddr,
    pub log: PathBuf,
    pub started: Instant,
}

impl Gate {
    /// Starts `smsgate run --config config/default.toml` with `cfg` applied
    /// through environment variables; `name` names its log file.
    pub fn start(cfg: &GateConfig, name: &str) -> Gate {
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dir = process::work_dir("gates");
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the gate log");
        let t = &cfg.topics;
        let mut command = Command::new(bin());
        command
            .args(["run", "--config"])
            .arg(cfg.config_file(&dir, name))
            .current_dir(crate_dir())
            .env("SMSGATE__KAFKA__BROKERS", &cfg.brokers)
            .env("SMSGATE__KAFKA__GROUP_ID", &t.group)
            .env("SMSGATE__KAFKA__STARTUP_TIMEOUT_SECS", "30")
            .env("SMSGATE__TOPICS__OUTBOUND", &t.outbound)
            .env("SMSGATE__TOPICS__CONSENT", &t.consent)
            .env("SMSGATE__TOPICS__INBOUND", &t.inbound)
            .env("SMSGATE__TOPICS__APPROVED", &t.approved)
            .env("SMSGATE__TOPICS__QUARANTINE", &t.quarantine)
            .env("SMSGATE__TOPICS__DEFERRED", &t.deferred)
            .env("SMSGATE__POLICY__SENDERS", senders_file())
            .env("SMSGATE__METRICS__LISTEN", metrics.to_string())
            .env("SMSGATE__LOG__FORMAT", "json")
            .env("SMSGATE__PIPELINE__DRAIN_TIMEOUT_SECS", "20")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file);
        if let Some(id) = &cfg.instance_id {
            command.env("SMSGATE__KAFKA__GROUP_INSTANCE_ID", id);
        }
        for (k, v) in &cfg.env {
            command.env(k, v);
        }
        let child = process::spawn(command).expect("start smsgate run");
        Gate {
            child,
            name: name.to_string(),
            metrics,
            log,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Lines of this gate's log that hold a full phone number: a `+` and 8
    /// or more digits in a row (a masked one, `+86138****5678`, has 5).
    pub fn unmasked_numbers(&self) -> Vec<String> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| has_full_number(l))
            .map(str::to_string)
            .collect()
    }

    /// The last lines of this gate's log.
    pub fn log_tail(&self) -> String {
        process::tail(&self.log, 30)
    }

    /// Waits until `/readyz` answers 200; panics (with the log) if the gate
    /// exits or does not get ready within `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let metrics = self.metrics;
        let mut exited = None;
        let ready = crate::wait_until(timeout, Duration::from_millis(50), || {
            if let Some(s) = self.child.try_status() {
                exited = Some(s);
                return true;
            }
            http_get(metrics, "/readyz").is_some_and(|(status, _)| status == 200)
        });
        if let Some(s) = exited {
            panic!(
                "gate {} exited before ready ({s}); log:\n{}",
                self.name,
                self.log_tail()
            );
        }
        assert!(
            ready,
            "gate {} not ready within {timeout:?}; log:\n{}",
            self.name,
            self.log_tail()
        );
        self.started.elapsed()
    }

    /// GET `path` on the metrics listener: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics, path)
    }

    /// Events this instance has consumed, from its `/metrics` (0 when unknown).
    pub fn consumed(&self) -> f64 {
        self.get("/metrics")
            .and_then(|(_, text)| metric_sum(&text, smsgate::telemetry::metrics::EVENTS_CONSUMED))
            .unwrap_or(0.0)
    }

    /// kill -9.
    pub fn kill9(&mut self) -> ExitStatus {
        self.child.kill9()
    }

    /// SIGSTOP: the process freezes (no heartbeats, no transaction
    /// commits) without dying, as a zombie of a long GC pause or a frozen
    /// VM would.
    pub fn sigstop(&mut self) {
        self.child.signal(libc::SIGSTOP);
    }

    /// SIGCONT: a stopped process runs on from where it was.
    pub fn sigcont(&mut self) {
        self.child.signal(libc::SIGCONT);
    }

    /// The lines of this gate's log (JSON, one event a line) that contain
    /// `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// The sum of metric `name` in this gate's `/metrics` (over its label
    /// sets), if it answers.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.get("/metrics")
            .and_then(|(_, text)| metric_sum(&text, name))
    }

    /// Asks the gate to reload its policy (packs and sender registry).
    pub fn sighup(&mut self) {
        self.child.signal(libc::SIGHUP);
    }

    /// SIGTERM, then wait up to `timeout` for the exit.
    pub fn sigterm(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.child.signal(libc::SIGTERM);
        self.child.wait(timeout)
    }

    /// Waits up to `timeout` for the gate to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.child.wait(timeout)
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_status().is_none()
    }
}

/// Issue 23.9: never a full phone number in a log line. Every gate of the
/// end-to-end tests has its whole log scanned when it is dropped; a test
/// that passed otherwise fails here.
impl Drop for Gate {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let found = self.unmasked_numbers();
        assert!(
            found.is_empty(),
            "gate {} logged {} line(s) with a full phone number, e.g.:\n{}",
            self.name,
            found.len(),
            found.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

/// True when `line` holds `+` followed by 8 or more digits.
pub fn has_full_number(line: &str) -> bool {
    let b = line.as_bytes();
    b.iter().enumerate().any(|(i, c)| {
        *c == b'+' && b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count() >= 8
    })
}

/// A minimal GET over a std TcpStream: (status, body). HTTP/1.0, so that
/// no server (the gate, Prometheus) answers with a chunked body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The value of an unlabelled Prometheus sample `name` in `/metrics` text, or
/// the sum over its label sets.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let series_name = series.split('{').next().unwrap_or(series);
        if series_name == name {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::has_full_number;

    #[test]
    fn full_numbers_are_found_and_masked_ones_are_not() {
        assert!(has_full_number(r#"{"to":"+8613812345678"}"#));
        assert!(has_full_number("invalid value: string \"+12125551234\""));
        assert!(!has_full_number(r#"{"to":"+86138****5678"}"#));
        assert!(!has_full_number(
            "2026-12-06T03:00:00+08:00 offset +1234567"
        ));
    }
}
