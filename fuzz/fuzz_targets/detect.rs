//! The detection-only analyzer (XMPP) and its content
//! signature over arbitrary bytes, as TCP and as UDP (see `analyzers::detect::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::detect::fuzz(data));
