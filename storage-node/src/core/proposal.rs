//! What a node accepts: its acceptance policy (from its configuration) and
//! the checks a proposal must pass before the node commits anything.

use serde::{Deserialize, Serialize};
use strand_contracts::AccountId;
use strand_contracts::apply::STRIKES_MAX_LIMIT;
use strand_proof_of_storage::merkle;
use strand_proof_of_storage::policy::{FRAGMENT_BYTES_MAX, FRAGMENTS_PER_CONTRACT_MAX};
use strand_proof_of_storage::schedule::CHALLENGES_PER_PROVIDER_MAX;
use strand_wire::{Proposal, Refusal};

/// Bounds a node puts on the terms it signs (`[acceptance]` in its
/// configuration; every field has a default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcceptancePolicy {
    /// Largest fragment accepted, in bytes (a chunk and its 16-byte tag).
    pub fragment_bytes_max: u32,
    /// Most fragments in one contract.
    pub fragments_per_contract_max: u32,
    /// Longest term accepted, in epochs.
    pub term_epochs_max: u32,
    /// Fewest challenges per epoch a contract may ask for.
    pub challenges_per_epoch_min: u16,
    /// Most challenges per epoch a contract may ask for.
    pub challenges_per_epoch_max: u16,
    /// Fewest consecutive failed checks a contract may allow before it is
    /// lost.
    pub strikes_min: u16,
    /// Most consecutive failed checks a contract may allow.
    pub strikes_max: u16,
    /// Most agreements the node holds at once.
    pub contracts_max: u32,
}

impl Default for AcceptancePolicy {
    fn default() -> Self {
        Self {
            fragment_bytes_max: FRAGMENT_BYTES_MAX,
            fragments_per_contract_max: 500_000,
            term_epochs_max: 100_000,
            challenges_per_epoch_min: 1,
            challenges_per_epoch_max: CHALLENGES_PER_PROVIDER_MAX as u16,
            strikes_min: 1,
            strikes_max: 10,
            contracts_max: 100_000,
        }
    }
}

impl AcceptancePolicy {
    /// Whether the policy is one the ledger can honour (checked when the
    /// configuration is loaded).
    pub fn validate(&self) -> Result<(), String> {
        let ranges = [
            ("fragment_bytes_max", u64::from(self.fragment_bytes_max), 1, u64::from(FRAGMENT_BYTES_MAX)),
            (
                "fragments_per_contract_max",
                u64::from(self.fragments_per_contract_max),
                1,
                u64::from(FRAGMENTS_PER_CONTRACT_MAX),
            ),
            ("term_epochs_max", u64::from(self.term_epochs_max), 1, u64::from(u32::MAX)),
            (
                "challenges_per_epoch_max",
                u64::from(self.challenges_per_epoch_max),
                u64::from(self.challenges_per_epoch_min.max(1)),
                u64::from(CHALLENGES_PER_PROVIDER_MAX),
            ),
            (
                "strikes_max",
                u64::from(self.strikes_max),
                u64::from(self.strikes_min.max(1)),
                u64::from(STRIKES_MAX_LIMIT),
            ),
            ("contracts_max", u64::from(self.contracts_max), 1, u64::from(u32::MAX)),
        ];
        for (name, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(format!("acceptance.{name} = {value} is outside {low}..={high}"));
            }
        }
        Ok(())
    }
}

fn outside(
    what: &str,
    value: impl std::fmt::Display,
    low: impl std::fmt::Display,
    high: impl std::fmt::Display,
) -> Refusal {
    Refusal::Terms(format!("{what} {value} is outside {low}..={high}, which this node accepts"))
}

/// Checks a proposal's terms for this node (`me`) against `policy`: cheap
/// checks only (the fragment root is [`check_root`]).
pub fn check_terms(proposal: &Proposal, me: &AccountId, policy: &AcceptancePolicy) -> Result<(), Refusal> {
    let terms = &proposal.terms;
    if terms.provider != *me {
        return Err(Refusal::NotForThisNode);
    }
    if terms.fragment_size == 0 || terms.fragment_size > policy.fragment_bytes_max {
        return Err(outside("fragment size", terms.fragment_size, 1, policy.fragment_bytes_max));
    }
    if terms.fragment_count == 0 || terms.fragment_count > policy.fragments_per_contract_max {
        return Err(outside("fragment count", terms.fragment_count, 1, policy.fragments_per_contract_max));
    }
    if terms.term_epochs == 0 || terms.term_epochs > policy.term_epochs_max {
        return Err(outside("term (epochs)", terms.term_epochs, 1, policy.term_epochs_max));
    }
    let challenges = terms.proof_policy.challenges_per_epoch;
    if !(policy.challenges_per_epoch_min..=policy.challenges_per_epoch_max).contains(&challenges) {
        let (low, high) = (policy.challenges_per_epoch_min, policy.challenges_per_epoch_max);
        return Err(outside("proof policy: challenges per epoch", challenges, low, high));
    }
    let strikes = terms.proof_policy.strikes_max;
    if !(policy.strikes_min..=policy.strikes_max).contains(&strikes) {
        return Err(outside("proof policy: strikes", strikes, policy.strikes_min, policy.strikes_max));
    }
    if terms.data_shards == 0 || terms.parity_shards == 0 {
        return Err(Refusal::Terms("k and m must both be positive".into()));
    }
    if proposal.fragment_ids.len() != terms.fragment_count as usize {
        return Err(Refusal::FragmentsMismatch);
    }
    Ok(())
}

/// Whether the fragment ids are the ones the terms' root commits to, and
/// the stripe map the one `stripes_root` commits to, placing exactly these
/// fragments on this provider (work proportional to the upload's fragment
/// count: run it off the async executor).
pub fn check_root(proposal: &Proposal) -> Result<(), Refusal> {
    if merkle::root(&proposal.fragment_ids) != proposal.terms.fragment_root.0 {
        return Err(Refusal::FragmentsMismatch);
    }
    let map = &proposal.stripe_map;
    map.check(&proposal.terms).map_err(|error| Refusal::StripeMap(error.to_string()))?;
    if map.fragments_of(&proposal.terms.provider) != proposal.fragment_ids {
        return Err(Refusal::StripeMap("it places other fragments on this provider".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{terms, with_stripe_map};
    use strand_wire::FragmentSource;

    const ME: AccountId = AccountId([2; 32]);

    fn proposal() -> Proposal {
        let mut terms = terms(AccountId([9; 32]), 1);
        let fragment_ids = vec![[5; 32], [6; 32]];
        terms.fragment_root = strand_contracts::Digest(merkle::root(&fragment_ids));
        let stripe_map = with_stripe_map(&mut terms, &fragment_ids);
        Proposal { terms, fragment_ids, source: FragmentSource { endpoint: [9; 32], addresses: vec![] }, stripe_map }
    }

    #[test]
    fn every_bound_of_the_policy_is_a_refusal_with_its_reason() {
        let policy = AcceptancePolicy::default();
        assert_eq!(check_terms(&proposal(), &ME, &policy), Ok(()));
        assert_eq!(check_root(&proposal()), Ok(()));
        let refused = |change: &dyn Fn(&mut Proposal)| {
            let mut proposal = proposal();
            change(&mut proposal);
            check_terms(&proposal, &ME, &policy).and_then(|()| check_root(&proposal))
        };
        let reason = |result: Result<(), Refusal>| match result {
            Err(Refusal::Terms(reason)) => reason,
            other => panic!("expected a terms refusal, got {other:?}"),
        };
        assert_eq!(refused(&|p| p.terms.provider = AccountId([3; 32])), Err(Refusal::NotForThisNode));
        assert!(reason(refused(&|p| p.terms.fragment_size = 0)).contains("fragment size 0"));
        assert!(reason(refused(&|p| p.terms.fragment_size = u32::MAX)).contains("fragment size"));
        assert!(reason(refused(&|p| p.terms.fragment_count = 600_000)).contains("fragment count"));
        assert!(reason(refused(&|p| p.terms.term_epochs = 0)).contains("term"));
        assert!(reason(refused(&|p| p.terms.term_epochs = u32::MAX)).contains("term"));
        assert!(reason(refused(&|p| p.terms.proof_policy.challenges_per_epoch = 0)).contains("challenges per epoch"));
        assert!(reason(refused(&|p| p.terms.proof_policy.challenges_per_epoch = 65_535)).contains("challenges"));
        assert!(reason(refused(&|p| p.terms.proof_policy.strikes_max = 0)).contains("strikes"));
        assert!(reason(refused(&|p| p.terms.proof_policy.strikes_max = 1_000)).contains("strikes"));
        assert!(reason(refused(&|p| p.terms.parity_shards = 0)).contains("k and m"));
        assert_eq!(refused(&|p| p.fragment_ids.push([7; 32])), Err(Refusal::FragmentsMismatch));
        assert_eq!(refused(&|p| p.fragment_ids[1] = [7; 32]), Err(Refusal::FragmentsMismatch));
        let stripe_map = |result: Result<(), Refusal>| match result {
            Err(Refusal::StripeMap(reason)) => reason,
            other => panic!("expected a stripe map refusal, got {other:?}"),
        };
        assert!(stripe_map(refused(&|p| p.stripe_map.stripes[0].swap(0, 1))).contains("root"));
        assert!(stripe_map(refused(&|p| p.stripe_map.stripes.pop().map(drop).unwrap_or_default())).contains("stripes"));
        assert!(stripe_map(refused(&|p| p.stripe_map.stripes[0][0].1 = 7)).contains("slot"));
        // A map that commits correctly but gives this provider other
        // fragments than the proposal lists.
        let other = |p: &mut Proposal| {
            p.stripe_map.slots.swap(0, 1);
            p.terms.stripes_root = p.stripe_map.root();
        };
        assert!(stripe_map(refused(&other)).contains("other fragments"));
    }

    #[test]
    fn a_policy_the_ledger_cannot_honour_is_refused_at_load() {
        assert_eq!(AcceptancePolicy::default().validate(), Ok(()));
        let too_many = AcceptancePolicy { challenges_per_epoch_max: 100, ..Default::default() };
        assert!(too_many.validate().expect_err("refused").contains("challenges_per_epoch_max"));
        let inverted = AcceptancePolicy { strikes_min: 5, strikes_max: 2, ..Default::default() };
        assert!(inverted.validate().is_err());
    }
}
