//! Replays TLS streams lifted from the oracle pcaps and compares with Zeek's own logs
//! (`/work/shared/oracle/dev/<case>/zeek-default/{ssl,x509}.log`).

use super::*;
use crate::analyzers::testing::Harness;
use crate::logs::LogRecord;

mod baselines;
pub(crate) mod build;
mod certificates;
mod dtls;
mod handshakes;

fn replay(fixture: &[u8], resp_p: u16) -> Harness {
    let mut h = Harness::new(Proto::Tcp, resp_p);
    let mut a = SslAnalyzer::new(Dedup::Local(KnownCerts::default()));
    replay::fixture(&mut h, &mut a, fixture);
    h
}

/// Delivers each `(is_orig, bytes)` as one packet, a millisecond apart from 1000.0 on, then finishes the
/// connection a second after the last.
fn run_flow(flow: &[(bool, Vec<u8>)]) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 443);
    let mut a = SslAnalyzer::new(Dedup::Local(KnownCerts::default()));
    let mut ts = 1000.0;
    for (is_orig, bytes) in flow {
        h.run(ts, |ctx| a.deliver(ctx, *is_orig, bytes));
        ts += 0.001;
    }
    h.run(ts + 1.0, |ctx| a.finish(ctx));
    h
}

/// The TSV text of a record's fields from `from` on (skipping uid and the connection id).
fn tsv_fields(r: &LogRecord, from: usize) -> Vec<String> {
    r.values[from..].iter().map(|v| v.to_tsv()).collect()
}

fn ts_of(r: &LogRecord) -> String {
    tsv_fields(r, 0)[0].clone()
}

fn expect_ssl(h: &Harness, ts: &str, expected: &str) {
    let ssl = h.logged("ssl");
    assert_eq!(ssl.len(), 1, "one ssl record");
    assert_eq!(ts_of(ssl[0]), ts);
    assert_eq!(tsv_fields(ssl[0], 6).join("\t"), expected);
}

fn expect_x509(h: &Harness, expected: &[&str]) {
    let got: Vec<String> = h.logged("x509").iter().map(|r| tsv_fields(r, 0).join("\t")).collect();
    assert_eq!(got, expected);
}

#[test]
fn tls10_with_extensions_and_certificates() {
    let h = replay(include_bytes!("testdata/tls-extensions.bin"), 443);
    expect_ssl(
        &h,
        "1335538392.319381",
        "TLSv10\tTLS_ECDHE_RSA_WITH_RC4_128_SHA\tsecp256r1\tssl.gstatic.com\tF\t-\t-\tT\tCsxknGIti\t\
         a580247a25324adf4add5af648de4ac5798030dfd622f26a5f2280d7528ae244,\
         250da2691be97c9a33ceef7e311c14fb01846e058a99cea9bd1125bd25a0cad5\t(empty)\tT",
    );
    expect_x509(
        &h,
        &[
            "1335538392.343624\ta580247a25324adf4add5af648de4ac5798030dfd622f26a5f2280d7528ae244\t3\t\
             36F5DA5300000000505E\tCN=*.gstatic.com,O=Google Inc,L=Mountain View,ST=California,C=US\t\
             CN=Google Internet Authority,O=Google Inc,C=US\t1334102677.000000\t1365639277.000000\t\
             rsaEncryption\tsha1WithRSAEncryption\trsa\t1024\t65537\t-\t\
             *.gstatic.com,gstatic.com,*.metric.gstatic.com\t-\t-\t-\t-\t-\tT\tF",
            "1335538392.343624\t250da2691be97c9a33ceef7e311c14fb01846e058a99cea9bd1125bd25a0cad5\t3\t0B6771\t\
             CN=Google Internet Authority,O=Google Inc,C=US\t\
             OU=Equifax Secure Certificate Authority,O=Equifax,C=US\t1244493807.000000\t1370634207.000000\t\
             rsaEncryption\tsha1WithRSAEncryption\trsa\t1024\t65537\t-\t-\t-\t-\t-\tT\t0\tF\tF",
        ],
    );
    assert!(h.actions.contains(&crate::analyzers::Action::Confirm("ssl")));
}

#[test]
fn tls12_late_protocol_error_logs_unestablished() {
    let h = replay(include_bytes!("testdata/tls12-late-error.bin"), 443);
    expect_ssl(
        &h,
        "1357328848.549370",
        "TLSv12\tTLS_RSA_WITH_RC4_128_MD5\t-\t-\tF\t-\t-\tF\tCsxnG\t\
         95cb443934beda97627688546191ab1d3989a835592cebdd2434f9ad41324ce1,\
         7363593d116aafcf804b974465546e1f02ed74b52db529ba7520345e5fed1ed4,\
         687fa451382278fff0c8b11f8d43d576671c6eb2bceab413fb83d965d06d2ff2\t(empty)\t-",
    );
    let x509 = h.logged("x509");
    assert_eq!(x509.len(), 3);
    assert_eq!(
        tsv_fields(x509[0], 3)[..2].join("\t"),
        "99FAA8037A4EB2FAEF84EB5E55D5B8C8\tCN=*.taleo.net,OU=Comodo PremiumSSL Wildcard,OU=Web,O=Taleo Inc.,\
         street=4140 Dublin Boulevard,street=Suite 400,L=Dublin,ST=CA,postalCode=94568,C=US"
    );
    assert_eq!(tsv_fields(x509[0], 14).join("\t"), "*.taleo.net,taleo.net\t-\t-\t-\tF\t-\tT\tF");
    assert_eq!(tsv_fields(x509[2], 18).join("\t"), "T\t-\tF\tF");
    assert!(h.actions.iter().any(|a| matches!(a, crate::analyzers::Action::Violation(r, _)
        if r == "Invalid version late in TLS connection. Packet reported version: 65535")));
}

#[test]
fn xmpp_starttls_tls12_gcm() {
    let h = replay(include_bytes!("testdata/xmpp-starttls.bin"), 5222);
    expect_ssl(
        &h,
        "1437091702.232293",
        "TLSv12\tTLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\tsecp256r1\t-\tF\t-\t-\tT\tCsxknGIi\t\
         630ff62f262e2ed3524e031f391b7296fd099eca1064768874c449526f94a541,\
         ff2a65cff1149c7430101e0f65a07ec19183a3b633ef4a6510890dad18316b3a\t(empty)\t-",
    );
    let x509 = h.logged("x509");
    assert_eq!(x509.len(), 2);
    assert_eq!(
        tsv_fields(x509[1], 2).join("\t"),
        "3\t00\temailAddress=support@cacert.org,CN=CA Cert Signing Authority,OU=http://www.cacert.org,O=Root CA\t\
         emailAddress=support@cacert.org,CN=CA Cert Signing Authority,OU=http://www.cacert.org,O=Root CA\t\
         1049027389.000000\t1995712189.000000\trsaEncryption\tmd5WithRSAEncryption\trsa\t4096\t65537\t-\t\
         -\t-\t-\t-\tT\t-\tF\tF"
    );
}

#[test]
fn ftp_auth_tls13_without_certificates() {
    let h = replay(include_bytes!("testdata/ftp-auth-tls.bin"), 21);
    expect_ssl(
        &h,
        "1747315305.969546",
        "TLSv13\tTLS_AES_256_GCM_SHA384\tsecp256r1\t127.0.0.1\tF\t-\t-\tT\tCsiI\t-\t-\t-",
    );
    assert!(h.logged("x509").is_empty());
}

#[test]
fn detects_hellos() {
    let fixture = include_bytes!("testdata/tls-extensions.bin");
    assert!(detect(Proto::Tcp, true, &fixture[13..]));
    assert!(!detect(Proto::Tcp, true, b"GET / HTTP/1.1\r\n"));
    assert!(!detect(Proto::Udp, true, &fixture[13..]));
    assert!(looks_like_server_hello(&[0x16, 3, 1, 0, 0x4a, 2, 0, 0, 0x46, 3, 1]));
}

#[test]
fn garbage_is_a_violation_without_a_log() {
    let mut h = Harness::new(Proto::Tcp, 443);
    let mut a = SslAnalyzer::new(Dedup::Local(KnownCerts::default()));
    h.deliver(&mut a, true, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    h.finish(&mut a);
    assert!(h.logged("ssl").is_empty());
    assert!(matches!(h.actions.as_slice(), [crate::analyzers::Action::Violation(..)]));
}

#[test]
fn byte_at_a_time_matches_whole_segments() {
    let fixture = include_bytes!("testdata/tls-extensions.bin");
    let mut h = Harness::new(Proto::Tcp, 443);
    let mut a = SslAnalyzer::new(Dedup::Local(KnownCerts::default()));
    let mut rest = &fixture[..];
    while rest.len() >= 13 {
        let is_orig = rest[0] == 0;
        let len = u32::from_le_bytes(rest[9..13].try_into().unwrap()) as usize;
        for b in &rest[13..13 + len] {
            h.deliver(&mut a, is_orig, std::slice::from_ref(b));
        }
        rest = &rest[13 + len..];
    }
    h.finish(&mut a);
    let ssl = h.logged("ssl");
    assert_eq!(ssl.len(), 1);
    assert_eq!(tsv_fields(ssl[0], 14)[0], "CsxknGIti");
    assert_eq!(h.logged("x509").len(), 2);
}

mod fuzz_props {
    use super::build::{Cert, P384_GENERATOR, ec_key, general_name, subject_alt_name};
    use proptest::prelude::*;

    /// A certificate with every part the x509 code reads: names, an EC key, SANs.
    fn sample_certificate() -> Vec<u8> {
        let mut cert = Cert::new("fuzz.example");
        cert.key = ec_key("1.3.132.0.34", &hex::decode(P384_GENERATOR).expect("hex"));
        cert.extensions = vec![subject_alt_name(&[general_name(2, b"a.example"), general_name(7, &[10, 0, 0, 1])])];
        cert.der()
    }

    proptest! {
        #[test]
        fn certificates_with_changed_bytes_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut der = sample_certificate();
            for (at, byte) in edits {
                let len = der.len();
                der[at % len] = byte;
            }
            let _ = super::super::x509::parse(&der);
            let _ = super::super::x509::parse(&der[..cut % (der.len() + 1)]);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::super::fuzz(&data);
        }

        #[test]
        fn never_panics_on_tls_shaped_input(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            ct in 20u8..25,
            hs in 0u8..30,
        ) {
            let mut rec = vec![0u8, 0];
            let len = (body.len() + 4) as u16;
            rec.extend([ct, 3, 3]);
            rec.extend(len.to_be_bytes());
            rec.extend([hs, 0, (body.len() >> 8) as u8, body.len() as u8]);
            rec.extend(&body);
            rec[1] = 255;
            super::super::fuzz(&rec);
        }
    }
}

/// A server hello cut right after its random (found by the fuzzer: it indexed the session id length).
#[test]
fn server_hello_ending_after_the_random_is_a_violation() {
    let crash = [
        63, 183, 22, 3, 0, 0, 47, 25, 0, 0, 0, 2, 0, 0, 39, 3, 1, 7, 183, 22, 3, 0, 0, 9, 25, 0, 0, 179, 25, 0, 0, 1,
        183, 22, 3, 0, 0, 9, 25, 247, 223, 179, 0, 1, 0, 25, 0, 0, 0, 2, 0, 0, 39, 183, 22, 3, 0, 0, 47, 25, 0, 0, 0,
        2, 0, 0, 34, 3, 1, 7, 183, 22, 3, 0, 0, 9, 25, 0, 0, 179, 25, 0, 63, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 46, 4,
    ];
    fuzz(&crash);
    let mut h = Harness::new(Proto::Tcp, 443);
    let mut a = SslAnalyzer::new(Dedup::Local(KnownCerts::default()));
    let hello = build::handshake(2, &[&[3, 3][..], &[0; 32]].concat());
    h.deliver(&mut a, false, &build::handshakes(build::TLS12, &[hello]));
    h.finish(&mut a);
    assert!(h.actions.iter().any(|act| matches!(act, crate::analyzers::Action::Violation(r, _)
        if r == "Binpac exception: malformed server hello")));
}

/// known-certs.zeek's view of a session: the server's first certificate (not the CA after it, not a client's).
#[test]
fn the_host_certificate_is_the_servers_first() {
    let mut h = Harness::new(Proto::Tcp, 443);
    let mut a = SslAnalyzer::new(Dedup::Local(KnownCerts::default()));
    replay::fixture(&mut h, &mut a, include_bytes!("testdata/tls-extensions.bin"));
    let mut cert = None;
    h.run(2000.0, |ctx| cert = a.host_certificate(ctx));
    let cert = cert.expect("a host certificate");
    assert_eq!(cert.subject, "CN=*.gstatic.com,O=Google Inc,L=Mountain View,ST=California,C=US");
    assert_eq!(cert.issuer, "CN=Google Internet Authority,O=Google Inc,C=US");
    assert_eq!(cert.serial, "36F5DA5300000000505E");
    let ssl = h.logged("ssl");
    let fps = ssl[0].get("cert_chain_fps").map(Value::to_tsv).unwrap_or_default();
    assert_eq!(fps.split(',').next(), Some(cert.fingerprint.as_str()), "ssl.log's first fingerprint");
    // A session without certificates has none.
    let bare = SslAnalyzer::new(Dedup::Local(KnownCerts::default()));
    let mut none = None;
    h.run(2000.0, |ctx| none = bare.host_certificate(ctx));
    assert!(none.is_none());
}
