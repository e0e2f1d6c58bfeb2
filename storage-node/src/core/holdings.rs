//! What the node holds: its agreements (contracts, on the ledger or about to
//! be), and for every fragment the contracts that hold it.
//!
//! A fragment belongs to the contracts that hold it, never to the last
//! proposer: it stays while any of them holds it (its tags are per
//! contract, so releasing one agreement never drops bytes another needs),
//! and reads are decided per contract. Ciphertext is never convergent, so
//! two owners never legitimately share a fragment; the node refuses to let
//! a second owner claim one ([`Holdings::owner_of`]).

use std::collections::{BTreeMap, HashMap};

use borsh::{BorshDeserialize, BorshSerialize};
use strand_contracts::transaction::ContractTerms;
use strand_contracts::types::UploadKey;
use strand_contracts::{AccountId, Digest};

/// Where a contract the node agreed to is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum AgreementState {
    /// Agreed and fetching; pushes of its fragments are welcome.
    Fetching,
    /// Every fragment stored and verified; signature given, waiting for the
    /// owner to open the contract on the ledger.
    Signed {
        /// Ledger height when signed (unopened agreements expire).
        at_height: u64,
    },
}

/// One agreement (a contract, on the ledger or about to be).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Agreement {
    /// The terms.
    pub terms: ContractTerms,
    /// The fragment ids, in root order.
    pub fragment_ids: Vec<[u8; 32]>,
    /// Its state.
    pub state: AgreementState,
}

impl Agreement {
    /// Bytes the agreement commits the node to.
    pub fn bytes(&self) -> u64 {
        u64::from(self.terms.fragment_count) * u64::from(self.terms.fragment_size)
    }
}

/// The node's agreements, indexed by fragment and by upload.
#[derive(Clone, Debug, Default)]
pub struct Holdings {
    /// By contract id, ordered: every walk over the agreements (proofs,
    /// retention) goes in one order whatever the process.
    agreements: BTreeMap<Digest, Agreement>,
    /// Every contract holding each fragment (its reference count).
    by_fragment: HashMap<[u8; 32], Vec<Digest>>,
    by_upload: HashMap<UploadKey, Vec<Digest>>,
    committed_bytes: u64,
    /// Bytes of distinct fragments held.
    stored_bytes: u64,
}

impl Holdings {
    /// Holdings from stored agreements.
    pub fn from_agreements(agreements: impl IntoIterator<Item = Agreement>) -> Self {
        let mut holdings = Self::default();
        for agreement in agreements {
            holdings.insert(agreement);
        }
        holdings
    }

    /// Adds an agreement, or replaces the one with the same terms.
    pub fn insert(&mut self, agreement: Agreement) {
        let id = agreement.terms.id();
        self.remove(&id);
        let size = u64::from(agreement.terms.fragment_size);
        for fragment in &agreement.fragment_ids {
            let holders = self.by_fragment.entry(*fragment).or_default();
            if holders.is_empty() {
                self.stored_bytes += size;
            }
            if !holders.contains(&id) {
                holders.push(id);
            }
        }
        self.by_upload.entry(agreement.terms.upload).or_default().push(id);
        self.committed_bytes += agreement.bytes();
        self.agreements.insert(id, agreement);
    }

    /// Removes an agreement, returning it. Fragments other agreements hold
    /// stay held.
    pub fn remove(&mut self, id: &Digest) -> Option<Agreement> {
        let agreement = self.agreements.remove(id)?;
        let size = u64::from(agreement.terms.fragment_size);
        for fragment in &agreement.fragment_ids {
            if let Some(holders) = self.by_fragment.get_mut(fragment) {
                holders.retain(|holder| holder != id);
                if holders.is_empty() {
                    self.by_fragment.remove(fragment);
                    self.stored_bytes = self.stored_bytes.saturating_sub(size);
                }
            }
        }
        if let Some(contracts) = self.by_upload.get_mut(&agreement.terms.upload) {
            contracts.retain(|contract| contract != id);
            if contracts.is_empty() {
                self.by_upload.remove(&agreement.terms.upload);
            }
        }
        self.committed_bytes = self.committed_bytes.saturating_sub(agreement.bytes());
        Some(agreement)
    }

    /// The agreements holding a fragment.
    pub fn holders(&self, fragment: &[u8; 32]) -> impl Iterator<Item = (&Digest, &Agreement)> {
        self.by_fragment.get(fragment).into_iter().flatten().filter_map(|id| self.agreements.get_key_value(id))
    }

    /// Whether any agreement holds the fragment.
    pub fn holds(&self, fragment: &[u8; 32]) -> bool {
        self.by_fragment.contains_key(fragment)
    }

    /// The owner of the agreements holding a fragment, if any holds it.
    pub fn owner_of(&self, fragment: &[u8; 32]) -> Option<AccountId> {
        self.holders(fragment).map(|(_, agreement)| agreement.terms.owner).next()
    }

    /// An agreement by contract id.
    pub fn agreement(&self, id: &Digest) -> Option<&Agreement> {
        self.agreements.get(id)
    }

    /// The agreements of an upload.
    pub fn of_upload(&self, upload: &UploadKey) -> impl Iterator<Item = (&Digest, &Agreement)> {
        self.by_upload.get(upload).into_iter().flatten().filter_map(|id| self.agreements.get_key_value(id))
    }

    /// Every agreement.
    pub fn agreements(&self) -> impl Iterator<Item = (&Digest, &Agreement)> {
        self.agreements.iter()
    }

    /// Agreements held.
    pub fn len(&self) -> usize {
        self.agreements.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.agreements.is_empty()
    }

    /// Distinct fragments held.
    pub fn fragment_count(&self) -> usize {
        self.by_fragment.len()
    }

    /// Bytes of the distinct fragments held.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// Bytes promised under all agreements.
    pub fn committed_bytes(&self) -> u64 {
        self.committed_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::terms;

    fn agreement(owner: u8, upload: u8, fragments: &[u8]) -> Agreement {
        let mut terms = terms(AccountId([owner; 32]), upload);
        terms.fragment_count = fragments.len() as u32;
        Agreement {
            terms,
            fragment_ids: fragments.iter().map(|byte| [*byte; 32]).collect(),
            state: AgreementState::Signed { at_height: 1 },
        }
    }

    #[test]
    fn a_fragment_stays_while_any_contract_holds_it() {
        let (first, second) = (agreement(1, 1, &[5, 6]), agreement(1, 2, &[6, 7]));
        let (first_id, second_id) = (first.terms.id(), second.terms.id());
        let mut holdings = Holdings::from_agreements([first, second]);
        assert_eq!(holdings.fragment_count(), 3);
        assert_eq!(holdings.holders(&[6; 32]).count(), 2);
        assert_eq!(holdings.stored_bytes(), 3 * 1040, "a shared fragment is stored once");
        assert_eq!(holdings.committed_bytes(), 4 * 1040);
        holdings.remove(&first_id);
        assert!(!holdings.holds(&[5; 32]));
        assert!(holdings.holds(&[6; 32]), "the other contract still holds it");
        assert_eq!(holdings.holders(&[6; 32]).map(|(id, _)| *id).collect::<Vec<_>>(), vec![second_id]);
        assert_eq!(holdings.of_upload(&[1; 16]).count(), 0);
        assert_eq!(holdings.of_upload(&[2; 16]).count(), 1);
        holdings.remove(&second_id);
        assert!(holdings.is_empty());
        assert_eq!((holdings.fragment_count(), holdings.stored_bytes(), holdings.committed_bytes()), (0, 0, 0));
    }

    #[test]
    fn replacing_an_agreement_does_not_count_it_twice() {
        let mut holdings = Holdings::default();
        let mut fetching = agreement(1, 1, &[5, 6]);
        fetching.state = AgreementState::Fetching;
        holdings.insert(fetching.clone());
        holdings.insert(Agreement { state: AgreementState::Signed { at_height: 3 }, ..fetching });
        assert_eq!(holdings.len(), 1);
        assert_eq!(holdings.committed_bytes(), 2 * 1040);
        assert_eq!(holdings.holders(&[5; 32]).count(), 1);
        assert_eq!(holdings.owner_of(&[5; 32]), Some(AccountId([1; 32])));
    }
}
