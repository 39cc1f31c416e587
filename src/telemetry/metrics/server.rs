//! The HTTP endpoints on `metrics.listen`: `/metrics` (Prometheus text),
//! `/healthz` (200 while the process runs) and `/readyz` (200 once consent
//! has caught up and while a broker is reachable, else 503).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::Metrics;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for metrics: {error}")]
pub struct ListenError {
    pub addr: String,
    pub error: std::io::Error,
}

/// A bound metrics server, not yet serving.
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port; see [`MetricsServer::local_addr`]).
    pub async fn bind(addr: &str, metrics: Arc<Metrics>) -> Result<MetricsServer, ListenError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| ListenError {
                addr: addr.to_string(),
                error,
            })?;
        Ok(MetricsServer { listener, metrics })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` resolves.
    pub async fn serve(self, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(self.metrics);
        if let Err(e) = axum::serve(self.listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
