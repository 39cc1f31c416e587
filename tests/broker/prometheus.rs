//! A real Prometheus (Debian's `prometheus` package) scrapes a real gate on
//! the test broker, with the shipped alert rules loaded. Through Prometheus's
//! HTTP API the test proves the key series exist with the values the test
//! caused (decisions equal the events produced, split as the workload
//! expects), that every dashboard query evaluates against the live series,
//! and that every alert rule evaluates without error. `promtool` checks the
//! shipped configuration and rules and runs their unit tests.
//!
//! Without Prometheus installed these tests fail, naming the install step;
//! they are never skipped.

use crate::deploy_common;
use smsgate_testkit as support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use deploy_common::{
    Exported, dashboard_expressions, json_document, promql_metric_names, repo_path, yaml_document,
};
use serde_json::Value;
use support::broker::{Broker, free_port};
use support::events::{self, Expect};
use support::gate::{Gate, GateConfig, Topics, http_get, metric_sum};
use support::kafka::{Record, TestProducer};

const INSTALL_HINT: &str = "Prometheus is not installed: run `apt-get install -y prometheus` \
     (Debian package; `scripts/ci-deploy-deps` does it), or point SMSGATE_PROMETHEUS / \
     SMSGATE_PROMTOOL at the binaries";

/// Outbound events the scrape test asks the workload mix for.
const EVENTS: usize = 400;

/// `$SMSGATE_<NAME>`, else the binary on PATH or in /usr/bin; panics with the
/// install step when neither exists.
fn binary(name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(format!("SMSGATE_{}", name.to_uppercase())) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([Path::new("/usr/bin").join(name)])
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found. {INSTALL_HINT}"))
}

fn promtool(args: &[&str]) {
    let out = Command::new(binary("promtool"))
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool: {e}. {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_shipped_config_and_rules_and_their_unit_tests_pass() {
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    promtool(&["test", "rules", "deploy/prometheus/alerts_test.yml"]);
    // The Operator's copy: its spec is a rules file (JSON is YAML).
    let operator = yaml_document("deploy/k8s/prometheusrule.yaml");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("operator-rules.yml");
    std::fs::write(&spec, serde_json::to_string(&operator["spec"]).unwrap()).unwrap();
    promtool(&["check", "rules", spec.to_str().unwrap()]);
}

/// One series of a query result: its labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// A Prometheus server on a free loopback port, killed with the test.
struct Prometheus {
    _child: support::process::Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second as job `smsgate`,
    /// with the shipped alert rules.
    fn start(target: SocketAddr) -> Prometheus {
        let binary = binary("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let rules = repo_path("deploy/prometheus/alerts.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: smsgate\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules = rules.display()
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = support::process::work_dir("prometheus")
            .join(format!("prometheus-{}.log", addr.port()));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = support::process::spawn(command)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}. {INSTALL_HINT}", binary.display()));
        let prometheus = Prometheus {
            _child: child,
            addr,
            log,
            _dir: dir,
        };
        let ready =
            support::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
                http_get(addr, "/-/ready").is_some_and(|(status, _)| status == 200)
            });
        assert!(
            ready,
            "Prometheus not ready within 30 s; log:\n{}",
            prometheus.log_tail()
        );
        prometheus
    }

    fn log_tail(&self) -> String {
        support::process::tail(&self.log, 30)
    }

    /// GET an API path; the `data` of a successful answer.
    fn api(&self, path_and_query: &str) -> Result<Value, String> {
        let (status, body) =
            http_get(self.addr, path_and_query).ok_or("no answer from Prometheus")?;
        let json: Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
        if json["status"] != "success" {
            return Err(format!(
                "HTTP {status}: {} {}",
                json["errorType"], json["error"]
            ));
        }
        Ok(json["data"].clone())
    }

    /// An instant query: the result vector as (labels, value).
    fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        let result = match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![serde_json::json!({"metric": {}, "value": data["result"]})],
            other => return Err(format!("unexpected result type {other:?}")),
        };
        Ok(result
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect())
    }

    /// The single value of `promql`, or None while it has no series.
    fn value(&self, promql: &str) -> Option<f64> {
        let result = self
            .query(promql)
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}"));
        assert!(result.len() <= 1, "{promql:?} has {} series", result.len());
        result.first().map(|(_, v)| *v)
    }

    /// `sum by (label) (promql)` as a map.
    fn by(&self, label: &str, promql: &str) -> BTreeMap<String, f64> {
        let q = format!("sum by ({label}) ({promql})");
        self.query(&q)
            .unwrap_or_else(|e| panic!("query {q:?}: {e}"))
            .into_iter()
            .map(|(l, v)| (l.get(label).cloned().unwrap_or_default(), v))
            .collect()
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The policy version `smsgate check` reports with the gate's configuration.
fn policy_version_of_check() -> String {
    use std::io::Write;
    let event = events::clean("pv", 0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["check", "--config", "config/default.toml"])
        .current_dir(repo_path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&event.record.value)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let decision: Value = serde_json::from_slice(&out.stdout).unwrap();
    decision["policy_version"].as_str().unwrap().to_string()
}

/// Grafana's variables, as the dashboard would expand them for this test.
fn expand_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "10m")
        .replace("$topn", "10")
        .replace("$job", "smsgate")
        .replace("$instance", ".*")
}

#[test]
fn a_real_prometheus_scrapes_the_gate_and_sees_what_the_test_produced() {
    let prometheus_binary = binary("prometheus"); // fail first, and clearly, when missing
    eprintln!("[prometheus] using {}", prometheus_binary.display());
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "prom");
    let workload = events::mix(&topics.group, EVENTS);
    // The mix adds a few cases of its own: count what is actually produced.
    let produced_events = workload.outbound.len();
    let approve = workload
        .outbound
        .iter()
        .filter(|c| c.expect == Expect::Approve)
        .count();
    let reject = produced_events - approve;
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &workload.outbound {
        if let Expect::Reject { code, .. } = case.expect {
            *codes.entry(code).or_default() += 1;
        }
    }
    let producer = TestProducer::new(&broker.bootstrap());
    producer.send_all(&topics.consent, &workload.consent);
    let records: Vec<Record> = workload.outbound.iter().map(|c| c.record.clone()).collect();

    producer.send_all(&topics.outbound, &records);
    let mut gate = Gate::start(&GateConfig::new(broker, &topics).instance("prom-0"), "prom");
    gate.wait_ready(Duration::from_secs(60));
    let prometheus = Prometheus::start(gate.metrics);

    // The gate decides everything; then Prometheus must have scraped the final counts.
    let decided = support::wait_until(Duration::from_secs(120), Duration::from_millis(200), || {
        gate.get("/metrics")
            .and_then(|(_, body)| metric_sum(&body, "smsgate_decisions_total"))
            .is_some_and(|n| n as usize >= produced_events)
    });
    assert!(
        decided,
        "the gate did not decide {produced_events} events; log:\n{}",
        gate.log_tail()
    );
    let total = r#"sum(smsgate_decisions_total{job="smsgate"})"#;
    let scraped = support::wait_until(Duration::from_secs(30), Duration::from_millis(250), || {
        prometheus.value(total) == Some(produced_events as f64)
    });
    assert!(
        scraped,
        "Prometheus sees {:?} decisions, the test produced {produced_events}; Prometheus log:\n{}",
        prometheus.value(total),
        prometheus.log_tail()
    );

    // Is it up?
    assert_eq!(
        prometheus.value(r#"up{job="smsgate"}"#),
        Some(1.0),
        "the target is up"
    );
    assert_eq!(
        prometheus.value(r#"smsgate_ready{job="smsgate"}"#),
        Some(1.0)
    );
    assert_eq!(
        prometheus.value(r#"smsgate_broker_up{job="smsgate"}"#),
        Some(1.0)
    );
    let versions = prometheus
        .query(r#"smsgate_policy_info{job="smsgate"}"#)
        .unwrap();
    assert_eq!(versions.len(), 1, "one policy version: {versions:?}");
    assert_eq!(versions[0].1, 1.0);
    assert_eq!(
        versions[0].0.get("version").cloned().unwrap_or_default(),
        policy_version_of_check(),
        "the version label is the policy version `smsgate check` reports for the same files"
    );

    // Decided is not yet delivered (each decision also writes its changelog
    // entries first): wait until Prometheus sees nothing in flight.
    let delivered =
        support::wait_until(Duration::from_secs(30), Duration::from_millis(250), || {
            prometheus.value(r#"sum(smsgate_in_flight{job="smsgate"})"#) == Some(0.0)
        });
    assert!(delivered, "records still in flight after every decision");

    // Is it keeping up? Everything consumed was decided and delivered.
    let consumed = prometheus.by("topic", r#"smsgate_events_consumed_total{job="smsgate"}"#);
    assert_eq!(
        consumed.get(&topics.outbound),
        Some(&(produced_events as f64)),
        "consumed: {consumed:?}"
    );
    let produced = prometheus.by("topic", r#"smsgate_produced_total{job="smsgate"}"#);
    assert_eq!(
        produced.get(&topics.approved).copied().unwrap_or(0.0),
        approve as f64,
        "produced: {produced:?}"
    );
    assert_eq!(
        produced.get(&topics.quarantine).copied().unwrap_or(0.0),
        reject as f64,
        "produced: {produced:?}"
    );
    for histogram in ["smsgate_processing_seconds", "smsgate_end_to_end_seconds"] {
        assert_eq!(
            prometheus.value(&format!(r#"sum({histogram}_count{{job="smsgate"}})"#)),
            Some(produced_events as f64),
            "{histogram} observed every event"
        );
    }
    let settled = support::wait_until(Duration::from_secs(20), Duration::from_millis(250), || {
        prometheus.value(r#"sum(smsgate_in_flight{job="smsgate"})"#) == Some(0.0)
            && prometheus.value(r#"sum(smsgate_consumer_lag{job="smsgate"})"#) == Some(0.0)
    });
    assert!(
        settled,
        "in flight and lag return to 0 once everything is delivered"
    );

    // What is it rejecting and why?
    let outcomes = prometheus.by("outcome", r#"smsgate_decisions_total{job="smsgate"}"#);
    assert_eq!(
        outcomes.get("approve"),
        Some(&(approve as f64)),
        "outcomes: {outcomes:?}"
    );
    assert_eq!(
        outcomes.get("reject"),
        Some(&(reject as f64)),
        "outcomes: {outcomes:?}"
    );
    assert_eq!(
        outcomes.get("defer").copied().unwrap_or(0.0),
        0.0,
        "outcomes: {outcomes:?}"
    );
    let reasons = prometheus.by("code", r#"smsgate_reasons_total{job="smsgate"}"#);
    for (code, n) in &codes {
        let seen = reasons.get(*code).copied().unwrap_or(0.0);
        assert!(
            seen >= *n as f64,
            "reason {code}: {seen} counted, {n} events expect it; all: {reasons:?}"
        );
    }

    // Every name the live gate exports is one src/metrics names. Series
    // that start with an event (the first offset commit, on the commit
    // thread every interval) may reach Prometheus a scrape or two after the
    // decisions: give them up to 15 s.
    let exported = Exported::load();
    let live_names = || -> BTreeSet<String> {
        prometheus
            .query(r#"group by (__name__) ({job="smsgate", __name__=~"smsgate_.*"})"#)
            .unwrap()
            .into_iter()
            .filter_map(|(labels, _)| labels.get("__name__").cloned())
            .collect()
    };
    let mut live = live_names();
    support::wait_until(Duration::from_secs(15), Duration::from_secs(1), || {
        live = live_names();
        let families: BTreeSet<String> = live.iter().map(|n| exported.family(n)).collect();
        exported.names.iter().all(|n| families.contains(n))
    });
    let live_families: BTreeSet<String> = live.iter().map(|n| exported.family(n)).collect();
    let undeclared: Vec<&String> = live.iter().filter(|n| !exported.exports(n)).collect();
    assert!(
        undeclared.is_empty(),
        "live series missing from the metric names file: {undeclared:?}"
    );

    // Every dashboard query evaluates against the live series; the ones over
    // metrics this run moved return data.
    let dashboard = json_document("deploy/grafana/smsgate.json");
    let mut empty = Vec::new();
    for (place, expr) in dashboard_expressions(&dashboard) {
        if place.starts_with("variable") {
            continue;
        }
        let expanded = expand_grafana_variables(&expr);
        let names = promql_metric_names(&expr);
        let all_live = names.iter().all(|n| live.contains(n) || n == "up");
        // A rate() needs two samples in its window: a series that appeared in
        // the latest scrape gets a few more scrapes (1 s apart) to show data.
        let mut result = Vec::new();
        for _ in 0..15 {
            result = prometheus
                .query(&expanded)
                .unwrap_or_else(|e| panic!("{place}: Prometheus rejects {expanded:?}: {e}"));
            if !result.is_empty() || !all_live {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        if result.is_empty() {
            empty.push(place.clone());
            assert!(
                !all_live,
                "{place}: {expanded:?} returns nothing although its series are live"
            );
        }
    }
    eprintln!(
        "[prometheus] dashboard queries without data in this run (metrics not moved): {empty:?}"
    );
    // Every metric is exported from the start, at 0 when nothing happened:
    // a name no code registers (or a label set never started) fails here.
    let never_exported: Vec<&String> = exported
        .names
        .iter()
        .filter(|n| !live_families.contains(*n))
        .collect();
    assert!(
        never_exported.is_empty(),
        "metrics named in src/metrics that the live gate does not export: {never_exported:?}"
    );

    // The alert rules load and evaluate without error, and none fires.
    let evaluated =
        support::wait_until(Duration::from_secs(10), Duration::from_millis(250), || {
            prometheus.api("/api/v1/rules").is_ok_and(|data| {
                data["groups"].as_array().is_some_and(|g| {
                    g.iter()
                        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                        .all(|r| r["health"] == "ok")
                })
            })
        });
    let rules = prometheus.api("/api/v1/rules").unwrap();
    let rules: Vec<&Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    let shipped = deploy_common::alert_rules(&yaml_document("deploy/prometheus/alerts.yml")).len();
    assert_eq!(rules.len(), shipped, "every shipped rule is loaded");
    assert!(
        evaluated,
        "rules with evaluation errors: {:?}",
        rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| (&r["name"], &r["lastError"]))
            .collect::<Vec<_>>()
    );
    let firing: Vec<&Value> = rules
        .iter()
        .filter(|r| r["state"] == "firing")
        .map(|r| &r["name"])
        .collect();
    assert!(
        firing.is_empty(),
        "alerts firing on a healthy gate: {firing:?}"
    );

    gate.sigterm(Duration::from_secs(30));

    // The log operators collect: JSON lines, one `info` line per quarantined
    // event with stable fields, none per approved event, no full number.
    let log = std::fs::read_to_string(&gate.log).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect();
    let quarantined: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "quarantined")
        .collect();
    assert_eq!(
        quarantined.len(),
        reject,
        "one log line per quarantined event"
    );
    for line in &quarantined {
        assert_eq!(line["level"], "INFO", "{line}");
        for field in [
            "message_id",
            "to",
            "partition",
            "offset",
            "outcome",
            "reasons",
        ] {
            assert!(!line[field].is_null(), "field {field} missing: {line}");
        }
    }
    assert!(
        !lines.iter().any(|l| l["outcome"] == "approve"),
        "approved events are not logged at info"
    );
    for case in &workload.outbound {
        let key = case.record.key.as_deref().map(String::from_utf8_lossy);
        if let Some(to) = key.filter(|k| k.starts_with('+') && k.len() >= 9) {
            assert!(
                !log.contains(to.as_ref()),
                "the log holds the full number {to}"
            );
        }
    }
}
