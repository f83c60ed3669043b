//! HTTP bodies as files: fuids, mime-type sniffing on the first bytes (a subset of Zeek's file magic
//! signatures), and the files.log record written when the file ends.

use std::net::IpAddr;

use crate::analyzers::Ctx;
use crate::logs::{FILES, Value};

/// `default_file_bof_buffer_size`: how much of a file the sniffer sees.
pub(super) const BOF_SIZE: usize = 4096;

/// One open file (an entity with content).
#[derive(Debug)]
pub(super) struct OpenFile {
    pub fuid: String,
    /// `f$http`: the http.log record the file belongs to.
    pub record_key: Option<u64>,
    pub filename: Option<String>,
    first_ts: f64,
    last_ts: f64,
    seen_bytes: u64,
    bof: Vec<u8>,
    mime: Option<Option<&'static str>>,
}

impl OpenFile {
    pub(super) fn new(ts: f64, fuid: String, record_key: Option<u64>, filename: Option<String>) -> Self {
        OpenFile { fuid, record_key, filename, first_ts: ts, last_ts: ts, seen_bytes: 0, bof: vec![], mime: None }
    }

    /// Adds `len` bytes of content, of which `head` are the first (all the sniffer can still use); returns the
    /// sniffed mime type when the sniff happens now (BOF buffer full).
    pub(super) fn data(&mut self, ts: f64, head: &[u8], len: u64) -> Option<Option<&'static str>> {
        self.last_ts = ts;
        self.seen_bytes += len;
        if self.mime.is_some() {
            return None;
        }
        if self.bof.capacity() == 0 {
            // Growing by packets would reallocate three times on the way to a full buffer.
            self.bof.reserve_exact(BOF_SIZE);
        }
        let room = BOF_SIZE - self.bof.len();
        self.bof.extend_from_slice(&head[..room.min(head.len())]);
        (self.bof.len() >= BOF_SIZE).then(|| self.sniff())
    }

    /// Sniffs once (at the latest when the file ends); the buffer is not needed after that.
    pub(super) fn sniff(&mut self) -> Option<&'static str> {
        let bof = std::mem::take(&mut self.bof);
        *self.mime.get_or_insert_with(|| sniff_mime(&bof))
    }

    pub(super) fn was_sniffed(&self) -> bool {
        self.mime.is_some()
    }

    /// The files.log record (full default scripts: 27 columns).
    pub(super) fn log(mut self, ctx: &mut Ctx, is_orig: bool, total_bytes: Option<u64>) {
        let mime = self.sniff();
        let host = if is_orig { ctx.id.orig_h } else { ctx.id.resp_h };
        let mut values = Vec::with_capacity(FILES.fields.len());
        values.extend([Value::Time(self.first_ts), Value::str(self.fuid), Value::str(ctx.uid)]);
        values.extend(ctx.id.log_values());
        values.extend([
            Value::str("HTTP"),
            Value::Count(0),
            Value::Set(vec![]),
            Value::opt_str(mime),
            Value::opt_str(self.filename),
            Value::Interval(self.last_ts - self.first_ts),
            Value::Bool(is_local_addr(host)),
            Value::Bool(is_orig),
            Value::Count(self.seen_bytes),
            Value::opt_count(total_bytes),
            Value::Count(0),
            Value::Count(0),
            Value::Bool(false),
            Value::Unset,
            Value::Unset,
            Value::Unset,
            Value::Unset,
            Value::Unset,
            Value::Unset,
            Value::Unset,
        ]);
        ctx.log(&FILES, values);
    }
}

/// `Site::is_local_addr` with Zeek's default `Site::private_address_space`.
fn is_local_addr(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let [o0, o1, o2, _] = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || o0 == 0
                || (o0 == 100 && (64..128).contains(&o1))
                || (o0 == 192 && o1 == 0 && (o2 == 0 || o2 == 2))
                || (o0 == 192 && o1 == 88 && o2 == 99)
                || (o0 == 198 && (o1 == 18 || o1 == 19))
                || (o0 == 198 && o1 == 51 && o2 == 100)
                || (o0 == 203 && o1 == 0 && o2 == 113)
                || (o0 == 224 && o1 == 0 && o2 == 0)
                || o0 >= 240
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
                || a.to_ipv4_mapped().is_some_and(|v4| is_local_addr(IpAddr::V4(v4)))
        }
    }
}

const BOMS: &[&[u8]] = &[b"\xef\xbb\xbf", b"\x00\x00\xfe\xff", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\xff\xfe"];

/// Zeek's file magic for the common types, strongest match first.
pub(super) fn sniff_mime(bof: &[u8]) -> Option<&'static str> {
    const BINARY: &[(&[u8], &str)] = &[
        (b"GIF8", "image/gif"),
        (b"\x89PNG", "image/png"),
        (b"\xff\xd8", "image/jpeg"),
        (b"%PDF", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/x-gzip"),
        (b"MZ", "application/x-dosexec"),
        (b"\x7fELF", "application/x-executable"),
        (b"CWS", "application/x-shockwave-flash"),
        (b"FWS", "application/x-shockwave-flash"),
        (b"ZWS", "application/x-shockwave-flash"),
    ];
    if let Some((_, mime)) = BINARY.iter().find(|(magic, _)| bof.starts_with(magic)) {
        return Some(mime);
    }
    let utf8_bom = bof.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bof);
    if let Some(markup) = markup_mime(utf8_bom) {
        return Some(markup);
    }
    let text = BOMS.iter().find_map(|bom| bof.strip_prefix(*bom)).unwrap_or(bof);
    let printable = |c: &u8| c.is_ascii_whitespace() || *c == 0x0b || (0x20..=0x7e).contains(c);
    (text.len() >= 10 && text[..10].iter().all(printable)).then_some("text/plain")
}

/// HTML and XML: tags after leading whitespace, comments and an XML declaration.
fn markup_mime(data: &[u8]) -> Option<&'static str> {
    let mut rest = skip_blank_and_comments(data);
    let mut xml_declaration = false;
    if starts_with_ci(rest, b"<?xml ") {
        xml_declaration = true;
        let end = rest.windows(2).position(|w| w == b"?>")?;
        rest = skip_blank_and_comments(&rest[end + 2..]);
    }
    let tag = rest.strip_prefix(b"<")?;
    let doctype_html = starts_with_ci(tag, b"!doctype ") && starts_with_ci(tag[9..].trim_ascii_start(), b"html");
    let meta_http_equiv = starts_with_ci(tag, b"meta ") && starts_with_ci(tag[5..].trim_ascii_start(), b"http-equiv");
    let html_tag = ["head", "html", "title", "body"].iter().any(|t| starts_with_ci(tag, t.as_bytes()));
    if doctype_html || meta_http_equiv || html_tag {
        return Some("text/html");
    }
    xml_declaration.then_some("application/xml")
}

fn skip_blank_and_comments(mut data: &[u8]) -> &[u8] {
    loop {
        let blank = data.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')).count();
        data = &data[blank..];
        match data.strip_prefix(b"<!--") {
            Some(comment) => match comment.windows(3).position(|w| w == b"-->") {
                Some(end) => data = &comment[end + 3..],
                None => return data,
            },
            None => return data,
        }
    }
}

fn starts_with_ci(data: &[u8], prefix: &[u8]) -> bool {
    data.len() >= prefix.len() && data[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_like_zeek_magic() {
        assert_eq!(sniff_mime(b"<html>\n  The Zeek Network Security Monitor\n</html>\n"), Some("text/html"));
        assert_eq!(sniff_mime(b"<!DOCTYPE html>\n<html lang=en>"), Some("text/html"));
        assert_eq!(sniff_mime(b"bad method\n"), Some("text/plain"));
        assert_eq!(sniff_mime(b"HTTP/1.0 400 Bad Request\r\n"), Some("text/plain"));
        assert_eq!(sniff_mime(b"GIF89a\x01\x00"), Some("image/gif"));
        assert_eq!(sniff_mime(b"\x89PNG\r\n\x1a\n"), Some("image/png"));
        assert_eq!(sniff_mime(b"MZ\x90\x00"), Some("application/x-dosexec"));
        assert_eq!(sniff_mime(b"short"), None);
        assert_eq!(sniff_mime(b"\x00\x01\x02binary data"), None);
    }

    #[test]
    fn local_addresses() {
        assert!(is_local_addr("127.0.0.1".parse().unwrap()));
        assert!(is_local_addr("10.1.6.206".parse().unwrap()));
        assert!(!is_local_addr("5.2.136.90".parse().unwrap()));
        assert!(!is_local_addr("2001:4860:0:2001::68".parse().unwrap()));
    }
}
