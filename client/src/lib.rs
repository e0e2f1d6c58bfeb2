//! The Strand client: the library behind the `strand` command.
//!
//! Today it works offline: key files ([`keyfile`]), encoding a file into
//! fragments in a directory and decoding them back ([`offline`]). The
//! networked upload, download, grant and revoke build on the same pieces.
//!
//! Depends on `strand-core`; must not be depended on by the storage node or
//! the ledger (they talk to clients over the network, not through this crate).

pub mod credentials;
pub mod devnet;
pub mod download;
pub mod exit;
pub mod known_ledgers;
pub mod ledger;
pub mod load;
pub mod network;
pub mod offline;
pub mod placement;
pub mod progress;
pub mod record;
pub mod speed;
pub mod window;
pub mod write_behind;

pub use strand_core::{keyfile, units};
