//! The RFC 9001 Appendix A example (and RFC 9369's v2 server Initial) as test vectors: keys, header protection and
//! payloads; then the analyzer over exchanges built from them, against the quic.log and ssl.log rows Zeek's QUIC
//! baselines show for the same kind of exchange.

use super::crypto::CryptoStream;
use super::protection::{InitialSecrets, Opener, initial_secrets, sealing::seal};
use super::wire::{self, LongKind, VERSION_1, VERSION_2};
use super::*;
use crate::analyzers::testing::Harness;
use crate::logs::LogRecord;

fn unhex(s: &str) -> Vec<u8> {
    let compact: String = s.split_whitespace().collect();
    hex::decode(compact).expect("test vector is hex")
}

/// A.1: the client's Destination Connection ID.
const DCID: &str = "8394c8f03e515708";

/// A.2: the client's CRYPTO frame (a ClientHello for example.com offering ALPN "alpn"), before its PADDING.
const CLIENT_CRYPTO_FRAME: &str = "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
    04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
    616d706c652e636f6dff01000100000a00080006001d00170018001000070005
    04616c706e000500050100000000003300260024001d00209370b2c9caa47fba
    baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
    0d0010000e0403050306030203080408050806002d00020101001c0002400100
    3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
    75300901100f088394c8f03e51570806048000ffff";

/// A.2: the unprotected header (packet number 2 in four bytes) and the protected packet.
const CLIENT_HEADER: &str = "c300000001088394c8f03e5157080000449e00000002";
const CLIENT_INITIAL: &str = include_str!("testdata/rfc9001-a2-client-initial.hex");
/// A.2: the payload is padded to this many bytes.
const CLIENT_PAYLOAD_LEN: usize = 1162;

/// A.3: the server's ACK and CRYPTO (ServerHello: TLS_AES_128_GCM_SHA256, x25519, TLS 1.3) frames.
const SERVER_FRAMES: &str = "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739
    88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94
    0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00
    020304";
const SERVER_HEADER: &str = "c1000000010008f067a5502a4262b50040750001";
const SERVER_INITIAL: &str = "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a
    5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3
    dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84
    022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4
    2158407dd074ee";
/// RFC 9369 A.3: the same server Initial protected as QUIC version 2.
const SERVER_INITIAL_V2: &str = "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698
    baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17
    f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2
    c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8
    4bed8521e2e140";
/// A.4: a Retry from the server.
const RETRY: &str = "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba";

fn padded(frames: &[u8], len: usize) -> Vec<u8> {
    let mut payload = frames.to_vec();
    payload.resize(len.max(frames.len()), 0);
    payload
}

/// A client Initial as in A.2 (empty source id, no token, four-byte packet number) for `dcid` carrying `frames`.
fn client_initial(dcid: &[u8], packet_number: u32, frames: &[u8]) -> Vec<u8> {
    let payload = padded(frames, CLIENT_PAYLOAD_LEN);
    let length = u16::try_from(4 + payload.len() + 16).expect("fits") | 0x4000;
    let mut header = vec![0xc3, 0, 0, 0, 1, u8::try_from(dcid.len()).expect("short id")];
    header.extend_from_slice(dcid);
    header.extend_from_slice(&[0, 0]);
    header.extend_from_slice(&length.to_be_bytes());
    header.extend_from_slice(&packet_number.to_be_bytes());
    seal(&initial_secrets(VERSION_1, dcid, true), &header, 4, &payload)
}

/// The A.3 server Initial, protected with the keys of `dcid`.
fn server_initial(dcid: &[u8]) -> Vec<u8> {
    seal(&initial_secrets(VERSION_1, dcid, false), &unhex(SERVER_HEADER), 2, &unhex(SERVER_FRAMES))
}

fn crypto_frame(offset: usize, data: &[u8]) -> Vec<u8> {
    let varint = |v: usize| (u16::try_from(v).expect("small") | 0x4000).to_be_bytes();
    let mut frame = vec![0x06];
    frame.extend_from_slice(&varint(offset));
    frame.extend_from_slice(&varint(data.len()));
    frame.extend_from_slice(data);
    frame
}

/// The ClientHello handshake message inside A.2's CRYPTO frame.
fn client_hello() -> Vec<u8> {
    unhex(CLIENT_CRYPTO_FRAME)[4..].to_vec()
}

fn secrets(key: &str, iv: &str, hp: &str) -> InitialSecrets {
    InitialSecrets {
        key: unhex(key).try_into().expect("16 bytes"),
        iv: unhex(iv).try_into().expect("12 bytes"),
        hp: unhex(hp).try_into().expect("16 bytes"),
    }
}

#[test]
fn initial_keys_match_rfc9001_a1() {
    let dcid = unhex(DCID);
    assert_eq!(
        initial_secrets(VERSION_1, &dcid, true),
        secrets("1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2")
    );
    assert_eq!(
        initial_secrets(VERSION_1, &dcid, false),
        secrets("cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e", "c206b8d9b9f0f37644430b490eeaa314")
    );
    // Another connection id, or v2's salt and labels, give other keys.
    assert_ne!(initial_secrets(VERSION_1, b"other", true), initial_secrets(VERSION_1, &dcid, true));
    assert_ne!(initial_secrets(VERSION_2, &dcid, true), initial_secrets(VERSION_1, &dcid, true));
}

/// Parses the long header of `packet` and opens it with the keys of `dcid` for the sending side.
fn open(packet: &[u8], version: u32, from_client: bool) -> (super::protection::UnprotectedHeader, Vec<u8>) {
    let header = wire::long_header(packet).expect("long header");
    let LongKind::Initial { pn_offset, payload_len } = header.kind else { panic!("an Initial: {header:?}") };
    assert_eq!(header.len, packet.len(), "one packet fills the datagram");
    let opener = Opener::new(&initial_secrets(version, &unhex(DCID), from_client)).expect("keys");
    let unprotected = opener.unprotect_header(packet, pn_offset).expect("sample present");
    (unprotected, opener.open(packet, pn_offset, payload_len).expect("opens"))
}

#[test]
fn client_initial_of_rfc9001_a2_decrypts() {
    let packet = unhex(CLIENT_INITIAL);
    let (header, plain) = open(&packet, VERSION_1, true);
    let unprotected = unhex(CLIENT_HEADER);
    assert_eq!(header.first_byte, unprotected[0]);
    assert_eq!((header.pn_len, header.packet_number), (4, 2));
    assert_eq!(plain, padded(&unhex(CLIENT_CRYPTO_FRAME), CLIENT_PAYLOAD_LEN));
    // Our sealing (used to build the exchanges below) reproduces the RFC's packet byte for byte.
    assert_eq!(client_initial(&unhex(DCID), 2, &unhex(CLIENT_CRYPTO_FRAME)), packet);
}

#[test]
fn server_initials_of_rfc9001_a3_and_rfc9369_decrypt() {
    let (header, plain) = open(&unhex(SERVER_INITIAL), VERSION_1, false);
    assert_eq!((header.first_byte, header.pn_len, header.packet_number), (0xc1, 2, 1));
    assert_eq!(plain, unhex(SERVER_FRAMES));
    assert_eq!(server_initial(&unhex(DCID)), unhex(SERVER_INITIAL));

    let (header, plain) = open(&unhex(SERVER_INITIAL_V2), VERSION_2, false);
    assert_eq!((header.first_byte, header.pn_len, header.packet_number), (0xd1, 2, 1));
    assert_eq!(plain, unhex(SERVER_FRAMES));
}

#[test]
fn tampered_or_misaddressed_initial_does_not_open() {
    let mut packet = unhex(CLIENT_INITIAL);
    let last = packet.len() - 1;
    packet[last] ^= 1;
    let header = wire::long_header(&packet).expect("long header");
    let LongKind::Initial { pn_offset, payload_len } = header.kind else { panic!("an Initial") };
    let opener = Opener::new(&initial_secrets(VERSION_1, &unhex(DCID), true)).expect("keys");
    assert_eq!(opener.open(&packet, pn_offset, payload_len), Err(QuicError::DecryptionFailed));
    let server_keys = Opener::new(&initial_secrets(VERSION_1, &unhex(DCID), false)).expect("keys");
    assert_eq!(server_keys.open(&unhex(CLIENT_INITIAL), pn_offset, payload_len), Err(QuicError::DecryptionFailed));
}

fn tsv(r: &LogRecord, from: usize) -> String {
    r.values[from..].iter().map(|v| v.to_tsv()).collect::<Vec<_>>().join("\t")
}

fn logged(h: &Harness, path: &str) -> Vec<String> {
    h.logged(path).iter().map(|r| tsv(r, 6)).collect()
}

fn confirmations(h: &Harness) -> Vec<&'static str> {
    h.actions.iter().filter_map(|a| if let Action::Confirm(s) = a { Some(*s) } else { None }).collect()
}

fn violations(h: &Harness) -> Vec<String> {
    h.actions.iter().filter_map(|a| if let Action::Violation(r, _) = a { Some(r.clone()) } else { None }).collect()
}

fn run(datagrams: &[(bool, Vec<u8>)]) -> Harness {
    let mut h = Harness::new(Proto::Udp, 443);
    let mut quic = Quic::new();
    for (is_orig, datagram) in datagrams {
        h.deliver(&mut quic, *is_orig, datagram);
    }
    h.finish(&mut quic);
    h
}

/// The ssl.log columns after the connection id, as Zeek's QUIC baselines show them for a v1 or v2 handshake
/// (chromium, curl-http3, quicv2-http3-443): TLS 1.3 from the ServerHello, never established.
const SSL_ROW: &str = "TLSv13\tTLS_AES_128_GCM_SHA256\tx25519\texample.com\tF\t-\t-\tF\tCs\t-\t-\t-";

#[test]
fn rfc_exchange_gives_zeeks_quic_and_ssl_rows() {
    let h = run(&[(true, unhex(CLIENT_INITIAL)), (false, unhex(SERVER_INITIAL))]);
    // QUIC confirms on the first decryption, then TLS on the ClientHello: conn.log's service is `quic,ssl`.
    assert_eq!(confirmations(&h), ["quic", "ssl"]);
    assert_eq!(violations(&h), Vec::<String>::new());
    assert_eq!(logged(&h, "quic"), ["1\t8394c8f03e515708\t(empty)\tf067a5502a4262b5\texample.com\talpn\tISis"]);
    assert_eq!(logged(&h, "ssl"), [SSL_ROW]);
    assert!(h.weirds.is_empty(), "{:?}", h.weirds);
}

#[test]
fn client_hello_alone_logs_what_the_client_said() {
    let h = run(&[(true, unhex(CLIENT_INITIAL))]);
    assert_eq!(logged(&h, "quic"), ["1\t8394c8f03e515708\t(empty)\t-\texample.com\talpn\tIS"]);
    assert_eq!(logged(&h, "ssl"), ["-\t-\t-\texample.com\tF\t-\t-\tF\tC\t-\t-\t-"]);
}

#[test]
fn quic_v2_server_initial_decrypts_with_the_clients_connection_id() {
    // A v2 client Initial: the v1 packet's type bits renumbered (RFC 9369: Initial is 0b01) and v2 keys.
    let dcid = unhex(DCID);
    let mut header = unhex(CLIENT_HEADER);
    header[0] = 0xd3;
    header[1..5].copy_from_slice(&VERSION_2.to_be_bytes());
    let payload = padded(&unhex(CLIENT_CRYPTO_FRAME), CLIENT_PAYLOAD_LEN);
    let client = seal(&initial_secrets(VERSION_2, &dcid, true), &header, 4, &payload);
    assert!(detect(Proto::Udp, true, &client));
    let h = run(&[(true, client), (false, unhex(SERVER_INITIAL_V2))]);
    assert_eq!(confirmations(&h), ["quic", "ssl"]);
    assert_eq!(logged(&h, "quic"), ["quicv2\t8394c8f03e515708\t(empty)\tf067a5502a4262b5\texample.com\talpn\tISis"]);
    assert_eq!(logged(&h, "ssl"), [SSL_ROW]);
}

#[test]
fn retry_logs_the_record_and_starts_over_on_the_same_tls_session() {
    // As Zeek's quic-go retry baseline: `ISr`, then a record for the new connection id; one ssl.log record `CCs`.
    let new_dcid = unhex("1b036a11");
    let h = run(&[
        (true, unhex(CLIENT_INITIAL)),
        (false, unhex(RETRY)),
        (true, client_initial(&new_dcid, 0, &unhex(CLIENT_CRYPTO_FRAME))),
        (false, server_initial(&new_dcid)),
    ]);
    assert_eq!(
        logged(&h, "quic"),
        [
            "1\t8394c8f03e515708\t(empty)\t-\texample.com\talpn\tISr",
            "1\t1b036a11\t(empty)\tf067a5502a4262b5\texample.com\talpn\tISis"
        ]
    );
    assert_eq!(logged(&h, "ssl"), ["TLSv13\tTLS_AES_128_GCM_SHA256\tx25519\texample.com\tF\t-\t-\tF\tCCs\t-\t-\t-"]);
}

#[test]
fn client_hello_split_across_initials_out_of_order_is_reassembled() {
    let hello = client_hello();
    let (head, tail) = hello.split_at(100);
    let dcid = unhex(DCID);
    let h = run(&[
        (true, client_initial(&dcid, 0, &crypto_frame(100, tail))),
        (true, client_initial(&dcid, 1, &crypto_frame(0, head))),
    ]);
    assert_eq!(logged(&h, "quic"), ["1\t8394c8f03e515708\t(empty)\t-\texample.com\talpn\tIIS"]);
    assert_eq!(confirmations(&h), ["quic", "ssl"]);
}

#[test]
fn short_packets_count_in_powers_of_two_and_greased_packets_are_discarded() {
    let mut datagrams = vec![(true, unhex(CLIENT_INITIAL)), (false, unhex(SERVER_INITIAL))];
    // The server's Initial carried an empty Destination Connection ID: short headers are one byte plus payload.
    datagrams.extend((0..4).map(|_| (true, vec![0x40, 1, 2, 3])));
    datagrams.push((false, vec![0x00, 9, 9]));
    let h = run(&datagrams);
    assert_eq!(logged(&h, "quic")[0].rsplit('\t').next(), Some("ISisOOOx"));
}

#[test]
fn connection_close_in_an_initial_logs_the_record() {
    let mut frames = unhex(CLIENT_CRYPTO_FRAME);
    frames.extend_from_slice(&[0x1c, 0x01, 0x00, 0x03, b'b', b'y', b'e']);
    let h = run(&[(true, client_initial(&unhex(DCID), 0, &frames)), (true, vec![0x40, 0])]);
    assert_eq!(logged(&h, "quic"), ["1\t8394c8f03e515708\t(empty)\t-\texample.com\talpn\tISC"]);
    // The short packet after it found no record.
    assert_eq!(
        h.weirds.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["QUIC_spurious_short_packet_threshold_crossed"]
    );
}

#[test]
fn garbage_on_udp_443_is_never_confirmed() {
    let dcid = unhex(DCID);
    let mut undecryptable = client_initial(&dcid, 0, &unhex(CLIENT_CRYPTO_FRAME));
    undecryptable[30] ^= 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no fixed bit", vec![0x00; 64]),
        ("short header", b"\x41 GET / HTTP/1.1".to_vec()),
        ("unknown version", [&[0xc0, 0x0a, 0x0a, 0x0a, 0x0a, 0, 0][..], &[7; 40]].concat()),
        ("truncated initial", unhex(CLIENT_INITIAL)[..600].to_vec()),
        ("undecryptable initial", undecryptable),
        ("dns query", unhex("1234010000010000000000000377777706676f6f676c6503636f6d0000010001")),
    ];
    for (what, datagram) in cases {
        let h = run(&[(true, datagram.clone()), (false, datagram)]);
        assert_eq!(confirmations(&h), Vec::<&str>::new(), "{what}");
        assert!(h.logged("ssl").is_empty(), "{what}");
    }
    assert!(!detect(Proto::Udp, true, &[0x00; 64]));
    assert!(!detect(Proto::Tcp, true, &unhex(CLIENT_INITIAL)));
    assert!(detect(Proto::Udp, true, &unhex(CLIENT_INITIAL)));
}

#[test]
fn refusals_match_zeeks_reasons() {
    let unknown = run(&[(true, [&[0xc0, 0x0a, 0x0a, 0x0a, 0x0a, 0, 0][..], &[7; 40]].concat())]);
    assert_eq!(violations(&unknown), ["unhandled QUIC version 0xa0a0a0a"]);
    assert_eq!(logged(&unknown, "quic"), ["unknown-a0a0a0a\t-\t(empty)\t-\t-\t-\tU"]);

    let mut bad = unhex(CLIENT_INITIAL);
    bad[100] ^= 1;
    let undecryptable = run(&[(true, bad)]);
    assert_eq!(violations(&undecryptable), ["decryption failed"]);
    // The packet event came before the decryption: Zeek logs the record when the connection goes.
    assert_eq!(logged(&undecryptable, "quic"), ["1\t8394c8f03e515708\t(empty)\t-\t-\t-\tI"]);

    let mut frames = unhex(CLIENT_CRYPTO_FRAME);
    frames.push(0x08);
    let stream_frame = run(&[(true, client_initial(&unhex(DCID), 0, &frames))]);
    assert_eq!(confirmations(&stream_frame), ["quic", "ssl"]);
    assert_eq!(violations(&stream_frame), ["unhandled frame type 8"]);
}

#[test]
fn crypto_stream_hands_over_one_message_and_refuses_more() {
    let hello = client_hello();
    let mut stream = CryptoStream::default();
    assert_eq!(stream.write(10, &hello[10..]), (None, Ok(())));
    assert_eq!(stream.write(10, &[0xee; 5]), (None, Ok(())), "a retransmission waits too");
    let (message, result) = stream.write(0, &hello[..12]);
    assert_eq!((message.as_deref(), result), (Some(&hello[..]), Ok(())));
    assert!(stream.finished());
    let (message, result) = stream.write(hello.len() as u64, b"x");
    assert_eq!(message, None);
    assert!(matches!(result, Err(QuicError::TooMuchCrypto { .. })), "{result:?}");

    // A message longer than TLS allows is never handed over.
    let mut huge = CryptoStream::default();
    assert_eq!(huge.write(0, &[1, 0xff, 0xff, 0xff, 0]), (None, Ok(())));
    assert!(!huge.finished());
    // Far-away offsets are not kept.
    let mut far = CryptoStream::default();
    assert_eq!(far.write(u64::MAX - 3, &[1; 16]), (None, Ok(())));
    assert_eq!(far.write(1 << 40, &[1; 16]), (None, Ok(())));
}

#[test]
fn fuzz_entry_survives_hostile_inputs() {
    let hello = client_hello();
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        vec![0, 0, 5, 0xc0, 0, 0, 0, 1],
        [&[1u8, 0, 200][..], &crypto_frame(0, &hello)[..200]].concat(),
        vec![1, 0, 8, 0x02, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![1, 0, 4, 0x06, 0xff, 0xff, 0xff],
        vec![0, 0, 30, 0xff, 0, 0, 0, 1, 20, 0, 1, 2, 3],
    ];
    for input in inputs {
        fuzz(&input);
    }
}

/// Through the engine: QUIC attaches by port or by Zeek's Initial signatures, names conn.log's `service` in Zeek's
/// confirmation order, and writes quic.log and ssl.log; other traffic on its ports names nothing.
mod through_the_engine {
    use super::*;
    use crate::config::AnalysisConfig;
    use crate::decode::LinkType;
    use crate::decode::test_frames::ipv4_udp;
    use crate::engine::Engine;

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];

    /// The records of one flow: client datagrams to `port`, server datagrams back.
    fn records(port: u16, datagrams: &[(bool, Vec<u8>)]) -> Vec<LogRecord> {
        let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
        for (i, (from_client, payload)) in datagrams.iter().enumerate() {
            let (src, dst) =
                if *from_client { ((CLIENT, 50000), (SERVER, port)) } else { ((SERVER, port), (CLIENT, 50000)) };
            engine.process_packet(1.0 + i as f64 * 0.01, LinkType::Raw, &ipv4_udp(src, dst, payload));
        }
        engine.finish();
        engine.drain_records().collect()
    }

    fn column(records: &[LogRecord], path: &str, field: &str) -> Vec<String> {
        records
            .iter()
            .filter(|r| r.schema.path == path)
            .map(|r| r.values[r.schema.field_index(field).expect("known field")].to_tsv())
            .collect()
    }

    #[test]
    fn rfc_exchange_on_443_and_on_a_custom_port() {
        for port in [443, 4433] {
            let exchange = [(true, unhex(CLIENT_INITIAL)), (false, unhex(SERVER_INITIAL))];
            let records = records(port, &exchange);
            assert_eq!(column(&records, "conn", "service"), ["quic,ssl"], "port {port}");
            assert_eq!(column(&records, "quic", "history"), ["ISis"], "port {port}");
            assert_eq!(column(&records, "ssl", "version"), ["TLSv13"], "port {port}");
            assert_eq!(column(&records, "quic", "id.resp_p"), [port.to_string()]);
        }
    }

    #[test]
    fn other_traffic_on_quic_ports_names_no_service() {
        for port in [443, 784, 853] {
            let records = records(port, &[(true, b"\x16\x03\x01 not quic".to_vec()), (false, vec![0x80; 40])]);
            assert_eq!(column(&records, "conn", "service"), ["-"], "port {port}");
            assert!(column(&records, "ssl", "version").is_empty());
        }
    }

    /// A ServerHello the TLS analyzer cannot parse (its session id longer than the message) after the ClientHello
    /// confirmed TLS: like Zeek's failed child analyzer, `ssl` leaves the services and analyzer.log says why,
    /// while QUIC stays confirmed.
    #[test]
    fn a_tls_failure_inside_quic_removes_only_ssl() {
        const SESSION_ID_LEN_AT: usize = 47; // ACK 5 + CRYPTO header 4 + handshake header 4 + version 2 + random 32
        let mut frames = unhex(SERVER_FRAMES);
        assert_eq!(frames[SESSION_ID_LEN_AT], 0, "A.3's ServerHello has an empty session id");
        frames[SESSION_ID_LEN_AT] = 0x50;
        let dcid = unhex("8394c8f03e515708");
        let broken = seal(&initial_secrets(VERSION_1, &dcid, false), &unhex(SERVER_HEADER), 2, &frames);
        let records = records(443, &[(true, unhex(CLIENT_INITIAL)), (false, broken)]);
        assert_eq!(column(&records, "conn", "service"), ["quic"]);
        assert_eq!(column(&records, "analyzer", "analyzer_name"), ["SSL"]);
        assert_eq!(column(&records, "quic", "history"), ["ISi"]);
    }
}
