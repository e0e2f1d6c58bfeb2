//! Proof sizes and speeds for the default layout: 1 MiB chunks make
//! fragments of 1 MiB + 16 B (1,025 BLAKE3 chunks); a 1 GiB upload with
//! RS(4+2) gives each of six providers a contract of 256 fragments; a
//! provider holding that one contract answers 20 challenges per epoch.
//!
//! Prints the proof bytes per challenge, then measures verification of one
//! contract's answers (20 challenges) and building one challenge's proof from
//! its 16 KiB group and outboard path (what a node does after reading them).

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::{BlockSize, ChunkNum, ChunkRanges};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, RngExt, SeedableRng};
use strand_proof_of_storage::answers::{self, Commitment};
use strand_proof_of_storage::challenge::Challenge;
use strand_proof_of_storage::chunk::{self, GROUP_CHUNKS};
use strand_proof_of_storage::merkle;
use strand_proof_of_storage::schedule::{self, MemoryRoster, RosterContract};

const FRAGMENT_SIZE: u32 = (1 << 20) + 16;
const FRAGMENTS: u32 = 256;
const CHALLENGES: u16 = 20;

type Parents = Vec<([u8; 32], [u8; 32])>;

/// The parents and group bytes iroh-blobs' export of a chunk's group yields.
fn exports(fragment: &[u8], outboard: &PreOrderMemOutboard, chunk: u64) -> (Parents, Vec<u8>) {
    let (first, from, to) = chunk::group_of(fragment.len() as u64, chunk);
    let ranges = ChunkRanges::from(ChunkNum(first)..ChunkNum(first + GROUP_CHUNKS));
    let mut encoded = Vec::new();
    bao_tree::io::sync::encode_ranges_validated(fragment, outboard, &ranges, &mut encoded).expect("encode");
    let parent_bytes = encoded.len() - (to - from) as usize;
    let parents = encoded[..parent_bytes]
        .chunks(64)
        .map(|pair| (pair[..32].try_into().expect("32"), pair[32..].try_into().expect("32")))
        .collect();
    (parents, encoded[parent_bytes..].to_vec())
}

struct Setup {
    commitment: Commitment,
    challenges: Vec<Challenge>,
    answers: Vec<u8>,
    fragment: Vec<u8>,
    outboard: PreOrderMemOutboard,
}

fn setup() -> Setup {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let (beacon, epoch, contract) = ([9u8; 32], 77u64, [3u8; 32]);
    let roster = MemoryRoster {
        contracts: vec![RosterContract { contract, fragment_count: FRAGMENTS, fragment_size: FRAGMENT_SIZE }],
        demand_per_contract: u64::from(CHALLENGES),
        ..Default::default()
    };
    let challenges: Vec<Challenge> =
        schedule::derive(&beacon, &[4; 32], epoch, &roster).iter().map(|scheduled| scheduled.challenge).collect();
    // Real bytes only for the challenged fragments; the others are just ids.
    let mut ids: Vec<[u8; 32]> = (0..FRAGMENTS).map(|_| rng.random()).collect();
    let mut fragments = std::collections::HashMap::new();
    for c in &challenges {
        fragments.entry(c.fragment).or_insert_with(|| {
            let mut bytes = vec![0u8; FRAGMENT_SIZE as usize];
            rng.fill_bytes(&mut bytes);
            bytes
        });
    }
    for (index, bytes) in &fragments {
        ids[*index as usize] = *blake3::hash(bytes).as_bytes();
    }
    let proofs = challenges
        .iter()
        .map(|c| chunk::prove_from_fragment(&fragments[&c.fragment], u64::from(c.chunk)).expect("prove"))
        .collect();
    let answers = answers::build(&ids, &challenges, proofs).to_bytes();
    let commitment = Commitment {
        contract,
        fragment_root: merkle::root(&ids),
        fragment_count: FRAGMENTS,
        fragment_size: FRAGMENT_SIZE,
    };
    assert_eq!(answers::verify(&commitment, &challenges, &answers), Ok(()));
    let fragment = fragments.into_values().next().expect("a fragment");
    let outboard = PreOrderMemOutboard::create(&fragment, BlockSize::from_chunk_log(4));
    Setup { commitment, challenges, answers, fragment, outboard }
}

fn benches(c: &mut Criterion) {
    let setup = setup();
    eprintln!(
        "answers of one contract: {} bytes for {} challenges = {} bytes per challenge (fragments of {} B, {} per contract)",
        setup.answers.len(),
        CHALLENGES,
        setup.answers.len() / usize::from(CHALLENGES),
        FRAGMENT_SIZE,
        FRAGMENTS
    );
    let (parents, group) = exports(&setup.fragment, &setup.outboard, 517);
    eprintln!("read per challenge by a node: {} B group + {} B of outboard parents", group.len(), 64 * parents.len());

    let mut group_bench = c.benchmark_group("proofs");
    group_bench.throughput(Throughput::Elements(u64::from(CHALLENGES)));
    group_bench.bench_function("verify one contract's answers (20 challenges)", |b| {
        b.iter(|| answers::verify(&setup.commitment, &setup.challenges, &setup.answers))
    });
    group_bench.throughput(Throughput::Elements(1));
    group_bench.bench_function("prove one challenge from its group and outboard path", |b| {
        b.iter(|| chunk::prove_from_group(u64::from(FRAGMENT_SIZE), 517, &parents, &group).expect("prove"))
    });
    group_bench.finish();
}

criterion_group!(proofs, benches);
criterion_main!(proofs);
