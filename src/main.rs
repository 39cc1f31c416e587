//! The `smsgate` command: run | check | demo | policy lint.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use smsgate::config::Settings;
use smsgate::policy::Policy;
use smsgate::state::MemoryState;

// The gate allocates per record on several threads; mimalloc's per-thread
// heaps cost less per allocation than glibc's arenas and keep RSS lower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
enum PolicyCommand {
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
        Command::Healthcheck { config, ready } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let path = if ready { "/readyz" } else { "/healthz" };
            match healthcheck(&settings.metrics.listen, path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, &format!("healthcheck: {e}")),
            }
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
        Command::Generate {
            brokers,
            topic,
            events,
            rate,
            consent_topic,
            recipients,
            seed,
        } => {
            let opts = smsgate::bench::produce::GenerateOptions {
                brokers,
                topic,
                events,
                rate,
                consent_topic,
                recipients,
                seed,
            };
            match smsgate::bench::produce::generate(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, &e.to_string()),
            }
        }
        Command::Check {
            config,
            senders,
            consent,
            now,
            explain,
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
            let result = if explain {
                smsgate::check::run_explained(&policy, &mut state, now, stdin, stdout)
            } else {
                smsgate::check::run(&policy, &mut state, now, stdin, stdout)
            };
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(1, &e.to_string()),
            }
        }
        Command::Policy { command } => policy_command(command),
    }
}

fn policy_command(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Lint {
            config,
            senders,
            files,
        } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            match smsgate::check::lint(&files, &settings.policy_source(&senders)) {
                Ok(summary) => {
                    print!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        PolicyCommand::Test { config, dir } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let (report, code) = smsgate::casebook::test_dir(&dir, &settings.policy_source(&[]));
            print!("{report}");
            ExitCode::from(code)
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
    let result = match block_on(async {
        let shutdown = smsgate::pipeline::Shutdown::new();
        tokio::spawn(shutdown.clone().on_signals());
        smsgate::pipeline::run(settings, policy, shutdown).await
    }) {
        Ok(result) => result,
        Err(code) => return code,
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if e.is_config() => fail(EXIT_CONFIG, &e.to_string()),
        Err(e) => fail(1, &e.to_string()),
    }
}

/// GETs `path` from the metrics server at `listen` (an unspecified address
/// means this host) and reports whether it answered 200. No HTTP client is
/// needed in the container image for its HEALTHCHECK.
fn healthcheck(listen: &str, path: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
    use std::time::Duration;

    let mut addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("metrics.listen {listen:?}: {e}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let timeout = Duration::from_secs(3);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| format!("{addr}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("no answer");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("{path} on {addr} answered {status}"))
    }
}

/// `smsgate demo`: exit 0 when it ran (finished or cut at --duration).
fn demo(opts: smsgate::demo::DemoOptions) -> ExitCode {
    let result = match block_on(async {
        let mut out = std::io::stdout();
        smsgate::demo::run(opts, &mut out).await
    }) {
        Ok(result) => result,
        Err(code) => return code,
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}

/// Runs `work` to completion on a two-worker runtime, then gives its
/// remaining tasks a second to stop. Exit 1 when the runtime cannot start.
fn block_on<F: std::future::Future>(work: F) -> Result<F::Output, ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| fail(1, &format!("cannot start runtime: {e}")))?;
    let result = runtime.block_on(work);
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(result)
}

fn fail(code: u8, message: &str) -> ExitCode {
    // One line, whatever the error's own formatting (TOML errors span lines).
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("smsgate: {message}");
    ExitCode::from(code)
}
