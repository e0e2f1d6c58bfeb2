//! The recovery index: everything needed to turn fragments back into the
//! file. Only the owner holds it whole, and only sealed (see `seal`).
//!
//! # Format, version 1 (all integers little endian)
//! ```text
//! magic          8   "STRNDIDX"
//! version        2   1
//! upload id     16
//! file length    8
//! file BLAKE3   32
//! chunk size     4
//! k              2
//! m              2
//! master key    32
//! scramble seed 32   derived from the master key; checked on read
//! stripe count   8   must equal what the file length and parameters give
//! fragment ids  32 × (k+m) × stripe count, stripe by stripe, data shards first
//! ```
//! The length of the record is fully determined by its header, so a truncated
//! or extended record is rejected before any field is trusted.

use crate::ids::{FRAGMENT_ID_LEN, FragmentId, UPLOAD_ID_LEN, UploadId};
use crate::keys::{KEY_LEN, MasterKey};
use crate::params::{CodecParams, Layout, ParamsError};

/// Magic bytes that open an encoded recovery index.
pub const INDEX_MAGIC: &[u8; 8] = b"STRNDIDX";
/// The index format version this build writes and reads.
pub const INDEX_FORMAT_VERSION: u16 = 1;
/// Bytes before the fragment ids.
pub const INDEX_HEADER_LEN: usize = 8 + 2 + UPLOAD_ID_LEN + 8 + 32 + 4 + 2 + 2 + KEY_LEN + 32 + 8;

/// The owner's whole knowledge of one upload.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryIndex {
    /// The upload's id, bound into every chunk.
    pub upload_id: UploadId,
    /// The file's BLAKE3 hash, checked after a full decode.
    pub file_hash: blake3::Hash,
    /// The true file length and the codec parameters.
    pub layout: Layout,
    /// The key every chunk key and the scramble derive from.
    pub master_key: MasterKey,
    /// `(k+m) × stripe_count` ids, stripe by stripe, data shards first.
    fragment_ids: Vec<FragmentId>,
}

impl std::fmt::Debug for RecoveryIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryIndex")
            .field("upload_id", &self.upload_id)
            .field("layout", &self.layout)
            .field("fragments", &self.fragment_ids.len())
            .finish_non_exhaustive()
    }
}

/// Bytes that are not a recovery index this build can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexFormatError {
    /// Fewer bytes than the header or the header's stated length.
    #[error("recovery index is truncated: {actual} bytes, expected {expected}")]
    Truncated {
        /// Bytes needed.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Bytes after the last fragment id.
    #[error("recovery index has {extra} unexpected bytes after its end")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// Not a recovery index.
    #[error("not a strand recovery index (bad magic bytes)")]
    BadMagic,
    /// Written by a newer or unknown format.
    #[error(
        "recovery index format version {found} is not supported (this build reads version {INDEX_FORMAT_VERSION}): upgrade strand"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// The recorded parameters are not valid.
    #[error("recovery index records invalid parameters: {0}")]
    Params(#[from] ParamsError),
    /// The stripe count disagrees with the file length and parameters.
    #[error("recovery index records {recorded} stripes but its file length and parameters give {expected}")]
    StripeCount {
        /// Recorded.
        recorded: u64,
        /// Implied.
        expected: u64,
    },
    /// The scramble seed is not the one the master key derives.
    #[error("recovery index is inconsistent: its scramble seed does not derive from its master key")]
    ScrambleSeed,
}

impl RecoveryIndex {
    /// Assembles an index; `fragment_ids` must hold `(k+m)` ids per stripe.
    pub fn new(
        upload_id: UploadId,
        file_hash: blake3::Hash,
        layout: Layout,
        master_key: MasterKey,
        fragment_ids: Vec<FragmentId>,
    ) -> Self {
        assert_eq!(fragment_ids.len() as u64, layout.fragment_count(), "one id per fragment");
        Self { upload_id, file_hash, layout, master_key, fragment_ids }
    }

    /// The codec parameters.
    pub fn params(&self) -> CodecParams {
        self.layout.params
    }

    /// The ids of stripe `stripe`: k data fragments, then m parity fragments.
    pub fn stripe(&self, stripe: u64) -> &[FragmentId] {
        let width = self.params().fragments_per_stripe();
        let start = stripe as usize * width;
        &self.fragment_ids[start..start + width]
    }

    /// Every fragment id, stripe by stripe.
    pub fn fragment_ids(&self) -> &[FragmentId] {
        &self.fragment_ids
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let params = self.params();
        let mut out = Vec::with_capacity(INDEX_HEADER_LEN + self.fragment_ids.len() * FRAGMENT_ID_LEN);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&INDEX_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(self.upload_id.as_bytes());
        out.extend_from_slice(&self.layout.file_length.to_le_bytes());
        out.extend_from_slice(self.file_hash.as_bytes());
        out.extend_from_slice(&params.chunk_size.to_le_bytes());
        out.extend_from_slice(&params.data_shards.to_le_bytes());
        out.extend_from_slice(&params.parity_shards.to_le_bytes());
        out.extend_from_slice(self.master_key.as_bytes());
        out.extend_from_slice(&self.master_key.scramble_seed());
        out.extend_from_slice(&self.layout.stripe_count.to_le_bytes());
        for id in &self.fragment_ids {
            out.extend_from_slice(id.as_bytes());
        }
        out
    }

    /// Parses and checks an encoded index.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexFormatError> {
        let mut reader = Reader { bytes, at: 0 };
        if bytes.len() >= INDEX_MAGIC.len() && &bytes[..INDEX_MAGIC.len()] != INDEX_MAGIC {
            return Err(IndexFormatError::BadMagic);
        }
        if bytes.len() < INDEX_HEADER_LEN {
            return Err(IndexFormatError::Truncated { expected: INDEX_HEADER_LEN, actual: bytes.len() });
        }
        reader.take::<8>();
        let version = u16::from_le_bytes(reader.take());
        if version != INDEX_FORMAT_VERSION {
            return Err(IndexFormatError::UnsupportedVersion { found: version });
        }
        let upload_id = UploadId::from_bytes(reader.take());
        let file_length = u64::from_le_bytes(reader.take());
        let file_hash = blake3::Hash::from_bytes(reader.take());
        let params = CodecParams {
            chunk_size: u32::from_le_bytes(reader.take()),
            data_shards: u16::from_le_bytes(reader.take()),
            parity_shards: u16::from_le_bytes(reader.take()),
        };
        let master_key = MasterKey::from_bytes(reader.take());
        let scramble_seed: [u8; KEY_LEN] = reader.take();
        let recorded = u64::from_le_bytes(reader.take());
        let layout = Layout::new(params, file_length)?;
        if recorded != layout.stripe_count {
            return Err(IndexFormatError::StripeCount { recorded, expected: layout.stripe_count });
        }
        let expected = INDEX_HEADER_LEN + layout.fragment_count() as usize * FRAGMENT_ID_LEN;
        if bytes.len() < expected {
            return Err(IndexFormatError::Truncated { expected, actual: bytes.len() });
        }
        if bytes.len() > expected {
            return Err(IndexFormatError::TrailingBytes { extra: bytes.len() - expected });
        }
        if scramble_seed != master_key.scramble_seed() {
            return Err(IndexFormatError::ScrambleSeed);
        }
        let fragment_ids = bytes[INDEX_HEADER_LEN..]
            .chunks_exact(FRAGMENT_ID_LEN)
            .map(|id| FragmentId::from_bytes(id.try_into().expect("exact chunks")))
            .collect();
        Ok(Self { upload_id, file_hash, layout, master_key, fragment_ids })
    }
}

/// Reads fixed-size fields from a buffer already checked to be long enough.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let field = self.bytes[self.at..self.at + N].try_into().expect("length checked before reading");
        self.at += N;
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(stripes_of_bytes: u64) -> RecoveryIndex {
        let params = CodecParams { chunk_size: 1024, data_shards: 2, parity_shards: 1 };
        let layout = Layout::new(params, stripes_of_bytes).expect("valid");
        let ids = (0..layout.fragment_count()).map(|i| FragmentId::from_bytes([i as u8; 32])).collect();
        RecoveryIndex::new(
            UploadId::from_bytes([0x11; 16]),
            blake3::Hash::from_bytes([0x22; 32]),
            layout,
            MasterKey::from_bytes([0x33; 32]),
            ids,
        )
    }

    /// Fixed vector: regenerating it is an explicit approval of a new format.
    #[test]
    fn encoding_matches_fixed_vector() {
        let encoded = sample(10);
        assert_eq!(
            hex::encode(encoded.to_bytes()),
            "5354524e444944580100111111111111111111111111111111110a000000000000002222222222222222222222222222222222222222222222222222222222222222000400000200010033333333333333333333333333333333333333333333333333333333333333336349ccca2ed95f4c47f543a54cc91f5f569a07f02ae0a38bf4dde296a38ac5460100000000000000000000000000000000000000000000000000000000000000000000000000000001010101010101010101010101010101010101010101010101010101010101010202020202020202020202020202020202020202020202020202020202020202"
        );
    }

    proptest! {
        #[test]
        fn round_trips(length in 0u64..100_000) {
            let index = sample(length);
            prop_assert_eq!(RecoveryIndex::from_bytes(&index.to_bytes()), Ok(index));
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = RecoveryIndex::from_bytes(&bytes);
        }
    }

    #[test]
    fn rejects_each_kind_of_damage_with_its_own_error() {
        let bytes = sample(5000).to_bytes();
        let short = &bytes[..bytes.len() - 1];
        assert!(matches!(RecoveryIndex::from_bytes(short), Err(IndexFormatError::Truncated { .. })));
        assert!(matches!(RecoveryIndex::from_bytes(&bytes[..20]), Err(IndexFormatError::Truncated { .. })));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(RecoveryIndex::from_bytes(&long), Err(IndexFormatError::TrailingBytes { extra: 1 }));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert_eq!(RecoveryIndex::from_bytes(&magic), Err(IndexFormatError::BadMagic));
        let mut version = bytes.clone();
        version[8] = 9;
        assert_eq!(RecoveryIndex::from_bytes(&version), Err(IndexFormatError::UnsupportedVersion { found: 9 }));
        let mut seed = bytes.clone();
        seed[INDEX_HEADER_LEN - 9] ^= 1;
        assert_eq!(RecoveryIndex::from_bytes(&seed), Err(IndexFormatError::ScrambleSeed));
        let mut stripes = bytes.clone();
        stripes[INDEX_HEADER_LEN - 8] ^= 1;
        assert!(matches!(RecoveryIndex::from_bytes(&stripes), Err(IndexFormatError::StripeCount { .. })));
        let mut chunk = bytes;
        chunk[8 + 2 + 16 + 8 + 32] = 3;
        assert!(matches!(RecoveryIndex::from_bytes(&chunk), Err(IndexFormatError::Params(_))));
    }
}
