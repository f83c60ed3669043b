//! Headless Services and PodDisruptionBudgets.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::object_meta;
use super::pod::PORT_NAME;
use crate::cluster::ValidatedCluster;
use crate::labels;
use crate::role::Role;

/// The headless Service that gives the pods of a StatefulSet role their DNS names
/// (`NAME-ROLE-0.NAME-ROLE.NAMESPACE.svc`).
pub fn headless_service(cluster: &ValidatedCluster, role: Role) -> Service {
    Service {
        metadata: object_meta(cluster, &cluster.role_object_name(role), labels::role_labels(&cluster.name, role), None),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Nodes dial each other while starting, before they pass their readiness probe.
            publish_not_ready_addresses: Some(true),
            selector: Some(labels::role_selector(&cluster.name, role)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: cluster.port(role),
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// At most one pod of the role may be evicted at a time (node drains, cluster upgrades). Only loggers and
/// proxies get one: a budget on the single manager would block drains forever, and drains skip
/// DaemonSet pods anyway.
pub fn disruption_budget(cluster: &ValidatedCluster, role: Role) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: object_meta(cluster, &cluster.role_object_name(role), labels::role_labels(&cluster.name, role), None),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels::role_selector(&cluster.name, role)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}
