//! The proof rules: a provider's epoch schedule, its one submission per
//! epoch, and what each check does to a contract (strikes, suspects, loss).
//!
//! A submission answers the provider's schedule for the current epoch
//! ([`strand_proof_of_storage::schedule`]): one entry per challenged
//! contract, each the v1 answers to that contract's share of the
//! challenges. Every challenged contract gets a check: `Passed`,
//! `Failed(fault)`, or `Missed` when the submission has no entry for it.
//! Contracts no longer owing proofs (closed, lost or past their term since
//! the epoch began) are skipped. Cost: `O(c · log n)` reads to derive the
//! schedule of `c ≤ 48` challenges over a roster of `n` contracts, and `c`
//! chunk verifications.

use std::collections::BTreeMap;

use strand_proof_of_storage::challenge::Challenge;
use strand_proof_of_storage::schedule::{self, CHALLENGES_PER_PROVIDER_MAX, Scheduled};

use crate::rejection::Rejection;
use crate::roster::RosterView;
use crate::state::{ContractStatus, LedgerState, ProofRecord, ProofSlot, ProofStatus};
use crate::transaction::{ContractProof, ContractTerms};
use crate::types::{AccountId, Digest};

/// What the proof-of-storage rules check a contract's answers against.
pub fn commitment_of(id: &Digest, terms: &ContractTerms) -> strand_proof_of_storage::answers::Commitment {
    strand_proof_of_storage::answers::Commitment {
        contract: id.0,
        fragment_root: terms.fragment_root.0,
        fragment_count: terms.fragment_count,
        fragment_size: terms.fragment_size,
    }
}

/// `provider`'s challenges for `epoch` with the epoch's beacon, or `None`
/// before the beacon exists. Only meaningful for the current epoch: the
/// roster and suspects it reads are those of the state given.
pub fn schedule(state: &LedgerState, provider: &AccountId, epoch: u64) -> Option<(Digest, Vec<Scheduled>)> {
    let beacon = *state.beacons.get(&epoch)?;
    let roster = RosterView::of(state, provider, epoch);
    Some((beacon, schedule::derive(&beacon.0, &provider.0, epoch, &roster)))
}

/// The schedule's challenges grouped by contract, each group in schedule
/// order.
pub fn by_contract(scheduled: &[Scheduled]) -> BTreeMap<Digest, Vec<Challenge>> {
    let mut groups: BTreeMap<Digest, Vec<Challenge>> = BTreeMap::new();
    for challenge in scheduled {
        groups.entry(Digest(challenge.contract)).or_default().push(challenge.challenge);
    }
    groups
}

/// Applies a provider's submission for `epoch`.
pub fn submit(
    state: &mut LedgerState,
    sender: &AccountId,
    epoch: u64,
    proofs: &[ContractProof],
    hash: &Digest,
) -> Result<(), Rejection> {
    if !state.providers.contains(sender) {
        return Err(Rejection::UnknownProvider(*sender));
    }
    let current = state.epoch();
    if epoch != current {
        return Err(Rejection::WrongEpoch { current, found: epoch });
    }
    if state.proof_slots.contains(&(epoch, *sender)) {
        return Err(Rejection::DuplicateSubmission(epoch));
    }
    if proofs.len() > CHALLENGES_PER_PROVIDER_MAX as usize {
        return Err(Rejection::InvalidField(format!(
            "a submission answers at most {CHALLENGES_PER_PROVIDER_MAX} contracts"
        )));
    }
    let (_, scheduled) = schedule(state, sender, epoch)
        .ok_or_else(|| Rejection::InvalidField(format!("epoch {epoch} has no beacon yet")))?;
    let owed = by_contract(&scheduled);
    let mut answers: BTreeMap<Digest, &[u8]> = BTreeMap::new();
    for proof in proofs {
        if !owed.contains_key(&proof.contract) {
            return Err(Rejection::ProofsNotDue(proof.contract));
        }
        if answers.insert(proof.contract, &proof.answers).is_some() {
            return Err(Rejection::InvalidField(format!("contract {} is answered twice", proof.contract)));
        }
    }
    for (id, challenges) in &owed {
        let Some(contract) = state.contracts.get(id) else { continue };
        if !contract.owes_proofs_for(epoch) {
            state.suspects.remove(&(*sender, *id));
            continue;
        }
        let status = match answers.get(id) {
            Some(bytes) => {
                let commitment = commitment_of(id, &contract.terms);
                match strand_proof_of_storage::answers::verify(&commitment, challenges, bytes) {
                    Ok(()) => ProofStatus::Passed,
                    Err(fault) => ProofStatus::Failed(fault),
                }
            }
            None => ProofStatus::Missed,
        };
        record_check(state, epoch, id, status, *hash);
    }
    state.proof_slots.insert((epoch, *sender), ProofSlot::Submitted(*hash));
    state.providers.update(sender, |provider| {
        provider.liveness.submitted_epochs = provider.liveness.submitted_epochs.saturating_add(1);
        provider.liveness.missed_in_row = 0;
        provider.liveness.unresponsive_since = None;
    });
    Ok(())
}

/// Records one check of contract `id`: its tally (a pass there only; a
/// failure also gets a record with its reason), its strikes (consecutive
/// failures; a pass clears them), its place among its provider's suspects,
/// and its loss at the policy's limit.
fn record_check(state: &mut LedgerState, epoch: u64, id: &Digest, status: ProofStatus, transaction: Digest) {
    let height = state.height;
    if status != ProofStatus::Passed {
        state.proofs.insert((epoch, *id), ProofRecord { transaction: Some(transaction), at_height: height, status });
    }
    let mut lost = false;
    state.contracts.update(id, |contract| {
        let tally = &mut contract.proofs;
        tally.checked(epoch, status == ProofStatus::Passed);
        match status {
            ProofStatus::Passed => {
                tally.submitted += 1;
                tally.passed += 1;
                tally.strikes = 0;
            }
            ProofStatus::Failed(_) => {
                tally.submitted += 1;
                tally.failed += 1;
                tally.strikes += 1;
            }
            ProofStatus::Missed => {
                tally.missed += 1;
                tally.strikes += 1;
            }
        }
        if tally.strikes >= u64::from(contract.terms.proof_policy.strikes_max) {
            contract.status = ContractStatus::Lost { at_epoch: epoch };
            lost = true;
        }
    });
    let Some(contract) = state.contracts.get(id).cloned() else { return };
    if lost {
        state.count_status(Some(&ContractStatus::Active), &contract.status);
    }
    let key = (contract.holder, *id);
    if status == ProofStatus::Passed || lost {
        state.suspects.remove(&key);
    } else if !state.suspects.contains(&key) {
        state.suspects.insert(key, crate::state::Suspect { since: epoch, accusation: None });
    }
    if lost {
        crate::epoch::release(state, &contract);
        state.roster_changes.insert((epoch.saturating_add(1), *id), ());
        crate::repair::declared_lost(state, id, epoch);
    }
}

/// Whether `provider` submitted for `epoch`.
pub fn submitted(state: &LedgerState, provider: &AccountId, epoch: u64) -> bool {
    matches!(state.proof_slots.get(&(epoch, *provider)), Some(ProofSlot::Submitted(_)))
}
