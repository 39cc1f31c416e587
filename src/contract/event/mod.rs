//! The outbound SMS event (CONTRACT §2): parsing and validation.
//!
//! Parsing never fails the caller: bad input becomes a [`Malformed`] value
//! whose detail names every bad field, and the pipeline quarantines it with
//! reason `malformed`. Nothing here panics on any byte sequence.

mod loose;
mod strict;

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::Value;

use loose::{Loose, Raw, RawRecipient, RawTargeting, Shaped};

pub use strict::MAX_DEPTH;

/// Values larger than this are quarantined without being parsed.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Body length limit in characters (CONTRACT §2).
pub const MAX_BODY_CHARS: usize = 2000;
/// `message_id` length limit in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Marketing,
    Notification,
    Otp,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "marketing",
            Category::Notification => "notification",
            Category::Otp => "otp",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        match s {
            "marketing" => Some(Category::Marketing),
            "notification" => Some(Category::Notification),
            "otp" => Some(Category::Otp),
            _ => None,
        }
    }
}

/// What the upstream system knows about the recipient; each field overrides
/// what the number implies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    pub age: Option<u32>,
    pub student: Option<bool>,
    /// ISO 3166-2, e.g. `US-FL`.
    pub region: Option<String>,
    /// IANA zone, already checked to be a known zone.
    pub timezone: Option<chrono_tz::Tz>,
}

/// A validated outbound event. Only well-formed events reach the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSms {
    pub message_id: String,
    pub created_at: DateTime<FixedOffset>,
    /// E.164, checked: `+`, a non-zero digit, 7–14 more digits.
    pub to: String,
    pub sender: String,
    pub category: Category,
    pub body: String,
    pub campaign_id: Option<String>,
    pub subject: Option<String>,
    pub template_id: Option<String>,
    pub recipient: Recipient,
    /// `targeting.personalized`; absent counts as false.
    pub personalized: bool,
}

impl OutboundSms {
    /// The "same subject" key for frequency caps: `subject`, else
    /// `campaign_id`, else `sender` (CONTRACT §2).
    pub fn subject_key(&self) -> &str {
        self.subject
            .as_deref()
            .or(self.campaign_id.as_deref())
            .unwrap_or(&self.sender)
    }
}

/// Why an input could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The `message_id` when the input was an object holding a string one.
    pub message_id: Option<String>,
    /// Human-readable, names every bad field; never holds the body.
    pub detail: String,
}

/// True for `+`, a non-zero digit, then 7–14 more digits (CONTRACT §10).
pub fn is_e164(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 9
        && b.len() <= 16
        && b[0] == b'+'
        && (b'1'..=b'9').contains(&b[1])
        && b[2..].iter().all(u8::is_ascii_digit)
}

/// Parses and validates one record value.
pub fn parse(bytes: &[u8]) -> Result<OutboundSms, Malformed> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(fail(format!(
            "value is {} bytes, over the {} byte limit",
            bytes.len(),
            MAX_EVENT_BYTES
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "not UTF-8: invalid byte at offset {}",
            e.valid_up_to()
        ))
    })?;
    // Fast path: straight into the fields, without an intermediate map,
    // reading the whole text once the strict way (no duplicate key, bounded
    // nesting: strict.rs), so every parser downstream reads what the gate
    // decided on. Whatever it refuses takes the path below, which explains
    // it. (Only for objects: a struct would also deserialize from an array.)
    if text.trim_start().starts_with('{')
        && let Ok(raw) = serde_json::from_str::<Raw>(text)
    {
        return validate(raw);
    }
    if let Err(detail) = strict::audit(text) {
        return Err(Malformed {
            message_id: message_id_beside(text, &detail),
            detail,
        });
    }
    parse_via_value(text)
}

/// The slow path: through a `Value`, which accepts and explains anything.
fn parse_via_value(text: &str) -> Result<OutboundSms, Malformed> {
    let value: Value = serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(fail(format!("not a JSON object but {}", kind(&value))));
    }
    let raw = Raw::deserialize(&value).map_err(|e| fail(format!("unreadable object: {e}")))?;
    validate(raw)
}

/// The `message_id` of an input that failed the strict reading, unless the
/// failure is about `message_id` itself (then no reading of it is sure).
fn message_id_beside(text: &str, detail: &str) -> Option<String> {
    if detail.starts_with("not JSON") || detail.contains("\"message_id\"") {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    value.get("message_id")?.as_str().map(str::to_string)
}

/// An input that is not an object with a `message_id` to name.
fn fail(detail: String) -> Malformed {
    Malformed {
        message_id: None,
        detail,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collects problems field by field.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, field: &str, what: impl std::fmt::Display) {
        self.0.push(format!("{field}: {what}"));
    }

    /// A required string field.
    fn required_str<'a>(&mut self, field: &str, v: Option<Loose<'a>>) -> Option<Cow<'a, str>> {
        match v {
            None => {
                self.push(field, "missing");
                None
            }
            Some(v) => self.string(field, v),
        }
    }

    /// An optional string field; null counts as absent.
    fn optional_str(&mut self, field: &str, v: Option<Loose<'_>>) -> Option<String> {
        v.and_then(|v| self.string(field, v)).map(Cow::into_owned)
    }

    fn string<'a>(&mut self, field: &str, v: Loose<'a>) -> Option<Cow<'a, str>> {
        match v {
            Loose::Str(s) => match strict::control_character(&s, field == "body") {
                None => Some(s),
                Some(c) => {
                    self.push(
                        field,
                        format_args!("holds the control character U+{:04X}", c as u32),
                    );
                    None
                }
            },
            other => {
                self.push(
                    field,
                    format_args!("expected a string, got {}", other.kind()),
                );
                None
            }
        }
    }
}

fn validate(raw: Raw<'_>) -> Result<OutboundSms, Malformed> {
    let mut p = Problems::default();

    let message_id = p.required_str("message_id", raw.message_id);
    let id_for_error = message_id.clone();
    let message_id = message_id.filter(|id| {
        let n = id.chars().count();
        let ok = (1..=MAX_MESSAGE_ID_CHARS).contains(&n);
        if !ok {
            p.push(
                "message_id",
                format_args!("must be 1–128 characters, got {n}"),
            );
        }
        ok
    });

    let created_at = p.required_str("created_at", raw.created_at).and_then(|s| {
        DateTime::parse_from_rfc3339(&s)
            .map_err(|e| p.push("created_at", format_args!("not an RFC 3339 time ({e})")))
            .ok()
    });

    let to = p.required_str("to", raw.to).filter(|to| {
        let ok = is_e164(to);
        if !ok {
            p.push("to", "not an E.164 number (+ then 8–15 digits)");
        }
        ok
    });

    let sender = p.required_str("sender", raw.sender).filter(|s| {
        let ok = !s.is_empty() && s.chars().count() <= 128;
        if !ok {
            p.push("sender", "must be 1–128 characters");
        }
        ok
    });

    let category = p.required_str("category", raw.category).and_then(|c| {
        let parsed = Category::parse(&c);
        if parsed.is_none() {
            p.push(
                "category",
                "must be \"marketing\", \"notification\" or \"otp\"",
            );
        }
        parsed
    });

    let body = p.required_str("body", raw.body).filter(|b| {
        let n = b.chars().count();
        let ok = (1..=MAX_BODY_CHARS).contains(&n);
        if !ok {
            p.push("body", format_args!("must be 1–2000 characters, got {n}"));
        }
        ok
    });

    let campaign_id = p.optional_str("campaign_id", raw.campaign_id);
    let subject = p.optional_str("subject", raw.subject);
    let template_id = p.optional_str("template_id", raw.template_id);
    let recipient = parse_recipient(&mut p, raw.recipient);
    let personalized = parse_targeting(&mut p, raw.targeting);

    match (message_id, created_at, to, sender, category, body) {
        (
            Some(message_id),
            Some(created_at),
            Some(to),
            Some(sender),
            Some(category),
            Some(body),
        ) if p.0.is_empty() => Ok(OutboundSms {
            message_id: message_id.into_owned(),
            created_at,
            to: to.into_owned(),
            sender: sender.into_owned(),
            category,
            body: body.into_owned(),
            campaign_id,
            subject,
            template_id,
            recipient,
            personalized,
        }),
        _ => Err(Malformed {
            message_id: id_for_error.map(Cow::into_owned),
            detail: p.0.join("; "),
        }),
    }
}

fn parse_recipient(p: &mut Problems, v: Option<Shaped<RawRecipient<'_>>>) -> Recipient {
    let mut r = Recipient::default();
    let raw = match v {
        None => return r,
        Some(Shaped::Object(raw)) => raw,
        Some(Shaped::Other(kind)) => {
            p.push("recipient", format_args!("expected an object, got {kind}"));
            return r;
        }
    };
    // Checked in key order, so details read the same on both parse paths.
    if let Some(age) = raw.age {
        match age {
            Loose::UInt(age) if age <= 150 => r.age = Some(age as u32),
            _ => p.push("recipient.age", "expected an integer from 0 to 150"),
        }
    }
    if let Some(region) = raw.region {
        match region.as_str() {
            Some(s) if is_iso_3166_2(s) => r.region = Some(s.to_string()),
            _ => p.push(
                "recipient.region",
                "expected an ISO 3166-2 code such as US-FL",
            ),
        }
    }
    if let Some(student) = raw.student {
        match student {
            Loose::Bool(b) => r.student = Some(b),
            _ => p.push("recipient.student", "expected a boolean"),
        }
    }
    if let Some(tz) = raw.timezone {
        match tz.as_str().and_then(|s| s.parse::<chrono_tz::Tz>().ok()) {
            Some(tz) => r.timezone = Some(tz),
            None => p.push("recipient.timezone", "expected an IANA time zone name"),
        }
    }
    r
}

fn parse_targeting(p: &mut Problems, v: Option<Shaped<RawTargeting<'_>>>) -> bool {
    match v {
        None => false,
        Some(Shaped::Object(raw)) => match raw.personalized {
            None => false,
            Some(Loose::Bool(b)) => b,
            Some(_) => {
                p.push("targeting.personalized", "expected a boolean");
                false
            }
        },
        Some(Shaped::Other(kind)) => {
            p.push("targeting", format_args!("expected an object, got {kind}"));
            false
        }
    }
}

/// `CC-XXX`: two letters, a dash, 1–3 letters or digits.
fn is_iso_3166_2(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4
        && b.len() <= 6
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2] == b'-'
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"{"message_id":"m-1","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678","sender":"huinong-credit","category":"marketing","body":"hi","recipient":{"age":41,"student":false,"region":"CN-BJ","timezone":"Asia/Shanghai"},"targeting":{"personalized":true},"extra":1}"#;

    /// The detail of an input that must be malformed.
    fn detail(input: &str) -> String {
        parse(input.as_bytes()).unwrap_err().detail
    }

    #[test]
    fn parses_the_contract_example() {
        let e = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(e.message_id, "m-1");
        assert_eq!(e.recipient.age, Some(41));
        assert_eq!(e.recipient.timezone, Some(chrono_tz::Asia::Shanghai));
        assert!(e.personalized);
        assert_eq!(e.subject_key(), "huinong-credit");
    }

    #[test]
    fn names_every_bad_field() {
        let m = parse(br#"{"message_id":"m-2","to":"13812345678","category":"spam","body":""}"#)
            .unwrap_err();
        assert_eq!(m.message_id.as_deref(), Some("m-2"));
        for field in ["created_at", "to", "sender", "category", "body"] {
            assert!(
                m.detail.contains(field),
                "{field} missing from {}",
                m.detail
            );
        }
    }

    #[test]
    fn not_json_not_object_not_utf8_oversized() {
        assert!(detail("{").starts_with("not JSON"));
        let m = parse(b"[1]").unwrap_err();
        assert!(m.detail.contains("not a JSON object") && m.message_id.is_none());
        assert!(
            parse(b"\xff\xfe")
                .unwrap_err()
                .detail
                .starts_with("not UTF-8")
        );
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(parse(&big).unwrap_err().detail.contains("byte limit"));
    }

    #[test]
    fn null_optional_fields_are_absent() {
        let s = GOOD.replace(r#""age":41"#, r#""age":null"#);
        assert_eq!(parse(s.as_bytes()).unwrap().recipient.age, None);
        let s = GOOD.replace(r#""message_id":"m-1""#, r#""message_id":null"#);
        assert!(detail(&s).contains("message_id: missing"));
    }

    #[test]
    fn a_duplicate_key_is_malformed_and_keeps_the_message_id() {
        let s = GOOD.replace(r#""body":"hi""#, r#""body":"first","body":"hi""#);
        let m = parse(s.as_bytes()).unwrap_err();
        assert!(
            m.detail.starts_with("duplicate key \"body\""),
            "{}",
            m.detail
        );
        assert_eq!(m.message_id.as_deref(), Some("m-1"));
        let s = GOOD.replace(r#""age":41"#, r#""age":41,"age":41"#);
        assert!(detail(&s).starts_with("duplicate key \"age\""));
        let s = GOOD.replace(
            r#""message_id":"m-1""#,
            r#""message_id":"m-1","message_id":"m-2""#,
        );
        assert_eq!(parse(s.as_bytes()).unwrap_err().message_id, None);
    }

    #[test]
    fn deep_nesting_in_an_unknown_field_is_malformed() {
        let deep = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
        let s = GOOD.replace(r#""extra":1"#, &format!(r#""extra":{deep}"#));
        assert!(detail(&s).contains("nested deeper than 64"));
    }

    #[test]
    fn control_characters_in_text_fields_are_malformed() {
        let s = GOOD.replace(r#""body":"hi""#, r#""body":"hi\u0000回T退订""#);
        assert_eq!(detail(&s), "body: holds the control character U+0000");
        let s = GOOD.replace(
            r#""sender":"huinong-credit""#,
            r#""sender":"huinong\ncredit""#,
        );
        assert!(detail(&s).starts_with("sender: holds the control character U+000A"));
        // Line breaks and tabs are text in a body.
        let s = GOOD.replace(r#""body":"hi""#, r#""body":"line one\nline two\tend""#);
        assert_eq!(parse(s.as_bytes()).unwrap().body, "line one\nline two\tend");
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let s = GOOD.replace(r#""body":"hi""#, r#""body":"\u9000\u8ba2 \"q\"""#);
        assert_eq!(parse(s.as_bytes()).unwrap().body, "退订 \"q\"");
    }

    /// Any JSON value, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-zA-Z0-9+:/_ -]{0,12}".prop_map(Value::from),
            Just(Value::from("2026-11-28T09:30:00+08:00")),
            Just(Value::from("+8613812345678")),
            Just(Value::from("marketing")),
            Just(Value::from("CN-BJ")),
            Just(Value::from("Asia/Shanghai")),
            (0u64..200).prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("age".to_string()),
                        Just("student".to_string()),
                        Just("region".to_string()),
                        Just("timezone".to_string()),
                        Just("personalized".to_string()),
                        "[a-z]{1,4}",
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The borrowing fast path and the `Value` path agree on every
        /// object: the same event, or the same detail.
        #[test]
        fn both_parse_paths_agree(
            fields in proptest::collection::btree_map(
                prop_oneof![
                    Just("message_id"), Just("created_at"), Just("to"), Just("sender"),
                    Just("category"), Just("body"), Just("campaign_id"), Just("subject"),
                    Just("template_id"), Just("recipient"), Just("targeting"), Just("extra"),
                ],
                any_json(),
                0..12,
            )
        ) {
            let object: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let text = Value::Object(object).to_string();
            prop_assert_eq!(parse(text.as_bytes()), parse_via_value(&text));
        }
    }

    #[test]
    fn e164_rule() {
        assert!(is_e164("+12125551234"));
        assert!(is_e164("+86138123456"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1234567"));
        assert!(!is_e164("+1234567890123456"));
    }
}
