//! The socks analyzer over arbitrary deliveries in both directions, and its content signature (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::socks::fuzz(data));
