//! End-to-end tests against a real Apache Kafka broker process (feature `e2e`; `scripts/test` turns it on): the gate as a child process, crash and restart, failover, a frozen zombie, rebalances, state restore, opt-out replies, policy reload, Prometheus scraping, SASL_SSL with ACLs.
//!
//! One module per concern; run one with `cargo test --test broker MODULE::`.

mod broker_restart;
mod caps;
mod compaction;
mod config;
mod crash;
mod deferred;
#[path = "../deploy/deploy_common.rs"]
mod deploy_common;
mod failover;
mod flow;
mod graceful;
mod optout;
mod policy_reload;
mod prometheus;
mod rebalance;
mod security;
mod zombie;
