//! Proof of storage: Merkle commitments to a provider's fragment set (the
//! root a storage contract records), each epoch's challenges, the proofs
//! that answer them and their verification.
//!
//! - [`merkle`]: the contract's commitment to its fragment ids (rs_merkle
//!   with BLAKE3).
//! - [`challenge`]: a challenge (fragment, chunk) and the random stream
//!   challenges are drawn from.
//! - [`schedule`]: a provider's challenges for an epoch, bounded whatever
//!   its number of contracts (suspects, rotation, bytes).
//! - [`chunk`]: a chunk's BLAKE3 path proof against its fragment id, built
//!   from the 16 KiB group and the outboard iroh-blobs already keeps.
//! - [`answers`]: one contract's answers for an epoch, encoded (v1) and
//!   verified.
//! - [`policy`]: the detection math behind the default number of challenges.
//!
//! Must not depend on: anything that does I/O (no tokio, libp2p, iroh, redb,
//! no filesystem); it is pure so the ledger's state machine and the
//! simulator can call it.

pub mod answers;
pub mod challenge;
pub mod chunk;
pub mod merkle;
pub mod policy;
pub mod schedule;

/// Bytes in a BLAKE3 chunk, the unit a challenge names.
pub const CHUNK_BYTES: usize = 1024;
