//! Behaviours the dev oracle does not show, each rebuilt from one of Zeek's btest cases
//! (`testing/btest/scripts/base/protocols/http/<case>.zeek`) with the fields its baseline
//! (`testing/btest/Baseline/scripts.base.protocols.http.<case>/`) shows. The traces themselves are not here: the
//! bytes are reconstructed from what the baseline and the test say about them.

use super::*;
use crate::analyzers::testing::Harness;
use crate::logs::{LogRecord, Value};

fn field<'a>(r: &'a LogRecord, name: &str) -> &'a Value {
    r.get(name).unwrap_or(&Value::Unset)
}

fn weirds(h: &Harness) -> Vec<(&str, Option<&str>, &str)> {
    h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref(), w.source)).collect()
}

/// The first element of a vector field.
fn first_of(v: &Value) -> Value {
    match v {
        Value::Vector(items) => items.first().cloned().unwrap_or(Value::Unset),
        _ => Value::Unset,
    }
}

fn new() -> (Harness, Http) {
    (Harness::new(Proto::Tcp, 80), Http::default())
}

/// 100-continue: the 1xx reply comes between the request's headers and its body; one record pairs the final
/// reply with the request and keeps the informational code (baseline http.log: `info_code 100`, `info_msg
/// Continue`, `status_code 200`, request and response bodies measured) and no weird.log (`test ! -f weird.log`).
#[test]
fn informational_reply_between_request_headers_and_body() {
    let (mut h, mut a) = new();
    let body = "line of the uploaded text\n".repeat(40);
    let head = format!(
        "POST / HTTP/1.1\r\nHost: www.osu.edu\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    h.deliver(&mut a, true, head.as_bytes());
    h.deliver(&mut a, false, b"HTTP/1.1 100 Continue\r\n\r\n");
    h.deliver(&mut a, true, body.as_bytes());
    h.deliver(&mut a, false, b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n<html><body></body>");
    h.finish(&mut a);
    let recs = h.logged("http");
    assert_eq!(recs.len(), 1);
    let r = recs[0];
    assert_eq!(field(r, "trans_depth"), &Value::Count(1));
    assert_eq!(field(r, "request_body_len"), &Value::Count(body.len() as u64));
    assert_eq!(field(r, "response_body_len"), &Value::Count(19));
    assert_eq!(field(r, "status_code"), &Value::Count(200));
    assert_eq!(field(r, "status_msg"), &Value::str("OK"));
    assert_eq!(field(r, "info_code"), &Value::Count(100));
    assert_eq!(field(r, "info_msg"), &Value::str("Continue"));
    assert_eq!(field(r, "orig_mime_types"), &Value::str_vec(["text/plain"]));
    assert_eq!(field(r, "resp_mime_types"), &Value::str_vec(["text/html"]));
    assert!(h.weirds.is_empty(), "{:?}", weirds(&h));
}

/// missing-http-entity (interleaved-http-entity.pcap): the server answers while the client is still sending. The
/// request's entity ends first and takes the shared `current_entity` with it, so the reply's last header (only
/// complete at the blank line) finds none: weird.log `missing_HTTP_entity` (source HTTP), and one http.log record
/// with both bodies (`request_body_len 10`, `response_body_len 3`, orig mime type text/plain, a resp fuid without
/// mime type).
#[test]
fn header_after_the_other_sides_entity_ended_is_missing_entity() {
    let (mut h, mut a) = new();
    h.deliver(&mut a, true, b"POST / HTTP/1.1\r\nHost: interleave.me\r\n");
    h.deliver(&mut a, false, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n");
    h.deliver(&mut a, true, b"Content-Length: 10\r\n\r\n0123456789");
    h.deliver(&mut a, false, b"\r\nabc");
    h.finish(&mut a);
    assert_eq!(weirds(&h), vec![("missing_HTTP_entity", None, "HTTP")]);
    let recs = h.logged("http");
    assert_eq!(recs.len(), 1);
    let r = recs[0];
    assert_eq!(field(r, "host"), &Value::str("interleave.me"));
    assert_eq!(field(r, "request_body_len"), &Value::Count(10));
    assert_eq!(field(r, "response_body_len"), &Value::Count(3));
    assert_eq!(field(r, "orig_mime_types"), &Value::str_vec(["text/plain"]));
    assert!(matches!(field(r, "resp_fuids"), Value::Vector(v) if v.len() == 1));
    assert_eq!(field(r, "resp_mime_types"), &Value::Unset);
}

/// entity-gap / entity-gap2: a gap inside a body of known length is skipped. The entity goes on after it (the
/// baseline's entity_data continues past `<1448 byte gap>`), the body length counts the gap and the file gets it as
/// missing bytes; the connection's next request is still parsed.
#[test]
fn gap_inside_a_sized_body_is_skipped() {
    let (mut h, mut a) = new();
    let first = "0.26 | 2012-08-24 15:10:04 -0700\n\n  * Fixing update-changes\n".repeat(20);
    let last = "  * Initial import of bro/aux from SVN r7088. (Jon Siwek)\n".repeat(10);
    let gap = 1448u64;
    let total = first.len() as u64 + gap + last.len() as u64;
    h.deliver(&mut a, true, b"GET /CHANGES HTTP/1.1\r\nHost: x\r\n\r\n");
    h.deliver(&mut a, false, format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n{first}").as_bytes());
    h.run(1.0, |ctx| a.undelivered(ctx, false, gap));
    h.deliver(&mut a, false, last.as_bytes());
    h.deliver(&mut a, true, b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    h.deliver(&mut a, false, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    h.finish(&mut a);
    let recs = h.logged("http");
    assert_eq!(recs.len(), 2, "the gap did not end the connection's parsing");
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(total));
    assert_eq!(field(recs[0], "resp_mime_types"), &Value::str_vec(["text/plain"]));
    assert_eq!(field(recs[1], "uri"), &Value::str("/next"));
    let files = h.logged("files");
    assert_eq!(files.len(), 1);
    assert_eq!(field(files[0], "seen_bytes"), &Value::Count(total - gap));
    assert_eq!(field(files[0], "missing_bytes"), &Value::Count(gap));
    assert_eq!(field(files[0], "total_bytes"), &Value::Count(total));
    assert!(h.weirds.is_empty(), "{:?}", weirds(&h));
}

/// The same inside a chunk: the gap counts against the chunk and the next chunk size line is found.
#[test]
fn gap_inside_a_chunk_is_skipped() {
    let (mut h, mut a) = new();
    h.deliver(&mut a, true, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    h.deliver(&mut a, false, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123");
    h.run(1.0, |ctx| a.undelivered(ctx, false, 8));
    h.deliver(&mut a, false, b"cdef\r\n3\r\nxyz\r\n0\r\n\r\n");
    let recs = h.logged("http");
    assert_eq!(recs.len(), 1);
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(19));
    assert_eq!(field(h.logged("files")[0], "missing_bytes"), &Value::Count(8));
}

/// zero-length-bodies-with-drops: a gap where no body is under way (here before the reply's body started) ends
/// the direction's messages and Zeek skips the rest of that direction: no file (`test ! -f files.log`), and the
/// record is written with what was seen.
#[test]
fn gap_outside_a_body_ends_the_direction() {
    let (mut h, mut a) = new();
    h.deliver(&mut a, true, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    h.deliver(&mut a, false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.deliver(&mut a, true, b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    h.run(1.0, |ctx| a.undelivered(ctx, false, 100));
    h.deliver(&mut a, false, b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n<html><body></body>");
    h.finish(&mut a);
    assert!(h.logged("files").is_empty());
    let recs = h.logged("http");
    assert_eq!(recs.len(), 2);
    assert_eq!(field(recs[1], "uri"), &Value::str("/2"));
    assert_eq!(field(recs[1], "status_code"), &Value::Unset);
    assert!(h.weirds.is_empty(), "nothing after the gap is parsed: {:?}", weirds(&h));
}

/// content-length-exceeds-body: the server closes 100 bytes short of its `Content-Length: 158`; weird.log
/// `HTTP_bytes_remaining_at_eod` (source HTTP), http.log `response_body_len 58`, `resp_mime_types text/plain`.
#[test]
fn body_cut_short_by_the_end_of_data() {
    let (mut h, mut a) = new();
    h.deliver(&mut a, true, b"GET / HTTP/1.0\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\n\r\n");
    let body = "This body is shorter than its Content-Length says!\n1234567";
    assert_eq!(body.len(), 58);
    h.deliver(&mut a, false, format!("HTTP/1.0 200 OK\r\nContent-Length: 158\r\n\r\n{body}").as_bytes());
    h.run(1.5, |ctx| a.end_of_data(ctx, false));
    h.run(1.6, |ctx| a.end_of_data(ctx, true));
    h.finish(&mut a);
    assert_eq!(weirds(&h), vec![("HTTP_bytes_remaining_at_eod", None, "HTTP")]);
    let recs = h.logged("http");
    assert_eq!(recs.len(), 1);
    assert_eq!(field(recs[0], "host"), &Value::str("localhost:8080"));
    assert_eq!(field(recs[0], "version"), &Value::str("1.0"));
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(58));
    assert_eq!(field(recs[0], "resp_mime_types"), &Value::str_vec(["text/plain"]));
}

/// 261/cl-0-expect-100 (variant-07-expect_100_cl0): `Expect: 100-continue` before `Content-Length: 0` is the
/// same weird as after it (weird.log `HTTP_content_length_0_and_expect_100_cont`, once).
#[test]
fn expect_100_continue_with_content_length_0_in_either_order() {
    for head in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n"[..],
    ] {
        let (mut h, mut a) = new();
        h.deliver(&mut a, true, head);
        assert_eq!(weirds(&h), vec![("HTTP_content_length_0_and_expect_100_cont", None, "HTTP")]);
    }
}

fn partial_reply(content_range: &str, content_length: Option<u32>, body: &[u8]) -> Harness {
    let (mut h, mut a) = new();
    h.deliver(&mut a, true, b"GET /file HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\n\r\n");
    let length = content_length.map(|n| format!("Content-Length: {n}\r\n")).unwrap_or_default();
    let head = format!("HTTP/1.1 206 Partial Content\r\nContent-Range: {content_range}\r\n{length}\r\n");
    h.deliver(&mut a, false, &[head.as_bytes(), body].concat());
    h.finish(&mut a);
    h
}

/// invalid-content-ranges: the three ranges Zeek rejects, with the range (spaces removed) as addl; http.log still
/// has the 206 replies.
#[test]
fn invalid_content_ranges_are_weirds() {
    for (range, weird, addl) in [
        (
            "bytes 0-9223372036854775807/9223372036854775808",
            "HTTP_content_range_overflow",
            "0-9223372036854775807/9223372036854775808",
        ),
        ("bytes 0--5/*", "HTTP_content_range_invalid", "0--5/*"),
        ("bytes 10-5/*", "HTTP_non_positive_content_range", "10-5/*"),
    ] {
        let h = partial_reply(range, Some(5), b"01234");
        assert_eq!(weirds(&h), vec![(weird, Some(addl), "HTTP")], "{range}");
        let recs = h.logged("http");
        assert_eq!(field(recs[0], "status_code"), &Value::Count(206));
        assert_eq!(field(recs[0], "status_msg"), &Value::str("Partial Content"));
        assert_eq!(field(recs[0], "response_body_len"), &Value::Count(5));
    }
    // bad-content-range: no '/' at all, the weird without addl.
    let h = partial_reply("bytes 0-4", Some(5), b"01234");
    assert_eq!(weirds(&h), vec![("HTTP_content_range_cannot_parse", None, "HTTP")]);
    let h = partial_reply("items 0-4/5", Some(5), b"01234");
    assert_eq!(weirds(&h), vec![("HTTP_content_range_unknown_byte_unit", None, "HTTP")]);
}

/// A 206 without `Content-Length`: the range frames the body (the next reply is found after it), a mismatching
/// `Content-Length` is `HTTP_range_not_matching_len` and the larger one wins, and the file's size is the
/// instance length (files.log `total_bytes`).
#[test]
fn content_range_frames_a_partial_body() {
    let (mut h, mut a) = new();
    h.deliver(&mut a, true, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    h.deliver(
        &mut a,
        false,
        b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-109/5000\r\n\r\n0123456789\
          HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let recs = h.logged("http");
    assert_eq!(recs.len(), 2);
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(10));
    assert_eq!(field(recs[1], "status_code"), &Value::Count(200));
    let part_fuid = first_of(field(recs[0], "resp_fuids"));
    assert_eq!(h.logged("files").len(), 1, "the 206's file outlives its reply");
    h.finish(&mut a);
    let files = h.logged("files");
    assert_eq!(files.len(), 2);
    let part = files[1];
    assert_eq!(field(part, "fuid"), &part_fuid);
    assert_eq!(field(part, "total_bytes"), &Value::Count(5000));
    assert_eq!(field(part, "seen_bytes"), &Value::Count(10));
    assert_eq!(field(part, "missing_bytes"), &Value::Count(100), "the hole before the part");
    assert_eq!(field(part, "timedout"), &Value::Bool(true));
    assert_eq!(field(part, "mime_type"), &Value::Unset);
    assert!(h.weirds.is_empty(), "{:?}", weirds(&h));

    let h = partial_reply("bytes 0-9/10", Some(4), b"0123456789");
    assert_eq!(weirds(&h), vec![("HTTP_range_not_matching_len", None, "HTTP")]);
    assert_eq!(field(h.logged("http")[0], "response_body_len"), &Value::Count(10));
}

/// http-connect (connect-with-smtp.pcap): the CONNECT's record is written when the connection ends, with the whole
/// request target (`uri mailin03.sul.t-online.de:25 /`), `status_msg Connection established` and no bodies; what
/// follows the reply is not HTTP (the tunnelled SMTP makes no HTTP weird).
#[test]
fn connect_tunnel_ends_http() {
    let (mut h, mut a) = new();
    h.deliver(&mut a, true, b"CONNECT mailin03.sul.t-online.de:25 / HTTP/1.0\r\n\r\n");
    h.deliver(&mut a, false, b"HTTP/1.0 200 Connection established\r\n\r\n");
    h.deliver(&mut a, false, b"220 mailin03.sul.t-online.de T-Online ESMTP\r\n");
    h.deliver(&mut a, true, b"EHLO client\r\n");
    assert!(h.logged("http").is_empty(), "the reply has no end before the connection's");
    h.finish(&mut a);
    let recs = h.logged("http");
    assert_eq!(recs.len(), 1);
    assert_eq!(field(recs[0], "method"), &Value::str("CONNECT"));
    assert_eq!(field(recs[0], "uri"), &Value::str("mailin03.sul.t-online.de:25 /"));
    assert_eq!(field(recs[0], "status_msg"), &Value::str("Connection established"));
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(0));
    assert!(h.weirds.is_empty(), "{:?}", weirds(&h));
}

/// The tunnelled protocol's first bytes in the same delivery as the reply that ended HTTP: Zeek's
/// `protocol_data_with_HTTP_CONNECT_reply` / `protocol_data_with_HTTP_upgrade_reply` with the byte count.
#[test]
fn protocol_data_in_the_reply_that_ends_http() {
    let (mut h, mut a) = new();
    h.deliver(&mut a, true, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    h.deliver(&mut a, false, b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01\x00\x05hello");
    assert_eq!(weirds(&h), vec![("protocol_data_with_HTTP_CONNECT_reply", Some("10"), "HTTP")]);

    // 101-switching-protocols (websocket.pcap): the upgrade, with a frame right behind the reply.
    let (mut h, mut a) = new();
    // The key and accept of RFC 6455's example: a handshake websocket.zeek finds no fault with.
    h.deliver(
        &mut a,
        true,
        b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    h.deliver(
        &mut a,
        false,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi",
    );
    assert_eq!(weirds(&h), vec![("protocol_data_with_HTTP_upgrade_reply", Some("4"), "HTTP")]);
    h.deliver(&mut a, true, b"\x81\x82abcdef");
    h.finish(&mut a);
    let recs = h.logged("http");
    assert_eq!(recs.len(), 1);
    assert_eq!(field(recs[0], "status_code"), &Value::Count(101));
    assert_eq!(field(recs[0], "info_code"), &Value::Count(101));
    assert_eq!(h.weirds.len(), 1, "frames after the upgrade are not HTTP");
}

/// m57-long-download-windowsupdate-1 (BITS downloads): a range request answered by a multipart/byteranges 206.
/// Every part is a piece of one file (named by the URL), which is not ended with the reply: files.log has it once
/// the connection is gone, `timedout T`, `total_bytes` the instance length, `seen_bytes` the parts and
/// `missing_bytes` the holes up to the furthest part (12850 + 83087 = 95937, its last range's end, in the
/// baseline), no mime type (the first part is not at offset 0); http.log has its fuid and no mime type.
#[test]
fn byteranges_reply_parts_are_one_timed_out_file() {
    let (mut h, mut a) = new();
    h.deliver(
        &mut a,
        true,
        b"GET /x.psf HTTP/1.1\r\nHost: download.windowsupdate.com\r\nRange: bytes=32955-33330\r\n\r\n",
    );
    let parts = [(32955u64, b"a".repeat(187)), (33142, b"b".repeat(189))];
    let mut body = Vec::new();
    for (first, data) in &parts {
        let last = first + data.len() as u64 - 1;
        body.extend_from_slice(
            format!(
                "--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {first}-{last}/649077\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--B--\r\n");
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; boundary=B\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    h.deliver(&mut a, false, &[head.as_bytes(), &body].concat());
    assert!(h.logged("files").is_empty());
    let recs = h.logged("http");
    assert_eq!(recs.len(), 1);
    assert_eq!(field(recs[0], "status_code"), &Value::Count(206));
    assert_eq!(field(recs[0], "resp_mime_types"), &Value::Unset);
    let fuid = first_of(field(recs[0], "resp_fuids"));
    assert!(matches!(field(recs[0], "resp_fuids"), Value::Vector(v) if v.len() == 1), "one file for both parts");
    h.finish(&mut a);
    let files = h.logged("files");
    assert_eq!(files.len(), 1);
    let f = files[0];
    assert_eq!(field(f, "fuid"), &fuid);
    assert_eq!(field(f, "seen_bytes"), &Value::Count(376));
    assert_eq!(field(f, "missing_bytes"), &Value::Count(33331 - 376));
    assert_eq!(field(f, "total_bytes"), &Value::Count(649077));
    assert_eq!(field(f, "timedout"), &Value::Bool(true));
    assert_eq!(field(f, "mime_type"), &Value::Unset);
    assert!(h.weirds.is_empty(), "{:?}", weirds(&h));
}

/// A 206 that covers its whole file from offset 0 completes it: the file ends then (Zeek's `IsComplete`), as
/// any other, and its mime type reaches http.log (content-range-less-than-len: `resp_mime_types text/plain`).
#[test]
fn partial_reply_that_completes_its_file_ends_it() {
    let h = partial_reply("bytes 0-32/33", None, b"this is the whole file, 33 bytes!");
    let recs = h.logged("http");
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(33));
    assert_eq!(field(recs[0], "resp_mime_types"), &Value::str_vec(["text/plain"]));
    let files = h.logged("files");
    assert_eq!(files.len(), 1);
    assert_eq!(field(files[0], "timedout"), &Value::Bool(false));
    assert_eq!(field(files[0], "missing_bytes"), &Value::Count(0));
    assert_eq!(field(files[0], "total_bytes"), &Value::Count(33));
}

/// Two range requests for one URL on one connection: the second reply continues the first one's file, which is
/// not new to the connection, so the second record has no fuid (`file_over_new_connection` is not raised again).
#[test]
fn range_replies_for_one_url_share_a_file() {
    let (mut h, mut a) = new();
    for (range, data) in [("0-4", "01234"), ("5-9", "56789")] {
        h.deliver(&mut a, true, format!("GET /v HTTP/1.1\r\nHost: x\r\nRange: bytes={range}\r\n\r\n").as_bytes());
        let reply = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {range}/100\r\nContent-Length: 5\r\n\r\n{data}"
        );
        h.deliver(&mut a, false, reply.as_bytes());
    }
    h.finish(&mut a);
    let recs = h.logged("http");
    assert_eq!(recs.len(), 2);
    assert!(matches!(field(recs[0], "resp_fuids"), Value::Vector(v) if v.len() == 1));
    assert_eq!(field(recs[1], "resp_fuids"), &Value::Unset);
    let files = h.logged("files");
    assert_eq!(files.len(), 1);
    assert_eq!(field(files[0], "seen_bytes"), &Value::Count(10));
    assert_eq!(field(files[0], "missing_bytes"), &Value::Count(0));
    assert_eq!(field(files[0], "timedout"), &Value::Bool(true));
}

/// query-method-non-standard-port: a QUERY request (RFC 10008, in Zeek 9.1's `http_methods` and DPD signature) on
/// port 4711, found by content; no weird.log; JSON bodies both ways (`orig_mime_types`/`resp_mime_types`
/// `text/json`, bodies of 57 and 58 bytes).
#[test]
fn query_method_is_known_and_detected() {
    assert!(detect(Proto::Tcp, true, b"QUERY /users HTTP/1.1\r\nHost: example.com\r\n"));
    let mut h = Harness::new(Proto::Tcp, 4711);
    let mut a = Http::default();
    let request = br#"{"select": ["name", "email"], "where": {"active": true }}"#;
    let reply = br#"[{"name": "Alice", "email": "alice@example.com"}, {"n":1}]"#;
    assert_eq!((request.len(), reply.len()), (57, 58));
    let head =
        "QUERY /users HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\nContent-Length: 57\r\n\r\n";
    h.deliver(&mut a, true, &[head.as_bytes(), request].concat());
    h.deliver(&mut a, false, &[&b"HTTP/1.1 200 OK\r\nContent-Length: 58\r\n\r\n"[..], reply].concat());
    h.finish(&mut a);
    assert!(h.weirds.is_empty(), "{:?}", weirds(&h));
    let recs = h.logged("http");
    assert_eq!(field(recs[0], "method"), &Value::str("QUERY"));
    assert_eq!(field(recs[0], "request_body_len"), &Value::Count(57));
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(58));
    assert_eq!(field(recs[0], "orig_mime_types"), &Value::str_vec(["text/json"]));
    assert_eq!(field(recs[0], "resp_mime_types"), &Value::str_vec(["text/json"]));
}

/// The request-smuggling variants of testing/btest/scripts/base/protocols/http/261/ (weird.log baselines, source
/// HTTP): 2^64 as a chunk size (`HTTP_bad_chunk_size 10000000000000000`), 2^64-1 and -1 as a Content-Length
/// (`HTTP_bad_content_length` with the value), `Transfer-Encoding: chunked, identity` (`HTTP_chunked_multi
/// , identity`) and a Content-Length next to chunked (te-cl-desync: `HTTP_content_length_and_chunked`, once).
#[test]
fn smuggling_variants_are_weirds() {
    let reply = |head: &str, body: &str| {
        let (mut h, mut a) = new();
        h.deliver(&mut a, true, b"POST / HTTP/1.1\r\nHost: x\r\n");
        h.deliver(&mut a, true, format!("{head}\r\n{body}").as_bytes());
        h.finish(&mut a);
        h.weirds.iter().map(|w| (w.name.clone(), w.addl.clone(), w.source)).collect::<Vec<_>>()
    };
    let weird = |name: &str, addl: Option<&str>| vec![(name.to_string(), addl.map(str::to_string), "HTTP")];
    assert_eq!(
        reply("Transfer-Encoding: chunked\r\n", "10000000000000000\r\nAAAA\r\n0\r\n\r\n"),
        weird("HTTP_bad_chunk_size", Some("10000000000000000"))
    );
    assert_eq!(
        reply("Content-Length: 18446744073709551615\r\n", ""),
        weird("HTTP_bad_content_length", Some("18446744073709551615"))
    );
    assert_eq!(reply("Content-Length: -1\r\n", ""), weird("HTTP_bad_content_length", Some("-1")));
    assert_eq!(
        reply("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"),
        weird("HTTP_chunked_multi", Some(", identity"))
    );
    assert_eq!(
        reply("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
        weird("HTTP_content_length_and_chunked", None)
    );
}

/// http-09-content-length-confusion: a reply's header arrives before any request, then an HTTP/0.9 request. The
/// baseline: weird.log `http_09_reply_before_request` (HTTP), `HTTP_response_before_request` (script, no source),
/// `HTTP_version_mismatch` (HTTP); http.log a method-less record (1.1, 200 OK, no bodies) and the GET's (0.9,
/// status 0 `<empty>`, 19 bytes of text/plain).
#[test]
fn reply_before_an_http09_request() {
    let (mut h, mut a) = new();
    h.deliver(&mut a, false, b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n");
    h.deliver(&mut a, true, b"GET /\r\n");
    // The client is done before the reply's data (the request ends before the reply is logged: two records).
    h.run(1.2, |ctx| a.end_of_data(ctx, true));
    h.deliver(&mut a, false, b"0123456789012345678");
    h.run(1.5, |ctx| a.end_of_data(ctx, false));
    h.finish(&mut a);
    assert_eq!(
        weirds(&h),
        vec![
            ("http_09_reply_before_request", None, "HTTP"),
            ("HTTP_response_before_request", None, ""),
            ("HTTP_version_mismatch", None, "HTTP"),
        ]
    );
    let recs = h.logged("http");
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (field(recs[0], "method"), field(recs[0], "version"), field(recs[0], "status_code")),
        (&Value::Unset, &Value::str("1.1"), &Value::Count(200))
    );
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(0));
    let r = recs[1];
    assert_eq!(
        (field(r, "trans_depth"), field(r, "method"), field(r, "uri")),
        (&Value::Count(2), &Value::str("GET"), &Value::str("/"))
    );
    assert_eq!(
        (field(r, "version"), field(r, "status_code"), field(r, "status_msg")),
        (&Value::str("0.9"), &Value::Count(0), &Value::str("<empty>"))
    );
    assert_eq!(field(r, "response_body_len"), &Value::Count(19));
    assert_eq!(field(r, "resp_mime_types"), &Value::str_vec(["text/plain"]));
}
