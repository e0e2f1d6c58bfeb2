//! Transactions, blocks and the state machine take any bytes without
//! panicking: a block of fuzzed transactions gets a receipt for each.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_contracts::block::{Genesis, ValidatorSet};

fuzz_target!(|bytes: &[u8]| {
    let _ = strand_contracts::Transaction::from_bytes(bytes);
    let _ = strand_contracts::Block::from_bytes(bytes);
    let _ = strand_contracts::state::LedgerState::from_snapshot(bytes);
    let sequencer = strand_core::Identity::from_secret_bytes(&[9; 32]);
    let genesis = Genesis {
        name: "fuzz".into(),
        validators: ValidatorSet { validators: vec![strand_contracts::AccountId::of(&sequencer.public_key())], quorum: 1 },
        epoch_blocks: 2,
        timestamp_ms: 0,
    };
    let mut replica = strand_contracts::Replica::new(&genesis);
    let transactions: Vec<Vec<u8>> = bytes.chunks(64).map(<[u8]>::to_vec).collect();
    let count = transactions.len();
    let (_, receipts) = replica.propose(1, transactions, &sequencer);
    assert_eq!(receipts.len(), count);
});
