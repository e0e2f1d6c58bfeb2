//! A partial recovery index: what a grantee of a byte range receives. It
//! holds, for each chunk the range touches, the chunk's slot and its own
//! key, and the `k+m` fragment ids of the stripes those chunks sit in (so
//! parity can rebuild them) — never the master key, from which every other
//! chunk key derives. BLAKE3's `derive_key` is one-way, so the chunk keys
//! given reveal nothing of the others. A grant covers whole chunks: the
//! bytes of the first and last chunk outside the range are readable too.
//!
//! # Format, version 1 (integers little endian)
//! ```text
//! magic          8   "STRNDPRT"
//! version        2   1
//! upload id     16
//! file length    8
//! chunk size     4
//! k              2
//! m              2
//! range start    8
//! range end      8
//! chunks         8   n = chunks the range touches
//! n × (position 8, slot 8, key 32), positions ascending and contiguous
//! stripes        8   s
//! s × (stripe 8, (k+m) × id 32), stripes ascending
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::decode::Keys;
use crate::ids::{FRAGMENT_ID_LEN, FragmentId, UPLOAD_ID_LEN, UploadId};
use crate::index::RecoveryIndex;
use crate::keys::{ChunkKey, KEY_LEN};
use crate::params::{CodecParams, Layout};
use crate::scramble::Scramble;

/// Magic bytes that open an encoded partial index.
pub const PARTIAL_MAGIC: &[u8; 8] = b"STRNDPRT";
/// The partial index format version.
pub const PARTIAL_FORMAT_VERSION: u16 = 1;

/// A grantee's keys to a byte range of an upload.
#[derive(Clone, PartialEq, Eq)]
pub struct PartialIndex {
    /// The upload.
    pub upload_id: UploadId,
    /// The file's layout.
    pub layout: Layout,
    /// The granted bytes `[start, end)`.
    pub range: (u64, u64),
    chunks: BTreeMap<u64, (u64, ChunkKey)>,
    stripes: BTreeMap<u64, Vec<FragmentId>>,
}

impl std::fmt::Debug for PartialIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialIndex")
            .field("upload_id", &self.upload_id)
            .field("range", &self.range)
            .field("chunks", &self.chunks.len())
            .field("stripes", &self.stripes.len())
            .finish_non_exhaustive()
    }
}

/// Why bytes are not a partial index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartialFormatError {
    /// Wrong magic, version, lengths or inconsistent contents.
    #[error("not a valid partial index: {0}")]
    Invalid(&'static str),
}

impl PartialIndex {
    /// The part of `index` a grantee of bytes `start..end` needs. `None` if
    /// the range is empty or outside the file.
    pub fn of(index: &RecoveryIndex, start: u64, end: u64) -> Option<Self> {
        let layout = index.layout;
        if start >= end || end > layout.file_length {
            return None;
        }
        let scramble = Scramble::new(&index.master_key.scramble_seed(), layout.slot_count());
        let chunk_size = u64::from(layout.params.chunk_size);
        let data_shards = u64::from(layout.params.data_shards);
        let mut chunks = BTreeMap::new();
        let mut stripes = BTreeMap::new();
        for position in start / chunk_size..end.div_ceil(chunk_size) {
            let slot = scramble.slot_of_position(position);
            chunks.insert(position, (slot, index.master_key.chunk_key(position)));
            let stripe = slot / data_shards;
            stripes.entry(stripe).or_insert_with(|| index.stripe(stripe).to_vec());
        }
        Some(Self { upload_id: index.upload_id, layout, range: (start, end), chunks, stripes })
    }

    /// The fragment ids the range needs, stripe by stripe: what a range
    /// credential's scope commits to (its Merkle root), in this order.
    pub fn scope_fragments(&self) -> Vec<FragmentId> {
        self.stripes.values().flatten().copied().collect()
    }

    /// The stripes known, with their ids.
    pub fn stripes(&self) -> impl Iterator<Item = (u64, &[FragmentId])> {
        self.stripes.iter().map(|(stripe, ids)| (*stripe, ids.as_slice()))
    }

    /// The chunk keys held (for tests and audits of what was given away).
    pub fn chunk_keys(&self) -> impl Iterator<Item = (u64, &ChunkKey)> {
        self.chunks.iter().map(|(position, (_, key))| (*position, key))
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let params = self.layout.params;
        let mut out = Vec::new();
        out.extend_from_slice(PARTIAL_MAGIC);
        out.extend_from_slice(&PARTIAL_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(self.upload_id.as_bytes());
        out.extend_from_slice(&self.layout.file_length.to_le_bytes());
        out.extend_from_slice(&params.chunk_size.to_le_bytes());
        out.extend_from_slice(&params.data_shards.to_le_bytes());
        out.extend_from_slice(&params.parity_shards.to_le_bytes());
        out.extend_from_slice(&self.range.0.to_le_bytes());
        out.extend_from_slice(&self.range.1.to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u64).to_le_bytes());
        for (position, (slot, key)) in &self.chunks {
            out.extend_from_slice(&position.to_le_bytes());
            out.extend_from_slice(&slot.to_le_bytes());
            out.extend_from_slice(key.as_bytes());
        }
        out.extend_from_slice(&(self.stripes.len() as u64).to_le_bytes());
        for (stripe, ids) in &self.stripes {
            out.extend_from_slice(&stripe.to_le_bytes());
            for id in ids {
                out.extend_from_slice(id.as_bytes());
            }
        }
        out
    }

    /// Parses and checks an encoded partial index; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PartialFormatError> {
        let invalid = PartialFormatError::Invalid;
        let mut reader = Reader { bytes, at: 0 };
        if reader.take::<8>().ok_or(invalid("truncated"))? != *PARTIAL_MAGIC {
            return Err(invalid("bad magic"));
        }
        if u16::from_le_bytes(reader.take().ok_or(invalid("truncated"))?) != PARTIAL_FORMAT_VERSION {
            return Err(invalid("unsupported version"));
        }
        let upload_id = UploadId::from_bytes(reader.take::<UPLOAD_ID_LEN>().ok_or(invalid("truncated"))?);
        let file_length = reader.u64()?;
        let params = CodecParams {
            chunk_size: u32::from_le_bytes(reader.take().ok_or(invalid("truncated"))?),
            data_shards: u16::from_le_bytes(reader.take().ok_or(invalid("truncated"))?),
            parity_shards: u16::from_le_bytes(reader.take().ok_or(invalid("truncated"))?),
        };
        let layout = Layout::new(params, file_length).map_err(|_| invalid("bad parameters"))?;
        let range = (reader.u64()?, reader.u64()?);
        let chunk_size = u64::from(params.chunk_size);
        if range.0 >= range.1 || range.1 > file_length {
            return Err(invalid("range outside the file"));
        }
        let expected_positions = range.0 / chunk_size..range.1.div_ceil(chunk_size);
        let count = reader.u64()?;
        if count != expected_positions.end - expected_positions.start {
            return Err(invalid("chunk count does not match the range"));
        }
        let data_shards = u64::from(params.data_shards);
        let mut chunks = BTreeMap::new();
        let mut needed_stripes = BTreeSet::new();
        for expected in expected_positions {
            let position = reader.u64()?;
            let slot = reader.u64()?;
            let key = ChunkKey::from_bytes(reader.take::<KEY_LEN>().ok_or(invalid("truncated"))?);
            if position != expected || slot >= layout.slot_count() {
                return Err(invalid("chunk entries out of order or out of range"));
            }
            needed_stripes.insert(slot / data_shards);
            chunks.insert(position, (slot, key));
        }
        let stripe_count = reader.u64()?;
        if stripe_count != needed_stripes.len() as u64 {
            return Err(invalid("stripe count does not match the chunks"));
        }
        let width = params.fragments_per_stripe();
        let mut stripes = BTreeMap::new();
        for expected in needed_stripes {
            if reader.u64()? != expected {
                return Err(invalid("stripes out of order"));
            }
            let mut ids = Vec::with_capacity(width);
            for _ in 0..width {
                ids.push(FragmentId::from_bytes(reader.take::<FRAGMENT_ID_LEN>().ok_or(invalid("truncated"))?));
            }
            stripes.insert(expected, ids);
        }
        if reader.at != bytes.len() {
            return Err(invalid("trailing bytes"));
        }
        Ok(Self { upload_id, layout, range, chunks, stripes })
    }
}

impl Keys for PartialIndex {
    fn upload_id(&self) -> &UploadId {
        &self.upload_id
    }
    fn layout(&self) -> &Layout {
        &self.layout
    }
    fn locate(&self, position: u64) -> Option<(u64, ChunkKey)> {
        self.chunks.get(&position).map(|(slot, key)| (*slot, key.clone()))
    }
    fn stripe_ids(&self, stripe: u64) -> Option<&[FragmentId]> {
        self.stripes.get(&stripe).map(Vec::as_slice)
    }
    fn known_ids(&self) -> Vec<FragmentId> {
        self.scope_fragments()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let field: [u8; N] = self.bytes.get(self.at..self.at.checked_add(N)?)?.try_into().ok()?;
        self.at += N;
        Some(field)
    }

    fn u64(&mut self) -> Result<u64, PartialFormatError> {
        self.take().map(u64::from_le_bytes).ok_or(PartialFormatError::Invalid("truncated"))
    }
}
