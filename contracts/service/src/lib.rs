//! The ledger service: persistence, the embedded sequencer, followers and
//! their transport.
//!
//! - [`store`]: a replica's redb database (blocks, receipts, snapshots,
//!   durable mempool), crash-safe by construction.
//! - [`sequencer`]: the single-validator ordering service.
//! - [`follower`]: checks and applies finalised blocks into a replica.
//! - [`protocol`], [`server`], [`client`]: the wire protocol over TCP.
//!
//! Depends on the pure `strand-contracts`; the state machine never sees redb
//! or a socket.

pub mod client;
pub mod follower;
pub mod protocol;
pub mod sequencer;
pub mod server;
pub mod store;
