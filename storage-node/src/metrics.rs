//! The node's Prometheus metrics, registered per node (never globally, so a
//! simulator can host many nodes), served at `/metrics`.

use prometheus::{Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The `failed_<reason>` outcomes of repair orders (`daemon::repair`).
pub const REPAIR_FAILURES: [&str; 7] = [
    "failed_admission",
    "failed_no_stripe_map",
    "failed_rebuild",
    "failed_records",
    "failed_siblings",
    "failed_store",
    "failed_unknown_contract",
];

/// Outcomes of the node's proof submissions: on the ledger (`accepted`),
/// finalised but not counted (`rejected`), refused by the service
/// (`refused`), or not delivered (`unsent`).
pub const PROOF_SUBMISSION_OUTCOMES: [&str; 4] = ["accepted", "rejected", "refused", "unsent"];

/// Every metric the node exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Fragments held.
    pub fragments_stored: IntGauge,
    /// Agreements held (signed or being fetched).
    pub contracts_held: IntGauge,
    /// Bytes the node offers.
    pub capacity_bytes: IntGauge,
    /// Bytes promised under agreements (signed or being fetched).
    pub committed_bytes: IntGauge,
    /// Requests refused as busy (over a per-peer or node-wide limit), by
    /// kind.
    pub requests_busy: IntCounterVec,
    /// Requests in flight, by kind.
    pub requests_in_flight: prometheus::IntGaugeVec,
    /// Bytes of fragments held.
    pub fragment_bytes_stored: IntGauge,
    /// Gets and pushes allowed, by operation.
    pub requests_served: IntCounterVec,
    /// Gets and pushes refused, by operation and reason.
    pub requests_refused: IntCounterVec,
    /// Bytes of fragments released to readers (sizes of allowed gets).
    pub fragment_bytes_released: IntCounter,
    /// Bytes of fragments released, by reader kind (owner, grantee).
    pub fragment_bytes_released_to: IntCounterVec,
    /// Credential presentations, by outcome (accepted or the refusal code).
    pub presentations: IntCounterVec,
    /// Bytes of fragments taken in from owners.
    pub fragment_bytes_received: IntCounter,
    /// Contract proposals, by outcome.
    pub proposals: IntCounterVec,
    /// Staging requests by outcome.
    pub stagings: IntCounterVec,
    /// Capacity held by staging reservations.
    pub staging_reserved_bytes: IntGauge,
    /// Height of the node's ledger replica.
    pub ledger_height: IntGauge,
    /// Blocks the replica is behind the service.
    pub ledger_lag_blocks: IntGauge,
    /// Connected libp2p peers.
    pub peers_connected: IntGauge,
    /// Contract answers submitted (one per challenged contract and epoch).
    pub proofs_submitted: IntCounter,
    /// Bytes of submit-proofs transactions sent (bounded per epoch,
    /// whatever the number of contracts).
    pub proof_submission_bytes: IntCounter,
    /// Challenges answered (at most 48 per epoch).
    pub proof_challenges: IntCounter,
    /// The ledger's verdicts on the node's contracts, by verdict
    /// (passed, failed, missed).
    pub proof_verdicts: IntCounterVec,
    /// Contracts whose challenges the node could not answer at all.
    pub proofs_unanswerable: IntCounter,
    /// Challenged groups whose bytes failed the store's own check.
    pub proof_damaged_reads: IntCounter,
    /// Bytes read from the store to answer challenges.
    pub proof_bytes_read: IntCounter,
    /// Time to build an epoch's answers.
    pub proof_seconds: Histogram,
    /// Access receipts put on the ledger.
    pub receipts_submitted: IntCounter,
    /// Access receipts that could not be put on the ledger.
    pub receipts_dropped: IntCounter,
    /// Repair orders naming this node, by outcome (`received`,
    /// `completed`, or `failed_<reason>`).
    pub repair_orders: IntCounterVec,
    /// Bytes of sibling fragments read to repair.
    pub repair_bytes_read: IntCounter,
    /// Bytes of rebuilt fragments stored.
    pub repair_bytes_written: IntCounter,
    /// Sibling fragments that arrived corrupt (their holders reported).
    pub repair_bad_siblings: IntCounter,
    /// Time from taking an order to reporting it.
    pub repair_seconds: Histogram,
    /// Repair reads opened for repairers, by outcome (`opened` or the
    /// refusal).
    pub repair_reads: IntCounterVec,
    /// Bytes of fragments released to repairers.
    pub repair_bytes_released: IntCounter,
    /// Capacity neither promised under agreements nor reserved by staging.
    pub free_bytes: IntGauge,
    /// Free bytes of the file system holding the data directory.
    pub disk_free_bytes: IntGauge,
    /// Size of that file system.
    pub disk_size_bytes: IntGauge,
    /// Seconds since the replica last applied a block (set at each scrape:
    /// grows while the ledger is unreachable; the gate refuses grantees
    /// past 10 s).
    pub ledger_silent_seconds: Gauge,
    /// Proof submissions by outcome ([`PROOF_SUBMISSION_OUTCOMES`]).
    pub proof_submissions: IntCounterVec,
    /// Time from a get request to the end of its transfer, by outcome
    /// (`completed`, `aborted`).
    pub get_seconds: HistogramVec,
    /// Always 1: the node's account, organisation and version as labels.
    pub info: prometheus::IntGaugeVec,
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
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let gauge = prometheus::IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric name");
            registry.register(Box::new(gauge.clone())).expect("registered once");
            gauge
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let histogram =
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric");
            registry.register(Box::new(histogram.clone())).expect("registered once");
            histogram
        };
        let metrics = Self {
            fragments_stored: gauge("strand_node_fragments_stored", "Fragments held"),
            contracts_held: gauge("strand_node_contracts_held", "Agreements held (signed or being fetched)"),
            capacity_bytes: gauge("strand_node_capacity_bytes", "Bytes the node offers for fragments"),
            committed_bytes: gauge(
                "strand_node_committed_bytes",
                "Bytes promised under agreements (signed or being fetched)",
            ),
            requests_busy: counter(
                "strand_node_requests_busy_total",
                "Control-plane requests refused as busy (over a per-peer or node-wide limit)",
                &["kind"],
            ),
            requests_in_flight: gauges(
                "strand_node_requests_in_flight",
                "Control-plane requests in flight by kind",
                &["kind"],
            ),
            fragment_bytes_stored: gauge("strand_node_fragment_bytes_stored", "Bytes of fragments held"),
            requests_served: counter("strand_node_requests_served_total", "Gets and pushes allowed", &["operation"]),
            requests_refused: counter(
                "strand_node_requests_refused_total",
                "Gets and pushes refused",
                &["operation", "reason"],
            ),
            fragment_bytes_released: total("strand_node_fragment_bytes_released_total", "Bytes of fragments released"),
            fragment_bytes_released_to: counter(
                "strand_node_fragment_bytes_released_to_total",
                "Bytes of fragments released, by reader kind",
                &["reader"],
            ),
            presentations: counter(
                "strand_node_credential_presentations_total",
                "Credential presentations by outcome",
                &["outcome"],
            ),
            fragment_bytes_received: total("strand_node_fragment_bytes_received_total", "Bytes of fragments received"),
            proposals: counter("strand_node_proposals_total", "Contract proposals by outcome", &["outcome"]),
            stagings: counter("strand_node_stagings_total", "Staging requests by outcome", &["outcome"]),
            staging_reserved_bytes: gauge(
                "strand_node_staging_reserved_bytes",
                "Capacity reserved for fragments staged ahead of proposals",
            ),
            ledger_height: gauge("strand_node_ledger_height", "Height of the node's ledger replica"),
            ledger_lag_blocks: gauge("strand_node_ledger_lag_blocks", "Blocks behind the ledger service"),
            peers_connected: gauge("strand_node_peers_connected", "Connected libp2p peers"),
            proofs_submitted: total("strand_node_proofs_submitted_total", "Contract answers submitted"),
            proof_submission_bytes: total(
                "strand_node_proof_submission_bytes_total",
                "Bytes of submit-proofs transactions sent to the ledger",
            ),
            proof_challenges: total("strand_node_proof_challenges_total", "Challenges answered"),
            proof_verdicts: counter(
                "strand_node_proof_verdicts_total",
                "Ledger verdicts on the node's proofs",
                &["verdict"],
            ),
            proofs_unanswerable: total(
                "strand_node_proofs_unanswerable_total",
                "Contracts whose challenges could not be answered",
            ),
            proof_damaged_reads: total(
                "strand_node_proof_damaged_reads_total",
                "Challenged groups failing the store's check",
            ),
            proof_bytes_read: total("strand_node_proof_bytes_read_total", "Bytes read to answer challenges"),
            receipts_submitted: total("strand_node_receipts_submitted_total", "Access receipts put on the ledger"),
            receipts_dropped: total(
                "strand_node_receipts_dropped_total",
                "Access receipts that could not be put on the ledger",
            ),
            repair_orders: counter(
                "strand_node_repair_orders_total",
                "Repair orders naming this node by outcome",
                &["outcome"],
            ),
            repair_bytes_read: total(
                "strand_node_repair_bytes_read_total",
                "Bytes of sibling fragments read to repair",
            ),
            repair_bytes_written: total("strand_node_repair_bytes_written_total", "Bytes of rebuilt fragments stored"),
            repair_bad_siblings: total(
                "strand_node_repair_bad_siblings_total",
                "Sibling fragments that arrived corrupt during repair (their holders reported to the ledger)",
            ),
            repair_seconds: histogram(
                "strand_node_repair_seconds",
                "Time from taking a repair order to reporting it",
                vec![0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0],
            ),
            repair_reads: counter(
                "strand_node_repair_reads_total",
                "Repair reads opened for repairers by outcome",
                &["outcome"],
            ),
            repair_bytes_released: total(
                "strand_node_repair_bytes_released_total",
                "Bytes of fragments released to repairers",
            ),
            free_bytes: gauge(
                "strand_node_free_bytes",
                "Capacity neither promised under agreements nor reserved by staging",
            ),
            disk_free_bytes: gauge(
                "strand_node_disk_free_bytes",
                "Free bytes of the file system holding the data directory",
            ),
            disk_size_bytes: gauge("strand_node_disk_size_bytes", "Size of the file system holding the data directory"),
            ledger_silent_seconds: {
                let gauge = Gauge::new(
                    "strand_node_ledger_silent_seconds",
                    "Seconds since the node's replica last applied a block",
                )
                .expect("valid metric name");
                registry.register(Box::new(gauge.clone())).expect("registered once");
                gauge
            },
            proof_submissions: counter(
                "strand_node_proof_submissions_total",
                "Proof submissions by outcome (accepted, rejected, refused by the service, unsent)",
                &["outcome"],
            ),
            get_seconds: {
                let histogram = HistogramVec::new(
                    HistogramOpts::new("strand_node_get_seconds", "Time from a get request to the end of its transfer")
                        .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                    &["outcome"],
                )
                .expect("valid metric");
                registry.register(Box::new(histogram.clone())).expect("registered once");
                histogram
            },
            info: gauges(
                "strand_node_info",
                "Always 1: the node's account, organisation and version",
                &["account", "organisation", "version"],
            ),
            proof_seconds: histogram(
                "strand_node_proof_seconds",
                "Time to build an epoch's answers",
                vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0],
            ),
            registry,
        };
        metrics.show_known_labels();
        metrics
    }

    /// Shows every labelled family from the start, each known label at
    /// zero, so a dashboard never shows "no data" for what has not happened
    /// yet.
    fn show_known_labels(&self) {
        use crate::core::gate::Refusal;
        use crate::core::limits::Kind;
        for kind in Kind::ALL {
            self.requests_busy.with_label_values(&[kind.label()]);
            self.requests_in_flight.with_label_values(&[kind.label()]);
        }
        for operation in ["get", "push", "repair"] {
            self.requests_served.with_label_values(&[operation]);
        }
        for reason in Refusal::LABELS {
            for operation in ["get", "push"] {
                self.requests_refused.with_label_values(&[operation, reason]);
            }
            self.presentations.with_label_values(&[reason]);
        }
        self.presentations.with_label_values(&["accepted"]);
        for reader in ["owner", "grantee", "repairer"] {
            self.fragment_bytes_released_to.with_label_values(&[reader]);
        }
        for outcome in strand_wire::Refusal::LABELS.iter().chain(&["accepted", "staged", "other"]) {
            self.proposals.with_label_values(&[outcome]);
            self.stagings.with_label_values(&[outcome]);
        }
        for verdict in ["passed", "failed", "missed"] {
            self.proof_verdicts.with_label_values(&[verdict]);
        }
        for outcome in REPAIR_FAILURES.iter().chain(&["received", "completed"]) {
            self.repair_orders.with_label_values(&[outcome]);
        }
        for outcome in crate::core::repair::RepairRefusal::LABELS.iter().chain(&["opened"]) {
            self.repair_reads.with_label_values(&[outcome]);
        }
        for outcome in PROOF_SUBMISSION_OUTCOMES {
            self.proof_submissions.with_label_values(&[outcome]);
        }
        for outcome in ["completed", "aborted"] {
            self.get_seconds.with_label_values(&[outcome]);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        strand_ledger_service::metrics::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
