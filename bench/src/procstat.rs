//! CPU time and peak memory of a process, and CPU time of each of its
//! threads, from Linux `/proc` (parsed by [`smsgate::telemetry::procfs`]).

use std::collections::{BTreeMap, HashMap};

use smsgate::telemetry::procfs::{self, cpu_from};

/// User + system CPU seconds of `pid`, `None` once it has exited.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_from(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub fn self_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_from(&s))
        .unwrap_or(0.0)
}

fn status_kb(status: &str, field: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Peak resident set size (VmHWM) of `pid` in MiB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kb(&s, "VmHWM:").map(|kb| kb / 1024.0)
}

/// Current resident set size (VmRSS) of `pid` in MiB.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kb(&s, "VmRSS:").map(|kb| kb / 1024.0)
}

/// Seconds the threads of `pid` (those alive now) spent runnable but
/// waiting for a CPU (`/proc/PID/task/*/schedstat`, second field, in ns):
/// how much the machine's other load held the process back.
pub fn run_queue_wait_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for t in tasks.flatten() {
        let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue;
        };
        ns += s
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(ns as f64 / 1e9)
}

/// CPU seconds of each thread of a process at one moment: which thread is
/// busy tells a serial bottleneck (one thread near a whole core) from a
/// machine that is simply full.
#[derive(Debug, Clone, Default)]
pub struct ThreadCpu {
    /// By thread id, because names repeat (a pool's threads share one).
    by_tid: HashMap<u64, (String, f64)>,
}

impl ThreadCpu {
    /// The threads of `pid` alive now; empty once it has exited.
    pub fn of(pid: u32) -> ThreadCpu {
        ThreadCpu {
            by_tid: procfs::tasks(pid)
                .into_iter()
                .map(|t| (t.tid, (t.name, t.cpu_seconds)))
                .collect(),
        }
    }

    /// CPU seconds used since `earlier` by thread name (threads sharing a
    /// name summed; a thread started since counts from zero), busiest first.
    pub fn since(&self, earlier: &ThreadCpu) -> Vec<(String, f64)> {
        let mut by_name: BTreeMap<&str, f64> = BTreeMap::new();
        for (tid, (name, cpu)) in &self.by_tid {
            let before = earlier.by_tid.get(tid).map_or(0.0, |(_, c)| *c);
            *by_name.entry(name).or_default() += (cpu - before).max(0.0);
        }
        let mut v: Vec<(String, f64)> = by_name
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

pub fn self_peak_rss_mb() -> f64 {
    peak_rss_mb(std::process::id()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_is_summed_by_name_busiest_first() {
        let at = |v: &[(u64, &str, f64)]| ThreadCpu {
            by_tid: v
                .iter()
                .map(|(t, n, c)| (*t, (n.to_string(), *c)))
                .collect(),
        };
        let earlier = at(&[(1, "decide", 1.0), (2, "pool", 0.5), (3, "pool", 0.5)]);
        // Thread 4 started since: it counts from zero.
        let later = at(&[
            (1, "decide", 3.0),
            (2, "pool", 1.0),
            (3, "pool", 1.0),
            (4, "late", 0.25),
        ]);
        assert_eq!(
            later.since(&earlier),
            vec![
                ("decide".to_string(), 2.0),
                ("pool".to_string(), 1.0),
                ("late".to_string(), 0.25)
            ]
        );
    }

    #[test]
    fn this_process_has_a_peak_rss() {
        assert!(self_peak_rss_mb() > 0.0);
    }
}
