//! Same wiring with the BLS12-381 threshold VRF scheme (beacon per view) and Random leader election.
#![allow(unused_imports, dead_code)]
include!("../common.rs");
use commonware_consensus::simplex::{elector::{Random, RandomVersion}, scheme::bls12381_threshold::vrf::{self, Seedable as _}};
use commonware_cryptography::bls12381::{dkg::feldman_desmedt::deal, primitives::{sharing::Mode, variant::MinSig}};
use commonware_utils::N3f1;

type VScheme = vrf::Scheme<Pk, MinSig>;

#[derive(Clone, Default)]
struct AppV(App);
impl<E: Send + 'static> Application<E> for AppV {
    type SigningScheme = VScheme;
    type Context = Ctx;
    type Block = Blk;
    type Input = ();
    async fn propose(&mut self, c: (E, Ctx), a: impl Ancestry<Blk>, i: ()) -> Option<Digested<Blk>> { <App as Application<E>>::propose(&mut self.0, c, a, i).await }
    async fn verify(&mut self, c: (E, Ctx), a: impl Ancestry<Blk>) -> bool { <App as Application<E>>::verify(&mut self.0, c, a).await }
}
impl Reporter for AppV {
    type Activity = Update<Blk>;
    fn report(&mut self, u: Update<Blk>) -> Feedback { self.0.report(u) }
}

fn main() {
    deterministic::Runner::timed(Duration::from_secs(60)).start(|mut context| async move {
        let n = 4u64;
        let keys: Vec<ed25519::PrivateKey> = (0..n).map(ed25519::PrivateKey::from_seed).collect();
        let participants: Set<Pk> = keys.iter().map(|k| k.public_key()).try_collect().unwrap();
        // Trusted-dealer setup (stand-in for a DKG ceremony among the organisations at genesis).
        let (output, shares) = deal::<MinSig, _, N3f1>(&mut context, Mode::NonZeroCounter, participants.clone()).unwrap();
        let polynomial = output.public().clone();
        let (network, oracle) = Network::new_with_peers(context.child("network"),
            simulated::Config { max_size: 1 << 20, max_peers_per_set: NZUsize!(n as usize), disconnect_on_block: true, tracked_peer_sets: NZUsize!(1) },
            participants.iter().cloned().collect::<Vec<_>>()).await;
        network.start();
        let link = Link { latency: Duration::from_millis(10), jitter: Duration::from_millis(1), success_rate: commonware_utils::probability!(1.0) };
        for a in participants.iter() { for b in participants.iter() { if a != b { oracle.add_link(a.clone(), b.clone(), link.clone()).await.unwrap(); } } }
        let genesis = Blk { parent: Sha256::hash(&[b"genesis"]), height: Height::zero(), payload: 0 };
        let quota = Quota::per_second(NZU32!(1_000));
        let mut apps = Vec::new();
        let mut mailboxes = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let pk = key.public_key();
            let ctx = context.child("validator").with_attribute("index", i);
            let control = oracle.control(pk.clone());
            let app = AppV::default();
            let app_handle = app.clone();
            let vote = control.register(0, quota).await.unwrap();
            let cert = control.register(1, quota).await.unwrap();
            let res = control.register(2, quota).await.unwrap();
            let backfill = control.register(3, quota).await.unwrap();
            let bcast = control.register(4, quota).await.unwrap();

            let scheme = VScheme::signer(NAMESPACE, participants.clone(), polynomial.clone(), shares.get_value(&pk).unwrap().clone()).expect("share matches");
            let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(1024));
            let prefix = format!("v{i}");

            // Marshal backfill resolver + buffered broadcast of full blocks.
            let resolver = marshal_resolver::init(ctx.child("marshal_resolver"), marshal_resolver::Config {
                public_key: pk.clone(), peer_provider: oracle.manager(), blocker: oracle.control(pk.clone()),
                mailbox_size: NZUsize!(1024), fetch_timeout: NZDuration!(Duration::from_secs(2)),
                fetch_retry_delay: Duration::from_millis(100), priority_requests: false, priority_responses: false,
            }, backfill);
            let (bengine, buffer) = buffered::Engine::new(ctx.child("broadcast"), buffered::Config {
                public_key: pk.clone(), mailbox_size: NZUsize!(1024), deque_size: 10, priority: false,
                codec_config: (), peer_provider: oracle.manager(), strategy: Sequential,
            });
            bengine.start(bcast);

            let finalizations = prunable::Archive::init(ctx.child("finalizations"),
                archive(&prefix, "finalizations", &page_cache, VScheme::certificate_codec_config_unbounded())).await.unwrap();
            let blocks = prunable::Archive::init(ctx.child("blocks"), archive(&prefix, "blocks", &page_cache, ())).await.unwrap();

            let (marshal_actor, marshal_mailbox, _floor) = MarshalActor::<_, Standard<Blk>, _, _, _, _, _>::init(
                ctx.child("marshal"), finalizations, blocks,
                marshal::Config {
                    provider: ConstantProvider::new(scheme.clone()),
                    epocher: FixedEpocher::new(NZU64!(u64::MAX)),
                    start: marshal::Start::Genesis(Digested::precomputed(genesis.clone(), genesis.digest())),
                    partition_prefix: prefix.clone(), mailbox_size: NZUsize!(1024),
                    view_retention: ViewDelta::new(10), prunable_items_per_section: NZU64!(10),
                    page_cache: page_cache.clone(), replay_buffer: NZUsize!(1 << 16),
                    key_write_buffer: NZUsize!(1 << 16), value_write_buffer: NZUsize!(1 << 16),
                    block_codec_config: (), max_repair: NZUsize!(10), max_pending_acks: NZUsize!(1),
                    strategy: Sequential,
                }).await;
            marshal_actor.start(app.clone(), buffer, resolver);

            // Inline wrapper = Automaton + CertifiableAutomaton + Relay + Reporter for simplex.
            let inline = Inline::new(ctx.child("inline"), app, marshal_mailbox.clone(), FixedEpocher::new(NZU64!(u64::MAX)));
            let engine = simplex::Engine::new(ctx.child("engine"), simplex::Config {
                scheme, elector: Random::<Sha256>::new(RandomVersion::V1), blocker: oracle.control(pk.clone()),
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
            apps.push(app_handle);
            mailboxes.push(marshal_mailbox);
        }
        while apps.iter().any(|a: &AppV| a.0.tip() < 10) { context.sleep(Duration::from_millis(50)).await; }
        let external = VScheme::certificate_verifier(NAMESPACE, *polynomial.public()); // only the group public key
        for h in 1..=5u64 {
            let f = mailboxes[0].get_finalization(Height::new(h)).await.expect("finalization");
            let seed = f.seed();
            println!("height {h}: view {:?} cert ok (group key only): {} seed ok: {} seed = {:?}", f.proposal.round.view(),
                f.verify(&mut context, &external, &Sequential), seed.verify(&external), seed.signature);
        }
    });
}
