//! A worker's packet path: capture, analyse with the [`Engine`], ship the records. With `--shard K/N` a worker reads
//! a whole trace but analyses only the connections whose symmetric flow hash is K of N, as a load-balancing tap
//! would hand them to it (this is how `zeek-node cluster -r` splits a trace).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::analyzers::{Expectation, spec_by_name};
use crate::capture::{Next, PcapSource};
use crate::config::AnalysisConfig;
use crate::decode::{LinkType, Reassembler};
use crate::detect::cluster::{SharedRuntime, WorkerTap};
use crate::engine::{Engine, EngineStats};
use crate::logs::{LogRecord, LogSink};
use crate::runner::{self, Input, RunOptions, RunSummary, Shard, shard_of};

use super::data::{Data, Event};
use super::node::{Node, Received};
use super::sync::{Activity, Gate};
use super::topic;

/// Records handed to the shipper in chunks of this many.
const SHIP_CHUNK: usize = 512;

/// A [`LogSink`] that ships records to the cluster's loggers instead of writing files.
pub struct ShippingSink {
    node: Node,
    buffer: Vec<LogRecord>,
}

impl ShippingSink {
    pub fn new(node: Node) -> Self {
        ShippingSink { node, buffer: Vec::with_capacity(SHIP_CHUNK) }
    }

    fn ship(&mut self) {
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
    pub threads: usize,
    pub analysis: AnalysisConfig,
    /// The worker's detections: engine records also go to their handlers.
    pub detect: Option<SharedRuntime>,
    /// Offline clusters: the time barriers the packet loop is held at.
    pub sync: Option<Gate>,
    /// Cluster events handled (FTP expectations from other workers count too).
    pub activity: Activity,
}

/// Zeek's `FTP::sync_add_expected_data`: an FTP data channel announced on one worker, for the worker that sees
/// the data connection.
pub const EXPECT_EVENT: &str = "FTP::sync_add_expected_data";

fn expectation_to_event(e: &Expectation) -> Event {
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
        ],
    )
}

/// The engine keeps analyzer and service names as `'static` strings: known ones are found in the registry.
fn expectation_from_event(ev: &Event) -> Option<Expectation> {
    let static_name = |d: Option<&Data>| d.and_then(Data::as_str).and_then(spec_by_name).map(|s| s.name);
    let orig_h = match ev.args.first()? {
        Data::Vector(v) => v.first().and_then(Data::as_addr),
        _ => None,
    };
    let analyzer_name = ev.args.get(3).and_then(Data::as_str)?;
    Some(Expectation {
        orig_h,
        resp_h: ev.args.get(1).and_then(Data::as_addr)?,
        resp_p: u16::try_from(ev.args.get(2).and_then(Data::as_count)?).ok()?,
        analyzer: if analyzer_name.is_empty() { None } else { Some(static_name(ev.args.get(3))?) },
        service: static_name(ev.args.get(4))?,
        expires: match ev.args.get(5)? {
            Data::Time(t) | Data::Double(t) => *t,
            _ => return None,
        },
    })
}

/// Expectations other workers announced, waiting for this worker's packet loop.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<Expectation>>>);

impl Inbox {
    fn install(node: &Node, activity: Activity) -> Inbox {
        let inbox = Inbox::default();
        let queue = Arc::clone(&inbox.0);
        node.on(
            EXPECT_EVENT,
            Arc::new(move |n: &Node, r: &Received| {
                activity.handled();
                if r.origin == n.name() {
                    return;
                }
                match expectation_from_event(&r.event) {
                    Some(e) => queue.lock().unwrap_or_else(|e| e.into_inner()).push(e),
                    None => tracing::warn!(origin = %r.origin, "an expectation this worker cannot use"),
                }
            }),
        );
        inbox
    }

    fn deliver(&self, engine: &mut Engine) {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for e in queue.drain(..) {
            engine.add_expectation(e);
        }
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
            let mut shard = ShardRun {
                node,
                k,
                n,
                stop: &stop,
                sync: job.sync.as_ref(),
                inbox: Inbox::install(node, job.activity.clone()),
            };
            shard.run(&mut source, &job.analysis, sink.as_mut())?
        }
        (Some(_), _) => anyhow::bail!("--shard splits a trace file (-r); a live worker gets its share from the tap"),
        (None, _) => {
            let opts = RunOptions {
                input: job.input,
                filter: job.filter,
                threads: job.threads.max(1),
                analysis: job.analysis,
                progress: false,
                stop: Arc::clone(&stop),
            };
            runner::run(opts, sink.as_mut())?
        }
    };
    sink.close()?;
    if let Some(gate) = &job.sync {
        // The trace ended here: wait until every worker's has and the cluster settled.
        gate.wait(f64::INFINITY, &stop);
    }
    report(node, &summary.engine);
    if let Some(c) = &summary.capture {
        node.set_capture_drops(c.dropped);
    }
    Ok(summary)
}

fn report(node: &Node, s: &EngineStats) {
    node.set_capture_stats(s.packets, s.bytes, s.connections);
}

/// One worker's share of a trace: the connections whose symmetric hash is `k` of `n`.
struct ShardRun<'a> {
    node: &'a Node,
    k: usize,
    n: usize,
    stop: &'a AtomicBool,
    sync: Option<&'a Gate>,
    inbox: Inbox,
}

impl ShardRun<'_> {
    fn run(
        &mut self,
        source: &mut PcapSource,
        analysis: &AnalysisConfig,
        sink: &mut dyn LogSink,
    ) -> anyhow::Result<RunSummary> {
        let link = source.link_type();
        let mut engine = Engine::new(analysis.clone());
        engine.share_expectations(true);
        let mut frags = Reassembler::default();
        let mut summary = RunSummary::default();
        let mut seen = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            match source.next_packet()? {
                Next::Packet(p) => {
                    seen += 1;
                    if let Some(gate) = self.sync.filter(|g| !g.open_for(p.ts)) {
                        sink.flush()?;
                        gate.wait(p.ts, self.stop);
                    }
                    self.inbox.deliver(&mut engine);
                    match shard_of(link, p.ts, p.data, self.n, &mut frags) {
                        Some(Shard::Whole(s)) if s == self.k => engine.process_packet(p.ts, link, p.data),
                        Some(Shard::Reassembled(s, whole)) if s == self.k => {
                            engine.process_packet(p.ts, LinkType::Raw, &whole)
                        }
                        // Another worker's packet: a live worker's clock runs on regardless, so ours does too.
                        _ => engine.advance_time(p.ts),
                    }
                    self.share_expectations(&mut engine);
                }
                Next::Idle => {}
                Next::End => break,
                Next::Truncated(msg) => {
                    summary.truncated = Some(msg);
                    break;
                }
            }
            if engine.pending_records() > 0 {
                write_records(&mut engine, sink, &mut summary.records)?;
            }
            if seen.is_multiple_of(4096) {
                report(self.node, &engine.stats());
            }
        }
        engine.finish();
        write_records(&mut engine, sink, &mut summary.records)?;
        summary.engine = engine.stats();
        Ok(summary)
    }

    fn share_expectations(&self, engine: &mut Engine) {
        for e in engine.take_new_expectations() {
            if let Err(err) = self.node.publish(topic::WORKER, expectation_to_event(&e)) {
                tracing::debug!("expectation not shared: {err}");
            }
        }
    }
}

fn write_records(engine: &mut Engine, sink: &mut dyn LogSink, count: &mut u64) -> std::io::Result<()> {
    for r in engine.drain_records() {
        sink.write(&r)?;
        *count += 1;
    }
    Ok(())
}
