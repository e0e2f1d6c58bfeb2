//! The deterministic network simulator: the real ledger state machine
//! (`strand-contracts`), the node's real repair core and the client's real
//! placement, driven over simulated time by a `(time, sequence)` event
//! queue and one seeded RNG, so a seed reproduces a run bit for bit.
//!
//! What it models today ([`world`]): nodes that hold real fragment bytes
//! (Reed-Solomon coded), answer their real proof schedules, rebuild lost
//! shards under the ledger's repair orders, and fail — permanently,
//! transiently, a whole organisation at once, an organisation cut off from
//! the rest for a while (a partition), or by silently deleting part of what
//! they hold. Every epoch it checks the invariants (a follower
//! replica reaches the sequencer's state root at every block; every lost
//! contract within its term is queued or ordered; a silent holder is
//! noticed within the strike window); after the faults stop, every contract
//! must be active on a live holder. Not yet modelled: links (latency and
//! bandwidth per link rather than per node), partitions that split the
//! nodes among themselves (a cut-off organisation is cut off from
//! everyone), the daemons' proposal and prover state machines, lying
//! servers and load.
//!
//! May depend on: every crate of the workspace.

pub mod model;
pub mod plot;
pub mod published;
pub mod queue;
pub mod report;
pub mod scenario;
pub mod world;

pub use report::Report;
pub use scenario::{Engine, RepairPolicy, Scenario};

/// Runs `scenario` with `seed` on its engine.
pub fn run(scenario: &Scenario, seed: u64) -> Report {
    match scenario.engine {
        Engine::Ledger => world::World::new(scenario, seed).run(),
        Engine::Model => model::Model::new(scenario, seed).run(),
    }
}
