//! The benchmark: how fast the gate is, and how close to the limit of its
//! own plumbing (`scripts/bench`, binary `smsgate-bench`).
//!
//! One run: start a Kafka broker (scripts/kafka install's jars, through the
//! end-to-end tests' launcher: [`broker`]) or use `--brokers`;
//! create the run's topics with P partitions; preload consent for most
//! recipients and N realistic outbound events ([`smsgate::synth::workload`], [`smsgate::synth::produce`]);
//! run the [`passthrough`] (same Kafka settings, no deciding) over the input
//! as a child process; run `smsgate run` (the release binary, full default
//! policy) over the same input as a child process, watching its `/metrics`
//! ([`scrape`]) and `/proc` ([`procstat`]); with `--rules-off`, run the
//! gate once more with every rule switched off ([`rules_off`]), which
//! separates the rules' cost from the gate's own plumbing (with
//! `--rounds N`, these runs N times in turn over the same input); then
//! write the results as JSON and print one summary line, each figure the
//! median over the rounds ([`report`]). [`step`] is the
//! decide worker's step alone, without Kafka (`smsgate-bench step`,
//! `scripts/bench-instructions`, `cargo bench --bench gate_step`).

pub mod broker;
pub mod passthrough;
pub mod procstat;
pub mod report;
pub mod rules_off;
pub mod sampler;
pub mod scrape;
pub mod step;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;

use broker::Kafka;
use procstat::ThreadCpu;
use report::{GateFigures, Preload, Results, Round, gate_line, run_line, threads_line};
use sampler::Sampler;
use smsgate::synth::produce::Loader;
use smsgate::synth::workload::Workload;
use smsgate::telemetry::metrics::names;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("setup: {0}")]
    Setup(String),
    /// Starting the broker, or creating the run's topics.
    #[error("broker: {0}")]
    Broker(#[from] smsgate_testkit::kafka_process::LaunchError),
    #[error(transparent)]
    Produce(#[from] smsgate::synth::produce::ProduceError),
    #[error("pass-through: {0}")]
    Passthrough(String),
    #[error("gate: {0}")]
    Gate(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub events: u64,
    pub partitions: i32,
    /// An existing Kafka; `None` starts one from `kafka_home`.
    pub brokers: Option<String>,
    /// Where `scripts/kafka install` put Kafka: `$SMSGATE_KAFKA_HOME/4.1.0`.
    pub kafka_home: PathBuf,
    /// The `smsgate` binary to benchmark.
    pub gate: PathBuf,
    /// Where results (JSON) and logs go.
    pub out: PathBuf,
    pub seed: u64,
    pub skip_passthrough: bool,
    /// Also run the gate with every rule switched off (after the full run).
    pub rules_off: bool,
    /// Rounds of those runs, in turn over the same input; the summary line
    /// gives each figure's median (a shared host moves single runs a lot).
    pub rounds: u32,
    /// Upper bound for each run.
    pub timeout: Duration,
}

/// Stops a child: SIGTERM, then SIGKILL after `grace`.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// The run's topic names (prefixed, so runs against a shared Kafka never
/// touch the real `sms.*` topics) as `SMSGATE__TOPICS__*` variables.
fn topic_env(prefix: &str) -> Vec<(String, String)> {
    [
        "outbound",
        "consent",
        "inbound",
        "approved",
        "quarantine",
        "deferred",
    ]
    .iter()
    .map(|t| {
        (
            format!("SMSGATE__TOPICS__{}", t.to_uppercase()),
            format!("{prefix}.{t}"),
        )
    })
    .collect()
}

fn log(line: &str) {
    eprintln!("[bench {}] {line}", Utc::now().format("%H:%M:%S"));
}

/// Runs the whole benchmark; returns the results (already written to
/// `out/<timestamp>.json`).
pub fn run(opts: &BenchOptions) -> Result<Results, BenchError> {
    std::fs::create_dir_all(&opts.out)?;
    let started = Utc::now();
    let stamp = started.format("%Y%m%dT%H%M%SZ").to_string();
    let run = format!("b{}", started.format("%H%M%S"));
    let prefix = format!("bench.{run}");

    // 1. Broker and topics.
    let kafka = match &opts.brokers {
        Some(_) => None,
        None => Some(Kafka::start(
            &opts.kafka_home,
            &opts.out.join(format!("{stamp}-kafka")),
        )?),
    };
    let brokers = match (&opts.brokers, &kafka) {
        (Some(b), _) => b.clone(),
        (None, Some(k)) => k.addr.clone(),
        (None, None) => unreachable!("a broker is started when none is given"),
    };
    let env = topic_env(&prefix);
    let names: Vec<String> = env.iter().map(|(_, v)| v.clone()).collect();
    broker::create_topics(&brokers, &names, opts.partitions)?;
    log(&format!(
        "broker {brokers}, topics {prefix}.* with {} partitions",
        opts.partitions
    ));
    let broker_pid = kafka.as_ref().and_then(Kafka::pid);
    let broker_cpu = Sampler::start(broker_pid);

    // 2. Preload consent, then events.
    let preload = preload(opts, &brokers, &prefix, &run)?;
    log(&format!(
        "preloaded {} consent records and {} events in {:.1} s",
        preload.consent_records, preload.events, preload.seconds
    ));

    let mut env = env;
    env.push(("SMSGATE__KAFKA__BROKERS".into(), brokers.clone()));

    // 3–5. The pass-through, the gate and (with --rules-off) the gate with
    // every rule off, `rounds` times in turn over the same input.
    let rules_off = if opts.rules_off {
        let packs = opts.out.join(format!("{stamp}-rules-off-packs"));
        let configured = rules_off::configured_packs()?;
        let switched = rules_off::write_packs(configured.as_deref(), &packs)?;
        Some((packs, switched))
    } else {
        None
    };
    let mut rounds = Vec::new();
    for k in 1..=opts.rounds.max(1) {
        if opts.rounds > 1 {
            log(&format!("round {k} of {}", opts.rounds));
        }
        let names = RoundNames {
            prefix: &prefix,
            stamp: &stamp,
            suffix: if k > 1 {
                format!("-{k}")
            } else {
                String::new()
            },
        };
        rounds.push(round(opts, &env, &names, &broker_cpu, rules_off.as_ref())?);
    }
    drop(kafka);

    let results = Results::new(opts, &brokers, started, preload, rounds);
    let path = opts.out.join(format!("{stamp}.json"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&results.to_json()).unwrap_or_default(),
    )?;
    log(&format!("results written to {}", path.display()));
    Ok(results)
}

/// What one round's consumer groups and log files are called: round 1 as
/// without `--rounds`, round k > 1 with the suffix `-k`.
struct RoundNames<'a> {
    prefix: &'a str,
    stamp: &'a str,
    suffix: String,
}

impl RoundNames<'_> {
    /// The run environment with its own consumer group, so each run reads
    /// the input from the start (and the gate restores no changelog).
    fn env(&self, env: &[(String, String)], group: &str) -> Vec<(String, String)> {
        let mut e = env.to_vec();
        e.push((
            "SMSGATE__KAFKA__GROUP_ID".into(),
            format!("{}.{group}{}", self.prefix, self.suffix),
        ));
        e
    }

    fn log(&self, what: &str) -> String {
        format!("{}-{what}{}", self.stamp, self.suffix)
    }
}

/// One round: the pass-through, the gate, and with `rules_off` (the packs'
/// directory and how many rules it switched off) the gate's own plumbing.
fn round(
    opts: &BenchOptions,
    env: &[(String, String)],
    names: &RoundNames<'_>,
    broker_cpu: &Sampler,
    rules_off: Option<&(PathBuf, usize)>,
) -> Result<Round, BenchError> {
    let pass = if opts.skip_passthrough {
        None
    } else {
        Some(run_passthrough(opts, &names.env(env, "passthrough"))?)
    };
    let pass_broker_cpu = pass
        .as_ref()
        .and_then(|p| broker_cpu.between(p.first_poll_unix_ms, p.last_ack_unix_ms));
    if let Some(p) = &pass {
        log(&run_line(
            "pass-through",
            opts.events,
            (p.rps, p.seconds),
            p.cpu_seconds,
            pass_broker_cpu,
        ));
        log(&threads_line("pass-through", &p.threads, p.seconds));
    }

    let gate = run_gate(
        opts,
        &names.env(env, "gate"),
        &names.log("gate"),
        broker_cpu,
    )?;
    log(&gate_line("gate", opts.events, &gate));
    log(&threads_line("gate", &gate.threads, gate.seconds));

    let rules_off = match rules_off {
        Some((packs, switched)) => {
            let mut e = names.env(env, "gate-rules-off");
            e.push(("SMSGATE__POLICY__PACKS".into(), packs.display().to_string()));
            let figures = run_gate(opts, &e, &names.log("rules-off"), broker_cpu)?;
            let what = format!("gate with its {switched} rules off");
            log(&gate_line(&what, opts.events, &figures));
            log(&threads_line(
                "rules off",
                &figures.threads,
                figures.seconds,
            ));
            Some(figures)
        }
        None => None,
    };
    Ok(Round {
        pass,
        pass_broker_cpu,
        gate,
        rules_off,
    })
}

/// Consent for every recipient (one per event), a sealing record per
/// consent partition, then the outbound events.
fn preload(
    opts: &BenchOptions,
    brokers: &str,
    prefix: &str,
    run: &str,
) -> Result<Preload, BenchError> {
    let t = Instant::now();
    let loader = Loader::new(brokers, &Default::default())?;
    let mut workload = Workload::new(opts.seed, Utc::now(), opts.events, run);
    let consent_topic = format!("{prefix}.consent");
    let consent_records =
        smsgate::synth::produce::produce_consent(&loader, &consent_topic, &workload)?;
    seal(&loader, &consent_topic, opts.partitions)?;
    let kinds = smsgate::synth::produce::produce_events(
        &loader,
        &format!("{prefix}.outbound"),
        &mut workload,
        opts.events,
        None,
    )?;
    Ok(Preload {
        consent_records,
        events: opts.events,
        seconds: t.elapsed().as_secs_f64(),
        kinds: kinds.into_iter().map(|(k, n)| (k.to_string(), n)).collect(),
    })
}

/// Ends each consent partition with a one-record batch. The gate's consent
/// feed waits for the high watermark seen at start; a broker that reports it
/// as the last batch's base offset + 1 (Tansu's memory store did) then still
/// gives the true end. Harmless on Kafka.
fn seal(loader: &Loader, topic: &str, partitions: i32) -> Result<(), BenchError> {
    let before = loader
        .acks()
        .delivered
        .load(std::sync::atomic::Ordering::Relaxed);
    for p in 0..partitions {
        let to = format!("+1999{:07}", p);
        let c = smsgate::contract::consent::ConsentEvent {
            to: to.clone(),
            action: smsgate::contract::consent::ConsentAction::OptOut,
            scope: smsgate::contract::consent::ConsentScope::Personalization,
            sender: "*".into(),
            at: Utc::now(),
            source: "bench-seal".into(),
            evidence_id: None,
            expires_at: None,
        };
        loader.send(topic, to.as_bytes(), c.to_json().as_bytes(), Some(p))?;
        loader.finish(topic, before + 1 + p as u64, Duration::from_secs(30))?;
    }
    Ok(())
}

fn run_passthrough(
    opts: &BenchOptions,
    env: &[(String, String)],
) -> Result<passthrough::PassReport, BenchError> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args(["passthrough", "--expected", &opts.events.to_string()])
        .args(["--timeout", &opts.timeout.as_secs().to_string()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(BenchError::Passthrough(format!(
            "exited with {}",
            out.status
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .map_err(|e| BenchError::Passthrough(format!("unreadable report ({e}): {text}")))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs `smsgate run` over the input until every output is acknowledged;
/// its log goes to `<out>/<name>.log`.
fn run_gate(
    opts: &BenchOptions,
    env: &[(String, String)],
    name: &str,
    broker_cpu: &Sampler,
) -> Result<GateFigures, BenchError> {
    let port = broker::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let log_path = opts.out.join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(&opts.gate);
    cmd.arg("run")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SMSGATE__METRICS__LISTEN", &addr)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    if std::env::var_os("SMSGATE__POLICY__SENDERS").is_none() {
        cmd.env("SMSGATE__POLICY__SENDERS", sample_senders());
    }
    if std::env::var_os("SMSGATE__LOG__FORMAT").is_none() {
        cmd.env("SMSGATE__LOG__FORMAT", "json");
    }
    let spawned = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| BenchError::Gate(format!("cannot start {}: {e}", opts.gate.display())))?;
    let pid = child.id();
    log(&format!(
        "gate started (pid {pid}), log {}",
        log_path.display()
    ));
    let outbound = env
        .iter()
        .find(|(k, _)| k == "SMSGATE__TOPICS__OUTBOUND")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // Completion counts the output topics only: the gate also produces to
    // its changelog (caps and duplicates), which must not count as output.
    let outputs: Vec<String> = ["APPROVED", "QUARANTINE", "DEFERRED"]
        .iter()
        .filter_map(|t| {
            env.iter()
                .find(|(k, _)| *k == format!("SMSGATE__TOPICS__{t}"))
                .map(|(_, v)| v.clone())
        })
        .collect();
    let n = opts.events as f64;
    let mut ready_at = None;
    let mut first: Option<(Instant, u64, f64, f64)> = None;
    let mut prev = (Instant::now(), now_ms(), 0.0, 0.0);
    // Per-thread CPU at `prev`, read until consumption begins (not inside
    // the timed window, where reading every thread would cost the run).
    let mut prev_threads = ThreadCpu::default();
    let mut first_threads = None;
    let last_page;
    loop {
        std::thread::sleep(Duration::from_millis(25));
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BenchError::Gate(format!(
                "exited early with {status}; see {}",
                log_path.display()
            )));
        }
        if spawned.elapsed() > opts.timeout {
            terminate(&mut child, Duration::from_secs(10));
            return Err(BenchError::Gate(format!(
                "timed out after {} s; see {}",
                opts.timeout.as_secs(),
                log_path.display()
            )));
        }
        let Some(page) = scrape::fetch(&addr) else {
            continue;
        };
        let now = (
            Instant::now(),
            now_ms(),
            procstat::cpu_seconds(pid).unwrap_or(0.0),
            procstat::run_queue_wait_seconds(pid).unwrap_or(0.0),
        );
        if ready_at.is_none() && page.sum(names::READY) >= 1.0 {
            ready_at = Some(spawned.elapsed().as_secs_f64());
        }
        if first.is_none() && page.get(names::EVENTS_CONSUMED, "topic", &outbound) > 0.0 {
            // Consumption began between the previous scrape and this one.
            let mid = prev.0 + (now.0 - prev.0) / 2;
            first = Some((mid, (prev.1 + now.1) / 2, prev.2, prev.3));
            first_threads = Some(std::mem::take(&mut prev_threads));
        }
        let produced: f64 = outputs
            .iter()
            .map(|t| page.get(names::PRODUCED, "topic", t))
            .sum();
        if produced >= n {
            let rss = procstat::peak_rss_mb(pid).unwrap_or(0.0);
            last_page = (page, now, rss, ThreadCpu::of(pid));
            break;
        }
        if first.is_none() {
            prev_threads = ThreadCpu::of(pid);
        }
        prev = now;
    }
    let (page, end, rss_mb, threads_end) = last_page;
    let threads = threads_end.since(&first_threads.unwrap_or(prev_threads));
    let (t0, t0_ms, cpu0, wait0) = first.unwrap_or(prev);
    let status = terminate(&mut child, Duration::from_secs(30));
    let seconds = end.0.duration_since(t0).as_secs_f64().max(1e-6);
    let decided = page.sum(names::DECISIONS);
    if decided < n {
        return Err(BenchError::Gate(format!(
            "{n} outputs acknowledged but only {decided} decisions counted; see {}",
            log_path.display()
        )));
    }
    Ok(GateFigures {
        rps: n / seconds,
        seconds,
        p50_ms: page.quantile(names::END_TO_END_SECONDS, 0.5).unwrap_or(0.0) * 1000.0,
        p99_ms: page
            .quantile(names::END_TO_END_SECONDS, 0.99)
            .unwrap_or(0.0)
            * 1000.0,
        processing_p99_ms: page
            .quantile(names::PROCESSING_SECONDS, 0.99)
            .unwrap_or(0.0)
            * 1000.0,
        rss_mb,
        cpu_seconds: end.2 - cpu0,
        run_queue_wait_seconds: end.3 - wait0,
        threads,
        broker_cpu_seconds: broker_cpu.between(t0_ms, end.1),
        ready_after_seconds: ready_at.unwrap_or(0.0),
        consent_recipients: page.sum(names::CONSENT_RECIPIENTS),
        decisions: page.by_label(names::DECISIONS, "outcome"),
        reasons: page.by_label(names::REASONS, "code"),
        produce_errors: page.sum(names::PRODUCE_ERRORS),
        exit: status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into()),
        log: log_path.display().to_string(),
    })
}

/// The sample sender registry: relative to the working directory when run
/// from the repository root (scripts/bench), else found from this crate.
pub fn sample_senders() -> std::path::PathBuf {
    let relative = std::path::PathBuf::from("config/senders.example.toml");
    if relative.exists() {
        relative
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/senders.example.toml")
    }
}
