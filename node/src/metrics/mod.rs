//! A node's Prometheus metrics, standalone (`zeek-node -i ... --metrics-addr`) or one node of a cluster, and the
//! small HTTP endpoint that serves them with `/healthz` and `/readyz`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod process;

use crate::capture::CaptureStats;
use crate::engine::EngineStats;
use crate::runner::LiveStats;
use crate::watchdog::Stall;

type Labels = Vec<(&'static str, String)>;

/// Every metric a node exports (prefix `zeek_`, constant labels `cluster`, `node`, `role`; a standalone node has
/// no `cluster` and the role `standalone`).
pub struct Metrics {
    registry: Registry,
    /// Held while counters are moved up to a run's totals, so two reports cannot add the same growth twice.
    totals: Mutex<()>,
    /// A standalone node is ready once its packet source is open (a cluster's node, once its barrier passed).
    ready_when_capturing: bool,
    pub packets: Counter,
    pub packet_bytes: Counter,
    pub capture_drops: Gauge,
    pub connections: Counter,
    pub connections_active: Gauge,
    /// 1 once the node's packet source is open (a worker's, or a standalone node's).
    pub capturing: Gauge,
    pub tcp_ack_events: Counter,
    pub tcp_gap_events: Counter,
    pub fragments_dropped: Counter,
    pub tcp_streams_given_up: Counter,
    /// Packets each analysis thread analysed, by thread.
    pub thread_packets: Family<Labels, Counter>,
    pub events_out: Family<Labels, Counter>,
    pub events_in: Family<Labels, Counter>,
    /// Publishes that reached nobody or failed, by reason (empty_pool, unreachable, queue_full, no_subscriber).
    pub publish_errors: Family<Labels, Counter>,
    pub malformed_frames: Counter,
    pub log_records_produced: Counter,
    pub log_records_written: Counter,
    /// Records given up on, by reason (overflow, rejected, shutdown).
    pub log_records_dropped: Family<Labels, Counter>,
    pub log_batches_resent: Counter,
    pub log_unacked_records: Gauge,
    pub log_queue_records: Gauge,
    pub peers: Gauge,
    pub peer_reconnects: Counter,
    pub view_epoch: Gauge,
    pub ready: Gauge,
    /// Threads of the run that have made no progress for the watchdog's limit ([`crate::watchdog`]).
    pub stalled_threads: Gauge,
    /// What `/healthz` says is wrong: the stalled threads, empty while healthy.
    unhealthy: Mutex<Vec<Stall>>,
    pub state_keys: Gauge,
    pub state_keys_moved: Counter,
    pub rerouted: Counter,
    /// The detections' own counters (`scan_messages_saved`, `publish_errors`, ...), by name.
    pub detect_counter: Family<Labels, Gauge>,
    topics_out: TopicCounters,
    topics_in: TopicCounters,
}

/// The per-topic counters of `events_out` / `events_in`, found by topic without building a label set for every
/// event (that allocation was a visible share of the cost of relaying a message).
#[derive(Default)]
struct TopicCounters(RwLock<HashMap<String, Counter, foldhash::fast::RandomState>>);

impl TopicCounters {
    fn inc(&self, family: &Family<Labels, Counter>, topic: &str, n: u64) {
        self.get(family, topic).inc_by(n);
    }

    fn get(&self, family: &Family<Labels, Counter>, topic: &str) -> Counter {
        if let Some(c) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(topic) {
            return c.clone();
        }
        let counter = family.get_or_create(&label("topic", topic)).clone();
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(topic.to_string(), counter.clone());
        counter
    }
}

fn label(k: &'static str, v: &str) -> Labels {
    vec![(k, v.to_string())]
}

impl Metrics {
    /// The metrics of node `node` of cluster `cluster`, in role `role`.
    pub fn new(cluster: &str, node: &str, role: &str) -> Metrics {
        Metrics::labelled(&[("cluster", cluster), ("node", node), ("role", role)], false)
    }

    /// The metrics of a standalone node (every role in one process), named `node` (its host's name).
    pub fn standalone(node: &str) -> Metrics {
        Metrics::labelled(&[("node", node), ("role", "standalone")], true)
    }

    fn labelled(labels: &[(&'static str, &str)], ready_when_capturing: bool) -> Metrics {
        let consts: Vec<(Cow<'static, str>, Cow<'static, str>)> =
            labels.iter().map(|(k, v)| (Cow::Borrowed(*k), Cow::Owned(v.to_string()))).collect();
        // The process's own figures keep their conventional names (`process_*`); the node's are `zeek_*`.
        let mut root = Registry::with_labels(consts.into_iter());
        root.register_collector(Box::new(process::ProcessCollector));
        let r = root.sub_registry_with_prefix("zeek");
        let m = Metrics {
            totals: Mutex::new(()),
            ready_when_capturing,
            packets: Counter::default(),
            packet_bytes: Counter::default(),
            capture_drops: Gauge::default(),
            connections: Counter::default(),
            connections_active: Gauge::default(),
            capturing: Gauge::default(),
            tcp_ack_events: Counter::default(),
            tcp_gap_events: Counter::default(),
            fragments_dropped: Counter::default(),
            tcp_streams_given_up: Counter::default(),
            thread_packets: Family::default(),
            events_out: Family::default(),
            events_in: Family::default(),
            publish_errors: Family::default(),
            malformed_frames: Counter::default(),
            log_records_produced: Counter::default(),
            log_records_written: Counter::default(),
            log_records_dropped: Family::default(),
            log_batches_resent: Counter::default(),
            log_unacked_records: Gauge::default(),
            log_queue_records: Gauge::default(),
            peers: Gauge::default(),
            peer_reconnects: Counter::default(),
            view_epoch: Gauge::default(),
            ready: Gauge::default(),
            stalled_threads: Gauge::default(),
            unhealthy: Mutex::default(),
            state_keys: Gauge::default(),
            state_keys_moved: Counter::default(),
            rerouted: Counter::default(),
            detect_counter: Family::default(),
            topics_out: TopicCounters::default(),
            topics_in: TopicCounters::default(),
            registry: Registry::default(),
        };
        r.register("packets", "Packets analysed", m.packets.clone());
        r.register("packet_bytes", "Bytes of packets analysed", m.packet_bytes.clone());
        r.register("capture_drops", "Packets the capture dropped", m.capture_drops.clone());
        r.register("connections", "Connections seen", m.connections.clone());
        r.register("connections_active", "Connections open in the session tables", m.connections_active.clone());
        r.register("capturing", "1 once this node's packet source is open", m.capturing.clone());
        r.register(
            "tcp_ack_events",
            "TCP acks that moved a stream on while both sides were established (Zeek's gap statistics)",
            m.tcp_ack_events.clone(),
        );
        r.register(
            "tcp_gap_events",
            "TCP acks above bytes never seen: capture loss is their share of tcp_ack_events",
            m.tcp_gap_events.clone(),
        );
        r.register(
            "fragments_dropped",
            "IP datagrams whose fragments were dropped unreassembled (timed out, or over the 32 MiB bound)",
            m.fragments_dropped.clone(),
        );
        r.register(
            "tcp_streams_given_up",
            "TCP directions whose reassembly gave up past Zeek's bounds (16 KiB above a hole unacked, 10 MiB unacked)",
            m.tcp_streams_given_up.clone(),
        );
        r.register(
            "thread_packets",
            "Packets each analysis thread analysed, by thread: how evenly the capture's flows spread over them",
            m.thread_packets.clone(),
        );
        r.register("events_out", "Events published, by topic", m.events_out.clone());
        r.register("events_in", "Events received, by topic", m.events_in.clone());
        r.register("publish_errors", "Publishes that failed, by reason", m.publish_errors.clone());
        r.register("malformed_frames", "Frames refused as malformed", m.malformed_frames.clone());
        r.register("log_records_produced", "Log records produced on this node", m.log_records_produced.clone());
        r.register("log_records_written", "Log records written to disk by this node", m.log_records_written.clone());
        r.register("log_records_dropped", "Log records given up on, by reason", m.log_records_dropped.clone());
        r.register("log_batches_resent", "Log batches resent to another logger", m.log_batches_resent.clone());
        r.register("log_unacked_records", "Shipped log records not yet acknowledged", m.log_unacked_records.clone());
        r.register("log_queue_records", "Log records waiting to be batched", m.log_queue_records.clone());
        r.register("peers", "Live links to other nodes", m.peers.clone());
        r.register("peer_reconnects", "Links re-established after a loss", m.peer_reconnects.clone());
        r.register("view_epoch", "Epoch of the newest membership view", m.view_epoch.clone());
        r.register(
            "ready",
            "1 once the node is ready: in a cluster, the readiness barrier passed; standalone, its packet source is open",
            m.ready.clone(),
        );
        r.register(
            "stalled_threads",
            "Threads of the data path (capture, analysis, log writing) stuck on one step for the watchdog's limit (--stall-limit); /healthz fails meanwhile",
            m.stalled_threads.clone(),
        );
        r.register("state_keys", "Keys held in this node's state tables", m.state_keys.clone());
        r.register("state_keys_moved", "Keys handed to a new owner after a view change", m.state_keys_moved.clone());
        r.register("rerouted", "Messages re-routed because they were routed with an older view", m.rerouted.clone());
        r.register("detect_counter", "Counters kept by the detections, by name", m.detect_counter.clone());
        Metrics { registry: root, ..m }
    }

    /// The `events_out` counter of `topic`, for a publisher that keeps it (a publish plan).
    pub fn events_out_counter(&self, topic: &str) -> Counter {
        self.topics_out.get(&self.events_out, topic)
    }

    /// `n` events arrived for `topic` (a run of them counts once).
    pub fn events_in(&self, topic: &str, n: u64) {
        self.topics_in.inc(&self.events_in, topic, n);
    }

    pub fn publish_error(&self, reason: &str) {
        self.publish_errors_by(reason, 1);
    }

    /// `n` publishes that failed for one reason (a frame of relayed messages).
    pub fn publish_errors_by(&self, reason: &str, n: u64) {
        self.publish_errors.get_or_create(&label("reason", reason)).inc_by(n);
    }

    pub fn records_dropped(&self, reason: &str, n: u64) {
        self.log_records_dropped.get_or_create(&label("reason", reason)).inc_by(n);
    }

    /// Packets each analysis thread analysed so far (totals, by thread index): the counters move up to them.
    pub fn set_thread_packets(&self, by_thread: &[u64]) {
        let _one = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        for (thread, &packets) in by_thread.iter().enumerate() {
            grow_to(&self.thread_packets.get_or_create(&label("thread", &thread.to_string())), packets);
        }
    }

    /// A run's engine totals so far (summed over its threads): the counters move up to them, the gauge of open
    /// connections follows.
    pub fn set_engine_totals(&self, s: &EngineStats) {
        let _one = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        for (counter, total) in [
            (&self.packets, s.packets),
            (&self.packet_bytes, s.bytes),
            (&self.connections, s.connections),
            (&self.tcp_ack_events, s.tcp_ack_events),
            (&self.tcp_gap_events, s.tcp_gap_events),
            (&self.fragments_dropped, s.frag_datagrams_dropped),
            (&self.tcp_streams_given_up, s.tcp_streams_given_up),
        ] {
            grow_to(counter, total);
        }
        self.connections_active.set(i64::try_from(s.active_connections).unwrap_or(i64::MAX));
    }

    /// The capture's own counters (libpcap's or the AF_PACKET sockets'), summed over its sockets.
    pub fn set_capture(&self, c: &CaptureStats) {
        self.capture_drops.set(i64::try_from(c.dropped).unwrap_or(i64::MAX));
    }

    /// What a run's threads published to `live` so far.
    pub fn follow(&self, live: &LiveStats) {
        if live.is_open() {
            self.capturing.set(1);
            if self.ready_when_capturing {
                self.ready.set(1);
            }
        }
        self.set_engine_totals(&live.engine());
        self.set_thread_packets(&live.thread_packets());
        if let Some(c) = live.capture() {
            self.set_capture(&c);
        }
        self.set_stalls(live.watchdog.check(Instant::now()), live.watchdog.limit());
    }

    /// The threads the watchdog found stuck now: logged when that changes, counted, and said by `/healthz`.
    pub fn set_stalls(&self, stalls: Vec<Stall>, limit: Duration) {
        let mut unhealthy = self.unhealthy.lock().unwrap_or_else(|e| e.into_inner());
        for stall in stalls.iter().filter(|s| !unhealthy.iter().any(|u| u.thread == s.thread)) {
            tracing::error!(
                thread = %stall.thread,
                limit_secs = limit.as_secs(),
                "a thread of the data path made no progress for {} s: the node is unhealthy (its /healthz fails \
                 while this lasts, which a liveness probe restarts it for)",
                stall.since.as_secs()
            );
        }
        for recovered in unhealthy.iter().filter(|u| !stalls.iter().any(|s| s.thread == u.thread)) {
            tracing::warn!(thread = %recovered.thread, "a stalled thread made progress again");
        }
        self.stalled_threads.set(i64::try_from(stalls.len()).unwrap_or(i64::MAX));
        *unhealthy = stalls;
    }

    /// Why the node is not healthy, if it is not.
    pub fn unhealthy(&self) -> Option<String> {
        let unhealthy = self.unhealthy.lock().unwrap_or_else(|e| e.into_inner());
        (!unhealthy.is_empty()).then(|| {
            let threads: Vec<String> = unhealthy.iter().map(Stall::to_string).collect();
            format!("stalled: {}\n", threads.join(", "))
        })
    }

    pub fn set_detect_counter(&self, name: &str, value: u64) {
        self.detect_counter.get_or_create(&label("name", name)).set(value as i64);
    }

    pub fn dropped_total(&self) -> u64 {
        ["overflow", "rejected", "shutdown"]
            .iter()
            .map(|r| self.log_records_dropped.get_or_create(&label("reason", r)).get())
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Moves `counter` up to `total` (a total below it, from a report that came late, changes nothing).
fn grow_to(counter: &Counter, total: u64) {
    let before = counter.get();
    if total > before {
        counter.inc_by(total - before);
    }
}

/// How often a running capture's counters reach the metrics (and, in a cluster, the heartbeats and `ctl netstats`).
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// Until the packet source is open, look more often: `zeek-node cluster -i` waits for every worker to say it is.
const OPEN_CHECK_EVERY: Duration = Duration::from_millis(20);

/// Runs `run` while a thread of its own moves `metrics` up to what the run's threads publish to `live`, so the
/// metrics of a live capture, which runs for days, move while it runs and not only when it stops.
pub fn follow_while<T>(metrics: &Metrics, live: &LiveStats, run: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reporter = scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::park_timeout(if live.is_open() { FOLLOW_EVERY } else { OPEN_CHECK_EVERY });
                metrics.follow(live);
            }
        });
        let result = run();
        done.store(true, Ordering::Relaxed);
        reporter.thread().unpark();
        result
    })
}

/// The endpoint's address from the command line: `IP:PORT`, `[IPv6]:PORT`, or an IPv6 address and port joined by
/// a colon without brackets, as `$(POD_IP):PORT` in a pod's arguments expands to on an IPv6 cluster.
pub fn parse_endpoint_addr(s: &str) -> Result<SocketAddr, String> {
    let (host, port) = crate::cluster::layout::split_host_port(s)
        .ok_or_else(|| format!("'{s}': expected IP:PORT with a port number, e.g. 127.0.0.1:9911"))?;
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| format!("'{s}': '{host}' is not an IP address (expected IP:PORT, e.g. 127.0.0.1:9911)"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Binds the endpoint's address before the node starts its work, so a port already taken stops it with an error
/// naming the address instead of leaving it running unobserved.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the endpoints from a thread of their own, for a node without an async runtime (standalone).
pub fn serve_in_background(listener: std::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        if let Err(e) = runtime.block_on(serve_http(listener, metrics)) {
            tracing::error!("metrics endpoint: {e}");
        }
    })?;
    Ok(())
}

/// Serves `/metrics`, `/healthz` (no thread of the data path is stuck: [`Metrics::unhealthy`]) and `/readyz` (the
/// node is ready: [`Metrics::ready`]) on a listener from [`bind`].
pub async fn serve_http(listener: std::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    tracing::info!(addr = %listener.local_addr()?, "metrics and health endpoints listening");
    loop {
        let (mut sock, _) = listener.accept().await?;
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let (status, content_type, body) = respond(request_path(&buf[..n]), &metrics);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}

fn request_path(req: &[u8]) -> &str {
    let line = req.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or_default();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(path)) => path,
        _ => "",
    }
}

/// The media type of what [`Metrics::encode`] writes: `prometheus_client` writes OpenMetrics text (counters'
/// samples end in `_total`, the exposition in `# EOF`). Called the classic `text/plain; version=0.0.4`, Prometheus
/// parsed it with its classic parser, which takes `zeek_packets_total` for another metric than the family
/// `zeek_packets` its `# TYPE` line declares, so every counter lost its type.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

fn respond(path: &str, metrics: &Metrics) -> (&'static str, &'static str, String) {
    const UNAVAILABLE: &str = "503 Service Unavailable";
    match path {
        "/metrics" => ("200 OK", OPENMETRICS_CONTENT_TYPE, metrics.encode()),
        "/healthz" => match metrics.unhealthy() {
            None => ("200 OK", TEXT, "ok\n".into()),
            Some(why) => (UNAVAILABLE, TEXT, why),
        },
        "/readyz" if metrics.ready.get() == 1 => ("200 OK", TEXT, "ready\n".into()),
        "/readyz" => (UNAVAILABLE, TEXT, "not ready\n".into()),
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each analysis thread's packets, as the run's threads total them: the counters follow the totals.
    #[test]
    fn thread_packets_follow_each_threads_total() {
        let m = Metrics::new("demo", "worker-1", "worker");
        m.set_thread_packets(&[3, 5]);
        m.set_thread_packets(&[10, 5, 2]);
        let text = m.encode();
        for (thread, packets) in [(0, 10), (1, 5), (2, 2)] {
            let line = format!(
                "zeek_thread_packets_total{{cluster=\"demo\",node=\"worker-1\",role=\"worker\",thread=\"{thread}\"}} {packets}"
            );
            assert!(text.contains(&line), "{line}\n{text}");
        }
    }

    #[test]
    fn text_exposition_has_node_labels() {
        let m = Metrics::new("demo", "worker-1", "worker");
        m.packets.inc_by(3);
        m.events_out_counter("zeek/cluster/manager").inc();
        m.events_out_counter("zeek/cluster/manager").inc();
        m.records_dropped("overflow", 2);
        m.connections_active.set(7);
        m.capturing.set(1);
        m.tcp_gap_events.inc_by(2);
        m.fragments_dropped.inc();
        m.tcp_streams_given_up.inc_by(4);
        let text = m.encode();
        let labels = "{cluster=\"demo\",node=\"worker-1\",role=\"worker\"}";
        assert!(text.contains(&format!("zeek_fragments_dropped_total{labels} 1")), "{text}");
        assert!(text.contains(&format!("zeek_tcp_streams_given_up_total{labels} 4")), "{text}");
        assert!(text.contains("zeek_packets_total{cluster=\"demo\",node=\"worker-1\",role=\"worker\"} 3"), "{text}");
        assert!(
            text.contains("zeek_connections_active{cluster=\"demo\",node=\"worker-1\",role=\"worker\"} 7"),
            "{text}"
        );
        assert!(text.contains("zeek_capturing{cluster=\"demo\",node=\"worker-1\",role=\"worker\"} 1"), "{text}");
        assert!(
            text.contains("zeek_tcp_gap_events_total{cluster=\"demo\",node=\"worker-1\",role=\"worker\"} 2"),
            "{text}"
        );
        assert!(text.contains("topic=\"zeek/cluster/manager\"} 2"), "{text}");
        assert_eq!(m.dropped_total(), 2);
    }

    /// The chart's alerts (charts/zeek-operator/templates/prometheusrule.yaml) name metrics a node exports: a renamed
    /// metric would leave an alert that never fires.
    #[test]
    fn the_charts_alerts_name_metrics_the_nodes_export() {
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/zeek-operator/templates/prometheusrule.yaml");
        let rules = std::fs::read_to_string(rules).expect("the chart's PrometheusRule template");
        let m = Metrics::new("c", "worker-1", "worker");
        // Families with labels appear once they have a sample.
        m.records_dropped("overflow", 1);
        m.publish_error("empty_pool");
        let exposition = m.encode();
        let exported = |name: &str| {
            exposition.lines().any(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        };
        let names = regex::Regex::new(r"\b(?:zeek|process)_[a-z_]+").expect("regex");
        let exprs: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")).collect();
        assert!(exprs.len() >= 6, "the alerts' expressions: {exprs:?}");
        for expr in exprs {
            let used: Vec<&str> = names.find_iter(expr).map(|n| n.as_str()).collect();
            assert!(!used.is_empty(), "{expr}");
            for name in used {
                assert!(exported(name), "the alert `{expr}` names {name}, which no node exports:\n{exposition}");
            }
        }
    }

    /// The operator's liveness and readiness probes ask the nodes for paths they serve, on their metrics port.
    #[test]
    fn the_operators_probes_ask_for_paths_the_nodes_serve() {
        let probe = regex::Regex::new(
            r"(livenessProbe|readinessProbe):\n(?:\s+\w+: \d+\n)*\s+httpGet:\n\s+path: (\S+)\n\s+port: (\S+)",
        )
        .expect("regex");
        for golden in ["minimal", "production"] {
            let path = format!("{}/../operator/src/build/golden/{golden}.yaml", env!("CARGO_MANIFEST_DIR"));
            let objects = std::fs::read_to_string(&path).expect("the operator's golden objects");
            let probes: Vec<_> =
                probe.captures_iter(&objects).map(|c| (c[1].to_string(), c[2].to_string(), c[3].to_string())).collect();
            let pods = objects.matches("\n        name: zeek-node\n").count();
            assert_eq!(probes.len(), 2 * pods, "{golden}: a liveness and a readiness probe per node pod: {probes:?}");
            let m = Metrics::new("c", "worker-1", "worker");
            m.ready.set(1);
            for (kind, path, port) in probes {
                assert_eq!(port, "metrics", "{golden}: {kind} on another port than the node's endpoints");
                assert_eq!(
                    respond(&path, &m).0,
                    "200 OK",
                    "{golden}: {kind} asks for {path}, which a healthy ready node fails"
                );
            }
        }
    }

    #[test]
    fn endpoint_addresses_as_pods_expand_them() {
        let v6: SocketAddr = "[fd00::1:2]:47771".parse().unwrap();
        assert_eq!(parse_endpoint_addr("fd00::1:2:47771"), Ok(v6));
        assert_eq!(parse_endpoint_addr("[fd00::1:2]:47771"), Ok(v6));
        assert_eq!(parse_endpoint_addr("10.0.0.7:47771"), Ok("10.0.0.7:47771".parse().unwrap()));
        assert!(parse_endpoint_addr("localhost:9911").unwrap_err().contains("not an IP address"));
        assert!(parse_endpoint_addr("10.0.0.7").is_err());
        assert!(parse_endpoint_addr("10.0.0.7:99999").unwrap_err().contains("with a port number"));
    }

    #[test]
    fn health_routes() {
        let m = Metrics::new("c", "n", "worker");
        assert_eq!(request_path(b"GET /readyz HTTP/1.1\r\n"), "/readyz");
        assert_eq!(respond("/readyz", &m).0, "503 Service Unavailable");
        m.ready.set(1);
        assert_eq!(respond("/readyz", &m).0, "200 OK");
        assert_eq!(respond("/healthz", &m), ("200 OK", TEXT, "ok\n".into()));
        assert_eq!(respond("/nope", &m).0, "404 Not Found");
        let (status, content_type, body) = respond("/metrics", &m);
        assert_eq!((status, content_type), ("200 OK", OPENMETRICS_CONTENT_TYPE));
        assert!(body.ends_with("# EOF\n"), "OpenMetrics text ends in # EOF: {body}");
    }

    /// A stuck thread makes `/healthz` fail, naming it, and counts in `zeek_stalled_threads` until it moves on.
    #[test]
    fn a_stalled_thread_fails_the_health_check_until_it_moves_on() {
        let m = Metrics::standalone("sensor-a");
        let limit = Duration::from_secs(30);
        let stall = Stall { thread: "analysis thread 1".into(), since: Duration::from_secs(42) };
        m.set_stalls(vec![stall], limit);
        let (status, _, body) = respond("/healthz", &m);
        assert_eq!(status, "503 Service Unavailable");
        assert_eq!(body, "stalled: analysis thread 1 (no progress for 42 s)\n");
        assert!(m.encode().contains("zeek_stalled_threads{node=\"sensor-a\",role=\"standalone\"} 1"), "{}", m.encode());
        m.set_stalls(Vec::new(), limit);
        assert_eq!(respond("/healthz", &m).0, "200 OK");
        assert!(m.encode().contains("zeek_stalled_threads{node=\"sensor-a\",role=\"standalone\"} 0"));
    }

    /// Reports of a run's totals move the counters up to them; a late report with smaller totals moves nothing.
    #[test]
    fn engine_totals_only_move_counters_up() {
        let m = Metrics::standalone("sensor-a");
        let stats = |packets, connections, open| EngineStats {
            packets,
            connections,
            active_connections: open,
            ..EngineStats::default()
        };
        m.set_engine_totals(&stats(100, 7, 5));
        m.set_engine_totals(&stats(250, 9, 3));
        m.set_engine_totals(&stats(200, 8, 2));
        assert_eq!((m.packets.get(), m.connections.get()), (250, 9));
        assert_eq!(m.connections_active.get(), 2, "a gauge follows the last report");
        let text = m.encode();
        assert!(text.contains("zeek_packets_total{node=\"sensor-a\",role=\"standalone\"} 250"), "{text}");
        if cfg!(target_os = "linux") {
            // The process's own figures, under their conventional names, with the node's labels.
            for name in ["process_cpu_seconds_total{", "process_resident_memory_bytes{", "process_start_time_seconds{"]
            {
                assert!(text.lines().any(|l| l.starts_with(name) && l.contains("node=\"sensor-a\"")), "{name}\n{text}");
            }
        }
    }
}
