//! The gate on Kafka: consume `topics.outbound` in a group, decide each
//! record with the policy, route it (approved / quarantine / deferred),
//! and commit a partition's offset only once every earlier record of that
//! partition has been acknowledged by the broker: in a Kafka transaction
//! with the outputs (`exactly_once`, [`delivery::transaction`]) or after
//! them (`at_least_once`); no loss either way.
//!
//! [`Gate::run`] (and the shorthand [`run`]) is the one entry point shared
//! by `smsgate run`, `smsgate demo` and the in-process tests. The run is a
//! chain of small steps, each in its file:
//!
//! - [`clients`]: librdkafka configurations every client is built from;
//! - [`connect`]: reaching the broker at start, refused credentials fatal;
//! - [`consumer`]: the group consumer's context (rebalances, commits, lag);
//! - [`intake`]: the consume loop, claiming each record's offset;
//! - [`decide`]: the decide workers (parse, `policy::decide`, state);
//! - [`route`]: where a decided record goes and in which form;
//! - [`delivery`]: the producer, in-flight records and ordered offsets;
//! - [`committer`]: periodic offset commits on their own thread;
//! - [`feeds`]: the other topics (consent, opt-out replies, release of
//!   deferred texts, changelog restore);
//! - [`reload`], [`shutdown`], [`heap`]: SIGHUP, SIGTERM and memory.

pub mod clients;
mod committer;
pub mod connect;
pub mod consumer;
pub mod decide;
pub mod delivery;
pub mod feeds;
pub mod heap;
pub mod intake;
pub mod reload;
mod restorer;
pub mod route;
pub mod shutdown;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer as _;

use crate::config::Settings;
use crate::policy::Policy;
use crate::policy::live::LivePolicy;
use crate::state::Stores;
use crate::telemetry::metrics::feeds::FEED_RELEASE;
use crate::telemetry::metrics::server::{ListenError, MetricsServer};
use crate::telemetry::metrics::{Metrics, Snapshot};
use consumer::{GateConsumer, GateContext};
use delivery::producer::{Dispatcher, Flight};
use feeds::consent::ConsentFeed;
pub use shutdown::Shutdown;

/// How long closing the consumer (leaving the group) may take after the
/// drain; a stop takes at most `pipeline.drain_timeout_secs` plus
/// [`FINAL_COMMIT_WAIT`] plus this.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stop waits for its last offset commit after the drain.
pub const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(5);

/// Why the gate stopped with an error (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot reach Kafka at {brokers} within {secs} s: {error}")]
    BrokerUnreachable {
        brokers: String,
        secs: u64,
        error: String,
    },
    /// A client configuration librdkafka refuses (a bad `kafka.properties`).
    #[error("invalid configuration: Kafka client: {0}")]
    Client(String),
    /// The broker refused the credentials or the TLS handshake.
    #[error("Kafka at {brokers} refused the connection: {reason}")]
    Refused { brokers: String, reason: String },
    #[error("cannot subscribe to {topic}: {error}")]
    Subscribe { topic: String, error: String },
    #[error("unrecoverable Kafka error: {0}")]
    Fatal(String),
    /// The group consumer's static membership was fenced (see [`run`]).
    #[error("static group member fenced (kafka.group_instance_id): {0}")]
    Fenced(String),
    /// A transaction was aborted (see [`run`]).
    #[error("transaction aborted: {0}")]
    Aborted(String),
    #[error("pipeline thread failed: {0}")]
    Thread(String),
}

impl PipelineError {
    /// True for errors the operator fixes in the configuration (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            PipelineError::Client(_) | PipelineError::Refused { .. }
        )
    }
}

fn client_error(e: &rdkafka::error::KafkaError) -> Option<PipelineError> {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, value) => {
            // The value may be a secret (a password librdkafka refused).
            let value = if crate::config::is_secret(key) {
                "[redacted]"
            } else {
                value.as_str()
            };
            Some(PipelineError::Client(format!("{desc} {key} {value}")))
        }
        rdkafka::error::KafkaError::ClientCreation(_) => Some(PipelineError::Client(e.to_string())),
        _ => None,
    }
}

/// What a run did, for the caller's summary.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub decisions: Snapshot,
    /// True when every in-flight record was acknowledged before exit.
    pub drained: bool,
}

/// One gate: its settings, policy, state and metrics.
pub struct Gate {
    settings: Settings,
    /// Replaced in place on SIGHUP (`reload`).
    policy: Arc<LivePolicy>,
    state: Arc<Stores>,
    metrics: Arc<Metrics>,
    metrics_addr: Arc<OnceLock<SocketAddr>>,
    /// Triggered by a feed whose consumer was fenced: the intake ends the
    /// run with [`PipelineError::Fenced`] and [`run`] rebuilds the gate.
    fenced: Shutdown,
}

/// Most client rebuilds after fencing within [`REBUILD_WINDOW`]; one more
/// ends the run with the error (two live instances sharing one
/// `group.instance.id` would otherwise fence each other forever).
pub const MAX_REBUILDS: usize = 5;
pub const REBUILD_WINDOW: Duration = Duration::from_secs(600);

/// Runs a gate until `shutdown` (see [`Gate::run`]). When the static group
/// member is fenced (librdkafka makes it fatal; a single instance sees it
/// after a coordinator restart) the gate is rebuilt in process, like a
/// restart: new clients, state restored from the changelog, the same
/// metrics and live policy. Uncommitted records are read again and decided
/// again, as after a crash.
pub async fn run(
    settings: Settings,
    policy: Policy,
    shutdown: Shutdown,
) -> Result<RunSummary, PipelineError> {
    let mut gate = Gate::new(settings.clone(), policy);
    let mut rebuilds: Vec<Instant> = Vec::new();
    // Once running, an unreachable broker is an outage to ride out, not a
    // wrong address to report at start: a rebuild during it retries.
    let mut rebuilding = false;
    loop {
        let (live, metrics) = (gate.policy.clone(), gate.metrics.clone());
        // A run stops its own helpers through its shutdown; a child keeps
        // that from looking like the operator's stop.
        let this_run = Shutdown::new();
        let relay = tokio::spawn({
            let (outer, inner) = (shutdown.clone(), this_run.clone());
            async move {
                tokio::select! {
                    _ = outer.wait() => inner.trigger(),
                    _ = inner.wait() => {}
                }
            }
        });
        let result = gate.run(this_run.clone()).await;
        this_run.trigger();
        let _ = relay.await;
        match result {
            // Not limited: an abort leaves nothing half-written, and a
            // lasting cause (a missing ACL) is reported loudly meanwhile.
            Err(PipelineError::BrokerUnreachable { error, .. })
                if rebuilding && !shutdown.is_triggered() =>
            {
                tracing::warn!(%error, "Kafka still unreachable while rebuilding; retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.wait() => {}
                }
                gate = Gate::rebuilt(settings.clone(), live, metrics);
            }
            Err(PipelineError::Aborted(why)) if !shutdown.is_triggered() => {
                rebuilding = true;
                tracing::warn!(error = %why, "transaction aborted; rebuilding the Kafka clients and state");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait() => {}
                }
                gate = Gate::rebuilt(settings.clone(), live, metrics);
            }
            Err(PipelineError::Fenced(why)) if !shutdown.is_triggered() => {
                rebuilding = true;
                rebuilds.retain(|t| t.elapsed() < REBUILD_WINDOW);
                if rebuilds.len() >= MAX_REBUILDS {
                    return Err(PipelineError::Fenced(format!(
                        "{why} ({MAX_REBUILDS} rebuilds within {} s; is another instance using this group.instance.id?)",
                        REBUILD_WINDOW.as_secs()
                    )));
                }
                rebuilds.push(Instant::now());
                tracing::warn!(error = %why, rebuilds = rebuilds.len(), "group member fenced; rebuilding the Kafka clients");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait() => {}
                }
                gate = Gate::rebuilt(settings.clone(), live, metrics);
            }
            other => return other,
        }
    }
}

impl Gate {
    pub fn new(settings: Settings, policy: Policy) -> Gate {
        let metrics = Arc::new(Metrics::new());
        metrics.policy_loaded(policy.version());
        let state =
            Arc::new(Stores::for_policy(&policy).with_max_dedup(settings.state.max_dedup_entries));
        Gate {
            settings,
            policy: Arc::new(LivePolicy::new(policy)),
            state,
            metrics,
            metrics_addr: Arc::new(OnceLock::new()),
            fenced: Shutdown::new(),
        }
    }

    /// A new gate after fencing: fresh clients and state (restored from
    /// the changelog as at start), the running policy and metrics kept.
    fn rebuilt(settings: Settings, policy: Arc<LivePolicy>, metrics: Arc<Metrics>) -> Gate {
        metrics.restarting();
        let state = Arc::new(
            Stores::for_policy(&policy.current()).with_max_dedup(settings.state.max_dedup_entries),
        );
        Gate {
            settings,
            policy,
            state,
            metrics,
            metrics_addr: Arc::new(OnceLock::new()),
            fenced: Shutdown::new(),
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn state(&self) -> Arc<Stores> {
        self.state.clone()
    }

    /// Filled with the metrics server's address once it is bound (useful
    /// with port 0).
    pub fn metrics_addr(&self) -> Arc<OnceLock<SocketAddr>> {
        self.metrics_addr.clone()
    }

    /// Serves metrics, connects (failing after `kafka.startup_timeout_secs`),
    /// loads consent, then consumes until `shutdown`; then drains in-flight
    /// records (at most `pipeline.drain_timeout_secs`), commits and returns.
    pub async fn run(self, shutdown: Shutdown) -> Result<RunSummary, PipelineError> {
        let server =
            MetricsServer::bind(&self.settings.metrics.listen, self.metrics.clone()).await?;
        if let Some(addr) = server.local_addr() {
            let _ = self.metrics_addr.set(addr);
        }
        let server_stop = Shutdown::new();
        let server_task = tokio::spawn(server.serve({
            let s = server_stop.clone();
            async move { s.wait().await }
        }));
        let (result_tx, result_rx) = tokio::sync::oneshot::channel();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let reloader = tokio::spawn(reload::on_hangup(
            self.settings.policy_source(&[]),
            self.policy.clone(),
            self.metrics.clone(),
            shutdown.clone(),
        ));
        let trimmer = tokio::spawn(crate::gate::heap::trim_every(
            crate::gate::heap::TRIM_INTERVAL,
            shutdown.clone(),
        ));
        let forwarder = self.settings.state.forward_replies.then(|| {
            feeds::replies::spawn(
                &self.settings,
                &self.policy,
                &shutdown,
                &self.fenced,
                &self.metrics,
            )
        });
        let metrics = self.metrics.clone();
        let gate = self;
        let thread_shutdown = shutdown.clone();
        let runtime = tokio::runtime::Handle::current();
        // Thread names stay within Linux's 15 characters, so `top -H`, perf
        // and the benchmark's per-thread figures show them whole.
        let spawned = std::thread::Builder::new()
            .name("smsgate-intake".into())
            .spawn(move || gate.run_blocking(thread_shutdown, runtime, result_tx, closed_tx));
        if let Err(e) = spawned {
            server_stop.trigger();
            return Err(PipelineError::Thread(e.to_string()));
        }
        let result = result_rx.await.unwrap_or_else(|_| {
            Err(PipelineError::Thread(
                "pipeline thread ended without a result".into(),
            ))
        });
        // Closing the consumer (leaving the group) is bounded: a lost broker
        // must not turn a stop into a hang.
        let close_wait = if metrics.is_broker_up() {
            CLOSE_TIMEOUT
        } else {
            Duration::from_secs(1)
        };
        let _ = tokio::time::timeout(close_wait, closed_rx).await;
        server_stop.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(2), server_task).await;
        reloader.abort();
        trimmer.abort();
        if let Some(f) = forwarder {
            shutdown.trigger();
            let _ = tokio::time::timeout(Duration::from_secs(5), f).await;
        }
        result
    }

    fn run_blocking(
        self,
        shutdown: Shutdown,
        runtime: tokio::runtime::Handle,
        result_tx: tokio::sync::oneshot::Sender<Result<RunSummary, PipelineError>>,
        closed_tx: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut clients = None;
        let done = Shutdown::new();
        let result = self.start_and_consume(&shutdown, &done, &runtime, &mut clients);
        done.trigger();
        let _ = result_tx.send(result);
        // Dropping the consumer closes it (leaves the group unless static).
        drop(clients);
        let _ = closed_tx.send(());
    }

    fn start_and_consume(
        &self,
        shutdown: &Shutdown,
        done: &Shutdown,
        runtime: &tokio::runtime::Handle,
        clients: &mut Option<(Arc<GateConsumer>, Arc<Dispatcher>)>,
    ) -> Result<RunSummary, PipelineError> {
        let s = &self.settings;
        let startup = Duration::from_secs(s.kafka.startup_timeout_secs);
        let unreachable = |error: String| PipelineError::BrokerUnreachable {
            brokers: s.kafka.brokers.clone(),
            secs: s.kafka.startup_timeout_secs,
            error,
        };

        // 1. Reach the broker (stopping at once if it refuses the
        // credentials), then start the consent feed.
        match connect::probe(s, startup, shutdown) {
            Ok(()) => {}
            Err(connect::Refused::Credentials(reason)) => {
                return Err(PipelineError::Refused {
                    brokers: s.kafka.brokers.clone(),
                    reason,
                });
            }
            Err(connect::Refused::Client(e)) => {
                return Err(
                    client_error(&e).unwrap_or_else(|| PipelineError::Client(e.to_string()))
                );
            }
            Err(connect::Refused::Unreachable(e)) => return Err(unreachable(e)),
            Err(connect::Refused::Stopped) => return Ok(self.summary(true)),
        }
        let feed = connect_with_retry(startup, shutdown, |left| {
            ConsentFeed::start(
                &clients::consent_reader(s),
                &s.topics.consent,
                self.state.clone(),
                self.metrics.clone(),
                left,
            )
        })
        .map_err(|e| client_error(&e).unwrap_or_else(|| unreachable(e.to_string())))?;
        let Some(feed) = feed else {
            return Ok(self.summary(true));
        };
        let (feed_shutdown, feed_done) = (shutdown.clone(), done.clone());
        std::thread::Builder::new()
            .name("smsgate-consent".into())
            .spawn(move || feed.run(feed_shutdown, feed_done))
            .map_err(|e| PipelineError::Thread(e.to_string()))?;

        // 2. The changelog of caps and duplicates, producer, group consumer.
        match feeds::restore::ensure_topic(s, runtime, startup) {
            Ok(()) => {}
            Err(e @ feeds::restore::ChangelogTopicError::Partitions { .. }) => {
                return Err(PipelineError::Fatal(e.to_string()));
            }
            // Records for it wait and are retried (and some brokers create
            // topics on first use).
            Err(e) => tracing::warn!(error = %e, "changelog topic not created"),
        }
        let changelog_reader = feeds::restore::ChangelogReader::new(s)
            .map_err(|e| PipelineError::Client(e.to_string()))?;
        let changelog_topic = changelog_reader.topic().to_string();
        self.metrics.output_topics(&[
            &s.topics.approved,
            &s.topics.quarantine,
            &s.topics.deferred,
            &changelog_topic,
        ]);
        let flight = Arc::new(Flight::new(
            self.metrics.clone(),
            Duration::from_millis(s.pipeline.retry_backoff_ms),
        ));
        let transaction_timeout = s
            .delivery
            .exactly_once()
            .then(|| Duration::from_millis(s.delivery.transaction_timeout_ms));
        let dispatcher = Arc::new(
            Dispatcher::new(
                &clients::producer(s),
                flight.clone(),
                self.metrics.clone(),
                transaction_timeout,
            )
            .map_err(|e| match e {
                e @ (rdkafka::error::KafkaError::ClientConfig(..)
                | rdkafka::error::KafkaError::ClientCreation(_)) => {
                    client_error(&e).unwrap_or_else(|| PipelineError::Client(e.to_string()))
                }
                e => PipelineError::Fatal(format!(
                    "cannot start Kafka transactions ({e}); for a broker without transactions set delivery.guarantee = \"at_least_once\""
                )),
            })?,
        );
        // Deciders (fed by the consume loop; flushed by the revoke callback).
        let handler = Arc::new(decide::Handler {
            policy: self.policy.clone(),
            state: self.state.clone(),
            topics: s.topics.clone(),
            source_topic: Arc::from(s.topics.outbound.as_str()),
            changelog: changelog_topic.clone(),
            flight: flight.clone(),
            dispatcher: dispatcher.clone(),
            metrics: self.metrics.clone(),
            abandon: AtomicBool::new(false),
        });
        let worker_count = s.decide_workers();
        let workers = Arc::new(
            decide::Workers::start(worker_count, handler)
                .map_err(|e| PipelineError::Thread(e.to_string()))?,
        );
        let context = GateContext {
            flight: flight.clone(),
            dispatcher: dispatcher.clone(),
            metrics: self.metrics.clone(),
            topic: s.topics.outbound.clone(),
            drain_timeout: Duration::from_secs(s.pipeline.drain_timeout_secs),
            started: AtomicBool::new(true),
            state: self.state.clone(),
            restorer: restorer::Restorer::start(
                changelog_reader,
                self.state.clone(),
                self.metrics.clone(),
                s.topics.outbound.clone(),
            )
            .map_err(|e| PipelineError::Thread(e.to_string()))?,
            workers: workers.clone(),
        };
        let consumer: GateConsumer = clients::group_consumer(s)
            .create_with_context(context)
            .map_err(|e| PipelineError::Client(e.to_string()))?;
        warn_missing_topics(&consumer, s);
        let consumer = &clients.insert((Arc::new(consumer), dispatcher.clone())).0;
        let committer = committer::Committer::start(consumer.clone())
            .map_err(|e| PipelineError::Thread(e.to_string()))?;

        // 3. Decide nothing before consent has caught up.
        while !self.metrics.is_consent_caught_up() {
            if shutdown.is_triggered() {
                return Ok(self.summary(true));
            }
            // Serves the consumer's statistics (broker state) meanwhile.
            let _ = consumer.poll(Duration::from_millis(100));
        }
        // Held messages: released back through the intake when due.
        match feeds::release::Releaser::new(s, self.metrics.clone()) {
            Ok(releaser) => {
                let (stop, fenced) = (shutdown.clone(), self.fenced.clone());
                let metrics = self.metrics.clone();
                metrics.feed_down(FEED_RELEASE, false);
                std::thread::Builder::new()
                    .name("smsgate-release".into())
                    .spawn(move || {
                        // A panic must not leave texts held unnoticed.
                        let run = std::panic::AssertUnwindSafe(|| releaser.run(stop, fenced));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!("the releaser failed; deferred texts are not released");
                            metrics.feed_down(FEED_RELEASE, true);
                        }
                    })
                    .map_err(|e| PipelineError::Thread(e.to_string()))?;
            }
            // A configuration the client refuses is one; anything else
            // (its transactions not started in time) is the broker's.
            Err(e) => return Err(client_error(&e).unwrap_or_else(|| unreachable(e.to_string()))),
        }
        consumer
            .subscribe(&[&s.topics.outbound])
            .map_err(|e| PipelineError::Subscribe {
                topic: s.topics.outbound.clone(),
                error: e.to_string(),
            })?;
        tracing::info!(
            topic = %s.topics.outbound,
            group = %s.kafka.group_id,
            policy = %self.policy.current().version(),
            metrics = %self.metrics_addr.get().map(|a| a.to_string()).unwrap_or_default(),
            workers = worker_count,
            "consuming"
        );

        // 4. Consume until stopped.
        let intake = intake::Intake {
            consumer,
            committer: &committer,
            state: &self.state,
            settings: s,
            changelog: &changelog_topic,
        };
        let ended = intake.run(shutdown, &self.fenced);

        // 5. Drain, commit.
        self.metrics.stopping();
        let deadline = Instant::now() + Duration::from_secs(s.pipeline.drain_timeout_secs);
        let drained = dispatcher.drain(None, deadline, || {});
        // Also lets the commit thread drop its handle, so the consumer is
        // closed (the group left) below, normally.
        if !committer.finish(FINAL_COMMIT_WAIT) {
            tracing::warn!(
                "the last offset commit is still waiting for the group coordinator; records past the committed offsets will be read again"
            );
        }
        workers.stop();
        let _ = dispatcher
            .producer()
            .flush(deadline.saturating_duration_since(Instant::now()));
        let totals = self.metrics.snapshot();
        tracing::info!(
            drained,
            approved = totals.approved,
            quarantined = totals.rejected,
            deferred = totals.deferred,
            "stopped"
        );
        match ended {
            intake::Ended::Stopped => Ok(self.summary(drained)),
            intake::Ended::Fatal(why) => Err(PipelineError::Fatal(why)),
            intake::Ended::Fenced(why) => Err(PipelineError::Fenced(why)),
            intake::Ended::Aborted(why) => Err(PipelineError::Aborted(why)),
        }
    }

    fn summary(&self, drained: bool) -> RunSummary {
        RunSummary {
            decisions: self.metrics.snapshot(),
            drained,
        }
    }
}

/// Calls `connect` until it succeeds or `timeout` has passed; `None` when
/// stopped meanwhile.
fn connect_with_retry<T>(
    timeout: Duration,
    shutdown: &Shutdown,
    mut connect: impl FnMut(Duration) -> Result<T, rdkafka::error::KafkaError>,
) -> Result<Option<T>, rdkafka::error::KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connect(left.max(Duration::from_millis(100))) {
            Ok(t) => return Ok(Some(t)),
            Err(e) if Instant::now() >= deadline || client_error(&e).is_some() => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "broker not reachable yet");
                if shutdown.is_triggered() {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

fn warn_missing_topics(consumer: &GateConsumer, s: &Settings) {
    let Ok(md) = consumer.fetch_metadata(None, Duration::from_secs(5)) else {
        return;
    };
    let t = &s.topics;
    for name in [&t.outbound, &t.approved, &t.quarantine, &t.deferred] {
        if !md
            .topics()
            .iter()
            .any(|mt| mt.name() == name && mt.error().is_none())
        {
            tracing::warn!(topic = %name, "topic does not exist (yet); records for it wait and are retried");
        }
    }
}
