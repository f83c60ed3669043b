//! SMTP: smtp.log, the MIME entities of each message as files (files.log), STARTTLS, BDAT, and the URLs
//! found in message bodies.
//!
//! Follows Zeek's `src/analyzer/protocol/smtp` (the command/reply state machine that decides when the
//! client is sending message data) and `scripts/base/protocols/smtp/{main,entities,files}.zeek` (what is
//! logged per transaction and how each header fills a column).

pub mod lines;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::RwLock;

use super::content_line::{ContentLine, LineEvent};
use super::files::FileTransfer;
use lines::{LineBuffer, StreamBytes};

use super::detect::lines;
use super::mime::{MimeEvent, MimeMessage, entity_file};
use super::{Analyzer, AnalyzerSpec, ConnId, Ctx, Proto, Signature};
use crate::logs::conn_fields;
use crate::logs::{Schema, Value, bytes_to_log_string, f};

pub static SMTP_LOG: Schema = Schema {
    path: "smtp",
    fields: conn_fields![
        f("trans_depth", "count"),
        f("helo", "string"),
        f("mailfrom", "string"),
        f("rcptto", "set[string]"),
        f("date", "string"),
        f("from", "string"),
        f("to", "set[string]"),
        f("cc", "set[string]"),
        f("reply_to", "string"),
        f("msg_id", "string"),
        f("in_reply_to", "string"),
        f("subject", "string"),
        f("x_originating_ip", "addr"),
        f("first_received", "string"),
        f("second_received", "string"),
        f("last_reply", "string"),
        f("path", "vector[addr]"),
        f("user_agent", "string"),
        f("tls", "bool"),
        f("fuids", "vector[string]"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "smtp",
    tcp_ports: &[25, 587],
    udp_ports: &[],
    detect: Some(Signature::both_sides(detect)),
    new: |_| Box::new(SmtpAnalyzer::default()),
    schemas: &[&SMTP_LOG, &crate::logs::FILES],
};

/// Zeek's `dpd_smtp_client` and `dpd_smtp_server` signatures: a client line starting (after blanks) with HELO or
/// EHLO, any case; a server starting with a `220` greeting. The client's requires the server's.
fn detect(proto: Proto, is_orig: bool, payload: &[u8]) -> bool {
    if proto != Proto::Tcp {
        return false;
    }
    if is_orig {
        return lines(payload).any(|line| {
            let text = trim_ascii_start(line);
            text.len() >= 4 && (text[..4].eq_ignore_ascii_case(b"HELO") || text[..4].eq_ignore_ascii_case(b"EHLO"))
        });
    }
    let text = trim_ascii_start(payload);
    text.starts_with(b"220") && text.get(3).is_some_and(u8::is_ascii_whitespace) || text.starts_with(b"220-")
}

fn trim_ascii_start(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &d[n..]
}

// ---------------------------------------------------------------------------------------------------
// URLs in message bodies
// ---------------------------------------------------------------------------------------------------

/// The URLs found in the text parts of one logged message, for detections such as "a URL from an
/// e-mail is visited later" (Zeek's policy/protocols/smtp/... scripts use `find_all_urls`).
#[derive(Debug, Clone, PartialEq)]
pub struct MailUrls {
    /// The smtp.log record's `ts` and `uid`.
    pub ts: f64,
    pub uid: String,
    pub mailfrom: Option<String>,
    pub urls: Vec<String>,
}

/// Where [`MailUrls`] go; unset by default (nothing is collected).
static URL_SINK: RwLock<Option<fn(MailUrls)>> = RwLock::new(None);

/// Registers the consumer of the URLs found in e-mail bodies (called once per logged message that has any).
pub fn set_url_sink(sink: fn(MailUrls)) {
    *URL_SINK.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sink);
}

/// Most URL bytes kept per MIME entity for URL extraction.
const MAX_URL_SCAN_BYTES: usize = 1 << 20;

/// The `http://`, `https://` and `ftp://` URLs in `text` (Zeek's `find_all_urls`, which stops a URL at
/// whitespace, quotes and angle brackets).
pub fn extract_urls(text: &[u8]) -> Vec<String> {
    const SCHEMES: &[&[u8]] = &[b"https://", b"http://", b"ftp://"];
    let mut urls = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let Some(scheme) =
            SCHEMES.iter().find(|s| text.len() - i >= s.len() && text[i..i + s.len()].eq_ignore_ascii_case(s))
        else {
            i += 1;
            continue;
        };
        let end = text[i..]
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b.is_ascii_control() || matches!(b, b'"' | b'\'' | b'<' | b'>'))
            .map_or(text.len(), |p| i + p);
        if end > i + scheme.len() {
            let url = bytes_to_log_string(&text[i..end]);
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        i = end.max(i + 1);
    }
    urls
}

// ---------------------------------------------------------------------------------------------------
// Address and e-mail helpers (Zeek's base/utils/email.zeek and addrs.zeek)
// ---------------------------------------------------------------------------------------------------

/// `extract_email_addrs_vec`: `local@domain` tokens delimited by `<,:` or blanks, stripped of delimiters.
pub fn extract_email_addrs(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let is_lead_delim = |c: u8| matches!(c, b'<' | b',' | b':' | b' ' | b'\t');
    let is_tail_delim = |c: u8| matches!(c, b'>' | b',' | b';' | b' ' | b'\t');
    let mut out = Vec::new();
    let mut n = 0;
    while n < b.len() {
        let local_start = if is_lead_delim(b[n]) { n + 1 } else { n };
        let local_len = b[local_start.min(b.len())..].iter().take_while(|&&c| !is_lead_delim(c) && c != b'@').count();
        let at = local_start + local_len;
        if local_len == 0 || b.get(at) != Some(&b'@') {
            n += 1;
            continue;
        }
        let domain_len = b[at + 1..].iter().take_while(|&&c| !is_tail_delim(c)).count();
        if domain_len == 0 {
            n += 1;
            continue;
        }
        let mut end = at + 1 + domain_len;
        if end < b.len() {
            end += 1; // the terminating delimiter is part of the match
        }
        let addr: String =
            s[n..end].chars().filter(|c| !matches!(c, '<' | '>' | ',' | ':' | ';' | ' ' | '\t')).collect();
        out.push(addr);
        n = end;
    }
    out
}

/// `split_mime_email_addresses`: the comma-separated parts of an address header (a quoted display name
/// may contain commas), trimmed.
pub fn split_mime_email_addresses(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut n = 0;
    while n < b.len() {
        let plain_end = n + b[n..].iter().take_while(|&&c| c != b',').count();
        let mut end = plain_end;
        if b[n] == b'"'
            && let Some(close) = b[n + 1..].iter().position(|&c| c == b'"')
        {
            let after_quote = n + 1 + close + 1;
            let tail = b[after_quote..].iter().take_while(|&&c| c != b',').count();
            if tail > 0 {
                end = end.max(after_quote + tail);
            }
        }
        if end == n {
            n += 1;
            continue;
        }
        insert_unique(&mut out, s[n..end].trim().to_string());
        n = end;
    }
    out
}

/// `extract_ip_addresses(input, check_wrapping)`: IPv4/IPv6 literals in a string; with `check_wrapping`
/// only those enclosed in matching brackets, parentheses, braces or spaces (or making up the whole input).
pub fn extract_ip_addresses(input: &str, check_wrapping: bool) -> Vec<String> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let end = [match_ipv4(b, i), match_ipv6(b, i)].into_iter().flatten().max();
        let Some(end) = end else {
            i += 1;
            continue;
        };
        let candidate = &input[i..end];
        if candidate.parse::<IpAddr>().is_ok() {
            let before = if i == 0 { None } else { b.get(i - 1).copied() };
            let after = b.get(end).copied();
            let wrapped = match (before, after) {
                (None, None) => true,
                (Some(p), Some(n)) => matches!((p, n), (b'[', b']') | (b'(', b')') | (b'{', b'}') | (b' ', b' ')),
                _ => false,
            };
            if !check_wrapping || wrapped {
                out.push(candidate.to_string());
            }
        }
        i = end;
    }
    out
}

/// The end of the longest dotted-quad at `i` (octets of one to three digits, at most 255 when three).
fn match_ipv4(b: &[u8], i: usize) -> Option<usize> {
    fn octet_lens(b: &[u8], i: usize) -> impl Iterator<Item = usize> + '_ {
        (1..=3).rev().filter(move |&n| {
            let Some(d) = b.get(i..i + n) else { return false };
            d.iter().all(u8::is_ascii_digit)
                && (n < 3 || std::str::from_utf8(d).ok().and_then(|s| s.parse::<u16>().ok()).is_some_and(|v| v <= 255))
        })
    }
    fn rest(b: &[u8], i: usize, octets_left: usize) -> Option<usize> {
        for n in octet_lens(b, i) {
            if octets_left == 1 {
                return Some(i + n);
            }
            if b.get(i + n) == Some(&b'.')
                && let Some(end) = rest(b, i + n + 1, octets_left - 1)
            {
                return Some(end);
            }
        }
        None
    }
    rest(b, i, 4)
}

/// The end of an IPv6 literal at `i`: the longest run of hex digits, colons and dots there that parses.
fn match_ipv6(b: &[u8], i: usize) -> Option<usize> {
    let run = b[i..].iter().take_while(|c| c.is_ascii_hexdigit() || **c == b':' || **c == b'.').count();
    (2..=run)
        .rev()
        .find(|&n| {
            let s = &b[i..i + n];
            s.contains(&b':') && std::str::from_utf8(s).ok().is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
        })
        .map(|n| i + n)
}

fn insert_unique(set: &mut Vec<String>, item: String) {
    if !set.contains(&item) {
        set.push(item);
    }
}

// ---------------------------------------------------------------------------------------------------
// Script-level state (Zeek's SMTP::Info and SMTP::State)
// ---------------------------------------------------------------------------------------------------

/// The address and path limits' weirds come from main.zeek's `Reporter::conn_weird(name, c)`, without a source
/// (the address-limits baseline's weird.log has `-`), unlike the transaction weirds it raises with "SMTP".
const SCRIPT_WEIRD: &str = "";
const MAX_RCPTTO_ADDRESSES: usize = 1000;
const MAX_TO_ADDRESSES: usize = 1000;
const MAX_CC_ADDRESSES: usize = 1000;
const MAX_PATH_LENGTH: usize = 1000;
const MAX_INVALID_MAIL_TRANSACTIONS: u64 = 25;

/// One transaction's smtp.log record in the making.
#[derive(Debug)]
struct Info {
    ts: f64,
    trans_depth: u64,
    helo: Option<String>,
    mailfrom: Option<String>,
    rcptto: Option<Vec<String>>,
    date: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
    cc: Option<Vec<String>>,
    reply_to: Option<String>,
    msg_id: Option<String>,
    in_reply_to: Option<String>,
    subject: Option<String>,
    x_originating_ip: Option<IpAddr>,
    first_received: Option<String>,
    second_received: Option<String>,
    last_reply: Option<String>,
    path: Vec<IpAddr>,
    user_agent: Option<String>,
    tls: bool,
    fuids: Vec<String>,
    has_client_activity: bool,
    process_smtp_headers: bool,
    entity_count: u64,
    urls: Vec<String>,
}

impl Info {
    /// Zeek's `new_smtp_log`.
    fn new(ts: f64, id: &ConnId, state: &SessionState) -> Self {
        Info {
            ts,
            trans_depth: state.messages_transferred + 1,
            helo: state.helo.clone(),
            mailfrom: None,
            rcptto: None,
            date: None,
            from: None,
            to: None,
            cc: None,
            reply_to: None,
            msg_id: None,
            in_reply_to: None,
            subject: None,
            x_originating_ip: None,
            first_received: None,
            second_received: None,
            last_reply: None,
            // The path always ends with the hosts of this connection.
            path: vec![id.resp_h, id.orig_h],
            user_agent: None,
            tls: false,
            fuids: Vec::new(),
            has_client_activity: false,
            process_smtp_headers: true,
            entity_count: 0,
            urls: Vec::new(),
        }
    }

    fn record(&self, ctx: &Ctx) -> Vec<Value> {
        let set = |s: &Option<Vec<String>>| s.as_ref().map_or(Value::Unset, |v| Value::str_set(v.iter().cloned()));
        let mut v = ctx.conn_columns(self.ts);
        v.push(Value::Count(self.trans_depth));
        v.push(Value::opt_str(self.helo.clone()));
        v.push(Value::opt_str(self.mailfrom.clone()));
        v.push(set(&self.rcptto));
        v.push(Value::opt_str(self.date.clone()));
        v.push(Value::opt_str(self.from.clone()));
        v.push(set(&self.to));
        v.push(set(&self.cc));
        v.push(Value::opt_str(self.reply_to.clone()));
        v.push(Value::opt_str(self.msg_id.clone()));
        v.push(Value::opt_str(self.in_reply_to.clone()));
        v.push(Value::opt_str(self.subject.clone()));
        v.push(self.x_originating_ip.map_or(Value::Unset, Value::Addr));
        v.push(Value::opt_str(self.first_received.clone()));
        v.push(Value::opt_str(self.second_received.clone()));
        v.push(Value::opt_str(self.last_reply.clone()));
        v.push(Value::Vector(self.path.iter().copied().map(Value::Addr).collect()));
        v.push(Value::opt_str(self.user_agent.clone()));
        v.push(Value::Bool(self.tls));
        v.push(Value::str_vec(self.fuids.iter().cloned()));
        v
    }

    /// Zeek's `mime_one_header` handlers of main.zeek (top-level headers only).
    fn on_header(&mut self, ctx: &mut Ctx, name: &str, value: &str) {
        if !self.process_smtp_headers {
            return;
        }
        let value_s = value.to_string();
        match name {
            "MESSAGE-ID" => self.msg_id = Some(value_s),
            "RECEIVED" => {
                if self.first_received.is_some() {
                    self.second_received = self.first_received.take();
                }
                self.first_received = Some(value_s);
                self.add_received_hop(ctx, value);
            }
            "IN-REPLY-TO" => self.in_reply_to = Some(value_s),
            "SUBJECT" => self.subject = Some(value_s),
            "FROM" => self.from = Some(value_s),
            "REPLY-TO" => self.reply_to = Some(value_s),
            "DATE" => self.date = Some(value_s),
            "TO" => add_addresses(
                ctx,
                self.to.get_or_insert_with(Vec::new),
                value,
                MAX_TO_ADDRESSES,
                "smtp_too_many_to_addresses",
            ),
            "CC" => add_addresses(
                ctx,
                self.cc.get_or_insert_with(Vec::new),
                value,
                MAX_CC_ADDRESSES,
                "smtp_too_many_cc_addresses",
            ),
            "X-ORIGINATING-IP" => {
                if let Some(a) = extract_ip_addresses(value, false).first().and_then(|a| a.parse().ok()) {
                    self.x_originating_ip = Some(a);
                }
            }
            "X-MAILER" | "USER-AGENT" | "X-USER-AGENT" => self.user_agent = Some(value_s),
            _ => {}
        }
    }

    /// The "Received: from" path (`SMTP::mail_path_capture = ALL_HOSTS`).
    fn add_received_hop(&mut self, ctx: &mut Ctx, value: &str) {
        let ips = extract_ip_addresses(value, true);
        let text_ip = if ips.len() > 1 { ips.get(1) } else { ips.first() };
        let Some(ip) = text_ip.and_then(|t| t.parse::<IpAddr>().ok()) else { return };
        if self.path.last() != Some(&ip) {
            if self.path.len() >= MAX_PATH_LENGTH {
                ctx.weird("smtp_max_path_length_exceeded", None, SCRIPT_WEIRD);
                return;
            }
            self.path.push(ip);
        }
    }
}

fn add_addresses(ctx: &mut Ctx, set: &mut Vec<String>, value: &str, max: usize, weird: &'static str) {
    for addr in split_mime_email_addresses(value) {
        if set.len() >= max {
            ctx.weird(weird, None, SCRIPT_WEIRD);
            break;
        }
        insert_unique(set, addr);
    }
}

/// Zeek's `SMTP::State`: what outlives one transaction.
#[derive(Debug, Default)]
struct SessionState {
    helo: Option<String>,
    messages_transferred: u64,
    trans_mail_from_seen: bool,
    trans_rcpt_to_seen: bool,
    invalid_transactions: u64,
    bdat_last_observed: bool,
    mime_depth: u64,
}

/// A MIME entity being received: where its body goes.
#[derive(Debug, Default)]
struct EntityCtx {
    filename: Option<String>,
    content_type: String,
    file: Option<FileTransfer>,
    text: Vec<u8>,
}

/// The script layer: reacts to the protocol events as Zeek's SMTP scripts do.
#[derive(Debug, Default)]
struct Script {
    info: Option<Info>,
    state: SessionState,
    entities: Vec<EntityCtx>,
    /// The analyzer was disabled after too many invalid transactions.
    disabled: bool,
}

impl Script {
    fn info(&mut self, ctx: &Ctx) -> &mut Info {
        let state = &self.state;
        self.info.get_or_insert_with(|| Info::new(ctx.ts, ctx.id, state))
    }

    /// Zeek's `smtp_message`: logs the transaction if the client did anything, and starts a new one.
    fn flush_message(&mut self, ctx: &mut Ctx) {
        if !self.info.as_ref().is_some_and(|i| i.has_client_activity) {
            return;
        }
        if let Some(info) = self.info.take() {
            ctx.log(&SMTP_LOG, info.record(ctx));
            publish_urls(ctx, &info);
        }
        self.info = Some(Info::new(ctx.ts, ctx.id, &self.state));
    }

    fn transaction_invalid(&mut self, ctx: &mut Ctx, addl: &str) {
        ctx.weird("smtp_mail_transaction_invalid", Some(addl.to_string()), "SMTP");
        self.state.invalid_transactions += 1;
        if self.state.invalid_transactions > MAX_INVALID_MAIL_TRANSACTIONS && !self.disabled {
            let n = self.state.invalid_transactions;
            ctx.weird(
                "smtp_excessive_invalid_mail_transactions",
                Some(format!("{n}/{MAX_INVALID_MAIL_TRANSACTIONS}")),
                "SMTP",
            );
            self.disabled = true;
        }
    }

    /// Zeek's `smtp_request` handler.
    fn on_request(&mut self, ctx: &mut Ctx, command: &str, arg: &str) {
        self.info(ctx);
        match command {
            "HELO" | "EHLO" => {
                self.state.helo = Some(arg.to_string());
                self.info(ctx).helo = Some(arg.to_string());
            }
            "RCPT" if arg.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("to:")) => {
                let mut weird = false;
                let info = self.info(ctx);
                let rcptto = info.rcptto.get_or_insert_with(Vec::new);
                for addr in extract_email_addrs(arg) {
                    if rcptto.len() >= MAX_RCPTTO_ADDRESSES {
                        weird = true;
                        break;
                    }
                    insert_unique(rcptto, strip_orcpt(&addr));
                }
                info.has_client_activity = true;
                if weird {
                    ctx.weird("smtp_too_many_rcptto_addresses", None, SCRIPT_WEIRD);
                }
                self.state.trans_rcpt_to_seen = true;
                if !self.state.trans_mail_from_seen {
                    self.transaction_invalid(ctx, "rcpt to missing mail from");
                }
            }
            "MAIL" if arg.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("from:")) => {
                // Flush the last message in case the server's acknowledgement was not seen.
                self.flush_message(ctx);
                let info = self.info(ctx);
                if let Some(from) = extract_email_addrs(arg).into_iter().next() {
                    info.mailfrom = Some(from);
                }
                info.has_client_activity = true;
                self.state.trans_mail_from_seen = true;
                self.state.trans_rcpt_to_seen = false;
            }
            "DATA" | "BDAT" => {
                if !self.state.trans_rcpt_to_seen {
                    self.transaction_invalid(ctx, "data missing rcpt to");
                }
                if command == "BDAT" && arg.ends_with(" LAST") {
                    self.state.trans_mail_from_seen = false;
                    self.state.trans_rcpt_to_seen = false;
                    self.state.bdat_last_observed = true;
                }
            }
            "." => {
                self.state.trans_mail_from_seen = false;
                self.state.trans_rcpt_to_seen = false;
            }
            _ => {}
        }
    }

    /// Zeek's two `smtp_reply` handlers (priority 5, then -5).
    fn on_reply(&mut self, ctx: &mut Ctx, code: u16, cmd: &str, msg: &str, cont_resp: bool) {
        self.info(ctx).last_reply = Some(format!("{code} {msg}"));
        if cmd == "." || (!cont_resp && cmd == "BDAT" && self.state.bdat_last_observed) {
            self.state.messages_transferred += 1;
            self.state.bdat_last_observed = false;
            self.flush_message(ctx);
            self.info = Some(Info::new(ctx.ts, ctx.id, &self.state));
        }
    }

    fn on_starttls(&mut self, ctx: &Ctx) {
        let info = self.info(ctx);
        info.tls = true;
        info.has_client_activity = true;
    }

    /// MIME events of the message being received (`mime_begin_entity`, `mime_one_header`, file data,
    /// `mime_end_entity`).
    fn on_mime(&mut self, ctx: &mut Ctx, is_orig: bool, event: MimeEvent) {
        match event {
            MimeEvent::BeginEntity => {
                let info = self.info(ctx);
                info.entity_count += 1;
                if info.entity_count > 1 {
                    info.process_smtp_headers = false;
                }
                self.state.mime_depth += 1;
                self.entities.push(EntityCtx::default());
            }
            MimeEvent::Header { name, value } => {
                if let Some(e) = self.entities.last_mut() {
                    match name {
                        "CONTENT-DISPOSITION" if has_param_name(value, "filename") => {
                            e.filename = filename_from_disposition(value)
                        }
                        "CONTENT-TYPE" => {
                            e.content_type = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                            if has_param_name(value, "name") {
                                e.filename = filename_from_disposition(value);
                            }
                        }
                        _ => {}
                    }
                }
                self.info(ctx).on_header(ctx, name, value);
            }
            MimeEvent::Data(data) => {
                let depth = self.state.mime_depth;
                let Some(e) = self.entities.last_mut() else { return };
                let fuids = self.info.as_mut().map(|info| &mut info.fuids);
                let file = entity_file(&mut e.file, ctx, "SMTP", is_orig, |file| {
                    file.depth = depth;
                    file.filename = e.filename.clone();
                    if let Some(fuids) = fuids {
                        fuids.push(file.fuid.clone());
                    }
                });
                file.data(ctx.ts, data);
                if (e.content_type.is_empty() || e.content_type.starts_with("text/"))
                    && e.text.len() < MAX_URL_SCAN_BYTES
                {
                    e.text.extend_from_slice(data);
                }
            }
            MimeEvent::EndEntity => {
                let Some(e) = self.entities.pop() else { return };
                if let Some(file) = e.file {
                    file.finish(ctx);
                }
                let urls = extract_urls(&e.text);
                let info = self.info(ctx);
                for url in urls {
                    insert_unique(&mut info.urls, url);
                }
            }
        }
    }
}

fn publish_urls(ctx: &Ctx, info: &Info) {
    if info.urls.is_empty() {
        return;
    }
    let sink = *URL_SINK.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(sink) = sink {
        sink(MailUrls {
            ts: info.ts,
            uid: ctx.uid.to_string(),
            mailfrom: info.mailfrom.clone(),
            urls: info.urls.clone(),
        });
    }
}

/// `gsub(addr, /ORCPT=rfc822;?/, "")`
fn strip_orcpt(addr: &str) -> String {
    addr.replace("ORCPT=rfc822;", "").replace("ORCPT=rfc822", "")
}

/// `/name[[:blank:]]*\*?=/` (case-insensitive) somewhere in a header value.
fn has_param_name(value: &str, name: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    lower.match_indices(name).any(|(i, _)| {
        let rest = lower[i + name.len()..].trim_start_matches([' ', '\t']);
        rest.starts_with('=') || rest.starts_with("*=")
    })
}

/// Zeek's `extract_filename_from_content_disposition`: the value of `filename=` / `name=`, unquoted,
/// with an RFC 2231 `charset''` prefix removed.
fn filename_from_disposition(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let key_end =
        ["filename*=", "filename=", "name*=", "name="].iter().find_map(|k| lower.find(k).map(|i| i + k.len()))?;
    let raw = value[key_end..].split(';').next().unwrap_or_default().trim();
    let unquoted = raw.trim_matches('"');
    let name = unquoted.split_once("''").map_or(unquoted, |(_, n)| n);
    Some(name.to_string())
}

// ---------------------------------------------------------------------------------------------------
// Protocol state machine (Zeek's SMTP_Analyzer)
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    ConnEstablishment,
    EndOfData,
    AuthAnswer,
    Word(&'static str),
}

impl Cmd {
    /// The command name passed to `smtp_reply`.
    fn name(self) -> &'static str {
        match self {
            Cmd::ConnEstablishment => ">",
            Cmd::EndOfData => ".",
            Cmd::AuthAnswer => "AUTH_ANSWER",
            Cmd::Word(w) => w,
        }
    }
}

/// The commands Zeek's SMTP analyzer knows (SMTP_cmd.def); others are "unknown command" and not reported.
const COMMANDS: &[&str] = &[
    "EHLO",
    "HELO",
    "MAIL",
    "RCPT",
    "DATA",
    "BDAT",
    "RSET",
    "SEND",
    "SOML",
    "SAML",
    "VRFY",
    "EXPN",
    "HELP",
    "NOOP",
    "QUIT",
    "TURN",
    "STARTTLS",
    "X-ANONYMOUSTLS",
    "AUTH",
    "ETRN",
];

/// Most commands waiting for a reply; Zeek drops the queue (with a weird) when a client sends more.
const MAX_PENDING_CMDS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Initiated,
    NotAvailable,
    Ready,
    MailOk,
    RcptOk,
    InData,
    /// Between `BDAT` chunks of a message, or in one.
    InBdat,
    AfterData,
    InAuth,
    InTls,
    Quit,
    AfterGap,
    GapRecovery,
}

pub struct SmtpAnalyzer {
    /// Zeek's SMTP analyzer splits both directions with NUL-sensitive ContentLine analyzers.
    lines: [ContentLine; 2],
    state: State,
    first_cmd: Option<Cmd>,
    pending_cmds: VecDeque<Cmd>,
    last_replied_cmd: Option<Cmd>,
    pending_reply: u16,
    confirmed: bool,
    /// The message whose data is arriving, and whether the originator sends it.
    mail: Option<(MimeMessage, bool)>,
    /// The message is being sent in BDAT chunks.
    bdat: Option<Bdat>,
    seen: StreamBytes,
    script: Script,
}

/// A message sent with BDAT (Zeek's `SMTP_BDAT_Analyzer`): the chunk's bytes still to come, whether it is the last
/// chunk, and the lines of the chunk data.
#[derive(Debug, Default)]
struct Bdat {
    remaining: u64,
    last: bool,
    lines: LineBuffer,
}

/// Zeek's `parse_bdat_arg`: `<chunk-size>[ LAST]` (LAST in any case), or why the argument is not that.
fn parse_bdat_arg(arg: &[u8]) -> Result<(u64, bool), &'static str> {
    // "18446744073709551615 LAST" is the longest argument that can be valid.
    const MAX_ARG_LEN: usize = 25;
    if arg.is_empty() || arg.len() > MAX_ARG_LEN {
        return Err("BDAT argument bad length");
    }
    if !arg[0].is_ascii_digit() {
        return Err("BDAT not followed by a valid chunk-size");
    }
    let digits = arg.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = &arg[digits..];
    if !rest.is_empty() && rest[0] != b' ' {
        return Err("BDAT chunk-size not valid");
    }
    let size = std::str::from_utf8(&arg[..digits])
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or("BDAT chunk-size too large")?;
    if rest.is_empty() {
        return Ok((size, false));
    }
    if rest.eq_ignore_ascii_case(b" LAST") { Ok((size, true)) } else { Err("BDAT chunk-size followed by junk") }
}

impl Default for SmtpAnalyzer {
    fn default() -> Self {
        SmtpAnalyzer {
            lines: [0, 1].map(|_| {
                let mut lines = ContentLine::default();
                lines.set_nul_sensitive();
                lines
            }),
            state: State::Initiated,
            first_cmd: Some(Cmd::ConnEstablishment),
            pending_cmds: VecDeque::new(),
            last_replied_cmd: None,
            pending_reply: 0,
            confirmed: false,
            mail: None,
            bdat: None,
            seen: StreamBytes::default(),
            script: Script::default(),
        }
    }
}

impl SmtpAnalyzer {
    fn request_event(&mut self, ctx: &mut Ctx, cmd: &str, arg: &[u8]) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm(SPEC.name);
        }
        self.script.on_request(ctx, &cmd.to_ascii_uppercase(), &bytes_to_log_string(arg));
    }

    fn new_cmd(&mut self, ctx: &mut Ctx, cmd: Cmd) {
        if self.first_cmd.is_none() {
            self.first_cmd = Some(cmd);
        } else {
            if self.pending_cmds.len() >= MAX_PENDING_CMDS {
                ctx.weird("smtp_excessive_pending_cmds", None, "SMTP");
                self.pending_cmds.clear();
            }
            self.pending_cmds.push_back(cmd);
        }
    }

    /// One client line; returns how many raw bytes after it were taken as BDAT chunk data.
    fn client_line(&mut self, ctx: &mut Ctx, is_orig: bool, line: &[u8], rest: &[u8]) -> usize {
        match self.state {
            State::AfterGap => 0,
            State::InData if line == b"." => {
                self.new_cmd(ctx, Cmd::EndOfData);
                self.update_state(ctx, Cmd::EndOfData, 0);
                self.request_event(ctx, ".", b"");
                0
            }
            State::InData => {
                let data = line.strip_prefix(b".").unwrap_or(line);
                if self.mail.is_none() {
                    self.begin_data(ctx, is_orig);
                }
                self.mail_line(ctx, data);
                0
            }
            State::InAuth => {
                self.new_cmd(ctx, Cmd::AuthAnswer);
                self.request_event(ctx, "**", line);
                self.end_unfinished_bdat(ctx);
                self.update_state(ctx, Cmd::AuthAnswer, 0);
                0
            }
            _ => {
                let word_len = line.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(line.len());
                let (word, after) = line.split_at(word_len);
                let arg = trim_ascii_start(after);
                let Some(cmd) = COMMANDS.iter().copied().find(|c| c.as_bytes().eq_ignore_ascii_case(word)) else {
                    return 0;
                };
                let cmd = Cmd::Word(cmd);
                self.new_cmd(ctx, cmd);
                self.request_event(ctx, cmd.name(), arg);
                if cmd == Cmd::Word("BDAT") {
                    return self.start_bdat_chunk(ctx, is_orig, arg, rest);
                }
                self.end_unfinished_bdat(ctx);
                self.update_state(ctx, cmd, 0);
                0
            }
        }
    }

    /// Another command while a BDAT message still waits for its last chunk: the message ends here.
    fn end_unfinished_bdat(&mut self, ctx: &mut Ctx) {
        if self.bdat.is_some() {
            ctx.weird("smtp_missing_bdat_last_chunk", None, "SMTP");
            self.end_data(ctx);
        }
    }

    /// `BDAT <size> [LAST]`: the next `size` bytes are message data, not commands (Zeek's `ProcessBdatArg`). An
    /// invalid argument leaves the state as it was. Returns how many bytes of `rest` were chunk data.
    fn start_bdat_chunk(&mut self, ctx: &mut Ctx, is_orig: bool, arg: &[u8], rest: &[u8]) -> usize {
        let (size, last) = match parse_bdat_arg(arg) {
            Ok(parsed) => parsed,
            Err(reason) => {
                ctx.weird("smtp_invalid_bdat_command", Some(reason.to_string()), "SMTP");
                return 0;
            }
        };
        if i64::try_from(size).is_err() {
            ctx.weird("smtp_huge_bdat_chunk", Some(size.to_string()), "SMTP");
            return 0;
        }
        if self.bdat.is_none() {
            self.begin_data(ctx, is_orig);
            self.bdat = Some(Bdat::default());
        }
        if let Some(bdat) = self.bdat.as_mut() {
            bdat.remaining = size;
            bdat.last = last;
        }
        self.update_state(ctx, Cmd::Word("BDAT"), 0);
        self.bdat_data(ctx, rest)
    }

    /// Feeds raw BDAT chunk bytes; returns how many of `data` belonged to the chunk. The message ends with its
    /// last chunk.
    fn bdat_data(&mut self, ctx: &mut Ctx, data: &[u8]) -> usize {
        let Some(mut bdat) = self.bdat.take() else { return 0 };
        let n = usize::try_from(bdat.remaining).unwrap_or(usize::MAX).min(data.len());
        bdat.lines.feed(&data[..n], |line, _| {
            self.mail_line(ctx, line);
            0
        });
        bdat.remaining -= n as u64;
        let complete = bdat.remaining == 0 && bdat.last;
        if complete {
            self.flush_bdat_line(ctx, &mut bdat.lines);
        }
        self.bdat = Some(bdat);
        if complete {
            self.update_state(ctx, Cmd::EndOfData, 0);
        }
        n
    }

    /// Delivers the unterminated line a chunk ended with, if any.
    fn flush_bdat_line(&mut self, ctx: &mut Ctx, lines: &mut LineBuffer) {
        if !lines.has_partial() {
            return;
        }
        lines.feed(b"\n", |line, _| {
            self.mail_line(ctx, line);
            0
        });
    }

    fn server_line(&mut self, ctx: &mut Ctx, line: &[u8]) {
        let code = match line {
            [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => 0,
        };
        if !(100..=599).contains(&code) {
            // Zeek formats its reason after replacing the code with -1.
            if self.seen.violation_counts() {
                // SMTP.cc passes the line along.
                ctx.violation_with_data("reply code -1 out of range", line);
            }
            return;
        }
        if self.pending_reply != 0 && code != self.pending_reply {
            self.pending_reply = 0;
        }
        if self.pending_reply == 0 {
            self.new_reply(ctx, code);
        }
        let msg = if line.get(3) == Some(&b'-') {
            self.pending_reply = code;
            trim_ascii_start(&line[4..])
        } else {
            self.pending_reply = 0;
            trim_ascii_start(&line[3..])
        };
        let cmd = self.last_replied_cmd.map_or("(UNKNOWN)", Cmd::name);
        let msg = bytes_to_log_string(msg);
        self.script.on_reply(ctx, code, cmd, &msg, self.pending_reply > 0);
        if self.state == State::InTls {
            // The rest is TLS: the transaction is final now (Zeek logs it when the connection ends), and
            // the engine may hand the stream over without finishing this analyzer.
            self.script.flush_message(ctx);
        }
    }

    fn new_reply(&mut self, ctx: &mut Ctx, code: u16) {
        if self.state == State::AfterGap {
            self.state = State::GapRecovery;
            self.request_event(ctx, "(UNKNOWN)", b"");
        }
        let cmd = self.first_cmd;
        self.last_replied_cmd = cmd;
        self.first_cmd = self.pending_cmds.pop_front();
        if let Some(cmd) = cmd {
            self.update_state(ctx, cmd, code);
        } else if self.state == State::GapRecovery && code == 354 {
            self.start_data_state(ctx);
        }
    }

    /// Zeek's `UpdateState`: the state follows the (command, reply) pair, with reply 0 meaning "the
    /// command was just sent".
    fn update_state(&mut self, ctx: &mut Ctx, cmd: Cmd, code: u16) {
        let in_data = self.state == State::InData;
        match (cmd, code) {
            (Cmd::ConnEstablishment, 0) => self.state = State::Initiated,
            (Cmd::ConnEstablishment, 421 | 554) => self.state = State::NotAvailable,
            (Cmd::Word("EHLO" | "HELO"), 0) => self.state = State::Ready,
            (Cmd::Word("EHLO" | "HELO"), 421 | 500 | 501 | 504 | 550) => self.state = State::Initiated,
            (Cmd::Word("MAIL" | "SEND" | "SOML" | "SAML"), 0) => self.state = State::MailOk,
            (Cmd::Word("MAIL" | "SEND" | "SOML" | "SAML"), 421 | 451 | 452 | 500 | 501 | 503 | 550 | 552 | 553)
                if !in_data =>
            {
                self.state = State::Ready
            }
            (Cmd::Word("RCPT"), 0) => self.state = State::RcptOk,
            (Cmd::Word("DATA"), 0) => self.start_data_state(ctx),
            (Cmd::Word("DATA"), 354) => {}
            (Cmd::Word("DATA"), _) => {
                if in_data {
                    self.end_data(ctx);
                }
                self.state = if code == 421 { State::Quit } else { State::Ready };
            }
            // The client completes the chunk in flight whatever the server replies.
            (Cmd::Word("BDAT"), 0) => self.state = State::InBdat,
            (Cmd::EndOfData, 0) => {
                self.end_data(ctx);
                self.state = State::AfterData;
            }
            (Cmd::EndOfData, _) => self.state = State::Ready,
            (Cmd::Word("RSET"), 0) => self.state = State::Ready,
            (Cmd::Word("QUIT"), 0) => self.state = State::Quit,
            (Cmd::Word("AUTH") | Cmd::AuthAnswer, 0) => {}
            (Cmd::Word("AUTH") | Cmd::AuthAnswer, 334) => self.state = State::InAuth,
            (Cmd::Word("AUTH") | Cmd::AuthAnswer, _) => self.state = State::Initiated,
            (Cmd::Word("STARTTLS" | "X-ANONYMOUSTLS"), 220) => self.start_tls(ctx),
            (_, 354) if self.state == State::GapRecovery => self.start_data_state(ctx),
            _ => {}
        }
    }

    fn start_data_state(&mut self, ctx: &mut Ctx) {
        self.state = State::InData;
        self.begin_data(ctx, true);
    }

    fn start_tls(&mut self, ctx: &mut Ctx) {
        self.state = State::InTls;
        ctx.start_tls();
        self.script.on_starttls(ctx);
    }

    /// Starts a message. The caller sets the state: DATA switches the client to message lines, BDAT does not.
    fn begin_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        if self.mail.is_some() {
            ctx.weird("smtp_nested_mail_transaction", None, "SMTP");
            self.end_data(ctx);
        }
        let script = &mut self.script;
        let message = MimeMessage::new(&mut |ev| script.on_mime(ctx, is_orig, ev));
        self.mail = Some((message, is_orig));
    }

    fn mail_line(&mut self, ctx: &mut Ctx, line: &[u8]) {
        let Some((message, is_orig)) = self.mail.as_mut() else { return };
        let is_orig = *is_orig;
        let script = &mut self.script;
        message.line(line, &mut |ev| script.on_mime(ctx, is_orig, ev));
    }

    fn end_data(&mut self, ctx: &mut Ctx) {
        if let Some(mut bdat) = self.bdat.take() {
            if bdat.remaining > 0 {
                ctx.weird("smtp_bdat_remaining_at_end_data", None, "SMTP");
            }
            if bdat.lines.has_partial() {
                ctx.weird("smtp_bdat_undelivered_at_done", None, "SMTP_BDAT");
                self.flush_bdat_line(ctx, &mut bdat.lines);
            }
        }
        let Some((message, is_orig)) = self.mail.take() else {
            ctx.weird("smtp_unmatched_end_of_data", None, "SMTP");
            return;
        };
        let script = &mut self.script;
        message.done(&mut |ev| script.on_mime(ctx, is_orig, ev));
    }
}

impl SmtpAnalyzer {
    /// Client and server lines through the direction's ContentLine splitter.
    fn split_lines(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        let mut lines = std::mem::take(&mut self.lines[usize::from(is_orig)]);
        lines.feed(data, |event, rest| {
            if self.state == State::InTls || self.script.disabled {
                return rest.len();
            }
            match event {
                LineEvent::Weird(name) => {
                    ctx.weird(name, None, "CONTENTLINE");
                    0
                }
                LineEvent::Line(line) if is_orig => self.client_line(ctx, is_orig, line, rest),
                LineEvent::Line(line) => {
                    self.server_line(ctx, line);
                    0
                }
            }
        });
        self.lines[usize::from(is_orig)] = lines;
    }
}

impl Analyzer for SmtpAnalyzer {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, mut data: &[u8]) {
        // Zeek's SMTP line splitters skip a connection joined mid-stream (`SetSkipPartial`).
        if self.state == State::InTls || self.script.disabled || ctx.partial {
            return;
        }
        self.seen.add(data.len() as u64);
        if is_orig && self.bdat.as_ref().is_some_and(|b| b.remaining > 0) {
            let used = self.bdat_data(ctx, data);
            data = &data[used..];
        }
        self.split_lines(ctx, is_orig, data);
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        // ContentLine's `EndpointEOF`: a last line without its end is delivered as a line.
        let in_chunk = is_orig && self.bdat.as_ref().is_some_and(|b| b.remaining > 0);
        if self.lines[usize::from(is_orig)].has_partial_line() && !in_chunk && !ctx.partial {
            self.split_lines(ctx, is_orig, b"\n");
        }
    }

    fn undelivered(&mut self, ctx: &mut Ctx, is_orig: bool, len: u64) {
        if len == 0 || self.state == State::InTls {
            return;
        }
        self.seen.add(len);
        if matches!(self.state, State::InData | State::InBdat) {
            if let Some(file) = self.script.entities.last_mut().and_then(|e| e.file.as_mut()) {
                file.gap(ctx.ts, len);
            }
            self.end_data(ctx);
        }
        self.lines[usize::from(is_orig)].clear_partial_line();
        self.pending_cmds.clear();
        self.first_cmd = None;
        self.last_replied_cmd = None;
        self.state = State::AfterGap;
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        if self.mail.is_some() {
            self.end_data(ctx);
        }
        // Zeek's `finalize_smtp`.
        if self.script.info.is_some() {
            self.script.flush_message(ctx);
        }
    }
}

/// Drives the analyzer over arbitrary bytes: the first byte picks split points, the rest alternates
/// between directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut SmtpAnalyzer::default(), Proto::Tcp, 25, data);
}

#[cfg(test)]
mod tests;
