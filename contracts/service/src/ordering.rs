//! The boundary between the ledger and whoever orders its blocks.
//!
//! The state machine never sees the orderer: it only receives finalised
//! blocks through [`strand_contracts::Replica::apply`], which checks them
//! against the genesis validator set (signatures and quorum). An ordering
//! service therefore has two duties: take transactions in, and hand out
//! finalised blocks (each with the signatures that finalise it).
//!
//! - The embedded default, the sequencer (`crate::sequencer`), is a
//!   validator set of one with a quorum of one.
//! - A consortium's validator (`strand-consortium`) runs commonware's
//!   simplex: `submit` feeds its mempool and gossip, proposals are built
//!   with the same `Replica`/`Mempool` code, and its finalisations become
//!   blocks with a finality certificate.
//!
//! Both serve clients through one [`OrderingHandle`]: a bounded queue of
//! submissions into their admission task, their status, and their store.

use std::future::Future;
use std::time::Duration;

use strand_contracts::Digest;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::LedgerMetrics;

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

/// A transaction offered for ordering, with where its answer goes.
pub type Submission = (Vec<u8>, oneshot::Sender<Result<Digest, String>>);

/// Most submissions waiting for admission; beyond it clients are told to
/// retry (local work before new remote work).
pub const SUBMISSIONS_QUEUED_MAX: usize = 4096;

/// The ordering service of a sequencer or a validator process: submissions
/// go into a bounded queue its admission task drains (answering once the
/// transaction is durable); status, blocks and transactions come from its
/// store.
#[derive(Clone)]
pub struct OrderingHandle {
    /// "sequencer" or "validator", for answers.
    role: &'static str,
    submissions: mpsc::Sender<Submission>,
    status: watch::Receiver<Status>,
    store: Arc<LedgerStore>,
    metrics: LedgerMetrics,
}

impl OrderingHandle {
    /// A handle over the admission queue `submissions`, the finalised
    /// `status`, the `store` and the `metrics` of a `role` process.
    pub fn new(
        role: &'static str,
        submissions: mpsc::Sender<Submission>,
        status: watch::Receiver<Status>,
        store: Arc<LedgerStore>,
        metrics: LedgerMetrics,
    ) -> Self {
        Self { role, submissions, status, store, metrics }
    }

    /// The store (for serving blocks and transactions).
    pub fn store(&self) -> &Arc<LedgerStore> {
        &self.store
    }
}

impl OrderingService for OrderingHandle {
    async fn submit(&self, bytes: Vec<u8>) -> Result<Digest, String> {
        let (reply, answer) = oneshot::channel();
        self.submissions.try_send((bytes, reply)).map_err(|_| {
            self.metrics.refused("busy");
            format!("the {} is busy: retry shortly", self.role)
        })?;
        answer.await.map_err(|_| format!("the {} stopped", self.role))?
    }

    fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    async fn wait_for_height(&self, height: u64, timeout: Duration) -> Status {
        wait_for_height(&self.status, height, timeout).await
    }

    fn finalised_blocks(&self, from: u64, count: usize, bytes_max: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.store.block_bytes_from(from, count, bytes_max)
    }

    fn transaction(&self, hash: &Digest) -> Result<TransactionStatus, StoreError> {
        transaction_status(&self.store, hash)
    }
}
