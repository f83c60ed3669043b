//! One `LDAPMessage` (ldap.spicy's `Message`) and the events ldap.evt raises for it.
//!
//! The message is a universal SEQUENCE holding a universal INTEGER message ID and an Application-class protocol op,
//! whose content the op's unit must consume exactly (Spicy's `&size`); what follows the op inside the SEQUENCE
//! (controls) is skipped. An opcode the grammar has no case for is an error. The op's own event (bind, search,
//! search result entry) comes before the message's.

use super::LdapError;
use super::ber::{
    Body, CLASS_APPLICATION, CLASS_CONTEXT, CLASS_UNIVERSAL, Element, INTEGER, OBJECT_IDENTIFIER, OCTET_STRING, Reader,
    SEQUENCE, decode_ascii, decode_utf8, oid, to_int,
};
use super::filter::search_filter;

pub const BIND_REQUEST: u8 = 0;
pub const BIND_RESPONSE: u8 = 1;
pub const UNBIND_REQUEST: u8 = 2;
pub const SEARCH_REQUEST: u8 = 3;
pub const SEARCH_RESULT_ENTRY: u8 = 4;
pub const SEARCH_RESULT_DONE: u8 = 5;
pub const MODIFY_REQUEST: u8 = 6;
pub const MODIFY_RESPONSE: u8 = 7;
pub const ADD_REQUEST: u8 = 8;
pub const ADD_RESPONSE: u8 = 9;
pub const DEL_REQUEST: u8 = 10;
pub const DEL_RESPONSE: u8 = 11;
pub const MOD_DN_REQUEST: u8 = 12;
pub const MOD_DN_RESPONSE: u8 = 13;
pub const COMPARE_REQUEST: u8 = 14;
pub const COMPARE_RESPONSE: u8 = 15;
pub const ABANDON_REQUEST: u8 = 16;
pub const SEARCH_RESULT_REFERENCE: u8 = 19;
pub const EXTENDED_REQUEST: u8 = 23;
pub const EXTENDED_RESPONSE: u8 = 24;
pub const INTERMEDIATE_RESPONSE: u8 = 25;

pub const RESULT_SUCCESS: u8 = 0;

pub const AUTH_SIMPLE: u8 = 0;
pub const AUTH_SASL: u8 = 3;
pub const AUTH_SICILY_NEGOTIATE: u8 = 10;
pub const AUTH_SICILY_RESPONSE: u8 = 11;

/// The extended request that starts TLS (RFC 4511 4.14.1).
pub const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// MS KRB5, the mechanism an accepted GSS-SPNEGO negotiation must name for the Kerberos wrap tokens to be read.
const GSSAPI_MECH_MS_KRB5: &str = "1.2.840.48018.1.2.2";
/// SPNEGO's OID, which a GSS-SPNEGO initial token must carry.
const SPNEGO_OID: &str = "1.3.6.1.5.5.2";

/// ldap.spicy's `MessageMode`: how the next message of either direction is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `Undef` and `CLEARTEXT`: plain messages.
    #[default]
    Plain,
    /// A successful SASL bind: the next message's first bytes decide.
    MaybeEncrypted,
    /// SASL-wrapped and unreadable: four-byte lengths, the payload skipped.
    Encrypted,
    /// Kerberos wrap tokens from GSS-SPNEGO or GSSAPI, whose unsealed payload holds messages.
    MsKrb5,
    /// StartTLS succeeded: the rest belongs to TLS.
    Tls,
}

/// ldap.spicy's `Ctx`, which both directions share.
#[derive(Debug, Default)]
pub struct Session {
    pub mode: Mode,
    pub sasl_mechanism: String,
    pub start_tls_requested: bool,
}

/// `LDAPResult`'s code and diagnostic message (the matched DN is read but logged nowhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapResult {
    pub code: u8,
    pub diagnostic: String,
}

/// The events ldap.evt raises that the base script handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Message { id: i64, opcode: u8, result: Option<LdapResult>, object: String, argument: String },
    BindRequest { id: i64, version: i64, auth_type: u8 },
    SearchRequest { id: i64, base: String, scope: u8, deref: u8, filter: Vec<u8> },
    SearchResultEntry { id: i64 },
}

/// What the op's unit sets on its message (`message.obj`, `message.arg`, `message.result_`).
#[derive(Debug, Default)]
struct Outcome {
    result: Option<LdapResult>,
    object: String,
    argument: String,
}

/// Parses the message that makes up `frame` (its outer header included). `truncated`: `frame` is only the start of
/// a longer message, and running out of it inside the op ends the op instead of failing.
pub fn parse_message(frame: &[u8], session: &mut Session, truncated: bool) -> Result<Vec<Event>, LdapError> {
    let mut r = Reader::new(frame);
    let seq = r.header()?;
    if !seq.is(CLASS_UNIVERSAL, SEQUENCE) {
        return Err(LdapError::Invalid("LDAP message is not a SEQUENCE"));
    }
    let seq_header_len = r.offset();
    let id_header = r.header()?;
    if !id_header.is(CLASS_UNIVERSAL, INTEGER) {
        return Err(LdapError::Invalid("LDAP message ID is not an INTEGER"));
    }
    let id = to_int(r.take(id_header.len)?)?;
    let op = r.header()?;
    if op.class != CLASS_APPLICATION {
        return Err(LdapError::Invalid("LDAP protocol op is not of the Application class"));
    }
    let content = match r.take(op.len) {
        Err(LdapError::Short) if truncated => r.take_rest(),
        other => other?,
    };
    let mut events = Vec::new();
    let mut out = Outcome::default();
    let mut op_reader = Reader::new(content);
    match parse_op(op.tag, id, &mut op_reader, session, &mut out, &mut events) {
        Err(LdapError::Short) if truncated => {}
        Err(e) => return Err(e),
        Ok(()) if !op_reader.is_empty() => return Err(LdapError::Invalid("&size amount not consumed")),
        Ok(()) if !truncated => {
            let used = (r.offset() - seq_header_len) as u64;
            if seq.len < used {
                return Err(LdapError::Invalid("protocol op longer than its message"));
            }
            r.take(seq.len - used)?;
        }
        Ok(()) => {}
    }
    events.push(Event::Message { id, opcode: op.tag, result: out.result, object: out.object, argument: out.argument });
    Ok(events)
}

/// The op's unit, over its content.
fn parse_op(
    opcode: u8,
    id: i64,
    r: &mut Reader,
    session: &mut Session,
    out: &mut Outcome,
    events: &mut Vec<Event>,
) -> Result<(), LdapError> {
    match opcode {
        BIND_REQUEST => bind_request(id, r, session, out, events),
        BIND_RESPONSE => bind_response(r, session, out),
        UNBIND_REQUEST => Ok(()),
        SEARCH_REQUEST => search_request(id, r, out, events),
        SEARCH_RESULT_ENTRY => {
            out.object = r.element(true)?.str_value()?.to_string();
            let attributes = r.element(true);
            // Raised at the unit's end; a failure drops it with the message, a truncated message keeps it.
            events.push(Event::SearchResultEntry { id });
            attributes.map(drop)
        }
        MODIFY_REQUEST => modify_request(r, out),
        SEARCH_RESULT_DONE | MODIFY_RESPONSE | ADD_RESPONSE | DEL_RESPONSE | MOD_DN_RESPONSE | COMPARE_RESPONSE => {
            out.result = Some(result(r)?);
            Ok(())
        }
        // DelRequest and AbandonRequest are primitive: the op's content is the DN, or the abandoned message's ID.
        DEL_REQUEST => {
            out.argument = decode_ascii(r.take_rest());
            Ok(())
        }
        ABANDON_REQUEST => {
            out.argument = to_int(r.take_rest())?.to_string();
            Ok(())
        }
        ADD_REQUEST | COMPARE_REQUEST | INTERMEDIATE_RESPONSE | MOD_DN_REQUEST | SEARCH_RESULT_REFERENCE => {
            r.take_rest();
            Ok(())
        }
        EXTENDED_REQUEST => extended_request(r, session, out),
        EXTENDED_RESPONSE => extended_response(r, session, out),
        _ => Err(LdapError::Invalid("no matching case for the protocol opcode")),
    }
}

/// `Result`: code, matched DN and diagnostic message.
fn result(r: &mut Reader) -> Result<LdapResult, LdapError> {
    let code = u8::try_from(r.element(true)?.num()?).map_err(|_| LdapError::Invalid("result code out of range"))?;
    r.element(true)?.str_value()?;
    let diagnostic = r.element(true)?.str_value()?.to_string();
    Ok(LdapResult { code, diagnostic })
}

fn bind_request(
    id: i64,
    r: &mut Reader,
    session: &mut Session,
    out: &mut Outcome,
    events: &mut Vec<Event>,
) -> Result<(), LdapError> {
    let version = r.element(true)?.num()?;
    out.object = r.element(true)?.str_value()?.to_string();
    let auth = r.element(true)?;
    // A universal value leaves the auth type `Undef`, which the unit's `&requires` refuses.
    let (auth_type, data) =
        auth.application().ok_or(LdapError::Invalid("bind authentication of the universal class"))?;
    if !data.is_empty() {
        let mut creds = Reader::new(data);
        match auth_type {
            AUTH_SIMPLE => out.argument = decode_utf8(data),
            AUTH_SASL => {
                let mechanism = creds.element(false)?.str_value()?.to_string();
                if mechanism == "GSS-SPNEGO" {
                    gss_spnego_init(&mut creds)?;
                }
                out.argument.clone_from(&mechanism);
                session.sasl_mechanism = mechanism;
            }
            AUTH_SICILY_NEGOTIATE | AUTH_SICILY_RESPONSE => {
                creds.literal(b"NTLMSSP")?;
                out.argument = "NTLMSSP".into();
            }
            _ => {}
        }
    }
    events.push(Event::BindRequest { id, version, auth_type });
    Ok(())
}

/// `GSS_SPNEGO_Init`: the credentials' OCTET STRING header, then an RFC 2743 initial token carrying SPNEGO's OID, an
/// RFC 4178 continuation, or a bare NTLMSSP message.
fn gss_spnego_init(r: &mut Reader) -> Result<(), LdapError> {
    if r.header()?.tag != OCTET_STRING {
        return Err(LdapError::Invalid("GSS-SPNEGO credentials not an OCTET STRING"));
    }
    match r.rest() {
        [0x60, ..] => {
            r.u8()?;
            skip_length(r)?;
            let head = r.header()?;
            if !head.is(CLASS_UNIVERSAL, OBJECT_IDENTIFIER) || oid(r.take(head.len)?)? != SPNEGO_OID {
                return Err(LdapError::Invalid("GSS-SPNEGO initial token without SPNEGO's OID"));
            }
            Ok(())
        }
        [0xa1, ..] => {
            r.u8()?;
            skip_length(r)
        }
        rest if rest.starts_with(b"NTLMSSP") => Ok(()),
        rest if rest.len() < 7 && b"NTLMSSP".starts_with(rest) => Err(LdapError::Short),
        _ => Err(LdapError::Invalid("no GSS-SPNEGO alternative matches")),
    }
}

/// `skip ASN1::LengthType`.
fn skip_length(r: &mut Reader) -> Result<(), LdapError> {
    let first = r.u8()?;
    if first & 0x80 != 0 {
        super::ber::to_uint(r.take(u64::from(first & 0x7f))?)?;
    }
    Ok(())
}

fn bind_response(r: &mut Reader, session: &mut Session, out: &mut Outcome) -> Result<(), LdapError> {
    let result = result(r)?;
    // A successful SASL bind may have negotiated a security layer: the next messages are tried (MaybeEncrypted).
    if !session.sasl_mechanism.is_empty() && result.code == RESULT_SUCCESS {
        session.mode = Mode::MaybeEncrypted;
    }
    out.result = Some(result);
    // `ServerSaslCreds[] &eod`: every remaining value must be `[7]`.
    let mut first_creds = None;
    while !r.is_empty() {
        let head = r.header()?;
        if !head.is(CLASS_CONTEXT, 7) {
            return Err(LdapError::Invalid("bind response value is not serverSaslCreds"));
        }
        let payload = r.take(head.len)?;
        first_creds.get_or_insert(payload);
    }
    if let Some(payload) = first_creds.filter(|_| session.sasl_mechanism == "GSS-SPNEGO")
        && gss_spnego_accepts_ms_krb5(payload)?
    {
        session.mode = Mode::MsKrb5;
    }
    Ok(())
}

/// `GSS_SPNEGO_Subsequent` on the server's first credentials: whether its `negTokenResp` accepted MS KRB5 and
/// carries a response token.
fn gss_spnego_accepts_ms_krb5(payload: &[u8]) -> Result<bool, LdapError> {
    let mut r = Reader::new(payload);
    match r.rest() {
        [0xa1, ..] => {}
        rest if rest.starts_with(b"NTLMSSP") => return Ok(false),
        _ => return Err(LdapError::Invalid("no GSS-SPNEGO response alternative matches")),
    }
    r.u8()?;
    skip_length(&mut r)?;
    let seq = r.element(true)?;
    let Body::Seq(items) = seq.value else { return Err(LdapError::Invalid("negTokenResp is not a SEQUENCE")) };
    let (mut accepted, mut mech, mut token) = (false, None, false);
    for item in &items {
        let Some((tag, data)) = item.application() else {
            return Err(LdapError::Invalid("negTokenResp item of the universal class"));
        };
        match tag {
            0 => accepted = data == b"\x0a\x01\x00",
            1 => mech = Some(data),
            2 => token = true,
            3 => {}
            _ => return Err(LdapError::Invalid("unhandled NegTokenResp id")),
        }
    }
    let mech = match mech {
        Some(data) => Some(Reader::new(data).element(false)?.str_value()?.to_string()),
        None => None,
    };
    Ok(accepted && token && mech.as_deref() == Some(GSSAPI_MECH_MS_KRB5))
}

fn search_request(id: i64, r: &mut Reader, out: &mut Outcome, events: &mut Vec<Event>) -> Result<(), LdapError> {
    let base = r.element(true)?.str_value()?.to_string();
    let enum_u8 = |e: Element| u8::try_from(e.num()?).map_err(|_| LdapError::Invalid("enumeration out of range"));
    let scope = enum_u8(r.element(true)?)?;
    let deref = enum_u8(r.element(true)?)?;
    r.element(true)?.num()?;
    r.element(true)?.num()?;
    if !matches!(r.element(true)?.value, Body::Bool(_)) {
        return Err(LdapError::Invalid("typesOnly is not a BOOLEAN"));
    }
    let filter = search_filter(r, 0)?;
    // `AttributeSelection`: the strings of a SEQUENCE (logged only with `default_log_search_attributes`).
    r.element(true)?;
    out.object.clone_from(&base);
    events.push(Event::SearchRequest { id, base, scope, deref, filter });
    Ok(())
}

/// `ModifyRequest`: the object, then its changes, each `operation(type=values)`.
fn modify_request(r: &mut Reader, out: &mut Outcome) -> Result<(), LdapError> {
    out.object = r.element(true)?.str_value()?.to_string();
    let mut changes = Vec::new();
    while !r.is_empty() {
        if let Body::Seq(items) = r.element(true)?.value {
            changes.extend(items.iter().filter_map(change));
        }
    }
    out.argument = changes.join(", ");
    Ok(())
}

/// One change of a modify request: `SEQUENCE { operation ENUMERATED, modification SEQUENCE { type, SET OF value } }`.
fn change(item: &Element) -> Option<String> {
    let Body::Seq(parts) = &item.value else { return None };
    let [operation, modification] = parts.as_slice() else { return None };
    let operation = match operation.num().ok()? {
        0 => "add",
        1 => "delete",
        2 => "replace",
        3 => "increment",
        _ => "unknown",
    };
    let Body::Seq(attribute) = &modification.value else { return None };
    let [kind, values] = attribute.as_slice() else { return None };
    let Body::Seq(values) = &values.value else { return None };
    let values: Vec<&str> = values.iter().filter_map(|v| v.str_value().ok()).collect();
    Some(format!("{operation}({}={})", kind.str_value().ok()?, values.join(",")))
}

fn extended_request(r: &mut Reader, session: &mut Session, out: &mut Outcome) -> Result<(), LdapError> {
    let head = r.header()?;
    if head.class != CLASS_CONTEXT {
        return Err(LdapError::Invalid("extended request name is not context-specific"));
    }
    let name = decode_ascii(r.take(head.len)?);
    if !r.is_empty() && r.element(false)?.head.class != CLASS_CONTEXT {
        return Err(LdapError::Invalid("extended request value is not context-specific"));
    }
    if name == STARTTLS_OID {
        session.start_tls_requested = true;
    }
    out.object = name;
    Ok(())
}

fn extended_response(r: &mut Reader, session: &mut Session, out: &mut Outcome) -> Result<(), LdapError> {
    let result = result(r)?;
    // Two optional entries, `[10]` responseName and `[11]` responseValue.
    for _ in 0..2 {
        if r.is_empty() {
            break;
        }
        let entry = r.element(false)?;
        if entry.head.class != CLASS_CONTEXT || !matches!(entry.head.tag, 10 | 11) {
            return Err(LdapError::Invalid("unhandled extended response tag"));
        }
    }
    if session.start_tls_requested && result.code == RESULT_SUCCESS {
        session.mode = Mode::Tls;
    }
    out.result = Some(result);
    Ok(())
}
