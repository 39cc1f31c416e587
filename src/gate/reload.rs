//! Policy reload in place: on SIGHUP the gate loads the packs and the
//! sender registry again from where it loaded them at start and, when they
//! load and keep the state windows, puts them in force from the next batch
//! ([`LivePolicy`]). A reload that fails leaves the previous policy in force,
//! logs why and counts `smsgate_policy_reload_failures_total` (alert
//! SmsgatePolicyReloadFailed), so a broken ConfigMap never stops the gate.

use std::sync::Arc;

use crate::policy::live::{LivePolicy, Replaced};
use crate::policy::{Policy, PolicySource};
use crate::telemetry::metrics::Metrics;

use crate::gate::shutdown::Shutdown;

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The files hold the policy already in force.
    Unchanged { version: Arc<str> },
    /// A new version is in force.
    Swapped {
        previous: Arc<str>,
        version: Arc<str>,
    },
    /// The previous policy stays in force; why.
    Failed(String),
}

/// Loads `source` and puts it in force; logs and counts the outcome.
pub fn reload_once(source: &PolicySource, live: &LivePolicy, metrics: &Metrics) -> Reloaded {
    let outcome = match Policy::load(source) {
        Err(e) => Reloaded::Failed(e.to_string()),
        Ok(next) => {
            let version = next.version().clone();
            match live.replace(next) {
                Ok(Replaced::Unchanged) => Reloaded::Unchanged { version },
                Ok(Replaced::Swapped { previous }) => Reloaded::Swapped { previous, version },
                Err(refused) => Reloaded::Failed(refused.to_string()),
            }
        }
    };
    match &outcome {
        Reloaded::Unchanged { version } => {
            tracing::info!(version = %version, "policy reload: files unchanged");
        }
        Reloaded::Swapped { previous, version } => {
            metrics.policy_loaded(version);
            tracing::info!(previous = %previous, version = %version, "policy reloaded");
        }
        Reloaded::Failed(why) => {
            metrics.policy_reload_failed();
            tracing::error!(
                error = %why,
                version = %live.current().version(),
                "policy reload failed; the previous policy stays in force"
            );
        }
    }
    outcome
}

/// Reloads on every SIGHUP until `shutdown`. (No-op where there is no SIGHUP.)
pub async fn on_hangup(
    source: PolicySource,
    live: Arc<LivePolicy>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; policy reload is off");
                return;
            }
        };
        let source = Arc::new(source);
        loop {
            tokio::select! {
                got = hangup.recv() => {
                    if got.is_none() {
                        return;
                    }
                }
                _ = shutdown.wait() => return,
            }
            let (source, live, metrics) = (source.clone(), live.clone(), metrics.clone());
            // File reads and pack compilation: off the async workers.
            let done =
                tokio::task::spawn_blocking(move || reload_once(&source, &live, &metrics)).await;
            if let Err(e) = done {
                tracing::error!(error = %e, "policy reload task failed");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (source, live, metrics);
        shutdown.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: &std::path::Path) -> PolicySource {
        PolicySource {
            senders: vec![dir.join("senders.toml")],
            packs: None,
        }
    }

    fn write_registry(dir: &std::path::Path, brand: &str) {
        let text = format!("[senders.huinong-credit]\nbrand = \"{brand}\"\n");
        std::fs::write(dir.join("senders.toml"), text).unwrap();
    }

    fn failures(metrics: &Metrics) -> u64 {
        metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix("smsgate_policy_reload_failures_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// A registry file with huinong-credit, the live policy loaded from it
    /// and fresh metrics.
    fn started() -> (tempfile::TempDir, LivePolicy, Metrics) {
        let dir = tempfile::tempdir().unwrap();
        write_registry(dir.path(), "惠农信贷");
        let live = LivePolicy::new(Policy::load(&source(dir.path())).unwrap());
        (dir, live, Metrics::new())
    }

    #[test]
    fn a_changed_registry_is_put_in_force_and_the_version_gauge_follows() {
        let (dir, live, metrics) = started();
        let first = live.current().version().clone();
        assert_eq!(
            reload_once(&source(dir.path()), &live, &metrics),
            Reloaded::Unchanged {
                version: first.clone()
            }
        );

        write_registry(dir.path(), "惠农金融");
        let Reloaded::Swapped { previous, version } =
            reload_once(&source(dir.path()), &live, &metrics)
        else {
            panic!("a changed registry is swapped in");
        };
        assert_eq!(previous, first);
        assert_eq!(live.current().version(), &version);
        assert_eq!(
            live.current()
                .registry()
                .get("huinong-credit")
                .map(|s| s.brand.as_str()),
            Some("惠农金融")
        );
        assert!(
            metrics
                .render()
                .contains(&format!("smsgate_policy_info{{version=\"{version}\"}} 1"))
        );
        assert_eq!(failures(&metrics), 0);
    }

    #[test]
    fn a_broken_registry_is_counted_and_the_previous_policy_stays() {
        let (dir, live, metrics) = started();
        let before = live.current().version().clone();

        std::fs::write(dir.path().join("senders.toml"), "[senders.x\n").unwrap();
        let Reloaded::Failed(why) = reload_once(&source(dir.path()), &live, &metrics) else {
            panic!("a registry that does not parse fails the reload");
        };
        assert!(why.contains("senders.toml"), "{why}");
        assert_eq!(live.current().version(), &before);
        assert_eq!(failures(&metrics), 1);

        std::fs::remove_file(dir.path().join("senders.toml")).unwrap();
        assert!(matches!(
            reload_once(&source(dir.path()), &live, &metrics),
            Reloaded::Failed(_)
        ));
        assert_eq!(failures(&metrics), 2);
        assert_eq!(live.current().version(), &before);
    }
}
