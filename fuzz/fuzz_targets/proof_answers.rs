//! Proof answers from a hostile provider: verification never panics and
//! never accepts bytes that are not honest answers (there are none for this
//! made-up contract, whose root commits to ids with no known preimage).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_proof_of_storage::answers::{self, Commitment};
use strand_proof_of_storage::challenge::Challenge;

fuzz_target!(|bytes: &[u8]| {
    let commitment = Commitment {
        contract: [1; 32],
        fragment_root: strand_proof_of_storage::merkle::root(&[[2; 32], [3; 32], [4; 32]]),
        fragment_count: 3,
        fragment_size: 5000,
    };
    // Four challenges over the contract's 3 fragments of 5 chunks each, as a
    // schedule draws them (a fragment may be challenged twice).
    let challenges = [
        Challenge { fragment: 0, chunk: 0 },
        Challenge { fragment: 2, chunk: 3 },
        Challenge { fragment: 1, chunk: 4 },
        Challenge { fragment: 2, chunk: 1 },
    ];
    assert!(answers::verify(&commitment, &challenges, bytes).is_err());
});
