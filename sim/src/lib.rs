//! The deterministic network simulator: two engines over one scenario
//! format (`sim/scenarios/`), each driven by a `(time, sequence)` event
//! queue and one seeded RNG, so a seed reproduces a run bit for bit.
//!
//! - **Ledger engine** ([`world`], the default): the real ledger state
//!   machine (`strand-contracts`; a sequencer replica and a follower that
//!   must reach the same state root at every block), the client's real
//!   placement, nodes holding real fragment bytes (Reed-Solomon coded) that
//!   answer their real proof schedules, decide repair reads with the node's
//!   real gate (`check_request`, the per-order budget) and rebuild lost
//!   shards with the node's real repair core (`plan`, `rebuild`); every
//!   repair read released is receipted by the node's receipts core and put
//!   on the ledger as `AccessReceipts`. Faults:
//!   permanent and transient loss, a whole organisation lost, an
//!   organisation cut off for a while (partition), providers deleting part
//!   of what they hold, disks corrupting fragments, liars serving bad bytes
//!   to repairers (caught by BLAKE3, accused with `ReportBadSibling`),
//!   nodes answering proofs late, strangers reading without an order.
//!   Invariants every epoch: same state root on both replicas; every lost
//!   contract within its term queued or ordered; a silent holder noticed
//!   within the strike window; no gate releases a fragment the ledger does
//!   not allow; every rebuilt shard is the lost fragment; at the end, every
//!   repair read released is on the ledger's record of who read what
//!   (unless still pending, in flight, or too late, each counted). After the faults,
//!   every contract that can be rebuilt must be active on a live holder.
//! - **Model engine** ([`model`]): fragments by id and size, node lifetimes,
//!   the ledger's detection and repair delays as parameters (checked
//!   against the ledger engine by a test), the client's real placement;
//!   eager (the ledger's), lazy or no repair; load over time (uploads
//!   arriving through a period, reads of random uploads every epoch, sizes
//!   from a distribution). For durability and repair cost at scale: 10,000 nodes, 100,000 uploads, a year of hourly epochs
//!   in seconds. Checked against published figures ([`published`]).
//!
//! Not modelled yet: links (latency and bandwidth per link rather than per
//! node), partitions that split the nodes among themselves, load in the
//! ledger engine (its uploads are all made at the start), and the daemons'
//! proposal lifecycle and the client's upload and download plans (the
//! simulator drives the ledger, the prover core, the repair gate and the
//! repair core, not the daemons' async code).
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
