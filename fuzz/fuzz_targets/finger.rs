//! The Finger analyzer over arbitrary bytes (both directions, deliveries of arbitrary sizes, gaps and ends; see
//! `analyzers::finger::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::finger::fuzz(data));
