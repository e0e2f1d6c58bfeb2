//! Work at the first block of an epoch: the beacon, who missed the epoch
//! that closed, the rosters' rotation, contracts declared lost for an
//! unresponsive provider, expiries, roster changes, and pruning of history
//! past its horizon.
//!
//! Cost of the boundary block, whatever the number of contracts: one pass
//! over the providers holding contracts (their liveness and cursor), then at
//! most [`SWEEP_CONTRACTS_PER_EPOCH_MAX`] contracts declared lost,
//! [`EXPIRIES_PER_EPOCH_MAX`] expiries and [`ROSTER_CHANGES_PER_EPOCH_MAX`]
//! roster changes (`O(log n)` each), and the pruning of one epoch's worth of
//! proof checks, slots and access batches. Work beyond a budget waits for
//! the next boundary, oldest first; meanwhile a contract past its term or
//! no longer active is never owed proofs.

use strand_proof_of_storage::policy::PROVIDER_MISSED_EPOCHS_MAX;
use strand_proof_of_storage::schedule::rotation_step;

use crate::roster;
use crate::state::{
    ACCESS_HISTORY_EPOCHS, AccessTotal, Contract, ContractStatus, LedgerState, PROOF_HISTORY_EPOCHS, ProofSlot,
};
use crate::types::{AccountId, Digest};

/// Contracts of unresponsive providers declared lost per epoch boundary.
pub const SWEEP_CONTRACTS_PER_EPOCH_MAX: usize = 10_000;
/// Contracts expired per epoch boundary.
pub const EXPIRIES_PER_EPOCH_MAX: usize = 10_000;
/// Roster additions and removals per epoch boundary.
pub const ROSTER_CHANGES_PER_EPOCH_MAX: usize = 50_000;
/// Access batches summed into totals per epoch boundary.
pub const ACCESS_COMPACTIONS_PER_EPOCH_MAX: usize = 10_000;
/// Proof checks and slots pruned per epoch boundary.
pub const PRUNES_PER_EPOCH_MAX: usize = 100_000;

/// Releases a contract's bytes from its provider's commitment (it no longer
/// stores them for the ledger).
pub fn release(state: &mut LedgerState, contract: &Contract) {
    let bytes = contract.bytes();
    state.providers.update(&contract.holder, |provider| {
        provider.committed_bytes = provider.committed_bytes.saturating_sub(bytes);
    });
}

/// The boundary work for `epoch` (see the module documentation), with its
/// beacon, or (a consortium) with the beacon still to come from a later
/// block: `closing` is then the hash its signature must be over, and
/// repair orders wait for [`set_beacon`].
pub fn begin_epoch(state: &mut LedgerState, epoch: u64, beacon: Option<Digest>, closing: Digest) {
    match beacon {
        Some(beacon) => {
            state.beacons.insert(epoch, beacon);
            state.beacon_due = None;
        }
        // An earlier epoch's beacon that never came is no longer due.
        None => state.beacon_due = Some((epoch, closing)),
    }
    let Some(previous) = epoch.checked_sub(1) else { return };
    close_epoch(state, epoch, previous);
    sweep_unresponsive(state, epoch);
    expire(state, epoch);
    crate::repair::begin_epoch(state, epoch, beacon.as_ref());
    change_rosters(state, epoch);
    prune(state, epoch);
}

/// A consortium's beacon for `epoch`, arriving after its first block:
/// challenges can now be derived, and the epoch's repair orders issued.
pub fn set_beacon(state: &mut LedgerState, epoch: u64, beacon: Digest) {
    state.beacons.insert(epoch, beacon);
    state.beacon_due = None;
    crate::repair::issue_orders(state, epoch, &beacon);
}

/// Liveness and rotation of every provider holding contracts for the epoch
/// that closed.
fn close_epoch(state: &mut LedgerState, epoch: u64, previous: u64) {
    let holding: Vec<AccountId> =
        state.providers.iter().filter(|(_, provider)| provider.roster.contracts > 0).map(|(id, _)| *id).collect();
    // An epoch that had no beacon had no challenges: nobody owed proofs.
    let owed = state.beacons.get(&previous).is_some();
    for provider in holding {
        let submitted = !owed || crate::proofs::submitted(state, &provider, previous);
        if !submitted {
            state.proof_slots.insert((previous, provider), ProofSlot::Missed);
        }
        state.providers.update(&provider, |record| {
            let roster = &mut record.roster;
            roster.cursor = roster.cursor.wrapping_add(u64::from(rotation_step(roster.contracts, roster.demand)));
            let liveness = &mut record.liveness;
            liveness.closed(previous, !submitted);
            if submitted {
                return;
            }
            liveness.missed_epochs = liveness.missed_epochs.saturating_add(1);
            liveness.missed_in_row = liveness.missed_in_row.saturating_add(1);
            if liveness.missed_in_row >= PROVIDER_MISSED_EPOCHS_MAX && liveness.unresponsive_since.is_none() {
                liveness.unresponsive_since = Some(epoch);
            }
        });
    }
}

/// Declares lost, from the end of their rosters, the contracts of
/// unresponsive providers (at most [`SWEEP_CONTRACTS_PER_EPOCH_MAX`]).
fn sweep_unresponsive(state: &mut LedgerState, epoch: u64) {
    let unresponsive: Vec<AccountId> = state
        .providers
        .iter()
        .filter(|(_, provider)| provider.liveness.unresponsive_since.is_some())
        .map(|(id, _)| *id)
        .collect();
    let mut budget = SWEEP_CONTRACTS_PER_EPOCH_MAX;
    for provider in unresponsive {
        while budget > 0 {
            let Some(id) = roster::last(state, &provider) else { break };
            budget -= 1;
            end(state, &id, ContractStatus::Lost { at_epoch: epoch });
        }
        if roster::last(state, &provider).is_none() {
            // Nothing left to declare lost: a new contract starts afresh.
            state.providers.update(&provider, |record| record.liveness.unresponsive_since = None);
        }
    }
}

/// Ends an active contract now (at a boundary): status, commitment, roster,
/// suspects.
fn end(state: &mut LedgerState, id: &Digest, status: ContractStatus) {
    roster::remove(state, id);
    let Some(contract) = state.contracts.get(id).cloned() else { return };
    state.suspects.remove(&(contract.holder, *id));
    if contract.status == ContractStatus::Active {
        state.contracts.update(id, |contract| contract.status = status);
        state.count_status(Some(&ContractStatus::Active), &status);
        release(state, &contract);
        if matches!(status, ContractStatus::Lost { .. }) {
            crate::repair::declared_lost(state, id, state.epoch());
        }
    }
}

/// Expires contracts whose term ended before `epoch`.
fn expire(state: &mut LedgerState, epoch: u64) {
    let due = state.expiries.keys_in(..=(epoch, Digest([0xff; 32])), EXPIRIES_PER_EPOCH_MAX);
    for key in due {
        state.expiries.remove(&key);
        crate::repair::cancel(state, &key.1);
        end(state, &key.1, ContractStatus::Expired { at_epoch: epoch });
    }
}

/// Adds contracts that owe proofs from `epoch` to their rosters and removes
/// those that no longer do.
fn change_rosters(state: &mut LedgerState, epoch: u64) {
    let due = state.roster_changes.keys_in(..=(epoch, Digest([0xff; 32])), ROSTER_CHANGES_PER_EPOCH_MAX);
    for key in due {
        state.roster_changes.remove(&key);
        let id = key.1;
        let Some(contract) = state.contracts.get(&id) else { continue };
        let owes = contract.status == ContractStatus::Active && epoch <= contract.last_epoch();
        match (owes, contract.roster_slot.is_some()) {
            (true, false) => {
                let draining =
                    state.providers.get(&contract.holder).is_some_and(|provider| provider.draining_since.is_some());
                roster::add(state, &id);
                if draining {
                    // Joined after its provider began to drain.
                    crate::repair::queue(state, &id, epoch);
                }
            }
            (false, true) => {
                let provider = contract.holder;
                roster::remove(state, &id);
                state.suspects.remove(&(provider, id));
            }
            _ => {}
        }
    }
}

/// Drops history past its horizon: beacons and proof slots before the
/// previous epoch (the providers' liveness keeps their last 64 epochs),
/// failed checks older than [`PROOF_HISTORY_EPOCHS`], and access batches
/// older than [`ACCESS_HISTORY_EPOCHS`] (summed into totals first).
fn prune(state: &mut LedgerState, epoch: u64) {
    let previous = epoch.saturating_sub(1);
    for key in state.beacons.keys_in(..previous, PRUNES_PER_EPOCH_MAX) {
        state.beacons.remove(&key);
    }
    for key in state.proof_slots.keys_in(..(previous, AccountId([0; 32])), PRUNES_PER_EPOCH_MAX) {
        state.proof_slots.remove(&key);
    }
    let horizon = epoch.saturating_sub(PROOF_HISTORY_EPOCHS);
    for key in state.proofs.keys_in(..(horizon, Digest([0; 32])), PRUNES_PER_EPOCH_MAX) {
        state.proofs.remove(&key);
    }
    let horizon = epoch.saturating_sub(ACCESS_HISTORY_EPOCHS);
    for key in state.access.keys_in(..(horizon, AccountId([0; 32])), ACCESS_COMPACTIONS_PER_EPOCH_MAX) {
        let Some(batch) = state.access.remove(&key) else { continue };
        for receipt in batch.receipts {
            let total_key = (receipt.upload, receipt.requester, receipt.authority);
            let mut total = state
                .access_totals
                .get(&total_key)
                .copied()
                .unwrap_or(AccessTotal { first_epoch: key.0, ..Default::default() });
            total.fragments = total.fragments.saturating_add(u64::from(receipt.fragments));
            total.bytes = total.bytes.saturating_add(receipt.bytes);
            total.first_epoch = total.first_epoch.min(key.0);
            total.last_epoch = total.last_epoch.max(key.0);
            state.access_totals.insert(total_key, total);
        }
    }
}
