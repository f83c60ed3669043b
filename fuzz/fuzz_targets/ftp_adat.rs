//! FTP's ADAT exchange over arbitrary bytes: base64 decoding, then FTP lines after `AUTH GSSAPI` (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::ftp_adat::fuzz(data));
