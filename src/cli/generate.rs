//! `smsgate generate`: realistic outbound events (and their consent)
//! produced to a real Kafka topic, from the same workload as the benchmark.

use std::process::ExitCode;

use super::fail;
use crate::synth::produce::{GenerateOptions, generate};

/// Produces the events; exit 1 when the broker does not take them.
pub fn run(opts: GenerateOptions) -> ExitCode {
    match generate(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}
