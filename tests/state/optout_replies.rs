//! Opt-out replies (CONTRACT §4): every keyword of each jurisdiction, the
//! normalizations, the near misses, sender resolution, and the loop closing
//! through the consent table into a rejected marketing decision.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use smsgate::contract::consent::{ConsentAction, ConsentScope};
use smsgate::contract::event::{Category, OutboundSms, Recipient};
use smsgate::contract::reply::InboundReply;
use smsgate::policy::Registry;
use smsgate::policy::consent::evaluate;
use smsgate::policy::optout::{keyword, opt_out, optout_latency};
use smsgate::state::ConsentTable;

const CN: &str = "+8613812345678";
const US: &str = "+12125551234";
const UK: &str = "+447700900123";

fn registry() -> Registry {
    Registry::parse(
        r#"
[senders.huinong-credit]
brand = "惠农信贷"
numbers = ["106900001234", "95500"]

[senders.acme]
brand = "ACME"
numbers = ["12025550100"]
"#,
    )
    .unwrap()
}

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap()
}

fn reply(from: &str, to: &str, sender: Option<&str>, body: &str) -> InboundReply {
    InboundReply {
        from: from.into(),
        to: to.into(),
        sender: sender.map(String::from),
        body: body.into(),
        received_at: received(),
    }
}

#[test]
fn every_cn_keyword_opts_out_of_that_senders_marketing() {
    for kw in ["TD", "T", "N", "R", "退订", "取消"] {
        let e = opt_out(&reply(CN, "106900001234", None, kw), &registry())
            .unwrap_or_else(|| panic!("{kw} should opt out"));
        assert_eq!(e.to, CN);
        assert_eq!(e.action, ConsentAction::OptOut);
        assert_eq!(e.scope, ConsentScope::Marketing, "{kw}");
        assert_eq!(e.sender, "huinong-credit", "{kw}");
        assert_eq!(e.source, format!("reply:{kw}"));
        assert_eq!(e.at, received());
        assert!(e.counts());
    }
}

#[test]
fn every_us_keyword_opts_out_of_that_senders_marketing() {
    for kw in [
        "STOP",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "OPT OUT",
    ] {
        let e = opt_out(&reply(US, "12025550100", None, kw), &registry())
            .unwrap_or_else(|| panic!("{kw} should opt out"));
        assert_eq!(e.scope, ConsentScope::Marketing, "{kw}");
        assert_eq!(e.sender, "acme", "{kw}");
        assert_eq!(e.source, format!("reply:{kw}"));
    }
}

#[test]
fn stopall_and_tuiding_quanbu_withdraw_everything_from_everyone() {
    for (from, body, canonical) in [
        (US, "STOPALL", "STOPALL"),
        (US, "stop all", "STOPALL"),
        (CN, "退订全部", "退订全部"),
    ] {
        let e = opt_out(&reply(from, "12025550100", Some("acme"), body), &registry()).unwrap();
        assert_eq!(
            (e.scope, e.sender.as_str()),
            (ConsentScope::All, "*"),
            "{body}"
        );
        assert_eq!(e.source, format!("reply:{canonical}"));
    }
}

#[test]
fn keywords_are_normalized_case_folded_and_may_be_followed_by_words() {
    for (from, body, expected) in [
        (US, "stop", "STOP"),
        (US, "  Stop  ", "STOP"),
        (US, "STOP please", "STOP"),
        (US, "Stop!", "STOP"),
        (US, "ＳＴＯＰ", "STOP"),
        (US, "opt   out now", "OPT OUT"),
        (US, "Unsubscribe.", "UNSUBSCRIBE"),
        (CN, "td", "TD"),
        (CN, "ＴＤ", "TD"),
        (CN, "T 谢谢", "T"),
        (CN, "退订谢谢", "退订"),
        (CN, "退订，谢谢", "退订"),
        (CN, "取消订阅", "取消"),
        (CN, "TD退订", "TD"),
        (CN, "\u{3000}退订\u{3000}", "退订"),
    ] {
        assert_eq!(keyword(body, from).map(|k| k.0), Some(expected), "{body:?}");
    }
}

#[test]
fn near_misses_are_not_opt_outs() {
    for (from, body) in [
        (US, "stopwatch"),
        (US, "Please stop"), // the keyword must come first
        (US, "ending soon?"),
        (US, "Cancellation policy?"),
        (US, "quite nice"),
        (US, "hello"),
        (US, ""),
        (CN, "TD银行"), // TD Bank: a name, not a keyword
        (CN, "Thanks"),
        (CN, "No"),
        (CN, "Rate?"),
        (CN, "好的"),
        (CN, "不要退订"), // does not start with the keyword
    ] {
        assert_eq!(keyword(body, from), None, "{body:?}");
    }
}

#[test]
fn jurisdiction_picks_the_list() {
    // A Chinese keyword from a US number and the reverse are not opt-outs…
    assert_eq!(keyword("退订", US), None);
    assert_eq!(keyword("STOP", CN), None);
    // …but another country gets both lists.
    assert_eq!(keyword("退订", UK).map(|k| k.0), Some("退订"));
    assert_eq!(keyword("STOP", UK).map(|k| k.0), Some("STOP"));
}

#[test]
fn sender_comes_from_the_reply_or_the_registry_numbers() {
    let r = registry();
    let named = opt_out(&reply(CN, "999", Some("huinong-credit"), "TD"), &r).unwrap();
    assert_eq!(named.sender, "huinong-credit");
    let by_number = opt_out(&reply(CN, "95500", None, "TD"), &r).unwrap();
    assert_eq!(by_number.sender, "huinong-credit");
    let with_country_code = opt_out(&reply(CN, "+86106900001234", None, "TD"), &r).unwrap();
    assert_eq!(with_country_code.sender, "huinong-credit");
    // Unknown number: the opt-out covers marketing from every sender.
    let unknown = opt_out(&reply(CN, "10000", None, "TD"), &r).unwrap();
    assert_eq!(
        (unknown.scope, unknown.sender.as_str()),
        (ConsentScope::Marketing, "*")
    );
}

#[test]
fn parses_the_contract_example_and_rejects_bad_replies() {
    let r = InboundReply::parse(
        r#"{"from":"+8613812345678","to":"106900001234","sender":"huinong-credit","body":"TD","received_at":"2026-11-28T10:00:00+08:00"}"#.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.received_at, received());
    assert!(
        InboundReply::parse(
            br#"{"from":"13812345678","to":"1","body":"TD","received_at":"2026-11-28T10:00:00Z"}"#
        )
        .is_err()
    );
    assert!(InboundReply::parse(b"TD").is_err());
}

fn marketing(to: &str, sender: &str) -> OutboundSms {
    OutboundSms {
        message_id: "m-1".into(),
        created_at: FixedOffset::east_opt(0)
            .unwrap()
            .from_utc_datetime(&received().naive_utc()),
        to: to.into(),
        sender: sender.into(),
        category: Category::Marketing,
        body: "【惠农信贷】hello 回T退订".into(),
        campaign_id: None,
        subject: None,
        template_id: None,
        recipient: Recipient::default(),
        personalized: false,
    }
}

#[test]
fn a_reply_opt_out_applied_to_the_table_rejects_later_marketing_and_reports_latency() {
    let mut table = ConsentTable::new();
    table
        .apply_bytes(br#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"huinong-credit","at":"2026-10-01T10:00:00+08:00","source":"app-signup","evidence_id":"ev-77"}"#)
        .unwrap();
    let before = evaluate(&marketing(CN, "huinong-credit"), &table, received());
    assert_eq!(before.consent, None);

    let event = opt_out(&reply(CN, "106900001234", None, "TD"), &registry()).unwrap();
    // What the forwarder writes is what the consent consumer reads back.
    table.apply_bytes(event.to_json().as_bytes()).unwrap();
    let enforced_at = received() + Duration::milliseconds(1500);
    assert_eq!(optout_latency(&event, enforced_at), Some(1.5));

    let after = evaluate(&marketing(CN, "huinong-credit"), &table, enforced_at);
    assert_eq!(after.consent.map(|c| c.0.as_str()), Some("consent.revoked"));
}
