//! Offline encode and decode: a file to fragment files plus a sealed recovery
//! index, and back. Useful to operators and tests before and after the
//! network exists, and the same codec the networked upload runs.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use strand_core::io::{DirectoryStore, FileSource};
use strand_core::{
    CodecParams, DecodeReport, Identity, RecoveryIndex, UploadSecrets, decode, encode, open_index, seal_index,
};

/// What an encode produced.
#[derive(Debug, Clone, Serialize)]
pub struct EncodeSummary {
    /// The upload id (hex).
    pub upload_id: String,
    /// The input file.
    pub file: PathBuf,
    /// Its length in bytes.
    pub file_bytes: u64,
    /// Its BLAKE3 (hex).
    pub file_blake3: String,
    /// Chunk size in bytes.
    pub chunk_size: u32,
    /// k.
    pub data_shards: u16,
    /// m.
    pub parity_shards: u16,
    /// Number of stripes.
    pub stripes: u64,
    /// Number of fragments, (k+m) × stripes.
    pub fragments: u64,
    /// Bytes of every fragment.
    pub fragment_bytes: usize,
    /// Where the fragments are.
    pub fragment_directory: PathBuf,
    /// Where the sealed index is.
    pub index: PathBuf,
    /// The key the index is sealed to (hex).
    pub owner: String,
    /// Wall time.
    pub seconds: f64,
    /// File bytes per second.
    pub bytes_per_second: f64,
}

/// Encodes `file` into `fragment_directory` and writes the index sealed to
/// `owner` at `index_path` (by default `<dir>/<upload id>.index`).
pub fn encode_file(
    file: &Path,
    fragment_directory: &Path,
    index_path: Option<&Path>,
    owner: &Identity,
    params: CodecParams,
    threads: usize,
    progress: impl FnMut(u64),
) -> anyhow::Result<EncodeSummary> {
    let started = Instant::now();
    let source = FileSource::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut store = DirectoryStore::create(fragment_directory)
        .with_context(|| format!("cannot create fragment directory {}", fragment_directory.display()))?;
    let mut rng = rand::rng();
    let secrets = UploadSecrets::generate(&mut rng);
    let index = encode(&source, &mut store, params, &secrets, threads, progress)
        .with_context(|| format!("encoding {} failed", file.display()))?;
    let index_path = index_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fragment_directory.join(format!("{}.index", index.upload_id)));
    let sealed = seal_index(&index, &owner.public_key(), &mut rng);
    write_atomically(&index_path, &sealed).with_context(|| format!("cannot write index {}", index_path.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(EncodeSummary {
        upload_id: index.upload_id.to_string(),
        file: file.to_path_buf(),
        file_bytes: index.layout.file_length,
        file_blake3: index.file_hash.to_hex().to_string(),
        chunk_size: params.chunk_size,
        data_shards: params.data_shards,
        parity_shards: params.parity_shards,
        stripes: index.layout.stripe_count,
        fragments: index.layout.fragment_count(),
        fragment_bytes: params.fragment_size(),
        fragment_directory: fragment_directory.to_path_buf(),
        index: index_path,
        owner: owner.public_key().to_string(),
        seconds,
        bytes_per_second: index.layout.file_length as f64 / seconds.max(1e-9),
    })
}

/// One degraded stripe, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct DegradedStripe {
    /// The stripe.
    pub stripe: u64,
    /// `"fragment <short id> (shard n): <problem>"` for each bad fragment.
    pub problems: Vec<String>,
}

/// What a decode produced.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeSummary {
    /// The upload id (hex).
    pub upload_id: String,
    /// The output file.
    pub output: PathBuf,
    /// The byte range written.
    pub range: [u64; 2],
    /// Bytes written.
    pub bytes: u64,
    /// Whether the whole file's BLAKE3 was verified (full decodes).
    pub file_blake3_verified: bool,
    /// The file's BLAKE3 from the index (hex; empty for a range grantee, who
    /// is not told it).
    pub file_blake3: String,
    /// Stripes rebuilt from parity.
    pub degraded_stripes: Vec<DegradedStripe>,
    /// Wall time.
    pub seconds: f64,
    /// Bytes written per second.
    pub bytes_per_second: f64,
}

/// Opens the sealed index at `path` with `owner`.
pub fn read_index(path: &Path, owner: &Identity) -> anyhow::Result<RecoveryIndex> {
    let sealed = std::fs::read(path).with_context(|| format!("cannot read index {}", path.display()))?;
    open_index(&sealed, owner).with_context(|| format!("cannot open index {}", path.display()))
}

/// Decodes `range` (whole file if `None`) of the upload described by `index`
/// from `fragment_directory` into `output`. The output appears only when the
/// decode succeeded: it is written to a temporary file beside it first.
pub fn decode_file(
    index: &RecoveryIndex,
    fragment_directory: &Path,
    output: &Path,
    range: Option<Range<u64>>,
    threads: usize,
    progress: impl FnMut(u64),
) -> anyhow::Result<DecodeSummary> {
    let store = DirectoryStore::open(fragment_directory)?;
    decode_with(index, &store, output, range, threads, progress)
}

/// Decodes from any fragment source into `output`, which appears only when
/// the decode succeeded.
pub fn decode_with<S: strand_core::io::FragmentSource + ?Sized>(
    index: &RecoveryIndex,
    store: &S,
    output: &Path,
    range: Option<Range<u64>>,
    threads: usize,
    progress: impl FnMut(u64),
) -> anyhow::Result<DecodeSummary> {
    let started = Instant::now();
    let report = write_verified(output, |writer| {
        decode(index, store, writer, range.clone(), threads, progress)
            .with_context(|| format!("decoding upload {} failed", index.upload_id))
    })?;
    let range = range.unwrap_or(0..index.layout.file_length);
    let mut summary = summarise(index.upload_id, output, range, &report, started.elapsed().as_secs_f64());
    summary.file_blake3 = index.file_hash.to_hex().to_string();
    Ok(summary)
}

/// Decodes `range` (the whole grant when `None`) with a range grantee's
/// partial index into `output`, created only when every chunk verified.
pub fn decode_partial_with<S: strand_core::io::FragmentSource + ?Sized>(
    partial: &strand_core::partial::PartialIndex,
    store: &S,
    output: &Path,
    range: Option<Range<u64>>,
    threads: usize,
    progress: impl FnMut(u64),
) -> anyhow::Result<DecodeSummary> {
    let started = Instant::now();
    let range = range.unwrap_or(partial.range.0..partial.range.1);
    let report = write_verified(output, |writer| {
        strand_core::decode::decode_with_keys(partial, None, store, writer, Some(range.clone()), threads, progress)
            .with_context(|| {
                format!("decoding bytes {}..{} of upload {} failed", range.start, range.end, partial.upload_id)
            })
    })?;
    Ok(summarise(partial.upload_id, output, range, &report, started.elapsed().as_secs_f64()))
}

/// Runs `decode` into a temporary file next to `output` and renames it into
/// place only if it succeeds, synced (window by window as it is written, see
/// [`crate::write_behind`]).
fn write_verified(
    output: &Path,
    decode: impl FnOnce(&mut BufWriter<crate::write_behind::WriteBehind>) -> anyhow::Result<DecodeReport>,
) -> anyhow::Result<DecodeReport> {
    let parent = output.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let temporary = tempfile::Builder::new()
        .prefix(".strand-decode-")
        .suffix(".partial")
        .tempfile_in(parent)
        .with_context(|| format!("cannot create a temporary file in {}", parent.display()))?;
    let behind =
        crate::write_behind::WriteBehind::new(temporary.as_file()).context("cannot start writing the output")?;
    let mut writer = BufWriter::with_capacity(1 << 20, behind);
    let report = decode(&mut writer)?;
    let behind = writer.into_inner().map_err(|error| error.into_error()).context("cannot flush the output")?;
    behind.finish().context("cannot sync the output")?;
    temporary.as_file().sync_all().context("cannot sync the output")?;
    temporary.persist(output).with_context(|| format!("cannot write {}", output.display()))?;
    Ok(report)
}

fn summarise(
    upload_id: strand_core::UploadId,
    output: &Path,
    range: Range<u64>,
    report: &DecodeReport,
    seconds: f64,
) -> DecodeSummary {
    let degraded_stripes = report
        .degraded
        .iter()
        .map(|(stripe, issues)| DegradedStripe {
            stripe: *stripe,
            problems: issues
                .iter()
                .map(|issue| format!("fragment {} (shard {}): {}", issue.id.short(), issue.shard, issue.problem))
                .collect(),
        })
        .collect();
    DecodeSummary {
        upload_id: upload_id.to_string(),
        output: output.to_path_buf(),
        range: [range.start, range.end],
        bytes: report.bytes_written,
        file_blake3_verified: report.file_hash_verified,
        file_blake3: String::new(),
        degraded_stripes,
        seconds,
        bytes_per_second: report.bytes_written as f64 / seconds.max(1e-9),
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename, so
/// a crash leaves either the old file or the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let mut temporary = tempfile::Builder::new().prefix(".strand-").suffix(".partial").tempfile_in(parent)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// BLAKE3 of a file, streamed.
pub fn hash_file(path: &Path) -> anyhow::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    std::io::copy(&mut std::io::BufReader::with_capacity(1 << 20, file), &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize())
}
