//! The irc analyzer and its DCC data analyzer over arbitrary segments in both directions, and the signatures (see
//! `irc::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::irc::fuzz(data));
