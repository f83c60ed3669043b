//! x509.log: one record per certificate seen in a TLS handshake, formatted as Zeek's X509 file analyzer
//! (OpenSSL names and RFC 2253 distinguished names) and deduplicated as `base/files/x509/main.zeek` does.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::*;

use crate::logs::{Schema, Value, f};

pub static X509_LOG: Schema = Schema {
    path: "x509",
    fields: &[
        f("ts", "time"),
        f("fingerprint", "string"),
        f("certificate.version", "count"),
        f("certificate.serial", "string"),
        f("certificate.subject", "string"),
        f("certificate.issuer", "string"),
        f("certificate.not_valid_before", "time"),
        f("certificate.not_valid_after", "time"),
        f("certificate.key_alg", "string"),
        f("certificate.sig_alg", "string"),
        f("certificate.key_type", "string"),
        f("certificate.key_length", "count"),
        f("certificate.exponent", "string"),
        f("certificate.curve", "string"),
        f("san.dns", "vector[string]"),
        f("san.uri", "vector[string]"),
        f("san.email", "vector[string]"),
        f("san.ip", "vector[addr]"),
        f("basic_constraints.ca", "bool"),
        f("basic_constraints.path_len", "count"),
        f("host_cert", "bool"),
        f("client_cert", "bool"),
    ],
};

/// The fields of a parsed certificate that x509.log and `sni_matches_cert` need.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub version: u64,
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: f64,
    pub not_after: f64,
    pub key_alg: String,
    pub sig_alg: String,
    pub key_type: Option<&'static str>,
    pub key_length: Option<u64>,
    pub exponent: Option<String>,
    pub curve: Option<String>,
    pub san: Option<San>,
    pub basic_constraints: Option<(bool, Option<u64>)>,
    /// Common names of the subject, for hostname checks when there is no DNS SAN.
    pub common_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct San {
    pub dns: Vec<String>,
    pub uri: Vec<String>,
    pub email: Vec<String>,
    pub ip: Vec<IpAddr>,
}

/// SHA-256 of the DER certificate, lower-case hex: Zeek's `X509::hash_function`.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Parses a DER certificate; `None` when it is not one (Zeek then logs nothing for it).
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    let spki = tbs.public_key();
    let key = describe_key(spki);
    Some(CertInfo {
        version: u64::from(tbs.version().0) + 1,
        serial: serial_hex(tbs.raw_serial()),
        subject: rfc2253(tbs.subject()),
        issuer: rfc2253(tbs.issuer()),
        not_before: tbs.validity().not_before.timestamp() as f64,
        not_after: tbs.validity().not_after.timestamp() as f64,
        key_alg: oid_long_name(&spki.algorithm.algorithm.to_id_string()),
        sig_alg: oid_long_name(&cert.signature_algorithm.algorithm.to_id_string()),
        key_type: key.key_type,
        key_length: key.length,
        exponent: key.exponent,
        curve: key.curve,
        san: subject_alt_names(&cert),
        basic_constraints: cert
            .basic_constraints()
            .ok()
            .flatten()
            .map(|bc| (bc.value.ca, bc.value.path_len_constraint.map(u64::from))),
        common_names: tbs.subject().iter_common_name().filter_map(|a| attribute_text(a)).collect(),
    })
}

/// The serial as OpenSSL prints it: upper-case hex bytes without DER's sign padding.
fn serial_hex(raw: &[u8]) -> String {
    let first_significant = raw.iter().position(|&b| b != 0).unwrap_or(raw.len().saturating_sub(1));
    let digits = raw.get(first_significant..).unwrap_or_default();
    if digits.is_empty() {
        return "00".to_string();
    }
    hex::encode_upper(digits)
}

struct KeyDescription {
    key_type: Option<&'static str>,
    length: Option<u64>,
    exponent: Option<String>,
    curve: Option<String>,
}

fn describe_key(spki: &SubjectPublicKeyInfo) -> KeyDescription {
    let mut key = KeyDescription { key_type: None, length: None, exponent: None, curve: None };
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            key.key_type = Some("rsa");
            key.length = Some(bit_length(rsa.modulus));
            key.exponent = Some(big_endian_decimal(rsa.exponent));
        }
        Ok(x509_parser::public_key::PublicKey::DSA(_)) => key.key_type = Some("dsa"),
        Ok(x509_parser::public_key::PublicKey::EC(_)) => {
            key.key_type = Some("ecdsa");
            let curve_oid = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            if let Some(oid) = curve_oid {
                let (name, bits) = curve_short_name(&oid.to_id_string());
                key.curve = Some(name);
                key.length = bits;
            }
        }
        _ => {}
    }
    key
}

fn bit_length(be: &[u8]) -> u64 {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i - 1) as u64 * 8 + u64::from(8 - be[i].leading_zeros()),
        None => 0,
    }
}

/// A big-endian unsigned integer in decimal (RSA exponents are small, but any length works).
fn big_endian_decimal(be: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base-10 digits
    for &byte in be {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// OpenSSL's long names (`OBJ_nid2ln`) for key and signature algorithms; other OIDs stay dotted.
fn oid_long_name(oid: &str) -> String {
    let name = match oid {
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.3.14.3.2.29" => "sha1WithRSA",
        "1.2.840.10045.2.1" => "id-ecPublicKey",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10040.4.1" => "dsaEncryption",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "2.16.840.1.101.3.4.3.1" => "dsa_with_SHA224",
        "2.16.840.1.101.3.4.3.2" => "dsa_with_SHA256",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        other => other,
    };
    name.to_string()
}

/// OpenSSL's short curve names and the curve's order size in bits.
fn curve_short_name(oid: &str) -> (String, Option<u64>) {
    let (name, bits) = match oid {
        "1.2.840.10045.3.1.1" => ("prime192v1", 192),
        "1.3.132.0.33" => ("secp224r1", 224),
        "1.2.840.10045.3.1.7" => ("prime256v1", 256),
        "1.3.132.0.10" => ("secp256k1", 256),
        "1.3.132.0.34" => ("secp384r1", 384),
        "1.3.132.0.35" => ("secp521r1", 521),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", 256),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", 384),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", 512),
        other => return (other.to_string(), None),
    };
    (name.to_string(), Some(bits))
}

/// OpenSSL's short names for distinguished-name attributes.
fn attribute_short_name(oid: &str) -> String {
    let name = match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        other => other,
    };
    name.to_string()
}

/// The text of an attribute value: string types as UTF-8, BMP strings decoded, others as `#hex` DER.
fn attribute_text(attr: &AttributeTypeAndValue) -> Option<String> {
    if let Ok(s) = attr.as_str() {
        return Some(s.to_string());
    }
    let value = attr.attr_value();
    match value.tag() {
        Tag::BmpString => {
            let units: Vec<u16> = value.data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            Some(String::from_utf16_lossy(&units))
        }
        Tag::T61String | Tag::VisibleString | Tag::UniversalString => {
            Some(String::from_utf8_lossy(value.data).into_owned())
        }
        _ => None,
    }
}

/// A distinguished name the way Zeek prints it (`X509_NAME_print_ex` with `XN_FLAG_RFC2253` minus
/// `ASN1_STRFLGS_ESC_MSB`): last RDN first, `,` between RDNs, `+` inside one, RFC 2253 escapes.
pub fn rfc2253(name: &X509Name) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            out.push_str(&attribute_short_name(&attr.attr_type().to_id_string()));
            out.push('=');
            match attribute_text(attr) {
                Some(text) => escape_rfc2253(&mut out, &text),
                None => {
                    out.push('#');
                    out.push_str(&hex::encode_upper(attr.attr_value().data));
                }
            }
        }
    }
    out
}

fn escape_rfc2253(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

fn subject_alt_names(cert: &X509Certificate) -> Option<San> {
    let ext = cert.subject_alternative_name().ok().flatten()?;
    let mut san = San::default();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(s) => san.dns.push((*s).to_string()),
            GeneralName::URI(s) => san.uri.push((*s).to_string()),
            GeneralName::RFC822Name(s) => san.email.push((*s).to_string()),
            GeneralName::IPAddress(bytes) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                    san.ip.push(IpAddr::from(v4));
                } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                    san.ip.push(IpAddr::from(v6));
                }
            }
            _ => {}
        }
    }
    Some(san)
}

/// `x509_check_cert_hostname`: does `host` match a DNS SAN (or, without any, a subject CN)?
pub fn matches_hostname(cert: &CertInfo, host: &str) -> bool {
    let dns_names = cert.san.as_ref().map(|s| s.dns.as_slice()).unwrap_or_default();
    let candidates: &[String] = if dns_names.is_empty() { &cert.common_names } else { dns_names };
    candidates.iter().any(|pattern| hostname_matches(pattern, host))
}

/// RFC 6125 matching as OpenSSL does it: case-insensitive, a wildcard only as the whole left-most label.
fn hostname_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    if let Some(suffix) = pattern.strip_prefix("*.") {
        if !suffix.contains('.') {
            return false;
        }
        return match host.split_once('.') {
            Some((first, rest)) => !first.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        };
    }
    pattern.eq_ignore_ascii_case(host)
}

/// What makes two x509.log records duplicates (`X509::LogCertHash`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DedupKey {
    fingerprint: String,
    host_cert: bool,
    client_cert: bool,
}

/// `X509::known_log_certs`: certificates already logged, forgotten one day (network time) after they
/// were first logged (`&create_expire=relog_known_certificates_after`).
#[derive(Debug, Default)]
pub struct KnownCerts {
    first_logged: HashMap<DedupKey, f64>,
}

const RELOG_AFTER_SECS: f64 = 86400.0;
const MAX_KNOWN_CERTS: usize = 1_000_000;

impl KnownCerts {
    /// Records the certificate and says whether it should be logged now.
    pub fn should_log(&mut self, fingerprint: &str, host_cert: bool, client_cert: bool, now: f64) -> bool {
        let key = DedupKey { fingerprint: fingerprint.to_string(), host_cert, client_cert };
        if let Some(&t) = self.first_logged.get(&key)
            && now - t < RELOG_AFTER_SECS
        {
            return false;
        }
        if self.first_logged.len() >= MAX_KNOWN_CERTS {
            self.first_logged.retain(|_, t| now - *t < RELOG_AFTER_SECS);
        }
        if self.first_logged.len() < MAX_KNOWN_CERTS {
            self.first_logged.insert(key, now);
        }
        true
    }
}

/// The process-wide dedup table (Zeek keeps one per worker).
pub static KNOWN_CERTS: Mutex<Option<KnownCerts>> = Mutex::new(None);

/// Whether the global table lets this certificate be logged.
pub fn should_log_globally(fingerprint: &str, host_cert: bool, client_cert: bool, now: f64) -> bool {
    let mut guard = KNOWN_CERTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.get_or_insert_with(KnownCerts::default).should_log(fingerprint, host_cert, client_cert, now)
}

fn opt_vec(items: Option<&Vec<String>>) -> Value {
    match items {
        Some(v) if !v.is_empty() => Value::str_vec(v.iter().cloned()),
        _ => Value::Unset,
    }
}

/// The x509.log values for one certificate.
pub fn log_values(ts: f64, fp: &str, cert: &CertInfo, host_cert: bool, client_cert: bool) -> Vec<Value> {
    let san = cert.san.as_ref();
    let ips = match san {
        Some(s) if !s.ip.is_empty() => Value::Vector(s.ip.iter().map(|ip| Value::Addr(*ip)).collect()),
        _ => Value::Unset,
    };
    vec![
        Value::Time(ts),
        Value::str(fp),
        Value::Count(cert.version),
        Value::str(&cert.serial),
        Value::str(&cert.subject),
        Value::str(&cert.issuer),
        Value::Time(cert.not_before),
        Value::Time(cert.not_after),
        Value::str(&cert.key_alg),
        Value::str(&cert.sig_alg),
        Value::opt_str(cert.key_type),
        Value::opt_count(cert.key_length),
        Value::opt_str(cert.exponent.clone()),
        Value::opt_str(cert.curve.clone()),
        opt_vec(san.map(|s| &s.dns)),
        opt_vec(san.map(|s| &s.uri)),
        opt_vec(san.map(|s| &s.email)),
        ips,
        cert.basic_constraints.map_or(Value::Unset, |(ca, _)| Value::Bool(ca)),
        Value::opt_count(cert.basic_constraints.and_then(|(_, len)| len)),
        Value::Bool(host_cert),
        Value::Bool(client_cert),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_drop_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0x99, 0xFA]), "99FA");
        assert_eq!(serial_hex(&[0x0D, 0xF4, 0xF2]), "0DF4F2");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "00");
    }

    #[test]
    fn integers_print_in_decimal() {
        assert_eq!(big_endian_decimal(&[0x01, 0x00, 0x01]), "65537");
        assert_eq!(big_endian_decimal(&[]), "0");
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(hostname_matches("*.gstatic.com", "ssl.gstatic.com"));
        assert!(hostname_matches("*.GSTATIC.com", "SSL.gstatic.com"));
        assert!(!hostname_matches("*.gstatic.com", "gstatic.com"));
        assert!(!hostname_matches("*.gstatic.com", "a.b.gstatic.com"));
        assert!(!hostname_matches("*.com", "a.com"));
        assert!(hostname_matches("gstatic.com", "gstatic.com"));
    }

    #[test]
    fn escapes_follow_rfc2253() {
        let mut s = String::new();
        escape_rfc2253(&mut s, " a,b+c ");
        assert_eq!(s, "\\ a\\,b\\+c\\ ");
    }

    #[test]
    fn dedup_relogs_after_a_day() {
        let mut known = KnownCerts::default();
        assert!(known.should_log("ab", true, false, 0.0));
        assert!(!known.should_log("ab", true, false, 100.0));
        assert!(known.should_log("ab", false, false, 100.0));
        assert!(known.should_log("ab", true, false, 90000.0));
    }
}
