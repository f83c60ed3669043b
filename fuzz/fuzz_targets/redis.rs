//! The Redis analyzer over arbitrary bytes as both directions of a stream (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::redis::fuzz(data));
