//! The upload window: encoded fragments held in memory, served to their
//! providers over iroh-blobs, until each provider holds its own. A fixed
//! number of places bounds the client's memory whatever the file size.
//!
//! The window is an iroh-blobs in-memory store. A fragment stays in it while
//! its temporary tag lives; the store's garbage collector reclaims the rest.
//! That collector marks the tagged blobs and then sweeps every untagged one,
//! and the in-memory store does not protect a blob added between the two
//! (its file store does), so a fragment added during a collection could be
//! swept before anyone read it. The [`Collector`] therefore lets a
//! collection start only when no fragment is being added, holds new
//! additions until it is over, and asks for one only once enough fragments
//! have left the window to be worth the pause.
//!
//! Fragments enter the store without a copy: the encoder's buffer itself
//! becomes the stored bytes, and once the store and every transfer have let
//! go of them the buffer returns (through a [`strand_net::recycle::Recycler`]) to the encoder.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh_blobs::api::{Store, TempTag};
use iroh_blobs::store::{GcConfig, ProtectOutcome};
use strand_core::FragmentId;
use strand_core::io::FragmentSink;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Bytes of fragments the window holds at most.
pub const WINDOW_BYTES: u64 = 32 << 20;
/// A collection is asked for once this many bytes have left the window.
const COLLECT_AFTER_BYTES: u64 = WINDOW_BYTES / 4;
/// How often the store's collector asks whether to run (cheap when not).
const COLLECTOR_POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct CollectorState {
    /// Fragments being added.
    adding: usize,
    /// A collection is running (additions wait).
    collecting: bool,
    /// Bytes released since the last collection.
    released_bytes: u64,
}

/// Runs the store's collections only while no fragment is being added.
#[derive(Debug, Default)]
pub struct Collector {
    state: Mutex<CollectorState>,
    changed: Notify,
}

impl Collector {
    fn state(&self) -> std::sync::MutexGuard<'_, CollectorState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until no collection runs, then counts one addition in.
    async fn begin_adding(&self) {
        loop {
            let notified = self.changed.notified();
            {
                let mut state = self.state();
                if !state.collecting {
                    state.adding += 1;
                    return;
                }
            }
            notified.await;
        }
    }

    fn end_adding(&self) {
        self.state().adding -= 1;
        self.changed.notify_waiters();
    }

    /// Counts bytes that left the window (their tags dropped).
    pub fn released(&self, bytes: u64) {
        self.state().released_bytes += bytes;
    }

    /// The store's protect callback: called before every collection, and
    /// only after the previous one has finished. Ends the previous
    /// collection (additions resume); starts one (waiting for additions in
    /// progress to finish) when enough bytes were released.
    async fn before_collection(&self) -> ProtectOutcome {
        {
            let mut state = self.state();
            state.collecting = false;
            if state.released_bytes < COLLECT_AFTER_BYTES {
                drop(state);
                self.changed.notify_waiters();
                return ProtectOutcome::Abort;
            }
            state.released_bytes = 0;
            state.collecting = true;
        }
        self.changed.notify_waiters();
        loop {
            let notified = self.changed.notified();
            if self.state().adding == 0 {
                return ProtectOutcome::Continue;
            }
            notified.await;
        }
    }
}

/// The in-memory store behind the window, collected under `collector`.
pub fn store(collector: &Arc<Collector>) -> Store {
    let collector = Arc::clone(collector);
    let callback: iroh_blobs::store::ProtectCb = Arc::new(move |_live| {
        let collector = Arc::clone(&collector);
        Box::pin(async move { collector.before_collection().await })
    });
    let options = iroh_blobs::store::mem::Options {
        gc_config: Some(GcConfig { interval: COLLECTOR_POLL, add_protected: Some(callback) }),
    };
    (*iroh_blobs::store::mem::MemStore::new_with_opts(options)).clone()
}

/// Places in the window for fragments of `fragment_bytes`, enough for two
/// stripes of `width` at least.
pub fn places(fragment_bytes: u64, width: usize) -> usize {
    (WINDOW_BYTES / fragment_bytes.max(1)).max(2 * width as u64) as usize
}

/// An encoded fragment in the window, waiting for its provider to hold it.
pub struct Encoded {
    /// The provider (index into the upload's candidates).
    pub provider: usize,
    /// The fragment id (its BLAKE3 hash).
    pub id: [u8; 32],
    /// Keeps the bytes in the store until dropped.
    _tag: TempTag,
    /// Its place in the window.
    _place: OwnedSemaphorePermit,
}

/// Puts fragments from the (blocking) encoder into the window, each taking
/// a place first (waiting while the window is full), and hands them on.
pub struct WindowSink {
    /// The window's store.
    pub store: Store,
    /// The runtime the additions run on.
    pub runtime: tokio::runtime::Handle,
    /// The window's places; closed when the upload is abandoned.
    pub places: Arc<Semaphore>,
    /// Its collector.
    pub collector: Arc<Collector>,
    /// Where added fragments go (or why adding failed).
    pub encoded: tokio::sync::mpsc::UnboundedSender<Result<Encoded, String>>,
    /// Per stripe, the provider of each shard.
    pub placements: Arc<Vec<Vec<usize>>>,
    /// Fragments per stripe.
    pub width: usize,
    /// Fragments put so far.
    pub position: usize,
    /// Buffers the store is done with, for the encoder.
    pub recycler: Arc<strand_net::recycle::Recycler>,
}

impl WindowSink {
    /// Adds `bytes` (fragment `id`) to the window once it has a place.
    fn add(&mut self, id: &FragmentId, bytes: bytes::Bytes) -> std::io::Result<()> {
        // The encoder emits stripes in order, shards in order.
        let (stripe, shard) = (self.position / self.width, self.position % self.width);
        self.position += 1;
        let provider = self.placements.get(stripe).and_then(|chosen| chosen.get(shard)).copied().ok_or_else(|| {
            std::io::Error::other(format!("the encoder produced more fragments than placed (stripe {stripe})"))
        })?;
        let place = self
            .runtime
            .block_on(Arc::clone(&self.places).acquire_owned())
            .map_err(|_| std::io::Error::other("the upload was abandoned"))?;
        let (store, collector, sender) = (self.store.clone(), Arc::clone(&self.collector), self.encoded.clone());
        let id = *id.as_bytes();
        self.runtime.spawn(async move {
            collector.begin_adding().await;
            let added = store.add_bytes(bytes).temp_tag().await;
            collector.end_adding();
            let _ = sender.send(
                added
                    .map(|tag| Encoded { provider, id, _tag: tag, _place: place })
                    .map_err(|error| format!("cannot hold a fragment in memory: {error}")),
            );
        });
        Ok(())
    }
}

impl FragmentSink for WindowSink {
    fn put(&mut self, id: &FragmentId, fragment: &[u8]) -> std::io::Result<()> {
        self.add(id, bytes::Bytes::copy_from_slice(fragment))
    }

    /// Keeps the encoder's buffer (no copy) and hands back one the store has
    /// let go of, so the same few buffers cycle through the window instead
    /// of fresh memory being taken (and faulted in) for every fragment.
    fn put_owned(&mut self, id: &FragmentId, fragment: Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
        self.add(id, self.recycler.lend(fragment))?;
        Ok(self.recycler.take())
    }
}

/// Spare fragment buffer capacity the window keeps for the encoder: the
/// window's worth (larger fragments than that are simply reallocated).
pub const RECYCLED_BYTES: usize = WINDOW_BYTES as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_two_stripes_at_least() {
        assert_eq!(places(1 << 20, 6), (WINDOW_BYTES >> 20) as usize);
        assert_eq!(places(64 << 20, 6), 12, "large fragments: two stripes of six");
    }
}
