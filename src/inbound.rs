//! Opt-out replies (CONTRACT §4): a recipient answers "TD" or "STOP", and
//! the gate turns that into an `opt_out` consent event on the consent topic,
//! so every instance enforces it.
//!
//! [`opt_out`] is the pure part: reply → `Option<ConsentEvent>`.
//! [`run_forwarder`] is the Kafka loop the pipeline starts with its own
//! clients: inbound topic → consent topic, committing a reply only after its
//! consent event is acknowledged.
//!
//! Keyword rules (the choices the contract leaves open):
//! - The body is NFKC-normalized (full-width `ＳＴＯＰ` → `STOP`), trimmed,
//!   whitespace runs collapsed, and case-folded.
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

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use crate::consent::{ConsentAction, ConsentEvent, ConsentScope};
use crate::event::is_e164;
use crate::policy::Registry;

/// An inbound reply as written on `topics.inbound`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InboundReply {
    /// The recipient who replied, E.164.
    pub from: String,
    /// The sending number replied to.
    pub to: String,
    /// The sender account, when the upstream knows it.
    #[serde(default)]
    pub sender: Option<String>,
    pub body: String,
    /// When the reply arrived; becomes the opt-out's `at`.
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("invalid inbound reply: {0}")]
    Invalid(String),
}

impl InboundReply {
    pub fn parse(bytes: &[u8]) -> Result<InboundReply, InboundError> {
        let reply: InboundReply =
            serde_json::from_slice(bytes).map_err(|e| InboundError::Invalid(e.to_string()))?;
        if !is_e164(&reply.from) {
            return Err(InboundError::Invalid("from: not an E.164 number".into()));
        }
        Ok(reply)
    }
}

/// Which keyword list applies to a replying number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jurisdiction {
    Cn,
    Us,
    /// Any other country: both lists.
    Other,
}

impl Jurisdiction {
    pub fn of(number: &str) -> Jurisdiction {
        if number.starts_with("+86") {
            Jurisdiction::Cn
        } else if number.starts_with("+1") {
            Jurisdiction::Us
        } else {
            Jurisdiction::Other
        }
    }
}

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

/// NFKC, trimmed, whitespace collapsed, case-folded.
pub fn normalize(body: &str) -> String {
    let nfkc: String = body.nfkc().collect();
    nfkc.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
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

/// What happened to one inbound record (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// An opt-out written to the consent topic.
    OptOut,
    /// A reply without an opt-out keyword.
    NotOptOut,
    /// Not a valid reply; skipped (nothing to forward).
    Invalid,
}

/// Consumes `topics.inbound` and writes each opt-out to `consent_topic`,
/// keyed by the recipient (CONTRACT §1). A record's offset is committed
/// only after its opt-out is acknowledged, so a crash re-reads it; a write
/// that fails is retried with backoff, never skipped. Returns when
/// `shutdown` turns true or its sender is dropped; `on_record` sees every
/// record's outcome (for metrics). `registry` gives the registry in force
/// for each reply (it changes on a policy reload).
pub async fn run_forwarder<C: ConsumerContext + 'static>(
    consumer: StreamConsumer<C>,
    producer: FutureProducer,
    consent_topic: String,
    registry: impl Fn() -> Arc<Registry> + Send,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut on_record: impl FnMut(Forwarded) + Send,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let message = tokio::select! {
            m = consumer.recv() => m,
            _ = shutdown.changed() => return,
        };
        let message = match message {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "inbound consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let outcome = match InboundReply::parse(message.payload().unwrap_or_default()) {
            Err(e) => {
                tracing::warn!(partition = message.partition(), offset = message.offset(), error = %e, "inbound reply skipped");
                Forwarded::Invalid
            }
            Ok(reply) => match opt_out(&reply, &registry()) {
                None => Forwarded::NotOptOut,
                Some(event) => {
                    let value = event.to_json();
                    // One key per fact (CONTRACT §10), not per recipient.
                    let key = event.topic_key();
                    let mut backoff = Duration::from_millis(100);
                    loop {
                        let record = FutureRecord::to(&consent_topic)
                            .key(key.as_str())
                            .payload(value.as_str());
                        match producer.send(record, Duration::from_secs(5)).await {
                            Ok(_) => break,
                            Err((e, _)) => {
                                tracing::warn!(recipient = %crate::mask::phone(&event.to), error = %e, "opt-out write failed; retrying");
                                tokio::select! {
                                    _ = tokio::time::sleep(backoff) => {}
                                    _ = shutdown.changed() => return,
                                }
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                            }
                        }
                    }
                    Forwarded::OptOut
                }
            },
        };
        on_record(outcome);
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )
            .is_ok()
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::warn!(error = %e, "inbound commit failed; the reply may be forwarded again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_full_width_case_and_spaces() {
        assert_eq!(normalize("  ＳＴＯＰ\u{3000}Please "), "stop please");
        assert_eq!(normalize("Opt   Out"), "opt out");
    }

    #[test]
    fn jurisdiction_follows_the_replying_number() {
        assert_eq!(Jurisdiction::of("+8613812345678"), Jurisdiction::Cn);
        assert_eq!(Jurisdiction::of("+12125551234"), Jurisdiction::Us);
        assert_eq!(Jurisdiction::of("+85291234567"), Jurisdiction::Other);
    }
}
