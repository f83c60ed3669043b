//! Datagram protocols whose Zeek parser confirms on one whole message: SIP. Each datagram is one message; a
//! message that does not parse is a violation (which also drops an earlier confirmation).

use super::{AnalyzerSpec, Proto, Signature, confirmer_spec};

// SIP (udp 5060, base/protocols/sip/main.zeek and dpd.sig): Zeek's binpac analyzer (src/analyzer/protocol/sip/
// sip-protocol.pac, sip-analyzer.pac) parses what the originator sends as a request and what the responder sends
// as a reply, and confirms in `proc_sip_reply`, once a reply's status line parsed: `SIP/<digits>.<digits>`,
// blanks, three digits. A request line is `token uri SIP/<digits>.<digits>`; a first line of the wrong kind for
// its side does not parse. Headers and bodies are not checked here.
confirmer_spec!(SIP, "sip", tcp: &[], udp: &[5060], detect: Some(Signature::either_side(detect_sip)), both: false, check: sip_check);

fn sip_check(is_orig: bool, data: &[u8]) -> Option<bool> {
    let line = first_line(data);
    match (is_orig, is_orig && sip_request_line_parses(line)) {
        (true, true) => None,
        (true, false) => Some(false),
        (false, _) => Some(sip_reply_line_parses(line)),
    }
}

/// The first line, without its end (binpac's `&oneline`).
fn first_line(data: &[u8]) -> &[u8] {
    let line = memchr::memchr(b'\n', data).map_or(data, |end| &data[..end]);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The longest prefix of bytes that satisfy `accept`, and the rest (binpac's prefix match of a regular expression
/// of one character class repeated).
fn span(data: &[u8], accept: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    data.split_at(data.iter().take_while(|&&b| accept(b)).count())
}

fn skip_blanks(data: &[u8]) -> &[u8] {
    span(data, |b| b == b' ' || b == b'\t').1
}

/// `SIP/` and `[0-9]+\.[0-9]+`, and what follows.
fn sip_version(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(b"SIP/")?;
    let (major, rest) = span(rest, |b| b.is_ascii_digit());
    let (minor, rest) = span(rest.strip_prefix(b".")?, |b| b.is_ascii_digit());
    (!major.is_empty() && !minor.is_empty()).then_some(rest)
}

/// `SIP_ReplyLine`: version, blanks, a three-digit status (the reason is the rest of the line).
fn sip_reply_line_parses(line: &[u8]) -> bool {
    sip_version(line).map(skip_blanks).is_some_and(|rest| rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit))
}

/// `SIP_RequestLine`: a method token, blanks, a URI, blanks, the version.
fn sip_request_line_parses(line: &[u8]) -> bool {
    const NOT_IN_TOKEN: &[u8] = b"()<>@,;:\\\"/[]?={} \t";
    let (method, rest) = span(line, |b| !NOT_IN_TOKEN.contains(&b));
    let (uri, rest) = span(skip_blanks(rest), |b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    !method.is_empty() && !uri.is_empty() && sip_version(skip_blanks(rest)).is_some()
}

/// Zeek's SIP signatures (base/protocols/sip/dpd.sig) on one datagram: a request (`.* SIP/d.d\r\n`: the first
/// line ends with the version) or a reply (` ?SIP/d.d` then `\r\n` or a status between blanks).
fn detect_sip(proto: Proto, _is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Udp && (sip_request_signature(data) || sip_reply_signature(data))
}

fn sip_request_signature(data: &[u8]) -> bool {
    let Some(end) = memchr::memchr(b'\n', data) else { return false };
    let Some(line) = data[..end].strip_suffix(b"\r") else { return false };
    match line {
        [.., b' ', b'S', b'I', b'P', b'/', major, b'.', minor] => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

fn sip_reply_signature(data: &[u8]) -> bool {
    let data = data.strip_prefix(b" ").unwrap_or(data);
    match data {
        [b'S', b'I', b'P', b'/', major, b'.', minor, rest @ ..] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            matches!(rest, [b'\r', b'\n', ..])
                || matches!(rest, [b' ', a, b, c, b' ', ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::testing::Harness;
    use crate::analyzers::{Action, AnalyzerSpec};

    fn run(spec: &AnalyzerSpec, port: u16, datagrams: &[(bool, &[u8])]) -> Vec<Action> {
        let mut h = Harness::new(Proto::Udp, port);
        let mut analyzer = (spec.new)(Proto::Udp);
        for (is_orig, data) in datagrams {
            h.deliver(analyzer.as_mut(), *is_orig, data);
        }
        h.actions
    }

    fn violated(actions: &[Action]) -> bool {
        matches!(actions, [.., Action::Violation(_)])
    }

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\nFrom: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n";
    const RINGING: &[u8] =
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
CSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn sip_confirms_on_the_responders_status_line() {
        // RFC 3261 §24.2's first messages.
        assert_eq!(run(&SIP, 5060, &[(true, INVITE)]), [], "a request does not confirm");
        assert_eq!(run(&SIP, 5060, &[(true, INVITE), (false, RINGING)]), [Action::Confirm("sip")]);
        assert!(detect_sip(Proto::Udp, true, INVITE) && detect_sip(Proto::Udp, false, RINGING));
        assert!(detect_sip(Proto::Udp, false, b" SIP/2.0 200 OK\r\n"));
    }

    #[test]
    fn sip_rejects_messages_of_the_wrong_kind_or_shape() {
        // A request from the responder (a BYE from the callee) does not parse as a reply: Zeek drops the analyzer.
        let bye = b"BYE sip:alice@pc33.atlanta.example.com SIP/2.0\r\n\r\n";
        let actions = run(&SIP, 5060, &[(true, INVITE), (false, RINGING), (false, bye)]);
        assert!(matches!(actions[..], [Action::Confirm("sip"), Action::Violation(_)]));
        assert!(violated(&run(&SIP, 5060, &[(true, RINGING)])), "a reply from the originator");
        assert!(violated(&run(&SIP, 5060, &[(false, b"SIP/2.0 18 Ringing\r\n")])), "two-digit status");
        assert!(violated(&run(&SIP, 5060, &[(true, b"INVITE sip:bob HTTP/1.1\r\n")])));
        assert!(!detect_sip(Proto::Udp, true, b"GET / HTTP/1.1\r\n"));
        assert!(!detect_sip(Proto::Tcp, true, INVITE));
        assert!(!detect_sip(Proto::Udp, true, b"INVITE sip:bob SIP/2.0\n"), "the signature wants CRLF");
    }
}
