//! `smsgate check` (CONTRACT §8): NDJSON events in, NDJSON decisions out,
//! through the same `Policy::decide` the gate runs.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};

use crate::contract::consent::ConsentEvent;
use crate::contract::decision::Decision;
use crate::contract::event::{MAX_EVENT_BYTES, Malformed};
use crate::policy::{Origin, Policy};
use crate::state::MemoryState;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("consent file {path}: line {line}: {error}")]
    Consent {
        path: String,
        line: usize,
        error: String,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Loads consent NDJSON into the store (blank lines skipped).
pub fn preload_consent(
    state: &mut MemoryState,
    path: &std::path::Path,
) -> Result<usize, CheckError> {
    let text = std::fs::read_to_string(path).map_err(|e| CheckError::Consent {
        path: path.display().to_string(),
        line: 0,
        error: e.to_string(),
    })?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event = ConsentEvent::parse(line.as_bytes()).map_err(|e| CheckError::Consent {
            path: path.display().to_string(),
            line: i + 1,
            error: e.to_string(),
        })?;
        state.apply_consent(event);
        n += 1;
    }
    Ok(n)
}

/// Decides every line of `input` in order; caps and duplicates accumulate.
/// `now` fixes the clock; `None` reads the real clock per event.
pub fn run(
    policy: &Policy,
    state: &mut MemoryState,
    now: Option<DateTime<Utc>>,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<usize, CheckError> {
    let n = decide_lines(policy, state, now, input, |_, decision| {
        writeln!(output, "{}", decision.to_json())
    })?;
    output.flush()?;
    Ok(n)
}

/// Like [`run`], but writes the human-readable `--explain` table instead of
/// NDJSON when `explain` is set.
pub fn run_explained(
    policy: &Policy,
    state: &mut MemoryState,
    now: Option<DateTime<Utc>>,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<usize, CheckError> {
    let n = decide_lines(policy, state, now, input, |n, decision| {
        write!(output, "{}", explain(n, decision))
    })?;
    output.flush()?;
    Ok(n)
}

/// Decides and records every line of `input` in order (a trailing `\r`
/// dropped) and hands `emit` each decision with its 1-based line number;
/// returns how many lines were decided. Every line gets a decision: a blank
/// one or one over the event size limit is `malformed`, naming the line.
/// A line is never held beyond that limit, whatever its length.
fn decide_lines(
    policy: &Policy,
    state: &mut MemoryState,
    now: Option<DateTime<Utc>>,
    mut input: impl BufRead,
    mut emit: impl FnMut(usize, &Decision) -> std::io::Result<()>,
) -> Result<usize, CheckError> {
    let mut n = 0;
    let mut line = Vec::new();
    while let Some(len) = read_line_capped(&mut input, &mut line, MAX_EVENT_BYTES)? {
        n += 1;
        let at = now.unwrap_or_else(Utc::now);
        let unreadable = |detail: String| {
            let m = Malformed {
                message_id: None,
                detail,
            };
            policy.malformed(&m, at)
        };
        let decision = if len > MAX_EVENT_BYTES {
            unreadable(format!(
                "line {n}: {len} bytes, over the {MAX_EVENT_BYTES} byte limit"
            ))
        } else if line.iter().all(u8::is_ascii_whitespace) {
            unreadable(format!("line {n}: blank, not an event"))
        } else {
            let (event, decision) = policy.decide_bytes(&line, Origin::Intake, state, at);
            if let Some(event) = &event {
                state.record(event, &decision, at);
            }
            decision
        };
        emit(n, &decision)?;
    }
    Ok(n)
}

/// Reads one line into `buf` (without `\n` and a `\r` before it), keeping
/// at most `cap + 1` bytes of it; returns the line's full length, or `None`
/// at the end of the input.
fn read_line_capped(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut len = 0;
    let mut any = false;
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = (cap + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        len += chunk.len();
        input.consume(used);
        if done {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if len == buf.len() && buf.last() == Some(&b'\r') {
        buf.pop();
        len -= 1;
    }
    Ok(Some(len))
}

/// One event's decision as a readable table: every rule that fired, its
/// code, its citation and what it matched.
pub fn explain(line: usize, d: &Decision) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let id = d.message_id.as_deref().unwrap_or("(no message_id)");
    let _ = write!(s, "#{line} {id}: {}", d.outcome.as_str().to_uppercase());
    if let Some(r) = &d.release_at {
        let _ = write!(s, " until {}", crate::contract::decision::format_time(r));
    }
    let _ = writeln!(s);
    if d.reasons.is_empty() {
        let _ = writeln!(s, "  every rule passed");
    } else {
        let w_rule = d
            .reasons
            .iter()
            .map(|r| r.rule.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let w_code = d
            .reasons
            .iter()
            .map(|r| r.code.as_str().len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            s,
            "  {:w_rule$}  {:w_code$}  CITATION / MATCHED",
            "RULE", "CODE"
        );
        for r in &d.reasons {
            let _ = writeln!(
                s,
                "  {:w_rule$}  {:w_code$}  {}",
                r.rule,
                r.code.as_str(),
                r.citation
            );
            let _ = writeln!(s, "  {:w_rule$}  {:w_code$}  → {}", "", "", r.detail);
        }
    }
    let _ = writeln!(s);
    s
}

/// `smsgate check`: exit 0 whatever the outcomes, 2 for a bad config or
/// consent file, 1 when reading or writing fails.
pub fn command(
    config: Option<std::path::PathBuf>,
    senders: &[std::path::PathBuf],
    consent: &[std::path::PathBuf],
    now: Option<DateTime<Utc>>,
    explain: bool,
) -> std::process::ExitCode {
    use super::{EXIT_CONFIG, fail};
    let settings = match crate::config::Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    let policy = match Policy::load(&settings.policy_source(senders)) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    let mut state = MemoryState::new();
    for path in consent {
        if let Err(e) = preload_consent(&mut state, path) {
            return fail(EXIT_CONFIG, &e.to_string());
        }
    }
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let result = if explain {
        run_explained(&policy, &mut state, now, stdin, stdout)
    } else {
        run(&policy, &mut state, now, stdin, stdout)
    };
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}
