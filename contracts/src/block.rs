//! Blocks, genesis and finality.
//!
//! A block carries transactions as raw bytes (so a malformed one gets a
//! receipt instead of making the block undecodable), commits to them, to
//! their receipts and to the state after them, and carries what finalises
//! it ([`Finality`]):
//! - the single sequencer (a validator set of one, quorum one) signs the
//!   block's hash;
//! - a consortium's validators finalise it with commonware simplex's
//!   finalization certificate, which a follower checks here, without the
//!   engine: each signature is ed25519 over the engine's own message for
//!   (epoch, view, parent view, block hash), by validators named by their
//!   index in the set sorted by key, at least `n - (n-1)/3` of them.

use borsh::{BorshDeserialize, BorshSerialize};
use strand_core::Identity;

use crate::apply::Receipt;
use crate::beacon::{BeaconError, BeaconSignature};
use crate::encoding::{self, BLOCK_BYTES_MAX, EncodingError};
use crate::state::{ChainParams, LedgerState};
use crate::transaction::transaction_hash;
use crate::types::{AccountId, Digest, Signature};

/// Version of the block format and of the rules its transactions are
/// applied under (2: per-provider bounded proof schedules; 3: repair; 4: a
/// consortium's threshold beacon; 5: validator governance, and a
/// certificate's engine epoch is the block's ledger epoch).
pub const BLOCK_VERSION: u16 = 5;

/// Most validators in a consortium (a certificate check is `O(n)`
/// signature verifications; the state commits to the set at every block;
/// a validator's p2p queues are sized for twice this many peers).
pub const VALIDATORS_MAX: usize = 32;
/// Domain string of finality signatures.
pub const BLOCK_SIGNATURE_DOMAIN: &[u8] = b"strand block signature v1";

/// What a block commits to.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    /// [`BLOCK_VERSION`].
    pub version: u16,
    /// The chain.
    pub chain: Digest,
    /// Height; genesis is 0.
    pub height: u64,
    /// Hash of the previous block.
    pub parent: Digest,
    /// Milliseconds since the Unix epoch, as the proposer saw it; never
    /// before the parent's.
    pub timestamp_ms: u64,
    /// Commitment to the transactions' hashes, in order.
    pub transactions_root: Digest,
    /// Commitment to the receipts, in order.
    pub receipts_root: Digest,
    /// The state root after applying the block.
    pub state_root: Digest,
    /// Who proposed it.
    pub proposer: AccountId,
    /// A consortium chain's beacon for the current epoch, when it is due
    /// and the proposer has it ([`crate::beacon`]); always `None` on a
    /// sequencer's chain.
    pub beacon: Option<BeaconSignature>,
}

impl BlockHeader {
    /// The block's hash.
    pub fn hash(&self) -> Digest {
        Digest::of("strand block v1", &[&encoding::encode(self)])
    }
}

/// What finalises a block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Finality {
    /// Validators' signatures over [`signing_message`] of the header's hash
    /// (the single sequencer).
    Signatures(Vec<(AccountId, Signature)>),
    /// A simplex finalization certificate (a consortium).
    Certificate(Certificate),
    /// Final because a later block that descends from it carries a
    /// certificate (simplex finalises a block's ancestors with it; a view
    /// notarized but not finalised on its own has no certificate). A
    /// follower applies such blocks only together with that descendant
    /// ([`crate::Replica::apply_run`]).
    Descendant,
}

impl Finality {
    /// How many validators signed.
    pub fn signers(&self) -> usize {
        match self {
            Self::Signatures(signatures) => signatures.len(),
            Self::Certificate(certificate) => certificate.signers.len(),
            Self::Descendant => 0,
        }
    }
}

/// A simplex (commonware) finalization certificate with the ed25519 scheme:
/// the round and parent view the validators voted on, and their signatures.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Certificate {
    /// The engine's epoch (not the ledger's).
    pub epoch: u64,
    /// The view the block was finalised in (views skip: not the height).
    pub view: u64,
    /// The view of the parent block.
    pub parent_view: u64,
    /// Who signed, by index in the validator set sorted by key, ascending.
    pub signers: Vec<u32>,
    /// Their signatures, in the same order.
    pub signatures: Vec<Signature>,
}

/// A block with what finalises it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions' bytes.
    pub transactions: Vec<Vec<u8>>,
    /// The validators' finality evidence.
    pub finality: Finality,
}

impl Block {
    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes block bytes from the network or disk.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncodingError> {
        encoding::decode(bytes, BLOCK_BYTES_MAX)
    }
}

/// Commitment to transaction bytes, in order.
pub fn transactions_root(transactions: &[Vec<u8>]) -> Digest {
    let hashes: Vec<[u8; 32]> = transactions.iter().map(|bytes| transaction_hash(bytes).0).collect();
    Digest::of("strand transactions root v1", &[&(hashes.len() as u64).to_le_bytes(), hashes.as_flattened()])
}

/// Commitment to receipts, in order.
pub fn receipts_root(receipts: &[Receipt]) -> Digest {
    Digest::of("strand receipts root v1", &[&encoding::encode(&receipts.to_vec())])
}

/// The message validators sign for a block.
pub fn signing_message(hash: &Digest) -> Vec<u8> {
    [BLOCK_SIGNATURE_DOMAIN, &hash.0].concat()
}

/// Signs a block hash as a validator.
pub fn sign_block(hash: &Digest, validator: &Identity) -> (AccountId, Signature) {
    (AccountId::of(&validator.public_key()), Signature(validator.sign(&signing_message(hash))))
}

/// One validator: an organisation's key and where it is reached.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    /// Its key.
    pub account: AccountId,
    /// The organisation that runs it.
    pub organisation: String,
    /// Where its consensus peers reach it (`host:port`; empty for the single
    /// sequencer).
    pub p2p: String,
    /// Where clients and nodes reach its ledger service (`host:port`).
    pub ledger: String,
}

/// How a chain's blocks are finalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Ordering {
    /// One sequencer signs each block ([`Finality::Signatures`]).
    Sequencer,
    /// The validators run simplex ([`Finality::Certificate`]).
    Simplex,
}

/// Who finalises blocks, and how.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    /// How.
    pub ordering: Ordering,
    /// The validators.
    pub validators: Vec<Validator>,
    /// Signatures needed (1 for the single sequencer; `n - (n-1)/3` for
    /// simplex).
    pub quorum: u32,
    /// A consortium's beacon key: the public polynomial of the validators'
    /// BLS shares, threshold `quorum` (commonware's encoding; see
    /// [`crate::beacon`]). `None` for the single sequencer, whose beacon is
    /// the hash of the block closing the previous epoch.
    pub beacon_key: Option<Vec<u8>>,
}

/// Why finality signatures do not finalise a block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FinalityError {
    /// A signature by a key outside the set.
    #[error("signature by {0}, which is not a validator")]
    NotAValidator(AccountId),
    /// A signature that does not verify.
    #[error("bad finality signature by validator {0}")]
    BadSignature(AccountId),
    /// Final only through a descendant that was not given with it.
    #[error("block is final only through a later block's certificate, which did not come with it")]
    NoDescendant,
    /// Evidence of the other kind than this chain's ordering uses.
    #[error("finality evidence of another kind than this chain's ordering ({0:?})")]
    WrongKind(Ordering),
    /// A certificate that names a signer twice, out of order, outside the
    /// set, or with as many signatures as signers.
    #[error("malformed finality certificate: {0}")]
    Malformed(&'static str),
    /// A certificate from another epoch's engine instance than the block's.
    #[error("certificate from engine epoch {found}; the block is in epoch {expected}")]
    WrongEpoch {
        /// The certificate's.
        found: u64,
        /// The block's.
        expected: u64,
    },
    /// Too few distinct valid signatures.
    #[error("{found} validator signatures, {quorum} needed")]
    NoQuorum {
        /// Distinct valid signatures.
        found: u32,
        /// Needed.
        quorum: u32,
    },
}

impl ValidatorSet {
    /// The single sequencer's set: `account`, quorum one.
    pub fn sequencer(account: AccountId) -> Self {
        Self {
            ordering: Ordering::Sequencer,
            validators: vec![Validator {
                account,
                organisation: String::new(),
                p2p: String::new(),
                ledger: String::new(),
            }],
            quorum: 1,
            beacon_key: None,
        }
    }

    /// A consortium running simplex: quorum `n - (n-1)/3` (commonware's
    /// `N3f1`: 3 of 4, 5 of 7), with the beacon key its validators' shares
    /// belong to ([`crate::beacon::encode_key`]).
    pub fn consortium(validators: Vec<Validator>, beacon_key: Vec<u8>) -> Self {
        let n = validators.len() as u32;
        Self {
            ordering: Ordering::Simplex,
            quorum: n - n.saturating_sub(1) / 3,
            validators,
            beacon_key: Some(beacon_key),
        }
    }

    /// The beacon key, decoded (`Ok(None)` on a sequencer's chain).
    pub fn beacon_key(
        &self,
    ) -> Result<Option<commonware_cryptography::bls12381::primitives::sharing::Sharing<crate::beacon::Bls>>, BeaconError>
    {
        self.beacon_key
            .as_deref()
            .map(|bytes| crate::beacon::decode_key(bytes, self.validators.len() as u32, self.quorum))
            .transpose()
    }

    /// Checks that the set can run a consortium: simplex, 4 to
    /// [`VALIDATORS_MAX`] distinct validators, the quorum `n - (n-1)/3`,
    /// text fields within [`crate::transaction::TEXT_BYTES_MAX`], and a
    /// beacon key that fits.
    pub fn check_consortium(&self) -> Result<(), GenesisError> {
        if self.ordering != Ordering::Simplex {
            return Err(GenesisError::NotConsortium);
        }
        let n = self.validators.len();
        if n < 4 {
            return Err(GenesisError::TooFew(n));
        }
        if n > VALIDATORS_MAX {
            return Err(GenesisError::TooMany(n));
        }
        let mut seen = std::collections::BTreeSet::new();
        for validator in &self.validators {
            if !seen.insert(validator.account) {
                return Err(GenesisError::Duplicate(validator.account));
            }
            let fields = [&validator.organisation, &validator.p2p, &validator.ledger];
            if fields.iter().any(|field| field.len() > crate::transaction::TEXT_BYTES_MAX) {
                return Err(GenesisError::Field(validator.account));
            }
        }
        let quorum = n as u32 - (n as u32 - 1) / 3;
        if self.quorum != quorum {
            return Err(GenesisError::Quorum { found: self.quorum, expected: quorum });
        }
        match self.beacon_key() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(GenesisError::BeaconKey(BeaconError::Key("the set has no beacon key".into()))),
            Err(error) => Err(GenesisError::BeaconKey(error)),
        }
    }

    /// The validators' accounts, in genesis order.
    pub fn accounts(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.validators.iter().map(|validator| validator.account)
    }

    /// Whether `account` is a validator.
    pub fn contains(&self, account: &AccountId) -> bool {
        self.accounts().any(|validator| validator == *account)
    }

    /// The accounts sorted by key: the order simplex's certificates name
    /// signers in.
    pub fn sorted(&self) -> Vec<AccountId> {
        let mut accounts: Vec<AccountId> = self.accounts().collect();
        accounts.sort();
        accounts.dedup();
        accounts
    }

    /// Checks that `finality` finalises the block with `hash` on `chain`.
    pub fn check(&self, chain: &Digest, hash: &Digest, finality: &Finality) -> Result<(), FinalityError> {
        match (self.ordering, finality) {
            (Ordering::Sequencer, Finality::Signatures(signatures)) => self.check_signatures(hash, signatures),
            (Ordering::Simplex, Finality::Certificate(certificate)) => self.check_certificate(chain, hash, certificate),
            (Ordering::Simplex, Finality::Descendant) => Err(FinalityError::NoDescendant),
            (ordering, _) => Err(FinalityError::WrongKind(ordering)),
        }
    }

    fn check_signatures(&self, hash: &Digest, signatures: &[(AccountId, Signature)]) -> Result<(), FinalityError> {
        let message = signing_message(hash);
        let mut signers: Vec<AccountId> = Vec::new();
        for (signer, signature) in signatures {
            if !self.contains(signer) {
                return Err(FinalityError::NotAValidator(*signer));
            }
            if !signature.verify(signer, &message) {
                return Err(FinalityError::BadSignature(*signer));
            }
            if !signers.contains(signer) {
                signers.push(*signer);
            }
        }
        let found = signers.len() as u32;
        if found < self.quorum {
            return Err(FinalityError::NoQuorum { found, quorum: self.quorum });
        }
        Ok(())
    }

    fn check_certificate(&self, chain: &Digest, hash: &Digest, certificate: &Certificate) -> Result<(), FinalityError> {
        if certificate.signers.len() != certificate.signatures.len() {
            return Err(FinalityError::Malformed("signers and signatures differ in number"));
        }
        if certificate.signers.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(FinalityError::Malformed("signers not strictly ascending"));
        }
        let sorted = self.sorted();
        let namespace = finalize_namespace(chain);
        let proposal = finalize_proposal(certificate.epoch, certificate.view, certificate.parent_view, hash);
        for (&index, signature) in certificate.signers.iter().zip(&certificate.signatures) {
            let signer = sorted.get(index as usize).ok_or(FinalityError::Malformed("a signer outside the set"))?;
            if !vote_valid(signer, &namespace, &proposal, signature) {
                return Err(FinalityError::BadSignature(*signer));
            }
        }
        let found = certificate.signers.len() as u32;
        if found < self.quorum {
            return Err(FinalityError::NoQuorum { found, quorum: self.quorum });
        }
        Ok(())
    }
}

/// The namespace a chain's simplex engine signs under: the chain id binds
/// every vote to one chain.
pub fn consensus_namespace(chain: &Digest) -> Vec<u8> {
    [b"strand consensus v1 ".as_slice(), &chain.0].concat()
}

/// LEB128, as commonware encodes `u64`s in its varints.
fn leb128(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The bytes a simplex validator signs to finalise `hash` in `(epoch,
/// view)` on top of `parent_view`: commonware's
/// `union_unique(namespace ‖ "_FINALIZE", proposal)`, where the union
/// prefixes the namespace with its length as a varint and the proposal is
/// `varint(epoch) ‖ varint(view) ‖ varint(parent_view) ‖ hash`. Pinned by
/// a test against the engine's own certificates (strand-consortium).
pub fn finalize_message(chain: &Digest, epoch: u64, view: u64, parent_view: u64, hash: &Digest) -> Vec<u8> {
    let namespace = finalize_namespace(chain);
    let mut message = Vec::with_capacity(namespace.len() + 64);
    leb128(namespace.len() as u64, &mut message);
    message.extend_from_slice(&namespace);
    message.extend_from_slice(&finalize_proposal(epoch, view, parent_view, hash));
    message
}

/// The namespace of finalize votes: the chain's, then `_FINALIZE`.
fn finalize_namespace(chain: &Digest) -> Vec<u8> {
    [consensus_namespace(chain).as_slice(), b"_FINALIZE"].concat()
}

/// What a finalize vote is over, within its namespace.
fn finalize_proposal(epoch: u64, view: u64, parent_view: u64, hash: &Digest) -> Vec<u8> {
    let mut proposal = Vec::with_capacity(3 * 10 + 32);
    leb128(epoch, &mut proposal);
    leb128(view, &mut proposal);
    leb128(parent_view, &mut proposal);
    proposal.extend_from_slice(&hash.0);
    proposal
}

/// Whether `signature` is `signer`'s vote over `proposal` in `namespace`,
/// checked by the engine's own ed25519 verifier (commonware's, with its
/// acceptance rules), so a follower accepts exactly the certificates the
/// validators formed: a stricter check here would let a Byzantine
/// validator's borderline signature stall every follower.
fn vote_valid(signer: &AccountId, namespace: &[u8], proposal: &[u8], signature: &Signature) -> bool {
    use commonware_codec::DecodeExt as _;
    use commonware_cryptography::Verifier as _;
    let Ok(key) = commonware_cryptography::ed25519::PublicKey::decode(signer.0.to_vec()) else { return false };
    let Ok(signature) = commonware_cryptography::ed25519::Signature::decode(signature.0.to_vec()) else {
        return false;
    };
    key.verify(namespace, proposal, &signature)
}

/// The configuration a chain starts from; its hash is the chain id.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Genesis {
    /// A human name ("strand-devnet").
    pub name: String,
    /// Who finalises blocks.
    pub validators: ValidatorSet,
    /// Blocks per epoch.
    pub epoch_blocks: u64,
    /// The genesis timestamp.
    pub timestamp_ms: u64,
}

impl Genesis {
    /// The chain id.
    pub fn chain(&self) -> Digest {
        Digest::of("strand chain id v1", &[&encoding::encode(self)])
    }

    /// The chain's constants.
    pub fn params(&self) -> ChainParams {
        ChainParams { chain: self.chain(), epoch_blocks: self.epoch_blocks.max(1) }
    }

    /// Block 0 and the state after it. Derived, not signed: every replica
    /// computes the same genesis block from the same configuration.
    pub fn block(&self) -> (Block, LedgerState) {
        let mut state = LedgerState::new(self.params());
        state.validators = self.validators.clone();
        let header = BlockHeader {
            version: BLOCK_VERSION,
            chain: self.chain(),
            height: 0,
            parent: Digest::default(),
            timestamp_ms: self.timestamp_ms,
            transactions_root: transactions_root(&[]),
            receipts_root: receipts_root(&[]),
            state_root: state.root(),
            proposer: AccountId([0; 32]),
            beacon: None,
        };
        let mut state = state;
        state.head = header.hash();
        let finality = match self.validators.ordering {
            Ordering::Sequencer => Finality::Signatures(Vec::new()),
            Ordering::Simplex => Finality::Certificate(Certificate {
                epoch: 0,
                view: 0,
                parent_view: 0,
                signers: Vec::new(),
                signatures: Vec::new(),
            }),
        };
        (Block { header, transactions: Vec::new(), finality }, state)
    }
}

/// Domain string of genesis signatures.
pub const GENESIS_SIGNATURE_DOMAIN: &[u8] = b"strand genesis signature v1";

/// A consortium's genesis with each member organisation's signature over
/// its chain id: the organisations' agreement to run this chain with these
/// validators. A validator starts only from a genesis every listed
/// validator has signed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedGenesis {
    /// The configuration.
    pub genesis: Genesis,
    /// Validators' signatures over [`GENESIS_SIGNATURE_DOMAIN`] ‖ chain id.
    pub signatures: Vec<(AccountId, Signature)>,
}

/// Why a signed genesis is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// A validator has not signed.
    #[error("validator {0} has not signed the genesis")]
    Unsigned(AccountId),
    /// A signature that does not verify, or by someone not listed.
    #[error("bad genesis signature by {0}")]
    BadSignature(AccountId),
    /// The same key listed twice.
    #[error("validator {0} is listed twice")]
    Duplicate(AccountId),
    /// A consortium needs a quorum that tolerates a fault: at least 4.
    #[error("a consortium of {0} validators tolerates no fault: list at least 4")]
    TooFew(usize),
    /// More than [`VALIDATORS_MAX`].
    #[error("a consortium of {0} validators is more than the {VALIDATORS_MAX} supported")]
    TooMany(usize),
    /// An organisation or address longer than a text field may be.
    #[error("validator {0} has an organisation or address longer than 256 bytes")]
    Field(AccountId),
    /// A quorum other than `n - (n-1)/3`.
    #[error("quorum {found}, where this set's is {expected}")]
    Quorum {
        /// Given.
        found: u32,
        /// `n - (n-1)/3`.
        expected: u32,
    },
    /// Not a consortium's genesis.
    #[error("this genesis is for a single sequencer, not a consortium")]
    NotConsortium,
    /// No beacon key, or one that does not fit the set.
    #[error("{0}")]
    BeaconKey(BeaconError),
}

impl SignedGenesis {
    /// The message validators sign.
    pub fn message(&self) -> Vec<u8> {
        [GENESIS_SIGNATURE_DOMAIN, &self.genesis.chain().0].concat()
    }

    /// Adds (or replaces) `validator`'s signature.
    pub fn sign(&mut self, validator: &Identity) {
        let account = AccountId::of(&validator.public_key());
        let signature = Signature(validator.sign(&self.message()));
        self.signatures.retain(|(signer, _)| *signer != account);
        self.signatures.push((account, signature));
    }

    /// Checks that it is a consortium of at least four distinct validators,
    /// each of which signed it, and no one else.
    pub fn verify(&self) -> Result<(), GenesisError> {
        let set = &self.genesis.validators;
        set.check_consortium()?;
        let message = self.message();
        for (signer, signature) in &self.signatures {
            if !set.contains(signer) || !signature.verify(signer, &message) {
                return Err(GenesisError::BadSignature(*signer));
            }
        }
        for account in set.accounts() {
            if !self.signatures.iter().any(|(signer, _)| *signer == account) {
                return Err(GenesisError::Unsigned(account));
            }
        }
        Ok(())
    }

    /// Canonical bytes (the genesis file).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes a genesis file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncodingError> {
        encoding::decode(bytes, 1 << 20)
    }
}
