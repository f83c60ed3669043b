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

use support::frames::{MIRROR_SOURCE, Mirror, PROTO_UDP, be16, ethernet, ipv4, mirrored, oracle_frames, udp, vxlan};

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

const PROTO_TCP: u8 = 6;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&be16(sport));
    t.extend_from_slice(&be16(dport));
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
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

/// The values of `columns` in each record, tab-joined, with every uid replaced by its name in `uids` (so rows
/// compare with a baseline's, whose uids come from Zeek's seeded generator).
fn rows(records: &[Record], columns: &[&str], uids: &HashMap<String, &str>) -> Vec<String> {
    let named = |v: &str| {
        v.split(',').map(|part| uids.get(part).copied().unwrap_or(part).to_string()).collect::<Vec<_>>().join(",")
    };
    records.iter().map(|r| columns.iter().map(|c| named(&r[*c])).collect::<Vec<_>>().join("\t")).collect()
}

const CONN_COLUMNS: [&str; 20] = [
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
    "ip_proto",
];

const TUNNEL_COLUMNS: [&str; 7] = ["uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "tunnel_type", "action"];

/// A DNS message: `id`, a reply when `answers` is given, one question for zeek.org of `qtype`, then the answers
/// (name pointer, type, class IN, TTL 60, the data).
fn dns(id: u16, qtype: u16, answers: Option<&[(u16, Vec<u8>)]>) -> Vec<u8> {
    dns_for(b"\x04zeek\x03org\x00", id, qtype, answers)
}

/// [`dns`] for the name `qname` (in its wire form).
fn dns_for(qname: &[u8], id: u16, qtype: u16, answers: Option<&[(u16, Vec<u8>)]>) -> Vec<u8> {
    let answers = answers.unwrap_or_default();
    let flags: u16 = if answers.is_empty() { 0x0100 } else { 0x8180 };
    let mut m = Vec::new();
    for v in [id, flags, 1, u16::try_from(answers.len()).expect("few answers"), 0, 0] {
        m.extend_from_slice(&be16(v));
    }
    m.extend_from_slice(qname);
    m.extend_from_slice(&be16(qtype));
    m.extend_from_slice(&be16(1));
    for (rtype, data) in answers {
        m.extend_from_slice(&[0xc0, 0x0c]);
        m.extend_from_slice(&be16(*rtype));
        m.extend_from_slice(&be16(1));
        m.extend_from_slice(&60u32.to_be_bytes());
        m.extend_from_slice(&be16(u16::try_from(data.len()).expect("short record")));
        m.extend_from_slice(data);
    }
    m
}

/// A TXT record's data: one string of `len` bytes.
fn txt(len: u8) -> Vec<u8> {
    [vec![len], vec![b't'; usize::from(len)]].concat()
}

/// Zeek's core.tunnels.gre-over-udp (gre-over-udp-4754.pcap): GRE over UDP port 4754 (RFC 8086,
/// `PacketAnalyzer::GRE::gre_ports`). The trace's DNS exchange rebuilt byte for byte as its baseline rows imply:
/// two queries of 26 bytes in one outer UDP connection, answers of 85 and 86 bytes in another, every datagram from
/// 192.168.0.107 to 192.168.5.1:4754 with a 4-byte GRE header. The outer connections get no service; the tunnel is
/// GRE's, between the outer hosts (ports 0), one for both UDP connections, and the inner connection names it.
#[test]
fn gre_over_udp_is_a_gre_tunnel_between_the_outer_hosts() {
    let (sensor, collector) = (Ipv4Addr::new(192, 168, 0, 107), Ipv4Addr::new(192, 168, 5, 1));
    let (client, resolver) = (Ipv4Addr::new(172, 17, 0, 2), Ipv4Addr::new(1, 1, 1, 1));
    let gre_over_udp = |sport: u16, inner: Vec<u8>| {
        let gre = [&[0, 0, 0x08, 0x00][..], &inner].concat();
        ethernet(&ipv4(sensor, collector, PROTO_UDP, &udp(sport, 4754, &gre)))
    };
    let query = |id, qtype| ipv4(client, resolver, PROTO_UDP, &udp(51714, 53, &dns(id, qtype, None)));
    let answer = |id, qtype, records: &[(u16, Vec<u8>)]| {
        ipv4(resolver, client, PROTO_UDP, &udp(53, 51714, &dns(id, qtype, Some(records))))
    };
    let a = (1, vec![192, 0, 2, 1]);
    let aaaa = (28, [vec![0x20, 0x01, 0x0d, 0xb8], vec![0; 11], vec![1]].concat());
    let (answer_a, answer_aaaa) = (answer(0x1234, 1, &[a, (16, txt(30))]), answer(0x1235, 28, &[aaaa, (16, txt(19))]));
    assert_eq!((answer_a.len(), answer_aaaa.len()), (20 + 8 + 85, 20 + 8 + 86));
    let logs = run_node(&[
        (1000.0, gre_over_udp(50343, query(0x1234, 1))),
        (1000.000089, gre_over_udp(50343, query(0x1235, 28))),
        (1000.054238, gre_over_udp(53571, answer_a)),
        (1000.054277, gre_over_udp(53571, answer_aaaa)),
    ]);
    // Zeek's uids in the order its generator hands them out: the first outer connection, the GRE tunnel, the DNS
    // connection, the second outer connection.
    let uid_of = |port: &str| logs.conn.iter().find(|r| r["id.orig_p"] == port).map(|r| r["uid"].clone());
    let tunnel_uid = logs.tunnel.first().map(|r| r["uid"].clone()).unwrap_or_default();
    let uids: HashMap<String, &str> = [
        (uid_of("50343").unwrap_or_default(), "CHhAvVGS1DHFjwGM9"),
        (tunnel_uid, "ClEkJM2Vm5giqnMf4h"),
        (uid_of("51714").unwrap_or_default(), "C4J4Th3PJpwUYZZ6gc"),
        (uid_of("53571").unwrap_or_default(), "CtPZjS20MLrsMUOJi2"),
    ]
    .into_iter()
    .collect();
    let mut conn = rows(&logs.conn, &CONN_COLUMNS, &uids);
    conn.sort();
    // The baseline's rows (the trace's HTTP connection and its two outer connections left out), with ip_proto.
    assert_eq!(
        conn,
        [
            "172.17.0.2\t51714\t1.1.1.1\t53\tudp\tdns\t0.054277\t52\t171\tSF\tT\tF\t0\tDd\t2\t108\t2\t227\tClEkJM2Vm5giqnMf4h\t17",
            "192.168.0.107\t50343\t192.168.5.1\t4754\tudp\t-\t0.000089\t116\t0\tS0\tT\tT\t0\tD\t2\t172\t0\t0\t-\t17",
            "192.168.0.107\t53571\t192.168.5.1\t4754\tudp\t-\t0.000039\t235\t0\tS0\tT\tT\t0\tD\t2\t291\t0\t0\t-\t17",
        ]
    );
    assert_eq!(
        rows(&logs.tunnel, &TUNNEL_COLUMNS, &uids),
        ["ClEkJM2Vm5giqnMf4h\t192.168.0.107\t0\t192.168.5.1\t0\tTunnel::GRE\tTunnel::DISCOVER"]
    );
    assert!(logs.weird.is_empty(), "{:?}", logs.weird);
}

/// zeek/zeek#5829 (opened 2026-08-25 against a build like the oracle's, which registers no GRE-to-MPLS
/// dispatch; core.tunnels.gre-mpls and its baselines came with the later fix): the issue's two packets, GRE
/// carrying an IP packet and GRE carrying an MPLS label stack before one. The first makes its connection and the
/// tunnel's DISCOVER line; the second is only the weird.log row the issue shows (`unknown_ip_version_in_tunnel`,
/// no uid, no addresses, source IP): its tunnel carries no connection, so tunnel.log has no line for it.
#[test]
fn gre_carrying_mpls_is_not_decapsulated() {
    let gre = |outer: (Ipv4Addr, Ipv4Addr), inner: (Ipv4Addr, Ipv4Addr), ports: (u16, u16), mpls: bool| {
        let packet = ipv4(inner.0, inner.1, PROTO_UDP, &udp(ports.0, ports.1, b"data"));
        let gre = if mpls {
            // GRE version 0, protocol MPLS unicast; one label (100), bottom of stack, TTL 64.
            [&[0, 0, 0x88, 0x47][..], &[0x00, 0x06, 0x41, 0x40], &packet].concat()
        } else {
            [&[0, 0, 0x08, 0x00][..], &packet].concat()
        };
        ethernet(&ipv4(outer.0, outer.1, 47, &gre))
    };
    let host = |c: u8, d: u8| Ipv4Addr::new(192, 168, c, d);
    let outer = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let other_outer = (Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 4));
    let logs = run_node(&[
        (10.0, gre(outer, (host(1, 1), host(1, 2)), (1234, 5678), false)),
        (11.0, gre(other_outer, (host(2, 1), host(2, 2)), (4321, 8765), true)),
    ]);
    let uids: HashMap<String, &str> = logs.tunnel.iter().map(|r| r["uid"].clone()).zip(["CHhAvVGS1DHFjwGM9"]).collect();
    assert_eq!(
        rows(&logs.conn, &CONN_COLUMNS, &uids),
        ["192.168.1.1\t1234\t192.168.1.2\t5678\tudp\t-\t-\t-\t-\tS0\tT\tT\t0\tD\t1\t32\t0\t0\tCHhAvVGS1DHFjwGM9\t17"]
    );
    assert_eq!(
        rows(&logs.tunnel, &TUNNEL_COLUMNS, &uids),
        ["CHhAvVGS1DHFjwGM9\t10.0.0.1\t0\t10.0.0.2\t0\tTunnel::GRE\tTunnel::DISCOVER"]
    );
    let weird: Vec<String> = logs
        .weird
        .iter()
        .map(|r| {
            [
                "ts",
                "uid",
                "id.orig_h",
                "id.orig_p",
                "id.resp_h",
                "id.resp_p",
                "name",
                "addl",
                "notice",
                "peer",
                "source",
            ]
            .map(|f| r[f].as_str())
            .join("\t")
        })
        .collect();
    assert_eq!(weird, ["11.000000\t-\t-\t-\t-\t-\tunknown_ip_version_in_tunnel\t-\tF\tzeek\tIP"]);
}

/// An IPv6 header from `src` to `dst` with `next` header, and `payload`.
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&be16(u16::try_from(payload.len()).expect("test datagram fits")));
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// Zeek's core.tunnels.gre-pptp (gre-pptp.pcap) as its baseline rows imply: IPv4 in IPv6 (Tunnel::IP between
/// 2402:f000:1:8e01::5555 and 2607:fcd0:100:2300::b108:2a6b), inside it PPTP's enhanced GRE (version 1, key and
/// sequence, PPP address/control and protocol 0x0021) between 16.0.0.200 and 192.52.166.154, inside that a DNS
/// query of 71 bytes from 172.16.44.3 to 8.8.8.8 and its answer of 146. The DNS connection's parent is the innermost
/// tunnel (GRE) only; tunnel.log has both tunnels' DISCOVER lines.
#[test]
fn pptp_inside_ip_in_ip_names_the_innermost_tunnel() {
    let (v6_a, v6_b): (Ipv6Addr, Ipv6Addr) =
        ("2402:f000:1:8e01::5555".parse().unwrap(), "2607:fcd0:100:2300::b108:2a6b".parse().unwrap());
    let (pptp_client, pptp_server) = (Ipv4Addr::new(16, 0, 0, 200), Ipv4Addr::new(192, 52, 166, 154));
    let (client, resolver) = (Ipv4Addr::new(172, 16, 44, 3), Ipv4Addr::new(8, 8, 8, 8));
    let pptp = |from_client: bool, inner: Vec<u8>| {
        let mut gre = vec![0x30, 0x01, 0x88, 0x0b];
        gre.extend_from_slice(&be16(u16::try_from(inner.len() + 4).unwrap()));
        gre.extend_from_slice(&[0x40, 0x00, 0, 0, 0, 1, 0xff, 0x03, 0x00, 0x21]);
        gre.extend_from_slice(&inner);
        let (gs, gd, vs, vd) =
            if from_client { (pptp_client, pptp_server, v6_a, v6_b) } else { (pptp_server, pptp_client, v6_b, v6_a) };
        let mut frame = ethernet(&ipv6(vs, vd, 4, &ipv4(gs, gd, 47, &gre)));
        frame[12..14].copy_from_slice(&be16(0x86dd));
        frame
    };
    let qname = [&[53][..], &[b'a'; 53], &[0]].concat();
    let query = dns_for(&qname, 7, 1, None);
    let answer = dns_for(&qname, 7, 1, Some(&[(1, vec![192, 0, 2, 7]), (16, txt(46))]));
    assert_eq!((query.len(), answer.len()), (71, 146));
    let logs = run_node(&[
        (20.0, pptp(true, ipv4(client, resolver, PROTO_UDP, &udp(40768, 53, &query)))),
        (20.213894, pptp(false, ipv4(resolver, client, PROTO_UDP, &udp(53, 40768, &answer)))),
    ]);
    let names = ["CHhAvVGS1DHFjwGM9", "ClEkJM2Vm5giqnMf4h"];
    let uids: HashMap<String, &str> = logs.tunnel.iter().map(|r| r["uid"].clone()).zip(names).collect();
    assert_eq!(
        rows(&logs.conn, &CONN_COLUMNS, &uids),
        [
            "172.16.44.3\t40768\t8.8.8.8\t53\tudp\tdns\t0.213894\t71\t146\tSF\tT\tF\t0\tDd\t1\t99\t1\t174\tClEkJM2Vm5giqnMf4h\t17"
        ]
    );
    assert_eq!(
        rows(&logs.tunnel, &TUNNEL_COLUMNS, &uids),
        [
            "CHhAvVGS1DHFjwGM9\t2402:f000:1:8e01::5555\t0\t2607:fcd0:100:2300::b108:2a6b\t0\tTunnel::IP\tTunnel::DISCOVER",
            "ClEkJM2Vm5giqnMf4h\t16.0.0.200\t0\t192.52.166.154\t0\tTunnel::GRE\tTunnel::DISCOVER",
        ]
    );
}

/// Zeek's core.tunnels.geneve-ipv6 (built as geneve-ipv6.pcap.py builds it): IPv6 directly inside Geneve (protocol
/// type 0x86DD, mapped to IP since zeek/zeek#5538 of 2026-06), a UDP datagram each way between fd00::1:40000 and fd00::2:40001, both in
/// datagrams from 10.0.0.1:12345 to 10.0.0.2:6081. The baseline's conn.log rows.
#[test]
fn geneve_carries_ipv6_by_its_ethertype() {
    let (a, b): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
    let datagram = |from_a: bool, payload: &[u8]| {
        let (src, dst, sport, dport) = if from_a { (a, b, 40000, 40001) } else { (b, a, 40001, 40000) };
        let inner = ipv6(src, dst, PROTO_UDP, &udp(sport, dport, payload));
        let outer = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        ethernet(&ipv4(outer.0, outer.1, PROTO_UDP, &udp(12345, 6081, &geneve(0, 0x86dd, &inner))))
    };
    let logs = run_node(&[(30.0, datagram(true, b"hello")), (30.000394, datagram(false, b"world"))]);
    let outer_uid = logs.conn_to("6081")["uid"].clone();
    let uids: HashMap<String, &str> = [(outer_uid, "CHhAvVGS1DHFjwGM9")].into_iter().collect();
    let mut conn = rows(&logs.conn, &CONN_COLUMNS, &uids);
    conn.sort();
    assert_eq!(
        conn,
        [
            "10.0.0.1\t12345\t10.0.0.2\t6081\tudp\tgeneve\t0.000394\t122\t0\tS0\tT\tT\t0\tD\t2\t178\t0\t0\t-\t17",
            "fd00::1\t40000\tfd00::2\t40001\tudp\t-\t0.000394\t5\t5\tSF\tT\tT\t0\tDd\t1\t53\t1\t53\tCHhAvVGS1DHFjwGM9\t17",
        ]
    );
}

/// Zeek's core.tunnels.geneve-arp (built as geneve-arp.pcap.py builds it): an ARP request inside Geneve (protocol
/// type 0x0806, Zeek's ARP analyzer): the tunnel confirms, no connection inside. The baseline's conn.log row.
#[test]
fn arp_inside_geneve_confirms_the_tunnel_only() {
    let mut arp = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    arp.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 10, 0, 0, 1]);
    arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let logs = run_node(&[(40.0, ethernet(&ipv4(a, b, PROTO_UDP, &udp(12345, 6081, &geneve(0, 0x0806, &arp)))))]);
    assert_eq!(
        rows(&logs.conn, &CONN_COLUMNS, &HashMap::new()),
        ["10.0.0.1\t12345\t10.0.0.2\t6081\tudp\tgeneve\t-\t-\t-\tS0\tT\tT\t0\tD\t1\t64\t0\t0\t-\t17"]
    );
    assert!(logs.tunnel.is_empty() && logs.weird.is_empty(), "{:?} {:?}", logs.tunnel, logs.weird);
}

/// Zeek's core.tunnels.ayiya-large-identity (built as its generator script builds it): an AYIYA identity-length
/// nibble of 8 is a 256-byte identity, after which the inner IPv6 packet starts. The baseline's conn.log rows.
#[test]
fn ayiya_identity_of_256_bytes() {
    let inner = ipv6("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), PROTO_UDP, &udp(40000, 40001, b"zeek"));
    let ayiya = [&[0x81, 0x52, 0x11, 41, 0, 0, 0, 0][..], &[0; 256], &[0; 20], &inner].concat();
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let logs = run_node(&[(50.0, ethernet(&ipv4(a, b, PROTO_UDP, &udp(12345, 5072, &ayiya))))]);
    let outer_uid = logs.conn_to("5072")["uid"].clone();
    let uids: HashMap<String, &str> = [(outer_uid, "CHhAvVGS1DHFjwGM9")].into_iter().collect();
    let mut conn = rows(&logs.conn, &CONN_COLUMNS, &uids);
    conn.sort();
    assert_eq!(
        conn,
        [
            "10.0.0.1\t12345\t10.0.0.2\t5072\tudp\tayiya\t-\t-\t-\tS0\tT\tT\t0\tD\t1\t364\t0\t0\t-\t17",
            "fd00::1\t40000\tfd00::2\t40001\tudp\t-\t-\t-\t-\tS0\tT\tT\t0\tD\t1\t52\t0\t0\tCHhAvVGS1DHFjwGM9\t17",
        ]
    );
}

/// Runs the node over `frames` in full mode with `-C` and returns its log folder.
fn logs_of(frames: &[(f64, Vec<u8>)], dir: &Path) -> std::path::PathBuf {
    let pcap = dir.with_extension("pcap");
    support::write_pcap(&pcap, frames);
    let out = Command::new(support::node_binary())
        .args(["-C", "-r"])
        .arg(&pcap)
        .arg("--logdir")
        .arg(dir)
        .output()
        .expect("run zeek-node");
    assert!(out.status.success(), "zeek-node failed: {}", String::from_utf8_lossy(&out.stderr));
    dir.to_path_buf()
}

/// A sensor fed by a mirror analyses what the mirror copied as it would the same packets on its own link: every
/// log of the oracle traces is the same, but for the uids (the tunnel takes one first) and `tunnel_parents`, which
/// names the mirror's tunnel on every connection. The outer VXLAN connection is logged as `vxlan`; GRE has none.
#[test]
fn a_mirrored_trace_gives_the_logs_of_the_trace_itself() {
    const UIDS: [&str; 6] = ["uid", "fuid", "fuids", "orig_fuids", "resp_fuids", "tunnel_parents"];
    let cases = ["smtp-basic", "tls-extensions", "ftp-ipv4", "http-pipelined", "ssh-basic", "dns-tkey-tcp"];
    let tmp = tempfile::tempdir().expect("temp dir");
    for case in cases {
        let Some(frames) = oracle_frames(case) else {
            eprintln!("skipped: no oracle at ../shared/oracle/dev");
            return;
        };
        let plain = logs_of(&frames, &tmp.path().join(format!("{case}-plain")));
        for mirror in [Mirror::Vxlan, Mirror::Gre] {
            let wrapped: Vec<_> = frames.iter().filter_map(|(ts, f)| Some((*ts, mirrored(mirror, f)?))).collect();
            assert_eq!(wrapped.len(), frames.len(), "{case}: every frame is IP");
            let logs = logs_of(&wrapped, &tmp.path().join(format!("{case}-{mirror:?}")));
            let conn = read_log(&logs.join("conn.log"));
            let (outer, inner): (Vec<_>, Vec<_>) =
                conn.iter().partition(|r| r["id.orig_h"] == MIRROR_SOURCE.to_string());
            // An outer connection idle for UDP's inactivity timeout ends, and the next packet makes another.
            let tunnel_uids: Vec<String> = match mirror {
                Mirror::Vxlan | Mirror::VxlanPortPerDirection => {
                    assert!(!outer.is_empty() && outer.iter().all(|r| r["service"] == "vxlan"), "{case}: {outer:?}");
                    outer.iter().map(|r| r["uid"].clone()).collect()
                }
                Mirror::Gre => {
                    assert!(outer.is_empty(), "{case} {mirror:?}: GRE has no connection");
                    read_log(&logs.join("tunnel.log")).iter().map(|r| r["uid"].clone()).collect()
                }
            };
            assert!(!inner.is_empty());
            for r in &inner {
                let parents: Vec<&str> = r["tunnel_parents"].split(',').collect();
                assert!(parents.iter().all(|p| tunnel_uids.iter().any(|u| u == p)), "{case} {mirror:?}: {r:?}");
            }
            // Nothing beyond the trace's own logs but tunnel.log (no weird about the encapsulation, say).
            let names = |dir: &Path| -> std::collections::BTreeSet<String> {
                let entries = std::fs::read_dir(dir).expect("logs").flatten();
                entries.map(|e| e.file_name().into_string().expect("log name")).collect()
            };
            let mut expected_names = names(&plain);
            expected_names.insert("tunnel.log".into());
            assert_eq!(names(&logs), expected_names, "{case} {mirror:?}: the logs written");
            for entry in std::fs::read_dir(&plain).expect("plain logs").flatten() {
                let name = entry.file_name().into_string().expect("log name");
                let expected = support::masked_records(&entry.path(), &UIDS);
                let mut got = support::masked_records(&logs.join(&name), &UIDS);
                if name == "conn.log" {
                    got.retain(|r| !r.contains(&format!("\t{MIRROR_SOURCE}\t")));
                }
                let diff = support::record_diff("plain", &expected, &format!("{mirror:?}"), &got);
                assert!(diff.is_empty(), "{case} {name}:\n{diff}");
            }
        }
    }
}
