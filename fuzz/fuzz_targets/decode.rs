//! The packet decoder: link layer, IP (with extension headers and their weirds), transport, ICMPv6 neighbour
//! discovery checks, tunnel headers (GRE with ERSPAN, over IP and UDP, and every UDP tunnel on every UDP payload),
//! IP fragment reassembly across the frames of one input, and the analysis threads' sharding, which looks inside the
//! tunnels that carry many flows. The first byte picks the link type.
#![no_main]

mod frames;

use zeek_node::decode::{
    Reassembler, Transport, UdpTunnel, aggregating_tunnel_inner, check_inner_ip, decode_ip, decode_ip_on_wire,
    decode_link, decode_transport, icmp6, parse_gre,
};
use zeek_node::runner::flow_shard;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = data.split_first() else { return };
    let link = frames::LINKS[usize::from(*selector) % frames::LINKS.len()];
    let mut fragments = Reassembler::default();
    for (i, frame) in frames::frames(rest).enumerate() {
        let Ok(ip_bytes) = decode_link(link, frame) else { continue };
        // The wire length: what was captured, or less (a record whose original length is short of the data).
        let wire_len = ip_bytes.len().saturating_sub(i % 3);
        let Ok(ip) = decode_ip_on_wire(ip_bytes, Some(wire_len), i % 2 == 0, &mut |_| {}) else { continue };
        const GRE: u8 = 47;
        if ip.proto == GRE {
            let _ = parse_gre(ip.payload);
        }
        let _ = check_inner_ip(ip.proto, ip.payload);
        let _ = aggregating_tunnel_inner(&ip);
        assert!(flow_shard(&ip, 3) < 3);
        match decode_transport(&ip) {
            Ok(Transport::Icmp { hdr, payload, .. }) => {
                let _ = icmp6::check_nd(hdr.icmp_type, payload);
            }
            Ok(Transport::Udp { hdr, payload, .. }) => {
                // GRE over UDP (port 4754).
                let _ = parse_gre(payload);
                let _ = UdpTunnel::classify(hdr.dst_port, payload);
                for tunnel in UdpTunnel::ALL {
                    let _ = tunnel.parse(payload);
                }
            }
            _ => {}
        }
        if let Some(whole) = fragments.add_reporting(i as f64, &ip, &mut |_| {}) {
            if let Ok(ip) = decode_ip(&whole, false) {
                let _ = decode_transport(&ip);
            }
        }
    }
    fragments.expire(1e9, true);
});
