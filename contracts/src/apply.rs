//! Applying transactions and epoch boundaries to the state. Pure: the only
//! inputs are the state and the block's contents.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::rejection::Rejection;
use crate::state::{
    AccessBatch, Account, Contract, ContractStatus, Credential, LedgerState, ProofRecord, ProofStatus, Provider, Upload,
};
use crate::transaction::{
    Body, ContractTerms, CredentialGrant, ENDPOINTS_MAX, ProviderRegistration, Scope, TEXT_BYTES_MAX, Transaction,
    transaction_hash,
};
use crate::types::{AccountId, Digest, Signature};

/// Largest sealed key material in a credential.
pub const SEALED_KEY_MATERIAL_BYTES_MAX: usize = 64 * 1024;
/// Most byte ranges in a credential's scope.
pub const SCOPE_RANGES_MAX: usize = 1024;
/// Most entries in a submit-proofs or access-receipts transaction.
pub const BATCH_ENTRIES_MAX: usize = 10_000;

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
    let hash = transaction_hash(bytes);
    let outcome = match check_and_apply(state, bytes, &hash) {
        Ok(()) => Outcome::Accepted,
        Err(rejection) => Outcome::Rejected(rejection),
    };
    Receipt { transaction: hash, height: state.height, outcome }
}

fn check_and_apply(state: &mut LedgerState, bytes: &[u8], hash: &Digest) -> Result<(), Rejection> {
    let transaction = Transaction::from_bytes(bytes).map_err(Rejection::Encoding)?;
    if transaction.chain != state.params.chain {
        return Err(Rejection::WrongChain { expected: state.params.chain, found: transaction.chain });
    }
    if !transaction.signature_valid() {
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
        Body::SubmitProofs { epoch, proofs } => {
            registered_provider(state, sender)?;
            claim_slot(state, sender, *epoch, hash, SlotKind::Proofs)?;
            if proofs.is_empty() || proofs.len() > BATCH_ENTRIES_MAX {
                return Err(Rejection::InvalidField(format!("a submission holds 1 to {BATCH_ENTRIES_MAX} proofs")));
            }
            for proof in proofs {
                record_proof(state, sender, *epoch, &proof.contract, &proof.answers, hash)?;
            }
            Ok(())
        }
        Body::RecordRepair { order, .. } => {
            // Orders are issued by the repair rules; until one exists there is
            // nothing a repairer can report against.
            Err(state.repair_orders.get(order).map_or(Rejection::UnknownRepairOrder(*order), |_| {
                Rejection::InvalidField("repair reports are accepted once the repair rules are in force".into())
            }))
        }
        Body::AccessReceipts { epoch, receipts } => {
            registered_provider(state, sender)?;
            claim_slot(state, sender, *epoch, hash, SlotKind::Access)?;
            if receipts.len() > BATCH_ENTRIES_MAX {
                return Err(Rejection::InvalidField(format!("at most {BATCH_ENTRIES_MAX} receipts per batch")));
            }
            let batch = AccessBatch { transaction: *hash, at_height: state.height, receipts: receipts.clone() };
            state.access.insert((*sender, *epoch), batch);
            Ok(())
        }
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
    let (registered_at_height, committed_bytes) = state
        .providers
        .get(sender)
        .map_or((state.height, 0), |provider| (provider.registered_at_height, provider.committed_bytes));
    state
        .providers
        .insert(*sender, Provider { registration: registration.clone(), registered_at_height, committed_bytes });
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
    if !provider_signature.verify(&terms.provider, &terms.signing_message(&state.params.chain)) {
        return Err(Rejection::ProviderSignatureInvalid(terms.provider));
    }
    if terms.term_epochs == 0 {
        return Err(Rejection::InvalidField("a contract's term is at least one epoch".into()));
    }
    if terms.fragment_count == 0 || terms.fragment_size == 0 || terms.data_shards == 0 || terms.parity_shards == 0 {
        return Err(Rejection::InvalidField("fragment count and size, k and m must be positive".into()));
    }
    if terms.proof_policy.challenges_per_epoch == 0 || terms.proof_policy.strikes_max == 0 {
        return Err(Rejection::InvalidField("a proof policy needs at least one challenge and one strike".into()));
    }
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
    let mut upload =
        state.uploads.get(&terms.upload).cloned().unwrap_or(Upload { owner: *sender, contracts: Vec::new() });
    if upload.owner != *sender {
        return Err(Rejection::NotUploadOwner { owner: upload.owner });
    }
    upload.contracts.push(id);
    state.uploads.insert(terms.upload, upload);
    state.providers.update(&terms.provider, |provider| provider.committed_bytes += needed_bytes);
    let contract = Contract {
        terms: terms.clone(),
        opened_at_height: state.height,
        opened_in_epoch: state.epoch(),
        status: ContractStatus::Active,
        proofs: Default::default(),
    };
    state.contracts.insert(id, contract);
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
    let (provider, bytes) = (contract.terms.provider, contract.bytes());
    let height = state.height;
    state.contracts.update(id, |contract| contract.status = ContractStatus::Closed { at_height: height });
    state
        .providers
        .update(&provider, |provider| provider.committed_bytes = provider.committed_bytes.saturating_sub(bytes));
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

enum SlotKind {
    Proofs,
    Access,
}

/// Claims a provider's one slot for `epoch`: proofs only during the epoch
/// they answer (the deadline is the epoch's last block); access receipts for
/// the current or the previous epoch (reads are batched, then reported).
fn claim_slot(
    state: &mut LedgerState,
    sender: &AccountId,
    epoch: u64,
    hash: &Digest,
    kind: SlotKind,
) -> Result<(), Rejection> {
    let current = state.epoch();
    let open = match kind {
        SlotKind::Proofs => epoch == current,
        SlotKind::Access => epoch == current || epoch + 1 == current,
    };
    if !open {
        return Err(Rejection::WrongEpoch { current, found: epoch });
    }
    let key = (*sender, epoch);
    let taken = match kind {
        SlotKind::Proofs => state.proof_slots.contains(&key),
        SlotKind::Access => state.access.contains(&key),
    };
    if taken {
        return Err(Rejection::DuplicateSubmission(epoch));
    }
    if let SlotKind::Proofs = kind {
        state.proof_slots.insert(key, *hash);
    }
    Ok(())
}

fn record_proof(
    state: &mut LedgerState,
    sender: &AccountId,
    epoch: u64,
    id: &Digest,
    answers: &[u8],
    hash: &Digest,
) -> Result<(), Rejection> {
    let contract = active_contract(state, id)?;
    if contract.terms.provider != *sender {
        return Err(Rejection::NotContractProvider(*id));
    }
    if !contract.owes_proofs_for(epoch) || state.proofs.contains(&(*id, epoch)) {
        return Err(Rejection::ProofsNotDue(*id));
    }
    let beacon =
        state.beacons.get(&epoch).ok_or_else(|| Rejection::InvalidField(format!("epoch {epoch} has no beacon yet")))?;
    let commitment = commitment_of(id, &contract.terms);
    let verdict = strand_proof_of_storage::answers::verify(&commitment, &beacon.0, epoch, answers);
    let status = match verdict {
        Ok(()) => ProofStatus::Passed,
        Err(fault) => ProofStatus::Failed(fault),
    };
    state.proofs.insert((*id, epoch), ProofRecord { transaction: Some(*hash), at_height: state.height, status });
    state.contracts.update(id, |contract| {
        contract.proofs.submitted += 1;
        match status {
            ProofStatus::Passed => contract.proofs.passed += 1,
            _ => {
                contract.proofs.failed += 1;
                contract.proofs.strikes += 1;
            }
        }
    });
    Ok(())
}

/// What the proof-of-storage rules check a contract's answers against.
pub fn commitment_of(id: &Digest, terms: &ContractTerms) -> strand_proof_of_storage::answers::Commitment {
    strand_proof_of_storage::answers::Commitment {
        contract: id.0,
        fragment_root: terms.fragment_root.0,
        fragment_count: terms.fragment_count,
        fragment_size: terms.fragment_size,
        challenges: terms.proof_policy.challenges_per_epoch,
    }
}

/// Work at the first block of an epoch: record the beacon, count the
/// previous epoch's missing proofs as strikes, declare contracts past their
/// strike limit lost, and expire contracts whose term ended.
pub fn begin_epoch(state: &mut LedgerState, epoch: u64, beacon: Digest) {
    state.beacons.insert(epoch, beacon);
    let Some(previous) = epoch.checked_sub(1) else { return };
    let mut changes = Vec::new();
    let mut missed = Vec::new();
    for (id, contract) in state.contracts.iter() {
        if contract.status != ContractStatus::Active {
            continue;
        }
        let mut updated = contract.clone();
        if contract.owes_proofs_for(previous) && !state.proofs.contains(&(*id, previous)) {
            updated.proofs.missed += 1;
            updated.proofs.strikes += 1;
            missed.push(*id);
        }
        if updated.proofs.strikes >= u64::from(contract.terms.proof_policy.strikes_max) {
            updated.status = ContractStatus::Lost { at_epoch: epoch };
        } else if epoch > contract.last_epoch() {
            updated.status = ContractStatus::Expired { at_epoch: epoch };
        }
        if updated != *contract {
            changes.push((*id, updated));
        }
    }
    let height = state.height;
    for id in missed {
        state
            .proofs
            .insert((id, previous), ProofRecord { transaction: None, at_height: height, status: ProofStatus::Missed });
    }
    for (id, contract) in changes {
        if contract.status != ContractStatus::Active {
            let bytes = contract.bytes();
            state.providers.update(&contract.terms.provider, |provider| {
                provider.committed_bytes = provider.committed_bytes.saturating_sub(bytes);
            });
        }
        state.contracts.insert(id, contract);
    }
}
