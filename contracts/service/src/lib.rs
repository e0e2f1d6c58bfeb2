//! The ledger service: persistence, the embedded sequencer, followers and
//! their transport.
//!
//! - [`store`]: a replica's redb database (blocks, receipts, snapshots,
//!   durable mempool), crash-safe by construction.
//! - [`ordering`]: the trait a block orderer implements (the sequencer
//!   today, a BFT engine later); [`sequencer`]: the single-validator one.
//! - [`follower`]: checks and applies finalised blocks into a replica.
//! - [`protocol`], [`server`], [`client`]: the wire protocol over TCP.
//! - [`metrics`]: the service's Prometheus metrics and the `/metrics`
//!   server every Strand process uses.
//!
//! Depends on the pure `strand-contracts`; the state machine never sees redb
//! or a socket.

pub mod client;
pub mod follower;
pub mod metrics;
pub mod ordering;
pub mod protocol;
pub mod sequencer;
pub mod server;
pub mod store;
