//! `decide` on arbitrary record values with the shipped packs: never
//! panics, and the same input, state and clock give the same decision.
#![no_main]

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use smsgate::policy::{Origin, Policy, Registry};
use smsgate::state::MemoryState;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let registry = Registry::parse(include_str!("../../config/senders.example.toml"))
            .expect("the example registry parses");
        Policy::with_registry(registry)
    })
}

fuzz_target!(|data: &[u8]| {
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap();
    let state = MemoryState::new();
    let (_, a) = policy().decide_bytes(data, Origin::Intake, &state, now);
    let (_, b) = policy().decide_bytes(data, Origin::Intake, &state, now);
    assert_eq!(a, b, "decide is deterministic");
});
