//! The krb and krb_tcp analyzers over arbitrary deliveries in both directions (see `krb::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::krb::fuzz(data));
