//! A validator process: one organisation's member of the consortium.
//!
//! It keeps the finalised ledger in the same redb store as the sequencer
//! (so it serves the same ledger protocol to nodes and clients), admits
//! submissions to a durable mempool in batches (one commit per batch,
//! before any acknowledgement), gossips them to the other validators so any
//! leader can include them, and runs the engine ([`crate::engine`]) over
//! authenticated p2p connections to the addresses in the signed genesis.
//!
//! The process runs inside commonware's tokio runtime (it cannot be nested
//! in another): the ledger server and its tasks are ordinary tokio tasks on
//! that runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use commonware_codec::DecodeExt as _;
use commonware_cryptography::ed25519;
use commonware_p2p::AddressableTrackedPeers;
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _, Receiver as _, Recipients, Sender as _};
use commonware_runtime::{Quota, Spawner as _, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZU32, NZUsize, TryCollect as _};
use std::num::NonZeroUsize;
use strand_contracts::block::{Genesis, SignedGenesis};
use strand_contracts::mempool::{Mempool, MempoolLimits};
use strand_contracts::transaction::transaction_hash;
use strand_contracts::{AccountId, Block, Digest, LedgerState, Receipt};
use strand_core::Identity;
use strand_ledger_service::metrics::{LedgerMetrics, Observer};
use strand_ledger_service::ordering::{OrderingHandle, SUBMISSIONS_QUEUED_MAX, Submission};
use strand_ledger_service::protocol::Status;
use strand_ledger_service::store::LedgerStore;
use tokio::sync::{mpsc, watch};

use crate::app::{App, BlockLimits, Ledger};
use crate::block::Candidate;
use crate::engine::{self, Channels, EngineConfig, Timeouts};

/// Where, in its data directory, a validator finds beacon shares of keys
/// changes of validators bring (read at start, and again when a new key
/// takes effect).
pub const BEACON_SHARES_DIRECTORY: &str = "beacon-shares";

/// The channel transactions are gossiped on (after the engine's).
pub const TRANSACTIONS_CHANNEL: u64 = 5;
/// Largest p2p message: a whole block and its framing.
pub const MESSAGE_BYTES_MAX: u32 = (strand_contracts::encoding::BLOCK_BYTES_MAX + (64 << 10)) as u32;
/// Messages a peer may send at once on a channel (then 10,000 a second).
const PEER_MESSAGES_BURST: u32 = 256;
/// Most admitted batches waiting to be gossiped.
const GOSSIP_BATCHES_QUEUED_MAX: usize = 64;

/// How to run a validator.
pub struct ValidatorOptions {
    /// Its data directory: `ledger.redb` and the engine's journals.
    pub data_dir: PathBuf,
    /// The signed genesis.
    pub genesis: SignedGenesis,
    /// Its key: one of the genesis validators, or of a validator that
    /// joins by governance (it follows the chain until its epoch).
    pub identity: Identity,
    /// Its shares of beacon keys ([`crate::beacon`]): of the genesis's (a
    /// genesis validator must hold it) and of keys changes of validators
    /// bring.
    pub beacon_shares: Vec<commonware_cryptography::bls12381::primitives::group::Share>,
    /// Where to listen for the other validators [default: its genesis
    /// entry; required when it is not in the genesis].
    pub p2p_listen: Option<String>,
    /// Where to serve the ledger protocol [default: its genesis entry;
    /// required when it is not in the genesis].
    pub ledger_listen: Option<String>,
    /// Where to serve Prometheus metrics.
    pub metrics_listen: String,
    /// View timing.
    pub timeouts: Timeouts,
    /// Proposal size.
    pub limits: BlockLimits,
}

/// The engine key of a Strand identity (the same ed25519 key).
pub fn engine_key(identity: &Identity) -> anyhow::Result<ed25519::PrivateKey> {
    let secret = identity.secret_bytes();
    ed25519::PrivateKey::decode(bytes::Bytes::copy_from_slice(&secret[..]))
        .map_err(|error| anyhow::anyhow!("not an ed25519 key: {error}"))
}

/// Runs a validator until SIGINT or SIGTERM. Builds commonware's tokio
/// runtime: call it from `main`, outside any other runtime.
pub fn run_blocking(options: ValidatorOptions, worker_threads: usize) -> anyhow::Result<()> {
    options.genesis.verify().context("the genesis file is not a consortium genesis every validator signed")?;
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create {}", options.data_dir.display()))?;
    let runner = commonware_runtime::tokio::Runner::new(
        commonware_runtime::tokio::Config::new()
            .with_storage_directory(options.data_dir.join("engine"))
            .with_worker_threads(worker_threads.max(2))
            .with_catch_panics(false),
    );
    commonware_runtime::Runner::start(runner, |context| run(context, options))
}

/// Status of the finalised ledger.
fn status_of(state: &LedgerState, head: Digest, mempool: usize) -> Status {
    Status { chain: state.params.chain, height: state.height, head, epoch: state.epoch(), mempool: mempool as u32 }
}

/// Where finalised blocks go in a validator process.
struct StoreLedger {
    store: Arc<LedgerStore>,
    status: watch::Sender<Status>,
    mempool: Arc<Mutex<Mempool>>,
    metrics: LedgerMetrics,
    observer: Observer,
}

impl Ledger for StoreLedger {
    fn commit(&mut self, block: &Block, receipts: &[Receipt], state: &LedgerState) -> Result<(), String> {
        tokio::task::block_in_place(|| self.store.commit_block(block, receipts, state))
            .map_err(|error| error.to_string())?;
        self.metrics.block(&mut self.observer, block, receipts, state);
        let waiting = self.mempool.lock().map_or(0, |mempool| mempool.len());
        let _ = self.status.send(status_of(state, block.header.hash(), waiting));
        Ok(())
    }

    fn dropped(&mut self, stale: &[Digest]) {
        let reasons: Vec<(Digest, String)> =
            stale.iter().map(|hash| (*hash, "its nonce was used by another transaction".to_string())).collect();
        if let Err(error) = tokio::task::block_in_place(|| self.store.drop_from_mempool(&reasons)) {
            tracing::error!(%error, "validator.mempool could not record dropped transactions");
        }
        if let Ok(mempool) = self.mempool.lock() {
            self.metrics.mempool(&mempool);
        }
    }
}

/// Admits transactions (from clients, or gossiped by peers) against the
/// finalised state and makes them durable with one commit per batch.
fn admit(
    store: &LedgerStore,
    app: &App,
    mempool: &Mutex<Mempool>,
    transactions: Vec<Vec<u8>>,
    metrics: &LedgerMetrics,
) -> Vec<Result<Digest, String>> {
    let finalised = app.finalised();
    let mut admitted = Vec::new();
    let mut answers = Vec::new();
    {
        let mut mempool = mempool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for bytes in transactions {
            match mempool.admit(finalised.state(), bytes.clone()) {
                Ok(hash) => {
                    // Its signature checked out: executing a block with it
                    // need not check it again.
                    app.verified_signatures().insert(hash);
                    admitted.push((hash, bytes));
                    answers.push(Ok(hash));
                }
                Err(error) => {
                    metrics.refused(error.label());
                    answers.push(Err(error.to_string()));
                }
            }
        }
    }
    if let Err(error) = tokio::task::block_in_place(|| store.persist_mempool(&admitted)) {
        // Not durable, so not acknowledged: take them back out.
        tracing::error!(%error, "validator.admit could not persist the mempool");
        let stale: Vec<Digest> = admitted.iter().map(|(hash, _)| *hash).collect();
        mempool.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&stale);
        return answers
            .into_iter()
            .map(|answer| answer.and(Err(format!("the validator cannot store transactions: {error}"))))
            .collect();
    }
    if let Ok(mempool) = mempool.lock() {
        metrics.mempool(&mempool);
    }
    answers
}

fn socket(address: &str) -> anyhow::Result<SocketAddr> {
    address.parse().with_context(|| format!("'{address}' is not an IP address and port"))
}

async fn run(context: commonware_runtime::tokio::Context, options: ValidatorOptions) -> anyhow::Result<()> {
    let ValidatorOptions {
        data_dir,
        genesis,
        identity,
        beacon_shares,
        p2p_listen,
        ledger_listen,
        metrics_listen,
        timeouts,
        limits,
    } = options;
    let SignedGenesis { genesis, .. } = genesis;
    let account = AccountId::of(&identity.public_key());
    let me = match genesis.validators.validators.iter().find(|validator| validator.account == account) {
        Some(me) => me.clone(),
        // A validator that joins by governance: it follows the chain until
        // the epoch a change of validators names it for.
        None => strand_contracts::block::Validator {
            account,
            organisation: "(joining)".into(),
            p2p: p2p_listen.clone().with_context(|| {
                format!("key {account} is not one of this genesis's validators: to join later, give --p2p-listen")
            })?,
            ledger: ledger_listen.clone().with_context(|| {
                format!("key {account} is not one of this genesis's validators: to join later, give --ledger-listen")
            })?,
        },
    };
    let key = engine_key(&identity)?;

    // The finalised ledger and the durable mempool.
    let database = data_dir.join("ledger.redb");
    let (store, replica) = LedgerStore::open(&database, &genesis)
        .with_context(|| format!("cannot open the ledger in {}", database.display()))?;
    let store = Arc::new(store);
    let mut mempool = Mempool::new(MempoolLimits::default());
    for bytes in store.mempool()? {
        let hash = transaction_hash(&bytes);
        if let Err(error) = mempool.admit(replica.state(), bytes) {
            store.drop_from_mempool(&[(hash, error.to_string())])?;
        }
    }
    let resubmit: Vec<Vec<u8>> = mempool.transactions().map(<[u8]>::to_vec).collect();
    let mempool = Arc::new(Mutex::new(mempool));
    let metrics = LedgerMetrics::new();
    let mut observer = Observer::after(replica.head().timestamp_ms);
    metrics.state(&mut observer, replica.state());
    let (status_sender, status) = watch::channel(status_of(replica.state(), replica.head().hash(), resubmit.len()));
    let height = replica.height();
    let ledger = StoreLedger {
        store: Arc::clone(&store),
        status: status_sender,
        mempool: Arc::clone(&mempool),
        metrics: metrics.clone(),
        observer,
    };
    let beacons = if genesis.validators.contains(&account) {
        // A genesis validator must hold its share of the genesis's key.
        let beacon_key = genesis.validators.beacon_key()?.context("the genesis has no beacon key")?;
        let mut shares = beacon_shares;
        anyhow::ensure!(!shares.is_empty(), "no beacon share given (the genesis's, from `genesis new --shares-dir`)");
        let fits = shares.iter().position(|share| {
            crate::beacon::Beacons::new(
                genesis.chain(),
                beacon_key.clone(),
                share.clone(),
                genesis.validators.sorted(),
                &account,
            )
            .is_ok()
        });
        let share = shares.remove(fits.unwrap_or(0));
        crate::beacon::Beacons::new(genesis.chain(), beacon_key, share, genesis.validators.sorted(), &account)?
            .with_spare_shares(shares)
    } else {
        crate::beacon::Beacons::following(genesis.chain(), &genesis.validators, account, beacon_shares)?
    };
    let beacons = beacons.with_share_directory(data_dir.join(BEACON_SHARES_DIRECTORY));
    let (app, finalised) = App::new(replica, Box::new(ledger), Arc::clone(&mempool), account, limits, beacons);

    // Authenticated p2p to every validator's address, per epoch (the engine
    // tells the set of each epoch it enters).
    addressed(&genesis.validators)?;
    let listen = socket(p2p_listen.as_deref().unwrap_or(&me.p2p))?;
    let handshake = Cups::<_, commonware_cryptography::ChaCha20Poly1305>::new(
        Sake {
            signer: key.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let namespace = strand_contracts::block::consensus_namespace(&genesis.chain());
    let p2p_namespace = [namespace.as_slice(), b"_P2P"].concat();
    let mut config = lookup::Config::local(
        handshake,
        &p2p_namespace,
        listen,
        // An epoch's validators and those of a scheduled change.
        NonZeroUsize::new(2 * strand_contracts::block::VALIDATORS_MAX).expect("not zero"),
        MESSAGE_BYTES_MAX,
        NZUsize!(1024),
    );
    // The current epoch's peer set and the one before (for validators still
    // finishing it). Each channel's inbound queue is preallocated for
    // (peers per set × sets × burst) messages: these bound it (about 4 MB
    // a channel).
    config.tracked_peer_sets = NZUsize!(2);
    // Public addresses in the genesis: refuse private ones as a public
    // deployment should; loopback devnets keep them.
    config.allow_private_ips = genesis.validators.validators.iter().all(|validator| {
        socket(&validator.p2p).is_ok_and(|address| {
            address.ip().is_loopback()
                || match address.ip() {
                    std::net::IpAddr::V4(ip) => ip.is_private(),
                    std::net::IpAddr::V6(_) => false,
                }
        })
    });
    let (mut network, oracle) = lookup::Network::new(context.child("network"), config);
    let quota = Quota::per_second(NZU32!(10_000)).allow_burst(NZU32!(PEER_MESSAGES_BURST));
    let votes = network.register(engine::CHANNELS[0], quota);
    let certificates = network.register(engine::CHANNELS[1], quota);
    let resolver = network.register(engine::CHANNELS[2], quota);
    let backfill = network.register(engine::CHANNELS[3], quota);
    let blocks = network.register(engine::CHANNELS[4], quota);
    let beacon = network.register(engine::CHANNELS[5], quota);
    let (mut gossip_out, mut gossip_in) = network.register(TRANSACTIONS_CHANNEL, quota);
    network.start();

    // Submissions: admitted in batches, durable before acknowledged, then
    // gossiped to every validator so any leader can include them.
    let (submissions, mut incoming) = mpsc::channel::<Submission>(SUBMISSIONS_QUEUED_MAX);
    // Bounded: a full queue holds the admission task (and so, through its
    // own bounded queue, the clients) until the p2p sender catches up.
    let (gossip, mut to_gossip) = mpsc::channel::<Vec<Vec<u8>>>(GOSSIP_BATCHES_QUEUED_MAX);
    let _ = gossip.send(resubmit).await;
    {
        let (store, app, mempool, metrics) = (Arc::clone(&store), app.clone(), Arc::clone(&mempool), metrics.clone());
        let gossip = gossip.clone();
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while let Ok(next) = incoming.try_recv() {
                    batch.push(next);
                }
                let (transactions, replies): (Vec<Vec<u8>>, Vec<_>) = batch.into_iter().unzip();
                let answers = admit(&store, &app, &mempool, transactions.clone(), &metrics);
                let accepted: Vec<Vec<u8>> = transactions
                    .into_iter()
                    .zip(&answers)
                    .filter(|(_, answer)| answer.is_ok())
                    .map(|(bytes, _)| bytes)
                    .collect();
                let _ = gossip.send(accepted).await;
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
        });
    }
    tokio::spawn(async move {
        while let Some(transactions) = to_gossip.recv().await {
            if transactions.is_empty() {
                continue;
            }
            let message = strand_contracts::encoding::encode(&transactions);
            if message.len() <= MESSAGE_BYTES_MAX as usize {
                gossip_out.send(Recipients::All, message, false);
            }
        }
    });
    {
        let (store, app, mempool, metrics) = (Arc::clone(&store), app.clone(), Arc::clone(&mempool), metrics.clone());
        tokio::spawn(async move {
            while let Ok((peer, message)) = gossip_in.recv().await {
                // A peer's bytes: bounded and decoded without trust; each
                // transaction is checked as a client's would be.
                match strand_contracts::encoding::decode::<Vec<Vec<u8>>>(message.as_ref(), MESSAGE_BYTES_MAX as usize) {
                    Ok(transactions) if transactions.len() <= SUBMISSIONS_QUEUED_MAX => {
                        admit(&store, &app, &mempool, transactions, &metrics);
                    }
                    _ => tracing::debug!(%peer, "validator.gossip undecodable transactions"),
                }
            }
        });
    }

    let handle = OrderingHandle::new("validator", submissions, status, Arc::clone(&store), metrics.clone());
    let metrics_listener = tokio::net::TcpListener::bind(&metrics_listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {metrics_listen}"))?;
    let metrics_address = metrics_listener.local_addr()?;
    let rendered = metrics.clone();
    tokio::spawn(strand_ledger_service::metrics::serve(metrics_listener, move || rendered.render()));
    let ledger_listen = ledger_listen.unwrap_or_else(|| me.ledger.clone());
    let listener = tokio::net::TcpListener::bind(&ledger_listen)
        .await
        .with_context(|| format!("cannot listen on {ledger_listen}"))?;
    let address = listener.local_addr()?;
    let (shutdown_sender, shutdown) = watch::channel(false);
    let server = tokio::spawn(strand_ledger_service::server::serve(listener, handle, genesis.clone(), shutdown));

    let (genesis_block, _) = genesis.block();
    let engine_config = EngineConfig {
        namespace,
        key,
        genesis: Candidate::new(genesis_block.header, Vec::new()),
        partition: "strand".into(),
        timeouts,
    };
    let channels = Channels { votes, certificates, resolver, backfill, blocks, beacon };
    let engine = context.child("engine").spawn(move |context| {
        let application = app.clone();
        let mut tracker = oracle.clone();
        // The epoch's validators, and those of a change already scheduled
        // (secondary: connected before they take over).
        let track = move |epoch: u64,
                          set: &strand_contracts::ValidatorSet,
                          next: Option<&strand_contracts::ValidatorSet>| {
            let primary = match addressed(set) {
                Ok(peers) => peers,
                Err(error) => {
                    tracing::error!(epoch, %error, "validator.p2p the epoch's validators have unusable addresses");
                    return;
                }
            };
            let secondary = next.and_then(|next| addressed(next).ok()).map_or_else(Vec::new, |next| {
                next.into_iter().filter(|(key, _)| primary.get_value(key).is_none()).collect()
            });
            let secondary: Map<ed25519::PublicKey, Address> = secondary.into_iter().try_collect().unwrap_or_default();
            tracker.track(epoch, AddressableTrackedPeers { primary, secondary });
        };
        engine::run(context, engine_config, app, application, finalised, oracle.clone(), oracle, channels, track)
    });
    // One line on stdout that scripts and tests wait for.
    println!(
        "strand-validator {} ({}) listening on {address} p2p {listen} chain {} height {height} metrics http://{metrics_address}/metrics",
        account,
        me.organisation,
        genesis.chain()
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = engine => anyhow::bail!("the consensus engine stopped"),
    }
    tracing::info!("validator stopping");
    let _ = shutdown_sender.send(true);
    let _ = server.await;
    Ok(())
}

/// The validators' engine keys with their p2p addresses.
fn addressed(set: &strand_contracts::ValidatorSet) -> anyhow::Result<Map<ed25519::PublicKey, Address>> {
    let mut peers = Vec::new();
    for validator in &set.validators {
        let key = ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&validator.account.0))
            .map_err(|error| anyhow::anyhow!("a validator's key is not an ed25519 key: {error}"))?;
        peers.push((key, Address::Symmetric(socket(&validator.p2p)?)));
    }
    peers.into_iter().try_collect().map_err(|_| anyhow::anyhow!("a validator is listed twice"))
}

/// A genesis for a consortium: the validators with their organisation and
/// addresses, in the order given.
pub fn consortium_genesis(
    name: &str,
    validators: Vec<strand_contracts::block::Validator>,
    epoch_blocks: u64,
    timestamp_ms: u64,
    beacon_key: Vec<u8>,
) -> SignedGenesis {
    SignedGenesis {
        genesis: Genesis {
            name: name.to_string(),
            validators: strand_contracts::ValidatorSet::consortium(validators, beacon_key),
            epoch_blocks,
            timestamp_ms,
        },
        signatures: Vec::new(),
    }
}
