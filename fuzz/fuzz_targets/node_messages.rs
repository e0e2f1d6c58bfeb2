//! Messages a node receives from the network decode without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = strand_wire::decode::<strand_wire::Request>(bytes);
    let _ = strand_wire::decode::<strand_wire::Response>(bytes);
});
