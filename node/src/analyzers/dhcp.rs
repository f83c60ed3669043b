//! DHCP (RFC 2131) over UDP: messages are joined into one dhcp.log record per transaction id, across
//! connections (clients broadcast, servers answer unicast), the way Zeek's base/protocols/dhcp does: a
//! transaction is written once it has been quiet for 5 s or watched for 30 s, when it reaches 10 uids or 50
//! message types, or at the end of input.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use super::{Analyzer, AnalyzerSpec, ConnId, Ctx, Proto};
use crate::logs::{LogRecord, Schema, Value, bytes_to_log_string, f};

pub static DHCP_LOG: Schema = Schema {
    path: "dhcp",
    fields: &[
        f("ts", "time"),
        f("uids", "set[string]"),
        f("client_addr", "addr"),
        f("server_addr", "addr"),
        f("mac", "string"),
        f("host_name", "string"),
        f("client_fqdn", "string"),
        f("domain", "string"),
        f("requested_addr", "addr"),
        f("assigned_addr", "addr"),
        f("lease_time", "interval"),
        f("client_message", "string"),
        f("server_message", "string"),
        f("msg_types", "vector[string]"),
        f("duration", "interval"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "dhcp",
    tcp_ports: &[],
    udp_ports: &[67, 68],
    detect: None,
    new: |_| Box::new(Dhcp::default()),
    schemas: &[&DHCP_LOG],
};

/// Zeek's `DHCP::max_txid_watch_time`, the quiet time that ends a transaction, and the first look at a new
/// one (`join_data`'s `create_expire`).
const MAX_WATCH: f64 = 30.0;
const QUIET: f64 = 5.0;
const FIRST_CHECK: f64 = 10.0;
/// `DHCP::max_uids_per_log_entry` and `max_msg_types_per_log_entry`.
const MAX_UIDS: usize = 10;
const MAX_MSG_TYPES: usize = 50;

const MAGIC_COOKIE: u32 = 0x6382_5363;
/// op .. file, then the magic cookie.
const FIXED_LEN: usize = 236;

/// Why a datagram is not DHCP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhcpError {
    #[error("Binpac exception: DHCP message too short ({0} bytes)")]
    Truncated(usize),
    #[error("bad cookie ({0})")]
    BadCookie(u32),
    #[error("Binpac exception: DHCP options run past the end of the message")]
    TruncatedOptions,
    #[error("no DHCP message type option")]
    NoMessageType,
}

/// The options Zeek's dhcp.log draws on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub host_name: Option<String>,
    pub domain_name: Option<String>,
    pub addr_request: Option<Ipv4Addr>,
    /// Seconds.
    pub lease: Option<f64>,
    pub message: Option<String>,
    /// Client identifier: hardware type and address.
    pub client_id: Option<(u8, String)>,
    pub client_fqdn: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub xid: u32,
    pub msg_type: u8,
    pub yiaddr: Ipv4Addr,
    /// The client hardware address as Zeek formats it (empty when not a MAC).
    pub chaddr: String,
    pub options: Options,
}

/// Zeek's `fmt_mac`: six bytes (or eight ending in two zeros) as `aa:bb:..`, eight as an EUI-64, else empty.
fn fmt_mac(m: &[u8]) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
    match m.len() {
        6 => hex(m),
        n if n >= 8 && m[6] == 0 && m[7] == 0 => hex(&m[..6]),
        n if n >= 8 => hex(&m[..8]),
        _ => String::new(),
    }
}

fn ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

/// A string option up to its last non-NUL byte (Zeek's domain name handling, quirks included: a name whose
/// only non-NUL byte is the first reads as empty).
fn trim_nuls(b: &[u8]) -> String {
    let last_non_nul = b.iter().rposition(|&c| c != 0).unwrap_or(0);
    bytes_to_log_string(if last_non_nul == 0 { &[] } else { &b[..=last_non_nul] })
}

/// Reads the options after the cookie, up to the End option; returns them and the message type.
fn parse_options(mut p: &[u8]) -> Result<(Options, Option<u8>), DhcpError> {
    const PAD: u8 = 0;
    const END: u8 = 255;
    let mut o = Options::default();
    let mut msg_type = None;
    loop {
        let (&code, rest) = p.split_first().ok_or(DhcpError::TruncatedOptions)?;
        match code {
            PAD => p = rest,
            END => return Ok((o, msg_type)),
            _ => {
                let (&len, rest) = rest.split_first().ok_or(DhcpError::TruncatedOptions)?;
                let value = rest.get(..usize::from(len)).ok_or(DhcpError::TruncatedOptions)?;
                p = &rest[usize::from(len)..];
                match code {
                    12 => o.host_name = Some(bytes_to_log_string(value)),
                    15 => o.domain_name = Some(trim_nuls(value)),
                    50 => o.addr_request = ipv4(value).or(o.addr_request),
                    51 => o.lease = ipv4(value).map(|v| f64::from(u32::from(v))).or(o.lease),
                    // The first message type option counts.
                    53 => msg_type = msg_type.or(value.first().copied()),
                    56 => o.message = Some(bytes_to_log_string(value)),
                    61 if !value.is_empty() => o.client_id = Some((value[0], fmt_mac(&value[1..]))),
                    81 if value.len() >= 3 => o.client_fqdn = Some(bytes_to_log_string(&value[3..])),
                    _ => {}
                }
            }
        }
    }
}

/// Parses one DHCP/BOOTP message.
pub fn parse(data: &[u8]) -> Result<Message, DhcpError> {
    if data.len() < FIXED_LEN + 4 {
        return Err(DhcpError::Truncated(data.len()));
    }
    let cookie = u32::from_be_bytes([data[236], data[237], data[238], data[239]]);
    if cookie != MAGIC_COOKIE {
        return Err(DhcpError::BadCookie(cookie));
    }
    let (options, msg_type) = parse_options(&data[FIXED_LEN + 4..])?;
    Ok(Message {
        xid: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        msg_type: msg_type.ok_or(DhcpError::NoMessageType)?,
        yiaddr: Ipv4Addr::new(data[16], data[17], data[18], data[19]),
        chaddr: fmt_mac(&data[28..44]),
        options,
    })
}

/// DHCP's message type names (`DHCP::message_types`).
fn message_type_name(t: u8) -> String {
    const NAMES: [&str; 18] = [
        "DISCOVER",
        "OFFER",
        "REQUEST",
        "DECLINE",
        "ACK",
        "NAK",
        "RELEASE",
        "INFORM",
        "FORCERENEW",
        "LEASEQUERY",
        "LEASEUNASSIGNED",
        "LEASEUNKNOWN",
        "LEASEACTIVE",
        "BULKLEASEQUERY",
        "LEASEQUERYDONE",
        "ACTIVELEASEQUERY",
        "LEASEQUERYSTATUS",
        "TLS",
    ];
    usize::from(t)
        .checked_sub(1)
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("unknown-message-type-{t}"), |n| n.to_string())
}

/// One transaction being joined (Zeek's `DHCP::Info` in `join_data`).
#[derive(Debug, Default)]
struct Transaction {
    ts: f64,
    last_message_ts: f64,
    /// When the expiry next looks at it.
    next_check: f64,
    uids: Vec<String>,
    client_addr: Option<IpAddr>,
    server_addr: Option<IpAddr>,
    mac: Option<String>,
    client_chaddr: Option<String>,
    host_name: Option<String>,
    client_fqdn: Option<String>,
    domain: Option<String>,
    requested_addr: Option<Ipv4Addr>,
    assigned_addr: Option<Ipv4Addr>,
    lease_time: Option<f64>,
    client_message: Option<String>,
    server_message: Option<String>,
    msg_types: Vec<String>,
    duration: f64,
}

impl Transaction {
    fn add(&mut self, ts: f64, id: &ConnId, uid: &str, is_orig: bool, msg: &Message) {
        self.duration = ts - self.ts;
        if !self.uids.iter().any(|u| u == uid) {
            self.uids.push(uid.to_string());
        }
        self.msg_types.push(message_type_name(msg.msg_type));
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        // A server broadcasting to clients originates "connections" too.
        let is_client = is_orig && (id.orig_h == unspecified || id.orig_p == 68 || id.resp_p == 67);
        let o = &msg.options;
        if let Some(m) = &o.message {
            *(if is_client { &mut self.client_message } else { &mut self.server_message }) = Some(m.clone());
        }
        self.last_message_ts = ts;
        if is_client {
            if id.orig_h != unspecified && id.orig_h != IpAddr::V4(Ipv4Addr::BROADCAST) {
                self.client_addr = Some(id.orig_h);
            }
            set_if_some(&mut self.host_name, &o.host_name);
            set_if_some(&mut self.client_fqdn, &o.client_fqdn);
            match &o.client_id {
                Some((1, hwaddr)) => self.mac = Some(hwaddr.clone()),
                _ => self.client_chaddr = Some(msg.chaddr.clone()),
            }
            set_if_some(&mut self.requested_addr, &o.addr_request);
            return;
        }
        if !msg.yiaddr.is_unspecified() {
            // Unicast replies are flipped to the client's side, so the server is then the responder.
            self.server_addr = Some(if is_orig { id.orig_h } else { id.resp_h });
            self.assigned_addr = Some(msg.yiaddr);
        }
        if !msg.chaddr.is_empty() && self.mac.is_none() {
            self.mac = Some(msg.chaddr.clone());
        }
        if self.client_addr.is_none() {
            self.client_addr = self.assigned_addr.map(IpAddr::V4);
        }
        set_if_some(&mut self.domain, &o.domain_name);
        set_if_some(&mut self.lease_time, &o.lease);
    }

    fn full(&self) -> bool {
        self.uids.len() >= MAX_UIDS || self.msg_types.len() >= MAX_MSG_TYPES
    }

    fn into_record(self) -> LogRecord {
        let addr = |a: Option<IpAddr>| a.map_or(Value::Unset, Value::Addr);
        let addr4 = |a: Option<Ipv4Addr>| addr(a.map(IpAddr::V4));
        // Without a client identifier or a server's answer, the client's own chaddr names it.
        let mac = self.mac.or(self.client_chaddr);
        LogRecord::new(
            &DHCP_LOG,
            vec![
                Value::Time(self.ts),
                Value::str_set(self.uids),
                addr(self.client_addr),
                addr(self.server_addr),
                Value::opt_str(mac),
                Value::opt_str(self.host_name),
                Value::opt_str(self.client_fqdn),
                Value::opt_str(self.domain),
                addr4(self.requested_addr),
                addr4(self.assigned_addr),
                self.lease_time.map_or(Value::Unset, Value::Interval),
                Value::opt_str(self.client_message),
                Value::opt_str(self.server_message),
                Value::str_vec(self.msg_types),
                Value::Interval(self.duration),
            ],
        )
    }
}

fn set_if_some<T: Clone>(field: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        field.clone_from(value);
    }
}

/// The transactions of one engine, by transaction id (Zeek's `DHCP::join_data`).
#[derive(Debug, Default)]
pub struct Transactions {
    by_xid: HashMap<u32, Transaction>,
}

impl Transactions {
    /// Adds a message; returns the transaction's record when it is full and so written now.
    fn add(&mut self, ts: f64, id: &ConnId, uid: &str, is_orig: bool, msg: &Message) -> Option<LogRecord> {
        let t = self.by_xid.entry(msg.xid).or_insert_with(|| Transaction {
            ts,
            next_check: ts + FIRST_CHECK,
            ..Default::default()
        });
        t.add(ts, id, uid, is_orig, msg);
        if !t.full() {
            return None;
        }
        self.by_xid.remove(&msg.xid).map(Transaction::into_record)
    }

    /// Writes the transactions that are over by network time `now` (all of them when `finishing`), oldest first.
    pub fn expire(&mut self, now: f64, finishing: bool, records: &mut Vec<LogRecord>) {
        let mut done: Vec<u32> = Vec::new();
        for (xid, t) in self.by_xid.iter_mut().filter(|(_, t)| finishing || t.next_check <= now) {
            if finishing || now - t.last_message_ts > QUIET || now - t.ts > MAX_WATCH {
                done.push(*xid);
            } else {
                t.next_check = now + QUIET;
            }
        }
        let mut over: Vec<Transaction> = done.iter().filter_map(|xid| self.by_xid.remove(xid)).collect();
        over.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        records.extend(over.into_iter().map(Transaction::into_record));
    }
}

#[derive(Default)]
struct Dhcp {
    confirmed: bool,
}

impl Analyzer for Dhcp {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        let msg = match parse(data) {
            Ok(m) => m,
            Err(e) => return ctx.violation(e.to_string()),
        };
        let id = ctx.id;
        if let Some(record) = ctx.shared.dhcp.add(ctx.ts, id, ctx.uid, is_orig, &msg) {
            ctx.records.push(record);
        }
        // One message is enough: a DHCP "connection" often has only one.
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("dhcp");
        }
    }
}

/// Fuzz entry point: arbitrary datagrams in both directions, transactions flushed at the end.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Dhcp::default(), Proto::Udp, 67, data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Action;
    use crate::analyzers::testing::Harness;

    const CLIENT_MAC: [u8; 6] = [0x00, 0x1a, 0xe9, 0x9d, 0x53, 0xb7];

    /// A BOOTP message with `options` after the cookie (End appended).
    fn message(op: u8, xid: u32, yiaddr: [u8; 4], options: &[&[u8]]) -> Vec<u8> {
        let mut m = vec![0; FIXED_LEN];
        m[0] = op;
        m[1] = 1; // Ethernet
        m[2] = 6;
        m[4..8].copy_from_slice(&xid.to_be_bytes());
        m[16..20].copy_from_slice(&yiaddr);
        m[28..34].copy_from_slice(&CLIENT_MAC);
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        for o in options {
            m.extend_from_slice(o);
        }
        m.push(255);
        m
    }

    fn request(xid: u32) -> Vec<u8> {
        message(1, xid, [0; 4], &[&[53, 1, 3], &[12, 3, b'W', b'i', b'i'], &[50, 4, 192, 168, 2, 18]])
    }

    fn ack(xid: u32) -> Vec<u8> {
        let lease: &[u8] = &[51, 4, 0, 0, 0x0e, 0x10];
        message(2, xid, [192, 168, 2, 18], &[&[53, 1, 5], lease, &[15, 5, b'l', b'a', b'n', 0, 0]])
    }

    fn broadcast_client() -> Harness {
        let mut h = Harness::new(Proto::Udp, 67);
        h.id.orig_h = "0.0.0.0".parse().unwrap();
        h.id.orig_p = 68;
        h.id.resp_h = "255.255.255.255".parse().unwrap();
        h
    }

    #[test]
    fn parses_the_fields_dhcp_log_uses() {
        let m = parse(&request(7)).unwrap();
        assert_eq!((m.xid, m.msg_type), (7, 3));
        assert_eq!(m.chaddr, "00:1a:e9:9d:53:b7");
        assert_eq!(m.options.host_name.as_deref(), Some("Wii"));
        assert_eq!(m.options.addr_request, Some(Ipv4Addr::new(192, 168, 2, 18)));
        let a = parse(&ack(7)).unwrap();
        assert_eq!(a.options.lease, Some(3600.0));
        assert_eq!(a.options.domain_name.as_deref(), Some("lan"));
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert_eq!(parse(&[1; 100]), Err(DhcpError::Truncated(100)));
        let mut bad = request(1);
        bad[239] = 0;
        assert!(matches!(parse(&bad), Err(DhcpError::BadCookie(_))));
        let mut cut = request(1);
        cut.truncate(cut.len() - 3);
        assert_eq!(parse(&cut), Err(DhcpError::TruncatedOptions));
        assert_eq!(parse(&message(1, 1, [0; 4], &[])), Err(DhcpError::NoMessageType));
    }

    #[test]
    fn mac_formats_like_zeek() {
        assert_eq!(fmt_mac(&CLIENT_MAC), "00:1a:e9:9d:53:b7");
        assert_eq!(fmt_mac(&[1, 2, 3, 4, 5, 6, 7, 8]), "01:02:03:04:05:06:07:08");
        assert_eq!(fmt_mac(&[1, 2, 3]), "");
    }

    #[test]
    fn a_lone_request_is_logged_at_the_end() {
        let mut h = broadcast_client();
        let mut a = (SPEC.new)(Proto::Udp);
        h.deliver(a.as_mut(), true, &request(0x1234));
        assert_eq!(h.actions, vec![Action::Confirm("dhcp")]);
        assert!(h.logged("dhcp").is_empty(), "written when the transaction ends");
        let mut out = Vec::new();
        h.shared.expire(1.0, true, &mut out);
        let r = &out[0];
        assert_eq!(r.get("uids"), Some(&Value::str_set(["CTest"])));
        assert_eq!(r.get("client_addr"), Some(&Value::Unset), "0.0.0.0 is no client address");
        assert_eq!(r.get("mac"), Some(&Value::str("00:1a:e9:9d:53:b7")), "chaddr when no client id");
        assert_eq!(r.get("host_name"), Some(&Value::str("Wii")));
        assert_eq!(r.get("requested_addr"), Some(&Value::Addr("192.168.2.18".parse().unwrap())));
        assert_eq!(r.get("msg_types"), Some(&Value::str_vec(["REQUEST"])));
        assert_eq!(r.get("duration"), Some(&Value::Interval(0.0)));
    }

    #[test]
    fn request_and_ack_on_two_connections_join_by_xid() {
        let mut t = Transactions::default();
        let client = broadcast_client();
        let mut server = Harness::new(Proto::Udp, 68);
        server.id.orig_h = "192.168.2.1".parse().unwrap();
        server.id.orig_p = 67;
        server.id.resp_h = "192.168.2.18".parse().unwrap();
        assert!(t.add(10.0, &client.id, "Ca", true, &parse(&request(9)).unwrap()).is_none());
        assert!(t.add(10.5, &server.id, "Cb", true, &parse(&ack(9)).unwrap()).is_none());
        let mut out = Vec::new();
        t.expire(15.0, false, &mut out);
        assert!(out.is_empty(), "not quiet for 5 s yet");
        t.expire(20.0, false, &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.ts(), 10.0);
        assert_eq!(r.get("uids"), Some(&Value::str_set(["Ca", "Cb"])));
        assert_eq!(r.get("server_addr"), Some(&Value::Addr("192.168.2.1".parse().unwrap())));
        assert_eq!(r.get("client_addr"), Some(&Value::Addr("192.168.2.18".parse().unwrap())));
        assert_eq!(r.get("lease_time"), Some(&Value::Interval(3600.0)));
        assert_eq!(r.get("domain"), Some(&Value::str("lan")));
        assert_eq!(r.get("msg_types"), Some(&Value::str_vec(["REQUEST", "ACK"])));
        assert_eq!(r.get("duration"), Some(&Value::Interval(0.5)));
    }

    #[test]
    fn a_transaction_with_too_many_messages_is_written_at_once() {
        let mut t = Transactions::default();
        let client = broadcast_client();
        let msg = parse(&request(3)).unwrap();
        let written: Vec<_> =
            (0..MAX_MSG_TYPES).filter_map(|i| t.add(i as f64 * 0.01, &client.id, "Ca", true, &msg)).collect();
        assert_eq!(written.len(), 1);
        assert!(t.by_xid.is_empty());
    }

    #[test]
    fn garbage_is_a_violation() {
        let mut h = Harness::new(Proto::Udp, 67);
        let mut a = (SPEC.new)(Proto::Udp);
        h.deliver(a.as_mut(), true, b"not dhcp");
        assert!(matches!(h.actions[0], Action::Violation(..)));
    }

    #[test]
    fn fuzz_never_panics_on_cut_messages() {
        let whole = request(5);
        for n in 0..whole.len() {
            let mut input = vec![0, n.min(255) as u8];
            input.extend_from_slice(&whole[..n.min(255)]);
            fuzz(&input);
        }
    }
}
