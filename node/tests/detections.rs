//! The cluster-aware detections (src/detect, docs/ANALYSES.md) end to end, standalone: each test writes a small
//! trace that triggers one detection, runs `zeek-node -r` with `--detect`, and checks the notices (names, counts,
//! messages) and logs it produced.

mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::nodes::{Nodes, log_files, wait_for};
use support::{node_binary, oracle_root};
use zeek_node::cluster::Role;

// ---------------------------------------------------------------------------------------------------
// A tiny pcap writer: Ethernet / IPv4 / TCP or UDP with valid checksums.
// ---------------------------------------------------------------------------------------------------

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

#[derive(Default)]
struct Pcap {
    packets: Vec<(f64, Vec<u8>)>,
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

type Endpoint = (Ipv4Addr, u16);

/// A DNS message with one question: a recursive query, or its empty answer.
fn dns_message(id: u16, name: &str, qtype: u16, reply: bool) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(id.to_be_bytes());
    m.extend(if reply { [0x81, 0x80] } else { [0x01, 0x00] });
    m.extend([0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend(label.as_bytes());
    }
    m.push(0);
    m.extend(qtype.to_be_bytes());
    m.extend([0, 1]);
    m
}

fn ep(addr: &str, port: u16) -> Endpoint {
    (addr.parse().expect("test address"), port)
}

impl Pcap {
    fn ipv4(&mut self, ts: f64, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, transport: &[u8]) {
        let total = 20 + transport.len();
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, proto, 0, 0];
        ip.extend(src.octets());
        ip.extend(dst.octets());
        let sum = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend(ip);
        frame.extend_from_slice(transport);
        self.packets.push((ts, frame));
    }

    fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
        let mut p = Vec::with_capacity(12);
        p.extend(src.octets());
        p.extend(dst.octets());
        p.extend([0, proto]);
        p.extend((len as u16).to_be_bytes());
        p
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(&mut self, ts: f64, from: Endpoint, to: Endpoint, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
        let mut seg = Vec::with_capacity(20 + payload.len());
        seg.extend(from.1.to_be_bytes());
        seg.extend(to.1.to_be_bytes());
        seg.extend(seq.to_be_bytes());
        seg.extend(ack.to_be_bytes());
        seg.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        seg.extend_from_slice(payload);
        let sum = checksum(&[&Self::pseudo_header(from.0, to.0, 6, seg.len()), &seg]);
        seg[16..18].copy_from_slice(&sum.to_be_bytes());
        self.ipv4(ts, from.0, to.0, 6, &seg);
    }

    fn udp(&mut self, ts: f64, from: Endpoint, to: Endpoint, payload: &[u8]) {
        let len = 8 + payload.len();
        let mut dgram = Vec::with_capacity(len);
        dgram.extend(from.1.to_be_bytes());
        dgram.extend(to.1.to_be_bytes());
        dgram.extend((len as u16).to_be_bytes());
        dgram.extend([0, 0]);
        dgram.extend_from_slice(payload);
        let sum = checksum(&[&Self::pseudo_header(from.0, to.0, 17, len), &dgram]);
        dgram[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
        self.ipv4(ts, from.0, to.0, 17, &dgram);
    }

    /// A SYN answered by a RST (conn_state REJ).
    fn rejected(&mut self, ts: f64, client: Endpoint, server: Endpoint) {
        self.tcp(ts, client, server, 1000, 0, SYN, b"");
        self.tcp(ts + 0.001, server, client, 0, 1001, RST | ACK, b"");
    }

    /// A whole TCP connection: handshake, the given turns (`true` = client speaks), and a FIN exchange.
    /// Returns the time of its last packet.
    fn conversation(&mut self, ts: f64, client: Endpoint, server: Endpoint, turns: &[(bool, &[u8])]) -> f64 {
        let (mut cseq, mut sseq) = (1000u32, 5000u32);
        let mut t = ts;
        let mut step = || {
            t += 0.01;
            t
        };
        self.tcp(step(), client, server, cseq, 0, SYN, b"");
        self.tcp(step(), server, client, sseq, cseq + 1, SYN | ACK, b"");
        cseq += 1;
        sseq += 1;
        self.tcp(step(), client, server, cseq, sseq, ACK, b"");
        for (from_client, data) in turns {
            if *from_client {
                self.tcp(step(), client, server, cseq, sseq, PSH | ACK, data);
                cseq += data.len() as u32;
                self.tcp(step(), server, client, sseq, cseq, ACK, b"");
            } else {
                self.tcp(step(), server, client, sseq, cseq, PSH | ACK, data);
                sseq += data.len() as u32;
                self.tcp(step(), client, server, cseq, sseq, ACK, b"");
            }
        }
        self.tcp(step(), client, server, cseq, sseq, FIN | ACK, b"");
        self.tcp(step(), server, client, sseq, cseq + 1, FIN | ACK, b"");
        self.tcp(step(), client, server, cseq + 1, sseq + 1, ACK, b"");
        step()
    }

    fn http_get(&mut self, ts: f64, client: Endpoint, server: Endpoint, host: &str, uri: &str, ua: &str) -> f64 {
        let req = format!("GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\r\n");
        let resp = b"HTTP/1.1 200 OK\r\nServer: nginx/1.18.0\r\nContent-Length: 2\r\n\r\nok";
        self.conversation(ts, client, server, &[(true, req.as_bytes()), (false, resp)])
    }

    fn dns_query(&mut self, ts: f64, client: Endpoint, server: Endpoint, id: u16, name: &str, qtype: u16) {
        self.udp(ts, client, server, &dns_message(id, name, qtype, false));
    }

    /// The server's answer to a query (no records, NOERROR).
    fn dns_reply(&mut self, ts: f64, client: Endpoint, server: Endpoint, id: u16, name: &str, qtype: u16) {
        self.udp(ts, server, client, &dns_message(id, name, qtype, true));
    }

    /// The savefile header (little-endian pcap, microseconds, Ethernet).
    fn header() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(0xa1b2_c3d4u32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0u8; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out
    }

    /// The packet records in time order, without the header (a later part of a trace written in pieces).
    fn records(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut packets: Vec<&(f64, Vec<u8>)> = self.packets.iter().collect();
        packets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (ts, frame) in packets {
            let secs = ts.floor();
            out.extend((secs as u32).to_le_bytes());
            out.extend((((ts - secs) * 1e6).round() as u32).min(999_999).to_le_bytes());
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend(frame);
        }
        out
    }

    fn write(&self, path: &Path) {
        let mut out = Self::header();
        out.extend(self.records());
        std::fs::write(path, out).expect("write pcap");
    }

    /// A classic little-endian pcap file (an oracle trace) as packets.
    fn read(path: &Path) -> Pcap {
        let bytes = std::fs::read(path).expect("read trace");
        assert_eq!(bytes.get(..4), Some(&[0xd4, 0xc3, 0xb2, 0xa1][..]), "a little-endian microsecond pcap");
        let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"));
        let (mut packets, mut at) = (Vec::new(), 24);
        while at + 16 <= bytes.len() {
            let ts = f64::from(le32(at)) + f64::from(le32(at + 4)) / 1e6;
            let len = le32(at + 8) as usize;
            packets.push((ts, bytes[at + 16..at + 16 + len].to_vec()));
            at += 16 + len;
        }
        Pcap { packets }
    }

    /// The same packets `secs` later.
    fn shifted(&self, secs: f64) -> Pcap {
        Pcap { packets: self.packets.iter().map(|(ts, frame)| (ts + secs, frame.clone())).collect() }
    }

    /// One trace made of `parts` in order (their times must not overlap).
    fn concat<'a>(parts: impl IntoIterator<Item = &'a Pcap>) -> Pcap {
        Pcap { packets: parts.into_iter().flat_map(|p| p.packets.iter().cloned()).collect() }
    }
}

// ---------------------------------------------------------------------------------------------------
// Running the node and reading its logs
// ---------------------------------------------------------------------------------------------------

/// A trace start time (2026-01-01) so that every test reads like real traffic.
const T0: f64 = 1_767_225_600.0;

struct Run {
    dir: tempfile::TempDir,
    stderr: String,
}

impl Run {
    fn log(&self, name: &str) -> Vec<HashMap<String, String>> {
        read_log(&self.dir.path().join(format!("{name}.log")))
    }

    fn notices(&self, note: &str) -> Vec<HashMap<String, String>> {
        self.log("notice").into_iter().filter(|r| r["note"] == note).collect()
    }

    /// A counter the detections printed at the end (`counter=NAME value=N`).
    fn counter(&self, name: &str) -> u64 {
        self.stderr
            .lines()
            .filter(|l| l.contains(&format!("counter=\"{name}\"")) || l.contains(&format!("counter={name} ")))
            .find_map(|l| l.split("value=").nth(1)?.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

fn read_log(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<String> =
        text.lines().find_map(|l| l.strip_prefix("#fields\t")).unwrap_or("").split('\t').map(str::to_string).collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| fields.iter().cloned().zip(l.split('\t').map(str::to_string)).collect())
        .collect()
}

fn run(trace: &Pcap, args: &[&str], files: &[(&str, &str)]) -> Run {
    run_command(trace, args, files)
}

/// Runs `zeek-node ARGS -r TRACE --logdir DIR` with the named input files written next to the trace.
fn run_command(trace: &Pcap, args: &[&str], files: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("trace.pcap");
    trace.write(&pcap);
    let mut extra: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    for (name, text) in files {
        let p: PathBuf = dir.path().join(name);
        std::fs::write(&p, text).expect("write input file");
        for a in &mut extra {
            if a == name {
                *a = p.display().to_string();
            }
        }
    }
    let out = Command::new(node_binary())
        .args(&extra)
        .arg("-r")
        .arg(&pcap)
        .arg("--logdir")
        .arg(dir.path())
        .env("ZEEK_NODE_LOG", "info")
        .output()
        .expect("run zeek-node");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "zeek-node failed: {stderr}");
    Run { dir, stderr }
}

/// The same run in a cluster of 3 workers, 2 proxies and 2 loggers (`zeek-node cluster -r`, the trace split by
/// the symmetric hash); the merged logs land in the run's directory.
fn run_cluster(trace: &Pcap, args: &[&str], files: &[(&str, &str)]) -> Run {
    let mut cluster_args = vec!["cluster", "--insecure", "--workers", "3", "--proxies", "2", "--loggers", "2"];
    cluster_args.extend_from_slice(args);
    run_command(trace, &cluster_args, files)
}

/// The detection logs of a run, `ts`, uids and the worker's name masked (they differ between runs of one trace),
/// and the duration in scan messages cut off (it depends on which attempts arrive first).
fn detection_records(r: &Run) -> Vec<String> {
    let masked = ["ts", "uid", "id.orig_p", "seen.node", "fuid", "conn_uids"];
    let mut all = Vec::new();
    for log in ["notice", "intel", "software", "known_hosts", "known_services", "known_certs", "dns_qtype_stats"] {
        let path = r.dir.path().join(format!("{log}.log"));
        for rec in support::masked_records(&path, &masked) {
            let rec = match rec.split_once(" in ") {
                Some((head, tail)) if rec.contains("Scan::") => {
                    format!("{head}{}", tail.split_once('\t').map(|(_, t)| format!("\t{t}")).unwrap_or_default())
                }
                _ => rec,
            };
            // SMTP::URL_Clicked names the mail's uid in `sub`.
            let rec: Vec<&str> = rec.split('\t').map(|f| if f.starts_with("mail C") { "mail *" } else { f }).collect();
            all.push(format!("{log}: {}", rec.join("\t")));
        }
    }
    all.sort();
    all
}

/// Runs a case standalone and in a cluster and checks both give the same detection logs.
fn same_in_a_cluster(trace: &Pcap, args: &[&str], files: &[(&str, &str)]) -> (Run, Run) {
    let alone = run(trace, args, files);
    let clustered = run_cluster(trace, args, files);
    let (a, b) = (detection_records(&alone), detection_records(&clustered));
    assert!(!a.is_empty(), "the case detects nothing standalone");
    if a != b {
        // What each node said (a barrier given up, a link dropped) decides why; the folder goes with the test.
        let mut nodes = String::new();
        let stderr_files = std::fs::read_dir(clustered.dir.path().join("cluster")).into_iter().flatten().flatten();
        for f in stderr_files.map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "stderr")) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
            nodes.push_str(&format!("\n{}: {}", f.display(), warnings.join("\n  ")));
        }
        panic!(
            "standalone vs cluster ({args:?}):\n{a:#?}\n{b:#?}\ncluster: {}\nnodes' warnings:{nodes}",
            clustered.stderr
        );
    }
    (alone, clustered)
}

// ---------------------------------------------------------------------------------------------------
// The detections
// ---------------------------------------------------------------------------------------------------

fn dos_trace() -> Pcap {
    let mut p = Pcap::default();
    let (attacker, victim) = ("198.51.100.7", "10.0.0.5");
    for i in 0..120u16 {
        let t = T0 + f64::from(i) * 0.1;
        p.udp(t, ep(attacker, 20000 + i), ep(victim, 3389), b"flood");
        p.udp(t + 0.01, ep(victim, 3389), ep(attacker, 20000 + i), b"re");
    }
    // A quiet pair stays below every threshold; traffic to another port is not watched.
    for i in 0..10u16 {
        p.udp(T0 + f64::from(i), ep("198.51.100.8", 30000 + i), ep(victim, 3389), b"x");
        p.udp(T0 + f64::from(i), ep(attacker, 40000 + i), ep(victim, 3390), b"x");
    }
    p
}

#[test]
fn dos_pairs_raise_threshold_and_victim_notices() {
    let (attacker, victim) = ("198.51.100.7", "10.0.0.5");
    let p = dos_trace();
    let r = run(&p, &["--detect", "dos"], &[]);
    let thresholds = r.notices("DoS::Threshold");
    assert_eq!(thresholds.len(), 1, "{thresholds:?}");
    assert_eq!(thresholds[0]["msg"], "198.51.100.7 sent 100 connections to 10.0.0.5 on 3389/udp");
    assert_eq!(thresholds[0]["n"], "100");
    assert_eq!((thresholds[0]["src"].as_str(), thresholds[0]["dst"].as_str()), (attacker, victim));
    assert_eq!((thresholds[0]["p"].as_str(), thresholds[0]["proto"].as_str()), ("3389", "udp"));
    let victims = r.notices("DoS::Victim");
    assert_eq!(victims.len(), 1, "suppressed for an hour after the first: {victims:?}");
    assert_eq!(victims[0]["suppress_for"], "3600.000000");
}

#[test]
fn dos_thresholds_and_service_come_from_the_config_file() {
    let mut p = Pcap::default();
    for i in 0..12u16 {
        let client = ep("203.0.113.9", 1024 + i);
        p.conversation(T0 + f64::from(i), client, ep("10.0.0.80", 80), &[(true, b"x")]);
    }
    let cfg = "dos:\n  service: 80/tcp\n  thresholds: [5, 10, 50]\n";
    let r = run(&p, &["--detect", "dos", "--detect-config", "dos.yaml"], &[("dos.yaml", cfg)]);
    let mut counts: Vec<String> = r.notices("DoS::Threshold").iter().map(|n| n["n"].clone()).collect();
    counts.sort();
    assert_eq!(counts, ["10", "5"]);
}

fn scan_trace() -> Pcap {
    let mut p = Pcap::default();
    for i in 0..30u8 {
        p.rejected(T0 + f64::from(i), ep("45.33.32.66", 40000 + u16::from(i)), ep(&format!("10.1.0.{}", i + 1), 22));
    }
    for port in 1..=20u16 {
        p.rejected(T0 + 100.0 + f64::from(port), ep("45.33.32.77", 50000 + port), ep("10.1.0.200", port));
    }
    p
}

#[test]
fn address_and_port_scans_are_found_and_workers_stop_sending() {
    let p = scan_trace();
    let r = run(&p, &["--detect", "scan"], &[]);
    let addr = r.notices("Scan::Address_Scan");
    assert_eq!(addr.len(), 1, "{addr:?}");
    assert_eq!(addr[0]["msg"], "45.33.32.66 scanned at least 25 unique hosts on port 22/tcp in 0m24s");
    assert_eq!((addr[0]["sub"].as_str(), addr[0]["p"].as_str()), ("remote", "22"));
    let port = r.notices("Scan::Port_Scan");
    assert_eq!(port.len(), 1, "{port:?}");
    assert_eq!(port[0]["msg"], "45.33.32.77 scanned at least 15 unique ports of host 10.1.0.200 in 0m14s");
    assert_eq!(port[0]["dst"], "10.1.0.200");
    // 5 attempts after each finding were not sent (2 messages each).
    assert_eq!(r.counter("scan_messages_saved"), 20, "{}", r.stderr);
}

#[test]
fn analysis_threads_give_the_same_notices() {
    let mut p = Pcap::default();
    for i in 0..30u8 {
        p.rejected(T0 + f64::from(i), ep("45.33.32.66", 40000 + u16::from(i)), ep(&format!("10.1.0.{}", i + 1), 22));
    }
    for i in 0..120u16 {
        p.udp(T0 + f64::from(i) * 0.1, ep("45.33.32.7", 20000 + i), ep("10.0.0.5", 3389), b"flood");
    }
    let notes = |r: &Run| {
        // Which 25 of the 30 hosts come first (and so the duration in the message) depends on thread timing.
        let mut n: Vec<String> = r
            .log("notice")
            .iter()
            .map(|n| format!("{} {}", n["note"], n["msg"].split(" in ").next().unwrap_or("")))
            .collect();
        n.sort();
        n
    };
    let one = run(&p, &["--detect", "all"], &[]);
    let four = run(&p, &["--detect", "all", "--threads", "4"], &[]);
    assert_eq!(notes(&one).len(), 2, "{:?}", notes(&one));
    assert_eq!(notes(&one), notes(&four));
}

fn subnet_trace() -> Pcap {
    let mut p = Pcap::default();
    for s in 10..15u8 {
        for port in 1..=15u16 {
            let t = T0 + f64::from(s) * 20.0 + f64::from(port);
            p.rejected(t, ep(&format!("198.51.100.{s}"), 40000 + port), ep("10.1.0.9", port));
        }
    }
    // A scanner from another /24 does not count.
    for port in 1..=15u16 {
        p.rejected(T0 + 400.0 + f64::from(port), ep("198.51.101.1", 40000 + port), ep("10.1.0.9", port));
    }
    p
}

#[test]
fn scanners_from_one_subnet_raise_scan_subnet() {
    let p = subnet_trace();
    let r = run(&p, &["--detect", "scan"], &[]);
    assert_eq!(r.notices("Scan::Port_Scan").len(), 6);
    let subnet = r.notices("Scan::Subnet");
    assert_eq!(subnet.len(), 1, "{subnet:?}");
    assert_eq!(subnet[0]["msg"], "198.51.100.0/24 has 5 scanning IPs originating from it");
}

const INTEL_FEED: &str = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n\
                          10.9.9.9\tIntel::ADDR\tfeed-a\tknown bad\n\
                          203.0.113.0/24\tIntel::SUBNET\tfeed-b\t-\n\
                          evil.example.com\tIntel::DOMAIN\tfeed-a\t-\n\
                          evil.example.com/payload.bin\tIntel::URL\tfeed-c\t-\n\
                          BadBot/1.0\tIntel::SOFTWARE\tfeed-c\t-\n\
                          mallory@example.net\tIntel::EMAIL\tfeed-d\t-\n";

/// Traffic that touches every indicator of INTEL_FEED, from several clients (so a cluster spreads it).
fn intel_trace() -> Pcap {
    let mut p = Pcap::default();
    p.dns_query(T0, ep("10.0.0.1", 5353), ep("10.0.0.53", 53), 7, "evil.example.com", 1);
    p.http_get(T0 + 1.0, ep("10.0.0.1", 40001), ep("10.9.9.9", 80), "evil.example.com", "/payload.bin", "BadBot/1.0");
    p.http_get(T0 + 2.0, ep("10.0.0.2", 40002), ep("203.0.113.5", 80), "good.example.org", "/", "curl/8.0");
    smtp_mail(&mut p, T0 + 3.0, ep("10.0.0.3", 41000), ep("10.0.0.25", 25), "hello");
    p
}

#[test]
fn intel_matches_addresses_domains_urls_and_mail_addresses() {
    let r = run(&intel_trace(), &["--intel", "intel.dat", "--detect", "intel"], &[("intel.dat", INTEL_FEED)]);
    let mut hits: Vec<(String, String, String, String)> = r
        .log("intel")
        .into_iter()
        .map(|h| (h["seen.where"].clone(), h["seen.indicator"].clone(), h["matched"].clone(), h["sources"].clone()))
        .collect();
    hits.sort();
    let expect = |w: &str, i: &str, m: &str, s: &str| (w.to_string(), i.to_string(), m.to_string(), s.to_string());
    assert_eq!(
        hits,
        [
            expect("Conn::IN_RESP", "10.9.9.9", "Intel::ADDR", "feed-a"),
            expect("Conn::IN_RESP", "203.0.113.5", "Intel::SUBNET", "feed-b"),
            expect("DNS::IN_REQUEST", "evil.example.com", "Intel::DOMAIN", "feed-a"),
            expect("HTTP::IN_HOST_HEADER", "evil.example.com", "Intel::DOMAIN", "feed-a"),
            expect("HTTP::IN_URL", "evil.example.com/payload.bin", "Intel::URL", "feed-c"),
            expect("HTTP::IN_USER_AGENT_HEADER", "BadBot/1.0", "Intel::SOFTWARE", "feed-c"),
            expect("SMTP::IN_FROM", "mallory@example.net", "Intel::EMAIL", "feed-d"),
            expect("SMTP::IN_MAIL_FROM", "mallory@example.net", "Intel::EMAIL", "feed-d"),
        ]
    );
    assert!(r.log("intel").iter().all(|h| h["seen.node"] == "zeek" && h["uid"].starts_with('C')));
}

fn smtp_mail(p: &mut Pcap, ts: f64, client: Endpoint, server: Endpoint, body: &str) -> f64 {
    let data = format!(
        "From: Mallory <mallory@example.net>\r\nTo: Alice <alice@example.com>\r\nSubject: invoice\r\n\r\n{body}\r\n.\r\n"
    );
    let turns: Vec<(bool, &[u8])> = vec![
        (false, b"220 mail.example.com ESMTP\r\n"),
        (true, b"EHLO client.example.net\r\n"),
        (false, b"250 mail.example.com\r\n"),
        (true, b"MAIL FROM:<mallory@example.net>\r\n"),
        (false, b"250 2.1.0 Ok\r\n"),
        (true, b"RCPT TO:<alice@example.com>\r\n"),
        (false, b"250 2.1.5 Ok\r\n"),
        (true, b"DATA\r\n"),
        (false, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (true, data.as_bytes()),
        (false, b"250 2.0.0 Ok: queued\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 2.0.0 Bye\r\n"),
    ];
    p.conversation(ts, client, server, &turns)
}

#[test]
fn a_url_from_a_mail_clicked_later_raises_url_clicked() {
    let mut p = Pcap::default();
    let body = "Please pay at http://pay.example.net/invoice?id=42 today.\r\nThanks";
    let mail_end = smtp_mail(&mut p, T0, ep("198.51.100.25", 41000), ep("10.0.0.25", 25), body);
    // 30 s later a user follows the link; another request to the same host is no click.
    let click = ep("10.0.0.31", 42000);
    p.http_get(mail_end + 30.0, click, ep("198.51.100.80", 80), "pay.example.net", "/invoice?id=42", "Mozilla/5.0");
    p.http_get(mail_end + 31.0, ep("10.0.0.32", 42001), ep("198.51.100.80", 80), "pay.example.net", "/", "Mozilla/5.0");
    let r = run(&p, &["--detect", "mail-urls"], &[]);
    let clicks = r.notices("SMTP::URL_Clicked");
    assert_eq!(clicks.len(), 1, "{clicks:?}");
    assert_eq!(clicks[0]["msg"], "10.0.0.31 clicked a URL seen in e-mail: http://pay.example.net/invoice?id=42");
    assert_eq!(clicks[0]["id.orig_h"], "10.0.0.31");
    let mail_uid = &r.log("smtp")[0]["uid"];
    assert_eq!(clicks[0]["sub"], format!("mail {mail_uid}"));
}

fn software_trace() -> Pcap {
    let mut p = Pcap::default();
    let (client, server) = ("10.0.0.1", "10.0.0.2");
    for i in 0..3u16 {
        p.http_get(T0 + f64::from(i), ep(client, 40000 + i), ep(server, 80), "intranet", "/", "curl/7.81.0");
    }
    p.http_get(T0 + 5.0, ep(client, 40100), ep(server, 80), "intranet", "/", "Wget/1.21.2");
    // A remote client's software is not tracked (198.51.100.0/24 is in Zeek's private space, 45.33.0.0/16 is not).
    p.http_get(T0 + 6.0, ep("45.33.32.1", 40200), ep(server, 80), "intranet", "/", "curl/7.81.0");
    p
}

/// software.log as (host, host_p, software_type, name, version.major, unparsed_version), sorted.
fn software_of(r: &Run) -> Vec<[String; 6]> {
    let columns = ["host", "host_p", "software_type", "name", "version.major", "unparsed_version"];
    let mut rows: Vec<[String; 6]> = r.log("software").iter().map(|s| columns.map(|c| s[c].clone())).collect();
    rows.sort();
    rows
}

#[test]
fn software_and_known_hosts_and_services_are_logged_once() {
    let (client, server) = ("10.0.0.1", "10.0.0.2");
    let p = software_trace();
    let r = run(&p, &["--detect", "software,known"], &[]);
    // The clients' User-Agent (HTTP::BROWSER) and the server's `Server` header (HTTP::SERVER, with its port).
    assert_eq!(
        software_of(&r),
        [
            [client, "-", "HTTP::BROWSER", "Wget", "1", "Wget/1.21.2"].map(String::from),
            [client, "-", "HTTP::BROWSER", "curl", "7", "curl/7.81.0"].map(String::from),
            [server, "80", "HTTP::SERVER", "nginx", "1", "nginx/1.18.0"].map(String::from),
        ]
    );
    let mut hosts: Vec<String> = r.log("known_hosts").into_iter().map(|h| h["host"].clone()).collect();
    hosts.sort();
    assert_eq!(hosts, [client, server]);
    let services = r.log("known_services");
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(
        (services[0]["host"].as_str(), services[0]["port_num"].as_str(), services[0]["service"].as_str()),
        (server, "80", "HTTP")
    );
}

/// The rows of `log` as written, `ts` included, sorted.
fn raw_rows(r: &Run, log: &str) -> Vec<String> {
    let text = std::fs::read_to_string(r.dir.path().join(format!("{log}.log"))).unwrap_or_default();
    let mut rows: Vec<String> = text.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect();
    rows.sort();
    rows
}

/// The proxies log the time the worker saw a host, service or software (as Zeek's proxies log the `ts` of the info
/// record a worker built), so a cluster's rows are a standalone run's to the microsecond: the proxies' own clocks
/// follow the packet-time barriers, which can be ahead of a given worker's report.
#[test]
fn cluster_known_and_software_rows_keep_the_workers_times() {
    let p = software_trace();
    let alone = run(&p, &["--detect", "software,known"], &[]);
    let clustered = run_cluster(&p, &["--detect", "software,known"], &[]);
    for log in ["known_hosts", "known_services", "software"] {
        let rows = raw_rows(&alone, log);
        assert!(!rows.is_empty(), "{log} is empty standalone");
        assert_eq!(rows, raw_rows(&clustered, log), "{log}: standalone vs cluster");
    }
}

/// `--detect local` is zeekctl's local.zeek: the same records as naming its policies.
#[test]
fn the_local_profile_runs_zeekctls_default_policies() {
    let p = software_trace();
    let local = run(&p, &["--detect", "local"], &[]);
    let named = run(&p, &["--detect", "software,known,ssh-bruteforce,capture-loss,ftp-site-exec,sqli,stats"], &[]);
    assert_eq!(software_of(&local).len(), 3);
    assert_eq!(detection_records(&local), detection_records(&named));
    assert!(run(&p, &["--detect", "dos"], &[]).log("software").is_empty(), "software is not in dos");
}

/// A real TLS session (Zeek's tls-conn-with-extensions.pcap: 192.168.1.105 → 74.125.224.79:443), and the host
/// certificate x509.log has for it in Zeek's baseline (subject, issuer, serial).
fn tls_trace() -> Option<(Pcap, [String; 3])> {
    let case = oracle_root()?.join("tls-extensions");
    let trace = Pcap::read(&case.join("tls-conn-with-extensions.pcap"));
    let x509 = read_log(&case.join("x509.log"));
    let host_cert = x509.iter().find(|r| r["host_cert"] == "T").expect("the baseline's host certificate");
    let cert = ["certificate.subject", "certificate.issuer", "certificate.serial"].map(|c| host_cert[c].clone());
    Some((trace, cert))
}

/// known_certs.log as (host, port_num, subject, issuer_subject, serial).
fn known_certs_of(r: &Run) -> Vec<[String; 5]> {
    let columns = ["host", "port_num", "subject", "issuer_subject", "serial"];
    r.log("known_certs").iter().map(|c| columns.map(|col| c[col].clone())).collect()
}

#[test]
fn known_certs_are_logged_once_per_host_and_certificate() {
    let Some((trace, [subject, issuer, serial])) = tls_trace() else { return };
    let server = "74.125.224.79";
    let row = [server.to_string(), "443".into(), subject, issuer, serial];
    // The server is not local (Known::cert_tracking = LOCAL_HOSTS by default): nothing.
    let r = run(&trace, &["--detect", "known"], &[]);
    assert!(known_certs_of(&r).is_empty());
    // A local server, or every server tracked: one row, at ssl_established.
    let r = run(&trace, &["--detect", "known", "--local-nets", "74.125.0.0/16"], &[]);
    assert_eq!(known_certs_of(&r), std::slice::from_ref(&row));
    let all = [("all.yaml", "known: { cert_tracking: ALL_HOSTS }")];
    let args = ["--detect", "known", "--detect-config", "all.yaml"];
    let r = run(&trace, &args, &all);
    assert_eq!(known_certs_of(&r), std::slice::from_ref(&row));
    let established = r.log("ssl").into_iter().next().expect("ssl.log");
    assert!(r.log("known_certs")[0]["ts"].as_str() > established["ts"].as_str(), "after the session began");
    // The same session again 100 s later: still one row; two days later (after Known::cert_store_expiry): two.
    let again = Pcap::concat([&trace, &trace.shifted(100.0)]);
    assert_eq!(known_certs_of(&run(&again, &args, &all)), std::slice::from_ref(&row));
    let later = Pcap::concat([&trace, &trace.shifted(2.0 * 86400.0)]);
    assert_eq!(known_certs_of(&run(&later, &args, &all)), [row.clone(), row]);
    // A session that never established (a late protocol error) has no known certificate, whatever it sent.
    let Some(root) = oracle_root() else { return };
    let failed = Pcap::read(&root.join("tls12-late-error").join("tls1.2-late-protocol-error.pcap"));
    let r = run(&failed, &args, &all);
    assert!(!r.log("x509").is_empty() && known_certs_of(&r).is_empty());
    let none = [("none.yaml", "known: { cert_tracking: NO_HOSTS }")];
    assert!(known_certs_of(&run(&trace, &["--detect", "known", "--detect-config", "none.yaml"], &none)).is_empty());
}

#[test]
fn cluster_known_certs_match_standalone() {
    let Some((trace, _)) = tls_trace() else { return };
    // Three sessions of the one server from different times: one row, whichever worker saw which.
    let trace = Pcap::concat([&trace, &trace.shifted(100.0), &trace.shifted(200.0)]);
    let all = [("all.yaml", "known: { cert_tracking: ALL_HOSTS }")];
    let (_, c) = same_in_a_cluster(&trace, &["--detect", "known", "--detect-config", "all.yaml"], &all);
    assert_eq!(known_certs_of(&c).len(), 1);
}

/// An FTP session whose `SITE EXEC` succeeds once (and fails once, and another SITE command succeeds).
fn ftp_trace() -> Pcap {
    let mut p = Pcap::default();
    let turns: [(bool, &[u8]); 13] = [
        (false, b"220 FTP server ready\r\n"),
        (true, b"USER anonymous\r\n"),
        (false, b"331 Guest login ok, send your e-mail as password.\r\n"),
        (true, b"PASS guest@\r\n"),
        (false, b"230 Guest login ok.\r\n"),
        (true, b"SITE EXEC /bin/ls\r\n"),
        (false, b"500 'SITE EXEC': command not understood.\r\n"),
        (true, b"SITE CHMOD 755 upload.sh\r\n"),
        (false, b"200 CHMOD command successful.\r\n"),
        (true, b"SITE exec /bin/id\r\n"),
        (false, b"200-uid=0(root) gid=0(root)\r\n200 (end of 'exec /bin/id')\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 Goodbye.\r\n"),
    ];
    p.conversation(T0, ep("45.33.32.10", 40001), ep("10.0.0.21", 21), &turns);
    p
}

#[test]
fn a_successful_site_exec_raises_a_notice() {
    let r = run(&ftp_trace(), &["--detect", "ftp-site-exec"], &[]);
    let notices = r.notices("FTP::Site_Exec_Success");
    // The multi-line reply's first and last lines both answer the command: the second is suppressed.
    assert_eq!(notices.len(), 1, "{notices:?}");
    let n = &notices[0];
    let uid = &r.log("conn")[0]["uid"];
    let cells =
        ["msg", "uid", "id.orig_h", "id.resp_p", "proto", "src", "dst", "p", "suppress_for"].map(|c| n[c].as_str());
    assert_eq!(
        cells,
        [
            "FTP command: SITE exec /bin/id",
            uid,
            "45.33.32.10",
            "21",
            "tcp",
            "45.33.32.10",
            "10.0.0.21",
            "21",
            "3600.000000"
        ]
    );
    // SITE is not one of FTP::logged_commands: ftp.log is what it is without the detection.
    let plain = run(&ftp_trace(), &[], &[]);
    assert_eq!(r.log("ftp"), plain.log("ftp"));
    assert!(plain.log("notice").is_empty());
}

/// 55 requests from one client whose URIs are SQL injections (and harmless ones between them).
fn sqli_trace() -> Pcap {
    let mut p = Pcap::default();
    let (attacker, victim) = ("45.33.32.9", "10.0.0.80");
    let mut t = T0;
    for i in 0..55u16 {
        let uri = format!("/login.php?user={i}%27%20or%201=1%20--");
        t = p.http_get(t, ep(attacker, 41000 + i), ep(victim, 80), "shop", &uri, "sqlmap/1.7");
        t = p.http_get(t, ep(attacker, 42000 + i), ep(victim, 80), "shop", "/index.php?page=2", "curl/8.0");
    }
    p
}

#[test]
fn sql_injections_raise_attacker_and_victim_notices() {
    let r = run(&sqli_trace(), &["--detect", "sqli"], &[]);
    let uris: Vec<String> = r.log("http").into_iter().map(|h| h["uri"].clone()).collect();
    assert!(uris.contains(&"/login.php?user=49' or 1=1 --".to_string()), "http.log has the unescaped URI");
    for (note, msg) in [
        ("HTTP::SQL_Injection_Attacker", "An SQL injection attacker was discovered!"),
        ("HTTP::SQL_Injection_Victim", "An SQL injection victim was discovered!"),
    ] {
        let n = r.notices(note);
        assert_eq!(n.len(), 1, "{note}: {n:?}");
        // The sample is the 50th injection, the one that reached HTTP::sqli_requests_threshold.
        let sample = r.log("http").into_iter().find(|h| h["uri"] == "/login.php?user=49' or 1=1 --").unwrap();
        let cells = ["msg", "uid", "id.orig_h", "src", "dst", "p", "ts"].map(|c| n[0][c].clone());
        assert_eq!(cells, [msg, &sample["uid"], "-", "45.33.32.9", "10.0.0.80", "-", &sample["ts"]].map(String::from));
    }
    // The script tags what it counts in http.log (`add c$http$tags[URI_SQLI]`); without it, tags stay empty.
    let tagged = |r: &Run| r.log("http").iter().filter(|h| h["tags"] == "HTTP::URI_SQLI").count();
    assert_eq!(tagged(&r), 55);
    assert_eq!(r.log("http").iter().filter(|h| h["tags"] == "(empty)").count(), 55);
    assert_eq!(tagged(&run(&sqli_trace(), &[], &[])), 0);
    assert_eq!(tagged(&run(&sqli_trace(), &["--detect", "dos"], &[])), 0);
    let fewer = [("t.yaml", "http: { sqli_requests_threshold: 60 }")];
    assert!(run(&sqli_trace(), &["--detect", "sqli", "--detect-config", "t.yaml"], &fewer).log("notice").is_empty());
}

#[test]
fn cluster_sql_injection_and_site_exec_match_standalone() {
    let (_, c) = same_in_a_cluster(&sqli_trace(), &["--detect", "sqli"], &[]);
    assert_eq!(c.log("notice").len(), 2);
    assert_eq!(c.log("http").iter().filter(|h| h["tags"] == "HTTP::URI_SQLI").count(), 55, "every worker tags");
    let (_, c) = same_in_a_cluster(&ftp_trace(), &["--detect", "ftp-site-exec"], &[]);
    assert_eq!(c.notices("FTP::Site_Exec_Success").len(), 1);
}

/// The DNS statistics interval of the tests (seconds).
const DNS_INTERVAL: f64 = 60.0;

/// Queries as (seconds after T0, query type, answered): bursts over five intervals with gaps longer than the UDP
/// timeout, so unanswered queries are logged (and counted) long after their interval ended.
const DNS_QUERIES: [(f64, u16, bool); 14] = [
    (0.0, 1, true),
    (1.0, 1, false),
    (2.0, 28, true),
    (59.5, 1, false),
    (61.0, 15, true),
    (62.0, 1, true),
    (200.0, 1, false),
    (201.0, 15, false),
    (202.0, 28, true),
    (203.0, 1, true),
    (230.0, 28, false),
    (299.0, 1, true),
    (400.0, 16, false),
    (401.0, 1, true),
];

fn dns_trace() -> Pcap {
    let mut p = Pcap::default();
    let (client, server) = (ep("10.0.0.1", 0), ep("10.0.0.53", 53));
    for (i, (dt, qtype, answered)) in DNS_QUERIES.iter().enumerate() {
        let from = (client.0, 30000 + i as u16);
        p.dns_query(T0 + dt, from, server, i as u16, "host.example.com", *qtype);
        if *answered {
            p.dns_reply(T0 + dt + 0.02, from, server, i as u16, "host.example.com", *qtype);
        }
    }
    p
}

/// dns_qtype_stats.log as (interval, query type name) → queries.
fn dns_stats_rows(r: &Run) -> std::collections::BTreeMap<(u64, String), u64> {
    let mut rows = std::collections::BTreeMap::new();
    for row in r.log("dns_qtype_stats") {
        let key = (row["epoch"].parse().expect("interval"), row["qtype_name"].clone());
        let previous = rows.insert(key, row["queries"].parse().expect("count"));
        assert!(previous.is_none(), "one row per interval and type: {row:?}");
    }
    rows
}

#[test]
fn dns_query_types_are_counted_per_interval() {
    let name = |qtype: u16| match qtype {
        1 => "A",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        _ => unreachable!("a type of DNS_QUERIES"),
    };
    let mut expected = std::collections::BTreeMap::new();
    for (dt, qtype, _) in DNS_QUERIES {
        let interval = ((T0 + dt) / DNS_INTERVAL).floor() as u64;
        *expected.entry((interval, name(qtype).to_string())).or_insert(0u64) += 1;
    }
    let config = format!("dns_stats: {{ interval: {DNS_INTERVAL} }}");
    let r = run(&dns_trace(), &["--detect", "dns-stats", "--detect-config", "c.yaml"], &[("c.yaml", &config)]);
    assert_eq!(dns_stats_rows(&r), expected);
}

#[test]
fn ssh_password_guessing_matches_zeeks_baseline() {
    let Some(root) = oracle_root() else { return };
    let case = root.join("ssh-bruteforce-notice");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ssh.yaml");
    std::fs::write(&cfg, "ssh:\n  password_guesses_limit: 10\n").expect("config");
    let out = Command::new(node_binary())
        .arg("-r")
        .arg(case.join("sshguess.pcap"))
        .args(["-C", "--detect", "ssh-bruteforce", "--detect-config"])
        .arg(&cfg)
        .arg("--logdir")
        .arg(dir.path())
        .output()
        .expect("run zeek-node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours = support::masked_records(&dir.path().join("notice.log"), &["ts"]);
    let zeeks = support::masked_records(&case.join("notice.log"), &["ts"]);
    assert_eq!(ours, zeeks);
}

// ---------------------------------------------------------------------------------------------------
// The same detections in a cluster of 3 workers, 2 proxies and 2 loggers
// ---------------------------------------------------------------------------------------------------

#[test]
fn cluster_dos_and_scans_match_standalone() {
    let (_, c) = same_in_a_cluster(&dos_trace(), &["--detect", "dos"], &[]);
    assert_eq!(c.notices("DoS::Threshold").len(), 1);
    let (_, c) = same_in_a_cluster(&scan_trace(), &["--detect", "scan"], &[]);
    assert_eq!((c.notices("Scan::Address_Scan").len(), c.notices("Scan::Port_Scan").len()), (1, 1));
    let (_, c) = same_in_a_cluster(&subnet_trace(), &["--detect", "scan"], &[]);
    assert_eq!(c.notices("Scan::Subnet").len(), 1);
}

#[test]
fn cluster_intel_matches_standalone() {
    let args = ["--intel", "intel.dat", "--detect", "intel"];
    let (_, c) = same_in_a_cluster(&intel_trace(), &args, &[("intel.dat", INTEL_FEED)]);
    assert_eq!(c.log("intel").len(), 8, "every indicator is seen once in the cluster too");
}

/// `local` (zeekctl's default policies) in a cluster reaches the nodes through the layout, as a ZeekCluster's
/// default `spec.detections` does.
#[test]
fn cluster_software_and_known_match_standalone() {
    let (_, c) = same_in_a_cluster(&software_trace(), &["--detect", "local"], &[]);
    let servers: Vec<[String; 6]> = software_of(&c).into_iter().filter(|s| s[2] == "HTTP::SERVER").collect();
    assert_eq!(servers, [["10.0.0.2", "80", "HTTP::SERVER", "nginx", "1", "nginx/1.18.0"].map(String::from)]);
}

/// The workers count each query in its own interval and the manager logs an interval once no more counts can
/// come, so a cluster's per-interval figures are a standalone run's.
#[test]
fn cluster_dns_query_types_per_interval_match_standalone() {
    let config = format!("dns_stats: {{ interval: {DNS_INTERVAL} }}");
    let args = ["--detect", "dns-stats", "--detect-config", "c.yaml"];
    let (alone, clustered) = same_in_a_cluster(&dns_trace(), &args, &[("c.yaml", &config)]);
    assert_eq!(dns_stats_rows(&alone), dns_stats_rows(&clustered));
    assert!(dns_stats_rows(&clustered).len() >= 5, "several intervals: {:?}", dns_stats_rows(&clustered));
}

#[test]
fn cluster_ssh_guessing_matches_standalone() {
    let Some(root) = oracle_root() else { return };
    let trace = root.join("ssh-bruteforce-notice").join("sshguess.pcap");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ssh.yaml");
    std::fs::write(&cfg, "ssh:\n  password_guesses_limit: 10\n").expect("config");
    let mut notices = Vec::new();
    for cluster in [false, true] {
        let out_dir = dir.path().join(if cluster { "cluster" } else { "alone" });
        std::fs::create_dir_all(&out_dir).expect("mkdir");
        let mut cmd = Command::new(node_binary());
        if cluster {
            cmd.args(["cluster", "--insecure", "--workers", "3", "--proxies", "2", "--loggers", "2"]);
        }
        let out = cmd
            .arg("-r")
            .arg(&trace)
            .args(["-C", "--detect", "ssh-bruteforce", "--detect-config"])
            .arg(&cfg)
            .arg("--logdir")
            .arg(&out_dir)
            .output()
            .expect("run zeek-node");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        notices.push(support::masked_records(&out_dir.join("notice.log"), &["ts"]));
    }
    assert!(!notices[0].is_empty());
    assert_eq!(notices[0], notices[1]);
}

/// The worker (of 3) that analyses a TCP connection in `zeek-node cluster -r`.
fn worker_of(client: Endpoint, server: Endpoint) -> u64 {
    let key = zeek_node::conn::ConnKey::new(client.0.into(), client.1, server.0.into(), server.1, 6);
    key.symmetric_hash() % 3
}

/// Offline clusters follow packet time: the manager hands the mail's URL to every worker before the click, 30 s
/// later in the trace and on another worker, is analysed.
#[test]
fn cluster_url_clicked_on_another_worker_30s_after_the_mail() {
    let (mail_client, mail_server) = (ep("198.51.100.25", 41000), ep("10.0.0.25", 25));
    let server = ep("198.51.100.80", 80);
    let click = (1..200u16)
        .map(|i| ep("10.0.0.31", 42000 + i))
        .find(|c| worker_of(*c, server) != worker_of(mail_client, mail_server))
        .expect("a client port on another worker");
    let mut p = Pcap::default();
    let body = "Please pay at http://pay.example.net/invoice?id=42 today.\r\nThanks";
    let mail_end = smtp_mail(&mut p, T0, mail_client, mail_server, body);
    p.http_get(mail_end + 30.0, click, server, "pay.example.net", "/invoice?id=42", "Mozilla/5.0");
    let (_, c) = same_in_a_cluster(&p, &["--detect", "mail-urls"], &[]);
    let clicks = c.notices("SMTP::URL_Clicked");
    assert_eq!(clicks.len(), 1, "{clicks:?}");
    assert_eq!(clicks[0]["id.orig_h"], "10.0.0.31");
}

// ---------------------------------------------------------------------------------------------------
// A cluster of `zeek-node run` processes whose proxy pool changes during a run
// ---------------------------------------------------------------------------------------------------

/// The detection nodes of one layout on 127.0.0.1 (tests/support/nodes.rs), every one with the same detection
/// options.
fn node_procs(nodes: &[(&str, Role)], detect: &[&str]) -> Nodes {
    Nodes::local("detections", nodes, None, detect)
}

/// Stops every node in delivery order; each must exit cleanly.
fn stop_cleanly(c: &mut Nodes) {
    for (name, status) in c.stop_all() {
        assert!(status.success(), "{name} failed\n{}", c.stderr(&name));
    }
}

/// A named pipe a worker reads as its trace (`zeek-node run -r FIFO`), written by the test in parts.
struct TracePipe(std::fs::File);

impl TracePipe {
    fn create(path: &Path) {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path without NUL");
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
        assert_eq!(made, 0, "mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
    }

    /// Opens the pipe once the worker reads it (bounded: a worker that never opens it fails the test, with what
    /// the cluster's nodes said). A worker opens its trace once it has joined the cluster: on a loaded 2-core
    /// machine (the whole suite runs in parallel) that took over 30 s at times, so the bound is generous.
    fn open(path: &Path, c: &Nodes) -> TracePipe {
        use std::os::unix::fs::OpenOptionsExt;
        const TIMEOUT: Duration = Duration::from_secs(90);
        let opened = wait_for(TIMEOUT, || {
            // Non-blocking, so the wait stays bounded: without a reader the open fails (ENXIO) instead of waiting.
            std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path).ok()
        });
        let file = opened.unwrap_or_else(|| {
            let said: String = c.names().iter().map(|n| format!("--- {n}:\n{}\n", c.stderr(n))).collect();
            panic!("no worker opened {} within {TIMEOUT:?}\n{said}", path.display())
        });
        // SAFETY: fcntl(2) on the descriptor we own, clearing O_NONBLOCK so that writes wait for the reader.
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_SETFL, 0) };
        TracePipe(file)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).expect("the worker reads its trace");
    }
}

/// A DoS flood in three parts of 40 connections per pair, from 24 attackers each to its own local victim (the
/// even ones answer). A part is four bursts of 10 connections per pair, each ending with an unrelated packet two
/// minutes on, so the burst's UDP connections time out (and their stats go to the proxies) when it is read.
fn dos_phases() -> Vec<Vec<Pcap>> {
    const PAIRS: u16 = 24;
    const BURST: u16 = 10;
    let mut t = T0;
    let mut conn = 0u16;
    let mut burst = || {
        let mut p = Pcap::default();
        for k in 0..BURST {
            for i in 0..PAIRS {
                let ts = t + f64::from(k) + f64::from(i) * 0.01;
                let attacker = ep(&format!("45.80.0.{}", 1 + i), 20000 + conn);
                let victim = ep(&format!("10.20.0.{}", 1 + i), 3389);
                p.udp(ts, attacker, victim, b"flood");
                if i % 2 == 0 {
                    p.udp(ts + 0.001, victim, attacker, b"re");
                }
            }
            conn += 1;
        }
        t += f64::from(BURST) + 120.0;
        p.udp(t, ep("10.20.1.1", 5000), ep("10.20.1.2", 5001), b"tick");
        t += 10.0;
        p
    };
    (0..3).map(|_| (0..4).map(|_| burst()).collect()).collect()
}

/// Writes a part's bursts a quarter of a second apart, so that what the test does meanwhile (a proxy joining or
/// leaving) lands while the part's stats are on their way.
fn send_paced(pipe: &mut TracePipe, bursts: &[Pcap]) {
    for b in bursts {
        pipe.send(&b.records());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `DoS::Threshold` notices with `n` = `step` the loggers wrote so far.
fn threshold_notices(c: &Nodes, step: u64) -> usize {
    let step = format!("\t{step}\t");
    c.records("notice", &[]).iter().filter(|r| r.contains("DoS::Threshold") && r.contains(&step)).count()
}

/// Proxies scale from 2 to 3 and back while a worker reads a DoS flood: the pair counts (state handed off between
/// proxies as owners change) cross every step at the right count, and notice.log is what a standalone run of the
/// same traffic writes. The last step equals each pair's total, so one connection lost in a hand-off fails it.
#[test]
fn proxies_scale_from_2_to_3_and_back_during_a_dos_run() {
    const PAIRS: usize = 24;
    let phases = dos_phases();
    let config = "dos:\n  thresholds: [30, 60, 120]\n";
    let alone = run(
        &Pcap::concat(phases.iter().flatten()),
        &["--detect", "dos", "--detect-config", "dos.yaml"],
        &[("dos.yaml", config)],
    );
    let expected = support::masked_records(&alone.dir.path().join("notice.log"), &["ts"]);
    assert_eq!(alone.notices("DoS::Threshold").len(), 3 * PAIRS);
    assert_eq!(alone.notices("DoS::Victim").len(), PAIRS / 2);

    let config_file = alone.dir.path().join("dos.yaml");
    let config_arg = config_file.display().to_string();
    let nodes =
        [("logger-1", Role::Logger), ("proxy-1", Role::Proxy), ("proxy-2", Role::Proxy), ("worker-1", Role::Worker)];
    let mut c = node_procs(&nodes, &["--detect", "dos", "--detect-config", &config_arg]);
    let fifo = c.path("trace.pcap");
    TracePipe::create(&fifo);
    for name in ["manager", "logger-1", "proxy-1", "proxy-2"] {
        c.start(name, &[]);
    }
    c.start("worker-1", &["-r", &fifo.display().to_string()]);
    let mut pipe = TracePipe::open(&fifo, &c);
    pipe.send(&Pcap::header());
    send_paced(&mut pipe, &phases[0]);
    let crossed =
        |c: &Nodes, step| wait_for(Duration::from_secs(60), || (threshold_notices(c, step) == PAIRS).then_some(()));
    assert!(crossed(&c, 30).is_some(), "first step with 2 proxies\n{}", c.stderr("proxy-1"));

    // 2 → 3 proxies while the second part is analysed.
    c.join("proxy-3", "proxy", &[]);
    send_paced(&mut pipe, &phases[1]);
    let joined = wait_for(Duration::from_secs(15), || c.members().contains(&"proxy-3".to_string()).then_some(()));
    assert!(joined.is_some(), "proxy-3 did not join\n{}", c.stderr("proxy-3"));
    assert!(crossed(&c, 60).is_some(), "second step with 3 proxies\n{}", c.stderr("proxy-3"));

    // 3 → 2 proxies while the third part is analysed.
    c.signal("proxy-1", libc::SIGTERM);
    send_paced(&mut pipe, &phases[2]);
    let left = c.wait_exit("proxy-1", Duration::from_secs(20));
    assert!(left.success(), "proxy-1 did not leave cleanly\n{}", c.stderr("proxy-1"));
    drop(pipe);
    let worker = c.wait_exit("worker-1", Duration::from_secs(60));
    assert!(worker.success(), "worker-1 failed\n{}", c.stderr("worker-1"));
    stop_cleanly(&mut c);

    let got = c.records("notice", &["ts"]);
    assert_eq!(got, expected, "{}", support::record_diff("cluster", &got, "standalone", &expected));
    // proxy-1 handed pairs to proxy-3 when it joined, and the rest when it left.
    let hand_offs = c.stderr("proxy-1").matches("handing state to new owners").count();
    assert!(hand_offs >= 2, "proxy-1 handed state on {hand_offs} times\n{}", c.stderr("proxy-1"));
}

/// Intel hits of one client: a DNS query, and an HTTP request to an address by a host name. Ends with an unrelated
/// packet later on, so every record of the part (connections closed, queries answered) is out once it is read.
fn intel_part(ts: f64, client: &str) -> Pcap {
    let mut p = Pcap::default();
    let resolver = ep("10.0.0.53", 53);
    p.dns_query(ts, ep(client, 5353), resolver, 7, "evil.example.com", 1);
    p.dns_reply(ts + 0.01, ep(client, 5353), resolver, 7, "evil.example.com", 1);
    p.http_get(ts + 1.0, ep(client, 40001), ep("10.9.9.9", 80), "evil.example.com", "/", "curl/8.0");
    p.http_get(ts + 2.0, ep(client, 40002), ep("10.8.8.8", 80), "fresh.example.org", "/", "curl/8.0");
    p.udp(ts + 400.0, ep("10.0.0.250", 9), ep("10.0.0.251", 9), b"tick");
    p
}

/// The manager hands the watch list to the workers: to worker-1 at the start, to worker-2 when it joins later,
/// and to both again when the file changes; the workers' intel.log records are a standalone run's with the same
/// list.
#[test]
fn cluster_intel_reaches_late_workers_and_follows_file_changes() {
    let header = "#fields\tindicator\tindicator_type\tmeta.source\n";
    let before = format!("{header}10.9.9.9\tIntel::ADDR\tfeed-a\nevil.example.com\tIntel::DOMAIN\tfeed-b\n");
    // The change drops the domain and adds an address.
    let after = format!("{header}10.9.9.9\tIntel::ADDR\tfeed-a\n10.8.8.8\tIntel::ADDR\tfeed-c\n");
    let parts = [intel_part(T0, "10.0.0.1"), intel_part(T0 + 500.0, "10.0.0.2"), intel_part(T0 + 1000.0, "10.0.0.3")];
    let masked = ["ts", "uid", "seen.node", "id.orig_p"];
    let alone = |part: &Pcap, list: &str| {
        let r = run(part, &["--detect", "intel", "--intel", "intel.dat"], &[("intel.dat", list)]);
        support::masked_records(&r.dir.path().join("intel.log"), &masked)
    };
    let expected: Vec<Vec<String>> =
        vec![alone(&parts[0], &before), alone(&parts[1], &before), alone(&parts[2], &after)];
    assert!(expected.iter().all(|e| !e.is_empty()), "{expected:#?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let (intel, config) = (dir.path().join("intel.dat"), dir.path().join("intel.yaml"));
    std::fs::write(&intel, &before).expect("intel file");
    std::fs::write(&config, "intel:\n  reload_check: 1\n").expect("config");
    let (intel_arg, config_arg) = (intel.display().to_string(), config.display().to_string());
    let detect = ["--detect", "intel", "--intel", &intel_arg, "--detect-config", &config_arg];
    let mut c = node_procs(&[("logger-1", Role::Logger), ("worker-1", Role::Worker)], &detect);
    let fifos = [c.path("worker-1.pcap"), c.path("worker-2.pcap")];
    fifos.iter().for_each(|f| TracePipe::create(f));
    c.start("manager", &[]);
    c.start("logger-1", &[]);
    c.start("worker-1", &["-r", &fifos[0].display().to_string()]);
    let received = |c: &Nodes, worker: &str, times: usize| {
        let got = || (c.stderr(worker).matches("intel watch list received").count() >= times).then_some(());
        assert!(wait_for(Duration::from_secs(20), got).is_some(), "{worker}: list {times}\n{}", c.stderr(worker));
    };
    let logged = |c: &Nodes, n: usize| {
        let got = wait_for(Duration::from_secs(20), || Some(c.records("intel", &masked)).filter(|r| r.len() >= n));
        got.unwrap_or_else(|| panic!("{n} intel records: {:?}", c.records("intel", &masked)))
    };
    received(&c, "worker-1", 1);
    let mut first = TracePipe::open(&fifos[0], &c);
    first.send(&Pcap::header());
    first.send(&parts[0].records());
    logged(&c, expected[0].len());

    c.join("worker-2", "worker", &["-r", &fifos[1].display().to_string()]);
    let mut second = TracePipe::open(&fifos[1], &c);
    received(&c, "worker-2", 1);
    second.send(&Pcap::header());
    second.send(&parts[1].records());
    logged(&c, expected[0].len() + expected[1].len());

    std::fs::write(&intel, &after).expect("intel file changes");
    received(&c, "worker-1", 2);
    received(&c, "worker-2", 2);
    first.send(&parts[2].records());
    drop((first, second));
    for w in ["worker-1", "worker-2"] {
        let status = c.wait_exit(w, Duration::from_secs(60));
        assert!(status.success(), "{w} failed\n{}", c.stderr(w));
    }
    stop_cleanly(&mut c);

    let mut want: Vec<String> = expected.concat();
    want.sort();
    let got = c.records("intel", &masked);
    assert_eq!(got, want, "{}", support::record_diff("cluster", &got, "standalone", &want));
    let hits = read_log_dir(&c.path("logs"), "intel");
    let late: Vec<&str> =
        hits.iter().filter(|h| h["id.orig_h"] == "10.0.0.2").map(|h| h["seen.node"].as_str()).collect();
    assert!(!late.is_empty() && late.iter().all(|n| *n == "worker-2"), "{late:?}");
}

/// Every record of the `NAME*.log` files under `dir`, as column → value.
fn read_log_dir(dir: &Path, name: &str) -> Vec<HashMap<String, String>> {
    log_files(dir, name).iter().flat_map(|f| read_log(f)).collect()
}

// ---------------------------------------------------------------------------------------------------
// capture_loss.log (policy/misc/capture-loss.zeek)
// ---------------------------------------------------------------------------------------------------

/// One TCP connection over 16 minutes of network time: the client sends 4 bytes at a time and the server acks each
/// chunk; the chunks at `missing` never reach the capture, so the ack after each is above a content gap. The
/// exchanges come every 200 s at most, within the TCP inactivity timeout. Returns the trace and the first
/// packet's time.
fn lossy_connection(exchanges: &[(f64, bool)]) -> (Pcap, f64) {
    let (client, server) = (ep("10.0.0.1", 40000), ep("198.51.100.80", 5555));
    let mut p = Pcap::default();
    let first = T0 + 0.01;
    p.tcp(first, client, server, 1000, 0, SYN, b"");
    p.tcp(T0 + 0.02, server, client, 5000, 1001, SYN | ACK, b"");
    p.tcp(T0 + 0.03, client, server, 1001, 5001, ACK, b"");
    let mut seq = 1001u32;
    for &(dt, lost_before) in exchanges {
        if lost_before {
            seq += 4;
        }
        p.tcp(T0 + dt, client, server, seq, 5001, PSH | ACK, b"data");
        seq += 4;
        p.tcp(T0 + dt + 0.01, server, client, 5001, seq, ACK, b"");
    }
    (p, first)
}

/// The first measurement comes at the first packet 60 s or more after the first one (its counts include that
/// packet's ack), the next one 900 s after it; the counts are per interval, and each interval with 10 % or more
/// of its acks above a gap raises `CaptureLoss::Too_Much_Loss`. The measurement pending at the end is not taken.
#[test]
fn capture_loss_rows_follow_network_time() {
    // (time after T0 the client's data is sent, whether 4 bytes before it were lost)
    let exchanges = [
        (1.0, false),
        (2.0, true),
        (3.0, false),
        (30.0, false),
        (60.0, false), // the server's ack at 60.01, 60 s after the first packet, takes the first: 5 acks, 1 gap
        (200.0, false),
        (400.0, true),
        (600.0, false),
        (800.0, false),
        (960.5, false), // the client's data at 960.50 takes the second: 4 acks, 1 gap (its ack comes later)
        (1000.0, false),
    ];
    let (p, first) = lossy_connection(&exchanges);
    let r = run(&p, &["--detect", "capture-loss"], &[]);
    let rows: Vec<Vec<String>> = r
        .log("capture_loss")
        .iter()
        .map(|row| ["ts", "ts_delta", "peer", "gaps", "acks", "percent_lost"].map(|c| row[c].clone()).to_vec())
        .collect();
    let first_at = first + 60.0;
    let row = |ts: f64, delta: &str, gaps: &str, acks: &str, pct: &str| {
        vec![format!("{ts:.6}"), delta.to_string(), "zeek".to_string(), gaps.into(), acks.into(), pct.into()]
    };
    assert_eq!(
        rows,
        [row(first_at, "60.000000", "1", "5", "20.0"), row(T0 + 960.5, "900.490000", "1", "4", "25.0"),],
        "{}",
        r.stderr
    );
    let loss: Vec<(String, String)> =
        r.notices("CaptureLoss::Too_Much_Loss").iter().map(|n| (n["ts"].clone(), n["msg"].clone())).collect();
    let msg = |pct: &str| format!("The capture loss script detected an estimated loss rate above {pct}%");
    assert_eq!(loss, [(format!("{first_at:.6}"), msg("20.000")), (format!("{:.6}", T0 + 960.5), msg("25.000"))]);
    assert!(r.notices("CaptureLoss::Too_Little_Traffic").is_empty());
    for n in r.notices("CaptureLoss::Too_Much_Loss") {
        assert_eq!((n["n"].as_str(), n["peer_descr"].as_str(), n["suppress_for"].as_str()), ("-", "-", "3600.000000"));
    }
}

/// With analysis threads the node measures the sum of their engines when a thread has finished a batch of packets
/// (a second of packet time at most), so a measurement can come a few packets later than Zeek's.
#[test]
fn capture_loss_with_analysis_threads_sums_their_engines() {
    let mut exchanges = vec![(1.0, false), (2.0, true), (60.0, false)];
    exchanges.extend([200.0, 400.0, 600.0, 800.0].map(|t| (t, false)));
    exchanges.extend([(960.5, true), (1000.0, false)]);
    let (p, first) = lossy_connection(&exchanges);
    let rows = |threads: &str| {
        let r = run(&p, &["--detect", "capture-loss", "--threads", threads], &[]);
        r.log("capture_loss")
            .iter()
            .map(|row| ["ts", "ts_delta", "peer", "gaps", "acks"].map(|c| row[c].clone()))
            .collect::<Vec<_>>()
    };
    let (one, three) = (rows("1"), rows("3"));
    assert_eq!(one.len(), 2, "{one:?}");
    let row = |ts: f64, delta: &str, gaps: &str, acks: &str| {
        [format!("{ts:.6}"), delta.to_string(), "zeek".to_string(), gaps.to_string(), acks.to_string()]
    };
    assert_eq!(one, [row(first + 60.0, "60.000000", "1", "3"), row(T0 + 960.5, "900.490000", "0", "4")]);
    // The first starts from the first packet read, and the thread's batch ends with the ack that takes it; the
    // second: standalone the client's data at 960.50 takes it, with threads its batch holds the ack above the gap.
    assert_eq!(three, [row(first + 60.0, "60.000000", "1", "3"), row(T0 + 960.51, "900.500000", "1", "5")]);
}

/// An interval without TCP acks (here: only handshakes) logs 0 of 0, 0.0 %, and raises
/// `CaptureLoss::Too_Little_Traffic`, as the btest baseline (scripts.policy.misc.capture-loss) shows.
#[test]
fn capture_loss_without_acks_is_too_little_traffic() {
    let mut p = Pcap::default();
    for i in 0..3u16 {
        p.rejected(T0 + f64::from(i) * 40.0, ep("10.0.0.1", 40000 + i), ep("198.51.100.80", 5555));
    }
    let r = run(&p, &["--detect", "capture-loss"], &[]);
    let rows = r.log("capture_loss");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let cols = ["ts_delta", "peer", "gaps", "acks", "percent_lost"].map(|c| rows[0][c].as_str());
    assert_eq!(cols, ["80.000000", "zeek", "0", "0", "0.0"]);
    assert_eq!(rows[0]["ts"], format!("{:.6}", T0 + 80.0));
    let little = r.notices("CaptureLoss::Too_Little_Traffic");
    assert_eq!(little.len(), 1, "{little:?}");
    assert_eq!(little[0]["msg"], "Only observed 0 TCP ACKs and was expecting at least 1.");
    assert!(r.notices("CaptureLoss::Too_Much_Loss").is_empty());
}

/// In a cluster each worker measures its own engine and names itself in `peer`; the loggers write the stream. An
/// offline cluster's workers all follow the trace's clock, as live workers' clocks run on, so the workers that
/// analyse none of its packets report no ACKs at the same time.
#[test]
fn cluster_capture_loss_is_per_worker() {
    let exchanges = [(1.0, false), (2.0, true), (60.0, false), (100.0, false)];
    let (p, first) = lossy_connection(&exchanges);
    let owner = worker_of(ep("10.0.0.1", 40000), ep("198.51.100.80", 5555)) + 1;
    let c = run_cluster(&p, &["--detect", "capture-loss"], &[]);
    let mut rows: Vec<[String; 6]> = c
        .log("capture_loss")
        .iter()
        .map(|row| ["ts", "ts_delta", "peer", "gaps", "acks", "percent_lost"].map(|col| row[col].clone()))
        .collect();
    rows.sort_by(|a, b| a[2].cmp(&b[2]));
    let expected: Vec<[String; 6]> = (1..=3)
        .map(|w| {
            let (gaps, acks, pct) = if w == owner { ("1", "3", "33.333333") } else { ("0", "0", "0.0") };
            [
                format!("{:.6}", first + 60.0),
                "60.000000".into(),
                format!("worker-{w}"),
                gaps.into(),
                acks.into(),
                pct.into(),
            ]
        })
        .collect();
    assert_eq!(rows, expected, "{}", c.stderr);
    let loss = c.notices("CaptureLoss::Too_Much_Loss");
    assert_eq!(loss.len(), 1, "{loss:?}");
    assert_eq!(loss[0]["msg"], "The capture loss script detected an estimated loss rate above 33.333%");
    assert_eq!(c.notices("CaptureLoss::Too_Little_Traffic").len(), 2);
}

// ---------------------------------------------------------------------------------------------------
// stats.log (policy/misc/stats.zeek)
// ---------------------------------------------------------------------------------------------------

/// An ICMP echo request with a valid checksum.
fn icmp_echo(p: &mut Pcap, ts: f64, from: Ipv4Addr, to: Ipv4Addr) {
    let mut msg = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
    let sum = checksum(&[&msg]);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    p.ipv4(ts, from, to, 1, &msg);
}

/// Twelve minutes of network time: one long TCP connection (17 packets), two DNS queries, one of them answered,
/// and another datagram later (5 UDP packets in three connections), and a ping (1 ICMP packet): 23 packets.
fn stats_trace() -> (Pcap, f64) {
    let exchanges = [1.0, 100.0, 200.0, 310.0, 500.0, 620.0, 700.0].map(|t| (t, false));
    let (mut p, first) = lossy_connection(&exchanges);
    let (client, resolver) = (ep("10.0.0.2", 5353), ep("192.0.2.53", 53));
    p.dns_query(T0 + 50.0, client, resolver, 1, "example.com", 1);
    p.dns_reply(T0 + 50.1, client, resolver, 1, "example.com", 1);
    p.dns_query(T0 + 305.0, ep("10.0.0.2", 5354), resolver, 2, "example.org", 1);
    icmp_echo(&mut p, T0 + 300.0, Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(192, 0, 2, 1));
    p.dns_query(T0 + 400.0, ep("10.0.0.2", 5355), resolver, 3, "example.net", 1);
    p.dns_reply(T0 + 400.1, ep("10.0.0.2", 5355), resolver, 3, "example.net", 1);
    p.packets.sort_by(|a, b| a.0.total_cmp(&b.0));
    (p, first)
}

fn stats_column(rows: &[HashMap<String, String>], col: &str) -> Vec<String> {
    rows.iter().map(|r| r[col].clone()).collect()
}

fn stats_sum(rows: &[HashMap<String, String>], col: &str) -> u64 {
    rows.iter().map(|r| r[col].parse::<u64>().unwrap_or_else(|_| panic!("{col}: {r:?}"))).sum()
}

/// As Zeek's `check_stats`: a row at the first packet (zeek_init's check, due at network time 300, runs then),
/// the next at the first packet 5 minutes or more after the previous row, and the pending one at the end of
/// input; the packet and connection counts are per row, the open connections as they are then.
#[test]
fn stats_rows_follow_network_time_and_count_per_interval() {
    let (p, first) = stats_trace();
    assert_eq!(p.packets.len(), 23);
    let r = run(&p, &["--detect", "stats"], &[]);
    let rows = r.log("stats");
    let ts = |t: f64| format!("{t:.6}");
    assert_eq!(stats_column(&rows, "ts"), [ts(first), ts(T0 + 305.0), ts(T0 + 620.0), ts(T0 + 700.01)], "{}", r.stderr);
    assert_eq!(stats_column(&rows, "pkts_proc"), ["1", "12", "7", "3"]);
    assert_eq!(stats_sum(&rows, "pkts_proc"), 23);
    assert_eq!(stats_column(&rows, "tcp_conns"), ["1", "0", "0", "0"]);
    assert_eq!(stats_column(&rows, "udp_conns"), ["0", "2", "1", "0"]);
    assert_eq!(stats_column(&rows, "icmp_conns"), ["0", "1", "0", "0"]);
    // At 305 s the first DNS flow has timed out, the second (305 s) and the ping (300 s) are open.
    assert_eq!(stats_column(&rows, "active_tcp_conns"), ["1", "1", "1", "1"]);
    assert_eq!(stats_column(&rows, "active_udp_conns"), ["0", "1", "0", "0"]);
    assert_eq!(stats_column(&rows, "active_icmp_conns"), ["0", "1", "0", "0"]);
    let bytes: u64 = p.packets.iter().map(|(_, f)| f.len() as u64).sum();
    assert_eq!(stats_sum(&rows, "bytes_recv"), bytes);
    for row in &rows {
        assert_eq!(row["peer"], "zeek");
        for col in ["pkts_dropped", "pkts_link", "pkt_lag", "pkts_filtered"] {
            assert_eq!(row[col], "-", "{col} is set only reading live");
        }
        for col in ["dns_requests", "active_dns_requests", "reassem_file_size", "reassem_unknown_size"] {
            assert_eq!(row[col], "0", "{col}");
        }
        assert!(row["mem"].parse::<u64>().unwrap() > 0, "{row:?}");
        assert_eq!(row["events_proc"], row["events_queued"]);
    }
    assert!(stats_sum(&rows, "timers") > 0);
    // The records handed on before the end: dns.log's two answered queries, conn.log's timed-out flows.
    assert!(stats_sum(&rows, "events_proc") >= 3, "{rows:?}");
    let text = std::fs::read_to_string(r.dir.path().join("stats.log")).unwrap();
    assert!(text.contains("#types\ttime\tstring\tcount\tcount\tcount\tcount\tcount\tinterval\tcount\t"), "{text}");
}

/// `Stats::report_interval` as a cluster's threshold or a config file sets it.
#[test]
fn stats_report_interval_is_configurable() {
    let (p, first) = stats_trace();
    let r = run(
        &p,
        &["--detect", "stats", "--detect-config", "detect.yaml"],
        &[("detect.yaml", "stats: { report_interval: 600 }\n")],
    );
    let rows = r.log("stats");
    let ts = |t: f64| format!("{t:.6}");
    assert_eq!(stats_column(&rows, "ts"), [ts(first), ts(T0 + 620.0), ts(T0 + 700.01)], "{}", r.stderr);
    assert_eq!(stats_column(&rows, "pkts_proc"), ["1", "19", "3"]);
}

/// With analysis threads the rows sum the threads' engines, which report after each batch: every packet is
/// counted once over the rows, whatever the rows' times.
#[test]
fn stats_with_analysis_threads_count_every_packet_once() {
    let (p, _) = stats_trace();
    let r = run(&p, &["--detect", "stats", "--threads", "3"], &[]);
    let rows = r.log("stats");
    assert!(rows.len() >= 3, "{rows:?}");
    assert_eq!(stats_sum(&rows, "pkts_proc"), 23, "{rows:?}");
    assert_eq!(stats_sum(&rows, "tcp_conns"), 1);
    assert_eq!(stats_sum(&rows, "udp_conns"), 3);
    assert_eq!(stats_sum(&rows, "icmp_conns"), 1);
    assert_eq!(rows.last().map(|r| r["ts"].clone()), Some(format!("{:.6}", T0 + 700.01)));
}

/// In a cluster each worker writes its own rows (peer = its name) about the packets it analysed; together they
/// count the trace once. The manager and the proxies write rows of their own too, as Zeek's do: memory, and no
/// packets or connections (their clock here is the cluster's, not the trace's).
#[test]
fn cluster_stats_rows_are_per_node() {
    let (p, _) = stats_trace();
    let c = run_cluster(&p, &["--detect", "stats"], &[]);
    let rows = c.log("stats");
    let mut peers: Vec<String> = stats_column(&rows, "peer");
    peers.sort();
    peers.dedup();
    assert_eq!(peers, ["manager", "proxy-1", "proxy-2", "worker-1", "worker-2", "worker-3"], "{}", c.stderr);
    let workers: Vec<_> = rows.iter().filter(|r| r["peer"].starts_with("worker-")).cloned().collect();
    assert_eq!(stats_sum(&workers, "pkts_proc"), 23, "{workers:?}");
    let conns = ["tcp_conns", "udp_conns", "icmp_conns"].map(|col| stats_sum(&workers, col));
    assert_eq!(conns, [1, 3, 1]);
    for w in ["worker-1", "worker-2", "worker-3"] {
        let own: Vec<_> = rows.iter().filter(|r| r["peer"] == w).collect();
        assert_eq!(own.len(), 4, "{w}: the first packet's row, two on schedule, the end's: {own:?}");
    }
    for r in rows.iter().filter(|r| !r["peer"].starts_with("worker-")) {
        for col in ["pkts_proc", "bytes_recv", "tcp_conns", "active_tcp_conns", "timers"] {
            assert_eq!(r[col], "0", "{col}: {r:?}");
        }
        assert_eq!(r["pkts_dropped"], "-");
        assert!(r["mem"].parse::<u64>().unwrap() > 0, "{r:?}");
    }
}

/// Zeek's btest scripts.policy.misc.stats reads wikipedia.pcap (an oracle case's trace) through a filter that keeps
/// only `pkts_proc`: its baseline rows are 1 (the first packet, when zeek_init's check runs) and 135 (the rest,
/// at termination). The full rows' times are the first and the last packet's.
#[test]
fn stats_on_wikipedia_match_zeeks_btest_baseline() {
    let Some(root) = oracle_root() else { return };
    let trace = root.join("wikipedia/wikipedia.pcap");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(node_binary())
        .arg("-r")
        .arg(&trace)
        .args(["--detect", "stats", "--logdir"])
        .arg(dir.path())
        .output()
        .expect("run zeek-node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = read_log(&dir.path().join("stats.log"));
    assert_eq!(stats_column(&rows, "pkts_proc"), ["1", "135"]);
    assert_eq!(stats_column(&rows, "ts"), ["1300475167.096535", "1300475173.475401"]);
    // Zeek's conn.log of the same trace (opt.basic) has 34 connections, none of them ICMP.
    let conns = read_log(&root.join("wikipedia/conn.log"));
    let tcp = conns.iter().filter(|c| c["proto"] == "tcp").count() as u64;
    let udp = conns.iter().filter(|c| c["proto"] == "udp").count() as u64;
    assert_eq!((stats_sum(&rows, "tcp_conns"), stats_sum(&rows, "udp_conns")), (tcp, udp));
    assert_eq!(stats_sum(&rows, "icmp_conns"), 0);
}
