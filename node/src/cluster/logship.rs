//! Log shipping: nodes batch their log records and send them round-robin to the live loggers. A logger acknowledges
//! a batch once it is written; unacknowledged batches are kept (bounded) and resent to the next live logger when
//! their logger goes away, so a logger killed mid-stream loses no record (delivery is at least once: a batch in
//! flight at the moment of the kill may be written twice).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use super::link::frame;
use super::logwire;
use super::metrics::Metrics;
use super::proto::pb;
use crate::logs::LogRecord;

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
    Remote(Vec<(String, mpsc::Sender<pb::Frame>)>),
    /// Nobody is reachable: keep the batches and retry.
    Wait,
}

/// What the shipper needs from its node.
pub trait ShipRoute: Send + Sync + 'static {
    fn destinations(&self) -> Destinations;
    fn write_local(&self, records: Vec<LogRecord>);
    fn origin(&self) -> String;
    fn is_linked(&self, name: &str) -> bool;
}

enum Input {
    Records(Vec<LogRecord>),
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
            pending_since: None,
            unacked: BTreeMap::new(),
            unacked_records: 0,
            next_seq: 1,
            cursor: 0,
            waiters: Vec::new(),
        };
        tokio::spawn(task.run(ch));
    }

    /// Hands records over for shipping. Never waits on a live capture; see [`Overflow`].
    pub fn ship(&self, records: Vec<LogRecord>) {
        let n = records.len() as u64;
        match self.input.try_send(Input::Records(records)) {
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

/// A batch sent and not yet acknowledged. It keeps the records, not their wire form: the wire form is built for each
/// send (once, unless a logger goes away), where keeping it would cost a full copy of the batch for every send.
struct InFlight {
    records: Vec<LogRecord>,
    /// The logger it was last sent to (`None`: not sent yet).
    target: Option<String>,
    sent_at: Instant,
}

struct ShipTask {
    settings: ShipSettings,
    metrics: Arc<Metrics>,
    route: Arc<dyn ShipRoute>,
    nudge: Arc<Notify>,
    pending: Vec<LogRecord>,
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
            let room = self.pending.len() + self.unacked_records < self.settings.max_buffered;
            let read_input = room || self.settings.overflow == Overflow::Drop;
            tokio::select! {
                Some((from, ack)) = ch.acks.recv() => self.on_ack(&from, ack),
                () = nudge.notified() => self.resend_due(),
                input = ch.input.recv(), if read_input => match input {
                    None => break,
                    Some(Input::Records(r)) if !room => self.metrics.records_dropped("overflow", r.len() as u64),
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
            if self.pending.is_empty() && self.unacked.is_empty() {
                for w in self.waiters.drain(..) {
                    let _ = w.send(0);
                }
            }
            self.metrics.log_unacked_records.set(self.unacked_records as i64);
            self.metrics.log_queue_records.set(self.pending.len() as i64);
        }
    }

    fn add(&mut self, records: Vec<LogRecord>) {
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.pending.extend(records);
        while self.pending.len() >= self.settings.batch_records {
            let rest = self.pending.split_off(self.settings.batch_records);
            let full = std::mem::replace(&mut self.pending, rest);
            self.send_batch(full);
        }
        if self.pending.is_empty() {
            self.pending_since = None;
        }
    }

    fn dispatch(&mut self) {
        self.pending_since = None;
        if !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            self.send_batch(batch);
        }
    }

    fn send_batch(&mut self, records: Vec<LogRecord>) {
        if let Destinations::Local = self.route.destinations() {
            self.route.write_local(records);
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked_records += records.len();
        self.unacked.insert(seq, InFlight { records, target: None, sent_at: Instant::now() });
        self.try_send(seq);
    }

    /// Sends one in-flight batch to the next destination; false if it found none.
    fn try_send(&mut self, seq: u64) -> bool {
        let dest = self.route.destinations();
        let Some(inflight) = self.unacked.get_mut(&seq) else { return true };
        match dest {
            Destinations::Wait => false,
            Destinations::Local => {
                let Some(inflight) = self.unacked.remove(&seq) else { return true };
                self.unacked_records -= inflight.records.len();
                self.route.write_local(inflight.records);
                true
            }
            Destinations::Remote(loggers) => {
                let (name, tx) = &loggers[self.cursor % loggers.len()];
                self.cursor = self.cursor.wrapping_add(1);
                let batch = logwire::encode_batch(seq, &self.route.origin(), &inflight.records);
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
        self.unacked_records -= f.records.len();
        if !ack.ok {
            tracing::error!(logger = %from, records = f.records.len(), "a logger refused a batch: {}", ack.error);
            self.metrics.records_dropped("rejected", f.records.len() as u64);
        }
    }
}
