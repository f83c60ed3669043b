//! Handshakes the dev traces do not have, built message by message, with the ssl.log fields main.zeek
//! (scripts/base/protocols/ssl/main.zeek) and the binpac analyzer (tls-handshake-protocol.pac,
//! tls-handshake-analyzer.pac) give them.

use super::build::*;
use super::certificates::server_certificates;
use super::*;
use crate::analyzers::Weird;

const TLS13: u16 = 0x0304;
const X25519: u16 = 29;
const SECP256R1: u16 = 23;
const SECP384R1: u16 = 24;
const X25519MLKEM768: u16 = 4588;

type Flow = Vec<(bool, Vec<u8>)>;

/// The ssl.log columns from `version` on.
fn ssl_row(flow: &Flow) -> String {
    let h = run_flow(flow);
    let ssl = h.logged("ssl");
    assert_eq!(ssl.len(), 1, "one ssl record");
    tsv_fields(ssl[0], 6).join("\t")
}

fn tls13_client_hello(session_id: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    let mut exts = vec![
        sni(&[(0, "www.example.com")]),
        alpn(&["h2", "http/1.1"]),
        supported_versions_offer(&[0x0A0A, TLS13, TLS12]),
        key_share_offer(&[X25519MLKEM768, X25519]),
    ];
    exts.extend_from_slice(extra);
    handshakes(TLS10, &[client_hello(session_id, &[0x1301, 0x1302, 0x1303], &exts)])
}

/// The server's flight after its hello in TLS 1.3 (middlebox-compatible CCS, then encrypted records), and
/// the client's answer.
fn tls13_encrypted_rest(flow: &mut Flow) {
    flow.push((false, change_cipher_spec(TLS12)));
    flow.push((false, ciphertext(23, TLS12, 2000)));
    flow.push((true, change_cipher_spec(TLS12)));
    flow.push((true, ciphertext(23, TLS12, 53)));
    flow.push((true, ciphertext(23, TLS12, 300)));
}

/// TLS 1.3: the version comes from the server's supported_versions, the curve from its key_share; the
/// server's ALPN answer is in the encrypted EncryptedExtensions, so next_protocol stays unset; certificates
/// are encrypted too. Established once both sides sent application data records: history `CsiI`.
#[test]
fn tls13_handshake_takes_version_and_curve_from_extensions() {
    let session_id = [0x5E; 32];
    let server_exts = [supported_version_chosen(TLS13), key_share_chosen(51, X25519MLKEM768)];
    let mut flow = vec![
        (true, tls13_client_hello(&session_id, &[])),
        (false, handshakes(TLS12, &[server_hello(TLS12, &[3; 32], &session_id, 0x1302, &server_exts)])),
    ];
    tls13_encrypted_rest(&mut flow);
    // The echoed legacy session id is no resumption in TLS 1.3.
    assert_eq!(
        ssl_row(&flow),
        "TLSv13\tTLS_AES_256_GCM_SHA384\tX25519MLKEM768\twww.example.com\tF\t-\t-\tT\tCsiI\t-\t-\t-"
    );
}

/// A PSK the server accepts (pre_shared_key in both hellos) is a resumed TLS 1.3 session.
#[test]
fn tls13_accepted_psk_is_a_resumption() {
    let server_exts = [supported_version_chosen(TLS13), key_share_chosen(51, X25519), psk_selected()];
    let mut flow = vec![
        (true, tls13_client_hello(&[], &[extension(45, &[1, 1]), psk_offer()])),
        (false, handshakes(TLS12, &[server_hello(TLS12, &[3; 32], &[], 0x1301, &server_exts)])),
    ];
    tls13_encrypted_rest(&mut flow);
    assert_eq!(ssl_row(&flow), "TLSv13\tTLS_AES_128_GCM_SHA256\tx25519\twww.example.com\tT\t-\t-\tT\tCsiI\t-\t-\t-");
}

/// A HelloRetryRequest is a server hello with RFC 8446's magic random: history `j`, its two-byte key_share
/// names the group (`ssl_extension_key_share`), and the second hello's key share replaces it.
#[test]
fn tls13_hello_retry_request() {
    let retry =
        server_hello(TLS12, &HRR_RANDOM, &[], 0x1301, &[supported_version_chosen(TLS13), key_share_retry(SECP384R1)]);
    let hello =
        server_hello(TLS12, &[3; 32], &[], 0x1301, &[supported_version_chosen(TLS13), key_share_chosen(51, SECP256R1)]);
    let first = vec![(true, tls13_client_hello(&[], &[])), (false, handshakes(TLS12, &[retry]))];
    // The client gives up after the retry request.
    assert_eq!(ssl_row(&first), "TLSv13\tTLS_AES_128_GCM_SHA256\tsecp384r1\twww.example.com\tF\t-\t-\tF\tCj\t-\t-\t-");
    let mut flow = first;
    flow.push((true, tls13_client_hello(&[], &[])));
    flow.push((false, handshakes(TLS12, &[hello])));
    tls13_encrypted_rest(&mut flow);
    assert_eq!(
        ssl_row(&flow),
        "TLSv13\tTLS_AES_128_GCM_SHA256\tsecp256r1\twww.example.com\tF\t-\t-\tT\tCjCsiI\t-\t-\t-"
    );
}

/// Drafts of TLS 1.3 carried their version in supported_versions (`TLSv13-draft%d`) and, in some, the key
/// share in the old extension 40.
#[test]
fn tls13_draft_versions_and_the_old_key_share() {
    let server_exts = [supported_version_chosen(0x7F1C), key_share_chosen(40, X25519)];
    let flow = vec![
        (true, tls13_client_hello(&[], &[])),
        (false, handshakes(TLS12, &[server_hello(TLS12, &[3; 32], &[], 0x1301, &server_exts)])),
    ];
    assert_eq!(
        ssl_row(&flow),
        "TLSv13-draft28\tTLS_AES_128_GCM_SHA256\tx25519\twww.example.com\tF\t-\t-\tF\tCs\t-\t-\t-"
    );
}

/// A full TLS 1.2 handshake: ECDHE curve from the ServerKeyExchange, the server's ALPN choice, a new
/// session ticket, established after both Finished messages (encrypted, so no letter).
fn tls12_full(cipher: u16, key_exchange: Vec<u8>, server_exts: &[Vec<u8>]) -> Flow {
    let cert = Cert::new("www.example.com").der();
    let client_exts = [sni(&[(0, "www.example.com")]), alpn(&["h2", "http/1.1"]), session_ticket(&[])];
    vec![
        (true, handshakes(TLS10, &[client_hello(&[], &[cipher], &client_exts)])),
        (
            false,
            handshakes(
                TLS12,
                &[
                    server_hello(TLS12, &[9; 32], &[0xAB; 32], cipher, server_exts),
                    certificate(&[cert]),
                    key_exchange,
                    empty_message(14),
                ],
            ),
        ),
        (true, handshakes(TLS12, &[client_key_exchange()])),
        (true, change_cipher_spec(TLS12)),
        (true, ciphertext(22, TLS12, 40)),
        (false, handshakes(TLS12, &[new_session_ticket()])),
        (false, change_cipher_spec(TLS12)),
        (false, ciphertext(22, TLS12, 40)),
        (true, ciphertext(23, TLS12, 100)),
    ]
}

#[test]
fn tls12_ecdhe_with_alpn_and_ticket() {
    let flow = tls12_full(0xCCA8, ecdhe_key_exchange(SECP384R1), &[alpn(&["h2"])]);
    let row = ssl_row(&flow);
    let fp = x509::fingerprint(&Cert::new("www.example.com").der());
    assert_eq!(
        row,
        format!(
            "TLSv12\tTLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256\tsecp384r1\twww.example.com\tF\t-\th2\tT\t\
             CsxknGIti\t{fp}\t(empty)\tT"
        )
    );
}

/// Only the suites tls-handshake-protocol.pac lists as ECDHE/ECDH_anon have their ServerKeyExchange read
/// for a curve: not DHE, and not ECDHE_PSK with AES-GCM.
#[test]
fn curves_only_for_the_ecdhe_suites_zeek_lists() {
    let no_curve =
        |cipher: u16, kex: Vec<u8>| ssl_row(&tls12_full(cipher, kex, &[])).split('\t').nth(2).map(str::to_string);
    assert_eq!(no_curve(0x009E, dhe_key_exchange()).as_deref(), Some("-"));
    assert_eq!(no_curve(0xD001, ecdhe_key_exchange(SECP256R1)).as_deref(), Some("-"));
    assert_eq!(no_curve(0xC02B, ecdhe_key_exchange(0x6399)).as_deref(), Some("X25519Kyber768Draft00"));
}

/// A resumed TLS 1.2 session: the hellos, then each side's ChangeCipherSpec and encrypted Finished.
fn abbreviated_handshake(client_hello: Vec<u8>, server_hello: Vec<u8>) -> Flow {
    vec![
        (true, handshakes(TLS10, &[client_hello])),
        (false, handshakes(TLS12, &[server_hello])),
        (false, change_cipher_spec(TLS12)),
        (false, ciphertext(22, TLS12, 40)),
        (true, change_cipher_spec(TLS12)),
        (true, ciphertext(22, TLS12, 40)),
    ]
}

/// Resumption by session id: the server echoes the id the client offered (`ssl_server_hello`), and the
/// abbreviated handshake has no certificates.
#[test]
fn tls12_session_id_resumption() {
    let id = [0x42; 32];
    let flow =
        abbreviated_handshake(client_hello(&id, &[0xC02F], &[]), server_hello(TLS12, &[9; 32], &id, 0xC02F, &[]));
    assert_eq!(ssl_row(&flow), "TLSv12\tTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\t-\t-\tT\t-\t-\tT\tCsiI\t-\t-\t-");
}

/// Resumption by ticket: a non-empty SessionTicket with an empty session id, then the client's
/// ChangeCipherSpec without a ClientKeyExchange (`ssl_change_cipher_spec`).
#[test]
fn tls12_ticket_resumption() {
    let flow = abbreviated_handshake(
        client_hello(&[], &[0xC02F], &[session_ticket(&[0x99; 160])]),
        server_hello(TLS12, &[9; 32], &[0x17; 32], 0xC02F, &[session_ticket(&[])]),
    );
    assert_eq!(ssl_row(&flow), "TLSv12\tTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\t-\t-\tT\t-\t-\tT\tCsiI\t-\t-\t-");
}

/// A plaintext alert ends the handshake: `l` (server) in the history and its name, `unknown-N` for a code
/// consts.zeek does not name; the record is written when the connection ends.
#[test]
fn alerts_name_the_last_one() {
    let flow = vec![
        (true, handshakes(TLS10, &[client_hello(&[], &[0xC02F], &[sni(&[(0, "a.example")])])])),
        (false, alert(TLS12, 2, 40)),
    ];
    assert_eq!(ssl_row(&flow), "-\t-\t-\ta.example\tF\thandshake_failure\t-\tF\tCl\t-\t-\t-");
    let flow = vec![
        (true, handshakes(TLS10, &[client_hello(&[], &[0xC02F], &[])])),
        (false, handshakes(TLS12, &[server_hello(TLS12, &[9; 32], &[], 0xC02F, &[])])),
        (true, record(21, TLS12, &[1, 112, 2, 201])),
    ];
    assert_eq!(
        ssl_row(&flow),
        "TLSv12\tTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\t-\t-\tF\tunknown-201\t-\tF\tCsLL\t-\t-\t-"
    );
}

/// Numbers consts.zeek does not name print as `unknown-N`.
#[test]
fn unknown_cipher_and_version() {
    let flow = vec![
        (true, handshakes(TLS10, &[client_hello(&[], &[0x1301], &[])])),
        (false, handshakes(TLS12, &[server_hello(TLS12, &[9; 32], &[], 0xEEEE, &[supported_version_chosen(0x0305)])])),
    ];
    assert_eq!(ssl_row(&flow), "unknown-773\tunknown-61166\t-\t-\tF\t-\t-\tF\tCs\t-\t-\t-");
}

/// A client certificate (after the server's CertificateRequest) fills client_cert_chain_fps and is logged
/// in x509.log with client_cert T; sni_matches_cert checks the server's certificate only.
#[test]
fn client_certificates() {
    let server = Cert::new("www.example.com").der();
    let client = Cert::new("client.example").der();
    let flow = vec![
        (true, handshakes(TLS10, &[client_hello(&[], &[0xC02F], &[sni(&[(0, "other.example.com")])])])),
        (
            false,
            handshakes(
                TLS12,
                &[
                    server_hello(TLS12, &[9; 32], &[], 0xC02F, &[]),
                    certificate(std::slice::from_ref(&server)),
                    ecdhe_key_exchange(X25519),
                    empty_message(13),
                    empty_message(14),
                ],
            ),
        ),
        (
            true,
            handshakes(TLS12, &[certificate(std::slice::from_ref(&client)), client_key_exchange(), empty_message(15)]),
        ),
        (true, change_cipher_spec(TLS12)),
        (true, ciphertext(22, TLS12, 40)),
        (false, change_cipher_spec(TLS12)),
        (false, ciphertext(22, TLS12, 40)),
    ];
    let h = run_flow(&flow);
    let ssl = h.logged("ssl");
    assert_eq!(
        tsv_fields(ssl[0], 6).join("\t"),
        format!(
            "TLSv12\tTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\tx25519\tother.example.com\tF\t-\t-\tT\tCsxkrnXGYIi\t{}\t{}\tF",
            x509::fingerprint(&server),
            x509::fingerprint(&client)
        )
    );
    let host_and_client: Vec<String> = h.logged("x509").iter().map(|r| tsv_fields(r, 20).join(" ")).collect();
    assert_eq!(host_and_client, ["T F", "T T"]);
}

/// Several host names in the SNI: the first is logged, with main.zeek's `SSL_many_server_names` weird; an
/// entry of another name type stops the list (binpac reads it to the end) with the analyzer's weird.
#[test]
fn server_name_lists() {
    let h = run_flow(&[(
        true,
        handshakes(
            TLS10,
            &[client_hello(&[], &[0xC02F], &[sni(&[(0, "a.example"), (0, "b.example"), (1, "x"), (0, "c.example")])])],
        ),
    )]);
    assert_eq!(tsv_fields(h.logged("ssl")[0], 9)[0], "a.example");
    let weirds: Vec<(&str, Option<&str>, &str)> =
        h.weirds.iter().map(|w: &Weird| (w.name.as_str(), w.addl.as_deref(), w.source)).collect();
    assert_eq!(
        weirds,
        [
            ("ssl_ext_unknown_server_name_type", Some("1"), "SSL"),
            ("SSL_many_server_names", Some("[a.example, b.example]"), ""),
        ]
    );
}

/// sni_matches_cert: the SNI against the host certificate's DNS names (a wildcard covers one label).
#[test]
fn sni_matching() {
    let mut cert = Cert::new("ignored-cn.example");
    cert.extensions = vec![subject_alt_name(&[general_name(2, b"*.example.org"), general_name(2, b"example.org")])];
    let sni_flow = |cert: &Cert, host: &str| {
        let mut flow = server_certificates(&[cert.der()]);
        flow[0].1 = handshakes(TLS10, &[client_hello(&[], &[0xC02F], &[sni(&[(0, host)])])]);
        ssl_row(&flow).split('\t').next_back().unwrap().to_string()
    };
    assert_eq!(sni_flow(&cert, "www.example.org"), "T");
    assert_eq!(sni_flow(&cert, "EXAMPLE.org"), "T");
    assert_eq!(sni_flow(&cert, "a.b.example.org"), "F");
    assert_eq!(sni_flow(&cert, "ignored-cn.example"), "F");
    assert_eq!(sni_flow(&cert, "www.example.org."), "F");
    // Without a SAN, the last CN of the subject (x509_check_cert_hostname), with a prefix wildcard.
    cert.extensions.clear();
    cert.subject = name(&[&[("2.5.4.3", UTF8, b"first.example")], &[("2.5.4.3", UTF8, b"ww*.example.net")]]);
    assert_eq!(sni_flow(&cert, "www.example.net"), "T");
    assert_eq!(sni_flow(&cert, "first.example"), "F");
}

/// An SSLv2-format client hello offering TLS 1.0 (old clients' compatible hello), answered in TLS records:
/// main.zeek adds the client's `C` itself for a hello whose record version is 0.
#[test]
fn sslv2_compatible_client_hello() {
    let ciphers = [0x00, 0x00, 0x05, 0x01, 0x00, 0x80];
    let challenge = [0x3C; 16];
    let body = [&[0x01, 0x03, 0x01][..], &[0, 6, 0, 0, 0, 16], &ciphers, &challenge].concat();
    let v2_hello = [&[0x80, body.len() as u8][..], &body].concat();
    let cert = Cert::new("legacy.example").der();
    let flow = vec![
        (true, v2_hello),
        (
            false,
            handshakes(
                TLS10,
                &[server_hello(TLS10, &[9; 32], &[0x21; 32], 0x0005, &[]), certificate(&[cert]), empty_message(14)],
            ),
        ),
        (true, handshakes(TLS10, &[client_key_exchange()])),
        (true, change_cipher_spec(TLS10)),
        (true, ciphertext(22, TLS10, 36)),
        (false, change_cipher_spec(TLS10)),
        (false, ciphertext(22, TLS10, 36)),
    ];
    let row = ssl_row(&flow);
    assert_eq!(
        row.split('\t').take(9).collect::<Vec<_>>().join(" "),
        "TLSv10 TLS_RSA_WITH_RC4_128_SHA - - F - - T CsxnGIi"
    );
}

/// An extension whose content tls-parser refuses (an odd-length supported_groups list) does not hide the
/// extensions after it.
#[test]
fn a_malformed_extension_does_not_hide_the_next_ones() {
    let odd_groups = extension(10, &[0, 3, 0, 29, 0]);
    assert!(tls_parser::parse_tls_extension(&odd_groups).is_err());
    let flow =
        vec![(true, handshakes(TLS10, &[client_hello(&[], &[0xC02F], &[odd_groups, sni(&[(0, "after.example")])])]))];
    assert_eq!(ssl_row(&flow).split('\t').nth(3), Some("after.example"));
}
