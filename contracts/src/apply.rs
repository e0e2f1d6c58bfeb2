//! Applying transactions and epoch boundaries to the state. Pure: the only
//! inputs are the state and the block's contents.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::rejection::Rejection;
use crate::state::{AccessBatch, Account, Contract, ContractStatus, Credential, LedgerState, Provider, Upload};
use crate::transaction::{
    AccessReceipt, Body, ContractTerms, CredentialGrant, ENDPOINTS_MAX, ProviderRegistration, Scope, TEXT_BYTES_MAX,
    Transaction, transaction_hash,
};
use crate::types::{AccountId, Digest, Signature};

/// Largest sealed key material in a credential.
pub const SEALED_KEY_MATERIAL_BYTES_MAX: usize = 64 * 1024;
/// Most byte ranges in a credential's scope.
pub const SCOPE_RANGES_MAX: usize = 1024;
/// Most entries in an access-receipts transaction.
pub const BATCH_ENTRIES_MAX: usize = 10_000;
/// Largest `strikes_max` a contract may set.
pub const STRIKES_MAX_LIMIT: u16 = 100;
/// Most shards (k + m) in a stripe.
pub const STRIPE_SHARDS_MAX: u32 = 256;

/// The outcome of one transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Outcome {
    /// Applied.
    Accepted,
    /// Refused, state unchanged (except the nonce, see
    /// [`Rejection::consumes_nonce`]).
    Rejected(Rejection),
}

/// What happened to one transaction of a block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Receipt {
    /// Hash of the transaction's bytes.
    pub transaction: Digest,
    /// Height of the block.
    pub height: u64,
    /// Accepted or why not.
    pub outcome: Outcome,
}

/// The id a credential gets from the transaction that grants it.
pub fn credential_id(transaction: &Digest) -> Digest {
    Digest::of("strand credential id v1", &[&transaction.0])
}

/// Applies one transaction's bytes to `state` (whose `height` is the block
/// being applied), returning its receipt. Never panics on any bytes.
pub fn apply_transaction(state: &mut LedgerState, bytes: &[u8]) -> Receipt {
    apply_transaction_with(state, bytes, None)
}

/// Transactions whose signature this process already checked, by hash of
/// their bytes (a consortium validator records what its mempool admitted,
/// so executing a proposal does not verify the same signatures again).
/// Bounded: the oldest are forgotten first. Only ever a shortcut: a
/// transaction not in it is verified.
#[derive(Debug)]
pub struct VerifiedSignatures {
    inner: std::sync::Mutex<(std::collections::HashSet<Digest>, std::collections::VecDeque<Digest>)>,
    capacity: usize,
}

impl VerifiedSignatures {
    /// At most `capacity` hashes (32 bytes each, and as much again for the
    /// set).
    pub fn new(capacity: usize) -> Self {
        Self { inner: std::sync::Mutex::new(Default::default()), capacity: capacity.max(1) }
    }

    /// Records that the transaction with `hash` has a valid signature.
    pub fn insert(&self, hash: Digest) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (set, order) = &mut *inner;
        if set.insert(hash) {
            order.push_back(hash);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }

    /// Whether it was recorded.
    pub fn contains(&self, hash: &Digest) -> bool {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0.contains(hash)
    }
}

/// [`apply_transaction`], skipping the sender's signature check for a
/// transaction `verified` holds (the bytes, signature included, hash to the
/// same digest, so it is the same valid signature).
pub fn apply_transaction_with(state: &mut LedgerState, bytes: &[u8], verified: Option<&VerifiedSignatures>) -> Receipt {
    let hash = transaction_hash(bytes);
    let known = verified.is_some_and(|verified| verified.contains(&hash));
    let outcome = match check_and_apply(state, bytes, &hash, known) {
        Ok(()) => Outcome::Accepted,
        Err(rejection) => Outcome::Rejected(rejection),
    };
    Receipt { transaction: hash, height: state.height, outcome }
}

fn check_and_apply(
    state: &mut LedgerState,
    bytes: &[u8],
    hash: &Digest,
    signature_known: bool,
) -> Result<(), Rejection> {
    let transaction = Transaction::from_bytes(bytes).map_err(Rejection::Encoding)?;
    if transaction.chain != state.params.chain {
        return Err(Rejection::WrongChain { expected: state.params.chain, found: transaction.chain });
    }
    if !signature_known && !transaction.signature_valid() {
        return Err(Rejection::BadSignature);
    }
    let expected = state.accounts.get(&transaction.sender).map_or(0, |account| account.nonce) + 1;
    if transaction.nonce < expected {
        return Err(Rejection::NonceReused { expected, found: transaction.nonce });
    }
    if transaction.nonce > expected {
        return Err(Rejection::NonceSkipped { expected, found: transaction.nonce });
    }
    // From here on the nonce is used, whatever the body's fate: apply the
    // body to a copy and keep it only if it succeeds.
    state.accounts.insert(transaction.sender, Account { nonce: transaction.nonce });
    let mut next = state.clone();
    apply_body(&mut next, &transaction.sender, &transaction.body, hash)?;
    *state = next;
    Ok(())
}

fn apply_body(state: &mut LedgerState, sender: &AccountId, body: &Body, hash: &Digest) -> Result<(), Rejection> {
    match body {
        Body::RegisterProvider(registration) => register_provider(state, sender, registration),
        Body::OpenContract { terms, provider_signature } => open_contract(state, sender, terms, provider_signature),
        Body::CloseContract { contract } => close_contract(state, sender, contract),
        Body::GrantCredential(grant) => grant_credential(state, sender, grant, hash),
        Body::RevokeCredential { credential } => revoke_credential(state, sender, credential),
        Body::SubmitProofs { epoch, proofs } => crate::proofs::submit(state, sender, *epoch, proofs, hash),
        Body::RecordRepair { order, contract } => crate::repair::report(state, sender, order, contract),
        Body::ReportBadSibling { order, contract, fragment, chunk } => {
            crate::repair::accuse(state, sender, order, contract, (*fragment, *chunk), hash)
        }
        Body::AccessReceipts { epoch, receipts } => access_receipts(state, sender, *epoch, receipts, hash),
        Body::Drain => crate::repair::drain(state, sender),
        Body::ProposeValidators { set, effective_epoch } => {
            crate::governance::propose(state, sender, set, *effective_epoch)
        }
        Body::ApproveValidators { proposal } => crate::governance::approve(state, sender, proposal),
    }
}

fn text_field(name: &str, value: &str) -> Result<(), Rejection> {
    if value.len() > TEXT_BYTES_MAX {
        return Err(Rejection::InvalidField(format!("{name} is longer than {TEXT_BYTES_MAX} bytes")));
    }
    Ok(())
}

fn register_provider(
    state: &mut LedgerState,
    sender: &AccountId,
    registration: &ProviderRegistration,
) -> Result<(), Rejection> {
    if registration.endpoints.is_empty() || registration.endpoints.len() > ENDPOINTS_MAX {
        return Err(Rejection::InvalidField(format!("a provider lists 1 to {ENDPOINTS_MAX} endpoints")));
    }
    for endpoint in &registration.endpoints {
        text_field("endpoint", endpoint)?;
    }
    text_field("organisation", &registration.domain.organisation)?;
    text_field("site", &registration.domain.site)?;
    text_field("jurisdiction", &registration.domain.jurisdiction)?;
    let provider = match state.providers.get(sender) {
        // An update keeps everything the ledger recorded of the provider.
        Some(existing) => Provider { registration: registration.clone(), ..existing.clone() },
        None => {
            let index = u32::try_from(state.provider_index.len())
                .map_err(|_| Rejection::InvalidField("the ledger holds no more providers".into()))?;
            state.provider_index.insert(index, *sender);
            Provider::registered(registration.clone(), state.height, index)
        }
    };
    state.providers.insert(*sender, provider);
    Ok(())
}

fn registered_provider<'a>(state: &'a LedgerState, account: &AccountId) -> Result<&'a Provider, Rejection> {
    state.providers.get(account).ok_or(Rejection::UnknownProvider(*account))
}

fn open_contract(
    state: &mut LedgerState,
    sender: &AccountId,
    terms: &ContractTerms,
    provider_signature: &Signature,
) -> Result<(), Rejection> {
    if terms.owner != *sender {
        return Err(Rejection::OwnerMismatch);
    }
    let provider = registered_provider(state, &terms.provider)?;
    if provider.draining_since.is_some() {
        return Err(Rejection::ProviderDraining(terms.provider));
    }
    if !provider_signature.verify(&terms.provider, &terms.signing_message(&state.params.chain)) {
        return Err(Rejection::ProviderSignatureInvalid(terms.provider));
    }
    if terms.term_epochs == 0 {
        return Err(Rejection::InvalidField("a contract's term is at least one epoch".into()));
    }
    check_terms(terms)?;
    let id = terms.id();
    if state.contracts.contains(&id) {
        return Err(Rejection::ContractExists(id));
    }
    let needed_bytes = u64::from(terms.fragment_count) * u64::from(terms.fragment_size);
    if provider.free_bytes() < needed_bytes {
        return Err(Rejection::InsufficientCapacity {
            provider: terms.provider,
            free_bytes: provider.free_bytes(),
            needed_bytes,
        });
    }
    let mut upload = state.uploads.get(&terms.upload).cloned().unwrap_or(Upload {
        owner: *sender,
        contracts: Vec::new(),
        lost: 0,
        queued: 0,
    });
    if upload.owner != *sender {
        return Err(Rejection::NotUploadOwner { owner: upload.owner });
    }
    upload.contracts.push(id);
    state.uploads.insert(terms.upload, upload);
    state.providers.update(&terms.provider, |provider| provider.committed_bytes += needed_bytes);
    crate::repair::opened(state, &terms.upload, &terms.provider);
    let contract = Contract::opened(terms.clone(), state.height, state.epoch());
    // It joins its provider's roster at the next epoch's first block (proofs
    // are owed from then) and expires after its term.
    let joins = contract.first_proof_epoch();
    let expires = contract.last_epoch().saturating_add(1);
    state.contracts.insert(id, contract);
    state.count_status(None, &ContractStatus::Active);
    state.roster_changes.insert((joins, id), ());
    state.expiries.insert((expires, id), ());
    Ok(())
}

/// The ledger's own bounds on terms, whatever a provider accepts: they keep
/// every proof answer, and so every provider's epoch submission, bounded
/// (`strand_proof_of_storage::policy`).
fn check_terms(terms: &ContractTerms) -> Result<(), Rejection> {
    use strand_proof_of_storage::policy::{FRAGMENT_BYTES_MAX, FRAGMENTS_PER_CONTRACT_MAX};
    use strand_proof_of_storage::schedule::CHALLENGES_PER_PROVIDER_MAX;
    if terms.fragment_count == 0 || terms.fragment_count > FRAGMENTS_PER_CONTRACT_MAX {
        return Err(Rejection::InvalidField(format!("a contract holds 1 to {FRAGMENTS_PER_CONTRACT_MAX} fragments")));
    }
    if terms.fragment_size == 0 || terms.fragment_size > FRAGMENT_BYTES_MAX {
        return Err(Rejection::InvalidField(format!("fragments are 1 to {FRAGMENT_BYTES_MAX} bytes")));
    }
    let shards = u32::from(terms.data_shards) + u32::from(terms.parity_shards);
    if terms.data_shards == 0 || terms.parity_shards == 0 || shards > STRIPE_SHARDS_MAX {
        return Err(Rejection::InvalidField(format!("k and m must be positive and k + m at most {STRIPE_SHARDS_MAX}")));
    }
    let policy = terms.proof_policy;
    if policy.challenges_per_epoch == 0 || u32::from(policy.challenges_per_epoch) > CHALLENGES_PER_PROVIDER_MAX {
        return Err(Rejection::InvalidField(format!(
            "a proof policy asks 1 to {CHALLENGES_PER_PROVIDER_MAX} challenges per epoch"
        )));
    }
    if policy.strikes_max == 0 || policy.strikes_max > STRIKES_MAX_LIMIT {
        return Err(Rejection::InvalidField(format!("a proof policy allows 1 to {STRIKES_MAX_LIMIT} strikes")));
    }
    Ok(())
}

fn active_contract<'a>(state: &'a LedgerState, id: &Digest) -> Result<&'a Contract, Rejection> {
    let contract = state.contracts.get(id).ok_or(Rejection::UnknownContract(*id))?;
    match contract.status {
        ContractStatus::Active => Ok(contract),
        ContractStatus::Expired { at_epoch } => Err(Rejection::ContractExpired { contract: *id, at_epoch }),
        ContractStatus::Closed { .. } | ContractStatus::Lost { .. } => Err(Rejection::ContractNotActive(*id)),
    }
}

fn close_contract(state: &mut LedgerState, sender: &AccountId, id: &Digest) -> Result<(), Rejection> {
    let contract = active_contract(state, id)?;
    if contract.terms.owner != *sender {
        return Err(Rejection::NotContractOwner);
    }
    let contract = contract.clone();
    let height = state.height;
    state.contracts.update(id, |contract| contract.status = ContractStatus::Closed { at_height: height });
    state.count_status(Some(&ContractStatus::Active), &ContractStatus::Closed { at_height: height });
    crate::epoch::release(state, &contract);
    // It leaves its provider's roster at the next epoch's first block (the
    // roster stays fixed through an epoch; until then it is owed nothing).
    state.roster_changes.insert((state.epoch().saturating_add(1), *id), ());
    Ok(())
}

fn upload_owner(state: &LedgerState, upload: &[u8; 16]) -> Result<AccountId, Rejection> {
    state.uploads.get(upload).map(|upload| upload.owner).ok_or_else(|| Rejection::UnknownUpload(hex::encode(upload)))
}

fn grant_credential(
    state: &mut LedgerState,
    sender: &AccountId,
    grant: &CredentialGrant,
    hash: &Digest,
) -> Result<(), Rejection> {
    let owner = upload_owner(state, &grant.upload)?;
    if owner != *sender {
        return Err(Rejection::NotUploadOwner { owner });
    }
    if grant.expires_at_height <= state.height {
        return Err(Rejection::ExpiryInPast { expires_at_height: grant.expires_at_height, height: state.height });
    }
    if grant.purpose.len() > 4 * TEXT_BYTES_MAX {
        return Err(Rejection::InvalidField(format!("purpose is longer than {} bytes", 4 * TEXT_BYTES_MAX)));
    }
    if grant.sealed_key_material.len() > SEALED_KEY_MATERIAL_BYTES_MAX {
        return Err(Rejection::InvalidField(format!(
            "sealed key material exceeds {SEALED_KEY_MATERIAL_BYTES_MAX} bytes"
        )));
    }
    if grant.grantee.public_key().is_none() {
        return Err(Rejection::InvalidField("grantee is not a valid ed25519 key".into()));
    }
    if let Scope::Ranges { ranges, fragment_count, .. } = &grant.scope {
        let well_formed = ranges.iter().all(|(start, end)| start < end);
        if ranges.is_empty() || ranges.len() > SCOPE_RANGES_MAX || !well_formed || *fragment_count == 0 {
            return Err(Rejection::InvalidField(format!(
                "a range scope holds 1 to {SCOPE_RANGES_MAX} non-empty ranges and at least one fragment"
            )));
        }
    }
    let credential = Credential { grant: grant.clone(), granted_at_height: state.height, revoked_at_height: None };
    state.credentials.insert(credential_id(hash), credential);
    Ok(())
}

fn revoke_credential(state: &mut LedgerState, sender: &AccountId, id: &Digest) -> Result<(), Rejection> {
    let credential = state.credentials.get(id).ok_or(Rejection::UnknownCredential(*id))?;
    let owner = upload_owner(state, &credential.grant.upload)?;
    if owner != *sender {
        return Err(Rejection::NotUploadOwner { owner });
    }
    if credential.revoked_at_height.is_some() {
        return Err(Rejection::AlreadyRevoked(*id));
    }
    let height = state.height;
    state.credentials.update(id, |credential| credential.revoked_at_height = Some(height));
    Ok(())
}

/// Records a provider's access receipts for `epoch`: the ledger takes one
/// batch per provider and epoch, for the current or the previous epoch
/// (reads are counted through an epoch, then reported).
fn access_receipts(
    state: &mut LedgerState,
    sender: &AccountId,
    epoch: u64,
    receipts: &[AccessReceipt],
    hash: &Digest,
) -> Result<(), Rejection> {
    registered_provider(state, sender)?;
    let current = state.epoch();
    if epoch != current && epoch.checked_add(1) != Some(current) {
        return Err(Rejection::WrongEpoch { current, found: epoch });
    }
    if state.access.contains(&(epoch, *sender)) {
        return Err(Rejection::DuplicateSubmission(epoch));
    }
    if receipts.len() > BATCH_ENTRIES_MAX {
        return Err(Rejection::InvalidField(format!("at most {BATCH_ENTRIES_MAX} receipts per batch")));
    }
    let batch = AccessBatch { transaction: *hash, at_height: state.height, receipts: receipts.to_vec() };
    state.access.insert((epoch, *sender), batch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_signatures_are_bounded_oldest_first() {
        let verified = VerifiedSignatures::new(2);
        for byte in 1..=3 {
            verified.insert(Digest([byte; 32]));
        }
        verified.insert(Digest([3; 32]));
        assert!(!verified.contains(&Digest([1; 32])), "the oldest went first");
        assert!(verified.contains(&Digest([2; 32])) && verified.contains(&Digest([3; 32])));
    }
}
