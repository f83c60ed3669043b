//! A throwaway PKI for clusters on one machine: `zeek-node cluster` creates a CA and one node certificate so its
//! nodes talk mTLS even locally. Real clusters get their certificates from the operator.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use super::layout::TlsFiles;

/// Writes `ca.crt`, `tls.crt` and `tls.key` into `dir`: a new CA named `ca_name`, and a certificate for `sans`
/// (host names or IP addresses) that serves and authenticates as a client.
pub fn write_pki(dir: &Path, ca_name: &str, sans: &[String]) -> anyhow::Result<TlsFiles> {
    std::fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut node_params = CertificateParams::new(sans.to_vec())?;
    node_params.distinguished_name.push(DnType::CommonName, "zeek-node");
    node_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    node_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let node_key = KeyPair::generate()?;
    let node_cert = node_params.signed_by(&node_key, &issuer)?;

    let files = TlsFiles { ca: dir.join("ca.crt"), cert: dir.join("tls.crt"), key: dir.join("tls.key") };
    std::fs::write(&files.ca, ca_cert.pem())?;
    std::fs::write(&files.cert, node_cert.pem())?;
    write_private(&files.key, &node_key.serialize_pem())?;
    Ok(files)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_loadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pki(dir.path(), "test-ca", &["127.0.0.1".into(), "localhost".into()]).unwrap();
        assert!(super::super::tls::TlsSettings::load(&files).is_ok());
        assert!(std::fs::read_to_string(&files.key).unwrap().contains("PRIVATE KEY"));
    }
}
