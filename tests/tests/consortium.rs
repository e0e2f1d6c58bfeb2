//! A consortium ledger of four real `strand-validator` processes on
//! 127.0.0.1 (one organisation each), with six storage nodes and the real
//! `strand` command as the client, which is given every validator's address.
//!
//! SIGKILL one validator: blocks keep finalising, and uploads, downloads,
//! proofs, grants and revocations keep working. SIGKILL a second: finality
//! stops (two of four is no quorum) and nothing forks; it resumes when one
//! returns, restarted from its disk. At the end every validator serves the
//! same chain, block by block, and a follower that knows only the genesis
//! accepts each one's copy, checking every finality certificate. Last, a
//! validator whose disk is wiped (all but its key and beacon share)
//! rebuilds the same chain from its peers and catches up.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use strand_client::devnet::{self, DevnetConfig, Process};
use strand_contracts::{Block, Replica};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::follower::Follower;
use strand_tests::{binary, describe, json};
use support::{http_get, metric, sample};

const VALIDATORS: usize = 4;

struct Consortium {
    config: DevnetConfig,
    addresses: Vec<String>,
    validators: Vec<Option<Process>>,
    nodes: Vec<Process>,
    home: tempfile::TempDir,
    _devnet: devnet::Devnet,
    _data: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Consortium {
    fn start() -> Self {
        let strand = binary("strand-client", "strand");
        binary("strand-node", "strand-node");
        binary("strand-consortium", "strand-validator");
        let data = tempfile::tempdir().expect("temporary directory");
        let config = DevnetConfig {
            directory: data.path().to_path_buf(),
            binaries: strand.parent().expect("binary directory").to_path_buf(),
            nodes: 6,
            block_interval_ms: 200,
            epoch_blocks: 20,
            validators: VALIDATORS,
        };
        let mut devnet = devnet::start(&config).expect("the consortium devnet starts");
        let mut processes = std::mem::take(&mut devnet.processes);
        let nodes = processes.split_off(VALIDATORS);
        let consortium = Self {
            config,
            addresses: devnet.ledger.split(',').map(str::to_string).collect(),
            validators: processes.into_iter().map(Some).collect(),
            nodes,
            home: tempfile::tempdir().expect("home"),
            _devnet: devnet,
            _data: data,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime"),
        };
        assert_eq!(consortium.addresses.len(), VALIDATORS);
        let output = consortium.strand(&["keygen"]);
        assert!(output.status.success(), "{}", describe(&output));
        consortium
    }

    fn strand_in(&self, home: &Path, arguments: &[&str]) -> Output {
        Command::new(binary("strand-client", "strand"))
            .args(arguments)
            .env("STRAND_HOME", home)
            .env("STRAND_LEDGER", self.addresses.join(","))
            .output()
            .expect("run strand")
    }

    fn strand(&self, arguments: &[&str]) -> Output {
        self.strand_in(self.home.path(), arguments)
    }

    /// The finalised height validator `index` serves, if it answers.
    fn height(&self, index: usize) -> Option<u64> {
        self.runtime.block_on(async {
            let mut client = LedgerClient::connect(&self.addresses[index]).await.ok()?;
            tokio::time::timeout(Duration::from_secs(5), client.status()).await.ok()?.ok().map(|status| status.height)
        })
    }

    fn live(&self) -> Vec<usize> {
        (0..VALIDATORS).filter(|index| self.validators[*index].is_some()).collect()
    }

    /// Waits until every live validator has finalised `height`.
    fn wait_for_height(&self, height: u64, limit: Duration) {
        let started = Instant::now();
        while self.live().iter().any(|index| self.height(*index).is_none_or(|at| at < height)) {
            assert!(
                started.elapsed() < limit,
                "the live validators did not finalise height {height} within {limit:?}: {:?}",
                self.live().iter().map(|index| self.height(*index)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn top(&self) -> u64 {
        self.live().iter().filter_map(|index| self.height(*index)).max().unwrap_or(0)
    }

    fn kill(&mut self, index: usize) {
        self.validators[index].take().expect("validator running").kill();
    }

    fn restart(&mut self, index: usize) {
        let process = devnet::start_validator(&self.config, index + 1).expect("the validator restarts");
        self.validators[index] = Some(process);
    }

    /// A ledger metric as validator `index` reports it.
    fn ledger_metric(&self, index: usize, name: &str) -> f64 {
        let line = &self.validators[index].as_ref().expect("validator running").ready_line;
        let url = devnet::metrics_url(line).expect("metrics url");
        metric(&http_get(&url), name)
    }

    /// The blocks validator `index` serves, 1..=`height`.
    fn blocks(&self, index: usize, height: u64) -> Vec<Vec<u8>> {
        self.runtime.block_on(async {
            let mut client = LedgerClient::connect(&self.addresses[index]).await.expect("connect");
            let mut blocks = Vec::new();
            while (blocks.len() as u64) < height {
                let batch = client.blocks(blocks.len() as u64 + 1, 128).await.expect("blocks");
                assert!(!batch.is_empty(), "validator {index} stopped serving blocks at {}", blocks.len());
                blocks.extend(batch);
            }
            blocks.truncate(height as usize);
            blocks
        })
    }

    fn upload_and_download(&self, name: &str, seed: u64) -> String {
        let file = self.home.path().join(name);
        let original = sample(&file, 300_000, seed);
        let output = self.strand(&["upload", file.to_str().expect("utf-8"), "--json"]);
        assert!(output.status.success(), "upload of {name}: {}", describe(&output));
        let upload = json(&output)["upload_id"].as_str().expect("upload id").to_string();
        let copy = self.home.path().join(format!("{name}.copy"));
        let output = self.strand(&["download", &upload, "--out", copy.to_str().expect("utf-8")]);
        assert!(output.status.success(), "download of {name}: {}", describe(&output));
        assert_eq!(std::fs::read(&copy).expect("copy"), original, "{name} came back changed");
        upload
    }
}

/// Grants a fresh key the upload, reads as that key, revokes, and sees the
/// read refused once the nodes have the revocation.
fn grant_read_revoke(consortium: &Consortium, upload: &str) {
    let grantee = tempfile::tempdir().expect("grantee home");
    let output = consortium.strand_in(grantee.path(), &["keygen", "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let key = json(&output)["public_key"].as_str().expect("public key").to_string();
    let output = consortium.strand(&["grant", upload, "--to", &key, "--json"]);
    assert!(output.status.success(), "grant: {}", describe(&output));
    let credential = json(&output)["credential"].as_str().expect("credential").to_string();
    let copy = grantee.path().join("read");
    let output = consortium
        .strand_in(grantee.path(), &["download", "--credential", &credential, "--out", copy.to_str().expect("utf-8")]);
    assert!(output.status.success(), "the grantee reads: {}", describe(&output));
    let output = consortium.strand(&["revoke", &credential, "--json"]);
    assert!(output.status.success(), "revoke: {}", describe(&output));
    let revoked_at = json(&output)["revoked_at_height"].as_u64().expect("height");
    let started = Instant::now();
    while consortium.nodes.iter().any(|node| {
        let url = devnet::metrics_url(&node.ready_line).expect("metrics url");
        metric(&http_get(&url), "strand_node_ledger_height") < revoked_at as f64
    }) {
        assert!(started.elapsed() < Duration::from_secs(60), "the nodes did not apply the revocation");
        std::thread::sleep(Duration::from_millis(100));
    }
    let copy = grantee.path().join("after");
    let output = consortium
        .strand_in(grantee.path(), &["download", "--credential", &credential, "--out", copy.to_str().expect("utf-8")]);
    assert!(!output.status.success() && !copy.exists(), "read after revocation: {}", describe(&output));
    assert!(describe(&output).contains("revoked"), "{}", describe(&output));
}

const PROOFS_ACCEPTED: &str = "strand_ledger_transactions_total{kind=\"submit_proofs\",outcome=\"accepted\"}";

#[test]
fn a_consortium_of_four_survives_crashes_without_forking() {
    let mut consortium = Consortium::start();
    let upload = consortium.upload_and_download("before.bin", 1);

    // One of four killed: the other three are a quorum.
    consortium.kill(0);
    let killed_at = consortium.top();
    consortium.wait_for_height(killed_at + 5, Duration::from_secs(60));
    let second = consortium.upload_and_download("one-down.bin", 2);
    grant_read_revoke(&consortium, &second);
    // Nodes keep proving: the ledger accepts proof submissions of an epoch
    // that began after the kill.
    let proofs = consortium.ledger_metric(1, PROOFS_ACCEPTED);
    let started = Instant::now();
    while consortium.ledger_metric(1, PROOFS_ACCEPTED) < proofs + 6.0 {
        assert!(started.elapsed() < Duration::from_secs(120), "no proofs accepted after a validator died");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Two of four killed: no quorum, finality stops, and nothing forks.
    consortium.kill(1);
    std::thread::sleep(Duration::from_secs(3));
    let stalled: Vec<Option<u64>> = (2..VALIDATORS).map(|index| consortium.height(index)).collect();
    std::thread::sleep(Duration::from_secs(8));
    let later: Vec<Option<u64>> = (2..VALIDATORS).map(|index| consortium.height(index)).collect();
    assert_eq!(later, stalled, "two validators of four finalised blocks alone");

    // One returns, from its disk: finality resumes; the other catches up.
    consortium.restart(0);
    let stalled_at = stalled.iter().flatten().copied().max().expect("heights");
    consortium.wait_for_height(stalled_at + 5, Duration::from_secs(90));
    consortium.restart(1);
    let resumed = consortium.top();
    consortium.wait_for_height(resumed + 3, Duration::from_secs(90));
    let copy = consortium.home.path().join("after-all.bin");
    let output = consortium.strand(&["download", &upload, "--out", copy.to_str().expect("utf-8")]);
    assert!(output.status.success(), "the first upload after everything: {}", describe(&output));

    // Every validator serves the same chain; a genesis-only follower
    // accepts each copy, checking each certificate.
    let height = (0..VALIDATORS).filter_map(|index| consortium.height(index)).min().expect("heights");
    let genesis = consortium.runtime.block_on(async {
        LedgerClient::connect(&consortium.addresses[2]).await.expect("connect").genesis().await.expect("genesis")
    });
    let mut reference: Option<Vec<Vec<u8>>> = None;
    for index in 0..VALIDATORS {
        let blocks = consortium.blocks(index, height);
        let mut follower = Follower::new(Replica::new(&genesis), None);
        follower.ingest(&blocks).expect("a follower accepts every validator's chain");
        let headers: Vec<Vec<u8>> = blocks
            .iter()
            .map(|bytes| strand_contracts::encoding::encode(&Block::from_bytes(bytes).expect("a block").header))
            .collect();
        match &reference {
            None => reference = Some(headers),
            Some(reference) => assert!(*reference == headers, "validator {index} serves another chain"),
        }
    }
    // The beacon: epochs that ran while a quorum was up got the validators'
    // threshold signature from a block inside the epoch (the followers
    // above checked each one against the genesis's key).
    let blocks = consortium.blocks(2, height);
    let params = Replica::new(&genesis).state().params.clone();
    let carried: Vec<u64> = blocks
        .iter()
        .map(|bytes| Block::from_bytes(bytes).expect("a block").header)
        .filter(|header| header.beacon.is_some())
        .map(|header| params.epoch_of(header.height))
        .collect();
    let epochs = params.epoch_of(height);
    assert!(carried.windows(2).all(|pair| pair[0] < pair[1]), "at most one beacon per epoch: {carried:?}");
    assert!(
        carried.len() as u64 + 1 >= epochs,
        "{} beacons in {epochs} closed epochs (one may have spanned the stall): {carried:?}",
        carried.len()
    );
    println!(
        "{height} blocks identical on all {VALIDATORS} validators (killed at {killed_at}, stalled at {stalled_at}); \
         beacons for epochs {carried:?}"
    );

    // A validator whose disk is lost (a replaced machine): restarted with
    // only its key and beacon share, it rebuilds the chain from its peers,
    // checking every block, and serves the same one.
    consortium.kill(3);
    let directory = consortium.config.directory.join("validator-4");
    for entry in std::fs::read_dir(&directory).expect("its data directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_string();
        if name != "identity.pem" && name != "beacon.share" {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("wipe");
            } else {
                std::fs::remove_file(&path).expect("wipe");
            }
        }
    }
    consortium.restart(3);
    let target = consortium.top() + 3;
    consortium.wait_for_height(target, Duration::from_secs(120));
    let rebuilt = consortium.blocks(3, height);
    let headers: Vec<Vec<u8>> = rebuilt
        .iter()
        .map(|bytes| strand_contracts::encoding::encode(&Block::from_bytes(bytes).expect("a block").header))
        .collect();
    assert!(reference.as_ref() == Some(&headers), "the validator rebuilt from an empty disk serves another chain");
    println!("validator 4 rebuilt {height} blocks from an empty disk and caught up to {target}");
}
