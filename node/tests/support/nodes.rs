//! A cluster of real `zeek-node run` processes for the integration tests (cluster.rs, detections.rs): a layout
//! written to a temp dir, nodes started from it (optionally inside a network namespace), their stderr kept per
//! node, every process killed when the set is dropped. Every wait is bounded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use zeek_node::cluster::Role;
use zeek_node::cluster::ctl::fetch_status;
use zeek_node::cluster::layout::join_host_port;
use zeek_node::cluster::layout::{LAYOUT_VERSION, Layout, LoggingSection, ManagerEntry, NodeEntry, TlsFiles};
use zeek_node::cluster::proto::pb;
use zeek_node::cluster::tls::TlsSettings;

use super::node_binary;

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` ports free on 127.0.0.1 right now, picked as `zeek-node cluster` picks its nodes' ports (below the
/// ephemeral range, which the suite's many outgoing connections use).
pub fn free_ports(n: usize) -> Vec<u16> {
    zeek_node::cluster::inabox::free_ports(n).expect("free loopback ports")
}

/// Every `<prefix>*.log` file under `dir` and its subfolders (rotated archives included).
pub fn log_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            let file = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                dirs.push(p);
            } else if file.starts_with(prefix) && file.ends_with(".log") {
                out.push(p);
            }
        }
    }
    out
}

pub struct Nodes {
    pub dir: tempfile::TempDir,
    pub layout_file: PathBuf,
    pub layout: Layout,
    procs: HashMap<String, Child>,
    insecure: bool,
    /// Extra arguments every node gets (scenarios, detections, fast heartbeats).
    pub common: Vec<String>,
    /// The network namespace a node runs in, when not this process's.
    pub netns: HashMap<String, String>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.procs.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Nodes {
    /// A layout with the manager at `manager_host` and `nodes` (name, role, host) besides it, on free ports.
    /// `tls`: the files every node uses, or `None` for --insecure. Heartbeats are fast (200 ms, dead after 1.5 s).
    pub fn new(
        cluster: &str,
        manager_host: &str,
        nodes: &[(&str, Role, &str)],
        tls: Option<TlsFiles>,
        common: &[&str],
    ) -> Nodes {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(nodes.len() + 1);
        let layout = Layout {
            version: LAYOUT_VERSION,
            cluster: cluster.into(),
            manager: ManagerEntry { name: "manager".into(), host: manager_host.into(), port: ports[0] },
            nodes: nodes
                .iter()
                .zip(&ports[1..])
                .map(|((name, role, host), port)| NodeEntry {
                    name: name.to_string(),
                    role: *role,
                    host: host.to_string(),
                    port: *port,
                    interface: None,
                    threads: None,
                    pin_cpus: None,
                })
                .collect(),
            tls: tls.clone(),
            analysis: Default::default(),
            logging: LoggingSection { dir: dir.path().join("logs"), ..LoggingSection::default() },
        };
        let layout_file = dir.path().join("layout.yaml");
        std::fs::write(&layout_file, layout.to_yaml().expect("yaml")).expect("write layout");
        let mut common: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        common.extend(["--heartbeat-ms", "200", "--liveness-ms", "1500"].map(str::to_string));
        let insecure = tls.is_none();
        Nodes { dir, layout_file, layout, procs: HashMap::new(), insecure, common, netns: HashMap::new() }
    }

    /// All nodes on 127.0.0.1.
    pub fn local(cluster: &str, nodes: &[(&str, Role)], tls: Option<TlsFiles>, common: &[&str]) -> Nodes {
        let placed: Vec<(&str, Role, &str)> = nodes.iter().map(|(n, r)| (*n, *r, "127.0.0.1")).collect();
        Nodes::new(cluster, "127.0.0.1", &placed, tls, common)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn logs(&self) -> PathBuf {
        self.path("logs")
    }

    pub fn manager_addr(&self) -> String {
        join_host_port(&self.layout.manager.host, self.layout.manager.port)
    }

    /// Starts a node listed in the layout, or one joining with `--role/--advertise` in `extra`.
    pub fn start(&mut self, name: &str, extra: &[&str]) {
        self.start_with_layout(name, &self.layout_file.clone(), extra);
    }

    pub fn start_with_layout(&mut self, name: &str, layout: &Path, extra: &[&str]) {
        let stderr = std::fs::File::create(self.path(&format!("{name}.stderr"))).expect("stderr file");
        let mut cmd = match self.netns.get(name) {
            Some(ns) => {
                // `ip netns exec` execs the node: the child's pid is the node's, so signals reach it.
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(node_binary());
                cmd
            }
            None => Command::new(node_binary()),
        };
        cmd.arg("run").arg("--layout").arg(layout).arg("--node").arg(name);
        cmd.arg("--logdir").arg(self.logs().join(name));
        if self.insecure {
            cmd.arg("--insecure");
        }
        cmd.args(&self.common).args(extra);
        cmd.env("ZEEK_NODE_LOG", "info").stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        let child = cmd.spawn().expect("starts zeek-node run");
        if let Some(mut old) = self.procs.insert(name.to_string(), child) {
            let _ = old.kill();
            let _ = old.wait();
        }
    }

    /// The manager, then every node of the layout.
    pub fn start_all(&mut self) {
        self.start("manager", &[]);
        let names: Vec<String> = self.layout.nodes.iter().map(|n| n.name.clone()).collect();
        for n in names {
            self.start(&n, &[]);
        }
    }

    /// A node that is not in the layout joins with `role`, advertising a free loopback port.
    pub fn join(&mut self, name: &str, role: &str, extra: &[&str]) {
        let advertise = format!("127.0.0.1:{}", free_ports(1)[0]);
        let mut args = vec!["--role", role, "--advertise", &advertise];
        args.extend_from_slice(extra);
        self.start(name, &args);
    }

    pub fn signal(&mut self, name: &str, sig: libc::c_int) {
        let child = self.procs.get_mut(name).expect("a started node");
        if matches!(child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on a child of this process that has not been reaped (try_wait said it runs).
            unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        }
    }

    /// Waits for a node to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, name: &str, timeout: Duration) -> ExitStatus {
        let child = self.procs.get_mut(name).expect("a started node");
        let status = wait_for(timeout, || child.try_wait().ok().flatten());
        status.unwrap_or_else(|| panic!("{name} did not exit within {timeout:?}\n{}", self.stderr(name)))
    }

    /// Stops every node still running in the order that delivers everything: workers and proxies first, then
    /// the manager, then the loggers. Returns how each one ended.
    pub fn stop_all(&mut self) -> Vec<(String, ExitStatus)> {
        let mut ended = Vec::new();
        for role in [Role::Worker, Role::Proxy, Role::Manager, Role::Logger] {
            let names: Vec<String> = self.procs.keys().filter(|n| self.role_of(n) == role).cloned().collect();
            for n in &names {
                self.signal(n, libc::SIGTERM);
            }
            for n in names {
                let status = self.wait_exit(&n, Duration::from_secs(30));
                ended.push((n, status));
            }
        }
        ended
    }

    pub fn role_of(&self, name: &str) -> Role {
        if name == "manager" {
            return Role::Manager;
        }
        self.layout.find(name).map(|s| s.role).unwrap_or_else(|| {
            ["logger", "proxy"]
                .into_iter()
                .zip([Role::Logger, Role::Proxy])
                .find(|(prefix, _)| name.starts_with(prefix))
                .map_or(Role::Worker, |(_, role)| role)
        })
    }

    /// The nodes started so far, by name.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.procs.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn stderr(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.stderr"))).unwrap_or_default()
    }

    /// The manager's `ctl status` answer, if it answers.
    pub fn status(&self) -> Option<pb::StatusReply> {
        let tls = self.layout.tls.as_ref().map(|t| TlsSettings::load(t).expect("tls files"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(fetch_status(&self.manager_addr(), tls.as_ref())).ok()
    }

    /// The members of the manager's current view.
    pub fn members(&self) -> Vec<String> {
        let view = self.status().and_then(|s| s.view);
        view.map(|v| v.members.into_iter().map(|m| m.name).collect()).unwrap_or_default()
    }

    pub fn wait_ready(&self) {
        let ready =
            wait_for(Duration::from_secs(30), || self.status().filter(|s| s.view.as_ref().is_some_and(|v| v.ready)));
        assert!(ready.is_some(), "the cluster did not get ready\nmanager:\n{}", self.stderr("manager"));
    }

    /// The records of every `PREFIX*.log` the nodes wrote so far (rotated files included), columns masked, sorted.
    pub fn records(&self, prefix: &str, masked: &[&str]) -> Vec<String> {
        let files = log_files(&self.logs(), prefix);
        let mut out: Vec<String> = files.iter().flat_map(|f| super::masked_records(f, masked)).collect();
        out.sort();
        out
    }
}
