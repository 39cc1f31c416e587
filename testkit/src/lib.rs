//! The real-broker test harness shared by the broker tests (`tests/broker/`, feature `e2e`).
//!
//! Each test binary starts its own Kafka broker on a free port
//! ([`broker::Broker::shared`]), each test creates uniquely named topics and
//! a unique consumer group ([`gate::Topics::unique`]), and runs the gate as a
//! child process ([`gate::Gate`]). Every child is spawned so that it dies with
//! the test binary ([`process`]). Outputs are read back by source
//! ([`kafka::Collector`]), never by high watermarks (a habit from the earlier
//! test broker, which reported them low; harmless on Kafka).
//!
//! Without the broker installed, a test that needs it fails with a message
//! naming `scripts/kafka install`; it is never skipped.
//!
//! The broker launcher itself ([`kafka_process`], which returns errors
//! instead of panicking) is also the benchmark's (`smsgate-bench`, whose
//! crate depends on this one); [`broker::Broker`] is its panicking,
//! test-facing wrapper; [`kafka_security`] adds a SASL_SSL listener
//! (SCRAM-SHA-512, a test CA, ACLs) for the security tests.

pub mod broker;
pub mod events;
pub mod gate;
pub mod kafka;
pub mod kafka_process;
pub mod kafka_security;
pub mod marketing;
pub mod process;
pub mod verify;

use std::time::{Duration, Instant};

/// Polls `check` every `every` until it returns true or `timeout` passes.
/// Returns whether it became true.
pub fn wait_until(timeout: Duration, every: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// A seed for the randomness of a test: `SMSGATE_TEST_SEED` when set (to
/// replay a run), else the clock. Printed by the tests that use it.
pub fn seed() -> u64 {
    std::env::var("SMSGATE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}
