//! `smsgate run` (CONTRACT §9): the gate on Kafka until SIGTERM/SIGINT.

use std::process::ExitCode;

use super::{EXIT_CONFIG, block_on, fail};
use crate::config::Settings;
use crate::policy::Policy;

/// `smsgate run`: exit 0 after a clean stop, 2 for configuration, 1 otherwise.
pub fn run(settings: Settings) -> ExitCode {
    if settings.policy.senders.is_none() {
        return fail(
            EXIT_CONFIG,
            "invalid configuration: policy.senders is not set (run needs a sender registry)",
        );
    }
    let policy = match Policy::load(&settings.policy_source(&[])) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    if let Err(e) = crate::telemetry::logging::init(&settings.log) {
        return fail(EXIT_CONFIG, &e.to_string());
    }
    let result = match block_on(async {
        let shutdown = crate::gate::Shutdown::new();
        tokio::spawn(shutdown.clone().on_signals());
        crate::gate::run(settings, policy, shutdown).await
    }) {
        Ok(result) => result,
        Err(code) => return code,
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if e.is_config() => fail(EXIT_CONFIG, &e.to_string()),
        Err(e) => fail(1, &e.to_string()),
    }
}
