//! The weirds of malformed packets as Zeek's packet analyzers report them: each frame is fed to a real engine and
//! the weird.log record it writes is checked field by field (net weirds without addresses until the IP header is
//! known, flow weirds with the packet's hosts and port 0 after, the analyzer as `source`).

use super::*;
use crate::decode::test_frames::{ipv4_tcp, ipv4_udp};
use crate::decode::{internet_checksum, ipv4_header_checksum};
use crate::logs::WEIRD;

/// The columns of a weird.log record after `ts`: uid, id.orig_h, id.orig_p, id.resp_h, id.resp_p, name, addl,
/// notice, peer, source, as Zeek's TSV writes them.
fn weird_rows(engine: &mut Engine) -> Vec<Vec<String>> {
    engine
        .drain_records()
        .filter(|r| r.schema.path == WEIRD.path)
        .map(|r| r.values[1..].iter().map(|v| v.to_tsv()).collect())
        .collect()
}

/// A weird without a connection: `hosts` for a flow weird, none for a net weird.
fn weird(hosts: Option<(&str, &str)>, name: &str, addl: &str, source: &str) -> Vec<String> {
    let (orig, port, resp) = match hosts {
        Some((orig, resp)) => (orig, "0", resp),
        None => ("-", "-", "-"),
    };
    [r"-", orig, port, resp, port, name, addl, "F", "zeek", source].map(String::from).to_vec()
}

fn checked_engine() -> Engine {
    Engine::new(AnalysisConfig::default())
}

fn unchecked_engine() -> Engine {
    Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() })
}

/// `datagram` behind an Ethernet header.
fn ethernet(datagram: &[u8]) -> Vec<u8> {
    let mut frame = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(datagram);
    frame
}

/// Makes the IPv4 header checksum (and the transport's, for UDP and TCP) right, as a sender would.
fn with_checksums(mut datagram: Vec<u8>) -> Vec<u8> {
    let hdr_len = usize::from(datagram[0] & 0x0f) * 4;
    datagram[10..12].copy_from_slice(&[0, 0]);
    let sum = ipv4_header_checksum(&datagram[..hdr_len]);
    datagram[10..12].copy_from_slice(&sum.to_be_bytes());
    datagram
}

const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
const SERVER: ([u8; 4], u16) = ([10, 0, 0, 2], 80);

#[test]
fn link_layer_truncation_is_a_net_weird_from_the_link_analyzer() {
    let mut engine = checked_engine();
    engine.process_packet(1.0, LinkType::Ethernet, &[0; 16]);
    engine.process_packet(1.1, LinkType::LinuxSll, &[0; 10]);
    let expected = [
        weird(None, "truncated_ethernet_frame", "-", "ETHERNET"),
        weird(None, "truncated_Linux_SLL_header", "-", "LINUXSLL"),
    ];
    assert_eq!(weird_rows(&mut engine), expected);
}

/// Zeek's `core.nflog-bad-tlv-len` btest: an NFLOG record whose first TLV claims 256 bytes where 8 are left. The
/// baseline's record has name `nflog_bad_tlv_len`, addl `(256 > 8)` and source `NFLOG`.
#[test]
fn nflog_and_backbone_layers_report_as_zeeks_analyzers() {
    let mut engine = checked_engine();
    let bad_tlv = [2, 0, 0, 0, 0x00, 0x01, 0x01, 0x00, 0, 0, 0, 0];
    engine.process_packet(1.0, LinkType::Nflog, &bad_tlv);
    engine.process_packet(1.1, LinkType::Nflog, &[2, 0, 0, 0]);
    let mut pbb_cut = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x88, 0xe7];
    pbb_cut.extend_from_slice(&[0; 18]);
    engine.process_packet(1.2, LinkType::Ethernet, &pbb_cut);
    let expected = [
        weird(None, "nflog_bad_tlv_len", "(256 > 8)", "NFLOG"),
        weird(None, "truncated_nflog_header", "-", "NFLOG"),
        weird(None, "truncated_PBB_header", "-", "PBB"),
    ];
    assert_eq!(weird_rows(&mut engine), expected);
}

#[test]
fn ip_length_checks_are_net_weirds_and_the_checksum_a_flow_weird() {
    let mut engine = checked_engine();
    let good = with_checksums(ipv4_udp(CLIENT, SERVER, b"hello"));
    // The wire carried 10 bytes less than the datagram claims (the capture kept them all here).
    engine.process_packet_on_wire(1.0, LinkType::Ethernet, &ethernet(&good), Some(14 + good.len() - 10));
    // The header claims 40 bytes of options in a 70-byte datagram; the capture kept 33 bytes.
    let mut options_cut = good.clone();
    options_cut[0] = 0x4f;
    options_cut[2..4].copy_from_slice(&[0, 70]);
    engine.process_packet(2.0, LinkType::Raw, &options_cut);
    let mut bad_sum = good.clone();
    bad_sum[10] ^= 0xff;
    engine.process_packet(3.0, LinkType::Raw, &bad_sum);
    // Once per originator: a second bad sum from the same host is not logged.
    engine.process_packet(3.5, LinkType::Raw, &bad_sum);
    let expected = [
        weird(None, "truncated_IP_len", "-", "IP"),
        weird(None, "internally_truncated_header", "-", "IP"),
        weird(Some(("10.0.0.1", "10.0.0.2")), "bad_IP_checksum", "-", "IP"),
    ];
    assert_eq!(weird_rows(&mut engine), expected);
    assert_eq!(engine.stats().connections, 0, "none of them was analysed");
}

#[test]
fn a_datagram_the_wire_carried_whole_is_analysed() {
    let mut engine = checked_engine();
    let good = with_checksums(ipv4_udp(CLIENT, SERVER, b"hello"));
    // Snapped to 30 bytes by the capture, whole on the wire: no truncated_IP_len (Zeek compares the wire length).
    engine.process_packet_on_wire(1.0, LinkType::Raw, &good[..30], Some(good.len()));
    engine.finish();
    assert!(weird_rows(&mut engine).is_empty());
    assert_eq!(engine.stats().connections, 1);
}

#[test]
fn transport_truncation_is_a_flow_weird_from_the_transport_analyzer() {
    let mut engine = unchecked_engine();
    let tcp = ipv4_tcp(CLIENT, SERVER, 1, 0, 0x02, b"");
    engine.process_packet(1.0, LinkType::Raw, &tcp[..30]);
    let mut icmp = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 192, 0, 43, 10, 10, 0, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0];
    let sum = internet_checksum(&icmp[20..], 0);
    icmp[22..24].copy_from_slice(&sum.to_be_bytes());
    engine.process_packet(2.0, LinkType::Raw, &icmp[..24]);
    // The datagram itself claims less than a UDP header.
    let mut udp = ipv4_udp(CLIENT, SERVER, b"");
    udp[2..4].copy_from_slice(&[0, 24]);
    engine.process_packet(3.0, LinkType::Raw, &udp[..24]);
    let expected = [
        weird(Some(("10.0.0.1", "10.0.0.2")), "internally_truncated_header", "-", "TCP"),
        weird(Some(("192.0.43.10", "10.0.0.1")), "internally_truncated_header", "-", "ICMP"),
        weird(Some(("10.0.0.1", "10.0.0.2")), "truncated_header", "-", "UDP"),
    ];
    assert_eq!(weird_rows(&mut engine), expected);
}

/// Zeek's TCP analyzer reads the data offset only once the connection is found or made (`ExtractTCP_Header`): a
/// bogus offset (`bad_TCP_header_len`) or options the segment does not hold (`truncated_header`) is that
/// connection's weird, and the segment changes nothing else: no packet counted, no history letter, no close.
#[test]
fn a_refused_tcp_header_is_its_connections_weird() {
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &ipv4_tcp(CLIENT, SERVER, 1, 0, 0x02, b""));
    let mut bogus_offset = ipv4_tcp(CLIENT, SERVER, 2, 0, 0x11, b"");
    bogus_offset[32] = 4 << 4;
    engine.process_packet(2.0, LinkType::Raw, &bogus_offset);
    // Another client's first segment, a SYN-ACK from a server port, claims 12 bytes of options it does not have:
    // the connection is made (and its roles flipped by the ports, `^`) before the header is refused.
    let mut options_cut = ipv4_tcp(SERVER, ([10, 0, 0, 3], 40001), 1, 0, 0x12, b"");
    options_cut[32] = 8 << 4;
    engine.process_packet(3.0, LinkType::Raw, &options_cut);
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let field = |r: &LogRecord, name: &str| r.get(name).map(Value::to_tsv).unwrap_or_default();
    let conns: Vec<_> = records.iter().filter(|r| r.schema.path == "conn").collect();
    let summary = |r: &LogRecord| {
        ["id.orig_h", "id.resp_h", "conn_state", "history", "orig_pkts", "resp_pkts", "duration"].map(|f| field(r, f))
    };
    assert_eq!(summary(conns[0]), ["10.0.0.1", "10.0.0.2", "S0", "S", "1", "0", "-"]);
    assert_eq!(summary(conns[1]), ["10.0.0.3", "10.0.0.2", "OTH", "^", "0", "0", "-"]);
    let weirds: Vec<_> = records.iter().filter(|r| r.schema.path == WEIRD.path).collect();
    let weird_of = |conn: &LogRecord, name: &str| {
        let mut row = ["uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"].map(|f| field(conn, f)).to_vec();
        row.extend([name, "-", "F", "zeek", "TCP"].map(String::from));
        row
    };
    let rows: Vec<Vec<String>> = weirds.iter().map(|r| r.values[1..].iter().map(Value::to_tsv).collect()).collect();
    assert_eq!(rows, [weird_of(conns[0], "bad_TCP_header_len"), weird_of(conns[1], "truncated_header")]);
}

/// The outer hosts of most tunnel tests.
const TUNNEL_A: [u8; 4] = [192, 168, 1, 1];
const TUNNEL_B: [u8; 4] = [192, 168, 1, 2];

/// `payload` in an IPv4 header of protocol `proto` from `src` to `dst` (a tunnel's outer header; no checksum).
fn ipv4_carrying(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
    let mut packet = vec![0x45, 0, total[0], total[1], 0, 1, 0, 0, 64, proto, 0, 0];
    packet.extend(src);
    packet.extend(dst);
    packet.extend_from_slice(payload);
    packet
}

/// `inner` behind a GRE header of version 0 without options, of protocol type `ether_type`, from `src` to `dst`.
fn gre_between(src: [u8; 4], dst: [u8; 4], ether_type: u16, inner: &[u8]) -> Vec<u8> {
    let gre = [&[0, 0][..], &ether_type.to_be_bytes(), inner].concat();
    ipv4_carrying(47, src, dst, &gre)
}

/// `inner` in an IPv4 header from 192.168.1.1 to 192.168.1.2 (IP in IP).
fn ip_in_ip(inner: &[u8]) -> Vec<u8> {
    ipv4_carrying(4, TUNNEL_A, TUNNEL_B, inner)
}

#[test]
fn ip_in_ip_checks_name_the_outer_hosts_and_inner_weirds_the_tunnel() {
    let mut engine = unchecked_engine();
    let inner = ipv4_udp(CLIENT, SERVER, b"hello");
    let outer_hosts = Some(("192.168.1.1", "192.168.1.2"));
    // The inner datagram claims more than the tunnel carried.
    engine.process_packet(1.0, LinkType::Raw, &ip_in_ip(&inner[..inner.len() - 2]));
    // Not IPv4 at all.
    let mut v7 = inner.clone();
    v7[0] = 0x75;
    engine.process_packet(2.0, LinkType::Raw, &ip_in_ip(&v7));
    // Whole, but its header is too short: the inner packet's own IP check, inside the tunnel.
    let mut short_header = inner.clone();
    short_header[0] = 0x44;
    engine.process_packet(3.0, LinkType::Raw, &ip_in_ip(&short_header));
    let rows = weird_rows(&mut engine);
    assert_eq!(
        rows,
        [
            weird(outer_hosts, "truncated_inner_IP", "-", "IPTUNNEL"),
            weird(outer_hosts, "invalid_inner_IP_version", "-", "IPTUNNEL"),
            weird(None, "IPv4_min_header_size_in_tunnel", "-", "IP"),
        ]
    );
}

/// An IPv4 UDP fragment from 10.0.0.1 to 10.0.0.2 (checksums ignored).
fn fragment(offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + data.len()).unwrap().to_be_bytes();
    let flags = (u16::try_from(offset / 8).unwrap() | if more { 0x2000 } else { 0 }).to_be_bytes();
    let mut p = vec![0x45, 0, total[0], total[1], 0, 9, flags[0], flags[1], 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    p.extend_from_slice(data);
    p
}

#[test]
fn fragment_weirds_are_flow_weirds() {
    let mut engine = unchecked_engine();
    let datagram = udp_datagram_of_80_bytes();
    engine.process_packet(1.0, LinkType::Raw, &fragment(0, true, &datagram[..64]));
    engine.process_packet(1.1, LinkType::Raw, &fragment(32, false, &datagram[32..80]));
    // Another datagram whose second fragment the capture cut.
    let cut = fragment(64, false, &datagram[..16]);
    engine.process_packet(2.0, LinkType::Raw, &cut[..30]);
    engine.finish();
    let flow = Some(("10.0.0.1", "10.0.0.2"));
    assert_eq!(
        weird_rows(&mut engine),
        [weird(flow, "fragment_overlap", "-", "-"), weird(flow, "incompletely_captured_fragment", "-", "IP")]
    );
    assert_eq!(engine.stats().connections, 1, "the reassembled datagram is analysed");
}

/// A UDP datagram of 80 bytes (its header says so), to be sent in fragments.
fn udp_datagram_of_80_bytes() -> Vec<u8> {
    let mut datagram = vec![0x9c, 0x40, 0x27, 0x0f, 0, 80, 0, 0];
    datagram.resize(80, 0x5a);
    datagram
}

/// A datagram whose other fragments never come is dropped once it has waited a minute, and counted (a worker's
/// `zeek_fragments_dropped_total`).
#[test]
fn fragments_that_never_complete_are_counted_when_dropped() {
    let mut engine = unchecked_engine();
    let datagram = udp_datagram_of_80_bytes();
    engine.process_packet(1.0, LinkType::Raw, &fragment(0, true, &datagram[..64]));
    engine.process_packet(30.0, LinkType::Raw, &ipv4_udp(CLIENT, SERVER, b"hello"));
    assert_eq!(engine.stats().frag_datagrams_dropped, 0, "still waiting");
    engine.process_packet(62.0, LinkType::Raw, &ipv4_udp(CLIENT, SERVER, b"hello"));
    assert_eq!(engine.stats().frag_datagrams_dropped, 1);
}

/// `Tunnel::max_depth` is 4 (init-bare.zeek's default since zeek/zeek#3439): four IP-in-IP tunnels deep is
/// analysed, a fifth is not opened (the IP tunnel analyzer's weird, IPTUNNEL, between the outer hosts of the fifth).
#[test]
fn a_fifth_tunnel_is_not_opened() {
    let mut engine = unchecked_engine();
    let inner = ipv4_udp(CLIENT, SERVER, b"hello");
    let wrapped = |depth: usize| (0..depth).fold(inner.clone(), |packet, _| ip_in_ip(&packet));
    engine.process_packet(1.0, LinkType::Raw, &wrapped(4));
    engine.process_packet(2.0, LinkType::Raw, &wrapped(5));
    engine.finish();
    let outer_hosts = Some(("192.168.1.1", "192.168.1.2"));
    let weirds = weird_rows(&mut engine);
    assert_eq!(weirds, [weird(outer_hosts, "exceeded_tunnel_max_depth_in_tunnel", "-", "IPTUNNEL")]);
    assert_eq!(engine.stats().connections, 1, "four tunnels deep is analysed, five is not");
}

#[test]
fn a_link_layer_inside_gre_reports_in_the_tunnel() {
    let mut engine = unchecked_engine();
    // Transparent Ethernet bridging, an Ethernet frame of 16 bytes.
    let gre = gre_between(TUNNEL_A, TUNNEL_B, 0x6558, &[0; 16]);
    engine.process_packet(1.0, LinkType::Raw, &gre);
    assert_eq!(weird_rows(&mut engine), [weird(None, "truncated_ethernet_frame_in_tunnel", "-", "ETHERNET")]);
}

/// UDP.cc: the UDP header's length is what the connection counts; one that disagrees with the IP payload's is a
/// connection weird (`ulen != len`).
#[test]
fn a_udp_length_other_than_the_ip_payloads_is_a_connection_weird() {
    let mut datagram = ipv4_udp(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 9999), &[0x61; 12]);
    datagram[24..26].copy_from_slice(&12u16.to_be_bytes()); // 4 bytes of payload, says the UDP header
    let mut engine = checked_engine();
    let frame = ethernet(&with_checksums(datagram));
    engine.process_packet(1.0, LinkType::Ethernet, &frame);
    engine.process_packet(1.5, LinkType::Ethernet, &frame);
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let column = |path: &str, field: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.schema.path == path)
            .map(|r| r.values[r.schema.field_index(field).expect("a known field")].to_tsv())
            .collect()
    };
    assert_eq!(column("weird", "name"), ["UDP_datagram_length_mismatch"]);
    assert_eq!(column("weird", "addl"), ["12 != 20"]);
    assert_eq!(column("weird", "source"), ["UDP"]);
    assert_eq!(column("weird", "uid"), column("conn", "uid"));
    // Counted by the UDP length: 2 × 4 bytes (a weird logged once per originator, as weird.zeek says).
    assert_eq!((column("conn", "orig_bytes"), column("conn", "history")), (vec!["8".into()], vec!["D".into()]));
}

/// UDPSessionAdapter::HandleBadChecksum: `C` at a side's 1st, 10th, 100th... bad datagram; the weird is raised each
/// time and logged once per originator (weird.zeek's `ACTION_LOG_PER_ORIG`); the datagram is not counted.
#[test]
fn bad_udp_checksums_scale_their_history_letter() {
    let mut datagram = with_checksums(ipv4_udp(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 9999), b"payload"));
    datagram[26..28].copy_from_slice(&[0x12, 0x34]); // a UDP checksum that does not sum
    let frame = ethernet(&datagram);
    let mut engine = checked_engine();
    for i in 0..12 {
        engine.process_packet(1.0 + f64::from(i), LinkType::Ethernet, &frame);
    }
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let history: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == "conn")
        .map(|r| r.values[r.schema.field_index("history").expect("a known field")].to_tsv())
        .collect();
    assert_eq!(history, ["CC"]);
    assert_eq!(records.iter().filter(|r| r.schema.path == "weird").count(), 1);
    // UDP.cc feeds the size counter only after the checksum: none of the datagrams is counted.
    let packets: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == "conn")
        .map(|r| r.values[r.schema.field_index("orig_pkts").expect("a known field")].to_tsv())
        .collect();
    assert_eq!(packets, ["0"]);
}

/// An IPv6 header from `src` to `dst` with `next`, a hop limit, `payload_len`, and `body` after it.
fn ipv6_between(src: [u8; 16], dst: [u8; 16], hop_limit: u8, next: u8, payload_len: u16, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend(payload_len.to_be_bytes());
    packet.extend([next, hop_limit]);
    packet.extend(src);
    packet.extend(dst);
    packet.extend_from_slice(body);
    packet
}

/// An IPv6 header from a Teredo client (2001:0::/32) with `next` and `payload_len`, and `body` after it.
fn teredo_ipv6(next: u8, payload_len: u16, body: &[u8]) -> Vec<u8> {
    let client = [0x20, 0x01, 0, 0, 0x41, 0x37, 0x9e, 0x50, 0x80, 0, 0xf1, 0x2a, 0xb9, 0xc8, 0x28, 0x15];
    let server = [0x20, 0x01, 0x48, 0x60, 0, 0, 0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x68];
    ipv6_between(client, server, 21, next, payload_len, body)
}

/// core.tunnels.teredo_bubble_with_payload: Teredo.cc lets a bubble with bytes after its IPv6 header through with
/// the weird `Teredo_bubble_with_payload` on the outer connection (source TEREDO, raised before any confirmation);
/// any other inner packet whose length disagrees with the datagram's is a violation and not analysed.
#[test]
fn a_teredo_bubble_with_payload_is_the_outer_connections_weird() {
    const NO_NEXT_HEADER: u8 = 59;
    let client = ([192, 168, 2, 16], 3797);
    let server = ([65, 55, 158, 80], 3544);
    let bubble = teredo_ipv6(NO_NEXT_HEADER, 0, &[0; 8]);
    let udp_inside = [&[0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0, 0][..], &[0xee; 4]].concat(); // 4 bytes too many
    let padded = teredo_ipv6(17, 8, &udp_inside);
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &ipv4_udp(client, server, &bubble));
    engine.process_packet(1.1, LinkType::Raw, &ipv4_udp(client, server, &padded));
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let column = |path: &str, field: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.schema.path == path)
            .map(|r| r.values[r.schema.field_index(field).expect("a known field")].to_tsv())
            .collect()
    };
    assert_eq!(column("weird", "name"), ["Teredo_bubble_with_payload"]);
    assert_eq!(column("weird", "source"), ["TEREDO"]);
    assert_eq!(column("weird", "uid"), column("conn", "uid"));
    // Only the outer connection: the bubble makes none inside, the mismatching packet is not forwarded.
    assert_eq!(column("conn", "proto"), ["udp"]);
    assert!(column("tunnel", "action").is_empty());
}

/// An IPv4 ICMP message of `icmp_type` with `data` after the 8-byte header and a right checksum, or a wrong one.
fn ipv4_icmp(src: [u8; 4], dst: [u8; 4], icmp_type: u8, data: &[u8], good_checksum: bool) -> Vec<u8> {
    let mut icmp = vec![icmp_type, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(data);
    let sum = internet_checksum(&icmp, 0);
    icmp[2..4].copy_from_slice(&(if good_checksum { sum } else { sum ^ 0x5555 }).to_be_bytes());
    let total = u16::try_from(20 + icmp.len()).expect("a test message fits one datagram");
    let mut datagram = vec![0x45, 0];
    datagram.extend(total.to_be_bytes());
    datagram.extend([0, 1, 0x40, 0, 64, 1, 0, 0]);
    datagram.extend(src);
    datagram.extend(dst);
    datagram.extend(icmp);
    with_checksums(datagram)
}

/// ICMP.cc's `DeliverPacket`: an ICMP message whose checksum does not sum is the connection's weird
/// `bad_ICMP_checksum` (source ICMP) and nothing else: the connection exists but the message is not counted. A
/// message the capture cut is not checked; its bytes count but not its packet (the size counter only sees whole
/// messages).
#[test]
fn a_bad_icmp_checksum_is_a_weird_and_the_message_is_not_counted() {
    let (client, server) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut engine = checked_engine();
    engine.process_packet(1.0, LinkType::Raw, &ipv4_icmp(client, server, 8, b"ping", true));
    engine.process_packet(1.5, LinkType::Raw, &ipv4_icmp(server, client, 0, b"ping", false));
    let echo = ipv4_icmp([10, 0, 0, 3], server, 8, &[0x61; 40], false);
    engine.process_packet_on_wire(2.0, LinkType::Raw, &echo[..40], Some(echo.len()));
    engine.process_packet_on_wire(2.5, LinkType::Raw, &echo[..40], Some(echo.len()));
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let column = |path: &str, field: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.schema.path == path)
            .map(|r| r.values[r.schema.field_index(field).expect("a known field")].to_tsv())
            .collect()
    };
    assert_eq!(column("weird", "name"), ["bad_ICMP_checksum"]);
    assert_eq!(column("weird", "source"), ["ICMP"]);
    assert_eq!(column("weird", "uid"), column("conn", "uid")[..1]);
    assert_eq!(column("conn", "orig_pkts"), ["1", "0"]);
    assert_eq!(column("conn", "resp_pkts"), ["0", "0"]);
    // The reply did not move the first connection's time: no duration, so no byte counts in conn.log.
    assert_eq!(column("conn", "duration"), ["-", "0.500000"]);
    assert_eq!(column("conn", "orig_bytes"), ["-", "80"]);
}

#[test]
fn a_record_past_zeeks_logging_limits_is_cut_with_one_weird_per_stream_and_kind() {
    let mut engine = checked_engine();
    engine.process_packet(5.0, LinkType::Ethernet, &[0; 16]);
    engine.drain_records().for_each(drop);
    let long = "a".repeat(5000);
    let mut values = vec![Value::Unset; crate::logs::CONN.fields.len()];
    values[0] = Value::Time(1.0);
    values[1] = Value::str(long.clone());
    engine.core.records.push(LogRecord::new(&crate::logs::CONN, values.clone()));
    // The second cut of the same kind within ten minutes is not logged again (the weird framework's weird_ignore).
    engine.core.records.push(LogRecord::new(&crate::logs::CONN, values));
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let conn: Vec<_> = records.iter().filter(|r| r.schema.path == "conn").collect();
    assert_eq!(conn.len(), 2);
    assert!(conn.iter().all(|r| r.values[1] == Value::str(&long[..4096])));
    let weirds: Vec<Vec<String>> = records
        .iter()
        .filter(|r| r.schema.path == WEIRD.path)
        .map(|r| r.values.iter().map(|v| v.to_tsv()).collect())
        .collect();
    let mut expected = vec!["5.000000".to_string()];
    expected.extend(weird(None, "log_string_field_truncated", "Conn::LOG", "-"));
    assert_eq!(weirds, [expected]);
}

/// Teredo.cc: a datagram Teredo's parser refuses is a violation, analyzer.log's `packet` line with the datagram as
/// `failure_data`, raised once; the parser's `truncated_*` weird is raised only once the tunnel confirmed (both
/// sides carried a valid packet); after the violation no packet of the connection is tried as Teredo again (the
/// valid one that follows makes no connection inside).
#[test]
fn a_teredo_violation_is_logged_once_and_ends_the_tunnel() {
    let client = ([192, 168, 2, 16], 3797);
    let server = ([65, 55, 158, 80], 3544);
    let udp_inside = [0x04, 0xd2, 0x12, 0x34, 0x00, 0x08, 0, 0];
    let valid = teredo_ipv6(17, 8, &udp_inside);
    let cut_origin: &[u8] = &[0, 0, 0xff, 0xfe, 9];
    let cut_auth: &[u8] = &[0, 1, 7];
    let run = |confirm_first: bool| {
        let mut engine = unchecked_engine();
        let mut t = 1.0;
        let mut send = |engine: &mut Engine, from_client: bool, payload: &[u8]| {
            let (src, dst) = if from_client { (client, server) } else { (server, client) };
            engine.process_packet(t, LinkType::Raw, &ipv4_udp(src, dst, payload));
            t += 0.1;
        };
        if confirm_first {
            send(&mut engine, true, &valid);
            send(&mut engine, false, &valid);
        }
        send(&mut engine, true, cut_origin);
        send(&mut engine, false, cut_auth);
        send(&mut engine, true, &valid);
        engine.finish();
        engine.drain_records().collect::<Vec<LogRecord>>()
    };
    let column = |records: &[LogRecord], path: &str, field: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.schema.path == path)
            .map(|r| r.values[r.schema.field_index(field).expect("a known field")].to_tsv())
            .collect()
    };

    let confirmed = run(true);
    let analyzer_row: Vec<String> = ["analyzer_kind", "analyzer_name", "id.resp_p", "proto", "failure_reason"]
        .iter()
        .chain(&["failure_data"])
        .map(|f| column(&confirmed, "analyzer", f).join("|"))
        .collect();
    assert_eq!(analyzer_row, ["packet", "TEREDO", "3544", "udp", "Bad Teredo encapsulation", r"\x00\x00\xff\xfe\x09"],);
    assert_eq!(column(&confirmed, "weird", "name"), ["truncated_Teredo_origin_indication"]);
    assert_eq!(column(&confirmed, "weird", "source"), ["TEREDO"]);
    let outer_uid = column(&confirmed, "analyzer", "uid");
    assert_eq!(column(&confirmed, "weird", "uid"), outer_uid);
    // The outer connection keeps its service; the inner connection has only the first two packets (both carry the
    // same inner packet), not the last one.
    let services = column(&confirmed, "conn", "service");
    assert!(services.contains(&"teredo".to_string()), "{services:?}");
    assert_eq!(column(&confirmed, "conn", "proto"), ["udp", "udp"]);
    let inner_packets: Vec<String> = column(&confirmed, "conn", "orig_pkts");
    let outer_at = column(&confirmed, "conn", "uid").iter().position(|u| *u == outer_uid[0]).expect("outer conn");
    assert_eq!(inner_packets[1 - outer_at], "2", "the last valid datagram is not decapsulated");

    // Before any confirmation: the violation alone, no weird, and no tunnel after it.
    let unconfirmed = run(false);
    assert_eq!(column(&unconfirmed, "analyzer", "failure_reason"), ["Bad Teredo encapsulation"]);
    assert!(column(&unconfirmed, "weird", "name").is_empty());
    assert_eq!(column(&unconfirmed, "conn", "service"), ["-"]);
    assert!(column(&unconfirmed, "tunnel", "action").is_empty());
}

/// Zeek's core.tunnels.gtp.unknown_or_too_short baseline row: a G-PDU whose inner packet the datagram cuts is
/// GTPv1's violation `Truncated GTPv1`, analyzer.log's `packet` line without data; the connection's later G-PDUs
/// are not tried (`ValidateSession`), so the valid one after it makes no inner connection.
#[test]
fn a_gtpv1_violation_is_analyzer_logs_packet_line() {
    let tunnel_end = ([173, 86, 159, 28], 2152);
    let other_end = ([213, 72, 147, 186], 2152);
    let inner_udp = [
        &[0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2][..],
        &[0x30, 0x39, 0x30, 0x3a, 0, 8, 0, 0],
    ]
    .concat();
    let g_pdu = |inner: &[u8]| [&[0x30, 255, 0, 0, 0, 0, 0, 1][..], inner].concat();
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &ipv4_udp(tunnel_end, other_end, &g_pdu(&inner_udp[..24])));
    engine.process_packet(1.1, LinkType::Raw, &ipv4_udp(tunnel_end, other_end, &g_pdu(&inner_udp)));
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let rows: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == "analyzer")
        .map(|r| r.values[1..].iter().map(|v| v.to_tsv()).collect::<Vec<_>>().join("\t"))
        .collect();
    let uid = records.iter().find(|r| r.schema.path == "conn").map(|r| r.values[1].to_tsv()).expect("conn");
    assert_eq!(
        rows,
        [format!("packet\tGTPV1\t{uid}\t-\t173.86.159.28\t2152\t213.72.147.186\t2152\tudp\tTruncated GTPv1\t-")]
    );
    assert_eq!(records.iter().filter(|r| r.schema.path == "conn").count(), 1, "no inner connection");
}

/// Geneve.cc: a header of another version is passed over with the flow weird `geneve_invalid_version` (the version
/// as addl, source GENEVE), neither confirmed nor a violation; a header cut short is a violation with the datagram.
#[test]
fn geneve_versions_and_truncation_are_zeeks() {
    let client = ([10, 1, 0, 1], 50901);
    let server = ([10, 1, 0, 2], 6081);
    let version2 = [0x80, 0, 0x65, 0x58, 0, 0, 42, 0];
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &ipv4_udp(client, server, &version2));
    assert_eq!(
        weird_rows(&mut engine),
        [weird(Some(("10.1.0.1", "10.1.0.2")), "geneve_invalid_version", "2", "GENEVE")]
    );
    engine.process_packet(1.1, LinkType::Raw, &ipv4_udp(client, server, &version2[..5]));
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let analyzer: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == "analyzer")
        .map(|r| [2, 10, 11].map(|i| r.values[i].to_tsv()).join("|"))
        .collect();
    assert_eq!(analyzer, [r"GENEVE|Geneve header truncation|\x80\x00eX\x00"]);
}

/// An IPv6 header from 2001:db8::1 to 2001:db8::2 (`next` header, `payload_len`) and `body`.
fn ipv6(next: u8, payload_len: u16, body: &[u8]) -> Vec<u8> {
    let host = |last| [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last];
    ipv6_between(host(1), host(2), 64, next, payload_len, body)
}

/// `inner` in an IPv4 header from 192.168.1.1 to 192.168.1.2 with protocol 41 (6in4).
fn six_in_four(inner: &[u8]) -> Vec<u8> {
    let mut outer = ip_in_ip(inner);
    outer[9] = 41;
    outer
}

const NO_NEXT_HEADER: u8 = 59;
const IPV6_FRAGMENT: u8 = 44;

/// IP.cc: an IPv6 datagram with No Next Header is the weird `ipv6_no_next` unless the innermost tunnel it came out
/// of is Teredo (`encap->LastType() == TEREDO`, a bubble); inside any other tunnel the session manager names it
/// `ipv6_no_next_in_tunnel` (a flow weird between the inner hosts, source IP). A bubble reassembled from fragments
/// inside Teredo is still inside Teredo.
#[test]
fn ipv6_no_next_is_a_weird_inside_every_tunnel_but_teredo() {
    let inner_hosts = Some(("2001:db8::1", "2001:db8::2"));
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &ipv6(NO_NEXT_HEADER, 0, &[]));
    engine.process_packet(2.0, LinkType::Raw, &six_in_four(&ipv6(NO_NEXT_HEADER, 0, &[])));
    assert_eq!(
        weird_rows(&mut engine),
        [weird(inner_hosts, "ipv6_no_next", "-", "IP"), weird(inner_hosts, "ipv6_no_next_in_tunnel", "-", "IP")]
    );

    // Teredo: a bubble, whole or as two fragments (96 bytes of No Next Header payload each side of the cut).
    let client = ([192, 168, 2, 16], 3797);
    let server = ([65, 55, 158, 80], 3544);
    let teredo = |datagram: &[u8]| ipv4_udp(client, server, datagram);
    engine.process_packet(3.0, LinkType::Raw, &teredo(&teredo_ipv6(NO_NEXT_HEADER, 0, &[])));
    let fragment = |offset: u16, more: bool, data: &[u8]| {
        let mut header = vec![NO_NEXT_HEADER, 0];
        header.extend((offset | u16::from(more)).to_be_bytes());
        header.extend([0, 0, 0, 7]);
        let body = [&header[..], data].concat();
        teredo_ipv6(IPV6_FRAGMENT, u16::try_from(body.len()).unwrap(), &body)
    };
    engine.process_packet(3.1, LinkType::Raw, &teredo(&fragment(0, true, &[0; 96])));
    engine.process_packet(3.2, LinkType::Raw, &teredo(&fragment(96, false, &[0; 96])));
    assert_eq!(weird_rows(&mut engine), Vec::<Vec<String>>::new(), "bubbles inside Teredo are no weird");

    // The same bubble inside VXLAN is (after the weird framework forgot the first one).
    let frame = ethernet(&ipv6(NO_NEXT_HEADER, 0, &[]));
    let mut frame_v6 = frame.clone();
    frame_v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let vxlan = [&[0x08, 0, 0, 0, 0, 0, 42, 0][..], &frame_v6].concat();
    engine.process_packet(1000.0, LinkType::Raw, &ipv4_udp(([10, 9, 0, 1], 50000), ([10, 9, 0, 2], 4789), &vxlan));
    assert_eq!(weird_rows(&mut engine), [weird(inner_hosts, "ipv6_no_next_in_tunnel", "-", "IP")]);
}

/// vxlan-triple-v2.pcap's packet as its baselines imply: a DNS query from 4.4.4.4 to 4.4.4.9 inside VXLAN between
/// 3.3.3.3 and 3.3.3.9, inside VXLAN between 2.2.2.2 and 2.2.2.9, inside VXLAN between 1.1.1.1 and 1.1.1.9.
fn vxlan_triple() -> Vec<u8> {
    let vxlan_to = |src: [u8; 4], dst: [u8; 4], inner_ip: &[u8]| {
        let vxlan = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &ethernet(inner_ip)].concat();
        ipv4_udp((src, 4789), (dst, 4789), &vxlan)
    };
    let query = [&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..], b"\x04zeek\x03org\x00", &[0, 1, 0, 1]].concat();
    let dns = ipv4_udp(([4, 4, 4, 4], 12345), ([4, 4, 4, 9], 53), &query);
    let third = vxlan_to([3, 3, 3, 3], [3, 3, 3, 9], &dns);
    let second = vxlan_to([2, 2, 2, 2], [2, 2, 2, 9], &third);
    vxlan_to([1, 1, 1, 1], [1, 1, 1, 9], &second)
}

/// The conn.log rows of `records` (uid, originator, proto, history, service, tunnel_parents), sorted, with the
/// uids named by the connection's originator as `names` says.
fn conn_rows_named(records: &[LogRecord], names: &HashMap<&str, &str>) -> Vec<String> {
    let conns: Vec<[String; 6]> = records
        .iter()
        .filter(|r| r.schema.path == "conn")
        .map(|r| {
            ["uid", "id.orig_h", "proto", "history", "service", "tunnel_parents"]
                .map(|f| r.values[r.schema.field_index(f).unwrap()].to_tsv())
        })
        .collect();
    let name_of: HashMap<String, &str> = conns.iter().map(|c| (c[0].clone(), names[c[1].as_str()])).collect();
    let mut rows: Vec<String> = conns
        .iter()
        .map(|c| c.iter().map(|v| name_of.get(v).copied().unwrap_or(v)).collect::<Vec<_>>().join("\t"))
        .collect();
    rows.sort();
    rows
}

/// core.tunnels.max-depth: a DNS query three VXLAN tunnels deep is analysed at the default `Tunnel::max_depth` (4):
/// the baseline's conn.log.cut rows (each connection's parent the tunnel right around it) and tunnel.log's three
/// DISCOVER and three CLOSE lines.
#[test]
fn three_vxlan_tunnels_deep_is_analysed() {
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &vxlan_triple());
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let names: HashMap<&str, &str> =
        [("1.1.1.1", "C1"), ("2.2.2.2", "C2"), ("3.3.3.3", "C3"), ("4.4.4.4", "C4")].into();
    assert_eq!(
        conn_rows_named(&records, &names),
        [
            "C1\t1.1.1.1\tudp\tD\tvxlan\t-",
            "C2\t2.2.2.2\tudp\tD\tvxlan\tC1",
            "C3\t3.3.3.3\tudp\tD\tvxlan\tC2",
            "C4\t4.4.4.4\tudp\tD\tdns\tC3",
        ]
    );
    let tunnels: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == "tunnel")
        .map(|r| [2, 7].map(|i| r.values[i].to_tsv()).join(" "))
        .collect();
    let discover = ["1.1.1.1 Tunnel::DISCOVER", "2.2.2.2 Tunnel::DISCOVER", "3.3.3.3 Tunnel::DISCOVER"];
    assert_eq!(tunnels[..3], discover);
    let mut closed = tunnels[3..].to_vec();
    closed.sort();
    assert_eq!(closed, ["1.1.1.1 Tunnel::CLOSE", "2.2.2.2 Tunnel::CLOSE", "3.3.3.3 Tunnel::CLOSE"]);
    assert!(records.iter().all(|r| r.schema.path != WEIRD.path), "no weird");
}

/// core.tunnels.max-depth-exceeded (`redef Tunnel::max_depth = 2`): a UDP tunnel one too deep is refused by its analyzer
/// (its depth check, VXLAN.cc's `CheckHistory(HIST_UNKNOWN_PKT, 'X')` since zeek/zeek#3480), which marks the outer connection's history `X` and raises
/// `exceeded_tunnel_max_depth_in_tunnel` between its hosts. The baseline's rows (`conn.log.cut`'s history and
/// service, weird.log's record) for VXLAN in VXLAN in VXLAN.
#[test]
fn a_udp_tunnel_one_too_deep_marks_its_connection() {
    let first = vxlan_triple();
    let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, tunnel_max_depth: 2, ..Default::default() });
    engine.process_packet(1.0, LinkType::Raw, &first);
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    // The baseline's uids are those of the outer connection first (CHhAv..., ClEk..., C4J4...): named here by the
    // connection's originator.
    let names: HashMap<&str, &str> = [("1.1.1.1", "C1"), ("2.2.2.2", "C2"), ("3.3.3.3", "C3")].into();
    let conn_rows = conn_rows_named(&records, &names);
    // A connection's parent is the innermost tunnel only (conn/main.zeek's `c$tunnel[|c$tunnel|-1]`).
    assert_eq!(
        conn_rows,
        ["C1\t1.1.1.1\tudp\tD\tvxlan\t-", "C2\t2.2.2.2\tudp\tD\tvxlan\tC1", "C3\t3.3.3.3\tudp\tDX\t-\tC2"]
    );
    let weirds: Vec<Vec<String>> = records
        .iter()
        .filter(|r| r.schema.path == WEIRD.path)
        .map(|r| r.values[1..].iter().map(|v| v.to_tsv()).collect())
        .collect();
    assert_eq!(weirds, [weird(Some(("3.3.3.3", "3.3.3.9")), "exceeded_tunnel_max_depth_in_tunnel", "-", "VXLAN")]);
}

/// core.tunnels.count-default-tunnel-changes (tunnel-direct-bypass.pcap, built as its generator script builds it):
/// twenty TCP segments of one connection from 10.20.0.1:44444 to 10.20.0.2:80, the even ones direct, the odd ones
/// inside GRE between 192.0.2.1 and 198.51.100.1. Each switch is a `tunnel_changed`; after
/// `Tunnel::max_changes_per_connection` (5) they are no longer reported and the history gets `X`. The baseline: the
/// connection's history `DX`, its parent the GRE tunnel, and one tunnel.log line (DISCOVER at the first GRE packet).
#[test]
fn tunnel_changes_past_the_limit_mark_the_history() {
    let mut engine = unchecked_engine();
    for i in 0..20u16 {
        let mut inner = ipv4_tcp(([10, 20, 0, 1], 44444), ([10, 20, 0, 2], 80), 1 + u32::from(i), 0, 0x18, b"X");
        inner[4..6].copy_from_slice(&(1000 + i).to_be_bytes());
        let packet = if i % 2 == 0 {
            inner
        } else {
            let mut outer = gre_between([192, 0, 2, 1], [198, 51, 100, 1], 0x0800, &inner);
            outer[4..6].copy_from_slice(&(2000 + i).to_be_bytes());
            outer
        };
        engine.process_packet(1.0 + f64::from(i) * 0.001, LinkType::Raw, &packet);
    }
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let field = |r: &LogRecord, f: &str| r.values[r.schema.field_index(f).unwrap()].to_tsv();
    let tunnels: Vec<&LogRecord> = records.iter().filter(|r| r.schema.path == "tunnel").collect();
    let conns: Vec<&LogRecord> = records.iter().filter(|r| r.schema.path == "conn").collect();
    assert_eq!(tunnels.len(), 1);
    assert_eq!(
        ["ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "tunnel_type", "action"]
            .map(|f| field(tunnels[0], f)),
        ["1.001000", "192.0.2.1", "0", "198.51.100.1", "0", "Tunnel::GRE", "Tunnel::DISCOVER"]
    );
    assert_eq!(conns.len(), 1);
    assert_eq!(
        ["ts", "history", "tunnel_parents"].map(|f| field(conns[0], f)),
        ["1.000000".to_string(), "DX".to_string(), field(tunnels[0], "uid")]
    );
}

/// UDP.cc: VXLAN over IPv6 may carry a zero UDP checksum (RFC 7348), which Zeek then does not check; the same
/// datagram to another port, or with the 'I' flag clear, is a bad checksum (IPv6's UDP checksum is mandatory).
#[test]
fn vxlan_over_ipv6_may_leave_its_checksum_zero() {
    let inner = ipv4_udp(CLIENT, SERVER, b"hello");
    let udp_in_ipv6 = |dport: u16, flags: u8| {
        let vxlan = [&[flags, 0, 0, 0, 0, 0, 42, 0][..], &ethernet(&with_checksums(inner.clone()))].concat();
        let len = u16::try_from(8 + vxlan.len()).unwrap();
        let udp = [&[0xc3, 0x50][..], &dport.to_be_bytes(), &len.to_be_bytes(), &[0, 0], &vxlan].concat();
        ipv6(17, len, &udp)
    };
    let conns_and_weirds = |packet: Vec<u8>| {
        let mut engine = checked_engine();
        engine.process_packet(1.0, LinkType::Raw, &packet);
        engine.finish();
        let records: Vec<LogRecord> = engine.drain_records().collect();
        let count = |path: &str| records.iter().filter(|r| r.schema.path == path).count();
        let weirds: Vec<String> = records
            .iter()
            .filter(|r| r.schema.path == WEIRD.path)
            .map(|r| r.values[r.schema.field_index("name").unwrap()].to_tsv())
            .collect();
        (count("conn"), weirds)
    };
    assert_eq!(conns_and_weirds(udp_in_ipv6(4789, 0x08)), (2, vec![]), "outer and inner connection");
    assert_eq!(conns_and_weirds(udp_in_ipv6(4790, 0x08)), (1, vec!["bad_UDP_checksum".to_string()]));
    assert_eq!(conns_and_weirds(udp_in_ipv6(4789, 0x00)), (1, vec!["bad_UDP_checksum".to_string()]));
}

/// Zeek's UDP analyzer finds a datagram's tunnel analyzer for each datagram afresh (`FindInnerAnalyzer`: the
/// responder's port, else Teredo's and AYIYA's `DetectProtocol`): on a port no tunnel registers, a datagram that
/// Teredo's detection does not recognise is not decapsulated even after earlier ones of the connection were.
#[test]
fn teredo_off_its_port_is_detected_per_datagram() {
    let client = ([192, 168, 2, 16], 3797);
    let relay = ([83, 170, 1, 38], 32900);
    let udp_inside = |sport: u16| [&sport.to_be_bytes()[..], &[0x00, 0x35, 0x00, 0x0c, 0, 0], b"abcd"].concat();
    let teredo_packet = teredo_ipv6(17, 12, &udp_inside(1000));
    // The same packet between two addresses outside 2001:0::/32: no signature, no origin indication.
    let mut plain_ipv6 = teredo_ipv6(17, 12, &udp_inside(1001));
    plain_ipv6[8..12].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    plain_ipv6[24..28].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &ipv4_udp(client, relay, &teredo_packet));
    engine.process_packet(1.1, LinkType::Raw, &ipv4_udp(client, relay, &plain_ipv6));
    engine.finish();
    let inner_ports: Vec<String> = engine
        .drain_records()
        .filter(|r| r.schema.path == "conn")
        .map(|r| r.values[r.schema.field_index("id.orig_p").unwrap()].to_tsv())
        .filter(|port| port != "3797")
        .collect();
    assert_eq!(inner_ports, ["1000"]);
}

/// core.tunnels.gtp.non_recursive (gtp4_udp_2152_inside.pcap): a UDP datagram between ports 2152 inside a GTP-U
/// tunnel is a plain datagram, not GTP: gtpv1-analyzer.pac's violation `GTP-in-GTP` on the inner connection (the
/// baseline's 74.125.216.149:2152 -> 10.131.138.69:2152; analyzer.log's packet line, GTPv1's without data), and
/// nothing inside it is decapsulated.
#[test]
fn gtp_inside_gtp_is_a_violation_of_the_inner_connection() {
    let g_pdu = |inner: &[u8]| {
        let len = u16::try_from(inner.len()).unwrap().to_be_bytes();
        [&[0x30, 255, len[0], len[1], 0, 0, 0, 7][..], inner].concat()
    };
    let innermost = ipv4_udp(([10, 1, 1, 1], 5000), ([10, 1, 1, 2], 6000), b"data");
    let inner = ipv4_udp(([74, 125, 216, 149], 2152), ([10, 131, 138, 69], 2152), &g_pdu(&innermost));
    let outer = ipv4_udp(([172, 16, 0, 1], 2152), ([172, 16, 0, 2], 2152), &g_pdu(&inner));
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &outer);
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let field = |r: &LogRecord, f: &str| r.values[r.schema.field_index(f).unwrap()].to_tsv();
    let conns: Vec<[String; 3]> = records
        .iter()
        .filter(|r| r.schema.path == "conn")
        .map(|r| ["uid", "id.orig_h", "service"].map(|f| field(r, f)))
        .collect();
    let hosts: Vec<&str> = conns.iter().map(|c| c[1].as_str()).collect();
    assert_eq!(hosts.len(), 2, "the outer and the inner connection only: {hosts:?}");
    let inner_conn = conns.iter().find(|c| c[1] == "74.125.216.149").expect("the inner connection");
    assert_eq!(inner_conn[2], "-");
    let analyzer: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == "analyzer")
        .map(|r| r.values[1..].iter().map(|v| v.to_tsv()).collect::<Vec<_>>().join("\t"))
        .collect();
    assert_eq!(
        analyzer,
        [format!("packet\tGTPV1\t{}\t-\t74.125.216.149\t2152\t10.131.138.69\t2152\tudp\tGTP-in-GTP\t-", inner_conn[0])]
    );
}

/// core.tunnels.vxlan-inner-tcp-bad-checksum (built as its generator script builds it): one VXLAN datagram whose
/// inner TCP SYN has the checksum 0xDEAD. The baseline: the inner connection's history `C`, no service, and its
/// weird `bad_TCP_checksum` from TCP (a connection's weird, so not `_in_tunnel`); the outer connection `D`, vxlan.
#[test]
fn a_bad_checksum_inside_vxlan_is_the_inner_connections_weird() {
    let mut syn = ipv4_tcp(([10, 0, 0, 1], 12345), ([10, 0, 0, 2], 80), 0, 0, 0x02, b"");
    syn[36..38].copy_from_slice(&0xdeadu16.to_be_bytes());
    let vxlan = [&[0x08, 0, 0, 0, 0, 0, 42, 0][..], &ethernet(&with_checksums(syn))].concat();
    let outer = with_checksums(ipv4_udp(([192, 168, 1, 1], 23456), ([192, 168, 1, 2], 4789), &vxlan));
    let mut engine = checked_engine();
    engine.process_packet(1.0, LinkType::Ethernet, &ethernet(&outer));
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let field = |r: &LogRecord, f: &str| r.values[r.schema.field_index(f).unwrap()].to_tsv();
    let mut conns: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == "conn")
        .map(|r| ["id.orig_h", "service", "history"].map(|f| field(r, f)).join("\t"))
        .collect();
    conns.sort();
    assert_eq!(conns, ["10.0.0.1\t-\tC", "192.168.1.1\tvxlan\tD"]);
    let inner_uid = records
        .iter()
        .find(|r| r.schema.path == "conn" && field(r, "id.orig_h") == "10.0.0.1")
        .map(|r| field(r, "uid"))
        .unwrap();
    let weirds: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == WEIRD.path)
        .map(|r| ["uid", "name", "addl", "source"].map(|f| field(r, f)).join("\t"))
        .collect();
    assert_eq!(weirds, [format!("{inner_uid}\tbad_TCP_checksum\t-\tTCP")]);
}

/// base/frameworks/tunnels logs an IP-layer tunnel's DISCOVER at the first connection made inside it
/// (`new_connection`'s `register_all`), not at its first packet: an IPv6 datagram without a next header inside GRE
/// makes none (only `ipv6_no_next_in_tunnel`), the UDP datagram after it does.
#[test]
fn an_ip_tunnel_is_discovered_with_its_first_connection() {
    let gre = |inner: &[u8]| gre_between(TUNNEL_A, TUNNEL_B, 0x86dd, inner);
    let udp_inside = [&[0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0, 0][..], b"abcd"].concat();
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &gre(&ipv6(NO_NEXT_HEADER, 0, &[])));
    engine.process_packet(2.0, LinkType::Raw, &gre(&ipv6(17, 12, &udp_inside)));
    engine.finish();
    let tunnel: Vec<String> = engine
        .drain_records()
        .filter(|r| r.schema.path == "tunnel")
        .map(|r| [0, 2, 4, 6, 7].map(|i| r.values[i].to_tsv()).join(" "))
        .collect();
    assert_eq!(tunnel, ["2.000000 192.168.1.1 192.168.1.2 Tunnel::GRE Tunnel::DISCOVER"]);
}

/// GRE.cc of the 2026-08-21 build reads ERSPAN itself (the ERSPAN analyzer and its weirds came with
/// zeek/zeek#5847, later): a type III header with its optional subheader carries the Ethernet frame after 20 bytes;
/// the version in a type II header is not read; a type III header cut short is GRE's `truncated_GRE` between the
/// outer hosts, before any tunnel.
#[test]
fn erspan_is_read_by_gre() {
    let gre = |proto: u16, payload: &[u8]| {
        // The sequence number's flag, version 0; the protocol type; the sequence number.
        let header = [&[0x10, 0][..], &proto.to_be_bytes(), &[0, 0, 0, 1]].concat();
        ipv4_carrying(47, TUNNEL_A, TUNNEL_B, &[&header[..], payload].concat())
    };
    let frame = ethernet(&ipv4_udp(CLIENT, SERVER, b"hello"));
    let type3_with_subheader = [&[0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1][..], &[0x77; 8], &frame].concat();
    let other_frame = ethernet(&ipv4_udp(([10, 1, 1, 1], 1111), ([10, 1, 1, 2], 2222), b"hello"));
    let type2_version3 = [&[0x30, 0, 0, 1, 0, 0, 0, 0][..], &other_frame].concat();
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &gre(0x22eb, &type3_with_subheader));
    engine.process_packet(2.0, LinkType::Raw, &gre(0x88be, &type2_version3));
    engine.process_packet(3.0, LinkType::Raw, &gre(0x22eb, &[0x20, 0, 0, 1, 0, 0, 0, 0, 0]));
    assert_eq!(weird_rows(&mut engine), [weird(Some(("192.168.1.1", "192.168.1.2")), "truncated_GRE", "-", "GRE")]);
    assert_eq!(engine.stats().connections, 2, "the frames behind both ERSPAN headers");
}

/// zeek/zeek#5829 (opened 2026-08-25, on a build without a GRE-to-MPLS registration): GRE's protocol types it
/// does not handle itself go to the IP tunnel analyzer as raw IP, so an MPLS label stack (first nibble 0) is the
/// IP analyzer's `unknown_ip_version` inside the tunnel: no addresses, no connection.
#[test]
fn gre_carrying_mpls_is_an_unknown_ip_version_in_the_tunnel() {
    let inner = ipv4_udp(CLIENT, SERVER, b"data");
    let gre = |proto: u16, payload: &[u8]| gre_between([10, 0, 0, 1], [10, 0, 0, 2], proto, payload);
    // One MPLS label (100), bottom of the stack, TTL 64, then the IP packet.
    let mpls = [&[0x00, 0x06, 0x41, 0x40][..], &inner].concat();
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &gre(0x0800, &inner));
    engine.process_packet(2.0, LinkType::Raw, &gre(0x8847, &mpls));
    assert_eq!(weird_rows(&mut engine), [weird(None, "unknown_ip_version_in_tunnel", "-", "IP")]);
    assert_eq!(engine.stats().connections, 1, "only the packet without MPLS");
}

/// core.tunnels.gre-in-gre-min-depth (gre-within-gre.pcap with `Tunnel::max_depth=1`): the inner GRE packet is
/// read by GRE, then refused by the IP tunnel analyzer's depth check: the baseline's two flow weirds between the
/// inner GRE's hosts, one per direction, named in the tunnel, from IPTUNNEL (the baseline of zeek commit fbb1a579;
/// the later one, of the unmerged zeek/zeek#5847, says GRE).
#[test]
fn gre_in_gre_past_the_depth_is_refused_by_the_ip_tunnel_analyzer() {
    let gre = |src: [u8; 4], dst: [u8; 4], inner: &[u8]| gre_between(src, dst, 0x0800, inner);
    let (a, b) = ([10, 10, 11, 2], [10, 10, 13, 2]);
    let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, tunnel_max_depth: 1, ..Default::default() });
    let request = ipv4_udp(CLIENT, SERVER, b"ping");
    let reply = ipv4_udp(SERVER, CLIENT, b"pong");
    engine.process_packet(1.0, LinkType::Raw, &gre([172, 16, 0, 1], [172, 16, 0, 2], &gre(a, b, &request)));
    engine.process_packet(1.1, LinkType::Raw, &gre([172, 16, 0, 2], [172, 16, 0, 1], &gre(b, a, &reply)));
    assert_eq!(
        weird_rows(&mut engine),
        [
            weird(Some(("10.10.11.2", "10.10.13.2")), "exceeded_tunnel_max_depth_in_tunnel", "-", "IPTUNNEL"),
            weird(Some(("10.10.13.2", "10.10.11.2")), "exceeded_tunnel_max_depth_in_tunnel", "-", "IPTUNNEL"),
        ]
    );
}

/// `Tunnel::ip_tunnel_timeout` (24 hours): an IP-layer tunnel's entry is checked a day after it was made and each
/// day after, and dropped at the first check that finds it idle for a day; a later packet makes a new tunnel with a
/// new uid (discovered again with its first connection). Two GRE tunnels used at 0 s and 3600 s: the check at one
/// day finds them idle for less than a day, the one at two days (172800 s) drops them, so a packet just before it
/// is the old tunnel's and one at it a new tunnel's.
#[test]
fn an_ip_tunnel_idle_past_its_timeout_gets_a_new_uid() {
    let gre = |src: [u8; 4], dst: [u8; 4], sport: u16| {
        gre_between(src, dst, 0x0800, &ipv4_udp(([10, 9, 9, 1], sport), ([10, 9, 9, 2], 53), b"query"))
    };
    let (x, y) = (([172, 16, 1, 1], [172, 16, 1, 2]), ([172, 16, 2, 1], [172, 16, 2, 2]));
    let mut engine = unchecked_engine();
    for (ts, sport) in [(0.0, 1000), (3600.0, 1001)] {
        engine.process_packet(ts, LinkType::Raw, &gre(x.0, x.1, sport));
        engine.process_packet(ts, LinkType::Raw, &gre(y.0, y.1, sport));
    }
    engine.process_packet(172_799.0, LinkType::Raw, &gre(x.0, x.1, 1002));
    engine.process_packet(172_800.0, LinkType::Raw, &gre(y.0, y.1, 1002));
    engine.finish();
    // Both tunnels also expire from `Tunnel::active` in between, so each is discovered again; only the new one has a
    // new uid.
    let discovered: Vec<(String, String, String)> = engine
        .drain_records()
        .filter(|r| r.schema.path == "tunnel" && r.values[7].to_tsv() == "Tunnel::DISCOVER")
        .map(|r| (r.values[0].to_tsv(), r.values[1].to_tsv(), r.values[2].to_tsv()))
        .collect();
    let at = |host: &str| discovered.iter().filter(|d| d.2 == host).map(|d| d.0.as_str()).collect::<Vec<_>>();
    assert_eq!(at("172.16.1.1"), ["0.000000", "172799.000000"], "{discovered:?}");
    assert_eq!(at("172.16.2.1"), ["0.000000", "172800.000000"], "{discovered:?}");
    let uids = |host: &str| discovered.iter().filter(|d| d.2 == host).map(|d| d.1.as_str()).collect::<Vec<_>>();
    assert_eq!(uids("172.16.1.1")[0], uids("172.16.1.1")[1], "the same tunnel, discovered again");
    assert_ne!(uids("172.16.2.1")[0], uids("172.16.2.1")[1]);
}

/// tunnel.log's rows as "ts uid id.orig_h id.orig_p id.resp_h id.resp_p tunnel_type action".
fn tunnel_rows(engine: &mut Engine) -> Vec<String> {
    engine
        .drain_records()
        .filter(|r| r.schema.path == "tunnel")
        .map(|r| {
            ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "tunnel_type", "action"]
                .map(|f| r.values[r.schema.field_index(f).unwrap()].to_tsv())
                .join(" ")
        })
        .collect()
}

/// A UDP datagram outside any tunnel, between hosts of its own: it only moves network time on (and the sweep).
fn clock_tick(engine: &mut Engine, ts: f64) {
    engine.process_packet(ts, LinkType::Raw, &ipv4_udp(([10, 0, 0, 1], 5000), ([10, 0, 0, 2], 5001), b"tick"));
}

/// The uid of the tunnel tunnel.log's `rows` name first.
fn first_uid(rows: &[String]) -> String {
    rows.first().and_then(|r| r.split(' ').nth(1)).unwrap_or_default().to_string()
}

/// base/frameworks/tunnels' `Tunnel::active` (`&read_expire = Tunnel::expiration_interval`, an hour): an IP-in-IP
/// tunnel that no new connection used for more than an hour gets `Tunnel::EXPIRE` (`Tunnel::expire` writes the
/// registered record with network time at expiry), and a connection after that registers it again, a new DISCOVER
/// with the same uid (the IP tunnel analyzer's entry lives on). A packet of a connection that already exists does not
/// look the table up, so the second packet at 50 s does not keep the tunnel alive; an access exactly an hour old has
/// not lapsed (`TableVal::DoExpire` expires what is strictly older).
#[test]
fn an_ip_tunnel_unused_for_an_hour_expires_and_is_discovered_again() {
    let query = |sport: u16| ip_in_ip(&ipv4_udp(([10, 9, 9, 1], sport), ([10, 9, 9, 2], 9999), b"query"));
    let mut engine = unchecked_engine();
    engine.process_packet(10.0, LinkType::Raw, &query(1000));
    engine.process_packet(50.0, LinkType::Raw, &query(1000));
    clock_tick(&mut engine, 3610.0);
    let rows = tunnel_rows(&mut engine);
    let uid = first_uid(&rows);
    assert_eq!(rows, [format!("10.000000 {uid} 192.168.1.1 0 192.168.1.2 0 Tunnel::IP Tunnel::DISCOVER")]);
    clock_tick(&mut engine, 3611.0);
    assert_eq!(
        tunnel_rows(&mut engine),
        [format!("3611.000000 {uid} 192.168.1.1 0 192.168.1.2 0 Tunnel::IP Tunnel::EXPIRE")]
    );
    clock_tick(&mut engine, 7300.0);
    assert_eq!(tunnel_rows(&mut engine), Vec::<String>::new(), "expired once");
    engine.process_packet(7400.0, LinkType::Raw, &query(1001));
    engine.finish();
    assert_eq!(
        tunnel_rows(&mut engine),
        [format!("7400.000000 {uid} 192.168.1.1 0 192.168.1.2 0 Tunnel::IP Tunnel::DISCOVER")],
        "discovered again; nothing expires at the end of input"
    );
}

/// A GRE tunnel with a new connection every five minutes for six hours stays in `Tunnel::active`: one DISCOVER and
/// nothing else, also at the end of input.
#[test]
fn a_tunnel_used_every_few_minutes_never_expires() {
    let gre = |sport: u16| {
        let inner = ipv4_udp(([10, 9, 9, 1], sport), ([10, 9, 9, 2], 9999), b"query");
        gre_between([172, 16, 1, 1], [172, 16, 1, 2], 0x0800, &inner)
    };
    let mut engine = unchecked_engine();
    for i in 0..=72u16 {
        let ts = f64::from(i) * 300.0;
        engine.process_packet(ts, LinkType::Raw, &gre(2000 + i));
        clock_tick(&mut engine, ts + 150.0);
    }
    engine.finish();
    let rows = tunnel_rows(&mut engine);
    let uid = first_uid(&rows);
    assert_eq!(rows, [format!("0.000000 {uid} 172.16.1.1 0 172.16.1.2 0 Tunnel::GRE Tunnel::DISCOVER")]);
}

/// A VXLAN frame from 1.1.1.1 to 1.1.1.9 carrying a UDP datagram from 4.4.4.4 port `sport`.
fn vxlan_with(sport: u16) -> Vec<u8> {
    let inner = ipv4_udp(([4, 4, 4, 4], sport), ([4, 4, 4, 9], 9999), b"payload");
    let vxlan = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &ethernet(&inner)].concat();
    ipv4_udp(([1, 1, 1, 1], 40000), ([1, 1, 1, 9], 4789), &vxlan)
}

/// A connection-backed tunnel whose connection ends within the hour gets CLOSE (`finalize_tunnel`), which deletes it
/// from `Tunnel::active`: no EXPIRE follows. When the next packet comes only after the hour, Zeek's table timer
/// (due 10 s after its last run) fires before the connection's inactivity timer: EXPIRE, and no CLOSE.
#[test]
fn a_udp_tunnel_closed_by_its_connection_does_not_expire() {
    let rows_with_ticks = |ticks: &[f64]| {
        let mut engine = unchecked_engine();
        engine.process_packet(1.0, LinkType::Raw, &vxlan_with(1000));
        for &ts in ticks {
            clock_tick(&mut engine, ts);
        }
        engine.finish();
        let rows = tunnel_rows(&mut engine);
        let uid = first_uid(&rows);
        let row = move |ts: &str, action: &str| format!("{ts} {uid} 1.1.1.1 40000 1.1.1.9 4789 Tunnel::VXLAN {action}");
        (rows, row)
    };
    // The outer connection ends at the first packet after its inactivity timeout (a minute).
    let (rows, row) = rows_with_ticks(&[100.0, 5000.0, 9000.0]);
    assert_eq!(rows, [row("1.000000", "Tunnel::DISCOVER"), row("100.000000", "Tunnel::CLOSE")]);
    let (rows, row) = rows_with_ticks(&[5000.0, 9000.0]);
    assert_eq!(rows, [row("1.000000", "Tunnel::DISCOVER"), row("5000.000000", "Tunnel::EXPIRE")]);
}

/// A connection-backed tunnel whose connection lives on but makes no new connection inside for an hour (one inner
/// flow, a datagram every 30 s) expires like any other: EXPIRE while the connection lives, then no CLOSE when it
/// ends unless a later connection inside registered it again (DISCOVER).
#[test]
fn a_long_lived_udp_tunnel_without_new_connections_expires() {
    let one_flow_for_an_hour_and_more = |engine: &mut Engine| {
        for i in 0..=125u16 {
            engine.process_packet(1.0 + f64::from(i) * 30.0, LinkType::Raw, &vxlan_with(1000));
        }
    };
    let mut engine = unchecked_engine();
    one_flow_for_an_hour_and_more(&mut engine);
    let rows = tunnel_rows(&mut engine);
    let uid = first_uid(&rows);
    let row = |ts: &str, action: &str| format!("{ts} {uid} 1.1.1.1 40000 1.1.1.9 4789 Tunnel::VXLAN {action}");
    // The access at 1 s lapses after 3601 s: the first packet past it is at 3631 s.
    assert_eq!(rows, [row("1.000000", "Tunnel::DISCOVER"), row("3631.000000", "Tunnel::EXPIRE")]);
    engine.finish();
    assert_eq!(tunnel_rows(&mut engine), Vec::<String>::new(), "an expired tunnel is not closed");

    let mut engine = unchecked_engine();
    one_flow_for_an_hour_and_more(&mut engine);
    engine.process_packet(3800.0, LinkType::Raw, &vxlan_with(1001));
    engine.finish();
    let rows = tunnel_rows(&mut engine);
    let uid = first_uid(&rows);
    let row = |ts: &str, action: &str| format!("{ts} {uid} 1.1.1.1 40000 1.1.1.9 4789 Tunnel::VXLAN {action}");
    assert_eq!(
        rows,
        [
            row("1.000000", "Tunnel::DISCOVER"),
            row("3631.000000", "Tunnel::EXPIRE"),
            row("3800.000000", "Tunnel::DISCOVER"),
            row("3800.000000", "Tunnel::CLOSE"),
        ]
    );
}

/// IPTunnel.cc of the 2026-08-21 build keeps IP-in-IP and GRE tunnels in one map keyed by the host pair (one map
/// per analyzer came with zeek/zeek#5847): GRE between hosts that already had an IP-in-IP tunnel is that tunnel,
/// with its uid and its type.
#[test]
fn ip_in_ip_and_gre_between_the_same_hosts_are_one_tunnel() {
    let mut engine = unchecked_engine();
    engine.process_packet(1.0, LinkType::Raw, &ip_in_ip(&ipv4_udp(CLIENT, SERVER, b"one")));
    let gre = gre_between(TUNNEL_A, TUNNEL_B, 0x0800, &ipv4_udp(([10, 2, 2, 1], 4000), ([10, 2, 2, 2], 4001), b"two"));
    engine.process_packet(2.0, LinkType::Raw, &gre);
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    let field = |r: &LogRecord, f: &str| r.values[r.schema.field_index(f).unwrap()].to_tsv();
    let tunnels: Vec<String> = records
        .iter()
        .filter(|r| r.schema.path == "tunnel")
        .map(|r| [field(r, "uid"), field(r, "tunnel_type"), field(r, "action")].join(" "))
        .collect();
    let parents: Vec<String> =
        records.iter().filter(|r| r.schema.path == "conn").map(|r| field(r, "tunnel_parents")).collect();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0], parents[1], "both connections are in the same tunnel");
    assert_eq!(tunnels, [format!("{} Tunnel::IP Tunnel::DISCOVER", parents[0])]);
}

/// A storm of IP-in-IP tunnels between distinct host pairs, one every 10 s for three days: each tunnel's entry goes
/// once its inactivity timer would have dropped it (a day idle), so the map holds about a day of tunnels, not all
/// of them. Half the tunnels carry only a first fragment (no connection, so never discovered): their pending
/// DISCOVER goes with the entry.
#[test]
fn ip_tunnels_between_ever_new_hosts_are_dropped_when_they_time_out() {
    const SPACING: f64 = 10.0;
    let mut engine = unchecked_engine();
    let mut peak = 0;
    for i in 0..26_000u32 {
        let [_, a, b, c] = i.to_be_bytes();
        let sport = 1024 + u16::try_from(i % 60_000).unwrap();
        let inner = if i % 2 == 0 { ipv4_udp((CLIENT.0, sport), SERVER, b"x") } else { fragment(0, true, &[0; 16]) };
        let mut packet = ip_in_ip(&inner);
        packet[12..16].copy_from_slice(&[100, a, b, c]);
        engine.process_packet(f64::from(i) * SPACING, LinkType::Raw, &packet);
        peak = peak.max(engine.core.ip_tunnels.len());
        engine.drain_records().for_each(drop);
    }
    // A day of tunnels, plus what the hourly prune leaves until its next run.
    let live = ((86_400.0 + 3_600.0) / SPACING) as usize + 1;
    assert!(peak <= live, "{peak} tunnels kept, {live} live at most");
    assert!(peak >= (86_400.0 / SPACING) as usize, "a tunnel lives a day: {peak}");
    assert!(engine.core.logged_tunnels.len() <= live, "{}", engine.core.logged_tunnels.len());
}
