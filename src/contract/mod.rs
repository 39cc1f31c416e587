//! The wire records of the contract (CONTRACT.md): the outbound event
//! ([`event`], §2), the consent event ([`consent`], §3), the inbound reply
//! ([`reply`], §4) and the decision ([`decision`], §6). Parsing and JSON
//! forms only; what they mean is [`crate::policy`]'s.

pub mod consent;
pub mod decision;
pub mod event;
pub mod reply;
