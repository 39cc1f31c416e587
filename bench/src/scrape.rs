//! Reading the gate's `/metrics` (Prometheus text format) from the outside,
//! the way an operator's Prometheus would: counters for progress, the
//! end-to-end histogram for percentiles.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One sample: metric name, label pairs, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub samples: Vec<Sample>,
}

/// GETs `http://addr/metrics`; `None` when the gate is not serving (yet).
pub fn fetch(addr: &str) -> Option<Page> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    Some(parse(body))
}

pub fn parse(text: &str) -> Page {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
            None => (head, Vec::new()),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Page { samples }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    s.split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

impl Page {
    fn label<'a>(s: &'a Sample, key: &str) -> Option<&'a str> {
        s.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sum over every label set of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    /// The value of `name` with label `key="value"`.
    pub fn get(&self, name: &str, key: &str, value: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && Self::label(s, key) == Some(value))
            .map(|s| s.value)
            .sum()
    }

    /// Every `(label value, value)` of `name` by label `key`.
    pub fn by_label(&self, name: &str, key: &str) -> Vec<(String, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| Some((Self::label(s, key)?.to_string(), s.value)))
            .collect()
    }

    /// The `q` quantile of histogram `name`, in the units of its buckets,
    /// interpolated linearly inside the bucket (as Prometheus'
    /// `histogram_quantile` does). `None` without observations.
    pub fn quantile(&self, name: &str, q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .by_label(&bucket, "le")
            .into_iter()
            .map(|(le, n)| {
                (
                    if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or(f64::INFINITY)
                    },
                    n,
                )
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for (le, count) in buckets {
            if count >= rank {
                if le.is_infinite() {
                    return Some(lower);
                }
                let share = if count > below {
                    (rank - below) / (count - below)
                } else {
                    1.0
                };
                return Some(lower + (le - lower) * share);
            }
            lower = le;
            below = count;
        }
        Some(lower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP smsgate_produced_total x
smsgate_produced_total{topic="a"} 3
smsgate_produced_total{topic="b"} 4
smsgate_end_to_end_seconds_bucket{le="0.01"} 50
smsgate_end_to_end_seconds_bucket{le="0.02"} 90
smsgate_end_to_end_seconds_bucket{le="0.05"} 100
smsgate_end_to_end_seconds_bucket{le="+Inf"} 100
smsgate_ready 1
"#;

    #[test]
    fn sums_counters_and_reads_labels() {
        let p = parse(TEXT);
        assert_eq!(p.sum("smsgate_produced_total"), 7.0);
        assert_eq!(p.get("smsgate_produced_total", "topic", "b"), 4.0);
        assert_eq!(p.sum("smsgate_ready"), 1.0);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let p = parse(TEXT);
        let p50 = p.quantile("smsgate_end_to_end_seconds", 0.5).unwrap();
        assert!((p50 - 0.01).abs() < 1e-9);
        let p99 = p.quantile("smsgate_end_to_end_seconds", 0.99).unwrap();
        assert!((p99 - 0.047).abs() < 1e-9, "{p99}");
    }
}
