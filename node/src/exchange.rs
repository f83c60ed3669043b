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
}

impl SharedExpectations {
    /// A board whose local posts are also handed to `forward` (a cluster worker publishes them).
    pub fn forwarding(forward: Forward) -> SharedExpectations {
        SharedExpectations { forward: Some(forward), ..SharedExpectations::default() }
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
    /// Expectations others raised, received since the last settling.
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
        self.receive(engine);
        engine.process_packet(ts, link, frame);
        for created in engine.take_created() {
            self.retention.start(created);
        }
        if let Some(key) = engine.last_connection() {
            self.retention.keep(&key, ts, engine.network_time(), link, frame);
            self.released.append(&mut self.retention.take_released());
        }
        let now = engine.network_time();
        self.shared.post(Poster::Engine(self.id), engine.take_new_expectations(), now);
        if self.settled_at == f64::NEG_INFINITY {
            self.settled_at = now;
        } else if now - self.settled_at >= SETTLE_EVERY {
            self.settle(engine);
            self.settled_at = now;
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

    /// Settles every kept connection: call before [`Engine::finish`].
    pub fn finish(&mut self, engine: &mut Engine) {
        self.receive(engine);
        self.settle(engine);
        if self.retention.overflows() > 0 {
            tracing::info!(
                connections = self.retention.overflows(),
                budget = BUDGET,
                "new connections outgrew the retention budget and could not be analysed again for a late expectation"
            );
        }
    }

    /// Hands `engine` what the others posted since the last call: without news it costs an atomic load.
    fn receive(&mut self, engine: &mut Engine) {
        let count = self.shared.count.load(Ordering::Acquire);
        if count == self.read {
            return;
        }
        let me = Poster::Engine(self.id);
        let posted = self.shared.posted.lock().unwrap_or_else(|e| e.into_inner());
        let start = posted.partition_point(|p| p.seq <= self.read);
        for p in posted[start..].iter().filter(|p| p.from != me) {
            engine.add_expectation(p.expectation.clone());
            self.received.push((p.expectation.clone(), p.raised_at));
        }
        self.read = posted.last().map_or(count, |p| p.seq);
    }

    /// Analyses again each kept connection an expectation received meanwhile names (raised before it started); lets
    /// the others' records go. Nothing stays kept.
    fn settle(&mut self, engine: &mut Engine) {
        let released = self.retention.settle(engine, &self.received);
        // The connections analysed again have their expectations in place: they are not kept again.
        engine.take_created();
        self.received.clear();
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
        b.receive(&mut engine_b);
        assert_eq!(engine_b.expected_ports(), [2000, 3000]);
        b.receive(&mut engine_b);
        assert_eq!(engine_b.expected_ports(), [2000, 3000], "nothing is handed out twice");
        let mut engine_a = Engine::new(AnalysisConfig::default());
        a.receive(&mut engine_a);
        assert_eq!(engine_a.expected_ports(), [3000], "an engine does not get its own back");
        assert_eq!(*forwarded.lock().unwrap(), [2000], "only local posts go to the other workers");
    }
}
