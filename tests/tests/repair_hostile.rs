//! Repair against a bad sibling and a dying repairer, on a real local
//! network: nine nodes, one stripe of RS(4+2) with 4 MiB fragments (six
//! providers, three free).
//!
//! The holder of shard 0 (`bad`) has one 16 KiB group of its fragment
//! overwritten on disk: its routine checks rarely land there (about one
//! challenge in 256), but a repairer reading the whole fragment is stopped
//! by its BLAKE3 tree. The holder of shard 5 is killed for good. Its
//! repairer reads shards 0..4 (k at once, the next when one fails), so it
//! meets the bad sibling, rebuilds from the others, reports the bad one on
//! the ledger (fragment and chunk), and the ledger challenges that group
//! until the bad holder fails three times and its contract is lost. The
//! two nodes still free are frozen (SIGSTOP) before that contract's order
//! is issued; the one it names is killed, the other thawed: past its
//! deadline the order is reassigned to the live one (the dead repairer
//! backs off), which completes it. The download is byte-identical.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use strand_tests::describe;
use support::*;

/// Blocks of 200 ms per epoch: 3 s epochs.
const EPOCH_BLOCKS: u64 = 15;
/// Fragments of 4 MiB: 256 groups of 16 KiB.
const CHUNK: &str = "4MiB";
/// The group overwritten on the bad sibling's disk.
const BAD_GROUP: u64 = 100;

/// The `strand proofs` entry of the contract first given to `original`.
fn entry_of(report: &Value, original: &str) -> Value {
    report["providers"]
        .as_array()
        .and_then(|entries| entries.iter().find(|entry| entry["original_provider"].as_str() == Some(original)))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_bad_sibling_is_reported_challenged_and_repaired_and_a_dying_repairer_is_replaced() {
    let started = Instant::now();
    let mut network = Network::start_sized(9, EPOCH_BLOCKS);
    let original = sample(&network.path("big.bin"), 16_000_000, 33);
    let upload = network.upload("big.bin", &["--chunk-size", CHUNK]);
    eprintln!("[{:?}] uploaded {upload}", started.elapsed());
    let accounts: Vec<String> = (0..9).map(|index| hex::encode(network.node_account(index))).collect();
    let index_of = |account: &str| accounts.iter().position(|known| known == account).expect("a devnet node");

    // Which node holds which shard, from the owner's upload record.
    let identity = strand_core::keyfile::read(&network.home.path().join("identity.pem")).expect("the owner's key file");
    let record = strand_client::record::UploadRecord::load(network.home.path(), &upload, &identity)
        .expect("the owner's upload record");
    let shard_holders: Vec<usize> = (0..6).map(|shard| index_of(&record.provider_of(0, shard).to_string())).collect();
    let free: Vec<usize> = (0..9).filter(|index| !shard_holders.contains(index)).collect();
    let (bad, victim) = (shard_holders[0], shard_holders[5]);
    eprintln!("shards on nodes {shard_holders:?}, free {free:?}; bad sibling {bad}, victim {victim}");

    wait_for(&network, &upload, Duration::from_secs(90), "every contract to pass once", |report| {
        let entries = report["providers"].as_array().map(Vec::len);
        entries == Some(6)
            && accounts.iter().enumerate().filter(|(index, _)| shard_holders.contains(index)).all(|(_, account)| {
                let entry = entry_of(report, account);
                entry["status"] == "Active" && entry["passed"].as_u64() >= Some(1)
            })
    });

    // One 16 KiB group of the bad sibling's fragment, overwritten on disk.
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(network.node_directory(bad).join("blobs").join("data"))
        .expect("the bad sibling's blob directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "data"))
        .collect();
    assert_eq!(files.len(), 1, "the bad sibling holds one fragment file: {files:?}");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&files[0]).expect("open the fragment");
        file.seek(SeekFrom::Start(BAD_GROUP * 16 * 1024)).expect("seek");
        file.write_all(&[0x5a; 16 * 1024]).expect("overwrite one group");
        file.sync_all().expect("sync");
    }
    network.kill(victim);
    eprintln!("[{:?}] group {BAD_GROUP} of node {bad}'s fragment overwritten; node {victim} killed", started.elapsed());

    // The victim's contract is repaired onto a free node, which met the bad
    // sibling on its way and reported it: fragment 0, the group's first chunk.
    let epochs = |count: u64| Duration::from_millis(200 * EPOCH_BLOCKS * count) + Duration::from_secs(30);
    let report = wait_for(&network, &upload, epochs(12), "the victim's contract to be repaired", |report| {
        let entry = entry_of(report, &accounts[victim]);
        entry["status"] == "Active" && entry["provider"] != accounts[victim].as_str()
    });
    let repairer = index_of(entry_of(&report, &accounts[victim])["provider"].as_str().expect("holder"));
    assert!(free.contains(&repairer), "repaired onto a free node: {repairer}");
    let metrics = network.metrics(repairer);
    assert_eq!(metric(&metrics, "strand_node_repair_orders_total{outcome=\"completed\"}"), 1.0, "{metrics}");
    assert!(metric(&metrics, "strand_node_repair_bad_siblings_total") >= 1.0, "{metrics}");
    eprintln!("[{:?}] node {victim}'s contract repaired onto node {repairer}", started.elapsed());
    if let Some(process) = network.nodes[repairer].as_ref() {
        let log = std::fs::read_to_string(&process.log).unwrap_or_default();
        for line in log.lines().filter(|line| line.contains("node.repair")) {
            eprintln!("  node {repairer}: {line}");
        }
    }
    // The accusation stands on the ledger until the accused group answers
    // (three epochs of failed checks here).
    let accused = wait_for(&network, &upload, epochs(2), "the bad sibling's accusation on the ledger", |report| {
        !entry_of(report, &accounts[bad])["repair"]["accused_of_bad_bytes"].is_null()
    });
    let accusation = entry_of(&accused, &accounts[bad])["repair"]["accused_of_bad_bytes"].clone();
    assert_eq!(accusation["by"].as_str(), Some(accounts[repairer].as_str()), "{accusation:#}");
    assert_eq!((accusation["fragment"].as_u64(), accusation["chunk"].as_u64()), (Some(0), Some(BAD_GROUP * 16)));

    // The accused group is challenged every epoch: three failures and the
    // bad sibling's contract is lost, then ordered to one of the two nodes
    // still free, both frozen first so that neither can finish before the
    // named one is killed.
    let standby: Vec<usize> = free.iter().copied().filter(|index| *index != repairer).collect();
    for index in &standby {
        network.signal(*index, nix::sys::signal::Signal::SIGSTOP);
    }
    let report = wait_for(&network, &upload, epochs(10), "the bad sibling's contract to be ordered", |report| {
        entry_of(report, &accounts[bad])["repair"]["health"] == "under repair"
    });
    let entry = entry_of(&report, &accounts[bad]);
    let failed: Vec<&Value> = entry["epochs"]
        .as_array()
        .map(|epochs| epochs.iter().filter(|epoch| epoch["verdict"] == "failed").collect())
        .unwrap_or_default();
    assert!(
        entry["failed"].as_u64() >= Some(3) && failed.iter().all(|epoch| epoch["reason"].is_string()),
        "the bad sibling failed its targeted checks, each with its reason: {entry:#}"
    );
    let named = index_of(entry["repair"]["repairer"].as_str().expect("repairer"));
    assert!(standby.contains(&named), "one of the free nodes is named: {named}");
    let survivor = standby.iter().copied().find(|index| *index != named).expect("the other free node");
    network.signal(named, nix::sys::signal::Signal::SIGCONT);
    network.kill(named);
    network.signal(survivor, nix::sys::signal::Signal::SIGCONT);
    eprintln!(
        "[{:?}] node {bad}'s contract ordered to node {named}, killed; node {survivor} thawed",
        started.elapsed()
    );

    // Past the deadline the order is reassigned: the dead repairer backs
    // off, the dead victim missed its epochs, every other node holds the
    // upload; the survivor rebuilds it.
    let report = wait_for(&network, &upload, epochs(14), "the reassigned order to complete", |report| {
        let entry = entry_of(report, &accounts[bad]);
        entry["status"] == "Active" && entry["provider"] == accounts[survivor].as_str()
    });
    let entry = entry_of(&report, &accounts[bad]);
    assert_eq!(entry["repair"]["health"], "repaired", "{entry:#}");
    eprintln!("[{:?}] reassigned and rebuilt on node {survivor}", started.elapsed());

    let output = network.download(&upload, "copy.bin", &[]);
    assert!(output.status.success(), "download: {}", describe(&output));
    assert_eq!(std::fs::read(network.path("copy.bin")).expect("copy"), original, "byte-identical");
    eprintln!("[{:?}] download byte-identical", started.elapsed());
}
