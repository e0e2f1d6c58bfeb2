//! Encodes a random file in memory and decodes it repeatedly: a target for
//! profilers (`perf record`, `valgrind --tool=callgrind`).
//!
//! Usage: `decode_loop [MiB] [rounds] [k] [m]`.

use rand::SeedableRng;
use strand_core::io::MemoryStore;
use strand_core::{CodecParams, UploadSecrets, decode, encode};

fn main() {
    let arguments: Vec<u64> = std::env::args().skip(1).filter_map(|argument| argument.parse().ok()).collect();
    let mebibytes = arguments.first().copied().unwrap_or(256);
    let rounds = arguments.get(1).copied().unwrap_or(4);
    let params = CodecParams {
        chunk_size: 1 << 20,
        data_shards: arguments.get(2).map_or(10, |&k| k as u16),
        parity_shards: arguments.get(3).map_or(4, |&m| m as u16),
    };
    let mut file = vec![0u8; (mebibytes << 20) as usize];
    rand::Rng::fill_bytes(&mut rand::rngs::StdRng::seed_from_u64(1), &mut file);
    let mut store = MemoryStore::new();
    let secrets = UploadSecrets::generate(&mut rand::rngs::StdRng::seed_from_u64(2));
    let threads = strand_core::pipeline::default_threads();
    let index = encode(file.as_slice(), &mut store, params, &secrets, threads, |_| {}).expect("encode");
    let mut out = Vec::with_capacity(file.len());
    for _ in 0..rounds {
        out.clear();
        let started = std::time::Instant::now();
        decode(&index, &store, &mut out, None, threads, |_| {}).expect("decode");
        let seconds = started.elapsed().as_secs_f64();
        println!("decode {:.0} MB/s", file.len() as f64 / seconds / 1e6);
    }
    assert!(out == file, "decoded bytes differ");
}
