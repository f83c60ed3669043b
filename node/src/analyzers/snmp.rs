//! SNMP (udp 161, 162) to snmp.log, as Zeek's binpac analyzer (src/analyzer/protocol/snmp/snmp-protocol.pac,
//! snmp-analyzer.pac) and base/protocols/snmp/main.zeek do it.
//!
//! Each datagram is one message: the outer SEQUENCE, the version INTEGER, then the community OCTET STRING (v1,
//! v2c), the v3 header data, security parameters and scoped-PDU start (v3), or nothing more (an unknown version,
//! which the script does not log). The analyzer confirms once the header of a datagram from the *responder* has
//! parsed (`proc_header`): requests and traps alone leave `service` empty. Then the PDU: its tag chooses the
//! grammar (request id, error status and index, or a trap's enterprise, agent address, trap numbers and time
//! stamp, or a bulk request's counts), and the variable bindings run to the end of the datagram (binpac's
//! `VarBind[]` ignores the list's own length). Anything that does not parse (a wrong tag, an integer wider than 9
//! octets, a length past the datagram) is a violation from either side, and the PDU it cut raises no event.
//!
//! The connection's snmp.log record starts at its first parsed message (`ts`, `version`, the first community) and
//! is written when the connection ends: `duration` to the last message, the bindings of get(-next), bulk, set
//! requests and responses counted, and from responses the responder's sysDescr.0 (`display_string`) and
//! sysUpTime.0 (`up_since`, the message's time less the uptime's hundredths of seconds).

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static SNMP_LOG: Schema = Schema {
    path: "snmp",
    fields: conn_fields![
        f("duration", "interval"),
        f("version", "string"),
        f("community", "string"),
        f("get_requests", "count"),
        f("get_bulk_requests", "count"),
        f("get_responses", "count"),
        f("set_requests", "count"),
        f("display_string", "string"),
        f("up_since", "time"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "snmp",
    tcp_ports: &[],
    udp_ports: &[161, 162],
    detect: None,
    new: |_| Box::new(Snmp::default()),
    schemas: &[&SNMP_LOG],
};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OBJECT_IDENTIFIER: u8 = 0x06;
const APP_IPADDRESS: u8 = 0x40;
const APP_TIMETICKS: u8 = 0x43;

/// sysDescr.0 and sysUpTime.0 (RFC 1213), as their OIDs decode.
const SYS_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 1, 0];
const SYS_UP_TIME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];

/// Where binpac would throw: the message stops there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Binpac exception: malformed SNMP message")]
pub struct Malformed;

type Parse<'a, T> = Result<(T, &'a [u8]), Malformed>;

/// A BER element's tag and length (binpac's `ASN1EncodingMeta`: one length byte, or `0x80 | n` and `n` bytes of
/// big-endian length), and what follows it.
fn meta(data: &[u8]) -> Option<(u8, u64, &[u8])> {
    let [tag, len, rest @ ..] = data else { return None };
    if len & 0x80 == 0 {
        return Some((*tag, u64::from(*len), rest));
    }
    let count = usize::from(len & 0x7f);
    let more = rest.get(..count)?;
    Some((*tag, binary_to_int64(more), &rest[count..]))
}

/// binpac's `binary_to_int64`: each byte shifted into place (shifts of 64 and more wrap, as on the machine).
fn binary_to_int64(bytes: &[u8]) -> u64 {
    bytes.iter().enumerate().fold(0u64, |acc, (i, &b)| {
        let shift = 8 * (bytes.len() - (i + 1)) as u32;
        acc | u64::from(b).wrapping_shl(shift)
    })
}

/// One element of any tag (`ASN1Encoding`): its tag, its content and what follows.
fn any_element(data: &[u8]) -> Parse<'_, (u8, &[u8])> {
    let (tag, length, rest) = meta(data).ok_or(Malformed)?;
    let length = usize::try_from(length).ok().filter(|&l| l <= rest.len()).ok_or(Malformed)?;
    let (content, rest) = rest.split_at(length);
    Ok(((tag, content), rest))
}

/// One element with the expected tag (binpac's `check_tag`): its content and what follows.
fn element(data: &[u8], expect: u8) -> Parse<'_, &[u8]> {
    match any_element(data)? {
        ((tag, content), rest) if tag == expect => Ok((content, rest)),
        _ => Err(Malformed),
    }
}

/// A SEQUENCE's tag and length only (`ASN1SequenceMeta`): its content is parsed in line.
fn sequence_meta(data: &[u8]) -> Result<&[u8], Malformed> {
    match meta(data) {
        Some((SEQUENCE, _, rest)) => Ok(rest),
        _ => Err(Malformed),
    }
}

/// An INTEGER (binpac's `check_int`: the right tag, at most 9 content octets) and its value as binpac reads it.
fn integer(data: &[u8]) -> Parse<'_, i64> {
    let (content, rest) = element(data, INTEGER)?;
    if content.len() > 9 {
        return Err(Malformed);
    }
    Ok((binary_to_int64(content) as i64, rest))
}

/// What the message header holds that snmp.log shows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header<'a> {
    version: i64,
    community: Option<&'a [u8]>,
}

/// The PDU's event, by what the script does with it.
#[derive(Debug, Clone, PartialEq)]
enum PduEvent {
    /// GetRequest and GetNextRequest: their bindings.
    Get(u64),
    GetBulk(u64),
    Set(u64),
    /// A response: its bindings, and sysDescr.0's and sysUpTime.0's values among them.
    Response {
        bindings: u64,
        display_string: Option<Vec<u8>>,
        up_ticks: Option<u64>,
    },
    /// Traps, informs, reports, unknown, encrypted or unknown scoped PDUs: the record is started, nothing counted.
    Other,
}

/// One datagram as far as it parsed: the header (when it parsed), the PDU's event (when the PDU parsed whole, or
/// needs no parsing) and where it stopped, if it did.
struct Parsed<'a> {
    header: Option<Header<'a>>,
    event: Option<PduEvent>,
    malformed: bool,
}

fn parse(data: &[u8]) -> Parsed<'_> {
    let mut parsed = Parsed { header: None, event: None, malformed: false };
    parsed.malformed = parse_into(data, &mut parsed).is_err();
    parsed
}

/// [`parse`]'s steps, filling `parsed` as far as they get.
fn parse_into<'a>(data: &'a [u8], parsed: &mut Parsed<'a>) -> Result<(), Malformed> {
    let rest = sequence_meta(data)?;
    let (version, rest) = integer(rest)?;
    let (community, pdu) = match version {
        0 | 1 => {
            let (community, rest) = element(rest, OCTET_STRING)?;
            (Some(community), Some(rest))
        }
        3 => (None, v3_header(rest)?),
        // `UnknownVersionHeader` takes the rest of the datagram; the script logs nothing.
        _ => (None, None),
    };
    parsed.header = Some(Header { version, community });
    match pdu {
        Some(pdu) => parsed.event = Some(pdu_event(pdu)?),
        // An encrypted or unknown scoped PDU: its event starts the record.
        None if version == 3 => parsed.event = Some(PduEvent::Other),
        None => {}
    }
    Ok(())
}

/// `v3Header`: `v3HeaderData` (a SEQUENCE meta, msgID, msgMaxSize, msgFlags of exactly one octet, the security
/// model), the security parameters, and the scoped PDU: a plaintext one's context (then its PDU follows, returned)
/// or an encrypted or unknown one (`None`).
fn v3_header(data: &[u8]) -> Result<Option<&[u8]>, Malformed> {
    let rest = sequence_meta(data)?;
    let (_id, rest) = integer(rest)?;
    let (_max_size, rest) = integer(rest)?;
    let (flags, rest) = element(rest, OCTET_STRING)?;
    if flags.len() != 1 {
        return Err(Malformed);
    }
    let (_security_model, rest) = integer(rest)?;
    let (_security_parameters, rest) = element(rest, OCTET_STRING)?;
    let (next, _, rest) = meta(rest).ok_or(Malformed)?;
    if next != SEQUENCE {
        return Ok(None);
    }
    let (_engine, rest) = element(rest, OCTET_STRING)?;
    let (_context_name, rest) = element(rest, OCTET_STRING)?;
    Ok(Some(rest))
}

/// `PDU_Choice`: the PDU's tag and its grammar.
fn pdu_event(data: &[u8]) -> Result<PduEvent, Malformed> {
    let (tag, _, rest) = meta(data).ok_or(Malformed)?;
    match tag {
        0xa0..=0xa3 | 0xa6..=0xa8 => {
            let (_request_id, rest) = integer(rest)?;
            let (_error_status, rest) = integer(rest)?;
            let (_error_index, rest) = integer(rest)?;
            let bindings = var_bindings(rest)?;
            let count = bindings.len() as u64;
            Ok(match tag {
                0xa0 | 0xa1 => PduEvent::Get(count),
                0xa2 => response(&bindings),
                0xa3 => PduEvent::Set(count),
                _ => PduEvent::Other,
            })
        }
        0xa4 => {
            let (_enterprise, rest) = element(rest, OBJECT_IDENTIFIER)?;
            let (_agent_addr, rest) = element(rest, APP_IPADDRESS)?;
            let (_generic_trap, rest) = integer(rest)?;
            let (_specific_trap, rest) = integer(rest)?;
            let (_time_stamp, rest) = element(rest, APP_TIMETICKS)?;
            var_bindings(rest)?;
            Ok(PduEvent::Other)
        }
        0xa5 => {
            let (_request_id, rest) = integer(rest)?;
            let (_non_repeaters, rest) = integer(rest)?;
            let (_max_repetitions, rest) = integer(rest)?;
            Ok(PduEvent::GetBulk(var_bindings(rest)?.len() as u64))
        }
        // `UnknownPDU` takes the rest of the datagram.
        _ => Ok(PduEvent::Other),
    }
}

/// One variable binding: the OID's content, the value's tag and content.
type Binding<'a> = (&'a [u8], u8, &'a [u8]);

/// `VarBindList`: a SEQUENCE meta, then bindings (a SEQUENCE meta, an OID, a value of any tag) until the datagram
/// ends.
fn var_bindings(data: &[u8]) -> Result<Vec<Binding<'_>>, Malformed> {
    let mut rest = sequence_meta(data)?;
    let mut bindings = Vec::new();
    while !rest.is_empty() {
        let inner = sequence_meta(rest)?;
        let (oid, inner) = element(inner, OBJECT_IDENTIFIER)?;
        let ((tag, value), inner) = any_element(inner)?;
        bindings.push((oid, tag, value));
        rest = inner;
    }
    Ok(bindings)
}

/// A response's event: the script keeps sysDescr.0 when its value is a string to Zeek and sysUpTime.0 when it is
/// an unsigned number.
fn response(bindings: &[Binding]) -> PduEvent {
    let (mut display_string, mut up_ticks) = (None, None);
    for &(oid, tag, value) in bindings {
        let names = |wanted: &[u64]| oid_components(oid).as_deref() == Some(wanted);
        match value_kind(tag) {
            ValueKind::Unsigned if names(SYS_UP_TIME) => up_ticks = Some(binary_to_int64(value)),
            ValueKind::Octets if names(SYS_DESCR) => display_string = Some(value.to_vec()),
            _ => {}
        }
    }
    PduEvent::Response { bindings: bindings.len() as u64, display_string, up_ticks }
}

/// How Zeek's `asn1_obj_to_val` reads a binding's value, by its tag (the kinds snmp.log uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// Counter32, Unsigned32/Gauge32, TimeTicks, Counter64: `value$unsigned`.
    Unsigned,
    /// OCTET STRING, Opaque and every tag Zeek does not know: `value$octets`.
    Octets,
    /// Null and the exceptions, OIDs, INTEGERs, IP addresses.
    Other,
}

fn value_kind(tag: u8) -> ValueKind {
    match tag {
        0x41 | 0x42 | APP_TIMETICKS | 0x46 => ValueKind::Unsigned,
        0x05 | 0x80 | 0x81 | 0x82 | OBJECT_IDENTIFIER | INTEGER | APP_IPADDRESS => ValueKind::Other,
        _ => ValueKind::Octets,
    }
}

/// An OID's components as Zeek's `asn1_oid_to_val` prints them (the first subidentifier split by 40), `None` when
/// it prints as the empty string (no subidentifier, or a last one still continued).
fn oid_components(content: &[u8]) -> Option<Vec<u64>> {
    let mut components = Vec::new();
    let mut value = 0u64;
    let mut open = false;
    for &b in content {
        value = value.wrapping_shl(7) | u64::from(b & 0x7f);
        open = b & 0x80 != 0;
        if !open {
            if components.is_empty() {
                components.extend([value / 40, value % 40]);
            } else {
                components.push(value);
            }
            value = 0;
        }
    }
    (!open && !components.is_empty()).then_some(components)
}

/// The connection's snmp.log record, once a message started it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Info {
    ts: f64,
    last: f64,
    version: &'static str,
    community: Option<Vec<u8>>,
    get_requests: u64,
    get_bulk_requests: u64,
    get_responses: u64,
    set_requests: u64,
    display_string: Option<Vec<u8>>,
    up_since: Option<f64>,
}

/// Zeek's `SNMP::version_map`.
fn version_name(version: i64) -> &'static str {
    match version {
        0 => "1",
        1 => "2c",
        3 => "3",
        _ => "unknown",
    }
}

#[derive(Default)]
pub struct Snmp {
    confirmed: bool,
    /// A violation ended the analysis (the engine detaches the analyzer then).
    stopped: bool,
    info: Option<Box<Info>>,
}

impl Snmp {
    /// The script's `init_state` and the event's own handler.
    fn record(&mut self, ts: f64, header: &Header, event: PduEvent) {
        let info = self
            .info
            .get_or_insert_with(|| Box::new(Info { ts, version: version_name(header.version), ..Info::default() }));
        if info.community.is_none() {
            info.community = header.community.map(<[u8]>::to_vec);
        }
        info.last = ts;
        match event {
            PduEvent::Get(n) => info.get_requests += n,
            PduEvent::GetBulk(n) => info.get_bulk_requests += n,
            PduEvent::Set(n) => info.set_requests += n,
            PduEvent::Response { bindings, display_string, up_ticks } => {
                info.get_responses += bindings;
                if display_string.is_some() {
                    info.display_string = display_string;
                }
                if let Some(ticks) = up_ticks {
                    info.up_since = Some(ts - ticks as f64 / 100.0);
                }
            }
            PduEvent::Other => {}
        }
    }
}

impl Analyzer for Snmp {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.stopped || data.is_empty() {
            return;
        }
        let parsed = parse(data);
        if let Some(header) = &parsed.header {
            if !is_orig && !self.confirmed {
                self.confirmed = true;
                ctx.confirm("snmp");
            }
            if let Some(event) = parsed.event {
                self.record(ctx.ts, header, event);
            }
        }
        if parsed.malformed {
            self.stopped = true;
            ctx.violation(Malformed.to_string());
        }
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        let Some(info) = self.info.take() else { return };
        let mut v = ctx.conn_columns(info.ts);
        v.extend([
            Value::Interval(info.last - info.ts),
            Value::str(info.version),
            info.community.as_deref().map_or(Value::Unset, |c| Value::Str(bytes_to_log_string(c))),
            Value::Count(info.get_requests),
            Value::Count(info.get_bulk_requests),
            Value::Count(info.get_responses),
            Value::Count(info.set_requests),
            info.display_string.as_deref().map_or(Value::Unset, |d| Value::Str(bytes_to_log_string(d))),
            info.up_since.map_or(Value::Unset, Value::Time),
        ]);
        ctx.log(&SNMP_LOG, v);
    }
}

/// Fuzz entry point: arbitrary datagrams in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Snmp::default(), Proto::Udp, 161, data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::testing::Harness;
    use crate::analyzers::{Action, Proto};

    /// A v2c GetRequest for sysDescr.0 with community "public" (RFC 3416 PDU inside the RFC 1901 message).
    const GET_REQUEST: &[u8] = &[
        0x30, 0x29, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa0, 0x1c, 0x02, 0x04, 0x12,
        0x34, 0x56, 0x78, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0e, 0x30, 0x0c, 0x06, 0x08, 0x2b, 0x06, 0x01,
        0x02, 0x01, 0x01, 0x01, 0x00, 0x05, 0x00,
    ];

    /// Its GetResponse (PDU tag 0xa2) carrying an OCTET STRING value.
    const GET_RESPONSE: &[u8] = &[
        0x30, 0x2d, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa2, 0x20, 0x02, 0x04, 0x12,
        0x34, 0x56, 0x78, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x12, 0x30, 0x10, 0x06, 0x08, 0x2b, 0x06, 0x01,
        0x02, 0x01, 0x01, 0x01, 0x00, 0x04, 0x04, b'l', b'i', b'n', b'x',
    ];

    /// An SNMPv3 discovery report (RFC 3412 msgGlobalData, RFC 3414 empty USM parameters, plaintext scoped PDU).
    const V3_REPORT: &[u8] = &[
        0x30, 0x3a, 0x02, 0x01, 0x03, 0x30, 0x0f, 0x02, 0x02, 0x4a, 0x69, 0x02, 0x03, 0x00, 0xff, 0xe3, 0x04, 0x01,
        0x00, 0x02, 0x01, 0x03, 0x04, 0x10, 0x30, 0x0e, 0x04, 0x00, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00,
        0x04, 0x00, 0x04, 0x00, 0x30, 0x12, 0x04, 0x00, 0x04, 0x00, 0xa8, 0x0c, 0x02, 0x02, 0x4a, 0x69, 0x02, 0x01,
        0x00, 0x02, 0x01, 0x00, 0x30, 0x00,
    ];

    fn run(datagrams: &[(bool, &[u8])]) -> Vec<Action> {
        let mut h = Harness::new(Proto::Udp, 161);
        let mut snmp = Snmp::default();
        for (is_orig, data) in datagrams {
            h.deliver(&mut snmp, *is_orig, data);
        }
        h.actions
    }

    #[test]
    fn snmp_confirms_on_the_responders_header() {
        assert_eq!(run(&[(true, GET_REQUEST)]), [], "a request alone does not confirm");
        assert_eq!(run(&[(true, GET_REQUEST), (false, GET_RESPONSE)]), [Action::Confirm("snmp")]);
        assert_eq!(run(&[(false, V3_REPORT)]), [Action::Confirm("snmp")]);
    }

    #[test]
    fn snmp_rejects_what_does_not_parse() {
        // A DNS query to port 161: its first byte is no SEQUENCE.
        let dns = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        assert!(matches!(run(&[(true, &dns)])[..], [Action::Violation(..)]));
        // The community's length runs past the datagram.
        let truncated = &GET_RESPONSE[..10];
        assert!(matches!(run(&[(false, truncated)])[..], [Action::Violation(..)]));
        // v3 msgFlags must be one octet.
        let mut two_flag_octets = V3_REPORT.to_vec();
        two_flag_octets.splice(16..19, [0x04, 0x02, 0x00, 0x00]);
        two_flag_octets[1] += 1;
        two_flag_octets[6] += 1;
        assert!(matches!(run(&[(false, &two_flag_octets)])[..], [Action::Violation(..)]));
        // A violation before the response keeps the analyzer from confirming.
        assert!(matches!(run(&[(true, &dns), (false, GET_RESPONSE)])[..], [Action::Violation(..)]));
    }

    #[test]
    fn snmp_drops_a_confirmed_service_on_a_later_bad_datagram() {
        let actions = run(&[(false, GET_RESPONSE), (true, b"junk")]);
        assert!(matches!(actions[..], [Action::Confirm("snmp"), Action::Violation(..)]));
    }

    #[test]
    fn long_form_lengths_and_unknown_versions() {
        assert_eq!(meta(&[0x30, 0x82, 0x01, 0x00, 0xaa]), Some((0x30, 256, &[0xaa][..])));
        assert_eq!(meta(&[0x30, 0x81]), None);
        // Version 2 is unknown to Zeek: the rest of the datagram is taken as is, and the header confirms.
        let unknown = parse(&[0x30, 0x03, 0x02, 0x01, 0x02]);
        assert!(unknown.header.is_some() && unknown.event.is_none() && !unknown.malformed);
        // A ten-octet integer fails binpac's width check.
        let wide = parse(&[0x30, 0x0c, 0x02, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(wide.header.is_none() && wide.malformed);
    }

    /// The snmp.log columns after `id`, as TSV, of a connection that carried `datagrams` (at 1000.0, 1001.0, ...).
    fn logged(datagrams: &[(bool, &[u8])]) -> Vec<Vec<String>> {
        let mut h = Harness::new(Proto::Udp, 161);
        let mut snmp = Snmp::default();
        for (i, (is_orig, data)) in datagrams.iter().enumerate() {
            h.run(1000.0 + i as f64, |ctx| snmp.deliver(ctx, *is_orig, data));
        }
        h.finish(&mut snmp);
        h.logged("snmp").iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect()
    }

    fn row(fields: [&str; 9]) -> Vec<String> {
        fields.map(String::from).to_vec()
    }

    #[test]
    fn a_get_and_its_response_make_one_record() {
        let rows = logged(&[(true, GET_REQUEST), (false, GET_RESPONSE)]);
        assert_eq!(rows, [row(["1.000000", "2c", "public", "1", "0", "1", "0", "linx", "-"])]);
    }

    /// A v1 GetResponse from the responder with sysDescr.0 (OCTET STRING) and sysUpTime.0 (TimeTicks 12345).
    fn v1_response_with_uptime() -> Vec<u8> {
        let descr = [0x30, 0x0f, 0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 1, 0, 0x04, 0x03, b'r', b'"', b'\t'];
        let uptime = [0x30, 0x0e, 0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 3, 0, 0x43, 0x02, 0x30, 0x39];
        let mut bindings = vec![0x30, (descr.len() + uptime.len()) as u8];
        bindings.extend(descr);
        bindings.extend(uptime);
        let mut pdu = vec![0xa2, 0];
        pdu.extend([0x02, 0x01, 0x07, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]);
        pdu.extend(&bindings);
        pdu[1] = (pdu.len() - 2) as u8;
        let mut message = vec![0x30, 0, 0x02, 0x01, 0x00, 0x04, 0x04, b'r', b'o', b'o', b't'];
        message.extend(pdu);
        message[1] = (message.len() - 2) as u8;
        message
    }

    #[test]
    fn a_response_names_the_responder_and_its_uptime() {
        let rows = logged(&[(false, &v1_response_with_uptime())]);
        // Uptime 12345 hundredths of a second before the message's time (1000.0).
        assert_eq!(rows, [row(["0.000000", "1", "root", "0", "0", "2", "0", r#"r"\x09"#, "876.550000"])]);
    }

    #[test]
    fn v3_messages_start_the_record_without_a_community() {
        assert_eq!(logged(&[(false, V3_REPORT)]), [row(["0.000000", "3", "-", "0", "0", "0", "0", "-", "-"])]);
    }

    #[test]
    fn a_pdu_that_does_not_parse_counts_nothing() {
        // The last binding's value runs past the datagram: the header confirms, the PDU is a violation.
        let mut cut = GET_RESPONSE.to_vec();
        cut.truncate(cut.len() - 1);
        let mut h = Harness::new(Proto::Udp, 161);
        let mut snmp = Snmp::default();
        h.deliver(&mut snmp, false, &cut);
        assert!(matches!(h.actions[..], [Action::Confirm("snmp"), Action::Violation(..)]));
        h.finish(&mut snmp);
        assert!(h.logged("snmp").is_empty(), "no event, no record");
        // Bytes after the bindings are parsed as another binding (binpac reads bindings to the datagram's end).
        let mut trailing = GET_REQUEST.to_vec();
        trailing.push(0);
        assert!(matches!(run(&[(true, &trailing)])[..], [Action::Violation(..)]));
    }

    #[test]
    fn only_string_and_unsigned_values_are_kept() {
        let binding = |oid: &'static [u8], tag: u8, value: &'static [u8]| (oid, tag, value);
        const DESCR: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 1, 0];
        const UPTIME: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 3, 0];
        // An INTEGER sysDescr and an OCTET STRING sysUpTime are not what the script reads; Opaque is a string to it.
        let ignored = response(&[binding(DESCR, INTEGER, b"\x01"), binding(UPTIME, OCTET_STRING, b"99")]);
        assert_eq!(ignored, PduEvent::Response { bindings: 2, display_string: None, up_ticks: None });
        let kept = response(&[binding(DESCR, 0x44, b"box"), binding(UPTIME, 0x41, &[1, 0])]);
        assert_eq!(
            kept,
            PduEvent::Response { bindings: 2, display_string: Some(b"box".to_vec()), up_ticks: Some(256) }
        );
    }

    #[test]
    fn oids_decode_as_zeek_prints_them() {
        assert_eq!(oid_components(&[0x2b, 6, 1, 2, 1, 1, 1, 0]).as_deref(), Some(SYS_DESCR));
        assert_eq!(oid_components(&[0x2b, 0x86, 0x48]), Some(vec![1, 3, 840]));
        assert_eq!(oid_components(&[0x2b, 0x86]), None, "a last subidentifier still open");
        assert_eq!(oid_components(&[]), None);
    }
}
