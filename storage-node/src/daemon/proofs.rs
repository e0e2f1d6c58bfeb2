//! The node's epoch duties on the ledger: answer its proof schedule (once
//! the epoch's beacon is in the replica, read only the challenged chunks'
//! 16 KiB groups and the outboard path above them, and submit one
//! transaction before the epoch's last block), and put the access receipts
//! of closed epochs on the ledger. Both go through one nonce sequence
//! (`core::submissions`): proofs first, receipts right behind, neither
//! waiting for the other to land.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bao_tree::{ChunkNum, ChunkRanges};
use futures::StreamExt;
use iroh_blobs::api::blobs::EncodedItem;
use iroh_blobs::api::proto::ExportRangesItem;
use strand_contracts::state::{LedgerState, ProofStatus};
use strand_contracts::transaction::{AccessReceipt, Body, ContractProof};
use strand_contracts::{Digest, Transaction};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::protocol::TransactionStatus;
use strand_proof_of_storage::chunk::{self, ChunkProof, GROUP_CHUNKS};
use tokio::sync::watch;

use super::Node;
use crate::core::prover;
use crate::core::submissions::{Pending, Purpose, Submissions};

/// How often the prover looks at the replica.
const POLL: Duration = Duration::from_millis(100);
/// Polls a transaction may stay pending before the service is asked
/// whether it was dropped (5 s).
const PENDING_CHECK_POLLS: u64 = 50;

/// What the prover keeps between polls.
#[derive(Default)]
struct Duties {
    client: Option<LedgerClient>,
    submissions: Submissions,
    /// Receipt batches in pending transactions, to restore if dropped.
    receipts_in_flight: HashMap<Digest, (u64, Vec<AccessReceipt>)>,
    /// Epochs whose verdicts were counted in metrics.
    counted: Option<u64>,
    /// Per epoch answered, the contracts its schedule challenged (their
    /// verdicts are counted once the epoch closes).
    challenged: std::collections::BTreeMap<u64, Vec<Digest>>,
}

/// Runs until `stopped` fires.
pub(super) async fn run(node: Arc<Node>, address: String, mut stopped: watch::Receiver<bool>) {
    let mut duties = Duties::default();
    let mut saved = node.receipts().snapshot();
    let mut polls: u64 = 0;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        polls += 1;
        if polls.is_multiple_of(RECEIPTS_SAVE_POLLS) {
            saved = save_receipts(&node, saved).await;
        }
        let state = node.ledger();
        settle(&node, &state, &mut duties);
        if let Some(previous) = state.epoch().checked_sub(1)
            && duties.counted.is_none_or(|done| done < previous)
        {
            let later = duties.challenged.split_off(&state.epoch());
            for (epoch, contracts) in std::mem::replace(&mut duties.challenged, later) {
                count_verdicts(&node, &state, epoch, &contracts);
            }
            count_silence(&node, &state, previous);
            duties.counted = Some(previous);
        }
        if duties.client.is_none() {
            match LedgerClient::connect(&address).await {
                Ok(connection) => duties.client = Some(connection),
                Err(error) => {
                    tracing::warn!(%error, "node.proofs cannot reach the ledger service");
                    continue;
                }
            }
        }
        if let Err(error) = answer_epoch(&node, &state, &mut duties).await {
            tracing::warn!(%error, epoch = state.epoch(), "node.proofs epoch not answered yet");
        }
        submit_receipts(&node, &state, &mut duties).await;
        submit_repair_reports(&node, &state, &mut duties).await;
        if polls.is_multiple_of(PENDING_CHECK_POLLS) {
            check_dropped(&node, &mut duties).await;
        }
    }
}

/// Sends the repairer's reports, each once: repairs finished
/// (`RecordRepair`) and siblings that served bad bytes (`ReportBadSibling`).
async fn submit_repair_reports(node: &Node, state: &LedgerState, duties: &mut Duties) {
    let reports = std::mem::take(&mut *node.repair_reports());
    for (index, (purpose, body)) in reports.iter().enumerate() {
        if let Err(error) = submit(node, duties, state, body.clone(), *purpose).await {
            tracing::warn!(%error, ?purpose, "node.repair report not sent yet");
            node.repair_reports().extend_from_slice(&reports[index..]);
            return;
        }
    }
}

/// Polls between saves of the pending receipts: a crash loses at most this
/// long (1 s) of counted releases.
const RECEIPTS_SAVE_POLLS: u64 = 10;

/// Saves the pending receipts (off the executor) if they changed since
/// `saved`; returns what is now saved.
pub(super) async fn save_receipts(
    node: &Arc<Node>,
    saved: crate::records::PendingReceipts,
) -> crate::records::PendingReceipts {
    let now = node.receipts().snapshot();
    if now == saved {
        return saved;
    }
    let writer = Arc::clone(node);
    let copy = now.clone();
    match tokio::task::spawn_blocking(move || writer.records.save_receipts(&copy)).await {
        Ok(Ok(())) => now,
        Ok(Err(error)) => {
            tracing::error!(%error, "node.receipts cannot save the pending receipts");
            saved
        }
        Err(error) => {
            tracing::error!(%error, "node.receipts saving stopped");
            saved
        }
    }
}

/// Signs `body` with the next nonce and hands it to the service; `Ok` once
/// it is durably queued there.
async fn submit(
    node: &Node,
    duties: &mut Duties,
    state: &LedgerState,
    body: Body,
    purpose: Purpose,
) -> Result<Digest, String> {
    let confirmed = state.accounts.get(&node.account).map_or(0, |account| account.nonce);
    let nonce = duties.submissions.next_nonce(confirmed);
    let bytes = Transaction::sign(node.chain, &node.identity, nonce, body).to_bytes();
    let length = bytes.len() as u64;
    let Some(client) = duties.client.as_mut() else {
        if let Purpose::Proofs(_) = purpose {
            node.metrics.proof_submissions.with_label_values(&["unsent"]).inc();
        }
        return Err("not connected to the ledger service".into());
    };
    match client.submit(bytes).await {
        Ok(Ok(hash)) => {
            duties.submissions.admitted(nonce, hash, purpose);
            if let Purpose::Proofs(_) = purpose {
                node.metrics.proof_submission_bytes.inc_by(length);
            }
            Ok(hash)
        }
        Ok(Err(reason)) => {
            if let Purpose::Proofs(_) = purpose {
                node.metrics.proof_submissions.with_label_values(&["refused"]).inc();
            }
            Err(format!("the ledger service refused it: {reason}"))
        }
        Err(error) => {
            if let Purpose::Proofs(_) = purpose {
                node.metrics.proof_submissions.with_label_values(&["unsent"]).inc();
            }
            duties.client = None;
            Err(error.to_string())
        }
    }
}

/// Sees how the transactions the replica now shows final ended.
fn settle(node: &Node, state: &LedgerState, duties: &mut Duties) {
    let confirmed = state.accounts.get(&node.account).map_or(0, |account| account.nonce);
    for Pending { hash, purpose } in duties.submissions.confirm(confirmed) {
        match purpose {
            Purpose::Proofs(epoch) => {
                if strand_contracts::proofs::submitted(state, &node.account, epoch) {
                    node.metrics.proof_submissions.with_label_values(&["accepted"]).inc();
                } else {
                    node.metrics.proof_submissions.with_label_values(&["rejected"]).inc();
                    tracing::error!(epoch, tx = %hash.short(), "node.proofs submission rejected by the ledger");
                }
            }
            Purpose::Repair(order) => {
                // Reported, or already moved (the order is gone); an open
                // order not marked reported refused the report.
                if state.repair_orders.get(&order).is_some_and(|record| !record.reported) {
                    tracing::error!(order = %order.short(), tx = %hash.short(), "node.repair report rejected by the ledger");
                } else {
                    tracing::info!(order = %order.short(), tx = %hash.short(), "node.repair report final");
                }
            }
            Purpose::Accusation(contract) => {
                let recorded = state
                    .contracts
                    .get(&contract)
                    .and_then(|record| state.suspects.get(&(record.holder, contract)))
                    .and_then(|suspect| suspect.accusation.as_ref())
                    .is_some_and(|accusation| accusation.transaction == hash);
                if recorded {
                    tracing::info!(contract = %contract.short(), tx = %hash.short(), "node.repair bad sibling on the ledger");
                } else {
                    tracing::warn!(contract = %contract.short(), tx = %hash.short(), "node.repair bad-sibling report not recorded (answered, already accused, or refused)");
                }
            }
            Purpose::Receipts(epoch) => {
                let Some((_, receipts)) = duties.receipts_in_flight.remove(&hash) else { continue };
                let landed = state.access.get(&(epoch, node.account)).is_some_and(|batch| batch.transaction == hash);
                if landed {
                    node.metrics.receipts_submitted.inc_by(receipts.len() as u64);
                    tracing::info!(epoch, entries = receipts.len(), tx = %hash.short(), "node.receipts on the ledger");
                } else {
                    tracing::error!(epoch, tx = %hash.short(), "node.receipts rejected by the ledger");
                    node.metrics.receipts_dropped.inc_by(receipts.len() as u64);
                }
            }
        }
    }
}

/// Asks the service about transactions pending for a while: one dropped
/// after admission frees its nonce (and those after it) and its receipts
/// go back to the pending set.
async fn check_dropped(node: &Node, duties: &mut Duties) {
    let hashes: Vec<Digest> = duties.submissions.pending().map(|pending| pending.hash).collect();
    for hash in hashes {
        let Some(client) = duties.client.as_mut() else { return };
        let Ok(TransactionStatus::Dropped(reason)) = client.transaction(hash).await else { continue };
        tracing::warn!(tx = %hash.short(), %reason, "node.submissions dropped by the ledger service");
        for forgotten in duties.submissions.dropped(&hash) {
            if let Some((epoch, receipts)) = duties.receipts_in_flight.remove(&forgotten.hash) {
                node.receipts().restore(epoch, receipts);
            }
        }
    }
}

/// Answers the current epoch's schedule, unless answered or pending
/// (`core::prover` decides what; this reads the chunk groups and submits).
async fn answer_epoch(node: &Arc<Node>, state: &LedgerState, duties: &mut Duties) -> anyhow::Result<()> {
    let pending = duties.submissions.is_pending(Purpose::Proofs(state.epoch()));
    let Some(duty) = prover::due(state, &node.account, &node.core().holdings, pending) else { return Ok(()) };
    let epoch = duty.epoch;
    for id in &duty.unanswerable {
        node.metrics.proofs_unanswerable.inc();
        tracing::warn!(contract = %id.short(), "node.proofs challenged on a contract it does not hold");
    }
    let started = Instant::now();
    let mut proofs = Vec::new();
    for contract in &duty.contracts {
        match prove_contract(node, contract).await {
            Ok(answers) => proofs.push(answers),
            Err(error) => {
                node.metrics.proofs_unanswerable.inc();
                tracing::error!(contract = %contract.contract.short(), epoch, %error, "node.proofs cannot answer a contract's challenges");
            }
        }
    }
    node.metrics.proof_seconds.observe(started.elapsed().as_secs_f64());
    let contracts = proofs.len() as u64;
    let hash = submit(node, duties, state, duty.submission(proofs), Purpose::Proofs(epoch))
        .await
        .map_err(|reason| anyhow::anyhow!("proofs not submitted: {reason}"))?;
    duties.challenged.insert(epoch, duty.challenged.clone());
    node.metrics.proofs_submitted.inc_by(contracts);
    node.metrics.proof_challenges.inc_by(duty.challenges as u64);
    tracing::info!(epoch, contracts, challenges = duty.challenges, beacon = %duty.beacon.short(), tx = %hash.short(), "node.proofs submitted");
    Ok(())
}

/// Puts the access receipts of closed epochs on the ledger: the ledger
/// takes a batch for the current or the previous epoch, one per provider
/// and epoch; older ones are too late and are dropped (logged and counted).
async fn submit_receipts(node: &Node, state: &LedgerState, duties: &mut Duties) {
    let epoch = state.epoch();
    let closed = node.receipts().take_closed(epoch);
    let mut waiting = closed.into_iter();
    while let Some((batch_epoch, receipts)) = waiting.next() {
        let too_late = batch_epoch.checked_add(1).is_none_or(|next| next < epoch);
        if too_late || state.access.contains(&(batch_epoch, node.account)) {
            tracing::error!(
                epoch = batch_epoch,
                entries = receipts.len(),
                "node.receipts too late for the ledger; dropped"
            );
            node.metrics.receipts_dropped.inc_by(receipts.len() as u64);
            continue;
        }
        let body = Body::AccessReceipts { epoch: batch_epoch, receipts: receipts.clone() };
        match submit(node, duties, state, body, Purpose::Receipts(batch_epoch)).await {
            Ok(hash) => {
                duties.receipts_in_flight.insert(hash, (batch_epoch, receipts));
            }
            Err(reason) => {
                tracing::warn!(%reason, "node.receipts not submitted yet");
                node.receipts().restore(batch_epoch, receipts);
                for (later_epoch, later) in waiting {
                    node.receipts().restore(later_epoch, later);
                }
                return;
            }
        }
    }
}

/// The answers to one contract's share of the schedule, from the store.
/// The Merkle inclusion proof (work proportional to the contract's
/// fragments) is built off the async executor.
async fn prove_contract(node: &Arc<Node>, duty: &prover::ContractDuty) -> anyhow::Result<ContractProof> {
    let size = u64::from(duty.commitment.fragment_size);
    let mut chunks: Vec<ChunkProof> = Vec::with_capacity(duty.challenges.len());
    for (read, challenge) in duty.reads().into_iter().zip(&duty.challenges) {
        let (id, chunk_index) =
            read.ok_or_else(|| anyhow::anyhow!("challenged fragment {} is not in the agreement", challenge.fragment))?;
        let (parents, group) = read_group(node, &id, size, chunk_index).await?;
        chunks.push(chunk::prove_from_group(size, chunk_index, &parents, &group)?);
    }
    let duty = duty.clone();
    Ok(tokio::task::spawn_blocking(move || duty.answer(chunks)).await?)
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

/// Counts the ledger's verdicts on the contracts `epoch`'s schedule
/// challenged: a pass in the contract's tally, or a failure's record.
fn count_verdicts(node: &Node, state: &LedgerState, epoch: u64, challenged: &[Digest]) {
    for id in challenged {
        let label = match (state.proofs.get(&(epoch, *id)), state.contracts.get(id)) {
            (Some(record), _) => match record.status {
                ProofStatus::Passed => "passed",
                ProofStatus::Failed(_) => "failed",
                ProofStatus::Missed => "missed",
            },
            (None, Some(contract)) if contract.proofs.passed_in(epoch) => "passed",
            // No longer owing proofs when its check came: not counted.
            _ => continue,
        };
        node.metrics.proof_verdicts.with_label_values(&[label]).inc();
    }
}

/// Counts an epoch the node owed proofs and submitted nothing.
fn count_silence(node: &Node, state: &LedgerState, epoch: u64) {
    if matches!(state.proof_slots.get(&(epoch, node.account)), Some(strand_contracts::state::ProofSlot::Missed)) {
        node.metrics.proof_verdicts.with_label_values(&["missed"]).inc();
    }
}

fn hex_short(bytes: &[u8; 32]) -> String {
    bytes[..5].iter().map(|byte| format!("{byte:02x}")).collect()
}
