//! The ldap analyzer over arbitrary bytes as a TCP stream and as datagrams (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::ldap::fuzz(data));
