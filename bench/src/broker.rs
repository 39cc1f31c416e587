//! The broker the benchmark runs against: an Apache Kafka 4.1.0 process
//! started for the run from the jars `scripts/kafka install` fetched (single
//! node, KRaft, loopback, the configuration of `scripts/kafka-broker/`), or
//! an existing Kafka given with `--brokers`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use super::BenchError;

/// The Kafka version `scripts/kafka install` fetches.
pub const KAFKA_VERSION: &str = "4.1.0";
/// The broker's configuration, with `@PORT@`, `@CONTROLLER_PORT@` and `@DATA_DIR@` to fill in.
const SERVER_PROPERTIES: &str = include_str!("../../scripts/kafka-broker/server.properties");
/// Logging to `${kafka.logs.dir}/server.log`.
const LOG4J2_PROPERTIES: &str = include_str!("../../scripts/kafka-broker/log4j2.properties");
/// Logged once the broker is registered, unfenced and listening.
const STARTED: &str = "Kafka Server started";
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A Kafka broker child process, stopped (and its data removed) when dropped.
pub struct Kafka {
    child: Child,
    /// The broker's directory: configuration, `data/`, `logs/server.log`.
    dir: PathBuf,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub addr: String,
}

/// A free TCP port on the loopback interface (bound, then released).
pub fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::Setup(format!("no free port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .port())
}

fn setup<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> BenchError {
    move |e| BenchError::Setup(format!("{what}: {e}"))
}

/// A random Kafka cluster id: 16 bytes in URL-safe base64 without padding.
fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // Top bit clear: the id starts with a letter, never with `-`, which
    // the storage tool would take for an option.
    let bits = fastrand::u128(..) >> 1;
    // 22 characters of 6 bits hold the 128 bits (the last one only 2 of them).
    (0..22)
        .map(|i| {
            let shift = 128i32 - 6 * (i + 1);
            let v = if shift >= 0 {
                (bits >> shift) & 63
            } else {
                (bits << -shift) & 63
            };
            ALPHABET[v as usize] as char
        })
        .collect()
}

/// Whether `needle` occurs in `path` after byte `from`.
fn logged_since(path: &Path, from: u64, needle: &str) -> bool {
    let mut tail = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(from))?;
            f.read_to_end(&mut tail)
        })
        .is_ok_and(|_| String::from_utf8_lossy(&tail).contains(needle))
}

/// The last `n` lines of a file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Kafka {
    /// Formats `dir` and starts a broker there on a free port, from
    /// `home/libs` (`home` is `$SMSGATE_KAFKA_HOME/4.1.0`), and waits until
    /// it has started. An error names `scripts/kafka install` when the jars
    /// are missing, and the broker's log when it does not start.
    pub fn start(home: &Path, dir: &Path) -> Result<Kafka, BenchError> {
        let libs = home.join("libs");
        if !home.join("installed").is_file() {
            return Err(BenchError::Setup(format!(
                "Kafka {KAFKA_VERSION} is not installed in {}: run `scripts/kafka install`",
                libs.display()
            )));
        }
        let port = free_port()?;
        let controller_port = free_port()?;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(setup(logs.display()))?;
        let props = dir.join("server.properties");
        let log4j = dir.join("log4j2.properties");
        let config = SERVER_PROPERTIES
            .replace("@PORT@", &port.to_string())
            .replace("@CONTROLLER_PORT@", &controller_port.to_string())
            .replace("@DATA_DIR@", &dir.join("data").display().to_string());
        std::fs::write(&props, config).map_err(setup(props.display()))?;
        std::fs::write(&log4j, LOG4J2_PROPERTIES).map_err(setup(log4j.display()))?;
        let java = || {
            let mut c = Command::new("java");
            // Full JIT (unlike the tests' C1-only broker): the broker's
            // speed is part of what is measured.
            c.args([
                "-Xmx1g",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
            ]);
            let archive = home.join("kafka.jsa");
            if archive.is_file() {
                c.arg(format!("-XX:SharedArchiveFile={}", archive.display()));
            }
            c.arg(format!("-Dkafka.logs.dir={}", logs.display()))
                .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
                .arg("-cp")
                .arg(format!("{}/*", libs.display()))
                .stdin(Stdio::null());
            c
        };
        let format = java()
            .args(["kafka.tools.StorageTool", "format", "--standalone", "-t"])
            .arg(cluster_id())
            .arg("-c")
            .arg(&props)
            .output()
            .map_err(setup("cannot run java (Java 17 is needed)"))?;
        if !format.status.success() {
            return Err(BenchError::Setup(format!(
                "kafka-storage format failed ({}): {}{}",
                format.status,
                String::from_utf8_lossy(&format.stdout),
                String::from_utf8_lossy(&format.stderr)
            )));
        }
        let stdout_path = logs.join("stdout.log");
        let out = std::fs::File::create(&stdout_path).map_err(setup(stdout_path.display()))?;
        let err = out.try_clone().map_err(setup("stdout handle"))?;
        let child = java()
            .arg("kafka.Kafka")
            .arg(&props)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(setup("cannot start java"))?;
        let mut kafka = Kafka {
            child,
            dir: dir.to_path_buf(),
            addr: format!("127.0.0.1:{port}"),
        };
        let log = logs.join("server.log");
        let deadline = Instant::now() + START_TIMEOUT;
        while !logged_since(&log, 0, STARTED) {
            let exited = kafka.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let what = match exited {
                    Some(status) => format!("Kafka exited at start ({status})"),
                    None => format!("Kafka did not start within {START_TIMEOUT:?}"),
                };
                return Err(BenchError::Setup(format!(
                    "{what}; log {}:\n{}",
                    log.display(),
                    tail(&log, 30)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(kafka)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        super::terminate(&mut self.child, Duration::from_secs(20));
        // The records (hundreds of MB for a million events) go; the logs stay.
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}

/// Creates `names` through the admin API (on the broker started for the
/// run, or an existing Kafka).
pub fn create_topics(brokers: &str, names: &[String], partitions: i32) -> Result<(), BenchError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| BenchError::Setup(format!("admin client: {e}")))?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = rt
        .block_on(admin.create_topics(&topics, &opts))
        .map_err(|e| BenchError::Setup(format!("create topics: {e}")))?;
    for r in results {
        if let Err((name, code)) = r {
            return Err(BenchError::Setup(format!("create topic {name}: {code}")));
        }
    }
    Ok(())
}
