//! The repair rules: lost and drained contracts queued, orders issued from
//! the beacon to eligible providers (bounded, failure domains apart), reports
//! moving contracts to their repairers, late orders reassigned, and a
//! provider back within the strike window never repaired away.

mod support;

use strand_contracts::repair::{REPAIR_BACKOFF_EPOCHS, REPAIR_DEADLINE_EPOCHS, REPAIR_ORDERS_PER_PROVIDER_MAX};
use strand_contracts::state::{ContractStatus, LedgerState, RepairOrder, RepairReason, RepairState};
use strand_contracts::transaction::Body;
use strand_contracts::{AccountId, Digest, Outcome, Rejection};
use strand_core::Identity;
use support::*;

/// A network of providers: `a` and `b` hold upload 1 (org-a, org-b), `c`
/// is free in org-c, `d` free in org-a (the upload's organisation).
struct Network {
    chain: Chain,
    a: Identity,
    c: Identity,
    d: Identity,
}

fn network(uploads_on_a: &[u8]) -> (Network, Vec<Digest>) {
    let mut chain = Chain::new();
    let (owner, a, b, c, d) = (identity(1), identity(2), identity(3), identity(4), identity(5));
    // Everything in the first block, so the contracts owe proofs from epoch 1.
    let mut transactions = Vec::new();
    for (provider, organisation) in [(&a, "org-a"), (&b, "org-b"), (&c, "org-c"), (&d, "org-a")] {
        transactions.push(chain.transaction(provider, registration(organisation)));
    }
    let mut ids = Vec::new();
    for &upload in uploads_on_a {
        for provider in [&a, &b] {
            let mut terms = terms(&owner, provider, upload);
            terms.term_epochs = 100;
            if provider.public_key() == a.public_key() {
                ids.push(terms.id());
            }
            let body = open_contract(&chain, terms, provider);
            transactions.push(chain.transaction(&owner, body));
        }
    }
    let receipts = chain.block(transactions);
    assert!(receipts.iter().all(|receipt| receipt.outcome == Outcome::Accepted), "{receipts:?}");
    assert_eq!(chain.replica.state().epoch(), 0);
    (Network { chain, a, c, d }, ids)
}

/// Enters each epoch up to `to`, every provider in `answering` submitting
/// honest proofs in each (those owing none skip).
fn run_to(chain: &mut Chain, to: u64, answering: &[&Identity]) {
    while chain.replica.state().epoch() < to {
        let next = chain.replica.state().epoch() + 1;
        chain.advance_to_epoch(next);
        chain.block(Vec::new());
        for provider in answering {
            let body = honest_submission(chain, provider);
            let Body::SubmitProofs { proofs, .. } = &body else { unreachable!() };
            if !proofs.is_empty() {
                assert_eq!(chain.submit(provider, body), Outcome::Accepted);
            }
        }
    }
}

fn contract_state(state: &LedgerState, id: &Digest) -> (ContractStatus, RepairState, AccountId) {
    let contract = state.contracts.get(id).expect("contract");
    (contract.status, contract.repair, contract.holder)
}

fn order_of(state: &LedgerState, id: &Digest) -> (Digest, RepairOrder) {
    let RepairState::Ordered { order } = state.contracts.get(id).expect("contract").repair else {
        panic!("contract {id} has no order: {:?}", state.contracts.get(id).map(|c| c.repair));
    };
    (order, state.repair_orders.get(&order).expect("order").clone())
}

/// Every contract that is lost (within its term) is in the queue or has an
/// order: never silently under-replicated. And the counts by status match.
fn assert_every_lost_contract_in_repair(state: &LedgerState) {
    // The counts operators see match the contracts themselves.
    let mut counted = [0u64; 4];
    for (_, contract) in state.contracts.iter() {
        counted[usize::from(contract.status.code())] += 1;
    }
    assert_eq!(state.contracts_by_status(), counted, "contract counts by status");
    for (id, contract) in state.contracts.iter() {
        // A lost contract whose term is over leaves repair: nothing is owed.
        if matches!(contract.status, ContractStatus::Lost { .. }) && state.epoch() <= contract.last_epoch() {
            assert_ne!(contract.repair, RepairState::None, "lost contract {id} is neither queued nor ordered");
        }
    }
}

#[test]
fn a_lost_contract_is_ordered_to_another_organisation_rebuilt_moved_and_proven() {
    let (mut net, ids) = network(&[1]);
    let id = ids[0];
    let (b, c) = (identity(3), identity(4));
    // a goes silent: lost after three silent epochs, ordered at once.
    run_to(&mut net.chain, 4, &[&b]);
    let state = net.chain.replica.state();
    let (status, _, holder) = contract_state(state, &id);
    assert_eq!((status, holder), (ContractStatus::Lost { at_epoch: 4 }, account(&net.a)));
    let (order_id, order) = order_of(state, &id);
    // b holds a contract of the upload, d is in org-a like the lost holder:
    // c is the only candidate in another failure domain.
    assert_eq!(order.repairer, account(&c));
    assert_eq!(
        (order.reason, order.issued_epoch, order.deadline_epoch),
        (RepairReason::Lost, 4, 4 + REPAIR_DEADLINE_EPOCHS)
    );
    assert_eq!(order.previous, account(&net.a));
    let bytes = state.contracts.get(&id).expect("contract").bytes();
    let repairer = state.providers.get(&account(&c)).expect("c");
    assert_eq!((repairer.repairs_in_flight, repairer.committed_bytes), (1, bytes), "the order reserves capacity");
    assert_eq!(state.uploads.get(&[1; 16]).expect("upload").lost, 1);

    // Strangers, wrong contracts and the old holder cannot report it (all
    // in one block, still in epoch 4).
    let report = Body::RecordRepair { order: order_id, contract: id };
    let wrong = Body::RecordRepair { order: order_id, contract: Digest([7; 32]) };
    let transactions = vec![
        net.chain.transaction(&identity(5), report.clone()),
        net.chain.transaction(&identity(2), report.clone()),
        net.chain.transaction(&identity(1), report.clone()),
        net.chain.transaction(&c, wrong),
        net.chain.transaction(&c, report.clone()),
        net.chain.transaction(&c, report),
    ];
    let outcomes: Vec<Outcome> = net.chain.block(transactions).into_iter().map(|receipt| receipt.outcome).collect();
    let not_the_repairer = Outcome::Rejected(Rejection::NotTheRepairer(order_id));
    assert_eq!(outcomes[..4], vec![not_the_repairer; 4][..]);
    assert_eq!(outcomes[4], Outcome::Accepted);
    assert_eq!(outcomes[5], Outcome::Rejected(Rejection::RepairAlreadyReported(order_id)));
    assert_eq!(net.chain.replica.state().epoch(), 4);

    // The move happens at the next epoch's first block; c owes proofs from
    // then and its honest proofs pass.
    run_to(&mut net.chain, 5, &[&b, &c]);
    let state = net.chain.replica.state();
    assert_eq!(contract_state(state, &id), (ContractStatus::Active, RepairState::None, account(&c)));
    let contract = state.contracts.get(&id).expect("contract");
    assert_eq!((contract.repairs, contract.proofs.strikes), (1, 0));
    assert!(contract.roster_slot.is_some());
    assert!(contract.proofs.passed_in(5), "the repairer's proofs pass");
    assert!(state.repair_orders.is_empty() && state.repair_deadlines.is_empty() && state.repair_queue.is_empty());
    let repairer = state.providers.get(&account(&c)).expect("c");
    assert_eq!((repairer.repairs_in_flight, repairer.committed_bytes, repairer.roster.contracts), (0, bytes, 1));
    assert_eq!(state.uploads.get(&[1; 16]).expect("upload").lost, 0);
    assert!(!state.upload_holders.contains(&([1; 16], account(&net.a))));
    assert!(state.upload_holders.contains(&([1; 16], account(&c))));
}

#[test]
fn a_provider_back_within_the_strike_window_is_never_repaired_away() {
    let (mut net, ids) = network(&[1]);
    let (a, b) = (identity(2), identity(3));
    // Two silent epochs (a restart), then a answers again.
    run_to(&mut net.chain, 2, &[&b]);
    run_to(&mut net.chain, 12, &[&a, &b]);
    let state = net.chain.replica.state();
    assert_eq!(contract_state(state, &ids[0]), (ContractStatus::Active, RepairState::None, account(&a)));
    assert!(state.repair_orders.is_empty() && state.repair_queue.is_empty());
}

#[test]
fn a_late_order_goes_to_another_repairer() {
    let (mut net, ids) = network(&[1]);
    let id = ids[0];
    let b = identity(3);
    run_to(&mut net.chain, 4, &[&b]);
    let (first_id, first) = order_of(net.chain.replica.state(), &id);
    // The repairer never reports: past the deadline the order is withdrawn
    // and drawn again, without it.
    run_to(&mut net.chain, first.deadline_epoch, &[&b]);
    assert_eq!(order_of(net.chain.replica.state(), &id).0, first_id, "in force until its deadline ends");
    run_to(&mut net.chain, first.deadline_epoch + 1, &[&b]);
    let state = net.chain.replica.state();
    let (second_id, second) = order_of(state, &id);
    assert_ne!(second_id, first_id);
    assert_ne!(second.repairer, first.repairer, "the late repairer is not drawn again");
    assert_eq!(second.repairer, account(&net.d), "the only other eligible provider (same organisation as a)");
    assert_eq!(second.attempt, 1);
    let late = state.providers.get(&first.repairer).expect("late repairer");
    assert_eq!((late.repairs_in_flight, late.committed_bytes), (0, 0), "its reservation is released");
    // The late report is refused.
    let report = Body::RecordRepair { order: first_id, contract: id };
    let repairer = if first.repairer == account(&net.c) { identity(4) } else { identity(5) };
    assert_eq!(rejected(net.chain.submit(&repairer, report)), Rejection::UnknownRepairOrder(first_id));
    assert_every_lost_contract_in_repair(net.chain.replica.state());

    // The second repairer is silent too: with both backing off, the last
    // resort is b, which holds the upload's other contract. Silent as a
    // repairer as well, it backs off in turn; with every provider backing
    // off, the contract is still ordered (an order can expire because the
    // data cannot be rebuilt, through no fault of its repairer): one of the
    // backed-off providers other than the last one is named at once.
    run_to(&mut net.chain, second.deadline_epoch + 1, &[&b]);
    let state = net.chain.replica.state();
    let (_, third) = order_of(state, &id);
    assert_eq!(third.repairer, account(&b), "a holder of the upload, as the last resort");
    let expired = |account: &AccountId| state.providers.get(account).expect("provider").repair_expired_at;
    assert_eq!(
        (expired(&first.repairer), expired(&second.repairer)),
        (Some(first.deadline_epoch + 1), Some(second.deadline_epoch + 1))
    );
    run_to(&mut net.chain, third.deadline_epoch + 1, &[&b]);
    let state = net.chain.replica.state();
    let (_, fourth) = order_of(state, &id);
    assert!(
        [first.repairer, second.repairer].contains(&fourth.repairer),
        "a backed-off provider, not b which just failed: {:?}",
        fourth.repairer
    );
    assert_eq!(fourth.attempt, 3);
    assert!(fourth.issued_epoch < first.deadline_epoch + 1 + REPAIR_BACKOFF_EPOCHS, "while still backing off");
    assert_every_lost_contract_in_repair(state);
}

#[test]
fn orders_are_bounded_per_provider_and_the_rest_wait_in_the_queue() {
    let uploads: Vec<u8> = (1..=10).collect();
    let (mut net, ids) = network(&uploads);
    let b = identity(3);
    // d drains: c is the only eligible repairer holding nothing of the
    // uploads, b (holding their other contracts) the last resort.
    assert_eq!(net.chain.submit(&identity(5), Body::Drain), Outcome::Accepted);
    run_to(&mut net.chain, 4, &[&b]);
    let state = net.chain.replica.state();
    let ordered =
        ids.iter().filter(|id| matches!(state.contracts.get(id).expect("c").repair, RepairState::Ordered { .. }));
    let limit = REPAIR_ORDERS_PER_PROVIDER_MAX as usize;
    assert_eq!(ordered.count(), 2 * limit);
    assert_eq!(state.repair_queue.len(), ids.len() - 2 * limit);
    let in_flight = |account: &AccountId| state.providers.get(account).expect("provider").repairs_in_flight;
    assert_eq!((in_flight(&account(&net.c)), in_flight(&account(&b))), (limit as u32, limit as u32));
    assert_every_lost_contract_in_repair(state);
}

#[test]
fn uploads_with_more_lost_contracts_come_first() {
    let (mut net, _) = network(&[1, 2]);
    let (owner, b, c) = (identity(1), identity(3), identity(4));
    // Upload 2 also has a contract on c: when a and c fall silent, upload 2
    // has lost two contracts and upload 1 one.
    let mut terms = terms(&owner, &c, 2);
    terms.term_epochs = 100;
    let body = open_contract(&net.chain, terms, &c);
    assert_eq!(net.chain.submit(&owner, body), Outcome::Accepted);
    run_to(&mut net.chain, 4, &[&b]);
    let state = net.chain.replica.state();
    assert_eq!(state.uploads.get(&[2; 16]).expect("upload 2").lost, 2);
    assert_eq!(state.uploads.get(&[1; 16]).expect("upload 1").lost, 1);
    // d is the only eligible provider (b holds both uploads; a and c are
    // silent): upload 2's contracts were drawn first.
    let d_orders: Vec<_> = state.repair_orders.iter().map(|(_, order)| order.upload).collect();
    assert!(d_orders.iter().filter(|upload| **upload == [2; 16]).count() == 2, "orders: {d_orders:?}");
    assert_every_lost_contract_in_repair(state);
}

#[test]
fn a_draining_provider_takes_no_contracts_and_its_contracts_move_without_strikes() {
    let (mut net, ids) = network(&[1]);
    let id = ids[0];
    let (owner, a, b, c) = (identity(1), identity(2), identity(3), identity(4));
    run_to(&mut net.chain, 1, &[&a, &b]);
    let mut terms = terms(&owner, &a, 9);
    terms.term_epochs = 100;
    let body = open_contract(&net.chain, terms, &a);
    let transactions = vec![net.chain.transaction(&a, Body::Drain), net.chain.transaction(&owner, body)];
    let outcomes: Vec<Outcome> = net.chain.block(transactions).into_iter().map(|receipt| receipt.outcome).collect();
    assert_eq!(outcomes, vec![Outcome::Accepted, Outcome::Rejected(Rejection::ProviderDraining(account(&a)))]);
    assert_eq!(net.chain.replica.state().epoch(), 1);
    // At the next boundary its contract is queued and ordered; it stays
    // active and a keeps proving it until it moves.
    run_to(&mut net.chain, 2, &[&a, &b]);
    let state = net.chain.replica.state();
    let (order_id, order) = order_of(state, &id);
    assert_eq!((order.reason, order.repairer), (RepairReason::Drain, account(&c)));
    assert_eq!(contract_state(state, &id).0, ContractStatus::Active);
    assert!(state.contracts.get(&id).expect("contract").proofs.passed_in(2), "the drainer still proves it");
    assert_eq!(net.chain.submit(&c, Body::RecordRepair { order: order_id, contract: id }), Outcome::Accepted);
    run_to(&mut net.chain, 3, &[&a, &b, &c]);
    let state = net.chain.replica.state();
    assert_eq!(contract_state(state, &id), (ContractStatus::Active, RepairState::None, account(&c)));
    let drained = state.providers.get(&account(&a)).expect("a");
    assert_eq!((drained.roster.contracts, drained.committed_bytes), (0, 0), "a holds nothing for the ledger");
    assert_eq!(state.contracts.get(&id).expect("contract").proofs.strikes, 0);
}

#[test]
fn a_contract_that_ends_leaves_repair_and_releases_the_reservation() {
    // (The owner cannot close a lost contract; its term ending is the way
    // out of repair.)
    let (mut net, _) = network(&[]);
    let (owner, a, b, c) = (identity(1), identity(2), identity(3), identity(4));
    let mut short = terms(&owner, &a, 3);
    short.term_epochs = 5;
    let id = short.id();
    let body = open_contract(&net.chain, short, &a);
    assert_eq!(net.chain.submit(&owner, body), Outcome::Accepted);
    let mut sibling = terms(&owner, &b, 3);
    sibling.term_epochs = 100;
    let body = open_contract(&net.chain, sibling, &b);
    assert_eq!(net.chain.submit(&owner, body), Outcome::Accepted);
    run_to(&mut net.chain, 4, &[&b]);
    let (_, order) = order_of(net.chain.replica.state(), &id);
    assert_eq!(order.repairer, account(&c));
    // Its term ends with epoch 5: at epoch 6 it expires, the order goes.
    run_to(&mut net.chain, 6, &[&b]);
    let state = net.chain.replica.state();
    assert_eq!(contract_state(state, &id).1, RepairState::None);
    assert!(state.repair_orders.is_empty() && state.repair_queue.is_empty() && state.repair_uploads.is_empty());
    let repairer = state.providers.get(&account(&c)).expect("c");
    assert_eq!((repairer.repairs_in_flight, repairer.committed_bytes), (0, 0));
    assert_eq!(state.uploads.get(&[3; 16]).expect("upload").lost, 0);
    assert_every_lost_contract_in_repair(state);
}

#[test]
fn a_repairer_that_reports_without_storing_fails_its_proofs_and_loses_the_contract_again() {
    let (mut net, ids) = network(&[1]);
    let id = ids[0];
    let (b, c) = (identity(3), identity(4));
    run_to(&mut net.chain, 4, &[&b]);
    let (order_id, order) = order_of(net.chain.replica.state(), &id);
    assert_eq!(order.repairer, account(&c));
    assert_eq!(net.chain.submit(&c, Body::RecordRepair { order: order_id, contract: id }), Outcome::Accepted);
    // c holds nothing and so answers nothing: three silent epochs after the
    // move, the contract is lost again and goes to the next repairer.
    run_to(&mut net.chain, 5, &[&b]);
    assert_eq!(contract_state(net.chain.replica.state(), &id).2, account(&c));
    run_to(&mut net.chain, 8, &[&b]);
    let state = net.chain.replica.state();
    assert_eq!(contract_state(state, &id).0, ContractStatus::Lost { at_epoch: 8 });
    let (_, second) = order_of(state, &id);
    assert_eq!(second.repairer, account(&net.d), "neither the lost holder nor the false repairer");
    assert_eq!(state.providers.get(&account(&c)).expect("c").committed_bytes, 0, "its commitment is released");
    assert_every_lost_contract_in_repair(state);
}

#[test]
fn a_sibling_accused_of_bad_bytes_has_that_fragment_challenged_until_it_answers() {
    use strand_contracts::state::ProofStatus;
    use strand_proof_of_storage::schedule::Reason;
    let (mut net, ids) = network(&[1]);
    let id = ids[0];
    let (owner, b, c) = (identity(1), identity(3), identity(4));
    let mut sibling_terms = terms(&owner, &b, 1);
    sibling_terms.term_epochs = 100;
    let sibling = sibling_terms.id();
    run_to(&mut net.chain, 4, &[&b]);
    let (order_id, order) = order_of(net.chain.replica.state(), &id);
    assert_eq!(order.repairer, account(&c));
    let accuse = |contract, fragment| Body::ReportBadSibling { order: order_id, contract, fragment, chunk: 0 };
    // Only the order's repairer, only against an active sibling of the
    // upload, only a fragment the contract has, once.
    let transactions = vec![
        net.chain.transaction(&net.d, accuse(sibling, 1)),
        net.chain.transaction(&c, accuse(id, 0)),
        net.chain.transaction(&c, accuse(Digest([7; 32]), 0)),
        net.chain.transaction(&c, accuse(sibling, 10)),
        net.chain.transaction(&c, accuse(sibling, 1)),
        net.chain.transaction(&c, accuse(sibling, 0)),
    ];
    let outcomes: Vec<Outcome> = net.chain.block(transactions).into_iter().map(|receipt| receipt.outcome).collect();
    assert_eq!(rejected(outcomes[0].clone()), Rejection::NotTheRepairer(order_id));
    assert_eq!(rejected(outcomes[1].clone()), Rejection::NotASibling(id), "the lost contract is no sibling");
    assert_eq!(rejected(outcomes[2].clone()), Rejection::NotASibling(Digest([7; 32])));
    assert!(matches!(rejected(outcomes[3].clone()), Rejection::InvalidField(_)));
    assert_eq!(outcomes[4], Outcome::Accepted);
    assert_eq!(rejected(outcomes[5].clone()), Rejection::AlreadyAccused(sibling));
    let state = net.chain.replica.state();
    let suspect = state.suspects.get(&(account(&b), sibling)).expect("accused sibling is suspect");
    let accusation = suspect.accusation.as_ref().expect("accusation recorded");
    assert_eq!(
        (accusation.reporter, accusation.order, accusation.fragment, accusation.epoch),
        (account(&c), order_id, 1, 4)
    );

    // Epoch 5: b's challenges include the accused fragment; b's copy of it is
    // corrupt, so the check fails (recorded with its reason, a strike) and
    // the accusation stands.
    run_to(&mut net.chain, 5, &[]);
    let (_, scheduled) =
        strand_contracts::proofs::schedule(net.chain.replica.state(), &account(&b), 5).expect("beacon");
    let targeted: Vec<_> = scheduled.iter().filter(|s| s.reason == Reason::Suspect).collect();
    assert_eq!(targeted.len(), 1);
    assert_eq!((Digest(targeted[0].contract), targeted[0].challenge.fragment), (sibling, 1));
    assert!(targeted[0].challenge.chunk < 4, "in the accused group (4 KiB fragments: chunks 0..4)");
    let corrupt = |_: &Digest| {
        let mut stored = fragments(1);
        stored[1].iter_mut().for_each(|byte| *byte ^= 0xff);
        stored
    };
    let (epoch, proofs) = honest_submission_from(&net.chain, &b, corrupt);
    assert_eq!(net.chain.submit(&b, Body::SubmitProofs { epoch, proofs }), Outcome::Accepted);
    let state = net.chain.replica.state();
    assert!(matches!(state.proofs.get(&(5, sibling)).map(|record| record.status), Some(ProofStatus::Failed(_))));
    assert_eq!(state.contracts.get(&sibling).expect("sibling").proofs.strikes, 1);
    assert!(state.suspects.get(&(account(&b), sibling)).and_then(|s| s.accusation.as_ref()).is_some());

    // Epoch 6: an honest answer clears strikes, suspicion and accusation.
    run_to(&mut net.chain, 6, &[&b]);
    let state = net.chain.replica.state();
    assert_eq!(state.contracts.get(&sibling).expect("sibling").proofs.strikes, 0);
    assert!(state.suspects.get(&(account(&b), sibling)).is_none(), "accusation answered");
}

#[test]
fn two_orders_racing_for_one_contract_move_it_once() {
    let (mut net, ids) = network(&[1]);
    let id = ids[0];
    let b = identity(3);
    run_to(&mut net.chain, 4, &[&b]);
    let (first_id, first) = order_of(net.chain.replica.state(), &id);
    run_to(&mut net.chain, first.deadline_epoch + 1, &[&b]);
    let (second_id, second) = order_of(net.chain.replica.state(), &id);
    let identity_of = |account: AccountId| if account == account_of(4) { identity(4) } else { identity(5) };
    let (late, current) = (identity_of(first.repairer), identity_of(second.repairer));
    // Both repairers rebuilt and report in the same block, the late one
    // first; then the current one once more.
    let transactions = vec![
        net.chain.transaction(&late, Body::RecordRepair { order: first_id, contract: id }),
        net.chain.transaction(&current, Body::RecordRepair { order: second_id, contract: id }),
        net.chain.transaction(&current, Body::RecordRepair { order: second_id, contract: id }),
    ];
    let outcomes: Vec<Outcome> = net.chain.block(transactions).into_iter().map(|receipt| receipt.outcome).collect();
    assert_eq!(rejected(outcomes[0].clone()), Rejection::UnknownRepairOrder(first_id));
    assert_eq!(outcomes[1], Outcome::Accepted);
    assert_eq!(rejected(outcomes[2].clone()), Rejection::RepairAlreadyReported(second_id));
    let epoch = net.chain.replica.state().epoch();
    run_to(&mut net.chain, epoch + 1, &[&b]);
    let state = net.chain.replica.state();
    let contract = state.contracts.get(&id).expect("contract");
    assert_eq!((contract.holder, contract.repairs, contract.repair), (second.repairer, 1, RepairState::None));
    let holders = state.upload_holders.get(&([1; 16], first.repairer)).copied();
    assert_eq!(holders, None, "the late repairer holds nothing of the upload on the ledger");
    assert_eq!(state.providers.get(&first.repairer).expect("late").committed_bytes, 0);
}

fn account_of(seed: u8) -> AccountId {
    account(&identity(seed))
}

#[test]
fn an_upload_every_provider_holds_is_still_repaired_by_a_holder_as_the_last_resort() {
    let (mut net, ids) = network(&[1]);
    let id = ids[0];
    let (owner, b, c, d) = (identity(1), identity(3), identity(4), identity(5));
    // c and d take contracts of upload 1 too: every provider holds it.
    let mut transactions = Vec::new();
    for provider in [&c, &d] {
        let mut terms = terms(&owner, provider, 1);
        terms.term_epochs = 100;
        let body = open_contract(&net.chain, terms, provider);
        transactions.push(net.chain.transaction(&owner, body));
    }
    assert!(net.chain.block(transactions).iter().all(|receipt| receipt.outcome == Outcome::Accepted));
    run_to(&mut net.chain, 5, &[&b, &c, &d]);
    let state = net.chain.replica.state();
    assert!(matches!(contract_state(state, &id).0, ContractStatus::Lost { .. }));
    let (_, order) = order_of(state, &id);
    assert!(
        [account(&b), account(&c), account(&d)].contains(&order.repairer),
        "a live holder of the upload, never the lost holder: {order:?}"
    );
    assert_ne!(order.repairer, account(&net.a));
    assert_every_lost_contract_in_repair(state);
}
