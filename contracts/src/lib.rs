//! The Strand ledger: a pure, deterministic state machine over signed
//! transactions, and the blocks that order them.
//!
//! - [`transaction`]: what accounts ask for (register a provider, open and
//!   close storage contracts, grant and revoke credentials, submit proofs,
//!   record repairs, report access), signed with a nonce and a versioned
//!   domain prefix; [`encoding`]: the canonical encoding and its limits.
//! - [`state`] and [`table`]: what the chain has recorded, committed by a
//!   state root; [`apply`]: the rules, with a receipt for every transaction
//!   and a [`rejection::Rejection`] naming every reason for refusal.
//! - [`proofs`], [`roster`] and [`epoch`]: each provider's bounded proof
//!   schedule over its roster of contracts, its one submission per epoch,
//!   and the boundary work (liveness, expiry, roster changes, pruning).
//! - [`block`]: blocks, genesis and finality (a validator set and quorum);
//!   [`governance`]: changing a consortium's validators by a proposal more
//!   than two thirds of them approve, effective at an epoch's first block;
//!   [`replica`]: building a block (sequencer) and checking one (follower).
//! - [`mempool`]: the bounded, deduplicated, nonce-aware queue a proposer
//!   draws from; [`query`]: what nodes and clients ask their replica.
//!
//! No clock, no I/O, no randomness: `apply(state, block)` depends on nothing
//! else, so every replica computes the same state root. Who orders blocks is
//! outside: the single sequencer and, later, a BFT engine both hand
//! finalised blocks to [`replica::Replica::apply`].
//!
//! Must not depend on: anything that does I/O (tokio, libp2p, iroh, redb,
//! the filesystem). Persistence and transport live in `contracts/service`.

pub mod apply;
pub mod beacon;
pub mod block;
pub mod encoding;
pub mod epoch;
pub mod governance;
pub mod mempool;
pub mod proofs;
pub mod query;
pub mod rejection;
pub mod repair;
pub mod replica;
pub mod roster;
pub mod state;
pub mod stripes;
pub mod table;
pub mod transaction;
pub mod types;

pub use apply::{Outcome, Receipt};
pub use block::{Block, BlockHeader, Genesis, ValidatorSet};
pub use rejection::Rejection;
pub use replica::{BlockRejection, Replica};
pub use state::LedgerState;
pub use transaction::{Body, Transaction};
pub use types::{AccountId, Digest, Signature};
