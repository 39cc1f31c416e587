//! A deterministic stream of realistic outbound SMS for the demo: Chinese
//! (+86) and US (+1) recipients, the five senders of the example registry,
//! and a mix of clean events and events that break a rule (unknown sender,
//! no consent, opted out, duplicate, malformed, personalization refused,
//! and content that the content rules catch).

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::consent::{ConsentAction, ConsentEvent, ConsentScope};

/// Why a generated event was made the way it was (for the demo's legend).
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

/// One recipient and what they agreed to.
#[derive(Debug, Clone)]
struct Person {
    to: String,
    cn: bool,
}

#[derive(Clone, Copy)]
enum Pool {
    Consented,
    NoConsent,
    OptedOut,
    NoPersonalization,
}

/// Recipient pools, each with its consent history.
pub struct Generator {
    rng: fastrand::Rng,
    now: DateTime<Utc>,
    consented: Vec<Person>,
    no_consent: Vec<Person>,
    opted_out: Vec<Person>,
    no_personalization: Vec<Person>,
    sent: Vec<Vec<u8>>,
    counter: u64,
}

const CN_SENDERS: &[&str] = &["huinong-credit", "jinyun-mall", "zhaoshang-bank"];
const US_SENDERS: &[&str] = &["acme-lending", "sunny-shop"];

fn cn_marketing(sender: &str) -> &'static str {
    match sender {
        "huinong-credit" => {
            "【惠农信贷】经营贷年化利率(单利)7.2%起，额度最高50万，详询 https://www.huinong.cn/a 回T退订"
        }
        "zhaoshang-bank" => {
            "【招商银行】您的信用卡分期年化利率(单利)低至3.6%，详情 https://cmbchina.com/f 拒收请回复R"
        }
        _ => "【金云商城】双十二会员日，全场满300减50，戳 https://jinyun.com/sale 回T退订",
    }
}

fn us_marketing(sender: &str) -> &'static str {
    match sender {
        "acme-lending" => {
            "Acme Lending: personal loans from 8.9% APR. Apply at https://acmelending.com/apply Reply STOP to opt out."
        }
        _ => {
            "Sunny Shop: 20% off everything this weekend at https://sunnyshop.com/sale Reply STOP to opt out."
        }
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
];

impl Generator {
    /// Pools sized for a few thousand events; `seed` makes runs repeatable.
    pub fn new(seed: u64, now: DateTime<Utc>) -> Generator {
        let mut g = Generator {
            rng: fastrand::Rng::with_seed(seed),
            now,
            consented: Vec::new(),
            no_consent: Vec::new(),
            opted_out: Vec::new(),
            no_personalization: Vec::new(),
            sent: Vec::new(),
            counter: 0,
        };
        for (pool, n) in [(0, 900), (1, 200), (2, 150), (3, 100)] {
            for i in 0..n {
                let person = g.person(i % 3 != 2);
                match pool {
                    0 => g.consented.push(person),
                    1 => g.no_consent.push(person),
                    2 => g.opted_out.push(person),
                    _ => g.no_personalization.push(person),
                }
            }
        }
        g
    }

    fn person(&mut self, cn: bool) -> Person {
        let to = if cn {
            let prefix = ["138", "139", "150", "186", "177"][self.rng.usize(..5)];
            format!("+86{prefix}{:08}", self.rng.u32(..100_000_000))
        } else {
            let area = ["212", "415", "305", "312", "206", "512"][self.rng.usize(..6)];
            format!(
                "+1{area}{}{:06}",
                self.rng.u32(2..10),
                self.rng.u32(..1_000_000)
            )
        };
        Person { to, cn }
    }

    fn consent(
        &self,
        to: &str,
        action: ConsentAction,
        scope: ConsentScope,
        days_ago: i64,
        source: &str,
    ) -> ConsentEvent {
        ConsentEvent {
            to: to.to_string(),
            action,
            scope,
            sender: "*".into(),
            at: self.now - Duration::days(days_ago),
            source: source.into(),
            evidence_id: (action == ConsentAction::OptIn)
                .then(|| format!("ev-{}", &to[to.len() - 6..])),
            expires_at: None,
        }
    }

    /// The consent topic's content: opt-ins for the consented pools, an
    /// opt-in then a later opt-out for the opted-out pool, a personalization
    /// opt-out, and a few opt-ins without evidence (ignored, counted).
    pub fn consent_events(&self) -> Vec<ConsentEvent> {
        use ConsentAction::*;
        use ConsentScope::*;
        let mut out = Vec::new();
        for p in self.consented.iter().chain(&self.no_personalization) {
            out.push(self.consent(&p.to, OptIn, Marketing, 60, "web-form"));
        }
        for p in &self.no_personalization {
            out.push(self.consent(&p.to, OptOut, Personalization, 10, "app-settings"));
        }
        for p in &self.opted_out {
            out.push(self.consent(&p.to, OptIn, Marketing, 90, "web-form"));
            let reply = if p.cn { "reply:TD" } else { "reply:STOP" };
            out.push(self.consent(&p.to, OptOut, Marketing, 5, reply));
        }
        for p in self.no_consent.iter().take(40) {
            let mut e = self.consent(&p.to, OptIn, Marketing, 30, "partner-list");
            e.evidence_id = None;
            out.push(e);
        }
        out
    }

    fn pick(&mut self, pool: Pool) -> Person {
        let pool = match pool {
            Pool::Consented => &self.consented,
            Pool::NoConsent => &self.no_consent,
            Pool::OptedOut => &self.opted_out,
            Pool::NoPersonalization => &self.no_personalization,
        };
        pool[self.rng.usize(..pool.len())].clone()
    }

    fn event(
        &mut self,
        p: &Person,
        sender: &str,
        category: &str,
        body: &str,
        personalized: bool,
    ) -> Vec<u8> {
        self.counter += 1;
        let mut v = json!({
            "message_id": format!("m-demo-{:07}", self.counter),
            "created_at": crate::decision::format_time(&self.now),
            "to": p.to,
            "sender": sender,
            "category": category,
            "body": body,
            "campaign_id": format!("cmp-{sender}-1128"),
        });
        if personalized {
            v["targeting"] = json!({"personalized": true});
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    fn clean(&mut self, p: &Person) -> Vec<u8> {
        let roll = self.rng.u8(..100);
        if p.cn {
            let sender = CN_SENDERS[self.rng.usize(..CN_SENDERS.len())];
            match roll {
                0..70 => self.event(p, sender, "marketing", cn_marketing(sender), false),
                70..88 => self.event(
                    p,
                    "jinyun-mall",
                    "notification",
                    "【金云商城】您的订单 JY1128 已发货，预计明日送达。",
                    false,
                ),
                _ => self.event(
                    p,
                    "zhaoshang-bank",
                    "otp",
                    "【招商银行】验证码 482913，5分钟内有效，请勿泄露。",
                    false,
                ),
            }
        } else {
            let sender = US_SENDERS[self.rng.usize(..US_SENDERS.len())];
            match roll {
                0..70 => self.event(p, sender, "marketing", us_marketing(sender), false),
                70..88 => self.event(
                    p,
                    "sunny-shop",
                    "notification",
                    "Sunny Shop: your order #48213 has shipped.",
                    false,
                ),
                _ => self.event(
                    p,
                    "acme-lending",
                    "otp",
                    "Your Acme Lending code is 482913. It expires in 10 minutes.",
                    false,
                ),
            }
        }
    }

    /// The next event: its bytes, key (the recipient when there is one) and kind.
    pub fn next_event(&mut self) -> (Vec<u8>, Option<String>, Kind) {
        let roll = self.rng.u8(..100);
        let p = self.pick(Pool::Consented);
        let (bytes, kind) = match roll {
            0..4 => (
                self.event(
                    &p,
                    "lucky-loans",
                    "marketing",
                    "Lucky Loans: cash today! Reply STOP to opt out.",
                    false,
                ),
                Kind::UnknownSender,
            ),
            4..9 => {
                let q = self.pick(Pool::NoConsent);
                (self.clean_marketing(&q), Kind::NoConsent)
            }
            9..13 => {
                let q = self.pick(Pool::OptedOut);
                (self.clean_marketing(&q), Kind::OptedOut)
            }
            13..16 if !self.sent.is_empty() => {
                let i = self.rng.usize(..self.sent.len());
                (self.sent[i].clone(), Kind::Duplicate)
            }
            16..19 => (self.malformed(&p), Kind::Malformed),
            19..21 => {
                let q = self.pick(Pool::NoPersonalization);
                let sender = if q.cn { "jinyun-mall" } else { "sunny-shop" };
                let body = if q.cn {
                    cn_marketing(sender)
                } else {
                    us_marketing(sender)
                };
                (
                    self.event(&q, sender, "marketing", body, true),
                    Kind::PersonalizationRefused,
                )
            }
            21..30 => {
                let (sender, body) = if p.cn {
                    BAD_CN[self.rng.usize(..BAD_CN.len())]
                } else {
                    BAD_US[self.rng.usize(..BAD_US.len())]
                };
                (
                    self.event(&p, sender, "marketing", body, false),
                    Kind::BadContent,
                )
            }
            _ => {
                let bytes = self.clean(&p);
                if self.sent.len() < 500 {
                    self.sent.push(bytes.clone());
                }
                (bytes, Kind::Clean)
            }
        };
        let key = match kind {
            Kind::Malformed => None,
            _ => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["to"].as_str().map(str::to_string)),
        };
        (bytes, key, kind)
    }

    fn clean_marketing(&mut self, p: &Person) -> Vec<u8> {
        if p.cn {
            let s = CN_SENDERS[self.rng.usize(..CN_SENDERS.len())];
            self.event(p, s, "marketing", cn_marketing(s), false)
        } else {
            let s = US_SENDERS[self.rng.usize(..US_SENDERS.len())];
            self.event(p, s, "marketing", us_marketing(s), false)
        }
    }

    fn malformed(&mut self, p: &Person) -> Vec<u8> {
        self.counter += 1;
        match self.rng.u8(..5) {
            0 => b"sender=jinyun-mall&to=138****&body=..".to_vec(),
            1 => vec![0xff, 0xfe, 0x7b, 0x22],
            2 => format!(r#"{{"message_id":"m-demo-{:07}","to":"{}"}}"#, self.counter, p.to).into_bytes(),
            3 => format!(
                r#"{{"message_id":"m-demo-{:07}","created_at":"yesterday","to":"13812345678","sender":"jinyun-mall","category":"marketing","body":"hi"}}"#,
                self.counter
            )
            .into_bytes(),
            _ => format!(
                r#"{{"message_id":{},"created_at":"2026-11-28T09:30:00+08:00","to":"{}","sender":"sunny-shop","category":"promo","body":""}}"#,
                self.counter, p.to
            )
            .into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event;

    #[test]
    fn the_mix_has_every_kind_and_malformed_ones_do_not_parse() {
        let mut g = Generator::new(7, Utc::now());
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..2000 {
            let (bytes, key, kind) = g.next_event();
            kinds.insert(format!("{kind:?}"));
            match kind {
                Kind::Malformed => assert!(event::parse(&bytes).is_err()),
                _ => {
                    let e = event::parse(&bytes).expect("well-formed");
                    assert_eq!(key.as_deref(), Some(e.to.as_str()));
                }
            }
        }
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        assert!(!g.consent_events().is_empty());
    }
}
