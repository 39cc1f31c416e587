//! The policy's one normalizer (and the fold after it) on arbitrary text:
//! never panics, idempotent, and the fast path agrees with the general one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgate::policy::content::fold::fold;
use smsgate::policy::content::normalize::{normalize, normalize_general};

fuzz_target!(|text: &str| {
    let once = normalize(text);
    assert_eq!(normalize(&once), once, "normalization is idempotent");
    assert_eq!(normalize_general(text), once, "fast path = general path");
    let _ = fold(&once);
});
