//! smsgate: a compliance gate for outbound SMS on Kafka.
//!
//! - [`event`] parses and validates outbound events; bad input becomes a
//!   `malformed` value, never a panic.
//! - [`consent`] is the consent record of the contract.
//! - [`decision`] is what the gate decided and its JSON forms.
//! - [`policy`] is the pure decision function and the packs it runs.
//! - [`state`] holds what the policy reads: consent, caps, duplicates.
//! - [`inbound`] turns opt-out replies into consent events.
//! - [`check`] is the offline `smsgate check` command.
//! - [`config`] layers defaults, file and environment.
//! - [`mask`] masks phone numbers for logs.
//! - [`heap`] returns the C heap's free pages to the system.
//! - [`procfs`] reads CPU time and thread names from Linux `/proc`.
//! - [`bench`] is the benchmark harness and the load generator.
//! - [`casebook`] runs labelled policy cases (`smsgate policy test`).

pub mod bench;
pub mod casebook;
pub mod check;
pub mod config;
pub mod consent;
pub mod decision;
pub mod demo;
pub mod event;
pub mod heap;
pub mod inbound;
pub mod logging;
pub mod mask;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod procfs;
pub mod state;
