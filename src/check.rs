//! `smsgate check` (CONTRACT §8): NDJSON events in, NDJSON decisions out,
//! through the same `Policy::decide` the gate runs.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};

use crate::consent::ConsentEvent;
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
    let mut n = 0;
    for line in input.split(b'\n') {
        let mut line = line?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = now.unwrap_or_else(Utc::now);
        let (event, decision) = policy.decide_bytes(&line, Origin::Intake, state, at);
        if let Some(event) = &event {
            state.record(event, &decision, at);
        }
        writeln!(output, "{}", decision.to_json())?;
        n += 1;
    }
    output.flush()?;
    Ok(n)
}
