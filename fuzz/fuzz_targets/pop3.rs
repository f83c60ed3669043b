//! The pop3 analyzer over arbitrary bytes (both directions, split at arbitrary points; see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::pop3::fuzz(data));
