use super::*;
use crate::analyzers::Action;
use crate::analyzers::testing::{Harness, XorShift, engine_records, field};

/// The sessions of Zeek's `scripts.base.protocols.finger.events` baseline (standard.pcap and verbose.pcap), as far
/// as its output shows them: the request `julien` (then `/W julien`), the first reply lines.
fn standard_session() -> Vec<(bool, Vec<u8>)> {
    vec![
        (true, b"julien\r\n".to_vec()),
        (
            false,
            b"Login: julien\t\t\t\tName: \r\nDirectory: /home/julien\t\t\tShell: /bin/sh\r\nLogged: no\r\nProject:\r\n"
                .to_vec(),
        ),
    ]
}

fn verbose_session() -> Vec<(bool, Vec<u8>)> {
    vec![(true, b"/W julien\r\n".to_vec()), (false, b"Are you lost?\r\n".to_vec())]
}

/// Runs `script` (one delivery per step) and ends both directions.
fn run(script: &[(bool, Vec<u8>)]) -> Harness {
    let mut h = Harness::new(Proto::Tcp, 79);
    let mut a = Finger::default();
    for (is_orig, bytes) in script {
        h.deliver(&mut a, *is_orig, bytes);
    }
    h.run(2.0, |ctx| {
        a.end_of_data(ctx, true);
        a.end_of_data(ctx, false);
    });
    h.finish(&mut a);
    h
}

/// The actions, violations without their data.
fn actions(h: &Harness) -> Vec<String> {
    h.actions
        .iter()
        .map(|a| match a {
            Action::Confirm(s) => format!("confirm {s}"),
            Action::Violation(reason, _) => format!("violation {reason}"),
            other => format!("{other:?}"),
        })
        .collect()
}

const CONFIRM: &str = "confirm finger";

#[test]
fn the_baseline_sessions_confirm() {
    assert_eq!(actions(&run(&standard_session())), [CONFIRM]);
    assert_eq!(actions(&run(&verbose_session())), [CONFIRM]);
    // The request alone confirms; so does a reply line alone.
    assert_eq!(actions(&run(&standard_session()[..1])), [CONFIRM]);
    assert_eq!(actions(&run(&standard_session()[1..])), [CONFIRM]);
}

/// `Request`: accepted when the user (the stripped argument before its first `@`) is not empty or `/W` was given;
/// user and host are decoded as UTF-8 (REPLACE), which fails on a sequence cut by the end or an invalid code point.
#[test]
fn request_rules_follow_finger_spicy() {
    let decode = format!("violation {DECODE_ERROR}");
    let cases: [(&[u8], &[&str]); 17] = [
        (b"\r\n", &[]),
        (b"   \t \n", &[]),
        (b"/W\r\n", &[CONFIRM]),
        (b"  /W   \r\n", &[CONFIRM]),
        (b"/Wuser\r\n", &[CONFIRM]),
        (b"@host\r\n", &[]),
        (b"  user@host \r\n", &[CONFIRM]),
        (b"/\r\n", &[CONFIRM]),
        (b"/w\r\n", &[CONFIRM]),
        (b"/ \r\n", &[CONFIRM]),
        (b" \x0b\x0c\r\n", &[]),
        (b"\x0b@x\r\n", &[]),
        (b"ab\xc3x\r\n", &[CONFIRM]),
        (b"\xff\r\n", &[CONFIRM]),
        (b"\xc3\r\n", &[&decode]),
        (b"ab\xc3 \t\r\n", &[&decode]),
        (b"user@\xed\xa0\x80\r\n", &[&decode]),
    ];
    for (request, want) in cases {
        let h = run(&[(true, request.to_vec())]);
        assert_eq!(actions(&h), want, "{:?}", String::from_utf8_lossy(request));
    }
    // An empty host is not decoded; a bad one after a good user still fails.
    assert_eq!(actions(&run(&[(true, b"user@ \r\n".to_vec())])), [CONFIRM]);
    assert_eq!(actions(&run(&[(true, b"user@\xf4\x90\x80\x80\r\n".to_vec())])), [decode.as_str()]);
    // Only the first line is the request.
    assert_eq!(actions(&run(&[(true, b"\r\nuser\r\n".to_vec())])), Vec::<String>::new());
    assert_eq!(actions(&run(&[(true, b"user\r\n\xc3".to_vec())])), [CONFIRM]);
}

/// A request without its line end is complete at the end of the direction.
#[test]
fn a_request_ends_with_its_direction() {
    for request in [&b"user"[..], b"/", b"/W", b" /W x@y"] {
        assert_eq!(actions(&run(&[(true, request.to_vec())])), [CONFIRM], "{:?}", String::from_utf8_lossy(request));
    }
    let h = run(&[(true, b"x\xe2\x82".to_vec())]);
    assert_eq!(h.actions, [Action::Violation(DECODE_ERROR.into(), None)]);
}

/// `ReplyLine`: more than ten characters (code points after decoding, a replaced byte counting one) accept; the
/// line must end in `\r?\n`.
#[test]
fn reply_rules_follow_finger_spicy() {
    let regex = format!("violation {REGEX_ERROR}");
    let decode = format!("violation {DECODE_ERROR}");
    let ten_e_acute = "é".repeat(10);
    let eleven_e_acute = "é".repeat(11);
    let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (b"0123456789\r\n".to_vec(), vec![]),
        (b"0123456789a\r\n".to_vec(), vec![CONFIRM]),
        (b"0123456789a\n".to_vec(), vec![CONFIRM]),
        (format!("{ten_e_acute}\r\n").into_bytes(), vec![]),
        (format!("{eleven_e_acute}\r\n").into_bytes(), vec![CONFIRM]),
        ([&[0xffu8; 11][..], b"\n"].concat(), vec![CONFIRM]),
        // A truncated sequence inside the text is replaced (the next byte is no continuation)...
        (b"012345678\xe2x\r\n".to_vec(), vec![CONFIRM]),
        // ... one that ends the text is cut by its end, and a surrogate is an invalid code point: errors.
        (b"0123456789\xe2\r\n".to_vec(), vec![&decode]),
        (b"\xed\xa0\x80 and more text\r\n".to_vec(), vec![&decode]),
        (b"\r\n\n\r\n".to_vec(), vec![]),
        (b"abc\rdef\n".to_vec(), vec![&regex]),
        (b"0123456789a\r\nabc\rdef\n".to_vec(), vec![CONFIRM, &regex]),
        (b"abc".to_vec(), vec![&regex]),
        (b"abc\r".to_vec(), vec![&regex]),
        (b"abc\xc3".to_vec(), vec![&decode]),
    ];
    for (reply, want) in cases {
        let h = run(&[(false, reply.clone())]);
        assert_eq!(actions(&h), want, "{:?}", String::from_utf8_lossy(&reply));
    }
}

/// A violation carries the delivery it happened in (Spicy's `Process` passes it); one at the end of a direction has
/// none. After it nothing is analysed.
#[test]
fn violations_carry_their_delivery() {
    let h =
        run(&[(false, b"0123456789a\r\n".to_vec()), (false, b"x\ry".to_vec()), (false, b"0123456789ab\n".to_vec())]);
    assert_eq!(
        h.actions,
        [Action::Confirm("finger"), Action::Violation(REGEX_ERROR.into(), Some(b"x\ry".to_vec().into()))]
    );
    let h = run(&[(false, b"abc".to_vec())]);
    assert_eq!(h.actions, [Action::Violation(REGEX_ERROR.into(), None)]);
}

/// Both sides are streams: split at every byte boundary, each session gives the same actions as whole.
#[test]
fn every_split_point_gives_the_same_outcome() {
    let sessions: Vec<Vec<(bool, Vec<u8>)>> = vec![
        standard_session(),
        verbose_session(),
        vec![(true, b" /W \xc3\xa9x@h\r\n".to_vec()), (false, b"0123456789\xe2\x82\xac\r\nabc\rdef".to_vec())],
        vec![(true, b"ab\xc3 \r\n".to_vec())],
        vec![(false, b"\xf0\x9f\x98\x80 0123456789\r\n\xed\xa0\x80\n".to_vec())],
    ];
    for session in sessions {
        let whole = actions(&run(&session));
        for (i, (is_orig, message)) in session.iter().enumerate() {
            for at in 1..message.len() {
                let mut split = session.clone();
                split.splice(i..=i, [(*is_orig, message[..at].to_vec()), (*is_orig, message[at..].to_vec())]);
                assert_eq!(actions(&run(&split)), whole, "{:?} split at {at}", String::from_utf8_lossy(message));
            }
        }
    }
}

#[test]
fn a_gap_ends_its_direction_silently() {
    let mut h = Harness::new(Proto::Tcp, 79);
    let mut a = Finger::default();
    h.deliver(&mut a, false, b"abc");
    h.run(1.0, |ctx| a.undelivered(ctx, false, 5));
    h.deliver(&mut a, false, b"\rx\n");
    h.deliver(&mut a, true, b"user\r\n");
    h.finish(&mut a);
    assert_eq!(actions(&h), [CONFIRM]);
}

/// utfcpp's `next` loop over a whole buffer, as hilti's `decode` runs it: the reference for the byte-at-a-time
/// decoder.
fn decode_reference(bytes: &[u8]) -> Result<usize, &'static str> {
    let mut at = 0;
    let mut chars = 0;
    while at < bytes.len() {
        match step(&bytes[at..]) {
            Step::CodePoint(n) => at += n,
            Step::Replace => at += 1,
            Step::NeedMore | Step::Fail => return Err(DECODE_ERROR),
        }
        chars += 1;
    }
    Ok(chars)
}

#[test]
fn utf8_steps_follow_utfcpp() {
    assert_eq!(step(b"a"), Step::CodePoint(1));
    assert_eq!(step("é".as_bytes()), Step::CodePoint(2));
    assert_eq!(step("€".as_bytes()), Step::CodePoint(3));
    assert_eq!(step("😀".as_bytes()), Step::CodePoint(4));
    assert_eq!(step(b"\x80"), Step::Replace);
    assert_eq!(step(b"\xf8\x80\x80\x80"), Step::Replace);
    assert_eq!(step(b"\xc0\x80"), Step::Replace);
    assert_eq!(step(b"\xe0\x80\x80"), Step::Replace);
    assert_eq!(step(b"\xf0\x80\x80\x80"), Step::Replace);
    assert_eq!(step(b"\xe2\x28\xa1"), Step::Replace);
    assert_eq!(step(b"\xe2\x82"), Step::NeedMore);
    assert_eq!(step(b"\xed\xa0\x80"), Step::Fail);
    assert_eq!(step(b"\xf4\x90\x80\x80"), Step::Fail);
    assert_eq!(step(b"\xf5\x80\x80\x80"), Step::Fail);
    assert_eq!(decode_reference("a€😀".as_bytes()), Ok(3));
    assert_eq!(decode_reference(b"\xe2\x28\xa1"), Ok(3));
    assert_eq!(decode_reference(b"a\xe2\x82"), Err(DECODE_ERROR));
}

#[test]
fn the_byte_at_a_time_decoder_matches_the_whole_buffer() {
    let mut rng = XorShift(0x2468_ace0);
    let alphabet =
        [b'a', b' ', 0x80, 0xbf, 0xc0, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0, 0x9f, 0x98, 0xf4, 0x90, 0xff];
    for _ in 0..20_000 {
        let len = (rng.next() % 12) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
        let mut streamed = Utf8Decode::default();
        for &b in &bytes {
            streamed.push(b);
        }
        assert_eq!(streamed.finish(), decode_reference(&bytes), "{bytes:02x?}");
    }
}

#[test]
fn arbitrary_input_never_panics() {
    let mut rng = XorShift(0x1111_2222);
    let alphabet = b"/W @ab\r\n\t\x0b\xc3\xa9\xe2\x82\xed\xa0\xff\xfe\x00";
    for _ in 0..3000 {
        let len = (rng.next() % 80) as usize;
        let data: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
        fuzz(&data);
    }
}

/// Through the engine: Finger attaches on port 79 only (Zeek has no Finger signature) and names the service; a
/// reply that breaks the grammar after the confirmation is in analyzer.log with its delivery, the service gone.
#[test]
fn through_the_engine_on_port_79() {
    let on_port = |port: u16, messages: &[(bool, &[u8])]| {
        let frames = crate::decode::test_frames::tcp_conversation(
            ([192, 168, 7, 216], 56149),
            ([95, 179, 238, 241], port),
            messages,
        );
        engine_records(&frames)
    };
    let standard = standard_session();
    let messages: Vec<(bool, &[u8])> = standard.iter().map(|(o, m)| (*o, m.as_slice())).collect();
    let service = |records: &[crate::logs::LogRecord]| {
        let conn: Vec<_> = records.iter().filter(|r| r.schema.path == "conn").collect();
        assert_eq!(conn.len(), 1);
        field(conn[0], "service")
    };
    assert_eq!(service(&on_port(79, &messages)), "finger");
    assert_eq!(service(&on_port(7979, &messages)), "-");

    let records = on_port(79, &[(true, b"julien\r\n"), (false, b"Login: julien\r\nbad\rline\n")]);
    assert_eq!(service(&records), "-");
    let analyzer: Vec<_> = records.iter().filter(|r| r.schema.path == "analyzer").collect();
    assert_eq!(analyzer.len(), 1);
    assert_eq!(field(analyzer[0], "analyzer_name"), "FINGER");
    assert_eq!(field(analyzer[0], "failure_reason"), REGEX_ERROR);
    assert_eq!(field(analyzer[0], "failure_data"), "Login: julien\\x0d\\x0abad\\x0dline\\x0a");
}
