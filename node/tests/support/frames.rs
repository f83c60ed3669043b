//! Frames built byte by byte for the tests that run the node on generated traffic, and oracle traces as a traffic
//! mirror delivers them.

use std::net::Ipv4Addr;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_GRE: u8 = 47;

pub fn be16(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

/// An IPv4 header (valid checksum, no options) and `payload`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("test datagram fits");
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&be16(total));
    p.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = !p.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    p[10..12].copy_from_slice(&be16(folded as u16));
    p.extend_from_slice(payload);
    p
}

/// A UDP header without checksum and `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&be16(sport));
    u.extend_from_slice(&be16(dport));
    u.extend_from_slice(&be16(u16::try_from(8 + payload.len()).expect("test datagram fits")));
    u.extend_from_slice(&[0, 0]); // no checksum
    u.extend_from_slice(payload);
    u
}

/// An Ethernet frame carrying IPv4.
pub fn ethernet(payload: &[u8]) -> Vec<u8> {
    let mut e = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    e.extend_from_slice(&be16(ETHERTYPE_IPV4));
    e.extend_from_slice(payload);
    e
}

/// A VXLAN header (RFC 7348) with the given flags byte and VNI.
pub fn vxlan(flags: u8, vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, 0, 0, 0];
    v.extend_from_slice(&(vni << 8).to_be_bytes());
    v.extend_from_slice(inner_frame);
    v
}

/// How a mirror delivers what it copies to the sensor.
#[derive(Clone, Copy, Debug)]
pub enum Mirror {
    /// VXLAN on UDP 4789 (AWS VPC Traffic Mirroring, virtual switches): the copied Ethernet frame whole, from one
    /// source port.
    Vxlan,
    /// VXLAN from a source port derived from the inner flow, as a Linux VXLAN endpoint sends it (RFC 7348 §5): a
    /// hash of the inner frame's bytes 26..38 in order (IPv4's addresses and ports), so the two directions of one
    /// connection arrive from different outer ports (and so in different outer connections: Zeek's tunnel changes).
    VxlanPortPerDirection,
    /// GRE (IP-in-GRE, as an ERSPAN-less mirror session sends): the copied frame's IP packet.
    Gre,
}

/// The mirror's address; the sensor is 10.77.0.2.
pub const MIRROR_SOURCE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// `frame` (Ethernet) as the mirror's packet to the sensor, or `None` for a frame GRE cannot carry as IP (neither
/// IPv4 nor IPv6 right after the Ethernet header).
pub fn mirrored(mirror: Mirror, frame: &[u8]) -> Option<Vec<u8>> {
    let sensor = Ipv4Addr::new(10, 77, 0, 2);
    let vxlan_from =
        |source_port| ipv4(MIRROR_SOURCE, sensor, PROTO_UDP, &udp(source_port, 4789, &vxlan(0x08, 7, frame)));
    let outer = match mirror {
        Mirror::Vxlan => vxlan_from(40_000),
        Mirror::VxlanPortPerDirection => {
            let flow = frame.get(26..38).unwrap_or_default();
            let hash = flow.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
            vxlan_from(49_152 + (hash % 16_384) as u16)
        }
        Mirror::Gre => {
            let ethertype = frame.get(12..14)?;
            if ethertype != be16(ETHERTYPE_IPV4) && ethertype != be16(ETHERTYPE_IPV6) {
                return None;
            }
            let gre = [&[0, 0][..], ethertype, &frame[14..]].concat();
            ipv4(MIRROR_SOURCE, sensor, PROTO_GRE, &gre)
        }
    };
    Some(ethernet(&outer))
}

/// The Ethernet frames of an oracle case's trace with their times, or `None` without the oracle.
pub fn oracle_frames(case: &str) -> Option<Vec<(f64, Vec<u8>)>> {
    let trace = super::trace_of(&super::oracle_root()?.join(case))?;
    let mut capture = pcap::Capture::from_file(&trace).expect("open oracle trace");
    assert_eq!(capture.get_datalink(), pcap::Linktype::ETHERNET, "{case}");
    let mut frames = Vec::new();
    while let Ok(packet) = capture.next_packet() {
        let ts = packet.header.ts.tv_sec as f64 + packet.header.ts.tv_usec as f64 / 1e6;
        frames.push((ts, packet.data.to_vec()));
    }
    Some(frames)
}
