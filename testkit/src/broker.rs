//! An Apache Kafka 4.1.0 broker process on a free loopback port.
//!
//! Single node, KRaft combined mode, started straight from the jars
//! `scripts/kafka install` fetched (`java -cp 'LIBS/*' kafka.Kafka
//! server.properties`), with the same `server.properties` and
//! `log4j2.properties` as `scripts/kafka start` (scripts/kafka-broker/).
//! Kafka is durable: a restart on the same directory keeps topics, records
//! and committed offsets. Its log is `<dir>/logs/server.log`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::process::{self, Child};

/// The Kafka version `scripts/kafka install` fetches.
pub const KAFKA_VERSION: &str = "4.1.0";

/// What a test run says when the broker is missing.
pub const INSTALL_HINT: &str = "the end-to-end tests need Apache Kafka 4.1.0, which is not installed: \
run `scripts/kafka install` (or `scripts/test`, which installs it and runs the whole suite)";

/// The broker's configuration, with `@PORT@`, `@CONTROLLER_PORT@` and `@DATA_DIR@` to fill in.
const SERVER_PROPERTIES: &str = include_str!("../../scripts/kafka-broker/server.properties");
/// Logging to `${kafka.logs.dir}/server.log`.
const LOG4J2_PROPERTIES: &str = include_str!("../../scripts/kafka-broker/log4j2.properties");
/// The line Kafka logs once the broker is registered, unfenced and listening.
const STARTED: &str = "Kafka Server started";
/// How long a start may take (it takes 3–8 s; the JVM competes with builds).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Where `scripts/kafka install` put Kafka: `$SMSGATE_KAFKA_HOME/4.1.0`
/// (default `/opt/smsgate-kafka/4.1.0`).
pub fn kafka_home() -> PathBuf {
    Path::new(&std::env::var("SMSGATE_KAFKA_HOME").unwrap_or_else(|_| "/opt/smsgate-kafka".into()))
        .join(KAFKA_VERSION)
}

/// The jar folder, when the install finished (it writes `installed` last).
pub fn libs() -> Option<PathBuf> {
    let home = kafka_home();
    home.join("installed")
        .is_file()
        .then(|| home.join("libs"))
        .filter(|l| l.join(format!("kafka_2.13-{KAFKA_VERSION}.jar")).is_file())
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
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

/// A running broker. Killed (SIGKILL) when dropped or when the test binary exits.
pub struct Broker {
    pub port: u16,
    controller_port: u16,
    libs: PathBuf,
    /// `server.properties`, `data/` (the log dirs) and `logs/`.
    dir: PathBuf,
    child: Mutex<Option<Child>>,
    /// How many times it was started, to name the stdout files.
    starts: Mutex<u32>,
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
        let libs = libs().unwrap_or_else(|| {
            panic!(
                "{INSTALL_HINT} (looked for {})",
                kafka_home().join("libs").display()
            )
        });
        let broker = Broker {
            port: free_port(),
            controller_port: free_port(),
            libs,
            dir: process::work_dir(name),
            child: Mutex::new(None),
            starts: Mutex::new(0),
        };
        broker.configure();
        broker.launch();
        broker
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` and `kafka.brokers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log (log4j; all starts append to it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("logs/server.log")
    }

    /// Writes the configuration and formats the storage (once per directory).
    fn configure(&self) {
        let data = self.dir.join("data");
        std::fs::create_dir_all(self.dir.join("logs")).expect("create the broker's logs dir");
        let props = SERVER_PROPERTIES
            .replace("@PORT@", &self.port.to_string())
            .replace("@CONTROLLER_PORT@", &self.controller_port.to_string())
            .replace("@DATA_DIR@", &data.display().to_string());
        std::fs::write(self.dir.join("server.properties"), props).expect("write server.properties");
        std::fs::write(self.dir.join("log4j2.properties"), LOG4J2_PROPERTIES)
            .expect("write log4j2.properties");
        if data.join("meta.properties").is_file() {
            return;
        }
        let started = Instant::now();
        let out = self
            .java()
            .args(["kafka.tools.StorageTool", "format", "--standalone", "-t"])
            .arg(cluster_id())
            .arg("-c")
            .arg(self.dir.join("server.properties"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run java: {e}. {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "kafka-storage format of {} failed ({}):\n{}{}",
            data.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "[broker] formatted {} in {:.1?}",
            data.display(),
            started.elapsed()
        );
    }

    /// `java` with the broker's JVM options and classpath.
    fn java(&self) -> Command {
        let mut command = Command::new("java");
        // C1 only: the broker starts in about half the time on 2 cores.
        command.args([
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
        ]);
        // The class-data-sharing archive `scripts/kafka install` wrote, if any.
        let archive = kafka_home().join("kafka.jsa");
        if archive.is_file() {
            command.arg(format!("-XX:SharedArchiveFile={}", archive.display()));
        }
        command
            .arg(format!(
                "-Dkafka.logs.dir={}",
                self.dir.join("logs").display()
            ))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(format!("{}/*", self.libs.display()))
            .current_dir(&self.dir);
        command
    }

    fn launch(&self) {
        let n = {
            let mut starts = self.starts.lock().unwrap();
            *starts += 1;
            *starts
        };
        let log = self.log_path();
        // Only what this start logs counts.
        let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let stdout_path = self.dir.join(format!("logs/stdout-{n}.log"));
        let stdout = std::fs::File::create(&stdout_path).expect("create the broker's stdout file");
        let mut command = self.java();
        command
            .arg("kafka.Kafka")
            .arg(self.dir.join("server.properties"))
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().expect("clone the stdout handle"))
            .stderr(stdout);
        let began = Instant::now();
        let mut child = process::spawn(command)
            .unwrap_or_else(|e| panic!("cannot start java: {e}. {INSTALL_HINT}"));
        let started = super::wait_until(START_TIMEOUT, Duration::from_millis(50), || {
            logged_since(&log, from, STARTED) || child.try_status().is_some()
        });
        let failure = if let Some(status) = child.try_status() {
            Some(format!("Kafka exited at start ({status})"))
        } else if !started {
            Some(format!("Kafka did not start within {START_TIMEOUT:?}"))
        } else if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            Some(format!(
                "Kafka logged its start but port {} refuses",
                self.port
            ))
        } else {
            None
        };
        if let Some(failure) = failure {
            panic!(
                "{failure}; log {}:\n{}\nstdout {}:\n{}",
                log.display(),
                process::tail(&log, 30),
                stdout_path.display(),
                process::tail(&stdout_path, 10)
            );
        }
        eprintln!(
            "[broker] Kafka {KAFKA_VERSION} started on {} in {:.1?} (log {})",
            self.bootstrap(),
            began.elapsed(),
            log.display()
        );
        *self.child.lock().unwrap() = Some(child);
    }

    /// kill -9 the broker (a crash; the data stays).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill9();
        }
    }

    /// Stops the broker with SIGTERM (a controlled shutdown), SIGKILL after 30 s.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.signal(libc::SIGTERM);
            if child.wait(Duration::from_secs(30)).is_none() {
                child.kill9();
            }
        }
    }

    /// Starts the broker again on the same ports and data (killing it first
    /// if it runs).
    pub fn restart(&self) {
        self.kill();
        self.launch();
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.create_topics(&[(name, partitions)]);
    }

    /// Creates topics (name, partitions) through the admin API, and waits
    /// until the broker serves every partition. An existing topic is fine.
    pub fn create_topics(&self, topics: &[(&str, u32)]) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("create an admin client");
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(name, p)| NewTopic::new(name, *p as i32, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        // Its own thread and runtime: callers may be inside a runtime already.
        let results = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the admin client")
                    .block_on(admin.create_topics(&new, &options))
            })
            .join()
            .expect("the admin thread")
        })
        .unwrap_or_else(|e| panic!("create topics {topics:?}: {e}"));
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => panic!("create topic {name}: {code}"),
            }
        }
        // Every partition led, so the first produce or fetch does not wait
        // for metadata to propagate.
        let ready = super::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
            let Ok(md) = admin.inner().fetch_metadata(None, Duration::from_secs(5)) else {
                return false;
            };
            topics.iter().all(|(name, p)| {
                md.topics().iter().any(|t| {
                    t.name() == *name
                        && t.error().is_none()
                        && t.partitions().len() == *p as usize
                        && t.partitions().iter().all(|q| q.leader() >= 0)
                })
            })
        });
        assert!(ready, "topics {topics:?} not served within 30 s");
    }
}

/// Whether `needle` occurs in `path` after byte `from`.
fn logged_since(path: &Path, from: u64, needle: &str) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut tail = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(from))?;
            f.read_to_end(&mut tail)
        })
        .is_ok_and(|_| String::from_utf8_lossy(&tail).contains(needle))
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
