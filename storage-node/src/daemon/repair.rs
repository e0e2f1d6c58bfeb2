//! Repair, the daemon's half: opening repair reads for repairers
//! (`core::repair` decides), and working on the orders naming this node.
//!
//! A repairer takes the orders the ledger names it in, one at a time (its
//! memory is one stripe's k siblings and the rebuilt shard): it asks the
//! holders of the upload's other contracts to open repair reads, which
//! returns the stripe map; checks the map against the contract's terms;
//! then per stripe fetches k siblings at once (each verified against its id
//! as it streams; a holder that fails is replaced by the next sibling, and
//! one that serves bad bytes is also reported to the ledger), rebuilds the lost shard, checks its BLAKE3 against the
//! lost id, and stores it under the contract's tag. When every fragment is
//! stored and durable it records the agreement as signed and hands the
//! report (`RecordRepair`) to the prover's transaction sequence. It never
//! sees keys or plaintext: fragments are ciphertext, and the map holds ids.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strand_contracts::state::{ContractStatus, LedgerState, RepairOrder};
use strand_contracts::stripes::StripeMap;
use strand_contracts::transaction::{Body, ContractTerms};
use strand_contracts::{AccountId, Digest};
use strand_net::p2p::P2pHandle;
use strand_wire::{Request, Response};
use tokio::sync::watch;

use super::Node;
use super::data::tag_of;
use crate::core::holdings::AgreementState;
use crate::core::repair::{self, Sibling, StripeWork};
use crate::core::submissions::Purpose;

/// How often the repairer looks for orders.
const POLL: Duration = Duration::from_millis(500);
/// How long one sibling fragment may take to arrive.
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long locating a bad sibling's bad part may take in all (the order
/// has a deadline; past this the report names where the reads stopped).
const LOCATE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a holder may take to open repair reads.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers a repairer's request to open repair reads under `order`.
pub(super) async fn open_reads(node: &Arc<Node>, requester: AccountId, order: Digest) -> Response {
    let ledger = node.ledger();
    let checked = repair::check_request(&requester, &order, &ledger, &node.core().holdings);
    let (held, record) = match checked {
        Ok(checked) => checked,
        Err(refusal) => {
            node.metrics.repair_reads.with_label_values(&[refusal.label()]).inc();
            return Response::Denied { code: refusal.label().into() };
        }
    };
    let reader = Arc::clone(node);
    let map = tokio::task::spawn_blocking(move || reader.records.stripe_map(&held)).await;
    match map {
        Ok(Ok(Some(stripe_map))) => {
            node.repair_reads().grant(requester, order, &record);
            node.metrics.repair_reads.with_label_values(&["opened"]).inc();
            tracing::info!(order = %order.short(), repairer = %requester.short(), "node.repair reads opened");
            Response::RepairOpen { stripe_map }
        }
        _ => {
            node.metrics.repair_reads.with_label_values(&["no_stripe_map"]).inc();
            Response::Denied { code: "no_stripe_map".into() }
        }
    }
}

/// Runs until `stopped` fires.
pub(super) async fn run(node: Arc<Node>, network: P2pHandle, mut stopped: watch::Receiver<bool>) {
    // Orders worked on (done or given up) while they stay on the ledger.
    let mut handled: HashSet<Digest> = HashSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        let ledger = node.ledger();
        node.repair_reads().prune(&ledger);
        handled.retain(|id| ledger.repair_orders.contains(id));
        let mine: Vec<(Digest, RepairOrder)> = ledger
            .repair_orders
            .iter()
            .filter(|(id, order)| order.repairer == node.account && !order.reported && !handled.contains(*id))
            .map(|(id, order)| (*id, order.clone()))
            .collect();
        for (id, order) in mine {
            handled.insert(id);
            node.metrics.repair_orders.with_label_values(&["received"]).inc();
            let started = Instant::now();
            tracing::info!(order = %id.short(), contract = %order.contract.short(), "node.repair order taken");
            match work(&node, &network, &id, &order).await {
                Ok(bytes) => {
                    node.metrics.repair_orders.with_label_values(&["completed"]).inc();
                    node.metrics.repair_seconds.observe(started.elapsed().as_secs_f64());
                    node.repair_reports()
                        .push((Purpose::Repair(id), Body::RecordRepair { order: id, contract: order.contract }));
                    tracing::info!(order = %id.short(), bytes, seconds = started.elapsed().as_secs_f64(), "node.repair rebuilt");
                }
                Err(failure) => {
                    node.metrics.repair_orders.with_label_values(&[failure.label]).inc();
                    tracing::warn!(order = %id.short(), reason = %failure.reason, "node.repair failed");
                }
            }
        }
    }
}

/// Why an order failed (`label` for metrics).
struct Failure {
    label: &'static str,
    reason: String,
}

fn failed(label: &'static str, reason: impl std::fmt::Display) -> Failure {
    Failure { label, reason: reason.to_string() }
}

/// Holders this repairer opened reads at, and connections to them.
#[derive(Default)]
struct Sources {
    opened: HashSet<AccountId>,
    refused: HashSet<AccountId>,
    connections: HashMap<AccountId, iroh::endpoint::Connection>,
    /// Sibling contracts reported for bad bytes under this order.
    accused: HashSet<Digest>,
}

/// Works on one order; the bytes rebuilt.
async fn work(node: &Arc<Node>, network: &P2pHandle, id: &Digest, order: &RepairOrder) -> Result<u64, Failure> {
    let ledger = node.ledger();
    let contract = ledger
        .contracts
        .get(&order.contract)
        .ok_or_else(|| failed("failed_unknown_contract", "the contract is gone"))?;
    let terms = contract.terms.clone();
    let mut sources = Sources::default();
    let (map, work) = open_map(node, network, &ledger, id, order, &terms, &mut sources).await?;
    let fragment_ids = map.fragments_of(&terms.provider);
    let agreement =
        node.core_mut().admit_repair(&terms, &fragment_ids).map_err(|refusal| failed("failed_admission", refusal))?;
    node.refresh_storage_metrics();
    let records = Arc::clone(node);
    let recorded = agreement.clone();
    let kept = tokio::task::spawn_blocking(move || records.records.put(&recorded)).await;
    if let Err(error) = kept.map_err(anyhow::Error::from).and_then(|kept| kept) {
        super::proposals::forget(node, &agreement).await;
        return Err(failed("failed_records", error));
    }
    let rebuilt = rebuild_all(node, network, id, &terms, &work, &mut sources).await;
    for connection in sources.connections.values() {
        connection.close(0u32.into(), b"done");
    }
    let bytes = match rebuilt {
        Ok(bytes) => bytes,
        Err(failure) => {
            super::proposals::forget(node, &agreement).await;
            return Err(failure);
        }
    };
    let contract_id = terms.id();
    let height = node.ledger().height;
    let (writer, stored_map) = (Arc::clone(node), map.clone());
    let signed =
        crate::core::holdings::Agreement { state: AgreementState::Signed { at_height: height }, ..agreement.clone() };
    let signed_copy = signed.clone();
    let kept = tokio::task::spawn_blocking(move || {
        writer.records.put_stripe_map(&contract_id, &stored_map)?;
        writer.records.put(&signed_copy)
    })
    .await;
    if let Err(error) = kept.map_err(anyhow::Error::from).and_then(|kept| kept) {
        super::proposals::forget(node, &agreement).await;
        return Err(failed("failed_records", error));
    }
    node.core_mut().signed(&contract_id, height);
    node.refresh_storage_metrics();
    Ok(bytes)
}

/// Opens repair reads at the upload's other holders until one returns a
/// stripe map that checks against the terms; the plan from it.
async fn open_map(
    node: &Arc<Node>,
    network: &P2pHandle,
    ledger: &LedgerState,
    id: &Digest,
    order: &RepairOrder,
    terms: &ContractTerms,
    sources: &mut Sources,
) -> Result<(StripeMap, Vec<StripeWork>), Failure> {
    let holders: Vec<AccountId> = ledger
        .uploads
        .get(&order.upload)
        .map(|upload| upload.contracts.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|contract| ledger.contracts.get(contract))
        .filter(|contract| contract.status == ContractStatus::Active && contract.holder != node.account)
        .map(|contract| contract.holder)
        .collect();
    let mut last = String::from("no other holder of the upload is active");
    for holder in holders {
        match open_at(network, ledger, id, &holder).await {
            Ok(map) => match repair::plan(terms, &map, ledger) {
                Ok(work) => {
                    sources.opened.insert(holder);
                    return Ok((map, work));
                }
                Err(error) => last = format!("holder {}: {error}", holder.short()),
            },
            Err(reason) => {
                sources.refused.insert(holder);
                last = format!("holder {}: {reason}", holder.short());
            }
        }
    }
    Err(failed("failed_no_stripe_map", last))
}

/// Asks `holder` to open repair reads under order `id`.
async fn open_at(
    network: &P2pHandle,
    ledger: &LedgerState,
    id: &Digest,
    holder: &AccountId,
) -> Result<StripeMap, String> {
    let provider = ledger.providers.get(holder).ok_or("not a registered provider")?;
    let endpoints = strand_net::Endpoints::parse(&provider.registration.endpoints);
    let peer = strand_net::p2p::peer_id_of(&holder.0).map_err(|error| error.to_string())?;
    let request = strand_wire::encode(&Request::Repair { order: *id });
    let answer = tokio::time::timeout(OPEN_TIMEOUT, network.request(peer, endpoints.libp2p, request))
        .await
        .map_err(|_| "no answer in time".to_string())??;
    match strand_wire::decode::<Response>(&answer).map_err(|error| error.to_string())? {
        Response::RepairOpen { stripe_map } => Ok(stripe_map),
        Response::Denied { code } => Err(format!("refused: {code}")),
        _ => Err("answered with another response".into()),
    }
}

/// Rebuilds and stores every lost shard; the bytes stored. Per stripe, k
/// siblings are fetched at once (each verified against its id as it
/// streams); one that fails is replaced by the next sibling, so the first k
/// to arrive whole are the ones used. A sibling whose holder served bad
/// bytes is reported to the ledger (`ReportBadSibling`).
async fn rebuild_all(
    node: &Arc<Node>,
    network: &P2pHandle,
    id: &Digest,
    terms: &ContractTerms,
    work: &[StripeWork],
    sources: &mut Sources,
) -> Result<u64, Failure> {
    use futures::StreamExt as _;
    let contract = terms.id();
    let size = u64::from(terms.fragment_size);
    let needed = usize::from(terms.data_shards);
    let mut written = 0;
    for stripe in work {
        // Tag first: a tagged blob is never garbage-collected.
        let hash = iroh_blobs::Hash::from_bytes(stripe.fragment);
        node.store
            .tags()
            .set(tag_of(&contract, &stripe.fragment), iroh_blobs::HashAndFormat::raw(hash))
            .await
            .map_err(|error| failed("failed_store", error))?;
        let mut shards: Vec<(u16, Vec<u8>)> = Vec::with_capacity(needed);
        // Siblings that served bad bytes: (sibling, bytes verified, whether
        // the bad part begins there).
        let mut bad: Vec<(&Sibling, u64, bool)> = Vec::new();
        // Siblings this node holds itself (it holds another contract of the
        // upload: the ledger's last resort) are read from its own store.
        let (own, others): (Vec<&Sibling>, Vec<&Sibling>) =
            stripe.siblings.iter().partition(|sibling| sibling.holder == node.account);
        for sibling in own {
            if shards.len() == needed {
                break;
            }
            let hash = iroh_blobs::Hash::from_bytes(sibling.fragment);
            match node.store.get_bytes(hash).await {
                Ok(bytes) if bytes.len() as u64 == size && *blake3::hash(&bytes).as_bytes() == sibling.fragment => {
                    shards.push((sibling.shard, bytes.to_vec()));
                }
                Ok(_) => skipped(stripe.stripe, sibling, "its own copy does not match its id"),
                Err(error) => skipped(stripe.stripe, sibling, &error.to_string()),
            }
        }
        let mut untried = others.into_iter();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        loop {
            while shards.len() + in_flight.len() < needed {
                let Some(sibling) = untried.next() else { break };
                match sources.connection(node, network, id, &sibling.holder).await {
                    Ok(connection) => in_flight.push(async move {
                        let mut bytes = Vec::new();
                        let fetched = strand_net::blobs::fetch_sized(
                            &connection,
                            sibling.fragment,
                            size,
                            FRAGMENT_TIMEOUT,
                            &mut bytes,
                        )
                        .await;
                        (sibling, fetched.map(|()| bytes))
                    }),
                    Err(reason) => skipped(stripe.stripe, sibling, &reason),
                }
            }
            let Some((sibling, fetched)) = in_flight.next().await else { break };
            match fetched {
                Ok(bytes) => {
                    node.metrics.repair_bytes_read.inc_by(size);
                    shards.push((sibling.shard, bytes));
                    if shards.len() == needed {
                        break;
                    }
                }
                Err(error) => {
                    skipped(stripe.stripe, sibling, &error.to_string());
                    if let strand_net::blobs::FetchError::Corrupt { verified, located, .. } = error {
                        bad.push((sibling, verified, located));
                    }
                }
            }
        }
        drop(in_flight);
        for (sibling, verified, located) in bad {
            let start = if located {
                Some(verified)
            } else {
                tokio::time::timeout(LOCATE_TIMEOUT, locate(sources, id, sibling, size, verified)).await.ok().flatten()
            };
            let chunk = start.unwrap_or(verified) / strand_net::blobs::CHUNK_BYTES;
            accuse(node, sources, id, sibling, u32::try_from(chunk).unwrap_or(u32::MAX));
        }
        if shards.len() < needed {
            return Err(failed(
                "failed_siblings",
                format!("stripe {}: {} of {needed} siblings could be read", stripe.stripe, shards.len()),
            ));
        }
        let (k, m, lost) = (terms.data_shards, terms.parity_shards, stripe.shard);
        let rebuilt = tokio::task::spawn_blocking(move || repair::rebuild(k, m, lost, &shards))
            .await
            .map_err(|error| failed("failed_rebuild", error))?
            .map_err(|error| failed("failed_rebuild", error))?;
        if *blake3::hash(&rebuilt).as_bytes() != stripe.fragment {
            return Err(failed(
                "failed_rebuild",
                format!("stripe {}: the rebuilt shard is not the lost fragment", stripe.stripe),
            ));
        }
        let added = node.store.add_bytes(rebuilt).temp_tag().await.map_err(|error| failed("failed_store", error))?;
        if added.hash() != hash {
            return Err(failed("failed_store", "the rebuilt fragment was stored under another hash"));
        }
        node.store_files.settle(&stripe.fragment, size).await.map_err(|error| failed("failed_store", error))?;
        node.metrics.repair_bytes_written.inc_by(size);
        written += size;
    }
    node.store.sync_db().await.map_err(|error| failed("failed_store", error))?;
    Ok(written)
}

/// Bytes of the groups a BLAKE3 stream verifies at once.
const GROUP_BYTES: u64 = 16 * strand_net::blobs::CHUNK_BYTES;

/// Finds where the bad part of `sibling`'s fragment begins after its holder
/// reset the stream past `verified` bytes (the bytes in flight were lost):
/// a bisection over the fragment's 16 KiB groups with ranged reads (the
/// holder's own store stops at the first group that fails its tree), each
/// half that arrives whole moving the search on. The byte offset of the
/// bad group, or `None` when the holder stops answering.
async fn locate(sources: &Sources, id: &Digest, sibling: &Sibling, size: u64, verified: u64) -> Option<u64> {
    let connection = sources.connections.get(&sibling.holder)?;
    let (mut low, mut high) = (verified / GROUP_BYTES, size.div_ceil(GROUP_BYTES));
    let mut scratch = Vec::new();
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        let chunks_per_group = GROUP_BYTES / strand_net::blobs::CHUNK_BYTES;
        let extent =
            strand_net::blobs::Extent::Chunks { start: low * chunks_per_group, end: middle * chunks_per_group };
        match strand_net::blobs::fetch_extent(
            connection,
            sibling.fragment,
            size,
            extent,
            FRAGMENT_TIMEOUT,
            &mut scratch,
        )
        .await
        {
            Ok(()) => low = middle,
            Err(strand_net::blobs::FetchError::Corrupt { .. }) => high = middle,
            Err(error) => {
                tracing::warn!(order = %id.short(), holder = %sibling.holder.short(), %error, "node.repair cannot locate the bad part");
                return None;
            }
        }
    }
    Some(low * GROUP_BYTES)
}

fn skipped(stripe: u64, sibling: &Sibling, reason: &str) {
    tracing::warn!(stripe, holder = %sibling.holder.short(), %reason, "node.repair a sibling could not be read; trying the next");
}

/// Reports `sibling`'s contract to the ledger (once per order and contract):
/// its holder served bytes that failed verification.
fn accuse(node: &Node, sources: &mut Sources, order: &Digest, sibling: &Sibling, chunk: u32) {
    node.metrics.repair_bad_siblings.inc();
    if !sources.accused.insert(sibling.contract) {
        return;
    }
    tracing::warn!(
        order = %order.short(),
        holder = %sibling.holder.short(),
        contract = %sibling.contract.short(),
        fragment = sibling.index,
        chunk,
        "node.repair a sibling served bad bytes; reporting it"
    );
    let body = Body::ReportBadSibling { order: *order, contract: sibling.contract, fragment: sibling.index, chunk };
    node.repair_reports().push((Purpose::Accusation(sibling.contract), body));
}

impl Sources {
    /// A connection to `holder` for repair reads under order `id` (opening
    /// the reads there first).
    async fn connection(
        &mut self,
        node: &Node,
        network: &P2pHandle,
        id: &Digest,
        holder: &AccountId,
    ) -> Result<iroh::endpoint::Connection, String> {
        if self.refused.contains(holder) {
            return Err("it refused repair reads".into());
        }
        let ledger = node.ledger();
        if !self.opened.contains(holder) {
            match open_at(network, &ledger, id, holder).await {
                Ok(_) => {
                    self.opened.insert(*holder);
                }
                Err(reason) => {
                    self.refused.insert(*holder);
                    return Err(reason);
                }
            }
        }
        if let Some(connection) = self.connections.get(holder) {
            return Ok(connection.clone());
        }
        let provider = ledger.providers.get(holder).ok_or("not a registered provider")?;
        let endpoints = strand_net::Endpoints::parse(&provider.registration.endpoints);
        let remote = strand_net::blobs::remote_address(holder.0, &endpoints.iroh).map_err(|error| error.to_string())?;
        let connection = strand_net::blobs::connect(&node.endpoint, remote, FRAGMENT_TIMEOUT)
            .await
            .map_err(|error| error.to_string())?;
        self.connections.insert(*holder, connection.clone());
        Ok(connection)
    }
}
