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
    assert!(size <= 224, "Http is {size} bytes");
}

/// HTTP handing its connection over, through the engine. The CONNECT tests are shaped after Zeek's `http-connect`
/// btest (connect-with-smtp.trace): a client asks a proxy on a port no analyzer registers for to connect it to a mail
/// server, the proxy answers 200, and SMTP follows in the same TCP connection.
mod through_the_engine {
    use crate::config::AnalysisConfig;
    use crate::decode::test_frames::tcp_conversation;
    use crate::logs::LogRecord;

    const CLIENT: ([u8; 4], u16) = ([79, 26, 245, 236], 3378);
    const PROXY: ([u8; 4], u16) = ([254, 228, 86, 79], 8240);
    const CONNECT: &[u8] = b"CONNECT mailin03.sul.t-online.de:25 / HTTP/1.0\r\n\r\n";
    const ESTABLISHED: &[u8] = b"HTTP/1.0 200 Connection established\r\n\r\n";
    const GREETING: &[u8] = b"220 mailin03.sul.t-online.de T-Online ESMTP receiver ready.\r\n";
    const MESSAGE: &[u8] = b"Received: from mail.iosphere.net (mail.iosphere.net [216.58.97.33]) by mail.netsync.net \
with esmtp; Mrz, 02 2004 12:55:34 -0700\r\nDate: Tue, 2 Mar 2004 13:57:49 +0100\r\n\
From: Sybille Ostermann <nhfjenna_neumann@lycos.com>\r\nTo: thenightwatch@t-online.de\r\n\
Subject: Hier sind die dicken Girls hemmungloser denn je.. grcu\r\nX-Mailer: Microsoft Outlook Build 10.0.2616\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHallo!\r\n.\r\n";

    /// The SMTP conversation of the trace after the proxy's answer (`greeting` is the server's first segment).
    fn smtp(greeting: &[u8]) -> Vec<(bool, &[u8])> {
        vec![
            (false, greeting),
            (true, b"HELO 208.191.73.21\r\n"),
            (false, b"250 mailin03.sul.t-online.de\r\n"),
            (true, b"MAIL FROM:<nhfjenna_neumann@lycos.com>\r\n"),
            (false, b"250 Sender address accepted.\r\n"),
            (true, b"RCPT TO:<thenightwatch@t-online.de>\r\n"),
            (false, b"250 Recipient address accepted.\r\n"),
            (true, b"DATA\r\n"),
            (false, b"354 Enter mail, end with \".\" on a line by itself\r\n"),
            (true, MESSAGE),
            (false, b"250 Message accepted.\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"221 Bye.\r\n"),
        ]
    }

    /// Runs the frames (one every 10 ms from t=1) with every analyzer on, and returns all records.
    fn run(frames: &[Vec<u8>]) -> Vec<LogRecord> {
        run_with(AnalysisConfig::default(), frames)
    }

    /// [`run`] with the analyzers of `cfg`.
    fn run_with(cfg: AnalysisConfig, frames: &[Vec<u8>]) -> Vec<LogRecord> {
        crate::analyzers::testing::engine_records_with(cfg, frames)
    }

    fn logged<'a>(records: &'a [LogRecord], path: &str) -> Vec<&'a LogRecord> {
        records.iter().filter(|r| r.schema.path == path).collect()
    }

    /// A field as Zeek's TSV writer prints it.
    fn tsv(r: &LogRecord, field: &str) -> String {
        let mut out = String::new();
        r.get(field).unwrap_or_else(|| panic!("{} has no {field}", r.schema.path)).write_tsv(&mut out, false);
        out
    }

    #[test]
    fn a_successful_connect_hands_the_stream_to_the_tunnelled_protocol() {
        let mut messages = vec![(true, CONNECT), (false, ESTABLISHED)];
        messages.extend(smtp(GREETING));
        let frames = tcp_conversation(CLIENT, PROXY, &messages);
        let records = run(&frames);

        let conns = logged(&records, "conn");
        assert_eq!(conns.len(), 1);
        let uid = tsv(conns[0], "uid");
        // Zeek 9.1's `service` keeps confirmation order (`&ordered`): HTTP at the request, SMTP after the hand-over.
        assert_eq!(tsv(conns[0], "service"), "http,smtp");
        assert_eq!(tsv(conns[0], "conn_state"), "SF");
        assert_eq!(tsv(conns[0], "tunnel_parents"), "-");

        let http = logged(&records, "http");
        assert_eq!(http.len(), 1);
        let expected_http = [
            ("trans_depth", "1"),
            ("method", "CONNECT"),
            ("host", "-"),
            ("uri", "mailin03.sul.t-online.de:25 /"),
            ("version", "1.0"),
            ("user_agent", "-"),
            ("request_body_len", "0"),
            ("response_body_len", "0"),
            ("status_code", "200"),
            ("status_msg", "Connection established"),
            ("tags", "(empty)"),
            ("resp_fuids", "-"),
        ];
        for (field, value) in expected_http {
            assert_eq!(tsv(http[0], field), value, "http.log {field}");
        }
        assert_eq!(tsv(http[0], "uid"), uid);

        let smtp = logged(&records, "smtp");
        assert_eq!(smtp.len(), 1, "the tunnelled SMTP is analysed");
        let expected_smtp = [
            ("trans_depth", "1"),
            ("helo", "208.191.73.21"),
            ("mailfrom", "nhfjenna_neumann@lycos.com"),
            ("rcptto", "thenightwatch@t-online.de"),
            ("date", "Tue, 2 Mar 2004 13:57:49 +0100"),
            ("from", "Sybille Ostermann <nhfjenna_neumann@lycos.com>"),
            ("to", "thenightwatch@t-online.de"),
            ("subject", "Hier sind die dicken Girls hemmungloser denn je.. grcu"),
            ("last_reply", "250 Message accepted."),
            ("path", "254.228.86.79,79.26.245.236,216.58.97.33"),
            ("user_agent", "Microsoft Outlook Build 10.0.2616"),
            ("tls", "F"),
        ];
        for (field, value) in expected_smtp {
            assert_eq!(tsv(smtp[0], field), value, "smtp.log {field}");
        }
        assert_eq!(tsv(smtp[0], "uid"), uid);

        let tunnels = logged(&records, "tunnel");
        assert_eq!(tunnels.len(), 1);
        let reply_ts = "1.040000"; // the 200's packet: the fifth frame
        let expected_tunnel = [
            ("ts", reply_ts),
            ("uid", "-"),
            ("id.orig_h", "79.26.245.236"),
            ("id.orig_p", "0"),
            ("id.resp_h", "254.228.86.79"),
            ("id.resp_p", "8240"),
            ("tunnel_type", "Tunnel::HTTP"),
            ("action", "Tunnel::DISCOVER"),
        ];
        for (field, value) in expected_tunnel {
            assert_eq!(tsv(tunnels[0], field), value, "tunnel.log {field}");
        }
        assert!(logged(&records, "weird").is_empty());
    }

    /// The proxy's first bytes of the tunnelled protocol in the segment of its 200: Zeek's weird with their count,
    /// and the bytes still reach the protocol detection.
    #[test]
    fn tunnelled_bytes_behind_the_reply_are_not_lost() {
        let first = [ESTABLISHED, GREETING].concat();
        let mut messages = vec![(true, CONNECT)];
        messages.extend(smtp(&first));
        let records = run(&tcp_conversation(CLIENT, PROXY, &messages));
        assert_eq!(tsv(logged(&records, "conn")[0], "service"), "http,smtp");
        assert_eq!(logged(&records, "smtp").len(), 1);
        let weirds = logged(&records, "weird");
        assert_eq!(weirds.len(), 1);
        assert_eq!(tsv(weirds[0], "name"), "protocol_data_with_HTTP_CONNECT_reply");
        assert_eq!(tsv(weirds[0], "addl"), GREETING.len().to_string());
    }

    /// A method only HTTP.cc takes for CONNECT (it compares without case): the client's line is no DPD method, so
    /// HTTP starts at the proxy's reply with both replayed to it, and hands over inside that replay. The script
    /// compares exactly, so there is no tunnel.log line.
    #[test]
    fn a_connect_found_in_the_replay_still_hands_over() {
        let mut messages = vec![(true, b"connect mailin03.sul.t-online.de:25 HTTP/1.0\r\n\r\n" as &[u8])];
        messages.push((false, ESTABLISHED));
        messages.extend(smtp(GREETING));
        let records = run(&tcp_conversation(CLIENT, PROXY, &messages));
        assert_eq!(tsv(logged(&records, "conn")[0], "service"), "http,smtp");
        assert_eq!(logged(&records, "smtp").len(), 1);
        assert!(logged(&records, "tunnel").is_empty());
    }

    /// A refused CONNECT (here 407) keeps the connection HTTP: no tunnel, and what follows is not analysed as SMTP.
    #[test]
    fn a_refused_connect_does_not_switch() {
        let refused: &[u8] = b"HTTP/1.0 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n";
        let mut messages = vec![(true, CONNECT), (false, refused)];
        messages.extend(smtp(GREETING));
        let records = run(&tcp_conversation(CLIENT, PROXY, &messages));
        assert!(logged(&records, "smtp").is_empty());
        assert!(logged(&records, "tunnel").is_empty());
        assert!(!tsv(logged(&records, "conn")[0], "service").contains("smtp"));
        assert_eq!(tsv(logged(&records, "http")[0], "status_code"), "407");
    }

    /// Zeek's `101-switching-protocols` shape: a WebSocket upgrade on port 80, then a masked text frame from the
    /// client and the server's answer. websocket.log has the handshake; the service gains `websocket` once a
    /// whole message went by.
    #[test]
    fn a_websocket_upgrade_hands_the_stream_to_the_websocket_analyzer() {
        let request: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUser-Agent: test/1.0\r\n\
Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let reply: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        let hello = [0x81, 0x85, 1, 2, 3, 4, b'H' ^ 1, b'e' ^ 2, b'l' ^ 3, b'l' ^ 4, b'o' ^ 1];
        let messages = [(true, request), (false, reply), (true, &hello[..]), (false, b"\x81\x02hi")];
        let client = ([10, 0, 0, 1], 40000);
        let server = ([10, 0, 0, 2], 80);
        let records = run(&tcp_conversation(client, server, &messages));
        let conn = logged(&records, "conn");
        assert_eq!(tsv(conn[0], "service"), "http,websocket");
        let ws = logged(&records, "websocket");
        assert_eq!(ws.len(), 1);
        let expected = [
            ("ts", "1.040000"), // the 101's packet
            ("uid", &tsv(conn[0], "uid")),
            ("host", "server.example.com"),
            ("uri", "/chat"),
            ("user_agent", "test/1.0"),
            ("subprotocol", "chat"),
            ("client_protocols", "chat,superchat"),
            ("server_extensions", "-"),
            ("client_extensions", "-"),
        ];
        for (field, value) in expected {
            assert_eq!(tsv(ws[0], field), value, "websocket.log {field}");
        }
        assert!(logged(&records, "weird").is_empty());
        let http = logged(&records, "http");
        assert_eq!(tsv(http[0], "status_code"), "101");

        // Upgraded to a protocol without an analyzer of its own: content detection finds it (here SMTP).
        let reply: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: mail\r\nConnection: Upgrade\r\n\r\n";
        let mut messages = vec![(true, b"GET / HTTP/1.1\r\nUpgrade: mail\r\n\r\n" as &[u8]), (false, reply)];
        messages.extend(smtp(GREETING));
        let records = run(&tcp_conversation(client, server, &messages));
        assert!(logged(&records, "websocket").is_empty());
        assert_eq!(tsv(logged(&records, "conn")[0], "service"), "http,smtp");
    }

    /// Executables among HTTP bodies, through the engine: Zeek's PE analysis (base/files/pe) attaches to a file sniffed
    /// as `application/x-dosexec`, files.log names it in `analyzers`, and pe.log gets one record per executable.
    mod pe_files {
        use super::{AnalysisConfig, LogRecord, logged, run_with, tcp_conversation, tsv};
        use crate::analyzers::pe::testing::Image;

        const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 5], 49152);
        const SERVER: ([u8; 4], u16) = ([192, 0, 2, 80], 80);
        const SEGMENT: usize = 1400;

        /// An executable whose NT headers lie past the 4 KiB the sniffer reads, so the PE analysis needs what follows.
        fn executable() -> Vec<u8> {
            Image { e_lfanew: 5000, ..Image::pe32() }.bytes()
        }

        /// A download of the executable (its body in 1400-byte segments), then one of a text file; one frame every 10
        /// ms from t=1 with `cfg`.
        fn downloads(cfg: AnalysisConfig) -> Vec<LogRecord> {
            let exe = executable();
            let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", exe.len());
            let mut messages: Vec<(bool, &[u8])> =
                vec![(true, b"GET /setup.exe HTTP/1.1\r\nHost: x\r\n\r\n"), (false, header.as_bytes())];
            messages.extend(exe.chunks(SEGMENT).map(|c| (false, c)));
            messages.push((true, b"GET /readme.txt HTTP/1.1\r\nHost: x\r\n\r\n"));
            messages.push((false, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"));
            run_with(cfg, &tcp_conversation(CLIENT, SERVER, &messages))
        }

        #[test]
        fn an_executable_download_gets_the_pe_analyzer_and_a_pe_record() {
            let records = downloads(AnalysisConfig::default());
            let files = logged(&records, "files");
            assert_eq!(files.len(), 2);
            assert_eq!(tsv(files[0], "mime_type"), "application/x-dosexec");
            assert_eq!(tsv(files[0], "analyzers"), "PE");
            assert_eq!(tsv(files[0], "seen_bytes"), executable().len().to_string());
            assert_eq!(tsv(files[1], "analyzers"), "(empty)");

            let pe = logged(&records, "pe");
            assert_eq!(pe.len(), 1);
            let expected = [
                // The BOF buffer fills in the body's third segment (frames: handshake, GET, reply header, body).
                ("ts", "1.070000".to_owned()),
                ("id", tsv(files[0], "fuid")),
                ("machine", "I386".to_owned()),
                ("compile_ts", "1402852568.000000".to_owned()),
                ("os", "Windows 95 or NT 4.0".to_owned()),
                ("subsystem", "WINDOWS_GUI".to_owned()),
                ("is_exe", "T".to_owned()),
                ("is_64bit", "F".to_owned()),
                ("uses_aslr", "F".to_owned()),
                ("uses_dep", "F".to_owned()),
                ("uses_code_integrity", "F".to_owned()),
                ("uses_seh", "T".to_owned()),
                ("has_import_table", "T".to_owned()),
                ("has_export_table", "F".to_owned()),
                ("has_cert_table", "F".to_owned()),
                ("has_debug_data", "F".to_owned()),
                ("section_names", ".text,.data,.rsrc".to_owned()),
            ];
            for (field, value) in expected {
                assert_eq!(tsv(pe[0], field), value, "pe.log {field}");
            }
            assert_eq!(tsv(files[0], "ts"), "1.050000", "the file starts a segment before the sniff");
        }

        #[test]
        fn bare_mode_without_base_files_pe_attaches_nothing() {
            let cfg = AnalysisConfig::default().with_analyzers(&["conn", "files", "http"]).unwrap();
            let records = downloads(cfg);
            let files = logged(&records, "files");
            assert_eq!(tsv(files[0], "mime_type"), "application/x-dosexec");
            assert_eq!(tsv(files[0], "analyzers"), "(empty)");
            assert!(logged(&records, "pe").is_empty());
        }
    }
}
