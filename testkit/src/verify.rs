//! Checks the gate's outputs against the inputs and their expected outcomes
//! (CONTRACT §6): one decision per input offset, approved bytes and keys
//! unchanged with the three headers, quarantine records with the right codes
//! and source; approved marketing per (recipient, subject) against the
//! frequency cap ([`Approvals`]). Collects every failure instead of stopping
//! at the first.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::events::{Case, EventForm, Expect};
use crate::kafka::{Collector, Output, Position, Route};

/// Whether an input may be decided more than once (after a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Exactly one decision per input.
    ExactlyOnce,
    /// At least one; a replayed decision of an approved event may be a
    /// `duplicate` rejection (when the dedup state survived the restart).
    AtLeastOnce,
}

/// The outcome of [`verify`]: failures and figures.
#[derive(Debug, Default)]
pub struct Verdict {
    pub failures: Vec<String>,
    /// Output records that name an input.
    pub decisions: usize,
    /// Inputs with at least one decision.
    pub decided: usize,
    /// Decisions beyond the first per input.
    pub duplicates: usize,
    /// Inputs decided more than once.
    pub inputs_redecided: usize,
    /// Replays of approved events quarantined as `duplicate`.
    pub replayed_as_duplicate: usize,
    /// (kind, route) → output records.
    pub by_kind: BTreeMap<(String, &'static str), usize>,
}

impl Verdict {
    /// Panics listing the first failures, if any.
    pub fn assert_ok(&self) {
        if !self.failures.is_empty() {
            let shown: Vec<&str> = self.failures.iter().take(25).map(String::as_str).collect();
            panic!(
                "{} failures (first {}):\n  {}",
                self.failures.len(),
                shown.len(),
                shown.join("\n  ")
            );
        }
    }

    /// Prints the figures.
    pub fn print(&self, label: &str) {
        eprintln!(
            "[{label}] decisions {} for {} inputs decided; duplicates {} (inputs decided more than once {}; replays quarantined as duplicate {})",
            self.decisions,
            self.decided,
            self.duplicates,
            self.inputs_redecided,
            self.replayed_as_duplicate
        );
        for ((kind, route), n) in &self.by_kind {
            eprintln!("[{label}]   {kind:<36} → {route:<10} {n}");
        }
    }
}

fn route_name(r: Route) -> &'static str {
    match r {
        Route::Approved => "approved",
        Route::Quarantine => "quarantine",
        Route::Deferred => "deferred",
    }
}

/// Waits up to `timeout` until every input in `positions` is decided (then
/// 3 s more for late duplicates), verifies everything `collector` has seen
/// against `inputs` and prints the figures under `label`. Returns how long
/// the wait took (`None`: inputs still undecided) and the verdict.
pub fn wait_and_verify(
    collector: &Collector,
    topic: &str,
    positions: &[Position],
    inputs: &HashMap<Position, Case>,
    delivery: Delivery,
    timeout: Duration,
    label: &str,
) -> (Option<Duration>, Verdict) {
    let took = collector.wait_for(positions, timeout, Duration::from_secs(3));
    let verdict = verify(topic, inputs, &collector.outputs(), delivery);
    verdict.print(label);
    (took, verdict)
}

/// Verifies `outputs` against `inputs` (position → case) read from `topic`.
pub fn verify(
    topic: &str,
    inputs: &HashMap<Position, Case>,
    outputs: &[Output],
    delivery: Delivery,
) -> Verdict {
    let mut v = Verdict::default();
    let mut per_input: HashMap<Position, Vec<&Output>> = HashMap::new();
    for out in outputs {
        let Some(src) = &out.source else {
            v.failures.push(format!(
                "{} record at {:?} has no readable source",
                route_name(out.route),
                out.position
            ));
            continue;
        };
        if src.topic != topic {
            v.failures.push(format!(
                "output at {:?} names source topic {}",
                out.position, src.topic
            ));
            continue;
        }
        let pos = (src.partition, src.offset);
        let Some(case) = inputs.get(&pos) else {
            v.failures.push(format!(
                "output at {:?} names unknown input {pos:?}",
                out.position
            ));
            continue;
        };
        v.decisions += 1;
        *v.by_kind
            .entry((case.kind.to_string(), route_name(out.route)))
            .or_default() += 1;
        per_input.entry(pos).or_default().push(out);
        check_one(topic, pos, case, out, delivery, &mut v);
    }
    let mut missing = Vec::new();
    for (pos, case) in inputs {
        let outs = per_input.get(pos).map(Vec::as_slice).unwrap_or_default();
        if outs.is_empty() {
            missing.push(*pos);
            continue;
        }
        v.decided += 1;
        v.duplicates += outs.len() - 1;
        if outs.len() > 1 {
            v.inputs_redecided += 1;
            if delivery == Delivery::ExactlyOnce {
                v.failures.push(format!(
                    "input {pos:?} ({}) decided {} times",
                    case.kind,
                    outs.len()
                ));
            }
        }
        if case.expect == Expect::Approve && !outs.iter().any(|o| o.route == Route::Approved) {
            v.failures
                .push(format!("input {pos:?} ({}) never approved", case.kind));
        }
    }
    missing.sort();
    if !missing.is_empty() {
        v.failures.insert(
            0,
            format!(
                "{} inputs have no decision (lost), e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ),
        );
    }
    v
}

fn check_one(
    topic: &str,
    pos: Position,
    case: &Case,
    out: &Output,
    delivery: Delivery,
    v: &mut Verdict,
) {
    let at = format!("input {pos:?} ({})", case.kind);
    let fail = |v: &mut Verdict, m: String| v.failures.push(format!("{at}: {m}"));
    if out.key != case.record.key {
        fail(v, format!("key changed on {}", route_name(out.route)));
    }
    match (out.route, &case.expect) {
        (Route::Approved, Expect::Approve) => {
            if out.value != case.record.value {
                fail(v, "approved value differs from the input bytes".into());
            }
            if out.header("smsgate-outcome") != Some(b"approve") {
                fail(
                    v,
                    format!("smsgate-outcome header {:?}", out.header("smsgate-outcome")),
                );
            }
            if out.header("smsgate-policy").is_none_or(|p| p.is_empty()) {
                fail(v, "no smsgate-policy header".into());
            }
            let want = format!("{topic}/{}/{}", pos.0, pos.1);
            if out.header("smsgate-source") != Some(want.as_bytes()) {
                fail(v, format!("smsgate-source header is not {want}"));
            }
        }
        (Route::Quarantine, Expect::Approve) => {
            let codes = out.codes();
            if delivery == Delivery::AtLeastOnce && replayed(case, &codes) {
                v.replayed_as_duplicate += 1;
            } else {
                fail(v, format!("expected approve, quarantined with {codes:?}"));
            }
        }
        (Route::Quarantine, Expect::Reject { .. })
            if delivery == Delivery::AtLeastOnce && replayed(case, &out.codes()) =>
        {
            v.replayed_as_duplicate += 1;
        }
        (Route::Quarantine, Expect::Reject { code, also }) => {
            check_quarantine(case, out, code, also, &mut |m| {
                v.failures.push(format!("{at}: {m}"))
            })
        }
        (route, expect) => fail(
            v,
            format!("expected {expect:?}, routed to {}", route_name(route)),
        ),
    }
}

/// A decision made again (at_least_once, after a crash) for an input the
/// changelog already remembers: `duplicate`, plus at most what the first
/// decision could carry. A remembered approval of marketing also counts
/// towards its own cap, so its replay may add `frequency_cap`.
fn replayed(case: &Case, codes: &[String]) -> bool {
    let (first, also): (&str, &[&str]) = match &case.expect {
        Expect::Approve => ("frequency_cap", &[]),
        Expect::Reject { code, also } => (code, also),
    };
    first != "duplicate"
        && codes.iter().any(|c| c == "duplicate")
        && codes
            .iter()
            .all(|c| c == "duplicate" || c == first || also.contains(&c.as_str()))
}

fn check_quarantine(
    case: &Case,
    out: &Output,
    code: &str,
    also: &[&str],
    fail: &mut dyn FnMut(String),
) {
    let q = out.json();
    if !q.is_object() {
        return fail("quarantine value is not a JSON object".into());
    }
    if q["outcome"] != "reject" {
        fail(format!("outcome {}", q["outcome"]));
    }
    let codes = out.codes();
    if !codes.iter().any(|c| c == code) {
        fail(format!("codes {codes:?} lack {code}"));
    }
    if let Some(extra) = codes
        .iter()
        .find(|c| *c != code && !also.contains(&c.as_str()))
    {
        fail(format!("unexpected code {extra} in {codes:?}"));
    }
    for r in q["reasons"].as_array().into_iter().flatten() {
        for field in ["rule", "citation", "detail"] {
            if !r[field].is_string() {
                fail(format!("reason {} has no string {field}", r["code"]));
            }
        }
    }
    if !q["release_at"].is_null() {
        fail(format!("release_at {} on a reject", q["release_at"]));
    }
    if q["policy_version"].as_str().is_none_or(str::is_empty) {
        fail("no policy_version".into());
    }
    if q["decided_at"]
        .as_str()
        .is_none_or(|t| chrono::DateTime::parse_from_rfc3339(t).is_err())
    {
        fail(format!("decided_at {} is not RFC 3339", q["decided_at"]));
    }
    match &case.event {
        EventForm::Json(want) => {
            if &q["event"] != want {
                fail("event is not the input JSON".into());
            }
        }
        EventForm::Text => {
            if !q["event"].is_string() {
                fail(format!(
                    "event of a non-JSON input is not a string: {}",
                    q["event"]
                ));
            }
        }
        EventForm::Unchecked => {}
    }
    if case.event != EventForm::Unchecked {
        let want = case
            .message_id
            .as_deref()
            .map_or(Value::Null, |m| Value::String(m.into()));
        if q["message_id"] != want {
            fail(format!("message_id {} (want {want})", q["message_id"]));
        }
    }
}

/// Panics unless the inputs of each key landed in stream order: the
/// expectations of [`crate::events::capped_stream`] (which texts of a pair
/// are under the cap) are set in stream order. `positions[i]` is where
/// `cases[i]` landed.
pub fn assert_key_order(cases: &[Case], positions: &[Position]) {
    let mut last: HashMap<&[u8], Position> = HashMap::new();
    for (case, pos) in cases.iter().zip(positions) {
        let Some(key) = case.record.key.as_deref() else {
            continue;
        };
        if let Some(before) = last.insert(key, *pos) {
            assert!(
                before.0 == pos.0 && before.1 < pos.1,
                "inputs of key {} out of stream order: {before:?} then {pos:?}",
                String::from_utf8_lossy(key)
            );
        }
    }
}

/// Approved marketing per (recipient, subject), read back from the approved
/// topic (each record is the input event unchanged): the message ids, one
/// per approved record, so a message approved twice is listed twice.
#[derive(Debug, Default)]
pub struct Approvals(pub BTreeMap<(String, String), Vec<String>>);

impl Approvals {
    pub fn read(outputs: &[Output]) -> Approvals {
        let mut a = Approvals::default();
        for out in outputs.iter().filter(|o| o.route == Route::Approved) {
            let Ok(event) = serde_json::from_slice::<Value>(&out.value) else {
                continue;
            };
            if event["category"] != "marketing" {
                continue;
            }
            // The cap's subject (CONTRACT §2): subject, else campaign_id, else sender.
            let subject = ["subject", "campaign_id", "sender"]
                .iter()
                .find_map(|f| event[*f].as_str())
                .unwrap_or_default();
            let to = event["to"].as_str().unwrap_or_default();
            a.0.entry((to.to_string(), subject.to_string()))
                .or_default()
                .push(event["message_id"].as_str().unwrap_or_default().to_string());
        }
        a
    }

    /// Approved records of the most approved pair.
    pub fn max(&self) -> usize {
        self.0.values().map(Vec::len).max().unwrap_or(0)
    }

    /// Approved records of the least approved pair.
    pub fn min(&self) -> usize {
        self.0.values().map(Vec::len).min().unwrap_or(0)
    }

    /// Distinct approved messages of the pair with the most.
    pub fn max_distinct(&self) -> usize {
        self.0
            .values()
            .map(|ids| ids.iter().collect::<std::collections::BTreeSet<_>>().len())
            .max()
            .unwrap_or(0)
    }

    pub fn print(&self, label: &str) {
        eprintln!(
            "[{label}] marketing approvals for {} (recipient, subject) pairs: max {} per pair (distinct messages {}), min {}",
            self.0.len(),
            self.max(),
            self.max_distinct(),
            self.min()
        );
    }

    /// Panics unless there are `pairs` pairs, each with exactly `cap`
    /// approvals: approved records under `exactly_once`; distinct messages
    /// under `at_least_once`, where a replay may approve one message again
    /// (never another one over the cap).
    pub fn assert_capped(&self, pairs: usize, cap: usize, delivery: Delivery) {
        assert_eq!(self.0.len(), pairs, "pairs with approved marketing");
        for (pair, ids) in &self.0 {
            let n = match delivery {
                Delivery::ExactlyOnce => ids.len(),
                Delivery::AtLeastOnce => {
                    ids.iter().collect::<std::collections::BTreeSet<_>>().len()
                }
            };
            assert_eq!(n, cap, "{pair:?}: approvals {ids:?} (cap {cap})");
        }
    }
}
