//! Command line.

use std::net::SocketAddr;

use clap::{ArgAction, Args, Parser, Subcommand};

use zeek_telemetry::LogFormat;

/// Kubernetes operator for ZeekCluster resources. Without a subcommand it runs the operator.
#[derive(Debug, Parser)]
#[command(name = "zeek-operator", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the ZeekCluster CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Take part in leader election, so that several replicas can run safely.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    pub leader_election: bool,

    /// Namespace of the leader Lease (default: the operator's own namespace from POD_NAMESPACE, else the
    /// watched namespace, else `default`).
    #[arg(long, env = "LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Name of the leader Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "zeek-operator")]
    pub lease_name: String,

    /// Install or update the ZeekCluster CRD at start.
    #[arg(long, env = "INSTALL_CRD", default_value_t = true, action = ArgAction::Set)]
    pub install_crd: bool,

    /// DNS domain of the Kubernetes cluster.
    #[arg(long, env = "CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,

    /// ZeekClusters reconciled at the same time.
    #[arg(long, env = "CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,

    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Send traces to this OpenTelemetry collector (OTLP/gRPC, e.g. http://otel-collector:4317). Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}
