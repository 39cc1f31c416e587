//! Start-up failures of `smsgate run` (CONTRACT §9): a bad config value, a
//! missing config file, a missing sender registry and an unreachable broker
//! each end the process with a one-line error on stderr and a non-zero exit
//! (2 for configuration), in bounded time — never a panic or a hang.
//! No broker is needed.

use smsgate_testkit as support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::broker::free_port;
use support::gate::{bin, crate_dir, senders_file};
use support::process;

/// Exit code for configuration errors.
const EXIT_CONFIG: i32 = 2;

struct Outcome {
    code: Option<i32>,
    /// stderr lines that are not JSON log records.
    lines: Vec<String>,
    took: Duration,
}

/// Runs `smsgate run` with `args` and `env` on top of a valid base setup.
fn run(args: &[&str], env: &[(&str, String)], timeout: Duration) -> Outcome {
    let dir = process::work_dir("config");
    let stderr_path = dir.join(format!("stderr-{}.log", free_port()));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut command = Command::new(bin());
    command
        .arg("run")
        .args(args)
        .current_dir(crate_dir())
        .env(
            "SMSGATE__KAFKA__BROKERS",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("SMSGATE__KAFKA__STARTUP_TIMEOUT_SECS", "3")
        .env("SMSGATE__POLICY__SENDERS", senders_file())
        .env(
            "SMSGATE__METRICS__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("SMSGATE__LOG__FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        command.env(k, v);
    }
    let started = Instant::now();
    let mut child = process::spawn(command).expect("start smsgate");
    let status = child.wait(timeout);
    let took = started.elapsed();
    let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let Some(status) = status else {
        panic!("smsgate run did not exit within {timeout:?}; stderr:\n{text}");
    };
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('{'))
        .map(str::to_string)
        .collect();
    Outcome {
        code: status.code(),
        lines,
        took,
    }
}

fn assert_one_line(o: &Outcome, mentions: &str) {
    assert_eq!(
        o.lines.len(),
        1,
        "want one error line on stderr, got {:?}",
        o.lines
    );
    assert!(
        o.lines[0].to_lowercase().contains(&mentions.to_lowercase()),
        "error line {:?} does not mention {mentions:?}",
        o.lines[0]
    );
    assert!(
        !o.lines[0].contains("panicked"),
        "a panic, not an error: {:?}",
        o.lines[0]
    );
}

#[test]
fn a_value_of_the_wrong_type_is_a_config_error() {
    let o = run(
        &[],
        &[("SMSGATE__PIPELINE__MAX_IN_FLIGHT", "lots".into())],
        Duration::from_secs(20),
    );
    eprintln!(
        "[config] wrong type: exit {:?} in {:.2?}: {:?}",
        o.code, o.took, o.lines
    );
    assert_eq!(o.code, Some(EXIT_CONFIG));
    assert_one_line(&o, "max_in_flight");
}

#[test]
fn a_config_file_with_a_wrong_type_is_a_config_error() {
    let dir = process::work_dir("config");
    let file = dir.join("wrong-type.toml");
    std::fs::write(&file, "[pipeline]\ncommit_interval_ms = \"soon\"\n").unwrap();
    let o = run(
        &["--config", file.to_str().unwrap()],
        &[],
        Duration::from_secs(20),
    );
    eprintln!(
        "[config] wrong type in file: exit {:?} in {:.2?}: {:?}",
        o.code, o.took, o.lines
    );
    assert_eq!(o.code, Some(EXIT_CONFIG));
    assert_one_line(&o, "commit_interval_ms");
}

#[test]
fn a_missing_config_file_is_a_config_error() {
    let o = run(
        &["--config", "/nonexistent/smsgate.toml"],
        &[],
        Duration::from_secs(20),
    );
    eprintln!(
        "[config] missing file: exit {:?} in {:.2?}: {:?}",
        o.code, o.took, o.lines
    );
    assert_eq!(o.code, Some(EXIT_CONFIG));
    assert_one_line(&o, "/nonexistent/smsgate.toml");
}

#[test]
fn a_missing_sender_registry_is_a_config_error() {
    let o = run(
        &[],
        &[(
            "SMSGATE__POLICY__SENDERS",
            "/nonexistent/senders.toml".into(),
        )],
        Duration::from_secs(20),
    );
    eprintln!(
        "[config] missing registry: exit {:?} in {:.2?}: {:?}",
        o.code, o.took, o.lines
    );
    assert_eq!(o.code, Some(EXIT_CONFIG));
    assert_one_line(&o, "/nonexistent/senders.toml");
}

#[test]
fn an_unreachable_broker_ends_start_up_within_the_timeout() {
    let port = free_port();
    let o = run(
        &[],
        &[
            ("SMSGATE__KAFKA__BROKERS", format!("127.0.0.1:{port}")),
            ("SMSGATE__KAFKA__STARTUP_TIMEOUT_SECS", "3".into()),
        ],
        Duration::from_secs(30),
    );
    eprintln!(
        "[config] unreachable broker (startup_timeout_secs = 3): exit {:?} in {:.2?}: {:?}",
        o.code, o.took, o.lines
    );
    assert!(
        matches!(o.code, Some(c) if c != 0),
        "exit code {:?}",
        o.code
    );
    assert!(
        o.took < Duration::from_secs(3 + 10),
        "took {:.1?}, over the 3 s start-up timeout (+10 s grace)",
        o.took
    );
    assert_one_line(&o, &format!("127.0.0.1:{port}"));
}
