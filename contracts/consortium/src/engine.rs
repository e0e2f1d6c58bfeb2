//! One validator's engine: simplex (ed25519 votes, round-robin leaders),
//! marshal (finalised blocks in order, archived, backfilled from peers)
//! with the `Inline` wrapper (verify before voting), buffered broadcast of
//! whole blocks, and the Strand [`App`]. Generic over the runtime
//! (commonware's deterministic simulator in tests, tokio in the validator
//! process) and the p2p network (simulated, or authenticated `lookup` on
//! the genesis addresses).

use std::num::NonZeroUsize;
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
use commonware_cryptography::certificate::{ConstantProvider, Verifier as _};
use commonware_cryptography::{Digested, Digestible as _, Sha256, Signer as _, ed25519};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use commonware_storage::archive::prunable;
use commonware_storage::translator::TwoCap;
use commonware_utils::ordered::Set;
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize};
use rand_core::CryptoRng;

use crate::app::{App, Finalised};
use crate::block::Candidate;

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
    /// Every validator's key.
    pub participants: Set<ed25519::PublicKey>,
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
/// finalised block cannot be applied or committed. `application`
/// proposes and verifies for the engine: the validator's [`App`] itself (a
/// clone), or, in tests, a hostile validator wrapping it.
#[allow(clippy::too_many_arguments)]
pub async fn run<E, A, P, B, S, R>(
    context: E,
    config: EngineConfig,
    app: App,
    application: A,
    finalised: Finalised,
    provider: P,
    blocker: B,
    channels: Channels<S, R>,
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
{
    let EngineConfig { namespace, participants, key, genesis, partition, timeouts } = config;
    let public_key = key.public_key();
    let Some(scheme) = Scheme::signer(&namespace, participants.clone(), key) else {
        tracing::error!("consortium.engine this key is not one of the validators");
        return;
    };
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
            provider: ConstantProvider::new(scheme.clone()),
            epocher: FixedEpocher::new(NZU64!(u64::MAX)),
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
    let inline =
        Inline::new(context.child("inline"), application, marshal_mailbox, FixedEpocher::new(NZU64!(u64::MAX)));
    let engine = simplex::Engine::new(
        context.child("engine"),
        simplex::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: inline.clone(),
            relay: inline.clone(),
            reporter: inline,
            strategy: Sequential,
            partition: format!("{partition}-simplex"),
            mailbox_size: MAILBOX,
            epoch: Epoch::zero(),
            floor: simplex::Floor::Genesis(genesis_digest),
            replay_buffer: NZUsize!(1 << 16),
            write_buffer: NZUsize!(1 << 16),
            page_cache,
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
        },
    );
    let engine = engine.start(channels.votes, channels.certificates, channels.resolver);
    // Applying finalised blocks stops only when one cannot be applied or
    // committed (a bug, a full disk): the validator then stops too, so its
    // operator (or the devnet) sees it, instead of serving a stalled ledger.
    futures::select! {
        _ = futures::FutureExt::fuse(engine) => {}
        _ = futures::FutureExt::fuse(applying) => {
            tracing::error!("consortium.engine finalised blocks can no longer be applied; stopping this validator");
        }
    }
}
