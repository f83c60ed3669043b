//! POP3: the client's commands and the server's replies tracked as Zeek's POP3 analyzer does
//! (`src/analyzer/protocol/pop3/POP3.cc`), and the message of every RETR/TOP reply passed through the MIME
//! parser, whose entities become files (files.log `source` `POP3`).
//!
//! Zeek has no pop3.log: what POP3 leaves in the logs is the service (confirmed by a `+OK` to USER, CAPA or
//! STLS), the mail bodies as files, a few weirds, and the hand-over to TLS after STLS.

use std::collections::VecDeque;

use super::content_line::{ContentLine, LineEvent};
use super::files::FileTransfer;
use super::http::decode_base64;
use super::mime::{MimeEvent, MimeMessage, entity_file};
use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::bytes_to_log_string;

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "pop3",
    tcp_ports: &[110],
    udp_ports: &[],
    detect: Some(Signature::either_side(detect)),
    new: |_| Box::new(Pop3Analyzer::default()),
    schemas: &[&crate::logs::FILES],
};

/// The server's `+OK` greeting starts the analyzer on any port.
fn detect(proto: Proto, is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Tcp && !is_orig && data.starts_with(b"+OK") && data.len() > 4
}

/// Zeek's `POP3::max_pending_commands`: commands a client may pipeline before the oldest is dropped.
const MAX_PENDING_COMMANDS: usize = 10;
/// Zeek's `POP3::max_unknown_client_commands`: unknown commands tolerated before a protocol violation.
const MAX_UNKNOWN_CLIENT_COMMANDS: u64 = 10;

/// The words Zeek's POP3 analyzer knows (POP3_cmd.def, in its order: [`parse_command`] depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Ok,
    Err,
    User,
    Pass,
    Apop,
    Auth,
    Stat,
    List,
    Retr,
    Dele,
    Rset,
    Noop,
    Last,
    Quit,
    Top,
    Capa,
    Uidl,
    Stls,
    Xsender,
}

const COMMANDS: [(Command, &str); 19] = [
    (Command::Ok, "OK"),
    (Command::Err, "ERR"),
    (Command::User, "USER"),
    (Command::Pass, "PASS"),
    (Command::Apop, "APOP"),
    (Command::Auth, "AUTH"),
    (Command::Stat, "STAT"),
    (Command::List, "LIST"),
    (Command::Retr, "RETR"),
    (Command::Dele, "DELE"),
    (Command::Rset, "RSET"),
    (Command::Noop, "NOOP"),
    (Command::Last, "LAST"),
    (Command::Quit, "QUIT"),
    (Command::Top, "TOP"),
    (Command::Capa, "CAPA"),
    (Command::Uidl, "UIDL"),
    (Command::Stls, "STLS"),
    (Command::Xsender, "XSENDER"),
];

/// Zeek's `ParseCmd`: the word, upper-cased, against every command. Zeek strips a leading `+` or `-` once per
/// command it compares with, so `+OK` and `-ERR` match (and so does `+-ERR`, after two tries).
fn parse_command(word: &str) -> Option<Command> {
    let mut word = word.to_ascii_uppercase();
    for (command, name) in COMMANDS {
        if word.starts_with(['+', '-']) {
            word.remove(0);
        }
        if word == name {
            return Some(command);
        }
    }
    None
}

/// Zeek's `masterState`: the session's phase (RFC 1939 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Authorization,
    Transaction,
    Update,
    Finished,
}

/// Zeek's `state`: the command whose reply is awaited (the authentication mechanisms apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    User,
    Pass,
    Apop,
    Auth,
    AuthPlain,
    AuthLogin,
    AuthCramMd5,
    Noop,
    Last,
    Stat,
    List,
    Retr,
    Dele,
    Uidl,
    Top,
    Quit,
    Rset,
    Capa,
    Stls,
    Xsender,
}

/// The bytes before the first NUL: Zeek reads commands and replies as C strings.
fn until_nul(line: &[u8]) -> &[u8] {
    memchr::memchr(0, line).map_or(line, |at| &line[..at])
}

/// Zeek's `trim_whitespace`: leading blanks dropped, runs of spaces made one, trailing spaces dropped.
fn trim_whitespace(line: &[u8]) -> String {
    let text = bytes_to_log_string(line.trim_ascii_start());
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').filter(|w| !w.is_empty()).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Zeek's `TokenizeLine(line, ' ')` on a trimmed line: the first word and the rest.
fn split_command(text: &str) -> (Option<&str>, &str) {
    match text.split_once(' ') {
        _ if text.is_empty() => (None, ""),
        Some((word, rest)) => (Some(word), rest),
        None => (Some(text), ""),
    }
}

/// Whether `line` is canonical base64 (alphabet, whole groups, padding only at the end): what any decoder,
/// Zeek's included, turns into the same bytes without complaint.
fn is_canonical_base64(line: &[u8]) -> bool {
    let body_len = line.len() - line.iter().rev().take_while(|&&c| c == b'=').count();
    line.len().is_multiple_of(4)
        && line.len() - body_len <= 2
        && line[..body_len].iter().all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// `AUTH PLAIN`'s `authzid NUL authcid NUL password` lacks its second NUL or the password (Zeek's
/// `pop3_malformed_auth_plain`).
fn auth_plain_is_malformed(decoded: &[u8]) -> bool {
    let authcid_start = decoded.iter().position(|&b| b == 0).map_or(decoded.len(), |at| at + 1);
    match decoded.get(authcid_start..).and_then(|rest| rest.iter().position(|&b| b == 0)) {
        Some(nul) => authcid_start + nul + 1 >= decoded.len(),
        None => true,
    }
}

pub struct Pop3Analyzer {
    lines: [ContentLine; 2],
    phase: Phase,
    state: State,
    /// The command sent outside the transaction phase, taken as sent in it if the server accepts it.
    last_state: State,
    guessing: bool,
    waiting_for_authentication: bool,
    request_for_multi_line: bool,
    multi_line: bool,
    tls: bool,
    confirmed: bool,
    /// Client lines not yet answered; the front one is the command being answered.
    pending: VecDeque<Vec<u8>>,
    unknown_client_commands: u64,
    /// The message of the RETR/TOP reply being received.
    mail: Option<MimeMessage>,
    /// The file of each open MIME entity of that message.
    entity_files: Vec<Option<FileTransfer>>,
}

impl Default for Pop3Analyzer {
    fn default() -> Self {
        Pop3Analyzer {
            lines: Default::default(),
            phase: Phase::Start,
            state: State::Start,
            last_state: State::Start,
            guessing: false,
            waiting_for_authentication: false,
            request_for_multi_line: false,
            multi_line: false,
            tls: false,
            confirmed: false,
            pending: VecDeque::new(),
            unknown_client_commands: 0,
            mail: None,
            entity_files: Vec::new(),
        }
    }
}

impl Pop3Analyzer {
    fn confirm(&mut self, ctx: &mut Ctx) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm(SPEC.name);
        }
    }

    /// Zeek's `ProcessRequest`: one client line.
    fn client_line(&mut self, ctx: &mut Ctx, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        if self.waiting_for_authentication {
            self.auth_line(ctx, line);
            return;
        }
        if self.pending.len() >= MAX_PENDING_COMMANDS {
            ctx.weird("pop3_client_too_many_pending_commands", None, "POP3");
            self.pending.pop_front();
        }
        self.pending.push_back(until_nul(line).to_vec());
        if self.pending.len() == 1 {
            self.process_client_command(ctx);
        }
    }

    /// A line of a SASL exchange. Only AUTH PLAIN's is checked: the credentials themselves are not logged.
    fn auth_line(&mut self, ctx: &mut Ctx, line: &[u8]) {
        let line = until_nul(line);
        if self.state == State::AuthPlain && is_canonical_base64(line) && auth_plain_is_malformed(&decode_base64(line))
        {
            ctx.weird("pop3_malformed_auth_plain", None, "POP3");
        }
    }

    /// Zeek's `ProcessClientCmd`: the state follows the command at the front of the queue.
    fn process_client_command(&mut self, ctx: &mut Ctx) {
        let Some(front) = self.pending.front() else { return };
        let text = trim_whitespace(front);
        let (word, message) = split_command(&text);
        let Some(command) = word.and_then(parse_command) else {
            if !self.waiting_for_authentication {
                ctx.weird("pop3_client_command_unknown", Some(word.unwrap_or("???").to_string()), "POP3");
                self.unknown_client_commands += 1;
                if self.unknown_client_commands > MAX_UNKNOWN_CLIENT_COMMANDS {
                    ctx.violation("too many unknown client commands");
                }
            }
            return;
        };
        let has_arg = !message.is_empty();
        let in_authorization = self.phase == Phase::Authorization;
        let in_transaction = self.phase == Phase::Transaction;
        match command {
            Command::Ok | Command::Err => ctx.weird("pop3_client_sending_server_commands", None, "POP3"),
            Command::User if in_authorization => self.state = State::User,
            Command::Pass if in_authorization && self.state == State::User => self.state = State::Pass,
            Command::Apop if in_authorization => self.state = State::Apop,
            Command::Auth if in_authorization && !has_arg => {
                self.request_for_multi_line = true;
                self.state = State::Auth;
            }
            Command::Auth if in_authorization => {
                self.state = if message.contains("LOGIN") {
                    State::AuthLogin
                } else if message.contains("PLAIN") {
                    State::AuthPlain
                } else if message.contains("CRAM-MD5") {
                    State::AuthCramMd5
                } else {
                    State::Auth
                };
                self.waiting_for_authentication = true;
            }
            Command::Quit if matches!(self.phase, Phase::Authorization | Phase::Transaction | Phase::Start) => {
                self.state = State::Quit
            }
            Command::Capa => {
                self.state = State::Capa;
                self.request_for_multi_line = true;
            }
            Command::Stls => self.state = State::Stls,
            Command::Stat if in_transaction => self.state = State::Stat,
            // Not allowed in this phase: Zeek reports `pop3_unexpected` and changes nothing.
            Command::User | Command::Pass | Command::Apop | Command::Auth | Command::Stat => {}
            _ => {
                // The transaction-phase commands. Outside it Zeek guesses that the server needs no login: if the
                // server accepts, the session is taken to be in the transaction phase.
                let (state, multi_line) = match command {
                    Command::List => (State::List, !has_arg),
                    Command::Uidl => (State::Uidl, !has_arg),
                    Command::Retr => (State::Retr, true),
                    Command::Top => (State::Top, true),
                    Command::Dele => (State::Dele, false),
                    Command::Rset => (State::Rset, false),
                    Command::Noop => (State::Noop, false),
                    // Zeek's XSENDER awaits its reply in the LAST state.
                    Command::Xsender if in_transaction => (State::Last, false),
                    Command::Xsender => (State::Xsender, false),
                    // LAST, and QUIT after the session ended.
                    _ => (State::Last, false),
                };
                self.request_for_multi_line |= multi_line;
                if in_transaction {
                    self.state = state;
                } else {
                    self.guessing = true;
                    self.last_state = state;
                }
            }
        }
    }

    /// Zeek's `FinishClientCmd`: the front command is answered; the next one takes effect.
    fn finish_client_command(&mut self, ctx: &mut Ctx) {
        if self.pending.pop_front().is_some() {
            self.process_client_command(ctx);
        }
    }

    /// Zeek's `ProcessReply`: one server line.
    fn server_line(&mut self, ctx: &mut Ctx, line: &[u8]) {
        if self.multi_line {
            self.multi_line_reply(ctx, line);
            return;
        }
        let text = trim_whitespace(until_nul(line));
        let (word, _) = split_command(&text);
        let Some(command) = word.and_then(parse_command) else {
            if !self.waiting_for_authentication {
                let word = word.unwrap_or("???");
                // POP3.cc passes the line along as it came.
                ctx.violation_with_data(format!("unknown server command ({word})"), line);
                ctx.weird("pop3_server_command_unknown", Some(word.to_string()), "POP3");
            }
            return;
        };
        match command {
            Command::Ok => self.ok_reply(ctx, line),
            Command::Err => self.err_reply(ctx),
            _ => ctx.weird("pop3_server_sending_client_commands", None, "POP3"),
        }
    }

    /// A line of a multi-line reply: message lines of RETR and TOP go to the MIME parser as they are (Zeek does
    /// not undo the dot-stuffing), a lone `.` ends the reply.
    fn multi_line_reply(&mut self, ctx: &mut Ctx, line: &[u8]) {
        if line == b"." {
            self.request_for_multi_line = false;
            self.multi_line = false;
            self.end_data(ctx);
            self.finish_client_command(ctx);
        } else if matches!(self.state, State::Retr | State::Top) {
            self.mail_line(ctx, line);
        }
    }

    fn ok_reply(&mut self, ctx: &mut Ctx, line: &[u8]) {
        if self.guessing {
            self.phase = Phase::Transaction;
            self.guessing = false;
            self.state = self.last_state;
        }
        match self.state {
            State::Start => self.phase = Phase::Authorization,
            State::User => {
                self.phase = Phase::Authorization;
                self.confirm(ctx);
            }
            State::Pass
            | State::Apop
            | State::Noop
            | State::Last
            | State::Stat
            | State::Rset
            | State::Dele
            | State::Xsender => self.phase = Phase::Transaction,
            State::Auth | State::AuthPlain | State::AuthCramMd5 | State::AuthLogin => {
                self.multi_line |= self.request_for_multi_line;
                if self.waiting_for_authentication {
                    self.phase = Phase::Transaction;
                }
                self.waiting_for_authentication = false;
            }
            State::Top | State::Retr => {
                if self.mail.is_none() {
                    self.begin_data(ctx);
                }
                // Zeek hands the status line itself to the MIME parser, as the message's first line.
                self.mail_line(ctx, line);
                self.multi_line |= self.request_for_multi_line;
            }
            State::Capa => {
                self.confirm(ctx);
                self.multi_line |= self.request_for_multi_line;
            }
            State::Uidl | State::List => self.multi_line |= self.request_for_multi_line,
            State::Stls => {
                self.confirm(ctx);
                self.start_tls(ctx);
                return;
            }
            State::Quit => {
                self.phase = match self.phase {
                    Phase::Authorization | Phase::Start => Phase::Finished,
                    Phase::Transaction => Phase::Update,
                    other => other,
                }
            }
        }
        if !self.multi_line {
            self.finish_client_command(ctx);
        }
    }

    fn err_reply(&mut self, ctx: &mut Ctx) {
        self.multi_line = false;
        self.request_for_multi_line = false;
        self.guessing = false;
        self.waiting_for_authentication = false;
        match self.state {
            State::User
            | State::Pass
            | State::Apop
            | State::Auth
            | State::AuthLogin
            | State::AuthPlain
            | State::AuthCramMd5 => {
                self.phase = Phase::Authorization;
                self.state = State::Start;
            }
            State::Noop
            | State::Last
            | State::Stat
            | State::Rset
            | State::Dele
            | State::List
            | State::Retr
            | State::Uidl
            | State::Top
            | State::Xsender => self.phase = Phase::Transaction,
            State::Quit if matches!(self.phase, Phase::Authorization | Phase::Transaction | Phase::Start) => {
                self.phase = Phase::Finished
            }
            State::Start | State::Capa | State::Stls | State::Quit => {}
        }
        self.finish_client_command(ctx);
    }

    /// The server accepted STLS: the rest of the connection is TLS, for the SSL analyzer.
    fn start_tls(&mut self, ctx: &mut Ctx) {
        self.tls = true;
        // The engine hands the stream over without finishing this analyzer: a message still open ends now.
        self.end_data(ctx);
        ctx.start_tls();
    }

    fn begin_data(&mut self, ctx: &mut Ctx) {
        let files = &mut self.entity_files;
        self.mail = Some(MimeMessage::new(&mut |event| entity_event(files, ctx, event)));
    }

    fn mail_line(&mut self, ctx: &mut Ctx, line: &[u8]) {
        let Some(mail) = self.mail.as_mut() else { return };
        let files = &mut self.entity_files;
        mail.line(line, &mut |event| entity_event(files, ctx, event));
    }

    fn end_data(&mut self, ctx: &mut Ctx) {
        let Some(mail) = self.mail.take() else { return };
        let files = &mut self.entity_files;
        mail.done(&mut |event| entity_event(files, ctx, event));
    }
}

/// What becomes of the message's MIME events: each entity's body is a file sent by the server.
fn entity_event(files: &mut Vec<Option<FileTransfer>>, ctx: &mut Ctx, event: MimeEvent) {
    match event {
        MimeEvent::BeginEntity => files.push(None),
        MimeEvent::Header { .. } => {}
        MimeEvent::Data(data) => {
            if let Some(slot) = files.last_mut() {
                entity_file(slot, ctx, "POP3", false, |_| {}).data(ctx.ts, data);
            }
        }
        MimeEvent::EndEntity => {
            if let Some(Some(file)) = files.pop() {
                file.finish(ctx);
            }
        }
    }
}

impl Analyzer for Pop3Analyzer {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        // Zeek's POP3 analyzer ignores connections whose start it did not see.
        if self.tls || ctx.partial {
            return;
        }
        let mut lines = std::mem::take(&mut self.lines[usize::from(is_orig)]);
        lines.feed(data, |event, rest| {
            if self.tls {
                return rest.len();
            }
            match event {
                LineEvent::Weird(name) => ctx.weird(name, None, "CONTENTLINE"),
                LineEvent::Line(line) if is_orig => self.client_line(ctx, line),
                LineEvent::Line(line) => self.server_line(ctx, line),
            }
            0
        });
        self.lines[usize::from(is_orig)] = lines;
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        // ContentLine's `EndpointEOF`: a last line without its end is delivered as a line.
        if self.lines[usize::from(is_orig)].has_partial_line() {
            self.deliver(ctx, is_orig, b"\n");
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, is_orig: bool, _len: u64) {
        // The rest of a line cut by a gap is unknown.
        self.lines[usize::from(is_orig)].clear_partial_line();
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.end_data(ctx);
    }
}

/// Drives the analyzer over arbitrary bytes (see [`super::fuzzing::drive`]).
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Pop3Analyzer::default(), Proto::Tcp, 110, data);
}

#[cfg(test)]
mod tests;
