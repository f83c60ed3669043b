//! SIP over UDP (port 5060, or wherever Zeek's signatures find it): sip.log, as Zeek's base/protocols/sip writes it.
//!
//! The parser is Zeek's binpac one (src/analyzer/protocol/sip/sip-protocol.pac, sip-analyzer.pac, SIP.cc). A
//! datagram longer than six bytes that starts with `SIP/` is a reply, any other a request, whichever side sent it
//! (SIP.cc's `real_orig`); a two-byte datagram starting with CR is ignored. Requests and replies are two byte
//! streams (binpac's `flowunit`), each a run of messages: a start line, header lines up to an empty line, then a
//! body of the length the stream's last `Content-Length` (or `L`) header gave, a length binpac keeps for the
//! stream's later messages too. A line ends at CR, LF or CR LF. What does not parse is a binpac exception: a
//! violation, and the stream's buffered bytes are dropped. A reply's status line confirms the protocol.
//!
//! The log follows the script (scripts/base/protocols/sip/main.zeek, [`Script`]): pending records by transaction
//! number, a reply's record written at the end of every reply (a provisional `100 Trying` and the final `200 OK`
//! both write the request's record, as it stands then), and what is still pending written when the connection
//! ends.

use std::collections::BTreeMap;

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static SIP_LOG: Schema = Schema {
    path: "sip",
    fields: conn_fields![
        f("trans_depth", "count"),
        f("method", "string"),
        f("uri", "string"),
        f("date", "string"),
        f("request_from", "string"),
        f("request_to", "string"),
        f("response_from", "string"),
        f("response_to", "string"),
        f("reply_to", "string"),
        f("call_id", "string"),
        f("seq", "string"),
        f("subject", "string"),
        f("request_path", "vector[string]"),
        f("response_path", "vector[string]"),
        f("user_agent", "string"),
        f("status_code", "count"),
        f("status_msg", "string"),
        f("warning", "string"),
        f("request_body_len", "count"),
        f("response_body_len", "count"),
        f("content_type", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "sip",
    tcp_ports: &[],
    udp_ports: &[5060],
    detect: Some(Signature::either_side(detect_sip)),
    new: |_| Box::<Sip>::default(),
    schemas: &[&SIP_LOG],
};

const SOURCE: &str = "SIP";
/// Longest line buffered while it waits for its end: a stream that sends more stops (binpac's buffer grows to
/// megabytes; a bound keeps one connection from holding them).
const MAX_LINE: usize = 64 << 10;
/// The methods main.zeek's `sip_methods` knows; any other is an `unknown_SIP_method` weird.
const KNOWN_METHODS: [&[u8]; 8] =
    [b"REGISTER", b"INVITE", b"ACK", b"CANCEL", b"BYE", b"OPTIONS", b"NOTIFY", b"SUBSCRIBE"];

/// Why bytes are not SIP (binpac's exceptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("Binpac exception: SIP request line is not a method, URI and SIP version")]
    BadRequestLine,
    #[error("Binpac exception: SIP status line is not a SIP version and a three-digit status")]
    BadStatusLine,
    #[error("Binpac exception: SIP header line is not a name, ':' and a value")]
    BadHeader,
    #[error("Binpac exception: negative SIP Content-Length")]
    NegativeContentLength,
    #[error("SIP line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// What the parser reports, in order: binpac's events for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// `sip_request`; `junk` is what came before the method (a `sip_junk_before_request` weird).
    Request { junk: &'a [u8], method: &'a [u8], uri: &'a [u8] },
    /// `sip_reply` (which confirms).
    Reply { code: u64, reason: &'a [u8] },
    /// `sip_header`, the name as sent.
    Header { name: &'a [u8], value: &'a [u8] },
    /// `sip_end_entity`: the body is over.
    End,
}

/// Where a stream is in its current message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Position {
    #[default]
    StartLine,
    Headers,
    /// This many body bytes are still to come (they are skipped: nothing logs them).
    Body(usize),
}

/// One of the two byte streams (requests or replies).
#[derive(Debug, Default)]
struct Stream {
    /// An incomplete line carried over from earlier datagrams.
    partial: Vec<u8>,
    position: Position,
    /// binpac's flow member `content_length`: set by every `Content-Length` or `L` header, never reset.
    content_length: i32,
}

impl Stream {
    /// Parses `data` (requests when `requests`), reporting each part to `on`; on an error the stream starts afresh
    /// with the next datagram, as binpac discards its buffer.
    fn feed(&mut self, data: &[u8], requests: bool, on: &mut impl FnMut(Part<'_>)) -> Result<(), SipError> {
        let carried;
        let input = if self.partial.is_empty() {
            data
        } else {
            self.partial.extend_from_slice(data);
            carried = std::mem::take(&mut self.partial);
            &carried[..]
        };
        match self.parse(input, requests, on) {
            Ok(used) if input.len() - used > MAX_LINE => {
                *self = Stream { content_length: self.content_length, ..Stream::default() };
                Err(SipError::LineTooLong)
            }
            Ok(used) => {
                self.partial = input[used..].to_vec();
                Ok(())
            }
            Err(e) => {
                self.position = Position::StartLine;
                Err(e)
            }
        }
    }

    /// Parses what `input` completes; how many bytes it used (the rest is an incomplete line).
    fn parse(&mut self, input: &[u8], requests: bool, on: &mut impl FnMut(Part<'_>)) -> Result<usize, SipError> {
        let mut at = 0;
        loop {
            match self.position {
                Position::Body(left) => {
                    let skipped = left.min(input.len() - at);
                    at += skipped;
                    if skipped < left {
                        self.position = Position::Body(left - skipped);
                        return Ok(at);
                    }
                    self.position = Position::StartLine;
                    on(Part::End);
                }
                Position::StartLine | Position::Headers => {
                    let Some((line, len)) = next_line(&input[at..]) else { return Ok(at) };
                    at += len;
                    self.line(line, requests, on)?;
                }
            }
        }
    }

    /// One whole line of the start line or the headers.
    fn line(&mut self, line: &[u8], requests: bool, on: &mut impl FnMut(Part<'_>)) -> Result<(), SipError> {
        if self.position == Position::StartLine {
            on(if requests { request_line(line)? } else { status_line(line)? });
            self.position = Position::Headers;
        } else if line.is_empty() {
            let body = usize::try_from(self.content_length).map_err(|_| SipError::NegativeContentLength)?;
            self.position = Position::Body(body);
        } else {
            let (name, value) = header_line(line)?;
            if name == b"Content-Length" || name == b"L" {
                self.content_length = strtol_as_int(value);
            }
            on(Part::Header { name, value });
        }
        Ok(())
    }
}

/// The first line of `data` and the bytes it takes with its end (binpac's CR-or-LF line breaking: CR LF is one
/// end); `None` until the end is there (a CR last in `data` may still be followed by LF).
fn next_line(data: &[u8]) -> Option<(&[u8], usize)> {
    let end = memchr::memchr2(b'\r', b'\n', data)?;
    match (data[end], data.get(end + 1)) {
        (b'\r', None) => None,
        (b'\r', Some(b'\n')) => Some((&data[..end], end + 2)),
        _ => Some((&data[..end], end + 1)),
    }
}

/// The longest prefix of bytes that satisfy `accept`, and the rest (binpac's prefix match of a character class
/// repeated).
fn span(data: &[u8], accept: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    data.split_at(data.iter().take_while(|&&b| accept(b)).count())
}

fn skip_blanks(data: &[u8]) -> &[u8] {
    span(data, |b| b == b' ' || b == b'\t').1
}

/// `SIP_TOKEN`: `[a-zA-Z0-9_.!%*+`'~-]`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_.!%*+`'~-".contains(&b)
}

/// `SIP_Version`: `SIP/` and `[0-9]+\.[0-9]+`, and what follows.
fn sip_version(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(b"SIP/")?;
    let (major, rest) = span(rest, |b| b.is_ascii_digit());
    let (minor, rest) = span(rest.strip_prefix(b".")?, |b| b.is_ascii_digit());
    (!major.is_empty() && !minor.is_empty()).then_some(rest)
}

/// `SIP_RequestLine`: junk (anything not a token), a method token, blanks, a URI (`[[:alnum:]@[:punct:]]+`),
/// blanks, the version (the rest of the line is not looked at).
fn request_line(line: &[u8]) -> Result<Part<'_>, SipError> {
    let (junk, rest) = span(line, |b| !is_token(b));
    let (method, rest) = span(rest, is_token);
    let (uri, rest) = span(skip_blanks(rest), |b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    match sip_version(skip_blanks(rest)) {
        Some(_) if !method.is_empty() && !uri.is_empty() => Ok(Part::Request { junk, method, uri }),
        _ => Err(SipError::BadRequestLine),
    }
}

/// `SIP_ReplyLine`: the version, blanks, a three-digit status, blanks, the reason.
fn status_line(line: &[u8]) -> Result<Part<'_>, SipError> {
    let rest = skip_blanks(sip_version(line).ok_or(SipError::BadStatusLine)?);
    match rest {
        [a, b, c, reason @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            let code = [a, b, c].iter().fold(0, |n, &&d| n * 10 + u64::from(d - b'0'));
            Ok(Part::Reply { code, reason: skip_blanks(reason) })
        }
        _ => Err(SipError::BadStatusLine),
    }
}

/// `SIP_Header`: a name (`[^: \t]+`), blanks, `:`, blanks, the rest of the line as the value.
fn header_line(line: &[u8]) -> Result<(&[u8], &[u8]), SipError> {
    let (name, rest) = span(line, |b| !matches!(b, b':' | b' ' | b'\t'));
    match skip_blanks(rest).strip_prefix(b":") {
        Some(value) if !name.is_empty() => Ok((name, skip_blanks(value))),
        _ => Err(SipError::BadHeader),
    }
}

/// binpac's `bytestring_to_int(value, 10)`: C's `strtol` (leading white space, a sign, the digits up to the first
/// other byte; clamped to a `long`), returned as an `int`.
fn strtol_as_int(value: &[u8]) -> i32 {
    let rest = span(value, |b| b.is_ascii_whitespace() || b == 0x0b).1;
    let (negative, rest) = match rest {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, rest),
    };
    let magnitude = span(rest, |b| b.is_ascii_digit())
        .0
        .iter()
        .fold(0i64, |n, &d| n.saturating_mul(10).saturating_add(i64::from(d - b'0')));
    // The C cast from `long` to `int` keeps the low 32 bits.
    (if negative { magnitude.saturating_neg() } else { magnitude }) as i32
}

/// Zeek's `to_count` of a header value: leading white space skipped, then only digits; anything else is 0 (and an
/// error message in Zeek's reporter).
fn to_count(value: &[u8]) -> u64 {
    let digits = span(value, |b| b.is_ascii_whitespace()).1;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    digits.iter().fold(0u64, |n, &d| n.saturating_mul(10).saturating_add(u64::from(d - b'0')))
}

/// `split_string1(value, /;[ ]?<param>/)[0]`: the value up to the first `;<param>` or `; <param>`.
fn before_parameter<'a>(value: &'a [u8], param: &[u8]) -> &'a [u8] {
    let cut = memchr::memchr_iter(b';', value).find(|&at| {
        let after = &value[at + 1..];
        after.starts_with(param) || after.strip_prefix(b" ").is_some_and(|a| a.starts_with(param))
    });
    cut.map_or(value, |at| &value[..at])
}

/// zeek::String::Render of the junk before a request: backslashes doubled, bytes outside printable ASCII as `\xNN`.
fn render(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, &b| {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
        out
    })
}

/// main.zeek's `SIP::Info`: one request/reply transaction.
#[derive(Debug, Clone, Default)]
struct Info {
    ts: f64,
    trans_depth: u64,
    method: Option<String>,
    uri: Option<String>,
    date: Option<String>,
    request_from: Option<String>,
    request_to: Option<String>,
    response_from: Option<String>,
    response_to: Option<String>,
    reply_to: Option<String>,
    call_id: Option<String>,
    seq: Option<String>,
    subject: Option<String>,
    request_path: Vec<String>,
    response_path: Vec<String>,
    user_agent: Option<String>,
    status_code: Option<u64>,
    status_msg: Option<String>,
    warning: Option<String>,
    request_body_len: Option<u64>,
    response_body_len: Option<u64>,
    content_type: Option<String>,
}

impl Info {
    fn record(&self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.push(Value::Count(self.trans_depth));
        for s in [
            &self.method,
            &self.uri,
            &self.date,
            &self.request_from,
            &self.request_to,
            &self.response_from,
            &self.response_to,
            &self.reply_to,
            &self.call_id,
            &self.seq,
            &self.subject,
        ] {
            v.push(Value::opt_str(s.clone()));
        }
        v.push(Value::str_vec(self.request_path.iter().cloned()));
        v.push(Value::str_vec(self.response_path.iter().cloned()));
        v.push(Value::opt_str(self.user_agent.clone()));
        v.push(Value::opt_count(self.status_code));
        v.push(Value::opt_str(self.status_msg.clone()));
        v.push(Value::opt_str(self.warning.clone()));
        v.push(Value::opt_count(self.request_body_len));
        v.push(Value::opt_count(self.response_body_len));
        v.push(Value::opt_str(self.content_type.clone()));
        v
    }
}

/// main.zeek's `SIP::State`. `c$sip` is not kept: every handler points it at a pending record ([`Script::set_state`])
/// before it uses it.
#[derive(Debug, Default)]
struct Script {
    pending: BTreeMap<u64, Info>,
    current_request: u64,
    current_response: u64,
}

impl Script {
    /// `set_state`: points `c$sip` at the pending record of the current request (or response), made if missing.
    fn set_state(&mut self, ts: f64, is_request: bool) -> &mut Info {
        let key = if is_request { self.current_request } else { self.current_response };
        let trans_depth = self.current_request;
        self.pending.entry(key).or_insert_with(|| Info { ts, trans_depth, ..Info::default() })
    }
}

/// The analyzer: the two streams and the script's state (`c$sip_state`, absent until the first event and after
/// a dialog ended).
#[derive(Default)]
struct Sip {
    /// Requests, then replies.
    streams: [Stream; 2],
    script: Option<Script>,
}

impl Sip {
    fn handle(&mut self, ctx: &mut Ctx, is_request: bool, part: Part<'_>) {
        let ts = ctx.ts;
        match part {
            Part::Request { junk, method, uri } => {
                if !junk.is_empty() {
                    ctx.weird("sip_junk_before_request", Some(render(junk)), SOURCE);
                }
                let info = self.script.get_or_insert_default().set_state(ts, true);
                info.method = Some(bytes_to_log_string(method));
                info.uri = Some(bytes_to_log_string(uri));
                if !KNOWN_METHODS.contains(&method) {
                    ctx.weird("unknown_SIP_method", Some(bytes_to_log_string(method)), "");
                }
            }
            Part::Reply { code, reason } => {
                ctx.confirm("sip");
                let info = self.script.get_or_insert_default().set_state(ts, false);
                info.status_code = Some(code);
                info.status_msg = Some(bytes_to_log_string(reason));
            }
            Part::Header { name, value } => self.header(ts, is_request, &name.to_ascii_uppercase(), value),
            Part::End => self.end_entity(ctx, is_request),
        }
    }

    /// `sip_header`: a new transaction starts when the current one is no longer pending.
    fn header(&mut self, ts: f64, is_request: bool, name: &[u8], value: &[u8]) {
        let script = self.script.get_or_insert_default();
        let current = if is_request { &mut script.current_request } else { &mut script.current_response };
        if !script.pending.contains_key(current) {
            *current += 1;
        }
        let info = script.set_state(ts, is_request);
        let text = || bytes_to_log_string(value);
        let without = |param: &[u8]| bytes_to_log_string(before_parameter(value, param));
        match (is_request, name) {
            (true, b"CALL-ID") => info.call_id = Some(text()),
            (true, b"CONTENT-LENGTH" | b"L") => info.request_body_len = Some(to_count(value)),
            (true, b"CSEQ") => info.seq = Some(text()),
            (true, b"DATE") => info.date = Some(text()),
            (true, b"FROM" | b"F") => info.request_from = Some(without(b"tag=")),
            (true, b"REPLY-TO") => info.reply_to = Some(text()),
            (true, b"SUBJECT" | b"S") => info.subject = Some(text()),
            (true, b"TO" | b"T") => info.request_to = Some(text()),
            (true, b"USER-AGENT") => info.user_agent = Some(text()),
            (true, b"VIA" | b"V") => info.request_path.push(without(b"branch")),
            (false, b"CONTENT-LENGTH" | b"L") => info.response_body_len = Some(to_count(value)),
            (false, b"CONTENT-TYPE" | b"C") => info.content_type = Some(text()),
            (false, b"WARNING") => info.warning = Some(text()),
            (false, b"FROM" | b"F") => info.response_from = Some(without(b"tag=")),
            (false, b"TO" | b"T") => info.response_to = Some(text()),
            (false, b"VIA" | b"V") => info.response_path.push(without(b"branch")),
            _ => {}
        }
    }

    /// `sip_end_entity`: the end of a reply writes its transaction's record; a final status retires it, and a
    /// reply without a request (or the final answer to a BYE) ends the dialog's state.
    fn end_entity(&mut self, ctx: &mut Ctx, is_request: bool) {
        let script = self.script.get_or_insert_default();
        let info = script.set_state(ctx.ts, is_request).clone();
        if is_request {
            return;
        }
        ctx.log(&SIP_LOG, info.record(ctx));
        // An unset status (a record no reply line touched) stops Zeek's handler here with a runtime error.
        let Some(code) = info.status_code else { return };
        if !(100..200).contains(&code) {
            script.pending.remove(&script.current_response);
        }
        let bye_answered = info.method.as_deref() == Some("BYE") && (200..300).contains(&code);
        if info.method.is_none() || bye_answered {
            // flush_pending: every pending record but transaction 0's.
            for info in script.pending.range(1..).map(|(_, info)| info) {
                ctx.log(&SIP_LOG, info.record(ctx));
            }
            self.script = None;
        }
    }
}

impl Analyzer for Sip {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, _is_orig: bool, data: &[u8]) {
        if data.len() == 2 && data[0] == b'\r' {
            return;
        }
        let is_request = !(data.len() > 6 && data.starts_with(b"SIP/"));
        let mut stream = std::mem::take(&mut self.streams[usize::from(!is_request)]);
        let result = stream.feed(data, is_request, &mut |part| self.handle(ctx, is_request, part));
        self.streams[usize::from(!is_request)] = stream;
        if let Err(e) = result {
            ctx.violation(e.to_string());
        }
    }

    /// The removal hook `finalize_sip`: every pending record.
    fn finish(&mut self, ctx: &mut Ctx) {
        if let Some(script) = self.script.take() {
            for info in script.pending.values() {
                ctx.log(&SIP_LOG, info.record(ctx));
            }
        }
    }
}

/// Zeek's SIP signatures (base/protocols/sip/dpd.sig) on one datagram: a request (`.* SIP/d.d\r\n`: the first
/// line ends with the version) or a reply (` ?SIP/d.d` then `\r\n` or a status between blanks).
fn detect_sip(proto: Proto, _is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Udp && (request_signature(data) || reply_signature(data))
}

fn request_signature(data: &[u8]) -> bool {
    let Some(end) = memchr::memchr(b'\n', data) else { return false };
    let Some(line) = data[..end].strip_suffix(b"\r") else { return false };
    match line {
        [.., b' ', b'S', b'I', b'P', b'/', major, b'.', minor] => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

fn reply_signature(data: &[u8]) -> bool {
    let data = data.strip_prefix(b" ").unwrap_or(data);
    match data {
        [b'S', b'I', b'P', b'/', major, b'.', minor, rest @ ..] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            matches!(rest, [b'\r', b'\n', ..])
                || matches!(rest, [b' ', a, b, c, b' ', ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()))
        }
        _ => false,
    }
}

/// Fuzz entry point: arbitrary datagrams in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Sip::default(), Proto::Udp, 5060, data);
}

#[cfg(test)]
mod tests;
