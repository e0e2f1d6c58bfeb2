//! The daemon: the shell that maps the node's decisions onto the ledger
//! service, iroh-blobs, libp2p, redb and Prometheus.

mod data;
mod ledger;
mod proofs;
mod proposals;
mod repair;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use strand_contracts::state::LedgerState;
use strand_contracts::{AccountId, Digest};
use strand_core::{Identity, keyfile};
use strand_ledger_service::store::LedgerStore;
use strand_net::p2p::{self, P2pConfig, P2pEvent};
use tokio::sync::watch;

use crate::config::NodeConfig;
use crate::core::gate::{Freshness, Presentations};
use crate::core::holdings::Holdings;
use crate::core::keeper::Keeper;
use crate::core::limits::{InFlight, Kind};
use crate::core::receipts::Receipts;
use crate::core::staging;
use crate::metrics::Metrics;
use crate::records::Records;

/// How long a proposal may take, fragment transfer included.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(600);

/// What every part of the running node shares.
pub(crate) struct Node {
    identity: Identity,
    account: AccountId,
    chain: Digest,
    /// The ledger replica's latest state (an O(1) clone of the follower's).
    ledger: RwLock<LedgerState>,
    /// Blocks the replica is behind the service's head.
    lag_blocks: std::sync::atomic::AtomicU64,
    /// When the replica last applied a new block.
    last_block_at: std::sync::Mutex<std::time::Instant>,
    /// Credentials requesters presented (decided again at every get).
    presentations: RwLock<Presentations>,
    /// Releases to be receipted on the ledger.
    receipts: std::sync::Mutex<Receipts>,
    /// Repair reads opened for repairers (`core::repair`).
    repair_reads: std::sync::Mutex<crate::core::repair::RepairReads>,
    /// Repairs done, to be reported on the ledger: (order, contract).
    repair_reports: std::sync::Mutex<Vec<(crate::core::submissions::Purpose, strand_contracts::Body)>>,
    /// Agreements, staging reservations and capacity, decided together
    /// (`core::keeper`). Read by the gate at every get: held for lookups
    /// and short updates only, never across I/O or heavy work.
    keeper: RwLock<Keeper>,
    /// Requests in flight per peer and kind (`core::limits`).
    in_flight: std::sync::Mutex<InFlight>,
    /// One connection to each staging owner's source, reused across its
    /// requests.
    staging_connections: std::sync::Mutex<std::collections::HashMap<staging::Key, iroh::endpoint::Connection>>,
    /// Memory for fragments being received (see `proposals::receive`).
    receive_budget: tokio::sync::Semaphore,
    /// Buffers of received fragments, back from the store for reuse.
    receive_buffers: std::sync::Arc<strand_net::recycle::Recycler>,
    records: Records,
    store: iroh_blobs::api::Store,
    /// Where `store` keeps its files.
    store_files: data::StoreFiles,
    /// Drops served fragments from the page cache.
    uncacher: data::Uncacher,
    endpoint: iroh::Endpoint,
    metrics: Metrics,
}

impl Node {
    fn ledger(&self) -> LedgerState {
        self.ledger.read().map(|state| state.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn core(&self) -> std::sync::RwLockReadGuard<'_, Keeper> {
        self.keeper.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn core_mut(&self) -> std::sync::RwLockWriteGuard<'_, Keeper> {
        self.keeper.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a request of `kind` from `peer` within the limits; the guard
    /// ends it when dropped. `None`: refuse it as busy.
    fn start(self: &Arc<Self>, kind: Kind, peer: AccountId) -> Option<InFlightGuard> {
        let (started, total) = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (in_flight.start(kind, peer), in_flight.total(kind))
        };
        self.metrics.requests_in_flight.with_label_values(&[kind.label()]).set(i64::from(total));
        if !started {
            self.metrics.requests_busy.with_label_values(&[kind.label()]).inc();
        }
        started.then(|| InFlightGuard { node: Arc::clone(self), kind, peer })
    }

    fn mark_block_applied(&self) {
        *self.last_block_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
    }

    /// How current the replica is, for the gate.
    fn freshness(&self) -> Freshness {
        let last = *self.last_block_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Freshness { lag_blocks: self.lag_blocks.load(std::sync::atomic::Ordering::Relaxed), silent_for: last.elapsed() }
    }

    fn staging_connections(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<staging::Key, iroh::endpoint::Connection>> {
        self.staging_connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refresh_staging_metrics(&self) {
        let reserved = self.core().staging.reserved_bytes();
        self.metrics.staging_reserved_bytes.set(i64::try_from(reserved).unwrap_or(i64::MAX));
        self.refresh_free_bytes();
    }

    fn refresh_free_bytes(&self) {
        let free = self.core().free_bytes();
        self.metrics.free_bytes.set(i64::try_from(free).unwrap_or(i64::MAX));
    }

    /// The metrics, with what is read at scrape time brought up to date:
    /// the replica's silence and the data directory's file system.
    fn scrape(&self, data_dir: &std::path::Path) -> String {
        self.metrics.ledger_silent_seconds.set(self.freshness().silent_for.as_secs_f64());
        match nix::sys::statvfs::statvfs(data_dir) {
            Ok(stat) => {
                let block = stat.fragment_size();
                let free = stat.blocks_available().saturating_mul(block);
                let size = stat.blocks().saturating_mul(block);
                self.metrics.disk_free_bytes.set(i64::try_from(free).unwrap_or(i64::MAX));
                self.metrics.disk_size_bytes.set(i64::try_from(size).unwrap_or(i64::MAX));
            }
            Err(error) => tracing::warn!(%error, "node.metrics cannot read the data directory's file system"),
        }
        self.metrics.render()
    }

    fn repair_reads(&self) -> std::sync::MutexGuard<'_, crate::core::repair::RepairReads> {
        self.repair_reads.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn repair_reports(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<(crate::core::submissions::Purpose, strand_contracts::Body)>> {
        self.repair_reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn receipts(&self) -> std::sync::MutexGuard<'_, Receipts> {
        self.receipts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn presentations(&self) -> std::sync::RwLockReadGuard<'_, Presentations> {
        self.presentations.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn presentations_mut(&self) -> std::sync::RwLockWriteGuard<'_, Presentations> {
        self.presentations.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refresh_storage_metrics(&self) {
        let core = self.core();
        self.metrics.fragments_stored.set(core.holdings.fragment_count() as i64);
        self.metrics.fragment_bytes_stored.set(i64::try_from(core.holdings.stored_bytes()).unwrap_or(i64::MAX));
        self.metrics.contracts_held.set(core.holdings.len() as i64);
        self.metrics.capacity_bytes.set(i64::try_from(core.capacity_bytes()).unwrap_or(i64::MAX));
        self.metrics.committed_bytes.set(i64::try_from(core.holdings.committed_bytes()).unwrap_or(i64::MAX));
        drop(core);
        self.refresh_free_bytes();
    }
}

/// A request in flight; ends it when dropped (whatever way its task ends).
pub(crate) struct InFlightGuard {
    node: Arc<Node>,
    kind: Kind,
    peer: AccountId,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let total = {
            let mut in_flight = self.node.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            in_flight.finish(self.kind, self.peer);
            in_flight.total(self.kind)
        };
        self.node.metrics.requests_in_flight.with_label_values(&[self.kind.label()]).set(i64::from(total));
    }
}

/// Runs the node until SIGTERM or Ctrl-C.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let identity = keyfile::load_or_create(&config.key_path(), &mut rand::rng())?;
    let account = AccountId::of(&identity.public_key());
    let capacity_bytes = config.capacity_bytes()?;
    let policy = config.acceptance;

    let (mut follower, mut client, genesis) = ledger::open(&config).await?;
    let metrics = Metrics::new();
    let records = Records::open(&config.data_dir.join("node.redb"))?;
    let holdings = Holdings::from_agreements(records.agreements()?);
    // Releases counted before a restart and not yet on the ledger.
    let mut pending_receipts = Receipts::default();
    for (epoch, batch) in records.pending_receipts()? {
        pending_receipts.restore(epoch, batch);
    }

    let (store, store_files) = data::open_store(&config.data_dir.join("blobs")).await?;
    let blobs_bind: SocketAddr =
        config.blobs_listen.parse().with_context(|| format!("blobs_listen '{}'", config.blobs_listen))?;
    let endpoint = strand_net::blobs::endpoint(*identity.secret_bytes(), blobs_bind).await?;

    let node = Arc::new(Node {
        chain: genesis.chain(),
        ledger: RwLock::new(follower.replica().state().clone()),
        lag_blocks: std::sync::atomic::AtomicU64::new(0),
        last_block_at: std::sync::Mutex::new(std::time::Instant::now()),
        presentations: RwLock::new(Presentations::default()),
        receipts: std::sync::Mutex::new(pending_receipts),
        repair_reads: std::sync::Mutex::new(Default::default()),
        repair_reports: std::sync::Mutex::new(Vec::new()),
        keeper: RwLock::new(Keeper::new(holdings, capacity_bytes, policy)),
        in_flight: std::sync::Mutex::new(InFlight::default()),
        staging_connections: std::sync::Mutex::new(std::collections::HashMap::new()),
        receive_budget: tokio::sync::Semaphore::new(proposals::RECEIVE_BUDGET_UNITS as usize),
        receive_buffers: strand_net::recycle::Recycler::new(proposals::RECEIVE_SPARE_BYTES),
        records,
        store: store.clone(),
        uncacher: data::Uncacher::start(store_files.clone()),
        store_files,
        endpoint: endpoint.clone(),
        metrics: metrics.clone(),
        identity,
        account,
    });
    node.refresh_storage_metrics();
    data::migrate_tags(&node).await?;
    proposals::forget_unfinished(&node).await;
    let router = data::serve(&node);

    let p2p_listen = config.p2p_listen.parse().with_context(|| format!("p2p_listen '{}'", config.p2p_listen))?;
    let (network, mut events, network_task) = p2p::start(P2pConfig {
        secret: *node.identity.secret_bytes(),
        listen: Some(p2p_listen),
        protocol: strand_wire::CONTRACT_PROTOCOL,
        message_bytes_max: strand_wire::MESSAGE_BYTES_MAX,
        request_timeout: PROPOSAL_TIMEOUT,
        busy_response: strand_wire::encode(&strand_wire::Response::Refused(strand_wire::Refusal::Busy(
            "the node's request queue is full".into(),
        ))),
    })
    .await?;
    let p2p_address = network.listen_address.clone().context("the libp2p listener has no address")?;

    let metrics_listener = tokio::net::TcpListener::bind(&config.metrics_listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {}", config.metrics_listen))?;
    let metrics_address = metrics_listener.local_addr()?;
    metrics
        .info
        .with_label_values(&[&hex::encode(account.0), &config.domain.organisation, env!("CARGO_PKG_VERSION")])
        .set(1);
    tokio::spawn(strand_ledger_service::metrics::serve(metrics_listener, {
        let (node, data_dir) = (Arc::clone(&node), config.data_dir.clone());
        move || node.scrape(&data_dir)
    }));

    let iroh_address = endpoint.bound_sockets().first().copied().context("the iroh endpoint has no socket")?;
    let endpoints = vec![format!("libp2p:{p2p_address}"), format!("iroh:{iroh_address}")];
    ledger::register(&node, &mut follower, &mut client, &config, endpoints).await?;
    tracing::info!(account = %node.account, libp2p = %p2p_address, iroh = %iroh_address, "node.ready");
    // One line on stdout that scripts and tests wait for.
    println!(
        "strand-node ready account {} libp2p {p2p_address} iroh {iroh_address} metrics http://{metrics_address}/metrics",
        node.account
    );

    let (stop, stopped) = watch::channel(false);
    let (gossip, gossiped) = ledger::gossip_queue();
    let following = ledger::Following { follower, client, address: config.ledger.clone(), gossiped };
    let follow = tokio::spawn(ledger::follow(Arc::clone(&node), following, network.clone(), stopped.clone()));
    let prover = tokio::spawn(proofs::run(Arc::clone(&node), config.ledger.clone(), stopped.clone()));
    let repairer = tokio::spawn(repair::run(Arc::clone(&node), network.clone(), stopped));
    let staging_sweeper = tokio::spawn(proposals::sweep_staging(Arc::clone(&node)));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            event = events.recv() => match event {
                Some(P2pEvent::Request { peer, request, channel }) => {
                    let (node, network) = (Arc::clone(&node), network.clone());
                    // Bounded per peer and node-wide before any work.
                    let guard = strand_net::p2p::account_of(&peer)
                        .map(AccountId)
                        .and_then(|account| node.start(Kind::Request, account));
                    match guard {
                        Some(guard) => {
                            tokio::spawn(async move {
                                let response = proposals::handle(&node, peer, &request.bytes).await;
                                network.respond(channel, strand_wire::encode(&response)).await;
                                // Its place and its share of the inbound budget.
                                drop((guard, request));
                            });
                        }
                        None => {
                            let busy = strand_wire::Response::Refused(strand_wire::Refusal::Busy(
                                "too many requests in flight from this peer or on this node".into(),
                            ));
                            network.respond(channel, strand_wire::encode(&busy)).await;
                        }
                    }
                }
                Some(P2pEvent::Block(bytes)) => {
                    let _ = gossip.try_send(bytes);
                }
                Some(P2pEvent::Peers(count)) => node.metrics.peers_connected.set(count as i64),
                None => break,
            },
        }
    }
    tracing::info!("node stopping");
    let _ = stop.send(true);
    let _ = follow.await;
    // The prover's only state worth keeping is the pending receipts: stop
    // it where it is and save them.
    prover.abort();
    repairer.abort();
    staging_sweeper.abort();
    let _ = proofs::save_receipts(&node, Vec::new()).await;
    network_task.abort();
    let _ = router.shutdown().await;
    // Commits the store's pending metadata: nothing acknowledged is lost.
    store.shutdown().await.context("closing the fragment store")?;
    Ok(())
}

/// Where the node's ledger replica lives.
pub(crate) fn ledger_path(config: &NodeConfig) -> std::path::PathBuf {
    config.data_dir.join("ledger.redb")
}

/// Opens the ledger replica for `genesis` at the node's path.
pub(crate) fn open_replica(
    config: &NodeConfig,
    genesis: &strand_contracts::Genesis,
) -> anyhow::Result<(LedgerStore, strand_contracts::Replica)> {
    LedgerStore::open(&ledger_path(config), genesis).context("cannot open the node's ledger replica")
}
