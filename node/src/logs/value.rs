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
    let _ = write!(out, "{t:.6}");
}

/// Zeek's ASCII writer formats doubles with up to six decimals and no trailing zeros.
pub fn fmt_double(out: &mut String, d: f64) {
    if d.is_finite() && d == d.trunc() && d.abs() < 1e15 {
        let _ = write!(out, "{d:.1}");
        return;
    }
    let mut s = format!("{d:.6}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.push('0');
    }
    out.push_str(&s);
}

/// Escapes a string for the TSV writer: non-printable bytes, backslash and the separators become `\xNN`.
pub fn escape_tsv(out: &mut String, s: &str, in_container: bool) {
    if s.is_empty() {
        return;
    }
    // A string that would read back as the unset or empty marker is escaped on its first byte.
    if !in_container && (s == "-" || s == "(empty)") {
        let _ = write!(out, "\\x{:02x}", s.as_bytes()[0]);
        out.push_str(&s[1..]);
        return;
    }
    for ch in s.chars() {
        match ch {
            '\t' => out.push_str("\\x09"),
            ',' if in_container => out.push_str("\\x2c"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Converts raw protocol bytes into a log string, escaping bytes that are not valid UTF-8 as `\xNN`
/// (Zeek logs raw bytes; this keeps the log valid UTF-8 while staying byte-faithful).
pub fn bytes_to_log_string(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
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
                for byte in &bad[..n] {
                    let _ = write!(out, "\\x{byte:02x}");
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

impl Value {
    /// Appends the TSV form of this value.
    pub fn write_tsv(&self, out: &mut String, in_container: bool) {
        match self {
            Value::Unset => out.push('-'),
            Value::Bool(b) => out.push(if *b { 'T' } else { 'F' }),
            Value::Count(c) => {
                let _ = write!(out, "{c}");
            }
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Double(d) => fmt_double(out, *d),
            Value::Time(t) | Value::Interval(t) => fmt_time(out, *t),
            Value::Str(s) => {
                if s.is_empty() && !in_container {
                    out.push_str("(empty)");
                } else {
                    escape_tsv(out, s, in_container);
                }
            }
            Value::Enum(e) => out.push_str(e),
            Value::Addr(a) => {
                let _ = write!(out, "{a}");
            }
            Value::Subnet(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Port(p) => {
                let _ = write!(out, "{p}");
            }
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
            Value::Count(c) => {
                let _ = write!(out, "{c}");
            }
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
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
            Value::Addr(a) => json_string(out, &a.to_string()),
            Value::Subnet(n) => json_string(out, &n.to_string()),
            Value::Port(p) => {
                let _ = write!(out, "{p}");
            }
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
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tsv(v: &Value) -> String {
        let mut s = String::new();
        v.write_tsv(&mut s, false);
        s
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

    #[test]
    fn raw_bytes_stay_faithful() {
        assert_eq!(bytes_to_log_string(b"ab\xffc"), "ab\\xffc");
        assert_eq!(bytes_to_log_string("é".as_bytes()), "é");
    }

    #[test]
    fn json_formats_like_zeek() {
        let mut s = String::new();
        Value::str_set(["a\"b"]).write_json(&mut s);
        assert_eq!(s, "[\"a\\\"b\"]");
    }
}
