//! The event parser on arbitrary bytes: never panics; what it accepts
//! parses the same way twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgate::contract::event::parse;

fuzz_target!(|data: &[u8]| {
    let first = parse(data).map(|e| format!("{e:?}")).map_err(|m| format!("{m:?}"));
    let again = parse(data).map(|e| format!("{e:?}")).map_err(|m| format!("{m:?}"));
    assert_eq!(first, again);
});
