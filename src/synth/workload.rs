//! A realistic, scalable workload for the benchmark and `smsgate generate`:
//! Chinese (+86) and US (+1) recipients of the example sender registry,
//! marketing, notification and otp bodies with varying details, and about
//! a fifth of events that break a rule (unknown sender, no consent, opted
//! out, duplicate, malformed, personalization refused, bad content).
//!
//! Unlike the demo's generator (sized for a few thousand events), every
//! recipient is derived from an index, so a million recipients cost no
//! memory and every number is distinct. Consent comes first: opt-ins for
//! most recipients, opt-outs for some, a few opt-ins without evidence.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use crate::contract::consent::{ConsentAction, ConsentEvent, ConsentScope};

/// Why a generated event was made the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Clean,
    UnknownSender,
    NoConsent,
    OptedOut,
    Duplicate,
    Malformed,
    PersonalizationRefused,
    /// Consented, but the body breaks a content rule.
    BadContent,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Clean => "clean",
            Kind::UnknownSender => "unknown_sender",
            Kind::NoConsent => "no_consent",
            Kind::OptedOut => "opted_out",
            Kind::Duplicate => "duplicate",
            Kind::Malformed => "malformed",
            Kind::PersonalizationRefused => "personalization_refused",
            Kind::BadContent => "bad_content",
        }
    }
}

/// Which consent a recipient has, by `index % 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// 0..80: a marketing opt-in with evidence.
    Consented,
    /// 80..88: nothing (a few of them an opt-in without evidence).
    NoConsent,
    /// 88..94: an opt-in, then a later opt-out (a `TD` / `STOP` reply).
    OptedOut,
    /// 94..100: an opt-in, and a personalization opt-out.
    NoPersonalization,
}

fn pool_of(index: u64) -> Pool {
    match index % 100 {
        0..80 => Pool::Consented,
        80..88 => Pool::NoConsent,
        88..94 => Pool::OptedOut,
        _ => Pool::NoPersonalization,
    }
}

/// First index of `pool` in each block of 100.
fn pool_range(pool: Pool) -> (u64, u64) {
    match pool {
        Pool::Consented => (0, 80),
        Pool::NoConsent => (80, 88),
        Pool::OptedOut => (88, 94),
        Pool::NoPersonalization => (94, 100),
    }
}

const US_AREAS: &[&str] = &["212", "415", "305", "312", "206", "512"];
const CN_PREFIXES: &[&str] = &["138", "139", "150", "186", "177"];
const CN_SENDERS: &[&str] = &["huinong-credit", "jinyun-mall", "zhaoshang-bank"];
const US_SENDERS: &[&str] = &["acme-lending", "sunny-shop"];

/// Recipient `index`: two in three are Chinese. Numbers are distinct per index.
pub fn recipient(index: u64) -> (String, bool) {
    if index % 3 != 2 {
        let prefix = CN_PREFIXES[(index % 5) as usize];
        (format!("+86{prefix}{:08}", index % 100_000_000), true)
    } else {
        let area = US_AREAS[(index % 6) as usize];
        let subscriber = 2_000_000 + (index / 6) % 8_000_000;
        (format!("+1{area}{subscriber}"), false)
    }
}

/// Generates consent events and outbound events over `recipients` people.
pub struct Workload {
    rng: fastrand::Rng,
    now: DateTime<Utc>,
    recipients: u64,
    run: String,
    counter: u64,
    /// Recent clean events, re-sent as duplicates.
    recent: VecDeque<(Vec<u8>, String)>,
}

impl Workload {
    /// `run` goes into every message id, so two runs never collide as
    /// duplicates; `seed` makes the stream repeatable.
    pub fn new(seed: u64, now: DateTime<Utc>, recipients: u64, run: &str) -> Workload {
        Workload {
            rng: fastrand::Rng::with_seed(seed),
            now,
            recipients: recipients.max(100),
            run: run.to_string(),
            counter: 0,
            recent: VecDeque::new(),
        }
    }

    pub fn recipients(&self) -> u64 {
        self.recipients
    }

    fn consent(
        &self,
        to: &str,
        action: ConsentAction,
        scope: ConsentScope,
        days: i64,
        source: &str,
    ) -> ConsentEvent {
        ConsentEvent {
            to: to.to_string(),
            action,
            scope,
            sender: "*".into(),
            at: self.now - Duration::days(days),
            source: source.into(),
            evidence_id: (action == ConsentAction::OptIn).then(|| format!("ev-{}", &to[3..])),
            expires_at: None,
        }
    }

    /// The consent events of recipient `index` (zero, one or two), with the
    /// key to produce them under (the recipient).
    pub fn consent_for(&self, index: u64) -> Vec<ConsentEvent> {
        use ConsentAction::*;
        use ConsentScope::*;
        let (to, cn) = recipient(index);
        match pool_of(index) {
            Pool::Consented => vec![self.consent(&to, OptIn, Marketing, 60, "web-form")],
            Pool::NoConsent if index % 100 == 80 => {
                let mut e = self.consent(&to, OptIn, Marketing, 30, "partner-list");
                e.evidence_id = None;
                vec![e]
            }
            Pool::NoConsent => Vec::new(),
            Pool::OptedOut => {
                let reply = if cn { "reply:TD" } else { "reply:STOP" };
                vec![
                    self.consent(&to, OptIn, Marketing, 90, "web-form"),
                    self.consent(&to, OptOut, Marketing, 5, reply),
                ]
            }
            Pool::NoPersonalization => vec![
                self.consent(&to, OptIn, Marketing, 60, "web-form"),
                self.consent(&to, OptOut, Personalization, 10, "app-settings"),
            ],
        }
    }

    /// A random recipient index of `pool`.
    fn pick(&mut self, pool: Pool) -> u64 {
        let (lo, hi) = pool_range(pool);
        let blocks = self.recipients.div_ceil(100);
        loop {
            let i = self.rng.u64(..blocks) * 100 + self.rng.u64(lo..hi);
            if i < self.recipients {
                return i;
            }
        }
    }

    fn event(
        &mut self,
        to: &str,
        sender: &str,
        category: &str,
        body: &str,
        personalized: bool,
    ) -> Vec<u8> {
        self.counter += 1;
        let mut v = serde_json::json!({
            "message_id": format!("m-{}-{:09}", self.run, self.counter),
            "created_at": crate::contract::decision::format_time(&self.now),
            "to": to,
            "sender": sender,
            "category": category,
            "body": body,
            "campaign_id": format!("cmp-{sender}-{}", self.counter % 7),
            "template_id": format!("tpl-{}", self.counter % 13),
        });
        if personalized {
            v["targeting"] = serde_json::json!({"personalized": true});
        }
        if self.counter.is_multiple_of(4) {
            v["recipient"] = serde_json::json!({"age": 20 + self.counter % 50, "student": false});
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    fn marketing_body(&mut self, sender: &str) -> String {
        let n = self.rng.u32(1..99);
        match sender {
            "huinong-credit" => match self.rng.u8(..2) {
                0 => format!("【惠农信贷】经营贷年化利率(单利){}.{}%起，额度最高{}万，详询 https://www.huinong.cn/a{} 回T退订", 5 + n % 4, n % 10, 10 + n, n),
                _ => format!("【惠农信贷】春耕备货不差钱，农户贷年化利率(单利)低至{}.8%，线上申请 https://huinong.cn/farm 回T退订", 4 + n % 5),
            },
            "zhaoshang-bank" => format!("【招商银行】您的信用卡分期年化利率(单利)低至{}.6%，第{}期起享优惠，详情 https://cmbchina.com/f 拒收请回复R", 3 + n % 3, n % 12 + 1),
            "jinyun-mall" => match self.rng.u8(..3) {
                0 => format!("【金云商城】双十二会员日，全场满{}减{}，戳 https://jinyun.com/sale 回T退订", 200 + n * 10, 20 + n),
                1 => format!("【金云商城】您关注的商品降价啦，直降{}元，库存有限 https://jinyun.com/item/{} 回T退订", n, n * 37),
                _ => "【金云商城】周末生鲜节，水果蔬菜低至五折，会员再享95折 https://jinyun.com/fresh 回T退订".to_string(),
            },
            "acme-lending" => format!("Acme Lending: personal loans from {}.9% APR, up to ${},000. Apply at https://acmelending.com/apply Reply STOP to opt out.", 6 + n % 5, 5 + n % 20),
            _ => match self.rng.u8(..2) {
                0 => format!("Sunny Shop: {}% off everything this weekend at https://sunnyshop.com/sale Reply STOP to opt out.", 10 + n % 40),
                _ => format!("Sunny Shop: new arrivals in garden and outdoor, free shipping over ${}. https://sunnyshop.com/new Reply STOP to opt out.", 25 + n),
            },
        }
    }

    fn clean(&mut self, index: u64) -> Vec<u8> {
        let (to, cn) = recipient(index);
        let roll = self.rng.u8(..100);
        let code = self.rng.u32(100_000..1_000_000);
        let order = self.rng.u32(10_000..100_000);
        if cn {
            let sender = CN_SENDERS[self.rng.usize(..CN_SENDERS.len())];
            match roll {
                0..60 => {
                    let body = self.marketing_body(sender);
                    self.event(&to, sender, "marketing", &body, false)
                }
                60..85 => {
                    let (sender, body) = match self.rng.u8(..3) {
                        0 => (
                            "jinyun-mall",
                            format!("【金云商城】您的订单 JY{order} 已发货，预计明日送达。"),
                        ),
                        1 => (
                            "zhaoshang-bank",
                            format!(
                                "【招商银行】您尾号{:04}的信用卡本期账单已出，请按时还款。",
                                order % 10_000
                            ),
                        ),
                        _ => (
                            "huinong-credit",
                            format!(
                                "【惠农信贷】您的借款申请 HN{order} 已受理，审核结果将短信通知。"
                            ),
                        ),
                    };
                    self.event(&to, sender, "notification", &body, false)
                }
                _ => {
                    let body = format!("【招商银行】验证码 {code}，5分钟内有效，请勿泄露。");
                    self.event(&to, "zhaoshang-bank", "otp", &body, false)
                }
            }
        } else {
            let sender = US_SENDERS[self.rng.usize(..US_SENDERS.len())];
            match roll {
                0..60 => {
                    let body = self.marketing_body(sender);
                    self.event(&to, sender, "marketing", &body, false)
                }
                60..85 => {
                    let body =
                        format!("Sunny Shop: your order #{order} has shipped and arrives Tuesday.");
                    self.event(&to, "sunny-shop", "notification", &body, false)
                }
                _ => {
                    let body =
                        format!("Your Acme Lending code is {code}. It expires in 10 minutes.");
                    self.event(&to, "acme-lending", "otp", &body, false)
                }
            }
        }
    }

    fn bad_content(&mut self, index: u64) -> Vec<u8> {
        let (to, cn) = recipient(index);
        let (sender, body) = if cn {
            BAD_CN[self.rng.usize(..BAD_CN.len())]
        } else {
            BAD_US[self.rng.usize(..BAD_US.len())]
        };
        self.event(&to, sender, "marketing", body, false)
    }

    fn malformed(&mut self, index: u64) -> Vec<u8> {
        self.counter += 1;
        let (to, _) = recipient(index);
        match self.rng.u8(..4) {
            0 => b"sender=jinyun-mall&to=138****&body=..".to_vec(),
            1 => format!(r#"{{"message_id":"m-{}-{:09}","to":"{to}"}}"#, self.run, self.counter).into_bytes(),
            2 => format!(
                r#"{{"message_id":"m-{}-{:09}","created_at":"yesterday","to":"13812345678","sender":"jinyun-mall","category":"marketing","body":"hi"}}"#,
                self.run, self.counter
            )
            .into_bytes(),
            _ => format!(
                r#"{{"message_id":{},"created_at":"2026-11-28T09:30:00+08:00","to":"{to}","sender":"sunny-shop","category":"promo","body":""}}"#,
                self.counter
            )
            .into_bytes(),
        }
    }

    /// The next outbound event: value, key (the recipient) and kind.
    /// About 80% are clean (approved, or deferred in quiet hours), 20% break
    /// a rule.
    pub fn next_event(&mut self) -> (Vec<u8>, String, Kind) {
        let roll = self.rng.u8(..100);
        let (bytes, index, kind) = match roll {
            0..2 => {
                let i = self.pick(Pool::Consented);
                let (to, _) = recipient(i);
                let b = self.event(
                    &to,
                    "lucky-loans",
                    "marketing",
                    "Lucky Loans: cash today! Reply STOP to opt out.",
                    false,
                );
                (b, i, Kind::UnknownSender)
            }
            2..6 => {
                let i = self.pick(Pool::NoConsent);
                (self.clean_marketing(i), i, Kind::NoConsent)
            }
            6..9 => {
                let i = self.pick(Pool::OptedOut);
                (self.clean_marketing(i), i, Kind::OptedOut)
            }
            9..11 if !self.recent.is_empty() => {
                let j = self.rng.usize(..self.recent.len());
                let (b, to) = self.recent[j].clone();
                return (b, to, Kind::Duplicate);
            }
            11..13 => {
                let i = self.pick(Pool::Consented);
                (self.malformed(i), i, Kind::Malformed)
            }
            13..15 => {
                let i = self.pick(Pool::NoPersonalization);
                let (to, cn) = recipient(i);
                let sender = if cn { "jinyun-mall" } else { "sunny-shop" };
                let body = self.marketing_body(sender);
                (
                    self.event(&to, sender, "marketing", &body, true),
                    i,
                    Kind::PersonalizationRefused,
                )
            }
            15..20 => {
                let i = self.pick(Pool::Consented);
                (self.bad_content(i), i, Kind::BadContent)
            }
            _ => {
                let i = self.pick(Pool::Consented);
                let b = self.clean(i);
                if self.recent.len() >= 1000 {
                    self.recent.pop_front();
                }
                self.recent.push_back((b.clone(), recipient(i).0));
                (b, i, Kind::Clean)
            }
        };
        (bytes, recipient(index).0, kind)
    }

    fn clean_marketing(&mut self, index: u64) -> Vec<u8> {
        let (to, cn) = recipient(index);
        let sender = if cn {
            CN_SENDERS[self.rng.usize(..CN_SENDERS.len())]
        } else {
            US_SENDERS[self.rng.usize(..US_SENDERS.len())]
        };
        let body = self.marketing_body(sender);
        self.event(&to, sender, "marketing", &body, false)
    }
}

const BAD_CN: &[(&str, &str)] = &[
    (
        "huinong-credit",
        "【惠农信贷】秒批！无视征信，100%下款，日息低至0.02%，戳 https://t.cn/A6xYz 回T退订",
    ),
    (
        "jinyun-mall",
        "金云商城双十二大促，全场五折 https://jinyun.com/sale 回T退订",
    ),
    (
        "jinyun-mall",
        "【金云商城】限时抢购，速戳 https://jinyun.com/sale",
    ),
    (
        "jinyun-mall",
        "【金云商城】急用钱？找贷款，当天到账，详询 https://jinyun.com/loan 回T退订",
    ),
    (
        "zhaoshang-bank",
        "【招商银行】尊敬的客户，请致电 13912345678 办理提额 拒收请回复R",
    ),
    (
        "jinyun-mall",
        "【金云商城】支付宝用户专享，绑卡立减20元 https://jinyun.com/pay 回T退订",
    ),
];

const BAD_US: &[(&str, &str)] = &[
    (
        "sunny-shop",
        "Sunny Shop: cheap cigarettes and vapes 30% off today https://sunnyshop.com/t Reply STOP to opt out.",
    ),
    (
        "acme-lending",
        "Acme Lending: guaranteed approval, no credit check! https://bit.ly/3xYz Reply STOP to opt out.",
    ),
    (
        "sunny-shop",
        "Sunny Shop: flash sale at http://192.168.4.20/deal Reply STOP to opt out.",
    ),
    (
        "sunny-shop",
        "Sunny Shop: big weekend deals at https://sunnyshop.com/deals",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::event;

    #[test]
    fn recipients_are_distinct_valid_numbers_two_thirds_chinese() {
        let mut seen = std::collections::HashSet::new();
        let mut cn = 0;
        for i in 0..30_000 {
            let (to, is_cn) = recipient(i);
            assert!(event::is_e164(&to), "{to}");
            assert!(seen.insert(to));
            cn += usize::from(is_cn);
        }
        assert_eq!(cn, 20_000);
    }

    #[test]
    fn about_a_fifth_break_a_rule_and_malformed_ones_do_not_parse() {
        let mut w = Workload::new(7, Utc::now(), 10_000, "t");
        let mut clean = 0;
        for _ in 0..10_000 {
            let (bytes, key, kind) = w.next_event();
            match kind {
                Kind::Malformed => assert!(event::parse(&bytes).is_err()),
                _ => {
                    let e = event::parse(&bytes).expect("well-formed");
                    assert_eq!(e.to, key);
                }
            }
            clean += usize::from(kind == Kind::Clean);
        }
        assert!((7_600..8_400).contains(&clean), "clean = {clean}");
    }

    #[test]
    fn most_recipients_have_a_counting_opt_in() {
        let w = Workload::new(1, Utc::now(), 1000, "t");
        let with_opt_in = (0..1000)
            .filter(|i| {
                w.consent_for(*i)
                    .iter()
                    .any(|c| c.action == ConsentAction::OptIn && c.counts())
            })
            .count();
        assert_eq!(with_opt_in, 920);
    }

    #[test]
    fn clean_events_are_approved_and_the_others_are_not_by_the_default_policy() {
        use crate::contract::decision::Outcome;
        use crate::policy::{Origin, Policy, PolicySource};
        use crate::state::MemoryState;
        let policy = Policy::load(&PolicySource {
            senders: vec!["config/senders.example.toml".into()],
            packs: None,
        })
        .unwrap();
        // 14:00 UTC on a Wednesday: daytime in the US, quiet hours in China.
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut w = Workload::new(3, now, 5000, "t");
        let mut state = MemoryState::new();
        for i in 0..w.recipients() {
            for c in w.consent_for(i) {
                state.apply_consent(c);
            }
        }
        let mut wrong = Vec::new();
        for _ in 0..5000 {
            let (bytes, _, kind) = w.next_event();
            let (event, d) = policy.decide_bytes(&bytes, Origin::Intake, &state, now);
            if let Some(e) = &event {
                state.record(e, &d, now);
            }
            let ok = match kind {
                Kind::Clean => d.outcome != Outcome::Reject,
                _ => d.outcome == Outcome::Reject,
            };
            if !ok {
                wrong.push(format!(
                    "{kind:?}: {:?} {}",
                    d.reasons
                        .iter()
                        .map(|r| r.code.as_str())
                        .collect::<Vec<_>>(),
                    String::from_utf8_lossy(&bytes)
                ));
            }
        }
        assert!(
            wrong.len() < 25,
            "{} unexpected:\n{}",
            wrong.len(),
            wrong[..wrong.len().min(30)].join("\n")
        );
    }
}
