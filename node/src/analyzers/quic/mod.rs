//! QUIC over UDP as Zeek 9.1 analyses it (`src/analyzer/protocol/quic`, `base/protocols/quic`): quic.log, and the
//! ClientHello and ServerHello of the Initial packets handed to the TLS analyzer, whose ssl.log record QUIC's
//! connections get too.
//!
//! Every packet of a datagram is read. Long headers raise Zeek's packet events (history `I`, `H`, `Z`, `R`, `U`);
//! Initial packets are decrypted with keys from the client's first Destination Connection ID until each side's
//! first handshake message is complete (the first decryption confirms the protocol); their CRYPTO frames are
//! reassembled by offset and the message goes to the TLS analyzer as one record (`S`/`s` when its hello is seen).
//! Short headers count toward history `O` at 1, 2, 4, 8... packets per side; packets without the fixed bit are
//! discarded (`X` once something was decrypted). A Retry or an unhandled version logs the record and starts over; a
//! CONNECTION_CLOSE in an Initial logs it too. Anything QUIC.spicy would not parse is a violation.

mod crypto;
mod protection;
#[cfg(test)]
mod tests;
mod wire;

use self::crypto::CryptoStream;
use self::protection::{Opener, initial_secrets};
use self::wire::{Frame, LongHeader, LongKind, Reader};
use super::ssl::{HelloNotes, SslAnalyzer};
use super::{Action, Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::{Schema, Value, conn_fields, f};

pub static QUIC_LOG: Schema = Schema {
    path: "quic",
    fields: conn_fields![
        f("version", "string"),
        f("client_initial_dcid", "string"),
        f("client_scid", "string"),
        f("server_scid", "string"),
        f("server_name", "string"),
        f("client_protocol", "string"),
        f("history", "string"),
    ],
};

/// `quic_ports` of main.zeek: HTTP/3, DNS over QUIC and its early port.
const QUIC_PORTS: &[u16] = &[443, 784, 853];

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "quic",
    tcp_ports: &[],
    udp_ports: QUIC_PORTS,
    detect: Some(Signature::either_side(detect)),
    new: |_| Box::new(Quic::new()),
    schemas: &[&QUIC_LOG],
};

/// Zeek's `dpd_quic_initial` and `dpd_quic_v2_initial`: a long-header Initial of version 1 or 2.
fn detect(proto: Proto, _is_orig: bool, payload: &[u8]) -> bool {
    match payload {
        [0xC0..=0xCF, 0x00, 0x00, 0x00, 0x01, ..] | [0xD0..=0xDF, 0x6b, 0x33, 0x43, 0xcf, ..] => proto == Proto::Udp,
        _ => false,
    }
}

/// Why a datagram is not (or no longer) QUIC as Zeek parses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuicError {
    #[error("QUIC packet too short for its {0}")]
    Truncated(&'static str),
    #[error("INITIAL packet length {0} is below 20")]
    InitialTooShort(u64),
    #[error("unhandled QUIC version 0x{0:x}")]
    UnhandledVersion(u32),
    #[error("decryption failed")]
    DecryptionFailed,
    #[error("payload_length too large {0}")]
    PayloadTooLarge(u64),
    #[error("unhandled frame type {0}")]
    UnhandledFrame(u8),
    #[error("too much crypto data received {have} > {expected}")]
    TooMuchCrypto { have: u64, expected: u64 },
}

const LONG_FORM: u8 = 0x80;
const FIXED_BIT: u8 = 0x40;
/// `QUIC::max_history_length`.
const MAX_HISTORY: usize = 100;
/// `QUIC::max_discarded_packet_events`.
const MAX_DISCARDED_EVENTS: u64 = 100;

/// The script's `QUIC::Info` (`c$quic`): one record per QUIC connection seen on the UDP flow.
struct Record {
    ts: f64,
    version: String,
    client_initial_dcid: Option<String>,
    client_scid: Option<String>,
    server_scid: Option<String>,
    server_name: Option<String>,
    client_protocol: Option<String>,
    history: String,
}

/// Short-header packets of one side: history gets a letter at 1, 2, 4, 8... of them.
struct ShortCount {
    total: u64,
    next_threshold: u64,
}

impl Default for ShortCount {
    fn default() -> Self {
        ShortCount { total: 0, next_threshold: 1 }
    }
}

/// Initial keys of one side, kept while the connection id they came from stays the same.
struct CachedOpener {
    version: u32,
    dcid: Vec<u8>,
    opener: Opener,
}

pub struct Quic {
    record: Option<Record>,
    /// The client's first Destination Connection ID: both sides' Initial keys come from it.
    initial_dcid: Option<Vec<u8>>,
    /// The length of the connection ids short headers carry (QUIC.spicy's `client_cid_len`).
    client_cid_len: usize,
    /// The CRYPTO streams, originator first.
    streams: [CryptoStream; 2],
    openers: [Option<CachedOpener>; 2],
    ssl: Box<SslAnalyzer>,
    total_decrypted: u64,
    total_discarded: u64,
    short_packets: [ShortCount; 2],
    confirmed: bool,
    /// A violation stopped the analysis (Zeek disables the analyzer).
    failed: bool,
}

fn side(is_orig: bool) -> usize {
    usize::from(!is_orig)
}

impl Quic {
    fn new() -> Self {
        Quic {
            record: None,
            initial_dcid: None,
            client_cid_len: 0,
            streams: Default::default(),
            openers: Default::default(),
            ssl: Box::new(SslAnalyzer::for_quic()),
            total_decrypted: 0,
            total_discarded: 0,
            short_packets: Default::default(),
            confirmed: false,
            failed: false,
        }
    }

    /// One packet at the start of `buf`; returns the bytes it took (at least one).
    fn packet(&mut self, ctx: &mut Ctx, is_orig: bool, buf: &[u8]) -> Result<usize, QuicError> {
        let first = buf.first().copied().unwrap_or_default();
        if first & FIXED_BIT == 0 {
            self.discarded(ctx, is_orig);
            return Ok(buf.len());
        }
        if first & LONG_FORM == 0 {
            self.short_packet(ctx, is_orig, buf)?;
            return Ok(buf.len());
        }
        let header = wire::long_header(buf)?;
        self.packet_event(ctx, is_orig, &header);
        match header.kind {
            LongKind::Unhandled => return Err(QuicError::UnhandledVersion(header.version)),
            LongKind::Retry => self.reset_crypto(),
            LongKind::Initial { pn_offset, payload_len } if self.can_decrypt(is_orig) => {
                self.initial(ctx, is_orig, &header, &buf[..header.len], pn_offset, payload_len)?;
            }
            _ => {}
        }
        Ok(header.len.max(1))
    }

    /// main.zeek's handlers of the long-header packet events.
    fn packet_event(&mut self, ctx: &mut Ctx, is_orig: bool, header: &LongHeader) {
        let letter = match header.kind {
            LongKind::Initial { .. } => 'I',
            LongKind::ZeroRtt => 'Z',
            LongKind::Handshake => 'H',
            LongKind::Retry => 'R',
            LongKind::Unhandled => 'U',
        };
        let ends_record = matches!(header.kind, LongKind::Retry | LongKind::Unhandled);
        if !ends_record || self.record.is_none() {
            self.set_session(ctx, is_orig, header);
        }
        self.add_history(ctx, is_orig, letter);
        if ends_record {
            self.log_record(ctx);
        }
    }

    /// `set_session`: the record starts with the first packet event; the ids are those of the latest packets.
    fn set_session(&mut self, ctx: &Ctx, is_orig: bool, header: &LongHeader) {
        let r = self.record.get_or_insert_with(|| Record {
            ts: ctx.ts,
            version: wire::version_name(header.version),
            client_initial_dcid: None,
            client_scid: None,
            server_scid: None,
            server_name: None,
            client_protocol: None,
            history: String::new(),
        });
        if is_orig && !header.dcid.is_empty() && r.client_initial_dcid.is_none() {
            r.client_initial_dcid = Some(hex::encode(header.dcid));
        }
        let scid = Some(hex::encode(header.scid));
        if is_orig {
            r.client_scid = scid;
        } else {
            r.server_scid = scid;
        }
    }

    fn add_history(&mut self, ctx: &mut Ctx, is_orig: bool, letter: char) {
        let Some(r) = self.record.as_mut() else { return };
        if r.history.len() >= MAX_HISTORY {
            return;
        }
        r.history.push(if is_orig { letter.to_ascii_uppercase() } else { letter.to_ascii_lowercase() });
        if r.history.len() == MAX_HISTORY {
            ctx.weird("QUIC_max_history_length_reached", None, "");
        }
    }

    /// `log_record` followed by `delete c$quic`: the next packet event starts a new record.
    fn log_record(&mut self, ctx: &mut Ctx) {
        let Some(r) = self.record.take() else { return };
        let mut values = ctx.conn_columns(r.ts);
        values.extend([
            Value::str(r.version),
            Value::opt_str(r.client_initial_dcid),
            Value::opt_str(r.client_scid),
            Value::opt_str(r.server_scid),
            Value::opt_str(r.server_name),
            Value::opt_str(r.client_protocol),
            Value::str(r.history),
        ]);
        ctx.log(&QUIC_LOG, values);
    }

    /// A Retry: Zeek forgets the keys and the TLS state, and takes the next client Initial's connection id.
    fn reset_crypto(&mut self) {
        self.ssl.restart();
        self.streams = Default::default();
        self.openers = Default::default();
        self.initial_dcid = None;
    }

    /// `can_decrypt`: the server's Initials need the client's connection id; a side whose hello is complete is done.
    fn can_decrypt(&self, is_orig: bool) -> bool {
        !self.streams[side(is_orig)].finished() && (is_orig || self.initial_dcid.is_some())
    }

    /// Decrypts an Initial packet and reads its frames.
    fn initial(
        &mut self,
        ctx: &mut Ctx,
        is_orig: bool,
        header: &LongHeader,
        packet: &[u8],
        pn_offset: usize,
        payload_len: u64,
    ) -> Result<(), QuicError> {
        if is_orig {
            self.client_cid_len = header.scid.len();
            self.initial_dcid.get_or_insert_with(|| header.dcid.to_vec());
        } else {
            self.client_cid_len = header.dcid.len();
        }
        let plain = self.opener(header.version, is_orig)?.open(packet, pn_offset, payload_len)?;
        if plain.is_empty() {
            return Err(QuicError::DecryptionFailed);
        }
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("quic");
        }
        self.total_decrypted += 1;
        let result = self.frames(ctx, is_orig, &plain);
        if self.streams[side(is_orig)].finished() {
            // This side is never decrypted again (until a Retry): its keys need not stay for the connection's life.
            self.openers[side(is_orig)] = None;
        }
        result
    }

    /// The side's Initial keys for the connection's initial Destination Connection ID.
    fn opener(&mut self, version: u32, is_orig: bool) -> Result<&Opener, QuicError> {
        let dcid = self.initial_dcid.as_deref().unwrap_or_default();
        let slot = &mut self.openers[side(is_orig)];
        if !slot.as_ref().is_some_and(|c| c.version == version && c.dcid == dcid) {
            let opener = Opener::new(&initial_secrets(version, dcid, is_orig)).ok_or(QuicError::DecryptionFailed)?;
            *slot = Some(CachedOpener { version, dcid: dcid.to_vec(), opener });
        }
        slot.as_ref().map(|c| &c.opener).ok_or(QuicError::DecryptionFailed)
    }

    fn frames(&mut self, ctx: &mut Ctx, is_orig: bool, plain: &[u8]) -> Result<(), QuicError> {
        let mut r = Reader::new(plain);
        while !r.is_empty() {
            match wire::frame(&mut r)? {
                Frame::Crypto { offset, data } => {
                    let (message, result) = self.streams[side(is_orig)].write(offset, data);
                    if let Some(message) = message {
                        self.handshake_message(ctx, is_orig, &message);
                    }
                    result?;
                }
                Frame::ConnectionClose { .. } => self.connection_close(ctx, is_orig),
                Frame::Padding | Frame::Ping | Frame::Ack => {}
            }
        }
        Ok(())
    }

    /// `connection_close_frame`: the record is logged, and a later packet starts another.
    fn connection_close(&mut self, ctx: &mut Ctx, is_orig: bool) {
        if self.record.is_some() {
            self.add_history(ctx, is_orig, 'C');
            self.log_record(ctx);
        }
    }

    /// Hands a side's first handshake message to the TLS analyzer as one TLS 1.2-framed handshake record, as
    /// QUIC.spicy does, and takes what main.zeek's SSL event handlers take for quic.log.
    fn handshake_message(&mut self, ctx: &mut Ctx, is_orig: bool, message: &[u8]) {
        let mut record = Vec::with_capacity(message.len() + 5);
        record.extend_from_slice(&[0x16, 0x03, 0x03]);
        record.extend_from_slice(&u16::try_from(message.len()).unwrap_or(u16::MAX).to_be_bytes());
        record.extend_from_slice(message);
        let mut actions = Vec::new();
        self.ssl.deliver(&mut ctx.with_actions(&mut actions), is_orig, &record);
        self.apply_tls_actions(ctx, actions);
        let notes = self.ssl.take_hello_notes();
        self.hello_notes(ctx, notes);
    }

    /// What the embedded TLS analyzer asked for: its confirmation is the connection's (`ssl` after `quic`); its
    /// violation removes it as Zeek removes a failed child analyzer (service and analyzer.log), and QUIC goes on
    /// (the TLS analyzer stops on its own once it failed).
    fn apply_tls_actions(&mut self, ctx: &mut Ctx, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Confirm(service) => ctx.confirm(service),
                Action::Violation(reason, _) => ctx.embedded_violation("ssl", reason),
                _ => {}
            }
        }
    }

    /// main.zeek's `ssl_extension_server_name`, `ssl_extension_application_layer_protocol_negotiation`,
    /// `ssl_client_hello` and `ssl_server_hello` handlers.
    fn hello_notes(&mut self, ctx: &mut Ctx, notes: HelloNotes) {
        let Some(r) = self.record.as_mut() else { return };
        if let Some(name) = notes.server_name {
            r.server_name = Some(name);
        }
        if let Some(first) = notes.client_protocols.first() {
            r.client_protocol = Some(first.clone());
            if notes.client_protocols.len() > 1 {
                let all = format!("[{}]", notes.client_protocols.join(", "));
                ctx.weird("QUIC_many_protocols", Some(all), "");
            }
        }
        if notes.client_hello {
            // The script adds the client's letter whichever side sent the hello.
            self.add_history(ctx, true, 'S');
        }
        if notes.server_hello {
            self.add_history(ctx, false, 'S');
        }
    }

    /// A packet without the fixed bit (RFC 9287 greasing, or not QUIC): the rest of the datagram is skipped.
    fn discarded(&mut self, ctx: &mut Ctx, is_orig: bool) {
        self.total_discarded += 1;
        if self.total_decrypted == 0 || self.total_discarded > MAX_DISCARDED_EVENTS {
            return;
        }
        if self.record.is_some() {
            self.add_history(ctx, is_orig, 'X');
        } else {
            ctx.weird("QUIC_spurious_discarded_packet", None, "");
        }
    }

    fn short_packet(&mut self, ctx: &mut Ctx, is_orig: bool, buf: &[u8]) -> Result<(), QuicError> {
        if buf.len() < 1 + self.client_cid_len {
            return Err(QuicError::Truncated("destination connection id"));
        }
        let count = &mut self.short_packets[side(is_orig)];
        count.total += 1;
        if count.total != count.next_threshold {
            return Ok(());
        }
        count.next_threshold = count.next_threshold.saturating_mul(2);
        let threshold = count.total;
        if self.record.is_some() {
            self.add_history(ctx, is_orig, 'O');
        } else {
            // Short packets without a handshake seen (a capture that starts mid-connection).
            ctx.weird("QUIC_spurious_short_packet_threshold_crossed", Some(threshold.to_string()), "");
        }
        Ok(())
    }
}

impl Analyzer for Quic {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() && !self.failed {
            match self.packet(ctx, is_orig, rest) {
                Ok(used) => rest = rest.get(used..).unwrap_or_default(),
                Err(e) => {
                    self.failed = true;
                    ctx.violation(e.to_string());
                }
            }
        }
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        // `finalize_quic` and the TLS analyzer's own end.
        self.log_record(ctx);
        let mut actions = Vec::new();
        self.ssl.finish(&mut ctx.with_actions(&mut actions));
        self.apply_tls_actions(ctx, actions);
    }
}

/// Fuzzing entry point: datagrams in both directions; with the first byte odd, the deliveries are taken as
/// decrypted Initial payloads instead, so that frames, CRYPTO reassembly and the TLS hand-over are reached too.
pub fn fuzz(data: &[u8]) {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => {
            super::fuzzing::drive(&mut DecryptedPayloads(Quic::new()), Proto::Udp, 443, rest);
        }
        _ => {
            super::fuzzing::drive(&mut Quic::new(), Proto::Udp, 443, data);
        }
    }
}

/// Feeds deliveries to the frame parser as if they were decrypted Initial payloads (fuzzing only).
struct DecryptedPayloads(Quic);

impl Analyzer for DecryptedPayloads {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        let quic = &mut self.0;
        if quic.failed {
            return;
        }
        let header = LongHeader { version: wire::VERSION_1, dcid: &[1], scid: &[], kind: LongKind::Handshake, len: 0 };
        quic.set_session(ctx, is_orig, &header);
        if let Err(e) = quic.frames(ctx, is_orig, data) {
            quic.failed = true;
            ctx.violation(e.to_string());
        }
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.0.finish(ctx);
    }
}
