//! Codec throughput against the one-core throughput of its primitives.
//!
//! Names follow `module::operation/param=value`. Throughput is in file bytes,
//! so encode and decode figures compare directly with the primitives' limit:
//! per file byte the codec hashes the file once (BLAKE3), encrypts it once
//! (ChaCha20-Poly1305), computes m/k parity (RS) and hashes (k+m)/k fragment
//! bytes (BLAKE3). See BENCHMARKS.md for how the limit is combined.

use std::hint::black_box;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use strand_core::io::{Fault, FaultyStore, FileSource, FragmentLocation, FragmentSink, MemoryStore};
use strand_core::{CodecParams, FragmentId, UploadSecrets, decode, encode};

const CHUNK: u32 = 1 << 20;
const FILE_BYTES: usize = 256 << 20;
const CODES: [(u16, u16); 2] = [(4, 2), (10, 4)];

fn sample(length: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; length];
    rand::Rng::fill_bytes(&mut rand::rngs::StdRng::seed_from_u64(1), &mut bytes);
    bytes
}

/// Drops fragments after hashing nothing: measures the codec, not a store.
struct DiscardSink;

impl FragmentSink for DiscardSink {
    fn put(&mut self, id: &FragmentId, fragment: &[u8]) -> std::io::Result<()> {
        black_box((id, fragment));
        Ok(())
    }
}

fn threads() -> usize {
    strand_core::pipeline::default_threads()
}

fn primitives(c: &mut Criterion) {
    let chunk = sample(CHUNK as usize);
    let mut group = c.benchmark_group("primitives");
    group.throughput(Throughput::Bytes(u64::from(CHUNK)));
    group.bench_function("blake3::hash/bytes=1MiB,threads=1", |b| b.iter(|| blake3::hash(black_box(&chunk))));
    let cipher = ChaCha20Poly1305::new(&Key::from([7u8; 32]));
    let mut buffer = chunk.clone();
    group.bench_function("chacha20poly1305::encrypt/bytes=1MiB,threads=1", |b| {
        b.iter(|| cipher.encrypt_inout_detached(&Nonce::default(), b"ad", buffer.as_mut_slice().into()))
    });
    for (k, m) in CODES {
        let shards: Vec<Vec<u8>> = (0..k).map(|_| chunk.clone()).collect();
        let mut encoder =
            reed_solomon_simd::ReedSolomonEncoder::new(usize::from(k), usize::from(m), chunk.len()).expect("valid");
        group.throughput(Throughput::Bytes(u64::from(k) * u64::from(CHUNK)));
        group.bench_function(format!("reed_solomon::encode/k={k},m={m},shard=1MiB,threads=1"), |b| {
            b.iter(|| {
                for shard in &shards {
                    encoder.add_original_shard(shard).expect("shard");
                }
                black_box(encoder.encode().expect("encode").recovery_iter().count())
            })
        });
    }
    group.finish();
}

fn codec(c: &mut Criterion) {
    let file = sample(FILE_BYTES);
    let path = std::env::temp_dir().join("strand-bench-input.bin");
    std::fs::write(&path, &file).expect("write bench input");
    let source = FileSource::open(&path).expect("open bench input");
    let mut group = c.benchmark_group("codec");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(FILE_BYTES as u64));
    for (k, m) in CODES {
        let params = CodecParams { chunk_size: CHUNK, data_shards: k, parity_shards: m };
        let secrets = UploadSecrets::generate(&mut rand::rngs::StdRng::seed_from_u64(2));
        let label = format!("k={k},m={m},chunk=1MiB");
        group.bench_function(BenchmarkId::new("encode", format!("{label},source=memory")), |b| {
            b.iter(|| encode(file.as_slice(), &mut DiscardSink, params, &secrets, threads(), |_| {}).expect("encode"))
        });
        group.bench_function(BenchmarkId::new("encode", format!("{label},source=file")), |b| {
            b.iter(|| encode(&source, &mut DiscardSink, params, &secrets, threads(), |_| {}).expect("encode"))
        });
        let mut store = MemoryStore::new();
        let index = encode(file.as_slice(), &mut store, params, &secrets, threads(), |_| {}).expect("encode");
        // Output to io::sink, as encode's fragments go to DiscardSink: a
        // fresh output buffer per sample would measure the kernel zeroing
        // pages, not the codec.
        group.bench_function(BenchmarkId::new("decode", format!("{label},sink=discard")), |b| {
            b.iter(|| decode(&index, &store, &mut std::io::sink(), None, threads(), |_| {}).expect("decode"))
        });
        // Decode with one lost data fragment per stripe: every stripe rebuilt.
        let mut degraded = FaultyStore::new(&store);
        for stripe in 0..index.layout.stripe_count {
            degraded.inject(FragmentLocation { stripe, shard: 0 }, Fault::Missing);
        }
        group.bench_function(BenchmarkId::new("decode", format!("{label},sink=discard,lost=1/stripe")), |b| {
            b.iter(|| decode(&index, &degraded, &mut std::io::sink(), None, threads(), |_| {}).expect("decode"))
        });
    }
    group.finish();
    drop(source);
    let _ = std::fs::remove_file(path);
}

criterion_group!(benches, primitives, codec);
criterion_main!(benches);
