//! A consortium of four real `strand-validator` processes, each in its own
//! network namespace (veth into a bridge in a fifth, hub namespace; the
//! test reaches them through a sixth veth), split 2|2 by blackhole routes
//! and healed.
//!
//! While split, neither side has a quorum (3 of 4): no validator finalises
//! a block, though both sides accept transactions. Healed, finality
//! resumes, every transaction either side acknowledged ends finalised, and
//! every validator serves the same chain: the same header (so the same
//! state root) at every height, which a follower that knows only the
//! genesis accepts, re-executing each block.
//!
//! Needs root (CAP_NET_ADMIN) and `ip` (Debian's iproute2): the test fails,
//! saying so, without them.

use std::process::Command;
use std::time::{Duration, Instant};

use strand_client::devnet::{self, DevnetConfig, Process};
use strand_contracts::transaction::{Body, FailureDomain, ProviderRegistration};
use strand_contracts::{Block, Replica, Transaction};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::follower::Follower;
use strand_tests::binary;

const VALIDATORS: usize = 4;

fn ip(arguments: &[&str]) {
    let output = Command::new("ip").args(arguments).output().unwrap_or_else(|error| {
        panic!("cannot run `ip` ({error}): install Debian's iproute2 (apt-get install iproute2); this test needs it")
    });
    assert!(
        output.status.success(),
        "`ip {}` failed (this test needs root, or CAP_NET_ADMIN, to make network namespaces): {}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The namespaces and links; removed on drop, even after a panic.
struct Namespaces {
    prefix: String,
    subnet: String,
}

impl Namespaces {
    fn new() -> Self {
        let id = std::process::id() % 10_000;
        let prefix = format!("sp{id}");
        let subnet = format!("10.231.{}", id % 250);
        let namespaces = Self { prefix, subnet };
        let hub = namespaces.hub();
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for index in 1..=VALIDATORS {
            let (netns, inner, outer) = (
                namespaces.netns(index),
                format!("{}v{index}", namespaces.prefix),
                format!("{}h{index}", namespaces.prefix),
            );
            ip(&["netns", "add", &netns]);
            ip(&["link", "add", &inner, "type", "veth", "peer", "name", &outer]);
            ip(&["link", "set", &inner, "netns", &netns]);
            ip(&["link", "set", &outer, "netns", &hub]);
            ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"]);
            ip(&["-n", &netns, "addr", "add", &format!("{}/24", namespaces.address(index)), "dev", &inner]);
            ip(&["-n", &netns, "link", "set", &inner, "up"]);
            ip(&["-n", &netns, "link", "set", "lo", "up"]);
        }
        // The test's own way in, from the root namespace.
        let (inner, outer) = (format!("{}t", namespaces.prefix), format!("{}ht", namespaces.prefix));
        ip(&["link", "add", &inner, "type", "veth", "peer", "name", &outer]);
        ip(&["link", "set", &outer, "netns", &hub]);
        ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"]);
        ip(&["addr", "add", &format!("{}.100/24", namespaces.subnet), "dev", &inner]);
        ip(&["link", "set", &inner, "up"]);
        namespaces
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    fn netns(&self, index: usize) -> String {
        format!("{}-v{index}", self.prefix)
    }

    fn address(&self, index: usize) -> String {
        format!("{}.{index}", self.subnet)
    }

    /// Cuts (or restores) every path between the two sides.
    fn split(&self, sides: (&[usize], &[usize]), cut: bool) {
        for (from, to) in [(sides.0, sides.1), (sides.1, sides.0)] {
            for &a in from {
                for &b in to {
                    let verb = if cut { "add" } else { "del" };
                    ip(&["-n", &self.netns(a), "route", verb, "blackhole", &format!("{}/32", self.address(b))]);
                }
            }
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and so their peers.
        for netns in (1..=VALIDATORS).map(|index| self.netns(index)).chain([self.hub()]) {
            let _ = Command::new("ip").args(["netns", "del", &netns]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &format!("{}t", self.prefix)]).output();
    }
}

fn registrations(chain: strand_contracts::Digest, from: u8, count: u8) -> Vec<Vec<u8>> {
    (from..from + count)
        .map(|seed| {
            let provider = strand_core::Identity::from_secret_bytes(&[seed; 32]);
            let body = Body::RegisterProvider(ProviderRegistration {
                endpoints: vec!["127.0.0.1:7000".into()],
                capacity_bytes: 1 << 40,
                domain: FailureDomain { organisation: format!("o{seed}"), site: "s".into(), jurisdiction: "EU".into() },
            });
            Transaction::sign(chain, &provider, 1, body).to_bytes()
        })
        .collect()
}

struct Consortium {
    ledgers: Vec<String>,
    _validators: Vec<Process>,
    runtime: tokio::runtime::Runtime,
}

impl Consortium {
    fn client<T>(&self, index: usize, work: impl AsyncFnOnce(&mut LedgerClient) -> T) -> Option<T> {
        self.runtime.block_on(async {
            let mut client = tokio::time::timeout(Duration::from_secs(3), LedgerClient::connect(&self.ledgers[index]))
                .await
                .ok()?
                .ok()?;
            tokio::time::timeout(Duration::from_secs(5), work(&mut client)).await.ok()
        })
    }

    fn height(&self, index: usize) -> Option<u64> {
        self.client(index, async |client| client.status().await.ok().map(|status| status.height)).flatten()
    }

    fn heights(&self) -> Vec<Option<u64>> {
        (0..VALIDATORS).map(|index| self.height(index)).collect()
    }

    fn wait_for_height(&self, height: u64, limit: Duration) {
        let started = Instant::now();
        while self.heights().iter().any(|at| at.is_none_or(|at| at < height)) {
            assert!(
                started.elapsed() < limit,
                "the validators did not all finalise height {height} within {limit:?}: {:?}",
                self.heights()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Submits to validator `index`; every transaction must be acknowledged.
    fn submit(&self, index: usize, transactions: Vec<Vec<u8>>) {
        let answers = self
            .client(index, async |client| client.submit_all(transactions).await)
            .unwrap_or_else(|| panic!("validator {index} did not answer a submission"))
            .expect("submitted");
        for answer in answers {
            answer.expect("acknowledged");
        }
    }

    fn blocks(&self, index: usize, height: u64) -> Vec<Vec<u8>> {
        let mut blocks = Vec::new();
        while (blocks.len() as u64) < height {
            let from = blocks.len() as u64 + 1;
            let batch = self
                .client(index, async |client| client.blocks(from, 128).await)
                .unwrap_or_else(|| panic!("validator {index} did not answer"))
                .expect("blocks");
            assert!(!batch.is_empty(), "validator {index} stopped serving blocks at {}", blocks.len());
            blocks.extend(batch);
        }
        blocks.truncate(height as usize);
        blocks
    }
}

#[test]
fn a_two_two_partition_finalises_nothing_and_heals_into_one_chain() {
    let validator = binary("strand-consortium", "strand-validator");
    let namespaces = Namespaces::new();
    let data = tempfile::tempdir().expect("temporary directory");
    let config = DevnetConfig {
        directory: data.path().to_path_buf(),
        binaries: validator.parent().expect("binary directory").to_path_buf(),
        nodes: 0,
        block_interval_ms: 200,
        epoch_blocks: 10,
        validators: VALIDATORS,
    };
    let addresses: Vec<(String, String)> = (1..=VALIDATORS)
        .map(|index| (format!("{}:7000", namespaces.address(index)), format!("{}:7100", namespaces.address(index))))
        .collect();
    let genesis = devnet::new_consortium(data.path(), &addresses, config.epoch_blocks).expect("genesis").genesis;
    let validators: Vec<Process> = (1..=VALIDATORS)
        .map(|index| {
            devnet::start_validator_in(&config, index, Some(&namespaces.netns(index))).expect("a validator starts")
        })
        .collect();
    let consortium = Consortium {
        ledgers: addresses.into_iter().map(|(_, ledger)| ledger).collect(),
        _validators: validators,
        runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
    };
    let chain = genesis.chain();
    let mut submitted = registrations(chain, 1, 10);
    consortium.submit(0, submitted.clone());
    consortium.wait_for_height(5, Duration::from_secs(60));

    // Split 2|2: neither side has three of four.
    namespaces.split((&[1, 2], &[3, 4]), true);
    std::thread::sleep(Duration::from_secs(3));
    let split = consortium.heights();
    assert!(split.iter().all(Option::is_some), "every validator still answers its clients: {split:?}");
    // Both sides still take transactions.
    let left = registrations(chain, 11, 10);
    let right = registrations(chain, 21, 10);
    consortium.submit(0, left.clone());
    consortium.submit(3, right.clone());
    submitted.extend(left);
    submitted.extend(right);
    std::thread::sleep(Duration::from_secs(8));
    let later = consortium.heights();
    assert_eq!(later, split, "a side of two finalised blocks alone during the partition");

    // Healed: finality resumes; every acknowledged transaction ends final.
    namespaces.split((&[1, 2], &[3, 4]), false);
    let stalled = split.iter().flatten().copied().max().expect("heights");
    consortium.wait_for_height(stalled + 10, Duration::from_secs(120));
    let started = Instant::now();
    for bytes in &submitted {
        let hash = strand_contracts::transaction::transaction_hash(bytes);
        loop {
            let status = consortium.client(2, async |client| client.transaction(hash).await).and_then(Result::ok);
            if matches!(status, Some(strand_ledger_service::protocol::TransactionStatus::Finalised { .. })) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{hash} not finalised after the heal: {status:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // One chain: the same header (state root included) at every height on
    // every validator, each copy accepted by a genesis-only follower.
    let height = consortium.heights().into_iter().flatten().min().expect("heights");
    let mut reference: Option<Vec<strand_contracts::BlockHeader>> = None;
    for index in 0..VALIDATORS {
        let blocks = consortium.blocks(index, height);
        let mut follower = Follower::new(Replica::new(&genesis), None);
        follower.ingest(&blocks).expect("a follower accepts every validator's chain");
        let headers: Vec<_> = blocks.iter().map(|bytes| Block::from_bytes(bytes).expect("a block").header).collect();
        match &reference {
            None => reference = Some(headers),
            Some(reference) => {
                for (height, (a, b)) in (1..).zip(reference.iter().zip(&headers)) {
                    assert_eq!(
                        a.state_root, b.state_root,
                        "validator {index} has another state root at height {height}"
                    );
                    assert_eq!(a, b, "validator {index} has another block at height {height}");
                }
            }
        }
    }
    println!("split at heights {split:?}, unchanged for 8 s; healed: {height} blocks identical on all {VALIDATORS}");
}
