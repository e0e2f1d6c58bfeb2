//! Governance with real processes: four `strand-validator` processes on
//! 127.0.0.1 and a fifth organisation's validator that starts from the
//! genesis, not in it. Validator 1 proposes, with `strand-validator
//! governance propose`, the set {1, 2, 3, new} from a stated epoch (it deals
//! the new set's beacon key); 2 and 3 approve. The members' new shares are
//! put in their data directories while they run. At the stated epoch the
//! new set takes over: validator 4 stops, the new one signs and proposes,
//! the epoch gets its beacon from the new key, and a follower that knows
//! only the genesis accepts the new validator's copy of the chain, each
//! block checked against its epoch's validators.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use strand_client::devnet::{self, DevnetConfig, Process};
use strand_contracts::block::{Finality, SignedGenesis};
use strand_contracts::{AccountId, Block, Replica};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::follower::Follower;
use strand_tests::{binary, describe};

const EPOCH_BLOCKS: u64 = 10;

fn validator(arguments: &[&str]) -> String {
    let output = Command::new(binary("strand-consortium", "strand-validator"))
        .args(arguments)
        .output()
        .expect("run strand-validator");
    assert!(output.status.success(), "strand-validator {arguments:?}: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn status(runtime: &tokio::runtime::Runtime, address: &str) -> Option<strand_ledger_service::protocol::Status> {
    runtime.block_on(async {
        let mut client = LedgerClient::connect(address).await.ok()?;
        tokio::time::timeout(Duration::from_secs(5), client.status()).await.ok()?.ok()
    })
}

fn wait_for_height(runtime: &tokio::runtime::Runtime, address: &str, height: u64, limit: Duration) {
    let started = Instant::now();
    while status(runtime, address).is_none_or(|status| status.height < height) {
        assert!(
            started.elapsed() < limit,
            "{address} did not finalise height {height} within {limit:?} (at {:?})",
            status(runtime, address).map(|status| status.height)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn blocks(runtime: &tokio::runtime::Runtime, address: &str, height: u64) -> Vec<Block> {
    runtime.block_on(async {
        let mut client = LedgerClient::connect(address).await.expect("connect");
        let mut blocks = Vec::new();
        while (blocks.len() as u64) < height {
            let batch = client.blocks(blocks.len() as u64 + 1, 128).await.expect("blocks");
            assert!(!batch.is_empty(), "{address} serves blocks up to {height}");
            blocks.extend(batch.iter().map(|bytes| Block::from_bytes(bytes).expect("a block")));
        }
        blocks.truncate(height as usize);
        blocks
    })
}

fn data_dir(directory: &Path, index: usize) -> PathBuf {
    directory.join(format!("validator-{index}"))
}

#[test]
fn governance_replaces_a_validator_by_a_new_organisations_at_the_stated_epoch() {
    let strand = binary("strand-client", "strand");
    binary("strand-node", "strand-node");
    binary("strand-consortium", "strand-validator");
    let data = tempfile::tempdir().expect("temporary directory");
    let directory = data.path();
    let clock = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.1} s] {what}", clock.elapsed().as_secs_f64());
    let config = DevnetConfig {
        directory: directory.to_path_buf(),
        binaries: strand.parent().expect("binary directory").to_path_buf(),
        nodes: 0,
        block_interval_ms: 200,
        epoch_blocks: EPOCH_BLOCKS,
        validators: 4,
    };
    let mut devnet = devnet::start(&config).expect("the consortium devnet starts");
    let mut processes: Vec<Option<Process>> = std::mem::take(&mut devnet.processes).into_iter().map(Some).collect();
    let ledger = devnet.ledger.clone();
    let addresses: Vec<String> = ledger.split(',').map(str::to_string).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let genesis_path = directory.join(devnet::GENESIS_FILE);
    let genesis = SignedGenesis::from_bytes(&std::fs::read(&genesis_path).expect("genesis")).expect("a genesis");
    let genesis_arg = genesis_path.to_str().expect("utf-8 path");

    // The fifth organisation's validator: a key, addresses, started from
    // the genesis (it follows the chain until its epoch).
    let joiner_dir = data_dir(directory, 5);
    std::fs::create_dir_all(&joiner_dir).expect("joiner directory");
    let joiner_key = joiner_dir.join("identity.pem");
    let joiner: AccountId =
        validator(&["key", "--key", joiner_key.to_str().expect("utf-8")]).trim().parse().expect("an account");
    let (joiner_p2p, joiner_ledger) =
        (devnet::free_address().expect("address"), devnet::free_address().expect("address"));

    phase("devnet started");
    wait_for_height(&runtime, &addresses[0], 3, Duration::from_secs(60));
    phase("height 3");
    let epoch = status(&runtime, &addresses[0]).expect("status").epoch;
    let effective = epoch + 3;
    let mut members: Vec<String> = genesis.genesis.validators.validators[..3]
        .iter()
        .map(|v| format!("{},{},{},{}", v.account, v.organisation, v.p2p, v.ledger))
        .collect();
    members.push(format!("{joiner},organisation-v5,{joiner_p2p},{joiner_ledger}"));
    let key_of = |index: usize| data_dir(directory, index).join("identity.pem").to_str().expect("utf-8").to_string();
    // The new set makes its beacon key together, without a dealer: the
    // ceremony's four steps, each member in turn (the shared directory
    // never holds a share in clear).
    let ceremony = directory.join("ceremony");
    let ceremony_arg = ceremony.to_str().expect("utf-8").to_string();
    let round = effective.to_string();
    let mut new = vec!["dkg", "new", "--dir", &ceremony_arg, "--name", "add-v5", "--round", &round];
    let accounts: Vec<String> = genesis.genesis.validators.validators[..3]
        .iter()
        .map(|v| v.account.to_string())
        .chain([joiner.to_string()])
        .collect();
    for account in &accounts {
        new.extend(["--member", account.as_str()]);
    }
    validator(&new);
    let keys: Vec<String> = (1..=3).map(key_of).chain([joiner_key.to_str().expect("utf-8").to_string()]).collect();
    for step in ["deal", "ack", "log"] {
        for key in &keys {
            let said = validator(&["dkg", step, "--dir", &ceremony_arg, "--key", key]);
            assert!(!said.contains("refused") && !said.contains("revealed"), "{said}");
        }
    }
    let mut fingerprints = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let share = if index < 3 {
            let target = data_dir(directory, index + 1).join("beacon-shares");
            std::fs::create_dir_all(&target).expect("share directory");
            target.join("next.beacon-share")
        } else {
            joiner_dir.join("beacon.share")
        };
        let said = validator(&[
            "dkg",
            "finish",
            "--dir",
            &ceremony_arg,
            "--key",
            key,
            "--share-out",
            share.to_str().expect("utf-8"),
        ]);
        fingerprints.push(said.split_whitespace().last().expect("the key's fingerprint").to_string());
    }
    assert!(fingerprints.windows(2).all(|pair| pair[0] == pair[1]), "every member derives the same key");
    let observed = validator(&["dkg", "key", "--dir", &ceremony_arg]);
    assert!(observed.contains(&fingerprints[0]), "anyone derives it from the logs: {observed}");
    phase("ceremony done");
    let mut propose = vec![
        "governance".to_string(),
        "propose".into(),
        "--genesis".into(),
        genesis_arg.into(),
        "--ledger".into(),
        ledger.clone(),
        "--key".into(),
        key_of(1),
        "--effective-epoch".into(),
        effective.to_string(),
        "--beacon-ceremony".into(),
        ceremony_arg.clone(),
    ];
    for member in &members {
        propose.push("--validator".into());
        propose.push(member.clone());
    }
    let proposed = validator(&propose.iter().map(String::as_str).collect::<Vec<_>>());
    let proposal = proposed
        .split_whitespace()
        .skip_while(|word| *word != "proposal")
        .nth(1)
        .expect("the proposal's id")
        .trim_end_matches(':')
        .to_string();
    let shown = validator(&["governance", "show", "--genesis", genesis_arg, "--ledger", &ledger]);
    assert!(shown.contains(&format!("open proposal {proposal}")), "{shown}");
    assert!(shown.contains("approved by 1 of 4"), "{shown}");
    for index in [2, 3] {
        let approved = validator(&[
            "governance",
            "approve",
            "--genesis",
            genesis_arg,
            "--ledger",
            &ledger,
            "--key",
            &key_of(index),
            "--proposal",
            &proposal,
        ]);
        assert!(approved.contains("accepted at height"), "{approved}");
    }
    phase("approved");
    let shown = validator(&["governance", "show", "--genesis", genesis_arg, "--ledger", &ledger]);
    assert!(shown.contains(&format!("scheduled from epoch {effective} (proposal {proposal})")), "{shown}");

    let mut command = Command::new(binary("strand-consortium", "strand-validator"));
    command
        .arg("run")
        .args(["--genesis", genesis_arg, "--data-dir"])
        .arg(&joiner_dir)
        .args(["--p2p-listen", &joiner_p2p, "--ledger-listen", &joiner_ledger])
        .arg("--beacon-share")
        .arg(joiner_dir.join("beacon.share"))
        .args(["--metrics-listen", "127.0.0.1:0", "--block-interval-ms", "200"]);
    let joining = Process::start("validator-5", command, "listening on", &directory.join("validator-5.log"))
        .expect("the joining validator starts");
    processes.push(Some(joining));
    phase("joiner started");

    // The new set finalises its epochs; the removed validator stops.
    let first = effective * EPOCH_BLOCKS;
    wait_for_height(&runtime, &joiner_ledger, first + 2 * EPOCH_BLOCKS, Duration::from_secs(180));
    let started = Instant::now();
    loop {
        if processes[3].as_mut().expect("validator 4").exited().is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the removed validator is still running");
        std::thread::sleep(Duration::from_millis(200));
    }
    processes[3] = None;
    phase("the new set finalised two epochs; the removed validator stopped");

    // The new validator takes part: it proposes blocks and signs
    // certificates (a validator that joined late, or fell behind, first
    // catches up; bounded).
    let leaving = genesis.genesis.validators.validators[3].account;
    let started = Instant::now();
    let (chain, state) = loop {
        let height = status(&runtime, &joiner_ledger).expect("the new validator answers").height;
        let chain = blocks(&runtime, &joiner_ledger, height);
        let mut follower = Follower::new(Replica::new(&genesis.genesis), None);
        let encoded: Vec<Vec<u8>> = chain.iter().map(Block::to_bytes).collect();
        follower.ingest(&encoded).expect("a genesis-only follower accepts the chain across the change");
        let state = follower.replica().state().clone();
        let index = state.validators.sorted().iter().position(|account| *account == joiner).expect("member") as u32;
        let after: Vec<&Block> = chain.iter().filter(|block| block.header.height >= first).collect();
        let proposes = after.iter().any(|block| block.header.proposer == joiner);
        let signs =
            after.iter().any(|block| matches!(&block.finality, Finality::Certificate(c) if c.signers.contains(&index)));
        if proposes && signs {
            break (chain, state);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the new validator did not propose ({proposes}) and sign ({signs}) within 120 s, at height {height}; \
             its log ends:\n{}",
            std::fs::read_to_string(directory.join("validator-5.log"))
                .unwrap_or_default()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    phase("the new validator proposes and signs");
    let target = chain.len() as u64;
    assert_eq!(state.validators.sorted().len(), 4);
    assert!(state.validators.contains(&joiner), "the new validator is in the set");
    assert!(!state.validators.contains(&leaving));
    let after: Vec<&Block> = chain.iter().filter(|block| block.header.height >= first).collect();
    assert!(after.iter().all(|block| block.header.proposer != leaving), "the removed one does not propose");
    for epoch in effective..=effective + 1 {
        let carried = chain
            .iter()
            .any(|block| state.params.epoch_of(block.header.height) == epoch && block.header.beacon.is_some());
        assert!(carried, "epoch {epoch} got its beacon from the new set's key");
    }
    // A client's `strand ledger status` names the validators in effect,
    // from its own replica.
    let home = tempfile::tempdir().expect("home");
    let output = Command::new(&strand)
        .args(["--json", "ledger", "status"])
        .env("STRAND_HOME", home.path())
        .env("STRAND_LEDGER", &joiner_ledger)
        .output()
        .expect("run strand");
    assert!(output.status.success(), "{}", describe(&output));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let accounts: Vec<&str> =
        shown["validators"].as_array().expect("validators").iter().filter_map(|v| v["account"].as_str()).collect();
    assert!(accounts.contains(&joiner.to_string().as_str()) && !accounts.contains(&leaving.to_string().as_str()));
    // The other members serve the same chain.
    for address in &addresses[..3] {
        let theirs = blocks(&runtime, address, target);
        assert!(theirs.iter().zip(&chain).all(|(a, b)| a.header == b.header), "{address} serves another chain");
    }
    phase("checked");
    for process in processes.into_iter().flatten() {
        process.kill();
    }
    devnet::stop(devnet);
    // Connections to stopped processes may still be waiting out their
    // timeouts: do not wait for them.
    runtime.shutdown_background();
    phase("stopped");
}
