//! Changing a consortium's validators: a current validator proposes a new
//! set (keys, organisations, addresses, and the beacon key its members hold
//! shares of) effective at a stated epoch; when more than two thirds of the
//! current validators have approved it, the change is scheduled, and it
//! takes effect at that epoch's first block. From there that block and every
//! later one is finalised by the new set ([`LedgerState::validators_at`]),
//! and the epoch's beacon is the new set's.
//!
//! - **Who:** only the validators of the current set propose and approve; a
//!   proposal counts as its proposer's approval, and approving twice counts
//!   once.
//! - **When:** the effective epoch is at least [`LEAD_EPOCHS`] after the
//!   current one when proposed and when the last approval arrives (the
//!   change is final, and every validator has prepared the new epoch, before
//!   it starts), and at most [`HORIZON_EPOCHS`] after. One change is
//!   scheduled at a time.
//! - **Bounded:** each validator has at most one open proposal (a new one
//!   replaces its own), so at most `n` proposals of at most `n` approvals
//!   each; proposals that can no longer take effect in time are dropped at
//!   each epoch's first block, and all of them when a change takes effect
//!   (their approvals were by the set that left).
//! - A single sequencer's chain has no governance: its sequencer changes
//!   only with a new genesis.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::block::{Ordering, ValidatorSet};
use crate::encoding;
use crate::rejection::Rejection;
use crate::state::LedgerState;
use crate::types::{AccountId, Digest};

/// Least epochs between the current epoch and a change's effective epoch.
pub const LEAD_EPOCHS: u64 = 2;
/// Most epochs between the current epoch and a change's effective epoch.
pub const HORIZON_EPOCHS: u64 = 1_000;

/// A proposed validator set, with its approvals so far.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorProposal {
    /// The set proposed.
    pub set: ValidatorSet,
    /// The epoch whose first block it finalises.
    pub effective_epoch: u64,
    /// The validator that proposed it.
    pub proposer: AccountId,
    /// Current validators that approved it, the proposer first.
    pub approvals: Vec<AccountId>,
    /// Height of the block that carried the proposal.
    pub proposed_at_height: u64,
}

/// An approved change, waiting for its epoch.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorChange {
    /// The proposal it came from.
    pub proposal: Digest,
    /// The epoch whose first block the new set finalises.
    pub effective_epoch: u64,
    /// The new set.
    pub set: ValidatorSet,
}

/// The id of a proposal of `set` effective at `effective_epoch`: the same
/// change proposed twice is one proposal.
pub fn proposal_id(set: &ValidatorSet, effective_epoch: u64) -> Digest {
    Digest::of("strand validator proposal v1", &[&encoding::encode(&(set, effective_epoch))])
}

/// Whether `approvals` (distinct accounts) are more than two thirds of
/// `set`.
pub fn approved(set: &ValidatorSet, approvals: &[AccountId]) -> bool {
    let approving = approvals.iter().filter(|account| set.contains(account)).count();
    approving * 3 > set.validators.len() * 2
}

fn current_validator(state: &LedgerState, sender: &AccountId) -> Result<(), Rejection> {
    if state.validators.ordering != Ordering::Simplex {
        return Err(Rejection::NoGovernance);
    }
    if !state.validators.contains(sender) {
        return Err(Rejection::NotAValidator(*sender));
    }
    Ok(())
}

fn in_time(state: &LedgerState, effective_epoch: u64) -> Result<(), Rejection> {
    let current = state.epoch();
    let earliest = current.saturating_add(LEAD_EPOCHS);
    let latest = current.saturating_add(HORIZON_EPOCHS);
    if effective_epoch < earliest || effective_epoch > latest {
        return Err(Rejection::EffectiveEpoch { found: effective_epoch, earliest, latest });
    }
    if let Some(change) = &state.validator_change {
        return Err(Rejection::ValidatorChangePending(change.effective_epoch));
    }
    Ok(())
}

/// `ProposeValidators`: checks the set and the timing, replaces the
/// sender's own open proposal, and counts as its approval (which may be
/// enough on its own in a small set).
pub fn propose(
    state: &mut LedgerState,
    sender: &AccountId,
    set: &ValidatorSet,
    effective_epoch: u64,
) -> Result<(), Rejection> {
    current_validator(state, sender)?;
    in_time(state, effective_epoch)?;
    set.check_consortium().map_err(|error| Rejection::InvalidValidatorSet(error.to_string()))?;
    let id = proposal_id(set, effective_epoch);
    if state.validator_proposals.contains(&id) {
        // The same change, proposed again: an approval.
        return approve(state, sender, &id);
    }
    let own: Vec<Digest> = state
        .validator_proposals
        .iter()
        .filter(|(_, proposal)| proposal.proposer == *sender)
        .map(|(id, _)| *id)
        .collect();
    for old in own {
        state.validator_proposals.remove(&old);
    }
    let proposal = ValidatorProposal {
        set: set.clone(),
        effective_epoch,
        proposer: *sender,
        approvals: vec![*sender],
        proposed_at_height: state.height,
    };
    state.validator_proposals.insert(id, proposal);
    schedule_if_approved(state, &id);
    Ok(())
}

/// `ApproveValidators`: the sender's approval of an open proposal.
pub fn approve(state: &mut LedgerState, sender: &AccountId, id: &Digest) -> Result<(), Rejection> {
    current_validator(state, sender)?;
    let proposal = state.validator_proposals.get(id).ok_or(Rejection::UnknownProposal(*id))?;
    in_time(state, proposal.effective_epoch)?;
    if proposal.approvals.contains(sender) {
        return Err(Rejection::AlreadyApproved(*id));
    }
    state.validator_proposals.update(id, |proposal| proposal.approvals.push(*sender));
    schedule_if_approved(state, id);
    Ok(())
}

fn schedule_if_approved(state: &mut LedgerState, id: &Digest) {
    let Some(proposal) = state.validator_proposals.get(id) else { return };
    if !approved(&state.validators, &proposal.approvals) {
        return;
    }
    state.validator_change =
        Some(ValidatorChange { proposal: *id, effective_epoch: proposal.effective_epoch, set: proposal.set.clone() });
    let open: Vec<Digest> = state.validator_proposals.iter().map(|(id, _)| *id).collect();
    for id in open {
        state.validator_proposals.remove(&id);
    }
}

/// At `epoch`'s first block: the scheduled change takes effect if this is
/// its epoch, and proposals that can no longer take effect in time are
/// dropped. O(open proposals) ≤ O(validators).
pub fn begin_epoch(state: &mut LedgerState, epoch: u64) {
    if state.validator_change.as_ref().is_some_and(|change| change.effective_epoch <= epoch) {
        if let Some(change) = state.validator_change.take() {
            state.validators = change.set;
        }
        let open: Vec<Digest> = state.validator_proposals.iter().map(|(id, _)| *id).collect();
        for id in open {
            state.validator_proposals.remove(&id);
        }
        return;
    }
    let late: Vec<Digest> = state
        .validator_proposals
        .iter()
        .filter(|(_, proposal)| proposal.effective_epoch < epoch.saturating_add(LEAD_EPOCHS))
        .map(|(id, _)| *id)
        .collect();
    for id in late {
        state.validator_proposals.remove(&id);
    }
}
