//! `smsgate demo`: the whole gate on librdkafka's in-process mock cluster,
//! no broker needed.
//!
//! It creates the topics, seeds the example sender registry (embedded) and
//! consent, produces a realistic mix of Chinese and US outbound events,
//! runs the same [`Gate`](crate::gate::Gate) as `smsgate run`, prints a
//! live summary and serves `/metrics` while it runs. It always finishes: when
//! every event is decided and acknowledged, or at `--duration`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::Settings;
use crate::contract::decision::Outcome;
use crate::gate::{Gate, Shutdown};
use crate::policy::{Policy, PolicySource};
use crate::synth::cluster::MockKafka;
use crate::synth::workload::Workload;
use crate::telemetry::metrics::Snapshot;

/// The example registry, embedded so the demo works from any directory.
pub const EXAMPLE_SENDERS: &str = include_str!("../../config/senders.example.toml");

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Outbound events to produce.
    pub events: u64,
    /// Upper bound on the run.
    pub duration: Duration,
    /// Outbound events produced per second; 0 produces as fast as possible.
    pub rate: u64,
    /// Optional config file (log, metrics, pipeline and topic settings).
    pub config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Config(String),
    #[error("mock cluster: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Gate(#[from] crate::gate::PipelineError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub produced: u64,
    pub decisions: Snapshot,
    pub elapsed: Duration,
    /// False when `--duration` cut the run short.
    pub completed: bool,
}

fn settings_for(
    opts: &DemoOptions,
    bootstrap: &str,
    senders: PathBuf,
) -> Result<Settings, DemoError> {
    let mut s =
        Settings::load(opts.config.as_deref()).map_err(|e| DemoError::Config(e.to_string()))?;
    s.kafka.brokers = bootstrap.to_string();
    s.kafka.group_id = "smsgate-demo".into();
    s.kafka.group_instance_id = None;
    s.kafka.startup_timeout_secs = 10;
    s.kafka.properties.clear();
    s.policy.senders = Some(senders);
    s.pipeline.commit_interval_ms = 500;
    s.pipeline.drain_timeout_secs = 10;
    if std::net::TcpListener::bind(&s.metrics.listen).is_err() {
        s.metrics.listen = "127.0.0.1:0".into();
    }
    if std::env::var_os("SMSGATE__LOG__LEVEL").is_none() {
        // Per-event lines would drown the summary; warnings still show.
        s.log.level = "warn".into();
    }
    Ok(s)
}

/// Runs the demo, writing the live summary to `out`.
pub async fn run(opts: DemoOptions, out: &mut (dyn Write + Send)) -> Result<DemoReport, DemoError> {
    let mock = MockKafka::start(3)?;
    let senders =
        std::env::temp_dir().join(format!("smsgate-demo-senders-{}.toml", std::process::id()));
    std::fs::write(&senders, EXAMPLE_SENDERS)?;
    let mut settings = settings_for(&opts, mock.bootstrap(), senders.clone())?;
    crate::telemetry::logging::init(&settings.log).map_err(|e| DemoError::Config(e.to_string()))?;
    let policy = Policy::load(&PolicySource {
        senders: vec![senders.clone()],
        packs: settings.policy.packs.clone(),
    })
    .map_err(|e| DemoError::Config(e.to_string()))?;
    let _ = std::fs::remove_file(&senders);
    settings.topics.changelog = Some(settings.changelog_topic());
    mock.create_topics(&settings.topics, 4)?;

    // Consent first, so the gate has it before it decides anything.
    let now = Utc::now();
    // A few thousand recipients, so caps and duplicates show in a short run.
    let recipients = opts.events.clamp(100, 2000);
    let mut generator = Workload::new(0x5e_6a7e, now, recipients, "demo");
    let seeder = mock.producer()?;
    let consent: Vec<_> = (0..recipients)
        .flat_map(|i| generator.consent_for(i))
        .collect();
    let without_evidence = consent.iter().filter(|c| !c.counts()).count();
    for c in &consent {
        seeder.send(
            &settings.topics.consent,
            Some(c.to.as_bytes()),
            c.to_json().as_bytes(),
        )?;
    }
    seeder.flush(Duration::from_secs(10))?;

    let gate = Gate::new(settings.clone(), policy.clone());
    let metrics = gate.metrics();
    let addr = gate.metrics_addr();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(gate.run(shutdown.clone()));

    let total = opts.events;
    let binding = Instant::now();
    while addr.get().is_none() && binding.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writeln!(
        out,
        "smsgate demo: in-process mock Kafka (3 brokers), policy {}, metrics on http://{}/metrics",
        policy.version(),
        addr.get()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "(not serving)".into())
    )?;
    writeln!(
        out,
        "seeded {} consent events ({} opt-ins without evidence, ignored); producing {} outbound events (CN +86 and US +1) {}",
        consent.len(),
        without_evidence,
        total,
        if opts.rate > 0 {
            format!("at {}/s", opts.rate)
        } else {
            "as fast as possible".into()
        }
    )?;

    write!(out, "loading consent, joining the consumer group… ")?;
    out.flush()?;

    // Outbound events, produced once the gate holds its partitions (the
    // mock coordinator delays a first join by 3 s), so the rate shown is
    // the gate keeping up with the feed.
    let joining = Instant::now();
    while !(metrics.is_ready() && metrics.has_been_assigned())
        && joining.elapsed() < Duration::from_secs(30)
        && !task.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writeln!(
        out,
        "ready after {:.1} s\n",
        joining.elapsed().as_secs_f64()
    )?;
    let topic = settings.topics.outbound.clone();
    let rate = opts.rate;
    let producing = std::thread::spawn(move || -> Result<u64, rdkafka::error::KafkaError> {
        let started = Instant::now();
        let mut n = 0;
        while n < total {
            if rate > 0 {
                // Pace: never ahead of `rate` events per second.
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                if n >= due {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
            let (bytes, key, _) = generator.next_event();
            seeder.send(&topic, Some(key.as_bytes()), &bytes)?;
            n += 1;
        }
        seeder.flush(Duration::from_secs(30))?;
        Ok(n)
    });

    let started = Instant::now();
    let mut produced = None;
    let mut completed = false;
    let mut last_print = Instant::now();
    let mut producing = Some(producing);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if producing.as_ref().is_some_and(|h| h.is_finished())
            && let Some(h) = producing.take()
        {
            produced = Some(match h.join() {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(DemoError::Kafka(e)),
                Err(_) => 0,
            });
        }
        let snap = metrics.snapshot();
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            progress(out, started.elapsed(), &snap, total)?;
        }
        if produced.is_some_and(|p| snap.decided() >= p && snap.in_flight == 0) {
            completed = true;
            break;
        }
        if started.elapsed() >= opts.duration || task.is_finished() {
            break;
        }
    }
    let elapsed = started.elapsed();
    shutdown.trigger();
    let result = task
        .await
        .map_err(|e| DemoError::Config(format!("gate task failed: {e}")))?;
    let summary = result?;
    let report = DemoReport {
        produced: produced.unwrap_or(0),
        decisions: summary.decisions,
        elapsed,
        completed,
    };
    final_summary(out, &report, total)?;
    Ok(report)
}

fn progress(
    out: &mut (dyn Write + Send),
    t: Duration,
    s: &Snapshot,
    total: u64,
) -> std::io::Result<()> {
    let secs = t.as_secs_f64().max(0.001);
    writeln!(
        out,
        "{:>6.1}s  decided {:>6}/{}  approved {:>6}  quarantined {:>6}  deferred {:>5}  {:>7.0} events/s",
        secs,
        s.decided(),
        total,
        s.approved,
        s.rejected,
        s.deferred,
        s.decided() as f64 / secs
    )
}

fn final_summary(out: &mut (dyn Write + Send), r: &DemoReport, total: u64) -> std::io::Result<()> {
    let s = &r.decisions;
    let secs = r.elapsed.as_secs_f64().max(0.001);
    if r.completed {
        writeln!(
            out,
            "\ndone in {:.1} s: {} events decided, {:.0} events/s",
            secs,
            s.decided(),
            s.decided() as f64 / secs
        )?;
    } else {
        writeln!(
            out,
            "\nstopped at --duration ({:.1} s): {} of {} events decided",
            secs,
            s.decided(),
            total
        )?;
    }
    writeln!(out, "  {:<12}{:>8}", Outcome::Approve.as_str(), s.approved)?;
    writeln!(out, "  {:<12}{:>8}", "quarantine", s.rejected)?;
    writeln!(out, "  {:<12}{:>8}", Outcome::Defer.as_str(), s.deferred)?;
    writeln!(out, "  reasons (an event may have several):")?;
    for (code, n) in &s.reasons {
        writeln!(out, "    {:<36}{:>8}", code.as_str(), n)?;
    }
    Ok(())
}

/// `smsgate demo`: exit 0 when it ran (finished or cut at --duration).
pub fn command(opts: DemoOptions) -> ExitCode {
    let result = match super::block_on(async {
        let mut out = std::io::stdout();
        run(opts, &mut out).await
    }) {
        Ok(result) => result,
        Err(code) => return code,
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => super::fail(1, &e.to_string()),
    }
}
