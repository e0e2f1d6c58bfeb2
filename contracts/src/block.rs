//! Blocks, genesis and finality.
//!
//! A block carries transactions as raw bytes (so a malformed one gets a
//! receipt instead of making the block undecodable), commits to them, to
//! their receipts and to the state after them, and is finalised by
//! signatures of the validator set over its hash. The single sequencer is a
//! validator set of one with a quorum of one; a BFT engine replaces who
//! produces the signatures, not what a follower checks.

use borsh::{BorshDeserialize, BorshSerialize};
use strand_core::Identity;

use crate::apply::Receipt;
use crate::encoding::{self, BLOCK_BYTES_MAX, EncodingError};
use crate::state::{ChainParams, LedgerState};
use crate::transaction::transaction_hash;
use crate::types::{AccountId, Digest, Signature};

/// Version of the block format and of the rules its transactions are
/// applied under (2: per-provider bounded proof schedules; 3: repair).
pub const BLOCK_VERSION: u16 = 3;
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
}

impl BlockHeader {
    /// The block's hash.
    pub fn hash(&self) -> Digest {
        Digest::of("strand block v1", &[&encoding::encode(self)])
    }
}

/// A block with its finality signatures.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions' bytes.
    pub transactions: Vec<Vec<u8>>,
    /// Validators' signatures over the header's hash.
    pub signatures: Vec<(AccountId, Signature)>,
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

/// Who finalises blocks: a quorum of distinct validators' signatures.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    /// The validators.
    pub validators: Vec<AccountId>,
    /// Signatures needed (1 for the single sequencer; 2f+1 of 3f+1 for BFT).
    pub quorum: u32,
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
    /// Checks that `signatures` finalise the block with `hash`.
    pub fn check(&self, hash: &Digest, signatures: &[(AccountId, Signature)]) -> Result<(), FinalityError> {
        let message = signing_message(hash);
        let mut signers: Vec<AccountId> = Vec::new();
        for (signer, signature) in signatures {
            if !self.validators.contains(signer) {
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
        let state = LedgerState::new(self.params());
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
        };
        let mut state = state;
        state.head = header.hash();
        (Block { header, transactions: Vec::new(), signatures: Vec::new() }, state)
    }
}
