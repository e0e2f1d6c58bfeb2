//! Why the state machine refused a transaction. Each reason is its own
//! variant so clients, tests and audits can tell them apart.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::encoding::EncodingError;
use crate::types::{AccountId, Digest};

/// A refused transaction's reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, BorshSerialize, BorshDeserialize)]
pub enum Rejection {
    /// The bytes are not a transaction (or too many of them).
    #[error("not a valid transaction: {0}")]
    Encoding(EncodingError),
    /// Signed for another chain.
    #[error("transaction is for chain {found}, this is chain {expected}")]
    WrongChain {
        /// This chain.
        expected: Digest,
        /// The transaction's.
        found: Digest,
    },
    /// The signature is not the sender's.
    #[error("bad signature: not signed by the sender's key")]
    BadSignature,
    /// A nonce already used (a replay or a duplicate).
    #[error("nonce {found} already used; the sender's next nonce is {expected}")]
    NonceReused {
        /// Next nonce.
        expected: u64,
        /// Given.
        found: u64,
    },
    /// A nonce past the next one (an earlier transaction is missing).
    #[error("nonce {found} skips ahead; the sender's next nonce is {expected}")]
    NonceSkipped {
        /// Next nonce.
        expected: u64,
        /// Given.
        found: u64,
    },
    /// A field is out of range or too long.
    #[error("invalid field: {0}")]
    InvalidField(String),
    /// The provider named (or the sender acting as one) is not registered.
    #[error("provider {0} is not registered")]
    UnknownProvider(AccountId),
    /// The contract's provider has not signed the terms.
    #[error("contract not signed by its provider {0}: both owner and provider must sign")]
    ProviderSignatureInvalid(AccountId),
    /// The sender is not the owner named in the terms.
    #[error("the sender is not the owner named in the contract terms")]
    OwnerMismatch,
    /// A contract with these terms exists already.
    #[error("contract {0} exists already")]
    ContractExists(Digest),
    /// The provider lacks free capacity.
    #[error("provider {provider} has {free_bytes} bytes free, the contract needs {needed_bytes}")]
    InsufficientCapacity {
        /// The provider.
        provider: AccountId,
        /// Free bytes.
        free_bytes: u64,
        /// Needed bytes.
        needed_bytes: u64,
    },
    /// No such contract.
    #[error("unknown contract {0}")]
    UnknownContract(Digest),
    /// The contract's term has ended.
    #[error("contract {contract} expired at epoch {at_epoch}")]
    ContractExpired {
        /// The contract.
        contract: Digest,
        /// First epoch after its term.
        at_epoch: u64,
    },
    /// The contract is closed or lost.
    #[error("contract {0} is no longer active")]
    ContractNotActive(Digest),
    /// Only the contract's owner may do this.
    #[error("only the contract's owner may close it")]
    NotContractOwner,
    /// Only the contract's provider may do this.
    #[error("contract {0} is not held by the sender")]
    NotContractProvider(Digest),
    /// No such upload.
    #[error("unknown upload {0}")]
    UnknownUpload(String),
    /// Only the upload's owner may grant or revoke.
    #[error("only the upload's owner {owner} may do this")]
    NotUploadOwner {
        /// The owner.
        owner: AccountId,
    },
    /// No such credential.
    #[error("unknown credential {0}")]
    UnknownCredential(Digest),
    /// Revoked already.
    #[error("credential {0} is already revoked")]
    AlreadyRevoked(Digest),
    /// A credential that would be born expired.
    #[error("expiry height {expires_at_height} is not after the current height {height}")]
    ExpiryInPast {
        /// Requested expiry.
        expires_at_height: u64,
        /// Current height.
        height: u64,
    },
    /// Proofs or receipts for an epoch that is not open for them.
    #[error("epoch {found} is not open for this (current epoch {current})")]
    WrongEpoch {
        /// Current epoch.
        current: u64,
        /// Given.
        found: u64,
    },
    /// A provider's one slot for the epoch is used.
    #[error("the sender already submitted for epoch {0}")]
    DuplicateSubmission(u64),
    /// Proofs for a contract that owes none this epoch.
    #[error("contract {0} owes no proofs for this epoch")]
    ProofsNotDue(Digest),
    /// No such repair order.
    #[error("unknown repair order {0}")]
    UnknownRepairOrder(Digest),
    /// A repair report from another than the order's repairer, or for
    /// another contract.
    #[error("repair order {0} names another repairer or contract")]
    NotTheRepairer(Digest),
    /// A repair report after the order's deadline.
    #[error("repair order {order} ended with epoch {deadline_epoch}")]
    RepairOrderExpired {
        /// The order.
        order: Digest,
        /// Its last epoch.
        deadline_epoch: u64,
    },
    /// A repair order reported twice.
    #[error("repair order {0} is already reported")]
    RepairAlreadyReported(Digest),
    /// The provider is leaving the network.
    #[error("provider {0} is draining: it takes no new contracts")]
    ProviderDraining(AccountId),
    /// A bad-sibling report naming a contract that is not an active sibling
    /// of the order's contract.
    #[error("contract {0} is not an active sibling under this repair order")]
    NotASibling(Digest),
    /// A bad-sibling report against a contract already under accusation.
    #[error("contract {0} is already accused; its next checks answer the accusation")]
    AlreadyAccused(Digest),
    /// Governance on a single sequencer's chain.
    #[error("a single sequencer's chain has no validator governance: its sequencer changes only with a new genesis")]
    NoGovernance,
    /// Proposing or approving a change of validators, by someone not among
    /// the current ones.
    #[error("{0} is not one of the current validators: only they propose and approve changes of validators")]
    NotAValidator(AccountId),
    /// A proposed validator set that cannot run a consortium.
    #[error("invalid validator set: {0}")]
    InvalidValidatorSet(String),
    /// A change's effective epoch too soon or too far.
    #[error(
        "effective epoch {found} is outside {earliest}..={latest} (a change is final and prepared before its epoch)"
    )]
    EffectiveEpoch {
        /// Given.
        found: u64,
        /// Earliest now.
        earliest: u64,
        /// Latest now.
        latest: u64,
    },
    /// A change of validators is already scheduled.
    #[error("a change of validators is already scheduled for epoch {0}; propose the next one after it")]
    ValidatorChangePending(u64),
    /// No such open proposal.
    #[error("no open validator proposal {0} (never made, replaced, decided, or too late to take effect)")]
    UnknownProposal(Digest),
    /// The sender approved already.
    #[error("validator proposal {0} already has the sender's approval")]
    AlreadyApproved(Digest),
}

impl Rejection {
    /// Every [`Self::label`], for metrics that show each reason from the
    /// start (at zero).
    pub const LABELS: [&'static str; 38] = [
        "encoding",
        "wrong_chain",
        "bad_signature",
        "nonce_reused",
        "nonce_skipped",
        "invalid_field",
        "unknown_provider",
        "provider_signature_invalid",
        "owner_mismatch",
        "contract_exists",
        "insufficient_capacity",
        "unknown_contract",
        "contract_expired",
        "contract_not_active",
        "not_contract_owner",
        "not_contract_provider",
        "unknown_upload",
        "not_upload_owner",
        "unknown_credential",
        "already_revoked",
        "expiry_in_past",
        "wrong_epoch",
        "duplicate_submission",
        "proofs_not_due",
        "unknown_repair_order",
        "not_the_repairer",
        "repair_order_expired",
        "repair_already_reported",
        "provider_draining",
        "not_a_sibling",
        "already_accused",
        "no_governance",
        "not_a_validator",
        "invalid_validator_set",
        "effective_epoch",
        "validator_change_pending",
        "unknown_proposal",
        "already_approved",
    ];

    /// A short fixed name of the reason (the `reason` label of the ledger
    /// service's metrics): bounded, never carrying the reason's values.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Encoding(_) => "encoding",
            Self::WrongChain { .. } => "wrong_chain",
            Self::BadSignature => "bad_signature",
            Self::NonceReused { .. } => "nonce_reused",
            Self::NonceSkipped { .. } => "nonce_skipped",
            Self::InvalidField(_) => "invalid_field",
            Self::UnknownProvider(_) => "unknown_provider",
            Self::ProviderSignatureInvalid(_) => "provider_signature_invalid",
            Self::OwnerMismatch => "owner_mismatch",
            Self::ContractExists(_) => "contract_exists",
            Self::InsufficientCapacity { .. } => "insufficient_capacity",
            Self::UnknownContract(_) => "unknown_contract",
            Self::ContractExpired { .. } => "contract_expired",
            Self::ContractNotActive(_) => "contract_not_active",
            Self::NotContractOwner => "not_contract_owner",
            Self::NotContractProvider(_) => "not_contract_provider",
            Self::UnknownUpload(_) => "unknown_upload",
            Self::NotUploadOwner { .. } => "not_upload_owner",
            Self::UnknownCredential(_) => "unknown_credential",
            Self::AlreadyRevoked(_) => "already_revoked",
            Self::ExpiryInPast { .. } => "expiry_in_past",
            Self::WrongEpoch { .. } => "wrong_epoch",
            Self::DuplicateSubmission(_) => "duplicate_submission",
            Self::ProofsNotDue(_) => "proofs_not_due",
            Self::UnknownRepairOrder(_) => "unknown_repair_order",
            Self::NotTheRepairer(_) => "not_the_repairer",
            Self::RepairOrderExpired { .. } => "repair_order_expired",
            Self::RepairAlreadyReported(_) => "repair_already_reported",
            Self::ProviderDraining(_) => "provider_draining",
            Self::NotASibling(_) => "not_a_sibling",
            Self::AlreadyAccused(_) => "already_accused",
            Self::NoGovernance => "no_governance",
            Self::NotAValidator(_) => "not_a_validator",
            Self::InvalidValidatorSet(_) => "invalid_validator_set",
            Self::EffectiveEpoch { .. } => "effective_epoch",
            Self::ValidatorChangePending(_) => "validator_change_pending",
            Self::UnknownProposal(_) => "unknown_proposal",
            Self::AlreadyApproved(_) => "already_approved",
        }
    }

    /// Whether the sender's nonce still counts as used: everything that got
    /// past the signature and nonce checks consumes the nonce, so a refused
    /// transaction cannot be replayed later when it might succeed.
    pub fn consumes_nonce(&self) -> bool {
        !matches!(
            self,
            Self::Encoding(_)
                | Self::WrongChain { .. }
                | Self::BadSignature
                | Self::NonceReused { .. }
                | Self::NonceSkipped { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason has a label among [`Rejection::LABELS`], and no two
    /// reasons share one (a new variant must be added to both).
    #[test]
    fn every_rejection_has_its_own_listed_label() {
        let (account, digest) = (AccountId([1; 32]), Digest([2; 32]));
        let all = [
            Rejection::Encoding(EncodingError::Malformed("x".into())),
            Rejection::WrongChain { expected: digest, found: digest },
            Rejection::BadSignature,
            Rejection::NonceReused { expected: 1, found: 1 },
            Rejection::NonceSkipped { expected: 1, found: 2 },
            Rejection::InvalidField("x".into()),
            Rejection::UnknownProvider(account),
            Rejection::ProviderSignatureInvalid(account),
            Rejection::OwnerMismatch,
            Rejection::ContractExists(digest),
            Rejection::InsufficientCapacity { provider: account, free_bytes: 0, needed_bytes: 1 },
            Rejection::UnknownContract(digest),
            Rejection::ContractExpired { contract: digest, at_epoch: 1 },
            Rejection::ContractNotActive(digest),
            Rejection::NotContractOwner,
            Rejection::NotContractProvider(digest),
            Rejection::UnknownUpload("x".into()),
            Rejection::NotUploadOwner { owner: account },
            Rejection::UnknownCredential(digest),
            Rejection::AlreadyRevoked(digest),
            Rejection::ExpiryInPast { expires_at_height: 1, height: 2 },
            Rejection::WrongEpoch { current: 1, found: 2 },
            Rejection::DuplicateSubmission(1),
            Rejection::ProofsNotDue(digest),
            Rejection::UnknownRepairOrder(digest),
            Rejection::NotTheRepairer(digest),
            Rejection::RepairOrderExpired { order: digest, deadline_epoch: 1 },
            Rejection::RepairAlreadyReported(digest),
            Rejection::ProviderDraining(account),
            Rejection::NotASibling(digest),
            Rejection::AlreadyAccused(digest),
            Rejection::NoGovernance,
            Rejection::NotAValidator(account),
            Rejection::InvalidValidatorSet("x".into()),
            Rejection::EffectiveEpoch { found: 1, earliest: 2, latest: 3 },
            Rejection::ValidatorChangePending(1),
            Rejection::UnknownProposal(digest),
            Rejection::AlreadyApproved(digest),
        ];
        let labels: std::collections::BTreeSet<&str> = all.iter().map(Rejection::label).collect();
        assert_eq!(labels.len(), all.len(), "each reason its own label");
        assert_eq!(labels, Rejection::LABELS.into_iter().collect(), "LABELS lists exactly the labels");
    }
}
