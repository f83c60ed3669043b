//! WebSocket (RFC 6455), as Zeek's base/protocols/websocket: after an HTTP `Upgrade: websocket` answered 101, the
//! HTTP analyzer hands the stream to this one. websocket.log gets one record at the hand-over, from the handshake's
//! `Sec-WebSocket-*` headers and the HTTP request (main.zeek's `websocket_established` handlers, run for the HTTP
//! analyzer: [`Handshake`]); this analyzer then reads the frames and confirms the `websocket` service once a whole
//! message went by, as Zeek's binpac analyzer does. Frame payloads are not handed to further protocol detection.

use sha1::{Digest, Sha1};

use super::{Analyzer, AnalyzerSpec, Ctx};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

/// Weird source of the script's WebSocket weirds.
const SOURCE: &str = "WebSocket";

/// RFC 6455's handshake GUID, appended to the client's key for the server's accept value.
const HANDSHAKE_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub static WEBSOCKET: Schema = Schema {
    path: "websocket",
    fields: conn_fields![
        f("host", "string"),
        f("uri", "string"),
        f("user_agent", "string"),
        f("subprotocol", "string"),
        f("client_protocols", "vector[string]"),
        f("server_extensions", "vector[string]"),
        f("client_extensions", "vector[string]"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "websocket",
    // Only an HTTP upgrade attaches it.
    tcp_ports: &[],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(WebSocket::default()),
    schemas: &[&WEBSOCKET],
};

/// What the HTTP upgrade told of the WebSocket (`WebSocket::Info` as main.zeek fills it from `http_header`).
#[derive(Debug, Default)]
pub struct Handshake {
    /// Some `Sec-WebSocket-*` header was seen (else the establishment is unexpected).
    saw_header: bool,
    host: Option<String>,
    uri: Option<String>,
    user_agent: Option<String>,
    subprotocol: Option<String>,
    client_protocols: Option<Vec<String>>,
    server_extensions: Option<Vec<String>>,
    client_extensions: Option<Vec<String>>,
    client_key: Option<String>,
    server_accept: Option<String>,
}

/// `split_string(value, / *, */)`.
fn split_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split(',').map(|item| item.trim_matches(' ').to_string())
}

impl Handshake {
    /// `event http_header` for a `Sec-WebSocket-*` header (`name` in any case); other headers are ignored.
    pub fn header(&mut self, ctx: &mut Ctx, is_orig: bool, name: &[u8], value: &[u8]) {
        const PREFIX: &[u8] = b"SEC-WEBSOCKET-";
        if name.len() < PREFIX.len() || !name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
            return;
        }
        self.saw_header = true;
        let field = &name[PREFIX.len()..];
        let is = |known: &[u8]| field.eq_ignore_ascii_case(known);
        let value = bytes_to_log_string(value);
        let (list, single, repeated) = match (is_orig, is(b"PROTOCOL"), is(b"EXTENSIONS")) {
            (true, true, _) => (Some(&mut self.client_protocols), None, ""),
            (true, _, true) => (Some(&mut self.client_extensions), None, ""),
            (false, true, _) => (None, Some(&mut self.subprotocol), "websocket_multiple_protocol_headers"),
            (false, _, true) => (Some(&mut self.server_extensions), None, ""),
            (true, false, false) if is(b"KEY") => (None, Some(&mut self.client_key), "websocket_multiple_key_headers"),
            (false, false, false) if is(b"ACCEPT") => {
                (None, Some(&mut self.server_accept), "websocket_multiple_accept_headers")
            }
            _ => (None, None, ""),
        };
        if let Some(list) = list {
            list.get_or_insert_with(Vec::new).extend(split_list(&value));
        } else if let Some(single) = single {
            if single.is_some() {
                ctx.weird(repeated, None, SOURCE);
            }
            *single = Some(value);
        }
    }

    /// The HTTP request's host, URI and user agent (`c$http`), copied into the record.
    pub fn set_request(&mut self, host: Option<String>, uri: Option<String>, user_agent: Option<String>) {
        (self.host, self.uri, self.user_agent) = (host, uri, user_agent);
    }

    /// `event websocket_established`: the handshake's weirds and the websocket.log record.
    pub fn established(self, ctx: &mut Ctx) {
        if !ctx.cfg.is_enabled("websocket") {
            return;
        }
        // The script's `Reporter::conn_weird(name, c, "", "WebSocket")`: an empty addl is left unset.
        if !self.saw_header {
            ctx.weird("websocket_established_unexpected", None, SOURCE);
        }
        if self.client_key.is_none() {
            ctx.weird("websocket_missing_key_header", None, SOURCE);
        }
        if self.server_accept.is_none() {
            ctx.weird("websocket_missing_accept_header", None, SOURCE);
        }
        if let (Some(key), Some(found)) = (&self.client_key, &self.server_accept) {
            let expected = expected_accept(key);
            if *found != expected {
                ctx.weird("websocket_wrong_accept_header", Some(format!("expected={expected}, found={found}")), SOURCE);
            }
        }
        let mut values = ctx.conn_columns(ctx.ts);
        let list = |v: Option<Vec<String>>| v.map_or(Value::Unset, Value::str_vec);
        values.extend([
            Value::opt_str(self.host),
            Value::opt_str(self.uri),
            Value::opt_str(self.user_agent),
            Value::opt_str(self.subprotocol),
            list(self.client_protocols),
            list(self.server_extensions),
            list(self.client_extensions),
        ]);
        ctx.log(&WEBSOCKET, values);
    }
}

/// The `Sec-WebSocket-Accept` value a server owes the client's key.
fn expected_accept(key: &str) -> String {
    super::ssh::base64(&Sha1::digest(format!("{key}{HANDSHAKE_GUID}").as_bytes()))
}

/// The longest frame header: 2 bytes, an 8-byte extended length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Frame reading of one direction.
#[derive(Debug, Default)]
struct FrameReader {
    /// The frame header read so far (while `payload_left` is 0).
    header: [u8; MAX_HEADER],
    header_len: u8,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// The current frame ends a message (FIN).
    fin: bool,
}

impl FrameReader {
    /// Reads `data`; returns how many messages ended in it.
    fn read(&mut self, mut data: &[u8]) -> usize {
        let mut messages = 0;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let take = usize::try_from(self.payload_left).map_or(data.len(), |left| left.min(data.len()));
                data = &data[take..];
                self.payload_left -= take as u64;
                if self.payload_left == 0 && self.fin {
                    messages += 1;
                }
                continue;
            }
            let have = usize::from(self.header_len);
            let take = (MAX_HEADER - have).min(data.len());
            self.header[have..have + take].copy_from_slice(&data[..take]);
            let buffered = have + take;
            let Some((header_size, payload_len)) = parse_header(&self.header[..buffered]) else {
                self.header_len = buffered as u8;
                return messages;
            };
            // Bytes of `data` past the header went into the buffer too: give them back.
            data = &data[header_size - have..];
            self.header_len = 0;
            self.fin = self.header[0] & 0x80 != 0;
            self.payload_left = payload_len;
            if payload_len == 0 && self.fin {
                messages += 1;
            }
        }
        messages
    }
}

/// A frame header at the start of `b`: its size and the payload length, or `None` while incomplete.
fn parse_header(b: &[u8]) -> Option<(usize, u64)> {
    let second = *b.get(1)?;
    let masked = second & 0x80 != 0;
    let (len_size, payload_len) = match second & 0x7f {
        126 => (2, u64::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?))),
        127 => (8, u64::from_be_bytes(b.get(2..10)?.try_into().ok()?)),
        n => (0, u64::from(n)),
    };
    let size = 2 + len_size + if masked { 4 } else { 0 };
    (b.len() >= size).then_some((size, payload_len))
}

/// The WebSocket analyzer on the upgraded stream.
#[derive(Debug, Default)]
pub struct WebSocket {
    frames: [FrameReader; 2],
    confirmed: bool,
    /// After a content gap the framing is lost: nothing more is read (Zeek's `had_gap`).
    had_gap: bool,
}

impl Analyzer for WebSocket {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.had_gap || self.confirmed {
            return;
        }
        if self.frames[usize::from(!is_orig)].read(data) > 0 {
            self.confirmed = true;
            ctx.confirm("websocket");
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        self.had_gap = true;
    }

    fn is_done(&self) -> bool {
        // Confirmed, nothing else it logs: the frames that follow need no reading.
        self.confirmed || self.had_gap
    }
}

/// Drives the analyzer over arbitrary bytes (see [`super::fuzzing::drive`]); it must never panic.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut WebSocket::default(), super::Proto::Tcp, 80, data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::testing::Harness;
    use crate::analyzers::{Action, Proto};

    /// RFC 6455 section 1.3's example handshake.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn the_accept_value_is_rfc_6455s() {
        assert_eq!(expected_accept(KEY), ACCEPT);
    }

    #[test]
    fn a_message_split_anywhere_confirms_once_it_ends() {
        // A masked text frame "Hello" without FIN, then its continuation with FIN (RFC 6455 section 5.7).
        let first = [0x01, 0x83, 1, 2, 3, 4, b'H' ^ 1, b'e' ^ 2, b'l' ^ 3];
        let last = [0x80, 0x02, b'l', b'o'];
        let stream = [&first[..], &last[..]].concat();
        for cut in 0..=stream.len() {
            let mut h = Harness::new(Proto::Tcp, 80);
            let mut ws = WebSocket::default();
            h.deliver(&mut ws, true, &stream[..cut]);
            let confirmed_early = h.actions.contains(&Action::Confirm("websocket"));
            assert!(!confirmed_early || cut == stream.len(), "confirmed after {cut} bytes");
            h.deliver(&mut ws, true, &stream[cut..]);
            assert_eq!(h.actions, [Action::Confirm("websocket")], "cut at {cut}");
        }
        // A 64-bit length frame is not over before its payload is.
        let mut reader = FrameReader::default();
        assert_eq!(reader.read(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]), 0);
        assert_eq!(reader.read(&vec![0; 65_535]), 0);
        assert_eq!(reader.read(&[0]), 1);
    }

    #[test]
    fn the_log_record_follows_the_handshake() {
        let mut h = Harness::new(Proto::Tcp, 80);
        let mut hs = Handshake::default();
        h.run(1.0, |ctx| {
            hs.header(ctx, true, b"Sec-WebSocket-Key", KEY.as_bytes());
            hs.header(ctx, true, b"Sec-WebSocket-Protocol", b"chat, superchat");
            hs.header(ctx, true, b"Sec-WebSocket-Extensions", b"permessage-deflate");
            hs.header(ctx, false, b"Sec-WebSocket-Accept", ACCEPT.as_bytes());
            hs.header(ctx, false, b"Sec-WebSocket-Protocol", b"chat");
        });
        hs.set_request(Some("server.example.com".into()), Some("/chat".into()), None);
        h.run(2.0, |ctx| hs.established(ctx));
        assert!(h.weirds.is_empty(), "{:?}", h.weirds);
        let recs = h.logged("websocket");
        assert_eq!(recs.len(), 1);
        let r = recs[0];
        assert_eq!(r.get("ts"), Some(&Value::Time(2.0)));
        assert_eq!(r.get("host"), Some(&Value::str("server.example.com")));
        assert_eq!(r.get("uri"), Some(&Value::str("/chat")));
        assert_eq!(r.get("user_agent"), Some(&Value::Unset));
        assert_eq!(r.get("subprotocol"), Some(&Value::str("chat")));
        assert_eq!(r.get("client_protocols"), Some(&Value::str_vec(["chat", "superchat"])));
        assert_eq!(r.get("client_extensions"), Some(&Value::str_vec(["permessage-deflate"])));
        assert_eq!(r.get("server_extensions"), Some(&Value::Unset));

        let mut h = Harness::new(Proto::Tcp, 80);
        let mut hs = Handshake::default();
        h.run(1.0, |ctx| {
            hs.header(ctx, true, b"Sec-WebSocket-Key", KEY.as_bytes());
            hs.header(ctx, false, b"Sec-WebSocket-Accept", b"wrong");
        });
        h.run(2.0, |ctx| hs.established(ctx));
        let names: Vec<_> = h.weirds.iter().map(|w| (w.name.as_str(), w.addl.as_deref())).collect();
        assert_eq!(names, [("websocket_wrong_accept_header", Some(&*format!("expected={ACCEPT}, found=wrong")))]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            fuzz(&data);
            let mut reader = FrameReader::default();
            for chunk in data.chunks(7) {
                reader.read(chunk);
            }
        }
    }
}
