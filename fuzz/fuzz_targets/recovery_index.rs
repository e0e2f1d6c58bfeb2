//! The recovery index decoder never panics, and whatever it accepts
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(index) = strand_core::RecoveryIndex::from_bytes(bytes) {
        assert_eq!(index.to_bytes(), bytes);
    }
});
