//! Delivery of decided records: the producer and its delivery thread
//! ([`producer`]), what each acknowledgement completes ([`pending`]), and
//! per-partition ordered acknowledgement, which decides the offset that may
//! be committed ([`offsets`]), and the output topics a lasting failure
//! blocks ([`blocked`]), and Kafka transactions for `exactly_once`
//! ([`transaction`]).

pub mod blocked;
pub mod offsets;
pub mod pending;
pub mod producer;
pub mod transaction;
