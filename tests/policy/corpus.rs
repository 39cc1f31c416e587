//! The labelled corpus (`tests/corpus/`, issue 20) through the casebook with
//! the shipped packs: a ratchet. It fails when a case without `known_gap`
//! fails, or when a case marked `known_gap` now passes (remove the marker),
//! and prints the per-reason-code precision/recall table either way.

use std::path::Path;

use smsgate::casebook::{self, Status};
use smsgate::policy::PolicySource;

#[test]
fn corpus_ratchet() {
    // Relative to the package root (cargo's working directory for tests),
    // so the report names files as `tests/corpus/us.toml`.
    let dir = Path::new("tests/corpus");
    let book = casebook::load_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(book.len() >= 400, "the corpus has {} cases", book.len());
    let policy = book
        .policy(&PolicySource::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let report = book.run(&policy);
    println!("{report}");
    let legit = report
        .results
        .iter()
        .filter(|r| r.expect_outcome == "approve")
        .count();
    assert!(
        legit * 10 >= report.results.len() * 4,
        "at least 40% legitimate traffic: {legit} of {}",
        report.results.len()
    );
    let unexpected: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| format!("{} ({}): {}", r.name, r.file, r.diff()))
        .collect();
    let closed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| r.status == Status::GapClosed)
        .map(|r| r.name.as_str())
        .collect();
    assert!(
        unexpected.is_empty() && closed.is_empty(),
        "{} cases fail without known_gap:\n  {}\n{} known_gap cases now pass (remove the marker): {}",
        unexpected.len(),
        unexpected.join("\n  "),
        closed.len(),
        closed.join(", ")
    );
}
