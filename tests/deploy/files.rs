//! The deployment files are complete and agree with each other and with the
//! gate: every alert has a runbook in docs/operations.md, the Operator rules
//! equal the plain rules, the dashboard reads top-down with its data source as
//! a variable, compose creates the contract's topics, and the Kubernetes
//! configuration loads and drains within the pod's grace period.

use crate::deploy_common;

use std::collections::BTreeSet;

use deploy_common::{alert_rules, json_document, read, repo_path, yaml_document, yaml_documents};
use serde_json::Value;
use smsgate::config::Settings;
use smsgate::policy::{Policy, PolicySource};

/// The alerts issue 5 asks for (more may exist).
const REQUIRED_ALERTS: &[&str] = &[
    "SmsgateDown",
    "SmsgateNotReady",
    "SmsgateLagGrowing",
    "SmsgateQuarantineSpike",
    "SmsgateProduceErrors",
    "SmsgateConsumerStuck",
    "SmsgateOptOutLatencyHigh",
    "SmsgatePolicyReloadFailed",
];

/// GitHub's anchor for a Markdown heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn doc_anchors() -> BTreeSet<String> {
    read("docs/operations.md")
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

fn default_settings() -> Settings {
    Settings::load(Some(&repo_path("config/default.toml"))).unwrap()
}

/// Every topic `config/default.toml` names (its `[topics]` table), so a
/// topic added to the configuration must be added to the compose stack too.
fn configured_topics() -> Vec<(String, String)> {
    let config: toml::Table = toml::from_str(&read("config/default.toml")).unwrap();
    let topics = config["topics"].as_table().expect("a [topics] table");
    let t = default_settings().topics;
    let expected = [
        t.outbound,
        t.consent,
        t.inbound,
        t.approved,
        t.quarantine,
        t.deferred,
    ];
    let listed: Vec<(String, String)> = topics
        .iter()
        .map(|(role, name)| (role.clone(), name.as_str().unwrap().to_string()))
        .collect();
    for name in expected {
        assert!(
            listed.iter().any(|(_, n)| *n == name),
            "[topics] lacks {name}"
        );
    }
    listed
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_runbook_section() {
    let rules = yaml_document("deploy/prometheus/alerts.yml");
    let anchors = doc_anchors();
    let alerts = alert_rules(&rules);
    for (name, rule) in &alerts {
        let severity = rule["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            matches!(severity, "critical" | "warning"),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: annotation {key} missing"
            );
        }
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url.strip_prefix("docs/operations.md#").unwrap_or_else(|| {
            panic!("{name}: runbook_url {url:?} should point into docs/operations.md")
        });
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "{name}: the runbook anchor is the alert's name"
        );
        assert!(
            anchors.contains(anchor),
            "{name}: docs/operations.md has no section #{anchor}"
        );
    }
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    for required in REQUIRED_ALERTS {
        assert!(names.contains(required), "alert {required} is missing");
    }
}

#[test]
fn the_operator_rule_ships_exactly_the_plain_alert_rules() {
    let plain = yaml_document("deploy/prometheus/alerts.yml");
    let operator = yaml_document("deploy/k8s/prometheusrule.yaml");
    assert_eq!(operator["kind"], "PrometheusRule");
    assert_eq!(operator["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        operator["spec"]["groups"], plain["groups"],
        "edit both files together"
    );
}

#[test]
fn prometheus_scrapes_the_job_the_rules_select_and_loads_the_rules() {
    let config = yaml_document("deploy/prometheus/prometheus.yml");
    let jobs: Vec<&str> = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["job_name"].as_str())
        .collect();
    assert_eq!(jobs, ["smsgate"]);
    assert!(read("deploy/prometheus/alerts.yml").contains(r#"job="smsgate""#));
    for file in config["rule_files"].as_array().unwrap() {
        let file = file.as_str().unwrap();
        assert!(
            repo_path("deploy/prometheus").join(file).exists(),
            "rule file {file} is next to prometheus.yml"
        );
    }
}

fn dashboard_panels(dashboard: &Value) -> Vec<&Value> {
    dashboard["panels"].as_array().unwrap().iter().collect()
}

#[test]
fn the_dashboard_reads_top_down_up_then_keeping_up_then_rejections() {
    let dashboard = json_document("deploy/grafana/smsgate.json");
    let rows: Vec<&str> = dashboard_panels(&dashboard)
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "Is it up?",
            "Is it keeping up?",
            "What is it rejecting and why?"
        ]
    );
    // Rows and panels are laid out in reading order, without overlaps.
    let mut cells = BTreeSet::new();
    let mut last_y = 0;
    for p in dashboard_panels(&dashboard) {
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(
            y >= last_y,
            "panel {} is above the one before it",
            p["title"]
        );
        assert!(x + w <= 24, "panel {} is wider than the grid", p["title"]);
        last_y = y;
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "panel {} overlaps another",
                    p["title"]
                );
            }
        }
    }
    let titles: Vec<String> = dashboard_panels(&dashboard)
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_lowercase())
        .collect();
    for wanted in [
        "ready",
        "broker",
        "policy version",
        "throughput in",
        "throughput out",
        "lag",
        "in flight",
        "processing latency",
        "end-to-end latency",
        "produce errors",
        "decisions",
        "reason codes",
        "consent table",
        "opt-out latency",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no panel about {wanted:?}"
        );
    }
}

#[test]
fn the_dashboard_takes_its_data_source_from_a_variable() {
    let dashboard = json_document("deploy/grafana/smsgate.json");
    assert_eq!(dashboard["uid"], "smsgate");
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());
    let mut ids = BTreeSet::new();
    for p in dashboard_panels(&dashboard) {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate panel id {}",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"],
            ds_ref.as_str(),
            "panel {}",
            p["title"]
        );
        assert!(
            !p["description"].as_str().unwrap_or("").is_empty(),
            "panel {} explains itself",
            p["title"]
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            assert_eq!(
                t["datasource"]["uid"],
                ds_ref.as_str(),
                "panel {} target",
                p["title"]
            );
        }
    }
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(
            v["datasource"]["uid"],
            ds_ref.as_str(),
            "variable {}",
            v["name"]
        );
    }
}

#[test]
fn grafana_provisioning_loads_the_dashboard_compose_mounts() {
    let datasources = yaml_document("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(datasources["datasources"][0]["type"], "prometheus");
    assert_eq!(
        datasources["datasources"][0]["url"],
        "http://prometheus:9090"
    );
    let providers = yaml_document("deploy/grafana/provisioning/dashboards/smsgate.yml");
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let compose = yaml_document("docker-compose.yml");
    let mounts: Vec<&str> = compose["services"]["grafana"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        mounts.contains(&format!("./deploy/grafana/smsgate.json:{path}/smsgate.json:ro").as_str()),
        "{mounts:?}"
    );
    assert!(mounts.contains(&"./deploy/grafana/provisioning:/etc/grafana/provisioning:ro"));
}

#[test]
fn compose_runs_kafka_topics_gate_prometheus_grafana_and_an_optional_load_generator() {
    let compose = yaml_document("docker-compose.yml");
    let services = compose["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "kafka",
            "topics",
            "smsgate",
            "prometheus",
            "grafana",
            "loadgen"
        ])
    );
    assert!(
        services["kafka"]["image"]
            .as_str()
            .unwrap()
            .starts_with("apache/kafka:")
    );
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"], "broker,controller",
        "KRaft, no ZooKeeper"
    );
    assert_eq!(
        services["loadgen"]["profiles"],
        serde_json::json!(["loadgen"])
    );

    // The topic service creates every configured topic (CONTRACT §1's six at
    // least); consent and any changelog are compacted, the others not.
    let script = services["topics"]["command"][0].as_str().unwrap();
    for (role, topic) in configured_topics() {
        let line = script
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(topic.as_str()))
            .unwrap_or_else(|| panic!("topic {topic} ({role}) is not created"));
        let compacted = role == "consent" || role.contains("changelog");
        assert_eq!(line.contains("cleanup.policy=compact"), compacted, "{line}");
    }

    let gate = &services["smsgate"];
    assert_eq!(gate["environment"]["SMSGATE__KAFKA__BROKERS"], "kafka:9092");
    assert_eq!(
        gate["environment"]["SMSGATE__METRICS__LISTEN"],
        "0.0.0.0:9898"
    );
    let grace: u64 = gate["stop_grace_period"]
        .as_str()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(grace > default_settings().pipeline.drain_timeout_secs + stop_past_drain());
    // Every bind mount names a file of this repository.
    for service in services.values() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let volume = volume.as_str().unwrap();
            if let Some(local) = volume.strip_prefix("./") {
                let local = local.split(':').next().unwrap();
                assert!(
                    repo_path(local).exists(),
                    "compose mounts {local}, which does not exist"
                );
            }
        }
    }
    // Prometheus finds its config and rules where compose mounts them.
    let prometheus = &services["prometheus"];
    assert!(
        prometheus["volumes"]
            .as_array()
            .unwrap()
            .contains(&Value::from("./deploy/prometheus:/etc/prometheus:ro"))
    );
    assert!(
        prometheus["command"]
            .as_array()
            .unwrap()
            .contains(&Value::from("--config.file=/etc/prometheus/prometheus.yml"))
    );
}

/// The Kubernetes objects by kind.
fn k8s_objects() -> Vec<Value> {
    let kustomization = yaml_document("deploy/k8s/kustomization.yaml");
    let listed: Vec<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(repo_path("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "kustomization.yaml lists every manifest");
    listed
        .iter()
        .flat_map(|f| yaml_documents(&format!("deploy/k8s/{f}")))
        .collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_kubernetes_configuration_loads_and_its_registry_is_valid() {
    let objects = k8s_objects();
    let config_map = object(&objects, "ConfigMap", "smsgate-config");
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    let senders_path = dir.path().join("senders.toml");
    std::fs::write(
        &config_path,
        config_map["data"]["config.toml"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        &senders_path,
        config_map["data"]["senders.toml"].as_str().unwrap(),
    )
    .unwrap();
    let settings = Settings::load(Some(&config_path)).unwrap();
    assert_eq!(
        settings.metrics.listen, "0.0.0.0:9898",
        "Prometheus scrapes from outside the pod"
    );
    assert_eq!(settings.log.format, "json");
    assert_eq!(
        settings.policy.senders.as_deref(),
        Some(std::path::Path::new("/etc/smsgate/senders.toml"))
    );
    let policy = Policy::load(&PolicySource {
        senders: vec![senders_path],
        packs: None,
    });
    assert!(
        policy.is_ok(),
        "the ConfigMap's registry loads: {:?}",
        policy.err()
    );
}

#[test]
fn the_statefulset_probes_health_drains_within_its_grace_period_and_uses_static_membership() {
    let objects = k8s_objects();
    let config_map = object(&objects, "ConfigMap", "smsgate-config");
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        config_map["data"]["config.toml"].as_str().unwrap(),
    )
    .unwrap();
    let drain = Settings::load(Some(&config_path))
        .unwrap()
        .pipeline
        .drain_timeout_secs;

    let set = object(&objects, "StatefulSet", "smsgate");
    let pod = &set["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > drain + stop_past_drain(),
        "grace {grace}s leaves too little past the {drain}s drain"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let instance_id = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SMSGATE__KAFKA__GROUP_INSTANCE_ID")
        .expect("static membership id from the pod name");
    assert_eq!(
        instance_id["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );

    // Labels, ports and selectors line up: Service → pods, ServiceMonitor → Service, PDB → pods.
    let labels = &set["spec"]["template"]["metadata"]["labels"];
    let matches = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &labels[k] == v)
    };
    assert!(matches(&set["spec"]["selector"]["matchLabels"]));
    let service = object(&objects, "Service", "smsgate");
    assert_eq!(set["spec"]["serviceName"], "smsgate");
    assert!(matches(&service["spec"]["selector"]));
    assert!(matches(
        &object(&objects, "PodDisruptionBudget", "smsgate")["spec"]["selector"]["matchLabels"]
    ));
    let port_name = container["ports"][0]["name"].as_str().unwrap();
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port_name);
    let monitor = object(&objects, "ServiceMonitor", "smsgate");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    let service_labels = &service["metadata"]["labels"];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service_labels[k], v, "ServiceMonitor selects the Service");
    }
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/etc/smsgate"));
}

#[test]
fn the_image_is_multi_stage_non_root_and_checks_its_own_health() {
    let dockerfile = read("Dockerfile");
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    assert!(froms[0].contains("rust:") && froms[0].contains("AS builder"));
    assert!(froms[1].contains("debian:bookworm-slim"));
    assert!(
        dockerfile
            .lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root") && !l.contains(" 0"))
    );
    assert!(dockerfile.contains("CMD [\"smsgate\", \"healthcheck\""));
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY config/")) {
        let src = line.split_whitespace().nth(1).unwrap();
        assert!(
            repo_path(src).exists(),
            "the image copies {src}, which does not exist"
        );
    }
    let ignored = read(".dockerignore");
    for needed in ["src", "config", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !ignored.lines().any(|l| l.trim_end_matches('/') == needed),
            ".dockerignore must not drop {needed}"
        );
    }
}

#[test]
fn the_operations_guide_covers_deploy_configure_scale_security_and_backup() {
    let doc = read("docs/operations.md").to_lowercase();
    for topic in [
        "docker compose",
        "kubectl apply",
        "smsgate__kafka__brokers",
        "[kafka.properties]",
        "sasl",
        "partitions",
        "keyed by recipient",
        "rotate",
        "back up",
        "smsgate generate",
    ] {
        assert!(
            doc.contains(topic),
            "docs/operations.md does not mention {topic:?}"
        );
    }
}

/// Runs `smsgate healthcheck` with `env` and `--config config/default.toml`:
/// it loads the configuration exactly as `run` would, then probes. Exit 2
/// would be a configuration error; 0 or 1 only says whether a gate answered.
fn configuration_loads_with(env: &[(String, String)]) -> Result<(), String> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_smsgate"));
    command
        .args(["healthcheck", "--config", "config/default.toml"])
        .current_dir(repo_path(""));
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    match out.status.code() {
        Some(0 | 1) => Ok(()),
        _ => Err(String::from_utf8_lossy(&out.stderr).to_string()),
    }
}

#[test]
fn the_image_and_compose_environments_make_a_valid_configuration() {
    let dockerfile = read("Dockerfile");
    let mut image_env = Vec::new();
    let mut in_env = false;
    for line in dockerfile.lines() {
        in_env = line.starts_with("ENV ") || (in_env && line.starts_with(' '));
        if in_env {
            for pair in line
                .trim_start_matches("ENV ")
                .trim()
                .trim_end_matches('\\')
                .split_whitespace()
            {
                let (k, v) = pair.split_once('=').unwrap();
                image_env.push((k.to_string(), v.to_string()));
            }
        }
    }
    let keys: Vec<&str> = image_env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "SMSGATE__METRICS__LISTEN",
            "SMSGATE__LOG__FORMAT",
            "SMSGATE__POLICY__SENDERS"
        ]
    );
    configuration_loads_with(&image_env)
        .unwrap_or_else(|e| panic!("the image's configuration: {e}"));

    let compose = yaml_document("docker-compose.yml");
    let compose_env: Vec<(String, String)> = compose["services"]["smsgate"]["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    configuration_loads_with(&compose_env)
        .unwrap_or_else(|e| panic!("the compose configuration: {e}"));

    // And a broken one is told apart.
    let broken = [(
        "SMSGATE__METRICS__LISTEN".to_string(),
        "not-an-address".to_string(),
    )];
    assert!(configuration_loads_with(&broken).is_err());
}

/// What a stop may take after the drain: the last commit, leaving the group.
fn stop_past_drain() -> u64 {
    (smsgate::gate::FINAL_COMMIT_WAIT + smsgate::gate::CLOSE_TIMEOUT).as_secs()
}
