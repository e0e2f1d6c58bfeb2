//! Repair: the ledger's half. A contract enters the repair queue when it is
//! declared lost (strikes, or a provider silent for
//! `PROVIDER_MISSED_EPOCHS_MAX` epochs) or its provider drains; at each
//! epoch's first block orders are issued from the queue, deterministically
//! from the beacon and the state; a repairer reports with
//! [`crate::transaction::Body::RecordRepair`] and the contract moves to it at
//! the next epoch's first block; an order past its deadline goes back to the
//! queue for another repairer.
//!
//! - **Priority:** uploads with the most lost contracts first (a contract
//!   holds at most one fragment of any stripe, since placement puts a
//!   stripe's k+m fragments on k+m distinct providers and an upload has one
//!   contract per provider, so an upload's lost contracts bound from above
//!   the fragments any of its stripes lost), then the oldest in the queue.
//! - **Choice:** [`REPAIR_CANDIDATES`] providers drawn from the beacon (all
//!   of them in a network of at most twice that); among the eligible ones,
//!   the first holding no contract of the upload in an organisation holding
//!   none, else the first holding no contract of the upload, else the first
//!   holding another contract of it, else the first backing off after an
//!   expired order. Eligible: not the contract's holder,
//!   not the repairer whose order for it just ran late, not draining, answering (submitted its last
//!   epoch if it owes proofs), fewer than [`REPAIR_ORDERS_PER_PROVIDER_MAX`]
//!   orders in flight, free capacity for the contract (reserved by the
//!   order). No eligible candidate: the contract stays queued and is drawn
//!   again at the next epoch.
//! - **Why a holder of the upload at all:** an upload of many stripes is
//!   placed stripe by stripe, so in a network not much wider than k+m every
//!   provider soon holds a contract of it (the simulator found uploads
//!   whose lost contracts could never be ordered). A holder of the upload
//!   may already hold a fragment of some of the lost contract's stripes;
//!   such a stripe then has k+m fragments on k+m-1 providers. It still
//!   survives any m-1 further provider losses, as it would unrepaired, and
//!   m of them unless the doubled provider is among them: never worse than
//!   leaving the contract lost, so it is the last resort, not the rule.
//! - **Bounds per epoch boundary:** at most [`REPAIR_ORDERS_PER_EPOCH_MAX`]
//!   orders issued out of [`REPAIR_DRAWS_PER_EPOCH_MAX`] draws, at most
//!   [`REPAIR_MOVES_PER_EPOCH_MAX`] moves and deadlines, at most
//!   [`DRAIN_QUEUED_PER_EPOCH_MAX`] contracts of draining providers queued;
//!   each `O(log n)` in the state's tables. Work beyond a budget waits for
//!   the next boundary; nothing leaves the queue except by an order, a move,
//!   or the contract's end (closed or expired).

use crate::roster;
use crate::state::{Accusation, ContractStatus, LedgerState, RepairOrder, RepairReason, RepairState, Suspect, Upload};
use crate::types::{AccountId, Digest, UploadKey};

/// Orders issued per epoch boundary, network-wide (a repair storm must not
/// saturate the network: at most this many contracts rebuilt per epoch).
pub const REPAIR_ORDERS_PER_EPOCH_MAX: usize = 1_000;
/// Candidate draws per epoch boundary (orders plus draws that found no
/// eligible provider).
pub const REPAIR_DRAWS_PER_EPOCH_MAX: usize = 4_000;
/// Orders one provider works on at once.
pub const REPAIR_ORDERS_PER_PROVIDER_MAX: u32 = 4;
/// Epochs after its issue in which an order may be reported: issued at the
/// first block of epoch `e`, reported by the end of `e + 2`.
pub const REPAIR_DEADLINE_EPOCHS: u64 = 2;
/// Epochs a provider whose order expired unreported is passed over when
/// orders are issued (named only when no one else can be): a dead repairer
/// with no contracts to miss proofs for is not named again and again.
pub const REPAIR_BACKOFF_EPOCHS: u64 = 32;
/// Providers drawn per order.
pub const REPAIR_CANDIDATES: u32 = 32;
/// Moves and expired orders handled per epoch boundary.
pub const REPAIR_MOVES_PER_EPOCH_MAX: usize = 10_000;
/// Contracts of draining providers queued per epoch boundary.
pub const DRAIN_QUEUED_PER_EPOCH_MAX: usize = 10_000;

/// Changes an upload's repair counters and keeps its place in
/// [`LedgerState::repair_uploads`] in step.
fn change_upload(state: &mut LedgerState, key: &UploadKey, change: impl FnOnce(&mut Upload)) {
    let Some(mut upload) = state.uploads.get(key).cloned() else { return };
    if upload.queued > 0 {
        state.repair_uploads.remove(&(u32::MAX - upload.lost, *key));
    }
    change(&mut upload);
    if upload.queued > 0 {
        state.repair_uploads.insert((u32::MAX - upload.lost, *key), ());
    }
    state.uploads.insert(*key, upload);
}

/// Puts contract `id` in the repair queue (nothing if it is already in
/// repair).
pub fn queue(state: &mut LedgerState, id: &Digest, epoch: u64) {
    queue_attempt(state, id, epoch, 0, None);
}

fn queue_attempt(state: &mut LedgerState, id: &Digest, epoch: u64, attempt: u32, failed: Option<AccountId>) {
    let Some(contract) = state.contracts.get(id) else { return };
    if contract.repair != RepairState::None {
        return;
    }
    let upload = contract.terms.upload;
    state.contracts.update(id, |contract| contract.repair = RepairState::Queued { since: epoch, attempt, failed });
    state.repair_queue.insert((upload, epoch, *id), ());
    change_upload(state, &upload, |upload| upload.queued = upload.queued.saturating_add(1));
}

/// Records that contract `id` was just declared lost (its status already
/// says so) and queues it.
pub fn declared_lost(state: &mut LedgerState, id: &Digest, epoch: u64) {
    let Some(contract) = state.contracts.get(id) else { return };
    let upload = contract.terms.upload;
    change_upload(state, &upload, |upload| upload.lost = upload.lost.saturating_add(1));
    queue(state, id, epoch);
}

fn dequeue(state: &mut LedgerState, id: &Digest) {
    let Some(contract) = state.contracts.get(id) else { return };
    let RepairState::Queued { since, .. } = contract.repair else { return };
    let upload = contract.terms.upload;
    state.repair_queue.remove(&(upload, since, *id));
    state.contracts.update(id, |contract| contract.repair = RepairState::None);
    change_upload(state, &upload, |upload| upload.queued = upload.queued.saturating_sub(1));
}

/// Takes contract `id` out of repair (it ends: closed or expired): out of
/// the queue, or its order withdrawn and the repairer's reservation
/// released; no longer counted lost.
pub fn cancel(state: &mut LedgerState, id: &Digest) {
    let Some(contract) = state.contracts.get(id).cloned() else { return };
    match contract.repair {
        RepairState::None => {}
        RepairState::Queued { .. } => dequeue(state, id),
        RepairState::Ordered { order } => {
            // A reported move still pending finds the contract out of
            // repair and is dropped.
            withdraw(state, &order);
            state.contracts.update(id, |contract| contract.repair = RepairState::None);
        }
    }
    if matches!(contract.status, ContractStatus::Lost { .. }) {
        change_upload(state, &contract.terms.upload, |upload| upload.lost = upload.lost.saturating_sub(1));
    }
}

/// Removes an order, its deadline and the repairer's reservation.
fn withdraw(state: &mut LedgerState, id: &Digest) -> Option<RepairOrder> {
    let order = state.repair_orders.remove(id)?;
    state.repair_deadlines.remove(&(order.deadline_epoch, *id));
    let bytes = state.contracts.get(&order.contract).map_or(0, |contract| contract.bytes());
    state.providers.update(&order.repairer, |provider| {
        provider.repairs_in_flight = provider.repairs_in_flight.saturating_sub(1);
        provider.committed_bytes = provider.committed_bytes.saturating_sub(bytes);
    });
    Some(order)
}

/// Whether `account` let an order expire within the last
/// [`REPAIR_BACKOFF_EPOCHS`] (then [`choose`] names it only when no other
/// provider can be: an order can also expire because the data cannot be
/// rebuilt, and a network whose every provider is backing off must still
/// repair).
fn backing_off(state: &LedgerState, account: &AccountId) -> bool {
    state
        .providers
        .get(account)
        .and_then(|provider| provider.repair_expired_at)
        .is_some_and(|at| state.epoch() < at.saturating_add(REPAIR_BACKOFF_EPOCHS))
}

/// Whether `account` may be named to rebuild a contract needing `bytes`
/// (whether it holds part of the upload, or is backing off, is
/// [`choose`]'s preference).
fn eligible(state: &LedgerState, account: &AccountId, bytes: u64) -> bool {
    let Some(provider) = state.providers.get(account) else { return false };
    provider.draining_since.is_none()
        && provider.liveness.unresponsive_since.is_none()
        && provider.liveness.missed_in_row == 0
        && provider.repairs_in_flight < REPAIR_ORDERS_PER_PROVIDER_MAX
        && provider.free_bytes() >= bytes
}

/// The provider to rebuild contract `id` at this draw (module docs).
pub fn choose(
    state: &LedgerState,
    id: &Digest,
    beacon: &Digest,
    attempt: u32,
    failed: Option<AccountId>,
) -> Option<AccountId> {
    let contract = state.contracts.get(id)?;
    let upload = contract.terms.upload;
    let bytes = contract.bytes();
    let providers = u32::try_from(state.provider_index.len()).ok().filter(|&count| count > 0)?;
    let seed = Digest::of("strand repair draw v1", &[&beacon.0, &id.0, &attempt.to_le_bytes()]);
    let draw = |index: u32| {
        let bits = Digest::of("strand repair candidate v1", &[&seed.0, &index.to_le_bytes()]);
        (u64::from_le_bytes(bits.0[..8].try_into().expect("8 bytes")) % u64::from(providers)) as u32
    };
    let every = providers <= 2 * REPAIR_CANDIDATES;
    let start = draw(u32::MAX);
    let picks = if every { providers } else { REPAIR_CANDIDATES };
    // In order of preference: holding nothing of the upload and in an
    // organisation holding nothing of it; holding nothing of it; holding
    // another contract of it (module docs: better than no repair at all);
    // backing off after an expired order.
    let (mut same_organisation, mut holder, mut backed_off) = (None, None, None);
    for pick in 0..picks {
        let index = if every { (start + pick) % providers } else { draw(pick) };
        let Some(account) = state.provider_index.get(&index) else { continue };
        if Some(*account) == failed || *account == contract.holder || !eligible(state, account, bytes) {
            continue;
        }
        if backing_off(state, account) {
            backed_off.get_or_insert(*account);
            continue;
        }
        if state.upload_holders.contains(&(upload, *account)) {
            holder.get_or_insert(*account);
            continue;
        }
        let organisation = state.providers.get(account).map(|p| p.registration.domain.organisation.clone());
        if organisation.is_some_and(|organisation| !state.upload_domains.contains(&(upload, organisation))) {
            return Some(*account);
        }
        same_organisation.get_or_insert(*account);
    }
    same_organisation.or(holder).or(backed_off)
}

/// Id of the order issued for `contract` at `epoch`.
pub fn order_id(contract: &Digest, epoch: u64, attempt: u32) -> Digest {
    Digest::of("strand repair order v1", &[&contract.0, &epoch.to_le_bytes(), &attempt.to_le_bytes()])
}

fn issue(state: &mut LedgerState, id: &Digest, repairer: AccountId, epoch: u64, attempt: u32) {
    let Some(contract) = state.contracts.get(id).cloned() else { return };
    dequeue(state, id);
    let reason =
        if matches!(contract.status, ContractStatus::Lost { .. }) { RepairReason::Lost } else { RepairReason::Drain };
    let order = RepairOrder {
        contract: *id,
        upload: contract.terms.upload,
        repairer,
        previous: contract.holder,
        reason,
        issued_epoch: epoch,
        deadline_epoch: epoch.saturating_add(REPAIR_DEADLINE_EPOCHS),
        attempt,
        reported: false,
    };
    let order_id = order_id(id, epoch, attempt);
    state.repair_deadlines.insert((order.deadline_epoch, order_id), ());
    state.repair_orders.insert(order_id, order);
    state.contracts.update(id, |contract| contract.repair = RepairState::Ordered { order: order_id });
    let bytes = contract.bytes();
    state.providers.update(&repairer, |provider| {
        provider.repairs_in_flight = provider.repairs_in_flight.saturating_add(1);
        provider.committed_bytes = provider.committed_bytes.saturating_add(bytes);
    });
}

/// A repairer's report (the body of `RecordRepair`).
pub fn report(
    state: &mut LedgerState,
    sender: &AccountId,
    order_id: &Digest,
    contract: &Digest,
) -> Result<(), crate::Rejection> {
    let order = open_order_of(state, sender, order_id)?;
    if order.contract != *contract {
        return Err(crate::Rejection::NotTheRepairer(*order_id));
    }
    let epoch = state.epoch();
    state.repair_orders.update(order_id, |order| order.reported = true);
    state.repair_moves.insert((epoch.saturating_add(1), *contract), ());
    Ok(())
}

/// The order `order_id` if `sender` is its repairer and it is open (within
/// its deadline, not reported yet).
fn open_order_of<'a>(
    state: &'a LedgerState,
    sender: &AccountId,
    order_id: &Digest,
) -> Result<&'a RepairOrder, crate::Rejection> {
    use crate::Rejection;
    let order = state.repair_orders.get(order_id).ok_or(Rejection::UnknownRepairOrder(*order_id))?;
    if order.repairer != *sender {
        return Err(Rejection::NotTheRepairer(*order_id));
    }
    if state.epoch() > order.deadline_epoch {
        return Err(Rejection::RepairOrderExpired { order: *order_id, deadline_epoch: order.deadline_epoch });
    }
    if order.reported {
        return Err(Rejection::RepairAlreadyReported(*order_id));
    }
    Ok(order)
}

/// A repairer's report of a sibling that served bad bytes (the body of
/// `ReportBadSibling`): the accused fragment becomes its holder's suspect,
/// challenged from the next epoch until a check passes (accusation
/// answered) or the strikes declare the contract lost. One accusation per
/// contract at a time, only by the repairer of an open order of the same
/// upload: a hostile repairer can cost each sibling one targeted challenge
/// per epoch (within the 8 suspects a provider answers), nothing more.
pub fn accuse(
    state: &mut LedgerState,
    sender: &AccountId,
    order_id: &Digest,
    accused: &Digest,
    (fragment, chunk): (u32, u32),
    transaction: &Digest,
) -> Result<(), crate::Rejection> {
    use crate::Rejection;
    let order = open_order_of(state, sender, order_id)?.clone();
    let epoch = state.epoch();
    let contract = state.contracts.get(accused).ok_or(Rejection::NotASibling(*accused))?;
    let sibling = contract.terms.upload == order.upload
        && *accused != order.contract
        && contract.status == ContractStatus::Active
        && contract.roster_slot.is_some()
        && contract.holder != *sender;
    if !sibling {
        return Err(Rejection::NotASibling(*accused));
    }
    let chunks = strand_proof_of_storage::challenge::chunks_in(contract.terms.fragment_size);
    if fragment >= contract.terms.fragment_count || chunk >= chunks {
        return Err(Rejection::InvalidField(format!(
            "chunk {chunk} of fragment {fragment}: the contract has {} fragments of {chunks} chunks",
            contract.terms.fragment_count
        )));
    }
    let key = (contract.holder, *accused);
    let previous = state.suspects.get(&key).cloned();
    if previous.as_ref().is_some_and(|suspect| suspect.accusation.is_some()) {
        return Err(Rejection::AlreadyAccused(*accused));
    }
    let accusation =
        Accusation { reporter: *sender, order: *order_id, fragment, chunk, epoch, transaction: *transaction };
    // A contract already suspect keeps its place (its epoch); a new one is
    // re-checked from the next epoch.
    let since = previous.map_or(epoch, |suspect| suspect.since);
    state.suspects.insert(key, Suspect { since, accusation: Some(accusation) });
    Ok(())
}

/// Adds one to (or takes one from) the holders and organisations of an
/// upload.
fn count_holder(state: &mut LedgerState, upload: &UploadKey, holder: &AccountId, add: bool) {
    let organisation = state
        .providers
        .get(holder)
        .map(|provider| provider.registration.domain.organisation.clone())
        .unwrap_or_default();
    let holders = state.upload_holders.get(&(*upload, *holder)).copied().unwrap_or(0);
    let domains = state.upload_domains.get(&(*upload, organisation.clone())).copied().unwrap_or(0);
    let (holders, domains) =
        if add { (holders + 1, domains + 1) } else { (holders.saturating_sub(1), domains.saturating_sub(1)) };
    if holders == 0 {
        state.upload_holders.remove(&(*upload, *holder));
    } else {
        state.upload_holders.insert((*upload, *holder), holders);
    }
    if domains == 0 {
        state.upload_domains.remove(&(*upload, organisation));
    } else {
        state.upload_domains.insert((*upload, organisation), domains);
    }
}

/// Counts a newly opened contract's holder for its upload.
pub fn opened(state: &mut LedgerState, upload: &UploadKey, holder: &AccountId) {
    count_holder(state, upload, holder, true);
}

/// Work at the first block of `epoch`: reported contracts move, late orders
/// go back to the queue, draining providers' contracts are queued, and new
/// orders are issued (module docs for the bounds).
/// Orders wait for the beacon when it comes after the epoch's first block
/// (`None`: a consortium's, [`crate::epoch::set_beacon`]).
pub fn begin_epoch(state: &mut LedgerState, epoch: u64, beacon: Option<&Digest>) {
    move_reported(state, epoch);
    reassign_late(state, epoch);
    queue_draining(state, epoch);
    if let Some(beacon) = beacon {
        issue_orders(state, epoch, beacon);
    }
}

fn move_reported(state: &mut LedgerState, epoch: u64) {
    let due = state.repair_moves.keys_in(..=(epoch, Digest([0xff; 32])), REPAIR_MOVES_PER_EPOCH_MAX);
    for key in due {
        state.repair_moves.remove(&key);
        let id = key.1;
        let Some(contract) = state.contracts.get(&id).cloned() else { continue };
        let RepairState::Ordered { order } = contract.repair else { continue };
        let order_id = order;
        let Some(order) = state.repair_orders.remove(&order_id) else { continue };
        state.repair_deadlines.remove(&(order.deadline_epoch, order_id));
        // Out of the old holder's roster and commitment.
        roster::remove(state, &id);
        state.suspects.remove(&(contract.holder, id));
        let lost = matches!(contract.status, ContractStatus::Lost { .. });
        if !lost {
            crate::epoch::release(state, &contract);
        }
        count_holder(state, &contract.terms.upload, &contract.holder, false);
        count_holder(state, &contract.terms.upload, &order.repairer, true);
        if lost {
            change_upload(state, &contract.terms.upload, |upload| upload.lost = upload.lost.saturating_sub(1));
        }
        // The order reserved the repairer's capacity: it is now committed.
        state.providers.update(&order.repairer, |provider| {
            provider.repairs_in_flight = provider.repairs_in_flight.saturating_sub(1);
        });
        state.count_status(Some(&contract.status), &ContractStatus::Active);
        state.contracts.update(&id, |contract| {
            contract.holder = order.repairer;
            contract.status = ContractStatus::Active;
            contract.proofs.strikes = 0;
            contract.repair = RepairState::None;
            contract.repairs = contract.repairs.saturating_add(1);
        });
        if state.contracts.get(&id).is_some_and(|contract| epoch <= contract.last_epoch()) {
            roster::add(state, &id);
        }
    }
}

fn reassign_late(state: &mut LedgerState, epoch: u64) {
    let late = state.repair_deadlines.keys_in(..(epoch, Digest([0; 32])), REPAIR_MOVES_PER_EPOCH_MAX);
    for (_, order_id) in late {
        let Some(order) = withdraw(state, &order_id) else { continue };
        if !order.reported {
            state.providers.update(&order.repairer, |provider| provider.repair_expired_at = Some(epoch));
        }
        state.contracts.update(&order.contract, |contract| contract.repair = RepairState::None);
        queue_attempt(state, &order.contract, epoch, order.attempt.saturating_add(1), Some(order.repairer));
    }
}

fn queue_draining(state: &mut LedgerState, epoch: u64) {
    let draining: Vec<AccountId> = state
        .providers
        .iter()
        .filter(|(_, provider)| provider.draining_since.is_some() && provider.drain_cursor > 0)
        .map(|(id, _)| *id)
        .collect();
    let mut budget = DRAIN_QUEUED_PER_EPOCH_MAX;
    for account in draining {
        let Some(provider) = state.providers.get(&account) else { continue };
        let mut cursor = provider.drain_cursor.min(provider.roster.contracts);
        while cursor > 0 && budget > 0 {
            if let Some(slot) = state.roster.get(&(account, cursor)) {
                let id = slot.contract;
                queue(state, &id, epoch);
            }
            cursor -= 1;
            budget -= 1;
        }
        state.providers.update(&account, |provider| provider.drain_cursor = cursor);
    }
}

pub(crate) fn issue_orders(state: &mut LedgerState, epoch: u64, beacon: &Digest) {
    let mut orders = 0;
    let mut draws = 0;
    let uploads = state.repair_uploads.keys_in(.., REPAIR_DRAWS_PER_EPOCH_MAX);
    for (_, upload) in uploads {
        let queued = state.repair_queue.keys_in(
            (upload, 0, Digest([0; 32]))..=(upload, u64::MAX, Digest([0xff; 32])),
            REPAIR_DRAWS_PER_EPOCH_MAX - draws,
        );
        for (_, _, id) in queued {
            if orders == REPAIR_ORDERS_PER_EPOCH_MAX || draws == REPAIR_DRAWS_PER_EPOCH_MAX {
                return;
            }
            draws += 1;
            let Some(RepairState::Queued { attempt, failed, .. }) =
                state.contracts.get(&id).map(|contract| contract.repair)
            else {
                continue;
            };
            if let Some(repairer) = choose(state, &id, beacon, attempt, failed) {
                issue(state, &id, repairer, epoch, attempt);
                orders += 1;
            }
        }
    }
}

/// The sender starts draining (the body of `Drain`).
pub fn drain(state: &mut LedgerState, sender: &AccountId) -> Result<(), crate::Rejection> {
    let provider = state.providers.get(sender).ok_or(crate::Rejection::UnknownProvider(*sender))?;
    if provider.draining_since.is_some() {
        return Ok(());
    }
    let epoch = state.epoch();
    state.providers.update(sender, |provider| {
        provider.draining_since = Some(epoch);
        provider.drain_cursor = provider.roster.contracts;
    });
    Ok(())
}
