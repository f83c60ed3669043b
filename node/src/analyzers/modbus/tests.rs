use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::{Harness, XorShift, row};

/// A PDU: the MBAP header for transaction `tid` on unit 1 (its length counted), function code `fc`, then `body`.
fn pdu(tid: u16, fc: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len() + 2).expect("a test PDU is small");
    let mut m = tid.to_be_bytes().to_vec();
    m.extend([0, 0]);
    m.extend(len.to_be_bytes());
    m.extend([1, fc]);
    m.extend(body);
    m
}

/// A session of three exchanges: read holding registers, write multiple registers, and a read of input registers
/// the server answers with an exception (Modbus Application Protocol V1.1b3's examples).
fn session() -> Vec<(bool, Vec<u8>)> {
    vec![
        // Read 3 registers from 0x006B.
        (true, pdu(1, 0x03, &[0x00, 0x6B, 0x00, 0x03])),
        (false, pdu(1, 0x03, &[0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64])),
        // Write 0x000A and 0x0102 to the 2 registers from 0x0001.
        (true, pdu(2, 0x10, &[0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02])),
        (false, pdu(2, 0x10, &[0x00, 0x01, 0x00, 0x02])),
        // Read 1 input register from 0x0008: illegal data address.
        (true, pdu(3, 0x04, &[0x00, 0x08, 0x00, 0x01])),
        (false, pdu(3, 0x84, &[0x02])),
    ]
}

/// modbus.log's columns from `ts` on, skipping `uid` and `id`, as TSV.
fn rows(h: &Harness) -> Vec<Vec<String>> {
    h.timed_columns("modbus")
}

/// Each message delivered at 100.0, 101.0, ... in `pieces` split at `at` (not split when past its end).
fn run(messages: &[(bool, Vec<u8>)], at: usize) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 502);
    let mut modbus = Modbus::default();
    for (i, (is_orig, m)) in messages.iter().enumerate() {
        let (first, second) = m.split_at(at.min(m.len()));
        for piece in [first, second] {
            h.run(100.0 + i as f64, |ctx| modbus.deliver(ctx, *is_orig, piece));
        }
    }
    h.finish(&mut modbus);
    h
}

fn expected_session() -> Vec<Vec<String>> {
    vec![
        row(["100.000000", "1", "1", "READ_HOLDING_REGISTERS", "REQ", "-"]),
        row(["101.000000", "1", "1", "READ_HOLDING_REGISTERS", "RESP", "-"]),
        row(["102.000000", "2", "1", "WRITE_MULTIPLE_REGISTERS", "REQ", "-"]),
        row(["103.000000", "2", "1", "WRITE_MULTIPLE_REGISTERS", "RESP", "-"]),
        row(["104.000000", "3", "1", "READ_INPUT_REGISTERS", "REQ", "-"]),
        row(["105.000000", "3", "1", "READ_INPUT_REGISTERS_EXCEPTION", "RESP", "ILLEGAL_DATA_ADDRESS"]),
    ]
}

#[test]
fn each_request_and_response_is_a_row() {
    let h = run(&session(), usize::MAX);
    assert_eq!(rows(&h), expected_session());
    assert_eq!(h.actions, [Action::Confirm("modbus")]);
    assert!(h.weirds.is_empty());
}

#[test]
fn messages_split_at_every_byte_log_the_same() {
    for at in 0..20 {
        let h = run(&session(), at);
        assert_eq!(rows(&h), expected_session(), "split at {at}");
        assert_eq!(h.actions, [Action::Confirm("modbus")], "split at {at}");
    }
}

#[test]
fn a_stream_a_byte_at_a_time_and_pdus_in_one_delivery_log_the_same() {
    let session = session();
    let (requests, responses): (Vec<_>, Vec<_>) = session.iter().partition(|(is_orig, _)| *is_orig);
    let glue = |half: &[&(bool, Vec<u8>)]| half.iter().flat_map(|(_, m)| m.clone()).collect::<Vec<u8>>();
    let (requests, responses) = (glue(&requests), glue(&responses));

    let mut h = Harness::new(Proto::Tcp, 502);
    let mut modbus = Modbus::default();
    h.deliver(&mut modbus, true, &requests);
    h.deliver(&mut modbus, false, &responses);
    let funcs: Vec<String> = rows(&h).into_iter().map(|r| format!("{} {}", r[3], r[4])).collect();
    assert_eq!(
        funcs,
        [
            "READ_HOLDING_REGISTERS REQ",
            "WRITE_MULTIPLE_REGISTERS REQ",
            "READ_INPUT_REGISTERS REQ",
            "READ_HOLDING_REGISTERS RESP",
            "WRITE_MULTIPLE_REGISTERS RESP",
            "READ_INPUT_REGISTERS_EXCEPTION RESP",
        ]
    );

    let mut bytewise = Harness::new(Proto::Tcp, 502);
    let mut modbus = Modbus::default();
    for (is_orig, stream) in [(true, &requests), (false, &responses)] {
        for b in stream.iter() {
            bytewise.deliver(&mut modbus, is_orig, std::slice::from_ref(b));
        }
    }
    assert_eq!(rows(&bytewise), rows(&h));
    assert_eq!(bytewise.actions, [Action::Confirm("modbus")]);
}

#[test]
fn function_and_exception_names_follow_consts_zeek() {
    assert_eq!(build_func(0x03), "READ_HOLDING_REGISTERS");
    assert_eq!(build_func(0x83), "READ_HOLDING_REGISTERS_EXCEPTION");
    assert_eq!(build_func(0xAB), "ENCAP_INTERFACE_TRANSPORT_EXCEPTION");
    assert_eq!(build_func(0x1D), "unknown-29");
    assert_eq!(build_func(0x9C), "unknown-156");
    assert_eq!(exception_name(0x0B), "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND");
    assert_eq!(exception_name(0x07), "unknown-7");
}

#[test]
fn unknown_functions_and_high_bit_requests() {
    // An unknown function is logged by its number; a request with the high bit set is a message the script does
    // not write (only an exception response writes such a record).
    let h = run(&[(true, pdu(9, 0x1D, b"anything")), (true, pdu(9, 0x9C, &[1])), (false, pdu(9, 0x9C, &[0x07]))], 99);
    assert_eq!(
        rows(&h),
        [
            row(["100.000000", "9", "1", "unknown-29", "REQ", "-"]),
            row(["102.000000", "9", "1", "unknown-156", "RESP", "unknown-7"]),
        ]
    );
}

#[test]
fn malformed_pdus_are_violations() {
    let cases: [(&str, Vec<u8>, usize, &str); 6] = [
        (
            "a protocol id other than 0",
            [&[0, 1, 0, 7, 0, 6, 1, 3][..], &[0, 0, 0, 1]].concat(),
            0,
            "Binpac exception: binpac exception: &enforce violation : ModbusTCP_TransportHeader:pid",
        ),
        (
            "a request body shorter than its fields",
            pdu(1, 0x03, &[0, 0]),
            1,
            "Binpac exception: binpac exception: out_of_bound: ReadHoldingRegistersRequest",
        ),
        (
            "fewer register bytes than the quantity",
            pdu(1, 0x10, &[0, 1, 0, 3, 4, 0, 1, 0, 2]),
            1,
            "Binpac exception: binpac exception: out_of_bound: WriteMultipleRegistersRequest:registers",
        ),
        (
            "an odd register byte count",
            pdu(1, 0x10, &[0, 1, 0, 1, 3, 0, 1, 0]),
            1,
            "invalid value for modbus write multiple registers request byte count 3",
        ),
        (
            "a length below the unit and function",
            vec![0, 1, 0, 0, 0, 1, 1, 3],
            1,
            "Binpac exception: binpac exception: out_of_bound: ModbusTCP_PDU:body",
        ),
        (
            "a file record request cut inside a reference",
            pdu(1, 0x14, &[8, 6, 0, 4, 0, 1, 0, 2, 6]),
            1,
            "Binpac exception: binpac exception: out_of_bound: FileRecordRequest",
        ),
    ];
    for (what, message, logged, reason) in cases {
        let h = run(&[(true, message.clone()), (true, pdu(2, 0x03, &[0, 0, 0, 1]))], usize::MAX);
        assert_eq!(rows(&h).len(), logged, "{what}: the header's message is logged before the body fails");
        assert_eq!(h.actions, [Action::Violation(reason.to_string(), None)], "{what}");
    }
    // A response's odd register byte count, and an exception response without its code.
    let h = run(&[(false, pdu(1, 0x03, &[3, 0, 1, 0]))], usize::MAX);
    assert_eq!(
        h.actions,
        [Action::Violation("invalid value for modbus read holding register response byte count 3".into(), None)]
    );
    let h = run(&[(false, pdu(1, 0x83, &[]))], usize::MAX);
    assert!(rows(&h).is_empty());
    assert_eq!(
        h.actions,
        [Action::Violation("Binpac exception: binpac exception: out_of_bound: ModbusTCP_ExceptResponse".into(), None)]
    );
}

#[test]
fn a_longer_frame_than_the_fields_is_passed_over() {
    // binpac's `&length` frames the PDU; bytes after the function's fields are not looked at.
    let h = run(&[(true, pdu(1, 0x06, &[0, 1, 0, 3, 0xEE, 0xEE])), (true, pdu(2, 0x06, &[0, 1, 0, 3]))], usize::MAX);
    assert_eq!(rows(&h).len(), 2);
    assert_eq!(h.actions, [Action::Confirm("modbus")]);
}

#[test]
fn arbitrary_input_never_panics() {
    // A small deterministic generator: every byte pattern class reaches the parser (headers with pid 0 included).
    let mut rng = XorShift(0x2545_f491_4f6c_dd1du64);
    let mut next = || rng.next();
    for _ in 0..2000 {
        let len = (next() % 96) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for chunk in data.chunks_mut(12) {
            if let Some(pid) = chunk.get_mut(4..6) {
                pid.fill(0);
            }
        }
        fuzz(&data);
    }
}

/// Through the engine: port 502 attaches the analyzer, conn.log names `modbus`, and the rows carry the uid.
#[test]
fn through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];
    let session = session();
    let frames = tcp_exchange((CLIENT, 40000), (SERVER, 502), &session);
    let records = engine_records(&frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "modbus");
    let logged: Vec<[String; 3]> = records
        .iter()
        .filter(|r| r.schema.path == "modbus")
        .map(|r| ["uid", "func", "exception"].map(|f| field(r, f)))
        .collect();
    let uid = field(conn, "uid");
    assert_eq!(logged.len(), 6);
    assert!(logged.iter().all(|r| r[0] == uid));
    assert_eq!(logged[5][1..], ["READ_INPUT_REGISTERS_EXCEPTION".to_string(), "ILLEGAL_DATA_ADDRESS".to_string()]);
}
