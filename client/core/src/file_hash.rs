//! The BLAKE3 hash of a whole file, computed from independently hashed chunks.
//!
//! The encoder reads chunks in scrambled order and both encoder and decoder
//! work on several chunks at once, so the file hash cannot be a single
//! sequential `Hasher`. Chunk sizes are powers of two of at least one BLAKE3
//! chunk (1 KiB), which makes every codec chunk a subtree of the file's BLAKE3
//! tree: each is hashed on its own into a chaining value (with
//! `blake3::hazmat`, the crate's own API for this), and the chaining values are
//! merged along the tree's shape at the end. The result is exactly
//! `blake3::hash(file)`, as the tests check.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

use crate::params::Layout;

/// The digest of one chunk: a chaining value, or the root itself when the
/// file is a single chunk (a one-chunk tree has no parent node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkDigest {
    /// Non-root chaining value of a chunk of a multi-chunk file.
    Subtree(ChainingValue),
    /// The file's hash: the file is this one chunk.
    Root(blake3::Hash),
}

/// Hashes the file bytes of the chunk at `position` (its true length, without
/// padding).
pub fn chunk_digest(layout: &Layout, position: u64, bytes: &[u8]) -> ChunkDigest {
    if layout.chunk_count == 1 {
        return ChunkDigest::Root(blake3::hash(bytes));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(layout.chunk_offset(position));
    hasher.update(bytes);
    ChunkDigest::Subtree(hasher.finalize_non_root())
}

/// Collects chunk digests in any order and merges them into the file hash.
#[derive(Debug)]
pub struct FileHasher {
    layout: Layout,
    digests: Vec<Option<ChunkDigest>>,
}

/// A chunk digest is missing when the file hash is asked for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the file hash is missing the digest of chunk {position}")]
pub struct MissingChunkDigest {
    /// The first position without a digest.
    pub position: u64,
}

impl FileHasher {
    /// A hasher for a file of `layout`.
    pub fn new(layout: Layout) -> Self {
        Self { layout, digests: vec![None; layout.chunk_count as usize] }
    }

    /// Records the digest of the chunk at `position` (padding positions are
    /// ignored).
    pub fn insert(&mut self, position: u64, digest: ChunkDigest) {
        if let Some(slot) = self.digests.get_mut(position as usize) {
            *slot = Some(digest);
        }
    }

    /// The BLAKE3 hash of the whole file.
    pub fn finish(&self) -> Result<blake3::Hash, MissingChunkDigest> {
        let mut values = Vec::with_capacity(self.digests.len());
        for (position, digest) in self.digests.iter().enumerate() {
            match digest {
                Some(ChunkDigest::Root(hash)) => return Ok(*hash),
                Some(ChunkDigest::Subtree(value)) => values.push(*value),
                None => return Err(MissingChunkDigest { position: position as u64 }),
            }
        }
        let (left, right) = self.split(&values, self.layout.file_length);
        Ok(merge_subtrees_root(&left, &right, Mode::Hash))
    }

    /// Chaining values of the two children of a subtree of `length` bytes
    /// whose chunks' values are `values`.
    fn split(&self, values: &[ChainingValue], length: u64) -> (ChainingValue, ChainingValue) {
        let left_length = left_subtree_len(length);
        let left_chunks = left_length.div_ceil(u64::from(self.layout.params.chunk_size)) as usize;
        let (left_values, right_values) = values.split_at(left_chunks);
        (self.merge(left_values, left_length), self.merge(right_values, length - left_length))
    }

    fn merge(&self, values: &[ChainingValue], length: u64) -> ChainingValue {
        if values.len() == 1 {
            return values[0];
        }
        let (left, right) = self.split(values, length);
        merge_subtrees_non_root(&left, &right, Mode::Hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::CodecParams;
    use proptest::prelude::*;

    fn hash_by_chunks(chunk_size: u32, data: &[u8], reverse: bool) -> blake3::Hash {
        let params = CodecParams { chunk_size, data_shards: 2, parity_shards: 1 };
        let layout = Layout::new(params, data.len() as u64).expect("valid");
        let mut hasher = FileHasher::new(layout);
        let mut positions: Vec<u64> = (0..layout.chunk_count).collect();
        if reverse {
            positions.reverse();
        }
        for position in positions {
            let start = layout.chunk_offset(position) as usize;
            let bytes = &data[start..start + layout.chunk_length(position)];
            hasher.insert(position, chunk_digest(&layout, position, bytes));
        }
        hasher.finish().expect("all chunks")
    }

    proptest! {
        #[test]
        fn equals_plain_blake3(length in 0usize..40_000, shift in 0u32..4, reverse: bool) {
            let data: Vec<u8> = (0..length).map(|i| (i * 31 % 251) as u8).collect();
            let chunk_size = 1024 << shift;
            prop_assert_eq!(hash_by_chunks(chunk_size, &data, reverse), blake3::hash(&data));
        }
    }

    #[test]
    fn boundary_lengths_equal_plain_blake3() {
        // Exactly one chunk, one byte over, and exact multiples of chunks.
        for length in [0, 1, 1023, 1024, 1025, 2048, 3072, 4095, 4096, 4097, 5 * 1024 + 7] {
            let data = vec![0xa5; length];
            assert_eq!(hash_by_chunks(1024, &data, false), blake3::hash(&data), "length {length}");
        }
    }

    #[test]
    fn a_missing_chunk_is_reported() {
        let params = CodecParams { chunk_size: 1024, data_shards: 2, parity_shards: 1 };
        let layout = Layout::new(params, 3000).expect("valid");
        let hasher = FileHasher::new(layout);
        assert_eq!(hasher.finish(), Err(MissingChunkDigest { position: 0 }));
    }
}
