//! The detection-only analyzers (IMAP, XMPP) and their content
//! signatures over arbitrary bytes, as TCP and as UDP (see `analyzers::detect::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::detect::fuzz(data));
