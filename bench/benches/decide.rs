//! Benchmark of `Policy::decide` over a realistic mix: Chinese and English
//! bodies of 43–332 characters, every pack (+86, +1 with several area
//! codes, other countries), every category, clean and violating messages.
//!
//! Prints decisions per second on one core and p50/p99/p999 per decision
//! (each call timed with `Instant` in a plain loop), then runs criterion.
//! Run: `cargo bench --bench decide` (`SMSGATE_BENCH_ROUNDS=n` changes the
//! number of timed passes over the mix, default 100).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput};
use smsgate::contract::consent::{ConsentEvent, ConsentFact};
use smsgate::contract::event::{OutboundSms, parse};
use smsgate::policy::{CapView, ConsentView, DedupView, Origin, Policy, Registry, Seen};

/// A read-only store shaped like the pipeline's: lookups by borrowed key,
/// no allocation per call.
#[derive(Default)]
struct BenchState {
    consent: HashMap<String, Vec<ConsentEvent>>,
    caps: HashMap<String, u32>,
}

impl ConsentView for BenchState {
    fn for_each_consent(&self, to: &str, f: &mut dyn FnMut(ConsentFact<'_>)) {
        for e in self.consent.get(to).into_iter().flatten() {
            f(e.fact());
        }
    }
}
impl CapView for BenchState {
    fn approved_since(&self, to: &str, _subject: &str, _since: DateTime<Utc>) -> u32 {
        self.caps.get(to).copied().unwrap_or(0)
    }
}
impl DedupView for BenchState {
    fn seen(&self, _: &str) -> Option<Seen> {
        None
    }
}

/// (sender, category, body): mostly ordinary traffic, some violations.
const CN_MESSAGES: &[(&str, &str, &str)] = &[
    (
        "huinong-credit",
        "marketing",
        "【惠农信贷】经营贷年化利率(单利)7.2%起，最高可贷50万元，详询 https://www.huinong.cn/a 回T退订",
    ),
    (
        "huinong-credit",
        "notification",
        "【惠农信贷】尊敬的客户，您的本月账单已出，应还金额1,234.56元，还款日为2026-12-05，请按时还款。如已还款请忽略。",
    ),
    (
        "huinong-credit",
        "otp",
        "【惠农信贷】验证码 482913，用于登录验证，5分钟内有效，请勿泄露给他人，工作人员不会向您索取。",
    ),
    (
        "huinong-credit",
        "marketing",
        "【惠农信贷】致尊敬的客户：为感谢您长期以来的支持，我们推出小微企业经营贷专项服务，年化利率(单利)6.8%起，额度最高100万元，期限灵活，随借随还，按日计息，提前还款无违约金。申请材料简单，线上提交，审批进度实时可查。详情请访问 https://www.huinong.cn/sme 或致电客服热线 95500 咨询，我们的客户经理将竭诚为您服务。本活动最终解释权归惠农信贷所有，贷款有风险，借款需谨慎，请根据个人能力合理贷款。回T退订",
    ),
    (
        "jinyun-mall",
        "marketing",
        "【金云商城】双十二大促开启！全场满300减50，会员再享9折，限量抢购，先到先得，详情见 jinyun.com/sale 拒收请回复R",
    ),
    (
        "jinyun-mall",
        "notification",
        "【金云商城】您的订单已发货，快递单号 SF1234567890123，预计明天送达，可在 App 内查看物流详情。感谢您的支持，祝您购物愉快！我们将持续为您提供优质的商品与服务，欢迎再次光临。",
    ),
    (
        "jinyun-mall",
        "marketing",
        "【金云商城】秒 批 贷款，日息0.05%，无视征信，详询 t.cn/abc 或致电 138-1234-5678 回T退订",
    ),
    (
        "jinyun-mall",
        "notification",
        "金云商城提醒您：支付宝账户存在风险，请尽快通过 http://192.168.1.10/verify 核验，否则将冻结。",
    ),
    (
        "zhaoshang-bank",
        "notification",
        "【招商银行】您尾号1234的信用卡于11月28日消费人民币328.00元，当前可用额度12,000元。如有疑问请致电95555。",
    ),
    (
        "zhaoshang-bank",
        "otp",
        "【招商银行】限时提额！您已获得专属额度提升资格，立即申请，点击领取：cmbchina.com/up 验证码 551203",
    ),
    (
        "zhaoshang-bank",
        "notification",
        "【招商银行】身份证11010519491231002X 已完成实名认证，感谢您的信任。",
    ),
];

const EN_MESSAGES: &[(&str, &str, &str)] = &[
    (
        "acme-lending",
        "marketing",
        "Acme Lending: personal loans from 7.9% APR, decisions in minutes. Details at acmelending.com/p. Reply STOP to opt out",
    ),
    (
        "acme-lending",
        "notification",
        "Acme Lending: your payment of $250.00 is due on 2026-12-01. Log in at www.acmelending.com to pay. Questions? Call 800-555-0100.",
    ),
    (
        "acme-lending",
        "otp",
        "Acme Lending code 552211. It expires in 10 minutes. Do not share it with anyone.",
    ),
    (
        "acme-lending",
        "marketing",
        "Acme Lending: thank you for being a customer. This month we are offering small business lines of credit from 8.4% APR with flexible terms, no prepayment penalty and funding in as little as two business days after approval. Rates depend on credit history. See acmelending.com/business for terms and eligibility. Reply STOP to opt out",
    ),
    (
        "acme-lending",
        "marketing",
        "Acme Lending reminder: loans at 5% interest per month, low fees. Visit acmelending.com/apply. Text STOP to quit",
    ),
    (
        "sunny-shop",
        "marketing",
        "Sunny Shop: 20% off everything this weekend only! Shop now at sunnyshop.com/sale. Reply STOP to opt out",
    ),
    (
        "sunny-shop",
        "notification",
        "Sunny Shop: your order #A1B2C3 has shipped and will arrive Tuesday. Track it at sunnyshop.com/track. Thanks for shopping with us, and see you again soon!",
    ),
    (
        "sunny-shop",
        "otp",
        "Sunny Shop: your verification code is 918273. It expires in 5 minutes.",
    ),
    (
        "sunny-shop",
        "marketing",
        "Sunny Shop: cash advance today, guaranteed approval, no credit check! Call (415) 555-2671 or visit bit.ly/cash",
    ),
    (
        "sunny-shop",
        "marketing",
        "Sunny Shop: wine tasting and cigars tonight at our downtown store, 21+ only. Reply STOP to opt out",
    ),
    (
        "sunny-shop",
        "notification",
        "Your IRS refund is on hold. Verify your card 4111 1111 1111 1111 at xn--irs-refund-9za.com within 24 hours.",
    ),
];

fn events() -> Vec<OutboundSms> {
    let tos_cn = ["+8613812345678", "+8613912345678", "+8615012345678"];
    let tos_us = [
        "+12125551234",
        "+13105551234",
        "+12145551234",
        "+12085551234",
        "+15555551234",
        "+13055551234",
    ];
    let tos_other = ["+447700900123", "+4915112345678", "+6591234567"];
    let mut out = Vec::new();
    for i in 0..1200usize {
        let k = i / 3;
        let (to, (sender, category, body)) = match i % 3 {
            0 => (tos_cn[k % 3], CN_MESSAGES[k % CN_MESSAGES.len()]),
            1 => (tos_us[k % tos_us.len()], EN_MESSAGES[k % EN_MESSAGES.len()]),
            _ if k % 2 == 0 => (tos_other[k % 3], CN_MESSAGES[(k / 2) % CN_MESSAGES.len()]),
            _ => (tos_other[k % 3], EN_MESSAGES[(k / 2) % EN_MESSAGES.len()]),
        };
        let v = serde_json::json!({
            "message_id": format!("m-{i}"), "created_at": "2026-11-28T09:30:00+08:00",
            "to": to, "sender": sender, "category": category, "body": body,
            "subject": format!("s-{}", i % 7),
            "recipient": {"age": 20 + (i % 50), "student": i % 11 == 0},
            "targeting": {"personalized": i % 5 == 0}
        });
        out.push(parse(v.to_string().as_bytes()).expect("bench events are well-formed"));
    }
    out
}

fn state(events: &[OutboundSms]) -> BenchState {
    let mut s = BenchState::default();
    // One opt-in per recipient (and sender `*`), except a few recipients
    // without consent; a few recipients at their cap.
    for (i, e) in events.iter().enumerate() {
        if s.consent.contains_key(&e.to) || i % 13 == 0 {
            continue;
        }
        let line = serde_json::json!({"to": e.to, "action": "opt_in", "scope": "marketing", "sender": "*",
            "at": "2026-10-01T00:00:00Z", "source": "web", "evidence_id": "ev"});
        let c = ConsentEvent::parse(line.to_string().as_bytes()).expect("valid consent");
        s.consent.entry(e.to.clone()).or_default().push(c);
        if i % 17 == 0 {
            s.caps.insert(e.to.clone(), 3);
        }
    }
    s
}

/// CPU time this thread has run (Linux `/proc/thread-self/schedstat`), so
/// throughput per core is not diluted by other processes on a busy machine.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let registry = Registry::parse(include_str!("../../config/senders.example.toml"))
        .expect("sample registry");
    let policy = Policy::with_registry(registry);
    let events = events();
    let state = state(&events);
    // 10:00 in Shanghai, 21:00 in New York, 18:00 in Los Angeles: a mix of
    // allowed and quiet-hour decisions.
    let nows: [DateTime<Utc>; 2] = [
        "2026-11-28T02:00:00Z".parse().unwrap(),
        "2026-11-28T17:00:00Z".parse().unwrap(),
    ];
    let chars: Vec<usize> = events.iter().map(|e| e.body.chars().count()).collect();
    let mut outcomes = HashMap::new();
    for e in &events {
        let d = policy.decide(e, Origin::Intake, &state, nows[0]);
        *outcomes.entry(d.outcome.as_str()).or_insert(0) += 1;
    }

    // Warm up, then time every call.
    for e in &events {
        black_box(policy.decide(e, Origin::Intake, &state, nows[0]));
    }
    let rounds: usize = std::env::var("SMSGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        // `cargo test --all-targets` runs this without `--bench`: a smoke run.
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            100
        } else {
            2
        });
    let mut samples = Vec::with_capacity(events.len() * rounds);
    let start = Instant::now();
    for r in 0..rounds {
        let now = nows[r % 2];
        for e in &events {
            let t = Instant::now();
            let d = policy.decide(black_box(e), Origin::Intake, &state, now);
            samples.push(t.elapsed());
            black_box(d);
        }
    }
    let wall = start.elapsed();
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    let n = samples.len() as f64;

    // Throughput without per-call timers: wall clock and this thread's CPU time.
    let cpu0 = thread_cpu();
    let start = Instant::now();
    for r in 0..rounds {
        let now = nows[r % 2];
        for e in &events {
            black_box(policy.decide(black_box(e), Origin::Intake, &state, now));
        }
    }
    let loop_wall = start.elapsed();
    let loop_cpu = cpu0.zip(thread_cpu()).map(|(a, b)| b - a);

    println!(
        "decide: {} events ({}–{} chars; outcomes at 02:00Z {:?}), {} decisions per loop",
        events.len(),
        chars.iter().min().unwrap_or(&0),
        chars.iter().max().unwrap_or(&0),
        outcomes,
        samples.len()
    );
    println!(
        "decide: {:.0} decisions/s per core by CPU time ({:.2} µs CPU each); {:.0} decisions/s by wall clock",
        loop_cpu.map_or(0.0, |c| n / c.as_secs_f64()),
        loop_cpu.map_or(0.0, |c| c.as_secs_f64() * 1e6 / n),
        n / loop_wall.as_secs_f64()
    );
    println!(
        "decide (each call timed, wall clock, {:.0}/s incl. timer): mean {:.2} µs, p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs",
        n / wall.as_secs_f64(),
        total.as_secs_f64() * 1e6 / n,
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.90).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        percentile(&samples, 0.999).as_secs_f64() * 1e6,
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e6)
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("decide: load average while measuring: {}", load.trim());
    }

    let raw: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            serde_json::json!({"message_id": e.message_id, "created_at": e.created_at.to_rfc3339(), "to": e.to,
                "sender": e.sender, "category": e.category.as_str(), "body": e.body})
            .to_string()
            .into_bytes()
        })
        .collect();

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("decide_mix", |b| {
        b.iter(|| {
            for e in &events {
                black_box(policy.decide(black_box(e), Origin::Intake, &state, nows[0]));
            }
        })
    });
    g.bench_function("parse_and_decide_mix", |b| {
        b.iter(|| {
            for bytes in &raw {
                black_box(policy.decide_bytes(black_box(bytes), Origin::Intake, &state, nows[0]));
            }
        })
    });
    g.finish();
    c.final_summary();
}
