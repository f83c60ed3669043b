//! RFB (VNC): rfb.log, as Zeek's base/protocols/rfb writes it.
//!
//! Zeek attaches its binpac analyzer only by signature (base/protocols/rfb/dpd.sig: both directions start with
//! `RFB`; no ports are registered). The parser follows src/analyzer/protocol/rfb/rfb-protocol.pac and
//! rfb-analyzer.pac: each side is a run of PDUs whose kind is that side's state, and each PDU's handler moves the
//! states of both sides (the client's version picks the 3.3 or the 3.7+ handshake, the server's security type or
//! the client's selection picks the authentication exchange, and so on up to the server's `ServerInit`). A side
//! that sends while it waits for the other, a client message of an unknown type, a malformed version, or a length
//! past binpac's `MAX_DATA_LENGTH` is a binpac exception: a violation, and RFB.cc parses nothing more. An unknown
//! security type, selection or authentication result is a violation binpac raises without stopping. The analyzer
//! confirms on the client's version, ignores connections joined mid-stream, stops at a content gap, and leaves the
//! server's data alone once its `ServerInit` parsed (RFB.cc: framebuffer updates are not parsed).
//!
//! The record (scripts/base/protocols/rfb/main.zeek) starts at the first version or security type seen and is
//! written when the server's parameters arrive, or when the connection ends.

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature, be_u16, be_u32};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static RFB_LOG: Schema = Schema {
    path: "rfb",
    fields: conn_fields![
        f("client_major_version", "string"),
        f("client_minor_version", "string"),
        f("server_major_version", "string"),
        f("server_minor_version", "string"),
        f("authentication_method", "string"),
        f("auth", "bool"),
        f("share_flag", "bool"),
        f("desktop_name", "string"),
        f("width", "count"),
        f("height", "count"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "rfb",
    tcp_ports: &[],
    udp_ports: &[],
    detect: Some(Signature::both_sides(detect_rfb)),
    new: |_| Box::<Rfb>::default(),
    schemas: &[&RFB_LOG],
};

/// binpac's `MAX_DATA_LENGTH`: a longer failure reason, desktop name or cut text is refused (`&enforce`).
const MAX_DATA_LENGTH: usize = 65536;
/// `RFB xxx.yyy` and its line end.
const VERSION_LEN: usize = 12;
/// `ServerInit` up to its name: width, height, the 16-byte pixel format, the name's length.
const SERVER_INIT_HEADER: usize = 24;

/// binpac exceptions: the analyzer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RfbError {
    #[error("Binpac exception: RFB protocol version is not 'RFB xxx.yyy'")]
    BadVersion,
    #[error("Binpac exception: invalid data from RFB {}", if *.0 { "client" } else { "server" })]
    InvalidData(bool),
    #[error("Binpac exception: RFB client message of unknown type {0}")]
    UnknownClientMessage(u8),
    #[error("Binpac exception: RFB length {0} not below MAX_DATA_LENGTH")]
    TooLong(u32),
}

/// What a side sends next: binpac's `ClientState` and `ServerState` (each side only ever takes its own kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Next {
    #[default]
    Version,
    /// Nothing is expected: what comes is invalid (binpac's `WaitData`, then `InvalidData`).
    Wait,
    Invalid,
    AuthSelection,
    VncResponse,
    ArdResponse,
    ClientInit,
    ClientMessageType,
    ClientMessage(u8),
    AuthType,
    AuthTypes37,
    AuthFailure,
    VncChallenge,
    ArdChallenge,
    AuthResult,
    ServerInit,
    /// After `ServerInit`: RFB.cc passes nothing more from the server, so its messages are never parsed here.
    ServerMessageType,
}

/// One side of the connection.
#[derive(Debug, Default)]
struct Side {
    /// binpac's state of this side: the kind of its next PDU (the other side's handlers move it too).
    next: Next,
    /// The kind of the PDU in progress, fixed when it started (binpac picks the case once).
    current: Option<Next>,
    /// The PDU's header (or all of it, when its body is kept).
    pdu: Vec<u8>,
    /// Body bytes still to pass over before the PDU is complete (its header is in `pdu`).
    skip: usize,
    skipping: bool,
}

/// main.zeek's `RFB::Info`.
#[derive(Debug, Default)]
struct Info {
    ts: f64,
    client_version: Option<(String, String)>,
    server_version: Option<(String, String)>,
    authentication_method: Option<&'static str>,
    auth: Option<bool>,
    share_flag: Option<bool>,
    desktop: Option<(String, u16, u16)>,
    done: bool,
}

#[derive(Default)]
struct Rfb {
    /// Client, then server.
    sides: [Side; 2],
    /// The client's minor version (binpac's `version`).
    version: i64,
    ard_key_length: u16,
    /// The server's `ServerInit` parsed (binpac's `saw_full_handshake`).
    saw_handshake: bool,
    /// A binpac exception or a content gap stopped the analyzer.
    stopped: bool,
    info: Option<Info>,
}

/// Zeek's `friendly_auth_name`.
fn friendly_auth_name(auth: u32) -> &'static str {
    match auth {
        0 => "Invalid",
        1 => "None",
        2 => "VNC",
        16 => "Tight",
        17 => "Ultra",
        18 => "TLS",
        19 => "VeNCrypt",
        20 => "GTK-VNC SASL",
        21 => "MD5 hash authentication",
        22 => "Colin Dean xvp",
        30 => "Apple Remote Desktop",
        _ => "RealVNC",
    }
}

/// binpac's `&enforce(len < MAX_DATA_LENGTH)`.
fn enforced(len: u32) -> Result<usize, RfbError> {
    usize::try_from(len).ok().filter(|&l| l < MAX_DATA_LENGTH).ok_or(RfbError::TooLong(len))
}

/// C's `strtol` of a version's three digits (the minor version decides the handshake).
fn minor_version(digits: &[u8]) -> i64 {
    let digits = digits.iter().skip_while(|b| b.is_ascii_whitespace());
    digits.take_while(|b| b.is_ascii_digit()).fold(0, |n, &d| n * 10 + i64::from(d - b'0'))
}

impl Rfb {
    /// The header bytes a PDU of kind `next` needs before its length is known.
    fn header_len(next: Next) -> Result<usize, RfbError> {
        Ok(match next {
            Next::Version => VERSION_LEN,
            Next::ClientMessage(0) => 19,
            Next::ClientMessage(2) => 3,
            Next::ClientMessage(3) => 9,
            Next::ClientMessage(4) => 7,
            Next::ClientMessage(5) => 5,
            Next::ClientMessage(6) => 7,
            Next::ClientMessage(other) => return Err(RfbError::UnknownClientMessage(other)),
            Next::AuthType | Next::AuthResult | Next::AuthFailure | Next::ArdChallenge => 4,
            Next::ServerInit => SERVER_INIT_HEADER,
            Next::AuthSelection | Next::ClientInit | Next::ClientMessageType | Next::AuthTypes37 => 1,
            Next::VncResponse | Next::VncChallenge | Next::ArdResponse => 0,
            Next::Wait | Next::Invalid | Next::ServerMessageType => 0,
        })
    }

    /// The body bytes after a complete `header`.
    fn body_len(&self, next: Next, header: &[u8]) -> Result<usize, RfbError> {
        Ok(match next {
            Next::ClientMessage(2) => 4 * usize::from(be_u16(header, 1)),
            Next::ClientMessage(6) => enforced(be_u32(header, 3))?,
            Next::AuthTypes37 => usize::from(header[0]),
            Next::AuthFailure => enforced(be_u32(header, 0))?,
            Next::ServerInit => enforced(be_u32(header, 20))?,
            Next::VncResponse | Next::VncChallenge => 16,
            Next::ArdChallenge => 2 * usize::from(be_u16(header, 2)),
            Next::ArdResponse => 2 * usize::from(self.ard_key_length),
            _ => 0,
        })
    }

    /// Parses what `data` completes of side `client`'s PDUs.
    fn feed(&mut self, ctx: &mut Ctx, client: bool, mut data: &[u8]) -> Result<(), RfbError> {
        let s = usize::from(!client);
        loop {
            let side = &mut self.sides[s];
            if side.skipping {
                let passed = side.skip.min(data.len());
                side.skip -= passed;
                data = &data[passed..];
                if side.skip > 0 {
                    return Ok(());
                }
                side.skipping = false;
                let (kind, pdu) = (side.current.take(), std::mem::take(&mut side.pdu));
                if let Some(kind) = kind {
                    self.complete(ctx, client, kind, &pdu)?;
                }
                // RFB.cc passes the server's data no further once the handshake is over.
                if !client && self.saw_handshake {
                    return Ok(());
                }
                continue;
            }
            if data.is_empty() {
                return Ok(());
            }
            let kind = match side.current {
                Some(kind) => kind,
                None => match side.next {
                    // Binpac's zero-length `WaitData` moves the side to `InvalidData`, whose byte throws.
                    Next::Wait => {
                        side.next = Next::Invalid;
                        continue;
                    }
                    Next::Invalid => return Err(RfbError::InvalidData(client)),
                    next => *side.current.insert(next),
                },
            };
            let need = Self::header_len(kind)?;
            let take = need.saturating_sub(side.pdu.len()).min(data.len());
            side.pdu.extend_from_slice(&data[..take]);
            data = &data[take..];
            if side.pdu.len() < need {
                return Ok(());
            }
            let body = self.body_len(kind, &self.sides[s].pdu)?;
            let side = &mut self.sides[s];
            if kind == Next::ServerInit {
                // The desktop name is logged: the body is kept (below MAX_DATA_LENGTH bytes).
                let take = (need + body).saturating_sub(side.pdu.len()).min(data.len());
                side.pdu.extend_from_slice(&data[..take]);
                data = &data[take..];
                if side.pdu.len() < need + body {
                    return Ok(());
                }
                side.skip = 0;
            } else {
                side.skip = body;
            }
            side.skipping = true;
        }
    }

    /// A whole PDU of kind `next`: the handlers of rfb-analyzer.pac (moving both sides' states) and the script's
    /// events.
    fn complete(&mut self, ctx: &mut Ctx, from_client: bool, next: Next, pdu: &[u8]) -> Result<(), RfbError> {
        let ts = ctx.ts;
        let [client, server] = &mut self.sides;
        match next {
            Next::Version => {
                if !(pdu.starts_with(b"RFB ") && pdu.get(7) == Some(&b'.')) {
                    return Err(RfbError::BadVersion);
                }
                let version = Some((bytes_to_log_string(&pdu[4..7]), bytes_to_log_string(&pdu[8..11])));
                if from_client {
                    self.version = minor_version(&pdu[8..11]);
                    // Apple's minor version 889 talks 3.7+.
                    (server.next, client.next) = if self.version >= 7 {
                        (Next::AuthTypes37, Next::AuthSelection)
                    } else {
                        (Next::AuthType, Next::Wait)
                    };
                    self.session(ts).client_version = version;
                    ctx.confirm("rfb");
                } else {
                    server.next = Next::Wait;
                    self.session(ts).server_version = version;
                }
            }
            Next::AuthSelection => {
                let selected = pdu[0];
                match selected {
                    1 => {
                        server.next = if self.version > 7 { Next::AuthResult } else { Next::ServerInit };
                        client.next = Next::ClientInit;
                    }
                    2 => (server.next, client.next) = (Next::VncChallenge, Next::VncResponse),
                    // Apple Remote Desktop: the client waits for the key length the server's challenge sets.
                    30 => (server.next, client.next) = (Next::ArdChallenge, Next::Wait),
                    other => ctx.violation(format!("unknown RFB auth selection: {other}")),
                }
                self.session(ts).authentication_method = Some(friendly_auth_name(u32::from(selected)));
            }
            Next::VncResponse | Next::ArdResponse => client.next = Next::ClientInit,
            Next::ClientInit => {
                client.next = Next::ClientMessageType;
                if let Some(info) = &mut self.info {
                    info.share_flag = Some(pdu[0] != 0);
                }
            }
            Next::ClientMessageType => client.next = Next::ClientMessage(pdu[0]),
            Next::ClientMessage(_) => client.next = Next::ClientMessageType,
            Next::AuthType => {
                let sectype = be_u32(pdu, 0);
                match sectype {
                    0 => (server.next, client.next) = (Next::AuthFailure, Next::ClientInit),
                    1 => (server.next, client.next) = (Next::ServerInit, Next::ClientInit),
                    2 => (server.next, client.next) = (Next::VncChallenge, Next::VncResponse),
                    other => ctx.violation(format!("invalid RFB security type {other}")),
                }
                self.session(ts).authentication_method = Some(friendly_auth_name(sectype));
            }
            Next::AuthTypes37 => server.next = if pdu[0] == 0 { Next::AuthFailure } else { Next::Wait },
            Next::AuthFailure => server.next = Next::ServerInit,
            Next::VncChallenge => (server.next, client.next) = (Next::AuthResult, Next::VncResponse),
            Next::ArdChallenge => {
                self.ard_key_length = be_u16(pdu, 2);
                (server.next, client.next) = (Next::AuthResult, Next::ArdResponse);
            }
            Next::AuthResult => {
                let result = be_u32(pdu, 0);
                match result {
                    0 => server.next = Next::ServerInit,
                    1 => server.next = Next::AuthFailure,
                    other => ctx.violation(format!("invalid RFB auth result: {other}")),
                }
                if let Some(info) = &mut self.info {
                    info.auth = Some(result == 0);
                }
            }
            Next::ServerInit => {
                server.next = Next::ServerMessageType;
                self.saw_handshake = true;
                let name = bytes_to_log_string(&pdu[SERVER_INIT_HEADER..]);
                self.session(ts).desktop = Some((name, be_u16(pdu, 0), be_u16(pdu, 2)));
                self.write_log(ctx);
            }
            Next::Wait | Next::Invalid | Next::ServerMessageType => {}
        }
        Ok(())
    }

    /// `set_session`: the record, started now if there is none yet.
    fn session(&mut self, ts: f64) -> &mut Info {
        self.info.get_or_insert_with(|| Info { ts, ..Info::default() })
    }
}

impl Analyzer for Rfb {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if ctx.partial || self.stopped || (self.saw_handshake && !is_orig) {
            return;
        }
        if let Err(e) = self.feed(ctx, is_orig, data) {
            self.stopped = true;
            ctx.violation(e.to_string());
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        self.stopped = true;
    }

    /// The removal hook `finalize_rfb`.
    fn finish(&mut self, ctx: &mut Ctx) {
        self.write_log(ctx);
    }
}

impl Rfb {
    /// `write_log`: the record, once.
    fn write_log(&mut self, ctx: &mut Ctx) {
        let Some(info) = self.info.as_mut().filter(|i| !i.done) else { return };
        info.done = true;
        let mut v = ctx.conn_columns(info.ts);
        for version in [&info.client_version, &info.server_version] {
            let (major, minor) = version.clone().unzip();
            v.extend([Value::opt_str(major), Value::opt_str(minor)]);
        }
        v.push(Value::opt_str(info.authentication_method));
        v.push(info.auth.map_or(Value::Unset, Value::Bool));
        v.push(info.share_flag.map_or(Value::Unset, Value::Bool));
        let (name, width, height) = match &info.desktop {
            Some((name, w, h)) => (Value::str(name.clone()), Value::Count(u64::from(*w)), Value::Count(u64::from(*h))),
            None => (Value::Unset, Value::Unset, Value::Unset),
        };
        v.extend([name, width, height]);
        ctx.log(&RFB_LOG, v);
    }
}

fn detect_rfb(proto: Proto, _is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Tcp && data.starts_with(b"RFB")
}

/// Fuzz entry point: arbitrary bytes as both directions of a stream.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Rfb::default(), Proto::Tcp, 5900, data);
}

#[cfg(test)]
mod tests;
