//! Which agreements the node may let go of, decided from its ledger replica.
//!
//! - An agreement signed but never opened on the ledger within
//!   [`UNOPENED_BLOCKS_MAX`] blocks: the owner gave up (or failed); holding
//!   its fragments would leak capacity forever.
//! - A contract the ledger records as closed by its owner or expired.
//! - A contract repair moved to another provider (active, held by someone
//!   else now).
//!
//! Never a contract the ledger marks lost (strikes): the owner, and repair,
//! may still need what the node holds.

use strand_contracts::state::{ContractStatus, LedgerState, RepairState};
use strand_contracts::{AccountId, Digest};

use crate::core::holdings::{AgreementState, Holdings};

/// Blocks a signed agreement may wait for its contract to appear on the ledger.
pub const UNOPENED_BLOCKS_MAX: u64 = 600;

/// The agreements to release at `ledger`'s height.
pub fn releasable(holdings: &Holdings, ledger: &LedgerState, me: &AccountId) -> Vec<Digest> {
    holdings
        .agreements()
        .filter(|(id, agreement)| match ledger.contracts.get(id).map(|contract| (contract.status, contract)) {
            Some((ContractStatus::Closed { .. } | ContractStatus::Expired { .. }, _)) => true,
            // Moved away, unless this node is rebuilding it under an order
            // (a drained contract stays active with its old holder until
            // the move).
            Some((ContractStatus::Active, contract)) => contract.holder != *me && !repairing(ledger, contract, me),
            Some((ContractStatus::Lost { .. }, _)) => false,
            None => match agreement.state {
                AgreementState::Signed { at_height } => ledger.height > at_height + UNOPENED_BLOCKS_MAX,
                AgreementState::Fetching => false,
            },
        })
        .map(|(id, _)| *id)
        .collect()
}

/// Whether `me` holds an open repair order for `contract`.
fn repairing(ledger: &LedgerState, contract: &strand_contracts::state::Contract, me: &AccountId) -> bool {
    match contract.repair {
        RepairState::Ordered { order } => ledger.repair_orders.get(&order).is_some_and(|order| order.repairer == *me),
        RepairState::None | RepairState::Queued { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{empty_ledger, terms};
    use crate::core::holdings::Agreement;
    use strand_contracts::state::Contract;
    use strand_contracts::transaction::ContractTerms;

    /// The provider the fixture terms name.
    const ME: AccountId = AccountId([2; 32]);

    fn terms_of(upload: u8) -> ContractTerms {
        terms(AccountId([1; 32]), upload)
    }

    fn with_status(ledger: &mut LedgerState, terms: &ContractTerms, status: ContractStatus) {
        let contract = Contract { status, ..Contract::opened(terms.clone(), 1, 0) };
        ledger.contracts.insert(terms.id(), contract);
    }

    #[test]
    fn releases_unopened_closed_and_expired_but_never_lost_or_active() {
        let mut ledger = empty_ledger();
        let signed = |upload, at_height| Agreement {
            terms: terms_of(upload),
            fragment_ids: vec![[upload; 32]],
            state: AgreementState::Signed { at_height },
        };
        let holdings = Holdings::from_agreements([
            signed(1, 0),   // never opened
            signed(2, 0),   // closed
            signed(3, 0),   // expired
            signed(4, 0),   // lost
            signed(5, 0),   // active
            signed(8, 0),   // active, moved to another provider by repair
            signed(9, 0),   // active, held by another, being rebuilt here under an order
            signed(6, 500), // not opened yet, still within the wait
            Agreement { terms: terms_of(7), fragment_ids: vec![[7; 32]], state: AgreementState::Fetching },
        ]);
        with_status(&mut ledger, &terms_of(2), ContractStatus::Closed { at_height: 5 });
        with_status(&mut ledger, &terms_of(3), ContractStatus::Expired { at_epoch: 9 });
        with_status(&mut ledger, &terms_of(4), ContractStatus::Lost { at_epoch: 9 });
        with_status(&mut ledger, &terms_of(5), ContractStatus::Active);
        with_status(&mut ledger, &terms_of(8), ContractStatus::Active);
        ledger.contracts.update(&terms_of(8).id(), |contract| contract.holder = AccountId([77; 32]));
        with_status(&mut ledger, &terms_of(9), ContractStatus::Active);
        let order = Digest([5; 32]);
        ledger.contracts.update(&terms_of(9).id(), |contract| {
            contract.holder = AccountId([77; 32]);
            contract.repair = RepairState::Ordered { order };
        });
        ledger.repair_orders.insert(
            order,
            strand_contracts::state::RepairOrder {
                contract: terms_of(9).id(),
                upload: [9; 16],
                repairer: ME,
                previous: AccountId([77; 32]),
                reason: strand_contracts::state::RepairReason::Drain,
                issued_epoch: 0,
                deadline_epoch: 2,
                attempt: 0,
                reported: true,
            },
        );
        ledger.height = UNOPENED_BLOCKS_MAX + 1;
        let mut released = releasable(&holdings, &ledger, &ME);
        released.sort();
        let mut expected = vec![terms_of(1).id(), terms_of(2).id(), terms_of(3).id(), terms_of(8).id()];
        expected.sort();
        assert_eq!(released, expected);
        ledger.height = UNOPENED_BLOCKS_MAX;
        assert!(!releasable(&holdings, &ledger, &ME).contains(&terms_of(1).id()), "not before the wait is over");
    }
}
