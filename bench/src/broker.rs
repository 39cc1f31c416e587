//! The broker the benchmark runs against: a Tansu process with in-memory
//! storage started for the run (stopped at the end; a restart would lose
//! everything), or an existing Kafka given with `--brokers`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use super::BenchError;

/// A Tansu broker child process.
pub struct Tansu {
    child: Child,
    bin: String,
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

impl Tansu {
    /// Starts `bin broker` on a free port with memory storage, its output
    /// going to `log`, and waits until it accepts connections.
    pub fn start(bin: &Path, log: &Path) -> Result<Tansu, BenchError> {
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let out = std::fs::File::create(log)
            .map_err(|e| BenchError::Setup(format!("{}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", bin.display())))?;
        let t = Tansu {
            child,
            bin: bin.display().to_string(),
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&t.addr).is_err() {
            if Instant::now() >= deadline {
                return Err(BenchError::Setup(format!(
                    "tansu did not listen on {} within 15 s",
                    t.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(t)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `tansu topic create NAME --partitions P`.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BenchError> {
        let status = Command::new(&self.bin)
            .args([
                "topic",
                "create",
                name,
                "--broker",
                &format!("tcp://{}", self.addr),
            ])
            .args(["--partitions", &partitions.to_string()])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| BenchError::Setup(format!("tansu topic create: {e}")))?;
        if !status.success() {
            return Err(BenchError::Setup(format!(
                "tansu topic create {name} failed: {status}"
            )));
        }
        Ok(())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        super::terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// Creates `names` on an existing Kafka through the admin API.
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
