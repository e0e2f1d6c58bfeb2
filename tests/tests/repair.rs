//! Repair on a real local network: eight nodes, an upload of one stripe of
//! RS(4+2) (six providers, two free). One provider restarts at once and
//! keeps its contract. One is killed for good: the ledger declares its
//! contract lost, orders it to a free node, which reads four siblings under
//! the order, rebuilds the lost fragment, reports, and then passes its
//! proofs. One drains: its contract moves to the other free node with no
//! strike. Two more of the original providers are killed: the download is
//! still byte-identical (without the repairs, the stripe would have two of
//! six fragments left, fewer than k = 4).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use strand_tests::{describe, json};
use support::*;

/// Blocks of 200 ms per epoch: 3 s epochs.
const EPOCH_BLOCKS: u64 = 15;

/// The (provider, status, passed) of every contract of the upload.
fn contracts(report: &Value) -> Vec<(String, String, u64)> {
    report["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|entry| {
            (
                entry["provider"].as_str().expect("provider").to_string(),
                entry["status"].as_str().unwrap_or_default().to_string(),
                entry["passed"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The `strand proofs` / `strand status` entry of the contract `account` holds.
fn entry_of(report: &Value, account: &str) -> Option<Value> {
    report["providers"].as_array()?.iter().find(|entry| entry["provider"].as_str() == Some(account)).cloned()
}

#[test]
fn a_killed_provider_is_repaired_onto_another_node_and_the_upload_survives_two_more_losses() {
    let started = Instant::now();
    let mut network = Network::start_sized(8, EPOCH_BLOCKS);
    let original = sample(&network.path("one-stripe.bin"), 200_000, 21);
    let upload = network.upload("one-stripe.bin", &["--chunk-size", "64KiB"]);
    eprintln!("[{:?}] uploaded", started.elapsed());
    let accounts: Vec<String> = (0..8).map(|index| hex::encode(network.node_account(index))).collect();
    let index_of = |account: &str| accounts.iter().position(|known| known == account).expect("a devnet node");
    for (index, account) in accounts.iter().enumerate() {
        eprintln!("node {index}: {}", &account[..10]);
    }

    let report = wait_for(&network, &upload, Duration::from_secs(60), "every contract to pass once", |report| {
        let all = contracts(report);
        all.len() == 6 && all.iter().all(|(_, status, passed)| status == "Active" && *passed >= 1)
    });
    let holders: Vec<usize> = contracts(&report).iter().map(|(provider, _, _)| index_of(provider)).collect();
    let free: Vec<usize> = (0..8).filter(|index| !holders.contains(index)).collect();
    assert_eq!(free.len(), 2);
    // A restart within the strike window is never repaired away.
    let restarted = holders[4];
    network.kill(restarted);
    network.restart(restarted);
    eprintln!("[{:?}] node {restarted} restarted", started.elapsed());
    let victim = holders[0];
    eprintln!("[{:?}] holders {holders:?}, free {free:?}; killing node {victim}", started.elapsed());
    network.kill(victim);

    // Lost after three silent epochs, ordered at once, rebuilt and moved
    // within the order's deadline: about eight epochs in all.
    let limit = Duration::from_millis(200 * EPOCH_BLOCKS * 12) + Duration::from_secs(30);
    let report = wait_for(&network, &upload, limit, "the lost contract to be repaired onto a free node", |report| {
        contracts(report).iter().all(|(provider, status, _)| *provider != accounts[victim] && status == "Active")
    });
    let repaired_at = started.elapsed();
    let repairer = contracts(&report)
        .iter()
        .map(|(provider, _, _)| index_of(provider))
        .find(|index| free.contains(index))
        .expect("one contract moved to a free node");
    eprintln!("[{:?}] repaired onto node {repairer} at epoch {}", repaired_at, report["epoch"]);

    // The repairer's proofs pass from then on.
    wait_for(&network, &upload, Duration::from_secs(60), "the repairer to pass its proofs", |report| {
        let repaired = entry_of(report, &accounts[repairer]).unwrap_or_default();
        repaired["passed"].as_u64() >= Some(2) && repaired["failed"] == 0 && repaired["repair"]["health"] == "repaired"
    });
    let status = network.strand(&["status", &upload, "--json"]);
    assert!(status.status.success(), "strand status: {}", describe(&status));
    let status = json(&status);
    assert_eq!(status["unrecoverable_stripes"], serde_json::json!([]), "{status:#}");
    let moved = entry_of(&status, &accounts[repairer]).expect("the repaired contract in the status");
    assert_eq!(
        (moved["reachable"].as_bool(), moved["repair"]["health"].as_str()),
        (Some(true), Some("repaired")),
        "{moved:#}"
    );
    assert_eq!(moved["original_provider"].as_str(), Some(accounts[victim].as_str()));
    let metrics = network.metrics(repairer);
    assert_eq!(metric(&metrics, "strand_node_repair_orders_total{outcome=\"completed\"}"), 1.0, "{metrics}");
    let read = metric(&metrics, "strand_node_repair_bytes_read_total");
    let written = metric(&metrics, "strand_node_repair_bytes_written_total");
    eprintln!("repair read {read} bytes to write {written}");
    assert_eq!(read, 4.0 * written, "k siblings read per rebuilt fragment");
    // The siblings receipted the repair reads: `strand audit` lists them as
    // the repairer's, under its order (once each holder's batch for that
    // epoch is on the ledger).
    let deadline = Instant::now() + Duration::from_secs(30);
    let repair_reads = loop {
        let output = network.strand(&["audit", &upload, "--json"]);
        assert!(output.status.success(), "strand audit: {}", describe(&output));
        let audit = json(&output);
        let reads: Vec<Value> = audit["reads"]
            .as_array()
            .map(|reads| reads.iter().filter(|read| read["as"] == "repairer").cloned().collect())
            .unwrap_or_default();
        let bytes: u64 = reads.iter().map(|read| read["bytes"].as_u64().unwrap_or(0)).sum();
        if bytes as f64 >= read || Instant::now() > deadline {
            break reads;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let bytes: u64 = repair_reads.iter().map(|read| read["bytes"].as_u64().unwrap_or(0)).sum();
    assert_eq!(bytes as f64, read, "every byte the repairer read is receipted: {repair_reads:#?}");
    assert!(
        repair_reads.iter().all(|read| read["reader"] == accounts[repairer].as_str()
            && read["repair_order"].is_string()
            && read["credential"].is_null()),
        "{repair_reads:#?}"
    );
    // Ledger-wide counts, from the ledger service: the contracts, and the
    // order that ended with the move.
    let ledger = network.ledger_metrics();
    assert!(metric(&ledger, "strand_ledger_contracts{status=\"active\"}") >= 6.0, "{ledger}");
    assert_eq!(metric(&ledger, "strand_ledger_repair_orders_total{outcome=\"completed\"}"), 1.0, "{ledger}");
    assert!(ledger.contains("strand_ledger_repair_orders_open"), "{ledger}");

    // A provider that drains moves its contract without any strike: to
    // the other free node (the first holds the upload now).
    let drained = holders[3];
    let config = network.config.directory.join(format!("node-{}.toml", drained + 1));
    let node_binary = strand_tests::binary("strand-node", "strand-node");
    let output = std::process::Command::new(node_binary)
        .args(["drain", "--config", config.to_str().expect("utf-8")])
        .output()
        .expect("strand-node drain runs");
    assert!(output.status.success(), "strand-node drain: {}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("is draining"), "{}", describe(&output));
    let other_free = free.iter().copied().find(|index| *index != repairer).expect("a second free node");
    let report = wait_for(&network, &upload, limit, "the drained contract to move", |report| {
        contracts(report).iter().all(|(provider, status, _)| *provider != accounts[drained] && status == "Active")
    });
    let moved_to: Vec<usize> = contracts(&report).iter().map(|(provider, _, _)| index_of(provider)).collect();
    assert!(moved_to.contains(&other_free), "moved to the other free node: {moved_to:?}");
    let drained_record = entry_of(&report, &accounts[other_free]).expect("the moved contract");
    assert_eq!(drained_record["failed"], 0, "no strikes needed: {drained_record:#}");
    eprintln!("[{:?}] node {drained} drained onto node {other_free}", started.elapsed());
    // The restarted node kept its contract all along.
    let kept = contracts(&report);
    assert!(
        kept.iter().any(|(provider, status, _)| *provider == accounts[restarted] && status == "Active"),
        "{kept:?}"
    );

    // Two more original providers die: the stripe keeps four fragments.
    let others: Vec<usize> =
        holders.iter().copied().filter(|index| *index != victim && *index != drained).take(2).collect();
    for index in &others {
        network.kill(*index);
    }
    let output = network.download(&upload, "copy.bin", &[]);
    if !output.status.success() {
        for index in [repairer, other_free, restarted, drained] {
            if let Some(process) = network.nodes[index].as_ref() {
                let log = std::fs::read(&process.log)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_else(|error| format!("{}: {error}", process.log.display()));
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("--- node {index} log (last lines, newest first):\n{}", tail.join("\n"));
            }
        }
    }
    assert!(output.status.success(), "download after three losses and two repairs: {}", describe(&output));
    assert_eq!(std::fs::read(network.path("copy.bin")).expect("copy"), original, "byte-identical");
    eprintln!("[{:?}] download byte-identical with nodes {victim} and {others:?} dead", started.elapsed());
}
