//! LDAP (tcp 389 and 3268, udp 389: CLDAP): ldap.log and ldap_search.log, as Zeek's base/protocols/ldap writes them.
//!
//! The parser follows Zeek's Spicy grammar (src/analyzer/protocol/ldap/ldap.spicy, asn1.spicy, ldap.evt,
//! ldap_zeek.spicy): [`ber`] reads BER as asn1.spicy does, [`message`] one `LDAPMessage` and its op, [`filter`] a
//! search filter into its logged string. Each direction is a run of units whose kind the shared `MessageMode` decides:
//! plain messages; after a successful SASL bind, a peek at the next message (a SEQUENCE byte means plain, else SASL
//! wrapping, and a Kerberos wrap token 0x0504 after a GSS mechanism means `MS_KRB5`); skipped length-prefixed buffers
//! when encrypted; Kerberos wrap tokens whose unsealed payload holds messages; and after a successful StartTLS
//! extended operation, TLS (the rest of the connection goes to the TLS analyzer, as `zeek::protocol_begin("SSL")`
//! does). Each whole message confirms the protocol (`spicy::accept_input`); whatever does not parse is a violation
//! and the analysis stops. A TCP content gap ends the analysis of that direction without a violation.
//!
//! The records follow scripts/base/protocols/ldap/main.zeek: a message ID's operations gather in a pending record,
//! written at the response that finishes it (or the unbind and abandon requests), searches in their own record
//! until the search's done message; the rest are written at the connection's end (`finalize_ldap`), those of message
//! ID 0 excepted. Too many pending records of one kind flush them with a weird.
//!
//! Messages are buffered up to [`MAX_MESSAGE`] bytes per direction: a longer message is read from its first
//! [`MAX_MESSAGE`] bytes (its op ends where they do, which keeps a huge search result entry's object and count) and
//! the rest passed over; a longer Kerberos wrap token is passed over whole.

mod ber;
mod filter;
mod message;

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};
use ber::Reader;
use message::{Event, LdapResult, Mode, Session, parse_message};

pub static LDAP_LOG: Schema = Schema {
    path: "ldap",
    fields: conn_fields![
        f("message_id", "int"),
        f("version", "int"),
        f("opcode", "string"),
        f("result", "string"),
        f("diagnostic_message", "string"),
        f("object", "string"),
        f("argument", "string"),
    ],
};

pub static LDAP_SEARCH_LOG: Schema = Schema {
    path: "ldap_search",
    fields: conn_fields![
        f("message_id", "int"),
        f("scope", "string"),
        f("deref_aliases", "string"),
        f("base_object", "string"),
        f("result_count", "count"),
        f("result", "string"),
        f("diagnostic_message", "string"),
        f("filter", "string"),
        f("attributes", "vector[string]"),
    ],
};

/// Zeek's `LDAP_TCP` analyzer (`LDAP::ports_tcp`); conn.log's service is its name.
pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ldap_tcp",
    tcp_ports: &[389, 3268],
    udp_ports: &[],
    detect: Some(Signature::both_sides(|proto, is_orig, payload| {
        proto == Proto::Tcp && detect(proto, is_orig, payload)
    })),
    new: |_| Box::new(Ldap::new(&SPEC)),
    schemas: &[&LDAP_LOG, &LDAP_SEARCH_LOG],
};

/// Zeek's `LDAP_UDP` analyzer (`LDAP::ports_udp`), for CLDAP.
pub static UDP_SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ldap_udp",
    tcp_ports: &[],
    udp_ports: &[389],
    detect: Some(Signature::both_sides(|proto, is_orig, payload| {
        proto == Proto::Udp && detect(proto, is_orig, payload)
    })),
    new: |_| Box::new(Ldap::new(&UDP_SPEC)),
    schemas: &[&LDAP_LOG, &LDAP_SEARCH_LOG],
};

/// Weird source: Zeek's analyzer name.
const SOURCE: &str = "LDAP";
/// The longest message (or Kerberos wrap token) read whole; see the module's documentation.
const MAX_MESSAGE: usize = 64 << 10;
/// `LDAP::default_capture_password`.
const DEFAULT_CAPTURE_PASSWORD: bool = false;
/// `LDAP::max_pending_messages` and `LDAP::max_pending_searches`.
const MAX_PENDING: usize = 500;

/// Why the bytes are not LDAP (Spicy's parse errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdapError {
    /// The input ended inside a unit: a datagram, a `&size` range or a complete message too short for its content.
    #[error("LDAP: insufficient input")]
    Short,
    #[error("LDAP: {0}")]
    Invalid(&'static str),
    #[error("LDAP exceeded max filter recursion depth")]
    FilterDepth,
    #[error("ASN.1 exceeded max recursion depth")]
    Asn1Depth,
}

/// Zeek's DPD signatures (base/protocols/ldap/dpd.sig): a client request — a SEQUENCE of a short or one- to
/// four-byte long length, a one- to four-byte message ID and a request op (for TCP bind, search, modify, add,
/// delete, modify DN, compare or extended; for UDP bind, search or extended) — answered by a server SEQUENCE. `.`
/// matches anything but a newline.
fn detect(proto: Proto, is_orig: bool, payload: &[u8]) -> bool {
    if !is_orig {
        return payload.first() == Some(&0x30);
    }
    let any = |b: &u8| *b != b'\n';
    let Some((&0x30, rest)) = payload.split_first() else { return false };
    let rest = match rest {
        [0x05..=0x7f, rest @ ..] => rest,
        [l @ 0x81..=0x84, rest @ ..] => match rest.get(usize::from(l - 0x80)..) {
            Some(after) if rest[..usize::from(l - 0x80)].iter().all(any) => after,
            _ => return false,
        },
        _ => return false,
    };
    let Some((&0x02, rest)) = rest.split_first() else { return false };
    let Some((&id_len @ 1..=4, rest)) = rest.split_first() else { return false };
    let Some((id, rest)) = rest.split_at_checked(usize::from(id_len)) else { return false };
    let ops: &[u8] =
        if proto == Proto::Udp { &[0x60, 0x63, 0x77] } else { &[0x4a, 0x60, 0x63, 0x66, 0x68, 0x6c, 0x6e, 0x77] };
    id.iter().all(any) && rest.first().is_some_and(|op| ops.contains(op))
}

/// main.zeek's `MessageInfo`: one message ID's operations outside searches.
#[derive(Debug, Clone, Default)]
struct MessageInfo {
    ts: f64,
    message_id: i64,
    version: Option<i64>,
    opcode: Option<String>,
    result: Option<String>,
    diagnostic_message: Option<String>,
    object: Option<String>,
    argument: Option<String>,
}

/// main.zeek's `SearchInfo`: one search.
#[derive(Debug, Clone, Default)]
struct SearchInfo {
    ts: f64,
    message_id: i64,
    scope: Option<&'static str>,
    deref_aliases: Option<&'static str>,
    base_object: Option<String>,
    result_count: u64,
    result: Option<&'static str>,
    diagnostic_message: Option<String>,
    filter: Option<Vec<u8>>,
}

/// One direction's stream state.
#[derive(Debug, Default)]
struct Side {
    /// The start of a unit still incomplete.
    buf: Vec<u8>,
    /// Bytes still to pass over (an encrypted buffer, the rest of an over-long message).
    skip: u64,
    /// A content gap ended this direction's analysis.
    gap: bool,
}

/// What one unit at the start of the input came to.
enum Step {
    /// The unit needs more bytes than there are.
    More,
    /// `used` bytes were the unit (or its start), and `skip` more after them belong to it.
    Used { used: usize, skip: u64 },
}

pub struct Ldap {
    spec: &'static AnalyzerSpec,
    session: Session,
    sides: [Side; 2],
    /// A violation or the hand-over to TLS ended the analysis.
    stopped: bool,
    confirmed: bool,
    /// main.zeek's `State`, in insertion order (the tables iterate so in the newest baselines).
    messages: Vec<MessageInfo>,
    searches: Vec<SearchInfo>,
}

impl Ldap {
    fn new(spec: &'static AnalyzerSpec) -> Self {
        Ldap {
            spec,
            session: Session::default(),
            sides: Default::default(),
            stopped: false,
            confirmed: false,
            messages: Vec::new(),
            searches: Vec::new(),
        }
    }

    /// One unit (`MessageDispatch`) at the start of `buf`, by the current mode; `eod`: nothing follows `buf` (a
    /// datagram's end), so a unit it cuts short is an error.
    fn step(&mut self, buf: &[u8], eod: bool, events: &mut Vec<Event>) -> Result<Step, LdapError> {
        let more = if eod { Err(LdapError::Short) } else { Ok(Step::More) };
        match self.session.mode {
            Mode::Plain => {
                let mut r = Reader::new(buf);
                let total = match r.header() {
                    Ok(h) if h.is(ber::CLASS_UNIVERSAL, ber::SEQUENCE) => (r.offset() as u64).saturating_add(h.len),
                    Ok(_) => return Err(LdapError::Invalid("LDAP message is not a SEQUENCE")),
                    Err(LdapError::Short) => return more,
                    Err(e) => return Err(e),
                };
                if let Some(whole) = usize::try_from(total).ok().filter(|&t| t <= buf.len()) {
                    events.extend(parse_message(&buf[..whole], &mut self.session, false)?);
                    Ok(Step::Used { used: whole, skip: 0 })
                } else if !eod && total > MAX_MESSAGE as u64 && buf.len() >= MAX_MESSAGE {
                    events.extend(parse_message(&buf[..MAX_MESSAGE], &mut self.session, true)?);
                    Ok(Step::Used { used: MAX_MESSAGE, skip: total - MAX_MESSAGE as u64 })
                } else {
                    more
                }
            }
            Mode::MaybeEncrypted => {
                let Some(&first) = buf.first() else { return more };
                let gss = self.session.sasl_mechanism.is_empty() || self.session.sasl_mechanism.starts_with("GSS");
                self.session.mode = if first == 0x30 {
                    Mode::Plain
                } else if !gss {
                    Mode::Encrypted
                } else {
                    let Some(len) = buf.get(..4) else { return more };
                    let sasl_len = len.iter().fold(0u64, |n, &b| n << 8 | u64::from(b));
                    match buf.get(4..6) {
                        _ if sasl_len < 2 => Mode::Encrypted,
                        None => return more,
                        Some([0x05, 0x04]) => Mode::MsKrb5,
                        Some(_) => Mode::Encrypted,
                    }
                };
                Ok(Step::Used { used: 0, skip: 0 })
            }
            Mode::Encrypted => {
                let Some(len) = buf.get(..4) else { return more };
                Ok(Step::Used { used: 4, skip: ber::to_uint(len)? })
            }
            Mode::MsKrb5 => {
                let Some(len) = buf.get(..4) else { return more };
                let len = ber::to_uint(len)?;
                let total = 4 + len;
                if let Some(whole) = usize::try_from(total).ok().filter(|&t| t <= buf.len() && t <= MAX_MESSAGE) {
                    krb5_token(&buf[4..whole], len, &mut self.session, events)?;
                    Ok(Step::Used { used: whole, skip: 0 })
                } else if eod {
                    Err(LdapError::Short)
                } else if total > MAX_MESSAGE as u64 {
                    let used = buf.len().min(MAX_MESSAGE);
                    Ok(Step::Used { used, skip: total - used as u64 })
                } else {
                    more
                }
            }
            Mode::Tls => Ok(Step::Used { used: buf.len(), skip: 0 }),
        }
    }

    /// Parses what `input` completes of direction `side`'s units, applying each unit's events as it is parsed;
    /// returns how much of `input` was consumed.
    fn run(&mut self, ctx: &mut Ctx, side: usize, input: &[u8], eod: bool) -> Result<usize, LdapError> {
        let mut pos = 0;
        let mut events = Vec::new();
        loop {
            let rest = &input[pos..];
            let skip = &mut self.sides[side].skip;
            if *skip > 0 {
                let n = rest.len().min(usize::try_from(*skip).unwrap_or(usize::MAX));
                *skip -= n as u64;
                pos += n;
                if *skip > 0 {
                    return if eod { Err(LdapError::Short) } else { Ok(pos) };
                }
                continue;
            }
            if rest.is_empty() || self.stopped {
                return Ok(pos);
            }
            let step = self.step(rest, eod, &mut events);
            for event in events.drain(..) {
                self.on_event(ctx, event);
            }
            match step? {
                Step::More => return Ok(pos),
                Step::Used { used, skip } => {
                    pos += used;
                    self.sides[side].skip = skip;
                }
            }
            if self.session.mode == Mode::Tls {
                // `TlsForward`: the TLS analyzer takes the rest of the connection.
                self.stopped = true;
                ctx.start_tls();
                return Ok(input.len());
            }
        }
    }

    /// A parse error in the delivery `data`: Zeek's Spicy glue (`ProtocolAnalyzer::Process`) reports the violation
    /// with that delivery as its data.
    fn stop(&mut self, ctx: &mut Ctx, e: &LdapError, data: &[u8]) {
        self.stopped = true;
        self.sides = Default::default();
        ctx.violation_with_data(e.to_string(), data);
    }

    /// The script's handlers (`LDAP::message`, `bind_request`, `search_request`, `search_result_entry`), and the
    /// confirmation each whole message gives.
    fn on_event(&mut self, ctx: &mut Ctx, event: Event) {
        match event {
            Event::Message { id, opcode, result, object, argument } => {
                self.on_message(ctx, id, opcode, result, object, argument);
                if !self.confirmed {
                    self.confirmed = true;
                    ctx.confirm(self.spec.name);
                }
            }
            Event::BindRequest { id, version, auth_type } => {
                let at = self.message_session(ctx, id);
                let m = &mut self.messages[at];
                m.version.get_or_insert(version);
                if let Some(opcode) = &m.opcode {
                    ctx.weird("LDAP_bind_opcode_already_set", Some(opcode.clone()), SOURCE);
                }
                m.opcode = Some(match auth_type {
                    message::AUTH_SIMPLE => BIND_SIMPLE.to_string(),
                    message::AUTH_SASL => "bind SASL".to_string(),
                    message::AUTH_SICILY_NEGOTIATE => "bind sicily_negotiate".to_string(),
                    message::AUTH_SICILY_RESPONSE => "bind sicily_response".to_string(),
                    other => {
                        let name = format!("LDAP::BindAuthType_<unknown-{other}>");
                        ctx.weird("LDAP_unknown_auth_type", Some(name.clone()), SOURCE);
                        name
                    }
                });
            }
            Event::SearchRequest { id, base, scope, deref, filter } => {
                let at = self.search_session(ctx, id);
                let mut weirds = Vec::new();
                let s = &mut self.searches[at];
                let scope = match scope {
                    0 => "base",
                    1 => "single",
                    2 => "tree",
                    _ => "unknown",
                };
                let deref = match deref {
                    0 => "never",
                    1 => "searching",
                    2 => "finding",
                    3 => "always",
                    _ => "unknown",
                };
                for (name, field, value) in [
                    ("LDAP_search_scope_change", &mut s.scope, scope),
                    ("LDAP_search_deref_aliases_change", &mut s.deref_aliases, deref),
                ] {
                    if let Some(old) = field.filter(|old| *old != value) {
                        weirds.push((name, format!("{id}: {old} -> {value}")));
                    }
                    *field = Some(value);
                }
                if !base.is_empty() {
                    if let Some(old) = s.base_object.as_ref().filter(|old| **old != base) {
                        weirds.push(("LDAP_search_base_object_change", format!("{id}: {old} -> {base}")));
                    }
                    s.base_object = Some(base);
                }
                if let Some(old) = s.filter.as_ref().filter(|old| **old != filter) {
                    let (old, new) = (bytes_to_log_string(old), bytes_to_log_string(&filter));
                    weirds.push(("LDAP_search_filter_change", format!("{id}: {old} -> {new}")));
                }
                s.filter = Some(filter);
                for (name, addl) in weirds {
                    ctx.weird(name, Some(addl), SOURCE);
                }
            }
            Event::SearchResultEntry { id } => {
                let at = self.search_session(ctx, id);
                self.searches[at].result_count += 1;
            }
        }
    }

    /// `LDAP::message`.
    fn on_message(
        &mut self,
        ctx: &mut Ctx,
        id: i64,
        opcode: u8,
        result: Option<LdapResult>,
        object: String,
        argument: String,
    ) {
        use message::*;
        if opcode == SEARCH_RESULT_DONE {
            let at = self.search_session(ctx, id);
            let s = &mut self.searches[at];
            if let Some(result) = &result {
                let text = result_text(result.code);
                if let Some(old) = s.result.filter(|old| *old != text) {
                    ctx.weird("LDAP_search_result_change", Some(format!("{id}: {old} -> {text}")), SOURCE);
                }
                s.result = Some(text);
                if !result.diagnostic.is_empty() {
                    if let Some(old) = s.diagnostic_message.as_ref().filter(|old| **old != result.diagnostic) {
                        let addl = format!("{id}: {old} -> {}", result.diagnostic);
                        ctx.weird("LDAP_search_diagnostic_message_change", Some(addl), SOURCE);
                    }
                    s.diagnostic_message = Some(result.diagnostic.clone());
                }
            }
            let s = self.searches.remove(at);
            log_search(ctx, s);
            return;
        }
        if matches!(opcode, SEARCH_REQUEST | SEARCH_RESULT_ENTRY | SEARCH_RESULT_REFERENCE) {
            return;
        }
        let at = self.message_session(ctx, id);
        let m = &mut self.messages[at];
        let opcode_text = opcode_text(opcode);
        let mut weirds = Vec::new();
        if opcode_text != "bind" {
            if let Some(old) = m.opcode.as_ref().filter(|old| *old != opcode_text) {
                weirds.push(("LDAP_message_opcode_change", format!("{id}: {old} -> {opcode_text}")));
            }
            m.opcode = Some(opcode_text.to_string());
        } else if m.opcode.is_none() {
            // A bind response seen without its request.
            weirds.push(("LDAP_bind_without_opcode", format!("{id}: {opcode_text}")));
            m.opcode = Some(opcode_text.to_string());
        }
        if let Some(result) = &result {
            let text = result_text(result.code);
            if let Some(old) = m.result.as_ref().filter(|old| *old != text) {
                weirds.push(("LDAP_message_result_change", format!("{id}: {old} -> {text}")));
            }
            m.result = Some(text.to_string());
            if !result.diagnostic.is_empty() {
                if let Some(old) = m.diagnostic_message.as_ref().filter(|old| **old != result.diagnostic) {
                    weirds.push((
                        "LDAP_message_diagnostic_message_change",
                        format!("{id}: {old} -> {}", result.diagnostic),
                    ));
                }
                m.diagnostic_message = Some(result.diagnostic.clone());
            }
        }
        if !object.is_empty() {
            if let Some(old) = m.object.as_ref().filter(|old| **old != object) {
                weirds.push(("LDAP_message_object_change", format!("{id}: {old} -> {object}")));
            }
            let mut object = object;
            if opcode == EXTENDED_REQUEST {
                let name = match object.as_str() {
                    STARTTLS_OID => "StartTLS",
                    "1.3.6.1.4.1.4203.1.11.3" => "whoami",
                    _ => "unknown",
                };
                object = format!("{object} ({name})");
            }
            m.object = Some(object);
        }
        if !argument.is_empty() {
            let argument = if m.opcode.as_deref() == Some(BIND_SIMPLE) && !DEFAULT_CAPTURE_PASSWORD {
                "REDACTED".to_string()
            } else {
                argument
            };
            if let Some(old) = m.argument.as_ref().filter(|old| **old != argument) {
                weirds.push(("LDAP_message_argument_change", format!("{id}: {old} -> {argument}")));
            }
            m.argument = Some(argument);
        }
        for (name, addl) in weirds {
            ctx.weird(name, Some(addl), SOURCE);
        }
        let finished = matches!(
            opcode,
            BIND_RESPONSE
                | UNBIND_REQUEST
                | MODIFY_RESPONSE
                | ADD_RESPONSE
                | DEL_RESPONSE
                | MOD_DN_RESPONSE
                | COMPARE_RESPONSE
                | ABANDON_REQUEST
                | EXTENDED_RESPONSE
        );
        if finished {
            let m = self.messages.remove(at);
            log_message(ctx, m);
        }
    }

    /// `set_session` for a message outside searches: the index of its pending record, made if missing.
    fn message_session(&mut self, ctx: &mut Ctx, id: i64) -> usize {
        if let Some(at) = self.messages.iter().position(|m| m.message_id == id) {
            return at;
        }
        if self.messages.len() >= MAX_PENDING {
            ctx.weird("LDAP_max_pending_messages_exceeded", Some(MAX_PENDING.to_string()), SOURCE);
            for m in std::mem::take(&mut self.messages) {
                log_message(ctx, m);
            }
        }
        self.messages.push(MessageInfo { ts: ctx.ts, message_id: id, ..MessageInfo::default() });
        self.messages.len() - 1
    }

    /// `set_session` for a search.
    fn search_session(&mut self, ctx: &mut Ctx, id: i64) -> usize {
        if let Some(at) = self.searches.iter().position(|s| s.message_id == id) {
            return at;
        }
        if self.searches.len() >= MAX_PENDING {
            ctx.weird("LDAP_max_pending_searches_exceeded", Some(MAX_PENDING.to_string()), SOURCE);
            for s in std::mem::take(&mut self.searches) {
                log_search(ctx, s);
            }
        }
        self.searches.push(SearchInfo { ts: ctx.ts, message_id: id, ..SearchInfo::default() });
        self.searches.len() - 1
    }
}

/// consts.zeek's `BIND_SIMPLE`, whose argument (the password) is redacted.
const BIND_SIMPLE: &str = "bind simple";

fn log_message(ctx: &mut Ctx, m: MessageInfo) {
    let mut v = ctx.conn_columns(m.ts);
    v.push(Value::Int(m.message_id));
    v.push(m.version.map_or(Value::Unset, Value::Int));
    for field in [m.opcode, m.result, m.diagnostic_message, m.object, m.argument] {
        v.push(Value::opt_str(field));
    }
    ctx.log(&LDAP_LOG, v);
}

fn log_search(ctx: &mut Ctx, s: SearchInfo) {
    let mut v = ctx.conn_columns(s.ts);
    v.push(Value::Int(s.message_id));
    v.push(Value::opt_str(s.scope));
    v.push(Value::opt_str(s.deref_aliases));
    v.push(Value::opt_str(s.base_object));
    v.push(Value::Count(s.result_count));
    v.push(Value::opt_str(s.result));
    v.push(Value::opt_str(s.diagnostic_message));
    v.push(Value::opt_str(s.filter.map(|f| bytes_to_log_string(&f))));
    // `attributes` is set only with `LDAP::default_log_search_attributes`, off by default.
    v.push(Value::Unset);
    ctx.log(&LDAP_SEARCH_LOG, v);
}

/// consts.zeek's `PROTOCOL_OPCODES`, with its default.
fn opcode_text(opcode: u8) -> &'static str {
    use message::*;
    match opcode {
        BIND_REQUEST | BIND_RESPONSE => "bind",
        UNBIND_REQUEST => "unbind",
        SEARCH_REQUEST | SEARCH_RESULT_ENTRY | SEARCH_RESULT_DONE | SEARCH_RESULT_REFERENCE => "search",
        MODIFY_REQUEST | MODIFY_RESPONSE | MOD_DN_REQUEST | MOD_DN_RESPONSE => "modify",
        ADD_REQUEST | ADD_RESPONSE => "add",
        DEL_REQUEST | DEL_RESPONSE => "delete",
        COMPARE_REQUEST | COMPARE_RESPONSE => "compare",
        ABANDON_REQUEST => "abandon",
        EXTENDED_REQUEST | EXTENDED_RESPONSE => "extended",
        INTERMEDIATE_RESPONSE => "intermediate",
        _ => "unknown",
    }
}

/// consts.zeek's `RESULT_CODES`, with its default.
fn result_text(code: u8) -> &'static str {
    match code {
        0 => "success",
        1 => "operations error",
        2 => "protocol error",
        3 => "time limit exceeded",
        4 => "size limit exceeded",
        5 => "compare false",
        6 => "compare true",
        7 => "auth method not supported",
        8 => "stronger auth required",
        9 => "partial results",
        10 => "referral",
        11 => "admin limit exceeded",
        12 => "unavailable critical extension",
        13 => "confidentiality required",
        14 => "SASL bind in progress",
        16 => "no such attribute",
        17 => "undefined attribute type",
        18 => "inappropriate matching",
        19 => "constraint violation",
        20 => "attribute or value exists",
        21 => "invalid attribute syntax",
        32 => "no such object",
        33 => "alias problem",
        34 => "invalid DN syntax",
        36 => "alias dereferencing problem",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        54 => "loop detect",
        60 => "sort control missing",
        61 => "offset range error",
        64 => "naming violation",
        65 => "object class violation",
        66 => "not allowed on non-leaf",
        67 => "not allowed on RDN",
        68 => "entry already exists",
        69 => "object class mods prohibited",
        70 => "results too large",
        71 => "affects multiple DSAs",
        76 => "control error",
        80 => "other",
        81 => "server down",
        82 => "local error",
        83 => "encoding error",
        84 => "decoding error",
        85 => "timeout",
        86 => "auth unknown",
        87 => "filter error",
        88 => "user canceled",
        89 => "param error",
        90 => "no memory",
        91 => "connect error",
        92 => "not supported",
        93 => "control not found",
        94 => "no results returned",
        95 => "more results to return",
        96 => "client loop",
        97 => "referral limit exceeded",
        100 => "invalid response",
        101 => "ambiguous response",
        112 => "TLS not supported",
        113 => "intermediate response",
        114 => "unknown type",
        115 => "LCUP invalid data",
        116 => "LCUP unsupported scheme",
        117 => "LCUP reload required",
        118 => "canceled",
        119 => "no such operation",
        120 => "too late",
        121 => "cannot cancel",
        122 => "assertion failed",
        123 => "authorization denied",
        _ => "unknown",
    }
}

/// `SaslMsKrb5Stripper` over a token's bytes after its length: a token ID, for a wrap token (0x0504) its header
/// (flags, the 0xff filler, extra and right-rotation counts, sequence number) and the extra bytes before or after
/// the payload; an unsealed wrap token's payload is a run of messages, anything else is passed over.
fn krb5_token(body: &[u8], len: u64, session: &mut Session, events: &mut Vec<Event>) -> Result<(), LdapError> {
    let mut r = Reader::new(body);
    let token_id = r.be::<2>()?;
    let mut wrap = None;
    let mut trailer = 0;
    if token_id == 0x0504 {
        let flags = r.u8()?;
        r.literal(b"\xff")?;
        let ec = r.be::<2>()?;
        let rrc = r.be::<2>()?;
        let sealed = flags & 0x02 != 0;
        let mut header = 0;
        if rrc == ec {
            header = ec;
        } else if rrc == 0 {
            trailer = ec;
        } else if !sealed {
            return Err(LdapError::Invalid("unhandled Kerberos wrap token rc and ec"));
        }
        r.be::<8>()?;
        r.take(header)?;
        wrap = Some(sealed);
    }
    let payload_len = len
        .checked_sub(r.offset() as u64)
        .and_then(|n| n.checked_sub(trailer))
        .ok_or(LdapError::Invalid("integer underflow in the Kerberos wrap token's size"))?;
    let payload = r.take(payload_len)?;
    if wrap == Some(false) {
        let mut rest = payload;
        while !rest.is_empty() {
            let mut r = Reader::new(rest);
            let head = r.header()?;
            let whole = usize::try_from((r.offset() as u64).saturating_add(head.len))
                .ok()
                .filter(|&w| w <= rest.len())
                .ok_or(LdapError::Short)?;
            events.extend(parse_message(&rest[..whole], session, false)?);
            rest = &rest[whole..];
        }
    }
    r.take(trailer)?;
    Ok(())
}

impl Analyzer for Ldap {
    fn spec(&self) -> &'static AnalyzerSpec {
        self.spec
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        let side = usize::from(!is_orig);
        if self.stopped || self.sides[side].gap || data.is_empty() {
            return;
        }
        if ctx.id.proto != Proto::Tcp {
            // A datagram is parsed on its own (`Messages` to its end).
            if let Err(e) = self.run(ctx, side, data, true) {
                self.stop(ctx, &e, data);
            }
            return;
        }
        let mut held = std::mem::take(&mut self.sides[side].buf);
        let input: &[u8] = if held.is_empty() {
            data
        } else {
            held.extend_from_slice(data);
            &held
        };
        match self.run(ctx, side, input, false) {
            Ok(used) if !self.stopped => {
                let rest = input[used..].to_vec();
                self.sides[side].buf = rest;
            }
            Ok(_) => {}
            Err(e) => self.stop(ctx, &e, data),
        }
    }

    /// Zeek's Spicy analyzers stop parsing a direction at a content gap, without a violation.
    fn undelivered(&mut self, _ctx: &mut Ctx, is_orig: bool, _len: u64) {
        let side = &mut self.sides[usize::from(!is_orig)];
        side.gap = true;
        side.buf = Vec::new();
    }

    /// `finalize_ldap`: the pending records whose message ID is above 0.
    fn finish(&mut self, ctx: &mut Ctx) {
        for m in std::mem::take(&mut self.messages) {
            if m.message_id > 0 {
                log_message(ctx, m);
            }
        }
        for s in std::mem::take(&mut self.searches) {
            if s.message_id > 0 {
                log_search(ctx, s);
            }
        }
    }
}

/// Fuzz entry point: arbitrary bytes as both directions of a TCP stream, then as datagrams.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Ldap::new(&SPEC), Proto::Tcp, 389, data);
    super::fuzzing::drive(&mut Ldap::new(&UDP_SPEC), Proto::Udp, 389, data);
}

#[cfg(test)]
mod tests;
