//! What the gate decided about one event, and the JSON forms of that decision.
//!
//! A [`Decision`] is the single output of `policy::decide`: the outcome, every
//! reason that failed (with the rule id and the law behind it), the release
//! time for deferred events and the policy version that produced it. The same
//! value is printed by `smsgate check` and embedded in quarantine records
//! (CONTRACT §6), so a regulator sees one format everywhere.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// The three things the gate can do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Approve,
    Defer,
    Reject,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Approve, Outcome::Defer, Outcome::Reject];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approve => "approve",
            Outcome::Defer => "defer",
            Outcome::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

macro_rules! reason_codes {
    ($($variant:ident => $code:literal, $outcome:ident;)*) => {
        /// The reason codes of CONTRACT §7. The set is closed: metrics label
        /// by these strings, so cardinality stays bounded.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ReasonCode { $($variant,)* }

        impl ReasonCode {
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant,)*];

            /// The code as written in the contract (`consent.missing`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(ReasonCode::$variant => $code,)* }
            }

            /// What a failure of this code does to the event.
            pub fn outcome(self) -> Outcome {
                match self { $(ReasonCode::$variant => Outcome::$outcome,)* }
            }

            pub fn parse(s: &str) -> Option<ReasonCode> {
                match s { $($code => Some(ReasonCode::$variant),)* _ => None }
            }
        }
    };
}

reason_codes! {
    Malformed => "malformed", Reject;
    SenderUnknown => "sender.unknown", Reject;
    Duplicate => "duplicate", Reject;
    ConsentMissing => "consent.missing", Reject;
    ConsentRevoked => "consent.revoked", Reject;
    ConsentExpired => "consent.expired", Reject;
    PersonalizationRefused => "targeting.personalization_refused", Reject;
    AudienceMinor => "audience.minor", Reject;
    AudienceStudent => "audience.student", Reject;
    QuietHours => "quiet_hours", Defer;
    FrequencyCap => "frequency_cap", Reject;
    SignatureMissing => "content.signature_missing", Reject;
    SignatureMismatch => "content.signature_mismatch", Reject;
    OptoutMissing => "content.optout_missing", Reject;
    UrlNotAllowed => "content.url_not_allowed", Reject;
    UrlShortener => "content.url_shortener", Reject;
    UrlLookalike => "content.url_lookalike", Reject;
    PhoneNotAllowed => "content.phone_not_allowed", Reject;
    ProhibitedClaim => "content.prohibited_claim", Reject;
    AprMissing => "content.apr_missing", Reject;
    LoanUnlicensed => "content.loan_unlicensed", Reject;
    Impersonation => "content.impersonation", Reject;
    Pii => "content.pii", Reject;
    CategoryMismatch => "content.category_mismatch", Reject;
    Shaft => "content.shaft", Reject;
    TooLong => "content.too_long", Reject;
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One failed rule. `rule` and `citation` are shared with the loaded pack
/// (cheap clones); `detail` is the only per-event text and never holds a full
/// phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub rule: Arc<str>,
    pub citation: Arc<str>,
    pub detail: String,
}

/// The decision for one event (CONTRACT §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Null only when the input was not a JSON object (CONTRACT §10).
    pub message_id: Option<String>,
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    #[serde(serialize_with = "ser_opt_time")]
    pub release_at: Option<DateTime<Utc>>,
    pub policy_version: Arc<str>,
    #[serde(serialize_with = "ser_time")]
    pub decided_at: DateTime<Utc>,
}

impl Decision {
    /// Builds a decision from every failed rule: reject beats defer beats
    /// approve, and `release_at` is kept only for a defer (CONTRACT §10).
    pub fn from_reasons(
        message_id: Option<String>,
        reasons: Vec<Reason>,
        release_at: Option<DateTime<Utc>>,
        policy_version: Arc<str>,
        decided_at: DateTime<Utc>,
    ) -> Decision {
        let outcome = reasons
            .iter()
            .map(|r| r.code.outcome())
            .max()
            .unwrap_or(Outcome::Approve);
        let release_at = if outcome == Outcome::Defer {
            release_at
        } else {
            None
        };
        Decision {
            message_id,
            outcome,
            reasons,
            release_at,
            policy_version,
            decided_at,
        }
    }

    pub fn has(&self, code: ReasonCode) -> bool {
        self.reasons.iter().any(|r| r.code == code)
    }

    /// The decision as one NDJSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, enums and times cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where an input record came from: `topic/partition/offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

impl Source {
    /// `topic/partition/offset`, the `smsgate-source` header, built by hand:
    /// `to_string` through `fmt` took ~1,400 instructions a record (3.6 % of
    /// the decide step, `scripts/bench-instructions`).
    pub fn header_value(&self) -> String {
        let (mut p, mut o) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (p, o) = (p.format(self.partition), o.format(self.offset));
        let mut s = String::with_capacity(self.topic.len() + p.len() + o.len() + 2);
        s.push_str(&self.topic);
        s.push('/');
        s.push_str(p);
        s.push('/');
        s.push_str(o);
        s
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header_value())
    }
}

/// The input as it appears inside a quarantine record: embedded as JSON when
/// it was JSON, else as a (lossy UTF-8) string so nothing is dropped.
#[derive(Debug)]
pub enum EventBody<'a> {
    Json(&'a RawValue),
    Text(String),
}

impl<'a> EventBody<'a> {
    pub fn from_bytes(bytes: &'a [u8]) -> EventBody<'a> {
        match std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
        {
            Some(raw) => EventBody::Json(raw),
            None => EventBody::Text(String::from_utf8_lossy(bytes).into_owned()),
        }
    }
}

impl Serialize for EventBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EventBody::Json(raw) => raw.serialize(s),
            EventBody::Text(text) => s.serialize_str(text),
        }
    }
}

/// The quarantine record: the decision plus the input and where it came from.
#[derive(Debug)]
pub struct QuarantineRecord<'a> {
    pub decision: &'a Decision,
    pub event: EventBody<'a>,
    pub source: &'a Source,
}

// Written field by field rather than with `#[serde(flatten)]`: flatten goes
// through serde's map buffering and was a visible cost on the hot path.
impl Serialize for QuarantineRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let d = self.decision;
        let mut st = s.serialize_struct("QuarantineRecord", 8)?;
        st.serialize_field("message_id", &d.message_id)?;
        st.serialize_field("outcome", &d.outcome)?;
        st.serialize_field("reasons", &d.reasons)?;
        st.serialize_field("release_at", &d.release_at.as_ref().map(format_time))?;
        st.serialize_field("policy_version", &d.policy_version)?;
        st.serialize_field("decided_at", &format_time(&d.decided_at))?;
        st.serialize_field("event", &self.event)?;
        st.serialize_field("source", self.source)?;
        st.end()
    }
}

impl QuarantineRecord<'_> {
    pub fn to_json(&self) -> String {
        String::from_utf8(self.to_json_bytes()).unwrap_or_default()
    }

    /// The record as JSON bytes, in one buffer sized for it up front.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let event_len = match &self.event {
            EventBody::Json(raw) => raw.get().len(),
            EventBody::Text(t) => t.len() + 16,
        };
        let mut buf = Vec::with_capacity(event_len + 256 + 192 * self.decision.reasons.len());
        // Serializing strings, enums, numbers and raw JSON cannot fail.
        let _ = serde_json::to_writer(&mut buf, self);
        buf
    }
}

/// RFC 3339 in UTC with a `Z`, seconds precision unless sub-seconds exist.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: ReasonCode) -> Reason {
        Reason {
            code,
            rule: "r".into(),
            citation: "c".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn the_source_header_is_topic_partition_offset_like_display() {
        for (partition, offset) in [(0, 0), (3, 41), (i32::MAX, i64::MAX)] {
            let s = Source {
                topic: "sms.outbound".into(),
                partition,
                offset,
            };
            assert_eq!(
                s.header_value(),
                format!("sms.outbound/{partition}/{offset}")
            );
            assert_eq!(s.header_value(), s.to_string());
        }
    }

    #[test]
    fn reject_beats_defer_and_drops_release_at() {
        let now = Utc::now();
        let d = Decision::from_reasons(
            Some("m".into()),
            vec![
                reason(ReasonCode::QuietHours),
                reason(ReasonCode::Duplicate),
            ],
            Some(now),
            "v".into(),
            now,
        );
        assert_eq!(d.outcome, Outcome::Reject);
        assert_eq!(d.release_at, None);
    }

    #[test]
    fn codes_round_trip() {
        for code in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(ReasonCode::ALL.len(), 26);
        // Metrics index per-code counters by the discriminant.
        for (i, code) in ReasonCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i);
        }
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i);
        }
    }

    #[test]
    fn quarantine_record_embeds_json_and_text() {
        let now = Utc::now();
        let d = Decision::from_reasons(None, vec![], None, "v".into(), now);
        let src = Source {
            topic: "t".into(),
            partition: 1,
            offset: 7,
        };
        let rec = QuarantineRecord {
            decision: &d,
            event: EventBody::from_bytes(br#"{"a":1}"#),
            source: &src,
        };
        let v: serde_json::Value = serde_json::from_str(&rec.to_json()).unwrap();
        assert_eq!(v["event"]["a"], 1);
        assert_eq!(v["source"]["offset"], 7);
        let rec = QuarantineRecord {
            decision: &d,
            event: EventBody::from_bytes(b"not json \xff"),
            source: &src,
        };
        let v: serde_json::Value = serde_json::from_str(&rec.to_json()).unwrap();
        assert!(v["event"].as_str().unwrap().starts_with("not json"));
    }

    #[test]
    fn quarantine_record_carries_every_decision_field_as_check_prints_it() {
        let now = Utc::now();
        let d = Decision::from_reasons(
            Some("m-9".into()),
            vec![reason(ReasonCode::QuietHours)],
            Some(now),
            "sha256:v".into(),
            now,
        );
        let src = Source {
            topic: "t".into(),
            partition: 0,
            offset: 1,
        };
        let rec = QuarantineRecord {
            decision: &d,
            event: EventBody::from_bytes(b"{}"),
            source: &src,
        };
        let mut v: serde_json::Value = serde_json::from_slice(&rec.to_json_bytes()).unwrap();
        let obj = v.as_object_mut().unwrap();
        assert!(obj.remove("event").is_some() && obj.remove("source").is_some());
        let alone: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
        assert_eq!(v, alone);
    }
}
