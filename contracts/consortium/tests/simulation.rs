//! Deterministic simulations of a consortium (commonware's simulated runtime
//! and network, virtual time): n = 4 and 7 validators running the real
//! engine and the Strand application, with a crash and a restart from disk,
//! and a partition that leaves no side a quorum, then heals. Every run must
//! end with every validator's chain identical (block by block, state root by
//! state root), every certificate checked by a follower that knows only the
//! genesis, and every submitted transaction finalised with a receipt.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commonware_consensus::Application;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_cryptography::{Digested, Signer as _, ed25519};
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_runtime::{Clock, Handle, Quota, Runner, Spawner, Supervisor as _, deterministic};
use commonware_utils::ordered::Set;
use commonware_utils::{NZU32, NZUsize, TryCollect};
use strand_consortium::app::{App, BlockLimits, Ledger};
use strand_consortium::beacon::Beacons;
use strand_consortium::block::Candidate;
use strand_consortium::engine::{self, Channels, EngineConfig, Timeouts};
use strand_contracts::block::{Finality, Validator, consensus_namespace};
use strand_contracts::mempool::{Mempool, MempoolLimits};
use strand_contracts::transaction::{Body, FailureDomain, ProviderRegistration};
use strand_contracts::{Block, Genesis, LedgerState, Receipt, Replica, Transaction, ValidatorSet};
use strand_core::Identity;

/// Blocks per epoch: short, so that every run crosses many epochs (one
/// engine instance each).
const EPOCH_BLOCKS: u64 = 5;

/// A validator's disk: the blocks it committed, which survive a crash;
/// full (commits fail) past `full_after` blocks if set.
#[derive(Clone, Default)]
struct Disk(Arc<Mutex<Vec<Block>>>, Arc<Mutex<Option<u64>>>);

impl Disk {
    fn blocks(&self) -> Vec<Block> {
        self.0.lock().expect("disk").clone()
    }
    fn height(&self) -> u64 {
        self.0.lock().expect("disk").last().map_or(0, |block| block.header.height)
    }
}

impl Ledger for Disk {
    fn commit(&mut self, block: &Block, _: &[Receipt], state: &LedgerState) -> Result<(), String> {
        assert_eq!(block.header.state_root, state.root(), "the committed state is the header's");
        let mut blocks = self.0.lock().expect("disk");
        if self.1.lock().expect("disk").is_some_and(|full| blocks.len() as u64 >= full) {
            return Err("no space left on device".into());
        }
        assert_eq!(block.header.height, blocks.len() as u64 + 1, "blocks arrive in height order, once");
        blocks.push(block.clone());
        Ok(())
    }
}

/// Replays a disk like a validator restarting from its store.
fn replica_from(genesis: &Genesis, disk: &Disk) -> Replica {
    let mut replica = Replica::new(genesis);
    for block in disk.blocks() {
        if block.finality == Finality::Descendant {
            replica.apply_unfinalised(&block.header, &block.transactions).expect("stored block");
        } else {
            replica.apply(&block).expect("stored block");
        }
    }
    replica
}

struct Member {
    key: ed25519::PrivateKey,
    /// Its beacon shares (commonware's encoding): of the genesis's key, if
    /// it is a genesis validator, and of the key a change of validators
    /// brings, if it is in the new set.
    shares: Vec<Vec<u8>>,
    disk: Disk,
    mempool: Arc<Mutex<Mempool>>,
    handle: Option<Handle<()>>,
}

/// A hostile validator: it votes like the others but every block it
/// proposes lies about the state after it (a wrong state root).
#[derive(Clone)]
struct Forger(App);

impl<E: Clock + Send + 'static> Application<E> for Forger {
    type SigningScheme = commonware_consensus::simplex::scheme::ed25519::Scheme;
    type Context = strand_consortium::app::Ctx;
    type Block = Candidate;
    type Input = ();

    async fn propose(
        &mut self,
        context: (E, strand_consortium::app::Ctx),
        ancestry: impl Ancestry<Candidate>,
        input: (),
    ) -> Option<Digested<Candidate>> {
        let honest = <App as Application<E>>::propose(&mut self.0, context, ancestry, input).await?;
        let mut header = honest.inner().header.clone();
        header.state_root = strand_contracts::Digest([0xee; 32]);
        let forged = Candidate::new(header, honest.inner().transactions.clone());
        let digest = strand_consortium::block::digest(&forged.hash());
        Some(Digested::precomputed(forged, digest))
    }

    async fn verify(&mut self, context: (E, strand_consortium::app::Ctx), ancestry: impl Ancestry<Candidate>) -> bool {
        <App as Application<E>>::verify(&mut self.0, context, ancestry).await
    }
}

/// How a hostile validator misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// Votes honestly, proposes blocks with forged state roots (ours).
    Forger,
    /// As leader, sends two different proposals to different validators
    /// (commonware's own Byzantine mock); it keeps no chain.
    Equivocator,
}

struct Consortium {
    /// The hostile validator, if any, and how.
    hostile: Option<(usize, Hostile)>,
    /// Validators governance removed (their chains end there).
    retired: HashSet<usize>,
    /// The set a change of validators brings (the genesis validators but
    /// the last, and the joiner), with its beacon key dealt.
    next: Option<ValidatorSet>,
    genesis: Genesis,
    participants: Set<ed25519::PublicKey>,
    oracle: Oracle<ed25519::PublicKey, deterministic::Context>,
    validators: Vec<Member>,
}

fn quota() -> Quota {
    Quota::per_second(NZU32!(10_000))
}

fn link() -> Link {
    Link {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        success_rate: commonware_utils::probability!(1.0),
    }
}

impl Consortium {
    async fn new(context: &deterministic::Context, n: u64, hostile: Option<(usize, Hostile)>) -> Self {
        Self::with_joiner(context, n, hostile, false).await
    }

    /// `n` genesis validators and, with `joiner`, one more key (index `n`)
    /// that a change of validators brings in place of validator `n - 1`:
    /// the change's beacon key is dealt here, each new member given its
    /// share.
    async fn with_joiner(
        context: &deterministic::Context,
        n: u64,
        hostile: Option<(usize, Hostile)>,
        joiner: bool,
    ) -> Self {
        let all = n + u64::from(joiner);
        let keys: Vec<ed25519::PrivateKey> = (0..all).map(|seed| ed25519::PrivateKey::from_seed(seed + 1)).collect();
        let participants: Set<ed25519::PublicKey> =
            keys.iter().map(|key| key.public_key()).try_collect().expect("distinct keys");
        let keys_genesis = &keys[..n as usize];
        let (beacon_key, shares) = strand_contracts::beacon::deal(n as u32, [n as u8; 32]);
        let genesis = Genesis {
            name: "simulated-consortium".into(),
            validators: ValidatorSet::consortium(
                keys_genesis
                    .iter()
                    .enumerate()
                    .map(|(index, key)| Validator {
                        account: strand_consortium::app::account(&key.public_key()),
                        organisation: format!("org-{index}"),
                        p2p: String::new(),
                        ledger: String::new(),
                    })
                    .collect(),
                beacon_key,
            ),
            epoch_blocks: EPOCH_BLOCKS,
            timestamp_ms: 0,
        };
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: 1 << 20,
                max_peers_per_set: NZUsize!(16),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(3),
            },
            participants.iter().cloned().collect::<Vec<_>>(),
        )
        .await;
        network.start();
        for a in participants.iter() {
            for b in participants.iter() {
                if a != b {
                    oracle.add_link(a.clone(), b.clone(), link()).await.expect("link");
                }
            }
        }
        let member = |key: &ed25519::PrivateKey| Validator {
            account: strand_consortium::app::account(&key.public_key()),
            organisation: "org".into(),
            p2p: String::new(),
            ledger: String::new(),
        };
        let next = joiner.then(|| {
            let (next_key, next_shares) = strand_contracts::beacon::deal(n as u32, [0xee; 32]);
            let members: Vec<Validator> = keys[..n as usize - 1].iter().chain(keys.last()).map(member).collect();
            (ValidatorSet::consortium(members, next_key), next_shares)
        });
        let share_of = |set: &ValidatorSet, shares: &[Vec<u8>], key: &ed25519::PrivateKey| {
            let account = strand_consortium::app::account(&key.public_key());
            set.sorted().iter().position(|member| *member == account).map(|position| shares[position].clone())
        };
        let sorted = genesis.validators.clone();
        let validators = keys
            .into_iter()
            .map(|key| Member {
                shares: share_of(&sorted, &shares, &key)
                    .into_iter()
                    .chain(next.as_ref().and_then(|(set, shares)| share_of(set, shares, &key)))
                    .collect(),
                key,
                disk: Disk::default(),
                mempool: Arc::new(Mutex::new(Mempool::new(MempoolLimits::default()))),
                handle: None,
            })
            .collect();
        let next = next.map(|(set, _)| set);
        let mut consortium = Self { hostile, retired: HashSet::new(), next, genesis, participants, oracle, validators };
        for index in 0..all as usize {
            consortium.start(context, index).await;
        }
        consortium
    }

    /// Starts (or restarts, from its disk) validator `index`.
    async fn start(&mut self, context: &deterministic::Context, index: usize) {
        let validator = &self.validators[index];
        let key = validator.key.clone();
        let public_key = key.public_key();
        let replica = replica_from(&self.genesis, &validator.disk);
        let (app, finalised) = App::new(
            replica,
            Box::new(validator.disk.clone()),
            Arc::clone(&validator.mempool),
            strand_consortium::app::account(&public_key),
            BlockLimits { interval: Duration::from_millis(100), ..BlockLimits::default() },
            Beacons::following(
                self.genesis.chain(),
                &self.genesis.validators,
                strand_consortium::app::account(&public_key),
                validator
                    .shares
                    .iter()
                    .map(|share| commonware_codec::DecodeExt::decode(share.clone()).expect("share"))
                    .collect(),
            )
            .expect("the genesis's key"),
        );
        let (genesis_block, _) = self.genesis.block();
        let config = EngineConfig {
            namespace: consensus_namespace(&self.genesis.chain()),
            key,
            genesis: Candidate::new(genesis_block.header, Vec::new()),
            partition: format!("validator-{index}"),
            timeouts: Timeouts::default(),
        };
        let oracle = self.oracle.clone();
        // An equivocator keeps no chain: it follows the epochs on an honest
        // validator's disk.
        let watched = self.validators[(index + 1) % self.validators.len()].disk.clone();
        let participants = self.participants.clone();
        let role = self.hostile.filter(|(hostile, _)| *hostile == index).map(|(_, role)| role);
        let handle = context.child("validator").with_attribute("index", index).spawn(move |context| async move {
            let control = oracle.control(public_key.clone());
            let mut pairs = Vec::new();
            for channel in engine::CHANNELS {
                pairs.push(control.register(channel, quota()).await.expect("channel"));
            }
            let mut pairs = pairs.into_iter();
            let mut next = || pairs.next().expect("six channels");
            let channels = Channels {
                votes: next(),
                certificates: next(),
                resolver: next(),
                backfill: next(),
                blocks: next(),
                beacon: next(),
            };
            let (provider, blocker) = (oracle.manager(), oracle.control(public_key));
            let mut manager = oracle.manager();
            // Each epoch's validators (and those of a scheduled change) are
            // the epoch's peer set.
            let track = move |epoch: u64, set: &ValidatorSet, next: Option<&ValidatorSet>| {
                let primary = engine::participants(set).expect("ed25519 keys");
                let secondary = next
                    .and_then(engine::participants)
                    .map(|next| next.iter().filter(|key| primary.position(key).is_none()).cloned().collect::<Vec<_>>())
                    .unwrap_or_default();
                let secondary: Set<ed25519::PublicKey> = secondary.into_iter().try_collect().expect("distinct");
                commonware_p2p::Manager::track(
                    &mut manager,
                    epoch,
                    commonware_p2p::TrackedPeers { primary, secondary },
                );
            };
            if role == Some(Hostile::Equivocator) {
                let _ = (provider, blocker, app, finalised);
                let _unused = (channels.resolver, channels.backfill, channels.blocks, channels.beacon);
                equivocate(context, config, channels.votes, channels.certificates, participants, watched).await;
            } else if role == Some(Hostile::Forger) {
                let forged = Forger(app.clone());
                engine::run(context, config, app, forged, finalised, provider, blocker, channels, track).await;
            } else {
                let application = app.clone();
                engine::run(context, config, app, application, finalised, provider, blocker, channels, track).await;
            }
        });
        self.validators[index].handle = Some(handle);
    }

    fn crash(&mut self, index: usize) {
        if let Some(handle) = self.validators[index].handle.take() {
            handle.abort();
        }
    }

    fn heights(&self) -> Vec<u64> {
        self.validators.iter().map(|validator| validator.disk.height()).collect()
    }

    async fn wait_for(&self, context: &deterministic::Context, height: u64, who: &[usize]) {
        while !who.iter().all(|&index| self.validators[index].disk.height() >= height) {
            context.sleep(Duration::from_millis(50)).await;
        }
    }

    /// Offers transactions to the live validators' mempools (as gossip
    /// would), each checked against that validator's finalised state.
    fn submit(&self, transactions: &[Vec<u8>], live: &[usize]) {
        for &index in live {
            let validator = &self.validators[index];
            let replica = replica_from(&self.genesis, &validator.disk);
            let mut mempool = validator.mempool.lock().expect("mempool");
            for bytes in transactions {
                mempool.admit(replica.state(), bytes.clone()).expect("admitted");
            }
        }
    }

    async fn partition(&self, sides: (&[usize], &[usize]), connected: bool) {
        for &a in sides.0 {
            for &b in sides.1 {
                for (from, to) in [(a, b), (b, a)] {
                    let (from, to) = (self.participants[from].clone(), self.participants[to].clone());
                    if connected {
                        self.oracle.add_link(from, to, link()).await.expect("link");
                    } else {
                        self.oracle.remove_link(from, to).await.expect("unlink");
                    }
                }
            }
        }
    }
}

/// commonware's Byzantine mock as a validator: in every epoch (followed on
/// an honest validator's disk), as leader, it sends two different proposals
/// to different validators; it keeps no chain.
async fn equivocate<S, R>(
    context: deterministic::Context,
    config: EngineConfig,
    votes: (S, R),
    certificates: (S, R),
    participants: Set<ed25519::PublicKey>,
    watched: Disk,
) where
    S: commonware_p2p::Sender<PublicKey = ed25519::PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = ed25519::PublicKey>,
{
    use commonware_consensus::simplex::elector::RoundRobin;
    use commonware_consensus::simplex::mocks::{equivocator, relay};
    use commonware_cryptography::Sha256;
    use commonware_p2p::utils::mux::Muxer;
    let (votes_mux, mut votes) = Muxer::new(context.child("votes_mux"), votes.0, votes.1);
    votes_mux.start();
    let (certificates_mux, mut certificates) =
        Muxer::new(context.child("certificates_mux"), certificates.0, certificates.1);
    certificates_mux.start();
    let epoch_blocks = EPOCH_BLOCKS;
    loop {
        let epoch = (watched.height() + 1) / epoch_blocks;
        let scheme = commonware_consensus::simplex::scheme::ed25519::Scheme::signer(
            &config.namespace,
            participants.clone(),
            config.key.clone(),
        )
        .expect("a validator");
        let equivocator = equivocator::Equivocator::<_, _, _, Sha256>::new(
            context.child("equivocator").with_attribute("epoch", epoch),
            equivocator::Config {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                epoch: commonware_consensus::types::Epoch::new(epoch),
                relay: Arc::new(relay::Relay::default()),
            },
        );
        let (Ok(vote), Ok(certificate)) = (votes.register(epoch).await, certificates.register(epoch).await) else {
            return;
        };
        let running = context.child("equivocating").spawn(move |_| async move {
            let _ = equivocator.start(vote, certificate).await;
        });
        while (watched.height() + 1) / epoch_blocks == epoch {
            context.sleep(Duration::from_millis(20)).await;
        }
        running.abort();
    }
}

fn registrations(chain: strand_contracts::Digest, from: u8, count: u8) -> Vec<Vec<u8>> {
    (from..from + count)
        .map(|seed| {
            let provider = Identity::from_secret_bytes(&[seed; 32]);
            let body = Body::RegisterProvider(ProviderRegistration {
                endpoints: vec!["127.0.0.1:7000".into()],
                capacity_bytes: 1 << 40,
                domain: FailureDomain { organisation: format!("o{seed}"), site: "s".into(), jurisdiction: "EU".into() },
            });
            Transaction::sign(chain, &provider, 1, body).to_bytes()
        })
        .collect()
}

/// Every validator's chain is the same block by block; a follower that knows
/// only the genesis accepts each chain, checking every certificate; every
/// submitted transaction is in it, accepted.
fn check_agreement(consortium: &Consortium, submitted: &[Vec<u8>]) -> u64 {
    // An equivocator keeps no chain of its own.
    let chains: Vec<Vec<Block>> = (0..consortium.validators.len())
        .filter(|index| consortium.hostile != Some((*index, Hostile::Equivocator)))
        .filter(|index| !consortium.retired.contains(index))
        .map(|index| consortium.validators[index].disk.blocks())
        .collect();
    let common = chains.iter().map(Vec::len).min().expect("validators");
    for height in 0..common {
        let first = &chains[0][height].header;
        for chain in &chains[1..] {
            assert_eq!(chain[height].header, *first, "validators disagree at height {}", height + 1);
        }
    }
    let mut certified = 0;
    for chain in &chains {
        let mut follower = strand_ledger_follower(&consortium.genesis);
        let mut run = Vec::new();
        for block in chain {
            run.push(block.clone());
            if block.finality != Finality::Descendant {
                certified += 1;
                follower.apply_run(&run).expect("a follower accepts the finalised chain");
                run.clear();
            }
        }
        assert!(run.len() < 3, "at most a short run awaits its certificate at the end");
    }
    assert!(certified > 0);
    let included: HashSet<strand_contracts::Digest> = chains[0][..common]
        .iter()
        .flat_map(|block| block.transactions.iter().map(|bytes| strand_contracts::transaction::transaction_hash(bytes)))
        .collect();
    for bytes in submitted {
        assert!(
            included.contains(&strand_contracts::transaction::transaction_hash(bytes)),
            "a submitted transaction was never finalised"
        );
    }
    let state =
        replica_from(&consortium.genesis, &Disk(Arc::new(Mutex::new(chains[0][..common].to_vec())), Arc::default()))
            .state()
            .clone();
    assert_eq!(state.root(), chains[0][common - 1].header.state_root);
    check_beacons(&chains[0][..common], &state);
    common as u64
}

/// Every epoch that ran to its end got its threshold beacon from exactly
/// one block inside it (the follower above checked each signature), and
/// the last one is the state's.
fn check_beacons(blocks: &[Block], state: &LedgerState) {
    let params = &state.params;
    let mut carried: std::collections::BTreeMap<u64, &Block> = std::collections::BTreeMap::new();
    for block in blocks.iter().filter(|block| block.header.beacon.is_some()) {
        let epoch = params.epoch_of(block.header.height);
        assert!(carried.insert(epoch, block).is_none(), "two blocks carry epoch {epoch}'s beacon");
    }
    let last = blocks.last().expect("blocks").header.height;
    let complete = (1..params.epoch_of(last)).filter(|&epoch| params.epoch_of(last + 1) > epoch);
    for epoch in complete {
        assert!(carried.contains_key(&epoch), "epoch {epoch} ran to its end without a beacon");
    }
    let (&epoch, block) = carried.last_key_value().expect("at least one beacon");
    let signature = block.header.beacon.expect("carried");
    if let Some(beacon) = state.beacons.get(&epoch) {
        assert_eq!(*beacon, strand_contracts::beacon::beacon_of(&signature));
    }
    let closing = &blocks.iter().find(|b| params.epoch_of(b.header.height) == epoch).expect("first block").header;
    assert_ne!(
        state.beacons.get(&epoch).copied(),
        Some(closing.parent),
        "a consortium's beacon is not the closing block's hash"
    );
}

fn strand_ledger_follower(genesis: &Genesis) -> Replica {
    Replica::new(genesis)
}

fn run(n: u64, seed: u64) {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(seed).with_timeout(Some(Duration::from_secs(600))),
    );
    runner.start(|context| async move {
        let mut consortium = Consortium::new(&context, n, None).await;
        let all: Vec<usize> = (0..n as usize).collect();
        let last = n as usize - 1;
        let chain = consortium.genesis.chain();
        let mut submitted = registrations(chain, 1, 20);
        consortium.submit(&submitted, &all);
        consortium.wait_for(&context, 10, &all).await;

        // A validator crashes: the rest keep finalising, and take new work.
        consortium.crash(last);
        // Aborting a validator's task tree takes effect within a tick of
        // simulated time.
        context.sleep(Duration::from_millis(100)).await;
        let crashed_at = consortium.heights()[last];
        let more = registrations(chain, 21, 20);
        consortium.submit(&more, &all[..last]);
        submitted.extend(more);
        let target = consortium.heights()[0] + 10;
        consortium.wait_for(&context, target, &all[..last]).await;
        assert_eq!(consortium.heights()[last], crashed_at, "a crashed validator commits nothing");

        // It restarts from its disk and catches up.
        consortium.start(&context, last).await;
        let target = *consortium.heights().iter().max().expect("heights") + 5;
        consortium.wait_for(&context, target, &all).await;

        // A partition that leaves neither side a quorum: finality stops.
        let half = n as usize / 2;
        consortium.partition((&all[..half], &all[half..]), false).await;
        context.sleep(Duration::from_secs(5)).await;
        let stalled = consortium.heights();
        context.sleep(Duration::from_secs(20)).await;
        assert_eq!(consortium.heights(), stalled, "no block finalised without a quorum");

        // Healed: finality resumes, and every replica agrees.
        consortium.partition((&all[..half], &all[half..]), true).await;
        let target = *stalled.iter().max().expect("heights") + 10;
        consortium.wait_for(&context, target, &all).await;
        let common = check_agreement(&consortium, &submitted);
        println!("n={n}: {common} blocks in common, heights {:?}, t={:?}", consortium.heights(), context.current());
    });
}

#[test]
fn four_validators_survive_a_crash_and_a_partition_and_agree() {
    run(4, 1);
}

#[test]
fn seven_validators_survive_a_crash_and_a_partition_and_agree() {
    run(7, 2);
}

/// A validator that proposes only blocks lying about their state root: the
/// honest three (a quorum) refuse every one of them, keep finalising, and
/// agree; none of the forger's blocks is ever final.
#[test]
fn a_validator_proposing_invalid_blocks_causes_no_fork_and_no_invalid_state() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(3).with_timeout(Some(Duration::from_secs(600))),
    );
    runner.start(|context| async move {
        let consortium = Consortium::new(&context, 4, Some((0, Hostile::Forger))).await;
        let all: Vec<usize> = (0..4).collect();
        let submitted = registrations(consortium.genesis.chain(), 1, 30);
        consortium.submit(&submitted, &all);
        consortium.wait_for(&context, 30, &all).await;
        check_agreement(&consortium, &submitted);
        let forger = strand_consortium::app::account(&consortium.validators[0].key.public_key());
        let blocks = consortium.validators[1].disk.blocks();
        let proposers: HashSet<strand_contracts::AccountId> =
            blocks.iter().map(|block| block.header.proposer).collect();
        assert!(!proposers.contains(&forger), "a forged block was finalised");
        assert_eq!(proposers.len(), 3, "every honest validator's proposals were finalised");
        println!("forger: {} blocks finalised by the honest three, t={:?}", blocks.len(), context.current());
    });
}

/// A validator whose disk fills up cannot commit a finalised block: it
/// stops (its engine returns, so the process exits and its operator sees
/// it) instead of serving a stalled ledger; the other three go on.
#[test]
fn a_validator_that_cannot_commit_stops_and_the_others_go_on() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(5).with_timeout(Some(Duration::from_secs(600))),
    );
    runner.start(|context| async move {
        let mut consortium = Consortium::new(&context, 4, None).await;
        *consortium.validators[3].disk.1.lock().expect("disk") = Some(8);
        let all: Vec<usize> = (0..4).collect();
        let submitted = registrations(consortium.genesis.chain(), 1, 10);
        consortium.submit(&submitted, &all);
        consortium.wait_for(&context, 25, &all[..3]).await;
        assert_eq!(consortium.validators[3].disk.height(), 8, "it committed nothing past the full disk");
        let handle = consortium.validators[3].handle.take().expect("started");
        futures::select! {
            _ = futures::FutureExt::fuse(handle) => {}
            _ = futures::FutureExt::fuse(context.sleep(Duration::from_secs(1))) => {
                panic!("the validator that cannot commit is still running");
            }
        }
        check_agreement(&consortium, &submitted);
    });
}

/// A leader that equivocates (commonware's Byzantine mock: two different
/// proposals, each notarized toward a different part of the validators):
/// the honest three finalise without it, agree block by block, and none
/// of the blocks they finalise is its.
#[test]
fn an_equivocating_validator_causes_no_fork() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(4).with_timeout(Some(Duration::from_secs(600))),
    );
    runner.start(|context| async move {
        let consortium = Consortium::new(&context, 4, Some((3, Hostile::Equivocator))).await;
        let honest: Vec<usize> = (0..3).collect();
        let submitted = registrations(consortium.genesis.chain(), 1, 30);
        consortium.submit(&submitted, &honest);
        consortium.wait_for(&context, 30, &honest).await;
        check_agreement(&consortium, &submitted);
        let equivocator = strand_consortium::app::account(&consortium.validators[3].key.public_key());
        let blocks = consortium.validators[0].disk.blocks();
        assert!(blocks.iter().all(|block| block.header.proposer != equivocator));
        assert_eq!(consortium.validators[3].disk.height(), 0, "the equivocator finalised nothing of its own");
        println!("equivocator: {} blocks finalised by the honest three, t={:?}", blocks.len(), context.current());
    });
}

/// The Strand identity of an engine key (the same ed25519 secret).
fn identity_of(key: &ed25519::PrivateKey) -> Identity {
    use commonware_codec::Encode as _;
    Identity::from_secret_bytes(key.encode().as_ref().try_into().expect("32-byte secret"))
}

/// Governance with the real engine: validator 0 proposes replacing
/// validator 3 by a new organisation's validator (which started from the
/// genesis and follows the chain), 1 and 2 approve; at the stated epoch the
/// new set's engine instance takes over: the removed validator stops, the
/// new one proposes and signs, the new set's beacon key makes the epoch's
/// beacon, and a follower that knows only the genesis accepts the whole
/// chain, each block checked against its epoch's validators.
#[test]
fn governance_replaces_a_validator_at_the_stated_epoch() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(6).with_timeout(Some(Duration::from_secs(600))),
    );
    runner.start(|context| async move {
        let mut consortium = Consortium::with_joiner(&context, 4, None, true).await;
        let (members, joiner, leaving) = (vec![0, 1, 2], 4, 3);
        let chain = consortium.genesis.chain();
        consortium.wait_for(&context, 2, &[0, 1, 2, 3]).await;
        let next = consortium.next.clone().expect("a change");
        let effective = 3;
        let proposal = strand_contracts::governance::proposal_id(&next, effective);
        let identities: Vec<Identity> = (0..3).map(|index| identity_of(&consortium.validators[index].key)).collect();
        let mut governance = vec![
            Transaction::sign(chain, &identities[0], 1, Body::ProposeValidators { set: next.clone(), effective_epoch: effective })
                .to_bytes(),
        ];
        for identity in &identities[1..] {
            governance.push(Transaction::sign(chain, identity, 1, Body::ApproveValidators { proposal }).to_bytes());
        }
        // The proposal first, then the approvals (each validator's mempool
        // checks them against its state).
        consortium.submit(&governance[..1], &[0, 1, 2, 3]);
        let height = consortium.heights()[0] + 3;
        consortium.wait_for(&context, height, &members).await;
        consortium.submit(&governance[1..], &[0, 1, 2, 3]);
        let first = effective * EPOCH_BLOCKS;
        consortium.wait_for(&context, first + 12, &[0, 1, 2, joiner]).await;

        // The removed validator stopped at the change.
        let handle = consortium.validators[leaving].handle.take().expect("started");
        futures::select! {
            _ = futures::FutureExt::fuse(handle) => {}
            _ = futures::FutureExt::fuse(context.sleep(Duration::from_secs(1))) => {
                panic!("the removed validator is still running");
            }
        }
        assert!(consortium.validators[leaving].disk.height() < first, "it finalised nothing of the new set's epochs");
        consortium.retired.insert(leaving);
        check_agreement(&consortium, &governance);

        let blocks = consortium.validators[joiner].disk.blocks();
        let replica = replica_from(&consortium.genesis, &consortium.validators[joiner].disk);
        assert_eq!(replica.validators().sorted(), next.sorted(), "the new set is in effect");
        let joined = strand_consortium::app::account(&consortium.validators[joiner].key.public_key());
        let left = strand_consortium::app::account(&consortium.validators[leaving].key.public_key());
        let after: Vec<&Block> = blocks.iter().filter(|block| block.header.height >= first).collect();
        assert!(after.iter().any(|block| block.header.proposer == joined), "the new validator proposes");
        assert!(after.iter().all(|block| block.header.proposer != left), "the removed one no longer does");
        assert!(blocks.iter().filter(|block| block.header.height < first).all(|block| block.header.proposer != joined));
        // Its signatures are in the new epochs' certificates.
        let index = next.sorted().iter().position(|account| *account == joined).expect("a member") as u32;
        assert!(after.iter().any(|block| matches!(&block.finality,
            Finality::Certificate(certificate) if certificate.epoch >= effective && certificate.signers.contains(&index))));
        // The new set's epochs got their beacons under its key: checked by
        // check_agreement above (every complete epoch, each signature by a
        // genesis-only follower).
        println!("governance: {} blocks, new set from height {first}, t={:?}", blocks.len(), context.current());
    });
}
