//! The compact consent table decides exactly like a naive store keeping
//! every counted event (what `MemoryState` did before it used the table): for
//! random histories (ties, late arrivals, expiries, `*` senders, every
//! scope) the policy's consent verdict is the same for every sender,
//! category, targeting and decision time.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use proptest::prelude::*;
use smsgate::contract::consent::ConsentFact;
use smsgate::contract::consent::{ConsentAction, ConsentEvent, ConsentScope};
use smsgate::contract::event::{Category, OutboundSms, Recipient};
use smsgate::policy::consent::evaluate;
use smsgate::policy::view::ConsentView;
use smsgate::state::{ConsentTable, MemoryState};

/// Every counted event per recipient, as received: the reference.
#[derive(Default)]
struct Naive {
    events: Vec<ConsentEvent>,
    ignored_without_evidence: u64,
}

impl Naive {
    fn apply(&mut self, e: ConsentEvent) {
        if e.counts() {
            self.events.push(e);
        } else {
            self.ignored_without_evidence += 1;
        }
    }
}

impl ConsentView for Naive {
    fn for_each_consent(&self, to: &str, f: &mut dyn FnMut(ConsentFact<'_>)) {
        for e in self.events.iter().filter(|e| e.to == to) {
            f(e.fact());
        }
    }
}

const RECIPIENTS: [&str; 2] = ["+8613812345678", "+12125551234"];
const SENDERS: [&str; 3] = ["a", "b", "*"];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()
}

/// Times on a coarse grid (so ties are frequent), sometimes with
/// milliseconds.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..12, prop_oneof![Just(0i64), 0i64..1000])
        .prop_map(|(h, ms)| base() + Duration::hours(h) + Duration::milliseconds(ms))
}

fn consent_event() -> impl Strategy<Value = ConsentEvent> {
    (
        0..RECIPIENTS.len(),
        prop_oneof![Just(ConsentAction::OptIn), Just(ConsentAction::OptOut)],
        prop_oneof![
            Just(ConsentScope::Marketing),
            Just(ConsentScope::All),
            Just(ConsentScope::Personalization)
        ],
        0..SENDERS.len(),
        time(),
        prop::bool::weighted(0.85),
        prop::option::of(time()),
    )
        .prop_map(
            |(r, action, scope, s, at, evidence, expires_at)| ConsentEvent {
                to: RECIPIENTS[r].to_string(),
                action,
                scope,
                sender: SENDERS[s].to_string(),
                at,
                source: "test".into(),
                evidence_id: evidence.then(|| "ev".to_string()),
                expires_at,
            },
        )
}

fn outbound(to: &str, sender: &str, category: Category, personalized: bool) -> OutboundSms {
    OutboundSms {
        message_id: "m-1".into(),
        created_at: FixedOffset::east_opt(0)
            .unwrap()
            .from_utc_datetime(&base().naive_utc()),
        to: to.into(),
        sender: sender.into(),
        category,
        body: "hello".into(),
        campaign_id: None,
        subject: None,
        template_id: None,
        recipient: Recipient::default(),
        personalized,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn compact_table_gives_the_same_consent_verdicts(
        history in prop::collection::vec(consent_event(), 0..14),
        now in time(),
    ) {
        let mut naive = Naive::default();
        let mut table = ConsentTable::new();
        let mut memory = MemoryState::new();
        let mut from_bytes = ConsentTable::new();
        for e in &history {
            naive.apply(e.clone());
            table.apply(e);
            memory.apply_consent(e.clone());
            from_bytes.apply_bytes(e.to_json().as_bytes()).unwrap();
        }
        prop_assert_eq!(naive.ignored_without_evidence, from_bytes.ignored_without_evidence());
        prop_assert_eq!(naive.ignored_without_evidence, table.ignored_without_evidence());
        prop_assert_eq!(naive.ignored_without_evidence, memory.ignored_without_evidence);
        for to in RECIPIENTS {
            for sender in ["a", "b", "c"] {
                for category in [Category::Marketing, Category::Notification, Category::Otp] {
                    for personalized in [false, true] {
                        let ev = outbound(to, sender, category, personalized);
                        let expected = evaluate(&ev, &naive, now);
                        prop_assert_eq!(
                            &expected,
                            &evaluate(&ev, &table, now),
                            "{} {} {:?} personalized={}", to, sender, category, personalized
                        );
                        prop_assert_eq!(&expected, &evaluate(&ev, &memory, now));
                        prop_assert_eq!(&expected, &evaluate(&ev, &from_bytes, now));
                    }
                }
            }
        }
    }

    #[test]
    fn arrival_order_does_not_matter(
        history in prop::collection::vec(consent_event(), 0..14),
        now in time(),
    ) {
        let mut forward = ConsentTable::new();
        let mut backward = ConsentTable::new();
        for e in &history {
            forward.apply(e);
        }
        for e in history.iter().rev() {
            backward.apply(e);
        }
        prop_assert_eq!(forward.facts(), backward.facts());
        for to in RECIPIENTS {
            for sender in ["a", "b"] {
                for category in [Category::Marketing, Category::Notification] {
                    let ev = outbound(to, sender, category, true);
                    prop_assert_eq!(evaluate(&ev, &forward, now), evaluate(&ev, &backward, now));
                }
            }
        }
    }
}

#[test]
fn an_opt_out_after_an_opt_in_revokes_marketing_only_for_that_sender() {
    let mut table = ConsentTable::new();
    for json in [
        r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"*","at":"2026-10-01T10:00:00Z","source":"web-form","evidence_id":"ev-1"}"#,
        r#"{"to":"+8613812345678","action":"opt_out","scope":"marketing","sender":"a","at":"2026-10-02T10:00:00Z","source":"reply:TD"}"#,
    ] {
        table.apply_bytes(json.as_bytes()).unwrap();
    }
    let now = base() + Duration::days(3);
    let to_a = evaluate(
        &outbound("+8613812345678", "a", Category::Marketing, false),
        &table,
        now,
    );
    let to_b = evaluate(
        &outbound("+8613812345678", "b", Category::Marketing, false),
        &table,
        now,
    );
    assert_eq!(to_a.consent.map(|c| c.0.as_str()), Some("consent.revoked"));
    assert_eq!(to_b.consent, None);
}

#[test]
fn apply_bytes_accepts_and_rejects_exactly_what_the_consent_parser_does() {
    for json in [
        r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"a","at":"2026-10-01T10:00:00Z","source":"x","evidence_id":"e","expires_at":null}"#,
        r#"{"to":"+8613812345678","action":"opt_out","scope":"all","sender":"*","at":"2026-10-01T10:00:00+08:00","source":"reply:TD","extra":1}"#,
        r#"{"to":"+86\u00313812345678","action":"opt_out","scope":"all","sender":"\u0061","at":"2026-10-01T10:00:00Z","source":"x"}"#,
        r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"a","at":"2026-10-01T10:00:00Z","source":"x","evidence_id":""}"#,
        r#"{"to":"13812345678","action":"opt_out","scope":"all","sender":"*","at":"2026-10-01T10:00:00Z","source":"x"}"#,
        r#"{"to":"+8613812345678","action":"opt_out","scope":"all","sender":"","at":"2026-10-01T10:00:00Z","source":"x"}"#,
        r#"{"to":"+8613812345678","action":"opt_out","scope":"all","sender":"*","at":"2026-10-01T10:00:00Z"}"#,
        r#"{"to":"+8613812345678","action":"maybe","scope":"all","sender":"*","at":"2026-10-01T10:00:00Z","source":"x"}"#,
        r#"{"to":"+8613812345678","action":"opt_out","scope":"all","sender":"*","at":"yesterday","source":"x"}"#,
        "not json",
    ] {
        let parsed = ConsentEvent::parse(json.as_bytes());
        let mut table = ConsentTable::new();
        let applied = table.apply_bytes(json.as_bytes());
        assert_eq!(parsed.is_ok(), applied.is_ok(), "{json}");
        if let Ok(e) = parsed {
            assert_eq!(e.counts(), table.recipients() == 1, "{json}");
        }
    }
}
