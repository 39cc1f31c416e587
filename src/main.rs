//! The `smsgate` command: run | check | demo | policy lint.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use smsgate::config::Settings;
use smsgate::policy::Policy;
use smsgate::state::MemoryState;

#[derive(Parser)]
#[command(
    name = "smsgate",
    version,
    about = "Compliance gate for outbound SMS on Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    },
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// Exit code for configuration errors (CONTRACT §9, issue: exit 2).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            run(settings)
        }
        Command::Demo {
            events,
            duration,
            rate,
            config,
        } => demo(smsgate::demo::DemoOptions {
            events,
            duration: std::time::Duration::from_secs(duration),
            rate,
            config,
        }),
        Command::Check {
            config,
            senders,
            consent,
            now,
        } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let policy = match Policy::load(&settings.policy_source(&senders)) {
                Ok(p) => p,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let mut state = MemoryState::new();
            for path in &consent {
                if let Err(e) = smsgate::check::preload_consent(&mut state, path) {
                    return fail(EXIT_CONFIG, &e.to_string());
                }
            }
            let stdin = std::io::stdin().lock();
            let stdout = std::io::BufWriter::new(std::io::stdout().lock());
            match smsgate::check::run(&policy, &mut state, now, stdin, stdout) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(1, &e.to_string()),
            }
        }
    }
}

/// `smsgate run`: exit 0 after a clean stop, 2 for configuration, 1 otherwise.
fn run(settings: Settings) -> ExitCode {
    if settings.policy.senders.is_none() {
        return fail(
            EXIT_CONFIG,
            "invalid configuration: policy.senders is not set (run needs a sender registry)",
        );
    }
    let policy = match Policy::load(&settings.policy_source(&[])) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    if let Err(e) = smsgate::logging::init(&settings.log) {
        return fail(EXIT_CONFIG, &e.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(1, &format!("cannot start runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let shutdown = smsgate::pipeline::Shutdown::new();
        tokio::spawn(shutdown.clone().on_signals());
        smsgate::pipeline::run(settings, policy, shutdown).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if e.is_config() => fail(EXIT_CONFIG, &e.to_string()),
        Err(e) => fail(1, &e.to_string()),
    }
}

/// `smsgate demo`: exit 0 when it ran (finished or cut at --duration).
fn demo(opts: smsgate::demo::DemoOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(1, &format!("cannot start runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let mut out = std::io::stdout();
        smsgate::demo::run(opts, &mut out).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    // One line, whatever the error's own formatting (TOML errors span lines).
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("smsgate: {message}");
    ExitCode::from(code)
}
