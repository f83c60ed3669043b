//! Analyzer-level tests on payloads lifted from the oracle traces.

use super::*;
use crate::analyzers::testing::Harness;
use crate::logs::Value;

fn http_records(h: &Harness) -> Vec<&crate::logs::LogRecord> {
    h.logged("http")
}

fn field<'a>(r: &'a crate::logs::LogRecord, name: &str) -> &'a Value {
    r.get(name).unwrap_or(&Value::Unset)
}

fn weird_names(h: &Harness) -> Vec<&str> {
    h.weirds.iter().map(|w| w.name.as_str()).collect()
}

/// http_09.pcap, first connection: an HTTP/0.9 GET, the raw reply, then the server closes first.
#[test]
fn http09_request_and_reply() {
    let mut h = Harness::new(Proto::Tcp, 80);
    let mut a = Http::default();
    h.deliver(&mut a, true, b"GET /zeek.html\n");
    h.deliver(&mut a, false, b"<html>\n  The Zeek Network Security Monitor\n</html>\n");
    h.run(1.5, |ctx| a.end_of_data(ctx, false));
    h.run(1.6, |ctx| a.end_of_data(ctx, true));
    h.finish(&mut a);
    let recs = http_records(&h);
    assert_eq!(recs.len(), 2, "the request message ends after the reply was logged: a second record");
    assert_eq!(field(recs[0], "version"), &Value::str("0.9"));
    assert_eq!(field(recs[0], "status_msg"), &Value::str("<empty>"));
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(51));
    assert_eq!(field(recs[0], "resp_mime_types"), &Value::str_vec(["text/html"]));
    assert_eq!(field(recs[1], "trans_depth"), &Value::Count(2));
    assert_eq!(field(recs[1], "ts"), &Value::Time(1.6));
    assert_eq!(h.logged("files").len(), 1);
    assert!(h.actions.contains(&crate::analyzers::Action::Confirm("http")));
}

#[test]
fn http09_post_is_a_weird_and_bad_lines_are_not_requests() {
    let mut h = Harness::new(Proto::Tcp, 80);
    let mut a = Http::default();
    h.deliver(&mut a, true, b"POST /zeek.html\n");
    assert_eq!(weird_names(&h), vec!["invalid_http_09_request_method"]);

    let mut h = Harness::new(Proto::Tcp, 80);
    let mut a = Http::default();
    h.deliver(&mut a, true, b"T /zeek.html\n");
    h.deliver(&mut a, false, b"bad method\n");
    h.finish(&mut a);
    assert_eq!(weird_names(&h), vec!["bad_HTTP_request"]);
    assert!(http_records(&h).is_empty());
}

/// methods.pcap: an unknown method is a script weird (no source) after the analyzer's own weirds.
#[test]
fn unknown_method_weird_comes_from_the_script() {
    let mut h = Harness::new(Proto::Tcp, 80);
    let mut a = Http::default();
    h.deliver(&mut a, true, b"CCM_POST /HTTP/1.1\nHost: www.google.com\n\n");
    assert_eq!(weird_names(&h), vec!["invalid_http_09_request_method", "unknown_HTTP_method"]);
    assert_eq!(h.weirds[1].source, "");
}

/// pipelined-requests.pcap shape: two requests before the first reply pair up by trans_depth.
#[test]
fn pipelined_requests_pair_with_replies() {
    let mut h = Harness::new(Proto::Tcp, 80);
    let mut a = Http::default();
    h.deliver(
        &mut a,
        true,
        b"GET /a HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    h.deliver(
        &mut a,
        false,
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    );
    let recs = http_records(&h);
    assert_eq!(recs.len(), 2);
    assert_eq!(field(recs[0], "uri"), &Value::str("/a"));
    assert_eq!(field(recs[0], "referrer"), &Value::str("http://r/"));
    assert_eq!(field(recs[0], "response_body_len"), &Value::Count(3));
    assert_eq!(field(recs[1], "trans_depth"), &Value::Count(2));
    assert_eq!(field(recs[1], "status_code"), &Value::Count(404));
}

/// no_crlf.pcap: a multipart body that ends without CRLF exactly at Content-Length.
#[test]
fn body_ending_without_crlf_at_content_length() {
    let mut h = Harness::new(Proto::Tcp, 80);
    let mut a = Http::default();
    let body = b"\r\n--B\r\nContent-Disposition: form-data; name=\"n\"; filename=\"f\"\r\n\r\nDATA\r\n--B--\x00\x00";
    let head = format!(
        "POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    h.deliver(&mut a, true, head.as_bytes());
    h.deliver(&mut a, true, body);
    assert_eq!(weird_names(&h), vec!["line_terminated_without_CRLF"]);
    h.deliver(&mut a, false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let recs = http_records(&h);
    assert_eq!(field(recs[0], "request_body_len"), &Value::Count(body.len() as u64 + 2));
    assert_eq!(field(recs[0], "orig_filenames"), &Value::str_vec(["f"]));
    let files = h.logged("files");
    assert_eq!(field(files[0], "seen_bytes"), &Value::Count(4));
}

#[test]
fn detects_requests_and_replies() {
    assert!(detect(Proto::Tcp, true, b"GET / HTTP/1.1\r\n"));
    assert!(detect(Proto::Tcp, true, b"  POST /x"));
    assert!(detect(Proto::Tcp, false, b"HTTP/1.1 200 OK\r\n"));
    assert!(!detect(Proto::Tcp, true, b"HTTP/1.1 200 OK\r\n"), "a reply's first line from the client");
    assert!(!detect(Proto::Tcp, false, b"SSH-2.0-OpenSSH\r\n"));
    assert!(!detect(Proto::Udp, true, b"GET /"));
}

#[test]
fn fuzz_entry_survives_samples() {
    fuzz(b"");
    fuzz(b"\x10GET / HTTP/1.1\r\n\r\n\x20HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    fuzz(b"\xffPOST / HTTP/1.1\r\nContent-Type: multipart/x; boundary=a\r\nContent-Encoding: gzip\r\n\r\n--a\r\n\r\n\x1f\x8b");
}

mod prop {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::fuzz(&data);
        }

        #[test]
        fn http_shaped_bytes_never_panic(parts in proptest::collection::vec(
            prop_oneof![
                Just(b"GET / HTTP/1.1\r\n".to_vec()),
                Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
                Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
                Just(b"Content-Length: 5\r\n".to_vec()),
                Just(b"Content-Type: multipart/form-data; boundary=b\r\n".to_vec()),
                Just(b"--b\r\n".to_vec()),
                Just(b"\r\n".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ], 0..40)) {
            let mut framed = vec![];
            for p in &parts {
                let len = p.len().min(255);
                framed.push(u8::try_from(len).unwrap_or(u8::MAX));
                framed.extend_from_slice(&p[..len]);
            }
            super::fuzz(&framed);
        }
    }
}

/// Every HTTP connection pays this (docs/BENCHMARKS.md, "Where the memory goes"): a field that grows it should be a
/// decision, not an accident.
#[test]
fn analyzer_state_stays_small() {
    let size = std::mem::size_of::<Http>();
    assert!(size <= 272, "Http is {size} bytes");
}
