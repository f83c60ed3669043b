//! IRC (tcp 6666-6669, and wherever Zeek's IRC signatures match) to irc.log, as Zeek's analyzer
//! (src/analyzer/protocol/irc/IRC.cc) and base/protocols/irc (main.zeek, dcc-send.zeek, files.zeek) do it.
//!
//! Each direction is split into lines by Zeek's ContentLine analyzer with the 1000-byte maximum IRC gives it (CR,
//! LF and CR LF end a line). A line longer than 512 bytes or shorter than 3 is ignored; then come optional IRCv3
//! tags (`@...` up to the first space), an optional `:prefix`, and a three-digit reply code or a command
//! (upper-cased) with its parameters. A line that is too short after its prefix, or a malformed reply code, is a
//! protocol violation; so is the 21st command longer than 20 characters. The analyzer confirms on the first line
//! from the originator whose command is one of the client commands `IsValidClientCommand` lists (the server's lines
//! never confirm). A `670` reply hands the rest of the connection to the TLS analyzer (STARTTLS).
//!
//! Only the events base scripts handle do anything (the C++ analyzer skips, weirds included, the branches of
//! events nobody handles): NICK, USER, JOIN/NJOIN and PRIVMSGs carrying a DCC request. The script keeps one record
//! per connection (`c$irc`) that each of them updates: the originator's NICK writes it with `command` NICK and
//! `value` the new nick, then `nick` becomes that nick; USER writes `value` the user name and `addl` "host server
//! real name", then `user` is set; JOIN writes once per channel of its join list, `addl` naming the channel key.
//! What a record does not set (an earlier `addl`, a DCC file name) is carried over from the one before, as the
//! script's record is; every handled event, from either side, stamps the record with its time. A DCC SEND (from
//! either side) sets `dcc_file_name` and `dcc_file_size` and expects the data connection to the announced address
//! and port for five minutes, which conn.log names `irc-dcc-data` and [`IrcData`] analyses: its file goes to
//! files.log, and irc.log gets the `DCC` record when the file is sniffed.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::content_line::{ContentLine, Piece};
use super::expected::ExpectedData;
use super::files::FileTransfer;
use super::{Analyzer, AnalyzerSpec, ConnId, Ctx, Expectation, Proto, Signature};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static IRC_LOG: Schema = Schema {
    path: "irc",
    fields: conn_fields![
        f("nick", "string"),
        f("user", "string"),
        f("command", "string"),
        f("value", "string"),
        f("addl", "string"),
        f("dcc_file_name", "string"),
        f("dcc_file_size", "count"),
        f("dcc_mime_type", "string"),
        f("fuid", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "irc",
    tcp_ports: &[6666, 6667, 6668, 6669],
    udp_ports: &[],
    detect: Some(Signature::both_sides(detect)),
    new: |_| Box::new(Irc::default()),
    schemas: &[&IRC_LOG],
};

/// The `max_line_length` IRC gives its ContentLine analyzers: it also bounds what a direction buffers.
const MAX_CONTENT_LINE: usize = 1000;
/// Longer lines are ignored (`irc_line_size_exceeded`).
const MAX_LINE: usize = 512;
/// A command longer than this is invalid (`irc_invalid_command`).
const MAX_COMMAND: usize = 20;
/// Invalid commands tolerated before the analyzer gives up (`invalid_msg_max_count`).
const MAX_INVALID_COMMANDS: u32 = 20;
/// How long a DCC SEND's data connection is expected (the script's `schedule_analyzer(..., 5 min)`).
const DCC_EXPECTATION: f64 = 300.0;
/// dcc-send.zeek's `max_dcc_expected_transfers`: the most transfers `dcc_expected_transfers` takes (0: no limit).
pub const MAX_DCC_EXPECTED_TRANSFERS: usize = 5000;
/// The weirds' source, as Zeek's analyzer names itself.
const SOURCE: &str = "IRC";

/// Why a line stops the analyzer (Zeek's `AnalyzerViolation` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IrcError {
    #[error("line too short")]
    LineTooShort,
    #[error("invalid reply number")]
    InvalidReplyNumber,
    #[error("too many long lines")]
    TooManyLongLines,
}

/// The commands whose appearance from the originator confirms the analyzer (`IsValidClientCommand`).
const CLIENT_COMMANDS: &[&[u8]] = &[
    b"ADMIN",
    b"AWAY",
    b"CNOTICE",
    b"CPRIVMSG",
    b"CONNECT",
    b"DIE",
    b"ENCAP",
    b"ERROR",
    b"INFO",
    b"INVITE",
    b"ISON",
    b"JOIN",
    b"KICK",
    b"KILL",
    b"KNOCK",
    b"LINKS",
    b"LIST",
    b"LUSERS",
    b"MODE",
    b"MOTD",
    b"NAMES",
    b"NICK",
    b"NOTICE",
    b"OPER",
    b"PART",
    b"PASS",
    b"PING",
    b"PONG",
    b"PRIVMSG",
    b"QUIT",
    b"REHASH",
    b"RULES",
    b"SERVER",
    b"SERVICE",
    b"SERVLIST",
    b"SETNAME",
    b"SILENCE",
    b"SQUERY",
    b"SQUIT",
    b"STATS",
    b"SUMMON",
    b"TIME",
    b"TOPIC",
    b"TRACE",
    b"USER",
    b"USERHOST",
    b"USERS",
    b"VERSION",
    b"WALLOPS",
    b"WHO",
    b"WHOIS",
    b"WHOWAS",
    b"STARTTLS",
];

/// One line taken apart as `DeliverStream` does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub prefix: &'a [u8],
    /// The reply code, 0 for a command.
    pub code: u16,
    /// Upper-cased; empty for a reply.
    pub command: Vec<u8>,
    pub params: &'a [u8],
}

/// What one line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Message(Message<'a>),
    /// Ignored, with the weird Zeek reports for it once the analyzer is confirmed.
    Ignored(&'static str),
    /// Ignored without a word (IRCv3 tags with nothing after them).
    Skipped,
    /// A protocol violation, and the weird that goes with it once the analyzer is confirmed.
    Violation(IrcError, &'static str),
}

/// `SkipLeadingWhitespace`: only spaces count.
fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// `DeliverStream` up to the extraction of the parameters.
pub fn parse_line(line: &[u8]) -> Line<'_> {
    if line.len() > MAX_LINE {
        return Line::Ignored("irc_line_size_exceeded");
    }
    let mut rest = skip_spaces(line);
    if rest.len() < 3 {
        return Line::Ignored("irc_line_too_short");
    }
    // IRCv3 message tags come first, up to a space (no spaces are skipped after them).
    if rest.first() == Some(&b'@') {
        let Some(space) = memchr::memchr(b' ', rest) else { return Line::Skipped };
        rest = &rest[space + 1..];
    }
    let mut prefix: &[u8] = b"";
    if rest.first() == Some(&b':') {
        let Some(space) = memchr::memchr(b' ', rest) else { return Line::Ignored("irc_invalid_line") };
        prefix = &rest[1..space];
        rest = skip_spaces(&rest[space + 1..]);
    }
    if rest.len() < 3 {
        return Line::Violation(IrcError::LineTooShort, "irc_invalid_line");
    }
    if rest[0].is_ascii_digit() {
        return match rest {
            [a @ b'0'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', b' ', params @ ..] => {
                let code = [a, b, c].iter().fold(0u16, |n, &&d| n * 10 + u16::from(d - b'0'));
                Line::Message(Message { prefix, code, command: Vec::new(), params })
            }
            _ => Line::Violation(IrcError::InvalidReplyNumber, "irc_invalid_reply_number"),
        };
    }
    // A command needs no parameters: without a space it is the whole line.
    let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let command = rest[..end].to_ascii_uppercase();
    let params = skip_spaces(rest.get(end + 1..).unwrap_or_default());
    Line::Message(Message { prefix, code: 0, command, params })
}

/// `SplitWords`: the pieces between separators, empty ones dropped.
fn split_words(s: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    s.split(move |&b| b == separator).filter(|w| !w.is_empty())
}

/// A string the analyzer hands to script land through `c_str()`: cut at its first NUL.
fn c_str(s: &[u8]) -> &[u8] {
    memchr::memchr(0, s).map_or(s, |nul| &s[..nul])
}

/// glibc's `atoi`: `strtol` (leading white space, a sign, decimal digits, clamped to 64 bits) cast to `int`.
fn atoi(s: &[u8]) -> i32 {
    let s = &s[s.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')).count()..];
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    let magnitude = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .try_fold(0i64, |n, &d| n.checked_mul(10)?.checked_add(i64::from(d - b'0')));
    let long = match (magnitude, negative) {
        (Some(n), true) => -n,
        (Some(n), false) => n,
        (None, true) => i64::MIN,
        (None, false) => i64::MAX,
    };
    long as i32
}

/// `val_mgr->Count(int)`: a negative `int` wraps to a huge count.
fn count_of(n: i32) -> u64 {
    i64::from(n) as u64
}

/// One entry of the analyzer's join list (`irc_join_info`, less the nick the script does not log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join<'a> {
    pub channel: &'a [u8],
    pub password: &'a [u8],
}

/// JOIN's parameters as the analyzer lists them: channels and their keys in order, `None` for a line without
/// parameters (`irc_invalid_join_line`). The list is a set: a repeated channel and key are one entry.
pub fn parse_join(params: &[u8]) -> Option<Vec<Join<'_>>> {
    let params = params.strip_prefix(b":").unwrap_or(params);
    let mut parts = split_words(params, b' ');
    let channels = parts.next()?;
    let mut passwords = parts.next().map(|p| split_words(p, b',')).into_iter().flatten();
    let mut list: Vec<Join> = Vec::new();
    for channel in split_words(channels, b',') {
        let join = Join { channel, password: passwords.next().unwrap_or_default() };
        if !list.contains(&join) {
            list.push(join);
        }
    }
    Some(list)
}

/// How many distinct entries NJOIN's join list has (`None`: not two parameters, `irc_invalid_njoin_line`). Each
/// member makes an entry of its nick and mode; the script logs only the channel, so only their number matters.
pub fn njoin_entries(params: &[u8]) -> Option<(&[u8], usize)> {
    let parts: Vec<&[u8]> = split_words(params, b' ').take(3).collect();
    let [channel, members] = parts[..] else { return None };
    let members = members.strip_prefix(b":").unwrap_or(members);
    let mut entries: Vec<(&[u8], &str)> = Vec::new();
    for member in split_words(members, b',') {
        let entry = match member {
            [b'@', b'@', nick @ ..] => (nick, "creator"),
            [b'@', nick @ ..] => (nick, "operator"),
            [b'+', nick @ ..] => (nick, "voice"),
            nick => (nick, "none"),
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    Some((channel, entries.len()))
}

/// USER's parameters as `irc_user_message` gets them: user, host, server and real name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user: Vec<u8>,
    pub host: Vec<u8>,
    pub server: Vec<u8>,
    pub real_name: Vec<u8>,
}

/// USER's parameters. The real name is rebuilt from the words after the third as the analyzer does it: a space
/// after every word from the second on, not between them (`:Ronnie Reagan` gives `RonnieReagan `).
pub fn parse_user(params: &[u8]) -> User {
    let parts: Vec<&[u8]> = split_words(params, b' ').collect();
    let word = |i: usize| c_str(parts.get(i).copied().unwrap_or_default()).to_vec();
    let mut real_name = Vec::new();
    for (i, part) in parts.iter().enumerate().skip(3) {
        real_name.extend_from_slice(part);
        if i > 3 {
            real_name.push(b' ');
        }
    }
    let name = c_str(&real_name);
    let real_name = name.strip_prefix(b":").unwrap_or(name).to_vec();
    User { user: word(0), host: word(1), server: word(2), real_name }
}

/// A DCC request as `irc_dcc_message` gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dcc {
    pub dcc_type: Vec<u8>,
    pub argument: Vec<u8>,
    pub address: Ipv4Addr,
    pub dest_port: u64,
    pub size: u64,
}

/// What a PRIVMSG carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privmsg {
    /// Text (or a CTCP request other than DCC): `irc_privmsg_message`, which no base script handles.
    Text,
    Dcc(Dcc),
    /// A PRIVMSG without a message, or a DCC request of the wrong number of words.
    Invalid(&'static str),
}

/// PRIVMSG's parameters: `target message`, the message without its `:`, and a CTCP `\x01DCC type argument
/// address port [size [T]]\x01` taken apart. The address is a decimal number whose digits (anything else counts as
/// a zero digit) make the 32-bit IPv4 address; port and size go through `atoi`.
pub fn parse_privmsg(params: &[u8]) -> Privmsg {
    let Some(space) = memchr::memchr(b' ', params) else {
        return Privmsg::Invalid("irc_invalid_privmsg_message_format");
    };
    let mut message = skip_spaces(&params[space + 1..]);
    message = message.strip_prefix(b":").unwrap_or(message);
    message = message.strip_prefix(b"\x01").unwrap_or(message);
    if message.len() <= 3 || !message.starts_with(b"DCC") {
        return Privmsg::Text;
    }
    let message = message.strip_suffix(b"\x01").unwrap_or(message);
    let parts: Vec<&[u8]> = split_words(message, b' ').take(8).collect();
    let turbo = parts.len() == 7 && parts[6] == b"T";
    if !(5..=6).contains(&parts.len()) && !turbo {
        return Privmsg::Invalid("irc_invalid_dcc_message_format");
    }
    let raw_ip = parts[3].iter().fold(0u32, |ip, &b| {
        ip.wrapping_mul(10).wrapping_add(if b.is_ascii_digit() { u32::from(b - b'0') } else { 0 })
    });
    Privmsg::Dcc(Dcc {
        dcc_type: c_str(parts[1]).to_vec(),
        argument: c_str(parts[2]).to_vec(),
        address: Ipv4Addr::from(raw_ip),
        dest_port: count_of(atoi(parts[4])),
        size: parts.get(5).map_or(0, |size| count_of(atoi(size))),
    })
}

/// `count_to_port`: the count as a 32-bit number, and port 0 for one past 65535.
fn count_to_port(n: u64) -> u16 {
    u16::try_from(n as u32).unwrap_or(0)
}

/// The script's `c$irc`: what the next record carries. `ts` is the time of the last event that touched the session
/// (`set_session`), `uid` and `id` are the IRC connection's: a DCC record is written later, from the data
/// connection, with them.
#[derive(Debug, Clone, PartialEq)]
struct Info {
    ts: f64,
    uid: String,
    id: ConnId,
    nick: Option<Vec<u8>>,
    user: Option<Vec<u8>>,
    command: Option<&'static str>,
    value: Option<Vec<u8>>,
    addl: Option<Vec<u8>>,
    dcc_file_name: Option<Vec<u8>>,
    dcc_file_size: Option<u64>,
    dcc_mime_type: Option<&'static str>,
    fuid: Option<String>,
}

impl Info {
    /// `new_session`.
    fn new(ctx: &Ctx) -> Self {
        Info {
            ts: ctx.ts,
            uid: ctx.uid.to_string(),
            id: *ctx.id,
            nick: None,
            user: None,
            command: None,
            value: None,
            addl: None,
            dcc_file_name: None,
            dcc_file_size: None,
            dcc_mime_type: None,
            fuid: None,
        }
    }

    fn write(&self, ctx: &mut Ctx) {
        let text = |s: &Option<Vec<u8>>| s.as_deref().map_or(Value::Unset, |s| Value::Str(bytes_to_log_string(s)));
        let mut v = Vec::with_capacity(IRC_LOG.fields.len());
        v.extend([Value::Time(self.ts), Value::str(self.uid.as_str())]);
        v.extend(self.id.log_values());
        v.extend([
            text(&self.nick),
            text(&self.user),
            self.command.map_or(Value::Unset, Value::str),
            text(&self.value),
            text(&self.addl),
            text(&self.dcc_file_name),
            self.dcc_file_size.map_or(Value::Unset, Value::Count),
            Value::opt_str(self.dcc_mime_type),
            Value::opt_str(self.fuid.as_deref()),
        ]);
        ctx.log(&IRC_LOG, v);
    }
}

/// `c$irc`, shared as the script shares the record: the IRC connection and `dcc_expected_transfers` hold the same
/// one, so the data connection's file changes what the session's later records carry.
type SharedInfo = Arc<Mutex<Info>>;

fn lock(info: &SharedInfo) -> MutexGuard<'_, Info> {
    info.lock().unwrap_or_else(PoisonError::into_inner)
}

/// dcc-send.zeek's `dcc_expected_transfers`: the session of each offered file's data connection.
static DCC_EXPECTED_TRANSFERS: ExpectedData<SharedInfo> = ExpectedData::new(DCC_EXPECTATION);

pub struct Irc {
    lines: [ContentLine<MAX_CONTENT_LINE>; 2],
    /// `max_dcc_expected_transfers`.
    max_dcc_expected_transfers: usize,
    /// `c$irc`, from the first event a base script handles.
    session: Option<SharedInfo>,
    confirmed: bool,
    invalid_commands: u32,
    /// A violation or the switch to TLS ended the analysis.
    done: bool,
}

impl Default for Irc {
    fn default() -> Self {
        Irc {
            lines: Default::default(),
            max_dcc_expected_transfers: MAX_DCC_EXPECTED_TRANSFERS,
            session: None,
            confirmed: false,
            invalid_commands: 0,
            done: false,
        }
    }
}

impl Irc {
    fn split_lines(&mut self, ctx: &mut Ctx, is_orig: bool, mut data: &[u8]) {
        while !data.is_empty() && !self.done {
            let (used, piece) = self.lines[usize::from(!is_orig)].next(data);
            data = data.get(used..).unwrap_or_default();
            while let Some(name) = self.lines[usize::from(!is_orig)].take_weird() {
                ctx.weird(name, None, "CONTENTLINE");
            }
            match piece {
                Some(Piece::Line(line)) => self.line(ctx, is_orig, line),
                Some(Piece::Buffered(line)) => self.line(ctx, is_orig, &line),
                Some(Piece::Plain(_)) | None => {}
            }
        }
    }

    /// main.zeek's `set_session`, which every handled event starts with: the session record, created by the first,
    /// stamped with the event's time.
    fn set_session(&mut self, ctx: &Ctx) -> SharedInfo {
        let session = self.session.get_or_insert_with(|| Arc::new(Mutex::new(Info::new(ctx))));
        lock(session).ts = ctx.ts;
        session.clone()
    }

    /// A weird Zeek reports only once the analyzer is confirmed (malformed lines before that are DPD tasting).
    fn weird_if_confirmed(&self, ctx: &mut Ctx, name: &'static str) {
        if self.confirmed {
            ctx.weird(name, None, SOURCE);
        }
    }

    fn line(&mut self, ctx: &mut Ctx, is_orig: bool, line: &[u8]) {
        let message = match parse_line(line) {
            Line::Message(message) => message,
            Line::Ignored(weird) => return self.weird_if_confirmed(ctx, weird),
            Line::Skipped => return,
            Line::Violation(error, weird) => {
                self.weird_if_confirmed(ctx, weird);
                self.done = true;
                return ctx.violation(error.to_string());
            }
        };
        let command = message.command.as_slice();
        if !self.confirmed && is_orig && CLIENT_COMMANDS.contains(&command) {
            self.confirmed = true;
            ctx.confirm("irc");
        }
        if command == b"STARTTLS" {
            return;
        }
        if message.code == 670 {
            // STARTTLS accepted: the rest of the connection is TLS.
            self.done = true;
            return ctx.start_tls();
        }
        if message.code > 0 {
            // Every other reply raises an event no base script handles.
            return;
        }
        if command.len() > MAX_COMMAND {
            ctx.weird("irc_invalid_command", None, SOURCE);
            self.invalid_commands += 1;
            if self.invalid_commands > MAX_INVALID_COMMANDS {
                ctx.weird("irc_too_many_invalid", None, SOURCE);
                self.done = true;
                ctx.violation(IrcError::TooManyLongLines.to_string());
            }
            return;
        }
        let params = message.params;
        match command {
            b"PRIVMSG" => match parse_privmsg(params) {
                Privmsg::Dcc(dcc) => self.dcc(ctx, dcc),
                Privmsg::Invalid(weird) => ctx.weird(weird, None, SOURCE),
                Privmsg::Text => {}
            },
            b"USER" => {
                let user = parse_user(params);
                let session = self.set_session(ctx);
                let mut info = lock(&session);
                if is_orig {
                    // fmt("%s %s %s", host, server, real_name)
                    let addl = [&user.host[..], &user.server[..], &user.real_name[..]].join(&b' ');
                    info.command = Some("USER");
                    info.value = Some(user.user.clone());
                    info.addl = Some(addl);
                    info.write(ctx);
                    info.user = Some(user.user);
                }
            }
            b"JOIN" => match parse_join(params) {
                Some(list) => {
                    let session = self.set_session(ctx);
                    let mut info = lock(&session);
                    if is_orig {
                        info.command = Some("JOIN");
                        for join in list {
                            info.value = Some(join.channel.to_vec());
                            info.addl = Some(if join.password.is_empty() {
                                Vec::new()
                            } else {
                                [&b" with channel key: '"[..], join.password, &b"'"[..]].concat()
                            });
                            info.write(ctx);
                        }
                    }
                }
                None => ctx.weird("irc_invalid_join_line", None, SOURCE),
            },
            b"NJOIN" => match njoin_entries(params) {
                Some((channel, entries)) => {
                    let session = self.set_session(ctx);
                    let mut info = lock(&session);
                    if is_orig {
                        info.command = Some("JOIN");
                        for _ in 0..entries {
                            info.value = Some(channel.to_vec());
                            info.addl = Some(Vec::new());
                            info.write(ctx);
                        }
                    }
                }
                None => ctx.weird("irc_invalid_njoin_line", None, SOURCE),
            },
            b"NICK" => {
                let session = self.set_session(ctx);
                let mut info = lock(&session);
                if is_orig {
                    let nick = params.strip_prefix(b":").unwrap_or(params).to_vec();
                    info.command = Some("NICK");
                    info.value = Some(nick.clone());
                    info.write(ctx);
                    info.nick = Some(nick);
                }
            }
            _ => {}
        }
    }

    /// dcc-send.zeek's `irc_dcc_message`: a SEND names the file on the session, expects the data connection
    /// (`Analyzer::schedule_analyzer` of IRC_DATA) and enters the session in `dcc_expected_transfers` for it; when
    /// the table already holds `max_dcc_expected_transfers`, the offer is only a weird.
    fn dcc(&mut self, ctx: &mut Ctx, dcc: Dcc) {
        let session = self.set_session(ctx);
        if dcc.dcc_type != b"SEND" {
            return;
        }
        if self.max_dcc_expected_transfers > 0 && DCC_EXPECTED_TRANSFERS.len(ctx.ts) >= self.max_dcc_expected_transfers
        {
            return ctx.weird("irc_max_dcc_expected_transfers_exceeded", None, "");
        }
        {
            let mut info = lock(&session);
            info.dcc_file_name = Some(dcc.argument);
            info.dcc_file_size = Some(dcc.size);
        }
        let (resp_h, resp_p) = (IpAddr::V4(dcc.address), count_to_port(dcc.dest_port));
        ctx.expect(Expectation {
            orig_h: None,
            resp_h,
            resp_p,
            analyzer: Some(DATA_SPEC.name),
            service: "irc-dcc-data",
            expires: ctx.ts + DCC_EXPECTATION,
        });
        DCC_EXPECTED_TRANSFERS.insert(resp_h, resp_p, session, ctx.ts);
    }
}

impl Analyzer for Irc {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        self.split_lines(ctx, is_orig, data);
    }

    /// ContentLine's `EndpointEOF`: a last line without its terminator is delivered as if it had one.
    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        if self.lines[usize::from(!is_orig)].has_partial_line() {
            self.split_lines(ctx, is_orig, b"\n");
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

// ---------------------------------------------------------------------------------------------------
// The DCC data connection (IRC_DATA)
// ---------------------------------------------------------------------------------------------------

/// IRC_DATA is attached only to the data connection a DCC SEND announced, never by port or content.
pub static DATA_SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "irc-dcc-data",
    tcp_ports: &[],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(IrcData::default()),
    schemas: &[],
};

/// A DCC SEND's data connection as Zeek's `IRC_Data` analyzer (src/analyzer/protocol/file/File.cc) and
/// base/protocols/irc (files.zeek, dcc-send.zeek) handle it.
///
/// The responder sends the file: its bytes are one file (`IRC_DATA` in files.log). The originator's bytes are the
/// receiver's 4-byte acknowledgements of what it got, which IRC_Data turns into `irc_dcc_send_ack` events (no base
/// script handles them) rather than a file. When the file starts, the session that offered it
/// (`dcc_expected_transfers`) takes its fuid and gives it its file name; when the file is sniffed, the session takes
/// its MIME type and irc.log gets the `DCC` record, after which the session drops the DCC fields and the transfer
/// leaves the table.
#[derive(Default)]
pub struct IrcData {
    file: Option<FileTransfer>,
    /// `f$irc`: the session the file joined when it started (none when the transfer was not expected).
    session: Option<SharedInfo>,
    /// The file's data began with bytes, not a gap (a file whose BOF buffer is empty is never sniffed).
    had_data: bool,
    /// The file was sniffed (and the scripts' `file_sniff` handlers ran), or never will be.
    sniff_handled: bool,
    /// Whether the transfer was in `dcc_expected_transfers` when the analyzer started (the script registers its
    /// removal hook then); `None` before the first call.
    removal_hook: Option<bool>,
}

impl IrcData {
    /// `scheduled_analyzer_applied`: the removal hook is registered when the connection's transfer is expected.
    fn start(&mut self, ctx: &Ctx) {
        if self.removal_hook.is_none() {
            self.removal_hook = Some(DCC_EXPECTED_TRANSFERS.peek(ctx.id.resp_h, ctx.id.resp_p).is_some());
        }
    }

    /// The responder's file, created at its first byte or gap (`file_over_new_connection`: files.zeek gives the
    /// expected session the file's fuid and the file the session's DCC file name).
    fn file(&mut self, ctx: &mut Ctx) -> &mut FileTransfer {
        let file = match self.file.take() {
            Some(file) => file,
            None => {
                let mut file = FileTransfer::new(ctx, "IRC_DATA", false);
                if let Some(session) = DCC_EXPECTED_TRANSFERS.lookup(ctx.id.resp_h, ctx.id.resp_p, ctx.ts) {
                    let mut info = lock(&session);
                    info.fuid = Some(file.fuid.clone());
                    file.filename = info.dcc_file_name.as_deref().map(bytes_to_log_string);
                    drop(info);
                    self.session = Some(session);
                }
                file
            }
        };
        self.file.insert(file)
    }

    /// Runs the scripts' `file_sniff` handlers once the file has been sniffed. A file that begins with a gap has
    /// nothing to sniff: Zeek's `InferMetadata` raises no `file_sniff` for an empty BOF buffer, and tries no more.
    fn after_sniff(&mut self, ctx: &mut Ctx) {
        if self.sniff_handled {
            return;
        }
        let Some(mime) = self.file.as_ref().and_then(FileTransfer::sniffed) else { return };
        self.sniff_handled = true;
        if !self.had_data {
            return;
        }
        // files.zeek (priority 5): the session's MIME type, when the file has one.
        if let (Some(session), Some(mime)) = (&self.session, mime) {
            lock(session).dcc_mime_type = Some(mime);
        }
        self.log_dcc(ctx);
    }

    /// dcc-send.zeek's `log_dcc` (`file_sniff`, priority -5): the expected transfer's session is written with
    /// command `DCC` (its own command back afterwards, when it had one), then loses its DCC fields and the transfer
    /// leaves the table.
    fn log_dcc(&mut self, ctx: &mut Ctx) {
        let (resp_h, resp_p) = (ctx.id.resp_h, ctx.id.resp_p);
        let Some(session) = DCC_EXPECTED_TRANSFERS.lookup(resp_h, resp_p, ctx.ts) else { return };
        let mut info = lock(&session);
        let command = info.command.replace("DCC");
        info.write(ctx);
        if command.is_some() {
            info.command = command;
        }
        info.dcc_file_name = None;
        info.dcc_file_size = None;
        info.dcc_mime_type = None;
        drop(info);
        DCC_EXPECTED_TRANSFERS.remove(resp_h, resp_p);
    }
}

impl Analyzer for IrcData {
    fn spec(&self) -> &'static AnalyzerSpec {
        &DATA_SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        self.start(ctx);
        // The originator's acknowledgements are no file.
        if is_orig || data.is_empty() {
            return;
        }
        let ts = ctx.ts;
        self.file(ctx).data(ts, data);
        self.had_data = true;
        self.after_sniff(ctx);
    }

    fn undelivered(&mut self, ctx: &mut Ctx, is_orig: bool, len: u64) {
        self.start(ctx);
        if is_orig {
            return;
        }
        let ts = ctx.ts;
        self.file(ctx).gap(ts, len);
        self.after_sniff(ctx);
    }

    /// `File_Analyzer::Done` ends the file with the connection (a short file is sniffed then, before its files.log
    /// record), and the removal hook `finalize_irc_data` drops a transfer still expected.
    fn finish(&mut self, ctx: &mut Ctx) {
        self.start(ctx);
        if let Some(file) = self.file.as_mut() {
            file.mime_type();
            self.after_sniff(ctx);
        }
        if let Some(file) = self.file.take() {
            file.finish(ctx);
        }
        if self.removal_hook == Some(true) {
            DCC_EXPECTED_TRANSFERS.remove(ctx.id.resp_h, ctx.id.resp_p);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Content detection (scripts/base/protocols/irc/dpd.sig)
// ---------------------------------------------------------------------------------------------------

/// Zeek's IRC signatures: a client that registered with USER and NICK lines (either order, `irc_client1` and
/// `irc_client2`) answered by a server's numeric reply (`irc_server_reply`), or two servers that both sent a
/// `SERVER name hopcount :info` line (`irc_server_to_server1` and `2`). As elsewhere in the node, a pattern's
/// `(|.*[\r\n])` lead is any line of what the direction sent so far.
///
/// One pass over the lines: content detection asks again each time a direction grows, over all it has sent.
fn detect(proto: Proto, is_orig: bool, payload: &[u8]) -> bool {
    if proto != Proto::Tcp {
        return false;
    }
    let mut registration = Registration::default();
    let mut lines = super::detect::lines(payload).peekable();
    while let Some(line) = lines.next() {
        if !is_orig && server_reply(line) {
            return true;
        }
        // Every other pattern's line ends in a terminator: the last piece has none yet.
        if lines.peek().is_none() {
            break;
        }
        if (is_orig && registration.completed_by(line)) || server_link(line) {
            return true;
        }
    }
    false
}

/// `(:[^ \n\r]+ )?[0-9][0-9][0-9] ` at the start of a line.
fn server_reply(line: &[u8]) -> bool {
    let rest = match line.strip_prefix(b":") {
        Some(after) => match memchr::memchr(b' ', after) {
            Some(space) if space > 0 => &after[space + 1..],
            _ => return false,
        },
        None => line,
    };
    matches!(rest, [b'0'..=b'9', b'0'..=b'9', b'0'..=b'9', b' ', ..])
}

/// ` *WORD +` (WORD in any case) at the start of `line`: what follows the word, starting with its spaces.
fn keyword<'a>(line: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
    let line = skip_spaces(line);
    let after = line.get(word.len()..)?;
    (line[..word.len()].eq_ignore_ascii_case(word) && after.first() == Some(&b' ')).then_some(after)
}

/// `USER +.+[\n\r]+ *NICK +.*[\r\n]` or `NICK +.+[\r\n]+ *USER +.+[\r\n]` over the terminated lines of a
/// direction: a USER line with something after its spaces, a later NICK line, or the other way round.
#[derive(Default)]
struct Registration {
    user_seen: bool,
    nick_seen: bool,
}

impl Registration {
    /// Whether this terminated line completes a registration.
    fn completed_by(&mut self, line: &[u8]) -> bool {
        if let Some(after) = keyword(line, b"USER") {
            if self.nick_seen && after.len() > 1 {
                return true;
            }
            self.user_seen |= after.len() > 1;
        } else if let Some(after) = keyword(line, b"NICK") {
            if self.user_seen {
                return true;
            }
            self.nick_seen |= after.len() > 1;
        }
        false
    }
}

/// ` *SERVER +[^ ]+ +[0-9]+ +:.+[\r\n]` at the start of a terminated line.
fn server_link(line: &[u8]) -> bool {
    keyword(line, b"SERVER").is_some_and(server_link_arguments)
}

/// ` +[^ ]+ +[0-9]+ +:.+` after SERVER: a name, a hop count and the `:`-led info.
fn server_link_arguments(after: &[u8]) -> bool {
    let rest = token(skip_spaces(after), |b| b != b' ').and_then(|rest| token(rest, |b| b.is_ascii_digit()));
    matches!(rest, Some([b':', _, ..]))
}

/// `X+ +` at the start of `s`, X the bytes `is_part` accepts: what follows the spaces.
fn token(s: &[u8], is_part: impl Fn(u8) -> bool) -> Option<&[u8]> {
    let len = s.iter().take_while(|&&b| is_part(b)).count();
    (len > 0 && s.get(len) == Some(&b' ')).then(|| skip_spaces(&s[len..]))
}

/// Fuzz entry point: arbitrary segments in both directions through the IRC and the DCC data analyzers, and the
/// signatures over the halves of the input.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Irc::default(), Proto::Tcp, 6667, data);
    super::fuzzing::drive(&mut IrcData::default(), Proto::Tcp, 1024, data);
    let half = data.len() / 2;
    if let Some(signature) = SPEC.detect {
        for is_orig in [true, false] {
            signature.matches(Proto::Tcp, is_orig, &data[..half], &data[half..]);
        }
    }
}

#[cfg(test)]
mod dcc_tests;
#[cfg(test)]
mod tests;
