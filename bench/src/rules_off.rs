//! The "rules off" run (`smsgate-bench --rules-off`): the same gate binary
//! with every rule of its packs switched off (`enabled = false`), so every
//! record still goes through parsing, state, changelog, headers, produce
//! and acknowledgement but no rule is evaluated. Its throughput is the limit
//! of the gate's own plumbing; the full run against it is what the rules
//! cost, which the pass-through alone cannot show.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::BenchError;
use smsgate::policy::pack_files;

/// The packs `smsgate run` would load here: `policy.packs` from the
/// configuration (config/default.toml, the environment), `None` for the
/// shipped ones.
pub fn configured_packs() -> Result<Option<PathBuf>, BenchError> {
    smsgate::config::Settings::load(None)
        .map(|s| s.policy.packs)
        .map_err(|e| BenchError::Setup(format!("configuration: {e}")))
}

/// Writes the packs of `from` (the shipped ones for `None`) into `dir` with
/// every `[[rule]]` switched off; returns how many rules it switched off.
pub fn write_packs(from: Option<&Path>, dir: &Path) -> Result<usize, BenchError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| BenchError::Setup(format!("{what}: {e}"));
    std::fs::create_dir_all(dir)?;
    let mut switched = 0;
    for (file, text) in pack_files(from).map_err(|e| setup("policy packs", &e))? {
        let mut pack: Table = text.parse().map_err(|e| setup(&file, &e))?;
        if let Some(Value::Array(rules)) = pack.get_mut("rule") {
            for rule in rules.iter_mut().filter_map(Value::as_table_mut) {
                rule.insert("enabled".into(), Value::Boolean(false));
                switched += 1;
            }
        }
        let name = Path::new(&file)
            .file_name()
            .ok_or_else(|| setup(&file, &"no file name"))?;
        let text = toml::to_string(&pack).map_err(|e| setup(&file, &e))?;
        std::fs::write(dir.join(name), text)?;
    }
    Ok(switched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smsgate::policy::{Origin, Policy, PolicySource};
    use smsgate::state::Stores;

    #[test]
    fn every_shipped_rule_is_switched_off_and_the_packs_still_load() {
        let dir = std::env::temp_dir().join(format!("smsgate-rules-off-{}", std::process::id()));
        let n = write_packs(None, &dir).unwrap();
        let source = PolicySource {
            senders: vec![crate::sample_senders()],
            packs: Some(dir.clone()),
        };
        let policy = Policy::load(&source).unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        let shipped = Policy::load(&PolicySource {
            packs: None,
            ..source
        })
        .unwrap();
        let rules = |p: &Policy| p.packs().iter().map(|k| k.rules.len()).sum::<usize>();
        assert_eq!(n, rules(&shipped), "every rule of every pack");
        assert_eq!(rules(&policy), n, "no rule lost");
        assert!(
            policy
                .packs()
                .iter()
                .all(|p| p.rules.iter().all(|r| !r.enabled))
        );

        // A body the full policy quarantines (no consent, impersonation, a
        // stranger's number) is approved with the rules off.
        let event =
            br#"{"message_id":"m-1","created_at":"2026-11-28T02:00:00Z","to":"+8613800138000",
            "sender":"acme-lending","category":"marketing",
            "body":"\u3010\u62db\u5546\u94f6\u884c\u3011\u8bf7\u81f4\u7535 13912345678"}"#;
        let now = chrono::Utc::now();
        let decide = |p: &Policy| {
            Stores::for_policy(p)
                .decide(p, 0, event, Origin::Intake, now)
                .decision
                .reasons
                .len()
        };
        assert!(decide(&shipped) > 0);
        assert_eq!(decide(&policy), 0);
    }
}
