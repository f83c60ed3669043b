//! RDP messages built byte by byte as MS-RDPBCGR lays them out (and Zeek's RDP test traces carry them), run through
//! the analyzer and the engine.

use super::*;
use crate::analyzers::Action;
use crate::analyzers::ssl::tests::build;
use crate::analyzers::testing::{Harness, row};

// ----- builders -------------------------------------------------------------------------------------------

fn tpkt(body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len() + 4).expect("a test TPKT fits");
    [&[3u8, 0][..], &len.to_be_bytes(), body].concat()
}

/// An X.224 TPDU: the length indicator, then `rest` (the PDU type first).
fn x224(rest: &[u8]) -> Vec<u8> {
    tpkt(&[&[u8::try_from(rest.len()).expect("short TPDU")][..], rest].concat())
}

/// An X.224 Connection Request with an optional `Cookie: mstshash=` cookie and RDP Negotiation Request.
fn connect_request(cookie: Option<&[u8]>, requested_protocols: Option<u32>) -> Vec<u8> {
    let mut rest = vec![0xe0, 0, 0, 0, 0, 0];
    if let Some(cookie) = cookie {
        rest.extend([b"Cookie: mstshash=", cookie, b"\r\n"].concat());
    }
    if let Some(protocols) = requested_protocols {
        rest.extend([1, 0, 8, 0]);
        rest.extend(protocols.to_le_bytes());
    }
    x224(&rest)
}

/// An X.224 Connection Confirm with a negotiation response (type 2) or failure (type 3), or neither.
fn connect_confirm(negotiation: Option<(u8, u32)>) -> Vec<u8> {
    let mut rest = vec![0xd0, 0, 0, 0x12, 0x34, 0];
    if let Some((kind, value)) = negotiation {
        rest.extend([kind, 0, 8, 0]);
        rest.extend(value.to_le_bytes());
    }
    x224(&rest)
}

fn utf16(text: &str, len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    out.resize(len, 0);
    out
}

/// A GCC user data block: type, length (header included), body.
fn block(block_type: u16, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len() + 4).expect("a test block fits");
    [&block_type.to_le_bytes()[..], &len.to_le_bytes(), body].concat()
}

struct Core {
    width: u16,
    height: u16,
    keyboard_layout: u32,
    build: u32,
    name: &'static str,
    high_color_depth: u16,
    early_flags: u16,
    product_id: &'static str,
}

impl Core {
    fn john() -> Core {
        Core {
            width: 1920,
            height: 1080,
            keyboard_layout: 1033,
            build: 9600,
            name: "JOHN-PC-LAPTOP",
            high_color_depth: 0x10,
            early_flags: 0x01,
            product_id: "3c571ed0-3415-474b-ae94-74e151b",
        }
    }

    /// TS_UD_CS_CORE with the fields after `dig_product_id` a recent client sends too.
    fn block(&self) -> Vec<u8> {
        let mut b = vec![4, 0, 8, 0];
        b.extend(self.width.to_le_bytes());
        b.extend(self.height.to_le_bytes());
        b.extend([0x01, 0xca, 0x03, 0xaa]);
        b.extend(self.keyboard_layout.to_le_bytes());
        b.extend(self.build.to_le_bytes());
        b.extend(utf16(self.name, 32));
        b.extend([4, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0]);
        b.extend([0; 64]);
        b.extend([0x01, 0xca, 1, 0, 0, 0, 0, 0]);
        b.extend(self.high_color_depth.to_le_bytes());
        b.extend([7, 0]);
        b.extend(self.early_flags.to_le_bytes());
        b.extend(utf16(self.product_id, 64));
        b.extend([0, 0, 0, 0, 0, 0]);
        block(0xc001, &b)
    }
}

/// A block the grammar skips (Client Message Channel Data), to give a short Connect-Initial a real one's size.
fn filler(len: usize) -> Vec<u8> {
    block(0xc006, &vec![0; len])
}

fn client_security() -> Vec<u8> {
    block(0xc002, &[0x1b, 0, 0, 0, 0, 0, 0, 0])
}

fn client_network(channels: &[&[u8]]) -> Vec<u8> {
    let mut b = u32::try_from(channels.len()).expect("few channels").to_le_bytes().to_vec();
    for name in channels {
        let mut raw = name.to_vec();
        raw.resize(8, 0);
        b.extend(raw);
        b.extend(0x8080_0000u32.to_le_bytes());
    }
    block(0xc003, &b)
}

/// BER's long-form length, as the MCS headers use it. The grammar reads the Connect-Initial's as an `ASN1Integer`
/// (tag 0x82, length 1, one content byte), which is right for the 256 to 511 bytes of a real Connect-Initial: the
/// tests keep theirs in that range (see [`filler`]).
fn ber_len(len: usize) -> [u8; 3] {
    let [hi, lo] = u16::try_from(len).expect("short").to_be_bytes();
    [0x82, hi, lo]
}

/// An X.224 Data TPDU carrying an MCS Connect-Initial with the GCC Conference Create Request and `blocks`.
fn mcs_connect_initial(blocks: &[Vec<u8>]) -> Vec<u8> {
    let user_data = blocks.concat();
    let params = [0x30, 0x06, 0x02, 0x01, 0x22, 0x02, 0x01, 0x02];
    let gcc = [
        &[0x00, 0x05, 0x00, 0x14, 0x7c, 0x00, 0x01][..],
        &[0x81, 0x2a],
        &[0x00, 0x08, 0x00, 0x10, 0x00, 0x01, 0xc0, 0x00],
        b"Duca",
        &(0x8000 | u16::try_from(user_data.len()).expect("short")).to_be_bytes(),
        &user_data,
    ]
    .concat();
    let octets = [&[0x04][..], &ber_len(gcc.len()), &gcc].concat();
    let body =
        [&[0x04, 0x01, 0x01, 0x04, 0x01, 0x01, 0x01, 0x01, 0xff][..], &params, &params, &params, &octets].concat();
    let mcs = [&[0x7f, 0x65][..], &ber_len(body.len()), &body].concat();
    tpkt(&[&[0x02, 0xf0, 0x80][..], &mcs].concat())
}

/// An X.224 Data TPDU carrying an MCS Connect-Response with the GCC Conference Create Response (`result`) and
/// `blocks`.
fn mcs_connect_response(result: u8, blocks: &[Vec<u8>]) -> Vec<u8> {
    let user_data = blocks.concat();
    let gcc = [
        &[0x00, 0x05, 0x00, 0x14, 0x7c, 0x00, 0x01][..],
        &[0x2a],
        &[0x14, 0x76, 0x0a, 0x01, 0x01, result, 0x01, 0xc0, 0x00],
        b"McDn",
        &(0x8000 | u16::try_from(user_data.len()).expect("short")).to_be_bytes(),
        &user_data,
    ]
    .concat();
    let octets = [&[0x04][..], &ber_len(gcc.len()), &gcc].concat();
    let body = [&[0x0a, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x03, 0x02, 0x01, 0x22][..], &octets].concat();
    let mcs = [&[0x7f, 0x66][..], &ber_len(body.len()), &body].concat();
    tpkt(&[&[0x02, 0xf0, 0x80][..], &mcs].concat())
}

fn server_core() -> Vec<u8> {
    block(0x0c01, &[4, 0, 8, 0, 0, 0, 0, 0])
}

fn server_network() -> Vec<u8> {
    block(0x0c03, &[0xeb, 0x03, 0, 0])
}

/// A proprietary certificate (`version` 1, its top bit set for a temporary one) with a 512-bit RSA key.
fn proprietary_certificate(temporary: bool) -> Vec<u8> {
    let mut key = b"RSA1".to_vec();
    key.extend(72u32.to_le_bytes());
    key.extend(512u32.to_le_bytes());
    key.extend(65537u32.to_le_bytes());
    key.extend([0x5a; 72]);
    let mut c = (1u32 | if temporary { 0x8000_0000 } else { 0 }).to_le_bytes().to_vec();
    c.extend([1, 0, 0, 0, 1, 0, 0, 0, 6, 0]);
    c.extend(u16::try_from(key.len()).expect("short").to_le_bytes());
    c.extend(key);
    c.extend([8, 0, 72, 0]);
    c.extend([0x77; 72]);
    c
}

/// An X.509 chain certificate (`version` 2).
fn x509_chain(certs: &[Vec<u8>]) -> Vec<u8> {
    let mut c = 2u32.to_le_bytes().to_vec();
    c.extend(u32::try_from(certs.len()).expect("few").to_le_bytes());
    for cert in certs {
        c.extend(u32::try_from(cert.len()).expect("short").to_le_bytes());
        c.extend(cert);
    }
    c
}

fn server_security(method: u32, level: u32, certificate: &[u8]) -> Vec<u8> {
    let mut b = method.to_le_bytes().to_vec();
    b.extend(level.to_le_bytes());
    b.extend(32u32.to_le_bytes());
    b.extend(u32::try_from(certificate.len()).expect("short").to_le_bytes());
    b.extend([0x33; 32]);
    b.extend(certificate);
    block(0x0c02, &b)
}

const SSL: u32 = 1;
const HYBRID: u32 = 2;

fn client_initial() -> Vec<u8> {
    mcs_connect_initial(&[
        Core::john().block(),
        client_security(),
        client_network(&[b"rdpdr", b"rdpsnd", b"cliprdr", b"drdynvc"]),
    ])
}

fn server_response(certificate: &[u8]) -> Vec<u8> {
    mcs_connect_response(0, &[server_core(), server_security(2, 2, certificate), server_network()])
}

// ----- running ------------------------------------------------------------------------------------------

/// rdp.log's columns after `id`, as TSV, and the actions, for `deliveries` at 100.0, 100.1, ... then the end.
fn run_at(partial: bool, deliveries: &[(bool, Vec<u8>)]) -> (Vec<Vec<String>>, Vec<Action>, Harness) {
    let mut h = Harness::new(Proto::Tcp, 3389);
    h.partial = partial;
    let mut rdp = Rdp::new(Some(KnownCerts::default()));
    for (i, (is_orig, data)) in deliveries.iter().enumerate() {
        h.run(100.0 + i as f64 / 10.0, |ctx| rdp.deliver(ctx, *is_orig, data));
    }
    h.finish(&mut rdp);
    let rows = rows(&h);
    let actions = h.actions.clone();
    (rows, actions, h)
}

fn run(deliveries: &[(bool, Vec<u8>)]) -> (Vec<Vec<String>>, Vec<Action>) {
    let (rows, actions, _) = run_at(false, deliveries);
    (rows, actions)
}

fn rows(h: &Harness) -> Vec<Vec<String>> {
    h.columns("rdp")
}

// ----- tests --------------------------------------------------------------------------------------------

#[test]
fn a_request_refused_by_the_server() {
    let (rows, actions) =
        run(&[(true, connect_request(Some(b"AWAKECODI"), Some(SSL | HYBRID))), (false, connect_confirm(Some((3, 2))))]);
    assert_eq!(
        rows,
        [row([
            "AWAKECODI",
            "SSL_NOT_ALLOWED_BY_SERVER",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "0",
            "-",
            "-",
            "-"
        ])]
    );
    assert!(actions.is_empty(), "Zeek does not confirm on X.224: {actions:?}");
}

#[test]
fn tls_selected_hands_both_directions_over() {
    let hello = build::handshakes(build::TLS10, &[build::client_hello(&[], &[0x002f], &[])]);
    let (rows, actions) = run(&[
        (true, connect_request(Some(b"AWAKECODI"), Some(SSL | HYBRID))),
        (false, connect_confirm(Some((2, HYBRID)))),
        (true, hello),
        (false, vec![0x16, 3, 1, 0, 1]),
    ]);
    assert_eq!(
        rows,
        [row(["AWAKECODI", "encrypted", "HYBRID", "-", "-", "-", "-", "-", "-", "-", "-", "-", "0", "-", "-", "-"])]
    );
    assert_eq!(actions, [Action::HandOver { analyzer: None, is_orig: false, rest: vec![] }]);
}

#[test]
fn a_request_without_cookie_logs_an_empty_one() {
    // Zeek 7.2's grammar: the cookie is optional (the rdp-no-cookie-mstshash baseline logs `(empty)`).
    let (rows, _) = run(&[(true, connect_request(None, Some(8))), (false, connect_confirm(Some((2, 8))))]);
    assert_eq!(
        rows,
        [row(["(empty)", "encrypted", "HYBRID_EX", "-", "-", "-", "-", "-", "-", "-", "-", "-", "0", "-", "-", "-"])]
    );
    // Neither cookie nor negotiation request; a confirm without negotiation.
    let (rows, actions) = run(&[(true, connect_request(Some(b"x"), None)), (false, connect_confirm(None))]);
    assert_eq!(rows[0][..3], ["x", "-", "-"]);
    assert!(actions.is_empty());
}

/// A session with RDP's own encryption, as in Zeek's rdp-proprietary-encryption trace: the MCS exchange is logged,
/// what follows the Server Security Data is not parsed.
#[test]
fn native_encryption_with_a_proprietary_certificate() {
    let (rows, actions) = run(&[
        (true, connect_request(Some(b"FTBCO\\A70"), Some(0))),
        (false, connect_confirm(Some((2, 0)))),
        (true, client_initial()),
        (false, server_response(&proprietary_certificate(false))),
        (true, vec![0xff; 40]),
        (false, vec![0x03, 0x00, 0x00, 0x05, 0x00]),
    ]);
    assert_eq!(
        rows,
        [row([
            r"FTBCO\\A70",
            "Success",
            "RDP",
            "rdpdr,rdpsnd,cliprdr,drdynvc",
            "English - United States",
            "RDP 8.1",
            "JOHN-PC-LAPTOP",
            "3c571ed0-3415-474b-ae94-74e151b",
            "1920",
            "1080",
            "16bit",
            "RSA",
            "1",
            "T",
            "Client compatible",
            "128bit",
        ])]
    );
    assert_eq!(actions, [Action::Confirm("rdp")], "confirmed once, no hand-over, no violation after");
}

#[test]
fn x509_certificates_are_counted_and_logged() {
    let certs = [build::Cert::new("rdp-leaf.example").der(), build::Cert::new("rdp-ca.example").der()];
    let (rows, actions, h) = run_at(
        false,
        &[
            (true, connect_request(Some(b"JOHN-PC  "), None)),
            (false, connect_confirm(None)),
            (true, client_initial()),
            (false, server_response(&[x509_chain(&certs), vec![0; 4]].concat())),
        ],
    );
    assert_eq!(rows[0][11..], ["X.509", "2", "T", "Client compatible", "128bit"]);
    assert_eq!(actions, [Action::Confirm("rdp")]);
    let x509: Vec<_> = h
        .logged("x509")
        .iter()
        .map(|r| ["certificate.subject", "host_cert", "client_cert"].map(|f| r.get(f).map(Value::to_tsv).unwrap()))
        .collect();
    let expected =
        ["CN=rdp-leaf.example,C=US", "CN=rdp-ca.example,C=US"].map(|s| [s.to_string(), "F".into(), "F".into()]);
    assert_eq!(x509, expected);
}

#[test]
fn color_depth_keyboard_guess_and_many_channels() {
    let core = Core { keyboard_layout: 263198, early_flags: 0x03, name: "Ωmega", ..Core::john() };
    let many: Vec<Vec<u8>> = (0..32).map(|i| format!("ch{i}").into_bytes()).collect();
    let names: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
    let (rows, actions, h) = run_at(
        false,
        &[
            (true, mcs_connect_initial(&[client_network(&names)])),
            (true, mcs_connect_initial(&[core.block(), client_network(&[b"a\0b"])])),
        ],
    );
    assert_eq!(rows[0][4], "Thai (Best Guess for 263198)");
    assert_eq!(rows[0][6], "Ωmega");
    assert_eq!(rows[0][10], "32bit", "WANT_32BPP_SESSION wins over the high color depth");
    let channels = &rows[0][3];
    assert!(channels.starts_with(r"a\x00b,ch1,ch2,"), "a later list overwrites from the start: {channels}");
    assert_eq!(h.weirds.len(), 1);
    assert_eq!(
        (h.weirds[0].name.as_str(), h.weirds[0].addl.as_deref()),
        ("RDP_channels_requested_exceeds_max", Some("32"))
    );
    assert_eq!(actions, [Action::Confirm("rdp")]);
}

#[test]
fn utf16_converts_leniently_and_stops_at_nul() {
    assert_eq!(utf16_to_utf8(&utf16("JOHN", 32)).unwrap(), b"JOHN");
    // A surrogate pair, then an unpaired low surrogate encoded as it is.
    assert_eq!(
        utf16_to_utf8(&[0x3d, 0xd8, 0x00, 0xde, 0x00, 0xdc]).unwrap(),
        [0xf0, 0x9f, 0x98, 0x80, 0xed, 0xb0, 0x80]
    );
    assert_eq!(utf16_to_utf8(&[0x41, 0x00, 0x3d, 0xd8]), None, "a high surrogate last");
    // The client name ending in a high surrogate: its raw 32 bytes and a weird.
    let mut core = Core::john().block();
    core[4 + 20 + 30..4 + 20 + 32].copy_from_slice(&[0x3d, 0xd8]);
    let (rows, _, h) = run_at(false, &[(true, mcs_connect_initial(&[core]))]);
    assert!(rows[0][6].starts_with(r"J\x00O\x00H\x00N\x00-\x00"), "{}", rows[0][6]);
    assert_eq!(rows[0][7], "3c571ed0-3415-474b-ae94-74e151b");
    assert_eq!(h.weirds.len(), 1);
    assert_eq!(
        (h.weirds[0].name.as_str(), h.weirds[0].addl.as_deref()),
        ("utf16_conversion_failed", Some("utf16 conversion failed in utf16_to_utf8_val"))
    );
}

#[test]
fn every_split_of_the_client_stream_gives_the_same_record() {
    let stream = [connect_request(Some(b"JOHN"), Some(SSL)), client_initial()].concat();
    let reply = [connect_confirm(Some((3, 2))), server_response(&proprietary_certificate(true))].concat();
    let (whole, _) = run(&[(true, stream.clone()), (false, reply.clone())]);
    assert_eq!(whole[0][..4], ["JOHN", "Success", "RDP", "rdpdr,rdpsnd,cliprdr,drdynvc"]);
    assert_eq!(whole[0][13], "F", "a temporary certificate");
    for at in 0..=stream.len() {
        let (split, actions) =
            run(&[(true, stream[..at].to_vec()), (true, stream[at..].to_vec()), (false, reply.clone())]);
        assert_eq!(split, whole, "split at {at}");
        assert_eq!(actions, [Action::Confirm("rdp")], "split at {at}");
    }
    for at in 0..=reply.len() {
        let (split, _) = run(&[(true, stream.clone()), (false, reply[..at].to_vec()), (false, reply[at..].to_vec())]);
        assert_eq!(split, whole, "reply split at {at}");
    }
}

#[test]
fn malformed_messages_are_violations_that_write_the_record() {
    let with = |at: usize, byte: u8, mut m: Vec<u8>| {
        m[at] = byte;
        m
    };
    let initial = client_initial();
    let duca = initial.windows(4).position(|w| w == b"Duca").unwrap();
    let response = server_response(&proprietary_certificate(false));
    let cert_version = response.windows(4).position(|w| w == [1, 0, 0, 0]).unwrap();
    let cases: Vec<(Vec<u8>, bool, RdpError)> = vec![
        (connect_confirm(Some((1, 0))), false, RdpError::InvalidCase("Connect_Confirm_Record", 1)),
        (with(13, 9, connect_confirm(Some((2, 1)))), false, RdpError::Enforce("RDP_Negotiation_Response:length")),
        (with(duca + 1, b'x', initial.clone()), true, RdpError::StringMismatch("Duca")),
        (tpkt(&[2]), true, RdpError::OutOfBound("COTP:pdu")),
        (x224(&[0xe0, 0, 0, 0, 0, 0, 1]), true, RdpError::OutOfBound("RDP_Negotiation_Request")),
        (
            x224(&[
                0xe0, 0, 0, 0, 0, 0, b'C', b'o', b'o', b'k', b'i', b'e', b':', b' ', b'm', b's', b't', b's', b'h',
                b'a', b's', b'h', b'=', b'a',
            ]),
            true,
            RdpError::StringMismatch("\\x0d\\x0a"),
        ),
        (
            mcs_connect_initial(&[filler(150), Core::john().block()[..150].to_vec()]),
            true,
            RdpError::OutOfBound("Data_Block:block"),
        ),
        (mcs_connect_initial(&[filler(300), vec![1, 0xc0, 2, 0]]), true, RdpError::OutOfBound("Data_Block:block")),
        (
            mcs_connect_initial(&[filler(200), block(0xc001, &[0; 40])]),
            true,
            RdpError::OutOfBound("Client_Core_Data:client_name"),
        ),
        (
            mcs_connect_initial(&[filler(300), client_network(&[b"x"])[..12].to_vec(), vec![0; 4]]),
            true,
            RdpError::OutOfBound("Data_Block:block"),
        ),
        (
            mcs_connect_initial(&[filler(300), block(0xc003, &[5, 0, 0, 0, 1, 2, 3])]),
            true,
            RdpError::OutOfBound("Client_Network_Data:channel_def_array"),
        ),
        (with(cert_version, 3, response.clone()), false, RdpError::InvalidCase("Server_Certificate", 3)),
        (
            mcs_connect_response(0, &[block(0x0c02, &[1, 0, 0, 0, 1, 0, 0, 0])]),
            false,
            RdpError::OutOfBound("Server_Security_Data:server_random_length"),
        ),
    ];
    for (message, is_orig, error) in cases {
        let (rows, actions) = run(&[(true, connect_request(Some(b"me"), None)), (is_orig, message.clone())]);
        assert_eq!(rows.len(), 1, "{error:?}");
        assert_eq!(rows[0][0], "me");
        assert!(actions.contains(&Action::Violation(error.to_string(), None)), "{error:?}: {actions:?}");
        // Every prefix and the message alone: no panic, and never a record without RDP data.
        for end in 0..message.len() {
            let (rows, _) = run(&[(is_orig, message[..end].to_vec())]);
            assert!(rows.len() <= 1);
        }
    }
    assert_eq!(
        RdpError::Enforce("RDP_Negotiation_Response:length").to_string(),
        "Binpac exception: binpac exception: &enforce violation : RDP_Negotiation_Response:length"
    );
}

#[test]
fn the_record_is_written_after_the_check_interval() {
    let mut h = Harness::new(Proto::Tcp, 3389);
    let mut rdp = Rdp::new(Some(KnownCerts::default()));
    h.run(100.0, |ctx| rdp.deliver(ctx, true, &connect_request(Some(b"early"), None)));
    // The timer at 110 finds the record exactly 10 s old and goes again at 120.
    h.run(110.0, |ctx| rdp.deliver(ctx, false, &connect_confirm(Some((3, 1)))));
    assert!(rows(&h).is_empty());
    h.run(119.9, |ctx| rdp.deliver(ctx, false, b"\x03"));
    assert!(rows(&h).is_empty());
    h.run(120.0, |ctx| rdp.deliver(ctx, false, b"\x00"));
    assert_eq!(rows(&h)[0][..2], ["early", "SSL_REQUIRED_BY_SERVER"]);
    h.finish(&mut rdp);
    assert_eq!(rows(&h).len(), 1, "written once");

    // No cookie, layout nor result: nothing is written.
    let (rows, _) = run(&[(false, connect_confirm(Some((2, 0))))]);
    assert!(rows.is_empty());
}

#[test]
fn partial_connections_and_gaps() {
    let (late, _, _) = run_at(true, &[(true, connect_request(Some(b"late"), None))]);
    assert!(late.is_empty(), "a connection joined mid-stream is ignored");
    let mut h = Harness::new(Proto::Tcp, 3389);
    let mut rdp = Rdp::new(Some(KnownCerts::default()));
    let request = connect_request(Some(b"gap"), None);
    h.deliver(&mut rdp, true, &request[..5]);
    h.run(1.0, |ctx| rdp.undelivered(ctx, false, 10));
    h.deliver(&mut rdp, true, &request[5..]);
    h.deliver(&mut rdp, true, &request);
    assert!(rdp.is_done(), "nothing can come of it any more");
    h.finish(&mut rdp);
    assert!(rows(&h).is_empty() && h.actions.is_empty());
}

#[test]
fn signatures_follow_zeeks_dpd_rules() {
    let request = connect_request(Some(b"me"), None);
    assert!(detect(Proto::Tcp, true, &request));
    assert!(!detect(Proto::Udp, true, &request));
    assert!(detect(Proto::Tcp, true, &client_initial()), "Duca, then a channel name");
    assert!(!detect(Proto::Tcp, true, &mcs_connect_initial(&[Core::john().block()])), "Duca without channels");
    assert!(!detect(Proto::Tcp, true, b"\nCookie: mstshash=me"), "no newline before it");
    assert!(detect(Proto::Tcp, false, &connect_confirm(None)));
    assert!(detect(Proto::Tcp, false, b"\x02\xf0\x80\x7f\x66McDn"));
    assert!(
        !detect(Proto::Tcp, false, &server_response(&proprietary_certificate(false))),
        "a real Connect Response has a 0x0a (the result's tag) before McDn"
    );
    assert!(!detect(Proto::Tcp, false, b"\x03\x00\n\x0b\x06\xd0"));
    assert!(SPEC.detect.unwrap().matches(Proto::Tcp, false, &connect_confirm(None), &request));
    assert!(!SPEC.detect.unwrap().matches(Proto::Tcp, true, &request, b""), "the server's side is required");
}

/// Through the engine on 3389: a native session confirms `rdp`; a TLS one is handed to a new content detection
/// that finds TLS, and never confirms `rdp` (Zeek's analyzer confirms on MCS data only). rdp.log carries the
/// connection's uid.
#[test]
fn through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];
    let client_hello = build::handshakes(build::TLS12, &[build::client_hello(&[], &[0xc02f], &[])]);
    let server_hello =
        build::handshakes(build::TLS12, &[build::server_hello(build::TLS12, &[7; 32], &[], 0xc02f, &[])]);
    let native = [
        (true, connect_request(Some(b"native"), Some(0))),
        (false, connect_confirm(Some((2, 0)))),
        (true, client_initial()),
        (false, server_response(&proprietary_certificate(false))),
    ];
    let tls = [
        (true, connect_request(Some(b"tls"), Some(SSL))),
        (false, connect_confirm(Some((2, SSL)))),
        (true, client_hello),
        (false, server_hello),
    ];
    let mut frames = Vec::new();
    for (port, messages) in [(40000, &native), (40001, &tls)] {
        frames.extend(tcp_exchange((CLIENT, port), (SERVER, 3389), messages));
    }
    let records = engine_records(&frames);
    let conn = |port: &str| records.iter().find(|r| r.schema.path == "conn" && field(r, "id.orig_p") == port).unwrap();
    assert_eq!(field(conn("40000"), "service"), "rdp");
    assert_eq!(field(conn("40001"), "service"), "ssl");
    let logged: Vec<_> = records
        .iter()
        .filter(|r| r.schema.path == "rdp")
        .map(|r| ["uid", "cookie", "result", "security_protocol"].map(|f| field(r, f)))
        .collect();
    assert_eq!(
        logged,
        [
            [field(conn("40000"), "uid"), "native".into(), "Success".into(), "RDP".into()],
            [field(conn("40001"), "uid"), "tls".into(), "encrypted".into(), "SSL".into()],
        ]
    );
    assert_eq!(records.iter().filter(|r| r.schema.path == "ssl").count(), 1);
}

/// The fuzz entry point over a real session's bytes with one byte changed at a time: never a panic.
#[test]
fn mutated_sessions_never_panic() {
    let streams = [
        connect_request(Some(b"me"), Some(SSL)),
        connect_confirm(Some((2, 0))),
        client_initial(),
        server_response(&[x509_chain(&[build::Cert::new("m").der()]), vec![0; 2]].concat()),
        server_response(&proprietary_certificate(false)),
    ];
    for (i, stream) in streams.iter().enumerate() {
        for at in (0..stream.len()).step_by(3) {
            let mut bytes = stream.clone();
            bytes[at] ^= 0xa5;
            // The fuzz driver's layout: control (direction), length, bytes; in chunks of up to 255.
            let mut input = Vec::new();
            for chunk in bytes.chunks(200) {
                input.extend([u8::try_from(i % 2).unwrap(), u8::try_from(chunk.len()).unwrap()]);
                input.extend(chunk);
            }
            fuzz(&input);
        }
    }
}
