use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;

/// A PDU: the 3-byte little-endian length, the sequence id, the body.
fn pdu(seq_id: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len().to_le_bytes();
    [&len[..3], &[seq_id], body].concat()
}

/// A MySQL 8 greeting (Protocol::HandshakeV10): version 10, the server version string, connection id, 8 bytes
/// of scramble, filler, capability flags (low: 0xffff; high: 0xdfff, with CLIENT_PLUGIN_AUTH and
/// CLIENT_QUERY_ATTRIBUTES), charset, status, auth-plugin-data length 21, 10 reserved bytes, 13 more scramble
/// bytes, and the plugin name.
fn greeting_v10() -> Vec<u8> {
    let mut body = vec![10];
    body.extend_from_slice(b"8.0.36\0");
    body.extend_from_slice(&[8, 0, 0, 0]);
    body.extend_from_slice(b"abcdefgh\0");
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0x02, 0x00, 0xff, 0xdf, 21]);
    body.extend_from_slice(&[0; 10]);
    body.extend_from_slice(b"ijklmnopqrst\0");
    body.extend_from_slice(b"caching_sha2_password\0");
    pdu(0, &body)
}

/// A HandshakeResponse41 for `user` with `cap_flags`: a 20-byte auth response, the database and plugin name
/// when the flags say so, and one attribute pair with CLIENT_CONNECT_ATTRS.
fn response_for(user: &[u8], cap_flags: u32) -> Vec<u8> {
    let mut body = cap_flags.to_le_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 1, 0x21]);
    body.extend_from_slice(&[0; 23]);
    body.extend_from_slice(user);
    body.push(0);
    body.push(20);
    body.extend_from_slice(&[0x5a; 20]);
    if cap_flags & CLIENT_CONNECT_WITH_DB != 0 {
        body.extend_from_slice(b"test\0");
    }
    if cap_flags & CLIENT_PLUGIN_AUTH != 0 {
        body.extend_from_slice(b"caching_sha2_password\0");
    }
    if cap_flags & CLIENT_CONNECT_ATTRS != 0 {
        body.extend_from_slice(b"\x0a\x04_pid\x041234");
    }
    pdu(1, &body)
}

fn response_v10(cap_flags: u32) -> Vec<u8> {
    response_for(b"root", cap_flags)
}

/// CLIENT_LONG_PASSWORD ... CLIENT_SECURE_CONNECTION with the database, plugin auth and attributes.
const FULL: u32 = 0x0000_a20f | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS;

/// An OK packet with `rows` affected rows (one-byte length-encoded), last insert id 0, status, no warnings.
fn ok(seq_id: u8, rows: u8) -> Vec<u8> {
    pdu(seq_id, &[0x00, rows, 0x00, 0x02, 0x00, 0x00, 0x00])
}

/// The OK that ends a result set under CLIENT_DEPRECATE_EOF (0xfe marker).
fn ok_eof(seq_id: u8) -> Vec<u8> {
    pdu(seq_id, &[0xfe, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00])
}

fn err(seq_id: u8, code: u16, msg: &[u8]) -> Vec<u8> {
    pdu(seq_id, &[&[0xff][..], &code.to_le_bytes(), b"#28000", msg].concat())
}

/// An EOF packet (5 bytes: the marker, warnings, status).
fn eof(seq_id: u8) -> Vec<u8> {
    pdu(seq_id, &[0xfe, 0x00, 0x00, 0x02, 0x00])
}

fn lenenc(s: &[u8]) -> Vec<u8> {
    [&[s.len() as u8][..], s].concat()
}

/// A Protocol::ColumnDefinition41 for a VAR_STRING column `name`.
fn column_def(seq_id: u8, name: &[u8]) -> Vec<u8> {
    let mut body = [lenenc(b"def"), lenenc(b""), lenenc(b""), lenenc(b""), lenenc(name), lenenc(b"")].concat();
    body.extend_from_slice(&[0x0c, 0x21, 0x00, 0x00, 0x01, 0x00, 0x00, 0xfd, 0x01, 0x00, 0x1f, 0x00, 0x00]);
    pdu(seq_id, &body)
}

fn row(seq_id: u8, fields: &[&[u8]]) -> Vec<u8> {
    pdu(seq_id, &fields.iter().flat_map(|f| lenenc(f)).collect::<Vec<u8>>())
}

fn command(command: u8, arg: &[u8]) -> Vec<u8> {
    pdu(0, &[&[command][..], arg].concat())
}

/// A one-column result set with `rows`, in the classic form (intermediate and final EOF) or, with
/// `deprecate_eof`, ended by an OK.
fn result_set(rows: &[&[u8]], deprecate_eof: bool) -> Vec<u8> {
    let mut out = [pdu(1, &[1]), column_def(2, b"c")].concat();
    let mut seq = 3;
    if !deprecate_eof {
        out.extend(eof(seq));
        seq += 1;
    }
    for r in rows {
        out.extend(row(seq, &[r]));
        seq += 1;
    }
    out.extend(if deprecate_eof { ok_eof(seq) } else { eof(seq) });
    out
}

/// mysql.log's columns after `id`, as TSV, and the actions, for `deliveries` at 100.0, 101.0, ...; the
/// connection is finished at the end.
fn session_log(deliveries: &[(bool, Vec<u8>)]) -> (Vec<Vec<String>>, Vec<Action>) {
    logged_with(deliveries, |h, mysql, ts, is_orig, data| h.run(ts, |ctx| mysql.deliver(ctx, is_orig, data)))
}

type Deliver = fn(&mut Harness, &mut MySql, f64, bool, &[u8]);

fn logged_with(deliveries: &[(bool, Vec<u8>)], deliver: Deliver) -> (Vec<Vec<String>>, Vec<Action>) {
    let mut h = Harness::new(Proto::Tcp, 3306);
    let mut mysql = MySql::default();
    for (i, (is_orig, data)) in deliveries.iter().enumerate() {
        deliver(&mut h, &mut mysql, 100.0 + i as f64, *is_orig, data);
    }
    h.finish(&mut mysql);
    let rows = h.logged("mysql").iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect();
    (rows, h.actions)
}

fn rows(expected: &[[&str; 5]]) -> Vec<Vec<String>> {
    expected.iter().map(|r| r.map(String::from).to_vec()).collect()
}

/// A session like Zeek's wireshark and auth traces: login, queries with and without result sets, an error, a
/// field list, statistics (never answered with a status) and quit.
fn classic_session() -> Vec<(bool, Vec<u8>)> {
    vec![
        (false, greeting_v10()),
        (true, response_v10(FULL)),
        (false, ok(2, 0)),
        (true, command(COM_QUERY, b"select @@version_comment limit 1")),
        (false, result_set(&[b"MySQL Community Server - GPL"], false)),
        (true, command(0x02, b"test")),
        (false, ok(1, 0)),
        (true, command(COM_QUERY, b"insert into foo (animal) values (\"dog\")")),
        (false, ok(1, 1)),
        (true, command(COM_QUERY, b"select nope")),
        (false, err(1, 1054, b"Unknown column 'nope' in 'field list'")),
        (true, command(0x04, b"agent\0")),
        (false, [column_def(1, b"id"), column_def(2, b"animal"), eof(3)].concat()),
        (true, command(0x09, b"")),
        (false, pdu(1, b"Uptime: 5  Threads: 1  Questions: 9")),
        (true, command(COM_QUIT, b"")),
    ]
}

fn classic_rows() -> Vec<Vec<String>> {
    rows(&[
        ["login", "root", "T", "0", "-"],
        ["query", "select @@version_comment limit 1", "T", "0", "-"],
        ["init_db", "test", "T", "0", "-"],
        ["query", "insert into foo (animal) values (\"dog\")", "T", "1", "-"],
        ["query", "select nope", "F", "-", "Unknown column 'nope' in 'field list'"],
        ["field_list", "agent", "T", "0", "-"],
        ["statistics", "(empty)", "-", "-", "-"],
        ["quit", "(empty)", "-", "-", "-"],
    ])
}

#[test]
fn a_session_logs_each_command_with_its_answer() {
    let (logged, actions) = session_log(&classic_session());
    assert_eq!(logged, classic_rows());
    assert_eq!(actions, [Action::Confirm("mysql")]);
}

#[test]
fn records_carry_the_time_of_their_event() {
    let mut h = Harness::new(Proto::Tcp, 3306);
    let mut mysql = MySql::default();
    for (i, (is_orig, data)) in classic_session().iter().take(5).enumerate() {
        h.run(100.0 + i as f64, |ctx| mysql.deliver(ctx, *is_orig, data));
    }
    let times: Vec<String> = h.logged("mysql").iter().map(|r| r.values[0].to_tsv()).collect();
    // The login at the handshake response, the query at its request.
    assert_eq!(times, ["101.000000", "103.000000"]);
}

#[test]
fn the_session_split_at_every_byte_logs_the_same() {
    let byte_at_a_time: Deliver = |h, mysql, ts, is_orig, data| {
        for b in data.chunks(1) {
            h.run(ts, |ctx| mysql.deliver(ctx, is_orig, b));
        }
    };
    assert_eq!(logged_with(&classic_session(), byte_at_a_time).0, classic_rows());
    // Every split point of a server answer holding five PDUs.
    let answer = result_set(&[b"a", b"bb"], false);
    for at in 0..=answer.len() {
        let (a, b) = answer.split_at(at);
        let session = [
            classic_session()[..4].to_vec(),
            vec![(false, a.to_vec()), (false, b.to_vec()), (true, command(COM_QUIT, b""))],
        ]
        .concat();
        let (logged, actions) = session_log(&session);
        assert_eq!(logged[1], ["query", "select @@version_comment limit 1", "T", "0", "-"], "split at {at}");
        assert_eq!(actions, [Action::Confirm("mysql")]);
    }
}

#[test]
fn deprecate_eof_result_sets_end_with_an_ok() {
    let flags = FULL | CLIENT_DEPRECATE_EOF;
    let (logged, actions) = session_log(&[
        (false, greeting_v10()),
        (true, response_v10(flags)),
        (false, ok(2, 0)),
        (true, command(COM_QUERY, b"show databases")),
        (false, result_set(&[b"information_schema", b"mysql"], true)),
        (true, command(0x04, b"t\0")),
        (false, [column_def(1, b"a"), ok_eof(2)].concat()),
        (true, command(COM_QUERY, b"select 1 from dual where 0")),
        (false, result_set(&[], true)),
    ]);
    assert_eq!(
        logged,
        rows(&[
            ["login", "root", "T", "0", "-"],
            ["query", "show databases", "T", "0", "-"],
            ["field_list", "t", "T", "0", "-"],
            ["query", "select 1 from dual where 0", "T", "0", "-"],
        ])
    );
    assert_eq!(actions, [Action::Confirm("mysql")]);
    // Without the flag, a result set's 0xfe marker in a PDU longer than 9 bytes is an OK as well.
    let long_end = pdu(4, &[0xfe, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    let (logged, _) = session_log(&[
        (false, greeting_v10()),
        (true, response_v10(FULL)),
        (false, ok(2, 0)),
        (true, command(COM_QUERY, b"select 1")),
        (false, [pdu(1, &[1]), column_def(2, b"c"), eof(3), long_end].concat()),
    ]);
    assert_eq!(logged[1], ["query", "select 1", "T", "0", "-"]);
}

#[test]
fn query_attributes_are_read_past() {
    let flags = FULL | CLIENT_DEPRECATE_EOF | CLIENT_QUERY_ATTRIBUTES;
    let session = |query: Vec<u8>| {
        session_log(&[
            (false, greeting_v10()),
            (true, response_v10(flags)),
            (false, ok(2, 0)),
            (true, command(COM_QUERY, &query)),
            (false, result_set(&[b"x"], true)),
        ])
    };
    // No attributes: a count of 0 and a set count of 1.
    let (logged, _) = session(b"\x00\x01select now()".to_vec());
    assert_eq!(logged[1], ["query", "select now()", "T", "0", "-"]);
    // Two attributes, a string and a LONGLONG, and a third that is NULL in the bitmap.
    let mut query = vec![3, 1, 0b100, 1];
    query.extend([0xfe, 0x00, 2, b'n', b'1', 0x08, 0x80, 2, b'n', b'2', 0x06, 0x00, 2, b'n', b'3']);
    query.extend([2, b'v', b'1', 7, 0, 0, 0, 0, 0, 0, 0]);
    query.extend(b"SELECT mysql_query_attribute_string('n1')");
    let (logged, actions) = session(query.clone());
    assert_eq!(logged[1], ["query", "SELECT mysql_query_attribute_string('n1')", "T", "0", "-"]);
    assert_eq!(actions, [Action::Confirm("mysql")]);
    // send_types_to_server must be 1, and a type binpac has no case for throws.
    for (at, byte) in [(3, 0), (4, 0x20)] {
        let mut bad = query.clone();
        bad[at] = byte;
        let (logged, actions) = session(bad);
        assert_eq!(logged.len(), 1, "the query is not logged");
        assert!(matches!(actions[..], [Action::Confirm(_), Action::Violation(..)]), "{actions:?}");
    }
    // Only when both sides announced them: the client alone does not make the count a count.
    let (logged, _) = session_log(&[
        (false, greeting_v10()),
        (true, response_v10(FULL | CLIENT_QUERY_ATTRIBUTES)),
        (false, ok(2, 0)),
    ]);
    assert_eq!(logged.len(), 1);
}

/// COM_CHANGE_USER as mysql-connector-python sends it: user, auth data, database, charset, plugin, attributes.
fn change_user(user: &[u8]) -> Vec<u8> {
    let mut arg = [user, b"\0"].concat();
    arg.push(20);
    arg.extend([0x4e; 20]);
    arg.extend(b"\0\xff\x00caching_sha2_password\0\x0a\x04_pid\x041234");
    command(COM_CHANGE_USER, &arg)
}

/// An AuthSwitchRequest to mysql_native_password with its 20-byte scramble.
fn auth_switch(seq_id: u8) -> Vec<u8> {
    pdu(seq_id, &[&b"\xfemysql_native_password\x00"[..], b"0123456789abcdefghij\x00"].concat())
}

#[test]
fn change_user_logs_the_new_user_and_its_outcome() {
    let start = vec![
        (false, greeting_v10()),
        (true, response_v10(FULL)),
        // An auth switch during the login: the client's next packet is auth data.
        (false, auth_switch(2)),
        (true, pdu(3, &[0x42; 20])),
        (false, ok(4, 0)),
        (true, command(0x0e, b"")),
        (false, ok(1, 0)),
        (true, change_user(b"root2")),
        (false, auth_switch(1)),
        (true, pdu(2, &[0x43; 20])),
    ];
    let success =
        [start.clone(), vec![(false, ok(3, 0)), (true, command(COM_QUERY, b"SET NAMES 'utf8mb4'")), (false, ok(1, 0))]]
            .concat();
    let (logged, actions) = session_log(&success);
    assert_eq!(
        logged,
        rows(&[
            ["login", "root", "T", "0", "-"],
            ["ping", "(empty)", "T", "0", "-"],
            ["change_user", "root2", "T", "0", "-"],
            ["query", "SET NAMES 'utf8mb4'", "T", "0", "-"],
        ])
    );
    assert_eq!(actions, [Action::Confirm("mysql")]);
    let denied = b"Access denied for user 'root2'@'127.0.0.1' (using password: YES)";
    let (logged, _) = session_log(&[start, vec![(false, err(3, 1045, denied))]].concat());
    assert_eq!(logged[2], ["change_user", "root2", "F", "-", std::str::from_utf8(denied).unwrap()]);
    // binpac looks for the plugin name after the charset even when the packet ends there.
    let (logged, actions) = session_log(&[
        (false, greeting_v10()),
        (true, response_v10(FULL)),
        (false, ok(2, 0)),
        (true, command(COM_CHANGE_USER, b"root2\0\0\0\x21\x00")),
    ]);
    assert_eq!(logged.len(), 1);
    assert!(matches!(actions[..], [Action::Confirm(_), Action::Violation(..)]));
}

#[test]
fn failed_logins_and_unanswered_requests() {
    let denied = b"Access denied for user 'root_nope'@'lumberjack.home' (using password: NO)";
    let (logged, _) = session_log(&[
        (false, greeting_v10()),
        (true, response_for(b"root_nope", 0x0000_a20f)),
        (false, err(2, 1045, denied)),
    ]);
    assert_eq!(logged, rows(&[["login", "root_nope", "F", "-", std::str::from_utf8(denied).unwrap()]]));
    // What is open when the connection ends is written then. Before the server's OK a client packet is auth
    // data (the response announced plugin auth), not a command.
    let unanswered = [(false, greeting_v10()), (true, response_v10(FULL)), (true, command(0x20, b"x\0\0"))];
    let (logged, _) = session_log(&unanswered);
    assert_eq!(logged, rows(&[["login", "root", "-", "-", "-"]]));
    // An unknown command is named by its number; one trailing NUL of an argument is dropped.
    let (logged, _) = session_log(&[&unanswered[..2], &[(false, ok(2, 0)), unanswered[2].clone()]].concat());
    assert_eq!(logged, rows(&[["login", "root", "T", "0", "-"], ["unknown-32", r"x\x00", "-", "-", "-"]]));
    // Protocol 9 (Handshake_v9 and the v9 response).
    let v9 = pdu(0, b"\x093.22\0\x01\0\0\0scramble\0");
    let v9_response = pdu(1, b"\x05\x00\0\0\x01admin\0pw\0");
    let (logged, actions) = session_log(&[(false, v9), (true, v9_response), (false, ok(2, 0))]);
    assert_eq!(logged, rows(&[["login", "admin", "T", "0", "-"]]));
    assert_eq!(actions, [Action::Confirm("mysql")]);
}

fn run(deliveries: &[(bool, &[u8])]) -> Vec<Action> {
    let mut h = Harness::new(Proto::Tcp, 3306);
    let mut mysql = (SPEC.new)(Proto::Tcp);
    for (is_orig, data) in deliveries {
        h.deliver(mysql.as_mut(), *is_orig, data);
    }
    h.actions
}

#[test]
fn mysql_confirms_on_the_clients_handshake_response() {
    let (greeting, response) = (greeting_v10(), response_v10(FULL));
    assert_eq!(run(&[(false, &greeting), (true, &response)]), [Action::Confirm("mysql")]);
    // Split across segments, and the greeting alone.
    let (a, b) = response.split_at(30);
    assert_eq!(
        run(&[(false, &greeting[..9]), (false, &greeting[9..]), (true, a), (true, b)]),
        [Action::Confirm("mysql")]
    );
    assert_eq!(run(&[(false, &greeting)]), []);
    // The SSL request (32 bytes, CLIENT_SSL) confirms and hands the rest to TLS; nothing is logged.
    let ssl = pdu(1, &[&(FULL | CLIENT_SSL).to_le_bytes()[..], &[0; 28]].concat());
    assert_eq!(run(&[(false, &greeting), (true, &ssl)]), [Action::Confirm("mysql"), Action::StartTls]);
    let (logged, _) = session_log(&[(false, greeting.clone()), (true, ssl), (true, command(COM_QUERY, b"x"))]);
    assert!(logged.is_empty());
}

#[test]
fn mysql_rejects_what_binpac_cannot_parse() {
    let greeting = greeting_v10();
    let violation = |actions: Vec<Action>| matches!(actions[..], [Action::Violation(..)]);
    // An auth_plugin_data_len of 20 fails `&enforce`.
    let mut bad = greeting.clone();
    bad[4 + 1 + 7 + 4 + 9 + 7] = 20;
    assert!(violation(run(&[(false, &bad)])));
    // A server version without its NUL.
    assert!(violation(run(&[(false, &pdu(0, b"\x0a8.0.36"))])));
    // The attributes claim more bytes than the PDU holds.
    let mut response = response_v10(FULL);
    let len = response.len();
    response[len - 11] = 40;
    assert!(violation(run(&[(false, &greeting), (true, &response)])));
    // A response before any greeting: version 0 has no case.
    assert!(violation(run(&[(true, &response_v10(FULL))])));
    // A connection-phase packet of a type binpac has no case for.
    assert!(violation(run(&[(false, &greeting), (false, &pdu(2, b"\x05"))])));
    // HTTP on port 3306 reads as the header of a PDU of megabytes: nothing is said.
    assert_eq!(run(&[(true, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]), []);
    // An error greeting (version 0xff) moves to the command phase: the response is read as a command.
    let refused = pdu(0, b"\xff\x6a\x04#HY000Host is blocked");
    assert_eq!(run(&[(false, &refused), (true, &response_v10(FULL))]), []);
    let (logged, _) = session_log(&[(false, refused), (true, command(COM_QUIT, b""))]);
    assert_eq!(logged, rows(&[["quit", "(empty)", "-", "-", "-"]]));
    // A row with fewer fields than the result set's columns: the violation ends the parsing, the open record
    // is written when the connection ends.
    let (logged, actions) = session_log(&[
        (false, greeting_v10()),
        (true, response_v10(FULL)),
        (false, ok(2, 0)),
        (true, command(COM_QUERY, b"select a, b")),
        (false, [pdu(1, &[2]), column_def(2, b"a"), column_def(3, b"b"), eof(4), row(5, &[b"1"])].concat()),
        (false, eof(6)),
    ]);
    assert_eq!(logged[1], ["query", "select a, b", "-", "-", "-"]);
    assert!(matches!(actions[..], [Action::Confirm(_), Action::Violation(..)]));
}

#[test]
fn gaps_and_mid_stream_connections_stop_the_analysis() {
    let mut h = Harness::new(Proto::Tcp, 3306);
    h.partial = true;
    let mut mysql = MySql::default();
    h.deliver(&mut mysql, false, &greeting_v10());
    h.deliver(&mut mysql, true, &response_v10(FULL));
    assert!(mysql.is_done());
    h.finish(&mut mysql);
    assert_eq!((h.actions.len(), h.records.len()), (0, 0));
    // After a gap in either direction nothing is parsed; the open record is written at the end.
    let mut h = Harness::new(Proto::Tcp, 3306);
    let mut mysql = MySql::default();
    for (is_orig, data) in &classic_session()[..4] {
        h.deliver(&mut mysql, *is_orig, data);
    }
    h.run(1.0, |ctx| mysql.undelivered(ctx, false, 10));
    h.deliver(&mut mysql, false, &ok(1, 0));
    assert!(!mysql.is_done(), "a record is still open");
    h.finish(&mut mysql);
    let logged: Vec<Vec<String>> =
        h.logged("mysql").iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect();
    assert_eq!(logged[1], ["query", "select @@version_comment limit 1", "-", "-", "-"]);
}

#[test]
fn long_pdus_are_parsed_from_their_first_bytes() {
    // A 100 000-byte query: the argument is cut at MAX_PDU, and its answer still closes it.
    let long_query = vec![b'a'; 100_000];
    let query = command(COM_QUERY, &long_query);
    // A row longer than MAX_PDU (a 3-byte length-encoded field) is no violation.
    let long_row = pdu(4, &[&[0xfd, 0xa0, 0x86, 0x01][..], &[b'b'; 100_000]].concat());
    let answer = [pdu(1, &[1]), column_def(2, b"c"), eof(3), long_row, eof(5)].concat();
    let in_segments: Deliver = |h, mysql, ts, is_orig, data| {
        for segment in data.chunks(1448) {
            h.run(ts, |ctx| mysql.deliver(ctx, is_orig, segment));
        }
    };
    let session = [&classic_session()[..3], &[(true, query), (false, answer)]].concat();
    let (logged, actions) = logged_with(&session, in_segments);
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[1][0], "query");
    assert_eq!(logged[1][1], "a".repeat(MAX_PDU - 1));
    assert_eq!(logged[1][2..], ["T", "0", "-"]);
    assert_eq!(actions, [Action::Confirm("mysql")]);
}

#[test]
fn continuations_of_a_maximal_pdu_are_pdus_of_their_own() {
    // MySQL sends a payload of 16 MiB or more as a 0xffffff-long packet and continuations; binpac parses the
    // continuation as a command of its own, named by its first byte ('t', 116).
    let mut first = vec![0xff, 0xff, 0xff, 0x00, COM_QUERY];
    first.resize(HEADER_LEN + 0xff_ffff, b'q');
    let session = [&classic_session()[..3], &[(true, first), (true, pdu(1, b"tail"))]].concat();
    let (logged, _) = session_log(&session);
    let commands: Vec<(&str, usize)> = logged.iter().map(|r| (r[0].as_str(), r[1].len())).collect();
    assert_eq!(commands, [("login", 4), ("query", MAX_PDU - 1), ("unknown-116", 3)]);
}

#[test]
fn command_names_follow_zeeks_table() {
    assert_eq!(command_name(0), "sleep");
    assert_eq!(command_name(0x1f), "reset_connection");
    assert_eq!(command_name(0x20), "unknown-32");
    assert_eq!(command_name(0xff), "unknown-255");
}

/// Through the engine: the analyzer attaches on 3306 (not on 3307), the handshake response confirms
/// `service`, and mysql.log's records carry the connection's uid.
#[test]
fn mysql_log_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    let run = |port: u16| {
        let session = classic_session();
        let messages: Vec<(bool, &[u8])> = session.iter().take(5).map(|(o, d)| (*o, d.as_slice())).collect();
        engine_records(&tcp_exchange(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], port), &messages))
    };
    let records = run(3306);
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "mysql");
    let logged: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r.schema.path == "mysql")
        .map(|r| (field(r, "uid"), field(r, "cmd"), field(r, "success")))
        .collect();
    let uid = field(conn, "uid");
    assert_eq!(logged, [(uid.clone(), "login".into(), "T".into()), (uid, "query".into(), "T".into())]);
    let records = run(3307);
    assert!(records.iter().all(|r| r.schema.path != "mysql"));
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "-");
}

#[test]
fn fuzz_inputs_do_not_panic() {
    let mut session = Vec::new();
    for (is_orig, data) in classic_session() {
        for chunk in data.chunks(255) {
            session.extend([u8::from(!is_orig), chunk.len() as u8]);
            session.extend(chunk);
        }
    }
    fuzz(&session);
    for cut in 0..session.len() {
        fuzz(&session[..cut]);
        fuzz(&session[cut..]);
    }
    // Byte flips of the session (a fixed xorshift sequence), which reach the parsers' failure paths.
    let mut rng = crate::analyzers::testing::XorShift(0x9e37_79b9_7f4a_7c15_u64);
    for _ in 0..3000 {
        let mut mutated = session.clone();
        for _ in 0..4 {
            let state = rng.next();
            let at = (state % mutated.len() as u64) as usize;
            mutated[at] = (state >> 32) as u8;
        }
        fuzz(&mutated);
    }
}
