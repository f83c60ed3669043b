use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::{Harness, XorShift};

const MASTER: u16 = 1;
const OUTSTATION: u16 = 10;
/// Control bytes: unconfirmed user data from the master (direction bit set) and from the outstation.
const FROM_MASTER: u8 = 0xC4;
const FROM_OUTSTATION: u8 = 0x44;
/// Transport bytes: a fragment's only frame (FIR and FIN), its first and its last of several.
const ONLY: u8 = 0xC0;
const FIRST: u8 = 0x40;
const LAST: u8 = 0x81;

/// A frame: the link header and its CRC, then the transport byte and `app` in blocks of 16 bytes, each with its
/// CRC (low byte first).
fn frame(ctrl: u8, transport: u8, app: &[u8]) -> Vec<u8> {
    let user = [&[transport][..], app].concat();
    let (dest, src) = if ctrl & DIR != 0 { (OUTSTATION, MASTER) } else { (MASTER, OUTSTATION) };
    let mut f = vec![0x05, 0x64, u8::try_from(5 + user.len()).expect("one frame's data"), ctrl];
    f.extend(dest.to_le_bytes());
    f.extend(src.to_le_bytes());
    f.extend(crc(&f).to_le_bytes());
    for block in user.chunks(16) {
        f.extend(block);
        f.extend(crc(block).to_le_bytes());
    }
    f
}

/// A class 1, 2, 3 and 0 poll (group 60, all objects): READ.
fn read_request() -> Vec<u8> {
    frame(FROM_MASTER, ONLY, &[0xC0, 0x01, 0x3C, 0x02, 0x06, 0x3C, 0x03, 0x06, 0x3C, 0x04, 0x06, 0x3C, 0x01, 0x06])
}

/// Its RESPONSE with internal indications `iin`: binary inputs with flags (group 1 variation 2), two blocks.
fn response(iin: [u8; 2]) -> Vec<u8> {
    let mut app = vec![0xC0, 0x81, iin[0], iin[1], 0x01, 0x02, 0x00, 0x00, 0x08];
    app.extend([0x81, 0x01, 0x81, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01]);
    frame(FROM_OUTSTATION, ONLY, &app)
}

/// dnp3.log's `ts`, `fc_request`, `fc_reply` and `iin` as TSV.
fn rows(h: &Harness) -> Vec<[String; 4]> {
    h.logged("dnp3").iter().map(|r| [0, 6, 7, 8].map(|i| r.values[i].to_tsv())).collect()
}

fn row(fields: [&str; 4]) -> [String; 4] {
    fields.map(String::from)
}

/// Each message at 100.0, 101.0, ..., split at `at`; the connection then ends.
fn run(messages: &[(bool, Vec<u8>)], at: usize) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 20000);
    let mut dnp3 = Dnp3::default();
    for (i, (is_orig, m)) in messages.iter().enumerate() {
        let (first, second) = m.split_at(at.min(m.len()));
        for piece in [first, second] {
            h.run(100.0 + i as f64, |ctx| dnp3.deliver(ctx, *is_orig, piece));
        }
    }
    h.finish(&mut dnp3);
    h
}

fn weirds(h: &Harness) -> Vec<&str> {
    h.weirds.iter().map(|w| w.name.as_str()).collect()
}

#[test]
fn crc_is_dnp3s() {
    // The link status request to outstation 1 from master 1024, as commonly captured: `05 64 05 C0 01 00 00 04 E9 21`.
    let header = [0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04];
    assert_eq!(crc(&header).to_le_bytes(), [0xE9, 0x21]);
    assert_eq!(frame_len(5 + 15), Some(10 + 15 + 2));
    assert_eq!(frame_len(5 + 16), Some(10 + 16 + 2));
    assert_eq!(frame_len(5 + 17), Some(10 + 17 + 4));
    assert_eq!(frame_len(255), Some(292));
    assert_eq!(frame_len(3), None);
}

#[test]
fn a_read_and_its_response_are_a_row() {
    let h = run(&[(true, read_request()), (false, response([0, 0]))], usize::MAX);
    assert_eq!(rows(&h), [row(["101.000000", "READ", "RESPONSE", "0"])]);
    assert_eq!(h.actions, [Action::Confirm("dnp3_tcp")]);
    assert!(h.weirds.is_empty());
    // The internal indications are read as one big-endian number (IIN1 first): device restart, need time.
    let h = run(&[(false, response([0x90, 0x00]))], usize::MAX);
    assert_eq!(rows(&h), [row(["100.000000", "-", "RESPONSE", "36864"])]);
}

#[test]
fn frames_split_at_every_byte_log_the_same() {
    let request = read_request();
    let reply = response([0, 0x02]);
    for at in 0..=reply.len() {
        let h = run(&[(true, request.clone()), (false, reply.clone())], at);
        assert_eq!(rows(&h), [row(["101.000000", "READ", "RESPONSE", "2"])], "split at {at}");
        assert_eq!(h.actions, [Action::Confirm("dnp3_tcp")], "split at {at}");
        assert!(h.weirds.is_empty(), "split at {at}");
    }
    // Both frames of each side in one delivery, and the stream a byte at a time.
    let both = [request.clone(), request.clone()].concat();
    let h = run(&[(true, both.clone()), (false, reply.clone())], usize::MAX);
    assert_eq!(rows(&h), [row(["101.000000", "READ", "RESPONSE", "2"])]);
    let mut h = Harness::new(Proto::Tcp, 20000);
    let mut dnp3 = Dnp3::default();
    for (is_orig, stream) in [(true, &both), (false, &reply)] {
        for b in stream.iter() {
            h.deliver(&mut dnp3, is_orig, std::slice::from_ref(b));
        }
    }
    assert_eq!(rows(&h).len(), 1);
}

#[test]
fn a_fragment_over_several_frames_is_parsed_at_its_last() {
    let first = frame(FROM_OUTSTATION, FIRST, &[0xC0, 0x82, 0x00, 0x10, 0x02, 0x01]);
    let last = frame(FROM_OUTSTATION, LAST, &[0x00, 0x00, 0x01, 0x01]);
    // A request without a response is written when the connection ends.
    let select = frame(FROM_MASTER, ONLY, &[0xC1, 0x03]);
    let h = run(&[(false, first), (false, last), (true, select)], usize::MAX);
    assert_eq!(
        rows(&h),
        [row(["101.000000", "-", "UNSOLICITED_RESPONSE", "16"]), row(["102.000000", "SELECT", "-", "-"])]
    );
}

#[test]
fn link_only_frames_and_function_names() {
    // A link status request (no user data) is passed over, with what follows it in the same delivery.
    let mut link_only = vec![0x05, 0x64, 0x05, 0xC9, 0x0A, 0x00, 0x01, 0x00];
    link_only.extend(crc(&link_only).to_le_bytes());
    let h = run(&[(true, [link_only.clone(), read_request()].concat()), (true, read_request())], usize::MAX);
    assert_eq!(rows(&h), [row(["101.000000", "READ", "-", "-"])]);
    assert!(h.weirds.is_empty());
    assert_eq!(function_name(0x22), "unknown-34");
    assert_eq!(function_name(0x83), "AUTHENTICATE_RESPONSE");
}

#[test]
fn broken_frames() {
    // Not DNP3: a weird, the analysis stops, no violation.
    let h = run(&[(true, b"GET / HTTP/1.1\r\n\r\n".to_vec()), (true, read_request())], usize::MAX);
    assert_eq!((weirds(&h), h.actions.clone(), rows(&h).len()), (vec!["dnp3_header_lacks_magic"], vec![], 0));
    // A corrupt header: a weird and a violation.
    let mut corrupt = read_request();
    corrupt[8] ^= 1;
    let h = run(&[(true, corrupt)], usize::MAX);
    assert_eq!(weirds(&h), ["dnp3_corrupt_header_checksum"]);
    assert_eq!(h.actions, [Action::Violation("broken_checksum".into(), None)]);
    // A corrupt block: confirmed by its header, then a weird only.
    let mut corrupt = response([0, 0]);
    corrupt[15] ^= 1;
    let h = run(&[(true, read_request()), (false, corrupt), (false, response([0, 0]))], usize::MAX);
    assert_eq!(weirds(&h), ["dnp3_corrupt_app_chunk_checksum"]);
    assert_eq!(h.actions, [Action::Confirm("dnp3_tcp")]);
    assert_eq!(rows(&h), [row(["100.000000", "READ", "-", "-"])], "the open request is written at the end");
    // A continuation whose first frame was never seen.
    let h = run(&[(false, frame(FROM_OUTSTATION, LAST, &[0xC0, 0x81, 0, 0]))], usize::MAX);
    assert_eq!(weirds(&h), ["dnp3_first_application_layer_chunk_missing"]);
    // A response too short for its application header: binpac's exception.
    let h = run(&[(false, frame(FROM_OUTSTATION, ONLY, &[0xC0, 0x81]))], usize::MAX);
    assert_eq!(
        h.actions,
        [
            Action::Confirm("dnp3_tcp"),
            Action::Violation(
                "Binpac exception: binpac exception: out_of_bound: DNP3_Application_Response_Header".into(),
                None
            )
        ]
    );
    // A link length below 5: DNP3.cc's analyzer error, silently.
    let mut short = vec![0x05, 0x64, 0x03, 0xC4, 0x0A, 0x00, 0x01, 0x00];
    short.extend(crc(&short).to_le_bytes());
    short.extend([0xC0; 8]);
    let h = run(&[(true, short)], usize::MAX);
    assert_eq!((weirds(&h), h.actions.clone()), (vec![], vec![Action::Confirm("dnp3_tcp")]));
    // A master's frame from the responder is logged, with a weird.
    let h = run(&[(false, frame(FROM_MASTER, ONLY, &[0xC0, 0x81, 0, 0]))], usize::MAX);
    assert_eq!(weirds(&h), ["dnp3_unexpected_flow_direction"]);
    assert_eq!(rows(&h).len(), 1);
}

#[test]
fn arbitrary_input_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15u64);
    let mut next = || rng.next();
    for _ in 0..2000 {
        let len = (next() % 400) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Mostly valid headers, so that the framing beyond them is reached.
        if let Some(start) = data.get_mut(2..12) {
            let mut header = [0x05, 0x64, start[2], start[3], 0, 0, 0, 0];
            header[4..].copy_from_slice(&start[4..8]);
            start[..8].copy_from_slice(&header);
            let sum = crc(&header).to_le_bytes();
            start[8..10].copy_from_slice(&sum);
        }
        fuzz(&data);
    }
}

/// Through the engine: port 20000 attaches the analyzer, conn.log names `dnp3_tcp`, and the row carries the uid.
#[test]
fn through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];
    let (request, reply) = (read_request(), response([0, 0]));
    let frames = tcp_exchange((CLIENT, 40000), (SERVER, 20000), &[(true, &request), (false, &reply)]);
    let records = engine_records(&frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "dnp3_tcp");
    let logged: Vec<[String; 4]> = records
        .iter()
        .filter(|r| r.schema.path == "dnp3")
        .map(|r| ["uid", "fc_request", "fc_reply", "iin"].map(|f| field(r, f)))
        .collect();
    assert_eq!(logged, [[field(conn, "uid"), "READ".into(), "RESPONSE".into(), "0".into()]]);
}
