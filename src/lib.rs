//! smsgate: a compliance gate for outbound SMS on Kafka.
//!
//! The map, from the outside in:
//!
//! - [`cli`]: the `smsgate` command, one file per command (`run`, `check`,
//!   `policy lint`, `demo`, `generate`, `healthcheck`).
//! - [`casebook`]: labelled policy cases run through the policy
//!   (`smsgate policy test`, the corpus ratchet).
//! - [`config`]: settings layered from defaults, file and environment.
//! - [`contract`]: the wire records only (outbound event, consent event,
//!   inbound reply, decision) and their parsing.
//! - [`policy`]: the pure decision function `(event, state view, now) →
//!   decision` and the packs it runs, plus the opt-out keywords and the
//!   jurisdiction table. No I/O, no clock, no Kafka.
//! - [`state`]: what must survive: consent table, frequency caps, duplicate
//!   memory, deferred index, and the changelog codec they are restored from.
//! - [`gate`]: the Kafka runtime around the policy: clients, consumer and
//!   rebalances, intake, decide step, routing, delivery and ordered offset
//!   commits, the other feeds (consent, replies, release, restore), reload
//!   and shutdown.
//! - [`telemetry`]: metrics (names in one place), health endpoints, logs,
//!   masking of personal data.
//! - [`synth`]: the traffic generator shared by the demo and the benchmark
//!   crate, and librdkafka's in-process mock cluster.
//!
//! Dependencies point inward: `cli` → `gate` → `state` → `policy` →
//! `contract`; `policy` never imports `state`, `gate` or `telemetry`.

pub mod casebook;
pub mod cli;
pub mod config;
pub mod contract;
pub mod gate;
pub mod policy;
pub mod state;
pub mod synth;
pub mod telemetry;
