//! The rdp analyzer over arbitrary deliveries in both directions (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::rdp::fuzz(data));
