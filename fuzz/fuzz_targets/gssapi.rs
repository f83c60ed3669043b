//! The GSSAPI parser and the NTLM and KRB analyzers it hands tokens to, over arbitrary tokens (see
//! `gssapi::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::gssapi::fuzz(data));
