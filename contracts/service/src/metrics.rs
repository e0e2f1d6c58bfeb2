//! The ledger service's Prometheus metrics (`strand_ledger_*`), and the one
//! `/metrics` HTTP server every Strand process uses.
//!
//! Costs, stated: per block O(its transactions); at each epoch's first block
//! O(providers owing proofs + checks that failed or went unanswered in the
//! closed epoch + open repair orders + queued repairs); per scrape O(series).
//! Series: O(1) ledger-wide, plus four per provider holding contracts (its
//! proof epochs by outcome and the epochs since its last proof): 10,000
//! providers give 40,000 series, which one Prometheus holds easily.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use strand_contracts::apply::Receipt;
use strand_contracts::block::Block;
use strand_contracts::mempool::Mempool;
use strand_contracts::rejection::Rejection;
use strand_contracts::state::{ContractStatus, LedgerState, ProofSlot, ProofStatus};
use strand_contracts::transaction::Body;
use strand_contracts::{AccountId, Digest, Outcome, Transaction};

/// Reasons a submission may be refused before it reaches the mempool or by
/// it, besides a [`Rejection`]'s own.
pub const SUBMISSION_REASONS: [&str; 3] = ["nonce_taken", "mempool_full", "busy"];

/// Health of an upload, from its lost contracts against its parity (a
/// contract holds at most one fragment of each stripe, so an upload's lost
/// contracts bound what any of its stripes lost).
pub const UPLOAD_HEALTH: [&str; 4] = ["healthy", "degraded", "at_risk", "beyond_parity"];

/// Every metric the ledger service exports.
#[derive(Clone)]
pub struct LedgerMetrics {
    registry: Registry,
    height: IntGauge,
    epoch: IntGauge,
    last_block_timestamp: Gauge,
    block_interval: Histogram,
    block_transactions: Histogram,
    block_bytes: Histogram,
    transactions: IntCounterVec,
    rejected: IntCounterVec,
    submissions_refused: IntCounterVec,
    mempool_transactions: IntGauge,
    mempool_bytes: IntGauge,
    contracts: IntGaugeVec,
    uploads: IntGaugeVec,
    providers: IntGaugeVec,
    provider_epochs: IntCounterVec,
    provider_epochs_since_proof: IntGaugeVec,
    repair_orders_open: IntGauge,
    repair_queued: IntGauge,
    repair_retried: IntGauge,
    repair_orders: IntCounterVec,
    repair_seconds: Histogram,
}

/// What the metrics remember between blocks: the epoch last closed, and
/// when each open repair order was first seen.
#[derive(Default)]
pub struct Observer {
    /// The last epoch whose proofs were counted.
    counted_epoch: Option<u64>,
    /// Open orders: when first seen, and whether reported.
    orders: HashMap<Digest, (Instant, bool)>,
    /// The previous block's timestamp.
    last_timestamp_ms: Option<u64>,
}

impl Observer {
    /// An observer starting after a block stamped `timestamp_ms` (the head
    /// at start).
    pub fn after(timestamp_ms: u64) -> Self {
        Self { last_timestamp_ms: Some(timestamp_ms), ..Self::default() }
    }
}

impl LedgerMetrics {
    /// A fresh set in its own registry, every labelled family shown from
    /// the start with each of its known labels at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let register = |collector: Box<dyn prometheus::core::Collector>| {
            registry.register(collector).expect("each metric is registered once");
        };
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("valid metric name");
            register(Box::new(gauge.clone()));
            gauge
        };
        let gauges = |name: &str, help: &str, label: &str| {
            let gauge = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric name");
            register(Box::new(gauge.clone()));
            gauge
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name");
            register(Box::new(counter.clone()));
            counter
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let histogram =
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric");
            register(Box::new(histogram.clone()));
            histogram
        };
        let last_block_timestamp = Gauge::new(
            "strand_ledger_last_block_timestamp_seconds",
            "Unix time of the last finalised block, as its proposer stamped it",
        )
        .expect("valid metric name");
        register(Box::new(last_block_timestamp.clone()));
        let metrics = Self {
            height: gauge("strand_ledger_height", "Height of the last finalised block"),
            epoch: gauge("strand_ledger_epoch", "The current epoch"),
            last_block_timestamp,
            block_interval: histogram(
                "strand_ledger_block_interval_seconds",
                "Time between consecutive blocks' timestamps",
                vec![0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0],
            ),
            block_transactions: histogram(
                "strand_ledger_block_transactions",
                "Transactions per block",
                vec![0.0, 1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0],
            ),
            block_bytes: histogram(
                "strand_ledger_block_bytes",
                "Bytes of transactions per block",
                vec![0.0, 1024.0, 16384.0, 131072.0, 1048576.0, 4194304.0, 8388608.0],
            ),
            transactions: counters(
                "strand_ledger_transactions_total",
                "Transactions finalised, by kind and outcome (accepted, rejected)",
                &["kind", "outcome"],
            ),
            rejected: counters(
                "strand_ledger_transactions_rejected_total",
                "Transactions finalised with a rejection receipt, by reason",
                &["reason"],
            ),
            submissions_refused: counters(
                "strand_ledger_submissions_refused_total",
                "Submissions refused before ordering (not acknowledged), by reason",
                &["reason"],
            ),
            mempool_transactions: gauge("strand_ledger_mempool_transactions", "Transactions waiting to be ordered"),
            mempool_bytes: gauge("strand_ledger_mempool_bytes", "Bytes of transactions waiting to be ordered"),
            contracts: gauges("strand_ledger_contracts", "Storage contracts by status", "status"),
            uploads: gauges(
                "strand_ledger_uploads",
                "Uploads by health: healthy; degraded (lost contracts below parity); at_risk (as many lost as \
                 parity: one more loss in a stripe makes it unrecoverable); beyond_parity",
                "health",
            ),
            providers: gauges(
                "strand_ledger_providers",
                "Registered providers by state (active, draining, unresponsive)",
                "state",
            ),
            provider_epochs: counters(
                "strand_ledger_provider_proof_epochs_total",
                "Closed epochs in which a provider owed proofs, by provider and outcome (passed: every check \
                 verified; failed: a check failed; missed: no submission)",
                &["provider", "outcome"],
            ),
            provider_epochs_since_proof: gauges(
                "strand_ledger_provider_epochs_since_proof",
                "Closed epochs since the provider last submitted proofs (0: it submitted for the last one)",
                "provider",
            ),
            repair_orders_open: gauge("strand_ledger_repair_orders_open", "Repair orders open"),
            repair_queued: gauge("strand_ledger_repair_queued_contracts", "Contracts waiting for a repair order"),
            repair_retried: gauge(
                "strand_ledger_repair_retried_contracts",
                "Contracts in repair whose earlier order ran past its deadline unreported",
            ),
            repair_orders: counters(
                "strand_ledger_repair_orders_total",
                "Repair orders ended, by outcome (completed, expired)",
                &["outcome"],
            ),
            repair_seconds: histogram(
                "strand_ledger_repair_seconds",
                "Time from a repair order's issue to the contract's move to its repairer, as this service saw it",
                vec![5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0],
            ),
            registry,
        };
        for kind in Body::KINDS.iter().chain(&["invalid"]) {
            for outcome in ["accepted", "rejected"] {
                metrics.transactions.with_label_values(&[kind, outcome]);
            }
        }
        for reason in Rejection::LABELS {
            metrics.rejected.with_label_values(&[reason]);
            metrics.submissions_refused.with_label_values(&[reason]);
        }
        for reason in SUBMISSION_REASONS {
            metrics.submissions_refused.with_label_values(&[reason]);
        }
        for outcome in ["completed", "expired"] {
            metrics.repair_orders.with_label_values(&[outcome]);
        }
        metrics
    }

    /// Counts a submission refused before ordering.
    pub fn refused(&self, reason: &str) {
        self.submissions_refused.with_label_values(&[reason]).inc();
    }

    /// Sets the mempool's depth.
    pub fn mempool(&self, mempool: &Mempool) {
        self.mempool_transactions.set(mempool.len() as i64);
        self.mempool_bytes.set(i64::try_from(mempool.bytes()).unwrap_or(i64::MAX));
    }

    /// Records a finalised block: its size and receipts, and the state after
    /// it (ledger-wide counts every block; proofs and repairs once an epoch).
    pub fn block(&self, observer: &mut Observer, block: &Block, receipts: &[Receipt], state: &LedgerState) {
        let timestamp_ms = block.header.timestamp_ms;
        if let Some(previous) = observer.last_timestamp_ms {
            self.block_interval.observe(timestamp_ms.saturating_sub(previous) as f64 / 1000.0);
        }
        observer.last_timestamp_ms = Some(timestamp_ms);
        self.block_transactions.observe(block.transactions.len() as f64);
        self.block_bytes.observe(block.transactions.iter().map(Vec::len).sum::<usize>() as f64);
        for (bytes, receipt) in block.transactions.iter().zip(receipts) {
            let kind = Transaction::kind_of(bytes);
            match &receipt.outcome {
                Outcome::Accepted => self.transactions.with_label_values(&[kind, "accepted"]).inc(),
                Outcome::Rejected(rejection) => {
                    self.transactions.with_label_values(&[kind, "rejected"]).inc();
                    self.rejected.with_label_values(&[rejection.label()]).inc();
                }
            }
        }
        self.state(observer, state);
    }

    /// Sets the gauges read off `state` (at start, and after every block).
    pub fn state(&self, observer: &mut Observer, state: &LedgerState) {
        self.height.set(i64::try_from(state.height).unwrap_or(i64::MAX));
        self.epoch.set(i64::try_from(state.epoch()).unwrap_or(i64::MAX));
        if let Some(timestamp_ms) = observer.last_timestamp_ms {
            self.last_block_timestamp.set(timestamp_ms as f64 / 1000.0);
        }
        for (name, count) in ContractStatus::NAMES.iter().zip(state.contracts_by_status()) {
            self.contracts.with_label_values(&[name]).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.repair_orders_open.set(state.repair_orders.len() as i64);
        self.repair_queued.set(state.repair_queue.len() as i64);
        self.repairs_ended(observer, state);
        let epoch = state.epoch();
        let closed = epoch.checked_sub(1);
        if closed.is_some() && observer.counted_epoch != closed {
            // Once an epoch, at its first block (or at start): the closed
            // epoch's proofs are final, repairs moved, contracts declared lost.
            self.epoch_closed(state, closed.unwrap_or_default(), observer.counted_epoch.is_none());
            observer.counted_epoch = closed;
        }
    }

    /// Orders that left the ledger since the last block: completed (reported,
    /// then moved) or expired; the time to repair of the completed.
    fn repairs_ended(&self, observer: &mut Observer, state: &LedgerState) {
        let now = Instant::now();
        observer.orders.retain(|order, (seen, reported)| {
            if state.repair_orders.contains(order) {
                return true;
            }
            if *reported {
                self.repair_orders.with_label_values(&["completed"]).inc();
                self.repair_seconds.observe(now.duration_since(*seen).as_secs_f64());
            } else {
                self.repair_orders.with_label_values(&["expired"]).inc();
            }
            false
        });
        // New orders appear only at an epoch's first block, reports any
        // time: O(open orders) per block, which the ledger bounds per epoch.
        for (id, order) in state.repair_orders.iter() {
            let entry = observer.orders.entry(*id).or_insert((now, false));
            entry.1 = order.reported;
        }
    }

    /// Counts the closed epoch's proofs by provider, providers by state,
    /// uploads by health and retried repairs. `first`: the
    /// service just started, so the per-provider counters start from the
    /// ledger's totals.
    fn epoch_closed(&self, state: &LedgerState, closed: u64, first: bool) {
        // Providers whose submission for the closed epoch had a failed check.
        let mut failed: HashSet<AccountId> = HashSet::new();
        for ((_, contract), record) in state.proofs.range((closed, Digest([0; 32]))..=(closed, Digest([0xff; 32]))) {
            if matches!(record.status, ProofStatus::Failed(_))
                && let Some(contract) = state.contracts.get(contract)
            {
                failed.insert(contract.holder);
            }
        }
        let mut states: BTreeMap<&str, i64> = [("active", 0), ("draining", 0), ("unresponsive", 0)].into();
        for (account, provider) in state.providers.iter() {
            let kind = if provider.liveness.unresponsive_since.is_some() {
                "unresponsive"
            } else if provider.draining_since.is_some() {
                "draining"
            } else {
                "active"
            };
            *states.entry(kind).or_default() += 1;
            let label = hex::encode(account.0);
            let Some(last) = provider.liveness.last_closed_epoch else { continue };
            if first {
                // Start from the ledger's own totals (failures are not
                // totalled there: counted from now on).
                let submitted = provider.liveness.submitted_epochs;
                self.provider_epochs.with_label_values(&[&label, "passed"]).inc_by(submitted);
                self.provider_epochs.with_label_values(&[&label, "failed"]).inc_by(0);
                self.provider_epochs.with_label_values(&[&label, "missed"]).inc_by(provider.liveness.missed_epochs);
            } else if last == closed {
                let outcome = match state.proof_slots.get(&(closed, *account)) {
                    Some(ProofSlot::Submitted(_)) if failed.contains(account) => "failed",
                    Some(ProofSlot::Submitted(_)) => "passed",
                    _ => "missed",
                };
                // Every outcome shown, at zero until it happens.
                for known in ["passed", "failed", "missed"] {
                    let counter = self.provider_epochs.with_label_values(&[&label, known]);
                    if known == outcome {
                        counter.inc();
                    }
                }
            }
            if last == closed {
                // It owed proofs for the closed epoch: its run of misses.
                let since = i64::from(provider.liveness.missed_in_row);
                self.provider_epochs_since_proof.with_label_values(&[&label]).set(since);
            } else {
                // It owed none (no contracts at the close): its silence is
                // no news, so no series (a provider whose first contract
                // just arrived is not "behind"); its counters stay.
                let _ = self.provider_epochs_since_proof.remove_label_values(&[&label]);
            }
        }
        for (name, count) in states {
            self.providers.with_label_values(&[name]).set(count);
        }
        self.upload_health(state);
        let retried = state
            .repair_orders
            .iter()
            .filter(|(_, order)| order.attempt > 0)
            .count()
            + state
                .repair_queue
                .iter()
                .filter(|((_, _, contract), _)| {
                    state.contracts.get(contract).is_some_and(|contract| {
                        matches!(contract.repair, strand_contracts::state::RepairState::Queued { attempt, .. } if attempt > 0)
                    })
                })
                .count();
        self.repair_retried.set(retried as i64);
    }

    /// Uploads by health: only uploads with contracts in repair are looked
    /// at (O(repair work)); every other upload is healthy.
    fn upload_health(&self, state: &LedgerState) {
        let mut repairing: HashSet<strand_contracts::types::UploadKey> =
            state.repair_queue.iter().map(|((upload, _, _), _)| *upload).collect();
        repairing.extend(state.repair_orders.iter().map(|(_, order)| order.upload));
        let mut counts: BTreeMap<&str, i64> = UPLOAD_HEALTH.iter().map(|name| (*name, 0)).collect();
        for key in &repairing {
            let Some(upload) = state.uploads.get(key) else { continue };
            let parity = upload
                .contracts
                .first()
                .and_then(|contract| state.contracts.get(contract))
                .map_or(0, |contract| u32::from(contract.terms.parity_shards));
            let health = match upload.lost {
                0 => "healthy",
                lost if lost < parity => "degraded",
                lost if lost == parity => "at_risk",
                _ => "beyond_parity",
            };
            *counts.entry(health).or_default() += 1;
        }
        let unhealthy: i64 = counts.iter().filter(|(name, _)| **name != "healthy").map(|(_, count)| count).sum();
        counts.insert("healthy", state.uploads.len() as i64 - unhealthy);
        for (name, count) in counts {
            self.uploads.with_label_values(&[name]).set(count);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

impl Default for LedgerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        tracing::error!(%error, "metrics.render failed");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// Serves `GET /metrics` with what `render` returns, until the listener
/// fails.
pub async fn serve(listener: tokio::net::TcpListener, render: impl Fn() -> String + Clone + Send + Sync + 'static) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = render.clone();
            async move { render() }
        }),
    );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "metrics.server stopped");
    }
}
