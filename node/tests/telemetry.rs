//! Nodes send trace spans to an OpenTelemetry collector when `--otlp-endpoint` is given: a real OTLP/gRPC
//! receiver on loopback gets the standalone analysis span, and from `zeek-node cluster` every node's join span
//! (ready, with its view epoch) and every worker's capture span, whose packet counts add up to the trace's.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::node_binary;
use zeek_telemetry::collector::{Collector, ReceivedSpan};

fn demo_trace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/traces/demo.pcap")
}

/// Spans arrive in batches after the process flushes them; wait (bounded) until `done` holds.
fn spans_until(collector: &Collector, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = collector.spans();
        if done(&spans) || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(span: &ReceivedSpan, key: &str) -> u64 {
    span.attribute(key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{key} missing in {span:?}"))
}

#[test]
fn standalone_and_cluster_nodes_export_spans() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let alone = dir.path().join("standalone");
    std::fs::create_dir_all(&alone).expect("mkdir");
    let out = Command::new(node_binary())
        .arg("-r")
        .arg(demo_trace())
        .arg("--logdir")
        .arg(&alone)
        .args(["--otlp-endpoint", &collector.endpoint()])
        .output()
        .expect("runs");
    assert!(out.status.success(), "standalone failed: {}", String::from_utf8_lossy(&out.stderr));
    let spans = spans_until(&collector, |s| s.iter().any(|s| s.name == "analyse"));
    let analyse = spans.iter().find(|s| s.name == "analyse").expect("the analyse span reached the collector");
    assert_eq!(analyse.service, "zeek-node");
    let packets = count(analyse, "packets");
    assert!(packets > 1000, "the demo trace has thousands of packets, the span says {packets}");

    let out = Command::new(node_binary())
        .args(["cluster", "--workers", "2", "--proxies", "1", "--loggers", "1", "-r"])
        .arg(demo_trace())
        .arg("--logdir")
        .arg(dir.path().join("cluster"))
        .args(["--otlp-endpoint", &collector.endpoint(), "--log-format", "json"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "cluster failed: {}", String::from_utf8_lossy(&out.stderr));
    let nodes = ["manager", "proxy-1", "logger-1", "worker-1", "worker-2"];
    // The nodes' own diagnostics take the format `zeek-node cluster` was given.
    for node in nodes {
        let stderr =
            std::fs::read_to_string(dir.path().join(format!("cluster/cluster/{node}.stderr"))).unwrap_or_default();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty() && lines.iter().all(|l| l.starts_with('{')), "{node} logs JSON lines:\n{stderr}");
    }
    let spans = spans_until(&collector, |s| s.iter().filter(|s| s.name == "node.join").count() >= nodes.len());
    for node in nodes {
        let join = spans
            .iter()
            .find(|s| s.name == "node.join" && s.attribute("node") == Some(node))
            .unwrap_or_else(|| panic!("no node.join span from {node}: {spans:?}"));
        assert_eq!(join.attribute("ready"), Some("true"), "{node} joined but was not ready: {join:?}");
        assert!(count(join, "epoch") >= 1, "{node} has no view epoch: {join:?}");
    }
    let captured: u64 = spans.iter().filter(|s| s.name == "capture").map(|s| count(s, "packets")).sum();
    assert_eq!(captured, packets, "the workers' capture spans count other packets than the trace has");
}

/// A metrics address already in use stops the node at start with an error naming it, before it analyses anything:
/// a sensor that ran without its metrics would be running unobserved.
#[test]
fn a_taken_metrics_address_stops_the_node_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = taken.local_addr().expect("its address").to_string();
    let logs = tempfile::tempdir().expect("temp dir");
    let out = Command::new(node_binary())
        .arg("-r")
        .arg(demo_trace())
        .args(["--metrics-addr", &addr, "--logdir"])
        .arg(logs.path())
        .output()
        .expect("runs zeek-node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the node ran without its metrics endpoint:\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics and health endpoints on {addr}")) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(!logs.path().join("conn.log").exists(), "nothing is analysed before the endpoint is up");
}

/// What a user gets wrong on the command line is said once, clearly: a missing trace, a filter libpcap cannot
/// parse (the cause used to be printed twice, once by the message and once as its source), and CPUs to pin to that
/// this machine does not have (a list written for another sensor). A node that stops on an error also leaves it
/// where Kubernetes reads a container's last words (`ZEEK_TERMINATION_LOG` stands in for /dev/termination-log),
/// which the operator shows in a ZeekCluster's `.status.captures`; clap's own refusals stop before any node runs.
#[test]
fn bad_input_is_reported_once() {
    let logs = tempfile::tempdir().expect("temp dir");
    let last_words = logs.path().join("termination-log");
    for (args, message, cause, node_ran) in [
        (
            vec!["-r", "/nonexistent/trace.pcap"],
            "cannot open /nonexistent/trace.pcap: libpcap error",
            "libpcap error",
            true,
        ),
        (
            vec!["-f", "tcp port"],
            "invalid BPF filter 'tcp port': libpcap error: can't parse filter expression",
            "libpcap error",
            true,
        ),
        (vec!["--pin-cpus", "1000"], "CPU 1000 is not one this process may run on (it may run on 0", "CPU 1000", true),
        (
            vec!["--pin-cpus", "2-x"],
            "'2-x' for '--pin-cpus <CPUS>': expected `auto` or a list of CPU numbers",
            "2-x",
            false,
        ),
    ] {
        let _ = std::fs::remove_file(&last_words);
        let mut command = Command::new(node_binary());
        if args[0] != "-r" {
            command.arg("-r").arg(demo_trace());
        }
        command.env("ZEEK_TERMINATION_LOG", &last_words);
        let out = command.args(&args).arg("--logdir").arg(logs.path()).output().expect("runs zeek-node");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(cause).count(), 1, "{args:?}: the cause once: {stderr}");
        let written = std::fs::read_to_string(&last_words).unwrap_or_default();
        if node_ran {
            assert!(written.starts_with(message.split(':').next().unwrap()) && written.contains(message), "{written}");
            assert_eq!(format!("zeek-node: {written}"), stderr.trim_end().lines().last().unwrap_or_default());
        } else {
            assert_eq!(written, "", "{args:?}");
        }
    }
    assert!(!logs.path().join("conn.log").exists(), "nothing is analysed after bad input");
}

/// Makes each of `logs` in `dir` a FIFO nobody reads yet: the first record's file blocks the thread writing it.
fn blocking_logs(dir: &std::path::Path, logs: &[String]) {
    for name in logs {
        assert!(Command::new("mkfifo").arg(dir.join(name)).status().expect("runs mkfifo").success());
    }
}

/// Reads each of the FIFOs [`blocking_logs`] made, to its end, on threads of their own: the file takes writes again.
fn drain_logs(dir: &std::path::Path, logs: &[String]) -> Vec<std::thread::JoinHandle<String>> {
    logs.iter()
        .map(|name| {
            let fifo = dir.join(name);
            std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read the FIFO"))
        })
        .collect()
}

/// A thread of the packet path stuck on one step (here the log writer, on a log directory whose file blocks like a
/// hung filesystem's) makes `/healthz` fail with the thread's name, so a liveness probe restarts the node instead
/// of leaving a sensor that analyses nothing; it is logged once and counted in `zeek_stalled_threads`. Once the
/// file takes writes again, the run finishes and loses nothing.
#[test]
fn a_stuck_thread_fails_the_health_check() {
    let offline = tempfile::tempdir().expect("temp dir");
    let out = Command::new(node_binary()).arg("-r").arg(demo_trace()).arg("--logdir").arg(offline.path()).output();
    assert!(out.expect("runs zeek-node").status.success());
    let logs: Vec<String> = std::fs::read_dir(offline.path())
        .expect("the offline logs")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".log"))
        .collect();
    assert!(logs.len() > 3, "the demo trace writes several logs: {logs:?}");

    let blocked = tempfile::tempdir().expect("temp dir");
    blocking_logs(blocked.path(), &logs);
    let addr = format!("127.0.0.1:{}", support::nodes::free_ports(1)[0]);
    let node = Command::new(node_binary())
        .arg("-r")
        .arg(demo_trace())
        .arg("--logdir")
        .arg(blocked.path())
        .args(["--metrics-addr", &addr, "--stall-limit", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts zeek-node");
    let unhealthy = support::nodes::wait_for(Duration::from_secs(15), || {
        support::http_get(&addr, "/healthz").filter(|(status, _)| *status == 503)
    });
    let metrics = support::http_get(&addr, "/metrics").map(|(_, body)| body).unwrap_or_default();

    let readers = drain_logs(blocked.path(), &logs);
    let out = node.wait_with_output().expect("the node ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (_, body) = unhealthy.unwrap_or_else(|| panic!("/healthz never failed while the writer was stuck:\n{stderr}"));
    assert!(body.starts_with("stalled: analysis thread 0 (no progress for "), "{body}");
    assert!(metrics.contains("zeek_stalled_threads{node="), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("zeek_stalled_threads{") && l.ends_with(" 1")), "{metrics}");
    assert!(out.status.success(), "the run finished once the file took writes:\n{stderr}");
    assert_eq!(stderr.matches("made no progress for").count(), 1, "the stall is logged once:\n{stderr}");
    for (name, reader) in logs.iter().zip(readers) {
        let written = reader.join().expect("the reader");
        let copy = blocked.path().join(format!("{name}.read"));
        std::fs::write(&copy, written).expect("write the copy");
        let want = support::masked_records(&offline.path().join(name), &[]);
        assert_eq!(support::masked_records(&copy, &[]), want, "{name}: the stalled run lost records");
    }

    // Without the endpoint (a sensor nobody scrapes), the stall is still logged.
    let unserved = tempfile::tempdir().expect("temp dir");
    blocking_logs(unserved.path(), &logs);
    let stderr_file = unserved.path().join("node.stderr");
    let mut node = Command::new(node_binary())
        .arg("-r")
        .arg(demo_trace())
        .arg("--logdir")
        .arg(unserved.path())
        .args(["--stall-limit", "1"])
        .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
        .spawn()
        .expect("starts zeek-node");
    let read_stderr = || std::fs::read_to_string(&stderr_file).unwrap_or_default();
    let logged = support::nodes::wait_for(Duration::from_secs(15), || {
        read_stderr().contains("made no progress for").then_some(())
    });
    let readers = drain_logs(unserved.path(), &logs);
    let status = node.wait().expect("the node ends");
    readers.into_iter().for_each(|r| drop(r.join()));
    let stderr = read_stderr();
    assert!(logged.is_some() && status.success(), "{stderr}");
    assert_eq!(stderr.matches("made no progress for").count(), 1, "logged without --metrics-addr:\n{stderr}");
}
