//! The data plane: the fragment store and its gate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use iroh_blobs::store::GcConfig;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::store::fs::options::{Options, PathOptions};
use strand_contracts::AccountId;
use strand_contracts::transaction::ReadAuthority;
use strand_net::blobs::{Gate, Operation};

use super::Node;
use crate::core::gate;

/// Opens the fragment store with garbage collection of untagged blobs (a
/// fragment is kept exactly while a tag `contract/<contract>/<fragment>` of
/// some contract holding it, or a staging tag, exists), and where it keeps
/// its files (for [`StoreFiles::settle`]).
pub(super) async fn open_store(directory: &Path) -> anyhow::Result<(iroh_blobs::api::Store, StoreFiles)> {
    std::fs::create_dir_all(directory)?;
    let mut options = Options::new(directory);
    options.gc = Some(GcConfig { interval: Duration::from_secs(30), add_protected: None });
    let files = StoreFiles { paths: options.path.clone(), data_inlined_max: options.inline.max_data_inlined };
    let store = FsStore::load_with_opts(directory.join("blobs.db"), options).await?;
    Ok(((*store).clone(), files))
}

/// Where the file store keeps fragment bytes, as it was opened with.
#[derive(Clone, Debug)]
pub(super) struct StoreFiles {
    paths: PathOptions,
    /// Blobs up to this size live in the store's database, not in a file.
    data_inlined_max: u64,
}

impl StoreFiles {
    /// Makes a fragment the store has just imported durable on disk, then
    /// lets the page cache drop it. Runs before the node countersigns, so
    /// what it signs for is on disk, not only in memory (the file store
    /// itself syncs only its database). Dropping the written pages keeps
    /// the node's page-cache footprint at what is in flight rather than
    /// everything ever received: write-once fragments are read again only by
    /// proofs and gets, and the freed pages are reused by the next fragments
    /// instead of fresh memory being taken, which on a VM that hands free
    /// pages back to its host costs several times the copy itself
    /// (BENCHMARKS.md). Fragments small enough to be inlined in the store's
    /// database have no file of their own: the database sync covers them;
    /// any other fragment without a file is an error.
    pub(super) async fn settle(&self, fragment: &[u8; 32], size: u64) -> std::io::Result<()> {
        let files = self.clone();
        let fragment = *fragment;
        tokio::task::spawn_blocking(move || match files.fragment_file(&fragment)? {
            Some(file) => {
                file.sync_data()?;
                uncache(&file);
                Ok(())
            }
            None if size <= files.data_inlined_max => Ok(()),
            None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "the store wrote no file for the fragment")),
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// The file holding `fragment`'s bytes, if the store keeps it in one.
    fn fragment_file(&self, fragment: &[u8; 32]) -> std::io::Result<Option<std::fs::File>> {
        match std::fs::File::open(self.paths.data_path(&iroh_blobs::Hash::from_bytes(*fragment))) {
            Ok(file) => Ok(Some(file)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Lets the kernel drop `file`'s clean pages. Advice only: a kernel that
/// ignores it keeps them cached.
fn uncache(file: &std::fs::File) {
    let _ = nix::fcntl::posix_fadvise(file, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED);
}

/// How long after a get is allowed its fragment leaves the page cache: far
/// longer than a fragment takes to send; one still being sent afterwards is
/// read from disk again, nothing worse.
const UNCACHE_AFTER: Duration = Duration::from_secs(2);

/// Served fragments waiting to leave the page cache, at most this many (the
/// rest simply stay cached until the kernel needs the memory).
const UNCACHE_PENDING_MAX: usize = 10_000;

/// Drops fragments from the page cache [`UNCACHE_AFTER`] they were served,
/// for the reason [`StoreFiles::settle`] drops received ones: a fragment is rarely read
/// twice soon, and reading the next ones into reused pages is several times
/// cheaper than into fresh memory on a VM that returns free pages to its
/// host (BENCHMARKS.md).
#[derive(Debug)]
pub(super) struct Uncacher {
    served: tokio::sync::mpsc::Sender<[u8; 32]>,
}

impl Uncacher {
    /// Starts the task that drops served fragments from the page cache.
    pub(super) fn start(files: StoreFiles) -> Self {
        let (served, mut received) = tokio::sync::mpsc::channel::<[u8; 32]>(1024);
        tokio::spawn(async move {
            let mut due: std::collections::VecDeque<(tokio::time::Instant, [u8; 32])> =
                std::collections::VecDeque::new();
            loop {
                let next = due.front().map(|(at, _)| *at);
                tokio::select! {
                    fragment = received.recv() => match fragment {
                        Some(fragment) if due.len() < UNCACHE_PENDING_MAX => {
                            due.push_back((tokio::time::Instant::now() + UNCACHE_AFTER, fragment));
                        }
                        Some(_) => {}
                        None => break,
                    },
                    () = tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)), if next.is_some() => {
                        let now = tokio::time::Instant::now();
                        let mut ready = Vec::new();
                        while due.front().is_some_and(|(at, _)| *at <= now) {
                            ready.extend(due.pop_front().map(|(_, fragment)| fragment));
                        }
                        let files = files.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            for fragment in ready {
                                if let Ok(Some(file)) = files.fragment_file(&fragment) {
                                    uncache(&file);
                                }
                            }
                        })
                        .await;
                    }
                }
            }
        });
        Self { served }
    }

    /// Notes that `fragment` is being served.
    pub(super) fn served(&self, fragment: [u8; 32]) {
        // Full: it stays cached, which is only slower.
        let _ = self.served.try_send(fragment);
    }
}

/// The tag that keeps a fragment in the store for one contract: a fragment
/// stays while any contract holding it keeps its tag.
pub(super) fn tag_of(contract: &strand_contracts::Digest, fragment: &[u8; 32]) -> String {
    format!("{}{}", contract_prefix(contract), hex::encode(fragment))
}

/// The prefix of every tag of one contract.
pub(super) fn contract_prefix(contract: &strand_contracts::Digest) -> String {
    format!("{CONTRACT_TAGS}{contract}/")
}

/// The prefix of every contract's tags.
const CONTRACT_TAGS: &str = "contract/";

/// Tags of stores written before tags were per contract: one per fragment,
/// whichever contract held it.
const FRAGMENT_TAGS_V1: &str = "fragment/";

/// Moves a store from per-fragment tags to per-contract tags: every
/// agreement's fragments are tagged for their contract, then the old tags
/// go. Idempotent; a no-op on a store with no old tags.
pub(super) async fn migrate_tags(node: &Arc<Node>) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let mut old = node.store.tags().list_prefix(FRAGMENT_TAGS_V1).await?;
    if old.next().await.is_none() {
        return Ok(());
    }
    drop(old);
    let agreements: Vec<(strand_contracts::Digest, Vec<[u8; 32]>)> =
        node.core().holdings.agreements().map(|(id, agreement)| (*id, agreement.fragment_ids.clone())).collect();
    let mut tagged = 0usize;
    for (contract, fragments) in &agreements {
        for fragment in fragments {
            let hash = iroh_blobs::Hash::from_bytes(*fragment);
            node.store.tags().set(tag_of(contract, fragment), iroh_blobs::HashAndFormat::raw(hash)).await?;
            tagged += 1;
        }
    }
    node.store.tags().delete_prefix(FRAGMENT_TAGS_V1).await?;
    tracing::info!(agreements = agreements.len(), tagged, "node.store migrated fragment tags to per-contract tags");
    Ok(())
}

/// Where staged fragments are tagged: every tag of one reservation.
pub(super) fn staging_prefix(key: &crate::core::staging::Key) -> String {
    format!("{STAGING_TAGS}{}/{}/", hex::encode(key.0.0), hex::encode(key.1))
}

/// The prefix of every staging tag.
pub(super) const STAGING_TAGS: &str = "staging/";

impl Node {
    /// Counts a fragment the gate released: an access receipt for the
    /// ledger (the current epoch's batch) and the release metrics.
    fn released(
        &self,
        ledger: &strand_contracts::state::LedgerState,
        fragment: [u8; 32],
        upload: strand_contracts::types::UploadKey,
        authority: ReadAuthority,
        requester: AccountId,
        bytes: u64,
    ) {
        self.uncacher.served(fragment);
        let epoch = ledger.params.epoch_of(ledger.height);
        if !self.receipts().record(epoch, upload, authority, requester, bytes) {
            // More distinct readers in this epoch than a batch holds.
            self.metrics.receipts_dropped.inc();
        }
        self.metrics.fragment_bytes_released.inc_by(bytes);
        self.metrics.fragment_bytes_released_to.with_label_values(&[authority.reader()]).inc_by(bytes);
    }
}

/// Serves fragments, every request decided by the node's gate.
pub(super) fn serve(node: &Arc<Node>) -> iroh::protocol::Router {
    let decider = Arc::clone(node);
    let gate: Gate = Arc::new(move |operation, remote, fragment, extent| {
        let requester = AccountId(remote);
        let core = decider.core();
        let holdings = &core.holdings;
        // One O(1) snapshot of the replica decides and dates the release.
        let ledger = decider.ledger();
        let decision = match operation {
            Operation::Get => gate::decide_get(
                &requester,
                &fragment,
                holdings,
                &ledger,
                decider.freshness(),
                &decider.presentations(),
            ),
            Operation::Push => gate::decide_push(&requester, &fragment, holdings).map(|()| None),
        };
        let label = match operation {
            Operation::Get => "get",
            Operation::Push => "push",
        };
        match decision {
            Ok(credential) => {
                decider.metrics.requests_served.with_label_values(&[label]).inc();
                let released = (operation == Operation::Get)
                    .then(|| gate::receipt_of(&requester, &fragment, credential, holdings))
                    .flatten();
                if let Some((upload, authority, bytes)) = released {
                    decider.released(&ledger, fragment, upload, authority, requester, bytes);
                }
                Ok(())
            }
            Err(refusal) => {
                // A repairer under an open order reads the upload's
                // fragments within bounds per order (`core::repair`).
                let repair = (operation == Operation::Get)
                    .then(|| decider.repair_reads().decide(&requester, &fragment, extent, holdings, &ledger))
                    .flatten();
                if let Some((order, upload, bytes)) = repair {
                    decider.metrics.requests_served.with_label_values(&["repair"]).inc();
                    decider.metrics.repair_bytes_released.inc_by(bytes);
                    decider.released(&ledger, fragment, upload, ReadAuthority::Repair(order), requester, bytes);
                    tracing::debug!(order = %order.short(), upload = %hex::encode(upload), "node.repair read released");
                    return Ok(());
                }
                decider.metrics.requests_refused.with_label_values(&[label, refusal.label()]).inc();
                Err(refusal.label())
            }
        }
    });
    let timer = Arc::clone(node);
    let done: strand_net::blobs::GetDone = Arc::new(move |elapsed, completed| {
        let outcome = if completed { "completed" } else { "aborted" };
        timer.metrics.get_seconds.with_label_values(&[outcome]).observe(elapsed.as_secs_f64());
    });
    strand_net::blobs::serve_timed(node.endpoint.clone(), node.store.clone(), gate, done)
}
