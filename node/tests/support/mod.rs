//! Helpers shared by the integration tests that run the `zeek-node` binary on oracle traces
//! (threads.rs, live_capture.rs).

#![allow(dead_code)] // each test crate uses a different subset

pub mod frames;
pub mod netns;
pub mod nodes;

use std::path::{Path, PathBuf};

/// The folder of oracle cases: `ZEEK_ORACLE_DIR`, else `<workspace>/../shared/oracle/dev`.
pub fn oracle_root() -> Option<PathBuf> {
    let dir = match std::env::var_os("ZEEK_ORACLE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/dev"),
    };
    dir.is_dir().then_some(dir)
}

/// The pcap or pcapng trace of an oracle case folder.
pub fn trace_of(case: &Path) -> Option<PathBuf> {
    std::fs::read_dir(case)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "pcap" || e == "pcapng"))
}

pub fn node_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zeek-node"))
}

/// The records of a Zeek TSV log with the named columns replaced by `*`, sorted (write order depends on timers
/// and threads, not on what is logged). A missing file reads as no records.
pub fn masked_records(log: &Path, masked: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let fields: Vec<&str> = text.lines().find_map(|l| l.strip_prefix("#fields\t")).unwrap_or("").split('\t').collect();
    let mut records: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            line.split('\t')
                .enumerate()
                .map(|(i, v)| if fields.get(i).is_some_and(|f| masked.contains(f)) { "*" } else { v })
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect();
    records.sort();
    records
}

/// The packets each analysis thread analysed, from the line `zeek-node` logs at the end of a run with several.
pub fn packets_by_thread(stderr: &str) -> Vec<u64> {
    let line = stderr.lines().find(|l| l.contains("packets by analysis thread")).unwrap_or_else(|| panic!("{stderr}"));
    let list = line.split("packets=[").nth(1).and_then(|rest| rest.split(']').next()).expect("a list of packets");
    list.split(", ").map(|n| n.parse().expect("a count")).collect()
}

/// Describes the records that only one side has (empty when both are the same multiset).
pub fn record_diff(left_name: &str, left: &[String], right_name: &str, right: &[String]) -> String {
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        let mut rest = b.to_vec();
        a.iter()
            .filter(|r| match rest.iter().position(|x| x == *r) {
                Some(i) => {
                    rest.swap_remove(i);
                    false
                }
                None => true,
            })
            .cloned()
            .collect()
    };
    let (only_left, only_right) = (only(left, right), only(right, left));
    if only_left.is_empty() && only_right.is_empty() {
        return String::new();
    }
    format!("only in {left_name}:\n  {}\nonly in {right_name}:\n  {}", only_left.join("\n  "), only_right.join("\n  "))
}

/// Writes frames as a classic little-endian pcap with Ethernet link type.
pub fn write_pcap(path: &Path, frames: &[(f64, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (ts, frame) in frames {
        let secs = ts.trunc() as u32;
        let micros = ((ts - ts.trunc()) * 1e6).round() as u32;
        let len = u32::try_from(frame.len()).expect("test frame fits");
        for field in [secs, micros, len, len] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(frame);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// An Ethernet frame with an IPv4 UDP fragment of datagram `id` from 10.0.`pair`.1 to 10.1.`pair`.2 (checksums
/// are not checked: the runs use `-C`).
fn fragment_frame(pair: u8, id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + data.len()).expect("small fragment").to_be_bytes();
    let flags = (u16::try_from(offset / 8).expect("small offset") | if more { 0x2000 } else { 0 }).to_be_bytes();
    let id = id.to_be_bytes();
    let mut frame = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&[0x45, 0, total[0], total[1], id[0], id[1], flags[0], flags[1], 64, 17, 0, 0]);
    frame.extend_from_slice(&[10, 0, pair, 1, 10, 1, pair, 2]);
    frame.extend_from_slice(data);
    frame
}

/// Two UDP datagrams for each of `pairs` host pairs, a second apart, each sent as two IPv4 fragments of which the
/// second (the last) overlaps the first (Zeek's `fragment_overlap`, logged once per pair), in time order.
pub fn overlapping_fragments(pairs: u8) -> Vec<(f64, Vec<u8>)> {
    let mut datagram = vec![0x9c, 0x40, 0x30, 0x39, 0, 80, 0, 0];
    datagram.resize(80, 0x5a);
    let mut frames = Vec::new();
    for pair in 0..pairs {
        for (n, id) in [(0u16, 7u16), (1, 8)] {
            let ts = 1_000.0 + f64::from(n) + f64::from(pair) / 100.0;
            frames.push((ts, fragment_frame(pair, id, 0, true, &datagram[..64])));
            frames.push((ts + 0.001, fragment_frame(pair, id, 32, false, &datagram[32..80])));
        }
    }
    frames.sort_by(|a, b| a.0.total_cmp(&b.0));
    frames
}

/// GETs `path` from the HTTP endpoint at `addr` (a node's metrics and health endpoints): the status code and the
/// body, or `None` if nothing answers there.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
