//! Text read before it is matched (issue 20): names and credit terms as
//! words, Traditional characters, separators and confusable letters folded,
//! links read as a browser reads them, lending by meaning with the implied
//! annual rate, impersonation only where the text speaks for the
//! institution. Each behaviour: a reject and the nearby pass.

use chrono::{DateTime, Utc};
use serde_json::json;
use smsgate::contract::decision::{Decision, ReasonCode};
use smsgate::contract::event::parse;
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

/// A notification (no consent, quiet-hour or opt-out rules in the way).
fn decide(to: &str, sender: &str, category: &str, body: &str) -> Decision {
    let v = json!({"message_id":"t-1","created_at":"2026-11-28T09:30:00+08:00","to":to,"sender":sender,
                   "category":category,"body":body});
    let e = parse(v.to_string().as_bytes()).unwrap();
    let now: DateTime<Utc> = "2026-11-28T04:00:00Z".parse().unwrap();
    policy().decide(&e, Origin::Intake, &MemoryState::new(), now)
}

fn cn(sender: &str, body: &str) -> Decision {
    decide("+8613812345678", sender, "notification", body)
}

fn us(sender: &str, body: &str) -> Decision {
    decide("+12125551234", sender, "notification", body)
}

fn intl(sender: &str, body: &str) -> Decision {
    decide("+447700900123", sender, "notification", body)
}

fn codes(d: &Decision) -> Vec<&'static str> {
    d.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn detail(d: &Decision, code: ReasonCode) -> String {
    d.reasons
        .iter()
        .find(|r| r.code == code)
        .map(|r| r.detail.clone())
        .unwrap_or_default()
}

#[test]
fn bank_names_match_as_words_not_inside_other_words() {
    let d = cn("jinyun-mall", "【金云商城】您的工行账户已冻结，请核实");
    assert_eq!(codes(&d), ["content.impersonation"]);
    let d = cn(
        "jinyun-mall",
        "【金云商城】为施工行业提供劳保手套，账户异常请核实",
    );
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
}

#[test]
fn traditional_separated_and_confusable_names_are_folded() {
    for body in [
        "【金云商城】工商銀行提醒：您的账户异常",
        "【金云商城】工·商·银·行提醒：您的账户异常",
        "【金云商城】工-商-银-行提醒：您的账户异常",
        "【金云商城】工 商 银 行提醒：您的账户异常",
    ] {
        assert_eq!(
            codes(&cn("jinyun-mall", body)),
            ["content.impersonation"],
            "{body}"
        );
    }
    let d = us(
        "sunny-shop",
        "Ch\u{0430}se: your account is locked, verify now",
    );
    assert_eq!(codes(&d), ["content.impersonation"]);
    let d = us(
        "sunny-shop",
        "Sunny Shop: don't chase the deals, verify the price first",
    );
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
    let d = us(
        "sunny-shop",
        "Sunny Shop: new visa rules for travel, verify your passport",
    );
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
}

#[test]
fn a_third_party_in_a_plain_statement_is_not_impersonation() {
    let d = us(
        "sunny-shop",
        "USPS: your package is on hold, unpaid postage. Verify your address",
    );
    assert_eq!(codes(&d), ["content.impersonation"]);
    let d = us(
        "sunny-shop",
        "Sunny Shop: your order shipped via USPS, tracking 9400111899223344556677",
    );
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
    let d = cn("jinyun-mall", "【金云商城】本店与支付宝官方合作，领取补贴");
    assert_eq!(codes(&d), ["content.impersonation"]);
    let d = cn("jinyun-mall", "【金云商城】订单已发货，支持支付宝付款");
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
}

#[test]
fn non_ascii_hosts_are_read_whole() {
    let d = cn("huinong-credit", "【惠农信贷】账单详情 https://惠农.top/a");
    assert!(d.has(ReasonCode::UrlShortener), "{:?}", d.reasons);
    let d = cn(
        "huinong-credit",
        "【惠农信贷】账单详情 https://huinong.cn.贷款网.top/a",
    );
    assert!(d.has(ReasonCode::UrlShortener), "{:?}", d.reasons);
    assert!(d.has(ReasonCode::UrlLookalike), "{:?}", d.reasons);
    let d = cn(
        "huinong-credit",
        "【惠农信贷】账单详情 https://www.huinong.cn/a 。",
    );
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
    let d = cn("huinong-credit", "【惠农信贷】账单详情 huinong。cn/a");
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
}

#[test]
fn scheme_less_links_for_every_top_level_domain() {
    let d = us(
        "sunny-shop",
        "Sunny Shop: claim your refund at refund.cyou today",
    );
    assert_eq!(codes(&d), ["content.url_not_allowed"]);
    let d = us(
        "sunny-shop",
        "Sunny Shop: thanks.see you soon at sunnyshop.com",
    );
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
}

#[test]
fn lookalike_hosts_of_the_sender_and_of_brands() {
    let d = cn("huinong-credit", "【惠农信贷】账单详情 huinomg.cn/a");
    assert_eq!(
        codes(&d),
        ["content.url_not_allowed", "content.url_lookalike"]
    );
    let d = cn("jinyun-mall", "【金云商城】详情 icbc-cn.top/a");
    assert_eq!(
        codes(&d),
        ["content.url_not_allowed", "content.url_lookalike"]
    );
    assert!(detail(&d, ReasonCode::UrlLookalike).contains("icbc.com.cn"));
    // Another brand's real domain is not an imitation, only not allowed.
    let d = cn("jinyun-mall", "【金云商城】详情 www.icbc.com.cn/a");
    assert_eq!(codes(&d), ["content.url_not_allowed"]);
}

#[test]
fn lending_by_euphemism_and_amount() {
    let d = cn(
        "jinyun-mall",
        "【金云商城】急需备用金？最高可借20万，当天到账",
    );
    assert!(d.has(ReasonCode::LoanUnlicensed), "{:?}", d.reasons);
    let d = cn("jinyun-mall", "【金云商城】好经验可借鉴，以下款项已结清");
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
    let d = us(
        "sunny-shop",
        "Sunny Shop: need cash? Borrow up to $1,000 today",
    );
    assert!(d.has(ReasonCode::LoanUnlicensed), "{:?}", d.reasons);
}

#[test]
fn limits_warnings_and_bills_are_no_credit_offer() {
    for body in [
        "【金云商城】您的礼品卡额度剩余200元",
        "【金云商城】警惕冒充客服修改征信的诈骗电话",
    ] {
        assert!(codes(&cn("jinyun-mall", body)).is_empty(), "{body}");
    }
    let d = cn("jinyun-mall", "【金云商城】您的分期账单已出，本期应还500元");
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
    let d = cn("jinyun-mall", "【金云商城】分期账单已出，另可申请备用金");
    assert!(d.has(ReasonCode::LoanUnlicensed), "{:?}", d.reasons);
}

#[test]
fn apr_missing_gives_the_implied_annual_rate() {
    let d = cn("huinong-credit", "【惠农信贷】经营贷日息万分之五，随借随还");
    assert_eq!(codes(&d), ["content.apr_missing"]);
    assert!(detail(&d, ReasonCode::AprMissing).contains("18.25%"));
    let d = cn("huinong-credit", "【惠农信贷】经营贷月息1分，年化低");
    assert!(
        detail(&d, ReasonCode::AprMissing).contains("12%"),
        "{:?}",
        d.reasons
    );
    let d = us(
        "acme-lending",
        "Acme: payday cash, just $15 per $100 borrowed for 14 days",
    );
    assert!(
        detail(&d, ReasonCode::AprMissing).contains("391%"),
        "{:?}",
        d.reasons
    );
    let d = us("acme-lending", "Acme: personal loans, 1.5% a month");
    assert!(
        detail(&d, ReasonCode::AprMissing).contains("18%"),
        "{:?}",
        d.reasons
    );
    // With an annualized figure the same offer passes.
    let d = cn(
        "huinong-credit",
        "【惠农信贷】经营贷日息万分之五，年化利率18.25%，随借随还",
    );
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
}

#[test]
fn prohibited_claims_in_every_pack() {
    let d = intl("acme-lending", "Acme: loans with no credit check, 9% APR");
    assert_eq!(codes(&d), ["content.prohibited_claim"]);
    let d = intl(
        "acme-lending",
        "Acme: loans from 9% APR, subject to a credit check",
    );
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
}

#[test]
fn order_and_tracking_numbers_are_not_phone_numbers() {
    let d = cn("jinyun-mall", "【金云商城】订单号：202611281234 已发货");
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
    let d = cn("jinyun-mall", "【金云商城】已发货，咨询请致电 13912345678");
    assert_eq!(codes(&d), ["content.phone_not_allowed"]);
}

#[test]
fn promotional_words_in_an_otp() {
    let d = cn("jinyun-mall", "【金云商城】验证码 482913，今日下单享8.8折");
    assert_eq!(codes(&d), ["content.category_mismatch"]);
    let d = cn("jinyun-mall", "【金云商城】验证码 482913，5分钟内有效");
    assert!(codes(&d).is_empty(), "{:?}", d.reasons);
}

#[test]
fn shaft_terms_as_words_in_context() {
    let m = |body: &str| {
        let v = json!({"message_id":"t-2","created_at":"2026-11-28T09:30:00Z","to":"+12125551234",
                       "sender":"sunny-shop","category":"marketing","body":body});
        let e = parse(v.to_string().as_bytes()).unwrap();
        let mut state = MemoryState::new();
        state.apply_consent(
            smsgate::contract::consent::ConsentEvent::parse(
                json!({"to":"+12125551234","action":"opt_in","scope":"marketing","sender":"*",
                       "at":"2026-10-01T00:00:00Z","source":"web-form","evidence_id":"ev-1"})
                .to_string()
                .as_bytes(),
            )
            .unwrap(),
        );
        let now: DateTime<Utc> = "2026-11-28T17:00:00Z".parse().unwrap();
        policy().decide(&e, Origin::Intake, &state, now)
    };
    for body in [
        "Sunny Shop: glue gun kits 20% off. Reply STOP to opt out",
        "Sunny Shop: root beer floats and nude lipstick. Reply STOP to opt out",
    ] {
        assert!(codes(&m(body)).is_empty(), "{body}: {:?}", m(body).reasons);
    }
    let d = m("Sunny Shop: craft beer tasting tonight. Reply STOP to opt out");
    assert_eq!(codes(&d), ["content.shaft"]);
}
