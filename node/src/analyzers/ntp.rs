//! NTP (RFC 5905) over UDP port 123: every message of a standard mode (1-5) becomes an ntp.log record, as
//! Zeek's base/protocols/ntp writes them. Control (6) and private (7) messages confirm the protocol only.

use std::net::Ipv4Addr;

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, be_u16, be_u32};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static NTP_LOG: Schema = Schema {
    path: "ntp",
    fields: conn_fields![
        f("version", "count"),
        f("mode", "count"),
        f("stratum", "count"),
        f("poll", "interval"),
        f("precision", "interval"),
        f("root_delay", "interval"),
        f("root_disp", "interval"),
        f("ref_id", "string"),
        f("ref_time", "time"),
        f("org_time", "time"),
        f("rec_time", "time"),
        f("xmt_time", "time"),
        f("num_exts", "count"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ntp",
    tcp_ports: &[],
    udp_ports: &[123],
    detect: None,
    new: |_| Box::new(Ntp::default()),
    schemas: &[&NTP_LOG],
};

const MODE_CLIENT: u8 = 3;
const MODE_SERVER: u8 = 4;
const MODE_CONTROL: u8 = 6;
const MODE_PRIVATE: u8 = 7;
/// Header of a standard message: everything up to and including the transmit timestamp.
const STANDARD_LEN: usize = 48;
/// Seconds from the NTP era (1900) to the Unix epoch.
const NTP_TO_UNIX: f64 = 2_208_988_800.0;

/// Why a datagram is not NTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NtpError {
    #[error("Binpac exception: NTP message too short for mode {0}")]
    Truncated(u8),
    #[error("Binpac exception: empty NTP message")]
    Empty,
}

/// The fields of a standard (mode 1-5) message that ntp.log shows.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardMessage {
    pub stratum: u8,
    /// Seconds (2^poll).
    pub poll: f64,
    /// Seconds (2^precision).
    pub precision: f64,
    pub root_delay: f64,
    pub root_disp: f64,
    /// Kiss code (stratum 0), reference clock name (stratum 1) or the reference server's IPv4 address.
    pub ref_id: String,
    pub ref_time: f64,
    pub org_time: f64,
    pub rec_time: f64,
    pub xmt_time: f64,
    pub num_exts: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub version: u8,
    pub mode: u8,
    pub standard: Option<StandardMessage>,
}

/// An NTP short format value (16.16 fixed point) in seconds.
fn short_time(b: &[u8], at: usize) -> f64 {
    f64::from(be_u16(b, at)) + f64::from(be_u16(b, at + 2)) / 65_536.0
}

/// An NTP timestamp (32.32 fixed point since 1900) as Unix time; zero stays zero ("not set").
fn timestamp(b: &[u8], at: usize) -> f64 {
    let (secs, frac) = (be_u32(b, at), be_u32(b, at + 4));
    if secs == 0 && frac == 0 {
        return 0.0;
    }
    f64::from(secs) - NTP_TO_UNIX + f64::from(frac) / 4_294_967_296.0
}

/// Extension fields (RFC 7822) between the header and an optional MAC of 20 or 24 bytes.
fn count_extensions(mut rest: &[u8]) -> u64 {
    const LONGEST_MAC: usize = 24;
    let mut n = 0;
    while rest.len() > LONGEST_MAC {
        let len = usize::from(be_u16(rest, 2));
        if len < 4 || len > rest.len() {
            break;
        }
        n += 1;
        rest = &rest[len..];
    }
    n
}

fn parse_standard(data: &[u8]) -> StandardMessage {
    let stratum = data[1];
    let ref_raw = &data[12..16];
    let ref_id = match stratum {
        0 | 1 => bytes_to_log_string(ref_raw),
        _ => Ipv4Addr::new(ref_raw[0], ref_raw[1], ref_raw[2], ref_raw[3]).to_string(),
    };
    StandardMessage {
        stratum,
        poll: 2f64.powi(i32::from(data[2] as i8)),
        precision: 2f64.powi(i32::from(data[3] as i8)),
        root_delay: short_time(data, 4),
        root_disp: short_time(data, 8),
        ref_id,
        ref_time: timestamp(data, 16),
        org_time: timestamp(data, 24),
        rec_time: timestamp(data, 32),
        xmt_time: timestamp(data, 40),
        num_exts: count_extensions(&data[STANDARD_LEN..]),
    }
}

/// Parses one NTP datagram.
pub fn parse(data: &[u8]) -> Result<Message, NtpError> {
    let &first = data.first().ok_or(NtpError::Empty)?;
    let version = (first >> 3) & 0x07;
    let mode = first & 0x07;
    let standard = match mode {
        1..=5 if data.len() < STANDARD_LEN => return Err(NtpError::Truncated(mode)),
        1..=5 => Some(parse_standard(data)),
        MODE_CONTROL => {
            // Control header (12 bytes) and its count of data bytes.
            if data.len() < 12 || data.len() < 12 + usize::from(be_u16(data, 10)) {
                return Err(NtpError::Truncated(mode));
            }
            None
        }
        MODE_PRIVATE if data.len() < 8 => return Err(NtpError::Truncated(mode)),
        _ => None,
    };
    Ok(Message { version, mode, standard })
}

#[derive(Default)]
struct Ntp {
    confirmed: bool,
    flipped: bool,
}

impl Analyzer for Ntp {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        let msg = match parse(data) {
            Ok(m) => m,
            Err(e) => return ctx.violation(e.to_string()),
        };
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("ntp");
        }
        // A server message from the originator (or a client message from the responder) means the roles are
        // the other way round; Zeek flips them once.
        let flip_now = !self.flipped && ((msg.mode == MODE_SERVER && is_orig) || (msg.mode == MODE_CLIENT && !is_orig));
        if flip_now {
            self.flipped = true;
            ctx.flip_roles();
        }
        if msg.mode <= 5 {
            ctx.log(&NTP_LOG, record(ctx, &msg, flip_now));
        }
    }
}

/// The ntp.log record of `msg`; `flipped` when the roles change with this message (its record already shows
/// the new orientation, as Zeek's event runs after the flip).
fn record(ctx: &Ctx, msg: &Message, flipped: bool) -> Vec<Value> {
    let mut v = ctx.conn_columns(ctx.ts);
    if flipped {
        v.swap(2, 4);
        v.swap(3, 5);
    }
    v.extend([Value::Count(msg.version.into()), Value::Count(msg.mode.into())]);
    match &msg.standard {
        Some(s) => v.extend([
            Value::Count(s.stratum.into()),
            Value::Interval(s.poll),
            Value::Interval(s.precision),
            Value::Interval(s.root_delay),
            Value::Interval(s.root_disp),
            Value::str(&s.ref_id),
            Value::Time(s.ref_time),
            Value::Time(s.org_time),
            Value::Time(s.rec_time),
            Value::Time(s.xmt_time),
            Value::Count(s.num_exts),
        ]),
        None => {
            v.extend(std::iter::repeat_n(Value::Unset, 10));
            v.push(Value::Count(0));
        }
    }
    v
}

/// Fuzz entry point: arbitrary datagrams in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Ntp::default(), Proto::Udp, 123, data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Action;
    use crate::analyzers::testing::Harness;

    /// A client request (version 4, mode 3) as in Zeek's gre-sample trace.
    fn client_request() -> Vec<u8> {
        let mut m = vec![0x23, 11, 6, 0xec]; // LI 0, v4, mode 3; stratum 11; poll 2^6; precision 2^-20
        m.extend_from_slice(&[0, 0, 0, 0]); // root delay
        m.extend_from_slice(&[0, 0, 0x02, 0xd6]); // root dispersion 726/65536 s
        m.extend_from_slice(&[127, 127, 1, 1]); // reference id
        m.extend_from_slice(&[0xc5, 0x7e, 0x2c, 0xec, 0x80, 0, 0, 0]); // reference timestamp
        m.extend_from_slice(&[0; 16]); // origin, receive
        m.extend_from_slice(&[0xc5, 0x7e, 0x2d, 0x35, 0x40, 0, 0, 0]); // transmit
        m
    }

    #[test]
    fn standard_message_fields() {
        let msg = parse(&client_request()).unwrap();
        assert_eq!((msg.version, msg.mode), (4, 3));
        let s = msg.standard.unwrap();
        assert_eq!(s.stratum, 11);
        assert_eq!(s.poll, 64.0);
        assert_eq!(format!("{:.6}", s.precision), "0.000001");
        assert_eq!(format!("{:.6}", s.root_disp), "0.011078");
        assert_eq!(s.ref_id, "127.127.1.1");
        assert_eq!(s.ref_time, 3_313_380_588.5 - NTP_TO_UNIX);
        assert_eq!(s.org_time, 0.0, "a zero timestamp is logged as 0");
        assert_eq!(s.num_exts, 0);
    }

    #[test]
    fn stratum_one_names_its_clock() {
        let mut m = client_request();
        m[1] = 1;
        m[12..16].copy_from_slice(b"GPS\0");
        assert_eq!(parse(&m).unwrap().standard.unwrap().ref_id, "GPS\0");
    }

    #[test]
    fn extension_fields_are_counted_and_macs_are_not() {
        let mut m = client_request();
        m.extend_from_slice(&[0; 20]); // MAC only
        assert_eq!(parse(&m).unwrap().standard.unwrap().num_exts, 0);
        let mut m = client_request();
        m.extend_from_slice(&[0x01, 0x04, 0, 16]);
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[0x02, 0x04, 0, 16]);
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[0; 20]);
        assert_eq!(parse(&m).unwrap().standard.unwrap().num_exts, 2);
    }

    #[test]
    fn logs_each_message_and_confirms_once() {
        let mut h = Harness::new(Proto::Udp, 123);
        let mut a = (SPEC.new)(Proto::Udp);
        h.deliver(a.as_mut(), true, &client_request());
        let mut reply = client_request();
        reply[0] = 0x24;
        h.deliver(a.as_mut(), false, &reply);
        assert_eq!(h.actions, vec![Action::Confirm("ntp")]);
        let logged = h.logged("ntp");
        assert_eq!(logged.len(), 2);
        assert_eq!(logged[1].get("mode"), Some(&Value::Count(4)));
        assert_eq!(logged[0].get("ref_id"), Some(&Value::str("127.127.1.1")));
    }

    #[test]
    fn server_message_from_the_originator_flips_roles_once() {
        let mut h = Harness::new(Proto::Udp, 123);
        let mut a = (SPEC.new)(Proto::Udp);
        let mut reply = client_request();
        reply[0] = 0x24;
        h.deliver(a.as_mut(), true, &reply);
        h.deliver(a.as_mut(), true, &reply);
        assert_eq!(h.actions.iter().filter(|a| **a == Action::FlipRoles).count(), 1);
        let logged = h.logged("ntp");
        assert_eq!(logged[0].get("id.orig_h"), Some(&Value::Addr(h.id.resp_h)));
    }

    #[test]
    fn short_or_garbage_input_is_a_violation() {
        assert_eq!(parse(&[]), Err(NtpError::Empty));
        assert_eq!(parse(b"\x23hello"), Err(NtpError::Truncated(MODE_CLIENT)));
        assert!(parse(b"\x20").is_ok(), "mode 0 has no body to check, as in Zeek");
        let mut control = vec![0x16, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8];
        assert_eq!(parse(&control), Err(NtpError::Truncated(6)));
        control.extend_from_slice(&[0; 8]);
        assert!(parse(&control).unwrap().standard.is_none());
        let mut h = Harness::new(Proto::Udp, 123);
        let mut a = (SPEC.new)(Proto::Udp);
        h.deliver(a.as_mut(), true, b"\x23hello");
        assert!(matches!(h.actions[0], Action::Violation(..)));
        assert!(h.logged("ntp").is_empty());
    }

    #[test]
    fn fuzz_never_panics_on_short_input() {
        for n in 0..64 {
            let mut input = vec![0, n as u8];
            input.extend(client_request().into_iter().take(n));
            fuzz(&input);
        }
    }
}
