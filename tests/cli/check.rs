//! `smsgate check`, `check --explain` and `policy lint`, run as the built
//! binary (CONTRACT §8).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/check").join(name)
}

fn smsgate(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn check_fixture(extra: &[&str]) -> Output {
    let consent = fixture("consent.ndjson");
    let senders = root().join("config/senders.example.toml");
    let mut args = vec![
        "check",
        "--now",
        "2026-11-28T02:00:00Z",
        "--senders",
        senders.to_str().unwrap(),
        "--consent",
        consent.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    smsgate(&args, &std::fs::read(fixture("events.ndjson")).unwrap())
}

#[test]
fn check_fixture_matches_expected_decisions() {
    let out = check_fixture(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<Value> = std::fs::read_to_string(fixture("expected.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "one decision per non-blank line, in order"
    );
    for (g, e) in got.iter().zip(&expected) {
        let codes: Vec<&Value> = g["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["code"])
            .collect();
        let expected_codes: Vec<&Value> = e["codes"].as_array().unwrap().iter().collect();
        assert_eq!(g["message_id"], e["message_id"]);
        assert_eq!(g["outcome"], e["outcome"], "{}", g["message_id"]);
        assert_eq!(codes, expected_codes, "{}", g["message_id"]);
        assert_eq!(g["release_at"], e["release_at"], "{}", g["message_id"]);
        assert_eq!(g["decided_at"], "2026-11-28T02:00:00Z");
        assert!(g["policy_version"].as_str().unwrap().starts_with("sha256:"));
        for r in g["reasons"].as_array().unwrap() {
            assert!(
                !r["rule"].as_str().unwrap().is_empty()
                    && !r["citation"].as_str().unwrap().is_empty()
            );
            let detail = r["detail"].as_str().unwrap();
            assert!(
                !detail.contains("13812345678"),
                "no full phone number in {detail}"
            );
        }
    }
}

#[test]
fn explain_prints_rule_code_citation_and_match() {
    let out = check_fixture(&["--explain"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("cn-mall-loan: REJECT"), "{text}");
    assert!(text.contains("cn.lending.claims") && text.contains("content.prohibited_claim"));
    assert!(text.contains("PBOC 公告〔2021〕第3号"));
    assert!(text.contains("\"秒批\""), "the matched text is shown");
    assert!(text.contains("us-night: DEFER until 2026-11-28T13:00:00Z"));
}

#[test]
fn bad_flags_and_configs_fail_with_one_line() {
    for args in [
        vec!["check", "--now", "yesterday"],
        vec!["check", "--config", "/nonexistent.toml"],
        vec!["check", "--senders", "/nonexistent-senders.toml"],
        vec!["check", "--consent", "/nonexistent-consent.ndjson"],
    ] {
        let out = smsgate(&args, b"");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.trim().is_empty(), "{args:?}");
        if args[1] != "--now" {
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    // Malformed input lines are decisions, not failures.
    let out = smsgate(&["check", "--now", "2026-11-28T02:00:00Z"], b"\n{\n\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);
}

#[test]
fn packs_directory_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let packs = dir.path().join("policies");
    std::fs::create_dir(&packs).unwrap();
    for f in ["cn.toml", "us.toml", "default.toml"] {
        let text = std::fs::read_to_string(root().join("config/policies").join(f)).unwrap();
        std::fs::write(
            packs.join(f),
            text.replace(
                "id = \"cn.lending.claims\"",
                "id = \"cn.lending.claims\"\nenabled = false",
            ),
        )
        .unwrap();
    }
    let config = dir.path().join("smsgate.toml");
    std::fs::write(
        &config,
        format!(
            "[policy]\nsenders = {:?}\npacks = {:?}\n",
            root().join("config/senders.example.toml"),
            packs
        ),
    )
    .unwrap();
    let out = check_fixture(&["--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let loan = text
        .lines()
        .find(|l| l.contains("\"cn-mall-loan\""))
        .unwrap();
    assert!(
        !loan.contains("content.prohibited_claim"),
        "switched-off rule does not fire"
    );
    assert!(loan.contains("content.loan_unlicensed"));
}

#[test]
fn lint_summarizes_or_names_errors() {
    let out = smsgate(&["policy", "lint"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "pack cn",
        "pack us",
        "pack default",
        "us.quiet_hours.tx",
        "content.shaft",
        "sha256:",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[pack]\nname = \"x\"\n[[rule]]\nid = \"x.q\"\nkind = \"quiet_hours\"\ncode = \"quiet_hours\"\ncitation = \"c\"\nallowed = \"22:00-07:00\"\nzones = [\"UTC\"]\n",
    )
    .unwrap();
    let good = root().join("config/policies/us.toml");
    let out = smsgate(
        &[
            "policy",
            "lint",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bad.toml") && err.contains("x.q") && err.contains("invalid time window"),
        "{err}"
    );
    let out = smsgate(&["policy", "lint", good.to_str().unwrap()], b"");
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains("pack us"));
}

/// Writes a one-case casebook directory (the corpus's sender registry, one
/// case file) and returns it.
fn casebook_dir(name: &str, case_file: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smsgate-casebook-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root().join("tests/corpus/senders.toml"),
        dir.join("senders.toml"),
    )
    .unwrap();
    std::fs::write(dir.join("cases.toml"), case_file).unwrap();
    dir
}

const APR_CASE: &str = r#"
[defaults]
now = "2026-12-01T03:00:00Z"
opted_in = true
[[case]]
name = "loan-without-apr"
basis = "POLICY.md Content: a credit offer naming a cost without an annualized rate"
event = { to = "+8613812345678", sender = "xinyi-loans", category = "marketing", body = "【信易贷】备用金日息0.05%，回T退订" }
"#;

#[test]
fn policy_test_runs_a_casebook_and_exits_by_outcome() {
    let corpus = root().join("tests/corpus");
    let out = smsgate(&["policy", "test", corpus.to_str().unwrap()], b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(" 0 fail,"), "{stdout}");
    assert!(stdout.contains("(all codes)"), "per-code table: {stdout}");

    let pass = casebook_dir(
        "pass",
        &format!(
            "{APR_CASE}expect = {{ outcome = \"reject\", codes = [\"content.apr_missing\"] }}\n"
        ),
    );
    let out = smsgate(&["policy", "test", pass.to_str().unwrap()], b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let fail = casebook_dir(
        "fail",
        &format!("{APR_CASE}expect = {{ outcome = \"approve\" }}\n"),
    );
    let out = smsgate(&["policy", "test", fail.to_str().unwrap()], b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("loan-without-apr"),
        "names the failing case: {stdout}"
    );

    let invalid = casebook_dir("invalid", "[[case]]\nname = \"no-basis\"\n");
    let out = smsgate(&["policy", "test", invalid.to_str().unwrap()], b"");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for d in [pass, fail, invalid] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The first event of the check fixture, as one line.
fn fixture_event() -> String {
    std::fs::read_to_string(fixture("events.ndjson"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

fn decisions(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_input_line_gets_a_decision_line() {
    let event = fixture_event();
    let input = format!("{event}\n\n   \r\n{{\"to\":1}}\n");
    let out = smsgate(
        &["check", "--now", "2026-11-28T02:00:00Z"],
        input.as_bytes(),
    );
    assert!(out.status.success());
    let got = decisions(&out.stdout);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[1]["reasons"][0]["code"], "malformed");
    assert_eq!(
        got[1]["reasons"][0]["detail"],
        "line 2: blank, not an event"
    );
    assert_eq!(
        got[2]["reasons"][0]["detail"],
        "line 3: blank, not an event"
    );
    assert_eq!(got[3]["reasons"][0]["code"], "malformed");
}

/// Runs `check` with what `write` feeds it; returns its decisions and its
/// own peak resident set in MiB (from wait4).
#[allow(clippy::zombie_processes)] // reaped by wait4, which std cannot see
fn check_with_peak(
    write: impl FnOnce(&mut std::process::ChildStdin) + Send + 'static,
) -> (Vec<Value>, i64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["check", "--now", "2026-11-28T02:00:00Z"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || write(&mut stdin));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).unwrap();
        out
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    writer.join().unwrap();
    (decisions(&reader.join().unwrap()), usage.ru_maxrss / 1024)
}

/// A 100 MiB line is one `malformed` decision, read without holding it:
/// the process grows far less than the line's size over a one-event run.
#[test]
fn an_oversized_line_is_malformed_and_never_held_whole() {
    const LINE: usize = 100 * 1024 * 1024;
    let event = fixture_event();
    let one = event.clone();
    let (_, baseline) = check_with_peak(move |stdin| writeln!(stdin, "{one}").unwrap());
    let (got, peak) = check_with_peak(move |stdin| {
        let block = vec![b'x'; 1024 * 1024];
        for _ in 0..LINE / block.len() {
            stdin.write_all(&block).unwrap();
        }
        writeln!(stdin).unwrap();
        writeln!(stdin, "{event}").unwrap();
    });
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0]["reasons"][0]["detail"],
        format!("line 1: {LINE} bytes, over the 65536 byte limit")
    );
    assert_ne!(got[1]["outcome"], Value::Null);
    assert!(
        peak < baseline + 16,
        "peak RSS {peak} MiB for a 100 MiB line, {baseline} MiB for one event"
    );
}
