//! The README's commands work exactly as written (issue 19): every
//! `smsgate` line of its ```sh blocks that needs no broker (`check`,
//! `check --explain`, `policy lint`, `policy test`) is run through the
//! built binary from the repository root, with `< FILE` as its stdin, and
//! must exit 0 and print something. `run`, `generate` and `healthcheck`
//! need a broker or a running gate and are only recognized; the demo line
//! (`cargo run --release -- demo`) is run with a small `--events`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Subcommands that need a Kafka broker or a running gate.
const NEEDS_A_BROKER: &[&str] = &["run", "generate", "healthcheck"];

/// The commands of the README's ```sh blocks, one per logical line:
/// continuation lines (`\` at the end) joined, `# comments` dropped.
fn sh_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        let trimmed = line.trim();
        if !in_sh {
            in_sh = trimmed == "```sh";
            continue;
        }
        if trimmed.starts_with("```") {
            assert!(
                pending.is_empty(),
                "README: a ```sh block ends inside a continued line"
            );
            in_sh = false;
            continue;
        }
        let code = strip_comment(trimmed);
        match code.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head.trim());
                pending.push(' ');
            }
            None => {
                pending.push_str(code);
                let command = pending.trim().to_string();
                pending.clear();
                if !command.is_empty() {
                    commands.push(command);
                }
            }
        }
    }
    assert!(!in_sh, "README: a ```sh block is not closed");
    commands
}

/// The line without a shell comment (` # …` or a line starting with `#`).
fn strip_comment(line: &str) -> &str {
    if line.starts_with('#') {
        return "";
    }
    match line.find(" #") {
        Some(i) => line[..i].trim_end(),
        None => line,
    }
}

/// The arguments of an `smsgate` command line of the README, and its
/// stdin file; `None` for a line that does not run `smsgate`.
fn smsgate_invocation(command: &str) -> Option<(Vec<String>, Option<String>)> {
    let rest = command
        .strip_prefix("target/release/smsgate ")
        .or_else(|| command.strip_prefix("smsgate "))?;
    for shell in ['|', '>', '$', '`', '"', '\'', ';', '&'] {
        assert!(
            !rest.contains(shell),
            "README command {command:?}: this test runs plain arguments and `< FILE` only"
        );
    }
    let mut args = Vec::new();
    let mut stdin = None;
    let mut words = rest.split_whitespace();
    while let Some(word) = words.next() {
        if word == "<" {
            let file = words
                .next()
                .unwrap_or_else(|| panic!("README command {command:?}: `<` without a file"));
            stdin = Some(file.to_string());
        } else {
            args.push(word.to_string());
        }
    }
    Some((args, stdin))
}

fn run_smsgate(args: &[String], stdin: Option<&str>) -> Output {
    let stdin = match stdin {
        Some(file) => Stdio::from(
            File::open(root().join(file)).unwrap_or_else(|e| panic!("stdin file {file}: {e}")),
        ),
        None => Stdio::null(),
    };
    Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(args)
        .current_dir(root())
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("smsgate starts")
}

#[test]
fn every_broker_free_smsgate_command_of_the_readme_works_as_written() {
    let mut ran: Vec<String> = Vec::new();
    for command in sh_commands() {
        let Some((args, stdin)) = smsgate_invocation(&command) else {
            continue;
        };
        let sub = args.first().map(String::as_str).unwrap_or_default();
        if NEEDS_A_BROKER.contains(&sub) {
            println!("not run (needs a broker): {command}");
            continue;
        }
        assert!(
            matches!(sub, "check" | "policy"),
            "README command {command:?}: unknown to this test; run it here or list it in NEEDS_A_BROKER"
        );
        println!("running: {command}");
        let out = run_smsgate(&args, stdin.as_deref());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "README command {command:?} exited {:?}:\n{stderr}",
            out.status.code()
        );
        assert!(
            !out.stdout.is_empty(),
            "README command {command:?} printed nothing:\n{stderr}"
        );
        ran.push(command);
    }
    // The README must keep showing these (issue 19).
    let shows = |what: &str, test: &dyn Fn(&str) -> bool| {
        assert!(
            ran.iter().any(|c| test(c)),
            "the README no longer shows {what} in a ```sh block (ran: {ran:#?})"
        );
    };
    shows("`check` with `--consent` and `< FILE`", &|c| {
        c.contains(" check ")
            && !c.contains("--explain")
            && c.contains("--consent ")
            && c.contains(" < ")
    });
    shows("`check --explain` with `--consent`", &|c| {
        c.contains(" check --explain ") && c.contains("--consent ") && c.contains(" < ")
    });
    shows("`policy lint`", &|c| c.contains(" policy lint"));
    shows("`policy test tests/corpus`", &|c| {
        c.contains(" policy test tests/corpus")
    });
}

/// `check --explain`'s first event is not a surprising reject: with the
/// README's `--consent`, the first table is an approval.
#[test]
fn the_readme_explain_example_starts_with_an_approval() {
    let command = sh_commands()
        .into_iter()
        .find(|c| c.contains(" check --explain "))
        .expect("README shows `check --explain`");
    let (args, stdin) = smsgate_invocation(&command).expect("an smsgate command");
    let out = run_smsgate(&args, stdin.as_deref());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout
        .lines()
        .find(|l| l.starts_with('#'))
        .unwrap_or_else(|| panic!("no event table in:\n{stdout}"));
    assert!(
        first.contains("APPROVE"),
        "first event of the README's --explain example: {first}"
    );
}

/// The demo line of "Two commands on a fresh clone", run through the built
/// binary with its own arguments plus a small, fast workload.
#[test]
fn the_readme_demo_command_runs() {
    let command = sh_commands()
        .into_iter()
        .find(|c| c.starts_with("cargo run --release -- demo"))
        .expect("README shows `cargo run --release -- demo`");
    let mut args: Vec<String> = command
        .trim_start_matches("cargo run --release -- ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    args.extend(["--events", "200", "--duration", "60", "--rate", "0"].map(String::from));
    let out = run_smsgate(&args, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{command:?} exited {:?}:\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("200 events decided"), "{stdout}");
}
