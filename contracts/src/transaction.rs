//! Transactions: what accounts ask the ledger to record.
//!
//! Every transaction is signed by its sender over
//! `"strand transaction v1" ‖ borsh(chain, sender, nonce, body)`, carries the
//! sender's next nonce (no replay, no reordering) and the chain id (no replay
//! on another network). Its hash is BLAKE3 of its encoded bytes.

use borsh::{BorshDeserialize, BorshSerialize};
use strand_core::Identity;

use crate::encoding::{self, EncodingError, TRANSACTION_BYTES_MAX};
use crate::types::{AccountId, Digest, Signature, UploadKey};

/// Domain string of transaction signatures.
pub const TRANSACTION_DOMAIN: &[u8] = b"strand transaction v1";
/// Domain string of a provider's countersignature on contract terms.
pub const CONTRACT_DOMAIN: &[u8] = b"strand contract v1";
/// Largest text field (labels, purpose, endpoint).
pub const TEXT_BYTES_MAX: usize = 256;
/// Most endpoint addresses a provider may list.
pub const ENDPOINTS_MAX: usize = 8;

/// Where a provider sits, for spreading a stripe across failures.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct FailureDomain {
    /// The organisation running the node (a gene bank, a cloud provider).
    pub organisation: String,
    /// The site (data centre, building).
    pub site: String,
    /// The legal jurisdiction the data sits in.
    pub jurisdiction: String,
}

/// A provider's registration.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProviderRegistration {
    /// Addresses where the node can be reached.
    pub endpoints: Vec<String>,
    /// Bytes offered for fragments.
    pub capacity_bytes: u64,
    /// Failure-domain labels.
    pub domain: FailureDomain,
}

/// How a contract's storage is to be proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProofPolicy {
    /// Challenges per epoch (detection: (1-f)^c, see proof-of-storage).
    pub challenges_per_epoch: u16,
    /// Missed or failed epochs after which the fragments count as lost.
    pub strikes_max: u16,
}

/// What an owner and a provider agree on: one owner, one provider, one upload.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ContractTerms {
    /// The upload.
    pub upload: UploadKey,
    /// The data owner (must be the transaction's sender).
    pub owner: AccountId,
    /// The storage provider (must countersign).
    pub provider: AccountId,
    /// Merkle root (proof_of_storage::merkle) of the provider's fragment ids,
    /// in order.
    pub fragment_root: Digest,
    /// Number of fragments committed by the root.
    pub fragment_count: u32,
    /// Bytes of every fragment.
    pub fragment_size: u32,
    /// k of the upload's code.
    pub data_shards: u16,
    /// m of the upload's code.
    pub parity_shards: u16,
    /// Stripes of the upload.
    pub stripe_count: u64,
    /// Merkle root over the upload's stripes (each the list of its k+m
    /// fragment ids): what a repairer checks sibling lists against, without
    /// an O(fragments) record on the ledger.
    pub stripes_root: Digest,
    /// Length of the contract in epochs, from the epoch it is opened in.
    pub term_epochs: u32,
    /// How storage must be proven.
    pub proof_policy: ProofPolicy,
}

impl ContractTerms {
    /// The contract's id.
    pub fn id(&self) -> Digest {
        Digest::of("strand contract id v1", &[&encoding::encode(self)])
    }

    /// What the provider signs to accept the terms.
    pub fn signing_message(&self, chain: &Digest) -> Vec<u8> {
        [CONTRACT_DOMAIN, &chain.0, &encoding::encode(self)].concat()
    }
}

/// What a credential lets its grantee read.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Scope {
    /// Every fragment of the upload.
    Upload,
    /// Byte ranges of the file, mapped to the fragments they need.
    Ranges {
        /// The byte ranges `[start, end)`.
        ranges: Vec<(u64, u64)>,
        /// Merkle root of the ids of the fragments the ranges need.
        fragments_root: Digest,
        /// How many ids the root commits to.
        fragment_count: u32,
    },
}

/// A credential as granted.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CredentialGrant {
    /// The upload it is for.
    pub upload: UploadKey,
    /// Who may read.
    pub grantee: AccountId,
    /// What they may read.
    pub scope: Scope,
    /// Last height at which it is valid.
    pub expires_at_height: u64,
    /// Why (shown in audits).
    pub purpose: String,
    /// The grantee's key material, sealed to the grantee (opaque here).
    pub sealed_key_material: Vec<u8>,
}

/// One contract's answers in a submit-proofs transaction; verified by the
/// proof-of-storage rules (`strand_proof_of_storage::answers`, encoding v1).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ContractProof {
    /// The contract.
    pub contract: Digest,
    /// The encoded answers to the epoch's challenges.
    pub answers: Vec<u8>,
}

/// Under what a provider released fragments: the owner's own read, a
/// credential, or a repair order (a repairer reading siblings to rebuild a
/// lost contract; it never gets keys, so it reads ciphertext only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub enum ReadAuthority {
    /// The upload's owner.
    Owner,
    /// A credential granted by the owner.
    Credential(Digest),
    /// A repair order on the ledger.
    Repair(Digest),
}

impl ReadAuthority {
    /// The credential, when the read was under one.
    pub fn credential(&self) -> Option<Digest> {
        match self {
            Self::Credential(credential) => Some(*credential),
            Self::Owner | Self::Repair(_) => None,
        }
    }

    /// Who read, as an audit names it: `owner`, `grantee` or `repairer`.
    pub fn reader(&self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Credential(_) => "grantee",
            Self::Repair(_) => "repairer",
        }
    }
}

/// One batch line of fragments a provider released.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccessReceipt {
    /// The upload read.
    pub upload: UploadKey,
    /// Under what.
    pub authority: ReadAuthority,
    /// Who read.
    pub requester: AccountId,
    /// Fragments released.
    pub fragments: u32,
    /// Bytes released.
    pub bytes: u64,
}

/// What a transaction asks for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Body {
    /// Register the sender as a provider, or update its registration.
    RegisterProvider(ProviderRegistration),
    /// Open a storage contract (sender = owner; the provider countersigns).
    OpenContract {
        /// The agreed terms.
        terms: ContractTerms,
        /// The provider's signature over [`ContractTerms::signing_message`].
        provider_signature: Signature,
    },
    /// Close a contract early (its owner).
    CloseContract {
        /// The contract.
        contract: Digest,
    },
    /// Grant a credential (the upload's owner).
    GrantCredential(CredentialGrant),
    /// Revoke a credential (the upload's owner).
    RevokeCredential {
        /// The credential.
        credential: Digest,
    },
    /// A provider's proofs for one epoch, all its contracts in one.
    SubmitProofs {
        /// The epoch answered.
        epoch: u64,
        /// Per contract.
        proofs: Vec<ContractProof>,
    },
    /// A repairer reports that it rebuilt and stores a contract's
    /// fragments under a repair order; the contract moves to it at the next
    /// epoch's first block and it owes proofs from then.
    RecordRepair {
        /// The repair order fulfilled.
        order: Digest,
        /// The contract (the order's).
        contract: Digest,
    },
    /// A repairer reports that the holder of a sibling contract served a
    /// fragment whose bytes did not verify against its id: that fragment is
    /// challenged in the holder's next epochs (`state::Accusation`).
    ReportBadSibling {
        /// The repair order the repairer read under (open, its own).
        order: Digest,
        /// The sibling contract (same upload) whose holder served bad bytes.
        contract: Digest,
        /// Index of the fragment in that contract's committed list.
        fragment: u32,
        /// The first 1 KiB chunk of the fragment that failed.
        chunk: u32,
    },
    /// A provider's access receipts for one epoch.
    AccessReceipts {
        /// The epoch the reads happened in.
        epoch: u64,
        /// What was released.
        receipts: Vec<AccessReceipt>,
    },
    /// The sender, a provider, leaves: no new contracts or repair orders
    /// from now on; repair moves its contracts to other providers while it
    /// keeps holding and proving them.
    Drain,
    /// A current validator proposes a new validator set, effective at an
    /// epoch's first block ([`crate::governance`]); counts as its approval.
    ProposeValidators {
        /// The set (keys, organisations, addresses, beacon key).
        set: crate::block::ValidatorSet,
        /// The epoch whose first block it finalises.
        effective_epoch: u64,
    },
    /// A current validator approves an open proposal.
    ApproveValidators {
        /// The proposal's id ([`crate::governance::proposal_id`]).
        proposal: Digest,
    },
}

impl Body {
    /// Every [`Self::kind`].
    pub const KINDS: [&'static str; 12] = [
        "register_provider",
        "open_contract",
        "close_contract",
        "grant_credential",
        "revoke_credential",
        "submit_proofs",
        "record_repair",
        "report_bad_sibling",
        "access_receipts",
        "drain",
        "propose_validators",
        "approve_validators",
    ];

    /// A short fixed name of what the transaction asks for (a metrics
    /// label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RegisterProvider(_) => "register_provider",
            Self::OpenContract { .. } => "open_contract",
            Self::CloseContract { .. } => "close_contract",
            Self::GrantCredential(_) => "grant_credential",
            Self::RevokeCredential { .. } => "revoke_credential",
            Self::SubmitProofs { .. } => "submit_proofs",
            Self::RecordRepair { .. } => "record_repair",
            Self::ReportBadSibling { .. } => "report_bad_sibling",
            Self::AccessReceipts { .. } => "access_receipts",
            Self::Drain => "drain",
            Self::ProposeValidators { .. } => "propose_validators",
            Self::ApproveValidators { .. } => "approve_validators",
        }
    }
}

/// The signed part of a transaction.
#[derive(BorshSerialize)]
struct SignedFields<'a> {
    chain: &'a Digest,
    sender: &'a AccountId,
    nonce: u64,
    body: &'a Body,
}

/// A signed transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    /// The chain it is for.
    pub chain: Digest,
    /// Who sends it.
    pub sender: AccountId,
    /// The sender's next nonce (1 for its first transaction).
    pub nonce: u64,
    /// What it asks for.
    pub body: Body,
    /// The sender's signature.
    pub signature: Signature,
}

impl Transaction {
    /// Builds and signs a transaction.
    pub fn sign(chain: Digest, sender: &Identity, nonce: u64, body: Body) -> Self {
        let account = AccountId::of(&sender.public_key());
        let message = signing_message(&chain, &account, nonce, &body);
        Self { chain, sender: account, nonce, body, signature: Signature(sender.sign(&message)) }
    }

    /// Whether the signature is the sender's.
    pub fn signature_valid(&self) -> bool {
        let message = signing_message(&self.chain, &self.sender, self.nonce, &self.body);
        self.signature.verify(&self.sender, &message)
    }

    /// The canonical bytes (what blocks carry).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes transaction bytes from the network.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncodingError> {
        encoding::decode(bytes, TRANSACTION_BYTES_MAX)
    }

    /// The [`Body::kind`] of transaction `bytes`, read from their first 73
    /// bytes without decoding the body (metrics count every finalised
    /// transaction; a decode would repeat the state machine's): `invalid`
    /// when that prefix is not a transaction's.
    pub fn kind_of(bytes: &[u8]) -> &'static str {
        /// The fields before the body, then the body's variant tag.
        #[derive(BorshDeserialize)]
        struct Prefix {
            _chain: Digest,
            _sender: AccountId,
            _nonce: u64,
            tag: u8,
        }
        Prefix::deserialize(&mut &bytes[..])
            .ok()
            .and_then(|prefix| Body::KINDS.get(usize::from(prefix.tag)))
            .copied()
            .unwrap_or("invalid")
    }
}

fn signing_message(chain: &Digest, sender: &AccountId, nonce: u64, body: &Body) -> Vec<u8> {
    let fields = SignedFields { chain, sender, nonce, body };
    [TRANSACTION_DOMAIN, &encoding::encode(&fields)].concat()
}

/// The hash of transaction bytes.
pub fn transaction_hash(bytes: &[u8]) -> Digest {
    Digest::of("strand transaction hash v1", &[bytes])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind read from the bytes' prefix is the decoded body's, for
    /// every kind ([`Body::KINDS`] is in the enum's declaration order).
    #[test]
    fn the_kind_read_from_the_prefix_is_the_bodys() {
        let (digest, account) = (Digest([3; 32]), AccountId([4; 32]));
        let terms = ContractTerms {
            upload: [1; 16],
            owner: account,
            provider: account,
            fragment_root: digest,
            fragment_count: 1,
            fragment_size: 1,
            data_shards: 4,
            parity_shards: 2,
            stripe_count: 1,
            stripes_root: digest,
            term_epochs: 1,
            proof_policy: ProofPolicy { challenges_per_epoch: 1, strikes_max: 1 },
        };
        let bodies = [
            Body::RegisterProvider(ProviderRegistration {
                endpoints: vec!["a".into()],
                capacity_bytes: 1,
                domain: FailureDomain { organisation: "o".into(), site: "s".into(), jurisdiction: "j".into() },
            }),
            Body::OpenContract { terms, provider_signature: Signature([5; 64]) },
            Body::CloseContract { contract: digest },
            Body::GrantCredential(CredentialGrant {
                upload: [1; 16],
                grantee: account,
                scope: Scope::Upload,
                expires_at_height: 9,
                purpose: "p".into(),
                sealed_key_material: vec![1],
            }),
            Body::RevokeCredential { credential: digest },
            Body::SubmitProofs { epoch: 1, proofs: vec![ContractProof { contract: digest, answers: vec![1, 2] }] },
            Body::RecordRepair { order: digest, contract: digest },
            Body::ReportBadSibling { order: digest, contract: digest, fragment: 1, chunk: 2 },
            Body::AccessReceipts { epoch: 1, receipts: Vec::new() },
            Body::Drain,
            Body::ProposeValidators { set: crate::block::ValidatorSet::sequencer(account), effective_epoch: 3 },
            Body::ApproveValidators { proposal: digest },
        ];
        let identity = Identity::from_secret_bytes(&[7; 32]);
        let kinds: Vec<&str> = bodies
            .into_iter()
            .map(|body| {
                let kind = body.kind();
                let bytes = Transaction::sign(digest, &identity, 1, body).to_bytes();
                assert_eq!(Transaction::kind_of(&bytes), kind);
                kind
            })
            .collect();
        assert_eq!(kinds, Body::KINDS, "every kind, in order");
        assert_eq!(Transaction::kind_of(&[0; 72]), "invalid", "too short");
        assert_eq!(Transaction::kind_of(&[0xff; 80]), "invalid", "no such tag");
    }
}
