//! Expected connections shared between engines that each see part of the traffic: analysis threads of one process
//! (`--threads N`) and, through the cluster, the workers behind one tap. An FTP data channel hashes to another
//! 5-tuple than its control connection, so it usually lands on another engine; the engine that saw the `PORT` or
//! `227` posts the expectation here and the others pick it up (Zeek's `FTP::sync_add_expected_data`).
//!
//! Live, the data connection's SYN comes at least a round trip after the reply that announced it, and an
//! expectation crosses threads in microseconds and a cluster in about a millisecond, so it is in place first. An
//! offline cluster run (`zeek-node cluster -r`) does not rely on timing: it replays withheld packets
//! (`cluster/retention.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::analyzers::Expectation;
use crate::engine::Engine;

/// Posted expectations kept at most; the oldest go first (an expectation lapses within minutes anyway).
const KEPT: usize = 4096;

/// Who posted an expectation: an engine of this process, or another cluster worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poster {
    Engine(usize),
    Remote,
}

/// Called with the expectations this process's engines raise, to send them to the other workers.
pub type Forward = Box<dyn Fn(&[Expectation]) + Send + Sync>;

/// The board the engines of one capture post to and read from.
#[derive(Default)]
pub struct SharedExpectations {
    posted: Mutex<Vec<(u64, Poster, Expectation)>>,
    /// Expectations posted so far: an engine compares it with what it has read before taking the lock.
    count: AtomicU64,
    forward: Option<Forward>,
}

impl SharedExpectations {
    /// A board whose local posts are also handed to `forward` (a cluster worker publishes them).
    pub fn forwarding(forward: Forward) -> SharedExpectations {
        SharedExpectations { forward: Some(forward), ..SharedExpectations::default() }
    }

    pub fn post(&self, from: Poster, expectations: Vec<Expectation>) {
        if expectations.is_empty() {
            return;
        }
        if let (Poster::Engine(_), Some(forward)) = (from, &self.forward) {
            forward(&expectations);
        }
        let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        for e in expectations {
            let seq = self.count.fetch_add(1, Ordering::Release) + 1;
            posted.push((seq, from, e));
        }
        if posted.len() > KEPT {
            let excess = posted.len() - KEPT;
            posted.drain(..excess);
        }
    }

    /// The view of engine `id`.
    pub fn port(self: &Arc<Self>, id: usize) -> ExpectationPort {
        ExpectationPort { shared: Arc::clone(self), id, read: 0 }
    }
}

/// One engine's access to the board.
pub struct ExpectationPort {
    shared: Arc<SharedExpectations>,
    id: usize,
    /// The sequence number of the last posted expectation this engine has seen.
    read: u64,
}

impl ExpectationPort {
    /// Makes `engine` collect the expectations it raises, for [`ExpectationPort::post`].
    pub fn attach(&self, engine: &mut Engine) {
        engine.share_expectations(true);
    }

    /// Hands `engine` what the others posted since the last call. Called before every packet (the packet may be the
    /// data connection another engine announced): without news it costs an atomic load.
    pub fn receive(&mut self, engine: &mut Engine) {
        let count = self.shared.count.load(Ordering::Acquire);
        if count == self.read {
            return;
        }
        let me = Poster::Engine(self.id);
        let posted = self.shared.posted.lock().unwrap_or_else(|e| e.into_inner());
        let start = posted.partition_point(|(seq, _, _)| *seq <= self.read);
        for (_, from, e) in &posted[start..] {
            if *from != me {
                engine.add_expectation(e.clone());
            }
        }
        self.read = posted.last().map_or(count, |(seq, _, _)| *seq);
    }

    /// Posts what `engine` raised since the last call. Called after every packet.
    pub fn post(&mut self, engine: &mut Engine) {
        self.shared.post(Poster::Engine(self.id), engine.take_new_expectations());
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
        let shared = Arc::new(SharedExpectations::forwarding(Box::new(move |e: &[Expectation]| {
            sink.lock().unwrap().extend(e.iter().map(|e| e.resp_p));
        })));
        let (mut a, mut b) = (shared.port(0), shared.port(1));
        let mut engine_b = Engine::new(AnalysisConfig::default());
        shared.post(Poster::Engine(0), vec![expectation(2000)]);
        shared.post(Poster::Remote, vec![expectation(3000)]);
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
