//! Who may take a fragment from this node, or give it one.
//!
//! Every get and push on the data plane (iroh-blobs) is decided here from
//! the node's own ledger replica and holdings: no bearer tokens, the iroh
//! connection already proves the requester's key. Today a get is served to
//! the owner of the contract holding the fragment; credentials add grantees
//! to [`decide_get`] without changing its callers.

use strand_contracts::AccountId;
use strand_contracts::state::{ContractStatus, LedgerState};

use crate::core::holdings::{AgreementState, Holdings};

/// Why a request was refused. Each has a fixed metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The node holds no such fragment.
    #[error("unknown fragment")]
    UnknownFragment,
    /// The requester may not read it.
    #[error("requester is not authorised for this fragment")]
    NotAuthorised,
    /// A push of a fragment the node did not agree to store.
    #[error("push of a fragment the node did not agree to store")]
    NotAgreed,
    /// The contract is closed, expired or lost on the ledger.
    #[error("the contract is no longer active")]
    ContractInactive,
    /// The node's replica is too far behind to decide safely.
    #[error("the node's ledger replica is too stale to decide")]
    LedgerTooStale,
}

impl Refusal {
    /// The `reason` label of the refusal metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownFragment => "unknown_fragment",
            Self::NotAuthorised => "not_authorised",
            Self::NotAgreed => "not_agreed",
            Self::ContractInactive => "contract_inactive",
            Self::LedgerTooStale => "ledger_too_stale",
        }
    }
}

/// How far behind the service's head a replica may be and still decide.
pub const LEDGER_LAG_BLOCKS_MAX: u64 = 10;

/// Whether `requester` may get `fragment`, given the node's holdings and its
/// ledger replica, `lag_blocks` behind the latest known head.
///
/// The owner may read back whatever the node still holds, whatever the
/// ledger says of the contract: strikes that declare fragments lost must not
/// stop the owner (or, later, a repairer) from reading what is left. The
/// ledger's view of the contract decides for everyone else (credentials).
pub fn decide_get(
    requester: &AccountId,
    fragment: &[u8; 32],
    holdings: &Holdings,
    ledger: &LedgerState,
    lag_blocks: u64,
) -> Result<(), Refusal> {
    let (contract, agreement) = holdings.agreement_of(fragment).ok_or(Refusal::UnknownFragment)?;
    if agreement.terms.owner == *requester {
        return Ok(());
    }
    // Every other reader is decided from the ledger, so a stale replica fails closed.
    if lag_blocks > LEDGER_LAG_BLOCKS_MAX {
        return Err(Refusal::LedgerTooStale);
    }
    match ledger.contracts.get(contract).map(|contract| contract.status) {
        Some(ContractStatus::Active) => Err(Refusal::NotAuthorised),
        _ => Err(Refusal::ContractInactive),
    }
}

/// Whether `sender` may push `fragment`: only the owner of an agreement the
/// node is still fetching.
pub fn decide_push(sender: &AccountId, fragment: &[u8; 32], holdings: &Holdings) -> Result<(), Refusal> {
    match holdings.agreement_of(fragment) {
        Some((_, agreement)) if agreement.state == AgreementState::Fetching && agreement.terms.owner == *sender => {
            Ok(())
        }
        _ => Err(Refusal::NotAgreed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{empty_ledger, terms};
    use crate::core::holdings::Agreement;

    #[test]
    fn only_the_owner_gets_and_only_agreed_fragments_are_pushed() {
        let owner = AccountId([9; 32]);
        let stranger = AccountId([8; 32]);
        let mut holdings = Holdings::default();
        holdings.insert(Agreement {
            terms: terms(owner, 1),
            fragment_ids: vec![[5; 32], [6; 32]],
            state: AgreementState::Fetching,
        });
        let state = empty_ledger();
        assert_eq!(decide_get(&owner, &[5; 32], &holdings, &state, 0), Ok(()));
        assert_eq!(
            decide_get(&owner, &[5; 32], &holdings, &state, 1000),
            Ok(()),
            "the owner reads back whatever is held"
        );
        assert_eq!(decide_get(&stranger, &[5; 32], &holdings, &state, 0), Err(Refusal::ContractInactive));
        assert_eq!(decide_get(&stranger, &[5; 32], &holdings, &state, 11), Err(Refusal::LedgerTooStale));
        assert_eq!(decide_get(&owner, &[7; 32], &holdings, &state, 0), Err(Refusal::UnknownFragment));
        assert_eq!(decide_push(&owner, &[6; 32], &holdings), Ok(()));
        assert_eq!(decide_push(&stranger, &[6; 32], &holdings), Err(Refusal::NotAgreed));
        assert_eq!(decide_push(&owner, &[7; 32], &holdings), Err(Refusal::NotAgreed));
        holdings.insert(Agreement {
            terms: terms(owner, 1),
            fragment_ids: vec![[5; 32], [6; 32]],
            state: AgreementState::Signed { at_height: 3 },
        });
        assert_eq!(decide_push(&owner, &[6; 32], &holdings), Err(Refusal::NotAgreed), "no pushes once signed");
    }
}
