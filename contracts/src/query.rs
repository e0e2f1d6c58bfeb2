//! Questions nodes and clients answer from their own replica.

use strand_proof_of_storage::merkle::{self, InclusionProof};

use crate::state::{Contract, ContractStatus, Credential, LedgerState, Provider};
use crate::transaction::Scope;
use crate::types::{AccountId, Digest, UploadKey};

/// The contracts of an upload, in the order opened.
pub fn contracts_of_upload(state: &LedgerState, upload: &UploadKey) -> Vec<(Digest, Contract)> {
    let Some(upload) = state.uploads.get(upload) else { return Vec::new() };
    upload.contracts.iter().filter_map(|id| state.contracts.get(id).map(|contract| (*id, contract.clone()))).collect()
}

/// The contracts an account owns or provides, by id.
pub fn contracts_of_account(state: &LedgerState, account: &AccountId) -> Vec<(Digest, Contract)> {
    state
        .contracts
        .iter()
        .filter(|(_, contract)| contract.terms.owner == *account || contract.holder == *account)
        .map(|(id, contract)| (*id, contract.clone()))
        .collect()
}

/// The credentials an account granted or holds.
pub fn credentials_of_account(state: &LedgerState, account: &AccountId) -> Vec<(Digest, Credential)> {
    state
        .credentials
        .iter()
        .filter(|(_, credential)| {
            credential.grant.grantee == *account
                || state.uploads.get(&credential.grant.upload).is_some_and(|upload| upload.owner == *account)
        })
        .map(|(id, credential)| (*id, credential.clone()))
        .collect()
}

/// A claim that a fragment sits at `index` of a contract's fragment list.
#[derive(Clone, Debug)]
pub struct FragmentMembership {
    /// Position in the list the root commits to.
    pub index: usize,
    /// The fragment id.
    pub fragment: [u8; 32],
    /// The Merkle proof.
    pub proof: InclusionProof,
}

/// The active contract of `provider` whose root holds the fragment.
pub fn contract_holding(state: &LedgerState, provider: &AccountId, membership: &FragmentMembership) -> Option<Digest> {
    state
        .contracts
        .iter()
        .filter(|(_, contract)| contract.holder == *provider && contract.status == ContractStatus::Active)
        .find(|(_, contract)| {
            merkle::verify(
                &contract.terms.fragment_root.0,
                &[(membership.index, membership.fragment)],
                contract.terms.fragment_count as usize,
                &membership.proof,
            )
        })
        .map(|(id, _)| *id)
}

/// Which failure domains to look in; `None` matches anything.
#[derive(Clone, Debug, Default)]
pub struct DomainFilter {
    /// Organisation.
    pub organisation: Option<String>,
    /// Site.
    pub site: Option<String>,
    /// Jurisdiction.
    pub jurisdiction: Option<String>,
}

/// Providers matching `filter` with at least `free_bytes_min` free, most
/// free capacity first.
pub fn providers_by_domain(
    state: &LedgerState,
    filter: &DomainFilter,
    free_bytes_min: u64,
) -> Vec<(AccountId, Provider)> {
    let matches = |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|wanted| wanted == actual);
    let mut providers: Vec<(AccountId, Provider)> = state
        .providers
        .iter()
        .filter(|(_, provider)| {
            let domain = &provider.registration.domain;
            matches(&filter.organisation, &domain.organisation)
                && matches(&filter.site, &domain.site)
                && matches(&filter.jurisdiction, &domain.jurisdiction)
                && provider.free_bytes() >= free_bytes_min
        })
        .map(|(id, provider)| (*id, provider.clone()))
        .collect();
    providers.sort_by(|(a_id, a), (b_id, b)| b.free_bytes().cmp(&a.free_bytes()).then(a_id.cmp(b_id)));
    providers
}

/// Why a read is refused under a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such credential.
    #[error("no credential {0}")]
    NoCredential(Digest),
    /// The credential is someone else's.
    #[error("credential is held by another key")]
    NotGrantee,
    /// The credential is for another upload.
    #[error("credential is for another upload")]
    WrongUpload,
    /// Past its expiry height.
    #[error("credential expired at height {0}")]
    Expired(u64),
    /// Revoked.
    #[error("credential revoked at height {0}")]
    Revoked(u64),
    /// The fragment is not in the credential's scope.
    #[error("fragment is outside the credential's scope")]
    OutOfScope,
}

/// Whether `requester` may read from `upload` under `credential` at
/// `height`, and for a range scope whether `fragment` is in scope.
pub fn credential_decision<'a>(
    state: &'a LedgerState,
    credential: &Digest,
    requester: &AccountId,
    upload: &UploadKey,
    fragment: Option<&FragmentMembership>,
    height: u64,
) -> Result<&'a Credential, Refusal> {
    let record = state.credentials.get(credential).ok_or(Refusal::NoCredential(*credential))?;
    if record.grant.grantee != *requester {
        return Err(Refusal::NotGrantee);
    }
    if record.grant.upload != *upload {
        return Err(Refusal::WrongUpload);
    }
    if let Some(revoked) = record.revoked_at_height.filter(|revoked| *revoked <= height) {
        return Err(Refusal::Revoked(revoked));
    }
    if height > record.grant.expires_at_height {
        return Err(Refusal::Expired(record.grant.expires_at_height));
    }
    if let Scope::Ranges { fragments_root, fragment_count, .. } = &record.grant.scope {
        let in_scope = fragment.is_some_and(|membership| {
            merkle::verify(
                &fragments_root.0,
                &[(membership.index, membership.fragment)],
                *fragment_count as usize,
                &membership.proof,
            )
        });
        if !in_scope {
            return Err(Refusal::OutOfScope);
        }
    }
    Ok(record)
}
