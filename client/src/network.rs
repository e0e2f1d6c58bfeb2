//! Upload to and download from the storage network.
//!
//! Upload: choose k+m distinct providers per stripe from the verified ledger
//! replica; encode into a bounded in-memory window while each provider
//! pulls and verifies its fragments over iroh-blobs as they are encoded
//! (staging: only chosen providers, only their own fragments); then propose
//! one contract per provider over libp2p, which finds its fragments held and
//! countersigns; open the contracts on the ledger; keep the sealed upload
//! record. Download is in [`crate::download`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use strand_contracts::state::{LedgerState, Provider};
use strand_contracts::stripes::StripeMap;
use strand_contracts::transaction::{Body, ContractTerms, ProofPolicy};
use strand_contracts::{AccountId, Digest, Outcome, Signature, Transaction};

use strand_core::{CodecParams, Identity, RecoveryIndex, UploadSecrets};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::protocol::TransactionStatus;
use strand_net::blobs::{self, Operation};
use strand_net::p2p::{self, P2pConfig};
use strand_proof_of_storage::merkle;
use strand_wire::{FragmentSource as WireSource, Proposal, Request, Response};

use crate::placement::{self, Candidate};
use crate::record::UploadRecord;
use crate::window::{self, Encoded, WindowSink};

/// How long a provider may take to accept (it pulls its fragments first).
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(600);
/// How many blocks to wait for the contracts to be finalised.
const FINALISATION_BLOCKS_MAX: u64 = 60;

/// Upload parameters.
#[derive(Clone, Copy, Debug)]
pub struct UploadOptions {
    /// Codec parameters.
    pub params: CodecParams,
    /// Contract term in epochs.
    pub term_epochs: u32,
    /// Encoding threads.
    pub threads: usize,
}

/// What an upload produced.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UploadSummary {
    /// The upload id.
    pub upload_id: String,
    /// File bytes.
    pub file_bytes: u64,
    /// File BLAKE3.
    pub file_blake3: String,
    /// Stripes and fragments.
    pub stripes: u64,
    /// Fragments.
    pub fragments: u64,
    /// The providers, with the contract each signed.
    pub contracts: Vec<(String, String)>,
    /// Where the sealed upload record is.
    pub record: std::path::PathBuf,
    /// Wall time.
    pub seconds: f64,
    /// Of which encoding, with providers pulling (staging) as it goes,
    /// until every fragment is held by its provider.
    pub encode_seconds: f64,
    /// Of which proposing the contracts and providers countersigning.
    pub transfer_seconds: f64,
    /// Of which opening the contracts on the ledger.
    pub ledger_seconds: f64,
    /// File bytes per second, end to end.
    pub bytes_per_second: f64,
}

pub use strand_net::Endpoints;

/// Parses `libp2p:<multiaddr>` and `iroh:<socket>` entries.
pub fn endpoints_of(provider: &Provider) -> Endpoints {
    strand_net::Endpoints::parse(&provider.registration.endpoints)
}

/// Fragments named in one staging request to a busy provider.
const STAGE_BATCH: usize = 8;
/// Staging requests in flight to one provider.
const STAGE_REQUESTS_PER_PROVIDER: usize = 2;

/// The upload's stripe map: slots are the providers given fragments, in
/// candidate order; each stripe's shards name their fragment and slot.
fn stripe_map(placements: &[Vec<usize>], candidates: &[Candidate], index: &RecoveryIndex) -> StripeMap {
    let accounts: Vec<AccountId> = candidates.iter().map(|candidate| candidate.account).collect();
    StripeMap::from_placement(placements, &accounts, |stripe, shard| *index.stripe(stripe as u64)[shard].as_bytes())
}

/// (provider, fragment) pairs the upload's blob server may serve now.
type Allowed = Mutex<HashSet<([u8; 32], [u8; 32])>>;

/// The allowed pairs (each change is one insert or removal, so the set
/// stays consistent even if a holder panicked).
fn allowed_now(allowed: &Allowed) -> std::sync::MutexGuard<'_, HashSet<([u8; 32], [u8; 32])>> {
    allowed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What staging needs to know of one provider.
struct StagingTarget {
    peer: p2p::PeerId,
    address: Option<p2p::Multiaddr>,
    account: AccountId,
    fragment_count: u32,
}

/// Sends encoded fragments to their providers as staging requests (each
/// provider pulls them over iroh-blobs at once) until the encoder is done;
/// a fragment leaves memory once its provider holds it. Batches form while
/// a provider is busy; an idle provider is sent what is waiting when the
/// encoder is done or the window is full, so the window always drains.
#[allow(clippy::too_many_arguments)]
async fn stage_all(
    network: &p2p::P2pHandle,
    targets: &HashMap<usize, StagingTarget>,
    upload: strand_contracts::types::UploadKey,
    fragment_size: u32,
    source: &WireSource,
    mut encoded: tokio::sync::mpsc::UnboundedReceiver<Encoded>,
    window: &tokio::sync::Semaphore,
    allowed: &Allowed,
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let mut waiting: HashMap<usize, Vec<Encoded>> = HashMap::new();
    let mut in_flight: HashMap<usize, usize> = HashMap::new();
    let mut requests = futures::stream::FuturesUnordered::new();
    let mut encoder_done = false;
    loop {
        let window_full = window.available_permits() == 0;
        for (&provider, batch) in waiting.iter_mut().filter(|(_, batch)| !batch.is_empty()) {
            let busy = in_flight.get(&provider).copied().unwrap_or(0);
            let send = busy == 0 && (encoder_done || window_full || batch.len() >= STAGE_BATCH)
                || busy < STAGE_REQUESTS_PER_PROVIDER && batch.len() >= STAGE_BATCH;
            if !send {
                continue;
            }
            let batch = std::mem::take(batch);
            let target = &targets[&provider];
            allowed_now(allowed).extend(batch.iter().map(|fragment| (target.account.0, fragment.id)));
            let request = Request::Stage(strand_wire::Stage {
                upload,
                fragment_count: target.fragment_count,
                fragment_size,
                source: source.clone(),
                fragment_ids: batch.iter().map(|fragment| fragment.id).collect(),
            });
            *in_flight.entry(provider).or_default() += 1;
            let answer = network.request(target.peer, target.address.clone(), strand_wire::encode(&request));
            requests.push(async move { (provider, batch, answer.await) });
        }
        if encoder_done && requests.is_empty() && waiting.values().all(Vec::is_empty) {
            return Ok(());
        }
        tokio::select! {
            item = encoded.recv(), if !encoder_done => match item {
                Some(fragment) => waiting.entry(fragment.provider).or_default().push(fragment),
                None => encoder_done = true,
            },
            Some((provider, batch, answer)) = requests.next() => {
                let account = targets[&provider].account;
                let answer = answer.map_err(|reason| anyhow::anyhow!("provider {}: {reason}", account.short()))?;
                match strand_wire::decode::<Response>(&answer)? {
                    Response::Staged { .. } => {}
                    Response::Refused(reason) => bail!("provider {} refused to stage fragments: {reason}", account.short()),
                    _ => bail!("provider {} answered a staging request with another response", account.short()),
                }
                let mut still_allowed = allowed_now(allowed);
                for fragment in &batch {
                    still_allowed.remove(&(account.0, fragment.id));
                }
                drop(still_allowed);
                // Dropping the batch frees its window places and bytes.
                drop(batch);
                *in_flight.entry(provider).or_default() -= 1;
            }
        }
    }
}

/// Uploads `file`. Nothing is recorded unless every provider accepted and
/// every contract was finalised on the ledger.
///
/// Encoding and transfer overlap: fragments go into a bounded in-memory
/// window, and each provider pulls its own as they are encoded (staging);
/// the proposals follow once the whole file is encoded and the terms' roots
/// are known, and find every fragment already held.
pub async fn upload(
    file: &Path,
    owner: &Identity,
    client: &mut LedgerClient,
    state: &LedgerState,
    home: &Path,
    options: UploadOptions,
    progress: impl FnMut(u64) + Send + 'static,
) -> anyhow::Result<UploadSummary> {
    let started = Instant::now();
    let account = AccountId::of(&owner.public_key());
    let secrets = UploadSecrets::generate(&mut rand::rng());
    let file_source =
        strand_core::io::FileSource::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let layout = strand_core::Layout::new(options.params, strand_core::io::ChunkSource::length(&file_source))?;
    let width = options.params.fragments_per_stripe();
    let fragment_bytes = options.params.fragment_size() as u64;

    // Place every stripe before encoding (placement needs only the layout).
    let providers: Vec<(AccountId, Provider)> =
        strand_contracts::query::providers_by_domain(state, &Default::default(), 0)
            .into_iter()
            .filter(|(id, _)| *id != account)
            .collect();
    let candidates: Vec<Candidate> = providers
        .iter()
        .map(|(id, provider)| Candidate {
            account: *id,
            organisation: provider.registration.domain.organisation.clone(),
            site: provider.registration.domain.site.clone(),
            free_bytes: provider.free_bytes(),
        })
        .collect();
    let placements = Arc::new(placement::place(
        layout.stripe_count,
        width,
        &candidates,
        fragment_bytes,
        secrets.master_key.as_bytes(),
    )?);
    let mut targets: HashMap<usize, StagingTarget> = HashMap::new();
    for &provider in placements.iter().flatten() {
        let (account, record) = &providers[provider];
        let target = match targets.entry(provider) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(StagingTarget {
                peer: p2p::peer_id_of(&account.0)?,
                address: endpoints_of(record).libp2p,
                account: *account,
                fragment_count: 0,
            }),
        };
        target.fragment_count += 1;
    }

    // Serve each chosen provider exactly the fragments it was asked to stage.
    let blobs = strand_net::memory::MemoryBlobs::new();
    // The window's endpoint has a key of its own for this upload: providers
    // pull from it by address and it serves by their keys, so nothing needs
    // it to be the owner's, and the owner's uploads one after another (or
    // at once) must not share an endpoint id: a provider's iroh endpoint
    // would keep trying the address of one that has closed.
    let endpoint = blobs::endpoint(rand::random(), "127.0.0.1:0".parse()?).await?;
    let source = WireSource {
        endpoint: *endpoint.id().as_bytes(),
        addresses: endpoint.bound_sockets().iter().map(ToString::to_string).collect(),
    };
    let allowed: Arc<Allowed> = Arc::default();
    let gate_allowed = Arc::clone(&allowed);
    let gate: blobs::Gate = Arc::new(move |operation, remote, fragment, _| match operation {
        Operation::Get if allowed_now(&gate_allowed).contains(&(remote, fragment)) => Ok(()),
        _ => Err("not_authorised"),
    });
    let router = strand_net::memory::serve(endpoint.clone(), Arc::clone(&blobs), gate);
    let (network, network_task) = node_client(owner, PROPOSAL_TIMEOUT).await?;

    // Encode (blocking, off the runtime) while providers pull.
    let window = Arc::new(tokio::sync::Semaphore::new(window::places(fragment_bytes, width)));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let encoding = {
        let sink = WindowSink {
            blobs: Arc::clone(&blobs),
            runtime: tokio::runtime::Handle::current(),
            places: Arc::clone(&window),
            encoded: sender,
            placements: Arc::clone(&placements),
            width,
            position: 0,
            recycler: strand_net::recycle::Recycler::new(crate::window::RECYCLED_BYTES),
        };
        let (secrets, params, threads) = (secrets.clone(), options.params, options.threads);
        tokio::task::spawn_blocking(move || -> anyhow::Result<RecoveryIndex> {
            let mut sink = sink;
            let index = strand_core::encode_named(
                &file_source,
                &mut sink,
                &window::Outboards,
                params,
                &secrets,
                threads,
                progress,
            )?;
            Ok(index)
        })
    };
    let staging = async {
        let staged = stage_all(
            &network,
            &targets,
            *secrets.upload_id.as_bytes(),
            fragment_bytes as u32,
            &source,
            receiver,
            &window,
            &allowed,
        )
        .await;
        // A failed transfer stops the encoder waiting for window places.
        window.close();
        staged
    };
    let (encoded, staged) = tokio::join!(encoding, staging);
    let encoded = match (encoded, staged) {
        (_, Err(error)) => Err(error),
        (Err(joined), _) => Err(anyhow::anyhow!("the encoder stopped: {joined}")),
        (Ok(encoded), Ok(())) => encoded,
    };
    let encode_seconds = started.elapsed().as_secs_f64();
    let index = match encoded {
        Ok(encoded) => encoded,
        Err(error) => {
            network_task.abort();
            let _ = router.shutdown().await;
            return Err(error);
        }
    };

    // Per provider: its fragments in (stripe, shard) order, and the terms.
    let mut assigned: HashMap<usize, Vec<[u8; 32]>> = HashMap::new();
    for (stripe, chosen) in placements.iter().enumerate() {
        for (shard, &provider) in chosen.iter().enumerate() {
            assigned.entry(provider).or_default().push(*index.stripe(stripe as u64)[shard].as_bytes());
        }
    }
    let accounts: Vec<AccountId> = candidates.iter().map(|candidate| candidate.account).collect();
    let record = match UploadRecord::from_placement(index.clone(), &placements, &accounts) {
        Ok(record) => record,
        Err(error) => {
            network_task.abort();
            let _ = router.shutdown().await;
            return Err(error.into());
        }
    };
    let stripe_map = stripe_map(&placements, &candidates, &index);
    let stripes_root = stripe_map.root();
    let mut proposals: Vec<(usize, Proposal)> = Vec::new();
    for (&provider, ids) in &assigned {
        // The map a repairer will check against the terms names exactly
        // these fragments for this provider, in this order.
        if stripe_map.fragments_of(&candidates[provider].account) != *ids {
            network_task.abort();
            bail!("internal error: the stripe map disagrees with the placement of {}", candidates[provider].account);
        }
        let terms = ContractTerms {
            upload: *secrets.upload_id.as_bytes(),
            owner: account,
            provider: candidates[provider].account,
            fragment_root: Digest(merkle::root(ids)),
            fragment_count: ids.len() as u32,
            fragment_size: fragment_bytes as u32,
            data_shards: index.params().data_shards,
            parity_shards: index.params().parity_shards,
            stripe_count: index.layout.stripe_count,
            stripes_root,
            term_epochs: options.term_epochs,
            proof_policy: ProofPolicy {
                challenges_per_epoch: strand_proof_of_storage::policy::DEFAULT_CHALLENGES,
                strikes_max: strand_proof_of_storage::policy::DEFAULT_STRIKES_MAX,
            },
        };
        let proposal =
            Proposal { terms, fragment_ids: ids.clone(), source: source.clone(), stripe_map: stripe_map.clone() };
        proposals.push((provider, proposal));
    }

    let signed = negotiate(&network, state, &providers, proposals).await;
    network_task.abort();
    let _ = router.shutdown().await;
    let signed = signed?;
    let transfer_seconds = started.elapsed().as_secs_f64() - encode_seconds;

    let contracts = open_contracts(owner, client, state, &signed).await?;
    let ledger_seconds = started.elapsed().as_secs_f64() - encode_seconds - transfer_seconds;
    let path = record.save(home, owner)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(UploadSummary {
        upload_id: index.upload_id.to_string(),
        file_bytes: index.layout.file_length,
        file_blake3: index.file_hash.to_hex().to_string(),
        stripes: index.layout.stripe_count,
        fragments: index.layout.fragment_count(),
        contracts,
        record: path,
        seconds,
        encode_seconds,
        transfer_seconds,
        ledger_seconds,
        bytes_per_second: index.layout.file_length as f64 / seconds.max(1e-9),
    })
}

/// A libp2p client (no listener) speaking the node protocol as `identity`;
/// abort the task when done.
pub async fn node_client(
    identity: &Identity,
    request_timeout: Duration,
) -> anyhow::Result<(p2p::P2pHandle, tokio::task::JoinHandle<()>)> {
    let (network, _events, task) = p2p::start(P2pConfig {
        secret: *identity.secret_bytes(),
        listen: None,
        protocol: strand_wire::CONTRACT_PROTOCOL,
        message_bytes_max: strand_wire::MESSAGE_BYTES_MAX,
        request_timeout,
        // A client takes no requests.
        busy_response: Vec::new(),
    })
    .await?;
    Ok((network, task))
}

/// Sends every proposal at once; all must be accepted.
async fn negotiate(
    network: &p2p::P2pHandle,
    state: &LedgerState,
    providers: &[(AccountId, Provider)],
    proposals: Vec<(usize, Proposal)>,
) -> anyhow::Result<Vec<(ContractTerms, Signature)>> {
    let requests = proposals.into_iter().map(|(provider, proposal)| {
        let network = network.clone();
        let (account, record) = providers[provider].clone();
        async move {
            let endpoints = endpoints_of(&record);
            let peer = p2p::peer_id_of(&account.0)?;
            let answer = network
                .request(peer, endpoints.libp2p, strand_wire::encode(&Request::Propose(proposal.clone())))
                .await
                .map_err(|reason| anyhow::anyhow!("provider {}: {reason}", account.short()))?;
            match strand_wire::decode::<Response>(&answer)? {
                Response::Accepted { signature, .. } => {
                    if !signature.verify(&account, &proposal.terms.signing_message(&state.params.chain)) {
                        bail!("provider {} answered with an invalid signature", account.short());
                    }
                    Ok((proposal.terms, signature))
                }
                Response::Refused(reason) => bail!("provider {} refused the contract: {reason}", account.short()),
                Response::Presented { .. }
                | Response::Denied { .. }
                | Response::Staged { .. }
                | Response::RepairOpen { .. } => {
                    bail!("provider {} answered a proposal with another response", account.short())
                }
            }
        }
    });
    let results = futures::future::join_all(requests).await;
    results.into_iter().collect()
}

/// Opens the signed contracts on the ledger and waits until they are final.
async fn open_contracts(
    owner: &Identity,
    client: &mut LedgerClient,
    state: &LedgerState,
    signed: &[(ContractTerms, Signature)],
) -> anyhow::Result<Vec<(String, String)>> {
    let account = AccountId::of(&owner.public_key());
    let mut nonce = state.accounts.get(&account).map_or(0, |account| account.nonce);
    let transactions = signed
        .iter()
        .map(|(terms, signature)| {
            nonce += 1;
            let body = Body::OpenContract { terms: terms.clone(), provider_signature: *signature };
            Transaction::sign(state.params.chain, owner, nonce, body).to_bytes()
        })
        .collect();
    let mut hashes = Vec::new();
    for (submitted, (terms, _)) in client.submit_all(transactions).await?.into_iter().zip(signed) {
        let hash = submitted.map_err(|reason| anyhow::anyhow!("the ledger refused a contract: {reason}"))?;
        hashes.push((hash, terms));
    }
    let start = client.status().await?.height;
    let mut contracts = Vec::new();
    for (hash, terms) in hashes {
        loop {
            match client.transaction(hash).await? {
                TransactionStatus::Finalised { outcome: Outcome::Accepted, .. } => break,
                TransactionStatus::Finalised { outcome: Outcome::Rejected(reason), .. } => {
                    bail!("the ledger rejected the contract with {}: {reason}", terms.provider.short())
                }
                TransactionStatus::Dropped(reason) => {
                    bail!("the contract with {} was dropped: {reason}", terms.provider.short())
                }
                TransactionStatus::Pending | TransactionStatus::Unknown => {
                    let height = client.status().await?.height;
                    let status = client.wait_for_height(height + 1, Duration::from_secs(5)).await?;
                    if status.height > start + FINALISATION_BLOCKS_MAX {
                        bail!("the contracts were not finalised within {FINALISATION_BLOCKS_MAX} blocks");
                    }
                }
            }
        }
        contracts.push((terms.provider.to_string(), terms.id().to_string()));
    }
    Ok(contracts)
}
