//! A provider with a normal workload keeps every contract. On a real network
//! of six nodes (3-second epochs), 200 uploads give every provider 200
//! contracts; over the ten epochs after (the rotation's period for 200
//! contracts), every provider submits its bounded schedule every epoch,
//! under 128 KiB, every check of every contract passes, none is ever missed
//! or failed, and the rotation reaches every contract.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use strand_client::network::UploadOptions;
use strand_contracts::state::{ContractStatus, LedgerState};
use strand_contracts::transaction::Body;
use strand_contracts::{AccountId, Block, Transaction};
use strand_core::{CodecParams, Identity};
use strand_proof_of_storage::schedule::CHALLENGES_PER_PROVIDER_MAX;
use support::*;

const OWNERS: usize = 10;
const UPLOADS_PER_OWNER: usize = 20;
const CONTRACTS_PER_PROVIDER: u32 = (OWNERS * UPLOADS_PER_OWNER) as u32;
/// Epochs watched after the last contract joined the rosters.
const EPOCHS_WATCHED: u64 = 10;

/// The verified ledger state and every block's bytes, from the service.
async fn ledger(address: &str) -> (LedgerState, Vec<Block>) {
    let mut client = strand_ledger_service::client::LedgerClient::connect(address).await.expect("ledger");
    let genesis = client.genesis().await.expect("genesis");
    let mut follower = strand_ledger_service::follower::Follower::new(strand_contracts::Replica::new(&genesis), None);
    let mut blocks = Vec::new();
    loop {
        let batch = client.blocks(follower.replica().height() + 1, 128).await.expect("blocks");
        if batch.is_empty() {
            break;
        }
        follower.ingest(&batch).expect("the blocks check out");
        blocks.extend(batch.iter().map(|bytes| Block::from_bytes(bytes).expect("a block")));
    }
    (follower.replica().state().clone(), blocks)
}

/// One owner's uploads of small files (one stripe each: one contract on
/// every node per upload), one after the other.
async fn uploads(address: String, directory: std::path::PathBuf, owner: usize) {
    let identity = Identity::generate(&mut rand::rng());
    let home = directory.join(format!("owner-{owner}"));
    std::fs::create_dir_all(&home).expect("home");
    let params = CodecParams { chunk_size: 4096, ..CodecParams::default() };
    let options = UploadOptions { params, term_epochs: 10_000, threads: 1 };
    for upload in 0..UPLOADS_PER_OWNER {
        let file = home.join(format!("sample-{upload}"));
        sample(&file, 16 * 1024 - 100, (owner * 1000 + upload) as u64);
        let (mut client, genesis) = strand_client::ledger::connect(&address, &home).await.expect("ledger");
        let follower = strand_client::ledger::sync(&mut client, &genesis, &home).await.expect("replica");
        let state = follower.replica().state().clone();
        drop(follower);
        let started = Instant::now();
        strand_client::network::upload(&file, &identity, &mut client, &state, &home, options, |_| {})
            .await
            .unwrap_or_else(|error| panic!("owner {owner}, upload {upload}: {error:#}"));
        eprintln!("owner {owner} upload {upload}: {:.1} s", started.elapsed().as_secs_f64());
    }
}

#[test]
fn every_provider_with_200_contracts_passes_every_epoch() {
    let started = Instant::now();
    let network = Network::start_with_epochs(15);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let work = tempfile::tempdir().expect("work");
    runtime.block_on(async {
        let tasks: Vec<_> = (0..OWNERS)
            .map(|owner| tokio::spawn(uploads(network.ledger.clone(), work.path().to_path_buf(), owner)))
            .collect();
        for task in tasks {
            task.await.expect("the owner's uploads");
        }
    });
    eprintln!("[{:.0} s] {} uploads done", started.elapsed().as_secs_f64(), OWNERS * UPLOADS_PER_OWNER);

    // Every provider holds 200 contracts; the last joined its roster at the
    // epoch after it was opened.
    let (state, _) = runtime.block_on(ledger(&network.ledger));
    let providers: Vec<AccountId> = (0..6).map(|node| AccountId(network.node_account(node))).collect();
    let mut joined = 0;
    for provider in &providers {
        let held: Vec<_> = state.contracts.iter().filter(|(_, c)| c.terms.provider == *provider).collect();
        assert_eq!(held.len() as u32, CONTRACTS_PER_PROVIDER, "every upload put one contract on every node");
        joined = joined.max(held.iter().map(|(_, contract)| contract.first_proof_epoch()).max().expect("contracts"));
    }
    let last = joined + EPOCHS_WATCHED - 1;
    let deadline = Instant::now() + Duration::from_secs(3 * (last - state.epoch() + 2) + 60);
    let (state, blocks) = loop {
        let (state, blocks) = runtime.block_on(ledger(&network.ledger));
        if state.epoch() > last {
            break (state, blocks);
        }
        assert!(Instant::now() < deadline, "epoch {last} never closed (at {})", state.epoch());
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!("[{:.0} s] epochs {joined}..={last} closed", started.elapsed().as_secs_f64());

    // Each provider's submission per epoch: its size and its checks.
    let mut submissions: HashMap<(AccountId, u64), usize> = HashMap::new();
    for transaction in blocks.iter().flat_map(|block| &block.transactions) {
        let Ok(decoded) = Transaction::from_bytes(transaction) else { continue };
        if let Body::SubmitProofs { epoch, .. } = decoded.body {
            submissions.insert((decoded.sender, epoch), transaction.len());
        }
    }
    let mut checks_per_epoch: BTreeMap<u64, usize> = BTreeMap::new();
    for provider in &providers {
        let roster = state.providers.get(provider).expect("provider").roster;
        assert_eq!(roster.contracts, CONTRACTS_PER_PROVIDER);
        let liveness = state.providers.get(provider).expect("provider").liveness;
        for epoch in joined..=last {
            assert!(!liveness.missed_in(epoch), "provider {} missed epoch {epoch}", provider.short());
            let bytes = submissions[&(*provider, epoch)];
            assert!(bytes <= 128 * 1024, "provider {} epoch {epoch}: {bytes} bytes", provider.short());
        }
        assert_eq!(liveness.missed_in_row, 0);
    }
    // No check failed or went unanswered (those are the ledger's records);
    // passes are counted in the contracts' tallies.
    let failures: Vec<_> = state.proofs.iter().map(|(key, record)| (*key, record.status)).collect();
    assert!(failures.is_empty(), "{failures:?}");
    for (_, contract) in state.contracts.iter() {
        for epoch in joined..=last {
            if contract.proofs.passed_in(epoch) {
                *checks_per_epoch.entry(epoch).or_default() += 1;
            }
        }
    }
    for provider in &providers {
        for (id, contract) in state.contracts.iter().filter(|(_, c)| c.terms.provider == *provider) {
            assert_eq!(contract.status, ContractStatus::Active, "contract {}", id.short());
            let tally = contract.proofs;
            assert_eq!((tally.failed, tally.missed, tally.strikes), (0, 0, 0), "contract {}", id.short());
            assert!(tally.passed >= 1, "the rotation reached contract {} within {EPOCHS_WATCHED} epochs", id.short());
        }
    }
    // Each provider's schedule touches at most 48 contracts an epoch (and at
    // least its 20 rotation contracts).
    for (epoch, checks) in &checks_per_epoch {
        assert!(
            (6 * 20..=6 * CHALLENGES_PER_PROVIDER_MAX as usize).contains(checks),
            "epoch {epoch}: {checks} contracts checked by six providers"
        );
    }
    let largest = submissions.values().max().copied().unwrap_or(0);
    eprintln!(
        "[{:.0} s] {} providers × {CONTRACTS_PER_PROVIDER} contracts: every check passed over {EPOCHS_WATCHED} epochs; \
         largest submission {largest} bytes; checks per epoch {checks_per_epoch:?}",
        started.elapsed().as_secs_f64(),
        providers.len(),
    );
    // The nodes' own view agrees: passed verdicts only.
    for node in 0..6 {
        let text = network.metrics(node);
        assert_eq!(metric(&text, "strand_node_proof_verdicts_total{verdict=\"failed\"}"), 0.0);
        assert_eq!(metric(&text, "strand_node_proof_verdicts_total{verdict=\"missed\"}"), 0.0);
        assert!(metric(&text, "strand_node_proof_verdicts_total{verdict=\"passed\"}") >= 20.0);
    }
}
