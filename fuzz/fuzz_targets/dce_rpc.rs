//! The dce_rpc analyzer over arbitrary bytes in both directions (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::dce_rpc::fuzz(data));
