//! Opt-out replies (CONTRACT §4): a recipient answers "TD" or "STOP", and
//! the gate turns that into an `opt_out` consent event on the consent topic,
//! so every instance enforces it.
//!
//! [`opt_out`] is pure: reply → `Option<ConsentEvent>`. The Kafka loop that
//! moves replies to the consent topic is [`crate::gate::feeds::replies`].
//!
//! Keyword rules (the choices the contract leaves open):
//! - The body goes through the policy's one normalizer (full-width `ＳＴＯＰ`
//!   → `STOP`, `退 订` and `退\u{200b}订` → `退订`, `S T O P` → `STOP`),
//!   and is case-folded.
//! - It must *start* with a keyword of the replying number's jurisdiction
//!   (+86: CN list, +1: US list, any other country: both).
//! - A Latin keyword must end at a word boundary: "STOP please", "STOP!",
//!   "T 谢谢" count; "stopwatch", "Thanks", "No", "TD银行" (a bank's name)
//!   do not. The one exception is another keyword right after it ("TD退订").
//! - A Chinese keyword counts whatever follows, since Chinese does not put
//!   spaces between words: "退订谢谢" and "取消订阅" are opt-outs. This also
//!   makes "取消订单" (cancel my order) an opt-out: a wrong opt-out only
//!   stops marketing, a missed one sends marketing to someone who refused it.
//! - `STOPALL`, `STOP ALL` and `退订全部` → scope `all`, sender `*`; every
//!   other keyword → scope `marketing`, the replied-to sender. When the
//!   sender cannot be resolved (no `sender`, number not in the registry) the
//!   opt-out covers marketing from every sender (`*`), for the same reason.

use chrono::{DateTime, Utc};

use crate::contract::consent::{ConsentAction, ConsentEvent, ConsentScope};
use crate::contract::reply::InboundReply;
use crate::policy::Registry;
use crate::policy::jurisdiction::Jurisdiction;

/// One opt-out keyword: the text matched (upper case as written here), the
/// canonical name put in `source`, and whether it withdraws everything.
struct Keyword {
    text: &'static str,
    canonical: &'static str,
    all: bool,
}

const fn kw(text: &'static str, canonical: &'static str, all: bool) -> Keyword {
    Keyword {
        text,
        canonical,
        all,
    }
}

/// Longest first, so `退订全部` wins over `退订` and `STOPALL` over `STOP`.
const CN: &[Keyword] = &[
    kw("退订全部", "退订全部", true),
    kw("退订", "退订", false),
    kw("取消", "取消", false),
    kw("TD", "TD", false),
    kw("T", "T", false),
    kw("N", "N", false),
    kw("R", "R", false),
];

const US: &[Keyword] = &[
    kw("UNSUBSCRIBE", "UNSUBSCRIBE", false),
    kw("STOP ALL", "STOPALL", true),
    kw("STOPALL", "STOPALL", true),
    kw("OPT OUT", "OPT OUT", false),
    kw("OPTOUT", "OPTOUT", false),
    kw("REVOKE", "REVOKE", false),
    kw("CANCEL", "CANCEL", false),
    kw("STOP", "STOP", false),
    kw("QUIT", "QUIT", false),
    kw("END", "END", false),
];

/// The policy's one text normalizer ([`crate::policy::content::normalize`]:
/// invisible characters dropped, NFKC, whitespace collapsed and removed
/// between CJK characters, spaced letters joined), then case-folded.
pub fn normalize(body: &str) -> String {
    crate::policy::content::normalize::normalize(body).to_lowercase()
}

/// The keyword a normalized body starts with, if any.
fn match_keyword(normalized: &str, lists: &[&'static [Keyword]]) -> Option<&'static Keyword> {
    let starts_with_keyword = |rest: &str| {
        lists
            .iter()
            .flat_map(|l| l.iter())
            .any(|k| rest.starts_with(&k.text.to_lowercase()))
    };
    let mut best: Option<&'static Keyword> = None;
    for k in lists.iter().flat_map(|l| l.iter()) {
        let text = k.text.to_lowercase();
        let Some(rest) = normalized.strip_prefix(&text) else {
            continue;
        };
        let latin = k.text.is_ascii();
        let bounded = match rest.chars().next() {
            None => true,
            Some(c) => !latin || !c.is_alphanumeric() || starts_with_keyword(rest),
        };
        if bounded && best.is_none_or(|b| k.text.len() > b.text.len()) {
            best = Some(k);
        }
    }
    best
}

/// The opt-out keyword a reply body carries for a replying number, as
/// `(canonical keyword, withdraws everything)`.
pub fn keyword(body: &str, from: &str) -> Option<(&'static str, bool)> {
    let lists: &[&'static [Keyword]] = match Jurisdiction::of(from) {
        Jurisdiction::Cn => &[CN],
        Jurisdiction::Us => &[US],
        Jurisdiction::Other => &[CN, US],
    };
    match_keyword(&normalize(body), lists).map(|k| (k.canonical, k.all))
}

/// The sender a reply was addressed to: its `sender`, else the owner of the
/// number replied to (tried as written, then without `+` and country code).
pub fn resolve_sender<'a>(reply: &'a InboundReply, registry: &'a Registry) -> Option<&'a str> {
    if let Some(s) = reply.sender.as_deref().filter(|s| !s.is_empty()) {
        return Some(s);
    }
    let bare = reply.to.trim_start_matches('+');
    std::iter::once(reply.to.as_str())
        .chain(std::iter::once(bare))
        .chain(["86", "1"].iter().filter_map(|cc| bare.strip_prefix(cc)))
        .find_map(|n| registry.by_number(n))
}

/// The consent event a reply means, if it is an opt-out (pure).
pub fn opt_out(reply: &InboundReply, registry: &Registry) -> Option<ConsentEvent> {
    let (canonical, all) = keyword(&reply.body, &reply.from)?;
    let (scope, sender) = if all {
        (ConsentScope::All, "*")
    } else {
        (
            ConsentScope::Marketing,
            resolve_sender(reply, registry).unwrap_or("*"),
        )
    };
    Some(ConsentEvent {
        to: reply.from.clone(),
        action: ConsentAction::OptOut,
        scope,
        sender: sender.to_string(),
        at: reply.received_at,
        source: format!("reply:{canonical}"),
        evidence_id: None,
        expires_at: None,
    })
}

/// Seconds from the reply's arrival to `enforced_at`, for the opt-out
/// latency histogram: `Some` only for opt-outs that came from a reply. The
/// consent consumer calls it right after applying the event to its table.
pub fn optout_latency(event: &ConsentEvent, enforced_at: DateTime<Utc>) -> Option<f64> {
    (event.action == ConsentAction::OptOut && event.source.starts_with("reply:"))
        .then(|| (enforced_at - event.at).num_milliseconds().max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_full_width_case_and_spaces() {
        assert_eq!(normalize("  ＳＴＯＰ\u{3000}Please "), "stop please");
        assert_eq!(normalize("Opt   Out"), "opt out");
        assert_eq!(normalize("退 订"), "退订");
        assert_eq!(normalize("退\u{200b}订"), "退订");
        assert_eq!(normalize("S T O P"), "stop");
    }
}
