//! DTLS handshakes built byte by byte (RFC 6347 records and handshake fragments, RFC 9147 unified headers) through
//! the DTLS analyzer, checked against the ssl.log Zeek's `scripts.base.protocols.ssl.dtls*` baselines show for such
//! exchanges.

use super::build::*;
use super::*;
use crate::analyzers::Action;
use crate::analyzers::ssl::dtls::Dtls;

const DTLS12: u16 = 0xFEFD;
const DTLS13: u16 = 0xFEFC;

/// One DTLS record (RFC 6347 4.1).
fn dtls_record(content_type: u8, epoch: u16, seq: u64, body: &[u8]) -> Vec<u8> {
    let seq = seq.to_be_bytes();
    let len = u16::try_from(body.len()).expect("short record").to_be_bytes();
    [&[content_type][..], &DTLS12.to_be_bytes(), &epoch.to_be_bytes(), &seq[2..], &len, body].concat()
}

/// A TLS handshake message (`type`, u24 length, body) as DTLS fragments of at most `piece` body bytes each.
fn fragments(tls_message: &[u8], message_seq: u16, piece: usize) -> Vec<Vec<u8>> {
    let (msg_type, body) = (tls_message[0], &tls_message[4..]);
    let u24 = |v: usize| [(v >> 16) as u8, (v >> 8) as u8, v as u8];
    // An empty message still goes out as one (empty) fragment.
    let chunks: Vec<&[u8]> = if body.is_empty() { vec![&[]] } else { body.chunks(piece.max(1)).collect() };
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let header =
                [&[msg_type][..], &u24(body.len()), &message_seq.to_be_bytes(), &u24(i * piece), &u24(chunk.len())];
            [&header.concat()[..], chunk].concat()
        })
        .collect()
}

/// A whole handshake message in one plaintext record.
fn handshake_record(tls_message: &[u8], message_seq: u16, record_seq: u64) -> Vec<u8> {
    dtls_record(22, 0, record_seq, &fragments(tls_message, message_seq, usize::MAX)[0])
}

/// The builders' TLS client hello as DTLS 1.2 sends it: DTLS version and an (empty) cookie after the session id.
fn dtls_client_hello(exts: &[Vec<u8>]) -> Vec<u8> {
    let tls = client_hello(&[], &[0xC02F, 0x1301], exts);
    let body = &tls[4..];
    let dtls_body = [&DTLS12.to_be_bytes()[..], &body[2..35], &[0], &body[35..]].concat();
    handshake(1, &dtls_body)
}

fn run_datagrams(flow: &[(bool, Vec<u8>)]) -> Harness {
    let mut h = Harness::new(Proto::Udp, 443);
    let mut a = Dtls::new(Dedup::Local(KnownCerts::default()));
    let mut ts = 1000.0;
    for (is_orig, datagram) in flow {
        h.run(ts, |ctx| a.deliver(ctx, *is_orig, datagram));
        ts += 0.001;
    }
    h.run(ts + 1.0, |ctx| a.finish(ctx));
    h
}

fn confirmed_services(h: &Harness) -> Vec<&'static str> {
    h.actions.iter().filter_map(|a| if let Action::Confirm(s) = a { Some(*s) } else { None }).collect()
}

fn has_violation(h: &Harness) -> bool {
    h.actions.iter().any(|a| matches!(a, Action::Violation(..)))
}

/// DTLS 1.2 with ECDHE-RSA: the client hello in two fragments, the certificate in three (the last two in reverse
/// order), change cipher spec both ways and an epoch-1 Finished from each side.
fn dtls12_handshake(cert: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let hello = dtls_client_hello(&[sni(&[(0, "www.example.com")])]);
    let hello_pieces = fragments(&hello, 0, 40);
    assert_eq!(hello_pieces.len(), 2, "the client hello is split in two");
    let cert_pieces = fragments(&certificate(&[cert.to_vec()]), 1, cert.len() / 2);
    assert_eq!(cert_pieces.len(), 3, "the certificate is split in three");
    let server_flight = [
        handshake_record(&server_hello(DTLS12, &[7; 32], &[], 0xC02F, &[]), 0, 0),
        dtls_record(22, 0, 1, &cert_pieces[0]),
        dtls_record(22, 0, 3, &cert_pieces[2]),
        dtls_record(22, 0, 2, &cert_pieces[1]),
        handshake_record(&ecdhe_key_exchange(23), 2, 4),
        handshake_record(&empty_message(14), 3, 5),
    ];
    vec![
        (true, dtls_record(22, 0, 0, &hello_pieces[0])),
        (true, dtls_record(22, 0, 1, &hello_pieces[1])),
        (false, server_flight.concat()),
        (
            true,
            [
                handshake_record(&client_key_exchange(), 1, 2),
                dtls_record(20, 0, 3, &[1]),
                dtls_record(22, 1, 0, &[0xA5; 40]),
            ]
            .concat(),
        ),
        (false, [dtls_record(20, 0, 6, &[1]), dtls_record(22, 1, 0, &[0xA5; 40])].concat()),
    ]
}

#[test]
fn dtls12_handshake_with_fragments_logs_like_zeek() {
    let cert = Cert::new("www.example.com").der();
    let h = run_datagrams(&dtls12_handshake(&cert));
    assert_eq!(confirmed_services(&h), ["dtls"]);
    assert!(!has_violation(&h), "{:?}", h.actions);
    let ssl = h.logged("ssl");
    assert_eq!(ssl.len(), 1, "one ssl record");
    let expected = [
        "DTLSv12",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "secp256r1",
        "www.example.com",
        "F",
        "-",
        "-",
        "T",
        "CsxknGIi",
        &x509::fingerprint(&cert),
        "(empty)",
        "T",
    ];
    assert_eq!(tsv_fields(ssl[0], 6), expected);
    // Established when the server's Finished arrived: the record carries the first packet's time.
    assert_eq!(ts_of(ssl[0]), "1000.000000");
    assert_eq!(h.logged("x509").len(), 1);
}

#[test]
fn an_unfinished_fragmented_hello_is_not_analysed() {
    let hello = dtls_client_hello(&[sni(&[(0, "www.example.com")])]);
    let pieces = fragments(&hello, 0, 40);
    // Only the second half: nothing is confirmed, and the record Zeek writes at the end has no hello in it.
    let h = run_datagrams(&[(true, dtls_record(22, 0, 1, &pieces[1]))]);
    assert!(confirmed_services(&h).is_empty());
    let ssl = h.logged("ssl");
    assert_eq!(ssl.len(), 1);
    assert_eq!(tsv_fields(ssl[0], 6)[8], "(empty)");
}

#[test]
fn dtls13_unified_records_establish() {
    let hello = dtls_client_hello(&[supported_versions_offer(&[DTLS13, DTLS12]), key_share_offer(&[23])]);
    let server =
        server_hello(DTLS12, &[7; 32], &[], 0x1301, &[supported_version_chosen(DTLS13), key_share_chosen(51, 23)]);
    // Unified header: 001, 16-bit sequence number, length present, epoch bits 2.
    let unified = |len: u16| [&[0x2E, 0, 0][..], &len.to_be_bytes(), &vec![0x5A; usize::from(len)]].concat();
    let flow = [
        (true, handshake_record(&hello, 0, 0)),
        (false, [handshake_record(&server, 0, 0), unified(30), unified(20)].concat()),
        (true, unified(25)),
    ];
    let h = run_datagrams(&flow);
    assert_eq!(confirmed_services(&h), ["dtls"]);
    let ssl = h.logged("ssl");
    assert_eq!(ssl.len(), 1);
    let fields = tsv_fields(ssl[0], 6);
    assert_eq!(&fields[..9], ["DTLSv13", "TLS_AES_128_GCM_SHA256", "secp256r1", "-", "F", "-", "-", "T", "Cs"]);
}

#[test]
fn garbage_on_the_dtls_port_is_not_confirmed() {
    let quic_like = [&[0xC3, 0, 0, 0, 1][..], &[0x42; 60]].concat();
    let mut flow: Vec<(bool, Vec<u8>)> = (0..15).map(|i| (i % 2 == 0, quic_like.clone())).collect();
    flow.push((true, b"GET / HTTP/1.1\r\n\r\n".to_vec()));
    let h = run_datagrams(&flow);
    assert!(confirmed_services(&h).is_empty());
    assert!(!has_violation(&h));
    assert!(h.records.is_empty());
}

#[test]
fn detects_dtls_client_hellos_only() {
    let hello = handshake_record(&dtls_client_hello(&[]), 0, 0);
    let detect = |payload: &[u8]| {
        crate::analyzers::ssl::dtls::SPEC.detect.is_some_and(|s| s.matches(Proto::Udp, true, payload, &[]))
    };
    assert!(detect(&hello));
    // A later record sequence number, TCP, a TLS hello: no.
    let mut late = hello.clone();
    late[8] = 1;
    assert!(!detect(&late));
    assert!(!crate::analyzers::ssl::dtls::SPEC.detect.unwrap().matches(Proto::Tcp, true, &hello, &[]));
    assert!(!detect(&handshakes(TLS12, &[client_hello(&[], &[0xC02F], &[])])));
}

#[test]
fn stun_between_records_is_skipped() {
    let stun = [&[0, 1, 0, 8, 0x21, 0x12, 0xA4, 0x42][..], &[0; 20]].concat();
    let mut flow = dtls12_handshake(&Cert::new("www.example.com").der());
    flow.insert(1, (true, stun));
    let h = run_datagrams(&flow);
    assert!(!has_violation(&h));
    assert_eq!(tsv_fields(h.logged("ssl")[0], 6)[8], "CsxknGIi");
}

/// `scripts.base.protocols.ssl.dtls-sequence-number-jumps`: a client hello in three fragments carried by records 0,
/// 128 and 256 is refused at the second one, whose record lies outside the 32-record reassembly window; the
/// violation (`DTLS handshake fragment sequence number outside reassembly window.`) stops the analysis.
#[test]
fn fragments_beyond_the_reassembly_window_are_a_violation() {
    let hello = dtls_client_hello(&[]);
    let piece = (hello.len() - 4).div_ceil(3);
    let flow: Vec<(bool, Vec<u8>)> = fragments(&hello, 0, piece)
        .iter()
        .enumerate()
        .map(|(i, frag)| (true, dtls_record(22, 0, 128 * i as u64, frag)))
        .collect();
    let h = run_datagrams(&flow);
    let violations: Vec<&str> = h
        .actions
        .iter()
        .filter_map(|a| if let Action::Violation(reason, _) = a { Some(reason.as_str()) } else { None })
        .collect();
    assert_eq!(violations, ["DTLS handshake fragment sequence number outside reassembly window."]);
    assert!(confirmed_services(&h).is_empty());
}
