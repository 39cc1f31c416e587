//! The benchmark's results: the JSON written per run, the one summary
//! line (`gate_rps=… passthrough_rps=… ratio=… p99_ms=… rss_mb=…`) and
//! each run's progress lines on stderr (CPU split, busiest threads).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::BenchOptions;
use super::passthrough::PassReport;

/// What was loaded before the runs.
#[derive(Debug, Clone)]
pub struct Preload {
    pub consent_records: u64,
    pub events: u64,
    pub seconds: f64,
    /// Generated events by kind (clean, no_consent, malformed, …).
    pub kinds: Vec<(String, u64)>,
}

/// What the gate run measured.
#[derive(Debug, Clone)]
pub struct GateFigures {
    /// Records per second from the first record consumed to the last acknowledged.
    pub rps: f64,
    pub seconds: f64,
    /// Poll → delivery ack (smsgate_end_to_end_seconds), interpolated in buckets.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Poll → decision (smsgate_processing_seconds).
    pub processing_p99_ms: f64,
    /// VmHWM: peak resident memory, consent table included.
    pub rss_mb: f64,
    /// Gate CPU seconds inside the measured window.
    pub cpu_seconds: f64,
    /// Time the gate's threads waited for a CPU inside the window (other load).
    pub run_queue_wait_seconds: f64,
    /// Gate CPU seconds inside the window by thread name, busiest first.
    pub threads: Vec<(String, f64)>,
    pub broker_cpu_seconds: Option<f64>,
    /// From process start to `/readyz` (consent caught up).
    pub ready_after_seconds: f64,
    pub consent_recipients: f64,
    pub decisions: Vec<(String, f64)>,
    pub reasons: Vec<(String, f64)>,
    pub produce_errors: f64,
    pub exit: String,
    pub log: String,
}

/// One benchmark run.
#[derive(Debug, Clone)]
pub struct Results {
    json: Value,
    pub gate_rps: f64,
    pub passthrough_rps: Option<f64>,
    pub p99_ms: f64,
    pub rss_mb: f64,
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

/// The 1-minute load average (other work on a shared machine skews figures).
fn load_average() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|l| json!(l))
        .unwrap_or(Value::Null)
}

fn share(cpu: Option<f64>, secs: f64) -> Value {
    cpu.map(|c| json!((c / secs * 100.0).round() / 100.0))
        .unwrap_or(Value::Null)
}

/// What one round measured: the runs over the same input, in turn.
#[derive(Debug, Clone)]
pub struct Round {
    /// `None` with `--no-passthrough`.
    pub pass: Option<PassReport>,
    /// The broker's CPU seconds during the pass-through.
    pub pass_broker_cpu: Option<f64>,
    pub gate: GateFigures,
    /// The gate with every rule switched off (`--rules-off`).
    pub rules_off: Option<GateFigures>,
}

impl Round {
    fn json(&self, events: u64) -> Value {
        json!({
            "passthrough": self.pass.as_ref().map(|p| pass_json(p, self.pass_broker_cpu, events)),
            "gate": gate_json(&self.gate, events),
            "rules_off": self.rules_off.as_ref().map(|r| gate_json(r, events)),
            "ratio": self.pass.as_ref().map(|p| self.gate.rps / p.rps),
            "rules_cost": self.rules_off.as_ref().map(|r| rules_cost(self.gate.rps, r.rps)),
        })
    }
}

/// The share of the gate's own plumbing (its rules-off throughput) that the
/// rules take.
fn rules_cost(gate_rps: f64, rules_off_rps: f64) -> f64 {
    1.0 - gate_rps / rules_off_rps
}

/// The median (the mean of the middle two for an even count).
fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Each headline figure over the rounds: the median, and for memory the
/// largest (a peak is a peak).
#[derive(Debug, Clone, Copy)]
struct Medians {
    gate_rps: f64,
    passthrough_rps: Option<f64>,
    rules_off_rps: Option<f64>,
    p99_ms: f64,
    rss_mb: f64,
}

impl Medians {
    fn of(rounds: &[Round]) -> Medians {
        let gates = || rounds.iter().map(|r| &r.gate);
        Medians {
            gate_rps: median(gates().map(|g| g.rps)).unwrap_or(0.0),
            passthrough_rps: median(rounds.iter().filter_map(|r| r.pass.as_ref()).map(|p| p.rps)),
            rules_off_rps: median(
                rounds
                    .iter()
                    .filter_map(|r| r.rules_off.as_ref())
                    .map(|g| g.rps),
            ),
            p99_ms: median(gates().map(|g| g.p99_ms)).unwrap_or(0.0),
            rss_mb: gates().map(|g| g.rss_mb).fold(0.0, f64::max),
        }
    }

    fn ratio(&self) -> Option<f64> {
        self.passthrough_rps.map(|p| self.gate_rps / p)
    }

    fn rules_cost(&self) -> Option<f64> {
        self.rules_off_rps.map(|r| rules_cost(self.gate_rps, r))
    }
}

/// CPU microseconds per record, rounded to 0.1.
fn per_record_us(cpu_seconds: Option<f64>, records: u64) -> Value {
    cpu_seconds
        .filter(|_| records > 0)
        .map(|c| json!((c / records as f64 * 1e7).round() / 10.0))
        .unwrap_or(Value::Null)
}

/// `[(name, n)]` as a JSON object.
fn counts<N: serde::Serialize>(v: &[(String, N)]) -> serde_json::Map<String, Value> {
    v.iter().map(|(k, n)| (k.clone(), json!(n))).collect()
}

/// The figures every run has, pass-through and gate alike.
struct Timing<'a> {
    rps: f64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_seconds: f64,
    run_queue_wait_seconds: f64,
    threads: &'a [(String, f64)],
    rss_mb: f64,
    broker_cpu_seconds: Option<f64>,
}

/// Per thread name, busiest first: its CPU seconds and the cores it kept
/// busy over the run (near 1.0: that thread alone limits the run).
fn threads_json(threads: &[(String, f64)], seconds: f64) -> Value {
    threads
        .iter()
        .map(|(name, cpu)| {
            json!({
                "name": name,
                "cpu_seconds": cpu,
                "cores_used": share(Some(*cpu), seconds),
            })
        })
        .collect()
}

impl Timing<'_> {
    fn json(&self, events: u64, extra: Value) -> Value {
        let mut m = json!({
            "rps": self.rps,
            "seconds": self.seconds,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "cpu_seconds": self.cpu_seconds,
            "cpu_us_per_record": per_record_us(Some(self.cpu_seconds), events),
            "cores_used": share(Some(self.cpu_seconds), self.seconds),
            "run_queue_wait_seconds": self.run_queue_wait_seconds,
            "threads": threads_json(self.threads, self.seconds),
            "rss_mb": self.rss_mb,
            "broker_cpu_seconds": self.broker_cpu_seconds,
            "broker_cpu_us_per_record": per_record_us(self.broker_cpu_seconds, events),
            "broker_cores_used": share(self.broker_cpu_seconds, self.seconds),
        });
        if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
            m.extend(extra);
        }
        m
    }
}

fn pass_json(p: &PassReport, broker_cpu_seconds: Option<f64>, events: u64) -> Value {
    let timing = Timing {
        rps: p.rps,
        seconds: p.seconds,
        p50_ms: p.p50_ms,
        p99_ms: p.p99_ms,
        cpu_seconds: p.cpu_seconds,
        run_queue_wait_seconds: p.run_queue_wait_seconds,
        threads: &p.threads,
        rss_mb: p.rss_mb,
        broker_cpu_seconds,
    };
    timing.json(events, json!({"failed_deliveries": p.failed_deliveries}))
}

fn gate_json(g: &GateFigures, events: u64) -> Value {
    let timing = Timing {
        rps: g.rps,
        seconds: g.seconds,
        p50_ms: g.p50_ms,
        p99_ms: g.p99_ms,
        cpu_seconds: g.cpu_seconds,
        run_queue_wait_seconds: g.run_queue_wait_seconds,
        threads: &g.threads,
        rss_mb: g.rss_mb,
        broker_cpu_seconds: g.broker_cpu_seconds,
    };
    timing.json(
        events,
        json!({
            "processing_p99_ms": g.processing_p99_ms,
            "ready_after_seconds": g.ready_after_seconds,
            "consent_recipients": g.consent_recipients,
            "decisions": counts(&g.decisions),
            "reasons": counts(&g.reasons),
            "produce_errors": g.produce_errors,
            "exit": g.exit,
            "log": g.log,
        }),
    )
}

impl Results {
    /// `rounds` holds at least one round (`--rounds` is at least 1).
    pub fn new(
        opts: &BenchOptions,
        brokers: &str,
        started: DateTime<Utc>,
        preload: Preload,
        rounds: Vec<Round>,
    ) -> Results {
        let events = opts.events;
        let m = Medians::of(&rounds);
        // The round whose gate is the median one (the lower middle for an
        // even count): its runs are shown whole at the top level.
        let mut order: Vec<usize> = (0..rounds.len()).collect();
        order.sort_by(|&a, &b| rounds[a].gate.rps.total_cmp(&rounds[b].gate.rps));
        let middle = order.get(rounds.len().saturating_sub(1) / 2).copied();
        let per_round: Vec<Value> = rounds.iter().map(|r| r.json(events)).collect();
        let shown = middle.and_then(|i| per_round.get(i));
        let field = |k: &str| shown.map_or(Value::Null, |j| j[k].clone());
        let json = json!({
            "started_at": smsgate::contract::decision::format_time(&started),
            "machine": {"cores": cores(), "load_average_at_start": load_average()},
            "broker": match &opts.brokers {
                Some(b) => format!("existing Kafka at {b}"),
                None => format!("kafka {} (started for the run) at {brokers}", super::broker::KAFKA_VERSION),
            },
            "events": events,
            "partitions": opts.partitions,
            "preload": {
                "consent_records": preload.consent_records,
                "events": preload.events,
                "seconds": preload.seconds,
                "kinds": counts(&preload.kinds),
            },
            "median_round": middle.map(|i| i + 1),
            "passthrough": field("passthrough"),
            "gate": field("gate"),
            "rules_off": field("rules_off"),
            "ratio": m.ratio(),
            // The share of the plumbing's throughput the rules take.
            "rules_cost": m.rules_cost(),
            "medians": {
                "gate_rps": m.gate_rps,
                "passthrough_rps": m.passthrough_rps,
                "rules_off_rps": m.rules_off_rps,
                "p99_ms": m.p99_ms,
                "rss_mb_max": m.rss_mb,
            },
            "rounds": per_round,
            "targets": {
                "ratio_at_least_0_8": m.ratio().map(|r| r >= 0.8),
                "gate_rps_at_least_100000": m.gate_rps >= 100_000.0,
                "p99_ms_at_most_50": m.p99_ms <= 50.0,
                "rss_mb_at_most_300": m.rss_mb <= 300.0,
            },
        });
        Results {
            json,
            gate_rps: m.gate_rps,
            passthrough_rps: m.passthrough_rps,
            p99_ms: m.p99_ms,
            rss_mb: m.rss_mb,
        }
    }

    pub fn to_json(&self) -> &Value {
        &self.json
    }

    /// `gate_rps=<n> passthrough_rps=<n> ratio=<gate/passthrough> p99_ms=<n> rss_mb=<n>`
    /// (`-` for the pass-through figures when it was skipped).
    pub fn summary_line(&self) -> String {
        let (pass, ratio) = match self.passthrough_rps {
            Some(p) => (format!("{p:.0}"), format!("{:.2}", self.gate_rps / p)),
            None => ("-".into(), "-".into()),
        };
        format!(
            "gate_rps={:.0} passthrough_rps={pass} ratio={ratio} p99_ms={:.1} rss_mb={:.0}",
            self.gate_rps, self.p99_ms, self.rss_mb
        )
    }
}

/// One run's progress line, ending with its CPU split ("CPU µs per record:
/// 11.0 process + 1.5 broker") so a log shows at once which side is the
/// bottleneck.
pub(super) fn run_line(
    what: &str,
    records: u64,
    (rps, seconds): (f64, f64),
    cpu_seconds: f64,
    broker_cpu_seconds: Option<f64>,
) -> String {
    let us = |s: f64| s / records.max(1) as f64 * 1e6;
    let broker = broker_cpu_seconds
        .map(|b| format!(" + {:.1} broker", us(b)))
        .unwrap_or_default();
    format!(
        "{what}: {rps:.0} records/s over {seconds:.2} s; CPU µs per record: {:.1} process{broker}",
        us(cpu_seconds)
    )
}

/// The busiest threads of a run and the cores each kept busy: one near 1.0
/// means that thread alone limits the run; all low with a full machine
/// means the cores are the limit.
pub(super) fn threads_line(what: &str, threads: &[(String, f64)], seconds: f64) -> String {
    let busiest: Vec<String> = threads
        .iter()
        .take(6)
        .map(|(name, cpu)| format!("{name} {:.2}", cpu / seconds.max(1e-6)))
        .collect();
    format!("{what} threads, cores used: {}", busiest.join(", "))
}

pub(super) fn gate_line(what: &str, records: u64, g: &GateFigures) -> String {
    run_line(
        what,
        records,
        (g.rps, g.seconds),
        g.cpu_seconds,
        g.broker_cpu_seconds,
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn gate(rps: f64, cpu_seconds: f64) -> GateFigures {
        GateFigures {
            rps,
            seconds: 1e6 / rps,
            p50_ms: 12.0,
            p99_ms: 24.8,
            processing_p99_ms: 9.0,
            rss_mb: 260.0,
            cpu_seconds,
            run_queue_wait_seconds: 1.0,
            threads: vec![("smsgate-decide0".into(), 8.5), ("producer".into(), 1.0)],
            broker_cpu_seconds: Some(1.5),
            ready_after_seconds: 2.5,
            consent_recipients: 920_004.0,
            decisions: vec![("approve".into(), 1e6)],
            reasons: Vec::new(),
            produce_errors: 0.0,
            exit: "exit status: 0".into(),
            log: "gate.log".into(),
        }
    }

    fn opts(rounds: u32) -> BenchOptions {
        BenchOptions {
            events: 1_000_000,
            partitions: 4,
            brokers: None,
            kafka_home: PathBuf::from("/opt/smsgate-kafka/4.1.0"),
            gate: PathBuf::from("smsgate"),
            out: PathBuf::from("out"),
            seed: 1,
            skip_passthrough: false,
            rules_off: true,
            rounds,
            timeout: Duration::from_secs(1),
        }
    }

    fn pass(rps: f64) -> PassReport {
        PassReport {
            records: 1_000_000,
            first_poll_unix_ms: 0,
            last_ack_unix_ms: 2_000,
            seconds: 1e6 / rps,
            rps,
            p50_ms: 5.0,
            p99_ms: 20.0,
            cpu_seconds: 2.5,
            run_queue_wait_seconds: 0.5,
            threads: Vec::new(),
            rss_mb: 90.0,
            failed_deliveries: 0,
        }
    }

    fn preload() -> Preload {
        Preload {
            consent_records: 1_050_000,
            events: 1_000_000,
            seconds: 8.0,
            kinds: vec![("clean".into(), 1_000_000)],
        }
    }

    fn round(pass_rps: f64, gate: GateFigures, rules_off: Option<GateFigures>) -> Round {
        Round {
            pass: Some(pass(pass_rps)),
            pass_broker_cpu: Some(0.8),
            gate,
            rules_off,
        }
    }

    fn results(rules_off: Option<GateFigures>) -> Results {
        let rounds = vec![round(500_000.0, gate(100_000.0, 11.0), rules_off)];
        Results::new(&opts(1), "127.0.0.1:9092", Utc::now(), preload(), rounds)
    }

    #[test]
    fn the_summary_line_and_the_json_carry_every_run() {
        let r = results(Some(gate(125_000.0, 10.0)));
        assert_eq!(
            r.summary_line(),
            "gate_rps=100000 passthrough_rps=500000 ratio=0.20 p99_ms=24.8 rss_mb=260"
        );
        let j = r.to_json();
        assert_eq!(j["gate"]["cpu_us_per_record"], 11.0);
        assert_eq!(j["gate"]["broker_cpu_us_per_record"], 1.5);
        assert_eq!(j["gate"]["decisions"]["approve"], 1e6);
        // 100k records/s: a 10 s window, so 8.5 CPU s is 0.85 of a core.
        assert_eq!(j["gate"]["threads"][0]["name"], "smsgate-decide0");
        assert_eq!(j["gate"]["threads"][0]["cpu_seconds"], 8.5);
        assert_eq!(j["gate"]["threads"][0]["cores_used"], 0.85);
        assert_eq!(j["passthrough"]["threads"], json!([]));
        assert_eq!(j["passthrough"]["cpu_us_per_record"], 2.5);
        assert_eq!(j["passthrough"]["broker_cpu_us_per_record"], 0.8);
        assert_eq!(j["passthrough"]["failed_deliveries"], 0);
        assert_eq!(j["rules_off"]["cpu_us_per_record"], 10.0);
        let cost = j["rules_cost"].as_f64().unwrap_or(0.0);
        assert!((cost - 0.2).abs() < 1e-9, "{cost}");
        assert_eq!(j["targets"]["ratio_at_least_0_8"], false);
        assert_eq!(j["targets"]["gate_rps_at_least_100000"], true);
        // One round: it is the median round, and the only one listed.
        assert_eq!(j["median_round"], 1);
        assert_eq!(j["rounds"].as_array().map(Vec::len), Some(1));
        assert_eq!(j["rounds"][0]["gate"], j["gate"]);
    }

    #[test]
    fn without_the_rules_off_run_its_figures_are_null() {
        let r = results(None);
        assert!(r.to_json()["rules_off"].is_null());
        assert!(r.to_json()["rules_cost"].is_null());
    }

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([7.0]), Some(7.0));
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn over_rounds_the_line_gives_each_figures_median_and_the_largest_rss() {
        let mut slow = gate(60_000.0, 20.0);
        slow.p99_ms = 42.0;
        slow.rss_mb = 290.0;
        let rounds = vec![
            round(400_000.0, gate(80_000.0, 15.0), Some(gate(100_000.0, 11.0))),
            round(300_000.0, slow, Some(gate(90_000.0, 12.0))),
            round(500_000.0, gate(120_000.0, 10.0), Some(gate(150_000.0, 9.0))),
        ];
        let r = Results::new(&opts(3), "127.0.0.1:9092", Utc::now(), preload(), rounds);
        // Gate 80k (median of 60k, 80k, 120k), pass-through 400k, ratio of
        // the two medians, p99 the median 24.8, RSS the largest, 290.
        assert_eq!(
            r.summary_line(),
            "gate_rps=80000 passthrough_rps=400000 ratio=0.20 p99_ms=24.8 rss_mb=290"
        );
        let j = r.to_json();
        assert_eq!(j["rounds"].as_array().map(Vec::len), Some(3));
        // The round with the median gate is shown whole: round 1.
        assert_eq!(j["median_round"], 1);
        assert_eq!(j["gate"]["rps"], 80_000.0);
        assert_eq!(j["passthrough"]["rps"], 400_000.0);
        assert_eq!(j["medians"]["rules_off_rps"], 100_000.0);
        let cost = j["rules_cost"].as_f64().unwrap_or(0.0);
        assert!((cost - 0.2).abs() < 1e-9, "{cost}");
        assert_eq!(j["rounds"][1]["gate"]["p99_ms"], 42.0);
        assert_eq!(j["targets"]["p99_ms_at_most_50"], true);
    }

    #[test]
    fn a_threads_line_names_the_busiest_threads_with_their_cores() {
        let threads: Vec<(String, f64)> = [
            ("smsgate-decide0", 9.0),
            ("rdk:broker1", 2.5),
            ("producer", 1.0),
        ]
        .iter()
        .map(|(n, c)| (n.to_string(), *c))
        .collect();
        assert_eq!(
            threads_line("gate", &threads, 10.0),
            "gate threads, cores used: smsgate-decide0 0.90, rdk:broker1 0.25, producer 0.10"
        );
    }

    #[test]
    fn a_run_line_splits_the_cpu_when_the_broker_was_sampled() {
        assert_eq!(
            run_line("gate", 1_000_000, (112_814.4, 8.864), 11.04, Some(1.5)),
            "gate: 112814 records/s over 8.86 s; CPU µs per record: 11.0 process + 1.5 broker"
        );
        assert_eq!(
            run_line("pass-through", 2_000, (40_000.0, 0.05), 0.05, None),
            "pass-through: 40000 records/s over 0.05 s; CPU µs per record: 25.0 process"
        );
    }
}
