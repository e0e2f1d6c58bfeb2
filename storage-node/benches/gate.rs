//! Authorisation decisions per second: the gate deciding gets for a node
//! holding 1,000 contracts (two fragments each) with 10,000 credentials on
//! the ledger and 1,000 presentations, as in the daemon (a clone of the
//! replica's state per decision included: it is O(1)).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strand_contracts::block::{Genesis, ValidatorSet};
use strand_contracts::state::{Contract, Credential, LedgerState};
use strand_contracts::transaction::{ContractTerms, CredentialGrant, ProofPolicy, Scope};
use strand_contracts::{AccountId, Digest};
use strand_node::core::gate::{self, Freshness, Presentations};
use strand_node::core::holdings::{Agreement, AgreementState, Holdings};

const OWNER: AccountId = AccountId([9; 32]);

fn terms(upload: u32) -> ContractTerms {
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&upload.to_le_bytes());
    ContractTerms {
        upload: key,
        owner: OWNER,
        provider: AccountId([2; 32]),
        fragment_root: Digest([3; 32]),
        fragment_count: 2,
        fragment_size: 1 << 20,
        data_shards: 4,
        parity_shards: 2,
        stripe_count: 1,
        stripes_root: Digest([4; 32]),
        term_epochs: 1000,
        proof_policy: ProofPolicy { challenges_per_epoch: 20, strikes_max: 3 },
    }
}

fn fragment(upload: u32, index: u8) -> [u8; 32] {
    let mut id = [index; 32];
    id[..4].copy_from_slice(&upload.to_le_bytes());
    id
}

fn grantee(upload: u32) -> AccountId {
    let mut id = [7u8; 32];
    id[..4].copy_from_slice(&upload.to_le_bytes());
    AccountId(id)
}

fn benches(c: &mut Criterion) {
    let validators = ValidatorSet {
        ordering: strand_contracts::block::Ordering::Sequencer,
        validators: vec![],
        quorum: 0,
        beacon_key: None,
    };
    let mut state: LedgerState =
        Genesis { name: "bench".into(), validators, epoch_blocks: 60, timestamp_ms: 0 }.block().1;
    state.height = 500;
    let mut holdings = Holdings::default();
    let mut presentations = Presentations::default();
    for upload in 0..1000u32 {
        let terms = terms(upload);
        let id = terms.id();
        state.contracts.insert(id, Contract::opened(terms.clone(), 1, 0));
        holdings.insert(Agreement {
            terms: terms.clone(),
            fragment_ids: vec![fragment(upload, 1), fragment(upload, 2)],
            state: AgreementState::Signed { at_height: 1 },
        });
        for extra in 0..10u8 {
            let mut credential = [extra; 32];
            credential[..4].copy_from_slice(&upload.to_le_bytes());
            let grant = CredentialGrant {
                upload: terms.upload,
                grantee: grantee(upload),
                scope: Scope::Upload,
                expires_at_height: 10_000,
                purpose: String::new(),
                sealed_key_material: vec![0; 200],
            };
            state
                .credentials
                .insert(Digest(credential), Credential { grant, granted_at_height: 1, revoked_at_height: None });
        }
        let mut credential = [0u8; 32];
        credential[..4].copy_from_slice(&upload.to_le_bytes());
        gate::present(
            &grantee(upload),
            &Digest(credential),
            &[],
            &holdings,
            &state,
            Freshness::CURRENT,
            &mut presentations,
        )
        .expect("present");
    }
    let shared = std::sync::RwLock::new(state);
    let mut group = c.benchmark_group("gate");
    group.throughput(Throughput::Elements(1));
    let mut upload = 0u32;
    group.bench_function("decide_get grantee (credential checked on the ledger)", |b| {
        b.iter(|| {
            upload = (upload + 7) % 1000;
            let state = shared.read().expect("lock").clone();
            gate::decide_get(
                &grantee(upload),
                &fragment(upload, 1),
                &holdings,
                &state,
                Freshness::CURRENT,
                &presentations,
            )
            .expect("allowed")
        })
    });
    group.bench_function("decide_get stranger (refused)", |b| {
        b.iter(|| {
            upload = (upload + 7) % 1000;
            let state = shared.read().expect("lock").clone();
            gate::decide_get(
                &AccountId([1; 32]),
                &fragment(upload, 1),
                &holdings,
                &state,
                Freshness::CURRENT,
                &presentations,
            )
            .expect_err("refused")
        })
    });
    group.finish();
}

criterion_group!(gate_benches, benches);
criterion_main!(gate_benches);
