//! The upload window: encoded fragments held in memory, served to their
//! providers over iroh-blobs, until each provider holds its own. A fixed
//! number of places bounds the client's memory whatever the file size.
//!
//! The window is a [`MemoryBlobs`]: each fragment with the outboard of its
//! BLAKE3 tree, held while its [`Encoded`] lives and served to the
//! provider it was staged with as slices of the encoder's own buffer (no
//! copy, and no hashing beyond the one that names the fragment; iroh-blobs'
//! in-memory store hashed every fragment twice more). Once the window and
//! every transfer have let go of a buffer it returns (through a
//! [`strand_net::recycle::Recycler`]) to the encoder.

use std::sync::Arc;

use bao_tree::io::outboard::PreOrderMemOutboard;
use strand_core::FragmentId;
use strand_core::io::FragmentSink;
use strand_net::memory::{Held, MemoryBlobs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of fragments the window holds at most.
pub const WINDOW_BYTES: u64 = 32 << 20;

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
    /// Keeps the bytes in the window until dropped.
    _held: Held,
    /// Its place in the window.
    _place: OwnedSemaphorePermit,
}

/// Puts fragments from the (blocking) encoder into the window, each taking
/// a place first (waiting while the window is full), and hands them on.
pub struct WindowSink {
    /// The window.
    pub blobs: Arc<MemoryBlobs>,
    /// The runtime the places are awaited on.
    pub runtime: tokio::runtime::Handle,
    /// The window's places; closed when the upload is abandoned.
    pub places: Arc<Semaphore>,
    /// Where added fragments go.
    pub encoded: tokio::sync::mpsc::UnboundedSender<Encoded>,
    /// Per stripe, the provider of each shard.
    pub placements: Arc<Vec<Vec<usize>>>,
    /// Fragments per stripe.
    pub width: usize,
    /// Fragments put so far.
    pub position: usize,
    /// Buffers the window is done with, for the encoder.
    pub recycler: Arc<strand_net::recycle::Recycler>,
}

/// Names fragments by the outboard of their BLAKE3 tree at iroh's block
/// size, computed on the encoder's workers: its root is the fragment id, so
/// one pass over the bytes both names a fragment and readies it for serving.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outboards;

impl strand_core::io::Naming for Outboards {
    type Named = PreOrderMemOutboard;

    fn name(&self, fragment: &[u8]) -> (FragmentId, PreOrderMemOutboard) {
        let outboard = outboard_of(fragment);
        (FragmentId::from_bytes(*outboard.root.as_bytes()), outboard)
    }
}

fn outboard_of(fragment: &[u8]) -> PreOrderMemOutboard {
    PreOrderMemOutboard::create(fragment, iroh_blobs::store::IROH_BLOCK_SIZE)
}

impl WindowSink {
    /// Adds `bytes` (fragment `id`, whose tree `outboard` describes) to the
    /// window once it has a place.
    fn add(&mut self, id: &FragmentId, bytes: bytes::Bytes, outboard: PreOrderMemOutboard) -> std::io::Result<()> {
        // The encoder emits stripes in order, shards in order.
        let (stripe, shard) = (self.position / self.width, self.position % self.width);
        self.position += 1;
        let provider = self.placements.get(stripe).and_then(|chosen| chosen.get(shard)).copied().ok_or_else(|| {
            std::io::Error::other(format!("the encoder produced more fragments than placed (stripe {stripe})"))
        })?;
        if outboard.root.as_bytes() != id.as_bytes() {
            return Err(std::io::Error::other(format!(
                "fragment {} came with another fragment's outboard",
                id.short()
            )));
        }
        let place = self
            .runtime
            .block_on(Arc::clone(&self.places).acquire_owned())
            .map_err(|_| std::io::Error::other("the upload was abandoned"))?;
        let held = self.blobs.insert(bytes, outboard).map_err(std::io::Error::other)?;
        self.encoded
            .send(Encoded { provider, id: *id.as_bytes(), _held: held, _place: place })
            .map_err(|_| std::io::Error::other("the upload was abandoned"))
    }
}

impl FragmentSink<PreOrderMemOutboard> for WindowSink {
    fn put(&mut self, id: &FragmentId, fragment: &[u8]) -> std::io::Result<()> {
        let outboard = outboard_of(fragment);
        self.add(id, bytes::Bytes::copy_from_slice(fragment), outboard)
    }

    /// Keeps the encoder's buffer (no copy) and hands back one the window
    /// has let go of, so the same few buffers cycle through the window instead
    /// of fresh memory being taken (and faulted in) for every fragment.
    fn put_named(
        &mut self,
        id: &FragmentId,
        fragment: Vec<u8>,
        outboard: PreOrderMemOutboard,
    ) -> std::io::Result<Option<Vec<u8>>> {
        self.add(id, self.recycler.lend(fragment), outboard)?;
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
    fn outboard_naming_gives_plain_blake3_ids() {
        use strand_core::io::Naming as _;
        for length in [0usize, 1, 16 << 10, (16 << 10) + 1, (1 << 20) + 16] {
            let fragment: Vec<u8> = (0..length).map(|index| (index % 251) as u8).collect();
            let (id, outboard) = Outboards.name(&fragment);
            assert_eq!(id, FragmentId::of(&fragment), "{length} bytes");
            assert_eq!(outboard.tree.size(), length as u64);
        }
    }

    #[test]
    fn the_window_holds_two_stripes_at_least() {
        assert_eq!(places(1 << 20, 6), (WINDOW_BYTES >> 20) as usize);
        assert_eq!(places(64 << 20, 6), 12, "large fragments: two stripes of six");
    }
}
