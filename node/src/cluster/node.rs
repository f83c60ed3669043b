//! The role runtime: one node of a cluster (manager, logger, proxy or worker) with its links, membership view,
//! topic routing, pools, state and log shipping. [`Node`] is also the handle analyses use to publish events.

use anyhow::Context as _;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;

use super::data::{Data, Event, EventName};
use super::envelope::{Header, HeaderCache};
use super::hrw;
use super::layout::NodeSpec;
use super::link::{self, Link};
use super::local::{self, LocalQueue, LocalReceiver};
use super::logger::LogWriter;
use super::logship::{Destinations, LogShipper, ShipRoute, ShipSettings};
use super::logwire::{self, CLUSTER_LOG};
use super::membership::{Authority, Member, View};
use super::pool::RoundRobin;
use super::proto::{PROTOCOL_VERSION, pb};
use super::role::Role;
use super::routing::{Payload, RelayBacklog, TopicPlans};
use super::service::Service;
use super::state::{self, StateStore};
use super::tls::TlsSettings;
use super::topic::{self, Subscriptions};
use crate::logs::{LogFormat, LogRecord, Value};
use crate::metrics::Metrics;
use crate::watchdog::Watchdog;

/// Internal event that carries state entries to their new owner after a view change.
pub const STATE_TRANSFER_EVENT: &str = "Cluster::state_transfer";
/// Local events raised when a link to a peer comes up or goes down: args `[name: string, role: enum]`.
pub const NODE_UP_EVENT: &str = "Cluster::node_up";
pub const NODE_DOWN_EVENT: &str = "Cluster::node_down";

/// State entries per transfer event.
const TRANSFER_CHUNK: usize = 512;
/// Maps looked up for every message: names are not attacker-chosen, so a fast hash is enough.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Local deliveries queued for the handlers before new ones are refused (counted).
const LOCAL_QUEUE: usize = 65_536;

/// Liveness and recovery timing.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    /// A link silent this long is dead.
    pub liveness: Duration,
    /// A restarted manager collects re-joining nodes this long before it publishes its first view.
    pub recovery_grace: Duration,
    /// How long a leaving node keeps re-routing after its last view, before it exits.
    pub leave_drain: Duration,
    /// How long a thread of the node's data path (a worker's capture and analysis, a logger's writer) may work on
    /// one step before the node counts as unhealthy ([`crate::watchdog`]).
    pub stall_limit: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(500),
            liveness: Duration::from_secs(3),
            recovery_grace: Duration::from_secs(2),
            leave_drain: Duration::from_secs(1),
            stall_limit: crate::watchdog::DEFAULT_STALL_LIMIT,
        }
    }
}

/// Where and how a node writes logs when it is the one writing them (loggers; the manager without loggers).
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub dir: PathBuf,
    pub format: LogFormat,
    /// `None`: never rotate.
    pub rotation: Option<Duration>,
    /// With rotation, archives last written longer ago than this are deleted; `None`: kept for good.
    pub retention: Option<Duration>,
}

pub struct NodeConfig {
    pub cluster: String,
    pub me: NodeSpec,
    /// Where the gRPC service listens; `None` for a standalone node (see [`Node::standalone`]).
    pub listen: Option<SocketAddr>,
    pub manager: NodeSpec,
    /// Every node the layout lists (the manager's readiness barrier waits for them).
    pub expected: Vec<String>,
    pub tls: Option<TlsSettings>,
    pub timing: Timing,
    pub logging: LogSettings,
    pub shipping: ShipSettings,
    pub metrics_addr: Option<SocketAddr>,
}

/// A message delivered to this node's handlers.
#[derive(Debug, Clone)]
pub struct Received {
    pub header: Arc<Header>,
    pub event: Event,
    /// The pool route of a keyed publish (`publish_hrw`), checked against the view of its arrival.
    pub(super) route: Option<AcceptedRoute>,
}

/// A keyed message's route and the view epoch under which this node found itself its owner.
#[derive(Debug, Clone)]
pub(super) struct AcceptedRoute {
    pub route: Box<pb::PoolRoute>,
    pub view_epoch: u64,
}

impl Received {
    /// An event without a pool route, as published to `header`.
    pub(super) fn new(header: Arc<Header>, event: Event) -> Received {
        Received { header, event, route: None }
    }

    /// The topic it was published to.
    pub fn topic(&self) -> &str {
        &self.header.topic
    }

    /// The node that published it.
    pub fn origin(&self) -> &str {
        &self.header.origin
    }
}

/// An event handler. It runs on the node's dispatcher task: it must not block, and may publish.
pub type Handler = Arc<dyn Fn(&Node, &Received) + Send + Sync>;

/// The manager's view bookkeeping.
struct ManagerState {
    authority: Authority,
    /// Set while a restarted manager collects re-joins before its first view.
    recovering: bool,
    published: bool,
}

pub(super) struct Inner {
    pub(super) cfg: NodeConfig,
    /// The node's threads that must keep moving: a worker's run's, a logger's writer.
    watchdog: Arc<Watchdog>,
    started: Instant,
    view_tx: watch::Sender<Arc<View>>,
    pub(super) links: RwLock<FastMap<String, Arc<Link>>>,
    pub(super) headers: HeaderCache,
    pub(super) plans: TopicPlans,
    pub(super) subs: RwLock<Subscriptions>,
    /// Handlers by event name; a list is shared with the dispatcher while it runs it, so a handler may register
    /// another without a deadlock.
    handlers: RwLock<FastMap<String, Arc<Vec<Handler>>>>,
    pub(super) local: LocalQueue,
    manager: Option<Mutex<ManagerState>>,
    pub(super) rr: Mutex<RoundRobin>,
    state: Mutex<StateStore>,
    shipper: LogShipper,
    writer: Mutex<Option<Arc<LogWriter>>>,
    pub(super) metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    leaving: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    next_link_id: AtomicU64,
    dialing: Mutex<HashSet<String>>,
    pub(super) events_in: AtomicU64,
    pub(super) events_out: AtomicU64,
}

/// A running node; cheap to clone.
#[derive(Clone)]
pub struct Node(pub(super) Arc<Inner>);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wall_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Node {
    /// Starts the node: binds its gRPC port, starts its tasks and begins dialing. Call inside a tokio runtime.
    pub async fn start(cfg: NodeConfig) -> anyhow::Result<Node> {
        Ok(Node::start_with(cfg, |_| ()).await?.0)
    }

    /// [`Node::start`], with `install` run on the node before it accepts or dials a link: the handlers it
    /// registers exist before any message can arrive. A worker's intel list, sent when it joins, reached a worker
    /// whose handler was registered just after the join, and was dropped: the worker never matched anything.
    pub async fn start_with<R>(cfg: NodeConfig, install: impl FnOnce(&Node) -> R) -> anyhow::Result<(Node, R)> {
        let me = cfg.me.clone();
        let metrics = Arc::new(Metrics::new(&cfg.cluster, &me.name, me.role.as_str()));
        let subscriptions = if cfg.listen.is_none() {
            let mut all: Vec<String> =
                Role::ALL.iter().flat_map(|r| topic::default_subscriptions(&me.name, *r)).collect();
            all.dedup();
            all
        } else {
            topic::default_subscriptions(&me.name, me.role)
        };
        let self_member = Member { name: me.name.clone(), role: me.role, advertise: me.advertise(), subscriptions };
        let manager = (me.role == Role::Manager).then(|| {
            Mutex::new(ManagerState {
                authority: Authority::new(self_member.clone(), cfg.expected.clone()),
                recovering: false,
                published: false,
            })
        });
        let initial = View { epoch: 0, members: vec![self_member.clone()], ready: false };
        let (view_tx, _) = watch::channel(Arc::new(initial));
        let (local, local_rx) = local::channel(LOCAL_QUEUE);
        let (shutdown_tx, _) = watch::channel(false);
        let shipper = LogShipper::new(cfg.shipping.clone(), Arc::clone(&metrics));
        let inner = Arc::new(Inner {
            subs: RwLock::new(Subscriptions::new(self_member.subscriptions.clone())),
            started: Instant::now(),
            view_tx,
            links: RwLock::new(FastMap::default()),
            headers: HeaderCache::new(&cfg.me.name),
            plans: TopicPlans::default(),
            handlers: RwLock::new(FastMap::default()),
            local,
            manager,
            rr: Mutex::new(RoundRobin::default()),
            state: Mutex::new(StateStore::default()),
            shipper,
            writer: Mutex::new(None),
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            leaving: AtomicBool::new(false),
            shutdown_tx,
            watchdog: Arc::new(Watchdog::new(cfg.timing.stall_limit)),
            next_link_id: AtomicU64::new(1),
            dialing: Mutex::new(HashSet::new()),
            events_in: AtomicU64::new(0),
            events_out: AtomicU64::new(0),
            cfg,
        });
        let node = Node(inner);
        node.on(STATE_TRANSFER_EVENT, Arc::new(|n: &Node, r: &Received| n.merge_transferred_state(r)));
        node.0.shipper.start(Arc::new(node.clone()));
        if node.role() == Role::Logger {
            // A logger opens its log directory now, not at the first batch (which may be a while coming): what an
            // earlier run left is archived, and archives past the retention are deleted, when it starts.
            node.writer();
        }
        tokio::spawn(dispatch_loop(node.clone(), local_rx));
        let installed = install(&node);
        node.serve().await?;
        tokio::spawn(heartbeat_loop(node.clone()));
        if let Some(addr) = node.0.cfg.metrics_addr {
            let listener = crate::metrics::bind(addr)
                .with_context(|| format!("cannot serve metrics and health endpoints on {addr}"))?;
            let metrics = Arc::clone(&node.0.metrics);
            tokio::spawn(async move {
                if let Err(e) = crate::metrics::serve_http(listener, metrics).await {
                    tracing::error!(%addr, "metrics endpoint: {e}");
                }
            });
        }
        if node.role() == Role::Manager {
            node.0.metrics.ready.set(i64::from(node.manager_state().authority.is_ready()));
            let view = node.manager_state().authority.current();
            node.install_view(view);
        } else {
            node.ensure_dial(&node.0.cfg.manager.name, &node.0.cfg.manager.advertise());
        }
        tracing::info!(node = %node.name(), role = %node.role(), listen = ?node.0.cfg.listen, "node started");
        Ok((node, installed))
    }

    /// A node that plays every role in one process, with no network: publishes reach its own handlers, every pool
    /// is this node, state stays here and logs are written to `logging.dir`. Analyses written against [`Node`] run
    /// the same standalone and clustered.
    pub async fn standalone(logging: LogSettings) -> anyhow::Result<Node> {
        let me = NodeSpec {
            name: "standalone".into(),
            role: Role::Manager,
            host: String::new(),
            port: 0,
            interface: None,
            threads: None,
        };
        Node::start(NodeConfig {
            cluster: "standalone".into(),
            manager: me.clone(),
            me,
            listen: None,
            expected: Vec::new(),
            tls: None,
            timing: Timing::default(),
            logging,
            shipping: ShipSettings::default(),
            metrics_addr: None,
        })
        .await
    }

    pub fn is_standalone(&self) -> bool {
        self.0.cfg.listen.is_none()
    }

    /// The members of a role's pool in `view` (a standalone node is every pool).
    pub fn pool<'a>(&'a self, view: &'a View, role: Role) -> Vec<&'a str> {
        if self.is_standalone() { vec![self.name()] } else { view.pool(role) }
    }

    async fn serve(&self) -> anyhow::Result<()> {
        let Some(addr) = self.0.cfg.listen else { return Ok(()) };
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?;
        let mut builder = tonic::transport::Server::builder()
            .initial_stream_window_size(super::proto::H2_WINDOW_BYTES)
            .initial_connection_window_size(super::proto::H2_WINDOW_BYTES)
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)));
        if let Some(tls) = &self.0.cfg.tls {
            builder = builder.tls_config(tls.server())?;
        }
        let router = builder.add_service(Service::server(self.clone()));
        let mut shutdown = self.shutdown_signal();
        tokio::spawn(async move {
            let stop = async move {
                let _ = shutdown.changed().await;
            };
            // The builder's tcp_nodelay applies only to listeners tonic opens itself: without it here, Nagle holds
            // an accepted link's small frames for the peer's delayed ACK (~40 ms per barrier wave or reply).
            let incoming = TcpListenerStream::new(listener).map(|accepted| {
                if let Ok(stream) = &accepted
                    && let Err(e) = stream.set_nodelay(true)
                {
                    tracing::warn!("cannot set TCP_NODELAY on an accepted link: {e}");
                }
                accepted
            });
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                tracing::error!("gRPC server: {e}");
            }
        });
        Ok(())
    }

    // ---- identity and accessors ----

    pub fn name(&self) -> &str {
        &self.0.cfg.me.name
    }

    pub fn role(&self) -> Role {
        self.0.cfg.me.role
    }

    pub fn cluster(&self) -> &str {
        &self.0.cfg.cluster
    }

    pub fn spec(&self) -> &NodeSpec {
        &self.0.cfg.me
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn tls(&self) -> Option<&TlsSettings> {
        self.0.cfg.tls.as_ref()
    }

    pub fn now_ms(&self) -> u64 {
        self.0.started.elapsed().as_millis() as u64
    }

    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }

    pub fn next_link_id(&self) -> u64 {
        self.0.next_link_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The newest membership view this node has.
    pub fn view(&self) -> Arc<View> {
        self.0.view_tx.borrow().clone()
    }

    /// Watches view changes.
    pub fn watch_view(&self) -> watch::Receiver<Arc<View>> {
        self.0.view_tx.subscribe()
    }

    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Relaxed)
    }

    /// Waits for the readiness barrier (every node of the layout joined once). False on timeout.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.watch_view();
        let wait = async {
            loop {
                if rx.borrow_and_update().ready {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown_tx.subscribe()
    }

    pub fn is_leaving(&self) -> bool {
        self.0.leaving.load(Ordering::Relaxed)
    }

    /// Live links, by peer name.
    pub fn links(&self) -> Vec<Arc<Link>> {
        let mut v: Vec<_> = self.0.links.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The watchdog of the node's threads: a worker's run reports its threads' progress to it.
    pub fn watchdog(&self) -> Arc<Watchdog> {
        Arc::clone(&self.0.watchdog)
    }

    /// The manager's node name, from the layout.
    pub(super) fn manager_name(&self) -> &str {
        &self.0.cfg.manager.name
    }

    pub(super) fn link(&self, name: &str) -> Option<Arc<Link>> {
        self.0.links.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    fn manager_state(&self) -> MutexGuard<'_, ManagerState> {
        lock(self.0.manager.as_ref().expect("only the manager has manager state"))
    }

    /// This node's counters, as heartbeats and `ctl` report them.
    pub fn stats(&self) -> pb::NodeStats {
        let m = &self.0.metrics;
        pb::NodeStats {
            packets: m.packets.get(),
            bytes: m.packet_bytes.get(),
            dropped: m.capture_drops.get().max(0) as u64,
            connections: m.connections.get(),
            log_records: m.log_records_produced.get(),
            unacked_records: m.log_unacked_records.get().max(0) as u64,
            events_out: self.0.events_out.load(Ordering::Relaxed),
            events_in: self.0.events_in.load(Ordering::Relaxed),
            capturing: m.capturing.get() == 1,
            tcp_ack_events: m.tcp_ack_events.get(),
            tcp_gap_events: m.tcp_gap_events.get(),
        }
    }

    // ---- handlers and subscriptions ----

    /// Registers a handler for an event name (namespaced, e.g. `DoS::pair_stats`). Handlers run for messages whose
    /// topic this node subscribes to.
    pub fn on(&self, event: &str, handler: Handler) {
        let mut handlers = self.0.handlers.write().unwrap_or_else(|e| e.into_inner());
        Arc::make_mut(handlers.entry(event.to_string()).or_default()).push(handler);
    }

    /// Subscribes to a topic prefix; the manager learns it and includes it in the next view.
    pub fn subscribe(&self, prefix: &str) {
        let changed = self.0.subs.write().unwrap_or_else(|e| e.into_inner()).add(prefix.to_string());
        if changed {
            self.0.plans.invalidate();
            self.announce_subscriptions();
        }
    }

    pub fn unsubscribe(&self, prefix: &str) {
        let changed = self.0.subs.write().unwrap_or_else(|e| e.into_inner()).remove(prefix);
        if changed {
            self.0.plans.invalidate();
            self.announce_subscriptions();
        }
    }

    fn subscriptions(&self) -> Vec<String> {
        self.0.subs.read().unwrap_or_else(|e| e.into_inner()).prefixes().to_vec()
    }

    fn announce_subscriptions(&self) {
        let prefixes = self.subscriptions();
        if self.role() == Role::Manager {
            let view = self.manager_state().authority.resubscribe(self.name(), prefixes);
            if let Some(v) = view {
                self.publish_view(v);
            }
        } else if let Some(m) = self.link(&self.0.cfg.manager.name) {
            let _ = m.try_send(link::frame(pb::frame::Body::Subscribe(pb::Subscribe { prefixes })));
        }
    }

    // ---- receiving ----

    /// Handles one frame from a peer.
    /// Handles one frame from a peer. What the manager could not relay at once (the target's queue was full) is
    /// returned for the link reader to wait on ([`Node::relay_waiting`]).
    pub fn on_frame(&self, from: &Arc<Link>, f: pb::Frame) -> RelayBacklog {
        use pb::frame::Body;
        match f.body {
            Some(Body::Message(m)) => return self.on_messages(from, vec![m]),
            Some(Body::Messages(batch)) => return self.on_messages(from, batch.messages),
            Some(Body::Heartbeat(h)) => *lock(&from.stats) = h.stats.unwrap_or_default(),
            Some(Body::LogBatch(b)) => self.on_log_batch(from, b),
            Some(Body::LogAck(a)) => self.0.shipper.ack(&from.name, a),
            Some(Body::View(v)) if from.role == Role::Manager => self.install_view(View::from_pb(v)),
            Some(Body::Subscribe(s)) if self.role() == Role::Manager => {
                let view = self.manager_state().authority.resubscribe(&from.name, s.prefixes);
                if let Some(v) = view {
                    self.publish_view(v);
                }
            }
            Some(Body::Leave(l)) if self.role() == Role::Manager => {
                tracing::info!(peer = %from.name, reason = %l.reason, "node is leaving");
                let view = self.manager_state().authority.leave(&from.name);
                if let Some(v) = view {
                    self.cluster_log(&format!("{} left: {}", from.name, l.reason));
                    self.publish_view(v);
                }
            }
            Some(Body::Error(e)) => tracing::warn!(peer = %from.name, code = e.code, "peer reports: {}", e.message),
            Some(Body::Hello(_)) => self.refuse(from, 1, "a second hello on one link"),
            Some(Body::View(_) | Body::Subscribe(_) | Body::Leave(_)) => {
                self.refuse(from, 3, "only the manager orders membership")
            }
            None => self.refuse(from, 1, "an empty frame"),
        }
        RelayBacklog::default()
    }

    pub(super) fn refuse(&self, to: &Link, code: u32, why: &str) {
        self.0.metrics.malformed_frames.inc();
        tracing::warn!(peer = %to.name, "refusing a frame: {why}");
        let _ = to.try_send(link::error_frame(code, why));
    }

    fn on_log_batch(&self, from: &Arc<Link>, batch: pb::LogBatch) {
        let seq = batch.seq;
        if !matches!(self.role(), Role::Logger | Role::Manager) {
            let _ = from.try_send(ack_frame(seq, Err(format!("{} is not a logger", self.name()))));
            return;
        }
        match logwire::check_batch(batch) {
            Ok(rows) => {
                let reply = from.sender();
                self.writer().submit(
                    rows,
                    Some(Box::new(move |result| {
                        let _ = reply.blocking_send(ack_frame(seq, result));
                    })),
                );
            }
            Err(e) => {
                self.0.metrics.malformed_frames.inc();
                let _ = from.try_send(ack_frame(seq, Err(e.to_string())));
            }
        }
    }

    fn writer(&self) -> Arc<LogWriter> {
        let mut w = lock(&self.0.writer);
        if let Some(w) = w.as_ref() {
            return Arc::clone(w);
        }
        let progress = self.0.watchdog.watch("log writer");
        let created = Arc::new(LogWriter::start(self.0.cfg.logging.clone(), Arc::clone(&self.0.metrics), progress));
        *w = Some(Arc::clone(&created));
        created
    }

    // ---- links and membership ----

    /// Checks a peer's hello; returns its role.
    pub fn check_hello(&self, h: &pb::Hello) -> Result<Role, tonic::Status> {
        if h.protocol != PROTOCOL_VERSION {
            return Err(tonic::Status::failed_precondition(format!(
                "protocol version {} (this node speaks {PROTOCOL_VERSION})",
                h.protocol
            )));
        }
        if h.cluster != self.cluster() {
            return Err(tonic::Status::permission_denied(format!(
                "cluster '{}' (this is '{}')",
                h.cluster,
                self.cluster()
            )));
        }
        if !super::layout::valid_node_name(&h.name) || h.name == self.name() {
            return Err(tonic::Status::invalid_argument(format!("node name '{}'", h.name)));
        }
        Role::from_pb(h.role).ok_or_else(|| tonic::Status::invalid_argument("a hello needs a node role"))
    }

    pub fn hello_frame(&self) -> pb::Frame {
        link::frame(pb::frame::Body::Hello(pb::Hello {
            cluster: self.cluster().to_string(),
            name: self.name().to_string(),
            role: self.role().to_pb() as i32,
            advertise: self.spec().advertise(),
            epoch: self.view().epoch,
            subscriptions: self.subscriptions(),
            protocol: PROTOCOL_VERSION,
        }))
    }

    pub fn register_link(&self, l: &Arc<Link>) {
        let old = self.0.links.write().unwrap_or_else(|e| e.into_inner()).insert(l.name.clone(), Arc::clone(l));
        self.0.plans.invalidate();
        if let Some(old) = old {
            old.close();
        }
        self.0.metrics.peers.set(self.0.links.read().unwrap_or_else(|e| e.into_inner()).len() as i64);
        tracing::info!(peer = %l.name, role = %l.role, "link up");
        // The manager admits the node into a view first: node_up handlers that publish to it (the intel
        // snapshot for a new worker) route by the view, and would otherwise find no subscriber.
        if self.role() == Role::Manager {
            self.manager_admit(&l.hello, l.role);
        }
        self.raise_local(NODE_UP_EVENT, l);
        self.0.shipper.nudge();
    }

    pub fn unregister_link(&self, l: &Arc<Link>) {
        let removed = {
            let mut links = self.0.links.write().unwrap_or_else(|e| e.into_inner());
            let current = links.get(&l.name).is_some_and(|c| c.id == l.id);
            if current {
                links.remove(&l.name);
                self.0.plans.invalidate();
            }
            self.0.metrics.peers.set(links.len() as i64);
            current
        };
        if !removed {
            return;
        }
        tracing::info!(peer = %l.name, role = %l.role, "link down");
        self.raise_local(NODE_DOWN_EVENT, l);
        if self.role() == Role::Manager {
            let view = self.manager_state().authority.leave(&l.name);
            if let Some(v) = view {
                self.cluster_log(&format!("{} is down", l.name));
                self.publish_view(v);
            }
        }
        self.0.shipper.nudge();
    }

    fn raise_local(&self, event: &str, l: &Link) {
        let event = Event::new(event, vec![Data::Str(l.name.clone()), Data::Enum(l.role.as_str().into())]);
        self.queue_local(Received::new(self.header(&topic::node_topic(self.name())), event));
    }

    /// The manager learns a node from its hello.
    pub fn manager_admit(&self, h: &pb::Hello, role: Role) {
        if self.role() != Role::Manager {
            return;
        }
        let member = Member {
            name: h.name.clone(),
            role,
            advertise: h.advertise.clone(),
            subscriptions: h.subscriptions.clone(),
        };
        let (view, start_recovery) = {
            let mut ms = self.manager_state();
            ms.authority.observe_epoch(h.epoch);
            let fresh = !ms.published && h.epoch > 0 && !ms.recovering;
            if fresh {
                ms.recovering = true;
                ms.authority.mark_ready();
            }
            let v = ms.authority.join(member);
            (if ms.recovering { None } else { Some(v) }, fresh)
        };
        self.cluster_log(&format!("{} joined as {role}", h.name));
        if start_recovery {
            tracing::info!(
                epoch = h.epoch,
                "a running cluster re-joins this manager; collecting nodes before the first view"
            );
            let node = self.clone();
            let grace = self.0.cfg.timing.recovery_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let view = {
                    let mut ms = node.manager_state();
                    ms.recovering = false;
                    ms.authority.next_view()
                };
                node.publish_view(view);
            });
        }
        if let Some(v) = view {
            self.publish_view(v);
        }
    }

    /// The manager installs a new view and pushes it to every peer.
    fn publish_view(&self, view: View) {
        self.manager_state().published = true;
        let frame = link::frame(pb::frame::Body::View(view.to_pb()));
        for l in self.links() {
            let _ = l.try_send(frame.clone());
        }
        self.install_view(view);
    }

    /// Adopts a newer view: pools, dial targets, readiness and state ownership follow it.
    pub fn install_view(&self, view: View) {
        let current = self.view();
        if view.epoch < current.epoch || (view.epoch == current.epoch && view == *current) {
            return;
        }
        tracing::info!(epoch = view.epoch, members = view.members.len(), ready = view.ready, "membership view");
        let view = Arc::new(view);
        self.0.view_tx.send_replace(Arc::clone(&view));
        self.0.plans.invalidate();
        self.0.metrics.view_epoch.set(view.epoch as i64);
        if view.ready {
            self.0.ready.store(true, Ordering::Relaxed);
            self.0.metrics.ready.set(1);
        }
        for m in &view.members {
            if self.dials(m) {
                self.ensure_dial(&m.name, &m.advertise);
            }
        }
        // Keyed state moves on the dispatcher (`dispatch_loop`), in order with the events it handles.
        self.0.shipper.nudge();
    }

    /// Which links this node opens: everyone dials the manager; workers dial proxies and loggers; proxies dial
    /// loggers and the proxies after them by name. Each pair has one link, used both ways.
    fn dials(&self, peer: &Member) -> bool {
        if peer.name == self.name() || peer.advertise.is_empty() {
            return false;
        }
        match (self.role(), peer.role) {
            (_, Role::Manager) => true,
            (Role::Manager, _) => false,
            (Role::Worker, Role::Proxy | Role::Logger) => true,
            (Role::Proxy, Role::Logger) => true,
            (Role::Proxy, Role::Proxy) => self.name() < peer.name.as_str(),
            _ => false,
        }
    }

    fn ensure_dial(&self, name: &str, addr: &str) {
        if self.is_leaving() {
            return;
        }
        if !lock(&self.0.dialing).insert(name.to_string()) {
            return;
        }
        tokio::spawn(link::dial_loop(self.clone(), name.to_string(), addr.to_string()));
    }

    /// Whether a dial loop to `name` should go on.
    pub fn should_dial(&self, name: &str) -> bool {
        if *self.0.shutdown_tx.borrow() {
            return false;
        }
        if name == self.0.cfg.manager.name {
            return true;
        }
        self.view().get(name).is_some_and(|m| self.dials(m))
    }

    pub fn dial_ended(&self, name: &str) {
        lock(&self.0.dialing).remove(name);
    }

    // ---- state ----

    /// The node's keyed state tables (used on proxies).
    pub fn state(&self) -> MutexGuard<'_, StateStore> {
        lock(&self.0.state)
    }

    /// Catches the dispatcher up with the newest view: a proxy hands the keys it no longer owns to their owners.
    fn settle_view(&self, settled: &mut Arc<View>) {
        if self.0.view_tx.borrow().epoch == settled.epoch {
            return;
        }
        *settled = self.view();
        if self.role() == Role::Proxy {
            self.hand_off_state(settled);
        }
    }

    fn hand_off_state(&self, view: &View) {
        let proxies = self.pool(view, Role::Proxy);
        let moved =
            self.state().take_moved(self.name(), |k| hrw::owner(proxies.iter().copied(), k).map(str::to_string));
        if moved.is_empty() {
            return;
        }
        let mut by_owner: HashMap<String, Vec<Data>> = HashMap::new();
        for (owner, table, entry) in &moved {
            by_owner.entry(owner.clone()).or_default().push(state::entry_to_data(table, entry));
        }
        tracing::info!(keys = moved.len(), owners = by_owner.len(), epoch = view.epoch, "handing state to new owners");
        self.0.metrics.state_keys_moved.inc_by(moved.len() as u64);
        self.0.metrics.state_keys.set(self.state().len() as i64);
        for (owner, entries) in by_owner {
            for chunk in entries.chunks(TRANSFER_CHUNK) {
                let event = Event::new(STATE_TRANSFER_EVENT, vec![Data::Vector(chunk.to_vec())]);
                let header = self.header(&topic::node_topic(&owner));
                if let Err(e) = self.route(header, None, Payload::Event(event.into()), &[&owner], false) {
                    tracing::error!(%owner, "state hand-off failed: {e}");
                }
            }
        }
    }

    fn merge_transferred_state(&self, r: &Received) {
        let Some(Data::Vector(entries)) = r.event.args.first() else { return };
        let mut store = self.state();
        for e in entries {
            match state::entry_from_data(e.clone()) {
                Ok((table, entry)) => store.merge(&table, entry),
                Err(err) => tracing::warn!(origin = %r.origin(), "bad state entry: {err}"),
            }
        }
        self.0.metrics.state_keys.set(store.len() as i64);
    }

    // ---- logs ----

    /// Ships log records to the loggers (or writes them, on a logger or a manager without loggers). Never blocks a
    /// live capture: what cannot be buffered is dropped and counted (see [`super::logship::Overflow`]).
    pub fn log(&self, records: Vec<LogRecord>) {
        if records.is_empty() {
            return;
        }
        self.0.metrics.log_records_produced.inc_by(records.len() as u64);
        self.0.shipper.ship(records);
    }

    fn cluster_log(&self, message: &str) {
        let record =
            LogRecord::new(&CLUSTER_LOG, vec![Value::Time(wall_secs()), Value::str(self.name()), Value::str(message)]);
        self.log(vec![record]);
    }

    /// Sends what is buffered and waits (up to `timeout`) until the loggers acknowledged it; returns the records
    /// still unacknowledged.
    pub async fn flush_logs(&self, timeout: Duration) -> u64 {
        self.0.shipper.flush(timeout).await
    }

    // ---- shutdown ----

    /// Leaves the cluster in order: logs flushed, the manager told, state handed on, queues drained.
    pub async fn leave(&self, reason: &str) {
        let lost = self.flush_logs(Duration::from_secs(30)).await;
        if lost > 0 {
            tracing::error!(records = lost, "leaving with unacknowledged log records");
        }
        self.0.leaving.store(true, Ordering::Relaxed);
        if let Some(m) = self.link(&self.0.cfg.manager.name).filter(|_| self.role() != Role::Manager) {
            let leave = link::frame(pb::frame::Body::Leave(pb::Leave { reason: reason.to_string() }));
            let _ = m.send_timeout(leave, Duration::from_secs(1)).await;
            // Wait for the view without us, so the state moves and senders stop choosing us.
            let mut rx = self.watch_view();
            let me = self.name().to_string();
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                while rx.borrow_and_update().get(&me).is_some() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
            // Messages routed with the old view still arrive for a moment: keep re-routing them.
            tokio::time::sleep(self.0.cfg.timing.leave_drain).await;
        }
        let _ = self.flush_logs(Duration::from_secs(10)).await;
        self.drain_links(Duration::from_secs(2)).await;
        if let Some(w) = lock(&self.0.writer).take() {
            w.close();
        }
        let _ = self.0.shutdown_tx.send(true);
    }

    async fn drain_links(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.links().iter().any(|l| l.queued() > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Seconds since the epoch, for records the runtime writes.
    pub fn wall_time(&self) -> f64 {
        wall_secs()
    }
}

fn ack_frame(seq: u64, result: Result<(), String>) -> pb::Frame {
    let (ok, error) = match result {
        Ok(()) => (true, String::new()),
        Err(e) => (false, e),
    };
    link::frame(pb::frame::Body::LogAck(pb::LogAck { seq, ok, error }))
}

impl ShipRoute for Node {
    fn destinations(&self) -> Destinations {
        if self.role() == Role::Logger {
            return Destinations::Local;
        }
        let view = self.view();
        if view.epoch == 0 && self.role() != Role::Manager {
            // No view from the manager yet: we do not know the loggers.
            return Destinations::Wait;
        }
        let loggers = view.pool(Role::Logger);
        if loggers.is_empty() {
            return match self.role() {
                Role::Manager => Destinations::Local,
                _ => match self.link(&self.0.cfg.manager.name) {
                    Some(l) => Destinations::Remote(vec![(l.name.clone(), l.sender())]),
                    None => Destinations::Wait,
                },
            };
        }
        let live: Vec<_> = loggers.iter().filter_map(|n| self.link(n)).map(|l| (l.name.clone(), l.sender())).collect();
        if live.is_empty() { Destinations::Wait } else { Destinations::Remote(live) }
    }

    fn write_local(&self, streams: Vec<logwire::EncodedRows>) {
        self.writer().submit(streams, None);
    }

    fn origin(&self) -> String {
        self.name().to_string()
    }

    fn is_linked(&self, name: &str) -> bool {
        self.link(name).is_some()
    }
}

/// Deliveries the dispatcher takes from its queue at a time.
const DISPATCH_BATCH: usize = 256;

/// Runs the handlers of delivered events, one at a time, and (on a proxy) hands keyed state to its new owners when the
/// view changes. Both happen here so that they are ordered: an event accepted under an older view is either applied
/// before its key's state moves (and moves with it) or, after, re-routed to the new owner; never applied to a key
/// this proxy no longer owns, which would split a count between two proxies.
async fn dispatch_loop(node: Node, mut rx: LocalReceiver) {
    let mut shutdown = node.shutdown_signal();
    let mut views = node.watch_view();
    let mut settled = node.view();
    // Taken in batches: the scheduler gives a task a budget of queue operations per turn, so a dispatcher taking one
    // item per operation falls behind a link reader that queues a frame's worth of events per operation.
    let mut batch = Vec::with_capacity(DISPATCH_BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, DISPATCH_BATCH) => if n == 0 { break },
            changed = views.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => break,
        }
        // A view installed since the last look is settled (state handed off) before the next event runs. The
        // receiver's version check is one atomic load, cheap enough to make between every two events.
        let mut settle = |settled: &mut Arc<View>| {
            if views.has_changed().unwrap_or(false) {
                views.mark_unchanged();
                node.settle_view(settled);
            }
        };
        node.settle_view(&mut settled);
        // Looked-up handler lists are kept for one batch: a handler registered meanwhile sees the next batch.
        let mut handlers: Option<(EventName, Option<Arc<Vec<Handler>>>)> = None;
        for delivery in batch.drain(..) {
            delivery.for_each(|r| {
                settle(&mut settled);
                if let Some(accepted) = &r.route
                    && accepted.view_epoch < settled.epoch
                    && let Some(owner) = node.moved_owner(&accepted.route, &settled)
                {
                    node.reroute(&r.header, &accepted.route, &settled, &owner, Payload::Event(r.event.into()));
                    return;
                }
                // A run of events mostly has one name: its handlers are looked up once.
                if handlers.as_ref().is_none_or(|(name, _)| *name != r.event.name) {
                    let handlers_by_name = node.0.handlers.read().unwrap_or_else(|e| e.into_inner());
                    let list = handlers_by_name.get(r.event.name.as_str()).cloned();
                    handlers = Some((r.event.name.clone(), list));
                }
                for h in handlers.iter().flat_map(|(_, list)| list.iter().flat_map(|l| l.iter())) {
                    h(&node, &r);
                }
            });
        }
    }
}

/// Sends heartbeats, closes links that went silent, and refreshes gauges.
async fn heartbeat_loop(node: Node) {
    let timing = node.0.cfg.timing;
    let mut tick = tokio::time::interval(timing.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = node.shutdown_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        node.0.metrics.set_stalls(node.0.watchdog.check(Instant::now()), timing.stall_limit);
        let hb = link::frame(pb::frame::Body::Heartbeat(pb::Heartbeat { now: wall_secs(), stats: Some(node.stats()) }));
        let now = node.now_ms();
        for l in node.links() {
            let _ = l.try_send(hb.clone());
            if now.saturating_sub(l.last_heard_ms()) > timing.liveness.as_millis() as u64 {
                tracing::warn!(peer = %l.name, "no heartbeat for {:?}: link considered dead", timing.liveness);
                l.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testkit::{TEST_LOG, observe};

    /// Standalone: every publish reaches this node's handlers and every pool is this node.
    #[tokio::test]
    async fn a_standalone_node_plays_every_role() {
        let dir = tempfile::tempdir().unwrap();
        let logging = LogSettings { dir: dir.path().into(), format: LogFormat::Tsv, rotation: None, retention: None };
        let node = Node::standalone(logging).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        node.on(
            "Test::seen",
            Arc::new(move |n: &Node, r: &Received| {
                let key = r.event.args[0].clone();
                let count = n.state().incr("seen", &key, 1, 0.0);
                let _ = tx.send((r.topic().to_string(), count));
            }),
        );
        let event = || Event::new("Test::seen", vec![Data::Str("k".into())]);
        assert_eq!(node.publish(topic::WORKER, event()), Ok(1));
        assert_eq!(node.publish_hrw(Role::Proxy, &Data::Str("k".into()), event()).as_deref(), Ok("standalone"));
        assert_eq!(node.publish_rr(Role::Worker, "x", event()).as_deref(), Ok("standalone"));
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap());
        }
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(got[1].0, topic::node_topic("standalone"));
        observe(&node, "done", "", 3);
        assert_eq!(node.flush_logs(Duration::from_secs(5)).await, 0);
        node.leave("test").await;
        let text = std::fs::read_to_string(dir.path().join(format!("{}.log", TEST_LOG.path))).unwrap();
        assert!(text.contains("\tstandalone\tdone\t"), "{text}");
    }

    /// What the manager sends a node the moment it joins (Zeek's `Cluster::node_up`: how a new worker gets the
    /// intel list) reaches the handlers the node installed with `start_with`, which run before it links up.
    #[tokio::test]
    async fn handlers_installed_at_start_get_what_the_manager_sends_at_join() {
        let dir = tempfile::tempdir().unwrap();
        let ports = crate::cluster::inabox::free_ports(2).unwrap();
        let spec = |name: &str, role, port| NodeSpec {
            name: name.into(),
            role,
            host: "127.0.0.1".into(),
            port,
            interface: None,
            threads: None,
        };
        let (manager, worker) = (spec("manager", Role::Manager, ports[0]), spec("worker-1", Role::Worker, ports[1]));
        let config = |me: &NodeSpec| NodeConfig {
            cluster: "join-test".into(),
            me: me.clone(),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], me.port))),
            manager: manager.clone(),
            expected: vec!["worker-1".into()],
            tls: None,
            timing: Timing::default(),
            logging: LogSettings { dir: dir.path().into(), format: LogFormat::Tsv, rotation: None, retention: None },
            shipping: ShipSettings::default(),
            metrics_addr: None,
        };
        let welcome = |n: &Node, r: &Received| {
            if let Some(Data::Str(name)) = r.event.args.first() {
                let _ = n.publish(&topic::node_topic(name), Event::new("Test::welcome", vec![]));
            }
        };
        let (m, ()) = Node::start_with(config(&manager), |m| m.on(NODE_UP_EVENT, Arc::new(welcome))).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (w, links_at_install) = Node::start_with(config(&worker), |w| {
            w.on(
                "Test::welcome",
                Arc::new(move |_: &Node, _: &Received| {
                    let _ = tx.send(());
                }),
            );
            w.links().len()
        })
        .await
        .unwrap();
        assert_eq!(links_at_install, 0, "installed before any link");
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert!(got.is_ok_and(|m| m.is_some()), "the worker's handler got the manager's welcome");
        w.leave("test").await;
        m.leave("test").await;
    }

    /// `publish` keeps a plan per topic: a change of subscriptions must show in the very next publish.
    #[tokio::test]
    async fn a_publish_follows_a_subscription_change_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let logging = LogSettings { dir: dir.path().into(), format: LogFormat::Tsv, rotation: None, retention: None };
        let node = Node::standalone(logging).await.unwrap();
        let event = || Event::new("Test::x", vec![]);
        let topic_name = "zeek/test/plans";
        assert_eq!(node.publish(topic_name, event()), Ok(0), "nobody subscribes yet");
        assert_eq!(node.publish(topic_name, event()), Ok(0), "the cached plan");
        node.subscribe("zeek/test/");
        assert_eq!(node.publish(topic_name, event()), Ok(1), "our own handlers, now subscribed");
        node.unsubscribe("zeek/test/");
        assert_eq!(node.publish(topic_name, event()), Ok(0));
        node.leave("test").await;
    }
}
