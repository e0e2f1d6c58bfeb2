//! Opening a sealed record never panics and never succeeds on bytes that
//! were not sealed to the key (the fuzzer cannot forge an AEAD).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_core::Identity;
use strand_core::seal::{SealKind, open};

fuzz_target!(|bytes: &[u8]| {
    let owner = Identity::from_secret_bytes(&[7; 32]);
    assert!(open(SealKind::RecoveryIndex, bytes, &owner).is_err());
    assert!(open(SealKind::UploadRecord, bytes, &owner).is_err());
});
