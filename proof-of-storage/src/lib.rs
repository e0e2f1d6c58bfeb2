//! Proof of storage: Merkle commitments to a provider's fragment set (the
//! root a storage contract records), and later each epoch's challenges, the
//! proofs that answer them and their verification.
//!
//! Today: [`merkle`], the commitment. Challenges and proofs arrive with the
//! proof-of-storage issue.
//!
//! Must not depend on: anything that does I/O (no tokio, libp2p, iroh, redb,
//! no filesystem); it is pure so the ledger's state machine and the
//! simulator can call it.

pub mod merkle;
