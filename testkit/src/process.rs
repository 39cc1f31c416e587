//! Child processes (brokers, gates) that cannot outlive the test binary.
//!
//! Linux delivers `PR_SET_PDEATHSIG` when the *thread* that spawned the child
//! exits, not the process. Test threads come and go, so every child is
//! spawned by one spawner thread that lives as long as the process: when the
//! test binary exits (normally, by panic or by a signal) its children get
//! SIGKILL. [`Child`] also kills its process when dropped, so a failed test
//! leaves nothing running for the next test of the same binary.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type Request = (Command, Sender<io::Result<std::process::Child>>);

fn spawner() -> &'static Mutex<Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop ends only with the process.
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawn the child-spawner thread");
        Mutex::new(tx)
    })
}

/// A child process killed (SIGKILL) when dropped or when the test binary dies.
pub struct Child {
    inner: std::process::Child,
    /// Set once the exit status has been collected.
    status: Option<ExitStatus>,
}

/// Spawns `command` so that it receives SIGKILL when this process exits.
pub fn spawn(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, tx))
        .map_err(|_| io::Error::other("child-spawner thread is gone"))?;
    let inner = rx
        .recv()
        .map_err(|_| io::Error::other("child-spawner thread is gone"))??;
    Ok(Child {
        inner,
        status: None,
    })
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) unless the child has exited.
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.try_status().is_none() {
            // SAFETY: plain kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(self.inner.id() as libc::pid_t, signal);
            }
        }
    }

    /// kill -9, and reap.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(10))
            .expect("a SIGKILLed child exits at once")
    }

    /// The exit status if the child has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.inner.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.inner.kill();
            let _ = self.inner.wait();
        }
    }
}

/// The last `lines` lines of a log file, for failure messages.
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `target/<profile>`: where cargo puts the binaries of the workspace, one
/// level above the running test binary (`target/<profile>/deps/NAME-HASH`).
pub fn profile_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary's directory");
    deps.parent().unwrap_or(deps).to_path_buf()
}

/// A directory for this test binary's logs and data, under cargo's
/// `target/tmp`, kept after the run for inspection.
pub fn work_dir(name: &str) -> std::path::PathBuf {
    let dir = profile_dir()
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("tmp")
        .join(format!("e2e-{}", std::process::id()))
        .join(name);
    std::fs::create_dir_all(&dir).expect("create the test work directory");
    dir
}
