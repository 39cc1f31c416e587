//! Policy reload in place (docs/operations.md, *Rotate policy packs*): the
//! real gate on the test broker gets SIGHUP after its sender registry file
//! changed. A sender unknown before the reload is known after it, and the
//! outputs carry the new policy version; a registry that no longer parses
//! is refused: the failure is counted, the previous policy stays in force
//! and the gate keeps deciding.

use smsgate_testkit as support;

use std::path::Path;
use std::time::Duration;

use support::broker::Broker;
use support::events;
use support::gate::{Gate, GateConfig, Topics, metric_sum, senders_file};
use support::kafka::{Collector, Output, Route, TestProducer};

/// The version label of `smsgate_policy_info`.
fn policy_version(gate: &Gate) -> Option<String> {
    let (_, text) = gate.get("/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix("smsgate_policy_info{version=\""))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
}

fn reload_failures(gate: &Gate) -> f64 {
    gate.get("/metrics")
        .and_then(|(_, text)| metric_sum(&text, "smsgate_policy_reload_failures_total"))
        .unwrap_or(-1.0)
}

/// Sends event `n` of `tag` (a `sunny-shop` notification when n % 5 == 3)
/// and returns its one output.
fn decide(
    producer: &TestProducer,
    collector: &Collector,
    topics: &Topics,
    tag: &str,
    n: usize,
    gate: &Gate,
) -> Output {
    let case = events::clean(tag, n);
    let at = producer.send_all(&topics.outbound, std::slice::from_ref(&case.record));
    let took = collector.wait_for(&at, Duration::from_secs(60), Duration::ZERO);
    assert!(
        took.is_some(),
        "event {n} not decided; log:\n{}",
        gate.log_tail()
    );
    collector
        .outputs()
        .into_iter()
        .find(|o| {
            o.source
                .as_ref()
                .is_some_and(|s| (s.partition, s.offset) == at[0])
        })
        .expect("the decided event's output")
}

fn header(o: &Output, name: &str) -> String {
    String::from_utf8_lossy(o.header(name).unwrap_or_default()).into_owned()
}

fn write_registry(path: &Path, text: &str) {
    // Write then rename, as a ConfigMap update does, so the gate never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_puts_a_changed_registry_in_force_and_refuses_a_broken_one() {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "reload");
    let tag = topics.group.clone();
    let dir = support::process::work_dir("reload").join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    let registry = dir.join("senders.toml");
    let full = std::fs::read_to_string(senders_file()).unwrap();
    let without_sunny = full.replace("[senders.sunny-shop]", "[senders.sunny-shop-retired]");
    assert_ne!(full, without_sunny, "the example registry has sunny-shop");
    write_registry(&registry, &without_sunny);

    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics)
        .set("SMSGATE__POLICY__SENDERS", registry.to_str().unwrap());
    let mut gate = Gate::start(&config, &format!("{tag}-gate"));
    gate.wait_ready(Duration::from_secs(60));
    let producer = TestProducer::new(&broker.bootstrap());
    let v1 = policy_version(&gate).expect("smsgate_policy_info at start");

    // Before: sunny-shop is not in the registry.
    let before = decide(&producer, &collector, &topics, &tag, 3, &gate);
    assert_eq!(before.route, Route::Quarantine);
    assert_eq!(before.codes(), vec!["sender.unknown"]);
    assert_eq!(header(&before, "smsgate-policy"), v1);

    // The registry gains sunny-shop; SIGHUP puts it in force.
    write_registry(&registry, &full);
    gate.sighup();
    let mut v2 = None;
    let swapped = support::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        v2 = policy_version(&gate).filter(|v| *v != v1);
        v2.is_some()
    });
    assert!(
        swapped,
        "no new policy version after SIGHUP; log:\n{}",
        gate.log_tail()
    );
    let v2 = v2.unwrap_or_default();
    let after = decide(&producer, &collector, &topics, &tag, 8, &gate);
    assert_eq!(after.route, Route::Approved, "codes {:?}", after.codes());
    assert_eq!(header(&after, "smsgate-policy"), v2);
    assert_eq!(reload_failures(&gate), 0.0);

    // A registry that does not parse: counted, and the previous policy stays.
    write_registry(&registry, "[senders.sunny-shop\nbrand = ");
    gate.sighup();
    let counted = support::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        reload_failures(&gate) == 1.0
    });
    assert!(
        counted,
        "reload failure not counted; log:\n{}",
        gate.log_tail()
    );
    assert_eq!(policy_version(&gate).as_deref(), Some(v2.as_str()));
    let still = decide(&producer, &collector, &topics, &tag, 13, &gate);
    assert_eq!(still.route, Route::Approved, "codes {:?}", still.codes());
    assert_eq!(header(&still, "smsgate-policy"), v2);
    let log = std::fs::read_to_string(&gate.log).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("policy reload failed") && l.contains("senders.toml")),
        "the failure is logged with the file; log:\n{}",
        gate.log_tail()
    );

    let status = gate.sigterm(Duration::from_secs(40));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        gate.log_tail()
    );
}
