//! The irc analyzer over arbitrary segments in both directions, and its signatures (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::irc::fuzz(data));
