//! A line-driven MIME message parser in the shape of Zeek's `MIME_Mail` (src/analyzer/protocol/mime):
//! it reports entity boundaries, each header (name upper-cased, folded lines concatenated) and each
//! leaf entity's decoded body bytes. The mail protocols use it as Zeek's do: SMTP turns a message into
//! smtp.log fields and files, POP3 turns the messages of RETR/TOP replies into files.

use super::Ctx;
use super::files::FileTransfer;

/// The file an entity's body goes to, started at its first decoded byte (Zeek's MIME analyzer hands each
/// entity's data to the file framework, which makes a file on the first `DataIn`). `on_start` fills what the
/// protocol knows of a new file (depth, filename) and notes its id.
pub fn entity_file<'f>(
    slot: &'f mut Option<FileTransfer>,
    ctx: &mut Ctx,
    source: &'static str,
    is_orig: bool,
    on_start: impl FnOnce(&mut FileTransfer),
) -> &'f mut FileTransfer {
    slot.get_or_insert_with(|| {
        let mut file = FileTransfer::new(ctx, source, is_orig);
        on_start(&mut file);
        file
    })
}

/// What the parser found, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum MimeEvent<'a> {
    BeginEntity,
    /// One header of the current entity: upper-cased name and value.
    Header {
        name: &'a str,
        value: &'a str,
    },
    /// Decoded body bytes of the current (leaf) entity.
    Data(&'a [u8]),
    EndEntity,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Encoding {
    #[default]
    Identity,
    QuotedPrintable,
    Base64,
}

#[derive(Debug, Default)]
struct Entity {
    in_headers: bool,
    header: Option<Vec<u8>>,
    /// `type/subtype`, lower-cased; empty when the entity has no Content-Type.
    content_type: String,
    boundary: Option<Vec<u8>>,
    encoding: Encoding,
    /// Parts of a multipart drop the CRLF before the next boundary: it belongs to the delimiter.
    parent_is_multipart: bool,
    crlf_delayed: bool,
    b64_bits: u32,
    b64_count: u8,
}

impl Entity {
    fn new(parent_is_multipart: bool) -> Self {
        Entity { in_headers: true, parent_is_multipart, ..Default::default() }
    }

    fn is_multipart(&self) -> bool {
        self.content_type.starts_with("multipart/") && self.boundary.is_some()
    }
}

/// One message; feed it the message lines (without CRLF, dot-unstuffed) and finish with [`MimeMessage::done`].
#[derive(Debug)]
pub struct MimeMessage {
    stack: Vec<Entity>,
    buf: Vec<u8>,
}

impl MimeMessage {
    /// Starts a message: the top-level entity begins immediately.
    pub fn new(sink: &mut impl FnMut(MimeEvent)) -> Self {
        sink(MimeEvent::BeginEntity);
        MimeMessage { stack: vec![Entity::new(false)], buf: Vec::new() }
    }

    pub fn line(&mut self, line: &[u8], sink: &mut impl FnMut(MimeEvent)) {
        // A boundary of any enclosing multipart ends everything nested inside it.
        for depth in 0..self.stack.len() {
            let e = &self.stack[depth];
            if e.in_headers || !e.is_multipart() {
                continue;
            }
            let Some(rest) = boundary_match(line, e.boundary.as_deref().unwrap_or_default()) else { continue };
            while self.stack.len() > depth + 1 {
                self.end_entity(sink);
            }
            if !rest.starts_with(b"--") {
                sink(MimeEvent::BeginEntity);
                self.stack.push(Entity::new(true));
            }
            return;
        }
        let Some(e) = self.stack.last_mut() else { return };
        if e.in_headers {
            header_line(e, line, sink);
        } else if !e.is_multipart() {
            body_line(e, line, &mut self.buf, sink);
        }
        // Multipart preamble and epilogue lines carry no data.
    }

    /// The message ended (end of DATA, last BDAT chunk, or the connection went away).
    pub fn done(mut self, sink: &mut impl FnMut(MimeEvent)) {
        while !self.stack.is_empty() {
            self.end_entity(sink);
        }
    }

    fn end_entity(&mut self, sink: &mut impl FnMut(MimeEvent)) {
        if let Some(mut e) = self.stack.pop() {
            if e.in_headers {
                flush_header(&mut e, sink);
            }
            self.buf.clear();
            flush_base64(&mut e, &mut self.buf);
            if !self.buf.is_empty() {
                sink(MimeEvent::Data(&self.buf));
            }
            sink(MimeEvent::EndEntity);
        }
    }
}

/// `--boundary` at the start of the line: returns what follows the boundary.
fn boundary_match<'a>(line: &'a [u8], boundary: &[u8]) -> Option<&'a [u8]> {
    line.strip_prefix(b"--".as_slice())?.strip_prefix(boundary)
}

fn header_line(e: &mut Entity, line: &[u8], sink: &mut impl FnMut(MimeEvent)) {
    if line.is_empty() {
        flush_header(e, sink);
        e.in_headers = false;
        return;
    }
    if matches!(line[0], b' ' | b'\t')
        && let Some(h) = e.header.as_mut()
    {
        h.extend_from_slice(line);
        return;
    }
    flush_header(e, sink);
    e.header = Some(line.to_vec());
}

fn flush_header(e: &mut Entity, sink: &mut impl FnMut(MimeEvent)) {
    let Some(raw) = e.header.take() else { return };
    let Some(colon) = raw.iter().position(|&b| b == b':') else { return };
    let name = String::from_utf8_lossy(&raw[..colon]).trim().to_ascii_uppercase();
    let value_bytes = &raw[colon + 1..];
    let skip = value_bytes.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    let value = crate::logs::bytes_to_log_string(&value_bytes[skip..]);
    match name.as_str() {
        "CONTENT-TYPE" => {
            let (ty, params) = value.split_once(';').unwrap_or((value.as_str(), ""));
            e.content_type = ty.trim().to_ascii_lowercase();
            e.boundary = header_param(params, "boundary").map(String::into_bytes);
        }
        "CONTENT-TRANSFER-ENCODING" => {
            e.encoding = match value.trim().to_ascii_lowercase().as_str() {
                "quoted-printable" => Encoding::QuotedPrintable,
                "base64" => Encoding::Base64,
                _ => Encoding::Identity,
            };
        }
        _ => {}
    }
    sink(MimeEvent::Header { name: &name, value: &value });
}

/// The value of `name=` among `;`-separated header parameters, unquoted.
pub fn header_param(params: &str, name: &str) -> Option<String> {
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn body_line(e: &mut Entity, line: &[u8], buf: &mut Vec<u8>, sink: &mut impl FnMut(MimeEvent)) {
    buf.clear();
    match e.encoding {
        Encoding::Base64 => {
            for &c in line {
                let v = match c {
                    b'A'..=b'Z' => c - b'A',
                    b'a'..=b'z' => c - b'a' + 26,
                    b'0'..=b'9' => c - b'0' + 52,
                    b'+' => 62,
                    b'/' => 63,
                    b'=' => {
                        flush_base64(e, buf);
                        continue;
                    }
                    _ => continue,
                };
                e.b64_bits = (e.b64_bits << 6) | u32::from(v);
                e.b64_count += 1;
                if e.b64_count == 4 {
                    buf.extend_from_slice(&e.b64_bits.to_be_bytes()[1..]);
                    e.b64_bits = 0;
                    e.b64_count = 0;
                }
            }
        }
        Encoding::QuotedPrintable => {
            // Unlike unencoded bodies, Zeek ends every quoted-printable line (but a soft break) with CRLF,
            // even the one before a boundary.
            let soft_break = line.last() == Some(&b'=');
            let body = if soft_break { &line[..line.len() - 1] } else { line };
            decode_qp(body, buf);
            if !soft_break {
                buf.extend_from_slice(b"\r\n");
            }
        }
        Encoding::Identity => {
            if e.crlf_delayed {
                buf.extend_from_slice(b"\r\n");
                e.crlf_delayed = false;
            }
            buf.extend_from_slice(line);
            end_of_line(e, buf);
        }
    }
    if !buf.is_empty() {
        sink(MimeEvent::Data(buf));
    }
}

/// Emits the bytes of an incomplete base64 quantum (padding, or the end of the entity).
fn flush_base64(e: &mut Entity, buf: &mut Vec<u8>) {
    let bytes = match e.b64_count {
        2 => vec![(e.b64_bits >> 4) as u8],
        3 => vec![(e.b64_bits >> 10) as u8, (e.b64_bits >> 2) as u8],
        _ => vec![],
    };
    buf.extend_from_slice(&bytes);
    e.b64_bits = 0;
    e.b64_count = 0;
}

fn end_of_line(e: &mut Entity, buf: &mut Vec<u8>) {
    if e.parent_is_multipart {
        e.crlf_delayed = true;
    } else {
        buf.extend_from_slice(b"\r\n");
    }
}

fn decode_qp(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'='
            && let (Some(h), Some(l)) = (s.get(i + 1).and_then(hex_val), s.get(i + 2).and_then(hex_val))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
}

fn hex_val(c: &u8) -> Option<u8> {
    (*c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Begin,
        Header(String, String),
        Data(Vec<u8>),
        End,
    }

    fn parse(msg: &[u8]) -> Vec<Ev> {
        let mut out = vec![];
        let mut sink = |e: MimeEvent| {
            out.push(match e {
                MimeEvent::BeginEntity => Ev::Begin,
                MimeEvent::Header { name, value } => Ev::Header(name.into(), value.into()),
                MimeEvent::Data(d) => Ev::Data(d.to_vec()),
                MimeEvent::EndEntity => Ev::End,
            })
        };
        let mut m = MimeMessage::new(&mut sink);
        for line in msg.split(|&b| b == b'\n') {
            m.line(line.strip_suffix(b"\r").unwrap_or(line), &mut sink);
        }
        m.done(&mut sink);
        out
    }

    fn data_of(evs: &[Ev]) -> Vec<Vec<u8>> {
        // Joins consecutive Data events per entity.
        let mut files = vec![];
        let mut cur: Option<Vec<u8>> = None;
        for e in evs {
            match e {
                Ev::Data(d) => cur.get_or_insert_with(Vec::new).extend_from_slice(d),
                Ev::End | Ev::Begin => files.extend(cur.take()),
                _ => {}
            }
        }
        files
    }

    #[test]
    fn multipart_with_encodings() {
        let msg = b"From: a@b\r\nContent-Type: multipart/mixed;\r\n\tboundary=\"XX\"\r\nCc: x@y,\r\n z@w\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHello=20wor=\r\nld\r\nbye\r\n\r\n--XX\r\nContent-Type: text/plain; name=\"a.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8g\r\nd29ybGQ=\r\n--XX--\r\nepilogue\r\n";
        let evs = parse(msg);
        assert!(evs.contains(&Ev::Header("CC".into(), "x@y, z@w".into())));
        assert_eq!(data_of(&evs), vec![b"Hello world\r\nbye\r\n\r\n".to_vec(), b"hello world".to_vec()]);
        assert_eq!(evs.iter().filter(|e| **e == Ev::Begin).count(), 3);
        assert_eq!(evs.iter().filter(|e| **e == Ev::End).count(), 3);
    }

    #[test]
    fn top_level_text_keeps_every_crlf() {
        let evs = parse(b"Subject: hi\r\n\r\nline1\r\nline2");
        assert_eq!(data_of(&evs), vec![b"line1\r\nline2\r\n".to_vec()]);
    }
}
