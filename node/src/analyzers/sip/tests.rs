use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;

// RFC 3261 §24.2's call flow, abridged.
const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\nFrom: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\nUser-Agent: softphone/1.0\r\n\
Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n";
const TRYING: &[u8] = b"SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP proxy.example.com; branch=z9hG4bK77ef4c2312983.1\r\n\
From: Alice <sip:alice@atlanta.example.com>; tag=1928301774\r\nTo: Bob <sip:bob@biloxi.example.com>\r\n\
Content-Length: 0\r\n\r\n";
const RINGING: &[u8] = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
CSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n";
const OK: &[u8] = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n";
const ACK: &[u8] =
    b"ACK sip:bob@192.0.2.4 SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds9\r\n\
CSeq: 314159 ACK\r\nContent-Length: 0\r\n\r\n";
const BYE: &[u8] = b"BYE sip:alice@pc33.atlanta.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10\r\nCSeq: 231 BYE\r\nContent-Length: 0\r\n\r\n";

/// What a run wrote: sip.log rows as TSV columns from `trans_depth` on, weirds and actions.
struct Run {
    rows: Vec<Vec<String>>,
    weirds: Vec<(String, Option<String>)>,
    actions: Vec<Action>,
}

/// Delivers `datagrams` at 100.0, 101.0, ... (`true`: from the originator), then ends the connection.
fn run(datagrams: &[(bool, &[u8])]) -> Run {
    let mut h = Harness::new(Proto::Udp, 5060);
    let mut sip = Sip::default();
    for (i, (is_orig, data)) in datagrams.iter().enumerate() {
        h.run(100.0 + i as f64, |ctx| sip.deliver(ctx, *is_orig, data));
    }
    h.finish(&mut sip);
    let rows = h
        .logged("sip")
        .iter()
        .map(|r| [r.values[0].to_tsv()].into_iter().chain(r.values[6..].iter().map(Value::to_tsv)).collect())
        .collect();
    Run { rows, weirds: h.weirds.iter().map(|w| (w.name.clone(), w.addl.clone())).collect(), actions: h.actions }
}

/// Column `name` of sip.log (after `ts`, which is column 0 here).
fn col(row: &[String], name: &str) -> String {
    let at = SIP_LOG.fields.iter().position(|f| f.name == name).expect("a sip.log field");
    row[if at == 0 { 0 } else { at - 5 }].clone()
}

#[test]
fn every_reply_writes_the_transaction_as_it_stands() {
    let run =
        run(&[(true, INVITE), (false, TRYING), (false, RINGING), (false, OK), (true, ACK), (false, BYE), (true, OK)]);
    let summary: Vec<_> = run
        .rows
        .iter()
        .map(|r| {
            ["ts", "trans_depth", "method", "status_code", "status_msg", "request_path", "response_path"]
                .map(|c| col(r, c))
        })
        .collect();
    let via = "SIP/2.0/UDP pc33.atlanta.example.com";
    let proxy = "SIP/2.0/UDP proxy.example.com";
    assert_eq!(
        summary,
        [
            ["100.000000", "0", "INVITE", "100", "Trying", via, proxy].map(String::from),
            ["100.000000", "0", "INVITE", "180", "Ringing", via, &format!("{proxy},{via}")].map(String::from),
            ["100.000000", "0", "INVITE", "200", "OK", via, &format!("{proxy},{via},{via}")].map(String::from),
            // The callee's BYE is a request whichever side sends it, and it lands on the ACK's pending record.
            ["104.000000", "0", "BYE", "200", "OK", &format!("{via},SIP/2.0/UDP 192.0.2.4"), via].map(String::from),
        ],
        "provisional replies write the record too; the final one retires it"
    );
    let first = &run.rows[0];
    assert_eq!(col(first, "uri"), "sip:bob@biloxi.example.com");
    assert_eq!(col(first, "request_from"), "Alice <sip:alice@atlanta.example.com>", "the tag is cut");
    assert_eq!(col(first, "request_to"), "Bob <sip:bob@biloxi.example.com>");
    assert_eq!(col(first, "response_from"), "Alice <sip:alice@atlanta.example.com>", "'; tag=' is cut too");
    assert_eq!(col(first, "call_id"), "a84b4c76e66710@pc33.atlanta.example.com");
    assert_eq!(col(first, "seq"), "314159 INVITE");
    assert_eq!(col(first, "user_agent"), "softphone/1.0");
    assert_eq!(col(first, "request_body_len"), "5");
    assert_eq!(col(first, "response_body_len"), "0");
    assert_eq!(col(first, "content_type"), "-", "only a reply's Content-Type is logged");
    assert_eq!(col(&run.rows[2], "content_type"), "application/sdp");
    assert_eq!(col(first, "date"), "-");
    assert!(run.weirds.is_empty());
    assert_eq!(run.actions.iter().filter(|a| **a == Action::Confirm("sip")).count(), 4);
    assert!(!run.actions.iter().any(|a| matches!(a, Action::Violation(..))));
}

#[test]
fn a_reply_without_a_request_is_written_alone() {
    let run = run(&[(false, OK), (false, OK)]);
    assert_eq!(run.rows.len(), 2, "the dialog's state ends after each, so each makes a new record");
    for (row, ts) in run.rows.iter().zip(["100.000000", "101.000000"]) {
        assert_eq!(
            ["ts", "method", "status_code", "request_path", "response_path"].map(|c| col(row, c)),
            [ts, "-", "200", "(empty)", "SIP/2.0/UDP pc33.atlanta.example.com"]
        );
    }
}

#[test]
fn unanswered_requests_are_written_when_the_connection_ends() {
    let register = b"REGISTER sip:registrar.example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    let unknown = b"FOO sip:registrar.example.com SIP/2.0\r\nSubject: hi\r\nDate: today\r\nReply-To: me\r\n\r\n";
    let run = run(&[(true, register), (true, unknown)]);
    // The second request lands on the first's pending record (transaction 0 is still open).
    assert_eq!(run.rows.len(), 1);
    let row = &run.rows[0];
    assert_eq!(
        ["ts", "method", "status_code", "subject", "date", "reply_to", "request_body_len"].map(|c| col(row, c)),
        ["100.000000", "FOO", "-", "hi", "today", "me", "0"]
    );
    assert_eq!(run.weirds, [("unknown_SIP_method".to_string(), Some("FOO".to_string()))]);
}

#[test]
fn junk_before_a_request_is_a_weird() {
    let run = run(&[(true, b"\x00\\ INVITE sip:bob@example.com SIP/2.0\r\n\r\n")]);
    assert_eq!(run.weirds, [("sip_junk_before_request".to_string(), Some(r"\x00\\ ".to_string()))]);
    assert_eq!(col(&run.rows[0], "method"), "INVITE");
}

#[test]
fn the_content_length_sets_the_body_for_later_messages_too() {
    // The first request's body is cut short: the next datagram's first bytes complete it.
    let short = b"OPTIONS sip:a@example.com SIP/2.0\r\nContent-Length: 8\r\n\r\nabcd";
    let next = b"efghBYE sip:a@example.com SIP/2.0\r\n\r\n12345678";
    let run = run(&[(true, short), (true, next)]);
    assert!(run.actions.is_empty(), "{:?}", run.actions);
    assert_eq!(col(&run.rows[0], "method"), "BYE");
    // binpac keeps the length for a message without the header: the BYE's body took the last eight bytes.
    let mut stream = Stream::default();
    let mut ends = 0;
    stream.feed(short, true, &mut |p| ends += usize::from(p == Part::End)).unwrap();
    stream.feed(next, true, &mut |p| ends += usize::from(p == Part::End)).unwrap();
    assert_eq!((ends, stream.position, stream.partial.len()), (2, Position::StartLine, 0));
}

#[test]
fn lines_are_completed_across_datagrams() {
    for cut in 1..INVITE.len() {
        let (a, b) = INVITE.split_at(cut);
        let mut stream = Stream::default();
        let mut parts = vec![];
        let mut on = |p: Part<'_>| parts.push(format!("{p:?}"));
        stream.feed(a, true, &mut on).unwrap();
        stream.feed(b, true, &mut on).unwrap();
        assert_eq!(parts.len(), 10, "cut at {cut}: {parts:?}");
        assert_eq!(parts[9], "End", "cut at {cut}");
    }
    // CR LF is one line end, even split between datagrams; a lone CR or LF ends a line too.
    assert_eq!(next_line(b"a\r"), None);
    assert_eq!(next_line(b"a\r\nb"), Some((&b"a"[..], 3)));
    assert_eq!(next_line(b"a\rb"), Some((&b"a"[..], 2)));
    assert_eq!(next_line(b"a\nb"), Some((&b"a"[..], 2)));
}

#[test]
fn what_binpac_rejects_is_a_violation() {
    let cases: [&[u8]; 6] = [
        b"SIP/2.0 18 Ringing\r\n\r\n",
        b"INVITE sip:bob HTTP/1.1\r\n\r\n",
        b"INVITE sip:bob SIP/2.0\r\nVia SIP/2.0/UDP host\r\n\r\n",
        b"INVITE sip:bob SIP/2.0\r\n folded: line\r\n\r\n",
        b"INVITE sip:bob SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        b"\r\n\r\n",
    ];
    for case in cases {
        let run = run(&[(true, case)]);
        assert!(
            matches!(run.actions[..], [Action::Violation(..)]),
            "{:?}: {:?}",
            String::from_utf8_lossy(case),
            run.actions
        );
    }
    // After a violation the stream starts afresh with the next datagram.
    let run = run(&[(true, b"INVITE sip:bob SIP/2.0\r\nbad header\r\nmore"), (true, INVITE), (false, OK)]);
    assert!(matches!(run.actions[..], [Action::Violation(..), Action::Confirm("sip")]));
    assert_eq!(run.rows.len(), 1);
    // A keep-alive of one CR LF is ignored.
    assert!(self::run(&[(true, b"\r\n")]).actions.is_empty());
}

#[test]
fn a_line_that_never_ends_stops_the_stream() {
    let mut stream = Stream::default();
    let chunk = vec![b'A'; 1024];
    let result = (0..100).map(|_| stream.feed(&chunk, true, &mut |_| {})).find(Result::is_err);
    assert_eq!(result, Some(Err(SipError::LineTooLong)));
    assert!(stream.partial.is_empty());
}

#[test]
fn numbers_read_as_zeek_reads_them() {
    assert_eq!(strtol_as_int(b" 42abc"), 42);
    assert_eq!(strtol_as_int(b"-7"), -7);
    assert_eq!(strtol_as_int(b"x"), 0);
    assert_eq!(strtol_as_int(b"4294967297"), 1, "a long cut to an int");
    assert_eq!(to_count(b" 205"), 205);
    assert_eq!(to_count(b"206 "), 0);
    assert_eq!(to_count(b""), 0);
    assert_eq!(before_parameter(b"<sip:a>;x=1;tag=2", b"tag="), b"<sip:a>;x=1");
    assert_eq!(before_parameter(b"<sip:a>;  tag=2", b"tag="), b"<sip:a>;  tag=2", "one blank at most");
}

#[test]
fn signatures_find_requests_and_replies() {
    assert!(detect_sip(Proto::Udp, true, INVITE) && detect_sip(Proto::Udp, false, RINGING));
    assert!(detect_sip(Proto::Udp, false, b" SIP/2.0 200 OK\r\n"));
    assert!(!detect_sip(Proto::Udp, true, b"GET / HTTP/1.1\r\n"));
    assert!(!detect_sip(Proto::Tcp, true, INVITE));
    assert!(!detect_sip(Proto::Udp, true, b"INVITE sip:bob SIP/2.0\n"), "the signature wants CRLF");
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    for data in [&b""[..], b"SIP/", b"SIP/2.0 ", b"\r", b"INVITE", b"SIP/2.0 200\r\nL: 99999999999\r\n\r\n"] {
        fuzz(data);
        run(&[(true, data), (false, data)]);
    }
}
