//! The layout ConfigMap and the certificate Secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sha2::{Digest, Sha256};

use super::layout::LAYOUT_KEY;
use super::object_meta;
use crate::cluster::ValidatedCluster;
use crate::labels;
use crate::tls::{self, TlsBundle};

/// The layout ConfigMap and the hash of its content.
pub fn layout_config_map(cluster: &ValidatedCluster, layout: String) -> (ConfigMap, String) {
    let hash = hex::encode(&Sha256::digest(layout.as_bytes())[..8]);
    let config_map = ConfigMap {
        metadata: object_meta(cluster, &cluster.layout_config_map_name(), labels::cluster_labels(&cluster.name), None),
        data: Some(BTreeMap::from([(LAYOUT_KEY.to_string(), layout)])),
        ..Default::default()
    };
    (config_map, hash)
}

/// The Secret with the CA and one certificate per role (`ROLE.crt`, `ROLE.key`).
pub fn tls_secret(cluster: &ValidatedCluster, bundle: &TlsBundle) -> Secret {
    let entry = |key: String, value: &str| (key, ByteString(value.as_bytes().to_vec()));
    let mut data = BTreeMap::from([
        entry(tls::CA_CERT_KEY.into(), &bundle.ca_bundle),
        entry(tls::CA_KEY_KEY.into(), &bundle.ca.key),
    ]);
    for (role, cert) in &bundle.nodes {
        data.extend([entry(tls::cert_key(*role), &cert.cert), entry(tls::private_key_key(*role), &cert.key)]);
    }
    Secret {
        metadata: object_meta(cluster, &cluster.tls_secret_name(), labels::cluster_labels(&cluster.name), None),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}
