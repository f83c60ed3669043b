//! A worker's packet path: capture, analyse with the [`Engine`], ship the records. With `--shard K/N` a worker reads
//! a whole trace but analyses only the connections whose symmetric flow hash is K of N, as a load-balancing tap
//! would hand them to it (this is how `zeek-node cluster -r` splits a trace).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::capture::{Next, PcapSource};
use crate::config::AnalysisConfig;
use crate::decode::{LinkType, Reassembler};
use crate::engine::{Engine, EngineStats};
use crate::logs::{LogRecord, LogSink};
use crate::runner::{self, Input, RunOptions, RunSummary, Shard, shard_of};

use super::node::Node;

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
}

/// Runs a capture to its end (or until `stop`) on the calling thread, shipping every record.
pub fn run_capture(node: &Node, job: CaptureJob, stop: Arc<AtomicBool>) -> anyhow::Result<RunSummary> {
    let mut sink = ShippingSink::new(node.clone());
    let summary = match (job.shard, &job.input) {
        (Some((k, n)), Input::File(path)) => {
            let mut source = PcapSource::open_file(path, job.filter.as_deref())?;
            run_shard(node, &mut source, &job.analysis, k, n, &stop, &mut sink)?
        }
        (Some(_), _) => anyhow::bail!("--shard splits a trace file (-r); a live worker gets its share from the tap"),
        (None, _) => {
            let opts = RunOptions {
                input: job.input,
                filter: job.filter,
                threads: job.threads.max(1),
                analysis: job.analysis,
                progress: false,
                stop,
            };
            runner::run(opts, &mut sink)?
        }
    };
    sink.close()?;
    report(node, &summary.engine);
    if let Some(c) = &summary.capture {
        node.set_capture_drops(c.dropped);
    }
    Ok(summary)
}

fn report(node: &Node, s: &EngineStats) {
    node.set_capture_stats(s.packets, s.bytes, s.connections);
}

fn run_shard(
    node: &Node,
    source: &mut PcapSource,
    analysis: &AnalysisConfig,
    k: usize,
    n: usize,
    stop: &AtomicBool,
    sink: &mut ShippingSink,
) -> anyhow::Result<RunSummary> {
    let link = source.link_type();
    let mut engine = Engine::new(analysis.clone());
    let mut frags = Reassembler::default();
    let mut summary = RunSummary::default();
    let mut seen = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match source.next_packet()? {
            Next::Packet(p) => {
                seen += 1;
                match shard_of(link, p.ts, p.data, n, &mut frags) {
                    Some(Shard::Whole(s)) if s == k => engine.process_packet(p.ts, link, p.data),
                    Some(Shard::Reassembled(s, whole)) if s == k => engine.process_packet(p.ts, LinkType::Raw, &whole),
                    // Another worker's packet: a live worker's clock runs on regardless, so ours does too.
                    _ => engine.advance_time(p.ts),
                }
            }
            Next::Idle => {}
            Next::End => break,
            Next::Truncated(msg) => {
                summary.truncated = Some(msg);
                break;
            }
        }
        if engine.pending_records() > 0 {
            let records: Vec<LogRecord> = engine.drain_records().collect();
            summary.records += records.len() as u64;
            sink.extend(records.into_iter());
        }
        if seen.is_multiple_of(4096) {
            report(node, &engine.stats());
        }
    }
    engine.finish();
    let records: Vec<LogRecord> = engine.drain_records().collect();
    summary.records += records.len() as u64;
    sink.extend(records.into_iter());
    summary.engine = engine.stats();
    Ok(summary)
}
