//! Round-trip, loss, tamper and privacy tests of the whole codec.

use std::collections::HashSet;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use strand_core::io::{Fault, FaultyStore, FragmentLocation, MemoryStore};
use strand_core::scramble::Scramble;
use strand_core::{
    CodecParams, DecodeError, FragmentId, FragmentProblem, Identity, OpenError, OpenIndexError, RecoveryIndex,
    UploadSecrets, decode, encode, open_index, seal_index,
};

/// Small chunks keep property tests fast while exercising every boundary.
const CHUNK: u32 = 1024;

fn sample(length: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut bytes = vec![0u8; length];
    rand::Rng::fill_bytes(&mut rng, &mut bytes);
    bytes
}

fn encoded(file: &[u8], params: CodecParams, seed: u64) -> (RecoveryIndex, MemoryStore) {
    let mut store = MemoryStore::new();
    let secrets = UploadSecrets::generate(&mut StdRng::seed_from_u64(seed));
    let index = encode(file, &mut store, params, &secrets, 2, |_| {}).expect("encode");
    (index, store)
}

fn decoded(index: &RecoveryIndex, store: &MemoryStore) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decode(index, store, &mut out, None, 2, |_| {})?;
    Ok(out)
}

/// Sizes at every boundary of a chunk and a stripe, with why each matters.
fn interesting_sizes(params: CodecParams) -> Vec<usize> {
    let chunk = params.chunk_size as usize;
    let stripe = chunk * usize::from(params.data_shards);
    vec![
        0,              // empty file: still one chunk, one stripe
        1,              // one byte, all padding
        chunk - 1,      // just under a chunk
        chunk,          // exactly a chunk
        chunk + 1,      // spills one byte into a second chunk
        stripe - 1,     // just under a full stripe
        stripe,         // exactly a full stripe, no padding chunks
        stripe + 1,     // a second stripe of padding but one byte
        stripe * 5 + 3, // many stripes, ragged end
    ]
}

#[test]
fn every_boundary_size_round_trips_for_several_codes() {
    for (k, m) in [(1, 1), (1, 3), (2, 1), (4, 2), (10, 4)] {
        let params = CodecParams { chunk_size: CHUNK, data_shards: k, parity_shards: m };
        for size in interesting_sizes(params) {
            let file = sample(size, size as u64);
            let (index, store) = encoded(&file, params, 1);
            assert_eq!(decoded(&index, &store).expect("decode"), file, "k={k} m={m} size={size}");
            // With k = 1 the parity fragments are replicas under the data
            // fragment's id, so the store holds one blob per stripe.
            let distinct: HashSet<_> = index.fragment_ids().iter().collect();
            assert_eq!(store.len(), distinct.len());
            assert_eq!(index.fragment_ids().len() as u64, index.layout.fragment_count());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn round_trip_random_sizes_and_codes(size in 0usize..40_000, k in 1u16..8, m in 1u16..5, seed: u64) {
        let params = CodecParams { chunk_size: CHUNK, data_shards: k, parity_shards: m };
        let file = sample(size, seed);
        let (index, store) = encoded(&file, params, seed);
        prop_assert_eq!(decoded(&index, &store).expect("decode"), file);
    }

    #[test]
    fn up_to_m_losses_or_corruptions_per_stripe_recover(
        size in 1usize..30_000, k in 1u16..6, m in 1u16..4, seed: u64, corrupt: bool,
    ) {
        let params = CodecParams { chunk_size: CHUNK, data_shards: k, parity_shards: m };
        let file = sample(size, seed);
        let (index, store) = encoded(&file, params, seed);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut damaged = FaultyStore::new(&store);
        let fault = if corrupt { Fault::FlipBit } else { Fault::Missing };
        for stripe in 0..index.layout.stripe_count {
            let mut shards: Vec<usize> = (0..params.fragments_per_stripe()).collect();
            shards.sort_by_key(|_| rand::Rng::next_u32(&mut rng));
            for &shard in shards.iter().take(usize::from(m)) {
                damaged.inject(FragmentLocation { stripe, shard }, fault);
            }
        }
        let mut out = Vec::new();
        let report = decode(&index, &damaged, &mut out, None, 2, |_| {}).expect("m losses recover");
        prop_assert_eq!(out, file);
        prop_assert!(report.file_hash_verified);
    }

    #[test]
    fn m_plus_one_losses_fail_naming_the_stripe(size in 1usize..30_000, k in 1u16..6, m in 1u16..4, seed: u64) {
        let params = CodecParams { chunk_size: CHUNK, data_shards: k, parity_shards: m };
        let file = sample(size, seed);
        let (index, store) = encoded(&file, params, seed);
        // Lose the fragment holding a real chunk (position 0) and m of its
        // siblings: losing only padding fragments rightly does not stop a
        // decode, so the victim must hold file bytes.
        let scramble = Scramble::new(&index.master_key.scramble_seed(), index.layout.slot_count());
        let slot = scramble.slot_of_position(0);
        let (victim, shard) = (slot / u64::from(k), (slot % u64::from(k)) as usize);
        let width = params.fragments_per_stripe();
        let mut damaged = FaultyStore::new(&store);
        for offset in 0..=usize::from(m) {
            damaged.inject(FragmentLocation { stripe: victim, shard: (shard + offset) % width }, Fault::Missing);
        }
        let mut out = Vec::new();
        match decode(&index, &damaged, &mut out, None, 2, |_| {}).map(|_| out) {
            Err(DecodeError::Unrecoverable { stripes }) => {
                prop_assert_eq!(stripes.len(), 1);
                prop_assert_eq!(stripes[0].stripe, victim);
                prop_assert_eq!(stripes[0].needed, usize::from(k));
                let message = DecodeError::Unrecoverable { stripes }.to_string();
                prop_assert!(message.contains(&format!("stripe {victim}")), "{}", message);
            }
            other => prop_assert!(false, "expected an unrecoverable stripe, got {:?}", other.map(|bytes| bytes.len())),
        }
    }

    #[test]
    fn range_decode_equals_the_slice(size in 1usize..40_000, a in 0usize..40_000, b in 0usize..40_000, seed: u64) {
        let params = CodecParams { chunk_size: CHUNK, data_shards: 3, parity_shards: 2 };
        let file = sample(size, seed);
        let (index, store) = encoded(&file, params, seed);
        let (start, end) = (a.min(b) % (size + 1), a.max(b) % (size + 1));
        let (start, end) = (start.min(end), start.max(end));
        let mut out = Vec::new();
        let report = decode(&index, &store, &mut out, Some(start as u64..end as u64), 2, |_| {}).expect("range");
        prop_assert_eq!(&out[..], &file[start..end]);
        prop_assert_eq!(report.bytes_written, (end - start) as u64);
    }
}

fn damage(store: &MemoryStore, id: &FragmentId, corrupt: bool) {
    if corrupt {
        let mut bytes = store.get(id).expect("stored");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        store.insert(*id, bytes);
    } else {
        store.remove(id);
    }
}

#[test]
fn a_range_touches_only_the_fragments_that_hold_it() {
    let params = CodecParams { chunk_size: CHUNK, data_shards: 4, parity_shards: 2 };
    let file = sample(64 * 1024, 7);
    let (index, store) = encoded(&file, params, 7);
    let recording = FaultyStore::new(&store);
    let mut out = Vec::new();
    decode(&index, &recording, &mut out, Some(3000..5000), 1, |_| {}).expect("range");
    let asked = recording.asked();
    assert_eq!(asked.len(), 3, "three 1 KiB chunks cover 3000..5000");
    // Those three fragments alone are enough.
    let mut sparse = MemoryStore::new();
    for location in &asked {
        let id = index.stripe(location.stripe)[location.shard];
        strand_core::io::FragmentSink::put(&mut sparse, &id, &store.get(&id).expect("stored")).expect("put");
    }
    let mut out = Vec::new();
    decode(&index, &sparse, &mut out, Some(3000..5000), 1, |_| {}).expect("only those fragments");
    assert_eq!(out, &file[3000..5000]);
}

// ---- tamper tests: each a distinct, clear outcome; never a panic or wrong bytes ----

const TAMPER_PARAMS: CodecParams = CodecParams { chunk_size: CHUNK, data_shards: 4, parity_shards: 2 };
/// Three whole stripes: every data fragment holds file bytes (no padding
/// chunk, which a healthy decode would never read), so damage to any data
/// fragment is met.
const TAMPER_SIZE: usize = 3 * 4 * CHUNK as usize;

fn problems_in_stripe_zero(index: &RecoveryIndex, store: &MemoryStore, file: &[u8]) -> Vec<FragmentProblem> {
    let mut out = Vec::new();
    let report = decode(index, store, &mut out, None, 2, |_| {}).expect("one bad fragment is recoverable");
    assert_eq!(out, file, "recovered bytes are the original");
    report.degraded.get(&0).map(|issues| issues.iter().map(|issue| issue.problem.clone()).collect()).unwrap_or_default()
}

#[test]
fn tamper_flipped_bit_is_reported_as_corrupt_and_repaired() {
    let file = sample(TAMPER_SIZE, 1);
    let (index, store) = encoded(&file, TAMPER_PARAMS, 1);
    damage(&store, &index.stripe(0)[0], true);
    assert_eq!(problems_in_stripe_zero(&index, &store, &file), vec![FragmentProblem::Corrupt]);
}

#[test]
fn tamper_swapped_fragments_are_reported_as_misplaced() {
    let file = sample(TAMPER_SIZE, 2);
    let (index, store) = encoded(&file, TAMPER_PARAMS, 2);
    let (first, second) = (index.stripe(0)[0], index.stripe(0)[1]);
    let (first_bytes, second_bytes) = (store.get(&first).expect("a"), store.get(&second).expect("b"));
    store.insert(first, second_bytes);
    store.insert(second, first_bytes);
    let problems = problems_in_stripe_zero(&index, &store, &file);
    assert!(problems.contains(&FragmentProblem::Misplaced { holds: second }), "{problems:?}");
}

#[test]
fn tamper_fragment_of_another_upload_is_rejected_and_not_used() {
    let file = sample(TAMPER_SIZE, 3);
    let (index, store) = encoded(&file, TAMPER_PARAMS, 3);
    let (other_index, other_store) = encoded(&file, TAMPER_PARAMS, 4);
    let foreign = other_store.get(&other_index.stripe(0)[0]).expect("foreign");
    store.insert(index.stripe(0)[0], foreign);
    assert_eq!(problems_in_stripe_zero(&index, &store, &file), vec![FragmentProblem::Corrupt]);
    // Decoding another upload's index against this store finds none of its
    // fragments: a clear unrecoverable error, never bytes of this upload.
    let error = decoded(&other_index, &store).expect_err("other upload's fragments");
    assert!(matches!(error, DecodeError::Unrecoverable { .. }), "{error}");
}

#[test]
fn tamper_truncated_fragment_is_reported_as_wrong_size() {
    let file = sample(TAMPER_SIZE, 5);
    let (index, store) = encoded(&file, TAMPER_PARAMS, 5);
    let id = index.stripe(0)[2];
    let mut bytes = store.get(&id).expect("stored");
    bytes.truncate(100);
    store.insert(id, bytes);
    assert_eq!(problems_in_stripe_zero(&index, &store, &file), vec![FragmentProblem::WrongSize { actual: 100 }]);
}

#[test]
fn tamper_beyond_parity_fails_with_every_reason_named() {
    let file = sample(TAMPER_SIZE, 6);
    let (index, store) = encoded(&file, TAMPER_PARAMS, 6);
    let ids = index.stripe(0).to_vec();
    damage(&store, &ids[0], true);
    store.remove(&ids[1]);
    store.insert(ids[2], store.get(&ids[3]).expect("swap source"));
    let error = decoded(&index, &store).expect_err("three bad fragments with m = 2");
    let message = error.to_string();
    for expected in ["stripe 0", "corrupt", "missing", "swapped"] {
        assert!(message.contains(expected), "'{expected}' not in: {message}");
    }
}

#[test]
fn tamper_index_truncated_altered_or_wrong_key_each_fail_distinctly() {
    let owner = Identity::from_secret_bytes(&[1; 32]);
    let stranger = Identity::from_secret_bytes(&[2; 32]);
    let file = sample(5000, 7);
    let (index, _) = encoded(&file, TAMPER_PARAMS, 7);
    let sealed = seal_index(&index, &owner.public_key(), &mut StdRng::seed_from_u64(7));
    assert_eq!(open_index(&sealed, &owner), Ok(index));

    let truncated = open_index(&sealed[..sealed.len() - 10], &owner);
    assert!(matches!(truncated, Err(OpenIndexError::Seal(OpenError::Length { .. }))), "{truncated:?}");
    let mut altered = sealed.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x10;
    assert_eq!(open_index(&altered, &owner), Err(OpenIndexError::Seal(OpenError::Altered)));
    let wrong_key = open_index(&sealed, &stranger);
    assert!(matches!(wrong_key, Err(OpenIndexError::Seal(OpenError::WrongRecipient { .. }))), "{wrong_key:?}");
    let messages: HashSet<String> = [truncated, open_index(&altered, &owner), wrong_key]
        .into_iter()
        .map(|result| result.expect_err("fails").to_string())
        .collect();
    assert_eq!(messages.len(), 3, "each damage has its own message: {messages:?}");
}

#[test]
fn tamper_index_of_another_upload_fails_authentication_not_with_wrong_bytes() {
    let file = sample(TAMPER_SIZE, 8);
    let (index, store) = encoded(&file, TAMPER_PARAMS, 8);
    // Same fragment ids, but another upload's keys: what a forged or mixed-up
    // index looks like once it gets past the seal.
    let impostor = RecoveryIndex::new(
        strand_core::UploadId::from_bytes([9; 16]),
        index.file_hash,
        index.layout,
        index.master_key.clone(),
        index.fragment_ids().to_vec(),
    );
    let error = decoded(&impostor, &store).expect_err("wrong upload id");
    assert!(matches!(error, DecodeError::Authentication(_)), "{error}");
}

// ---- privacy ----

#[test]
fn two_uploads_of_one_file_share_no_fragment_id() {
    let file = sample(50_000, 9);
    let (first, _) = encoded(&file, TAMPER_PARAMS, 10);
    let (second, _) = encoded(&file, TAMPER_PARAMS, 11);
    let first_ids: HashSet<_> = first.fragment_ids().iter().collect();
    assert!(second.fragment_ids().iter().all(|id| !first_ids.contains(id)));
}

#[test]
fn all_fragments_have_one_size_and_hold_no_plaintext_window() {
    // Low-entropy, genome-like plaintext makes any leak easy to spot.
    let file: Vec<u8> = (0..60_000).map(|i| b"ACGT"[(i * 7 + i / 13) % 4]).collect();
    let (index, store) = encoded(&file, TAMPER_PARAMS, 12);
    let sizes: HashSet<usize> = store.ids().iter().map(|id| store.get(id).expect("stored").len()).collect();
    assert_eq!(sizes, HashSet::from([TAMPER_PARAMS.fragment_size()]));
    let windows: HashSet<&[u8]> = file.windows(32).collect();
    for id in index.fragment_ids() {
        let fragment = store.get(id).expect("stored");
        assert!(fragment.windows(32).all(|window| !windows.contains(window)), "fragment {id:?} leaks plaintext");
    }
}

#[test]
fn losing_only_padding_fragments_does_not_stop_a_decode() {
    // 3073 bytes in 1 KiB chunks with k = 3: four chunks, two stripes, two
    // padding slots. Losing every fragment that holds a padding chunk (more
    // than m in one stripe, possibly) still leaves every file byte.
    let params = CodecParams { chunk_size: CHUNK, data_shards: 3, parity_shards: 1 };
    let file = sample(3073, 1);
    let (index, store) = encoded(&file, params, 1);
    let scramble = Scramble::new(&index.master_key.scramble_seed(), index.layout.slot_count());
    let mut damaged = FaultyStore::new(&store);
    let padding: Vec<u64> = (0..index.layout.slot_count())
        .filter(|&slot| scramble.position_of_slot(slot) >= index.layout.chunk_count)
        .collect();
    assert_eq!(padding.len(), 2);
    for slot in padding {
        damaged.inject(FragmentLocation { stripe: slot / 3, shard: (slot % 3) as usize }, Fault::Missing);
    }
    let mut out = Vec::new();
    let report = decode(&index, &damaged, &mut out, None, 1, |_| {}).expect("padding is not needed");
    assert_eq!(out, file);
    assert!(report.degraded.is_empty(), "padding fragments are never read: {report:?}");
}
