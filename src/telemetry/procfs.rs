//! What Linux's `/proc` says about a process and its threads: CPU time and
//! names. The benchmark reads it for the processes it runs
//! (`bench::procstat`); the gate reads it for itself, per thread, for
//! `smsgate_thread_cpu_seconds_total` (`metrics::threads`). Where `/proc`
//! is missing every reader finds nothing.
//!
//! `stat` fields 14 and 15 (utime, stime) are in clock ticks; the kernel's
//! USER_HZ is 100 on every mainstream Linux configuration.

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds from one `stat` line.
pub fn cpu_from(stat: &str) -> Option<f64> {
    // The command name (field 2) may contain spaces: count from its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// The thread or command name: field 2 of `stat`, inside the outer
/// parentheses (Linux keeps 15 characters of it).
pub fn name_from(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// One thread of a process, as `/proc/PID/task/TID/stat` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub tid: u64,
    pub name: String,
    pub cpu_seconds: f64,
}

/// The threads of `pid` alive now; empty once it has exited.
pub fn tasks(pid: u32) -> Vec<Task> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse::<u64>().ok()?;
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            Some(Task {
                tid,
                name: name_from(&stat)?.to_string(),
                cpu_seconds: cpu_from(&stat)?,
            })
        })
        .collect()
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
    fn a_thread_name_is_read_between_the_outer_parentheses() {
        assert_eq!(name_from("7 (rdk:broker1) S 1"), Some("rdk:broker1"));
        assert_eq!(name_from("7 (a (b)) S 1"), Some("a (b)"));
        assert_eq!(name_from("7 broken"), None);
    }

    #[test]
    fn the_threads_of_this_process_are_read_with_their_names() {
        let now = tasks(std::process::id());
        assert!(!now.is_empty());
        assert!(
            now.iter()
                .all(|t| !t.name.is_empty() && t.cpu_seconds >= 0.0)
        );
        assert!(tasks(u32::MAX).is_empty());
    }
}
