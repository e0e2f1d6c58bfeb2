//! The real `strand-sequencer` process: a SIGKILL during a burst of
//! transactions loses nothing that was acknowledged.

use std::process::Command;
use std::time::Duration;

use strand_contracts::transaction::{Body, FailureDomain, ProviderRegistration};
use strand_contracts::{Digest, Replica, Transaction};
use strand_core::Identity;
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::follower::Follower;
use strand_ledger_service::protocol::TransactionStatus;
use strand_tests::{ChildGuard, binary};

fn start(data_dir: &std::path::Path) -> (ChildGuard, String) {
    let mut command = Command::new(binary("strand-ledger-service", "strand-sequencer"));
    command.args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--block-interval-ms", "100"]);
    command.arg("--data-dir").arg(data_dir);
    let (child, line) = ChildGuard::spawn_and_wait_for(command, "listening on", Duration::from_secs(60));
    let address = line.split_whitespace().nth(3).expect("address in the listening line").to_string();
    (child, address)
}

fn registration(genesis_chain: Digest, who: &Identity, nonce: u64) -> Vec<u8> {
    let body = Body::RegisterProvider(ProviderRegistration {
        endpoints: vec![format!("127.0.0.1:{nonce}")],
        capacity_bytes: 1 << 30,
        domain: FailureDomain { organisation: "org".into(), site: "site".into(), jurisdiction: "EU".into() },
    });
    Transaction::sign(genesis_chain, who, nonce, body).to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_acknowledged_transaction() {
    let data = tempfile::tempdir().expect("temporary directory");
    let (sequencer, address) = start(data.path());
    let genesis = LedgerClient::connect(&address).await.expect("connect").genesis().await.expect("genesis");
    let chain = genesis.chain();

    // Four submitters, each with its own accounts, submitting as fast as the
    // sequencer acknowledges; the sequencer is killed in the middle: once
    // 100 are acknowledged (not after a fixed time, which a fast machine
    // outruns), of a burst of 4,000.
    const BURST: usize = 4 * 5 * 200;
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut submitters = Vec::new();
    for submitter in 0..4u8 {
        let address = address.clone();
        let counted = std::sync::Arc::clone(&counted);
        submitters.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let Ok(mut client) = LedgerClient::connect(&address).await else { return acknowledged };
            for nonce in 1..=200u64 {
                for account in 0..5u8 {
                    let who = Identity::from_secret_bytes(&[submitter * 10 + account + 1; 32]);
                    match client.submit(registration(chain, &who, nonce)).await {
                        Ok(Ok(hash)) => {
                            acknowledged.push(hash);
                            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(Err(reason)) => panic!("refused a valid transaction: {reason}"),
                        Err(_) => return acknowledged, // the sequencer is gone
                    }
                }
            }
            acknowledged
        }));
    }
    let waited = std::time::Instant::now();
    while counted.load(std::sync::atomic::Ordering::Relaxed) < 100 {
        assert!(waited.elapsed() < Duration::from_secs(60), "the burst did not start within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sequencer.kill();
    let mut acknowledged: Vec<Digest> = Vec::new();
    for submitter in submitters {
        acknowledged.extend(submitter.await.expect("submitter"));
    }
    assert!(
        acknowledged.len() >= 100,
        "the burst was under way when the sequencer died ({} acknowledged)",
        acknowledged.len()
    );
    assert!(acknowledged.len() < BURST, "the kill came before the burst ended");

    let (_sequencer, address) = start(data.path());
    let mut client = LedgerClient::connect(&address).await.expect("reconnect");
    let restarted = client.status().await.expect("status");
    let status = client.wait_for_height(restarted.height + 5, Duration::from_secs(30)).await.expect("wait");
    assert!(status.height >= restarted.height + 5, "the chain continues after the restart");

    let mut finalised = 0;
    for hash in &acknowledged {
        match client.transaction(*hash).await.expect("query") {
            TransactionStatus::Finalised { .. } => finalised += 1,
            TransactionStatus::Dropped(reason) => assert!(!reason.is_empty()),
            other => panic!("acknowledged transaction {hash} is {other:?} after the restart"),
        }
    }
    assert!(finalised > 0);

    // The whole chain still verifies from genesis, block by block.
    let mut follower = Follower::new(Replica::new(&genesis), None);
    follower.catch_up(&mut client).await.expect("every stored block verifies");
    assert!(follower.replica().height() >= status.height);
    eprintln!("{} acknowledged before the kill, {finalised} finalised, the rest cleanly dropped", acknowledged.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strand_ledger_shows_status_transactions_and_accounts_from_a_verified_replica() {
    let data = tempfile::tempdir().expect("temporary directory");
    let home = tempfile::tempdir().expect("temporary directory");
    let (_sequencer, address) = start(data.path());
    let mut client = LedgerClient::connect(&address).await.expect("connect");
    let genesis = client.genesis().await.expect("genesis");
    let provider = Identity::from_secret_bytes(&[77; 32]);
    let hash = client.submit(registration(genesis.chain(), &provider, 1)).await.expect("submit").expect("admitted");
    let now = client.status().await.expect("status").height;
    client.wait_for_height(now + 2, Duration::from_secs(10)).await.expect("wait");

    let ledger = |arguments: &[&str]| {
        let output = Command::new(binary("strand-client", "strand"))
            .args(["ledger", "--ledger", &address])
            .args(arguments)
            .arg("--json")
            .env("STRAND_HOME", home.path())
            .output()
            .expect("run strand");
        assert!(output.status.success(), "{}", strand_tests::describe(&output));
        strand_tests::json(&output)
    };
    let status = ledger(&["status"]);
    assert_eq!(status["chain"], genesis.chain().to_string());
    assert!(status["height"].as_u64().is_some_and(|height| height >= now + 2));
    let transaction = ledger(&["tx", &hash.to_string()]);
    assert_eq!(transaction["status"], "finalised");
    assert_eq!(transaction["outcome"]["accepted"], true);
    let height = transaction["height"].as_u64().expect("height");
    let block = ledger(&["block", &height.to_string()]);
    assert_eq!(block["transactions"][0]["kind"], "register-provider");
    let account = ledger(&["account", &provider.public_key().to_string()]);
    assert_eq!(account["nonce"], 1);
    assert_eq!(account["provider"]["organisation"], "org");
    assert!(
        home.path().join("ledger").read_dir().expect("replica directory").next().is_some(),
        "a local replica is kept"
    );
}
