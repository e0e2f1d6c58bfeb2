//! The sequencer, its store, the TCP protocol and followers, in process.

use std::time::Duration;

use proptest::prelude::*;
use strand_contracts::block::{Genesis, ValidatorSet};
use strand_contracts::transaction::{Body, FailureDomain, ProviderRegistration};
use strand_contracts::{AccountId, Outcome, Replica, Transaction};
use strand_core::Identity;
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::follower::{FollowError, Follower};
use strand_ledger_service::protocol::TransactionStatus;
use strand_ledger_service::sequencer::{self, SequencerConfig};
use strand_ledger_service::server;
use strand_ledger_service::store::LedgerStore;

fn identity(seed: u8) -> Identity {
    Identity::from_secret_bytes(&[seed; 32])
}

fn genesis(sequencer: &Identity) -> Genesis {
    Genesis {
        name: "strand-service-test".into(),
        validators: ValidatorSet::sequencer(AccountId::of(&sequencer.public_key())),
        epoch_blocks: 5,
        timestamp_ms: 1_700_000_000_000,
    }
}

fn register(genesis: &Genesis, who: &Identity, nonce: u64, organisation: &str) -> Vec<u8> {
    let body = Body::RegisterProvider(ProviderRegistration {
        endpoints: vec!["127.0.0.1:1".into()],
        capacity_bytes: 1 << 30,
        domain: FailureDomain { organisation: organisation.into(), site: "s".into(), jurisdiction: "EU".into() },
    });
    Transaction::sign(genesis.chain(), who, nonce, body).to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_transactions_are_finalised_served_and_followed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let sequencer_key = identity(100);
    let genesis = genesis(&sequencer_key);
    let (store, replica) = LedgerStore::open(&directory.path().join("sequencer.redb"), &genesis).expect("store");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let config = SequencerConfig { block_interval: Duration::from_millis(50), ..Default::default() };
    let (handle, task) =
        sequencer::start(store, replica, sequencer_key, config, Default::default(), shutdown.clone()).expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let server = tokio::spawn(server::serve(listener, handle.clone(), genesis.clone(), shutdown));

    let mut client = LedgerClient::connect(&address).await.expect("connect");
    assert_eq!(client.genesis().await.expect("genesis"), genesis);
    let mut hashes = Vec::new();
    for seed in 1..=20u8 {
        let hash =
            client.submit(register(&genesis, &identity(seed), 1, "org")).await.expect("submit").expect("admitted");
        hashes.push(hash);
    }
    let refused = client.submit(vec![1, 2, 3]).await.expect("submit");
    assert!(refused.is_err(), "garbage is not admitted");
    let replay = client.submit(register(&genesis, &identity(1), 1, "again")).await.expect("submit");
    assert!(replay.is_ok() || replay.as_ref().is_err_and(|reason| reason.contains("nonce")));

    let status = client.status().await.expect("status");
    let reached = client.wait_for_height(status.height + 3, Duration::from_secs(10)).await.expect("wait");
    assert!(reached.height >= status.height + 3, "blocks keep coming");
    for hash in &hashes {
        match client.transaction(*hash).await.expect("query") {
            TransactionStatus::Finalised { outcome, .. } => assert_eq!(outcome, Outcome::Accepted),
            other => panic!("transaction {hash} not finalised: {other:?}"),
        }
    }
    assert_eq!(client.transaction(strand_contracts::Digest([9; 32])).await.expect("query"), TransactionStatus::Unknown);

    // A follower with its own store, over TCP, checks every block.
    let follower_path = directory.path().join("follower.redb");
    let (follower_store, follower_replica) = LedgerStore::open(&follower_path, &genesis).expect("follower store");
    let mut follower = Follower::new(follower_replica, Some(follower_store));
    follower.catch_up(&mut client).await.expect("honest blocks");
    assert!(follower.replica().height() >= reached.height);
    assert_eq!(follower.replica().state().providers.len(), 20);
    let (height, root) = (follower.replica().height(), follower.replica().state().root());
    drop(follower);
    let (_, reopened) = LedgerStore::open(&follower_path, &genesis).expect("reopen");
    assert_eq!((reopened.height(), reopened.state().root()), (height, root), "a reopened follower resumes exactly");

    stop.send(true).expect("stop");
    task.await.expect("sequencer task");
    server.await.expect("server task");
}

#[test]
fn a_follower_refuses_a_forged_block_and_keeps_its_state() {
    let sequencer_key = identity(100);
    let genesis = genesis(&sequencer_key);
    let mut chain = Replica::new(&genesis);
    let (block, _) = chain.propose(1_700_000_001_000, vec![register(&genesis, &identity(1), 1, "a")], &sequencer_key);
    let mut forged = block.clone();
    forged.finality = strand_contracts::block::Finality::Signatures(vec![strand_contracts::block::sign_block(
        &forged.header.hash(),
        &identity(7),
    )]);
    let mut follower = Follower::new(Replica::new(&genesis), None);
    let error = follower.ingest(&[forged.to_bytes()]).expect_err("forged");
    assert!(matches!(error, FollowError::Refused { height: 1, .. }), "{error}");
    assert!(error.to_string().contains("not a validator"), "{error}");
    assert_eq!(follower.replica().height(), 0);
    assert!(matches!(follower.ingest(&[vec![0, 1]]), Err(FollowError::Undecodable(_))));
    follower.ingest(&[block.to_bytes()]).expect("honest block");
    assert_eq!(follower.replica().state().root(), chain.state().root());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Two replicas, one persisted in redb and reopened from disk midway,
    /// agree on the state root at every height while applying random valid
    /// and invalid transactions.
    #[test]
    fn a_replica_restarted_from_redb_agrees_at_every_height(
        blocks in proptest::collection::vec(proptest::collection::vec((0u8..6, 0u8..4), 0..6), 1..90),
        restart_at in 0usize..90,
        snapshot_at in 0usize..90,
    ) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("replica.redb");
        let sequencer_key = identity(100);
        let genesis = genesis(&sequencer_key);
        let mut chain = Replica::new(&genesis);
        let (store, replica) = LedgerStore::open(&path, &genesis).expect("store");
        let mut follower = Follower::new(replica, Some(store));
        let mut nonces = [0u64; 6];
        for (index, transactions) in blocks.iter().enumerate() {
            let transactions: Vec<Vec<u8>> = transactions
                .iter()
                .map(|&(who, kind)| {
                    let sender = identity(who + 1);
                    match kind {
                        0 => vec![who; 7],
                        1 => register(&genesis, &sender, nonces[who as usize] + 5, "skipped"),
                        _ => {
                            nonces[who as usize] += 1;
                            register(&genesis, &sender, nonces[who as usize], &format!("org-{kind}"))
                        }
                    }
                })
                .collect();
            let (block, _) = chain.propose(1_700_000_000_000 + index as u64 * 1000, transactions, &sequencer_key);
            if index == snapshot_at {
                // A clean shutdown writes a snapshot off the 64-block rhythm.
                follower.snapshot().expect("snapshot");
            }
            if index == restart_at {
                drop(follower);
                let (store, replica) = LedgerStore::open(&path, &genesis).expect("reopen");
                follower = Follower::new(replica, Some(store));
            }
            follower.ingest(&[block.to_bytes()]).map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(follower.replica().state().root(), chain.state().root());
            prop_assert_eq!(follower.replica().height(), chain.height());
        }
    }
}
