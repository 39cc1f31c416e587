use super::*;

const SENDERS: &str = r#"
[senders.shop]
brand = "Sunny Shop"
domains = ["sunnyshop.com"]
numbers = ["+18005550199"]
"#;

fn policy() -> Policy {
    Policy::with_registry(registry_from_str(SENDERS).unwrap())
}

fn file(name: &str, text: &str) -> (String, String) {
    (name.to_string(), text.to_string())
}

const ONE: &str = r#"
[defaults]
now = "2026-12-01T18:00:00Z"
opted_in = true
event = { to = "+12125550123", sender = "shop", category = "marketing" }
[[case]]
name = "ok"
basis = "CONTRACT §3"
event = { body = "Sunny Shop: 20% off boots. Reply STOP to opt out" }
expect = { outcome = "approve" }
"#;

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let err =
        parse_files(&[file("a.toml", ONE), file("b.toml", "[[case]]\nname = \n")]).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("b.toml: line 2:"), "{text}");
}

#[test]
fn a_bad_case_names_the_file_and_the_case() {
    let bad = ONE.replace(
        "outcome = \"approve\"",
        "outcome = \"reject\", codes = [\"content.nope\"]",
    );
    let text = parse_files(&[file("x.toml", &bad)])
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("x.toml: case \"ok\"") && text.contains("content.nope"),
        "{text}"
    );
    let no_basis = ONE.replace("basis = \"CONTRACT §3\"", "");
    let text = parse_files(&[file("y.toml", &no_basis)])
        .unwrap_err()
        .to_string();
    assert!(text.contains("y.toml: case \"ok\": no `basis`"), "{text}");
}

#[test]
fn duplicate_case_names_are_rejected_across_files() {
    let err = parse_files(&[file("a.toml", ONE), file("b.toml", ONE)]).unwrap_err();
    assert_eq!(
        err,
        CasebookError::DuplicateName {
            file: "b.toml".into(),
            case: "ok".into(),
            first: "a.toml".into()
        }
    );
}

#[test]
fn defaults_fill_the_event_and_lone_cases_get_fresh_state() {
    let two = format!(
        "{ONE}\n[[case]]\nname = \"ok-again\"\nbasis = \"CONTRACT §2\"\nevent = {{ body = \"Sunny Shop: boots. Reply STOP to opt out\" }}\nexpect = {{ outcome = \"approve\" }}\n"
    );
    let runs = parse_files(&[file("a.toml", &two)]).unwrap();
    let book = Casebook {
        runs,
        ..Casebook::default()
    };
    let report = book.run(&policy());
    assert_eq!(report.count(Status::Pass), 2, "{report}");
    let ev: Value = serde_json::from_slice(&book.runs[0].cases[0].input).unwrap();
    assert_eq!(ev["message_id"], "ok");
    assert_eq!(ev["created_at"], "2026-12-01T18:00:00Z");
}

#[test]
fn cases_of_a_group_share_state_in_order() {
    let text = r#"
[defaults]
now = "2026-12-01T18:00:00Z"
opted_in = true
[[group]]
name = "cap"
basis = "POLICY.md Frequency cap: 3 per rolling 24 h"
event = { to = "+12125550123", sender = "shop", category = "marketing", subject = "boots", body = "Sunny Shop: boots. Reply STOP to opt out" }
[[group.case]]
name = "cap-1"
expect = { outcome = "approve" }
[[group.case]]
name = "cap-2"
now = "2026-12-01T18:01:00Z"
expect = { outcome = "approve" }
[[group.case]]
name = "cap-3"
now = "2026-12-01T18:02:00Z"
expect = { outcome = "approve" }
[[group.case]]
name = "cap-4"
now = "2026-12-01T18:03:00Z"
expect = { outcome = "reject", codes = ["frequency_cap"] }
[[group.case]]
name = "cap-dup"
now = "2026-12-01T18:04:00Z"
event = { message_id = "cap-1" }
expect = { outcome = "reject", codes = ["duplicate", "frequency_cap"] }
"#;
    let book = Casebook {
        runs: parse_files(&[file("g.toml", text)]).unwrap(),
        ..Casebook::default()
    };
    let report = book.run(&policy());
    assert!(report.ok(), "{report}");
    assert_eq!(report.count(Status::Pass), 5);
}

#[test]
fn known_gaps_ratchet() {
    let text = ONE.replace(
        "expect = { outcome = \"approve\" }",
        "expect = { outcome = \"approve\" }\nknown_gap = \"x\"",
    );
    let book = Casebook {
        runs: parse_files(&[file("a.toml", &text)]).unwrap(),
        ..Casebook::default()
    };
    let report = book.run(&policy());
    assert_eq!(report.count(Status::GapClosed), 1);
    assert!(!report.ok());
    let wrong = text.replace(
        "outcome = \"approve\" }",
        "outcome = \"reject\", codes = [\"content.shaft\"] }",
    );
    let book = Casebook {
        runs: parse_files(&[file("a.toml", &wrong)]).unwrap(),
        ..Casebook::default()
    };
    let report = book.run(&policy());
    assert_eq!(report.count(Status::KnownGap), 1);
    assert!(report.ok());
    assert!(report.to_string().contains("missing content.shaft"));
}

fn result(expect: &[&str], got: &[&str]) -> CaseResult {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    CaseResult {
        file: "f".into(),
        group: None,
        name: "n".into(),
        basis: "b".into(),
        known_gap: None,
        expect_outcome: "reject".into(),
        got_outcome: "reject".into(),
        expect_codes: set(expect),
        got_codes: set(got),
        expect_release_at: None,
        got_release_at: None,
        status: Status::Fail,
    }
}

#[test]
fn precision_and_recall_count_per_code() {
    let report = Report::new(vec![
        result(&["content.pii"], &["content.pii"]),
        result(&["content.pii"], &[]),
        result(&[], &["content.pii", "content.shaft"]),
        result(&["content.pii", "content.shaft"], &["content.pii"]),
    ]);
    let pii = report.codes["content.pii"];
    assert_eq!((pii.tp, pii.fp, pii.fn_), (2, 1, 1));
    assert_eq!(pii.precision(), Some(2.0 / 3.0));
    assert_eq!(pii.recall(), Some(2.0 / 3.0));
    let shaft = report.codes["content.shaft"];
    assert_eq!((shaft.tp, shaft.fp, shaft.fn_), (0, 1, 1));
    assert_eq!(shaft.precision(), Some(0.0));
    assert_eq!(CodeStats::default().precision(), None);
    let table = report.code_table();
    assert!(
        table.contains("content.pii") && table.contains(" 66.7"),
        "{table}"
    );
}

#[test]
fn a_directory_loads_registry_and_cases() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("senders.toml"), SENDERS).unwrap();
    std::fs::write(dir.path().join("us.toml"), ONE).unwrap();
    let (out, code) = test_dir(dir.path(), &PolicySource::default());
    assert_eq!(code, EXIT_PASS, "{out}");
    std::fs::write(dir.path().join("bad.toml"), "[[case]]\nname = 1\n").unwrap();
    let (out, code) = test_dir(dir.path(), &PolicySource::default());
    assert_eq!(code, EXIT_INVALID);
    assert!(out.contains("bad.toml"), "{out}");
}

const NIGHT: &str = r#"
[defaults]
now = "2026-12-02T02:30:00Z"
opted_in = true
event = { to = "+12125550123", sender = "shop", category = "marketing" }
[[case]]
name = "night-no-optout"
basis = "CONTRACT §10 reject beats defer"
event = { body = "Sunny Shop: boots" }
expect = { outcome = "reject", codes = ["content.optout_missing"], maybe = ["quiet_hours"] }
[[case]]
name = "night-defer"
basis = "CONTRACT §7 quiet_hours"
event = { body = "Sunny Shop: boots. Reply STOP to opt out" }
expect = { outcome = "defer", codes = ["quiet_hours"], release_at = "RELEASE" }
"#;

#[test]
fn maybe_codes_are_neither_required_nor_scored_and_release_at_is_compared() {
    let text = NIGHT.replace("RELEASE", "2026-12-02T13:00:00Z");
    let book = Casebook {
        runs: parse_files(&[file("n.toml", &text)]).unwrap(),
        ..Casebook::default()
    };
    let report = book.run(&policy());
    assert_eq!(report.count(Status::Pass), 2, "{report}");
    assert_eq!(
        report.codes["quiet_hours"].tp, 1,
        "only the defer case scores it"
    );
    let wrong = NIGHT.replace("RELEASE", "2026-12-02T12:00:00Z");
    let book = Casebook {
        runs: parse_files(&[file("n.toml", &wrong)]).unwrap(),
        ..Casebook::default()
    };
    let report = book.run(&policy());
    assert_eq!(report.count(Status::Fail), 1);
    assert!(
        report
            .to_string()
            .contains("release_at expected 2026-12-02T12:00:00Z got 2026-12-02T13:00:00Z"),
        "{report}"
    );
    let both = NIGHT.replace(
        "maybe = [\"quiet_hours\"]",
        "maybe = [\"content.optout_missing\"]",
    );
    let err = parse_files(&[file("n.toml", &both)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("in both codes and maybe"), "{err}");
}
