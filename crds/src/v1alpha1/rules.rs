//! CEL validation rules (`x-kubernetes-validations`) of the `ZeekCluster` schema.
//!
//! The API server evaluates these on create and update, so a bad spec is refused before the operator
//! sees it. Each rule comes with the message the user reads; tests match on these messages, so they are
//! constants here rather than literals scattered over the attributes.
//!
//! Rules stay cheap for the API server's cost estimator: every list and map they iterate has a
//! `maxItems`/`maxProperties` bound in the schema, and strings have a `maxLength`.

/// Longest `metadata.name`: derived names such as `NAME-worker-<interface>-<hash>` and the StatefulSet pod
/// label `controller-revision-hash` (`NAME-logger-<10 chars>`) must stay within 63 characters.
pub const NAME_LENGTH: &str = "self.metadata.name.size() <= 40";
pub const NAME_LENGTH_MESSAGE: &str =
    "metadata.name must be at most 40 characters: the names of the objects the operator creates are derived from it";

pub const IMAGE: &str = r"self.matches('^\\S+$')";
pub const IMAGE_MESSAGE: &str =
    "image must be a container image reference without spaces, such as registry.example/zeek-node:1.0";

pub const LOGGER_REPLICAS: &str = "self >= 0 && self <= 16";
pub const LOGGER_REPLICAS_MESSAGE: &str =
    "loggers.replicas must be between 0 and 16 (with 0 loggers the manager writes the logs)";

pub const PROXY_REPLICAS: &str = "self >= 0 && self <= 64";
pub const PROXY_REPLICAS_MESSAGE: &str = "proxies.replicas must be between 0 and 64";

pub const STORAGE_SIZE: &str = "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))";
pub const STORAGE_SIZE_MESSAGE: &str = "loggers.storage.size must be a positive quantity such as 10Gi";

/// Volume claim templates of a StatefulSet cannot change, so neither can what they are built from.
pub const STORAGE_IMMUTABLE: &str = "self.size == oldSelf.size && self.storageClassName == oldSelf.storageClassName";
pub const STORAGE_IMMUTABLE_MESSAGE: &str = "loggers.storage.size and loggers.storage.storageClassName are immutable: \
     the loggers' volume claims cannot be changed in place (create a new ZeekCluster, or resize the PersistentVolumeClaims directly)";

pub const WORKER_THREADS: &str = "self >= 1 && self <= 64";
pub const WORKER_THREADS_MESSAGE: &str = "workers.threads must be between 1 and 64";

pub const WORKER_PORT: &str = "self >= 1024 && self <= 65535";
pub const WORKER_PORT_MESSAGE: &str =
    "workers.port must be between 1024 and 65535 (workers share the host's network namespace)";

/// The same range as the cluster port's, for the same reason.
pub const WORKER_METRICS_PORT: &str = WORKER_PORT;
pub const WORKER_METRICS_PORT_MESSAGE: &str =
    "workers.metricsPort must be between 1024 and 65535 (workers share the host's network namespace)";

pub const WORKER_BUFFER: &str = "self >= 1 && self <= 65536";
pub const WORKER_BUFFER_MESSAGE: &str = "workers.bufferMiB must be between 1 and 65536 (MiB per capture socket)";

pub const WORKER_PIN_CPUS: &str =
    r"self == 'auto' || self.matches('^[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,4}(-[0-9]{1,4})?)*$')";
pub const WORKER_PIN_CPUS_MESSAGE: &str =
    "workers.pinCpus must be auto or a list of CPU numbers and ranges (e.g. 2,3,8-11)";

/// Without `metricsPort` the workers serve their metrics on `port + 1`, which must be a port too.
pub const WORKER_PORTS_DISTINCT: &str = "has(self.metricsPort) ? self.metricsPort != self.port : self.port < 65535";
pub const WORKER_PORTS_DISTINCT_MESSAGE: &str = "workers.metricsPort must differ from workers.port (without \
     metricsPort the workers serve metrics on workers.port + 1, so workers.port must then be below 65535)";

/// A Linux interface name (at most 15 bytes, no `/`, `:` or whitespace), optionally with Zeek's
/// `af_packet::` source prefix.
pub const INTERFACE: &str = r"self.matches('^(af_packet::)?[^/:\\s]{1,15}$')";
pub const INTERFACE_MESSAGE: &str = "capture interface must be a Linux interface name of 1 to 15 characters \
     without '/', ':' or spaces, optionally prefixed with af_packet:: (e.g. eth0 or af_packet::ens5)";

pub const NODE_NAME: &str = r"self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')";
pub const NODE_NAME_MESSAGE: &str = "nodeName must be the name of a Kubernetes node (lower-case DNS subdomain)";

pub const BPF_BALANCED: &str = r"size(self.findAll('[(]')) == size(self.findAll('[)]'))";
pub const BPF_BALANCED_MESSAGE: &str = "workers.bpfFilter has unbalanced parentheses";

pub const BPF_OPERATOR_EDGES: &str =
    r"!self.matches('^\\s*(and|or|&&|\\|\\|)(\\s|$)') && !self.matches('(^|\\s|[(])(and|or|not|&&|\\|\\||!)\\s*$')";
pub const BPF_OPERATOR_EDGES_MESSAGE: &str = "workers.bpfFilter must not begin with and/or or end with and/or/not";

pub const BPF_ONE_LINE: &str = r"!self.matches('[\\x00-\\x1f]')";
pub const BPF_ONE_LINE_MESSAGE: &str = "workers.bpfFilter must be a single line without control characters";

pub const LOG_LEVEL: &str = r"self.matches('^[A-Za-z0-9_:=,.\\-]+$')";
pub const LOG_LEVEL_MESSAGE: &str =
    "diagnostics.level must be a tracing filter such as info or info,zeek_node::cluster=debug (no spaces)";

pub const OTLP_ENDPOINT: &str = r"self == '' || self.matches('^https?://[^\\s/]+(/\\S*)?$')";
pub const OTLP_ENDPOINT_MESSAGE: &str =
    "diagnostics.otlpEndpoint must be an http:// or https:// URL such as http://otel-collector:4317, or empty";

pub const LOCAL_NETWORKS_CIDR: &str = "self.all(n, isCIDR(n))";
pub const LOCAL_NETWORKS_CIDR_MESSAGE: &str =
    "site.localNetworks entries must be CIDR prefixes such as 10.0.0.0/8 or 2001:db8::/32";

pub const LOCAL_NETWORKS_MASKED: &str = "self.all(n, !isCIDR(n) || cidr(n).masked() == cidr(n))";
pub const LOCAL_NETWORKS_MASKED_MESSAGE: &str =
    "site.localNetworks entries must not have host bits set (write 10.0.0.0/8, not 10.0.0.1/8)";

pub const DURATION: &str = "self.matches('^[0-9]{1,6}[smhd]$') && !self.matches('^0+[smhd]$')";
pub const ROTATION_MESSAGE: &str =
    "logging.rotationInterval must be a positive duration with one unit: s, m, h or d (e.g. 30m, 1h, 1d)";
pub const RETENTION_MESSAGE: &str =
    "logging.retention must be a positive duration with one unit: s, m, h or d (e.g. 7d)";

pub const ANALYZER_NAMES: &str = "self.all(a, a.matches('^[a-z][a-z0-9_]*$'))";
pub const ANALYZER_NAMES_MESSAGE: &str =
    "analyzers must be lower-case analyzer names such as conn, dns, http, ssl, ssh";

/// The names `zeek-node --detect` accepts (`all`, the profiles, the analyses); a contract test in the operator
/// checks this list against the node's.
pub const DETECTION_NAMES: &str = "self.all(d, d in ['all', 'local', 'dos', 'scan', 'intel', 'mail-urls', \
     'software', 'known', 'dns-stats', 'ssh-bruteforce', 'capture-loss', 'ftp-site-exec', 'sqli', 'stats'])";
pub const DETECTION_NAMES_MESSAGE: &str = "detections must name the nodes' detections: all, local, dos, scan, \
     intel, mail-urls, software, known, dns-stats, ssh-bruteforce, capture-loss, ftp-site-exec, sqli or stats";

pub const CONFIG_MAP_NAME: &str = r"self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')";
pub const CONFIG_MAP_NAME_MESSAGE: &str = "intel[].configMap must be the name of a ConfigMap in the same namespace";

pub const CONFIG_MAP_KEY: &str = r"self.matches('^[-._a-zA-Z0-9]+$')";
pub const CONFIG_MAP_KEY_MESSAGE: &str = "intel[].key must be a ConfigMap key (letters, digits, '-', '_' and '.')";

pub const THRESHOLD_NAMES: &str = "self.all(k, k.matches('^[A-Za-z][A-Za-z0-9_.:]*$'))";
pub const THRESHOLD_NAMES_MESSAGE: &str =
    "thresholds keys must be setting names such as Scan::port_threshold or ssh.guessing_timeout";
