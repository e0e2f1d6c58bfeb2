//! Proof answers from a hostile provider: verification never panics and
//! never accepts bytes that are not honest answers (there are none for this
//! made-up contract, whose root commits to ids with no known preimage).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_proof_of_storage::answers::{self, Commitment};

fuzz_target!(|bytes: &[u8]| {
    let commitment = Commitment {
        contract: [1; 32],
        fragment_root: strand_proof_of_storage::merkle::root(&[[2; 32], [3; 32], [4; 32]]),
        fragment_count: 3,
        fragment_size: 5000,
        challenges: 4,
    };
    assert!(answers::verify(&commitment, &[7; 32], 9, bytes).is_err());
});
