//! Proof of storage: deriving each epoch's challenges from the ledger's
//! beacon, building a proof from a stored fragment (the challenged 1 KiB
//! chunk with its BLAKE3 verified-streaming proof, plus the rs_merkle proof of
//! the fragment id in the contract root) and verifying it.
//!
//! Status: arrives with the proof-of-storage issue.
//!
//! Must not depend on: anything that does I/O (no tokio, libp2p, iroh, redb);
//! it is pure so the ledger's state machine and the simulator can call it.
