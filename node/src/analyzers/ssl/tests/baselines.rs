//! Exchanges rebuilt from Zeek btest baselines the dev oracle does not carry (`scripts.base.protocols.ssl.*`), and
//! rules of `tls-handshake-analyzer.pac` and main.zeek no dev trace shows.

use super::build::*;
use super::*;

const X25519: u16 = 29;

/// `scripts.base.protocols.ssl.tls13-experiment`: a server choosing the 0x7E01 experiment through supported_versions.
/// consts.zeek has no name for it (`unknown-32257`), and main.zeek's draft test (`version_num/0xFF != 0x7F`) does not
/// hold for it, so the echoed session id counts as a resumption: the baseline's row is
/// `unknown-32257 TLS_AES_128_GCM_SHA256 x25519 tls.ctf.network T - - T`.
#[test]
fn tls13_experiment_version_is_unknown_and_resumed() {
    let session_id = [0x3C; 32];
    let client_exts =
        [sni(&[(0, "tls.ctf.network")]), supported_versions_offer(&[0x7E01, 0x0303]), key_share_offer(&[X25519])];
    let server_exts = [supported_version_chosen(0x7E01), key_share_chosen(51, X25519)];
    let flow = vec![
        (true, handshakes(TLS10, &[client_hello(&session_id, &[0x1301], &client_exts)])),
        (false, handshakes(TLS12, &[server_hello(TLS12, &[7; 32], &session_id, 0x1301, &server_exts)])),
        (false, change_cipher_spec(TLS12)),
        (false, ciphertext(23, TLS12, 900)),
        (true, change_cipher_spec(TLS12)),
        (true, ciphertext(23, TLS12, 60)),
    ];
    let h = run_flow(&flow);
    let ssl = h.logged("ssl");
    assert_eq!(ssl.len(), 1);
    assert_eq!(
        tsv_fields(ssl[0], 6)[..8].join("\t"),
        "unknown-32257\tTLS_AES_128_GCM_SHA256\tx25519\ttls.ctf.network\tT\t-\t-\tT"
    );
}

/// A TLS 1.2 server flight with a CertificateStatus message (RFC 6066) after its certificate.
fn stapled_flow(status: Vec<u8>) -> Vec<(bool, Vec<u8>)> {
    let cert = Cert::new("www.example.com").der();
    vec![
        (true, handshakes(TLS10, &[client_hello(&[], &[0xC02F], &[sni(&[(0, "www.example.com")])])])),
        (
            false,
            handshakes(
                TLS12,
                &[
                    server_hello(TLS12, &[9; 32], &[0xAB; 32], 0xC02F, &[]),
                    certificate(&[cert]),
                    handshake(22, &status),
                    ecdhe_key_exchange(23),
                    empty_message(14),
                ],
            ),
        ),
    ]
}

/// `proc_certificate_status`: a stapled OCSP response goes to the file framework as `application/ocsp-response`
/// (files.log source `SSL`, `is_orig` F, no analyzer attached by the base scripts); the history letter is `u`.
#[test]
fn a_stapled_ocsp_response_is_a_file() {
    let response = [0x30, 0x82, 0x01, 0x00, 0x0A, 0x01, 0x00];
    let status = [&[1u8, 0, 0, 7][..], &response].concat();
    let h = run_flow(&stapled_flow(status));
    let files = h.logged("files");
    assert_eq!(files.len(), 1);
    let file = files[0];
    assert_eq!(file.get("source"), Some(&Value::str("SSL")));
    assert_eq!(file.get("mime_type"), Some(&Value::str("application/ocsp-response")));
    assert_eq!(file.get("analyzers").map(Value::to_tsv).as_deref(), Some("(empty)"));
    assert_eq!(file.get("is_orig"), Some(&Value::Bool(false)));
    assert_eq!(file.get("seen_bytes"), Some(&Value::Count(7)));
    assert_eq!(file.get("duration").map(Value::to_tsv).as_deref(), Some("0.000000"));
    assert_eq!(file.get("ts").map(Value::to_tsv).as_deref(), Some("1000.001000"));
    let ssl = h.logged("ssl");
    assert_eq!(tsv_fields(ssl[0], 6)[8], "Csxukn");
    assert!(h.weirds.is_empty());
}

/// An empty stapled response is the weird `SSL_zero_length_stapled_OCSP_message` (no source) and no file; a
/// CertificateStatus too short for its header stops the analysis.
#[test]
fn an_empty_or_truncated_certificate_status() {
    let h = run_flow(&stapled_flow(vec![1, 0, 0, 0]));
    assert!(h.logged("files").is_empty());
    let weirds: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref(), w.source)).collect();
    assert_eq!(weirds, [("SSL_zero_length_stapled_OCSP_message", None, "")]);
    assert_eq!(tsv_fields(h.logged("ssl")[0], 6)[8], "Csxukn");

    let h = run_flow(&stapled_flow(vec![1, 0]));
    assert!(h.logged("files").is_empty());
    assert_eq!(tsv_fields(h.logged("ssl")[0], 6)[8], "Csx");
}

/// main.zeek's `add_to_history` stops at `SSL::max_ssl_history_length` (100) and raises
/// `SSL_max_ssl_history_length_reached` once, with the length as addl and source SSL (the
/// `scripts.base.protocols.ssl.max-history-length` baseline shows `3 SSL` for a limit of 3).
#[test]
fn the_history_stops_at_its_limit_with_a_weird() {
    let mut flow = vec![(true, handshakes(TLS10, &[client_hello(&[], &[0xC02F], &[])]))];
    flow.extend((0..120).map(|_| (false, alert(TLS12, 1, 0))));
    let h = run_flow(&flow);
    let history = &tsv_fields(h.logged("ssl")[0], 6)[8];
    assert_eq!(history.len(), 100);
    assert_eq!(history, &format!("C{}", "l".repeat(99)));
    let weirds: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref(), w.source)).collect();
    assert_eq!(weirds, [("SSL_max_ssl_history_length_reached", Some("100"), "SSL")]);
}
