//! An upload's stripe map: per stripe, its k+m fragment ids in shard order
//! and the slot (the upload's provider, as named in its contract's terms)
//! holding each. No keys and no file positions (chunks are scrambled
//! before they are striped). Committed by `stripes_root` in every contract's
//! terms, so a repairer can take the map from any provider of the upload
//! and check it: the sibling ids of a lost fragment, and whose contract
//! holds each (the ledger says who holds that contract now).

use borsh::{BorshDeserialize, BorshSerialize};

use crate::transaction::ContractTerms;
use crate::types::{AccountId, Digest};

/// One shard of a stripe: the fragment id and its slot.
pub type Shard = ([u8; 32], u16);

/// An upload's stripe map.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StripeMap {
    /// Slot `i`: the provider named in the terms of the upload's `i`-th
    /// contract.
    pub slots: Vec<AccountId>,
    /// Per stripe, its shards in order (k data, then m parity).
    pub stripes: Vec<Vec<Shard>>,
}

/// A stripe map that does not match a contract's terms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StripeMapError {
    /// Not the terms' shape.
    #[error("the stripe map has {found}, the terms say {expected}")]
    Shape {
        /// What the terms say.
        expected: String,
        /// What the map has.
        found: String,
    },
    /// A shard names a slot past the list.
    #[error("stripe {stripe} names slot {slot}, the map lists {slots}")]
    Slot {
        /// The stripe.
        stripe: u64,
        /// The slot named.
        slot: u16,
        /// Slots listed.
        slots: usize,
    },
    /// The map's root is not `stripes_root`.
    #[error("the stripe map's root is {found}, the terms commit to {expected}")]
    Root {
        /// `stripes_root`.
        expected: Digest,
        /// The map's.
        found: Digest,
    },
}

impl StripeMap {
    /// The map of a placement: per stripe, the index in `accounts` of each
    /// shard's provider (`placements[stripe][shard]`), and `id(stripe,
    /// shard)` naming its fragment. Slots are the providers used, in index
    /// order (the client's upload and the simulator build it alike).
    pub fn from_placement(
        placements: &[Vec<usize>],
        accounts: &[AccountId],
        id: impl Fn(usize, usize) -> [u8; 32],
    ) -> Self {
        let mut used: Vec<usize> = placements.iter().flatten().copied().collect();
        used.sort_unstable();
        used.dedup();
        let slot_of = |candidate: usize| used.binary_search(&candidate).unwrap_or_default() as u16;
        let stripes = placements
            .iter()
            .enumerate()
            .map(|(stripe, chosen)| {
                chosen.iter().enumerate().map(|(shard, &candidate)| (id(stripe, shard), slot_of(candidate))).collect()
            })
            .collect();
        Self { slots: used.iter().filter_map(|&candidate| accounts.get(candidate).copied()).collect(), stripes }
    }

    /// The leaf of one stripe: its fragment ids and their slots' providers,
    /// in shard order.
    fn leaf(&self, stripe: &[Shard]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("strand stripe v2");
        for (id, slot) in stripe {
            let provider = self.slots.get(usize::from(*slot)).map_or([0xff; 32], |account| account.0);
            hasher.update(id).update(&provider);
        }
        *hasher.finalize().as_bytes()
    }

    /// The root `stripes_root` commits to.
    pub fn root(&self) -> Digest {
        let leaves: Vec<[u8; 32]> = self.stripes.iter().map(|stripe| self.leaf(stripe)).collect();
        Digest(strand_proof_of_storage::merkle::root(&leaves))
    }

    /// Checks the map against a contract's terms: `stripe_count` stripes of
    /// k+m shards, every slot listed, the root equal to `stripes_root`.
    pub fn check(&self, terms: &ContractTerms) -> Result<(), StripeMapError> {
        let width = usize::from(terms.data_shards) + usize::from(terms.parity_shards);
        let count = self.stripes.len() as u64;
        if count != terms.stripe_count || self.stripes.iter().any(|stripe| stripe.len() != width) {
            return Err(StripeMapError::Shape {
                expected: format!("{} stripes of {width} shards", terms.stripe_count),
                found: format!("{count} stripes, not all of {width} shards"),
            });
        }
        for (stripe, shards) in self.stripes.iter().enumerate() {
            if let Some((_, slot)) = shards.iter().find(|(_, slot)| usize::from(*slot) >= self.slots.len()) {
                return Err(StripeMapError::Slot { stripe: stripe as u64, slot: *slot, slots: self.slots.len() });
            }
        }
        let found = self.root();
        if found != terms.stripes_root {
            return Err(StripeMapError::Root { expected: terms.stripes_root, found });
        }
        Ok(())
    }

    /// Where `provider`'s fragments sit, in the order its contract's
    /// `fragment_root` commits to them: (stripe, shard) per fragment.
    pub fn places_of(&self, provider: &AccountId) -> Vec<(u64, u16)> {
        let Some(slot) = self.slots.iter().position(|account| account == provider) else { return Vec::new() };
        let mut places = Vec::new();
        for (stripe, shards) in self.stripes.iter().enumerate() {
            for (shard, (_, held)) in shards.iter().enumerate() {
                if usize::from(*held) == slot {
                    places.push((stripe as u64, shard as u16));
                }
            }
        }
        places
    }

    /// The fragment ids `provider` holds, in its contract's order.
    pub fn fragments_of(&self, provider: &AccountId) -> Vec<[u8; 32]> {
        self.places_of(provider)
            .into_iter()
            .map(|(stripe, shard)| self.stripes[stripe as usize][usize::from(shard)].0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::ProofPolicy;

    fn map() -> StripeMap {
        let slots: Vec<AccountId> = (0..4u8).map(|i| AccountId([i; 32])).collect();
        // Two stripes of 2+1 over four providers.
        let stripes = (0..2u8)
            .map(|stripe| (0..3u8).map(|shard| ([stripe * 3 + shard; 32], u16::from((stripe + shard) % 4))).collect())
            .collect();
        StripeMap { slots, stripes }
    }

    fn terms(map: &StripeMap) -> ContractTerms {
        ContractTerms {
            upload: [1; 16],
            owner: AccountId([9; 32]),
            provider: map.slots[1],
            fragment_root: Digest(strand_proof_of_storage::merkle::root(&map.fragments_of(&map.slots[1]))),
            fragment_count: 2,
            fragment_size: 1024,
            data_shards: 2,
            parity_shards: 1,
            stripe_count: 2,
            stripes_root: map.root(),
            term_epochs: 10,
            proof_policy: ProofPolicy { challenges_per_epoch: 4, strikes_max: 3 },
        }
    }

    #[test]
    fn a_map_checks_against_its_terms_and_any_change_is_caught() {
        let map = map();
        let terms = terms(&map);
        assert_eq!(map.check(&terms), Ok(()));
        // Slot 1 holds stripe 0 shard 1 and stripe 1 shard 0.
        assert_eq!(map.places_of(&map.slots[1]), vec![(0, 1), (1, 0)]);
        assert_eq!(map.fragments_of(&map.slots[1]), vec![[1; 32], [3; 32]]);
        assert!(map.places_of(&AccountId([7; 32])).is_empty());

        let mut swapped = map.clone();
        swapped.stripes[0].swap(0, 1);
        assert!(matches!(swapped.check(&terms), Err(StripeMapError::Root { .. })));
        let mut moved = map.clone();
        moved.stripes[1][2].1 = 0;
        assert!(matches!(moved.check(&terms), Err(StripeMapError::Root { .. })));
        let mut other_provider = map.clone();
        other_provider.slots[3] = AccountId([8; 32]);
        assert!(matches!(other_provider.check(&terms), Err(StripeMapError::Root { .. })));
        let mut short = map.clone();
        short.stripes.pop();
        assert!(matches!(short.check(&terms), Err(StripeMapError::Shape { .. })));
        let mut narrow = map.clone();
        narrow.stripes[0].pop();
        assert!(matches!(narrow.check(&terms), Err(StripeMapError::Shape { .. })));
        let mut unknown = map.clone();
        unknown.stripes[0][0].1 = 9;
        assert!(matches!(unknown.check(&terms), Err(StripeMapError::Slot { stripe: 0, slot: 9, .. })));
    }

    /// Fixed vector: the root is recorded on the ledger in every contract.
    #[test]
    fn root_matches_fixed_vector() {
        assert_eq!(map().root().to_string(), "017285f7770a86fcfb17d8f37efcb488d1e3226fda289a697bb19cbbb18c84ea");
    }
}
