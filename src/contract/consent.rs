//! Consent events (CONTRACT §3): what a person agreed to or withdrew.
//!
//! This module only parses and validates the record. Where the events are
//! kept lives in `state::consent`; what they mean for a given message lives in
//! `policy::consent`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contract::event::is_e164;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    OptIn,
    OptOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    Marketing,
    All,
    Personalization,
}

/// A consent event as written on `topics.consent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub to: String,
    pub action: ConsentAction,
    pub scope: ConsentScope,
    /// A sender id, or `*` for every sender.
    pub sender: String,
    pub at: DateTime<Utc>,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl ConsentEvent {
    /// Parses one record; the error names the problem.
    pub fn parse(bytes: &[u8]) -> Result<ConsentEvent, ConsentError> {
        let event: ConsentEvent =
            serde_json::from_slice(bytes).map_err(|e| ConsentError(super::json_error(&e)))?;
        if !is_e164(&event.to) {
            return Err(ConsentError("to: not an E.164 number".into()));
        }
        if event.sender.is_empty() {
            return Err(ConsentError("sender: empty".into()));
        }
        Ok(event)
    }

    /// The record key on the compacted consent topic: `<to>|<sender or *>|<scope>`
    /// (CONTRACT §1, §10). One key per fact, so compaction never lets one
    /// sender's opt-out overwrite another sender's consent.
    pub fn topic_key(&self) -> String {
        let scope = match self.scope {
            ConsentScope::Marketing => "marketing",
            ConsentScope::All => "all",
            ConsentScope::Personalization => "personalization",
        };
        format!("{}|{}|{scope}", self.to, self.sender)
    }

    /// An `opt_in` without evidence is ignored (CONTRACT §3).
    pub fn counts(&self) -> bool {
        self.action == ConsentAction::OptOut
            || self.evidence_id.as_deref().is_some_and(|e| !e.is_empty())
    }

    pub fn fact(&self) -> ConsentFact<'_> {
        ConsentFact {
            action: self.action,
            scope: self.scope,
            sender: SenderScope::from_id(&self.sender),
            at: self.at,
            expires_at: self.expires_at,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid consent event: {0}")]
pub struct ConsentError(pub String);

/// Which senders a consent event covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SenderScope<'a> {
    Any,
    One(&'a str),
}

impl<'a> SenderScope<'a> {
    pub fn from_id(id: &'a str) -> SenderScope<'a> {
        if id == "*" {
            SenderScope::Any
        } else {
            SenderScope::One(id)
        }
    }

    pub fn covers(self, sender: &str) -> bool {
        match self {
            SenderScope::Any => true,
            SenderScope::One(s) => s == sender,
        }
    }
}

/// One counted consent event as the policy sees it: a borrowed view, so a
/// compact store can hand it out without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentFact<'a> {
    pub action: ConsentAction,
    pub scope: ConsentScope,
    pub sender: SenderScope<'a>,
    pub at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_example_and_requires_evidence() {
        let e = ConsentEvent::parse(br#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"huinong-credit","at":"2026-10-01T10:00:00+08:00","source":"app-signup","evidence_id":"ev-77","expires_at":"2027-10-01T00:00:00+08:00"}"#).unwrap();
        assert!(e.counts());
        assert_eq!(e.fact().sender, SenderScope::One("huinong-credit"));
        let mut no_ev = e.clone();
        no_ev.evidence_id = None;
        assert!(!no_ev.counts());
    }

    #[test]
    fn topic_key_names_one_fact() {
        let e = ConsentEvent::parse(br#"{"to":"+8613812345678","action":"opt_out","scope":"marketing","sender":"huinong-credit","at":"2026-10-01T10:00:00+08:00","source":"reply:TD"}"#).unwrap();
        assert_eq!(e.topic_key(), "+8613812345678|huinong-credit|marketing");
        let all = ConsentEvent::parse(br#"{"to":"+8613812345678","action":"opt_out","scope":"all","sender":"*","at":"2026-10-01T10:00:00+08:00","source":"reply:STOPALL"}"#).unwrap();
        assert_eq!(all.topic_key(), "+8613812345678|*|all");
        let mut p = e.clone();
        p.scope = ConsentScope::Personalization;
        assert_eq!(
            p.topic_key(),
            "+8613812345678|huinong-credit|personalization"
        );
    }

    #[test]
    fn rejects_bad_records() {
        assert!(ConsentEvent::parse(b"{}").is_err());
        assert!(ConsentEvent::parse(br#"{"to":"123","action":"opt_out","scope":"all","sender":"*","at":"2026-10-01T10:00:00Z","source":"x"}"#).is_err());
    }
}
