//! The compact consent table: every recipient's consent history, folded to
//! what the policy can still tell apart, in well under 100 bytes per
//! recipient.
//!
//! Every instance materializes the whole consent topic into one of these at
//! start and keeps it current. Three things keep it small:
//! - phone numbers are not stored: the map key is a keyed 64-bit SipHash of
//!   the number (key random per process, so nothing on disk or in a dump
//!   links a hash to a number; a collision among 1M recipients has odds of
//!   about 3·10⁻⁸ and would merge two histories);
//! - sender ids are interned to a `u32` (`0` is `*`);
//! - a fact is 16 bytes: times as seconds since 2000 plus milliseconds
//!   (exact to the millisecond; sub-millisecond digits are dropped, so two
//!   events less than 1 ms apart tie and the opt-out wins, and an expiry is
//!   at most 1 ms early), action and scope packed into spare bits;
//! - a map slot is 24 bytes, the hashed number and the recipient's one fact;
//!   the few recipients with more facts keep their list in an arena and the
//!   slot holds its index, marked by a bit no fact sets.
//!
//! History is folded per (sender or `*`, scope) so that every verdict of
//! [`crate::policy::consent::evaluate`] stays identical (a property test
//! checks this against the naive [`crate::state::MemoryState`]):
//! - marketing and all: the latest opt-out, and the opt-ins strictly newer
//!   than it that no other kept opt-in dominates (one at least as new and
//!   expiring at least as late);
//! - personalization: only the latest event (an opt-out wins a tie).
//!
//! Folding depends only on the set of events, not their arrival order, so a
//! late-arriving older event changes nothing (CONTRACT §3).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::contract::consent::{
    ConsentAction, ConsentError, ConsentEvent, ConsentFact, ConsentScope,
};
use crate::contract::event::is_e164;
use crate::policy::view::ConsentView;

mod fact;

use fact::{ANY_SENDER, Fact, fold};

/// What `apply` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It counts (it may still be folded away if older events decide).
    Counted,
    /// An `opt_in` without `evidence_id`: ignored (CONTRACT §3), counted in
    /// a metric by the caller.
    IgnoredWithoutEvidence,
}

/// A consent record as on the topic, borrowing its strings where it can.
#[derive(Deserialize)]
struct RawConsent<'a> {
    #[serde(borrow)]
    to: Cow<'a, str>,
    action: ConsentAction,
    scope: ConsentScope,
    #[serde(borrow)]
    sender: Cow<'a, str>,
    at: DateTime<Utc>,
    /// Required by the contract, not kept.
    #[allow(dead_code)]
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(default, borrow)]
    evidence_id: Option<Cow<'a, str>>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// Marks a [`Slot`] that holds an overflow index instead of a fact (a bit a
/// fact never sets: its `at_ms_kind` uses bits 0–12).
const MANY: u16 = 1 << 15;

/// A recipient's folded facts in 16 bytes, so a map slot is 24: the fact
/// itself (almost everyone has one), or, marked by [`MANY`], the index of
/// its list in the [`Overflow`] arena.
#[derive(Debug, Clone, Copy)]
struct Slot(Fact);

/// What a [`Slot`] holds.
enum Held {
    One,
    Many(u32),
}

impl Slot {
    fn many(index: u32) -> Slot {
        Slot(Fact {
            at_s: index,
            exp_s: 0,
            sender: 0,
            at_ms_kind: MANY,
            exp_ms: 0,
        })
    }

    fn held(self) -> Held {
        if self.0.at_ms_kind & MANY == 0 {
            Held::One
        } else {
            Held::Many(self.0.at_s)
        }
    }
}

/// The fact lists of recipients with more than one fact, by index; indices
/// freed when a list folds back to one fact are reused.
#[derive(Debug, Default)]
struct Overflow {
    lists: Vec<Box<[Fact]>>,
    free: Vec<u32>,
}

impl Overflow {
    fn get(&self, index: u32) -> &[Fact] {
        self.lists.get(index as usize).map_or(&[], |l| &**l)
    }

    /// The facts a slot stands for.
    fn facts<'a>(&'a self, slot: &'a Slot) -> &'a [Fact] {
        match slot.held() {
            Held::One => std::slice::from_ref(&slot.0),
            Held::Many(index) => self.get(index),
        }
    }

    fn put(&mut self, list: Box<[Fact]>) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.replace(i, list);
                i
            }
            None => {
                // Never reaches u32::MAX: that many lists would need more
                // memory than the map of their recipients could hold.
                let i = self.lists.len() as u32;
                self.lists.push(list);
                i
            }
        }
    }

    fn replace(&mut self, index: u32, list: Box<[Fact]>) {
        if let Some(slot) = self.lists.get_mut(index as usize) {
            *slot = list;
        }
    }

    fn release(&mut self, index: u32) {
        self.replace(index, Box::default());
        self.free.push(index);
    }

    fn heap_bytes(&self) -> usize {
        let facts: usize = self.lists.iter().map(|l| l.len()).sum();
        facts * size_of::<Fact>()
            + self.lists.capacity() * size_of::<Box<[Fact]>>()
            + self.free.capacity() * size_of::<u32>()
    }
}

/// Sender ids, interned so a fact holds a `u32`.
#[derive(Debug)]
struct Interner {
    /// Id of each name; `*` is [`ANY_SENDER`].
    ids: HashMap<Box<str>, u32>,
    /// Name of each id.
    names: Vec<Box<str>>,
}

impl Default for Interner {
    fn default() -> Interner {
        let mut ids = HashMap::new();
        ids.insert(Box::from("*"), ANY_SENDER);
        Interner {
            ids,
            names: vec![Box::from("*")],
        }
    }
}

impl Interner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map(|s| &**s).unwrap_or("")
    }

    fn heap_bytes(&self) -> usize {
        let strings: usize = self.names.iter().map(|n| 2 * n.len()).sum();
        strings
            + self.names.capacity() * size_of::<Box<str>>()
            + self.ids.capacity() * (size_of::<(Box<str>, u32)>() + 1)
    }
}

/// The map key is already a keyed hash: use it as is.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Consent history of every recipient, folded and compact.
#[derive(Debug)]
pub struct ConsentTable {
    /// Key of the phone-number hash, random per process.
    keys: RandomState,
    /// Folded facts by hashed recipient.
    recipients: HashMap<u64, Slot, BuildHasherDefault<IdentityHasher>>,
    /// Lists of the recipients with more than one fact.
    overflow: Overflow,
    senders: Interner,
    /// Events applied that count.
    counted: u64,
    /// Opt-ins ignored for lack of evidence.
    ignored_without_evidence: u64,
}

impl Default for ConsentTable {
    fn default() -> ConsentTable {
        ConsentTable::with_capacity(0)
    }
}

impl ConsentTable {
    pub fn new() -> ConsentTable {
        ConsentTable::default()
    }

    /// A table sized for `recipients` (avoids rehashing during a restore).
    pub fn with_capacity(recipients: usize) -> ConsentTable {
        ConsentTable {
            keys: RandomState::new(),
            recipients: HashMap::with_capacity_and_hasher(recipients, Default::default()),
            overflow: Overflow::default(),
            senders: Interner::default(),
            counted: 0,
            ignored_without_evidence: 0,
        }
    }

    fn key(&self, to: &str) -> u64 {
        self.keys.hash_one(to)
    }

    /// Applies one consent event, in any order relative to the others.
    pub fn apply(&mut self, event: &ConsentEvent) -> Applied {
        if !event.counts() {
            self.ignored_without_evidence += 1;
            return Applied::IgnoredWithoutEvidence;
        }
        let fact = Fact::new(event, self.senders.intern(&event.sender));
        self.insert(&event.to, fact);
        Applied::Counted
    }

    fn insert(&mut self, to: &str, fact: Fact) {
        self.counted += 1;
        let key = self.key(to);
        let Some(slot) = self.recipients.get_mut(&key) else {
            self.recipients.insert(key, Slot(fact));
            return;
        };
        let mut facts = self.overflow.facts(slot).to_vec();
        fold(&mut facts, fact);
        *slot = match (slot.held(), facts.as_slice()) {
            // Folding always keeps at least one fact.
            (_, []) => *slot,
            (Held::One, [one]) => Slot(*one),
            (Held::Many(i), [one]) => {
                self.overflow.release(i);
                Slot(*one)
            }
            (Held::One, many) => Slot::many(self.overflow.put(many.into())),
            (Held::Many(i), many) => {
                self.overflow.replace(i, many.into());
                *slot
            }
        };
    }

    /// Parses and applies one record value from the consent topic: the same
    /// checks as [`ConsentEvent::parse`], without allocating the strings.
    pub fn apply_bytes(&mut self, value: &[u8]) -> Result<Applied, ConsentError> {
        let raw: RawConsent<'_> =
            serde_json::from_slice(value).map_err(|e| ConsentError(e.to_string()))?;
        if !is_e164(&raw.to) {
            return Err(ConsentError("to: not an E.164 number".into()));
        }
        if raw.sender.is_empty() {
            return Err(ConsentError("sender: empty".into()));
        }
        let counts = raw.action == ConsentAction::OptOut
            || raw.evidence_id.as_deref().is_some_and(|e| !e.is_empty());
        if !counts {
            self.ignored_without_evidence += 1;
            return Ok(Applied::IgnoredWithoutEvidence);
        }
        let event = ConsentEvent {
            to: String::new(),
            action: raw.action,
            scope: raw.scope,
            sender: String::new(),
            at: raw.at,
            source: String::new(),
            evidence_id: None,
            expires_at: raw.expires_at,
        };
        let fact = Fact::new(&event, self.senders.intern(&raw.sender));
        self.insert(&raw.to, fact);
        Ok(Applied::Counted)
    }

    /// Recipients with at least one counted event.
    pub fn recipients(&self) -> usize {
        self.recipients.len()
    }

    /// Facts kept after folding.
    pub fn facts(&self) -> usize {
        self.recipients
            .values()
            .map(|slot| self.overflow.facts(slot).len())
            .sum()
    }

    /// Counted events applied so far.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// Opt-ins ignored so far for lack of evidence.
    pub fn ignored_without_evidence(&self) -> u64 {
        self.ignored_without_evidence
    }

    /// Heap bytes computed from capacities: the map's buckets (key, value
    /// and one control byte each), out-of-line fact lists, and the sender
    /// interner. Allocator overhead is not included; the benchmark also
    /// measures with a counting allocator.
    pub fn heap_bytes(&self) -> usize {
        // hashbrown keeps capacity ≤ 7/8 of a power-of-two bucket count.
        let buckets = if self.recipients.capacity() == 0 {
            0
        } else {
            (self.recipients.capacity() * 8 / 7).next_power_of_two()
        };
        let table = buckets * (size_of::<(u64, Slot)>() + 1);
        table + self.overflow.heap_bytes() + self.senders.heap_bytes()
    }
}

impl ConsentView for ConsentTable {
    fn for_each_consent(&self, to: &str, f: &mut dyn FnMut(ConsentFact<'_>)) {
        if let Some(slot) = self.recipients.get(&self.key(to)) {
            for fact in self.overflow.facts(slot) {
                f(fact.view(&self.senders));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::consent::SenderScope;

    fn event(json: &str) -> ConsentEvent {
        ConsentEvent::parse(json.as_bytes()).unwrap()
    }

    fn facts(
        table: &ConsentTable,
        to: &str,
    ) -> Vec<(ConsentAction, ConsentScope, String, DateTime<Utc>)> {
        let mut v = Vec::new();
        table.for_each_consent(to, &mut |f| {
            let s = match f.sender {
                SenderScope::Any => "*".to_string(),
                SenderScope::One(s) => s.to_string(),
            };
            v.push((f.action, f.scope, s, f.at));
        });
        v
    }

    #[test]
    fn a_fact_is_sixteen_bytes_and_a_map_slot_twenty_four() {
        assert_eq!(size_of::<Fact>(), 16);
        assert_eq!(size_of::<(u64, Slot)>(), 24);
    }

    #[test]
    fn a_fact_never_sets_the_overflow_bit() {
        let e = event(
            r#"{"to":"+8613812345678","action":"opt_out","scope":"personalization","sender":"a","at":"2026-10-01T10:00:00.999Z","source":"x"}"#,
        );
        assert_eq!(Fact::new(&e, u32::MAX).at_ms_kind & MANY, 0);
    }

    #[test]
    fn overflow_lists_are_freed_and_reused() {
        let mut t = ConsentTable::new();
        let apply = |t: &mut ConsentTable, to: &str, action: &str, at: &str, expires: &str| {
            t.apply(&event(&format!(
                r#"{{"to":"{to}","action":"{action}","scope":"marketing","sender":"a","at":"{at}","source":"x","evidence_id":"e","expires_at":"{expires}"}}"#
            )))
        };
        // Two opt-ins neither of which dominates (newer, but expiring sooner).
        let two_opt_ins = |t: &mut ConsentTable, to: &str| {
            apply(
                t,
                to,
                "opt_in",
                "2026-10-02T10:00:00Z",
                "2027-01-01T00:00:00Z",
            );
            apply(
                t,
                to,
                "opt_in",
                "2026-10-01T10:00:00Z",
                "2028-01-01T00:00:00Z",
            );
        };
        let (x, y) = ("+8613812345678", "+12125551234");
        two_opt_ins(&mut t, x);
        assert_eq!(facts(&t, x).len(), 2);
        assert_eq!(t.overflow.lists.len(), 1);
        // A newer opt-out folds both away: x is back to one fact.
        apply(
            &mut t,
            x,
            "opt_out",
            "2026-10-03T10:00:00Z",
            "2029-01-01T00:00:00Z",
        );
        assert_eq!(facts(&t, x).len(), 1);
        assert_eq!(t.overflow.free, vec![0]);
        // y's list takes the freed index.
        two_opt_ins(&mut t, y);
        assert_eq!(facts(&t, y).len(), 2);
        assert_eq!(t.overflow.lists.len(), 1);
        assert!(t.overflow.free.is_empty());
        assert_eq!(t.facts(), 3);
    }

    #[test]
    fn round_trips_times_to_the_millisecond() {
        let e = event(
            r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"a","at":"2026-10-01T10:00:00.123+08:00","source":"x","evidence_id":"e","expires_at":"2027-10-01T00:00:00.456Z"}"#,
        );
        let mut t = ConsentTable::new();
        t.apply(&e);
        let mut seen = Vec::new();
        t.for_each_consent("+8613812345678", &mut |f| seen.push((f.at, f.expires_at)));
        assert_eq!(seen, vec![(e.at, e.expires_at)]);
    }

    #[test]
    fn opt_in_without_evidence_is_ignored_and_counted() {
        let mut t = ConsentTable::new();
        let applied = t.apply(&event(
            r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"a","at":"2026-10-01T10:00:00Z","source":"x"}"#,
        ));
        assert_eq!(applied, Applied::IgnoredWithoutEvidence);
        assert_eq!(t.ignored_without_evidence(), 1);
        assert_eq!(t.recipients(), 0);
    }

    #[test]
    fn an_opt_out_folds_away_older_opt_ins_of_its_group_only() {
        let mut t = ConsentTable::new();
        let to = "+8613812345678";
        for json in [
            r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"a","at":"2026-10-01T10:00:00Z","source":"x","evidence_id":"e"}"#,
            r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"b","at":"2026-10-01T10:00:00Z","source":"x","evidence_id":"e"}"#,
            r#"{"to":"+8613812345678","action":"opt_out","scope":"marketing","sender":"a","at":"2026-10-02T10:00:00Z","source":"reply:TD"}"#,
            // Older than the opt-out: changes nothing.
            r#"{"to":"+8613812345678","action":"opt_in","scope":"marketing","sender":"a","at":"2026-10-01T12:00:00Z","source":"x","evidence_id":"e"}"#,
        ] {
            t.apply(&event(json));
        }
        let mut got = facts(&t, to);
        got.sort_by(|a, b| a.2.cmp(&b.2));
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].2.as_str()), (ConsentAction::OptOut, "a"));
        assert_eq!((got[1].0, got[1].2.as_str()), (ConsentAction::OptIn, "b"));
        assert_eq!(t.counted(), 4);
        assert!(facts(&t, "+8613800000000").is_empty());
    }
}
