//! The policy: a pure function from (event, state view, clock) to a
//! [`Decision`] listing every failed rule.
//!
//! No I/O, no clock reads, no Kafka types and no logging happen in here once
//! the policy is loaded: `check`, `run`, `demo`, tests and benchmarks all
//! call [`Policy::decide`] with their own state and their own `now`.

pub mod consent;
pub mod registry;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::decision::{Decision, Reason, ReasonCode};
use crate::event::{Malformed, OutboundSms};
pub use registry::{Registry, Sender};
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
    registry: Registry,
    version: Arc<str>,
    dedup_window: chrono::Duration,
}

/// A rule id and its citation, shared by every reason it emits.
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

impl Policy {
    pub fn load(source: &PolicySource) -> Result<Policy, PolicyError> {
        let mut registry = Registry::default();
        let mut hasher = Sha256::new();
        for path in &source.senders {
            registry.merge(Registry::load(path)?);
        }
        for (id, s) in registry.iter_sorted() {
            hasher.update(format!("{id}{s:?}").as_bytes());
        }
        let version = format!("sha256:{}", hex::encode(&hasher.finalize()[..8]));
        Ok(Policy {
            registry,
            version: version.into(),
            dedup_window: chrono::Duration::hours(24),
        })
    }

    /// A policy over an in-memory registry (tests, demo).
    pub fn with_registry(registry: Registry) -> Policy {
        Policy {
            registry,
            version: "sha256:inline".into(),
            dedup_window: chrono::Duration::hours(24),
        }
    }

    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// How long decided message ids must be remembered.
    pub fn dedup_window(&self) -> chrono::Duration {
        self.dedup_window
    }

    /// How long approved marketing must be remembered for caps.
    pub fn cap_window(&self) -> chrono::Duration {
        chrono::Duration::hours(24)
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
        match crate::event::parse(bytes) {
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
        let mut reasons = Vec::new();
        if let Some(seen) = state.seen(&event.message_id) {
            let dup = match origin {
                Origin::Intake => now - seen.first_at < self.dedup_window,
                Origin::Release => seen.outcome != crate::decision::Outcome::Defer,
            };
            if dup {
                reasons.push(
                    RuleRef::new("core.duplicate", "smsgate contract §7 (dedup window)").reason(
                        ReasonCode::Duplicate,
                        format!(
                            "message_id already decided at {}",
                            crate::decision::format_time(&seen.first_at)
                        ),
                    ),
                );
            }
        }
        if self.registry.get(&event.sender).is_none() {
            reasons.insert(
                0,
                RuleRef::new(
                    "core.sender_registry",
                    "smsgate contract §5 (sender registry)",
                )
                .reason(
                    ReasonCode::SenderUnknown,
                    format!("sender {} is not in the registry", event.sender),
                ),
            );
            return self.finish(event, reasons, None, now);
        }
        let verdict = consent::evaluate(event, state, now);
        if let Some((code, detail)) = verdict.consent {
            reasons.push(
                RuleRef::new(
                    "consent.marketing",
                    "MIIT 通信短信息服务管理规定 (2015) art. 18; TCPA 47 CFR 64.1200",
                )
                .reason(code, detail),
            );
        }
        if verdict.personalization_refused {
            reasons.push(
                RuleRef::new("consent.personalization", "PIPL art. 24").reason(
                    ReasonCode::PersonalizationRefused,
                    "recipient refused personalized targeting".into(),
                ),
            );
        }
        self.finish(event, reasons, None, now)
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
