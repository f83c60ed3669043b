//! zeekctl's `node.cfg` (an INI file: one `[section]` per node with `type`, `host`, `interface`, `lb_procs`)
//! converted into a layout, so Zeek users can bring theirs.

use super::layout::{
    AnalysisSection, DEFAULT_BASE_PORT, LAYOUT_VERSION, Layout, ManagerEntry, NodeEntry, valid_node_name,
};
use super::role::Role;
use crate::cpus::Pinning;

#[derive(Debug, thiserror::Error)]
pub enum NodeCfgError {
    #[error("line {0}: {1}")]
    Syntax(usize, String),
    #[error("node [{0}]: {1}")]
    Node(String, String),
    #[error("{0}")]
    Cluster(String),
}

#[derive(Debug, Default)]
struct Section {
    name: String,
    line: usize,
    keys: Vec<(String, String)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn parse_sections(text: &str) -> Result<Vec<Section>, NodeCfgError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section { name: name.trim().to_string(), line: i + 1, keys: Vec::new() });
            continue;
        }
        let (k, v) =
            line.split_once('=').ok_or_else(|| NodeCfgError::Syntax(i + 1, format!("expected key=value: {line}")))?;
        let section = sections.last_mut().ok_or_else(|| NodeCfgError::Syntax(i + 1, "key before any [node]".into()))?;
        section.keys.push((k.trim().to_lowercase(), v.trim().to_string()));
    }
    Ok(sections)
}

/// Converts node.cfg text. Ports are assigned from 47760 up: the manager, then loggers, proxies and workers in the
/// order the file lists them. A worker's `lb_procs` becomes its analysis `threads`.
pub fn layout_from_nodecfg(text: &str, cluster: &str) -> Result<Layout, NodeCfgError> {
    let sections = parse_sections(text)?;
    let mut manager = None;
    let mut nodes: Vec<NodeEntry> = Vec::new();
    for s in &sections {
        let ty = s.get("type").ok_or_else(|| NodeCfgError::Node(s.name.clone(), "no type=".into()))?;
        let host = s.get("host").unwrap_or("localhost").to_string();
        if !valid_node_name(&s.name) {
            return Err(NodeCfgError::Node(s.name.clone(), format!("unusable node name (line {})", s.line)));
        }
        let role = match ty.to_lowercase().as_str() {
            "standalone" => {
                return Err(NodeCfgError::Cluster(
                    "a standalone node.cfg has no cluster: run `zeek-node -i IFACE` instead".into(),
                ));
            }
            other => other.parse::<Role>().map_err(|e| NodeCfgError::Node(s.name.clone(), e.to_string()))?,
        };
        if role == Role::Manager {
            if manager.replace((s.name.clone(), host)).is_some() {
                return Err(NodeCfgError::Cluster("more than one manager".into()));
            }
            continue;
        }
        let threads = match s.get("lb_procs") {
            Some(v) => Some(v.parse::<u16>().map_err(|_| NodeCfgError::Node(s.name.clone(), format!("lb_procs={v}")))?),
            None => None,
        };
        let pin_cpus = s.get("pin_cpus").filter(|_| role == Role::Worker);
        if let Some(cpus) = pin_cpus {
            cpus.parse::<Pinning>().map_err(|e| NodeCfgError::Node(s.name.clone(), format!("pin_cpus={cpus}: {e}")))?;
        }
        nodes.push(NodeEntry {
            name: s.name.clone(),
            role,
            host,
            port: 0,
            interface: if role == Role::Worker { s.get("interface").map(str::to_string) } else { None },
            threads: if role == Role::Worker { threads } else { None },
            pin_cpus: pin_cpus.map(str::to_string),
        });
    }
    let (manager_name, manager_host) = manager.ok_or_else(|| NodeCfgError::Cluster("no manager node".into()))?;
    // Stable port order: loggers, proxies, workers, each in file order.
    nodes.sort_by_key(|n| n.role);
    for (i, n) in nodes.iter_mut().enumerate() {
        n.port = u16::try_from(i + 1)
            .ok()
            .and_then(|o| DEFAULT_BASE_PORT.checked_add(o))
            .ok_or_else(|| NodeCfgError::Cluster("too many nodes for the port range".into()))?;
    }
    Ok(Layout {
        version: LAYOUT_VERSION,
        cluster: cluster.to_string(),
        manager: ManagerEntry { name: manager_name, host: manager_host, port: DEFAULT_BASE_PORT },
        nodes,
        tls: None,
        // zeekctl loads site/local.zeek on every node: the same policies as the `local` profile.
        analysis: AnalysisSection { detections: Some(vec!["local".into()]), ..AnalysisSection::default() },
        logging: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_CFG: &str = "
# Example ZeekControl node configuration.
[logger-1]
type=logger
host=10.0.0.10

[manager]
type=manager
host=10.0.0.10

[proxy-1]
type=proxy
host=10.0.0.10

[worker-1]
type=worker
host=10.0.0.11
interface=af_packet::eth0
lb_method=custom
lb_procs=4
pin_cpus=2,3,4,5

[worker-2]
type=worker
host=10.0.0.12
interface=eth1
";

    #[test]
    fn converts_a_zeekctl_cluster() {
        let l = layout_from_nodecfg(NODE_CFG, "zeek").unwrap();
        assert_eq!(l.manager.name, "manager");
        assert_eq!(l.manager.port, 47760);
        let names: Vec<_> = l.nodes.iter().map(|n| (n.name.as_str(), n.role, n.port)).collect();
        assert_eq!(
            names,
            [
                ("logger-1", Role::Logger, 47761),
                ("proxy-1", Role::Proxy, 47762),
                ("worker-1", Role::Worker, 47763),
                ("worker-2", Role::Worker, 47764)
            ]
        );
        assert_eq!(l.nodes[2].threads, Some(4));
        assert_eq!(l.nodes[2].interface.as_deref(), Some("af_packet::eth0"));
        assert_eq!(l.nodes[2].pinning().unwrap(), Some(Pinning::List(crate::cpus::CpuList(vec![2, 3, 4, 5]))));
        assert_eq!(l.nodes[3].pinning().unwrap(), None);
        // The result is a valid layout.
        Layout::parse(&l.to_yaml().unwrap()).unwrap();
    }

    #[test]
    fn refuses_what_is_not_a_cluster() {
        assert!(layout_from_nodecfg("[zeek]\ntype=standalone\nhost=localhost\n", "x").is_err());
        assert!(layout_from_nodecfg("[w]\ntype=worker\n", "x").is_err());
        assert!(layout_from_nodecfg("type=worker\n", "x").is_err());
        assert!(layout_from_nodecfg("[w]\ntype=sprinkler\n", "x").is_err());
        assert!(layout_from_nodecfg("[m]\ntype=manager\n[m2]\ntype=manager\n", "x").is_err());
        let bad_cpus = layout_from_nodecfg("[m]\ntype=manager\n[w]\ntype=worker\npin_cpus=2,x\n", "x").unwrap_err();
        assert_eq!(
            bad_cpus.to_string(),
            "node [w]: pin_cpus=2,x: expected `auto` or a list of CPU numbers and ranges, e.g. 2,3,8-11"
        );
    }
}
