//! Shared helpers for the deployment tests: reading the shipped YAML and JSON
//! files, finding the metric names a PromQL expression uses, and the names
//! the gate exports (the string constants of `src/telemetry/metrics/names.rs`).

#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

/// A path relative to the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values.
pub fn yaml_documents(relative: &str) -> Vec<Value> {
    let text = read(relative);
    let docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"));
    docs.iter().map(|d| yaml_to_json(d, relative)).collect()
}

/// The single document of a YAML file, as a JSON value.
pub fn yaml_document(relative: &str) -> Value {
    let mut docs = yaml_documents(relative);
    assert_eq!(
        docs.len(),
        1,
        "{relative} should hold exactly one YAML document"
    );
    docs.remove(0)
}

fn yaml_to_json(yaml: &Yaml, file: &str) -> Value {
    match yaml {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(|i| yaml_to_json(i, file)).collect()),
        Yaml::Hash(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => panic!("{file}: unsupported YAML key {other:?}"),
                };
                assert!(
                    out.insert(key.clone(), yaml_to_json(v, file)).is_none(),
                    "{file}: duplicate key {key}"
                );
            }
            Value::Object(out)
        }
        Yaml::Null => Value::Null,
        Yaml::Alias(_) | Yaml::BadValue => {
            panic!("{file}: YAML aliases are not used in the shipped files")
        }
    }
}

pub fn json_document(relative: &str) -> Value {
    serde_json::from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid JSON: {e}"))
}

/// Series Prometheus itself creates for every target; allowed in expressions.
pub const PROMETHEUS_SERIES: &[&str] = &["up"];

/// Where the metric name constants live.
pub fn metric_names_file() -> &'static str {
    "src/telemetry/metrics/names.rs"
}

/// What the gate exports, read from the string constants of the metric names
/// file (`src/telemetry/metrics/names.rs`).
pub struct Exported {
    /// Every metric name.
    pub names: BTreeSet<String>,
    /// The names that are histograms (they expose `_bucket`, `_sum`, `_count`).
    pub histograms: BTreeSet<String>,
}

impl Exported {
    pub fn load() -> Exported {
        let file = metric_names_file();
        let source = read(file);
        // Registration lives next to the names.
        let registration = read("src/telemetry/metrics/mod.rs");
        let constant = regex::Regex::new(r#"(?m)^\s*pub\s+const\s+([A-Z0-9_]+)\s*:\s*&str\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"\s*;(.*)$"#)
            .unwrap();
        let mut names = BTreeSet::new();
        let mut histograms = BTreeSet::new();
        for c in constant.captures_iter(&source) {
            let (ident, name, rest) = (&c[1], c[2].to_string(), &c[3]);
            // A histogram is marked in the constant's comment, or the constant
            // is passed to a Histogram constructor somewhere in the file.
            let histogram_call = regex::Regex::new(&format!(
                r"(?i)histogram\w*(::\w+)?\s*\([^;]{{0,300}}?\b{ident}\b"
            ))
            .unwrap();
            let used_as_histogram =
                histogram_call.is_match(&source) || histogram_call.is_match(&registration);
            if rest.to_lowercase().contains("histogram") || used_as_histogram {
                histograms.insert(name.clone());
            }
            names.insert(name);
        }
        assert!(
            names.len() >= 10,
            "found only {} metric names in {file}",
            names.len()
        );
        Exported { names, histograms }
    }

    /// Whether a series name appears in the gate's /metrics (or is Prometheus's own).
    pub fn exports(&self, series: &str) -> bool {
        if self.names.contains(series) || PROMETHEUS_SERIES.contains(&series) {
            return true;
        }
        ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            series
                .strip_suffix(suffix)
                .is_some_and(|base| self.histograms.contains(base))
        })
    }

    /// The metric a series belongs to (a histogram's base name for its parts).
    pub fn family(&self, series: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = series.strip_suffix(suffix)
                && self.histograms.contains(base)
            {
                return base.to_string();
            }
        }
        series.to_string()
    }
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    // aggregation operators, which may be followed by `by (…)` before `(`
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects (Grafana `$variables`
/// allowed). Function names, keywords, label matchers, grouping labels,
/// strings, durations and numbers are not metric names.
pub fn promql_metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_until = |chars: &[char], mut i: usize, close: char| {
        while i < chars.len() && chars[i] != close {
            if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
                let q = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != q {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            i += 1;
        }
        i + 1
    };
    let is_ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_until(&chars, i + 1, c);
        } else if c == '{' {
            i = skip_until(&chars, i + 1, '}');
        } else if c == '[' {
            i = skip_until(&chars, i + 1, ']');
        } else if c == '#' {
            i = skip_until(&chars, i + 1, '\n');
        } else if c == '$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                i = skip_until(&chars, i + 1, '}');
            } else {
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            let lower = word.to_lowercase();
            if GROUPING.contains(&lower.as_str()) {
                if next == Some('(') {
                    i = skip_until(&chars, j + 1, ')');
                }
            } else if KEYWORDS.contains(&lower.as_str()) || next == Some('(') {
                // a keyword, or a function / aggregation call
            } else {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every PromQL expression of the Grafana dashboard, with where it is.
pub fn dashboard_expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = stack.pop() {
        let title = panel["title"].as_str().unwrap_or("?");
        for t in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((
                    format!("panel {title:?} target {}", t["refId"]),
                    expr.to_string(),
                ));
            }
        }
        stack.extend(panel["panels"].as_array().into_iter().flatten());
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap_or("");
        // label_values(selector, label) → the selector is PromQL.
        let expr = match query
            .strip_prefix("label_values(")
            .and_then(|q| q.rsplit_once(','))
        {
            Some((selector, _label)) => selector.to_string(),
            None => query.to_string(),
        };
        out.push((format!("variable {}", var["name"]), expr));
    }
    out
}

/// Every alert of a Prometheus rules document: (alert name, rule object).
pub fn alert_rules(rules: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for group in rules["groups"].as_array().expect("rules have groups") {
        for rule in group["rules"].as_array().expect("each group has rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("rule named");
            out.push((name.to_string(), rule.clone()));
        }
    }
    out
}
