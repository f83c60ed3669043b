//! The operator's one error type.

use std::time::Duration;

/// Everything that can go wrong while running the operator or reconciling one ZeekCluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API request failed.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },

    /// The object could not be read as a ZeekCluster (for instance stored under an older schema). Only this
    /// object is affected; the others are reconciled as usual.
    #[error("cannot read the ZeekCluster: {0}")]
    Malformed(#[source] kube::core::dynamic::ParseDynamicObjectError),

    /// The spec is well-formed but cannot be realised (e.g. a referenced ConfigMap is missing).
    #[error("invalid ZeekCluster: {}", .0.join("; "))]
    InvalidSpec(Vec<String>),

    /// The object lacks metadata the API server always sets (name, namespace, uid).
    #[error("the ZeekCluster has no {0}")]
    MissingMetadata(&'static str),

    /// Generating or signing a certificate failed.
    #[error("cannot issue certificates: {0}")]
    Certificate(#[from] rcgen::Error),

    /// Serialising an object or the layout failed.
    #[error("cannot serialise {what}: {message}")]
    Serialize { what: &'static str, message: String },

    /// The CustomResourceDefinition did not become established in time.
    #[error("the ZeekCluster CRD was not established within {0:?}")]
    CrdNotEstablished(Duration),

    /// Leader election failed.
    #[error("leader election: {0}")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),

    /// Leadership was lost: the process stops so that a fresh start cannot act on stale state.
    #[error("leadership was lost")]
    LeadershipLost,

    /// Setting up logging, tracing or the HTTP endpoints failed.
    #[error("{0}")]
    Setup(String),

    /// The manager did not tell its membership view (not reachable yet, or not answering).
    #[error("cannot read the manager's membership view: {0}")]
    ManagerView(String),
}

impl Error {
    /// A short, bounded label for the `errors` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube_api",
            Self::Malformed(_) => "malformed",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::MissingMetadata(_) => "missing_metadata",
            Self::Certificate(_) => "certificate",
            Self::Serialize { .. } => "serialize",
            Self::CrdNotEstablished(_) => "crd",
            Self::LeaderElection(_) | Self::LeadershipLost => "leader_election",
            Self::Setup(_) => "setup",
            Self::ManagerView(_) => "manager_view",
        }
    }

    /// Whether retrying without a change to the object can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Kube { .. } | Self::Certificate(_))
    }
}

/// Attaches the action that was attempted to a `kube::Error`: `api.get(n).await.map_err(kube_err("get x"))`.
pub fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
