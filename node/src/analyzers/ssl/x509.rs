//! x509.log: one record per certificate seen in a TLS handshake, formatted as Zeek's X509 file analyzer
//! (OpenSSL names and RFC 2253 distinguished names) and deduplicated as `base/files/x509/main.zeek` does.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::prelude::*;

use crate::logs::{Schema, Value, f};

pub(crate) mod validity;

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
    /// The subject's last common name, for hostname checks when there is no DNS SAN.
    pub last_common_name: Option<String>,
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

/// Parses a DER certificate; `None` when OpenSSL would not decode it (Zeek then logs nothing for it).
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let times = validity::zeek_validity(der);
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert_info(&cert, times),
        Err(_) => {
            // OpenSSL takes times x509-parser refuses; Zeek reads them itself anyway.
            let plain = validity::with_plain_validity(der)?;
            let (_, cert) = X509Certificate::from_der(&plain).ok()?;
            cert_info(&cert, times)
        }
    }
}

fn cert_info(cert: &X509Certificate, zeek_times: Option<(f64, f64)>) -> Option<CertInfo> {
    let tbs = &cert.tbs_certificate;
    if !openssl_decodes_name(tbs.subject()) || !openssl_decodes_name(tbs.issuer()) {
        return None;
    }
    let spki = tbs.public_key();
    let key = describe_key(spki);
    let (not_before, not_after) = zeek_times
        .unwrap_or_else(|| (tbs.validity().not_before.timestamp() as f64, tbs.validity().not_after.timestamp() as f64));
    Some(CertInfo {
        version: u64::from(tbs.version().0) + 1,
        // OpenSSL refuses the whole certificate when the serial is not a minimal DER integer.
        serial: serial_hex(tbs.raw_serial())?,
        subject: rfc2253(tbs.subject()),
        issuer: rfc2253(tbs.issuer()),
        not_before,
        not_after,
        key_alg: key_algorithm_name(&spki.algorithm.algorithm.to_id_string()),
        sig_alg: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
        key_type: key.key_type,
        key_length: key.length,
        exponent: key.exponent,
        curve: key.curve,
        san: subject_alt_names(cert),
        basic_constraints: cert
            .basic_constraints()
            .ok()
            .flatten()
            .map(|bc| (bc.value.ca, bc.value.path_len_constraint.map(u64::from))),
        last_common_name: tbs.subject().iter_common_name().last().and_then(attribute_text),
    })
}

/// The serial as `i2a_ASN1_INTEGER` prints it: the magnitude in upper-case hex bytes, `-` before a negative one
/// (CAs do issue serials with the high bit set and no sign byte). `None` for an encoding OpenSSL rejects
/// (`c2i_ibuf`: empty, or a redundant leading `00`/`FF` byte).
fn serial_hex(raw: &[u8]) -> Option<String> {
    let (&first, rest) = raw.split_first()?;
    let negative = first & 0x80 != 0;
    let padded = match first {
        0 => !rest.is_empty(),
        0xFF => rest.iter().any(|&b| b != 0),
        _ => false,
    };
    if padded && rest.first().is_some_and(|&second| (second & 0x80 != 0) == negative) {
        return None;
    }
    let magnitude = if negative { twos_complement(raw) } else { raw.to_vec() };
    let start = magnitude.iter().position(|&b| b != 0).unwrap_or(magnitude.len() - 1);
    let sign = if negative { "-" } else { "" };
    Some(format!("{sign}{}", hex::encode_upper(&magnitude[start..])))
}

/// The magnitude of a negative big-endian two's-complement integer.
fn twos_complement(raw: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = raw.iter().map(|b| !b).collect();
    for byte in out.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    out
}

struct KeyDescription {
    key_type: Option<&'static str>,
    length: Option<u64>,
    exponent: Option<String>,
    curve: Option<String>,
}

const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// RDP servers label their RSA keys md5WithRSAEncryption; Zeek reads them as RSA keys all the same.
const OID_MD5_WITH_RSA: &str = "1.2.840.113549.1.1.4";
const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_DSA: &str = "1.2.840.10040.4.1";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// What `ParseCertificate` learns from the key as OpenSSL 3 loads it (zeek/zeek#5344): RSA, DSA and EC keys by
/// name with their details, any other key OpenSSL knows by its provider's type name; the length is
/// `EVP_PKEY_get_bits` (modulus, DSA `p`, EC group order, fixed sizes for the others). A key OpenSSL cannot
/// load (an unknown algorithm or curve, a malformed key) leaves every field unset.
fn describe_key(spki: &SubjectPublicKeyInfo) -> KeyDescription {
    let mut key = KeyDescription { key_type: None, length: None, exponent: None, curve: None };
    let key_bits = &spki.subject_public_key.data;
    match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_RSA_ENCRYPTION | OID_MD5_WITH_RSA => {
            if let Ok((_, rsa)) = x509_parser::public_key::RSAPublicKey::from_der(key_bits) {
                key.key_type = Some("rsa");
                key.length = Some(bit_length(rsa.modulus));
                key.exponent = Some(big_endian_decimal(rsa.exponent));
            }
        }
        OID_RSASSA_PSS => {
            if let Ok((_, rsa)) = x509_parser::public_key::RSAPublicKey::from_der(key_bits) {
                key.key_type = Some("RSA-PSS");
                key.length = Some(bit_length(rsa.modulus));
            }
        }
        OID_DSA => {
            key.key_type = Some("dsa");
            key.length = spki.algorithm.parameters.as_ref().and_then(dsa_prime_bits);
        }
        OID_EC_PUBLIC_KEY => {
            let curve_oid = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            if let Some((name, bits)) = curve_oid.and_then(|oid| named_curve(&oid.to_id_string())) {
                key.key_type = Some("ecdsa");
                key.curve = Some(name.to_string());
                key.length = Some(bits);
            }
        }
        other => {
            if let Some((name, bits)) = provider_key(other, key_bits.len()) {
                key.key_type = Some(name);
                key.length = Some(bits);
            }
        }
    }
    key
}

/// The bit size of a DSA key's prime `p` (the first integer of its `Dss-Parms`).
fn dsa_prime_bits(params: &Any) -> Option<u64> {
    let (_, p) = x509_parser::der_parser::der::parse_der_integer(params.data).ok()?;
    Some(bit_length(p.as_slice().ok()?))
}

/// Keys OpenSSL 3 loads through a provider: `EVP_PKEY_get0_type_name` and `EVP_PKEY_get_bits`.
fn provider_key(oid: &str, public_key_len: usize) -> Option<(&'static str, u64)> {
    let (name, bits) = match oid {
        "1.3.101.110" => ("X25519", 253),
        "1.3.101.111" => ("X448", 448),
        "1.3.101.112" => ("ED25519", 256),
        "1.3.101.113" => ("ED448", 456),
        // ML-DSA reports eight bits per byte of its public key (1312 bytes for ML-DSA-44: 10496).
        "2.16.840.1.101.3.4.3.17" => ("ML-DSA-44", 0),
        "2.16.840.1.101.3.4.3.18" => ("ML-DSA-65", 0),
        "2.16.840.1.101.3.4.3.19" => ("ML-DSA-87", 0),
        _ => return None,
    };
    Some((name, if bits == 0 { public_key_len as u64 * 8 } else { bits }))
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

/// `i2t_ASN1_OBJECT` of the key algorithm: OpenSSL's long name, or the dotted OID when OpenSSL has none.
fn key_algorithm_name(oid: &str) -> String {
    long_name(oid).map_or_else(|| oid.to_string(), str::to_string)
}

/// `i2t_ASN1_OBJECT(OBJ_nid2obj(X509_get_signature_nid()))`: an OID OpenSSL does not know has no NID, and the
/// object of `NID_undef` prints as the empty string.
fn signature_name(oid: &str) -> String {
    long_name(oid).unwrap_or_default().to_string()
}

/// OpenSSL's long names (`OBJ_nid2ln`) of the key and signature algorithms certificates use.
fn long_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.3" => "md4WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.7" => "rsaesOaep",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.113549.1.1.15" => "sha512-224WithRSAEncryption",
        "1.2.840.113549.1.1.16" => "sha512-256WithRSAEncryption",
        "1.2.840.113549.1.3.1" => "dhKeyAgreement",
        "1.3.14.3.2.3" => "md5WithRSA",
        "1.3.14.3.2.12" => "dsaEncryption-old",
        "1.3.14.3.2.13" => "dsaWithSHA",
        "1.3.14.3.2.15" => "shaWithRSAEncryption",
        "1.3.14.3.2.27" => "dsaWithSHA1-old",
        "1.3.14.3.2.29" => "sha1WithRSA",
        "2.5.8.1.1" => "rsa",
        "1.2.840.10045.2.1" => "id-ecPublicKey",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.2" => "ecdsa-with-Recommended",
        "1.2.840.10045.4.3" => "ecdsa-with-Specified",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10046.2.1" => "X9.42 DH",
        "1.2.840.10040.4.1" => "dsaEncryption",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "2.16.840.1.101.3.4.3.1" => "dsa_with_SHA224",
        "2.16.840.1.101.3.4.3.2" => "dsa_with_SHA256",
        "2.16.840.1.101.3.4.3.3" => "dsa_with_SHA384",
        "2.16.840.1.101.3.4.3.4" => "dsa_with_SHA512",
        "2.16.840.1.101.3.4.3.9" => "ecdsa_with_SHA3-224",
        "2.16.840.1.101.3.4.3.10" => "ecdsa_with_SHA3-256",
        "2.16.840.1.101.3.4.3.11" => "ecdsa_with_SHA3-384",
        "2.16.840.1.101.3.4.3.12" => "ecdsa_with_SHA3-512",
        "2.16.840.1.101.3.4.3.13" => "RSA-SHA3-224",
        "2.16.840.1.101.3.4.3.14" => "RSA-SHA3-256",
        "2.16.840.1.101.3.4.3.15" => "RSA-SHA3-384",
        "2.16.840.1.101.3.4.3.16" => "RSA-SHA3-512",
        "2.16.840.1.101.3.4.3.17" => "ML-DSA-44",
        "2.16.840.1.101.3.4.3.18" => "ML-DSA-65",
        "2.16.840.1.101.3.4.3.19" => "ML-DSA-87",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        "1.2.156.10197.1.301" => "sm2",
        "1.2.156.10197.1.501" => "SM2-with-SM3",
        "1.2.643.2.2.3" => "GOST R 34.11-94 with GOST R 34.10-2001",
        "1.2.643.2.2.19" => "GOST R 34.10-2001",
        "1.2.643.7.1.1.1.1" => "GOST R 34.10-2012 with 256 bit modulus",
        "1.2.643.7.1.1.1.2" => "GOST R 34.10-2012 with 512 bit modulus",
        "1.2.643.7.1.1.3.2" => "GOST R 34.10-2012 with GOST R 34.11-2012 (256 bit)",
        "1.2.643.7.1.1.3.3" => "GOST R 34.10-2012 with GOST R 34.11-2012 (512 bit)",
        _ => return None,
    })
}

/// The group name OpenSSL 3 gives a named curve and the bit size of its order (`EVP_PKEY_get_bits`). Curves
/// missing here are ones this table does not know; OpenSSL fails to load keys on curves it does not know.
fn named_curve(oid: &str) -> Option<(&'static str, u64)> {
    Some(match oid {
        "1.2.840.10045.3.1.1" => ("prime192v1", 192),
        "1.2.840.10045.3.1.7" => ("prime256v1", 256),
        "1.3.132.0.10" => ("secp256k1", 256),
        "1.3.132.0.31" => ("secp192k1", 192),
        "1.3.132.0.33" => ("secp224r1", 224),
        "1.3.132.0.34" => ("secp384r1", 384),
        "1.3.132.0.35" => ("secp521r1", 521),
        "1.3.36.3.3.2.8.1.1.1" => ("brainpoolP160r1", 160),
        "1.3.36.3.3.2.8.1.1.3" => ("brainpoolP192r1", 192),
        "1.3.36.3.3.2.8.1.1.5" => ("brainpoolP224r1", 224),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", 256),
        "1.3.36.3.3.2.8.1.1.9" => ("brainpoolP320r1", 320),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", 384),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", 512),
        _ => return None,
    })
}

/// OpenSSL's short names (`OBJ_nid2sn`) of the attribute types names carry; `None` for an OID without one.
fn attribute_short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
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
        "2.5.4.14" => "searchGuide",
        "2.5.4.15" => "businessCategory",
        "2.5.4.16" => "postalAddress",
        "2.5.4.17" => "postalCode",
        "2.5.4.18" => "postOfficeBox",
        "2.5.4.19" => "physicalDeliveryOfficeName",
        "2.5.4.20" => "telephoneNumber",
        "2.5.4.21" => "telexNumber",
        "2.5.4.22" => "teletexTerminalIdentifier",
        "2.5.4.23" => "facsimileTelephoneNumber",
        "2.5.4.24" => "x121Address",
        "2.5.4.25" => "internationaliSDNNumber",
        "2.5.4.26" => "registeredAddress",
        "2.5.4.27" => "destinationIndicator",
        "2.5.4.28" => "preferredDeliveryMethod",
        "2.5.4.29" => "presentationAddress",
        "2.5.4.30" => "supportedApplicationContext",
        "2.5.4.31" => "member",
        "2.5.4.32" => "owner",
        "2.5.4.33" => "roleOccupant",
        "2.5.4.34" => "seeAlso",
        "2.5.4.35" => "userPassword",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.47" => "enhancedSearchGuide",
        "2.5.4.48" => "protocolInformation",
        "2.5.4.49" => "distinguishedName",
        "2.5.4.50" => "uniqueMember",
        "2.5.4.51" => "houseIdentifier",
        "2.5.4.54" => "dmdName",
        "2.5.4.65" => "pseudonym",
        "2.5.4.72" => "role",
        "2.5.4.97" => "organizationIdentifier",
        "2.5.4.98" => "c3",
        "2.5.4.99" => "n3",
        "2.5.4.100" => "dnsName",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "1.2.840.113549.1.9.7" => "challengePassword",
        "1.2.840.113549.1.9.8" => "unstructuredAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.3" => "mail",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// Whether `d2i_X509` takes every attribute value of this name: universal types in OpenSSL's
/// `B_ASN1_PRINTABLE` set (strings, BIT STRING, SEQUENCE and a few odd tags) whose text converts to UTF-8
/// (the name's canonical form). INTEGER, OCTET STRING, the time types, VisibleString, GeneralString, or a
/// UTF8String, BMPString or UniversalString that is not valid Unicode make OpenSSL refuse the whole
/// certificate (checked against OpenSSL 3).
fn openssl_decodes_name(name: &X509Name) -> bool {
    name.iter_attributes().all(|attr| {
        let value = attr.attr_value();
        let header = &value.header;
        header.class() == Class::Universal
            && match header.tag().0 {
                16 => header.constructed(),
                3 | 7 | 8 | 9 | 11 | 13..=15 | 18..=20 | 22 | 29 => !header.constructed(),
                12 | 28 | 30 => !header.constructed() && is_valid_unicode(header.tag(), value.data),
                _ => false,
            }
    })
}

fn is_valid_unicode(tag: Tag, data: &[u8]) -> bool {
    match tag {
        Tag::Utf8String => std::str::from_utf8(data).is_ok(),
        Tag::BmpString => {
            data.len().is_multiple_of(2)
                && data.chunks_exact(2).all(|c| !(0xD800..=0xDFFF).contains(&u16::from_be_bytes([c[0], c[1]])))
        }
        _ => {
            data.len().is_multiple_of(4)
                && data.chunks_exact(4).all(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).is_some())
        }
    }
}

/// The text of an attribute value decoded to Unicode (for hostname checks), when it is a string.
fn attribute_text(attr: &AttributeTypeAndValue) -> Option<String> {
    let bytes = printed_string_bytes(attr.attr_value())?;
    match attr.attr_value().tag() {
        // Each byte stood for itself; UTF-8 content reads back as UTF-8.
        Tag::Utf8String => Some(String::from_utf8_lossy(&bytes).into_owned()),
        _ => String::from_utf8(bytes).ok(),
    }
}

/// The bytes `do_print_ex` escapes for a string value, with `ASN1_STRFLGS_UTF8_CONVERT`: a UTF8String byte for
/// byte (OpenSSL reads it one byte per character), the one-byte string types as Latin-1 and BMP/Universal
/// strings as their code points, each turned into UTF-8. `None` for types OpenSSL dumps as DER instead.
fn printed_string_bytes(value: &Any) -> Option<Vec<u8>> {
    let data = value.data;
    let code_points: Vec<u32> = match value.tag() {
        Tag::Utf8String => return Some(data.to_vec()),
        Tag::NumericString | Tag::PrintableString | Tag::T61String | Tag::Ia5String => {
            data.iter().map(|&b| u32::from(b)).collect()
        }
        Tag::BmpString => data.chunks_exact(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).collect(),
        Tag::UniversalString => data.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
        _ => return None,
    };
    let mut out = Vec::with_capacity(code_points.len());
    for c in code_points {
        push_utf8(&mut out, c);
    }
    Some(out)
}

/// `UTF8_putc`: encodes any code point up to 31 bits, surrogates included (unlike `char`).
fn push_utf8(out: &mut Vec<u8>, c: u32) {
    let continuation = |shift: u32| 0x80 | ((c >> shift) & 0x3F) as u8;
    match c {
        0..=0x7F => out.push(c as u8),
        0x80..=0x7FF => out.extend([0xC0 | (c >> 6) as u8, continuation(0)]),
        0x800..=0xFFFF => out.extend([0xE0 | (c >> 12) as u8, continuation(6), continuation(0)]),
        0x1_0000..=0x1F_FFFF => {
            out.extend([0xF0 | (c >> 18) as u8, continuation(12), continuation(6), continuation(0)]);
        }
        0x20_0000..=0x3FF_FFFF => {
            out.extend([0xF8 | (c >> 24) as u8, continuation(18), continuation(12), continuation(6), continuation(0)])
        }
        _ => out.extend([
            0xFC | ((c >> 30) & 0x01) as u8,
            continuation(24),
            continuation(18),
            continuation(12),
            continuation(6),
            continuation(0),
        ]),
    }
}

/// A distinguished name the way Zeek prints it: `X509_NAME_print_ex` with `XN_FLAG_RFC2253`, last entry first,
/// `,` between RDNs and `+` inside one, short field names, RFC 2253 escapes plus `\XX` for control bytes and
/// for every byte above 0x7F (`ASN1_STRFLGS_ESC_MSB`), and `#` with the DER in hex for values that are not
/// strings or whose attribute type OpenSSL does not know (`XN_FLAG_DUMP_UNKNOWN_FIELDS`).
pub fn rfc2253(name: &X509Name) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    // XN_FLAG_DN_REV reverses the list of entries, so the values of a multi-valued RDN come out reversed too.
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let attrs: Vec<_> = rdn.iter().collect();
        for (j, attr) in attrs.iter().rev().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            let short_name = attribute_short_name(&oid);
            out.push_str(short_name.unwrap_or(&oid));
            out.push('=');
            match short_name.and_then(|_| printed_string_bytes(attr.attr_value())) {
                Some(bytes) => escape_rfc2253(&mut out, &bytes),
                None => dump_der(&mut out, attr.attr_value()),
            }
        }
    }
    out
}

/// `do_dump` with `ASN1_STRFLGS_DUMP_DER`: `#` and the value's whole DER encoding in upper-case hex.
fn dump_der(out: &mut String, value: &Any) {
    let header = &value.header;
    let class_bits = (header.class() as u8) << 6;
    let constructed = if header.constructed() { 0x20 } else { 0 };
    let mut der = match header.raw_tag() {
        Some(raw) => raw.to_vec(),
        None => vec![class_bits | constructed | (header.tag().0 as u8 & 0x1F)],
    };
    let len = value.data.len();
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => der.push(short),
        _ => {
            let bytes = len.to_be_bytes();
            let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
            der.push(0x80 | (bytes.len() - first) as u8);
            der.extend_from_slice(&bytes[first..]);
        }
    }
    der.extend_from_slice(value.data);
    out.push('#');
    out.push_str(&hex::encode_upper(der));
}

/// `do_esc_char` with `ESC_2253 | ESC_CTRL | ESC_MSB`, one byte at a time.
fn escape_rfc2253(out: &mut String, value: &[u8]) {
    let last = value.len().saturating_sub(1);
    for (i, &b) in value.iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0..=0x1F | 0x7F..=0xFF => {
                let _ = write!(out, "\\{b:02X}");
            }
            _ => out.push(char::from(b)),
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

/// `x509_check_cert_hostname`: does `host` match a DNS SAN or, without any, the subject's last CN?
pub fn matches_hostname(cert: &CertInfo, host: &str) -> bool {
    let dns_names = cert.san.as_ref().map(|s| s.dns.as_slice()).unwrap_or_default();
    if dns_names.is_empty() {
        return cert.last_common_name.as_deref().is_some_and(|cn| hostname_matches(cn, host));
    }
    dns_names.iter().any(|pattern| hostname_matches(pattern, host))
}

/// `x509_check_hostname`: names compare without regard to ASCII case; a wildcard may only end the leftmost
/// label, after an optional prefix the host's label must start with, stands for one label, and needs two
/// more labels after it (`*.a.b`).
fn hostname_matches(pattern: &str, host: &str) -> bool {
    let Some((first, suffix)) = pattern.split_once('.').filter(|(first, _)| first.ends_with('*')) else {
        return pattern.eq_ignore_ascii_case(host);
    };
    let prefix = &first[..first.len() - 1];
    if prefix.contains('*') || suffix.contains('*') || !suffix.contains('.') {
        return false;
    }
    match host.split_once('.') {
        Some((label, rest)) => {
            !label.is_empty()
                && label.len() >= prefix.len()
                && label.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                && rest.eq_ignore_ascii_case(suffix)
        }
        None => false,
    }
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
#[derive(Debug)]
pub struct KnownCerts {
    first_logged: HashMap<DedupKey, f64>,
    /// A memory bound Zeek's table lacks: past it a new certificate is logged but not remembered.
    cap: usize,
    /// Entries left by the last purge of forgotten ones: the next purge waits for the table to double (or reach
    /// the cap), so a storm of distinct certificates costs a scan per doubling rather than one per certificate.
    purged_len: usize,
    /// When the oldest entry the last purge left is forgotten: a purge before then frees nothing.
    next_forgotten: f64,
    /// Purges so far (a measure of the scans).
    purges: u64,
}

const RELOG_AFTER_SECS: f64 = 86400.0;
const MAX_KNOWN_CERTS: usize = 1_000_000;
/// The table is not purged below this size.
const MIN_PURGE_LEN: usize = 1024;

impl Default for KnownCerts {
    fn default() -> Self {
        Self::with_cap(MAX_KNOWN_CERTS)
    }
}

impl KnownCerts {
    fn with_cap(cap: usize) -> Self {
        KnownCerts { first_logged: HashMap::new(), cap, purged_len: 0, next_forgotten: f64::NEG_INFINITY, purges: 0 }
    }

    /// Records the certificate and says whether it should be logged now.
    pub fn should_log(&mut self, fingerprint: &str, host_cert: bool, client_cert: bool, now: f64) -> bool {
        let key = DedupKey { fingerprint: fingerprint.to_string(), host_cert, client_cert };
        if let Some(&t) = self.first_logged.get(&key)
            && now - t < RELOG_AFTER_SECS
        {
            return false;
        }
        let purge_at = self.purged_len.saturating_mul(2).max(MIN_PURGE_LEN).min(self.cap);
        if self.first_logged.len() >= purge_at && now >= self.next_forgotten {
            self.purge(now);
        }
        if self.first_logged.len() < self.cap || self.first_logged.contains_key(&key) {
            self.first_logged.insert(key, now);
        }
        true
    }

    /// Drops the certificates forgotten by `now`.
    fn purge(&mut self, now: f64) {
        self.first_logged.retain(|_, t| now - *t < RELOG_AFTER_SECS);
        let oldest = self.first_logged.values().copied().fold(f64::INFINITY, f64::min);
        self.next_forgotten = oldest + RELOG_AFTER_SECS;
        self.purged_len = self.first_logged.len();
        self.purges += 1;
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
    /// Distinct certificates, one every 10 s for three days: the table keeps about a day of them (what Zeek's
    /// `&create_expire` keeps, and as much again until the next purge) and is scanned once per doubling; each
    /// certificate is logged again a day after it was first logged.
    #[test]
    fn known_certificates_are_forgotten_after_a_day_and_purged_when_the_table_doubles() {
        let mut known = super::KnownCerts::default();
        let per_day = (super::RELOG_AFTER_SECS / 10.0) as usize;
        let mut peak = 0;
        let n = 3 * 8_640;
        for i in 0..n {
            let now = f64::from(i) * 10.0;
            assert!(known.should_log(&format!("fp{i}"), true, false, now));
            assert!(!known.should_log(&format!("fp{i}"), true, false, now + 1.0));
            peak = peak.max(known.first_logged.len());
        }
        assert!(peak <= 2 * per_day + 1, "{peak} certificates kept, a day is {per_day}");
        assert!(known.purges <= 8, "{} scans", known.purges);
        let end = f64::from(n) * 10.0;
        assert!(known.should_log("fp0", true, false, end), "a day after its first logging");
        assert!(!known.should_log(&format!("fp{}", n - 1), true, false, end));
    }

    /// At the cap, with every certificate younger than a day, a new one is logged but not remembered, and the
    /// table is not scanned again until its oldest entry is forgotten.
    #[test]
    fn a_full_table_is_not_rescanned_for_every_new_certificate() {
        let mut known = super::KnownCerts::with_cap(2_000);
        for i in 0..20_000u32 {
            assert!(known.should_log(&format!("fp{i}"), false, false, f64::from(i)));
        }
        assert_eq!(known.first_logged.len(), 2_000);
        assert!(known.purges <= 3, "{} scans", known.purges);
        assert!(!known.should_log("fp1999", false, false, 20_000.0), "remembered");
        assert!(known.should_log("fp2000", false, false, 20_000.0), "past the cap: not remembered");
        assert!(known.should_log("fp20000", false, false, 86_400.0), "the oldest are forgotten: room again");
        assert!(!known.should_log("fp20000", false, false, 86_401.0));
    }

    use super::*;

    #[test]
    fn serials_drop_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0x99, 0xFA]).as_deref(), Some("99FA"));
        assert_eq!(serial_hex(&[0x0D, 0xF4, 0xF2]).as_deref(), Some("0DF4F2"));
        assert_eq!(serial_hex(&[0x00]).as_deref(), Some("00"));
    }

    /// `i2a_ASN1_INTEGER` prints a negative serial as `-` and its magnitude; `c2i_ibuf` rejects empty and
    /// non-minimal encodings, and with them the certificate.
    #[test]
    fn negative_and_illegal_serials_follow_openssl() {
        assert_eq!(serial_hex(&[0x80]).as_deref(), Some("-80"));
        assert_eq!(serial_hex(&[0xFF]).as_deref(), Some("-01"));
        assert_eq!(serial_hex(&[0xFF, 0x7F]).as_deref(), Some("-81"));
        assert_eq!(serial_hex(&[0xFF, 0x00]).as_deref(), Some("-0100"));
        assert_eq!(serial_hex(&[0xF0, 0x00, 0x01]).as_deref(), Some("-0FFFFF"));
        assert_eq!(serial_hex(&[]), None);
        assert_eq!(serial_hex(&[0x00, 0x01]), None);
        assert_eq!(serial_hex(&[0xFF, 0x80]), None);
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

    /// Every row of Zeek's `bifs.x509_check_hostname` baseline (host, certificate name, result).
    #[test]
    fn hostname_checks_follow_zeeks_baseline() {
        let rows = [
            ("hi", "www.zeek.org", false),
            ("ww.zeek.org", "www.zeek.org", false),
            ("www.zeek.org", "www.zeek.org", true),
            ("www.zeek.org", "*", false),
            ("www.zeek.org", "zeek.org", false),
            ("www.zeek.org", "*.zeek.org", true),
            ("www.zeek.org", "a*.zeek.org", false),
            ("www.zeek.org", "ww*.zeek.org", true),
            ("www.zeek.org", "wa*.zeek.org", false),
            ("www.zeek.org", "ww*.leek.com", false),
            ("www.zeek.org", "*.*.com", false),
            ("", "", true),
            ("www.zeek.org\0testing", "*.zeek.org", false),
            ("zeek.org", "zeek.org", true),
            ("zeek.org", "*.org", false),
            ("a.b.zeek.org", "*.b.zeek.org", true),
            ("a.b.zeek.org", "*.zeek.org", false),
            ("a.b.zeek.org", "*.a.zeek.org", false),
        ];
        for (host, name, expected) in rows {
            assert_eq!(hostname_matches(name, host), expected, "{host} against {name}");
        }
    }

    #[test]
    fn escapes_follow_rfc2253() {
        let mut s = String::new();
        escape_rfc2253(&mut s, b" a,b+c ");
        assert_eq!(s, "\\ a\\,b\\+c\\ ");
        // ESC_MSB and ESC_CTRL: bytes of UTF-8 sequences and control bytes are escaped one by one.
        let mut s = String::new();
        escape_rfc2253(&mut s, "M\u{fc}nchen\t#".as_bytes());
        assert_eq!(s, "M\\C3\\BCnchen\\09#");
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
