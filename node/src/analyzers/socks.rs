//! SOCKS (tcp 1080, and Zeek's `dpd_socks*` signatures) to socks.log and tunnel.log, as Zeek's binpac analyzer
//! (src/analyzer/protocol/socks: socks-protocol.pac, socks-analyzer.pac, SOCKS.cc) and
//! base/protocols/socks/main.zeek do it.
//!
//! The grammar's flow is a `datagram`: every delivery of the stream is parsed as one whole message, whatever is
//! left after the message is ignored, and a message cut short is a binpac exception (a violation). What a delivery
//! is parsed as depends on the connection's state, not on its direction alone: while a SOCKSv5 method's
//! sub-negotiation runs, everything is that method's message (only username/password, RFC 1929, is parsed; the others
//! are the weird `socks5_unsupported_authentication_method`); otherwise the first byte is the version, 4 or 5 (any
//! other is the violation `unsupported/unknown SOCKS version N`). SOCKSv4 and 4a: the client's request (its user id
//! and 4a's host name read up to a NUL or the end of the delivery), the server's reply after a version byte of 4 and a
//! zero byte (Zeek's grammar reads the reply's version byte, so the plain `00 5a ...` reply of RFC-conforming servers
//! is version 0 to it, a violation). SOCKSv5: the client's greeting, the server's method selection (which decides
//! whether a sub-negotiation follows and ends the greeting phase), then request and reply, with IPv4, domain name or
//! IPv6 addresses. A request with a non-zero reserved byte or an unknown command is a violation.
//!
//! A reply confirms the analyzer. Once a request and a reply went by, the rest of the connection is handed to content
//! detection afresh (SOCKS.cc's PIA, `Action::HandOver`), so what the proxy carries is analysed under the same uid.
//! Every request registers the proxy as a `Tunnel::SOCKS` tunnel (tunnel.log's DISCOVER, one per client, proxy and
//! proxy port). The connection's socks.log record starts at its first request, reply or login and is written when
//! the connection ends, if SOCKS is still among its services (`finalize_socks`); the password is kept only with
//! `SOCKS::default_capture_password`, which is off.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::proxy_tunnels::{self, ProxyType};
use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static SOCKS_LOG: Schema = Schema {
    path: "socks",
    fields: conn_fields![
        f("version", "count"),
        f("user", "string"),
        f("password", "string"),
        f("status", "string"),
        f("request.host", "addr"),
        f("request.name", "string"),
        f("request_p", "port"),
        f("bound.host", "addr"),
        f("bound.name", "string"),
        f("bound_p", "port"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "socks",
    tcp_ports: &[1080],
    udp_ports: &[],
    detect: Some(Signature::pairs(detect)),
    new: |_| Box::new(Socks::default()),
    schemas: &[&SOCKS_LOG],
};

/// Weird source: Zeek's analyzer name.
const SOURCE: &str = "SOCKS";

/// `SOCKS::default_capture_password`.
const DEFAULT_CAPTURE_PASSWORD: bool = false;

/// RFC 1929 username/password, the one SOCKSv5 method whose sub-negotiation Zeek parses.
const METHOD_USERPASS: u8 = 2;
/// The server accepts none of the client's methods.
const METHOD_NONE_ACCEPTABLE: u8 = 0xff;

/// Zeek's DPD signatures (base/protocols/socks/dpd.sig): `dpd_socks4_client` and `dpd_socks4_server`, the same pair
/// with the directions swapped (`dpd_socks4_reverse_*`), and `dpd_socks5_client` and `dpd_socks5_server`, each
/// server signature requiring its client one on the other side. Signature patterns are multi-line, so `.` is any
/// byte.
fn detect(proto: Proto, orig: &[u8], resp: &[u8]) -> bool {
    proto == Proto::Tcp
        && ((socks4_client(orig) && socks4_server(resp))
            || (socks4_client(resp) && socks4_server(orig))
            || (socks5_client(orig) && socks5_server(resp)))
}

/// `/^\x04[\x01\x02].{0,32}\x00/`
fn socks4_client(p: &[u8]) -> bool {
    matches!(p, [4, 1 | 2, rest @ ..] if rest.iter().take(33).any(|&b| b == 0))
}

/// `/^\x00[\x5a\x5b\x5c\x5d]/`
fn socks4_server(p: &[u8]) -> bool {
    matches!(p, [0, 0x5a..=0x5d, ..])
}

/// `/^\x05.[\x00\x01\x02\x03\x05\x06\x07\x08\x09]/`: a greeting offering one of the methods IANA assigned.
fn socks5_client(p: &[u8]) -> bool {
    matches!(p, [5, _, 0..=3 | 5..=9, ..])
}

/// `/^\x05[\x00\x01\x02\x03\x05\x06\x07\x08\x09\xff]/`: one of those methods selected, or none acceptable.
fn socks5_server(p: &[u8]) -> bool {
    matches!(p, [5, 0..=3 | 5..=9 | 0xff, ..])
}

/// A delivery too short for the message it was parsed as (binpac's `ExceptionOutOfBound`), naming the type and
/// field binpac stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Binpac exception: binpac exception: out_of_bound: {0}")]
pub struct OutOfBound(&'static str);

/// A `SOCKS::Address` as a message carries it: SOCKSv5's address types, and SOCKSv4's address (with 4a's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address<'a> {
    Ip(IpAddr),
    Name(&'a [u8]),
    /// SOCKSv4a: the placeholder address `0.0.0.x` and the name the proxy is to resolve.
    IpAndName(Ipv4Addr, &'a [u8]),
}

/// The sub-negotiation message of the selected SOCKSv5 method (`SOCKS5_Auth_Request`, `SOCKS5_Auth_Reply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth<'a> {
    UserPassRequest {
        user: &'a [u8],
        password: &'a [u8],
    },
    UserPassReply {
        code: u8,
    },
    /// A username/password message whose version is not 1.
    UnsupportedVersion(u8),
    /// A message of a method Zeek does not parse.
    UnsupportedMethod,
}

/// What one delivery parsed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A first byte other than 4 or 5 (`SOCKS_Version_Error`).
    VersionError(u8),
    V4Request {
        command: u8,
        address: Address<'a>,
        port: u16,
    },
    V4Reply {
        status: u8,
        address: Ipv4Addr,
        port: u16,
    },
    /// The client's method offer (`SOCKS5_Auth_Negotiation_Request`): nothing of it is kept.
    V5Greeting,
    V5MethodSelection {
        method: u8,
    },
    V5Request {
        command: u8,
        reserved: u8,
        address: Address<'a>,
        port: u16,
    },
    V5Reply {
        reply: u8,
        address: Address<'a>,
        port: u16,
    },
    Auth {
        is_orig: bool,
        auth: Auth<'a>,
    },
}

/// The state the grammar keeps per connection (`SOCKS_Conn`'s members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiation {
    in_auth_sub_negotiation: bool,
    past_authentication: bool,
    auth_method: u8,
}

impl Default for Negotiation {
    fn default() -> Self {
        Negotiation { in_auth_sub_negotiation: false, past_authentication: false, auth_method: METHOD_NONE_ACCEPTABLE }
    }
}

/// Reads a delivery as binpac's generated parser does: fixed-size fields throw when cut short, `&until` arrays end at
/// the delivery's end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, at: &'static str) -> Result<&'a [u8], OutOfBound> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(OutOfBound(at))?;
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, at: &'static str) -> Result<u8, OutOfBound> {
        Ok(self.bytes(1, at)?[0])
    }

    fn u16(&mut self, at: &'static str) -> Result<u16, OutOfBound> {
        let b = self.bytes(2, at)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn ipv4(&mut self, at: &'static str) -> Result<Ipv4Addr, OutOfBound> {
        let b = self.bytes(4, at)?;
        Ok(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }

    /// `uint8[] &until($element == 0)`, through `array_to_string`: the bytes up to the first NUL (which is consumed)
    /// or the end of the delivery.
    fn nul_terminated(&mut self) -> &'a [u8] {
        let end = memchr::memchr(0, self.0).map_or(self.0.len(), |nul| nul + 1);
        let (string, rest) = self.0.split_at(end);
        self.0 = rest;
        string.strip_suffix(&[0]).unwrap_or(string)
    }

    /// `SOCKS5_Address`: an unknown address type takes the rest of the delivery, so the port after it is cut short.
    fn v5_address(&mut self, record: &'static str, port_at: &'static str) -> Result<Address<'a>, OutOfBound> {
        Ok(match self.u8(record)? {
            1 => Address::Ip(IpAddr::V4(self.ipv4(record)?)),
            3 => {
                let len = self.u8("Domain_Name:len")?;
                Address::Name(self.bytes(usize::from(len), "Domain_Name:name")?)
            }
            4 => {
                let octets: [u8; 16] = self.bytes(16, record)?.try_into().expect("16 bytes");
                Address::Ip(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            _ => return Err(OutOfBound(port_at)),
        })
    }
}

/// `SOCKS_Message` over one delivery (not empty), in the connection's state `state`.
pub fn parse<'a>(state: &Negotiation, is_orig: bool, data: &'a [u8]) -> Result<Message<'a>, OutOfBound> {
    let mut r = Reader(data);
    if state.in_auth_sub_negotiation {
        let auth = if state.auth_method != METHOD_USERPASS {
            Auth::UnsupportedMethod
        } else {
            match r.u8("SOCKS5_Auth_UserPass:version")? {
                1 if is_orig => {
                    let ulen = r.u8("SOCKS5_Auth_Request_UserPass_v1:ulen")?;
                    let user = r.bytes(usize::from(ulen), "SOCKS5_Auth_Request_UserPass_v1:username")?;
                    let plen = r.u8("SOCKS5_Auth_Request_UserPass_v1:plen")?;
                    let password = r.bytes(usize::from(plen), "SOCKS5_Auth_Request_UserPass_v1:password")?;
                    Auth::UserPassRequest { user, password }
                }
                1 => Auth::UserPassReply { code: r.u8("SOCKS5_Auth_Reply_UserPass_v1:code")? },
                version => Auth::UnsupportedVersion(version),
            }
        };
        return Ok(Message::Auth { is_orig, auth });
    }
    Ok(match (r.u8("SOCKS_Version:version")?, is_orig) {
        (4, true) => {
            let command = r.u8("SOCKS4_Request:command")?;
            let port = r.u16("SOCKS4_Request:port")?;
            let addr = r.ipv4("SOCKS4_Request:addr")?;
            r.nul_terminated(); // the user id, which main.zeek does not keep
            // SOCKSv4a: an address of 0.0.0.x (binpac's test takes 0.0.0.0 too) is followed by the host name.
            let address = if u32::from(addr) <= 0xff {
                Address::IpAndName(addr, r.nul_terminated())
            } else {
                Address::Ip(IpAddr::V4(addr))
            };
            Message::V4Request { command, address, port }
        }
        (4, false) => {
            r.u8("SOCKS4_Reply:zero")?;
            let status = r.u8("SOCKS4_Reply:status")?;
            let port = r.u16("SOCKS4_Reply:port")?;
            Message::V4Reply { status, port, address: r.ipv4("SOCKS4_Reply:addr")? }
        }
        (5, true) if !state.past_authentication => {
            // The methods are read as far as the delivery goes; none is kept.
            r.u8("SOCKS5_Auth_Negotiation_Request:method_count")?;
            Message::V5Greeting
        }
        (5, false) if !state.past_authentication => {
            Message::V5MethodSelection { method: r.u8("SOCKS5_Auth_Negotiation_Reply:selected_auth_method")? }
        }
        (5, true) => {
            let command = r.u8("SOCKS5_Request:command")?;
            let reserved = r.u8("SOCKS5_Request:reserved")?;
            let address = r.v5_address("SOCKS5_Request:remote_name", "SOCKS5_Request:port")?;
            Message::V5Request { command, reserved, address, port: r.u16("SOCKS5_Request:port")? }
        }
        (5, false) => {
            let reply = r.u8("SOCKS5_Reply:reply")?;
            r.u8("SOCKS5_Reply:reserved")?;
            let address = r.v5_address("SOCKS5_Reply:bound", "SOCKS5_Reply:port")?;
            Message::V5Reply { reply, address, port: r.u16("SOCKS5_Reply:port")? }
        }
        (version, _) => Message::VersionError(version),
    })
}

/// `SOCKS::v4_status`.
fn v4_status(code: u8) -> String {
    match code {
        0x5a => "succeeded".into(),
        0x5b => "general SOCKS server failure".into(),
        0x5c => "request failed because client is not running identd".into(),
        0x5d => "request failed because client's identd could not confirm the user ID string in the request".into(),
        _ => format!("unknown-{code}"),
    }
}

/// `SOCKS::v5_status`.
fn v5_status(code: u8) -> String {
    let known = match code {
        0 => "succeeded",
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "Network unreachable",
        4 => "Host unreachable",
        5 => "Connection refused",
        6 => "TTL expired",
        7 => "Command not supported",
        8 => "Address type not supported",
        _ => return format!("unknown-{code}"),
    };
    known.into()
}

/// A `SOCKS::Address` in the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LoggedAddress {
    host: Option<IpAddr>,
    name: Option<Box<[u8]>>,
}

impl From<&Address<'_>> for LoggedAddress {
    fn from(address: &Address) -> Self {
        match *address {
            Address::Ip(host) => LoggedAddress { host: Some(host), name: None },
            Address::Name(name) => LoggedAddress { host: None, name: Some(name.into()) },
            Address::IpAndName(host, name) => LoggedAddress { host: Some(IpAddr::V4(host)), name: Some(name.into()) },
        }
    }
}

/// The connection's `c$socks`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Info {
    ts: f64,
    version: u8,
    user: Option<Box<[u8]>>,
    password: Option<Box<[u8]>>,
    status: Option<String>,
    request: Option<LoggedAddress>,
    request_p: Option<u16>,
    bound: Option<LoggedAddress>,
    bound_p: Option<u16>,
}

impl Info {
    fn into_values(self, ctx: &Ctx) -> Vec<Value> {
        let text = |b: Option<Box<[u8]>>| b.map_or(Value::Unset, |b| Value::Str(bytes_to_log_string(&b)));
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::Count(u64::from(self.version)),
            text(self.user),
            text(self.password),
            Value::opt_str(self.status),
        ]);
        for (address, port) in [(self.request, self.request_p), (self.bound, self.bound_p)] {
            let address = address.unwrap_or_default();
            v.extend([
                address.host.map_or(Value::Unset, Value::Addr),
                text(address.name),
                port.map_or(Value::Unset, Value::Port),
            ]);
        }
        v
    }
}

pub struct Socks {
    state: Negotiation,
    /// SOCKS.cc's `orig_done` / `resp_done`: a request / a reply went by.
    done: [bool; 2],
    /// Both were: the rest of the connection went to content detection.
    handed_over: bool,
    /// A violation ended the analysis (the engine detaches the analyzer then).
    stopped: bool,
    confirmed: bool,
    /// A violation after the confirmation took `socks` out of the connection's services: nothing is logged.
    failed: bool,
    capture_password: bool,
    info: Option<Box<Info>>,
}

impl Default for Socks {
    fn default() -> Self {
        Socks {
            state: Negotiation::default(),
            done: [false; 2],
            handed_over: false,
            stopped: false,
            confirmed: false,
            failed: false,
            capture_password: DEFAULT_CAPTURE_PASSWORD,
            info: None,
        }
    }
}

impl Socks {
    /// main.zeek's `set_session`: the record, started by the first event of the connection.
    fn session(&mut self, ctx: &Ctx, version: u8) -> &mut Info {
        self.info.get_or_insert_with(|| Box::new(Info { ts: ctx.ts, version, ..Info::default() }))
    }

    fn violation(&mut self, ctx: &mut Ctx, reason: String) {
        self.stopped = true;
        self.failed = self.confirmed;
        ctx.violation(reason);
    }

    fn confirm(&mut self, ctx: &mut Ctx) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("socks");
        }
    }

    /// `socks_request`: the record's request, and the proxy registered as a tunnel.
    fn request(&mut self, ctx: &mut Ctx, version: u8, address: &Address, port: u16) {
        let info = self.session(ctx, version);
        info.request = Some(address.into());
        info.request_p = Some(port);
        proxy_tunnels::register(ctx, ProxyType::Socks);
        self.done[0] = true;
    }

    /// `socks_reply`, and the confirmation that comes with it.
    fn reply(&mut self, ctx: &mut Ctx, version: u8, code: u8, address: LoggedAddress, port: u16) {
        let info = self.session(ctx, version);
        info.status = Some(if version == 5 { v5_status(code) } else { v4_status(code) });
        info.bound = Some(address);
        info.bound_p = Some(port);
        self.confirm(ctx);
        self.done[1] = true;
    }

    fn message(&mut self, ctx: &mut Ctx, message: Message) {
        match message {
            Message::VersionError(version) => {
                self.violation(ctx, format!("unsupported/unknown SOCKS version {version}"));
            }
            Message::V4Request { address, port, .. } => self.request(ctx, 4, &address, port),
            Message::V4Reply { status, address, port } => {
                let address = LoggedAddress { host: Some(IpAddr::V4(address)), name: None };
                self.reply(ctx, 4, status, address, port);
            }
            Message::V5Greeting => {}
            Message::V5MethodSelection { method } => {
                self.state = Negotiation {
                    in_auth_sub_negotiation: method != 0 && method != METHOD_NONE_ACCEPTABLE,
                    past_authentication: true,
                    auth_method: method,
                };
            }
            Message::V5Request { reserved, .. } if reserved != 0 => {
                self.violation(ctx, format!("invalid value in reserved field: {reserved}"));
            }
            Message::V5Request { command, .. } if command == 0 || command > 3 => {
                self.violation(ctx, format!("undefined value in command field: {command}"));
            }
            Message::V5Request { address, port, .. } => self.request(ctx, 5, &address, port),
            Message::V5Reply { reply, address, port } => self.reply(ctx, 5, reply, (&address).into(), port),
            Message::Auth { is_orig, auth } => {
                self.auth(ctx, auth);
                if !is_orig {
                    // `SOCKS5_Auth_Reply`: the server's answer ends the sub-negotiation, whatever it was.
                    self.state.in_auth_sub_negotiation = false;
                }
            }
        }
    }

    fn auth(&mut self, ctx: &mut Ctx, auth: Auth) {
        let method = self.state.auth_method;
        match auth {
            Auth::UserPassRequest { user, password } => {
                // Authentication is SOCKSv5 only.
                let capture_password = self.capture_password;
                let info = self.session(ctx, 5);
                info.user = Some(user.into());
                if capture_password {
                    info.password = Some(password.into());
                }
            }
            Auth::UserPassReply { code } => self.session(ctx, 5).status = Some(v5_status(code)),
            Auth::UnsupportedVersion(version) => {
                let addl = format!("method {method}, version {version}");
                ctx.weird("socks5_unsupported_authentication", Some(addl), SOURCE);
            }
            Auth::UnsupportedMethod => {
                ctx.weird("socks5_unsupported_authentication_method", Some(method.to_string()), SOURCE);
            }
        }
    }

    /// `finalize_socks` will write the record: the analyzer confirmed and did not fail since.
    fn logs_at_end(&self) -> bool {
        self.confirmed && !self.failed && self.info.is_some()
    }
}

impl Analyzer for Socks {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        // SOCKS.cc punts on connections joined mid-stream.
        if ctx.partial || self.stopped || self.handed_over || data.is_empty() {
            return;
        }
        match parse(&self.state, is_orig, data) {
            Ok(message) => self.message(ctx, message),
            Err(e) => self.violation(ctx, e.to_string()),
        }
        if self.done == [true, true] && !self.stopped {
            // SOCKS.cc forwards every later delivery to a PIA of its own; what followed the message in this one is
            // lost, as binpac's datagram ignores it.
            self.handed_over = true;
            ctx.hand_over(None, is_orig, &[]);
        }
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        if self.logs_at_end()
            && let Some(info) = self.info.take()
        {
            ctx.log(&SOCKS_LOG, info.into_values(ctx));
        }
    }

    fn is_done(&self) -> bool {
        self.stopped && !self.logs_at_end()
    }
}

/// Fuzz entry point: arbitrary deliveries in both directions, and the content signature over the same bytes.
pub fn fuzz(data: &[u8]) {
    let (orig, resp) = data.split_at(data.len() / 2);
    detect(Proto::Tcp, orig, resp);
    super::fuzzing::drive(&mut Socks::default(), Proto::Tcp, 1080, data);
}

#[cfg(test)]
mod tests;
