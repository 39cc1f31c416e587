//! Scoring: each case against its expectation, and per reason code the
//! true positives, false positives and false negatives across all cases.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};

use super::{Case, Run};
use crate::contract::decision::Decision;

/// How a case came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Outcome and code set as expected.
    Pass,
    /// Not as expected, and not marked `known_gap`.
    Fail,
    /// Not as expected, marked `known_gap`: the engine still misses it.
    KnownGap,
    /// Marked `known_gap` but now as expected: remove the marker.
    GapClosed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::KnownGap => "GAP",
            Status::GapClosed => "FIXED",
        }
    }
}

/// One case's expectation and what the engine decided.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: String,
    pub group: Option<String>,
    pub name: String,
    pub basis: String,
    pub known_gap: Option<String>,
    pub expect_outcome: String,
    pub got_outcome: String,
    pub expect_codes: BTreeSet<String>,
    pub got_codes: BTreeSet<String>,
    pub expect_release_at: Option<DateTime<Utc>>,
    pub got_release_at: Option<DateTime<Utc>>,
    pub status: Status,
}

impl CaseResult {
    pub(super) fn new(run: &Run, case: &Case, d: &Decision) -> CaseResult {
        // Codes the case allows but does not require are not scored.
        let got_codes: BTreeSet<String> = d
            .reasons
            .iter()
            .map(|r| r.code.as_str().to_string())
            .filter(|c| !case.expect_maybe.contains(c))
            .collect();
        let got_outcome = d.outcome.as_str().to_string();
        let matches = got_outcome == case.expect_outcome
            && got_codes == case.expect_codes
            && case
                .expect_release_at
                .is_none_or(|t| d.release_at == Some(t));
        let status = match (matches, case.known_gap.is_some()) {
            (true, false) => Status::Pass,
            (false, false) => Status::Fail,
            (false, true) => Status::KnownGap,
            (true, true) => Status::GapClosed,
        };
        CaseResult {
            file: run.file.clone(),
            group: run.group.clone(),
            name: case.name.clone(),
            basis: case.basis.clone(),
            known_gap: case.known_gap.clone(),
            expect_outcome: case.expect_outcome.clone(),
            got_outcome,
            expect_codes: case.expect_codes.clone(),
            got_codes,
            expect_release_at: case.expect_release_at,
            got_release_at: d.release_at,
            status,
        }
    }

    /// Whether the engine decided as expected (whatever the marker says).
    pub fn matches(&self) -> bool {
        matches!(self.status, Status::Pass | Status::GapClosed)
    }

    /// Codes expected but not given.
    pub fn missing(&self) -> Vec<&str> {
        self.expect_codes
            .difference(&self.got_codes)
            .map(String::as_str)
            .collect()
    }

    /// Codes given but not expected.
    pub fn extra(&self) -> Vec<&str> {
        self.got_codes
            .difference(&self.expect_codes)
            .map(String::as_str)
            .collect()
    }

    /// `expected … got …` in one line, for failures.
    pub fn diff(&self) -> String {
        let set = |s: &BTreeSet<String>| {
            let v: Vec<&str> = s.iter().map(String::as_str).collect();
            format!("[{}]", v.join(", "))
        };
        let mut s = format!(
            "expected {} {} got {} {}",
            self.expect_outcome,
            set(&self.expect_codes),
            self.got_outcome,
            set(&self.got_codes)
        );
        let (missing, extra) = (self.missing(), self.extra());
        if !missing.is_empty() {
            s.push_str(&format!("; missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            s.push_str(&format!("; extra {}", extra.join(", ")));
        }
        if let Some(t) = self.expect_release_at
            && self.got_release_at != Some(t)
        {
            s.push_str(&format!(
                "; release_at expected {} got {}",
                crate::contract::decision::format_time(&t),
                self.got_release_at
                    .map(|t| crate::contract::decision::format_time(&t))
                    .unwrap_or_else(|| "null".into())
            ));
        }
        s
    }
}

/// Counts for one reason code across all cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeStats {
    /// Expected and given.
    pub tp: u32,
    /// Given, not expected.
    pub fp: u32,
    /// Expected, not given.
    pub fn_: u32,
}

impl CodeStats {
    /// TP / (TP + FP); `None` when the code was never given.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// TP / (TP + FN); `None` when the code was never expected.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }
}

fn ratio(n: u32, d: u32) -> Option<f64> {
    (d > 0).then(|| f64::from(n) / f64::from(d))
}

/// Every case's result, totals and per-code statistics.
#[derive(Debug, Clone)]
pub struct Report {
    pub results: Vec<CaseResult>,
    /// By reason code, for every code expected or given at least once.
    pub codes: BTreeMap<String, CodeStats>,
}

impl Report {
    pub fn new(results: Vec<CaseResult>) -> Report {
        let mut codes: BTreeMap<String, CodeStats> = BTreeMap::new();
        for r in &results {
            for c in r.expect_codes.union(&r.got_codes) {
                let s = codes.entry(c.clone()).or_default();
                match (r.expect_codes.contains(c), r.got_codes.contains(c)) {
                    (true, true) => s.tp += 1,
                    (false, true) => s.fp += 1,
                    (true, false) => s.fn_ += 1,
                    (false, false) => {}
                }
            }
        }
        Report { results, codes }
    }

    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// No unexpected failure and no known gap that now passes.
    pub fn ok(&self) -> bool {
        self.count(Status::Fail) == 0 && self.count(Status::GapClosed) == 0
    }

    /// The per-code TP/FP/FN, precision and recall table.
    pub fn code_table(&self) -> String {
        let pct =
            |v: Option<f64>| v.map_or_else(|| "    -".into(), |v| format!("{:5.1}", v * 100.0));
        let w = self.codes.keys().map(String::len).max().unwrap_or(4).max(4);
        let mut s = format!(
            "{:w$}  {:>4} {:>4} {:>4}  {:>6} {:>6}\n",
            "code", "TP", "FP", "FN", "prec%", "rec%"
        );
        let mut all = CodeStats::default();
        for (code, c) in &self.codes {
            s.push_str(&format!(
                "{code:w$}  {:>4} {:>4} {:>4}  {:>6} {:>6}\n",
                c.tp,
                c.fp,
                c.fn_,
                pct(c.precision()),
                pct(c.recall())
            ));
            all.tp += c.tp;
            all.fp += c.fp;
            all.fn_ += c.fn_;
        }
        s.push_str(&format!(
            "{:w$}  {:>4} {:>4} {:>4}  {:>6} {:>6}\n",
            "(all codes)",
            all.tp,
            all.fp,
            all.fn_,
            pct(all.precision()),
            pct(all.recall())
        ));
        s
    }

    /// One line of totals.
    pub fn totals(&self) -> String {
        format!(
            "{} cases: {} pass, {} fail, {} known gaps still failing, {} known gaps now passing (remove the marker)",
            self.results.len(),
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::KnownGap),
            self.count(Status::GapClosed),
        )
    }
}

impl fmt::Display for Report {
    /// Failures and closed gaps with their diff, known gaps in one line
    /// each, then totals and the per-code table (passes are not listed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            let place = match &r.group {
                Some(g) => format!("{} [{g}]", r.file),
                None => r.file.clone(),
            };
            match r.status {
                Status::Pass => {}
                Status::Fail => writeln!(f, "FAIL  {} ({place}): {}", r.name, r.diff())?,
                Status::GapClosed => writeln!(
                    f,
                    "FIXED {} ({place}): marked known_gap but now passes; remove the marker",
                    r.name
                )?,
                Status::KnownGap => writeln!(f, "GAP   {} ({place}): {}", r.name, r.diff())?,
            }
        }
        writeln!(f, "{}", self.totals())?;
        write!(f, "{}", self.code_table())
    }
}
