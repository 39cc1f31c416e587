//! Impersonation: an institution's name (bank, card network, regulator,
//! police, tax, social security, post or toll service, payment brand) where
//! the text speaks as, for or with it, not a third party named in a plain
//! statement ("shipped via USPS", 支持支付宝付款).
//!
//! A name counts when it is a word of the folded body, is not the sender's
//! own, and
//! - leads the text (first, or right after the 【signature】 followed by a
//!   colon or 提醒/通知), or stands as a signature (【name】, `- Name` at the end);
//! - or its sentence claims partnership (合作, 官方, 授权, official, partner);
//! - or its sentence asks the reader to act on an account, card, payment,
//!   parcel, fine, tax or verification (冻结, 核实, 请点击, 逾期, verify,
//!   suspended, unpaid toll, held package).
//!
//! Names that are also common words (Chase, Visa, Discover, Citizens,
//! Chime, Current) count only capitalized and followed by a colon or an
//! institutional word (Chase bank, Visa card, Discover account), or as a
//! signature: "chase the deals" and "visa rules" name nobody.

use super::phrases::Phrases;
use crate::policy::lexicon::Span;

#[derive(Debug, Clone)]
pub struct Matcher {
    names: Phrases,
    /// Per name pattern: also a common word.
    common: Vec<bool>,
    /// Partnership claims and requests to act.
    cues: Phrases,
    /// Anti-fraud warnings: a sentence naming the institution to warn about
    /// it (公检法不会设立安全账户, "the IRS will never text you") speaks for no one.
    warnings: Phrases,
}

/// Words after a common-word name that make it the institution.
const INSTITUTIONAL: &[&str] = &[
    "bank",
    "card",
    "account",
    "credit",
    "debit",
    "online",
    "mobile",
    "app",
    "alert",
    "fraud",
    "security",
    "sapphire",
    "freedom",
    "rewards",
    "member",
    "customer",
    "ending",
    "visa",
    "mastercard",
    "checking",
    "savings",
    "support",
    "team",
];

/// What may follow a name leading the text after the sender's signature.
const SPEAKER: &[&str] = &[
    ":",
    "：",
    "提醒",
    "通知",
    "温馨提示",
    "提示",
    "客服",
    "官方",
    " alert",
    " notice",
];

fn sentence(text: &str, span: Span) -> Span {
    let is_end = |c: char| matches!(c, '。' | '！' | '？' | '!' | '?' | '\n' | '；' | ';');
    let start = text[..span.0]
        .char_indices()
        .rev()
        .find(|(i, c)| is_end(*c) || (*c == '.' && text[i + 1..].starts_with(' ')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let end = text[span.1..]
        .char_indices()
        .find(|(i, c)| is_end(*c) || (*c == '.' && text[span.1 + i + 1..].starts_with(' ')))
        .map_or(text.len(), |(i, _)| span.1 + i);
    (start, end)
}

/// Where the text proper starts: after leading whitespace and a 【…】
/// signature; and whether there was a signature.
fn lead(text: &str) -> (usize, bool) {
    let t = text.trim_start();
    let mut at = text.len() - t.len();
    if t.starts_with('【')
        && let Some(close) = t.find('】')
    {
        at += close + '】'.len_utf8();
        at += text[at..].len() - text[at..].trim_start().len();
        return (at, true);
    }
    (at, false)
}

fn trailing_end(text: &str) -> usize {
    text.trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, '.' | '。' | '!' | '！' | ',' | '，')
    })
    .len()
}

impl Matcher {
    pub fn new(
        names: &[String],
        common: &[String],
        cues: &[String],
        warnings: &[String],
    ) -> Result<Matcher, String> {
        let all: Vec<String> = names.iter().chain(common).cloned().collect();
        let mut flags = vec![false; names.len()];
        flags.extend(std::iter::repeat_n(true, common.len()));
        Ok(Matcher {
            names: Phrases::new(&all)?,
            common: flags,
            cues: Phrases::new(cues)?,
            warnings: Phrases::new(warnings)?,
        })
    }

    /// The first name in folded `text` used to speak as, for or with its
    /// institution; `own` are the sender's own names.
    pub fn find(&self, text: &str, own: &[Span]) -> Option<Span> {
        let (lead_at, signed) = lead(text);
        let end = trailing_end(text);
        self.names.find(text).into_iter().find_map(|(p, (s, e))| {
            if own.iter().any(|&(a, b)| s < b && a < e) {
                return None;
            }
            let before = text[..s].chars().next_back();
            let after = &text[e..];
            let bracketed = matches!(before, Some('【' | '[')) && after.starts_with(['】', ']']);
            let signature = bracketed
                || (e == end
                    && matches!(
                        before,
                        Some('-' | '—' | '–' | '~' | ' ' | '\n' | ',' | '，')
                    ));
            if self.common[p] && !signature {
                let capital = text[s..].chars().next().is_some_and(char::is_uppercase);
                let rest = after.trim_start().to_ascii_lowercase();
                let institutional = after.starts_with([':', '：'])
                    || INSTITUTIONAL.iter().any(|w| {
                        rest.starts_with(w)
                            && !rest[w.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
                    });
                if !(capital && institutional) {
                    return None;
                }
            }
            let leads = s == lead_at && (!signed || SPEAKER.iter().any(|w| after.starts_with(w)));
            let acts = || {
                let sent = sentence(text, (s, e));
                self.cues.any_in(text, sent) && !self.warnings.any_in(text, sent)
            };
            (leads || signature || acts()).then_some((s, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Matcher;

    fn m() -> Matcher {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Matcher::new(
            &s(&["工商银行", "工行", "支付宝", "USPS", "IRS"]),
            &s(&["Chase", "Visa"]),
            &s(&[
                "冻结",
                "核实",
                "异常",
                "verify",
                "suspended",
                "on hold",
                "合作",
                "official partner",
            ]),
            &s(&["不会", "诈骗", "never"]),
        )
        .unwrap()
    }

    #[test]
    fn names_speaking_for_the_institution() {
        let m = m();
        assert!(
            m.find("【金云商城】您的支付宝账户异常，请核实", &[])
                .is_some()
        );
        assert!(m.find("工商银行提醒您：账户将冻结", &[]).is_some());
        assert!(m.find("USPS: your package is on hold", &[]).is_some());
        assert!(m.find("Chase: verify your account", &[]).is_some());
        assert!(
            m.find("Your Chase account was suspended, verify now", &[])
                .is_some()
        );
        assert!(m.find("本店与工行合作推出分期", &[]).is_some());
        assert!(m.find("Your refund is ready - IRS", &[]).is_some());
    }

    #[test]
    fn plain_mentions_and_common_words_are_not() {
        let m = m();
        assert!(
            m.find("【金云商城】支持支付宝付款，欢迎选购", &[])
                .is_none()
        );
        assert!(
            m.find("Order shipped via USPS, tracking 9400 1000", &[])
                .is_none()
        );
        assert!(
            m.find("【金云商城】为施工行业提供手套，账户异常请核实", &[])
                .is_none()
        );
        assert!(
            m.find("Don't chase the deals, verify the price", &[])
                .is_none()
        );
        assert!(
            m.find("New visa rules: verify your documents", &[])
                .is_none()
        );
    }
}
