//! HTTP analyzer: http.log (and files.log for bodies) as Zeek writes them.
//!
//! The layering follows Zeek: per direction a [`ContentLine`] splits the stream into lines or
//! plain body runs; the analyzer state machine (HTTP.cc's `HTTP_Analyzer`) parses request and status
//! lines, pairs requests with replies and drives a [`message::Message`] per request/reply; the message
//! emits events that [`script::Script`] turns into http.log records the way main.zeek does, and that
//! become files (fuids, mime types, files.log).

mod files;
mod inflate;
mod message;
mod parse;
mod script;
mod unanswered;

use std::sync::RwLock;

use super::content_line::{ContentLine, Piece};
use super::proxy_tunnels::{self, ProxyType};
use super::{Analyzer, AnalyzerSpec, ConnId, Ctx, Proto, Signature, websocket};
use crate::logs::{FILES, bytes_to_log_string};
use files::OpenFile;
use message::{BodyExpect, ConnFlags, Io, Message, MsgEvent, UpgradeProtocol};
use parse::{VERSION_09, VERSION_UNSET, Version};
pub use script::HTTP;
// Also reads the credentials of other protocols (POP3 AUTH PLAIN).
pub(crate) use script::decode_base64;

/// Weird source for analyzer weirds (Zeek's analyzer name).
const SOURCE: &str = "HTTP";
/// Weirds raised by the script layer carry no source; the log writer shows `-`.
const SCRIPT_SOURCE: &str = "";

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "http",
    tcp_ports: &[80, 81, 631, 1080, 3128, 8000, 8080, 8888],
    udp_ports: &[],
    detect: Some(Signature::either_side(detect)),
    new: |_| Box::new(Http::default()),
    schemas: &[&HTTP, &FILES],
};

/// The request methods of Zeek's `dpd_http_client` signature (IANA's registry, WebDAV and Exchange extensions,
/// Microsoft's RPC over HTTP).
const DPD_METHODS: &[&[u8]] = &[
    b"OPTIONS",
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"ACL",
    b"BASELINE-CONTROL",
    b"BIND",
    b"CHECKIN",
    b"CHECKOUT",
    b"CONNECT",
    b"COPY",
    b"LABEL",
    b"LINK",
    b"LOCK",
    b"MERGE",
    b"MKACTIVITY",
    b"MKCALENDAR",
    b"MKCOL",
    b"MKREDIRECTREF",
    b"MOVE",
    b"ORDERPATCH",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"REBIND",
    b"REPORT",
    b"SEARCH",
    b"TRACE",
    b"UNBIND",
    b"UNCHECKOUT",
    b"UNLINK",
    b"UNLOCK",
    b"UPDATE",
    b"VERSION-CONTROL",
    b"BCOPY",
    b"BDELETE",
    b"BMOVE",
    b"BPROPFIND",
    b"BPROPPATCH",
    b"NOTIFY",
    b"POLL",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"X-MS-ENUMATTS",
    b"MKWORKSPACE",
    b"RPC_IN_DATA",
    b"RPC_OUT_DATA",
    b"QUERY",
];

/// Zeek's `dpd_http_client` and `dpd_http_server` signatures, each enough alone (a large request can fill the
/// detection buffer before the reply comes): a request method at the start of the client's payload, or
/// `HTTP/<digit>` (any case) at the start of the server's.
fn detect(proto: Proto, is_orig: bool, payload: &[u8]) -> bool {
    if proto != Proto::Tcp {
        return false;
    }
    if !is_orig {
        return payload.len() > 5 && payload[..5].eq_ignore_ascii_case(b"HTTP/") && payload[5].is_ascii_digit();
    }
    let rest = &payload[payload.iter().take_while(|c| c.is_ascii_whitespace() || **c == 0x0b).count()..];
    // Every method starts with a capital letter: binary protocols fail here without walking the list.
    rest.first().is_some_and(u8::is_ascii_uppercase) && DPD_METHODS.iter().any(|m| rest.starts_with(m))
}

/// Parser state of one direction (`request_state` / `reply_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Expect {
    #[default]
    FirstLine,
    Message,
    Nothing,
    /// Replies to an HTTP/0.9 request: raw data until the connection closes.
    Http09,
}

#[derive(Default)]
struct Direction {
    lines: ContentLine,
    /// The message in progress, boxed: most of a connection's life has none (the box is freed once the message
    /// finishes, `message_finished` remembers that one was there).
    message: Option<Box<Message>>,
    /// The last message finished and was freed: "a finished message" is not "no message" to the parser (the
    /// HTTP/0.9 path and the unexpected-data weird tell them apart).
    message_finished: bool,
    state: Expect,
    ongoing: bool,
    /// A content gap outside a body ended this direction for good (ContentLine's `SetSkipDeliveries`).
    skip_deliveries: bool,
    version: Version,
    /// Boxed: open only while an entity's content flows, and as large as the rest of the direction.
    file: Option<Box<OpenFile>>,
}

thread_local! {
    /// One spare event queue per analysis thread: every line and body run of every connection queues events, and
    /// a buffer per call (or kept per connection) would cost an allocation per packet (or memory per connection).
    static SPARE_EVENTS: std::cell::Cell<Vec<MsgEvent>> = const { std::cell::Cell::new(Vec::new()) };
}

/// An empty event queue, the thread's spare when it is free (nested calls get a new one).
fn take_event_buffer() -> Vec<MsgEvent> {
    SPARE_EVENTS.with(std::cell::Cell::take)
}

/// Hands a drained queue back as the thread's spare.
fn return_event_buffer(mut events: Vec<MsgEvent>) {
    events.clear();
    SPARE_EVENTS.with(|spare| spare.set(events));
}

impl Direction {
    /// A message was started and not discarded, whether it finished or not.
    fn has_message(&self) -> bool {
        self.message.is_some() || self.message_finished
    }

    /// Frees the message once it finished: a finished message ignores whatever it is given.
    fn free_finished_message(&mut self) {
        if self.message.as_ref().is_some_and(|m| m.finished()) {
            self.message = None;
            self.message_finished = true;
        }
    }

    fn discard_message(&mut self) {
        self.message = None;
        self.message_finished = false;
    }
}

/// A script-level weird (`Reporter::conn_weird`): name and addl.
type ScriptWeird = (&'static str, Option<String>);

#[derive(Default)]
struct Http {
    orig: Direction,
    resp: Direction,
    flags: ConnFlags,
    num_requests: u64,
    /// Requests not answered yet, oldest first: whether each was a HEAD (all a reply needs of its request; the
    /// method's bytes cost a heap string per request in flight).
    unanswered: unanswered::Unanswered,
    connect_request: bool,
    /// Whether the rest of the connection is still HTTP.
    switch: Switch,
    confirmed: bool,
    script: script::Script,
    /// What few connections need, boxed while there is some: two `Vec`s inline would keep 48 bytes (and their
    /// capacity for good) in every connection.
    rare: Option<Box<Rare>>,
}

/// Whether the connection still speaks HTTP.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Switch {
    #[default]
    Http,
    /// A CONNECT or an upgrade succeeded: the rest goes to this protocol's analyzer (a CONNECT's is `Other`, found
    /// by content detection) once the delivery that ended HTTP is split.
    Pending(UpgradeProtocol),
    HandedOver,
}

#[derive(Default)]
struct Rare {
    /// Script weirds are queued behind the analyzer's own, as Zeek's event queue orders them.
    script_weirds: Vec<ScriptWeird>,
    /// Files of 206 replies that outlived their entity.
    held_files: Vec<HeldFile>,
    /// The `Sec-WebSocket-*` headers, and the request a 101 answered, for websocket.log.
    websocket: Option<Box<websocket::Handshake>>,
}

/// A 206 reply's file left open after its entity: Zeek ends it once complete, or when it times out.
struct HeldFile {
    /// The URL naming it when it came from a range request (a later part of that URL continues it).
    url: Option<String>,
    file: Box<OpenFile>,
    total_bytes: Option<u64>,
}

impl Http {
    fn dir(&mut self, is_orig: bool) -> &mut Direction {
        if is_orig { &mut self.orig } else { &mut self.resp }
    }

    /// Runs `f` on a direction's message with the I/O it needs, then handles what it emitted.
    fn with_message(&mut self, ctx: &mut Ctx, is_orig: bool, f: impl FnOnce(&mut Message, &mut Io)) {
        self.flags.framing_version = if self.orig.ongoing { self.orig.version } else { self.resp.version };
        let dir = if is_orig { &mut self.orig } else { &mut self.resp };
        let Some(message) = dir.message.as_mut() else { return };
        let mut events = take_event_buffer();
        let mut io = Io { lines: &mut dir.lines, events: &mut events, flags: &mut self.flags, is_orig };
        f(message, &mut io);
        dir.free_finished_message();
        self.handle_events(ctx, is_orig, events);
    }

    fn new_message(&mut self, ctx: &mut Ctx, is_orig: bool, expect: BodyExpect) {
        let mut events = take_event_buffer();
        let dir = if is_orig { &mut self.orig } else { &mut self.resp };
        if dir.message.is_some() {
            ctx.weird("HTTP_overlapping_messages", None, SOURCE);
        }
        let mut io = Io { lines: &mut dir.lines, events: &mut events, flags: &mut self.flags, is_orig };
        dir.message = Some(Box::new(Message::new(&mut io, expect)));
        dir.message_finished = false;
        self.handle_events(ctx, is_orig, events);
    }

    fn handle_events(&mut self, ctx: &mut Ctx, is_orig: bool, mut events: Vec<MsgEvent>) {
        for event in events.drain(..) {
            match event {
                MsgEvent::BeginEntity => self.script.begin_entity(ctx.ts, is_orig),
                MsgEvent::Header(h) => {
                    if !is_orig && h.name().eq_ignore_ascii_case(b"server") {
                        report_server(ctx, h.value());
                    }
                    if h.name().len() > 14 && h.name()[..14].eq_ignore_ascii_case(b"sec-websocket-") {
                        let rare = self.rare.get_or_insert_default();
                        rare.websocket.get_or_insert_default().header(ctx, is_orig, h.name(), h.value());
                    }
                    let mut fx = script::Effects::default();
                    if !self.script.header(ctx.ts, is_orig, h.name(), h.value(), &mut fx) {
                        ctx.weird("missing_HTTP_entity", None, SOURCE);
                    }
                    self.apply(ctx, fx);
                }
                MsgEvent::Data { head, len } => self.file_data(ctx, is_orig, &head, len),
                MsgEvent::Gap { len } => self.file_gap(ctx, is_orig, len),
                MsgEvent::PartialContent { offset } => self.partial_file(ctx, is_orig, offset),
                MsgEvent::EndEntity { total_bytes, hold } => {
                    if let Some(file) = self.dir(is_orig).file.take() {
                        if hold && !file.is_complete(total_bytes) {
                            let url = self.script.range_request_url();
                            let held = HeldFile { url, file, total_bytes };
                            self.rare.get_or_insert_default().held_files.push(held);
                        } else {
                            self.close_file(ctx, is_orig, *file, total_bytes);
                        }
                    }
                    self.script.end_entity();
                }
                MsgEvent::Done { body_length } => {
                    if let Some(record) = self.script.message_done(ctx.ts, is_orig, body_length) {
                        write_http(ctx, record);
                    }
                    if is_orig {
                        self.request_made(ctx, false);
                    } else {
                        self.reply_made(ctx, false);
                    }
                }
                MsgEvent::Weird(name, addl) => ctx.weird(name, addl, SOURCE),
                MsgEvent::InflateFailed => ctx.weird("inflate_failed", None, "ZIP"),
            }
        }
        return_event_buffer(events);
    }

    /// The entity's file, a new one (`file_over_new_connection`) when it has none yet.
    fn open_file(&mut self, ctx: &mut Ctx, is_orig: bool) -> &mut OpenFile {
        let dir = if is_orig { &mut self.orig } else { &mut self.resp };
        dir.file.get_or_insert_with(|| {
            let fuid = ctx.new_fuid();
            let (key, filename) = self.script.file_started(is_orig, &fuid);
            Box::new(OpenFile::new(ctx.ts, fuid, key, filename))
        })
    }

    /// A 206 part starts. Zeek names the file of a range request's reply by the URL (`get_file_handle`), so the
    /// parts of one URL are one file, still open from an earlier reply (and not added to the record again: the
    /// file is not new to the connection).
    fn partial_file(&mut self, ctx: &mut Ctx, is_orig: bool, offset: u64) {
        if self.dir(is_orig).file.is_none()
            && let Some(url) = self.script.range_request_url().filter(|_| !is_orig)
            && let Some(held) = self.rare.as_mut().map(|rare| &mut rare.held_files)
            && let Some(pos) = held.iter().position(|h| h.url.as_deref() == Some(url.as_str()))
        {
            self.resp.file = Some(held.remove(pos).file);
        }
        self.open_file(ctx, is_orig).seek(offset);
    }

    fn file_data(&mut self, ctx: &mut Ctx, is_orig: bool, head: &[u8], len: u64) {
        let file = self.open_file(ctx, is_orig);
        let key = file.record_key;
        if let Some(Some(mime)) = file.data(ctx.ts, head, len) {
            self.script.file_sniffed(key, is_orig, mime);
        }
    }

    fn file_gap(&mut self, ctx: &mut Ctx, is_orig: bool, len: u64) {
        let Some(file) = self.dir(is_orig).file.as_mut() else { return };
        let key = file.record_key;
        if let Some(Some(mime)) = file.gap(ctx.ts, len) {
            self.script.file_sniffed(key, is_orig, mime);
        }
    }

    fn close_file(&mut self, ctx: &mut Ctx, is_orig: bool, mut file: OpenFile, total_bytes: Option<u64>) {
        if !file.was_sniffed()
            && let Some(mime) = file.sniff()
        {
            self.script.file_sniffed(file.record_key, is_orig, mime);
        }
        file.log(ctx, is_orig, total_bytes, false);
    }

    /// `HTTP_Analyzer::DeliverStream` for stream bytes of one direction.
    fn deliver_stream(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.upgraded() || self.dir(is_orig).skip_deliveries {
            return;
        }
        if !is_orig && self.resp.state == Expect::Http09 {
            self.deliver_http09_reply(ctx, data);
            return;
        }
        self.dir(is_orig).lines.count_delivery(data.len());
        self.split_lines(ctx, is_orig, data);
        if self.dir(is_orig).lines.reached_delivery_end() && self.dir(is_orig).lines.has_partial_line() {
            ctx.weird("line_terminated_without_CRLF", None, "CONTENTLINE");
            self.split_lines(ctx, is_orig, b"\r\n");
        }
    }

    fn split_lines(&mut self, ctx: &mut Ctx, is_orig: bool, mut data: &[u8]) {
        while !data.is_empty() && !self.upgraded() {
            let (used, piece) = self.dir(is_orig).lines.next(data);
            data = data.get(used..).unwrap_or_default();
            while let Some(name) = self.dir(is_orig).lines.take_weird() {
                ctx.weird(name, None, "CONTENTLINE");
            }
            match piece {
                Some(Piece::Plain(bytes)) => self.plain_data(ctx, is_orig, bytes),
                Some(Piece::Line(line)) => self.line(ctx, is_orig, line),
                Some(Piece::Buffered(line)) => self.line(ctx, is_orig, &line),
                None => {}
            }
        }
        if self.upgraded() {
            self.hand_over(ctx, is_orig, data);
        }
    }

    /// HTTP ended (`HTTP_Upgrade`, or a CONNECT's PIA): the next protocol gets the rest of the stream, starting with
    /// `rest`, what came after the reply in the same delivery.
    fn hand_over(&mut self, ctx: &mut Ctx, is_orig: bool, rest: &[u8]) {
        let Switch::Pending(protocol) = self.switch else { return };
        self.switch = Switch::HandedOver;
        if !rest.is_empty() {
            let name = if self.connect_request {
                "protocol_data_with_HTTP_CONNECT_reply"
            } else {
                "protocol_data_with_HTTP_upgrade_reply"
            };
            ctx.weird(name, Some(rest.len().to_string()), SOURCE);
        }
        if protocol == UpgradeProtocol::WebSocket {
            let handshake = self.rare.as_mut().and_then(|rare| rare.websocket.take()).unwrap_or_default();
            handshake.established(ctx);
        }
        ctx.hand_over(protocol.analyzer(), is_orig, rest);
    }

    /// Upgraded (101) or tunnelled (CONNECT): the rest is not HTTP.
    fn upgraded(&self) -> bool {
        self.switch != Switch::Http
    }

    fn plain_data(&mut self, ctx: &mut Ctx, is_orig: bool, bytes: &[u8]) {
        if !self.dir(is_orig).has_message() {
            let name = if is_orig { "unexpected_client_HTTP_data" } else { "unexpected_server_HTTP_data" };
            ctx.weird(name, None, SOURCE);
            return;
        }
        self.with_message(ctx, is_orig, |m, io| m.deliver(io, bytes, false));
    }

    fn line(&mut self, ctx: &mut Ctx, is_orig: bool, line: &[u8]) {
        match (self.dir(is_orig).state, is_orig) {
            (Expect::FirstLine, true) => self.request_line(ctx, line),
            (Expect::FirstLine, false) => self.status_line(ctx, line),
            (Expect::Message, _) => {
                self.with_message(ctx, is_orig, |m, io| m.deliver(io, line, true));
                if !is_orig && self.connect_request && line.is_empty() {
                    // CONNECT succeeded: the rest of the connection is the tunnelled protocol.
                    self.switch = Switch::Pending(UpgradeProtocol::Other);
                }
            }
            _ => {}
        }
    }

    fn set_version(&mut self, ctx: &mut Ctx, is_orig: bool, version: Version) {
        let current = self.dir(is_orig).version;
        if current != VERSION_UNSET && current != version {
            ctx.weird("HTTP_version_mismatch", None, SOURCE);
        }
        self.dir(is_orig).version = version;
        if version.0 > 1 || (version.0 == 1 && version.1 > 0) {
            self.flags.keep_alive = true;
        }
    }

    fn confirm(&mut self, ctx: &mut Ctx) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("http");
        }
    }

    /// Zeek disables an analyzer on a violation only once it was confirmed (DPD since Zeek 7.2).
    fn violation(&mut self, ctx: &mut Ctx, reason: &str) {
        if self.confirmed {
            ctx.violation(reason);
        }
    }

    fn request_line(&mut self, ctx: &mut Ctx, line: &[u8]) {
        let parsed = parse::parse_request_line(line);
        for weird in &parsed.weirds {
            ctx.weird(*weird, None, SOURCE);
        }
        let Some(request) = parsed.request else {
            let request_expected = self.num_requests == 0 || self.flags.keep_alive;
            if request_expected {
                if line.is_empty() {
                    ctx.weird("empty_http_request", None, SOURCE);
                } else {
                    self.violation(ctx, "not a http request line");
                    self.orig.state = Expect::Nothing;
                }
            }
            return;
        };
        self.set_version(ctx, true, request.version.unwrap_or(VERSION_09));
        self.num_requests += 1;
        if !self.flags.keep_alive && self.num_requests > 1 {
            ctx.weird("unexpected_multiple_HTTP_requests", None, SOURCE);
        }
        self.orig.state = Expect::Message;
        self.orig.ongoing = true;
        self.unanswered.push_back(request.method.eq_ignore_ascii_case(b"HEAD"));
        self.confirm(ctx);
        if request.method.eq_ignore_ascii_case(b"CONNECT") {
            self.connect_request = true;
        }
        let mut fx = script::Effects::default();
        self.script.request(ctx.ts, &request.method, &request.unescaped_uri, &mut fx);
        for (tag, applies) in &ctx.cfg.http_uri_tags {
            if applies(&request.unescaped_uri) {
                self.script.tag_request(tag);
            }
        }
        self.apply(ctx, fx);
        self.new_message(ctx, true, BodyExpect::Maybe);
        if request.version.is_none() {
            if request.method != b"GET" {
                ctx.weird("invalid_http_09_request_method", Some(bytes_to_log_string(&request.method)), SOURCE);
            }
            if self.resp.has_message() {
                ctx.weird("http_09_reply_before_request", None, SOURCE);
                self.with_message(ctx, false, |m, io| m.done(io));
                self.resp.discard_message();
            }
            self.resp.state = Expect::Http09;
        }
    }

    fn status_line(&mut self, ctx: &mut Ctx, line: &[u8]) {
        let (status, lowercase) = parse::parse_status_line(line);
        if lowercase {
            ctx.weird("lowercase_HTTP_keyword", None, SOURCE);
        }
        let Some(status) = status else {
            if !line.is_empty() {
                self.violation(ctx, "not a http reply line");
                self.resp.state = Expect::Nothing;
            }
            return;
        };
        self.set_version(ctx, false, status.version);
        if !self.unanswered.is_empty() {
            self.confirm(ctx);
        }
        self.resp.state = Expect::Message;
        self.resp.ongoing = true;
        self.flags.reply_code = status.code;
        let reason = status.reason.map_or_else(|| "<empty>".to_string(), |r| bytes_to_log_string(&r));
        self.script.reply(ctx.ts, &parse::version_string(status.version), status.code, &reason);
        if status.code == 200 && self.connect_request && self.script.current_method() == Some("CONNECT") {
            proxy_tunnels::register(ctx, ProxyType::Http);
        }
        if status.code == 101 {
            // The record is logged (and gone) before the upgrade: websocket.log copies from it now.
            let (host, uri, user_agent) = self.script.current_request();
            let rare = self.rare.get_or_insert_default();
            rare.websocket.get_or_insert_default().set_request(host, uri, user_agent);
        }
        if self.connect_request && status.code != 200 {
            self.connect_request = false;
        }
        let expect = self.expect_reply_body();
        self.new_message(ctx, false, expect);
    }

    /// `ExpectReplyMessageBody`: no body after HEAD, 1xx, 204 and 304.
    fn expect_reply_body(&self) -> BodyExpect {
        let head = self.unanswered.front().unwrap_or(false);
        let code = self.flags.reply_code;
        if head || (100..200).contains(&code) || code == 204 || code == 304 {
            BodyExpect::NotExpected
        } else {
            BodyExpect::Expected
        }
    }

    /// An HTTP/0.9 reply: everything the server sends, until it closes.
    fn deliver_http09_reply(&mut self, ctx: &mut Ctx, data: &[u8]) {
        if !self.resp.has_message() {
            self.set_version(ctx, false, VERSION_09);
            if self.unanswered.pop_front().is_some() {
                self.confirm(ctx);
            }
            self.flags.connection_close = true;
            self.resp.ongoing = true;
            self.script.reply(ctx.ts, &parse::version_string(VERSION_09), self.flags.reply_code, "<empty>");
            let expect = self.expect_reply_body();
            self.new_message(ctx, false, expect);
            self.with_message(ctx, false, |m, io| m.deliver(io, b"", true));
        }
        self.with_message(ctx, false, |m, io| m.deliver(io, data, false));
    }

    /// `RequestMade`.
    fn request_made(&mut self, ctx: &mut Ctx, interrupted: bool) {
        if !self.orig.ongoing {
            return;
        }
        self.orig.ongoing = false;
        self.with_message(ctx, true, |m, io| m.done(io));
        self.orig.state = if interrupted { Expect::Nothing } else { Expect::FirstLine };
    }

    /// `ReplyMade`.
    fn reply_made(&mut self, ctx: &mut Ctx, interrupted: bool) {
        if !self.resp.ongoing {
            return;
        }
        self.resp.ongoing = false;
        self.with_message(ctx, false, |m, io| m.done(io));
        let code = self.flags.reply_code;
        if !(100..200).contains(&code) {
            self.unanswered.pop_front();
        }
        let protocol = self.flags.upgrade_protocol;
        if code == 101
            && self.unanswered.len() == 1
            && self.flags.upgrade_connection
            && protocol != UpgradeProtocol::None
        {
            self.switch = Switch::Pending(protocol);
        }
        self.flags.reply_code = 0;
        self.flags.upgrade_connection = false;
        self.flags.upgrade_protocol = UpgradeProtocol::None;
        self.resp.state = if interrupted || self.upgraded() { Expect::Nothing } else { Expect::FirstLine };
    }

    /// `HTTP_Analyzer::Undelivered`: a gap inside a body of known length is skipped; anywhere else the
    /// direction's messages end as interrupted and the direction is not parsed any more.
    fn content_gap(&mut self, ctx: &mut Ctx, is_orig: bool, len: u64) {
        if self.upgraded() || self.dir(is_orig).skip_deliveries {
            return;
        }
        let mut skipped = false;
        self.with_message(ctx, is_orig, |m, io| skipped = m.undelivered(io, len));
        if skipped {
            return;
        }
        if is_orig {
            self.request_made(ctx, true);
        }
        self.reply_made(ctx, true);
        self.dir(is_orig).skip_deliveries = true;
    }

    fn apply(&mut self, ctx: &mut Ctx, fx: script::Effects) {
        for record in fx.records {
            write_http(ctx, record);
        }
        if !fx.weirds.is_empty() {
            self.rare.get_or_insert_default().script_weirds.extend(fx.weirds);
        }
    }

    fn flush_script_weirds(&mut self, ctx: &mut Ctx) {
        let Some(rare) = self.rare.as_mut() else { return };
        let weirds = std::mem::take(&mut rare.script_weirds);
        if rare.held_files.is_empty() && rare.websocket.is_none() {
            self.rare = None;
        }
        for (name, addl) in weirds {
            ctx.weird(name, addl, SCRIPT_SOURCE);
        }
    }
}

/// Writes one http.log record.
fn write_http(ctx: &mut Ctx, record: script::Record) {
    let ts = record.ts;
    let values = record.into_values(ctx.conn_columns(ts));
    ctx.log(&HTTP, values);
}

impl Analyzer for Http {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        // Like Zeek's HTTP analyzer, ignore connections joined mid-stream: requests and replies cannot be
        // paired from the middle.
        if ctx.partial {
            return;
        }
        self.deliver_stream(ctx, is_orig, data);
        self.flush_script_weirds(ctx);
    }

    fn undelivered(&mut self, ctx: &mut Ctx, is_orig: bool, len: u64) {
        self.content_gap(ctx, is_orig, len);
        self.hand_over(ctx, is_orig, &[]);
        self.flush_script_weirds(ctx);
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        // ContentLine's EndpointEOF: a partial last line is delivered as if terminated. HTTP/0.9 replies
        // bypass the line splitter.
        let splits_lines = is_orig || self.resp.state != Expect::Http09;
        if splits_lines && !self.upgraded() && self.dir(is_orig).lines.has_partial_line() {
            self.deliver_stream(ctx, is_orig, b"\n");
        }
        if self.dir(is_orig).message.as_ref().is_some_and(|m| m.body_cut_short()) {
            ctx.weird("HTTP_bytes_remaining_at_eod", None, SOURCE);
        }
        if is_orig {
            self.request_made(ctx, false);
        } else {
            self.reply_made(ctx, false);
        }
        self.hand_over(ctx, is_orig, &[]);
        self.flush_script_weirds(ctx);
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.request_made(ctx, true);
        self.reply_made(ctx, true);
        for dir in [true, false] {
            if let Some(file) = self.dir(dir).file.take() {
                self.close_file(ctx, dir, *file, None);
            }
        }
        for record in self.script.finalize() {
            write_http(ctx, record);
        }
        // Files of 206 replies were never ended: Zeek times them out after the connection is gone (at the latest
        // when it terminates), so their metadata reaches no http.log record.
        let held_files = self.rare.as_mut().map(|rare| std::mem::take(&mut rare.held_files));
        for held in held_files.unwrap_or_default() {
            held.file.log(ctx, false, held.total_bytes, true);
        }
        self.flush_script_weirds(ctx);
    }
}

/// Drives the analyzer over arbitrary bytes: the input is cut into chunks, alternating directions, each
/// chunk's first byte choosing its length. For fuzzing; it must never panic.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Http::default(), super::Proto::Tcp, 80, data);
}

/// A response's `Server` header: the server's software (Zeek's `HTTP::SERVER`), which no log carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerHeader {
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub server: String,
}

/// Where [`ServerHeader`]s go; unset by default (nothing is collected).
static SERVER_SINK: RwLock<Option<fn(ServerHeader)>> = RwLock::new(None);

/// Registers the consumer of responses' `Server` headers (the detections' software tracking).
pub fn set_server_sink(sink: fn(ServerHeader)) {
    *SERVER_SINK.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sink);
}

fn report_server(ctx: &Ctx, value: &[u8]) {
    let sink = *SERVER_SINK.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(sink) = sink {
        let server = bytes_to_log_string(value);
        sink(ServerHeader { ts: ctx.ts, uid: ctx.uid.to_string(), id: *ctx.id, server });
    }
}

#[cfg(test)]
mod baseline_tests;
#[cfg(test)]
mod tests;
