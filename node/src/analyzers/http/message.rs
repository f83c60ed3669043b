//! One HTTP message (request or reply): its header block, its body framing (Content-Length, chunked,
//! until close, multipart) and its entities, following Zeek's HTTP_Message / HTTP_Entity / MIME_Entity.
//!
//! The message does not log anything itself: it emits [`MsgEvent`]s in Zeek's event order, and asks the
//! direction's [`ContentLine`] to switch between line and plain delivery as Zeek does.

use super::files::FILE_HEAD_SIZE;
use super::inflate::Inflater;
use super::parse::{self, Header, Version};
use crate::analyzers::content_line::ContentLine;
use crate::analyzers::magic::BOF_BUFFER_SIZE;
use crate::analyzers::pe;

/// Whether a body may follow the headers (`HTTP_BODY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyExpect {
    NotExpected,
    Maybe,
    Expected,
}

/// What the script layer and the file layer see, in order.
#[derive(Debug, PartialEq)]
pub(super) enum MsgEvent {
    /// `http_begin_entity`: a new entity (the message itself, or a multipart part) starts.
    BeginEntity,
    /// `http_header`, for the message's and for its parts' headers.
    Header(Header),
    /// `len` bytes of decoded entity content, for the entity's file. Only the entity's first [`FILE_HEAD_SIZE`] bytes
    /// are copied (`head`): the file layer looks at no more than those.
    Data {
        head: Vec<u8>,
        len: u64,
    },
    /// `len` bytes of the entity's content were lost in a content gap (`file_mgr->Gap`).
    Gap {
        len: u64,
    },
    /// A 206 entity's content starts: it is the part of a file at `offset`.
    PartialContent {
        offset: u64,
    },
    /// The entity ended: its file (if any) is complete, unless `hold` (a 206 reply's file is not ended with the
    /// message: it ends once complete, or when the connection is done).
    EndEntity {
        total_bytes: Option<u64>,
        hold: bool,
    },
    /// `http_message_done` with the body length.
    Done {
        body_length: u64,
    },
    Weird(&'static str, Option<String>),
    /// The ZIP analyzer's `inflate_failed` weird (its own source).
    InflateFailed,
}

/// Connection-wide facts the headers change and the body framing depends on.
#[derive(Debug, Default)]
pub(super) struct ConnFlags {
    pub keep_alive: bool,
    pub connection_close: bool,
    pub upgrade_connection: bool,
    /// What the last `Upgrade` header named.
    pub upgrade_protocol: UpgradeProtocol,
    /// The version used for the Transfer-Encoding check (Zeek takes the ongoing request's, else the reply's).
    pub framing_version: Version,
    /// The status code of the reply in progress (0 when none): a 206's `Content-Range` frames its body.
    pub reply_code: u32,
}

/// The protocol a reply's `Upgrade` header names: an analyzer of its own (Zeek's `HTTP::upgrade_analyzers`), or
/// another one that content detection has to find.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum UpgradeProtocol {
    #[default]
    None,
    WebSocket,
    Other,
}

impl UpgradeProtocol {
    /// The protocol named by the `Upgrade` header's first token (looked up as is, then in lower case).
    fn of(token: &[u8]) -> Self {
        if token.is_empty() {
            UpgradeProtocol::None
        } else if token.eq_ignore_ascii_case(b"websocket") {
            UpgradeProtocol::WebSocket
        } else {
            UpgradeProtocol::Other
        }
    }

    /// The analyzer that takes the connection over (`None`: content detection finds it).
    pub(super) fn analyzer(self) -> Option<&'static str> {
        (self == UpgradeProtocol::WebSocket).then_some("websocket")
    }
}

/// Everything an entity may touch while it parses.
pub(super) struct Io<'a> {
    pub lines: &'a mut ContentLine,
    pub events: &'a mut Vec<MsgEvent>,
    pub flags: &'a mut ConnFlags,
    pub is_orig: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    No,
    BeforeChunk,
    Size,
    Data,
    DataCrlf,
    Trailer,
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

struct Entity {
    /// 0 for the message itself, 1+ for multipart parts.
    depth: u32,
    expect_body: BodyExpect,
    in_header: bool,
    header_line: Option<(Vec<u8>, usize)>,
    end_of_data: bool,
    content_length: i64,
    expect_data_length: i64,
    chunked: Chunked,
    encoding: Encoding,
    inflater: Option<Box<Inflater>>,
    boundary: Option<Vec<u8>>,
    /// Part content holds back a line's CRLF until more content follows (it may belong to the boundary).
    delay_crlf: bool,
    body_length: u64,
    /// Decoded content emitted so far (what the entity's file has seen).
    content_bytes: u64,
    /// How much of the DOS signature the content's start matched (`None`: not an executable): executables, the
    /// only content whose headers are read past the sniffer's buffer (the PE analysis), are copied further.
    executable_prefix: Option<usize>,
    /// An `Expect` header was seen: a `Content-Length: 0` with it is a weird, in either order.
    expect_100_cont: bool,
    /// A 206 reply's `Content-Range`: the body is a part of a file of `instance_length` bytes (0: unknown).
    partial_content: Option<PartialContent>,
    child: Option<Box<Entity>>,
    has_multipart_parent: bool,
}

impl Entity {
    fn new(depth: u32, expect_body: BodyExpect, has_multipart_parent: bool) -> Self {
        Entity {
            depth,
            expect_body,
            in_header: true,
            header_line: None,
            end_of_data: false,
            content_length: -1,
            expect_data_length: 0,
            chunked: Chunked::No,
            encoding: Encoding::Identity,
            inflater: None,
            boundary: None,
            delay_crlf: false,
            body_length: 0,
            content_bytes: 0,
            executable_prefix: Some(0),
            expect_100_cont: false,
            partial_content: None,
            child: None,
            has_multipart_parent,
        }
    }

    fn is_multipart(&self) -> bool {
        self.boundary.is_some()
    }

    /// `HTTP_Entity::Deliver`: one line (`trailing_crlf`) or one plain run of bytes.
    fn deliver(&mut self, io: &mut Io, data: &[u8], trailing_crlf: bool) {
        if self.end_of_data {
            return;
        }
        if self.in_header {
            if !trailing_crlf {
                io.events.push(MsgEvent::Weird("http_no_crlf_in_header_list", None));
            }
            self.header_input(io, data);
            return;
        }
        if self.is_multipart() {
            self.deliver_body(io, data, trailing_crlf);
            if self.depth == 0 && self.content_length > 0 {
                self.expect_data_length -= data.len() as i64 + if trailing_crlf { 2 } else { 0 };
                if self.expect_data_length <= 0 {
                    io.lines.set_plain_delivery(0);
                    self.end_of_data(io);
                }
            }
            return;
        }
        match self.chunked {
            Chunked::Size => {
                self.expect_data_length = parse::atoi_n(data, 16).unwrap_or_else(|| {
                    let addl = crate::logs::bytes_to_log_string(data);
                    io.events.push(MsgEvent::Weird("HTTP_bad_chunk_size", Some(addl)));
                    0
                });
                if self.expect_data_length > 0 {
                    self.chunked = Chunked::Data;
                    io.lines.set_plain_delivery(self.expect_data_length);
                } else {
                    self.in_header = true;
                    self.chunked = Chunked::Trailer;
                }
            }
            Chunked::Data => {
                self.expect_data_length -= data.len() as i64;
                if self.expect_data_length <= 0 {
                    io.lines.set_plain_delivery(0);
                    self.chunked = Chunked::DataCrlf;
                }
                self.deliver_body(io, data, false);
            }
            Chunked::DataCrlf => self.chunked = Chunked::Size,
            Chunked::No if self.content_length >= 0 => {
                self.deliver_body(io, data, false);
                self.expect_data_length -= data.len() as i64;
                if self.expect_data_length <= 0 {
                    io.lines.set_plain_delivery(0);
                    io.lines.set_delivery_size(-1);
                    self.end_of_data(io);
                }
            }
            _ => self.deliver_body(io, data, trailing_crlf),
        }
    }

    /// `MIME_Entity::Deliver` while in the header block.
    fn header_input(&mut self, io: &mut Io, line: &[u8]) {
        if line.first().is_none_or(|&c| c == 0) {
            self.finish_header(io);
            self.in_header = false;
            self.submit_all_headers(io);
        } else if line[0] == b' ' || line[0] == b'\t' {
            match &mut self.header_line {
                Some((buf, lines)) => {
                    buf.extend_from_slice(line);
                    *lines += 1;
                }
                None => {
                    let ws = line.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
                    self.header_line = Some((line[ws..].to_vec(), 1));
                }
            }
        } else {
            self.finish_header(io);
            self.header_line = Some((line.to_vec(), 1));
        }
    }

    fn finish_header(&mut self, io: &mut Io) {
        let Some((line, lines)) = self.header_line.take() else { return };
        if let Some(header) = parse::parse_header(line, lines) {
            if header.name().eq_ignore_ascii_case(b"content-type") {
                self.boundary = parse::multipart_boundary(header.value());
            }
            self.submit_header(io, &header);
            update_conn_flags(io, &header);
            io.events.push(MsgEvent::Header(header));
        }
    }

    /// `HTTP_Entity::SubmitHeader`: the headers that change body framing.
    fn submit_header(&mut self, io: &mut Io, h: &Header) {
        let weird = |io: &mut Io, name: &'static str, addl: Option<&[u8]>| {
            io.events.push(MsgEvent::Weird(name, addl.map(crate::logs::bytes_to_log_string)));
        };
        if self.depth == 0 && h.lines > 1 {
            weird(io, "HTTP_obsolete_line_folding", Some(h.name()));
        }
        if h.name().eq_ignore_ascii_case(b"content-length") {
            let token = parse::value_token(h.value());
            if self.chunked != Chunked::No {
                weird(io, "HTTP_content_length_and_chunked", None);
            }
            if token.is_empty() {
                return;
            }
            match parse::atoi_n(token, 10).filter(|n| *n >= 0) {
                Some(n) => {
                    if n > 0 && token.first() == Some(&b'0') {
                        weird(io, "HTTP_content_length_leading_zeros", Some(token));
                    }
                    self.content_length = n;
                    if let Some(range_length) = self.partial_content.map(|p| p.range_length)
                        && range_length != n
                    {
                        weird(io, "HTTP_range_not_matching_len", None);
                        self.content_length = n.max(range_length);
                    }
                    if self.content_length == 0 && self.expect_100_cont {
                        weird(io, "HTTP_content_length_0_and_expect_100_cont", None);
                    }
                }
                None => {
                    weird(io, "HTTP_bad_content_length", Some(token));
                    self.content_length = 0;
                }
            }
        } else if h.name().eq_ignore_ascii_case(b"content-range") && io.flags.reply_code == 206 {
            if self.chunked != Chunked::No {
                weird(io, "HTTP_content_range_and_chunked", None);
            }
            match parse::content_range(h.value()) {
                Ok(range) => self.set_content_range(io, range),
                Err((error, kept)) => {
                    weird(io, error.weird, error.addl.as_deref());
                    if let Some(range) = kept {
                        self.set_content_range(io, range);
                    }
                }
            }
        } else if h.name().eq_ignore_ascii_case(b"transfer-encoding") {
            if self.depth > 0 {
                weird(io, "HTTP_nested_transfer_encoding_header", None);
            } else if parse::value_token(h.value()).eq_ignore_ascii_case(b"chunked")
                && io.flags.framing_version == (1, 1)
            {
                self.chunked = Chunked::BeforeChunk;
                let rest = parse::value_after_token(h.value());
                if !rest.is_empty() {
                    weird(io, "HTTP_chunked_multi", Some(rest));
                }
                if self.content_length >= 0 {
                    weird(io, "HTTP_content_length_and_chunked", None);
                }
            }
        } else if h.name().eq_ignore_ascii_case(b"content-encoding") {
            let token = parse::value_token(h.value());
            if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
                self.encoding = Encoding::Gzip;
            }
            if token.eq_ignore_ascii_case(b"deflate") {
                self.encoding = Encoding::Deflate;
            }
        } else if h.name().eq_ignore_ascii_case(b"expect") {
            let token = parse::value_token(h.value());
            if !token.eq_ignore_ascii_case(b"100-continue") {
                weird(io, "HTTP_expect_not_100_continue", Some(token));
            }
            self.expect_100_cont = true;
            if self.content_length == 0 {
                weird(io, "HTTP_content_length_0_and_expect_100_cont", None);
            }
        }
    }

    /// A valid `Content-Range`: the range's length frames the body unless a larger `Content-Length` does.
    fn set_content_range(&mut self, io: &mut Io, range: parse::ContentRange) {
        self.partial_content = Some(PartialContent {
            first: range.first,
            range_length: range.length,
            instance_length: range.instance_length,
        });
        if self.content_length > 0 {
            if self.content_length != range.length {
                io.events.push(MsgEvent::Weird("HTTP_range_not_matching_len", None));
                self.content_length = self.content_length.max(range.length);
            }
        } else {
            self.content_length = range.length;
        }
    }

    /// `HTTP_Entity::Undelivered`: a gap inside a body of known length is skipped (the file gets a gap, the body
    /// length counts it); anywhere else the message cannot go on (false).
    fn undelivered(&mut self, io: &mut Io, len: u64) -> bool {
        if (self.end_of_data && self.in_header) || self.body_length == 0 {
            return false;
        }
        io.events.push(MsgEvent::Gap { len });
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        let skippable = match self.chunked {
            Chunked::No => self.content_length >= 0,
            Chunked::Data => true,
            _ => false,
        };
        if !skippable || self.expect_data_length < len {
            return false;
        }
        self.body_length += len as u64;
        self.expect_data_length -= len;
        io.lines.set_plain_delivery(self.expect_data_length);
        if self.chunked == Chunked::Data {
            if self.expect_data_length == 0 {
                self.chunked = Chunked::DataCrlf;
            }
        } else if self.expect_data_length <= 0 {
            self.end_of_data(io);
        }
        true
    }

    /// The entity a gap falls into: the innermost one in progress (`current_entity`).
    fn current_mut(&mut self) -> &mut Entity {
        match self.child {
            Some(ref mut child) => child.current_mut(),
            None => self,
        }
    }

    /// `HTTP_Entity::SubmitAllHeaders`: decides how the body is framed.
    fn submit_all_headers(&mut self, io: &mut Io) {
        if self.has_multipart_parent {
            io.lines.set_bare_eol(false);
        }
        if self.content_length >= 0 {
            io.lines.set_delivery_size(self.content_length);
        }
        if self.chunked == Chunked::Trailer {
            self.chunked = Chunked::Nothing;
            self.end_of_data(io);
            return;
        }
        if self.expect_body == BodyExpect::NotExpected {
            self.end_of_data(io);
            return;
        }
        if self.is_multipart() {
            if self.chunked != Chunked::No {
                io.events.push(MsgEvent::Weird("HTTP_chunked_transfer_for_multipart_message", None));
            }
            if self.depth == 0 && self.content_length == 0 {
                self.end_of_data(io);
            } else if self.depth == 0 && self.content_length > 0 {
                self.expect_data_length = self.content_length;
            }
        } else if self.chunked != Chunked::No {
            self.chunked = Chunked::Size;
        } else if self.content_length > 0 {
            self.expect_data_length = self.content_length;
            io.lines.set_plain_delivery(self.content_length);
        } else if self.content_length == 0 {
            self.end_of_data(io);
        } else if io.flags.connection_close || self.encoding != Encoding::Identity {
            self.expect_data_length = i64::from(i32::MAX);
            io.lines.set_plain_delivery(i64::from(i32::MAX));
        } else if self.expect_body != BodyExpect::Expected {
            self.end_of_data(io);
        }
    }

    /// `HTTP_Entity::DeliverBody`: decompresses if needed.
    fn deliver_body(&mut self, io: &mut Io, data: &[u8], trailing_crlf: bool) {
        if self.encoding == Encoding::Identity {
            self.deliver_body_clear(io, data, trailing_crlf);
            return;
        }
        // Zeek's ZIP analyzer reads the stream's own header: gzip and deflate are decompressed alike.
        let inflated = self.inflater.get_or_insert_with(|| Box::new(Inflater::new())).feed(data);
        if inflated.failed {
            io.events.push(MsgEvent::InflateFailed);
        }
        if !inflated.out.is_empty() {
            self.deliver_body_clear(io, &inflated.out, false);
        }
    }

    fn deliver_body_clear(&mut self, io: &mut Io, data: &[u8], trailing_crlf: bool) {
        self.body_length += data.len() as u64 + if trailing_crlf { 2 } else { 0 };
        self.body_line(io, data, trailing_crlf);
    }

    /// `MIME_Entity::NewDataLine`: boundaries for multipart, content for everything else.
    fn body_line(&mut self, io: &mut Io, data: &[u8], trailing_crlf: bool) {
        let Some(boundary) = &self.boundary else {
            self.decode_binary(io, data, trailing_crlf);
            return;
        };
        match boundary_kind(data, boundary) {
            Some(closing) => {
                self.end_child(io);
                if closing {
                    self.end_of_data(io);
                } else if !self.end_of_data {
                    io.events.push(MsgEvent::BeginEntity);
                    self.child = Some(Box::new(Entity::new(self.depth + 1, BodyExpect::Expected, true)));
                }
            }
            None => {
                if let Some(child) = &mut self.child {
                    child.deliver(io, data, trailing_crlf);
                }
            }
        }
    }

    /// `MIME_Entity::DecodeBinary`, emitting content with the implicit CRLFs.
    fn decode_binary(&mut self, io: &mut Io, data: &[u8], trailing_crlf: bool) {
        let lead: &[u8] = if std::mem::take(&mut self.delay_crlf) { b"\r\n" } else { b"" };
        let trail: &[u8] = match (trailing_crlf, self.has_multipart_parent) {
            (false, _) => b"",
            (true, true) => {
                self.delay_crlf = true;
                b""
            }
            (true, false) => b"\r\n",
        };
        let len = lead.len() + data.len() + trail.len();
        if len == 0 {
            return;
        }
        if self.content_bytes == 0
            && let Some(part) = self.partial_content
        {
            io.events.push(MsgEvent::PartialContent { offset: u64::try_from(part.first).unwrap_or(0) });
        }
        if self.content_bytes < pe::DOS_SIGNATURE.len() as u64 {
            let content = lead.iter().chain(data).chain(trail).copied();
            self.executable_prefix = pe::match_dos_signature(self.executable_prefix, content);
        }
        // A part of a 206 reply continues a file whose start came before: its window stays whole.
        let may_be_executable = self.executable_prefix.is_some() || self.partial_content.is_some();
        // Anything else is read no further than the sniffer's buffer: copying the whole window cost a copy and an
        // allocation per packet of every body past 4 KiB.
        let window = if may_be_executable { FILE_HEAD_SIZE } else { BOF_BUFFER_SIZE };
        let wanted = window.saturating_sub(usize::try_from(self.content_bytes).unwrap_or(usize::MAX)).min(len);
        let mut head = Vec::with_capacity(wanted);
        for part in [lead, data, trail] {
            let room = wanted - head.len();
            head.extend_from_slice(&part[..room.min(part.len())]);
        }
        self.content_bytes += len as u64;
        io.events.push(MsgEvent::Data { head, len: len as u64 });
    }

    fn end_child(&mut self, io: &mut Io) {
        if let Some(mut child) = self.child.take() {
            child.end_of_data(io);
            io.lines.set_bare_eol(true);
        }
    }

    /// `HTTP_Entity::EndOfData` + `MIME_Entity::EndOfData`.
    fn end_of_data(&mut self, io: &mut Io) {
        // `zip->Done()`: each delivery was flushed already, nothing is left to decompress.
        self.inflater = None;
        if self.end_of_data {
            return;
        }
        self.end_of_data = true;
        if self.in_header {
            self.finish_header(io);
            self.in_header = false;
        } else {
            self.end_child(io);
        }
        let hold = !io.is_orig && io.flags.reply_code == 206;
        io.events.push(MsgEvent::EndEntity { total_bytes: self.file_size(), hold });
    }

    /// The size the file framework is told (`SetSize`): a part's whole file, else the declared length; none once
    /// the body is decompressed.
    fn file_size(&self) -> Option<u64> {
        if self.encoding != Encoding::Identity {
            return None;
        }
        let size = match self.partial_content {
            Some(part) => part.instance_length,
            None => self.content_length,
        };
        u64::try_from(size).ok().filter(|n| *n > 0)
    }
}

/// What a 206 reply's `Content-Range` said.
#[derive(Debug, Clone, Copy)]
struct PartialContent {
    first: i64,
    range_length: i64,
    /// 0 when unknown (`*` or unparsable).
    instance_length: i64,
}

/// `HTTP_Analyzer::HTTP_Header`: connection persistence and upgrades.
fn update_conn_flags(io: &mut Io, h: &Header) {
    let connection = h.name().eq_ignore_ascii_case(b"connection");
    let upgrade = !io.is_orig && h.name().eq_ignore_ascii_case(b"upgrade");
    if !connection && !upgrade {
        return;
    }
    let token = parse::value_token(h.value());
    if connection {
        if io.is_orig && token.eq_ignore_ascii_case(b"keep-alive") {
            io.flags.keep_alive = true;
        }
        if !io.is_orig && token.eq_ignore_ascii_case(b"close") {
            io.flags.connection_close = true;
        } else if !io.is_orig && token.eq_ignore_ascii_case(b"upgrade") {
            io.flags.upgrade_connection = true;
        }
    }
    if upgrade {
        io.flags.upgrade_protocol = UpgradeProtocol::of(token);
    }
}

/// `MIME_Entity::CheckBoundaryDelimiter`: `Some(closing)` for a delimiter line.
fn boundary_kind(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    Some(rest.starts_with(b"--"))
}

/// One request or reply.
pub(super) struct Message {
    top: Entity,
    finished: bool,
}

impl Message {
    pub(super) fn new(io: &mut Io, expect_body: BodyExpect) -> Self {
        io.events.push(MsgEvent::BeginEntity);
        Message { top: Entity::new(0, expect_body, false), finished: false }
    }

    pub(super) fn deliver(&mut self, io: &mut Io, data: &[u8], trailing_crlf: bool) {
        self.top.deliver(io, data, trailing_crlf);
        if self.top.end_of_data {
            self.done(io);
        }
    }

    /// `HTTP_Message::Done`: ends the message (normally or interrupted) once.
    pub(super) fn done(&mut self, io: &mut Io) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.top.end_of_data(io);
        io.events.push(MsgEvent::Done { body_length: self.top.body_length });
    }

    pub(super) fn finished(&self) -> bool {
        self.finished
    }

    /// `HTTP_Message::Undelivered`: true when the gap was skipped inside a body.
    pub(super) fn undelivered(&mut self, io: &mut Io, len: u64) -> bool {
        if self.finished {
            return false;
        }
        let skipped = self.top.current_mut().undelivered(io, len);
        if self.top.end_of_data {
            self.done(io);
        }
        skipped
    }

    /// A body of declared length still expects bytes (at the end of the data: they never came).
    pub(super) fn body_cut_short(&self) -> bool {
        let top = &self.top;
        let in_sized_body = !self.finished && !top.end_of_data && !top.in_header && top.chunked == Chunked::No;
        in_sized_body && top.content_length > 0 && top.expect_data_length > 0
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::analyzers::content_line::Piece;

    /// Runs a whole message through a fresh line splitter, like the analyzer does.
    fn run(expect: BodyExpect, flags: &mut ConnFlags, stream: &[u8]) -> Vec<MsgEvent> {
        let mut lines = ContentLine::default();
        let mut events = vec![];
        let mut io = Io { lines: &mut lines, events: &mut events, flags, is_orig: false };
        let mut msg = Message::new(&mut io, expect);
        let mut data = stream;
        while !data.is_empty() {
            let (n, piece) = io.lines.next(data);
            match piece {
                Some(Piece::Line(l)) => msg.deliver(&mut io, l, true),
                Some(Piece::Buffered(l)) => msg.deliver(&mut io, &l, true),
                Some(Piece::Plain(p)) => msg.deliver(&mut io, p, false),
                None => {}
            }
            data = &data[n..];
        }
        msg.done(&mut io);
        events
    }

    fn content(events: &[MsgEvent]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| if let MsgEvent::Data { head, .. } = e { Some(head.clone()) } else { None })
            .flatten()
            .collect()
    }

    fn body_length(events: &[MsgEvent]) -> Option<u64> {
        events.iter().find_map(|e| if let MsgEvent::Done { body_length } = e { Some(*body_length) } else { None })
    }

    #[test]
    fn content_length_body() {
        let ev = run(BodyExpect::Expected, &mut ConnFlags::default(), b"Content-Length: 5\r\n\r\nhello");
        assert_eq!(content(&ev), b"hello");
        assert_eq!(body_length(&ev), Some(5));
        assert!(ev.contains(&MsgEvent::EndEntity { total_bytes: Some(5), hold: false }));
    }

    /// The file layer gets an executable's first 16 KiB (its headers for the PE analysis) and anything else's
    /// first 4 KiB (the sniffer's buffer), however the body is split into packets.
    #[test]
    fn only_an_executable_start_is_copied_past_the_sniffing_buffer() {
        for (start, copied) in [(&b"MZ"[..], FILE_HEAD_SIZE), (b"GIF89a", BOF_BUFFER_SIZE), (b"M", BOF_BUFFER_SIZE)] {
            let mut body = start.to_vec();
            body.resize(20_000, b'x');
            let mut stream = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
            stream.extend_from_slice(&body);
            let ev = run(BodyExpect::Expected, &mut ConnFlags::default(), &stream);
            assert_eq!(content(&ev), &body[..copied], "body starting {start:?}");
            let total: u64 = ev.iter().map(|e| if let MsgEvent::Data { len, .. } = e { *len } else { 0 }).sum();
            assert_eq!(total, body.len() as u64);
        }
        // The signature split over deliveries.
        assert_eq!(pe::match_dos_signature(Some(0), *b"M"), Some(1));
        assert_eq!(pe::match_dos_signature(Some(1), *b"Z"), Some(2));
        assert_eq!(pe::match_dos_signature(Some(1), *b"MZ"), None);
        assert_eq!(pe::match_dos_signature(Some(2), *b"xx"), Some(2));
        assert_eq!(pe::match_dos_signature(None, *b"MZ"), None);
    }

    #[test]
    fn chunked_body() {
        let mut flags = ConnFlags { framing_version: (1, 1), ..Default::default() };
        let ev = run(
            BodyExpect::Expected,
            &mut flags,
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(content(&ev), b"abcde");
        assert_eq!(body_length(&ev), Some(5));
    }

    #[test]
    fn multipart_part_becomes_content_without_the_boundary_crlf() {
        let body =
            b"--XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t.txt\"\r\n\r\n1 a\n2 b\n\r\n--XB--\r\n";
        let head = format!("Content-Type: multipart/form-data; boundary=XB\r\nContent-Length: {}\r\n\r\n", body.len());
        let stream = [head.as_bytes(), body].concat();
        let ev = run(BodyExpect::Maybe, &mut ConnFlags::default(), &stream);
        assert_eq!(content(&ev), b"1 a\n2 b\n");
        assert_eq!(body_length(&ev), Some(body.len() as u64));
    }

    #[test]
    fn gzip_body_is_measured_decompressed() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&[b'x'; 1000]).unwrap();
        let gz = enc.finish().unwrap();
        let head = format!("Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", gz.len());
        let ev = run(BodyExpect::Expected, &mut ConnFlags::default(), &[head.as_bytes(), &gz].concat());
        assert_eq!(body_length(&ev), Some(1000));
        assert!(ev.contains(&MsgEvent::EndEntity { total_bytes: None, hold: false }));
    }
}
