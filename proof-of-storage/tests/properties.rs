//! Honest proofs verify for random fragment and contract sizes; any change
//! to a proof or to what it is checked against fails.

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::{BlockSize, ChunkNum, ChunkRanges};
use proptest::prelude::*;
use strand_proof_of_storage::answers::{self, Answers, Commitment, Fault};
use strand_proof_of_storage::challenge::Challenge;
use strand_proof_of_storage::chunk::{self, ChunkProof};
use strand_proof_of_storage::merkle;
use strand_proof_of_storage::schedule::{self, MemoryRoster, RosterContract};

fn mismatch(result: &Result<(), Fault>) -> bool {
    matches!(result, Err(Fault::ChunkMismatch { .. }))
}

struct Contract {
    fragments: Vec<Vec<u8>>,
    ids: Vec<[u8; 32]>,
    commitment: Commitment,
    /// Challenges per epoch the contract asks for.
    challenges: u16,
}

impl Contract {
    /// The epoch's challenges of a provider holding only this contract: all
    /// of its schedule.
    fn challenges(&self, beacon: &[u8; 32], epoch: u64) -> Vec<Challenge> {
        let roster = MemoryRoster {
            contracts: vec![RosterContract {
                contract: self.commitment.contract,
                fragment_count: self.commitment.fragment_count,
                fragment_size: self.commitment.fragment_size,
            }],
            demand_per_contract: u64::from(self.challenges),
            ..Default::default()
        };
        schedule::derive(beacon, &[0xaa; 32], epoch, &roster).iter().map(|scheduled| scheduled.challenge).collect()
    }
}

fn contract(fragment_count: usize, fragment_size: usize, challenges: u16, seed: u8) -> Contract {
    let fragments: Vec<Vec<u8>> = (0..fragment_count)
        .map(|f| (0..fragment_size).map(|i| (i as u8).wrapping_mul(13) ^ (f as u8) ^ seed).collect())
        .collect();
    let ids: Vec<[u8; 32]> = fragments.iter().map(|f| *blake3::hash(f).as_bytes()).collect();
    let commitment = Commitment {
        contract: [seed; 32],
        fragment_root: merkle::root(&ids),
        fragment_count: fragment_count as u32,
        fragment_size: fragment_size as u32,
    };
    Contract { fragments, ids, commitment, challenges }
}

fn honest(contract: &Contract, beacon: &[u8; 32], epoch: u64) -> (Vec<Challenge>, Answers) {
    honest_to(contract, &contract.challenges(beacon, epoch))
}

fn honest_to(contract: &Contract, challenges: &[Challenge]) -> (Vec<Challenge>, Answers) {
    let challenges = challenges.to_vec();
    let chunks: Vec<ChunkProof> = challenges
        .iter()
        .map(|c| {
            chunk::prove_from_fragment(&contract.fragments[c.fragment as usize], u64::from(c.chunk)).expect("in range")
        })
        .collect();
    let answers = answers::build(&contract.ids, &challenges, chunks);
    (challenges, answers)
}

/// The parent pairs and group bytes iroh-blobs' `export_bao` of a chunk's
/// 16 KiB group yields, from bao-tree with iroh's block size.
type Exports = (Vec<([u8; 32], [u8; 32])>, Vec<u8>);

fn as_iroh_exports(fragment: &[u8], chunk: u64) -> Exports {
    let outboard = PreOrderMemOutboard::create(fragment, BlockSize::from_chunk_log(4));
    let (first, from, to) = chunk::group_of(fragment.len() as u64, chunk);
    let ranges = ChunkRanges::from(ChunkNum(first)..ChunkNum(first + chunk::GROUP_CHUNKS));
    let mut encoded = Vec::new();
    bao_tree::io::sync::encode_ranges_validated(fragment, &outboard, &ranges, &mut encoded).expect("encode");
    let group_len = (to - from) as usize;
    let parent_bytes = encoded.len() - group_len;
    assert_eq!(parent_bytes % 64, 0);
    let parents = encoded[..parent_bytes]
        .chunks(64)
        .map(|pair| (pair[..32].try_into().expect("32"), pair[32..].try_into().expect("32")))
        .collect();
    (parents, encoded[parent_bytes..].to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn honest_answers_verify(count in 1usize..40, size in 1usize..70_000, challenges in 1u16..24, epoch in 0u64..1000, beacon in any::<[u8; 32]>()) {
        let contract = contract(count, size, challenges, 3);
        let (challenges, answers) = honest(&contract, &beacon, epoch);
        prop_assert_eq!(answers::verify(&contract.commitment, &challenges, &answers.to_bytes()), Ok(()));
    }

    #[test]
    fn proofs_from_the_store_outboard_equal_proofs_from_the_whole_fragment(size in 1usize..200_000, pick in any::<u64>()) {
        let fragment: Vec<u8> = (0..size).map(|i| (i * 7 + i / 1000) as u8).collect();
        let chunks = (size as u64).div_ceil(1024).max(1);
        let chunk = pick % chunks;
        let (parents, group) = as_iroh_exports(&fragment, chunk);
        let from_group = chunk::prove_from_group(size as u64, chunk, &parents, &group).expect("prove");
        prop_assert_eq!(&from_group, &chunk::prove_from_fragment(&fragment, chunk).expect("prove"));
        prop_assert!(chunk::verify(blake3::hash(&fragment).as_bytes(), size as u64, chunk, &from_group));
    }

    #[test]
    fn any_change_fails(count in 1usize..20, size in 1usize..40_000, epoch in 1u64..1000, beacon in any::<[u8; 32]>(), pick in any::<usize>(), byte in any::<usize>()) {
        let contract = contract(count, size, 8, 5);
        let (challenges, answers) = honest(&contract, &beacon, epoch);
        let bytes = answers.to_bytes();
        let verify = |commitment: &Commitment, beacon: &[u8; 32], epoch: u64, bytes: &[u8]| {
            answers::verify(commitment, &contract.challenges(beacon, epoch), bytes)
        };
        let which = pick % challenges.len();

        // A byte of a challenged chunk.
        let mut tampered = answers.clone();
        let data = &mut tampered.chunks[which].data;
        let at = byte % data.len();
        data[at] ^= 1;
        prop_assert!(mismatch(&verify(&contract.commitment, &beacon, epoch, &tampered.to_bytes())));

        // A node of a chunk's path (when the fragment has more than one chunk).
        if !answers.chunks[which].siblings.is_empty() {
            let mut tampered = answers.clone();
            let siblings = &mut tampered.chunks[which].siblings;
            let at = byte % siblings.len();
            siblings[at][byte % 32] ^= 0x80;
            prop_assert!(mismatch(&verify(&contract.commitment, &beacon, epoch, &tampered.to_bytes())));
        }

        // The fragment id.
        let mut tampered = answers.clone();
        let at = byte % tampered.fragments.len();
        tampered.fragments[at].1[0] ^= 1;
        prop_assert_eq!(verify(&contract.commitment, &beacon, epoch, &tampered.to_bytes()), Err(Fault::NotInContract));

        // An inclusion-proof node.
        if !answers.inclusion.is_empty() {
            let mut tampered = answers.clone();
            let at = byte % tampered.inclusion.len();
            tampered.inclusion[at][3] ^= 4;
            prop_assert_eq!(verify(&contract.commitment, &beacon, epoch, &tampered.to_bytes()), Err(Fault::NotInContract));
        }

        // The contract root.
        let mut other = contract.commitment;
        other.fragment_root[0] ^= 1;
        prop_assert_eq!(verify(&other, &beacon, epoch, &bytes), Err(Fault::NotInContract));

        // Another epoch or another beacon: other challenges (unless, for a
        // tiny contract, they happen to coincide, when the answers are
        // rightly still good).
        for (other_beacon, other_epoch) in [(beacon, epoch + 1), ([beacon[0] ^ 1; 32], epoch)] {
            let same = contract.challenges(&other_beacon, other_epoch) == challenges;
            prop_assert_eq!(verify(&contract.commitment, &other_beacon, other_epoch, &bytes).is_ok(), same);
        }

        // Answers to a different challenge (a proof for another chunk).
        let c = challenges[which];
        let chunks = (size as u64).div_ceil(1024).max(1);
        if chunks > 1 {
            let other_chunk = (u64::from(c.chunk) + 1) % chunks;
            let mut tampered = answers.clone();
            tampered.chunks[which] = chunk::prove_from_fragment(&contract.fragments[c.fragment as usize], other_chunk).expect("prove");
            prop_assert!(verify(&contract.commitment, &beacon, epoch, &tampered.to_bytes()).is_err());
        }

        // Truncated or padded encodings.
        prop_assert!(verify(&contract.commitment, &beacon, epoch, &bytes[..bytes.len() - 1]).is_err());
        let mut padded = bytes.clone();
        padded.push(0);
        prop_assert_eq!(verify(&contract.commitment, &beacon, epoch, &padded), Err(Fault::Undecodable));
    }

    #[test]
    fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let contract = contract(3, 5000, 4, 1);
        prop_assert!(answers::verify(&contract.commitment, &contract.challenges(&[0; 32], 1), &bytes).is_err());
    }
}

#[test]
fn wrong_counts_and_fragments_are_named() {
    let contract = contract(6, 3000, 5, 2);
    let (challenges, answers) = honest(&contract, &[4; 32], 9);
    let mut fewer = answers.clone();
    fewer.chunks.pop();
    assert_eq!(
        answers::verify(&contract.commitment, &challenges, &fewer.to_bytes()),
        Err(Fault::WrongCount { expected: 5, found: 4 })
    );
    let mut other_fragments = answers.clone();
    other_fragments.fragments.push((5, contract.ids[5]));
    other_fragments.fragments.dedup_by_key(|(index, _)| *index);
    if other_fragments.fragments.len() != answers.fragments.len() {
        assert_eq!(
            answers::verify(&contract.commitment, &challenges, &other_fragments.to_bytes()),
            Err(Fault::WrongFragments)
        );
    }
    let mut version = answers.clone();
    version.version = 2;
    assert_eq!(answers::verify(&contract.commitment, &challenges, &version.to_bytes()), Err(Fault::Undecodable));
}

/// Sampling: a provider missing a fraction `f` of the chunks of its one
/// contract passes an epoch at rate `(1 - f)^c`.
#[test]
fn sampling_passes_at_the_predicted_rate() {
    let (fragment_count, fragment_size, c) = (64u32, 64 * 1024u32, 10u16);
    let roster = MemoryRoster {
        contracts: vec![RosterContract { contract: [1; 32], fragment_count, fragment_size }],
        demand_per_contract: u64::from(c),
        ..Default::default()
    };
    let per_fragment = u64::from(strand_proof_of_storage::challenge::chunks_in(fragment_size));
    let total = u64::from(fragment_count) * per_fragment;
    let epochs = 20_000u64;
    for f in [0.01f64, 0.05, 0.2] {
        // The provider lacks a fixed pseudo-random set of f·T chunks.
        let missing: std::collections::HashSet<u64> = (0..total)
            .filter(|i| {
                (u64::from_le_bytes(blake3::hash(&i.to_le_bytes()).as_bytes()[..8].try_into().expect("8")) as f64)
                    < f * u64::MAX as f64
            })
            .collect();
        let f_actual = missing.len() as f64 / total as f64;
        let passed = (0..epochs)
            .filter(|epoch| {
                let beacon = *blake3::hash(&epoch.to_le_bytes()).as_bytes();
                schedule::derive(&beacon, &[1; 32], *epoch, &roster)
                    .iter()
                    .map(|s| s.challenge)
                    .all(|ch| !missing.contains(&(u64::from(ch.fragment) * per_fragment + u64::from(ch.chunk))))
            })
            .count();
        let rate = passed as f64 / epochs as f64;
        let expected = (1.0 - f_actual).powi(i32::from(c));
        // Binomial standard deviation; allow four of them.
        let tolerance = 4.0 * (expected * (1.0 - expected) / epochs as f64).sqrt();
        assert!(
            (rate - expected).abs() <= tolerance,
            "f = {f_actual:.4}: passed {rate:.4} of epochs, (1-f)^c = {expected:.4}, tolerance {tolerance:.4}"
        );
    }
}

/// Pins the v1 answers encoding: any change to it must be a new version.
#[test]
fn answers_encoding_fixed_vector() {
    let contract = contract(3, 2500, 3, 9);
    let challenges =
        [Challenge { fragment: 2, chunk: 1 }, Challenge { fragment: 0, chunk: 2 }, Challenge { fragment: 2, chunk: 0 }];
    let (_, answers) = honest_to(&contract, &challenges);
    let bytes = answers.to_bytes();
    assert_eq!(bytes[0], answers::VERSION);
    assert_eq!(
        blake3::hash(&bytes).to_hex().as_str(),
        "5b982df99bee5ceab0d393cfa18aad07af8e0b0bf04d3701212f300ae347e5e8"
    );
}
