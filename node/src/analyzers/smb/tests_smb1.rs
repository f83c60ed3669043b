//! SMB1 messages built byte by byte over NBSS ([MS-CIFS]/[MS-SMB] layouts, as Zeek's smb1 grammar reads them),
//! through the analyzer: a whole session (negotiate, NTLMSSP session setup, a share and IPC$, a file opened, read,
//! written and closed, a DCE/RPC bind and call over a pipe through write/read AndX and a transaction), AndX chains,
//! every split, malformed input and the engine.

use super::tests::{CLIENT, SERVER, files_rows, filetime, nbss, row, run, timed, utf16, with_ts};
use super::*;
use crate::analyzers::Action as EngineAction;
use crate::analyzers::dce_rpc::ptype;
use crate::analyzers::dce_rpc::tests::{bind_ack_body, bind_body, pdu, request_body, response_body};
use crate::analyzers::ntlm::build::{MS_KRB5_OID, NTLMSSP_OID, neg_token_init2, spnego_ntlm_exchange, user1_row};
use crate::analyzers::testing::XorShift;

use super::smb1::com::{
    CLOSE, LOGOFF_ANDX as LOGOFF, NEGOTIATE, NT_CREATE_ANDX as NT_CREATE, READ_ANDX as READ,
    SESSION_SETUP_ANDX as SESSION_SETUP, TRANSACTION, TREE_CONNECT_ANDX as TREE_CONNECT, WRITE_ANDX as WRITE,
};

const NO_ANDX: [u8; 4] = [0xff, 0, 0, 0];
const DSSETUP: &str = "3919286a-b10c-11d0-9ba8-00c04fd92ef5";
const MORE_PROCESSING: u32 = 0xc000_0016;

/// An SMB1 message: the 32-byte header (flags2: unicode, NT status, extended security, long names) and the record.
fn smb1(from_client: bool, command: u8, status: u32, tid: u16, mid: u16, record: &[u8]) -> Vec<u8> {
    let mut m = b"\xffSMB".to_vec();
    m.push(command);
    m.extend(status.to_le_bytes());
    m.push(if from_client { 0x18 } else { 0x98 });
    m.extend(0xc807u16.to_le_bytes());
    m.extend([0; 2 + 8 + 2]); // pid high, signature, reserved
    m.extend(tid.to_le_bytes());
    m.extend(0xfeffu16.to_le_bytes()); // pid
    m.extend(100u16.to_le_bytes()); // uid
    m.extend(mid.to_le_bytes());
    m.extend(record);
    nbss(&m)
}

fn u16le(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap().to_le_bytes()
}

/// A UTF-16 string with its NUL, after a pad byte where it starts at an odd offset from its record.
fn unicode_at(at: usize, s: &str) -> Vec<u8> {
    let mut v = vec![0; at & 1];
    v.extend(utf16(s));
    v.extend([0, 0]);
    v
}

/// An AndX block: the next command and its offset from the header's start.
fn andx(command: u8, offset: usize) -> [u8; 4] {
    let [lo, hi] = u16le(offset);
    [command, 0, lo, hi]
}

fn negotiate_request() -> Vec<u8> {
    let dialects = b"\x02NT LM 0.12\0\x02SMB 2.002\0";
    let mut r = vec![0];
    r.extend(u16le(dialects.len()));
    r.extend(dialects);
    smb1(CLIENT, NEGOTIATE, 0, 0, 1, &r)
}

/// An NT LM 0.12 negotiate response with extended security: the server GUID, then the security blob.
fn negotiate_response(blob: &[u8]) -> Vec<u8> {
    let mut r = vec![0x11, 0, 0, 0x03];
    r.extend(50u16.to_le_bytes()); // max mpx
    r.extend(1u16.to_le_bytes()); // max vcs
    r.extend(16644u32.to_le_bytes());
    r.extend(65536u32.to_le_bytes());
    r.extend(0u32.to_le_bytes()); // session key
    r.extend(0x8000_f3fdu32.to_le_bytes()); // capabilities, extended security
    r.extend(filetime(1_466_000_000).to_le_bytes());
    r.extend(0u16.to_le_bytes());
    r.push(0); // key length
    r.extend(u16le(16 + blob.len()));
    r.extend([0x5a; 16]);
    r.extend(blob);
    smb1(SERVER, NEGOTIATE, 0, 0, 1, &r)
}

/// A session setup AndX request with extended security (word count 12), optionally chaining `next` at its end.
fn session_setup_request(mid: u16, blob: &[u8], next: Option<(u8, &[u8])>) -> Vec<u8> {
    let mut strings = unicode_at(27 + blob.len(), "Windows 7601");
    strings.extend(utf16("Windows 6.1"));
    strings.extend([0, 0]);
    let end = 32 + 27 + blob.len() + strings.len();
    let mut r = vec![0x0c];
    r.extend(next.map_or(NO_ANDX, |(command, _)| andx(command, end)));
    r.extend([0x04, 0x41, 0x32, 0, 0, 0, 0, 0, 0, 0]); // max buffer, max mpx, vc number, session key
    r.extend(u16le(blob.len()));
    r.extend([0; 4]);
    r.extend(0x8000_00d4u32.to_le_bytes());
    r.extend(u16le(blob.len() + strings.len()));
    r.extend(blob);
    r.extend(strings);
    if let Some((_, record)) = next {
        r.extend(record);
    }
    smb1(CLIENT, SESSION_SETUP, 0, 0, mid, &r)
}

/// A session setup AndX response with extended security (word count 4).
fn session_setup_response(mid: u16, status: u32, blob: &[u8]) -> Vec<u8> {
    let mut strings = unicode_at(11 + blob.len(), "Windows Server 2008");
    strings.extend(utf16("Windows Server 2008 6.0"));
    strings.extend([0, 0]);
    let mut r = vec![0x04];
    r.extend(NO_ANDX);
    r.extend(0u16.to_le_bytes()); // action
    r.extend(u16le(blob.len()));
    r.extend(u16le(blob.len() + strings.len()));
    r.extend(blob);
    r.extend(strings);
    smb1(SERVER, SESSION_SETUP, status, 0, mid, &r)
}

/// `SMB1_tree_connect_andx_request`'s record: a one-byte password, the unicode path, the ASCII service.
fn tree_connect_record(path: &str, next: [u8; 4]) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend(unicode_at(12, path));
    bytes.extend(b"?????\0");
    let mut r = vec![0x04];
    r.extend(next);
    r.extend(0x0008u16.to_le_bytes()); // flags
    r.extend(1u16.to_le_bytes()); // password length
    r.extend(u16le(bytes.len()));
    r.extend(bytes);
    r
}

fn tree_connect_request(mid: u16, path: &str) -> Vec<u8> {
    smb1(CLIENT, TREE_CONNECT, 0, 0, mid, &tree_connect_record(path, NO_ANDX))
}

/// A tree connect AndX response of word count 7: the service and the native file system.
fn tree_connect_response(mid: u16, tid: u16, service: &[u8], native_file_system: &str) -> Vec<u8> {
    let mut bytes = service.to_vec();
    bytes.extend(unicode_at(17 + service.len(), native_file_system));
    let mut r = vec![0x07];
    r.extend(NO_ANDX);
    r.extend(0x0001u16.to_le_bytes()); // optional support
    r.extend([0xff, 0x01, 0x1f, 0, 0, 0, 0, 0]); // maximal share access rights, guest maximal share access rights
    r.extend(u16le(bytes.len()));
    r.extend(bytes);
    smb1(SERVER, TREE_CONNECT, 0, tid, mid, &r)
}

fn nt_create_request(mid: u16, tid: u16, name: &str) -> Vec<u8> {
    let bytes = unicode_at(51, name);
    let mut r = vec![0x18];
    r.extend(NO_ANDX);
    r.push(0);
    r.extend(u16le(utf16(name).len()));
    r.extend(0x16u32.to_le_bytes()); // flags
    r.extend(0u32.to_le_bytes()); // root directory
    r.extend(0x0002_019fu32.to_le_bytes()); // access
    r.extend(0u64.to_le_bytes());
    r.extend(0x80u32.to_le_bytes()); // attributes
    r.extend(3u32.to_le_bytes()); // share access
    r.extend(1u32.to_le_bytes()); // disposition: open
    r.extend(0x40u32.to_le_bytes()); // options
    r.extend(2u32.to_le_bytes()); // impersonation
    r.push(0);
    r.extend(u16le(bytes.len()));
    r.extend(bytes);
    smb1(CLIENT, NT_CREATE, 0, tid, mid, &r)
}

fn nt_create_response(mid: u16, tid: u16, fid: u16, size: u64, modified: u64) -> Vec<u8> {
    let mut r = vec![0x22];
    r.extend(NO_ANDX);
    r.push(0); // oplock
    r.extend(fid.to_le_bytes());
    r.extend(1u32.to_le_bytes()); // disposition
    // created 100 s before the modification, accessed 200 s and changed 100 s after it
    let second = 10_000_000;
    for t in [modified.saturating_sub(100 * second), modified + 200 * second, modified, modified + 100 * second] {
        r.extend(t.to_le_bytes());
    }
    r.extend(0x80u32.to_le_bytes());
    r.extend(4096u64.to_le_bytes());
    r.extend(size.to_le_bytes());
    r.extend([0; 5]); // resource type, pipe status, directory
    r.extend(0u16.to_le_bytes());
    smb1(SERVER, NT_CREATE, 0, tid, mid, &r)
}

fn read_request(mid: u16, tid: u16, fid: u16, offset: u32) -> Vec<u8> {
    let mut r = vec![0x0c];
    r.extend(NO_ANDX);
    r.extend(fid.to_le_bytes());
    r.extend(offset.to_le_bytes());
    r.extend(1024u16.to_le_bytes());
    r.extend(1024u16.to_le_bytes());
    r.extend(0u32.to_le_bytes());
    r.extend(0u16.to_le_bytes());
    r.extend(0u32.to_le_bytes()); // offset high
    r.extend(0u16.to_le_bytes());
    smb1(CLIENT, READ, 0, tid, mid, &r)
}

/// A read AndX response with its data at offset 60 (after a pad byte).
fn read_response(mid: u16, tid: u16, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0x0c];
    r.extend(NO_ANDX);
    r.extend([0xff, 0xff, 0, 0, 0, 0]); // available, compaction mode, reserved
    r.extend(u16le(data.len() & 0xffff));
    r.extend(60u16.to_le_bytes());
    r.extend(u16le(data.len() >> 16));
    r.extend([0; 8]);
    r.extend(u16le(data.len() + 1));
    r.push(0);
    r.extend(data);
    smb1(SERVER, READ, 0, tid, mid, &r)
}

/// A write AndX request (word count 14) with its data at offset 64.
fn write_request(mid: u16, tid: u16, fid: u16, offset: u32, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0x0e];
    r.extend(NO_ANDX);
    r.extend(fid.to_le_bytes());
    r.extend(offset.to_le_bytes());
    r.extend([0; 4 + 2 + 2]); // timeout, write mode, remaining
    r.extend(u16le(data.len() >> 16));
    r.extend(u16le(data.len() & 0xffff));
    r.extend(64u16.to_le_bytes());
    r.extend(0u32.to_le_bytes());
    r.extend(u16le(data.len() + 1));
    r.push(0);
    r.extend(data);
    smb1(CLIENT, WRITE, 0, tid, mid, &r)
}

fn write_response(mid: u16, tid: u16, count: usize) -> Vec<u8> {
    let mut r = vec![0x06];
    r.extend(NO_ANDX);
    r.extend(u16le(count));
    r.extend([0; 6]);
    r.extend(0u16.to_le_bytes());
    smb1(SERVER, WRITE, 0, tid, mid, &r)
}

fn close_request(mid: u16, tid: u16, fid: u16) -> Vec<u8> {
    let mut r = vec![0x03];
    r.extend(fid.to_le_bytes());
    r.extend(0xffff_ffffu32.to_le_bytes());
    r.extend(0u16.to_le_bytes());
    smb1(CLIENT, CLOSE, 0, tid, mid, &r)
}

/// The 35-byte empty response.
fn empty_response(command: u8, status: u32, mid: u16, tid: u16) -> Vec<u8> {
    smb1(SERVER, command, status, tid, mid, &[0, 0, 0])
}

/// A TransactNmPipe transaction request on `\PIPE\` (word count 16, two setup words): its data at offset 84.
fn transaction_request(mid: u16, tid: u16, fid: u16, data: &[u8]) -> Vec<u8> {
    let name = unicode_at(35, r"\PIPE\");
    let mut r = vec![0x10];
    r.extend(0u16.to_le_bytes()); // total parameters
    r.extend(u16le(data.len()));
    r.extend(0u16.to_le_bytes());
    r.extend(1024u16.to_le_bytes());
    r.extend([0, 0]); // max setup, reserved
    r.extend([0; 2 + 4 + 2]); // flags, timeout, reserved
    r.extend(0u16.to_le_bytes()); // parameter count
    r.extend(82u16.to_le_bytes());
    r.extend(u16le(data.len()));
    r.extend(84u16.to_le_bytes());
    r.extend([2, 0]);
    r.extend(0x26u16.to_le_bytes()); // TransactNmPipe
    r.extend(fid.to_le_bytes());
    r.extend(u16le(name.len() + 2 + data.len()));
    r.extend(&name);
    r.extend([0, 0]);
    r.extend(data);
    smb1(CLIENT, TRANSACTION, 0, tid, mid, &r)
}

/// A transaction response with its data at offset 56.
fn transaction_response(mid: u16, tid: u16, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0x0a];
    r.extend(0u16.to_le_bytes());
    r.extend(u16le(data.len()));
    r.extend(0u16.to_le_bytes());
    r.extend(0u16.to_le_bytes()); // parameter count
    r.extend(56u16.to_le_bytes());
    r.extend(0u16.to_le_bytes());
    r.extend(u16le(data.len()));
    r.extend(56u16.to_le_bytes());
    r.extend(0u16.to_le_bytes());
    r.extend([0, 0]);
    r.extend(u16le(data.len() + 1));
    r.push(0);
    r.extend(data);
    smb1(SERVER, TRANSACTION, 0, tid, mid, &r)
}

const FILE: u16 = 0x4000;
const PIPE: u16 = 0x4001;

/// The task's session: negotiate, an NTLMSSP session setup in SPNEGO over two exchanges, a share and IPC$, a file
/// opened, read, written to its end and closed, then `\lsarpc` opened on IPC$, a DCE/RPC bind written and its
/// bind_ack read, a dssetup call through a transaction, and the pipe closed.
fn session() -> Vec<(bool, Vec<u8>)> {
    let [init, challenge, authenticate, done] = spnego_ntlm_exchange(0);
    let bind = pdu(ptype::BIND, 2, &bind_body(0, DSSETUP, 0));
    let bind_ack = pdu(ptype::BIND_ACK, 2, &bind_ack_body(r"\PIPE\lsass"));
    vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response(&neg_token_init2(&[MS_KRB5_OID, NTLMSSP_OID]))),
        (CLIENT, session_setup_request(2, &init, None)),
        (SERVER, session_setup_response(2, MORE_PROCESSING, &challenge)),
        (CLIENT, session_setup_request(3, &authenticate, None)),
        (SERVER, session_setup_response(3, 0, &done)),
        (CLIENT, tree_connect_request(4, r"\\SERVER\SHARE")),
        (SERVER, tree_connect_response(4, 1, b"A:\0", "NTFS")),
        (CLIENT, tree_connect_request(5, r"\\SERVER\IPC$")),
        (SERVER, tree_connect_response(5, 2, b"IPC\0", "")),
        (CLIENT, nt_create_request(6, 1, r"docs\report.txt")),
        (SERVER, nt_create_response(6, 1, FILE, 11, filetime(1_466_000_100))),
        (CLIENT, read_request(7, 1, FILE, 0)),
        (SERVER, read_response(7, 1, b"hello")),
        (CLIENT, write_request(8, 1, FILE, 5, b" world")),
        (SERVER, write_response(8, 1, 6)),
        (CLIENT, close_request(9, 1, FILE)),
        (SERVER, empty_response(CLOSE, 0, 9, 1)),
        (CLIENT, nt_create_request(10, 2, r"\lsarpc")),
        (SERVER, nt_create_response(10, 2, PIPE, 0, 0)),
        (CLIENT, write_request(11, 2, PIPE, 0, &bind)),
        (SERVER, write_response(11, 2, bind.len())),
        (CLIENT, read_request(12, 2, PIPE, 0)),
        (SERVER, read_response(12, 2, &bind_ack)),
        (CLIENT, transaction_request(13, 2, PIPE, &pdu(ptype::REQUEST, 3, &request_body(0, 0, &[0x01, 0, 0, 0])))),
        (SERVER, transaction_response(13, 2, &pdu(ptype::RESPONSE, 3, &response_body(0, &[0xcc; 24])))),
        (CLIENT, close_request(14, 2, PIPE)),
        (SERVER, empty_response(CLOSE, 0, 14, 2)),
    ]
}

/// The session at the times of the deliveries, the transaction's response 0.002138 s after its request as in
/// Zeek's `smb1-transaction-dcerpc` baseline.
fn session_timed() -> Vec<(bool, Vec<u8>, f64)> {
    let mut deliveries = timed(session());
    deliveries[25].2 = deliveries[24].2 + 0.002138;
    deliveries
}

#[test]
fn a_session_maps_trees_logs_opens_files_ntlm_and_dce_rpc() {
    let (mapping, files, actions, h) = run(&session_timed());
    assert_eq!(
        mapping,
        [
            with_ts("7.000000", row(&[r"\\\\SERVER\\SHARE", "A:", "NTFS", "DISK"])),
            with_ts("9.000000", row(&[r"\\\\SERVER\\IPC$", "IPC", "-", "PIPE"])),
        ],
        "the request's time; the service and native file system of the response (none when empty); IPC is a PIPE"
    );
    let fuid = h.logged("files")[0].get("fuid").unwrap().to_tsv();
    assert_eq!(
        files,
        [
            with_ts(
                "11.000000",
                row(&[
                    "-",
                    "SMB::FILE_OPEN",
                    "-",
                    r"docs\\report.txt",
                    "11",
                    "-",
                    "1466000100.000000",
                    "1466000300.000000",
                    "1466000000.000000",
                    "1466000200.000000"
                ])
            ),
            // The pipe's open is FILE_OPEN too (smb1-main.zeek does not look at the share type); a modification
            // time before 1970 leaves the times unset.
            with_ts("19.000000", row(&["-", "SMB::FILE_OPEN", "-", r"\\lsarpc", "0", "-", "-", "-", "-", "-"])),
        ],
        "reads, writes and closes are not in logged_file_actions; the open is logged before any path is set"
    );
    // The file: read at 0, written at 5, complete at its 11 bytes (its size from the open).
    assert_eq!(
        files_rows(&h),
        [crate::analyzers::testing::row([
            &fuid,
            "SMB",
            "0",
            "(empty)",
            "text/plain",
            r"docs\\report.txt",
            "1.000000",
            "F",
            "11",
            "11",
            "0",
            "0",
            "F"
        ])]
    );
    assert_eq!(h.timed_columns("ntlm"), [user1_row("3.000000")]);
    assert_eq!(
        h.timed_columns("dce_rpc"),
        [crate::analyzers::testing::row([
            "25.000000",
            "0.002138",
            r"\\PIPE\\lsass",
            "dssetup",
            "DsRolerGetPrimaryDomainInformation"
        ])],
        "the row of Zeek's smb1-transaction-dcerpc baseline"
    );
    assert_eq!(
        actions,
        [
            EngineAction::Confirm("gssapi"),
            EngineAction::Confirm("ntlm"),
            EngineAction::Confirm("smb"),
            EngineAction::Confirm("dce_rpc")
        ]
    );
    assert!(h.weirds.is_empty(), "{:?}", h.weirds);
}

#[test]
fn every_split_of_every_message_gives_the_same_logs() {
    let whole = run(&session_timed());
    let logs = |o: &super::tests::Outcome| {
        (o.0.clone(), o.1.clone(), o.3.timed_columns("ntlm"), o.3.timed_columns("dce_rpc"), files_rows(&o.3).len())
    };
    let expected = logs(&whole);
    let messages = session_timed();
    // The first message must come whole: SMB.cc starts only on a delivery that begins with an SMB header.
    for i in 1..messages.len() {
        for at in 1..messages[i].1.len() {
            let mut deliveries = messages.clone();
            let (o, m, ts) = deliveries.remove(i);
            deliveries.insert(i, (o, m[at..].to_vec(), ts));
            deliveries.insert(i, (o, m[..at].to_vec(), ts));
            let split = run(&deliveries);
            assert_eq!(logs(&split), expected, "message {i} split at {at}");
        }
    }
}

/// A session setup chaining a tree connect (Windows' usual first request) and a logoff chaining nothing: the chained
/// command is parsed where the first ends, its events before the outer one's.
#[test]
fn andx_chains_are_followed() {
    let [init, ..] = spnego_ntlm_exchange(0);
    // The tree connect's record starts at the session setup's end, its AndX offset 0 (no further command).
    let chained = tree_connect_record(r"\\SERVER\IPC$", NO_ANDX);
    let messages = vec![
        (CLIENT, negotiate_request()),
        (SERVER, negotiate_response(&neg_token_init2(&[NTLMSSP_OID]))),
        (CLIENT, session_setup_request(2, &init, Some((TREE_CONNECT, &chained)))),
        (SERVER, tree_connect_response(2, 7, b"IPC\0", "")),
    ];
    let (mapping, _, _, h) = run(&timed(messages));
    assert_eq!(mapping, [with_ts("3.000000", row(&[r"\\\\SERVER\\IPC$", "IPC", "-", "PIPE"]))]);
    assert!(h.weirds.is_empty());
}

/// A locking AndX request (one 64-bit range) chaining an NT create: the file is opened as if the create came alone;
/// transaction2, echo and query information records parse without an exception.
#[test]
fn commands_without_logged_events_parse_and_chain() {
    let create = nt_create_request(2, 1, "locked.txt");
    let mut locking = vec![0x08];
    locking.extend(andx(NT_CREATE, 32 + 39));
    locking.extend(FILE.to_le_bytes());
    locking.extend([0x10, 0]); // large files
    locking.extend(0u32.to_le_bytes());
    locking.extend([0, 0, 1, 0]); // no unlocks, one lock
    locking.extend(20u16.to_le_bytes());
    locking.extend([0; 20]);
    locking.extend(&create[4 + 32..]);
    // FIND_FIRST2 with its parameters (a unicode pattern) at offset 68.
    let mut find_first = vec![0x0f, 18, 0, 0, 0, 10, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    find_first.extend(u16le(18));
    find_first.extend(68u16.to_le_bytes());
    find_first.extend([0, 0, 0, 0, 1, 0]);
    find_first.extend(1u16.to_le_bytes());
    find_first.extend(u16le(3 + 18));
    find_first.extend([0; 3]);
    find_first.extend([0x16, 0, 0x56, 0x05, 0x06, 0, 0x04, 0x01, 0, 0, 0, 0]);
    find_first.extend(unicode_at(12, r"\*"));
    let (_, files, actions, h) = run(&timed(vec![
        (CLIENT, negotiate_request()),
        (CLIENT, smb1(CLIENT, 0x24, 0, 1, 2, &locking)),
        (SERVER, nt_create_response(2, 1, FILE, 3, filetime(1_466_000_000))),
        (CLIENT, smb1(CLIENT, 0x32, 0, 1, 3, &find_first)),
        (CLIENT, smb1(CLIENT, 0x2b, 0, 0, 4, &[1, 1, 0, 4, 0, 1, 2, 3, 4])),
        (CLIENT, smb1(CLIENT, 0x08, 0, 1, 5, &[&[0, 9, 0, 4][..], &unicode_at(4, "a.txt")].concat())),
    ]));
    let names: Vec<&str> = files.iter().map(|r| r[9].as_str()).collect();
    assert_eq!(names, ["locked.txt"]);
    assert_eq!(actions, [EngineAction::Confirm("smb")]);
    assert!(h.weirds.is_empty());
}

/// A logoff AndX whose chain points back at itself, and one nested past the depth bound: the chain stops with
/// the newest grammar's weirds (`smb1-non-advancing-andx-offset`, `smb1-long-andx-chain`).
#[test]
fn andx_chains_are_bounded() {
    let logoff = |next: [u8; 4]| [&[2u8][..], &next, &[0, 0]].concat();
    // Offset 0 does not advance past the record (an offset inside it would be a negative padding, an exception).
    let looping = smb1(CLIENT, LOGOFF, 0, 0, 2, &logoff(andx(LOGOFF, 0)));
    // Each logoff (7 bytes) chains the next one right after it.
    let mut long = Vec::new();
    for i in 0..40 {
        long.extend(logoff(andx(LOGOFF, 32 + 7 * (i + 1))));
    }
    let long = smb1(CLIENT, LOGOFF, 0, 0, 3, &long);
    let (_, _, actions, h) = run(&timed(vec![(CLIENT, negotiate_request()), (CLIENT, looping), (CLIENT, long)]));
    let weirds: Vec<(&str, &str)> = h.weirds.iter().map(|w| (w.name.as_str(), w.source)).collect();
    assert_eq!(weirds, [("smb_andx_offset_not_advancing", "SMB"), ("smb_andx_depth_exceeded", "SMB")]);
    assert_eq!(actions, [EngineAction::Confirm("smb")], "the chains parse without an exception");
}

#[test]
fn unicode_and_ascii_strings_as_the_grammar_reads_them() {
    let mut h = crate::analyzers::testing::Harness::new(Proto::Tcp, 445);
    // An ASCII header (flags2 without unicode): the path is ASCII, no pad.
    let mut ascii = vec![0x04];
    ascii.extend(NO_ANDX);
    ascii.extend([0, 0, 1, 0]);
    let bytes = b"\0\\\\HOST\\TMP\0A:\0";
    ascii.extend(u16le(bytes.len()));
    ascii.extend(bytes);
    let mut request = smb1(CLIENT, TREE_CONNECT, 0, 0, 2, &ascii);
    request[4 + 10..4 + 12].copy_from_slice(&0x4807u16.to_le_bytes());
    let mut a = Smb::default();
    h.run(1.0, |ctx| a.deliver(ctx, CLIENT, &request));
    h.run(2.0, |ctx| a.deliver(ctx, SERVER, &tree_connect_response(2, 3, b"A:\0", "FAT")));
    // A UTF-16 NUL pair at an odd position does not end the string: U+0100 U+0041 is "\0\x01A\0".
    let mut name = vec![0x00, 0x01, 0x41, 0x00];
    name.extend([0, 0]);
    let mut create = nt_create_request(3, 3, "x");
    let at = 4 + 32 + 51 + 1;
    create.splice(at..at + 4, name);
    let len = create.len() - 4;
    create[1..4].copy_from_slice(&u32::try_from(len).unwrap().to_be_bytes()[1..]);
    create[4 + 32 + 49..4 + 32 + 51].copy_from_slice(&u16le(7));
    h.run(3.0, |ctx| a.deliver(ctx, CLIENT, &create));
    h.run(4.0, |ctx| a.deliver(ctx, SERVER, &nt_create_response(3, 3, 9, 1, filetime(1_466_000_000))));
    let mapping: Vec<Vec<String>> = h.columns("smb_mapping");
    assert_eq!(mapping, [crate::analyzers::testing::row([r"\\\\HOST\\TMP", "A:", "FAT", "DISK"])]);
    let names: Vec<String> = h.logged("smb_files").iter().map(|r| r.get("name").unwrap().to_tsv()).collect();
    assert_eq!(names, ["\u{100}A"]);
}

#[test]
fn malformed_messages_are_violations() {
    let cut = |mut m: Vec<u8>, len: usize| {
        m.truncate(len + 4);
        m[1..4].copy_from_slice(&u32::try_from(len).unwrap().to_be_bytes()[1..]);
        m
    };
    let mut long_write = write_request(2, 1, FILE, 0, b"abcd");
    long_write[4 + 32 + 22] = 0xff; // data length 0xff04
    let mut bad_word_count = negotiate_response(b"");
    bad_word_count[4 + 32] = 5;
    let mut no_nul = tree_connect_request(2, r"\\S\T");
    let n = no_nul.len();
    no_nul[n - 1] = b'x';
    let mut backwards = nt_create_response(2, 1, FILE, 0, 0);
    backwards[4 + 32 + 1..4 + 32 + 5].copy_from_slice(&andx(0xff, 40)); // an AndX offset before the record's end
    for (from_client, broken, reason) in [
        (CLIENT, cut(tree_connect_request(2, r"\\S\T"), 20), "out_of_bound: SMB_Header: 28 > 16"),
        (CLIENT, long_write, "out_of_bound: SMB1_write_andx_request:data: 65284 > 4"),
        (SERVER, bad_word_count, "invalid index for case: SMB1_negotiate_response: 5"),
        (CLIENT, no_nul, "out_of_bound: SMB1_tree_connect_andx_request: 31 > 30"),
        (SERVER, backwards, "invalid length string: extra_byte_parameters, -63"),
        (CLIENT, smb1(CLIENT, 0x2b, 0, 0, 4, &[1, 1, 0, 9, 0, 1]), "out_of_bound: SMB1_echo_request: 14 > 6"),
        (
            CLIENT,
            smb1(CLIENT, 0x33, 0, 0, 5, &[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            "out_of_bound: SMB1_transaction2_secondary_request: 71 > 21",
        ),
    ] {
        let (mapping, _, actions, _) = run(&[(CLIENT, negotiate_request(), 1.0), (from_client, broken.clone(), 2.0)]);
        assert!(mapping.is_empty());
        assert_eq!(
            actions,
            [EngineAction::Violation(format!("Binpac exception: binpac exception: {reason}"), None)],
            "{broken:02x?}"
        );
    }
}

/// An error response of 35 bytes is an empty message: no event, no exception; the command is forgotten.
#[test]
fn an_error_response_is_an_empty_message() {
    let (mapping, _, actions, h) = run(&timed(vec![
        (CLIENT, negotiate_request()),
        (CLIENT, tree_connect_request(2, r"\\SERVER\NOPE")),
        (SERVER, empty_response(TREE_CONNECT, 0xc000_00cc, 2, 0)),
        (SERVER, tree_connect_response(2, 4, b"A:\0", "")),
    ]));
    // The later response finds no pending request: the tree of its header (id 4) has no path.
    assert_eq!(mapping, [with_ts("4.000000", row(&["-", "A:", "-", "DISK"]))]);
    assert_eq!(actions, [EngineAction::Confirm("smb")]);
    assert!(h.weirds.is_empty());
}

/// Valid messages with bytes flipped, through the analyzer, and random bytes after an SMB1 header through the
/// fuzz entry point: nothing panics.
#[test]
fn mutated_messages_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15_u64);
    let mut next = || rng.next();
    for round in 0..400 {
        let mut deliveries = session_timed();
        for (_, m, _) in deliveries.iter_mut() {
            // Every other round keeps the NBSS and SMB1 headers whole, so that the mutations reach the records.
            let from = if round % 2 == 1 { 36.min(m.len() - 1) } else { 0 };
            for _ in 0..3 {
                let at = from + (next() as usize) % (m.len() - from);
                m[at] = next() as u8;
            }
        }
        run(&deliveries);
    }
    for _ in 0..200 {
        let mut data = negotiate_request();
        data.extend((0..400).map(|_| next() as u8));
        fuzz(&data);
    }
}

/// Through the engine on 445: conn.log's services in confirmation order, the logs with the connection's uid.
#[test]
fn through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    let messages = session();
    let frames = tcp_conversation(([205, 227, 227, 226], 49467), ([205, 227, 227, 243], 445), &messages);
    let records = engine_records(&frames);
    let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
    assert_eq!(field(conn, "service"), "gssapi,ntlm,smb,dce_rpc");
    for (path, count) in [("smb_mapping", 2), ("smb_files", 2), ("ntlm", 1), ("dce_rpc", 1), ("files", 1)] {
        let logged: Vec<_> = records.iter().filter(|r| r.schema.path == path).collect();
        assert_eq!(logged.len(), count, "{path}");
        assert!(logged.iter().all(|r| field(r, "uid") == field(conn, "uid") || path == "files"));
    }
    let dce_rpc = records.iter().find(|r| r.schema.path == "dce_rpc").unwrap();
    assert_eq!(field(dce_rpc, "operation"), "DsRolerGetPrimaryDomainInformation");
}

/// Requests never answered and transactions without responses do not grow the state past
/// `SMB::max_pending_messages`.
#[test]
fn unanswered_requests_are_bounded() {
    let mut h = crate::analyzers::testing::Harness::new(Proto::Tcp, 445);
    let mut a = Smb::default();
    h.run(1.0, |ctx| a.deliver(ctx, CLIENT, &negotiate_request()));
    for mid in 0..2500u16 {
        let message = if mid % 2 == 0 {
            transaction_request(mid, 2, PIPE, b"")
        } else {
            smb1(CLIENT, 0x2b, 0, mid, mid, &[1, 1, 0, 0, 0])
        };
        h.run(2.0, |ctx| a.deliver(ctx, CLIENT, &message));
    }
    assert!(a.state.pending.len() <= MAX_PENDING, "{}", a.state.pending.len());
    assert!(a.state.tid_map.len() <= MAX_PENDING, "{}", a.state.tid_map.len());
    assert!(a.state.smb1_file_a_pipe.len() <= MAX_PENDING, "{}", a.state.smb1_file_a_pipe.len());
    assert!(a.state.pending.len() > 100, "the newest requests are kept");
}

/// A create of a name in `SMB::pipe_filenames` on a tree whose connect was not seen marks it a pipe
/// (`smb_pipe_connect_heuristic`): the writes after it go to DCE_RPC, not to a file.
#[test]
fn a_pipe_name_on_an_unmapped_tree_marks_it_a_pipe() {
    let bind = pdu(ptype::BIND, 2, &bind_body(0, DSSETUP, 0));
    let messages = vec![
        (CLIENT, negotiate_request()),
        (CLIENT, nt_create_request(2, 9, "srvsvc")),
        (SERVER, nt_create_response(2, 9, PIPE, 0, filetime(1_466_000_000))),
        (CLIENT, write_request(3, 9, PIPE, 0, &bind)),
    ];
    let (_, files, actions, h) = run(&timed(messages.clone()));
    assert_eq!(actions, [EngineAction::Confirm("smb"), EngineAction::Confirm("dce_rpc")]);
    assert!(h.logged("files").is_empty(), "a pipe's data is not a file");
    assert_eq!(files.len(), 1, "the open is logged");
    // Another name leaves the tree a disk: the write is a file's data.
    let mut other = messages;
    other[1] = (CLIENT, nt_create_request(2, 9, "notes"));
    let (_, _, actions, h) = run(&timed(other));
    assert_eq!(actions, [EngineAction::Confirm("smb")]);
    assert_eq!(h.logged("files").len(), 1);
}

/// A multi-protocol negotiate: the client's SMB1 negotiate offers SMB 2.002, and the server answers in SMB2. The
/// connection's one script state carries the SMB2 session on: the same rows as a session begun in SMB2.
#[test]
fn an_smb1_negotiate_followed_by_smb2() {
    let smb2_only = run(&timed(super::tests::session()));
    let mut messages = super::tests::session();
    messages[0] = (CLIENT, negotiate_request());
    let mixed = run(&timed(messages));
    assert_eq!((&mixed.0, &mixed.1, &mixed.2), (&smb2_only.0, &smb2_only.1, &smb2_only.2));
    assert_eq!(mixed.0.len(), 2);
}

/// Two files read at once: a read response's data goes to `c$smb_state$current_file`, the file of the last read
/// request, not the one its own request named (smb1_message does not set the current file), as Zeek does.
#[test]
fn a_read_response_feeds_the_current_file() {
    let messages = vec![
        (CLIENT, negotiate_request()),
        (CLIENT, nt_create_request(2, 1, "a.txt")),
        (SERVER, nt_create_response(2, 1, 1, 8, filetime(1_466_000_000))),
        (CLIENT, nt_create_request(3, 1, "b.txt")),
        (SERVER, nt_create_response(3, 1, 2, 8, filetime(1_466_000_000))),
        (CLIENT, read_request(4, 1, 1, 0)),
        (CLIENT, read_request(5, 1, 2, 4)),
        (SERVER, read_response(4, 1, b"AAAA")),
        (SERVER, read_response(5, 1, b"BBBB")),
    ];
    let (_, _, _, h) = run(&timed(messages.clone()));
    let files: Vec<(String, String, String)> = h
        .logged("files")
        .iter()
        .map(|r| ["filename", "seen_bytes", "missing_bytes"].map(|n| r.get(n).unwrap().to_tsv()).into())
        .collect();
    // b.txt's file has a.txt's bytes at b's offset 0 and its own at 4; a.txt's file never began.
    assert_eq!(files, [("b.txt".to_string(), "8".to_string(), "0".to_string())]);
    // Answered in turn, each response feeds its own file.
    let mut in_turn = messages;
    in_turn.swap(6, 7);
    let (_, _, _, h) = run(&timed(in_turn));
    let names: Vec<String> = h.logged("files").iter().map(|r| r.get("filename").unwrap().to_tsv()).collect();
    assert_eq!(names.len(), 2);
}

/// A LANMAN 2.1 negotiate response as in Zeek's `smb1-negotiate-lanman` baseline (word count 13, an 8-byte
/// encryption key, the primary domain read at an odd place without its pad, as the grammar's `offsetof` says): it
/// parses whole only with 16-bit server time and date.
#[test]
fn a_lanman_negotiate_response_parses_whole() {
    let mut r = vec![13, 3, 0];
    r.extend(3u16.to_le_bytes()); // security mode: user level, challenge/response
    r.extend(4356u16.to_le_bytes());
    r.extend(32u16.to_le_bytes());
    r.extend(1u16.to_le_bytes());
    r.extend(0u16.to_le_bytes()); // raw mode
    r.extend(0u32.to_le_bytes()); // session key
    r.extend([0x33, 0x28, 0x3a, 0x5b]); // time, date
    r.extend(0u16.to_le_bytes()); // time zone
    r.extend(8u16.to_le_bytes());
    r.extend(0u16.to_le_bytes());
    let domain = unicode_at(1, "WORKGROUP");
    r.extend(u16le(8 + domain.len()));
    r.extend([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    r.extend(domain);
    let request =
        smb1(CLIENT, NEGOTIATE, 0, 0, 1, &[0, 11, 0, 2, b'L', b'A', b'N', b'M', b'A', b'N', b'2', b'.', b'1', 0]);
    let (_, _, actions, _) = run(&timed(vec![
        (CLIENT, request),
        (SERVER, smb1(SERVER, NEGOTIATE, 0, 0, 1, &r)),
        (CLIENT, tree_connect_request(2, r"\\S\T")),
    ]));
    assert_eq!(actions, [EngineAction::Confirm("smb")]);
}
