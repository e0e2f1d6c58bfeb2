//! `strand-node drain`: the provider leaves the network gracefully. It
//! sends `Drain` to the ledger (no new contracts or repair orders from then
//! on; repair moves each of its contracts to another provider while this
//! node keeps holding and proving them), then, with `--wait`, reports the
//! contracts still held until none is left and the node can be stopped.
//!
//! Works beside the running node: it follows the ledger in memory (the
//! node's replica file stays the node's), and if its transaction meets the
//! node's own pending one on the same nonce it waits a block and tries the
//! next nonce.

use std::time::Duration;

use anyhow::Context as _;
use strand_contracts::{AccountId, Body, Outcome, Replica, Transaction};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::follower::Follower;
use strand_ledger_service::protocol::TransactionStatus;

use crate::config::NodeConfig;

/// Attempts at a nonce before giving up.
const ATTEMPTS: usize = 20;
/// How long to wait for a block.
const BLOCK_WAIT: Duration = Duration::from_secs(30);

/// Active contracts `account` holds on the ledger.
fn held(replica: &Replica, account: &AccountId) -> usize {
    let active = strand_contracts::state::ContractStatus::Active;
    replica
        .state()
        .contracts
        .iter()
        .filter(|(_, contract)| contract.holder == *account && contract.status == active)
        .count()
}

/// Sends `Drain` for the node of `config`; with `wait`, returns once it
/// holds no active contract.
pub async fn drain(config: &NodeConfig, wait: bool) -> anyhow::Result<()> {
    let identity = strand_core::keyfile::read(&config.key_path())
        .with_context(|| format!("cannot read the node's key {}", config.key_path().display()))?;
    let account = AccountId::of(&identity.public_key());
    let mut client = LedgerClient::connect(&config.ledger).await?;
    let genesis = client.genesis().await?;
    let mut follower = Follower::new(Replica::new(&genesis), None);
    follower.catch_up(&mut client).await.context("cannot follow the ledger")?;
    let state = follower.replica().state();
    let provider = state.providers.get(&account).with_context(|| format!("{account} is not a registered provider"))?;
    if let Some(since) = provider.draining_since {
        println!("provider {account} has been draining since epoch {since}");
    } else {
        submit_drain(&mut client, &mut follower, &identity, &genesis.chain()).await?;
        println!("provider {account} is draining from epoch {}", follower.replica().state().epoch());
    }
    let mut last = usize::MAX;
    loop {
        let left = held(follower.replica(), &account);
        if left != last {
            println!("{left} contract(s) still held; repair moves them to other providers");
            last = left;
        }
        if left == 0 {
            println!("nothing left to move: the node can be stopped");
            return Ok(());
        }
        if !wait {
            println!("keep the node running until this reaches 0 (`strand-node drain --wait` follows it)");
            return Ok(());
        }
        let status = client.status().await?;
        client.wait_for_height(status.height + 1, BLOCK_WAIT).await?;
        follower.catch_up(&mut client).await?;
    }
}

async fn submit_drain(
    client: &mut LedgerClient,
    follower: &mut Follower,
    identity: &strand_core::Identity,
    chain: &strand_contracts::Digest,
) -> anyhow::Result<()> {
    let account = AccountId::of(&identity.public_key());
    for _ in 0..ATTEMPTS {
        let nonce = follower.replica().state().accounts.get(&account).map_or(0, |record| record.nonce) + 1;
        let transaction = Transaction::sign(*chain, identity, nonce, Body::Drain);
        let hash = match client.submit(transaction.to_bytes()).await? {
            Ok(hash) => hash,
            Err(reason) => {
                // Most likely the running node's own transaction on this
                // nonce: try again after a block.
                tracing::info!(%reason, nonce, "drain not admitted yet");
                let status = client.status().await?;
                client.wait_for_height(status.height + 1, BLOCK_WAIT).await?;
                follower.catch_up(client).await?;
                continue;
            }
        };
        loop {
            let status = client.status().await?;
            client.wait_for_height(status.height + 1, BLOCK_WAIT).await?;
            follower.catch_up(client).await?;
            match client.transaction(hash).await? {
                TransactionStatus::Finalised { outcome: Outcome::Accepted, .. } => return Ok(()),
                TransactionStatus::Finalised { outcome: Outcome::Rejected(reason), .. } => {
                    if reason.consumes_nonce() {
                        anyhow::bail!("the ledger refused the drain: {reason}");
                    }
                    break;
                }
                TransactionStatus::Dropped(_) => break,
                TransactionStatus::Pending | TransactionStatus::Unknown => {}
            }
        }
    }
    anyhow::bail!("the drain was not accepted after {ATTEMPTS} attempts")
}
