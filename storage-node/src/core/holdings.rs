//! What the node holds: for every fragment, the contract it is stored under.

use std::collections::HashMap;

use borsh::{BorshDeserialize, BorshSerialize};
use strand_contracts::Digest;
use strand_contracts::transaction::ContractTerms;

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

/// The node's agreements, indexed by fragment.
#[derive(Clone, Debug, Default)]
pub struct Holdings {
    agreements: HashMap<Digest, Agreement>,
    by_fragment: HashMap<[u8; 32], Digest>,
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

    /// Adds or replaces an agreement.
    pub fn insert(&mut self, agreement: Agreement) {
        let id = agreement.terms.id();
        for fragment in &agreement.fragment_ids {
            self.by_fragment.insert(*fragment, id);
        }
        self.agreements.insert(id, agreement);
    }

    /// Removes an agreement, returning it.
    pub fn remove(&mut self, id: &Digest) -> Option<Agreement> {
        let agreement = self.agreements.remove(id)?;
        for fragment in &agreement.fragment_ids {
            if self.by_fragment.get(fragment) == Some(id) {
                self.by_fragment.remove(fragment);
            }
        }
        Some(agreement)
    }

    /// The agreement a fragment is held under.
    pub fn agreement_of(&self, fragment: &[u8; 32]) -> Option<(&Digest, &Agreement)> {
        let id = self.by_fragment.get(fragment)?;
        self.agreements.get_key_value(id)
    }

    /// An agreement by contract id.
    pub fn agreement(&self, id: &Digest) -> Option<&Agreement> {
        self.agreements.get(id)
    }

    /// Every agreement.
    pub fn agreements(&self) -> impl Iterator<Item = (&Digest, &Agreement)> {
        self.agreements.iter()
    }

    /// Fragments held.
    pub fn fragment_count(&self) -> usize {
        self.by_fragment.len()
    }

    /// Bytes promised under all agreements.
    pub fn committed_bytes(&self) -> u64 {
        self.agreements
            .values()
            .map(|agreement| u64::from(agreement.terms.fragment_count) * u64::from(agreement.terms.fragment_size))
            .sum()
    }
}
