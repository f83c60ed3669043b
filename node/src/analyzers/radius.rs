//! RADIUS (udp 1812) to radius.log, as Zeek's binpac analyzer (src/analyzer/protocol/radius/radius-protocol.pac,
//! radius-analyzer.pac) and base/protocols/radius/main.zeek do it.
//!
//! Each datagram is one message: code, identifier, length and authenticator (20 bytes), then attributes (type,
//! length, `length - 2` value bytes) until the datagram ends (the header's own length is not used). A whole message
//! confirms the analyzer from either side (`proc_radius_message`); one that does not parse is a violation.
//!
//! The script keeps one record per connection from its first message: an Access-Request gives the first user name,
//! Calling-Station-Id (as a MAC), Tunnel-Client-Endpoint and Connect-Info; an Access-Challenge the first
//! Framed-IP-Address and Reply-Message. An Access-Accept or Access-Reject sets `result` (`success`, `failed`) and
//! writes the record then (`ttl` the time since its first message, unless zero), and the next message starts a new
//! one; a record still open when the connection ends is written with `result` `unknown`.

use std::net::{IpAddr, Ipv4Addr};

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static RADIUS_LOG: Schema = Schema {
    path: "radius",
    fields: conn_fields![
        f("username", "string"),
        f("mac", "string"),
        f("framed_addr", "addr"),
        f("tunnel_client", "string"),
        f("connect_info", "string"),
        f("reply_msg", "string"),
        f("result", "string"),
        f("ttl", "interval"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "radius",
    tcp_ports: &[],
    udp_ports: &[1812],
    detect: None,
    new: |_| Box::new(Radius::default()),
    schemas: &[&RADIUS_LOG],
};

const ACCESS_REQUEST: u8 = 1;
const ACCESS_ACCEPT: u8 = 2;
const ACCESS_REJECT: u8 = 3;
const ACCESS_CHALLENGE: u8 = 11;

const USER_NAME: u8 = 1;
const FRAMED_IP_ADDRESS: u8 = 8;
const REPLY_MESSAGE: u8 = 18;
const CALLING_STATION_ID: u8 = 31;
const TUNNEL_CLIENT_ENDPOINT: u8 = 66;
const CONNECT_INFO: u8 = 77;

/// Where binpac would throw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Binpac exception: malformed RADIUS message")]
pub struct Malformed;

/// One message: its code and its attributes (type, value) in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub code: u8,
    pub attributes: Vec<(u8, &'a [u8])>,
}

impl<'a> Message<'a> {
    /// The first value of attribute `code` (the script's `result$attributes[code][0]`).
    fn first(&self, code: u8) -> Option<&'a [u8]> {
        self.attributes.iter().find(|(c, _)| *c == code).map(|&(_, value)| value)
    }
}

/// `RADIUS_PDU` over a whole datagram.
pub fn parse(data: &[u8]) -> Result<Message<'_>, Malformed> {
    let (header, mut rest) = data.split_at_checked(20).ok_or(Malformed)?;
    let mut attributes = Vec::new();
    while let [code, length, tail @ ..] = rest {
        let value_len = usize::from(*length).checked_sub(2).filter(|&l| l <= tail.len()).ok_or(Malformed)?;
        attributes.push((*code, &tail[..value_len]));
        rest = &tail[value_len..];
    }
    if !rest.is_empty() {
        return Err(Malformed);
    }
    Ok(Message { code: header[0], attributes })
}

/// Zeek's `normalize_mac`: the hex digits, lower-cased, as colon-separated octets when there are 12 or 32 of
/// them, else the empty string.
fn normalize_mac(raw: &[u8]) -> String {
    let digits: Vec<u8> = raw.iter().filter(|b| b.is_ascii_hexdigit()).map(u8::to_ascii_lowercase).collect();
    if digits.len() != 12 && digits.len() != 32 {
        return String::new();
    }
    let octets: Vec<&str> = digits.chunks(2).map(|pair| std::str::from_utf8(pair).unwrap_or_default()).collect();
    octets.join(":")
}

/// Zeek's `raw_bytes_to_v4_addr`: the first four bytes, or 0.0.0.0 for fewer.
fn raw_bytes_to_v4_addr(raw: &[u8]) -> IpAddr {
    match raw {
        [a, b, c, d, ..] => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// The connection's open radius.log record.
#[derive(Debug, Default, Clone, PartialEq)]
struct Info {
    ts: f64,
    username: Option<Vec<u8>>,
    mac: Option<String>,
    framed_addr: Option<IpAddr>,
    tunnel_client: Option<Vec<u8>>,
    connect_info: Option<Vec<u8>>,
    reply_msg: Option<Vec<u8>>,
}

impl Info {
    /// The script's handler at priority 5: the first value of each attribute the record keeps.
    fn add(&mut self, message: &Message) {
        let keep = |field: &mut Option<Vec<u8>>, code| {
            if field.is_none() {
                *field = message.first(code).map(<[u8]>::to_vec);
            }
        };
        match message.code {
            ACCESS_REQUEST => {
                keep(&mut self.username, USER_NAME);
                if self.mac.is_none() {
                    self.mac = message.first(CALLING_STATION_ID).map(normalize_mac);
                }
                keep(&mut self.tunnel_client, TUNNEL_CLIENT_ENDPOINT);
                keep(&mut self.connect_info, CONNECT_INFO);
            }
            ACCESS_CHALLENGE => {
                if self.framed_addr.is_none() {
                    self.framed_addr = message.first(FRAMED_IP_ADDRESS).map(raw_bytes_to_v4_addr);
                }
                keep(&mut self.reply_msg, REPLY_MESSAGE);
            }
            _ => {}
        }
    }

    /// The record as written, with its `result` and `ttl`.
    fn into_record(self, ctx: &Ctx, result: &'static str, ttl: Option<f64>) -> Vec<Value> {
        let text = |v: &Option<Vec<u8>>| v.as_deref().map_or(Value::Unset, |b| Value::Str(bytes_to_log_string(b)));
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            text(&self.username),
            self.mac.map_or(Value::Unset, Value::Str),
            self.framed_addr.map_or(Value::Unset, Value::Addr),
            text(&self.tunnel_client),
            text(&self.connect_info),
            text(&self.reply_msg),
            Value::str(result),
            ttl.map_or(Value::Unset, Value::Interval),
        ]);
        v
    }
}

#[derive(Default)]
pub struct Radius {
    confirmed: bool,
    /// A violation ended the analysis (the engine detaches the analyzer then).
    stopped: bool,
    info: Option<Box<Info>>,
}

impl Analyzer for Radius {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, _is_orig: bool, data: &[u8]) {
        if self.stopped || data.is_empty() {
            return;
        }
        let message = match parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.stopped = true;
                return ctx.violation(e.to_string());
            }
        };
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("radius");
        }
        let info = self.info.get_or_insert_with(|| Box::new(Info { ts: ctx.ts, ..Info::default() }));
        info.add(&message);
        let result = match message.code {
            ACCESS_ACCEPT => "success",
            ACCESS_REJECT => "failed",
            _ => return,
        };
        if let Some(info) = self.info.take() {
            let ttl = Some(ctx.ts - info.ts).filter(|&t| t != 0.0);
            ctx.log(&RADIUS_LOG, info.into_record(ctx, result, ttl));
        }
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        if let Some(info) = self.info.take() {
            ctx.log(&RADIUS_LOG, info.into_record(ctx, "unknown", None));
        }
    }
}

/// Fuzz entry point: arbitrary datagrams in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Radius::default(), Proto::Udp, 1812, data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Action;
    use crate::analyzers::testing::Harness;

    /// A message of `code` with `attributes`.
    fn message(code: u8, attributes: &[(u8, &[u8])]) -> Vec<u8> {
        let mut m = vec![code, 0x2a, 0, 0];
        m.extend([0x4c; 16]);
        for (kind, value) in attributes {
            m.extend([*kind, (value.len() + 2) as u8]);
            m.extend(*value);
        }
        let length = m.len() as u16;
        m[2..4].copy_from_slice(&length.to_be_bytes());
        m
    }

    /// radius.log's columns after `id`, as TSV, for `datagrams` at 100.0, 101.0, ...; `end` finishes the
    /// connection.
    fn logged(datagrams: &[(bool, Vec<u8>)], end: bool) -> (Vec<Vec<String>>, Vec<Action>) {
        let mut h = Harness::new(Proto::Udp, 1812);
        let mut radius = Radius::default();
        for (i, (is_orig, data)) in datagrams.iter().enumerate() {
            h.run(100.0 + i as f64, |ctx| radius.deliver(ctx, *is_orig, data));
        }
        if end {
            h.finish(&mut radius);
        }
        let rows = h.logged("radius").iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect();
        (rows, h.actions)
    }

    fn row(fields: [&str; 8]) -> Vec<String> {
        fields.map(String::from).to_vec()
    }

    #[test]
    fn a_request_and_its_answer_make_a_record() {
        let request = message(
            ACCESS_REQUEST,
            &[(USER_NAME, b"nemo"), (CALLING_STATION_ID, b"00-1A-2b-3C-4d-5E"), (CONNECT_INFO, b"CONNECT 11Mbps\t")],
        );
        let challenge = message(ACCESS_CHALLENGE, &[(FRAMED_IP_ADDRESS, &[192, 168, 1, 16]), (REPLY_MESSAGE, b"PIN?")]);
        let second_request = message(ACCESS_REQUEST, &[(USER_NAME, b"other")]);
        let accept = message(ACCESS_ACCEPT, &[]);
        let (rows, actions) =
            logged(&[(true, request), (false, challenge), (true, second_request), (false, accept)], true);
        assert_eq!(
            rows,
            [row([
                "nemo",
                "00:1a:2b:3c:4d:5e",
                "192.168.1.16",
                "-",
                r"CONNECT 11Mbps\x09",
                "PIN?",
                "success",
                "3.000000"
            ])]
        );
        assert_eq!(actions, [Action::Confirm("radius")]);
    }

    #[test]
    fn an_answer_ends_the_record_and_the_rest_is_unknown() {
        let reject = message(ACCESS_REJECT, &[]);
        let request = message(ACCESS_REQUEST, &[(CALLING_STATION_ID, b"not a mac"), (TUNNEL_CLIENT_ENDPOINT, b"vpn")]);
        let (rows, _) = logged(&[(false, reject), (true, request)], true);
        assert_eq!(
            rows,
            [
                row(["-", "-", "-", "-", "-", "-", "failed", "-"]),
                row(["-", "(empty)", "-", "vpn", "-", "-", "unknown", "-"]),
            ],
            "a zero ttl is not logged; a Calling-Station-Id without 12 hex digits normalizes to the empty string"
        );
    }

    #[test]
    fn broken_attributes_are_a_violation() {
        let request = message(ACCESS_REQUEST, &[(USER_NAME, b"nemo")]);
        for broken in [
            request[..request.len() - 1].to_vec(),
            request[..19].to_vec(),
            [request.clone(), vec![0x1a]].concat(),
            [request.clone(), vec![0x1a, 0x01]].concat(),
        ] {
            let (rows, actions) = logged(&[(true, broken.clone())], true);
            assert!(rows.is_empty() && matches!(actions[..], [Action::Violation(..)]), "{broken:?}");
        }
    }

    #[test]
    fn mac_addresses_normalize_as_zeek_does() {
        assert_eq!(normalize_mac(b"00:1A:2B:3C:4D:5E"), "00:1a:2b:3c:4d:5e");
        assert_eq!(normalize_mac(b"001a2b3c4d5e"), "00:1a:2b:3c:4d:5e");
        assert_eq!(normalize_mac(b"00:1a:2b"), "");
        assert_eq!(raw_bytes_to_v4_addr(&[10, 0, 0, 1, 9]), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(raw_bytes_to_v4_addr(&[10]), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
}
