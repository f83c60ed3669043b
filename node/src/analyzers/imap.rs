//! IMAP (tcp 143) as Zeek's binpac analyzer reads it (src/analyzer/protocol/imap: `imap.pac`,
//! `imap-protocol.pac`, `imap-analyzer.pac`, `IMAP.cc`) and `base/protocols/imap/main.zeek` registers it.
//!
//! Zeek writes no imap.log: what IMAP leaves in the logs is the service (confirmed by the server's `* OK`, a
//! client's `CAPABILITY` or `STARTTLS`, or one of the commands after which Zeek stops looking), its violations
//! (analyzer.log once confirmed), two weirds, and the hand-over to TLS after the server's tagged `OK` to the
//! client's `STARTTLS` (`imap,ssl`).
//!
//! The grammar is a binpac *datagram* flow: every delivery of the TCP stream is parsed on its own as a run of
//! tokens (`tag SP command [SP] rest CRLF`; the server's `* CAPABILITY` as a list of capabilities), so a token
//! cut by a delivery boundary is binpac's string mismatch, a violation, just as in Zeek. Zeek has no content
//! signature for IMAP (no `dpd.sig` under base/protocols/imap): it is found on its port only.

use super::{Analyzer, AnalyzerSpec, Ctx};
use crate::logs::push_log_bytes;

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "imap",
    tcp_ports: &[143],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(Imap::default()),
    schemas: &[],
};

/// The weirds' source: binpac's `zeek_analyzer()->Weird` names the analyzer.
const WEIRD_SOURCE: &str = "IMAP";

/// The grammar file as binpac names it in a string mismatch. Zeek's message carries the path binpac was given at
/// build time (an absolute path into the build's source tree, e.g. `/bro/src/analyzer/...` in an old build), which
/// no trace tells; this is that path below the source tree's root.
const PAC_FILE: &str = "src/analyzer/protocol/imap/imap-protocol.pac";

/// binpac formats its exception messages into a 1024-byte buffer (`do_fmt`): at most 1023 bytes survive.
const BINPAC_FMT_MAX: usize = 1023;

/// The commands after which `proc_imap_token` confirms and stops analysing (`SetSkip`): the handshake is past the
/// point where STARTTLS could come. Compared as sent (binpac's `bytestring == "..."`), so only in lower case.
const SKIP_COMMANDS: [&[u8]; 6] = [b"authenticate", b"login", b"examine", b"create", b"list", b"fetch"];

/// The `RE/.../` fields of imap-protocol.pac that can fail to match (the others match the empty string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `ImapToken.tag: TAG`.
    Tag,
    /// `ImapToken: SPACING`.
    Spacing,
    /// `ImapToken.command: TAG`.
    Command,
    /// `Capability.cap: TAG`.
    Capability,
    /// `UnknownCommand: NEWLINE`.
    Newline,
}

impl Field {
    /// The field's line in the newest imap-protocol.pac: binpac clones a named `RE` type where a field uses it, so
    /// the mismatch names the field's line.
    fn line(self) -> u32 {
        match self {
            Field::Tag => 18,
            Field::Spacing => 19,
            Field::Command => 20,
            Field::Capability => 36,
            Field::Newline => 47,
        }
    }

    /// The pattern as binpac prints it. binpac writes the pattern into the generated C++ as a string literal, so
    /// NEWLINE's `\r\n` reaches the message as a real CR and LF.
    fn pattern(self) -> &'static [u8] {
        match self {
            Field::Tag | Field::Command | Field::Capability => b"[[:alnum:][:punct:]]+",
            Field::Spacing => b"[ ]+",
            Field::Newline => b"[\r\n]+",
        }
    }
}

/// binpac's `ExceptionStringMismatch`: `field` did not match at offset `at` of the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    pub field: Field,
    pub at: usize,
}

impl Mismatch {
    /// The violation's reason, as `IMAP.cc` reports the exception (`Binpac exception: ` and binpac's message): the
    /// location, the pattern, and the rest of the delivery as a C string (up to a NUL).
    pub fn reason(&self, delivery: &[u8]) -> String {
        let rest = delivery.get(self.at..).unwrap_or_default();
        let actual = rest.split(|&b| b == 0).next().unwrap_or_default();
        let mut message = Vec::with_capacity(96 + actual.len());
        message.extend_from_slice(
            format!("string mismatch at {PAC_FILE}:{}: \nexpected pattern: \"", self.field.line()).as_bytes(),
        );
        message.extend_from_slice(self.field.pattern());
        message.extend_from_slice(b"\"\nactual data: \"");
        message.extend_from_slice(actual);
        message.push(b'"');
        message.truncate(BINPAC_FMT_MAX);
        let mut reason = String::from("Binpac exception: binpac exception: ");
        push_log_bytes(&mut reason, &message);
        reason
    }
}

/// One `ImapToken` of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub tag: &'a [u8],
    pub command: &'a [u8],
    /// The server's `* CAPABILITY` list (`imap_capabilities`); `None` for every other token.
    pub capabilities: Option<Vec<&'a [u8]>>,
}

/// `TAG`: `[[:alnum:][:punct:]]+` in the C locale, the printable ASCII bytes but space.
fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_graphic()
}

fn is_newline_byte(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

/// A regex field read as binpac reads it: the longest run of bytes `matches` at `at` (Zeek's `MatchPrefix`).
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The bytes of a `[...]*` field (possibly none).
    fn many(&mut self, matches: fn(u8) -> bool) -> &'a [u8] {
        let rest = self.data.get(self.at..).unwrap_or_default();
        let len = rest.iter().position(|&b| !matches(b)).unwrap_or(rest.len());
        self.at += len;
        rest.get(..len).unwrap_or_default()
    }

    /// The bytes of a `[...]+` field: at least one, or the mismatch.
    fn some(&mut self, matches: fn(u8) -> bool, field: Field) -> Result<&'a [u8], Mismatch> {
        let at = self.at;
        let run = self.many(matches);
        if run.is_empty() { Err(Mismatch { field, at }) } else { Ok(run) }
    }

    fn at_end(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// Parses one delivery as `IMAP_PDU` (tokens until the input is used up), handing each token to `on_token` once it
/// is complete (the `&let` procedures run after a record's fields): the tokens before a mismatch have been handed
/// over when it is returned.
pub fn parse_delivery<'a>(is_orig: bool, data: &'a [u8], mut on_token: impl FnMut(Token<'a>)) -> Result<(), Mismatch> {
    let mut c = Cursor { data, at: 0 };
    while !c.at_end() {
        let tag = c.some(is_tag_byte, Field::Tag)?;
        c.some(|b| b == b' ', Field::Spacing)?;
        let command = c.some(is_tag_byte, Field::Command)?;
        c.many(|b| b == b' ');
        // `determine_command`: only the server's untagged CAPABILITY has its own grammar.
        let capabilities = if !is_orig && tag == b"*" && command.eq_ignore_ascii_case(b"capability") {
            let mut caps = Vec::new();
            loop {
                caps.push(c.some(is_tag_byte, Field::Capability)?);
                c.many(|b| b == b' ');
                if !c.many(is_newline_byte).is_empty() {
                    break;
                }
            }
            Some(caps)
        } else {
            c.many(|b| !is_newline_byte(b));
            c.some(is_newline_byte, Field::Newline)?;
            None
        };
        on_token(Token { tag, command, capabilities });
    }
    Ok(())
}

/// One IMAP connection: `IMAP_Analyzer` and `IMAP_Conn`'s state.
#[derive(Default)]
pub struct Imap {
    /// The tag of the client's STARTTLS (`client_starttls_id`; tags are never empty, so empty means none).
    client_starttls_id: Vec<u8>,
    confirmed: bool,
    /// `SetSkip(true)`: a command past the point of STARTTLS was seen.
    skipping: bool,
    /// `had_gap`: a content gap in either direction ends the analysis.
    had_gap: bool,
    /// A violation or the hand-over to TLS ended the analysis.
    stopped: bool,
}

impl Imap {
    fn confirm(&mut self, ctx: &mut Ctx) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm(SPEC.name);
        }
    }

    /// `proc_imap_token`; sets `start_tls` when the server accepted the client's STARTTLS.
    fn token(&mut self, ctx: &mut Ctx, is_orig: bool, tag: &[u8], command: &[u8], start_tls: &mut bool) {
        let starttls = command.eq_ignore_ascii_case(b"starttls");
        if !is_orig && tag == b"*" && command.eq_ignore_ascii_case(b"ok") {
            self.confirm(ctx);
        }
        // The first comparison is the command as sent (`command == "capability"`), the second lower-cased.
        if is_orig && (command == b"capability" || starttls) {
            self.confirm(ctx);
        }
        if SKIP_COMMANDS.contains(&command) {
            self.confirm(ctx);
            self.skipping = true;
            return;
        }
        if is_orig && starttls {
            if !self.client_starttls_id.is_empty() {
                ctx.weird("IMAP: client sent duplicate StartTLS", None, WEIRD_SOURCE);
            }
            self.client_starttls_id = tag.to_vec();
        }
        if !is_orig && !self.client_starttls_id.is_empty() && tag == self.client_starttls_id.as_slice() {
            if command.eq_ignore_ascii_case(b"ok") {
                *start_tls = true;
            } else {
                ctx.weird("IMAP: server refused StartTLS", None, WEIRD_SOURCE);
            }
        }
    }
}

impl Analyzer for Imap {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        // `IMAP_Analyzer::DeliverStream`: nothing on a connection joined mid-stream or after a gap.
        if self.stopped || self.skipping || self.had_gap || ctx.partial || data.is_empty() {
            return;
        }
        let mut start_tls = false;
        let parsed = parse_delivery(is_orig, data, |t| self.token(ctx, is_orig, t.tag, t.command, &mut start_tls));
        match parsed {
            // The tokens after the server's OK in the same delivery are still IMAP to binpac; one that fails is a
            // violation, and Zeek's removal of the failed analyzer takes the SSL analyzer it just added with it.
            Err(mismatch) => {
                self.stopped = true;
                ctx.violation(mismatch.reason(data));
            }
            Ok(()) if start_tls => {
                self.stopped = true;
                ctx.start_tls();
            }
            Ok(()) => {}
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        self.had_gap = true;
    }

    fn is_done(&self) -> bool {
        self.stopped || self.skipping || self.had_gap
    }
}

/// Drives the IMAP analyzer over arbitrary bytes (see [`super::fuzzing::drive`]).
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Imap::default(), super::Proto::Tcp, 143, data);
    let _ = parse_delivery(false, data, |_| {});
}

#[cfg(test)]
mod tests;
