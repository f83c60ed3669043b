//! Live capture end to end: two network namespaces joined by a veth pair; tcpreplay sends an oracle trace into
//! one end, `zeek-node -i` captures on the other (libpcap, then AF_PACKET with two threads), and the logs must
//! equal those of `zeek-node -r` on the same trace (uids, timestamps and timing-derived intervals masked: the
//! replay has its own clock). The capture statistics must be reported.
//!
//! Needs root (network namespaces, raw sockets) plus `ip` and `tcpreplay` (scripts/setup.sh installs them).
//! Without them the test is skipped with a loud message, unless `ZEEK_LIVE_REQUIRED=1` makes that a failure.
//! Nothing outside the two namespaces it creates is touched; they are removed in `Drop`, even on failure.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::netns::{VethPair, missing_prerequisite, skip_or_fail};
use support::{masked_records, node_binary, oracle_root, record_diff, trace_of};

const TEST: &str = "live_capture";

/// conn, dns and http records from a trace with no VLANs, no frame above 1500 bytes and a 6 s span (so no
/// inactivity timeout differs between the trace's clock and the replay's).
const CASE: &str = "wikipedia";
const LOGS: &[&str] = &["conn.log", "dns.log", "http.log"];
/// Columns that depend on uid generation or on the clock of the capture.
const MASKED: &[&str] = &["ts", "uid", "tunnel_parents", "duration", "rtt"];
const REPLAY_PPS: &str = "1000";

#[test]
fn live_capture_matches_offline_read() {
    if let Some(reason) = missing_prerequisite(&["ip", "tcpreplay"]) {
        skip_or_fail(TEST, &reason);
        return;
    }
    let Some(trace) = oracle_root().and_then(|root| trace_of(&root.join(CASE))) else {
        skip_or_fail(TEST, &format!("oracle case {CASE} not found (set ZEEK_ORACLE_DIR)"));
        return;
    };
    let net = match VethPair::create("lc") {
        Ok(net) => net,
        Err(e) => {
            skip_or_fail(TEST, &format!("cannot create network namespaces: {e}"));
            return;
        }
    };

    let offline = tempfile::tempdir().expect("temp dir");
    let out = Command::new(node_binary()).arg("-r").arg(&trace).arg("-C").arg("--logdir").arg(offline.path()).output();
    let out = out.expect("runs zeek-node -r");
    assert!(out.status.success(), "zeek-node -r failed: {}", String::from_utf8_lossy(&out.stderr));

    for (label, iface, threads) in
        [("libpcap", net.b_iface.clone(), 1), ("af_packet", format!("af_packet::{}", net.b_iface), 2)]
    {
        let live = tempfile::tempdir().expect("temp dir");
        let stderr = capture_while_replaying(&net, &iface, threads, live.path(), &trace);
        let stats = capture_stats(&stderr)
            .unwrap_or_else(|| panic!("{label}: no capture statistics in zeek-node's output:\n{stderr}"));
        println!("live_capture {label}: received={} dropped={}", stats.0, stats.1);
        assert!(stats.0 > 0, "{label}: no packets received:\n{stderr}");
        for log in LOGS {
            let want = masked_records(&offline.path().join(log), MASKED);
            let got = masked_records(&live.path().join(log), MASKED);
            assert!(!want.is_empty(), "{log}: the offline read wrote no records");
            let diff = record_diff("-r", &want, label, &got);
            assert!(diff.is_empty(), "{label}: {log} differs from the offline read\n{diff}\nzeek-node said:\n{stderr}");
        }
    }
}

/// Starts `zeek-node -i` in the capture namespace (b), waits until it captures, replays the trace, stops it with
/// SIGINT and returns what it wrote on stderr.
fn capture_while_replaying(net: &VethPair, iface: &str, threads: usize, logdir: &Path, trace: &Path) -> String {
    let mut node = net
        .command(&net.b_ns, node_binary())
        .args(["-i", iface, "-C", "--threads", &threads.to_string(), "--logdir"])
        .arg(logdir)
        .env("NO_COLOR", "1")
        .env("ZEEK_NODE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts zeek-node");
    let lines = stderr_lines(&mut node);
    let mut stderr = String::new();
    let ready = wait_for_line(&lines, &mut stderr, "capturing with", Duration::from_secs(20));
    if !ready {
        let _ = node.kill();
        let _ = node.wait();
        panic!("zeek-node -i {iface} did not start capturing:\n{stderr}");
    }
    let replay = net
        .command(&net.a_ns, "tcpreplay")
        .args(["-q", "--pps", REPLAY_PPS, "-i", &net.a_iface])
        .arg(trace)
        .output()
        .expect("runs tcpreplay");
    // Let the last packets travel through the ring (AF_PACKET retires a partly filled block after 20 ms).
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signals our own child; `ip netns exec` execs zeek-node, so the pid is zeek-node's.
    unsafe { libc::kill(node.id() as libc::pid_t, libc::SIGINT) };
    let exited = wait_with_timeout(&mut node, Duration::from_secs(20));
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        stderr.push_str(&line);
        stderr.push('\n');
    }
    assert!(replay.status.success(), "tcpreplay failed: {}", String::from_utf8_lossy(&replay.stderr));
    assert!(exited.is_some_and(|s| s.success()), "zeek-node -i {iface} did not stop cleanly on SIGINT:\n{stderr}");
    stderr
}

fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, seen: &mut String, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push_str(&line);
                seen.push('\n');
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// (received, dropped) from the node's "capture statistics" log line.
fn capture_stats(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr.lines().find(|l| l.contains("capture statistics"))?;
    let field = |name: &str| -> Option<u64> {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        line[start..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some((field("received")?, field("dropped")?))
}
