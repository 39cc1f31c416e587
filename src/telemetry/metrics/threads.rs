//! `smsgate_thread_cpu_seconds_total{thread}`: CPU seconds of this
//! process's threads by name, read from `/proc/self/task` when scraped (at
//! most once a second: the benchmark scrapes every 25 ms).
//!
//! A thread using close to one CPU second per second (typically
//! `smsgate-decide0`) limits the gate by itself: more `pipeline.workers`
//! help if cores are free. Every thread well below that on a busy host
//! means the cores are the limit. librdkafka's per-broker threads
//! (`rdk:broker<id>`) are summed as `rdk:broker`, so the label takes a
//! small, fixed set of values whatever the cluster's size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{CounterVec, Opts, Registry};

use super::names::THREAD_CPU_SECONDS;
use crate::telemetry::procfs;

/// Scrapes closer together than this reuse the last reading.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct ThreadMetrics {
    cpu: CounterVec,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// When `/proc` was last read.
    at: Option<Instant>,
    /// The last total per label. The counter grows by what was used since;
    /// a thread that ended takes its seconds out of the total, which must
    /// not make a counter go down.
    totals: HashMap<String, f64>,
}

impl ThreadMetrics {
    pub(super) fn register(r: &Registry) -> ThreadMetrics {
        let cpu = CounterVec::new(
            Opts::new(
                THREAD_CPU_SECONDS,
                "CPU seconds used by this process's threads, by thread name",
            ),
            &["thread"],
        )
        .expect("valid metric definition");
        r.register(Box::new(cpu.clone()))
            .expect("metric registered once");
        ThreadMetrics {
            cpu,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Brings the counter up to the threads' CPU time now.
    pub(super) fn refresh(&self) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.at.is_some_and(|at| at.elapsed() < MIN_INTERVAL) {
            return;
        }
        seen.at = Some(Instant::now());
        let mut totals: HashMap<String, f64> = HashMap::new();
        for t in procfs::tasks(std::process::id()) {
            let name = label(&t.name).map_or(t.name, str::to_string);
            *totals.entry(name).or_default() += t.cpu_seconds;
        }
        for (name, total) in totals {
            let before = seen.totals.entry(name.clone()).or_insert(0.0);
            if total > *before {
                self.cpu.with_label_values(&[&name]).inc_by(total - *before);
                *before = total;
            }
        }
    }
}

/// The label for a thread whose name varies with the cluster.
fn label(thread: &str) -> Option<&'static str> {
    thread.starts_with("rdk:broker").then_some("rdk:broker")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_broker_threads_share_one_label() {
        assert_eq!(label("rdk:broker111"), Some("rdk:broker"));
        assert_eq!(label("rdk:broker-1"), Some("rdk:broker"));
        assert_eq!(label("smsgate-decide0"), None);
        assert_eq!(label("rdk:main"), None);
    }

    #[test]
    fn a_scrape_shows_the_cpu_of_this_process_threads_and_it_never_goes_down() {
        let r = Registry::new();
        let m = ThreadMetrics::register(&r);
        // Use some CPU on this thread so that it has at least one tick.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        m.refresh();
        let total = || -> f64 {
            r.gather()
                .iter()
                .filter(|f| f.name() == THREAD_CPU_SECONDS)
                .flat_map(|f| f.get_metric().iter().map(|s| s.get_counter().value()))
                .sum()
        };
        let first = total();
        assert!(first > 0.0, "{first}");
        // A thread that ended lowers the sum; the counter stays.
        if let Ok(mut seen) = m.seen.lock() {
            for v in seen.totals.values_mut() {
                *v += 1000.0;
            }
            seen.at = None;
        }
        m.refresh();
        assert_eq!(total(), first);
        // A second scrape within the interval does not read /proc again.
        if let Ok(mut seen) = m.seen.lock() {
            seen.totals.clear();
        }
        m.refresh();
        assert_eq!(total(), first);
    }
}
