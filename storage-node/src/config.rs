//! The node's TOML configuration.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A node's configuration file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its key, fragments, ledger replica and records.
    pub data_dir: PathBuf,
    /// The node's key [default: `<data_dir>/identity.pem`, created if missing].
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The ledger service (sequencer) to follow.
    pub ledger: String,
    /// libp2p listen address (control plane).
    pub p2p_listen: String,
    /// iroh bind address (data plane).
    pub blobs_listen: String,
    /// Prometheus `/metrics` bind address.
    pub metrics_listen: String,
    /// Bytes offered for fragments (`100GiB`, ...).
    pub capacity: String,
    /// Failure-domain labels.
    pub domain: DomainConfig,
    /// What terms the node signs [every field has a default].
    #[serde(default)]
    pub acceptance: crate::core::proposal::AcceptancePolicy,
}

/// Failure-domain labels, recorded on the ledger.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// Organisation running the node.
    pub organisation: String,
    /// Site.
    pub site: String,
    /// Jurisdiction.
    pub jurisdiction: String,
}

/// The commented default configuration `strand-node init` writes.
pub fn default_text(data_dir: &Path) -> String {
    format!(
        r#"# strand-node configuration. Every address here is where this node listens;
# port 0 picks a free port, and the node records its actual addresses on the
# ledger when it starts.

# Key, fragments (iroh-blobs store), ledger replica and agreement records.
data_dir = "{data_dir}"
# key = "{data_dir}/identity.pem"   # default; created on first start

# The ledger service (a sequencer) this node follows and submits to.
ledger = "127.0.0.1:7400"

# Control plane (libp2p: identify, Kademlia, gossipsub, contract negotiation).
p2p_listen = "/ip4/127.0.0.1/tcp/0"
# Data plane (iroh-blobs: fragment transfers, every one checked against the ledger).
blobs_listen = "127.0.0.1:0"
# Prometheus metrics at http://<metrics_listen>/metrics
metrics_listen = "127.0.0.1:0"

# Space offered for fragments.
capacity = "100GiB"

# Where the node sits; uploads spread each stripe across different domains.
[domain]
organisation = "my-gene-bank"
site = "site-1"
jurisdiction = "EU"

# What terms this node signs; a proposal outside any bound is refused with
# the bound it broke. These are the defaults.
[acceptance]
fragment_bytes_max = 67108880           # a 64 MiB chunk and its 16-byte tag
fragments_per_contract_max = 500000
term_epochs_max = 100000
challenges_per_epoch_min = 1            # proof policy: the contract's weight in
challenges_per_epoch_max = 48           #   this node's bounded epoch schedule
strikes_min = 1                         # consecutive failed checks before the
strikes_max = 10                        #   ledger declares a contract lost
contracts_max = 100000                  # agreements held at once
"#,
        data_dir = data_dir.display()
    )
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Cannot read the file.
    #[error("cannot read {path}: {source} (create one with `strand-node init`)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or not our fields.
    #[error("{path} is not a valid strand-node configuration: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl NodeConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let config: Self = toml::from_str(&text)
            .map_err(|error| ConfigError::Parse { path: path.to_path_buf(), reason: error.to_string() })?;
        config.acceptance.validate().map_err(|reason| ConfigError::Parse { path: path.to_path_buf(), reason })?;
        Ok(config)
    }

    /// The key file.
    pub fn key_path(&self) -> PathBuf {
        self.key.clone().unwrap_or_else(|| self.data_dir.join("identity.pem"))
    }

    /// The capacity in bytes.
    pub fn capacity_bytes(&self) -> Result<u64, ConfigError> {
        strand_core::units::parse_size(&self.capacity).map_err(|_| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            reason: format!("capacity '{}' is not a size (e.g. 500GiB)", self.capacity),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_parses_and_unknown_fields_are_refused() {
        let text = default_text(Path::new("/var/lib/strand"));
        let config: NodeConfig = toml::from_str(&text).expect("default parses");
        assert_eq!(config.capacity_bytes().expect("size"), 100 << 30);
        assert_eq!(config.key_path(), PathBuf::from("/var/lib/strand/identity.pem"));
        assert_eq!(
            config.acceptance,
            crate::core::proposal::AcceptancePolicy::default(),
            "the file states the defaults"
        );
        let typo = text.replace("capacity =", "capacty =");
        assert!(toml::from_str::<NodeConfig>(&typo).is_err());
        let without = text.split("[acceptance]").next().expect("head").to_string();
        let config: NodeConfig = toml::from_str(&without).expect("acceptance is optional");
        assert_eq!(config.acceptance, crate::core::proposal::AcceptancePolicy::default());
    }
}
