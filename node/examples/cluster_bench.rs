//! Cluster benchmarks (issue 3 item 10; method and figures in docs/BENCHMARKS.md, "Cluster"):
//!
//! 1. **relay**: events/s through one relay hop (worker-1 → manager → worker-2, `publish` to worker-2's node topic,
//!    which worker-1 has no link to), 100-byte events; beside it, NATS (`nats-server` on 127.0.0.1, started here)
//!    carrying the same encoded events publisher → server → subscriber, and the ratio.
//! 2. **hrw**: `publish_hrw` latency from a worker to the handler on the owning proxy (two proxies), paced at a
//!    fixed rate (default 200k events/s) for a fixed time; p50/p99/p99.9/max.
//! 3. **logger**: log records/s one logger writes (conn records shipped by a worker over gRPC, written as Zeek TSV
//!    to a temporary directory, the written rows counted back from the file).
//! 4. **join**: a manager with 256 connected workers (node runtimes without capture, each its own gRPC link); then a
//!    proxy joins, timed until every node holds a view with it.
//! 5. **state**: a proxy's keyed state over an hour of network time: a day of known hosts (`--state-keys`, one-day
//!    expiry, spread over the day before) with new hosts written every second; the time the store's once-a-second
//!    expiry takes, beside walking the same entries in a `HashMap` every second (what the store did before).
//!
//! ```text
//! cargo run --release -p zeek-node --example cluster_bench -- [--only relay,hrw,logger,join] [--events N] ...
//! ```
//! (`scripts/bench.sh cluster` builds and runs this.) Every node is a real `Node` with its own tokio runtime
//! (`--node-threads`, default 1) listening on its own 127.0.0.1 port: the links are real gRPC streams over TCP, as in
//! the product, only the process is shared so one clock times both ends. Every loop is bounded.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use prost::Message as _;
use tokio::runtime::Runtime;
use zeek_node::cluster::layout::NodeSpec;
use zeek_node::cluster::logship::{Overflow, ShipSettings};
use zeek_node::cluster::node::{LogSettings, Timing};
use zeek_node::cluster::{Data, Event, Node, NodeConfig, PublishError, Received, Role, topic};
use zeek_node::logs::{CONN, LogFormat, LogRecord, Value};

#[derive(Parser, Debug)]
#[command(about = "Cluster benchmarks: relay vs NATS, HRW latency, logger throughput, 256-worker join")]
struct Args {
    /// Comma-separated sections: relay, hrw, logger, join, state.
    #[arg(long, default_value = "relay,hrw,logger,join,state", value_delimiter = ',')]
    only: Vec<String>,
    /// Events sent through the relay (and through NATS).
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Rounds of the relay and NATS runs, alternating which goes first; the figures judged are the medians (one
    /// round on a shared 2-core machine can be off by 30% either way).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Encoded size of one event, bytes.
    #[arg(long, default_value_t = 100)]
    event_bytes: usize,
    /// HRW publish rate, events/s.
    #[arg(long, default_value_t = 200_000)]
    hrw_rate: u64,
    /// HRW run time, seconds (the first half second is warm-up and not counted).
    #[arg(long, default_value_t = 3.0)]
    hrw_secs: f64,
    /// Log records shipped to the logger.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Simulated workers connected to the manager.
    #[arg(long, default_value_t = 256)]
    workers: usize,
    /// tokio worker threads per node runtime. `zeek-node run` uses 2, but here three to five nodes share the
    /// machine's cores, and two threads each oversubscribe a 2-core machine (latency tails of milliseconds).
    #[arg(long, default_value_t = 1)]
    node_threads: usize,
    /// Keys a proxy holds in the state section.
    #[arg(long, default_value_t = 1_000_000)]
    state_keys: u64,
}

/// One clock for every node of the process: events carry their send time as nanoseconds since this instant.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn nanos_since_epoch() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

/// Longest any wait of the bench lasts.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Polls `check` every millisecond until it holds or `limit` passes; the instant it held.
fn poll_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spec(name: &str, role: Role) -> anyhow::Result<NodeSpec> {
    Ok(NodeSpec {
        name: name.into(),
        role,
        host: "127.0.0.1".into(),
        port: free_port()?,
        interface: None,
        threads: None,
    })
}

/// A cluster under test: the manager's address, the nodes the readiness barrier waits for, a log directory.
struct Cluster {
    manager: NodeSpec,
    expected: Vec<String>,
    dir: tempfile::TempDir,
    threads: usize,
}

/// A node and the runtime it runs on; dropping it stops both.
struct BenchNode {
    node: Node,
    runtime: Option<Runtime>,
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Cluster {
    fn new(expected: &[&str], threads: usize) -> anyhow::Result<Cluster> {
        Ok(Cluster {
            manager: spec("manager", Role::Manager)?,
            expected: expected.iter().map(|s| s.to_string()).collect(),
            dir: tempfile::tempdir()?,
            threads,
        })
    }

    fn config(&self, me: NodeSpec, shipping: ShipSettings) -> NodeConfig {
        NodeConfig {
            cluster: "bench".into(),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], me.port))),
            logging: LogSettings {
                dir: self.dir.path().join(&me.name),
                format: LogFormat::Tsv,
                rotation: None,
                retention: None,
            },
            me,
            manager: self.manager.clone(),
            expected: self.expected.clone(),
            tls: None,
            timing: Timing::default(),
            shipping,
            metrics_addr: None,
        }
    }

    /// Starts a node on a runtime of its own.
    fn start(&self, me: NodeSpec, shipping: ShipSettings) -> anyhow::Result<BenchNode> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .thread_name(me.name.clone())
            .enable_all()
            .build()?;
        let node = runtime.block_on(Node::start(self.config(me, shipping)))?;
        Ok(BenchNode { node, runtime: Some(runtime) })
    }

    fn start_manager(&self) -> anyhow::Result<BenchNode> {
        self.start(self.manager.clone(), ShipSettings::default())
    }

    fn start_named(&self, name: &str, role: Role) -> anyhow::Result<BenchNode> {
        self.start(spec(name, role)?, ShipSettings::default())
    }
}

/// Waits until `node` is past the readiness barrier and linked to each of `peers`.
fn wait_linked(node: &Node, peers: &[&str]) -> anyhow::Result<()> {
    poll_until(WAIT_LIMIT, || node.is_ready() && peers.iter().all(|p| node.links().iter().any(|l| l.name == *p)))
        .map(|_| ())
        .with_context(|| format!("{} did not get ready and linked to {peers:?}", node.name()))
}

/// An event whose protobuf encoding is exactly `size` bytes: `args` then a string padding it out.
fn sized_event(name: &str, mut args: Vec<Data>, size: usize) -> anyhow::Result<Event> {
    let base = Event::new(name, args.clone()).to_pb().encoded_len();
    // The padding argument costs its bytes plus a few of framing; find the length that lands on `size`.
    let pad = (0..size).rev().find(|n| {
        let mut a = args.clone();
        a.push(Data::Str("x".repeat(*n)));
        Event::new(name, a).to_pb().encoded_len() <= size
    });
    let Some(pad) = pad.filter(|_| base < size) else { bail!("an event of {size} bytes cannot hold {name}") };
    args.push(Data::Str("x".repeat(pad)));
    Ok(Event::new(name, args))
}

/// Publishes until the send queue takes it: the publisher sees backpressure as `QueueFull` and waits for room, as a
/// sender that must not lose events would.
fn publish_waiting(mut publish: impl FnMut() -> Result<usize, PublishError>) -> anyhow::Result<u64> {
    let mut waits = 0;
    for _ in 0..1_000_000 {
        match publish() {
            Ok(_) => return Ok(waits),
            Err(PublishError::QueueFull(_)) => {
                waits += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) => bail!("publish failed: {e}"),
        }
    }
    bail!("the send queue stayed full for over a minute")
}

/// Counts arrivals; waits until `expected` arrived or arrivals stop for two seconds.
struct Arrivals {
    count: Arc<AtomicU64>,
}

impl Arrivals {
    fn new() -> Arrivals {
        Arrivals { count: Arc::new(AtomicU64::new(0)) }
    }

    fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The instant the last arrival was seen (to the millisecond) and how many arrived.
    fn wait(&self, expected: u64) -> (Instant, u64) {
        let mut last = (Instant::now(), self.get());
        let deadline = Instant::now() + WAIT_LIMIT;
        while Instant::now() < deadline && last.1 < expected && last.0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(1));
            let n = self.get();
            if n != last.1 {
                last = (Instant::now(), n);
            }
        }
        last
    }
}

// ---- 1. relay vs NATS ----

struct Throughput {
    sent: u64,
    delivered: u64,
    secs: f64,
    /// CPU seconds every process of the run used meanwhile (nodes, clients, server).
    cpu_secs: f64,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.secs
    }

    fn print(&self, what: &str) {
        println!(
            "  {what:<34} {:>10.0} events/s  ({} of {} delivered in {:.2} s; {:.2} CPU s, {:.2} us CPU per event)",
            self.rate(),
            self.delivered,
            self.sent,
            self.secs,
            self.cpu_secs,
            self.cpu_secs * 1e6 / self.delivered.max(1) as f64
        );
    }
}

fn relay(args: &Args, event: &Event) -> anyhow::Result<Throughput> {
    let cluster = Cluster::new(&["worker-1", "worker-2"], args.node_threads)?;
    let manager = cluster.start_manager()?;
    let sender = cluster.start_named("worker-1", Role::Worker)?;
    let receiver = cluster.start_named("worker-2", Role::Worker)?;
    for n in [&sender, &receiver] {
        wait_linked(&n.node, &["manager"])?;
    }
    wait_linked(&manager.node, &["worker-1", "worker-2"])?;
    let arrivals = Arrivals::new();
    let count = Arc::clone(&arrivals.count);
    receiver.node.on(
        &event.name,
        Arc::new(move |_: &Node, _: &Received| {
            count.fetch_add(1, Ordering::Relaxed);
        }),
    );
    let target = topic::node_topic("worker-2");
    let cpu_before = process_cpu_secs();
    let threads_before = thread_cpu();
    let publisher_before = cpu_secs(libc::RUSAGE_THREAD);
    let started = Instant::now();
    let mut waits = 0;
    for _ in 0..args.events {
        waits += publish_waiting(|| sender.node.publish(&target, event))?;
    }
    let publisher_cpu = cpu_secs(libc::RUSAGE_THREAD) - publisher_before;
    let (last, delivered) = arrivals.wait(args.events);
    let lost = |n: &BenchNode, reason: &str| {
        n.node.metrics().publish_errors.get_or_create(&vec![("reason", reason.to_string())]).get()
    };
    println!(
        "  (relay: the publisher waited for room {waits} times; lost: {} at the manager (queue full), {} at worker-2 \
         (handler queue full))",
        lost(&manager, "queue_full"),
        lost(&receiver, "local_queue_full")
    );
    println!(
        "  (relay: us CPU per delivered event by thread: {})",
        cpu_per_item(
            &threads_before,
            &["publisher", "worker-1", "manager", "worker-2"],
            &[("publisher", publisher_cpu)],
            delivered
        )
    );
    let cpu_secs = process_cpu_secs() - cpu_before;
    Ok(Throughput { sent: args.events, delivered, secs: (last - started).as_secs_f64(), cpu_secs })
}

/// `nats-server` on a free 127.0.0.1 port, killed on drop.
struct NatsServer {
    child: Child,
    port: u16,
}

impl NatsServer {
    fn start() -> anyhow::Result<NatsServer> {
        let port = free_port()?;
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server (Debian package nats-server)")?;
        let server = NatsServer { child, port };
        poll_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok())
            .context("nats-server did not listen within 10 s")?;
        Ok(server)
    }
}

impl NatsServer {
    /// CPU seconds the server used so far (utime + stime of /proc/PID/stat, in clock ticks).
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
        // SAFETY: sysconf has no preconditions.
        ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_runtime(threads: usize) -> anyhow::Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?)
}

/// The same events through NATS: one publishing client, the server, one subscribing client (each client on a
/// runtime of its own, like the two workers).
fn nats(args: &Args, payload: bytes::Bytes) -> anyhow::Result<Throughput> {
    let server = NatsServer::start()?;
    let url = format!("nats://127.0.0.1:{}", server.port);
    let subject = "zeek.cluster.node.worker-2";
    let (pub_rt, sub_rt) = (client_runtime(args.node_threads)?, client_runtime(args.node_threads)?);
    let connect = |url: String| async move {
        // A deep subscription buffer: the client drops messages past it, and we compare delivery, not drops.
        async_nats::ConnectOptions::new().subscription_capacity(1 << 20).connect(url).await
    };
    let subscriber = sub_rt.block_on(connect(url.clone()))?;
    let mut subscription = sub_rt.block_on(subscriber.subscribe(subject))?;
    sub_rt.block_on(subscriber.flush())?;
    let arrivals = Arrivals::new();
    let count = Arc::clone(&arrivals.count);
    let expected = args.events;
    sub_rt.spawn(async move {
        use tokio_stream::StreamExt as _;
        while count.load(Ordering::Relaxed) < expected && subscription.next().await.is_some() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    let publisher = pub_rt.block_on(connect(url))?;
    let cpu_before = process_cpu_secs() + server.cpu_secs();
    let started = Instant::now();
    pub_rt.block_on(async {
        for _ in 0..args.events {
            publisher.publish(subject, payload.clone()).await?;
        }
        publisher.flush().await?;
        anyhow::Ok(())
    })?;
    let (last, delivered) = arrivals.wait(args.events);
    let cpu_secs = process_cpu_secs() + server.cpu_secs() - cpu_before;
    pub_rt.shutdown_background();
    sub_rt.shutdown_background();
    Ok(Throughput { sent: args.events, delivered, secs: (last - started).as_secs_f64(), cpu_secs })
}

// ---- 2. HRW latency ----

struct Latency {
    sent: u64,
    counted: Vec<u64>,
    secs: f64,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn hrw_latency(args: &Args) -> anyhow::Result<Latency> {
    let names = ["proxy-1", "proxy-2", "worker-1"];
    let cluster = Cluster::new(&names, args.node_threads)?;
    let _manager = cluster.start_manager()?;
    let proxies = [cluster.start_named("proxy-1", Role::Proxy)?, cluster.start_named("proxy-2", Role::Proxy)?];
    let worker = cluster.start_named("worker-1", Role::Worker)?;
    wait_linked(&worker.node, &["manager", "proxy-1", "proxy-2"])?;
    let warmup_ns = nanos_since_epoch() + 500_000_000;
    let samples = Arc::new(Mutex::new(Vec::with_capacity((args.hrw_rate as f64 * args.hrw_secs) as usize)));
    for p in &proxies {
        let samples = Arc::clone(&samples);
        p.node.on(
            "Bench::hrw",
            Arc::new(move |_: &Node, r: &Received| {
                let now = nanos_since_epoch();
                if let Some(sent) = r.event.args.first().and_then(Data::as_count).filter(|s| *s >= warmup_ns) {
                    samples.lock().unwrap_or_else(|e| e.into_inner()).push(now.saturating_sub(sent));
                }
            }),
        );
    }
    let padding = sized_event("Bench::hrw", vec![Data::Count(u64::MAX >> 8), Data::Count(0)], args.event_bytes)?
        .args
        .pop()
        .unwrap_or(Data::Unset);
    let total = (args.hrw_rate as f64 * args.hrw_secs) as u64;
    let period_ns = 1e9 / args.hrw_rate as f64;
    let started = Instant::now();
    let mut errors = 0u64;
    let mut i = 0u64;
    // Paced in small bursts: every ~50 µs the events that are due go out, each stamped when it is published.
    while i < total {
        let due = (started.elapsed().as_nanos() as f64 / period_ns) as u64;
        while i < total.min(due + 1) {
            let key = Data::Count(i);
            let event = Event::new("Bench::hrw", vec![Data::Count(nanos_since_epoch()), key.clone(), padding.clone()]);
            if worker.node.publish_hrw(Role::Proxy, &key, event).is_err() {
                errors += 1;
            }
            i += 1;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    let secs = started.elapsed().as_secs_f64();
    let expected = total - (total as f64 * 0.5 / args.hrw_secs) as u64 - errors;
    poll_until(Duration::from_secs(10), || samples.lock().unwrap_or_else(|e| e.into_inner()).len() as u64 >= expected);
    if errors > 0 {
        println!("  (hrw: {errors} publishes failed)");
    }
    let mut counted = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    counted.sort_unstable();
    Ok(Latency { sent: total, counted, secs })
}

// ---- 3. logger ----

/// A conn record with every field set, as a worker produces for a finished TCP connection.
fn conn_record(i: u64) -> LogRecord {
    let values = vec![
        Value::Time(1_700_000_000.0 + i as f64 * 1e-3),
        Value::str(format!("C{i:017}")),
        Value::Addr("10.1.2.3".parse().expect("address")),
        Value::Port(40_000 + (i % 20_000) as u16),
        Value::Addr("192.0.2.80".parse().expect("address")),
        Value::Port(443),
        Value::Enum("tcp"),
        Value::str("ssl"),
        Value::Interval(1.234567),
        Value::Count(517),
        Value::Count(4_213),
        Value::str("SF"),
        Value::Bool(true),
        Value::Bool(false),
        Value::Count(0),
        Value::str("ShADadFf"),
        Value::Count(9),
        Value::Count(889),
        Value::Count(8),
        Value::Count(4_633),
        Value::Set(Vec::new()),
        Value::Count(6),
    ];
    LogRecord::new(&CONN, values)
}

struct LoggerRun {
    records: u64,
    written: u64,
    rows_in_file: u64,
    secs: f64,
    /// CPU seconds of the whole run (producer, worker, logger, writer), including the 200 ms settle.
    cpu_secs: f64,
}

fn rows_in(dir: &Path, path: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join(format!("{path}.log"))).unwrap_or_default();
    text.lines().filter(|l| !l.starts_with('#')).count() as u64
}

fn logger(args: &Args) -> anyhow::Result<LoggerRun> {
    let cluster = Cluster::new(&["logger-1", "worker-1"], args.node_threads)?;
    let _manager = cluster.start_manager()?;
    let logger = cluster.start_named("logger-1", Role::Logger)?;
    // Reading a trace, a worker's producer waits for the shipper instead of dropping: every record must arrive.
    let shipping = ShipSettings { overflow: Overflow::Block, ..ShipSettings::default() };
    let worker = cluster.start(spec("worker-1", Role::Worker)?, shipping)?;
    wait_linked(&worker.node, &["manager", "logger-1"])?;
    let written = || logger.node.metrics().log_records_written.get();
    let before = written();
    let template: Vec<LogRecord> = (0..1024).map(conn_record).collect();
    let producer = {
        let node = worker.node.clone();
        let total = args.records;
        std::thread::Builder::new().name("producer".into()).spawn(move || {
            let before = cpu_secs(libc::RUSAGE_THREAD);
            let mut sent = 0;
            while sent < total {
                let n = (total - sent).min(template.len() as u64) as usize;
                node.log(template[..n].to_vec());
                sent += n as u64;
            }
            cpu_secs(libc::RUSAGE_THREAD) - before
        })?
    };
    let cpu_before = process_cpu_secs();
    let threads_before = thread_cpu();
    let started = Instant::now();
    let target = before + args.records;
    let done = poll_until(WAIT_LIMIT, || written() >= target);
    let end = done.unwrap_or_else(Instant::now);
    let producer_cpu = producer.join().unwrap_or(0.0);
    // The manager's own cluster.log records (joins) may still be on their way; let them land before counting.
    std::thread::sleep(Duration::from_millis(200));
    let written = written() - before;
    let cpu_secs = process_cpu_secs() - cpu_before;
    println!(
        "  (logger: us CPU per record by thread: {})",
        cpu_per_item(
            &threads_before,
            &["producer", "worker-1", "logger-1", "log-writer"],
            &[("producer", producer_cpu)],
            written
        )
    );
    let rows_in_file = rows_in(&cluster.dir.path().join("logger-1"), "conn");
    Ok(LoggerRun { records: args.records, written, rows_in_file, secs: (end - started).as_secs_f64(), cpu_secs })
}

// ---- 4. 256 workers and a join ----

struct JoinRun {
    workers: usize,
    startup_secs: f64,
    idle_cpu: f64,
    settle_secs: f64,
    linked_secs: f64,
}

/// Whether every node's newest view lists `name`.
fn all_see(nodes: &[&Node], name: &str) -> bool {
    nodes.iter().all(|n| n.view().get(name).is_some())
}

/// CPU seconds (user + system) used so far by this process (`RUSAGE_SELF`) or the calling thread
/// (`RUSAGE_THREAD`).
fn cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn process_cpu_secs() -> f64 {
    cpu_secs(libc::RUSAGE_SELF)
}

/// Waits (at most 5 s) until the process is idle, so a section is measured as it is alone (`--only`): the nodes
/// and clients of the section before shut their runtimes down in the background, and their threads' last work
/// landed in the next section's latency tail and logger rate.
fn settle() {
    const STEP: Duration = Duration::from_millis(100);
    for _ in 0..50 {
        let before = process_cpu_secs();
        std::thread::sleep(STEP);
        // Under 5% of a core: heartbeats and timers only.
        if process_cpu_secs() - before < 0.05 * STEP.as_secs_f64() {
            return;
        }
    }
}

/// CPU seconds used so far by this process's live threads, summed by thread name (tokio names a node's runtime
/// threads after the node; the logger's writer is `log-writer`).
fn thread_cpu() -> HashMap<String, f64> {
    let mut out = HashMap::new();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        // After the name: state is field 3; utime and stime are fields 14 and 15.
        let ticks: u64 =
            stat[close + 1..].split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
        *out.entry(name).or_insert(0.0) += ticks as f64 / tick;
    }
    out
}

/// Microseconds of CPU per item that each named thread spent between two [`thread_cpu`] readings; `extra` adds
/// threads measured by themselves (the publisher, a producer that has ended).
fn cpu_per_item(before: &HashMap<String, f64>, names: &[&str], extra: &[(&str, f64)], items: u64) -> String {
    let mut after = thread_cpu();
    for (name, secs) in extra {
        after.insert(name.to_string(), before.get(*name).unwrap_or(&0.0) + secs);
    }
    let used = |n: &str| after.get(n).unwrap_or(&0.0) - before.get(n).unwrap_or(&0.0);
    names.iter().map(|n| format!("{n} {:.2}", used(n) * 1e6 / items.max(1) as f64)).collect::<Vec<_>>().join(", ")
}

fn join(args: &Args) -> anyhow::Result<JoinRun> {
    let names: Vec<String> = (1..=args.workers).map(|i| format!("worker-{i}")).collect();
    let cluster = Cluster::new(&names.iter().map(String::as_str).collect::<Vec<_>>(), args.node_threads)?;
    let manager = cluster.start_manager()?;
    // The simulated workers share one runtime: node runtimes without capture, each with its own link and port.
    let runtime = client_runtime(args.node_threads)?;
    let started = Instant::now();
    let workers: Vec<Node> = names
        .iter()
        .map(|n| {
            let cfg = cluster.config(spec(n, Role::Worker)?, ShipSettings::default());
            runtime.block_on(Node::start(cfg))
        })
        .collect::<anyhow::Result<_>>()?;
    let members = args.workers + 1;
    let mut nodes: Vec<&Node> = workers.iter().collect();
    nodes.push(&manager.node);
    let epoch_everywhere = |nodes: &[&Node]| {
        let v = manager.node.view();
        v.members.len() == members && v.ready && nodes.iter().all(|n| n.view().epoch == v.epoch)
    };
    poll_until(Duration::from_secs(120), || epoch_everywhere(&nodes))
        .context("the workers did not all join within 120 s")?;
    let startup_secs = started.elapsed().as_secs_f64();
    let cpu_before = process_cpu_secs();
    std::thread::sleep(Duration::from_secs(2));
    let idle_cpu = (process_cpu_secs() - cpu_before) / 2.0;

    let joined = Instant::now();
    let proxy = cluster.start_named("proxy-1", Role::Proxy)?;
    nodes.push(&proxy.node);
    let settled = poll_until(Duration::from_secs(30), || all_see(&nodes, "proxy-1"))
        .context("the join did not settle within 30 s")?;
    let linked = poll_until(Duration::from_secs(30), || proxy.node.links().len() == members)
        .context("the workers did not all link to the new proxy within 30 s")?;
    runtime.shutdown_background();
    Ok(JoinRun {
        workers: args.workers,
        startup_secs,
        idle_cpu,
        settle_secs: (settled - joined).as_secs_f64(),
        linked_secs: (linked - joined).as_secs_f64(),
    })
}

// ---- report ----

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The allocator of the zeek-node binary, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: zeek_node::alloc::Mimalloc = zeek_node::alloc::Mimalloc;

/// Seconds per once-a-second expiry of a proxy's state over an hour of network time: the store's, and a walk of
/// a `HashMap` holding the same deadlines (the two see the same writes, in the same order).
fn state_expiry(keys: u64) -> (f64, f64) {
    use zeek_node::cluster::state::StateStore;
    const DAY: f64 = 86_400.0;
    const HOUR: u64 = 3_600;
    const NEW_PER_SECOND: u64 = 100;
    let mut store = StateStore::default();
    store.define("Known::hosts", DAY);
    let mut walked: HashMap<u64, f64> = HashMap::new();
    // The day before: keys written evenly over it, so about one in 86,400 expires each second of the hour.
    for k in 0..keys {
        let written = k as f64 * DAY / keys as f64;
        store.put("Known::hosts", &Data::Count(k), Data::Bool(true), written);
        walked.insert(k, written + DAY);
    }
    let (mut store_secs, mut walk_secs) = (0.0, 0.0);
    let mut next = keys;
    for second in 1..=HOUR {
        let now = DAY + second as f64;
        for _ in 0..NEW_PER_SECOND {
            store.put("Known::hosts", &Data::Count(next), Data::Bool(true), now);
            walked.insert(next, now + DAY);
            next += 1;
        }
        let t = Instant::now();
        let gone = store.expire(now).len();
        store_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let before = walked.len();
        walked.retain(|_, expires| *expires > now);
        walk_secs += t.elapsed().as_secs_f64();
        assert_eq!(gone, before - walked.len(), "both expire the same keys");
    }
    (store_secs / HOUR as f64, walk_secs / HOUR as f64)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    LazyLock::force(&EPOCH);
    let wants = |s: &str| args.only.iter().any(|o| o == s);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!("machine: {} cores, {cpu}", std::thread::available_parallelism().map_or(0, |n| n.get()));
    let mut targets: Vec<(String, bool)> = Vec::new();

    if wants("relay") {
        let event = sized_event("Bench::relay", Vec::new(), args.event_bytes)?;
        println!(
            "relay: {} events of {} bytes (encoded), worker-1 -> manager -> worker-2 over gRPC",
            args.events,
            event.to_pb().encoded_len()
        );
        let payload: bytes::Bytes = event.to_pb().encode_to_vec().into();
        let (mut rates, mut ratios, mut complete) = (Vec::new(), Vec::new(), true);
        for round in 1..=args.rounds.max(1) {
            println!(" round {round}:");
            // Alternating the order keeps a slow moment of the machine from always falling on the same side.
            let (ours, nats) = if round % 2 == 1 {
                let ours = relay(&args, &event)?;
                (ours, nats(&args, payload.clone())?)
            } else {
                let nats = nats(&args, payload.clone())?;
                (relay(&args, &event)?, nats)
            };
            ours.print("zeek-node relay (one hop)");
            nats.print("NATS (pub -> nats-server -> sub)");
            let ratio = ours.rate() / nats.rate();
            println!("  ratio zeek-node / NATS: {ratio:.2}");
            complete &= ours.delivered == ours.sent;
            rates.push(ours.rate());
            ratios.push(ratio);
        }
        let (rate, ratio) = (median(&mut rates), median(&mut ratios));
        println!(" median of {} rounds: relay {:.2}M events/s, ratio to NATS {ratio:.2}", rates.len(), rate / 1e6);
        targets.push((format!("relay >= 2M events/s: {:.2}M (median)", rate / 1e6), rate >= 2e6 && complete));
        targets.push((format!("relay >= 3x NATS: {ratio:.2}x (median)"), ratio >= 3.0));
    }
    if wants("hrw") {
        settle();
        println!(
            "hrw: publish_hrw worker-1 -> proxy pool (2 proxies) at {} events/s for {} s",
            args.hrw_rate, args.hrw_secs
        );
        let l = hrw_latency(&args)?;
        let p = |q| percentile(&l.counted, q);
        println!(
            "  {} sent in {:.2} s ({:.0}/s); {} timed after warm-up: p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us",
            l.sent,
            l.secs,
            l.sent as f64 / l.secs,
            l.counted.len(),
            p(0.5),
            p(0.99),
            p(0.999),
            p(1.0)
        );
        targets.push((format!("hrw p99 <= 1 ms at {}/s: {:.0} us", args.hrw_rate, p(0.99)), p(0.99) <= 1000.0));
    }
    if wants("logger") {
        settle();
        println!("logger: {} conn records, worker-1 -> logger-1 over gRPC, Zeek TSV to disk", args.records);
        let r = logger(&args)?;
        let rate = r.written as f64 / r.secs;
        println!(
            "  {rate:>10.0} records/s  ({} of {} written in {:.2} s; {} rows in conn.log; {:.2} us CPU per record)",
            r.written,
            r.records,
            r.secs,
            r.rows_in_file,
            r.cpu_secs * 1e6 / r.written.max(1) as f64
        );
        targets
            .push((format!("logger >= 1M records/s: {:.2}M", rate / 1e6), rate >= 1e6 && r.rows_in_file == r.records));
    }
    if wants("join") {
        settle();
        println!("join: a manager with {} connected workers, then proxy-1 joins", args.workers);
        let j = join(&args)?;
        println!(
            "  {} workers joined in {:.2} s; idle cluster {:.2} CPU cores (heartbeats); join settled (every node has \
             the view) in {:.0} ms, every worker linked to the proxy in {:.0} ms",
            j.workers,
            j.startup_secs,
            j.idle_cpu,
            j.settle_secs * 1e3,
            j.linked_secs * 1e3
        );
        targets.push((format!("join settles < 1 s: {:.0} ms", j.settle_secs * 1e3), j.settle_secs < 1.0));
    }
    if wants("state") {
        println!(
            "state: {} keys with a day's expiry; an hour of once-a-second expiry, 100 new keys a second",
            args.state_keys
        );
        let (store, walk) = state_expiry(args.state_keys);
        println!(
            "  store {:.1} us per expiry tick, full walk {:.1} us per tick: {:.0}x",
            store * 1e6,
            walk * 1e6,
            walk / store.max(1e-12)
        );
    }
    println!("targets:");
    for (what, met) in &targets {
        println!("  {:<7} {what}", verdict(*met));
    }
    Ok(())
}
