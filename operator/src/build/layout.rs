//! The cluster layout file (docs/LAYOUT.md), rendered into the `NAME-layout` ConfigMap.
//!
//! The layout names only the nodes whose names are fixed: the manager and the loggers. Proxies and
//! workers join the membership view at run time (`--role ... --advertise ...`), so scaling proxies or
//! adding capture nodes leaves the layout, and with it the config hash, unchanged: nobody restarts.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::cluster::ValidatedCluster;
use crate::error::{Error, Result};
use crate::role::Role;

/// Where the layout is mounted in every node container.
pub const LAYOUT_PATH: &str = "/etc/zeek/layout.yaml";
/// The ConfigMap key of the layout.
pub const LAYOUT_KEY: &str = "layout.yaml";
/// Where the node certificates are mounted.
pub const TLS_DIR: &str = "/etc/zeek/tls";
/// Where loggers (or the manager, without loggers) write logs.
pub const LOG_DIR: &str = "/var/log/zeek";

const LAYOUT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Layout<'a> {
    version: u32,
    cluster: &'a str,
    manager: Endpoint,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<Node>,
    tls: TlsFiles,
    analysis: Analysis<'a>,
    logging: Logging<'a>,
}

#[derive(Serialize)]
struct Endpoint {
    name: String,
    host: String,
    port: i32,
}

#[derive(Serialize)]
struct Node {
    name: String,
    role: &'static str,
    host: String,
    port: i32,
}

#[derive(Serialize)]
struct TlsFiles {
    ca: String,
    cert: String,
    key: String,
}

#[derive(Serialize)]
struct Analysis<'a> {
    local_nets: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    analyzers: Option<&'a [String]>,
    detections: &'a [String],
    bpf_filter: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    intel_files: Vec<String>,
    thresholds: &'a BTreeMap<String, IntOrString>,
}

#[derive(Serialize)]
struct Logging<'a> {
    format: &'static str,
    dir: &'static str,
    rotation_interval: &'a str,
    retention: &'a str,
}

/// Renders the layout file of a cluster.
pub fn render(cluster: &ValidatedCluster) -> Result<String> {
    let spec = &cluster.spec;
    let stable_endpoint = |role: Role, ordinal: i32| {
        let (name, host) = cluster.stable_node(role, ordinal);
        Endpoint { name, host, port: cluster.port(role) }
    };
    let layout = Layout {
        version: LAYOUT_VERSION,
        cluster: &cluster.name,
        manager: stable_endpoint(Role::Manager, 0),
        nodes: (0..spec.loggers.replicas)
            .map(|ordinal| {
                let Endpoint { name, host, port } = stable_endpoint(Role::Logger, ordinal);
                Node { name, role: Role::Logger.as_str(), host, port }
            })
            .collect(),
        tls: TlsFiles {
            ca: format!("{TLS_DIR}/ca.crt"),
            cert: format!("{TLS_DIR}/tls.crt"),
            key: format!("{TLS_DIR}/tls.key"),
        },
        analysis: Analysis {
            local_nets: &spec.site.local_networks,
            analyzers: spec.analyzers.as_deref(),
            detections: &spec.detections,
            bpf_filter: &spec.workers.bpf_filter,
            intel_files: cluster.intel_files.iter().map(|f| f.path()).collect(),
            thresholds: &spec.thresholds,
        },
        logging: Logging {
            format: spec.logging.format.as_str(),
            dir: LOG_DIR,
            rotation_interval: &spec.logging.rotation_interval,
            retention: &spec.logging.retention,
        },
    };
    serde_saphyr::to_string(&layout).map_err(|e| Error::Serialize { what: "layout", message: e.to_string() })
}
