//! The embedded ordering service: one sequencer that admits transactions to
//! a durable mempool and, every interval, proposes, signs and commits a
//! block. It is the single-validator case of the ordering trait's contract:
//! blocks reach the state machine only through [`Replica`], finalised by the
//! validator set's signatures, so a BFT engine can take its place.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strand_contracts::mempool::{Mempool, MempoolLimits};
use strand_contracts::{Digest, Replica};
use strand_core::Identity;
use tokio::sync::{mpsc, watch};

use crate::metrics::{LedgerMetrics, Observer};
use crate::ordering::{OrderingHandle, SUBMISSIONS_QUEUED_MAX, Submission};
use crate::protocol::Status;
use crate::store::{LedgerStore, StoreError};

/// How the sequencer paces and sizes blocks.
#[derive(Clone, Copy, Debug)]
pub struct SequencerConfig {
    /// Time between blocks.
    pub block_interval: Duration,
    /// Most transactions per block.
    pub transactions_per_block_max: usize,
    /// Most transaction bytes per block.
    pub bytes_per_block_max: usize,
    /// Mempool bounds.
    pub mempool: MempoolLimits,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        Self {
            block_interval: Duration::from_secs(1),
            transactions_per_block_max: 5_000,
            bytes_per_block_max: 8 << 20,
            mempool: MempoolLimits::default(),
        }
    }
}

/// A running sequencer: submit transactions, read status, blocks and
/// transactions.
pub type SequencerHandle = OrderingHandle;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn status_of(replica: &Replica, mempool: &Mempool) -> Status {
    let state = replica.state();
    Status {
        chain: state.params.chain,
        height: replica.height(),
        head: replica.head().hash(),
        epoch: state.epoch(),
        mempool: mempool.len() as u32,
    }
}

/// Opens the store, reloads the durable mempool and starts the sequencer
/// task. Stops when `shutdown` fires, after a final snapshot.
pub fn start(
    store: LedgerStore,
    replica: Replica,
    identity: Identity,
    config: SequencerConfig,
    metrics: LedgerMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SequencerHandle, tokio::task::JoinHandle<()>), StoreError> {
    let store = Arc::new(store);
    let mut mempool = Mempool::new(config.mempool);
    // Transactions acknowledged before a crash: queue them again, and say
    // why for any that can no longer be included.
    for bytes in store.mempool()? {
        let hash = strand_contracts::transaction::transaction_hash(&bytes);
        if let Err(error) = mempool.admit(replica.state(), bytes) {
            store.drop_from_mempool(&[(hash, error.to_string())])?;
        }
    }
    let (status_sender, status) = watch::channel(status_of(&replica, &mempool));
    let (submissions, mut incoming) = mpsc::channel::<Submission>(SUBMISSIONS_QUEUED_MAX);
    let handle = OrderingHandle::new("sequencer", submissions, status, Arc::clone(&store), metrics.clone());
    let mut observer = Observer::after(replica.head().timestamp_ms);
    metrics.state(&mut observer, replica.state());
    metrics.mempool(&mempool);
    let task = tokio::spawn(async move {
        let mut replica = replica;
        let mut ticker = tokio::time::interval(config.block_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticker.tick() => {
                    if let Some((block, receipts)) = produce_block(&store, &mut replica, &mut mempool, &identity, &config) {
                        metrics.block(&mut observer, &block, &receipts, replica.state());
                    }
                    metrics.mempool(&mempool);
                    let _ = status_sender.send(status_of(&replica, &mempool));
                }
                Some(first) = incoming.recv() => {
                    let mut batch = vec![first];
                    while let Ok(next) = incoming.try_recv() {
                        batch.push(next);
                    }
                    admit_batch(&store, &replica, &mut mempool, batch, &metrics);
                    metrics.mempool(&mempool);
                    let _ = status_sender.send(status_of(&replica, &mempool));
                }
            }
        }
        if let Err(error) = tokio::task::block_in_place(|| store.snapshot(replica.state())) {
            tracing::error!(%error, "ledger.sequencer.shutdown snapshot failed; the next start replays from the last one");
        }
        tracing::info!(height = replica.height(), "ledger.sequencer stopped");
    });
    Ok((handle, task))
}

/// Admits a batch and makes it durable with one commit before answering, so
/// an acknowledged transaction survives a crash.
fn admit_batch(
    store: &LedgerStore,
    replica: &Replica,
    mempool: &mut Mempool,
    batch: Vec<Submission>,
    metrics: &LedgerMetrics,
) {
    let mut admitted = Vec::new();
    let mut answers = Vec::new();
    for (bytes, reply) in batch {
        match mempool.admit(replica.state(), bytes.clone()) {
            Ok(hash) => {
                admitted.push((hash, bytes));
                answers.push((reply, Ok(hash)));
            }
            Err(error) => {
                metrics.refused(error.label());
                answers.push((reply, Err(error.to_string())));
            }
        }
    }
    let persisted = tokio::task::block_in_place(|| store.persist_mempool(&admitted));
    if let Err(error) = persisted {
        // Not durable, so not acknowledged: take them back out.
        tracing::error!(%error, "ledger.sequencer.admit could not persist the mempool");
        let stale: Vec<Digest> = admitted.iter().map(|(hash, _)| *hash).collect();
        mempool.remove(&stale);
        for (reply, answer) in answers {
            let _ = reply.send(answer.and(Err(format!("the sequencer cannot store transactions: {error}"))));
        }
        return;
    }
    for (reply, answer) in answers {
        let _ = reply.send(answer);
    }
}

fn produce_block(
    store: &LedgerStore,
    replica: &mut Replica,
    mempool: &mut Mempool,
    identity: &Identity,
    config: &SequencerConfig,
) -> Option<(strand_contracts::Block, Vec<strand_contracts::Receipt>)> {
    let transactions = mempool.select(replica.state(), config.transactions_per_block_max, config.bytes_per_block_max);
    // Build on a copy: the replica moves on only once the block is durable.
    let mut next = replica.clone();
    let (block, receipts) = next.propose(now_ms(), transactions, identity);
    if let Err(error) = tokio::task::block_in_place(|| store.commit_block(&block, &receipts, next.state())) {
        tracing::error!(%error, height = block.header.height, "ledger.sequencer.commit failed; retrying next interval");
        return None;
    }
    *replica = next;
    let included: std::collections::HashSet<Digest> = receipts.iter().map(|receipt| receipt.transaction).collect();
    let stale: Vec<(Digest, String)> = mempool
        .prune(replica.state())
        .into_iter()
        .filter(|hash| !included.contains(hash))
        .map(|hash| (hash, "its nonce was used by another transaction".to_string()))
        .collect();
    if let Err(error) = tokio::task::block_in_place(|| store.drop_from_mempool(&stale)) {
        tracing::error!(%error, "ledger.sequencer.prune could not record dropped transactions");
    }
    tracing::debug!(height = block.header.height, transactions = receipts.len(), "ledger.sequencer.block");
    Some((block, receipts))
}
