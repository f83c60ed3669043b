//! The event reader (cluster/datawire.rs) over arbitrary bytes, against prost: it must never panic, an event it reads
//! must write back to bytes that read as the same event, and input in prost's canonical form must read as prost
//! reads it (`check_reader_against_prost`).
#![no_main]

use zeek_node::cluster::datawire::check_reader_against_prost;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = check_reader_against_prost(data) {
        panic!("{broken}");
    }
});
