//! The pod template of a node, shared by every role.
//!
//! All roles run the same image with `zeek-node run --layout /etc/zeek/layout.yaml --node NAME --role ROLE`;
//! they differ in how they name themselves, what they mount and (workers) how they reach the network.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::layout::{LAYOUT_KEY, LAYOUT_PATH, LOG_DIR, TLS_DIR};
use crate::cluster::{INTEL_DIR, ValidatedCluster, WorkerGroup, WorkerPlacement};
use crate::labels;
use crate::role::Role;
use crate::tls;

pub const CONTAINER_NAME: &str = "zeek-node";
pub const PORT_NAME: &str = "cluster";
/// The volume name of the loggers' PersistentVolumeClaims (and the manager's scratch log directory).
pub const LOGS_VOLUME: &str = "logs";
/// The unprivileged user of the node image.
const NODE_UID: i64 = 65532;

/// Hashes that, put on the pod template, roll the pods when they change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutHashes {
    pub config: String,
    pub tls: String,
}

/// The pod template of a role; `capture` is the worker group for workers and `None` for other roles.
pub fn node_pod_template(
    cluster: &ValidatedCluster,
    role: Role,
    capture: Option<&WorkerGroup>,
    hashes: &RolloutHashes,
) -> PodTemplateSpec {
    let mut pod_labels = labels::role_labels(&cluster.name, role);
    let metrics = metrics_port(cluster, role);
    let mut annotations = BTreeMap::from([
        (labels::CONFIG_HASH.to_string(), hashes.config.clone()),
        (labels::TLS_HASH.to_string(), hashes.tls.clone()),
        (labels::PROMETHEUS_SCRAPE.to_string(), "true".to_string()),
        (labels::PROMETHEUS_PORT.to_string(), metrics.to_string()),
        (labels::PROMETHEUS_PATH.to_string(), "/metrics".to_string()),
    ]);
    if let Some(group) = capture {
        pod_labels.insert(labels::CAPTURE_GROUP.into(), group.id.clone());
        annotations.insert(labels::CAPTURE_INTERFACE.into(), group.interface.clone());
    }

    let mut volumes = vec![layout_volume(cluster), tls_volume(cluster, role), empty_dir("tmp")];
    let mut mounts = vec![
        VolumeMount {
            name: "layout".into(),
            mount_path: LAYOUT_PATH.into(),
            sub_path: Some(LAYOUT_KEY.into()),
            read_only: Some(true),
            ..Default::default()
        },
        mount("tls", TLS_DIR, true),
        mount("tmp", "/tmp", false),
    ];
    match role {
        // The manager writes the logs when there are no loggers; a logger's volume comes from the
        // StatefulSet's volume claim template.
        Role::Manager => {
            volumes.push(empty_dir(LOGS_VOLUME));
            mounts.push(mount(LOGS_VOLUME, LOG_DIR, false));
            let (intel_volumes, intel_mounts) = intel_volumes(cluster);
            volumes.extend(intel_volumes);
            mounts.extend(intel_mounts);
        }
        Role::Logger => mounts.push(mount(LOGS_VOLUME, LOG_DIR, false)),
        Role::Proxy | Role::Worker => {}
    }

    let spec = &cluster.spec;
    let resources = match role {
        Role::Manager => spec.manager.resources.clone(),
        Role::Logger => spec.loggers.resources.clone(),
        Role::Proxy => spec.proxies.resources.clone(),
        Role::Worker => spec.workers.resources.clone(),
    };
    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().into()),
        args: Some(node_args(cluster, role, capture)),
        env: Some(downward_env()),
        ports: Some(container_ports(cluster, role)),
        readiness_probe: Some(http_probe(READY_PATH, 0, 5, 3)),
        liveness_probe: Some(http_probe(HEALTH_PATH, 15, 10, 6)),
        resources,
        security_context: Some(container_security(role)),
        // A node that stops on an error writes it to /dev/termination-log; one that panics leaves its last log
        // lines. Either way the pod's status says why, and a worker's reaches `.status.captures`.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };

    let mut pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        // Nodes never talk to the Kubernetes API.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(pod_security(role)),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| spec.image_pull_secrets.clone()),
        termination_grace_period_seconds: Some(if role == Role::Logger { 60 } else { 30 }),
        ..Default::default()
    };
    if let Some(group) = capture {
        pod.host_network = Some(true);
        // With the host network the pod would otherwise resolve through the host's resolver and could not
        // find the manager's Service name.
        pod.dns_policy = Some("ClusterFirstWithHostNet".into());
        pod.node_selector = (!spec.workers.node_selector.is_empty()).then(|| spec.workers.node_selector.clone());
        pod.tolerations = (!spec.workers.tolerations.is_empty()).then(|| spec.workers.tolerations.clone());
        pod.affinity = placement_affinity(&group.placement);
    }

    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(pod_labels), annotations: Some(annotations), ..Default::default() }),
        spec: Some(pod),
    }
}

/// Name of the port that serves Prometheus metrics and the health endpoints.
pub const METRICS_PORT_NAME: &str = "metrics";

/// The port the node's Prometheus metrics and health endpoints are served on: next to its cluster port, or for
/// workers, which share the capture host's network, `workers.metricsPort` (by default next to theirs too).
fn metrics_port(cluster: &ValidatedCluster, role: Role) -> i32 {
    match role {
        Role::Worker => cluster.spec.workers.effective_metrics_port(),
        other => cluster.port(other) + 1,
    }
}

fn container_ports(cluster: &ValidatedCluster, role: Role) -> Vec<ContainerPort> {
    let port = |name: &str, container_port| ContainerPort {
        name: Some(name.into()),
        container_port,
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    // On the host network these are host ports too: the scheduler keeps a worker off a node where either is taken.
    vec![port(PORT_NAME, cluster.port(role)), port(METRICS_PORT_NAME, metrics_port(cluster, role))]
}

/// The node's command line (the image's entrypoint is `zeek-node`).
fn node_args(cluster: &ValidatedCluster, role: Role, capture: Option<&WorkerGroup>) -> Vec<String> {
    let port = cluster.port(role);
    let node_name = if role == Role::Worker { "$(NODE_NAME)" } else { "$(POD_NAME)" };
    let mut args: Vec<String> =
        ["run", "--layout", LAYOUT_PATH, "--node", node_name, "--role", role.as_str()].map(String::from).into();
    // A worker binds its pod's address, which is the host's, not every address of the host: a capture interface
    // with an address of its own would otherwise expose the endpoint to the monitored network.
    let metrics_host = if role == Role::Worker { "$(POD_IP)" } else { "0.0.0.0" };
    args.extend(["--metrics-addr".into(), format!("{metrics_host}:{}", metrics_port(cluster, role))]);
    let diagnostics = &cluster.spec.diagnostics;
    args.extend(["--log-format".into(), diagnostics.format.as_str().into()]);
    args.extend(["--log-level".into(), diagnostics.level.clone()]);
    if !diagnostics.otlp_endpoint.is_empty() {
        args.extend(["--otlp-endpoint".into(), diagnostics.otlp_endpoint.clone()]);
    }
    // Manager and loggers are named in the layout; proxies and workers join at run time and tell the
    // manager where to reach them.
    match role {
        Role::Manager | Role::Logger => {}
        Role::Proxy => {
            args.extend(["--advertise".into(), format!("$(POD_NAME).{}:{port}", cluster.service_domain(role))])
        }
        Role::Worker => {
            args.extend(["--advertise".into(), format!("$(POD_IP):{port}")]);
            if let Some(group) = capture {
                args.extend(["--interface".into(), group.interface.clone()]);
            }
            args.extend(["--threads".into(), cluster.spec.workers.threads.to_string()]);
            if let Some(mib) = cluster.spec.workers.buffer_mib {
                args.extend(["--buffer-size".into(), mib.to_string()]);
            }
            if let Some(cpus) = &cluster.spec.workers.pin_cpus {
                args.extend(["--pin-cpus".into(), cpus.clone()]);
            }
        }
    }
    args
}

fn downward_env() -> Vec<EnvVar> {
    [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_IP", "status.podIP"),
        ("NODE_NAME", "spec.nodeName"),
    ]
    .into_iter()
    .map(|(name, field)| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: field.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    })
    .collect()
}

/// The node's readiness: 200 once it saw the cluster pass its readiness barrier (every node the layout names
/// joined), 503 before; a worker starts capturing then.
pub const READY_PATH: &str = "/readyz";
/// The node's health: 503 while a thread of its data path is stuck on one step (`--stall-limit`, 30 s by default:
/// a worker's parser in a loop, a logger's writer on a hung filesystem), which only a restart cures.
pub const HEALTH_PATH: &str = "/healthz";

/// A probe of `path` on the node's metrics port. Its timeout is generous: a worker's analysis threads may keep
/// every core busy, and a restart of a sensor (or an unready worker holding up a rollout) costs more than a slow
/// answer.
fn http_probe(path: &str, initial_delay: i32, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(METRICS_PORT_NAME.into()),
            ..Default::default()
        }),
        initial_delay_seconds: (initial_delay > 0).then_some(initial_delay),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// Workers need raw sockets (NET_RAW) and promiscuous mode / ring setup (NET_ADMIN) and nothing else.
/// They run as root *inside* the container because Linux gives a non-root process the capabilities of
/// its bounding set only through file capabilities, which `allowPrivilegeEscalation: false` disables;
/// root with every other capability dropped and no privilege escalation is the narrower grant.
fn container_security(role: Role) -> SecurityContext {
    let capture = role == Role::Worker;
    SecurityContext {
        privileged: Some(false),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(!capture),
        run_as_user: capture.then_some(0),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: capture.then(|| vec!["NET_RAW".into(), "NET_ADMIN".into()]),
        }),
        ..Default::default()
    }
}

fn pod_security(role: Role) -> PodSecurityContext {
    let seccomp = Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() });
    if role == Role::Worker {
        return PodSecurityContext { seccomp_profile: seccomp, ..Default::default() };
    }
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NODE_UID),
        run_as_group: Some(NODE_UID),
        // Makes the log volume and the certificate files readable/writable by the node's group.
        fs_group: Some(NODE_UID),
        seccomp_profile: seccomp,
        ..Default::default()
    }
}

fn placement_affinity(placement: &WorkerPlacement) -> Option<Affinity> {
    let (operator, nodes) = match placement {
        WorkerPlacement::AllExcept(nodes) if nodes.is_empty() => return None,
        WorkerPlacement::AllExcept(nodes) => ("NotIn", nodes),
        WorkerPlacement::Only(nodes) => ("In", nodes),
    };
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    // metadata.name is the node's name itself, unlike the hostname label.
                    match_fields: Some(vec![NodeSelectorRequirement {
                        key: "metadata.name".into(),
                        operator: operator.into(),
                        values: Some(nodes.clone()),
                    }]),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn layout_volume(cluster: &ValidatedCluster) -> Volume {
    Volume {
        name: "layout".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: cluster.layout_config_map_name(),
            items: Some(vec![key_to_path(LAYOUT_KEY, LAYOUT_KEY)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The role's certificate and key as `tls.crt`/`tls.key`, next to the CA bundle. The CA's private key
/// stays in the Secret and never reaches a node.
fn tls_volume(cluster: &ValidatedCluster, role: Role) -> Volume {
    Volume {
        name: "tls".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(cluster.tls_secret_name()),
            items: Some(vec![
                key_to_path(tls::CA_CERT_KEY, "ca.crt"),
                key_to_path(&tls::cert_key(role), "tls.crt"),
                key_to_path(&tls::private_key_key(role), "tls.key"),
            ]),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One volume per intel ConfigMap, mounted at `/etc/zeek/intel/<configmap>/`.
fn intel_volumes(cluster: &ValidatedCluster) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut by_config_map: BTreeMap<&str, Vec<KeyToPath>> = BTreeMap::new();
    for file in &cluster.intel_files {
        by_config_map.entry(&file.config_map).or_default().push(key_to_path(&file.key, &file.key));
    }
    by_config_map
        .into_iter()
        .enumerate()
        .map(|(i, (config_map, items))| {
            let name = format!("intel-{i}");
            let volume = Volume {
                name: name.clone(),
                config_map: Some(ConfigMapVolumeSource {
                    name: config_map.into(),
                    items: Some(items),
                    ..Default::default()
                }),
                ..Default::default()
            };
            (volume, mount(&name, &format!("{INTEL_DIR}/{config_map}"), true))
        })
        .unzip()
}

fn key_to_path(key: &str, path: &str) -> KeyToPath {
    KeyToPath { key: key.into(), path: path.into(), ..Default::default() }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}
