//! Standalone runs (`zeek-node -r FILE` / `-i IFACE`): a packet source feeds one engine, or N engines on
//! N threads sharded by a symmetric flow hash, and their records go to one log sink. With
//! `-i af_packet::IFACE` there is no dispatcher: each analysis thread reads its own AF_PACKET socket, and the
//! kernel's fanout hash does the sharding.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::capture::{CaptureError, CaptureStats, Next, PcapSource};
use crate::config::AnalysisConfig;
use crate::conn::ConnKey;
use crate::cpus::CpuList;
use crate::decode::{IpDatagram, LinkType, PacketWeird, Reassembler, aggregating_tunnel_inner, decode_ip, decode_link};
use crate::engine::{Engine, EngineStats};
use crate::exchange::{ExpectationPort, SharedExpectations};
use crate::logs::{LogRecord, LogSink};
use crate::watchdog::{Progress, Watchdog};

/// Where packets come from.
#[derive(Debug, Clone)]
pub enum Input {
    File(PathBuf),
    /// A live interface through libpcap.
    Interface(String),
    /// A live interface through AF_PACKET rings (Linux), one socket per analysis thread in one fanout group
    /// (default group id: derived from the pid).
    AfPacket {
        iface: String,
        fanout_id: Option<u16>,
    },
}

/// The prefix of `-i` that selects AF_PACKET capture, as in Zeek's af_packet plugin.
pub const AF_PACKET_PREFIX: &str = "af_packet::";

impl Input {
    /// The input for a `-i` argument: `af_packet::IFACE` or a libpcap interface name.
    pub fn live(arg: String, fanout_id: Option<u16>) -> Input {
        match arg.strip_prefix(AF_PACKET_PREFIX) {
            Some(iface) => Input::AfPacket { iface: iface.to_string(), fanout_id },
            None => Input::Interface(arg),
        }
    }
}

pub struct RunOptions {
    pub input: Input,
    pub filter: Option<String>,
    pub threads: usize,
    /// A live capture's buffer per socket, in MiB: libpcap's kernel buffer, or each AF_PACKET socket's ring
    /// (`None`: [`crate::capture::DEFAULT_PCAP_BUFFER_MIB`], [`crate::capture::af_packet::DEFAULT_RING_MIB`]).
    pub buffer_mib: Option<u32>,
    pub analysis: AnalysisConfig,
    /// Show a progress bar while reading a file (only drawn on a terminal).
    pub progress: bool,
    /// Set to stop a live capture (SIGINT/SIGTERM).
    pub stop: Arc<AtomicBool>,
    /// Where the engines post the connections they expect (FTP data channels) and take the others': given by a
    /// cluster worker, made here when several analysis threads split the traffic.
    pub expectations: Option<Arc<SharedExpectations>>,
    /// Where the threads publish their counters while they run (a cluster worker reports them as metrics).
    pub live: Option<Arc<LiveStats>>,
    /// The CPUs analysis thread `i` is pinned to, in turn ([`CpuList::for_thread`]); empty: not pinned.
    pub pin_cpus: CpuList,
}

/// A run's counters while it runs. Each analysing or capturing thread adds what changed since it last published,
/// at most every [`PUBLISH_EVERY`]: a live capture runs for days, and counters that only arrive when it ends would
/// leave a worker's metrics and `ctl netstats` at zero until then.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// The engines' growing counters, in [`engine_counters`] order.
    engine: [AtomicU64; 8],
    /// A gauge: each thread adds the change in its own open connections.
    active_connections: AtomicI64,
    /// The capture's counters, in [`capture_counters`] order.
    capture: [AtomicU64; 3],
    /// A capture published its counters (reading a file has none).
    captured: AtomicBool,
    /// The packet source is open: a live capture receives from here on (an AF_PACKET socket joined its fanout
    /// group, so the kernel counts it when it spreads flows).
    opened: AtomicBool,
    /// Packets each analysis thread analysed, by thread: how evenly the sharding spreads the traffic.
    thread_packets: std::sync::Mutex<Vec<u64>>,
    /// Each of the run's threads' progress: whoever watches the run learns of one that is stuck (a cluster
    /// worker's run reports to its node's watchdog).
    pub watchdog: Arc<Watchdog>,
}

fn engine_counters(s: &EngineStats) -> [u64; 8] {
    [
        s.packets,
        s.bytes,
        s.connections,
        s.decode_errors,
        s.tcp_ack_events,
        s.tcp_gap_events,
        s.frag_datagrams_dropped,
        s.tcp_streams_given_up,
    ]
}

/// The stats whose [`engine_counters`] are `counters`, with the gauge of open connections beside them.
fn engine_stats(counters: [u64; 8], active_connections: u64) -> EngineStats {
    let [packets, bytes, connections, decode_errors, tcp_ack_events, tcp_gap_events, frags_dropped, given_up] =
        counters;
    EngineStats {
        packets,
        bytes,
        decode_errors,
        connections,
        active_connections,
        tcp_ack_events,
        tcp_gap_events,
        frag_datagrams_dropped: frags_dropped,
        tcp_streams_given_up: given_up,
        ..EngineStats::default()
    }
}

fn capture_counters(c: &CaptureStats) -> [u64; 3] {
    [c.received, c.dropped, c.if_dropped]
}

fn load<const N: usize>(totals: &[AtomicU64; N]) -> [u64; N] {
    totals.each_ref().map(|t| t.load(Ordering::Relaxed))
}

/// Adds to each total how much its counter grew from `before` to `now` (nothing if it went back: libpcap's 32-bit
/// counters wrap).
fn add_growth<const N: usize>(totals: &[AtomicU64; N], now: [u64; N], before: [u64; N]) {
    for ((total, now), before) in totals.iter().zip(now).zip(before) {
        total.fetch_add(now.saturating_sub(before), Ordering::Relaxed);
    }
}

impl LiveStats {
    /// A run's counters, with a thread counted as stuck after `stall_limit` on one step.
    pub fn with_stall_limit(stall_limit: Duration) -> Self {
        LiveStats::watched_by(Arc::new(Watchdog::new(stall_limit)))
    }

    /// A run's counters, its threads watched by `watchdog`.
    pub fn watched_by(watchdog: Arc<Watchdog>) -> Self {
        LiveStats { watchdog, ..LiveStats::default() }
    }

    /// The engines' counters, summed over the threads.
    pub fn engine(&self) -> EngineStats {
        let active_connections = self.active_connections.load(Ordering::Relaxed).max(0) as u64;
        engine_stats(load(&self.engine), active_connections)
    }

    /// Packets each analysis thread analysed so far, by thread index.
    pub fn thread_packets(&self) -> Vec<u64> {
        self.thread_packets.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the run's packet source is open.
    pub fn is_open(&self) -> bool {
        self.opened.load(Ordering::Relaxed)
    }

    /// The capture's counters, summed over its sockets; `None` until a capture published any.
    pub fn capture(&self) -> Option<CaptureStats> {
        let [received, dropped, if_dropped] = load(&self.capture);
        self.captured.load(Ordering::Relaxed).then_some(CaptureStats { received, dropped, if_dropped })
    }
}

/// How often a thread publishes its counters to [`LiveStats`] (checked every [`PUBLISH_CHECK_PACKETS`] packets
/// and whenever the capture is idle, so the clock is not read per packet).
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
const PUBLISH_CHECK_PACKETS: u64 = 4096;
/// How often the AF_PACKET run's writer gives its sink time for housekeeping (flushing, rotation) at least.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// An AF_PACKET thread reports its engine's clock to the log writer at least this often (in packets).
#[cfg(target_os = "linux")]
const CLOCK_PACKETS: u64 = 64;

/// One thread's part in [`LiveStats`]: what it has published so far.
struct Publisher {
    live: Arc<LiveStats>,
    /// The analysis thread it publishes for (none for a capture-only thread).
    thread: Option<usize>,
    engine: EngineStats,
    capture: CaptureStats,
    last: Instant,
}

impl Publisher {
    /// The publisher of analysis thread `thread`, or of a thread that only captures (`None`).
    fn new(live: Option<&Arc<LiveStats>>, thread: Option<usize>) -> Option<Publisher> {
        let live = Arc::clone(live?);
        let (engine, capture) = (EngineStats::default(), CaptureStats::default());
        Some(Publisher { live, thread, engine, capture, last: Instant::now() })
    }

    fn due(&self) -> bool {
        self.last.elapsed() >= PUBLISH_EVERY
    }

    /// Adds what the engine counted since the last call (its counters only grow; open connections move both ways).
    fn engine(&mut self, now: &EngineStats) {
        add_growth(&self.live.engine, engine_counters(now), engine_counters(&self.engine));
        if let Some(thread) = self.thread {
            let mut by_thread = self.live.thread_packets.lock().unwrap_or_else(|e| e.into_inner());
            if by_thread.len() <= thread {
                by_thread.resize(thread + 1, 0);
            }
            by_thread[thread] += now.packets.saturating_sub(self.engine.packets);
        }
        let open = |s: &EngineStats| i64::try_from(s.active_connections).unwrap_or(i64::MAX);
        self.live.active_connections.fetch_add(open(now) - open(&self.engine), Ordering::Relaxed);
        self.engine = *now;
        self.last = Instant::now();
    }

    /// Adds what the capture counted since the last call (libpcap's and the kernel's counters are totals).
    fn capture(&mut self, now: &CaptureStats) {
        add_growth(&self.live.capture, capture_counters(now), capture_counters(&self.capture));
        self.live.captured.store(true, Ordering::Relaxed);
        self.capture = *now;
        self.last = Instant::now();
    }
}

/// The progress handle of the run's thread `name`, watched when the run is.
fn watched(live: Option<&Arc<LiveStats>>, name: impl Into<String>) -> Progress {
    live.map_or_else(Progress::unwatched, |live| live.watchdog.watch(name))
}

/// Engine `id`'s part in the exchange of expectations, if there is one.
fn attach(shared: Option<&Arc<SharedExpectations>>, id: usize, engine: &mut Engine) -> Option<ExpectationPort> {
    let port = shared?.port(id);
    port.attach(engine);
    Some(port)
}

/// One packet to analyse: its time, link type, bytes and, when the capture says, its length on the wire.
struct Frame<'a> {
    ts: f64,
    link: LinkType,
    data: &'a [u8],
    wire_len: Option<usize>,
}

/// Analyses one packet (through the engine's part in the exchange of expectations, if it has one).
fn analyse(engine: &mut Engine, port: &mut Option<ExpectationPort>, f: Frame<'_>) {
    match port {
        Some(port) => port.analyse_on_wire(engine, f.ts, f.link, f.data, f.wire_len),
        None => engine.process_packet_on_wire(f.ts, f.link, f.data, f.wire_len),
    }
}

/// Whether records are ready to be written.
fn records_ready(engine: &Engine, port: &Option<ExpectationPort>) -> bool {
    engine.pending_records() > 0 || port.as_ref().is_some_and(ExpectationPort::has_released)
}

/// The records ready to be written.
fn take_records(engine: &mut Engine, port: &mut Option<ExpectationPort>) -> Vec<LogRecord> {
    match port {
        Some(port) => port.take_records(engine),
        None => engine.drain_records().collect(),
    }
}

/// Ends the analysis: connections kept for a late expectation are settled first.
fn finish(engine: &mut Engine, port: &mut Option<ExpectationPort>) {
    if let Some(port) = port {
        port.finish(engine);
    }
    engine.finish();
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub engine: EngineStats,
    pub capture: Option<CaptureStats>,
    /// The savefile ended inside a record; what came before was analysed.
    pub truncated: Option<String>,
    pub records: u64,
    /// Packets each analysis thread analysed, when the run had several: how evenly the sharding spread them.
    pub thread_packets: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("writing logs: {0}")]
    Log(std::io::Error),
}

// By hand, not `#[from]`: that would make the error its source too, and a chain would print it twice.
impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        RunError::Log(e)
    }
}

/// Tells whoever watches the run that its packet source is open.
fn mark_open(opts: &RunOptions) {
    if let Some(live) = &opts.live {
        live.opened.store(true, Ordering::Relaxed);
    }
}

/// Runs analysis to the end of the input (or until `stop`), writing every record to `sink`.
pub fn run(opts: RunOptions, sink: &mut dyn LogSink) -> Result<RunSummary, RunError> {
    let mut source = match &opts.input {
        Input::File(p) => PcapSource::open_file(p, opts.filter.as_deref())?,
        Input::Interface(i) => {
            let buffer_mib = opts.buffer_mib.unwrap_or(crate::capture::DEFAULT_PCAP_BUFFER_MIB);
            let source = PcapSource::open_live(i, opts.filter.as_deref(), 65535, buffer_mib)?;
            tracing::info!(iface = %i, threads = opts.threads, buffer_mib, "capturing with libpcap");
            source
        }
        Input::AfPacket { iface, fanout_id } => {
            let summary = run_af_packet(iface, *fanout_id, &opts, sink)?;
            sink.close()?;
            return Ok(summary);
        }
    };
    mark_open(&opts);
    let progress = match (&opts.input, opts.progress) {
        (Input::File(p), true) => Some(progress_bar(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))),
        _ => None,
    };
    log_pinning(&opts.pin_cpus, opts.threads.max(1));
    let mut summary = if opts.threads <= 1 {
        // This thread analyses.
        if let Some(cpu) = opts.pin_cpus.for_thread(0) {
            pin_analysis_thread(0, cpu);
        }
        run_single(&mut source, &opts, sink, progress.as_ref())?
    } else {
        run_sharded(&mut source, &opts, sink, progress.as_ref())?
    };
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    summary.capture = source.stats();
    sink.close()?;
    Ok(summary)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr_with_hz(4));
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// Network time while a live link is idle: the wall clock, as Zeek's main loop sets it in a lull so that its timers
/// (capture-loss's measurements among them) still run; it never goes back.
fn idle_network_time(engine: &Engine) -> f64 {
    wall_clock().max(engine.network_time())
}

fn wall_clock() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// What an analysis thread hands the thread that writes the logs: its records, and its engine's network time and
/// counters after them (for [`LogSink::packet_analysed`]).
struct ThreadOutput {
    thread: usize,
    records: Vec<LogRecord>,
    network_time: f64,
    stats: EngineStats,
    /// An AF_PACKET thread's socket counters, when it reports its clock.
    capture: Option<CaptureStats>,
}

impl ThreadOutput {
    fn take(thread: usize, engine: &mut Engine, port: &mut Option<ExpectationPort>) -> Self {
        let records = take_records(engine, port);
        ThreadOutput { thread, records, network_time: engine.network_time(), stats: engine.stats(), capture: None }
    }
}

/// The analysis threads' latest network times and counters: the process's network time is the latest of them and
/// its counters are their sums, as one engine's would be.
#[derive(Default)]
struct ThreadClocks {
    engines: Vec<Option<(f64, EngineStats)>>,
    /// The AF_PACKET threads' latest socket counters.
    captures: Vec<Option<CaptureStats>>,
}

impl ThreadClocks {
    /// Writes a thread's records, then tells the sink where the threads stand.
    fn write(&mut self, sink: &mut dyn LogSink, out: ThreadOutput, count: &mut u64) -> std::io::Result<()> {
        write_all(sink, out.records.into_iter(), count)?;
        if self.engines.len() <= out.thread {
            self.engines.resize(out.thread + 1, None);
            self.captures.resize(out.thread + 1, None);
        }
        if let Some(slot) = self.engines.get_mut(out.thread) {
            *slot = Some((out.network_time, out.stats));
        }
        if let (Some(c), Some(slot)) = (out.capture, self.captures.get_mut(out.thread)) {
            *slot = Some(c);
            let mut total = CaptureStats::default();
            for c in self.captures.iter().flatten() {
                total.add(c);
            }
            sink.capture_counters(&total);
        }
        let (now, total) = self.current();
        if now > 0.0 {
            sink.packet_analysed(now, &total);
        }
        Ok(())
    }

    /// The latest network time and the summed counters.
    fn current(&self) -> (f64, EngineStats) {
        let mut now = 0.0f64;
        let mut total = EngineStats::default();
        for (t, s) in self.engines.iter().flatten() {
            now = now.max(*t);
            total.add(s);
        }
        (now, total)
    }

    /// A live link is idle: network time follows the wall clock ([`idle_network_time`]).
    fn idle(&self, sink: &mut dyn LogSink) {
        let (now, total) = self.current();
        sink.packet_analysed(wall_clock().max(now), &total);
    }

    /// Every thread has reported the engine it had before it logged what was still open: the end of input.
    fn ended(&self, sink: &mut dyn LogSink) {
        let (now, total) = self.current();
        sink.input_ended(now, &total);
    }
}

/// A thread's input ended: its engine logs what is still open, and the output reports the counters from before
/// that, as Zeek's termination measures them (stats.log's last row).
fn ended(thread: usize, engine: &mut Engine, port: &mut Option<ExpectationPort>) -> ThreadOutput {
    let before = engine.stats();
    finish(engine, port);
    ThreadOutput { stats: before, ..ThreadOutput::take(thread, engine, port) }
}

fn write_all(sink: &mut dyn LogSink, records: impl Iterator<Item = LogRecord>, count: &mut u64) -> std::io::Result<()> {
    for r in records {
        sink.write(&r)?;
        *count += 1;
    }
    Ok(())
}

fn run_single(
    source: &mut PcapSource,
    opts: &RunOptions,
    sink: &mut dyn LogSink,
    progress_bar: Option<&indicatif::ProgressBar>,
) -> Result<RunSummary, RunError> {
    let link = source.link_type();
    let mut engine = Engine::new(opts.analysis.clone());
    let mut port = attach(opts.expectations.as_ref(), 0, &mut engine);
    let mut summary = RunSummary::default();
    let mut publisher = Publisher::new(opts.live.as_ref(), Some(0));
    // This one thread reads, analyses and writes.
    let mut progress = watched(opts.live.as_ref(), analysis_thread_name(0));
    let live = matches!(opts.input, Input::Interface(_));
    let report_packets = sink.wants_packet_reports();
    if report_packets && live {
        // Reading live from here on: the capture's counts start at zero (Zeek's `zeek_init` reads them so).
        sink.capture_counters(&CaptureStats::default());
    }
    let mut n = 0u64;
    loop {
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        let mut idle = false;
        match source.next_packet()? {
            Next::Packet(p) => {
                analyse(&mut engine, &mut port, Frame { ts: p.ts, link, data: p.data, wire_len: p.wire_len });
                n += 1;
            }
            Next::Idle => idle = true,
            Next::End => break,
            Next::Truncated(msg) => {
                summary.truncated = Some(msg);
                break;
            }
        }
        if records_ready(&engine, &port) {
            write_all(sink, take_records(&mut engine, &mut port).into_iter(), &mut summary.records)?;
        }
        if report_packets && !idle {
            sink.packet_analysed(engine.network_time(), &engine.stats());
        } else if report_packets && live {
            sink.packet_analysed(idle_network_time(&engine), &engine.stats());
        }
        if idle || n.is_multiple_of(PUBLISH_CHECK_PACKETS) {
            progress.advanced();
            if let Some(pb) = progress_bar {
                pb.set_position(source.bytes_read);
            }
            if live {
                sink.housekeeping()?;
            }
            if let Some(p) = publisher.as_mut().filter(|p| p.due()) {
                p.engine(&engine.stats());
                if let Some(c) = source.stats() {
                    p.capture(&c);
                }
            }
            if report_packets
                && live
                && let Some(c) = source.stats()
            {
                sink.capture_counters(&c);
            }
        }
    }
    if report_packets {
        sink.input_ended(engine.network_time(), &engine.stats());
    }
    finish(&mut engine, &mut port);
    write_all(sink, take_records(&mut engine, &mut port).into_iter(), &mut summary.records)?;
    summary.engine = engine.stats();
    if let Some(p) = &mut publisher {
        p.engine(&summary.engine);
        if let Some(c) = source.stats() {
            p.capture(&c);
        }
    }
    Ok(summary)
}

/// A batch of packets for one analysis thread: one buffer, many slices.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// (time, link type, start in `data`, length, length on the wire when known).
    packets: Vec<(f64, LinkType, usize, usize, Option<usize>)>,
    /// Weirds of the reader's fragment reassembly for this thread: (how many of `packets` come before it, time,
    /// weird).
    weirds: Vec<(usize, f64, PacketWeird)>,
    /// After these packets, the thread has had every packet before this packet time it will get.
    mark: Option<f64>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.packets.is_empty() && self.weirds.is_empty()
    }
}

/// Packet time between the marks the reader sends every analysis thread (they bound how long a new connection is
/// kept for a late expectation, and how long its records wait).
const MARK_EVERY: f64 = 1.0;

const BATCH_PACKETS: usize = 256;

fn run_sharded(
    source: &mut PcapSource,
    opts: &RunOptions,
    sink: &mut dyn LogSink,
    progress_bar: Option<&indicatif::ProgressBar>,
) -> Result<RunSummary, RunError> {
    let link = source.link_type();
    let threads = opts.threads;
    let (rec_tx, rec_rx): (Sender<ThreadOutput>, Receiver<ThreadOutput>) = bounded(64);
    let mut clocks = ThreadClocks::default();
    let report_packets = sink.wants_packet_reports();
    if report_packets && matches!(opts.input, Input::Interface(_)) {
        // Reading live from here on: the capture's counts start at zero (Zeek's `zeek_init` reads them so).
        sink.capture_counters(&CaptureStats::default());
    }
    let mut senders = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    // One reader hands every thread its packets in order, so the threads can share expectations in packet-time
    // order: the results do not depend on their pace (exchange.rs).
    let shared = opts.expectations.clone().unwrap_or_else(|| Arc::new(SharedExpectations::ordered(threads)));
    let mut next_mark = f64::NEG_INFINITY;
    for i in 0..threads {
        let (tx, rx) = bounded::<Batch>(16);
        senders.push(tx);
        let mut engine = Engine::new(thread_config(&opts.analysis, i));
        let port = attach(Some(&shared), i, &mut engine);
        let (rec_tx, publisher) = (rec_tx.clone(), Publisher::new(opts.live.as_ref(), Some(i)));
        let progress = watched(opts.live.as_ref(), analysis_thread_name(i));
        let run = move || analysis_thread(i, engine, port, rx, rec_tx, (publisher, progress));
        handles.push(spawn_analysis_thread(&opts.pin_cpus, i, run));
    }
    drop(rec_tx);
    let mut capture_publisher = Publisher::new(opts.live.as_ref(), None);
    // The reader also writes the threads' records.
    let mut reader = watched(opts.live.as_ref(), "packet reader");

    let mut summary = RunSummary::default();
    let mut frags = Reassembler::default();
    let mut frag_weirds = Vec::new();
    let mut batches: Vec<Batch> = (0..threads).map(|_| Batch::default()).collect();
    let mut n = 0u64;
    let mut records = 0u64;
    let mut write_error = None;
    loop {
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        let mut idle = false;
        match source.next_packet()? {
            Next::Packet(p) => {
                n += 1;
                if n == 1 {
                    // Network time starts at the first packet, before any thread has analysed it (Zeek's
                    // `zeek_init` when reading a trace).
                    sink.packet_analysed(p.ts, &EngineStats::default());
                }
                if p.ts >= next_mark {
                    // Every packet before this one's time is with its thread: say so to all of them.
                    for (i, b) in batches.iter_mut().enumerate() {
                        let _ = senders[i].send(Batch { mark: Some(p.ts), ..std::mem::take(b) });
                    }
                    next_mark = p.ts + MARK_EVERY;
                }
                let sharded = shard_of(link, p.ts, p.data, threads, &mut frags, &mut frag_weirds);
                for w in frag_weirds.drain(..) {
                    let b = &mut batches[weird_shard(&w, threads)];
                    b.weirds.push((b.packets.len(), p.ts, w));
                }
                let (shard, data, plink, wire_len) = match sharded {
                    Some(Shard::Whole(s)) => (s, None, link, p.wire_len),
                    Some(Shard::Reassembled(s, whole)) => (s, Some(whole), LinkType::Raw, None),
                    None => continue,
                };
                let bytes = data.as_deref().unwrap_or(p.data);
                let b = &mut batches[shard];
                let start = b.data.len();
                b.data.extend_from_slice(bytes);
                b.packets.push((p.ts, plink, start, bytes.len(), wire_len));
                if b.packets.len() >= BATCH_PACKETS {
                    let full = std::mem::take(b);
                    let _ = senders[shard].send(full);
                }
            }
            Next::Idle => {
                idle = true;
                if matches!(opts.input, Input::Interface(_)) {
                    clocks.idle(sink);
                }
                for (i, b) in batches.iter_mut().enumerate() {
                    if !b.is_empty() {
                        let _ = senders[i].send(std::mem::take(b));
                    }
                }
            }
            Next::End => break,
            Next::Truncated(msg) => {
                summary.truncated = Some(msg);
                break;
            }
        }
        while let Ok(batch) = rec_rx.try_recv() {
            if let Err(e) = clocks.write(sink, batch, &mut records) {
                write_error.get_or_insert(e);
            }
        }
        if idle || n.is_multiple_of(PUBLISH_CHECK_PACKETS) {
            reader.advanced();
            if let Some(pb) = progress_bar {
                pb.set_position(source.bytes_read);
            }
            if matches!(opts.input, Input::Interface(_))
                && let Err(e) = sink.housekeeping()
            {
                write_error.get_or_insert(e);
            }
            if let Some(p) = capture_publisher.as_mut().filter(|p| p.due()) {
                // The fragments reassembled here, before sharding, are no thread's engine's.
                p.engine(&sharding_stats(&frags));
                if let Some(c) = source.stats() {
                    p.capture(&c);
                }
            }
            if report_packets
                && matches!(opts.input, Input::Interface(_))
                && let Some(c) = source.stats()
            {
                sink.capture_counters(&c);
            }
        }
    }
    if let Some(p) = capture_publisher.as_mut() {
        p.engine(&sharding_stats(&frags));
        if let Some(c) = source.stats() {
            p.capture(&c);
        }
    }
    summary.engine.add(&sharding_stats(&frags));
    // From here on the reader waits for the analysis threads, which are watched themselves.
    reader.waiting();
    for (i, b) in batches.into_iter().enumerate() {
        if !b.is_empty() {
            let _ = senders[i].send(b);
        }
    }
    drop(senders);
    for batch in rec_rx.iter() {
        if let Err(e) = clocks.write(sink, batch, &mut records) {
            write_error.get_or_insert(e);
        }
    }
    if report_packets {
        clocks.ended(sink);
    }
    for h in handles {
        if let Ok(stats) = h.join() {
            summary.engine.add(&stats);
            summary.thread_packets.push(stats.packets);
        }
    }
    summary.records = records;
    match write_error {
        Some(e) => Err(e.into()),
        None => Ok(summary),
    }
}

/// How the watchdog and the logs name analysis thread `i` (the `thread` label of its metrics is `i`).
fn analysis_thread_name(i: usize) -> String {
    format!("analysis thread {i}")
}

/// Starts analysis thread `i`, named `analysis-<i>` for `top -H`, `ps -L` and `perf`, on its CPU if the run pins.
fn spawn_analysis_thread<T: Send + 'static>(
    cpus: &CpuList,
    i: usize,
    run: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let cpu = cpus.for_thread(i);
    thread::Builder::new()
        .name(format!("analysis-{i}"))
        .spawn(move || {
            if let Some(cpu) = cpu {
                pin_analysis_thread(i, cpu);
            }
            run()
        })
        .expect("the system starts a thread")
}

/// Pins the calling thread, analysis thread `i`, to `cpu`. The CPUs were checked against the process's own at start,
/// so this fails only if one went offline since: the thread then runs unpinned, which costs speed, not analysis.
fn pin_analysis_thread(i: usize, cpu: usize) {
    if let Err(e) = crate::cpus::pin_current_thread(cpu) {
        tracing::warn!(thread = i, cpu, "cannot pin the analysis thread to its CPU: {e}");
    }
}

/// Says where the run's analysis threads are pinned, if they are.
fn log_pinning(cpus: &CpuList, threads: usize) {
    if !cpus.0.is_empty() {
        let by_thread = CpuList((0..threads).filter_map(|i| cpus.for_thread(i)).collect());
        tracing::info!(threads, cpus = %by_thread, "analysis threads pinned, thread i to the i-th CPU");
    }
}

/// Thread `i`'s analysis settings: its own uid seed, so uids stay unique across threads.
fn thread_config(analysis: &AnalysisConfig, i: usize) -> AnalysisConfig {
    let mut cfg = analysis.clone();
    cfg.seed = cfg.seed.wrapping_add(i as u64 * 0x1000_0001);
    cfg
}

#[cfg(not(target_os = "linux"))]
fn run_af_packet(_: &str, _: Option<u16>, _: &RunOptions, _: &mut dyn LogSink) -> Result<RunSummary, RunError> {
    Err(CaptureError::AfPacketUnsupported.into())
}

/// AF_PACKET capture: one socket and one engine per thread; the main thread only writes records.
#[cfg(target_os = "linux")]
fn run_af_packet(
    iface: &str,
    fanout_id: Option<u16>,
    opts: &RunOptions,
    sink: &mut dyn LogSink,
) -> Result<RunSummary, RunError> {
    use crate::capture::af_packet::{self, AfPacketConfig};
    let cfg = AfPacketConfig {
        iface: iface.to_string(),
        fanout_id: fanout_id.unwrap_or_else(af_packet::default_fanout_id),
        filter: opts.filter.clone(),
        ring_mib: opts.buffer_mib.unwrap_or(af_packet::DEFAULT_RING_MIB).max(af_packet::MIN_RING_MIB),
    };
    let sockets = af_packet::open_group(&cfg, opts.threads.max(1))?;
    let (threads, fanout_id, ring_mib) = (sockets.len(), cfg.fanout_id, cfg.ring_mib);
    tracing::info!(iface, threads, fanout_id, ring_mib, "capturing with AF_PACKET");
    log_pinning(&opts.pin_cpus, threads);
    mark_open(opts);
    let (rec_tx, rec_rx) = bounded::<ThreadOutput>(64);
    let mut clocks = ThreadClocks::default();
    let report_clock = sink.wants_packet_reports();
    if report_clock {
        // Reading live from here on: the sockets' counts start at zero (Zeek's `zeek_init` reads them so).
        sink.capture_counters(&CaptureStats::default());
    }
    // Each thread reads its own socket: expectations apply on arrival (no common order to wait for).
    let shared = opts.expectations.clone().or_else(|| (opts.threads > 1).then(Arc::default));
    let handles: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let mut engine = Engine::new(thread_config(&opts.analysis, i));
            let port = attach(shared.as_ref(), i, &mut engine);
            let publisher = Publisher::new(opts.live.as_ref(), Some(i));
            let (stop, out) = (Arc::clone(&opts.stop), rec_tx.clone());
            let thread = CaptureThread {
                index: i,
                report_clock,
                progress: watched(opts.live.as_ref(), analysis_thread_name(i)),
            };
            spawn_analysis_thread(&opts.pin_cpus, i, move || {
                capture_thread(thread, socket, engine, port, &stop, &out, publisher)
            })
        })
        .collect();
    drop(rec_tx);

    let mut summary = RunSummary::default();
    let mut write_error = None;
    // Waits for the threads' output a while at most: the sink's housekeeping runs on an idle link too.
    let mut housekept = Instant::now();
    let mut writer = watched(opts.live.as_ref(), "log writer");
    loop {
        writer.advanced();
        match rec_rx.recv_timeout(HOUSEKEEPING_EVERY) {
            Ok(batch) => {
                if let Err(e) = clocks.write(sink, batch, &mut summary.records) {
                    write_error.get_or_insert(e);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if housekept.elapsed() >= HOUSEKEEPING_EVERY {
            housekept = Instant::now();
            if let Err(e) = sink.housekeeping() {
                write_error.get_or_insert(e);
            }
        }
    }
    // The capture threads are finishing, watched themselves.
    writer.waiting();
    if report_clock {
        clocks.ended(sink);
    }
    let mut capture_error = None;
    let mut capture = CaptureStats::default();
    for h in handles {
        let Ok(done) = h.join() else { continue };
        summary.engine.add(&done.engine);
        summary.thread_packets.push(done.engine.packets);
        capture.add(&done.capture);
        if let Some(e) = done.error {
            capture_error.get_or_insert(e);
        }
    }
    summary.capture = Some(capture);
    if let Some(e) = capture_error {
        return Err(e.into());
    }
    match write_error {
        Some(e) => Err(e.into()),
        None => Ok(summary),
    }
}

#[cfg(target_os = "linux")]
struct CaptureThreadDone {
    engine: EngineStats,
    capture: CaptureStats,
    error: Option<CaptureError>,
}

/// Which AF_PACKET thread this is, and whether the sink wants its engine's clock even without records
/// ([`LogSink::wants_packet_reports`]: capture-loss measures on it).
#[cfg(target_os = "linux")]
struct CaptureThread {
    index: usize,
    report_clock: bool,
    progress: Progress,
}

/// Captures and analyses one fanout share until `stop`; a capture error stops every thread, and the logs of
/// what was seen are still flushed.
#[cfg(target_os = "linux")]
fn capture_thread(
    mut thread: CaptureThread,
    mut socket: crate::capture::af_packet::AfPacketSource,
    mut engine: Engine,
    mut port: Option<ExpectationPort>,
    stop: &AtomicBool,
    out: &Sender<ThreadOutput>,
    mut publisher: Option<Publisher>,
) -> CaptureThreadDone {
    let link = socket.link_type();
    let mut error = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut idle = false;
        match socket.next_packet() {
            Ok(Next::Packet(p)) => {
                analyse(&mut engine, &mut port, Frame { ts: p.ts, link, data: p.data, wire_len: p.wire_len });
                n += 1;
            }
            Ok(_) => idle = true,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                error = Some(e);
            }
        }
        // The clock goes with the records, and at least every so many packets and when the link is idle.
        let clock_due = thread.report_clock && (idle || n.is_multiple_of(CLOCK_PACKETS));
        if records_ready(&engine, &port) || clock_due {
            let mut output = ThreadOutput::take(thread.index, &mut engine, &mut port);
            if idle {
                output.network_time = idle_network_time(&engine);
            }
            if clock_due {
                output.capture = Some(socket.stats());
            }
            let _ = out.send(output);
        }
        if idle || n.is_multiple_of(PUBLISH_CHECK_PACKETS) {
            thread.progress.advanced();
            if let Some(p) = publisher.as_mut().filter(|p| p.due()) {
                p.engine(&engine.stats());
                p.capture(&socket.stats());
            }
        }
    }
    if error.is_none() {
        drain_ring(&mut socket, &mut engine, &mut port);
    }
    let _ = out.send(ended(thread.index, &mut engine, &mut port));
    let done = CaptureThreadDone { engine: engine.stats(), capture: socket.stats(), error };
    if let Some(p) = &mut publisher {
        p.engine(&done.engine);
        p.capture(&done.capture);
    }
    done
}

/// Analyses what the kernel captured before the stop: waits until partly filled blocks are handed over, then
/// reads what is ready, for a bounded time (traffic keeps coming on a busy link).
#[cfg(target_os = "linux")]
fn drain_ring(
    socket: &mut crate::capture::af_packet::AfPacketSource,
    engine: &mut Engine,
    port: &mut Option<ExpectationPort>,
) {
    use crate::capture::af_packet::AfPacketSource;
    const DRAIN_LIMIT: Duration = Duration::from_millis(250);
    thread::sleep(AfPacketSource::block_retire_delay() * 2);
    let link = socket.link_type();
    let started = Instant::now();
    while started.elapsed() < DRAIN_LIMIT {
        match socket.next_ready_packet() {
            Ok(Next::Packet(p)) => analyse(engine, port, Frame { ts: p.ts, link, data: p.data, wire_len: p.wire_len }),
            _ => break,
        }
    }
}

fn analysis_thread(
    thread: usize,
    mut engine: Engine,
    mut port: Option<ExpectationPort>,
    rx: Receiver<Batch>,
    out: Sender<ThreadOutput>,
    (mut publisher, mut progress): (Option<Publisher>, Progress),
) -> EngineStats {
    loop {
        progress.waiting();
        let Ok(batch) = rx.recv() else { break };
        progress.advanced();
        let mut weirds = batch.weirds.into_iter().peekable();
        for (i, &(ts, link, start, len, wire_len)) in batch.packets.iter().enumerate() {
            while let Some((_, ts, w)) = weirds.next_if(|(before, _, _)| *before <= i) {
                engine.report_capture_weird(ts, w);
            }
            analyse(&mut engine, &mut port, Frame { ts, link, data: &batch.data[start..start + len], wire_len });
        }
        for (_, ts, w) in weirds {
            engine.report_capture_weird(ts, w);
        }
        if let (Some(port), Some(before)) = (port.as_mut(), batch.mark) {
            port.mark(&mut engine, before);
        }
        // Every batch: the records if any, and the engine's clock.
        let _ = out.send(ThreadOutput::take(thread, &mut engine, &mut port));
        if let Some(p) = publisher.as_mut().filter(|p| p.due()) {
            p.engine(&engine.stats());
        }
    }
    let _ = out.send(ended(thread, &mut engine, &mut port));
    let stats = engine.stats();
    if let Some(p) = &mut publisher {
        p.engine(&stats);
    }
    stats
}

pub enum Shard {
    Whole(usize),
    /// A fragment completed a datagram: the whole datagram goes on as raw IP.
    Reassembled(usize, Vec<u8>),
}

/// Picks the analysis thread for a packet: both directions of a flow hash the same. Fragments are
/// reassembled here first, so every piece of a datagram reaches the thread that owns its flow; the weirds that
/// reassembly raises (`src/Frag.cc`'s, flow weirds between the two hosts) are pushed to `weirds`, for the thread
/// [`weird_shard`] names to report.
pub fn shard_of(
    link: LinkType,
    ts: f64,
    frame: &[u8],
    n: usize,
    frags: &mut Reassembler,
    weirds: &mut Vec<PacketWeird>,
) -> Option<Shard> {
    let Ok(ip_bytes) = decode_link(link, frame) else { return Some(Shard::Whole(0)) };
    let Ok(ip) = decode_ip(ip_bytes, false) else { return Some(Shard::Whole(0)) };
    let Some(frag) = ip.frag else { return Some(Shard::Whole(flow_shard(&ip, n))) };
    if ip.incompletely_captured() {
        // Not reassembled: the engine reports it, and analyses a first fragment (whose ports are there) as it is.
        // A later fragment is only its weird, which belongs with the rest of the pair's.
        let shard = if frag.offset == 0 { flow_shard(&ip, n) } else { host_pair_shard(ip.src, ip.dst, n) };
        return Some(Shard::Whole(shard));
    }
    let whole = frags.add_reporting(ts, &ip, &mut |w| weirds.push(w))?;
    let ip = decode_ip(&whole, false).ok()?;
    let shard = flow_shard(&ip, n);
    Some(Shard::Reassembled(shard, whole))
}

/// What the reassembly in front of the analysis threads counts, as engine counters.
pub(crate) fn sharding_stats(frags: &Reassembler) -> EngineStats {
    EngineStats { frag_datagrams_dropped: frags.dropped, ..EngineStats::default() }
}

/// The thread that reports a weird the sharding reassembly raised: the one its host pair hashes to, so that the
/// weird framework's once-per-pair rules see every weird of a pair, as a single engine would.
pub fn weird_shard(weird: &PacketWeird, n: usize) -> usize {
    weird.hosts.map_or(0, |(src, dst)| host_pair_shard(src, dst, n))
}

fn host_pair_shard(src: IpAddr, dst: IpAddr, n: usize) -> usize {
    (ConnKey::new(src, 0, dst, 0, 0).symmetric_hash() % n as u64) as usize
}

/// How many tunnels deep sharding looks for the flow (Zeek's default `Tunnel::max_depth`).
const SHARDING_TUNNEL_DEPTH: usize = 4;

/// The shard of a datagram's flow: a symmetric hash of its addresses, with its ports when it is TCP or SCTP, of the
/// packet inside the tunnels that carry many flows ([`aggregating_tunnel_inner`]), or of the datagram itself. UDP
/// goes by its addresses only, so that its fragments, which carry no ports but in the first, go with it (here the
/// reader reassembles the capture's own fragments first, but not those inside a tunnel, and the AF_PACKET fanout
/// program ([`crate::capture`]'s, the same rule) sees IPv6 fragments as they are).
pub fn flow_shard(ip: &IpDatagram, n: usize) -> usize {
    let mut ip = ip;
    let mut inner_ip;
    for _ in 0..SHARDING_TUNNEL_DEPTH {
        if ip.frag.is_some() {
            break;
        }
        match aggregating_tunnel_inner(ip).map(|inner| decode_ip(inner, false)) {
            Some(Ok(inner)) => {
                inner_ip = inner;
                ip = &inner_ip;
            }
            _ => break,
        }
    }
    let ports_apply = matches!(ip.proto, 6 | 132) && ip.frag.is_none_or(|f| f.offset == 0);
    let (sp, dp) = match ip.payload.first_chunk::<4>() {
        Some(&[a, b, c, d]) if ports_apply => (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])),
        _ => (0, 0),
    };
    (ConnKey::new(ip.src, sp, ip.dst, dp, ip.proto).symmetric_hash() % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::MemorySink;

    fn stats(packets: u64, active_connections: u64) -> EngineStats {
        EngineStats {
            packets,
            bytes: packets * 100,
            decode_errors: 0,
            connections: packets / 10,
            active_connections,
            tcp_ack_events: packets / 2,
            tcp_gap_events: packets / 50,
            frag_datagrams_dropped: packets / 100,
            tcp_streams_given_up: packets / 25,
            ..EngineStats::default()
        }
    }

    /// Threads publish what changed since their last publication: the totals are the sum of each thread's latest
    /// counters, and open connections go down as well as up.
    #[test]
    fn live_stats_sum_each_threads_latest_counters() {
        let live = Arc::new(LiveStats::default());
        let (mut a, mut b) =
            (Publisher::new(Some(&live), Some(0)).expect("a"), Publisher::new(Some(&live), Some(1)).expect("b"));
        a.engine(&stats(100, 7));
        b.engine(&stats(40, 3));
        a.engine(&stats(250, 2));
        assert_eq!((live.engine().packets, live.engine().bytes, live.engine().active_connections), (290, 29_000, 5));
        assert_eq!((live.engine().tcp_ack_events, live.engine().tcp_gap_events), (145, 5));
        assert_eq!((live.engine().frag_datagrams_dropped, live.engine().tcp_streams_given_up), (2, 11));
        assert_eq!(live.thread_packets(), [250, 40], "each thread's own packets");
        assert!(live.capture().is_none(), "no capture published yet");
        a.capture(&CaptureStats { received: 10, dropped: 1, if_dropped: 0 });
        b.capture(&CaptureStats { received: 5, dropped: 0, if_dropped: 2 });
        a.capture(&CaptureStats { received: 30, dropped: 4, if_dropped: 0 });
        assert_eq!(live.capture(), Some(CaptureStats { received: 35, dropped: 4, if_dropped: 2 }));
        b.engine(&stats(40, 0));
        assert_eq!(live.engine().active_connections, 2);
    }

    /// A run publishes what its engines counted: once it has ended, the live totals are the run's summary, with one
    /// thread and with several.
    #[test]
    fn a_run_publishes_its_counters() {
        let trace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/traces/demo.pcap");
        for threads in [1, 3] {
            let live = Arc::new(LiveStats::default());
            assert!(!live.is_open());
            let opts = RunOptions {
                input: Input::File(trace.clone()),
                filter: None,
                threads,
                buffer_mib: None,
                analysis: AnalysisConfig::default(),
                progress: false,
                stop: Arc::default(),
                expectations: None,
                live: Some(Arc::clone(&live)),
                pin_cpus: CpuList::default(),
            };
            let summary = run(opts, &mut MemorySink::default()).expect("the demo trace is read");
            let published = live.engine();
            assert!(live.is_open(), "the run says its source is open");
            assert!(summary.engine.packets > 1000, "the demo trace has thousands of packets");
            assert_eq!(
                (published.packets, published.bytes, published.connections, published.active_connections),
                (summary.engine.packets, summary.engine.bytes, summary.engine.connections, 0),
                "{threads} thread(s)"
            );
            assert!(summary.engine.tcp_ack_events > 0, "the demo trace has TCP streams");
            assert_eq!(
                (published.tcp_ack_events, published.tcp_gap_events),
                (summary.engine.tcp_ack_events, summary.engine.tcp_gap_events)
            );
        }
    }
}
