//! Live capture end to end: two network namespaces joined by a veth pair; tcpreplay sends an oracle trace into
//! one end, `zeek-node -i` captures on the other (libpcap, then AF_PACKET with two threads), and the logs must
//! equal those of `zeek-node -r` on the same trace (uids, timestamps and timing-derived intervals masked: the
//! replay has its own clock). The capture statistics must be reported. A second test replays an FTP trace into four
//! analysis threads, which must find the data channels of one another's control connections; a third into a
//! cluster's two workers, whose packet counters `ctl netstats` must show while they still capture; a fourth scrapes
//! a standalone sensor's metrics and health endpoints while it captures.
//!
//! Needs root (network namespaces, raw sockets) plus `ip` and `tcpreplay` (scripts/setup.sh installs them).
//! Without them the test is skipped with a loud message, unless `ZEEK_LIVE_REQUIRED=1` makes that a failure.
//! Nothing outside the two namespaces it creates is touched; they are removed in `Drop`, even on failure.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::frames::{MIRROR_SOURCE, Mirror, mirrored, oracle_frames};
use support::netns::{VethPair, missing_prerequisite, skip_or_fail};
use support::{masked_records, node_binary, oracle_root, packets_by_thread, record_diff, trace_of, write_pcap};
use zeek_node::capture::{Next, PcapSource};

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
    let Some((net, trace, offline)) = prepare(CASE, "lc") else { return };
    for (label, iface, threads) in capture_paths(&net) {
        let live = tempfile::tempdir().expect("temp dir");
        let stderr = capture_while_replaying(&net, &iface, threads, live.path(), &trace, REPLAY_PPS);
        let stats = capture_stats(&stderr)
            .unwrap_or_else(|| panic!("{label}: no capture statistics in zeek-node's output:\n{stderr}"));
        println!("live_capture {label}: received={} dropped={}", stats.0, stats.1);
        assert!(stats.0 > 0, "{label}: no packets received:\n{stderr}");
        assert_same_logs(label, offline.path(), live.path(), LOGS, MASKED, &stderr);
    }
}

/// A capture link that goes down and comes back (a SPAN port or a NIC that resets) does not end the capture: the
/// node says so, waits, captures again when the link is back, and the logs of what was replayed afterwards equal the
/// offline read's. libpcap, then AF_PACKET with two threads.
#[test]
fn live_capture_survives_its_link_going_down() {
    let Some((net, trace, offline)) = prepare(CASE, "ld") else { return };
    for (label, iface, threads) in capture_paths(&net) {
        let live = tempfile::tempdir().expect("temp dir");
        let args = ["-i", iface.as_str(), "-C", "--threads", threads];
        let flap = |_: &str| {
            net.set_link(&net.b_ns, &net.b_iface, false).expect("link down");
            std::thread::sleep(Duration::from_millis(600));
            net.set_link(&net.b_ns, &net.b_iface, true).expect("link up");
            std::thread::sleep(Duration::from_millis(300));
        };
        let hooks = Hooks { before_replay: &flap, while_capturing: &|_| {} };
        let stderr = replay_into(&net, &args, "capturing with", live.path(), &trace, REPLAY_PPS, &hooks);
        assert!(stderr.contains("the capture interface went down"), "{label}: the flap is reported:\n{stderr}");
        assert!(stderr.contains("the capture interface is back up"), "{label}: and the return:\n{stderr}");
        assert_same_logs(label, offline.path(), live.path(), LOGS, MASKED, &stderr);
    }
}

/// `--buffer-size` sizes the capture's buffers: each AF_PACKET socket's ring exactly (its mapping, one per thread,
/// in /proc/PID/maps), libpcap's by its kernel buffer; the logs stay those of the offline read.
#[test]
fn live_capture_buffers_are_the_size_asked_for() {
    let Some((net, trace, offline)) = prepare(CASE, "lb") else { return };
    for (label, iface, threads) in capture_paths(&net) {
        let live = tempfile::tempdir().expect("temp dir");
        let args = ["-i", iface.as_str(), "-C", "--threads", threads, "--buffer-size", "4"];
        let rings = std::cell::RefCell::new(Vec::new());
        let hooks =
            Hooks { before_replay: &|_| *rings.borrow_mut() = socket_mappings_mib(&iface), while_capturing: &|_| {} };
        let stderr = replay_into(&net, &args, "capturing with", live.path(), &trace, REPLAY_PPS, &hooks);
        let rings = rings.into_inner();
        if label == "af_packet" {
            assert_eq!(rings, [4, 4], "{label}: one 4 MiB ring per thread:\n{stderr}");
        } else {
            // libpcap rounds its ring to its frames: more than asked, far less than its 64 MiB default.
            assert!(rings.len() == 1 && (4..32).contains(&rings[0]), "{label}: {rings:?} MiB:\n{stderr}");
        }
        assert_same_logs(label, offline.path(), live.path(), LOGS, MASKED, &stderr);
    }
}

/// The /proc folder of the zeek-node process capturing on `iface`.
fn node_proc(iface: &str) -> Option<PathBuf> {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().map(|e| e.path()).find(|dir| {
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.first().is_some_and(|a| a.ends_with(b"zeek-node")) && args.contains(&iface.as_bytes())
    })
}

/// The sizes (MiB) of the socket mappings of the zeek-node process capturing on `iface`: its packet rings.
fn socket_mappings_mib(iface: &str) -> Vec<u64> {
    let maps = node_proc(iface).and_then(|dir| std::fs::read_to_string(dir.join("maps")).ok()).unwrap_or_default();
    let mut sizes = Vec::new();
    for line in maps.lines().filter(|l| l.contains("socket:[")) {
        let range = line.split_whitespace().next().unwrap_or_default();
        let (start, end) = range.split_once('-').unwrap_or_default();
        let size = u64::from_str_radix(end, 16).unwrap_or(0) - u64::from_str_radix(start, 16).unwrap_or(0);
        sizes.push(size >> 20);
    }
    sizes
}

/// A task's `Cpus_allowed_list` from its /proc status.
fn cpus_allowed(status_dir: &Path) -> String {
    let status = std::fs::read_to_string(status_dir.join("status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or_default().trim().to_string()
}

/// Each thread of the zeek-node process capturing on `iface`: its name, and the CPUs it may run on.
fn threads_and_cpus(iface: &str) -> Vec<(String, String)> {
    let Some(dir) = node_proc(iface) else { return Vec::new() };
    let tasks = std::fs::read_dir(dir.join("task")).into_iter().flatten().flatten().map(|e| e.path());
    let mut threads: Vec<(String, String)> = tasks
        .map(|task| {
            let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default().trim().to_string();
            (name, cpus_allowed(&task))
        })
        .collect();
    threads.sort();
    threads
}

/// `--pin-cpus` pins analysis thread i to the i-th CPU of the list, and only the analysis threads: each is named
/// `analysis-<i>` (for `top -H`), the sharded libpcap run's and AF_PACKET's alike; a single-threaded run pins its
/// one thread. The CPUs are this machine's in reverse, so the order is seen; the logs stay the offline read's.
#[test]
fn analysis_threads_are_named_and_pinned_to_the_cpus_asked_for() {
    let Some((net, trace, offline)) = prepare(CASE, "pc") else { return };
    let allowed = cpus_allowed(Path::new("/proc/self"));
    let mut cpus: Vec<usize> = Vec::new();
    for part in allowed.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus.reverse();
    let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
    let list = list.join(",");
    let runs = [
        ("libpcap, one thread", net.b_iface.clone(), "1"),
        ("libpcap, two threads", net.b_iface.clone(), "2"),
        ("af_packet", format!("af_packet::{}", net.b_iface), "2"),
    ];
    for (label, iface, threads) in runs {
        let live = tempfile::tempdir().expect("temp dir");
        let args = ["-i", iface.as_str(), "-C", "--threads", threads, "--pin-cpus", list.as_str()];
        let n: usize = threads.parse().unwrap();
        let pinned: Vec<(String, String)> = if n == 1 {
            // The process's own thread analyses.
            vec![("zeek-node".to_string(), cpus[0].to_string())]
        } else {
            (0..n).map(|i| (format!("analysis-{i}"), cpus[i % cpus.len()].to_string())).collect()
        };
        let seen = std::cell::RefCell::new(Vec::new());
        let hooks = Hooks {
            before_replay: &|_| {
                // The threads start just after the run says it captures: wait (bounded) until they have.
                let started = |t: &Vec<(String, String)>| pinned.iter().all(|want| t.contains(want));
                *seen.borrow_mut() =
                    support::nodes::wait_for(Duration::from_secs(5), || Some(threads_and_cpus(&iface)).filter(started))
                        .unwrap_or_else(|| threads_and_cpus(&iface));
            },
            while_capturing: &|_| {},
        };
        let stderr = replay_into(&net, &args, "capturing with", live.path(), &trace, REPLAY_PPS, &hooks);
        let seen = seen.into_inner();
        for want in &pinned {
            assert!(seen.contains(want), "{label}: {want:?} among the threads {seen:?}:\n{stderr}");
        }
        assert!(
            seen.iter().filter(|t| !pinned.contains(t)).all(|(_, cpus)| *cpus == allowed),
            "{label}: only the analysis threads are pinned: {seen:?} (allowed {allowed})"
        );
        assert!(stderr.contains("analysis threads pinned"), "{label}:\n{stderr}");
        assert_same_logs(label, offline.path(), live.path(), LOGS, MASKED, &stderr);
    }
}

/// stats.log reading live (policy/misc/stats.zeek): the columns Zeek sets only then (`pkts_dropped`, `pkts_link`,
/// `pkt_lag`) are set, from libpcap's counters and the AF_PACKET sockets' alike; every packet replayed is counted
/// once over the rows.
#[test]
fn live_stats_rows_carry_the_captures_columns() {
    let Some((net, trace, _offline)) = prepare(CASE, "ls") else { return };
    let sent = pcap_records(&trace);
    for (label, iface, threads) in capture_paths(&net) {
        let live = tempfile::tempdir().expect("temp dir");
        let args = ["-i", iface.as_str(), "-C", "--threads", threads, "--detect", "stats"];
        let hooks = Hooks { before_replay: &|_| {}, while_capturing: &|_| {} };
        let stderr = replay_into(&net, &args, "capturing with", live.path(), &trace, REPLAY_PPS, &hooks);
        let text = std::fs::read_to_string(live.path().join("stats.log")).unwrap_or_default();
        let fields: Vec<&str> =
            text.lines().find_map(|l| l.strip_prefix("#fields\t")).unwrap_or("").split('\t').collect();
        let rows: Vec<std::collections::HashMap<&str, &str>> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| fields.iter().copied().zip(l.split('\t')).collect())
            .collect();
        assert!(rows.len() >= 2, "{label}: a row at the first packet and one at the end:\n{text}\n{stderr}");
        let mut processed = 0u64;
        for r in &rows {
            assert_eq!(r["peer"], "zeek", "{label}");
            for col in ["pkts_dropped", "pkts_link"] {
                assert!(r[col].parse::<u64>().is_ok(), "{label}: {col} is set reading live: {r:?}");
            }
            assert!(r["pkt_lag"].parse::<f64>().is_ok_and(|lag| lag >= 0.0), "{label}: {r:?}");
            assert_eq!(r["pkts_filtered"], "-", "{label}");
            processed += r["pkts_proc"].parse::<u64>().expect("pkts_proc");
        }
        assert!(processed >= sent, "{label}: {processed} packets counted, {sent} replayed:\n{text}");
    }
}

/// An FTP trace whose four data channels hash to other analysis threads than their control connection (most of
/// them, with four threads); each thread analyses its share.
const FTP_CASE: &str = "ftp-ipv4";
/// Also masked: file ids come from each thread's own generator, and ftp.log's `mime_type` and `fuid` are set by
/// the data channel's file, which a thread does not report back to the control connection's thread (nor does a
/// Zeek cluster's worker; `zeek-node cluster -r` does, docs/CLUSTER.md).
const FTP_MASKED: &[&str] = &["ts", "uid", "fuid", "tunnel_parents", "duration", "rtt", "mime_type"];

/// 1 ms between packets: an AF_PACKET block (handed over after 20 ms when partly filled) holds a `227` reply and the
/// data connection's SYN together, so the thread that gets the SYN often analyses it before the announcement is
/// shared. (In the trace itself the SYN follows the reply by 80-280 us.) The engines keep such new connections and
/// analyse them again when the expectation arrives, so the result must not depend on who came first.
const FTP_REPLAY_PPS: &str = "1000";

/// Live, analysis threads share FTP expectations as a Zeek cluster's workers do: a data connection on another
/// thread than its control connection is still `ftp-data`, and its file is analysed and logged.
#[test]
fn live_ftp_data_channels_are_found_across_analysis_threads() {
    let Some((net, trace, offline)) = prepare(FTP_CASE, "lf") else { return };
    for (label, iface) in [("af_packet", format!("af_packet::{}", net.b_iface)), ("libpcap", net.b_iface.clone())] {
        let live = tempfile::tempdir().expect("temp dir");
        let stderr = capture_while_replaying(&net, &iface, "4", live.path(), &trace, FTP_REPLAY_PPS);
        assert_same_logs(
            label,
            offline.path(),
            live.path(),
            &["conn.log", "files.log", "ftp.log"],
            FTP_MASKED,
            &stderr,
        );
    }
}

/// Live cluster workers share FTP expectations over the cluster (Zeek's `FTP::sync_add_expected_data`): two
/// workers in one AF_PACKET fanout group, each with its share of the flows, find the data channels of the other's
/// control connection.
#[test]
fn live_cluster_workers_find_data_channels_announced_on_another_worker() {
    let Some((net, trace, offline)) = prepare(FTP_CASE, "lk") else { return };
    let live = tempfile::tempdir().expect("temp dir");
    let args = ["cluster", "--workers", "2", "--proxies", "1", "--loggers", "1", "-i", &net.b_iface, "--insecure"];
    let packets = pcap_records(&trace);
    let counted = std::cell::Cell::new(0);
    let netstats = std::cell::RefCell::new(String::new());
    let scraped = std::cell::RefCell::new(Vec::new());
    let at_logger = std::cell::RefCell::new(Vec::new());
    let hooks = Hooks {
        // Ready means capturing: a worker that joins its fanout group later would split the flows then running.
        before_replay: &|seen| {
            let status = ctl(&net, seen, "status");
            let workers: Vec<&str> = status.lines().filter(|l| l.contains(" worker ")).collect();
            assert_eq!(workers.len(), 2, "`ctl status` lists both workers:\n{status}");
            assert!(workers.iter().all(|l| l.ends_with("capturing")), "ready, but not capturing:\n{status}");
        },
        while_capturing: &|seen| {
            counted.set(netstats_packets_reach(&net, seen, packets));
            *netstats.borrow_mut() = ctl(&net, seen, "netstats");
            // Each node's own endpoint, as Prometheus scrapes it: the workers' counters by now, and the manager's.
            let endpoints = metrics_endpoints(seen);
            for (node, url) in endpoints.iter().filter(|(n, _)| n.starts_with("worker") || n == "manager") {
                scraped.borrow_mut().push((node.clone(), scrape_in(&net, &net.b_ns, url)));
            }
            // The workers ship what they logged within a second, not when a chunk of records fills: the logger's
            // ftp.log has the sessions' commands while the workers still capture.
            let logger_ftp = live.path().join("cluster/logs/logger-1/ftp.log");
            let records = support::nodes::wait_for(Duration::from_secs(5), || {
                let r = masked_records(&logger_ftp, FTP_MASKED);
                (!r.is_empty()).then_some(r)
            });
            *at_logger.borrow_mut() = records.unwrap_or_default();
        },
    };
    let stderr = replay_into(&net, &args, "cluster ready", live.path(), &trace, FTP_REPLAY_PPS, &hooks);
    let scraped = scraped.into_inner();
    let workers: Vec<&Scraped> = scraped.iter().filter(|(n, _)| n.starts_with("worker")).map(|(_, m)| m).collect();
    assert_eq!(workers.len(), 2, "both workers' endpoints listed and scraped: {scraped:?}\n{stderr}");
    for m in &workers {
        assert_eq!((m.status, m.value("zeek_capturing"), m.value("zeek_ready")), (200, 1, 1), "{m:?}");
        assert!(m.body.contains("role=\"worker\""), "{}", m.body);
        assert_eq!(m.value("zeek_thread_packets_total"), m.value("zeek_packets_total"), "one thread:\n{}", m.body);
    }
    let by_workers: u64 = workers.iter().map(|m| m.value("zeek_packets_total")).sum();
    assert_eq!(by_workers, packets, "the workers' /metrics count every replayed packet while capturing: {workers:?}");
    let at_logger = at_logger.into_inner();
    let want_ftp = masked_records(&offline.path().join("ftp.log"), FTP_MASKED);
    assert!(!at_logger.is_empty(), "no ftp.log record reached the logger while the workers ran:\n{stderr}");
    assert!(at_logger.iter().all(|r| want_ftp.contains(r)), "{at_logger:?}");
    let manager = scraped.iter().find(|(n, _)| n == "manager").map(|(_, m)| m).expect("the manager's endpoint");
    assert!(manager.value("zeek_ready") == 1 && manager.value("zeek_view_epoch") >= 1, "{manager:?}");
    let counted = counted.get();
    assert!(
        counted >= packets,
        "while capturing, `ctl netstats` counted {counted} packets of the {packets} replayed:\n{stderr}"
    );
    // The workers' capture-loss estimates reach `ctl` too; the trace has no content gap, so none is above zero.
    let netstats = netstats.into_inner();
    let losses: Vec<&str> = netstats.split_whitespace().filter_map(|w| w.strip_prefix("capture_loss=")).collect();
    assert_eq!(losses.len(), 2, "both workers:\n{netstats}");
    assert!(losses.contains(&"0.000%") && losses.iter().all(|l| ["0.000%", "-"].contains(l)), "{netstats}");
    let logs = ["conn.log", "files.log", "ftp.log"];
    assert_same_logs("cluster", offline.path(), live.path(), &logs, FTP_MASKED, &stderr);
}

/// A sensor fed by a traffic mirror, live: the oracle trace wrapped as a VXLAN mirror sends it, replayed into two
/// AF_PACKET analysis threads. The fanout program must follow VXLAN into the flows: the mirror's one outer flow is
/// spread over both threads (each keeps an outer connection of its own), and with a source port per direction (as
/// a Linux VXLAN endpoint sends) both halves of each connection still reach one thread, so the inner logs equal
/// those of `zeek-node -r` on the wrapped trace.
#[test]
fn live_af_packet_follows_a_mirror_into_its_flows() {
    let Some((net, _, _)) = prepare(CASE, "lm") else { return };
    // The wrapped frames are 50 bytes longer than the trace's full-size ones.
    for (ns, iface) in [(&net.a_ns, &net.a_iface), (&net.b_ns, &net.b_iface)] {
        net.exec(ns, &["ip", "link", "set", iface, "mtu", "9000"]).expect("raise the veth MTU");
    }
    let frames = oracle_frames(CASE).expect("the oracle trace");
    let dir = tempfile::tempdir().expect("temp dir");
    for mirror in [Mirror::VxlanPortPerDirection, Mirror::Vxlan] {
        let wrapped: Vec<_> = frames.iter().filter_map(|(ts, f)| Some((*ts, mirrored(mirror, f)?))).collect();
        let trace = dir.path().join(format!("{mirror:?}.pcap"));
        write_pcap(&trace, &wrapped);
        let offline = dir.path().join(format!("{mirror:?}-offline"));
        let out = Command::new(node_binary()).arg("-C").arg("-r").arg(&trace).arg("--logdir").arg(&offline).output();
        assert!(out.expect("runs zeek-node -r").status.success());
        let live = tempfile::tempdir().expect("temp dir");
        let iface = format!("af_packet::{}", net.b_iface);
        let stderr = capture_while_replaying(&net, &iface, "2", live.path(), &trace, REPLAY_PPS);
        let outer = |r: &String| r.contains(&format!("\t{MIRROR_SOURCE}\t"));
        let inner_conns = |logs: &Path| -> Vec<String> {
            masked_records(&logs.join("conn.log"), MASKED).into_iter().filter(|r| !outer(r)).collect()
        };
        let (want, got) = (inner_conns(&offline), inner_conns(live.path()));
        assert!(!want.is_empty(), "{mirror:?}: no connections in the offline read");
        let diff = record_diff("-r", &want, "af_packet", &got);
        assert!(diff.is_empty(), "{mirror:?}: inner connections differ from the offline read\n{diff}\n{stderr}");
        assert_same_logs(&format!("{mirror:?}"), &offline, live.path(), &["dns.log", "http.log"], MASKED, &stderr);
        if let Mirror::Vxlan = mirror {
            let outer_rows = masked_records(&live.path().join("conn.log"), MASKED).into_iter().filter(outer).count();
            assert!(
                outer_rows >= 2,
                "the mirror's flows stayed on one thread ({outer_rows} outer connection):\n{stderr}"
            );
            let by_thread = packets_by_thread(&stderr);
            assert!(
                by_thread.len() == 2 && by_thread.iter().all(|&n| n > 0),
                "both sockets get a share: {by_thread:?}"
            );
        }
    }
}

/// A standalone sensor watched as Prometheus and a kubelet watch it (`--metrics-addr`): while it captures, with two
/// AF_PACKET threads, `/healthz` and `/readyz` answer 200 and `/metrics` (OpenMetrics text) moves before the node
/// stops: every replayed packet counted, split over both threads, as many connections as the offline read logs,
/// nothing dropped. With the watchdog's limit at two seconds, neither the idle link before the replay nor the
/// capture counts as a stall. Scraped with curl inside the capture namespace; the logs must still equal the offline read's.
#[test]
fn live_sensor_serves_its_metrics_while_capturing() {
    let Some((net, trace, offline)) = prepare(CASE, "mx") else { return };
    let sent = pcap_records(&trace);
    let offline_conns = masked_records(&offline.path().join("conn.log"), MASKED).len() as u64;
    let live = tempfile::tempdir().expect("temp dir");
    let iface = format!("af_packet::{}", net.b_iface);
    let args = ["-i", &iface, "-C", "--threads", "2", "--metrics-addr", "127.0.0.1:9911", "--stall-limit", "2"];
    let scrape = |path: &str| scrape_in(&net, &net.b_ns, &format!("http://127.0.0.1:9911{path}"));
    let before = std::cell::RefCell::new(Vec::new());
    let during = std::cell::RefCell::new(None);
    let hooks = Hooks {
        before_replay: &|_| {
            // Longer than the watchdog's limit on an idle link.
            std::thread::sleep(Duration::from_millis(2500));
            before.borrow_mut().extend(["/healthz", "/readyz", "/metrics"].map(scrape));
        },
        while_capturing: &|_| {
            // The counters reach the endpoint every half second: wait (bounded) until every packet is in.
            let settled = support::nodes::wait_for(Duration::from_secs(10), || {
                let m = scrape("/metrics");
                (m.value("zeek_packets_total") >= sent).then_some(m)
            });
            *during.borrow_mut() = Some((settled.unwrap_or_else(|| scrape("/metrics")), scrape("/healthz")));
        },
    };
    let stderr = replay_into(&net, &args, "capturing with", live.path(), &trace, REPLAY_PPS, &hooks);

    let before = before.into_inner();
    let [health, ready, idle] = before.as_slice() else { panic!("three scrapes before the replay:\n{stderr}") };
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "/healthz\n{stderr}");
    assert_eq!(ready.status, 200, "/readyz once the capture is open: {ready:?}\n{stderr}");
    assert_eq!((idle.value("zeek_capturing"), idle.value("zeek_ready")), (1, 1), "{idle:?}");
    assert_eq!(idle.value("zeek_packets_total"), 0, "nothing was replayed yet: {idle:?}");

    let (m, health) = during.into_inner().expect("scraped while capturing");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "/healthz while capturing\n{stderr}");
    assert_eq!(m.value("zeek_stalled_threads"), 0, "{}", m.body);
    assert_eq!(m.status, 200, "{m:?}");
    assert!(m.content_type.starts_with("application/openmetrics-text"), "{}", m.content_type);
    assert!(m.body.ends_with("# EOF\n"), "an OpenMetrics exposition ends in # EOF:\n{}", m.body);
    assert_eq!(m.value("zeek_packets_total"), sent, "every replayed packet, counted while capturing:\n{}", m.body);
    let by_thread = m.values("zeek_thread_packets_total");
    assert!(
        by_thread.len() == 2 && by_thread.iter().all(|&n| n > 0) && by_thread.iter().sum::<u64>() == sent,
        "each thread's share, adding up to the packets: {by_thread:?}\n{}",
        m.body
    );
    assert_eq!(m.value("zeek_connections_total"), offline_conns, "connections seen:\n{}", m.body);
    assert_eq!(m.value("zeek_capture_drops"), 0, "{}", m.body);
    assert!(m.body.contains("role=\"standalone\""), "{}", m.body);
    assert_same_logs("metrics", offline.path(), live.path(), LOGS, MASKED, &stderr);
}

/// `zeek-node cluster`'s list of its nodes' metrics endpoints (name, URL), from the line it logs once ready.
fn metrics_endpoints(stderr: &str) -> Vec<(String, String)> {
    let line = stderr.lines().find(|l| l.contains("metrics (and /healthz, /readyz):")).unwrap_or("");
    line.split_whitespace()
        .filter_map(|w| w.split_once("=http://"))
        .map(|(node, rest)| (node.to_string(), format!("http://{rest}")))
        .collect()
}

/// GETs `url` with curl inside namespace `ns`.
fn scrape_in(net: &VethPair, ns: &str, url: &str) -> Scraped {
    let out = net.command(ns, "curl").args(["-s", "-i", "--max-time", "5", url]).output().expect("runs curl");
    Scraped::parse(&String::from_utf8_lossy(&out.stdout))
}

/// A sensor that runs for days: its records reach the disk while it runs (within a second, not when its buffers
/// fill or it stops), and with `--rotate` its logs are archived into dated folders on the interval, each record in
/// exactly one file; logs an earlier run left are archived at start instead of overwritten, and with `--retention`
/// archives older than it are deleted.
#[test]
fn live_sensor_writes_while_running_and_rotates_its_logs() {
    let Some((net, trace, offline)) = prepare(CASE, "lr") else { return };
    // Without rotation: dns.log has records while the node still captures (libpcap, and AF_PACKET's threads).
    let want_dns = masked_records(&offline.path().join("dns.log"), MASKED);
    for (label, iface, threads) in capture_paths(&net) {
        let live = tempfile::tempdir().expect("temp dir");
        let args = ["-i", iface.as_str(), "-C", "--threads", threads];
        let written = std::cell::RefCell::new(Vec::new());
        let hooks = Hooks {
            before_replay: &|_| {},
            while_capturing: &|_| {
                let records = support::nodes::wait_for(Duration::from_secs(5), || {
                    let r = masked_records(&live.path().join("dns.log"), MASKED);
                    (!r.is_empty()).then_some(r)
                });
                *written.borrow_mut() = records.unwrap_or_default();
            },
        };
        let stderr = replay_into(&net, &args, "capturing with", live.path(), &trace, REPLAY_PPS, &hooks);
        let written = written.into_inner();
        assert!(!written.is_empty(), "{label}: dns.log had no record on disk while the sensor ran:\n{stderr}");
        assert!(written.iter().all(|r| want_dns.contains(r)), "{label}: {written:?}");
    }

    // With rotation every second, and a conn.log an earlier run left behind.
    let rotated = tempfile::tempdir().expect("temp dir");
    let leftover = "#path\tconn\n#open\t2020-01-02-03-04-05\nleft by an earlier run\n";
    std::fs::write(rotated.path().join("conn.log"), leftover).expect("write the leftover");
    // An archive a month old, past the retention.
    let expired = rotated.path().join("2020-01-01/dns.00:00:00-01:00:00.log");
    std::fs::create_dir_all(expired.parent().unwrap()).expect("mkdir");
    let month_ago = std::time::SystemTime::now() - Duration::from_secs(30 * 86_400);
    std::fs::File::create(&expired).and_then(|f| f.set_modified(month_ago)).expect("write the old archive");
    let args = ["-i", net.b_iface.as_str(), "-C", "--rotate", "1s", "--retention", "7d"];
    let archived_while_running = std::cell::Cell::new(false);
    let hooks = Hooks {
        before_replay: &|_| {},
        while_capturing: &|_| {
            // A second boundary passes with dns.log open: it is archived while the sensor runs.
            let archived = support::nodes::wait_for(Duration::from_secs(5), || {
                support::nodes::log_files(rotated.path(), "dns.")
                    .into_iter()
                    .find(|f| f.parent() != Some(rotated.path()))
            });
            archived_while_running.set(archived.is_some());
        },
    };
    let stderr = replay_into(&net, &args, "capturing with", rotated.path(), &trace, REPLAY_PPS, &hooks);
    assert!(archived_while_running.get(), "no dns.log archived while the sensor ran:\n{stderr}");
    assert!(!expired.exists() && !rotated.path().join("2020-01-01").exists(), "--retention 7d:\n{stderr}");
    let kept = rotated.path().join("2020-01-02");
    let kept: Vec<_> = support::nodes::log_files(&kept, "conn.03:04:05-");
    assert_eq!(kept.len(), 1, "the earlier run's conn.log is archived by its #open time:\n{stderr}");
    assert_eq!(std::fs::read_to_string(&kept[0]).expect("the archive"), leftover);
    for log in LOGS {
        let stem = log.trim_end_matches(".log");
        let mut got: Vec<String> = support::nodes::log_files(rotated.path(), &format!("{stem}."))
            .iter()
            .filter(|f| !f.starts_with(rotated.path().join("2020-01-02")))
            .flat_map(|f| masked_records(f, MASKED))
            .collect();
        let mut want = masked_records(&offline.path().join(log), MASKED);
        got.sort();
        want.sort();
        let diff = record_diff("-r", &want, "rotated", &got);
        assert!(
            diff.is_empty(),
            "{log}: the archives and the current file together differ from the offline read\n{diff}"
        );
    }
}

/// One answer of the metrics endpoint, as curl -i prints it.
#[derive(Debug)]
struct Scraped {
    status: u16,
    content_type: String,
    body: String,
}

impl Scraped {
    fn parse(response: &str) -> Scraped {
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let content_type = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        Scraped { status, content_type, body: body.to_string() }
    }

    /// The values of every sample of metric `name` (any labels).
    fn values(&self, name: &str) -> Vec<u64> {
        self.body
            .lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect()
    }

    /// The value of metric `name`, 0 when it has no sample.
    fn value(&self, name: &str) -> u64 {
        self.values(name).iter().sum()
    }
}

/// The two ways a node captures on the capture namespace's end: libpcap with one thread, and AF_PACKET with two
/// (label, `-i` argument, threads).
fn capture_paths(net: &VethPair) -> [(&'static str, String, &'static str); 2] {
    [("libpcap", net.b_iface.clone(), "1"), ("af_packet", format!("af_packet::{}", net.b_iface), "2")]
}

/// Packets in a trace (what tcpreplay sends), read with the node's own capture reader.
fn pcap_records(trace: &Path) -> u64 {
    let mut source = PcapSource::open_file(trace, None).expect("opens the trace");
    let mut records = 0;
    while let Next::Packet(_) = source.next_packet().expect("reads the trace") {
        records += 1;
    }
    records
}

/// Polls `zeek-node ctl netstats` in the capture namespace while the cluster still captures, until its workers
/// together counted `packets` (bounded); returns the last sum. The workers publish their counters while they run:
/// `netstats` and the metrics of a capture that runs for days must move before it stops.
fn netstats_packets_reach(net: &VethPair, stderr: &str, packets: u64) -> u64 {
    let mut sum = 0;
    support::nodes::wait_for(Duration::from_secs(15), || {
        sum = ctl(net, stderr, "netstats")
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("packets="))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum();
        (sum >= packets).then_some(())
    });
    sum
}

/// What `zeek-node ctl CMD` prints in the capture namespace about the cluster whose ready line is in `stderr`.
fn ctl(net: &VethPair, stderr: &str, cmd: &str) -> String {
    let layout = stderr
        .split("(layout ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the cluster's ready line names its layout:\n{stderr}"));
    let out = net
        .command(&net.b_ns, node_binary())
        .args(["ctl", cmd, "--layout", layout, "--insecure"])
        .output()
        .expect("runs zeek-node ctl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The trace of `case`, a fresh veth pair, and the logs of `zeek-node -r` on the trace; `None` (after a loud
/// message, or a failure when `ZEEK_LIVE_REQUIRED=1`) when the machine cannot run the test.
fn prepare(case: &str, tag: &str) -> Option<(VethPair, std::path::PathBuf, tempfile::TempDir)> {
    if let Some(reason) = missing_prerequisite(&["ip", "tcpreplay"]) {
        skip_or_fail(TEST, &reason);
        return None;
    }
    let Some(trace) = oracle_root().and_then(|root| trace_of(&root.join(case))) else {
        skip_or_fail(TEST, &format!("oracle case {case} not found (set ZEEK_ORACLE_DIR)"));
        return None;
    };
    let net = match VethPair::create(tag) {
        Ok(net) => net,
        Err(e) => {
            skip_or_fail(TEST, &format!("cannot create network namespaces: {e}"));
            return None;
        }
    };
    let offline = tempfile::tempdir().expect("temp dir");
    let out = Command::new(node_binary()).arg("-r").arg(&trace).arg("-C").arg("--logdir").arg(offline.path()).output();
    let out = out.expect("runs zeek-node -r");
    assert!(out.status.success(), "zeek-node -r failed: {}", String::from_utf8_lossy(&out.stderr));
    Some((net, trace, offline))
}

/// Every record of each of `logs` in `live` equals the offline read's, `masked` columns aside.
fn assert_same_logs(label: &str, offline: &Path, live: &Path, logs: &[&str], masked: &[&str], stderr: &str) {
    for log in logs {
        let want = masked_records(&offline.join(log), masked);
        let got = masked_records(&live.join(log), masked);
        assert!(!want.is_empty(), "{log}: the offline read wrote no records");
        let diff = record_diff("-r", &want, label, &got);
        let text = std::fs::read_to_string(live.join(log)).unwrap_or_default();
        assert!(
            diff.is_empty(),
            "{label}: {log} differs from the offline read\n{diff}\nthe {label} {log}:\n{text}\nzeek-node said:\n{stderr}"
        );
    }
}

/// Starts `zeek-node -i` in the capture namespace (b), waits until it captures, replays the trace, stops it with
/// SIGINT and returns what it wrote on stderr.
fn capture_while_replaying(
    net: &VethPair,
    iface: &str,
    threads: &str,
    logdir: &Path,
    trace: &Path,
    pps: &str,
) -> String {
    let args = ["-i", iface, "-C", "--threads", threads];
    replay_into(
        net,
        &args,
        "capturing with",
        logdir,
        trace,
        pps,
        &Hooks { before_replay: &|_| {}, while_capturing: &|_| {} },
    )
}

/// What a test checks around the replay, each given the node's stderr so far.
struct Hooks<'a> {
    before_replay: &'a dyn Fn(&str),
    while_capturing: &'a dyn Fn(&str),
}

/// Starts `zeek-node ARGS --logdir LOGDIR` in the capture namespace (b), waits for `ready_line` on its stderr,
/// replays the trace at `pps` packets/s (between the hooks), stops the node with SIGINT and returns what it wrote
/// on stderr.
fn replay_into(
    net: &VethPair,
    args: &[&str],
    ready_line: &str,
    logdir: &Path,
    trace: &Path,
    pps: &str,
    hooks: &Hooks,
) -> String {
    let iface = args.join(" ");
    let mut node = net
        .command(&net.b_ns, node_binary())
        .args(args)
        .arg("--logdir")
        .arg(logdir)
        .env("NO_COLOR", "1")
        .env("ZEEK_NODE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts zeek-node");
    let lines = stderr_lines(&mut node);
    let mut stderr = String::new();
    let ready = wait_for_line(&lines, &mut stderr, ready_line, Duration::from_secs(30));
    if !ready {
        let _ = node.kill();
        let _ = node.wait();
        panic!("zeek-node {iface} did not start capturing:\n{stderr}");
    }
    (hooks.before_replay)(&stderr);
    let replay = net
        .command(&net.a_ns, "tcpreplay")
        .args(["-q", "--pps", pps, "-i", &net.a_iface])
        .arg(trace)
        .output()
        .expect("runs tcpreplay");
    // Let the last packets travel through the ring (AF_PACKET retires a partly filled block after 20 ms).
    std::thread::sleep(Duration::from_millis(700));
    (hooks.while_capturing)(&stderr);
    // SAFETY: signals our own child; `ip netns exec` execs zeek-node, so the pid is zeek-node's.
    unsafe { libc::kill(node.id() as libc::pid_t, libc::SIGINT) };
    let exited = wait_with_timeout(&mut node, Duration::from_secs(20));
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        stderr.push_str(&line);
        stderr.push('\n');
    }
    assert!(replay.status.success(), "tcpreplay failed: {}", String::from_utf8_lossy(&replay.stderr));
    assert!(exited.is_some_and(|s| s.success()), "zeek-node {iface} did not stop cleanly on SIGINT:\n{stderr}");
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
