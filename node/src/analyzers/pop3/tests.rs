use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;
use crate::logs::LogRecord;

fn col(r: &LogRecord, name: &str) -> String {
    r.get(name).expect("column exists").to_tsv()
}

/// Runs a scripted session (one delivery per step, one second apart) and finishes the connection.
fn run(script: &[(bool, &[u8])]) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 110);
    let mut a = Pop3Analyzer::default();
    for (i, (is_orig, bytes)) in script.iter().enumerate() {
        h.run(10.0 + i as f64, |ctx| a.deliver(ctx, *is_orig, bytes));
    }
    h.finish(&mut a);
    h
}

/// The files.log columns that tell the files of a session apart.
fn files(h: &Harness) -> Vec<(String, String, String, String)> {
    h.logged("files")
        .iter()
        .map(|r| (col(r, "source"), col(r, "mime_type"), col(r, "seen_bytes"), col(r, "is_orig")))
        .collect()
}

fn file(mime: &str, bytes: usize) -> (String, String, String, String) {
    ("POP3".into(), mime.into(), bytes.to_string(), "F".into())
}

const MULTIPART: &[u8] = b"+OK\r\nReturn-Path: <noreply@example.com>\r\nSubject: Welcome\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nHello there,\r\nyour mailbox is ready.\r\n--b1\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><body>Hello=20there</body></html>\r\n..hidden\r\n--b1--\r\n.\r\n";

/// The shape of the session in the pop3-rej oracle trace that fetches mail: a bare AUTH refused, CAPA, AUTH
/// PLAIN with its SASL exchange, STAT, LIST, UIDL, RETR, QUIT.
fn mailbox_session(retr_reply: &'static [u8]) -> Vec<(bool, &'static [u8])> {
    vec![
        (false, b"+OK POP server ready H mimap15 0LfD5x-1VsVU4327M-00pHSn\r\n"),
        (true, b"AUTH\r\n"),
        (false, b"-ERR 1 argument required\r\n"),
        (true, b"CAPA\r\n"),
        (false, b"+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nSTLS\r\nSASL PLAIN\r\n.\r\n"),
        (true, b"AUTH PLAIN\r\n"),
        (false, b"+ \r\n"),
        (true, b"AGRpZ2l0YWxpbnZlc3RpZ2F0b3JAbmV0d29ya3NpbXMuY29tAG5hcGllcjEyMw==\r\n"),
        (false, b"+OK mailbox \"digitalinvestigator@networksims.com\" has 1 messages\r\n"),
        (true, b"STAT\r\n"),
        (false, b"+OK 1 400\r\n"),
        (true, b"LIST\r\n"),
        (false, b"+OK\r\n1 400\r\n.\r\n"),
        (true, b"UIDL\r\n"),
        (false, b"+OK\r\n1 0M8Oog-1VyW6I2B74-00vNGA\r\n.\r\n"),
        (true, b"RETR 1\r\n"),
        (false, retr_reply),
        (true, b"QUIT\r\n"),
        (false, b"+OK POP server signing off\r\n"),
    ]
}

#[test]
fn retrieved_message_entities_become_files_and_the_session_is_quiet() {
    let h = run(&mailbox_session(MULTIPART));
    // Plain text keeps its CRLFs but the one before the boundary; the quoted-printable part ends every line
    // with CRLF, and its dot-stuffed line keeps both dots, as Zeek passes message lines on unchanged.
    let plain = "Hello there,\r\nyour mailbox is ready.".len();
    let html = "<html><body>Hello there</body></html>\r\n..hidden\r\n".len();
    assert_eq!(files(&h), vec![file("text/plain", plain), file("text/html", html)]);
    let r = h.logged("files")[0];
    assert_eq!(col(r, "depth"), "0");
    assert_eq!(col(r, "filename"), "-");
    assert_eq!(col(r, "ts"), "26.000000", "the file starts with the RETR reply's data");
    assert_eq!(h.actions, vec![Action::Confirm("pop3")], "confirmed once, at CAPA's +OK");
    assert!(h.weirds.is_empty(), "{:?}", h.weirds);
}

#[test]
fn a_message_split_across_deliveries_is_one_file() {
    let mut script = mailbox_session(b"+OK\r\n");
    // After the RETR reply's status line, before QUIT.
    let at = script.len() - 2;
    script.insert(at, (false, b"Subject: a\r\n\r\nline one\r\nli"));
    script.insert(at + 1, (false, b"ne two\r\n.\r\n"));
    let h = run(&script);
    assert_eq!(files(&h), vec![file("text/plain", "line one\r\nline two\r\n".len())]);
    let r = h.logged("files")[0];
    assert_eq!((col(r, "ts"), col(r, "duration")), ("27.000000".into(), "1.000000".into()));
}

#[test]
fn only_commands_with_multi_line_replies_wait_for_the_dot() {
    // LIST with an argument and STAT answer in one line: had they waited for a dot, RETR's reply would have been
    // taken for theirs and no file would come out.
    let h = run(&[
        (false, b"+OK ready\r\n"),
        (true, b"USER bob\r\n"),
        (false, b"+OK\r\n"),
        (true, b"PASS secret\r\n"),
        (false, b"+OK logged in\r\n"),
        (true, b"LIST 1\r\n"),
        (false, b"+OK 1 30\r\n"),
        (true, b"STAT\r\n"),
        (false, b"+OK 1 30\r\n"),
        (true, b"DELE 1\r\n"),
        (false, b"+OK deleted\r\n"),
        (true, b"RETR 1\r\n"),
        (false, b"+OK\r\nSubject: x\r\n\r\nThe body of a short message.\r\n.\r\n"),
    ]);
    assert_eq!(files(&h), vec![file("text/plain", 30)]);
    assert_eq!(h.actions, vec![Action::Confirm("pop3")], "USER's +OK confirms");
}

#[test]
fn top_replies_are_messages_too_and_errors_end_nothing() {
    let h = run(&[
        (false, b"+OK ready\r\n"),
        (true, b"APOP bob c4c9334bac560ecc979e58001b3e22fb\r\n"),
        (false, b"+OK maildrop locked\r\n"),
        (true, b"RETR 9\r\n"),
        (false, b"-ERR no such message\r\n"),
        (true, b"TOP 1 1\r\n"),
        (false, b"+OK\r\nSubject: x\r\n\r\nfirst line\r\n.\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"+OK bye\r\n"),
    ]);
    assert_eq!(files(&h), vec![file("text/plain", "first line\r\n".len())]);
    assert!(h.actions.is_empty(), "APOP's +OK does not confirm in Zeek: {:?}", h.actions);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let h = run(&[
        (false, b"+OK ready\r\n"),
        (true, b"CAPA\r\nUSER bob\r\nPASS pw\r\nUIDL\r\nRETR 1\r\nQUIT\r\n"),
        (false, b"+OK\r\nUSER\r\n.\r\n+OK\r\n+OK\r\n+OK\r\n1 a\r\n.\r\n+OK\r\nSubject: x\r\n\r\nHi, a pipelined message.\r\n.\r\n+OK bye\r\n"),
    ]);
    assert_eq!(files(&h), vec![file("text/plain", 26)]);
    assert!(h.weirds.is_empty(), "{:?}", h.weirds);
}

#[test]
fn commands_of_the_transaction_phase_before_login_are_guessed() {
    // No USER/PASS seen (the login was before the capture or needs none): RETR's +OK switches to the transaction
    // phase.
    let h = run(&[
        (false, b"+OK ready\r\n"),
        (true, b"RETR 1\r\n"),
        (false, b"+OK\r\n\r\nA message retrieved without login.\r\n.\r\n"),
    ]);
    assert_eq!(files(&h), vec![file("text/plain", 36)]);
}

#[test]
fn a_message_cut_off_by_the_end_of_the_connection_is_still_logged() {
    let h = run(&[(false, b"+OK ready\r\n"), (true, b"RETR 1\r\n"), (false, b"+OK\r\n\r\npartial line\r\n")]);
    assert_eq!(files(&h), vec![file("text/plain", 14)]);
}

#[test]
fn stls_hands_the_rest_to_tls() {
    let h = run(&[
        (false, b"+OK ready\r\n"),
        (true, b"STLS\r\n"),
        (false, b"+OK begin TLS\r\n\x16\x03\x01\x00\x05hello"),
        (true, b"RETR 1\r\n"),
        (false, b"+OK\r\n\r\nnot seen\r\n.\r\n"),
    ]);
    assert_eq!(h.actions, vec![Action::Confirm("pop3"), Action::StartTls]);
    assert!(h.logged("files").is_empty());
    assert!(h.weirds.is_empty(), "{:?}", h.weirds);
}

#[test]
fn refused_stls_goes_on_in_clear() {
    let h = run(&[(false, b"+OK ready\r\n"), (true, b"STLS\r\n"), (false, b"-ERR not now\r\n")]);
    assert!(!h.actions.contains(&Action::StartTls));
}

#[test]
fn weirds_name_what_zeek_names() {
    let h = run(&[
        (false, b"+OK ready\r\n"),
        (true, b"XYZZY 1\r\n"),
        (false, b"+OK\r\n"),
        (true, b"AUTH PLAIN\r\n"),
        (false, b"+ \r\n"),
        // base64 of "\0bob" (no password)
        (true, b"AGJvYg==\r\n"),
        (false, b"-ERR\r\n"),
        (true, b"NOOP\r\n"),
        (false, b"USER what\r\n"),
    ]);
    let names: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref())).collect();
    assert_eq!(
        names,
        vec![
            ("pop3_client_command_unknown", Some("XYZZY")),
            ("pop3_malformed_auth_plain", None),
            ("pop3_server_sending_client_commands", None),
        ]
    );
}

#[test]
fn a_server_that_is_not_pop3_is_a_violation() {
    let h = run(&[(false, b"SSH-2.0-OpenSSH_8.9\r\n")]);
    assert_eq!(
        h.actions,
        vec![Action::Violation(
            "unknown server command (SSH-2.0-OpenSSH_8.9)".into(),
            Some(b"SSH-2.0-OpenSSH_8.9".as_slice().into())
        )]
    );
    assert_eq!(h.weirds[0].name, "pop3_server_command_unknown");
    assert_eq!(h.weirds[0].addl.as_deref(), Some("SSH-2.0-OpenSSH_8.9"));
}

#[test]
fn too_many_pending_or_unknown_commands_are_bounded() {
    // A client that is not POP3 (Redis here) pipelines unknown lines and gets no POP3 answer.
    let mut client = Vec::new();
    for _ in 0..12 {
        client.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    }
    let h = run(&[(true, &client)]);
    let names: Vec<_> = h.weirds.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names[0], "pop3_client_command_unknown");
    assert!(names.contains(&"pop3_client_too_many_pending_commands"));
    // Unknown commands one at a time: the eleventh is a violation.
    let mut script: Vec<(bool, &[u8])> = Vec::new();
    for _ in 0..11 {
        script.extend([(true, &b"PING\r\n"[..]), (false, &b"-ERR\r\n"[..])]);
    }
    let h = run(&script[..20]);
    assert!(h.actions.is_empty(), "{:?}", h.actions);
    let h = run(&script);
    assert_eq!(h.actions, vec![Action::Violation("too many unknown client commands".into(), None)]);
}

#[test]
fn connections_joined_midstream_are_ignored() {
    let mut h = Harness::new(Proto::Tcp, 110);
    h.partial = true;
    let mut a = Pop3Analyzer::default();
    h.deliver(&mut a, true, b"RETR 1\r\n");
    h.deliver(&mut a, false, b"+OK\r\n\r\nbody\r\n.\r\n");
    h.finish(&mut a);
    assert!(h.records.is_empty() && h.actions.is_empty() && h.weirds.is_empty());
}

#[test]
fn commands_parse_as_zeek_parses_them() {
    assert_eq!(parse_command("+OK"), Some(Command::Ok));
    assert_eq!(parse_command("-err"), Some(Command::Err));
    assert_eq!(parse_command("retr"), Some(Command::Retr));
    assert_eq!(parse_command("+"), None);
    assert_eq!(parse_command("RETRIEVE"), None);
    assert_eq!(trim_whitespace(b" \t LIST   1  "), "LIST 1");
    assert_eq!(split_command("TOP 1 0"), (Some("TOP"), "1 0"));
    assert_eq!(split_command(""), (None, ""));
    assert!(is_canonical_base64(b"AGJvYgBwdw=="));
    assert!(!is_canonical_base64(b"AGJvYgBwdw="));
    assert!(!auth_plain_is_malformed(b"\0bob\0pw"));
    assert!(auth_plain_is_malformed(b"\0bob\0"));
    assert!(auth_plain_is_malformed(b"bob"));
}

#[test]
fn detects_pop3_greetings() {
    assert!(detect(Proto::Tcp, false, b"+OK POP3 ready\r\n"));
    assert!(!detect(Proto::Tcp, true, b"+OK POP3 ready\r\n"));
    assert!(!detect(Proto::Tcp, false, b"* OK IMAP4rev1\r\n"));
    assert!(!detect(Proto::Udp, false, b"+OK POP3 ready\r\n"));
}

proptest::proptest! {
    #[test]
    fn fuzz_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..800)) {
        fuzz(&data);
    }

    #[test]
    fn fuzz_never_panics_on_pop3_like_text(lines in proptest::collection::vec("(\\+OK|-ERR|\\+|\\.|\\.\\.|USER|PASS|APOP|AUTH|AUTH PLAIN|AUTH LOGIN|CAPA|STAT|LIST|UIDL|RETR 1|TOP 1 0|DELE 1|RSET|NOOP|QUIT|STLS|XSENDER|--B|Content-Type: multipart/mixed; boundary=B|Content-Transfer-Encoding: base64)[ -~]{0,30}", 0..40)) {
        let mut data = vec![3u8];
        for l in lines {
            data.extend_from_slice(l.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        fuzz(&data);
    }
}
