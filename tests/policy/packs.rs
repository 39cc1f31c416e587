//! Packs are data: they load from files, can be edited and switched off, and
//! a bad pack fails at load with an error naming the file, rule and problem.

use std::path::PathBuf;

use smsgate::policy::{Policy, PolicyError, PolicySource, Registry, pack};

fn registry() -> Registry {
    Registry::parse(include_str!("../../config/senders.example.toml")).unwrap()
}

fn shipped() -> Vec<(String, String)> {
    pack::SHIPPED
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// The shipped packs with `cn.toml` edited by `f`.
fn with_cn(f: impl Fn(&str) -> String) -> Result<Policy, PolicyError> {
    let files = shipped()
        .into_iter()
        .map(|(n, t)| if n == "cn.toml" { (n, f(&t)) } else { (n, t) })
        .collect::<Vec<_>>();
    Policy::from_parts(&files, registry())
}

fn error(r: Result<Policy, PolicyError>) -> String {
    r.expect_err("the pack must be rejected").to_string()
}

const RULE: &str = "[[rule]]\nid = \"cn.extra\"\ncitation = \"test\"\n";

#[test]
fn shipped_packs_load_and_serve_their_prefixes() {
    let p = Policy::with_registry(registry());
    let names: Vec<&str> = p.packs().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cn", "default", "us"]);
    assert_eq!(p.pack_for("+8613812345678").name, "cn");
    assert_eq!(p.pack_for("+12125551234").name, "us");
    assert_eq!(p.pack_for("+447700900123").name, "default");
    assert!(p.version().starts_with("sha256:") && p.version().len() == 7 + 64);
    assert_eq!(p.dedup_window(), chrono::Duration::hours(24));
    assert_eq!(p.cap_window(), chrono::Duration::hours(24));
}

#[test]
fn the_config_directory_is_the_shipped_packs() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let from_dir = Policy::load(&PolicySource {
        senders: vec![dir.join("senders.example.toml")],
        packs: Some(dir.join("policies")),
    })
    .unwrap();
    let built_in = Policy::load(&PolicySource {
        senders: vec![dir.join("senders.example.toml")],
        packs: None,
    })
    .unwrap();
    assert_eq!(from_dir.version(), built_in.version());
    assert_eq!(
        built_in.version(),
        Policy::with_registry(registry()).version()
    );
}

#[test]
fn version_is_a_hash_of_packs_and_registry() {
    let base = Policy::with_registry(registry());
    let edited = with_cn(|t| t.replace("max = 3", "max = 4")).unwrap();
    assert_ne!(base.version(), edited.version());
    let mut reg = registry();
    reg.merge(Registry::parse("[senders.x]\nbrand = \"X\"\n").unwrap());
    assert_ne!(base.version(), Policy::with_registry(reg).version());
}

#[test]
fn unknown_rule_kind_names_file_and_rule() {
    let e = error(with_cn(|t| {
        format!("{t}\n{RULE}kind = \"telepathy\"\ncode = \"duplicate\"\n")
    }));
    assert!(
        e.contains("cn.toml")
            && e.contains("cn.extra")
            && e.contains("unknown rule kind \"telepathy\""),
        "{e}"
    );
}

#[test]
fn bad_regex_names_file_and_rule() {
    let e = error(with_cn(|t| {
        format!(
            "{t}\n{RULE}kind = \"optout\"\ncode = \"content.optout_missing\"\npatterns = ['(unclosed']\n"
        )
    }));
    assert!(
        e.contains("cn.toml") && e.contains("cn.extra") && e.contains("bad regex"),
        "{e}"
    );
}

#[test]
fn invalid_time_window_names_file_and_rule() {
    let e = error(with_cn(|t| {
        t.replace("allowed = \"08:00-21:00\"", "allowed = \"21:00-08:00\"")
    }));
    assert!(
        e.contains("cn.toml") && e.contains("cn.quiet_hours") && e.contains("invalid time window"),
        "{e}"
    );
    let e = error(with_cn(|t| {
        t.replace(
            "allowed = \"08:00-21:00\"",
            "allowed = \"08:00-21:00\"\ndays = { funday = \"09:00-10:00\" }",
        )
    }));
    assert!(e.contains("unknown day"), "{e}");
}

#[test]
fn duplicate_rule_id_names_file_and_rule() {
    let e = error(with_cn(|t| {
        format!(
            "{t}\n[[rule]]\nid = \"cn.pii\"\nkind = \"pii\"\ncode = \"content.pii\"\ncitation = \"x\"\nprc_id = true\ncards = true\n"
        )
    }));
    assert!(
        e.contains("cn.toml") && e.contains("cn.pii") && e.contains("duplicate rule id"),
        "{e}"
    );
    // Across packs too.
    let e = error(with_cn(|t| t.replace("id = \"cn.pii\"", "id = \"us.pii\"")));
    assert!(
        e.contains("us.pii") && e.contains("duplicate rule id"),
        "{e}"
    );
}

#[test]
fn other_mistakes_are_named() {
    let e = error(with_cn(|t| {
        t.replace("max_segments = 6", "max_segments = 6\nmax_sgements = 7")
    }));
    assert!(
        e.contains("cn.segments") && e.contains("max_sgements"),
        "{e}"
    );
    let e = error(with_cn(|t| {
        t.replace("code = \"content.pii\"", "code = \"content.shaft\"")
    }));
    assert!(e.contains("cn.pii") && e.contains("does not emit"), "{e}");
    let e = error(with_cn(|t| {
        t.replace("zones = [\"Asia/Shanghai\"]", "zones = [\"Asia/Atlantis\"]")
    }));
    assert!(e.contains("unknown time zone"), "{e}");
    let e = error(with_cn(|_| "not = [toml".into()));
    assert!(e.contains("cn.toml"), "{e}");
    let files: Vec<_> = shipped()
        .into_iter()
        .filter(|(n, _)| n != "default.toml")
        .collect();
    assert!(error(Policy::from_parts(&files, registry())).contains("no pack named \"default\""));
}

#[test]
fn a_rule_can_be_switched_off() {
    use serde_json::json;
    use smsgate::contract::decision::ReasonCode;
    let off = with_cn(|t| {
        t.replace(
            "id = \"cn.lending.claims\"",
            "id = \"cn.lending.claims\"\nenabled = false",
        )
    })
    .unwrap();
    let on = Policy::with_registry(registry());
    let v = json!({"message_id":"m","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678",
                   "sender":"huinong-credit","category":"otp","body":"【惠农信贷】秒批贷款，年化7%"});
    let e = smsgate::contract::event::parse(v.to_string().as_bytes()).unwrap();
    let now = chrono::Utc::now();
    let state = smsgate::policy::EmptyState;
    assert!(
        on.decide(&e, smsgate::policy::Origin::Intake, &state, now)
            .has(ReasonCode::ProhibitedClaim)
    );
    assert!(
        !off.decide(&e, smsgate::policy::Origin::Intake, &state, now)
            .has(ReasonCode::ProhibitedClaim)
    );
}
