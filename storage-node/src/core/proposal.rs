//! Whether to accept a proposed contract.

use strand_contracts::AccountId;
use strand_proof_of_storage::merkle;
use strand_wire::{Proposal, Refusal};

/// Bounds a node puts on what it accepts.
#[derive(Clone, Copy, Debug)]
pub struct AcceptancePolicy {
    /// Largest fragment accepted.
    pub fragment_bytes_max: u32,
    /// Most fragments in one contract.
    pub fragments_max: u32,
    /// Longest term accepted, in epochs.
    pub term_epochs_max: u32,
}

impl Default for AcceptancePolicy {
    fn default() -> Self {
        Self { fragment_bytes_max: (64 << 20) + 16, fragments_max: 500_000, term_epochs_max: 100_000 }
    }
}

/// Checks a proposal for this node (`me`) with `free_bytes` of capacity left.
pub fn check(proposal: &Proposal, me: &AccountId, free_bytes: u64, policy: &AcceptancePolicy) -> Result<(), Refusal> {
    let terms = &proposal.terms;
    if terms.provider != *me {
        return Err(Refusal::NotForThisNode);
    }
    if terms.fragment_size == 0 || terms.fragment_size > policy.fragment_bytes_max {
        return Err(Refusal::Terms(format!("fragment size must be 1..={} bytes", policy.fragment_bytes_max)));
    }
    if terms.term_epochs == 0 || terms.term_epochs > policy.term_epochs_max {
        return Err(Refusal::Terms(format!("term must be 1..={} epochs", policy.term_epochs_max)));
    }
    let count = proposal.fragment_ids.len();
    if count == 0 || count > policy.fragments_max as usize || count != terms.fragment_count as usize {
        return Err(Refusal::FragmentsMismatch);
    }
    if merkle::root(&proposal.fragment_ids) != terms.fragment_root.0 {
        return Err(Refusal::FragmentsMismatch);
    }
    let needed_bytes = u64::from(terms.fragment_count) * u64::from(terms.fragment_size);
    if needed_bytes > free_bytes {
        return Err(Refusal::NoCapacity { free_bytes, needed_bytes });
    }
    Ok(())
}
