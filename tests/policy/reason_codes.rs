//! One event that triggers each reason code of CONTRACT §7, and a near miss
//! that must not.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use smsgate::contract::consent::ConsentEvent;
use smsgate::contract::decision::{Decision, Outcome};
use smsgate::contract::event::{OutboundSms, parse};
use smsgate::policy::{Origin, Policy, Registry};
use smsgate::state::MemoryState;

const SENDERS: &str = include_str!("../../config/senders.example.toml");
const CN_BODY: &str =
    "【惠农信贷】经营贷年化利率(单利)7.2%起，详询 https://www.huinong.cn/a 回T退订";
const US_BODY: &str =
    "Acme Lending: personal loans from 7.9% APR. Details acmelending.com/p Reply STOP to opt out";

fn policy() -> &'static Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| Policy::with_registry(Registry::parse(SENDERS).unwrap()))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// 10:00 in Shanghai, 12:00 in New York (a Saturday).
fn cn_now() -> DateTime<Utc> {
    at("2026-11-28T02:00:00Z")
}
fn us_now() -> DateTime<Utc> {
    at("2026-11-28T17:00:00Z")
}

fn cn_event() -> Value {
    json!({"message_id":"m-1","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678",
           "sender":"huinong-credit","category":"marketing","body":CN_BODY,
           "recipient":{"age":41,"student":false}})
}

fn us_event() -> Value {
    json!({"message_id":"u-1","created_at":"2026-11-28T09:30:00Z","to":"+12125551234",
           "sender":"acme-lending","category":"marketing","body":US_BODY})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn ev(v: &Value) -> OutboundSms {
    parse(v.to_string().as_bytes()).unwrap()
}

fn consent(state: &mut MemoryState, line: Value) {
    state.apply_consent(ConsentEvent::parse(line.to_string().as_bytes()).unwrap());
}

fn opt_in(state: &mut MemoryState, to: &str, sender: &str) {
    consent(
        state,
        json!({"to":to,"action":"opt_in","scope":"marketing","sender":sender,
               "at":"2026-10-01T00:00:00Z","source":"web-form","evidence_id":"ev-1"}),
    );
}

/// A state in which both sample recipients opted in to every sample sender.
fn consented() -> MemoryState {
    let mut s = MemoryState::new();
    for to in ["+8613812345678", "+12125551234"] {
        opt_in(&mut s, to, "*");
    }
    s
}

fn decide_at(v: &Value, state: &MemoryState, now: DateTime<Utc>) -> Decision {
    policy().decide(&ev(v), Origin::Intake, state, now)
}

fn cn(v: &Value) -> Decision {
    decide_at(v, &consented(), cn_now())
}

fn us(v: &Value) -> Decision {
    decide_at(v, &consented(), us_now())
}

fn codes(d: &Decision) -> Vec<&'static str> {
    d.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn body(v: Value, b: &str) -> Value {
    with(v, "body", json!(b))
}

#[test]
fn baselines_are_approved() {
    let d = cn(&cn_event());
    assert_eq!(d.outcome, Outcome::Approve, "{:?}", d.reasons);
    let d = us(&us_event());
    assert_eq!(d.outcome, Outcome::Approve, "{:?}", d.reasons);
}

#[test]
fn malformed_gets_only_malformed() {
    let d = policy()
        .decide_bytes(
            r#"{"message_id":"x","body":"秒批"}"#.as_bytes(),
            Origin::Intake,
            &consented(),
            cn_now(),
        )
        .1;
    assert_eq!(codes(&d), ["malformed"]);
    assert_eq!(d.reasons[0].rule.as_ref(), "core.malformed");
    // Near miss: the same event complete is not malformed.
    let (e, d) = policy().decide_bytes(
        cn_event().to_string().as_bytes(),
        Origin::Intake,
        &consented(),
        cn_now(),
    );
    assert!(e.is_some() && !d.has(smsgate::contract::decision::ReasonCode::Malformed));
}

#[test]
fn unknown_sender_gets_only_sender_unknown_plus_duplicate() {
    let v = body(
        with(cn_event(), "sender", json!("nobody")),
        "秒批贷款 bit.ly/x 13812345678",
    );
    let mut state = consented();
    let d = decide_at(&v, &state, cn_now());
    assert_eq!(codes(&d), ["sender.unknown"]);
    state.record(&ev(&v), &d, cn_now());
    let d = decide_at(&v, &state, cn_now() + Duration::minutes(1));
    assert_eq!(codes(&d), ["sender.unknown", "duplicate"]);
    // Near miss: a registered sender.
    assert!(!cn(&cn_event()).has(smsgate::contract::decision::ReasonCode::SenderUnknown));
}

#[test]
fn duplicate_within_window_still_lists_other_rules() {
    let mut state = consented();
    let v = body(cn_event(), "【惠农信贷】经营贷 bit.ly/x 回T退订");
    let d = decide_at(&v, &state, cn_now());
    state.record(&ev(&v), &d, cn_now());
    let again = decide_at(&v, &state, cn_now() + Duration::hours(23));
    assert_eq!(codes(&again), ["duplicate", "content.url_shortener"]);
    // Near miss: 24 h after the first decision it is no longer a duplicate.
    let later = decide_at(&v, &state, cn_now() + Duration::hours(24));
    assert_eq!(codes(&later), ["content.url_shortener"]);
}

#[test]
fn deferred_event_at_release_is_not_its_own_duplicate() {
    let mut state = consented();
    let night = at("2026-11-28T14:00:00Z"); // 22:00 Shanghai
    let v = cn_event();
    let d = decide_at(&v, &state, night);
    assert_eq!(d.outcome, Outcome::Defer);
    state.record(&ev(&v), &d, night);
    let release = d.release_at.unwrap();
    let d = policy().decide(&ev(&v), Origin::Release, &state, release);
    assert_eq!(d.outcome, Outcome::Approve, "{:?}", d.reasons);
    // But a fresh intake of the same id is a duplicate.
    let d = policy().decide(&ev(&v), Origin::Intake, &state, release);
    assert!(d.has(smsgate::contract::decision::ReasonCode::Duplicate));
}

#[test]
fn consent_missing_and_opt_in_near_miss() {
    let d = decide_at(&cn_event(), &MemoryState::new(), cn_now());
    assert_eq!(codes(&d), ["consent.missing"]);
    assert_eq!(d.reasons[0].rule.as_ref(), "cn.consent.marketing");
    let mut s = MemoryState::new();
    opt_in(&mut s, "+8613812345678", "huinong-credit");
    assert_eq!(
        decide_at(&cn_event(), &s, cn_now()).outcome,
        Outcome::Approve
    );
}

#[test]
fn consent_revoked_and_older_opt_out_near_miss() {
    let mut s = MemoryState::new();
    opt_in(&mut s, "+8613812345678", "huinong-credit");
    let out = json!({"to":"+8613812345678","action":"opt_out","scope":"marketing","sender":"huinong-credit",
                     "at":"2026-11-01T00:00:00Z","source":"reply:TD"});
    consent(&mut s, out.clone());
    assert_eq!(
        codes(&decide_at(&cn_event(), &s, cn_now())),
        ["consent.revoked"]
    );
    // An older opt-out arriving late changes nothing.
    let mut s = MemoryState::new();
    opt_in(&mut s, "+8613812345678", "huinong-credit");
    consent(&mut s, with(out, "at", json!("2026-09-01T00:00:00Z")));
    assert_eq!(
        decide_at(&cn_event(), &s, cn_now()).outcome,
        Outcome::Approve
    );
}

#[test]
fn consent_expired_and_unexpired_near_miss() {
    let line = |exp: &str| {
        json!({"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"huinong-credit",
               "at":"2026-10-01T00:00:00Z","source":"web","evidence_id":"e","expires_at":exp})
    };
    let mut s = MemoryState::new();
    consent(&mut s, line("2026-11-28T02:00:00Z"));
    assert_eq!(
        codes(&decide_at(&cn_event(), &s, cn_now())),
        ["consent.expired"]
    );
    let mut s = MemoryState::new();
    consent(&mut s, line("2026-11-28T02:00:01Z"));
    assert_eq!(
        decide_at(&cn_event(), &s, cn_now()).outcome,
        Outcome::Approve
    );
}

#[test]
fn personalization_refused_and_unpersonalized_near_miss() {
    let mut s = consented();
    consent(
        &mut s,
        json!({"to":"+8613812345678","action":"opt_out","scope":"personalization","sender":"*",
               "at":"2026-11-01T00:00:00Z","source":"app"}),
    );
    let v = with(cn_event(), "targeting", json!({"personalized": true}));
    assert_eq!(
        codes(&decide_at(&v, &s, cn_now())),
        ["targeting.personalization_refused"]
    );
    let v = with(cn_event(), "targeting", json!({"personalized": false}));
    assert_eq!(decide_at(&v, &s, cn_now()).outcome, Outcome::Approve);
}

#[test]
fn audience_minor_and_adult_near_miss() {
    let v = with(cn_event(), "recipient", json!({"age": 17}));
    assert_eq!(codes(&cn(&v)), ["audience.minor"]);
    let v = with(cn_event(), "recipient", json!({"age": 18}));
    assert_eq!(cn(&v).outcome, Outcome::Approve);
    let v = with(us_event(), "recipient", json!({"age": 16}));
    assert_eq!(codes(&us(&v)), ["audience.minor"]);
}

#[test]
fn audience_student_in_cn_only() {
    let v = with(cn_event(), "recipient", json!({"student": true}));
    assert_eq!(codes(&cn(&v)), ["audience.student"]);
    // Near misses: not a student; a US student (no such rule in the us pack).
    let v = with(cn_event(), "recipient", json!({"student": false}));
    assert_eq!(cn(&v).outcome, Outcome::Approve);
    let v = with(us_event(), "recipient", json!({"student": true}));
    assert_eq!(us(&v).outcome, Outcome::Approve);
}

#[test]
fn quiet_hours_defer_and_daytime_near_miss() {
    let d = decide_at(&cn_event(), &consented(), at("2026-11-28T13:00:00Z")); // 21:00
    assert_eq!(codes(&d), ["quiet_hours"]);
    assert_eq!(d.outcome, Outcome::Defer);
    assert_eq!(d.release_at, Some(at("2026-11-29T00:00:00Z"))); // 08:00 Shanghai
    let d = decide_at(&cn_event(), &consented(), at("2026-11-28T12:59:00Z")); // 20:59
    assert_eq!(d.outcome, Outcome::Approve);
    // Quiet hours apply to marketing only.
    let v = body(
        with(cn_event(), "category", json!("otp")),
        "【惠农信贷】验证码 123456，5分钟内有效",
    );
    assert_eq!(
        decide_at(&v, &consented(), at("2026-11-28T13:00:00Z")).outcome,
        Outcome::Approve
    );
}

#[test]
fn reject_beats_defer_and_release_at_is_null() {
    let v = body(
        cn_event(),
        "【惠农信贷】经营贷年化利率7.2%起 bit.ly/x 回T退订",
    );
    let d = decide_at(&v, &consented(), at("2026-11-28T13:00:00Z"));
    assert_eq!(d.outcome, Outcome::Reject);
    assert_eq!(codes(&d), ["quiet_hours", "content.url_shortener"]);
    assert_eq!(d.release_at, None);
}

#[test]
fn frequency_cap_after_three_approved_on_a_subject() {
    let p = policy();
    let mut s = consented();
    let mut now = cn_now();
    for i in 0..3 {
        let v = with(
            with(cn_event(), "message_id", json!(format!("f-{i}"))),
            "subject",
            json!("sme"),
        );
        let d = p.decide(&ev(&v), Origin::Intake, &s, now);
        assert_eq!(d.outcome, Outcome::Approve, "message {i}");
        s.record(&ev(&v), &d, now);
        now += Duration::hours(1);
    }
    let v = with(
        with(cn_event(), "message_id", json!("f-3")),
        "subject",
        json!("sme"),
    );
    assert_eq!(
        codes(&p.decide(&ev(&v), Origin::Intake, &s, now)),
        ["frequency_cap"]
    );
    // Near misses: another subject; the same subject once the first approval is 24 h old.
    let other = with(v.clone(), "subject", json!("other"));
    assert_eq!(
        p.decide(&ev(&other), Origin::Intake, &s, now).outcome,
        Outcome::Approve
    );
    let later = cn_now() + Duration::hours(24) + Duration::seconds(1);
    assert_eq!(
        p.decide(&ev(&v), Origin::Intake, &s, later).outcome,
        Outcome::Approve
    );
}

#[test]
fn signature_missing_and_signature_at_end_near_miss() {
    let v = body(cn_event(), "经营贷年化利率7.2%起 回T退订");
    assert_eq!(codes(&cn(&v)), ["content.signature_missing"]);
    let v = body(cn_event(), "经营贷年化利率7.2%起 回T退订【惠农信贷】。 ");
    assert_eq!(cn(&v).outcome, Outcome::Approve);
}

#[test]
fn signature_mismatch_alias_is_not_a_signature() {
    let v = body(cn_event(), "【惠农】经营贷年化利率7.2%起 回T退订");
    let d = cn(&v);
    assert_eq!(codes(&d), ["content.signature_mismatch"]);
    assert!(d.reasons[0].detail.contains("惠农"));
    let v = body(cn_event(), "【惠农信贷】惠农经营贷年化利率7.2%起 回T退订");
    assert_eq!(cn(&v).outcome, Outcome::Approve);
}

#[test]
fn optout_missing_in_the_packs_language() {
    let v = body(cn_event(), "【惠农信贷】经营贷年化利率7.2%起");
    assert_eq!(codes(&cn(&v)), ["content.optout_missing"]);
    let v = body(cn_event(), "【惠农信贷】经营贷年化利率7.2%起，拒收请回复R");
    assert_eq!(cn(&v).outcome, Outcome::Approve);
    // us needs English: a Chinese instruction does not count.
    let v = body(
        us_event(),
        "Acme Lending: personal loans from 7.9% APR. 回T退订",
    );
    assert_eq!(codes(&us(&v)), ["content.optout_missing"]);
    let v = body(
        us_event(),
        "Acme Lending: personal loans from 7.9% APR. Text STOP to opt out.",
    );
    assert_eq!(us(&v).outcome, Outcome::Approve);
}

#[test]
fn url_not_allowed_and_subdomain_near_miss() {
    let v = body(
        cn_event(),
        "【惠农信贷】经营贷年化利率7.2%起 详询 https://huinong-loans.com/a 回T退订",
    );
    let d = cn(&v);
    // The sender's own name inside another domain also imitates its domain
    // (POLICY.md, links: `content.url_lookalike` in addition).
    assert_eq!(
        codes(&d),
        ["content.url_not_allowed", "content.url_lookalike"]
    );
    assert!(d.reasons[0].detail.contains("huinong-loans.com"));
    let v = body(
        cn_event(),
        "【惠农信贷】经营贷年化利率7.2%起 详询 https://jinyun-shop.com/a 回T退订",
    );
    assert_eq!(codes(&cn(&v)), ["content.url_not_allowed"]);
    let v = body(
        cn_event(),
        "【惠农信贷】经营贷年化利率7.2%起 详询 m.app.huinong.cn/a 回T退订",
    );
    assert_eq!(cn(&v).outcome, Outcome::Approve);
}

#[test]
fn url_shortener_ip_and_punycode() {
    for link in [
        "t.cn/A6x",
        "http://192.168.0.1/x",
        "https://xn--fiq228c.com/a",
        "www.bit.ly/q",
    ] {
        let v = body(
            cn_event(),
            &format!("【惠农信贷】经营贷年化利率7.2%起 {link} 回T退订"),
        );
        assert_eq!(codes(&cn(&v)), ["content.url_shortener"], "{link}");
    }
    let v = body(
        cn_event(),
        "【惠农信贷】经营贷年化利率7.2%起 huinong.cn/a 回T退订",
    );
    assert_eq!(cn(&v).outcome, Outcome::Approve);
}

#[test]
fn phone_not_allowed_and_otp_sender_number_date_near_misses() {
    let v = body(
        cn_event(),
        "【惠农信贷】经营贷年化利率7.2%起 致电 138 1234 5678 回T退订",
    );
    let d = cn(&v);
    assert_eq!(codes(&d), ["content.phone_not_allowed"]);
    assert!(
        !d.reasons[0].detail.contains("13812345678"),
        "no full number in details"
    );
    for ok in [
        "【惠农信贷】验证码 123456，5分钟内有效",
        "【惠农信贷】请致电 95500 或 +86 10690 0001234 咨询",
        "【惠农信贷】您的还款日为 2026-12-01 09:30，金额 1234567.00元",
    ] {
        let v = body(with(cn_event(), "category", json!("notification")), ok);
        assert_eq!(
            cn(&v).outcome,
            Outcome::Approve,
            "{ok}: {:?}",
            cn(&v).reasons
        );
    }
    // A US sender's number written without the +1.
    let v = body(
        us_event(),
        "Acme Lending: loans from 7.9% APR. Call 800-555-0100. Reply STOP to opt out",
    );
    assert_eq!(us(&v).outcome, Outcome::Approve);
}

#[test]
fn prohibited_claim_and_non_lending_near_miss() {
    let v = body(cn_event(), "【惠农信贷】经营贷秒批，年化利率7.2%起 回T退订");
    assert_eq!(codes(&cn(&v)), ["content.prohibited_claim"]);
    // "零门槛" in a shop coupon is not a lending claim.
    let v = json!({"message_id":"s-1","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678",
                   "sender":"jinyun-mall","category":"marketing","body":"【金云商城】零门槛优惠券已到账 回T退订"});
    assert_eq!(cn(&v).outcome, Outcome::Approve, "{:?}", cn(&v).reasons);
}

#[test]
fn apr_missing_and_annualized_near_miss() {
    let v = body(cn_event(), "【惠农信贷】经营贷日息低至0.02% 回T退订");
    assert_eq!(codes(&cn(&v)), ["content.apr_missing"]);
    let v = body(
        cn_event(),
        "【惠农信贷】经营贷日息低至0.02%，年化利率7.3% 回T退订",
    );
    assert_eq!(cn(&v).outcome, Outcome::Approve);
    let v = body(
        us_event(),
        "Acme Lending: loans at 5% interest. acmelending.com Reply STOP to opt out",
    );
    assert_eq!(codes(&us(&v)), ["content.apr_missing"]);
}

#[test]
fn loan_unlicensed_and_own_brand_near_miss() {
    let v = json!({"message_id":"s-2","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678",
                   "sender":"jinyun-mall","category":"marketing","body":"【金云商城】会员专享借款额度 回T退订"});
    assert_eq!(codes(&cn(&v)), ["content.loan_unlicensed"]);
    // A non-lender whose own brand contains 贷: its OTP is not lending content.
    let reg = Registry::parse(&format!(
        "{SENDERS}\n[senders.daikuan-news]\nbrand = \"贷款资讯\"\naliases = [\"贷讯\"]\nlender = false\n"
    ))
    .unwrap();
    let p = Policy::with_registry(reg);
    let v = json!({"message_id":"s-3","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678",
                   "sender":"daikuan-news","category":"otp","body":"【贷款资讯】贷讯验证码 482913，5分钟内有效"});
    let d = p.decide(&ev(&v), Origin::Intake, &consented(), cn_now());
    assert_eq!(d.outcome, Outcome::Approve, "{:?}", d.reasons);
}

#[test]
fn impersonation_and_own_brand_near_miss() {
    let v = json!({"message_id":"s-4","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678",
                   "sender":"jinyun-mall","category":"notification","body":"【金云商城】您的支付宝账户异常，请核实"});
    let d = cn(&v);
    assert_eq!(codes(&d), ["content.impersonation"]);
    assert!(d.reasons[0].detail.contains("支付宝"));
    let v = json!({"message_id":"s-5","created_at":"2026-11-28T09:30:00+08:00","to":"+8613812345678",
                   "sender":"zhaoshang-bank","category":"notification","body":"【招商银行】招行提醒：您的账单已出"});
    assert_eq!(cn(&v).outcome, Outcome::Approve, "{:?}", cn(&v).reasons);
    let v = body(
        with(us_event(), "category", json!("notification")),
        "Acme: your IRS refund is on hold",
    );
    assert_eq!(codes(&us(&v)), ["content.impersonation"]);
    let v = body(
        with(us_event(), "category", json!("notification")),
        "Acme: your FIRST payment is due",
    );
    assert_eq!(us(&v).outcome, Outcome::Approve);
}

#[test]
fn pii_id_and_card_with_checksum_near_misses() {
    let note = |b: &str| body(with(cn_event(), "category", json!("notification")), b);
    assert_eq!(
        codes(&cn(&note("【惠农信贷】身份证11010519491231002X已核验"))),
        ["content.pii"]
    );
    assert_eq!(
        codes(&cn(&note("【惠农信贷】卡号 4111 1111 1111 1111 已绑定"))),
        ["content.pii"]
    );
    // Bad checksums are neither PII nor (too long to be) phone numbers.
    assert_eq!(
        cn(&note("【惠农信贷】单号110105194912310021已核验")).outcome,
        Outcome::Approve
    );
    assert_eq!(
        cn(&note("【惠农信贷】卡号 4111 1111 1111 1112 已绑定")).outcome,
        Outcome::Approve
    );
    let d = cn(&note("【惠农信贷】卡号 4111 1111 1111 1111 已绑定"));
    assert!(
        !d.reasons[0].detail.contains("4111"),
        "no card digits in details"
    );
}

#[test]
fn category_mismatch_and_plain_otp_near_miss() {
    let otp = |b: &str| body(with(cn_event(), "category", json!("otp")), b);
    let d = cn(&otp("【惠农信贷】验证码 123456。限时优惠，立即申请提额"));
    assert_eq!(codes(&d), ["content.category_mismatch"]);
    assert_eq!(
        cn(&otp("【惠农信贷】验证码 123456，5分钟内有效")).outcome,
        Outcome::Approve
    );
    // Marketing may be promotional.
    assert_eq!(
        cn(&body(
            cn_event(),
            "【惠农信贷】限时优惠，年化利率7.2%起 回T退订"
        ))
        .outcome,
        Outcome::Approve
    );
}

#[test]
fn shaft_for_us_marketing_only() {
    let shop = |b: &str| {
        json!({"message_id":"u-2","created_at":"2026-11-28T09:30:00Z","to":"+12125551234",
               "sender":"sunny-shop","category":"marketing","body":b})
    };
    let d = us(&shop(
        "Sunny Shop: 2 for 1 on wine tonight! Reply STOP to opt out",
    ));
    assert_eq!(codes(&d), ["content.shaft"]);
    assert_eq!(
        us(&shop(
            "Sunny Shop: Essex County store opens Monday! Reply STOP to opt out"
        ))
        .outcome,
        Outcome::Approve
    );
    // Not a US recipient: no SHAFT rule in the default pack.
    let v = with(
        with(
            shop("Sunny Shop: wine sale! Reply STOP to opt out"),
            "to",
            json!("+447700900123"),
        ),
        "sender",
        json!("sunny-shop"),
    );
    assert!(!us(&v).has(smsgate::contract::decision::ReasonCode::Shaft));
}

#[test]
fn too_long_over_six_segments() {
    let note = |b: String| body(with(cn_event(), "category", json!("notification")), &b);
    // "【惠农信贷】" is 6 UTF-16 units; 396 more make 402 = 6 × 67.
    let six = format!("【惠农信贷】{}", "惠".repeat(396));
    assert_eq!(cn(&note(six.clone())).outcome, Outcome::Approve);
    let seven = format!("{six}惠");
    let d = cn(&note(seven));
    assert_eq!(codes(&d), ["content.too_long"]);
    assert!(d.reasons[0].detail.contains("UCS-2"));
    // GSM-7: 918 = 6 × 153 characters pass, 919 do not.
    let us_note = |n: usize| {
        body(
            with(us_event(), "category", json!("notification")),
            &"a".repeat(n),
        )
    };
    assert_eq!(us(&us_note(918)).outcome, Outcome::Approve);
    assert_eq!(codes(&us(&us_note(919))), ["content.too_long"]);
}

#[test]
fn only_opt_ins_newer_than_the_latest_opt_out_count() {
    let mut s = MemoryState::new();
    opt_in(&mut s, "+8613812345678", "huinong-credit"); // 2026-10-01
    consent(
        &mut s,
        json!({"to":"+8613812345678","action":"opt_out","scope":"all","sender":"*",
               "at":"2026-10-15T00:00:00Z","source":"reply:TD"}),
    );
    let newer = |exp: &str| {
        json!({"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"huinong-credit",
               "at":"2026-11-01T00:00:00Z","source":"web","evidence_id":"e2","expires_at":exp})
    };
    consent(&mut s, newer("2026-11-20T00:00:00Z"));
    assert_eq!(
        codes(&decide_at(&cn_event(), &s, cn_now())),
        ["consent.expired"]
    );
    consent(&mut s, newer("2027-01-01T00:00:00Z"));
    assert_eq!(
        decide_at(&cn_event(), &s, cn_now()).outcome,
        Outcome::Approve
    );
    // An opt-out at the same instant as an opt-in wins the tie.
    let mut s = MemoryState::new();
    opt_in(&mut s, "+8613812345678", "huinong-credit");
    consent(
        &mut s,
        json!({"to":"+8613812345678","action":"opt_out","scope":"marketing","sender":"huinong-credit",
               "at":"2026-10-01T00:00:00Z","source":"reply:TD"}),
    );
    assert_eq!(
        codes(&decide_at(&cn_event(), &s, cn_now())),
        ["consent.revoked"]
    );
}
