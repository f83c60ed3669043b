//! SSL/TLS analyzer: ssl.log and x509.log as Zeek 9.1 writes them.
//!
//! The layering follows Zeek's binpac analyzer (`src/analyzer/protocol/ssl`): a record layer per direction
//! (with Zeek's version checks and SSLv2 framing), a handshake layer that reassembles handshake messages
//! across records, and the per-connection session state of `base/protocols/ssl/main.zeek` and
//! `files.zeek`, which decides every logged field. Records are framed by hand; handshake bodies are
//! decoded with tls-parser, certificates with x509-parser.

pub mod dtls;
mod names;
#[cfg(test)]
pub(crate) mod replay;
pub mod x509;

use std::sync::RwLock;

use tls_parser::{
    TlsExtension, TlsExtensionType, parse_tls_extension, parse_tls_handshake_client_hello,
    parse_tls_handshake_server_hello,
};

use self::names::{SSLV2, SSLV3, TLSV12, TLSV13, is_tls13_draft};
use self::x509::{CertInfo, KnownCerts, X509_LOG};
use super::files::FileTransfer;
use super::{Analyzer, AnalyzerSpec, ConnId, Ctx, Proto, Signature};
use crate::logs::conn_fields;
use crate::logs::{Schema, Value, f};

pub static SSL_LOG: Schema = Schema {
    path: "ssl",
    fields: conn_fields![
        f("version", "string"),
        f("cipher", "string"),
        f("curve", "string"),
        f("server_name", "string"),
        f("resumed", "bool"),
        f("last_alert", "string"),
        f("next_protocol", "string"),
        f("established", "bool"),
        f("ssl_history", "string"),
        f("cert_chain_fps", "vector[string]"),
        f("client_cert_chain_fps", "vector[string]"),
        f("sni_matches_cert", "bool"),
    ],
};

/// `ssl_ports` of `base/protocols/ssl/main.zeek`.
const SSL_PORTS: &[u16] = &[443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223];

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ssl",
    tcp_ports: SSL_PORTS,
    udp_ports: &[],
    detect: Some(Signature::either_side(detect)),
    new: |_| Box::new(SslAnalyzer::new(Dedup::Global)),
    schemas: &[&SSL_LOG, &X509_LOG, &crate::logs::FILES],
};

/// Zeek's `dpd_tls_client` / `dpd_tls_server` signatures, plus an SSLv2 client hello.
fn detect(proto: Proto, is_orig: bool, payload: &[u8]) -> bool {
    proto == Proto::Tcp && if is_orig { looks_like_client_hello(payload) } else { looks_like_server_hello(payload) }
}

fn is_v3_minor(b: u8) -> bool {
    b <= 3
}

fn looks_like_client_hello(p: &[u8]) -> bool {
    let tls =
        p.len() >= 11 && p[0] == 0x16 && p[1] == 3 && is_v3_minor(p[2]) && p[5] == 1 && p[9] == 3 && is_v3_minor(p[10]);
    let sslv2 = p.len() >= 5
        && p[0] & 0x80 != 0
        && p[2] == 1
        && matches!(u16::from_be_bytes([p[3], p[4]]), 0x0002 | 0x0300..=0x0303);
    tls || sslv2
}

fn looks_like_server_hello(p: &[u8]) -> bool {
    // An alert record may come first.
    let p = if p.len() >= 7 && p[0] == 0x15 && p[1] == 3 && is_v3_minor(p[2]) { &p[7..] } else { p };
    p.len() >= 11
        && p[0] == 0x16
        && p[1] == 3
        && is_v3_minor(p[2])
        && p[5] == 2
        && ((p[9] == 3 && p[10] <= 4) || (p[9] == 0x7F && p[10] <= 0x50))
}

/// Where x509 deduplication state lives: the process-wide table, or one private to the analyzer (tests).
enum Dedup {
    Global,
    Local(KnownCerts),
}

const CONTENT_CCS: u8 = 20;
const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APPLICATION_DATA: u8 = 23;
const CONTENT_HEARTBEAT: u8 = 24;

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;
const HS_SERVER_KEY_EXCHANGE: u8 = 12;
const HS_CLIENT_KEY_EXCHANGE: u8 = 16;
const HS_CERTIFICATE_STATUS: u8 = 22;

const EXT_SESSION_TICKET: u16 = 35;
const EXT_PRE_SHARED_KEY: u16 = 41;
const EXT_KEY_SHARE: u16 = 51;

/// `SSL::max_ssl_history_length`.
const MAX_HISTORY: usize = 100;
/// `SSL::max_alerts_per_record`.
const MAX_ALERTS_PER_RECORD: usize = 10;
/// Records or handshake messages larger than this are not TLS (2^14 plus expansion, generously).
const MAX_BUFFERED: usize = 1 << 24;

/// The random value a server hello carries when it is really a HelloRetryRequest (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91, 0xC2, 0xA2, 0x11,
    0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// One certificate of a chain: its fingerprint, when it parsed as X.509.
struct ChainEntry {
    fingerprint: Option<String>,
    info: Option<CertInfo>,
}

/// The script-level `SSL::Info` plus the few bookkeeping flags main.zeek keeps beside it.
#[derive(Default)]
struct Session {
    ts: f64,
    version_num: Option<u16>,
    version: Option<String>,
    cipher: Option<String>,
    curve: Option<String>,
    server_name: Option<String>,
    session_id: Option<Vec<u8>>,
    resumed: bool,
    client_ticket_empty_session_seen: bool,
    client_key_exchange_seen: bool,
    client_psk_seen: bool,
    last_alert: Option<String>,
    next_protocol: Option<String>,
    established: bool,
    logged: bool,
    hrr_seen: bool,
    history: String,
    /// The history just reached its limit: `add_to_history`'s weird is still to be written.
    history_limit_reached: bool,
    /// `None` until the first certificate of either side (then both chains exist, maybe empty).
    chains: Option<(Vec<ChainEntry>, Vec<ChainEntry>)>,
}

impl Session {
    fn add_history(&mut self, is_client: bool, letter: char) {
        if self.history.len() >= MAX_HISTORY {
            return;
        }
        self.history.push(if is_client { letter.to_ascii_uppercase() } else { letter.to_ascii_lowercase() });
        if self.history.len() == MAX_HISTORY {
            self.history_limit_reached = true;
        }
    }

    fn set_version(&mut self, v: u16) {
        self.version_num = Some(v);
        self.version = Some(names::version_name(v));
    }
}

/// Per-direction framing state.
#[derive(Default)]
struct Direction {
    records: Vec<u8>,
    handshake: Vec<u8>,
    encrypted: bool,
    /// Bytes of an encrypted record's body still to come, dropped without buffering: only the record
    /// header matters once a side is encrypted.
    skip: usize,
}

pub struct SslAnalyzer {
    dirs: [Direction; 2],
    /// The record-layer version fixed by the first TLS record (`record_layer_version_`).
    record_layer_version: Option<u16>,
    /// Handshake-layer version: the server's supported_versions choice, else its hello version.
    chosen_version: Option<u16>,
    chosen_cipher: Option<u32>,
    flipped: bool,
    already_alerted_flip: bool,
    /// A violation (or a gap) stopped parsing, as Zeek's `SetSkip`.
    skipping: bool,
    /// The session is established and logged: Zeek detaches the analyzer.
    done: bool,
    session: Option<Session>,
    dedup: Dedup,
    /// Kept only when QUIC embeds this analyzer (see [`HelloNotes`]).
    notes: Option<Box<HelloNotes>>,
    /// Fed by the DTLS record layer ([`dtls`]): records come one by one, already framed, and the service is `dtls`.
    dtls: bool,
    /// A hello confirmed the protocol (`AnalyzerConfirmed`).
    confirmed: bool,
}

/// What the hellos told an embedding QUIC analyzer since it last asked: quic.log takes a history letter per hello,
/// the client's first server name and its ALPN protocols (Zeek's QUIC script handles the same SSL events).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct HelloNotes {
    pub client_hello: bool,
    pub server_hello: bool,
    pub server_name: Option<String>,
    pub client_protocols: Vec<String>,
}

fn dir_index(is_orig: bool) -> usize {
    usize::from(!is_orig)
}

fn orig_label(is_orig: bool) -> &'static str {
    if is_orig { "originator" } else { "responder" }
}

fn is_record_version(v: u16) -> bool {
    (SSLV3..=TLSV12).contains(&v)
}

/// `version_ok` of the handshake analyzer: any version Zeek knows how to name.
fn version_ok(v: u16) -> bool {
    matches!(v, SSLV2 | 0x0300..=0x0304 | 0xFEFF | 0xFEFD | 0xFEFC) || is_tls13_draft(v)
}

/// What the record layer makes of a header.
enum Framing {
    Tls { version: u16 },
    V2,
}

impl SslAnalyzer {
    fn new(dedup: Dedup) -> Self {
        SslAnalyzer {
            dirs: Default::default(),
            record_layer_version: None,
            chosen_version: None,
            chosen_cipher: None,
            flipped: false,
            already_alerted_flip: false,
            skipping: false,
            done: false,
            session: None,
            dedup,
            notes: None,
            dtls: false,
            confirmed: false,
        }
    }

    /// `AnalyzerConfirmation`: Zeek's DTLS analyzer names the connection's service `dtls`.
    fn confirm(&mut self, ctx: &mut Ctx) {
        self.confirmed = true;
        ctx.confirm(if self.dtls { "dtls" } else { "ssl" });
    }

    /// A TLS analyzer another analyzer feeds (the tokens of FTP's ADAT exchange).
    pub(crate) fn embedded() -> Self {
        SslAnalyzer::new(Dedup::Global)
    }

    /// The analyzer QUIC feeds its CRYPTO streams to (as one TLS record per direction, as Zeek's QUIC does).
    pub(crate) fn for_quic() -> Self {
        SslAnalyzer { notes: Some(Box::default()), ..SslAnalyzer::new(Dedup::Global) }
    }

    /// A fresh analyzer on the same session: after a QUIC Retry Zeek replaces its SSL analyzer, while the script's
    /// ssl.log record (and its history) goes on.
    pub(crate) fn restart(&mut self) {
        let dedup = std::mem::replace(&mut self.dedup, Dedup::Global);
        let (session, notes) = (self.session.take(), self.notes.take());
        *self = SslAnalyzer { session, notes, ..SslAnalyzer::new(dedup) };
    }

    /// The hellos seen since the last call.
    pub(crate) fn take_hello_notes(&mut self) -> HelloNotes {
        self.notes.as_deref_mut().map(std::mem::take).unwrap_or_default()
    }

    fn note(&mut self, f: impl FnOnce(&mut HelloNotes)) {
        if let Some(notes) = self.notes.as_deref_mut() {
            f(notes);
        }
    }

    fn is_tls13(&self) -> bool {
        self.chosen_version.is_some_and(|v| v == TLSV13 || is_tls13_draft(v))
    }

    /// `set_session`: the ssl.log record starts with the first event of the connection.
    fn session(&mut self, ctx: &Ctx) -> &mut Session {
        self.session.get_or_insert_with(|| Session { ts: ctx.ts, ..Default::default() })
    }

    fn violation(&mut self, ctx: &mut Ctx, reason: String) {
        // main.zeek logs what it has when the analyzer fails (`analyzer_violation_info`).
        if self.session.is_some() {
            self.log_session(ctx);
        }
        self.skipping = true;
        ctx.violation(reason);
    }

    // ----- record layer -------------------------------------------------------------------------------

    /// Parses the complete records at the start of `buf` (one direction's stream); returns the bytes consumed.
    /// `buf` is the caller's (the packet's payload, or the buffered tail of earlier ones), so records are parsed
    /// where they lie, without a copy.
    fn process_records(&mut self, ctx: &mut Ctx, is_orig: bool, buf: &[u8]) -> usize {
        let d = dir_index(is_orig);
        let mut consumed = 0;
        while !self.skipping && !self.done {
            let available = buf.len() - consumed;
            let Some(head) = buf.get(consumed..consumed + 5) else { break };
            let head: [u8; 5] = [head[0], head[1], head[2], head[3], head[4]];
            let Some(framing) = self.determine_framing(ctx, head, is_orig) else { break };
            let total = match framing {
                Framing::Tls { .. } => usize::from(u16::from_be_bytes([head[3], head[4]])) + 5,
                Framing::V2 => (usize::from(head[0] & 0x7F) << 8 | usize::from(head[1])) + 2,
            };
            if total < 5 {
                self.violation(ctx, "Binpac exception: SSLv2 record too short".to_string());
                break;
            }
            if available < total {
                if self.dirs[d].encrypted && matches!(framing, Framing::Tls { .. }) {
                    // Ciphertext is never looked at: account for the record now and drop its body as it comes.
                    self.dirs[d].skip = total - available;
                    consumed += available;
                    if let Framing::Tls { version } = framing {
                        self.tls_record(ctx, is_orig, version, head[0], &[]);
                    }
                }
                break;
            }
            let body = &buf[consumed + 5..consumed + total];
            consumed += total;
            match framing {
                Framing::Tls { version } => self.tls_record(ctx, is_orig, version, head[0], body),
                Framing::V2 => self.v2_record(ctx, is_orig, head, body),
            }
        }
        consumed
    }

    /// `determine_ssl_record_layer`, with its violations.
    fn determine_framing(&mut self, ctx: &mut Ctx, head: [u8; 5], is_orig: bool) -> Option<Framing> {
        let v = u16::from_be_bytes([head[1], head[2]]);
        if let Some(layer) = self.record_layer_version {
            if layer == SSLV2 {
                return Some(Framing::V2);
            }
            if !is_record_version(v) {
                self.violation(ctx, format!("Invalid version late in TLS connection. Packet reported version: {v}"));
                return None;
            }
            return Some(Framing::Tls { version: v });
        }
        if head[0] & 0x80 != 0 {
            if head[2] == 0x01 && is_orig {
                let hello_version = u16::from_be_bytes([head[3], head[4]]);
                if hello_version != SSLV2 && !is_record_version(hello_version) {
                    self.violation(ctx, format!("Invalid version in SSL client hello. Version: {hello_version}"));
                    return None;
                }
                return Some(Framing::V2);
            }
            if head[2] == 0x04 && head[4] < 2 && !is_orig {
                self.record_layer_version = Some(SSLV2);
                return Some(Framing::V2);
            }
            self.violation(
                ctx,
                format!(
                    "Invalid headers in SSL connection. Head1: {}, head2: {}, head3: {}",
                    head[1], head[2], head[3]
                ),
            );
            return None;
        }
        if !is_record_version(v) {
            self.violation(ctx, format!("Invalid version in TLS connection. Version: {v}"));
            return None;
        }
        if (20..=30).contains(&head[0]) {
            self.record_layer_version = Some(v);
            return Some(Framing::Tls { version: v });
        }
        self.violation(ctx, format!("Invalid type in TLS connection. Version: {v}, Type: {}", head[0]));
        None
    }

    /// main.zeek's `add_to_history` raises `Reporter::limit_reached_weird` when the history reaches
    /// `SSL::max_ssl_history_length` (addl the length, source SSL).
    fn report_history_limit(&mut self, ctx: &mut Ctx) {
        if let Some(s) = self.session.as_mut()
            && std::mem::take(&mut s.history_limit_reached)
        {
            ctx.weird("SSL_max_ssl_history_length_reached", Some(MAX_HISTORY.to_string()), "SSL");
        }
    }

    fn tls_record(&mut self, ctx: &mut Ctx, is_orig: bool, version: u16, content_type: u8, body: &[u8]) {
        self.tls_record_content(ctx, is_orig, version, content_type, body);
        self.report_history_limit(ctx);
    }

    fn tls_record_content(&mut self, ctx: &mut Ctx, is_orig: bool, version: u16, content_type: u8, body: &[u8]) {
        let d = dir_index(is_orig);
        // `determine_state`: TLS 1.3 application data switches its side to encrypted. DTLS decides by epoch instead.
        if !self.dtls && !self.dirs[d].encrypted && content_type == CONTENT_APPLICATION_DATA {
            let negotiated = self.chosen_version.unwrap_or(0);
            if !matches!(negotiated, SSLV2 | 0x0300..=0x0303) {
                self.dirs[d].encrypted = true;
            }
        }
        if self.dirs[d].encrypted && !self.dtls {
            self.ciphertext_record(ctx);
            return;
        }
        let is_client = is_orig ^ self.flipped;
        match content_type {
            CONTENT_CCS => {
                let s = self.session(ctx);
                s.add_history(is_client, 'i');
                if is_client && s.client_ticket_empty_session_seen && !s.client_key_exchange_seen {
                    s.resumed = true;
                }
                if !self.is_tls13() {
                    self.dirs[d].encrypted = true;
                }
            }
            CONTENT_ALERT => {
                let max = if self.is_tls13() { 1 } else { MAX_ALERTS_PER_RECORD };
                if body.len() / 2 > max {
                    ctx.weird("SSL_excessive_alerts_in_record", Some((body.len() / 2).to_string()), "SSL");
                }
                let s = self.session(ctx);
                for alert in body.chunks_exact(2).take(max) {
                    s.add_history(is_client, 'l');
                    s.last_alert = Some(names::alert_name(alert[1]));
                }
            }
            CONTENT_HANDSHAKE => {
                self.session(ctx);
                self.handshake_records(ctx, is_orig, version, body);
            }
            CONTENT_APPLICATION_DATA => {
                // Cleartext application data with no handshake before it means we joined mid-stream,
                // where Zeek (`IsPartial`) analyses nothing; so it starts no session.
                if let Some(s) = self.session.as_ref()
                    && s.version.is_some()
                    && !s.established
                {
                    // main.zeek writes this one itself (`Weird::weird`), without a source.
                    ctx.weird("ssl_early_application_data", None, "");
                }
            }
            CONTENT_HEARTBEAT => self.session(ctx).add_history(is_client, 'b'),
            other => {
                self.session(ctx);
                let reason = format!("unknown SSL record type ({other}) from {}", orig_label(is_orig));
                self.violation(ctx, reason);
            }
        }
    }

    /// `proc_ciphertext_record`: the first encrypted record after both sides switched establishes.
    fn ciphertext_record(&mut self, ctx: &mut Ctx) {
        let both_encrypted = self.dirs.iter().all(|d| d.encrypted);
        let not_yet = self.session.as_ref().is_none_or(|s| !s.established);
        if both_encrypted && not_yet {
            self.establish(ctx);
        }
    }

    /// `ssl_established`: finish the record, log it, and stop analysing (the analyzer is detached).
    fn establish(&mut self, ctx: &mut Ctx) {
        self.session(ctx).established = true;
        self.log_session(ctx);
        self.report_host_certificate(ctx);
        self.done = true;
    }

    /// known-certs.zeek's `ssl_established` handler reads the server's host certificate (the first of its chain,
    /// when it parsed as X.509): handed to the registered sink, if any.
    fn report_host_certificate(&self, ctx: &Ctx) {
        let sink = *HOST_CERT_SINK.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sink) = sink
            && let Some(cert) = self.host_certificate(ctx)
        {
            sink(cert);
        }
    }

    /// The server's host certificate as known-certs.zeek reads it: none when the server sent no chain or its first
    /// certificate did not parse (`! c$ssl$cert_chain[0]?$x509`).
    fn host_certificate(&self, ctx: &Ctx) -> Option<HostCertificate> {
        let (server, _) = self.session.as_ref()?.chains.as_ref()?;
        let ChainEntry { fingerprint: Some(fingerprint), info: Some(cert) } = server.first()? else { return None };
        Some(HostCertificate {
            ts: ctx.ts,
            uid: ctx.uid.to_string(),
            id: *ctx.id,
            fingerprint: fingerprint.clone(),
            subject: cert.subject.clone(),
            issuer: cert.issuer.clone(),
            serial: cert.serial.clone(),
        })
    }

    // ----- SSLv2 ----------------------------------------------------------------------------------------

    /// SSLv2 records: `body` follows the five header bytes (msg type and two more bytes are in `head`).
    fn v2_record(&mut self, ctx: &mut Ctx, is_orig: bool, head: [u8; 5], body: &[u8]) {
        self.v2_record_content(ctx, is_orig, head, body);
        self.report_history_limit(ctx);
    }

    fn v2_record_content(&mut self, ctx: &mut Ctx, is_orig: bool, head: [u8; 5], body: &[u8]) {
        const V2_ERROR: u8 = 0;
        const V2_CLIENT_HELLO: u8 = 1;
        const V2_CLIENT_MASTER_KEY: u8 = 2;
        const V2_SERVER_HELLO: u8 = 4;
        match head[2] {
            V2_CLIENT_HELLO => {
                // head3..4 are the client version; body: cipher_len, session_len, challenge_len, ...
                let version = u16::from_be_bytes([head[3], head[4]]);
                let Some(session_id) = v2_client_session_id(body) else {
                    self.violation(ctx, "Binpac exception: truncated SSLv2 client hello".to_string());
                    return;
                };
                if !version_ok(version) {
                    self.session(ctx);
                    self.violation(ctx, format!("unsupported client SSL version 0x{version:04x}"));
                    return;
                }
                self.confirm(ctx);
                let s = self.session(ctx);
                s.note_client_session_id(&session_id);
                s.add_history(true, 'c');
            }
            V2_SERVER_HELLO => {
                // head3 = session id hit, head4 = cert type; body: version, cert_len, ciphers_len, conn_id_len.
                let Some(hello) = v2_server_hello(body) else {
                    self.violation(ctx, "Binpac exception: truncated SSLv2 server hello".to_string());
                    return;
                };
                if hello.version != SSLV2 {
                    self.violation(ctx, format!("Invalid version in SSL server hello. Version: {}", hello.version));
                    return;
                }
                self.chosen_version.get_or_insert(SSLV2);
                let s = self.session(ctx);
                if s.version_num.is_none() {
                    s.set_version(SSLV2);
                }
                s.cipher = Some(names::cipher_name(hello.first_cipher.unwrap_or(0)));
                s.add_history(false, 's');
                self.certificates(ctx, is_orig, &[hello.cert.to_vec()]);
            }
            V2_CLIENT_MASTER_KEY => {
                for dir in &mut self.dirs {
                    dir.encrypted = true;
                }
                self.establish(ctx);
            }
            V2_ERROR => {
                let is_client = is_orig ^ self.flipped;
                let s = self.session(ctx);
                s.add_history(is_client, 'l');
                s.last_alert = Some(names::alert_name(head[4]));
            }
            other => {
                self.session(ctx);
                let reason =
                    format!("unknown SSL record type ({}) from {}", u16::from(other) + 300, orig_label(is_orig));
                self.violation(ctx, reason);
            }
        }
    }

    // ----- handshake layer ------------------------------------------------------------------------------

    /// Handshake messages may span records: `body` (one record's) is parsed in place when nothing is pending,
    /// and only a message cut at the record's end is kept.
    fn handshake_records(&mut self, ctx: &mut Ctx, is_orig: bool, record_version: u16, body: &[u8]) {
        let d = dir_index(is_orig);
        let mut pending = std::mem::take(&mut self.dirs[d].handshake);
        if pending.is_empty() {
            let consumed = self.process_handshake(ctx, is_orig, record_version, body);
            pending.extend_from_slice(&body[consumed.min(body.len())..]);
        } else {
            pending.extend_from_slice(body);
            let consumed = self.process_handshake(ctx, is_orig, record_version, &pending);
            pending.drain(..consumed.min(pending.len()));
        }
        if !pending.is_empty() && !self.skipping && !self.done {
            self.dirs[d].handshake = pending;
        }
    }

    /// Parses the complete handshake messages at the start of `buf`; returns the bytes consumed.
    fn process_handshake(&mut self, ctx: &mut Ctx, is_orig: bool, record_version: u16, buf: &[u8]) -> usize {
        let mut consumed = 0;
        while !self.skipping && !self.done {
            let rest = &buf[consumed..];
            if rest.len() < 4 {
                break;
            }
            let msg_type = rest[0];
            let len = usize::from(rest[1]) << 16 | usize::from(rest[2]) << 8 | usize::from(rest[3]);
            if len > MAX_BUFFERED {
                self.violation(ctx, format!("Binpac exception: handshake message too long ({len})"));
                break;
            }
            if rest.len() < len + 4 {
                break;
            }
            consumed += len + 4;
            self.handshake_message(ctx, is_orig, msg_type, &rest[4..4 + len], record_version);
        }
        consumed
    }

    /// `check_flipped`: a client hello from the responder (or server hello from the originator) flips.
    fn check_direction(&mut self, ctx: &mut Ctx, desired_orig: bool, is_orig: bool) {
        if self.flipped {
            if desired_orig == is_orig {
                self.flipped = false;
                self.session(ctx).history.push('^');
                if !self.already_alerted_flip {
                    self.already_alerted_flip = true;
                    ctx.weird("SSL_unclear_connection_direction", None, "SSL");
                }
            }
        } else if desired_orig != is_orig {
            self.flipped = true;
            self.session(ctx).history.push('^');
        }
    }

    fn handshake_message(&mut self, ctx: &mut Ctx, is_orig: bool, msg_type: u8, body: &[u8], record_version: u16) {
        self.handshake_message_content(ctx, is_orig, msg_type, body, record_version);
        self.report_history_limit(ctx);
    }

    fn handshake_message_content(
        &mut self,
        ctx: &mut Ctx,
        is_orig: bool,
        msg_type: u8,
        body: &[u8],
        record_version: u16,
    ) {
        match msg_type {
            0 => self.check_direction(ctx, false, is_orig),
            HS_CLIENT_HELLO => {
                self.check_direction(ctx, true, is_orig);
                if !self.client_hello(ctx, is_orig, body, record_version) {
                    return;
                }
            }
            HS_SERVER_HELLO => {
                self.check_direction(ctx, false, is_orig);
                if !self.server_hello(ctx, is_orig, body) {
                    return;
                }
            }
            HS_CERTIFICATE => {
                let Some(certs) = certificate_list(body) else {
                    self.violation(ctx, "Binpac exception: malformed certificate message".to_string());
                    return;
                };
                self.certificates(ctx, is_orig, &certs);
            }
            HS_SERVER_KEY_EXCHANGE => self.server_key_exchange(ctx, body),
            HS_CERTIFICATE_STATUS => {
                if !self.certificate_status(ctx, body) {
                    return;
                }
            }
            3 | 4 | 5 | 6 | 8 | 13..=16 | 20 | 21 | 23..=25 | 254 => {}
            other => {
                let reason = format!("unknown handshake message ({other}) from {}", orig_label(is_orig));
                self.violation(ctx, reason);
            }
        }
        if self.skipping || self.done {
            return;
        }
        self.handshake_history(ctx, is_orig ^ self.flipped, msg_type);
    }

    /// `ssl_handshake_message` in main.zeek: the history letter of each handshake message.
    fn handshake_history(&mut self, ctx: &Ctx, is_client: bool, msg_type: u8) {
        let s = self.session(ctx);
        if is_client && msg_type == HS_CLIENT_KEY_EXCHANGE {
            s.client_key_exchange_seen = true;
        }
        let letter = match msg_type {
            0 => 'h',
            1 => 'c',
            2 if s.hrr_seen => {
                s.hrr_seen = false;
                'j'
            }
            2 => 's',
            3 => 'v',
            4 => 't',
            5 => 'e',
            6 => 'j',
            8 => 'o',
            11 => 'x',
            12 => 'k',
            13 => 'r',
            14 => 'n',
            15 => 'y',
            16 => 'g',
            20 => 'f',
            21 => 'w',
            22 => 'u',
            23 => 'a',
            24 => 'p',
            254 => 'm',
            _ => 'z',
        };
        s.add_history(is_client, letter);
    }

    /// Returns false when parsing stopped.
    fn client_hello(&mut self, ctx: &mut Ctx, is_orig: bool, body: &[u8], record_version: u16) -> bool {
        let tls_shaped = if self.dtls { dtls::client_hello_without_cookie(body) } else { None };
        let Ok((_, hello)) = parse_tls_handshake_client_hello(tls_shaped.as_deref().unwrap_or(body)) else {
            self.violation(ctx, "Binpac exception: malformed client hello".to_string());
            return false;
        };
        self.note(|n| n.client_hello = true);
        let version = hello.version.0;
        if version_ok(version) {
            self.confirm(ctx);
        } else {
            self.violation(ctx, format!("unsupported client SSL version 0x{version:04x}"));
        }
        let is_client = is_orig ^ self.flipped;
        for ext in extensions(hello.ext) {
            self.extension(ctx, is_client, &ext);
        }
        let s = self.session(ctx);
        s.note_client_session_id(hello.session_id.unwrap_or_default());
        // An SSLv2-framed hello has record version 0 in Zeek; ours always arrives in a TLS record here.
        let _ = record_version;
        !self.skipping
    }

    fn server_hello(&mut self, ctx: &mut Ctx, is_orig: bool, body: &[u8]) -> bool {
        let tls_shaped = if self.dtls { dtls::server_hello_as_tls12(body) } else { None };
        let Ok((_, hello)) = parse_tls_handshake_server_hello(tls_shaped.as_deref().unwrap_or(body)) else {
            // TLS 1.3 drafts and other shapes tls-parser does not take: fall back to the common prefix.
            return self.minimal_server_hello(ctx, body);
        };
        // A DTLS hello was parsed with its version rewritten; the parse guarantees these two bytes.
        let version = u16::from_be_bytes([body[0], body[1]]);
        let is_client = is_orig ^ self.flipped;
        let exts = extensions(hello.ext);
        // The supported_versions choice wins over the legacy version (`set_version` keeps the first).
        for ext in &exts {
            if let TlsExtension::SupportedVersions(v) = ext
                && !is_client
                && v.len() == 1
            {
                self.chosen_version.get_or_insert(v[0].0);
            }
        }
        self.chosen_version.get_or_insert(version);
        if !version_ok(version) {
            self.violation(ctx, format!("unsupported server SSL version 0x{version:04x}"));
        }
        for ext in &exts {
            self.extension(ctx, is_client, ext);
        }
        let cipher = u32::from(hello.cipher.0);
        self.chosen_cipher = Some(cipher);
        self.note(|n| n.server_hello = true);
        let s = self.session(ctx);
        s.server_hello(version, cipher, hello.random, hello.session_id.unwrap_or_default());
        !self.skipping
    }

    /// A server hello tls-parser rejects: version, random and (for TLS 1.3 drafts) the cipher.
    fn minimal_server_hello(&mut self, ctx: &mut Ctx, body: &[u8]) -> bool {
        if body.len() < 34 {
            self.violation(ctx, "Binpac exception: malformed server hello".to_string());
            return false;
        }
        let version = u16::from_be_bytes([body[0], body[1]]);
        self.chosen_version.get_or_insert(version);
        if !version_ok(version) {
            self.violation(ctx, format!("unsupported server SSL version 0x{version:04x}"));
            return false;
        }
        let random = &body[2..34];
        let (session_id, cipher) = if version == TLSV13 || is_tls13_draft(version) {
            (&[][..], body.get(34..36).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))))
        } else {
            let sid_len = body.get(34).map_or(0, |&len| usize::from(len));
            let sid = body.get(35..35 + sid_len).unwrap_or_default();
            let c = body.get(35 + sid_len..37 + sid_len).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])));
            (sid, c)
        };
        let Some(cipher) = cipher else {
            self.violation(ctx, "Binpac exception: malformed server hello".to_string());
            return false;
        };
        self.chosen_cipher = Some(cipher);
        self.note(|n| n.server_hello = true);
        self.session(ctx).server_hello(version, cipher, random, session_id);
        true
    }

    /// The `ssl_extension*` events of main.zeek.
    fn extension(&mut self, ctx: &mut Ctx, is_client: bool, ext: &TlsExtension) {
        match ext {
            TlsExtension::SNI(names) if is_client => self.server_names(ctx, names),
            TlsExtension::SessionTicket(val) if is_client && !val.is_empty() => {
                self.session(ctx).client_ticket_empty_session_seen = true;
            }
            TlsExtension::PreSharedKey(_) => self.session(ctx).pre_shared_key(is_client),
            TlsExtension::ALPN(protocols) if is_client && self.notes.is_some() => {
                let protocols = protocols.iter().map(|p| crate::logs::bytes_to_log_string(p)).collect();
                self.note(|n| n.client_protocols = protocols);
            }
            TlsExtension::ALPN(protocols) if !is_client => {
                if let Some(first) = protocols.first() {
                    self.session(ctx).next_protocol = Some(crate::logs::bytes_to_log_string(first));
                }
            }
            TlsExtension::SupportedVersions(v) if !is_client && v.len() == 1 => self.session(ctx).set_version(v[0].0),
            // Server hello: one entry (group, key); a HelloRetryRequest: just the group.
            TlsExtension::KeyShare(raw) | TlsExtension::KeyShareOld(raw) if !is_client => {
                self.session(ctx).server_key_share(raw)
            }
            TlsExtension::Unknown(t, val) => {
                let s = self.session(ctx);
                match t.0 {
                    EXT_SESSION_TICKET if is_client && !val.is_empty() => s.client_ticket_empty_session_seen = true,
                    EXT_PRE_SHARED_KEY => s.pre_shared_key(is_client),
                    EXT_KEY_SHARE if !is_client => s.server_key_share(val),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// `proc_server_name` and main.zeek's `ssl_extension_server_name`: host names up to the first entry of
    /// another type (binpac reads that entry to the end of the list), the first one logged.
    fn server_names(&mut self, ctx: &mut Ctx, names: &[(tls_parser::SNIType, &[u8])]) {
        let mut hosts: Vec<String> = Vec::new();
        for (name_type, name) in names {
            if name_type.0 != 0 {
                ctx.weird("ssl_ext_unknown_server_name_type", Some(name_type.0.to_string()), "SSL");
                break;
            }
            hosts.push(crate::logs::bytes_to_log_string(name));
        }
        if hosts.len() > 1 {
            // main.zeek's `Reporter::conn_weird` with `cat(names)` of the vector, and no source.
            ctx.weird("SSL_many_server_names", Some(format!("[{}]", hosts.join(", "))), "");
        }
        if let (Some(first), true) = (hosts.first(), self.notes.is_some()) {
            let first = first.clone();
            self.note(|n| n.server_name = Some(first));
        }
        let s = self.session(ctx);
        if let Some(first) = hosts.into_iter().next() {
            s.server_name = Some(first);
        }
    }

    fn server_key_exchange(&mut self, ctx: &Ctx, body: &[u8]) {
        const NAMED_CURVE: u8 = 3;
        let Some(cipher) = self.chosen_cipher else { return };
        if !names::cipher_has_ecdh_params(cipher) {
            return;
        }
        if let [NAMED_CURVE, hi, lo, ..] = body {
            let curve = names::curve_name(u16::from_be_bytes([*hi, *lo]));
            self.session(ctx).curve = Some(curve);
        }
    }

    /// `proc_certificate_status` (tls-handshake-analyzer.pac): a stapled OCSP response (status type 1) is handed to
    /// the file framework as a file of type `application/ocsp-response` that ends at once (files.log, source `SSL`
    /// or `DTLS`, `is_orig` always F as the analyzer passes it); an empty response is a weird. Returns false when
    /// parsing stopped (binpac's `CertificateStatus` needs its type and 24-bit length).
    fn certificate_status(&mut self, ctx: &mut Ctx, body: &[u8]) -> bool {
        const STATUS_TYPE_OCSP: u8 = 1;
        let [status_type, _, _, _, response @ ..] = body else {
            self.violation(ctx, "Binpac exception: truncated certificate status".to_string());
            return false;
        };
        if *status_type == STATUS_TYPE_OCSP && !response.is_empty() {
            // The handshake analyzer names its own analyzer's tag: DTLS's when DTLS feeds it.
            let source = if self.dtls { "DTLS" } else { "SSL" };
            let mut file = FileTransfer::new(ctx, source, false);
            file.set_mime_type("application/ocsp-response");
            file.data(ctx.ts, response);
            file.finish(ctx);
        } else if response.is_empty() {
            // `reporter->Weird(conn, ...)`: no source.
            ctx.weird("SSL_zero_length_stapled_OCSP_message", None, "");
        }
        true
    }

    /// `proc_certificate` and the x509 file analysis: every certificate is fingerprinted, logged to
    /// x509.log (deduplicated) and appended to the sender's chain.
    fn certificates(&mut self, ctx: &mut Ctx, is_orig: bool, certs: &[Vec<u8>]) {
        let client_cert = is_orig ^ self.flipped;
        for (i, der) in certs.iter().enumerate() {
            if der.is_empty() {
                continue;
            }
            let host_cert = i == 0;
            let info = x509::parse(der);
            let fingerprint = info.as_ref().map(|_| x509::fingerprint(der));
            if let (Some(cert), Some(fp)) = (&info, &fingerprint)
                && self.should_log_cert(fp, host_cert, client_cert, ctx.ts)
            {
                ctx.log(&X509_LOG, x509::log_values(ctx.ts, fp, cert, host_cert, client_cert));
            }
            let s = self.session(ctx);
            let (server_chain, client_chain) = s.chains.get_or_insert_with(Default::default);
            let chain = if client_cert { client_chain } else { server_chain };
            chain.push(ChainEntry { fingerprint, info });
        }
    }

    fn should_log_cert(&mut self, fp: &str, host_cert: bool, client_cert: bool, now: f64) -> bool {
        match &mut self.dedup {
            Dedup::Global => x509::should_log_globally(fp, host_cert, client_cert, now),
            Dedup::Local(known) => known.should_log(fp, host_cert, client_cert, now),
        }
    }

    // ----- logging --------------------------------------------------------------------------------------

    /// `ssl_finishing` (files.zeek) and `log_record`: writes the ssl.log record once.
    fn log_session(&mut self, ctx: &mut Ctx) {
        let Some(s) = self.session.as_mut() else { return };
        if s.logged {
            return;
        }
        s.logged = true;
        let fps = |chain: &[ChainEntry]| Value::str_vec(chain.iter().filter_map(|c| c.fingerprint.clone()));
        let (cert_chain_fps, client_cert_chain_fps) = match &s.chains {
            Some((server, client)) => (fps(server), fps(client)),
            None => (Value::Unset, Value::Unset),
        };
        let leaf = s.chains.as_ref().and_then(|(server, _)| server.first()).and_then(|c| c.info.as_ref());
        let sni_matches_cert = match (leaf, &s.server_name) {
            (Some(cert), Some(name)) => Value::Bool(x509::matches_hostname(cert, name)),
            _ => Value::Unset,
        };
        let mut values = ctx.conn_columns(s.ts);
        values.extend([
            Value::opt_str(s.version.clone()),
            Value::opt_str(s.cipher.clone()),
            Value::opt_str(s.curve.clone()),
            Value::opt_str(s.server_name.clone()),
            Value::Bool(s.resumed),
            Value::opt_str(s.last_alert.clone()),
            Value::opt_str(s.next_protocol.clone()),
            Value::Bool(s.established),
            Value::str(s.history.clone()),
            cert_chain_fps,
            client_cert_chain_fps,
            sni_matches_cert,
        ]);
        ctx.log(&SSL_LOG, values);
    }
}

impl Session {
    /// main.zeek's `ssl_extension` for pre_shared_key: offered by the client, accepted by the server.
    fn pre_shared_key(&mut self, is_client: bool) {
        if is_client {
            self.client_psk_seen = true;
        } else if self.client_psk_seen {
            self.resumed = true;
        }
    }

    /// `ssl_extension_key_share` from the server: the group it chose.
    fn server_key_share(&mut self, raw: &[u8]) {
        if let [hi, lo, ..] = raw {
            self.curve = Some(names::curve_name(u16::from_be_bytes([*hi, *lo])));
        }
    }

    /// `ssl_client_hello`: remember a real session id for resumption checks.
    fn note_client_session_id(&mut self, session_id: &[u8]) {
        let all_zero_32 = session_id.len() == 32 && session_id.iter().all(|&b| b == 0);
        if !session_id.is_empty() && !all_zero_32 {
            self.session_id = Some(session_id.to_vec());
            self.client_ticket_empty_session_seen = false;
        }
    }

    /// `ssl_server_hello`.
    fn server_hello(&mut self, version: u16, cipher: u32, random: &[u8], session_id: &[u8]) {
        if self.version_num.is_none() {
            self.set_version(version);
        }
        self.cipher = Some(names::cipher_name(cipher));
        if random == HRR_RANDOM {
            self.hrr_seen = true;
        }
        let negotiated = self.version_num.unwrap_or(version);
        // main.zeek's own test for a TLS 1.3 draft here is `version_num/0xFF != 0x7F`.
        let draft = u32::from(negotiated) / 0xFF == 0x7F;
        if self.session_id.as_deref() == Some(session_id) && !draft && negotiated != TLSV13 {
            self.resumed = true;
        }
    }
}

/// Extensions one by one up to the first one whose framing runs past the block. An extension whose content
/// tls-parser refuses (it checks some more strictly than binpac does) stays as an unknown one, so the ones
/// after it (the SNI, ALPN, key share) are still seen.
fn extensions(raw: Option<&[u8]>) -> Vec<TlsExtension<'_>> {
    let mut out = Vec::new();
    let mut rest = raw.unwrap_or_default();
    while let [t0, t1, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some(data) = tail.get(..len) else { break };
        let ext = match parse_tls_extension(&rest[..4 + len]) {
            Ok((_, ext)) => ext,
            Err(_) => TlsExtension::Unknown(TlsExtensionType(u16::from_be_bytes([*t0, *t1])), data),
        };
        out.push(ext);
        rest = &tail[len..];
    }
    out
}

/// The DER certificates of a Certificate message (TLS 1.2 layout: u24 list length, u24-prefixed certs).
fn certificate_list(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let u24 = |b: &[u8]| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
    let list_len = u24(body.get(..3)?);
    let mut list = body.get(3..3 + list_len)?;
    let mut certs = Vec::new();
    while !list.is_empty() {
        let len = u24(list.get(..3)?);
        certs.push(list.get(3..3 + len)?.to_vec());
        list = &list[3 + len..];
    }
    Some(certs)
}

/// The session id of an SSLv2 client hello body (after its 5-byte header).
fn v2_client_session_id(body: &[u8]) -> Option<Vec<u8>> {
    let cipher_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let session_len = usize::from(u16::from_be_bytes([*body.get(2)?, *body.get(3)?]));
    let start = 6 + cipher_len;
    body.get(start..start + session_len).map(<[u8]>::to_vec)
}

struct V2ServerHello<'a> {
    version: u16,
    cert: &'a [u8],
    first_cipher: Option<u32>,
}

fn v2_server_hello(body: &[u8]) -> Option<V2ServerHello<'_>> {
    let u16_at = |i: usize| Some(u16::from_be_bytes([*body.get(i)?, *body.get(i + 1)?]));
    let version = u16_at(0)?;
    let cert_len = usize::from(u16_at(2)?);
    let ciphers_len = usize::from(u16_at(4)?);
    let cert = body.get(8..8 + cert_len)?;
    let ciphers = body.get(8 + cert_len..8 + cert_len + ciphers_len)?;
    let first_cipher = ciphers.get(..3).map(|c| u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]));
    Some(V2ServerHello { version, cert, first_cipher })
}

impl Analyzer for SslAnalyzer {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.skipping || self.done || data.is_empty() {
            return;
        }
        let dir = &mut self.dirs[dir_index(is_orig)];
        let skipped = dir.skip.min(data.len());
        dir.skip -= skipped;
        let data = &data[skipped..];
        if data.is_empty() {
            return;
        }
        if dir.records.len() + data.len() > MAX_BUFFERED {
            self.violation(ctx, "Binpac exception: record buffer overflow".to_string());
            return;
        }
        // Only a record cut by a packet boundary is buffered; the buffer is freed once it is empty again, so
        // thousands of established sessions hold no record memory.
        let mut pending = std::mem::take(&mut dir.records);
        if pending.is_empty() {
            let consumed = self.process_records(ctx, is_orig, data);
            pending.extend_from_slice(&data[consumed.min(data.len())..]);
        } else {
            pending.extend_from_slice(data);
            let consumed = self.process_records(ctx, is_orig, &pending);
            pending.drain(..consumed.min(pending.len()));
        }
        if !pending.is_empty() && !self.skipping && !self.done {
            self.dirs[dir_index(is_orig)].records = pending;
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        // Zeek stops parsing both sides after a content gap (`had_gap`).
        self.skipping = true;
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        // `finalize_ssl`: a session that never established is logged when the connection goes away.
        self.log_session(ctx);
    }

    fn is_done(&self) -> bool {
        // Established: the session is logged (`establish`) and every later call returns at once.
        self.done
    }
}

/// The server's host certificate of an established TLS session (`c$ssl$cert_chain[0]` at `ssl_established`), which
/// no log carries whole (x509.log is deduplicated and has no connection).
#[derive(Debug, Clone, PartialEq)]
pub struct HostCertificate {
    /// Network time at `ssl_established`.
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    /// The certificate's fingerprint as ssl.log's `cert_chain_fps` has it.
    pub fingerprint: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
}

/// Where [`HostCertificate`]s go; unset by default (nothing is collected).
static HOST_CERT_SINK: RwLock<Option<fn(HostCertificate)>> = RwLock::new(None);

/// Registers the consumer of established sessions' host certificates (the detections' known certificates).
pub fn set_host_cert_sink(sink: fn(HostCertificate)) {
    *HOST_CERT_SINK.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sink);
}

/// Fuzzing entry point: drives the analyzer over arbitrary bytes in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut SslAnalyzer::new(Dedup::Local(KnownCerts::default())), Proto::Tcp, 443, data);
}

#[cfg(test)]
pub(crate) mod tests;
