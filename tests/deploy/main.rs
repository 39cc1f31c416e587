//! Deployment files: Dockerfile, compose, Kubernetes manifests, Prometheus rules and Grafana dashboards are consistent with the code, and the container's health check works.
//!
//! One module per concern; run one with `cargo test --test deploy MODULE::`.

mod deploy_common;
mod files;
mod healthcheck;
mod metrics;
// Runs scripts/check-deploy, whose validators come from scripts/ci-deploy-deps:
// with the tests that need installed tools (`scripts/test`, CI).
#[cfg(feature = "e2e")]
mod schemas;
