use super::*;
use crate::analyzers::testing::{Harness, engine_records, field};
use crate::analyzers::{Action, Proto};

/// The capabilities in Zeek's `scripts.base.protocols.imap.capabilities` baseline (imap-starttls.pcap's server),
/// in the order `imap_capabilities` printed them.
const BASELINE_CAPABILITIES: [&str; 20] = [
    "IMAP4rev1",
    "CHILDREN",
    "ENABLE",
    "ID",
    "IDLE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "LITERAL+",
    "MOVE",
    "NAMESPACE",
    "SASL-IR",
    "SORT",
    "SPECIAL-USE",
    "THREAD=ORDEREDSUBJECT",
    "UIDPLUS",
    "UNSELECT",
    "WITHIN",
    "STARTTLS",
    "AUTH=LOGIN",
    "AUTH=PLAIN",
];

fn capability_line() -> Vec<u8> {
    format!("* CAPABILITY {}\r\n", BASELINE_CAPABILITIES.join(" ")).into_bytes()
}

/// The start of an IMAP session up to the server's OK to STARTTLS, one delivery per message, as a client like the
/// one in imap-starttls.pcap sends it.
fn starttls_session() -> Vec<(bool, Vec<u8>)> {
    let mut capability_reply = capability_line();
    capability_reply.extend_from_slice(b"1 OK CAPABILITY completed\r\n");
    vec![
        (false, b"* OK IMAP server ready H migmx028 0Lmxyp-1WKnxd1nL7-00hQJG\r\n".to_vec()),
        (true, b"1 capability\r\n".to_vec()),
        (false, capability_reply),
        (true, b"2 starttls\r\n".to_vec()),
        (false, b"2 OK Begin TLS negotiation now\r\n".to_vec()),
    ]
}

fn run(script: &[(bool, Vec<u8>)]) -> (Harness, Imap) {
    let mut h = Harness::new(Proto::Tcp, 143);
    let mut a = Imap::default();
    for (is_orig, bytes) in script {
        h.deliver(&mut a, *is_orig, bytes);
    }
    (h, a)
}

fn weird_names(h: &Harness) -> Vec<&str> {
    h.weirds.iter().map(|w| w.name.as_str()).collect()
}

/// Every token of one delivery, or the mismatch.
fn tokens(is_orig: bool, data: &[u8]) -> Result<Vec<Token<'_>>, (Vec<Token<'_>>, Mismatch)> {
    let mut seen = Vec::new();
    match parse_delivery(is_orig, data, |t| seen.push(t)) {
        Ok(()) => Ok(seen),
        Err(m) => Err((seen, m)),
    }
}

#[test]
fn the_servers_capability_list_is_read_as_the_baseline_prints_it() {
    let line = capability_line();
    let parsed = tokens(false, &line).expect("a capability response parses");
    assert_eq!(parsed.len(), 1);
    let caps: Vec<String> = parsed[0]
        .capabilities
        .as_ref()
        .expect("a capability list")
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(caps, BASELINE_CAPABILITIES);
    // Upper, lower or mixed case: `determine_command` lower-cases the command; the tag must be `*`.
    let lower = tokens(false, b"* capability IMAP4rev1  STARTTLS \r\n").expect("parses");
    assert_eq!(lower[0].capabilities, Some(vec![&b"IMAP4rev1"[..], b"STARTTLS"]));
    let tagged = tokens(false, b"1 CAPABILITY IMAP4rev1\r\n").expect("parses");
    assert_eq!(tagged[0].capabilities, None);
    // The client's CAPABILITY is an ordinary command.
    let client = tokens(true, b"* CAPABILITY\r\n").expect("parses");
    assert_eq!(client[0].capabilities, None);
}

#[test]
fn tokens_as_binpac_reads_a_delivery() {
    let parsed = tokens(false, b"* OK [CAPABILITY IMAP4rev1] ready\r\n1 OK done\n\n\r\n2   NO   \r").expect("parses");
    let pairs: Vec<(&[u8], &[u8])> = parsed.iter().map(|t| (t.tag, t.command)).collect();
    assert_eq!(pairs, [(&b"*"[..], &b"OK"[..]), (b"1", b"OK"), (b"2", b"NO")]);
    // A tag and a command are printable ASCII without space; a bare command line is one token.
    let parsed = tokens(true, b"a{1}~ x!\"#$\r\n").expect("parses");
    assert_eq!((parsed[0].tag, parsed[0].command), (&b"a{1}~"[..], &b"x!\"#$"[..]));
}

#[test]
fn each_field_that_can_fail_fails_where_binpac_throws() {
    let cases: [(bool, &[u8], Field, usize, usize); 10] = [
        (true, b" a001 NOOP\r\n", Field::Tag, 0, 0),
        (true, b"a001", Field::Spacing, 4, 0),
        (true, b"a001\tNOOP\r\n", Field::Spacing, 4, 0),
        (true, b"a001 ", Field::Command, 5, 0),
        (true, b"a001 \xe4\r\n", Field::Command, 5, 0),
        (true, b"a001 NOOP", Field::Newline, 9, 0),
        (true, b"a001 NOOP\r\n\n x", Field::Tag, 12, 1),
        (false, b"* CAPABILITY\r\n", Field::Capability, 12, 0),
        (false, b"* CAPABILITY IMAP4rev1", Field::Capability, 22, 0),
        (false, b"* OK x\r\n\x16\x03\x01", Field::Tag, 8, 1),
    ];
    for (is_orig, data, field, at, before) in cases {
        let (seen, mismatch) = tokens(is_orig, data).expect_err("a mismatch");
        assert_eq!(mismatch, Mismatch { field, at }, "{:?}", String::from_utf8_lossy(data));
        assert_eq!(seen.len(), before, "tokens before the mismatch in {:?}", String::from_utf8_lossy(data));
    }
}

/// binpac's message: location, the pattern as the generated C++ string literal has it (NEWLINE's `\r\n` as CR and
/// LF), and the rest of the delivery as a C string; `do_fmt` keeps 1023 bytes.
#[test]
fn the_violation_reason_is_binpacs_string_mismatch() {
    let data = b"a001 NOOP";
    let m = tokens(true, data).expect_err("no newline").1;
    assert_eq!(
        m.reason(data),
        "Binpac exception: binpac exception: string mismatch at src/analyzer/protocol/imap/imap-protocol.pac:47: \
         \nexpected pattern: \"[\r\n]+\"\nactual data: \"\""
    );
    let data = b"a1 OK\r\n\x16\x03\x01\x00\x05rest";
    let m = tokens(false, data).expect_err("TLS after the token").1;
    assert_eq!(
        m.reason(data),
        "Binpac exception: binpac exception: string mismatch at src/analyzer/protocol/imap/imap-protocol.pac:18: \
         \nexpected pattern: \"[[:alnum:][:punct:]]+\"\nactual data: \"\u{16}\u{3}\u{1}\""
    );
    let long = [b"a1 ".as_slice(), &[b'\t'; 2000]].concat();
    let m = tokens(true, &long).expect_err("a tab is no command").1;
    let reason = m.reason(&long);
    assert_eq!(reason.len(), "Binpac exception: ".len() + "binpac exception: ".len() + 1023);
    assert!(reason.contains("actual data: \"\t\t\t") && reason.ends_with("\t\t\t"), "{reason:?}");
    // Bytes that are not UTF-8 are kept as raw bytes for the log writers to escape.
    let data = b"\xff";
    let m = tokens(true, data).expect_err("not a tag").1;
    assert!(m.reason(data).ends_with(&format!("actual data: \"{}\"", crate::logs::bytes_to_log_string(b"\xff"))));
}

/// The starttls baseline's session: confirmed by the server's `* OK`, STARTTLS tracked by its tag, the server's
/// tagged OK hands the connection to TLS; no weird.
#[test]
fn starttls_accepted_hands_the_connection_to_tls() {
    let (h, a) = run(&starttls_session());
    assert_eq!(h.actions, [Action::Confirm("imap"), Action::StartTls]);
    assert!(h.weirds.is_empty());
    assert!(a.is_done());
}

#[test]
fn starttls_refused_and_repeated_are_weirds() {
    let (h, a) = run(&[
        (true, b"a STARTTLS\r\n".to_vec()),
        (false, b"a NO not now\r\n".to_vec()),
        (true, b"b StartTLS\r\n".to_vec()),
        // The tag of the first STARTTLS no longer counts.
        (false, b"a OK late\r\n".to_vec()),
        (false, b"b BAD\r\n".to_vec()),
    ]);
    assert_eq!(
        weird_names(&h),
        ["IMAP: server refused StartTLS", "IMAP: client sent duplicate StartTLS", "IMAP: server refused StartTLS"]
    );
    assert!(h.weirds.iter().all(|w| w.source == "IMAP" && w.addl.is_none()));
    assert_eq!(h.actions, [Action::Confirm("imap")]);
    assert!(!a.is_done());
}

/// What confirms: the server's untagged OK (any case), the client's `capability` as sent in lower case or its
/// STARTTLS in any case; not the client's `CAPABILITY` in upper case, nor the server's tagged OK.
#[test]
fn confirmation_follows_proc_imap_token() {
    for (is_orig, line, confirms) in [
        (false, &b"* ok hi\r\n"[..], true),
        (false, b"1 OK done\r\n", false),
        (true, b"* OK\r\n", false),
        (true, b"1 capability\r\n", true),
        (true, b"1 CAPABILITY\r\n", false),
        (true, b"1 sTaRtTlS\r\n", true),
        (false, b"* CAPABILITY IMAP4rev1\r\n", false),
        (true, b"1 NOOP\r\n", false),
    ] {
        let (h, _) = run(&[(is_orig, line.to_vec())]);
        assert_eq!(h.actions.contains(&Action::Confirm("imap")), confirms, "{:?}", String::from_utf8_lossy(line));
    }
}

/// `login` and the other commands past the point of STARTTLS (compared in lower case only, from either side)
/// confirm and stop the analysis: what follows is never parsed. The rest of their delivery still is.
#[test]
fn commands_after_the_handshake_end_the_analysis() {
    for command in SKIP_COMMANDS {
        let line = [b"a1 ".as_slice(), command, b" x\r\n"].concat();
        let (h, a) = run(&[(true, line), (false, b"garbage".to_vec()), (true, b"b STARTTLS\r\n".to_vec())]);
        assert_eq!(h.actions, [Action::Confirm("imap")]);
        assert!(a.is_done());
    }
    let (h, _) = run(&[(false, b"* fetch (FLAGS)\r\n".to_vec()), (false, b"garbage".to_vec())]);
    assert_eq!(h.actions, [Action::Confirm("imap")]);
    // In upper case LOGIN is an ordinary command: the garbage after it is a violation.
    let (h, _) = run(&[(true, b"a1 LOGIN u p\r\n".to_vec()), (true, b"garbage".to_vec())]);
    assert_eq!(h.violations().len(), 1);
    // Skipping starts with the next delivery: the rest of this one is parsed, and can fail.
    let (h, _) = run(&[(true, b"a1 login u p\r\nbad".to_vec())]);
    assert_eq!(h.actions.len(), 2);
    assert_eq!(h.violations().len(), 1);
}

/// A token after the server's OK in the same delivery is still IMAP to binpac: TLS bytes there are a violation,
/// and Zeek's removal of the failed analyzer takes its new SSL child along (no hand-over).
#[test]
fn a_violation_in_the_delivery_of_the_ok_cancels_the_hand_over() {
    let (h, a) = run(&[(true, b"2 STARTTLS\r\n".to_vec()), (false, b"2 OK go\r\n\x16\x03\x01\x00\x05".to_vec())]);
    assert_eq!(h.actions.len(), 2);
    assert_eq!(h.actions[0], Action::Confirm("imap"));
    assert!(matches!(&h.actions[1], Action::Violation(reason, None) if reason.contains("imap-protocol.pac:18")));
    assert!(a.is_done());
    // Well-formed tokens after the OK in its delivery are read, and the hand-over stands.
    let (h, _) = run(&[(true, b"2 STARTTLS\r\n".to_vec()), (false, b"2 OK go\r\n* OK x\r\n".to_vec())]);
    assert_eq!(h.actions, [Action::Confirm("imap"), Action::StartTls]);
}

/// Deliveries are parsed one by one (a binpac datagram flow): a message split inside a token is a violation at its
/// first part, and only splits right after a line's newline run are clean. Checked at every split point of every
/// message of the session.
#[test]
fn a_token_split_across_deliveries_is_a_violation_at_every_inner_split_point() {
    for (is_orig, message) in starttls_session() {
        let line_ends: Vec<usize> = (1..message.len()).filter(|&i| message[i - 1] == b'\n').collect();
        for at in 1..message.len() {
            let (h, _) = run(&[(is_orig, message[..at].to_vec()), (is_orig, message[at..].to_vec())]);
            let violated = !h.violations().is_empty();
            assert_eq!(violated, !line_ends.contains(&at), "{:?} split at {at}", String::from_utf8_lossy(&message));
            if violated {
                assert_eq!(h.violations().len(), 1);
                assert!(!h.actions.contains(&Action::StartTls));
            }
        }
        // Whole, the message is clean.
        let (h, _) = run(&[(is_orig, message.clone())]);
        assert!(h.violations().is_empty());
    }
}

#[test]
fn partial_connections_and_gaps_are_not_analysed() {
    let mut h = Harness::new(Proto::Tcp, 143);
    h.partial = true;
    let mut a = Imap::default();
    h.deliver(&mut a, false, b"* OK ready\r\n");
    h.deliver(&mut a, false, b"garbage");
    assert!(h.actions.is_empty());

    let mut h = Harness::new(Proto::Tcp, 143);
    let mut a = Imap::default();
    h.run(1.0, |ctx| a.undelivered(ctx, true, 10));
    h.deliver(&mut a, false, b"* OK ready\r\n");
    assert!(h.actions.is_empty());
    assert!(a.is_done());
}

#[test]
fn arbitrary_input_never_panics() {
    let mut rng = crate::analyzers::testing::XorShift(0x1357_9bdf);
    let alphabet = b"* OKokAPBILTYSRNGLOGIN \r\n\t\x00\xff\x16abc12";
    for _ in 0..2000 {
        let len = (rng.next() % 64) as usize;
        let data: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
        fuzz(&data);
        for is_orig in [true, false] {
            if let Err(m) = parse_delivery(is_orig, &data, |_| {}) {
                assert!(m.at <= data.len());
                m.reason(&data);
            }
        }
    }
}

/// Through the engine, imap-starttls.pcap's session as far as its baselines tell it (`starttls` conn.log, ssl.log
/// and x509.log): the IMAP exchange up to STARTTLS, then a TLS 1.2 handshake with ECDHE over secp256r1, cipher
/// TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, no SNI, and the server's chain of three certificates rebuilt from the
/// x509.log rows (their signatures are not in the baseline, so the fingerprints differ and are not compared).
#[test]
fn starttls_through_the_engine_gives_imap_ssl_and_the_baselines_rows() {
    use crate::analyzers::ssl::tests::build::*;
    const SHA1_RSA: &str = "1.2.840.113549.1.1.5";
    let gmx = name(&[
        &[("2.5.4.6", PRINTABLE, b"DE")],
        &[("2.5.4.10", UTF8, b"1&1 Mail & Media GmbH")],
        &[("2.5.4.8", UTF8, b"Rhineland-Palatinate")],
        &[("2.5.4.7", UTF8, b"Montabaur")],
        &[("1.2.840.113549.1.9.1", 0x16, b"server-certs@1und1.de")],
        &[("2.5.4.3", UTF8, b"imap.gmx.net")],
    ]);
    let telesec = name(&[
        &[("2.5.4.6", PRINTABLE, b"DE")],
        &[("2.5.4.10", UTF8, b"T-Systems International GmbH")],
        &[("2.5.4.11", UTF8, b"T-Systems Trust Center")],
        &[("2.5.4.8", UTF8, b"NRW")],
        &[("2.5.4.17", UTF8, b"57250")],
        &[("2.5.4.7", UTF8, b"Netphen")],
        &[("2.5.4.9", UTF8, b"Untere Industriestr. 20")],
        &[("2.5.4.3", UTF8, b"TeleSec ServerPass DE-1")],
    ]);
    let root = name(&[
        &[("2.5.4.6", PRINTABLE, b"DE")],
        &[("2.5.4.10", UTF8, b"Deutsche Telekom AG")],
        &[("2.5.4.11", UTF8, b"T-TeleSec Trust Center")],
        &[("2.5.4.3", UTF8, b"Deutsche Telekom Root CA 2")],
    ]);
    let cert = |serial: &[u8], issuer: &[u8], subject: &[u8], validity: (&[u8], &[u8]), extensions: Vec<Vec<u8>>| {
        Cert {
            serial: serial.to_vec(),
            signature: SHA1_RSA,
            issuer: issuer.to_vec(),
            subject: subject.to_vec(),
            not_before: tlv(0x17, validity.0),
            not_after: tlv(0x17, validity.1),
            key: rsa_key(2048, &[1, 0, 1]),
            extensions,
        }
        .der()
    };
    let chain = [
        cert(
            &[0x33, 0x9D, 0x9E, 0xD8, 0xE7, 0x39, 0x27, 0xC9],
            &telesec,
            &gmx,
            (b"131112101731Z", b"161117235959Z"),
            vec![
                subject_alt_name(&[general_name(2, b"imap.gmx.net"), general_name(2, b"imap.gmx.de")]),
                basic_constraints(false, None),
            ],
        ),
        cert(
            &[0x21, 0xB6, 0x77, 0x7E, 0x8C, 0xBD, 0x0E, 0xA8],
            &root,
            &telesec,
            (b"130301135829Z", b"190709235900Z"),
            vec![basic_constraints(true, Some(0))],
        ),
        cert(&[0x26], &root, &root, (b"990709121100Z", b"190709235900Z"), vec![basic_constraints(true, Some(5))]),
    ];
    const ECDHE_RSA_AES_256_GCM_SHA384: u16 = 0xC030;
    const SECP256R1: u16 = 23;
    let mut messages: Vec<(bool, Vec<u8>)> = starttls_session();
    messages.extend([
        (true, handshakes(TLS10, &[client_hello(&[], &[ECDHE_RSA_AES_256_GCM_SHA384, 0xC02F], &[])])),
        (
            false,
            handshakes(
                TLS12,
                &[
                    server_hello(TLS12, &[9; 32], &[], ECDHE_RSA_AES_256_GCM_SHA384, &[]),
                    certificate(&chain),
                    ecdhe_key_exchange(SECP256R1),
                    empty_message(14),
                ],
            ),
        ),
        (true, handshakes(TLS12, &[client_key_exchange()])),
        (true, change_cipher_spec(TLS12)),
        (true, ciphertext(22, TLS12, 40)),
        (false, change_cipher_spec(TLS12)),
        (false, ciphertext(22, TLS12, 40)),
        (true, ciphertext(23, TLS12, 100)),
        (false, ciphertext(23, TLS12, 300)),
    ]);
    let frames = crate::decode::test_frames::tcp_conversation(
        ([192, 168, 17, 53], 49640),
        ([212, 227, 17, 186], 143),
        &messages,
    );
    let records = engine_records(&frames);
    let of = |path: &str| records.iter().filter(|r| r.schema.path == path).collect::<Vec<_>>();

    let conn = of("conn");
    assert_eq!(conn.len(), 1);
    assert_eq!(field(conn[0], "service"), "imap,ssl");
    assert_eq!(field(conn[0], "conn_state"), "SF");

    let ssl = of("ssl");
    assert_eq!(ssl.len(), 1);
    let columns =
        ["version", "cipher", "curve", "server_name", "resumed", "last_alert", "next_protocol", "established"];
    let row: Vec<String> = columns.iter().map(|c| field(ssl[0], c)).collect();
    assert_eq!(row, ["TLSv12", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "secp256r1", "-", "F", "-", "-", "T"]);
    assert_eq!(field(ssl[0], "id.resp_p"), "143");
    assert_eq!(field(ssl[0], "cert_chain_fps").split(',').count(), 3);

    // x509.log from `certificate.version` on (the baseline's rows but the fingerprint and ts).
    let x509: Vec<String> =
        of("x509").iter().map(|r| r.values[2..].iter().map(|v| v.to_tsv()).collect::<Vec<_>>().join("\t")).collect();
    assert_eq!(
        x509,
        [
            "3\t339D9ED8E73927C9\tCN=imap.gmx.net,emailAddress=server-certs@1und1.de,L=Montabaur,ST=Rhineland-Palatinate,O=1&1 Mail & Media GmbH,C=DE\tCN=TeleSec ServerPass DE-1,street=Untere Industriestr. 20,L=Netphen,postalCode=57250,ST=NRW,OU=T-Systems Trust Center,O=T-Systems International GmbH,C=DE\t1384251451.000000\t1479427199.000000\trsaEncryption\tsha1WithRSAEncryption\trsa\t2048\t65537\t-\timap.gmx.net,imap.gmx.de\t-\t-\t-\tF\t-\tT\tF",
            "3\t21B6777E8CBD0EA8\tCN=TeleSec ServerPass DE-1,street=Untere Industriestr. 20,L=Netphen,postalCode=57250,ST=NRW,OU=T-Systems Trust Center,O=T-Systems International GmbH,C=DE\tCN=Deutsche Telekom Root CA 2,OU=T-TeleSec Trust Center,O=Deutsche Telekom AG,C=DE\t1362146309.000000\t1562716740.000000\trsaEncryption\tsha1WithRSAEncryption\trsa\t2048\t65537\t-\t-\t-\t-\t-\tT\t0\tF\tF",
            "3\t26\tCN=Deutsche Telekom Root CA 2,OU=T-TeleSec Trust Center,O=Deutsche Telekom AG,C=DE\tCN=Deutsche Telekom Root CA 2,OU=T-TeleSec Trust Center,O=Deutsche Telekom AG,C=DE\t931522260.000000\t1562716740.000000\trsaEncryption\tsha1WithRSAEncryption\trsa\t2048\t65537\t-\t-\t-\t-\t-\tT\t5\tF\tF",
        ]
    );
    assert!(of("weird").is_empty());
    assert!(of("analyzer").is_empty());
}

/// Through the engine: IMAP attaches on port 143 only (Zeek has no IMAP signature), and a server that breaks the
/// grammar after confirming is a violation in analyzer.log with the service gone.
#[test]
fn through_the_engine_port_only_and_violations_after_confirmation() {
    let on_port = |port: u16, messages: &[(bool, &[u8])]| {
        let frames =
            crate::decode::test_frames::tcp_conversation(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], port), messages);
        engine_records(&frames)
    };
    let session: [(bool, &[u8]); 2] = [(false, b"* OK ready\r\n"), (true, b"1 NOOP\r\n")];
    let conn = |records: &[crate::logs::LogRecord]| {
        let conn: Vec<_> = records.iter().filter(|r| r.schema.path == "conn").collect();
        field(conn[0], "service")
    };
    assert_eq!(conn(&on_port(143, &session)), "imap");
    assert_eq!(conn(&on_port(1143, &session)), "-");

    let records = on_port(143, &[(false, b"* OK ready\r\n"), (true, b"1 NOOP")]);
    assert_eq!(conn(&records), "-");
    let analyzer: Vec<_> = records.iter().filter(|r| r.schema.path == "analyzer").collect();
    assert_eq!(analyzer.len(), 1);
    assert_eq!(field(analyzer[0], "analyzer_name"), "IMAP");
    assert_eq!(
        field(analyzer[0], "failure_reason"),
        "Binpac exception: binpac exception: string mismatch at src/analyzer/protocol/imap/imap-protocol.pac:47: \\x0aexpected pattern: \"[\\x0d\\x0a]+\"\\x0aactual data: \"\""
    );
}
