//! The one Apache Kafka 4.1.0 launcher: a broker process on free loopback
//! ports, behind both the end-to-end tests' [`crate::broker::Broker`] and
//! the benchmark (`smsgate-bench`, `bench/src/broker.rs`).
//!
//! Single node, KRaft combined mode, started straight from the jars
//! `scripts/kafka install` fetched (`java -cp 'LIBS/*' kafka.Kafka
//! server.properties`), with the same `server.properties` and
//! `log4j2.properties` as `scripts/kafka start` (scripts/kafka-broker/).
//! The storage is formatted once per directory, so a restart on the same
//! directory keeps topics, records and committed offsets. The broker's log
//! is `<dir>/logs/server.log`, each start's stdout and stderr
//! `<dir>/logs/stdout-<n>.log`.
//!
//! Every step returns a [`LaunchError`]; nothing here panics. The child is
//! spawned through [`crate::process`], so it dies with the process that
//! started it, and is killed (SIGKILL) when its [`KafkaProcess`] is dropped.

use std::io::{self, Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::kafka_security::{self, Secure, Tls};
use crate::process::{self, Child};

/// The Kafka version `scripts/kafka install` fetches.
pub const KAFKA_VERSION: &str = "4.1.0";

/// The broker's configuration, with `@PORT@`, `@CONTROLLER_PORT@` and `@DATA_DIR@` to fill in.
const SERVER_PROPERTIES: &str = include_str!("../../scripts/kafka-broker/server.properties");
/// Logging to `${kafka.logs.dir}/server.log`.
const LOG4J2_PROPERTIES: &str = include_str!("../../scripts/kafka-broker/log4j2.properties");
/// The line Kafka logs once the broker is registered, unfenced and listening.
const STARTED: &str = "Kafka Server started";
/// How long a start may take (it takes 3–8 s; the JVM competes with builds).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long [`create_topics`] waits for every partition to have a leader.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong starting, stopping or using a broker.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "Kafka {KAFKA_VERSION} is not installed in {}: run `scripts/kafka install`",
        .libs.display()
    )]
    NotInstalled { libs: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot run java (Java 17 or later is needed): {0}")]
    Java(#[source] io::Error),
    #[error("kafka-storage format of {} failed ({status}):\n{output}", .data.display())]
    Format {
        data: PathBuf,
        status: ExitStatus,
        output: String,
    },
    #[error(
        "{failure}; log {}:\n{log_tail}\nstdout {}:\n{stdout_tail}",
        .log.display(),
        .stdout.display()
    )]
    Start {
        failure: String,
        log: PathBuf,
        log_tail: String,
        stdout: PathBuf,
        stdout_tail: String,
    },
    #[error("{what} failed ({status}):\n{output}")]
    Tool {
        what: String,
        status: ExitStatus,
        output: String,
    },
    #[error("admin client for {bootstrap}: {source}")]
    Admin {
        bootstrap: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("the admin client's thread panicked")]
    AdminThread,
    #[error("create topic {name}: {code}")]
    CreateTopic {
        name: String,
        code: RDKafkaErrorCode,
    },
    #[error("topics {topics:?} not served within {timeout:?}")]
    NotServed {
        topics: Vec<(String, u32)>,
        timeout: Duration,
    },
}

/// An [`LaunchError::Io`] naming what was being done.
fn io_error(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> LaunchError {
    move |source| LaunchError::Io {
        what: what.to_string(),
        source,
    }
}

/// Where `scripts/kafka install` put Kafka: `$SMSGATE_KAFKA_HOME/4.1.0`
/// (default `/opt/smsgate-kafka/4.1.0`).
pub fn kafka_home() -> PathBuf {
    Path::new(&std::env::var("SMSGATE_KAFKA_HOME").unwrap_or_else(|_| "/opt/smsgate-kafka".into()))
        .join(KAFKA_VERSION)
}

/// The jar folder of the Kafka in `home` (`$SMSGATE_KAFKA_HOME/4.1.0`),
/// when the install finished (it writes `installed` last).
pub fn installed_libs(home: &Path) -> Option<PathBuf> {
    home.join("installed")
        .is_file()
        .then(|| home.join("libs"))
        .filter(|l| l.join(format!("kafka_2.13-{KAFKA_VERSION}.jar")).is_file())
}

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16, LaunchError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io_error("bind a free loopback port"))
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

/// The broker JVM's tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jvm {
    /// 512 MB heap, C1 only: the broker starts in about half the time on
    /// 2 cores (the end-to-end tests).
    QuickStart,
    /// 1 GB heap, full JIT: the broker's speed is part of what is measured
    /// (the benchmark).
    Throughput,
}

impl Jvm {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Jvm::QuickStart => &[
                "-Xmx512m",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
            ],
            Jvm::Throughput => &[
                "-Xmx1g",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
            ],
        }
    }
}

/// A broker's directory, ports and (while it runs) process.
pub struct KafkaProcess {
    port: u16,
    controller_port: u16,
    /// `$SMSGATE_KAFKA_HOME/4.1.0` (the class-data-sharing archive).
    home: PathBuf,
    /// `home/libs`, the classpath.
    libs: PathBuf,
    /// `server.properties`, `log4j2.properties`, `data/` (the log dirs) and `logs/`.
    dir: PathBuf,
    jvm: Jvm,
    child: Option<Child>,
    /// How many times it was started, to name the stdout files.
    starts: u32,
    /// The SASL_SSL listener, if the broker has one.
    secure: Option<SecureListener>,
}

/// A SASL_SSL listener beside the PLAINTEXT one (see [`kafka_security`]).
struct SecureListener {
    port: u16,
    users: Secure,
    tls: Tls,
}

impl KafkaProcess {
    /// Configures a broker in `dir` on two free ports, from the Kafka in
    /// `home` (`$SMSGATE_KAFKA_HOME/4.1.0`), and starts it: returns once
    /// it has logged its start and its port accepts connections.
    pub fn start(home: &Path, dir: &Path, jvm: Jvm) -> Result<KafkaProcess, LaunchError> {
        let mut kafka = KafkaProcess::configure(home, dir, jvm)?;
        kafka.launch()?;
        Ok(kafka)
    }

    /// Picks two free ports, writes the configuration into `dir` and
    /// formats the storage (unless `dir` holds a formatted one already);
    /// starts nothing ([`KafkaProcess::launch`] does).
    pub fn configure(home: &Path, dir: &Path, jvm: Jvm) -> Result<KafkaProcess, LaunchError> {
        KafkaProcess::configure_with(home, dir, jvm, None)
    }

    /// Like [`KafkaProcess::start`], with a SASL_SSL listener (SCRAM-SHA-512
    /// users, a test CA, ACLs enforced) beside the PLAINTEXT one.
    pub fn start_secure(
        home: &Path,
        dir: &Path,
        jvm: Jvm,
        secure: Secure,
    ) -> Result<KafkaProcess, LaunchError> {
        let mut kafka = KafkaProcess::configure_with(home, dir, jvm, Some(secure))?;
        kafka.launch()?;
        Ok(kafka)
    }

    fn configure_with(
        home: &Path,
        dir: &Path,
        jvm: Jvm,
        secure: Option<Secure>,
    ) -> Result<KafkaProcess, LaunchError> {
        // Java runs in `dir`: every path it is given must be absolute.
        let dir =
            &std::path::absolute(dir).map_err(io_error(format!("resolve {}", dir.display())))?;
        let secure = match secure {
            Some(users) => Some(SecureListener {
                port: free_port()?,
                tls: kafka_security::make_tls(&dir.join("tls"))?,
                users,
            }),
            None => None,
        };
        let libs = installed_libs(home).ok_or_else(|| LaunchError::NotInstalled {
            libs: home.join("libs"),
        })?;
        let kafka = KafkaProcess {
            port: free_port()?,
            controller_port: free_port()?,
            home: home.to_path_buf(),
            libs,
            dir: dir.to_path_buf(),
            jvm,
            child: None,
            starts: 0,
            secure,
        };
        kafka.write_config()?;
        kafka.format()?;
        Ok(kafka)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` and `kafka.brokers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT` of the SASL_SSL listener, if there is one.
    pub fn secure_bootstrap(&self) -> Option<String> {
        self.secure
            .as_ref()
            .map(|s| format!("127.0.0.1:{}", s.port))
    }

    /// The test CA's certificate (PEM) the SASL_SSL listener's is signed by.
    pub fn ca_pem(&self) -> Option<&Path> {
        self.secure.as_ref().map(|s| s.tls.ca_pem.as_path())
    }

    /// `java -cp LIBS/* class` for one of Kafka's command-line tools.
    pub fn tool_command(&self, class: &str) -> Command {
        let mut command = Command::new("java");
        command
            .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .arg(format!(
                "-Dkafka.logs.dir={}",
                self.dir.join("logs").display()
            ))
            .arg("-cp")
            .arg(format!("{}/*", self.libs.display()))
            .arg(class)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        command
    }

    /// The broker's (PLAINTEXT) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's directory (configuration, `data/`, `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The broker's log (log4j; all starts append to it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("logs/server.log")
    }

    /// The running broker's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::pid)
    }

    fn write_config(&self) -> Result<(), LaunchError> {
        let logs = self.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(io_error(format!("create {}", logs.display())))?;
        let mut props = SERVER_PROPERTIES
            .replace("@PORT@", &self.port.to_string())
            .replace("@CONTROLLER_PORT@", &self.controller_port.to_string())
            .replace("@DATA_DIR@", &self.dir.join("data").display().to_string());
        if let Some(s) = &self.secure {
            props = kafka_security::server_properties(
                &props,
                self.port,
                self.controller_port,
                s.port,
                &s.tls,
            );
        }
        for (name, text) in [
            ("server.properties", props.as_str()),
            ("log4j2.properties", LOG4J2_PROPERTIES),
        ] {
            let path = self.dir.join(name);
            std::fs::write(&path, text).map_err(io_error(format!("write {}", path.display())))?;
        }
        Ok(())
    }

    /// Formats the storage, once per directory.
    fn format(&self) -> Result<(), LaunchError> {
        let data = self.dir.join("data");
        if data.join("meta.properties").is_file() {
            return Ok(());
        }
        let started = Instant::now();
        let out = self
            .java()
            .args(["kafka.tools.StorageTool", "format", "--standalone", "-t"])
            .arg(cluster_id())
            .arg("-c")
            .arg(self.dir.join("server.properties"))
            .args(
                self.secure
                    .as_ref()
                    .map(|s| kafka_security::scram_format_args(&s.users))
                    .unwrap_or_default(),
            )
            .output()
            .map_err(LaunchError::Java)?;
        if !out.status.success() {
            return Err(LaunchError::Format {
                data,
                status: out.status,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        eprintln!(
            "[broker] formatted {} in {:.1?}",
            data.display(),
            started.elapsed()
        );
        Ok(())
    }

    /// `java` with the broker's JVM options and classpath.
    fn java(&self) -> Command {
        let mut command = Command::new("java");
        command.args(self.jvm.flags());
        // The class-data-sharing archive `scripts/kafka install` wrote, if any.
        let archive = self.home.join("kafka.jsa");
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
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        command
    }

    /// Starts the broker on its ports and data (killing it first if it
    /// runs), and waits until it has logged its start and its port accepts
    /// connections. Returns how long that took.
    pub fn launch(&mut self) -> Result<Duration, LaunchError> {
        self.kill();
        self.starts += 1;
        let log = self.log_path();
        // Only what this start logs counts.
        let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let stdout_path = self.dir.join(format!("logs/stdout-{}.log", self.starts));
        let stdout = std::fs::File::create(&stdout_path)
            .map_err(io_error(format!("create {}", stdout_path.display())))?;
        let stderr = stdout
            .try_clone()
            .map_err(io_error("clone the broker's stdout handle"))?;
        let mut command = self.java();
        command
            .arg("kafka.Kafka")
            .arg(self.dir.join("server.properties"))
            .stdout(stdout)
            .stderr(stderr);
        let began = Instant::now();
        let mut child = process::spawn(command).map_err(LaunchError::Java)?;
        let started = crate::wait_until(START_TIMEOUT, Duration::from_millis(50), || {
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
            // `child` is dropped: killed, if it still runs.
            return Err(LaunchError::Start {
                failure,
                log_tail: process::tail(&log, 30),
                log,
                stdout_tail: process::tail(&stdout_path, 10),
                stdout: stdout_path,
            });
        }
        let took = began.elapsed();
        eprintln!(
            "[broker] Kafka {KAFKA_VERSION} started on {} in {took:.1?} (log {})",
            self.bootstrap(),
            log.display()
        );
        self.child = Some(child);
        Ok(took)
    }

    /// kill -9 the broker (a crash; the data stays), and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.signal(libc::SIGKILL);
            // Dropping `child` kills and reaps it anyway, should this time out.
            child.wait(Duration::from_secs(10));
        }
    }

    /// Stops the broker with SIGTERM (a controlled shutdown), SIGKILL
    /// after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            child.signal(libc::SIGTERM);
            if child.wait(grace).is_none() {
                child.signal(libc::SIGKILL);
                child.wait(Duration::from_secs(10));
            }
        }
    }
}

impl Drop for KafkaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Creates topics (name, partitions) through the admin API of the broker(s)
/// at `bootstrap`, and waits until they serve every partition. An existing
/// topic is fine.
pub fn create_topics(bootstrap: &str, topics: &[(&str, u32)]) -> Result<(), LaunchError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|source| LaunchError::Admin {
            bootstrap: bootstrap.to_string(),
            source,
        })?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, p)| {
            NewTopic::new(
                name,
                i32::try_from(*p).unwrap_or(i32::MAX),
                TopicReplication::Fixed(1),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    // Its own thread and runtime: callers may be inside a runtime already.
    let results = std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io_error("a runtime for the admin client"))?;
            runtime
                .block_on(admin.create_topics(&new, &options))
                .map_err(|source| LaunchError::Admin {
                    bootstrap: bootstrap.to_string(),
                    source,
                })
        })
        .join()
        .map_err(|_| LaunchError::AdminThread)?
    })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(LaunchError::CreateTopic { name, code }),
        }
    }
    // Every partition led, so the first produce or fetch does not wait
    // for metadata to propagate.
    let ready = crate::wait_until(SERVE_TIMEOUT, Duration::from_millis(50), || {
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
    if !ready {
        return Err(LaunchError::NotServed {
            topics: topics.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            timeout: SERVE_TIMEOUT,
        });
    }
    Ok(())
}
