//! The manager's membership view, read for `status.membershipEpoch`: one `Status` call over the cluster's own
//! mTLS (the operator holds the certificates it issued), bounded in time so that an unreachable manager never
//! holds up a reconcile.

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::error::{Error, Result};
use crate::role::Role;
use crate::tls::TlsBundle;

// The operator only calls `Status`; the schema's event and value types are there for the nodes.
#[allow(dead_code)]
mod pb {
    tonic::include_proto!("zeek.cluster.v1");
}

/// How long one query may take, connection included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the manager listens: `addr` (host:port) to connect to, and the name its certificate carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerAddress {
    pub addr: String,
    pub server_name: String,
}

/// The manager's current view epoch. The client identity is the manager role's certificate: nodes accept any
/// certificate of their cluster's CA.
pub async fn view_epoch(manager: &ManagerAddress, tls: &TlsBundle) -> Result<u64> {
    let identity = tls.nodes.get(&Role::Manager).ok_or_else(|| failed("no manager certificate"))?;
    let tls_config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_bundle))
        .identity(Identity::from_pem(&identity.cert, &identity.key))
        .domain_name(&manager.server_name);
    let endpoint = Endpoint::from_shared(format!("https://{}", manager.addr))
        .map_err(|e| failed(e.to_string()))?
        .connect_timeout(QUERY_TIMEOUT)
        .timeout(QUERY_TIMEOUT)
        .tls_config(tls_config)
        .map_err(|e| failed(e.to_string()))?;
    let query = async {
        let channel = endpoint.connect().await.map_err(|e| failed(format!("connecting to {}: {e}", manager.addr)))?;
        let reply = pb::cluster_client::ClusterClient::new(channel)
            .status(pb::StatusRequest {})
            .await
            .map_err(|e| failed(e.message().to_string()))?;
        reply.into_inner().view.map(|v| v.epoch).ok_or_else(|| failed("the manager has no view yet"))
    };
    tokio::time::timeout(QUERY_TIMEOUT, query).await.map_err(|_| failed(format!("no answer in {QUERY_TIMEOUT:?}")))?
}

fn failed(reason: impl Into<String>) -> Error {
    Error::ManagerView(reason.into())
}
