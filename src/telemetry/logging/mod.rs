//! Logging setup: `tracing` to stderr, `log.format` pretty or json,
//! `log.level` as a tracing filter (`info`, `smsgate=debug,librdkafka=warn`).
//! The json lines are written by [`json::JsonLines`]; a decide worker
//! writes the lines of one batch together ([`held`]).
//!
//! librdkafka's own log lines arrive through the clients' contexts (see
//! `pipeline::kafka`) under the target `librdkafka`. Phone numbers are never
//! logged in full: callers use [`crate::telemetry::mask::phone`].

mod held;
mod json;

pub use held::{Held, hold};

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

#[derive(Debug, thiserror::Error)]
#[error("invalid log.level {level:?}: {error}")]
pub struct LogError {
    level: String,
    error: String,
}

/// Installs the global subscriber. Calling it twice is harmless (the second
/// call keeps the first subscriber), so tests and the demo may call it freely.
pub fn init(settings: &LogSettings) -> Result<(), LogError> {
    let filter = EnvFilter::try_new(&settings.level).map_err(|e| LogError {
        level: settings.level.clone(),
        error: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| held::Stderr);
    let _ = if settings.format == "json" {
        builder.event_format(json::JsonLines).try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_level_is_an_error_naming_it() {
        let e = init(&LogSettings {
            format: "pretty".into(),
            level: "smsgate=loud".into(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("smsgate=loud"));
    }
}
