//! Proofs at scale, in process: one provider holding 10, 1,000 and 10,000
//! contracts on a real ledger state machine. For each size it opens the
//! contracts, then for every epoch builds the provider's honest answers
//! from real fragment bytes (what a node reads), signs the submission and
//! applies it in a block (what the ledger verifies), and reports:
//! - ledger bytes the provider submits per epoch (the transaction);
//! - bytes a node reads per epoch (each challenged 16 KiB group and the
//!   outboard path above it, as `strand_node_proof_bytes_read_total`
//!   counts them);
//! - time to verify one provider's epoch (apply the block: schedule and
//!   answers), and to build its answers;
//! - state bytes per contract at the start and after `EPOCHS` epochs.
//!
//! `cargo run --release -p strand-contracts --example proof_scale [EPOCHS]`
//! (default 1,000 epochs for 10 and 1,000 contracts, 100 for 10,000).
//!
//! Contracts hold 4 fragments of 64 KiB + 16 B (a 1 MiB upload in RS(4+2)
//! with 64 KiB chunks): the ids are the BLAKE3 of real bytes, generated
//! from a seed so 40,000 fragments need no disk.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use strand_contracts::block::{Genesis, ValidatorSet};
use strand_contracts::transaction::{
    Body, ContractProof, ContractTerms, FailureDomain, ProofPolicy, ProviderRegistration,
};
use strand_contracts::{AccountId, Digest, Outcome, Replica, Signature, Transaction};
use strand_core::Identity;
use strand_proof_of_storage::chunk::{self, GROUP_CHUNKS};
use strand_proof_of_storage::{answers, merkle};

const FRAGMENTS_PER_CONTRACT: u32 = 4;
const FRAGMENT_SIZE: u32 = (64 << 10) + 16;
const EPOCH_BLOCKS: u64 = 2;

fn fragment(contract: u32, index: u32) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&contract.to_le_bytes()).update(&index.to_le_bytes());
    let mut bytes = vec![0u8; FRAGMENT_SIZE as usize];
    hasher.finalize_xof().fill(&mut bytes);
    bytes
}

struct Chain {
    replica: Replica,
    sequencer: Identity,
    provider: Identity,
    nonces: HashMap<AccountId, u64>,
    time_ms: u64,
}

impl Chain {
    fn transaction(&mut self, sender: &Identity, body: Body) -> Vec<u8> {
        let nonce = self.nonces.entry(AccountId::of(&sender.public_key())).or_insert(0);
        *nonce += 1;
        Transaction::sign(self.replica.state().params.chain, sender, *nonce, body).to_bytes()
    }

    fn block(&mut self, transactions: Vec<Vec<u8>>) -> Vec<Outcome> {
        self.time_ms += 1000;
        let (_, receipts) = self.replica.propose(self.time_ms, transactions, &self.sequencer);
        receipts.into_iter().map(|receipt| receipt.outcome).collect()
    }
}

/// Per contract: its index (fragment seed) and the ids.
struct Opened {
    ids: HashMap<Digest, (u32, Vec<[u8; 32]>)>,
}

fn open(count: u32) -> (Chain, Opened) {
    let sequencer = Identity::from_secret_bytes(&[200; 32]);
    let (owner, provider) = (Identity::from_secret_bytes(&[1; 32]), Identity::from_secret_bytes(&[2; 32]));
    let genesis = Genesis {
        name: "proof-scale".into(),
        validators: ValidatorSet::sequencer(AccountId::of(&sequencer.public_key())),
        epoch_blocks: EPOCH_BLOCKS,
        timestamp_ms: 0,
    };
    let mut chain = Chain { replica: Replica::new(&genesis), sequencer, provider, nonces: HashMap::new(), time_ms: 0 };
    let registration = Body::RegisterProvider(ProviderRegistration {
        endpoints: vec!["iroh:127.0.0.1:1".into()],
        capacity_bytes: u64::MAX,
        domain: FailureDomain { organisation: "o".into(), site: "s".into(), jurisdiction: "j".into() },
    });
    let provider = Identity::from_secret_bytes(&chain.provider.secret_bytes());
    let registration = chain.transaction(&provider, registration);
    assert_eq!(chain.block(vec![registration]), vec![Outcome::Accepted]);
    let mut ids = HashMap::new();
    let mut transactions = Vec::new();
    for index in 0..count {
        let fragment_ids: Vec<[u8; 32]> =
            (0..FRAGMENTS_PER_CONTRACT).map(|f| *blake3::hash(&fragment(index, f)).as_bytes()).collect();
        let mut upload = [0u8; 16];
        upload[..4].copy_from_slice(&index.to_le_bytes());
        let terms = ContractTerms {
            upload,
            owner: AccountId::of(&owner.public_key()),
            provider: AccountId::of(&provider.public_key()),
            fragment_root: Digest(merkle::root(&fragment_ids)),
            fragment_count: FRAGMENTS_PER_CONTRACT,
            fragment_size: FRAGMENT_SIZE,
            data_shards: 4,
            parity_shards: 2,
            stripe_count: 4,
            stripes_root: Digest([0; 32]),
            term_epochs: 1_000_000,
            proof_policy: ProofPolicy { challenges_per_epoch: 20, strikes_max: 3 },
        };
        let signature = Signature(provider.sign(&terms.signing_message(&chain.replica.state().params.chain)));
        ids.insert(terms.id(), (index, fragment_ids));
        transactions.push(chain.transaction(&owner, Body::OpenContract { terms, provider_signature: signature }));
        if transactions.len() == 2_000 {
            assert!(chain.block(std::mem::take(&mut transactions)).iter().all(|o| *o == Outcome::Accepted));
        }
    }
    assert!(chain.block(transactions).iter().all(|o| *o == Outcome::Accepted));
    (chain, Opened { ids })
}

/// What a node reads for one challenge: the 16 KiB group, and 64 bytes per
/// outboard parent pair above it.
fn read_bytes(chunk_index: u64) -> u64 {
    let size = u64::from(FRAGMENT_SIZE);
    let (_, from, to) = chunk::group_of(size, chunk_index);
    let chunks = size.div_ceil(1024);
    let groups = chunks.div_ceil(GROUP_CHUNKS);
    let levels_above_group = u64::from(groups.next_power_of_two().trailing_zeros());
    (to - from) + 64 * levels_above_group
}

struct Measured {
    submission_bytes: Vec<usize>,
    read_bytes: Vec<u64>,
    verify: Vec<Duration>,
    prove: Vec<Duration>,
    state_start: usize,
    state_end: usize,
    tables_start: Vec<(&'static str, usize)>,
    tables_end: Vec<(&'static str, usize)>,
}

/// Encoded bytes of each table of the state that can grow.
fn tables(state: &strand_contracts::LedgerState) -> Vec<(&'static str, usize)> {
    use strand_contracts::encoding::encode;
    vec![
        ("accounts", encode(&state.accounts.to_entries()).len()),
        ("providers", encode(&state.providers.to_entries()).len()),
        ("contracts", encode(&state.contracts.to_entries()).len()),
        ("proofs", encode(&state.proofs.to_entries()).len()),
        ("proof_slots", encode(&state.proof_slots.to_entries()).len()),
        ("access", encode(&state.access.to_entries()).len()),
        ("beacons", encode(&state.beacons.to_entries()).len()),
        ("roster", encode(&state.roster.to_entries()).len()),
        ("suspects", encode(&state.suspects.to_entries()).len()),
        ("roster_changes", encode(&state.roster_changes.to_entries()).len()),
        ("expiries", encode(&state.expiries.to_entries()).len()),
    ]
}

fn run(count: u32, epochs: u64) -> Measured {
    let (mut chain, opened) = open(count);
    let state_start = chain.replica.state().to_snapshot().len();
    let tables_start = tables(chain.replica.state());
    let provider = Identity::from_secret_bytes(&chain.provider.secret_bytes());
    let account = AccountId::of(&provider.public_key());
    let mut measured = Measured {
        submission_bytes: Vec::new(),
        read_bytes: Vec::new(),
        verify: Vec::new(),
        prove: Vec::new(),
        state_start,
        state_end: 0,
        tables_start,
        tables_end: Vec::new(),
    };
    let first = chain.replica.state().epoch() + 1;
    for epoch in first..first + epochs {
        while chain.replica.state().epoch() < epoch {
            chain.block(Vec::new());
        }
        let proving = Instant::now();
        let state = chain.replica.state();
        let (_, scheduled) = strand_contracts::proofs::schedule(state, &account, epoch).expect("beacon");
        let mut read = 0u64;
        let proofs: Vec<ContractProof> = strand_contracts::proofs::by_contract(&scheduled)
            .into_iter()
            .map(|(id, challenges)| {
                let (index, ids) = &opened.ids[&id];
                let chunks = challenges
                    .iter()
                    .map(|c| {
                        read += read_bytes(u64::from(c.chunk));
                        chunk::prove_from_fragment(&fragment(*index, c.fragment), u64::from(c.chunk)).expect("prove")
                    })
                    .collect();
                ContractProof { contract: id, answers: answers::build(ids, &challenges, chunks).to_bytes() }
            })
            .collect();
        measured.prove.push(proving.elapsed());
        let transaction = chain.transaction(&provider, Body::SubmitProofs { epoch, proofs });
        measured.submission_bytes.push(transaction.len());
        measured.read_bytes.push(read);
        let verifying = Instant::now();
        let outcome = chain.block(vec![transaction]);
        measured.verify.push(verifying.elapsed());
        assert_eq!(outcome, vec![Outcome::Accepted]);
    }
    let state = chain.replica.state();
    let failed = state.contracts.iter().filter(|(_, c)| c.proofs.failed + c.proofs.missed > 0).count();
    assert_eq!(failed, 0, "every check passes");
    measured.state_end = state.to_snapshot().len();
    measured.tables_end = tables(state);
    measured
}

fn median<T: Copy + Ord>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn main() {
    let epochs: Option<u64> = std::env::args().nth(1).map(|text| text.parse().expect("EPOCHS is a number"));
    println!(
        "| contracts | epochs | submission bytes per epoch (median / max) | node read bytes per epoch (median / max) \
         | verify one provider's epoch (median) | build answers (median) | state bytes per contract (start → end) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for count in [10u32, 1_000, 10_000] {
        let epochs = epochs.unwrap_or(if count >= 10_000 { 100 } else { 1_000 });
        let started = Instant::now();
        let measured = run(count, epochs);
        let max_bytes = measured.submission_bytes.iter().max().copied().unwrap_or(0);
        let max_read = measured.read_bytes.iter().max().copied().unwrap_or(0);
        println!(
            "| {count} | {epochs} | {} / {max_bytes} | {} / {max_read} | {:.2} ms | {:.2} ms | {:.0} → {:.0} |",
            median(&measured.submission_bytes),
            median(&measured.read_bytes),
            median(&measured.verify).as_secs_f64() * 1e3,
            median(&measured.prove).as_secs_f64() * 1e3,
            measured.state_start as f64 / f64::from(count),
            measured.state_end as f64 / f64::from(count),
        );
        let growth: Vec<String> = measured
            .tables_start
            .iter()
            .zip(&measured.tables_end)
            .filter(|(start, end)| start.1 != end.1)
            .map(|(start, end)| format!("{} {:+}", start.0, end.1 as i64 - start.1 as i64))
            .collect();
        eprintln!(
            "({count} contracts: {:.1} s; state growth in bytes by table: {})",
            started.elapsed().as_secs_f64(),
            growth.join(", ")
        );
    }
}
