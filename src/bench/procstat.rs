//! CPU time and peak memory of a process, from Linux `/proc`.
//!
//! `/proc/PID/stat` fields 14 and 15 (utime, stime) are in clock ticks; the
//! kernel's USER_HZ is 100 on every mainstream Linux configuration.

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

fn cpu_from(stat: &str) -> Option<f64> {
    // The command name (field 2) may contain spaces: count from its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

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

pub fn self_peak_rss_mb() -> f64 {
    peak_rss_mb(std::process::id()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_a_command_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        assert_eq!(cpu_from(stat), Some(3.0));
    }

    #[test]
    fn this_process_has_a_peak_rss() {
        assert!(self_peak_rss_mb() > 0.0);
    }
}
