//! The analyses on a cluster node: [`Transport`] over the node's gRPC bus ([`Node`]), handler registration, and
//! the worker's log tap. The cluster runtime wires these in (docs/ANALYSES.md, "Running in a cluster"):
//!
//! - every node: `let rt = detect::cluster::install(&node, analyses, cfg)` after [`Node::start`];
//! - workers: wrap the [`crate::cluster::worker::ShippingSink`] in [`WorkerTap`] so engine records become engine
//!   events (and still ship to the loggers);
//! - offline (`cluster -r`): nodes that see no packets advance by the network time every event carries; live,
//!   call [`advance`] from a one-second timer with the wall clock so the manager's reports and proxies' expiry run.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::events::{self, EngineEvent};
use super::notice::{BEGIN_SUPPRESSION, CLUSTER_NOTICE};
use super::runtime::{NodeRuntime, Transport};
use super::{Analysis, Data, DetectConfig, Event, PublishError, Role};
use crate::cluster::node::NODE_UP_EVENT;
use crate::cluster::sync::Activity;
use crate::cluster::{Node, Received};
use crate::logs::{LogRecord, LogSink};

/// The cluster bus as a [`Transport`].
pub struct NodeTransport<'a>(pub &'a Node);

impl Transport for NodeTransport<'_> {
    fn publish(&mut self, topic: &str, ev: Event) -> Result<(), PublishError> {
        self.0.publish(topic, ev).map(|_| ())
    }

    fn publish_hrw(&mut self, pool: Role, key: &Data, ev: Event) -> Result<(), PublishError> {
        self.0.publish_hrw(pool, key, ev).map(|_| ())
    }

    fn publish_rr(&mut self, pool: Role, key: &str, ev: Event) -> Result<(), PublishError> {
        self.0.publish_rr(pool, key, ev).map(|_| ())
    }

    fn log(&mut self, record: LogRecord) {
        self.0.log(vec![record]);
    }
}

/// A node's analyses, shared by its event handlers and (on workers) its packet path.
pub type SharedRuntime = Arc<Mutex<NodeRuntime>>;

fn lock(rt: &SharedRuntime) -> MutexGuard<'_, NodeRuntime> {
    rt.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Builds this node's handlers, runs their `init`, and registers for every event they consume, the notice
/// framework's events and `Cluster::node_up`. Proxy state lives in the node's own [`crate::cluster::state`] store,
/// so it is handed off when proxies join or leave.
pub fn install(node: &Node, analyses: &[Box<dyn Analysis>], cfg: DetectConfig, activity: Activity) -> SharedRuntime {
    let rt = Arc::new(Mutex::new(NodeRuntime::new(node.name(), node.role(), analyses, Arc::new(cfg))));
    lock(&rt).init(&mut node.state(), &mut NodeTransport(node));
    let names: BTreeSet<&str> = analyses
        .iter()
        .flat_map(|a| a.events().iter().copied())
        .chain([CLUSTER_NOTICE, BEGIN_SUPPRESSION, NODE_UP_EVENT])
        .collect();
    for name in names {
        let rt = Arc::clone(&rt);
        let activity = activity.clone();
        node.on(
            name,
            Arc::new(move |n: &Node, r: &Received| {
                activity.handled();
                lock(&rt).deliver(r.event.clone(), &mut n.state(), &mut NodeTransport(n));
            }),
        );
    }
    rt
}

/// The analyses a node runs, with their configuration.
pub type Detections = (Vec<Box<dyn Analysis>>, DetectConfig);

/// The detections' command-line options of `zeek-node run` and `zeek-node cluster` (the same as standalone).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DetectArgs {
    /// Cluster-aware detections to run (comma-separated, or `all`), see docs/ANALYSES.md. `--intel` and
    /// `--detect-config` turn on `all` by default.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub detect: Option<Vec<String>>,
    /// An intel file in Zeek's format (repeatable).
    #[arg(long = "intel", value_name = "FILE")]
    pub intel: Vec<PathBuf>,
    /// Thresholds and intervals of the detections (YAML).
    #[arg(long = "detect-config", value_name = "FILE")]
    pub detect_config: Option<PathBuf>,
}

impl DetectArgs {
    /// The analyses and their configuration, or `None` when no detection was asked for.
    pub fn build(&self, local_nets: &crate::config::LocalNets) -> anyhow::Result<Option<Detections>> {
        let names = match &self.detect {
            Some(n) => n.clone(),
            None if !self.intel.is_empty() || self.detect_config.is_some() => vec!["all".to_string()],
            None => return Ok(None),
        };
        let mut cfg = match &self.detect_config {
            Some(path) => DetectConfig::from_file(path)?,
            None => DetectConfig::default(),
        };
        cfg.local_nets = local_nets.clone();
        cfg.intel.files.extend(self.intel.iter().cloned());
        Ok(Some((super::select(&names)?, cfg)))
    }

    /// The same options for another process (file names made absolute, as its working directory may differ).
    pub fn to_args(&self) -> Vec<String> {
        let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string();
        let mut args = Vec::new();
        if let Some(names) = &self.detect {
            args.extend(["--detect".to_string(), names.join(",")]);
        }
        for f in &self.intel {
            args.extend(["--intel".to_string(), absolute(f)]);
        }
        if let Some(f) = &self.detect_config {
            args.extend(["--detect-config".to_string(), absolute(f)]);
        }
        args
    }
}

/// The analyses' counters on this node, for its metrics.
pub fn counters(rt: &SharedRuntime) -> BTreeMap<&'static str, u64> {
    lock(rt).counters().clone()
}

/// Moves a node's clock (a live node's one-second timer with the wall clock).
pub fn advance(node: &Node, rt: &SharedRuntime, now: f64) {
    lock(rt).advance(now, &mut node.state(), &mut NodeTransport(node));
}

/// End of input on this node (workers first, then proxies, then the manager, as [`super::Handler::done`] says).
pub fn done(node: &Node, rt: &SharedRuntime) {
    lock(rt).done(&mut node.state(), &mut NodeTransport(node));
}

/// A worker's log sink that also feeds the analyses: records go on to `inner` (the shipper), and each one that
/// stands for an engine event is handed to the worker's handlers.
pub struct WorkerTap<S: LogSink> {
    inner: S,
    node: Node,
    rt: SharedRuntime,
    done: bool,
    wants_gap_stats: bool,
    /// No report is dispatched before this network time ([`NodeRuntime::gap_stats_due`]).
    gap_stats_due: f64,
}

impl<S: LogSink> WorkerTap<S> {
    pub fn new(inner: S, node: Node, rt: SharedRuntime) -> Self {
        events::collect_hook_events();
        let wants_gap_stats = lock(&rt).wants_gap_stats();
        WorkerTap { inner, node, rt, done: false, wants_gap_stats, gap_stats_due: f64::NEG_INFINITY }
    }

    fn engine(&self, ev: &EngineEvent) {
        lock(&self.rt).engine(ev, &mut self.node.state(), &mut NodeTransport(&self.node));
    }
}

impl<S: LogSink> LogSink for WorkerTap<S> {
    fn write(&mut self, record: &LogRecord) -> io::Result<()> {
        self.inner.write(record)?;
        if let Some(ev) = EngineEvent::from_record(record) {
            self.engine(&ev);
        }
        for ev in events::take_hook_events() {
            self.engine(&ev);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn wants_packet_reports(&self) -> bool {
        self.wants_gap_stats
    }

    fn packet_analysed(&mut self, network_time: f64, stats: &crate::engine::EngineStats) {
        if self.wants_gap_stats && network_time >= self.gap_stats_due {
            self.engine(&EngineEvent::GapStats(events::GapStats::new(network_time, stats)));
            self.gap_stats_due = lock(&self.rt).gap_stats_due();
        }
    }

    fn close(&mut self) -> io::Result<()> {
        // A sink may be closed twice (the runner and its caller); the handlers finish once.
        if !std::mem::replace(&mut self.done, true) {
            done(&self.node, &self.rt);
        }
        self.inner.close()
    }
}
