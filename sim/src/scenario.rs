//! What a simulation runs: the network, the data, the faults and how long,
//! read from a commented TOML file (`sim/scenarios/`).

use serde::Deserialize;

/// A scenario. Every field has a default, so a file names only what it
/// changes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports.
    pub name: String,
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
    /// Uploads, all made at the start.
    pub uploads: u32,
    /// Stripes per upload.
    pub stripes: u32,
    /// k.
    pub data_shards: u16,
    /// m.
    pub parity_shards: u16,
    /// Bytes per fragment (a multiple of 64; real bytes, real codec).
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
    /// Bytes per simulated second a node moves (repair reads and writes).
    pub node_bandwidth_bytes_per_s: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "default".into(),
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
            transient_loss_per_epoch: 0.02,
            transient_epochs_max: 2,
            organisation_lost: None,
            partition: None,
            deleting: None,
            node_bandwidth_bytes_per_s: 10_000_000,
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

    /// Checks every field's range.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let field = |field, reason: &str| Err(ScenarioError::Field { field, reason: reason.into() });
        let width = u32::from(self.data_shards) + u32::from(self.parity_shards);
        if self.data_shards == 0 || self.parity_shards == 0 {
            return field("data_shards", "k and m must both be at least 1");
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
        if self.fragment_bytes < 64 || !self.fragment_bytes.is_multiple_of(64) || self.fragment_bytes > 1 << 20 {
            return field("fragment_bytes", "a multiple of 64 from 64 to 1 MiB");
        }
        if self.challenges_per_epoch == 0 || self.strikes_max == 0 {
            return field("strikes_max", "challenges and strikes must be at least 1");
        }
        for (name, p) in [
            ("permanent_loss_per_epoch", self.permanent_loss_per_epoch),
            ("transient_loss_per_epoch", self.transient_loss_per_epoch),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return field(name, "a probability from 0 to 1");
            }
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
        if self.node_bandwidth_bytes_per_s == 0 {
            return field("node_bandwidth_bytes_per_s", "at least 1");
        }
        Ok(())
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
}
