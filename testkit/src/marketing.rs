//! Marketing inputs, consent records and per-input verdicts shared by the
//! `tests/state_e2e_*.rs` binaries: jinyun-mall's compliant winter
//! marketing to one recipient, that recipient's consent, and the decisions
//! read back by source position.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use crate::events::afternoon_zone;
use crate::gate::Gate;
use crate::kafka::{Collector, Output, Position, Record, Route};

/// A time as the contract writes it: RFC 3339, whole seconds, `Z`.
pub fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A marketing consent record of `to` for jinyun-mall, keyed by `to`: an
/// `opt_in` is evidenced and dated 30 days ago, anything else is dated now.
pub fn consent(to: &str, action: &str) -> Record {
    let mut v = json!({
        "to": to, "action": action, "scope": "marketing", "sender": "jinyun-mall",
        "at": rfc3339(Utc::now()), "source": "web-form",
    });
    if action == "opt_in" {
        v["at"] = json!(rfc3339(Utc::now() - chrono::Duration::days(30)));
        v["evidence_id"] = json!(format!("ev-{to}"));
    }
    Record {
        key: Some(to.as_bytes().to_vec()),
        value: serde_json::to_vec(&v).unwrap(),
    }
}

/// An evidenced marketing opt-in of `to` for jinyun-mall.
pub fn opt_in(to: &str) -> Record {
    consent(to, "opt_in")
}

fn marketing_value(id: &str, to: &str) -> serde_json::Value {
    json!({
        "message_id": id,
        "created_at": rfc3339(Utc::now()),
        "to": to,
        "sender": "jinyun-mall",
        "category": "marketing",
        "body": "【金云商城】冬季新品已上架，欢迎选购。回T退订",
        "template_id": "tpl-winter",
    })
}

fn keyed(to: &str, v: &serde_json::Value) -> Record {
    Record {
        key: Some(to.as_bytes().to_vec()),
        value: serde_json::to_vec(v).unwrap(),
    }
}

/// Compliant marketing from jinyun-mall to `to` with no recipient zone:
/// the pack's zone decides quiet hours. Keyed by the recipient.
pub fn marketing(id: &str, to: &str) -> Record {
    keyed(to, &marketing_value(id, to))
}

/// Compliant marketing from jinyun-mall to `to`, afternoon in the
/// recipient's zone (no quiet hours), keyed by the recipient.
pub fn afternoon_marketing(id: &str, to: &str) -> Record {
    let mut v = marketing_value(id, to);
    v["recipient"] = json!({"timezone": afternoon_zone()});
    keyed(to, &v)
}

/// The decision for one input: "approve", or the quarantine codes joined.
pub fn verdict(o: &Output) -> String {
    match o.route {
        Route::Approved => "approve".into(),
        Route::Deferred => "defer".into(),
        Route::Quarantine => o.codes().join(","),
    }
}

/// Waits until every position has an output; returns position → verdicts.
pub fn decided(
    collector: &Collector,
    positions: &[Position],
    gate: &Gate,
) -> HashMap<Position, Vec<String>> {
    let all = crate::wait_until(Duration::from_secs(90), Duration::from_millis(50), || {
        collector.covered(positions) == positions.len()
    });
    assert!(
        all,
        "only {} of {} inputs decided; log:\n{}",
        collector.covered(positions),
        positions.len(),
        gate.log_tail()
    );
    let mut out: HashMap<Position, Vec<String>> = HashMap::new();
    for o in collector.outputs() {
        if let Some(s) = &o.source
            && s.topic == collector.input_topic()
        {
            out.entry((s.partition, s.offset))
                .or_default()
                .push(verdict(&o));
        }
    }
    out
}
