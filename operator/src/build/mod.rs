//! Pure builders: from a validated cluster (and its certificates) to the Kubernetes objects it consists
//! of. No I/O, no clock, no randomness: the same input always gives the same objects, which the golden
//! tests pin down.

mod config;
pub mod layout;
mod network;
pub mod pod;
mod workloads;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use self::pod::RolloutHashes;
pub use self::workloads::{Workload, WorkloadObject};
use crate::cluster::ValidatedCluster;
use crate::error::Result;
use crate::role::Role;
use crate::tls::TlsBundle;

/// Every object of one ZeekCluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterResources {
    pub layout: ConfigMap,
    pub tls_secret: Secret,
    pub services: Vec<Service>,
    /// In rollout order: loggers, manager, proxies, then the worker DaemonSets.
    pub workloads: Vec<Workload>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    pub hashes: RolloutHashes,
}

pub fn build(cluster: &ValidatedCluster, tls: &TlsBundle) -> Result<ClusterResources> {
    let (layout, config_hash) = config::layout_config_map(cluster, layout::render(cluster)?);
    let hashes = RolloutHashes { config: config_hash, tls: tls.hash() };
    let stable_roles = [Role::Logger, Role::Manager, Role::Proxy];
    let mut workloads: Vec<Workload> =
        stable_roles.iter().map(|&role| workloads::stateful_set(cluster, role, &hashes)).collect();
    // A stopped cluster has no worker pods; a DaemonSet cannot be scaled to zero, so it goes away.
    if !cluster.spec.stopped {
        workloads
            .extend(cluster.worker_groups.iter().map(|group| workloads::worker_daemon_set(cluster, group, &hashes)));
    }
    Ok(ClusterResources {
        layout,
        tls_secret: config::tls_secret(cluster, tls),
        services: stable_roles.iter().map(|&role| network::headless_service(cluster, role)).collect(),
        workloads,
        disruption_budgets: [Role::Logger, Role::Proxy]
            .iter()
            .map(|&role| network::disruption_budget(cluster, role))
            .collect(),
        hashes,
    })
}

/// Metadata of an owned object: in the cluster's namespace, owned by the ZeekCluster (so it is garbage
/// collected with it).
fn object_meta(
    cluster: &ValidatedCluster,
    name: &str,
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(cluster.namespace.clone()),
        labels: Some(labels),
        annotations,
        owner_references: Some(vec![cluster.owner.clone()]),
        ..Default::default()
    }
}
