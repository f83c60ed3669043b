//! The packet decoder: link layer, IP (with extension headers), transport, and IP fragment reassembly across
//! the frames of one input. The first byte picks the link type.
#![no_main]

mod frames;

use zeek_node::decode::{Reassembler, decode_ip, decode_link, decode_transport};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = data.split_first() else { return };
    let link = frames::LINKS[usize::from(*selector) % frames::LINKS.len()];
    let mut fragments = Reassembler::default();
    for (i, frame) in frames::frames(rest).enumerate() {
        let Ok(ip_bytes) = decode_link(link, frame) else { continue };
        let Ok(ip) = decode_ip(ip_bytes, true) else { continue };
        let _ = decode_transport(&ip);
        if let Some(whole) = fragments.add(i as f64, &ip) {
            if let Ok(ip) = decode_ip(&whole, false) {
                let _ = decode_transport(&ip);
            }
        }
    }
    fragments.expire(1e9, true);
});
