//! Challenges and the random stream they are drawn from.
//!
//! A challenge names one 1 KiB BLAKE3 chunk of one fragment of a contract.
//! Which chunks are challenged in an epoch is decided per provider by
//! [`crate::schedule`]; this module holds the pieces it is built from: the
//! challenge itself and a stream of uniform draws.
//!
//! Stream specification (v2): the BLAKE3 XOF of
//! `derive_key("strand schedule v2")` keyed over
//! `beacon ‖ provider ‖ epoch (u64 LE)`, read as little-endian u64 words. A
//! draw below `n` takes the next word `w` that is below the largest multiple
//! of `n` (rejection sampling, so every value is exactly equally likely) and
//! returns `w mod n`.

use crate::CHUNK_BYTES;

const CONTEXT: &str = "strand schedule v2";

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

/// Chunks in a contract of `fragment_count` fragments of `fragment_size`.
pub fn contract_chunks(fragment_count: u32, fragment_size: u32) -> u64 {
    u64::from(fragment_count) * u64::from(chunks_in(fragment_size))
}

/// The challenge for the `index`-th chunk of a contract, counting chunk by
/// chunk through its fragments in order.
pub fn at(index: u64, fragment_size: u32) -> Challenge {
    let per_fragment = u64::from(chunks_in(fragment_size));
    // Both fit for an index below the contract's chunk count: the fragment
    // index is below a u32 count and the chunk index below a u32 per fragment.
    Challenge {
        fragment: u32::try_from(index / per_fragment).unwrap_or(u32::MAX),
        chunk: u32::try_from(index % per_fragment).unwrap_or(u32::MAX),
    }
}

/// Uniform draws for one provider and epoch, unknown to anyone before the
/// beacon exists.
pub struct Stream {
    reader: blake3::OutputReader,
}

impl Stream {
    /// The stream of `provider` for `epoch` under `beacon`.
    pub fn new(beacon: &[u8; 32], provider: &[u8; 32], epoch: u64) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
        hasher.update(beacon).update(provider).update(&epoch.to_le_bytes());
        Self { reader: hasher.finalize_xof() }
    }

    /// A value uniform in `[0, n)`; `0` when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Words at or above `limit` would make low values likelier: skip them.
        let limit = u64::MAX - (u64::MAX % n);
        let mut word = [0u8; 8];
        loop {
            self.reader.fill(&mut word);
            let value = u64::from_le_bytes(word);
            if value < limit {
                return value % n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_vector() {
        // Pins the v2 stream: any change to it must be a new version.
        let mut stream = Stream::new(&[7; 32], &[9; 32], 3);
        let draws: Vec<u64> = [5u64, 1_000, 1 << 40, 3].iter().map(|n| stream.below(*n)).collect();
        assert_eq!(draws, FIXED);
    }

    const FIXED: [u64; 4] = [2, 61, 1_080_363_840_240, 1];

    #[test]
    fn draws_are_in_range_and_every_input_changes_them() {
        let draw = |beacon: u8, provider: u8, epoch: u64| {
            let mut stream = Stream::new(&[beacon; 32], &[provider; 32], epoch);
            (0..16).map(|_| stream.below(1 << 30)).collect::<Vec<_>>()
        };
        let base = draw(1, 2, 10);
        assert!(base.iter().all(|value| *value < 1 << 30));
        assert_eq!(base, draw(1, 2, 10));
        assert_ne!(base, draw(3, 2, 10));
        assert_ne!(base, draw(1, 3, 10));
        assert_ne!(base, draw(1, 2, 11));
        let mut stream = Stream::new(&[1; 32], &[2; 32], 3);
        assert_eq!(stream.below(0), 0);
        assert_eq!(stream.below(1), 0);
    }

    #[test]
    fn chunk_indices_map_to_fragments_in_order() {
        // 3 chunks per fragment of 2,049 bytes.
        assert_eq!(contract_chunks(4, 2049), 12);
        assert_eq!(at(0, 2049), Challenge { fragment: 0, chunk: 0 });
        assert_eq!(at(5, 2049), Challenge { fragment: 1, chunk: 2 });
        assert_eq!(at(11, 2049), Challenge { fragment: 3, chunk: 2 });
        assert_eq!(chunks_in(0), 1);
    }
}
