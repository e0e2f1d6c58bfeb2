//! The model engine: durability and repair cost at the scale of a national
//! network — 10,000s of nodes, 100,000s of uploads, years of epochs.
//!
//! Fragments are ids and sizes; a node's life is drawn once (it leaves for
//! good in each epoch with the scenario's probability, so lifetimes are
//! geometric); events run in `(epoch, sequence)` order from one seeded RNG.
//! Uploads are placed by the client's real placement (over a random sample
//! of `3 × (k+m)` live nodes, as a client ranks the providers it is shown).
//! The ledger is not run; its decisions enter as the delays the ledger
//! engine measures ([`crate::world`]): a silent holder's contracts are
//! declared lost `strikes_max` epochs after it left, and repaired one epoch
//! after that (the order, then the move). Repair is the ledger's (every
//! lost contract rebuilt onto a live node holding nothing of the upload:
//! k sibling fragments read per fragment written; a contract with a
//! fragment of a stripe below k cannot be, as in the node), lazy (a stripe rebuilt
//! whole when `repair_threshold` fragments are left) or none.
//!
//! Cost: memory is linear in fragments and nodes (about 40 bytes per
//! fragment); time is linear in uploads (placement) plus, per node lost,
//! its fragments; per epoch O(1) (a timeline row from running counters).

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use strand_client::placement::{Candidate, place};
use strand_contracts::AccountId;

use crate::queue::Queue;
use crate::report::{DetectionCheck, Distribution, GateReport, LedgerLoad, Report, Sample};
use crate::scenario::{RepairPolicy, Scenario};

/// Candidates a client ranks per upload, as a multiple of k+m.
const CANDIDATES_PER_WIDTH: usize = 3;
/// Tries to draw a new holder holding nothing of the upload.
const HOLDER_DRAWS_MAX: usize = 64;

#[derive(Debug)]
enum Event {
    /// The node leaves for good.
    Leave(u32),
    /// A contract's loss is on the ledger (eager repair: ordered).
    Declared(u32),
    /// An ordered contract is rebuilt and moved.
    Repair(u32),
    /// A stripe at its threshold is rebuilt whole (lazy repair).
    RepairStripe(u32),
    /// A new upload arrives (load over time).
    Upload,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Kept,
    /// Its holder left at `since`; not yet on the ledger.
    Lost {
        since: u64,
    },
    /// Declared lost (at `declared`) and ordered.
    Ordered {
        declared: u64,
    },
}

struct Node {
    alive: bool,
    organisation: u32,
    contracts: Vec<u32>,
}

struct Contract {
    upload: u32,
    holder: u32,
    /// Stripes it holds a fragment of (one fragment per stripe).
    stripes: Vec<u32>,
    state: Held,
}

struct Stripe {
    upload: u32,
    /// Fragments on live holders.
    alive: u16,
    lost: bool,
    /// A lazy rebuild is scheduled.
    pending: bool,
}

struct Upload {
    contracts: Vec<u32>,
}

/// A model run in progress.
pub struct Model {
    scenario: Scenario,
    seed: u64,
    rng: StdRng,
    nodes: Vec<Node>,
    /// Live node ids, for uniform draws (`slot[node]` is its place here).
    live: Vec<u32>,
    slot: Vec<u32>,
    contracts: Vec<Contract>,
    stripes: Vec<Stripe>,
    uploads: Vec<Upload>,
    queue: Queue<Event>,
    loss_per_epoch: f64,
    last_fault_epoch: u64,
    /// Stripes by fragments alive.
    by_alive: Vec<u64>,
    stripes_lost: u64,
    uploads_lost: BTreeSet<u32>,
    contracts_lost_now: u64,
    orders_open: u64,
    nodes_lost: u64,
    declared: u64,
    repairs: u64,
    read_bytes: u64,
    written_bytes: u64,
    detection: Vec<u64>,
    time_to_repair: Vec<u64>,
    timeline: Vec<Sample>,
    downloads: u64,
    downloads_failed: u64,
    downloads_degraded: u64,
}

impl Model {
    /// The network and its uploads, placed.
    pub fn new(scenario: &Scenario, seed: u64) -> Self {
        let width = usize::from(scenario.data_shards + scenario.parity_shards);
        let mut model = Self {
            scenario: scenario.clone(),
            seed,
            rng: StdRng::seed_from_u64(seed),
            nodes: Vec::with_capacity(scenario.nodes as usize),
            live: Vec::with_capacity(scenario.nodes as usize),
            slot: Vec::with_capacity(scenario.nodes as usize),
            contracts: Vec::new(),
            stripes: Vec::new(),
            uploads: Vec::with_capacity(scenario.uploads as usize),
            queue: Queue::default(),
            loss_per_epoch: scenario.loss_per_epoch(),
            last_fault_epoch: scenario.fault_epochs,
            by_alive: vec![0; width + 1],
            stripes_lost: 0,
            uploads_lost: BTreeSet::new(),
            contracts_lost_now: 0,
            orders_open: 0,
            nodes_lost: 0,
            declared: 0,
            repairs: 0,
            read_bytes: 0,
            written_bytes: 0,
            detection: Vec::new(),
            time_to_repair: Vec::new(),
            timeline: Vec::new(),
            downloads: 0,
            downloads_failed: 0,
            downloads_degraded: 0,
        };
        for index in 0..scenario.nodes {
            model.join(index % scenario.organisations, 0);
        }
        match scenario.uploads_over_epochs {
            // Load over time: uploads arrive at uniformly drawn epochs.
            Some(epochs) if epochs > 0 => {
                for _ in 0..scenario.uploads {
                    let at = model.rng.random_range(1..=epochs);
                    model.queue.push(at, Event::Upload);
                }
            }
            _ => {
                for _ in 0..scenario.uploads {
                    model.upload();
                }
            }
        }
        model
    }

    /// Runs every epoch; the report.
    pub fn run(mut self) -> Report {
        let epochs = self.scenario.fault_epochs + self.scenario.liveness_epochs;
        for epoch in 1..=epochs {
            while self.queue.peek_time().is_some_and(|time| time <= epoch) {
                let Some((_, event)) = self.queue.pop() else { break };
                match event {
                    Event::Leave(node) => self.leave(node, epoch),
                    Event::Declared(contract) => self.declare(contract, epoch),
                    Event::Repair(contract) => self.repair_contract(contract, epoch),
                    Event::RepairStripe(stripe) => self.repair_stripe(stripe, epoch),
                    Event::Upload => self.upload(),
                }
            }
            self.downloads(epoch);
            self.sample(epoch);
        }
        self.finish(epochs)
    }

    /// A node joins at `epoch`; when it will leave is drawn now.
    fn join(&mut self, organisation: u32, epoch: u64) {
        let id = self.nodes.len() as u32;
        self.nodes.push(Node { alive: true, organisation, contracts: Vec::new() });
        self.slot.push(self.live.len() as u32);
        self.live.push(id);
        let p = self.loss_per_epoch;
        if p > 0.0 {
            // Geometric: the first epoch after `epoch` with a loss.
            let draw: f64 = self.rng.random_range(f64::MIN_POSITIVE..1.0);
            let after = if p >= 1.0 { 1 } else { (draw.ln() / (1.0 - p).ln()).floor() as u64 + 1 };
            let at = epoch.saturating_add(after);
            if at <= self.last_fault_epoch {
                self.queue.push(at, Event::Leave(id));
            }
        }
    }

    /// One upload placed: its stripes and one contract per chosen node.
    fn upload(&mut self) {
        let scenario = &self.scenario;
        let (k, m) = (scenario.data_shards, scenario.parity_shards);
        let width = usize::from(k + m);
        let stripes = match scenario.stripes_max {
            Some(max) if max > scenario.stripes => self.rng.random_range(scenario.stripes..=max),
            _ => scenario.stripes,
        };
        let sample = (CANDIDATES_PER_WIDTH * width).min(self.live.len());
        let mut chosen: Vec<u32> = Vec::with_capacity(sample);
        while chosen.len() < sample {
            let node = self.live[self.rng.random_range(0..self.live.len())];
            if !chosen.contains(&node) {
                chosen.push(node);
            }
        }
        let candidates: Vec<Candidate> = chosen
            .iter()
            .map(|&node| {
                let mut account = [0u8; 32];
                account[..4].copy_from_slice(&node.to_le_bytes());
                Candidate {
                    account: AccountId(account),
                    organisation: format!("organisation-{}", self.nodes[node as usize].organisation),
                    site: format!("site-{node}"),
                    free_bytes: u64::MAX,
                }
            })
            .collect();
        let mut seed = [0u8; 32];
        self.rng.fill(&mut seed[..]);
        let fragment_bytes = u64::from(scenario.fragment_bytes);
        let Ok(placements) = place(u64::from(stripes), width, &candidates, fragment_bytes, &seed) else {
            return; // fewer live nodes than k+m: the scenario check prevents it at the start
        };
        let upload = self.uploads.len() as u32;
        let mut contracts: Vec<u32> = Vec::new();
        for placement in placements {
            let stripe = self.stripes.len() as u32;
            self.stripes.push(Stripe { upload, alive: width as u16, lost: false, pending: false });
            self.by_alive[width] += 1;
            for index in placement {
                let node = chosen[index];
                let found =
                    contracts.iter().copied().find(|&contract| self.contracts[contract as usize].holder == node);
                let contract = found.unwrap_or_else(|| {
                    let id = self.contracts.len() as u32;
                    self.contracts.push(Contract { upload, holder: node, stripes: Vec::new(), state: Held::Kept });
                    self.nodes[node as usize].contracts.push(id);
                    contracts.push(id);
                    id
                });
                self.contracts[contract as usize].stripes.push(stripe);
            }
        }
        self.uploads.push(Upload { contracts });
    }

    fn set_alive(&mut self, stripe: u32, alive: u16) {
        let entry = &mut self.stripes[stripe as usize];
        self.by_alive[usize::from(entry.alive)] -= 1;
        self.by_alive[usize::from(alive)] += 1;
        entry.alive = alive;
    }

    /// A node leaves for good: its fragments are gone.
    fn leave(&mut self, node: u32, epoch: u64) {
        if !self.nodes[node as usize].alive {
            return;
        }
        self.nodes[node as usize].alive = false;
        self.nodes_lost += 1;
        let at = self.slot[node as usize] as usize;
        let last = self.live.pop().expect("a live node leaves");
        if last != node {
            self.live[at] = last;
            self.slot[last as usize] = at as u32;
        }
        if self.scenario.replace_lost_nodes {
            self.join(self.nodes[node as usize].organisation, epoch);
        }
        let k = self.scenario.data_shards;
        let held = std::mem::take(&mut self.nodes[node as usize].contracts);
        for contract in held {
            let entry = &self.contracts[contract as usize];
            if entry.holder != node || entry.state != Held::Kept {
                continue;
            }
            self.contracts[contract as usize].state = Held::Lost { since: epoch };
            self.contracts_lost_now += 1;
            for position in 0..self.contracts[contract as usize].stripes.len() {
                let stripe = self.contracts[contract as usize].stripes[position];
                let alive = self.stripes[stripe as usize].alive - 1;
                self.set_alive(stripe, alive);
                let entry = &mut self.stripes[stripe as usize];
                if alive < k && !entry.lost {
                    entry.lost = true;
                    self.stripes_lost += 1;
                    self.uploads_lost.insert(entry.upload);
                }
                if self.scenario.repair == RepairPolicy::Lazy
                    && !entry.lost
                    && !entry.pending
                    && Some(alive) <= self.scenario.repair_threshold
                {
                    entry.pending = true;
                    let detected = epoch + u64::from(self.scenario.strikes_max);
                    self.queue.push(detected, Event::RepairStripe(stripe));
                }
            }
            if self.scenario.repair == RepairPolicy::Eager {
                self.queue.push(epoch + u64::from(self.scenario.strikes_max), Event::Declared(contract));
            }
        }
    }

    /// The ledger declares the contract lost and orders its repair.
    fn declare(&mut self, contract: u32, epoch: u64) {
        let Held::Lost { since } = self.contracts[contract as usize].state else { return };
        self.contracts[contract as usize].state = Held::Ordered { declared: epoch };
        self.declared += 1;
        self.orders_open += 1;
        self.detection.push(epoch - since);
        self.queue.push(epoch + 1, Event::Repair(contract));
    }

    /// A live node holding nothing of `upload` (the ledger's first
    /// choices), else any live node not `except`.
    fn new_holder(&mut self, upload: u32, except: u32) -> Option<u32> {
        let holders: Vec<u32> = self.uploads[upload as usize]
            .contracts
            .iter()
            .map(|&contract| self.contracts[contract as usize].holder)
            .collect();
        let mut fallback = None;
        for _ in 0..HOLDER_DRAWS_MAX {
            let node = *self.live.get(self.rng.random_range(0..self.live.len().max(1)))?;
            if !holders.contains(&node) {
                return Some(node);
            }
            if node != except {
                fallback.get_or_insert(node);
            }
        }
        fallback
    }

    /// Rebuilds an ordered contract onto a new holder: per stripe still
    /// readable, k fragments read and one written.
    fn repair_contract(&mut self, contract: u32, epoch: u64) {
        let Held::Ordered { declared } = self.contracts[contract as usize].state else { return };
        let (upload, old) = (self.contracts[contract as usize].upload, self.contracts[contract as usize].holder);
        let Some(holder) = self.new_holder(upload, old) else {
            self.queue.push(epoch + 1, Event::Repair(contract));
            return;
        };
        let fragment = u64::from(self.scenario.fragment_bytes);
        let k = u64::from(self.scenario.data_shards);
        let stripes = self.contracts[contract as usize].stripes.clone();
        if stripes.iter().any(|&stripe| self.stripes[stripe as usize].lost) {
            // As the node's repair core: a stripe below k cannot be rebuilt,
            // so neither can the contract (its terms commit to every
            // fragment); it stays lost, counted as unrepairable.
            return;
        }
        for &stripe in &stripes {
            self.read_bytes += k * fragment;
            self.written_bytes += fragment;
            let alive = self.stripes[stripe as usize].alive + 1;
            self.set_alive(stripe, alive);
        }
        let entry = &mut self.contracts[contract as usize];
        entry.holder = holder;
        entry.state = Held::Kept;
        self.nodes[holder as usize].contracts.push(contract);
        self.contracts_lost_now -= 1;
        self.orders_open -= 1;
        self.repairs += 1;
        self.time_to_repair.push(epoch - declared);
    }

    /// Lazy repair: the stripe (one per upload) rebuilt whole — k fragments
    /// read, every missing one written to a new holder.
    fn repair_stripe(&mut self, stripe: u32, epoch: u64) {
        self.stripes[stripe as usize].pending = false;
        if self.stripes[stripe as usize].lost {
            return;
        }
        let upload = self.stripes[stripe as usize].upload;
        let missing: Vec<u32> = self.uploads[upload as usize]
            .contracts
            .iter()
            .copied()
            .filter(|&contract| self.contracts[contract as usize].state != Held::Kept)
            .collect();
        let fragment = u64::from(self.scenario.fragment_bytes);
        self.read_bytes += u64::from(self.scenario.data_shards) * fragment;
        for contract in missing {
            let old = self.contracts[contract as usize].holder;
            let Some(holder) = self.new_holder(upload, old) else { continue };
            let since = match self.contracts[contract as usize].state {
                Held::Lost { since } | Held::Ordered { declared: since } => since,
                Held::Kept => epoch,
            };
            let entry = &mut self.contracts[contract as usize];
            entry.holder = holder;
            entry.state = Held::Kept;
            self.nodes[holder as usize].contracts.push(contract);
            self.contracts_lost_now -= 1;
            self.written_bytes += fragment;
            self.repairs += 1;
            self.time_to_repair.push(epoch - since);
            let alive = self.stripes[stripe as usize].alive + 1;
            self.set_alive(stripe, alive);
        }
    }

    /// This epoch's reads: random uploads, each readable if every stripe
    /// has k fragments on live holders.
    fn downloads(&mut self, epoch: u64) {
        if self.uploads.is_empty() || epoch > self.scenario.fault_epochs {
            return;
        }
        let k = self.scenario.data_shards;
        for _ in 0..self.scenario.downloads_per_epoch {
            let upload = self.rng.random_range(0..self.uploads.len());
            self.downloads += 1;
            let stripes: BTreeSet<u32> = self.uploads[upload]
                .contracts
                .iter()
                .flat_map(|&contract| self.contracts[contract as usize].stripes.iter().copied())
                .collect();
            let width = self.scenario.data_shards + self.scenario.parity_shards;
            let least = stripes.iter().map(|&stripe| self.stripes[stripe as usize].alive).min().unwrap_or(width);
            if least < k {
                self.downloads_failed += 1;
            } else if least < width {
                self.downloads_degraded += 1;
            }
        }
    }

    fn sample(&mut self, epoch: u64) {
        let (k, width) = (usize::from(self.scenario.data_shards), self.by_alive.len() - 1);
        let live = self.live.len() as u64;
        let degraded: u64 = self.by_alive[k..width].iter().sum();
        self.timeline.push(Sample {
            epoch,
            nodes_up: live,
            nodes_down: 0,
            nodes_gone: self.nodes_lost,
            contracts_active: self.contracts.len() as u64 - self.contracts_lost_now,
            contracts_lost: self.contracts_lost_now,
            repair_orders_open: self.orders_open,
            repair_queued: 0,
            stripes_whole: self.by_alive[width],
            stripes_degraded: degraded,
            stripes_unavailable: 0,
            stripes_lost: self.stripes_lost,
            repair_read_bytes: self.read_bytes,
            repair_written_bytes: self.written_bytes,
        });
    }

    fn finish(mut self, epochs: u64) -> Report {
        let mut violations = Vec::new();
        // Every contract of a readable stripe is held again at the end of
        // the liveness phase (eager repair); counters agree with a recount.
        if self.scenario.repair == RepairPolicy::Eager && self.scenario.liveness_epochs > 0 {
            let waiting = self
                .contracts
                .iter()
                .filter(|contract| {
                    contract.state != Held::Kept
                        && contract.stripes.iter().all(|&stripe| !self.stripes[stripe as usize].lost)
                })
                .count();
            if waiting > 0 {
                violations.push(format!(
                    "after {} epochs without faults, {waiting} contracts are not held by a live node",
                    self.scenario.liveness_epochs
                ));
            }
        }
        let unrepairable = self
            .contracts
            .iter()
            .filter(|contract| {
                contract.state != Held::Kept
                    && contract.stripes.iter().any(|&stripe| self.stripes[stripe as usize].lost)
            })
            .count() as u64;
        let recount = self.stripes.iter().filter(|stripe| stripe.lost).count() as u64;
        if recount != self.stripes_lost {
            violations.push(format!("lost stripes counted {} but {recount} are", self.stripes_lost));
        }
        let k = u64::from(self.scenario.data_shards);
        Report {
            scenario: self.scenario.name.clone(),
            engine: "model".into(),
            seed: self.seed,
            nodes: u64::from(self.scenario.nodes),
            epochs,
            contracts: self.contracts.len() as u64,
            stripes: self.stripes.len() as u64,
            stored_bytes: self.stripes.len() as u64 * k * u64::from(self.scenario.fragment_bytes),
            nodes_lost: self.nodes_lost,
            outages: 0,
            stripes_lost: self.stripes_lost,
            uploads_lost: self.uploads_lost.len() as u64,
            stripe_epochs_unavailable: 0,
            contracts_declared_lost: self.declared,
            repairs: self.repairs,
            contracts_unrepairable: unrepairable,
            repair_read_bytes: self.read_bytes,
            repair_written_bytes: self.written_bytes,
            detection_epochs: Distribution::of(&mut self.detection),
            time_to_repair_epochs: Distribution::of(&mut self.time_to_repair),
            ledger: LedgerLoad::default(),
            ledger_rejections: Default::default(),
            detection_check: DetectionCheck::default(),
            gate: GateReport::default(),
            proposals: Default::default(),
            credentials: Default::default(),
            read_ms: Default::default(),
            downloads: self.downloads,
            downloads_failed: self.downloads_failed,
            downloads_degraded: self.downloads_degraded,
            violations,
            timeline: self.timeline,
        }
    }
}
