//! Expected connections shared between engines that each see part of the traffic: analysis threads of one process
//! (`--threads N` on an interface) and, through the cluster, the workers behind one tap. An FTP data channel hashes
//! to another 5-tuple than its control connection, so it usually lands on another engine; the engine that saw the
//! `PORT` or `227` posts the expectation here and the others pick it up (Zeek's `FTP::sync_add_expected_data`).
//!
//! The data connection's SYN may reach its engine before the announcement does: a sensor next to the client sees it
//! microseconds after the reply, and captures hand packets to threads in blocks. So each engine also keeps, for
//! about a second of packet time, the packets of the TCP connections it created with no analyzer attached
//! ([`Retention`], bounded), holding back what they log; when an expectation raised before such a connection started
//! arrives, the connection is forgotten and analysed again with it in place, as one process would have done. An
//! offline cluster run does the same at its time barriers (`cluster/worker.rs`).
//!
//! When one reader hands every engine its packets in order (`--threads N` on a file or a libpcap interface), the
//! board is *ordered*: the reader marks each engine's progress in packet time, an engine applies the others'
//! expectations only once its own packet time reaches theirs, and settles a kept connection only once every engine is
//! past its start. The result is then the same whatever the threads' pace.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::analyzers::Expectation;
use crate::decode::LinkType;
use crate::engine::Engine;
use crate::logs::LogRecord;
use crate::retention::{BUDGET, RaisedExpectation, Retention};

/// Posted expectations kept at most; the oldest go first (an expectation lapses within minutes anyway).
const KEPT: usize = 4096;

/// Packet time an engine keeps new connections for before it settles them: far more than an expectation takes to
/// cross threads (microseconds) or a cluster (about a millisecond), short enough to delay little of what is logged.
const SETTLE_EVERY: f64 = 1.0;

/// How long a finishing engine waits for the others to finish too (ordered mode): far more than the last batches of
/// a trace take, bounded so that a stuck thread cannot hang the run.
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Who posted an expectation: an engine of this process, or another cluster worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poster {
    Engine(usize),
    Remote,
}

/// Called with the expectations this process's engines raise and their packet time, to send them to the other
/// workers.
pub type Forward = Box<dyn Fn(&[Expectation], f64) + Send + Sync>;

struct Posted {
    seq: u64,
    from: Poster,
    expectation: Expectation,
    /// The packet time it was raised at.
    raised_at: f64,
}

/// The board the engines of one capture post to and read from.
#[derive(Default)]
pub struct SharedExpectations {
    posted: Mutex<Vec<Posted>>,
    /// Expectations posted so far: an engine compares it with what it has read before taking the lock.
    count: AtomicU64,
    forward: Option<Forward>,
    /// With one reader handing packets to every engine in order: per engine, the packet time before which it has
    /// analysed every packet it will get (`f64` bits). Then an engine applies expectations in packet-time order and
    /// settles a kept connection only once every engine is past its start, so results do not depend on the threads'
    /// pace. Without (AF_PACKET threads, cluster workers): expectations apply on arrival and kept connections settle
    /// every [`SETTLE_EVERY`] of the engine's own packet time.
    progress: Vec<AtomicU64>,
}

impl SharedExpectations {
    /// A board whose local posts are also handed to `forward` (a cluster worker publishes them).
    pub fn forwarding(forward: Forward) -> SharedExpectations {
        SharedExpectations { forward: Some(forward), ..SharedExpectations::default() }
    }

    /// A board for `engines` engines fed in packet order by one reader, which marks their progress
    /// ([`ExpectationPort::mark`]).
    pub fn ordered(engines: usize) -> SharedExpectations {
        let progress = (0..engines).map(|_| AtomicU64::new(f64::NEG_INFINITY.to_bits())).collect();
        SharedExpectations { progress, ..SharedExpectations::default() }
    }

    fn ordered_mode(&self) -> bool {
        !self.progress.is_empty()
    }

    /// The packet time before which every engine has analysed every packet.
    fn low_watermark(&self) -> f64 {
        self.progress.iter().map(|p| f64::from_bits(p.load(Ordering::Acquire))).fold(f64::INFINITY, f64::min)
    }

    /// Posts expectations raised at packet time `raised_at`.
    pub fn post(&self, from: Poster, expectations: Vec<Expectation>, raised_at: f64) {
        if expectations.is_empty() {
            return;
        }
        if let (Poster::Engine(_), Some(forward)) = (from, &self.forward) {
            forward(&expectations, raised_at);
        }
        let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        for expectation in expectations {
            let seq = self.count.fetch_add(1, Ordering::Release) + 1;
            posted.push(Posted { seq, from, expectation, raised_at });
        }
        if posted.len() > KEPT {
            let excess = posted.len() - KEPT;
            posted.drain(..excess);
        }
    }

    /// The view of engine `id`.
    pub fn port(self: &Arc<Self>, id: usize) -> ExpectationPort {
        ExpectationPort {
            shared: Arc::clone(self),
            id,
            read: 0,
            retention: Retention::default(),
            waiting: Vec::new(),
            received: Vec::new(),
            settled_at: f64::NEG_INFINITY,
            released: Vec::new(),
        }
    }
}

/// One engine's part in the exchange: what it has read from the board, and the connections it keeps meanwhile.
pub struct ExpectationPort {
    shared: Arc<SharedExpectations>,
    id: usize,
    /// The sequence number of the last posted expectation this engine has seen.
    read: u64,
    retention: Retention,
    /// Ordered mode: expectations raised later than this engine's packet time, applied once it gets there.
    waiting: Vec<RaisedExpectation>,
    /// Expectations others raised and this engine applied, for settling kept connections.
    received: Vec<RaisedExpectation>,
    /// Packet time of the last settling.
    settled_at: f64,
    /// Records the last settling let go.
    released: Vec<LogRecord>,
}

impl ExpectationPort {
    /// Makes `engine` collect the expectations it raises and report the connections it creates.
    pub fn attach(&self, engine: &mut Engine) {
        engine.share_expectations(true);
        engine.track_connections(true);
    }

    /// Analyses one packet with what the others expect in place, keeps it if its connection is kept, posts what
    /// the packet made this engine expect, and settles the kept connections once a second of packet time.
    pub fn analyse(&mut self, engine: &mut Engine, ts: f64, link: LinkType, frame: &[u8]) {
        self.analyse_on_wire(engine, ts, link, frame, None);
    }

    /// [`ExpectationPort::analyse`] for a frame whose length on the wire the capture gave
    /// ([`Engine::process_packet_on_wire`]).
    pub fn analyse_on_wire(
        &mut self,
        engine: &mut Engine,
        ts: f64,
        link: LinkType,
        frame: &[u8],
        wire_len: Option<usize>,
    ) {
        self.receive(engine, ts);
        engine.process_packet_on_wire(ts, link, frame, wire_len);
        for created in engine.take_created() {
            self.retention.start(created);
        }
        if let Some(key) = engine.last_connection() {
            self.retention.keep(&key, ts, engine.network_time(), link, frame);
            self.released.append(&mut self.retention.take_released());
        }
        let now = engine.network_time();
        self.shared.post(Poster::Engine(self.id), engine.take_new_expectations(), now);
        if self.shared.ordered_mode() {
            return;
        }
        if self.settled_at == f64::NEG_INFINITY {
            self.settled_at = now;
        } else if now - self.settled_at >= SETTLE_EVERY {
            self.settle(engine, f64::INFINITY);
            self.settled_at = now;
        }
    }

    /// Ordered mode: this engine has analysed every packet before packet time `before` it will get. Settles the kept
    /// connections every engine is past.
    pub fn mark(&mut self, engine: &mut Engine, before: f64) {
        let Some(progress) = self.shared.progress.get(self.id) else { return };
        progress.store(before.to_bits(), Ordering::Release);
        let cutoff = self.shared.low_watermark();
        if cutoff > self.settled_at {
            self.receive(engine, cutoff);
            self.settle(engine, cutoff);
            self.settled_at = cutoff;
        }
    }

    /// Whether records wait to be taken (besides the engine's own).
    pub fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// What the engine logged and can be written: records of kept connections wait for their settling.
    pub fn take_records(&mut self, engine: &mut Engine) -> Vec<LogRecord> {
        let mut records: Vec<LogRecord> = engine.drain_records().filter_map(|r| self.retention.withhold(r)).collect();
        records.append(&mut self.released);
        records
    }

    /// Settles every kept connection: call before [`Engine::finish`]. In ordered mode it first waits (bounded)
    /// until every other engine has analysed all its packets, so nothing can still be raised for them.
    pub fn finish(&mut self, engine: &mut Engine) {
        if self.shared.ordered_mode() {
            self.shared.progress[self.id].store(f64::INFINITY.to_bits(), Ordering::Release);
            let deadline = std::time::Instant::now() + FINISH_WAIT;
            while self.shared.low_watermark() < f64::INFINITY && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        self.receive(engine, f64::INFINITY);
        self.settle(engine, f64::INFINITY);
        if self.retention.overflows() > 0 {
            tracing::info!(
                connections = self.retention.overflows(),
                budget = BUDGET,
                "new connections outgrew the retention budget and could not be analysed again for a late expectation"
            );
        }
    }

    /// Hands `engine` what the others posted (in ordered mode, what they raised by packet time `now`, as one
    /// engine would have had it): without news it costs an atomic load.
    fn receive(&mut self, engine: &mut Engine, now: f64) {
        let count = self.shared.count.load(Ordering::Acquire);
        if count != self.read {
            let me = Poster::Engine(self.id);
            let posted = self.shared.posted.lock().unwrap_or_else(|e| e.into_inner());
            let start = posted.partition_point(|p| p.seq <= self.read);
            let new = posted[start..].iter().filter(|p| p.from != me);
            self.waiting.extend(new.map(|p| (p.expectation.clone(), p.raised_at)));
            self.read = posted.last().map_or(count, |p| p.seq);
        }
        if self.waiting.is_empty() {
            return;
        }
        let ordered = self.shared.ordered_mode();
        for (e, at) in self.waiting.extract_if(.., |(_, at)| !ordered || *at <= now) {
            engine.add_expectation(e.clone());
            self.received.push((e, at));
        }
    }

    /// Analyses again each kept connection that started before `cutoff` and an applied expectation names (raised
    /// before it started); lets the others' records go.
    fn settle(&mut self, engine: &mut Engine, cutoff: f64) {
        let released = self.retention.settle_before(engine, &self.received, cutoff);
        // The connections analysed again have their expectations in place: they are not kept again.
        engine.take_created();
        // An expectation lapsed before the cutoff names nothing still kept.
        self.received.retain(|(e, _)| e.expires >= cutoff);
        self.released.extend(released);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnalysisConfig;

    fn expectation(port: u16) -> Expectation {
        Expectation {
            orig_h: None,
            resp_h: "192.0.2.1".parse().unwrap(),
            resp_p: port,
            analyzer: None,
            service: "ftp-data",
            expires: 100.0,
        }
    }

    #[test]
    fn an_engine_gets_what_the_others_post_once_and_not_its_own() {
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&forwarded);
        let shared = Arc::new(SharedExpectations::forwarding(Box::new(move |e: &[Expectation], _| {
            sink.lock().unwrap().extend(e.iter().map(|e| e.resp_p));
        })));
        let (mut a, mut b) = (shared.port(0), shared.port(1));
        let mut engine_b = Engine::new(AnalysisConfig::default());
        shared.post(Poster::Engine(0), vec![expectation(2000)], 1.0);
        shared.post(Poster::Remote, vec![expectation(3000)], 1.0);
        b.receive(&mut engine_b, 0.0);
        assert_eq!(engine_b.expected_ports(), [2000, 3000]);
        b.receive(&mut engine_b, 0.0);
        assert_eq!(engine_b.expected_ports(), [2000, 3000], "nothing is handed out twice");
        let mut engine_a = Engine::new(AnalysisConfig::default());
        a.receive(&mut engine_a, 0.0);
        assert_eq!(engine_a.expected_ports(), [3000], "an engine does not get its own back");
        assert_eq!(*forwarded.lock().unwrap(), [2000], "only local posts go to the other workers");
    }
}
