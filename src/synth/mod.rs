//! Synthetic traffic, shared by `smsgate demo`, `smsgate generate` and the
//! benchmark crate: one realistic workload ([`workload`]), its producer to a
//! real Kafka ([`produce`]), and librdkafka's in-process mock cluster with
//! the gate's topics ([`cluster`]).

pub mod cluster;
pub mod produce;
pub mod workload;
