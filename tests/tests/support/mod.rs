//! A devnet of real processes on 127.0.0.1 (a sequencer and six storage
//! nodes) driven with the real `strand` command, shared by the network tests.

#![allow(dead_code)]

pub mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rand::SeedableRng;
use strand_client::devnet::{self, DevnetConfig, Process};
use strand_tests::{binary, describe, json};

pub struct Network {
    pub config: DevnetConfig,
    pub ledger: String,
    pub sequencer: Process,
    pub nodes: Vec<Option<Process>>,
    pub home: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Network {
    pub fn start() -> Self {
        Self::start_with_epochs(600)
    }

    /// A network whose epochs last `epoch_blocks` blocks of 200 ms.
    pub fn start_with_epochs(epoch_blocks: u64) -> Self {
        Self::start_sized(6, epoch_blocks)
    }

    /// A network of `nodes` nodes whose epochs last `epoch_blocks` blocks
    /// of 200 ms.
    pub fn start_sized(nodes: usize, epoch_blocks: u64) -> Self {
        let strand = binary("strand-client", "strand");
        binary("strand-node", "strand-node");
        binary("strand-ledger-service", "strand-sequencer");
        let data = tempfile::tempdir().expect("temporary directory");
        let config = DevnetConfig {
            directory: data.path().to_path_buf(),
            binaries: strand.parent().expect("binary directory").to_path_buf(),
            nodes,
            block_interval_ms: 200,
            epoch_blocks,
            validators: 0,
        };
        let mut devnet = devnet::start(&config).expect("the devnet starts");
        let sequencer = devnet.processes.remove(0);
        let nodes = devnet.processes.into_iter().map(Some).collect();
        let network = Self {
            config,
            ledger: devnet.ledger,
            sequencer,
            nodes,
            home: tempfile::tempdir().expect("home"),
            _data: data,
        };
        let output = network.strand(&["keygen"]);
        assert!(output.status.success(), "{}", describe(&output));
        network
    }

    pub fn strand(&self, arguments: &[&str]) -> Output {
        Command::new(binary("strand-client", "strand"))
            .args(arguments)
            .env("STRAND_HOME", self.home.path())
            .env("STRAND_LEDGER", &self.ledger)
            .output()
            .expect("run strand")
    }

    /// Runs `strand` as another user, with `home` as its `STRAND_HOME`.
    pub fn strand_in(&self, home: &std::path::Path, arguments: &[&str]) -> Output {
        Command::new(binary("strand-client", "strand"))
            .args(arguments)
            .env("STRAND_HOME", home)
            .env("STRAND_LEDGER", &self.ledger)
            .output()
            .expect("run strand")
    }

    /// Sums a metric over every running node.
    pub fn metric_sum(&self, name: &str) -> f64 {
        (0..self.nodes.len())
            .filter(|index| self.nodes[*index].is_some())
            .map(|index| metric(&self.metrics(index), name))
            .sum()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    pub fn upload(&self, name: &str, extra: &[&str]) -> String {
        let file = self.path(name);
        let mut arguments = vec!["upload", file.to_str().expect("utf-8"), "--json"];
        arguments.extend_from_slice(extra);
        let output = self.strand(&arguments);
        assert!(output.status.success(), "upload of {name}: {}", describe(&output));
        json(&output)["upload_id"].as_str().expect("upload id").to_string()
    }

    pub fn download(&self, upload: &str, out: &str, extra: &[&str]) -> Output {
        let out = self.path(out);
        let mut arguments = vec!["download", upload, "--out", out.to_str().expect("utf-8"), "--json"];
        arguments.extend_from_slice(extra);
        self.strand(&arguments)
    }

    pub fn kill(&mut self, index: usize) {
        self.nodes[index].take().expect("node running").kill();
    }

    pub fn restart(&mut self, index: usize) {
        let process = devnet::start_node(&self.config, &self.ledger, index + 1).expect("node restarts");
        self.nodes[index] = Some(process);
    }

    pub fn metrics(&self, index: usize) -> String {
        let line = &self.nodes[index].as_ref().expect("node running").ready_line;
        let url = line.split_whitespace().last().expect("metrics url");
        http_get(url)
    }

    /// The ledger service's metrics.
    pub fn ledger_metrics(&self) -> String {
        let url = self.sequencer.ready_line.split_whitespace().last().expect("metrics url");
        http_get(url)
    }

    pub fn node_account(&self, index: usize) -> [u8; 32] {
        let line = &self.nodes[index].as_ref().expect("node running").ready_line;
        let account = line.split_whitespace().nth(3).expect("account");
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(account, &mut bytes).expect("hex account");
        bytes
    }

    /// The node's data directory.
    pub fn node_directory(&self, index: usize) -> PathBuf {
        self.config.directory.join(format!("node-{}", index + 1))
    }

    /// Sends `signal` to a running node (SIGSTOP freezes it, SIGCONT thaws).
    pub fn signal(&self, index: usize, signal: nix::sys::signal::Signal) {
        let pid = self.nodes[index].as_ref().expect("node running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).expect("signal the node");
    }

    /// Where node `index` listens, for a peer that speaks to it directly.
    pub fn node_address(&self, index: usize) -> hostile::NodeAddress {
        let line = &self.nodes[index].as_ref().expect("node running").ready_line;
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|word| *word == "libp2p").expect("libp2p address");
        hostile::NodeAddress {
            account: strand_contracts::AccountId(self.node_account(index)),
            libp2p: words[at + 1].parse().expect("multiaddr"),
            iroh: self.node_iroh(index),
        }
    }

    pub fn node_iroh(&self, index: usize) -> std::net::SocketAddr {
        let line = &self.nodes[index].as_ref().expect("node running").ready_line;
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|word| *word == "iroh").expect("iroh address");
        words[at + 1].parse().expect("socket address")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for node in self.nodes.iter().flatten() {
            // A frozen node would not see SIGTERM.
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(node.id() as i32), nix::sys::signal::Signal::SIGCONT);
            node.terminate();
        }
        self.sequencer.terminate();
    }
}

pub fn http_get(url: &str) -> String {
    strand_tests::http_get(url).unwrap_or_else(|| panic!("no answer from {url}"))
}

pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn sample(path: &Path, length: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; length];
    rand::Rng::fill_bytes(&mut rand::rngs::StdRng::seed_from_u64(seed), &mut bytes);
    std::fs::write(path, &bytes).expect("write sample");
    bytes
}

/// `strand proofs UPLOAD --json` on `network`.
pub fn proofs(network: &Network, upload: &str) -> serde_json::Value {
    let output = network.strand(&["proofs", upload, "--json"]);
    assert!(output.status.success(), "strand proofs: {}", describe(&output));
    json(&output)
}

/// Polls `strand proofs` until `done` holds (at most `limit`).
pub fn wait_for(
    network: &Network,
    upload: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let report = proofs(network, upload);
        if done(&report) {
            return report;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}; the ledger says {report:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
