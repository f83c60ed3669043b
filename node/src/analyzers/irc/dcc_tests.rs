//! DCC SEND transfers: the IRC_DATA analyzer on the data connection, the files.log record of its file and the
//! `DCC` record of irc.log, built byte by byte after Zeek's irc-dcc-send trace (the irc.basic and
//! file-analysis.irc baselines).

use super::*;
use crate::analyzers::Action;
use crate::analyzers::magic::sniff_mime;
use crate::analyzers::testing::{Harness, row};
use crate::logs::LogRecord;

/// The file of the irc-dcc-send trace, as far as the baselines show it: `len` bytes beginning with a zip local file
/// header (the file-analysis.irc baseline's BOF is `PK\x03\x04\x14\x00\x00\x00\x08\x00\xae`), then filler.
fn dcc_zip(len: usize) -> Vec<u8> {
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(&20u16.to_le_bytes()); // version needed to extract: 2.0
    zip.extend_from_slice(&0u16.to_le_bytes()); // flags
    zip.extend_from_slice(&8u16.to_le_bytes()); // deflated
    zip.extend_from_slice(&0x5aaeu16.to_le_bytes()); // modification time
    zip.extend_from_slice(&0x3ee7u16.to_le_bytes()); // modification date
    zip.extend_from_slice(&[0; 12]); // crc-32, compressed and uncompressed sizes
    let name = b"OS.txt";
    zip.extend_from_slice(&(name.len() as u16).to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes()); // extra field length
    zip.extend_from_slice(name);
    let filler = (0u32..).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8);
    zip.extend(filler.take(len.saturating_sub(zip.len())));
    zip.truncate(len);
    zip
}

/// The DCC offer line of a PRIVMSG from `nick` for `name` from `address:port`.
fn offer(address: Ipv4Addr, port: u16, name: &str, size: usize) -> Vec<u8> {
    let address = u32::from(address);
    format!(":ladyvampress!~x@host PRIVMSG bloed :\x01DCC SEND {name} {address} {port} {size}\x01\r\n").into_bytes()
}

/// The receiver's acknowledgement: how many bytes it has, as a 32-bit number in network order.
fn ack(received: usize) -> [u8; 4] {
    u32::try_from(received).expect("a test file is small").to_be_bytes()
}

/// An IRC connection at t=10 (NICK, USER), t=20 (JOIN) and t=30 (the DCC offer of `size` bytes from
/// `address:port`), as the irc-dcc-send trace's client 192.168.1.77 to 66.198.80.67.
fn offered_session(address: Ipv4Addr, port: u16, size: usize) -> (Harness, Irc) {
    let mut h = Harness::new(Proto::Tcp, 6667);
    h.id.orig_h = "192.168.1.77".parse().unwrap();
    h.id.orig_p = 57640;
    h.id.resp_h = "66.198.80.67".parse().unwrap();
    let mut irc = Irc::default();
    let name = "ladyvampress-default(2011-07-07)-OS.zip";
    let lines: [(f64, bool, Vec<u8>); 4] = [
        (10.0, true, b"NICK bloed\r\nUSER sdkfje sdkfje Montreal.QC.CA.Undernet.org :dkdkrwq\r\n".to_vec()),
        (20.0, true, b"JOIN #easymovies\r\n".to_vec()),
        (21.0, false, b":bloed!~sdkfje@host JOIN #easymovies\r\n".to_vec()),
        (30.0, false, offer(address, port, name, size)),
    ];
    for (ts, is_orig, line) in lines {
        h.run(ts, |ctx| irc.deliver(ctx, is_orig, &line));
    }
    (h, irc)
}

/// The data connection 192.168.1.77:57655 to `address:port`.
fn data_connection(address: Ipv4Addr, port: u16) -> Harness {
    let mut h = Harness::new(Proto::Tcp, port);
    h.id.orig_h = "192.168.1.77".parse().unwrap();
    h.id.orig_p = 57655;
    h.id.resp_h = IpAddr::V4(address);
    h
}

/// The sender's `file` in segments of 1400 bytes from t=31 on, each acknowledged by the receiver, then the end.
fn transfer(h: &mut Harness, data: &mut IrcData, file: &[u8]) {
    let mut received = 0;
    for (i, segment) in file.chunks(1400).enumerate() {
        let ts = 31.0 + i as f64 * 0.05;
        received += segment.len();
        h.run(ts, |ctx| data.deliver(ctx, false, segment));
        h.run(ts + 0.01, |ctx| data.deliver(ctx, true, &ack(received)));
    }
    h.run(33.25, |ctx| data.finish(ctx));
}

fn col(record: &LogRecord, name: &str) -> String {
    record.get(name).expect("column exists").to_tsv()
}

/// irc.log's columns from `nick` on, with `ts` first.
fn irc_rows(records: &[&LogRecord]) -> Vec<Vec<String>> {
    records.iter().map(|r| r.values[..1].iter().chain(&r.values[6..]).map(Value::to_tsv).collect()).collect()
}

#[test]
fn the_test_file_is_sniffed_as_a_zip() {
    assert_eq!(sniff_mime(&dcc_zip(42208)[..4096]), Some("application/zip"));
    assert_eq!(dcc_zip(42208).len(), 42208);
}

/// irc.basic's irc.log and files.log of file-analysis.irc: the DCC record carries the session (its last JOIN's
/// value and addl, the time of the offer), the offered name and size, the sniffed type and the file's fuid; the
/// acknowledgements are no file.
#[test]
fn a_transfer_gives_the_dcc_record_and_one_file() {
    let sender = Ipv4Addr::new(198, 51, 100, 21);
    let (irc_h, _irc) = offered_session(sender, 1024, 42208);
    let mut h = data_connection(sender, 1024);
    let mut data = IrcData::default();
    transfer(&mut h, &mut data, &dcc_zip(42208));

    let files = h.logged("files");
    assert_eq!(files.len(), 1, "the acknowledgements are no file");
    let file = files[0];
    let fuid = col(file, "fuid");
    let name = "ladyvampress-default(2011-07-07)-OS.zip";
    assert_eq!(
        ["ts", "source", "depth", "analyzers", "mime_type", "filename", "duration", "is_orig"].map(|c| col(file, c)),
        ["31.000000", "IRC_DATA", "0", "(empty)", "application/zip", name, "1.500000", "F"]
    );
    assert_eq!(
        ["seen_bytes", "total_bytes", "missing_bytes", "overflow_bytes", "timedout", "md5"].map(|c| col(file, c)),
        ["42208", "-", "0", "0", "F", "-"]
    );
    assert_eq!((col(file, "id.resp_h"), col(file, "id.resp_p")), ("198.51.100.21".into(), "1024".into()));

    // The control connection's records, then the DCC record the data connection writes for it.
    assert_eq!(
        irc_rows(&irc_h.logged("irc")),
        [
            row(["10.000000", "-", "-", "NICK", "bloed", "-", "-", "-", "-", "-"]),
            row([
                "10.000000",
                "bloed",
                "-",
                "USER",
                "sdkfje",
                "sdkfje Montreal.QC.CA.Undernet.org dkdkrwq",
                "-",
                "-",
                "-",
                "-",
            ]),
            row(["20.000000", "bloed", "sdkfje", "JOIN", "#easymovies", "(empty)", "-", "-", "-", "-"]),
        ]
    );
    let dcc = h.logged("irc");
    assert_eq!(
        irc_rows(&dcc),
        [row([
            "30.000000",
            "bloed",
            "sdkfje",
            "DCC",
            "#easymovies",
            "(empty)",
            name,
            "42208",
            "application/zip",
            &fuid,
        ])]
    );
    // Written for the IRC connection, when the third segment filled the 4096-byte BOF buffer.
    assert_eq!(
        [1, 2, 3, 4, 5].map(|i| dcc[0].values[i].to_tsv()),
        ["CTest", "192.168.1.77", "57640", "66.198.80.67", "6667"]
    );
    let dcc_at = h.records.iter().position(|r| r.schema.path == "irc").unwrap();
    assert_eq!(dcc_at, 0, "before the file's own record");
}

/// The record `dcc_expected_transfers` holds is the session's: a NICK after the offer is in the DCC record, and what
/// log_dcc clears (file name, size, MIME type) is gone from the session's later records, while the fuid files.zeek
/// set stays.
#[test]
fn the_session_and_the_transfer_share_one_record() {
    let sender = Ipv4Addr::new(198, 51, 100, 22);
    let (mut irc_h, mut irc) = offered_session(sender, 2048, 5000);
    irc_h.run(30.5, |ctx| irc.deliver(ctx, true, b"NICK bloed2\r\n"));
    let mut h = data_connection(sender, 2048);
    let mut data = IrcData::default();
    transfer(&mut h, &mut data, &dcc_zip(5000));
    let fuid = col(h.logged("files")[0], "fuid");
    let name = "ladyvampress-default(2011-07-07)-OS.zip";
    assert_eq!(
        irc_rows(&h.logged("irc")),
        [row(["30.500000", "bloed2", "sdkfje", "DCC", "bloed2", "(empty)", name, "5000", "application/zip", &fuid])]
    );
    irc_h.run(40.0, |ctx| irc.deliver(ctx, true, b"NICK bloed3\r\n"));
    let later = irc_rows(&irc_h.logged("irc"));
    assert_eq!(
        later.last().unwrap(),
        &row(["40.000000", "bloed2", "sdkfje", "NICK", "bloed3", "(empty)", "-", "-", "-", &fuid])
    );
    // The transfer left the table: another connection to the sender's port is no DCC transfer any more.
    let mut again = data_connection(sender, 2048);
    let mut data = IrcData::default();
    transfer(&mut again, &mut data, &dcc_zip(5000));
    assert!(again.logged("irc").is_empty());
    assert_eq!(col(again.logged("files")[0], "filename"), "-");
}

/// A file shorter than the BOF buffer is sniffed when the connection ends: the DCC record comes first, then the
/// file's. The server's lines stamp the session too: its JOIN after the offer is the DCC record's time.
#[test]
fn a_short_file_is_sniffed_at_the_end() {
    let sender = Ipv4Addr::new(198, 51, 100, 23);
    let (mut irc_h, mut irc) = offered_session(sender, 3072, 11);
    irc_h.run(30.7, |ctx| irc.deliver(ctx, false, b":bloed!~sdkfje@host JOIN #other\r\n"));
    let mut h = data_connection(sender, 3072);
    let mut data = IrcData::default();
    transfer(&mut h, &mut data, b"just text\r\n");
    let paths: Vec<&str> = h.records.iter().map(|r| r.schema.path).collect();
    assert_eq!(paths, ["irc", "files"]);
    let dcc = h.logged("irc")[0];
    assert_eq!(
        ["ts", "command", "dcc_file_size", "dcc_mime_type"].map(|c| col(dcc, c)),
        ["30.700000", "DCC", "11", "text/plain"]
    );
    assert_eq!(col(dcc, "value"), "#easymovies", "the server's JOIN sets no value");
    assert_eq!(col(h.logged("files")[0], "seen_bytes"), "11");
}

/// Without an expected transfer (none offered, or offered for another port) the file is logged without a name and
/// no DCC record is written; a data connection that carries nothing logs nothing but ends its transfer.
#[test]
fn unexpected_and_empty_data_connections() {
    let sender = Ipv4Addr::new(198, 51, 100, 24);
    let mut h = data_connection(sender, 4096);
    let mut data = IrcData::default();
    transfer(&mut h, &mut data, &dcc_zip(3000));
    assert!(h.logged("irc").is_empty());
    let file = h.logged("files")[0];
    assert_eq!([col(file, "filename"), col(file, "mime_type")], ["-", "application/zip"]);

    let (_irc_h, _irc) = offered_session(sender, 4097, 100);
    let mut empty = data_connection(sender, 4097);
    let mut data = IrcData::default();
    empty.run(31.0, |ctx| data.deliver(ctx, true, &ack(0)));
    empty.run(32.0, |ctx| data.finish(ctx));
    assert!(empty.records.is_empty());
    assert!(DCC_EXPECTED_TRANSFERS.peek(IpAddr::V4(sender), 4097).is_none(), "finalize_irc_data");
}

/// A gap in the file counts as missing bytes and sniffs what came before it.
#[test]
fn a_gap_in_the_file_ends_the_bof_buffer() {
    let sender = Ipv4Addr::new(198, 51, 100, 25);
    let (_irc_h, _irc) = offered_session(sender, 5120, 3000);
    let mut h = data_connection(sender, 5120);
    let mut data = IrcData::default();
    let zip = dcc_zip(3000);
    h.run(31.0, |ctx| data.deliver(ctx, false, &zip[..1400]));
    assert!(h.logged("irc").is_empty());
    h.run(31.1, |ctx| data.undelivered(ctx, false, 1400));
    assert_eq!(col(h.logged("irc")[0], "dcc_mime_type"), "application/zip");
    h.run(31.2, |ctx| data.deliver(ctx, false, &zip[2800..]));
    h.run(32.0, |ctx| data.finish(ctx));
    let file = h.logged("files")[0];
    assert_eq!([col(file, "seen_bytes"), col(file, "missing_bytes")], ["1600", "1400"]);

    // A gap first leaves nothing to sniff: no DCC record, no MIME type, and the transfer stays expected until the
    // connection ends.
    let (_irc_h, _irc) = offered_session(sender, 5121, 3000);
    let mut h = data_connection(sender, 5121);
    let mut data = IrcData::default();
    h.run(31.0, |ctx| data.undelivered(ctx, false, 1400));
    h.run(31.1, |ctx| data.deliver(ctx, false, &zip[1400..]));
    assert!(DCC_EXPECTED_TRANSFERS.peek(IpAddr::V4(sender), 5121).is_some());
    h.run(32.0, |ctx| data.finish(ctx));
    assert!(h.logged("irc").is_empty());
    let file = h.logged("files")[0];
    assert_eq!(
        ["mime_type", "filename", "seen_bytes", "missing_bytes"].map(|c| col(file, c)),
        ["-", "ladyvampress-default(2011-07-07)-OS.zip", "1600", "1400"]
    );
    assert!(DCC_EXPECTED_TRANSFERS.peek(IpAddr::V4(sender), 5121).is_none());
}

/// The data stream split at every byte (one split point per run) gives the same records: the file is sniffed in the
/// delivery that reaches 4096 bytes, or at the end.
#[test]
fn the_file_split_at_every_byte_gives_the_same_records() {
    let sender = Ipv4Addr::new(198, 51, 100, 26);
    let zip = dcc_zip(4500);
    let summary = |h: &Harness| {
        let dcc = h.logged("irc");
        let file = h.logged("files");
        (
            dcc.iter().map(|r| [col(r, "command"), col(r, "dcc_mime_type"), col(r, "fuid")]).collect::<Vec<_>>(),
            file.iter().map(|r| [col(r, "fuid"), col(r, "mime_type"), col(r, "seen_bytes")]).collect::<Vec<_>>(),
        )
    };
    let mut expected = None;
    for split in 0..=zip.len() {
        let (_irc_h, _irc) = offered_session(sender, 6000, zip.len());
        let mut h = data_connection(sender, 6000);
        let mut data = IrcData::default();
        h.run(31.0, |ctx| data.deliver(ctx, false, &zip[..split]));
        let sniffed_early = !h.logged("irc").is_empty();
        assert_eq!(sniffed_early, split >= 4096, "split at {split}");
        h.run(31.5, |ctx| data.deliver(ctx, false, &zip[split..]));
        assert_eq!(h.logged("irc").len(), 1, "split at {split}");
        h.run(32.0, |ctx| data.finish(ctx));
        let got = summary(&h);
        assert_eq!(got.0[0][0], "DCC");
        assert_eq!(got.0[0][2], got.1[0][0], "the DCC record names the file");
        assert_eq!(&got, expected.get_or_insert_with(|| got.clone()), "split at {split}");
    }
}

#[test]
fn garbage_on_the_data_connection_does_not_panic() {
    let mut rng = crate::analyzers::testing::XorShift(0x1234_5678);
    for round in 0..200u64 {
        let input: Vec<u8> = (0..(rng.next() % 600)).map(|_| rng.next() as u8).collect();
        let mut data = IrcData::default();
        crate::analyzers::fuzzing::drive(&mut data, Proto::Tcp, 7000 + (round % 50) as u16, &input);
    }
}

/// Through the engine, the irc-dcc-send exchange rebuilt after the baselines: the client 192.168.1.77 registers
/// with 66.198.80.67:6667, joins #easymovies and is offered ladyvampress-default(2011-07-07)-OS.zip (42208 bytes)
/// from 209.197.168.151:1024; it connects from port 57655, takes the file in 1400-byte segments and acknowledges
/// each (31 acknowledgements: conn.log's 124 originator bytes). irc.log has irc.basic's rows; the DCC record also
/// carries what files.zeek and dcc-send.zeek set since zeek/zeek#2955 ("fix dcc_mime_type and fuid were never
/// assigned", which also keeps the acknowledgements out of file analysis): the sniffed type and the file's fuid
/// (the stored irc.basic baseline, older, has `fuid` unset and leaves `dcc_mime_type` out). files.log has the
/// file-analysis.irc baseline's data file, named by the offer.
#[test]
fn the_dcc_send_exchange_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::{tcp_conversation, tcp_exchange};

    const CLIENT: [u8; 4] = [192, 168, 1, 77];
    const SERVER: [u8; 4] = [66, 198, 80, 67];
    const SENDER: [u8; 4] = [209, 197, 168, 151];
    let name = "ladyvampress-default(2011-07-07)-OS.zip";
    let offer = offer(Ipv4Addr::from(SENDER), 1024, name, 42208);
    let control: Vec<(bool, &[u8])> = vec![
        (true, b"NICK bloed\r\nUSER sdkfje sdkfje Montreal.QC.CA.Undernet.org :dkdkrwq\r\n"),
        (false, b":Montreal.QC.CA.Undernet.org 001 bloed :Welcome to the UnderNet IRC Network, bloed\r\n"),
        (true, b"JOIN #easymovies\r\n"),
        (false, b":bloed!~sdkfje@host JOIN #easymovies\r\n"),
        (false, &offer),
    ];
    let zip = dcc_zip(42208);
    let mut received = 0;
    let mut transfer: Vec<(bool, Vec<u8>)> = Vec::new();
    for segment in zip.chunks(1400) {
        received += segment.len();
        transfer.push((false, segment.to_vec()));
        transfer.push((true, ack(received).to_vec()));
    }
    let transfer: Vec<(bool, &[u8])> = transfer.iter().map(|(o, d)| (*o, &d[..])).collect();
    let mut frames = tcp_exchange((CLIENT, 57640), (SERVER, 6667), &control);
    frames.extend(tcp_conversation((CLIENT, 57655), (SENDER, 1024), &transfer));
    let records = engine_records(&frames);

    let conn = |port: &str| records.iter().find(|r| r.schema.path == "conn" && field(r, "id.orig_p") == port).unwrap();
    let data = conn("57655");
    assert_eq!(
        ["service", "orig_bytes", "resp_bytes", "conn_state"].map(|c| field(data, c)),
        ["irc-dcc-data", "124", "42208", "SF"]
    );
    assert_eq!(field(conn("57640"), "service"), "irc");

    let files: Vec<&LogRecord> = records.iter().filter(|r| r.schema.path == "files").collect();
    assert_eq!(files.len(), 1, "the acknowledgements are no file");
    let file = files[0];
    let fuid = field(file, "fuid");
    assert_eq!(
        [
            "uid",
            "id.orig_h",
            "id.orig_p",
            "id.resp_h",
            "id.resp_p",
            "source",
            "depth",
            "analyzers",
            "mime_type",
            "filename",
            "local_orig",
            "is_orig",
            "seen_bytes",
            "total_bytes",
            "missing_bytes",
            "overflow_bytes",
            "timedout",
        ]
        .map(|c| field(file, c)),
        [
            field(data, "uid").as_str(),
            "192.168.1.77",
            "57655",
            "209.197.168.151",
            "1024",
            "IRC_DATA",
            "0",
            "(empty)",
            "application/zip",
            name,
            "F",
            "F",
            "42208",
            "-",
            "0",
            "0",
            "F",
        ]
    );

    let irc: Vec<Vec<String>> = records
        .iter()
        .filter(|r| r.schema.path == "irc")
        .map(|r| r.values[1..].iter().map(Value::to_tsv).collect())
        .collect();
    let uid = field(conn("57640"), "uid");
    let id = [uid.as_str(), "192.168.1.77", "57640", "66.198.80.67", "6667"];
    let with_id = |rest: [&str; 9]| id.iter().chain(&rest).map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        irc,
        [
            with_id(["-", "-", "NICK", "bloed", "-", "-", "-", "-", "-"]),
            with_id(["bloed", "-", "USER", "sdkfje", "sdkfje Montreal.QC.CA.Undernet.org dkdkrwq", "-", "-", "-", "-"]),
            with_id(["bloed", "sdkfje", "JOIN", "#easymovies", "(empty)", "-", "-", "-", "-"]),
            with_id(["bloed", "sdkfje", "DCC", "#easymovies", "(empty)", name, "42208", "application/zip", &fuid]),
        ]
    );
    // The DCC record has the offer's time, not the sniff's.
    let times: Vec<String> = records.iter().filter(|r| r.schema.path == "irc").map(|r| field(r, "ts")).collect();
    let offer_frame_ts = format!("{:.6}", 1.0 + 7.0 * 0.01);
    assert_eq!(times[3], offer_frame_ts);
}

/// `max_dcc_expected_transfers`: an offer finding the table at the limit is a weird (no expectation, no file fields
/// on the session); 0 disables the check. The table is the process's, so the limit here is what it already holds.
#[test]
fn offers_past_the_table_limit_are_a_weird() {
    let sender = Ipv4Addr::new(198, 51, 100, 27);
    let (_h, _irc) = offered_session(sender, 7000, 10);
    for (limit, refused) in [(1, true), (0, false)] {
        let mut h = Harness::new(Proto::Tcp, 6667);
        let mut irc = Irc { max_dcc_expected_transfers: limit, ..Irc::default() };
        let line = offer(sender, 7001, "second.zip", 20);
        h.run(40.0, |ctx| irc.deliver(ctx, false, &line));
        h.run(41.0, |ctx| irc.deliver(ctx, true, b"NICK bloed\r\n"));
        let weirds: Vec<&str> = h.weirds.iter().map(|w| w.name.as_str()).collect();
        let expected = h.actions.iter().any(|a| matches!(a, Action::Expect(_)));
        let file_name = col(h.logged("irc")[0], "dcc_file_name");
        if refused {
            assert_eq!(weirds, ["irc_max_dcc_expected_transfers_exceeded"]);
            assert_eq!(h.weirds[0].source, "");
            assert!(!expected);
            assert_eq!(file_name, "-");
        } else {
            assert!(weirds.is_empty());
            assert!(expected);
            assert_eq!(file_name, "second.zip");
        }
    }
    DCC_EXPECTED_TRANSFERS.remove(IpAddr::V4(sender), 7001);
}

/// Through the engine, the control connection's lines after the transfer: the DCC record is written while the file
/// arrives (its BOF buffer full), and the NICK that follows carries the file's fuid but no DCC fields any more.
#[test]
fn records_after_a_transfer_through_the_engine() {
    use crate::analyzers::testing::{engine_records, field};
    use crate::decode::test_frames::{tcp_conversation, tcp_exchange};

    const CLIENT: [u8; 4] = [10, 1, 0, 1];
    const SERVER: [u8; 4] = [10, 1, 0, 2];
    const SENDER: [u8; 4] = [10, 1, 0, 3];
    let offer = offer(Ipv4Addr::from(SENDER), 2222, "f.zip", 5000);
    let control: Vec<(bool, &[u8])> =
        vec![(true, b"NICK bloed\r\nUSER u h s :r\r\n"), (false, &offer), (true, b"NICK later\r\n")];
    let zip = dcc_zip(5000);
    let transfer: Vec<(bool, &[u8])> = zip.chunks(1400).map(|segment| (false, segment)).collect();
    let control_frames = tcp_exchange((CLIENT, 40000), (SERVER, 6667), &control);
    // The handshake and the first two lines, the transfer, then the last line.
    let (before, after) = control_frames.split_at(5);
    let mut frames = before.to_vec();
    frames.extend(tcp_conversation((CLIENT, 40001), (SENDER, 2222), &transfer));
    frames.extend(after.iter().cloned());
    let records = engine_records(&frames);

    let fuid = field(records.iter().find(|r| r.schema.path == "files").unwrap(), "fuid");
    let irc: Vec<[String; 6]> = records
        .iter()
        .filter(|r| r.schema.path == "irc")
        .map(|r| ["command", "value", "dcc_file_name", "dcc_file_size", "dcc_mime_type", "fuid"].map(|c| field(r, c)))
        .collect();
    let row = |fields: [&str; 6]| fields.map(String::from);
    assert_eq!(
        irc,
        [
            row(["NICK", "bloed", "-", "-", "-", "-"]),
            row(["USER", "u", "-", "-", "-", "-"]),
            row(["DCC", "u", "f.zip", "5000", "application/zip", &fuid]),
            row(["NICK", "later", "-", "-", "-", &fuid]),
        ]
    );
}
