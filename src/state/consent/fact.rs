//! One counted consent event in 16 bytes ([`Fact`]) and the folding rule
//! that keeps a recipient's history to what the policy can still tell apart
//! ([`fold`]); the table in the parent module stores these.

use chrono::{DateTime, Utc};

use crate::contract::consent::{
    ConsentAction, ConsentEvent, ConsentFact, ConsentScope, SenderScope,
};

use super::Interner;

/// 2000-01-01T00:00:00Z in Unix milliseconds: compact times count from here.
pub(super) const EPOCH_2000_MS: i64 = 946_684_800_000;
/// `exp_ms` value meaning "never expires".
pub(super) const NO_EXPIRY: u16 = u16::MAX;
/// Interned id of the `*` sender.
pub(super) const ANY_SENDER: u32 = 0;

/// One counted consent event, 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fact {
    /// `at`: whole seconds since 2000-01-01 UTC.
    pub(super) at_s: u32,
    /// `expires_at`: whole seconds since 2000 (meaningless when `exp_ms` is
    /// [`NO_EXPIRY`]).
    pub(super) exp_s: u32,
    /// Interned sender id, [`ANY_SENDER`] for `*`.
    pub(super) sender: u32,
    /// Milliseconds of `at` in bits 0–9; action in bit 10; scope in 11–12.
    pub(super) at_ms_kind: u16,
    /// Milliseconds of `expires_at`, or [`NO_EXPIRY`].
    pub(super) exp_ms: u16,
}

/// Splits a time into (seconds since 2000, milliseconds), clamped to the
/// representable range 2000-01-01 … 2136.
pub(super) fn split(t: DateTime<Utc>) -> (u32, u16) {
    let ms = (t.timestamp_millis() - EPOCH_2000_MS).clamp(0, (u32::MAX as i64 - 1) * 1000 + 999);
    ((ms / 1000) as u32, (ms % 1000) as u16)
}

pub(super) fn join(s: u32, ms: u16) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(EPOCH_2000_MS + s as i64 * 1000 + ms as i64).unwrap_or_default()
}

impl Fact {
    pub(super) fn new(event: &ConsentEvent, sender: u32) -> Fact {
        let (at_s, at_ms) = split(event.at);
        let (exp_s, exp_ms) = match event.expires_at {
            Some(e) => split(e),
            None => (0, NO_EXPIRY),
        };
        let action = match event.action {
            ConsentAction::OptIn => 0u16,
            ConsentAction::OptOut => 1,
        };
        let scope = match event.scope {
            ConsentScope::Marketing => 0u16,
            ConsentScope::All => 1,
            ConsentScope::Personalization => 2,
        };
        Fact {
            at_s,
            exp_s,
            sender,
            at_ms_kind: at_ms | action << 10 | scope << 11,
            exp_ms,
        }
    }

    pub(super) fn action(&self) -> ConsentAction {
        if self.at_ms_kind >> 10 & 1 == 1 {
            ConsentAction::OptOut
        } else {
            ConsentAction::OptIn
        }
    }

    pub(super) fn scope(&self) -> ConsentScope {
        match self.at_ms_kind >> 11 & 3 {
            0 => ConsentScope::Marketing,
            1 => ConsentScope::All,
            _ => ConsentScope::Personalization,
        }
    }

    pub(super) fn is_out(&self) -> bool {
        self.action() == ConsentAction::OptOut
    }

    /// `at` in milliseconds since 2000, for ordering.
    pub(super) fn at_key(&self) -> u64 {
        self.at_s as u64 * 1000 + (self.at_ms_kind & 0x3ff) as u64
    }

    /// `expires_at` in milliseconds since 2000; `u64::MAX` for never.
    pub(super) fn exp_key(&self) -> u64 {
        if self.exp_ms == NO_EXPIRY {
            u64::MAX
        } else {
            self.exp_s as u64 * 1000 + self.exp_ms as u64
        }
    }

    /// Same sender and same scope: facts that fold together.
    pub(super) fn same_group(&self, other: &Fact) -> bool {
        self.sender == other.sender && self.scope() == other.scope()
    }

    pub(super) fn view<'a>(&self, senders: &'a Interner) -> ConsentFact<'a> {
        ConsentFact {
            action: self.action(),
            scope: self.scope(),
            sender: if self.sender == ANY_SENDER {
                SenderScope::Any
            } else {
                SenderScope::One(senders.name(self.sender))
            },
            at: join(self.at_s, self.at_ms_kind & 0x3ff),
            expires_at: (self.exp_ms != NO_EXPIRY).then(|| join(self.exp_s, self.exp_ms)),
        }
    }
}

/// Adds `new` to a recipient's folded facts; the parent module's doc gives
/// the rule.
pub(super) fn fold(facts: &mut Vec<Fact>, new: Fact) {
    if new.scope() == ConsentScope::Personalization {
        // Latest by (at, opt-out wins a tie).
        let rank = |f: &Fact| (f.at_key(), f.is_out());
        match facts.iter_mut().find(|f| f.same_group(&new)) {
            Some(old) if rank(&new) > rank(old) => *old = new,
            Some(_) => {}
            None => facts.push(new),
        }
        return;
    }
    let out_at = facts
        .iter()
        .find(|f| f.same_group(&new) && f.is_out())
        .map(Fact::at_key);
    if new.is_out() {
        if out_at.is_some_and(|t| t >= new.at_key()) {
            return;
        }
        facts.retain(|f| !(f.same_group(&new) && (f.is_out() || f.at_key() <= new.at_key())));
        facts.push(new);
    } else {
        // On a tie the opt-out wins: an opt-in at the opt-out's time is dead.
        if out_at.is_some_and(|t| t >= new.at_key()) {
            return;
        }
        let dominates = |a: &Fact, b: &Fact| a.at_key() >= b.at_key() && a.exp_key() >= b.exp_key();
        if facts
            .iter()
            .any(|f| f.same_group(&new) && !f.is_out() && dominates(f, &new))
        {
            return;
        }
        facts.retain(|f| !(f.same_group(&new) && !f.is_out() && dominates(&new, f)));
        facts.push(new);
    }
}
