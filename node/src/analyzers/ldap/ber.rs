//! The BER subset Zeek's LDAP grammar reads (src/analyzer/protocol/ldap/asn1.spicy), with its quirks kept: a tag is
//! one byte (the low five bits are the type, so the high-tag-number form is never read), a long-form length takes
//! one to eight bytes (none, the indefinite form, and more than eight are errors: Spicy's integer conversion), an
//! INTEGER is one to eight bytes read as a signed big-endian number, an OCTET STRING becomes ASCII with `?` for
//! every byte outside 0x20-0x7e, and a SEQUENCE read without recursion consumes only its header (Spicy's
//! `ASN1Body(head, False)` parses nothing for it). Class Application, Context and Private values keep their raw
//! bytes (`application_data`).
//!
//! A general BER crate (der-parser, already in the tree through x509-parser) would accept or refuse other inputs
//! (multi-byte tags, indefinite lengths, constructed strings) and so move the violations away from Zeek's.

use super::LdapError;

/// The nesting at which Zeek's ASN.1 reader gives up ("ASN.1 exceeded max recursion depth").
const MAX_DEPTH: usize = 100;

pub const CLASS_UNIVERSAL: u8 = 0;
pub const CLASS_APPLICATION: u8 = 1;
pub const CLASS_CONTEXT: u8 = 2;

pub const BOOLEAN: u8 = 1;
pub const INTEGER: u8 = 2;
pub const BIT_STRING: u8 = 3;
pub const OCTET_STRING: u8 = 4;
pub const NULL: u8 = 5;
pub const OBJECT_IDENTIFIER: u8 = 6;
pub const ENUMERATED: u8 = 10;
pub const SEQUENCE: u8 = 16;
pub const SET: u8 = 17;

/// A tag and its length (`ASN1Header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub class: u8,
    pub constructed: bool,
    /// The tag's low five bits (`raw_type`).
    pub tag: u8,
    pub len: u64,
}

impl Header {
    pub fn is(&self, class: u8, tag: u8) -> bool {
        self.class == class && self.tag == tag
    }
}

/// A parsed `ASN1Message`: universal types decoded (`body`), the other classes' raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Element<'a> {
    pub head: Header,
    pub value: Body<'a>,
}

/// `ASN1Body`'s alternatives, or `application_data` for the non-universal classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    Bool(bool),
    /// INTEGER and ENUMERATED (`num_value`).
    Num(i64),
    /// OCTET STRING, OBJECT IDENTIFIER and the character strings (`str_value`), decoded as Zeek decodes them.
    Str(String),
    /// A SEQUENCE or SET read recursively (`seq`).
    Seq(Vec<Element<'a>>),
    /// What nothing reads: NULL, BIT STRING, unhandled types, a SEQUENCE read without recursion.
    Other,
    /// `application_data`: the bytes of an Application, Context or Private class value.
    Data(&'a [u8]),
}

impl<'a> Element<'a> {
    /// `body.num_value`: an error when this is not an INTEGER or ENUMERATED (an unset field).
    pub fn num(&self) -> Result<i64, LdapError> {
        match self.value {
            Body::Num(n) => Ok(n),
            _ => Err(LdapError::Invalid("expected an INTEGER")),
        }
    }

    /// `body.str_value`: an error when this is not a string.
    pub fn str_value(&self) -> Result<&str, LdapError> {
        match &self.value {
            Body::Str(s) => Ok(s),
            _ => Err(LdapError::Invalid("expected a string")),
        }
    }

    /// `application_id` and `application_data`, for the non-universal classes.
    pub fn application(&self) -> Option<(u8, &'a [u8])> {
        match self.value {
            Body::Data(d) => Some((self.head.tag, d)),
            _ => None,
        }
    }
}

/// A cursor over a bounded input (a Spicy `&size` or `&parse-from` range): reading past its end is
/// [`LdapError::Short`].
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn take(&mut self, n: u64) -> Result<&'a [u8], LdapError> {
        let rest = self.rest();
        let n = usize::try_from(n).ok().filter(|&n| n <= rest.len()).ok_or(LdapError::Short)?;
        self.pos += n;
        Ok(&rest[..n])
    }

    /// Everything left (`&eod`).
    pub fn take_rest(&mut self) -> &'a [u8] {
        let rest = self.rest();
        self.pos = self.data.len();
        rest
    }

    pub fn u8(&mut self) -> Result<u8, LdapError> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian unsigned number of `N` bytes.
    pub fn be<const N: usize>(&mut self) -> Result<u64, LdapError> {
        Ok(self.take(N as u64)?.iter().fold(0, |n, &b| n << 8 | u64::from(b)))
    }

    /// A literal (`skip b"..."`).
    pub fn literal(&mut self, expected: &'static [u8]) -> Result<(), LdapError> {
        let got = self.take(expected.len() as u64)?;
        if got == expected { Ok(()) } else { Err(LdapError::Invalid("literal mismatch")) }
    }

    /// `ASN1Header`: the tag byte and `LengthType`.
    pub fn header(&mut self) -> Result<Header, LdapError> {
        let tag = self.u8()?;
        let first = self.u8()?;
        let len = if first & 0x80 == 0 { u64::from(first) } else { to_uint(self.take(u64::from(first & 0x7f))?)? };
        Ok(Header { class: tag >> 6, constructed: tag & 0x20 != 0, tag: tag & 0x1f, len })
    }

    /// `ASN1Message(recursive)`.
    pub fn element(&mut self, recursive: bool) -> Result<Element<'a>, LdapError> {
        self.element_at(recursive, 0)
    }

    fn element_at(&mut self, recursive: bool, depth: usize) -> Result<Element<'a>, LdapError> {
        if depth > MAX_DEPTH {
            return Err(LdapError::Asn1Depth);
        }
        let head = self.header()?;
        if head.class != CLASS_UNIVERSAL {
            return Ok(Element { head, value: Body::Data(self.take(head.len)?) });
        }
        let value = match head.tag {
            BOOLEAN => {
                let b = self.u8()?;
                if head.len != 1 {
                    return Err(LdapError::Invalid("BOOLEAN not one byte"));
                }
                Body::Bool(b != 0)
            }
            INTEGER | ENUMERATED => Body::Num(to_int(self.take(head.len)?)?),
            NULL if head.len != 0 => return Err(LdapError::Invalid("NULL with content")),
            NULL => Body::Other,
            BIT_STRING => {
                // The unused-bits byte, then `len - 1` bytes: an empty one underflows.
                let len = head.len.checked_sub(1).ok_or(LdapError::Invalid("empty BIT STRING"))?;
                self.u8()?;
                self.take(len)?;
                Body::Other
            }
            OCTET_STRING => Body::Str(decode_ascii(self.take(head.len)?)),
            OBJECT_IDENTIFIER => Body::Str(oid(self.take(head.len)?)?),
            SEQUENCE | SET if recursive => {
                let mut inner = Reader::new(self.take(head.len)?);
                let mut items = Vec::new();
                while !inner.is_empty() {
                    items.push(inner.element_at(true, depth + 1)?);
                }
                Body::Seq(items)
            }
            SEQUENCE | SET => Body::Other,
            // PrintableString, UTCTime, GeneralizedTime: ASCII.
            19 | 23 | 24 => Body::Str(decode_ascii(self.take(head.len)?)),
            // UTF8String, NumericString, TeletexString, VideotexString, IA5String, GraphicString, VisibleString,
            // GeneralString, UniversalString, CharacterString, BMPString: UTF-8.
            12 | 18 | 20 | 21 | 22 | 25..=30 => Body::Str(decode_utf8(self.take(head.len)?)),
            _ => {
                self.take(head.len)?;
                Body::Other
            }
        };
        Ok(Element { head, value })
    }
}

/// Spicy's `bytes::to_uint(Big)`: one to eight bytes.
pub fn to_uint(b: &[u8]) -> Result<u64, LdapError> {
    match b.len() {
        0 => Err(LdapError::Invalid("not enough bytes for conversion to integer")),
        1..=8 => Ok(b.iter().fold(0, |n, &x| n << 8 | u64::from(x))),
        _ => Err(LdapError::Invalid("more than max of 8 bytes for conversion to integer")),
    }
}

/// Spicy's `bytes::to_int(Big)`: [`to_uint`] read as two's complement of the bytes' width.
pub fn to_int(b: &[u8]) -> Result<i64, LdapError> {
    let u = to_uint(b)?;
    let bits = 8 * b.len() as u32;
    Ok(if bits < 64 && u >> (bits - 1) & 1 == 1 { (u | !0u64 << bits) as i64 } else { u as i64 })
}

/// Spicy's `decode(ASCII)`: printable ASCII kept, every other byte `?`.
pub fn decode_ascii(b: &[u8]) -> String {
    b.iter().map(|&c| if (0x20..0x7f).contains(&c) { char::from(c) } else { '?' }).collect()
}

/// Spicy's `decode(UTF8)` (utfcpp): each byte that does not start a valid sequence becomes U+FFFD on its own.
pub fn decode_utf8(mut b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    loop {
        match std::str::from_utf8(b) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, bad) = b.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                out.push('\u{fffd}');
                b = bad.get(1..).unwrap_or_default();
            }
        }
    }
}

/// `ASN1ObjectIdentifier`: the first byte as `x/40.x%40`, then base-128 arcs; an empty one underflows.
pub fn oid(b: &[u8]) -> Result<String, LdapError> {
    use std::fmt::Write as _;
    let (&first, rest) = b.split_first().ok_or(LdapError::Invalid("empty OBJECT IDENTIFIER"))?;
    let mut s = format!("{}.{}", first / 40, first % 40);
    let mut arc = 0u64;
    for &nibble in rest {
        arc = arc.wrapping_shl(7) | u64::from(nibble & 0x7f);
        if nibble & 0x80 == 0 {
            let _ = write!(s, ".{arc}");
            arc = 0;
        }
    }
    Ok(s)
}
