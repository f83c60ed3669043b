//! A worker's packet path: capture, analyse with the [`Engine`], ship the records. With `--shard K/N` a worker reads
//! a whole trace but analyses only the connections whose symmetric flow hash is K of N, as a load-balancing tap
//! would hand them to it (this is how `zeek-node cluster -r` splits a trace).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::analyzers::ftp::{self, RemoteChannel, ReportChange, ReportUpdate};
use crate::analyzers::{Expectation, spec_by_name};
use crate::capture::{Next, PcapSource};
use crate::config::AnalysisConfig;
use crate::cpus::CpuList;
use crate::decode::{LinkType, Reassembler};
use crate::detect::cluster::{SharedRuntime, WorkerTap};
use crate::engine::{Engine, EngineStats};
use crate::exchange::{Poster, SharedExpectations};
use crate::logs::{LogRecord, LogSink};
use crate::metrics;
use crate::runner::{self, Input, LiveStats, RunOptions, RunSummary, Shard, shard_of, weird_shard};

use super::data::{Data, Event};
use super::node::{Node, Received, lock};
use super::sync::{Activity, Gate, Settled};
use super::topic;
use crate::retention::{BUDGET, RaisedExpectation, Retention};

/// Records handed to the shipper in chunks of this many.
const SHIP_CHUNK: usize = 512;

/// A [`LogSink`] that ships records to the cluster's loggers instead of writing files: in chunks, and live what
/// waited a second ([`crate::logs::FLUSH_EVERY`]), so a quiet link's records reach the loggers as they happen
/// rather than when a chunk fills (and are not held where a worker's crash would lose them).
pub struct ShippingSink {
    node: Node,
    buffer: Vec<LogRecord>,
    last_ship: Instant,
}

impl ShippingSink {
    pub fn new(node: Node) -> Self {
        ShippingSink { node, buffer: Vec::with_capacity(SHIP_CHUNK), last_ship: Instant::now() }
    }

    fn ship(&mut self) {
        self.last_ship = Instant::now();
        if !self.buffer.is_empty() {
            self.node.log(std::mem::take(&mut self.buffer));
        }
    }

    pub fn extend(&mut self, records: impl Iterator<Item = LogRecord>) {
        self.buffer.extend(records);
        if self.buffer.len() >= SHIP_CHUNK {
            self.ship();
        }
    }
}

impl LogSink for ShippingSink {
    fn write(&mut self, record: &LogRecord) -> std::io::Result<()> {
        self.buffer.push(record.clone());
        if self.buffer.len() >= SHIP_CHUNK {
            self.ship();
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.ship();
        Ok(())
    }

    fn housekeeping(&mut self) -> std::io::Result<()> {
        if self.last_ship.elapsed() >= crate::logs::FLUSH_EVERY {
            self.ship();
        }
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        self.ship();
        Ok(())
    }
}

/// What a worker captures.
pub struct CaptureJob {
    pub input: Input,
    /// `(K, N)`: analyse only shard K (0-based) of N.
    pub shard: Option<(usize, usize)>,
    pub filter: Option<String>,
    /// A live capture's buffer per socket, in MiB ([`RunOptions::buffer_mib`]).
    pub buffer_mib: Option<u32>,
    pub threads: usize,
    /// The CPUs the analysis threads are pinned to ([`RunOptions::pin_cpus`]).
    pub pin_cpus: CpuList,
    pub analysis: AnalysisConfig,
    /// The worker's detections: engine records also go to their handlers.
    pub detect: Option<SharedRuntime>,
    /// Offline clusters: the time barriers the packet loop is held at.
    pub sync: Option<Gate>,
    /// Cluster events handled (FTP expectations from other workers count too).
    pub activity: Activity,
}

/// Zeek's `FTP::sync_add_expected_data`: an FTP data channel announced on one worker, for the worker that sees
/// the data connection. The last argument is the packet time it was announced at.
pub const EXPECT_EVENT: &str = "FTP::sync_add_expected_data";

/// What an FTP data connection reported about its file (fuid, mime type), for the worker whose control connection
/// announced it (which Zeek does not share between workers).
pub const DATA_REPORT_EVENT: &str = "FTP::data_channel_report";

fn expectation_to_event(e: &Expectation, raised_at: f64) -> Event {
    let orig = e.orig_h.map(Data::Addr).into_iter().collect();
    Event::new(
        EXPECT_EVENT,
        vec![
            Data::Vector(orig),
            Data::Addr(e.resp_h),
            Data::Count(u64::from(e.resp_p)),
            Data::Str(e.analyzer.unwrap_or_default().to_string()),
            Data::Str(e.service.to_string()),
            Data::Time(e.expires),
            Data::Time(raised_at),
        ],
    )
}

fn time_arg(d: Option<&Data>) -> Option<f64> {
    match d? {
        Data::Time(t) | Data::Double(t) => Some(*t),
        _ => None,
    }
}

/// The engine keeps analyzer and service names as `'static` strings: known ones are found in the registry.
fn expectation_from_event(ev: &Event) -> Option<RaisedExpectation> {
    let static_name = |d: Option<&Data>| d.and_then(Data::as_str).and_then(spec_by_name).map(|s| s.name);
    let orig_h = match ev.args.first()? {
        Data::Vector(v) => v.first().and_then(Data::as_addr),
        _ => None,
    };
    let analyzer_name = ev.args.get(3).and_then(Data::as_str)?;
    let e = Expectation {
        orig_h,
        resp_h: ev.args.get(1).and_then(Data::as_addr)?,
        resp_p: u16::try_from(ev.args.get(2).and_then(Data::as_count)?).ok()?,
        analyzer: if analyzer_name.is_empty() { None } else { Some(static_name(ev.args.get(3))?) },
        service: static_name(ev.args.get(4))?,
        expires: time_arg(ev.args.get(5))?,
    };
    // Without a time, the expectation counts as raised long before.
    Some((e, time_arg(ev.args.get(6)).unwrap_or(f64::NEG_INFINITY)))
}

fn report_to_event(channel: &RemoteChannel, u: &ReportUpdate) -> Event {
    let (field, value) = match &u.change {
        ReportChange::Fuid(f) => ("fuid", Some(f.clone())),
        ReportChange::MimeType(m) => ("mime_type", m.clone()),
    };
    Event::new(
        DATA_REPORT_EVENT,
        vec![
            Data::Addr(channel.resp_h),
            Data::Count(u64::from(channel.resp_p)),
            Data::Time(u.ts),
            Data::Str(field.to_string()),
            Data::Vector(value.map(Data::Str).into_iter().collect()),
        ],
    )
}

fn report_from_event(ev: &Event) -> Option<(IpAddr, u16, ReportUpdate)> {
    let resp_h = ev.args.first().and_then(Data::as_addr)?;
    let resp_p = u16::try_from(ev.args.get(1).and_then(Data::as_count)?).ok()?;
    let ts = time_arg(ev.args.get(2))?;
    let value = match ev.args.get(4)? {
        Data::Vector(v) => v.first().and_then(Data::as_str).map(str::to_string),
        _ => return None,
    };
    let change = match ev.args.get(3).and_then(Data::as_str)? {
        "fuid" => ReportChange::Fuid(value?),
        "mime_type" => ReportChange::MimeType(value),
        _ => return None,
    };
    Some((resp_h, resp_p, ReportUpdate { ts, change }))
}

/// What other workers sent, waiting for this worker's packet loop.
#[derive(Default)]
struct Arrivals {
    expectations: Vec<RaisedExpectation>,
    reports: Vec<(IpAddr, u16, ReportUpdate)>,
}

#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Arrivals>>);

impl Inbox {
    fn install(node: &Node, activity: Activity) -> Inbox {
        let inbox = Inbox::default();
        inbox
            .on(node, &activity, EXPECT_EVENT, "an expectation", expectation_from_event, |a, e| a.expectations.push(e));
        inbox.on(node, &activity, DATA_REPORT_EVENT, "a data channel report", report_from_event, |a, r| {
            a.reports.push(r)
        });
        inbox
    }

    /// Queues what other workers publish as `event`.
    fn on<T: 'static>(
        &self,
        node: &Node,
        activity: &Activity,
        event: &'static str,
        what: &'static str,
        parse: fn(&Event) -> Option<T>,
        queue: fn(&mut Arrivals, T),
    ) {
        let arrivals = Arc::clone(&self.0);
        on_from_other_workers(node, activity, event, what, parse, move |item| queue(&mut lock(&arrivals), item));
    }

    /// The expectations raised by packet time `now`, and every report.
    fn take(&self, now: f64) -> Arrivals {
        // Called for every packet: takes out only what is due, without rebuilding the waiting list.
        let mut arrivals = lock(&self.0);
        let expectations = arrivals.expectations.extract_if(.., |(_, at)| *at <= now).collect();
        Arrivals { expectations, reports: std::mem::take(&mut arrivals.reports) }
    }
}

/// Runs a capture to its end (or until `stop`) on the calling thread, shipping every record (through the
/// worker's detections when it runs any).
pub fn run_capture(node: &Node, job: CaptureJob, stop: Arc<AtomicBool>) -> anyhow::Result<RunSummary> {
    let shipper = ShippingSink::new(node.clone());
    let mut sink: Box<dyn LogSink> = match &job.detect {
        Some(rt) => Box::new(WorkerTap::new(shipper, node.clone(), Arc::clone(rt))),
        None => Box::new(shipper),
    };
    let summary = match (job.shard, &job.input) {
        (Some((k, n)), Input::File(path)) => {
            let mut source = PcapSource::open_file(path, job.filter.as_deref())?;
            let mut shard = ShardRun::new(node, (k, n), &stop, job.sync.as_ref(), Inbox::install(node, job.activity));
            // The shard run waits at its own last barriers.
            shard.run(&mut source, &job.analysis, sink.as_mut())?
        }
        (Some(_), _) => anyhow::bail!("--shard splits a trace file (-r); a live worker gets its share from the tap"),
        (None, _) => {
            let live = Arc::new(LiveStats::watched_by(node.watchdog()));
            let opts = RunOptions {
                input: job.input,
                filter: job.filter,
                threads: job.threads.max(1),
                buffer_mib: job.buffer_mib,
                analysis: job.analysis,
                progress: false,
                stop: Arc::clone(&stop),
                expectations: Some(shared_expectations(node, &job.activity)),
                live: Some(Arc::clone(&live)),
                pin_cpus: job.pin_cpus,
            };
            let summary = metrics::follow_while(node.metrics(), &live, || runner::run(opts, sink.as_mut()))?;
            if let Some(gate) = &job.sync {
                sink.flush()?;
                // The trace ended here: wait until every worker's has and the cluster settled.
                gate.wait(f64::INFINITY, &stop, &mut |_| {});
            }
            summary
        }
    };
    sink.close()?;
    node.metrics().set_engine_totals(&summary.engine);
    if let Some(c) = &summary.capture {
        node.metrics().set_capture(c);
    }
    Ok(summary)
}

/// The board a worker's engines share expectations on when it captures live (or reads a whole trace): what they
/// raise is published to the other workers as Zeek's `FTP::sync_add_expected_data`, and what the others raise is
/// posted to it. Live, the data connection comes a round trip after its announcement, later than the event
/// (docs/CLUSTER.md, "FTP data channels across workers").
fn shared_expectations(node: &Node, activity: &Activity) -> Arc<SharedExpectations> {
    let publisher = node.clone();
    let shared = Arc::new(SharedExpectations::forwarding(Box::new(move |raised: &[Expectation], raised_at| {
        for e in raised {
            if let Err(err) = publisher.publish(topic::WORKER, expectation_to_event(e, raised_at)) {
                tracing::debug!("expectation not shared: {err}");
            }
        }
    })));
    // The handler holds the board weakly: the board's forwarder holds the node, which holds its handlers.
    let board = Arc::downgrade(&shared);
    on_from_other_workers(node, activity, EXPECT_EVENT, "an expectation", expectation_from_event, move |(e, at)| {
        let Some(board) = board.upgrade() else { return };
        // The data connection's analyzer finds its channel in the process's `ftp_data_expected` table, where a
        // control session of this worker would have put it; without the entry it would not analyse the file.
        if e.analyzer == Some(ftp::DATA_SPEC.name) {
            let _ = ftp::expect_remote_channel(e.resp_h, e.resp_p, at);
        }
        board.post(Poster::Remote, vec![e], at);
    });
    shared
}

/// Hands what other workers publish as `event`, parsed, to `deliver` (this worker's own publications come back too
/// and are skipped); every delivery counts as handled for the barrier waves.
fn on_from_other_workers<T: 'static>(
    node: &Node,
    activity: &Activity,
    event: &'static str,
    what: &'static str,
    parse: fn(&Event) -> Option<T>,
    deliver: impl Fn(T) + Send + Sync + 'static,
) {
    let activity = activity.clone();
    node.on(
        event,
        Arc::new(move |n: &Node, r: &Received| {
            activity.handled();
            if r.origin() == n.name() {
                return;
            }
            match parse(&r.event) {
                Some(item) => deliver(item),
                None => tracing::warn!(origin = %r.origin(), "{what} this worker cannot use"),
            }
        }),
    );
}

/// One worker's share of a trace: the connections whose symmetric hash is `k` of `n`.
///
/// With time barriers the worker also goes beyond what Zeek's workers share (docs/CLUSTER.md, "FTP data channels
/// across workers"): a data connection it created before another worker's expectation for it arrived is analysed
/// again ([`Retention`]), its file is reported back to the control connection's worker, and FTP records wait for
/// such reports until the cluster has settled past them.
struct ShardRun<'a> {
    node: &'a Node,
    k: usize,
    n: usize,
    stop: &'a AtomicBool,
    sync: Option<&'a Gate>,
    inbox: Inbox,
    /// Connections created since the last barrier, kept in case an expectation names them.
    retention: Retention,
    /// Expectations other workers raised, delivered since the last barrier.
    raised: Vec<RaisedExpectation>,
    /// Data channels announced on other workers, whose reports go back there.
    remote_channels: Vec<RemoteChannel>,
    /// FTP records logged before this packet time have every report they wait for.
    reports_complete_before: f64,
}

impl<'a> ShardRun<'a> {
    fn new(node: &'a Node, (k, n): (usize, usize), stop: &'a AtomicBool, sync: Option<&'a Gate>, inbox: Inbox) -> Self {
        ShardRun {
            node,
            k,
            n,
            stop,
            sync,
            inbox,
            retention: Retention::default(),
            raised: Vec::new(),
            remote_channels: Vec::new(),
            reports_complete_before: f64::NEG_INFINITY,
        }
    }

    /// The engine's counters, and for the first worker those of the fragment reassembly in front of it: every
    /// worker reassembles the whole trace's fragments alike, so one of them reports what that reassembly dropped.
    fn stats(&self, engine: &Engine, frags: &Reassembler) -> EngineStats {
        let mut stats = engine.stats();
        if self.k == 0 {
            stats.add(&runner::sharding_stats(frags));
        }
        stats
    }

    /// Whether the worker is held at barriers (and uses them to link FTP data channels across workers).
    fn synchronised(&self) -> bool {
        self.sync.is_some_and(|g| !g.is_off())
    }

    fn run(
        &mut self,
        source: &mut PcapSource,
        analysis: &AnalysisConfig,
        sink: &mut dyn LogSink,
    ) -> anyhow::Result<RunSummary> {
        let link = source.link_type();
        let mut engine = Engine::new(analysis.clone());
        engine.share_expectations(true);
        self.link(&mut engine, self.synchronised());
        let mut frags = Reassembler::default();
        let mut frag_weirds = Vec::new();
        let mut summary = RunSummary::default();
        let mut seen = 0u64;
        let report_packets = sink.wants_packet_reports();
        while !self.stop.load(Ordering::Relaxed) {
            let mut packet = false;
            match source.next_packet()? {
                Next::Packet(p) => {
                    seen += 1;
                    packet = true;
                    if let Some(gate) = self.sync.filter(|g| !g.open_for(p.ts)) {
                        self.wait(gate, p.ts, &mut engine, sink, &mut summary.records)?;
                    }
                    self.receive(&mut engine, p.ts);
                    let sharded = shard_of(link, p.ts, p.data, self.n, &mut frags, &mut frag_weirds);
                    for w in frag_weirds.drain(..).filter(|w| weird_shard(w, self.n) == self.k) {
                        engine.report_capture_weird(p.ts, w);
                    }
                    match sharded {
                        Some(Shard::Whole(s)) if s == self.k => {
                            self.analyse(&mut engine, p.ts, link, p.data, p.wire_len)
                        }
                        // A datagram put together from fragments has no length on the wire of its own.
                        Some(Shard::Reassembled(s, whole)) if s == self.k => {
                            self.analyse(&mut engine, p.ts, LinkType::Raw, &whole, None)
                        }
                        // Another worker's packet: a live worker's clock runs on regardless, so ours does too.
                        _ => engine.advance_time(p.ts),
                    }
                    self.share_expectations(&mut engine, p.ts);
                }
                Next::Idle => {}
                Next::End => break,
                Next::Truncated(msg) => {
                    summary.truncated = Some(msg);
                    break;
                }
            }
            if engine.pending_records() > 0 {
                self.write_records(&mut engine, sink, &mut summary.records)?;
            }
            if packet && report_packets {
                // Every packet moves this worker's clock, its own or not (see above): capture-loss measures on it.
                sink.packet_analysed(engine.network_time(), &self.stats(&engine, &frags));
            }
            if seen.is_multiple_of(4096) {
                self.node.metrics().set_engine_totals(&self.stats(&engine, &frags));
            }
        }
        if let Some(gate) = self.sync {
            // The trace ended: expectations raised in its last interval still name connections here.
            self.wait(gate, f64::INFINITY, &mut engine, sink, &mut summary.records)?;
        }
        if report_packets {
            sink.input_ended(engine.network_time(), &self.stats(&engine, &frags));
        }
        engine.finish();
        self.write_records(&mut engine, sink, &mut summary.records)?;
        if let Some(gate) = self.sync {
            // Every worker ended: what their last records caused (data channel reports, detections) settles.
            self.wait(gate, f64::INFINITY, &mut engine, sink, &mut summary.records)?;
        }
        self.receive(&mut engine, f64::INFINITY);
        self.release_ftp_records(&mut engine, sink, f64::INFINITY, &mut summary.records)?;
        if self.retention.overflows() > 0 {
            tracing::info!(
                connections = self.retention.overflows(),
                budget = BUDGET,
                "connections created between two barriers outgrew the retention budget and were not analysed again"
            );
        }
        summary.engine = self.stats(&engine, &frags);
        Ok(summary)
    }

    fn link(&mut self, engine: &mut Engine, on: bool) {
        engine.track_connections(on);
        engine.ftp_links().link(on);
    }

    /// `wire_len`: the frame's length on the wire, as the capture gave it (Zeek's `truncated_IP_len` check), so a
    /// worker reports what a standalone run does.
    fn analyse(&mut self, engine: &mut Engine, ts: f64, link: LinkType, frame: &[u8], wire_len: Option<usize>) {
        engine.process_packet_on_wire(ts, link, frame, wire_len);
        for created in engine.take_created() {
            self.retention.start(created);
        }
        if let Some(key) = engine.last_connection() {
            self.retention.keep(&key, ts, engine.network_time(), link, frame);
        }
    }

    /// Takes what other workers sent: expectations raised by packet time `now` (with their FTP data channels) and
    /// reports for this worker's FTP control connections.
    fn receive(&mut self, engine: &mut Engine, now: f64) {
        let arrivals = self.inbox.take(now);
        for (e, raised_at) in arrivals.expectations {
            if e.analyzer == Some(ftp::DATA_SPEC.name)
                && let Some(channel) = ftp::expect_remote_channel(e.resp_h, e.resp_p, raised_at)
            {
                self.remote_channels.push(channel);
            }
            engine.add_expectation(e.clone());
            if self.synchronised() {
                self.raised.push((e, raised_at));
            }
        }
        for (resp_h, resp_p, update) in arrivals.reports {
            if !ftp::apply_remote_update(resp_h, resp_p, update) {
                tracing::debug!(%resp_h, resp_p, "a data channel report for no control connection here");
            }
        }
    }

    /// Waits at the barrier before packet time `ts`, doing the barrier work at every grant.
    fn wait(
        &mut self,
        gate: &Gate,
        ts: f64,
        engine: &mut Engine,
        sink: &mut dyn LogSink,
        records: &mut u64,
    ) -> std::io::Result<()> {
        self.write_records(engine, sink, records)?;
        self.publish_reports(engine.network_time());
        sink.flush()?;
        let stop = self.stop;
        let mut result = Ok(());
        gate.wait(ts, stop, &mut |settled| {
            if result.is_ok() {
                result = self.at_barrier(settled, engine, sink, records);
            }
        });
        result?;
        if gate.is_off() {
            // No more barriers: nothing will be analysed again, and nothing waits for reports any more.
            let released = self.retention.settle(engine, &[]);
            self.raised.clear();
            write_all(released, sink, records)?;
            self.link(engine, false);
            self.release_ftp_records(engine, sink, f64::INFINITY, records)?;
        }
        Ok(())
    }

    /// What a worker does once the cluster settled at a barrier (every expectation and report raised before it has
    /// been delivered).
    fn at_barrier(
        &mut self,
        settled: Settled,
        engine: &mut Engine,
        sink: &mut dyn LogSink,
        records: &mut u64,
    ) -> std::io::Result<()> {
        self.receive(engine, settled.at);
        let raised = std::mem::take(&mut self.raised);
        let released = self.retention.settle(engine, &raised);
        // What the connections analysed again created is not kept: their expectations are in place.
        engine.take_created();
        write_all(released, sink, records)?;
        self.share_expectations(engine, settled.at);
        self.write_records(engine, sink, records)?;
        // Reports about the interval before the previous barrier were published by its barrier work at the latest,
        // so this wave delivered them.
        self.release_ftp_records(engine, sink, self.reports_complete_before, records)?;
        self.reports_complete_before = settled.at;
        self.publish_reports(settled.at);
        sink.flush()
    }

    fn release_ftp_records(
        &mut self,
        engine: &mut Engine,
        sink: &mut dyn LogSink,
        before: f64,
        records: &mut u64,
    ) -> std::io::Result<()> {
        if engine.ftp_links().held() == 0 {
            return Ok(());
        }
        let released = engine.ftp_links().release(before);
        write_all(released, sink, records)
    }

    /// Sends what data connections here reported for control connections on other workers.
    fn publish_reports(&mut self, now: f64) {
        for channel in &self.remote_channels {
            for update in channel.take_updates() {
                if let Err(err) = self.node.publish(topic::WORKER, report_to_event(channel, &update)) {
                    tracing::debug!("data channel report not sent: {err}");
                }
            }
        }
        self.remote_channels.retain(|c| !c.is_done(now));
    }

    fn share_expectations(&self, engine: &mut Engine, raised_at: f64) {
        for e in engine.take_new_expectations() {
            if let Err(err) = self.node.publish(topic::WORKER, expectation_to_event(&e, raised_at)) {
                tracing::debug!("expectation not shared: {err}");
            }
        }
    }

    /// Writes the engine's records, except those of connections kept until the next barrier.
    fn write_records(&mut self, engine: &mut Engine, sink: &mut dyn LogSink, count: &mut u64) -> std::io::Result<()> {
        for r in engine.drain_records() {
            if let Some(r) = self.retention.withhold(r) {
                sink.write(&r)?;
                *count += 1;
            }
        }
        write_all(self.retention.take_released(), sink, count)
    }
}

fn write_all(records: Vec<LogRecord>, sink: &mut dyn LogSink, count: &mut u64) -> std::io::Result<()> {
    for r in records {
        sink.write(&r)?;
        *count += 1;
    }
    Ok(())
}
