//! A small chain to drive in tests: a sequencer replica, a follower, and
//! accounts that keep their own nonces.

#![allow(dead_code)]

use std::collections::HashMap;

use strand_contracts::block::{Genesis, ValidatorSet};
use strand_contracts::transaction::{
    Body, ContractProof, ContractTerms, CredentialGrant, FailureDomain, ProofPolicy, ProviderRegistration, Scope,
};
use strand_contracts::{AccountId, Block, Digest, Outcome, Receipt, Rejection, Replica, Signature, Transaction};
use strand_core::Identity;

pub const EPOCH_BLOCKS: u64 = 4;

pub fn identity(seed: u8) -> Identity {
    Identity::from_secret_bytes(&[seed; 32])
}

pub fn account(identity: &Identity) -> AccountId {
    AccountId::of(&identity.public_key())
}

/// A consortium set of `validators` (organisation `org-<n>`, loopback
/// addresses) with `beacon_key`.
pub fn consortium_set<'a>(validators: impl IntoIterator<Item = &'a Identity>, beacon_key: Vec<u8>) -> ValidatorSet {
    ValidatorSet::consortium(
        validators
            .into_iter()
            .enumerate()
            .map(|(index, validator)| strand_contracts::block::Validator {
                account: account(validator),
                organisation: format!("org-{index}"),
                p2p: format!("127.0.0.1:{}", 9000 + index),
                ledger: format!("127.0.0.1:{}", 9100 + index),
            })
            .collect(),
        beacon_key,
    )
}

pub fn genesis(sequencer: &Identity) -> Genesis {
    Genesis {
        name: "strand-test".into(),
        validators: ValidatorSet::sequencer(account(sequencer)),
        epoch_blocks: EPOCH_BLOCKS,
        timestamp_ms: 1_700_000_000_000,
    }
}

pub struct Chain {
    pub genesis: Genesis,
    pub sequencer: Identity,
    pub replica: Replica,
    pub blocks: Vec<Block>,
    nonces: HashMap<AccountId, u64>,
    time_ms: u64,
}

impl Chain {
    pub fn new() -> Self {
        let sequencer = identity(200);
        let genesis = genesis(&sequencer);
        let replica = Replica::new(&genesis);
        Self { genesis, sequencer, replica, blocks: Vec::new(), nonces: HashMap::new(), time_ms: 1_700_000_000_000 }
    }

    pub fn chain_id(&self) -> Digest {
        self.genesis.chain()
    }

    /// A signed transaction with the sender's next nonce.
    pub fn transaction(&mut self, sender: &Identity, body: Body) -> Vec<u8> {
        let chain = self.chain_id();
        let nonce = self.nonces.entry(account(sender)).or_insert(0);
        *nonce += 1;
        Transaction::sign(chain, sender, *nonce, body).to_bytes()
    }

    /// A signed transaction with an explicit nonce (does not advance ours).
    pub fn transaction_with_nonce(&self, sender: &Identity, nonce: u64, body: Body) -> Vec<u8> {
        Transaction::sign(self.chain_id(), sender, nonce, body).to_bytes()
    }

    /// Forgets that a nonce was used (after a rejection that did not use it).
    pub fn rewind_nonce(&mut self, sender: &Identity) {
        if let Some(nonce) = self.nonces.get_mut(&account(sender)) {
            *nonce -= 1;
        }
    }

    pub fn block(&mut self, transactions: Vec<Vec<u8>>) -> Vec<Receipt> {
        self.time_ms += 1000;
        let (block, receipts) = self.replica.propose(self.time_ms, transactions, &self.sequencer);
        self.blocks.push(block);
        receipts
    }

    /// One transaction in its own block; its outcome.
    pub fn submit(&mut self, sender: &Identity, body: Body) -> Outcome {
        let transaction = self.transaction(sender, body);
        self.block(vec![transaction]).remove(0).outcome
    }

    /// Empty blocks until the next block is the first of `epoch`.
    pub fn advance_to_epoch(&mut self, epoch: u64) {
        while self.replica.height() + 1 < epoch * EPOCH_BLOCKS {
            self.block(Vec::new());
        }
    }
}

pub fn rejected(outcome: Outcome) -> Rejection {
    match outcome {
        Outcome::Rejected(rejection) => rejection,
        Outcome::Accepted => panic!("expected a rejection, the transaction was accepted"),
    }
}

pub fn registration(organisation: &str) -> Body {
    Body::RegisterProvider(ProviderRegistration {
        endpoints: vec!["127.0.0.1:7000".into()],
        capacity_bytes: 1 << 40,
        domain: FailureDomain { organisation: organisation.into(), site: "site-1".into(), jurisdiction: "EU".into() },
    })
}

/// Fragments a test provider stores for `upload`: ten of 4 KiB.
pub fn fragments(upload: u8) -> Vec<Vec<u8>> {
    (0..10u8).map(|f| (0..4096u32).map(|i| (i as u8).wrapping_mul(31) ^ f ^ upload).collect()).collect()
}

/// Terms for `upload`, committing to [`fragments`]`(upload)`.
pub fn terms(owner: &Identity, provider: &Identity, upload: u8) -> ContractTerms {
    let ids: Vec<[u8; 32]> = fragments(upload).iter().map(|f| *blake3::hash(f).as_bytes()).collect();
    ContractTerms {
        upload: [upload; 16],
        owner: account(owner),
        provider: account(provider),
        fragment_root: Digest(strand_proof_of_storage::merkle::root(&ids)),
        fragment_count: 10,
        fragment_size: 4096,
        data_shards: 4,
        parity_shards: 2,
        stripe_count: 10,
        stripes_root: Digest([8; 32]),
        term_epochs: 3,
        proof_policy: ProofPolicy { challenges_per_epoch: 4, strikes_max: 3 },
    }
}

/// The fragments a contract committed to, by its upload byte (see
/// [`terms`]).
pub fn fragments_of(chain: &Chain, id: &Digest) -> Vec<Vec<u8>> {
    let contract = chain.replica.state().contracts.get(id).expect("contract");
    fragments(contract.terms.upload[0])
}

/// Honest answers to `provider`'s schedule for the current epoch, one entry
/// per challenged contract (each opened with [`terms`]), from `stored`.
pub fn honest_submission_from(
    chain: &Chain,
    provider: &Identity,
    stored: impl Fn(&Digest) -> Vec<Vec<u8>>,
) -> (u64, Vec<ContractProof>) {
    let state = chain.replica.state();
    let epoch = state.epoch();
    // No beacon (epoch 0): nothing is owed.
    let scheduled = strand_contracts::proofs::schedule(state, &account(provider), epoch)
        .map(|(_, scheduled)| scheduled)
        .unwrap_or_default();
    let proofs = strand_contracts::proofs::by_contract(&scheduled)
        .into_iter()
        .map(|(id, challenges)| {
            let fragments = stored(&id);
            let ids: Vec<[u8; 32]> = fragments.iter().map(|f| *blake3::hash(f).as_bytes()).collect();
            let chunks = challenges
                .iter()
                .map(|c| {
                    strand_proof_of_storage::chunk::prove_from_fragment(
                        &fragments[c.fragment as usize],
                        u64::from(c.chunk),
                    )
                    .expect("prove")
                })
                .collect();
            let answers = strand_proof_of_storage::answers::build(&ids, &challenges, chunks).to_bytes();
            ContractProof { contract: id, answers }
        })
        .collect();
    (epoch, proofs)
}

/// Honest answers to `provider`'s schedule for the current epoch.
pub fn honest_submission(chain: &Chain, provider: &Identity) -> Body {
    let (epoch, proofs) = honest_submission_from(chain, provider, |id| fragments_of(chain, id));
    Body::SubmitProofs { epoch, proofs }
}

/// An open-contract body countersigned by the provider.
pub fn open_contract(chain: &Chain, terms: ContractTerms, provider: &Identity) -> Body {
    let signature = Signature(provider.sign(&terms.signing_message(&chain.chain_id())));
    Body::OpenContract { terms, provider_signature: signature }
}

pub fn grant(upload: u8, grantee: &Identity, expires_at_height: u64) -> Body {
    Body::GrantCredential(CredentialGrant {
        upload: [upload; 16],
        grantee: account(grantee),
        scope: Scope::Upload,
        expires_at_height,
        purpose: "cohort study".into(),
        sealed_key_material: vec![1, 2, 3],
    })
}
