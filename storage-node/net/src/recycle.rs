//! Buffers lent out as [`bytes::Bytes`] that come back for reuse.
//!
//! Fragments are megabyte buffers handed to an iroh-blobs store, which keeps
//! the bytes for as long as it (or a transfer) needs them. Taking fresh
//! memory for every fragment means fresh pages, each faulted in, and on a
//! VM that hands free pages back to its host those faults cost more than the
//! copy that fills them. A [`Recycler`] lends a buffer out as `Bytes` and
//! takes it back, whole, when the last reference to those bytes goes.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Spare buffers, at most `keep` of them (the rest are freed).
#[derive(Debug)]
pub struct Recycler {
    buffers: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl Recycler {
    /// A recycler keeping at most `keep` spare buffers.
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(Self { buffers: Mutex::new(Vec::new()), keep })
    }

    fn buffers(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.buffers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A spare buffer (contents and length unspecified), if any.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.buffers().pop()
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
        let mut buffers = self.buffers();
        if buffers.len() < self.keep {
            buffers.push(buffer);
        }
    }

    /// Spare buffers held now.
    pub fn spare(&self) -> usize {
        self.buffers().len()
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
        let recycler = Recycler::new(4);
        let bytes = recycler.lend(vec![7; 1024]);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert!(recycler.take().is_none(), "a slice still refers to it");
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert_eq!(recycler.take().map(|buffer| buffer.len()), Some(1024), "back, whole");
        for _ in 0..9 {
            drop(recycler.lend(vec![0; 8]));
        }
        assert_eq!(recycler.spare(), 4, "the spare buffers are bounded");
    }
}
