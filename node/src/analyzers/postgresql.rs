//! PostgreSQL (tcp 5432): postgresql.log, as Zeek's base/protocols/postgresql writes it.
//!
//! The parser follows Zeek's Spicy grammar (src/analyzer/protocol/postgresql/postgresql.spicy, postgresql.evt,
//! postgresql_zeek.spicy). The client's first eight bytes decide the rest: a length of 8 and the code 80877103 is an
//! `SSLRequest`, after which the server's first byte (`S` or `N`) says whether TLS follows (`S`: both directions go
//! to the TLS analyzer); anything else must carry protocol major version 3 and starts the `StartupMessage` (length,
//! version, `name NUL value NUL` parameters, a NUL). Then each side is a run of messages: a type byte and a
//! big-endian length of at least 4 that counts itself. Until the client's first eight bytes are known, the server's
//! deliveries wait (and after an `SSLRequest` the client's, until the server answered); a fifth one waiting is an
//! error. The client's `StartupMessage` and the server's SSL answer confirm; whatever does not parse is a violation
//! and the analyzer stops.
//!
//! The record (scripts/base/protocols/postgresql/main.zeek) follows the script's events: the startup and its
//! authentication, each simple query with its data rows, and a terminate are written at the server's
//! `ReadyForQuery`, an error, the next query, or the connection's end.

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, be_u16, be_u32};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static POSTGRESQL_LOG: Schema = Schema {
    path: "postgresql",
    fields: conn_fields![
        f("user", "string"),
        f("database", "string"),
        f("application_name", "string"),
        f("frontend", "string"),
        f("frontend_arg", "string"),
        f("backend", "string"),
        f("backend_arg", "string"),
        f("success", "bool"),
        f("rows", "count"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "postgresql",
    tcp_ports: &[5432],
    udp_ports: &[],
    // Zeek's DPD signatures pair a client pattern with a server pattern that `Signature` cannot express: the
    // analyzer attaches on its port only.
    detect: None,
    new: |_| Box::<PostgreSql>::default(),
    schemas: &[&POSTGRESQL_LOG],
};

const SSL_REQUEST_CODE: u32 = 80_877_103;
/// postgresql.spicy's `MAX_BUFFERED`: deliveries one side holds while it waits for the other; one more is an error.
const MAX_BUFFERED: usize = 4;
/// Longest message whose content is read (a startup, a query, an error): a longer one stops the analyzer (Spicy
/// would buffer it whole). Messages nothing logs are passed over at any length.
const MAX_MESSAGE: usize = 64 << 10;

/// Why the bytes are not PostgreSQL (Spicy's parse errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    #[error("error while parsing PostgreSQL: length {0} below {1}")]
    ShortLength(u32, u32),
    #[error("unsupported PostgreSQL major version {0}")]
    UnsupportedVersion(u32),
    #[error("error while parsing PostgreSQL StartupMessage: {0}")]
    Startup(&'static str),
    #[error("error while parsing PostgreSQL: {0}")]
    Message(&'static str),
    #[error("too many {} messages buffered", if *.0 { "frontend" } else { "backend" })]
    TooManyBuffered(bool),
    #[error("PostgreSQL message longer than {MAX_MESSAGE} bytes")]
    TooLong,
}

/// What the server answered an `SSLRequest` (or `Plain` when the client asked for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Plain,
    Tls,
}

/// A script event (postgresql.evt), in the order the parser raises them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    SslRequest,
    SslReply(u8),
    StartupParameter(String, String),
    StartupMessage,
    ErrorField(u8, String),
    ErrorResponse,
    NoticeField(u8, String),
    AuthenticationRequest(u32),
    AuthenticationOk,
    Terminate,
    SimpleQuery(String),
    DataRow,
    ReadyForQuery(u8),
}

/// One side's message stream after the opening: headers, then bodies read whole or passed over.
#[derive(Debug, Default)]
struct Messages {
    /// The client's stream starts with the `StartupMessage` (a length, no type byte).
    startup_done: bool,
    buf: Vec<u8>,
    /// Body bytes of a message nothing reads, still to pass over.
    skip: usize,
    /// The message being passed over is a data row, counted once it is whole.
    skipping_row: bool,
}

impl Messages {
    /// Parses what `data` completes, raising events; `client` for the frontend's messages.
    fn feed(&mut self, client: bool, mut data: &[u8], events: &mut Vec<Event>) -> Result<(), PgError> {
        loop {
            let passed = self.skip.min(data.len());
            self.skip -= passed;
            data = &data[passed..];
            if self.skip > 0 {
                return Ok(());
            }
            if std::mem::take(&mut self.skipping_row) {
                events.push(Event::DataRow);
            }
            if data.is_empty() {
                return Ok(());
            }
            let startup = client && !self.startup_done;
            let header: usize = if startup { 4 } else { 5 };
            let take = header.saturating_sub(self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < header {
                return Ok(());
            }
            // A startup's length counts the whole message; a typed message's all but its type byte.
            let (typ, length, min) =
                if startup { (None, be_u32(&self.buf, 0), 9) } else { (Some(self.buf[0]), be_u32(&self.buf, 1), 4) };
            if length < min {
                return Err(PgError::ShortLength(length, min));
            }
            let whole = length as usize + header - 4;
            if !reads_body(client, typ) {
                // Spicy's `NotImplemented`, and a data row, whose column count is all the script counts.
                self.buf.clear();
                self.skip = whole - header;
                if typ == Some(b'D') {
                    if self.skip < 2 {
                        return Err(PgError::Message("data row shorter than its column count"));
                    }
                    self.skipping_row = true;
                }
                continue;
            }
            if whole > MAX_MESSAGE {
                return Err(PgError::TooLong);
            }
            let take = whole.saturating_sub(self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < whole {
                return Ok(());
            }
            let message = std::mem::take(&mut self.buf);
            match typ {
                None => {
                    startup_message(&message[4..], events)?;
                    self.startup_done = true;
                }
                Some(typ) => message_body(client, typ, &message[5..], events)?,
            }
        }
    }
}

/// Whether a message's body is read (its events need it): the startup, and the types the grammar parses.
fn reads_body(client: bool, typ: Option<u8>) -> bool {
    match typ {
        None => true,
        Some(t) if client => matches!(t, b'X' | b'Q'),
        Some(t) => matches!(t, b'K' | b'E' | b'R' | b'S' | b'Z' | b'N'),
    }
}

/// The bytes up to the first NUL, and what follows it; `None` without a NUL.
fn until_nul(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = memchr::memchr(0, data)?;
    Some((&data[..at], &data[at + 1..]))
}

/// A parameter's name and value, and the bytes after it.
type Parameter<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// `name NUL value NUL` (`StartupParameter`, `ParameterStatus`): the name `[-_/A-Za-z0-9]+`, the value
/// `[\x20-\x7e]+`. `Ok(None)`: no name starts here (a list ends by look-ahead).
fn parameter(data: &[u8]) -> Result<Option<Parameter<'_>>, &'static str> {
    let name_len = data.iter().take_while(|&&b| b.is_ascii_alphanumeric() || b"-_/".contains(&b)).count();
    if name_len == 0 {
        return Ok(None);
    }
    let rest = data[name_len..].strip_prefix(b"\0").ok_or("parameter name not followed by NUL")?;
    let value_len = rest.iter().take_while(|&&b| (0x20..=0x7e).contains(&b)).count();
    if value_len == 0 {
        return Err("empty or unprintable parameter value");
    }
    let after = rest[value_len..].strip_prefix(b"\0").ok_or("parameter value not followed by NUL")?;
    Ok(Some((&data[..name_len], &rest[..value_len], after)))
}

/// `StartupMessage` after its length: the version (major 3), the parameters, a NUL.
fn startup_message(body: &[u8], events: &mut Vec<Event>) -> Result<(), PgError> {
    if be_u16(body, 0) != 3 {
        return Err(PgError::Startup("protocol major version is not 3"));
    }
    let (mut parameters, end) = body[4..].split_at(body.len() - 5);
    if end != [0] {
        return Err(PgError::Startup("no NUL after the parameters"));
    }
    while !parameters.is_empty() {
        // A list ended by look-ahead leaves bytes of its `&size`: Spicy's "&size amount not consumed".
        let (name, value, rest) =
            parameter(parameters).map_err(PgError::Startup)?.ok_or(PgError::Startup("&size amount not consumed"))?;
        events.push(Event::StartupParameter(bytes_to_log_string(name), bytes_to_log_string(value)));
        parameters = rest;
    }
    events.push(Event::StartupMessage);
    Ok(())
}

/// `ErrorResponse` and `NoticeResponse`: fields of a code byte and a NUL-terminated value, up to a NUL that ends
/// the message.
fn identified_fields(mut body: &[u8], notice: bool, events: &mut Vec<Event>) -> Result<(), PgError> {
    loop {
        match body {
            [0] => return Ok(()),
            [0, ..] => return Err(NOT_CONSUMED),
            [code, rest @ ..] => {
                let (value, after) = until_nul(rest).ok_or(PgError::Message("identified field without NUL"))?;
                let value = bytes_to_log_string(value);
                events.push(if notice { Event::NoticeField(*code, value) } else { Event::ErrorField(*code, value) });
                body = after;
            }
            [] => return Err(PgError::Message("identified fields without their closing NUL")),
        }
    }
}

/// Spicy's error when a unit leaves bytes of its `&size`.
const NOT_CONSUMED: PgError = PgError::Message("&size amount not consumed");

/// A whole message's body: the length's `&size`, which the message's unit must consume exactly.
fn message_body(client: bool, typ: u8, body: &[u8], events: &mut Vec<Event>) -> Result<(), PgError> {
    match (client, typ) {
        (true, b'X') if body.is_empty() => events.push(Event::Terminate),
        (true, b'X') => return Err(NOT_CONSUMED),
        (true, b'Q') => match until_nul(body) {
            Some((query, [])) => events.push(Event::SimpleQuery(bytes_to_log_string(query))),
            Some(_) => return Err(NOT_CONSUMED),
            None => return Err(PgError::Message("query without NUL")),
        },
        (false, b'K') if body.len() != 8 => return Err(PgError::Message("backend key data not 8 bytes")),
        (false, b'E') => {
            identified_fields(body, false, events)?;
            events.push(Event::ErrorResponse);
        }
        (false, b'N') => identified_fields(body, true, events)?,
        (false, b'R') => {
            let identifier = be_u32(body, 0);
            if body.len() < 4 || identifier > 12 {
                return Err(PgError::Message("authentication request identifier above 12"));
            }
            if identifier == 0 && body.len() != 4 {
                return Err(PgError::Message("AuthenticationOK with wrong length"));
            }
            events.push(if identifier == 0 {
                Event::AuthenticationOk
            } else {
                Event::AuthenticationRequest(identifier)
            });
        }
        (false, b'S') => match parameter(body).map_err(PgError::Message)? {
            Some((_, _, [])) => {}
            Some(_) => return Err(NOT_CONSUMED),
            None => return Err(PgError::Message("parameter status without a name")),
        },
        (false, b'Z') => match body {
            [status @ (b'I' | b'T' | b'E')] => events.push(Event::ReadyForQuery(*status)),
            [b'I' | b'T' | b'E', ..] => return Err(NOT_CONSUMED),
            _ => return Err(PgError::Message("ready for query with an unknown transaction status")),
        },
        _ => {}
    }
    Ok(())
}

/// main.zeek's `PostgreSQL::Info`: one exchange.
#[derive(Debug, Default)]
struct Info {
    ts: f64,
    frontend: Option<String>,
    frontend_arg: Option<String>,
    backend: Option<String>,
    backend_arg: Option<String>,
    success: Option<bool>,
    rows: Option<u64>,
}

/// main.zeek's `PostgreSQL::State`: what outlives one exchange.
#[derive(Debug, Default)]
struct State {
    user: Option<String>,
    database: Option<String>,
    application_name: Option<String>,
    rows: Option<u64>,
    errors: Vec<String>,
}

/// consts.zeek's `error_ids`, with its default.
fn error_id(code: u8) -> String {
    let name = match code {
        b'S' => "SeverityLocalized",
        b'V' => "Severity",
        b'C' => "Code",
        b'M' => "Message",
        b'D' => "Detail",
        b'H' => "Hint",
        b'P' => "Position",
        b'p' => "InternalPosition",
        b'q' => "InternalQuery",
        b'W' => "Where",
        b's' => "Schema",
        b't' => "Table",
        b'c' => "Column",
        b'd' => "Data",
        b'n' => "Constraint",
        b'F' => "File",
        b'L' => "Line",
        b'R' => "Routine",
        other => return format!("UnknownErrorId{}", bytes_to_log_string(&[other])),
    };
    name.to_string()
}

/// consts.zeek's `auth_ids`, with its default.
fn auth_id(identifier: u32) -> String {
    let name = match identifier {
        2 => "KerberosV5",
        3 => "CleartextPassword",
        5 => "MD5Password",
        7 => "GSSAPI",
        8 => "GSSAPIContinue",
        9 => "SSPI",
        10 => "SASL",
        11 => "SASLContinue",
        12 => "SASLFinal",
        other => return format!("UnknownAuthId{other}"),
    };
    name.to_string()
}

/// Appends `item` to a comma-joined field, or sets it.
fn append(field: &mut Option<String>, item: &str) {
    match field {
        Some(text) => {
            text.push(',');
            text.push_str(item);
        }
        None => *field = Some(item.to_string()),
    }
}

#[derive(Default)]
struct PostgreSql {
    /// The client's first eight bytes, until they are all there.
    opening: Vec<u8>,
    /// Whether the client opened with an `SSLRequest` (Spicy's `ssl_frontend_state`), once its first eight bytes
    /// are known.
    ssl_requested: Option<bool>,
    /// Spicy's `ssl_backend_state`: `Plain` at once without an `SSLRequest`, else the server's answer.
    backend: Option<Backend>,
    /// Deliveries each side (client, server) holds until the other's state is known.
    held: [Vec<Vec<u8>>; 2],
    messages: [Messages; 2],
    /// A parse error ended the analysis.
    stopped: bool,
    info: Option<Info>,
    state: Option<State>,
}

impl PostgreSql {
    /// The client's bytes: the opening, then (once the server's state allows) its messages.
    fn client(&mut self, mut data: &[u8], events: &mut Vec<Event>) -> Result<(), PgError> {
        if self.ssl_requested.is_none() {
            let take = (8 - self.opening.len()).min(data.len());
            self.opening.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.opening.len() < 8 {
                return Ok(());
            }
            let (length, code) = (be_u32(&self.opening, 0), be_u32(&self.opening, 4));
            if length < 8 {
                return Err(PgError::ShortLength(length, 8));
            }
            if length == 8 && code == SSL_REQUEST_CODE {
                self.ssl_requested = Some(true);
                events.push(Event::SslRequest);
            } else {
                self.ssl_requested = Some(false);
                self.backend = Some(Backend::Plain);
                if code >> 16 != 3 {
                    return Err(PgError::UnsupportedVersion(code >> 16));
                }
                // Handed back for the `StartupMessage` to parse.
                self.held[0].push(std::mem::take(&mut self.opening));
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        match self.backend {
            None => {
                self.held[0].push(data.to_vec());
                if self.held[0].len() > MAX_BUFFERED {
                    return Err(PgError::TooManyBuffered(true));
                }
            }
            Some(Backend::Tls) => {}
            Some(Backend::Plain) => {
                for chunk in std::mem::take(&mut self.held[0]) {
                    self.messages[0].feed(true, &chunk, events)?;
                }
                self.messages[0].feed(true, data, events)?;
            }
        }
        Ok(())
    }

    /// The server's bytes: held until the client's opening is known, then the SSL answer (after an `SSLRequest`)
    /// and its messages.
    fn server(&mut self, data: &[u8], events: &mut Vec<Event>) -> Result<(), PgError> {
        if self.ssl_requested.is_none() {
            self.held[1].push(data.to_vec());
            if self.held[1].len() > MAX_BUFFERED {
                return Err(PgError::TooManyBuffered(false));
            }
            return Ok(());
        }
        for chunk in std::mem::take(&mut self.held[1]) {
            self.server_chunk(&chunk, events)?;
        }
        self.server_chunk(data, events)
    }

    fn server_chunk(&mut self, mut chunk: &[u8], events: &mut Vec<Event>) -> Result<(), PgError> {
        if self.ssl_requested == Some(true) && self.backend.is_none() {
            let Some((&answer, rest)) = chunk.split_first() else { return Ok(()) };
            self.backend = match answer {
                b'S' => Some(Backend::Tls),
                b'N' => Some(Backend::Plain),
                _ => return Err(PgError::Message("SSL answer neither 'S' nor 'N'")),
            };
            events.push(Event::SslReply(answer));
            chunk = rest;
        }
        match self.backend {
            Some(Backend::Plain) => self.messages[1].feed(false, chunk, events),
            _ => Ok(()),
        }
    }

    /// `set_session`: the exchange's record and the connection's state, made if missing.
    fn session(&mut self, ts: f64) -> (&mut Info, &mut State) {
        (self.info.get_or_insert_with(|| Info { ts, ..Info::default() }), self.state.get_or_insert_default())
    }

    /// `emit_log`: writes the exchange (with the startup's user, database and application) and ends it.
    fn emit_log(&mut self, ctx: &mut Ctx) {
        let Some(info) = self.info.take() else { return };
        let state = self.state.get_or_insert_default();
        let mut v = ctx.conn_columns(info.ts);
        for field in [&state.user, &state.database, &state.application_name] {
            v.push(Value::opt_str(field.clone()));
        }
        for field in [info.frontend, info.frontend_arg, info.backend, info.backend_arg] {
            v.push(Value::opt_str(field));
        }
        v.push(info.success.map_or(Value::Unset, Value::Bool));
        v.push(Value::opt_count(info.rows));
        ctx.log(&POSTGRESQL_LOG, v);
    }

    /// The script's handler of one event.
    fn on_event(&mut self, ctx: &mut Ctx, event: Event) {
        let ts = ctx.ts;
        match event {
            Event::SslRequest => self.session(ts).0.frontend = Some("ssl_request".into()),
            Event::SslReply(answer) => {
                let info = self.session(ts).0;
                info.backend = Some("ssl_reply".into());
                info.backend_arg = Some(bytes_to_log_string(&[answer]));
                info.success = Some(answer == b'S');
                self.emit_log(ctx);
                ctx.confirm("postgresql");
                if answer == b'S' {
                    ctx.start_tls();
                }
            }
            Event::StartupParameter(name, value) => {
                let state = self.session(ts).1;
                match name.as_str() {
                    "user" => state.user = Some(value),
                    "database" => state.database = Some(value),
                    "application_name" => state.application_name = Some(value),
                    _ => {}
                }
            }
            Event::StartupMessage => {
                self.session(ts).0.frontend = Some("startup".into());
                ctx.confirm("postgresql");
            }
            Event::ErrorField(code, value) => self.session(ts).1.errors.push(format!("{}={value}", error_id(code))),
            Event::NoticeField(code, value) => {
                append(&mut self.session(ts).0.backend_arg, &format!("{}={value}", error_id(code)));
            }
            Event::ErrorResponse => {
                let (info, state) = self.session(ts);
                append(&mut info.backend, "error");
                append(&mut info.backend_arg, &std::mem::take(&mut state.errors).join(","));
                info.success = Some(false);
                self.emit_log(ctx);
            }
            Event::AuthenticationRequest(identifier) => {
                let info = self.session(ts).0;
                match &mut info.backend {
                    Some(backend) if !backend.ends_with("auth") => backend.push_str(",auth_request"),
                    backend => *backend = Some("auth_request".into()),
                }
                append(&mut info.backend_arg, &auth_id(identifier));
            }
            Event::AuthenticationOk => {
                let info = self.session(ts).0;
                info.backend = Some("auth_ok".into());
                info.success = Some(true);
            }
            Event::Terminate => {
                self.emit_log(ctx);
                self.session(ts).0.frontend = Some("terminate".into());
                self.emit_log(ctx);
            }
            Event::SimpleQuery(query) => {
                self.emit_log(ctx);
                let (info, state) = self.session(ts);
                info.frontend = Some("simple_query".into());
                info.frontend_arg = Some(query);
                state.rows = Some(0);
            }
            Event::DataRow => {
                let rows = &mut self.session(ts).1.rows;
                *rows = Some(rows.unwrap_or(0) + 1);
            }
            Event::ReadyForQuery(status) => {
                let Some(info) = &mut self.info else { return };
                info.success.get_or_insert(matches!(status, b'I' | b'T'));
                if let Some(rows) = self.state.as_mut().and_then(|s| s.rows.take()) {
                    info.rows = Some(rows);
                }
                self.emit_log(ctx);
            }
        }
    }
}

impl Analyzer for PostgreSql {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.stopped || data.is_empty() {
            return;
        }
        let mut events = Vec::new();
        let result = if is_orig { self.client(data, &mut events) } else { self.server(data, &mut events) };
        for event in events {
            self.on_event(ctx, event);
        }
        if let Err(e) = result {
            self.stopped = true;
            // Zeek's Spicy glue reports a parse error with the delivery it happened in as its data.
            ctx.violation_with_data(e.to_string(), data);
        }
    }

    /// The removal hook `finalize_postgresql`.
    fn finish(&mut self, ctx: &mut Ctx) {
        self.emit_log(ctx);
    }
}

/// Fuzz entry point: arbitrary bytes as both directions of a stream.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut PostgreSql::default(), Proto::Tcp, 5432, data);
}

#[cfg(test)]
mod tests;
