//! Gives the C heap's free pages back to the operating system.
//!
//! Rust allocations go to mimalloc (`main.rs`), but librdkafka allocates
//! every message, header and fetch buffer with glibc's `malloc`, in several
//! per-thread arenas. glibc hands memory back to the system only from the
//! top of an arena, so the holes a burst leaves behind (the consent load at
//! start-up, the backlog of a host that starves the gate) stay resident
//! although nothing uses them. In the benchmark on a starved host that was
//! about 50 MB of a 300 MB resident set (docs/performance.md).
//! `malloc_trim(0)` releases those pages; [`trim_every`] calls it every
//! [`TRIM_INTERVAL`] on a blocking thread, so memory a burst took is
//! returned within seconds instead of at exit.

use std::time::{Duration, Instant};

use crate::gate::shutdown::Shutdown;

/// Often enough that a burst's leftovers do not stay long; each trim walks
/// the free lists of every arena, locking one arena at a time (1–5 ms in
/// the benchmark, once 32 ms on a starved host), on a blocking thread.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// Releases the free pages of every glibc arena. True when some were
/// released; always false where the C library is not glibc.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only takes glibc's own arena locks and may be
        // called from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Trims the C heap every `interval` until `shutdown`.
pub async fn trim_every(interval: Duration, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; nothing is worth trimming yet.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        let Ok(released) = tokio::task::spawn_blocking(trim).await else {
            return;
        };
        tracing::debug!(
            released,
            took_us = started.elapsed().as_micros() as u64,
            "C heap trimmed"
        );
    }
}
