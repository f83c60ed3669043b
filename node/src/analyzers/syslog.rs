//! Syslog over UDP and TCP port 514: every message becomes a syslog.log record, as Zeek's base/protocols/syslog
//! writes them.
//!
//! The grammar is Zeek's Spicy one (src/analyzer/protocol/syslog/syslog.spicy). A datagram is one `Message`: an
//! optional `<digits>` priority, then the rest of the datagram as the text. A TCP direction is a run of RFC 6587
//! frames (`Frames`): octet counting (`LEN SP` and a `Message` of exactly LEN bytes) or non-transparent framing
//! (`<digits>`, at least one byte that is not NUL, CR or LF, then one or more of those). A non-transparent frame
//! is complete once its run of terminators is, which the byte after it (or the end of the direction) shows; its
//! record carries that moment's time, as Zeek's event does. A message that does not parse is a violation: on UDP
//! that datagram is not logged, on TCP that direction stops.

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static SYSLOG_LOG: Schema = Schema {
    path: "syslog",
    fields: conn_fields![f("proto", "enum"), f("facility", "string"), f("severity", "string"), f("message", "string"),],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "syslog",
    tcp_ports: &[514],
    udp_ports: &[514],
    detect: None,
    new: |proto| Box::new(Syslog::new(proto)),
    schemas: &[&SYSLOG_LOG],
};

/// Facility and severity when a message has no priority (Zeek's analyzer passes 999 for both).
const NO_PRIORITY: u64 = 999;
/// Longest TCP frame buffered: a direction that sends more without completing a frame stops (Zeek's parser would
/// buffer on; a bound keeps one connection from holding unbounded memory).
const MAX_FRAME: usize = 64 << 10;

/// Why bytes are not syslog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyslogError {
    #[error("syslog priority not closed by '>'")]
    UnclosedPriority,
    #[error("syslog priority or frame length out of range")]
    NumberOutOfRange,
    #[error("syslog frame starts with neither a length nor a priority")]
    UnknownFraming,
    #[error("syslog frame length not followed by a space")]
    BadFrameLength,
    #[error("syslog message empty or not terminated")]
    UnterminatedMessage,
    #[error("syslog frame longer than {MAX_FRAME} bytes")]
    FrameTooLong,
}

/// One parsed message: the priority's facility and severity ([`NO_PRIORITY`] without one) and the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub facility: u64,
    pub severity: u64,
    pub text: &'a [u8],
}

impl<'a> Message<'a> {
    fn with_priority(priority: u64, text: &'a [u8]) -> Self {
        Message { facility: (priority & 0x03f8) >> 3, severity: priority & 0x07, text }
    }
}

/// Zeek's `Syslog::Message` over all of `data` (a datagram, or an octet-counted frame's body).
pub fn parse_message(data: &[u8]) -> Result<Message<'_>, SyslogError> {
    if !data.starts_with(b"<") {
        return Ok(Message { facility: NO_PRIORITY, severity: NO_PRIORITY, text: data });
    }
    match priority(data, true)? {
        Some((value, len)) => Ok(Message::with_priority(value, &data[len..])),
        None => Err(SyslogError::UnclosedPriority),
    }
}

/// A `<digits>` priority at the start of `data` (which starts with `<`): its value and length, `None` when `data`
/// may still grow into one (unless `at_end`, when that is an error).
fn priority(data: &[u8], at_end: bool) -> Result<Option<(u64, usize)>, SyslogError> {
    let digits = data[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    match data.get(1 + digits) {
        None if !at_end => Ok(None),
        Some(b'>') if digits > 0 => Ok(Some((decimal(&data[1..1 + digits])?, digits + 2))),
        _ => Err(SyslogError::UnclosedPriority),
    }
}

/// Spicy's `to_uint` of a run of ASCII digits: an error past 64 bits.
fn decimal(digits: &[u8]) -> Result<u64, SyslogError> {
    digits
        .iter()
        .try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or(SyslogError::NumberOutOfRange)
}

/// What the start of a TCP direction's buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame, `len` bytes of the buffer.
    Complete { message: Message<'a>, len: usize },
    /// Not enough bytes yet to tell.
    Incomplete,
}

fn is_terminator(b: u8) -> bool {
    matches!(b, 0 | b'\n' | b'\r')
}

/// Zeek's `Syslog::Frame` at the start of `data`; `at_end` when the direction ended (nothing more will come).
pub fn parse_frame(data: &[u8], at_end: bool) -> Result<Frame<'_>, SyslogError> {
    let wait = |too_long: bool| match (at_end, too_long) {
        (true, _) => Err(SyslogError::UnterminatedMessage),
        (false, true) => Err(SyslogError::FrameTooLong),
        (false, false) => Ok(Frame::Incomplete),
    };
    match data.first() {
        None => Ok(Frame::Incomplete),
        Some(b'1'..=b'9') => {
            let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
            let Some(&after) = data.get(digits) else { return wait(digits > MAX_FRAME) };
            if after != b' ' {
                return Err(SyslogError::BadFrameLength);
            }
            let body_len = usize::try_from(decimal(&data[..digits])?).map_err(|_| SyslogError::NumberOutOfRange)?;
            let start = digits + 1;
            match data.get(start..start.saturating_add(body_len)) {
                Some(body) => Ok(Frame::Complete { message: parse_message(body)?, len: start + body_len }),
                None => wait(body_len > MAX_FRAME),
            }
        }
        Some(b'<') => {
            let Some((value, prio_len)) = priority(data, at_end)? else { return wait(data.len() > MAX_FRAME) };
            let rest = &data[prio_len..];
            // The text is at least one byte that is not a terminator; the run of terminators after it may go on
            // in the next segment until a byte of the next frame (or the end) shows where it stops.
            let text_len = rest.iter().take_while(|&&b| !is_terminator(b)).count();
            if text_len == 0 && !rest.is_empty() {
                return Err(SyslogError::UnterminatedMessage);
            }
            let terminators = rest[text_len..].iter().take_while(|&&b| is_terminator(b)).count();
            let len = prio_len + text_len + terminators;
            if terminators == 0 || (len == data.len() && !at_end) {
                return wait(len > MAX_FRAME);
            }
            Ok(Frame::Complete { message: Message::with_priority(value, &rest[..text_len]), len })
        }
        Some(_) => Err(SyslogError::UnknownFraming),
    }
}

/// Zeek's `Syslog::facility_codes`.
fn facility_name(code: u64) -> String {
    const NAMES: [&str; 24] = [
        "KERN", "USER", "MAIL", "DAEMON", "AUTH", "SYSLOG", "LPR", "NEWS", "UUCP", "CRON", "AUTHPRIV", "FTP", "NTP",
        "AUDIT", "ALERT", "CLOCK", "LOCAL0", "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4", "LOCAL5", "LOCAL6", "LOCAL7",
    ];
    code_name(&NAMES, code)
}

/// Zeek's `Syslog::severity_codes`.
fn severity_name(code: u64) -> String {
    const NAMES: [&str; 8] = ["EMERG", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG"];
    code_name(&NAMES, code)
}

/// The table's name for `code`, or its `&default` (`?-<code>`).
fn code_name(names: &[&str], code: u64) -> String {
    usize::try_from(code).ok().and_then(|i| names.get(i)).map_or_else(|| format!("?-{code}"), |n| (*n).to_string())
}

/// One direction of a TCP connection: bytes of a frame not complete yet.
#[derive(Default)]
struct Direction {
    pending: Vec<u8>,
    stopped: bool,
}

pub struct Syslog {
    proto: Proto,
    confirmed: bool,
    directions: [Direction; 2],
}

impl Syslog {
    fn new(proto: Proto) -> Self {
        Syslog { proto, confirmed: false, directions: Default::default() }
    }

    fn direction(&mut self, is_orig: bool) -> &mut Direction {
        &mut self.directions[usize::from(!is_orig)]
    }

    fn log(&mut self, ctx: &mut Ctx, message: &Message) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("syslog");
        }
        let mut v = ctx.conn_columns(ctx.ts);
        v.extend([
            Value::Enum(ctx.id.proto.as_enum()),
            Value::Str(facility_name(message.facility)),
            Value::Str(severity_name(message.severity)),
            Value::Str(bytes_to_log_string(message.text)),
        ]);
        ctx.log(&SYSLOG_LOG, v);
    }

    /// Logs every complete frame buffered for `is_orig`'s direction; `at_end` when that direction ended. A frame
    /// that does not parse is a violation whose data is the delivery being parsed (`delivery`; none at the end of
    /// the direction), as Zeek's Spicy glue reports it (`ProtocolAnalyzer::Process`, `Finish`).
    fn drain_frames(&mut self, ctx: &mut Ctx, is_orig: bool, at_end: bool, delivery: &[u8]) {
        let mut pending = std::mem::take(&mut self.direction(is_orig).pending);
        let mut used = 0;
        let outcome = loop {
            match parse_frame(&pending[used..], at_end) {
                Ok(Frame::Complete { message, len }) => {
                    self.log(ctx, &message);
                    used += len;
                }
                Ok(Frame::Incomplete) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        match outcome {
            Ok(()) => {
                pending.drain(..used);
                self.direction(is_orig).pending = pending;
            }
            Err(e) => {
                self.direction(is_orig).stopped = true;
                ctx.violation_with_data(e.to_string(), delivery);
            }
        }
    }
}

impl Analyzer for Syslog {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.proto != Proto::Tcp {
            return match parse_message(data) {
                Ok(message) => self.log(ctx, &message),
                Err(e) => ctx.violation_with_data(e.to_string(), data),
            };
        }
        let direction = self.direction(is_orig);
        if direction.stopped {
            return;
        }
        // A terminated frame whose priority parsed cannot complete or fail before a terminator comes: parsing it
        // again for every segment would cost its length each time (quadratic in a frame sent a byte at a time).
        let pending = &direction.pending;
        let waiting_for_terminator = pending.first() == Some(&b'<')
            && matches!(priority(pending, false), Ok(Some(_)))
            && !pending.last().is_some_and(|&b| is_terminator(b))
            && !data.iter().any(|&b| is_terminator(b));
        direction.pending.extend_from_slice(data);
        if !waiting_for_terminator || direction.pending.len() > MAX_FRAME {
            self.drain_frames(ctx, is_orig, false, data);
        }
    }

    /// A gap: the frame it falls in cannot be parsed, and Zeek's grammar has no point to resynchronize at.
    fn undelivered(&mut self, _ctx: &mut Ctx, is_orig: bool, _len: u64) {
        let direction = self.direction(is_orig);
        direction.stopped = true;
        direction.pending = Vec::new();
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        let direction = self.direction(is_orig);
        let frame_pending = !direction.stopped && !direction.pending.is_empty();
        if frame_pending && self.proto == Proto::Tcp {
            self.drain_frames(ctx, is_orig, true, &[]);
        }
        self.direction(is_orig).stopped = true;
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        for is_orig in [true, false] {
            self.end_of_data(ctx, is_orig);
        }
    }
}

/// Fuzz entry point: arbitrary datagrams, and arbitrary segments of a TCP stream, in both directions.
pub fn fuzz(data: &[u8]) {
    for proto in [Proto::Udp, Proto::Tcp] {
        super::fuzzing::drive(&mut Syslog::new(proto), proto, 514, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Action;
    use crate::analyzers::testing::Harness;

    /// (facility, severity, message) of each syslog.log record, and the actions.
    fn run(proto: Proto, deliveries: &[&[u8]], end: bool) -> (Vec<[String; 3]>, Vec<Action>) {
        let mut h = Harness::new(proto, 514);
        let mut analyzer = Syslog::new(proto);
        for data in deliveries {
            h.deliver(&mut analyzer, true, data);
        }
        if end {
            h.finish(&mut analyzer);
        }
        let rows = h.logged("syslog").iter().map(|r| [7, 8, 9].map(|i| r.values[i].to_tsv())).collect();
        (rows, h.actions)
    }

    fn row(facility: &str, severity: &str, message: &str) -> [String; 3] {
        [facility, severity, message].map(String::from)
    }

    fn violated(actions: &[Action]) -> bool {
        actions.iter().any(|a| matches!(a, Action::Violation(..)))
    }

    #[test]
    fn a_datagram_is_one_message() {
        let (rows, actions) = run(
            Proto::Udp,
            &[
                b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n",
                b"<165>1 2003-10-11T22:14:15.003Z host app - ID47 - event",
                b"kernel: eth0 link up",
                b"<191>",
                b"<1023>x",
            ],
            true,
        );
        assert_eq!(
            rows,
            [
                row("AUTH", "CRIT", r"Oct 11 22:14:15 mymachine su: 'su root' failed\x0a"),
                row("LOCAL4", "NOTICE", "1 2003-10-11T22:14:15.003Z host app - ID47 - event"),
                row("?-999", "?-999", "kernel: eth0 link up"),
                row("LOCAL7", "DEBUG", "(empty)"),
                row("?-127", "DEBUG", "x"),
            ]
        );
        assert_eq!(actions, [Action::Confirm("syslog")], "confirmed once");
    }

    #[test]
    fn a_datagram_with_an_unclosed_priority_is_a_violation() {
        for message in [&b"<34 Oct 11 22:14:15 host"[..], b"<>x", b"<abc>x", b"<", b"<99999999999999999999999>x"] {
            let (rows, actions) = run(Proto::Udp, &[message], true);
            assert!(rows.is_empty() && violated(&actions), "{message:?}");
        }
        let (rows, actions) = run(Proto::Udp, &[b"<13>ok", b"<13"], true);
        assert_eq!(rows, [row("USER", "NOTICE", "ok")]);
        assert!(matches!(actions[..], [Action::Confirm("syslog"), Action::Violation(..)]));
    }

    #[test]
    fn tcp_frames_are_octet_counted_or_terminated() {
        let stream: &[u8] = b"<13>first\n<14>second\r\n\x0018 <86>sshd: accepted<11>last\n";
        let (whole, actions) = run(Proto::Tcp, &[stream], true);
        let expected = [
            row("USER", "NOTICE", "first"),
            row("USER", "INFO", "second"),
            row("AUTHPRIV", "INFO", "sshd: accepted"),
            row("USER", "ERR", "last"),
        ];
        assert_eq!(whole, expected);
        assert_eq!(actions, [Action::Confirm("syslog")]);
        // Split at every byte: the same frames.
        for at in 0..=stream.len() {
            let (split, _) = run(Proto::Tcp, &[&stream[..at], &stream[at..]], true);
            assert_eq!(split, expected, "split at {at}");
        }
    }

    #[test]
    fn a_terminated_frame_is_logged_once_its_terminators_end() {
        let (rows, _) = run(Proto::Tcp, &[b"<13>first\n"], false);
        assert!(rows.is_empty(), "more terminators may follow");
        let (rows, _) = run(Proto::Tcp, &[b"<13>first\n", b"<"], false);
        assert_eq!(rows, [row("USER", "NOTICE", "first")]);
        let (rows, actions) = run(Proto::Tcp, &[b"<13>first\n<13>cut"], true);
        assert_eq!(rows, [row("USER", "NOTICE", "first")], "a frame the direction's end cuts is not logged");
        assert!(violated(&actions));
    }

    #[test]
    fn a_long_frame_sent_a_byte_at_a_time_is_parsed_whole() {
        let frame = [&b"<13>"[..], &vec![b'x'; 20_000], b"\n<"].concat();
        let segments: Vec<&[u8]> = frame.chunks(1).collect();
        let (rows, actions) = run(Proto::Tcp, &segments, false);
        assert_eq!(rows.len(), 1, "logged once the next frame starts");
        assert_eq!(rows[0][2].len(), 20_000);
        assert_eq!(actions, [Action::Confirm("syslog")]);
        // A priority that cannot parse fails at once, terminator or not.
        let (rows, actions) = run(Proto::Tcp, &[b"<1", b"3x", b"abc"], false);
        assert!(rows.is_empty() && violated(&actions));
    }

    #[test]
    fn bad_tcp_framing_stops_the_direction() {
        for stream in [&b"hello\n"[..], b"<13>\n", b"012 x", b"12x<13>a\n", b"<13x>a\n"] {
            let (rows, actions) = run(Proto::Tcp, &[stream, b"<13>later\n<"], true);
            assert!(rows.is_empty() && violated(&actions), "{stream:?}");
        }
        let endless = vec![b'a'; MAX_FRAME + 1];
        let (rows, actions) = run(Proto::Tcp, &[b"<13>", &endless], false);
        assert!(rows.is_empty() && violated(&actions), "a frame past the bound");
    }

    /// Through the engine: port 514 attaches the analyzer on UDP and TCP, the records carry the connection's uid
    /// and id, conn.log names the service; a datagram that is not syslog names nothing.
    #[test]
    fn through_the_engine() {
        use crate::analyzers::testing::{engine_records, field};
        use crate::decode::test_frames::{ipv4_udp, tcp_exchange};

        const CLIENT: [u8; 4] = [10, 0, 0, 1];
        const SERVER: [u8; 4] = [10, 0, 0, 2];
        let mut frames = vec![
            ipv4_udp((CLIENT, 40000), (SERVER, 514), b"<34>Oct 11 22:14:15 host su: failed"),
            ipv4_udp((CLIENT, 40001), (SERVER, 514), b"<34 no priority end"),
        ];
        frames.extend(tcp_exchange(
            (CLIENT, 40002),
            (SERVER, 514),
            &[(true, &b"10 <13>hello\n"[..]), (true, b"<14>x\n")],
        ));
        let records = engine_records(&frames);
        let conns: Vec<_> = records.iter().filter(|r| r.schema.path == "conn").collect();
        let services: Vec<_> = conns.iter().map(|c| (field(c, "id.orig_p"), field(c, "service"))).collect();
        assert_eq!(
            services,
            [("40000", "syslog"), ("40001", "-"), ("40002", "syslog")].map(|(p, s)| (p.into(), s.into()))
        );
        let logged: Vec<_> = records
            .iter()
            .filter(|r| r.schema.path == "syslog")
            .map(|r| ["uid", "id.orig_p", "proto", "facility", "severity", "message"].map(|f| field(r, f)))
            .collect();
        let uid = |port: &str| field(conns.iter().find(|c| field(c, "id.orig_p") == port).unwrap(), "uid");
        let expected = [
            [
                uid("40000"),
                "40000".into(),
                "udp".into(),
                "AUTH".into(),
                "CRIT".into(),
                "Oct 11 22:14:15 host su: failed".into(),
            ],
            [uid("40002"), "40002".into(), "tcp".into(), "USER".into(), "NOTICE".into(), r"hello\x0a".into()],
            [uid("40002"), "40002".into(), "tcp".into(), "USER".into(), "INFO".into(), "x".into()],
        ];
        assert_eq!(logged, expected);
    }

    #[test]
    fn names_follow_zeeks_tables() {
        assert_eq!(
            (facility_name(0), facility_name(23), facility_name(24)),
            ("KERN".into(), "LOCAL7".into(), "?-24".into())
        );
        assert_eq!(
            (severity_name(0), severity_name(7), severity_name(999)),
            ("EMERG".into(), "DEBUG".into(), "?-999".into())
        );
    }
}
