//! One node's analyses ([`NodeRuntime`]), the context their handlers work through ([`Cx`]) and the [`Transport`]
//! that carries their events: in-process ([`super::local::LocalHub`]) or over the cluster bus.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::config::DetectConfig;
use super::notice::{self, Framework, Notice, Suppression};
use super::{Analysis, Data, EngineEvent, Event, Handler, PublishError, Role, StateStore};
use crate::cluster::topic;
use crate::logs::{LogRecord, net_weird_record};

/// How a node's analyses reach the others. Standalone: [`super::local::LocalHub`]. In a cluster: the node's bus,
/// with `publish` = [`crate::cluster::Node::publish`], `publish_hrw` = [`crate::cluster::Node::publish_hrw`],
/// `publish_rr` = [`crate::cluster::Node::publish_rr`], `log` = [`crate::cluster::Node::log`].
pub trait Transport {
    /// To every node subscribed to a prefix of `topic` (Zeek's names: `zeek/cluster/worker`, ...), this one
    /// included when it subscribes.
    fn publish(&mut self, topic: &str, ev: Event) -> Result<(), PublishError>;
    /// To the member of `pool` that owns `key` by rendezvous hashing (Zeek's `Cluster::publish_hrw`).
    fn publish_hrw(&mut self, pool: Role, key: &Data, ev: Event) -> Result<(), PublishError>;
    /// To the next member of `pool` for `key` in round-robin order (Zeek's `Cluster::publish_rr`).
    fn publish_rr(&mut self, pool: Role, key: &str, ev: Event) -> Result<(), PublishError>;
    /// A log record (to the loggers, or to the files standalone).
    fn log(&mut self, record: LogRecord);
    /// Whether the roles are nodes of a cluster (each its own process), rather than one standalone process.
    fn in_cluster(&self) -> bool {
        false
    }
    /// The names of the nodes of `role` in the current membership view (Zeek's `Cluster::nodes` by type).
    fn pool(&self, _role: Role) -> Vec<String> {
        Vec::new()
    }
}

/// Network time reaches handlers' `tick` at most this often (seconds of network time).
const TICK: f64 = 1.0;

/// The analyses of one node: their handlers, the node's clock, its notice suppression and its counters.
///
/// Every event an analysis publishes carries the sender's network time as an extra first argument; the receiver
/// strips it and moves its own clock forward to it, so nodes that see no packets (proxies, the manager) expire
/// state and report on packet time, offline as live.
pub struct NodeRuntime {
    name: String,
    role: Role,
    cfg: Arc<DetectConfig>,
    handlers: Vec<Box<dyn Handler>>,
    suppression: Suppression,
    now: f64,
    last_tick: f64,
    counters: BTreeMap<&'static str, u64>,
    /// When each connection-less weird this node raised was last logged ([`Cx::log`]).
    weirds_logged: HashMap<&'static str, f64>,
}

impl NodeRuntime {
    pub fn new(name: &str, role: Role, analyses: &[Box<dyn Analysis>], cfg: Arc<DetectConfig>) -> Self {
        let handlers = analyses.iter().filter_map(|a| a.handler(role, &cfg)).collect();
        NodeRuntime {
            name: name.to_string(),
            role,
            cfg,
            handlers,
            suppression: Suppression::default(),
            now: 0.0,
            last_tick: 0.0,
            counters: BTreeMap::new(),
            weirds_logged: HashMap::new(),
        }
    }

    /// Whether a handler of this node measures the engine after packets ([`Handler::counters_due`]): asked once,
    /// before the first packet, by the sinks that would report it.
    pub fn wants_counters(&self) -> bool {
        self.counters_due() < f64::INFINITY
    }

    /// When this node's handlers next need an [`EngineEvent::Counters`] ([`Handler::counters_due`]).
    pub fn counters_due(&self) -> f64 {
        self.handlers.iter().map(|h| h.counters_due()).fold(f64::INFINITY, f64::min)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// This node's network time.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Counters the analyses keep (`scan_messages_saved`, `publish_errors`, ...).
    pub fn counters(&self) -> &BTreeMap<&'static str, u64> {
        &self.counters
    }

    pub fn init(&mut self, state: &mut StateStore, out: &mut dyn Transport) {
        self.each(state, out, |h, cx| h.init(cx));
    }

    /// An engine event on a worker; its time moves the clock first.
    pub fn engine(&mut self, ev: &EngineEvent, state: &mut StateStore, out: &mut dyn Transport) {
        self.advance(ev.ts(), state, out);
        self.each(state, out, |h, cx| h.engine(ev, cx));
    }

    /// A cluster event as it arrived (with the sender's time first).
    pub fn deliver(&mut self, mut ev: Event, state: &mut StateStore, out: &mut dyn Transport) {
        if let Some(Data::Time(sent)) = ev.args.first() {
            let sent = *sent;
            ev.args.remove(0);
            self.advance(sent, state, out);
        }
        match notice::framework_event(&ev, self.role, &mut self.suppression) {
            Framework::NotMine => self.each(state, out, |h, cx| h.event(&ev, cx)),
            Framework::Handled => {}
            Framework::Raise(n) => n.raise_on_manager(&mut self.cx(state, out)),
        }
    }

    /// Moves network time forward: expired state goes, and handlers tick once per second of network time.
    pub fn advance(&mut self, now: f64, state: &mut StateStore, out: &mut dyn Transport) {
        if now <= self.now {
            return;
        }
        self.now = now;
        if self.last_tick == 0.0 {
            self.last_tick = now;
        }
        if now - self.last_tick >= TICK {
            self.last_tick = now;
            state.expire(now);
            self.suppression.expire(now);
            self.each(state, out, |h, cx| h.tick(cx));
        }
    }

    pub fn done(&mut self, state: &mut StateStore, out: &mut dyn Transport) {
        self.each(state, out, |h, cx| h.done(cx));
    }

    fn cx<'a>(&'a mut self, state: &'a mut StateStore, out: &'a mut dyn Transport) -> Cx<'a> {
        Cx {
            node: &self.name,
            role: self.role,
            now: self.now,
            cfg: &self.cfg,
            state,
            out,
            suppression: &mut self.suppression,
            counters: &mut self.counters,
            weirds_logged: &mut self.weirds_logged,
        }
    }

    fn each(&mut self, state: &mut StateStore, out: &mut dyn Transport, mut f: impl FnMut(&mut dyn Handler, &mut Cx)) {
        let mut handlers = std::mem::take(&mut self.handlers);
        {
            let mut cx = self.cx(state, out);
            for h in &mut handlers {
                f(h.as_mut(), &mut cx);
            }
        }
        self.handlers = handlers;
    }
}

/// What a handler works through: time, configuration, publishing, state, logs and notices.
pub struct Cx<'a> {
    node: &'a str,
    role: Role,
    now: f64,
    cfg: &'a DetectConfig,
    state: &'a mut StateStore,
    out: &'a mut dyn Transport,
    suppression: &'a mut Suppression,
    counters: &'a mut BTreeMap<&'static str, u64>,
    weirds_logged: &'a mut HashMap<&'static str, f64>,
}

impl Cx<'_> {
    /// Network time (seconds since the epoch).
    pub fn now(&self) -> f64 {
        self.now
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// This node's name (`worker-1`; `zeek` standalone, Zeek's `peer_description`).
    pub fn node_name(&self) -> &str {
        self.node
    }

    pub fn config(&self) -> &DetectConfig {
        self.cfg
    }

    /// Whether `addr` is in the site's local networks.
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.cfg.local_nets.contains(addr)
    }

    /// Whether this node is one of a cluster's processes; standalone, every role runs in one process, which Zeek
    /// sees as one node (`zeek`).
    pub fn in_cluster(&self) -> bool {
        self.out.in_cluster()
    }

    /// The names of the nodes of `role` in the current membership view.
    pub fn pool(&self, role: Role) -> Vec<String> {
        self.out.pool(role)
    }

    /// This node's keyed state. On proxies, entries whose HRW owner changes move to the new owner, so key
    /// a table by the same value you pass to [`Cx::publish_hrw`].
    pub fn state(&mut self) -> &mut StateStore {
        self.state
    }

    /// Adds to one of this node's counters (exposed as metrics, printed at the end of a standalone run).
    pub fn count(&mut self, counter: &'static str, by: u64) {
        *self.counters.entry(counter).or_default() += by;
    }

    fn stamped(&self, name: &str, args: Vec<Data>) -> Event {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Data::Time(self.now));
        all.extend(args);
        Event::new(name, all)
    }

    fn sent(&mut self, result: Result<(), PublishError>, name: &str) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                self.count("publish_errors", 1);
                tracing::debug!(event = name, "publish failed: {e}");
                false
            }
        }
    }

    /// Publishes `name(args)` to a topic. Returns whether it was sent.
    pub fn publish(&mut self, topic: &str, name: &str, args: Vec<Data>) -> bool {
        let ev = self.stamped(name, args);
        let r = self.out.publish(topic, ev);
        self.sent(r, name)
    }

    /// Publishes to every node of `role` (`zeek/cluster/<role>`).
    pub fn publish_role(&mut self, role: Role, name: &str, args: Vec<Data>) -> bool {
        self.publish(topic::role_topic(role), name, args)
    }

    /// Publishes to the proxy (or worker) that owns `key`.
    pub fn publish_hrw(&mut self, pool: Role, key: &Data, name: &str, args: Vec<Data>) -> bool {
        let ev = self.stamped(name, args);
        let r = self.out.publish_hrw(pool, key, ev);
        self.sent(r, name)
    }

    /// Publishes to the next member of `pool` for `key`, round robin.
    pub fn publish_rr(&mut self, pool: Role, key: &str, name: &str, args: Vec<Data>) -> bool {
        let ev = self.stamped(name, args);
        let r = self.out.publish_rr(pool, key, ev);
        self.sent(r, name)
    }

    /// Writes a record cut to its stream's limits, as Zeek's logging manager cuts every record
    /// ([`crate::logs::limits`]), with the weirds a cut raises: like the engine's connection-less weirds, each name
    /// is logged once per ten minutes of network time (Zeek's `weird_ignore`).
    pub fn log(&mut self, mut record: LogRecord) {
        const FORGET_AFTER: f64 = 600.0;
        let weirds = crate::logs::limits::limit_record(&mut record);
        self.out.log(record);
        for (name, addl) in weirds {
            if self.weirds_logged.get(name).is_some_and(|at| self.now - at < FORGET_AFTER) {
                continue;
            }
            self.weirds_logged.insert(name, self.now);
            self.out.log(net_weird_record(self.now, name, Some(addl), self.node, None, None));
        }
    }

    /// Raises a notice (Zeek's `NOTICE`). Off the manager it goes to the manager, which logs it once and tells
    /// every node to suppress `(note, identifier)` for the notice's `suppress_for`.
    pub fn notice(&mut self, mut n: Notice) {
        if n.ts.is_none() {
            n.ts = Some(self.now);
        }
        if n.suppress_for.is_none() {
            n.suppress_for = Some(self.cfg.notice.suppress_for);
        }
        if self.suppression.is_suppressed(&n, self.now) {
            return;
        }
        if self.role == Role::Manager {
            n.raise_on_manager(self);
        } else {
            // Suppress here at once, so this node does not send the same notice again before the manager's
            // broadcast arrives.
            self.suppression.begin(&n, self.now);
            self.publish_role(Role::Manager, notice::CLUSTER_NOTICE, vec![n.to_data()]);
        }
    }

    pub(super) fn suppression(&mut self) -> &mut Suppression {
        self.suppression
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{FILES, Value};

    /// Collects what a node logs.
    #[derive(Default)]
    struct Logs(Vec<LogRecord>);

    impl Transport for Logs {
        fn publish(&mut self, _: &str, _: Event) -> Result<(), PublishError> {
            Ok(())
        }
        fn publish_hrw(&mut self, _: Role, _: &Data, _: Event) -> Result<(), PublishError> {
            Ok(())
        }
        fn publish_rr(&mut self, _: Role, _: &str, _: Event) -> Result<(), PublishError> {
            Ok(())
        }
        fn log(&mut self, record: LogRecord) {
            self.0.push(record);
        }
    }

    /// Logs a files.log record with a 5000-byte file name at every tick.
    struct LongNames;

    impl Handler for LongNames {
        fn tick(&mut self, cx: &mut Cx) {
            let mut values = vec![Value::Unset; FILES.fields.len()];
            let filename = FILES.fields.iter().position(|f| f.name == "filename").expect("a filename column");
            values[filename] = Value::Str("n".repeat(5000));
            cx.log(LogRecord::new(&FILES, values));
        }
    }

    impl Analysis for LongNames {
        fn name(&self) -> &'static str {
            "long-names"
        }
        fn events(&self) -> &'static [&'static str] {
            &[]
        }
        fn handler(&self, _: Role, _: &DetectConfig) -> Option<Box<dyn Handler>> {
            Some(Box::new(LongNames))
        }
    }

    #[test]
    fn records_are_cut_to_their_limits_with_a_weird_once_per_ten_minutes() {
        let analyses: Vec<Box<dyn Analysis>> = vec![Box::new(LongNames)];
        let mut rt = NodeRuntime::new("manager", Role::Manager, &analyses, Arc::new(DetectConfig::default()));
        let (mut state, mut out) = (StateStore::default(), Logs::default());
        for now in [1000.0, 1001.0, 1002.0, 1700.0] {
            rt.advance(now, &mut state, &mut out);
        }
        let paths: Vec<&str> = out.0.iter().map(|r| r.schema.path).collect();
        assert_eq!(paths, ["files", "weird", "files", "files", "weird"]);
        for r in out.0.iter().filter(|r| r.schema.path == "files") {
            assert!(matches!(r.get("filename"), Some(Value::Str(s)) if s.len() == 4096));
        }
        for (r, ts) in out.0.iter().filter(|r| r.schema.path == "weird").zip([1001.0, 1700.0]) {
            assert_eq!(r.get("ts"), Some(&Value::Time(ts)));
            assert_eq!(r.get("name"), Some(&Value::str("log_string_field_truncated")));
            assert_eq!(r.get("addl"), Some(&Value::str("Files::LOG")));
            assert_eq!(r.get("peer"), Some(&Value::str("manager")));
        }
    }
}
