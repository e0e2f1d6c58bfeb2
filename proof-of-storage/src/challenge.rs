//! Challenge derivation: `(beacon, contract, epoch) → c` pairs (fragment
//! index in the contract, chunk index in the fragment).
//!
//! Specification (v1): the stream is the BLAKE3 XOF of
//! `derive_key("strand challenge v1")` keyed over
//! `beacon ‖ contract ‖ epoch (u64 LE)`, read as little-endian u64 words.
//! Each challenge takes the next word `w` that is below the largest multiple
//! of `T` (rejection sampling, so every chunk is exactly equally likely),
//! where `T = fragment_count × chunks_per_fragment`, and challenges chunk
//! `w mod T`: fragment `(w mod T) / chunks_per_fragment`, chunk
//! `(w mod T) mod chunks_per_fragment`. Challenges are drawn independently
//! (with replacement), so a provider missing a fraction `f` of the chunks
//! passes an epoch with probability exactly `(1 - f)^c`.
//!
//! The beacon is the hash of the block that closed the previous epoch: no
//! one, the provider included, can compute an epoch's challenges before that
//! block exists.

use crate::CHUNK_BYTES;

const CONTEXT: &str = "strand challenge v1";

/// One challenge: which chunk of which fragment to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Challenge {
    /// Index of the fragment in the contract's committed list.
    pub fragment: u32,
    /// Index of the 1 KiB BLAKE3 chunk in the fragment.
    pub chunk: u32,
}

/// BLAKE3 chunks in a fragment of `fragment_size` bytes (at least one).
pub fn chunks_in(fragment_size: u32) -> u32 {
    fragment_size.div_ceil(CHUNK_BYTES as u32).max(1)
}

/// The challenges of `contract` for `epoch`. Empty if the contract commits
/// to no fragments.
pub fn derive(
    beacon: &[u8; 32],
    contract: &[u8; 32],
    epoch: u64,
    fragment_count: u32,
    fragment_size: u32,
    count: u16,
) -> Vec<Challenge> {
    let per_fragment = u64::from(chunks_in(fragment_size));
    let total = u64::from(fragment_count) * per_fragment;
    if total == 0 {
        return Vec::new();
    }
    let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
    hasher.update(beacon).update(contract).update(&epoch.to_le_bytes());
    let mut stream = hasher.finalize_xof();
    // Words at or above `limit` would make low indices likelier: skip them.
    let limit = u64::MAX - (u64::MAX % total);
    let mut challenges = Vec::with_capacity(usize::from(count));
    let mut word = [0u8; 8];
    while challenges.len() < usize::from(count) {
        stream.fill(&mut word);
        let value = u64::from_le_bytes(word);
        if value >= limit {
            continue;
        }
        let index = value % total;
        // Both fit: index / per_fragment < fragment_count ≤ u32::MAX and
        // index % per_fragment < per_fragment ≤ u32::MAX.
        let fragment = u32::try_from(index / per_fragment).unwrap_or(u32::MAX);
        let chunk = u32::try_from(index % per_fragment).unwrap_or(u32::MAX);
        challenges.push(Challenge { fragment, chunk });
    }
    challenges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_vector() {
        // Pins the v1 derivation: any change to it must be a new version.
        let challenges = derive(&[7; 32], &[9; 32], 3, 5, 1024 * 1024 + 16, 4);
        let rendered: Vec<(u32, u32)> = challenges.iter().map(|c| (c.fragment, c.chunk)).collect();
        assert_eq!(rendered, FIXED);
    }

    const FIXED: [(u32, u32); 4] = [(4, 837), (0, 295), (0, 135), (3, 108)];

    #[test]
    fn in_range_and_deterministic() {
        for (count, size) in [(1u32, 1u32), (1, 1024), (3, 1025), (100, 65_536 + 16), (7, 4 * 1024 * 1024)] {
            let a = derive(&[1; 32], &[2; 32], 10, count, size, 64);
            assert_eq!(a, derive(&[1; 32], &[2; 32], 10, count, size, 64));
            assert_eq!(a.len(), 64);
            for challenge in &a {
                assert!(challenge.fragment < count && challenge.chunk < chunks_in(size));
            }
        }
    }

    #[test]
    fn every_input_changes_the_challenges() {
        let base = derive(&[1; 32], &[2; 32], 10, 50, 1 << 20, 16);
        assert_ne!(base, derive(&[3; 32], &[2; 32], 10, 50, 1 << 20, 16));
        assert_ne!(base, derive(&[1; 32], &[3; 32], 10, 50, 1 << 20, 16));
        assert_ne!(base, derive(&[1; 32], &[2; 32], 11, 50, 1 << 20, 16));
    }

    #[test]
    fn empty_contract_has_no_challenges() {
        assert!(derive(&[1; 32], &[2; 32], 10, 0, 1 << 20, 16).is_empty());
    }
}
