//! The dashboard and the alert rules name only metrics the gate exports, so
//! renaming a metric in `src/metrics.rs` breaks the build, not the dashboard.

use crate::deploy_common;

use std::collections::BTreeSet;

use deploy_common::{
    Exported, alert_rules, dashboard_expressions, json_document, promql_metric_names, yaml_document,
};

/// Metrics the dashboard deliberately does not chart (alerts may still use them).
/// Each with why.
const NOT_CHARTED: &[&str] = &[
    // A start-up figure, read from the metrics endpoint or logs when needed.
    "smsgate_state_restore_seconds",
    // An absolute offset: lag and commit rates say what matters.
    "smsgate_committed_offset",
    // A capacity figure for sizing memory, read from the metrics endpoint.
    "smsgate_state_entries",
];

fn dashboard_uses() -> Vec<(String, String, Vec<String>)> {
    let dashboard = json_document("deploy/grafana/smsgate.json");
    dashboard_expressions(&dashboard)
        .into_iter()
        .map(|(place, expr)| {
            let names = promql_metric_names(&expr);
            (place, expr, names)
        })
        .collect()
}

fn alert_uses() -> Vec<(String, String, Vec<String>)> {
    let rules = yaml_document("deploy/prometheus/alerts.yml");
    alert_rules(&rules)
        .into_iter()
        .map(|(name, rule)| {
            let expr = rule["expr"]
                .as_str()
                .expect("every rule has an expr")
                .to_string();
            let names = promql_metric_names(&expr);
            (format!("alert {name}"), expr, names)
        })
        .collect()
}

fn assert_all_exported(uses: &[(String, String, Vec<String>)]) {
    let exported = Exported::load();
    let mut unknown = Vec::new();
    for (place, expr, names) in uses {
        assert!(!names.is_empty(), "{place}: no metric found in {expr:?}");
        for name in names {
            if !exported.exports(name) {
                unknown.push(format!("{place}: {name} (in {expr:?})"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "these series are not exported by the gate (src/telemetry/metrics/names.rs):\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_metric_name_finder_sees_metrics_but_not_functions_labels_or_variables() {
    let expr = r#"histogram_quantile(0.99, sum by (le, job) (rate(smsgate_processing_seconds_bucket{job=~"$job", outcome="reject"}[$__rate_interval])))
        / on (job) group_left (version) smsgate_policy_info offset 5m
        or absent(up{job="smsgate"}) and topk($topn, smsgate_reasons_total) > 2 * 1e3 # comment smsgate_nothing"#;
    assert_eq!(
        promql_metric_names(expr),
        vec![
            "smsgate_processing_seconds_bucket",
            "smsgate_policy_info",
            "up",
            "smsgate_reasons_total"
        ]
    );
}

#[test]
fn histograms_are_recognized_in_src_metrics() {
    let exported = Exported::load();
    for histogram in [
        "smsgate_processing_seconds",
        "smsgate_end_to_end_seconds",
        "smsgate_optout_latency_seconds",
    ] {
        assert!(
            exported.histograms.contains(histogram),
            "{histogram} should be a histogram"
        );
        assert!(exported.exports(&format!("{histogram}_bucket")));
    }
    assert!(
        !exported.exports("smsgate_ready_bucket"),
        "a gauge has no buckets"
    );
}

#[test]
fn every_dashboard_query_names_only_exported_metrics() {
    let uses = dashboard_uses();
    assert!(
        uses.len() >= 20,
        "the dashboard should have its queries, found {}",
        uses.len()
    );
    assert_all_exported(&uses);
}

#[test]
fn every_alert_expression_names_only_exported_metrics() {
    let uses = alert_uses();
    assert!(
        uses.len() >= 7,
        "expected at least 7 alerts, found {}",
        uses.len()
    );
    assert_all_exported(&uses);
}

#[test]
fn the_dashboard_charts_every_exported_metric() {
    let exported = Exported::load();
    let charted: BTreeSet<String> = dashboard_uses()
        .iter()
        .flat_map(|(_, _, names)| names.iter().map(|n| exported.family(n)))
        .collect();
    let missing: Vec<&String> = exported
        .names
        .iter()
        .filter(|n| !charted.contains(*n) && !NOT_CHARTED.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "exported metrics with no dashboard panel (chart them, or list them in NOT_CHARTED): {missing:?}"
    );
}

#[test]
fn histogram_quantiles_are_taken_over_buckets_summed_by_le() {
    for (place, expr, _) in dashboard_uses().iter().chain(alert_uses().iter()) {
        if expr.contains("histogram_quantile") {
            assert!(
                expr.contains("_bucket") && expr.contains("le)"),
                "{place}: histogram_quantile needs rate(..._bucket) summed by le: {expr}"
            );
        }
    }
}
