//! QUIC's wire format as Zeek's QUIC.spicy reads it (RFC 9000 §16-17, RFC 9369 §3.2): variable-length integers,
//! long headers of the versions Zeek knows (v1, v2, drafts 22-34, mvfst), short headers, and the frames Zeek parses
//! in a decrypted Initial packet. Everything returns an error on short input; nothing indexes past a bound.

use super::QuicError;

pub const VERSION_1: u32 = 0x0000_0001;
pub const VERSION_2: u32 = 0x6b33_43cf;

/// Which numbering of long packet types (and which key-derivation labels) a version uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V1,
    V2,
}

/// The versions QUIC.spicy parses; any other long header is an "unhandled version".
pub fn family(version: u32) -> Option<Family> {
    match version {
        VERSION_1 | 0xff00_0016..=0xff00_0022 => Some(Family::V1),
        0xface_b001 | 0xface_b002 | 0xface_b00e | 0xface_b011 | 0xface_b012 | 0xface_b013 => Some(Family::V1),
        VERSION_2 => Some(Family::V2),
        _ => None,
    }
}

/// quic.log's `version`: `QUIC::version_strings`, `unknown-<hex>` for the rest.
pub fn version_name(version: u32) -> String {
    let known = match version {
        VERSION_1 => "1",
        VERSION_2 => "quicv2",
        0xff00_0016 => "draft-22",
        0xff00_0017 => "draft-23",
        0xff00_0018 => "draft-24",
        0xff00_0019 => "draft-25",
        0xff00_001a => "draft-26",
        0xff00_001b => "draft-27",
        0xff00_001c => "draft-28",
        0xff00_001d => "draft-29",
        // Zeek's table names 0xff00001f "draft-30" too.
        0xff00_001e | 0xff00_001f => "draft-30",
        0xff00_0020 => "draft-32",
        0xff00_0021 => "draft-33",
        0xff00_0022 => "draft-34",
        0xface_b001 => "mvfst (faceb001)",
        0xface_b002 => "mvfst (faceb002)",
        0xface_b00e => "mvfst (faceb00e)",
        0xface_b011 => "mvfst (faceb011)",
        0xface_b012 => "mvfst (faceb012)",
        0xface_b013 => "mvfst (faceb013)",
        other => return format!("unknown-{other:x}"),
    };
    known.to_owned()
}

/// A cursor over one datagram or one decrypted payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, QuicError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, QuicError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], QuicError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len()).ok_or(QuicError::Truncated(what))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    /// `n` bytes given as a 62-bit count from the wire.
    pub fn bytes_u64(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], QuicError> {
        self.bytes(usize::try_from(n).map_err(|_| QuicError::Truncated(what))?, what)
    }

    /// A variable-length integer (RFC 9000 §16): its value and how many bytes it took.
    pub fn varint(&mut self, what: &'static str) -> Result<(u64, usize), QuicError> {
        let first = self.u8(what)?;
        let len = 1usize << (first >> 6);
        let mut value = u64::from(first & 0x3f);
        for &b in self.bytes(len - 1, what)? {
            value = value << 8 | u64::from(b);
        }
        Ok((value, len))
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        rest
    }
}

/// What follows the connection ids of a long header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongKind {
    /// `pn_offset` is where the (protected) packet number starts; `payload_len` is the Length field (packet number
    /// and ciphertext).
    Initial {
        pn_offset: usize,
        payload_len: u64,
    },
    ZeroRtt,
    Handshake,
    Retry,
    /// A version QUIC.spicy does not parse: the rest of the datagram is skipped.
    Unhandled,
}

/// One long-header packet at the start of a datagram's remainder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongHeader<'a> {
    pub version: u32,
    pub dcid: &'a [u8],
    pub scid: &'a [u8],
    pub kind: LongKind,
    /// The bytes this packet takes (a Retry or an unhandled version takes the rest of the datagram).
    pub len: usize,
}

/// The smallest Length of an Initial: a 4-byte packet number plus the 16-byte header protection sample.
const MIN_INITIAL_LENGTH: u64 = 20;

/// Parses the long header at the start of `buf` (which has the long-form bit set).
pub fn long_header(buf: &[u8]) -> Result<LongHeader<'_>, QuicError> {
    let mut r = Reader::new(buf);
    let first = r.u8("long header")?;
    let version = r.u32("version")?;
    let dcid_len = r.u8("destination connection id length")?;
    let dcid = r.bytes(usize::from(dcid_len), "destination connection id")?;
    let scid_len = r.u8("source connection id length")?;
    let scid = r.bytes(usize::from(scid_len), "source connection id")?;
    let Some(family) = family(version) else {
        return Ok(LongHeader { version, dcid, scid, kind: LongKind::Unhandled, len: buf.len() });
    };
    let type_bits = (first >> 4) & 0x03;
    // RFC 9369 §3.2 renumbered the types to keep middleboxes from ossifying on v1's.
    let type_v1 = match family {
        Family::V1 => type_bits,
        Family::V2 => (type_bits + 3) & 0x03,
    };
    let kind = match type_v1 {
        0 => {
            let (token_len, _) = r.varint("token length")?;
            r.bytes_u64(token_len, "token")?;
            let (payload_len, _) = r.varint("length")?;
            if payload_len < MIN_INITIAL_LENGTH {
                return Err(QuicError::InitialTooShort(payload_len));
            }
            let pn_offset = r.pos();
            r.bytes_u64(payload_len, "initial payload")?;
            LongKind::Initial { pn_offset, payload_len }
        }
        1 | 2 => {
            let (payload_len, _) = r.varint("length")?;
            r.bytes_u64(payload_len, "packet payload")?;
            if type_v1 == 1 { LongKind::ZeroRtt } else { LongKind::Handshake }
        }
        _ => {
            // Token and a 16-byte integrity tag fill the datagram; Spicy's `|data| - 16` fails below 16.
            if r.rest().len() < RETRY_INTEGRITY_TAG_LEN {
                return Err(QuicError::Truncated("retry integrity tag"));
            }
            LongKind::Retry
        }
    };
    let len = match kind {
        LongKind::Retry => buf.len(),
        _ => r.pos(),
    };
    Ok(LongHeader { version, dcid, scid, kind, len })
}

const RETRY_INTEGRITY_TAG_LEN: usize = 16;

/// A frame of a decrypted Initial packet, as far as Zeek reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Padding,
    Ping,
    Ack,
    Crypto { offset: u64, data: &'a [u8] },
    ConnectionClose { error_code: u64, reason: &'a [u8] },
}

const FRAME_PADDING: u8 = 0x00;
const FRAME_PING: u8 = 0x01;
const FRAME_ACK: u8 = 0x02;
const FRAME_ACK_ECN: u8 = 0x03;
const FRAME_CRYPTO: u8 = 0x06;
const FRAME_CONNECTION_CLOSE: u8 = 0x1c;

/// The next frame of a decrypted payload. QUIC.spicy reads the type as one byte and refuses the types an Initial
/// packet may not carry (and the application-level CONNECTION_CLOSE, 0x1d).
pub fn frame<'a>(r: &mut Reader<'a>) -> Result<Frame<'a>, QuicError> {
    match r.u8("frame type")? {
        FRAME_PADDING => {
            while r.peek() == Some(0) {
                r.u8("padding")?;
            }
            Ok(Frame::Padding)
        }
        FRAME_PING => Ok(Frame::Ping),
        t @ (FRAME_ACK | FRAME_ACK_ECN) => {
            for what in ["largest acknowledged", "ack delay"] {
                r.varint(what)?;
            }
            let (ranges, _) = r.varint("ack range count")?;
            r.varint("first ack range")?;
            // Every range takes at least two bytes, so a huge count ends at the end of the payload.
            for _ in 0..ranges {
                r.varint("ack gap")?;
                r.varint("ack range length")?;
            }
            if t == FRAME_ACK_ECN {
                for what in ["ect0 count", "ect1 count", "ecn-ce count"] {
                    r.varint(what)?;
                }
            }
            Ok(Frame::Ack)
        }
        FRAME_CRYPTO => {
            let (offset, _) = r.varint("crypto offset")?;
            let (len, _) = r.varint("crypto length")?;
            let data = r.bytes_u64(len, "crypto data")?;
            Ok(Frame::Crypto { offset, data })
        }
        FRAME_CONNECTION_CLOSE => {
            let (error_code, _) = r.varint("error code")?;
            // QUIC.spicy takes a lone zero byte as "no frame type", anything else as a varint.
            match r.peek() {
                Some(0) => {
                    r.u8("frame type")?;
                }
                _ => {
                    r.varint("frame type")?;
                }
            }
            let (reason_len, _) = r.varint("reason phrase length")?;
            let reason = r.bytes_u64(reason_len, "reason phrase")?;
            Ok(Frame::ConnectionClose { error_code, reason })
        }
        other => Err(QuicError::UnhandledFrame(other)),
    }
}
