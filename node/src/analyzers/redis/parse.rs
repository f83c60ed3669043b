//! RESP as Zeek's Spicy grammar reads it (src/analyzer/protocol/redis/resp.spicy), and commands and replies as
//! redis.spicy turns them into the events' records (`make_command`, `make_server_reply`).
//!
//! Both directions are parsed incrementally: a unit in progress keeps only what its records need (an element's
//! first `max_value_size` bytes, a number's digits), never the whole message.
//!
//! The client side (`ClientMessages`) is a run of `ClientData`: a `*N` array of `$len` bulk strings, or an inline
//! command (one line, at most 1024 bytes with its CRLF). It has no synchronization point: an error ends it.
//!
//! The server side (`ServerMessages`) is a run of `ServerData &synchronize` with `%synchronize-after = "\r\n"`: an
//! element that fails is abandoned and parsing resumes after the first CRLF following that element's start (the
//! list's cursor stays at the element's start in Spicy's generated code), in Spicy's trial mode. Nothing in the
//! grammar confirms a synchronization, so once trial mode is entered the end of the stream is the error
//! "successful synchronization never confirmed" ([`ServerParser::finish`]). The bytes of an element after its
//! first line are kept (up to [`MAX_SIZE`]) so that they can be parsed again from there.

/// resp.spicy's `MAX_SIZE`: the longest line (`RedisBytes`, CRLF included) and bulk string.
pub const MAX_SIZE: usize = 1024 * 1024;
/// resp.spicy's `MAX_RECURSION_DEPTH`: how deeply `Data` units nest.
pub const MAX_RECURSION_DEPTH: usize = 20;
/// `ClientData`'s inline command: `RedisBytes &max-size=1024`.
pub const MAX_INLINE: usize = 1024;

/// The analyzer's options (main.zeek's `Redis::max_value_size` and `Redis::max_aggregate_elements`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How many bytes of each command element and of a reply's text reach the events; 0 means [`MAX_SIZE`].
    pub max_value_size: usize,
    /// How many child values one top-level aggregate may announce in all; 0 disables the limit.
    pub max_aggregate_elements: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_value_size: 250, max_aggregate_elements: 20_000 }
    }
}

impl Limits {
    /// redis.spicy's `max_value_size()`: 0 caps at what the parser would stop at anyway.
    pub fn value_cap(&self) -> usize {
        if self.max_value_size == 0 { MAX_SIZE } else { self.max_value_size }
    }

    /// resp.spicy's `reserve_elements`: counts `count` more children of the top-level value against the limit.
    fn reserve(&self, seen: &mut u64, count: u64) -> Result<(), String> {
        let limit = self.max_aggregate_elements;
        if limit == 0 {
            return Ok(());
        }
        if *seen > limit || count > limit - *seen {
            return Err(format!("too many elements {} > {limit}", seen.saturating_add(count)));
        }
        *seen += count;
        Ok(())
    }
}

/// `RedisBytes`: bytes up to and including the first CRLF, at most `max` bytes in all. Keeps the first `keep`
/// bytes (the content is what precedes the CRLF).
#[derive(Debug, Clone)]
struct Line {
    kept: Vec<u8>,
    keep: usize,
    consumed: usize,
    max: usize,
    prev_cr: bool,
}

/// How far a [`Line`] got with the input it was given.
enum LineStep {
    /// All the input was taken; the CRLF is still to come.
    More,
    /// The CRLF ended after this many bytes of the input.
    Done(usize),
    /// `max` bytes went by without a CRLF (this many of the input taken).
    TooLong(usize),
}

impl Line {
    fn new(keep: usize, max: usize) -> Self {
        Line { kept: Vec::new(), keep, consumed: 0, max, prev_cr: false }
    }

    fn feed(&mut self, input: &[u8]) -> LineStep {
        let room = self.max.saturating_sub(self.consumed);
        let window = input.get(..input.len().min(room)).unwrap_or_default();
        let end = crlf_end(self.prev_cr, window);
        let taken = end.unwrap_or(window.len());
        let take = window.get(..taken).unwrap_or_default();
        let keep = take.len().min(self.keep.saturating_sub(self.kept.len()));
        self.kept.extend_from_slice(take.get(..keep).unwrap_or_default());
        self.consumed = self.consumed.saturating_add(taken);
        if let Some(last) = take.last() {
            self.prev_cr = *last == b'\r';
        }
        match end {
            Some(n) => LineStep::Done(n),
            None if self.consumed >= self.max => LineStep::TooLong(taken),
            None => LineStep::More,
        }
    }

    /// The line without its CRLF, as far as it was kept.
    fn content(&self) -> &[u8] {
        let len = self.consumed.saturating_sub(2);
        self.kept.get(..self.kept.len().min(len)).unwrap_or_default()
    }
}

/// Where the first CRLF in `input` ends (just after its LF), `prev_cr` telling whether the byte before `input` was
/// a CR.
fn crlf_end(prev_cr: bool, input: &[u8]) -> Option<usize> {
    if prev_cr && input.first() == Some(&b'\n') {
        return Some(1);
    }
    input.windows(2).position(|w| w == b"\r\n").map(|at| at + 2)
}

/// Spicy's `bytes::to_int(10)`: an optional `-` and decimal digits (wrapping as the runtime's 64-bit arithmetic
/// does).
fn to_int(b: &[u8]) -> Result<i64, String> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let magnitude = digits_value(digits).ok_or_else(|| "cannot parse bytes as signed integer".to_string())?;
    let value = magnitude.cast_signed();
    Ok(if negative { value.wrapping_neg() } else { value })
}

/// Spicy's `bytes::to_uint(10)`.
fn to_uint(b: &[u8]) -> Result<u64, String> {
    digits_value(b).ok_or_else(|| "cannot parse bytes as unsigned integer".to_string())
}

fn digits_value(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))))
}

/// Text that grows up to a cap: redis.spicy's `append`, whose result is always a prefix of the whole rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Capped {
    text: Vec<u8>,
    cap: usize,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Capped { text: Vec::new(), cap }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.text.len());
        self.text.extend_from_slice(bytes.get(..bytes.len().min(room)).unwrap_or_default());
    }
}

/// redis.spicy's `RedisCommand`: the commands it recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Known {
    Append,
    Auth,
    Bitcount,
    Bitfield,
    BitfieldRo,
    Bitop,
    Bitpos,
    Blmpop,
    Blpop,
    Brpop,
    Client,
    Copy,
    Decr,
    Decrby,
    Del,
    Dump,
    Exists,
    Expire,
    Expireat,
    Expiretime,
    Get,
    Getbit,
    Getdel,
    Getex,
    Getrange,
    Getset,
    Hdel,
    Hello,
    Hget,
    Hset,
    Incr,
    Incrby,
    Keys,
    Mget,
    Move,
    Mset,
    Persist,
    Psubscribe,
    Punsubscribe,
    Quit,
    Rename,
    Reset,
    Set,
    Strlen,
    Subscribe,
    Ssubscribe,
    Sunsubscribe,
    Ttl,
    Type,
    Unsubscribe,
}

impl Known {
    /// `command_from`: the command a first element names, case-insensitively.
    pub fn from_name(name: &[u8]) -> Option<Known> {
        use Known::*;
        let known = match name.to_ascii_lowercase().as_slice() {
            b"append" => Append,
            b"auth" => Auth,
            b"bitcount" => Bitcount,
            b"bitfield" => Bitfield,
            b"bitfield_ro" => BitfieldRo,
            b"bitop" => Bitop,
            b"bitpos" => Bitpos,
            b"blmpop" => Blmpop,
            b"blpop" => Blpop,
            b"brpop" => Brpop,
            b"client" => Client,
            b"copy" => Copy,
            b"decr" => Decr,
            b"decrby" => Decrby,
            b"del" => Del,
            b"dump" => Dump,
            b"exists" => Exists,
            b"expire" => Expire,
            b"expireat" => Expireat,
            b"expiretime" => Expiretime,
            b"get" => Get,
            b"getbit" => Getbit,
            b"getdel" => Getdel,
            b"getex" => Getex,
            b"getrange" => Getrange,
            b"getset" => Getset,
            b"hdel" => Hdel,
            b"hello" => Hello,
            b"hget" => Hget,
            b"hset" => Hset,
            b"incr" => Incr,
            b"incrby" => Incrby,
            b"keys" => Keys,
            b"mget" => Mget,
            b"move" => Move,
            b"mset" => Mset,
            b"persist" => Persist,
            b"psubscribe" => Psubscribe,
            b"punsubscribe" => Punsubscribe,
            b"quit" => Quit,
            b"rename" => Rename,
            b"reset" => Reset,
            b"set" => Set,
            b"strlen" => Strlen,
            b"ssubscribe" => Ssubscribe,
            b"subscribe" => Subscribe,
            b"sunsubscribe" => Sunsubscribe,
            b"ttl" => Ttl,
            b"type" => Type,
            b"unsubscribe" => Unsubscribe,
            _ => return None,
        };
        Some(known)
    }

    /// Commands whose second element `parse_command` takes as the key.
    fn key_at_1(self) -> bool {
        use Known::*;
        matches!(
            self,
            Keys | Append
                | Bitcount
                | Bitfield
                | BitfieldRo
                | Bitpos
                | Blpop
                | Brpop
                | Copy
                | Decr
                | Decrby
                | Del
                | Dump
                | Exists
                | Expire
                | Expireat
                | Expiretime
                | Get
                | Getbit
                | Getdel
                | Getex
                | Getrange
                | Getset
                | Hdel
                | Hget
                | Hset
                | Incr
                | Incrby
                | Mget
                | Move
                | Mset
                | Persist
                | Rename
                | Set
                | Strlen
                | Ttl
                | Type
        )
    }

    /// Commands whose third element `parse_command` takes as the value.
    fn value_at_2(self) -> bool {
        use Known::*;
        matches!(
            self,
            Set | Append | Decrby | Expire | Expireat | Getbit | Getset | Hdel | Hget | Incrby | Move | Mset | Rename
        )
    }
}

/// redis.spicy's `Command`: the elements (each cut at `max_value_size`), the first as its name, and the key and
/// value of the commands it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub raw: Vec<Vec<u8>>,
    pub known: Option<Known>,
    pub key: Option<usize>,
    pub value: Option<usize>,
}

impl Command {
    /// `parse_command`: which elements are the key and the value. `raw` is not empty.
    fn new(raw: Vec<Vec<u8>>) -> Command {
        let known = raw.first().and_then(|name| Known::from_name(name));
        let mut cmd = Command { raw, known, key: None, value: None };
        let Some(known) = known else { return cmd };
        let n = cmd.raw.len();
        if n >= 2 && known.key_at_1() {
            cmd.key = Some(1);
        }
        if n >= 3 {
            if known.value_at_2() {
                cmd.value = Some(2);
            } else if known == Known::Bitop {
                // Op first, destination second, then the keys: the destination is logged.
                cmd.key = Some(2);
            }
        }
        if n >= 4 && known == Known::Blmpop {
            // Timeout and number of keys first.
            cmd.key = Some(3);
        }
        cmd
    }

    pub fn name(&self) -> &[u8] {
        self.raw.first().map_or(&[], Vec::as_slice)
    }

    pub fn key(&self) -> Option<&[u8]> {
        self.key.and_then(|i| self.raw.get(i)).map(Vec::as_slice)
    }

    pub fn value(&self) -> Option<&[u8]> {
        self.value.and_then(|i| self.raw.get(i)).map(Vec::as_slice)
    }
}

/// `inline_command`'s tokenizer: whitespace (NUL, TAB, LF, CR, space) separates tokens, and inside double or single
/// quotes (which stay part of the token) it does not; a backslash before the closing quote's kind escapes it.
pub fn tokenize_inline(line: &[u8]) -> Vec<&[u8]> {
    let is_space = |b: u8| matches!(b, 0 | 9 | 10 | 13 | 32);
    let mut tokens = Vec::new();
    let mut at = 0;
    let end = line.len();
    let byte = |i: usize| line.get(i).copied().unwrap_or(0);
    loop {
        while at < end && is_space(byte(at)) {
            at += 1;
        }
        if at >= end {
            break;
        }
        let start = at;
        let mut quote: Option<u8> = None;
        loop {
            match quote {
                Some(q) => {
                    if byte(at) == b'\\' && at + 1 < end && byte(at + 1) == q {
                        // The escaped quote is skipped with the backslash.
                        at += 1;
                    } else if byte(at) == q {
                        quote = None;
                    }
                    at += 1;
                }
                None => match byte(at) {
                    q @ (b'"' | b'\'') => {
                        quote = Some(q);
                        at += 1;
                    }
                    b if is_space(b) => break,
                    _ => at += 1,
                },
            }
            if at >= end {
                break;
            }
        }
        let at_most = at.min(end);
        tokens.push(line.get(start..at_most).unwrap_or_default());
        at = at_most;
    }
    tokens
}

/// What the client side produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Command(Command),
    /// The client side cannot be parsed any further (Spicy's parse error, a violation).
    Error(String),
}

/// Where a client unit is.
#[derive(Debug, Clone)]
enum ClientStep {
    /// The next `ClientData` starts: its first byte decides.
    Start,
    Inline(Line),
    Count(Line),
    /// A `BulkStringWithTy`'s `$`.
    ElementType,
    ElementLength(Line),
    ElementContent {
        remaining: usize,
        content: Vec<u8>,
    },
    /// The `skip RedisBytes` after a bulk string (also after a null one).
    ElementTrailer {
        line: Line,
        content: Option<Vec<u8>>,
    },
}

/// `ClientMessages`: the client's commands.
#[derive(Debug, Clone)]
pub struct ClientParser {
    limits: Limits,
    step: ClientStep,
    /// Elements of the array still to come, and those read (`None`: a null bulk string).
    left: u64,
    elements: Vec<Option<Vec<u8>>>,
    failed: bool,
}

impl ClientParser {
    pub fn new(limits: Limits) -> Self {
        ClientParser { limits, step: ClientStep::Start, left: 0, elements: Vec::new(), failed: false }
    }

    /// Whether a unit is under way (bytes of it were taken).
    pub fn mid_unit(&self) -> bool {
        !self.failed && !matches!(self.step, ClientStep::Start)
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Parses `data`, appending what it completes.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<ClientEvent>) {
        while !self.failed && !data.is_empty() {
            match self.advance(data) {
                Ok((used, done)) => {
                    data = data.get(used..).unwrap_or_default();
                    if done {
                        self.complete(out);
                    }
                }
                Err(e) => {
                    self.failed = true;
                    out.push(ClientEvent::Error(e));
                }
            }
        }
    }

    /// The end of the direction: a unit cut short is an error.
    pub fn finish(&mut self) -> Option<String> {
        if self.mid_unit() {
            self.failed = true;
            return Some("expected more data: end of client data reached inside a unit".into());
        }
        None
    }

    /// One step: how many bytes it took and whether a `ClientData` is complete.
    fn advance(&mut self, data: &[u8]) -> Result<(usize, bool), String> {
        let cap = self.limits.value_cap();
        match &mut self.step {
            ClientStep::Start => {
                if data.first() == Some(&b'*') {
                    self.elements.clear();
                    self.step = ClientStep::Count(Line::new(MAX_SIZE, MAX_SIZE));
                    Ok((1, false))
                } else {
                    // An inline command: the type byte is read again as the line's start.
                    self.step = ClientStep::Inline(Line::new(MAX_INLINE, MAX_INLINE));
                    Ok((0, false))
                }
            }
            ClientStep::Inline(line) => match line.feed(data) {
                LineStep::More => Ok((data.len(), false)),
                LineStep::TooLong(_) => Err("inline command exceeds &max-size of 1024 bytes".into()),
                LineStep::Done(n) => {
                    let raw: Vec<Vec<u8>> = tokenize_inline(line.content())
                        .into_iter()
                        .map(|t| t.get(..t.len().min(cap)).unwrap_or_default().to_vec())
                        .collect();
                    self.elements = raw.into_iter().map(Some).collect();
                    Ok((n, true))
                }
            },
            ClientStep::Count(line) => match line.feed(data) {
                LineStep::More => Ok((data.len(), false)),
                LineStep::TooLong(_) => Err(too_long()),
                LineStep::Done(n) => {
                    let count = to_int(line.content())?;
                    if count != -1 {
                        let wanted = u64::try_from(count).map_err(|_| requires_failed("num_elements"))?;
                        // Each array counts on its own (`BulkStringArray`'s `elements_seen`).
                        self.limits.reserve(&mut 0, wanted)?;
                    }
                    self.left = u64::try_from(count).unwrap_or(0);
                    let done = self.left == 0;
                    self.step = if done { ClientStep::Start } else { ClientStep::ElementType };
                    Ok((n, done))
                }
            },
            ClientStep::ElementType => {
                if data.first() != Some(&b'$') {
                    return Err(requires_failed("$$ == '$'"));
                }
                self.step = ClientStep::ElementLength(Line::new(MAX_SIZE, MAX_SIZE));
                Ok((1, false))
            }
            ClientStep::ElementLength(line) => match line.feed(data) {
                LineStep::More => Ok((data.len(), false)),
                LineStep::TooLong(_) => Err(too_long()),
                LineStep::Done(n) => {
                    let length = to_int(line.content())?;
                    if length > MAX_SIZE as i64 {
                        return Err(requires_failed("self.length <= int64(MAX_SIZE)"));
                    }
                    self.step = match usize::try_from(length) {
                        Ok(remaining) => ClientStep::ElementContent { remaining, content: Vec::new() },
                        Err(_) => ClientStep::ElementTrailer { line: Line::new(0, MAX_SIZE), content: None },
                    };
                    Ok((n, false))
                }
            },
            ClientStep::ElementContent { remaining, content } => {
                let take = data.len().min(*remaining);
                let chunk = data.get(..take).unwrap_or_default();
                let keep = chunk.len().min(cap.saturating_sub(content.len()));
                content.extend_from_slice(chunk.get(..keep).unwrap_or_default());
                *remaining -= take;
                if *remaining == 0 {
                    let content = std::mem::take(content);
                    self.step = ClientStep::ElementTrailer { line: Line::new(0, MAX_SIZE), content: Some(content) };
                }
                Ok((take, false))
            }
            ClientStep::ElementTrailer { line, content } => match line.feed(data) {
                LineStep::More => Ok((data.len(), false)),
                LineStep::TooLong(_) => Err(too_long()),
                LineStep::Done(n) => {
                    self.elements.push(content.take());
                    self.left = self.left.saturating_sub(1);
                    let done = self.left == 0;
                    self.step = if done { ClientStep::Start } else { ClientStep::ElementType };
                    Ok((n, done))
                }
            },
        }
    }

    /// `ClientData`'s `%done`: `make_command`.
    fn complete(&mut self, out: &mut Vec<ClientEvent>) {
        self.step = ClientStep::Start;
        let elements = std::mem::take(&mut self.elements);
        let mut raw = Vec::with_capacity(elements.len());
        for element in elements {
            match element {
                Some(content) => raw.push(content),
                None => {
                    self.failed = true;
                    out.push(ClientEvent::Error("access to unset field 'content'".into()));
                    return;
                }
            }
        }
        if raw.is_empty() {
            self.failed = true;
            out.push(ClientEvent::Error("assertion failure: |raw| >= 1".into()));
            return;
        }
        out.push(ClientEvent::Command(Command::new(raw)));
    }
}

fn too_long() -> String {
    "RedisBytes exceeds &max-size of 1048576 bytes".into()
}

fn requires_failed(what: &str) -> String {
    format!("&requires failed: {what}")
}

/// redis.spicy's `ReplyType`, by `classify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyType {
    Reply,
    Error,
    Push,
}

/// redis.spicy's `ReplyData`, with the type the evt file dispatches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyType,
    /// The top-level value rendered as `stringify` does, cut at `max_value_size`.
    pub value: Vec<u8>,
    /// The RESP3 attributes rendered as `stringify_map` does.
    pub attributes: Option<Vec<u8>>,
    pub min_protocol_version: u8,
}

/// Where a value's rendering goes: the reply's value, its attributes, or nowhere (attributes of nested values,
/// which `make_server_reply` does not render).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Value,
    Attributes,
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggKind {
    Array,
    Push,
    Set,
    Map,
    /// A `Data`'s leading attribute map.
    Attributes,
}

impl AggKind {
    fn brackets(self) -> (&'static [u8], &'static [u8]) {
        match self {
            AggKind::Array | AggKind::Push => (b"[", b"]"),
            AggKind::Set => (b"(", b")"),
            AggKind::Map | AggKind::Attributes => (b"{", b"}"),
        }
    }

    /// What `stringify` writes before child `index`.
    fn separator(self, index: u64) -> &'static [u8] {
        match self {
            AggKind::Array | AggKind::Push | AggKind::Set if index > 0 => b", ",
            AggKind::Map | AggKind::Attributes if index % 2 == 1 => b": ",
            AggKind::Map | AggKind::Attributes if index > 0 => b", ",
            _ => b"",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Aggregate {
    kind: AggKind,
    left: u64,
    index: u64,
}

/// One `Data` unit under way.
#[derive(Debug, Clone, Copy)]
struct Node {
    target: Target,
    top: bool,
    /// The attribute map was read: the next type byte is the value's.
    after_attributes: bool,
    aggregate: Option<Aggregate>,
}

/// What a skipped line stands for once read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Nothing,
    Null,
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineUse {
    /// Simple strings and errors, integers, doubles, big numbers: the line is the text.
    Text,
    Skip(Fill),
    BulkLength,
    Count {
        kind: AggKind,
        signed: bool,
    },
}

#[derive(Debug, Clone)]
enum ServerStep {
    /// A `Data` begins (its `%init`, with the depth check).
    DataStart,
    Type,
    Line(Line, LineUse),
    Bulk {
        remaining: usize,
    },
    Bool,
    /// The innermost node is an aggregate: its next child, or its end.
    Next,
}

/// A `ServerData` under way.
#[derive(Debug, Clone)]
struct Element {
    nodes: Vec<Node>,
    step: ServerStep,
    /// `elements_seen`, against `max_aggregate_elements`.
    seen: u64,
    value: Capped,
    attributes: Option<Capped>,
    top_type: u8,
}

/// What one step of an element came to.
enum Outcome {
    More,
    Done(Reply),
    Error(String),
}

impl Element {
    fn new(cap: usize) -> Self {
        Element {
            nodes: Vec::new(),
            step: ServerStep::DataStart,
            seen: 0,
            value: Capped::new(cap),
            attributes: None,
            top_type: 0,
        }
    }

    fn emit(&mut self, target: Target, bytes: &[u8]) {
        match target {
            Target::Value => self.value.push(bytes),
            Target::Attributes => {
                if let Some(a) = self.attributes.as_mut() {
                    a.push(bytes);
                }
            }
            Target::Discard => {}
        }
    }

    /// Takes bytes from `input` until the element is complete, fails, or the input is used up; returns how many.
    fn advance(&mut self, input: &[u8], limits: &Limits) -> (usize, Outcome) {
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            match self.step(rest, limits) {
                Ok((n, None)) => {
                    used += n;
                    if n == 0 && rest.is_empty() && self.needs_input() {
                        return (used, Outcome::More);
                    }
                }
                Ok((n, Some(reply))) => return (used + n, Outcome::Done(reply)),
                Err((n, e)) => return (used + n, Outcome::Error(e)),
            }
        }
    }

    /// Whether the current step waits for bytes (the others run without any).
    fn needs_input(&self) -> bool {
        !matches!(self.step, ServerStep::DataStart | ServerStep::Next)
    }

    /// One step: bytes taken, and the reply once the top-level value is complete.
    #[allow(clippy::type_complexity)]
    fn step(&mut self, input: &[u8], limits: &Limits) -> Result<(usize, Option<Reply>), (usize, String)> {
        let cap = limits.value_cap();
        match &mut self.step {
            ServerStep::DataStart => {
                if self.nodes.len() >= MAX_RECURSION_DEPTH {
                    return Err((0, "exceeded max recursion depth".into()));
                }
                let (target, separator) = match self.nodes.last().and_then(|n| n.aggregate.map(|a| (n, a))) {
                    None => (Target::Value, &b""[..]),
                    Some((parent, agg)) => {
                        let target = match (agg.kind, parent.top) {
                            (AggKind::Attributes, true) => Target::Attributes,
                            (AggKind::Attributes, false) => Target::Discard,
                            _ => parent.target,
                        };
                        (target, agg.kind.separator(agg.index))
                    }
                };
                self.emit(target, separator);
                let top = self.nodes.is_empty();
                self.nodes.push(Node { target, top, after_attributes: false, aggregate: None });
                self.step = ServerStep::Type;
                Ok((0, None))
            }
            ServerStep::Type => {
                let Some(&ty) = input.first() else { return Ok((0, None)) };
                let Some(node) = self.nodes.last_mut() else { return Err((1, "no data unit".into())) };
                if ty == b'|' && !node.after_attributes {
                    if node.top {
                        self.attributes = Some(Capped::new(cap));
                    }
                    self.step = ServerStep::Line(
                        Line::new(MAX_SIZE, MAX_SIZE),
                        LineUse::Count { kind: AggKind::Attributes, signed: false },
                    );
                    return Ok((1, None));
                }
                if node.top {
                    self.top_type = ty;
                }
                let (keep, what) = match ty {
                    b'+' | b'-' | b':' | b',' | b'(' => (cap, LineUse::Text),
                    b'$' | b'!' | b'=' => (MAX_SIZE, LineUse::BulkLength),
                    b'*' => (MAX_SIZE, LineUse::Count { kind: AggKind::Array, signed: true }),
                    b'>' => (MAX_SIZE, LineUse::Count { kind: AggKind::Push, signed: true }),
                    b'%' => (MAX_SIZE, LineUse::Count { kind: AggKind::Map, signed: false }),
                    b'~' => (MAX_SIZE, LineUse::Count { kind: AggKind::Set, signed: false }),
                    b'_' => (0, LineUse::Skip(Fill::Null)),
                    b'#' => {
                        self.step = ServerStep::Bool;
                        return Ok((1, None));
                    }
                    other => return Err((1, format!("no matching case in switch statement for value '{other}'"))),
                };
                self.step = ServerStep::Line(Line::new(keep, MAX_SIZE), what);
                Ok((1, None))
            }
            ServerStep::Bool => {
                let Some(&val) = input.first() else { return Ok((0, None)) };
                self.step = ServerStep::Line(Line::new(0, MAX_SIZE), LineUse::Skip(Fill::Bool(val == b't')));
                Ok((1, None))
            }
            ServerStep::Line(line, what) => {
                let what = *what;
                match line.feed(input) {
                    LineStep::More => Ok((input.len(), None)),
                    LineStep::TooLong(n) => Err((n, too_long())),
                    LineStep::Done(n) => {
                        let content = std::mem::take(&mut line.kept);
                        let len = line.consumed.saturating_sub(2).min(content.len());
                        let content = content.get(..len).unwrap_or_default();
                        self.line_done(content, what, limits).map(|reply| (n, reply)).map_err(|e| (n, e))
                    }
                }
            }
            ServerStep::Bulk { remaining } => {
                let take = input.len().min(*remaining);
                *remaining -= take;
                if *remaining == 0 {
                    self.step = ServerStep::Line(Line::new(0, MAX_SIZE), LineUse::Skip(Fill::Nothing));
                }
                let target = self.nodes.last().map_or(Target::Discard, |n| n.target);
                self.emit(target, input.get(..take).unwrap_or_default());
                Ok((take, None))
            }
            ServerStep::Next => {
                let Some(node) = self.nodes.last_mut() else { return Err((0, "no data unit".into())) };
                let Some(agg) = node.aggregate else { return Err((0, "no aggregate".into())) };
                if agg.left > 0 {
                    self.step = ServerStep::DataStart;
                    return Ok((0, None));
                }
                node.aggregate = None;
                let target = agg_target(node, agg.kind);
                let closer = agg.kind.brackets().1;
                if agg.kind == AggKind::Attributes {
                    node.after_attributes = true;
                    self.step = ServerStep::Type;
                    self.emit(target, closer);
                    return Ok((0, None));
                }
                self.emit(target, closer);
                Ok((0, self.complete_node()))
            }
        }
    }

    /// A line of the innermost node was read.
    fn line_done(&mut self, content: &[u8], what: LineUse, limits: &Limits) -> Result<Option<Reply>, String> {
        let target = self.nodes.last().map_or(Target::Discard, |n| n.target);
        match what {
            LineUse::Text => {
                self.emit(target, content);
                Ok(self.complete_node())
            }
            LineUse::Skip(fill) => {
                match fill {
                    Fill::Nothing => {}
                    Fill::Null => self.emit(target, b"null"),
                    Fill::Bool(true) => self.emit(target, b"T"),
                    Fill::Bool(false) => self.emit(target, b"F"),
                }
                Ok(self.complete_node())
            }
            LineUse::BulkLength => {
                let length = to_int(content)?;
                if length > MAX_SIZE as i64 {
                    return Err(requires_failed("self.length <= int64(MAX_SIZE)"));
                }
                match usize::try_from(length) {
                    // A null bulk string renders as the empty string.
                    Err(_) => Ok(self.complete_node()),
                    Ok(remaining) => {
                        self.step = if remaining == 0 {
                            ServerStep::Line(Line::new(0, MAX_SIZE), LineUse::Skip(Fill::Nothing))
                        } else {
                            ServerStep::Bulk { remaining }
                        };
                        Ok(None)
                    }
                }
            }
            LineUse::Count { kind, signed } => {
                let children = if signed {
                    let n = to_int(content)?;
                    if n != -1 {
                        let wanted = u64::try_from(n).map_err(|_| requires_failed("num_elements"))?;
                        limits.reserve(&mut self.seen, wanted)?;
                    }
                    u64::try_from(n).unwrap_or(0)
                } else {
                    let n = to_uint(content)?;
                    limits.reserve(&mut self.seen, n)?;
                    match kind {
                        AggKind::Map | AggKind::Attributes => {
                            n.checked_mul(2).ok_or_else(|| "integer overflow".to_string())?
                        }
                        _ => n,
                    }
                };
                let Some(node) = self.nodes.last_mut() else { return Err("no data unit".into()) };
                node.aggregate = Some(Aggregate { kind, left: children, index: 0 });
                let target = agg_target(node, kind);
                self.emit(target, kind.brackets().0);
                self.step = ServerStep::Next;
                Ok(None)
            }
        }
    }

    /// The innermost `Data` is complete: its parent moves on, or the element is done.
    fn complete_node(&mut self) -> Option<Reply> {
        self.nodes.pop();
        match self.nodes.last_mut().and_then(|n| n.aggregate.as_mut()) {
            Some(agg) => {
                agg.left = agg.left.saturating_sub(1);
                agg.index = agg.index.saturating_add(1);
                self.step = ServerStep::Next;
                None
            }
            None => Some(self.reply()),
        }
    }

    /// `make_server_reply` with `classify`.
    fn reply(&mut self) -> Reply {
        let kind = match self.top_type {
            b'-' | b'!' => ReplyType::Error,
            b'>' => ReplyType::Push,
            _ => ReplyType::Reply,
        };
        let resp3_type = matches!(self.top_type, b'_' | b'#' | b',' | b'(' | b'!' | b'=' | b'%' | b'~' | b'>');
        let attributes = self.attributes.take().map(|a| a.text);
        Reply {
            kind,
            value: std::mem::take(&mut self.value.text),
            min_protocol_version: if resp3_type || attributes.is_some() { 3 } else { 2 },
            attributes,
        }
    }
}

/// Where an aggregate's brackets go: an attribute map's into the reply's attributes (top level) or nowhere.
fn agg_target(node: &Node, kind: AggKind) -> Target {
    match (kind, node.top) {
        (AggKind::Attributes, true) => Target::Attributes,
        (AggKind::Attributes, false) => Target::Discard,
        _ => node.target,
    }
}

/// `ServerMessages`: the server's replies, with Spicy's synchronization after errors.
#[derive(Debug, Clone)]
pub struct ServerParser {
    limits: Limits,
    element: Element,
    /// Bytes of the current element were taken.
    started: bool,
    /// The current element's first CRLF: whether it went by, and whether the last byte taken was a CR.
    crlf_seen: bool,
    prev_cr: bool,
    /// The current element's bytes after its first CRLF (where a synchronization resumes), up to [`MAX_SIZE`].
    retained: Vec<u8>,
    retained_all: bool,
    /// After an error before the element's first CRLF: still looking for it (the flag: last byte a CR).
    seeking: Option<bool>,
    /// The last error since the stream entered trial mode.
    trial: Option<String>,
    /// Parsing ended for good.
    done: bool,
}

impl ServerParser {
    pub fn new(limits: Limits) -> Self {
        ServerParser {
            limits,
            element: Element::new(limits.value_cap()),
            started: false,
            crlf_seen: false,
            prev_cr: false,
            retained: Vec::new(),
            retained_all: true,
            seeking: None,
            trial: None,
            done: false,
        }
    }

    /// Whether the stream is in trial mode (an error was synchronized past).
    pub fn in_trial_mode(&self) -> bool {
        self.trial.is_some()
    }

    fn reset_element(&mut self) {
        self.element = Element::new(self.limits.value_cap());
        self.started = false;
        self.crlf_seen = false;
        self.prev_cr = false;
        self.retained = Vec::new();
        self.retained_all = true;
    }

    /// Notes bytes the current element took: its first CRLF, and what follows it.
    fn note_taken(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.started = true;
        let after = if self.crlf_seen {
            bytes
        } else {
            match crlf_end(self.prev_cr, bytes) {
                Some(end) => {
                    self.crlf_seen = true;
                    bytes.get(end..).unwrap_or_default()
                }
                None => {
                    self.prev_cr = bytes.last() == Some(&b'\r');
                    &[]
                }
            }
        };
        let room = MAX_SIZE.saturating_sub(self.retained.len());
        if after.len() > room {
            self.retained_all = false;
        }
        self.retained.extend_from_slice(after.get(..after.len().min(room)).unwrap_or_default());
    }

    /// Parses `data`, appending the replies it completes.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Reply>) {
        self.run(data, false, out);
    }

    /// The end of the direction. Returns the violation Spicy reports, if any: a unit that cannot be completed
    /// (nor synchronized past), or trial mode never left.
    pub fn finish(&mut self, out: &mut Vec<Reply>) -> Option<String> {
        if self.done {
            return None;
        }
        let failure = self.run(&[], true, out);
        self.done = true;
        failure.or_else(|| self.trial.take().map(|e| format!("successful synchronization never confirmed: {e}")))
    }

    /// The parsing loop: `data` after what is replayed from the element that failed. At the end (`eod`), a unit
    /// that needs more input fails; returns the error that no synchronization got past.
    fn run(&mut self, data: &[u8], eod: bool, out: &mut Vec<Reply>) -> Option<String> {
        if self.done {
            return None;
        }
        // Bytes to parse again before the rest of `data` (an element's bytes after its first CRLF).
        let mut replay: Vec<u8> = Vec::new();
        let mut replay_at = 0;
        let mut at = 0;
        loop {
            let from_replay = replay_at < replay.len();
            let input = if from_replay {
                replay.get(replay_at..).unwrap_or_default()
            } else {
                data.get(at..).unwrap_or_default()
            };
            if let Some(prev_cr) = self.seeking {
                match crlf_end(prev_cr, input) {
                    Some(end) => {
                        self.seeking = None;
                        advance_by(from_replay, &mut replay_at, &mut at, end);
                        continue;
                    }
                    None if !input.is_empty() => {
                        self.seeking = Some(input.last() == Some(&b'\r'));
                        advance_by(from_replay, &mut replay_at, &mut at, input.len());
                        continue;
                    }
                    None if eod => {
                        // No synchronization point before the end: the error stands.
                        self.done = true;
                        return self.trial.take();
                    }
                    None => return None,
                }
            }
            if input.is_empty() && !eod {
                return None;
            }
            if input.is_empty() && !self.started && self.element.nodes.is_empty() {
                // The end, between elements.
                return None;
            }
            let limits = self.limits;
            let (used, outcome) = self.element.advance(input, &limits);
            self.note_taken(input.get(..used).unwrap_or_default());
            advance_by(from_replay, &mut replay_at, &mut at, used);
            let error = match outcome {
                Outcome::More if !eod => continue,
                Outcome::More => "expected more data: end of server data reached inside a unit".to_string(),
                Outcome::Done(reply) => {
                    out.push(reply);
                    self.reset_element();
                    continue;
                }
                Outcome::Error(e) => e,
            };
            // Synchronize: resume after the element's first CRLF.
            self.trial = Some(error);
            if self.crlf_seen {
                let mut again = std::mem::take(&mut self.retained);
                if !self.retained_all {
                    // More than MAX_SIZE bytes followed the first line: resume where the error was instead.
                    again.clear();
                }
                // What is left of an earlier replay follows (the new bytes come after it).
                again.extend_from_slice(replay.get(replay_at..).unwrap_or_default());
                replay = again;
                replay_at = 0;
                self.reset_element();
            } else {
                let prev_cr = self.prev_cr;
                self.reset_element();
                self.seeking = Some(prev_cr);
            }
        }
    }
}

/// Moves the position in the replayed bytes or in the new ones.
fn advance_by(from_replay: bool, replay_at: &mut usize, at: &mut usize, n: usize) {
    if from_replay {
        *replay_at += n;
    } else {
        *at += n;
    }
}
