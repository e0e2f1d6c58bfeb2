//! Buffers lent out as [`bytes::Bytes`] that come back for reuse.
//!
//! Fragments are megabyte buffers handed to an iroh-blobs store, which keeps
//! the bytes for as long as it (or a transfer) needs them. Taking fresh
//! memory for every fragment means fresh pages, each faulted in, and on a
//! VM that hands free pages back to its host those faults cost more than the
//! copy that fills them. A [`Recycler`] lends a buffer out as `Bytes` and
//! takes it back, whole, when the last reference to those bytes goes.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Spare buffers, at most `keep_bytes` of capacity in all (a buffer that
/// does not fit is freed), so a long-running process holds little idle
/// memory however large the fragments it once handled.
#[derive(Debug)]
pub struct Recycler {
    spare: Mutex<Spare>,
    keep_bytes: usize,
}

#[derive(Debug, Default)]
struct Spare {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl Recycler {
    /// A recycler keeping at most `keep_bytes` of spare buffer capacity.
    pub fn new(keep_bytes: usize) -> Arc<Self> {
        Arc::new(Self { spare: Mutex::new(Spare::default()), keep_bytes })
    }

    fn spare_now(&self) -> MutexGuard<'_, Spare> {
        self.spare.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A spare buffer (contents and length unspecified), if any.
    pub fn take(&self) -> Option<Vec<u8>> {
        let mut spare = self.spare_now();
        let buffer = spare.buffers.pop()?;
        spare.bytes -= buffer.capacity();
        Some(buffer)
    }

    /// A spare buffer or a new empty one.
    pub fn take_or_new(&self) -> Vec<u8> {
        self.take().unwrap_or_default()
    }

    /// Lends `buffer` out as `Bytes`; it comes back when every clone and
    /// slice of those bytes has been dropped.
    pub fn lend(self: &Arc<Self>, buffer: Vec<u8>) -> bytes::Bytes {
        bytes::Bytes::from_owner(Lent { buffer, recycler: Arc::clone(self) })
    }

    fn give_back(&self, buffer: Vec<u8>) {
        let mut spare = self.spare_now();
        if spare.bytes + buffer.capacity() <= self.keep_bytes {
            spare.bytes += buffer.capacity();
            spare.buffers.push(buffer);
        }
    }

    /// Spare buffers held now, and their capacity in bytes.
    pub fn spare(&self) -> (usize, usize) {
        let spare = self.spare_now();
        (spare.buffers.len(), spare.bytes)
    }
}

/// A buffer lent out; returns to its recycler when dropped.
struct Lent {
    buffer: Vec<u8>,
    recycler: Arc<Recycler>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.recycler.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_returns_for_reuse_only_when_its_last_reference_goes() {
        let recycler = Recycler::new(4 * 1024);
        let bytes = recycler.lend(vec![7; 1024]);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert!(recycler.take().is_none(), "a slice still refers to it");
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert_eq!(recycler.take().map(|buffer| buffer.len()), Some(1024), "back, whole");
        for _ in 0..9 {
            drop(recycler.lend(Vec::with_capacity(1024)));
        }
        assert_eq!(recycler.spare(), (4, 4 * 1024), "the spare capacity is bounded");
        drop(recycler.lend(Vec::with_capacity(1)));
        assert_eq!(recycler.spare(), (4, 4 * 1024), "a buffer that does not fit is freed");
        assert_eq!(recycler.take().map(|buffer| buffer.capacity()), Some(1024));
        assert_eq!(recycler.spare(), (3, 3 * 1024), "taking one frees its room");
    }
}
