//! The mysql analyzer over arbitrary stream bytes in both directions (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::mysql::fuzz(data));
