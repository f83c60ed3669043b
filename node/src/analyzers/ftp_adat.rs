//! FTP's ADAT support analyzer (Zeek's `FTP_ADAT_Analyzer`, src/analyzer/protocol/ftp/FTP.cc): once `AUTH GSSAPI`
//! is answered 334, the FTP analyzer hands its lines to a TLS analyzer through this one, which decodes the base64
//! tokens of `ADAT` commands and of `ADAT=` replies and passes them on (GridFTP's GSI runs a TLS handshake inside
//! them), until a command or reply ends the exchange.

use super::ssl::SslAnalyzer;
use super::{Action, Analyzer, Ctx};

/// The weirds' source, as Zeek's support analyzer names itself.
const SOURCE: &str = "FTP_ADAT";

pub struct Adat {
    ssl: Box<SslAnalyzer>,
    first_token: bool,
    /// The exchange ended (Zeek removes the TLS analyzer): nothing more is passed on.
    done: bool,
}

impl Default for Adat {
    fn default() -> Self {
        Adat { ssl: Box::new(SslAnalyzer::embedded()), first_token: true, done: false }
    }
}

impl Adat {
    /// One line the FTP analyzer passed on (`ForwardStream`), as it came.
    pub fn line(&mut self, ctx: &mut Ctx, is_orig: bool, line: &[u8]) {
        if self.done {
            return;
        }
        let (decoded, done) = if is_orig { self.command(ctx, line) } else { (reply(ctx, line), reply_ends(line)) };
        if let Some(token) = decoded {
            let mut actions = Vec::new();
            self.ssl.deliver(&mut ctx.with_actions(&mut actions), is_orig, &token);
            self.apply_tls_actions(ctx, actions);
        }
        self.done |= done;
    }

    /// The connection ended: the TLS analyzer's own end (`finalize_ssl` logs a session never established).
    pub fn finish(&mut self, ctx: &mut Ctx) {
        let mut actions = Vec::new();
        self.ssl.finish(&mut ctx.with_actions(&mut actions));
        self.apply_tls_actions(ctx, actions);
    }

    /// A client line: an `ADAT` command's token (the first one must look like a TLS handshake record, or the
    /// exchange ends), or an `AUTH` that ends the exchange. Zeek compares the command word with `strncmp` over the
    /// word's length, so a prefix of `ADAT` (or an empty word) counts as `ADAT`.
    fn command(&mut self, ctx: &mut Ctx, line: &[u8]) -> (Option<Vec<u8>>, bool) {
        let line = line.trim_ascii_start();
        let word_len = line.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(line.len());
        let (word, rest) = line.split_at(word_len);
        let is = |command: &[u8]| word.len() <= command.len() && command.starts_with(word);
        if !is(b"ADAT") {
            return (None, is(b"AUTH"));
        }
        let decoded = decode_base64(ctx, rest.trim_ascii_start());
        if !std::mem::replace(&mut self.first_token, false) {
            return (decoded, false);
        }
        if decoded.is_none() {
            ctx.weird("ftp_adat_bad_first_token_encoding", None, SOURCE);
        }
        let token = decoded.unwrap_or_default();
        let record_len = token.get(3..5).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
        let looks_like_tls = token.first() == Some(&0x16) && record_len == Some(token.len().saturating_sub(5));
        if token.len() < 5 || !looks_like_tls { (None, true) } else { (Some(token), false) }
    }

    /// What the embedded TLS analyzer asked for: its confirmation is the connection's (`ssl`); its violation removes
    /// it as Zeek removes a failed child analyzer (service and analyzer.log), which ends the exchange.
    fn apply_tls_actions(&mut self, ctx: &mut Ctx, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Confirm(service) => ctx.confirm(service),
                Action::Violation(reason, _) => {
                    self.done = true;
                    ctx.embedded_violation("ssl", reason);
                }
                _ => {}
            }
        }
    }
}

/// The reply code of a line (its first three digits), 0 without one, as FTP.cc's `get_reply_code`.
fn reply_code(line: &[u8]) -> u16 {
    match line {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => 0,
    }
}

/// A server line's token: after a 334, 335 or 235 reply code (and a `-`), an `ADAT=` and its base64.
fn reply(ctx: &mut Ctx, line: &[u8]) -> Option<Vec<u8>> {
    if !matches!(reply_code(line), 235 | 334 | 335) {
        return None;
    }
    let rest = line.get(3..).unwrap_or_default();
    let rest = rest.strip_prefix(b"-").unwrap_or(rest).trim_ascii_start();
    decode_base64(ctx, rest.strip_prefix(b"ADAT=")?)
}

/// Whether a server line ends the exchange: success (232, 234, 235) or one of the failures FTP.cc lists.
fn reply_ends(line: &[u8]) -> bool {
    matches!(reply_code(line), 232 | 234 | 235 | 421 | 431 | 500 | 501 | 503 | 535 | 631 | 632 | 633)
}

/// Zeek's `decode_base64(s, nullptr, conn)` (Base64.cc's `Base64Converter`): the decoded bytes, or none when the
/// text had a character outside the alphabet or groups after `=` padding (the first such problem is the weird
/// `base64_illegal_encoding`); an incomplete last group is the weird too and is padded with zero bits. That an error
/// makes the result empty is read from the `bad-adat-encoding` baseline (both weirds for one token).
fn decode_base64(ctx: &mut Ctx, text: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = Base64::default();
    for &c in text {
        decoder.push(c);
    }
    if let Some(problem) = decoder.problem.take() {
        ctx.weird("base64_illegal_encoding", Some(problem), "");
        return None;
    }
    if decoder.group_len != 0 {
        let missing = 4 - decoder.group_len;
        ctx.weird(
            "base64_illegal_encoding",
            Some(format!("incomplete base64 group, padding with {} bits of 0", missing * 6)),
            "",
        );
        for _ in 0..missing {
            decoder.push(b'=');
        }
    }
    Some(decoder.out)
}

/// Base64.cc's decoding state.
#[derive(Default)]
struct Base64 {
    group: [u8; 4],
    group_len: usize,
    /// `=` seen since the last group was written (they count as zero sextets and shorten the group's output).
    padding: usize,
    after_padding: bool,
    /// The first problem (Zeek reports only the first one).
    problem: Option<String>,
    out: Vec<u8>,
}

impl Base64 {
    fn push(&mut self, c: u8) {
        if c == b'=' {
            self.padding += 1;
        }
        let sextet = match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            b'=' => Some(0),
            _ => None,
        };
        match sextet {
            Some(k) => {
                self.group[self.group_len] = k;
                self.group_len += 1;
            }
            // Printed as a C `char`: bytes from 0x80 are negative.
            None => self.problem(format!("character {} ignored by Base64 decoding", c as i8)),
        }
        if self.group_len == 4 {
            self.write_group();
        }
    }

    fn write_group(&mut self) {
        self.group_len = 0;
        if self.after_padding {
            self.problem("extra base64 groups after '=' padding are ignored".to_string());
            return;
        }
        let bits = self.group.iter().fold(0u32, |acc, &k| (acc << 6) | u32::from(k & 0x3f));
        let octets = 3usize.saturating_sub(self.padding);
        self.out.extend_from_slice(&bits.to_be_bytes()[1..1 + octets]);
        self.after_padding = self.padding > 0;
        self.padding = 0;
    }

    fn problem(&mut self, message: String) {
        self.problem.get_or_insert(message);
    }
}

/// Fuzzing entry point: the bytes as base64 text, then as the deliveries of an FTP connection (see
/// [`super::fuzzing::drive`]) after `AUTH GSSAPI` was answered 334, so that its ADAT exchange is under way.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::with_ctx(|ctx| {
        let _ = decode_base64(ctx, data);
    });
    let mut input = Vec::with_capacity(data.len() + 40);
    for (direction, line) in [(0u8, &b"AUTH GSSAPI\r\n"[..]), (1, b"334 ADAT must follow\r\n")] {
        input.extend([direction, u8::try_from(line.len()).unwrap_or(u8::MAX)]);
        input.extend_from_slice(line);
    }
    input.extend_from_slice(data);
    super::fuzzing::drive(&mut super::ftp::FtpAnalyzer::new(), super::Proto::Tcp, 2811, &input);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Proto;
    use crate::analyzers::ftp::FtpAnalyzer;
    use crate::analyzers::ssh::base64;
    use crate::analyzers::ssl::tests::build::{TLS10, client_hello, handshakes, server_hello};
    use crate::analyzers::testing::{Harness, engine_records, field};
    use crate::decode::test_frames::tcp_conversation;

    /// A weird's name, addl and source.
    type WeirdRow = (String, Option<String>, &'static str);

    /// The decoded bytes and the weirds.
    fn decode(text: &[u8]) -> (Option<Vec<u8>>, Vec<WeirdRow>) {
        let mut h = Harness::new(Proto::Tcp, 21);
        let mut decoded = None;
        h.run(1.0, |ctx| decoded = decode_base64(ctx, text));
        (decoded, h.weirds.iter().map(|w| (w.name.clone(), w.addl.clone(), w.source)).collect())
    }

    fn illegal(addl: &str) -> Vec<WeirdRow> {
        vec![("base64_illegal_encoding".to_string(), Some(addl.to_string()), "")]
    }

    /// Base64.cc's converter: whole groups, `=` padding shortening a group, an incomplete last group padded with
    /// zero bits (and reported), and the errors that leave nothing (the first one reported).
    #[test]
    fn base64_decodes_as_zeeks_converter() {
        assert_eq!(decode(b"dGVzdA=="), (Some(b"test".to_vec()), vec![]));
        assert_eq!(decode(b""), (Some(vec![]), vec![]));
        assert_eq!(
            decode(b"dGVzdA"),
            (Some(b"test".to_vec()), illegal("incomplete base64 group, padding with 12 bits of 0"))
        );
        assert_eq!(decode(b"dGVz dA=="), (None, illegal("character 32 ignored by Base64 decoding")));
        assert_eq!(decode(b"dGVz\xffdA*="), (None, illegal("character -1 ignored by Base64 decoding")));
        assert_eq!(decode(b"dA==dGVz"), (None, illegal("extra base64 groups after '=' padding are ignored")));
    }

    /// The lines of an FTP control connection, fed to the FTP analyzer one delivery each.
    fn run_ftp(lines: &[(bool, &[u8])]) -> Harness {
        let mut h = Harness::new(Proto::Tcp, 2811);
        let mut ftp = FtpAnalyzer::new();
        for (is_orig, line) in lines {
            h.deliver(&mut ftp, *is_orig, line);
        }
        h.finish(&mut ftp);
        h
    }

    fn weird_rows(h: &Harness) -> Vec<WeirdRow> {
        h.weirds.iter().map(|w| (w.name.clone(), w.addl.clone(), w.source)).collect()
    }

    /// Zeek's `bad-adat-encoding` baseline: a first ADAT token with a space inside is `base64_illegal_encoding`
    /// (no source) and `ftp_adat_bad_first_token_encoding` (source FTP_ADAT), and the exchange ends.
    #[test]
    fn a_first_token_that_is_not_base64_ends_the_exchange() {
        let hello = base64(&handshakes(TLS10, &[client_hello(b"", &[0x35], &[])]));
        let (head, tail) = hello.split_at(8);
        let bad = format!("ADAT {head} {tail}\r\n");
        let later = format!("ADAT {hello}\r\n");
        let h = run_ftp(&[
            (false, b"220 ready\r\n"),
            (true, b"AUTH GSSAPI\r\n"),
            (false, b"334 Using authentication type GSSAPI; ADAT must follow\r\n"),
            (true, bad.as_bytes()),
            (true, later.as_bytes()),
        ]);
        let mut expected = illegal("character 32 ignored by Base64 decoding");
        expected.push(("ftp_adat_bad_first_token_encoding".to_string(), None, "FTP_ADAT"));
        assert_eq!(weird_rows(&h), expected);
        // The exchange is over: the next token reaches no TLS analyzer.
        assert!(h.logged("ssl").is_empty());
        assert!(!h.actions.contains(&Action::Confirm("ssl")));
    }

    /// A first token that is not a whole TLS handshake record ends the exchange without a weird; an ADAT before
    /// `AUTH GSSAPI` was answered 334 goes nowhere.
    #[test]
    fn only_a_tls_record_starts_the_exchange() {
        let record = handshakes(TLS10, &[client_hello(b"", &[0x35], &[])]);
        let mut longer = record.clone();
        longer.push(0);
        for (first, logged) in [(base64(&record), 1), (base64(&longer), 0), (base64(&record[..4]), 0)] {
            let adat = format!("ADAT {first}\r\n");
            let h =
                run_ftp(&[(true, b"AUTH GSSAPI\r\n"), (false, b"334 ADAT must follow\r\n"), (true, adat.as_bytes())]);
            assert!(h.weirds.is_empty(), "{:?}", h.weirds);
            assert_eq!(h.logged("ssl").len(), logged, "{first}");
        }
        let adat = format!("ADAT {}\r\n", base64(&record));
        let h = run_ftp(&[(true, b"AUTH TLSX\r\n"), (false, b"334 ok\r\n"), (true, adat.as_bytes())]);
        assert!(h.logged("ssl").is_empty());
    }

    /// GridFTP through the engine (Zeek's `gridftp` baseline's control connection, port 2811): the TLS handshake
    /// inside the ADAT tokens of both sides is the connection's `ssl` (ssl.log's version and cipher from the hellos),
    /// next to `ftp`.
    #[test]
    fn the_tls_handshake_inside_adat_is_logged() {
        let client = base64(&handshakes(TLS10, &[client_hello(b"", &[0x35, 0x02], &[])]));
        let server = base64(&handshakes(TLS10, &[server_hello(TLS10, &[7; 32], b"", 0x35, &[])]));
        let adat = format!("ADAT {client}\r\n");
        let reply = format!("335 ADAT={server}\r\n");
        let messages: Vec<(bool, &[u8])> = vec![
            (false, b"220 GridFTP Server ready\r\n"),
            (true, b"AUTH GSSAPI\r\n"),
            (false, b"334 Using authentication type GSSAPI; ADAT must follow\r\n"),
            (true, adat.as_bytes()),
            (false, reply.as_bytes()),
            (true, b"QUIT\r\n"),
            (false, b"221 bye\r\n"),
        ];
        let records =
            engine_records(&tcp_conversation(([192, 168, 57, 103], 60108), ([192, 168, 57, 101], 2811), &messages));
        let of = |path: &str| records.iter().filter(|r| r.schema.path == path).collect::<Vec<_>>();
        let ssl = of("ssl");
        assert_eq!(ssl.len(), 1);
        assert_eq!(field(ssl[0], "version"), "TLSv10");
        assert_eq!(field(ssl[0], "cipher"), "TLS_RSA_WITH_AES_256_CBC_SHA");
        assert_eq!(field(ssl[0], "id.resp_p"), "2811");
        let conn = of("conn");
        let services = field(conn[0], "service");
        assert!(services.split(',').any(|s| s == "ssl") && services.split(',').any(|s| s == "ftp"), "{services}");
        assert!(of("weird").is_empty());
    }
}
