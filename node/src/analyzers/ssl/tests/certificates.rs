//! x509.log fields for certificates the dev traces do not have, built with the DER builder. The expected
//! values follow `X509::ParseCertificate` (src/file_analysis/analyzer/x509/X509.cc) with OpenSSL 3 and
//! zeek/zeek#5344 (key type and length of any key OpenSSL loads); each was also checked against OpenSSL 3.0
//! itself (`X509_NAME_print_ex(XN_FLAG_RFC2253)`, `i2a_ASN1_INTEGER`, `i2t_ASN1_OBJECT`, `EVP_PKEY_get_bits`).

use super::build::*;
use super::*;

/// The x509.log columns from `certificate.version` on, for `cert` sent as a TLS 1.2 server's only certificate.
fn x509_row(cert: &Cert) -> String {
    let h = run_flow(&server_certificates(&[cert.der()]));
    let x509 = h.logged("x509");
    assert_eq!(x509.len(), 1, "one x509 record");
    tsv_fields(x509[0], 2).join("\t")
}

/// A client hello, then a server hello with `certs`.
pub(super) fn server_certificates(certs: &[Vec<u8>]) -> Vec<(bool, Vec<u8>)> {
    vec![
        (true, handshakes(TLS10, &[client_hello(&[], &[0xC02F], &[sni(&[(0, "www.example.com")])])])),
        (false, handshakes(TLS12, &[server_hello(TLS12, &[7; 32], &[], 0xC02F, &[]), certificate(certs)])),
    ]
}

#[test]
fn distinguished_names_escape_like_openssl_rfc2253() {
    let mut cert = Cert::new("unused");
    cert.subject = name(&[
        &[("2.5.4.6", PRINTABLE, b"DE")],
        &[("2.5.4.7", UTF8, "München".as_bytes())],
        &[("2.5.4.10", UTF8, br#"Caf + Co, "Ltd";<x>"#)],
        &[("2.5.4.11", UTF8, b" lead#")],
        // A multi-valued RDN, a Latin-1 T61String and a BMPString.
        &[("2.5.4.3", T61, b"#h\xE9st"), ("0.9.2342.19200300.100.1.1", BMP, &[0x03, 0xA9, 0, b'!'])],
        // An attribute type OpenSSL has no name for, and a known one holding a non-string.
        &[("1.2.3.4", UTF8, b"odd")],
        &[("2.5.4.46", BITS, &[0x00, 0xAB])],
        &[("1.2.840.113549.1.9.1", 0x16, b"a\x01b@c")],
    ]);
    let row = x509_row(&cert);
    let subject = row.split('\t').nth(2).unwrap();
    // Last entry first (the values of the multi-valued RDN too); `\XX` for control bytes and for each byte of a non-ASCII character (ESC_MSB, after
    // Latin-1 and UCS-2 are turned into UTF-8); `#` and the DER for the unknown type and the octet string.
    // The TSV writer then doubles each backslash.
    assert_eq!(
        subject,
        concat!(
            r"emailAddress=a\\01b@c,dnQualifier=#030200AB,1.2.3.4=#0C036F6464,UID=\\CE\\A9!+CN=\\#h\\C3\\A9st,",
            r#"OU=\\ lead#,O=Caf \\+ Co\\, \\"Ltd\\"\\;\\<x\\>,L=M\\C3\\BCnchen,C=DE"#
        )
    );
}

#[test]
fn ec_key_negative_serial_and_every_san_kind() {
    let mut cert = Cert::new("ec.example.com");
    cert.serial = vec![0xFB];
    cert.signature = "1.2.840.10045.4.3.3";
    cert.key = ec_key("1.3.132.0.34", &hex::decode(P384_GENERATOR).unwrap());
    cert.extensions = vec![
        subject_alt_name(&[
            general_name(2, b"ec.example.com"),
            general_name(2, b"*.ec.example.com"),
            general_name(1, b"admin@example.com"),
            general_name(6, b"https://example.com/x"),
            general_name(7, &[192, 0, 2, 7]),
            general_name(7, &[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            // An IP address of the wrong length is skipped (`x509_san_ip_length`).
            general_name(7, &[10, 0, 0]),
        ]),
        basic_constraints(true, Some(0)),
    ];
    assert_eq!(
        x509_row(&cert),
        "3\t-05\tCN=ec.example.com,C=US\tCN=ec.example.com,C=US\t1735689600.000000\t1767225599.000000\t\
         id-ecPublicKey\tecdsa-with-SHA384\tecdsa\t384\t-\tsecp384r1\tec.example.com,*.ec.example.com\t\
         https://example.com/x\tadmin@example.com\t192.0.2.7,2001:db8::1\tT\t0\tT\tF"
    );
}

#[test]
fn key_types_beyond_rsa_and_ec() {
    let key_columns = |key: Vec<u8>, signature: &'static str| {
        let mut cert = Cert::new("k.example");
        cert.key = key;
        cert.signature = signature;
        x509_row(&cert).split('\t').skip(6).take(6).collect::<Vec<_>>().join(" ")
    };
    // DSA: the bit size of p.
    assert_eq!(key_columns(dsa_key(2048), "2.16.840.1.101.3.4.3.2"), "dsaEncryption dsa_with_SHA256 dsa 2048 - -");
    // Keys OpenSSL loads through a provider: its type name and EVP_PKEY_get_bits.
    assert_eq!(key_columns(bare_key("1.3.101.112", 32), "1.3.101.112"), "ED25519 ED25519 ED25519 256 - -");
    assert_eq!(key_columns(bare_key("1.3.101.113", 57), "1.3.101.113"), "ED448 ED448 ED448 456 - -");
    // scripts.base.protocols.ssl.ml-dsa-44-cert: ML-DSA-44 ... ML-DSA-44 10496.
    assert_eq!(
        key_columns(bare_key("2.16.840.1.101.3.4.3.17", 1312), "2.16.840.1.101.3.4.3.17"),
        "ML-DSA-44 ML-DSA-44 ML-DSA-44 10496 - -"
    );
    // RSA-PSS keys are not EVP_PKEY_RSA: no exponent.
    let pss = rsa_key_labelled("1.2.840.113549.1.1.10", false, 3072, &[3]);
    assert_eq!(key_columns(pss, "1.2.840.113549.1.1.10"), "rsassaPss rsassaPss RSA-PSS 3072 - -");
    // RDP's md5WithRSAEncryption key algorithm is read as RSA (Zeek relabels it before loading the key).
    let rdp = rsa_key_labelled("1.2.840.113549.1.1.4", true, 512, &[1, 0, 1]);
    assert_eq!(key_columns(rdp, "1.2.840.113549.1.1.4"), "md5WithRSAEncryption md5WithRSAEncryption rsa 512 65537 -");
    // A curve OpenSSL does not know, or an algorithm it does not know: the key does not load.
    let point = hex::decode(P384_GENERATOR).unwrap();
    assert_eq!(
        key_columns(ec_key("1.3.132.0.99", &point), "1.2.840.10045.4.3.2"),
        "id-ecPublicKey ecdsa-with-SHA256 - - - -"
    );
    // An unknown signature algorithm has no NID; `OBJ_nid2obj(NID_undef)` prints as the empty string.
    assert_eq!(key_columns(bare_key("1.2.3.9", 16), "1.2.3.5"), "1.2.3.9 (empty) - - - -");
}

/// Validity times go through Zeek's own `GetTimeFromAsn1` (X509Common.cc), not a strict ASN.1 time parser.
#[test]
fn validity_times_as_zeek_reads_them() {
    let dates = |not_before: Vec<u8>, not_after: Vec<u8>| {
        let mut cert = Cert::new("dates.example");
        cert.not_before = not_before;
        cert.not_after = not_after;
        x509_row(&cert).split('\t').skip(4).take(2).collect::<Vec<_>>().join(" ")
    };
    // Before 1970 and after 2049 (GeneralizedTime).
    assert_eq!(
        dates(tlv(0x17, b"500101000000Z"), tlv(0x18, b"20600101000000Z")),
        "-631152000.000000 2840140800.000000"
    );
    // Times OpenSSL takes but a strict parser refuses: month 13 carries into the next year, a UTCTime with an
    // offset instead of Z reads as 0, and a GeneralizedTime offset of +0100 adds 60 seconds.
    assert_eq!(dates(tlv(0x17, b"251301000000Z"), tlv(0x17, b"250101000000+0100")), "1767225600.000000 0.000000");
    assert_eq!(
        dates(tlv(0x17, b"2501010000Z"), tlv(0x18, b"20250101000000+0100")),
        "1735689600.000000 1735689660.000000"
    );
}

/// `d2i_X509` fails on a serial that is not a minimal integer, on a name value whose type is not one of
/// OpenSSL's `B_ASN1_PRINTABLE` (a VisibleString here), and on a UTF8String, BMPString or UniversalString
/// that is not valid Unicode; Zeek then logs no x509 record for that certificate. Latin-1 bytes in a
/// PrintableString are taken (and escaped).
#[test]
fn certificates_openssl_rejects_are_not_logged() {
    let mut bad_serial = Cert::new("bad-serial.example");
    bad_serial.serial = vec![0x00, 0x01];
    let with_cn = |tag: u8, value: &[u8]| {
        let mut cert = Cert::new("unused");
        cert.subject = name(&[&[("2.5.4.3", tag, value)]]);
        cert.der()
    };
    let rejected = [
        bad_serial.der(),
        with_cn(VISIBLE, b"x"),
        with_cn(UTF8, b"a\xff\xfeb"),
        with_cn(UTF8, b"\xED\xA0\x80"),
        with_cn(BMP, &[0, 0x41, 0]),
        with_cn(BMP, &[0xD8, 0x00, 0, 0x41]),
        with_cn(0x1C, &[0x00, 0x11, 0, 0]),
    ];
    let mut certs = rejected.to_vec();
    certs.push(with_cn(PRINTABLE, b"a\xe9"));
    let h = run_flow(&server_certificates(&certs));
    let x509 = h.logged("x509");
    assert_eq!(x509.len(), 1);
    assert_eq!(tsv_fields(x509[0], 4)[0], r"CN=a\\C3\\A9");
}
