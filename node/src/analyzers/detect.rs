//! Service detection for protocols the node does not log in depth: the analyzer confirms the
//! `service` when the first messages look like the protocol, and otherwise steps aside.

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};

/// Confirms `service` once both sides (or the side that speaks first) look right.
struct Confirmer {
    service: &'static str,
    looks_right: fn(is_orig: bool, data: &[u8]) -> Option<bool>,
    seen_orig: bool,
    seen_resp: bool,
    done: bool,
    need_both: bool,
}

impl Analyzer for Confirmer {
    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.done || data.is_empty() {
            return;
        }
        match (self.looks_right)(is_orig, data) {
            Some(true) => {
                if is_orig {
                    self.seen_orig = true;
                } else {
                    self.seen_resp = true;
                }
            }
            Some(false) => {
                self.done = true;
                ctx.violation(format!("not {}", self.service));
                return;
            }
            None => {}
        }
        let confirmed =
            if self.need_both { self.seen_orig && self.seen_resp } else { self.seen_orig || self.seen_resp };
        if confirmed {
            self.done = true;
            ctx.confirm(self.service);
        }
    }
}

macro_rules! confirmer_spec {
    ($ident:ident, $name:literal, tcp: $tcp:expr, udp: $udp:expr, detect: $detect:expr, both: $both:expr, check: $check:expr) => {
        pub static $ident: AnalyzerSpec = AnalyzerSpec {
            name: $name,
            tcp_ports: $tcp,
            udp_ports: $udp,
            detect: $detect,
            new: |_| {
                Box::new(Confirmer {
                    service: $name,
                    looks_right: $check,
                    seen_orig: false,
                    seen_resp: false,
                    done: false,
                    need_both: $both,
                })
            },
            schemas: &[],
        };
    };
}

fn starts_with_ci(data: &[u8], prefix: &[u8]) -> bool {
    data.len() >= prefix.len() && data[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn imap_check(is_orig: bool, data: &[u8]) -> Option<bool> {
    if is_orig {
        // `tag SP command`
        let sp = data.iter().position(|&b| b == b' ')?;
        Some(sp > 0 && data[..sp].iter().all(|b| b.is_ascii_graphic()))
    } else {
        Some(data.starts_with(b"* OK") || data.starts_with(b"* PREAUTH") || data.starts_with(b"* BYE"))
    }
}

fn xmpp_check(_is_orig: bool, data: &[u8]) -> Option<bool> {
    let head = &data[..data.len().min(512)];
    Some(head.starts_with(b"<?xml") || contains(head, b"<stream:stream"))
}

/// `hay.split(|&b| b == separator)`: the same pieces, empty ones included, with the separators found by `memchr`
/// (vectorised). Content detection runs every detector on the first kilobyte of every stream, and most of it is
/// binary or another protocol.
/// The lines of `text`, split at LF and at CR (a CRLF gives an empty line between them).
pub(super) fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_at_byte(text, b'\n').flat_map(|l| l.split(|b| *b == b'\r'))
}

pub(super) fn split_at_byte(hay: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(hay);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(separator, current) {
            Some(at) => {
                rest = Some(&current[at + 1..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn irc_check(is_orig: bool, data: &[u8]) -> Option<bool> {
    if is_orig {
        Some(starts_with_ci(data, b"NICK ") || starts_with_ci(data, b"USER ") || starts_with_ci(data, b"PASS "))
    } else {
        Some(data.starts_with(b":"))
    }
}

fn detect_imap(proto: Proto, is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Tcp && !is_orig && data.starts_with(b"* OK")
}

fn detect_xmpp(proto: Proto, is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Tcp && is_orig && xmpp_check(is_orig, data) == Some(true)
}

confirmer_spec!(IMAP, "imap", tcp: &[143], udp: &[], detect: Some(Signature::either_side(detect_imap)), both: true, check: imap_check);
/// XMPP: confirmed on the stream header; after the server's `<proceed` to a STARTTLS request the rest
/// of the connection is TLS, handed to the SSL analyzer.
pub static XMPP: AnalyzerSpec = AnalyzerSpec {
    name: "xmpp",
    tcp_ports: &[5222, 5269],
    udp_ports: &[],
    detect: Some(Signature::either_side(detect_xmpp)),
    new: |_| Box::new(Xmpp::default()),
    schemas: &[],
};

#[derive(Default)]
struct Xmpp {
    confirmed: bool,
    starttls_requested: bool,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

impl Analyzer for Xmpp {
    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if !self.confirmed {
            match xmpp_check(is_orig, data) {
                Some(true) => {
                    self.confirmed = true;
                    ctx.confirm("xmpp");
                }
                _ if data.len() > 16 => {
                    ctx.violation("not xmpp");
                    return;
                }
                _ => {}
            }
        }
        if is_orig && contains(data, b"<starttls") {
            self.starttls_requested = true;
        } else if !is_orig && self.starttls_requested && contains(data, b"<proceed") {
            ctx.start_tls();
        }
    }
}
confirmer_spec!(IRC, "irc", tcp: &[6666, 6667, 6668, 6669], udp: &[], detect: None, both: true, check: irc_check);

#[cfg(test)]
mod tests {
    use super::*;

    /// The XMPP check as first written (every window compared): the reference for the skipping search.
    fn xmpp_reference(data: &[u8]) -> bool {
        let head = &data[..data.len().min(512)];
        head.starts_with(b"<?xml") || head.windows(14).any(|w| w == b"<stream:stream")
    }

    #[test]
    fn xmpp_detection_edges() {
        let mut late = vec![b'x'; 498];
        late.extend_from_slice(b"<stream:stream");
        let mut too_late = vec![b'x'; 499];
        too_late.extend_from_slice(b"<stream:stream");
        for (stream, want) in [
            (&b"<?xml version='1.0'?>"[..], true),
            (b"<?xm", false),
            (b"<<stream:stream to='a'>", true),
            (b"<stream:strea", false),
            (b"<<<<<<<<<<<<<<<<stream:stream", true),
            (b"GET / HTTP/1.1\r\n", false),
            (&late, true),
            (&too_late, false),
        ] {
            assert_eq!(detect_xmpp(Proto::Tcp, true, stream), want, "{:?}", String::from_utf8_lossy(stream));
            assert_eq!(xmpp_reference(stream), want);
        }
        assert!(!detect_xmpp(Proto::Tcp, false, b"<?xml version='1.0'?>"));
    }

    #[test]
    fn splitting_at_a_byte_gives_the_pieces_of_slice_split() {
        for len in 0..40 {
            for at in 0..=len {
                let mut hay = vec![b'a'; len];
                if at < len {
                    hay[at] = b'\n';
                    hay[len - 1] = b'\n';
                }
                let pieces: Vec<&[u8]> = split_at_byte(&hay, b'\n').collect();
                assert_eq!(pieces, hay.split(|&b| b == b'\n').collect::<Vec<_>>());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn skipping_searches_match_the_reference(
            text in "((<|<\\?xml|<stream|<stream:stream|:stream|x|\n)[ <]{0,2}){0,60}",
            binary in proptest::collection::vec(proptest::num::u8::ANY, 0..700),
            byte in proptest::num::u8::ANY,
        ) {
            for data in [text.as_bytes(), &binary] {
                proptest::prop_assert_eq!(detect_xmpp(Proto::Tcp, true, data), xmpp_reference(data));
                let pieces: Vec<&[u8]> = split_at_byte(data, byte).collect();
                proptest::prop_assert_eq!(pieces, data.split(|&b| b == byte).collect::<Vec<_>>());
            }
        }
    }
}
