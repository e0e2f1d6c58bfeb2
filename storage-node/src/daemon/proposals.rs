//! Answering contract proposals: check, pull and verify every fragment from
//! the owner (or find it already staged), record, countersign. And staging:
//! pulling fragments an owner names before its proposal (`core::staging`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use strand_contracts::query::FragmentMembership;
use strand_contracts::{AccountId, Signature};
use strand_net::p2p::PeerId;
use strand_wire::{FragmentSource, Proposal, Refusal, Request, Response, Stage};

use super::Node;
use super::data::{STAGING_TAGS, contract_prefix, staging_prefix, tag_of};
use crate::core::holdings::{Agreement, AgreementState};
use crate::core::keeper::Admission;
use crate::core::limits::Kind;
use crate::core::proposal;
use crate::core::staging;

/// How long one fragment may take to arrive.
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Fragments fetched at once per proposal or staging request.
const FETCHES_IN_FLIGHT: usize = 8;
/// Capacity of received-fragment buffers kept for reuse when idle (a
/// proposal's fetches in flight, at the default 1 MiB chunk size).
pub(super) const RECEIVE_SPARE_BYTES: usize = 16 << 20;
/// Fragments being received are held in memory until stored: at most
/// `RECEIVE_BUDGET_UNITS × RECEIVE_BUDGET_UNIT_BYTES` (64 MiB) at once,
/// across every proposal and staging request (a larger fragment takes the
/// whole budget, one at a time).
pub(super) const RECEIVE_BUDGET_UNITS: u32 = 64;
const RECEIVE_BUDGET_UNIT_BYTES: u64 = 1 << 20;

/// Answers one request from `peer`.
pub(super) async fn handle(node: &Arc<Node>, peer: PeerId, bytes: &[u8]) -> Response {
    let Some(account) = strand_net::p2p::account_of(&peer).map(AccountId) else {
        return Response::Refused(Refusal::Terms("the peer's key is not an ed25519 account".into()));
    };
    let request = match strand_wire::decode::<Request>(bytes) {
        Ok(request) => request,
        Err(error) => return Response::Refused(Refusal::Terms(format!("undecodable request: {error}"))),
    };
    let kind = match &request {
        Request::Propose(_) => Kind::Proposal,
        Request::Present(_) => Kind::Presentation,
        Request::Stage(_) => Kind::Stage,
        Request::Repair { .. } => Kind::Presentation,
    };
    let Some(_in_flight) = node.start(kind, account) else {
        return match request {
            Request::Present(_) | Request::Repair { .. } => Response::Denied { code: "busy".into() },
            _ => Response::Refused(Refusal::Busy(format!("too many {} requests in flight", kind.label()))),
        };
    };
    match request {
        Request::Propose(proposal) => {
            let outcome = propose(node, peer, proposal).await;
            node.metrics.proposals.with_label_values(&[outcome_label(&outcome)]).inc();
            outcome
        }
        Request::Present(presentation) => present(node, account, presentation).await,
        Request::Repair { order } => super::repair::open_reads(node, account, order).await,
        Request::Stage(request) => {
            let outcome = stage(node, account, request).await;
            node.metrics.stagings.with_label_values(&[outcome_label(&outcome)]).inc();
            outcome
        }
    }
}

/// The `outcome` label of proposals and stagings: accepted, staged, or the
/// refusal's reason.
fn outcome_label(response: &Response) -> &'static str {
    match response {
        Response::Accepted { .. } => "accepted",
        Response::Staged { .. } => "staged",
        Response::Refused(refusal) => refusal.label(),
        Response::Presented { .. } | Response::Denied { .. } | Response::RepairOpen { .. } => "other",
    }
}

/// Pulls the fragments a staging request names that were not named before,
/// under the owner's reservation for the upload.
async fn stage(node: &Arc<Node>, owner: AccountId, request: Stage) -> Response {
    if node.ledger().providers.get(&node.account).is_none() {
        return Response::Refused(Refusal::NotReady("this node is not registered on the ledger yet".into()));
    }
    let key = (owner, request.upload);
    let admitted = node.core_mut().admit_stage(owner, &request, Instant::now());
    node.refresh_staging_metrics();
    let fresh = match admitted {
        Ok(fresh) => fresh,
        Err(refusal) => return Response::Refused(refusal),
    };
    let prefix = staging_prefix(&key);
    let tag = |fragment: &[u8; 32]| format!("{prefix}{}", hex::encode(fragment));
    let pulled = pull(node, &fresh, &fresh, u64::from(request.fragment_size), &tag, async || {
        staging_connection(node, &key, &request.source).await
    })
    .await;
    if let Err(reason) = pulled {
        node.core_mut().staging.unname(&key, &fresh);
        for fragment in &fresh {
            let _ = node.store.tags().delete(tag(fragment)).await;
        }
        return Response::Refused(Refusal::Fetch(reason));
    }
    let held = node.core_mut().staging.held(&key, &fresh, Instant::now());
    match held {
        Some(held) => Response::Staged { fragments: u32::try_from(held).unwrap_or(u32::MAX) },
        None => {
            // The reservation ended (proposal or idle) while pulling.
            for fragment in &fresh {
                let _ = node.store.tags().delete(tag(fragment)).await;
            }
            Response::Refused(Refusal::Terms("the staging reservation ended while pulling".into()))
        }
    }
}

/// The connection to a reservation's source, opened once and reused.
async fn staging_connection(
    node: &Arc<Node>,
    key: &staging::Key,
    source: &FragmentSource,
) -> Result<iroh::endpoint::Connection, String> {
    let cached = node.staging_connections().get(key).filter(|connection| connection.close_reason().is_none()).cloned();
    if let Some(connection) = cached {
        return Ok(connection);
    }
    let connection = connect(node, source).await?;
    node.staging_connections().insert(*key, connection.clone());
    Ok(connection)
}

/// Releases a reservation's staged fragments (their tags; GC reclaims what
/// no contract tagged) and its connection.
async fn release_staging(node: &Arc<Node>, key: &staging::Key) {
    if let Some(connection) = node.staging_connections().remove(key) {
        connection.close(0u32.into(), b"done");
    }
    let _ = node.store.tags().delete_prefix(staging_prefix(key)).await;
    node.refresh_staging_metrics();
}

/// Releases idle reservations, every few seconds until aborted.
pub(super) async fn sweep_staging(node: Arc<Node>) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        interval.tick().await;
        let idle = node.core_mut().staging.expire(Instant::now());
        for (key, _) in idle {
            tracing::info!(owner = %key.0.short(), "node.staging releasing an idle reservation");
            release_staging(&node, &key).await;
        }
    }
}

/// Records a grantee's credential presentation after checking it against
/// the replica (the libp2p connection proves the grantee's key). The Merkle
/// checks run off the async executor and outside the locks the gate reads.
async fn present(node: &Arc<Node>, requester: AccountId, presentation: strand_wire::Presentation) -> Response {
    if presentation.fragments.len() > strand_wire::PRESENTED_FRAGMENTS_MAX {
        return Response::Denied { code: "busy".into() };
    }
    let memberships: Vec<FragmentMembership> = presentation
        .fragments
        .into_iter()
        .map(|member| FragmentMembership {
            index: member.index as usize,
            fragment: member.fragment,
            proof: strand_proof_of_storage::merkle::InclusionProof { nodes: member.proof },
        })
        .collect();
    let ledger = node.ledger();
    let freshness = node.freshness();
    let credential = presentation.credential;
    let held = crate::core::gate::held_here(&credential, memberships, &node.core().holdings, &ledger);
    let checked = match held {
        Ok((held, whole)) => tokio::task::spawn_blocking(move || {
            crate::core::gate::check_presentation(&requester, &credential, held, whole, &ledger, freshness)
        })
        .await
        .unwrap_or(Err(crate::core::gate::Refusal::Busy)),
        Err(refusal) => Err(refusal),
    };
    let outcome = checked.and_then(|checked| node.presentations_mut().record(&requester, checked));
    match outcome {
        Ok(presented) => {
            node.metrics.presentations.with_label_values(&["accepted"]).inc();
            Response::Presented { fragments: u32::try_from(presented.fragments).unwrap_or(u32::MAX) }
        }
        Err(refusal) => {
            node.metrics.presentations.with_label_values(&[refusal.label()]).inc();
            Response::Denied { code: refusal.label().into() }
        }
    }
}

async fn propose(node: &Arc<Node>, peer: PeerId, proposal: Proposal) -> Response {
    // The libp2p connection proves the peer's key: only the owner named in
    // the terms may propose them.
    let owner_peer = strand_net::p2p::peer_id_of(&proposal.terms.owner.0).ok();
    if owner_peer != Some(peer) {
        return Response::Refused(Refusal::Terms("a proposal must come from the owner it names".into()));
    }
    if node.ledger().providers.get(&node.account).is_none() {
        return Response::Refused(Refusal::NotReady("this node is not registered on the ledger yet".into()));
    }
    let policy = *node.core().policy();
    if let Err(refusal) = proposal::check_terms(&proposal, &node.account, &policy) {
        return Response::Refused(refusal);
    }
    // The root costs work proportional to the fragments: off the executor.
    let (proposal, checked) = tokio::task::spawn_blocking(move || {
        let checked = proposal::check_root(&proposal);
        (proposal, checked)
    })
    .await
    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    if let Err(refusal) = checked {
        return Response::Refused(refusal);
    }
    // One atomic step: the owner's reservation ends, capacity and
    // ownership are checked, the agreement is recorded as fetching.
    let admitted = node.core_mut().admit_proposal(&proposal);
    node.refresh_storage_metrics();
    let staged_key = (proposal.terms.owner, proposal.terms.upload);
    let response = match admitted {
        Ok(admission) => {
            let had_reservation = admission.reservation.is_some();
            let response = fetch_and_sign(node, &proposal, admission).await;
            if had_reservation {
                release_staging(node, &staged_key).await;
            }
            response
        }
        Err(refusal) => {
            // A refused proposal still ends the owner's staging.
            release_staging(node, &staged_key).await;
            Response::Refused(refusal)
        }
    };
    node.refresh_staging_metrics();
    response
}

/// Records the admitted agreement, fetches what the proposer does not
/// already hold here, and countersigns once every fragment is durable.
async fn fetch_and_sign(node: &Arc<Node>, proposal: &Proposal, admission: Admission) -> Response {
    let agreement = admission.agreement;
    let contract = agreement.terms.id();
    if let Err(error) = records_put(node, &agreement).await {
        forget(node, &agreement).await;
        return Response::Refused(Refusal::NotReady(format!("cannot record the agreement: {error}")));
    }
    if let Err(reason) = fetch_all(node, proposal, &admission.fetch).await {
        forget(node, &agreement).await;
        return Response::Refused(Refusal::Fetch(reason));
    }
    let height = node.ledger().height;
    let signed = Agreement { state: AgreementState::Signed { at_height: height }, ..agreement.clone() };
    let (writer, map) = (Arc::clone(node), proposal.stripe_map.clone());
    let kept = tokio::task::spawn_blocking(move || writer.records.put_stripe_map(&contract, &map)).await;
    if let Err(error) = kept.map_err(anyhow::Error::from).and_then(|kept| kept) {
        forget(node, &agreement).await;
        return Response::Refused(Refusal::NotReady(format!("cannot record the stripe map: {error}")));
    }
    if let Err(error) = records_put(node, &signed).await {
        forget(node, &agreement).await;
        return Response::Refused(Refusal::NotReady(format!("cannot record the agreement: {error}")));
    }
    node.core_mut().signed(&contract, height);
    node.refresh_storage_metrics();
    let signature = Signature(node.identity.sign(&proposal.terms.signing_message(&node.chain)));
    tracing::info!(contract = %contract.short(), fragments = proposal.fragment_ids.len(), "node.proposal accepted");
    Response::Accepted { contract, signature }
}

/// Stores an agreement in the node's records (a durable redb commit, off
/// the async executor).
async fn records_put(node: &Arc<Node>, agreement: &Agreement) -> anyhow::Result<()> {
    let (writer, agreement) = (Arc::clone(node), agreement.clone());
    tokio::task::spawn_blocking(move || writer.records.put(&agreement)).await?
}

/// Tags every fragment of the proposal for its contract, pulls `fetch`
/// from the proposer's source (the rest it already holds here), each
/// verified against its id, and makes the store durable before returning.
async fn fetch_all(node: &Arc<Node>, proposal: &Proposal, fetch: &[[u8; 32]]) -> Result<(), String> {
    let mut opened = None;
    let fragment_size = u64::from(proposal.terms.fragment_size);
    let contract = proposal.terms.id();
    let tag = |fragment: &[u8; 32]| tag_of(&contract, fragment);
    let pulled = pull(node, &proposal.fragment_ids, fetch, fragment_size, &tag, async || {
        let connection = connect(node, &proposal.source).await?;
        opened = Some(connection.clone());
        Ok(connection)
    })
    .await;
    if let Some(connection) = opened {
        connection.close(0u32.into(), b"done");
    }
    pulled?;
    node.store.sync_db().await.map_err(|error| format!("cannot make the fragments durable: {error}"))
}

async fn connect(node: &Arc<Node>, source: &FragmentSource) -> Result<iroh::endpoint::Connection, String> {
    let sockets: Vec<std::net::SocketAddr> =
        source.addresses.iter().filter_map(|address| address.parse().ok()).collect();
    let remote = strand_net::blobs::remote_address(source.endpoint, &sockets).map_err(|error| error.to_string())?;
    strand_net::blobs::connect(&node.endpoint, remote, FRAGMENT_TIMEOUT).await.map_err(|error| error.to_string())
}

/// Tags (`tag`) every one of `fragments` and pulls `fetch` (those the
/// requester does not already hold here; fetched even if the store has the
/// bytes, which proves nothing about the requester), each verified against
/// its id, over the connection `connect` opens (only if something is to be
/// fetched); fails unless every fragment is complete and of `fragment_size`.
async fn pull(
    node: &Arc<Node>,
    fragments: &[[u8; 32]],
    fetch: &[[u8; 32]],
    fragment_size: u64,
    tag: &(dyn Fn(&[u8; 32]) -> String + Sync),
    connect: impl AsyncFnOnce() -> Result<iroh::endpoint::Connection, String>,
) -> Result<(), String> {
    // Tag first: a tagged blob is never garbage-collected, even mid-transfer.
    for fragment in fragments {
        let hash = iroh_blobs::Hash::from_bytes(*fragment);
        node.store
            .tags()
            .set(tag(fragment), iroh_blobs::HashAndFormat::raw(hash))
            .await
            .map_err(|error| format!("cannot tag a fragment: {error}"))?;
    }
    if !fetch.is_empty() {
        let connection = connect().await?;
        let results: Vec<Result<(), String>> = futures::stream::iter(fetch.iter().copied())
            .map(|fragment| receive(node, &connection, fragment, fragment_size))
            .buffer_unordered(FETCHES_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), String>>()?;
    }
    // Every fragment must be complete and of the agreed size.
    for fragment in fragments {
        let status =
            node.store.status(iroh_blobs::Hash::from_bytes(*fragment)).await.map_err(|error| error.to_string())?;
        match status {
            iroh_blobs::api::blobs::BlobStatus::Complete { size } if size == fragment_size => {}
            other => return Err(format!("fragment arrived incomplete or of the wrong size: {other:?}")),
        }
    }
    Ok(())
}

/// Receives one fragment whole into memory, verified as it streams, and
/// imports it as one complete blob: for the file store that is one file
/// written and renamed, where a partial blob written piece by piece costs
/// three files (data, outboard, sizes), two of them deleted again, and many
/// more writes. Memory for fragments in flight is bounded node-wide by
/// [`Node::receive_budget`], whoever asks.
async fn receive(
    node: &Arc<Node>,
    connection: &iroh::endpoint::Connection,
    fragment: [u8; 32],
    fragment_size: u64,
) -> Result<(), String> {
    let hash = iroh_blobs::Hash::from_bytes(fragment);
    let permits =
        u32::try_from(fragment_size.div_ceil(RECEIVE_BUDGET_UNIT_BYTES)).unwrap_or(u32::MAX).min(RECEIVE_BUDGET_UNITS);
    let _budget = node.receive_budget.acquire_many(permits).await.map_err(|_| "the node is stopping".to_string())?;
    // A buffer the store let go of, rather than fresh pages every fragment.
    let mut bytes = node.receive_buffers.take_or_new();
    strand_net::blobs::fetch_sized(connection, fragment, fragment_size, FRAGMENT_TIMEOUT, &mut bytes)
        .await
        .map_err(|error| error.to_string())?;
    // The named tag set before keeps it; the temporary one goes.
    let added = node
        .store
        .add_bytes(node.receive_buffers.lend(bytes))
        .temp_tag()
        .await
        .map_err(|error| format!("cannot store a fragment: {error}"))?;
    if added.hash() != hash {
        return Err(format!("fragment {} was stored under another hash", hash.fmt_short()));
    }
    node.store_files
        .settle(&fragment, fragment_size)
        .await
        .map_err(|error| format!("cannot make fragment {} durable: {error}", hash.fmt_short()))?;
    node.metrics.fragment_bytes_received.inc_by(fragment_size);
    Ok(())
}

/// Drops an agreement and its tags; garbage collection reclaims the bytes
/// of fragments no other contract holds (tags are per contract).
pub(super) async fn forget(node: &Arc<Node>, agreement: &Agreement) {
    let id = agreement.terms.id();
    let _ = node.store.tags().delete_prefix(contract_prefix(&id)).await;
    let remover = Arc::clone(node);
    let _ = tokio::task::spawn_blocking(move || remover.records.remove(&id)).await;
    node.core_mut().holdings.remove(&id);
    node.refresh_storage_metrics();
}

/// At start: agreements still fetching belong to proposals that died with
/// the previous process (their proposer got an error); drop them.
pub(super) async fn forget_unfinished(node: &Arc<Node>) {
    let unfinished: Vec<Agreement> = node
        .core()
        .holdings
        .agreements()
        .filter(|(_, agreement)| agreement.state == AgreementState::Fetching)
        .map(|(_, agreement)| agreement.clone())
        .collect();
    for agreement in unfinished {
        tracing::info!(contract = %agreement.terms.id().short(), "node.proposal dropping an unfinished agreement");
        forget(node, &agreement).await;
    }
    // Reservations live in memory only: what was staged for them is released.
    let _ = node.store.tags().delete_prefix(STAGING_TAGS).await;
}

/// Releases what the ledger says the node no longer has to keep
/// (see `core::retention`).
pub(super) async fn release_unneeded(node: &Arc<Node>) {
    let ledger = node.ledger();
    let releasable: Vec<Agreement> = {
        let core = node.core();
        crate::core::retention::releasable(&core.holdings, &ledger, &node.account)
            .iter()
            .filter_map(|id| core.holdings.agreement(id).cloned())
            .collect()
    };
    for agreement in releasable {
        tracing::info!(contract = %agreement.terms.id().short(), height = ledger.height, "node.retention releasing");
        forget(node, &agreement).await;
    }
}
