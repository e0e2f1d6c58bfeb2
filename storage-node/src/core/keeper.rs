//! What the node keeps and has promised to keep: its agreements, its
//! staging reservations, its capacity and its acceptance policy, decided
//! together. The daemon holds one `Keeper` behind one lock, so admitting a
//! proposal or a staging request (capacity, ownership, recording) is one
//! atomic step: concurrent proposals can never commit more than the
//! capacity, and a fragment never changes hands.
//!
//! Ownership: a proposer may claim a fragment only if no other owner's
//! agreement holds it and no other owner's reservation names it. What the
//! proposer already holds here (its own agreements, or fragments its
//! reservation pulled from it and verified) is not fetched again; anything
//! else is fetched from the proposer and verified against its id, even if
//! the store happens to have the bytes (an unowned blob awaiting garbage
//! collection proves nothing about the proposer).

use std::time::Instant;

use strand_contracts::transaction::ContractTerms;
use strand_contracts::{AccountId, Digest};
use strand_wire::{Proposal, Refusal, Stage};

use super::holdings::{Agreement, AgreementState, Holdings};
use super::proposal::AcceptancePolicy;
use super::staging::{Reservation, Staging};

/// The node's agreements and reservations against its capacity.
#[derive(Debug)]
pub struct Keeper {
    /// Agreements, indexed by fragment.
    pub holdings: Holdings,
    /// Reservations for fragments pulled ahead of proposals.
    pub staging: Staging,
    capacity_bytes: u64,
    policy: AcceptancePolicy,
}

/// What admitting a proposal decided.
#[derive(Debug)]
pub struct Admission {
    /// The agreement now recorded as fetching.
    pub agreement: Agreement,
    /// The fragments to fetch from the proposer (the rest it already holds
    /// here).
    pub fetch: Vec<[u8; 32]>,
    /// The proposer's staging reservation for the upload, now ended.
    pub reservation: Option<Reservation>,
}

impl Keeper {
    /// A keeper of `holdings` with `capacity_bytes` and `policy`.
    pub fn new(holdings: Holdings, capacity_bytes: u64, policy: AcceptancePolicy) -> Self {
        Self { holdings, staging: Staging::default(), capacity_bytes, policy }
    }

    /// The capacity offered.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// The acceptance policy.
    pub fn policy(&self) -> &AcceptancePolicy {
        &self.policy
    }

    /// Capacity neither promised under agreements nor reserved by staging.
    pub fn free_bytes(&self) -> u64 {
        self.capacity_bytes
            .saturating_sub(self.holdings.committed_bytes())
            .saturating_sub(self.staging.reserved_bytes())
    }

    /// The first fragment of `fragments` another owner holds or stages here.
    fn claimed_by_another(&self, owner: &AccountId, fragments: &[[u8; 32]]) -> Option<[u8; 32]> {
        fragments.iter().copied().find(|fragment| {
            self.holdings.owner_of(fragment).is_some_and(|holder| holder != *owner)
                || self.staging.named_by_another(owner, fragment).is_some()
        })
    }

    /// Whether a new agreement for `terms` over `fragment_ids` fits: not
    /// held yet (else refused as `held`), under the contract limit, within
    /// the free capacity, and no fragment held or staged for another owner.
    fn admissible(&self, terms: &ContractTerms, fragment_ids: &[[u8; 32]], held: &str) -> Result<(), Refusal> {
        if self.holdings.agreement(&terms.id()).is_some() {
            return Err(Refusal::Terms(held.into()));
        }
        if self.holdings.len() >= self.policy.contracts_max as usize {
            return Err(Refusal::Busy(format!("this node holds its limit of {} contracts", self.policy.contracts_max)));
        }
        let needed_bytes = u64::from(terms.fragment_count) * u64::from(terms.fragment_size);
        let free_bytes = self.free_bytes();
        if needed_bytes > free_bytes {
            return Err(Refusal::NoCapacity { free_bytes, needed_bytes });
        }
        if let Some(fragment) = self.claimed_by_another(&terms.owner, fragment_ids) {
            return Err(Refusal::HeldForAnotherOwner { fragment: hex::encode(fragment) });
        }
        Ok(())
    }

    /// Admits `proposal` from its owner (the caller checked that the peer is
    /// the owner named, and the terms and root with
    /// [`super::proposal::check_terms`] and [`super::proposal::check_root`]):
    /// ends the owner's reservation for the upload, checks capacity,
    /// ownership and the contract limit, and records the agreement as
    /// fetching.
    pub fn admit_proposal(&mut self, proposal: &Proposal) -> Result<Admission, Refusal> {
        let terms = &proposal.terms;
        let owner = terms.owner;
        let key = (owner, terms.upload);
        // The proposal ends the owner's staging for this upload whatever
        // its outcome: its reservation no longer holds capacity.
        let reservation = self.staging.take(&key);
        self.admissible(terms, &proposal.fragment_ids, "this contract was already proposed")?;
        let staged = |fragment: &[u8; 32]| reservation.as_ref().is_some_and(|held| held.held.contains(fragment));
        let fetch = proposal
            .fragment_ids
            .iter()
            .copied()
            .filter(|fragment| !staged(fragment) && self.holdings.owner_of(fragment) != Some(owner))
            .collect();
        let agreement = Agreement {
            terms: terms.clone(),
            fragment_ids: proposal.fragment_ids.clone(),
            state: AgreementState::Fetching,
        };
        self.holdings.insert(agreement.clone());
        Ok(Admission { agreement, fetch, reservation })
    }

    /// Admits the rebuilding of a contract under a repair order (the caller
    /// checked the order on the ledger and the fragment list against the
    /// terms): capacity, ownership and the contract limit as for a
    /// proposal; the agreement is recorded as fetching until every rebuilt
    /// fragment is stored.
    pub fn admit_repair(&mut self, terms: &ContractTerms, fragment_ids: &[[u8; 32]]) -> Result<Agreement, Refusal> {
        self.admissible(terms, fragment_ids, "this contract is already held here")?;
        let agreement =
            Agreement { terms: terms.clone(), fragment_ids: fragment_ids.to_vec(), state: AgreementState::Fetching };
        self.holdings.insert(agreement.clone());
        Ok(agreement)
    }

    /// Admits a staging request of `owner`: capacity (shared with the other
    /// reservations and the agreements), ownership of every fragment named;
    /// returns the fragments to pull now.
    pub fn admit_stage(&mut self, owner: AccountId, stage: &Stage, now: Instant) -> Result<Vec<[u8; 32]>, Refusal> {
        if let Some(fragment) = self.claimed_by_another(&owner, &stage.fragment_ids) {
            return Err(Refusal::HeldForAnotherOwner { fragment: hex::encode(fragment) });
        }
        // The reservation's own share is counted once: the free capacity
        // here excludes every reservation, and `admit` subtracts them again
        // only for a new one.
        let free = self.capacity_bytes.saturating_sub(self.holdings.committed_bytes());
        self.staging.admit(owner, stage, free, &self.policy, now)
    }

    /// Records a fetched agreement as signed at `height`.
    pub fn signed(&mut self, id: &Digest, height: u64) -> Option<Agreement> {
        let agreement = self.holdings.agreement(id)?.clone();
        let signed = Agreement { state: AgreementState::Signed { at_height: height }, ..agreement };
        self.holdings.insert(signed.clone());
        Some(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::terms;
    use strand_proof_of_storage::merkle;
    use strand_wire::FragmentSource;

    const OWNER: AccountId = AccountId([9; 32]);
    const STRANGER: AccountId = AccountId([8; 32]);
    const SIZE: u64 = 1040;

    fn proposal(owner: AccountId, upload: u8, fragments: &[u8]) -> Proposal {
        let mut terms = terms(owner, upload);
        let fragment_ids: Vec<[u8; 32]> = fragments.iter().map(|byte| [*byte; 32]).collect();
        terms.fragment_count = fragment_ids.len() as u32;
        terms.fragment_root = Digest(merkle::root(&fragment_ids));
        let stripe_map = crate::core::fixtures::with_stripe_map(&mut terms, &fragment_ids);
        Proposal { terms, fragment_ids, source: FragmentSource { endpoint: owner.0, addresses: vec![] }, stripe_map }
    }

    fn stage(upload: u8, count: u32, fragments: &[u8]) -> Stage {
        Stage {
            upload: [upload; 16],
            fragment_count: count,
            fragment_size: SIZE as u32,
            source: FragmentSource { endpoint: [1; 32], addresses: vec![] },
            fragment_ids: fragments.iter().map(|byte| [*byte; 32]).collect(),
        }
    }

    fn keeper(capacity: u64) -> Keeper {
        Keeper::new(Holdings::default(), capacity, AcceptancePolicy::default())
    }

    #[test]
    fn a_stranger_cannot_claim_fragments_another_owner_holds_or_stages() {
        let mut keeper = keeper(100 * SIZE);
        let admitted = keeper.admit_proposal(&proposal(OWNER, 1, &[5, 6])).expect("the owner's proposal");
        assert_eq!(admitted.fetch, vec![[5; 32], [6; 32]]);
        let id = admitted.agreement.terms.id();
        keeper.signed(&id, 3);
        // Same fragment ids, another key: refused, nothing recorded.
        let refused = keeper.admit_proposal(&proposal(STRANGER, 1, &[6, 7]));
        assert_eq!(refused.map(|_| ()), Err(Refusal::HeldForAnotherOwner { fragment: hex::encode([6; 32]) }));
        assert!(matches!(
            keeper.admit_stage(STRANGER, &stage(2, 2, &[5]), Instant::now()),
            Err(Refusal::HeldForAnotherOwner { .. })
        ));
        assert_eq!(keeper.holdings.len(), 1);
        assert_eq!(keeper.holdings.owner_of(&[6; 32]), Some(OWNER));
        // Fragments another owner is staging are refused too.
        keeper.admit_stage(OWNER, &stage(3, 2, &[20, 21]), Instant::now()).expect("staged");
        let refused = keeper.admit_proposal(&proposal(STRANGER, 4, &[21]));
        assert!(matches!(refused, Err(Refusal::HeldForAnotherOwner { .. })));
    }

    #[test]
    fn what_the_owner_already_holds_is_not_fetched_and_staged_fragments_are_found() {
        let mut keeper = keeper(100 * SIZE);
        keeper.admit_proposal(&proposal(OWNER, 1, &[5, 6])).expect("first");
        // The owner's second contract shares fragment 6: only 7 is fetched.
        let second = keeper.admit_proposal(&proposal(OWNER, 2, &[6, 7])).expect("second");
        assert_eq!(second.fetch, vec![[7; 32]]);
        // Staged and held fragments are not fetched again; named but not
        // yet held ones are.
        let now = Instant::now();
        keeper.admit_stage(OWNER, &stage(3, 2, &[30, 31]), now).expect("staged");
        keeper.staging.held(&(OWNER, [3; 16]), &[[30; 32]], now);
        let third = keeper.admit_proposal(&proposal(OWNER, 3, &[30, 31])).expect("third");
        assert_eq!(third.fetch, vec![[31; 32]]);
        assert!(third.reservation.is_some());
        assert!(keeper.staging.is_empty(), "the proposal ended the reservation");
    }

    #[test]
    fn concurrent_proposals_never_commit_more_than_the_capacity() {
        // Room for three fragments: the first two-fragment proposal fits,
        // the second does not, whatever the order they arrive in.
        let mut keeper = keeper(3 * SIZE);
        keeper.admit_proposal(&proposal(OWNER, 1, &[1, 2])).expect("fits");
        let refused = keeper.admit_proposal(&proposal(STRANGER, 2, &[3, 4]));
        assert_eq!(refused.map(|_| ()), Err(Refusal::NoCapacity { free_bytes: SIZE, needed_bytes: 2 * SIZE }));
        // A reservation holds capacity against proposals too.
        let mut keeper = self::keeper(3 * SIZE);
        keeper.admit_stage(STRANGER, &stage(9, 2, &[40]), Instant::now()).expect("reserved");
        let refused = keeper.admit_proposal(&proposal(OWNER, 1, &[1, 2]));
        assert!(matches!(refused, Err(Refusal::NoCapacity { .. })));
        assert!(keeper.holdings.committed_bytes() + keeper.staging.reserved_bytes() <= 3 * SIZE);
    }

    #[test]
    fn the_contract_limit_is_a_refusal() {
        let policy = AcceptancePolicy { contracts_max: 1, ..Default::default() };
        let mut keeper = Keeper::new(Holdings::default(), u64::MAX, policy);
        keeper.admit_proposal(&proposal(OWNER, 1, &[1])).expect("first");
        assert!(matches!(keeper.admit_proposal(&proposal(OWNER, 2, &[2])), Err(Refusal::Busy(_))));
        assert!(matches!(keeper.admit_proposal(&proposal(OWNER, 1, &[1])), Err(Refusal::Terms(_))), "twice");
    }
}
