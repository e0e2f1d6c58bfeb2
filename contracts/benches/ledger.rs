//! Ledger throughput: transactions applied per second on one core for a
//! realistic mix, blocks verified per second by a follower, and (printed
//! once) bytes of state per contract and per credential.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strand_contracts::apply::credential_id;
use strand_contracts::block::{Genesis, ValidatorSet};
use strand_contracts::transaction::{
    AccessReceipt, Body, ContractTerms, CredentialGrant, FailureDomain, ProofPolicy, ProviderRegistration, Scope,
    transaction_hash,
};
use strand_contracts::{AccountId, Block, Digest, Replica, Signature, Transaction};
use strand_core::Identity;

const PROVIDERS: usize = 250;
const OWNERS: usize = 200;
const MIX_TRANSACTIONS: usize = 1000;

fn identity(kind: u8, index: usize) -> Identity {
    let mut secret = [kind; 32];
    secret[..8].copy_from_slice(&(index as u64).to_le_bytes());
    Identity::from_secret_bytes(&secret)
}

fn account(identity: &Identity) -> AccountId {
    AccountId::of(&identity.public_key())
}

struct Setup {
    genesis: Genesis,
    sequencer: Identity,
    providers: Vec<Identity>,
    owners: Vec<Identity>,
    nonces: Vec<u64>,
    provider_nonces: Vec<u64>,
    credentials: Vec<(usize, Digest)>,
    uploads: usize,
}

fn registration(index: usize) -> Body {
    Body::RegisterProvider(ProviderRegistration {
        endpoints: vec![format!("10.0.{}.{}:7000", index / 250, index % 250)],
        capacity_bytes: 1 << 50,
        domain: FailureDomain {
            organisation: format!("organisation-{}", index % 7),
            site: format!("site-{}", index % 13),
            jurisdiction: "EU".into(),
        },
    })
}

impl Setup {
    fn new() -> (Self, Replica) {
        let sequencer = identity(250, 0);
        let genesis = Genesis {
            name: "strand-bench".into(),
            validators: ValidatorSet::sequencer(account(&sequencer)),
            epoch_blocks: 1_000_000,
            timestamp_ms: 0,
        };
        let providers: Vec<Identity> = (0..PROVIDERS).map(|index| identity(1, index)).collect();
        let owners: Vec<Identity> = (0..OWNERS).map(|index| identity(2, index)).collect();
        let mut setup = Self {
            genesis,
            sequencer,
            providers,
            owners,
            nonces: vec![0; OWNERS],
            provider_nonces: vec![0; PROVIDERS],
            credentials: Vec::new(),
            uploads: 0,
        };
        let mut replica = Replica::new(&setup.genesis);
        let registrations =
            (0..PROVIDERS).map(|index| setup.provider_transaction(index, registration(index))).collect();
        replica.propose(1, registrations, &setup.sequencer);
        // Every owner opens one contract and grants one credential.
        let opens = (0..OWNERS).map(|owner| setup.open_contract(owner)).collect();
        replica.propose(2, opens, &setup.sequencer);
        let grants: Vec<Vec<u8>> =
            (0..OWNERS).map(|owner| setup.grant(owner, (setup.uploads - OWNERS + owner) as u32)).collect();
        replica.propose(3, grants, &setup.sequencer);
        (setup, replica)
    }

    fn chain(&self) -> Digest {
        self.genesis.chain()
    }

    fn owner_transaction(&mut self, owner: usize, body: Body) -> Vec<u8> {
        self.nonces[owner] += 1;
        Transaction::sign(self.chain(), &self.owners[owner], self.nonces[owner], body).to_bytes()
    }

    fn provider_transaction(&mut self, provider: usize, body: Body) -> Vec<u8> {
        self.provider_nonces[provider] += 1;
        Transaction::sign(self.chain(), &self.providers[provider], self.provider_nonces[provider], body).to_bytes()
    }

    fn open_contract(&mut self, owner: usize) -> Vec<u8> {
        let upload = self.uploads as u32;
        self.uploads += 1;
        let provider = upload as usize % PROVIDERS;
        let mut upload_key = [0u8; 16];
        upload_key[..4].copy_from_slice(&upload.to_le_bytes());
        let terms = ContractTerms {
            upload: upload_key,
            owner: account(&self.owners[owner]),
            provider: account(&self.providers[provider]),
            fragment_root: Digest(*blake3::hash(&upload.to_le_bytes()).as_bytes()),
            fragment_count: 400,
            fragment_size: (1 << 20) + 16,
            data_shards: 4,
            parity_shards: 2,
            stripe_count: 400,
            stripes_root: Digest([3; 32]),
            term_epochs: 365,
            proof_policy: ProofPolicy { challenges_per_epoch: 8, strikes_max: 3 },
        };
        let signature = Signature(self.providers[provider].sign(&terms.signing_message(&self.chain())));
        self.owner_transaction(owner, Body::OpenContract { terms, provider_signature: signature })
    }

    fn grant(&mut self, owner: usize, upload: u32) -> Vec<u8> {
        let mut upload_key = [0u8; 16];
        upload_key[..4].copy_from_slice(&upload.to_le_bytes());
        let body = Body::GrantCredential(CredentialGrant {
            upload: upload_key,
            grantee: account(&self.owners[(owner + 1) % OWNERS]),
            scope: Scope::Upload,
            expires_at_height: 1_000_000,
            purpose: "genome-wide association study, cohort 7".into(),
            sealed_key_material: vec![7; 120],
        });
        let bytes = self.owner_transaction(owner, body);
        self.credentials.push((owner, credential_id(&transaction_hash(&bytes))));
        bytes
    }

    /// A block's worth of the mix: 25 % open contract, 25 % grant, 15 %
    /// revoke, 15 % provider update, 20 % access receipts.
    fn mix(&mut self) -> Vec<Vec<u8>> {
        let mut transactions = Vec::with_capacity(MIX_TRANSACTIONS);
        let mut revocable = self.credentials.clone().into_iter();
        // One access-receipt slot per provider and epoch: each batch from
        // another provider.
        let mut reporters = 0..PROVIDERS;
        for index in 0..MIX_TRANSACTIONS {
            let owner = index % OWNERS;
            let provider = index % PROVIDERS;
            let transaction = match index % 20 {
                0..=4 => self.open_contract(owner),
                5..=9 => self.grant(owner, owner as u32),
                10..=12 => match revocable.next() {
                    Some((owner, credential)) => self.owner_transaction(owner, Body::RevokeCredential { credential }),
                    None => self.grant(owner, owner as u32),
                },
                13..=15 => self.provider_transaction(provider, registration(provider + 1)),
                _ => {
                    let provider = reporters.next().expect("more providers than receipt batches");
                    let receipts = (0..4)
                        .map(|reader| AccessReceipt {
                            upload: [reader as u8; 16],
                            authority: strand_contracts::transaction::ReadAuthority::Owner,
                            requester: account(&self.owners[reader]),
                            fragments: 6,
                            bytes: 6 << 20,
                        })
                        .collect();
                    self.provider_transaction(provider, Body::AccessReceipts { epoch: 0, receipts })
                }
            };
            transactions.push(transaction);
        }
        transactions
    }
}

fn ledger(c: &mut Criterion) {
    let (mut setup, base) = Setup::new();
    let mix = setup.mix();
    let mut proposer = base.clone();
    let (block, receipts) = proposer.propose(10, mix.clone(), &setup.sequencer);
    let rejected = receipts.iter().filter(|receipt| receipt.outcome != strand_contracts::Outcome::Accepted).count();
    let reasons: Vec<String> = receipts
        .iter()
        .filter_map(|receipt| match &receipt.outcome {
            strand_contracts::Outcome::Rejected(reason) => Some(reason.to_string()),
            _ => None,
        })
        .take(3)
        .collect();
    assert_eq!(rejected, 0, "the benchmark mix must be all valid transactions: {reasons:?}");

    let mut group = c.benchmark_group("ledger");
    group.sample_size(20);
    group.throughput(Throughput::Elements(MIX_TRANSACTIONS as u64));
    group.bench_function("ledger::propose/transactions=1000,mix=realistic,threads=1", |b| {
        b.iter(|| {
            let mut replica = base.clone();
            black_box(replica.propose(10, mix.clone(), &setup.sequencer))
        })
    });
    group.bench_function("ledger::follower_apply/transactions=1000,mix=realistic,threads=1", |b| {
        b.iter(|| {
            let mut replica = base.clone();
            black_box(replica.apply(&block).expect("valid"))
        })
    });
    group.throughput(Throughput::Elements(1));
    let empty = empty_block(&proposer, &setup.sequencer);
    group.bench_function("ledger::follower_apply/transactions=0,contracts=400", |b| {
        b.iter(|| {
            let mut replica = proposer.clone();
            black_box(replica.apply(&empty).expect("valid"))
        })
    });
    let (large, large_empty) = large_state(&mut setup, &proposer);
    group.bench_function("ledger::follower_apply/transactions=0,contracts=10400", |b| {
        b.iter(|| {
            let mut replica = large.clone();
            black_box(replica.apply(&large_empty).expect("valid"))
        })
    });
    group.finish();
    print_state_sizes(&mut setup, &large);
}

fn empty_block(replica: &Replica, sequencer: &Identity) -> Block {
    let mut proposer = replica.clone();
    proposer.propose(replica.head().timestamp_ms + 1, Vec::new(), sequencer).0
}

/// The state after 10,000 more contracts, and an empty block on top of it.
fn large_state(setup: &mut Setup, replica: &Replica) -> (Replica, Block) {
    let mut replica = replica.clone();
    for round in 0..50 {
        let opens = (0..OWNERS).map(|owner| setup.open_contract(owner)).collect();
        replica.propose(100 + round, opens, &setup.sequencer);
    }
    let empty = empty_block(&replica, &setup.sequencer);
    (replica, empty)
}

fn print_state_sizes(setup: &mut Setup, replica: &Replica) {
    let before = replica.state().to_snapshot().len();
    let mut grown = replica.clone();
    let accepted = |receipts: &[strand_contracts::Receipt]| {
        receipts.iter().all(|receipt| receipt.outcome == strand_contracts::Outcome::Accepted)
    };
    let opens = (0..OWNERS).map(|owner| setup.open_contract(owner)).collect();
    assert!(accepted(&grown.propose(u64::MAX - 1, opens, &setup.sequencer).1));
    let with_contracts = grown.state().to_snapshot().len();
    let grants = (0..OWNERS).map(|owner| setup.grant(owner, owner as u32)).collect();
    assert!(accepted(&grown.propose(u64::MAX, grants, &setup.sequencer).1));
    let with_credentials = grown.state().to_snapshot().len();
    // Each opening also bumps a nonce and a provider's committed bytes, and
    // adds to its upload's contract list: that is all part of what a
    // contract costs.
    println!("state bytes per contract (snapshot, incl. upload entry): {}", (with_contracts - before) / OWNERS);
    println!(
        "state bytes per credential (snapshot, 120 B sealed key material, 40 B purpose): {}",
        (with_credentials - with_contracts) / OWNERS
    );
}

criterion_group!(benches, ledger);
criterion_main!(benches);
