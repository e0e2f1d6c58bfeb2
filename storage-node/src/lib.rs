//! The storage node (`strand-node`): holds encrypted fragments under storage
//! contracts, serves them only to whom its own ledger replica authorises,
//! and (next) answers proofs and runs repairs.
//!
//! - [`core`]: the protocol logic, sans-IO (holdings, the gate, proposal
//!   checks); the simulator will drive it.
//! - [`config`], [`records`], [`metrics`]: configuration, the node's redb
//!   records, Prometheus metrics.
//! - `daemon`: the shell over the ledger service, iroh-blobs, libp2p.

pub mod config;
pub mod core;
mod daemon;
pub mod drain;
pub mod metrics;
pub mod records;

pub use daemon::run;
