//! Real validator process on loopback: tokio runtime + authenticated::lookup p2p.
//! Usage: node <index> <n> <base_port> <storage_dir>
#![allow(unused_imports)]
include!("../common.rs");
use commonware_p2p::{AddressableManager as _, authenticated::{self, lookup}, max_message_size};
use commonware_cryptography::ChaCha20Poly1305;
use commonware_stream::{cups::{self, Cups}, sake::{self, Sake}};
use commonware_utils::ordered::Map;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn main() {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args: Vec<String> = std::env::args().collect();
    let (me, n, base): (usize, u64, u16) = (args[1].parse().unwrap(), args[2].parse().unwrap(), args[3].parse().unwrap());
    let storage = args[4].clone();
    let keys: Vec<ed25519::PrivateKey> = (0..n).map(ed25519::PrivateKey::from_seed).collect();
    let key = keys[me].clone();
    let pk = key.public_key();
    let participants: Set<Pk> = keys.iter().map(|k| k.public_key()).try_collect().unwrap();
    let addr = |i: usize| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base + i as u16);

    // Size the network for simplex votes/certificates and marshal blocks.
    let consensus_payload = simplex::max_payload_size::<Scheme, D>(n as u32);
    let p2p_cfg = lookup::Config::local(
        Cups::<_, ChaCha20Poly1305>::new(
            Sake { signer: key.clone(), synchrony_bound: Duration::from_secs(5), max_handshake_age: Duration::from_secs(10), version: sake::Version::V1 },
            cups::Version::V1,
        ),
        b"strand-probe-p2p",
        addr(me),
        authenticated::peer_set_limit(&participants, &pk),
        max_message_size(&[consensus_payload, 1 << 20]),
        NZUsize!(1024),
    );
    let executor = commonware_runtime::tokio::Runner::new(commonware_runtime::tokio::Config::new().with_storage_directory(storage));
    executor.start(async move |context| {
        let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_cfg);
        let peers: Map<Pk, commonware_p2p::Address> =
            keys.iter().enumerate().map(|(i, k)| (k.public_key(), addr(i).into())).try_collect().unwrap(); // NB: Set/Map are sorted by key
        oracle.track(0, peers);
        let quota = Quota::per_second(NZU32!(1_000));
        let (vote, cert, res) = (network.register(0, quota), network.register(1, quota), network.register(2, quota));
        let (backfill, bcast) = (network.register(3, quota), network.register(4, quota));
        network.start();

        let scheme = Scheme::signer(NAMESPACE, participants.clone(), key.clone()).expect("in set");
        let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(1024));
        let prefix = "node".to_string();
        let genesis = Blk { parent: Sha256::hash(&[b"genesis"]), height: Height::zero(), payload: 0 };
        let resolver = marshal_resolver::init(context.child("marshal_resolver"), marshal_resolver::Config {
            public_key: pk.clone(), peer_provider: oracle.clone(), blocker: oracle.clone(),
            mailbox_size: NZUsize!(1024), fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100), priority_requests: false, priority_responses: false,
        }, backfill);
        let (bengine, buffer) = buffered::Engine::new(context.child("broadcast"), buffered::Config {
            public_key: pk.clone(), mailbox_size: NZUsize!(1024), deque_size: 10, priority: false,
            codec_config: (), peer_provider: oracle.clone(), strategy: Sequential,
        });
        bengine.start(bcast);
        let finalizations = prunable::Archive::init(context.child("finalizations"),
            archive(&prefix, "finalizations", &page_cache, Scheme::certificate_codec_config_unbounded())).await.unwrap();
        let blocks = prunable::Archive::init(context.child("blocks"), archive(&prefix, "blocks", &page_cache, ())).await.unwrap();
        let (marshal_actor, marshal_mailbox, _floor) = MarshalActor::<_, Standard<Blk>, _, _, _, _, _>::init(
            context.child("marshal"), finalizations, blocks,
            marshal::Config {
                provider: ConstantProvider::new(scheme.clone()), epocher: FixedEpocher::new(NZU64!(u64::MAX)),
                start: marshal::Start::Genesis(Digested::precomputed(genesis.clone(), genesis.digest())),
                partition_prefix: prefix.clone(), mailbox_size: NZUsize!(1024), view_retention: ViewDelta::new(10),
                prunable_items_per_section: NZU64!(10), page_cache: page_cache.clone(), replay_buffer: NZUsize!(1 << 16),
                key_write_buffer: NZUsize!(1 << 16), value_write_buffer: NZUsize!(1 << 16), block_codec_config: (),
                max_repair: NZUsize!(10), max_pending_acks: NZUsize!(1), strategy: Sequential,
            }).await;
        let app = App::default();
        marshal_actor.start(app.clone(), buffer, resolver);
        let inline = Inline::new(context.child("inline"), app.clone(), marshal_mailbox.clone(), FixedEpocher::new(NZU64!(u64::MAX)));
        let engine = simplex::Engine::new(context.child("engine"), simplex::Config {
            scheme, elector: RoundRobin::<Sha256>::default(), blocker: oracle.clone(),
            automaton: inline.clone(), relay: inline.clone(), reporter: inline,
            strategy: Sequential, partition: format!("{prefix}-simplex"), mailbox_size: NZUsize!(1024),
            epoch: Epoch::zero(), floor: simplex::Floor::Genesis(genesis.digest()),
            replay_buffer: NZUsize!(1 << 16), write_buffer: NZUsize!(1 << 16), page_cache,
            leader_timeout: Duration::from_secs(1), certification_timeout: Duration::from_secs(2),
            timeout_retry: Duration::from_millis(500), view_retention: ViewDelta::new(10),
            skip: SkipPolicy::Enabled { timeout: Duration::from_secs(5), budget: SkipBudget::Participants },
            fetch_timeout: NZDuration!(Duration::from_secs(1)), fetch_retry_delay: Duration::from_millis(100),
            forward: ForwardPolicy::Disabled, track_historical_votes: false,
        });
        engine.start(vote, cert, res);
        // What a follower does: verify a finalization certificate against the genesis validator set.
        let verifier = Scheme::verifier(NAMESPACE, participants.clone());
        let mut rng = context.child("verify");
        loop {
            context.sleep(Duration::from_secs(2)).await;
            let tip = Height::new(app.tip());
            let fin = marshal_mailbox.get_finalization(tip).await;
            let block = marshal_mailbox.get_block(tip).await;
            let ok = match (&fin, &block) {
                (Some(f), Some(b)) => f.verify(&mut rng, &verifier, &Sequential) && f.proposal.payload == b.digest(),
                _ => false,
            };
            let signers = fin.as_ref().map(|f| f.certificate.signers.count()).unwrap_or(0);
            println!("node {me}: finalized tip {} (cert verifies: {ok}, signers: {signers}, view: {:?})", app.tip(), fin.map(|f| f.proposal.round));
        }
    });
}
