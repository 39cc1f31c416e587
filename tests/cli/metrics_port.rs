//! The metrics/health port under a connection-exhaustion attempt: `smsgate
//! demo` (the whole gate on the mock cluster) runs with a low file limit
//! while many more never-finished requests are opened than it may hold
//! files; `/healthz` answers again within seconds and the gate keeps
//! deciding throughout.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use smsgate_testkit::gate::{http_get, metric_sum};

/// The gate's own file limit; the attack opens four times as many.
const FILE_LIMIT: u64 = 256;
const HALF_OPEN: usize = 1024;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn decided(addr: SocketAddr) -> f64 {
    http_get(addr, "/metrics")
        .and_then(|(_, body)| metric_sum(&body, "smsgate_decisions_total"))
        .unwrap_or(0.0)
}

/// Polls `/healthz` until it answers 200; how long that took.
fn healthz_within(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if http_get(addr, "/healthz").is_some_and(|(status, _)| status == 200) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn half_open_connections_cannot_exhaust_the_metrics_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = dir.path().join("demo.toml");
    std::fs::write(
        &config,
        format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n"),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsgate"));
    command
        .args(["demo", "--events", "10000000", "--rate", "2000"])
        .args(["--duration", "90", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: FILE_LIMIT,
                rlim_max: FILE_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut gate = command.spawn().unwrap();
    let result = std::panic::catch_unwind(|| {
        assert!(
            healthz_within(addr, Duration::from_secs(60)).is_some(),
            "the demo never served /healthz"
        );
        let start = Instant::now();
        let mut before = decided(addr);
        while before == 0.0 && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(200));
            before = decided(addr);
        }

        // Never-finished requests: a request line and one header, no end.
        let mut held = Vec::with_capacity(HALF_OPEN);
        for _ in 0..HALF_OPEN {
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
                held.push(s);
            }
        }
        let took = healthz_within(addr, Duration::from_secs(20));
        // Read the counters once the attack is over: while it lasts, this
        // request may itself be one too many.
        drop(held);
        let mut metrics = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while metrics.is_empty() && Instant::now() < deadline {
            metrics = http_get(addr, "/metrics")
                .map(|(_, b)| b)
                .unwrap_or_default();
            if metrics.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let after = metric_sum(&metrics, "smsgate_decisions_total").unwrap_or(0.0);
        (took, before, after, metrics)
    });
    let _ = gate.kill();
    let _ = gate.wait();
    let (took, before, after, metrics) = result.unwrap();
    let took = took.expect("/healthz did not answer again within 20 s");
    println!(
        "healthz answered {:.1} s after {HALF_OPEN} half-open connections; decisions {before} → {after}",
        took.as_secs_f64()
    );
    assert!(
        after > before,
        "the gate stopped deciding: {before} → {after}"
    );
    let refused = metric_sum(&metrics, "smsgate_http_connections_refused_total").unwrap_or(0.0);
    assert!(refused > 0.0, "no connection was refused at the cap");
}
