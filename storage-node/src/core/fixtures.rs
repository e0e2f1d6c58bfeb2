//! Test fixtures shared by the core's tests.

use strand_contracts::block::{Genesis, ValidatorSet};
use strand_contracts::state::LedgerState;
use strand_contracts::stripes::StripeMap;
use strand_contracts::transaction::{ContractTerms, ProofPolicy};
use strand_contracts::{AccountId, Digest};

/// Terms of a small contract of `owner` for `upload`.
pub(crate) fn terms(owner: AccountId, upload: u8) -> ContractTerms {
    ContractTerms {
        upload: [upload; 16],
        owner,
        provider: AccountId([2; 32]),
        fragment_root: Digest([3; 32]),
        fragment_count: 2,
        fragment_size: 1040,
        data_shards: 1,
        parity_shards: 1,
        stripe_count: 2,
        stripes_root: Digest([4; 32]),
        term_epochs: 10,
        proof_policy: ProofPolicy { challenges_per_epoch: 4, strikes_max: 3 },
    }
}

/// A stripe map placing `ids` on `terms.provider`, one per stripe of 1+1
/// (the parity shards on another account), with `terms` set to match.
pub(crate) fn with_stripe_map(terms: &mut ContractTerms, ids: &[[u8; 32]]) -> StripeMap {
    let map = StripeMap {
        slots: vec![terms.provider, AccountId([0xee; 32])],
        stripes: ids.iter().map(|id| vec![(*id, 0), ([0xee; 32], 1)]).collect(),
    };
    terms.data_shards = 1;
    terms.parity_shards = 1;
    terms.stripe_count = ids.len() as u64;
    terms.stripes_root = map.root();
    map
}

/// The state of an empty chain.
pub(crate) fn empty_ledger() -> LedgerState {
    let validators = ValidatorSet {
        ordering: strand_contracts::block::Ordering::Sequencer,
        validators: vec![],
        quorum: 0,
        beacon_key: None,
    };
    Genesis { name: "node-core-test".into(), validators, epoch_blocks: 10, timestamp_ms: 0 }.block().1
}
