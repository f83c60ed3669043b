//! The quic analyzer over arbitrary datagrams in both directions, or (first byte odd) over arbitrary decrypted
//! Initial payloads, which reach the CRYPTO reassembly and the TLS hand-over (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::quic::fuzz(data));
