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

mod duties;
mod reads;
mod uploads;

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
            validators: ValidatorSet::sequencer(AccountId::of(&sequencer.public_key())),
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

    /// Simulated time as the node's cores take it.
    fn instant(&self) -> Instant {
        self.start + Duration::from_millis(self.time_ms)
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
