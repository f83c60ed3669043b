use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;

/// A protocol 3.0 StartupMessage (PostgreSQL docs, "Message Formats": Int32 length, Int32 196608, name/value pairs,
/// a final NUL).
pub(crate) fn startup(parameters: &[u8]) -> Vec<u8> {
    let length = (4 + 4 + parameters.len() + 1) as u32;
    [&length.to_be_bytes()[..], &196_608u32.to_be_bytes(), parameters, b"\0"].concat()
}

pub(crate) const PSQL: &[u8] = b"user\0zeek\0database\0zeek\0application_name\0psql\0client_encoding\0UTF8\0";
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A typed message: the type byte, a length counting itself, the body.
fn msg(typ: u8, body: &[u8]) -> Vec<u8> {
    [&[typ][..], &((body.len() + 4) as u32).to_be_bytes(), body].concat()
}

fn auth(identifier: u32, data: &[u8]) -> Vec<u8> {
    msg(b'R', &[&identifier.to_be_bytes()[..], data].concat())
}

/// psql's session of Zeek's psql-select-now test: SSLRequest refused, SCRAM login, `select now()`, terminate.
fn select_now() -> Vec<(bool, Vec<u8>)> {
    vec![
        (true, SSL_REQUEST.to_vec()),
        (false, b"N".to_vec()),
        (true, startup(PSQL)),
        (false, auth(10, b"SCRAM-SHA-256\0\0")),
        (true, msg(b'p', b"SCRAM-SHA-256\0\0\0\0\x20n,,n=,r=abc")),
        (false, auth(11, b"r=abcdef,s=salt,i=4096")),
        (true, msg(b'p', b"c=biws,r=abcdef,p=proof")),
        (
            false,
            [
                auth(12, b"v=signature"),
                auth(0, b""),
                msg(b'S', b"application_name\0psql\0"),
                msg(b'K', &[0, 0, 0x30, 0x39, 1, 2, 3, 4]),
                msg(b'Z', b"I"),
            ]
            .concat(),
        ),
        (true, msg(b'Q', b"select now()\0")),
        (
            false,
            [
                msg(b'T', b"\0\x01now\0\0\0\0\0\0\0\0\0\x04\xa0\0\x08\xff\xff\xff\xff\0\0"),
                msg(b'D', b"\0\x01\0\0\0\x1d2024-01-01 00:00:00.000000+00"),
                msg(b'C', b"SELECT 1\0"),
                msg(b'Z', b"I"),
            ]
            .concat(),
        ),
        (true, msg(b'X', b"")),
    ]
}

struct Run {
    rows: Vec<Vec<String>>,
    actions: Vec<Action>,
}

/// postgresql.log's columns after `id`, for `deliveries` at 100.0, 101.0, ...
fn run(deliveries: &[(bool, Vec<u8>)]) -> Run {
    let mut h = Harness::new(Proto::Tcp, 5432);
    let mut pg = PostgreSql::default();
    for (i, (is_orig, data)) in deliveries.iter().enumerate() {
        h.run(100.0 + i as f64, |ctx| pg.deliver(ctx, *is_orig, data));
    }
    h.finish(&mut pg);
    let rows = h.logged("postgresql").iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect();
    Run { rows, actions: h.actions }
}

fn row(fields: [&str; 9]) -> Vec<String> {
    fields.map(String::from).to_vec()
}

fn violated(deliveries: &[(bool, Vec<u8>)]) -> bool {
    matches!(run(deliveries).actions[..], [.., Action::Violation(..)])
}

#[test]
fn a_session_logs_as_zeeks_psql_select_now_baseline() {
    let run = run(&select_now());
    assert_eq!(
        run.rows,
        [
            row(["-", "-", "-", "ssl_request", "-", "ssl_reply", "N", "F", "-"]),
            row(["zeek", "zeek", "psql", "startup", "-", "auth_ok", "SASL,SASLContinue,SASLFinal", "T", "-"]),
            row(["zeek", "zeek", "psql", "simple_query", "select now()", "-", "-", "T", "1"]),
            row(["zeek", "zeek", "psql", "terminate", "-", "-", "-", "-", "-"]),
        ]
    );
    assert_eq!(run.actions, [Action::Confirm("postgresql"), Action::Confirm("postgresql")]);
}

#[test]
fn every_byte_delivered_alone_logs_the_same() {
    let session = select_now();
    let bytewise: Vec<(bool, Vec<u8>)> =
        session.iter().flat_map(|(c, m)| m.iter().map(move |b| (*c, vec![*b]))).collect();
    assert_eq!(run(&bytewise).rows, run(&session).rows);
}

#[test]
fn an_unfinished_login_is_written_when_the_connection_ends() {
    let run = run(&[(true, startup(PSQL)), (false, auth(10, b"SCRAM-SHA-256\0\0"))]);
    assert_eq!(run.rows, [row(["zeek", "zeek", "psql", "startup", "-", "auth_request", "SASL", "-", "-"])]);
}

#[test]
fn errors_and_notices_fill_the_backend_columns() {
    let error = msg(b'E', b"SERROR\0VERROR\0C42703\0Mcolumn \"x\" does not exist\0\x01odd\0\0");
    let notice = msg(b'N', b"SNOTICE\0Mhello\0\0");
    let session = vec![
        (true, startup(b"user\0zeek\0")),
        (false, [auth(0, b""), msg(b'Z', b"I")].concat()),
        (true, msg(b'Q', b"select x\0")),
        (false, [error, msg(b'Z', b"E")].concat()),
        (true, msg(b'Q', b"begin\0")),
        (false, [notice, msg(b'C', b"BEGIN\0"), msg(b'Z', b"T")].concat()),
    ];
    let run = run(&session);
    assert_eq!(
        run.rows[1..],
        [
            row([
                "zeek",
                "-",
                "-",
                "simple_query",
                "select x",
                "error",
                "SeverityLocalized=ERROR,Severity=ERROR,Code=42703,Message=column \"x\" does not exist,UnknownErrorId\\x01=odd",
                "F",
                "-"
            ]),
            row(["zeek", "-", "-", "simple_query", "begin", "-", "SeverityLocalized=NOTICE,Message=hello", "T", "0"]),
        ]
    );
}

#[test]
fn the_ssl_answer_confirms_and_s_hands_over_to_tls() {
    let run = self::run(&[(true, SSL_REQUEST.to_vec()), (false, b"S".to_vec()), (true, b"\x16\x03\x01".to_vec())]);
    assert_eq!(run.actions, [Action::Confirm("postgresql"), Action::StartTls]);
    assert_eq!(run.rows, [row(["-", "-", "-", "ssl_request", "-", "ssl_reply", "S", "T", "-"])]);
    // Held server bytes are replayed first: an `S` sent before the request still answers it.
    let early = self::run(&[(false, b"S".to_vec()), (true, SSL_REQUEST.to_vec()), (false, b"\x16\x03".to_vec())]);
    assert_eq!(early.actions, [Action::Confirm("postgresql"), Action::StartTls]);
}

#[test]
fn what_the_spicy_grammar_rejects_is_a_violation() {
    assert!(violated(&[(true, SSL_REQUEST.to_vec()), (false, b"E\0\0\0\x08".to_vec())]));
    // GSSENCRequest (80877104) and CancelRequest (80877102) do not carry major version 3.
    assert!(violated(&[(true, vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30])]));
    assert!(violated(&[(true, b"\0\0\0\x03\0\0\0\0".to_vec())]), "length below 8");
    assert!(violated(&[(true, b"GET / HTTP/1.1\r\n".to_vec())]));
    // An empty value, a name running into the terminator, a missing final NUL, a dot in a name, a list ended by
    // look-ahead before its `&size`.
    for parameters in [&b"user\0\0"[..], b"user", b"_pq_.opt\0on\0", b".x\0y\0"] {
        assert!(violated(&[(true, startup(parameters))]), "{parameters:?}");
    }
    let mut unterminated = startup(PSQL);
    *unterminated.last_mut().unwrap() = b'x';
    assert!(violated(&[(true, unterminated)]));
    // Five server chunks before the client's first eight bytes: Spicy throws; four wait.
    let early = vec![(false, b"E".to_vec()); 5];
    assert!(violated(&early));
    assert!(run(&early[..4]).actions.is_empty());
    // Messages whose unit does not consume its `&size` exactly, or whose length is below 4.
    let logged_in = [(true, startup(PSQL)), (false, auth(0, b""))];
    for bad in
        [msg(b'Z', b"II"), msg(b'Z', b"X"), msg(b'K', b"1234"), auth(13, b""), auth(0, b"x"), b"Z\0\0\0\x03".to_vec()]
    {
        assert!(violated(&[logged_in.to_vec(), vec![(false, bad.clone())]].concat()), "{bad:?}");
    }
    for bad in [msg(b'Q', b"select 1\0junk"), msg(b'Q', b"select 1"), msg(b'X', b"x")] {
        assert!(violated(&[logged_in.to_vec(), vec![(true, bad.clone())]].concat()), "{bad:?}");
    }
    // After a violation nothing more is parsed.
    let mut after = logged_in.to_vec();
    after.extend([(false, msg(b'Z', b"X")), (true, msg(b'Q', b"select 1\0")), (false, msg(b'Z', b"I"))]);
    let run = run(&after);
    assert_eq!(run.actions.iter().filter(|a| matches!(a, Action::Violation(..))).count(), 1);
    assert_eq!(run.rows.len(), 1, "only the startup, written at the end");
}

#[test]
fn messages_nothing_logs_are_passed_over_at_any_length() {
    // A CopyData message of 1 MiB passes without being held; a query of the same size is refused.
    let big = vec![b'x'; 1 << 20];
    let logged_in = vec![(true, startup(PSQL)), (false, [auth(0, b""), msg(b'Z', b"I")].concat())];
    let copy = [logged_in.clone(), vec![(true, msg(b'd', &big)), (true, msg(b'Q', b"select 1\0"))]].concat();
    let run = run(&copy);
    assert!(run.actions.iter().all(|a| !matches!(a, Action::Violation(..))));
    assert_eq!(run.rows.last().map(|r| r[4].as_str()), Some("select 1"));
    let query = [&big[..], b"\0"].concat();
    assert!(violated(&[logged_in, vec![(true, msg(b'Q', &query))]].concat()));
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    for data in [&b"\0\0\0\x08\x04\xd2\x16\x2fN"[..], b"\0\0\0\x09\0\x03\0\0\0", b"\xff\xff\xff\xff\xff\xff\xff\xff"] {
        fuzz(data);
        run(&[(true, data.to_vec()), (false, data.to_vec()), (true, data.to_vec()), (false, data.to_vec())]);
    }
}

/// Through the engine: attached on 5432 only, confirmed by the startup, the records carrying the connection's uid.
#[test]
fn the_startup_confirms_on_its_port_and_the_records_carry_the_connection() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    let session = select_now();
    let messages: Vec<(bool, &[u8])> = session.iter().map(|(c, m)| (*c, &m[..])).collect();
    for (port, service, records) in [(5432, "postgresql", 4), (5433, "-", 0)] {
        let frames = tcp_exchange(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], port), &messages);
        let records_out = engine_records(&frames);
        let conn = records_out.iter().find(|r| r.schema.path == "conn").unwrap();
        assert_eq!(field(conn, "service"), service);
        let logged: Vec<_> = records_out.iter().filter(|r| r.schema.path == "postgresql").collect();
        assert_eq!(logged.len(), records, "port {port}");
        assert!(logged.iter().all(|r| field(r, "uid") == field(conn, "uid")));
    }
}
