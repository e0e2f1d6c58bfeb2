//! The encoder: file → chunks → scramble → encrypt → stripes → Reed-Solomon
//! → fragments named by BLAKE3, in bounded memory.
//!
//! Stripes are the unit of work: each worker reads the k chunks a stripe
//! holds (scrambled positions, so the input must allow random access),
//! encrypts them, computes the m parity fragments and hashes all k+m; the
//! calling thread hands finished stripes to the sink in order. At most
//! `2 × threads` stripes are in flight, so memory is a few stripes whatever
//! the file size.

use std::io;

use reed_solomon_simd::ReedSolomonEncoder;

use crate::chunk_cipher::encrypt_chunk;
use crate::file_hash::{ChunkDigest, FileHasher, chunk_digest};
use crate::ids::{FragmentId, UploadId};
use crate::index::RecoveryIndex;
use crate::io::{BufferPool, ChunkSource, FragmentSink, Naming, PlainIds};
use crate::keys::MasterKey;
use crate::params::{CodecParams, Layout, ParamsError, TAG_LEN};
use crate::pipeline::run_ordered;
use crate::scramble::Scramble;

/// The secrets of one upload: drawn fresh for every upload, which is what
/// makes equal files give unrelated fragments.
#[derive(Debug, Clone)]
pub struct UploadSecrets {
    /// The upload's id.
    pub upload_id: UploadId,
    /// The upload's master key.
    pub master_key: MasterKey,
}

impl UploadSecrets {
    /// Fresh random secrets.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        Self { upload_id: UploadId::random(rng), master_key: MasterKey::random(rng) }
    }
}

/// Why an encode failed. Nothing is half-recorded: without a returned index
/// the fragments written so far are unreferenced and can be deleted.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The parameters do not fit the file.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// Reading the input failed (or it shrank while being read).
    #[error("reading the input at byte {offset} failed: {source}")]
    Read {
        /// Where.
        offset: u64,
        /// Why.
        source: io::Error,
    },
    /// Storing a fragment failed.
    #[error("storing fragment {id} failed: {source}")]
    Write {
        /// Which fragment.
        id: FragmentId,
        /// Why.
        source: io::Error,
    },
}

/// One stripe, encoded.
struct EncodedStripe<N> {
    fragments: Vec<Vec<u8>>,
    ids: Vec<FragmentId>,
    named: Vec<N>,
    digests: Vec<(u64, ChunkDigest)>,
    file_bytes: u64,
}

/// What every worker needs to encode any stripe.
struct StripeEncoder<'a, S: ?Sized> {
    source: &'a S,
    layout: Layout,
    scramble: Scramble,
    secrets: &'a UploadSecrets,
    pool: BufferPool,
}

impl<S: ChunkSource + ?Sized> StripeEncoder<'_, S> {
    fn encode<N: Naming>(
        &self,
        reed_solomon: &mut ReedSolomonEncoder,
        stripe: u64,
        naming: &N,
    ) -> Result<EncodedStripe<N::Named>, EncodeError> {
        let params = self.layout.params;
        let data_shards = u64::from(params.data_shards);
        let mut fragments: Vec<Vec<u8>> = Vec::with_capacity(params.fragments_per_stripe());
        let mut digests = Vec::with_capacity(usize::from(params.data_shards));
        let mut file_bytes = 0;
        for slot in stripe * data_shards..(stripe + 1) * data_shards {
            let position = self.scramble.position_of_slot(slot);
            let length = self.layout.chunk_length(position);
            let mut fragment = self.pool.take();
            let offset = self.layout.chunk_offset(position);
            if length > 0 {
                self.source
                    .read_exact_at(offset, &mut fragment[..length])
                    .map_err(|source| EncodeError::Read { offset, source })?;
            }
            fragment[length..].fill(0);
            if position < self.layout.chunk_count {
                digests.push((position, chunk_digest(&self.layout, position, &fragment[..length])));
            }
            file_bytes += length as u64;
            encrypt_chunk(
                &self.secrets.master_key.chunk_key(position),
                &self.secrets.upload_id,
                position,
                &mut fragment,
            );
            fragments.push(fragment);
        }
        reed_solomon
            .reset(usize::from(params.data_shards), usize::from(params.parity_shards), params.fragment_size())
            .expect("parameters validated by Layout::new");
        for fragment in &fragments {
            reed_solomon.add_original_shard(fragment).expect("k shards of the validated size");
        }
        let parity = reed_solomon.encode().expect("all k shards were added");
        for recovery in parity.recovery_iter() {
            let mut fragment = self.pool.take();
            fragment.copy_from_slice(recovery);
            fragments.push(fragment);
        }
        drop(parity);
        let (ids, named) = fragments.iter().map(|fragment| naming.name(fragment)).unzip();
        Ok(EncodedStripe { fragments, ids, named, digests, file_bytes })
    }
}

/// Encodes `source` into fragments handed to `sink`, with `threads` workers,
/// calling `progress` with the file bytes done so far. Returns the recovery
/// index, which the caller must seal before it touches a disk.
pub fn encode<S: ChunkSource + ?Sized>(
    source: &S,
    sink: &mut impl FragmentSink,
    params: CodecParams,
    secrets: &UploadSecrets,
    threads: usize,
    progress: impl FnMut(u64),
) -> Result<RecoveryIndex, EncodeError> {
    encode_named(source, sink, &PlainIds, params, secrets, threads, progress)
}

/// [`encode`], naming each fragment with `naming` on the workers and handing
/// what it computed to [`FragmentSink::put_named`].
pub fn encode_named<S: ChunkSource + ?Sized, N: Naming>(
    source: &S,
    sink: &mut impl FragmentSink<N::Named>,
    naming: &N,
    params: CodecParams,
    secrets: &UploadSecrets,
    threads: usize,
    mut progress: impl FnMut(u64),
) -> Result<RecoveryIndex, EncodeError> {
    let layout = Layout::new(params, source.length())?;
    let encoder = StripeEncoder {
        source,
        layout,
        scramble: Scramble::new(&secrets.master_key.scramble_seed(), layout.slot_count()),
        secrets,
        pool: BufferPool::new(params.chunk_size as usize + TAG_LEN),
    };
    let mut file_hasher = FileHasher::new(layout);
    let mut fragment_ids = Vec::with_capacity(layout.fragment_count() as usize);
    let mut done = 0u64;
    run_ordered(
        0..layout.stripe_count,
        threads,
        || {
            ReedSolomonEncoder::new(
                usize::from(params.data_shards),
                usize::from(params.parity_shards),
                params.fragment_size(),
            )
            .expect("parameters validated by Layout::new")
        },
        |reed_solomon, stripe| encoder.encode(reed_solomon, stripe, naming),
        |encoded| {
            let encoded = encoded?;
            for ((id, fragment), named) in encoded.ids.iter().zip(encoded.fragments).zip(encoded.named) {
                let reusable =
                    sink.put_named(id, fragment, named).map_err(|source| EncodeError::Write { id: *id, source })?;
                if let Some(buffer) = reusable {
                    encoder.pool.give_back(buffer);
                }
            }
            for (position, digest) in encoded.digests {
                file_hasher.insert(position, digest);
            }
            fragment_ids.extend(encoded.ids);
            done += encoded.file_bytes;
            progress(done);
            Ok::<(), EncodeError>(())
        },
    )?;
    let file_hash = file_hasher.finish().expect("every chunk was encoded");
    Ok(RecoveryIndex::new(secrets.upload_id, file_hash, layout, secrets.master_key.clone(), fragment_ids))
}
