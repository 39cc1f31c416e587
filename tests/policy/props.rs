//! Properties: normalization is idempotent; deciding never panics on any
//! string or JSON; decisions are deterministic.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use smsgate::policy::content::normalize::{normalize, normalize_general};
use smsgate::policy::{Origin, Policy, Registry};
use smsgate::state::MemoryState;

fn policy() -> &'static Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::with_registry(
            Registry::parse(include_str!("../../config/senders.example.toml")).unwrap(),
        )
    })
}

/// Text mixing the characters evasions use with ordinary ones.
fn tricky_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        any::<char>().prop_map(|c| c.to_string()),
        Just(" ".to_string()),
        Just("\u{200b}".to_string()),
        Just("\u{200d}".to_string()),
        Just("\u{3000}".to_string()),
        Just("\u{0301}".to_string()),
        Just("\u{309b}".to_string()),
        Just("ｇ".to_string()),
        Just("秒".to_string()),
        Just("批".to_string()),
        Just("가".to_string()),
        Just("\u{1100}".to_string()),
        Just("a".to_string()),
        Just("【".to_string()),
        Just("】".to_string()),
        "[0-9 .-]{1,20}",
        "[a-z]{1,3}",
        Just("http://".to_string()),
        Just(".com/".to_string()),
    ];
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

fn field() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        tricky_text().prop_map(Value::from),
        Just(json!("+8613812345678")),
        Just(json!("+12085551234")),
        Just(json!("+15555551234")),
        Just(json!("marketing")),
        Just(json!("otp")),
        Just(json!("huinong-credit")),
        Just(json!("2026-11-28T09:30:00+08:00")),
        Just(json!({"age": 12, "student": true, "region": "US-TX", "timezone": "America/Chicago"})),
        Just(json!({"personalized": true})),
    ]
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_700_000_000i64..1_900_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn normalization_is_idempotent(s in tricky_text()) {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once.clone());
    }

    #[test]
    fn fast_paths_agree_with_the_general_normalization(s in tricky_text()) {
        prop_assert_eq!(normalize(&s), normalize_general(&s));
    }

    #[test]
    fn any_bytes_decide_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), now in instant()) {
        let (_, d) = policy().decide_bytes(&bytes, Origin::Intake, &MemoryState::new(), now);
        prop_assert!(!d.to_json().is_empty());
    }

    #[test]
    fn any_json_event_decides_deterministically(
        fields in prop::collection::vec(field(), 11),
        body in tricky_text(),
        now in instant(),
    ) {
        let keys = ["message_id", "created_at", "to", "sender", "category", "campaign_id",
                    "subject", "template_id", "recipient", "targeting", "body"];
        let mut obj = serde_json::Map::new();
        for (k, v) in keys.iter().zip(fields) {
            obj.insert(k.to_string(), v);
        }
        if !body.is_empty() {
            obj.insert("body".into(), body.into());
        }
        let bytes = serde_json::Value::Object(obj).to_string().into_bytes();
        let state = MemoryState::new();
        let (_, a) = policy().decide_bytes(&bytes, Origin::Intake, &state, now);
        let (_, b) = policy().decide_bytes(&bytes, Origin::Release, &state, now);
        let (_, c) = policy().decide_bytes(&bytes, Origin::Intake, &state, now);
        prop_assert_eq!(&a, &c);
        prop_assert_eq!(a.outcome, b.outcome);
    }

    #[test]
    fn well_formed_events_with_any_body_decide_deterministically(body in tricky_text(), to in prop_oneof![
        Just("+8613812345678"), Just("+12085551234"), Just("+15555551234"), Just("+447700900123")
    ], now in instant()) {
        prop_assume!(!body.is_empty() && body.chars().count() <= 2000);
        // Other control characters make the event malformed (docs/contract.md).
        prop_assume!(!body.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')));
        let v = serde_json::json!({"message_id":"p","created_at":"2026-11-28T09:30:00+08:00","to":to,
            "sender":"huinong-credit","category":"marketing","body":body});
        let e = smsgate::contract::event::parse(v.to_string().as_bytes()).unwrap();
        let a = policy().decide(&e, Origin::Intake, &MemoryState::new(), now);
        let b = policy().decide(&e, Origin::Intake, &MemoryState::new(), now);
        prop_assert_eq!(a, b);
    }
}
