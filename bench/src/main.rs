//! `smsgate-bench`: the gate against the pass-through on the same broker
//! (see docs/performance.md; `scripts/bench` builds and runs it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use smsgate::config::Settings;
use smsgate_bench::{self as bench, BenchOptions};

#[derive(Parser)]
#[command(
    name = "smsgate-bench",
    about = "Benchmark smsgate against a Kafka pass-through"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// Outbound events to preload (and consent for as many recipients).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// An existing Kafka (HOST:PORT); default: start Kafka from the jars
    /// `scripts/kafka install` fetched.
    #[arg(long)]
    brokers: Option<String>,
    /// Where `scripts/kafka install` put Kafka (it uses `<dir>/4.1.0`).
    #[arg(long, env = "SMSGATE_KAFKA_HOME", default_value = "/opt/smsgate-kafka")]
    kafka_home: PathBuf,
    /// The smsgate binary (default: next to this one).
    #[arg(long)]
    gate: Option<PathBuf>,
    /// Results directory.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    #[arg(long, default_value_t = 0x5e6a7e)]
    seed: u64,
    /// Run only the gate.
    #[arg(long)]
    no_passthrough: bool,
    /// Also run the gate with every rule switched off: its own plumbing,
    /// which separates what the rules cost from what the pipe costs.
    #[arg(long)]
    rules_off: bool,
    /// Rounds of the runs (pass-through, gate, rules off), in turn over the
    /// same input; the summary line gives each figure's median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Upper bound for each run, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Subcommand)]
enum Sub {
    /// (internal) The pass-through run, settings from SMSGATE__* like the gate.
    #[command(hide = true)]
    Passthrough {
        #[arg(long)]
        expected: u64,
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// The decide worker's step alone, in this process, without Kafka:
    /// parse, decide, record state, route, seal (`scripts/bench-instructions`
    /// counts its instructions under callgrind).
    Step {
        /// Events to decide (consent for as many recipients is loaded first).
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// With every rule switched off.
        #[arg(long)]
        rules_off: bool,
        #[arg(long, default_value_t = 0x5e6a7e)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Sub::Passthrough { expected, timeout }) => passthrough(expected, timeout),
        Some(Sub::Step {
            events,
            rules_off,
            seed,
        }) => step(events, rules_off, seed),
        None => run(cli.bench),
    }
}

fn passthrough(expected: u64, timeout: u64) -> ExitCode {
    let settings = match Settings::load(None) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    match bench::passthrough::run(&settings, expected, Duration::from_secs(timeout)) {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn step(n: u64, rules_off: bool, seed: u64) -> ExitCode {
    // The packs `smsgate run` would load here (config file, environment).
    let configured = match bench::rules_off::configured_packs() {
        Ok(packs) => packs,
        Err(e) => return fail(&e.to_string()),
    };
    let policy = if rules_off {
        bench::step::rules_off_policy(configured.as_deref())
    } else {
        bench::step::policy(configured.as_deref())
            .map_err(|e| bench::BenchError::Setup(format!("policy: {e}")))
    };
    let policy = match policy {
        Ok(p) => p,
        Err(e) => return fail(&e.to_string()),
    };
    let (w, events) = bench::step::events(n, seed);
    let (took, routed) = bench::step::timed(&policy, &w, &events);
    let per_event = took.as_secs_f64() * 1e6 / n.max(1) as f64;
    println!(
        "step: {n} events in {:.1} ms, {per_event:.2} µs per event ({:.0} events/s), {routed} bytes routed",
        took.as_secs_f64() * 1e3,
        n as f64 / took.as_secs_f64().max(1e-9),
    );
    ExitCode::SUCCESS
}

fn run(a: BenchArgs) -> ExitCode {
    let gate = a.gate.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("smsgate")))
            .unwrap_or_else(|| PathBuf::from("smsgate"))
    });
    let opts = BenchOptions {
        events: a.events,
        partitions: a.partitions,
        brokers: a.brokers,
        kafka_home: a.kafka_home.join(bench::broker::KAFKA_VERSION),
        gate,
        out: a.out,
        seed: a.seed,
        skip_passthrough: a.no_passthrough,
        rules_off: a.rules_off,
        rounds: a.rounds,
        timeout: Duration::from_secs(a.timeout),
    };
    match bench::run(&opts) {
        Ok(results) => {
            println!("{}", results.summary_line());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("smsgate-bench: {message}");
    ExitCode::FAILURE
}
