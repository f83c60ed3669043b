//! The syslog analyzer over arbitrary datagrams and TCP segments in both directions (see its `fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zeek_node::analyzers::syslog::fuzz(data));
