//! State tests: the consent table, partition state (caps, duplicates), the deferred index and opt-out replies, without Kafka.
//!
//! One module per concern; run one with `cargo test --test state MODULE::`.

mod consent;
mod deferred;
mod optout_replies;
mod partition;
