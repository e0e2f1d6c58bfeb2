//! Download from the storage network: fetch each needed fragment from its
//! provider over iroh-blobs, many at once (the decoder's workers), fastest
//! first, turning to parity when a provider fails or stalls; then decode and
//! verify.
//!
//! "Fastest first": every arrival updates its provider's running time
//! ([`crate::speed`]). A chunk's own fragment is waited for only as long as
//! [`Speeds::hedge_after`] (a few times the typical provider's time); a
//! provider that misses it is passed over for a while and its stripes are
//! rebuilt from siblings. Siblings are asked fastest first, `k` at once, and
//! raced: whenever one fails or outlasts the hedge time the next is started,
//! and the first `k` to arrive are used.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use strand_contracts::AccountId;
use strand_contracts::state::LedgerState;
use strand_core::io::{FragmentLocation, FragmentSource};
use strand_core::{FragmentId, Identity};
use strand_net::blobs;

use crate::network::endpoints_of;
use crate::offline::DecodeSummary;
use crate::record::UploadRecord;
use crate::speed::Speeds;

/// How long connecting to a provider may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one fragment may take to arrive when nothing faster is left to
/// ask.
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which provider holds each fragment: an owner's whole record, or a range
/// grantee's stripes.
pub enum Placement {
    /// The owner's (or a whole-upload grantee's) record.
    Whole(Box<UploadRecord>),
    /// Per stripe, the provider of each shard.
    Stripes(BTreeMap<u64, Vec<AccountId>>),
}

impl Placement {
    /// The provider holding `shard` of `stripe`, if the placement names one.
    pub fn provider_of(&self, stripe: u64, shard: usize) -> Option<AccountId> {
        match self {
            Self::Whole(record) => {
                (stripe < record.index.layout.stripe_count).then(|| record.provider_of(stripe, shard))
            }
            Self::Stripes(stripes) => stripes.get(&stripe).and_then(|providers| providers.get(shard)).copied(),
        }
    }

    /// The same placement with every provider whose contract repair moved
    /// replaced by the contract's holder now (the ledger's record), so an
    /// owner's record stays valid after repair.
    pub fn current(self, state: &LedgerState, upload: &[u8; 16]) -> Self {
        let moved: HashMap<AccountId, AccountId> = state
            .uploads
            .get(upload)
            .map(|upload| upload.contracts.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|id| state.contracts.get(id))
            .filter(|contract| contract.holder != contract.terms.provider)
            .map(|contract| (contract.terms.provider, contract.holder))
            .collect();
        let now = |account: AccountId| moved.get(&account).copied().unwrap_or(account);
        match self {
            Self::Whole(mut record) => {
                record.providers = record.providers.into_iter().map(now).collect();
                Self::Whole(record)
            }
            Self::Stripes(stripes) => Self::Stripes(
                stripes
                    .into_iter()
                    .map(|(stripe, providers)| (stripe, providers.into_iter().map(now).collect()))
                    .collect(),
            ),
        }
    }

    /// Every provider the placement names, once.
    pub fn providers(&self) -> Vec<AccountId> {
        let mut providers: Vec<AccountId> = match self {
            Self::Whole(record) => record.providers.clone(),
            Self::Stripes(stripes) => stripes.values().flatten().copied().collect(),
        };
        providers.sort();
        providers.dedup();
        providers
    }
}

/// Fetches fragments from their providers for the decoder (which calls from
/// its own worker threads, hence the blocking bridge).
pub struct NetworkSource {
    placement: Placement,
    endpoint: iroh::Endpoint,
    addresses: HashMap<AccountId, Vec<SocketAddr>>,
    /// One slot per provider of the placement: the decoder's workers asking
    /// the same provider at once wait for one connection attempt, instead
    /// of each opening its own.
    connections: HashMap<AccountId, tokio::sync::Mutex<Option<iroh::endpoint::Connection>>>,
    unreachable: Mutex<HashMap<AccountId, String>>,
    /// Providers that stalled at least once, with why (for the report).
    stalled: Mutex<HashMap<AccountId, String>>,
    speeds: Mutex<Speeds>,
    runtime: tokio::runtime::Handle,
}

/// How one fetch ended.
type Fetched = (usize, std::io::Result<bool>, Vec<u8>);

impl NetworkSource {
    /// A source for `record`'s fragments, with addresses from the ledger.
    pub async fn new(owner: &Identity, record: UploadRecord, state: &LedgerState) -> anyhow::Result<Self> {
        let upload = *record.index.upload_id.as_bytes();
        Self::with_placement(owner, Placement::Whole(Box::new(record)).current(state, &upload), state).await
    }

    /// A source reading as `reader` from the providers `placement` names,
    /// at the addresses they registered on the ledger.
    pub async fn with_placement(reader: &Identity, placement: Placement, state: &LedgerState) -> anyhow::Result<Self> {
        let addresses = placement
            .providers()
            .into_iter()
            .map(|provider| {
                let sockets =
                    state.providers.get(&provider).map(|record| endpoints_of(record).iroh).unwrap_or_default();
                (provider, sockets)
            })
            .collect();
        Self::with_addresses(reader, placement, addresses).await
    }

    /// A source reading as `reader` from the providers `placement` names at
    /// the given addresses.
    pub async fn with_addresses(
        reader: &Identity,
        placement: Placement,
        addresses: HashMap<AccountId, Vec<SocketAddr>>,
    ) -> anyhow::Result<Self> {
        let endpoint = blobs::endpoint(*reader.secret_bytes(), "127.0.0.1:0".parse()?).await?;
        let connections =
            placement.providers().into_iter().map(|provider| (provider, tokio::sync::Mutex::new(None))).collect();
        Ok(Self {
            placement,
            endpoint,
            addresses,
            connections,
            unreachable: Mutex::new(HashMap::new()),
            stalled: Mutex::new(HashMap::new()),
            speeds: Mutex::new(Speeds::default()),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Providers that could not be reached or stalled, with why.
    pub fn unreachable(&self) -> Vec<(AccountId, String)> {
        let mut found: Vec<(AccountId, String)> =
            lock(&self.unreachable).iter().map(|(provider, reason)| (*provider, reason.clone())).collect();
        for (provider, reason) in lock(&self.stalled).iter() {
            if !found.iter().any(|(known, _)| known == provider) {
                found.push((*provider, reason.clone()));
            }
        }
        found.sort();
        found
    }

    /// Closes the endpoint (every connection).
    pub async fn close(&self) {
        self.endpoint.close().await;
    }

    fn speeds(&self) -> std::sync::MutexGuard<'_, Speeds> {
        lock(&self.speeds)
    }

    async fn connection(&self, provider: AccountId) -> Result<iroh::endpoint::Connection, String> {
        if let Some(reason) = lock(&self.unreachable).get(&provider).cloned() {
            return Err(reason);
        }
        let Some(slot) = self.connections.get(&provider) else {
            return Err(format!("provider {} holds nothing of this download", provider.short()));
        };
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref().filter(|connection| connection.close_reason().is_none()) {
            return Ok(connection.clone());
        }
        // Another worker may have found it unreachable while this one waited.
        if let Some(reason) = lock(&self.unreachable).get(&provider).cloned() {
            return Err(reason);
        }
        let sockets = self.addresses.get(&provider).cloned().unwrap_or_default();
        let remote = blobs::remote_address(provider.0, &sockets).map_err(|error| error.to_string())?;
        match blobs::connect(&self.endpoint, remote, CONNECT_TIMEOUT).await {
            Ok(connection) => {
                *slot = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                let reason = match error {
                    blobs::FetchError::Timeout { timeout, .. } => {
                        format!("provider {} unreachable (no answer in {timeout:?})", provider.short())
                    }
                    other => format!("provider {} unreachable ({other})", provider.short()),
                };
                lock(&self.unreachable).insert(provider, reason.clone());
                Err(reason)
            }
        }
    }

    /// Fetches `id` from `provider` within `timeout`, recording how long it
    /// took, or that the provider stalled.
    async fn fetch_from(
        &self,
        provider: AccountId,
        id: &FragmentId,
        size: usize,
        timeout: Duration,
        into: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        let connection = self.connection(provider).await.map_err(std::io::Error::other)?;
        let started = Instant::now();
        match blobs::fetch_sized(&connection, *id.as_bytes(), size as u64, timeout, into).await {
            Ok(()) => {
                self.speeds().arrived(provider, started.elapsed());
                Ok(true)
            }
            Err(blobs::FetchError::Timeout { .. }) => {
                let reason = format!(
                    "provider {} stalled (no fragment within {:.1} s); its stripes were rebuilt from parity",
                    provider.short(),
                    timeout.as_secs_f64()
                );
                self.speeds().stalled(provider, Instant::now());
                lock(&self.stalled).insert(provider, reason.clone());
                Err(std::io::Error::other(reason))
            }
            Err(error) => Err(std::io::Error::other(error)),
        }
    }

    fn expected_seconds(&self, location: FragmentLocation, now: Instant) -> f64 {
        match self.placement.provider_of(location.stripe, location.shard) {
            Some(provider) if !lock(&self.unreachable).contains_key(&provider) => {
                self.speeds().expected_seconds(&provider, now)
            }
            _ => f64::INFINITY,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every guarded map stays consistent: each use is one insert or read.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FragmentSource for NetworkSource {
    fn fetch(
        &self,
        location: FragmentLocation,
        id: &FragmentId,
        size: usize,
        into: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        let Some(provider) = self.placement.provider_of(location.stripe, location.shard) else {
            return Ok(false);
        };
        if self.speeds().is_stalled(&provider, Instant::now()) {
            let reason = lock(&self.stalled).get(&provider).cloned().unwrap_or_default();
            return Err(std::io::Error::other(reason));
        }
        // Waited for only as long as a few typical fragments take: the
        // decoder then rebuilds this chunk from its siblings.
        let hedge = self.speeds().hedge_after();
        self.runtime.block_on(self.fetch_from(provider, id, size, hedge, into))
    }

    fn fetch_any(
        &self,
        candidates: &[(FragmentLocation, FragmentId)],
        needed: usize,
        size: usize,
        buffers: &mut [Vec<u8>],
    ) -> Vec<Option<std::io::Result<bool>>> {
        // Races fetches of `candidates` (in order) until `needed` arrive.
        self.runtime.block_on(async {
            let mut outcomes: Vec<Option<std::io::Result<bool>>> = candidates.iter().map(|_| None).collect();
            let mut running = futures::stream::FuturesUnordered::new();
            let (mut next, mut arrived) = (0, 0);
            let start = |index: usize, buffer: Vec<u8>| {
                let (location, id) = candidates[index];
                let provider = self.placement.provider_of(location.stripe, location.shard);
                async move {
                    let mut buffer = buffer;
                    let outcome = match provider {
                        Some(provider) => self.fetch_from(provider, &id, size, FRAGMENT_TIMEOUT, &mut buffer).await,
                        None => Ok(false),
                    };
                    (index, outcome, buffer) as Fetched
                }
            };
            while arrived < needed {
                while running.len() < needed - arrived && next < candidates.len() {
                    running.push(start(next, std::mem::take(&mut buffers[next])));
                    next += 1;
                }
                if running.is_empty() {
                    break;
                }
                let hedge = self.speeds().hedge_after();
                tokio::select! {
                    Some((index, outcome, buffer)) = running.next() => {
                        arrived += usize::from(matches!(outcome, Ok(true)));
                        buffers[index] = buffer;
                        outcomes[index] = Some(outcome);
                    }
                    // Slow: ask one more, keep waiting for the others too.
                    () = tokio::time::sleep(hedge), if next < candidates.len() => {
                        running.push(start(next, std::mem::take(&mut buffers[next])));
                        next += 1;
                    }
                }
            }
            outcomes
        })
    }

    /// `fetch_sized` verifies every byte against the id (iroh-blobs'
    /// verified streaming) before returning it.
    fn verifies_ids(&self) -> bool {
        true
    }

    fn rank(&self, candidates: &mut [(FragmentLocation, FragmentId)]) {
        let now = Instant::now();
        // Stable: among equals, data shards (cheapest to decode) stay first.
        candidates.sort_by(|(left, _), (right, _)| {
            self.expected_seconds(*left, now).total_cmp(&self.expected_seconds(*right, now))
        });
    }
}

/// Downloads `range` (the whole grant if `None`) with a range grantee's
/// partial index, from the providers of its stripes.
#[allow(clippy::too_many_arguments)]
pub async fn download_partial(
    reader: &Identity,
    partial: strand_core::partial::PartialIndex,
    stripes: BTreeMap<u64, Vec<AccountId>>,
    state: &LedgerState,
    output: &Path,
    range: Option<std::ops::Range<u64>>,
    threads: usize,
    progress: impl FnMut(u64) + Send + 'static,
) -> anyhow::Result<(DecodeSummary, Vec<String>)> {
    let upload = *partial.upload_id.as_bytes();
    let placement = Placement::Stripes(stripes).current(state, &upload);
    let source = NetworkSource::with_placement(reader, placement, state).await?;
    let output = output.to_path_buf();
    decode_from(source, move |source| {
        crate::offline::decode_partial_with(&partial, source, &output, range, threads, progress)
    })
    .await
}

/// Runs the (blocking) `decode` over `source` off the runtime, then reports
/// the providers found unreachable or stalled and closes the endpoint.
pub async fn decode_from(
    source: NetworkSource,
    decode: impl FnOnce(&NetworkSource) -> anyhow::Result<DecodeSummary> + Send + 'static,
) -> anyhow::Result<(DecodeSummary, Vec<String>)> {
    let source = Arc::new(source);
    let task_source = Arc::clone(&source);
    let summary = tokio::task::spawn_blocking(move || decode(task_source.as_ref())).await??;
    let unreachable = source.unreachable().into_iter().map(|(_, reason)| reason).collect();
    source.close().await;
    Ok((summary, unreachable))
}

/// Downloads `range` (all if `None`) of the upload in `record` to `output`.
pub async fn download(
    owner: &Identity,
    record: UploadRecord,
    state: &LedgerState,
    output: &Path,
    range: Option<std::ops::Range<u64>>,
    threads: usize,
    progress: impl FnMut(u64) + Send + 'static,
) -> anyhow::Result<(DecodeSummary, Vec<String>)> {
    let index = record.index.clone();
    let source = NetworkSource::new(owner, record, state).await?;
    let output = output.to_path_buf();
    decode_from(source, move |source| crate::offline::decode_with(&index, source, &output, range, threads, progress))
        .await
}
