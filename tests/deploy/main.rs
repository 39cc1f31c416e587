//! Deployment files: Dockerfile, compose, Kubernetes manifests, Prometheus rules and Grafana dashboards are consistent with the code, and the container's health check works.
//!
//! One module per concern; run one with `cargo test --test deploy MODULE::`.

mod deploy_common;
mod files;
mod healthcheck;
mod metrics;
mod schemas;
