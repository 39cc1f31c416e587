//! What the gate tells its operators: Prometheus metrics and the health
//! endpoints ([`metrics`], names in one place), structured logs
//! ([`logging`]), masking of personal data for both ([`mask`]), and CPU time
//! per thread from `/proc` ([`procfs`]).

pub mod logging;
pub mod mask;
pub mod metrics;
pub mod procfs;
