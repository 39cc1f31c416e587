//! Consent facts survive log compaction (CONTRACT §1, §10): the consent
//! topic is keyed `<to>|<sender>|<scope>`, one key per fact, so an opt-out
//! from one sender and an opt-in for another sender of the same recipient
//! are different keys and compaction keeps both; only a superseded fact of
//! the same key goes. Shown on a real broker with aggressive compaction,
//! then through a gate started after compaction and restarted.

use smsgate_testkit as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;
use support::broker::Broker;
use support::events::cn_number;
use support::gate::{Gate, GateConfig, OTHER_PARTITIONS, Topics};
use support::kafka::{Collector, Record, TestProducer};
use support::marketing::{afternoon_marketing, decided, rfc3339};

/// One consent fact, keyed as the contract says.
fn fact(to: &str, sender: &str, action: &str, days_ago: i64) -> Record {
    let at = chrono::Utc::now() - chrono::Duration::days(days_ago);
    let mut v = json!({
        "to": to, "action": action, "scope": "marketing", "sender": sender,
        "at": rfc3339(at), "source": if action == "opt_out" { "reply:TD" } else { "web-form" },
    });
    if action == "opt_in" {
        v["evidence_id"] = json!(format!("ev-{sender}-{to}"));
    }
    Record {
        key: Some(format!("{to}|{sender}|marketing").into_bytes()),
        value: serde_json::to_vec(&v).unwrap(),
    }
}

/// Compacts `topic` as hard as the broker allows: a segment rolls every
/// 200 ms and any dirty ratio is worth cleaning.
fn compact_aggressively(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let config = AlterConfig::new(ResourceSpecifier::Topic(topic))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "200")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("min.compaction.lag.ms", "0")
        .set("delete.retention.ms", "100");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.alter_configs([&config], &AdminOptions::new()))
        .unwrap();
    for r in results {
        r.unwrap_or_else(|e| panic!("alter configs of {topic}: {e:?}"));
    }
}

/// Every record of `topic` from the beginning: key → values, in order.
fn read_all(bootstrap: &str, topic: &str) -> HashMap<String, Vec<serde_json::Value>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..OTHER_PARTITIONS as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    let mut eof = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof < OTHER_PARTITIONS && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let value = serde_json::from_slice(m.payload().unwrap_or_default())
                    .unwrap_or(serde_json::Value::Null);
                out.entry(key).or_default().push(value);
            }
            Some(Err(KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    assert_eq!(eof, OTHER_PARTITIONS, "{topic} not read to its end");
    out
}

/// Marketing from 招商银行 (zhaoshang-bank), afternoon in the recipient's zone.
fn bank_marketing(id: &str, to: &str) -> Record {
    let mut r = afternoon_marketing(id, to);
    let mut v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
    v["sender"] = json!("zhaoshang-bank");
    v["body"] = json!("【招商银行】网点周末照常营业，欢迎来访。回T退订");
    r.value = serde_json::to_vec(&v).unwrap();
    r
}

#[test]
fn an_opt_out_from_one_sender_and_an_opt_in_for_another_survive_compaction_and_a_restart() {
    let broker = Broker::shared();
    let topics = Topics::unique(broker, "compact");
    compact_aggressively(&broker.bootstrap(), &topics.consent);
    let producer = TestProducer::new(&broker.bootstrap());
    let to = cn_number(72_000_001);
    let bank_key = format!("{to}|zhaoshang-bank|marketing");
    let mall_key = format!("{to}|jinyun-mall|marketing");

    // The bank's opt-in, then the mall's, then an opt-out from the bank that
    // supersedes the bank's opt-in (same key). Under a per-recipient key,
    // compaction would keep only the opt-out and lose the mall's opt-in.
    producer.send_all(
        &topics.consent,
        &[
            fact(&to, "zhaoshang-bank", "opt_in", 30),
            fact(&to, "jinyun-mall", "opt_in", 30),
        ],
    );
    producer.send_all(
        &topics.consent,
        &[fact(&to, "zhaoshang-bank", "opt_out", 0)],
    );

    // Roll segments on every partition until the cleaner has removed the
    // superseded opt-in: a filler key rewritten every 300 ms.
    let filler = cn_number(72_999_999);
    let started = Instant::now();
    let compacted = loop {
        for p in 0..OTHER_PARTITIONS as i32 {
            producer.send_one(
                &topics.consent,
                p,
                &fact(&filler, "jinyun-mall", "opt_in", 30),
            );
        }
        let all = read_all(&broker.bootstrap(), &topics.consent);
        let bank = all.get(&bank_key).map_or(0, Vec::len);
        if bank == 1 || started.elapsed() > Duration::from_secs(120) {
            break all;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let fillers: usize = compacted
        .get(&format!("{filler}|jinyun-mall|marketing"))
        .map_or(0, Vec::len);
    eprintln!(
        "[compaction] compacted after {:.1?}; filler records left {fillers}",
        started.elapsed()
    );
    let bank = &compacted[&bank_key];
    assert_eq!(
        bank.len(),
        1,
        "the superseded opt-in was not compacted away: {bank:?}"
    );
    assert_eq!(
        bank[0]["action"], "opt_out",
        "the bank's latest fact is kept"
    );
    let mall = compacted
        .get(&mall_key)
        .expect("the mall's opt-in survives compaction");
    assert_eq!(mall.len(), 1);
    assert_eq!(mall[0]["action"], "opt_in");

    // A gate started after compaction reads both facts, and so does the
    // same gate after a restart.
    let collector = Collector::start(&broker.bootstrap(), &topics.outbound, &topics.routes());
    let config = GateConfig::new(broker, &topics);
    let tag = &topics.group;
    for round in 0..2 {
        let mut gate = Gate::start(&config, &format!("compact-{round}"));
        gate.wait_ready(Duration::from_secs(60));
        let sent = producer.send_all(
            &topics.outbound,
            &[
                afternoon_marketing(&format!("{tag}-mall-{round}"), &to),
                bank_marketing(&format!("{tag}-bank-{round}"), &to),
            ],
        );
        let got = decided(&collector, &sent, &gate);
        assert_eq!(
            got[&sent[0]],
            vec!["approve"],
            "round {round}: the mall's opt-in survived: {:?}",
            got[&sent[0]]
        );
        assert!(
            got[&sent[1]][0].split(',').any(|c| c == "consent.revoked"),
            "round {round}: the bank's opt-out survived: {:?}",
            got[&sent[1]]
        );
        assert!(gate.sigterm(Duration::from_secs(40)).is_some());
    }
}
