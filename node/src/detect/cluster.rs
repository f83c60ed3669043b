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

use super::events::{self, CountersReport, EngineEvent};
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

    fn pool(&self, role: Role) -> Vec<String> {
        self.0.view().pool(role).into_iter().map(str::to_string).collect()
    }

    fn in_cluster(&self) -> bool {
        true
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

/// The detections' command-line options, of `zeek-node -r/-i` (standalone), `zeek-node run` (a cluster node) and
/// `zeek-node cluster`. One rule for all of them ([`DetectArgs::build`]).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DetectArgs {
    /// Cluster-aware detections to run, comma-separated: analyses by name, `local` (what zeekctl's default
    /// local.zeek loads) or `all` (docs/ANALYSES.md). Without it, `--intel` and `--detect-config` turn on `all`.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub detect: Option<Vec<String>>,
    /// An intel file in Zeek's format, read by the intel detection, which it turns on (repeatable).
    #[arg(long = "intel", value_name = "FILE")]
    pub intel: Vec<PathBuf>,
    /// Thresholds and intervals of the detections (YAML, see docs/ANALYSES.md).
    #[arg(long = "detect-config", value_name = "FILE")]
    pub detect_config: Option<PathBuf>,
}

impl DetectArgs {
    /// The analyses to run and their configuration, or `None` when none was asked for. The layout's part (a
    /// ZeekCluster's `spec.detections`, `spec.intel` and `spec.thresholds`, as the operator renders them;
    /// `zeek-node cluster` writes its options there too; empty standalone) counts as the options do:
    ///
    /// - the names: `--detect`, else the layout's `detections`, else `all` if intel files or thresholds are given;
    /// - intel files (the layout's, `--intel`'s and the config file's) turn on the intel analysis whatever the
    ///   names: a feed is given to be matched;
    /// - a `--detect-config` file replaces the layout's thresholds.
    ///
    /// The analyses' changes to the engine (`Analysis::configure_engine`) are made to `engine`, whose local
    /// networks they share.
    pub fn build(
        &self,
        engine: &mut crate::config::AnalysisConfig,
        layout: &crate::cluster::layout::AnalysisSection,
    ) -> anyhow::Result<Option<Detections>> {
        let configured = !layout.intel_files.is_empty()
            || !self.intel.is_empty()
            || self.detect_config.is_some()
            || !layout.thresholds.is_empty();
        let mut names = match self.detect.as_ref().or(layout.detections.as_ref()) {
            Some(n) => n.clone(),
            None if configured => vec!["all".to_string()],
            None => return Ok(None),
        };
        let mut cfg = match &self.detect_config {
            Some(path) => DetectConfig::from_file(path)?,
            None => DetectConfig::from_settings(&layout.thresholds)?,
        };
        cfg.local_nets = engine.local_nets.clone();
        cfg.intel.files.extend(layout.intel_files.iter().chain(&self.intel).cloned());
        if !cfg.intel.files.is_empty() {
            names.push(super::intel::Intel.name().to_string());
        }
        let analyses = super::select(&names)?;
        let running: Vec<&str> = analyses.iter().map(|a| a.name()).collect();
        for setting in super::config::settings_for_idle_analyses(layout.thresholds.keys(), &running) {
            tracing::warn!(
                setting,
                running = %running.join(","),
                "a threshold configures a detection that is not running: add it to the detections (spec.detections)"
            );
        }
        if analyses.is_empty() {
            return Ok(None);
        }
        for a in &analyses {
            a.configure_engine(engine);
        }
        Ok(Some((analyses, cfg)))
    }

    /// The options for the nodes of `zeek-node cluster` that its layout does not carry: the names and intel files go
    /// into the layout (`detect` as it is, [`Self::intel_for_layout`]), as the operator's layout carries a
    /// ZeekCluster's; `--detect-config` is passed on, its file name made absolute (a node's working directory may
    /// differ).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(f) = &self.detect_config {
            args.extend(["--detect-config".to_string(), absolute(f).display().to_string()]);
        }
        args
    }

    /// The intel files for a layout's `analysis.intel_files`, made absolute.
    pub fn intel_for_layout(&self) -> Vec<PathBuf> {
        self.intel.iter().map(absolute).collect()
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
    counters: CountersReport,
}

impl<S: LogSink> WorkerTap<S> {
    pub fn new(inner: S, node: Node, rt: SharedRuntime) -> Self {
        events::collect_hook_events();
        let counters = CountersReport::new(lock(&rt).wants_counters());
        WorkerTap { inner, node, rt, done: false, counters }
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

    fn housekeeping(&mut self) -> io::Result<()> {
        self.inner.housekeeping()
    }

    fn wants_packet_reports(&self) -> bool {
        self.counters.wanted()
    }

    fn packet_analysed(&mut self, network_time: f64, stats: &crate::engine::EngineStats) {
        if let Some(counters) = self.counters.after_packet(network_time, stats) {
            self.engine(&EngineEvent::Counters(counters));
            self.counters.next_due(lock(&self.rt).counters_due());
        }
    }

    fn capture_counters(&mut self, stats: &crate::capture::CaptureStats) {
        self.counters.capture(stats);
    }

    fn input_ended(&mut self, network_time: f64, stats: &crate::engine::EngineStats) {
        if let Some(counters) = self.counters.at_end(network_time, stats) {
            self.engine(&EngineEvent::Counters(counters));
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

fn absolute(p: &PathBuf) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::layout::AnalysisSection;

    fn names(d: &Option<Detections>) -> Vec<&'static str> {
        d.as_ref().map(|(analyses, _)| analyses.iter().map(|a| a.name()).collect()).unwrap_or_default()
    }

    /// What the operator renders from a ZeekCluster's `spec.intel` and `spec.thresholds` reaches the analyses of
    /// `zeek-node run`, which before read neither (a cluster on Kubernetes ran no detection at all).
    #[test]
    fn a_layouts_intel_and_thresholds_turn_the_detections_on() {
        let mut engine = crate::config::AnalysisConfig::default();
        let none = DetectArgs::default();
        assert!(none.build(&mut engine, &AnalysisSection::default()).unwrap().is_none());

        let layout = AnalysisSection {
            intel_files: vec![PathBuf::from("/etc/zeek/intel/feed.dat")],
            thresholds: [("Scan::port_threshold".to_string(), serde_json::Value::from(25))].into(),
            ..AnalysisSection::default()
        };
        let built = none.build(&mut engine, &layout).unwrap();
        let every: Vec<&str> = super::super::registry().iter().map(|a| a.name()).collect();
        assert_eq!(names(&built), every);
        let cfg = &built.as_ref().unwrap().1;
        assert_eq!(cfg.intel.files, [PathBuf::from("/etc/zeek/intel/feed.dat")]);
        assert_eq!(cfg.scan.port_threshold, 25);

        let only_thresholds = AnalysisSection { intel_files: vec![], ..layout.clone() };
        assert!(none.build(&mut engine, &only_thresholds).unwrap().is_some());

        // `--detect` names the analyses; the layout's settings still apply, and its feeds turn on intel. A
        // `--detect-config` file replaces the thresholds, and its intel files add to the layout's.
        let cli = DetectArgs { detect: Some(vec!["scan".into()]), ..DetectArgs::default() };
        let built = cli.build(&mut engine, &layout).unwrap();
        assert_eq!(names(&built), ["scan", "intel"]);
        assert_eq!(built.unwrap().1.scan.port_threshold, 25);
        assert_eq!(names(&cli.build(&mut engine, &only_thresholds).unwrap()), ["scan"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("detect.yaml");
        std::fs::write(&file, "scan: { port_threshold: 40 }\n").unwrap();
        let cli = DetectArgs { detect_config: Some(file), intel: vec!["/more.dat".into()], ..DetectArgs::default() };
        let (analyses, cfg) = cli.build(&mut engine, &layout).unwrap().unwrap();
        assert_eq!(analyses.len(), every.len());
        assert_eq!(cfg.scan.port_threshold, 40);
        assert_eq!(cfg.intel.files, [PathBuf::from("/etc/zeek/intel/feed.dat"), PathBuf::from("/more.dat")]);

        let bad = AnalysisSection { thresholds: [("Scan::nope".to_string(), 1.into())].into(), ..layout };
        let err = none.build(&mut engine, &bad).err().expect("an unknown setting is refused");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    /// A ZeekCluster's `spec.detections` (the layout's `detections`) names the analyses as `--detect` does, and
    /// `--detect` wins; an empty list runs none, unless a feed asks for intel.
    #[test]
    fn the_layouts_detections_name_the_analyses() {
        let mut engine = crate::config::AnalysisConfig::default();
        let none = DetectArgs::default();
        let local = AnalysisSection { detections: Some(vec!["local".into()]), ..AnalysisSection::default() };
        let members = super::super::PROFILES.iter().find(|(p, _)| *p == "local").unwrap().1;
        assert_eq!(names(&none.build(&mut engine, &local).unwrap()), members);

        let cli = DetectArgs { detect: Some(vec!["dos".into()]), ..DetectArgs::default() };
        assert_eq!(names(&cli.build(&mut engine, &local).unwrap()), ["dos"]);

        // Thresholds configure what the list names; they do not turn on the rest.
        let quiet = AnalysisSection {
            detections: Some(vec![]),
            thresholds: [("Scan::port_threshold".to_string(), serde_json::Value::from(25))].into(),
            ..AnalysisSection::default()
        };
        assert!(none.build(&mut engine, &quiet).unwrap().is_none());
        let fed = AnalysisSection { intel_files: vec!["/etc/zeek/intel/feed.dat".into()], ..quiet };
        assert_eq!(names(&none.build(&mut engine, &fed).unwrap()), ["intel"]);

        let typo = AnalysisSection { detections: Some(vec!["lokal".into()]), ..AnalysisSection::default() };
        let err = none.build(&mut engine, &typo).err().expect("an unknown name is refused").to_string();
        assert!(err.contains("lokal") && err.contains("local"), "{err}");
    }
}
