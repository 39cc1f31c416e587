//! The gate on librdkafka's in-process mock cluster: delivery and ordered commits, injected faults, rebalances and the reply forwarder. No broker process needed.
//!
//! One module per concern; run one with `cargo test --test mock_kafka MODULE::`.

mod delivery;
mod faults;
mod forwarder;
mod pipeline_support;
mod rebalance;
mod redelivery;
