//! VXLAN, Geneve, GTP-U and AYIYA decapsulation, which no oracle trace has: frames are generated into a temp dir, the node runs
//! over them, and tunnel.log and conn.log are checked against what Zeek writes for them. Zeek's rules (its
//! vxlan, geneve, gtpv1 and ayiya packet analyzers, base/frameworks/tunnels/main.zeek):
//! * the outer UDP connection is the tunnel: tunnel.log has a `Tunnel::DISCOVER` line with its uid and 4-tuple
//!   when the first inner connection appears, and `Tunnel::CLOSE` when the outer connection goes;
//! * `tunnel_type` is `Tunnel::VXLAN` (UDP 4789, the 'I' flag set, inner Ethernet) or `Tunnel::GTPv1` (UDP 2152,
//!   G-PDU messages carrying IP);
//! * both analyzers confirm on the first valid packet (`Tunnel::delay_gtp_confirmation` is off), so the outer
//!   connection's service is `vxlan` / `gtpv1` even when only one direction carried the tunnel;
//! * inner connections list the outer uid in `tunnel_parents`;
//! * a VXLAN header without the 'I' flag is a violation before any confirmation: nothing is decapsulated;
//! * Geneve (UDP 6081) carries Ethernet or IP after its options; AYIYA (UDP 5072, or any port when its bytes
//!   match Zeek's detection) carries IP after its identity and signature; a valid header with no packet confirms
//!   and raises `geneve_empty_packet` / `ayiya_empty_packet` as a flow weird from the packet analyzer.

mod support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn be16(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
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

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&be16(sport));
    u.extend_from_slice(&be16(dport));
    u.extend_from_slice(&be16(u16::try_from(8 + payload.len()).expect("test datagram fits")));
    u.extend_from_slice(&[0, 0]); // no checksum
    u.extend_from_slice(payload);
    u
}

fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&be16(sport));
    t.extend_from_slice(&be16(dport));
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn ethernet(payload: &[u8]) -> Vec<u8> {
    let mut e = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    e.extend_from_slice(&be16(ETHERTYPE_IPV4));
    e.extend_from_slice(payload);
    e
}

/// A VXLAN header (RFC 7348) with the given flags byte and VNI.
fn vxlan(flags: u8, vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, 0, 0, 0];
    v.extend_from_slice(&(vni << 8).to_be_bytes());
    v.extend_from_slice(inner_frame);
    v
}

/// A GTPv1-U G-PDU (message type 255). With `pdu_session_ext`, the E flag is set and a PDU session container
/// extension header (5G) precedes the inner packet.
fn gtpu_g_pdu(teid: u32, pdu_session_ext: bool, inner_ip: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    if pdu_session_ext {
        body.extend_from_slice(&[0, 0, 0, 0x85]); // sequence number, N-PDU number, next extension type
        body.extend_from_slice(&[1, 0x00, 0x09, 0]); // one 4-byte unit, QFI 9, no next extension
    }
    body.extend_from_slice(inner_ip);
    let flags = if pdu_session_ext { 0x34 } else { 0x30 }; // version 1, PT 1, E
    let mut g = vec![flags, 255];
    g.extend_from_slice(&be16(u16::try_from(body.len()).expect("test datagram fits")));
    g.extend_from_slice(&teid.to_be_bytes());
    g.extend_from_slice(&body);
    g
}

type Record = HashMap<String, String>;

/// The records of a Zeek TSV log by column name (no file: no records).
fn read_log(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("#fields\t"))
        .map(|f| f.split('\t').map(str::to_string).collect())
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| fields.iter().cloned().zip(l.split('\t').map(str::to_string)).collect())
        .collect()
}

struct Logs {
    conn: Vec<Record>,
    tunnel: Vec<Record>,
    weird: Vec<Record>,
}

impl Logs {
    fn conn_to(&self, resp_p: &str) -> &Record {
        self.conn.iter().find(|r| r["id.resp_p"] == resp_p).unwrap_or_else(|| panic!("no conn to {resp_p}"))
    }
}

/// Runs the node (full mode, checksums ignored as the frames carry none) over `frames`.
fn run_node(frames: &[(f64, Vec<u8>)]) -> Logs {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("trace.pcap");
    support::write_pcap(&pcap, frames);
    let logdir = dir.path().join("logs");
    let out = Command::new(support::node_binary())
        .arg("-r")
        .arg(&pcap)
        .arg("--logdir")
        .arg(&logdir)
        .arg("-C")
        .output()
        .expect("run zeek-node");
    assert!(out.status.success(), "zeek-node failed: {}", String::from_utf8_lossy(&out.stderr));
    Logs {
        conn: read_log(&logdir.join("conn.log")),
        tunnel: read_log(&logdir.join("tunnel.log")),
        weird: read_log(&logdir.join("weird.log")),
    }
}

const VTEP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const VTEP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

/// One outer VXLAN datagram between the VTEPs carrying an inner TCP segment between client and server.
fn vxlan_frame(from_a: bool, flags: u8, inner_tcp: Vec<u8>, inner_from_client: bool) -> Vec<u8> {
    let (isrc, idst) = if inner_from_client { (CLIENT, SERVER) } else { (SERVER, CLIENT) };
    let inner = ethernet(&ipv4(isrc, idst, PROTO_TCP, &inner_tcp));
    let (osrc, odst, sport, dport) =
        if from_a { (VTEP_A, VTEP_B, 50_000, 4789) } else { (VTEP_B, VTEP_A, 4789, 50_000) };
    ethernet(&ipv4(osrc, odst, PROTO_UDP, &udp(sport, dport, &vxlan(flags, 42, &inner))))
}

fn vxlan_handshake(flags: u8) -> Vec<(f64, Vec<u8>)> {
    vec![
        (100.0, vxlan_frame(true, flags, tcp(40_000, 80, 1000, 0, SYN), true)),
        (100.1, vxlan_frame(false, flags, tcp(80, 40_000, 5000, 1001, SYN | ACK), false)),
        (100.2, vxlan_frame(true, flags, tcp(40_000, 80, 1001, 5001, ACK), true)),
    ]
}

#[test]
fn vxlan_outer_connection_is_the_tunnel_and_inner_tcp_names_it() {
    let logs = run_node(&vxlan_handshake(0x08));
    let outer = logs.conn_to("4789");
    assert_eq!(outer["proto"], "udp");
    assert_eq!(outer["service"], "vxlan");
    assert_eq!((outer["orig_pkts"].as_str(), outer["resp_pkts"].as_str()), ("2", "1"));
    let inner = logs.conn_to("80");
    assert_eq!((inner["id.orig_h"].as_str(), inner["id.resp_h"].as_str()), ("192.168.1.1", "192.168.1.2"));
    assert_eq!(inner["history"], "ShA");
    assert_eq!(inner["conn_state"], "S1");
    assert_eq!(inner["tunnel_parents"], outer["uid"]);

    let actions: Vec<(&str, &str)> =
        logs.tunnel.iter().map(|r| (r["tunnel_type"].as_str(), r["action"].as_str())).collect();
    assert_eq!(actions, [("Tunnel::VXLAN", "Tunnel::DISCOVER"), ("Tunnel::VXLAN", "Tunnel::CLOSE")]);
    let discover = &logs.tunnel[0];
    assert_eq!(discover["ts"], "100.000000", "discovered with the first inner connection");
    assert_eq!(discover["uid"], outer["uid"]);
    let id: Vec<&str> =
        ["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"].iter().map(|k| discover[*k].as_str()).collect();
    assert_eq!(id, ["10.0.0.1", "50000", "10.0.0.2", "4789"]);
    assert!(logs.tunnel.iter().all(|r| r["uid"] == outer["uid"]));
}

#[test]
fn vxlan_without_the_i_flag_is_not_decapsulated() {
    let logs = run_node(&vxlan_handshake(0x00));
    assert!(logs.tunnel.is_empty(), "no tunnel: {:?}", logs.tunnel);
    assert_eq!(logs.conn.len(), 1, "only the outer connection: {:?}", logs.conn);
    assert_eq!(logs.conn[0]["service"], "-");
}

#[test]
fn gtpu_g_pdus_are_decapsulated_and_confirmed_from_one_direction() {
    let ue = Ipv4Addr::new(10, 45, 0, 7);
    let host = Ipv4Addr::new(198, 51, 100, 9);
    let (enb, upf) = (Ipv4Addr::new(172, 16, 0, 1), Ipv4Addr::new(172, 16, 0, 2));
    let inner = |sport: u16, with_ext: bool| {
        let datagram = ipv4(ue, host, PROTO_UDP, &udp(sport, 9999, b"payload"));
        ethernet(&ipv4(enb, upf, PROTO_UDP, &udp(2152, 2152, &gtpu_g_pdu(0x1234, with_ext, &datagram))))
    };
    let logs = run_node(&[(200.0, inner(5000, false)), (200.5, inner(5001, true))]);
    let outer = logs.conn_to("2152");
    assert_eq!(outer["service"], "gtpv1");
    for sport in ["5000", "5001"] {
        let r = logs.conn.iter().find(|r| r["id.orig_p"] == sport).unwrap_or_else(|| panic!("inner {sport}"));
        assert_eq!((r["id.orig_h"].as_str(), r["id.resp_p"].as_str()), ("10.45.0.7", "9999"));
        assert_eq!(r["tunnel_parents"], outer["uid"]);
    }
    let actions: Vec<(&str, &str)> =
        logs.tunnel.iter().map(|r| (r["tunnel_type"].as_str(), r["action"].as_str())).collect();
    assert_eq!(actions, [("Tunnel::GTPv1", "Tunnel::DISCOVER"), ("Tunnel::GTPv1", "Tunnel::CLOSE")]);
    assert_eq!(logs.tunnel[0]["ts"], "200.000000");
}

/// A Geneve header (RFC 8926) with `option_words` 4-byte words of options and the given protocol type.
fn geneve(option_words: u8, protocol: u16, inner: &[u8]) -> Vec<u8> {
    let mut g = vec![option_words, 0];
    g.extend_from_slice(&be16(protocol));
    g.extend_from_slice(&[0, 0, 7, 0]); // VNI 7
    for _ in 0..option_words {
        g.extend_from_slice(&[0x01, 0x02, 0x03, 0]); // class 0x0102, type 3, no data
    }
    g.extend_from_slice(inner);
    g
}

/// An AYIYA "forward" message (opcode 1) carrying an IPv4 packet (next header 4): a 16-byte identity and a
/// 20-byte SHA-1 signature.
fn ayiya_forward(inner_ip: &[u8]) -> Vec<u8> {
    let mut a = vec![0x41, 0x52, 0x11, 4, 0, 0, 0, 0];
    a.extend_from_slice(&[0x20; 16]);
    a.extend_from_slice(&[0x5a; 20]);
    a.extend_from_slice(inner_ip);
    a
}

#[test]
fn geneve_carries_ethernet_after_its_options_and_names_the_outer_connection() {
    let (a, b) = (Ipv4Addr::new(20, 0, 0, 1), Ipv4Addr::new(20, 0, 0, 2));
    let segment = |inner_tcp: Vec<u8>, from_client: bool| {
        let (src, dst) = if from_client { (CLIENT, SERVER) } else { (SERVER, CLIENT) };
        let frame = ethernet(&ipv4(src, dst, PROTO_TCP, &inner_tcp));
        let (osrc, odst, sport, dport) = if from_client { (a, b, 50_901, 6081) } else { (b, a, 6081, 50_901) };
        ethernet(&ipv4(osrc, odst, PROTO_UDP, &udp(sport, dport, &geneve(2, 0x6558, &frame))))
    };
    let logs = run_node(&[
        (300.0, segment(tcp(40_000, 443, 1000, 0, SYN), true)),
        (300.1, segment(tcp(443, 40_000, 5000, 1001, SYN | ACK), false)),
    ]);
    let outer = logs.conn_to("6081");
    assert_eq!((outer["service"].as_str(), outer["id.orig_p"].as_str()), ("geneve", "50901"));
    let inner = logs.conn_to("443");
    assert_eq!((inner["history"].as_str(), inner["tunnel_parents"].as_str()), ("Sh", outer["uid"].as_str()));
    let actions: Vec<(&str, &str)> =
        logs.tunnel.iter().map(|r| (r["tunnel_type"].as_str(), r["action"].as_str())).collect();
    assert_eq!(actions, [("Tunnel::GENEVE", "Tunnel::DISCOVER"), ("Tunnel::GENEVE", "Tunnel::CLOSE")]);
}

#[test]
fn an_empty_geneve_packet_confirms_and_is_a_flow_weird() {
    let (a, b) = (Ipv4Addr::new(20, 0, 0, 1), Ipv4Addr::new(20, 0, 0, 2));
    let empty = ethernet(&ipv4(a, b, PROTO_UDP, &udp(50_901, 6081, &geneve(1, 0x6558, &[]))));
    let logs = run_node(&[(310.0, empty)]);
    assert_eq!(logs.conn.len(), 1, "{:?}", logs.conn);
    assert_eq!(logs.conn[0]["service"], "geneve");
    assert!(logs.tunnel.is_empty(), "no inner connection, no tunnel line: {:?}", logs.tunnel);
    let weirds: Vec<(&str, &str, &str, &str)> = logs
        .weird
        .iter()
        .map(|w| (w["name"].as_str(), w["source"].as_str(), w["id.orig_h"].as_str(), w["uid"].as_str()))
        .collect();
    assert_eq!(weirds, [("geneve_empty_packet", "GENEVE", "20.0.0.1", "-")]);
}

#[test]
fn ayiya_forwards_ip_on_its_port_and_on_others_by_its_bytes() {
    let (tunnel_client, broker) = (Ipv4Addr::new(192, 168, 3, 101), Ipv4Addr::new(216, 14, 98, 22));
    let forward = |sport: u16, dport: u16, inner_sport: u16| {
        let datagram = ipv4(CLIENT, SERVER, PROTO_UDP, &udp(inner_sport, 7777, b"hello"));
        ethernet(&ipv4(tunnel_client, broker, PROTO_UDP, &udp(sport, dport, &ayiya_forward(&datagram))))
    };
    let logs = run_node(&[(400.0, forward(53_796, 5072, 6000)), (400.5, forward(53_797, 40_000, 6001))]);
    for (outer_port, inner_port) in [("5072", "6000"), ("40000", "6001")] {
        let outer = logs.conn_to(outer_port);
        assert_eq!(outer["service"], "ayiya", "outer to {outer_port}");
        let inner = logs.conn.iter().find(|r| r["id.orig_p"] == inner_port).expect("inner connection");
        assert_eq!(inner["tunnel_parents"], outer["uid"]);
    }
    let kinds: Vec<&str> = logs.tunnel.iter().map(|r| r["tunnel_type"].as_str()).collect();
    assert_eq!(kinds, ["Tunnel::AYIYA"; 4]);
}

#[test]
fn only_the_responders_port_names_a_tunnel() {
    let (client, resolver) = (Ipv4Addr::new(10, 1, 62, 151), Ipv4Addr::new(10, 0, 0, 53));
    // A DNS query that happens to leave from AYIYA's port.
    let query = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1];
    let logs = run_node(&[(500.0, ethernet(&ipv4(client, resolver, PROTO_UDP, &udp(5072, 53, &query))))]);
    let conn = logs.conn_to("53");
    assert_eq!((conn["id.orig_p"].as_str(), conn["service"].as_str()), ("5072", "dns"));
    assert!(logs.tunnel.is_empty() && logs.weird.is_empty(), "{:?} {:?}", logs.tunnel, logs.weird);
}
