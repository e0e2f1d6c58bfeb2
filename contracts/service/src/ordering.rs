//! The boundary between the ledger and whoever orders its blocks.
//!
//! The state machine never sees the orderer: it only receives finalised
//! blocks through [`strand_contracts::Replica::apply`], which checks them
//! against the genesis validator set (signatures and quorum). An ordering
//! service therefore has two duties: take transactions in, and hand out
//! finalised blocks (each with the signatures that finalise it).
//!
//! - The embedded default, [`crate::sequencer::SequencerHandle`], is a
//!   validator set of one with a quorum of one.
//! - A BFT engine (commonware's simplex is the candidate) implements the same
//!   trait: `submit` feeds its mempool and broadcasts, proposals are built
//!   with the same `Replica`/`Mempool` code, and its finalisations become
//!   blocks whose `signatures` hold a quorum of the validator set. Nothing in
//!   `strand-contracts` changes.

use std::future::Future;
use std::time::Duration;

use strand_contracts::Digest;

use tokio::sync::watch;

use crate::protocol::{Status, TransactionStatus};
use crate::store::{LedgerStore, StoreError};

/// Orders transactions into finalised blocks.
pub trait OrderingService: Clone + Send + Sync + 'static {
    /// Offers transaction bytes; `Ok(hash)` once they are durably accepted
    /// for ordering (they will be finalised, or dropped with a reason).
    fn submit(&self, transaction: Vec<u8>) -> impl Future<Output = Result<Digest, String>> + Send;

    /// The latest finalised height and head.
    fn status(&self) -> Status;

    /// Waits until `height` is finalised or `timeout` passes.
    fn wait_for_height(&self, height: u64, timeout: Duration) -> impl Future<Output = Status> + Send;

    /// Encoded finalised blocks from `from`: at most `count`, about
    /// `bytes_max` bytes.
    fn finalised_blocks(&self, from: u64, count: usize, bytes_max: usize) -> Result<Vec<Vec<u8>>, StoreError>;

    /// What became of a transaction.
    fn transaction(&self, hash: &Digest) -> Result<TransactionStatus, StoreError>;
}

/// What became of a transaction, from an ordering service's store: in a
/// finalised block, dropped with its reason, waiting, or never seen.
pub fn transaction_status(store: &LedgerStore, hash: &Digest) -> Result<TransactionStatus, StoreError> {
    if let Some(place) = store.transaction(hash)? {
        return Ok(TransactionStatus::Finalised {
            height: place.height,
            index: place.index,
            outcome: place.receipt.outcome,
        });
    }
    if let Some(reason) = store.dropped(hash)? {
        return Ok(TransactionStatus::Dropped(reason));
    }
    Ok(if store.in_mempool(hash)? { TransactionStatus::Pending } else { TransactionStatus::Unknown })
}

/// Waits until the status reaches `height` or `timeout` passes; the status
/// then.
pub async fn wait_for_height(status: &watch::Receiver<Status>, height: u64, timeout: Duration) -> Status {
    let mut status = status.clone();
    let _ = tokio::time::timeout(timeout, status.wait_for(|status| status.height >= height)).await;
    status.borrow().clone()
}

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise, in colour on a
/// terminal: the ledger processes' one logging set-up.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
