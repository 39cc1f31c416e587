//! Lending read by meaning: patterns beyond the pack's credit terms (an
//! amount with 借/贷/borrow), the cost a credit offer names in any form
//! (日息万分之五, 月息1分, "1.5% a month", "$15 per $100 for 14 days") with
//! the annual rate it implies, and whether an annualized percentage figure
//! is given (年化利率 7.2%, 9.9% APR; the word 年化 alone is no figure).
//!
//! Rates are simple (not compounded): a daily rate × 365, weekly × 52,
//! monthly × 12, so a reviewer sees the real cost next to the reason.

use std::sync::LazyLock;

use regex::Regex;

use crate::policy::lexicon::Span;

/// Builds a regex from a constant pattern (the tests check that every one
/// compiles; one that did not would only be skipped).
fn re(p: &str) -> Option<Regex> {
    Regex::new(p).ok()
}

static AMOUNT: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // 借5万, 可借20000元, 最高可贷50万, 贷款3000块
        re(r"(?:借|贷)(?:款|钱)?[^，。！？,!?\n\d]{0,6}?\d[\d,.]*\s*(?:万|千|元|块|w\b|W\b)"),
        // 5万元随心借, 2000元急用借
        re(r"\d[\d,.]*\s*(?:万|千|元)[^，。！？,!?\n]{0,4}?(?:借|贷)"),
        // borrow $500, borrow up to $5,000; $500 loan
        re(r"(?i)\bborrow\b[^.!?\n]{0,20}?\$\s?\d|\$\s?\d[\d,]*(?:\.\d+)?\s+(?:payday\s+)?(?:loan|cash advance|advance)\b"),
    ]
    .into_iter()
    .flatten()
    .collect()
});

/// Where the body offers an amount of credit, outside `own` spans.
pub fn amount_offer(text: &str, own: &[Span]) -> Option<Span> {
    if !text.contains(['借', '贷', '$']) && !text.to_ascii_lowercase().contains("borrow") {
        return None;
    }
    AMOUNT.iter().find_map(|r| {
        r.find_iter(text)
            .map(|m| (m.start(), m.end()))
            .find(|&(s, e)| !own.iter().any(|&(a, b)| s < b && a < e))
    })
}

/// How long the period of a rate is, in periods per year.
fn per_year(unit: &str) -> Option<f64> {
    let u = unit.to_ascii_lowercase();
    if u.starts_with('日') || u.starts_with('天') || u.starts_with("day") || u == "daily" {
        Some(365.0)
    } else if u.starts_with('周') || u.starts_with("week") {
        Some(52.0)
    } else if u.starts_with('月') || u.starts_with("mo") {
        Some(12.0)
    } else if u.starts_with('年') || u.starts_with("year") || u.starts_with("annual") {
        Some(1.0)
    } else {
        None
    }
}

/// A number written in digits or in simple Chinese numerals (五, 十五, 两).
fn number(s: &str) -> Option<f64> {
    if let Ok(n) = s.replace(',', "").parse::<f64>() {
        return Some(n);
    }
    let digit = |c: char| "零一二三四五六七八九".chars().position(|d| d == c);
    let mut total = 0usize;
    let mut cur = 0usize;
    for c in s.chars() {
        match c {
            '两' => cur = 2,
            '十' => {
                total += cur.max(1) * 10;
                cur = 0;
            }
            c => cur = digit(c)?,
        }
    }
    Some((total + cur) as f64)
}

const NUM: &str = r"(\d+(?:\.\d+)?|[零一二两三四五六七八九十]+)";

static COSTS: LazyLock<Vec<(Regex, Cost)>> = LazyLock::new(|| {
    let lead = r"(?:低至|仅|只要|只需|约|为|是|:|：|\s)*";
    vec![
        // 日息万分之五, 日利率万分之3, 每天万分之五; 万分之五 alone is daily.
        (
            re(&format!(
                r"(日|天|周|月|年)?(?:息|利率|利息|费率|费)?{lead}万分之{NUM}"
            )),
            Cost::PerTenThousand,
        ),
        // 月息1分, 日息5厘, 年息3分
        (
            re(&format!(r"(日|月|年)(?:息|利息|利率){lead}{NUM}\s*(分|厘)")),
            Cost::FenLi,
        ),
        // 日息0.05%, 月利率1.5%, 每天0.1%
        (
            re(&format!(
                r"(日|天|周|月)(?:息|利率|利息|费率|费|综合费率)?{lead}(\d+(?:\.\d+)?)\s*%"
            )),
            Cost::PercentChinese,
        ),
        // 1.5% a month, 0.8% per day, 2% weekly, 1%/mo
        (
            re(
                r"(?i)(\d+(?:\.\d+)?)\s*%\s*(?:interest\s+)?(?:(?:a|an|per|each|every|/)\s*(day|week|month|mo)\b|(daily|weekly|monthly))",
            ),
            Cost::PercentEnglish,
        ),
        // $15 per $100 for 14 days; $15 for every $100 borrowed
        (
            re(
                r"(?i)\$\s?(\d+(?:\.\d+)?)\s*(?:per|for every|for each|every|on every|/)\s*\$\s?(\d[\d,]*(?:\.\d+)?)(?:\s*(?:borrowed|loaned))?(?:[^.!?\n]{0,12}?(?:for|over|every)\s+(\d+)\s*(day|week|month)s?)?",
            ),
            Cost::Fee,
        ),
        // 每天只需5元, 日均3元, 每天仅2块
        (
            re(r"(?:每天|每日|日均|一天)(?:只需|仅需|只要|仅|低至)?\s*(\d+(?:\.\d+)?)\s*(?:元|块)"),
            Cost::DailyYuan,
        ),
    ]
    .into_iter()
    .filter_map(|(r, c)| Some((r?, c)))
    .collect()
});

#[derive(Debug, Clone, Copy)]
enum Cost {
    PerTenThousand,
    FenLi,
    PercentChinese,
    PercentEnglish,
    Fee,
    DailyYuan,
}

/// A cost named in the body: where, and the simple annual rate in percent
/// it implies when the text allows computing one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NamedCost {
    pub span: Span,
    pub annual: Option<f64>,
}

/// The principal of the offer (借1万, 借款10000元), for a cost in yuan a day.
fn principal(text: &str) -> Option<f64> {
    static P: LazyLock<Option<Regex>> = LazyLock::new(|| {
        re(r"(?:借|贷)(?:款|钱)?[^，。！？\d]{0,4}?(\d+(?:\.\d+)?)\s*(万|千|元|块)")
    });
    let c = P.as_ref()?.captures(text)?;
    let n = number(c.get(1)?.as_str())?;
    let scale = match c.get(2)?.as_str() {
        "万" => 10_000.0,
        "千" => 1_000.0,
        _ => 1.0,
    };
    Some(n * scale).filter(|p| *p > 0.0)
}

/// Compiles the patterns now (at policy load), not at the first decision.
pub fn warm() {
    LazyLock::force(&AMOUNT);
    LazyLock::force(&COSTS);
}

/// What a text must contain for a cost pattern of this kind to match: a
/// cheap test that spares most bodies the regex.
fn may_match(kind: Cost, text: &str) -> bool {
    match kind {
        Cost::PerTenThousand => text.contains("万分之"),
        Cost::FenLi => text.contains(['分', '厘']),
        Cost::PercentChinese | Cost::PercentEnglish => text.contains('%'),
        Cost::Fee => text.contains('$'),
        Cost::DailyYuan => text.contains(['元', '块']),
    }
}

/// The first cost pattern in `text`, with its implied annual rate.
pub fn named_cost(text: &str) -> Option<NamedCost> {
    let mut best: Option<NamedCost> = None;
    for (r, kind) in COSTS.iter() {
        if !may_match(*kind, text) {
            continue;
        }
        let Some(c) = r.captures(text) else {
            continue;
        };
        let Some(m) = c.get(0) else {
            continue;
        };
        let g = |i: usize| c.get(i).map(|m| m.as_str());
        let annual = match kind {
            Cost::PerTenThousand => {
                let n = g(2).and_then(number);
                let periods = g(1).and_then(per_year).unwrap_or(365.0);
                n.map(|n| n / 100.0 * periods)
            }
            Cost::FenLi => {
                let n = g(2).and_then(number);
                let periods = g(1).and_then(per_year);
                // 分 is a tenth of the period's base (年息1分 = 10%), 厘 a
                // hundredth; the base of 月 is 10% (月息1分 = 1%) and of 日 1%.
                let base = match g(1) {
                    Some("年") => 100.0,
                    Some("月") => 10.0,
                    _ => 1.0,
                };
                let unit = if g(3) == Some("分") { 0.1 } else { 0.01 };
                n.zip(periods).map(|(n, p)| n * unit * base * p)
            }
            Cost::PercentChinese => {
                let n = g(2).and_then(number);
                n.zip(g(1).and_then(per_year)).map(|(n, p)| n * p)
            }
            Cost::PercentEnglish => {
                let n = g(1).and_then(number);
                let unit = g(2).or(g(3));
                n.zip(unit.and_then(per_year)).map(|(n, p)| n * p)
            }
            Cost::Fee => {
                let fee = g(1).and_then(number);
                let amount = g(2).and_then(number).filter(|a| *a > 0.0);
                let days = g(3).and_then(number).filter(|d| *d > 0.0).map(|d| {
                    d * match g(4).map(str::to_ascii_lowercase).as_deref() {
                        Some("week") => 7.0,
                        Some("month") => 365.0 / 12.0,
                        _ => 1.0,
                    }
                });
                match (fee, amount, days) {
                    (Some(f), Some(a), Some(d)) => Some(f / a * 365.0 / d * 100.0),
                    _ => None,
                }
            }
            Cost::DailyYuan => {
                let daily = g(1).and_then(number);
                daily
                    .zip(principal(text))
                    .map(|(d, p)| d / p * 365.0 * 100.0)
            }
        };
        let found = NamedCost {
            span: (m.start(), m.end()),
            annual,
        };
        // Prefer a cost with a computable rate, then the earliest.
        best = match best {
            None => Some(found),
            Some(b) if b.annual.is_none() && found.annual.is_some() => Some(found),
            Some(b) if b.annual.is_some() == found.annual.is_some() && found.span.0 < b.span.0 => {
                Some(found)
            }
            b => b,
        };
    }
    best
}

/// Patterns for an annualized percentage figure introduced by one of
/// `terms` (年化利率 7.2%, APR 9.9%) or followed by one (9.9% APR).
pub fn annual_figure(terms: &[String]) -> Result<Vec<Regex>, String> {
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let alt = terms
        .iter()
        .map(|t| {
            let e = regex::escape(t.trim());
            // An ASCII term is a word: APR is not inside "APRIL".
            if t.trim()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b' ')
            {
                format!(r"\b{e}\b")
            } else {
                e
            }
        })
        .collect::<Vec<_>>()
        .join("|");
    [
        format!(r"(?i)(?:{alt})[^0-9%，。,;\n]{{0,12}}?\d+(?:\.\d+)?\s*%"),
        format!(r"(?i)\d+(?:\.\d+)?\s*%\s*(?:\(\s*)?(?:{alt})"),
    ]
    .iter()
    .map(|p| Regex::new(p).map_err(|e| format!("annualized_terms: {e}")))
    .collect()
}

/// Does the text give an annualized percentage figure?
pub fn has_annual_figure(text: &str, figure: &[Regex]) -> bool {
    // Every figure is a percentage.
    text.contains('%') && figure.iter().any(|r| r.is_match(text))
}

/// An annual rate for a reason's detail: 18.25%, 12%, 391%.
pub fn format_rate(annual: f64) -> String {
    if annual >= 100.0 {
        format!("{annual:.0}%")
    } else {
        let s = format!("{annual:.2}");
        format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Option<String> {
        named_cost(text).and_then(|c| c.annual).map(format_rate)
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(AMOUNT.len(), 3);
        assert_eq!(COSTS.len(), 6);
        assert!(P_OK());
    }

    #[allow(non_snake_case)]
    fn P_OK() -> bool {
        principal("借1万").is_some()
    }

    #[test]
    fn implied_annual_rates() {
        assert_eq!(rate("日息万分之五，随借随还").as_deref(), Some("18.25%"));
        assert_eq!(rate("月息1分").as_deref(), Some("12%"));
        assert_eq!(rate("日息5厘").as_deref(), Some("18.25%"));
        assert_eq!(rate("日息0.05%").as_deref(), Some("18.25%"));
        assert_eq!(rate("only 1.5% a month").as_deref(), Some("18%"));
        assert_eq!(
            rate("just $15 per $100 borrowed for 14 days").as_deref(),
            Some("391%")
        );
        assert_eq!(rate("借1万每天只需5元").as_deref(), Some("18.25%"));
        assert!(named_cost("手续费低").is_none());
        assert!(named_cost("每天5元").is_some_and(|c| c.annual.is_none()));
    }

    #[test]
    fn annualized_figures_and_amounts() {
        let terms: Vec<String> = ["年化", "年利率", "APR", "annual percentage rate"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = annual_figure(&terms).unwrap();
        assert!(has_annual_figure("年化利率(单利)7.2%起", &f));
        assert!(has_annual_figure("loans from 9.9% APR", &f));
        assert!(has_annual_figure("APR 35.99%", &f));
        assert!(!has_annual_figure("年化低，日息万分之五", &f));
        assert!(!has_annual_figure("APRIL sale 20%", &f));
        assert!(amount_offer("最高可借20万，当天到账", &[]).is_some());
        assert!(amount_offer("5万元随心借", &[]).is_some());
        assert!(amount_offer("Borrow up to $1,000 today", &[]).is_some());
        assert!(amount_offer("惠农信贷500元优惠券", &[(0, "惠农信贷".len())]).is_none());
        assert!(amount_offer("满100减20元", &[]).is_none());
    }
}
