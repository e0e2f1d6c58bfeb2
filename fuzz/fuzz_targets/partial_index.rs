//! The partial index decoder (what a range grantee opens) never panics, and
//! whatever it accepts re-encodes to the same bytes; its accessors stay
//! within what it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strand_core::decode::Keys;
use strand_core::partial::PartialIndex;

fuzz_target!(|bytes: &[u8]| {
    let Ok(partial) = PartialIndex::from_bytes(bytes) else { return };
    assert_eq!(partial.to_bytes(), bytes, "an accepted partial index re-encodes to other bytes");
    let width = partial.layout.params.fragments_per_stripe();
    for (stripe, ids) in partial.stripes() {
        assert!(stripe < partial.layout.stripe_count, "a stripe past the layout's last");
        assert_eq!(ids.len(), width, "a stripe without k + m ids");
    }
    for (position, _) in partial.chunk_keys() {
        let (slot, _) = partial.locate(position).expect("a held chunk key locates its chunk");
        assert!(slot < partial.layout.slot_count(), "a chunk slot past the layout's last");
    }
    assert_eq!(partial.scope_fragments().len(), partial.stripes().count() * width);
});
