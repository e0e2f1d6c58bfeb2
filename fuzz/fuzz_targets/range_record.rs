//! The range record decoder (the key material a range credential's grantee
//! opens) never panics, and whatever it accepts re-encodes to the same
//! bytes, with k + m providers for each stripe of its partial index.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_client::credentials::RangeRecord;

fuzz_target!(|bytes: &[u8]| {
    let Ok(record) = RangeRecord::from_bytes(bytes) else { return };
    assert_eq!(record.to_bytes(), bytes, "an accepted range record re-encodes to other bytes");
    let width = record.partial.layout.params.fragments_per_stripe();
    let stripes: Vec<u64> = record.partial.stripes().map(|(stripe, _)| stripe).collect();
    assert_eq!(record.stripes.keys().copied().collect::<Vec<u64>>(), stripes, "placement for other stripes");
    assert!(record.stripes.values().all(|providers| providers.len() == width), "a stripe without k + m providers");
});
