//! asn1.pac's types as binpac reads them (src/analyzer/protocol/asn1/asn1.pac), shared by the binpac grammars that
//! include it: Kerberos (`krb/parse.rs`) and GSSAPI (`gssapi.rs`).
//!
//! `ASN1EncodingMeta` is no DER decoder: a one-byte tag and a length (one byte, or `0x80 | n` and `n` big-endian
//! bytes) without looking at the tag; `ASN1Encoding` (also `ASN1Integer`, `ASN1OctetString`) is such a header and
//! that many bytes of content. Reading past the end of the input is binpac's out-of-bound exception, a `case`
//! without a matching arm and without a default its invalid-case exception.

/// Where binpac throws: the message stops there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exception {
    #[error("Binpac exception: binpac exception: out_of_bound: {0}")]
    OutOfBound(&'static str),
    #[error("Binpac exception: binpac exception: invalid index for case: {0}: {1}")]
    InvalidCase(&'static str, i64),
}

pub type R<T> = Result<T, Exception>;

/// `ASN1_INDEX_TAG_OFFSET`: a context tag's number is its tag less this.
pub const ASN1_INDEX_TAG_OFFSET: u8 = 0xa0;

/// An `ASN1EncodingMeta`: a tag byte and a length.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub tag: u8,
    /// The raw second byte (`len`), which GSSAPI's token id reads.
    pub len: u8,
    pub length: u64,
}

impl Meta {
    /// `index`: the tag less 0xa0 (a context tag's number), as a `uint8`.
    pub fn index(self) -> u8 {
        self.tag.wrapping_sub(ASN1_INDEX_TAG_OFFSET)
    }
}

/// asn1.pac's `binary_to_int64` as the newest Zeek has it: big-endian, and zero for more than 8 bytes (Zeek then
/// reports the flow-less weird `asn_binary_to_int64_shift_too_large`, which has no connection to go with here).
pub fn binary_to_int64(bytes: &[u8]) -> u64 {
    if bytes.len() > 8 {
        return 0;
    }
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// The first `n` bytes of `input` (a field with `&length`), or binpac's out-of-bound exception.
pub fn take<'a>(input: &mut &'a [u8], n: u64, ty: &'static str) -> R<&'a [u8]> {
    let n = usize::try_from(n).ok().filter(|&n| n <= input.len()).ok_or(Exception::OutOfBound(ty))?;
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// `ASN1EncodingMeta`.
pub fn meta(input: &mut &[u8]) -> R<Meta> {
    let &[tag, len, ref rest @ ..] = *input else { return Err(Exception::OutOfBound("ASN1EncodingMeta")) };
    *input = rest;
    let length = if len & 0x80 != 0 {
        binary_to_int64(take(input, u64::from(len & 0x7f), "ASN1EncodingMeta")?)
    } else {
        u64::from(len)
    };
    Ok(Meta { tag, len, length })
}

/// `ASN1Encoding` (also `ASN1Integer`, `ASN1OctetString`): a header and its content.
pub fn encoding<'a>(input: &mut &'a [u8]) -> R<&'a [u8]> {
    let m = meta(input)?;
    take(input, m.length, "ASN1Encoding")
}
