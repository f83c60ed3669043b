//! `zeek-node cluster`: a whole cluster as separate processes of this binary on 127.0.0.1 — write the layout, start
//! the nodes, wait for the readiness barrier, run to the end of the trace, stop the nodes in an order that flushes
//! every record, and merge the loggers' files into one set of logs.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ipnet::IpNet;

use super::certs;
use super::ctl::fetch_status;
use super::layout::{AnalysisSection, LAYOUT_VERSION, Layout, LoggingSection, ManagerEntry, NodeEntry, join_host_port};
use super::proto::pb;
use super::role::Role;
use super::tls::TlsSettings;
use crate::detect::cluster::DetectArgs;
use crate::logs::LogFormat;
use crate::logs::format_header_time as header_time;
use crate::logs::rotation::now_epoch;

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Worker processes; a trace (-r) is split between them by the symmetric flow hash.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=16))]
    pub proxies: u16,
    /// Loggers (0: the manager writes the logs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=16))]
    pub loggers: u16,
    /// Read packets from a trace file.
    #[arg(short = 'r', long = "readfile", value_name = "FILE", conflicts_with = "interface")]
    pub readfile: Option<PathBuf>,
    /// Capture live; several workers share the interface through an AF_PACKET fanout group.
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// Where the merged logs go (the nodes' own files and diagnostics go under DIR/cluster/).
    #[arg(long, value_name = "DIR")]
    pub logdir: PathBuf,
    /// Run the nodes without mTLS (by default a throwaway CA and certificate are made under DIR/cluster/tls).
    #[arg(long)]
    pub insecure: bool,
    /// BPF capture filter.
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Option<String>,
    /// Ignore checksums (Zeek's -C).
    #[arg(short = 'C', long = "no-checksums")]
    pub ignore_checksums: bool,
    /// Write JSON lines instead of Zeek's TSV.
    #[arg(long)]
    pub json: bool,
    /// Only these analyzers and log streams (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub analyzers: Option<Vec<String>>,
    /// Networks considered local.
    #[arg(long = "local-nets", value_delimiter = ',', value_name = "CIDRS")]
    pub local_nets: Option<Vec<IpNet>>,
    /// Seconds to wait for every node to join.
    #[arg(long, default_value_t = 60)]
    pub ready_timeout: u64,
    #[command(flatten)]
    pub detect: DetectArgs,
    /// With -r: the workers meet at a time barrier every SECS of packet time, so effects that cross nodes happen
    /// in packet-time order, as they would live (docs/CLUSTER.md, "Offline clusters follow packet time").
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SYNC_INTERVAL)]
    pub sync_interval: f64,
}

/// Packet time between two barriers of an offline cluster.
pub const DEFAULT_SYNC_INTERVAL: f64 = 1.0;

const STOP_TIMEOUT: Duration = Duration::from_secs(60);

struct Proc {
    name: String,
    role: Role,
    child: Child,
    stderr: PathBuf,
}

/// Every child is stopped (SIGKILL) if the orchestrator fails half-way.
struct Procs(Vec<Proc>);

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.0 {
            if matches!(p.child.try_wait(), Ok(None)) {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}

/// `n` distinct ports free on 127.0.0.1 now, for nodes that bind them a moment later.
///
/// Not picked by binding port 0: such a port is ephemeral, and until the node binds it an outgoing connection of
/// any process may take it (the nodes dial one another as they start), and the node fails to start. These come
/// from below the kernel's ephemeral range (`ip_local_port_range`; outgoing connections never use them) and from a
/// counter, so clusters started at once by one process (the test suites) get different ones. Where the range
/// leaves no room below it, port 0 it is.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    const FIRST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_start.saturating_sub(FIRST);
    if span < 1_000 {
        // Hold every listener until all ports are chosen, so no port is handed out twice.
        let listeners = (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<Vec<_>, _>>()?;
        return listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect();
    }
    // Processes started one after another (test binaries) start at different places as well.
    let offset = std::process::id().wrapping_mul(397) % span;
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span {
        if ports.len() == n {
            return Ok(ports);
        }
        let port = (FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    if ports.len() == n {
        return Ok(ports);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("fewer than {n} free ports below {ephemeral_start}"),
    ))
}

fn node_names(args: &ClusterArgs) -> Vec<(String, Role)> {
    let group = |prefix: &'static str, n: u16, role| (1..=n).map(move |i| (format!("{prefix}-{i}"), role));
    group("logger", args.loggers, Role::Logger)
        .chain(group("proxy", args.proxies, Role::Proxy))
        .chain(group("worker", args.workers, Role::Worker))
        .collect()
}

fn build_layout(args: &ClusterArgs, dir: &Path, tls: Option<super::layout::TlsFiles>) -> anyhow::Result<Layout> {
    let names = node_names(args);
    let ports = free_ports(names.len() + 1)?;
    let nodes = names
        .into_iter()
        .zip(&ports[1..])
        .map(|((name, role), port)| NodeEntry {
            name,
            role,
            host: "127.0.0.1".into(),
            port: *port,
            interface: None,
            threads: None,
            pin_cpus: None,
        })
        .collect();
    Ok(Layout {
        version: LAYOUT_VERSION,
        cluster: "zeek-node-cluster".into(),
        manager: ManagerEntry { name: "manager".into(), host: "127.0.0.1".into(), port: ports[0] },
        nodes,
        tls,
        analysis: AnalysisSection {
            local_nets: args.local_nets.clone(),
            analyzers: args.analyzers.clone(),
            bpf_filter: args.filter.clone(),
            ignore_checksums: args.ignore_checksums,
            // As the operator renders a ZeekCluster's detections and intel feeds: the nodes read them from the layout.
            detections: args.detect.detect.clone(),
            intel_files: args.detect.intel_for_layout(),
            ..AnalysisSection::default()
        },
        logging: LoggingSection {
            format: if args.json { LogFormat::Json } else { LogFormat::Tsv },
            dir: dir.join("logs"),
            // A trace run keeps one set of files to merge; a live run rotates hourly.
            rotation_interval: if args.readfile.is_some() { "0".into() } else { "1h".into() },
            ..LoggingSection::default()
        },
    })
}

/// How the nodes of this cluster are started.
struct Launcher<'a> {
    exe: PathBuf,
    layout_file: &'a Path,
    layout: &'a Layout,
    /// Where each node's stderr goes.
    dir: &'a Path,
    insecure: bool,
    /// Arguments every node gets (detections, time barriers).
    common: Vec<String>,
}

impl Launcher<'_> {
    fn spawn(&self, name: &str, role: Role, extra: &[String]) -> anyhow::Result<Proc> {
        let stderr = self.dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(&self.exe);
        cmd.arg("run").arg("--layout").arg(self.layout_file).arg("--node").arg(name);
        cmd.arg("--logdir").arg(self.layout.logging.dir.join(name));
        if self.insecure {
            cmd.arg("--insecure");
        }
        cmd.args(&self.common);
        cmd.args(extra);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&stderr)?);
        // The nodes die with the orchestrator instead of lingering.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Proc { name: name.to_string(), role, child, stderr })
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn check_alive(procs: &mut Procs) -> anyhow::Result<()> {
    for p in &mut procs.0 {
        if let Some(status) = p.child.try_wait()?
            && (!status.success() || p.role != Role::Worker)
        {
            anyhow::bail!("{} exited ({status}) while the cluster started:\n{}", p.name, tail(&p.stderr));
        }
    }
    Ok(())
}

/// How long one status request to the manager may take while the cluster starts.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until the manager says the cluster passed its readiness barrier and, with `capturing`, until every worker
/// reported its capture open: a live capture's workers join their fanout group one by one after the barrier, and a
/// flow that starts while only some have joined is split between workers when the others join. On timeout the error
/// names the nodes that had not joined (or opened their capture), with the end of each one's stderr: what it takes
/// to find the node that holds the cluster up.
async fn wait_ready(
    addr: &str,
    tls: Option<&TlsSettings>,
    procs: &mut Procs,
    timeout: Duration,
    capturing: bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut joined = Vec::new();
    let mut opening = Vec::new();
    loop {
        check_alive(procs)?;
        // Bounded: a manager too busy to answer must not hold the wait past its deadline.
        if let Ok(Ok(reply)) = tokio::time::timeout(STATUS_TIMEOUT, fetch_status(addr, tls)).await
            && let Some(view) = &reply.view
        {
            opening = if capturing { not_capturing(&reply, procs) } else { Vec::new() };
            if view.ready && opening.is_empty() {
                return Ok(());
            }
            joined = view.members.iter().map(|m| m.name.clone()).collect();
        }
        if Instant::now() > deadline {
            let waiting = not_joined(procs, &joined);
            let opening: String = procs
                .0
                .iter()
                .filter(|p| joined.contains(&p.name) && opening.contains(&p.name))
                .map(|p| {
                    format!("\n{} has not opened its capture; the end of its stderr:\n{}", p.name, tail(&p.stderr))
                })
                .collect();
            anyhow::bail!("the cluster did not pass its readiness barrier within {timeout:?}\n{waiting}{opening}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The workers the manager has not heard from that their capture is open.
fn not_capturing(reply: &pb::StatusReply, procs: &Procs) -> Vec<String> {
    let open = |name: &str| reply.peers.iter().any(|p| p.name == name && p.stats.is_some_and(|s| s.capturing));
    procs.0.iter().filter(|p| p.role == Role::Worker && !open(&p.name)).map(|p| p.name.clone()).collect()
}

/// The nodes missing from the manager's last view (`joined`), each with the end of its stderr.
fn not_joined(procs: &Procs, joined: &[String]) -> String {
    let missing: Vec<String> = procs
        .0
        .iter()
        .filter(|p| p.role != Role::Manager && !joined.contains(&p.name))
        .map(|p| format!("{} has not joined; the end of its stderr:\n{}", p.name, tail(&p.stderr)))
        .collect();
    if missing.is_empty() {
        return format!("the manager's last view lists every node ({})", joined.join(", "));
    }
    missing.join("\n")
}

fn terminate(p: &mut Proc) {
    if matches!(p.child.try_wait(), Ok(None)) {
        // SIGTERM: the node flushes its logs and leaves in order.
        unsafe {
            libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
}

fn wait_exit(p: &mut Proc, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = p.child.try_wait()? {
            return Ok(s);
        }
        if Instant::now() > deadline {
            tracing::error!(node = %p.name, "did not stop in {timeout:?}; killing it");
            p.child.kill()?;
            return Ok(p.child.wait()?);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the nodes of `role` and waits for them; returns the ones that failed.
fn stop_role(procs: &mut Procs, role: Role) -> anyhow::Result<Vec<String>> {
    let mut failed = Vec::new();
    for p in procs.0.iter_mut().filter(|p| p.role == role) {
        terminate(p);
    }
    for p in procs.0.iter_mut().filter(|p| p.role == role) {
        let status = wait_exit(p, STOP_TIMEOUT)?;
        if !status.success() {
            failed.push(format!("{} ({status}):\n{}", p.name, tail(&p.stderr)));
        }
    }
    Ok(failed)
}

/// `diagnostics`: the options of the nodes' own diagnostics every node is given (`--log-level`, `--log-format`,
/// `--otlp-endpoint`), as `zeek-node cluster` itself was.
pub fn cluster(args: ClusterArgs, diagnostics: &[String]) -> anyhow::Result<()> {
    if args.readfile.is_none() && args.interface.is_none() {
        anyhow::bail!("nothing to analyse: give -r FILE or -i IFACE");
    }
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(&args.logdir)?;
    let dir = args.logdir.join("cluster");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let tls_files = if args.insecure {
        None
    } else {
        Some(certs::write_pki(&dir.join("tls"), "zeek-node cluster CA", &["127.0.0.1".into(), "localhost".into()])?)
    };
    let tls = tls_files.as_ref().map(TlsSettings::load).transpose()?;
    let layout = build_layout(&args, &dir, tls_files)?;
    let layout_file = dir.join("layout.yaml");
    std::fs::write(&layout_file, layout.to_yaml()?)?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut procs = Procs(Vec::new());
    let manager = layout.manager.name.clone();
    let mut common = args.detect.to_args();
    if args.readfile.is_some() {
        if !(args.sync_interval.is_finite() && args.sync_interval > 0.0) {
            anyhow::bail!("--sync-interval {}: a positive number of seconds", args.sync_interval);
        }
        common.extend(["--sync-interval".to_string(), args.sync_interval.to_string()]);
    }
    common.extend_from_slice(diagnostics);
    let launcher =
        Launcher { exe, layout_file: &layout_file, layout: &layout, dir: &dir, insecure: args.insecure, common };
    // Every node serves its metrics and health endpoints on a loopback port of its own, listed once ready.
    let mut metrics_ports = free_ports(1 + layout.nodes.len())?.into_iter();
    let mut endpoints = Vec::new();
    let mut metrics_args = |name: &str| {
        let addr = join_host_port("127.0.0.1", metrics_ports.next().expect("a port per node"));
        endpoints.push(format!("{name}=http://{addr}/metrics"));
        vec!["--metrics-addr".to_string(), addr]
    };
    procs.0.push(launcher.spawn(&manager, Role::Manager, &metrics_args(&manager))?);
    let fanout = (std::process::id() & 0xffff) as u16;
    let workers = usize::from(args.workers);
    for (i, n) in layout.nodes.iter().enumerate() {
        let mut extra: Vec<String> = match (n.role, &args.readfile, &args.interface) {
            (Role::Worker, Some(file), _) => {
                let k = i - (layout.nodes.len() - workers);
                vec!["-r".into(), file.display().to_string(), "--shard".into(), format!("{k}/{workers}")]
            }
            (Role::Worker, None, Some(iface)) => live_args(iface, workers, fanout),
            _ => vec![],
        };
        extra.extend(metrics_args(&n.name));
        procs.0.push(launcher.spawn(&n.name, n.role, &extra)?);
    }
    let manager_addr = join_host_port(&layout.manager.host, layout.manager.port);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let timeout = Duration::from_secs(args.ready_timeout);
    runtime.block_on(wait_ready(&manager_addr, tls.as_ref(), &mut procs, timeout, args.interface.is_some()))?;
    // Before the ready line, which tools wait for.
    eprintln!("zeek-node: metrics (and /healthz, /readyz): {}", endpoints.join(" "));
    eprintln!(
        "zeek-node: cluster ready in {:.1}s: 1 manager, {} logger(s), {} prox(ies), {} worker(s) (layout {})",
        started.elapsed().as_secs_f64(),
        args.loggers,
        args.proxies,
        args.workers,
        layout_file.display()
    );

    // Workers end by themselves at the end of a trace; a live capture runs until we are told to stop.
    loop {
        let running =
            procs.0.iter_mut().filter(|p| p.role == Role::Worker).any(|p| matches!(p.child.try_wait(), Ok(None)));
        if !running {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            for p in procs.0.iter_mut().filter(|p| p.role == Role::Worker) {
                terminate(p);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut failed = stop_role(&mut procs, Role::Worker)?;
    for role in [Role::Proxy, Role::Manager, Role::Logger] {
        failed.extend(stop_role(&mut procs, role)?);
    }
    let merged = merge_logs(&layout.logging.dir, &args.logdir, layout.logging.format)?;
    println!("logs: {}", args.logdir.display());
    for (name, records) in &merged {
        println!("  {name}: {records} records");
    }
    println!("node diagnostics and per-node files: {}", dir.display());
    if !failed.is_empty() {
        anyhow::bail!("some nodes failed:\n{}", failed.join("\n"));
    }
    Ok(())
}

fn live_args(iface: &str, workers: usize, fanout: u16) -> Vec<String> {
    let prefix = crate::runner::AF_PACKET_PREFIX;
    if workers > 1 && !iface.starts_with(prefix) {
        // Several processes on one interface share its packets through one AF_PACKET fanout group.
        return vec!["-i".into(), format!("{prefix}{iface}"), "--fanout-id".into(), fanout.to_string()];
    }
    let mut v = vec!["-i".into(), iface.to_string()];
    if iface.starts_with(prefix) {
        v.extend(["--fanout-id".into(), fanout.to_string()]);
    }
    v
}

/// One log line with the sort key it is merged by.
struct Line {
    ts: f64,
    text: String,
}

fn line_ts(line: &str, format: LogFormat) -> f64 {
    let field = match format {
        LogFormat::Tsv => line.split('\t').next(),
        LogFormat::Json => line.strip_prefix("{\"ts\":").and_then(|r| r.split([',', '}']).next()),
    };
    field.and_then(|f| f.parse().ok()).unwrap_or(0.0)
}

/// Merges `<nodes_dir>/<node>/<path>.log` of every node into `<out>/<path>.log`, records ordered by `ts`.
/// Returns the files written and their record counts.
pub fn merge_logs(nodes_dir: &Path, out: &Path, format: LogFormat) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut by_name: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    if nodes_dir.exists() {
        for node in std::fs::read_dir(nodes_dir)? {
            let node = node?.path();
            if !node.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&node)? {
                let f = f?.path();
                if f.extension().and_then(|e| e.to_str()) == Some("log") {
                    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                    by_name.entry(name).or_default().push(f);
                }
            }
        }
    }
    let mut counts = BTreeMap::new();
    for (name, files) in by_name {
        let mut header: Vec<String> = Vec::new();
        let mut lines: Vec<Line> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            for l in text.lines() {
                if l.starts_with('#') {
                    if i == 0 && !l.starts_with("#close") {
                        header.push(l.to_string());
                    }
                } else if !l.is_empty() {
                    lines.push(Line { ts: line_ts(l, format), text: l.to_string() });
                }
            }
        }
        lines.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        let mut text = String::new();
        for h in &header {
            text.push_str(h);
            text.push('\n');
        }
        for l in &lines {
            text.push_str(&l.text);
            text.push('\n');
        }
        if format == LogFormat::Tsv {
            text.push_str(&format!("#close\t{}\n", header_time(now_epoch())));
        }
        std::fs::write(out.join(&name), text)?;
        counts.insert(name, lines.len());
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_node_files_in_ts_order() {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = tmp.path().join("nodes");
        for (node, recs) in [("logger-1", ["3.0\tc", "1.0\ta"]), ("logger-2", ["2.0\tb", "4.0\td"])] {
            std::fs::create_dir_all(nodes.join(node)).unwrap();
            let text = format!("#separator \\x09\n#path\tx\n#fields\tts\tv\n{}\n{}\n#close\tT\n", recs[0], recs[1]);
            std::fs::write(nodes.join(node).join("x.log"), text).unwrap();
        }
        let counts = merge_logs(&nodes, tmp.path(), LogFormat::Tsv).unwrap();
        assert_eq!(counts.get("x.log"), Some(&4));
        let merged = std::fs::read_to_string(tmp.path().join("x.log")).unwrap();
        let body: Vec<&str> = merged.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(body, ["1.0\ta", "2.0\tb", "3.0\tc", "4.0\td"]);
        assert!(merged.starts_with("#separator") && merged.lines().last().unwrap().starts_with("#close\t"));
        assert_eq!(line_ts("{\"ts\":12.5,\"uid\":\"C\"}", LogFormat::Json), 12.5);
    }

    #[test]
    fn live_capture_shares_the_interface() {
        assert_eq!(live_args("eth0", 3, 7), ["-i", "af_packet::eth0", "--fanout-id", "7"]);
        assert_eq!(live_args("eth0", 1, 7), ["-i", "eth0"]);
    }
}
