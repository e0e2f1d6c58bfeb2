//! The storage node (`strand-node`): holds encrypted fragments under storage
//! contracts, answers proof-of-storage challenges, runs repair orders and
//! releases a fragment only when its own ledger replica authorises the
//! requester.
//!
//! Status: the daemon arrives with the storage-network issue; this crate is
//! the place for it. Its protocol logic will be sans-IO state machines (see
//! `../shared/DESIGN.md`), with tokio, libp2p, iroh-blobs and redb only in
//! the shell around them.
//!
//! May depend on: `strand-core`, `strand-contracts`, `strand-proof-of-storage`.
