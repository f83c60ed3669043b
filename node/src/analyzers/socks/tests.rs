use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::{Harness, row};
use crate::logs::LogRecord;

// A SOCKSv5 exchange shaped after Zeek's socks trace1 btest: no authentication, a CONNECT by name, an IPv4 bound
// address.
const GREETING: &[u8] = &[5, 1, 0];
const NO_AUTH: &[u8] = &[5, 0];
const CONNECT_BY_NAME: &[u8] = b"\x05\x01\x00\x03\x0ewww.osnews.com\x00\x50";
const BOUND_V4: &[u8] = &[5, 0, 0, 1, 192, 168, 0, 31, 0x0a, 0x80];

/// The IPv6 address of Zeek's socks5-ipv6 btest.
const V6: [u8; 16] = [0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66, 0x77, 0x77, 0x88, 0x88];

/// Runs `deliveries` (the i-th at 100 + i seconds) through a SOCKS analyzer on port 1080, then ends the connection.
fn run_with(analyzer: &mut Socks, deliveries: &[(bool, &[u8])]) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 1080);
    for (i, (is_orig, data)) in deliveries.iter().enumerate() {
        h.run(100.0 + i as f64, |ctx| analyzer.deliver(ctx, *is_orig, data));
    }
    h.finish(analyzer);
    h
}

fn run(deliveries: &[(bool, &[u8])]) -> Harness {
    run_with(&mut Socks::default(), deliveries)
}

/// socks.log's records as TSV: `ts`, then the columns after `id`.
fn rows(h: &Harness) -> Vec<Vec<String>> {
    h.timed_columns("socks")
}

/// tunnel.log's lines as (ts, id.orig_p, id.resp_p, tunnel_type, action).
fn tunnels(h: &Harness) -> Vec<[String; 5]> {
    let columns = ["ts", "id.orig_p", "id.resp_p", "tunnel_type", "action"];
    h.logged("tunnel").iter().map(|r| columns.map(|c| r.get(c).map(Value::to_tsv).unwrap_or_default())).collect()
}

fn hand_over() -> Action {
    Action::HandOver { analyzer: None, is_orig: false, rest: vec![] }
}

/// A SOCKSv5 request or reply (`first` is the command or reply code) for an address of `atyp`.
fn v5(first: u8, atyp: u8, address: &[u8], port: u16) -> Vec<u8> {
    let mut m = vec![5, first, 0, atyp];
    m.extend(address);
    m.extend(port.to_be_bytes());
    m
}

#[test]
fn socks5_without_authentication() {
    let h = run(&[(true, GREETING), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, BOUND_V4)]);
    // trace1's record: the request's name, the bound address, the status of reply 0; `ts` is the request's.
    assert_eq!(
        rows(&h),
        [row(["102.000000", "5", "-", "-", "succeeded", "-", "www.osnews.com", "80", "192.168.0.31", "-", "2688"])]
    );
    assert_eq!(h.actions, [Action::Confirm("socks"), hand_over()]);
    // trace1's tunnel.log: the request registers the proxy, without the client's port.
    assert_eq!(tunnels(&h), [["102.000000", "0", "1080", "Tunnel::SOCKS", "Tunnel::DISCOVER"].map(String::from)]);
    assert_eq!(h.logged("tunnel")[0].get("uid"), Some(&Value::Unset));
    assert!(h.weirds.is_empty());

    // trace2 (socks-with-ssl.pcap): the proxy binds no address of its own.
    let h = run(&[
        (true, GREETING),
        (false, NO_AUTH),
        (true, b"\x05\x01\x00\x03\x0ewww.google.com\x01\xbb"),
        (false, &v5(0, 1, &[0; 4], 443)),
    ]);
    assert_eq!(
        rows(&h),
        [row(["102.000000", "5", "-", "-", "succeeded", "-", "www.google.com", "443", "0.0.0.0", "-", "443"])]
    );
}

/// Zeek's socks-auth btest (socks-auth.pcap): a BIND after a username/password login. The password is logged only
/// with `SOCKS::default_capture_password` (the btest's first run sets it, the second does not).
#[test]
fn socks5_username_and_password() {
    let login: &[u8] = b"\x01\x03bob\x05alice";
    let deliveries: [(bool, &[u8]); 6] = [
        (true, &[5, 1, 2]),
        (false, &[5, 2]),
        (true, login),
        (false, &[1, 0]),
        (true, &v5(2, 1, &[192, 168, 0, 2], 22)),
        (false, &v5(0, 1, &[192, 168, 0, 1], 55951)),
    ];
    let expected = |password: &str| {
        // `ts` is the login's: the greeting and the method selection raise no event.
        row(["102.000000", "5", "bob", password, "succeeded", "192.168.0.2", "-", "22", "192.168.0.1", "-", "55951"])
    };
    assert_eq!(rows(&run(&deliveries)), [expected("-")]);
    let mut capturing = Socks { capture_password: true, ..Socks::default() };
    assert_eq!(rows(&run_with(&mut capturing, &deliveries)), [expected("alice")]);
}

/// A login the server refuses sets the status from `v5_status`; no reply ever confirms, so nothing is logged (main.zeek
/// writes the record only when `SOCKS` is among the services).
#[test]
fn a_refused_login_is_not_logged() {
    let mut socks = Socks::default();
    let mut h = Harness::new(Proto::Tcp, 1080);
    for (is_orig, data) in [(true, &[5u8, 1, 2][..]), (false, &[5, 2]), (true, b"\x01\x01x\x01y"), (false, &[1, 1])] {
        h.deliver(&mut socks, is_orig, data);
    }
    let info = socks.info.as_deref().expect("the login started the record");
    assert_eq!(info.status.as_deref(), Some("general SOCKS server failure"));
    assert_eq!(info.user.as_deref(), Some(&b"x"[..]));
    assert_eq!(info.password, None);
    h.finish(&mut socks);
    assert!(rows(&h).is_empty());
    assert!(h.actions.is_empty() && h.logged("tunnel").is_empty());
}

/// Zeek's socks5-ipv6 btest: IPv6 addresses in the request and the reply, read as the 16 bytes they are (since
/// zeek/zeek#5854).
#[test]
fn socks5_ipv6_addresses() {
    let h = run(&[(true, GREETING), (false, NO_AUTH), (true, &v5(1, 4, &V6, 80)), (false, &v5(0, 4, &V6, 80))]);
    let v6 = "1111:2222:3333:4444:5555:6666:7777:8888";
    assert_eq!(rows(&h), [row(["102.000000", "5", "-", "-", "succeeded", v6, "-", "80", v6, "-", "80"])]);
}

/// A reply may carry a name too; and a name is logged as the bytes it is.
#[test]
fn socks5_domain_names() {
    let h = run(&[
        (true, GREETING),
        (false, NO_AUTH),
        (true, &v5(3, 3, b"\x04a\tb.", 53)),
        (false, &v5(0, 3, b"\x08relay.ex", 4000)),
    ]);
    assert_eq!(
        rows(&h),
        [row(["102.000000", "5", "-", "-", "succeeded", "-", r"a\x09b.", "53", "-", "relay.ex", "4000"])]
    );
}

/// Any reply confirms and ends the handshake, whatever its code: SOCKS.cc hands the rest over all the same.
#[test]
fn failed_socks5_replies() {
    for (code, status) in
        [(1, "general SOCKS server failure"), (5, "Connection refused"), (8, "Address type not supported")]
            .into_iter()
            .chain([(42, "unknown-42")])
    {
        let reply = v5(code, 1, &[0, 0, 0, 0], 0);
        let h = run(&[(true, GREETING), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, &reply)]);
        assert_eq!(rows(&h)[0][4], status, "reply {code}");
        assert_eq!(rows(&h)[0][8..], ["0.0.0.0", "-", "0"].map(String::from));
        assert_eq!(h.actions, [Action::Confirm("socks"), hand_over()]);
    }
}

/// No method the server accepts: the request that may still follow is parsed as a request.
#[test]
fn no_acceptable_method() {
    let h = run(&[(true, GREETING), (false, &[5, 0xff]), (true, CONNECT_BY_NAME)]);
    assert!(h.actions.is_empty() && h.weirds.is_empty());
    assert_eq!(tunnels(&h).len(), 1, "the request was read");
}

/// SOCKSv4: the request is read (and registers the tunnel), but Zeek's grammar reads a reply's first byte as the
/// version: an RFC-conforming `00 5a ...` reply is version 0, a violation, so there is no confirmation and no record.
#[test]
fn socks4_replies_are_read_as_zeek_reads_them() {
    let request: &[u8] = &[4, 1, 0, 80, 192, 0, 2, 10, b'b', b'o', b'b', 0];
    let h = run(&[(true, request), (false, &[0, 0x5a, 0, 0, 0, 0, 0, 0])]);
    assert_eq!(h.violations(), ["unsupported/unknown SOCKS version 0"]);
    assert!(rows(&h).is_empty());
    assert_eq!(tunnels(&h), [["100.000000", "0", "1080", "Tunnel::SOCKS", "Tunnel::DISCOVER"].map(String::from)]);

    // A reply with a version byte of 4 before its zero byte is the one Zeek's grammar parses.
    for (code, status) in [
        (0x5a, "succeeded"),
        (0x5b, "general SOCKS server failure"),
        (0x5c, "request failed because client is not running identd"),
        (0x5d, "request failed because client's identd could not confirm the user ID string in the request"),
        (0x5e, "unknown-94"),
    ] {
        let h = run(&[(true, request), (false, &[4, 0, code, 0x1f, 0x90, 10, 0, 0, 9])]);
        assert_eq!(
            rows(&h),
            [row(["100.000000", "4", "-", "-", status, "192.0.2.10", "-", "80", "10.0.0.9", "-", "8080"])],
            "the user id is not logged"
        );
        assert_eq!(h.actions, [Action::Confirm("socks"), hand_over()]);
    }
}

/// SOCKSv4a: an address of 0.0.0.x (or 0.0.0.0) is followed by the name to resolve; both are logged. The name ends
/// at a NUL or with the delivery.
#[test]
fn socks4a_names() {
    let reply: &[u8] = &[4, 0, 0x5a, 0, 0, 0, 0, 0, 0];
    for (request, host, name) in [
        (&b"\x04\x01\x01\xbb\x00\x00\x00\x07me\x00example.com\x00"[..], "0.0.0.7", "example.com"),
        (b"\x04\x01\x01\xbb\x00\x00\x00\x00\x00example.com", "0.0.0.0", "example.com"),
        (b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00", "0.0.0.1", "(empty)"),
        (b"\x04\x02\x01\xbb\x00\x00\x01\x00\x00example.com\x00", "0.0.1.0", "-"),
    ] {
        let h = run(&[(true, request), (false, reply)]);
        assert_eq!(rows(&h)[0][5..8], [host, name, "443"].map(String::from), "{request:?}");
    }
}

/// The grammar's flow is a datagram: each delivery is one message. A message split over two deliveries is cut short
/// in the first (a violation) or, where only a variable-length string or the method list is cut, read without the
/// rest, which then is no message (a violation too); whatever split, nothing is logged and nothing panics.
#[test]
fn a_message_split_at_any_byte_is_what_binpac_makes_of_it() {
    let v4_request: &[u8] = b"\x04\x01\x00\x50\x00\x00\x00\x01bob\x00example.com\x00";
    let v4_reply: &[u8] = &[4, 0, 0x5a, 0, 0, 0, 0, 0, 0];
    let login: &[u8] = b"\x01\x03bob\x05alice";
    let ipv6_request = v5(1, 4, &V6, 80);
    let exchanges: [Vec<(bool, &[u8])>; 3] = [
        vec![(true, &[5, 2, 0, 1]), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, BOUND_V4)],
        vec![
            (true, &[5, 1, 2]),
            (false, &[5, 2]),
            (true, login),
            (false, &[1, 0]),
            (true, &ipv6_request),
            (false, BOUND_V4),
        ],
        vec![(true, v4_request), (false, v4_reply)],
    ];
    for exchange in &exchanges {
        assert_eq!(rows(&run(exchange)).len(), 1, "whole messages are logged");
        for (i, &(is_orig, message)) in exchange.iter().enumerate() {
            for at in 1..message.len() {
                let (head, tail) = message.split_at(at);
                let mut deliveries = exchange[..i].to_vec();
                deliveries.extend([(is_orig, head), (is_orig, tail)]);
                deliveries.extend(&exchange[i + 1..]);
                let h = run(&deliveries);
                let what = format!("message {i} split at {at}");
                assert!(rows(&h).is_empty(), "{what}");
                assert_eq!(h.violations().len(), 1, "{what}");
                assert!(!h.actions.contains(&hand_over()), "{what}");
            }
        }
    }
}

/// What follows a message in its delivery is ignored: a request sent with the greeting is not seen, nor the first
/// bytes of the tunnelled protocol in the reply's segment.
#[test]
fn the_rest_of_a_delivery_is_ignored() {
    let greeting_and_request = [GREETING, CONNECT_BY_NAME].concat();
    let h = run(&[(true, &greeting_and_request), (false, NO_AUTH), (false, BOUND_V4)]);
    assert!(h.logged("tunnel").is_empty(), "no request was read");
    assert_eq!(h.actions, [Action::Confirm("socks")], "a reply alone does not end the handshake");

    let reply_and_banner = [BOUND_V4, b"SSH-2.0-x\r\n"].concat();
    let h = run(&[(true, GREETING), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, &reply_and_banner)]);
    assert_eq!(h.actions, [Action::Confirm("socks"), hand_over()]);
}

#[test]
fn malformed_messages_are_violations() {
    let cases: [(&[u8], &str); 8] = [
        (&[6, 1, 0], "unsupported/unknown SOCKS version 6"),
        (b"GET / HTTP/1.1\r\n", "unsupported/unknown SOCKS version 71"),
        (&[5], "Binpac exception: binpac exception: out_of_bound: SOCKS5_Auth_Negotiation_Request:method_count"),
        (&[4, 1, 0, 80, 10, 0], "Binpac exception: binpac exception: out_of_bound: SOCKS4_Request:addr"),
        (&[5, 1, 0, 3, 9, b'x'], "Binpac exception: binpac exception: out_of_bound: Domain_Name:name"),
        (&[5, 1, 0, 9, 1, 2, 3, 4, 0, 80], "Binpac exception: binpac exception: out_of_bound: SOCKS5_Request:port"),
        (&[5, 1, 1, 1, 1, 2, 3, 4, 0, 80], "invalid value in reserved field: 1"),
        (&[5, 4, 0, 1, 1, 2, 3, 4, 0, 80], "undefined value in command field: 4"),
    ];
    for (message, reason) in cases {
        // Greetings when the message is one; requests after a method selection otherwise.
        let mut deliveries = vec![];
        if message.len() > 3 && message[0] == 5 {
            deliveries.extend([(true, GREETING), (false, NO_AUTH)]);
        }
        deliveries.push((true, message));
        deliveries.push((false, BOUND_V4));
        let h = run(&deliveries);
        assert_eq!(h.violations(), [reason], "{message:?}");
        assert!(rows(&h).is_empty() && h.logged("tunnel").is_empty(), "{message:?}");
        assert!(!h.actions.contains(&Action::Confirm("socks")), "nothing is read after a violation");
    }
    assert_eq!(
        run(&[(true, GREETING), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, &[5, 0, 0, 4, 1])]).violations(),
        ["Binpac exception: binpac exception: out_of_bound: SOCKS5_Reply:bound"]
    );
}

/// A violation after the confirmation takes `socks` out of the services (the engine's doing): the record is not
/// written then. Here the reply came without a request, so the client's next delivery is still parsed.
#[test]
fn a_violation_after_the_confirmation_drops_the_record() {
    let h = run(&[(true, GREETING), (false, NO_AUTH), (false, BOUND_V4), (true, b"\x07")]);
    assert_eq!(
        h.actions,
        [Action::Confirm("socks"), Action::Violation("unsupported/unknown SOCKS version 7".into(), None)]
    );
    assert!(rows(&h).is_empty());
}

/// Sub-negotiations of methods Zeek does not parse are a weird per message; the server's ends it, and the request
/// that follows is read.
#[test]
fn unsupported_authentication() {
    let h = run(&[
        (true, &[5, 1, 1]),
        (false, &[5, 1]),
        (true, b"\x01\x01gss"),
        (false, b"\x01\x01ok"),
        (true, CONNECT_BY_NAME),
    ]);
    let weirds: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref(), w.source)).collect();
    assert_eq!(weirds, [("socks5_unsupported_authentication_method", Some("1"), "SOCKS"); 2]);
    assert_eq!(tunnels(&h).len(), 1);

    let h = run(&[(true, &[5, 1, 2]), (false, &[5, 2]), (true, b"\x05\x01\x00"), (false, &[1, 0])]);
    let weirds: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref())).collect();
    assert_eq!(weirds, [("socks5_unsupported_authentication", Some("method 2, version 5"))]);
    assert!(h.actions.is_empty());
}

/// SOCKS.cc ignores connections joined mid-stream.
#[test]
fn partial_connections_are_ignored() {
    let mut h = Harness::new(Proto::Tcp, 1080);
    h.partial = true;
    let mut socks = Socks::default();
    for (is_orig, data) in [(true, GREETING), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, BOUND_V4)] {
        h.deliver(&mut socks, is_orig, data);
    }
    h.finish(&mut socks);
    assert!(h.records.is_empty() && h.actions.is_empty());
}

/// After a violation nothing is kept (the engine frees the analyzer); after the hand-over the record waits for the
/// connection's end.
#[test]
fn done_once_nothing_is_left_to_log() {
    let mut h = Harness::new(Proto::Tcp, 1080);
    let mut socks = Socks::default();
    h.deliver(&mut socks, true, &[9]);
    assert!(socks.is_done());
    let mut socks = Socks::default();
    for (is_orig, data) in [(true, GREETING), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, BOUND_V4)] {
        h.deliver(&mut socks, is_orig, data);
    }
    assert!(!socks.is_done() && h.logged("socks").is_empty());
    h.deliver(&mut socks, true, b"GET / HTTP/1.1\r\n");
    assert_eq!(h.actions.iter().filter(|a| matches!(a, Action::HandOver { .. })).count(), 1, "handed over once");
}

#[test]
fn content_signatures() {
    let starts = |orig: &[u8], resp: &[u8]| SPEC.detect.is_some_and(|s| s.matches(Proto::Tcp, false, resp, orig));
    // dpd_socks4_client / server, and the reverse pair.
    assert!(starts(b"\x04\x01\x00\x50\x0a\x00\x00\x01", b"\x00\x5a"));
    assert!(starts(b"\x00\x5d", b"\x04\x02\x00\x50\x0a\x00\x00\x01"));
    assert!(!starts(b"\x04\x03\x00\x50\x0a\x00\x00\x01", b"\x00\x5a"), "command 3 is no SOCKSv4 command");
    assert!(!starts(b"\x04\x01\x00\x50\x0a\x00\x00\x01", b"\x00\x5e"));
    // The NUL must come within 32 bytes of the command (`.` is any byte, the newline too).
    let long_user = [&[4u8, 1, 0x1f, 0x90, 10, 1, 1, 1][..], &[b'\n'; 26], &[0]].concat();
    assert!(starts(&long_user, b"\x00\x5a"));
    let too_long = [&[4u8, 1, 0x1f, 0x90, 10, 1, 1, 1][..], &[b'u'; 27], &[0]].concat();
    assert!(!starts(&too_long, b"\x00\x5a"));
    // dpd_socks5_client / server: methods IANA assigned (not 4), and 0xff from the server.
    assert!(starts(&[5, 1, 0], &[5, 0]));
    assert!(starts(&[5, 2, 9, 2], &[5, 0xff]));
    assert!(!starts(&[5, 1, 4], &[5, 0]));
    assert!(!starts(&[5, 1, 0], &[5, 4]));
    assert!(!starts(&[5, 0], &[5, 0]), "the client's third byte is needed");
    assert!(!starts(&[5, 0], &[5, 1, 0]), "no reverse SOCKSv5 pair");
    assert!(!SPEC.detect.is_some_and(|s| s.matches(Proto::Udp, true, &[5, 1, 0], &[5, 0])));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        fuzz(&data);
        // Every state the grammar has, with each byte string as one delivery from either side.
        for method in [0, 1, 2, 0xff] {
            for (in_auth_sub_negotiation, past_authentication) in [(false, false), (false, true), (true, true)] {
                let state = Negotiation { in_auth_sub_negotiation, past_authentication, auth_method: method };
                for is_orig in [true, false] {
                    let _ = parse(&state, is_orig, &data);
                }
            }
        }
    }
}

/// Through the engine: a SOCKSv5 CONNECT answered with success, then HTTP in the same TCP connection, on the SOCKS
/// port and, found by the signatures, on another (Zeek's socks-auth-10080 btest). The HTTP is analysed under the
/// connection's uid, its service follows SOCKS's, and the proxy is a tunnel.
mod through_the_engine {
    use super::*;
    use crate::decode::test_frames::tcp_conversation;

    const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 55], 53994);
    const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: www.osnews.com\r\nUser-Agent: test/1.0\r\n\r\n";
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

    /// The conversation through the engine with every analyzer on; all records.
    fn run(proxy: ([u8; 4], u16), messages: &[(bool, &[u8])]) -> Vec<LogRecord> {
        crate::analyzers::testing::engine_records(&tcp_conversation(CLIENT, proxy, messages))
    }

    fn logged<'a>(records: &'a [LogRecord], path: &str) -> Vec<&'a LogRecord> {
        records.iter().filter(|r| r.schema.path == path).collect()
    }

    fn tsv(r: &LogRecord, field: &str) -> String {
        r.get(field).unwrap_or_else(|| panic!("{} has no {field}", r.schema.path)).to_tsv()
    }

    /// On port 1080 Zeek attaches its HTTP analyzer by port too (HTTP's ports include 1080): it reads the SOCKS
    /// handshake and the tunnelled request line as one line, which is the weird `bad_HTTP_request_with_version` and
    /// a violation that removes it; the HTTP analyzer of the PIA under SOCKS analyses the request. (The bound
    /// address and port have no newline byte, which would end that line, and the reply's violation would remove the
    /// port's analyzer before the request comes.)
    #[test]
    fn http_inside_a_socks5_connect_is_analysed() {
        let bound: &[u8] = &[5, 0, 0, 1, 192, 168, 0, 31, 0x1f, 0x90];
        let messages =
            [(true, GREETING), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, bound), (true, GET), (false, OK)];
        for (port, weirds) in [(1080, &["bad_HTTP_request_with_version"][..]), (10080, &[])] {
            let records = run(([60, 190, 189, 214], port), &messages);
            let conns = logged(&records, "conn");
            assert_eq!(conns.len(), 1, "port {port}");
            let uid = tsv(conns[0], "uid");
            assert_eq!(tsv(conns[0], "service"), "socks,http", "port {port}");

            let socks = logged(&records, "socks");
            assert_eq!(socks.len(), 1, "port {port}");
            for (field, value) in [
                ("ts", "1.050000"), // the request's packet: the sixth frame
                ("uid", uid.as_str()),
                ("id.resp_p", &port.to_string()),
                ("version", "5"),
                ("status", "succeeded"),
                ("request.name", "www.osnews.com"),
                ("request_p", "80"),
                ("bound.host", "192.168.0.31"),
                ("bound_p", "8080"),
            ] {
                assert_eq!(tsv(socks[0], field), value, "port {port}: socks.log {field}");
            }

            let http = logged(&records, "http");
            assert_eq!(http.len(), 1, "port {port}: the tunnelled request is logged");
            for (field, value) in [
                ("ts", "1.070000"),
                ("uid", uid.as_str()),
                ("method", "GET"),
                ("host", "www.osnews.com"),
                ("uri", "/index.html"),
                ("user_agent", "test/1.0"),
                ("status_code", "200"),
                ("response_body_len", "5"),
            ] {
                assert_eq!(tsv(http[0], field), value, "port {port}: http.log {field}");
            }

            let tunnels = logged(&records, "tunnel");
            assert_eq!(tunnels.len(), 1, "port {port}");
            for (field, value) in [
                ("ts", "1.050000"),
                ("uid", "-"),
                ("id.orig_h", "10.0.0.55"),
                ("id.orig_p", "0"),
                ("id.resp_h", "60.190.189.214"),
                ("id.resp_p", &port.to_string()),
                ("tunnel_type", "Tunnel::SOCKS"),
                ("action", "Tunnel::DISCOVER"),
            ] {
                assert_eq!(tsv(tunnels[0], field), value, "port {port}: tunnel.log {field}");
            }
            let logged_weirds: Vec<_> = logged(&records, "weird").iter().map(|r| tsv(r, "name")).collect();
            assert_eq!(logged_weirds, weirds, "port {port}");
            assert!(logged(&records, "analyzer").is_empty(), "port {port}");
        }
    }

    /// A refused CONNECT still ends the handshake (SOCKS.cc looks at no status), and the service stays `socks`
    /// when nothing follows.
    #[test]
    fn a_refused_connect_is_logged_with_its_status() {
        let refused = v5(5, 1, &[0, 0, 0, 0], 0);
        let records = run(
            ([60, 190, 189, 214], 1080),
            &[(true, GREETING), (false, NO_AUTH), (true, CONNECT_BY_NAME), (false, &refused)],
        );
        assert_eq!(tsv(logged(&records, "conn")[0], "service"), "socks");
        assert_eq!(tsv(logged(&records, "socks")[0], "status"), "Connection refused");
    }
}
