//! Log shipping: nodes batch their log records and send them round-robin to the live loggers. A logger acknowledges
//! a batch once it is written; unacknowledged batches are kept (bounded) and resent to the next live logger when
//! their logger goes away, so a logger killed mid-stream loses no record (delivery is at least once: a batch in
//! flight at the moment of the kill may be written twice).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use super::link::frame;
use super::logwire::{self, EncodedRows, StreamRows};
use super::proto::pb;
use crate::logs::LogRecord;
use crate::metrics::Metrics;

/// What happens to records that arrive while the buffer (queued plus unacknowledged) is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse them and count them in `zeek_log_records_dropped_total{reason="overflow"}`: live capture never waits.
    Drop,
    /// Make a producer thread wait (offline trace reading, where waiting loses nothing). A producer on the runtime
    /// (an event handler) cannot wait and drops instead, counted the same way.
    Block,
}

#[derive(Debug, Clone)]
pub struct ShipSettings {
    /// Records per batch.
    pub batch_records: usize,
    /// A partial batch goes out after this long.
    pub linger: Duration,
    /// Records kept at most (waiting to be batched plus sent and not yet acknowledged).
    pub max_buffered: usize,
    pub overflow: Overflow,
    /// A batch not acknowledged this long is resent elsewhere.
    pub ack_timeout: Duration,
}

impl Default for ShipSettings {
    fn default() -> Self {
        ShipSettings {
            batch_records: 1024,
            linger: Duration::from_millis(50),
            max_buffered: 500_000,
            overflow: Overflow::Drop,
            ack_timeout: Duration::from_secs(30),
        }
    }
}

/// Where batches can go right now.
pub enum Destinations {
    /// This node writes them itself (a logger, or the manager of a cluster without loggers).
    Local,
    /// Live loggers (or the manager standing in for them), in pool order.
    Remote(Vec<(String, super::link::LinkSender)>),
    /// Nobody is reachable: keep the batches and retry.
    Wait,
}

/// What the shipper needs from its node.
pub trait ShipRoute: Send + Sync + 'static {
    fn destinations(&self) -> Destinations;
    /// Writes a batch on this node (a logger's own records, or a manager's without loggers).
    fn write_local(&self, streams: Vec<EncodedRows>);
    fn origin(&self) -> String;
    fn is_linked(&self, name: &str) -> bool;
}

/// Records encoded by the thread that logged them, at most one batch's worth.
struct Chunk {
    streams: Vec<StreamRows>,
    records: usize,
}

enum Input {
    Records(Chunk),
    Flush(oneshot::Sender<u64>),
}

struct Channels {
    input: mpsc::Receiver<Input>,
    acks: mpsc::UnboundedReceiver<(String, pb::LogAck)>,
}

pub struct LogShipper {
    settings: ShipSettings,
    metrics: Arc<Metrics>,
    input: mpsc::Sender<Input>,
    acks: mpsc::UnboundedSender<(String, pb::LogAck)>,
    nudge: Arc<Notify>,
    channels: Mutex<Option<Channels>>,
}

impl LogShipper {
    pub fn new(settings: ShipSettings, metrics: Arc<Metrics>) -> LogShipper {
        let (input, input_rx) = mpsc::channel(256);
        let (acks, acks_rx) = mpsc::unbounded_channel();
        LogShipper {
            settings,
            metrics,
            input,
            acks,
            nudge: Arc::new(Notify::new()),
            channels: Mutex::new(Some(Channels { input: input_rx, acks: acks_rx })),
        }
    }

    /// Starts the shipping task (once).
    pub fn start(&self, route: Arc<dyn ShipRoute>) {
        let Some(ch) = self.channels.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let task = ShipTask {
            settings: self.settings.clone(),
            metrics: Arc::clone(&self.metrics),
            route,
            nudge: Arc::clone(&self.nudge),
            pending: Vec::new(),
            pending_records: 0,
            pending_since: None,
            unacked: BTreeMap::new(),
            unacked_records: 0,
            next_seq: 1,
            cursor: 0,
            waiters: Vec::new(),
        };
        tokio::spawn(task.run(ch));
    }

    /// Hands records over for shipping. Never waits on a live capture; see [`Overflow`]. The records are encoded
    /// here, on the thread that made them: encoding spreads over the threads that log instead of queueing on the
    /// shipping task, and the records are freed where they were allocated.
    pub fn ship(&self, records: Vec<LogRecord>) {
        for chunk in records.chunks(self.settings.batch_records.max(1)) {
            self.ship_chunk(Chunk { streams: logwire::encode_streams(chunk), records: chunk.len() });
        }
    }

    fn ship_chunk(&self, chunk: Chunk) {
        let n = chunk.records as u64;
        match self.input.try_send(Input::Records(chunk)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(item)) => {
                let may_wait =
                    self.settings.overflow == Overflow::Block && tokio::runtime::Handle::try_current().is_err();
                if !(may_wait && self.input.blocking_send(item).is_ok()) {
                    self.metrics.records_dropped("overflow", n);
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.metrics.records_dropped("shutdown", n),
        }
    }

    pub fn ack(&self, from: &str, ack: pb::LogAck) {
        let _ = self.acks.send((from.to_string(), ack));
    }

    /// Something changed (a link, the view): retry what waits.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Ships everything queued and waits until it is acknowledged; returns the records still unacknowledged when
    /// `timeout` ran out.
    pub async fn flush(&self, timeout: Duration) -> u64 {
        let (tx, rx) = oneshot::channel();
        let wait = async {
            self.input.send(Input::Flush(tx)).await.ok()?;
            rx.await.ok()
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(n)) => n,
            _ => (self.metrics.log_unacked_records.get() + self.metrics.log_queue_records.get()).max(0) as u64,
        }
    }
}

/// A batch sent and not yet acknowledged, kept in its wire form: encoded once, the rows are a few bytes per value
/// (far smaller than the records), and a resend shares them instead of copying.
struct InFlight {
    streams: Vec<pb::LogStream>,
    records: usize,
    /// The logger it was last sent to (`None`: not sent yet).
    target: Option<String>,
    sent_at: Instant,
}

struct ShipTask {
    settings: ShipSettings,
    metrics: Arc<Metrics>,
    route: Arc<dyn ShipRoute>,
    nudge: Arc<Notify>,
    /// Rows waiting to be batched, and how many.
    pending: Vec<StreamRows>,
    pending_records: usize,
    pending_since: Option<Instant>,
    unacked: BTreeMap<u64, InFlight>,
    unacked_records: usize,
    next_seq: u64,
    cursor: usize,
    waiters: Vec<oneshot::Sender<u64>>,
}

impl ShipTask {
    async fn run(mut self, mut ch: Channels) {
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let nudge = Arc::clone(&self.nudge);
        loop {
            let room = self.pending_records + self.unacked_records < self.settings.max_buffered;
            let read_input = room || self.settings.overflow == Overflow::Drop;
            tokio::select! {
                Some((from, ack)) = ch.acks.recv() => self.on_ack(&from, ack),
                () = nudge.notified() => self.resend_due(),
                input = ch.input.recv(), if read_input => match input {
                    None => break,
                    Some(Input::Records(c)) if !room => self.metrics.records_dropped("overflow", c.records as u64),
                    Some(Input::Records(r)) => self.add(r),
                    Some(Input::Flush(w)) => {
                        self.dispatch();
                        self.waiters.push(w);
                    }
                },
                _ = tick.tick() => {
                    if self.pending_since.is_some_and(|t| t.elapsed() >= self.settings.linger) {
                        self.dispatch();
                    }
                    self.resend_due();
                }
            }
            if self.pending_records == 0 && self.unacked.is_empty() {
                for w in self.waiters.drain(..) {
                    let _ = w.send(0);
                }
            }
            self.metrics.log_unacked_records.set(self.unacked_records as i64);
            self.metrics.log_queue_records.set(self.pending_records as i64);
        }
    }

    /// Adds a chunk to the pending rows; a batch goes out once it is full, and never holds more than
    /// `batch_records` (a chunk that would overflow it sends what is pending first).
    fn add(&mut self, chunk: Chunk) {
        if self.pending_records > 0 && self.pending_records + chunk.records > self.settings.batch_records {
            self.dispatch();
        }
        if self.pending_records == 0 {
            self.pending_since = Some(Instant::now());
        }
        logwire::append_streams(&mut self.pending, chunk.streams);
        self.pending_records += chunk.records;
        if self.pending_records >= self.settings.batch_records {
            self.dispatch();
        }
    }

    fn dispatch(&mut self) {
        self.pending_since = None;
        if self.pending_records > 0 {
            let streams = std::mem::take(&mut self.pending).into_iter().map(pb::LogStream::from).collect();
            let records = std::mem::take(&mut self.pending_records);
            self.send_batch(streams, records);
        }
    }

    fn send_batch(&mut self, streams: Vec<pb::LogStream>, records: usize) {
        if let Destinations::Local = self.route.destinations() {
            self.write_local(streams, records);
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked_records += records;
        self.unacked.insert(seq, InFlight { streams, records, target: None, sent_at: Instant::now() });
        self.try_send(seq);
    }

    fn write_local(&self, streams: Vec<pb::LogStream>, records: usize) {
        let batch = pb::LogBatch { seq: 0, origin: String::new(), streams };
        match logwire::check_batch(batch) {
            Ok(streams) => self.route.write_local(streams),
            Err(e) => {
                tracing::error!(records, "cannot write a batch this node encoded: {e}");
                self.metrics.records_dropped("rejected", records as u64);
            }
        }
    }

    /// Sends one in-flight batch to the next destination; false if it found none.
    fn try_send(&mut self, seq: u64) -> bool {
        let dest = self.route.destinations();
        let Some(inflight) = self.unacked.get_mut(&seq) else { return true };
        match dest {
            Destinations::Wait => false,
            Destinations::Local => {
                let Some(inflight) = self.unacked.remove(&seq) else { return true };
                self.unacked_records -= inflight.records;
                self.write_local(inflight.streams, inflight.records);
                true
            }
            Destinations::Remote(loggers) => {
                let (name, tx) = &loggers[self.cursor % loggers.len()];
                self.cursor = self.cursor.wrapping_add(1);
                let batch = pb::LogBatch { seq, origin: self.route.origin(), streams: inflight.streams.clone() };
                let msg = frame(pb::frame::Body::LogBatch(batch));
                if tx.try_send(msg).is_err() {
                    return false;
                }
                if inflight.target.is_some() {
                    self.metrics.log_batches_resent.inc();
                }
                inflight.target = Some(name.clone());
                inflight.sent_at = Instant::now();
                true
            }
        }
    }

    /// Resends batches never sent, sent to a logger that is gone, or not acknowledged in time.
    fn resend_due(&mut self) {
        let due: Vec<u64> = self
            .unacked
            .iter()
            .filter(|(_, f)| match &f.target {
                None => true,
                Some(t) => !self.route.is_linked(t) || f.sent_at.elapsed() > self.settings.ack_timeout,
            })
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            if !self.try_send(seq) {
                break;
            }
        }
    }

    fn on_ack(&mut self, from: &str, ack: pb::LogAck) {
        let Some(f) = self.unacked.remove(&ack.seq) else { return };
        self.unacked_records -= f.records;
        if !ack.ok {
            tracing::error!(logger = %from, records = f.records, "a logger refused a batch: {}", ack.error);
            self.metrics.records_dropped("rejected", f.records as u64);
        }
    }
}
