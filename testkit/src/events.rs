//! Test events with known outcomes (CONTRACT §2, §3, §7).
//!
//! "Clean" events must pass the *full* shipped policy at any wall-clock time:
//! `notification` and `otp` from registered senders, plain non-promotional
//! text with the sender's own signature, no links, phone numbers, bank or
//! lending words, one event per recipient. Consent rejections are compliant
//! `marketing` (signature, opt-out text) that fails only on consent; quiet
//! hours may add `quiet_hours` to such a rejection but cannot flip it (reject
//! beats defer). Approved marketing goes to a recipient whose
//! `recipient.timezone` makes it early afternoon there right now.

use chrono::{Duration, SecondsFormat, Timelike, Utc};
use serde_json::{Value, json};

use crate::kafka::Record;

/// What the gate must decide for an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Approve,
    /// Rejected with `code`; any other listed code must be in `also`.
    Reject {
        code: &'static str,
        also: &'static [&'static str],
    },
}

/// How the quarantine record's `event` field must look.
#[derive(Debug, Clone, PartialEq)]
pub enum EventForm {
    /// The input parsed as JSON.
    Json(Value),
    /// A string (the input was not JSON).
    Text,
    /// Not checked (oversized input).
    Unchecked,
}

/// One outbound input and what must come of it.
#[derive(Debug, Clone)]
pub struct Case {
    pub record: Record,
    pub expect: Expect,
    /// A short label for figures ("clean", "consent.revoked", "malformed:utf8", …).
    pub kind: &'static str,
    /// The `message_id` the decision must carry (`None`: null).
    pub message_id: Option<String>,
    pub event: EventForm,
}

/// Consent records to load first, and the outbound inputs.
pub struct Workload {
    pub consent: Vec<Record>,
    pub outbound: Vec<Case>,
}

const MARKETING_ALSO: &[&str] = &["quiet_hours"];

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A distinct Chinese mobile number per index.
pub fn cn_number(i: usize) -> String {
    format!("+86139{:08}", i % 100_000_000)
}

/// A distinct US number (New York area code) per index.
pub fn us_number(i: usize) -> String {
    format!("+1212{:07}", i % 10_000_000)
}

fn record(to: &str, value: &Value) -> Record {
    Record {
        key: Some(to.as_bytes().to_vec()),
        value: serde_json::to_vec(value).unwrap(),
    }
}

fn case(to: &str, value: Value, expect: Expect, kind: &'static str) -> Case {
    Case {
        record: record(to, &value),
        expect,
        kind,
        message_id: value["message_id"].as_str().map(str::to_string),
        event: EventForm::Json(value),
    }
}

fn event(id: String, to: &str, sender: &str, category: &str, body: &str) -> Value {
    json!({
        "message_id": id,
        "created_at": rfc3339(Utc::now()),
        "to": to,
        "sender": sender,
        "category": category,
        "body": body,
        "template_id": format!("tpl-{category}"),
    })
}

/// A clean event: approved by the full policy at any time of day.
/// `n` makes recipient and message id unique within `tag`.
pub fn clean(tag: &str, n: usize) -> Case {
    let order = 1000 + n % 9000;
    let code = 100_000 + (n * 7919) % 900_000;
    let id = format!("{tag}-c{n}");
    let (to, value) = match n % 5 {
        0 => {
            let to = cn_number(n);
            let v = event(
                id,
                &to,
                "huinong-credit",
                "notification",
                "【惠农信贷】您的还款已到账，感谢使用。",
            );
            (to, v)
        }
        1 => {
            let to = cn_number(n);
            let body = format!("【金云商城】您的订单{order}已发货，请注意查收。");
            (
                to.clone(),
                event(id, &to, "jinyun-mall", "notification", &body),
            )
        }
        2 => {
            let to = cn_number(n);
            let body = format!("【招商银行】您的验证码为{code}，5分钟内有效，请勿泄露。");
            (to.clone(), event(id, &to, "zhaoshang-bank", "otp", &body))
        }
        3 => {
            let to = us_number(n);
            let body = format!("Sunny Shop: your order {order} has shipped.");
            (
                to.clone(),
                event(id, &to, "sunny-shop", "notification", &body),
            )
        }
        _ => {
            let to = us_number(n);
            let body = format!("Acme Lending: your verification code is {code}.");
            (to.clone(), event(id, &to, "acme-lending", "otp", &body))
        }
    };
    case(&to, value, Expect::Approve, "clean")
}

/// Only clean events, `n` of them.
pub fn clean_stream(tag: &str, n: usize) -> Vec<Case> {
    (0..n).map(|i| clean(tag, i)).collect()
}

fn consent(to: &str, action: &str, scope: &str, sender: &str, at: chrono::DateTime<Utc>) -> Value {
    let mut v = json!({
        "to": to, "action": action, "scope": scope, "sender": sender,
        "at": rfc3339(at), "source": "web-form",
    });
    if action == "opt_in" {
        v["evidence_id"] = json!(format!("ev-{to}-{scope}"));
    }
    v
}

/// A valid consent record for a recipient no test event uses; see
/// [`crate::kafka::TestProducer::send_consent`].
pub fn consent_sentinel(partition: i32) -> Record {
    let to = format!("+1555000{:04}", partition);
    record(
        &to,
        &consent(&to, "opt_out", "marketing", "*", Utc::now() - days(1)),
    )
}

/// Compliant marketing (signature, opt-out text) to `to`.
fn marketing(id: String, to: &str, cn: bool) -> Value {
    if cn {
        event(
            id,
            to,
            "jinyun-mall",
            "marketing",
            "【金云商城】冬季新品已上架，欢迎选购。回T退订",
        )
    } else {
        event(
            id,
            to,
            "sunny-shop",
            "marketing",
            "Sunny Shop: new winter boots are in store this week. Reply STOP to opt out.",
        )
    }
}

/// An IANA zone in which it is early afternoon now, so that marketing is
/// outside every quiet-hour window for hours to come.
pub fn afternoon_zone() -> String {
    let offset = 13 - Utc::now().hour() as i32;
    let offset = if offset > 12 { offset - 24 } else { offset };
    match offset {
        0 => "Etc/UTC".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// The full mix: clean events, approved marketing with consent, and
/// rejections for every reason code the pipeline implements, including
/// malformed inputs of every kind. About 70 % are clean.
pub fn mix(tag: &str, n: usize) -> Workload {
    let now = Utc::now();
    let zone = afternoon_zone();
    let mut consent_records = Vec::new();
    let mut outbound = Vec::new();
    let mut rotation = 0usize;
    for i in 0..n {
        // Recipients: clean ones use i; the others an offset range, all distinct.
        let cn = i % 2 == 0;
        let special = 50_000_000 + i;
        let to = if cn {
            cn_number(special)
        } else {
            us_number(special)
        };
        let (sender, id) = (
            if cn { "jinyun-mall" } else { "sunny-shop" },
            format!("{tag}-s{i}"),
        );
        let reject = |code| Expect::Reject { code, also: &[] };
        let marketing_reject = |code| Expect::Reject {
            code,
            also: MARKETING_ALSO,
        };
        match i % 20 {
            0..=13 => outbound.push(clean(tag, i)),
            14 => {
                let to = cn_number(special);
                consent_records.push(record(
                    &to,
                    &consent(&to, "opt_in", "marketing", "jinyun-mall", now - days(30)),
                ));
                let mut v = marketing(id, &to, true);
                v["recipient"] = json!({"timezone": zone});
                outbound.push(case(&to, v, Expect::Approve, "marketing"));
            }
            15 => outbound.push(case(
                &to,
                marketing(id, &to, cn),
                marketing_reject("consent.missing"),
                "consent.missing",
            )),
            16 => {
                consent_records.push(record(
                    &to,
                    &consent(&to, "opt_in", "marketing", sender, now - days(30)),
                ));
                consent_records.push(record(
                    &to,
                    &consent(&to, "opt_out", "marketing", sender, now - days(10)),
                ));
                outbound.push(case(
                    &to,
                    marketing(id, &to, cn),
                    marketing_reject("consent.revoked"),
                    "consent.revoked",
                ));
            }
            17 => {
                let mut c = consent(&to, "opt_in", "marketing", sender, now - days(400));
                c["expires_at"] = json!(rfc3339(now - days(35)));
                consent_records.push(record(&to, &c));
                outbound.push(case(
                    &to,
                    marketing(id, &to, cn),
                    marketing_reject("consent.expired"),
                    "consent.expired",
                ));
            }
            18 => {
                consent_records.push(record(
                    &to,
                    &consent(&to, "opt_out", "personalization", "*", now - days(5)),
                ));
                let mut v = clean(tag, i).event_json();
                v["message_id"] = json!(id);
                v["to"] = json!(to);
                v["targeting"] = json!({"personalized": true});
                outbound.push(case(
                    &to,
                    v,
                    reject("targeting.personalization_refused"),
                    "targeting.personalization_refused",
                ));
            }
            _ => {
                outbound.extend(special_case(tag, i, rotation, &to));
                rotation += 1;
            }
        }
    }
    Workload {
        consent: consent_records,
        outbound,
    }
}

/// Clean events with marketing to a few (recipient, subject) pairs mixed
/// in, so that frequency caps are at work throughout a stream: `pairs`
/// pairs (two subjects, i.e. campaigns, per recipient; each recipient has
/// an evidenced jinyun-mall opt-in in `consent`), `per_pair` texts each,
/// spread evenly over `n` inputs so that each pair's texts span the whole
/// stream (and whatever crashes it). In stream order the first `cap` texts
/// of a pair are approved and the others rejected `frequency_cap`; that
/// holds as long as the inputs of one recipient land in stream order
/// ([`crate::verify::assert_key_order`]).
pub fn capped_stream(tag: &str, n: usize, pairs: usize, per_pair: usize, cap: usize) -> Workload {
    let texts = pairs * per_pair;
    assert!(texts > 0 && texts <= n, "{texts} texts in {n} inputs");
    let (now, zone) = (Utc::now(), afternoon_zone());
    // Far from the numbers of clean events (cn_number(i), i < n).
    let recipient = |pair: usize| cn_number(80_000_000 + pair / 2);
    let consent_records = (0..pairs)
        .step_by(2)
        .map(|pair| {
            let to = recipient(pair);
            record(
                &to,
                &consent(&to, "opt_in", "marketing", "jinyun-mall", now - days(30)),
            )
        })
        .collect();
    let every = n / texts;
    let mut sent = vec![0usize; pairs];
    let outbound = (0..n)
        .map(|i| {
            if i % every != 0 || i / every >= texts {
                return clean(tag, i);
            }
            let pair = (i / every) % pairs;
            let nth = sent[pair];
            sent[pair] += 1;
            let to = recipient(pair);
            let mut v = marketing(format!("{tag}-m{pair}-{nth}"), &to, true);
            v["recipient"] = json!({"timezone": zone});
            // The subject of the cap (CONTRACT §2: campaign_id, else sender).
            v["campaign_id"] = json!(format!("cmp-{}", pair % 2));
            if nth < cap {
                case(&to, v, Expect::Approve, "marketing")
            } else {
                let over = Expect::Reject {
                    code: "frequency_cap",
                    also: MARKETING_ALSO,
                };
                case(&to, v, over, "frequency_cap")
            }
        })
        .collect();
    Workload {
        consent: consent_records,
        outbound,
    }
}

impl Case {
    fn event_json(&self) -> Value {
        match &self.event {
            EventForm::Json(v) => v.clone(),
            _ => Value::Null,
        }
    }
}

fn raw(
    to: &str,
    bytes: Vec<u8>,
    kind: &'static str,
    message_id: Option<&str>,
    event: EventForm,
) -> Case {
    Case {
        record: Record {
            key: Some(to.as_bytes().to_vec()),
            value: bytes,
        },
        expect: Expect::Reject {
            code: "malformed",
            also: &[],
        },
        kind,
        message_id: message_id.map(str::to_string),
        event,
    }
}

/// The rotating rare cases: unknown sender, a duplicate pair, and every kind
/// of malformed input.
fn special_case(tag: &str, i: usize, rotation: usize, to: &str) -> Vec<Case> {
    let id = format!("{tag}-s{i}");
    let reject = |code| Expect::Reject { code, also: &[] };
    match rotation % 9 {
        0 => {
            let mut v = clean(tag, i).event_json();
            v["sender"] = json!("no-such-sender");
            v["message_id"] = json!(id);
            v["to"] = json!(to);
            vec![case(to, v, reject("sender.unknown"), "sender.unknown")]
        }
        1 => {
            // The same message twice: the first is approved, the second a duplicate.
            let first = clean(tag, i);
            let mut second = first.clone();
            second.expect = reject("duplicate");
            second.kind = "duplicate";
            vec![first, second]
        }
        2 => {
            let mut bytes = br#"{"message_id":"bad-utf8-"#.to_vec();
            bytes.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
            vec![raw(to, bytes, "malformed:utf8", None, EventForm::Text)]
        }
        3 => vec![raw(
            to,
            b"{\"message_id\": \"x\", oops".to_vec(),
            "malformed:json",
            None,
            EventForm::Text,
        )],
        4 => {
            let v = json!({"message_id": id, "to": to, "category": "otp"});
            vec![raw(
                to,
                serde_json::to_vec(&v).unwrap(),
                "malformed:missing",
                Some(&id),
                EventForm::Json(v),
            )]
        }
        5 => {
            let mut v = clean(tag, i).event_json();
            v["message_id"] = json!(id);
            v["to"] = json!("0012345");
            v["category"] = json!(7);
            v["created_at"] = json!("yesterday");
            vec![raw(
                to,
                serde_json::to_vec(&v).unwrap(),
                "malformed:types",
                Some(&id),
                EventForm::Json(v),
            )]
        }
        6 => {
            let mut v = clean(tag, i).event_json();
            v["message_id"] = json!(id);
            v["body"] = json!("x".repeat(70 * 1024));
            vec![raw(
                to,
                serde_json::to_vec(&v).unwrap(),
                "malformed:oversized",
                None,
                EventForm::Unchecked,
            )]
        }
        7 => vec![raw(
            to,
            b"[1,2,3]".to_vec(),
            "malformed:not-object",
            None,
            EventForm::Json(json!([1, 2, 3])),
        )],
        _ => vec![raw(
            to,
            Vec::new(),
            "malformed:empty",
            None,
            EventForm::Text,
        )],
    }
}
