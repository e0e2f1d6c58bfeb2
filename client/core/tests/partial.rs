//! A grantee of a byte range decrypts exactly that range and cannot derive
//! the key of any other chunk.

use rand::SeedableRng;
use rand::rngs::StdRng;
use strand_core::chunk_cipher::decrypt_chunk;
use strand_core::decode::decode_with_keys;
use strand_core::io::MemoryStore;
use strand_core::partial::PartialIndex;
use strand_core::scramble::Scramble;
use strand_core::{CodecParams, DecodeError, RecoveryIndex, UploadSecrets, encode};

fn setup(length: usize) -> (Vec<u8>, RecoveryIndex, MemoryStore) {
    let mut file = vec![0u8; length];
    rand::Rng::fill_bytes(&mut StdRng::seed_from_u64(3), &mut file);
    let params = CodecParams { chunk_size: 4096, data_shards: 4, parity_shards: 2 };
    let mut store = MemoryStore::new();
    let secrets = UploadSecrets::generate(&mut StdRng::seed_from_u64(4));
    let index = encode(file.as_slice(), &mut store, params, &secrets, 2, |_| {}).expect("encode");
    (file, index, store)
}

#[test]
fn a_range_grantee_decrypts_exactly_its_range() {
    let (file, index, store) = setup(100_000);
    let (start, end) = (10_000u64, 30_001u64);
    let partial = PartialIndex::of(&index, start, end).expect("range inside the file");
    let reopened = PartialIndex::from_bytes(&partial.to_bytes()).expect("round trip");
    assert_eq!(reopened, partial);

    let mut out = Vec::new();
    decode_with_keys(&reopened, None, &store, &mut out, Some(start..end), 2, |_| {}).expect("decode the range");
    assert_eq!(out, file[start as usize..end as usize]);
    // A sub-range too.
    let mut out = Vec::new();
    decode_with_keys(&reopened, None, &store, &mut out, Some(12_000..13_000), 2, |_| {}).expect("decode a sub-range");
    assert_eq!(out, file[12_000..13_000]);
    // With a lost data fragment of a covered chunk, parity within the stripe rebuilds it.
    let (_, first_stripe) = reopened.stripes().next().expect("a stripe");
    store.remove(&first_stripe[0]);
    let mut out = Vec::new();
    decode_with_keys(&reopened, None, &store, &mut out, Some(start..end), 2, |_| {}).expect("degraded decode");
    assert_eq!(out, file[start as usize..end as usize]);

    // Outside the grant's chunks: refused before any fetch. (A grant
    // covers whole chunks: bytes 8192..10000 share chunk 2 with the range's
    // start and are readable; 5000..9000 needs chunk 1.)
    for outside in [0..100, 40_000..41_000, 5_000..9_000] {
        let mut out = Vec::new();
        let refused = decode_with_keys(&reopened, None, &store, &mut out, Some(outside), 2, |_| {});
        assert!(matches!(refused, Err(DecodeError::NotGranted { .. })), "{refused:?}");
        assert!(out.is_empty());
    }
}

#[test]
fn a_range_grantee_cannot_derive_or_use_any_other_chunks_key() {
    let (_, index, store) = setup(100_000);
    let chunk_size = 4096u64;
    let partial = PartialIndex::of(&index, 10_000, 30_001).expect("range");
    let bytes = partial.to_bytes();
    // The master key is not in the material, nor any other chunk's key.
    assert!(!bytes.windows(32).any(|window| window == index.master_key.as_bytes()), "no master key");
    assert!(!bytes.windows(32).any(|window| window == index.master_key.scramble_seed()), "no scramble seed");
    let covered: Vec<u64> = partial.chunk_keys().map(|(position, _)| position).collect();
    assert_eq!(covered, (10_000 / chunk_size..30_001u64.div_ceil(chunk_size)).collect::<Vec<_>>());
    let scramble = Scramble::new(&index.master_key.scramble_seed(), index.layout.slot_count());
    let data_shards = u64::from(index.params().data_shards);
    for position in (0..index.layout.chunk_count).filter(|position| !covered.contains(position)) {
        let other_key = index.master_key.chunk_key(position);
        assert!(!bytes.windows(32).any(|window| window == other_key.as_bytes()), "chunk {position}'s key is not given");
        // No key the grantee holds opens that chunk's fragment.
        let slot = scramble.slot_of_position(position);
        let id = index.stripe(slot / data_shards)[(slot % data_shards) as usize];
        let fragment = store.get(&id).expect("fragment");
        for (_, key) in partial.chunk_keys() {
            let mut attempt = fragment.clone();
            assert!(
                decrypt_chunk(key, &index.upload_id, position, &mut attempt).is_err(),
                "chunk {position} stays sealed"
            );
        }
    }
}

#[test]
fn damaged_partial_indexes_are_refused() {
    let (_, index, _) = setup(50_000);
    let bytes = PartialIndex::of(&index, 100, 9_000).expect("range").to_bytes();
    assert!(PartialIndex::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(PartialIndex::from_bytes(&longer).is_err());
    let mut wrong_magic = bytes.clone();
    wrong_magic[0] ^= 1;
    assert!(PartialIndex::from_bytes(&wrong_magic).is_err());
    for cut in 0..bytes.len() {
        assert!(PartialIndex::from_bytes(&bytes[..cut]).is_err());
    }
    assert!(PartialIndex::of(&index, 10, 10).is_none() && PartialIndex::of(&index, 0, 50_001).is_none());
}
