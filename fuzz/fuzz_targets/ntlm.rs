//! The NTLM parser and ntlm.log's script over arbitrary tokens (see `ntlm::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::ntlm::fuzz(data));
