//! Metrics of the metrics/health server itself: connections it closed at
//! accept because [`super::server::MAX_CONNECTIONS`] were already open (a
//! scrape storm or a connection-exhaustion attempt).

use prometheus::{IntCounter, Registry};

use super::Metrics;
use super::names::HTTP_CONNECTIONS_REFUSED;

pub(super) struct HttpMetrics {
    refused: IntCounter,
}

impl HttpMetrics {
    pub(super) fn register(r: &Registry) -> HttpMetrics {
        let refused = IntCounter::new(
            HTTP_CONNECTIONS_REFUSED,
            "Connections to the metrics/health port closed at accept: the connection cap was reached",
        )
        .expect("valid metric definition");
        r.register(Box::new(refused.clone()))
            .expect("metric registered once");
        HttpMetrics { refused }
    }
}

impl Metrics {
    pub fn http_connection_refused(&self) {
        self.http.refused.inc();
    }
}
