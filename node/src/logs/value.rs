//! Typed log values, formatted the way Zeek's ASCII and JSON writers format them.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

/// One field of a log record. The variants follow Zeek's log types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An `&optional` field that was not set: `-` in TSV, omitted in JSON.
    Unset,
    Bool(bool),
    Count(u64),
    Int(i64),
    Double(f64),
    /// Seconds since the epoch.
    Time(f64),
    /// Seconds.
    Interval(f64),
    /// Arbitrary bytes, escaped on output.
    Str(String),
    /// An enum value (`tcp`, `Intel::ADDR`).
    Enum(&'static str),
    Addr(IpAddr),
    Subnet(IpNet),
    Port(u16),
    Set(Vec<Value>),
    Vector(Vec<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A string field that is unset when `None`.
    pub fn opt_str(s: Option<impl Into<String>>) -> Value {
        s.map_or(Value::Unset, |s| Value::Str(s.into()))
    }

    pub fn opt_count(c: Option<u64>) -> Value {
        c.map_or(Value::Unset, Value::Count)
    }

    /// A `set[string]` from string items.
    pub fn str_set<I, S>(items: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Value::Set(items.into_iter().map(|s| Value::Str(s.into())).collect())
    }

    pub fn str_vec<I, S>(items: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Value::Vector(items.into_iter().map(|s| Value::Str(s.into())).collect())
    }

    pub fn is_unset(&self) -> bool {
        matches!(self, Value::Unset)
    }
}

/// Formats a time or interval the way Zeek does: `%.6f`.
pub fn fmt_time(out: &mut String, t: f64) {
    if !push_fixed6(out, t) {
        let _ = write!(out, "{t:.6}");
    }
}

/// Zeek's ASCII writer formats doubles with up to six decimals and no trailing zeros.
pub fn fmt_double(out: &mut String, d: f64) {
    if d.is_finite() && d == d.trunc() && d.abs() < 1e15 {
        let _ = write!(out, "{d:.1}");
        return;
    }
    let start = out.len();
    fmt_time(out, d);
    let kept = out[start..].trim_end_matches('0').len();
    out.truncate(start + kept);
    if out.ends_with('.') {
        out.push('0');
    }
}

/// Below this magnitude `push_fixed6` formats exactly with integer arithmetic (the scaled value fits a u64).
const FIXED6_LIMIT: f64 = 1e12;

/// Appends `v` with six decimals, rounded exactly as `{:.6}` (and C's `%.6f`) round: to the nearest multiple of
/// 10^-6 of the exact binary value, ties to even. Returns false (appending nothing) for values it leaves to
/// the general formatter: non-finite or of magnitude ≥ 10^12.
fn push_fixed6(out: &mut String, v: f64) -> bool {
    if !v.is_finite() || v.abs() >= FIXED6_LIMIT {
        return false;
    }
    let bits = v.to_bits();
    let biased_exp = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    // v = mantissa * 2^exp exactly.
    let (mantissa, exp) = if biased_exp == 0 { (fraction, -1074) } else { (fraction | (1 << 52), biased_exp - 1075) };
    let scaled = u128::from(mantissa) * 1_000_000;
    let micros: u128 = if exp >= 0 {
        scaled << exp
    } else if -exp >= 100 {
        // scaled < 2^73, so the value is below half a millionth.
        0
    } else {
        let shift = -exp as u32;
        let quotient = scaled >> shift;
        let remainder = scaled & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let round_up = remainder > half || (remainder == half && quotient & 1 == 1);
        quotient + u128::from(round_up)
    };
    // |v| < 10^12, so at most 10^18 millionths: a u64 from here on, whose division by a constant is a multiply
    // (a u128's is a library call, 5% of what formatting a time took).
    let micros = micros as u64;
    if v.is_sign_negative() {
        out.push('-');
    }
    push_u64(out, micros / 1_000_000);
    let frac = (micros % 1_000_000) as u32;
    let mut point_and_digits = [b'.'; 7];
    for (digit, place) in point_and_digits[1..].iter_mut().zip([100_000, 10_000, 1000, 100, 10, 1]) {
        *digit = b'0' + (frac / place % 10) as u8;
    }
    push_ascii(out, &point_and_digits, point_and_digits.len());
    true
}

/// Appends the decimal form of `n` (what `{n}` prints, without the formatting machinery): two digits per
/// division, from a table of all pairs, written into a stack buffer and appended in one fixed-size copy (pushing
/// digit by digit checked the string's capacity for every digit; counting the digits first cost a logarithm).
pub fn push_u64(out: &mut String, mut n: u64) {
    // Most counts in a record are single digits (missed bytes, packets of short connections): no buffer.
    if n < 10 {
        out.push(char::from(b'0' + n as u8));
        return;
    }
    const PAIRS: &[u8; 200] = b"00010203040506070809101112131415161718192021222324\
        25262728293031323334353637383940414243444546474849\
        50515253545556575859606162636465666768697071727374\
        75767778798081828384858687888990919293949596979899";
    // u64::MAX has 20 digits, written right to left to end at `MAX_DIGITS`; the 20 bytes from the first digit are
    // then in the buffer whatever the length, so the copy out has one size.
    const MAX_DIGITS: usize = 20;
    let mut digits = [0u8; 2 * MAX_DIGITS];
    let mut start = MAX_DIGITS;
    while n >= 100 {
        let at = (n % 100) as usize * 2;
        n /= 100;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&PAIRS[at..at + 2]);
    }
    let lead = n as usize * 2;
    if n >= 10 {
        start -= 2;
        digits[start..start + 2].copy_from_slice(&PAIRS[lead..lead + 2]);
    } else {
        start -= 1;
        digits[start] = PAIRS[lead + 1];
    }
    let window: &[u8; MAX_DIGITS] = digits[start..start + MAX_DIGITS].try_into().expect("start <= MAX_DIGITS");
    push_ascii(out, window, MAX_DIGITS - start);
}

/// Appends the first `len` bytes of `ascii`, which the caller built as ASCII: the whole array is copied (a copy of
/// a known size, no call to `memcpy`) into reserved room and the string grows by `len`, without checking the
/// bytes as UTF-8 again.
fn push_ascii<const N: usize>(out: &mut String, ascii: &[u8; N], len: usize) {
    assert!(len <= N);
    debug_assert!(ascii[..len].is_ascii(), "callers build ASCII digits and punctuation");
    out.reserve(N);
    // SAFETY: `reserve` made room for N more bytes after the string's length, so the copy stays inside the
    // allocation, and the new length is within what was written. Both callers write only ASCII digits and the
    // decimal point (from `PAIRS` and `b'0' + digit`) in the first `len` bytes, and ASCII is valid UTF-8 after any
    // UTF-8 string.
    unsafe {
        let bytes = out.as_mut_vec();
        let at = bytes.len();
        std::ptr::copy_nonoverlapping(ascii.as_ptr(), bytes.as_mut_ptr().add(at), N);
        bytes.set_len(at + len);
    }
}

fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Appends an address as its `Display` form, without the formatting machinery (std's IPv6 `Display` cost ~900
/// instructions an address: DNS answers and IPv6 connections format many).
pub fn push_addr(out: &mut String, addr: &IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            let mut text = [0u8; 16];
            let len = write_ipv4(&mut text, a);
            push_ascii(out, &text, len);
        }
        IpAddr::V6(a) => {
            // "ffff:" eight times less the last colon is 39 bytes; a mapped IPv4 address is at most 22.
            let mut text = [0u8; 40];
            let len = write_ipv6(&mut text, a);
            push_ascii(out, &text, len);
        }
    }
}

/// Writes dotted-quad text at the start of `to`; returns its length. Each octet is its digits and a dot from a
/// table, stored as one 4-byte word (16 bytes hold four words; the last dot is not counted): every conn.log line
/// has two addresses, and formatting octets digit by digit cost ~170 instructions an address.
fn write_ipv4(to: &mut [u8; 16], a: &std::net::Ipv4Addr) -> usize {
    let mut len = 0;
    for (i, octet) in a.octets().into_iter().enumerate() {
        let (text, text_len) = OCTET_TEXT[usize::from(octet)];
        // `len` is at most 4 * i, so the word fits.
        to[len.min(12)..len.min(12) + 4].copy_from_slice(&text);
        len += usize::from(text_len) - usize::from(i == 3);
    }
    len
}

/// Each octet's decimal digits followed by a dot, padded to four bytes, and how many of them count.
const OCTET_TEXT: [([u8; 4], u8); 256] = {
    let mut table = [([0u8; 4], 0u8); 256];
    let mut octet = 0;
    while octet < 256 {
        let digits = [b'0' + (octet / 100) as u8, b'0' + (octet / 10 % 10) as u8, b'0' + (octet % 10) as u8];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        let mut text = [0u8; 4];
        let mut i = 0;
        while i < 3 - skip {
            text[i] = digits[skip + i];
            i += 1;
        }
        text[3 - skip] = b'.';
        table[octet] = (text, (4 - skip) as u8);
        octet += 1;
    }
    table
};

/// Writes `a` as std's `Display` does (RFC 5952: lowercase hex without leading zeros, the longest run of two or
/// more zero groups, the first of equals, as `::`; IPv4-mapped addresses as `::ffff:a.b.c.d`); returns its length.
fn write_ipv6(to: &mut [u8; 40], a: &std::net::Ipv6Addr) -> usize {
    if let Some(v4) = a.to_ipv4_mapped() {
        to[..7].copy_from_slice(b"::ffff:");
        let mut quad = [0u8; 16];
        let len = write_ipv4(&mut quad, &v4);
        to[7..7 + len].copy_from_slice(&quad[..len]);
        return 7 + len;
    }
    let groups = a.segments();
    let (mut zeros_at, mut zeros_len, mut run_at, mut run_len) = (0, 0, 0, 0);
    for (i, &group) in groups.iter().enumerate() {
        if group != 0 {
            run_len = 0;
            continue;
        }
        if run_len == 0 {
            run_at = i;
        }
        run_len += 1;
        if run_len > zeros_len {
            (zeros_at, zeros_len) = (run_at, run_len);
        }
    }
    if zeros_len < 2 {
        return write_groups(to, 0, &groups);
    }
    let len = write_groups(to, 0, &groups[..zeros_at]);
    to[len..len + 2].copy_from_slice(b"::");
    write_groups(to, len + 2, &groups[zeros_at + zeros_len..])
}

/// Writes `groups` as colon-separated lowercase hex from `to[at]`; returns where the text ends.
fn write_groups(to: &mut [u8; 40], mut at: usize, groups: &[u16]) -> usize {
    for (i, &group) in groups.iter().enumerate() {
        if i > 0 {
            to[at] = b':';
            at += 1;
        }
        let digits = (16 - group.leading_zeros()).div_ceil(4).max(1);
        for d in (0..digits).rev() {
            to[at] = b"0123456789abcdef"[usize::from(group >> (4 * d) & 0xf)];
            at += 1;
        }
    }
    at
}

/// Escapes a string for the TSV writer: non-printable bytes, backslash and the separators become `\xNN`, a raw
/// byte kept by [`push_log_bytes`] becomes `\xNN` too (Zeek's `util::escape_utf8` for bytes that are not UTF-8),
/// and a backslash `\\` (`util::get_escaped_string`), so a raw byte and the same text typed out stay apart.
pub fn escape_tsv(out: &mut String, s: &str, in_container: bool) {
    if s.is_empty() {
        return;
    }
    // A string that would read back as the unset or empty marker is escaped on its first byte (inside a container
    // too: `escapeReservedContent` in Zeek's `Ascii::Describe`).
    if s == "-" || s == "(empty)" {
        let _ = write!(out, "\\x{:02x}", s.as_bytes()[0]);
        out.push_str(&s[1..]);
        return;
    }
    // Every byte that needs escaping is ASCII or a raw byte's lead byte, so the copies between them never split a
    // UTF-8 sequence.
    let mut rest = s;
    while let Some(at) = first_to_escape(rest.as_bytes(), in_container) {
        out.push_str(&rest[..at]);
        let b = rest.as_bytes()[at];
        if b == RAW_BYTE_LEAD {
            // Any code point from U+100000 on starts with this byte; only the raw-byte range is escaped.
            let Some(c) = rest[at..].chars().next() else { break };
            match raw_byte(c) {
                Some(raw) => {
                    let _ = write!(out, "\\x{raw:02x}");
                }
                None => out.push(c),
            }
            rest = &rest[at + c.len_utf8()..];
            continue;
        }
        match b {
            b'\\' => out.push_str("\\\\"),
            b => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Bytes that are not UTF-8 are kept in a log string as code points of the last private-use plane,
/// U+10FF00 + the byte, so the writers can write them as Zeek does: `\xNN` in TSV, where a literal backslash is
/// doubled, and `"\\xNN"` in JSON, where Zeek's own output cannot tell them from typed-out text either.
const RAW_BYTE_BASE: u32 = 0x10_FF00;
/// The UTF-8 lead byte of every code point from U+100000 on, the raw bytes' among them.
const RAW_BYTE_LEAD: u8 = 0xf4;

fn raw_byte_char(b: u8) -> char {
    char::from_u32(RAW_BYTE_BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Whether a code point stands for a raw byte of [`push_log_bytes`].
pub(super) fn is_raw_byte(c: char) -> bool {
    raw_byte(c).is_some()
}

/// How many bytes a log string stands for: a raw byte is one, any other character its UTF-8 length.
pub(super) fn wire_len(s: &str) -> usize {
    if !s.as_bytes().contains(&RAW_BYTE_LEAD) {
        return s.len();
    }
    s.chars().map(|c| if is_raw_byte(c) { 1 } else { c.len_utf8() }).sum()
}

/// The raw byte a code point stands for, if it is one of [`push_log_bytes`]'s.
fn raw_byte(c: char) -> Option<u8> {
    u32::from(c).checked_sub(RAW_BYTE_BASE).and_then(|b| u8::try_from(b).ok())
}

/// Whether the TSV writer escapes byte `b`.
fn needs_escape(b: u8, in_container: bool) -> bool {
    b < 0x20 || b == 0x7f || b == b'\\' || b == RAW_BYTE_LEAD || (in_container && b == b',')
}

/// The first byte the TSV writer escapes. Most strings have none, so eight bytes are tested at a time with
/// word arithmetic (exact "some byte is below / equal to" tests) before the bytes of a hit are looked at.
fn first_to_escape(bytes: &[u8], in_container: bool) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let has_byte = |v: u64, b: u8| has_zero(v ^ (ONES * u64::from(b)));
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for w in &mut words {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let below_space = v.wrapping_sub(ONES * 0x20) & !v & HIGHS != 0;
        if below_space
            || has_byte(v, 0x7f)
            || has_byte(v, b'\\')
            || has_byte(v, RAW_BYTE_LEAD)
            || (in_container && has_byte(v, b','))
        {
            return w.iter().position(|&b| needs_escape(b, in_container)).map(|at| offset + at);
        }
        offset += 8;
    }
    words.remainder().iter().position(|&b| needs_escape(b, in_container)).map(|at| offset + at)
}

/// Converts raw protocol bytes into a log string: UTF-8 as it is, every other byte as a raw-byte code point the
/// writers escape as Zeek does (see [`RAW_BYTE_BASE`]).
pub fn bytes_to_log_string(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    push_log_bytes(&mut out, b);
    out
}

/// [`bytes_to_log_string`], appended to `out` (for a string built from several pieces of raw bytes).
pub fn push_log_bytes(out: &mut String, b: &[u8]) {
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                out.extend(bad[..n].iter().map(|&byte| raw_byte_char(byte)));
                rest = &bad[n..];
            }
        }
    }
}

impl Value {
    /// The TSV form of this value alone (outside a container), as a new string.
    pub fn to_tsv(&self) -> String {
        let mut s = String::new();
        self.write_tsv(&mut s, false);
        s
    }

    /// Appends the TSV form of this value.
    pub fn write_tsv(&self, out: &mut String, in_container: bool) {
        match self {
            Value::Unset => out.push('-'),
            Value::Bool(b) => out.push(if *b { 'T' } else { 'F' }),
            Value::Count(c) => push_u64(out, *c),
            Value::Int(i) => push_i64(out, *i),
            Value::Double(d) => fmt_double(out, *d),
            Value::Time(t) | Value::Interval(t) => fmt_time(out, *t),
            // Zeek's `Ascii::Describe` writes an empty string as the empty marker inside a container too.
            Value::Str(s) if s.is_empty() => out.push_str("(empty)"),
            Value::Str(s) => escape_tsv(out, s, in_container),
            Value::Enum(e) => out.push_str(e),
            Value::Addr(a) => push_addr(out, a),
            Value::Subnet(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Port(p) => push_u64(out, u64::from(*p)),
            Value::Set(items) | Value::Vector(items) => {
                if items.is_empty() {
                    out.push_str("(empty)");
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_tsv(out, true);
                }
            }
        }
    }

    /// Appends the JSON form of this value (Zeek's JSON writer: times as epoch numbers).
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Unset => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            // Integers as the TSV writer writes them (decimal, as `Display`), without `fmt`.
            Value::Count(c) => push_u64(out, *c),
            Value::Int(i) => push_i64(out, *i),
            Value::Double(d) | Value::Interval(d) => {
                if d.is_finite() {
                    let _ = write!(out, "{d}");
                } else {
                    out.push_str("null");
                }
            }
            Value::Time(t) => fmt_time(out, *t),
            Value::Str(s) => json_string(out, s),
            Value::Enum(e) => json_string(out, e),
            Value::Addr(a) => {
                // Address text has nothing JSON escapes.
                out.push('"');
                push_addr(out, a);
                out.push('"');
            }
            Value::Subnet(n) => json_string(out, &n.to_string()),
            Value::Port(p) => push_u64(out, u64::from(*p)),
            Value::Set(items) | Value::Vector(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => match raw_byte(c) {
                Some(raw) => {
                    let _ = write!(out, "\\\\x{raw:02x}");
                }
                None => out.push(c),
            },
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The hand-written formatter writes every address as std's `Display`, for random groups and for groups
        /// drawn mostly from zero (so runs of zeros, ties between runs, and mapped and compatible IPv4 forms come
        /// up often).
        #[test]
        fn addresses_are_written_as_display_writes_them(
            random in proptest::prelude::any::<[u16; 8]>(),
            sparse in proptest::collection::vec(proptest::prop_oneof![4 => proptest::prelude::Just(0u16), 1 => proptest::prelude::Just(0xffffu16), 1 => 1u16..0x1000], 8),
            v4 in proptest::prelude::any::<[u8; 4]>(),
        ) {
            let sparse: [u16; 8] = sparse.try_into().unwrap();
            for addr in [
                IpAddr::from(random),
                IpAddr::from(sparse),
                IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_mapped()),
                IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_compatible()),
                IpAddr::from(v4),
            ] {
                let mut out = String::from("x");
                push_addr(&mut out, &addr);
                proptest::prop_assert_eq!(&out[1..], addr.to_string());
            }
        }
    }

    fn tsv(v: &Value) -> String {
        v.to_tsv()
    }

    fn json(v: &Value) -> String {
        let mut out = String::new();
        v.write_json(&mut out);
        out
    }

    #[test]
    fn tsv_formats_like_zeek() {
        assert_eq!(tsv(&Value::Time(1300475167.096535)), "1300475167.096535");
        assert_eq!(tsv(&Value::Interval(0.000435)), "0.000435");
        assert_eq!(tsv(&Value::Unset), "-");
        assert_eq!(tsv(&Value::str("")), "(empty)");
        assert_eq!(tsv(&Value::str("-")), "\\x2d");
        assert_eq!(tsv(&Value::str("a\tb")), "a\\x09b");
        assert_eq!(tsv(&Value::Set(vec![])), "(empty)");
        assert_eq!(tsv(&Value::str_set(["a,b", "c"])), "a\\x2cb,c");
        assert_eq!(tsv(&Value::Bool(true)), "T");
        assert_eq!(tsv(&Value::Addr("fe80::217:f2ff:fed7:cf65".parse().unwrap())), "fe80::217:f2ff:fed7:cf65");
    }

    /// A deterministic spread of doubles: trace-like times, small intervals, exact ties, extremes.
    fn sample_doubles() -> Vec<f64> {
        let mut values = vec![
            0.0,
            -0.0,
            0.0078125,
            0.0234375,
            1.5,
            2.5,
            1e-7,
            5e-7,
            -5e-7,
            0.9999995,
            999_999_999_999.999,
            1e12,
            -1e12,
            1e15,
            1e300,
            f64::MIN_POSITIVE,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            values.push(1_300_000_000.0 + unit * 500_000_000.0);
            values.push(unit * 100.0 - 50.0);
            values.push(unit / 1000.0);
            values.push(f64::from_bits(x));
            // Exact ties at the seventh decimal: odd multiples of 2^-7 .. 2^-10 scaled by integers.
            values.push((x % 100_000) as f64 + ((x >> 20) % 128) as f64 / 128.0);
        }
        values
    }

    #[test]
    fn times_and_doubles_format_like_the_standard_formatter() {
        for v in sample_doubles() {
            let mut time = String::new();
            fmt_time(&mut time, v);
            assert_eq!(time, format!("{v:.6}"), "{v:e}");
            let mut double = String::new();
            fmt_double(&mut double, v);
            let expected = if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
                format!("{v:.1}")
            } else {
                let s = format!("{v:.6}");
                let s = s.trim_end_matches('0');
                if s.ends_with('.') { format!("{s}0") } else { s.to_string() }
            };
            assert_eq!(double, expected, "{v:e}");
        }
    }

    #[test]
    fn integers_and_addresses_format_like_display() {
        for n in [0u64, 7, 9, 10, 11, 99, 100, 101, 999, 1000, 65535, 100_000, u64::from(u32::MAX), u64::MAX]
            .into_iter()
            .chain((0..5000).map(|i| i * 7919))
        {
            assert_eq!(tsv(&Value::Count(n)), n.to_string());
            assert_eq!(json(&Value::Count(n)), n.to_string());
        }
        for p in [0u16, 9, 80, 65535] {
            assert_eq!(json(&Value::Port(p)), p.to_string());
        }
        for i in [0i64, -1, 42, i64::MIN, i64::MAX] {
            assert_eq!(tsv(&Value::Int(i)), i.to_string());
            assert_eq!(json(&Value::Int(i)), i.to_string());
        }
        for a in ["0.0.0.0", "10.0.0.255", "192.168.1.20", "255.255.255.255", "::ffff:1.2.3.4", "2001:db8::1"] {
            assert_eq!(tsv(&Value::Addr(a.parse().unwrap())), a);
        }
        // Every octet value in every position (one, two and three digits next to each other).
        for octet in 0..=255u8 {
            for a in [[octet, 0, 9, 99], [100, octet, 10, 7], [1, 255, octet, 0], [200, 20, 2, octet]] {
                let addr = std::net::Ipv4Addr::from(a);
                assert_eq!(tsv(&Value::Addr(addr.into())), addr.to_string());
            }
        }
    }

    #[test]
    fn escaping_keeps_utf8_and_escapes_ascii_controls() {
        assert_eq!(tsv(&Value::str("é\\\x7f\x01x")), "é\\\\\\x7f\\x01x");
        assert_eq!(tsv(&Value::str("(empty)")), "\\x28empty)");
        assert_eq!(tsv(&Value::str_vec(["a,b"])), "a\\x2cb");
        assert_eq!(tsv(&Value::str("a,b")), "a,b");
    }

    #[test]
    fn word_wise_escape_search_finds_the_first_escaped_byte() {
        let mut x: u32 = 12345;
        for len in 0..40 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        // Mostly printable, sometimes a byte on either side of each boundary.
                        [b'a', b'~', 0x7f, 0x80, 0x1f, 0x20, b'\\', b',', 0xff, 0x00][(x >> 16) as usize % 10]
                    })
                    .collect();
                for in_container in [false, true] {
                    let expected = bytes.iter().position(|&b| needs_escape(b, in_container));
                    assert_eq!(first_to_escape(&bytes, in_container), expected, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn raw_bytes_stay_faithful() {
        let raw = bytes_to_log_string(b"ab\xffc\\x41");
        // TSV: the raw byte as Zeek's `\xff`, the typed-out backslash doubled; JSON cannot tell them apart.
        assert_eq!(tsv(&Value::str(raw.clone())), "ab\\xffc\\\\x41");
        let mut json = String::new();
        Value::str(raw).write_json(&mut json);
        assert_eq!(json, "\"ab\\\\xffc\\\\x41\"");
        // A truncated sequence and a lone continuation byte are one raw byte each; valid UTF-8 is kept as it is,
        // code points from U+100000 up to the raw bytes' range too.
        assert_eq!(tsv(&Value::str(bytes_to_log_string(b"\xe2\x82-\x80"))), "\\xe2\\x82-\\x80");
        assert_eq!(bytes_to_log_string("é".as_bytes()), "é");
        assert_eq!(tsv(&Value::str("a\u{100000}\u{10feff}b")), "a\u{100000}\u{10feff}b");
        assert_eq!(tsv(&Value::str_vec([bytes_to_log_string(b"x\x80,")])), "x\\x80\\x2c");
    }

    #[test]
    fn json_formats_like_zeek() {
        let mut s = String::new();
        Value::str_set(["a\"b"]).write_json(&mut s);
        assert_eq!(s, "[\"a\\\"b\"]");
    }
}
