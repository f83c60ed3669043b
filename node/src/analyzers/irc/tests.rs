use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::{Harness, row};

/// irc.log's columns after the connection's (nick ... fuid) of every record, as TSV.
fn rows(h: &Harness) -> Vec<Vec<String>> {
    h.columns("irc")
}

fn weirds(h: &Harness) -> Vec<&str> {
    h.weirds.iter().map(|w| w.name.as_str()).collect()
}

/// Runs the analyzer over `deliveries` (originator or not, bytes), ending both directions when `end`.
fn run(deliveries: &[(bool, &[u8])], end: bool) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 6667);
    let mut irc = Irc::default();
    for (is_orig, data) in deliveries {
        h.deliver(&mut irc, *is_orig, data);
    }
    if end {
        for is_orig in [true, false] {
            h.run(2.0, |ctx| irc.end_of_data(ctx, is_orig));
        }
    }
    h
}

/// A client registering, joining three channels (two with keys), talking, and being offered a file by DCC SEND
/// (shaped as Zeek's irc-dcc-send trace), then changing its nick.
fn session() -> Vec<(bool, Vec<u8>)> {
    let mut dcc = b":ladyvampress!~x@host PRIVMSG bloed :\x01DCC SEND ".to_vec();
    dcc.extend_from_slice(b"ladyvampress-default(2011-07-07)-OS.zip 3640061780 1026 42208\x01\r\n");
    vec![
        (true, b"NICK bloed\r\n".to_vec()),
        (true, b"USER sdkfje sdkfje Montreal.QC.CA.Undernet.org :dkdkrwq\r\n".to_vec()),
        (false, b":Montreal.QC.CA.Undernet.org 001 bloed :Welcome to the UnderNet IRC Network, bloed\r\n".to_vec()),
        (false, b":Montreal.QC.CA.Undernet.org NOTICE bloed :on 1 ca 1(4) ft 10(10)\r\n".to_vec()),
        (true, b"JOIN #easymovies,#zeek,#rust key1,key2\r\n".to_vec()),
        (false, b":bloed!~sdkfje@host JOIN #easymovies\r\n".to_vec()),
        (true, b"PRIVMSG #zeek :hello there\r\n".to_vec()),
        (false, dcc),
        (true, b"NICK bloed2\r\n".to_vec()),
    ]
}

fn session_rows() -> Vec<Vec<String>> {
    let file = "ladyvampress-default(2011-07-07)-OS.zip";
    vec![
        row(["-", "-", "NICK", "bloed", "-", "-", "-", "-", "-"]),
        row(["bloed", "-", "USER", "sdkfje", "sdkfje Montreal.QC.CA.Undernet.org dkdkrwq", "-", "-", "-", "-"]),
        row(["bloed", "sdkfje", "JOIN", "#easymovies", " with channel key: 'key1'", "-", "-", "-", "-"]),
        row(["bloed", "sdkfje", "JOIN", "#zeek", " with channel key: 'key2'", "-", "-", "-", "-"]),
        row(["bloed", "sdkfje", "JOIN", "#rust", "(empty)", "-", "-", "-", "-"]),
        // What NICK does not set is the session's from before: the last JOIN's addl, the DCC file.
        row(["bloed", "sdkfje", "NICK", "bloed2", "(empty)", file, "42208", "-", "-"]),
    ]
}

#[test]
fn a_session_logs_nick_user_joins_and_carries_the_dcc_file() {
    let deliveries = session();
    let borrowed: Vec<(bool, &[u8])> = deliveries.iter().map(|(o, d)| (*o, &d[..])).collect();
    let h = run(&borrowed, true);
    assert_eq!(rows(&h), session_rows());
    let record = h.logged("irc")[0];
    assert_eq!((record.values[1].to_tsv(), record.values[5].to_tsv()), ("CTest".into(), "6667".into()));
    assert_eq!(
        h.actions,
        [
            Action::Confirm("irc"),
            Action::Expect(Expectation {
                orig_h: None,
                resp_h: "216.246.239.84".parse().unwrap(),
                resp_p: 1026,
                analyzer: Some("irc-dcc-data"),
                service: "irc-dcc-data",
                expires: 1.0 + DCC_EXPECTATION,
            }),
        ]
    );
    assert!(h.weirds.is_empty(), "{:?}", weirds(&h));
}

#[test]
fn lines_split_across_segments_at_every_byte_give_the_same_records() {
    let deliveries = session();
    for (n, (is_orig, message)) in deliveries.iter().enumerate() {
        for at in 0..=message.len() {
            let mut pieces: Vec<(bool, &[u8])> = deliveries[..n].iter().map(|(o, d)| (*o, &d[..])).collect();
            pieces.extend([(*is_orig, &message[..at]), (*is_orig, &message[at..])]);
            pieces.extend(deliveries[n + 1..].iter().map(|(o, d)| (*o, &d[..])));
            let h = run(&pieces, true);
            assert_eq!(rows(&h), session_rows(), "message {n} split at {at}");
            assert_eq!(h.actions.len(), 2);
        }
    }
    // A byte at a time, everything.
    let bytes: Vec<(bool, Vec<u8>)> =
        deliveries.iter().flat_map(|(o, d)| d.iter().map(move |&b| (*o, vec![b]))).collect();
    let borrowed: Vec<(bool, &[u8])> = bytes.iter().map(|(o, d)| (*o, &d[..])).collect();
    assert_eq!(rows(&run(&borrowed, true)), session_rows());
}

#[test]
fn lines_end_at_cr_lf_or_both_and_a_last_line_at_the_end_of_the_direction() {
    let h = run(&[(true, b"NICK a\rNICK b\nNICK c\r\nNICK d")], false);
    assert_eq!(rows(&h).iter().map(|r| r[3].as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    let h = run(&[(true, b"NICK a\rNICK b\nNICK c\r\nNICK d")], true);
    assert_eq!(rows(&h).iter().map(|r| r[3].as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
}

#[test]
fn only_a_client_command_from_the_originator_confirms() {
    // Server lines, and client lines that are not IRC commands, confirm nothing.
    let h =
        run(&[(false, b":srv 001 bloed :Welcome\r\nNICK x\r\n"), (true, b"HELLO world\r\nGET / HTTP/1.1\r\n")], true);
    assert!(h.actions.is_empty(), "{:?}", h.actions);
    // Any command of the list does, in any case, prefix and tags allowed; once.
    for line in [&b"ping :x\r\n"[..], b"@time=2023-01-01T00:00:00Z :me QUIT\r\n", b"  CAP LS\r\nWHO\r\n"] {
        let h = run(&[(true, line), (true, b"PONG x\r\n")], true);
        assert_eq!(h.actions, [Action::Confirm("irc")], "{:?}", String::from_utf8_lossy(line));
    }
}

#[test]
fn weirds_for_ignored_lines_come_once_confirmed() {
    let long = [&b"PRIVMSG #a :"[..], &[b'x'; 600], b"\r\n"].concat();
    let ignored: [&[u8]; 4] = [b"ab\r\n", &long, b":prefix-without-space\r\n", b"@tags-only\r\n"];
    for line in ignored {
        let h = run(&[(true, line)], true);
        assert!(h.weirds.is_empty() && h.actions.is_empty() && rows(&h).is_empty());
    }
    let mut deliveries: Vec<(bool, &[u8])> = vec![(true, b"NICK a\r\n")];
    deliveries.extend(ignored.map(|line| (true, line)));
    let h = run(&deliveries, true);
    assert_eq!(weirds(&h), ["irc_line_too_short", "irc_line_size_exceeded", "irc_invalid_line"]);
    assert_eq!(rows(&h).len(), 1);
    // Past the ContentLine maximum the line is cut (and ignored as too long); what follows is a line again.
    let huge = [&vec![b'x'; MAX_CONTENT_LINE + 10][..], b"\r\nNICK b\r\n"].concat();
    let h = run(&[(true, b"NICK a\r\n"), (true, &huge)], true);
    assert_eq!(weirds(&h), ["contentline_size_exceeded", "irc_line_size_exceeded"]);
    assert_eq!(h.weirds[0].source, "CONTENTLINE");
    // The cut line's last 10 bytes make a line of their own, a command nobody handles.
    assert_eq!(rows(&h).len(), 2);
}

#[test]
fn malformed_lines_are_violations_and_end_the_analysis() {
    for (line, reason) in [
        (&b":prefix x\r\n"[..], "line too short"),
        (b"@tag ab\r\n", "line too short"),
        (b"12x foo\r\n", "invalid reply number"),
        (b"123\r\n", "invalid reply number"),
        (b":srv 1234 x\r\n", "invalid reply number"),
    ] {
        let h = run(&[(true, line), (true, b"NICK after\r\n")], true);
        assert_eq!(h.violations(), [reason], "{:?}", String::from_utf8_lossy(line));
        assert!(rows(&h).is_empty() && h.weirds.is_empty(), "nothing after the violation, no weird unconfirmed");
    }
    let h = run(&[(true, b"NICK a\r\n"), (false, b":srv 12x bad\r\n"), (true, b"NICK b\r\n")], true);
    assert_eq!((h.violations(), weirds(&h)), (vec!["invalid reply number"], vec!["irc_invalid_reply_number"]));
    assert_eq!(rows(&h).len(), 1);
}

#[test]
fn the_twenty_first_overlong_command_is_a_violation() {
    let long = b"ABCDEFGHIJKLMNOPQRSTU x\r\n".repeat(21);
    let h = run(&[(true, b"NICK a\r\n"), (true, &long[..long.len() - 25])], true);
    assert_eq!((weirds(&h).len(), h.violations().len()), (20, 0));
    let h = run(&[(true, b"NICK a\r\n"), (true, &long)], true);
    assert_eq!(weirds(&h).iter().filter(|w| **w == "irc_invalid_command").count(), 21);
    assert_eq!(weirds(&h).last(), Some(&"irc_too_many_invalid"));
    assert_eq!(h.violations(), ["too many long lines"]);
}

#[test]
fn starttls_hands_the_connection_to_tls_on_the_670_reply() {
    let mut irc = Irc::default();
    let mut h = Harness::new(Proto::Tcp, 6667);
    h.deliver(&mut irc, true, b"STARTTLS\r\n");
    h.deliver(&mut irc, false, b":srv 670 bloed :STARTTLS successful, go ahead with TLS handshake\r\n");
    assert!(irc.is_done());
    h.deliver(&mut irc, true, b"NICK hidden\r\n");
    assert_eq!(h.actions, [Action::Confirm("irc"), Action::StartTls]);
    assert!(rows(&h).is_empty());
}

#[test]
fn joins_follow_the_join_list() {
    let join = |params: &[u8]| {
        parse_join(params)
            .map(|l| l.iter().map(|j| (j.channel.to_vec(), j.password.to_vec())).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let pair = |c: &[u8], p: &[u8]| (c.to_vec(), p.to_vec());
    assert_eq!(join(b"#a,#a"), [pair(b"#a", b"")], "a set: the same channel and key once");
    assert_eq!(join(b"#a,#a k"), [pair(b"#a", b"k"), pair(b"#a", b"")]);
    assert_eq!(join(b":#a,,#b k1,,k2,k3"), [pair(b"#a", b"k1"), pair(b"#b", b"k2")]);
    assert_eq!(join(b",,,"), []);
    assert!(parse_join(b"").is_none() && parse_join(b":").is_none());
    // A server's JOIN and the join of nobody log nothing; a JOIN without channels is a weird.
    let h = run(&[(true, b"NICK a\r\nJOIN ,,\r\nJOIN\r\n"), (false, b":a!u@h JOIN #x\r\n")], true);
    assert_eq!((rows(&h).len(), weirds(&h)), (1, vec!["irc_invalid_join_line"]));
    // NJOIN lists members; the script logs the channel once for each distinct one.
    assert_eq!(njoin_entries(b"#chan :@@alice,@bob,+carol,dave,@bob"), Some((&b"#chan"[..], 4)));
    assert_eq!(njoin_entries(b"#chan :@,@@,+"), Some((&b"#chan"[..], 3)));
    assert_eq!((njoin_entries(b"#chan"), njoin_entries(b"#a b c")), (None, None));
    let h = run(&[(true, b"SERVER a 1 :x\r\nNJOIN #chan :@bob,carol\r\nNJOIN #chan\r\n")], true);
    let logged: Vec<_> = rows(&h).iter().map(|r| (r[2].clone(), r[3].clone(), r[4].clone())).collect();
    let expected = ("JOIN".to_string(), "#chan".to_string(), "(empty)".to_string());
    assert_eq!(logged, [expected.clone(), expected]);
    assert_eq!(weirds(&h), ["irc_invalid_njoin_line"]);
}

#[test]
fn user_builds_the_real_name_as_the_analyzer_does() {
    let user = parse_user(b"guest 0 * :Ronnie Reagan");
    assert_eq!((&user.user[..], &user.host[..], &user.server[..]), (&b"guest"[..], &b"0"[..], &b"*"[..]));
    assert_eq!(user.real_name, b"RonnieReagan ");
    assert_eq!(parse_user(b"guest 0 * :One").real_name, b"One");
    assert_eq!(
        parse_user(b"a\0b h\0x s :r\0eal"),
        User { user: b"a".to_vec(), host: b"h".to_vec(), server: b"s".to_vec(), real_name: b"r".to_vec() }
    );
    let empty = parse_user(b"");
    assert!(empty.user.is_empty() && empty.real_name.is_empty());
    let h = run(&[(true, b"USER guest\r\n")], true);
    assert_eq!(rows(&h), [row(["-", "-", "USER", "guest", "  ", "-", "-", "-", "-"])]);
}

#[test]
fn dcc_requests_are_taken_apart_as_the_analyzer_does() {
    let dcc = |params: &[u8]| match parse_privmsg(params) {
        Privmsg::Dcc(dcc) => Some(dcc),
        _ => None,
    };
    let send = dcc(b"bloed :\x01DCC SEND file.zip 3232235777 5000 123 T\x01").unwrap();
    assert_eq!(
        send,
        Dcc {
            dcc_type: b"SEND".to_vec(),
            argument: b"file.zip".to_vec(),
            address: Ipv4Addr::new(192, 168, 1, 1),
            dest_port: 5000,
            size: 123
        }
    );
    // No size; odd address digits; a port and a size through atoi.
    let odd = dcc(b"x   \x01DCC SEND f 12a4 -1").unwrap();
    assert_eq!(
        (odd.address, odd.dest_port, odd.size, count_to_port(odd.dest_port)),
        (Ipv4Addr::new(0, 0, 4, 180), u64::MAX, 0, 0)
    );
    let big = dcc(b"x :DCC SEND f 1 70000 99999999999").unwrap();
    assert_eq!((count_to_port(big.dest_port), big.size), (0, 1_215_752_191));
    for invalid in [&b"x :\x01DCC SEND f 1 2 3 4 5\x01"[..], b"x :DCC SEND f 1", b"x :\x01DCC SEND\x01"] {
        assert_eq!(parse_privmsg(invalid), Privmsg::Invalid("irc_invalid_dcc_message_format"));
    }
    assert_eq!(parse_privmsg(b"#chan"), Privmsg::Invalid("irc_invalid_privmsg_message_format"));
    assert_eq!(parse_privmsg(b"x :\x01DCC\x01"), Privmsg::Invalid("irc_invalid_dcc_message_format"));
    assert_eq!(parse_privmsg(b"x :DCC"), Privmsg::Text, "too short to be DCC");
    assert_eq!(parse_privmsg(b"x :\x01ACTION waves\x01"), Privmsg::Text);
    // Only SEND names a file and expects a connection.
    let h = run(&[(true, b"PRIVMSG peer :\x01DCC CHAT chat 3232235777 5000\x01\r\nNICK a\r\n")], true);
    assert_eq!(rows(&h), [row(["-", "-", "NICK", "a", "-", "-", "-", "-", "-"])]);
    assert_eq!(h.actions, [Action::Confirm("irc")]);
    let h = run(&[(true, b"PRIVMSG peer\r\nPRIVMSG peer :\x01DCC SEND a b\x01\r\n")], true);
    assert_eq!(weirds(&h), ["irc_invalid_privmsg_message_format", "irc_invalid_dcc_message_format"]);
}

#[test]
fn atoi_reads_as_glibc_does() {
    for (text, value) in [
        (&b"42"[..], 42),
        (b" \t+42x", 42),
        (b"-7", -7),
        (b"x1", 0),
        (b"", 0),
        (b"99999999999", 1_215_752_191),
        (b"99999999999999999999", -1),
        (b"-99999999999999999999", 0),
    ] {
        assert_eq!(atoi(text), value, "{:?}", String::from_utf8_lossy(text));
    }
}

#[test]
fn garbage_does_not_panic() {
    let lines: [&[u8]; 24] = [
        b"\r\n",
        b"@",
        b"@ ",
        b"@a :",
        b":",
        b": ",
        b"::: x",
        b"PRIVMSG",
        b"PRIVMSG x",
        b"PRIVMSG x :\x01DCC\x01",
        b"PRIVMSG x :\x01DCC \x01",
        b"PRIVMSG x :DCCX SEND a b c d",
        b"JOIN :",
        b"NJOIN # :",
        b"NJOIN # :@",
        b"USER",
        b"NICK",
        b"NICK :",
        b"\xff\xfe\xfd\x00",
        b"000 ",
        b"999 :",
        b"   ",
        b"STARTTLS",
        b"\x01\x02\x03",
    ];
    let mut all = Vec::new();
    for line in lines {
        all.extend_from_slice(line);
        all.extend_from_slice(b"\r\n");
        for is_orig in [true, false] {
            run(&[(true, b"NICK a\r\n"), (is_orig, line)], true);
            run(&[(is_orig, line)], true);
        }
    }
    for chunk in [1, 2, 3, 7] {
        let pieces: Vec<(bool, &[u8])> = all.chunks(chunk).enumerate().map(|(i, c)| (i % 3 == 0, c)).collect();
        run(&pieces, true);
    }
}

#[test]
fn signatures_follow_zeeks_dpd_sig() {
    let client = |p: &[u8]| detect(Proto::Tcp, true, p);
    let server = |p: &[u8]| detect(Proto::Tcp, false, p);
    assert!(client(b"NICK bloed\r\nUSER a b c :d\r\n"));
    assert!(client(b"USER a b c :d\r\nNICK bloed\r\n"));
    assert!(client(b"CAP LS\r\nPASS x\r\n  nick a\r\nuser a 0 * :b\r\n"));
    assert!(!client(b"NICK bloed\r\n"));
    assert!(!client(b"NICK bloed\r\nUSER a b c :d"), "the USER line is not terminated yet");
    assert!(!client(b"NICK\tbloed\r\nUSER a b c :d\r\n"), "only spaces separate");
    assert!(!detect(Proto::Udp, true, b"NICK bloed\r\nUSER a b c :d\r\n"));
    assert!(server(b":irc.example.net 001 bloed :Welcome\r\n"));
    assert!(server(b"NOTICE AUTH :*** Looking up your hostname\r\n:srv 020 * :wait\r\n"));
    assert!(server(b"001 x"));
    assert!(!server(b":srv NOTICE x :hi\r\n") && !server(b"01 x") && !server(b": 001 x"));
    // Server to server: a SERVER line both ways.
    assert!(client(b"PASS x\r\nSERVER irc.example.net 1 :Example server\r\n"));
    assert!(server(b"SERVER hub.example.net 1 :Hub\r\n"));
    assert!(!client(b"SERVER irc.example.net x :info\r\n") && !client(b"SERVER a 1 :\r\n"));
    let signature = SPEC.detect.unwrap();
    let (orig, resp) = (&b"NICK a\r\nUSER a 0 * :b\r\n"[..], &b":srv 001 a :hi\r\n"[..]);
    assert!(signature.matches(Proto::Tcp, false, resp, orig) && signature.matches(Proto::Tcp, true, orig, resp));
    assert!(!signature.matches(Proto::Tcp, true, orig, b""), "the server's reply is required");
}

/// Through the engine: port 6667 and the signatures on 7000 attach the analyzer, the records carry their
/// connection's uid, conn.log names `irc`, and the DCC SEND's data connection is `irc-dcc-data`.
#[test]
fn through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];
    const PEER: [u8; 4] = [10, 0, 0, 3];
    let register: &[u8] = b"NICK bloed\r\nUSER sdkfje 0 * :Real\r\n";
    let welcome: &[u8] = b":srv 001 bloed :Welcome\r\n";
    // 167772163 is 10.0.0.3.
    let offer: &[u8] = b":peer!p@h PRIVMSG bloed :\x01DCC SEND f.zip 167772163 5000 10\x01\r\n";
    let mut frames =
        tcp_exchange((CLIENT, 40000), (SERVER, 6667), &[(true, register), (false, welcome), (false, offer)]);
    frames.extend(tcp_exchange((CLIENT, 40001), (SERVER, 7000), &[(true, register), (false, welcome)]));
    frames.extend(tcp_exchange((CLIENT, 40002), (PEER, 5000), &[(false, b"file data")]));
    frames.extend(tcp_exchange(
        (CLIENT, 40003),
        (SERVER, 7001),
        &[(true, &b"GET / HTTP/1.1\r\n"[..]), (false, welcome)],
    ));
    let records = engine_records(&frames);
    let conn = |port: &str| records.iter().find(|r| r.schema.path == "conn" && field(r, "id.orig_p") == port).unwrap();
    let services: Vec<String> =
        ["40000", "40001", "40002", "40003"].iter().map(|p| field(conn(p), "service")).collect();
    assert_eq!(services, ["irc", "irc", "irc-dcc-data", "-"]);
    let logged: Vec<[String; 4]> = records
        .iter()
        .filter(|r| r.schema.path == "irc")
        .map(|r| ["uid", "id.resp_p", "command", "value"].map(|f| field(r, f)))
        .collect();
    let uid = |port: &str| field(conn(port), "uid");
    let record = |port: &str, resp_p: &str, command: &str, value: &str| {
        [uid(port), resp_p.to_string(), command.to_string(), value.to_string()]
    };
    assert_eq!(
        logged,
        [
            record("40000", "6667", "NICK", "bloed"),
            record("40000", "6667", "USER", "sdkfje"),
            record("40001", "7000", "NICK", "bloed"),
            record("40001", "7000", "USER", "sdkfje"),
            // The data connection's file, sniffed when it ended, writes the offering session's DCC record.
            record("40000", "6667", "DCC", "sdkfje"),
        ]
    );
}
