//! SNMP (udp 161, 162): Zeek's binpac analyzer (src/analyzer/protocol/snmp/snmp-protocol.pac, snmp-analyzer.pac)
//! confirms in `proc_header`, once the message header of a datagram from the *responder* has parsed: the outer
//! SEQUENCE, the version INTEGER, then the community OCTET STRING (v1, v2c), the v3 header data, security
//! parameters and scoped-PDU start (v3), or nothing more (an unknown version). A header that does not parse (a
//! wrong tag, an integer wider than 9 octets, a length past the datagram) is a violation from either side.
//! Requests from the originator never confirm, so traps alone (agent to manager, no reply) leave `service` empty.
//! The PDU after the header is not checked here.

use super::{AnalyzerSpec, confirmer_spec};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;

confirmer_spec!(SNMP, "snmp", tcp: &[], udp: &[161, 162], detect: None, both: false, check: snmp_check);

fn snmp_check(is_orig: bool, data: &[u8]) -> Option<bool> {
    match header_parses(data) {
        Some(()) if !is_orig => Some(true),
        Some(()) => None,
        None => Some(false),
    }
}

/// A BER element's tag and length (binpac's `ASN1EncodingMeta`: one length byte, or `0x80 | n` and `n` bytes of
/// big-endian length), and what follows it.
fn meta(data: &[u8]) -> Option<(u8, u64, &[u8])> {
    let [tag, len, rest @ ..] = data else { return None };
    if len & 0x80 == 0 {
        return Some((*tag, u64::from(*len), rest));
    }
    let count = usize::from(len & 0x7f);
    let more = rest.get(..count)?;
    // binpac's `binary_to_int64`: each byte shifted into place (shifts of 64 and more wrap, as on the machine).
    let length = more.iter().enumerate().fold(0u64, |acc, (i, &b)| {
        let shift = 8 * (count - (i + 1)) as u32;
        acc | u64::from(b).wrapping_shl(shift)
    });
    Some((*tag, length, &rest[count..]))
}

/// One element with the expected tag: its content and what follows.
fn element(data: &[u8], expect: u8) -> Option<(&[u8], &[u8])> {
    let (tag, length, rest) = meta(data)?;
    if tag != expect {
        return None;
    }
    let length = usize::try_from(length).ok().filter(|&l| l <= rest.len())?;
    Some(rest.split_at(length))
}

/// An INTEGER (binpac's `check_int`: the right tag, at most 9 content octets) and its value as binpac reads it.
fn integer(data: &[u8]) -> Option<(i64, &[u8])> {
    let (content, rest) = element(data, INTEGER)?;
    if content.len() > 9 {
        return None;
    }
    let value = content.iter().enumerate().fold(0u64, |acc, (i, &b)| {
        let shift = 8 * (content.len() - (i + 1)) as u32;
        acc | u64::from(b).wrapping_shl(shift)
    });
    Some((value as i64, rest))
}

/// Whether the message header parses (`TopLevelMessage` up to and including `Header`).
fn header_parses(data: &[u8]) -> Option<()> {
    let (tag, _, rest) = meta(data)?;
    if tag != SEQUENCE {
        return None;
    }
    let (version, rest) = integer(rest)?;
    match version {
        0 | 1 => element(rest, OCTET_STRING).map(drop),
        3 => v3_header_parses(rest),
        // `UnknownVersionHeader` takes the rest of the datagram.
        _ => Some(()),
    }
}

/// `v3Header`: `v3HeaderData` (a SEQUENCE meta, msgID, msgMaxSize, msgFlags of exactly one octet, the security
/// model), the security parameters, and the start of the scoped PDU.
fn v3_header_parses(data: &[u8]) -> Option<()> {
    let (tag, _, rest) = meta(data)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_id, rest) = integer(rest)?;
    let (_max_size, rest) = integer(rest)?;
    let (flags, rest) = element(rest, OCTET_STRING)?;
    if flags.len() != 1 {
        return None;
    }
    let (_security_model, rest) = integer(rest)?;
    let (_security_parameters, rest) = element(rest, OCTET_STRING)?;
    let (next, _, rest) = meta(rest)?;
    if next == SEQUENCE {
        // `v3ScopedPDU`: contextEngineID and contextName.
        let (_engine, rest) = element(rest, OCTET_STRING)?;
        element(rest, OCTET_STRING)?;
    }
    // Encrypted or unknown scoped PDUs take the rest of the datagram.
    Some(())
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
        let mut snmp = (SNMP.new)(Proto::Udp);
        for (is_orig, data) in datagrams {
            h.deliver(snmp.as_mut(), *is_orig, data);
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
        assert!(matches!(run(&[(true, &dns)])[..], [Action::Violation(_)]));
        // The community's length runs past the datagram.
        let truncated = &GET_RESPONSE[..10];
        assert!(matches!(run(&[(false, truncated)])[..], [Action::Violation(_)]));
        // v3 msgFlags must be one octet.
        let mut two_flag_octets = V3_REPORT.to_vec();
        two_flag_octets.splice(16..19, [0x04, 0x02, 0x00, 0x00]);
        two_flag_octets[1] += 1;
        two_flag_octets[6] += 1;
        assert!(matches!(run(&[(false, &two_flag_octets)])[..], [Action::Violation(_)]));
        // A violation before the response keeps the analyzer from confirming.
        assert!(matches!(run(&[(true, &dns), (false, GET_RESPONSE)])[..], [Action::Violation(_)]));
    }

    #[test]
    fn snmp_drops_a_confirmed_service_on_a_later_bad_datagram() {
        let actions = run(&[(false, GET_RESPONSE), (true, b"junk")]);
        assert!(matches!(actions[..], [Action::Confirm("snmp"), Action::Violation(_)]));
    }

    #[test]
    fn long_form_lengths_and_unknown_versions() {
        assert_eq!(meta(&[0x30, 0x82, 0x01, 0x00, 0xaa]), Some((0x30, 256, &[0xaa][..])));
        assert_eq!(meta(&[0x30, 0x81]), None);
        // Version 2 is unknown to Zeek: the rest of the datagram is taken as is, and the header confirms.
        assert_eq!(header_parses(&[0x30, 0x03, 0x02, 0x01, 0x02]), Some(()));
        // A ten-octet integer fails binpac's width check.
        assert_eq!(header_parses(&[0x30, 0x0c, 0x02, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }
}
