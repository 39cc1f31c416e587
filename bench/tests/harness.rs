//! The benchmark command itself (`smsgate-bench`, what `scripts/bench`
//! runs), end to end on a small input against the real broker process: it
//! starts its own Kafka, preloads, runs the pass-through, the gate and the
//! gate with its rules off, prints the contract's summary line and writes
//! the JSON; and with `--brokers`, on a broker it did not start. Figures
//! are not asserted (they belong to the benchmark); the shape and the
//! counts are.

use smsgate_testkit as support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::broker::{self, Broker, INSTALL_HINT};

const EVENTS: u64 = 3_000;

/// What one `smsgate-bench` run printed and wrote.
struct Run {
    line: String,
    stderr: String,
    results: Value,
}

/// Runs `smsgate-bench` with `args` (plus the debug `smsgate` as the gate
/// and a fresh results directory); panics unless it succeeds and wrote one
/// JSON file.
fn bench(name: &str, args: &[&str]) -> Run {
    broker::libs().expect(INSTALL_HINT);
    let out = std::env::temp_dir().join(format!("smsgate-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_smsgate-bench"))
        .args(args)
        .args(["--timeout", "300"])
        .arg("--gate")
        .arg(support::gate::bin())
        .arg("--out")
        .arg(&out)
        .current_dir(support::gate::crate_dir())
        .output()
        .expect("smsgate-bench starts");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let json: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("results directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(json.len(), 1, "{json:?}");
    let results =
        serde_json::from_str(&std::fs::read_to_string(&json[0]).expect("read")).expect("JSON");
    let _ = std::fs::remove_dir_all(&out);
    Run {
        line: stdout.lines().last().unwrap_or_default().to_string(),
        stderr,
        results,
    }
}

/// The summary line as (key, value) pairs, keys checked.
fn summary(line: &str) -> Vec<(&str, &str)> {
    let fields: Vec<(&str, &str)> = line.split(' ').filter_map(|f| f.split_once('=')).collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        ["gate_rps", "passthrough_rps", "ratio", "p99_ms", "rss_mb"],
        "{line}"
    );
    fields
}

fn sum(v: &Value) -> f64 {
    v.as_object()
        .map(|m| m.values().filter_map(Value::as_f64).sum())
        .unwrap_or(0.0)
}

#[test]
fn the_benchmark_prints_its_summary_line_and_writes_every_run_as_json() {
    let events = EVENTS.to_string();
    let Run {
        line,
        stderr,
        results,
    } = bench(
        "own",
        &["--events", &events, "--partitions", "4", "--rules-off"],
    );

    // Exactly the line, every figure present.
    for (k, v) in summary(&line) {
        let n: f64 = v.parse().unwrap_or_else(|_| panic!("{k}={v} in {line}"));
        assert!(n > 0.0, "{k}={v} in {line}");
    }
    assert!(stderr.contains("rules off"), "{stderr}");
    // Each run's log line splits its CPU between the process and the broker.
    for run in ["pass-through: ", "gate: ", "rules off: "] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(run) && l.contains("process + ") && l.contains(" broker")),
            "{run}: {stderr}"
        );
    }
    assert!(
        results["broker"]
            .as_str()
            .is_some_and(|b| b.starts_with("kafka 4.1.0")),
        "{}",
        results["broker"]
    );
    let n = EVENTS as f64;
    assert_eq!(results["events"], EVENTS);
    assert_eq!(sum(&results["preload"]["kinds"]), n);

    // Every event decided once in each gate run; the pass-through moved all.
    let gate = &results["gate"];
    assert_eq!(sum(&gate["decisions"]), n);
    assert!(gate["decisions"]["reject"].as_f64() > Some(0.0));
    assert_eq!(gate["exit"], "exit status: 0", "{gate}");
    assert!(results["passthrough"]["rps"].as_f64() > Some(0.0));
    assert_eq!(results["passthrough"]["failed_deliveries"], 0);

    // With the rules off only what is not a rule still rejects: input that
    // does not parse and senders missing from the registry.
    let off = &results["rules_off"];
    assert_eq!(sum(&off["decisions"]), n);
    assert_eq!(off["decisions"]["defer"], 0.0);
    let rejected = off["decisions"]["reject"].as_f64().unwrap_or(-1.0);
    let kinds = &results["preload"]["kinds"];
    assert_eq!(
        rejected,
        kinds["malformed"].as_f64().unwrap_or(0.0)
            + kinds["unknown_sender"].as_f64().unwrap_or(0.0),
        "{off}"
    );
    let cost = results["rules_cost"].as_f64().expect("rules_cost");
    assert!(cost < 1.0, "{cost}");
    assert!(off["cpu_us_per_record"].as_f64() > Some(0.0));

    // Each run names its busiest threads: the gate's decide worker among
    // them, and on stderr after each run line.
    for run in ["passthrough", "gate", "rules_off"] {
        let threads = results[run]["threads"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!threads.is_empty(), "{run}: {}", results[run]);
        let cpu: Vec<f64> = threads
            .iter()
            .filter_map(|t| t["cpu_seconds"].as_f64())
            .collect();
        assert_eq!(cpu.len(), threads.len(), "{run}: {threads:?}");
        assert!(
            cpu.windows(2).all(|w| w[0] >= w[1]),
            "busiest first: {threads:?}"
        );
    }
    for run in ["gate", "rules_off"] {
        let names: Vec<&str> = results[run]["threads"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(names.contains(&"smsgate-decide0"), "{run}: {names:?}");
    }
    for run in [
        "pass-through threads, cores used: ",
        "gate threads, cores used: ",
    ] {
        assert!(stderr.lines().any(|l| l.contains(run)), "{run}: {stderr}");
    }
}

#[test]
fn with_brokers_it_uses_an_existing_broker_and_creates_topics_through_the_admin_api() {
    let broker = Broker::shared();
    let Run {
        line,
        stderr,
        results,
    } = bench(
        "existing",
        &[
            "--events",
            "2000",
            "--partitions",
            "3",
            "--no-passthrough",
            "--rounds",
            "2",
            "--brokers",
            &broker.bootstrap(),
        ],
    );
    let fields = summary(&line);
    assert_eq!(fields[1], ("passthrough_rps", "-"), "{line}");
    assert_eq!(fields[2], ("ratio", "-"), "{line}");
    assert_eq!(
        results["broker"],
        format!("existing Kafka at {}", broker.bootstrap())
    );
    assert_eq!(results["partitions"], 3);
    assert!(results["passthrough"].is_null());
    assert!(results["rules_off"].is_null());
    assert_eq!(sum(&results["gate"]["decisions"]), 2000.0);

    // Two rounds over the same input, each gate under its own group: each
    // decided every event once; the line gives the median of the two.
    assert!(stderr.contains("round 2 of 2"), "{stderr}");
    let rounds = results["rounds"].as_array().cloned().unwrap_or_default();
    assert_eq!(rounds.len(), 2, "{results}");
    let rps: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r["gate"]["rps"].as_f64())
        .collect();
    for r in &rounds {
        assert_eq!(sum(&r["gate"]["decisions"]), 2000.0, "{r}");
    }
    assert_eq!(rps.len(), 2);
    // (Compared with a tolerance: JSON numbers are read back to within an ulp.)
    let median = (rps[0] + rps[1]) / 2.0;
    let reported = results["medians"]["gate_rps"].as_f64().unwrap_or(0.0);
    assert!(
        (reported - median).abs() <= median * 1e-9,
        "{reported} vs {median}"
    );
    let printed: f64 = fields[0].1.parse().unwrap_or(0.0);
    assert!((printed - median).abs() <= 1.0, "{line} vs {median}");
    let shown = results["median_round"].as_u64().unwrap_or(0);
    assert!(shown == 1 || shown == 2, "{results}");
}

/// Runs `command` from the repository root; returns its trimmed stdout,
/// panicking with both outputs unless it succeeds.
fn stdout_of(command: &mut Command) -> String {
    let run = command
        .current_dir(support::gate::crate_dir())
        .output()
        .expect("the command starts");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout.trim().to_string()
}

/// Runs `smsgate-bench step` with `args`; returns its stdout line.
fn step(args: &[&str]) -> String {
    stdout_of(
        Command::new(env!("CARGO_BIN_EXE_smsgate-bench"))
            .arg("step")
            .args(args),
    )
}

/// The figure after `prefix` and before the next space in `line`.
fn figure(line: &str, prefix: &str) -> f64 {
    let rest = &line[line
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {line}"))
        + prefix.len()..];
    rest.split(' ')
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("{prefix} in {line}: {e}"))
}

#[test]
fn the_step_alone_decides_every_event_and_the_rules_off_step_routes_less() {
    let full = step(&["--events", "400"]);
    assert!(full.starts_with("step: 400 events in "), "{full}");
    assert!(full.contains(" µs per event ("), "{full}");
    let off = step(&["--events", "400", "--rules-off"]);
    assert!(off.starts_with("step: 400 events in "), "{off}");
    // Same input; only the full policy quarantines, and a quarantine
    // record is larger than its input.
    let (routed_full, routed_off) = (figure(&full, "), "), figure(&off, "), "));
    assert!(
        routed_off > 0.0 && routed_full > routed_off,
        "{full}\n{off}"
    );
}

#[test]
fn bench_instructions_counts_the_step_under_callgrind() {
    let line = stdout_of(Command::new("scripts/bench-instructions").args([
        "--events",
        "200",
        "--bin",
        env!("CARGO_BIN_EXE_smsgate-bench"),
    ]));
    let line = line.as_str();
    assert!(line.starts_with("instructions_per_event="), "{line}");
    let per_event = figure(line, "instructions_per_event=");
    let total = figure(line, "instructions=");
    assert_eq!(figure(line, "events="), 200.0, "{line}");
    assert!(per_event > 1_000.0, "{line}");
    assert_eq!(per_event, (total / 200.0).floor(), "{line}");
}
