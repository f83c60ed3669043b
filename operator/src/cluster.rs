//! A ZeekCluster after validation: the one input of every builder.
//!
//! It carries the spec together with everything derived from it that more than one builder needs:
//! object names, DNS names, worker capture groups and intel file paths. Builders never look at the raw
//! `ZeekCluster` object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use sha2::{Digest, Sha256};
use zeek_crds::v1alpha1::ZeekClusterSpec;

use crate::role::Role;

/// Where intel feeds are mounted in the manager pod.
pub const INTEL_DIR: &str = "/etc/zeek/intel";

#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedCluster {
    pub name: String,
    pub namespace: String,
    /// Owner reference to the ZeekCluster, put on every object so that deleting the cluster deletes them.
    pub owner: OwnerReference,
    pub spec: ZeekClusterSpec,
    /// DNS domain of the Kubernetes cluster (`cluster.local` unless configured otherwise).
    pub cluster_domain: String,
    pub worker_groups: Vec<WorkerGroup>,
    pub intel_files: Vec<IntelFile>,
}

/// Worker pods that capture on the same interface: one DaemonSet each, because the pods of one DaemonSet
/// are identical and the interface is a command-line flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerGroup {
    /// Value of the capture-group label; `default` for nodes without an override.
    pub id: String,
    pub interface: String,
    pub placement: WorkerPlacement,
}

/// Which nodes (among those the node selector and tolerations admit) a worker group runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerPlacement {
    /// Every node except these (the default group skips the nodes that have an override).
    AllExcept(Vec<String>),
    /// Only these nodes.
    Only(Vec<String>),
}

/// An intel feed from a ConfigMap, as mounted into the manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntelFile {
    pub config_map: String,
    pub key: String,
}

impl IntelFile {
    /// Path of the feed inside the manager container.
    pub fn path(&self) -> String {
        format!("{INTEL_DIR}/{}/{}", self.config_map, self.key)
    }
}

pub const DEFAULT_WORKER_GROUP: &str = "default";

/// Object names derived from the cluster's name alone, usable before the cluster is validated.
pub mod names {
    use crate::role::Role;

    /// Name of the StatefulSet, headless Service and PodDisruptionBudget of a role (and the prefix of the
    /// worker DaemonSets).
    pub fn role_object(cluster: &str, role: Role) -> String {
        format!("{cluster}-{role}")
    }

    pub fn layout_config_map(cluster: &str) -> String {
        format!("{cluster}-layout")
    }

    pub fn tls_secret(cluster: &str) -> String {
        format!("{cluster}-tls")
    }
}

impl ValidatedCluster {
    pub fn role_object_name(&self, role: Role) -> String {
        names::role_object(&self.name, role)
    }

    pub fn layout_config_map_name(&self) -> String {
        names::layout_config_map(&self.name)
    }

    pub fn tls_secret_name(&self) -> String {
        names::tls_secret(&self.name)
    }

    /// Name of a worker group's DaemonSet.
    pub fn worker_daemonset_name(&self, group: &WorkerGroup) -> String {
        if group.id == DEFAULT_WORKER_GROUP {
            self.role_object_name(Role::Worker)
        } else {
            format!("{}-{}", self.role_object_name(Role::Worker), group.id)
        }
    }

    /// The DNS zone of a role's headless Service: `NAME-ROLE.NAMESPACE.svc.DOMAIN`.
    pub fn service_domain(&self, role: Role) -> String {
        format!("{}.{}.svc.{}", self.role_object_name(role), self.namespace, self.cluster_domain)
    }

    /// Node name and DNS name of the pod with the given StatefulSet ordinal.
    pub fn stable_node(&self, role: Role, ordinal: i32) -> (String, String) {
        let pod = format!("{}-{ordinal}", self.role_object_name(role));
        let host = format!("{pod}.{}", self.service_domain(role));
        (pod, host)
    }

    /// Where the operator reaches the manager (pod DNS name, which its certificate names).
    pub fn manager_address(&self) -> crate::membership::ManagerAddress {
        let (_, host) = self.stable_node(Role::Manager, 0);
        crate::membership::ManagerAddress { addr: format!("{host}:{}", self.port(Role::Manager)), server_name: host }
    }

    /// Pods the spec asks for (workers: not known up front, one per matching node).
    pub fn replicas(&self, role: Role) -> i32 {
        if self.spec.stopped {
            return 0;
        }
        match role {
            Role::Manager => 1,
            Role::Logger => self.spec.loggers.replicas,
            Role::Proxy => self.spec.proxies.replicas,
            Role::Worker => 0,
        }
    }

    pub fn port(&self, role: Role) -> i32 {
        match role {
            Role::Worker => self.spec.workers.port,
            other => other.default_port(),
        }
    }
}

/// Splits the workers by capture interface: the default group for every node without an override, and
/// one group per distinct override interface.
pub fn worker_groups(spec: &ZeekClusterSpec) -> Vec<WorkerGroup> {
    let workers = &spec.workers;
    let mut by_interface: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for o in &workers.interface_overrides {
        if o.interface != workers.interface {
            by_interface.entry(&o.interface).or_default().push(o.node_name.clone());
        }
    }
    let mut overridden: Vec<String> = by_interface.values().flatten().cloned().collect();
    overridden.sort();
    let mut groups = vec![WorkerGroup {
        id: DEFAULT_WORKER_GROUP.into(),
        interface: workers.interface.clone(),
        placement: WorkerPlacement::AllExcept(overridden),
    }];
    groups.extend(by_interface.into_iter().map(|(interface, mut nodes)| {
        nodes.sort();
        WorkerGroup {
            id: interface_group_id(interface),
            interface: interface.to_string(),
            placement: WorkerPlacement::Only(nodes),
        }
    }));
    groups
}

/// A DNS-label-safe id for an interface: its name in lower case with other characters as `-`, plus a
/// short hash of the exact name so that `eth_0` and `eth-0` do not collide.
fn interface_group_id(interface: &str) -> String {
    let readable: String = interface
        .trim_start_matches("af_packet::")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let hash = hex::encode(&Sha256::digest(interface.as_bytes())[..3]);
    format!("{}-{hash}", readable.trim_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeek_crds::v1alpha1::{InterfaceOverride, WorkersSpec};

    fn spec_with_overrides(overrides: &[(&str, &str)]) -> ZeekClusterSpec {
        let mut spec: ZeekClusterSpec = serde_json::from_value(serde_json::json!({"image": "zeek-node:dev"})).unwrap();
        spec.workers = WorkersSpec {
            interface_overrides: overrides
                .iter()
                .map(|(node, interface)| InterfaceOverride {
                    node_name: node.to_string(),
                    interface: interface.to_string(),
                })
                .collect(),
            ..WorkersSpec::default()
        };
        spec
    }

    #[test]
    fn without_overrides_there_is_one_group_on_every_node() {
        let groups = worker_groups(&spec_with_overrides(&[]));
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].interface, "eth0");
        assert_eq!(groups[0].placement, WorkerPlacement::AllExcept(vec![]));
    }

    #[test]
    fn overrides_are_grouped_by_interface_and_excluded_from_the_default_group() {
        let groups = worker_groups(&spec_with_overrides(&[
            ("n3", "ens5"),
            ("n1", "ens5"),
            ("n2", "eth0"),
            ("n4", "af_packet::ens6"),
        ]));
        assert_eq!(groups.len(), 3, "{groups:?}");
        assert_eq!(groups[0].placement, WorkerPlacement::AllExcept(vec!["n1".into(), "n3".into(), "n4".into()]));
        let ens5 = groups.iter().find(|g| g.interface == "ens5").unwrap();
        assert_eq!(ens5.placement, WorkerPlacement::Only(vec!["n1".into(), "n3".into()]));
        assert!(ens5.id.starts_with("ens5-"), "{}", ens5.id);
        let ens6 = groups.iter().find(|g| g.interface == "af_packet::ens6").unwrap();
        assert!(ens6.id.starts_with("ens6-"), "{}", ens6.id);
    }

    #[test]
    fn group_ids_of_similar_interfaces_differ() {
        assert_ne!(interface_group_id("eth_0"), interface_group_id("eth-0"));
        assert!(interface_group_id("Eth.0").chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
