//! Standalone mode: every role in this process. [`LocalHub`] holds a manager, proxies and workers, each a
//! [`NodeRuntime`] with its own state, and is their [`Transport`]: a publish queues the event for every local node
//! subscribed to the topic, `publish_hrw` picks the local proxy by the same rendezvous hash a cluster uses, and the
//! queue is drained (in order) before the next engine event, so everything an event causes has happened before the
//! next packet's events are analysed.
//!
//! [`DetectSink`] puts a hub between the engine and the log files: it reads engine events from the records going
//! by, and writes what the analyses log (notice.log, intel.log, ...) to the same files.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::Arc;

use super::events::{self, Counters, CountersReport, EngineEvent};
use super::runtime::{NodeRuntime, Transport};
use super::{Analysis, Data, DetectConfig, Event, PublishError, Role, StateStore};
use crate::cluster::pool::RoundRobin;
use crate::cluster::{hrw, state, topic};
use crate::logs::{LogRecord, LogSink};

/// How many proxies and workers a hub simulates. Standalone is one of each; tests use more to check that
/// results do not depend on how keys spread over proxies.
#[derive(Debug, Clone, Copy)]
pub struct LocalLayout {
    pub proxies: usize,
    pub workers: usize,
}

impl Default for LocalLayout {
    fn default() -> Self {
        LocalLayout { proxies: 1, workers: 1 }
    }
}

struct LocalNode {
    rt: NodeRuntime,
    state: StateStore,
}

/// Names, roles and subscriptions of the hub's nodes: what routing needs while a node is busy handling.
struct Directory {
    names: Vec<String>,
    roles: Vec<Role>,
    subscriptions: Vec<Vec<String>>,
}

impl Directory {
    fn pool(&self, role: Role) -> Vec<&str> {
        self.names.iter().zip(&self.roles).filter(|(_, r)| **r == role).map(|(n, _)| n.as_str()).collect()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// The in-process transport of one sender.
struct LocalOut<'a> {
    dir: &'a Directory,
    queue: &'a mut VecDeque<(usize, Event)>,
    rr: &'a mut RoundRobin,
    logs: &'a mut Vec<LogRecord>,
}

impl LocalOut<'_> {
    fn send_to(&mut self, name: Option<&str>, pool: Role, ev: Event) -> Result<(), PublishError> {
        let target = name.and_then(|n| self.dir.index(n)).ok_or(PublishError::EmptyPool(pool))?;
        self.queue.push_back((target, ev));
        Ok(())
    }
}

impl Transport for LocalOut<'_> {
    fn publish(&mut self, topic_name: &str, ev: Event) -> Result<(), PublishError> {
        for (i, subs) in self.dir.subscriptions.iter().enumerate() {
            if topic::matches_any(subs, topic_name) {
                self.queue.push_back((i, ev.clone()));
            }
        }
        Ok(())
    }

    fn publish_hrw(&mut self, pool: Role, key: &Data, ev: Event) -> Result<(), PublishError> {
        let members = self.dir.pool(pool);
        let owner = hrw::owner(members, &state::pool_key(key));
        self.send_to(owner, pool, ev)
    }

    fn publish_rr(&mut self, pool: Role, key: &str, ev: Event) -> Result<(), PublishError> {
        let members = self.dir.pool(pool);
        let pick = self.rr.next(key, &members, |_| true);
        self.send_to(pick, pool, ev)
    }

    fn log(&mut self, record: LogRecord) {
        self.logs.push(record);
    }

    fn pool(&self, role: Role) -> Vec<String> {
        self.dir.pool(role).into_iter().map(str::to_string).collect()
    }
}

/// Every role of a cluster in this process.
pub struct LocalHub {
    dir: Directory,
    nodes: Vec<LocalNode>,
    queue: VecDeque<(usize, Event)>,
    rr: RoundRobin,
    logs: Vec<LogRecord>,
    finished: bool,
}

impl LocalHub {
    /// A manager, one proxy and one worker named `zeek` (Zeek's `peer_description` when not in a cluster).
    pub fn standalone(analyses: Vec<Box<dyn Analysis>>, cfg: DetectConfig) -> Self {
        Self::new(analyses, cfg, LocalLayout::default())
    }

    pub fn new(analyses: Vec<Box<dyn Analysis>>, cfg: DetectConfig, layout: LocalLayout) -> Self {
        let cfg = Arc::new(cfg);
        let mut members = vec![("manager".to_string(), Role::Manager)];
        let numbered = |prefix: &'static str, n: usize, role| (1..=n).map(move |i| (format!("{prefix}-{i}"), role));
        members.extend(numbered("proxy", layout.proxies, Role::Proxy));
        if layout.workers == 1 {
            members.push(("zeek".to_string(), Role::Worker));
        } else {
            members.extend(numbered("worker", layout.workers, Role::Worker));
        }
        let dir = Directory {
            subscriptions: members.iter().map(|(n, r)| topic::default_subscriptions(n, *r)).collect(),
            names: members.iter().map(|(n, _)| n.clone()).collect(),
            roles: members.iter().map(|(_, r)| *r).collect(),
        };
        let nodes = members
            .iter()
            .map(|(name, role)| LocalNode {
                rt: NodeRuntime::new(name, *role, &analyses, Arc::clone(&cfg)),
                state: StateStore::default(),
            })
            .collect();
        let mut hub =
            LocalHub { dir, nodes, queue: VecDeque::new(), rr: RoundRobin::default(), logs: vec![], finished: false };
        for i in 0..hub.nodes.len() {
            hub.with_node(i, |rt, state, out| rt.init(state, out));
        }
        hub
    }

    fn with_node(&mut self, i: usize, f: impl FnOnce(&mut NodeRuntime, &mut StateStore, &mut dyn Transport)) {
        let mut out = LocalOut { dir: &self.dir, queue: &mut self.queue, rr: &mut self.rr, logs: &mut self.logs };
        let node = &mut self.nodes[i];
        f(&mut node.rt, &mut node.state, &mut out);
        self.drain();
    }

    /// Delivers queued events until none is left (handlers may publish more).
    fn drain(&mut self) {
        while let Some((target, ev)) = self.queue.pop_front() {
            let mut out = LocalOut { dir: &self.dir, queue: &mut self.queue, rr: &mut self.rr, logs: &mut self.logs };
            let node = &mut self.nodes[target];
            node.rt.deliver(ev, &mut node.state, &mut out);
        }
    }

    fn workers(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.dir.roles[*i] == Role::Worker).collect()
    }

    /// Moves every node's clock to `now` (one process, one clock).
    pub fn advance(&mut self, now: f64) {
        for i in 0..self.nodes.len() {
            self.with_node(i, |rt, state, out| rt.advance(now, state, out));
        }
    }

    /// An engine event on worker `worker` (0-based).
    pub fn engine(&mut self, worker: usize, ev: &EngineEvent) {
        self.advance(ev.ts());
        let Some(&i) = self.workers().get(worker) else { return };
        self.with_node(i, |rt, state, out| rt.engine(ev, state, out));
    }

    /// The engine events in a batch of records written by worker `worker`'s engine, and what its hooks reported.
    pub fn observe(&mut self, worker: usize, records: &[LogRecord]) {
        for r in records {
            if let Some(ev) = EngineEvent::from_record(r) {
                self.engine(worker, &ev);
            }
        }
        for ev in events::take_hook_events() {
            self.engine(worker, &ev);
        }
    }

    /// Whether a worker's analyses want [`EngineEvent::Counters`] after every packet.
    pub fn wants_counters(&self) -> bool {
        self.nodes.iter().any(|n| n.rt.wants_counters())
    }

    /// When the worker that [`DetectSink`] reports to next needs an [`EngineEvent::Counters`].
    pub fn counters_due(&self) -> f64 {
        self.workers().first().and_then(|&i| self.nodes.get(i)).map_or(f64::INFINITY, |n| n.rt.counters_due())
    }

    /// End of input: workers, then proxies, then the manager finish, each after the previous ones' messages.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        for role in [Role::Worker, Role::Proxy, Role::Manager] {
            for i in 0..self.nodes.len() {
                if self.dir.roles[i] == role {
                    self.with_node(i, |rt, state, out| rt.done(state, out));
                }
            }
        }
    }

    /// The records analyses wrote since the last call.
    pub fn take_logs(&mut self) -> Vec<LogRecord> {
        std::mem::take(&mut self.logs)
    }

    /// Every node's counters, summed by name.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let mut total = BTreeMap::new();
        for n in &self.nodes {
            for (k, v) in n.rt.counters() {
                *total.entry(*k).or_default() += v;
            }
        }
        total
    }
}

/// A log sink that also runs the analyses on what goes by (standalone `zeek-node -r/-i --detect ...`).
pub struct DetectSink<S: LogSink> {
    inner: S,
    hub: LocalHub,
    counters: CountersReport,
}

impl<S: LogSink> DetectSink<S> {
    pub fn new(inner: S, hub: LocalHub) -> Self {
        events::collect_hook_events();
        DetectSink { inner, counters: CountersReport::new(hub.wants_counters()), hub }
    }

    pub fn hub(&self) -> &LocalHub {
        &self.hub
    }

    /// Hands the engine's counters to the worker's analyses and writes what they log.
    fn report(&mut self, counters: Counters) {
        self.hub.engine(0, &EngineEvent::Counters(counters));
        if let Err(e) = self.write_analysis_logs() {
            tracing::warn!("writing the analyses' logs: {e}");
        }
    }

    fn write_analysis_logs(&mut self) -> io::Result<()> {
        for r in self.hub.take_logs() {
            self.inner.write(&r)?;
        }
        Ok(())
    }
}

impl<S: LogSink> LogSink for DetectSink<S> {
    fn write(&mut self, record: &LogRecord) -> io::Result<()> {
        self.inner.write(record)?;
        self.hub.observe(0, std::slice::from_ref(record));
        self.write_analysis_logs()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn housekeeping(&mut self) -> io::Result<()> {
        self.inner.housekeeping()
    }

    fn wants_packet_reports(&self) -> bool {
        self.counters.wanted()
    }

    fn packet_analysed(&mut self, network_time: f64, stats: &crate::engine::EngineStats) {
        if let Some(counters) = self.counters.after_packet(network_time, stats) {
            self.report(counters);
            self.counters.next_due(self.hub.counters_due());
        }
    }

    fn capture_counters(&mut self, stats: &crate::capture::CaptureStats) {
        self.counters.capture(stats);
    }

    fn input_ended(&mut self, network_time: f64, stats: &crate::engine::EngineStats) {
        if let Some(counters) = self.counters.at_end(network_time, stats) {
            self.report(counters);
        }
    }

    fn close(&mut self) -> io::Result<()> {
        self.hub.observe(0, &[]);
        self.hub.finish();
        self.write_analysis_logs()?;
        for (name, value) in self.hub.counters() {
            tracing::info!(counter = name, value, "detections");
        }
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::{ConnId, Proto};
    use crate::detect::events::{ConnFinished, SshSession};

    fn conn(i: u32, orig: &str, resp: &str, resp_p: u16, proto: Proto, state: &str, history: &str) -> EngineEvent {
        EngineEvent::ConnectionFinished(ConnFinished {
            ts: 1000.0 + f64::from(i),
            uid: format!("C{i}"),
            id: ConnId {
                orig_h: orig.parse().unwrap(),
                orig_p: 10000 + (i % 50000) as u16,
                resp_h: resp.parse().unwrap(),
                resp_p,
                proto,
            },
            duration: 0.1,
            service: vec![],
            orig_bytes: 5,
            resp_bytes: 2,
            conn_state: state.into(),
            history: history.into(),
            orig_pkts: 1,
            resp_pkts: 1,
        })
    }

    /// A DoS flood, an address scan, a port scan from five hosts of one /24, and SSH guessing.
    fn scenario() -> Vec<EngineEvent> {
        let mut evs = Vec::new();
        let mut i = 0;
        let mut next = || {
            i += 1;
            i
        };
        for _ in 0..120 {
            evs.push(conn(next(), "45.1.1.1", "10.0.0.5", 3389, Proto::Udp, "SF", "Dd"));
        }
        for h in 1..=30 {
            evs.push(conn(next(), "45.2.2.2", &format!("10.1.0.{h}"), 22, Proto::Tcp, "REJ", "Sr"));
        }
        for s in 1..=5 {
            for port in 1..=16 {
                evs.push(conn(next(), &format!("45.3.3.{s}"), "10.1.0.9", port, Proto::Tcp, "REJ", "Sr"));
            }
        }
        for _ in 0..12 {
            let n = next();
            let EngineEvent::ConnectionFinished(c) = conn(n, "45.4.4.4", "10.0.0.22", 22, Proto::Tcp, "SF", "ShADadFf")
            else {
                unreachable!()
            };
            let ssh =
                SshSession { ts: c.ts, uid: c.uid, id: c.id, auth_success: Some(false), client: None, server: None };
            evs.push(EngineEvent::SshSession(ssh));
        }
        evs
    }

    fn notices(layout: LocalLayout) -> Vec<String> {
        let mut hub = LocalHub::new(crate::detect::registry(), DetectConfig::default(), layout);
        for (i, ev) in scenario().iter().enumerate() {
            hub.engine(i % layout.workers, ev);
        }
        hub.finish();
        let mut out: Vec<String> = hub
            .take_logs()
            .iter()
            .filter(|r| r.schema.path == "notice")
            .map(|r| format!("{:?} {:?}", r.get("note"), r.get("msg")))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn results_do_not_depend_on_how_many_proxies_and_workers() {
        let standalone = notices(LocalLayout::default());
        assert_eq!(standalone.iter().filter(|n| n.contains("Scan::Port_Scan")).count(), 5, "{standalone:#?}");
        assert_eq!(standalone.iter().filter(|n| n.contains("Scan::Subnet")).count(), 1, "{standalone:#?}");
        assert_eq!(standalone.iter().filter(|n| n.contains("Scan::Address_Scan")).count(), 1);
        assert_eq!(standalone.iter().filter(|n| n.contains("DoS::Threshold")).count(), 1);
        assert_eq!(standalone.iter().filter(|n| n.contains("DoS::Victim")).count(), 1);
        assert_eq!(standalone.iter().filter(|n| n.contains("SSH::Password_Guessing")).count(), 0, "limit is 30");
        for (proxies, workers) in [(2, 3), (3, 2), (5, 1)] {
            assert_eq!(notices(LocalLayout { proxies, workers }), standalone, "{proxies} proxies, {workers} workers");
        }
    }

    #[test]
    fn an_empty_proxy_pool_is_counted_not_fatal() {
        let dos = crate::detect::select(&["dos".to_string()]).unwrap();
        let mut hub = LocalHub::new(dos, DetectConfig::default(), LocalLayout { proxies: 0, workers: 1 });
        for ev in scenario().iter().take(5) {
            hub.engine(0, ev);
        }
        hub.finish();
        assert_eq!(hub.counters().get("publish_errors"), Some(&5));
    }
}
