//! Where a decided record goes and what it looks like there (CONTRACT §6).
//!
//! - approve → `topics.approved`: the input bytes unchanged;
//! - reject → `topics.quarantine`: the quarantine record JSON;
//! - defer → `topics.deferred`: the input bytes unchanged plus the
//!   `smsgate-release-at` header (RFC 3339 UTC).
//!
//! Every output carries `smsgate-outcome`, `smsgate-policy` and
//! `smsgate-source`. The key is always the input key (set by the caller).
//! Pure: no Kafka types, so it is tested alone.

use std::borrow::Cow;

use crate::config::Topics;
use crate::contract::decision::{
    Decision, EventBody, Outcome, QuarantineRecord, Source, format_time,
};
use crate::contract::event::MAX_EVENT_BYTES;

pub const HEADER_OUTCOME: &str = "smsgate-outcome";
pub const HEADER_POLICY: &str = "smsgate-policy";
pub const HEADER_SOURCE: &str = "smsgate-source";
pub const HEADER_RELEASE_AT: &str = "smsgate-release-at";

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output<'a> {
    pub topic: &'a str,
    pub payload: Cow<'a, [u8]>,
    pub headers: Vec<(&'static str, Cow<'a, str>)>,
}

/// Builds the output record for `decision` about the input `value` read at `source`.
pub fn route<'a>(
    topics: &'a Topics,
    decision: &'a Decision,
    value: &'a [u8],
    source: &Source,
) -> Output<'a> {
    let mut headers = Vec::with_capacity(4);
    headers.push((HEADER_OUTCOME, Cow::Borrowed(decision.outcome.as_str())));
    headers.push((HEADER_POLICY, Cow::Borrowed(&*decision.policy_version)));
    headers.push((HEADER_SOURCE, Cow::Owned(source.header_value())));
    match decision.outcome {
        Outcome::Approve => Output {
            topic: &topics.approved,
            payload: Cow::Borrowed(value),
            headers,
        },
        Outcome::Defer => {
            // A defer always carries release_at; should one arrive without
            // it, releasing at once is the safe reading (the release path
            // decides it again).
            let at = decision.release_at.unwrap_or(decision.decided_at);
            headers.push((HEADER_RELEASE_AT, Cow::Owned(format_time(&at))));
            Output {
                topic: &topics.deferred,
                payload: Cow::Borrowed(value),
                headers,
            }
        }
        Outcome::Reject => {
            let record = QuarantineRecord {
                decision,
                event: embedded(value),
                source,
            };
            Output {
                topic: &topics.quarantine,
                payload: Cow::Owned(record.to_json_bytes()),
                headers,
            }
        }
    }
}

/// The input as embedded in a quarantine record. Values over the event size
/// limit (already `malformed`) are cut, so a huge poison record cannot make
/// an unproducible quarantine record and stall its partition.
fn embedded(value: &[u8]) -> EventBody<'_> {
    if value.len() <= MAX_EVENT_BYTES {
        return EventBody::from_bytes(value);
    }
    let head = String::from_utf8_lossy(&value[..MAX_EVENT_BYTES]);
    EventBody::Text(format!("{head}… [cut: {} bytes in total]", value.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::decision::{Reason, ReasonCode};
    use chrono::{TimeZone, Utc};

    fn topics() -> Topics {
        Topics {
            outbound: "sms.outbound".into(),
            consent: "sms.consent".into(),
            inbound: "sms.inbound".into(),
            approved: "sms.approved".into(),
            quarantine: "sms.quarantine".into(),
            deferred: "sms.deferred".into(),
            changelog: None,
        }
    }

    fn source() -> Source {
        Source {
            topic: "sms.outbound".into(),
            partition: 2,
            offset: 41,
        }
    }

    fn decision(codes: &[ReasonCode], release_at: Option<chrono::DateTime<Utc>>) -> Decision {
        let reasons = codes
            .iter()
            .map(|c| Reason {
                code: *c,
                rule: "r".into(),
                citation: "c".into(),
                detail: "d".into(),
            })
            .collect();
        Decision::from_reasons(
            Some("m-1".into()),
            reasons,
            release_at,
            "sha256:v1".into(),
            Utc::now(),
        )
    }

    fn header<'h>(o: &'h Output<'_>, name: &str) -> Option<&'h str> {
        o.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_ref())
    }

    #[test]
    fn approved_value_is_the_input_bytes_with_contract_headers() {
        let t = topics();
        let value = "{\"message_id\":\"m-1\",  \"body\":\"【惠农】…\"}".as_bytes();
        let d = decision(&[], None);
        let o = route(&t, &d, value, &source());
        assert_eq!(o.topic, "sms.approved");
        assert_eq!(&*o.payload, value);
        assert!(matches!(o.payload, Cow::Borrowed(_)));
        assert_eq!(header(&o, HEADER_OUTCOME), Some("approve"));
        assert_eq!(header(&o, HEADER_POLICY), Some("sha256:v1"));
        assert_eq!(header(&o, HEADER_SOURCE), Some("sms.outbound/2/41"));
    }

    #[test]
    fn rejected_goes_to_quarantine_as_decision_plus_event_plus_source() {
        let t = topics();
        let d = decision(&[ReasonCode::ConsentMissing], None);
        let o = route(&t, &d, br#"{"message_id":"m-1"}"#, &source());
        assert_eq!(o.topic, "sms.quarantine");
        let v: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
        assert_eq!(v["outcome"], "reject");
        assert_eq!(v["reasons"][0]["code"], "consent.missing");
        assert_eq!(v["event"]["message_id"], "m-1");
        assert_eq!(v["source"]["partition"], 2);
        assert_eq!(v["source"]["offset"], 41);
        assert_eq!(header(&o, HEADER_OUTCOME), Some("reject"));
    }

    #[test]
    fn malformed_bytes_are_kept_as_a_string_in_quarantine() {
        let t = topics();
        let d = decision(&[ReasonCode::Malformed], None);
        let o = route(&t, &d, b"\xffnot json", &source());
        let v: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
        assert!(v["event"].as_str().unwrap().ends_with("not json"));
    }

    #[test]
    fn deferred_keeps_the_bytes_and_carries_release_at_in_utc() {
        let t = topics();
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
        let d = decision(&[ReasonCode::QuietHours], Some(at));
        let o = route(&t, &d, b"{}", &source());
        assert_eq!(o.topic, "sms.deferred");
        assert_eq!(&*o.payload, b"{}");
        assert_eq!(header(&o, HEADER_RELEASE_AT), Some("2026-11-29T00:00:00Z"));
        assert_eq!(header(&o, HEADER_OUTCOME), Some("defer"));
    }

    #[test]
    fn an_oversized_value_is_cut_in_quarantine_so_it_stays_producible() {
        let t = topics();
        let value = vec![b'x'; 5 * 1024 * 1024];
        let d = decision(&[ReasonCode::Malformed], None);
        let o = route(&t, &d, &value, &source());
        assert!(o.payload.len() < 2 * MAX_EVENT_BYTES);
        let v: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
        assert!(
            v["event"]
                .as_str()
                .unwrap()
                .ends_with("[cut: 5242880 bytes in total]")
        );
    }
}
