//! The HTTP endpoints on `metrics.listen`: `/metrics` (Prometheus text),
//! `/healthz` (200 while the process runs) and `/readyz` (200 once consent
//! has caught up and while a broker is reachable, else 503).
//!
//! The port may face a whole network (the image binds 0.0.0.0), so the
//! server bounds what a client can hold: at most [`MAX_CONNECTIONS`] at
//! once, at most [`MAX_PER_PEER`] of them from one address, so one client
//! cannot keep the probes and Prometheus out (one more is closed at accept
//! and counted), a request head must
//! arrive within [`HEADER_READ_TIMEOUT`] (also between keep-alive
//! requests), and a connection lives at most [`MAX_CONNECTION_AGE`]. Half-open
//! connections therefore cannot take the process's file descriptors or
//! memory, and `/healthz` answers again within seconds of an attack ending.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use super::Metrics;

/// Connections served at once. Prometheus and a few probes need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections served at once from one IP address.
pub const MAX_PER_PEER: usize = 16;
/// Time for a client to send a request head, from connect or from the end
/// of its previous response.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after this long, whatever it is doing.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// Pause after a failed accept (out of file descriptors): the listener's
/// backlog waits while connections being served end.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
            .with_state(self.metrics.clone());
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let peers = Peers::default();
        let mut last_warning: Option<Instant> = None;
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                () = &mut stop => return,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and the like: say so now and then, wait, go on.
                    if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(%error, "metrics server cannot accept a connection");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Some(peer_slot) = peers.enter(peer.ip()) else {
                self.metrics.http_connection_refused();
                drop(stream);
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                self.metrics.http_connection_refused();
                drop(stream);
                continue;
            };
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                let connection = http.serve_connection(TokioIo::new(stream), service);
                // Errors here are the client's (reset, timeout): nothing to do.
                let _ = tokio::time::timeout(MAX_CONNECTION_AGE, connection).await;
                drop(slot);
                drop(peer_slot);
            });
        }
    }
}

/// Connections open per peer address (at most [`MAX_CONNECTIONS`] entries:
/// an address leaves the map with its last connection).
#[derive(Clone, Default)]
struct Peers(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Peers {
    /// A slot for one more connection from `ip`, unless it has its share.
    fn enter(&self, ip: IpAddr) -> Option<PeerSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= MAX_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

/// One connection of a peer; gives its place back when dropped.
struct PeerSlot {
    peers: Peers,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A GET of `path` from local address `from`: the status line.
    async fn get_from(from: &str, to: SocketAddr, path: &str) -> std::io::Result<String> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{from}:0").parse().map_err(std::io::Error::other)?)?;
        let mut s = socket.connect(to).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        Ok(text.lines().next().unwrap_or_default().to_string())
    }

    /// One address holding more never-finished requests than the whole
    /// server serves does not keep another address's probe out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_peer_cannot_take_every_connection() {
        let metrics = Arc::new(Metrics::new());
        let server = MetricsServer::bind("127.0.0.1:0", metrics.clone())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 8 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            // A request head that never ends.
            s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
            held.push(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            get_from("127.0.0.2", addr, "/healthz"),
        )
        .await
        .expect("answered within 2 s")
        .unwrap();
        assert!(answer.contains("200"), "{answer}");
        let _ = stop.send(());
    }
}
