//! PostgreSQL (tcp 5432, base/protocols/postgresql/main.zeek): Zeek's Spicy analyzer confirms
//! (src/analyzer/protocol/postgresql/postgresql_zeek.spicy) when the client's `StartupMessage` is done, or when the
//! server answered an `SSLRequest` with its `ssl_byte` (`S` or `N`; `S` hands both directions to the SSL analyzer).
//!
//! postgresql.spicy, `FrontendMessages`: the first four bytes are a big-endian length of at least 8; a length of 8
//! followed by 80877103 is the `SSLRequest`; anything else must carry major version 3 and is parsed as the
//! `StartupMessage`: length at least 9, `length - 9` bytes of `name NUL value NUL` parameters (name
//! `[-_/A-Za-z0-9]+`, value `[\x20-\x7e]+`), then a NUL. `BackendMessages` holds the server's bytes until the
//! client's first eight are known; after an `SSLRequest` its first byte must be `S` or `N`. Anything else is a
//! violation. Server messages after a `StartupMessage` are not checked: in the usual order the client's message has
//! confirmed (or failed) before they arrive.
//!
//! Not reproduced: Zeek's DPD signatures (base/protocols/postgresql/dpd.sig) pair a client pattern with a server
//! pattern (`SSLRequest` with `[SN]`, a startup message with a printable type byte and a short length), which
//! [`super::Signature`] cannot express, so the analyzer attaches on the port only. A parameter area whose next
//! byte cannot start a name ends Spicy's list by look-ahead and leaves bytes of the `&size` unconsumed; whether that
//! fails is Spicy's, not the grammar's, and the check leaves such a message undecided.

use super::{AnalyzerSpec, HEAD_LIMIT, gather};
use crate::analyzers::{Analyzer, Ctx};

pub static POSTGRESQL: AnalyzerSpec = AnalyzerSpec {
    name: "postgresql",
    tcp_ports: &[5432],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(PostgreSql::default()),
    schemas: &[],
};

const SSL_REQUEST_CODE: u32 = 80_877_103;
/// postgresql.spicy's `MAX_BUFFERED`: server chunks held before the client's first eight bytes; one more throws.
const MAX_BUFFERED: usize = 4;

#[derive(Default)]
struct PostgreSql {
    client: Vec<u8>,
    /// Server deliveries seen while the client's first eight bytes were not known yet.
    server_chunks_buffered: usize,
    /// The server's first byte: Spicy replays held chunks first, so this is the `ssl_byte` after an `SSLRequest`.
    server_first_byte: Option<u8>,
    /// Whether the client opened with an `SSLRequest`, once its first eight bytes are known.
    ssl_requested: Option<bool>,
    done: bool,
}

/// What the client's first bytes say.
#[derive(Debug, PartialEq)]
enum Opening {
    Undecided,
    SslRequest,
    /// A `StartupMessage` parsed.
    Startup,
    /// The message is left undecided for good (see the module comment).
    Never,
    Violation,
}

impl Analyzer for PostgreSql {
    fn spec(&self) -> &'static AnalyzerSpec {
        &POSTGRESQL
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.done || data.is_empty() {
            return;
        }
        if !is_orig {
            self.server_delivery(ctx, data);
            return;
        }
        if self.ssl_requested == Some(true) {
            // The client waits for the server's answer; what it sends after is the server's to judge.
            return;
        }
        gather(&mut self.client, data);
        match opening(&self.client) {
            Opening::Undecided if self.client.len() >= HEAD_LIMIT => self.done = true,
            Opening::Undecided => {
                if self.client.len() >= 8 {
                    self.ssl_requested = Some(false);
                }
            }
            Opening::SslRequest => {
                self.ssl_requested = Some(true);
                self.client = Vec::new();
            }
            Opening::Startup => self.finish(ctx, Outcome::Confirm { tls: false }),
            Opening::Never => self.done = true,
            Opening::Violation => self.finish(ctx, Outcome::Violation),
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

impl PostgreSql {
    fn server_delivery(&mut self, ctx: &mut Ctx, data: &[u8]) {
        let first_byte = *self.server_first_byte.get_or_insert(data[0]);
        match self.ssl_requested {
            None => {
                self.server_chunks_buffered += 1;
                if self.server_chunks_buffered > MAX_BUFFERED {
                    self.finish(ctx, Outcome::Violation);
                }
            }
            // `MaybeBackendSSL::ssl_byte`.
            Some(true) => match first_byte {
                b'S' => self.finish(ctx, Outcome::Confirm { tls: true }),
                b'N' => self.finish(ctx, Outcome::Confirm { tls: false }),
                _ => self.finish(ctx, Outcome::Violation),
            },
            Some(false) => {}
        }
    }

    /// Ends the check with a verdict.
    fn finish(&mut self, ctx: &mut Ctx, outcome: Outcome) {
        self.done = true;
        match outcome {
            Outcome::Confirm { tls } => {
                ctx.confirm("postgresql");
                if tls {
                    ctx.start_tls();
                }
            }
            Outcome::Violation => ctx.violation("not postgresql"),
        }
    }
}

enum Outcome {
    /// Confirmed; `tls`: the server accepted the `SSLRequest` and the rest of the stream is TLS.
    Confirm {
        tls: bool,
    },
    Violation,
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    bytes.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn opening(head: &[u8]) -> Opening {
    let Some(length) = be_u32(head) else { return Opening::Undecided };
    if length < 8 {
        return Opening::Violation;
    }
    let Some(version_or_magic) = be_u32(&head[4..]) else { return Opening::Undecided };
    if length == 8 && version_or_magic == SSL_REQUEST_CODE {
        return Opening::SslRequest;
    }
    if version_or_magic >> 16 != 3 || length < 9 {
        return Opening::Violation;
    }
    let Some(message) = usize::try_from(length).ok().and_then(|l| head.get(..l)) else { return Opening::Undecided };
    let (parameters, terminator) = message[8..].split_at(message.len() - 9);
    match startup_parameters(parameters) {
        Some(true) if terminator == [0] => Opening::Startup,
        Some(true) => Opening::Violation,
        Some(false) => Opening::Never,
        None => Opening::Violation,
    }
}

/// `StartupParameter[]` over exactly `area`: `Some(true)` when it fills the area, `Some(false)` when look-ahead ends
/// the list early, `None` on a parse error.
fn startup_parameters(mut area: &[u8]) -> Option<bool> {
    let is_name = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/');
    let is_value = |b: &u8| (0x20..=0x7e).contains(b);
    while let Some(first) = area.first() {
        if !is_name(first) {
            return Some(false);
        }
        let name_len = area.iter().take_while(|b| is_name(b)).count();
        area = area[name_len..].strip_prefix(&[0])?;
        let value_len = area.iter().take_while(|b| is_value(b)).count();
        if value_len == 0 {
            return None;
        }
        area = area[value_len..].strip_prefix(&[0])?;
    }
    Some(true)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::analyzers::testing::Harness;
    use crate::analyzers::{Action, Proto};

    /// A protocol 3.0 StartupMessage as psql sends it (PostgreSQL docs, "Message Formats": Int32 length, Int32
    /// 196608, name/value pairs, a final NUL).
    pub(crate) fn startup(parameters: &[u8]) -> Vec<u8> {
        let length = (4 + 4 + parameters.len() + 1) as u32;
        [&length.to_be_bytes()[..], &196_608u32.to_be_bytes(), parameters, b"\0"].concat()
    }

    pub(crate) const PSQL: &[u8] = b"user\0postgres\0database\0app\0application_name\0psql\0client_encoding\0UTF8\0";
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

    fn run(deliveries: &[(bool, &[u8])]) -> Vec<Action> {
        let mut h = Harness::new(Proto::Tcp, 5432);
        let mut pg = (POSTGRESQL.new)(Proto::Tcp);
        for (is_orig, data) in deliveries {
            h.deliver(pg.as_mut(), *is_orig, data);
        }
        h.actions
    }

    fn violation(actions: Vec<Action>) -> bool {
        matches!(actions[..], [Action::Violation(_)])
    }

    #[test]
    fn postgresql_confirms_on_the_startup_message_or_the_ssl_answer() {
        let message = startup(PSQL);
        assert_eq!(run(&[(true, &message)]), [Action::Confirm("postgresql")]);
        let (a, b) = message.split_at(20);
        assert_eq!(run(&[(true, a)]), []);
        assert_eq!(run(&[(true, a), (true, b)]), [Action::Confirm("postgresql")]);
        assert_eq!(run(&[(true, &startup(b""))]), [Action::Confirm("postgresql")], "no parameters");
        assert_eq!(run(&[(true, &SSL_REQUEST)]), []);
        assert_eq!(run(&[(true, &SSL_REQUEST), (false, b"S")]), [Action::Confirm("postgresql"), Action::StartTls]);
        assert_eq!(run(&[(true, &SSL_REQUEST), (false, b"N")]), [Action::Confirm("postgresql")]);
    }

    #[test]
    fn postgresql_rejects_what_the_spicy_grammar_rejects() {
        assert!(violation(run(&[(true, &SSL_REQUEST), (false, b"E\0\0\0\x08")])));
        // GSSENCRequest (80877104) and CancelRequest (80877102) do not carry major version 3.
        assert!(violation(run(&[(true, &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30])])));
        assert!(violation(run(&[(true, b"\0\0\0\x03")])), "length below 8");
        assert!(violation(run(&[(true, b"GET / HTTP/1.1\r\n")])));
        // An empty value, a name running into the terminator, a missing final NUL.
        assert!(violation(run(&[(true, &startup(b"user\0\0"))])));
        assert!(violation(run(&[(true, &startup(b"user"))])));
        let mut unterminated = startup(PSQL);
        *unterminated.last_mut().unwrap() = b'x';
        assert!(violation(run(&[(true, &unterminated)])));
        // `_pq_.` protocol options: the name stops at the dot, which is no NUL.
        assert!(violation(run(&[(true, &startup(b"_pq_.opt\0on\0"))])));
        // A parameter starting with a byte no name can start with is left undecided.
        assert_eq!(run(&[(true, &startup(b".x\0y\0"))]), []);
        // Five server chunks before the client's first eight bytes: Spicy throws.
        let early: Vec<(bool, &[u8])> = vec![(false, b"E"); 5];
        assert!(violation(run(&early)));
        assert_eq!(run(&early[..4]), []);
        // Held server bytes are replayed first: an `S` sent before the request still answers it.
        assert_eq!(
            run(&[(false, b"S"), (true, &SSL_REQUEST), (false, b"\x16\x03")]),
            [Action::Confirm("postgresql"), Action::StartTls]
        );
    }
}
