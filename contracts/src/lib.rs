//! The ledger: a pure, deterministic state machine over signed transactions
//! (providers, storage contracts, proofs, credentials, revocations, access
//! receipts), blocks ordered by a service behind a trait, persistence and
//! followers.
//!
//! Status: arrives with the ledger issue.
//!
//! Must not depend on: anything that does network I/O; the state machine
//! never knows who orders its blocks.
