//! The `smsgate` command line as a user runs it: `check` on the contract's fixtures, exit codes, errors.
//!
//! One module per concern; run one with `cargo test --test cli MODULE::`.

mod check;
mod metrics_port;
mod readme;
mod startup_stop;
