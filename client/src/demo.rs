//! `strand demo`: the codec end to end on a sample file, in one command.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context as _, bail};
use rand::Rng as _;
use serde::Serialize;
use strand_client::keyfile;
use strand_client::offline::{self, DecodeSummary, EncodeSummary};
use strand_client::progress::bytes_bar;
use strand_core::io::DirectoryStore;
use strand_core::{CodecParams, Identity};

#[derive(Serialize)]
struct DemoReport {
    encode: EncodeSummary,
    damaged: Vec<String>,
    decode: DecodeSummary,
    range_decode: DecodeSummary,
    original_blake3: String,
    decoded_blake3: String,
    check: bool,
}

pub fn run(size: u64, directory: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let temporary =
        tempfile::Builder::new().prefix("strand-demo-").tempdir().context("cannot create a work directory")?;
    let work = directory.unwrap_or(temporary.path());
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let say = |line: String| -> std::io::Result<()> {
        if !json {
            out!("{line}")?;
        }
        Ok(())
    };

    let identity = Identity::generate(&mut rand::rng());
    keyfile::write(&work.join("identity.pem"), &identity, true)?;
    say(format!("1. identity   {} (key in {})", identity.public_key(), work.join("identity.pem").display()))?;

    let sample = work.join("sample.bin");
    write_sample(&sample, size, json)?;
    let original = offline::hash_file(&sample)?;
    say(format!("2. sample     {} bytes of random data, blake3 {}", size, original.to_hex()))?;

    let fragments = work.join("fragments");
    let params = CodecParams::default();
    let threads = strand_core::pipeline::default_threads();
    let bar = bytes_bar(size, "encoding", json);
    let encode =
        offline::encode_file(&sample, &fragments, None, &identity, params, threads, |done| bar.set_position(done))?;
    bar.finish_and_clear();
    say(format!(
        "3. encoded    RS({}+{}) into {} fragments of {} bytes in {:.2} s ({:.0} MB/s); index sealed to you",
        encode.data_shards,
        encode.parity_shards,
        encode.fragments,
        encode.fragment_bytes,
        encode.seconds,
        encode.bytes_per_second / 1e6
    ))?;

    let index = offline::read_index(&encode.index, &identity)?;
    let damaged = damage(&index, &fragments)?;
    say(format!("4. damaged    {}", damaged.join("; ")))?;

    let restored = work.join("restored.bin");
    let bar = bytes_bar(size, "decoding", json);
    let decode = offline::decode_file(&index, &fragments, &restored, None, threads, |done| bar.set_position(done))?;
    bar.finish_and_clear();
    let decoded = offline::hash_file(&restored)?;
    say(format!(
        "5. decoded    {} bytes in {:.2} s ({:.0} MB/s), {} stripe(s) rebuilt from parity",
        decode.bytes,
        decode.seconds,
        decode.bytes_per_second / 1e6,
        decode.degraded_stripes.len()
    ))?;

    let (start, end) = (size / 3, (size / 3 + (1 << 20)).min(size));
    let slice = work.join("slice.bin");
    let range_decode = offline::decode_file(&index, &fragments, &slice, Some(start..end), threads, |_| {})?;
    let range_ok = std::fs::read(&slice)? == read_slice(&sample, start, end)?;
    say(format!(
        "6. range      bytes {start}..{end} decoded alone: {}",
        if range_ok { "equal to the original slice" } else { "DIFFERENT" }
    ))?;

    let check = decoded == original && range_ok;
    say(format!(
        "check         original {} {} restored {}",
        &original.to_hex()[..16],
        if check { "==" } else { "!=" },
        &decoded.to_hex()[..16]
    ))?;
    if json {
        let report = DemoReport {
            encode,
            damaged,
            decode,
            range_decode,
            original_blake3: original.to_hex().to_string(),
            decoded_blake3: decoded.to_hex().to_string(),
            check,
        };
        out!("{}", serde_json::to_string_pretty(&report)?)?;
    }
    if !check {
        bail!("the restored file differs from the original");
    }
    Ok(())
}

/// Writes `size` random bytes to `path`.
pub fn write_random(path: &Path, size: u64) -> anyhow::Result<()> {
    write_sample(path, size, true)
}

fn write_sample(path: &Path, size: u64, json: bool) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut rng = rand::rng();
    let mut block = vec![0u8; 1 << 20];
    let bar = bytes_bar(size, "sampling", json);
    let mut written = 0;
    while written < size {
        let length = (size - written).min(block.len() as u64) as usize;
        rng.fill_bytes(&mut block[..length]);
        file.write_all(&block[..length])?;
        written += length as u64;
        bar.set_position(written);
    }
    bar.finish_and_clear();
    file.flush()?;
    Ok(())
}

/// Deletes, in the stripe holding the file's first chunk, that chunk's
/// fragment and a parity fragment (m = 2 losses), and flips a bit in the
/// fragment of a chunk in another stripe. Chunks, not slots: the scramble
/// leaves some slots of the last stripes empty, and a fragment holding no
/// chunk is never read, so damaging one would show nothing.
fn damage(index: &strand_core::RecoveryIndex, fragments: &Path) -> anyhow::Result<Vec<String>> {
    let store = DirectoryStore::open(fragments)?;
    let k = u64::from(index.params().data_shards);
    let scramble = strand_core::scramble::Scramble::new(&index.master_key.scramble_seed(), index.layout.slot_count());
    // (stripe, shard) of the chunk at file position `position`.
    let place = |position: u64| {
        let slot = scramble.slot_of_position(position);
        (slot / k, (slot % k) as usize)
    };
    let (first_stripe, first_shard) = place(0);
    let stripe = index.stripe(first_stripe);
    let mut damaged = Vec::new();
    for id in [stripe[first_shard], stripe[k as usize]] {
        std::fs::remove_file(store.path_of(&id))?;
        damaged.push(format!("deleted fragment {} of stripe {first_stripe}", id.short()));
    }
    let other = (0..index.layout.chunk_count).rev().map(place).find(|(stripe, _)| *stripe != first_stripe);
    if let Some((other_stripe, shard)) = other {
        let id = index.stripe(other_stripe)[shard];
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(store.path_of(&id))?;
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(100))?;
        file.read_exact(&mut byte)?;
        file.seek(SeekFrom::Start(100))?;
        file.write_all(&[byte[0] ^ 0x04])?;
        damaged.push(format!("flipped a bit of fragment {} of stripe {other_stripe}", id.short()));
    }
    Ok(damaged)
}

fn read_slice(path: &Path, start: u64, end: u64) -> anyhow::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = vec![0u8; (end - start) as usize];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}
