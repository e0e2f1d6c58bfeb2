//! Answering every epoch's challenges: once the beacon of an epoch is in the
//! replica, build the answers for each contract the node owes proofs for
//! (reading only the challenged chunks' 16 KiB groups and the outboard path
//! above them), submit them in one transaction before the epoch's last
//! block, and count what the ledger made of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bao_tree::{ChunkNum, ChunkRanges};
use futures::StreamExt;
use iroh_blobs::api::blobs::EncodedItem;
use iroh_blobs::api::proto::ExportRangesItem;
use strand_contracts::state::ProofStatus;
use strand_contracts::transaction::{Body, ContractProof};
use strand_contracts::{Digest, Transaction};
use strand_ledger_service::client::LedgerClient;
use strand_proof_of_storage::answers::{self, Commitment};
use strand_proof_of_storage::chunk::{self, ChunkProof, GROUP_CHUNKS};
use tokio::sync::watch;

use super::Node;

/// How often the prover looks at the replica.
const POLL: Duration = Duration::from_millis(100);

/// Runs until `stopped` fires.
pub(super) async fn run(node: Arc<Node>, address: String, mut stopped: watch::Receiver<bool>) {
    let mut client: Option<LedgerClient> = None;
    // Epochs answered (submitted and finalised, or given up on).
    let mut answered: Option<u64> = None;
    // Epochs whose verdicts were counted in metrics.
    let mut counted: Option<u64> = None;
    let mut saved = node.receipts().snapshot();
    let mut polls: u64 = 0;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        polls += 1;
        if polls.is_multiple_of(RECEIPTS_SAVE_POLLS) {
            saved = save_receipts(&node, saved);
        }
        let state = node.ledger();
        let epoch = state.params.epoch_of(state.height);
        if let Some(previous) = epoch.checked_sub(1)
            && counted.is_none_or(|done| done < previous)
        {
            count_verdicts(&node, &state, previous);
            counted = Some(previous);
        }
        if let Some(connection) = connected(&mut client, &address).await {
            submit_receipts(&node, connection, &state, epoch).await;
        }
        if answered.is_some_and(|done| done >= epoch) {
            continue;
        }
        let Some((beacon, due)) = strand_contracts::query::challenges_due(&state, &node.account, epoch) else {
            continue;
        };
        if due.is_empty() {
            answered = Some(epoch);
            continue;
        }
        let Some(connection) = connected(&mut client, &address).await else { continue };
        match answer_epoch(&node, connection, &state, epoch, beacon, &due).await {
            Ok(()) => answered = Some(epoch),
            Err(error) => {
                tracing::warn!(%error, epoch, "node.proofs epoch not answered");
                client = None;
                // The epoch is retried while it lasts; after it, it is missed.
            }
        }
    }
}

/// Polls between saves of the pending receipts: a crash loses at most this
/// long (1 s) of counted releases.
const RECEIPTS_SAVE_POLLS: u64 = 10;

/// Saves the pending receipts if they changed since `saved`; returns what is
/// now saved.
pub(super) fn save_receipts(node: &Node, saved: crate::records::PendingReceipts) -> crate::records::PendingReceipts {
    let now = node.receipts().snapshot();
    if now == saved {
        return saved;
    }
    match node.records.save_receipts(&now) {
        Ok(()) => now,
        Err(error) => {
            tracing::error!(%error, "node.receipts cannot save the pending receipts");
            saved
        }
    }
}

/// The ledger service connection, (re)connecting if needed.
async fn connected<'a>(client: &'a mut Option<LedgerClient>, address: &str) -> Option<&'a mut LedgerClient> {
    if client.is_none() {
        match LedgerClient::connect(address).await {
            Ok(connection) => *client = Some(connection),
            Err(error) => tracing::warn!(%error, "node.proofs cannot reach the ledger service"),
        }
    }
    client.as_mut()
}

/// Submits the access receipts of closed epochs: the ledger takes a batch
/// for the current or the previous epoch, one per provider and epoch; older
/// ones are too late and are dropped (logged and counted).
async fn submit_receipts(
    node: &Arc<Node>,
    client: &mut LedgerClient,
    state: &strand_contracts::LedgerState,
    epoch: u64,
) {
    let closed = node.receipts().take_closed(epoch);
    for (batch_epoch, receipts) in closed {
        if batch_epoch + 1 < epoch || state.access.contains(&(node.account, batch_epoch)) {
            tracing::error!(
                epoch = batch_epoch,
                entries = receipts.len(),
                "node.receipts too late for the ledger; dropped"
            );
            node.metrics.receipts_dropped.inc_by(receipts.len() as u64);
            continue;
        }
        let entries = receipts.len() as u64;
        let nonce = state.accounts.get(&node.account).map_or(0, |account| account.nonce) + 1;
        let body = Body::AccessReceipts { epoch: batch_epoch, receipts: receipts.clone() };
        let transaction = Transaction::sign(node.chain, &node.identity, nonce, body);
        let submitted = match client.submit(transaction.to_bytes()).await {
            Ok(Ok(hash)) => Some(hash),
            Ok(Err(reason)) => {
                tracing::warn!(%reason, "node.receipts refused by the service");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "node.receipts cannot reach the ledger service");
                None
            }
        };
        let Some(hash) = submitted else {
            node.receipts().restore(batch_epoch, receipts);
            return;
        };
        // Wait for it to land so the next transaction takes the next nonce.
        for _ in 0..100 {
            tokio::time::sleep(POLL).await;
            let ledger = node.ledger();
            if ledger.access.contains(&(node.account, batch_epoch)) {
                node.metrics.receipts_submitted.inc_by(entries);
                tracing::info!(epoch = batch_epoch, entries, tx = %hash.short(), "node.receipts on the ledger");
                break;
            }
            if ledger.accounts.get(&node.account).map_or(0, |account| account.nonce) >= nonce {
                // The nonce was used without the batch: rejected.
                tracing::error!(epoch = batch_epoch, "node.receipts rejected by the ledger");
                node.metrics.receipts_dropped.inc_by(entries);
                break;
            }
        }
    }
}

async fn answer_epoch(
    node: &Arc<Node>,
    client: &mut LedgerClient,
    state: &strand_contracts::LedgerState,
    epoch: u64,
    beacon: Digest,
    due: &[Digest],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut proofs = Vec::new();
    for id in due {
        let Some(contract) = state.contracts.get(id) else { continue };
        let Some(agreement) = node.holdings().agreement(id).cloned() else {
            tracing::warn!(contract = %id.short(), "node.proofs owes proofs for a contract it does not hold");
            continue;
        };
        let commitment = strand_contracts::apply::commitment_of(id, &contract.terms);
        match prove_contract(node, &commitment, &agreement.fragment_ids, &beacon, epoch).await {
            Ok(answers) => proofs.push(ContractProof { contract: *id, answers }),
            Err(error) => {
                node.metrics.proofs_unanswerable.inc();
                tracing::error!(contract = %id.short(), epoch, %error, "node.proofs cannot answer a contract's challenges");
            }
        }
    }
    node.metrics.proof_seconds.observe(started.elapsed().as_secs_f64());
    if proofs.is_empty() {
        return Ok(());
    }
    let count = proofs.len() as u64;
    let first = proofs[0].contract;
    let nonce = state.accounts.get(&node.account).map_or(0, |account| account.nonce) + 1;
    let transaction = Transaction::sign(node.chain, &node.identity, nonce, Body::SubmitProofs { epoch, proofs });
    let hash = client
        .submit(transaction.to_bytes())
        .await?
        .map_err(|reason| anyhow::anyhow!("proofs refused by the service: {reason}"))?;
    node.metrics.proofs_submitted.inc_by(count);
    tracing::info!(epoch, contracts = count, tx = %hash.short(), "node.proofs submitted");
    // Wait for the verdict so the next submission uses the next nonce.
    for _ in 0..100 {
        tokio::time::sleep(POLL).await;
        let ledger = node.ledger();
        if ledger.proofs.contains(&(first, epoch)) || ledger.params.epoch_of(ledger.height) > epoch {
            return Ok(());
        }
        if let Ok(strand_ledger_service::protocol::TransactionStatus::Dropped(reason)) = client.transaction(hash).await
        {
            anyhow::bail!("proofs dropped: {reason}");
        }
    }
    Ok(())
}

/// The answers to one contract's challenges, from the store.
async fn prove_contract(
    node: &Arc<Node>,
    commitment: &Commitment,
    fragment_ids: &[[u8; 32]],
    beacon: &Digest,
    epoch: u64,
) -> anyhow::Result<Vec<u8>> {
    let challenges = commitment.challenges(&beacon.0, epoch);
    let size = u64::from(commitment.fragment_size);
    let mut chunks: Vec<ChunkProof> = Vec::with_capacity(challenges.len());
    for challenge in &challenges {
        let id = fragment_ids
            .get(challenge.fragment as usize)
            .ok_or_else(|| anyhow::anyhow!("challenged fragment {} is not in the agreement", challenge.fragment))?;
        let chunk_index = u64::from(challenge.chunk);
        let (parents, group) = read_group(node, id, size, chunk_index).await?;
        chunks.push(chunk::prove_from_group(size, chunk_index, &parents, &group)?);
    }
    Ok(answers::build(fragment_ids, &challenges, chunks).to_bytes())
}

/// The outboard's parent pairs down to `chunk`'s 16 KiB group, and the
/// group's bytes. The store checks the group against the outboard; if the
/// bytes on disk no longer match, the node still answers with what it holds
/// (the ledger then records the failure and its reason).
async fn read_group(
    node: &Arc<Node>,
    id: &[u8; 32],
    size: u64,
    chunk: u64,
) -> anyhow::Result<(Vec<([u8; 32], [u8; 32])>, Vec<u8>)> {
    let hash = iroh_blobs::Hash::from_bytes(*id);
    let (first, from, to) = chunk::group_of(size, chunk);
    let ranges = ChunkRanges::from(ChunkNum(first)..ChunkNum(first + GROUP_CHUNKS));
    let mut parents = Vec::new();
    let mut group = Vec::with_capacity((to - from) as usize);
    let mut damaged = None;
    let mut items = node.store.export_bao(hash, ranges).stream();
    while let Some(item) = items.next().await {
        match item {
            EncodedItem::Parent(parent) => parents.push((*parent.pair.0.as_bytes(), *parent.pair.1.as_bytes())),
            EncodedItem::Leaf(leaf) => group.extend_from_slice(&leaf.data),
            EncodedItem::Error(error) => {
                damaged = Some(error.to_string());
                break;
            }
            EncodedItem::Size(_) | EncodedItem::Done => {}
        }
    }
    if let Some(reason) = damaged {
        tracing::error!(fragment = %hex_short(id), chunk, %reason, "node.proofs fragment fails its own check; answering with the bytes held");
        node.metrics.proof_damaged_reads.inc();
        group = raw_bytes(node, hash, from, to).await?;
    }
    node.metrics.proof_bytes_read.inc_by(group.len() as u64 + 64 * parents.len() as u64);
    Ok((parents, group))
}

/// The bytes `[from, to)` of a blob as stored, unchecked.
async fn raw_bytes(node: &Arc<Node>, hash: iroh_blobs::Hash, from: u64, to: u64) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity((to - from) as usize);
    let mut items = node.store.export_ranges(hash, from..to).stream();
    while let Some(item) = items.next().await {
        match item {
            ExportRangesItem::Data(leaf) => bytes.extend_from_slice(&leaf.data),
            ExportRangesItem::Size(_) => {}
            ExportRangesItem::Error(error) => anyhow::bail!("cannot read the fragment: {error}"),
        }
    }
    if bytes.len() as u64 != to - from {
        anyhow::bail!("the fragment is shorter than agreed");
    }
    Ok(bytes)
}

/// Counts the ledger's verdicts for `epoch` on the node's contracts.
fn count_verdicts(node: &Node, state: &strand_contracts::LedgerState, epoch: u64) {
    let held: Vec<Digest> = node.holdings().agreements().map(|(id, _)| *id).collect();
    for id in held {
        if let Some(record) = state.proofs.get(&(id, epoch)) {
            let label = match record.status {
                ProofStatus::Passed => "passed",
                ProofStatus::Failed(_) => "failed",
                ProofStatus::Missed => "missed",
            };
            node.metrics.proof_verdicts.with_label_values(&[label]).inc();
        }
    }
}

fn hex_short(bytes: &[u8; 32]) -> String {
    bytes[..5].iter().map(|byte| format!("{byte:02x}")).collect()
}
