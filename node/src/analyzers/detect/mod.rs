//! Service detection for a protocol the node does not log in depth: XMPP, confirmed on its stream header as
//! Zeek's binpac parser confirms it, with its STARTTLS hand-over to TLS.

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};

/// Drives the detection-only analyzer over arbitrary bytes, as TCP and as UDP, for fuzzing (see
/// [`super::fuzzing::drive`]).
pub fn fuzz(data: &[u8]) {
    for (proto, port) in [(Proto::Tcp, 5222), (Proto::Udp, 5222)] {
        super::fuzzing::drive((XMPP.new)(proto).as_mut(), proto, port, data);
    }
    if let Some(signature) = XMPP.detect {
        let half = data.len() / 2;
        for proto in [Proto::Tcp, Proto::Udp] {
            for is_orig in [true, false] {
                signature.matches(proto, is_orig, &data[..half], &data[half..]);
            }
        }
    }
}

fn xmpp_check(_is_orig: bool, data: &[u8]) -> Option<bool> {
    let head = &data[..data.len().min(512)];
    Some(head.starts_with(b"<?xml") || contains(head, b"<stream:stream"))
}

/// The lines of `text`, split at LF and at CR (a CRLF gives an empty line between them).
pub(super) fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_where(text, |hay| memchr::memchr2(b'\n', b'\r', hay))
}

/// `hay.split(|&b| b == separator)`: the same pieces, empty ones included, with the separators found by `memchr`
/// (vectorised). Content detection runs every detector on the first kilobyte of every stream, and most of it is
/// binary or another protocol.
pub(super) fn split_at_byte(hay: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    split_where(hay, move |rest| memchr::memchr(separator, rest))
}

/// The pieces of `hay` between the separators `find` finds (each one byte), empty ones included.
fn split_where(hay: &[u8], find: impl Fn(&[u8]) -> Option<usize>) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(hay);
    std::iter::from_fn(move || {
        let current = rest?;
        match find(current) {
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

fn detect_xmpp(proto: Proto, is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Tcp && is_orig && xmpp_check(is_orig, data) == Some(true)
}

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
    fn spec(&self) -> &'static AnalyzerSpec {
        &XMPP
    }

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

    /// Through the engine: traffic on a registered port that is something else names no service.
    mod through_the_engine {
        use crate::decode::test_frames::ipv4_udp;
        use crate::logs::Value;

        const CLIENT: [u8; 4] = [10, 0, 0, 1];
        const SERVER: [u8; 4] = [10, 0, 0, 2];

        /// conn.log's `service` of the one connection `frames` make.
        fn service(frames: &[Vec<u8>]) -> String {
            let records = crate::analyzers::testing::engine_records(frames);
            let conns: Vec<_> = records.iter().filter(|r| r.schema.path == "conn").collect();
            assert_eq!(conns.len(), 1);
            match &conns[0].values[conns[0].schema.field_index("service").expect("conn.log has service")] {
                Value::Str(s) => s.clone(),
                _ => "-".into(),
            }
        }

        #[test]
        fn traffic_on_a_registered_port_that_is_something_else_names_nothing() {
            // A DNS query and answer to port 161 are no SNMP.
            let query = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
            let dns =
                [ipv4_udp((CLIENT, 40000), (SERVER, 161), &query), ipv4_udp((SERVER, 161), (CLIENT, 40000), &query)];
            assert_eq!(service(&dns), "-");
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
                let lines: Vec<&[u8]> = lines(data).collect();
                proptest::prop_assert_eq!(lines, data.split(|&b| b == b'\n' || b == b'\r').collect::<Vec<_>>());
            }
        }
    }
}
