//! Proof of storage on a real local network: an honest node passes every
//! epoch; a node whose fragment is corrupted on disk, one whose fragment was
//! deleted, and one that is frozen (SIGSTOP) are each recorded as failing
//! within the expected epochs, and the ledger says why.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use support::*;

/// Blocks of 200 ms per epoch: 3 s epochs.
const EPOCH_BLOCKS: u64 = 15;

fn provider_of(report: &Value, account: &str) -> Value {
    report["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|provider| provider["provider"].as_str() == Some(account))
        .cloned()
        .unwrap_or_else(|| panic!("no contract for provider {account} in {report:#}"))
}

fn epochs_with(provider: &Value, verdict: &str) -> Vec<u64> {
    provider["epochs"]
        .as_array()
        .expect("epochs")
        .iter()
        .filter(|epoch| epoch["verdict"] == verdict)
        .map(|epoch| epoch["epoch"].as_u64().expect("epoch number"))
        .collect()
}

#[test]
fn honest_corrupted_deleted_and_frozen_providers() {
    let started = Instant::now();
    let network = Network::start_with_epochs(EPOCH_BLOCKS);
    eprintln!("[{:?}] network started", started.elapsed());
    // One stripe of RS(4+2) with 64 KiB chunks: each of the six nodes holds
    // exactly one fragment of the upload, so every challenge hits it.
    sample(&network.path("one-stripe.bin"), 200_000, 11);
    let upload = network.upload("one-stripe.bin", &["--chunk-size", "64KiB"]);
    eprintln!("[{:?}] uploaded", started.elapsed());
    let accounts: Vec<String> = (0..6).map(|index| hex::encode(network.node_account(index))).collect();

    // Everyone passes a couple of epochs first.
    let report = wait_for(&network, &upload, Duration::from_secs(60), "two passed epochs everywhere", |report| {
        accounts.iter().all(|account| provider_of(report, account)["passed"].as_u64() >= Some(2))
    });
    let damaged_from = report["epoch"].as_u64().expect("epoch");
    eprintln!("[{:?}] every provider passed twice; damaging at epoch {damaged_from}", started.elapsed());

    // Node 1: its fragment's bytes overwritten on disk. Node 2: its fragment
    // file deleted. Node 3: frozen.
    let fragment_files = |index: usize| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(network.node_directory(index).join("blobs").join("data"))
            .expect("node blob directory")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "data"))
            .collect()
    };
    let corrupted = fragment_files(0);
    assert_eq!(corrupted.len(), 1, "node 1 holds one fragment file");
    let length = std::fs::metadata(&corrupted[0]).expect("fragment file").len() as usize;
    std::fs::write(&corrupted[0], vec![0x5a; length]).expect("overwrite the fragment");
    let deleted = fragment_files(1);
    assert_eq!(deleted.len(), 1, "node 2 holds one fragment file");
    std::fs::remove_file(&deleted[0]).expect("delete the fragment");
    network.signal(2, Signal::SIGSTOP);

    // Three strikes (the default policy) and the contracts are lost: within
    // the epoch of the damage, three epochs of strikes, and the next one.
    let limit = Duration::from_millis(200 * EPOCH_BLOCKS * 8) + Duration::from_secs(30);
    let report = wait_for(&network, &upload, limit, "the three damaged contracts to be declared lost", |report| {
        accounts[..3]
            .iter()
            .all(|account| provider_of(report, account)["status"].as_str().is_some_and(|s| s.starts_with("Lost")))
    });
    network.signal(2, Signal::SIGCONT);
    eprintln!("[{:?}] three contracts lost at epoch {}", started.elapsed(), report["epoch"]);

    let corrupt = provider_of(&report, &accounts[0]);
    let failed = epochs_with(&corrupt, "failed");
    assert!(failed.len() >= 2 && failed[0] <= damaged_from + 1, "corrupted node: {corrupt:#}");
    for epoch in corrupt["epochs"].as_array().expect("epochs") {
        if epoch["verdict"] == "failed" {
            let reason = epoch["reason"].as_str().expect("a reason");
            assert!(reason.contains("does not match the fragment id"), "{reason}");
        }
    }
    // The node that lost its fragment still answers its epochs, without
    // this contract; the frozen one submits nothing at all.
    for (name, provider, why) in [
        ("deleted", provider_of(&report, &accounts[1]), "no answer for this contract in the provider's submission"),
        ("frozen", provider_of(&report, &accounts[2]), "the provider submitted nothing by the epoch's last block"),
    ] {
        let missed = epochs_with(&provider, "missed");
        assert!(missed.len() >= 2 && missed[0] <= damaged_from + 1, "{name} node: {provider:#}");
        assert_eq!(provider["failed"], 0, "{name} node never answered wrongly: {provider:#}");
        let reason = provider["epochs"]
            .as_array()
            .expect("epochs")
            .iter()
            .find(|e| e["verdict"] == "missed")
            .expect("a miss")["reason"]
            .clone();
        assert_eq!(reason, why, "{name} node");
    }
    assert!(provider_of(&report, &accounts[2])["provider_missed_epochs"].as_u64() >= Some(3));

    // The honest nodes passed every epoch they owed, up to the last closed one.
    let current = report["epoch"].as_u64().expect("epoch");
    for account in &accounts[3..] {
        let honest = provider_of(&report, account);
        assert_eq!((honest["failed"].as_u64(), honest["missed"].as_u64()), (Some(0), Some(0)), "{honest:#}");
        assert_eq!(honest["status"], "Active");
        let passed = epochs_with(&honest, "passed");
        let first = passed[0];
        assert_eq!(
            passed,
            (first..current).chain(passed.last().copied().filter(|last| *last == current)).collect::<Vec<_>>(),
            "{honest:#}"
        );
    }

    // Each node's metrics agree with the ledger.
    let text = network.metrics(0);
    assert!(metric(&text, "strand_node_proof_verdicts_total{verdict=\"failed\"}") >= 2.0, "{text}");
    assert!(metric(&text, "strand_node_proof_damaged_reads_total") >= 1.0);
    let text = network.metrics(1);
    assert!(metric(&text, "strand_node_proofs_unanswerable_total") >= 2.0, "{text}");
    let text = network.metrics(3);
    assert!(metric(&text, "strand_node_proof_verdicts_total{verdict=\"passed\"}") >= 2.0, "{text}");
    assert_eq!(metric(&text, "strand_node_proof_verdicts_total{verdict=\"failed\"}"), 0.0);
    assert!(metric(&text, "strand_node_proof_bytes_read_total") > 0.0);
}
