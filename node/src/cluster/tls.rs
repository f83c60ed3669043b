//! mTLS between nodes: every node presents a certificate signed by the cluster CA and accepts only peers that do
//! (rustls with the ring provider, through tonic). Certificates come from files the operator mounts from a Secret.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use super::layout::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0} holds no PEM {1}")]
    NotPem(String, &'static str),
    #[error(
        "the layout has no tls: section; node links are authenticated with mTLS. Give --insecure to run without \
         (local play only)"
    )]
    Missing,
}

/// The cluster CA and this node's certificate and key.
#[derive(Clone)]
pub struct TlsSettings {
    ca: Certificate,
    identity: Identity,
}

fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| TlsError::Read(shown.clone(), e))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(TlsError::NotPem(shown, what));
    }
    Ok(bytes)
}

impl TlsSettings {
    pub fn load(files: &TlsFiles) -> Result<TlsSettings, TlsError> {
        let ca = Certificate::from_pem(read_pem(&files.ca, "CA certificate")?);
        let identity = Identity::from_pem(read_pem(&files.cert, "certificate")?, read_pem(&files.key, "private key")?);
        Ok(TlsSettings { ca, identity })
    }

    /// The server side: our certificate, and client certificates required and checked against the CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone()).client_ca_root(self.ca.clone())
    }

    /// The client side: the server must prove `host` with a CA-signed certificate; we present ours.
    pub fn client(&self, host: &str) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(self.ca.clone()).identity(self.identity.clone()).domain_name(host)
    }
}

/// The TLS settings a node runs with: from the layout, or none with `--insecure`.
pub fn resolve(files: Option<&TlsFiles>, insecure: bool) -> Result<Option<TlsSettings>, TlsError> {
    match (files, insecure) {
        (_, true) => Ok(None),
        (Some(f), false) => TlsSettings::load(f).map(Some),
        (None, false) => Err(TlsError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_run_without_certificates_unless_insecure() {
        assert!(matches!(resolve(None, false), Err(TlsError::Missing)));
        assert!(resolve(None, true).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let files = TlsFiles { ca: junk.clone(), cert: junk.clone(), key: junk };
        assert!(matches!(resolve(Some(&files), false), Err(TlsError::NotPem(..))));
    }
}
