//! Probe: 4 validators, simplex (ed25519) + marshal (standard, Inline), deterministic runtime,
//! simulated p2p. Compile-checked against commonware 2026.10.0.
include!("common.rs");

async fn start_validator(
    context: &deterministic::Context,
    oracle: &simulated::Oracle<Pk, deterministic::Context>,
    participants: &Set<Pk>,
    key: ed25519::PrivateKey,
    i: usize,
    genesis: Blk,
    app: App,
) -> commonware_runtime::Handle<()> {
    let quota = Quota::per_second(NZU32!(1_000));
    let participants = participants.clone();
    let oracle = oracle.clone();
    // One supervised task per validator: aborting its handle aborts every actor below it (a crash).
    context.child("validator").with_attribute("index", i).spawn(move |ctx| async move {
            let pk = key.public_key();
            let control = oracle.control(pk.clone());
            let vote = control.register(0, quota).await.unwrap();
            let cert = control.register(1, quota).await.unwrap();
            let res = control.register(2, quota).await.unwrap();
            let backfill = control.register(3, quota).await.unwrap();
            let bcast = control.register(4, quota).await.unwrap();

            let scheme = Scheme::signer(NAMESPACE, participants.clone(), key.clone()).expect("signer in set");
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
                archive(&prefix, "finalizations", &page_cache, Scheme::certificate_codec_config_unbounded())).await.unwrap();
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
                scheme, elector: RoundRobin::<Sha256>::default(), blocker: oracle.control(pk.clone()),
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
            engine.start(vote, cert, res)
                    .await
            .ok();
    })
}

async fn wait(context: &deterministic::Context, apps: &[App], target: u64, who: &[usize]) {
    while !who.iter().all(|&i| apps[i].tip() >= target) {
        context.sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let n: u64 = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let all: Vec<usize> = (0..n as usize).collect();
    let last = n as usize - 1;
    let half = n as usize / 2;
    let runner = deterministic::Runner::timed(Duration::from_secs(120));
    runner.start(|context| async move {
        let keys: Vec<ed25519::PrivateKey> = (0..n).map(ed25519::PrivateKey::from_seed).collect();
        let participants: Set<Pk> = keys.iter().map(|k| k.public_key()).try_collect().unwrap();

        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config { max_size: 1 << 20, max_peers_per_set: NZUsize!(n as usize), disconnect_on_block: true, tracked_peer_sets: NZUsize!(1) },
            participants.iter().cloned().collect::<Vec<_>>(),
        ).await;
        network.start();
        let link = Link { latency: Duration::from_millis(10), jitter: Duration::from_millis(1), success_rate: commonware_utils::probability!(1.0) };
        for a in participants.iter() { for b in participants.iter() { if a != b { oracle.add_link(a.clone(), b.clone(), link.clone()).await.unwrap(); } } }

        let genesis = Blk { parent: Sha256::hash(&[b"genesis"]), height: Height::zero(), payload: 0 };
        let mut apps = Vec::new();
        let mut handles = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let app = App::default();
            apps.push(app.clone());
            handles.push(start_validator(&context, &oracle, &participants, key.clone(), i, genesis.clone(), app).await);
        }
        wait(&context, &apps, 10, &all).await;
        // Crash validator 3 (abort its whole actor tree; its storage survives in the runtime).
        handles[last].abort();
        let t = context.current();
        wait(&context, &apps, 20, &all[..last]).await;
        println!("n={n}: all but one reached 20 after crash in {:?}", context.current().duration_since(t).unwrap());
        // Restart validator 3 with the same partitions; it must backfill.
        handles[last] = start_validator(&context, &oracle, &participants, keys[last].clone(), last, genesis.clone(), apps[last].clone()).await;
        wait(&context, &apps, 30, &all).await;
        println!("restarted validator {last} caught up to {}", apps[last].tip());
        // Partition {0,1} | {2,3}: no quorum on either side (q = 3 of 4).
        for a in 0..half { for b in half..n as usize {
            oracle.remove_link(participants[a].clone(), participants[b].clone()).await.unwrap();
            oracle.remove_link(participants[b].clone(), participants[a].clone()).await.unwrap();
        } }
        let before: Vec<u64> = apps.iter().map(|a| a.tip()).collect();
        context.sleep(Duration::from_secs(10)).await;
        let during: Vec<u64> = apps.iter().map(|a| a.tip()).collect();
        println!("partition: tips before {before:?}, after 10s {during:?}");
        for a in 0..half { for b in half..n as usize {
            oracle.add_link(participants[a].clone(), participants[b].clone(), link.clone()).await.unwrap();
            oracle.add_link(participants[b].clone(), participants[a].clone(), link.clone()).await.unwrap();
        } }
        let t = context.current();
        let target = during.iter().max().unwrap() + 10;
        wait(&context, &apps, target, &all).await;
        println!("healed: all reached {target} in {:?}", context.current().duration_since(t).unwrap());
        for a in &apps { a.check_contiguous(); }
        println!("OK");
    });
}
