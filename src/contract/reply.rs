//! The inbound reply record (CONTRACT §4): what a recipient texted back.
//! Whether it is an opt-out is policy ([`crate::policy::optout`]); moving
//! it to the consent topic is the gate's ([`crate::gate::feeds::replies`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::contract::event::is_e164;

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
        let reply: InboundReply = serde_json::from_slice(bytes)
            .map_err(|e| InboundError::Invalid(super::json_error(&e)))?;
        if !is_e164(&reply.from) {
            return Err(InboundError::Invalid("from: not an E.164 number".into()));
        }
        Ok(reply)
    }
}
