//! The per-upload master key and everything derived from it.
//!
//! Every derivation is BLAKE3 `derive_key` with its own versioned context
//! string, so keys for different purposes are independent and a change of
//! scheme is a new context string, never a silent reinterpretation.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Context for per-chunk encryption keys; key material is
/// `master key || chunk position (u64 little endian)`.
pub const CHUNK_KEY_CONTEXT: &str = "strand chunk key v1";
/// Context for the scramble seed; key material is the master key.
pub const SCRAMBLE_SEED_CONTEXT: &str = "strand scramble seed v1";
/// Length of every key in this module.
pub const KEY_LEN: usize = 32;

/// The random 256-bit key of one upload. Whoever holds it can derive every
/// chunk key and the scramble, so it lives only inside the sealed recovery
/// index and is never given to a grantee.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; KEY_LEN]);

impl MasterKey {
    /// A fresh random master key.
    pub fn random(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps raw key bytes (from a recovery index).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes, for serialising into the recovery index.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key that encrypts the chunk at `position` (its place in the file).
    pub fn chunk_key(&self, position: u64) -> ChunkKey {
        let mut material = [0u8; KEY_LEN + 8];
        material[..KEY_LEN].copy_from_slice(&self.0);
        material[KEY_LEN..].copy_from_slice(&position.to_le_bytes());
        let key = ChunkKey(blake3::derive_key(CHUNK_KEY_CONTEXT, &material));
        material.zeroize();
        key
    }

    /// The seed of the scramble permutation.
    pub fn scramble_seed(&self) -> [u8; KEY_LEN] {
        blake3::derive_key(SCRAMBLE_SEED_CONTEXT, &self.0)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The key of one chunk. It is used for exactly one encryption, which is why
/// the chunk cipher can use a fixed nonce.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ChunkKey([u8; KEY_LEN]);

impl ChunkKey {
    /// Wraps raw key bytes (a grantee receives chunk keys, not the master key).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for ChunkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed vectors: changing a derivation is a format change.
    #[test]
    fn derivations_match_fixed_vectors() {
        let master = MasterKey::from_bytes([0x42; KEY_LEN]);
        assert_eq!(
            hex::encode(master.chunk_key(0).as_bytes()),
            hex::encode(blake3::derive_key(CHUNK_KEY_CONTEXT, &[[0x42; 32].as_slice(), &[0; 8]].concat()))
        );
        assert_eq!(
            hex::encode(master.chunk_key(7).as_bytes()),
            "33ab408852cb5b10101d6fffe22f70def6eccaa58fa7cc274b19ea32171f6348"
        );
        assert_eq!(
            hex::encode(master.scramble_seed()),
            "6da989ee73b249e03ef2eda656b403f89a7efbd30c4806cdb9f533f4215e3b37"
        );
    }

    #[test]
    fn chunk_keys_differ_per_position_and_master_key() {
        let first = MasterKey::from_bytes([1; KEY_LEN]);
        let second = MasterKey::from_bytes([2; KEY_LEN]);
        assert_ne!(first.chunk_key(0), first.chunk_key(1));
        assert_ne!(first.chunk_key(0), second.chunk_key(0));
        assert_ne!(first.scramble_seed(), *first.chunk_key(0).as_bytes());
    }
}
