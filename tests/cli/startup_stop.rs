//! A stop during start-up is honoured at once: `smsgate run` against a
//! broker that does not answer, with a long start-up timeout, exits 0
//! within 5 s of SIGTERM (2 s here) instead of waiting out the start-up
//! timeout or the opt-out forwarder's transaction set-up (6 s before).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_while_waiting_for_the_broker_stops_at_once() {
    let mut gate = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .arg("run")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Nothing listens on port 1: the gate waits for its broker.
        .env("SMSGATE__KAFKA__BROKERS", "127.0.0.1:1")
        .env("SMSGATE__KAFKA__STARTUP_TIMEOUT_SECS", "100")
        .env("SMSGATE__METRICS__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(gate.try_wait().unwrap().is_none(), "still starting");
    let stopped = Instant::now();
    unsafe { libc::kill(gate.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = gate.try_wait().unwrap() {
            break status;
        }
        if stopped.elapsed() > Duration::from_secs(5) {
            let _ = gate.kill();
            panic!("SIGTERM during start-up was not honoured within 5 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("stopped {:.1?} after SIGTERM", stopped.elapsed());
    assert_eq!(status.code(), Some(0));
}
