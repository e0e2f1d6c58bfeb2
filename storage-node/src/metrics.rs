//! The node's Prometheus metrics, registered per node (never globally, so a
//! simulator can host many nodes), served at `/metrics`.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Every metric the node exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Fragments held.
    pub fragments_stored: IntGauge,
    /// Bytes of fragments held.
    pub fragment_bytes_stored: IntGauge,
    /// Gets and pushes allowed, by operation.
    pub requests_served: IntCounterVec,
    /// Gets and pushes refused, by operation and reason.
    pub requests_refused: IntCounterVec,
    /// Bytes of fragments released to readers (sizes of allowed gets).
    pub fragment_bytes_released: IntCounter,
    /// Bytes of fragments taken in from owners.
    pub fragment_bytes_received: IntCounter,
    /// Contract proposals, by outcome.
    pub proposals: IntCounterVec,
    /// Height of the node's ledger replica.
    pub ledger_height: IntGauge,
    /// Blocks the replica is behind the service.
    pub ledger_lag_blocks: IntGauge,
    /// Connected libp2p peers.
    pub peers_connected: IntGauge,
}

impl Metrics {
    /// A fresh set in its own registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("valid metric name");
            registry.register(Box::new(gauge.clone())).expect("registered once");
            gauge
        };
        let total = |name: &str, help: &str| {
            let counter = IntCounter::new(name, help).expect("valid metric name");
            registry.register(Box::new(counter.clone())).expect("registered once");
            counter
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name");
            registry.register(Box::new(counter.clone())).expect("registered once");
            counter
        };
        Self {
            fragments_stored: gauge("strand_node_fragments_stored", "Fragments held"),
            fragment_bytes_stored: gauge("strand_node_fragment_bytes_stored", "Bytes of fragments held"),
            requests_served: counter("strand_node_requests_served_total", "Gets and pushes allowed", &["operation"]),
            requests_refused: counter(
                "strand_node_requests_refused_total",
                "Gets and pushes refused",
                &["operation", "reason"],
            ),
            fragment_bytes_released: total("strand_node_fragment_bytes_released_total", "Bytes of fragments released"),
            fragment_bytes_received: total("strand_node_fragment_bytes_received_total", "Bytes of fragments received"),
            proposals: counter("strand_node_proposals_total", "Contract proposals by outcome", &["outcome"]),
            ledger_height: gauge("strand_node_ledger_height", "Height of the node's ledger replica"),
            ledger_lag_blocks: gauge("strand_node_ledger_lag_blocks", "Blocks behind the ledger service"),
            peers_connected: gauge("strand_node_peers_connected", "Connected libp2p peers"),
            registry,
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer).expect("encoding metrics into memory");
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `/metrics` until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { metrics.render() }
        }),
    );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "node.metrics server stopped");
    }
}
