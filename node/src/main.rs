//! The `zeek-node` command: analyse a trace or an interface standalone, like `zeek -r` / `zeek -i`, or run as a
//! cluster node (`run`), a whole cluster on this machine (`cluster`), convert layouts (`layout`) and query a
//! running cluster (`ctl`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;

use zeek_node::cluster;
use zeek_node::config::AnalysisConfig;
use zeek_node::cpus::{self, CpuList, Pinning};
use zeek_node::detect::cluster::DetectArgs;
use zeek_node::detect::{DetectSink, LocalHub};
use zeek_node::logs::{DirSink, LogFormat, LogSink};
use zeek_node::metrics::{self, Metrics};
use zeek_node::runner::{self, Input, LiveStats, RunOptions};
use zeek_node::watchdog::DEFAULT_STALL_LIMIT;

/// mimalloc instead of glibc malloc: measured 1.17x packets per core on the benchmark mix (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: zeek_node::alloc::Mimalloc = zeek_node::alloc::Mimalloc;

#[derive(Parser, Debug)]
#[command(
    name = "zeek-node",
    version,
    about = "Zeek-compatible network analysis: standalone or as a cluster node",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Read packets from a pcap or pcapng file.
    #[arg(short = 'r', long = "readfile", value_name = "FILE", conflicts_with = "interface")]
    readfile: Option<PathBuf>,
    /// Capture live from an interface: libpcap, or AF_PACKET rings with `af_packet::IFACE` (Linux).
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    interface: Option<String>,
    /// BPF capture filter.
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filter: Option<String>,
    /// Ignore checksums (Zeek's -C).
    #[arg(short = 'C', long = "no-checksums")]
    ignore_checksums: bool,
    /// Directory to write logs into (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    logdir: PathBuf,
    /// Write JSON lines instead of Zeek's TSV.
    #[arg(long)]
    json: bool,
    /// Only these analyzers and log streams (comma-separated), e.g. conn,dns,http. Default: all.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    analyzers: Option<Vec<String>>,
    /// Networks considered local (local_orig/local_resp). Default: Zeek's private address space.
    #[arg(long = "local-nets", value_delimiter = ',', value_name = "CIDRS")]
    local_nets: Option<Vec<IpNet>>,
    /// Analysis threads; flows are sharded by a symmetric hash of their addresses and TCP/SCTP ports, inside
    /// VXLAN, Geneve, GTP-U, GRE and IP-in-IP tunnels.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Live: the capture buffer per socket in MiB, libpcap's kernel buffer or each AF_PACKET socket's ring (default
    /// 64 and 32; an AF_PACKET ring has at least 4). A larger buffer rides out longer bursts at the cost of memory
    /// (threads × this with AF_PACKET).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=65536))]
    buffer_size: Option<u32>,
    /// A thread of the packet path stuck on one step this long is logged as an error, and with --metrics-addr fails
    /// /healthz (and counts in `zeek_stalled_threads`): a parser in a loop, a log directory on a hung filesystem.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STALL_LIMIT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    stall_limit: u64,
    /// Pin analysis thread i to the i-th of these CPUs (in turn when there are more threads), e.g. 2,3,8-11, or `auto`:
    /// the CPUs this process may run on (its cpuset). Keep the NIC's interrupt cores out of the list.
    #[arg(long, value_name = "CPUS")]
    pin_cpus: Option<Pinning>,
    /// AF_PACKET fanout group id for `-i af_packet::IFACE` (default: derived from the pid).
    #[arg(long, value_name = "ID")]
    fanout_id: Option<u16>,
    /// Live: archive the logs every INTERVAL (e.g. 1h, 15m; on its multiples of wall-clock time) into dated folders
    /// under the log directory, `<date>/<path>.<open>-<close>.log`, as a Zeek cluster's logger does; logs an
    /// earlier run left there are archived first instead of overwritten.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_positive_duration)]
    rotate: Option<std::time::Duration>,
    /// With --rotate: delete archived logs last written longer ago than this (e.g. 7d), at start and after each
    /// rotation, as zeekctl's LogExpireInterval does. Without it archives are kept.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, requires = "rotate")]
    retention: Option<std::time::Duration>,
    /// Serve Prometheus metrics (/metrics) and health endpoints (/healthz; /readyz once the packet source is open)
    /// here while analysing, e.g. 127.0.0.1:9911.
    #[arg(long, value_name = "ADDR", value_parser = metrics::parse_endpoint_addr)]
    metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    detect: DetectArgs,
    /// Log level for the node's own diagnostics (tracing's env-filter syntax).
    #[arg(long, env = "ZEEK_NODE_LOG", default_value = "info", global = true)]
    log_level: String,
    /// Format of the node's own diagnostics on stderr.
    #[arg(long, env = "ZEEK_NODE_LOG_FORMAT", value_enum, default_value_t = zeek_telemetry::LogFormat::Text, global = true)]
    log_format: zeek_telemetry::LogFormat,
    /// Send trace spans to this OpenTelemetry collector (OTLP/gRPC, e.g. http://otel-collector:4317). Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL", global = true)]
    otlp_endpoint: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Run one node of a cluster (manager, logger, proxy or worker) from a layout file.
    Run(Box<cluster::cli::RunArgs>),
    /// Run a whole cluster on this machine (separate processes on 127.0.0.1) over a trace or an interface.
    Cluster(Box<cluster::inabox::ClusterArgs>),
    /// Layout file tools.
    #[command(subcommand)]
    Layout(cluster::cli::LayoutCmd),
    /// Query a running cluster through its manager.
    Ctl(cluster::ctl::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = zeek_telemetry::init(&zeek_telemetry::Options {
        service: "zeek-node",
        format: cli.log_format,
        filter: &cli.log_level,
        ansi: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        otlp_endpoint: cli.otlp_endpoint.as_deref(),
    });
    let _telemetry = match telemetry {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zeek-node: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Run(args)) => cluster::cli::run_node(*args),
        Some(Command::Cluster(args)) => {
            let diagnostics = diagnostics_args(&cli.log_level, cli.log_format, cli.otlp_endpoint.as_deref());
            cluster::inabox::cluster(*args, &diagnostics)
        }
        Some(Command::Layout(cmd)) => cluster::cli::layout_cmd(cmd),
        Some(Command::Ctl(args)) => cluster::ctl::ctl(args),
        None => standalone(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("zeek-node: {message}");
            write_termination_message(&message);
            ExitCode::FAILURE
        }
    }
}

/// Where Kubernetes reads a container's last words (`terminationMessagePath`, mounted by the kubelet), or
/// `ZEEK_TERMINATION_LOG`.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Leaves why the node stopped where its orchestrator reads it: the kubelet shows it as the container's
/// `lastState.terminated.message`, and the operator puts a worker's into the ZeekCluster's `.status.captures`
/// (a wrong interface name says so there). Nothing is written outside a pod unless `ZEEK_TERMINATION_LOG` names a
/// file.
fn write_termination_message(message: &str) {
    let (path, named) = match std::env::var_os("ZEEK_TERMINATION_LOG") {
        Some(path) => (PathBuf::from(path), true),
        None => (PathBuf::from(TERMINATION_LOG), false),
    };
    if named || path.exists() {
        // Best effort: the message is on stderr too.
        let _ = std::fs::write(&path, message);
    }
}

fn standalone(cli: Cli) -> anyhow::Result<()> {
    if cli.rotate.is_some() && cli.interface.is_none() {
        anyhow::bail!("--rotate archives the logs of a live capture on the wall clock: it needs -i IFACE");
    }
    let input = match (cli.readfile, cli.interface) {
        (Some(f), _) => Input::File(f),
        (None, Some(i)) => Input::live(i, cli.fanout_id),
        (None, None) => anyhow::bail!("nothing to analyse: give -r FILE or -i IFACE (see --help)"),
    };
    let mut analysis = AnalysisConfig { ignore_checksums: cli.ignore_checksums, ..AnalysisConfig::default() };
    if let Some(list) = &cli.analyzers {
        analysis = analysis.with_analyzers(list)?;
    }
    if let Some(nets) = cli.local_nets {
        analysis.local_nets = zeek_node::config::LocalNets::new(&nets);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let pin_cpus = match &cli.pin_cpus {
        Some(pinning) => pinning.resolve(&cpus::allowed()?)?,
        None => CpuList::default(),
    };
    // Bound before anything else starts: a port already taken stops the node with an error that names it.
    let observed = Observed::new(Duration::from_secs(cli.stall_limit));
    if let Some(addr) = cli.metrics_addr {
        observed.serve(addr)?;
    }
    let format = if cli.json { LogFormat::Json } else { LogFormat::Tsv };
    let dir_sink = match cli.rotate {
        Some(interval) => DirSink::rotating(&cli.logdir, format, interval, cli.retention)?,
        None => DirSink::new(&cli.logdir, format)?,
    };
    let hub = detect_hub(&cli.detect, &mut analysis)?;
    let mut sink: Box<dyn LogSink> = match hub {
        Some(hub) => Box::new(DetectSink::new(dir_sink, hub)),
        None => Box::new(dir_sink),
    };
    let opts = RunOptions {
        input,
        filter: cli.filter,
        threads: usize::from(cli.threads),
        buffer_mib: cli.buffer_size,
        analysis,
        progress: true,
        stop,
        expectations: None,
        live: Some(Arc::clone(&observed.live)),
        pin_cpus,
    };
    let span = tracing::info_span!("analyse", packets = tracing::field::Empty, records = tracing::field::Empty);
    let run = || span.in_scope(|| runner::run(opts, sink.as_mut()));
    let summary = metrics::follow_while(&observed.metrics, &observed.live, run)?;
    observed.metrics.set_engine_totals(&summary.engine);
    if let Some(c) = &summary.capture {
        observed.metrics.set_capture(c);
    }
    span.record("packets", summary.engine.packets).record("records", summary.records);
    if let Some(msg) = &summary.truncated {
        tracing::warn!("the trace is truncated ({msg}); everything before the cut was analysed");
    }
    if let Some(c) = summary.capture {
        tracing::info!(received = c.received, dropped = c.dropped, if_dropped = c.if_dropped, "capture statistics");
    }
    if summary.thread_packets.len() > 1 {
        tracing::info!(packets = ?summary.thread_packets, "packets by analysis thread");
    }
    tracing::info!(
        packets = summary.engine.packets,
        connections = summary.engine.connections,
        records = summary.records,
        tcp_ack_events = summary.engine.tcp_ack_events,
        tcp_gap_events = summary.engine.tcp_gap_events,
        capture_loss_percent = summary.engine.capture_loss_percent(),
        "done"
    );
    Ok(())
}

/// A standalone run as it is watched: what the run's threads publish, and the metrics made of it, which the
/// endpoint serves with `--metrics-addr`. Watched without it too: a thread that gets stuck is logged either way.
struct Observed {
    live: Arc<LiveStats>,
    metrics: Arc<Metrics>,
}

impl Observed {
    fn new(stall_limit: Duration) -> Observed {
        let metrics = Arc::new(Metrics::standalone(&host_name()));
        Observed { live: Arc::new(LiveStats::with_stall_limit(stall_limit)), metrics }
    }

    /// Serves the metrics and health endpoints at `addr`, bound now.
    fn serve(&self, addr: SocketAddr) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let listener =
            metrics::bind(addr).with_context(|| format!("cannot serve metrics and health endpoints on {addr}"))?;
        metrics::serve_in_background(listener, Arc::clone(&self.metrics))?;
        Ok(())
    }
}

/// The options of a node's own diagnostics as arguments, for the nodes `zeek-node cluster` starts.
fn diagnostics_args(level: &str, format: zeek_telemetry::LogFormat, otlp_endpoint: Option<&str>) -> Vec<String> {
    let format = clap::ValueEnum::to_possible_value(&format).map_or("text".into(), |v| v.get_name().to_string());
    let mut args = vec!["--log-level".into(), level.into(), "--log-format".into(), format];
    if let Some(endpoint) = otlp_endpoint {
        args.extend(["--otlp-endpoint".into(), endpoint.into()]);
    }
    args
}

/// `--rotate`, `--retention`: a positive duration with one unit.
fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    cluster::layout::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{s}': a positive duration with one unit, s, m, h or d (e.g. 1h or 15m)"))
}

/// This host's name, the `node` label of a standalone node's metrics.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer it is given.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "zeek-node".to_string(),
    }
}

/// The standalone detections asked for on the command line, every role in this process (`None`: no detection),
/// and what they ask of the engine (`analysis`).
fn detect_hub(args: &DetectArgs, analysis: &mut AnalysisConfig) -> anyhow::Result<Option<LocalHub>> {
    let standalone = zeek_node::cluster::layout::AnalysisSection::default();
    Ok(args.build(analysis, &standalone)?.map(|(analyses, cfg)| LocalHub::standalone(analyses, cfg)))
}
