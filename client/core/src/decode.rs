//! The decoder: recovery index + any k good fragments per stripe → file (or
//! a byte range of it), written in order to any `Write`.
//!
//! Work goes chunk by chunk in file order. A chunk's own fragment is fetched
//! and checked against its id; only when it is missing or bad are the
//! stripe's siblings fetched and the chunk rebuilt with Reed-Solomon. So a
//! healthy download reads each byte once, and a range touches only the
//! fragments (or, when degraded, the stripes) that cover it. Every fragment is
//! verified by BLAKE3 before use, every chunk by its AEAD tag, and a full
//! decode by the whole file's BLAKE3.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::OnceLock;

use crate::chunk_cipher::{ChunkAuthenticationError, decrypt_chunk};
use crate::file_hash::{ChunkDigest, FileHasher, chunk_digest};
use crate::ids::{FragmentId, UploadId};
use crate::index::RecoveryIndex;
use crate::io::{BufferPool, FragmentLocation, FragmentSource};
use crate::keys::ChunkKey;
use crate::params::Layout;
use crate::pipeline::run_ordered;
use crate::scramble::Scramble;

/// What the decoder needs to know of an upload: the owner's whole recovery
/// index, or a grantee's partial one (`partial::PartialIndex`), which knows
/// only some chunks' slots and keys and their stripes' fragment ids.
pub trait Keys: Sync {
    /// The upload's id, bound into every chunk.
    fn upload_id(&self) -> &UploadId;
    /// The file's layout.
    fn layout(&self) -> &Layout;
    /// The slot of the chunk at `position` and its key, if known.
    fn locate(&self, position: u64) -> Option<(u64, ChunkKey)>;
    /// The `k+m` ids of `stripe`, if known.
    fn stripe_ids(&self, stripe: u64) -> Option<&[FragmentId]>;
    /// Every id known (to tell a misplaced fragment from a corrupt one).
    fn known_ids(&self) -> Vec<FragmentId>;
}

/// A whole recovery index with its scramble, computed once.
struct FullKeys<'a> {
    index: &'a RecoveryIndex,
    scramble: Scramble,
}

impl Keys for FullKeys<'_> {
    fn upload_id(&self) -> &UploadId {
        &self.index.upload_id
    }
    fn layout(&self) -> &Layout {
        &self.index.layout
    }
    fn locate(&self, position: u64) -> Option<(u64, ChunkKey)> {
        Some((self.scramble.slot_of_position(position), self.index.master_key.chunk_key(position)))
    }
    fn stripe_ids(&self, stripe: u64) -> Option<&[FragmentId]> {
        (stripe < self.index.layout.stripe_count).then(|| self.index.stripe(stripe))
    }
    fn known_ids(&self) -> Vec<FragmentId> {
        self.index.fragment_ids().to_vec()
    }
}

/// What was wrong with one fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragmentProblem {
    /// No fragment under that id.
    Missing,
    /// Fetching it failed (I/O or network error).
    FetchFailed(String),
    /// It has the wrong number of bytes.
    WrongSize {
        /// Bytes received (reads stop one past the expected size).
        actual: usize,
    },
    /// Its bytes are another fragment of this upload (swapped fragments).
    Misplaced {
        /// The fragment whose bytes these are.
        holds: FragmentId,
    },
    /// Its bytes hash to no fragment of this upload: damaged in storage or
    /// transit, or a fragment of another upload.
    Corrupt,
}

impl fmt::Display for FragmentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("missing"),
            Self::FetchFailed(reason) => write!(f, "fetch failed: {reason}"),
            Self::WrongSize { actual } => write!(f, "wrong size ({actual} bytes)"),
            Self::Misplaced { holds } => write!(f, "holds the bytes of fragment {} (swapped)", holds.short()),
            Self::Corrupt => f.write_str("corrupt: bytes do not match its id (damaged, or another upload's fragment)"),
        }
    }
}

/// One bad fragment of a stripe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentIssue {
    /// Index in the stripe: `0..k` data, `k..k+m` parity.
    pub shard: usize,
    /// The fragment's id.
    pub id: FragmentId,
    /// What was wrong.
    pub problem: FragmentProblem,
}

/// A stripe with fewer than k good fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnrecoverableStripe {
    /// The stripe.
    pub stripe: u64,
    /// Good fragments found.
    pub good: usize,
    /// Good fragments needed (k).
    pub needed: usize,
    /// The bad fragments seen.
    pub issues: Vec<FragmentIssue>,
}

/// Why a decode failed. Output already written is incomplete and must be
/// discarded; the CLI writes to a temporary file for that reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The range is not inside the file.
    #[error("range {start}..{end} is not inside the file (0..{file_length})")]
    Range {
        /// Requested start.
        start: u64,
        /// Requested end.
        end: u64,
        /// File length.
        file_length: u64,
    },
    /// Some stripes lack k good fragments.
    #[error("{} stripe(s) cannot be recovered: {}", stripes.len(), describe_unrecoverable(stripes))]
    Unrecoverable {
        /// Every stripe found unrecoverable, in order.
        stripes: Vec<UnrecoverableStripe>,
    },
    /// A fragment matching its id did not decrypt: the index is not this
    /// upload's.
    #[error(transparent)]
    Authentication(#[from] ChunkAuthenticationError),
    /// Every chunk decrypted but the file hash differs.
    #[error("the decoded file's BLAKE3 {actual} differs from the recovery index's {expected}")]
    FileHash {
        /// From the index.
        expected: blake3::Hash,
        /// Computed.
        actual: blake3::Hash,
    },
    /// Writing the output failed.
    #[error("writing the output failed: {0}")]
    Write(#[source] io::Error),
    /// The keys at hand do not cover the range (a grantee's partial index).
    #[error("bytes {start}..{end} are outside what these keys can decrypt")]
    NotGranted {
        /// Requested start.
        start: u64,
        /// Requested end.
        end: u64,
    },
}

fn describe_unrecoverable(stripes: &[UnrecoverableStripe]) -> String {
    let mut text = String::new();
    for stripe in stripes.iter().take(10) {
        let problems: Vec<String> =
            stripe.issues.iter().map(|issue| format!("fragment {} {}", issue.id.short(), issue.problem)).collect();
        text.push_str(&format!(
            "\n  stripe {}: {} of {} needed fragments good; {}",
            stripe.stripe,
            stripe.good,
            stripe.needed,
            problems.join("; ")
        ));
    }
    if stripes.len() > 10 {
        text.push_str(&format!("\n  ... and {} more", stripes.len() - 10));
    }
    text
}

/// What a successful decode found along the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeReport {
    /// Bytes written.
    pub bytes_written: u64,
    /// Stripes that needed parity, with the bad fragments seen in each.
    pub degraded: BTreeMap<u64, Vec<FragmentIssue>>,
    /// Whether the whole file's BLAKE3 was checked (full decodes only).
    pub file_hash_verified: bool,
}

/// One decoded chunk, ready to be written.
struct DecodedChunk {
    fragment: Vec<u8>,
    /// The part of `fragment` to write.
    output: Range<usize>,
    digest: Option<(u64, ChunkDigest)>,
    issues: Vec<(u64, FragmentIssue)>,
}

enum ChunkFailure {
    Unrecoverable(UnrecoverableStripe),
    Authentication(ChunkAuthenticationError),
    NotGranted,
}

/// What every worker needs to decode any chunk.
struct ChunkDecoder<'a, S: ?Sized, K: Keys + ?Sized> {
    keys: &'a K,
    source: &'a S,
    range: Range<u64>,
    full: bool,
    pool: BufferPool,
    /// Where each id sits, built only when a fragment turns out wrong.
    positions_by_id: OnceLock<HashMap<FragmentId, usize>>,
}

impl<S: FragmentSource + ?Sized, K: Keys + ?Sized> ChunkDecoder<'_, S, K> {
    fn fragment_size(&self) -> usize {
        self.keys.layout().params.fragment_size()
    }

    /// Fetches and verifies one fragment into `buffer`.
    fn fetch(&self, location: FragmentLocation, id: &FragmentId, buffer: &mut Vec<u8>) -> Result<(), FragmentProblem> {
        self.check(self.source.fetch(location, id, self.fragment_size(), buffer), id, buffer)
    }

    /// Verifies what a fetch of fragment `id` gave.
    fn check(&self, fetched: std::io::Result<bool>, id: &FragmentId, buffer: &[u8]) -> Result<(), FragmentProblem> {
        match fetched {
            Ok(true) => {}
            Ok(false) => return Err(FragmentProblem::Missing),
            Err(error) => return Err(FragmentProblem::FetchFailed(error.to_string())),
        }
        if buffer.len() != self.fragment_size() {
            return Err(FragmentProblem::WrongSize { actual: buffer.len() });
        }
        if self.source.verifies_ids() {
            return Ok(());
        }
        let actual = FragmentId::of(buffer);
        if actual == *id {
            return Ok(());
        }
        let positions = self
            .positions_by_id
            .get_or_init(|| self.keys.known_ids().iter().enumerate().map(|(position, id)| (*id, position)).collect());
        Err(match positions.get(&actual) {
            Some(_) => FragmentProblem::Misplaced { holds: actual },
            None => FragmentProblem::Corrupt,
        })
    }

    fn decode(&self, position: u64) -> Result<DecodedChunk, ChunkFailure> {
        let data_shards = u64::from(self.keys.layout().params.data_shards);
        let (slot, key) = self.keys.locate(position).ok_or(ChunkFailure::NotGranted)?;
        let (stripe, shard) = (slot / data_shards, (slot % data_shards) as usize);
        let id = self.keys.stripe_ids(stripe).ok_or(ChunkFailure::NotGranted)?[shard];
        let mut fragment = self.pool.take();
        let mut issues = Vec::new();
        if let Err(problem) = self.fetch(FragmentLocation { stripe, shard }, &id, &mut fragment) {
            issues.push((stripe, FragmentIssue { shard, id, problem }));
            let rebuilt = self.rebuild(stripe, shard, &mut issues);
            self.pool.give_back(std::mem::replace(&mut fragment, rebuilt?));
        }
        decrypt_chunk(&key, self.keys.upload_id(), position, &mut fragment).map_err(ChunkFailure::Authentication)?;

        let layout = self.keys.layout();
        let chunk_start = layout.chunk_offset(position);
        let chunk_length = layout.chunk_length(position);
        let digest = self.full.then(|| (position, chunk_digest(layout, position, &fragment[..chunk_length])));
        let start = self.range.start.saturating_sub(chunk_start) as usize;
        let end = (self.range.end - chunk_start).min(chunk_length as u64) as usize;
        Ok(DecodedChunk { fragment, output: start..end, digest, issues })
    }

    /// Rebuilds data shard `wanted` of `stripe` from k good siblings, asked
    /// of the source fastest first (`FragmentSource::rank`), as many at once
    /// as are still needed.
    fn rebuild(
        &self,
        stripe: u64,
        wanted: usize,
        issues: &mut Vec<(u64, FragmentIssue)>,
    ) -> Result<Vec<u8>, ChunkFailure> {
        let params = self.keys.layout().params;
        let (data_shards, parity_shards) = (usize::from(params.data_shards), usize::from(params.parity_shards));
        let ids = self.keys.stripe_ids(stripe).ok_or(ChunkFailure::NotGranted)?;
        let mut untried: Vec<(FragmentLocation, FragmentId)> = ids
            .iter()
            .enumerate()
            .filter(|(shard, _)| *shard != wanted)
            .map(|(shard, id)| (FragmentLocation { stripe, shard }, *id))
            .collect();
        self.source.rank(&mut untried);
        let mut good: Vec<(usize, Vec<u8>)> = Vec::with_capacity(data_shards);
        while good.len() < data_shards && !untried.is_empty() {
            let asked_before = untried.len();
            let mut buffers: Vec<Vec<u8>> = untried.iter().map(|_| self.pool.take()).collect();
            let outcomes =
                self.source.fetch_any(&untried, data_shards - good.len(), self.fragment_size(), &mut buffers);
            let mut still_untried = Vec::new();
            for ((outcome, buffer), (location, id)) in outcomes.into_iter().zip(buffers).zip(untried) {
                let Some(fetched) = outcome else {
                    still_untried.push((location, id));
                    self.pool.give_back(buffer);
                    continue;
                };
                match self.check(fetched, &id, &buffer) {
                    Ok(()) if good.len() < data_shards => good.push((location.shard, buffer)),
                    Ok(()) => self.pool.give_back(buffer),
                    Err(problem) => {
                        issues.push((stripe, FragmentIssue { shard: location.shard, id, problem }));
                        self.pool.give_back(buffer);
                    }
                }
            }
            // A source that asked nothing more can give nothing more.
            if still_untried.len() == asked_before {
                break;
            }
            untried = still_untried;
        }
        if good.len() < data_shards {
            return Err(ChunkFailure::Unrecoverable(UnrecoverableStripe {
                stripe,
                good: good.len(),
                needed: data_shards,
                issues: issues.iter().map(|(_, issue)| issue.clone()).collect(),
            }));
        }
        let originals = good.iter().filter(|(shard, _)| *shard < data_shards).map(|(shard, bytes)| (*shard, bytes));
        let recovery =
            good.iter().filter(|(shard, _)| *shard >= data_shards).map(|(shard, bytes)| (shard - data_shards, bytes));
        let mut restored = reed_solomon_simd::decode(data_shards, parity_shards, originals, recovery)
            .expect("k verified shards of equal, valid size always decode");
        for (_, buffer) in good {
            self.pool.give_back(buffer);
        }
        Ok(restored.remove(&wanted).expect("the wanted original was missing, so it is restored"))
    }
}

/// Decodes `range` of the file (all of it when `None`) from `source` into
/// `output`, with `threads` workers, calling `progress` with bytes written.
pub fn decode<S: FragmentSource + ?Sized>(
    index: &RecoveryIndex,
    source: &S,
    output: &mut impl Write,
    range: Option<Range<u64>>,
    threads: usize,
    progress: impl FnMut(u64),
) -> Result<DecodeReport, DecodeError> {
    let keys =
        FullKeys { index, scramble: Scramble::new(&index.master_key.scramble_seed(), index.layout.slot_count()) };
    decode_with_keys(&keys, Some(index.file_hash), source, output, range, threads, progress)
}

/// Decodes `range` with any [`Keys`]; the whole file's BLAKE3 is checked
/// when `file_hash` is given and the range is the whole file.
pub fn decode_with_keys<S: FragmentSource + ?Sized, K: Keys + ?Sized>(
    keys: &K,
    file_hash: Option<blake3::Hash>,
    source: &S,
    output: &mut impl Write,
    range: Option<Range<u64>>,
    threads: usize,
    mut progress: impl FnMut(u64),
) -> Result<DecodeReport, DecodeError> {
    let layout = *keys.layout();
    let file_length = layout.file_length;
    let range = range.unwrap_or(0..file_length);
    if range.start > range.end || range.end > file_length {
        return Err(DecodeError::Range { start: range.start, end: range.end, file_length });
    }
    let full = range == (0..file_length) && file_hash.is_some();
    let chunk_size = u64::from(layout.params.chunk_size);
    // A full decode visits every chunk, even the one of an empty file, so
    // that every chunk is authenticated and the file hash is complete.
    let positions = if full { 0..layout.chunk_count } else { range.start / chunk_size..range.end.div_ceil(chunk_size) };
    if positions.clone().any(|position| keys.locate(position).is_none()) {
        return Err(DecodeError::NotGranted { start: range.start, end: range.end });
    }
    let decoder = ChunkDecoder {
        keys,
        source,
        range: range.clone(),
        full,
        pool: BufferPool::new(layout.params.fragment_size()),
        positions_by_id: OnceLock::new(),
    };

    let mut report = DecodeReport { file_hash_verified: full, ..DecodeReport::default() };
    let mut degraded: BTreeMap<u64, BTreeMap<usize, FragmentIssue>> = BTreeMap::new();
    let mut unrecoverable: BTreeMap<u64, UnrecoverableStripe> = BTreeMap::new();
    let mut file_hasher = FileHasher::new(layout);
    run_ordered(
        positions,
        threads,
        || (),
        |(), position| decoder.decode(position),
        |decoded| {
            let chunk = match decoded {
                Ok(chunk) => chunk,
                Err(ChunkFailure::Authentication(error)) => return Err(DecodeError::Authentication(error)),
                Err(ChunkFailure::NotGranted) => {
                    return Err(DecodeError::NotGranted { start: range.start, end: range.end });
                }
                // Keep going: the error should name every stripe that is lost.
                Err(ChunkFailure::Unrecoverable(stripe)) => {
                    unrecoverable.entry(stripe.stripe).or_insert(stripe);
                    return Ok(());
                }
            };
            for (stripe, issue) in chunk.issues {
                degraded.entry(stripe).or_default().insert(issue.shard, issue);
            }
            if unrecoverable.is_empty() {
                output.write_all(&chunk.fragment[chunk.output.clone()]).map_err(DecodeError::Write)?;
                report.bytes_written += chunk.output.len() as u64;
                progress(report.bytes_written);
            }
            if let Some((position, digest)) = chunk.digest {
                file_hasher.insert(position, digest);
            }
            decoder.pool.give_back(chunk.fragment);
            Ok(())
        },
    )?;
    if !unrecoverable.is_empty() {
        return Err(DecodeError::Unrecoverable { stripes: unrecoverable.into_values().collect() });
    }
    output.flush().map_err(DecodeError::Write)?;
    if let (true, Some(expected)) = (full, file_hash) {
        let actual = file_hasher.finish().expect("a full decode digests every chunk");
        if actual != expected {
            return Err(DecodeError::FileHash { expected, actual });
        }
    }
    report.degraded = degraded.into_iter().map(|(stripe, issues)| (stripe, issues.into_values().collect())).collect();
    Ok(report)
}
