//! Codec parameters (chunk size, k, m) and the layout they give a file.

/// Smallest chunk size: one BLAKE3 chunk, so chunk boundaries are BLAKE3
/// subtree boundaries (see `file_hash`).
pub const CHUNK_SIZE_MIN: u32 = 1024;
/// Largest chunk size; bigger chunks only add memory per stripe in flight.
pub const CHUNK_SIZE_MAX: u32 = 64 * 1024 * 1024;
/// Default chunk size: 1 MiB.
pub const CHUNK_SIZE_DEFAULT: u32 = 1024 * 1024;
/// Largest k and m: a stripe needs k+m distinct providers, and the recovery
/// index grows with k+m per stripe.
pub const SHARDS_MAX: u16 = 128;
/// Largest number of chunk slots of one upload. The scramble permutation is
/// kept in memory (8 bytes a slot), so this bounds it at 128 MiB; with 1 MiB
/// chunks it allows 16 TiB files.
pub const SLOT_COUNT_MAX: u64 = 1 << 24;
/// Bytes the AEAD adds to every chunk (the Poly1305 tag).
pub const TAG_LEN: usize = 16;

/// Per-upload codec parameters, recorded in the recovery index (and later on
/// the ledger).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecParams {
    /// Plaintext bytes per chunk; a power of two in
    /// [`CHUNK_SIZE_MIN`]..=[`CHUNK_SIZE_MAX`].
    pub chunk_size: u32,
    /// k: encrypted chunks per stripe (data shards). `k = 1` is replication.
    pub data_shards: u16,
    /// m: parity fragments per stripe; any m fragments of a stripe may be lost.
    pub parity_shards: u16,
}

impl Default for CodecParams {
    fn default() -> Self {
        Self { chunk_size: CHUNK_SIZE_DEFAULT, data_shards: 4, parity_shards: 2 }
    }
}

/// Parameters the codec cannot work with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    /// The chunk size is outside the supported range or not a power of two.
    #[error(
        "chunk size {chunk_size} is not supported: use a power of two from {CHUNK_SIZE_MIN} to {CHUNK_SIZE_MAX} bytes"
    )]
    ChunkSize {
        /// The rejected chunk size.
        chunk_size: u32,
    },
    /// k or m is out of range.
    #[error("k={data_shards}, m={parity_shards} is not supported: k and m must each be from 1 to {SHARDS_MAX}")]
    ShardCounts {
        /// The rejected k.
        data_shards: u16,
        /// The rejected m.
        parity_shards: u16,
    },
    /// The file has more chunks than the codec keeps track of.
    #[error(
        "a file of {file_length} bytes needs {slot_count} chunk slots at chunk size {chunk_size}, more than the {SLOT_COUNT_MAX} supported: use a larger chunk size"
    )]
    TooManyChunks {
        /// The file length.
        file_length: u64,
        /// The chunk size.
        chunk_size: u32,
        /// Chunk slots the file would need.
        slot_count: u64,
    },
}

impl CodecParams {
    /// Checks the parameters against the codec's limits.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let chunk_size = self.chunk_size;
        if !chunk_size.is_power_of_two() || !(CHUNK_SIZE_MIN..=CHUNK_SIZE_MAX).contains(&chunk_size) {
            return Err(ParamsError::ChunkSize { chunk_size });
        }
        let counts_ok = (1..=SHARDS_MAX).contains(&self.data_shards)
            && (1..=SHARDS_MAX).contains(&self.parity_shards)
            && reed_solomon_simd::ReedSolomonEncoder::supports(
                usize::from(self.data_shards),
                usize::from(self.parity_shards),
            );
        if !counts_ok {
            return Err(ParamsError::ShardCounts { data_shards: self.data_shards, parity_shards: self.parity_shards });
        }
        Ok(())
    }

    /// Fragments per stripe, k + m.
    pub fn fragments_per_stripe(&self) -> usize {
        usize::from(self.data_shards) + usize::from(self.parity_shards)
    }

    /// Bytes of every fragment of an upload: an encrypted chunk with its tag.
    pub fn fragment_size(&self) -> usize {
        self.chunk_size as usize + TAG_LEN
    }
}

/// Where every byte of a file of a given length goes under given parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The parameters.
    pub params: CodecParams,
    /// The true file length in bytes.
    pub file_length: u64,
    /// Chunks holding file bytes; at least one, so every upload stores
    /// something and an empty file looks like any small one.
    pub chunk_count: u64,
    /// Stripes; the last one is filled up with padding chunks.
    pub stripe_count: u64,
}

impl Layout {
    /// The layout of a file of `file_length` bytes.
    pub fn new(params: CodecParams, file_length: u64) -> Result<Self, ParamsError> {
        params.validate()?;
        let chunk_size = u64::from(params.chunk_size);
        let chunk_count = file_length.div_ceil(chunk_size).max(1);
        let stripe_count = chunk_count.div_ceil(u64::from(params.data_shards));
        let slot_count = stripe_count * u64::from(params.data_shards);
        if slot_count > SLOT_COUNT_MAX {
            return Err(ParamsError::TooManyChunks { file_length, chunk_size: params.chunk_size, slot_count });
        }
        Ok(Self { params, file_length, chunk_count, stripe_count })
    }

    /// Chunk slots (`stripe_count * k`); slots past `chunk_count` hold padding.
    pub fn slot_count(&self) -> u64 {
        self.stripe_count * u64::from(self.params.data_shards)
    }

    /// Fragments of the whole upload.
    pub fn fragment_count(&self) -> u64 {
        self.stripe_count * self.params.fragments_per_stripe() as u64
    }

    /// File bytes in the chunk at `position` (0 for padding chunks).
    pub fn chunk_length(&self, position: u64) -> usize {
        let chunk_size = u64::from(self.params.chunk_size);
        let start = position.saturating_mul(chunk_size);
        // Bounded by the chunk size, a u32.
        self.file_length.saturating_sub(start).min(chunk_size) as usize
    }

    /// Byte offset of the chunk at `position` in the file.
    pub fn chunk_offset(&self, position: u64) -> u64 {
        position * u64::from(self.params.chunk_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsupported_parameters_with_actionable_messages() {
        let bad_chunk = CodecParams { chunk_size: 1000, ..CodecParams::default() };
        let message = bad_chunk.validate().expect_err("not a power of two").to_string();
        assert!(message.contains("power of two"), "{message}");
        let bad_k = CodecParams { data_shards: 0, ..CodecParams::default() };
        assert!(matches!(bad_k.validate(), Err(ParamsError::ShardCounts { .. })));
        let bad_m = CodecParams { parity_shards: 0, ..CodecParams::default() };
        assert!(matches!(bad_m.validate(), Err(ParamsError::ShardCounts { .. })));
        let tiny = CodecParams { chunk_size: 1024, ..CodecParams::default() };
        assert!(matches!(Layout::new(tiny, 1 << 40), Err(ParamsError::TooManyChunks { .. })));
    }

    #[test]
    fn layout_pads_to_whole_stripes_and_keeps_one_chunk_for_empty_files() {
        let params = CodecParams { chunk_size: 1024, data_shards: 4, parity_shards: 2 };
        let empty = Layout::new(params, 0).expect("valid");
        assert_eq!((empty.chunk_count, empty.stripe_count, empty.slot_count()), (1, 1, 4));
        assert_eq!(empty.chunk_length(0), 0);
        let layout = Layout::new(params, 5 * 1024 + 1).expect("valid");
        assert_eq!((layout.chunk_count, layout.stripe_count, layout.fragment_count()), (6, 2, 12));
        assert_eq!(layout.chunk_length(5), 1);
        assert_eq!(layout.chunk_length(6), 0);
        assert_eq!(params.fragment_size(), 1024 + TAG_LEN);
    }
}
