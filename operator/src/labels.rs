//! Labels and annotations on the objects the operator owns.
//!
//! Selector labels are fixed at creation of a workload (Kubernetes refuses to change a selector), so
//! they hold only what never changes: cluster name, role and, for workers, the capture group.

use std::collections::BTreeMap;

use crate::role::Role;

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Which worker DaemonSet a worker pod belongs to (one per capture interface), so that the DaemonSets'
/// selectors never overlap.
pub const CAPTURE_GROUP: &str = "zeek.io/capture-group";

pub const APP_NAME: &str = "zeek";
pub const MANAGER_NAME: &str = "zeek-operator";

/// Pod template annotation: hash of the layout; a change rolls the pods.
pub const CONFIG_HASH: &str = "zeek.io/config-hash";
/// Pod template annotation: hash of the certificates; a renewal rolls the pods.
pub const TLS_HASH: &str = "zeek.io/tls-hash";
/// Workload annotation: hash of the pod template, to tell whether a workload runs the current template
/// without comparing server-defaulted objects.
pub const TEMPLATE_HASH: &str = "zeek.io/template-hash";
/// Worker pod annotation: the interface it captures on (read back into the status).
pub const CAPTURE_INTERFACE: &str = "zeek.io/capture-interface";
/// The annotations Prometheus' conventional `kubernetes-pods` scrape job selects pods by and reads their metrics
/// endpoint from (prometheus/documentation/examples/prometheus-kubernetes.yml).
pub const PROMETHEUS_SCRAPE: &str = "prometheus.io/scrape";
pub const PROMETHEUS_PORT: &str = "prometheus.io/port";
pub const PROMETHEUS_PATH: &str = "prometheus.io/path";

/// Labels that select the pods of one role of one cluster.
pub fn role_selector(cluster: &str, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_string(), APP_NAME.to_string()),
        (INSTANCE.to_string(), cluster.to_string()),
        (COMPONENT.to_string(), role.as_str().to_string()),
    ])
}

/// Labels of every object of a role: the selector plus `managed-by`.
pub fn role_labels(cluster: &str, role: Role) -> BTreeMap<String, String> {
    let mut labels = role_selector(cluster, role);
    labels.insert(MANAGED_BY.to_string(), MANAGER_NAME.to_string());
    labels
}

/// Labels of objects that belong to the whole cluster (layout, certificates).
pub fn cluster_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_string(), APP_NAME.to_string()),
        (INSTANCE.to_string(), cluster.to_string()),
        (MANAGED_BY.to_string(), MANAGER_NAME.to_string()),
    ])
}

/// A label selector string (`k=v,k=v`) for list calls and the scale subresource.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}
