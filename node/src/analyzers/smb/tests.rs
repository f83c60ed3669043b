//! SMB2 messages built byte by byte over NBSS ([MS-SMB2] layouts, shaped like Zeek's smb2 test trace), through the
//! analyzer; rows as in the btest baselines' smb_mapping.log and smb_files.log.

use super::*;
use crate::analyzers::Action as EngineAction;
use crate::analyzers::testing::{Harness, XorShift};

pub(super) const CLIENT: bool = true;
pub(super) const SERVER: bool = false;

/// An NBSS session message around `body`.
pub(super) fn nbss(body: &[u8]) -> Vec<u8> {
    let len = body.len();
    [&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8][..], body].concat()
}

/// An SMB2 message: the 64-byte header (a response when it comes from the server) and the command's record.
fn smb2(from_client: bool, command: u16, status: u32, mid: u64, tid: u32, record: &[u8]) -> Vec<u8> {
    let mut m = b"\xfeSMB".to_vec();
    m.extend(64u16.to_le_bytes());
    m.extend(1u16.to_le_bytes()); // credit charge
    m.extend(status.to_le_bytes());
    m.extend(command.to_le_bytes());
    m.extend(1u16.to_le_bytes()); // credits
    m.extend((if from_client { 0u32 } else { 1 }).to_le_bytes());
    m.extend(0u32.to_le_bytes()); // next command
    m.extend(mid.to_le_bytes());
    m.extend(0xfeffu32.to_le_bytes()); // process id
    m.extend(tid.to_le_bytes());
    m.extend(0x4000_0000_0001u64.to_le_bytes()); // session id
    m.extend([0; 16]);
    m.extend(record);
    nbss(&m)
}

pub(super) fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A FILETIME for a Unix time.
pub(super) fn filetime(unix: u64) -> u64 {
    (unix + 11_644_473_600) * 10_000_000
}

fn negotiate_request() -> Vec<u8> {
    let mut r = vec![36, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    r.extend([0x5a; 16]);
    r.extend([0; 8]);
    r.extend([0x02, 0x02, 0x10, 0x02]);
    smb2(CLIENT, 0, 0, 0, 0, &r)
}

fn negotiate_response() -> Vec<u8> {
    negotiate_response_with(b"\x60\x02\x05\x00")
}

fn negotiate_response_with(blob: &[u8]) -> Vec<u8> {
    let mut r = vec![65, 0, 1, 0, 0x10, 0x02, 0, 0];
    r.extend([0x33; 16]);
    r.extend([0; 4]); // capabilities
    r.extend([0, 0, 1, 0].repeat(3)); // max transact, read, write
    r.extend(filetime(1_466_000_000).to_le_bytes());
    r.extend(0u64.to_le_bytes());
    r.extend(128u16.to_le_bytes());
    r.extend(u16::try_from(blob.len()).unwrap().to_le_bytes());
    r.extend(0u32.to_le_bytes());
    r.extend(blob);
    smb2(SERVER, 0, 0, 0, 0, &r)
}

fn session_setup_request_with(mid: u64, blob: &[u8]) -> Vec<u8> {
    let mut r = vec![25, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    r.extend(88u16.to_le_bytes());
    r.extend(u16::try_from(blob.len()).unwrap().to_le_bytes());
    r.extend([0; 8]); // previous session id
    r.extend(blob);
    smb2(CLIENT, 1, 0, mid, 0, &r)
}

fn session_setup_response_with(mid: u64, status: u32, blob: &[u8]) -> Vec<u8> {
    let mut r = vec![9, 0, 0, 0];
    r.extend(72u16.to_le_bytes());
    r.extend(u16::try_from(blob.len()).unwrap().to_le_bytes());
    r.extend(blob);
    smb2(SERVER, 1, status, mid, 0, &r)
}

fn session_setup_request() -> Vec<u8> {
    let mut r = vec![25, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    r.extend(88u16.to_le_bytes());
    r.extend(8u16.to_le_bytes());
    r.extend([0; 8]); // previous session id
    r.extend(b"NTLMSSP\0");
    smb2(CLIENT, 1, 0, 1, 0, &r)
}

fn session_setup_response() -> Vec<u8> {
    let mut r = vec![9, 0, 0, 0];
    r.extend(72u16.to_le_bytes());
    r.extend(4u16.to_le_bytes());
    r.extend(b"\xa1\x02\x05\x00");
    smb2(SERVER, 1, 0, 1, 0, &r)
}

fn tree_connect_request(mid: u64, path: &str) -> Vec<u8> {
    let path = utf16(path);
    let mut r = vec![9, 0, 0, 0];
    r.extend(72u16.to_le_bytes());
    r.extend((path.len() as u16).to_le_bytes());
    r.extend(path);
    smb2(CLIENT, 3, 0, mid, 0, &r)
}

fn tree_connect_response(mid: u64, tid: u32, share_type: u8) -> Vec<u8> {
    let mut r = vec![16, 0, share_type, 0];
    r.extend([0; 4]);
    r.extend([0; 4]);
    r.extend(0x001f_01ffu32.to_le_bytes());
    smb2(SERVER, 3, 0, mid, tid, &r)
}

fn create_request(mid: u64, tid: u32, name: &str, create_options: u32) -> Vec<u8> {
    let name = utf16(name);
    let mut r = vec![57, 0, 0, 0, 2, 0, 0, 0];
    r.extend([0; 16]);
    r.extend(0x0012_0089u32.to_le_bytes()); // access mask
    r.extend(0u32.to_le_bytes()); // attributes
    r.extend(7u32.to_le_bytes()); // share access
    r.extend(1u32.to_le_bytes()); // disposition: open
    r.extend(create_options.to_le_bytes());
    r.extend(120u16.to_le_bytes());
    r.extend((name.len() as u16).to_le_bytes());
    r.extend(0u32.to_le_bytes());
    r.extend(0u32.to_le_bytes());
    r.extend(name);
    smb2(CLIENT, 5, 0, mid, tid, &r)
}

fn create_response(mid: u64, tid: u32, fid: (u64, u64), size: u64, modified: u64) -> Vec<u8> {
    let mut r = vec![89, 0, 0, 0, 1, 0, 0, 0];
    r.extend(filetime(1_466_000_000).to_le_bytes()); // created
    r.extend(filetime(1_466_000_300).to_le_bytes()); // accessed
    r.extend(modified.to_le_bytes());
    r.extend(filetime(1_466_000_200).to_le_bytes()); // changed
    r.extend(4096u64.to_le_bytes());
    r.extend(size.to_le_bytes());
    r.extend(0x20u32.to_le_bytes());
    r.extend(0u32.to_le_bytes());
    r.extend(fid.0.to_le_bytes());
    r.extend(fid.1.to_le_bytes());
    r.extend(0u32.to_le_bytes());
    r.extend(0u32.to_le_bytes());
    smb2(SERVER, 5, 0, mid, tid, &r)
}

fn file_id(fid: (u64, u64)) -> Vec<u8> {
    [fid.0.to_le_bytes(), fid.1.to_le_bytes()].concat()
}

fn read_request(mid: u64, tid: u32, fid: (u64, u64)) -> Vec<u8> {
    let mut r = vec![49, 0, 0, 0];
    r.extend(65536u32.to_le_bytes());
    r.extend(0u64.to_le_bytes());
    r.extend(file_id(fid));
    r.extend([0; 12]);
    r.extend([0; 4]); // no channel info
    r.push(0);
    smb2(CLIENT, 8, 0, mid, tid, &r)
}

fn read_response(mid: u64, tid: u32, data: &[u8]) -> Vec<u8> {
    let mut r = vec![17, 0];
    r.extend(80u16.to_le_bytes());
    r.extend((data.len() as u32).to_le_bytes());
    r.extend([0; 8]);
    r.extend(data);
    smb2(SERVER, 8, 0, mid, tid, &r)
}

fn close_request(mid: u64, tid: u32, fid: (u64, u64)) -> Vec<u8> {
    let mut r = vec![24, 0, 0, 0, 0, 0, 0, 0];
    r.extend(file_id(fid));
    smb2(CLIENT, 6, 0, mid, tid, &r)
}

fn close_response(mid: u64, tid: u32) -> Vec<u8> {
    let mut r = vec![60, 0, 0, 0, 0, 0, 0, 0];
    r.extend([0; 52]);
    smb2(SERVER, 6, 0, mid, tid, &r)
}

fn tree_disconnect(from_client: bool, mid: u64, tid: u32) -> Vec<u8> {
    smb2(from_client, 4, 0, mid, tid, &[4, 0, 0, 0])
}

fn set_info_request(mid: u64, tid: u32, fid: (u64, u64), level: u8, info: &[u8]) -> Vec<u8> {
    let mut r = vec![33, 0, 1, level];
    r.extend((info.len() as u32).to_le_bytes());
    r.extend(96u16.to_le_bytes());
    r.extend([0; 6]);
    r.extend(file_id(fid));
    r.extend(info);
    smb2(CLIENT, 17, 0, mid, tid, &r)
}

const FID: (u64, u64) = (0x11, 0xffff_0000_0022);

/// The session of the task: negotiate, session setup, a disk share and IPC$, a file opened, read and closed on the
/// share, the share disconnected.
pub(super) fn session() -> Vec<(bool, Vec<u8>)> {
    vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response()),
        (CLIENT, session_setup_request()),
        (SERVER, session_setup_response()),
        (CLIENT, tree_connect_request(2, r"\\server\share")),
        (SERVER, tree_connect_response(2, 1, 1)),
        (CLIENT, tree_connect_request(3, r"\\server\IPC$")),
        (SERVER, tree_connect_response(3, 5, 2)),
        (CLIENT, create_request(4, 1, r"docs\report.txt", 0x40)),
        (SERVER, create_response(4, 1, FID, 1234, filetime(1_466_000_100))),
        (CLIENT, read_request(5, 1, FID)),
        (SERVER, read_response(5, 1, b"hello")),
        (CLIENT, close_request(6, 1, FID)),
        (SERVER, close_response(6, 1)),
        (CLIENT, tree_disconnect(CLIENT, 7, 1)),
        (SERVER, tree_disconnect(SERVER, 7, 1)),
    ]
}

/// smb_mapping rows, smb_files rows (as TSV fields), the actions, and the harness with the rest.
pub(super) type Outcome = (Vec<Vec<String>>, Vec<Vec<String>>, Vec<EngineAction>, Harness);

/// Runs deliveries (each at its own time, 1.0 + its index) and returns the rows of both logs as TSV and the actions.
pub(super) fn run(deliveries: &[(bool, Vec<u8>, f64)]) -> Outcome {
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut a = Smb::default();
    for (is_orig, data, ts) in deliveries {
        h.run(*ts, |ctx| a.deliver(ctx, *is_orig, data));
    }
    h.finish(&mut a);
    let rows = |path| h.logged(path).iter().map(|r| r.values.iter().map(Value::to_tsv).collect()).collect();
    let (mapping, files) = (rows("smb_mapping"), rows("smb_files"));
    let actions = std::mem::take(&mut h.actions);
    (mapping, files, actions, h)
}

pub(super) fn timed(messages: Vec<(bool, Vec<u8>)>) -> Vec<(bool, Vec<u8>, f64)> {
    messages.into_iter().enumerate().map(|(i, (o, m))| (o, m, 1.0 + i as f64)).collect()
}

pub(super) fn row(fields: &[&str]) -> Vec<String> {
    ["4.000000", "CTest", "10.0.0.1", "40000", "192.0.2.1", "445"].iter().chain(fields).map(|s| s.to_string()).collect()
}

pub(super) fn with_ts(ts: &str, mut row: Vec<String>) -> Vec<String> {
    row[0] = ts.into();
    row
}

#[test]
fn a_session_maps_two_trees_and_logs_the_opened_file() {
    let (mapping, files, actions, h) = run(&timed(session()));
    assert_eq!(
        mapping,
        [
            with_ts("5.000000", row(&[r"\\\\server\\share", "-", "-", "DISK"])),
            with_ts("7.000000", row(&[r"\\\\server\\IPC$", "-", "-", "PIPE"])),
        ],
        "a mapping's time is its request's; backslashes are escaped in TSV"
    );
    assert_eq!(
        files,
        [with_ts(
            "9.000000",
            row(&[
                "-",
                "SMB::FILE_OPEN",
                r"\\\\server\\share",
                r"docs\\report.txt",
                "1234",
                "-",
                "1466000100.000000",
                "1466000300.000000",
                "1466000000.000000",
                "1466000200.000000",
            ])
        )],
        "only the open is logged: reads and closes of a disk file are not in logged_file_actions"
    );
    assert_eq!(actions, [EngineAction::Confirm("smb")]);
    assert!(h.weirds.is_empty());
}

#[test]
fn every_split_of_every_message_gives_the_same_logs() {
    let whole = run(&timed(session()));
    let messages = session();
    // The first message must come whole: SMB.cc starts only on a delivery that begins with an SMB header.
    for i in 1..messages.len() {
        for at in 1..messages[i].1.len() {
            let mut deliveries = Vec::new();
            for (j, (o, m)) in messages.iter().enumerate() {
                let ts = 1.0 + j as f64;
                if i == j {
                    deliveries.push((*o, m[..at].to_vec(), ts));
                    deliveries.push((*o, m[at..].to_vec(), ts));
                } else {
                    deliveries.push((*o, m.clone(), ts));
                }
            }
            let split = run(&deliveries);
            assert_eq!((&split.0, &split.1), (&whole.0, &whole.1), "message {i} split at {at}");
            assert_eq!(split.2, [EngineAction::Confirm("smb")]);
        }
    }
}

#[test]
fn several_messages_in_one_delivery_are_all_parsed() {
    let all: Vec<u8> = session().into_iter().filter(|(o, _)| *o).flat_map(|(_, m)| m).collect();
    let replies: Vec<u8> = session().into_iter().filter(|(o, _)| !*o).flat_map(|(_, m)| m).collect();
    let (mapping, files, actions, _) = run(&[(CLIENT, all, 1.0), (SERVER, replies, 2.0)]);
    // Without the responses in between, each tree id's first use files a fresh tree; the responses then find the
    // requests' trees (by message id) and log them.
    assert_eq!(mapping.len(), 2);
    assert_eq!(files.len(), 1);
    assert!(actions.is_empty(), "two deliveries do not confirm");
}

#[test]
fn deliveries_without_an_smb_header_are_dropped_until_one_has_it() {
    let mut deliveries = timed(session());
    // A first delivery that is the start of a message but too short for the check: dropped, and with it the message.
    let first = deliveries[0].1.clone();
    deliveries[0].1 = first[..6].to_vec();
    deliveries.insert(1, (CLIENT, first[6..].to_vec(), 1.0));
    let (mapping, files, actions, _) = run(&deliveries);
    assert_eq!((mapping.len(), files.len()), (2, 1), "the rest parses once a delivery starts with a header");
    assert_eq!(actions, [EngineAction::Confirm("smb")]);
}

#[test]
fn a_gap_needs_a_new_header() {
    let mut h = Harness::new(Proto::Tcp, 445);
    let mut a = Smb::default();
    let request = tree_connect_request(2, r"\\server\share");
    h.deliver(&mut a, CLIENT, &negotiate_request());
    h.deliver(&mut a, CLIENT, &request[..20]);
    h.run(1.0, |ctx| a.undelivered(ctx, CLIENT, 10));
    // The rest of the cut message is not a header: dropped. The next message is.
    h.deliver(&mut a, CLIENT, &request[30..]);
    h.deliver(&mut a, CLIENT, &request);
    h.deliver(&mut a, SERVER, &tree_connect_response(2, 1, 1));
    assert_eq!(h.logged("smb_mapping").len(), 1);
    assert_eq!(h.actions, [EngineAction::Confirm("smb")]);
}

#[test]
fn share_root_print_rename_and_delete_on_close() {
    let rename = [&[0u8; 16][..], &14u32.to_le_bytes(), &utf16("new.txt")].concat();
    let messages = vec![
        (CLIENT, tree_connect_request(2, r"\\10.0.0.12\smb2")),
        (SERVER, tree_connect_response(2, 1, 1)),
        (CLIENT, create_request(3, 1, "", 0)),
        (SERVER, create_response(3, 1, (1, 1), 8192, filetime(1_466_000_100))),
        (CLIENT, create_request(4, 1, "old.txt", 0)),
        (SERVER, create_response(4, 1, (2, 2), 0, 0)),
        (CLIENT, set_info_request(5, 1, (2, 2), 0x0a, &rename)),
        (CLIENT, set_info_request(6, 1, (2, 2), 0x0d, &[1])),
        (CLIENT, create_request(7, 1, "tmp", 0x1000)),
        (SERVER, create_response(7, 1, (3, 3), 0, 0)),
        (CLIENT, tree_connect_request(8, r"\\10.0.0.12\printer")),
        (SERVER, tree_connect_response(8, 2, 3)),
        (CLIENT, create_request(9, 2, "job", 0)),
        (SERVER, create_response(9, 2, (4, 4), 0, 0)),
        (CLIENT, close_request(10, 2, (4, 4))),
        // Opening the same file again with the same times is not logged again.
        (CLIENT, create_request(11, 1, "", 0)),
        (SERVER, create_response(11, 1, (1, 1), 8192, filetime(1_466_000_100))),
    ];
    let (_, files, _, _) = run(&timed(messages));
    let summary: Vec<_> = files.iter().map(|r| (r[0].as_str(), r[7].as_str(), r[9].as_str(), r[11].as_str())).collect();
    assert_eq!(
        summary,
        [
            ("3.000000", "SMB::FILE_OPEN", "<share_root>", "-"),
            ("5.000000", "SMB::FILE_OPEN", "old.txt", "-"),
            ("5.000000", "SMB::FILE_RENAME", "new.txt", "old.txt"),
            ("5.000000", "SMB::FILE_DELETE", "new.txt", "old.txt"),
            ("9.000000", "SMB::FILE_OPEN", "tmp", "-"),
            ("9.000000", "SMB::FILE_DELETE", "tmp", "-"),
            ("13.000000", "SMB::PRINT_OPEN", "job", "-"),
            ("13.000000", "SMB::PRINT_CLOSE", "job", "-"),
        ]
    );
    assert_eq!(
        files[0][6..12],
        row(&[r"-", "SMB::FILE_OPEN", r"\\\\10.0.0.12\\smb2", "<share_root>", "8192", "-"])[6..]
    );
    assert_eq!(files[1][12], "-", "times before 1970 are not logged");
}

#[test]
fn a_pipe_name_on_an_unmapped_tree_marks_it_a_pipe() {
    let (_, files, _, _) = run(&timed(vec![
        (CLIENT, negotiate_request()),
        (CLIENT, create_request(4, 9, "srvsvc", 0)),
        (SERVER, create_response(4, 9, FID, 0, 0)),
        (CLIENT, create_request(5, 9, "other", 0)),
        (SERVER, create_response(5, 9, (7, 7), 0, 0)),
    ]));
    assert!(files.is_empty(), "PIPE_OPEN is not logged: {files:?}");
}

#[test]
fn errors_and_smb1_raise_no_events() {
    let mut failed = tree_connect_response(2, 1, 1);
    failed[12..16].copy_from_slice(&0xc000_0022u32.to_le_bytes()); // STATUS_ACCESS_DENIED
    failed.truncate(4 + 64 + 8);
    let len = failed.len() - 4;
    failed[3] = len as u8;
    let smb1 =
        nbss(b"\xffSMB\x72\0\0\0\0\x18\x53\xc8\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xff\xfe\0\0\0\0\0\x0c\0\x02NT LM 0.12\0");
    let (mapping, _, actions, _) =
        run(&timed(vec![(CLIENT, smb1), (CLIENT, tree_connect_request(2, r"\\server\share")), (SERVER, failed)]));
    assert!(mapping.is_empty());
    assert_eq!(actions, [EngineAction::Confirm("smb")]);
}

#[test]
fn malformed_messages_are_violations() {
    let request = tree_connect_request(2, r"\\server\share");
    let cut = |mut m: Vec<u8>, len: usize| {
        m.truncate(len + 4);
        m[1..4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        m
    };
    let mut far_path = request.clone();
    far_path[4 + 64 + 4] = 200;
    let mut long_name = create_request(4, 1, "a", 0);
    long_name[4 + 64 + 46] = 0xff;
    for (broken, reason) in [
        (cut(request.clone(), 2), "out_of_bound: SMB_Protocol_Identifier: 4 > 2"),
        (cut(request.clone(), 40), "out_of_bound: SMB2_Header: 60 > 36"),
        (cut(request.clone(), 70), "out_of_bound: SMB2_tree_connect_request: 8 > 6"),
        (cut(request.clone(), 80), "out_of_bound: SMB2_tree_connect_request: 36 > 16"),
        (far_path, "out_of_bound: SMB2_tree_connect_request: 136 > 36"),
        (long_name, "out_of_bound: SMB2_create_request: 311 > 58"),
        (nbss(b"\xfdSMB\0\0\0\0\0\0"), "out_of_bound: SMB2_transform_header: 52 > 6"),
    ] {
        // After a good message: a delivery needs an SMB header only to start the analysis.
        let (mapping, _, actions, _) = run(&[(CLIENT, negotiate_request(), 1.0), (CLIENT, broken.clone(), 2.0)]);
        assert!(mapping.is_empty());
        assert_eq!(
            actions,
            [EngineAction::Violation(format!("Binpac exception: binpac exception: {reason}"), None)],
            "{broken:?}"
        );
    }
}

/// Valid messages with bytes flipped and random bytes, through the fuzz entry point: nothing panics.
#[test]
fn mutated_messages_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d_u64);
    let mut next = || rng.next();
    let sessions = [session(), pipe_session("srvsvc", SRVSVC, r"\PIPE\srvsvc", 0x0f)];
    for round in 0..600 {
        let mut deliveries = timed(sessions[round % 2].clone());
        for (_, m, _) in deliveries.iter_mut() {
            // Every other pipe session keeps the NBSS and SMB2 headers whole, so that the mutations reach the
            // records and the DCE/RPC PDUs in them.
            let from = if round % 4 == 1 { 68.min(m.len() - 1) } else { 0 };
            for _ in 0..3 {
                let at = from + (next() as usize) % (m.len() - from);
                m[at] = next() as u8;
            }
        }
        run(&deliveries);
    }
    for _ in 0..200 {
        let data: Vec<u8> = (0..512).map(|_| next() as u8).collect();
        fuzz(&data);
    }
}

/// Through the engine on 445: the analyzer attaches by port, its third delivery confirms `smb`, and the logs carry
/// the connection's uid.
#[test]
fn through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    let messages = session();
    let frames = tcp_exchange(([10, 0, 0, 11], 49208), ([10, 0, 0, 12], 445), &messages);
    let records = engine_records(&frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "smb");
    let mapping: Vec<_> = records.iter().filter(|r| r.schema.path == "smb_mapping").collect();
    let files: Vec<_> = records.iter().filter(|r| r.schema.path == "smb_files").collect();
    assert_eq!((mapping.len(), files.len()), (2, 1));
    for r in mapping.iter().chain(&files) {
        assert_eq!(field(r, "uid"), field(conn, "uid"));
    }
    assert_eq!(field(files[0], "name"), r"docs\\report.txt");
}

/// An NTLM authentication in SPNEGO over two session setup exchanges (the first answered
/// STATUS_MORE_PROCESSING_REQUIRED), then a tree connect: the security blobs go to GSSAPI and NTLM, ntlm.log has
/// the record the final accept-completed writes, and conn.log the child analyzers' services.
fn ntlm_session(final_status: u32, final_state: u8) -> Vec<(bool, Vec<u8>)> {
    use crate::analyzers::ntlm::build::{MS_KRB5_OID, NTLMSSP_OID, neg_token_init2, spnego_ntlm_exchange};
    let [init, challenge, authenticate, done] = spnego_ntlm_exchange(final_state);
    vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response_with(&neg_token_init2(&[MS_KRB5_OID, NTLMSSP_OID]))),
        (CLIENT, session_setup_request_with(1, &init)),
        (SERVER, session_setup_response_with(1, 0xc000_0016, &challenge)),
        (CLIENT, session_setup_request_with(2, &authenticate)),
        (SERVER, session_setup_response_with(2, final_status, &done)),
        (CLIENT, tree_connect_request(3, r"\\server\IPC$")),
        (SERVER, tree_connect_response(3, 5, 2)),
    ]
}

#[test]
fn session_setup_security_blobs_go_to_gssapi_and_ntlm() {
    let (mapping, _, actions, h) = run(&timed(ntlm_session(0, 0)));
    assert_eq!(mapping.len(), 1);
    assert_eq!(h.timed_columns("ntlm"), [crate::analyzers::ntlm::build::user1_row("3.000000")]);
    // GSSAPI confirms at the negotiate response's blob, NTLM inside the first session setup request, which is the
    // third delivery that confirms SMB.
    assert_eq!(actions, [EngineAction::Confirm("gssapi"), EngineAction::Confirm("ntlm"), EngineAction::Confirm("smb")]);
    // Every message after the first (which must start a delivery) in pieces of every size: the same record.
    let messages = ntlm_session(0, 0);
    for size in 1..=40 {
        let stream: Vec<(bool, Vec<u8>, f64)> = messages
            .iter()
            .enumerate()
            .flat_map(|(i, (o, m))| {
                let size = if i == 0 { m.len() } else { size };
                m.chunks(size).map(move |c| (*o, c.to_vec(), 1.0 + i as f64))
            })
            .collect();
        let (_, _, _, split) = run(&stream);
        assert_eq!(split.timed_columns("ntlm"), h.timed_columns("ntlm"), "pieces of {size}");
    }
}

#[test]
fn a_logon_failure_leaves_success_unset_until_the_end() {
    // STATUS_LOGON_FAILURE is an error response: no blob, no negState; the record is written at the end.
    let mut messages = ntlm_session(0xc000_006d, 2);
    messages.truncate(6);
    let (_, _, _, h) = run(&timed(messages));
    let ntlm = h.timed_columns("ntlm");
    assert_eq!(ntlm.len(), 1);
    assert_eq!((ntlm[0][1].as_str(), ntlm[0][7].as_str()), ("User1", "-"));
}

/// Through the engine: conn.log's service has the child analyzers in the order they confirmed, ntlm.log the
/// connection's uid.
#[test]
fn ntlm_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    let messages = ntlm_session(0, 0);
    let frames = tcp_conversation(([192, 168, 1, 107], 60387), ([192, 168, 1, 108], 445), &messages);
    let records = engine_records(&frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "gssapi,ntlm,smb");
    let ntlm: Vec<_> = records.iter().filter(|r| r.schema.path == "ntlm").collect();
    assert_eq!(ntlm.len(), 1);
    assert_eq!(field(ntlm[0], "uid"), field(conn, "uid"));
    assert_eq!(field(ntlm[0], "server_dns_computer_name"), "Stratolab-DC.StratoLab.org");
    assert_eq!(field(ntlm[0], "success"), "T");
}

// DCE/RPC over named pipes (smb-pipe.pac's `forward_dce_rpc`).

use crate::analyzers::dce_rpc::ptype;
use crate::analyzers::dce_rpc::tests::{bind_ack_body, bind_body, pdu, request_body, response_body};

const PIPE_FID: (u64, u64) = (0x0000_0005_0000_0009, 0xffff_ffff_0000_0001);
const SRVSVC: &str = "4b324fc8-1670-01d3-1278-5a47bf6ee188";
const EFSRPC2: &str = "c681d488-d850-11d0-8c52-00c04fd90f7e";
const TRANSCEIVE: u32 = 0x0011_c017;

/// `SMB2_write_request` with its data right after the record (data offset 64 + 48).
fn write_request(mid: u64, tid: u32, fid: (u64, u64), offset: u64, data: &[u8]) -> Vec<u8> {
    let mut r = vec![49, 0];
    r.extend(112u16.to_le_bytes());
    r.extend((data.len() as u32).to_le_bytes());
    r.extend(offset.to_le_bytes());
    r.extend(file_id(fid));
    r.extend([0; 16]); // channel, remaining, channel info, flags
    r.extend(data);
    smb2(CLIENT, 9, 0, mid, tid, &r)
}

fn write_response(mid: u64, tid: u32, count: usize) -> Vec<u8> {
    let mut r = vec![17, 0, 0, 0];
    r.extend((count as u32).to_le_bytes());
    r.extend([0; 8]);
    smb2(SERVER, 9, 0, mid, tid, &r)
}

/// `SMB2_ioctl_request` as Windows sends FSCTL_PIPE_TRANSCEIVE: the input right after the record (offset 120),
/// the output offset the same with no output.
fn ioctl_request(mid: u64, tid: u32, fid: (u64, u64), ctl_code: u32, input: &[u8]) -> Vec<u8> {
    let mut r = vec![57, 0, 0, 0];
    r.extend(ctl_code.to_le_bytes());
    r.extend(file_id(fid));
    for field in [120, input.len() as u32, 0, 120, 0, 4280, 1, 0] {
        r.extend(field.to_le_bytes());
    }
    r.extend(input);
    smb2(CLIENT, 11, 0, mid, tid, &r)
}

/// `SMB2_ioctl_response`: no input, the output at offset 112.
fn ioctl_response(mid: u64, tid: u32, fid: (u64, u64), status: u32, output: &[u8]) -> Vec<u8> {
    let mut r = vec![49, 0, 0, 0];
    r.extend(TRANSCEIVE.to_le_bytes());
    r.extend(file_id(fid));
    for field in [112, 0, 112, output.len() as u32, 0, 0] {
        r.extend(field.to_le_bytes());
    }
    r.extend(output);
    smb2(SERVER, 11, status, mid, tid, &r)
}

/// A client binding `uuid` over pipe `name` on IPC$: the bind written, the bind_ack read, then one call of opnum
/// `opnum` through FSCTL_PIPE_TRANSCEIVE, and the pipe closed.
fn pipe_session(name: &str, uuid: &str, sec_addr: &str, opnum: u16) -> Vec<(bool, Vec<u8>)> {
    let bind = pdu(ptype::BIND, 2, &bind_body(0, uuid, 1));
    let bind_ack = pdu(ptype::BIND_ACK, 2, &bind_ack_body(sec_addr));
    vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response()),
        (CLIENT, session_setup_request()),
        (SERVER, session_setup_response()),
        (CLIENT, tree_connect_request(2, r"\\server\IPC$")),
        (SERVER, tree_connect_response(2, 5, 2)),
        (CLIENT, create_request(3, 5, name, 0)),
        (SERVER, create_response(3, 5, PIPE_FID, 0, 0)),
        (CLIENT, write_request(4, 5, PIPE_FID, 0, &bind)),
        (SERVER, write_response(4, 5, bind.len())),
        (CLIENT, read_request(5, 5, PIPE_FID)),
        (SERVER, read_response(5, 5, &bind_ack)),
        (
            CLIENT,
            ioctl_request(6, 5, PIPE_FID, TRANSCEIVE, &pdu(ptype::REQUEST, 3, &request_body(0, opnum, &[0xaa; 40]))),
        ),
        (SERVER, ioctl_response(6, 5, PIPE_FID, 0, &pdu(ptype::RESPONSE, 3, &response_body(0, &[0xbb; 16])))),
        (CLIENT, close_request(7, 5, PIPE_FID)),
        (SERVER, close_response(7, 5)),
    ]
}

/// dce_rpc.log's columns from `rtt` on.
fn dce_rpc_rows(h: &Harness) -> Vec<Vec<String>> {
    h.columns("dce_rpc")
}

#[test]
fn pipe_writes_reads_and_transceives_carry_dce_rpc() {
    let (mapping, files, actions, h) = run(&timed(pipe_session("srvsvc", SRVSVC, r"\PIPE\srvsvc", 0x0f)));
    assert_eq!(mapping, [with_ts("5.000000", row(&[r"\\\\server\\IPC$", "-", "-", "PIPE"]))]);
    // PIPE_OPEN, PIPE_WRITE, PIPE_READ and PIPE_CLOSE are not in SMB::logged_file_actions.
    assert!(files.is_empty(), "{files:?}");
    // The call is the ioctl's: request at 13, response at 14; the pipe name is the bind_ack's address.
    assert_eq!(
        h.timed_columns("dce_rpc"),
        [crate::analyzers::testing::row(["13.000000", "1.000000", r"\\PIPE\\srvsvc", "srvsvc", "NetrShareEnum"])]
    );
    assert_eq!(actions, [EngineAction::Confirm("smb"), EngineAction::Confirm("dce_rpc")]);
    assert!(h.weirds.is_empty());
}

/// The dce_rpc.log row of a PetitPotam run as a Zeek detection package's README shows it (Zeek over a real
/// trace): EfsRpcOpenFileRaw on efsrpc2 through `\pipe\lsass`, its response 1.023152 s after the request.
#[test]
fn petitpotam_row_as_zeek_logs_it() {
    let messages = pipe_session("lsarpc", EFSRPC2, r"\pipe\lsass", 0);
    let mut deliveries = timed(messages);
    let request_at = 1_630_594_390.076_173;
    for (i, d) in deliveries.iter_mut().enumerate() {
        d.2 = match i {
            0..12 => request_at - 1.0 + i as f64 * 0.01,
            12 => request_at,
            _ => 1_630_594_391.099_325,
        };
    }
    let (_, _, _, h) = run(&deliveries);
    assert_eq!(
        h.timed_columns("dce_rpc"),
        [crate::analyzers::testing::row([
            "1630594390.076173",
            "1.023152",
            r"\\pipe\\lsass",
            "efsrpc2",
            "EfsRpcOpenFileRaw"
        ])]
    );
}

#[test]
fn pipe_data_is_split_at_every_byte_the_same() {
    let messages = pipe_session("srvsvc", SRVSVC, r"\PIPE\srvsvc", 0x0f);
    let whole = dce_rpc_rows(&run(&timed(messages.clone())).3);
    assert_eq!(whole.len(), 1);
    for i in 8..14 {
        for at in 1..messages[i].1.len() {
            let mut deliveries = Vec::new();
            for (j, (o, m)) in messages.iter().enumerate() {
                let ts = 1.0 + j as f64;
                if i == j {
                    deliveries.push((*o, m[..at].to_vec(), ts));
                    deliveries.push((*o, m[at..].to_vec(), ts));
                } else {
                    deliveries.push((*o, m.clone(), ts));
                }
            }
            assert_eq!(dce_rpc_rows(&run(&deliveries).3), whole, "message {i} split at {at}");
        }
    }
}

#[test]
fn pipe_data_follows_the_tree_and_the_ioctl_code() {
    let bind = pdu(ptype::BIND, 2, &bind_body(0, SRVSVC, 1));
    // On a disk share the same write is file data, not DCE/RPC; an ioctl other than TRANSCEIVE is not handed on.
    let (_, _, actions, h) = run(&timed(vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response()),
        (CLIENT, tree_connect_request(2, r"\\server\share")),
        (SERVER, tree_connect_response(2, 1, 1)),
        (CLIENT, write_request(3, 1, FID, 0, &bind)),
        (CLIENT, ioctl_request(4, 1, FID, 0x0014_0204, &bind)),
    ]));
    assert_eq!(actions, [EngineAction::Confirm("smb")]);
    assert!(h.logged("dce_rpc").is_empty());
    // A pipe named on a tree whose mapping was not seen (`smb_pipe_connect_heuristic`) is one; after its tree's
    // disconnect the tree id is not.
    let messages = pipe_session("srvsvc", SRVSVC, r"\PIPE\srvsvc", 0x0f);
    let unmapped: Vec<_> = messages[..4].iter().chain(&messages[6..]).cloned().collect();
    assert_eq!(dce_rpc_rows(&run(&timed(unmapped)).3).len(), 1);
    let mut disconnected = messages.clone();
    disconnected.insert(8, (CLIENT, tree_disconnect(CLIENT, 20, 5)));
    let (_, _, actions, h) = run(&timed(disconnected));
    assert!(h.logged("dce_rpc").is_empty());
    // The ioctl still goes: its code, not the tree, makes it a pipe's (no bind seen, so nothing to log).
    assert_eq!(actions, [EngineAction::Confirm("smb"), EngineAction::Confirm("dce_rpc")]);
}

#[test]
fn one_dce_rpc_analyzer_per_pipe_and_closed_pipes_are_forgotten() {
    // Two pipes open at once on IPC$, their PDUs interleaved: each file id has its own analyzer (context ids and
    // call ids overlap without mixing), and each call is logged with its own pipe's interface.
    let second: (u64, u64) = (0x77, 0x88);
    let bind = |uuid| pdu(ptype::BIND, 2, &bind_body(0, uuid, 1));
    let call = |opnum| pdu(ptype::REQUEST, 3, &request_body(0, opnum, &[]));
    let reply = pdu(ptype::RESPONSE, 3, &response_body(0, &[]));
    let mut messages = pipe_session("srvsvc", SRVSVC, r"\PIPE\srvsvc", 0x0f)[..8].to_vec();
    messages.extend([
        (CLIENT, create_request(8, 5, "winreg", 0)),
        (SERVER, create_response(8, 5, second, 0, 0)),
        (CLIENT, write_request(9, 5, PIPE_FID, 0, &bind(SRVSVC))),
        (CLIENT, write_request(10, 5, second, 0, &bind(crate::analyzers::dce_rpc::tests::WINREG))),
        (SERVER, read_response(11, 5, &pdu(ptype::BIND_ACK, 2, &bind_ack_body(r"\PIPE\winreg")))),
        (CLIENT, read_request(11, 5, second)),
        (SERVER, read_response(11, 5, &pdu(ptype::BIND_ACK, 2, &bind_ack_body(r"\PIPE\winreg")))),
        (CLIENT, ioctl_request(12, 5, second, TRANSCEIVE, &call(0x10))),
        (CLIENT, ioctl_request(13, 5, PIPE_FID, TRANSCEIVE, &call(0x0f))),
        (SERVER, ioctl_response(13, 5, PIPE_FID, 0, &reply)),
        (SERVER, ioctl_response(12, 5, second, 0, &reply)),
        (CLIENT, close_request(14, 5, second)),
        // A request left without its response: the removal hook writes the open pipe's record again, not the
        // closed one's.
        (CLIENT, ioctl_request(15, 5, PIPE_FID, TRANSCEIVE, &call(0x0f))),
    ]);
    let (_, _, _, h) = run(&timed(messages));
    let summary: Vec<_> =
        h.timed_columns("dce_rpc").into_iter().map(|r| (r[0].clone(), r[2].clone(), r[4].clone())).collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        summary,
        [
            // The first read response has no request: file id 0, an analyzer of its own, nothing logged.
            s("17.000000", "-", "NetrShareEnum"),
            s("16.000000", r"\\PIPE\\winreg", "BaseRegQueryInfoKey"),
            s("21.000000", "-", "NetrShareEnum"),
        ]
    );
}

/// Through the engine: DCE/RPC in a pipe confirms `dce_rpc` after `smb` (conn.log's services in confirmation
/// order), and dce_rpc.log's row carries the SMB connection.
#[test]
fn pipes_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    let messages = pipe_session("srvsvc", SRVSVC, r"\PIPE\srvsvc", 0x0f);
    let frames = tcp_exchange(([10, 0, 0, 11], 49208), ([10, 0, 0, 12], 445), &messages);
    let records = engine_records(&frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "smb,dce_rpc");
    let calls: Vec<_> = records.iter().filter(|r| r.schema.path == "dce_rpc").collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(field(calls[0], "uid"), field(conn, "uid"));
    assert_eq!(
        [field(calls[0], "named_pipe"), field(calls[0], "endpoint"), field(calls[0], "operation")],
        [r"\\PIPE\\srvsvc", "srvsvc", "NetrShareEnum"]
    );
    assert!(!records.iter().any(|r| r.schema.path == "smb_files"));
    assert!(!records.iter().any(|r| r.schema.path == "analyzer" || r.schema.path == "weird"));
}

/// The auth verifiers of DCE/RPC in a pipe go to the SMB connection's GSSAPI and NTLM (Zeek has one `c$ntlm` per
/// connection): after the session setup's NTLM exchange, written at its accept-completed, a pipe's own NTLMSSP bind
/// and auth3 write nothing more; on a connection without one, the pipe's exchange is the record, written at the end.
#[test]
fn pipe_verifiers_share_the_sessions_ntlm_record() {
    use crate::analyzers::dce_rpc::tests::{WINREG, pdu_with_auth};
    use crate::analyzers::ntlm::build::{WINDOWS_FLAGS, authenticate, negotiate, utf16 as wide};
    use crate::analyzers::testing::row;

    let negotiate_msg = negotiate(WINDOWS_FLAGS, b"", b"");
    let authenticate_msg = authenticate(WINDOWS_FLAGS, &wide("CORP"), &wide("bob"), &wide("WS02"));
    let bind = pdu_with_auth(ptype::BIND, 0x03, 2, &bind_body(0, WINREG, 1), Some((0x0a, &negotiate_msg)));
    let auth3 = pdu_with_auth(16, 0x03, 2, &[0; 4], Some((0x0a, &authenticate_msg)));
    let pipe = [
        (CLIENT, create_request(10, 5, "winreg", 0)),
        (SERVER, create_response(10, 5, PIPE_FID, 0, 0)),
        (CLIENT, write_request(11, 5, PIPE_FID, 0, &bind)),
        (CLIENT, write_request(12, 5, PIPE_FID, 0, &auth3)),
    ];

    let mut messages = ntlm_session(0, 0);
    messages.extend(pipe.clone());
    let (_, _, actions, h) = run(&timed(messages));
    let ntlm = h.timed_columns("ntlm");
    assert_eq!(ntlm.len(), 1);
    assert_eq!((ntlm[0][0].as_str(), ntlm[0][1].as_str(), ntlm[0][7].as_str()), ("3.000000", "User1", "T"));
    // NTLM confirmed once, by the session setup; the pipe's bind confirms DCE_RPC.
    assert_eq!(
        actions,
        [
            EngineAction::Confirm("gssapi"),
            EngineAction::Confirm("ntlm"),
            EngineAction::Confirm("smb"),
            EngineAction::Confirm("dce_rpc")
        ]
    );

    let mut messages = ntlm_session(0, 0)[..1].to_vec();
    messages.extend([
        (SERVER, negotiate_response()),
        (CLIENT, tree_connect_request(3, r"\\server\IPC$")),
        (SERVER, tree_connect_response(3, 5, 2)),
    ]);
    messages.extend(pipe);
    let (_, _, _, h) = run(&timed(messages));
    assert_eq!(h.columns("ntlm"), [row(["bob", "WS02", "CORP", "-", "-", "-", "-"])]);
}

// File contents to the file framework (files.log, `fuid` on smb_files.log).

/// `SMB2_read_request` at `offset`.
fn read_request_at(mid: u64, tid: u32, fid: (u64, u64), offset: u64) -> Vec<u8> {
    let mut m = read_request(mid, tid, fid);
    m[4 + 64 + 8..4 + 64 + 16].copy_from_slice(&offset.to_le_bytes());
    m
}

/// The files.log columns a test compares: fuid, source, depth, analyzers, mime type, filename, duration, is_orig,
/// seen, total and missing bytes, overflow, timedout.
pub(super) fn files_rows(h: &Harness) -> Vec<Vec<String>> {
    let names = [
        "fuid",
        "source",
        "depth",
        "analyzers",
        "mime_type",
        "filename",
        "duration",
        "is_orig",
        "seen_bytes",
        "total_bytes",
        "missing_bytes",
        "overflow_bytes",
        "timedout",
    ];
    h.logged("files")
        .iter()
        .map(|r| names.iter().map(|n| r.get(n).map_or("?".into(), Value::to_tsv)).collect())
        .collect()
}

/// Zeek's `smb2-read-write` trace as its baselines show it: a 16-byte file read whole on a tree whose mapping was not
/// seen, a 7000-byte file written, then the share root opened. The read file has its size from the create as
/// `total_bytes`; the written one (size 0 at its create) has none; both end at their close.
#[test]
fn reads_and_writes_go_to_files_log_as_in_zeeks_read_write_baseline() {
    let content = b"print('hello')\n\n";
    let written: Vec<u8> = b"x = 1\n".iter().copied().cycle().take(7000).collect();
    let messages = vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response()),
        (CLIENT, create_request(2, 1, "pythonfile", 0)),
        (SERVER, create_response(2, 1, FID, 16, filetime(1_466_000_100))),
        (CLIENT, read_request(3, 1, FID)),
        (SERVER, read_response(3, 1, content)),
        (CLIENT, close_request(4, 1, FID)),
        (SERVER, close_response(4, 1)),
        (CLIENT, create_request(5, 1, "pythonfile2", 0)),
        (SERVER, create_response(5, 1, (3, 3), 0, filetime(1_466_000_100))),
        (CLIENT, write_request(6, 1, (3, 3), 0, &written)),
        (SERVER, write_response(6, 1, written.len())),
        (CLIENT, close_request(7, 1, (3, 3))),
        (SERVER, close_response(7, 1)),
        (CLIENT, create_request(8, 1, "", 0)),
        (SERVER, create_response(8, 1, (4, 4), 0, filetime(1_466_000_100))),
    ];
    let (_, files, _, h) = run(&timed(messages));
    let fuids: Vec<String> = h.logged("files").iter().map(|r| r.get("fuid").unwrap().to_tsv()).collect();
    assert_eq!(
        files_rows(&h),
        [
            crate::analyzers::testing::row([
                &fuids[0],
                "SMB",
                "0",
                "(empty)",
                "text/plain",
                "pythonfile",
                "0.000000",
                "F",
                "16",
                "16",
                "0",
                "0",
                "F"
            ]),
            crate::analyzers::testing::row([
                &fuids[1],
                "SMB",
                "0",
                "(empty)",
                "text/plain",
                "pythonfile2",
                "0.000000",
                "T",
                "7000",
                "-",
                "0",
                "0",
                "F"
            ]),
        ]
    );
    assert_eq!(h.logged("files")[0].get("ts"), Some(&Value::Time(6.0)), "the read response's time");
    // The default logged actions: only the opens, made before any data, so without a fuid.
    let summary: Vec<_> = files.iter().map(|r| (r[6].as_str(), r[7].as_str(), r[9].as_str())).collect();
    assert_eq!(
        summary,
        [
            ("-", "SMB::FILE_OPEN", "pythonfile"),
            ("-", "SMB::FILE_OPEN", "pythonfile2"),
            ("-", "SMB::FILE_OPEN", "<share_root>")
        ]
    );
}

/// `file_over_new_connection` puts the fuid on the file's record, so a logged action after the data carries it;
/// reads out of order are put back in order by their offsets, and a hole never filled is missing.
#[test]
fn the_record_takes_the_fuid_and_reads_are_reassembled_by_offset() {
    let content: Vec<u8> = (0..3000u32).map(|i| b"abcdefghij"[i as usize % 10]).collect();
    let rename = [&[0u8; 16][..], &14u32.to_le_bytes(), &utf16("new.txt")].concat();
    let messages = vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response()),
        (CLIENT, tree_connect_request(2, r"\\server\share")),
        (SERVER, tree_connect_response(2, 1, 1)),
        (CLIENT, create_request(3, 1, "big.txt", 0)),
        (SERVER, create_response(3, 1, FID, 4000, filetime(1_466_000_100))),
        (CLIENT, read_request_at(4, 1, FID, 1000)),
        (CLIENT, read_request_at(5, 1, FID, 0)),
        (CLIENT, read_request_at(6, 1, FID, 3000)),
        (SERVER, read_response(4, 1, &content[1000..2000])),
        (SERVER, read_response(5, 1, &content[..1000])),
        // 2000..3000 never comes; 3000..4000 waits for it.
        (SERVER, read_response(6, 1, &content[..1000])),
        (CLIENT, set_info_request(7, 1, FID, 0x0a, &rename)),
    ];
    let (_, files, _, h) = run(&timed(messages));
    let fuid = h.logged("files").first().map(|r| r.get("fuid").unwrap().to_tsv());
    assert_eq!(files.len(), 2);
    assert_eq!((files[1][6].as_str(), files[1][7].as_str()), (fuid.as_deref().unwrap(), "SMB::FILE_RENAME"));
    // Nothing closes the file: it ends with the connection, timed out, 3000 bytes seen, the hole missing, the size
    // announced.
    let row = &files_rows(&h)[0];
    assert_eq!(row[8..11], ["3000", "4000", "1000"]);
    assert_eq!(row[12], "T");
    assert_eq!(row[5], "big.txt");
}

#[test]
fn big_reads_are_kept_whole_and_split_reads_give_the_same_files() {
    // A read of 100 KiB: past MAX_KEPT, within MAX_DATA_KEPT.
    let content: Vec<u8> = (0..102_400u32).map(|i| (i % 251) as u8).collect();
    let messages = vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response()),
        (CLIENT, create_request(2, 1, "blob.bin", 0)),
        (SERVER, create_response(2, 1, FID, content.len() as u64, filetime(1_466_000_100))),
        (CLIENT, read_request(3, 1, FID)),
        (SERVER, read_response(3, 1, &content)),
    ];
    let whole = run(&timed(messages.clone()));
    assert_eq!(files_rows(&whole.3)[0][8..10], ["102400", "102400"]);
    for at in [1, 3, 4, 5, 17, 68, 80, 81, 65_536, 65_600, 102_000] {
        let mut deliveries = timed(messages.clone());
        let last = deliveries.pop().unwrap();
        deliveries.push((last.0, last.1[..at].to_vec(), last.2));
        deliveries.push((last.0, last.1[at..].to_vec(), last.2));
        assert_eq!(files_rows(&run(&deliveries).3)[0][1..], files_rows(&whole.3)[0][1..], "split at {at}");
    }
}

/// The At-service scheduling trace of Zeek's SMB logs walkthrough (docs.zeek.org, "Zeek logs for SMB"): joined after
/// the tree connect, `atsvc` (not in `SMB::pipe_filenames`) is a file on an unknown tree, so the written bind goes to
/// the file framework (files.log: source SMB, filename atsvc, from the originator, only the written bytes seen: the
/// bind_ack read back at offset 0 overlaps them) while the JobAdd call through FSCTL_PIPE_TRANSCEIVE goes to DCE_RPC,
/// which confirms (`dce_rpc` in conn.log's services) but, never having seen the bind, logs nothing.
#[test]
fn at_service_over_an_unknown_tree_as_zeeks_walkthrough_shows() {
    const ATSVC: &str = "1ff70682-0a51-30e8-076d-740be8cee98b";
    let bind = pdu(ptype::BIND, 2, &bind_body(0, ATSVC, 1));
    let bind_ack = pdu(ptype::BIND_ACK, 2, &bind_ack_body(r"\PIPE\atsvc"));
    let messages = vec![
        (CLIENT, create_request(10, 1, "atsvc", 0), 10.0),
        (SERVER, create_response(10, 1, PIPE_FID, 0, 0), 10.0),
        (CLIENT, write_request(11, 1, PIPE_FID, 0, &bind), 10.0),
        (SERVER, write_response(11, 1, bind.len()), 10.0001),
        (CLIENT, read_request(12, 1, PIPE_FID), 10.0002),
        (SERVER, read_response(12, 1, &bind_ack), 10.000389),
        (
            CLIENT,
            ioctl_request(13, 1, PIPE_FID, TRANSCEIVE, &pdu(ptype::REQUEST, 3, &request_body(1, 0, &[0; 64]))),
            10.001,
        ),
        (SERVER, ioctl_response(13, 1, PIPE_FID, 0, &pdu(ptype::RESPONSE, 3, &response_body(1, &[0; 8]))), 10.002),
        (CLIENT, close_request(14, 1, PIPE_FID), 10.003),
    ];
    let (_, files, actions, h) = run(&messages);
    let summary: Vec<_> = files.iter().map(|r| (r[7].as_str(), r[8].as_str(), r[9].as_str())).collect();
    assert_eq!(summary, [("SMB::FILE_OPEN", "-", "atsvc")]);
    let file = &files_rows(&h)[0];
    assert_eq!(
        file[1..],
        row(&["SMB", "0", "(empty)", "-", "atsvc", "0.000389", "T", &bind.len().to_string(), "-", "0", "0", "F"])[6..]
    );
    assert!(h.logged("dce_rpc").is_empty());
    assert_eq!(actions, [EngineAction::Confirm("smb"), EngineAction::Confirm("dce_rpc")]);
}

/// Through the engine: a file read whole is in files.log with the connection's uid, and its close ends nothing more.
#[test]
fn files_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_exchange;

    let content = b"print('hello')\n\n";
    let messages = [
        negotiate_request(),
        negotiate_response(),
        create_request(2, 1, "pythonfile", 0),
        create_response(2, 1, FID, 16, filetime(1_466_000_100)),
        read_request(3, 1, FID),
        read_response(3, 1, content),
        close_request(4, 1, FID),
        close_response(4, 1),
    ];
    let borrowed: Vec<(bool, &[u8])> = messages.iter().enumerate().map(|(i, m)| (i % 2 == 0, m.as_slice())).collect();
    let frames = tcp_exchange(([169, 254, 128, 18], 49155), ([169, 254, 128, 15], 445), &borrowed);
    let records = engine_records(&frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    let files: Vec<_> = records.iter().filter(|r| r.schema.path == "files").collect();
    assert_eq!(files.len(), 1);
    assert_eq!(field(files[0], "uid"), field(conn, "uid"));
    assert_eq!(
        ["source", "filename", "seen_bytes", "total_bytes", "is_orig"].map(|n| field(files[0], n)),
        ["SMB", "pythonfile", "16", "16", "F"]
    );
}

/// A file read in two responses is complete at the second (its size known since the first): files.log is written
/// then, not timed out, and a later read of the same file is a new file.
#[test]
fn a_file_is_complete_when_later_data_reaches_its_size() {
    let content = [b'a'; 2000];
    let messages = vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response()),
        (CLIENT, create_request(2, 1, "two.txt", 0)),
        (SERVER, create_response(2, 1, FID, 2000, filetime(1_466_000_100))),
        (CLIENT, read_request_at(3, 1, FID, 0)),
        (SERVER, read_response(3, 1, &content[..1000])),
        (CLIENT, read_request_at(4, 1, FID, 1000)),
        (SERVER, read_response(4, 1, &content[1000..])),
        (CLIENT, read_request_at(5, 1, FID, 0)),
        (SERVER, read_response(5, 1, &content[..10])),
    ];
    let (_, _, _, h) = run(&timed(messages));
    let rows = files_rows(&h);
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0][0], rows[1][0]);
    assert_eq!((rows[0][6].as_str(), rows[0][8].as_str(), rows[0][12].as_str()), ("2.000000", "2000", "F"));
    assert_eq!((rows[1][8].as_str(), rows[1][12].as_str()), ("10", "T"));
}
