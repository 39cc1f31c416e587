//! Casebook: labelled policy cases kept as TOML files in a directory, run
//! through the real [`Policy::decide`] and scored per reason code. It is the
//! engine of `smsgate policy test DIR` (pack authors keep cases beside their
//! pack, as `opa test` does for Rego) and of the `tests/policy/corpus.rs`
//! ratchet over `tests/corpus/`. The format is described in
//! `tests/corpus/README.md`; in short, every `*.toml` of the directory except
//! `senders.toml` (the sender registry, CONTRACT §5) and `casebook.toml`
//! (optional: `packs = "dir"`, relative to the directory) holds `[defaults]`,
//! `[[case]]` and `[[group]]` tables. Each case is decided on fresh state (an
//! empty [`MemoryState`] plus its consent); the cases of one `[[group]]`
//! share one state in order, every decision recorded as `check` does, for
//! frequency caps and duplicates.
//!
//! [`test_dir`] returns the printable report and the exit code:
//! [`EXIT_PASS`] (0) when every case passes or is a `known_gap` that still
//! fails, [`EXIT_FAIL`] (1) when a case fails or a `known_gap` case now passes
//! (remove its marker), [`EXIT_INVALID`] (2) when a case file, the registry
//! or the packs cannot be read or are invalid (one line naming the file and
//! the case). The directory's `senders.toml` is merged over the configured
//! registry, and its `casebook.toml` `packs` overrides the configured packs.

mod report;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::contract::consent::ConsentEvent;
use crate::contract::decision::Decision;
use crate::policy::{Origin, Policy, PolicyError, PolicySource, Registry};
use crate::state::MemoryState;

pub use report::{CaseResult, CodeStats, Report, Status};

/// Every case passed, or is a known gap that still fails.
pub const EXIT_PASS: u8 = 0;
/// A case failed, or a case marked `known_gap` now passes.
pub const EXIT_FAIL: u8 = 1;
/// A case file, the registry or the packs could not be read or are invalid.
pub const EXIT_INVALID: u8 = 2;

/// The reason codes of CONTRACT §7, as expectations may name them (a
/// superset of what the engine emits today).
pub const CONTRACT_CODES: &[&str] = &[
    "malformed",
    "sender.unknown",
    "duplicate",
    "consent.missing",
    "consent.revoked",
    "consent.expired",
    "targeting.personalization_refused",
    "audience.minor",
    "audience.student",
    "quiet_hours",
    "frequency_cap",
    "content.signature_missing",
    "content.signature_mismatch",
    "content.optout_missing",
    "content.url_not_allowed",
    "content.url_shortener",
    "content.url_lookalike",
    "content.phone_not_allowed",
    "content.prohibited_claim",
    "content.apr_missing",
    "content.loan_unlicensed",
    "content.impersonation",
    "content.pii",
    "content.category_mismatch",
    "content.shaft",
    "feedback.breaker_open",
    "content.too_long",
];

/// Why a casebook could not be loaded. Every variant names the file, and
/// the case where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CasebookError {
    #[error("{path}: cannot read: {error}")]
    Read { path: String, error: String },
    #[error("{file}: line {line}: {problem}")]
    Syntax {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("{file}: case {case:?}: {problem}")]
    Case {
        file: String,
        case: String,
        problem: String,
    },
    #[error("{file}: case name {case:?} is already used in {first}")]
    DuplicateName {
        file: String,
        case: String,
        first: String,
    },
    #[error("{0}")]
    Policy(#[from] PolicyError),
}

/// A loaded directory of cases, in file-name order.
#[derive(Debug, Clone, Default)]
pub struct Casebook {
    /// Registry files of the directory (`senders.toml` when present).
    pub senders: Vec<PathBuf>,
    /// Pack directory named by `casebook.toml`, if any.
    pub packs: Option<PathBuf>,
    /// Runs of cases: a lone `[[case]]` is a run of one; a `[[group]]` is
    /// one run sharing state.
    pub runs: Vec<Run>,
}

/// Cases decided in order over one fresh state.
#[derive(Debug, Clone)]
pub struct Run {
    pub file: String,
    /// The group name, `None` for a lone case.
    pub group: Option<String>,
    pub cases: Vec<Case>,
}

/// One labelled case, resolved against its file's and group's defaults.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub basis: String,
    pub now: DateTime<Utc>,
    /// The record value handed to the policy (JSON, or `raw` verbatim).
    pub input: Vec<u8>,
    /// `(to, sender)` to preload a marketing opt-in for, when `opted_in`.
    pub opt_in_for: Option<(String, String)>,
    pub consent: Vec<ConsentEvent>,
    pub expect_outcome: String,
    pub expect_codes: BTreeSet<String>,
    /// Codes that may be given or not (`expect.maybe`).
    pub expect_maybe: BTreeSet<String>,
    pub expect_release_at: Option<DateTime<Utc>>,
    pub known_gap: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    case: Vec<CaseToml>,
    #[serde(default)]
    group: Vec<GroupToml>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Defaults {
    now: Option<toml::Value>,
    opted_in: Option<bool>,
    /// Event fields every case of the file starts from.
    event: Option<toml::Table>,
    #[serde(default)]
    consent: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupToml {
    name: String,
    #[serde(default)]
    basis: Option<String>,
    now: Option<toml::Value>,
    opted_in: Option<bool>,
    event: Option<toml::Table>,
    #[serde(default)]
    consent: Vec<toml::Table>,
    #[serde(default)]
    case: Vec<CaseToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseToml {
    name: String,
    basis: Option<String>,
    now: Option<toml::Value>,
    opted_in: Option<bool>,
    event: Option<toml::Table>,
    raw: Option<String>,
    #[serde(default)]
    consent: Vec<toml::Table>,
    expect: ExpectToml,
    known_gap: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectToml {
    outcome: String,
    #[serde(default)]
    codes: Vec<String>,
    /// Codes the contract allows but does not require (`quiet_hours` on a
    /// rejected event, CONTRACT §10): neither required nor counted.
    #[serde(default)]
    maybe: Vec<String>,
    release_at: Option<toml::Value>,
}

/// Optional `casebook.toml` of a directory.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SuiteToml {
    packs: Option<PathBuf>,
}

const REGISTRY_FILE: &str = "senders.toml";
const SUITE_FILE: &str = "casebook.toml";

/// Loads every case file of `dir` (see the module doc).
pub fn load_dir(dir: &Path) -> Result<Casebook, CasebookError> {
    let read_err = |p: &Path, e: std::io::Error| CasebookError::Read {
        path: p.display().to_string(),
        error: e.to_string(),
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let path = entry.map_err(|e| read_err(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            names.push(path);
        }
    }
    names.sort();
    let mut files = Vec::new();
    let mut book = Casebook::default();
    for path in names {
        let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
        match path.file_name().and_then(|n| n.to_str()) {
            Some(REGISTRY_FILE) => book.senders.push(path),
            Some(SUITE_FILE) => {
                let suite: SuiteToml = toml::from_str(&text)
                    .map_err(|e| syntax(&path.display().to_string(), &text, &e))?;
                book.packs = suite.packs.map(|p| dir.join(p));
            }
            _ => files.push((path.display().to_string(), text)),
        }
    }
    book.runs = parse_files(&files)?;
    Ok(book)
}

/// Parses case files given as (file name, text); case names must be unique
/// across all of them.
pub fn parse_files(files: &[(String, String)]) -> Result<Vec<Run>, CasebookError> {
    let mut runs = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (file, text) in files {
        let parsed: FileToml = toml::from_str(text).map_err(|e| syntax(file, text, &e))?;
        let d = &parsed.defaults;
        let mut claim = |name: &str| match seen.get(name) {
            Some(first) => Err(CasebookError::DuplicateName {
                file: file.clone(),
                case: name.to_string(),
                first: first.clone(),
            }),
            None => {
                seen.insert(name.to_string(), file.clone());
                Ok(())
            }
        };
        for c in &parsed.case {
            claim(&c.name)?;
            let case = resolve(file, d, None, c)?;
            runs.push(Run {
                file: file.clone(),
                group: None,
                cases: vec![case],
            });
        }
        for g in &parsed.group {
            claim(&g.name)?;
            if g.case.is_empty() {
                return Err(case_err(file, &g.name, "group has no [[group.case]]"));
            }
            let layered = Defaults {
                now: g.now.clone().or_else(|| d.now.clone()),
                opted_in: g.opted_in.or(d.opted_in),
                event: Some(merge(d.event.as_ref(), g.event.as_ref())),
                consent: d.consent.iter().chain(&g.consent).cloned().collect(),
            };
            let mut cases = Vec::new();
            for c in &g.case {
                claim(&c.name)?;
                let mut case = resolve(file, &layered, g.basis.as_deref(), c)?;
                // Group-level consent is applied once, with the first case.
                if !cases.is_empty() {
                    case.consent.drain(..layered.consent.len());
                }
                cases.push(case);
            }
            runs.push(Run {
                file: file.clone(),
                group: Some(g.name.clone()),
                cases,
            });
        }
    }
    Ok(runs)
}

fn syntax(file: &str, text: &str, e: &toml::de::Error) -> CasebookError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .unwrap_or(0);
    CasebookError::Syntax {
        file: file.to_string(),
        line,
        problem: e.message().to_string(),
    }
}

fn case_err(file: &str, case: &str, problem: impl Into<String>) -> CasebookError {
    CasebookError::Case {
        file: file.to_string(),
        case: case.to_string(),
        problem: problem.into(),
    }
}

fn merge(base: Option<&toml::Table>, top: Option<&toml::Table>) -> toml::Table {
    let mut t = base.cloned().unwrap_or_default();
    if let Some(top) = top {
        t.extend(top.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    t
}

/// A TOML value as JSON; datetimes become their RFC 3339 text.
fn to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => Value::Object(table_json(t)),
    }
}

fn table_json(t: &toml::Table) -> Map<String, Value> {
    t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

fn time(v: &toml::Value) -> Result<DateTime<Utc>, String> {
    let s = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => return Err(format!("not a time: {other}")),
    };
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

fn resolve(
    file: &str,
    d: &Defaults,
    group_basis: Option<&str>,
    c: &CaseToml,
) -> Result<Case, CasebookError> {
    let bad = |p: String| case_err(file, &c.name, p);
    let now_v = c
        .now
        .as_ref()
        .or(d.now.as_ref())
        .ok_or_else(|| bad("no `now` (set it in [defaults] or on the case)".into()))?;
    let now = time(now_v).map_err(|e| bad(format!("now: {e}")))?;
    let basis = c
        .basis
        .clone()
        .or_else(|| group_basis.map(str::to_string))
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| bad("no `basis` (the POLICY.md/CONTRACT.md line it rests on)".into()))?;
    let (input, opt_in_for) = match (&c.raw, &c.event) {
        (Some(_), Some(_)) => return Err(bad("give `event` or `raw`, not both".into())),
        (Some(raw), None) => (raw.clone().into_bytes(), None),
        (None, event) => {
            let mut ev = table_json(&merge(d.event.as_ref(), event.as_ref()));
            ev.entry("message_id")
                .or_insert_with(|| Value::String(c.name.clone()));
            ev.entry("created_at")
                .or_insert_with(|| Value::String(crate::contract::decision::format_time(&now)));
            let pair = match (ev.get("to"), ev.get("sender")) {
                (Some(Value::String(to)), Some(Value::String(s))) => Some((to.clone(), s.clone())),
                _ => None,
            };
            let opted = c.opted_in.or(d.opted_in).unwrap_or(false);
            let bytes = serde_json::to_vec(&Value::Object(ev)).map_err(|e| bad(e.to_string()))?;
            (bytes, pair.filter(|_| opted))
        }
    };
    let consent = d
        .consent
        .iter()
        .chain(&c.consent)
        .map(|t| {
            let json = Value::Object(table_json(t)).to_string();
            ConsentEvent::parse(json.as_bytes()).map_err(|e| bad(format!("consent: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if crate::contract::decision::Outcome::parse(&c.expect.outcome).is_none() {
        return Err(bad(format!(
            "expect.outcome {:?} is not approve, reject or defer",
            c.expect.outcome
        )));
    }
    let mut codes = BTreeSet::new();
    let mut maybe = BTreeSet::new();
    for (field, list, set) in [
        ("codes", &c.expect.codes, &mut codes),
        ("maybe", &c.expect.maybe, &mut maybe),
    ] {
        for code in list {
            if !CONTRACT_CODES.contains(&code.as_str()) {
                return Err(bad(format!(
                    "expect.{field}: {code:?} is not a CONTRACT §7 code"
                )));
            }
            if !set.insert(code.clone()) {
                return Err(bad(format!("expect.{field}: {code:?} listed twice")));
            }
        }
    }
    if let Some(code) = codes.intersection(&maybe).next() {
        return Err(bad(format!("expect: {code:?} is in both codes and maybe")));
    }
    if (c.expect.outcome == "approve") != codes.is_empty() {
        return Err(bad(
            "expect: approve needs no codes, reject/defer at least one".into(),
        ));
    }
    let expect_release_at = match &c.expect.release_at {
        Some(v) => Some(time(v).map_err(|e| bad(format!("expect.release_at: {e}")))?),
        None => None,
    };
    Ok(Case {
        name: c.name.clone(),
        basis,
        now,
        input,
        opt_in_for,
        consent,
        expect_outcome: c.expect.outcome.clone(),
        expect_codes: codes,
        expect_maybe: maybe,
        expect_release_at,
        known_gap: c.known_gap.clone().filter(|g| !g.trim().is_empty()),
    })
}

impl Casebook {
    /// The policy these cases run against: `base` (the configured packs and
    /// registry), the directory's `senders.toml` merged over the registry,
    /// and its `casebook.toml` packs in place of the configured ones.
    pub fn policy(&self, base: &PolicySource) -> Result<Policy, CasebookError> {
        let mut source = base.clone();
        source.senders.extend(self.senders.iter().cloned());
        if self.packs.is_some() {
            source.packs = self.packs.clone();
        }
        Ok(Policy::load(&source)?)
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.cases.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides every case and scores it.
    pub fn run(&self, policy: &Policy) -> Report {
        let mut results = Vec::with_capacity(self.len());
        for run in &self.runs {
            let mut state = MemoryState::new();
            let mut preloaded = HashSet::new();
            for case in &run.cases {
                let decision = decide(policy, &mut state, &mut preloaded, case);
                results.push(CaseResult::new(run, case, &decision));
            }
        }
        Report::new(results)
    }
}

/// Opt-ins preloaded for `opted_in` are this long before the decision time.
const PRELOAD_AGE_DAYS: i64 = 30;

fn decide(
    policy: &Policy,
    state: &mut MemoryState,
    preloaded: &mut HashSet<(String, String)>,
    case: &Case,
) -> Decision {
    if let Some((to, sender)) = &case.opt_in_for
        && preloaded.insert((to.clone(), sender.clone()))
        && let Ok(ev) = ConsentEvent::parse(
            serde_json::json!({
                "to": to, "action": "opt_in", "scope": "marketing", "sender": sender,
                "at": crate::contract::decision::format_time(&(case.now - Duration::days(PRELOAD_AGE_DAYS))),
                "source": "casebook:opted_in", "evidence_id": "casebook-preload",
            })
            .to_string()
            .as_bytes(),
        )
    {
        // A `to` that is not E.164 gets no opt-in: the event is malformed.
        state.apply_consent(ev);
    }
    for ev in &case.consent {
        state.apply_consent(ev.clone());
    }
    let (event, decision) = policy.decide_bytes(&case.input, Origin::Intake, state, case.now);
    if let Some(event) = &event {
        state.record(event, &decision, case.now);
    }
    decision
}

/// Loads `dir`, builds its policy over `base` and runs every case: the
/// report as text and the exit code (see the module doc).
pub fn test_dir(dir: &Path, base: &PolicySource) -> (String, u8) {
    match load_and_run(dir, base) {
        Ok(report) => {
            let code = if report.ok() { EXIT_PASS } else { EXIT_FAIL };
            (report.to_string(), code)
        }
        Err(e) => (format!("error: {e}\n"), EXIT_INVALID),
    }
}

/// Loads `dir`, builds its policy over `base` and runs every case.
pub fn load_and_run(dir: &Path, base: &PolicySource) -> Result<Report, CasebookError> {
    let book = load_dir(dir)?;
    let policy = book.policy(base)?;
    Ok(book.run(&policy))
}

/// A registry from TOML text (tests and callers that build suites in memory).
pub fn registry_from_str(text: &str) -> Result<Registry, CasebookError> {
    Registry::parse(text).map_err(|problem| CasebookError::Syntax {
        file: REGISTRY_FILE.into(),
        line: 0,
        problem,
    })
}

#[cfg(test)]
mod tests;
