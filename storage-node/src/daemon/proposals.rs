//! Answering contract proposals: check, pull and verify every fragment from
//! the owner, record, countersign.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use strand_contracts::query::FragmentMembership;
use strand_contracts::{AccountId, Signature};
use strand_net::p2p::PeerId;
use strand_wire::{Proposal, Refusal, Request, Response};

use super::Node;
use super::data::tag_of;
use crate::core::holdings::{Agreement, AgreementState};
use crate::core::proposal::{self, AcceptancePolicy};

/// How long one fragment may take to arrive.
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Fragments fetched at once per proposal.
const FETCHES_IN_FLIGHT: usize = 8;

/// Answers one request from `peer`.
pub(super) async fn handle(node: &Arc<Node>, peer: PeerId, bytes: &[u8]) -> Response {
    let request = match strand_wire::decode::<Request>(bytes) {
        Ok(request) => request,
        Err(error) => return Response::Refused(Refusal::Terms(format!("undecodable request: {error}"))),
    };
    match request {
        Request::Propose(proposal) => {
            let outcome = propose(node, peer, proposal).await;
            let label = if matches!(outcome, Response::Accepted { .. }) { "accepted" } else { "refused" };
            node.metrics.proposals.with_label_values(&[label]).inc();
            outcome
        }
        Request::Present(presentation) => present(node, peer, presentation),
    }
}

/// Records a grantee's credential presentation after checking it against
/// the replica (the libp2p connection proves the grantee's key).
fn present(node: &Arc<Node>, peer: PeerId, presentation: strand_wire::Presentation) -> Response {
    let Some(requester) = strand_net::p2p::account_of(&peer) else {
        return Response::Denied { code: "not_grantee".into() };
    };
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
    let outcome = {
        let holdings = node.holdings();
        crate::core::gate::present(
            &AccountId(requester),
            &presentation.credential,
            &memberships,
            &holdings,
            &ledger,
            node.freshness(),
            &mut node.presentations_mut(),
        )
    };
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
    let free = node.capacity_bytes.saturating_sub(node.holdings().committed_bytes());
    if let Err(refusal) = proposal::check(&proposal, &node.account, free, &AcceptancePolicy::default()) {
        return Response::Refused(refusal);
    }
    let contract = proposal.terms.id();
    if node.holdings().agreement(&contract).is_some() {
        return Response::Refused(Refusal::Terms("this contract was already proposed".into()));
    }
    let agreement = Agreement {
        terms: proposal.terms.clone(),
        fragment_ids: proposal.fragment_ids.clone(),
        state: AgreementState::Fetching,
    };
    if let Err(error) = node.records.put(&agreement) {
        return Response::Refused(Refusal::NotReady(format!("cannot record the agreement: {error}")));
    }
    node.holdings_mut().insert(agreement.clone());
    match fetch_all(node, &proposal).await {
        Ok(()) => {}
        Err(reason) => {
            forget(node, &agreement).await;
            return Response::Refused(Refusal::Fetch(reason));
        }
    }
    let signed = Agreement { state: AgreementState::Signed { at_height: node.ledger().height }, ..agreement.clone() };
    if let Err(error) = node.records.put(&signed) {
        forget(node, &agreement).await;
        return Response::Refused(Refusal::NotReady(format!("cannot record the agreement: {error}")));
    }
    node.holdings_mut().insert(signed);
    node.refresh_storage_metrics();
    let signature = Signature(node.identity.sign(&proposal.terms.signing_message(&node.chain)));
    tracing::info!(contract = %contract.short(), fragments = proposal.fragment_ids.len(), "node.proposal accepted");
    Response::Accepted { contract, signature }
}

/// Pulls every fragment of the proposal from its source into the store,
/// verified against its id, and makes the store durable before returning.
async fn fetch_all(node: &Arc<Node>, proposal: &Proposal) -> Result<(), String> {
    let sockets: Vec<std::net::SocketAddr> =
        proposal.source.addresses.iter().filter_map(|address| address.parse().ok()).collect();
    let remote =
        strand_net::blobs::remote_address(proposal.source.endpoint, &sockets).map_err(|error| error.to_string())?;
    let connection = strand_net::blobs::connect(&node.endpoint, remote, FRAGMENT_TIMEOUT)
        .await
        .map_err(|error| error.to_string())?;
    // Tag first: a tagged blob is never garbage-collected, even mid-transfer.
    for fragment in &proposal.fragment_ids {
        let tag = tag_of(fragment);
        let content = iroh_blobs::HashAndFormat::raw(iroh_blobs::Hash::from_bytes(*fragment));
        node.store.tags().set(tag, content).await.map_err(|error| format!("cannot tag a fragment: {error}"))?;
    }
    let fragment_size = u64::from(proposal.terms.fragment_size);
    let results: Vec<Result<(), String>> = futures::stream::iter(proposal.fragment_ids.iter().copied())
        .map(|fragment| {
            let connection = connection.clone();
            async move {
                strand_net::blobs::fetch_into(&node.store, &connection, fragment, FRAGMENT_TIMEOUT)
                    .await
                    .map_err(|error| error.to_string())?;
                node.metrics.fragment_bytes_received.inc_by(fragment_size);
                Ok(())
            }
        })
        .buffer_unordered(FETCHES_IN_FLIGHT)
        .collect()
        .await;
    connection.close(0u32.into(), b"done");
    results.into_iter().collect::<Result<(), String>>()?;
    // Every fragment must be complete and of the agreed size.
    for fragment in &proposal.fragment_ids {
        let status =
            node.store.status(iroh_blobs::Hash::from_bytes(*fragment)).await.map_err(|error| error.to_string())?;
        match status {
            iroh_blobs::api::blobs::BlobStatus::Complete { size } if size == fragment_size => {}
            other => return Err(format!("fragment arrived incomplete or of the wrong size: {other:?}")),
        }
    }
    node.store.sync_db().await.map_err(|error| format!("cannot make the fragments durable: {error}"))
}

/// Drops an agreement and its fragments (their tags; GC reclaims the bytes).
pub(super) async fn forget(node: &Arc<Node>, agreement: &Agreement) {
    let id = agreement.terms.id();
    for fragment in &agreement.fragment_ids {
        let _ = node.store.tags().delete(tag_of(fragment)).await;
    }
    let _ = node.records.remove(&id);
    node.holdings_mut().remove(&id);
    node.refresh_storage_metrics();
}

/// At start: agreements still fetching belong to proposals that died with
/// the previous process (their proposer got an error); drop them.
pub(super) async fn forget_unfinished(node: &Arc<Node>) {
    let unfinished: Vec<Agreement> = node
        .holdings()
        .agreements()
        .filter(|(_, agreement)| agreement.state == AgreementState::Fetching)
        .map(|(_, agreement)| agreement.clone())
        .collect();
    for agreement in unfinished {
        tracing::info!(contract = %agreement.terms.id().short(), "node.proposal dropping an unfinished agreement");
        forget(node, &agreement).await;
    }
}

/// Releases what the ledger says the node no longer has to keep
/// (see `core::retention`).
pub(super) async fn release_unneeded(node: &Arc<Node>) {
    let ledger = node.ledger();
    let releasable: Vec<Agreement> = {
        let holdings = node.holdings();
        crate::core::retention::releasable(&holdings, &ledger)
            .iter()
            .filter_map(|id| holdings.agreement(id).cloned())
            .collect()
    };
    for agreement in releasable {
        tracing::info!(contract = %agreement.terms.id().short(), height = ledger.height, "node.retention releasing");
        forget(node, &agreement).await;
    }
}
