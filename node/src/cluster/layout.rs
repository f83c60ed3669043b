//! The cluster layout file (docs/LAYOUT.md): which nodes exist at start-up, where they listen, TLS files, and the
//! analysis and logging settings every node shares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::role::Role;
use crate::config::AnalysisConfig;
use crate::cpus::{CpuError, Pinning};
use crate::logs::LogFormat;

pub const LAYOUT_VERSION: u32 = 1;
/// The manager's port in docs/LAYOUT.md's example and in layouts converted from node.cfg.
pub const DEFAULT_BASE_PORT: u16 = 47760;

/// A key the layout does not have is refused, in every section: a misspelt `rotation-interval` would otherwise be
/// taken and do nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    pub version: u32,
    pub cluster: String,
    pub manager: ManagerEntry,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub analysis: AnalysisSection,
    #[serde(default)]
    pub logging: LoggingSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerEntry {
    #[serde(default = "default_manager_name")]
    pub name: String,
    pub host: String,
    pub port: u16,
}

fn default_manager_name() -> String {
    "manager".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: String,
    pub role: Role,
    pub host: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u16>,
    /// A worker's analysis threads pinned to these CPUs, in turn (`2,3,8-11` or `auto`; zeekctl's `pin_cpus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_cpus: Option<String>,
}

impl NodeEntry {
    /// Where the node's analysis threads are pinned, if the layout says.
    pub fn pinning(&self) -> Result<Option<Pinning>, LayoutError> {
        let invalid = |s: &str, e: CpuError| LayoutError::Invalid(format!("node '{}': pin_cpus '{s}': {e}", self.name));
        self.pin_cpus.as_deref().map(|s| s.parse::<Pinning>().map_err(|e| invalid(s, e))).transpose()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_nets: Option<Vec<IpNet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_filter: Option<String>,
    #[serde(default)]
    pub ignore_checksums: bool,
    /// The detections to run (`--detect`'s names and profiles; a ZeekCluster's `spec.detections`). Absent: none,
    /// unless intel files or thresholds are given, which turn on `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intel_files: Vec<PathBuf>,
    /// Detection settings (docs/ANALYSES.md), kept as given for the analyses to read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSection {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "default_log_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_rotation")]
    pub rotation_interval: String,
    #[serde(default = "default_retention")]
    pub retention: String,
}

fn default_log_dir() -> PathBuf {
    PathBuf::from("/var/log/zeek")
}
fn default_rotation() -> String {
    "1h".into()
}
fn default_retention() -> String {
    "7d".into()
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            format: LogFormat::Tsv,
            dir: default_log_dir(),
            rotation_interval: default_rotation(),
            retention: default_retention(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("parsing the layout: {0}")]
    Parse(String),
    #[error("invalid layout: {0}")]
    Invalid(String),
}

/// Where one node is and what it is, from the layout or from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub role: Role,
    pub host: String,
    pub port: u16,
    pub interface: Option<String>,
    pub threads: Option<u16>,
}

impl NodeSpec {
    pub fn advertise(&self) -> String {
        join_host_port(&self.host, self.port)
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Splits `host:port` (IPv6 literals in brackets).
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

impl Layout {
    pub fn load(path: &Path) -> Result<Layout, LayoutError> {
        let text = std::fs::read_to_string(path).map_err(|e| LayoutError::Read(path.to_path_buf(), e))?;
        Layout::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Layout, LayoutError> {
        let layout: Layout = serde_saphyr::from_str(text).map_err(|e| LayoutError::Parse(e.to_string()))?;
        layout.validate()?;
        Ok(layout)
    }

    pub fn to_yaml(&self) -> Result<String, LayoutError> {
        serde_saphyr::to_string(self).map_err(|e| LayoutError::Parse(e.to_string()))
    }

    fn validate(&self) -> Result<(), LayoutError> {
        if self.version != LAYOUT_VERSION {
            return Err(LayoutError::Invalid(format!("version {} (this build reads version 1)", self.version)));
        }
        let mut names = std::collections::HashSet::new();
        names.insert(self.manager.name.as_str());
        for n in &self.nodes {
            if !valid_node_name(&n.name) {
                return Err(LayoutError::Invalid(format!("node name '{}' (letters, digits, '-', '_', '.')", n.name)));
            }
            if n.role == Role::Manager {
                return Err(LayoutError::Invalid(format!("'{}': the manager is given under manager:", n.name)));
            }
            if !names.insert(&n.name) {
                return Err(LayoutError::Invalid(format!("node '{}' is listed twice", n.name)));
            }
            n.pinning()?;
        }
        parse_duration(&self.logging.rotation_interval)
            .ok_or_else(|| LayoutError::Invalid(format!("rotation_interval '{}'", self.logging.rotation_interval)))?;
        parse_duration(&self.logging.retention)
            .ok_or_else(|| LayoutError::Invalid(format!("retention '{}'", self.logging.retention)))?;
        Ok(())
    }

    pub fn manager_spec(&self) -> NodeSpec {
        NodeSpec {
            name: self.manager.name.clone(),
            role: Role::Manager,
            host: self.manager.host.clone(),
            port: self.manager.port,
            interface: None,
            threads: None,
        }
    }

    /// Every node the layout lists, the manager first.
    pub fn specs(&self) -> Vec<NodeSpec> {
        let listed = self.nodes.iter().map(|n| NodeSpec {
            name: n.name.clone(),
            role: n.role,
            host: n.host.clone(),
            port: n.port,
            interface: n.interface.clone(),
            threads: n.threads,
        });
        std::iter::once(self.manager_spec()).chain(listed).collect()
    }

    pub fn find(&self, name: &str) -> Option<NodeSpec> {
        self.specs().into_iter().find(|s| s.name == name)
    }

    /// The analysis settings every worker uses.
    pub fn analysis_config(&self) -> anyhow::Result<AnalysisConfig> {
        let mut cfg = AnalysisConfig { ignore_checksums: self.analysis.ignore_checksums, ..AnalysisConfig::default() };
        if let Some(list) = &self.analysis.analyzers {
            cfg = cfg.with_analyzers(list)?;
        }
        if let Some(nets) = &self.analysis.local_nets {
            cfg.local_nets = crate::config::LocalNets::new(nets);
        }
        Ok(cfg)
    }
}

pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses `90s`, `30m`, `1h`, `7d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
version: 1
cluster: demo
manager:
  name: manager
  host: 127.0.0.1
  port: 47760
nodes:
  - name: logger-1
    role: logger
    host: 127.0.0.1
    port: 47761
  - name: worker-1
    role: worker
    host: 127.0.0.1
    port: 47770
    interface: eth0
    threads: 2
tls:
  ca: /etc/zeek/tls/ca.crt
  cert: /etc/zeek/tls/tls.crt
  key: /etc/zeek/tls/tls.key
analysis:
  local_nets: [10.0.0.0/8, 192.168.0.0/16]
  analyzers: [conn, dns]
  bpf_filter: ""
  ignore_checksums: false
  intel_files: [/etc/zeek/intel/feed.dat]
  thresholds: {}
logging:
  format: tsv
  dir: /var/log/zeek
  rotation_interval: 1h
  retention: 7d
"#;

    #[test]
    fn parses_the_documented_example() {
        let l = Layout::parse(EXAMPLE).unwrap();
        assert_eq!(l.cluster, "demo");
        assert_eq!(l.manager.port, 47760);
        assert_eq!(l.nodes[1].threads, Some(2));
        assert_eq!(l.find("worker-1").unwrap().interface.as_deref(), Some("eth0"));
        assert_eq!(l.find("manager").unwrap().role, Role::Manager);
        assert_eq!(l.tls.as_ref().unwrap().ca, PathBuf::from("/etc/zeek/tls/ca.crt"));
        let cfg = l.analysis_config().unwrap();
        assert!(cfg.is_enabled("dns") && !cfg.is_enabled("http"));
        assert_eq!(Layout::parse(&l.to_yaml().unwrap()).unwrap(), l);
    }

    #[test]
    fn rejects_bad_layouts() {
        assert!(Layout::parse("version: 2\ncluster: x\nmanager: {host: a, port: 1}\n").is_err());
        let dup = "version: 1\ncluster: x\nmanager: {host: a, port: 1}\nnodes:\n  - {name: manager, role: proxy, host: a, port: 2}\n";
        assert!(Layout::parse(dup).is_err());
        assert!(
            Layout::parse("version: 1\ncluster: x\nmanager: {host: a, port: 1}\nlogging: {rotation_interval: 1y}\n")
                .is_err()
        );
        let pinned = |cpus: &str| {
            Layout::parse(&format!(
                "version: 1\ncluster: x\nmanager: {{host: a, port: 1}}\nnodes:\n  - {{name: w, role: worker, host: a, port: 2, pin_cpus: '{cpus}'}}\n"
            ))
        };
        assert_eq!(pinned("auto").unwrap().nodes[0].pinning().unwrap(), Some(crate::cpus::Pinning::Auto));
        let err = pinned("4-2").unwrap_err().to_string();
        assert!(err.contains("node 'w': pin_cpus '4-2': expected `auto`"), "{err}");
        let misspelt = "version: 1\ncluster: x\nmanager: {host: a, port: 1}\nlogging: {rotation-interval: 1h}\n";
        let err = Layout::parse(misspelt).unwrap_err().to_string();
        assert!(err.contains("unknown field") && err.contains("rotation-interval"), "{err}");
        let minimal = Layout::parse("version: 1\ncluster: x\nmanager: {host: a, port: 1}\n").unwrap();
        assert_eq!(minimal.logging.rotation_interval, "1h");
    }

    /// The example of docs/LAYOUT.md is a layout this build reads, every key of it.
    #[test]
    fn the_documented_example_parses() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/LAYOUT.md")).unwrap();
        let example = doc.split("```yaml\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a yaml block");
        let layout = Layout::parse(example).unwrap_or_else(|e| panic!("{e}\n{example}"));
        let worker = layout.nodes.iter().find(|n| n.name == "worker-1").expect("worker-1");
        assert_eq!(worker.pinning().unwrap(), Some(crate::cpus::Pinning::List(crate::cpus::CpuList(vec![2, 3]))));
        assert_eq!(layout.logging.retention, "7d");
    }

    #[test]
    fn durations_and_addresses() {
        assert_eq!(parse_duration("1h"), Some(std::time::Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Some(std::time::Duration::from_secs(45)));
        assert_eq!(parse_duration("3x"), None);
        assert_eq!(split_host_port("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(split_host_port("host"), None);
    }
}
