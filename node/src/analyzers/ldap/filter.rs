//! A search filter as the string ldap_search.log's `filter` holds: ldap.spicy's `SearchFilter` and
//! `string_representation`.
//!
//! The grammar is Zeek's, not RFC 4515's: an attribute/value pair is read as two (three for an extensible match)
//! TLVs of one-byte lengths whatever their tags; `and`/`or` of three or more filters nest to the left
//! (`(&(&(a=1)(b=2))(c=3))`, as Wireshark shows them); values are escaped only for NUL, 0x1b, `(`, `)` and `*`
//! (`escape_filter_string`), and a few CLDAP attributes (`DomainGuid`, `objectSid`, `AAC`, `DomainSid`, `NtVer`) are
//! rendered as GUIDs, SIDs or hex. The string is raw bytes: Spicy builds it with `%c`.

use std::fmt::Write as _;

use super::LdapError;
use super::ber::{Body, Reader, decode_ascii, decode_utf8};

/// The nesting at which Zeek gives up on a filter ("LDAP exceeded max filter recursion depth").
const MAX_DEPTH: usize = 100;

const AND: u8 = 0;
const OR: u8 = 1;
const NOT: u8 = 2;
const EQ: u8 = 3;
const SUBSTR: u8 = 4;
const GE: u8 = 5;
const LE: u8 = 6;
const PRESENT: u8 = 7;
const APPROX: u8 = 8;
const EXT: u8 = 9;

/// One `SearchFilter` at `r`, rendered.
pub fn search_filter(r: &mut Reader, depth: usize) -> Result<Vec<u8>, LdapError> {
    if depth > MAX_DEPTH {
        return Err(LdapError::FilterDepth);
    }
    let element = r.element(true)?;
    // A universal value is `FILTER_INVALID`, which no case of the switch takes.
    let (kind, data) = element.application().ok_or(LdapError::Invalid("search filter of the universal class"))?;
    let mut out = Vec::new();
    match kind {
        AND | OR => {
            let op = if kind == AND { b'&' } else { b'|' };
            let mut inner = Reader::new(data);
            let mut items = Vec::new();
            while !inner.is_empty() {
                items.push(search_filter(&mut inner, depth + 1)?);
            }
            let n = items.len();
            for (i, item) in items.into_iter().enumerate() {
                match i {
                    0 => {
                        out.extend([b'(', op]);
                        out.extend(item);
                        if n == 1 {
                            out.push(b')');
                        }
                    }
                    1 => {
                        out.extend(item);
                        out.push(b')');
                    }
                    _ => {
                        out.splice(0..0, [b'(', op]);
                        out.extend(item);
                        out.push(b')');
                    }
                }
            }
        }
        NOT => {
            let inner = search_filter(&mut Reader::new(data), depth + 1)?;
            out.extend(b"(!");
            out.extend(inner);
            out.push(b')');
        }
        EQ | GE | LE | APPROX | EXT => attribute_value(data, kind, &mut out)?,
        SUBSTR => substrings(data, &mut out)?,
        PRESENT => {
            out.push(b'(');
            out.extend(decode_ascii(data).bytes());
            out.extend(b"=*)");
        }
        _ => return Err(LdapError::Invalid("unknown search filter type")),
    }
    Ok(out)
}

/// `DecodedAttributeValue`: tag, one-byte length and bytes for the description, the value and (extensible match)
/// the match value.
fn attribute_value(data: &[u8], kind: u8, out: &mut Vec<u8>) -> Result<(), LdapError> {
    let mut r = Reader::new(data);
    let desc = field(&mut r)?;
    let value = field(&mut r)?;
    let matched = if kind == EXT { Some(field(&mut r)?) } else { None };
    let decoded = decoded_value(desc, value);
    let desc = decode_utf8(desc);
    out.push(b'(');
    if let Some(matched) = matched {
        // `(%s:%s:=%s)`: for an extensible match the fields' meanings shift.
        out.extend(decoded);
        out.push(b':');
        out.extend(desc.bytes());
        out.extend(b":=");
        out.extend(print_bytes(matched).bytes());
    } else {
        out.extend(desc.bytes());
        out.extend(match kind {
            GE => &b">="[..],
            LE => b"<=",
            APPROX => b"~=",
            _ => b"=",
        });
        out.extend(decoded);
    }
    out.push(b')');
    Ok(())
}

/// A tag byte ignored, a one-byte length and that many bytes.
fn field<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], LdapError> {
    r.u8()?;
    let len = r.u8()?;
    r.take(u64::from(len))
}

/// `SubstringFilter`: the description as in [`attribute_value`], then a header whose length bounds the initial,
/// any and final parts.
fn substrings(data: &[u8], out: &mut Vec<u8>) -> Result<(), LdapError> {
    let mut r = Reader::new(data);
    let desc = field(&mut r)?;
    let header = r.header()?;
    let mut parts = Reader::new(r.take(header.len)?);
    let (mut initial, mut anys, mut last) = (Vec::new(), Vec::new(), Vec::new());
    while !parts.is_empty() {
        let part = parts.element(false)?;
        let Body::Data(bytes) = part.value else { return Err(LdapError::Invalid("substring of the universal class")) };
        let escaped = escape_filter_string(bytes);
        match part.head.tag {
            0 => initial = escaped,
            1 => anys.push(escaped),
            2 => last = escaped,
            _ => return Err(LdapError::Invalid("invalid substring choice")),
        }
    }
    out.push(b'(');
    out.extend(decode_utf8(desc).bytes());
    out.push(b'=');
    out.extend(initial);
    out.push(b'*');
    if !anys.is_empty() {
        // The middle parts are joined and decoded as UTF-8; the initial and final ones are not.
        out.extend(decode_utf8(&anys.join(&b'*')).bytes());
        out.push(b'*');
    }
    out.extend(last);
    out.push(b')');
    Ok(())
}

/// `assertionValueDecoded`: a few CLDAP attributes in their usual notation, the rest escaped.
fn decoded_value(desc: &[u8], value: &[u8]) -> Vec<u8> {
    match desc {
        b"DomainGuid" => guid(value).into_bytes(),
        b"objectSid" | b"AAC" => value.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":").into_bytes(),
        b"DomainSid" => sid(value).into_bytes(),
        b"NtVer" => match value {
            [a, b, c, d] => format!("0x{d:02x}{c:02x}{b:02x}{a:02x}").into_bytes(),
            _ => b"HEX_FORMAT_FAILED".to_vec(),
        },
        _ => escape_filter_string(value),
    }
}

/// `utf16_guid_to_hex_repr`: the GUID's mixed-endian groups, as Wireshark writes them.
fn guid(b: &[u8]) -> String {
    if b.len() != 16 {
        return "GUID_FORMAT_FAILED".into();
    }
    let mut s = String::with_capacity(36);
    for j in [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15] {
        let _ = write!(s, "{:02x}", b[j]);
        if matches!(j, 0 | 4 | 6 | 9) {
            s.push('-');
        }
    }
    s
}

/// `bytes_sid_to_SID_repr`: `S-` and the revision, authority and four sub-authorities of a 24-byte SID.
fn sid(b: &[u8]) -> String {
    if b.len() != 24 {
        return "SID_FORMAT_FAILED".into();
    }
    let be = |idx: &[usize]| idx.iter().fold(0u64, |n, &i| n << 8 | u64::from(b[i]));
    let parts = [
        be(&[0]),
        be(&[2, 3, 4, 5, 6, 7]),
        be(&[11, 10, 9, 8]),
        be(&[15, 14, 13, 12]),
        be(&[19, 18, 17, 16]),
        be(&[23, 22, 21, 20]),
    ];
    format!("S-{}", parts.map(|p| p.to_string()).join("-"))
}

/// `escape_filter_string`: NUL, 0x1b (the grammar's decimal 27), `(`, `)` and `*` as `\xx`; other bytes as they are.
fn escape_filter_string(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        if matches!(c, 0 | 27 | b'(' | b')' | b'*') {
            out.extend(format!("\\{c:02x}").bytes());
        } else {
            out.push(c);
        }
    }
    out
}

/// Raw bytes formatted with Spicy's `%s`: printable ASCII as it is, other bytes as `\xNN` text.
fn print_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) {
            s.push(char::from(c));
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}
