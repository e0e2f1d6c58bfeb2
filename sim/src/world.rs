//! The simulated network: the real ledger state machine (a sequencer
//! replica and a follower that checks every block), nodes that hold real
//! fragment bytes, answer their real proof schedules and rebuild lost
//! shards with the node's real repair core, and faults drawn from one
//! seeded RNG. Time is simulated: events in `(time, sequence)` order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use strand_client::download::Placement;
use strand_client::record::UploadRecord;
use strand_contracts::apply::credential_id;
use strand_contracts::block::{Genesis, ValidatorSet};
use strand_contracts::mempool::{AdmissionError, Mempool};
use strand_contracts::query;
use strand_contracts::state::{ContractStatus, LedgerState, RepairState};
use strand_contracts::stripes::StripeMap;
use strand_contracts::transaction::transaction_hash;
use strand_contracts::transaction::{
    Body, ContractTerms, FailureDomain, ProofPolicy, ProviderRegistration, ReadAuthority,
};
use strand_contracts::types::UploadKey;
use strand_contracts::{AccountId, Digest, Replica, Signature, Transaction};
use strand_core::Identity;
use strand_ledger_service::sequencer::SequencerConfig;
use strand_net::blobs::Extent;
use strand_node::core::gate;
use strand_node::core::holdings::{AgreementState, Holdings};
use strand_node::core::keeper::Keeper;
use strand_node::core::proposal::{self, AcceptancePolicy};
use strand_node::core::receipts::Receipts;
use strand_node::core::repair::{RepairReads, check_request};
use strand_node::core::submissions::{Purpose, Submissions};
use strand_node::core::{prover, retention};
use strand_proof_of_storage::chunk::ChunkProof;
use strand_wire::{FragmentSource, Proposal, Stage};

use crate::queue::Queue;
use crate::report::{
    CredentialReport, DetectionCheck, Distribution, GateReport, LedgerLoad, ProposalReport, Report, Sample,
};
use crate::scenario::Scenario;

/// What happens next.
#[derive(Debug)]
enum Event {
    /// The sequencer makes the next block.
    Block,
    /// A node answers an epoch's challenges.
    Submit { node: usize, epoch: u64 },
    /// A node works on a repair order naming it.
    Repair { node: usize, order: Digest },
    /// A late node's answers reach the ledger after their epoch.
    Late { node: usize, body: Box<Body> },
    /// An owner uploads (load over time).
    Upload { number: u32 },
}

/// Whether a node answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Up,
    /// Offline until the start of this epoch.
    Down {
        until: u64,
    },
    /// Left for good (at this epoch).
    Gone {
        at: u64,
    },
}

struct Node {
    identity: Identity,
    account: AccountId,
    organisation: u32,
    health: Health,
    /// Fragment bytes held, by id.
    store: BTreeMap<[u8; 32], Vec<u8>>,
    /// Its transactions admitted and not yet final (the node's real
    /// submissions core: nonces).
    submissions: Submissions,
    /// Orders worked on.
    repaired: BTreeSet<Digest>,
    /// The node's agreements, reservations and capacity: its real
    /// proposal core (the gate, prover and retention read its holdings).
    keeper: Keeper,
    /// The node's repair-read grants and budgets (its real gate).
    reads: RepairReads,
    /// Fragments its disk corrupted, and the first bad 1 KiB chunk.
    corrupted: BTreeMap<[u8; 32], u64>,
    /// What it released and has not yet put on the ledger (the node's
    /// real receipts core).
    receipts: Receipts,
    /// Credentials grantees presented here (the node's real table).
    presentations: gate::Presentations,
    /// Its link: latency, and bytes per second it moves.
    latency_ms: u64,
    bytes_per_s: u64,
}

struct Upload {
    map: StripeMap,
    k: u16,
    /// The upload's key on the ledger.
    key: [u8; 16],
    /// The owner, who reads it back and grants credentials.
    owner: AccountId,
    owner_secret: [u8; 32],
    /// The owner's last nonce.
    owner_nonce: u64,
    /// The owner's upload record (recovery index: keys, layout, fragment
    /// ids, the file's hash; and the placement), as the real client keeps
    /// it.
    record: UploadRecord,
}

/// A credential an owner granted, and its grantee.
struct Grant {
    upload: usize,
    grantee_secret: [u8; 32],
    grantee: AccountId,
    credential: Digest,
    granted_epoch: u64,
    /// The owner revokes it the epoch after granting it.
    revoke: bool,
}

/// A fragment a holder's gate released to a reader, to be receipted.
type Release = (usize, UploadKey, ReadAuthority, u64);

/// A simulation in progress.
pub struct World {
    scenario: Scenario,
    seed: u64,
    rng: StdRng,
    sequencer: Identity,
    leader: Replica,
    follower: Replica,
    nodes: Vec<Node>,
    by_account: BTreeMap<AccountId, usize>,
    uploads: Vec<Upload>,
    /// The sequencer's real mempool and block limits.
    mempool: Mempool,
    sequencer_config: SequencerConfig,
    /// Transactions signed but not yet admitted (the mempool was full):
    /// their senders retry, in order.
    backlog: VecDeque<Vec<u8>>,
    queue: Queue<Event>,
    time_ms: u64,
    last_block: u64,
    // Measurements.
    load: LedgerLoad,
    block_bytes_total: u64,
    lost_seen: BTreeMap<Digest, u64>,
    repairs_seen: BTreeMap<Digest, u32>,
    detection: Vec<u64>,
    time_to_repair: Vec<u64>,
    unavailable_since: BTreeMap<Digest, u64>,
    stripes_lost: BTreeSet<(usize, usize)>,
    repair_read_bytes: u64,
    repair_written_bytes: u64,
    violations: Vec<String>,
    outages: u64,
    declared_lost: u64,
    stripe_epochs_unavailable: u64,
    timeline: Vec<Sample>,
    detection_samples: Vec<(f64, bool)>,
    gate: GateCounts,
    accused: BTreeSet<(Digest, Digest)>,
    rejections: BTreeMap<String, u64>,
    proposals: ProposalReport,
    /// Owners' reads: made, failed, degraded (rebuilt from parity).
    downloads: (u64, u64, u64),
    grants: Vec<Grant>,
    credential_counts: CredentialReport,
    /// The instant simulated time 0 maps to (the cores take `Instant`s;
    /// only differences matter, so runs stay reproducible).
    start: Instant,
    /// When the last upload staged.
    last_upload_ms: u64,
    /// Simulated milliseconds of every read (owners' and grantees').
    read_ms: Vec<u64>,
}

/// What the nodes' gates decided on repair reads.
#[derive(Default)]
struct GateCounts {
    releases: u64,
    /// Bytes released (to repairers, owners and grantees) and receipted.
    receipted_bytes: u64,
    /// Of those, bytes whose receipts were too late for the ledger (the
    /// holder was down past the next epoch).
    receipts_too_late_bytes: u64,
    refusals: BTreeMap<String, u64>,
    bad_siblings_reported: u64,
    late_answers: u64,
    proofs_rejected: u64,
}

impl World {
    /// A network for `scenario`, seeded: registered providers, uploads
    /// placed and their contracts open.
    pub fn new(scenario: &Scenario, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let sequencer = identity(&mut rng);
        let genesis = Genesis {
            name: format!("strand-sim-{}", scenario.name),
            validators: ValidatorSet { validators: vec![AccountId::of(&sequencer.public_key())], quorum: 1 },
            epoch_blocks: scenario.epoch_blocks,
            timestamp_ms: 0,
        };
        let nodes: Vec<Node> = (0..scenario.nodes)
            .map(|index| {
                let identity = identity(&mut rng);
                let (low, high) = scenario.link_latency_ms;
                let latency_ms = rng.random_range(low..=high);
                let bytes_per_s = if scenario.slow.contains(&index) {
                    scenario.slow_bytes_per_s
                } else {
                    scenario.node_bandwidth_bytes_per_s
                };
                Node {
                    account: AccountId::of(&identity.public_key()),
                    identity,
                    organisation: index % scenario.organisations,
                    health: Health::Up,
                    store: BTreeMap::new(),
                    submissions: Submissions::default(),
                    repaired: BTreeSet::new(),
                    keeper: Keeper::new(Holdings::default(), scenario.node_capacity_bytes, AcceptancePolicy::default()),
                    reads: RepairReads::default(),
                    corrupted: BTreeMap::new(),
                    receipts: Receipts::default(),
                    presentations: gate::Presentations::default(),
                    latency_ms,
                    bytes_per_s,
                }
            })
            .collect();
        let by_account = nodes.iter().enumerate().map(|(index, node)| (node.account, index)).collect();
        let blocks = (scenario.fault_epochs + scenario.liveness_epochs + 1) * scenario.epoch_blocks;
        let mut world = Self {
            scenario: scenario.clone(),
            seed,
            rng,
            sequencer,
            leader: Replica::new(&genesis),
            follower: Replica::new(&genesis),
            nodes,
            by_account,
            uploads: Vec::new(),
            mempool: Mempool::new(SequencerConfig::default().mempool),
            sequencer_config: SequencerConfig::default(),
            backlog: VecDeque::new(),
            queue: Queue::default(),
            time_ms: 0,
            last_block: blocks,
            load: LedgerLoad::default(),
            block_bytes_total: 0,
            lost_seen: BTreeMap::new(),
            repairs_seen: BTreeMap::new(),
            detection: Vec::new(),
            time_to_repair: Vec::new(),
            unavailable_since: BTreeMap::new(),
            stripes_lost: BTreeSet::new(),
            repair_read_bytes: 0,
            repair_written_bytes: 0,
            violations: Vec::new(),
            outages: 0,
            declared_lost: 0,
            stripe_epochs_unavailable: 0,
            timeline: Vec::new(),
            detection_samples: Vec::new(),
            gate: GateCounts::default(),
            accused: BTreeSet::new(),
            rejections: BTreeMap::new(),
            proposals: ProposalReport::default(),
            downloads: (0, 0, 0),
            grants: Vec::new(),
            credential_counts: CredentialReport::default(),
            start: Instant::now(),
            last_upload_ms: 0,
            read_ms: Vec::new(),
        };
        for index in 0..world.nodes.len() {
            let node = &world.nodes[index];
            let registration = Body::RegisterProvider(ProviderRegistration {
                endpoints: vec![format!("sim:{index}")],
                capacity_bytes: scenario.node_capacity_bytes,
                domain: FailureDomain {
                    organisation: format!("organisation-{}", node.organisation),
                    site: format!("site-{index}"),
                    jurisdiction: "EU".into(),
                },
            });
            world.send(index, registration);
        }
        world.make_block();
        match scenario.uploads_over_epochs {
            // Load over time: each upload at a drawn epoch, a block into it.
            Some(epochs) => {
                let epoch_ms = scenario.block_ms * scenario.epoch_blocks;
                for number in 0..scenario.uploads {
                    let at = world.rng.random_range(1..=epochs);
                    world.queue.push(at * epoch_ms + scenario.block_ms / 2, Event::Upload { number });
                }
            }
            None => {
                for number in 0..scenario.uploads {
                    world.upload(number);
                }
            }
        }
        world.queue.push(world.time_ms + scenario.block_ms, Event::Block);
        world
    }

    /// Runs to the end; the report.
    pub fn run(mut self) -> Report {
        while let Some((time, event)) = self.queue.pop() {
            self.time_ms = time;
            match event {
                Event::Block => {
                    self.make_block();
                    if self.leader.height() < self.last_block {
                        self.queue.push(time + self.scenario.block_ms, Event::Block);
                    }
                }
                Event::Submit { node, epoch } => self.submit_proofs(node, epoch),
                Event::Repair { node, order } => self.repair(node, &order),
                Event::Upload { number } => self.upload(number),
                Event::Late { node, body } => {
                    if self.nodes[node].health == Health::Up {
                        self.gate.late_answers += 1;
                        self.send(node, *body);
                    }
                }
            }
        }
        self.finish()
    }

    fn state(&self) -> &LedgerState {
        self.leader.state()
    }

    /// Signs `body` as node `index` (its next nonce) into the mempool.
    ///
    /// The nonce comes from the node's real submissions core (as the
    /// daemon's): the account's nonce on the ledger, past every transaction
    /// admitted and not yet final. Registration, the node's first
    /// transaction, is signed before it has any.
    fn send(&mut self, index: usize, body: Body) {
        let state = self.leader.state();
        let chain = state.params.chain;
        let node = &mut self.nodes[index];
        let confirmed = state.accounts.get(&node.account).map_or(0, |account| account.nonce);
        let purpose = match &body {
            Body::SubmitProofs { epoch, .. } => Some(Purpose::Proofs(*epoch)),
            Body::AccessReceipts { epoch, .. } => Some(Purpose::Receipts(*epoch)),
            Body::RecordRepair { order, .. } => Some(Purpose::Repair(*order)),
            Body::ReportBadSibling { contract, .. } => Some(Purpose::Accusation(*contract)),
            _ => None,
        };
        let nonce = node.submissions.next_nonce(confirmed);
        let bytes = Transaction::sign(chain, &node.identity, nonce, body).to_bytes();
        if let Some(purpose) = purpose {
            node.submissions.admitted(nonce, transaction_hash(&bytes), purpose);
        }
        self.backlog.push_back(bytes);
    }

    /// One upload as the client makes it: real data and Reed-Solomon
    /// parity, placed by the client's placement over the providers the
    /// ledger lists with what it says they have free, one proposal per
    /// provider answered by the node's real proposal core (terms, root,
    /// capacity, ownership). Any refusal fails the upload, as it does the
    /// real client's; what other nodes signed is never opened and their
    /// retention lets it go.
    fn upload(&mut self, number: u32) {
        let scenario = &self.scenario;
        let (k, m) = (usize::from(scenario.data_shards), usize::from(scenario.parity_shards));
        let owner = identity(&mut self.rng);
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&number.to_le_bytes());
        key[4..12].copy_from_slice(&self.seed.to_le_bytes());
        let providers = strand_contracts::query::providers_by_domain(self.state(), &Default::default(), 0);
        let candidates: Vec<strand_client::placement::Candidate> = providers
            .iter()
            .map(|(account, provider)| strand_client::placement::Candidate {
                account: *account,
                organisation: provider.registration.domain.organisation.clone(),
                site: provider.registration.domain.site.clone(),
                free_bytes: provider.free_bytes(),
            })
            .collect();
        let mut placement_seed = [0u8; 32];
        self.rng.fill(&mut placement_seed[..]);
        let placed = strand_client::placement::place(
            u64::from(scenario.stripes),
            k + m,
            &candidates,
            u64::from(scenario.fragment_bytes),
            &placement_seed,
        );
        let Ok(placements) = placed else {
            *self.proposals.outcomes.entry("no_placement".into()).or_default() += 1;
            self.proposals.uploads_failed += 1;
            return;
        };
        let accounts: Vec<AccountId> = providers.iter().map(|(account, _)| *account).collect();
        // A file encoded by the client's real encoder (encrypted,
        // scrambled, Reed-Solomon), its last chunk partly padding.
        let params = strand_core::CodecParams {
            chunk_size: scenario.fragment_bytes,
            data_shards: scenario.data_shards,
            parity_shards: scenario.parity_shards,
        };
        let chunk = u64::from(scenario.fragment_bytes);
        let length = u64::from(scenario.stripes) * k as u64 * chunk - self.rng.random_range(0..chunk);
        let mut file = vec![0u8; usize::try_from(length).expect("a scenario's upload fits in memory")];
        self.rng.fill(&mut file[..]);
        let secrets = strand_core::UploadSecrets {
            upload_id: strand_core::UploadId::from_bytes(key),
            master_key: strand_core::keys::MasterKey::random(&mut self.rng),
        };
        let mut sink = strand_core::io::MemoryStore::new();
        let index = strand_core::encode(&file[..], &mut sink, params, &secrets, 1, |_| {})
            .expect("the scenario check keeps the codec parameters valid");
        // The owner's encoded fragments, by id.
        let mut fragments: BTreeMap<[u8; 32], Vec<u8>> = BTreeMap::new();
        let ids: Vec<Vec<[u8; 32]>> = (0..placements.len() as u64)
            .map(|stripe| index.stripe(stripe).iter().map(|id| *id.as_bytes()).collect())
            .collect();
        for id in ids.iter().flatten() {
            if let Some(bytes) = sink.get(&strand_core::FragmentId::from_bytes(*id)) {
                fragments.insert(*id, bytes);
            }
        }
        let map = StripeMap::from_placement(&placements, &accounts, |stripe, shard| ids[stripe][shard]);
        let mut used: Vec<usize> = placements.iter().flatten().copied().collect();
        used.sort_unstable();
        used.dedup();
        let chain = self.state().params.chain;
        let term_epochs = u32::try_from(scenario.fault_epochs + scenario.liveness_epochs + 8).unwrap_or(u32::MAX);
        let owner_account = AccountId::of(&owner.public_key());
        let record = UploadRecord::from_placement(index, &placements, &accounts)
            .expect("a scenario's placement is within a record's limits");
        // Staging first, as the client does: every provider pulls and
        // holds its fragments under a reservation before the proposals.
        let source = FragmentSource { endpoint: owner_account.0, addresses: Vec::new() };
        let fragment_size = u32::try_from(params.fragment_size()).expect("at most 1 MiB and a tag");
        let now = self.instant();
        for &candidate in &used {
            let provider = accounts[candidate];
            let Some(&index) = self.by_account.get(&provider) else { continue };
            let fragment_ids = map.fragments_of(&provider);
            for batch in fragment_ids.chunks(strand_wire::STAGED_FRAGMENTS_MAX) {
                let stage = Stage {
                    upload: key,
                    fragment_count: fragment_ids.len() as u32,
                    fragment_size,
                    source: source.clone(),
                    fragment_ids: batch.to_vec(),
                };
                if let Err(label) = self.stage(index, owner_account, &stage, &fragments, now) {
                    *self.proposals.outcomes.entry(format!("stage_{label}")).or_default() += 1;
                    self.proposals.uploads_failed += 1;
                    return;
                }
            }
        }
        self.last_upload_ms = self.time_ms;
        let mut signed = Vec::with_capacity(used.len());
        for &candidate in &used {
            let provider = accounts[candidate];
            let fragment_ids = map.fragments_of(&provider);
            let terms = ContractTerms {
                upload: key,
                owner: owner_account,
                provider,
                fragment_root: Digest(strand_proof_of_storage::merkle::root(&fragment_ids)),
                fragment_count: fragment_ids.len() as u32,
                fragment_size,
                data_shards: self.scenario.data_shards,
                parity_shards: self.scenario.parity_shards,
                stripe_count: u64::from(self.scenario.stripes),
                stripes_root: map.root(),
                term_epochs,
                proof_policy: ProofPolicy {
                    challenges_per_epoch: self.scenario.challenges_per_epoch,
                    strikes_max: self.scenario.strikes_max,
                },
            };
            let proposal = Proposal { terms, fragment_ids, source: source.clone(), stripe_map: map.clone() };
            let Some(&index) = self.by_account.get(&provider) else { continue };
            let answer = self.propose(index, &proposal, &fragments);
            *self.proposals.outcomes.entry(answer.map_or_else(|label| label, |_| "accepted").into()).or_default() += 1;
            match answer {
                Ok(signature) => signed.push((proposal.terms, signature)),
                Err(_) => {
                    self.proposals.uploads_failed += 1;
                    return;
                }
            }
        }
        let owner_nonce = signed.len() as u64;
        for (owner_nonce, (terms, provider_signature)) in (1..).zip(signed) {
            let body = Body::OpenContract { terms, provider_signature };
            self.backlog.push_back(Transaction::sign(chain, &owner, owner_nonce, body).to_bytes());
        }
        self.uploads.push(Upload {
            map,
            k: self.scenario.data_shards,
            key,
            owner: owner_account,
            owner_secret: *owner.secret_bytes(),
            owner_nonce,
            record,
        });
    }

    /// Node `index` answers a staging request with its real staging core:
    /// ownership and capacity (shared with its agreements and other
    /// reservations), then pulls the fragments named and holds them.
    fn stage(
        &mut self,
        index: usize,
        owner: AccountId,
        stage: &Stage,
        fragments: &BTreeMap<[u8; 32], Vec<u8>>,
        now: Instant,
    ) -> Result<(), &'static str> {
        if self.nodes[index].health != Health::Up {
            return Err("unreachable");
        }
        let node = &mut self.nodes[index];
        let pull = node.keeper.admit_stage(owner, stage, now).map_err(|refusal| refusal.label())?;
        for id in &pull {
            let bytes = fragments.get(id).filter(|bytes| blake3::hash(bytes).as_bytes() == id).ok_or("fetch")?;
            node.store.insert(*id, bytes.clone());
        }
        node.keeper.staging.held(&(owner, stage.upload), &pull, now);
        Ok(())
    }

    /// Simulated time as the node's cores take it.
    fn instant(&self) -> Instant {
        self.start + Duration::from_millis(self.time_ms)
    }

    /// Node `index` answers `proposal` with its real proposal core, as the
    /// daemon does: registered, terms within its policy, the root and the
    /// stripe map, then capacity and ownership in one step; the fragments
    /// to fetch come from the owner and are checked against their ids;
    /// then the node countersigns. A refusal's label otherwise.
    fn propose(
        &mut self,
        index: usize,
        proposal: &Proposal,
        fragments: &BTreeMap<[u8; 32], Vec<u8>>,
    ) -> Result<Signature, &'static str> {
        let (height, chain) = (self.state().height, self.state().params.chain);
        if self.nodes[index].health != Health::Up {
            return Err("unreachable");
        }
        if !self.state().providers.contains(&self.nodes[index].account) {
            return Err("not_ready");
        }
        let node = &mut self.nodes[index];
        let policy = *node.keeper.policy();
        proposal::check_terms(proposal, &node.account, &policy).map_err(|refusal| refusal.label())?;
        proposal::check_root(proposal).map_err(|refusal| refusal.label())?;
        let admission = node.keeper.admit_proposal(proposal).map_err(|refusal| refusal.label())?;
        for id in &admission.fetch {
            match fragments.get(id) {
                Some(bytes) if blake3::hash(bytes).as_bytes() == id => {
                    node.store.insert(*id, bytes.clone());
                }
                _ => {
                    forget(node, &proposal.terms.id());
                    return Err("fetch");
                }
            }
        }
        node.keeper.signed(&proposal.terms.id(), height);
        Ok(Signature(node.identity.sign(&proposal.terms.signing_message(&chain))))
    }

    /// The sequencer's block from the mempool; the follower applies it and
    /// must reach the same state root.
    fn make_block(&mut self) {
        self.admit_backlog();
        let config = self.sequencer_config;
        let transactions =
            self.mempool.select(self.leader.state(), config.transactions_per_block_max, config.bytes_per_block_max);
        let before = self.state().epoch();
        let (block, receipts) = self.leader.propose(self.time_ms, transactions, &self.sequencer);
        for receipt in &receipts {
            if let strand_contracts::apply::Outcome::Rejected(rejection) = &receipt.outcome {
                let name = format!("{rejection:?}");
                let name = name.split(['(', ' ', '{']).next().unwrap_or_default().to_string();
                *self.rejections.entry(name).or_default() += 1;
            }
        }
        let bytes = block.to_bytes().len() as u64;
        self.load.blocks += 1;
        self.load.transactions += block.transactions.len() as u64;
        self.load.max_transactions_per_block =
            self.load.max_transactions_per_block.max(block.transactions.len() as u64);
        self.load.max_block_bytes = self.load.max_block_bytes.max(bytes);
        self.block_bytes_total += bytes;
        match self.follower.apply(&block) {
            Ok(_) if self.follower.state().root() == self.leader.state().root() => {}
            Ok(_) => self.violation(format!("height {}: the follower's state root differs", block.header.height)),
            Err(error) => {
                self.violation(format!("height {}: the follower refused the block: {error}", block.header.height))
            }
        }
        self.mempool.prune(self.leader.state());
        let epoch = self.state().epoch();
        if epoch != before {
            self.begin_epoch(epoch);
        }
    }

    /// Moves signed transactions into the mempool as the real sequencer
    /// admits them, until it is full (the rest wait, in order).
    fn admit_backlog(&mut self) {
        while let Some(bytes) = self.backlog.pop_front() {
            match self.mempool.admit(self.leader.state(), bytes.clone()) {
                Ok(_) => {}
                Err(AdmissionError::Full { .. }) => {
                    self.backlog.push_front(bytes);
                    return;
                }
                Err(error) => self.violation(format!("the mempool refused a transaction: {error}")),
            }
        }
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 100 {
            self.violations.push(what);
        }
    }

    /// Faults, measurements, invariants, and the epoch's work scheduled.
    fn begin_epoch(&mut self, epoch: u64) {
        let scenario = self.scenario.clone();
        for node in &mut self.nodes {
            if let Health::Down { until } = node.health
                && until <= epoch
            {
                node.health = Health::Up;
            }
        }
        if epoch >= 1 && epoch <= scenario.fault_epochs {
            self.faults(epoch);
        }
        self.settle();
        self.submit_receipts(epoch);
        self.retain(epoch);
        if epoch <= scenario.fault_epochs {
            for _ in 0..scenario.stranger_reads_per_epoch {
                self.stranger_read();
            }
            for _ in 0..scenario.downloads_per_epoch {
                self.download();
            }
            self.credentials(epoch);
        }
        self.observe(epoch);
        let epoch_ms = scenario.block_ms * scenario.epoch_blocks;
        for index in 0..self.nodes.len() {
            if self.nodes[index].health != Health::Up {
                continue;
            }
            let latency = self.rng.random_range(0..epoch_ms / 2);
            self.queue.push(self.time_ms + latency, Event::Submit { node: index, epoch });
        }
        let orders: Vec<(Digest, AccountId, u64)> = self
            .state()
            .repair_orders
            .iter()
            .filter(|(_, order)| !order.reported)
            .map(|(id, order)| {
                let bytes = self.state().contracts.get(&order.contract).map_or(0, |contract| contract.bytes());
                (*id, order.repairer, bytes)
            })
            .collect();
        for (order, repairer, bytes) in orders {
            let Some(&index) = self.by_account.get(&repairer) else { continue };
            if self.nodes[index].health != Health::Up || self.nodes[index].repaired.contains(&order) {
                continue;
            }
            let moved = bytes.saturating_mul(u64::from(scenario.data_shards) + 1);
            let transfer = moved.saturating_mul(1_000) / self.nodes[index].bytes_per_s;
            let latency = self.rng.random_range(0..epoch_ms / 4);
            self.queue.push(self.time_ms + latency + transfer, Event::Repair { node: index, order });
        }
    }

    fn faults(&mut self, epoch: u64) {
        let scenario = self.scenario.clone();
        if epoch == 1 {
            for &index in &scenario.corrupt_disks {
                let node = &mut self.nodes[index as usize];
                for (id, bytes) in node.store.iter_mut() {
                    if self.rng.random_bool(scenario.corrupt_fraction) {
                        let chunk = self.rng.random_range(0..bytes.len() as u64 / 1024);
                        bytes[(chunk * 1024) as usize] ^= 0x5a;
                        node.corrupted.insert(*id, chunk);
                    }
                }
            }
        }
        if epoch == 1
            && let Some((count, fraction)) = scenario.deleting
        {
            for node in self.nodes.iter_mut().take(count as usize) {
                let ids: Vec<[u8; 32]> = node.store.keys().copied().collect();
                for id in ids {
                    if self.rng.random_bool(fraction) {
                        node.store.remove(&id);
                    }
                }
            }
        }
        for node in &mut self.nodes {
            if node.health != Health::Up {
                continue;
            }
            if self.rng.random_bool(scenario.loss_per_epoch()) {
                node.health = Health::Gone { at: epoch };
            } else if self.rng.random_bool(scenario.transient_loss_per_epoch) {
                let length = self.rng.random_range(1..=scenario.transient_epochs_max.max(1));
                node.health = Health::Down { until: epoch + length };
                self.outages += 1;
            }
        }
        if let Some((at, epochs, organisation)) = scenario.partition
            && at == epoch
        {
            for node in self.nodes.iter_mut().filter(|node| node.organisation == organisation) {
                if node.health == Health::Up {
                    node.health = Health::Down { until: epoch + epochs };
                    self.outages += 1;
                }
            }
        }
        if let Some((at, organisation)) = scenario.organisation_lost
            && at == epoch
        {
            for node in self.nodes.iter_mut().filter(|node| node.organisation == organisation) {
                if !matches!(node.health, Health::Gone { .. }) {
                    node.health = Health::Gone { at: epoch };
                }
            }
        }
    }

    /// Every node sees which of its transactions are final (their nonces
    /// used on the ledger); a proof submission that ended without the
    /// epoch recorded is counted (late answers end so).
    fn settle(&mut self) {
        let state = self.leader.state();
        for node in &mut self.nodes {
            let confirmed = state.accounts.get(&node.account).map_or(0, |account| account.nonce);
            for pending in node.submissions.confirm(confirmed) {
                if let Purpose::Proofs(epoch) = pending.purpose
                    && !strand_contracts::proofs::submitted(state, &node.account, epoch)
                {
                    self.gate.proofs_rejected += 1;
                }
            }
        }
    }

    /// Every answering node lets go of what its retention rule releases
    /// (ended, moved away, signed and never opened); no node may have
    /// committed more than its capacity.
    fn retain(&mut self, epoch: u64) {
        let now = self.instant();
        let state = self.leader.state();
        let mut over = Vec::new();
        for (index, node) in self.nodes.iter_mut().enumerate() {
            if node.health != Health::Up {
                continue;
            }
            node.presentations.prune(state);
            for (_, reservation) in node.keeper.staging.expire(now) {
                self.proposals.reservations_expired += 1;
                for fragment in &reservation.held {
                    if !node.keeper.holdings.holds(fragment) {
                        node.store.remove(fragment);
                    }
                }
            }
            for id in retention::releasable(&node.keeper.holdings, state, &node.account) {
                forget(node, &id);
                self.proposals.agreements_released += 1;
            }
            // Against what it registered, not the keeper's own figure.
            let (committed, capacity) = (node.keeper.holdings.committed_bytes(), self.scenario.node_capacity_bytes);
            if committed > capacity {
                over.push(format!("epoch {epoch}: node {index} committed {committed} B of its {capacity} B"));
            }
            let ppm =
                u64::try_from(u128::from(committed) * 1_000_000 / u128::from(capacity.max(1))).unwrap_or(u64::MAX);
            self.proposals.fullest_node_ppm = self.proposals.fullest_node_ppm.max(ppm);
        }
        for what in over {
            self.violation(what);
        }
    }

    /// Whether node `index` answers and holds `fragment`.
    fn serves(&self, index: usize, fragment: &[u8; 32]) -> bool {
        // (Used by repair reads; durability counts from all stores at once.)
        self.nodes[index].health == Health::Up && self.nodes[index].store.contains_key(fragment)
    }

    /// Detection and repair times, durability, and the invariants.
    fn observe(&mut self, epoch: u64) {
        let state = self.leader.state().clone();
        let window = u64::from(self.scenario.strikes_max) + 3;
        for (id, contract) in state.contracts.iter() {
            let holder = self.by_account.get(&contract.holder).copied();
            let within_term = epoch <= contract.last_epoch();
            if let ContractStatus::Lost { at_epoch } = contract.status
                && !self.lost_seen.contains_key(id)
            {
                self.lost_seen.insert(*id, at_epoch);
                self.declared_lost += 1;
                if let Some(Health::Gone { at }) = holder.map(|index| self.nodes[index].health) {
                    self.detection.push(at_epoch.saturating_sub(at));
                }
            }
            let repairs = self.repairs_seen.get(id).copied().unwrap_or(0);
            if contract.repairs > repairs {
                self.repairs_seen.insert(*id, contract.repairs);
                if let Some(lost) = self.lost_seen.remove(id) {
                    self.time_to_repair.push(epoch.saturating_sub(lost));
                }
            }
            // Every lost contract within its term is queued or ordered.
            if matches!(contract.status, ContractStatus::Lost { .. })
                && within_term
                && contract.repair == RepairState::None
            {
                self.violation(format!("epoch {epoch}: lost contract {} is neither queued nor ordered", id.short()));
            }
            // A holder that does not answer is noticed within the window.
            let answering = holder.is_some_and(|index| self.nodes[index].health == Health::Up);
            if answering || !within_term || contract.status != ContractStatus::Active {
                self.unavailable_since.remove(id);
            } else {
                let since = *self.unavailable_since.entry(*id).or_insert(epoch);
                if epoch - since > window && contract.repair == RepairState::None {
                    self.violation(format!(
                        "epoch {epoch}: contract {} silent since epoch {since} and still active, not in repair",
                        id.short()
                    ));
                }
            }
        }
        // Durability: a stripe with fewer than k fragments left on nodes
        // not gone for good is lost; one with fewer than k on nodes that
        // answer now is unavailable this epoch (an outage may end).
        let (mut kept, mut served) = (BTreeSet::new(), BTreeSet::new());
        for node in &self.nodes {
            // A fragment its disk corrupted is as good as gone.
            let good = node.store.keys().filter(|id| !node.corrupted.contains_key(*id)).copied();
            match node.health {
                Health::Up => {
                    let good: Vec<[u8; 32]> = good.collect();
                    served.extend(good.iter().copied());
                    kept.extend(good);
                }
                Health::Down { .. } => kept.extend(good),
                Health::Gone { .. } => {}
            }
        }
        let mut sample = Sample { epoch, ..Sample::default() };
        for (number, upload) in self.uploads.iter().enumerate() {
            for (stripe, shards) in upload.map.stripes.iter().enumerate() {
                let count = |set: &BTreeSet<[u8; 32]>| shards.iter().filter(|(id, _)| set.contains(id)).count();
                let answering = count(&served);
                if count(&kept) < usize::from(upload.k) {
                    self.stripes_lost.insert((number, stripe));
                } else if answering < usize::from(upload.k) {
                    self.stripe_epochs_unavailable += 1;
                    sample.stripes_unavailable += 1;
                } else if answering < shards.len() {
                    sample.stripes_degraded += 1;
                } else {
                    sample.stripes_whole += 1;
                }
            }
        }
        sample.stripes_lost = self.stripes_lost.len() as u64;
        sample.repair_read_bytes = self.repair_read_bytes;
        sample.repair_written_bytes = self.repair_written_bytes;
        for node in &self.nodes {
            match node.health {
                Health::Up => sample.nodes_up += 1,
                Health::Down { .. } => sample.nodes_down += 1,
                Health::Gone { .. } => sample.nodes_gone += 1,
            }
        }
        let counts = state.contracts_by_status();
        (sample.contracts_active, sample.contracts_lost) = (counts[0], counts[1]);
        sample.repair_orders_open = state.repair_orders.len() as u64;
        sample.repair_queued = state.repair_queue.len() as u64;
        self.timeline.push(sample);
    }

    /// Node `index` answers `epoch`'s schedule from the bytes it holds; a
    /// contract with a challenged fragment missing is left out (missed).
    fn submit_proofs(&mut self, index: usize, epoch: u64) {
        if self.nodes[index].health != Health::Up || self.state().epoch() != epoch {
            return;
        }
        let account = self.nodes[index].account;
        if epoch == 1 && self.scenario.deleting.is_some_and(|(count, _)| index < count as usize) {
            let Some((_, scheduled)) = strand_contracts::proofs::schedule(self.state(), &account, epoch) else {
                return;
            };
            self.sample_detection(index, &scheduled);
        }
        // The node's prover core decides; the store here is memory.
        let node = &self.nodes[index];
        let Some(duty) = prover::due(self.leader.state(), &account, &node.keeper.holdings, false) else { return };
        let body = prover::answer_from(&duty, &MemoryStore(&node.store));
        if self.scenario.late.contains(&(index as u32)) && self.rng.random_bool(self.scenario.late_probability) {
            // Computed in time, delivered after the epoch ended.
            let epoch_ms = self.scenario.block_ms * self.scenario.epoch_blocks;
            let next = (self.time_ms / epoch_ms + 1) * epoch_ms + self.scenario.block_ms;
            self.queue.push(next, Event::Late { node: index, body: Box::new(body) });
        } else {
            self.send(index, body);
        }
    }

    /// For a node that deleted part of what it holds, at its first proof
    /// epoch: the chance its challenges miss every deleted chunk, as the
    /// policy states it — `∏ (1 − f)` over its challenges, `f` the deleted
    /// fraction of the bytes a challenge is drawn from (its contract for a
    /// rotation challenge, all its bytes for a byte challenge) — and
    /// whether they did.
    fn sample_detection(&mut self, index: usize, scheduled: &[strand_proof_of_storage::schedule::Scheduled]) {
        use strand_proof_of_storage::schedule::Reason;
        let node = &self.nodes[index];
        let missing = |ids: &[[u8; 32]]| ids.iter().filter(|id| !node.store.contains_key(*id)).count();
        let (mut all, mut gone) = (0usize, 0usize);
        for (_, agreement) in node.keeper.holdings.agreements() {
            all += agreement.fragment_ids.len();
            gone += missing(&agreement.fragment_ids);
        }
        let mut predicted = 1.0;
        let mut clean = true;
        for challenge in scheduled {
            let Some(ids) = node.keeper.holdings.agreement(&Digest(challenge.contract)).map(|held| &held.fragment_ids)
            else {
                continue;
            };
            let fraction = match challenge.reason {
                Reason::Bytes => gone as f64 / all.max(1) as f64,
                Reason::Rotation | Reason::Suspect => missing(ids) as f64 / ids.len().max(1) as f64,
            };
            predicted *= 1.0 - fraction;
            let held = ids.get(challenge.challenge.fragment as usize).is_some_and(|id| node.store.contains_key(id));
            clean &= held;
        }
        self.detection_samples.push((predicted, clean));
    }

    /// Node `index` rebuilds the contract of `order` with the node's repair
    /// core: the plan from the stripe map, k siblings per stripe from
    /// holders that answer, the lost shard rebuilt and checked.
    fn repair(&mut self, index: usize, order_id: &Digest) {
        let state = self.state().clone();
        let Some(order) = state.repair_orders.get(order_id).cloned() else { return };
        let open = !order.reported && state.epoch() <= order.deadline_epoch;
        if !open || self.nodes[index].health != Health::Up || !self.nodes[index].repaired.insert(*order_id) {
            return;
        }
        let Some(contract) = state.contracts.get(&order.contract) else { return };
        let terms = contract.terms.clone();
        let Some(upload) = self.uploads.iter().find(|upload| upload.map.root() == terms.stripes_root) else { return };
        let map = upload.map.clone();
        let Ok(work) = strand_node::core::repair::plan(&terms, &map, &state) else { return };
        // Capacity and ownership as for a proposal, recorded as fetching
        // until every shard is rebuilt (the daemon's order).
        let contract_id = terms.id();
        if let Err(refusal) = self.nodes[index].keeper.admit_repair(&terms, &map.fragments_of(&terms.provider)) {
            *self.proposals.outcomes.entry(format!("repair_{}", refusal.label())).or_default() += 1;
            return;
        }
        let (k, m) = (terms.data_shards, terms.parity_shards);
        let mut rebuilt = Vec::with_capacity(work.len());
        for stripe in &work {
            let mut shards = Vec::with_capacity(usize::from(k));
            for sibling in &stripe.siblings {
                if shards.len() == usize::from(k) {
                    break;
                }
                let Some(&holder) = self.by_account.get(&sibling.holder) else { continue };
                if !self.serves(holder, &sibling.fragment) {
                    continue;
                }
                let requester = self.nodes[index].account;
                if let Err(refusal) = self.gate_read(holder, &requester, order_id, &sibling.fragment) {
                    self.violation(format!(
                        "order {}: a holder's gate refused the order's own repairer: {refusal}",
                        order_id.short()
                    ));
                    continue;
                }
                let (bytes, bad_chunk) = self.serve(holder, &sibling.fragment);
                self.repair_read_bytes += bytes.len() as u64;
                // Verified as it streams (BLAKE3 tree): a bad chunk stops the
                // read there, and the repairer accuses the sibling.
                if *blake3::hash(&bytes).as_bytes() != sibling.fragment {
                    let chunk = bad_chunk.unwrap_or(0);
                    if self.accused.insert((*order_id, sibling.contract)) {
                        self.gate.bad_siblings_reported += 1;
                        let report = Body::ReportBadSibling {
                            order: *order_id,
                            contract: sibling.contract,
                            fragment: sibling.index,
                            chunk: u32::try_from(chunk).unwrap_or(u32::MAX),
                        };
                        self.send(index, report);
                    }
                    continue;
                }
                shards.push((sibling.shard, bytes));
            }
            let Ok(bytes) = strand_node::core::repair::rebuild(k, m, stripe.shard, &shards) else {
                forget(&mut self.nodes[index], &contract_id);
                return;
            };
            if *blake3::hash(&bytes).as_bytes() != stripe.fragment {
                forget(&mut self.nodes[index], &contract_id);
                self.violation(format!("order {}: a rebuilt shard is not the lost fragment", order_id.short()));
                return;
            }
            rebuilt.push((stripe.fragment, bytes));
        }
        let node = &mut self.nodes[index];
        for (id, bytes) in rebuilt {
            self.repair_written_bytes += bytes.len() as u64;
            node.store.insert(id, bytes);
        }
        node.keeper.signed(&contract_id, state.height);
        self.send(index, Body::RecordRepair { order: *order_id, contract: order.contract });
    }

    /// Node `holder`'s gate on a repair read of `fragment` by `requester`
    /// under `order`: the node's real check and per-order budget; a
    /// release is also checked against the ledger (the invariant: no node
    /// releases what the ledger does not allow).
    fn gate_read(
        &mut self,
        holder: usize,
        requester: &AccountId,
        order: &Digest,
        fragment: &[u8; 32],
    ) -> Result<(), &'static str> {
        let state = self.leader.state();
        let node = &mut self.nodes[holder];
        let decided = check_request(requester, order, state, &node.keeper.holdings)
            .map_err(|refusal| refusal.label())
            .and_then(|(_, open)| {
                node.reads.grant(*requester, *order, &open);
                node.reads.decide(requester, fragment, Extent::Whole, &node.keeper.holdings, state).ok_or("over_budget")
            });
        match decided {
            Ok((granted, upload, bytes)) => {
                let epoch = state.epoch();
                if node.receipts.record(epoch, upload, ReadAuthority::Repair(granted), *requester, bytes) {
                    self.gate.receipted_bytes += bytes;
                }
                let allowed = state.repair_orders.get(&granted).is_some_and(|open| {
                    open.repairer == *requester && !open.reported && state.epoch() <= open.deadline_epoch
                });
                if !allowed {
                    self.violation(format!(
                        "a gate released a fragment under order {} it does not allow",
                        granted.short()
                    ));
                }
                self.gate.releases += 1;
                Ok(())
            }
            Err(label) => {
                *self.gate.refusals.entry(label.to_string()).or_default() += 1;
                Err(label)
            }
        }
    }

    /// Every answering node puts its closed epochs' receipts on the ledger,
    /// as the daemon does: a batch for the previous epoch or the current
    /// one; older ones are too late (counted).
    fn submit_receipts(&mut self, epoch: u64) {
        for index in 0..self.nodes.len() {
            if self.nodes[index].health != Health::Up {
                continue;
            }
            for (batch_epoch, receipts) in self.nodes[index].receipts.take_closed(epoch) {
                if batch_epoch + 1 < epoch {
                    self.gate.receipts_too_late_bytes += receipts.iter().map(|receipt| receipt.bytes).sum::<u64>();
                    continue;
                }
                self.send(index, Body::AccessReceipts { epoch: batch_epoch, receipts });
            }
        }
    }

    /// The ledger's record of who read what, in bytes (owners, grantees
    /// and repairers): recent batches and the totals older ones were summed
    /// into.
    fn ledger_receipted_bytes(&self) -> u64 {
        let state = self.leader.state();
        let recent: u64 =
            state.access.iter().flat_map(|(_, batch)| batch.receipts.iter()).map(|receipt| receipt.bytes).sum();
        let summed: u64 = state.access_totals.iter().map(|(_, total)| total.bytes).sum();
        recent + summed
    }

    /// What node `holder` sends for `fragment`: its stored bytes, bad ones
    /// from a liar (one 1 KiB chunk, drawn from the id); and the first bad
    /// chunk, if any.
    fn serve(&self, holder: usize, fragment: &[u8; 32]) -> (Vec<u8>, Option<u64>) {
        let mut bytes = self.nodes[holder].store[fragment].clone();
        if let Some(&chunk) = self.nodes[holder].corrupted.get(fragment) {
            return (bytes, Some(chunk));
        }
        if self.scenario.lying.contains(&(holder as u32)) {
            let drawn = u64::from_le_bytes(fragment[..8].try_into().expect("8 bytes"));
            let chunk = drawn % (bytes.len() as u64 / 1024).max(1);
            bytes[(chunk * 1024) as usize] ^= 0xa5;
            return (bytes, Some(chunk));
        }
        (bytes, None)
    }

    /// An owner reads one of its uploads back with the client's real
    /// decoder (data shards first, parity when one is missing or bad, the
    /// file's hash at the end) from the holders the ledger names now, each
    /// fetch decided by the holder's real gate. The read must succeed
    /// whenever every stripe has k good fragments on answering holders,
    /// and must never return other bytes.
    fn download(&mut self) {
        if self.uploads.is_empty() {
            return;
        }
        let number = self.rng.random_range(0..self.uploads.len());
        let upload = &self.uploads[number];
        let (owner, record) = (upload.owner, upload.record.clone());
        let read = self.read(number, owner, record);
        self.downloads.0 += 1;
        match read.outcome {
            Ok(degraded) => self.downloads.2 += u64::from(degraded),
            Err(error) => {
                self.downloads.1 += 1;
                if read.readable {
                    self.violation(format!(
                        "upload {number}: every stripe had k good fragments answering, the owner's read failed: {error}"
                    ));
                }
            }
        }
        for refusal in read.refusals {
            self.violation(format!("upload {number}: a holder's gate refused the owner: {refusal}"));
        }
    }

    /// `reader` reads upload `number` with the client's real decoder and
    /// `record` (the owner's, or the one a credential sealed): from the
    /// holders the ledger names now, each fetch decided by the holder's
    /// real gate; what the gates released is receipted by the holders'
    /// receipts core.
    fn read(&mut self, number: usize, reader: AccountId, record: UploadRecord) -> Read {
        let upload = &self.uploads[number];
        let placement = Placement::Whole(Box::new(record)).current(self.state(), &upload.key);
        let Placement::Whole(record) = &placement else { unreachable!("a whole placement stays whole") };
        let index = record.index.clone();
        let source = Holders {
            world: self,
            placement,
            reader,
            refusals: Default::default(),
            released: Default::default(),
            speeds: Default::default(),
            elapsed_ms: Default::default(),
            unreachable: Default::default(),
        };
        let mut output = Vec::new();
        let decoded = strand_core::decode(&index, &source, &mut output, None, 1, |_| {});
        let took = *lock(&source.elapsed_ms);
        let refusals = source.refusals.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let released = source.released.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.read_ms.push(took);
        let readable = self.readable(number);
        let outcome = match decoded {
            Ok(report) if blake3::hash(&output) == index.file_hash && report.file_hash_verified => {
                Ok(!report.degraded.is_empty())
            }
            Ok(_) => {
                self.violation(format!("upload {number}: a read returned other bytes than the file"));
                Err("other bytes".to_string())
            }
            Err(error) => Err(error.to_string()),
        };
        let epoch = self.state().epoch();
        for &(holder, upload, authority, bytes) in &released {
            if self.nodes[holder].receipts.record(epoch, upload, authority, reader, bytes) {
                self.gate.receipted_bytes += bytes;
            }
        }
        Read { outcome, readable, refusals, released }
    }

    /// Each fault epoch: the revocations planned for it, a read by every
    /// grantee whose credential is on the ledger and ended at most an epoch
    /// ago, and new grants.
    fn credentials(&mut self, epoch: u64) {
        let revoking: Vec<(usize, Digest)> = self
            .grants
            .iter()
            .filter(|grant| grant.revoke && grant.granted_epoch + 1 == epoch)
            .map(|grant| (grant.upload, grant.credential))
            .collect();
        for (upload, credential) in revoking {
            self.send_as_owner(upload, Body::RevokeCredential { credential });
            self.credential_counts.revoked += 1;
        }
        let (height, window) = (self.state().height, self.scenario.epoch_blocks);
        for index in 0..self.grants.len() {
            let Some(record) = self.state().credentials.get(&self.grants[index].credential) else { continue };
            let ended = record.revoked_at_height.unwrap_or(u64::MAX).min(record.grant.expires_at_height);
            if height <= ended.saturating_add(window) {
                self.grantee_read(index);
            }
        }
        for _ in 0..self.scenario.grants_per_epoch {
            self.grant(epoch);
        }
    }

    /// An owner grants a new researcher its whole upload, with the client's
    /// grant (the upload record sealed to the grantee).
    fn grant(&mut self, epoch: u64) {
        if self.uploads.is_empty() {
            return;
        }
        let upload = self.rng.random_range(0..self.uploads.len());
        let grantee = identity(&mut self.rng);
        let expires = self.state().height + self.scenario.grant_epochs * self.scenario.epoch_blocks;
        let granted = strand_client::credentials::whole_upload_grant(
            &self.uploads[upload].record,
            &grantee.public_key(),
            expires,
            "simulated research",
            &mut self.rng,
        );
        let grant = match granted {
            Ok(grant) => grant,
            Err(error) => return self.violation(format!("upload {upload}: the owner cannot grant it: {error:#}")),
        };
        let bytes = self.send_as_owner(upload, Body::GrantCredential(grant));
        let credential = credential_id(&transaction_hash(&bytes));
        let revoke = self.rng.random_bool(self.scenario.revoke_probability);
        self.grants.push(Grant {
            upload,
            grantee_secret: *grantee.secret_bytes(),
            grantee: AccountId::of(&grantee.public_key()),
            credential,
            granted_epoch: epoch,
            revoke,
        });
        self.credential_counts.granted += 1;
    }

    /// Grantee `index` opens its credential's key material, presents the
    /// credential to every holder the ledger names now (the node's real
    /// presentation check) and reads the upload. While the credential holds
    /// the read must succeed whenever the data is readable; once it is
    /// revoked or expired, no holder may release a fragment.
    fn grantee_read(&mut self, index: usize) {
        let (number, credential, reader) =
            (self.grants[index].upload, self.grants[index].credential, self.grants[index].grantee);
        let grantee = Identity::from_secret_bytes(&self.grants[index].grantee_secret);
        let key = self.uploads[number].key;
        let state = self.leader.state();
        let valid = query::credential_decision(state, &credential, &reader, &key, None, state.height).is_ok();
        let record = match strand_client::credentials::grantee_record(&grantee, state, &credential) {
            Ok(record) => record,
            Err(error) => return self.violation(format!("grantee of {}: {error:#}", credential.short())),
        };
        let providers = Placement::Whole(Box::new(record.clone())).current(state, &key).providers();
        for provider in providers {
            let Some(&holder) = self.by_account.get(&provider) else { continue };
            let node = &mut self.nodes[holder];
            if node.health != Health::Up {
                continue;
            }
            let presented = gate::present(
                &reader,
                &credential,
                &[],
                &node.keeper.holdings,
                state,
                gate::Freshness::CURRENT,
                &mut node.presentations,
            );
            if let (true, Err(refusal)) = (valid, presented) {
                let what = format!("node {holder} refused a valid credential's presentation: {}", refusal.label());
                self.violations.push(what);
            }
        }
        let read = self.read(number, reader, record);
        let counts = &mut self.credential_counts;
        counts.releases += read.released.len() as u64;
        if !valid {
            counts.reads_after_end += 1;
            if read.outcome.is_ok() || !read.released.is_empty() {
                let (released, read) = (read.released.len(), if read.outcome.is_ok() { "read" } else { "not read" });
                self.violation(format!(
                    "credential {}: after it was revoked or expired the upload was {read}, {released} fragments receipted",
                    credential.short()
                ));
            }
            return;
        }
        counts.reads += 1;
        match read.outcome {
            Ok(degraded) => counts.reads_degraded += u64::from(degraded),
            Err(error) => {
                counts.reads_failed += 1;
                if read.readable {
                    self.violation(format!(
                        "credential {}: a readable upload's read failed: {error}",
                        credential.short()
                    ));
                }
            }
        }
        for refusal in read.refusals {
            self.violation(format!(
                "credential {}: a holder refused a valid credential: {refusal}",
                credential.short()
            ));
        }
    }

    /// Signs `body` as the owner of upload `number` (its next nonce) into
    /// the mempool; the transaction's bytes.
    fn send_as_owner(&mut self, number: usize, body: Body) -> Vec<u8> {
        let chain = self.state().params.chain;
        let upload = &mut self.uploads[number];
        upload.owner_nonce += 1;
        let owner = Identity::from_secret_bytes(&upload.owner_secret);
        let bytes = Transaction::sign(chain, &owner, upload.owner_nonce, body).to_bytes();
        self.backlog.push_back(bytes.clone());
        bytes
    }

    /// Whether every stripe of upload `number` has k good fragments (not
    /// corrupted, not from a liar) on answering holders.
    fn readable(&self, number: usize) -> bool {
        let upload = &self.uploads[number];
        upload.map.stripes.iter().all(|shards| {
            let good = shards
                .iter()
                .filter(|(id, _)| {
                    self.nodes.iter().enumerate().any(|(index, node)| {
                        node.health == Health::Up
                            && node.store.contains_key(id)
                            && !node.corrupted.contains_key(id)
                            && !self.scenario.lying.contains(&(index as u32))
                    })
                })
                .count();
            good >= usize::from(upload.k)
        })
    }

    /// A peer with no order asks a node for one of its fragments: a random
    /// key, or another provider naming an open order that is not its own.
    fn stranger_read(&mut self) {
        let holders: Vec<usize> = (0..self.nodes.len())
            .filter(|&index| self.nodes[index].health == Health::Up && !self.nodes[index].keeper.holdings.is_empty())
            .collect();
        if holders.is_empty() {
            return;
        }
        let holder = holders[self.rng.random_range(0..holders.len())];
        let ids: Vec<[u8; 32]> = self.nodes[holder]
            .keeper
            .holdings
            .agreements()
            .flat_map(|(_, agreement)| agreement.fragment_ids.iter().copied())
            .collect();
        let fragment = ids[self.rng.random_range(0..ids.len())];
        let orders: Vec<(Digest, AccountId)> =
            self.state().repair_orders.iter().map(|(id, order)| (*id, order.repairer)).collect();
        let (requester, order) = match orders.get(self.rng.random_range(0..orders.len().max(1))) {
            Some(&(order, repairer)) if self.rng.random_bool(0.5) => {
                let other = self.nodes[self.rng.random_range(0..self.nodes.len())].account;
                if other == repairer {
                    return; // that one may read
                }
                (other, order)
            }
            _ => {
                let mut bytes = [0u8; 32];
                self.rng.fill(&mut bytes[..]);
                (AccountId(bytes), Digest(bytes))
            }
        };
        if self.gate_read(holder, &requester, &order, &fragment).is_ok() {
            self.violation(format!("a stranger read a fragment under order {}", order.short()));
        }
    }

    /// The report, with the end's convergence check.
    fn finish(mut self) -> Report {
        let state = self.leader.state().clone();
        let epoch = state.epoch();
        let mut unconverged = Vec::new();
        let mut unrepairable = 0u64;
        for (id, contract) in state.contracts.iter() {
            if epoch > contract.last_epoch() {
                continue;
            }
            // A contract with a fragment in a lost stripe cannot be rebuilt
            // (fewer than k siblings anywhere): counted, not a violation.
            let upload = self.uploads.iter().position(|upload| upload.map.root() == contract.terms.stripes_root);
            if let Some(number) = upload
                && self.uploads[number]
                    .map
                    .places_of(&contract.terms.provider)
                    .iter()
                    .any(|(stripe, _)| self.stripes_lost.contains(&(number, *stripe as usize)))
            {
                unrepairable += u64::from(contract.status != ContractStatus::Active);
                continue;
            }
            let health = self.by_account.get(&contract.holder).map(|&index| self.nodes[index].health);
            if contract.status != ContractStatus::Active || health != Some(Health::Up) {
                unconverged.push(format!(
                    "{} {:?} {:?} holder {:?}",
                    id.short(),
                    contract.status,
                    contract.repair,
                    health
                ));
            }
        }
        if !unconverged.is_empty() {
            let shown = unconverged.len().min(8);
            self.violation(format!(
                "after {} epochs without faults, {} contracts are not active on a live holder: {}{}",
                self.scenario.liveness_epochs,
                unconverged.len(),
                unconverged[..shown].join("; "),
                if unconverged.len() > shown { "; ..." } else { "" }
            ));
        }
        // Who read what: every read the gates released (owners', grantees'
        // and repairers') is on the ledger as a receipt, except batches still pending at the end and
        // those too late (a holder down past the next epoch).
        // Pending: the current epoch's batches, and a down node's (it
        // submits when back, or they turn too late); an answering node's
        // closed epochs must be on the ledger or in flight.
        let pending: u64 = self
            .nodes
            .iter()
            .flat_map(|node| {
                let down = node.health != Health::Up;
                node.receipts.snapshot().into_iter().filter(move |(batch_epoch, _)| down || *batch_epoch >= epoch)
            })
            .flat_map(|(_, receipts)| receipts)
            .map(|receipt| receipt.bytes)
            .sum();
        let in_flight: u64 = self
            .backlog
            .iter()
            .map(Vec::as_slice)
            .chain(self.mempool.transactions())
            .filter_map(|bytes| Transaction::from_bytes(bytes).ok())
            .filter_map(|transaction| match transaction.body {
                Body::AccessReceipts { receipts, .. } => {
                    Some(receipts.iter().map(|receipt| receipt.bytes).sum::<u64>())
                }
                _ => None,
            })
            .sum();
        let on_ledger = self.ledger_receipted_bytes();
        let expected = self.gate.receipted_bytes - self.gate.receipts_too_late_bytes - pending - in_flight;
        if on_ledger != expected {
            self.violation(format!(
                "reads on the ledger: {on_ledger} B, released and receipted: {expected} B \
                 ({} B released, {} B too late, {pending} B pending, {in_flight} B in flight)",
                self.gate.receipted_bytes, self.gate.receipts_too_late_bytes
            ));
        }
        // No capacity leaks: every agreement an answering node keeps is on
        // the ledger, or signed recently enough that its owner may still
        // open it (its retention releases it otherwise).
        let window = retention::UNOPENED_BLOCKS_MAX + self.scenario.epoch_blocks;
        for (index, node) in self.nodes.iter().enumerate().filter(|(_, node)| node.health == Health::Up) {
            let leaked = node
                .keeper
                .holdings
                .agreements()
                .filter(|(id, agreement)| {
                    !state.contracts.contains(id)
                        && match agreement.state {
                            AgreementState::Signed { at_height } => at_height + window < state.height,
                            AgreementState::Fetching => true,
                        }
                })
                .count();
            if leaked > 0 {
                self.violations.push(format!("node {index} keeps {leaked} agreements no contract on the ledger backs"));
            }
            let idle_ms = self.time_ms.saturating_sub(self.last_upload_ms);
            let expired_by_now = u128::from(idle_ms)
                > strand_node::core::staging::STAGING_IDLE_MAX.as_millis()
                    + u128::from(self.scenario.block_ms * self.scenario.epoch_blocks);
            if expired_by_now && !node.keeper.staging.is_empty() {
                self.violations.push(format!(
                    "node {index} keeps {} staging reservations idle since the last upload",
                    node.keeper.staging.len()
                ));
            }
        }
        self.load.mean_block_bytes = self.block_bytes_total / self.load.blocks.max(1);
        self.load.state_bytes = state.to_snapshot().len() as u64;
        let stripes = self.uploads.len() as u64 * u64::from(self.scenario.stripes);
        let lost_uploads: BTreeSet<usize> = self.stripes_lost.iter().map(|(upload, _)| *upload).collect();
        Report {
            scenario: self.scenario.name.clone(),
            engine: "ledger".into(),
            seed: self.seed,
            nodes: u64::from(self.scenario.nodes),
            epochs: epoch,
            contracts: state.contracts.len() as u64,
            stripes,
            stored_bytes: stripes * u64::from(self.scenario.data_shards) * u64::from(self.scenario.fragment_bytes),
            nodes_lost: self.nodes.iter().filter(|node| matches!(node.health, Health::Gone { .. })).count() as u64,
            outages: self.outages,
            stripes_lost: self.stripes_lost.len() as u64,
            uploads_lost: lost_uploads.len() as u64,
            stripe_epochs_unavailable: self.stripe_epochs_unavailable,
            contracts_declared_lost: self.declared_lost,
            repairs: self.repairs_seen.values().map(|r| u64::from(*r)).sum(),
            contracts_unrepairable: unrepairable,
            repair_read_bytes: self.repair_read_bytes,
            repair_written_bytes: self.repair_written_bytes,
            detection_epochs: Distribution::of(&mut self.detection),
            time_to_repair_epochs: Distribution::of(&mut self.time_to_repair),
            ledger: self.load,
            ledger_rejections: self.rejections,
            detection_check: DetectionCheck::of(&self.detection_samples),
            downloads: self.downloads.0,
            downloads_failed: self.downloads.1,
            downloads_degraded: self.downloads.2,
            proposals: self.proposals,
            credentials: self.credential_counts,
            read_ms: Distribution::of(&mut self.read_ms),
            gate: GateReport {
                releases: self.gate.releases,
                refusals: self.gate.refusals,
                bad_siblings_reported: self.gate.bad_siblings_reported,
                late_answers: self.gate.late_answers,
                proofs_rejected: self.gate.proofs_rejected,
                receipted_bytes: self.gate.receipted_bytes,
                receipts_too_late_bytes: self.gate.receipts_too_late_bytes,
            },
            violations: self.violations,
            timeline: self.timeline,
        }
    }
}

/// The holders of an upload, as the client's decoder fetches from them:
/// the holder the ledger names now, its health, its real gate, its bytes.
struct Holders<'a> {
    world: &'a World,
    placement: Placement,
    reader: AccountId,
    /// Gate refusals of the reader.
    refusals: std::sync::Mutex<Vec<String>>,
    /// What the gates released, to be receipted.
    released: std::sync::Mutex<Vec<Release>>,
    /// The client's per-download provider speeds.
    speeds: std::sync::Mutex<strand_client::speed::Speeds>,
    /// Simulated milliseconds the read has taken so far.
    elapsed_ms: std::sync::Mutex<u64>,
    /// Providers that did not answer (the client's `unreachable`).
    unreachable: std::sync::Mutex<BTreeSet<AccountId>>,
}

/// A read's outcome: whether it was rebuilt from parity, or why it failed;
/// whether the data was readable; the gates' refusals and releases.
struct Read {
    outcome: Result<bool, String>,
    readable: bool,
    refusals: Vec<String>,
    released: Vec<Release>,
}

impl Holders<'_> {
    /// What the holder of `location` answers, and after how many simulated
    /// milliseconds: its latency (and its bandwidth for the bytes), or the
    /// client's connect timeout when it does not answer.
    fn answer(
        &self,
        location: strand_core::io::FragmentLocation,
        id: &strand_core::FragmentId,
        length_max: usize,
        into: &mut Vec<u8>,
    ) -> (std::io::Result<bool>, u64) {
        let Some(provider) = self.placement.provider_of(location.stripe, location.shard) else { return (Ok(false), 0) };
        let unreachable = || std::io::Error::other(format!("provider {} does not answer", provider.short()));
        // One that did not answer is not asked again in this download.
        if lock(&self.unreachable).contains(&provider) {
            return (Err(unreachable()), 0);
        }
        let Some(&holder) = self.world.by_account.get(&provider) else {
            return (Err(unreachable()), CONNECT_TIMEOUT_MS);
        };
        let node = &self.world.nodes[holder];
        if node.health != Health::Up {
            lock(&self.unreachable).insert(provider);
            return (Err(unreachable()), CONNECT_TIMEOUT_MS);
        }
        let latency = node.latency_ms;
        let fragment = *id.as_bytes();
        let state = self.world.leader.state();
        let decided = gate::decide_get(
            &self.reader,
            &fragment,
            &node.keeper.holdings,
            state,
            gate::Freshness::CURRENT,
            &node.presentations,
        );
        let credential = match decided {
            Ok(credential) => credential,
            // A node that let the fragment go says so, as iroh-blobs does.
            Err(gate::Refusal::UnknownFragment) => return (Ok(false), latency),
            Err(refusal) => {
                let mut refusals = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                refusals.push(format!("node {holder}: {}", refusal.label()));
                return (Err(std::io::Error::other(refusal.label())), latency);
            }
        };
        if !node.store.contains_key(&fragment) {
            return (Ok(false), latency);
        }
        let (bytes, _) = self.world.serve(holder, &fragment);
        if bytes.len() > length_max {
            return (Ok(false), latency);
        }
        if let Some((upload, authority, size)) =
            gate::receipt_of(&self.reader, &fragment, credential, &node.keeper.holdings)
        {
            let mut released = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            released.push((holder, upload, authority, size));
        }
        let transfer = bytes.len() as u64 * 1_000 / node.bytes_per_s.max(1);
        *into = bytes;
        (Ok(true), latency + transfer)
    }

    /// The reader's simulated time now.
    fn now(&self) -> Instant {
        self.world.instant() + Duration::from_millis(*lock(&self.elapsed_ms))
    }

    fn provider(&self, location: strand_core::io::FragmentLocation) -> AccountId {
        self.placement.provider_of(location.stripe, location.shard).unwrap_or(AccountId([0; 32]))
    }
}

/// The client's download plan over simulated links: a fetch waits no longer
/// than the client's hedge (`Speeds::hedge_after`), a provider that stalls
/// is passed over (`Speeds::stalled`), siblings are asked fastest first
/// (`Speeds::expected_seconds`) and raced `needed` at a time with one more
/// started whenever the hedge passes without an arrival, as
/// `NetworkSource` does. Time adds up fetch after fetch (a one-thread
/// decoder).
impl strand_core::io::FragmentSource for Holders<'_> {
    fn fetch(
        &self,
        location: strand_core::io::FragmentLocation,
        id: &strand_core::FragmentId,
        length_max: usize,
        into: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        let provider = self.provider(location);
        let now = self.now();
        if lock(&self.speeds).is_stalled(&provider, now) {
            return Err(std::io::Error::other("passed over: stalled"));
        }
        let hedge = lock(&self.speeds).hedge_after().as_millis() as u64;
        let (outcome, took) = self.answer(location, id, length_max, into);
        let mut speeds = lock(&self.speeds);
        if took > hedge {
            *lock(&self.elapsed_ms) += hedge;
            speeds.stalled(provider, now + Duration::from_millis(hedge));
            return Err(std::io::Error::other("stalled"));
        }
        *lock(&self.elapsed_ms) += took;
        if matches!(outcome, Ok(true)) {
            speeds.arrived(provider, Duration::from_millis(took));
        }
        outcome
    }

    fn fetch_any(
        &self,
        candidates: &[(strand_core::io::FragmentLocation, strand_core::FragmentId)],
        needed: usize,
        length_max: usize,
        buffers: &mut [Vec<u8>],
    ) -> Vec<Option<std::io::Result<bool>>> {
        let mut outcomes: Vec<Option<std::io::Result<bool>>> = candidates.iter().map(|_| None).collect();
        // In flight: (finish, candidate, outcome, took).
        let mut running: Vec<(u64, usize, std::io::Result<bool>, u64)> = Vec::new();
        let (mut now, mut next, mut arrived) = (0u64, 0usize, 0usize);
        let mut start = |index: usize, at: u64, running: &mut Vec<(u64, usize, std::io::Result<bool>, u64)>| {
            let (location, id) = candidates[index];
            let (outcome, took) = self.answer(location, &id, length_max, &mut buffers[index]);
            running.push((at + took, index, outcome, took));
        };
        while arrived < needed {
            while running.len() < needed - arrived && next < candidates.len() {
                start(next, now, &mut running);
                next += 1;
            }
            let Some(first) = (0..running.len()).min_by_key(|&at| (running[at].0, running[at].1)) else { break };
            let hedge = lock(&self.speeds).hedge_after().as_millis() as u64;
            if next < candidates.len() && now + hedge < running[first].0 {
                // Slow: ask one more, keep waiting for the others too.
                now += hedge;
                start(next, now, &mut running);
                next += 1;
                continue;
            }
            let (finish, index, outcome, took) = running.swap_remove(first);
            now = finish;
            if matches!(outcome, Ok(true)) {
                arrived += 1;
                lock(&self.speeds).arrived(self.provider(candidates[index].0), Duration::from_millis(took));
            }
            outcomes[index] = Some(outcome);
        }
        *lock(&self.elapsed_ms) += now;
        outcomes
    }

    fn rank(&self, candidates: &mut [(strand_core::io::FragmentLocation, strand_core::FragmentId)]) {
        let (now, speeds) = (self.now(), lock(&self.speeds).clone());
        candidates.sort_by(|(left, _), (right, _)| {
            let (left, right) = (self.provider(*left), self.provider(*right));
            speeds.expected_seconds(&left, now).total_cmp(&speeds.expected_seconds(&right, now))
        });
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long the client waits to connect to a provider that does not
/// answer (`download.rs`).
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// A node's fragments in memory, as its prover reads them.
struct MemoryStore<'a>(&'a BTreeMap<[u8; 32], Vec<u8>>);

impl prover::FragmentStore for MemoryStore<'_> {
    fn prove_chunk(&self, id: &[u8; 32], _size: u64, chunk: u64) -> Option<ChunkProof> {
        strand_proof_of_storage::chunk::prove_from_fragment(self.0.get(id)?, chunk).ok()
    }
}

/// The node lets go of an agreement, and of the bytes no other agreement
/// of its holds (the daemon's `forget`).
fn forget(node: &mut Node, contract: &Digest) {
    let Some(agreement) = node.keeper.holdings.remove(contract) else { return };
    for fragment in &agreement.fragment_ids {
        if !node.keeper.holdings.holds(fragment) {
            node.store.remove(fragment);
            node.corrupted.remove(fragment);
        }
    }
}

/// A key drawn from the run's RNG.
fn identity(rng: &mut StdRng) -> Identity {
    let mut secret = [0u8; 32];
    rng.fill(&mut secret[..]);
    Identity::from_secret_bytes(&secret)
}
