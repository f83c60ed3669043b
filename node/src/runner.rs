//! Standalone runs (`zeek-node -r FILE` / `-i IFACE`): a packet source feeds one engine, or N engines on
//! N threads sharded by a symmetric flow hash, and their records go to one log sink.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::capture::{CaptureError, CaptureStats, Next, PcapSource};
use crate::config::AnalysisConfig;
use crate::conn::ConnKey;
use crate::decode::{LinkType, Reassembler, decode_ip, decode_link};
use crate::engine::{Engine, EngineStats};
use crate::logs::{LogRecord, LogSink};

/// Where packets come from.
#[derive(Debug, Clone)]
pub enum Input {
    File(PathBuf),
    Interface(String),
}

pub struct RunOptions {
    pub input: Input,
    pub filter: Option<String>,
    pub threads: usize,
    pub analysis: AnalysisConfig,
    /// Show a progress bar while reading a file (only drawn on a terminal).
    pub progress: bool,
    /// Set to stop a live capture (SIGINT/SIGTERM).
    pub stop: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub engine: EngineStats,
    pub capture: Option<CaptureStats>,
    /// The savefile ended inside a record; what came before was analysed.
    pub truncated: Option<String>,
    pub records: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("writing logs: {0}")]
    Log(#[from] std::io::Error),
}

/// Runs analysis to the end of the input (or until `stop`), writing every record to `sink`.
pub fn run(opts: RunOptions, sink: &mut dyn LogSink) -> Result<RunSummary, RunError> {
    let mut source = match &opts.input {
        Input::File(p) => PcapSource::open_file(p, opts.filter.as_deref())?,
        Input::Interface(i) => PcapSource::open_live(i, opts.filter.as_deref(), 65535)?,
    };
    let progress = match (&opts.input, opts.progress) {
        (Input::File(p), true) => Some(progress_bar(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))),
        _ => None,
    };
    let mut summary = if opts.threads <= 1 {
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
    progress: Option<&indicatif::ProgressBar>,
) -> Result<RunSummary, RunError> {
    let link = source.link_type();
    let mut engine = Engine::new(opts.analysis.clone());
    let mut summary = RunSummary::default();
    let mut n = 0u64;
    loop {
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        match source.next_packet()? {
            Next::Packet(p) => {
                engine.process_packet(p.ts, link, p.data);
                n += 1;
            }
            Next::Idle => {}
            Next::End => break,
            Next::Truncated(msg) => {
                summary.truncated = Some(msg);
                break;
            }
        }
        if engine.pending_records() > 0 {
            write_all(sink, engine.drain_records(), &mut summary.records)?;
        }
        if n % 4096 == 0 {
            if let Some(pb) = progress {
                pb.set_position(source.bytes_read);
            }
        }
    }
    engine.finish();
    write_all(sink, engine.drain_records(), &mut summary.records)?;
    summary.engine = engine.stats;
    Ok(summary)
}

/// A batch of packets for one analysis thread: one buffer, many slices.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    packets: Vec<(f64, LinkType, usize, usize)>,
}

const BATCH_PACKETS: usize = 256;

fn run_sharded(
    source: &mut PcapSource,
    opts: &RunOptions,
    sink: &mut dyn LogSink,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<RunSummary, RunError> {
    let link = source.link_type();
    let threads = opts.threads;
    let (rec_tx, rec_rx): (Sender<Vec<LogRecord>>, Receiver<Vec<LogRecord>>) = bounded(64);
    let mut senders = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = bounded::<Batch>(16);
        senders.push(tx);
        let mut cfg = opts.analysis.clone();
        cfg.seed = cfg.seed.wrapping_add(i as u64 * 0x1000_0001);
        let rec_tx = rec_tx.clone();
        handles.push(thread::spawn(move || analysis_thread(cfg, rx, rec_tx)));
    }
    drop(rec_tx);

    let mut summary = RunSummary::default();
    let mut frags = Reassembler::default();
    let mut batches: Vec<Batch> = (0..threads).map(|_| Batch::default()).collect();
    let mut n = 0u64;
    let mut records = 0u64;
    let mut write_error = None;
    loop {
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        match source.next_packet()? {
            Next::Packet(p) => {
                n += 1;
                let (shard, data, plink) = match shard_of(link, p.ts, p.data, threads, &mut frags) {
                    Some(Shard::Whole(s)) => (s, None, link),
                    Some(Shard::Reassembled(s, whole)) => (s, Some(whole), LinkType::Raw),
                    None => continue,
                };
                let bytes = data.as_deref().unwrap_or(p.data);
                let b = &mut batches[shard];
                let start = b.data.len();
                b.data.extend_from_slice(bytes);
                b.packets.push((p.ts, plink, start, bytes.len()));
                if b.packets.len() >= BATCH_PACKETS {
                    let full = std::mem::take(b);
                    let _ = senders[shard].send(full);
                }
            }
            Next::Idle => {
                for (i, b) in batches.iter_mut().enumerate() {
                    if !b.packets.is_empty() {
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
            if let Err(e) = write_all(sink, batch.into_iter(), &mut records) {
                write_error.get_or_insert(e);
            }
        }
        if n % 4096 == 0 {
            if let Some(pb) = progress {
                pb.set_position(source.bytes_read);
            }
        }
    }
    for (i, b) in batches.into_iter().enumerate() {
        if !b.packets.is_empty() {
            let _ = senders[i].send(b);
        }
    }
    drop(senders);
    for batch in rec_rx.iter() {
        if let Err(e) = write_all(sink, batch.into_iter(), &mut records) {
            write_error.get_or_insert(e);
        }
    }
    for h in handles {
        if let Ok(stats) = h.join() {
            summary.engine.packets += stats.packets;
            summary.engine.bytes += stats.bytes;
            summary.engine.connections += stats.connections;
            summary.engine.decode_errors += stats.decode_errors;
        }
    }
    summary.records = records;
    match write_error {
        Some(e) => Err(e.into()),
        None => Ok(summary),
    }
}

fn analysis_thread(cfg: AnalysisConfig, rx: Receiver<Batch>, out: Sender<Vec<LogRecord>>) -> EngineStats {
    let mut engine = Engine::new(cfg);
    for batch in rx.iter() {
        for &(ts, link, start, len) in &batch.packets {
            engine.process_packet(ts, link, &batch.data[start..start + len]);
        }
        if engine.pending_records() > 0 {
            let _ = out.send(engine.drain_records().collect());
        }
    }
    engine.finish();
    let _ = out.send(engine.drain_records().collect());
    engine.stats
}

enum Shard {
    Whole(usize),
    /// A fragment completed a datagram: the whole datagram goes on as raw IP.
    Reassembled(usize, Vec<u8>),
}

/// Picks the analysis thread for a packet: both directions of a flow hash the same. Fragments are
/// reassembled here first, so every piece of a datagram reaches the thread that owns its flow.
fn shard_of(link: LinkType, ts: f64, frame: &[u8], n: usize, frags: &mut Reassembler) -> Option<Shard> {
    let Ok(ip_bytes) = decode_link(link, frame) else { return Some(Shard::Whole(0)) };
    let Ok(ip) = decode_ip(ip_bytes, false) else { return Some(Shard::Whole(0)) };
    if ip.frag.is_some() {
        let whole = frags.add(ts, &ip)?;
        let ip = decode_ip(&whole, false).ok()?;
        let shard = flow_shard(&ip, n);
        return Some(Shard::Reassembled(shard, whole));
    }
    Some(Shard::Whole(flow_shard(&ip, n)))
}

/// The shard of a datagram's flow: a symmetric hash of the 5-tuple.
pub fn flow_shard(ip: &crate::decode::IpDatagram, n: usize) -> usize {
    let ports = |p: &[u8]| match (p.first(), p.get(1), p.get(2), p.get(3)) {
        (Some(a), Some(b), Some(c), Some(d)) => (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])),
        _ => (0, 0),
    };
    let (sp, dp) = if matches!(ip.proto, 6 | 17 | 132) { ports(ip.payload) } else { (0, 0) };
    (ConnKey::new(ip.src, sp, ip.dst, dp, ip.proto).symmetric_hash() % n as u64) as usize
}
