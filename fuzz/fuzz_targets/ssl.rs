//! The ssl analyzer over arbitrary bytes (both directions, split at arbitrary points; see its `fuzz`), and the same
//! bytes as DTLS datagrams.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zeek_node::analyzers::ssl::fuzz(data);
    zeek_node::analyzers::ssl::dtls::fuzz(data);
});
