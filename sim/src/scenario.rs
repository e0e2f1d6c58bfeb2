//! What a simulation runs: the network, the data, the faults and how long,
//! read from a commented TOML file (`sim/scenarios/`).

use serde::Deserialize;

/// Which simulation runs a scenario.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The real ledger state machine, real fragment bytes and proofs, the
    /// node's repair core ([`crate::world`]): the protocol under faults, up
    /// to thousands of nodes and epochs.
    #[default]
    Ledger,
    /// Fragments by id and size, node lifetimes, the ledger's detection and
    /// repair delays as parameters ([`crate::model`]): durability and repair
    /// cost at the scale of years, 10,000s of nodes and 100,000s of uploads.
    Model,
}

/// When lost fragments are rebuilt.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RepairPolicy {
    /// The ledger's rule: every contract declared lost is ordered repaired.
    #[default]
    Eager,
    /// A stripe is rebuilt, all its missing fragments at once, when only
    /// `repair_threshold` fragments are left (Giroire et al.'s lazy repair;
    /// model engine, one stripe per upload).
    Lazy,
    /// Never (durability under churn alone).
    None,
}

/// A scenario. Every field has a default, so a file names only what it
/// changes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports.
    pub name: String,
    /// `"ledger"` (default) or `"model"`.
    pub engine: Engine,
    /// `"eager"` (default, the ledger's rule), `"lazy"` or `"none"`.
    pub repair: RepairPolicy,
    /// Lazy repair: fragments left when a stripe is rebuilt (k ≤ this < k+m).
    pub repair_threshold: Option<u16>,
    /// Epochs in a month, for the per-month rates (720: hourly epochs).
    pub epochs_per_month: u32,
    /// Probability per node and month of leaving for good; replaces
    /// `permanent_loss_per_epoch` when given.
    pub permanent_loss_per_month: Option<f64>,
    /// Model engine: a node joins for every node lost, so the network keeps
    /// its size (churn rather than decline).
    pub replace_lost_nodes: bool,
    /// Model engine: uploads have `stripes ..= stripes_max` stripes,
    /// uniformly (sizes from a distribution); `stripes` each when absent.
    pub stripes_max: Option<u32>,
    /// Uploads arrive at epochs drawn uniformly from 1 to this (load over
    /// time) instead of all at the start. In the ledger engine at most
    /// `fault_epochs`: each is placed on what the ledger says is free then
    /// and proposed to the nodes' real proposal core.
    pub uploads_over_epochs: Option<u64>,
    /// Reads of random uploads by their owners each epoch of the faults (a
    /// read fails if a stripe has fewer than k fragments on live holders).
    /// In the ledger engine each is the client's real decoder fetching
    /// from the holders the ledger names now, every fetch decided by the
    /// holder's real gate, the bytes checked against the file's hash.
    pub downloads_per_epoch: u32,
    /// Storage nodes.
    pub nodes: u32,
    /// Organisations the nodes belong to (node `i` is in organisation
    /// `i mod organisations`): the failure domains placement and repair
    /// spread over.
    pub organisations: u32,
    /// Blocks per epoch.
    pub epoch_blocks: u64,
    /// Simulated milliseconds per block.
    pub block_ms: u64,
    /// Epochs with faults, then `liveness_epochs` without: the network must
    /// converge (every contract active on a live holder) by the end.
    pub fault_epochs: u64,
    /// Epochs without faults at the end.
    pub liveness_epochs: u64,
    /// Uploads, all made at the start unless `uploads_over_epochs`.
    pub uploads: u32,
    /// Stripes per upload.
    pub stripes: u32,
    /// k.
    pub data_shards: u16,
    /// m.
    pub parity_shards: u16,
    /// Data bytes per fragment: the client's chunk size (ledger engine: a
    /// power of two from 1 KiB, encoded by the client's real encoder, each
    /// fragment 16 bytes longer for its authentication tag).
    pub fragment_bytes: u32,
    /// Challenges per contract and epoch in the terms.
    pub challenges_per_epoch: u16,
    /// Failed or missed epochs before a contract is lost.
    pub strikes_max: u16,
    /// Probability per node and epoch of leaving for good (silently).
    pub permanent_loss_per_epoch: f64,
    /// Probability per node and epoch of going offline for a while.
    pub transient_loss_per_epoch: f64,
    /// Epochs a transient outage lasts (1 ..= this, uniform).
    pub transient_epochs_max: u64,
    /// A whole organisation lost at once: `[epoch, organisation]`.
    pub organisation_lost: Option<(u64, u32)>,
    /// An organisation cut off from the rest of the network (the ledger
    /// and the other nodes) and back: `[epoch, epochs, organisation]`. Its
    /// nodes keep their data but answer nobody while it lasts.
    pub partition: Option<(u64, u64, u32)>,
    /// Nodes (the first ones) that silently delete a fraction of what they
    /// hold at the start of the faults: `[nodes, fraction]`.
    pub deleting: Option<(u32, f64)>,
    /// Ledger engine: bytes each node offers (registered on the ledger and
    /// enforced by its proposal core).
    pub node_capacity_bytes: u64,
    /// Bytes per simulated second a node moves (repair reads and writes,
    /// fragments it serves).
    pub node_bandwidth_bytes_per_s: u64,
    /// Ledger engine: each node's link latency, drawn uniformly from
    /// `[min, max]` milliseconds.
    pub link_latency_ms: (u64, u64),
    /// Nodes (by index) with slow links: `slow_bytes_per_s` instead of
    /// `node_bandwidth_bytes_per_s`. Readers must not wait on them (the
    /// client's hedge and ranking).
    pub slow: Vec<u32>,
    /// See `slow`.
    pub slow_bytes_per_s: u64,
    /// Nodes (by index) that serve bad bytes to repairers while keeping
    /// good ones to prove with: a liar the repairer must catch, accuse and
    /// route around.
    pub lying: Vec<u32>,
    /// Nodes (by index) that answer their proofs after the epoch ended with
    /// probability `late_probability` each epoch (the ledger refuses a late
    /// answer: a missed epoch).
    pub late: Vec<u32>,
    /// See `late`.
    pub late_probability: f64,
    /// Nodes (by index) whose disks silently corrupt a byte in
    /// `corrupt_fraction` of their fragments at the start of the faults.
    pub corrupt_disks: Vec<u32>,
    /// See `corrupt_disks`.
    pub corrupt_fraction: f64,
    /// Reads per epoch by peers with no order (a random key, or a provider
    /// naming someone else's order): the node's gate must refuse them all.
    pub stranger_reads_per_epoch: u32,
    /// Ledger engine: whole-upload credentials owners grant each epoch of
    /// the faults, each to a new researcher, who presents it to the
    /// holders and reads the upload with the client's decoder every epoch
    /// until one epoch after it ends.
    pub grants_per_epoch: u32,
    /// Epochs a credential is valid for.
    pub grant_epochs: u64,
    /// Probability that the owner revokes a credential the epoch after
    /// granting it.
    pub revoke_probability: f64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "default".into(),
            engine: Engine::Ledger,
            repair: RepairPolicy::Eager,
            repair_threshold: None,
            epochs_per_month: 720,
            permanent_loss_per_month: None,
            replace_lost_nodes: false,
            stripes_max: None,
            uploads_over_epochs: None,
            downloads_per_epoch: 0,
            nodes: 12,
            organisations: 4,
            epoch_blocks: 4,
            block_ms: 1_000,
            fault_epochs: 20,
            liveness_epochs: 16,
            uploads: 4,
            stripes: 2,
            data_shards: 4,
            parity_shards: 2,
            fragment_bytes: 4_096,
            challenges_per_epoch: 4,
            strikes_max: 3,
            permanent_loss_per_epoch: 0.01,
            transient_loss_per_epoch: 0.0,
            transient_epochs_max: 2,
            organisation_lost: None,
            partition: None,
            deleting: None,
            node_capacity_bytes: 1 << 40,
            node_bandwidth_bytes_per_s: 10_000_000,
            link_latency_ms: (5, 50),
            slow: Vec::new(),
            slow_bytes_per_s: 20_000,
            lying: Vec::new(),
            late: Vec::new(),
            late_probability: 0.0,
            corrupt_disks: Vec::new(),
            corrupt_fraction: 0.0,
            stranger_reads_per_epoch: 0,
            grants_per_epoch: 0,
            grant_epochs: 3,
            revoke_probability: 0.0,
        }
    }
}

/// A scenario that cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScenarioError {
    /// A field out of its range.
    #[error("scenario field `{field}`: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Not TOML, or unknown fields.
    #[error("the scenario does not parse: {0}")]
    Parse(String),
}

impl Scenario {
    /// Parses and checks a scenario file's text.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = toml::from_str(text).map_err(|error| ScenarioError::Parse(error.to_string()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// The probability per node and epoch of leaving for good.
    pub fn loss_per_epoch(&self) -> f64 {
        match self.permanent_loss_per_month {
            Some(month) => 1.0 - (1.0 - month).powf(1.0 / f64::from(self.epochs_per_month.max(1))),
            None => self.permanent_loss_per_epoch,
        }
    }

    /// Checks every field's range.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let field = |field, reason: &str| Err(ScenarioError::Field { field, reason: reason.into() });
        let width = u32::from(self.data_shards) + u32::from(self.parity_shards);
        let model = self.engine == Engine::Model;
        if self.data_shards == 0 || self.parity_shards == 0 {
            return field("data_shards", "k and m must both be at least 1");
        }
        if model {
            return self.check_model(width);
        }
        if self.repair != RepairPolicy::Eager || self.replace_lost_nodes || self.stripes_max.is_some() {
            return field("repair", "the ledger engine runs the ledger's eager repair, a fixed network and stripes");
        }
        if self.nodes < width || self.nodes > 10_000 {
            return field("nodes", "between k + m and 10,000");
        }
        if self.organisations == 0 || self.organisations > self.nodes {
            return field("organisations", "between 1 and the number of nodes");
        }
        if self.epoch_blocks < 2 || self.block_ms == 0 {
            return field("epoch_blocks", "at least 2 blocks per epoch of at least 1 ms");
        }
        if self.fault_epochs + self.liveness_epochs > 10_000 {
            return field("fault_epochs", "at most 10,000 epochs in all");
        }
        if self.uploads == 0 || self.stripes == 0 || u64::from(self.uploads) * u64::from(self.stripes) > 100_000 {
            return field("uploads", "at least one upload of one stripe, at most 100,000 stripes in all");
        }
        if !self.fragment_bytes.is_power_of_two() || !(1024..=1 << 20).contains(&self.fragment_bytes) {
            return field("fragment_bytes", "a power of two from 1 KiB to 1 MiB (the client's chunk size)");
        }
        if self.challenges_per_epoch == 0 || self.strikes_max == 0 {
            return field("strikes_max", "challenges and strikes must be at least 1");
        }
        if self.deleting.is_some_and(|(nodes, fraction)| nodes > self.nodes || !(0.0..=1.0).contains(&fraction)) {
            return field("deleting", "[nodes ≤ nodes, fraction from 0 to 1]");
        }
        if self.organisation_lost.is_some_and(|(_, organisation)| organisation >= self.organisations) {
            return field("organisation_lost", "an organisation index below `organisations`");
        }
        if self.partition.is_some_and(|(_, epochs, organisation)| epochs == 0 || organisation >= self.organisations) {
            return field("partition", "[epoch, epochs ≥ 1, an organisation index below `organisations`]");
        }
        if self.uploads_over_epochs.is_some_and(|epochs| epochs == 0 || epochs > self.fault_epochs) {
            return field("uploads_over_epochs", "from 1 to `fault_epochs`");
        }
        if self.node_capacity_bytes < u64::from(self.fragment_bytes) + 16 {
            return field("node_capacity_bytes", "at least one fragment");
        }
        if self.link_latency_ms.0 > self.link_latency_ms.1 || self.link_latency_ms.1 > 60_000 {
            return field("link_latency_ms", "[min, max] with min ≤ max ≤ 60,000");
        }
        if self.node_bandwidth_bytes_per_s == 0 || self.slow_bytes_per_s == 0 {
            return field("node_bandwidth_bytes_per_s", "at least 1");
        }
        for (name, nodes) in
            [("lying", &self.lying), ("late", &self.late), ("corrupt_disks", &self.corrupt_disks), ("slow", &self.slow)]
        {
            if nodes.iter().any(|&node| node >= self.nodes) {
                return field(name, "node indices below `nodes`");
            }
        }
        if self.grant_epochs == 0 {
            return field("grant_epochs", "at least 1");
        }
        for (name, p) in [
            ("late_probability", self.late_probability),
            ("corrupt_fraction", self.corrupt_fraction),
            ("revoke_probability", self.revoke_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return field(name, "a probability from 0 to 1");
            }
        }
        self.check_rates()
    }

    fn check_rates(&self) -> Result<(), ScenarioError> {
        let field = |field, reason: &str| Err(ScenarioError::Field { field, reason: reason.into() });
        for (name, p) in [
            ("permanent_loss_per_epoch", self.permanent_loss_per_epoch),
            ("transient_loss_per_epoch", self.transient_loss_per_epoch),
            ("permanent_loss_per_month", self.permanent_loss_per_month.unwrap_or(0.0)),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return field(name, "a probability from 0 to 1");
            }
        }
        if self.epochs_per_month == 0 {
            return field("epochs_per_month", "at least 1");
        }
        Ok(())
    }

    /// The model engine's ranges: larger networks, and its own policies.
    fn check_model(&self, width: u32) -> Result<(), ScenarioError> {
        let field = |field, reason: &str| Err(ScenarioError::Field { field, reason: reason.into() });
        if self.nodes < width || self.nodes > 1_000_000 {
            return field("nodes", "between k + m and 1,000,000");
        }
        if self.organisations == 0 || self.organisations > self.nodes {
            return field("organisations", "between 1 and the number of nodes");
        }
        let stripes_max = self.stripes_max.unwrap_or(self.stripes);
        if self.stripes == 0 || stripes_max < self.stripes {
            return field("stripes_max", "stripes ≥ 1 and stripes_max ≥ stripes");
        }
        if self.uploads == 0 || u64::from(self.uploads) * u64::from(stripes_max) > 20_000_000 {
            return field("uploads", "at least one, at most 20,000,000 stripes in all");
        }
        if self.fault_epochs + self.liveness_epochs > 1_000_000 {
            return field("fault_epochs", "at most 1,000,000 epochs in all");
        }
        if self.strikes_max == 0 {
            return field("strikes_max", "at least 1 (the epochs before a silent holder's contracts are lost)");
        }
        if self.transient_loss_per_epoch > 0.0
            || !self.lying.is_empty()
            || !self.late.is_empty()
            || !self.corrupt_disks.is_empty()
            || self.stranger_reads_per_epoch > 0
            || self.deleting.is_some()
            || self.partition.is_some()
            || self.organisation_lost.is_some()
        {
            return field(
                "transient_loss_per_epoch",
                "the model engine runs permanent loss only; use the ledger engine",
            );
        }
        let width16 = self.data_shards + self.parity_shards;
        match (self.repair, self.repair_threshold) {
            (RepairPolicy::Lazy, Some(threshold)) if threshold >= self.data_shards && threshold < width16 => {
                return if stripes_max == 1 {
                    self.check_rates()
                } else {
                    field("repair", "lazy repair runs on uploads of one stripe")
                };
            }
            (RepairPolicy::Lazy, _) => {
                return field("repair_threshold", "lazy repair needs k ≤ repair_threshold < k+m");
            }
            (_, Some(_)) => return field("repair_threshold", "only with repair = \"lazy\""),
            _ => {}
        }
        self.check_rates()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_name_only_what_they_change_and_bad_fields_are_named() {
        let scenario = Scenario::from_toml("name = \"x\"\nnodes = 20\n").expect("parses");
        assert_eq!((scenario.nodes, scenario.data_shards), (20, 4));
        assert!(matches!(Scenario::from_toml("nodez = 3"), Err(ScenarioError::Parse(_))));
        assert_eq!(
            Scenario::from_toml("nodes = 5"),
            Err(ScenarioError::Field { field: "nodes", reason: "between k + m and 10,000".into() })
        );
        assert!(Scenario::from_toml("permanent_loss_per_epoch = 1.5").is_err());
    }

    #[test]
    fn the_model_engine_checks_its_own_fields() {
        let model = "engine = \"model\"\nnodes = 50000\n";
        assert_eq!(Scenario::from_toml(model).map(|s| s.engine), Ok(Engine::Model));
        let field = |text: &str| match Scenario::from_toml(text) {
            Err(ScenarioError::Field { field, .. }) => field,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(field("nodes = 50000"), "nodes", "the ledger engine stops at 10,000");
        assert_eq!(field(&format!("{model}repair = \"lazy\"")), "repair_threshold");
        assert_eq!(field(&format!("{model}repair = \"lazy\"\nrepair_threshold = 5\nstripes_max = 2")), "repair");
        assert_eq!(field(&format!("{model}transient_loss_per_epoch = 0.1")), "transient_loss_per_epoch");
        assert_eq!(field("replace_lost_nodes = true"), "repair", "model-only fields refused by the ledger engine");
        let monthly = Scenario::from_toml(&format!("{model}permanent_loss_per_month = 0.02")).expect("parses");
        let per_epoch = monthly.loss_per_epoch();
        assert!((1.0 - (1.0 - per_epoch).powi(720) - 0.02).abs() < 1e-12, "{per_epoch}");
    }
}
