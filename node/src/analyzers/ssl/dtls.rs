//! DTLS over UDP as Zeek 9.1 analyses it (`src/analyzer/protocol/ssl/DTLS.cc`, `dtls-protocol.pac`,
//! `dtls-analyzer.pac`): the same ssl.log and x509.log as TLS, with the connection's service `dtls`.
//!
//! Each datagram holds DTLS records. Only the record layer is DTLS's own: a record of epoch 0 is plaintext
//! (handshake, change cipher spec, alert, heartbeat), a later epoch is ciphertext, and once DTLS 1.3 is negotiated a
//! record whose first bits are `001` has the unified header (ciphertext too). A plaintext record carries one
//! handshake fragment; fragments are put together by offset as Zeek does (per direction, one message at a time,
//! tracked by record sequence number, at most 31 records) and the whole message goes to the TLS analyzer's handshake
//! layer, which keeps the session and writes the logs. Records of a version other than DTLS 1.0/1.2 are counted, not
//! parsed: before the protocol is confirmed they are silent, after it the first one is a violation, and past
//! `SSL::dtls_max_version_errors` of them the analyzer stops. STUN packets multiplexed on the flow are skipped.

use tls_parser::parse_dtls_record_header;

use super::names::TLSV12;
use super::{CONTENT_HANDSHAKE, Dedup, SSL_LOG, SslAnalyzer, dir_index};
use crate::analyzers::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};

use super::x509::X509_LOG;

const DTLSV10: u16 = 0xFEFF;
const DTLSV12: u16 = 0xFEFD;
const DTLSV13: u16 = 0xFEFC;

/// `dtls_ports` of `base/protocols/ssl/main.zeek`.
const DTLS_PORTS: &[u16] = &[443];

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "dtls",
    tcp_ports: &[],
    udp_ports: DTLS_PORTS,
    detect: Some(Signature::either_side(detect)),
    new: |_| Box::new(Dtls::new(Dedup::Global)),
    schemas: &[&SSL_LOG, &X509_LOG],
};

/// Zeek's `dpd_dtls_client`: a DTLS 1.0/1.2 record of epoch 0 and sequence number below 256 holding a client hello
/// of version DTLS 1.0/1.2.
fn detect(proto: Proto, _is_orig: bool, p: &[u8]) -> bool {
    let is_dtls_version = |hi: u8, lo: u8| hi == 0xFE && matches!(lo, 0xFF | 0xFD);
    proto == Proto::Udp
        && p.len() >= 27
        && p[0] == CONTENT_HANDSHAKE
        && is_dtls_version(p[1], p[2])
        && p[3..10].iter().all(|&b| b == 0)
        && p[13] == 1
        && is_dtls_version(p[25], p[26])
}

/// `SSL::dtls_max_version_errors`.
const MAX_VERSION_ERRORS: u32 = 10;
/// `SSL::dtls_max_reported_version_errors`.
const MAX_REPORTED_VERSION_ERRORS: u32 = 1;
/// `MAX_DTLS_HANDSHAKE_RECORD`: the largest handshake message put together from fragments.
const MAX_HANDSHAKE_MESSAGE: u32 = 100_000;
/// A message may span this many records past its first one.
const MAX_FRAGMENT_SPAN: u64 = 30;
/// The record sequence numbers one message's fragments may span: the width of `message_sequence_seen`'s bit set.
const REASSEMBLY_WINDOW: u64 = 32;

const HANDSHAKE_HEADER_LEN: usize = 12;

/// One handshake fragment of a plaintext record (RFC 6347 4.2.2), its data being the rest of the record.
struct Fragment<'a> {
    msg_type: u8,
    length: u32,
    message_seq: u16,
    offset: u32,
    fragment_length: u32,
    data: &'a [u8],
}

fn u24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

impl<'a> Fragment<'a> {
    fn parse(body: &'a [u8]) -> Option<Self> {
        let head = body.get(..HANDSHAKE_HEADER_LEN)?;
        Some(Fragment {
            msg_type: head[0],
            length: u24(&head[1..4]),
            message_seq: u16::from_be_bytes([head[4], head[5]]),
            offset: u24(&head[6..9]),
            fragment_length: u24(&head[9..12]),
            data: &body[HANDSHAKE_HEADER_LEN..],
        })
    }
}

/// The message one direction is putting together (`message_info` of `dtls-analyzer.pac`).
#[derive(Default)]
struct Reassembly {
    message_seq: u16,
    length: u32,
    /// The smallest record sequence number that carried a fragment of it, and whether that was offset 0.
    first_seq: u64,
    first_seq_seen: bool,
    /// The record sequence number of the fragment that reached the message's end (0: not yet).
    last_seq: u64,
    /// Which records (by sequence number past `first_seq`) were copied in.
    seen: u32,
    buffer: Vec<u8>,
}

/// Why a fragment cannot be taken (the reasons Zeek's violations give).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error("DTLS record length {0} larger than allowed maximum.")]
    TooLong(u32),
    #[error("Saw second and different first message fragment for handshake.")]
    SecondFirstFragment,
    #[error("DTLS handshake record length does not match packet length")]
    LengthMismatch,
    #[error("DTLS handshake fragment trying to write past end of buffer")]
    PastEnd,
    #[error("DTLS Message fragmented over more than 30 pieces. Cannot reassemble.")]
    TooManyPieces,
    #[error("DTLS handshake fragment sequence number outside reassembly window.")]
    OutsideWindow,
}

/// `1 << n` for the 32-bit `seen` set, empty where the shift leaves it.
fn bit(n: u64) -> u32 {
    u32::try_from(n).ok().and_then(|n| 1u32.checked_shl(n)).unwrap_or(0)
}

impl Reassembly {
    /// Adds the fragment the record numbered `seq` carried; returns the message once every piece is in.
    fn add(&mut self, seq: u64, frag: &Fragment) -> Result<Option<Vec<u8>>, FragmentError> {
        if frag.length > MAX_HANDSHAKE_MESSAGE {
            return Err(FragmentError::TooLong(frag.length));
        }
        if self.message_seq != frag.message_seq || self.length != frag.length || self.buffer.is_empty() {
            // Another message: what was gathered of the last one is dropped.
            *self = Reassembly {
                message_seq: frag.message_seq,
                length: frag.length,
                first_seq: seq,
                buffer: vec![0; frag.length as usize],
                ..Reassembly::default()
            };
        }
        if self.first_seq > seq {
            if self.first_seq_seen {
                return Err(FragmentError::SecondFirstFragment);
            }
            if self.first_seq - seq >= REASSEMBLY_WINDOW {
                return Err(FragmentError::OutsideWindow);
            }
            self.seen = u64::from(self.seen).checked_shl((self.first_seq - seq).min(64) as u32).unwrap_or(0) as u32;
            self.first_seq = seq;
        }
        // Zeek 9.1 refuses a fragment whose record lies beyond the bit set of seen records (the
        // `scripts.base.protocols.ssl.dtls-sequence-number-jumps` baseline: records 0, 128 and 256 fail at 128).
        if seq - self.first_seq >= REASSEMBLY_WINDOW {
            return Err(FragmentError::OutsideWindow);
        }
        if frag.offset == 0 {
            self.first_seq_seen = true;
        }
        let this = bit(seq - self.first_seq);
        if self.seen & this != 0 {
            return Ok(None);
        }
        if frag.data.len() != frag.fragment_length as usize {
            return Err(FragmentError::LengthMismatch);
        }
        let end = u64::from(frag.offset) + u64::from(frag.fragment_length);
        if end > u64::from(frag.length) {
            return Err(FragmentError::PastEnd);
        }
        self.seen |= this;
        self.buffer[frag.offset as usize..end as usize].copy_from_slice(frag.data);
        if end == u64::from(frag.length) {
            self.last_seq = seq;
        }
        if self.last_seq == 0 || !self.first_seq_seen {
            return Ok(None);
        }
        let span = self.last_seq.saturating_sub(self.first_seq);
        if span > MAX_FRAGMENT_SPAN {
            return Err(FragmentError::TooManyPieces);
        }
        let all = bit(span + 1).wrapping_sub(1);
        Ok((!self.seen & all == 0).then(|| self.buffer.clone()))
    }
}

/// A DTLS client hello with its cookie taken out, so that it has a TLS client hello's layout (Zeek's client hello
/// reads the cookie for DTLS versions). `None` when the hello is not of a DTLS version or is cut short.
pub(super) fn client_hello_without_cookie(body: &[u8]) -> Option<Vec<u8>> {
    let version = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    if !matches!(version, DTLSV10 | DTLSV12) {
        return None;
    }
    let session_end = 35 + usize::from(*body.get(34)?);
    let cookie_end = session_end + 1 + usize::from(*body.get(session_end)?);
    let rest = body.get(cookie_end..)?;
    let mut out = Vec::with_capacity(session_end + rest.len());
    out.extend_from_slice(&body[..session_end]);
    out.extend_from_slice(rest);
    Some(out)
}

/// A DTLS server hello with a TLS 1.2 version, which tls-parser takes (the layout is the same); the caller keeps the
/// real version.
pub(super) fn server_hello_as_tls12(body: &[u8]) -> Option<Vec<u8>> {
    let version = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    if !matches!(version, DTLSV10 | DTLSV12) {
        return None;
    }
    let mut out = body.to_vec();
    out[..2].copy_from_slice(&TLSV12.to_be_bytes());
    Some(out)
}

/// Zeek's DTLS analyzer: the DTLS record layer in front of the TLS analyzer.
pub struct Dtls {
    tls: SslAnalyzer,
    reassembly: [Reassembly; 2],
    invalid_versions: u32,
    reported_version_errors: u32,
    /// Too many records of other versions: Zeek's `SetSkip`.
    skipping: bool,
}

impl Dtls {
    pub(super) fn new(dedup: Dedup) -> Self {
        Dtls {
            tls: SslAnalyzer { dtls: true, ..SslAnalyzer::new(dedup) },
            reassembly: Default::default(),
            invalid_versions: 0,
            reported_version_errors: 0,
            skipping: false,
        }
    }

    fn stopped(&self) -> bool {
        self.skipping || self.tls.skipping || self.tls.done
    }

    /// `dtls_version_ok`, with its counting of records that are not DTLS 1.0/1.2.
    fn version_ok(&mut self, ctx: &mut Ctx, version: u16) -> bool {
        if matches!(version, DTLSV10 | DTLSV12) {
            if self.tls.confirmed {
                self.invalid_versions = 0;
            }
            return true;
        }
        self.invalid_versions += 1;
        if self.tls.confirmed {
            self.reported_version_errors += 1;
            if self.reported_version_errors <= MAX_REPORTED_VERSION_ERRORS {
                self.tls
                    .violation(ctx, format!("Invalid version in DTLS connection. Packet reported version: {version}"));
            }
        }
        if self.invalid_versions > MAX_VERSION_ERRORS {
            self.skipping = true;
        }
        false
    }

    /// The records of one datagram.
    fn records(&mut self, ctx: &mut Ctx, is_orig: bool, mut rest: &[u8]) {
        while !rest.is_empty() && !self.stopped() {
            let is_unified = self.tls.chosen_version == Some(DTLSV13) && rest[0] & 0xE0 == 0x20;
            if is_unified {
                let Some(len) = unified_record_len(rest) else { break };
                self.tls.dtls_ciphertext(ctx, is_orig, true);
                rest = &rest[len.min(rest.len())..];
                continue;
            }
            let Ok((after_header, header)) = parse_dtls_record_header(rest) else { break };
            let Some(body) = after_header.get(..usize::from(header.length)) else { break };
            if !self.version_ok(ctx, header.version.0) {
                // binpac swallows the rest of the datagram.
                break;
            }
            rest = &after_header[body.len()..];
            if header.epoch != 0 {
                self.tls.dtls_ciphertext(ctx, is_orig, false);
            } else if header.content_type.0 == CONTENT_HANDSHAKE {
                self.handshake_fragment(ctx, is_orig, header.version.0, header.sequence_number, body);
            } else {
                self.tls.tls_record(ctx, is_orig, header.version.0, header.content_type.0, body);
            }
        }
    }

    /// `proc_handshake`: a whole message goes on at once, a fragment to the direction's reassembly.
    fn handshake_fragment(&mut self, ctx: &mut Ctx, is_orig: bool, version: u16, seq: u64, body: &[u8]) {
        self.tls.session(ctx);
        let Some(frag) = Fragment::parse(body) else {
            self.tls.violation(ctx, "Binpac exception: truncated DTLS handshake header".to_string());
            return;
        };
        if frag.offset == 0 && frag.length == frag.fragment_length {
            // The handshake layer reads `length` bytes; a shorter record leaves the message unfinished.
            if let Some(message) = frag.data.get(..frag.length as usize) {
                self.tls.handshake_message(ctx, is_orig, frag.msg_type, message, version);
            }
            return;
        }
        match self.reassembly[dir_index(is_orig)].add(seq, &frag) {
            Ok(Some(message)) => self.tls.handshake_message(ctx, is_orig, frag.msg_type, &message, version),
            Ok(None) => {}
            Err(e) => self.tls.violation(ctx, e.to_string()),
        }
    }
}

/// The length of a DTLS 1.3 unified-header record (RFC 9147 4): with a connection id or without a length the record
/// runs to the datagram's end. `None` when the header is cut short.
fn unified_record_len(rest: &[u8]) -> Option<usize> {
    let first = rest[0];
    let with_cid = first & 0x10 != 0;
    let seq_len = if first & 0x08 != 0 { 2 } else { 1 };
    let length_present = first & 0x04 != 0;
    if with_cid || !length_present {
        return Some(rest.len());
    }
    let at = 1 + seq_len;
    let len = u16::from_be_bytes([*rest.get(at)?, *rest.get(at + 1)?]);
    Some(at + 2 + usize::from(len))
}

impl SslAnalyzer {
    /// `proc_ciphertext_record` for DTLS: a record of a later epoch. A DTLS 1.3 unified-header record also switches
    /// its side to encrypted, as TLS 1.3 application data does (DTLS 1.3 has no change cipher spec).
    fn dtls_ciphertext(&mut self, ctx: &mut Ctx, is_orig: bool, starts_encryption: bool) {
        if starts_encryption {
            self.dirs[dir_index(is_orig)].encrypted = true;
        }
        self.ciphertext_record(ctx);
    }
}

/// A STUN message multiplexed on the flow (WebRTC): magic cookie at offset 4.
fn is_stun(data: &[u8]) -> bool {
    data.len() > 20 && data[4..8] == [0x21, 0x12, 0xA4, 0x42]
}

impl Analyzer for Dtls {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.stopped() || is_stun(data) {
            return;
        }
        self.records(ctx, is_orig, data);
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.tls.finish(ctx);
    }

    fn is_done(&self) -> bool {
        self.tls.is_done()
    }
}

/// Fuzzing entry point: drives the DTLS analyzer over arbitrary datagrams in both directions.
pub fn fuzz(data: &[u8]) {
    let mut dtls = Dtls::new(Dedup::Local(super::x509::KnownCerts::default()));
    crate::analyzers::fuzzing::drive(&mut dtls, Proto::Udp, 443, data);
}
