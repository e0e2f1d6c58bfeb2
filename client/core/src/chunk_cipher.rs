//! Encryption of one chunk: ChaCha20-Poly1305 under the chunk's own key, with
//! associated data binding the format version, the upload id and the chunk's
//! position, so a chunk moved to another upload or position fails to decrypt.
//!
//! Each chunk key encrypts exactly one chunk (a fresh master key per upload,
//! a distinct key per position, chunks are never re-encrypted: repair works
//! on ciphertext), so the nonce is fixed at zero.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use crate::ids::UploadId;
use crate::keys::ChunkKey;
use crate::params::TAG_LEN;

/// Version of the codec format, bound into every chunk and written in the
/// recovery index.
pub const CODEC_FORMAT_VERSION: u16 = 1;

/// Length of the associated data of a chunk.
const ASSOCIATED_DATA_LEN: usize = 2 + 16 + 8;

fn associated_data(upload: &UploadId, position: u64) -> [u8; ASSOCIATED_DATA_LEN] {
    let mut data = [0u8; ASSOCIATED_DATA_LEN];
    data[..2].copy_from_slice(&CODEC_FORMAT_VERSION.to_le_bytes());
    data[2..18].copy_from_slice(upload.as_bytes());
    data[18..].copy_from_slice(&position.to_le_bytes());
    data
}

/// A chunk whose ciphertext does not authenticate under the key, upload and
/// position the recovery index gives for it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "chunk at position {position} failed authentication: the recovery index does not match this fragment (another upload's index, or altered)"
)]
pub struct ChunkAuthenticationError {
    /// The chunk's position in the file.
    pub position: u64,
}

/// Encrypts `fragment[..len - TAG_LEN]` in place and writes the tag into the
/// last [`TAG_LEN`] bytes, turning a padded plaintext chunk into a fragment.
pub fn encrypt_chunk(key: &ChunkKey, upload: &UploadId, position: u64, fragment: &mut [u8]) {
    let split = fragment.len().checked_sub(TAG_LEN).expect("fragment holds a tag");
    let (body, tag_space) = fragment.split_at_mut(split);
    let cipher = ChaCha20Poly1305::new(&Key::from(*key.as_bytes()));
    let tag = cipher
        .encrypt_inout_detached(&Nonce::default(), &associated_data(upload, position), body.into())
        .expect("a chunk is far below the ChaCha20-Poly1305 message limit");
    tag_space.copy_from_slice(&tag);
}

/// Checks and decrypts a fragment in place; on success the plaintext is
/// `fragment[..len - TAG_LEN]`. On failure the buffer is garbage.
pub fn decrypt_chunk(
    key: &ChunkKey,
    upload: &UploadId,
    position: u64,
    fragment: &mut [u8],
) -> Result<(), ChunkAuthenticationError> {
    let split = fragment.len().checked_sub(TAG_LEN).ok_or(ChunkAuthenticationError { position })?;
    let (body, tag) = fragment.split_at_mut(split);
    let tag = Tag::try_from(&*tag).map_err(|_| ChunkAuthenticationError { position })?;
    let cipher = ChaCha20Poly1305::new(&Key::from(*key.as_bytes()));
    cipher
        .decrypt_inout_detached(&Nonce::default(), &associated_data(upload, position), body.into(), &tag)
        .map_err(|_| ChunkAuthenticationError { position })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    fn sealed(master: &MasterKey, upload: &UploadId, position: u64, text: &[u8]) -> Vec<u8> {
        let mut fragment = text.to_vec();
        fragment.extend_from_slice(&[0; TAG_LEN]);
        encrypt_chunk(&master.chunk_key(position), upload, position, &mut fragment);
        fragment
    }

    #[test]
    fn round_trips_and_binds_upload_and_position() {
        let master = MasterKey::from_bytes([3; 32]);
        let upload = UploadId::from_bytes([4; 16]);
        let fragment = sealed(&master, &upload, 5, b"ACGTACGTACGT");
        assert_ne!(&fragment[..12], b"ACGTACGTACGT");

        let mut copy = fragment.clone();
        decrypt_chunk(&master.chunk_key(5), &upload, 5, &mut copy).expect("authentic");
        assert_eq!(&copy[..12], b"ACGTACGTACGT");

        let other_upload = UploadId::from_bytes([5; 16]);
        let mut copy = fragment.clone();
        assert_eq!(
            decrypt_chunk(&master.chunk_key(5), &other_upload, 5, &mut copy),
            Err(ChunkAuthenticationError { position: 5 })
        );
        // The right key but the wrong position in the associated data.
        let mut copy = fragment.clone();
        assert!(decrypt_chunk(&master.chunk_key(5), &upload, 6, &mut copy).is_err());
        let mut flipped = fragment.clone();
        flipped[0] ^= 1;
        assert!(decrypt_chunk(&master.chunk_key(5), &upload, 5, &mut flipped).is_err());
        assert!(decrypt_chunk(&master.chunk_key(5), &upload, 5, &mut [0u8; 3]).is_err());
    }

    /// Fixed vector: the chunk encryption is part of the format.
    #[test]
    fn encryption_matches_fixed_vector() {
        let master = MasterKey::from_bytes([1; 32]);
        let upload = UploadId::from_bytes([2; 16]);
        let fragment = sealed(&master, &upload, 3, b"strand");
        assert_eq!(hex::encode(fragment), "722fc354025511c0027a23faf76ef943eceebe744231");
    }
}
