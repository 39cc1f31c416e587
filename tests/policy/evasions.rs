//! Spaced, zero-width and full-width variants of keywords are caught after
//! normalization; ordinary text containing those characters is not flagged.

use chrono::{DateTime, Utc};
use serde_json::json;
use smsgate::contract::decision::{Decision, Outcome, ReasonCode};
use smsgate::contract::event::parse;
use smsgate::policy::content::normalize::normalize;
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

fn decide(to: &str, sender: &str, category: &str, body: &str) -> Decision {
    let v = json!({"message_id":"e-1","created_at":"2026-11-28T09:30:00+08:00","to":to,"sender":sender,
                   "category":category,"body":body});
    let e = parse(v.to_string().as_bytes()).unwrap();
    let now: DateTime<Utc> = "2026-11-28T17:00:00Z".parse().unwrap();
    policy().decide(&e, Origin::Intake, &MemoryState::new(), now)
}

fn cn_note(body: &str) -> Decision {
    decide("+8613812345678", "huinong-credit", "notification", body)
}

#[test]
fn spaced_zero_width_and_full_width_claims_are_caught() {
    for body in [
        "【惠农信贷】经营贷 秒 批，年化7.2%",
        "【惠农信贷】经营贷 秒\u{200b}批，年化7.2%",
        "【惠农信贷】经营贷 秒\u{200d}批，年化7.2%",
        "【惠农信贷】经营贷 秒\u{feff}批，年化7.2%",
        "【惠农信贷】经营贷 秒　批，年化7.2%",
        "【惠农信贷】经营贷 无 视 征 信，年化7.2%",
        "【惠农信贷】经营贷 １００％下款，年化7.2%",
    ] {
        let d = cn_note(body);
        assert!(
            d.has(ReasonCode::ProhibitedClaim),
            "{body:?}: {:?}",
            d.reasons
        );
    }
    let d = decide(
        "+12125551234",
        "acme-lending",
        "notification",
        "Acme: loans with ｇｕａｒａｎｔｅｅｄ ａｐｐｒｏｖａｌ, 9% APR",
    );
    assert!(d.has(ReasonCode::ProhibitedClaim), "{:?}", d.reasons);
    let d = decide(
        "+12125551234",
        "acme-lending",
        "notification",
        "Acme: loans, g u a r a n t e e d approval, 9% APR",
    );
    assert!(d.has(ReasonCode::ProhibitedClaim), "{:?}", d.reasons);
}

#[test]
fn evasions_of_other_lists_are_caught() {
    let d = decide(
        "+8613812345678",
        "jinyun-mall",
        "notification",
        "【金云商城】您的支\u{200b}付\u{200c}宝账户异常",
    );
    assert!(d.has(ReasonCode::Impersonation), "{:?}", d.reasons);
    let d = decide(
        "+8613812345678",
        "jinyun-mall",
        "otp",
        "【金云商城】验证码 482913。限 时 优 惠",
    );
    assert!(d.has(ReasonCode::CategoryMismatch), "{:?}", d.reasons);
    let d = decide(
        "+8613812345678",
        "jinyun-mall",
        "notification",
        "【金云商城】详询 ｂｉｔ．ｌｙ／ｘ",
    );
    assert!(d.has(ReasonCode::UrlShortener), "{:?}", d.reasons);
    let d = decide(
        "+12125551234",
        "sunny-shop",
        "marketing",
        "Sunny: ｗｉｎｅ night. Reply STOP to opt out",
    );
    assert!(d.has(ReasonCode::Shaft), "{:?}", d.reasons);
}

#[test]
fn ordinary_text_with_those_characters_is_not_flagged() {
    for body in [
        "【惠农信贷】您的账户 已于今日 完成年度核验，感谢使用",
        "【惠农信贷】您的\u{200b}账单已出，请按时查看",
        "【惠农信贷】您的账单（ＡＢＣ１２３）已出，请查看 ｈｕｉｎｏｎｇ．ｃｎ",
        "【惠农信贷】秒针 批注 已更新",
    ] {
        let d = cn_note(body);
        assert_eq!(d.outcome, Outcome::Approve, "{body:?}: {:?}", d.reasons);
    }
    let d = decide(
        "+12125551234",
        "sunny-shop",
        "notification",
        "Sunny Shop: your order A B C shipped; the swine flu article is out",
    );
    assert_eq!(d.outcome, Outcome::Approve, "{:?}", d.reasons);
}

#[test]
fn normalization_examples() {
    assert_eq!(normalize("秒 批"), "秒批");
    assert_eq!(normalize("秒\u{200b}批"), "秒批");
    assert_eq!(normalize("ｇｕａｒａｎｔｅｅｄ"), "guaranteed");
    assert_eq!(normalize("Hello   world"), "Hello world");
}
