//! `zeek-node run` (one node of a cluster) and `zeek-node layout` (layout file tools).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tracing::Instrument as _;

use super::hrw::fnv1a32;
use super::layout::{Layout, NodeEntry, NodeSpec, parse_duration, split_host_port};
use super::logship::{Overflow, ShipSettings};
use super::node::{LogSettings, Node, NodeConfig, Timing};
use super::role::Role;
use super::sync::{self, Activity, Gate};
use super::testkit::{self, Scenarios};
use super::tls;
use super::worker::{CaptureJob, run_capture};
use crate::cpus::{CpuList, Pinning};
use crate::detect;
use crate::detect::cluster::{DetectArgs, Detections, SharedRuntime};
use crate::runner::Input;
use crate::watchdog::DEFAULT_STALL_LIMIT;

/// `--shard K/N`: analyse shard K (0-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardArg {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for ShardArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s.split_once('/').ok_or("expected K/N, e.g. 0/3")?;
        let k: usize = k.trim().parse().map_err(|_| format!("shard '{k}' is not a number"))?;
        let n: usize = n.trim().parse().map_err(|_| format!("shard count '{n}' is not a number"))?;
        if n == 0 || k >= n {
            return Err(format!("shard {k}/{n}: K counts from 0 and must be below N"));
        }
        Ok(ShardArg { k, n })
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The cluster layout (docs/LAYOUT.md).
    #[arg(long, value_name = "FILE")]
    pub layout: PathBuf,
    /// This node's name.
    #[arg(long, env = "ZEEK_NODE_NAME", value_name = "NAME")]
    pub node: String,
    /// The role of a node the layout does not list (it joins at run time).
    #[arg(long, value_name = "ROLE")]
    pub role: Option<Role>,
    /// Where other nodes reach this one (required for a node the layout does not list).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Address to listen on (default: the advertised address if it is an IP, else all interfaces).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Worker: read packets from a trace file.
    #[arg(short = 'r', long = "readfile", value_name = "FILE", conflicts_with = "interface")]
    pub readfile: Option<PathBuf>,
    /// Worker: capture live (overrides the layout's interface).
    #[arg(short = 'i', long = "interface", alias = "iface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// AF_PACKET fanout group for `-i af_packet::IFACE` (workers on one host share the interface by it).
    #[arg(long, value_name = "ID")]
    pub fanout_id: Option<u16>,
    /// Worker with -r: analyse only the connections of shard K (0-based) of N.
    #[arg(long, value_name = "K/N", requires = "readfile")]
    pub shard: Option<ShardArg>,
    /// Worker, live: the capture buffer per socket in MiB, libpcap's kernel buffer or each AF_PACKET socket's ring
    /// (default 64 and 32; an AF_PACKET ring has at least 4).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub buffer_size: Option<u32>,
    /// /healthz fails (and `zeek_stalled_threads` counts) once a thread of the node's data path has been stuck on
    /// one step this long: a worker's capture or analysis (a parser in a loop), a logger's writer (a hung log
    /// filesystem).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STALL_LIMIT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_limit: u64,
    /// Worker: pin analysis thread i to the i-th of these CPUs, e.g. 2,3,8-11, or `auto`, the CPUs this process may
    /// run on (overrides the layout's `pin_cpus`).
    #[arg(long, value_name = "CPUS")]
    pub pin_cpus: Option<Pinning>,
    /// Analysis threads (overrides the layout).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Where this node writes logs when it writes any (overrides the layout's logging.dir).
    #[arg(long, value_name = "DIR")]
    pub logdir: Option<PathBuf>,
    /// Run without mTLS (local play only).
    #[arg(long)]
    pub insecure: bool,
    /// Serve /metrics, /healthz and /readyz here (IP:PORT; an IPv6 address may come without brackets).
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_endpoint_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// A worker waits this long for the cluster's readiness barrier before it starts capturing.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub ready_timeout: u64,
    #[arg(long, hide = true, default_value_t = 500)]
    pub heartbeat_ms: u64,
    #[arg(long, hide = true, default_value_t = 3000)]
    pub liveness_ms: u64,
    #[command(flatten)]
    pub detect: DetectArgs,
    /// Offline clusters: hold the workers at a time barrier every SECS of packet time (every node of the
    /// cluster gets the same value; `zeek-node cluster -r` sets it).
    #[arg(long, hide = true, value_name = "SECS")]
    pub sync_interval: Option<f64>,
    /// Test only: run event scenarios (patterns, emit, counter) for tests/cluster.rs.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub test_scenario: Vec<String>,
    /// Test only: KEY=VALUE arguments for the scenarios.
    #[arg(long, hide = true)]
    pub test_arg: Vec<String>,
}

/// Finds this node in the layout, or builds it from `--role` and `--advertise` for a node that joins at run time.
fn resolve_spec(layout: &Layout, args: &RunArgs) -> anyhow::Result<NodeSpec> {
    let advertised = match &args.advertise {
        Some(a) => Some(split_host_port(a).with_context(|| format!("--advertise {a}: expected HOST:PORT"))?),
        None => None,
    };
    let mut spec = match layout.find(&args.node) {
        Some(s) => {
            if let Some(r) = args.role.filter(|r| *r != s.role) {
                anyhow::bail!("the layout lists {} as a {}, not a {r}", s.name, s.role);
            }
            s
        }
        None => {
            let role = args
                .role
                .with_context(|| format!("{} is not in the layout: give --role and --advertise", args.node))?;
            if role == Role::Manager {
                anyhow::bail!("the manager must be the layout's manager");
            }
            let (host, port) =
                advertised.clone().context("a node the layout does not list needs --advertise HOST:PORT")?;
            NodeSpec { name: args.node.clone(), role, host, port, interface: None, threads: None }
        }
    };
    if let Some((host, port)) = advertised {
        spec.host = host;
        spec.port = port;
    }
    if !super::layout::valid_node_name(&spec.name) {
        anyhow::bail!("node name '{}' (letters, digits, '-', '_', '.')", spec.name);
    }
    Ok(spec)
}

fn listen_addr(spec: &NodeSpec, listen: Option<SocketAddr>) -> SocketAddr {
    listen.unwrap_or_else(|| {
        let ip = spec.host.parse::<IpAddr>().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, spec.port)
    })
}

/// `zeek-node run`: one node, until its trace ends (a worker with -r) or it is told to stop (SIGINT/SIGTERM).
pub fn run_node(args: RunArgs) -> anyhow::Result<()> {
    let layout = Layout::load(&args.layout)?;
    let spec = resolve_spec(&layout, &args)?;
    let tls = tls::resolve(layout.tls.as_ref(), args.insecure)?;
    let scenarios = Scenarios::parse(&args.test_scenario, &args.test_arg)?;
    let mut analysis = layout.analysis_config()?;
    analysis.seed ^= u64::from(fnv1a32(spec.name.as_bytes())) << 16;
    let input = match (&args.readfile, &args.interface, &spec.interface) {
        (Some(f), _, _) => Some(Input::File(f.clone())),
        (None, Some(i), _) | (None, None, Some(i)) => Some(Input::live(i.clone(), args.fanout_id)),
        (None, None, None) => None,
    };
    if input.is_some() && spec.role != Role::Worker {
        anyhow::bail!("only workers capture packets ({} is a {})", spec.name, spec.role);
    }
    // A worker reading a trace is offline, and so is every other node of its cluster: `zeek-node cluster -r` gives
    // them the packet-time barriers (`--sync-interval`), whose time their analyses' clocks follow. Taken for live,
    // their clocks followed the wall clock too: their own records (stats.log rows) carried today's date, and their
    // state and notice suppression expired by it.
    let offline = matches!(input, Some(Input::File(_))) || (spec.role != Role::Worker && args.sync_interval.is_some());
    let rotation = parse_duration(&layout.logging.rotation_interval).filter(|d| !d.is_zero());
    let cfg = NodeConfig {
        cluster: layout.cluster.clone(),
        listen: Some(listen_addr(&spec, args.listen)),
        manager: layout.manager_spec(),
        expected: layout.specs().into_iter().map(|s| s.name).collect(),
        tls,
        timing: Timing {
            heartbeat: Duration::from_millis(args.heartbeat_ms.max(10)),
            liveness: Duration::from_millis(args.liveness_ms.max(50)),
            stall_limit: Duration::from_secs(args.stall_limit),
            ..Timing::default()
        },
        logging: LogSettings {
            dir: args.logdir.clone().unwrap_or_else(|| layout.logging.dir.clone()),
            format: layout.logging.format,
            rotation,
            retention: parse_duration(&layout.logging.retention).filter(|d| !d.is_zero()),
        },
        // Reading a trace loses nothing by waiting; live capture must never wait on the loggers.
        shipping: ShipSettings {
            overflow: if offline { Overflow::Block } else { Overflow::Drop },
            ..ShipSettings::default()
        },
        metrics_addr: args.metrics_addr,
        me: spec.clone(),
    };
    let detections = args.detect.build(&mut analysis, &layout.analysis)?;
    let sync_interval = match args.sync_interval {
        Some(s) if !(s.is_finite() && s > 0.0) => anyhow::bail!("--sync-interval {s}: a positive number of seconds"),
        s => s.filter(|_| offline || spec.role != Role::Worker),
    };
    let pinning = match &args.pin_cpus {
        Some(p) => Some(p.clone()),
        None => layout.nodes.iter().find(|n| n.name == spec.name).map(NodeEntry::pinning).transpose()?.flatten(),
    };
    let pin_cpus = match pinning.filter(|_| input.is_some()) {
        Some(p) => p.resolve(&crate::cpus::allowed()?)?,
        None => CpuList::default(),
    };
    let job = input.map(|input| CaptureJob {
        input,
        shard: args.shard.map(|s| (s.k, s.n)),
        filter: layout.analysis.bpf_filter.clone().filter(|f| !f.is_empty()),
        buffer_mib: args.buffer_size,
        pin_cpus: pin_cpus.clone(),
        threads: usize::from(args.threads.or(spec.threads).unwrap_or(1)),
        analysis,
        detect: None,
        sync: None,
        activity: Activity::default(),
    });
    let plan = NodePlan {
        job,
        scenarios,
        ready_timeout: Duration::from_secs(args.ready_timeout),
        detections,
        sync_interval,
        offline,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(node_main(cfg, plan))
}

/// What a node runs besides the cluster runtime.
struct NodePlan {
    job: Option<CaptureJob>,
    scenarios: Scenarios,
    ready_timeout: Duration,
    detections: Option<Detections>,
    sync_interval: Option<f64>,
    offline: bool,
}

/// Installs the detections and the time barriers on a started node; returns its analyses.
fn install_analyses(node: &Node, plan: &mut NodePlan) -> Option<SharedRuntime> {
    if node.role() == Role::Logger {
        return None;
    }
    let activity = Activity::default();
    let rt =
        plan.detections.take().map(|(analyses, cfg)| detect::cluster::install(node, &analyses, cfg, activity.clone()));
    let flush_rt = rt.clone().filter(|_| node.role() != Role::Worker);
    sync::participate(
        node,
        activity.clone(),
        Arc::new(move |n: &Node, time: f64| {
            // Nodes that see no packets run on the barrier's packet time.
            if let Some(rt) = &flush_rt {
                detect::cluster::advance(n, rt, time);
            }
        }),
    );
    if let Some(interval) = plan.sync_interval.filter(|_| node.role() == Role::Manager) {
        sync::coordinate(node, interval);
    }
    if let Some(job) = plan.job.as_mut() {
        job.detect = rt.clone();
        job.activity = activity;
        job.sync = plan.sync_interval.map(|_| Gate::install(node));
    }
    rt
}

/// Live, the analyses' clocks follow the wall clock once a second; their counters become metrics.
fn spawn_detect_timer(node: &Node, rt: &SharedRuntime, live: bool) {
    let (node, rt) = (node.clone(), Arc::clone(rt));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut shutdown = node.shutdown_signal();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if live {
                detect::cluster::advance(&node, &rt, node.wall_time());
            }
            export_counters(&node, &rt);
        }
    });
}

fn export_counters(node: &Node, rt: &SharedRuntime) {
    for (name, value) in detect::cluster::counters(rt) {
        node.metrics().set_detect_counter(name, value);
    }
    // The gauge the sizing guide scales proxies by: set at hand-offs too, but the analyses add keys every second.
    node.metrics().state_keys.set(node.state().len() as i64);
}

async fn node_main(cfg: NodeConfig, mut plan: NodePlan) -> anyhow::Result<()> {
    // One span from start to the readiness barrier: what a trace backend shows of a node joining.
    let joining = tracing::info_span!(
        "node.join",
        cluster = %cfg.cluster,
        node = %cfg.me.name,
        role = %cfg.me.role,
        ready = tracing::field::Empty,
        epoch = tracing::field::Empty,
    );
    // The analyses' handlers are registered before the node links up: what the manager sends a joining worker
    // (the intel list) must find them.
    let (node, (scenario_done, rt)) = Node::start_with(cfg, |node| {
        let scenario_done = testkit::install(node, &plan.scenarios);
        (scenario_done, install_analyses(node, &mut plan))
    })
    .instrument(joining.clone())
    .await?;
    {
        let (node, timeout) = (node.clone(), plan.ready_timeout);
        tokio::spawn(
            async move {
                let ready = node.wait_ready(timeout).await;
                tracing::Span::current().record("ready", ready).record("epoch", node.view().epoch);
            }
            .instrument(joining),
        );
    }
    if let Some(rt) = &rt {
        spawn_detect_timer(&node, rt, !plan.offline);
    }
    let ready_timeout = plan.ready_timeout;
    let stop = Arc::new(AtomicBool::new(false));
    let (capture_tx, capture_rx) = tokio::sync::oneshot::channel();
    if let Some(job) = plan.job.take() {
        let (node, stop) = (node.clone(), Arc::clone(&stop));
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new().name("capture".into()).spawn(move || {
            if !handle.block_on(node.wait_ready(ready_timeout)) {
                tracing::warn!("the cluster is not ready after {ready_timeout:?}; capturing anyway");
            }
            let capturing = tracing::info_span!(
                "capture",
                node = node.name(),
                packets = tracing::field::Empty,
                records = tracing::field::Empty
            );
            let result = capturing.in_scope(|| run_capture(&node, job, stop));
            if let Ok(summary) = &result {
                capturing.record("packets", summary.engine.packets).record("records", summary.records);
            }
            let _ = capture_tx.send(result);
        })?;
    } else {
        drop(capture_tx);
    }
    let capture = async {
        match capture_rx.await {
            Ok(result) => Some(result),
            Err(_) => std::future::pending().await,
        }
    };
    let scenario = async {
        match scenario_done {
            Some(h) => {
                let _ = h.await;
            }
            None => std::future::pending().await,
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        r = capture => r,
        () = scenario => None,
        _ = term.recv() => None,
        _ = tokio::signal::ctrl_c() => None,
    };
    stop.store(true, Ordering::Relaxed);
    let result = match outcome {
        Some(Ok(summary)) => {
            tracing::info!(packets = summary.engine.packets, records = summary.records, "capture finished");
            Ok(())
        }
        Some(Err(e)) => Err(e),
        None => Ok(()),
    };
    if let Some(rt) = &rt {
        // Workers finished in their log tap; proxies and the manager finish when they are stopped, after them.
        if node.role() != Role::Worker {
            detect::cluster::done(&node, rt);
        }
        export_counters(&node, rt);
    }
    node.leave("stopping").instrument(tracing::info_span!("node.leave", node = node.name())).await;
    let dropped = node.metrics().dropped_total();
    if dropped > 0 {
        tracing::warn!(records = dropped, "log records were dropped (see zeek_log_records_dropped_total)");
    }
    result
}

#[derive(clap::Subcommand, Debug)]
pub enum LayoutCmd {
    /// Convert zeekctl's node.cfg into a layout (YAML on standard output).
    FromNodecfg {
        /// The node.cfg file.
        file: PathBuf,
        /// The cluster name to put in the layout.
        #[arg(long, default_value = "zeek")]
        cluster: String,
        /// Write the layout here instead of standard output.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a layout file and print what it describes.
    Check { file: PathBuf },
}

pub fn layout_cmd(cmd: LayoutCmd) -> anyhow::Result<()> {
    match cmd {
        LayoutCmd::FromNodecfg { file, cluster, output } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let layout = super::nodecfg::layout_from_nodecfg(&text, &cluster)?;
            let yaml = layout.to_yaml()?;
            match output {
                Some(path) => std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?,
                None => print!("{yaml}"),
            }
        }
        LayoutCmd::Check { file } => {
            let layout = Layout::load(&file)?;
            println!("cluster {} (layout version {})", layout.cluster, layout.version);
            for s in layout.specs() {
                println!("  {:<16} {:<8} {}", s.name, s.role, s.advertise());
            }
            println!("tls: {}", if layout.tls.is_some() { "mTLS" } else { "none (nodes need --insecure)" });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_arguments() {
        assert_eq!("1/3".parse::<ShardArg>(), Ok(ShardArg { k: 1, n: 3 }));
        assert!("3/3".parse::<ShardArg>().is_err());
        assert!("x/3".parse::<ShardArg>().is_err());
        assert!("1".parse::<ShardArg>().is_err());
        assert!("0/0".parse::<ShardArg>().is_err());
    }
}
