//! The PE header parser over arbitrary bytes (whole and split in two; see `analyzers::pe::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::pe::fuzz(data));
