//! One validator's engine: simplex (ed25519 votes, round-robin leaders),
//! marshal (finalised blocks in order, archived, backfilled from peers)
//! with the `Inline` wrapper (verify before voting), buffered broadcast of
//! whole blocks, and the Strand [`App`]. Generic over the runtime
//! (commonware's deterministic simulator in tests, tokio in the validator
//! process) and the p2p network (simulated, or authenticated `lookup` on
//! the genesis addresses).

use std::collections::BTreeMap;
use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commonware_broadcast::buffered;
use commonware_consensus::marshal::core::Actor as MarshalActor;
use commonware_consensus::marshal::resolver::p2p as marshal_resolver;
use commonware_consensus::marshal::standard::{Inline, Standard};
use commonware_consensus::marshal::{self};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::{self, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::types::{Epoch, FixedEpocher, Height, ViewDelta};
use commonware_cryptography::certificate::{self, Scoped, Verifier as _};
use commonware_cryptography::{Digested, Digestible as _, Sha256, Signer as _, ed25519};
use commonware_p2p::utils::mux::{Builder as _, Muxer};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use commonware_storage::archive::prunable;
use commonware_storage::translator::TwoCap;
use commonware_utils::ordered::Set;
use commonware_utils::vec::NonEmptyVec;
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize};
use futures::FutureExt as _;
use rand_core::CryptoRng;
use strand_contracts::ValidatorSet;

use crate::app::{App, Finalised};
use crate::block::Candidate;

/// How often the engine looks whether the finalised replica has reached
/// the end of the epoch (then the next epoch's instance starts).
pub const EPOCH_POLL: Duration = Duration::from_millis(20);

/// Least time between two requests to marshal for the boundary block's
/// certificate when peers show a later epoch (this validator is behind).
pub const CATCH_UP_HINT_INTERVAL: Duration = Duration::from_millis(200);

/// The simplex schemes of the epochs this validator knows, for marshal to
/// verify each epoch's certificates with that epoch's validators.
#[derive(Clone, Default)]
pub struct EpochSchemes(Arc<Mutex<BTreeMap<Epoch, Arc<Scheme>>>>);

impl EpochSchemes {
    fn insert(&self, epoch: u64, scheme: Scheme) {
        let mut schemes = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        schemes.insert(Epoch::new(epoch), Arc::new(scheme));
        // Marshal needs the current epoch's and, for blocks finalised at
        // the boundary, the previous one's.
        let keep = Epoch::new(epoch.saturating_sub(2));
        *schemes = schemes.split_off(&keep);
    }
}

impl certificate::Provider for EpochSchemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, epoch: Epoch) -> Option<Scoped<Scheme>> {
        self.scheme(epoch).map(Scoped::scheme)
    }

    fn scheme(&self, epoch: Epoch) -> Option<Arc<Scheme>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&epoch).cloned()
    }
}

/// The engine keys of a validator set (sorted, as simplex orders them).
pub fn participants(set: &ValidatorSet) -> Option<Set<ed25519::PublicKey>> {
    use commonware_codec::DecodeExt as _;
    let keys: Vec<ed25519::PublicKey> = set
        .accounts()
        .map(|account| ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&account.0)).ok())
        .collect::<Option<_>>()?;
    Set::try_from(keys).ok()
}

/// The engine's p2p channels, one pair each.
pub struct Channels<S, R> {
    /// Votes.
    pub votes: (S, R),
    /// Certificates.
    pub certificates: (S, R),
    /// Simplex's own fetches of missing certificates.
    pub resolver: (S, R),
    /// Marshal's backfill of finalised blocks.
    pub backfill: (S, R),
    /// Whole blocks, broadcast by their proposer.
    pub blocks: (S, R),
    /// Beacon shares ([`crate::beacon`]).
    pub beacon: (S, R),
}

/// Channel numbers, the same in every process (5 is the validator's
/// transaction gossip).
pub const CHANNELS: [u64; 6] = [0, 1, 2, 3, 4, 6];

/// Timing of views.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// How long a validator waits for the leader's proposal.
    pub leader: Duration,
    /// How long it waits for a notarized proposal to be certified.
    pub certification: Duration,
    /// Between retries of a timed-out view's votes.
    pub retry: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            leader: Duration::from_secs(1),
            certification: Duration::from_secs(2),
            retry: Duration::from_millis(500),
        }
    }
}

/// What a validator's engine needs.
pub struct EngineConfig {
    /// The chain's consensus namespace (`strand_contracts::block::consensus_namespace`).
    pub namespace: Vec<u8>,
    /// This validator's key.
    pub key: ed25519::PrivateKey,
    /// Block 0 (the genesis block's header, no transactions).
    pub genesis: Candidate,
    /// Prefix of the engine's storage partitions.
    pub partition: String,
    /// View timing.
    pub timeouts: Timeouts,
}

fn archive<C>(prefix: &str, name: &str, page_cache: &CacheRef, codec_config: C) -> prunable::Config<TwoCap, C> {
    prunable::Config {
        translator: TwoCap,
        metadata_partition: format!("{prefix}-{name}-metadata"),
        key_partition: format!("{prefix}-{name}-key"),
        key_page_cache: page_cache.clone(),
        value_partition: format!("{prefix}-{name}-value"),
        compression: None,
        codec_config,
        items_per_section: NZU64!(1024),
        key_write_buffer: NZUsize!(1 << 16),
        value_write_buffer: NZUsize!(1 << 16),
        replay_buffer: NZUsize!(1 << 16),
    }
}

const MAILBOX: NonZeroUsize = NZUsize!(1024);

/// Starts one validator's engine and the task that applies finalised
/// blocks; runs until the context's task is aborted, or returns when a
/// finalised block cannot be applied or committed, or when this validator
/// is not one of the next epoch's validators. `application` proposes and
/// verifies for the engine: the validator's [`App`] itself (a clone), or,
/// in tests, a hostile validator wrapping it. `track` is told each epoch's
/// validators as the engine enters it, with those of a change already
/// scheduled (the p2p peer set; the epoch is the peer set's id).
///
/// One simplex instance runs per ledger epoch (the engine's epoch is the
/// ledger's), with the validators the finalised state names for it
/// ([`strand_contracts::LedgerState::validators_at`]): marshal's epocher
/// maps heights to epochs as the ledger does, so the last block of an epoch
/// is finalised in that epoch (its leaders re-propose it until then), and
/// once this validator has applied it the next epoch's instance starts on
/// it, over the same p2p channels split by epoch. A validator that is
/// behind (peers' messages come from a later epoch) asks marshal for the
/// certificate of its epoch's last block from them, and backfills up to it.
#[allow(clippy::too_many_arguments)]
pub async fn run<E, A, P, B, S, R, T>(
    context: E,
    config: EngineConfig,
    app: App,
    application: A,
    finalised: Finalised,
    provider: P,
    blocker: B,
    channels: Channels<S, R>,
    mut track: T,
) where
    E: CryptoRng + Spawner + Metrics + Clock + Storage + commonware_runtime::Supervisor,
    A: commonware_consensus::Application<
            E,
            SigningScheme = Scheme,
            Context = crate::app::Ctx,
            Block = Candidate,
            Input = (),
        >,
    P: Provider<PublicKey = ed25519::PublicKey> + Clone,
    B: Blocker<PublicKey = ed25519::PublicKey> + Clone,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    T: FnMut(u64, &ValidatorSet, Option<&ValidatorSet>) + Send,
{
    let EngineConfig { namespace, key, genesis, partition, timeouts } = config;
    let public_key = key.public_key();
    let Some(epoch_blocks) =
        NonZeroU64::new(app.finalised().state().params.epoch_blocks).filter(|blocks| blocks.get() > 1)
    else {
        tracing::error!("consortium.engine a consortium's epochs must be at least 2 blocks long");
        return;
    };
    let epocher = FixedEpocher::new(epoch_blocks);
    let schemes = EpochSchemes::default();
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(1024));
    let resolver = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: public_key.clone(),
            peer_provider: provider.clone(),
            blocker: blocker.clone(),
            mailbox_size: MAILBOX,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );
    let (broadcast, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: public_key.clone(),
            mailbox_size: MAILBOX,
            deque_size: 10,
            priority: false,
            codec_config: (),
            peer_provider: provider.clone(),
            strategy: Sequential,
        },
    );
    broadcast.start(channels.blocks);
    let finalizations = match prunable::Archive::init(
        context.child("finalizations"),
        archive(&partition, "finalizations", &page_cache, Scheme::certificate_codec_config_unbounded()),
    )
    .await
    {
        Ok(archive) => archive,
        Err(error) => {
            tracing::error!(%error, "consortium.engine cannot open the finalizations archive");
            return;
        }
    };
    let blocks =
        match prunable::Archive::init(context.child("blocks"), archive(&partition, "blocks", &page_cache, ())).await {
            Ok(archive) => archive,
            Err(error) => {
                tracing::error!(%error, "consortium.engine cannot open the blocks archive");
                return;
            }
        };
    let genesis_digest = genesis.digest();
    let (marshal_actor, marshal_mailbox, _floor) = MarshalActor::<_, Standard<Candidate>, _, _, _, _, _>::init(
        context.child("marshal"),
        finalizations,
        blocks,
        marshal::Config {
            provider: schemes.clone(),
            epocher: epocher.clone(),
            start: marshal::Start::Genesis(Digested::precomputed(genesis, genesis_digest)),
            partition_prefix: partition.clone(),
            mailbox_size: MAILBOX,
            view_retention: ViewDelta::new(10),
            prunable_items_per_section: NZU64!(1024),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(1 << 16),
            key_write_buffer: NZUsize!(1 << 16),
            value_write_buffer: NZUsize!(1 << 16),
            block_codec_config: (),
            max_repair: NZUsize!(10),
            max_pending_acks: NZUsize!(1),
            strategy: Sequential,
        },
    )
    .await;
    marshal_actor.start(app.clone(), buffer, resolver);
    let exchange = app.clone();
    let beacon_channel = channels.beacon;
    context
        .child("beacon")
        .spawn(move |context| async move { exchange.exchange_beacon(context, beacon_channel).await });
    let applier = app.clone();
    let mailbox = marshal_mailbox.clone();
    let applying = context.child("apply").spawn(move |_| async move {
        applier
            .apply_finalised(finalised, |height| {
                let mailbox = mailbox.clone();
                async move { mailbox.get_finalization(Height::new(height)).await }
            })
            .await;
    });
    // Applying finalised blocks stops only when one cannot be applied or
    // committed (a bug, a full disk): the validator then stops too, so its
    // operator (or the devnet) sees it, instead of serving a stalled ledger.
    let mut applying = applying.fuse();
    let inline = Inline::new(context.child("inline"), application, marshal_mailbox.clone(), epocher.clone());

    // The engine's three channels, split by epoch; messages of an epoch
    // with no instance here come out of the backups (a later epoch: this
    // validator is behind).
    let (votes_mux, mut votes, mut votes_backup) =
        Muxer::builder(context.child("votes_mux"), channels.votes.0, channels.votes.1).with_backup().build();
    votes_mux.start();
    let (certificates_mux, mut certificates, mut certificates_backup) =
        Muxer::builder(context.child("certificates_mux"), channels.certificates.0, channels.certificates.1)
            .with_backup()
            .build();
    certificates_mux.start();
    let (resolver_mux, mut resolvers) =
        Muxer::new(context.child("resolver_mux"), channels.resolver.0, channels.resolver.1);
    resolver_mux.start();
    let mut last_hint: Option<std::time::SystemTime> = None;
    // Whether this validator ran an instance (a later epoch without it
    // means governance removed it).
    let mut member = false;
    // An epoch starts on the block that closed the one before (the genesis
    // block for epoch 0).
    let floor = async |epoch: u64, replica: &strand_contracts::Replica| {
        if epoch == 0 {
            return Some(genesis_digest);
        }
        let last = epoch * epoch_blocks.get() - 1;
        if replica.height() == last {
            return Some(crate::block::digest(&replica.head().hash()));
        }
        marshal_mailbox.get_block(Height::new(last)).await.map(|block| block.digest())
    };
    let simplex_config = |scheme: Scheme, epoch: u64, floor| simplex::Config {
        scheme,
        elector: RoundRobin::<Sha256>::default(),
        blocker: blocker.clone(),
        automaton: inline.clone(),
        relay: inline.clone(),
        reporter: inline.clone(),
        strategy: Sequential,
        partition: format!("{partition}-simplex-{epoch}"),
        mailbox_size: MAILBOX,
        epoch: Epoch::new(epoch),
        floor: simplex::Floor::Genesis(floor),
        replay_buffer: NZUsize!(1 << 16),
        write_buffer: NZUsize!(1 << 16),
        page_cache: page_cache.clone(),
        leader_timeout: timeouts.leader,
        certification_timeout: timeouts.certification,
        timeout_retry: timeouts.retry,
        view_retention: ViewDelta::new(10),
        skip: SkipPolicy::Enabled {
            timeout: timeouts.certification * 2 + timeouts.retry,
            budget: SkipBudget::Participants,
        },
        fetch_timeout: NZDuration!(Duration::from_secs(1)),
        fetch_retry_delay: Duration::from_millis(100),
        forward: ForwardPolicy::Disabled,
        track_historical_votes: false,
    };

    loop {
        let replica = app.finalised();
        let height = replica.height();
        let epoch = replica.state().params.epoch_of(height + 1);
        let set = replica.validators_next().clone();
        let Some(participants) = participants(&set) else {
            tracing::error!(epoch, "consortium.engine a validator's key is not an ed25519 key");
            return;
        };
        let upcoming = replica.state().validator_change.as_ref().map(|change| change.set.clone());
        track(epoch, &set, upcoming.as_ref());
        let last = (epoch + 1) * epoch_blocks.get() - 1;
        let signer = Scheme::signer(&namespace, participants.clone(), key.clone());
        let mut engine = match signer {
            Some(scheme) => {
                member = true;
                schemes.insert(epoch, scheme.clone());
                let floor = match floor(epoch, &replica).await {
                    Some(floor) => floor,
                    None => {
                        tracing::error!(epoch, "consortium.engine the block that closed the last epoch is missing");
                        return;
                    }
                };
                tracing::info!(
                    epoch,
                    first = height + 1,
                    last,
                    validators = set.validators.len(),
                    "consortium.engine entering epoch"
                );
                let (Ok(vote), Ok(certificate), Ok(resolve)) =
                    (votes.register(epoch).await, certificates.register(epoch).await, resolvers.register(epoch).await)
                else {
                    tracing::error!(epoch, "consortium.engine the p2p channels closed");
                    return;
                };
                let engine = simplex::Engine::new(
                    context.child("engine").with_attribute("epoch", epoch),
                    simplex_config(scheme, epoch, floor),
                );
                Some(engine.start(vote, certificate, resolve))
            }
            None if member => {
                tracing::warn!(
                    epoch,
                    "consortium.engine this key is not one of epoch {epoch}'s validators (removed by governance): \
                     this validator stops"
                );
                return;
            }
            None => {
                // Not a validator yet (one that joins by governance, from
                // the genesis): follow the chain, epoch by epoch, from the
                // validators' certificates.
                schemes.insert(epoch, Scheme::verifier(&namespace, participants.clone()));
                tracing::info!(epoch, last, "consortium.engine following epoch (not one of its validators)");
                None
            }
        };
        // An instance two epochs old has stopped: its journal goes.
        if let Some(old) = epoch.checked_sub(2) {
            let _ = context.remove(&format!("{partition}-simplex-{old}"), None).await;
        }
        let mut hint = |subchannel: u64, peer: ed25519::PublicKey| {
            // A peer in a later epoch (this validator is behind), or any
            // validator of this epoch while following: marshal fetches the
            // certificate of this epoch's last block from it and backfills
            // up to there.
            let now = context.current();
            let due = last_hint.is_none_or(|at| now.duration_since(at).unwrap_or_default() >= CATCH_UP_HINT_INTERVAL);
            let ahead = subchannel > epoch || (subchannel == epoch && !member);
            if ahead && due {
                last_hint = Some(now);
                marshal_mailbox.hint_finalized(Height::new(last), NonEmptyVec::new(peer));
            }
        };
        let mut poll = context.current() + EPOCH_POLL;
        loop {
            futures::select! {
                _ = applying => {
                    tracing::error!("consortium.engine finalised blocks can no longer be applied; stopping this validator");
                    return;
                }
                _ = stopped(&mut engine).fuse() => {
                    tracing::error!(epoch, "consortium.engine the engine stopped");
                    return;
                }
                backup = votes_backup.recv().fuse() => {
                    let Some((subchannel, (peer, _))) = backup else { return };
                    hint(subchannel, peer);
                }
                backup = certificates_backup.recv().fuse() => {
                    let Some((subchannel, (peer, _))) = backup else { return };
                    hint(subchannel, peer);
                }
                _ = context.sleep_until(poll).fuse() => {
                    poll = context.current() + EPOCH_POLL;
                    if app.finalised().height() >= last {
                        break;
                    }
                }
            }
        }
        // The epoch's last block is applied: its instance stops (dropping
        // its channels), and the next one starts on that block.
        if let Some(engine) = engine {
            engine.abort();
        }
    }
}

/// Completes when the engine's task does; never without one.
async fn stopped(engine: &mut Option<commonware_runtime::Handle<()>>) {
    match engine {
        Some(handle) => {
            let _ = handle.await;
        }
        None => futures::future::pending().await,
    }
}
