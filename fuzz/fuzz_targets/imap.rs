//! The IMAP analyzer over arbitrary bytes (both directions, deliveries of arbitrary sizes, gaps and ends; see
//! `analyzers::imap::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::imap::fuzz(data));
