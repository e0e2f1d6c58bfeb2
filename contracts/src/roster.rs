//! A provider's roster: the contracts it owes proofs for, in slots
//! `1..=n` of [`LedgerState::roster`], with a Fenwick tree over their chunk
//! counts so that the schedule's byte sampling finds the contract holding
//! any chunk in `O(log n)` reads, and adding or removing a contract costs
//! `O(log n)` writes. A removed contract's slot takes the last slot's
//! contract, so slots stay dense.
//!
//! Rosters change only at epoch boundaries ([`crate::epoch`]): the schedule
//! a provider answers is fixed for the whole epoch.

use strand_proof_of_storage::schedule::{Roster, RosterContract, Suspect};

use crate::state::{LedgerState, RosterSlot, RosterSummary};
use crate::types::{AccountId, Digest};

fn lowbit(index: u32) -> u32 {
    index & index.wrapping_neg()
}

fn slot(state: &LedgerState, provider: &AccountId, index: u32) -> Option<RosterSlot> {
    state.roster.get(&(*provider, index)).copied()
}

fn summary(state: &LedgerState, provider: &AccountId) -> RosterSummary {
    state.providers.get(provider).map(|record| record.roster).unwrap_or_default()
}

/// Chunks of slots `1..=index`.
fn prefix(state: &LedgerState, provider: &AccountId, mut index: u32) -> u64 {
    let mut sum = 0u64;
    while index > 0 {
        sum = sum.saturating_add(slot(state, provider, index).map_or(0, |slot| slot.tree));
        index -= lowbit(index);
    }
    sum
}

/// Adds `delta` (which may be negative) to the chunks of slot `index` in a
/// roster of `len` slots.
fn shift(state: &mut LedgerState, provider: &AccountId, mut index: u32, len: u32, delta: i128) {
    while index != 0 && index <= len {
        state.roster.update(&(*provider, index), |slot| {
            slot.tree = u64::try_from(i128::from(slot.tree) + delta).unwrap_or(0);
        });
        index = index.saturating_add(lowbit(index));
    }
}

fn set_summary(state: &mut LedgerState, provider: &AccountId, change: impl FnOnce(&mut RosterSummary)) {
    state.providers.update(provider, |record| change(&mut record.roster));
}

/// Puts contract `id` in its provider's roster (it must not be in one).
pub fn add(state: &mut LedgerState, id: &Digest) {
    let Some(contract) = state.contracts.get(id).cloned() else { return };
    if contract.roster_slot.is_some() {
        return;
    }
    let provider = contract.holder;
    let before = summary(state, &provider);
    let Some(index) = before.contracts.checked_add(1) else { return };
    let chunks = contract.chunks();
    // The new node covers (index - lowbit(index), index]: the slots before it
    // in that span, plus its own chunks.
    let covered = prefix(state, &provider, index - 1) - prefix(state, &provider, index - lowbit(index));
    state.roster.insert((provider, index), RosterSlot { contract: *id, chunks, tree: chunks.saturating_add(covered) });
    state.contracts.update(id, |contract| contract.roster_slot = Some(index));
    let demand = u64::from(contract.terms.proof_policy.challenges_per_epoch);
    set_summary(state, &provider, |summary| {
        summary.contracts = index;
        summary.chunks = summary.chunks.saturating_add(chunks);
        summary.demand = summary.demand.saturating_add(demand);
    });
}

/// Takes contract `id` out of its provider's roster (if it is in one).
pub fn remove(state: &mut LedgerState, id: &Digest) {
    let Some(contract) = state.contracts.get(id).cloned() else { return };
    let Some(index) = contract.roster_slot else { return };
    let provider = contract.holder;
    let len = summary(state, &provider).contracts;
    let Some(removed) = slot(state, &provider, index) else { return };
    if index != len
        && let Some(last) = slot(state, &provider, len)
    {
        // The last slot's contract moves into the freed slot.
        shift(state, &provider, index, len, i128::from(last.chunks) - i128::from(removed.chunks));
        state.roster.update(&(provider, index), |slot| {
            slot.contract = last.contract;
            slot.chunks = last.chunks;
        });
        state.contracts.update(&last.contract, |moved| moved.roster_slot = Some(index));
    }
    // The last node covers no other slot's chunks that remain.
    state.roster.remove(&(provider, len));
    state.contracts.update(id, |contract| contract.roster_slot = None);
    let demand = u64::from(contract.terms.proof_policy.challenges_per_epoch);
    set_summary(state, &provider, |summary| {
        summary.contracts = len.saturating_sub(1);
        summary.chunks = summary.chunks.saturating_sub(removed.chunks);
        summary.demand = summary.demand.saturating_sub(demand);
    });
}

/// The contract in the last slot of `provider`'s roster.
pub fn last(state: &LedgerState, provider: &AccountId) -> Option<Digest> {
    slot(state, provider, summary(state, provider).contracts).map(|slot| slot.contract)
}

/// A provider's roster as the schedule of `epoch` sees it.
pub struct RosterView<'a> {
    state: &'a LedgerState,
    provider: AccountId,
    summary: RosterSummary,
    epoch: u64,
}

impl<'a> RosterView<'a> {
    /// `provider`'s roster in `state`, for `epoch`'s schedule.
    pub fn of(state: &'a LedgerState, provider: &AccountId, epoch: u64) -> Self {
        Self { state, provider: *provider, summary: summary(state, provider), epoch }
    }

    fn contract(&self, id: &Digest) -> Option<RosterContract> {
        let contract = self.state.contracts.get(id)?;
        Some(RosterContract {
            contract: id.0,
            fragment_count: contract.terms.fragment_count,
            fragment_size: contract.terms.fragment_size,
        })
    }
}

impl Roster for RosterView<'_> {
    fn len(&self) -> u32 {
        self.summary.contracts
    }

    fn total_chunks(&self) -> u64 {
        self.summary.chunks
    }

    fn demand(&self) -> u64 {
        self.summary.demand
    }

    fn cursor(&self) -> u64 {
        self.summary.cursor
    }

    fn at(&self, index: u32) -> Option<RosterContract> {
        let slot = slot(self.state, &self.provider, index.checked_add(1)?)?;
        self.contract(&slot.contract)
    }

    fn locate(&self, chunk: u64) -> Option<(u32, u64)> {
        let len = self.summary.contracts;
        if chunk >= self.summary.chunks || len == 0 {
            return None;
        }
        // Descend the Fenwick tree: the largest position whose prefix is at
        // most `chunk`; the chunk lies in the slot after it.
        let (mut position, mut remaining) = (0u32, chunk);
        let mut step = 1u32 << (31 - len.leading_zeros());
        while step > 0 {
            let next = position + step;
            if next <= len {
                let node = slot(self.state, &self.provider, next)?.tree;
                if node <= remaining {
                    position = next;
                    remaining -= node;
                }
            }
            step >>= 1;
        }
        // `position` is the 0-based index of the slot holding the chunk.
        (position < len).then_some((position, remaining))
    }

    fn suspects(&self, max: u32) -> Vec<Suspect> {
        let from = (self.provider, Digest([0; 32]));
        let to = (self.provider, Digest([0xff; 32]));
        self.state
            .suspects
            .range(from..=to)
            .filter(|(_, suspect)| suspect.since < self.epoch)
            .take(max as usize)
            .filter_map(|((_, id), suspect)| {
                let accused = suspect.accusation.as_ref().map(|accusation| (accusation.fragment, accusation.chunk));
                self.contract(id).map(|contract| Suspect { contract, accused })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Contract, Provider};
    use crate::transaction::{ContractTerms, FailureDomain, ProofPolicy, ProviderRegistration};
    use strand_proof_of_storage::schedule::MemoryRoster;

    const PROVIDER: AccountId = AccountId([7; 32]);

    fn state() -> LedgerState {
        let params = crate::state::ChainParams { chain: Digest([1; 32]), epoch_blocks: 10 };
        let mut state = LedgerState::new(params);
        let registration = ProviderRegistration {
            endpoints: vec!["x".into()],
            capacity_bytes: u64::MAX,
            domain: FailureDomain { organisation: "o".into(), site: "s".into(), jurisdiction: "j".into() },
        };
        state.providers.insert(PROVIDER, Provider::registered(registration, 0, 0));
        state
    }

    fn open(state: &mut LedgerState, seed: u32, fragment_count: u32) -> Digest {
        let mut upload = [0u8; 16];
        upload[..4].copy_from_slice(&seed.to_le_bytes());
        let terms = ContractTerms {
            upload,
            owner: AccountId([2; 32]),
            provider: PROVIDER,
            fragment_root: Digest([3; 32]),
            fragment_count,
            fragment_size: 1024,
            data_shards: 1,
            parity_shards: 1,
            stripe_count: 1,
            stripes_root: Digest([4; 32]),
            term_epochs: 10,
            proof_policy: ProofPolicy { challenges_per_epoch: 20, strikes_max: 3 },
        };
        let id = terms.id();
        state.contracts.insert(id, Contract::opened(terms, 0, 0));
        add(state, &id);
        id
    }

    /// The same roster, as a plain list in slot order.
    fn as_list(state: &LedgerState) -> MemoryRoster {
        let view = RosterView::of(state, &PROVIDER, 1);
        MemoryRoster {
            contracts: (0..view.len()).map(|index| view.at(index).expect("slot")).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn locate_agrees_with_a_linear_scan_through_adds_and_removes() {
        let mut state = state();
        let mut ids: Vec<Digest> = (0..37u32).map(|seed| open(&mut state, seed, 1 + seed % 5)).collect();
        // Remove from the middle, the front and the end, and add again.
        for at in [5usize, 0, 30, 11, 11] {
            let id = ids.remove(at.min(ids.len() - 1));
            remove(&mut state, &id);
        }
        ids.push(open(&mut state, 100, 7));
        let view = RosterView::of(&state, &PROVIDER, 1);
        let list = as_list(&state);
        assert_eq!(view.len() as usize, ids.len());
        assert_eq!(view.total_chunks(), list.total_chunks());
        assert_eq!(view.demand(), 20 * ids.len() as u64);
        for chunk in 0..view.total_chunks() {
            assert_eq!(view.locate(chunk), list.locate(chunk), "chunk {chunk}");
        }
        assert_eq!(view.locate(view.total_chunks()), None);
        // Every contract still in the roster is in exactly one slot, and its
        // record names that slot.
        for (index, contract) in list.contracts.iter().enumerate() {
            let record = state.contracts.get(&Digest(contract.contract)).expect("contract");
            assert_eq!(record.roster_slot, Some(index as u32 + 1));
        }
        let mut listed: Vec<[u8; 32]> = list.contracts.iter().map(|contract| contract.contract).collect();
        listed.sort();
        let mut expected: Vec<[u8; 32]> = ids.iter().map(|id| id.0).collect();
        expected.sort();
        assert_eq!(listed, expected);
    }

    #[test]
    fn removing_everything_leaves_an_empty_roster() {
        let mut state = state();
        let ids: Vec<Digest> = (0..9u32).map(|seed| open(&mut state, seed, 2)).collect();
        for id in ids.iter().rev().step_by(2).chain(ids.iter().step_by(2)) {
            remove(&mut state, id);
        }
        for id in &ids {
            remove(&mut state, id);
        }
        assert_eq!(state.providers.get(&PROVIDER).expect("provider").roster, RosterSummary::default());
        assert!(state.roster.is_empty());
        assert_eq!(last(&state, &PROVIDER), None);
    }
}
