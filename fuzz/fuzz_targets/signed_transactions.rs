//! Fuzzed transaction bodies, signed by known accounts with their correct
//! next nonces, so that they pass the envelope checks (encoding, chain,
//! signature, nonce) and reach the body decoders and the state machine's
//! rules on a chain that already holds providers, contracts, rosters and
//! credentials. Checks that no rule panics, that every transaction gets
//! exactly one receipt and consumes its nonce, that a follower applying the
//! same blocks (decoded from their bytes) accepts them with the same
//! receipts and state root, and that the final state survives a snapshot.
//!
//! # Input
//! A sequence of items, each a control byte and a borsh-encoded
//! [`Body`]; reading stops at the first body that does not decode. The
//! control byte's low six bits pick the sender (modulo the number of
//! participants, see [`Setup::participants`]); bit `0x80` closes the block
//! being built before the item, and bit `0x40` closes it and adds an empty
//! block (epochs are [`EPOCH_BLOCKS`] blocks, so a few of those cross epoch
//! boundaries). A block also closes after [`TRANSACTIONS_PER_BLOCK_MAX`]
//! transactions, and the input ends with the rest of the epoch and one more
//! boundary.
//!
//! Set `STRAND_FUZZ_TRACE` to have every block's transactions and outcomes
//! printed (to see what an input or a corpus reaches).
//!
//! # Seeds
//! Run the target with `STRAND_FUZZ_SEEDS=<directory>` set (for example
//! `STRAND_FUZZ_SEEDS=fuzz/corpus/signed_transactions cargo fuzz run
//! --fuzz-dir fuzz signed_transactions -- -runs=0`) to write inputs with a
//! valid body of every kind into the directory, among them a contract
//! countersigned by its provider and honest proofs for an epoch, and
//! sequences that reach the rules only a repeat or an expiry reaches; each
//! seed is checked to do what it is named for. The fuzzer starts deep in
//! the rules from them.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use borsh::BorshDeserialize;
use libfuzzer_sys::fuzz_target;
use strand_contracts::block::{Genesis, ValidatorSet};
use strand_contracts::encoding::{self, TRANSACTION_BYTES_MAX};
use strand_contracts::query::{self, FragmentMembership};
use strand_contracts::state::ProofStatus;
use strand_contracts::transaction::{
    AccessReceipt, Body, ReadAuthority, ContractProof, ContractTerms, CredentialGrant, FailureDomain, ProofPolicy,
    ProviderRegistration, Scope, transaction_hash,
};
use strand_contracts::{
    AccountId, Block, Digest, LedgerState, Outcome, Receipt, Rejection, Replica, Signature, Transaction,
};
use strand_core::Identity;
use strand_proof_of_storage::merkle::InclusionProof;

/// Blocks per epoch: small, so that inputs cross epoch boundaries.
const EPOCH_BLOCKS: u64 = 2;
/// The genesis timestamp; block `h` is stamped a second per height later.
const GENESIS_TIMESTAMP_MS: u64 = 1_700_000_000_000;
/// Transactions in a block before it closes on its own.
const TRANSACTIONS_PER_BLOCK_MAX: usize = 4;
/// Items read from one input.
const ITEMS_MAX: usize = 64;
/// Control bit: close the block being built before this item.
const NEW_BLOCK: u8 = 0x80;
/// Control bit: close the block being built and add an empty block.
const EMPTY_BLOCK: u8 = 0x40;
/// Control bits that pick the sender.
const SENDER_BITS: u8 = 0x3f;
/// Bytes of each fragment a test contract commits to.
const FRAGMENT_SIZE: u32 = 4096;
/// Fragments a test contract commits to.
const FRAGMENT_COUNT: u32 = 10;

/// Who sends transactions, by index (the control byte's sender bits).
const OWNER_A: usize = 0;
const OWNER_B: usize = 1;
const PROVIDER_P: usize = 2;
const PROVIDER_Q: usize = 3;
const GRANTEE: usize = 4;
const STRANGER: usize = 5;
/// Secret key seeds of the participants, in index order.
const PARTICIPANT_SEEDS: [u8; 6] = [1, 2, 3, 4, 5, 6];
/// The sequencer's secret key seed.
const SEQUENCER_SEED: u8 = 200;

/// The chain every input starts from, built once.
struct Setup {
    sequencer: Identity,
    participants: Vec<Identity>,
    accounts: Vec<AccountId>,
    chain: Digest,
    /// The replica after the setup block.
    replica: Replica,
    /// The contracts opened at setup, in order.
    contracts: Vec<Digest>,
    /// The credentials granted at setup, in order.
    credentials: Vec<Digest>,
}

fn identity(seed: u8) -> Identity {
    Identity::from_secret_bytes(&[seed; 32])
}

fn account(identity: &Identity) -> AccountId {
    AccountId::of(&identity.public_key())
}

fn timestamp_of(height: u64) -> u64 {
    GENESIS_TIMESTAMP_MS + 1000 * height
}

/// The fragments a test provider stores for `upload`.
fn fragments(upload: u8) -> Vec<Vec<u8>> {
    (0..FRAGMENT_COUNT as u8)
        .map(|fragment| (0..FRAGMENT_SIZE).map(|index| (index as u8).wrapping_mul(31) ^ fragment ^ upload).collect())
        .collect()
}

fn fragment_ids(upload: u8) -> Vec<[u8; 32]> {
    fragments(upload).iter().map(|fragment| *blake3::hash(fragment).as_bytes()).collect()
}

/// Terms for `upload`, committing to [`fragments`]`(upload)`.
fn terms(owner: &AccountId, provider: &AccountId, upload: u8, term_epochs: u32) -> ContractTerms {
    ContractTerms {
        upload: [upload; 16],
        owner: *owner,
        provider: *provider,
        fragment_root: Digest(strand_proof_of_storage::merkle::root(&fragment_ids(upload))),
        fragment_count: FRAGMENT_COUNT,
        fragment_size: FRAGMENT_SIZE,
        data_shards: 4,
        parity_shards: 2,
        stripe_count: 10,
        stripes_root: Digest([8; 32]),
        term_epochs,
        proof_policy: ProofPolicy { challenges_per_epoch: 4, strikes_max: 3 },
    }
}

/// An open-contract body countersigned by the provider.
fn open_contract(chain: &Digest, terms: ContractTerms, provider: &Identity) -> Body {
    let provider_signature = Signature(provider.sign(&terms.signing_message(chain)));
    Body::OpenContract { terms, provider_signature }
}

fn registration(organisation: &str, capacity_bytes: u64) -> Body {
    Body::RegisterProvider(ProviderRegistration {
        endpoints: vec!["127.0.0.1:7000".into(), "/ip4/127.0.0.1/udp/7001/quic-v1".into()],
        capacity_bytes,
        domain: FailureDomain { organisation: organisation.into(), site: "site-1".into(), jurisdiction: "EU".into() },
    })
}

fn whole_grant(upload: u8, grantee: &AccountId, expires_at_height: u64) -> Body {
    Body::GrantCredential(CredentialGrant {
        upload: [upload; 16],
        grantee: *grantee,
        scope: Scope::Upload,
        expires_at_height,
        purpose: "cohort study".into(),
        sealed_key_material: vec![1, 2, 3],
    })
}

fn range_grant(upload: u8, grantee: &AccountId, expires_at_height: u64) -> Body {
    let ids = fragment_ids(upload);
    Body::GrantCredential(CredentialGrant {
        upload: [upload; 16],
        grantee: *grantee,
        scope: Scope::Ranges {
            ranges: vec![(0, 4096), (8192, 12288)],
            fragments_root: Digest(strand_proof_of_storage::merkle::root(&ids[..6])),
            fragment_count: 6,
        },
        expires_at_height,
        purpose: "a range".into(),
        sealed_key_material: vec![4; 48],
    })
}

impl Setup {
    /// Providers P and Q registered; contracts of owner A with P (a short
    /// term) and with Q, and of owner B with P; credentials of A's uploads
    /// for the grantee, one whole and one of ranges. All in block 1 (epoch
    /// 0): the contracts join their rosters at the next block, the first of
    /// epoch 1.
    fn new() -> Self {
        let sequencer = identity(SEQUENCER_SEED);
        let participants: Vec<Identity> = PARTICIPANT_SEEDS.iter().map(|seed| identity(*seed)).collect();
        let accounts: Vec<AccountId> = participants.iter().map(account).collect();
        let genesis = Genesis {
            name: "strand-fuzz".into(),
            validators: ValidatorSet { validators: vec![account(&sequencer)], quorum: 1 },
            epoch_blocks: EPOCH_BLOCKS,
            timestamp_ms: GENESIS_TIMESTAMP_MS,
        };
        let chain = genesis.chain();
        let contract_terms = [
            (OWNER_A, PROVIDER_P, terms(&accounts[OWNER_A], &accounts[PROVIDER_P], 1, 3)),
            (OWNER_A, PROVIDER_Q, terms(&accounts[OWNER_A], &accounts[PROVIDER_Q], 2, 40)),
            (OWNER_B, PROVIDER_P, terms(&accounts[OWNER_B], &accounts[PROVIDER_P], 3, 40)),
        ];
        let contracts: Vec<Digest> = contract_terms.iter().map(|(_, _, terms)| terms.id()).collect();
        let mut bodies =
            vec![(PROVIDER_P, registration("gene-bank-p", 1 << 40)), (PROVIDER_Q, registration("cloud-q", 1 << 30))];
        for (owner, provider, terms) in contract_terms {
            bodies.push((owner, open_contract(&chain, terms, &participants[provider])));
        }
        bodies.push((OWNER_A, whole_grant(1, &accounts[GRANTEE], 1_000)));
        bodies.push((OWNER_A, range_grant(2, &accounts[GRANTEE], 1_000)));
        let mut nonces: HashMap<usize, u64> = HashMap::new();
        let transactions: Vec<Vec<u8>> = bodies
            .into_iter()
            .map(|(sender, body)| {
                let nonce = nonces.entry(sender).or_insert(0);
                *nonce += 1;
                Transaction::sign(chain, &participants[sender], *nonce, body).to_bytes()
            })
            .collect();
        // Credential ids derive from the granting transactions' hashes.
        let credentials = transactions[transactions.len() - 2..]
            .iter()
            .map(|bytes| strand_contracts::apply::credential_id(&transaction_hash(bytes)))
            .collect();
        let mut replica = Replica::new(&genesis);
        let (block, receipts) = replica.propose(timestamp_of(1), transactions, &sequencer);
        for receipt in &receipts {
            assert_eq!(receipt.outcome, Outcome::Accepted, "the setup block is accepted whole");
        }
        let mut follower = Replica::new(&genesis);
        follower.apply(&block).expect("a follower accepts the setup block");
        assert_eq!(follower.state().root(), replica.state().root());
        Self { sequencer, participants, accounts, chain, replica, contracts, credentials }
    }

    fn get() -> &'static Self {
        static SETUP: OnceLock<Setup> = OnceLock::new();
        SETUP.get_or_init(Self::new)
    }
}

/// One input's run: a sequencer and a follower from the setup chain, and
/// the block being built.
struct Run<'a> {
    setup: &'a Setup,
    sequencer: Replica,
    follower: Replica,
    pending: Vec<Vec<u8>>,
    /// Nonces handed out to each sender in the block being built.
    pending_nonces: HashMap<AccountId, u64>,
    /// The outcomes of the input's transactions so far, in order.
    outcomes: Vec<Outcome>,
}

impl<'a> Run<'a> {
    fn new(setup: &'a Setup) -> Self {
        Self {
            setup,
            sequencer: setup.replica.clone(),
            follower: setup.replica.clone(),
            pending: Vec::new(),
            pending_nonces: HashMap::new(),
            outcomes: Vec::new(),
        }
    }

    /// Signs `body` as participant `sender` with its next nonce and adds it
    /// to the block being built (which closes when full).
    fn submit(&mut self, sender: usize, body: Body) {
        let identity = &self.setup.participants[sender];
        let account = self.setup.accounts[sender];
        let committed = self.sequencer.state().accounts.get(&account).map_or(0, |record| record.nonce);
        let nonce = self.pending_nonces.get(&account).copied().unwrap_or(committed) + 1;
        let bytes = Transaction::sign(self.setup.chain, identity, nonce, body).to_bytes();
        if bytes.len() > TRANSACTION_BYTES_MAX {
            // Refused before its nonce counts; fuzz inputs never get here.
            return;
        }
        self.pending_nonces.insert(account, nonce);
        self.pending.push(bytes);
        if self.pending.len() >= TRANSACTIONS_PER_BLOCK_MAX {
            self.close_block();
        }
    }

    /// Proposes the block being built (possibly empty) and has the follower
    /// check and apply it.
    fn close_block(&mut self) {
        let transactions = std::mem::take(&mut self.pending);
        self.pending_nonces.clear();
        let count = transactions.len();
        let hashes: Vec<Digest> = transactions.iter().map(|bytes| transaction_hash(bytes)).collect();
        let height = self.sequencer.height() + 1;
        let (block, receipts) = self.sequencer.propose(timestamp_of(height), transactions, &self.setup.sequencer);
        assert_eq!(receipts.len(), count, "one receipt per transaction");
        for (receipt, hash) in receipts.iter().zip(&hashes) {
            assert_eq!(receipt.transaction, *hash);
            assert_eq!(receipt.height, height);
            if let Outcome::Rejected(rejection) = &receipt.outcome {
                assert!(
                    rejection.consumes_nonce(),
                    "a signed transaction with the next nonce refused as {rejection:?}"
                );
            }
        }
        let received = Block::from_bytes(&block.to_bytes()).expect("a proposed block decodes");
        assert_eq!(received, block);
        let followed = self.follower.apply(&received).expect("a follower accepts the sequencer's block");
        assert_eq!(followed, receipts, "the follower's receipts differ");
        assert_eq!(self.follower.state().root(), self.sequencer.state().root(), "the follower's state differs");
        assert_eq!(self.follower.head(), self.sequencer.head());
        if tracing() {
            trace(self.setup, &block, &receipts, self.sequencer.state().epoch());
        }
        self.outcomes.extend(receipts.into_iter().map(|receipt| receipt.outcome));
    }

    /// Interprets `bytes` (see the module documentation).
    fn items(&mut self, mut bytes: &[u8]) {
        for _ in 0..ITEMS_MAX {
            let Some((&control, rest)) = bytes.split_first() else { break };
            let mut rest = rest;
            let Ok(body) = Body::deserialize(&mut rest) else { break };
            bytes = rest;
            if control & (NEW_BLOCK | EMPTY_BLOCK) != 0 && !self.pending.is_empty() {
                self.close_block();
            }
            if control & EMPTY_BLOCK != 0 {
                self.close_block();
            }
            let sender = usize::from(control & SENDER_BITS) % self.setup.participants.len();
            self.submit(sender, body);
        }
    }

    /// Closes the last block, runs to the end of the epoch and through one
    /// more boundary, and checks what nodes and clients read off the state.
    fn finish(mut self) {
        if !self.pending.is_empty() {
            self.close_block();
        }
        let epoch = self.sequencer.state().epoch();
        while self.sequencer.state().epoch() <= epoch {
            self.close_block();
        }
        let state = self.sequencer.state().clone();
        let restored = LedgerState::from_snapshot(&state.to_snapshot()).expect("a state's snapshot decodes");
        assert_eq!(restored.root(), state.root(), "a snapshot restores another state");
        queries(&state, self.setup);
    }
}

/// Whether to print what each block did (`STRAND_FUZZ_TRACE` set), to see
/// what an input reaches when triaging it or judging the corpus.
fn tracing() -> bool {
    static TRACING: OnceLock<bool> = OnceLock::new();
    *TRACING.get_or_init(|| std::env::var_os("STRAND_FUZZ_TRACE").is_some())
}

/// Prints a block's transactions (sender, nonce, kind of body) and outcomes.
fn trace(setup: &Setup, block: &Block, receipts: &[Receipt], epoch: u64) {
    let height = block.header.height;
    if block.transactions.is_empty() {
        eprintln!("height {height} epoch {epoch}: empty");
    }
    for (bytes, receipt) in block.transactions.iter().zip(receipts) {
        let transaction = Transaction::from_bytes(bytes).expect("a transaction the harness signed decodes");
        let sender = setup.accounts.iter().position(|account| *account == transaction.sender);
        let kind = match transaction.body {
            Body::RegisterProvider(_) => "RegisterProvider",
            Body::OpenContract { .. } => "OpenContract",
            Body::CloseContract { .. } => "CloseContract",
            Body::GrantCredential(_) => "GrantCredential",
            Body::RevokeCredential { .. } => "RevokeCredential",
            Body::SubmitProofs { .. } => "SubmitProofs",
            Body::RecordRepair { .. } => "RecordRepair",
            Body::ReportBadSibling { .. } => "ReportBadSibling",
            Body::AccessReceipts { .. } => "AccessReceipts",
            Body::Drain => "Drain",
        };
        eprintln!(
            "height {height} epoch {epoch}: sender {sender:?} nonce {} {kind}: {:?}",
            transaction.nonce, receipt.outcome
        );
    }
}

/// What nodes and clients ask their replica, over whatever the input left.
fn queries(state: &LedgerState, setup: &Setup) {
    let membership =
        FragmentMembership { index: 0, fragment: fragment_ids(1)[0], proof: InclusionProof { nodes: Vec::new() } };
    for account in &setup.accounts {
        let _ = query::contracts_of_account(state, account);
        let _ = query::credentials_of_account(state, account);
        let _ = query::contract_holding(state, account, &membership);
    }
    for (id, credential) in state.credentials.iter() {
        let grant = &credential.grant;
        let _ = query::credential_decision(state, id, &grant.grantee, &grant.upload, Some(&membership), state.height);
        let _ = query::contracts_of_upload(state, &grant.upload);
    }
    let _ = query::providers_by_domain(state, &query::DomainFilter::default(), 0);
    for provider in &setup.accounts {
        let _ = strand_contracts::proofs::schedule(state, provider, state.epoch());
    }
}

fuzz_target!(
    init: {
        if let Some(directory) = std::env::var_os("STRAND_FUZZ_SEEDS") {
            write_seeds(Path::new(&directory));
        }
    },
    |bytes: &[u8]| {
        let mut run = Run::new(Setup::get());
        run.items(bytes);
        run.finish();
    }
);

/// One item of an input.
fn item(control: u8, body: &Body) -> Vec<u8> {
    [vec![control], encoding::encode(body)].concat()
}

/// Honest answers to `provider`'s schedule in the state `run` has reached,
/// for the block after it (in the same epoch).
fn honest_proofs(run: &Run<'_>, provider: usize) -> Body {
    let state = run.sequencer.state();
    let epoch = state.epoch();
    let scheduled = strand_contracts::proofs::schedule(state, &run.setup.accounts[provider], epoch)
        .map(|(_, scheduled)| scheduled)
        .unwrap_or_default();
    let proofs = strand_contracts::proofs::by_contract(&scheduled)
        .into_iter()
        .map(|(id, challenges)| {
            let upload = state.contracts.get(&id).expect("a scheduled contract exists").terms.upload[0];
            let fragments = fragments(upload);
            let chunks = challenges
                .iter()
                .map(|challenge| {
                    strand_proof_of_storage::chunk::prove_from_fragment(
                        &fragments[challenge.fragment as usize],
                        u64::from(challenge.chunk),
                    )
                    .expect("a challenged chunk of a stored fragment proves")
                })
                .collect();
            let answers =
                strand_proof_of_storage::answers::build(&fragment_ids(upload), &challenges, chunks).to_bytes();
            ContractProof { contract: id, answers }
        })
        .collect();
    Body::SubmitProofs { epoch, proofs }
}

/// Writes seed inputs into `directory`: one per kind of body, and one with
/// all of them in a row.
fn write_seeds(directory: &Path) {
    let setup = Setup::get();
    let accounts = &setup.accounts;
    std::fs::create_dir_all(directory).expect("the seed directory can be created");
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    // Into the first block (height 2, the first of epoch 1).
    let new_contract = terms(&accounts[OWNER_B], &accounts[PROVIDER_Q], 4, 5);
    let new_contract_id = new_contract.id();
    // Each with whether it is accepted on its own.
    let bodies = [
        ("register_provider", STRANGER, true, registration("newcomer", 1 << 35)),
        ("update_provider", PROVIDER_P, true, registration("gene-bank-p2", 1 << 41)),
        ("open_contract", OWNER_B, true, open_contract(&setup.chain, new_contract, &setup.participants[PROVIDER_Q])),
        ("grant_credential", OWNER_A, true, range_grant(1, &accounts[STRANGER], 50)),
        ("grant_whole", OWNER_B, true, whole_grant(3, &accounts[GRANTEE], 9)),
        ("revoke_credential", OWNER_A, true, Body::RevokeCredential { credential: setup.credentials[0] }),
        ("close_contract", OWNER_A, true, Body::CloseContract { contract: setup.contracts[1] }),
        // Accepted after the open-contract seed's body (in `everything`).
        ("close_new_contract", OWNER_B, false, Body::CloseContract { contract: new_contract_id }),
        (
            "record_repair",
            PROVIDER_Q,
            false,
            Body::RecordRepair { order: Digest([5; 32]), contract: setup.contracts[0] },
        ),
        (
            "report_bad_sibling",
            PROVIDER_Q,
            false,
            Body::ReportBadSibling { order: Digest([5; 32]), contract: setup.contracts[0], fragment: 0, chunk: 0 },
        ),
        (
            "access_receipts_epoch_max",
            PROVIDER_P,
            false,
            Body::AccessReceipts { epoch: u64::MAX, receipts: Vec::new() },
        ),
        (
            "access_receipts",
            PROVIDER_P,
            true,
            Body::AccessReceipts {
                epoch: 1,
                receipts: vec![AccessReceipt {
                    upload: [1; 16],
                    authority: ReadAuthority::Credential(setup.credentials[0]),
                    requester: accounts[GRANTEE],
                    fragments: 4,
                    bytes: 4 * u64::from(FRAGMENT_SIZE),
                }],
            },
        ),
        // Accepted: a failed check is recorded, not refused.
        (
            "submit_proofs_wrong",
            PROVIDER_P,
            true,
            Body::SubmitProofs {
                epoch: 1,
                proofs: vec![ContractProof { contract: setup.contracts[0], answers: vec![1] }],
            },
        ),
    ];
    let mut everything = Vec::new();
    for (name, sender, accepted, body) in &bodies {
        let seed = item(*sender as u8, body);
        let mut check = Run::new(setup);
        check.items(&seed);
        check.close_block();
        assert_eq!(check.outcomes[0] == Outcome::Accepted, *accepted, "seed {name}: {:?}", check.outcomes[0]);
        everything.extend_from_slice(&seed);
        seeds.push((name, seed));
    }

    // Honest proofs: an empty block enters epoch 1 (its rosters and
    // beacon), the proofs go into the next block, still of epoch 1.
    for (name, provider, contract) in
        [("submit_proofs_p", PROVIDER_P, setup.contracts[0]), ("submit_proofs_q", PROVIDER_Q, setup.contracts[1])]
    {
        let mut run = Run::new(setup);
        run.close_block();
        let seed = item(EMPTY_BLOCK | provider as u8, &honest_proofs(&run, provider));
        let mut check = Run::new(setup);
        check.items(&seed);
        check.close_block();
        let record = check.sequencer.state().proofs.get(&(1, contract)).expect("the contract is checked in epoch 1");
        assert_eq!(record.status, ProofStatus::Passed, "the honest proofs of seed {name} pass");
        if provider == PROVIDER_P {
            everything = [seed.clone(), everything].concat();
        }
        seeds.push((name, seed));
    }

    // Sequences whose last transaction meets a rule only a repeat or the
    // passing of epochs reaches.
    let advance = |blocks: usize| {
        vec![
            (EMPTY_BLOCK | STRANGER as u8, Body::RecordRepair { order: Digest([6; 32]), contract: Digest([6; 32]) });
            blocks
        ]
    };
    let mut run = Run::new(setup);
    run.close_block();
    let proofs_p = honest_proofs(&run, PROVIDER_P);
    let reopened = terms(&accounts[OWNER_B], &accounts[PROVIDER_Q], 4, 5);
    let mut oversized = terms(&accounts[OWNER_B], &accounts[PROVIDER_Q], 5, 5);
    oversized.fragment_count = strand_proof_of_storage::policy::FRAGMENTS_PER_CONTRACT_MAX;
    let short = terms(&accounts[OWNER_B], &accounts[STRANGER], 6, 1);
    let revoke = Body::RevokeCredential { credential: setup.credentials[0] };
    let close = Body::CloseContract { contract: setup.contracts[1] };
    let sequences: [(&str, Vec<(u8, Body)>, fn(&Outcome) -> bool); 6] = [
        ("revoke_twice", vec![(OWNER_A as u8, revoke.clone()), (OWNER_A as u8, revoke)], |outcome| {
            matches!(outcome, Outcome::Rejected(Rejection::AlreadyRevoked(_)))
        }),
        ("close_twice", vec![(OWNER_A as u8, close.clone()), (OWNER_A as u8, close)], |outcome| {
            matches!(outcome, Outcome::Rejected(Rejection::ContractNotActive(_)))
        }),
        (
            "open_twice",
            vec![
                (OWNER_B as u8, open_contract(&setup.chain, reopened.clone(), &setup.participants[PROVIDER_Q])),
                (OWNER_B as u8, open_contract(&setup.chain, reopened, &setup.participants[PROVIDER_Q])),
            ],
            |outcome| matches!(outcome, Outcome::Rejected(Rejection::ContractExists(_))),
        ),
        (
            "open_over_capacity",
            vec![(OWNER_B as u8, open_contract(&setup.chain, oversized, &setup.participants[PROVIDER_Q]))],
            |outcome| matches!(outcome, Outcome::Rejected(Rejection::InsufficientCapacity { .. })),
        ),
        (
            "proofs_twice",
            vec![(EMPTY_BLOCK | PROVIDER_P as u8, proofs_p.clone()), (PROVIDER_P as u8, proofs_p)],
            |outcome| matches!(outcome, Outcome::Rejected(Rejection::DuplicateSubmission(1))),
        ),
        // A one-epoch contract with a new provider, past its term (one
        // silent epoch does not make its provider unresponsive).
        (
            "close_expired",
            [
                vec![
                    (STRANGER as u8, registration("newcomer", 1 << 35)),
                    (OWNER_B as u8, open_contract(&setup.chain, short.clone(), &setup.participants[STRANGER])),
                ],
                advance(3),
                vec![(OWNER_B as u8, Body::CloseContract { contract: short.id() })],
            ]
            .concat(),
            |outcome| matches!(outcome, Outcome::Rejected(Rejection::ContractExpired { .. })),
        ),
    ];
    for (name, items, expected) in sequences {
        let seed: Vec<u8> = items.iter().flat_map(|(control, body)| item(*control, body)).collect();
        let mut check = Run::new(setup);
        check.items(&seed);
        check.close_block();
        let last = check.outcomes.last().expect("a sequence has transactions");
        assert!(expected(last), "seed {name} ends with {last:?}");
        seeds.push((name, seed));
    }
    seeds.push(("everything", everything));

    for (name, bytes) in seeds {
        let mut run = Run::new(setup);
        run.items(&bytes);
        run.finish();
        std::fs::write(directory.join(format!("seed-{name}")), &bytes).expect("a seed can be written");
    }
}
