//! RDP (tcp 3389) to rdp.log, as Zeek's binpac analyzer (src/analyzer/protocol/rdp: `RDP.cc`, `rdp-protocol.pac`,
//! `rdp-analyzer.pac`) and base/protocols/rdp/main.zeek do it.
//!
//! Each direction is a run of TPKTs (binpac's flow unit, `tpkt_len` bytes each, header included; the grammar is in
//! [`parse`]): the client's X.224 Connect Request (its `Cookie: mstshash=` cookie) and MCS Connect Initial (Client
//! Core Data: desktop size, color depth, keyboard layout, build, name, product id; network data: the channels), the
//! server's Connect Confirm (negotiation response or failure) and MCS Connect Response (the GCC result, Server
//! Security Data: encryption method and level, a proprietary or X.509 certificate). Zeek confirms the analyzer on
//! the Client Core Data, the GCC Conference Create Response and the Server Security Data only, so a session that
//! negotiates TLS never confirms `rdp`. Whatever binpac throws on is a violation.
//!
//! Once the negotiation selects a protocol (TLS, CredSSP), the rest of both directions goes to a new PIA: the
//! engine starts content detection afresh ([`Ctx::hand_over`]), where TLS is found. With RDP's own encryption
//! (Server Security Data with both a method and a level) nothing after is parsed. The analyzer ignores connections
//! joined mid-stream and stops at a content gap in either direction. The server's X.509 certificates go to
//! x509.log as the files framework's X509 analyzer logs them (`host_cert` and `client_cert` false).
//!
//! The script's record starts at the first event; it is written when a violation comes, when the connection ends
//! (`finalize_rdp`), or at the first packet more than `rdp_check_interval` (10 s) after it started (the
//! `check_record` timer, which Zeek reschedules every 10 s), and only if it has a cookie, a keyboard layout or a
//! result.

mod names;
pub mod parse;

use self::parse::{ClientCore, Event, RdpError};
use super::ssl::x509::{self, KnownCerts, X509_LOG};
use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static RDP_LOG: Schema = Schema {
    path: "rdp",
    fields: conn_fields![
        f("cookie", "string"),
        f("result", "string"),
        f("security_protocol", "string"),
        f("client_channels", "vector[string]"),
        f("keyboard_layout", "string"),
        f("client_build", "string"),
        f("client_name", "string"),
        f("client_dig_product_id", "string"),
        f("desktop_width", "count"),
        f("desktop_height", "count"),
        f("requested_color_depth", "string"),
        f("cert_type", "string"),
        f("cert_count", "count"),
        f("cert_permanent", "bool"),
        f("encryption_level", "string"),
        f("encryption_method", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "rdp",
    tcp_ports: &[3389],
    udp_ports: &[],
    detect: Some(Signature::both_sides(detect)),
    new: |_| Box::new(Rdp::new(None)),
    schemas: &[&RDP_LOG, &X509_LOG],
};

/// `RDP::rdp_check_interval`.
const CHECK_INTERVAL: f64 = 10.0;
/// The script's weird threshold for requested channels.
const MAX_CHANNELS: usize = 31;

/// Zeek's DPD signatures `dpd_rdp_client` (`/.*(Cookie: mstshash\=|Duca.*(rdpdr|rdpsnd|drdynvc|cliprdr))/`) and
/// `dpd_rdp_server` (`/(.{5}\xd0|.*McDn)/`), which the client's requires. Patterns are anchored at the start of the
/// stream and `.` matches anything but a newline.
fn detect(proto: Proto, is_orig: bool, payload: &[u8]) -> bool {
    if proto != Proto::Tcp {
        return false;
    }
    // `.` stops at the first newline (found vectorised: every TCP stream's start passes here).
    let line = &payload[..memchr::memchr(b'\n', payload).unwrap_or(payload.len())];
    if is_orig {
        return contains(line, b"Cookie: mstshash=")
            || find(line, b"Duca").is_some_and(|at| {
                let after = &line[at + 4..];
                [&b"rdpdr"[..], b"rdpsnd", b"drdynvc", b"cliprdr"].iter().any(|name| contains(after, name))
            });
    }
    (line.len() > 5 && payload[5] == 0xd0) || contains(line, b"McDn")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// Zeek's `utf16_to_utf8_val`: UTF-16LE converted leniently (an unpaired surrogate is encoded as it is) and cut at
/// the first NUL (the result is made from a C string); `None` where the conversion fails (a high surrogate as the
/// last unit), for which Zeek keeps the raw bytes and raises `utf16_conversion_failed`.
pub(crate) fn utf16_to_utf8(raw: &[u8]) -> Option<Vec<u8>> {
    let units: Vec<u32> =
        raw.chunks(2).map(|p| u32::from(p[0]) | u32::from(p.get(1).copied().unwrap_or(0)) << 8).collect();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&unit) = units.get(i) {
        i += 1;
        let mut ch = unit;
        if (0xd800..0xdc00).contains(&unit) {
            let &next = units.get(i)?;
            if (0xdc00..0xe000).contains(&next) {
                ch = ((unit - 0xd800) << 10) + (next - 0xdc00) + 0x1_0000;
                i += 1;
            }
        }
        push_utf8(&mut out, ch);
    }
    if let Some(nul) = out.iter().position(|&b| b == 0) {
        out.truncate(nul);
    }
    Some(out)
}

/// ConvertUTF's encoding of one code point (surrogates included).
fn push_utf8(out: &mut Vec<u8>, ch: u32) {
    let cont = |shift: u32| 0x80 | ((ch >> shift) & 0x3f) as u8;
    match ch {
        0..0x80 => out.push(ch as u8),
        0x80..0x800 => out.extend([0xc0 | (ch >> 6) as u8, cont(0)]),
        0x800..0x1_0000 => out.extend([0xe0 | (ch >> 12) as u8, cont(6), cont(0)]),
        _ => out.extend([0xf0 | (ch >> 18) as u8, cont(12), cont(6), cont(0)]),
    }
}

/// The connection's rdp.log record (`RDP::Info`).
#[derive(Debug, Default, Clone, PartialEq)]
struct Info {
    ts: f64,
    cookie: Option<String>,
    result: Option<String>,
    security_protocol: Option<String>,
    client_channels: Option<Vec<String>>,
    keyboard_layout: Option<String>,
    client_build: Option<String>,
    client_name: Option<String>,
    client_dig_product_id: Option<String>,
    desktop_width: Option<u64>,
    desktop_height: Option<u64>,
    requested_color_depth: Option<String>,
    cert_type: Option<String>,
    cert_count: u64,
    cert_permanent: Option<bool>,
    encryption_level: Option<String>,
    encryption_method: Option<String>,
}

impl Info {
    /// `write_log`'s test: only a record with RDP data in it is written.
    fn has_rdp_data(&self) -> bool {
        self.cookie.is_some() || self.keyboard_layout.is_some() || self.result.is_some()
    }

    fn into_record(self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::opt_str(self.cookie),
            Value::opt_str(self.result),
            Value::opt_str(self.security_protocol),
            self.client_channels.map_or(Value::Unset, Value::str_vec),
            Value::opt_str(self.keyboard_layout),
            Value::opt_str(self.client_build),
            Value::opt_str(self.client_name),
            Value::opt_str(self.client_dig_product_id),
            Value::opt_count(self.desktop_width),
            Value::opt_count(self.desktop_height),
            Value::opt_str(self.requested_color_depth),
            Value::opt_str(self.cert_type),
            Value::Count(self.cert_count),
            self.cert_permanent.map_or(Value::Unset, Value::Bool),
            Value::opt_str(self.encryption_level),
            Value::opt_str(self.encryption_method),
        ]);
        v
    }
}

/// The script's `c$rdp` and its logging state.
enum Record {
    /// No event yet (`! c?$rdp`).
    None,
    /// Set by the first event; the next `check_record` timer is due at `next_check`.
    Open { info: Box<Info>, next_check: f64 },
    /// `write_log` ran (`info$done`): nothing is written again.
    Done,
}

/// One direction's bytes of a TPKT not complete yet.
#[derive(Default)]
struct Flow {
    pending: Vec<u8>,
}

pub struct Rdp {
    flows: [Flow; 2],
    /// `go_encrypted`'s method once encryption began (0: RDP's own).
    encryption: Option<u32>,
    /// A content gap was seen (`had_gap`): nothing more is parsed or forwarded.
    had_gap: bool,
    /// A violation ended the analysis (the engine detaches the analyzer then).
    stopped: bool,
    confirmed: bool,
    record: Record,
    /// x509.log deduplication: the process-wide table, or a private one (tests, fuzzing).
    known_certs: Option<KnownCerts>,
}

impl Rdp {
    fn new(known_certs: Option<KnownCerts>) -> Self {
        Rdp {
            flows: Default::default(),
            encryption: None,
            had_gap: false,
            stopped: false,
            confirmed: false,
            record: Record::None,
            known_certs,
        }
    }

    /// `set_session`: the record, started now if there is none (a written one takes no more values).
    fn session(&mut self, ts: f64) -> Option<&mut Info> {
        if let Record::None = self.record {
            let info = Box::new(Info { ts, ..Info::default() });
            self.record = Record::Open { info, next_check: ts + CHECK_INTERVAL };
        }
        match &mut self.record {
            Record::Open { info, .. } => Some(info),
            _ => None,
        }
    }

    /// `write_log`: marks the record done and writes it if it holds RDP data.
    fn write_log(&mut self, ctx: &mut Ctx) {
        if let Record::Open { info, .. } = std::mem::replace(&mut self.record, Record::Done)
            && info.has_rdp_data()
        {
            ctx.log(&RDP_LOG, info.into_record(ctx));
        }
    }

    /// The `check_record` timers due by now: the first one that finds the record older than the interval writes it.
    fn check_record(&mut self, ctx: &mut Ctx) {
        let Record::Open { info, next_check } = &mut self.record else { return };
        if ctx.ts < *next_check {
            return;
        }
        if ctx.ts - info.ts > CHECK_INTERVAL {
            self.write_log(ctx);
        } else {
            *next_check += CHECK_INTERVAL;
        }
    }

    /// The script's handlers (priority 5) for one event.
    fn apply(&mut self, ctx: &mut Ctx, event: Event) {
        if event.confirms() && !self.confirmed {
            self.confirmed = true;
            ctx.confirm("rdp");
        }
        if let Event::BeginEncryption { method } = event {
            self.encryption = Some(method);
        }
        if let Event::X509Certificate(der) = event {
            self.x509_certificate(ctx, der);
            return;
        }
        let ts = ctx.ts;
        let mut weird = None;
        let Some(info) = self.session(ts) else { return };
        match event {
            Event::ConnectRequest { cookie } => info.cookie = Some(bytes_to_log_string(cookie)),
            Event::NegotiationResponse { selected_protocol } => {
                info.security_protocol = Some(names::security_protocol(selected_protocol));
            }
            Event::NegotiationFailure { failure_code } => info.result = Some(names::failure_code(failure_code)),
            Event::ClientCoreData(core) => weird = client_core_data(info, &core),
            Event::ClientNetworkData(channels) => {
                let list = info.client_channels.get_or_insert_with(Vec::new);
                for (i, raw) in channels.iter().enumerate() {
                    // `gsub(name, /\x00+$/, "")`.
                    let kept = raw.len() - raw.iter().rev().take_while(|&&b| b == 0).count();
                    let name = bytes_to_log_string(&raw[..kept]);
                    match list.get_mut(i) {
                        Some(slot) => *slot = name,
                        None => list.push(name),
                    }
                }
                if channels.len() > MAX_CHANNELS {
                    ctx.weird("RDP_channels_requested_exceeds_max", Some(channels.len().to_string()), "");
                }
            }
            Event::GccServerCreateResponse { result } => info.result = Some(names::result(result)),
            Event::ServerSecurity { encryption_method, encryption_level } => {
                info.encryption_method = Some(names::encryption_method(encryption_method));
                info.encryption_level = Some(names::encryption_level(encryption_level));
            }
            Event::ServerCertificate { cert_type, permanently_issued } => {
                let name = names::cert_type(cert_type);
                // No event counts a proprietary certificate: the script counts it here.
                if name == "RSA" {
                    info.cert_count += 1;
                }
                info.cert_type = Some(name);
                info.cert_permanent = Some(permanently_issued);
            }
            Event::BeginEncryption { method } => {
                info.result.get_or_insert_with(|| "encrypted".to_string());
                info.security_protocol = Some(names::security_protocol(method));
            }
            Event::X509Certificate(_) => {}
        }
        if let Some(failed) = weird {
            ctx.weird("utf16_conversion_failed", Some(failed.to_string()), "");
        }
    }

    /// `proc_x509_cert_data`: the certificate as a file (`file_over_new_connection` counts it in the record) that
    /// the X509 file analyzer logs.
    fn x509_certificate(&mut self, ctx: &mut Ctx, der: &[u8]) {
        if let Record::Open { info, .. } = &mut self.record {
            info.cert_count += 1;
        }
        let Some(cert) = x509::parse(der) else { return };
        let fp = x509::fingerprint(der);
        let log = match &mut self.known_certs {
            Some(known) => known.should_log(&fp, false, false, ctx.ts),
            None => x509::should_log_globally(&fp, false, false, ctx.ts),
        };
        if log {
            ctx.log(&X509_LOG, x509::log_values(ctx.ts, &fp, &cert, false, false));
        }
    }

    /// Parses the whole TPKTs at the start of `data` and applies their events; returns how many bytes they took, or
    /// the violation that stopped the analysis.
    fn parse_frames(&mut self, ctx: &mut Ctx, data: &[u8]) -> Result<usize, RdpError> {
        let mut used = 0;
        let mut events = Vec::new();
        while let Some(header) = data.get(used..used + 4) {
            let tpkt_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            // A length under the header's is bounded by the header binpac already buffered.
            let Some(frame) = data.get(used..used + tpkt_len.max(4)) else { break };
            used += frame.len();
            let parsed = parse::tpkt(&frame[..tpkt_len.min(frame.len())], &mut events);
            for event in events.drain(..) {
                self.apply(ctx, event);
            }
            parsed?;
        }
        Ok(used)
    }
}

/// `rdp_client_core_data`'s handler; returns the addl of a `utf16_conversion_failed` weird, if any.
fn client_core_data(info: &mut Info, core: &ClientCore) -> Option<&'static str> {
    info.keyboard_layout = Some(names::keyboard_layout(core.keyboard_layout));
    info.client_build = Some(names::build(core.client_build));
    let mut failed = None;
    let mut text = |raw: &[u8]| match utf16_to_utf8(raw) {
        Some(utf8) => bytes_to_log_string(&utf8),
        None => {
            failed = Some("utf16 conversion failed in utf16_to_utf8_val");
            bytes_to_log_string(raw)
        }
    };
    info.client_name = Some(text(core.client_name));
    info.client_dig_product_id = Some(text(core.dig_product_id));
    info.desktop_width = Some(u64::from(core.desktop_width));
    info.desktop_height = Some(u64::from(core.desktop_height));
    const WANT_32BPP_SESSION: u16 = 0x02;
    info.requested_color_depth = Some(if core.early_capability_flags & WANT_32BPP_SESSION != 0 {
        "32bit".to_string()
    } else {
        names::high_color_depth(core.high_color_depth)
    });
    failed
}

impl Analyzer for Rdp {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        self.check_record(ctx);
        // Encrypted: TLS and CredSSP were handed over; RDP's own encryption only raises
        // `rdp_native_encrypted_data`, which no base script handles.
        if ctx.partial || self.had_gap || self.stopped || self.encryption.is_some() || data.is_empty() {
            return;
        }
        let side = usize::from(!is_orig);
        let mut pending = std::mem::take(&mut self.flows[side].pending);
        let outcome = if pending.is_empty() {
            self.parse_frames(ctx, data).map(|used| pending.extend_from_slice(&data[used..]))
        } else {
            pending.extend_from_slice(data);
            self.parse_frames(ctx, &pending).map(|used| {
                pending.drain(..used);
            })
        };
        if let Some(method) = self.encryption {
            self.flows = Default::default();
            if method > 0 {
                // `RDP.cc` forwards the rest of both directions to a new PIA; what is left of this delivery was still
                // parsed as RDP.
                ctx.hand_over(None, is_orig, &[]);
            }
        }
        match outcome {
            // A TPKT is at most 65535 bytes: what is pending stays under that.
            Ok(()) if self.encryption.is_none() => self.flows[side].pending = pending,
            Ok(()) => {}
            Err(e) => {
                self.stopped = true;
                self.flows = Default::default();
                // `analyzer_violation_info`: the record is written at once.
                if let Record::Open { .. } = self.record {
                    self.write_log(ctx);
                }
                ctx.violation(e.to_string());
            }
        }
    }

    fn undelivered(&mut self, ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        self.check_record(ctx);
        self.had_gap = true;
        self.flows = Default::default();
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, _is_orig: bool) {
        self.check_record(ctx);
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        // `finalize_rdp`.
        self.write_log(ctx);
    }

    fn is_done(&self) -> bool {
        let record_pending = matches!(self.record, Record::Open { .. });
        !record_pending && (self.stopped || self.had_gap || self.encryption.is_some())
    }
}

/// Fuzz entry point: arbitrary deliveries in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Rdp::new(Some(KnownCerts::default())), Proto::Tcp, 3389, data);
}

#[cfg(test)]
mod tests;
