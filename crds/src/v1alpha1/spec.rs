//! `ZeekCluster.spec`: what the user asks for.
//!
//! Doc comments on these types become the schema's descriptions, which is what `kubectl explain` shows:
//! write them for the cluster operator, not for Rust readers. Defaults are serde defaults, so they appear
//! in the schema (`default:`) and the API server fills them in before validation and storage.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules;
use super::status::ZeekClusterStatus;

/// The desired state of a ZeekCluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "zeek.io",
    version = "v1alpha1",
    kind = "ZeekCluster",
    plural = "zeekclusters",
    shortname = "zc",
    category = "zeek",
    namespaced,
    status = "ZeekClusterStatus",
    derive = "PartialEq",
    doc = "ZeekCluster runs one Zeek-style network-monitoring cluster: a manager, optional loggers that write the logs, proxies that hold keyed state (scalable with `kubectl scale`), and one worker per capture host.",
    validation = Rule::new(rules::NAME_LENGTH).message(rules::NAME_LENGTH_MESSAGE),
    scale(
        spec_replicas_path = ".spec.proxies.replicas",
        status_replicas_path = ".status.proxies.current",
        label_selector_path = ".status.proxySelector"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "whether every node of the cluster is ready at the current spec"),
    printcolumn(name = "Manager", type_ = "integer", json_path = ".status.manager.ready", description = "ready manager pods"),
    printcolumn(name = "Loggers", type_ = "integer", json_path = ".status.loggers.ready", description = "ready logger pods"),
    printcolumn(name = "Proxies", type_ = "integer", json_path = ".status.proxies.ready", description = "ready proxy pods"),
    printcolumn(name = "Workers", type_ = "integer", json_path = ".status.workers.ready", description = "ready worker pods (one per capture host)"),
    printcolumn(name = "Epoch", type_ = "integer", json_path = ".status.membershipEpoch", description = "the manager's current membership view", priority = 1),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused", description = "reconciliation is paused", priority = 1),
    printcolumn(name = "Detections", type_ = "string", json_path = ".spec.detections", description = "the detections the nodes run (local: zeekctl's local.zeek)", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ZeekClusterSpec {
    /// Container image of the node (`zeek-node`), used by every role.
    #[x_kube(validation = Rule::new(rules::IMAGE).message(rules::IMAGE_MESSAGE))]
    #[schemars(length(max = 512))]
    pub image: String,

    /// When the kubelet pulls the image.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,

    /// Secrets (in this namespace) with credentials for the image registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Pause reconciliation: the operator leaves every object of this cluster as it is (running pods keep
    /// running) and only reports the Paused condition. Set back to false to resume.
    #[serde(default)]
    pub paused: bool,

    /// Stop the cluster: scale the manager, loggers and proxies to zero and remove the worker pods, keeping
    /// the configuration, certificates and log volumes. Set back to false to start it again.
    #[serde(default)]
    pub stopped: bool,

    /// The manager: the one authority for membership views, which every node dials.
    #[serde(default)]
    pub manager: ManagerSpec,

    /// Loggers receive log records from every node and write, rotate and archive the joint logs.
    #[serde(default)]
    pub loggers: LoggersSpec,

    /// Proxies hold keyed state and offloaded work. Their count is the scale subresource
    /// (`kubectl scale zc/NAME --replicas=N`); scaling restarts no other node.
    #[serde(default)]
    pub proxies: ProxiesSpec,

    /// Workers capture packets and analyse them: one pod per selected node (a DaemonSet on the host network).
    #[serde(default)]
    pub workers: WorkersSpec,

    /// What the monitored site looks like.
    #[serde(default)]
    pub site: SiteSpec,

    /// How logs are written, rotated and kept.
    #[serde(default)]
    pub logging: LoggingSpec,

    /// The nodes' own diagnostics: the format and level of what they write on stderr, and where their trace
    /// spans go.
    #[serde(default)]
    pub diagnostics: DiagnosticsSpec,

    /// Protocol analyzers to enable, by name (conn, dns, http, ssl, ssh, ftp, smtp, ...). Omit to enable all.
    #[x_kube(
        validation = Rule::new(rules::ANALYZER_NAMES).message(rules::ANALYZER_NAMES_MESSAGE),
        merge_strategy = ListMerge::Set
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 32)))]
    pub analyzers: Option<Vec<String>>,

    /// Detections to run (notice.log, software.log, known_hosts.log, capture_loss.log, ...): analyses by name,
    /// `local` for what zeekctl's default local.zeek loads (software, known hosts, services and certificates, SSH
    /// password guessing, capture loss, node statistics, FTP SITE EXEC, SQL injection), or `all`. An empty list runs none. Intel
    /// feeds always run the intel detection.
    #[x_kube(
        validation = Rule::new(rules::DETECTION_NAMES).message(rules::DETECTION_NAMES_MESSAGE),
        merge_strategy = ListMerge::Set
    )]
    #[serde(default = "default_detections")]
    #[schemars(length(max = 32), inner(length(max = 32)))]
    pub detections: Vec<String>,

    /// Intel feeds (Zeek intel framework format), read by the manager and distributed to the workers. A feed turns
    /// on the intel detection (intel.log, notice.log). Changing a referenced ConfigMap's content does not restart
    /// nodes: the manager reads a changed feed again.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["configMap".into(), "key".into()]))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub intel: Vec<IntelSource>,

    /// Detection settings by name (see the node's analysis documentation), e.g. `Scan::port_threshold: 25`
    /// or `SSH::guessing_timeout: 30m`. Values are numbers or strings. A name the nodes do not know stops them
    /// with an error naming it.
    #[x_kube(validation = Rule::new(rules::THRESHOLD_NAMES).message(rules::THRESHOLD_NAMES_MESSAGE))]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 128))]
    pub thresholds: BTreeMap<String, IntOrString>,
}

/// zeekctl's default: the policies its `site/local.zeek` loads that the node has.
fn default_detections() -> Vec<String> {
    vec!["local".into()]
}

/// When the kubelet pulls the node image.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The value of a container's `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// The manager node (always exactly one pod).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagerSpec {
    /// CPU and memory for the manager container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The logger nodes (a StatefulSet, each pod with its own log volume).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoggersSpec {
    /// Number of loggers, 0 to 16. With 0 the manager writes the logs. Changing it rolls every node,
    /// because the loggers are named in the cluster layout.
    #[x_kube(validation = Rule::new(rules::LOGGER_REPLICAS).message(rules::LOGGER_REPLICAS_MESSAGE))]
    #[serde(default = "default_logger_replicas")]
    pub replicas: i32,

    /// The log volume of each logger.
    #[serde(default)]
    pub storage: LogStorageSpec,

    /// CPU and memory for each logger container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_logger_replicas() -> i32 {
    1
}

impl Default for LoggersSpec {
    fn default() -> Self {
        Self { replicas: default_logger_replicas(), storage: LogStorageSpec::default(), resources: None }
    }
}

/// A logger's PersistentVolumeClaim. Size and class are fixed at creation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(rules::STORAGE_IMMUTABLE).message(rules::STORAGE_IMMUTABLE_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct LogStorageSpec {
    /// Requested size of each logger's volume, as a Kubernetes quantity (e.g. 10Gi). Immutable.
    #[x_kube(validation = Rule::new(rules::STORAGE_SIZE).message(rules::STORAGE_SIZE_MESSAGE))]
    #[serde(default = "default_storage_size")]
    #[schemars(length(max = 32))]
    pub size: String,

    /// StorageClass of the volumes; empty uses the cluster's default StorageClass. Immutable.
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub storage_class_name: String,

    /// Keep the log volumes when the ZeekCluster is deleted (the PersistentVolumeClaims stay behind and are
    /// reused by a cluster of the same name). When false, they are deleted with the cluster.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

fn default_storage_size() -> String {
    "10Gi".into()
}

fn default_true() -> bool {
    true
}

impl Default for LogStorageSpec {
    fn default() -> Self {
        Self { size: default_storage_size(), storage_class_name: String::new(), retain_on_delete: default_true() }
    }
}

/// The proxy nodes (a StatefulSet). Proxies join and leave the membership view at run time.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProxiesSpec {
    /// Number of proxies, 0 to 64. This is the scale subresource: `kubectl scale zc/NAME --replicas=N`.
    /// Keyed state moves to the new owners; no other node restarts.
    #[x_kube(validation = Rule::new(rules::PROXY_REPLICAS).message(rules::PROXY_REPLICAS_MESSAGE))]
    #[serde(default = "default_proxy_replicas")]
    pub replicas: i32,

    /// CPU and memory for each proxy container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_proxy_replicas() -> i32 {
    1
}

impl Default for ProxiesSpec {
    fn default() -> Self {
        Self { replicas: default_proxy_replicas(), resources: None }
    }
}

/// The worker nodes: one pod on every selected Kubernetes node, on the host network so it can capture
/// from the host's interfaces. Workers get only the NET_RAW and NET_ADMIN capabilities, never privileged.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(rules::WORKER_PORTS_DISTINCT).message(rules::WORKER_PORTS_DISTINCT_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct WorkersSpec {
    /// Run workers only on nodes with these labels (e.g. `zeek.io/capture: "true"`). Empty: every node
    /// that the tolerations admit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 32))]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations for the worker pods, e.g. to run on tainted capture nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,

    /// Capture interface on every worker node unless overridden per node (e.g. eth0, or af_packet::eth0 for
    /// AF_PACKET).
    #[x_kube(validation = Rule::new(rules::INTERFACE).message(rules::INTERFACE_MESSAGE))]
    #[serde(default = "default_interface")]
    #[schemars(length(max = 32))]
    pub interface: String,

    /// Capture interface for particular nodes, by node name. Nodes not listed use `interface`.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["nodeName".into()]))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub interface_overrides: Vec<InterfaceOverride>,

    /// Analysis threads inside each worker, 1 to 64 (packets are split between them by a symmetric flow hash).
    #[x_kube(validation = Rule::new(rules::WORKER_THREADS).message(rules::WORKER_THREADS_MESSAGE))]
    #[serde(default = "default_threads")]
    pub threads: i32,

    /// Berkeley Packet Filter expression applied at capture (tcpdump syntax), e.g. `not port 22`. Empty
    /// captures everything.
    #[x_kube(
        validation = Rule::new(rules::BPF_ONE_LINE).message(rules::BPF_ONE_LINE_MESSAGE),
        validation = Rule::new(rules::BPF_BALANCED).message(rules::BPF_BALANCED_MESSAGE),
        validation = Rule::new(rules::BPF_OPERATOR_EDGES).message(rules::BPF_OPERATOR_EDGES_MESSAGE)
    )]
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub bpf_filter: String,

    /// TCP port the worker listens on for cluster links. Workers use the host network, so the port must be
    /// free on every worker node (and differ between two ZeekClusters sharing nodes).
    #[x_kube(validation = Rule::new(rules::WORKER_PORT).message(rules::WORKER_PORT_MESSAGE))]
    #[serde(default = "default_worker_port")]
    pub port: i32,

    /// TCP port of the worker's Prometheus metrics and health endpoints (/metrics, /healthz, /readyz) on the
    /// host, on the pod's (the host's) address. Default: port + 1. Like port, it must be free on every worker
    /// node.
    #[x_kube(validation = Rule::new(rules::WORKER_METRICS_PORT).message(rules::WORKER_METRICS_PORT_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_port: Option<i32>,

    /// Capture buffer per socket in MiB: each AF_PACKET socket's ring (one per analysis thread), or libpcap's
    /// kernel buffer. Absent: 32 (AF_PACKET) and 64 (libpcap). A larger buffer rides out longer bursts (and
    /// analysis pauses) without drops; with AF_PACKET the worker's memory grows by threads × this.
    #[x_kube(validation = Rule::new(rules::WORKER_BUFFER).message(rules::WORKER_BUFFER_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "bufferMiB")]
    pub buffer_mib: Option<i32>,

    /// Pin analysis thread i to the i-th of these CPUs: `auto` for the CPUs the container may run on, or a list such
    /// as `2-5` (zeekctl's pin_cpus). Use `auto` with the kubelet's static CPU manager policy and a Guaranteed pod
    /// (whole CPUs, requests equal to limits): each thread then keeps a core of its own. Absent: not pinned.
    #[x_kube(validation = Rule::new(rules::WORKER_PIN_CPUS).message(rules::WORKER_PIN_CPUS_MESSAGE))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub pin_cpus: Option<String>,

    /// CPU and memory for each worker container. Capture hosts usually want a guaranteed CPU request
    /// equal to the limit (one core per analysis thread plus one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_interface() -> String {
    "eth0".into()
}

fn default_threads() -> i32 {
    1
}

/// The default worker listening port, as in the node's layout documentation.
pub const DEFAULT_WORKER_PORT: i32 = 47770;

fn default_worker_port() -> i32 {
    DEFAULT_WORKER_PORT
}

impl Default for WorkersSpec {
    fn default() -> Self {
        Self {
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            interface: default_interface(),
            interface_overrides: Vec::new(),
            threads: default_threads(),
            bpf_filter: String::new(),
            port: default_worker_port(),
            metrics_port: None,
            buffer_mib: None,
            pin_cpus: None,
            resources: None,
        }
    }
}

impl WorkersSpec {
    /// The port the workers serve their metrics and health endpoints on: `metricsPort`, or the cluster port's
    /// neighbour.
    pub fn effective_metrics_port(&self) -> i32 {
        self.metrics_port.unwrap_or(self.port + 1)
    }
}

/// The capture interface of one node.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceOverride {
    /// Name of the Kubernetes node.
    #[x_kube(validation = Rule::new(rules::NODE_NAME).message(rules::NODE_NAME_MESSAGE))]
    #[schemars(length(max = 253))]
    pub node_name: String,

    /// Capture interface on that node (e.g. ens5 or af_packet::ens5).
    #[x_kube(validation = Rule::new(rules::INTERFACE).message(rules::INTERFACE_MESSAGE))]
    #[schemars(length(max = 32))]
    pub interface: String,
}

/// The monitored site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SiteSpec {
    /// Networks considered local (Zeek's Site::local_nets), as CIDR prefixes: decides `local_orig` and
    /// `local_resp` in conn.log and the direction of many detections. Empty by default, as in Zeek.
    #[x_kube(
        validation = Rule::new(rules::LOCAL_NETWORKS_CIDR).message(rules::LOCAL_NETWORKS_CIDR_MESSAGE),
        validation = Rule::new(rules::LOCAL_NETWORKS_MASKED).message(rules::LOCAL_NETWORKS_MASKED_MESSAGE)
    )]
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(max = 64)))]
    pub local_networks: Vec<String>,
}

/// How logs are written, rotated and kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// Log file format: tsv (Zeek's tab-separated writer) or json (one JSON object per line).
    #[serde(default)]
    pub format: LogFormat,

    /// How often logs are rotated into dated archive folders, e.g. 1h.
    #[x_kube(validation = Rule::new(rules::DURATION).message(rules::ROTATION_MESSAGE))]
    #[serde(default = "default_rotation_interval")]
    #[schemars(length(max = 16))]
    pub rotation_interval: String,

    /// How long archived logs are kept before they are deleted, e.g. 7d.
    #[x_kube(validation = Rule::new(rules::DURATION).message(rules::RETENTION_MESSAGE))]
    #[serde(default = "default_retention")]
    #[schemars(length(max = 16))]
    pub retention: String,
}

fn default_rotation_interval() -> String {
    "1h".into()
}

fn default_retention() -> String {
    "7d".into()
}

impl Default for LoggingSpec {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            rotation_interval: default_rotation_interval(),
            retention: default_retention(),
        }
    }
}

/// The nodes' own diagnostics (not the Zeek logs).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticsSpec {
    /// Format of the diagnostic lines on stderr: json (one object per line, for log collectors) or text.
    #[serde(default)]
    pub format: DiagnosticsFormat,

    /// Level filter in tracing's syntax, e.g. info, or info,zeek_node::cluster=debug.
    #[x_kube(validation = Rule::new(rules::LOG_LEVEL).message(rules::LOG_LEVEL_MESSAGE))]
    #[serde(default = "default_log_level")]
    #[schemars(length(max = 256))]
    pub level: String,

    /// OpenTelemetry collector that receives the nodes' trace spans over OTLP/gRPC, e.g.
    /// http://otel-collector.monitoring:4317. Empty: no export.
    #[x_kube(validation = Rule::new(rules::OTLP_ENDPOINT).message(rules::OTLP_ENDPOINT_MESSAGE))]
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 512))]
    pub otlp_endpoint: String,
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for DiagnosticsSpec {
    fn default() -> Self {
        DiagnosticsSpec {
            format: DiagnosticsFormat::default(),
            level: default_log_level(),
            otlp_endpoint: String::new(),
        }
    }
}

/// Format of the nodes' diagnostic lines.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DiagnosticsFormat {
    #[default]
    Json,
    Text,
}

impl DiagnosticsFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticsFormat::Json => "json",
            DiagnosticsFormat::Text => "text",
        }
    }
}

/// Log file format.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Tsv,
    Json,
}

impl LogFormat {
    /// The value of `logging.format` in the node's layout file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tsv => "tsv",
            Self::Json => "json",
        }
    }
}

/// An intel feed stored in a ConfigMap of the cluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IntelSource {
    /// Name of the ConfigMap.
    #[x_kube(validation = Rule::new(rules::CONFIG_MAP_NAME).message(rules::CONFIG_MAP_NAME_MESSAGE))]
    #[schemars(length(max = 253))]
    pub config_map: String,

    /// Key in the ConfigMap that holds the feed.
    #[x_kube(validation = Rule::new(rules::CONFIG_MAP_KEY).message(rules::CONFIG_MAP_KEY_MESSAGE))]
    #[schemars(length(max = 253))]
    pub key: String,
}
