//! Proof that a 1 KiB chunk belongs to a fragment, against the fragment id
//! (its BLAKE3 hash), using BLAKE3's own tree.
//!
//! BLAKE3 hashes 1 KiB chunks into chaining values and merges them pairwise
//! (the left subtree always holds the largest power of two of chunks smaller
//! than the whole); the root merge gives the hash. A proof is the challenged
//! chunk's bytes plus the chaining value of the sibling at every level of its
//! path — 32 bytes per level, `⌈log2 chunks⌉` levels (11 for a 1 MiB + 16 B
//! fragment) — the same tree bao-tree encodes and iroh-blobs keeps as each
//! blob's outboard. Verification recomputes the path with
//! `blake3::hazmat` (the crate's API for exactly this) and compares the root
//! with the fragment id.
//!
//! A node builds a proof without reading the whole fragment: iroh-blobs keeps
//! the tree above 16 KiB groups (its outboard), so [`prove_from_group`]
//! takes the outboard's parent pairs on the path down to the challenged
//! chunk's 16 KiB group, plus that group's bytes, and computes the levels
//! inside the group.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

use crate::CHUNK_BYTES;

/// Chunks per group in iroh-blobs' outboard (16 KiB).
pub const GROUP_CHUNKS: u64 = 16;

/// A chunk with the sibling chaining values of its path, bottom-up.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct ChunkProof {
    /// The chunk's bytes (1 KiB, or less for a fragment's last chunk).
    pub data: Vec<u8>,
    /// Sibling chaining values, from the chunk's level up to the root's.
    pub siblings: Vec<[u8; 32]>,
}

/// Why a proof could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProveError {
    /// The chunk is not inside the fragment.
    #[error("chunk {chunk} is outside a fragment of {size} bytes")]
    OutOfRange {
        /// The chunk.
        chunk: u64,
        /// The fragment's size.
        size: u64,
    },
    /// The store's tree does not have the expected shape.
    #[error("expected {expected} outboard parents above the chunk's group, found {found}")]
    ParentCount {
        /// How many the path needs.
        expected: usize,
        /// How many were given.
        found: usize,
    },
    /// The group's bytes are not the expected length.
    #[error("the chunk's group should hold {expected} bytes, found {found}")]
    GroupLength {
        /// Expected length.
        expected: u64,
        /// Given length.
        found: usize,
    },
}

/// One level of a chunk's path: the node split there and the sibling's span.
#[derive(Clone, Copy, Debug)]
struct Level {
    /// Chunks under the node being split.
    node_chunks: u64,
    /// The sibling subtree: first chunk and chunk count.
    sibling_start: u64,
    sibling_chunks: u64,
    /// Whether the sibling is the left child.
    sibling_is_left: bool,
}

fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_BYTES as u64).max(1)
}

/// The path from the root down to `chunk`, top-down.
fn path(size: u64, chunk: u64) -> Vec<Level> {
    let (mut start, mut len) = (0u64, chunk_count(size));
    let mut levels = Vec::new();
    while len > 1 {
        let left = left_subtree_len(len * CHUNK_BYTES as u64) / CHUNK_BYTES as u64;
        if chunk < start + left {
            levels.push(Level {
                node_chunks: len,
                sibling_start: start + left,
                sibling_chunks: len - left,
                sibling_is_left: false,
            });
            len = left;
        } else {
            levels.push(Level { node_chunks: len, sibling_start: start, sibling_chunks: left, sibling_is_left: true });
            start += left;
            len -= left;
        }
    }
    levels
}

/// Byte span `[from, to)` of `chunks` chunks from `start` in a blob of `size`.
fn span(size: u64, start: u64, chunks: u64) -> (u64, u64) {
    let from = (start * CHUNK_BYTES as u64).min(size);
    let to = ((start + chunks) * CHUNK_BYTES as u64).min(size);
    (from, to)
}

/// Chaining value of the (non-root) subtree holding `data` from chunk `start`.
fn subtree_cv(start: u64, data: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(start * CHUNK_BYTES as u64);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// Proves `chunk` from the whole fragment (tests, the simulator).
pub fn prove_from_fragment(fragment: &[u8], chunk: u64) -> Result<ChunkProof, ProveError> {
    let size = fragment.len() as u64;
    if chunk >= chunk_count(size) {
        return Err(ProveError::OutOfRange { chunk, size });
    }
    let levels = path(size, chunk);
    let mut siblings: Vec<[u8; 32]> = levels
        .iter()
        .map(|level| {
            let (from, to) = span(size, level.sibling_start, level.sibling_chunks);
            subtree_cv(level.sibling_start, &fragment[from as usize..to as usize])
        })
        .collect();
    siblings.reverse();
    let (from, to) = span(size, chunk, 1);
    Ok(ChunkProof { data: fragment[from as usize..to as usize].to_vec(), siblings })
}

/// The 16 KiB group holding `chunk`: first chunk and byte span.
pub fn group_of(size: u64, chunk: u64) -> (u64, u64, u64) {
    let first = chunk / GROUP_CHUNKS * GROUP_CHUNKS;
    let (from, to) = span(size, first, GROUP_CHUNKS);
    (first, from, to)
}

/// Proves `chunk` of a fragment of `size` bytes from the outboard's parent
/// pairs on the path down to the chunk's 16 KiB group (top-down, as
/// iroh-blobs' `export_bao` of that group yields them) and the group's bytes.
pub fn prove_from_group(
    size: u64,
    chunk: u64,
    parents: &[([u8; 32], [u8; 32])],
    group: &[u8],
) -> Result<ChunkProof, ProveError> {
    if chunk >= chunk_count(size) {
        return Err(ProveError::OutOfRange { chunk, size });
    }
    let (_, from, to) = group_of(size, chunk);
    if group.len() as u64 != to - from {
        return Err(ProveError::GroupLength { expected: to - from, found: group.len() });
    }
    let levels = path(size, chunk);
    let upper = levels.iter().filter(|level| level.node_chunks > GROUP_CHUNKS).count();
    if parents.len() != upper {
        return Err(ProveError::ParentCount { expected: upper, found: parents.len() });
    }
    let mut siblings = Vec::with_capacity(levels.len());
    for (depth, level) in levels.iter().enumerate() {
        let cv = if level.node_chunks > GROUP_CHUNKS {
            let (left, right) = parents[depth];
            if level.sibling_is_left { left } else { right }
        } else {
            let (start, end) = span(size, level.sibling_start, level.sibling_chunks);
            subtree_cv(level.sibling_start, &group[(start - from) as usize..(end - from) as usize])
        };
        siblings.push(cv);
    }
    siblings.reverse();
    let (start, end) = span(size, chunk, 1);
    Ok(ChunkProof { data: group[(start - from) as usize..(end - from) as usize].to_vec(), siblings })
}

/// Whether `proof` shows chunk `chunk` of the fragment `id` of `size` bytes.
/// Never panics on hostile input.
pub fn verify(id: &[u8; 32], size: u64, chunk: u64, proof: &ChunkProof) -> bool {
    if chunk >= chunk_count(size) {
        return false;
    }
    let levels = path(size, chunk);
    let (from, to) = span(size, chunk, 1);
    if proof.data.len() as u64 != to - from || proof.siblings.len() != levels.len() {
        return false;
    }
    if levels.is_empty() {
        return blake3::hash(&proof.data).as_bytes() == id;
    }
    let mut cv = subtree_cv(chunk, &proof.data);
    // Bottom-up: the last level of `levels` is the lowest.
    for (height, (level, sibling)) in levels.iter().rev().zip(&proof.siblings).enumerate() {
        let (left, right) = if level.sibling_is_left { (sibling, &cv) } else { (&cv, sibling) };
        if height + 1 == levels.len() {
            return merge_subtrees_root(left, right, Mode::Hash).as_bytes() == id;
        }
        cv = merge_subtrees_non_root(left, right, Mode::Hash);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    #[test]
    fn honest_proofs_verify_at_every_chunk() {
        for size in [1usize, 1023, 1024, 1025, 2048, 3 * 1024 + 5, 16 * 1024, 16 * 1024 + 1, 70_000] {
            let fragment = data(size);
            let id = *blake3::hash(&fragment).as_bytes();
            for chunk in 0..chunk_count(size as u64) {
                let proof = prove_from_fragment(&fragment, chunk).expect("in range");
                assert!(verify(&id, size as u64, chunk, &proof), "size {size} chunk {chunk}");
            }
        }
    }
}
