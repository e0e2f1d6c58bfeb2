//! Following the ledger: the node's own verified replica, kept current from
//! the ledger service and from blocks gossiped by peers, and the node's
//! registration as a provider.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use strand_contracts::transaction::{Body, FailureDomain, ProviderRegistration};
use strand_contracts::{Block, Genesis, Outcome, Transaction};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::follower::Follower;
use strand_ledger_service::protocol::TransactionStatus;
use strand_ledger_service::store::LedgerStore;
use strand_net::p2p::P2pHandle;
use tokio::sync::{mpsc, watch};

use super::Node;
use crate::config::NodeConfig;

/// How long the node waits for each new block before asking again.
const BLOCK_WAIT: Duration = Duration::from_secs(2);
/// Pause before reconnecting to an unreachable ledger service.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Gossiped blocks waiting to be checked.
const GOSSIP_QUEUE_MAX: usize = 64;

/// Connects to the ledger service, opens the replica (creating it from the
/// service's genesis on first start) and catches up.
pub(super) async fn open(config: &NodeConfig) -> anyhow::Result<(Follower, LedgerClient, Genesis)> {
    let mut client = LedgerClient::connect(&config.ledger).await?;
    let served = client.genesis().await?;
    let genesis = match LedgerStore::genesis(&super::ledger_path(config))? {
        Some(stored) if stored.chain() != served.chain() => anyhow::bail!(
            "the ledger service at {} serves chain {}, but this node's data directory holds chain {}",
            config.ledger,
            served.chain(),
            stored.chain()
        ),
        Some(stored) => stored,
        None => served,
    };
    let (store, replica) = super::open_replica(config, &genesis)?;
    let mut follower = Follower::new(replica, Some(store));
    follower.catch_up(&mut client).await.context("cannot bring the ledger replica up to date")?;
    Ok((follower, client, genesis))
}

fn publish_state(node: &Node, follower: &Follower, service_height: u64) {
    let state = follower.replica().state().clone();
    let height = follower.replica().height();
    if let Ok(mut ledger) = node.ledger.write() {
        if state.height > ledger.height {
            node.mark_block_applied();
        }
        *ledger = state;
    }
    let lag = service_height.saturating_sub(height);
    node.lag_blocks.store(lag, Ordering::Relaxed);
    node.metrics.ledger_height.set(height as i64);
    node.metrics.ledger_lag_blocks.set(lag as i64);
}

/// Registers the node (or updates its registration) if the ledger does not
/// already record exactly these endpoints, capacity and labels.
pub(super) async fn register(
    node: &Node,
    follower: &mut Follower,
    client: &mut LedgerClient,
    config: &NodeConfig,
    endpoints: Vec<String>,
) -> anyhow::Result<()> {
    let registration = ProviderRegistration {
        endpoints,
        capacity_bytes: node.core().capacity_bytes(),
        domain: FailureDomain {
            organisation: config.domain.organisation.clone(),
            site: config.domain.site.clone(),
            jurisdiction: config.domain.jurisdiction.clone(),
        },
    };
    let state = follower.replica().state();
    if state.providers.get(&node.account).is_some_and(|provider| provider.registration == registration) {
        return Ok(());
    }
    let nonce = state.accounts.get(&node.account).map_or(0, |account| account.nonce) + 1;
    let transaction = Transaction::sign(node.chain, &node.identity, nonce, Body::RegisterProvider(registration));
    let hash = client
        .submit(transaction.to_bytes())
        .await?
        .map_err(|reason| anyhow::anyhow!("registration refused: {reason}"))?;
    for _ in 0..60 {
        let status = client.status().await?;
        client.wait_for_height(status.height + 1, BLOCK_WAIT).await?;
        match client.transaction(hash).await? {
            TransactionStatus::Finalised { outcome: Outcome::Accepted, .. } => {
                follower.catch_up(client).await?;
                publish_state(node, follower, follower.replica().height());
                return Ok(());
            }
            TransactionStatus::Finalised { outcome: Outcome::Rejected(reason), .. } => {
                anyhow::bail!("the ledger rejected the node's registration: {reason}")
            }
            TransactionStatus::Dropped(reason) => anyhow::bail!("the node's registration was dropped: {reason}"),
            TransactionStatus::Pending | TransactionStatus::Unknown => {}
        }
    }
    anyhow::bail!("the node's registration was not finalised within 60 blocks")
}

/// Keeps the replica current until `stopped` fires: long-polls the service
/// for new blocks, applies blocks gossiped by peers, and gossips what it
/// applied. Blocks are always checked by the follower before use.
pub(super) struct Following {
    pub(super) follower: Follower,
    pub(super) client: LedgerClient,
    /// The service's address, for reconnecting.
    pub(super) address: String,
    /// Blocks gossiped by peers.
    pub(super) gossiped: mpsc::Receiver<Vec<u8>>,
}

/// A queue for gossiped blocks (full: dropped, the service delivers them
/// anyway).
pub(super) fn gossip_queue() -> (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>) {
    mpsc::channel(GOSSIP_QUEUE_MAX)
}

pub(super) async fn follow(
    node: Arc<Node>,
    following: Following,
    network: P2pHandle,
    mut stopped: watch::Receiver<bool>,
) {
    let Following { mut follower, mut client, address, mut gossiped } = following;
    let mut service_height = follower.replica().height();
    loop {
        let next = follower.next_height();
        tokio::select! {
            _ = stopped.changed() => break,
            Some(bytes) = gossiped.recv() => {
                let is_next = Block::from_bytes(&bytes).is_ok_and(|block| block.header.height == next);
                // Checking a block and committing it to redb: not on the
                // executor's time.
                if is_next && tokio::task::block_in_place(|| follower.ingest(std::slice::from_ref(&bytes))).is_ok() {
                    publish_state(&node, &follower, service_height.max(next));
                }
            }
            waited = client.wait_for_height(next, BLOCK_WAIT) => match waited {
                Ok(status) => {
                    service_height = status.height;
                    match fetch_new_blocks(&mut follower, &mut client).await {
                        Ok(blocks) => {
                            for block in blocks {
                                network.publish_block(block).await;
                            }
                        }
                        Err(error) => tracing::warn!(%error, "node.ledger.follow refused blocks from the service"),
                    }
                    publish_state(&node, &follower, service_height);
                    super::proposals::release_unneeded(&node).await;
                    // Found under the read lock the gate shares; removed
                    // under a short write lock.
                    let ledger = node.ledger();
                    let stale = node.presentations().stale(&ledger);
                    if !stale.is_empty() {
                        node.presentations_mut().remove(&stale);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "node.ledger.follow lost the ledger service; reconnecting");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    if let Ok(reconnected) = LedgerClient::connect(&address).await {
                        client = reconnected;
                    }
                }
            },
        }
    }
    if let Err(error) = tokio::task::block_in_place(|| follower.snapshot()) {
        tracing::warn!(%error, "node.ledger.snapshot failed at shutdown");
    }
}

/// New blocks from the service, applied; returns their bytes for gossip.
async fn fetch_new_blocks(follower: &mut Follower, client: &mut LedgerClient) -> anyhow::Result<Vec<Vec<u8>>> {
    let blocks = client.blocks(follower.next_height(), 128).await?;
    tokio::task::block_in_place(|| follower.ingest(&blocks))?;
    Ok(blocks)
}
