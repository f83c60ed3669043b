//! Connection-level situations from Zeek's own test suite (`testing/btest/Baseline/core.tcp.*`,
//! `scripts.base.protocols.conn.*`, `core.history*`), rebuilt packet by packet from the baselines and run through
//! the whole engine: the conn.log fields must come out as Zeek 9.1 wrote them.

use crate::config::AnalysisConfig;
use crate::decode::LinkType;
use crate::decode::test_frames::{ipv4_tcp, ipv4_udp};
use crate::engine::Engine;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

/// The records of one log of a run, as field name → TSV text.
struct Records(Vec<Vec<(&'static str, String)>>);

impl Records {
    fn field(&self, record: usize, name: &str) -> &str {
        let rec = &self.0[record];
        rec.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no field {name}"))
    }

    /// `fields` of record `record`, tab-joined, for one assertion per record.
    fn fields(&self, record: usize, fields: &[&str]) -> String {
        fields.iter().map(|f| self.field(record, f)).collect::<Vec<_>>().join("\t")
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Runs timed raw IPv4 frames through one engine (checksums ignored, as the frames carry none) and returns
/// conn.log in the order the connections were removed.
fn run(packets: &[(f64, Vec<u8>)]) -> Records {
    run_logs(packets, "conn").remove(0)
}

/// The records of each log in `paths` of one run, in the order of `paths`.
fn run_logs(packets: &[(f64, Vec<u8>)], paths: &str) -> Vec<Records> {
    let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
    for (ts, frame) in packets {
        engine.process_packet(*ts, LinkType::Raw, frame);
    }
    engine.finish();
    let mut logs: Vec<Records> = paths.split(',').map(|_| Records(Vec::new())).collect();
    for r in engine.drain_records() {
        if let Some(i) = paths.split(',').position(|p| p == r.schema.path) {
            logs[i].0.push(r.schema.fields.iter().zip(&r.values).map(|(f, v)| (f.name, v.to_tsv())).collect());
        }
    }
    logs
}

/// A TCP segment from the client (port 40000) to the server's `port`, or back.
fn tcp(from_client: bool, port: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (client, server) = ((CLIENT, 40000), (SERVER, port));
    if from_client {
        ipv4_tcp(client, server, seq, ack, flags, payload)
    } else {
        ipv4_tcp(server, client, seq, ack, flags, payload)
    }
}

/// One packet every 10 ms from t=1.
fn timed(frames: Vec<Vec<u8>>) -> Vec<(f64, Vec<u8>)> {
    frames.into_iter().enumerate().map(|(i, f)| (1.0 + i as f64 * 0.01, f)).collect()
}

/// The client's ISN is 1000 and the server's 5000 in every handshake below.
const C: u32 = 1000;
const S: u32 = 5000;

/// scripts.base.protocols.conn.conn_state-RST-behavior: `R, OTH`; `SR, RSTOS0`; `SaR, RSTOS0`; `SaFR, OTH`.
#[test]
fn rst_behaviour_matches_zeek() {
    let single_rst = vec![tcp(true, 5555, C, 0, RST, b"")];
    let syn_rst = vec![tcp(true, 5555, C, 0, SYN, b""), tcp(true, 5555, C + 1, 0, RST, b"")];
    let syn_ack_rst = vec![
        tcp(true, 5555, C, 0, SYN, b""),
        tcp(false, 5555, S, C + 1, ACK, b""),
        tcp(true, 5555, C + 1, 0, RST, b""),
    ];
    let syn_stuff_rst = vec![
        tcp(true, 5555, C, 0, SYN, b""),
        tcp(false, 5555, S, C + 1, ACK, b""),
        tcp(true, 5555, C + 1, S, FIN | ACK, b""),
        tcp(true, 5555, C + 2, 0, RST, b""),
    ];
    for (frames, expected) in
        [(single_rst, "R\tOTH"), (syn_rst, "SR\tRSTOS0"), (syn_ack_rst, "SaR\tRSTOS0"), (syn_stuff_rst, "SaFR\tOTH")]
    {
        let log = run(&timed(frames));
        assert_eq!(log.len(), 1);
        assert_eq!(log.fields(0, &["history", "conn_state"]), expected);
    }
}

/// A handshake to `port`, then `messages` (from the client?, payload) each in its own segment. Returns the frames
/// and the next sequence numbers of client and server.
fn established(port: u16, messages: &[(bool, &[u8])]) -> (Vec<Vec<u8>>, u32, u32) {
    let (mut c, mut s) = (C + 1, S + 1);
    let mut frames =
        vec![tcp(true, port, C, 0, SYN, b""), tcp(false, port, S, c, SYN | ACK, b""), tcp(true, port, c, s, ACK, b"")];
    for (from_client, payload) in messages {
        let len = payload.len() as u32;
        if *from_client {
            frames.push(tcp(true, port, c, s, ACK | PSH, payload));
            c += len;
        } else {
            frames.push(tcp(false, port, s, c, ACK | PSH, payload));
            s += len;
        }
    }
    (frames, c, s)
}

/// core.tcp.fin-rst-timeout: both sides FIN, then both RST (`ShADadtFRfr`) is a clean close, `SF`, removed
/// `tcp_close_delay` after the FINs (not after the inactivity timeout).
#[test]
fn fins_then_resets_are_sf() {
    let (mut frames, c, s) = established(5432, &[(true, b"query")]);
    frames.push(tcp(false, 5432, S + 1, c, ACK, b""));
    frames.push(tcp(false, 5432, S + 1, c, ACK | PSH, b"reply!"));
    let s = s + 6;
    frames.push(tcp(false, 5432, s - 6, c, ACK | PSH, b"reply!")); // t
    frames.push(tcp(true, 5432, c, s, FIN | ACK, b""));
    frames.push(tcp(true, 5432, c + 1, 0, RST, b""));
    frames.push(tcp(false, 5432, s, c + 1, FIN | ACK, b""));
    frames.push(tcp(false, 5432, s + 1, 0, RST, b""));
    let mut packets = timed(frames);
    let last = packets.last().expect("frames").0;
    // Another connection keeps time going past the close delay: the closed one must be gone by then.
    packets.push((last + 5.5, ipv4_udp(([10, 9, 9, 9], 1234), ([10, 9, 9, 8], 4321), b"x")));
    let log = run(&packets);
    assert_eq!(log.len(), 2);
    assert_eq!(
        log.fields(0, &["history", "conn_state", "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "duration"]),
        "ShADadtFRfr\tSF\t5\t6\t5\t6\t0.090000"
    );
    assert_eq!(log.field(1, "proto"), "udp", "the TCP connection was removed before the last packet");
}

/// core.tcp.miss-end-data: the server's data is never seen, its FIN is, and the client's ack of it reveals the
/// gap: `ShADafgF`, `missed_bytes` 2902, `resp_bytes` 2902.
#[test]
fn gap_acked_before_the_fin_counts() {
    let (mut frames, c, _) = established(80, &[(true, &[b'x'; 538])]);
    frames.push(tcp(false, 80, S + 1, c, ACK, b""));
    frames.push(tcp(false, 80, S + 1 + 2902, c, FIN | ACK, b""));
    frames.push(tcp(true, 80, c, S + 2904, ACK, b""));
    frames.push(tcp(true, 80, c, S + 2904, FIN | ACK, b""));
    frames.push(tcp(false, 80, S + 2904, c + 1, ACK, b""));
    let log = run(&timed(frames));
    assert_eq!(
        log.fields(0, &["history", "conn_state", "orig_bytes", "resp_bytes", "missed_bytes"]),
        "ShADafgF\tSF\t538\t2902\t2902"
    );
}

/// The same gap revealed by the client's FIN-ACK: Zeek flags it (the closing side was established, so the
/// connection is still "cleanly closing"), after the `F` of the same packet.
#[test]
fn gap_acked_by_a_fin_counts_after_the_fin() {
    let (mut frames, c, _) = established(80, &[(true, b"GET")]);
    frames.push(tcp(false, 80, S + 1 + 100, c, FIN | ACK, b""));
    frames.push(tcp(true, 80, c, S + 102, FIN | ACK, b""));
    let log = run(&timed(frames));
    assert_eq!(log.fields(0, &["history", "missed_bytes"]), "ShADfFg\t100");
}

/// A gap revealed by a RST's ack is not reliable: neither history nor `missed_bytes` has it.
#[test]
fn gap_acked_by_a_reset_is_not_counted() {
    let (mut frames, c, _) = established(80, &[(true, b"GET")]);
    frames.push(tcp(true, 80, c, S + 101, RST | ACK, b""));
    let log = run(&timed(frames));
    assert_eq!(log.fields(0, &["history", "conn_state", "missed_bytes"]), "ShADR\tRSTO\t0");
}

/// A partial connection (no handshake seen) is not "cleanly established": its gaps are neither in the history
/// nor in `missed_bytes` (Zeek's `report_gaps_for_partial` is off).
#[test]
fn partial_connection_gaps_are_not_counted() {
    let frames = vec![
        tcp(true, 5555, C, S, ACK | PSH, b"hello"),
        tcp(false, 5555, S + 50, C + 5, ACK | PSH, b"later"),
        tcp(true, 5555, C + 5, S + 55, ACK, b""),
    ];
    let log = run(&timed(frames));
    assert_eq!(log.fields(0, &["history", "conn_state", "missed_bytes"]), "DdA\tOTH\t0");
}

/// Zeek's `WantConnection`: a first packet without SYN between two likely server ports flips only when the source
/// port is the lower one; a SYN-ACK between them never flips (stealth scans).
#[test]
fn both_likely_ports_flip_by_port_order() {
    let from_22_to_80 = ipv4_tcp((SERVER, 22), (CLIENT, 80), 7000, 8000, ACK | PSH, b"data");
    let log = run(&timed(vec![from_22_to_80]));
    assert_eq!(log.fields(0, &["id.orig_p", "id.resp_p", "history"]), "80\t22\t^d");
    let from_80_to_22 = ipv4_tcp((SERVER, 80), (CLIENT, 22), 7000, 8000, ACK | PSH, b"data");
    let log = run(&timed(vec![from_80_to_22]));
    assert_eq!(log.fields(0, &["id.orig_p", "id.resp_p", "history"]), "80\t22\tD");
    let syn_ack_22_to_80 = ipv4_tcp((SERVER, 22), (CLIENT, 80), 7000, 8000, SYN | ACK, b"");
    let log = run(&timed(vec![syn_ack_22_to_80]));
    assert_eq!(log.fields(0, &["id.orig_p", "id.resp_p", "history"]), "22\t80\tH");
}

/// Zeek never makes a broadcast address the originator when guessing roles from ports.
#[test]
fn no_flip_towards_a_broadcast_address() {
    let reply_to_broadcast = ipv4_udp((SERVER, 53), ([255, 255, 255, 255], 40000), b"x");
    let log = run(&timed(vec![reply_to_broadcast]));
    assert_eq!(log.fields(0, &["id.orig_h", "id.orig_p", "id.resp_h", "history"]), "10.0.0.2\t53\t255.255.255.255\tD");
    let reply_to_host = ipv4_udp((SERVER, 53), (CLIENT, 40000), b"x");
    let log = run(&timed(vec![reply_to_host]));
    assert_eq!(log.fields(0, &["id.orig_h", "id.orig_p", "history"]), "10.0.0.1\t40000\t^d");
}

/// Zeek runs due timers before each packet: a packet just after a connection's inactivity deadline starts a
/// new connection even when other traffic moved time along less than a second before.
#[test]
fn expiry_is_exact_to_the_packet() {
    let flow = |payload: &[u8]| ipv4_udp((CLIENT, 40000), (SERVER, 7777), payload);
    let other = ipv4_udp(([10, 9, 9, 9], 1234), ([10, 9, 9, 8], 4321), b"x");
    let packets = vec![(1.0, flow(b"a")), (60.9, other.clone()), (61.2, flow(b"b"))];
    let log = run(&packets);
    let flows: Vec<usize> = (0..log.len()).filter(|&i| log.field(i, "id.resp_p") == "7777").collect();
    assert_eq!(flows.len(), 2, "udp_inactivity_timeout (60 s) ended the first connection at t=61");
    // A SYN retransmitted right after the 5 s attempt timer starts a new attempt.
    let syn = tcp(true, 5555, C, 0, SYN, b"");
    let packets = vec![(1.0, syn.clone()), (5.9, other), (6.1, syn)];
    let log = run(&packets);
    let attempts: Vec<usize> = (0..log.len()).filter(|&i| log.field(i, "id.resp_p") == "5555").collect();
    assert_eq!(attempts.len(), 2);
    assert_eq!(log.fields(attempts[0], &["history", "conn_state", "orig_pkts"]), "S\tS0\t1");
}

/// Zero windows are scaled history letters (`W` at 1, 10, 100, ...), not counted after a RST or once the peer
/// closed.
#[test]
fn zero_windows_are_scaled_letters() {
    let (mut frames, c, s) = established(5555, &[(true, b"x")]);
    let zero = |frame: Vec<u8>| {
        let mut frame = frame;
        frame[34] = 0;
        frame[35] = 0;
        frame
    };
    for _ in 0..10 {
        frames.push(zero(tcp(false, 5555, s, c, ACK, b"")));
    }
    frames.push(tcp(true, 5555, c, s, FIN | ACK, b""));
    // After the client's FIN the server's zero window is boring.
    frames.push(zero(tcp(false, 5555, s, c + 1, ACK, b"")));
    let log = run(&timed(frames));
    assert_eq!(log.fields(0, &["history", "conn_state"]), "ShADawwF\tS2");
}

/// core.tcp.flip-without-syn: a SYN-ACK from port 80 to 6669 (both likely server ports, so not flipped at once),
/// then the client's ack: Zeek flips on that second packet, as though at the first (`^hADadFf`, `SF`), and counts
/// each packet on the side that sent it.
#[test]
fn syn_ack_then_ack_flips_on_the_second_packet() {
    let (client, server) = ((CLIENT, 6669), (SERVER, 80));
    let frames = vec![
        ipv4_tcp(server, client, S, C + 1, SYN | ACK, b""),
        ipv4_tcp(client, server, C + 1, S + 1, ACK, b""),
        ipv4_tcp(client, server, C + 1, S + 1, ACK | PSH, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ipv4_tcp(server, client, S + 1, C + 28, ACK, b""),
        ipv4_tcp(server, client, S + 1, C + 28, ACK | PSH, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        ipv4_tcp(client, server, C + 28, S + 41, FIN | ACK, b""),
        ipv4_tcp(server, client, S + 41, C + 29, FIN | ACK, b""),
        ipv4_tcp(client, server, C + 29, S + 42, ACK, b""),
    ];
    let log = run(&timed(frames));
    assert_eq!(
        log.fields(0, &["id.orig_p", "id.resp_p", "history", "conn_state", "orig_pkts", "resp_pkts", "service"]),
        "6669\t80\t^hADadFf\tSF\t4\t4\thttp"
    );
    // A lone SYN-ACK followed by a RST (a stealth scan's answer) keeps its roles.
    let scan = vec![ipv4_tcp(server, client, S, C + 1, SYN | ACK, b""), ipv4_tcp(client, server, C + 1, 0, RST, b"")];
    let log = run(&timed(scan));
    assert_eq!(log.fields(0, &["id.orig_p", "history"]), "80\tHr");
}

/// A raw IPv4 ICMP message (checksums zero, as the engine is told to ignore them).
fn ipv4_icmp(src: [u8; 4], dst: [u8; 4], icmp_type: u8, code: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(28 + payload.len()).expect("a test message fits one datagram");
    let mut frame = vec![0x45, 0];
    frame.extend(total.to_be_bytes());
    frame.extend([0, 1, 0x40, 0, 64, 1, 0, 0]);
    frame.extend(src);
    frame.extend(dst);
    frame.extend([icmp_type, code, 0, 0, 0x12, 0x34, 0, 1]);
    frame.extend(payload);
    frame
}

/// core.icmp: type and code (or the counterpart type of a request/reply pair) are the ports; ICMP connections are
/// `OTH`; the bytes are the messages' data after the 8-byte header. Messages without a counterpart (errors) are
/// one-way, Zeek's `is_one_way`: the same unreachable the other way round is another connection.
#[test]
fn icmp_connections_are_keyed_as_zeek_keys_them() {
    let packets = vec![
        (1.0, ipv4_icmp(CLIENT, SERVER, 8, 0, &[0; 56])),
        (1.1, ipv4_icmp(SERVER, CLIENT, 0, 0, &[0; 56])),
        (2.0, ipv4_icmp(SERVER, CLIENT, 3, 3, &[0; 28])),
        (2.1, ipv4_icmp(CLIENT, SERVER, 3, 3, &[0; 28])),
        (2.2, ipv4_icmp(SERVER, CLIENT, 3, 3, &[0; 28])),
    ];
    let log = run(&packets);
    let fields = [
        "id.orig_h",
        "id.orig_p",
        "id.resp_h",
        "id.resp_p",
        "conn_state",
        "orig_bytes",
        "resp_bytes",
        "orig_pkts",
        "resp_pkts",
    ];
    let mut lines: Vec<String> = (0..log.len()).map(|i| log.fields(i, &fields)).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "10.0.0.1\t3\t10.0.0.2\t3\tOTH\t-\t-\t1\t0",
            "10.0.0.1\t8\t10.0.0.2\t0\tOTH\t56\t56\t1\t1",
            "10.0.0.2\t3\t10.0.0.1\t3\tOTH\t56\t0\t2\t0",
        ]
    );
}

/// An IPv4 datagram of protocol `proto` carrying `payload` (no transport header our engine knows).
fn ipv4_other(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("a small datagram");
    let mut d = vec![0x45, 0];
    d.extend(total.to_be_bytes());
    d.extend([0, 1, 0, 0, 1, proto, 0, 0]);
    d.extend(src);
    d.extend(dst);
    d.extend_from_slice(payload);
    d
}

/// Zeek 7.1+ tracks datagrams of other IP protocols as connections (UnknownIPTransport): proto
/// `unknown_transport`, ports 0, `OTH`, no history, packets and IP bytes counted, `ip_proto` the protocol (as a Zeek
/// 9 conn.log shows an IGMP membership report). ESP and a Mobility header end Zeek's IP analysis without one.
#[test]
fn other_ip_protocols_are_connections_of_unknown_transport() {
    const IGMP: u8 = 2;
    const ESP: u8 = 50;
    let host = [147, 32, 84, 165];
    let report = |ts: f64| (ts, ipv4_other(host, [224, 0, 0, 22], IGMP, &[0x22, 0, 0xf9, 0x02, 0, 0, 0, 1]));
    let mut packets: Vec<(f64, Vec<u8>)> = [1.0, 1.2, 1.5, 1.835910].into_iter().map(report).collect();
    packets.push((2.0, ipv4_other(host, [10, 9, 9, 9], ESP, &[0; 24])));
    let log = run(&packets);
    assert_eq!(log.len(), 1, "the IGMP connection only");
    let fields = ["id.orig_p", "id.resp_p", "proto", "service", "duration", "orig_bytes", "resp_bytes", "conn_state"];
    assert_eq!(log.fields(0, &fields), "0\t0\tunknown_transport\t-\t0.835910\t0\t0\tOTH");
    let rest = ["local_resp", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "ip_proto"];
    assert_eq!(log.fields(0, &rest), "T\t-\t4\t112\t0\t2");
}

/// An HTTP exchange whose reply has a 100-byte hole after its header, then `after_hole` bytes of body in segments of
/// 1000, the client acking only what `client_acks` says (`None`: nothing of the reply; `Some(n)`: the first `n`
/// bytes, once, after the header).
fn reply_with_a_hole(after_hole: u32, client_acks: Option<u32>) -> Vec<(f64, Vec<u8>)> {
    let request: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 100 + after_hole);
    let (mut frames, c, mut s) = established(80, &[(true, request), (false, header.as_bytes())]);
    if let Some(n) = client_acks {
        frames.push(tcp(true, 80, c, S + 1 + n, ACK, b""));
    }
    s += 100;
    for _ in 0..after_hole / 1000 {
        frames.push(tcp(false, 80, s, c, ACK, &[b'x'; 1000]));
        s += 1000;
    }
    timed(frames)
}

/// Zeek's `tcp_max_above_hole_without_any_acks` (16 KiB, `TCP_Reassembler::DataSent`): a side none of whose data
/// was acked, holding more than that above a hole, gives up: the TCP analyzer's weird, nothing more delivered (the
/// HTTP body stops at the hole) and no content gap reported for it.
#[test]
fn data_above_a_hole_without_any_acks_is_given_up() {
    let [conn, weird, http] = <[Records; 3]>::try_from(run_logs(&reply_with_a_hole(17_000, None), "conn,weird,http"))
        .unwrap_or_else(|_| unreachable!());
    assert_eq!(weird.len(), 1);
    assert_eq!(weird.fields(0, &["name", "addl", "source"]), "above_hole_data_without_any_acks\t-\tTCP");
    assert_eq!(conn.fields(0, &["missed_bytes", "history"]), "0\tShADd");
    assert_eq!(http.fields(0, &["status_code", "response_body_len"]), "200\t0");

    // 16 KiB above the hole is still held: the body is delivered after a content gap at the end.
    let [conn, weird] = <[Records; 2]>::try_from(run_logs(&reply_with_a_hole(16_000, None), "conn,weird"))
        .unwrap_or_else(|_| unreachable!());
    assert_eq!(weird.len(), 0);
    assert_eq!(conn.field(0, "missed_bytes"), "0");

    // The engine counts the direction it gave up on (a worker's `zeek_tcp_streams_given_up_total`).
    let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
    for (ts, frame) in reply_with_a_hole(17_000, None) {
        engine.process_packet(ts, LinkType::Raw, &frame);
    }
    assert_eq!(engine.stats().tcp_streams_given_up, 1);

    // Once any of the side's data was acked, the hole rule no longer applies.
    let [weird] = <[Records; 1]>::try_from(run_logs(&reply_with_a_hole(17_000, Some(10)), "weird"))
        .unwrap_or_else(|_| unreachable!());
    assert_eq!(weird.len(), 0);
}

/// Zeek's `tcp_excessive_data_without_further_acks` (10 MiB): a side that had data acked, then sends more than that
/// with no further ack, gives up. A side never acked at all keeps nothing it delivered past its first 16 KiB
/// (`tcp_max_initial_window`), so a one-sided transfer of any size goes on.
#[test]
fn ten_mib_without_further_acks_is_given_up() {
    let [weird] = <[Records; 1]>::try_from(run_logs(&reply_with_a_hole((10 << 20) + 1000, Some(10)), "weird"))
        .unwrap_or_else(|_| unreachable!());
    assert_eq!(weird.len(), 1);
    assert_eq!(weird.fields(0, &["name", "source"]), "excessive_data_without_further_acks\tTCP");

    let request: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let size = 12 << 20;
    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
    let (mut frames, c, mut s) = established(80, &[(true, request), (false, header.as_bytes())]);
    for _ in 0..size / 1000 {
        frames.push(tcp(false, 80, s, c, ACK, &[b'x'; 1000]));
        s += 1000;
    }
    let [weird, http] =
        <[Records; 2]>::try_from(run_logs(&timed(frames), "weird,http")).unwrap_or_else(|_| unreachable!());
    assert_eq!(weird.len(), 0, "a one-sided transfer holds nothing it delivered");
    assert_eq!(http.field(0, "response_body_len"), (size / 1000 * 1000).to_string());
}
