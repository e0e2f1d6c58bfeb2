//! What a run measured, as JSON (`--json`) or text. Everything in it comes
//! from the seeded run, so a seed gives a byte-identical report.

use serde::Serialize;

/// Percentiles of a list of epoch counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Distribution {
    /// How many.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Distribution {
    /// Of `values` (sorted in place).
    pub fn of(values: &mut [u64]) -> Self {
        values.sort_unstable();
        let at = |q: f64| {
            let last = values.len().saturating_sub(1);
            values.get(((last as f64) * q).round() as usize).copied().unwrap_or(0)
        };
        Self { count: values.len() as u64, p50: at(0.5), p99: at(0.99), max: values.last().copied().unwrap_or(0) }
    }
}

/// The ledger's load over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LedgerLoad {
    /// Blocks made.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// Most transactions in one block.
    pub max_transactions_per_block: u64,
    /// Mean encoded block size.
    pub mean_block_bytes: u64,
    /// Largest encoded block.
    pub max_block_bytes: u64,
    /// The state's snapshot at the end.
    pub state_bytes: u64,
}

/// The network at the start of one epoch (a row of `timeline.csv`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// The epoch.
    pub epoch: u64,
    /// Nodes answering.
    pub nodes_up: u64,
    /// Nodes in an outage.
    pub nodes_down: u64,
    /// Nodes gone for good.
    pub nodes_gone: u64,
    /// Contracts active on the ledger.
    pub contracts_active: u64,
    /// Contracts lost on the ledger.
    pub contracts_lost: u64,
    /// Repair orders open.
    pub repair_orders_open: u64,
    /// Contracts waiting for an order.
    pub repair_queued: u64,
    /// Stripes with all k+m fragments on answering nodes.
    pub stripes_whole: u64,
    /// Stripes with k to k+m-1.
    pub stripes_degraded: u64,
    /// Stripes with fewer than k answering, but k kept.
    pub stripes_unavailable: u64,
    /// Stripes lost so far.
    pub stripes_lost: u64,
    /// Sibling bytes read by repair so far.
    pub repair_read_bytes: u64,
    /// Bytes rebuilt and written by repair so far.
    pub repair_written_bytes: u64,
}

impl Sample {
    /// The CSV header.
    pub const HEADER: &'static str = "epoch,nodes_up,nodes_down,nodes_gone,contracts_active,contracts_lost,\
repair_orders_open,repair_queued,stripes_whole,stripes_degraded,stripes_unavailable,stripes_lost,\
repair_read_bytes,repair_written_bytes";

    /// One CSV row.
    pub fn row(&self) -> String {
        [
            self.epoch,
            self.nodes_up,
            self.nodes_down,
            self.nodes_gone,
            self.contracts_active,
            self.contracts_lost,
            self.repair_orders_open,
            self.repair_queued,
            self.stripes_whole,
            self.stripes_degraded,
            self.stripes_unavailable,
            self.stripes_lost,
            self.repair_read_bytes,
            self.repair_written_bytes,
        ]
        .map(|value| value.to_string())
        .join(",")
    }
}

/// Proof detection against the policy's formula, over the deleting
/// providers' first proof epoch: how often their challenges missed every
/// deleted chunk, and how often `∏ (1 − f)` says they should (in parts per
/// million, so reports compare exactly).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DetectionCheck {
    /// Providers sampled.
    pub samples: u64,
    /// Those whose challenges missed every deleted chunk.
    pub undetected: u64,
    /// The formula's expected count of those, × 10⁶.
    pub expected_undetected_ppm: u64,
}

impl DetectionCheck {
    /// From `(predicted chance of going undetected, went undetected)`.
    pub fn of(samples: &[(f64, bool)]) -> Self {
        let expected: f64 = samples.iter().map(|(predicted, _)| predicted).sum();
        Self {
            samples: samples.len() as u64,
            undetected: samples.iter().filter(|(_, clean)| *clean).count() as u64,
            expected_undetected_ppm: (expected * 1e6).round() as u64,
        }
    }
}

/// Repair reads as the nodes' gates decided them, and the lying
/// providers' traces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GateReport {
    /// Fragments released to repairers.
    pub releases: u64,
    /// Refusals, by the gate's reason.
    pub refusals: std::collections::BTreeMap<String, u64>,
    /// Siblings accused of serving bad bytes (`ReportBadSibling`).
    pub bad_siblings_reported: u64,
    /// Proof answers that reached the ledger after their epoch.
    pub late_answers: u64,
    /// Proof submissions the nodes' submissions core saw final without
    /// their epoch recorded (the late ones, refused).
    pub proofs_rejected: u64,
    /// Bytes released (to repairers, owners and grantees) and receipted by
    /// the holders' receipts core (checked against the ledger's record of
    /// who read what at the end).
    pub receipted_bytes: u64,
    /// Of those, bytes whose batch was too late for the ledger.
    pub receipts_too_late_bytes: u64,
}

/// Uploads as the nodes' proposal core decided them, and what their
/// retention released (ledger engine).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProposalReport {
    /// Proposals answered, by outcome: `accepted`, the node's refusal label
    /// (`no_capacity`, `busy`, ...), or `unreachable` (a node not answering).
    pub outcomes: std::collections::BTreeMap<String, u64>,
    /// Uploads that failed because a provider refused or did not answer
    /// (the client gives up the upload, as the real one does).
    pub uploads_failed: u64,
    /// Agreements the nodes let go of by their retention rule (ended,
    /// moved away, or signed and never opened).
    pub agreements_released: u64,
    /// Staging reservations the nodes let go of after they sat idle (an
    /// upload that failed after staging).
    pub reservations_expired: u64,
    /// Bytes the nodes committed at most, as a share of their capacity
    /// (parts per million of the fullest node).
    pub fullest_node_ppm: u64,
}

/// Credentials granted, revoked and read under (ledger engine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CredentialReport {
    /// Whole-upload credentials granted.
    pub granted: u64,
    /// Of those, revoked by their owner.
    pub revoked: u64,
    /// Reads by grantees while their credential held.
    pub reads: u64,
    /// Of those, rebuilt from parity somewhere.
    pub reads_degraded: u64,
    /// Of those, failed (a stripe below k answering).
    pub reads_failed: u64,
    /// Reads by grantees after their credential was revoked or expired:
    /// every one must fail.
    pub reads_after_end: u64,
    /// Fragments the gates released to grantees.
    pub releases: u64,
}

/// A run's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// `ledger` or `model`.
    pub engine: String,
    /// The seed.
    pub seed: u64,
    /// Nodes at the start.
    pub nodes: u64,
    /// Epochs run.
    pub epochs: u64,
    /// Contracts on the ledger at the end.
    pub contracts: u64,
    /// Stripes uploaded.
    pub stripes: u64,
    /// Data bytes stored (stripes × k × fragment size; before parity).
    pub stored_bytes: u64,
    /// Nodes gone for good.
    pub nodes_lost: u64,
    /// Transient outages.
    pub outages: u64,
    /// Stripes that fell below k fragments on answering nodes (data lost).
    pub stripes_lost: u64,
    /// Uploads with a lost stripe.
    pub uploads_lost: u64,
    /// Epochs × stripes with fewer than k fragments on answering nodes
    /// (unreadable then, not lost: an outage ended).
    pub stripe_epochs_unavailable: u64,
    /// Times the ledger declared a contract lost.
    pub contracts_declared_lost: u64,
    /// Contracts moved to a new holder by repair.
    pub repairs: u64,
    /// Contracts lost at the end that hold a fragment of a lost stripe:
    /// the node's repair cannot rebuild them (their terms commit to every
    /// fragment, and that stripe has fewer than k), so their other
    /// fragments stay unrepaired too.
    pub contracts_unrepairable: u64,
    /// Sibling bytes read by repairers.
    pub repair_read_bytes: u64,
    /// Bytes rebuilt and stored.
    pub repair_written_bytes: u64,
    /// Epochs from a node leaving to its contracts declared lost.
    pub detection_epochs: Distribution,
    /// Epochs from a contract declared lost to its move (lazy repair: from
    /// its holder leaving, as nothing is declared until the threshold).
    pub time_to_repair_epochs: Distribution,
    /// Ledger load.
    pub ledger: LedgerLoad,
    /// Transactions the ledger rejected, by reason.
    pub ledger_rejections: std::collections::BTreeMap<String, u64>,
    /// Proof detection against the formula (deleting scenarios).
    pub detection_check: DetectionCheck,
    /// Repair reads at the nodes' gates (ledger engine).
    pub gate: GateReport,
    /// Proposals, failed uploads and retention (ledger engine).
    pub proposals: ProposalReport,
    /// Credentials and grantees' reads (ledger engine).
    pub credentials: CredentialReport,
    /// Simulated milliseconds per read, owners' and grantees' (ledger
    /// engine: link latency and bandwidth, the client's hedging; one
    /// fetch at a time).
    pub read_ms: Distribution,
    /// Reads of random uploads during the faults (model engine,
    /// `downloads_per_epoch`).
    pub downloads: u64,
    /// Those that found a stripe with fewer than k fragments on live
    /// holders.
    pub downloads_failed: u64,
    /// Those that read a stripe missing fragments (rebuilt from parity).
    pub downloads_degraded: u64,
    /// Invariants that failed (empty in a good run).
    pub violations: Vec<String>,
    /// Epoch by epoch (written as `timeline.csv` under `--out`).
    #[serde(skip)]
    pub timeline: Vec<Sample>,
}

impl Report {
    /// The timeline as CSV, a header then one row per epoch.
    pub fn timeline_csv(&self) -> String {
        let mut out = String::from(Sample::HEADER);
        out.push('\n');
        for sample in &self.timeline {
            out.push_str(&sample.row());
            out.push('\n');
        }
        out
    }

    /// Repair traffic (bytes read and written) per byte of data stored,
    /// over the whole run.
    pub fn repair_traffic_per_byte_stored(&self) -> f64 {
        (self.repair_read_bytes + self.repair_written_bytes) as f64 / self.stored_bytes.max(1) as f64
    }

    /// The text form.
    pub fn text(&self) -> String {
        let ratio = if self.repair_written_bytes == 0 {
            "-".to_string()
        } else {
            format!("{:.2}", self.repair_read_bytes as f64 / self.repair_written_bytes as f64)
        };
        let refusals: Vec<String> =
            self.gate.refusals.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
        let gate = format!(
            "gate         {} repair reads released ({} B of reads receipted, {} B too late), refused: {}; \
             {} bad siblings reported, {} late answers ({} proof submissions refused)\n",
            self.gate.releases,
            self.gate.receipted_bytes,
            self.gate.receipts_too_late_bytes,
            if refusals.is_empty() { "none".to_string() } else { refusals.join(", ") },
            self.gate.bad_siblings_reported,
            self.gate.late_answers,
            self.gate.proofs_rejected,
        );
        let outcomes: Vec<String> =
            self.proposals.outcomes.iter().map(|(outcome, count)| format!("{count} {outcome}")).collect();
        let proposals = if self.engine == "model" {
            String::new()
        } else {
            format!(
                "proposals    {}; {} uploads failed; {} agreements released, {} idle reservations expired; \
                 fullest node {:.1} % of its capacity\n",
                if outcomes.is_empty() { "none".to_string() } else { outcomes.join(", ") },
                self.proposals.uploads_failed,
                self.proposals.agreements_released,
                self.proposals.reservations_expired,
                self.proposals.fullest_node_ppm as f64 / 1e4,
            )
        };
        let credentials = if self.credentials.granted == 0 {
            String::new()
        } else {
            let c = &self.credentials;
            format!(
                "credentials  {} granted, {} revoked; grantees read {} times ({} degraded, {} failed), \
                 {} reads after the credential ended; {} fragments released to grantees\n",
                c.granted, c.revoked, c.reads, c.reads_degraded, c.reads_failed, c.reads_after_end, c.releases
            )
        };
        let ledger = if self.engine == "model" {
            "ledger       not run (model engine: its detection and repair delays are parameters)\n".to_string()
        } else {
            format!(
                "ledger       {} blocks, {} transactions (max {} per block), blocks {} B mean {} B max, state {} B; \
                 rejected: {}\n",
                self.ledger.blocks,
                self.ledger.transactions,
                self.ledger.max_transactions_per_block,
                self.ledger.mean_block_bytes,
                self.ledger.max_block_bytes,
                self.ledger.state_bytes,
                if self.ledger_rejections.is_empty() {
                    "none".to_string()
                } else {
                    self.ledger_rejections
                        .iter()
                        .map(|(reason, count)| format!("{count} {reason}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            )
        };
        let mut out = format!(
            "scenario {} ({} engine) seed {}: {} nodes, {} epochs, {} stripes, {} contracts, {} B of data\n\
             faults       {} nodes lost, {} outages\n\
             durability   {} stripes lost ({} uploads); {} stripe-epochs unavailable; {} of {} downloads failed, {} degraded; \
             reads p50 {} ms p99 {} ms\n\
             detection    {} contracts declared lost; node gone -> lost: p50 {} p99 {} max {} epochs\n\
             repair       {} moved, {} unrepairable; lost -> moved: p50 {} p99 {} max {} epochs; {} B read for {} B rebuilt ({ratio} x); \
             traffic {:.4} B per B stored\n{proposals}{credentials}{gate}{ledger}",
            self.scenario,
            self.engine,
            self.seed,
            self.nodes,
            self.epochs,
            self.stripes,
            self.contracts,
            self.stored_bytes,
            self.nodes_lost,
            self.outages,
            self.stripes_lost,
            self.uploads_lost,
            self.stripe_epochs_unavailable,
            self.downloads_failed,
            self.downloads,
            self.downloads_degraded,
            self.read_ms.p50,
            self.read_ms.p99,
            self.contracts_declared_lost,
            self.detection_epochs.p50,
            self.detection_epochs.p99,
            self.detection_epochs.max,
            self.repairs,
            self.contracts_unrepairable,
            self.time_to_repair_epochs.p50,
            self.time_to_repair_epochs.p99,
            self.time_to_repair_epochs.max,
            self.repair_read_bytes,
            self.repair_written_bytes,
            self.repair_traffic_per_byte_stored(),
        );
        if self.violations.is_empty() {
            out.push_str("invariants   all held\n");
        } else {
            for violation in &self.violations {
                out.push_str(&format!("VIOLATION    {violation}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_list() {
        let mut values = vec![5, 1, 3, 2, 4];
        assert_eq!(Distribution::of(&mut values), Distribution { count: 5, p50: 3, p99: 5, max: 5 });
        assert_eq!(Distribution::of(&mut []), Distribution::default());
    }
}
