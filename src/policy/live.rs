//! The policy a running gate decides with, replaceable in place.
//!
//! Packs and the sender registry are data an operator changes; a reload
//! (SIGHUP, `pipeline::reload`) swaps the compiled [`Policy`] without a
//! restart. Readers take the current `Arc<Policy>` once per batch, so a
//! batch is decided by one version, and the version in each decision says
//! which. A replacement is refused when it changes a window the running
//! state was sized by (duplicate or cap window): the state keeps entries
//! only that long, so a longer window would be enforced against a memory
//! that already forgot. Those changes need a restart (the restore reads the
//! changelog with the new windows).

use std::sync::{Arc, RwLock};

use super::Policy;

/// The current policy, shared by the deciders and the reply forwarder.
#[derive(Debug)]
pub struct LivePolicy {
    current: RwLock<Arc<Policy>>,
}

/// Why a loaded policy was not put in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "the {window} window changed from {from} to {to} minutes; the running state keeps entries for the old window, restart the gate to apply it"
    )]
    WindowChanged {
        window: &'static str,
        from: i64,
        to: i64,
    },
}

/// What [`LivePolicy::replace`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// The loaded policy has the version in force: nothing changed.
    Unchanged,
    /// In force from the next batch; the version it replaced.
    Swapped { previous: Arc<str> },
}

impl LivePolicy {
    pub fn new(policy: Policy) -> LivePolicy {
        LivePolicy {
            current: RwLock::new(Arc::new(policy)),
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `next` in force unless it changes a state window.
    pub fn replace(&self, next: Policy) -> Result<Replaced, Refused> {
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        if next.version() == slot.version() {
            return Ok(Replaced::Unchanged);
        }
        let windows = [
            ("duplicate", slot.dedup_window(), next.dedup_window()),
            ("frequency cap", slot.cap_window(), next.cap_window()),
        ];
        for (window, from, to) in windows {
            if from != to {
                return Err(Refused::WindowChanged {
                    window,
                    from: from.num_minutes(),
                    to: to.num_minutes(),
                });
            }
        }
        let previous = slot.version().clone();
        *slot = Arc::new(next);
        Ok(Replaced::Swapped { previous })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Registry, shipped_packs};

    fn registry(brand: &str) -> Registry {
        Registry::parse(&format!("[senders.huinong-credit]\nbrand = \"{brand}\"\n")).unwrap()
    }

    #[test]
    fn a_changed_registry_is_swapped_in_and_an_identical_one_is_not() {
        let live = LivePolicy::new(Policy::with_registry(registry("惠农信贷")));
        let first = live.current().version().clone();
        assert_eq!(
            live.replace(Policy::with_registry(registry("惠农信贷"))),
            Ok(Replaced::Unchanged)
        );
        let next = Policy::with_registry(registry("惠农金融"));
        let next_version = next.version().clone();
        assert_eq!(
            live.replace(next),
            Ok(Replaced::Swapped { previous: first })
        );
        assert_eq!(live.current().version(), &next_version);
    }

    #[test]
    fn a_policy_with_another_duplicate_window_is_refused_and_the_old_one_stays() {
        let live = LivePolicy::new(Policy::with_registry(registry("惠农信贷")));
        let before = live.current().version().clone();
        let packs: Vec<(String, String)> = shipped_packs()
            .into_iter()
            .map(|(name, text)| {
                let longer = text.replace("window_hours = 24", "window_hours = 48");
                (name, longer)
            })
            .collect();
        assert!(
            packs.iter().zip(shipped_packs()).any(|(a, b)| a.1 != b.1),
            "the shipped packs name a 24 h window to change"
        );
        let next = Policy::from_parts(&packs, registry("惠农信贷")).unwrap();
        let refused = live.replace(next).unwrap_err();
        assert!(
            matches!(refused, Refused::WindowChanged { .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("restart"));
        assert_eq!(live.current().version(), &before);
    }
}
