//! The `smsgate` command line: one file per command. [`main`] parses the
//! arguments and hands each command its options; every command returns its
//! exit code (0 success, 1 runtime failure, 2 configuration error).

pub mod check;
pub mod demo;
pub mod generate;
pub mod healthcheck;
pub mod policy;
pub mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Parser)]
#[command(
    name = "smsgate",
    version,
    about = "Compliance gate for outbound SMS on Kafka"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gate until SIGTERM/SIGINT.
    Run {
        /// Configuration file (default: config/default.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the gate on an in-process mock Kafka with generated events.
    Demo {
        /// Outbound events to generate.
        #[arg(long, default_value_t = 5000)]
        events: u64,
        /// Stop after this many seconds even if not every event is decided.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Events produced per second (0: as fast as possible).
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Configuration file (log, metrics and topic settings).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Produce realistic outbound events (and optionally consent) to a Kafka topic.
    Generate {
        /// Kafka bootstrap servers, HOST:PORT.
        #[arg(long)]
        brokers: String,
        /// Topic for the outbound events.
        #[arg(long)]
        topic: String,
        /// Events to produce.
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// Events per second (default: as fast as the broker takes them).
        #[arg(long)]
        rate: Option<f64>,
        /// Also produce consent for the recipients to this topic first.
        #[arg(long)]
        consent_topic: Option<String>,
        /// Distinct recipients (default: as many as events).
        #[arg(long)]
        recipients: Option<u64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Decide NDJSON events from stdin, one decision per line on stdout.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Sender registry entries to add or replace.
        #[arg(long)]
        senders: Vec<PathBuf>,
        /// Consent events (NDJSON) to preload.
        #[arg(long)]
        consent: Vec<PathBuf>,
        /// Fixed decision time (RFC 3339); default: the real clock.
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// Print a readable table of the rules that fired instead of NDJSON.
        #[arg(long)]
        explain: bool,
    },
    /// Policy pack tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Probe a running gate: GET /healthz (or /readyz) on metrics.listen; exit 0 when it answers 200.
    Healthcheck {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Probe /readyz instead of /healthz.
        #[arg(long)]
        ready: bool,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Load packs and registry; print errors or a summary of rules per pack.
    Lint {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Sender registry files to load as well.
        #[arg(long)]
        senders: Vec<PathBuf>,
        /// Pack files to check (default: the configured packs).
        files: Vec<PathBuf>,
    },
    /// Run the labelled cases of DIR against the packs; exit 0 all pass, 1 any failure, 2 invalid cases.
    Test {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory of case files (format: tests/corpus/README.md).
        dir: PathBuf,
    },
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// Exit code for configuration errors (CONTRACT §9).
pub const EXIT_CONFIG: u8 = 2;

/// Parses the command line and runs the command; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            run::run(settings)
        }
        Command::Healthcheck { config, ready } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let path = if ready { "/readyz" } else { "/healthz" };
            match healthcheck::probe(&settings.metrics.listen, path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, &format!("healthcheck: {e}")),
            }
        }
        Command::Demo {
            events,
            duration,
            rate,
            config,
        } => demo::command(demo::DemoOptions {
            events,
            duration: std::time::Duration::from_secs(duration),
            rate,
            config,
        }),
        Command::Generate {
            brokers,
            topic,
            events,
            rate,
            consent_topic,
            recipients,
            seed,
        } => generate::run(crate::synth::produce::GenerateOptions {
            brokers,
            topic,
            events,
            rate,
            consent_topic,
            recipients,
            seed,
        }),
        Command::Check {
            config,
            senders,
            consent,
            now,
            explain,
        } => check::command(config, &senders, &consent, now, explain),
        Command::Policy { command } => policy::command(command),
    }
}

/// Runs `work` to completion on a two-worker runtime, then gives its
/// remaining tasks a second to stop. Exit 1 when the runtime cannot start.
pub fn block_on<F: std::future::Future>(work: F) -> Result<F::Output, ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| fail(1, &format!("cannot start runtime: {e}")))?;
    let result = runtime.block_on(work);
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(result)
}

pub fn fail(code: u8, message: &str) -> ExitCode {
    // One line, whatever the error's own formatting (TOML errors span lines).
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("smsgate: {message}");
    ExitCode::from(code)
}
