//! The cluster's certificate authority and the node certificates for mTLS between nodes.
//!
//! Certificates are issued in-process with `rcgen`: it is pure Rust on the `ring` provider that kube's
//! rustls already uses (so no OpenSSL and no second crypto provider), and it keeps the operator free of a
//! cert-manager dependency that a monitoring cluster should not need. Existing material is read back
//! from the Secret with `x509-parser` to decide what to keep.
//!
//! Policy: one CA per ZeekCluster (5 years, renewed 180 days before expiry) and one certificate per role
//! (90 days, renewed 30 days before expiry, or when its names no longer match or it was not issued by the
//! current CA). While the CA is replaced, `ca.crt` holds the new and the old CA so that nodes that still
//! present old certificates are trusted until they have rolled.

use std::collections::{BTreeMap, BTreeSet};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use crate::cluster::ValidatedCluster;
use crate::error::Result;
use crate::role::Role;

pub const CA_VALIDITY: Duration = Duration::days(5 * 365);
pub const CA_RENEW_BEFORE: Duration = Duration::days(180);
pub const NODE_VALIDITY: Duration = Duration::days(90);
pub const NODE_RENEW_BEFORE: Duration = Duration::days(30);

/// Secret keys.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";

pub fn cert_key(role: Role) -> String {
    format!("{role}.crt")
}

pub fn private_key_key(role: Role) -> String {
    format!("{role}.key")
}

/// What a role's certificate must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleIdentity {
    pub role: Role,
    pub common_name: String,
    /// DNS names of the role's pods (wildcard over the headless Service); empty for workers, which run on
    /// the host network and have no stable name.
    pub dns_names: Vec<String>,
    /// A SPIFFE-style URI naming cluster and role, for nodes to authorise peers by role.
    pub uri: String,
}

/// The identities of the four roles of a cluster.
pub fn identities(cluster: &ValidatedCluster) -> Vec<RoleIdentity> {
    [Role::Manager, Role::Logger, Role::Proxy, Role::Worker]
        .into_iter()
        .map(|role| {
            let dns_names = if role.has_stable_identity() {
                let zone = cluster.service_domain(role);
                vec![format!("*.{zone}"), zone]
            } else {
                Vec::new()
            };
            RoleIdentity {
                role,
                common_name: cluster.role_object_name(role),
                dns_names,
                uri: format!(
                    "spiffe://{}/ns/{}/zeekcluster/{}/{role}",
                    cluster.cluster_domain, cluster.namespace, cluster.name
                ),
            }
        })
        .collect()
}

/// A certificate with its private key, PEM encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedCert {
    pub cert: String,
    pub key: String,
}

/// Everything the TLS Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsBundle {
    /// The current CA first, then any previous CA that is still valid.
    pub ca_bundle: String,
    pub ca: KeyedCert,
    pub nodes: BTreeMap<Role, KeyedCert>,
    /// The earliest expiry among the node certificates.
    pub not_after: OffsetDateTime,
}

impl TlsBundle {
    /// Hash of the public material; a change (issue or renewal) rolls the pods.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.ca_bundle.as_bytes());
        for cert in self.nodes.values() {
            hasher.update(cert.cert.as_bytes());
        }
        hex::encode(&hasher.finalize()[..8])
    }
}

/// Why the bundle differs from what was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsChange {
    Unchanged,
    /// There was no usable CA: everything is new.
    Issued,
    /// Some certificates were replaced, for the reasons given.
    Renewed(Vec<String>),
}

/// Reuses what `stored` (the Secret's data) holds where it is still good and issues the rest.
pub fn ensure(
    stored: &BTreeMap<String, Vec<u8>>,
    cluster_name: &str,
    identities: &[RoleIdentity],
    now: OffsetDateTime,
) -> Result<(TlsBundle, TlsChange)> {
    let text = |key: &str| stored.get(key).and_then(|b| String::from_utf8(b.clone()).ok());
    let stored_ca = text(CA_CERT_KEY).zip(text(CA_KEY_KEY));
    let mut reasons = Vec::new();

    let (ca, ca_bundle, ca_is_new) = match stored_ca.as_ref().map(|(cert, key)| usable_ca(cert, key, now)) {
        Some(Ok((ca, bundle))) => (ca, bundle, false),
        Some(Err(reason)) => {
            reasons.push(format!("CA: {reason}"));
            let ca = issue_ca(cluster_name, now)?;
            let previous = stored_ca.as_ref().map(|(bundle, _)| still_valid_pems(bundle, now)).unwrap_or_default();
            let bundle = format!("{}{previous}", ca.cert);
            (ca, bundle, true)
        }
        None => {
            let ca = issue_ca(cluster_name, now)?;
            let bundle = ca.cert.clone();
            (ca, bundle, true)
        }
    };
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let ca_der = first_pem(&ca.cert).ok_or(rcgen::Error::CouldNotParseCertificate)?;

    let mut nodes = BTreeMap::new();
    for identity in identities {
        let stored_node = text(&cert_key(identity.role)).zip(text(&private_key_key(identity.role)));
        let keep = match (&stored_node, ca_is_new) {
            (Some((cert, _)), false) => match node_cert_problem(cert, identity, &ca_der, now) {
                None => true,
                Some(reason) => {
                    reasons.push(format!("{}: {reason}", identity.role));
                    false
                }
            },
            _ => false,
        };
        let cert = match stored_node {
            Some((cert, key)) if keep => KeyedCert { cert, key },
            _ => issue_node(identity, &issuer, now)?,
        };
        nodes.insert(identity.role, cert);
    }

    let not_after =
        nodes.values().filter_map(|c| first_pem(&c.cert)).filter_map(|der| not_after(&der)).min().unwrap_or(now);
    let change = match (stored_ca.is_some(), reasons.is_empty()) {
        (false, _) => TlsChange::Issued,
        (true, true) => TlsChange::Unchanged,
        (true, false) => TlsChange::Renewed(reasons),
    };
    Ok((TlsBundle { ca_bundle, ca, nodes, not_after }, change))
}

/// When the bundle needs the operator's attention next (the first renewal deadline).
pub fn next_renewal(bundle: &TlsBundle) -> OffsetDateTime {
    bundle.not_after - NODE_RENEW_BEFORE
}

fn issue_ca(cluster_name: &str, now: OffsetDateTime) -> Result<KeyedCert> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, format!("{cluster_name} zeek cluster CA"));
    params.distinguished_name.push(DnType::OrganizationName, "zeek-operator");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + CA_VALIDITY;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(KeyedCert { cert: cert.pem(), key: key.serialize_pem() })
}

fn issue_node(identity: &RoleIdentity, issuer: &Issuer<'_, KeyPair>, now: OffsetDateTime) -> Result<KeyedCert> {
    let mut params = CertificateParams::new(identity.dns_names.clone())?;
    params.subject_alt_names.push(SanType::URI(identity.uri.as_str().try_into()?));
    params.distinguished_name.push(DnType::CommonName, identity.common_name.clone());
    params.distinguished_name.push(DnType::OrganizationalUnitName, identity.role.as_str());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    // Nodes both accept and open links, so one certificate serves as server and client.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + NODE_VALIDITY;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok(KeyedCert { cert: cert.pem(), key: key.serialize_pem() })
}

/// The stored CA if it can keep signing: returns it with the bundle of still-valid CA certificates.
fn usable_ca(bundle: &str, key: &str, now: OffsetDateTime) -> std::result::Result<(KeyedCert, String), String> {
    let der = first_pem(bundle).ok_or("the stored certificate cannot be parsed")?;
    let expiry = not_after(&der).ok_or("the stored certificate cannot be parsed")?;
    if expiry - CA_RENEW_BEFORE <= now {
        return Err(format!("expires at {expiry}"));
    }
    KeyPair::from_pem(key).map_err(|e| format!("the stored key cannot be read: {e}"))?;
    let current = pems(bundle).into_iter().next().unwrap_or_default();
    Ok((KeyedCert { cert: current, key: key.to_string() }, still_valid_pems(bundle, now)))
}

/// Why a stored node certificate must be replaced, if it must.
fn node_cert_problem(cert: &str, identity: &RoleIdentity, ca_der: &[u8], now: OffsetDateTime) -> Option<String> {
    let Some(der) = first_pem(cert) else {
        return Some("the stored certificate cannot be parsed".into());
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&der) else {
        return Some("the stored certificate cannot be parsed".into());
    };
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else {
        return Some("the CA certificate cannot be parsed".into());
    };
    if parsed.verify_signature(Some(ca.public_key())).is_err() {
        return Some("not issued by the current CA".into());
    }
    let expiry = OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp()).ok()?;
    if expiry - NODE_RENEW_BEFORE <= now {
        return Some(format!("expires at {expiry}"));
    }
    let mut names = BTreeSet::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => names.insert(format!("dns:{n}")),
                GeneralName::URI(u) => names.insert(format!("uri:{u}")),
                _ => false,
            };
        }
    }
    let wanted: BTreeSet<String> =
        identity.dns_names.iter().map(|n| format!("dns:{n}")).chain([format!("uri:{}", identity.uri)]).collect();
    (names != wanted).then(|| "its names changed".to_string())
}

fn pems(bundle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in bundle.lines() {
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END ") {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

fn still_valid_pems(bundle: &str, now: OffsetDateTime) -> String {
    pems(bundle)
        .into_iter()
        .filter(|pem| first_pem(pem).and_then(|der| not_after(&der)).is_some_and(|t| t > now))
        .collect()
}

fn first_pem(pem: &str) -> Option<Vec<u8>> {
    Pem::iter_from_buffer(pem.as_bytes()).next()?.ok().map(|p| p.contents)
}

fn not_after(der: &[u8]) -> Option<OffsetDateTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities() -> Vec<RoleIdentity> {
        [Role::Manager, Role::Logger, Role::Proxy, Role::Worker]
            .into_iter()
            .map(|role| RoleIdentity {
                role,
                common_name: format!("demo-{role}"),
                dns_names: if role == Role::Worker {
                    vec![]
                } else {
                    vec![format!("*.demo-{role}.ns.svc.cluster.local")]
                },
                uri: format!("spiffe://cluster.local/ns/ns/zeekcluster/demo/{role}"),
            })
            .collect()
    }

    fn to_secret_data(bundle: &TlsBundle) -> BTreeMap<String, Vec<u8>> {
        let mut data = BTreeMap::from([
            (CA_CERT_KEY.to_string(), bundle.ca_bundle.clone().into_bytes()),
            (CA_KEY_KEY.to_string(), bundle.ca.key.clone().into_bytes()),
        ]);
        for (role, cert) in &bundle.nodes {
            data.insert(cert_key(*role), cert.cert.clone().into_bytes());
            data.insert(private_key_key(*role), cert.key.clone().into_bytes());
        }
        data
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn issues_a_ca_and_one_certificate_per_role() {
        let (bundle, change) = ensure(&BTreeMap::new(), "demo", &identities(), now()).unwrap();
        assert_eq!(change, TlsChange::Issued);
        assert_eq!(bundle.nodes.len(), 4);
        assert_eq!(bundle.not_after, now() + NODE_VALIDITY);
        let ca = first_pem(&bundle.ca_bundle).unwrap();
        for identity in identities() {
            assert_eq!(node_cert_problem(&bundle.nodes[&identity.role].cert, &identity, &ca, now()), None);
        }
    }

    #[test]
    fn reuses_valid_material() {
        let (first, _) = ensure(&BTreeMap::new(), "demo", &identities(), now()).unwrap();
        let (second, change) =
            ensure(&to_secret_data(&first), "demo", &identities(), now() + Duration::days(10)).unwrap();
        assert_eq!(change, TlsChange::Unchanged);
        assert_eq!(first, second);
        assert_eq!(first.hash(), second.hash());
    }

    #[test]
    fn renews_node_certificates_before_they_expire() {
        let (first, _) = ensure(&BTreeMap::new(), "demo", &identities(), now()).unwrap();
        let later = now() + NODE_VALIDITY - NODE_RENEW_BEFORE + Duration::hours(1);
        let (second, change) = ensure(&to_secret_data(&first), "demo", &identities(), later).unwrap();
        assert!(matches!(change, TlsChange::Renewed(ref reasons) if reasons.len() == 4), "{change:?}");
        assert_eq!(first.ca, second.ca, "the CA is kept");
        assert_ne!(first.hash(), second.hash());
        assert_eq!(next_renewal(&second), later + NODE_VALIDITY - NODE_RENEW_BEFORE);
    }

    #[test]
    fn renews_a_certificate_whose_names_changed() {
        let (first, _) = ensure(&BTreeMap::new(), "demo", &identities(), now()).unwrap();
        let mut changed = identities();
        changed[0].dns_names = vec!["*.demo-manager.ns.svc.example.org".into()];
        let (second, change) = ensure(&to_secret_data(&first), "demo", &changed, now()).unwrap();
        assert_eq!(change, TlsChange::Renewed(vec!["manager: its names changed".into()]));
        assert_ne!(first.nodes[&Role::Manager], second.nodes[&Role::Manager]);
        assert_eq!(first.nodes[&Role::Proxy], second.nodes[&Role::Proxy]);
    }

    #[test]
    fn replacing_the_ca_reissues_everything_and_keeps_trusting_the_old_ca() {
        let (first, _) = ensure(&BTreeMap::new(), "demo", &identities(), now()).unwrap();
        let later = now() + CA_VALIDITY - CA_RENEW_BEFORE + Duration::days(1);
        let (second, change) = ensure(&to_secret_data(&first), "demo", &identities(), later).unwrap();
        assert!(matches!(change, TlsChange::Renewed(_)));
        assert_ne!(first.ca, second.ca);
        assert_eq!(pems(&second.ca_bundle).len(), 2, "new CA plus the old, still valid, CA");
        for role in [Role::Manager, Role::Worker] {
            assert_ne!(first.nodes[&role], second.nodes[&role]);
        }
    }

    #[test]
    fn garbage_in_the_secret_is_replaced() {
        let data = BTreeMap::from([
            (CA_CERT_KEY.to_string(), b"not a certificate".to_vec()),
            (CA_KEY_KEY.to_string(), b"not a key".to_vec()),
        ]);
        let (bundle, change) = ensure(&data, "demo", &identities(), now()).unwrap();
        assert!(matches!(change, TlsChange::Renewed(_)));
        assert_eq!(pems(&bundle.ca_bundle).len(), 1);
    }
}
