use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::Harness;

const SERVER_38: &[u8] = b"RFB 003.008\n";
const CLIENT_33: &[u8] = b"RFB 003.003\n";
const NAME: &[u8] = b"root's X desktop (martin-VirtualBox:1)";

/// A `ServerInit` for a 1024x768 desktop of 32 bits per pixel named `name`.
fn server_init(name: &[u8]) -> Vec<u8> {
    let mut m = [1024u16.to_be_bytes(), 768u16.to_be_bytes()].concat();
    m.extend([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    m.extend((name.len() as u32).to_be_bytes());
    m.extend(name);
    m
}

/// An RFB 3.3 client's session with VNC authentication, `result` the server's verdict: (client?, bytes) in order.
fn vnc_33(result: u32) -> Vec<(bool, Vec<u8>)> {
    vec![
        (false, SERVER_38.to_vec()),
        (true, CLIENT_33.to_vec()),
        // The security type (VNC) and the challenge in one segment.
        (false, [&2u32.to_be_bytes()[..], &[0x5a; 16]].concat()),
        (true, vec![0xa5; 16]),
        (false, result.to_be_bytes().to_vec()),
    ]
}

struct Run {
    rows: Vec<Vec<String>>,
    actions: Vec<Action>,
}

fn run_with(partial: bool, deliveries: &[(bool, Vec<u8>)]) -> Run {
    let mut h = Harness::new(Proto::Tcp, 5901);
    h.partial = partial;
    let mut rfb = Rfb::default();
    for (i, (is_orig, data)) in deliveries.iter().enumerate() {
        h.run(100.0 + i as f64, |ctx| rfb.deliver(ctx, *is_orig, data));
    }
    h.finish(&mut rfb);
    let rows = h
        .logged("rfb")
        .iter()
        .map(|r| [r.values[0].to_tsv()].into_iter().chain(r.values[6..].iter().map(Value::to_tsv)).collect())
        .collect();
    Run { rows, actions: h.actions }
}

fn run(deliveries: &[(bool, Vec<u8>)]) -> Run {
    run_with(false, deliveries)
}

fn row(fields: [&str; 11]) -> Vec<String> {
    fields.map(String::from).to_vec()
}

#[test]
fn a_vnc_session_is_logged_at_the_servers_parameters() {
    let mut session = vnc_33(0);
    session.extend([(true, vec![1]), (false, server_init(NAME)), (true, vec![3, 0, 0, 0, 0, 0, 4, 0, 3, 0])]);
    let run = run(&session);
    let desktop = String::from_utf8(NAME.to_vec()).unwrap();
    assert_eq!(
        run.rows,
        [row(["100.000000", "003", "003", "003", "008", "VNC", "T", "T", &desktop, "1024", "768"])],
        "written once, when ServerInit arrives (finishing does not write it again)"
    );
    assert_eq!(run.actions, [Action::Confirm("rfb")]);
}

#[test]
fn every_split_of_the_server_stream_parses_the_same() {
    let server: Vec<u8> = [&2u32.to_be_bytes()[..], &[0x5a; 16], &0u32.to_be_bytes(), &server_init(b"desk")].concat();
    let client: Vec<u8> = [&[0xa5; 16][..], &[0]].concat();
    // From the fourth byte on: the client's answer needs the security type to have arrived (a 3.3 client that
    // speaks before it is refused, below).
    for cut in 4..server.len() {
        let mut rfb = Rfb::default();
        let mut h = Harness::new(Proto::Tcp, 5901);
        h.deliver(&mut rfb, false, SERVER_38);
        h.deliver(&mut rfb, true, CLIENT_33);
        h.deliver(&mut rfb, false, &server[..cut]);
        h.deliver(&mut rfb, true, &client);
        h.deliver(&mut rfb, false, &server[cut..]);
        h.finish(&mut rfb);
        let logged = h.logged("rfb");
        assert_eq!(logged.len(), 1, "cut at {cut}");
        let columns: Vec<String> = logged[0].values[6..].iter().map(Value::to_tsv).collect();
        assert_eq!(columns, ["003", "003", "003", "008", "VNC", "T", "F", "desk", "1024", "768"], "cut at {cut}");
        assert_eq!(h.actions, [Action::Confirm("rfb")], "cut at {cut}");
    }
}

#[test]
fn a_refused_login_and_an_abandoned_one_are_logged_at_the_end() {
    let mut refused = vnc_33(1);
    // After a refusal the server explains (RFC 6143 §7.1.3) and the handshake goes on to ServerInit.
    refused.push((false, [&6u32.to_be_bytes()[..], b"denied"].concat()));
    let run = self::run(&refused);
    assert_eq!(run.rows, [row(["100.000000", "003", "003", "003", "008", "VNC", "F", "-", "-", "-", "-"])]);
    let abandoned = &vnc_33(0)[..3];
    assert_eq!(
        self::run(abandoned).rows,
        [row(["100.000000", "003", "003", "003", "008", "VNC", "-", "-", "-", "-", "-"])]
    );
}

#[test]
fn the_37_handshake_selects_a_security_type() {
    let client_38 = b"RFB 003.008\n".to_vec();
    for (client_version, result) in [(client_38, Some(0u32)), (b"RFB 003.007\n".to_vec(), None)] {
        let mut session =
            vec![(false, SERVER_38.to_vec()), (true, client_version), (false, vec![2, 1, 2]), (true, vec![1])];
        // 3.8 answers even "None" with a SecurityResult; 3.7 goes straight to the initialisation.
        session.extend(result.map(|r| (false, r.to_be_bytes().to_vec())));
        session.extend([(true, vec![0]), (false, server_init(b"mac"))]);
        let run = run(&session);
        assert_eq!(run.rows.len(), 1);
        let expected_auth = if result.is_some() { "T" } else { "-" };
        assert_eq!(run.rows[0][5..], ["None", expected_auth, "F", "mac", "1024", "768"]);
        assert_eq!(run.actions, [Action::Confirm("rfb")]);
    }
}

#[test]
fn what_binpac_refuses_stops_the_analyzer() {
    let violation = |deliveries: &[(bool, Vec<u8>)]| {
        let run = run(deliveries);
        matches!(run.actions[..], [.., Action::Violation(..)])
    };
    assert!(violation(&[(false, b"RFB 003,008\n".to_vec())]), "a malformed version");
    // A 3.3 client that talks before the server's security type.
    assert!(violation(&[(false, SERVER_38.to_vec()), (true, [CLIENT_33, b"x"].concat())]));
    // A failure reason longer than MAX_DATA_LENGTH.
    let mut long_reason = vnc_33(1);
    long_reason.push((false, 70_000u32.to_be_bytes().to_vec()));
    assert!(violation(&long_reason));
    // A client message of a type binpac does not know ends the analysis: later bytes are not looked at.
    let mut session = vnc_33(0);
    session.extend([(true, vec![1]), (false, server_init(b"d")), (true, vec![200]), (true, vec![200])]);
    let run = run(&session);
    assert_eq!(run.actions.iter().filter(|a| matches!(a, Action::Violation(..))).count(), 1);
    assert_eq!(run.rows.len(), 1);
}

#[test]
fn an_unknown_security_type_is_a_violation_that_goes_on() {
    let run = run(&[(false, SERVER_38.to_vec()), (true, CLIENT_33.to_vec()), (false, 5u32.to_be_bytes().to_vec())]);
    assert!(matches!(run.actions[..], [Action::Confirm("rfb"), Action::Violation(..)]));
    assert_eq!(run.rows[0][5], "RealVNC");
}

#[test]
fn mid_stream_connections_are_ignored() {
    let run = run_with(true, &vnc_33(0));
    assert!(run.rows.is_empty() && run.actions.is_empty());
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    for data in
        [&b"RFB 003.889\n\x00\x00\x00\x1e"[..], b"RFB", b"\xff\xff\xff\xff", b"RFB 003.008\n\x06\x00\xff\xff\xff\xff"]
    {
        fuzz(data);
        run(&[(false, data.to_vec()), (true, data.to_vec()), (false, data.to_vec()), (true, data.to_vec())]);
    }
}

/// Through the engine: found by its signature on any port, confirmed by the client's version, logged with the
/// connection's uid.
#[test]
fn the_signature_finds_it_and_the_record_carries_the_connection() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    let messages = [vnc_33(0), vec![(true, vec![1]), (false, server_init(b"d"))]].concat();
    let borrowed: Vec<(bool, &[u8])> = messages.iter().map(|(c, m)| (*c, &m[..])).collect();
    // A client version that does not parse: no confirmation, and the record holds the server's version alone.
    for (client_version, service) in [(CLIENT_33, "rfb"), (&b"RFB 003_003\n"[..], "-")] {
        let mut exchange = borrowed.clone();
        exchange[1].1 = client_version;
        let frames = tcp_exchange(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 5901), &exchange);
        let records = engine_records(&frames);
        let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
        assert_eq!(field(conn, "service"), service);
        let logged: Vec<_> = records.iter().filter(|r| r.schema.path == "rfb").collect();
        assert_eq!(logged.len(), 1, "{service}");
        assert_eq!(field(logged[0], "uid"), field(conn, "uid"));
    }
}
