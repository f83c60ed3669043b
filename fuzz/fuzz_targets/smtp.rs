//! The smtp analyzer over arbitrary bytes (both directions, split at arbitrary points; see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::smtp::fuzz(data));
