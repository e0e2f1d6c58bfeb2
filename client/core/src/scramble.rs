//! The scramble: a keyed pseudorandom permutation of chunk positions, so a
//! stripe holds chunks from unrelated places in the file and the providers of
//! one stripe learn nothing about which region of a genome they hold.
//!
//! The permutation is a Fisher-Yates shuffle driven by the BLAKE3 XOF keyed
//! with the scramble seed, with rejection sampling for unbiased indices. It is
//! specified here completely (not delegated to a general-purpose RNG crate
//! whose algorithms may change between versions) because it is part of the
//! persisted format: the fixed vector in the tests pins it.
//!
//! Slot `i` of the upload (stripe `i / k`, data shard `i % k`) holds the chunk
//! at file position `slot_to_position[i]`. Positions at or past the file's
//! chunk count are padding chunks.

/// The permutation of one upload, both directions kept in memory
/// (8 bytes a slot, bounded by [`crate::params::SLOT_COUNT_MAX`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scramble {
    slot_to_position: Vec<u32>,
    position_to_slot: Vec<u32>,
}

impl Scramble {
    /// The permutation of `slot_count` slots under `seed`.
    ///
    /// `slot_count` must fit in a `u32`; [`crate::params::Layout`] enforces a
    /// far smaller limit.
    pub fn new(seed: &[u8; 32], slot_count: u64) -> Self {
        let count = u32::try_from(slot_count).expect("slot count bounded by Layout::new");
        let mut slot_to_position: Vec<u32> = (0..count).collect();
        let mut stream = blake3::Hasher::new_keyed(seed).finalize_xof();
        let mut next_u64 = || {
            let mut bytes = [0u8; 8];
            stream.fill(&mut bytes);
            u64::from_le_bytes(bytes)
        };
        for upper in (1..slot_to_position.len()).rev() {
            let bound = upper as u64 + 1;
            // Largest multiple of `bound` that fits: values at or above it
            // would make low indices more likely, so draw again.
            let zone = u64::MAX - (u64::MAX % bound);
            let draw = loop {
                let value = next_u64();
                if value < zone {
                    break value % bound;
                }
            };
            slot_to_position.swap(upper, draw as usize);
        }
        let mut position_to_slot = vec![0u32; slot_to_position.len()];
        for (slot, &position) in slot_to_position.iter().enumerate() {
            position_to_slot[position as usize] = slot as u32;
        }
        Self { slot_to_position, position_to_slot }
    }

    /// The file position of the chunk held in `slot`.
    pub fn position_of_slot(&self, slot: u64) -> u64 {
        u64::from(self.slot_to_position[slot as usize])
    }

    /// The slot holding the chunk at file `position`.
    pub fn slot_of_position(&self, position: u64) -> u64 {
        u64::from(self.position_to_slot[position as usize])
    }

    /// Number of slots.
    pub fn len(&self) -> u64 {
        self.slot_to_position.len() as u64
    }

    /// Whether there are no slots (never for a valid layout).
    pub fn is_empty(&self) -> bool {
        self.slot_to_position.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fixed vector: the scramble is part of the format.
    #[test]
    fn permutation_matches_fixed_vector() {
        let scramble = Scramble::new(&[9; 32], 12);
        let slots: Vec<u64> = (0..12).map(|slot| scramble.position_of_slot(slot)).collect();
        assert_eq!(slots, vec![8, 11, 7, 1, 4, 3, 9, 0, 2, 5, 6, 10]);
    }

    proptest! {
        #[test]
        fn is_a_permutation_and_inverse(seed in any::<[u8; 32]>(), count in 1u64..2000) {
            let scramble = Scramble::new(&seed, count);
            let mut seen = vec![false; count as usize];
            for slot in 0..count {
                let position = scramble.position_of_slot(slot);
                prop_assert!(!seen[position as usize]);
                seen[position as usize] = true;
                prop_assert_eq!(scramble.slot_of_position(position), slot);
            }
        }
    }

    #[test]
    fn different_seeds_scatter_differently() {
        let first = Scramble::new(&[1; 32], 1000);
        let second = Scramble::new(&[2; 32], 1000);
        assert_ne!(first, second);
        let fixed_points = (0..1000).filter(|&slot| first.position_of_slot(slot) == slot).count();
        // A uniform permutation has one fixed point on average.
        assert!(fixed_points < 10, "{fixed_points} fixed points: not scrambled");
    }
}
