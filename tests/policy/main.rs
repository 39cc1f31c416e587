//! Policy tests: every reason code that rejects and a nearby case that passes, the shipped packs, evasions, properties of `decide`, quiet hours. Pure: no broker, no clock.
//!
//! One module per concern; run one with `cargo test --test policy MODULE::`.

mod corpus;
mod evasions;
mod packs;
mod props;
mod quiet_hours;
mod reason_codes;
mod text;
