//! The policy: a pure function from (event, state view, clock) to a
//! [`Decision`] listing every failed rule.
//!
//! No I/O, no clock reads, no Kafka types and no logging happen in here once
//! the policy is loaded: `check`, `run`, `demo`, tests and benchmarks all
//! call [`Policy::decide`] with their own state and their own `now`.

pub mod consent;
pub mod content;
pub mod evaluate;
pub mod jurisdiction;
pub mod lexicon;
pub mod live;
pub mod optout;
pub mod pack;
pub mod quiet_hours;
pub mod registry;
pub mod rules;
pub mod sender;
pub mod view;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::contract::decision::{Decision, Reason, ReasonCode};
use crate::contract::event::{Category, Malformed, OutboundSms};
pub use pack::{Pack, Rule};
pub use registry::{Registry, Sender};
use sender::SenderProfile;
pub use view::{CapView, ConsentView, DedupView, EmptyState, Seen, StateView};

/// Why a policy could not be loaded. Every variant names the file, and the
/// rule where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: cannot read: {error}")]
    Read { path: String, error: String },
    #[error("{path}{}: {problem}", rule.as_ref().map(|r| format!(": rule {r}")).unwrap_or_default())]
    Invalid {
        path: String,
        rule: Option<String>,
        problem: String,
    },
}

/// Where the policy comes from.
#[derive(Debug, Clone, Default)]
pub struct PolicySource {
    /// Sender registry files, later ones adding or replacing entries.
    pub senders: Vec<PathBuf>,
    /// Directory of policy packs; `None` uses the packs built into the binary.
    pub packs: Option<PathBuf>,
}

/// Why `decide` is being called: an event from the outbound topic, or a held
/// event at its release time (which is not a duplicate of itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Intake,
    Release,
}

/// A loaded, compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Shared so the reply forwarder reads the registry in force.
    registry: Arc<Registry>,
    /// Registry entries prepared for matching, by sender id.
    /// Looked up once a decision: a fast hasher (the ids are the registry's).
    senders: HashMap<String, SenderProfile, foldhash::fast::RandomState>,
    packs: Arc<[Pack]>,
    /// Index of the pack for numbers no prefix matches.
    fallback: usize,
    version: Arc<str>,
    dedup_window: chrono::Duration,
    cap_window: chrono::Duration,
}

/// A rule id and its citation, for the rules that live outside packs
/// (malformed input, unknown sender).
#[derive(Debug, Clone)]
struct RuleRef {
    rule: Arc<str>,
    citation: Arc<str>,
}

impl RuleRef {
    fn new(rule: &str, citation: &str) -> RuleRef {
        RuleRef {
            rule: rule.into(),
            citation: citation.into(),
        }
    }

    fn reason(&self, code: ReasonCode, detail: String) -> Reason {
        Reason {
            code,
            rule: self.rule.clone(),
            citation: self.citation.clone(),
            detail,
        }
    }
}

/// Reads every `*.toml` of a pack directory, in file-name order.
fn read_pack_dir(dir: &Path) -> Result<Vec<(String, String)>, PolicyError> {
    let read_err = |path: &Path, e: std::io::Error| PolicyError::Read {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let path = entry.map_err(|e| read_err(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
            files.push((path.display().to_string(), text));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(PolicyError::Invalid {
            path: dir.display().to_string(),
            rule: None,
            problem: "no *.toml policy packs in this directory".into(),
        });
    }
    Ok(files)
}

/// The packs of `dir` as (file name, text), or the shipped ones for `None`.
pub fn pack_files(dir: Option<&Path>) -> Result<Vec<(String, String)>, PolicyError> {
    match dir {
        Some(dir) => read_pack_dir(dir),
        None => Ok(shipped_packs()),
    }
}

/// The shipped packs as (name, text).
pub fn shipped_packs() -> Vec<(String, String)> {
    pack::SHIPPED
        .iter()
        .map(|(n, t)| (format!("(built-in) config/policies/{n}"), t.to_string()))
        .collect()
}

impl Policy {
    pub fn load(source: &PolicySource) -> Result<Policy, PolicyError> {
        let mut registry = Registry::default();
        for path in &source.senders {
            registry.merge(Registry::load(path)?);
        }
        let files = pack_files(source.packs.as_deref())?;
        Policy::from_parts(&files, registry)
    }

    /// Compiles packs given as (file name, text) over a registry.
    pub fn from_parts(
        files: &[(String, String)],
        registry: Registry,
    ) -> Result<Policy, PolicyError> {
        let mut packs: Vec<Pack> = Vec::new();
        let mut hasher = Sha256::new();
        let mut rule_ids = HashSet::new();
        let mut prefixes = HashSet::new();
        for (file, text) in files {
            let name = Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            hasher.update(name.unwrap_or_default().as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            hasher.update([0]);
            let pack = pack::compile(file, text)?;
            let invalid = |rule: Option<&str>, problem: String| PolicyError::Invalid {
                path: file.clone(),
                rule: rule.map(str::to_string),
                problem,
            };
            if packs.iter().any(|p| p.name == pack.name) {
                return Err(invalid(
                    None,
                    format!("pack name {:?} is used twice", pack.name),
                ));
            }
            for p in &pack.prefixes {
                if !prefixes.insert(p.clone()) {
                    return Err(invalid(None, format!("prefix {p} is claimed by two packs")));
                }
            }
            for r in &pack.rules {
                if !rule_ids.insert(r.id.clone()) {
                    return Err(invalid(
                        Some(&r.id),
                        "duplicate rule id (used in another pack)".into(),
                    ));
                }
            }
            packs.push(pack);
        }
        let fallback = packs
            .iter()
            .position(|p| p.name == "default")
            .ok_or_else(|| PolicyError::Invalid {
                path: files.first().map(|f| f.0.clone()).unwrap_or_default(),
                rule: None,
                problem: "no pack named \"default\" (used for numbers no prefix matches)".into(),
            })?;
        for (id, s) in registry.iter_sorted() {
            hasher.update(
                format!(
                    "{id}\0{}\0{:?}\0{:?}\0{:?}\0{}\n",
                    s.brand, s.aliases, s.domains, s.numbers, s.lender
                )
                .as_bytes(),
            );
        }
        let version = format!("sha256:{}", hex::encode(hasher.finalize()));
        let window = |f: fn(&rules::Kind) -> Option<chrono::Duration>| {
            packs
                .iter()
                .flat_map(|p| p.rules.iter())
                .filter(|r| r.enabled)
                .filter_map(|r| f(&r.kind))
                .max()
                .unwrap_or(chrono::Duration::hours(24))
        };
        let dedup_window = window(|k| match k {
            rules::Kind::Duplicate { window } => Some(*window),
            _ => None,
        });
        let cap_window = window(|k| match k {
            rules::Kind::FrequencyCap { window, .. } => Some(*window),
            _ => None,
        });
        let senders = registry
            .iter_sorted()
            .into_iter()
            .map(|(id, s)| (id.clone(), SenderProfile::new(s)))
            .collect();
        Ok(Policy {
            registry: Arc::new(registry),
            senders,
            packs: packs.into(),
            fallback,
            version: version.into(),
            dedup_window,
            cap_window,
        })
    }

    /// The shipped packs over an in-memory registry (tests, demo).
    pub fn with_registry(registry: Registry) -> Policy {
        // The shipped packs are compiled in and covered by tests; failing
        // here is a build defect, not something input can cause.
        #[allow(clippy::expect_used)]
        Policy::from_parts(&shipped_packs(), registry).expect("the shipped policy packs compile")
    }

    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry, for holders that outlive this policy value.
    pub fn shared_registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The compiled packs, in load order.
    pub fn packs(&self) -> &[Pack] {
        &self.packs
    }

    /// The pack for a recipient: the longest matching prefix, else `default`.
    pub fn pack_for(&self, to: &str) -> &Pack {
        let mut best: Option<(usize, usize)> = None;
        for (i, p) in self.packs.iter().enumerate() {
            for prefix in &p.prefixes {
                if to.starts_with(prefix.as_str()) && best.is_none_or(|(len, _)| prefix.len() > len)
                {
                    best = Some((prefix.len(), i));
                }
            }
        }
        &self.packs[best.map_or(self.fallback, |(_, i)| i)]
    }

    /// How long decided message ids must be remembered (the longest
    /// duplicate window of any pack).
    pub fn dedup_window(&self) -> chrono::Duration {
        self.dedup_window
    }

    /// How long approved marketing must be remembered for caps (the longest
    /// cap window of any pack).
    pub fn cap_window(&self) -> chrono::Duration {
        self.cap_window
    }

    /// How many approval times of one (recipient, subject) the caps of
    /// `to`'s pack need for `category`: the largest `max` of its enabled
    /// frequency-cap rules; `None` when none applies (nothing to remember).
    /// Keeping only the latest `max` approvals answers `count >= max`
    /// exactly, and bounds each pair's memory and changelog entry.
    pub fn cap_retention(&self, to: &str, category: Category) -> Option<u32> {
        self.pack_for(to)
            .rules
            .iter()
            .filter(|r| r.applies_to(category))
            .filter_map(|r| match r.kind {
                rules::Kind::FrequencyCap { max, .. } => Some(max),
                _ => None,
            })
            .max()
    }

    /// The decision for input that is not a valid event.
    pub fn malformed(&self, m: &Malformed, now: DateTime<Utc>) -> Decision {
        let rule = RuleRef::new("core.malformed", "smsgate contract §2 (event format)");
        Decision::from_reasons(
            m.message_id.clone(),
            vec![rule.reason(ReasonCode::Malformed, m.detail.clone())],
            None,
            self.version.clone(),
            now,
        )
    }

    /// Parses and decides one record value.
    pub fn decide_bytes(
        &self,
        bytes: &[u8],
        origin: Origin,
        state: &dyn StateView,
        now: DateTime<Utc>,
    ) -> (Option<OutboundSms>, Decision) {
        match crate::contract::event::parse(bytes) {
            Ok(event) => {
                let d = self.decide(&event, origin, state, now);
                (Some(event), d)
            }
            Err(m) => (None, self.malformed(&m, now)),
        }
    }

    /// Decides one well-formed event: every failing rule is listed.
    pub fn decide(
        &self,
        event: &OutboundSms,
        origin: Origin,
        state: &dyn StateView,
        now: DateTime<Utc>,
    ) -> Decision {
        let pack = self.pack_for(&event.to);
        let mut reasons = Vec::new();
        let seen = state.seen(&event.message_id);
        for rule in pack.rules.iter().filter(|r| r.applies_to(event.category)) {
            if let (rules::Kind::Duplicate { window }, Some(seen)) = (&rule.kind, seen) {
                let dup = match origin {
                    Origin::Intake => now - seen.first_at < *window,
                    Origin::Release => seen.outcome != crate::contract::decision::Outcome::Defer,
                };
                if dup {
                    reasons.push(evaluate::reason(
                        rule,
                        ReasonCode::Duplicate,
                        format!(
                            "message_id already decided at {}",
                            crate::contract::decision::format_time(&seen.first_at)
                        ),
                    ));
                }
            }
        }
        let Some(sender) = self.senders.get(&event.sender) else {
            reasons.insert(
                0,
                RuleRef::new(
                    "core.sender_registry",
                    "smsgate contract §5 (sender registry)",
                )
                .reason(
                    ReasonCode::SenderUnknown,
                    format!("sender \"{}\" is not in the registry", event.sender),
                ),
            );
            return self.finish(event, reasons, None, now);
        };
        let release_at = evaluate::run(pack, event, sender, state, now, &mut reasons);
        self.finish(event, reasons, release_at, now)
    }

    fn finish(
        &self,
        event: &OutboundSms,
        reasons: Vec<Reason>,
        release_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Decision {
        Decision::from_reasons(
            Some(event.message_id.clone()),
            reasons,
            release_at,
            self.version.clone(),
            now,
        )
    }
}
