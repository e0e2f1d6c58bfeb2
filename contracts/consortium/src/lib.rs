//! Strand's consortium ledger: the member organisations' validators order
//! blocks with commonware's simplex consensus (ed25519 votes) and marshal
//! (finalised blocks in height order, backfilled from peers), never a
//! consensus of our own.
//!
//! - [`block`]: the block the engine orders (a Strand header and its
//!   transactions, named by the header's hash) and its codec for bytes from
//!   any peer.
//! - [`ceremony`]: the beacon key made by the validators together (a
//!   distributed key generation over shared files), without a dealer.
//! - [`app`]: proposing on the post-state of a not yet final parent,
//!   verifying by re-execution, applying finalised blocks with their
//!   certificate to the finalised replica and its store.
//!
//! `strand-contracts` stays pure: order first, execute after finality; a
//! follower checks a block's certificate itself
//! ([`strand_contracts::ValidatorSet::check`]).

pub mod app;
pub mod beacon;
pub mod block;
pub mod ceremony;
pub mod engine;
pub mod validator;
