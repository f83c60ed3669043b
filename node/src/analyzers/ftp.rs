//! FTP: the control channel (ftp.log) and the data channels it announces (`ftp-data`, files.log).
//!
//! Follows Zeek's `src/analyzer/protocol/ftp` (line parsing, multi-line replies, AUTH TLS) and
//! `scripts/base/protocols/ftp/{main,utils,files}.zeek` (command/reply pairing over a queue of pending
//! commands, which commands are logged, the working directory behind the `arg` URLs, data channels).
//!
//! A data channel's file is reported back into the control session that announced it (`fuid`,
//! `mime_type`), as Zeek's `ftp_data_expected` table does; that table is process-wide here too.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::detect::{lines, split_at_byte};
use super::expected::ExpectedData;
use super::files::FileTransfer;
use super::ftp_adat::Adat;
use super::nvt::{Nvt, NvtEvent};
use super::smtp::lines::StreamBytes;
use super::{Analyzer, AnalyzerSpec, ConnId, Ctx, Expectation, Proto, Signature};
use crate::logs::conn_fields;
use crate::logs::{LogRecord, Schema, Value, bytes_to_log_string, f};

pub static FTP_LOG: Schema = Schema {
    path: "ftp",
    fields: conn_fields![
        f("user", "string"),
        f("password", "string"),
        f("command", "string"),
        f("arg", "string"),
        f("mime_type", "string"),
        f("file_size", "count"),
        f("reply_code", "count"),
        f("reply_msg", "string"),
        f("data_channel.passive", "bool"),
        f("data_channel.orig_h", "addr"),
        f("data_channel.resp_h", "addr"),
        f("data_channel.resp_p", "port"),
        f("fuid", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ftp",
    tcp_ports: &[21, 2811],
    udp_ports: &[],
    detect: Some(Signature::both_sides(detect)),
    new: |_| Box::new(FtpAnalyzer::new()),
    schemas: &[&FTP_LOG],
};

/// FTP data connections are attached only by expectation (PORT/PASV), never by port or content.
pub static DATA_SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ftp-data",
    tcp_ports: &[],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(FtpDataAnalyzer::default()),
    schemas: &[],
};

// ---------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------

/// Zeek's default `FTP::logged_commands`. Zeek 9.1 with default scripts also logs `AUTH` (the ftp-auth-tls
/// oracle's zeek-default/ftp.log has the `AUTH TLS` line without any redef), so it is included.
pub const DEFAULT_LOGGED_COMMANDS: &[&str] =
    &["APPE", "DELE", "RETR", "STOR", "STOU", "ACCT", "PORT", "PASV", "EPRT", "EPSV", "AUTH"];

static LOGGED_COMMANDS: RwLock<Option<Arc<BTreeSet<String>>>> = RwLock::new(None);

/// The commands whose command/reply pairs are logged (`FTP::logged_commands`).
pub fn logged_commands() -> Arc<BTreeSet<String>> {
    let guard = LOGGED_COMMANDS.read().unwrap_or_else(PoisonError::into_inner);
    guard.clone().unwrap_or_else(|| Arc::new(DEFAULT_LOGGED_COMMANDS.iter().map(|c| c.to_string()).collect()))
}

/// Replaces `FTP::logged_commands` for sessions that start afterwards.
pub fn set_logged_commands<I: IntoIterator<Item = S>, S: Into<String>>(commands: I) {
    let set = commands.into_iter().map(Into::into).collect();
    *LOGGED_COMMANDS.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
}

/// `redef FTP::logged_commands += { ... }` (e.g. `"<init>"`, `"AUTH"` as in the ftp-auth-tls test).
pub fn add_logged_commands<I: IntoIterator<Item = S>, S: Into<String>>(commands: I) {
    let mut set: BTreeSet<String> = (*logged_commands()).clone();
    set.extend(commands.into_iter().map(Into::into));
    set_logged_commands(set);
}

const GUEST_IDS: &[&str] = &["anonymous", "ftp", "ftpuser", "guest"];
const MAX_PENDING_COMMANDS: usize = 20;
const MAX_USER_LENGTH: usize = 128;
const MAX_PASSWORD_LENGTH: usize = 128;
const MAX_ARG_LENGTH: usize = 4096;
const MAX_REPLY_MSG_LENGTH: usize = 4096;
/// `BifConst::FTP::max_command_length`.
const MAX_COMMAND_LENGTH: usize = 100;
/// Expected data channels lapse after five minutes, like Zeek's `ftp_data_expected &read_expire`.
const DATA_CHANNEL_EXPIRY: f64 = 300.0;

/// Commands whose argument names a file or directory; their `arg` is logged as an `ftp://` URL.
const FILE_CMDS: &[&str] =
    &["APPE", "CWD", "DELE", "MKD", "RETR", "RMD", "RNFR", "RNTO", "STOR", "STOU", "REST", "SIZE", "MDTM"];

// ---------------------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------------------

/// Zeek's `dpd_ftp_client` and `dpd_ftp_server` signatures: a client `USER ` line; a server that greets
/// (`220`/`120`) and later answers a login (`230`/`331`). The server's requires the client's, so FTP on another port
/// starts with the answer to `USER`.
fn detect(proto: Proto, is_orig: bool, payload: &[u8]) -> bool {
    if proto != Proto::Tcp {
        return false;
    }
    if is_orig {
        // A `USER x` line needs six bytes; the lines are found a word at a time (most streams here are not FTP).
        return payload.len() > 5
            && split_at_byte(payload, b'\n').any(|line| {
                let line = trim_start(line);
                line.len() > 5 && line[..5].eq_ignore_ascii_case(b"USER ")
            });
    }
    let reply = |line: &[u8], codes: &[&[u8]]| {
        codes.iter().any(|c| line.starts_with(c)) && line.get(3).is_some_and(|b| !b.is_ascii_digit())
    };
    let mut replies = lines(payload);
    replies.next().is_some_and(|first| reply(trim_start(first), &[b"220", b"120"]))
        && replies.any(|line| reply(line.trim_ascii_start(), &[b"230", b"331"]))
}

fn trim_start(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &d[n..]
}

// ---------------------------------------------------------------------------------------------------
// Data channels shared between the control session and the data connections
// ---------------------------------------------------------------------------------------------------

/// What a data connection reports back to its control session (Zeek sets these on the shared `FTP::Info`).
///
/// Standalone, the control session takes the fields when it logs. On an offline cluster worker
/// ([`DataLinks::link`]) the data connection may be analysed by another worker, whose changes arrive later: every
/// change is then journaled with its packet time, and a record takes, once the cluster has settled past it, the
/// changes made between the session's previous log and its own.
#[derive(Debug, Default)]
struct TransferReport {
    fuid: Option<String>,
    mime_type: Option<&'static str>,
    /// Cluster workers only: the changes, ordered by packet time.
    journal: Option<Vec<ReportUpdate>>,
    /// Packet time of the control session's last log (journaled reports).
    taken_until: f64,
    /// Records of this session held for changes still to come.
    holds: usize,
    /// Stands for a control session on another worker (its changes are sent there).
    remote: bool,
}

/// One change a data channel makes to its control session's report.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportChange {
    Fuid(String),
    MimeType(Option<String>),
}

/// A [`ReportChange`] at a packet time.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportUpdate {
    pub ts: f64,
    pub change: ReportChange,
}

/// What a control session's log takes from its report.
enum Taken {
    Now {
        fuid: Option<String>,
        mime_type: Option<String>,
    },
    /// The changes after packet time `after` (and up to the log's), once they are all known.
    Later {
        after: f64,
    },
}

impl TransferReport {
    fn journaled(remote: bool) -> Self {
        TransferReport { journal: Some(Vec::new()), taken_until: f64::NEG_INFINITY, remote, ..Default::default() }
    }

    fn set_fuid(&mut self, ts: f64, fuid: String) {
        match &mut self.journal {
            Some(_) => self.record(ReportUpdate { ts, change: ReportChange::Fuid(fuid) }),
            None => self.fuid = Some(fuid),
        }
    }

    fn set_mime_type(&mut self, ts: f64, mime: Option<&'static str>) {
        match &mut self.journal {
            Some(_) => self.record(ReportUpdate { ts, change: ReportChange::MimeType(mime.map(str::to_string)) }),
            None => self.mime_type = mime,
        }
    }

    /// Journals a change in packet-time order (after the changes at the same time).
    fn record(&mut self, update: ReportUpdate) {
        if let Some(journal) = &mut self.journal {
            let at = journal.partition_point(|u| u.ts <= update.ts);
            journal.insert(at, update);
        }
    }

    fn take(&mut self, ts: f64) -> Taken {
        if self.journal.is_none() {
            return Taken::Now { fuid: self.fuid.take(), mime_type: self.mime_type.take().map(str::to_string) };
        }
        let after = std::mem::replace(&mut self.taken_until, ts);
        if self.holds == 0 {
            self.forget_until(after);
        }
        Taken::Later { after }
    }

    /// The fields a log at `until` takes when the previous one was at `after`: the last changes in between.
    fn resolve(&self, after: f64, until: f64) -> (Option<String>, Option<String>) {
        let (mut fuid, mut mime_type) = (None, None);
        for u in self.journal.iter().flatten().filter(|u| u.ts > after && u.ts <= until) {
            match &u.change {
                ReportChange::Fuid(f) => fuid = Some(f.clone()),
                ReportChange::MimeType(m) => mime_type = m.clone(),
            }
        }
        (fuid, mime_type)
    }

    /// Drops the changes no record can take any more.
    fn forget_until(&mut self, ts: f64) {
        if let Some(journal) = &mut self.journal {
            journal.retain(|u| u.ts > ts);
        }
    }
}

type SharedReport = Arc<Mutex<TransferReport>>;

/// Zeek's `ftp_data_expected`: the control session of each announced data channel.
static FTP_DATA_EXPECTED: ExpectedData<SharedReport> = ExpectedData::new(DATA_CHANNEL_EXPIRY);

fn with_report<T>(report: &SharedReport, f: impl FnOnce(&mut TransferReport) -> T) -> T {
    f(&mut report.lock().unwrap_or_else(PoisonError::into_inner))
}

// ---------------------------------------------------------------------------------------------------
// Data channels across cluster workers
// ---------------------------------------------------------------------------------------------------

/// A data channel a control session on another worker announced (Zeek's `FTP::sync_add_expected_data` gives the
/// worker the expectation; this gives it the `ftp_data_expected` entry, whose changes go back to that worker).
pub struct RemoteChannel {
    pub resp_h: IpAddr,
    pub resp_p: u16,
    expires: f64,
    report: SharedReport,
}

/// Registers a data channel announced on another worker at packet time `now`; `None` when a control session of
/// this worker announced it too.
pub fn expect_remote_channel(resp_h: IpAddr, resp_p: u16, now: f64) -> Option<RemoteChannel> {
    let local = FTP_DATA_EXPECTED.peek(resp_h, resp_p);
    if local.is_some_and(|r| !with_report(&r, |r| r.remote)) {
        return None;
    }
    let report = Arc::new(Mutex::new(TransferReport::journaled(true)));
    FTP_DATA_EXPECTED.insert(resp_h, resp_p, report.clone(), now);
    Some(RemoteChannel { resp_h, resp_p, expires: now + DATA_CHANNEL_EXPIRY, report })
}

impl RemoteChannel {
    /// The changes the data connection made since the last call, for the announcing worker.
    pub fn take_updates(&self) -> Vec<ReportUpdate> {
        with_report(&self.report, |r| r.journal.as_mut().map(std::mem::take).unwrap_or_default())
    }

    /// Nothing can change any more: the data connection ended, or none came before the expectation lapsed.
    pub fn is_done(&self, now: f64) -> bool {
        let holders = Arc::strong_count(&self.report);
        // Held by this handle alone, or by it and the table after the expectation lapsed.
        holders == 1 || (now > self.expires && holders == 2 && in_expected_table(&self.report))
    }
}

fn in_expected_table(report: &SharedReport) -> bool {
    FTP_DATA_EXPECTED.any(|r| Arc::ptr_eq(r, report))
}

/// A change another worker's data connection made for a channel a control session here announced.
pub fn apply_remote_update(resp_h: IpAddr, resp_p: u16, update: ReportUpdate) -> bool {
    let Some(report) = FTP_DATA_EXPECTED.peek(resp_h, resp_p) else { return false };
    with_report(&report, |r| {
        let ours = !r.remote && r.journal.is_some();
        if ours {
            r.record(update);
        }
        ours
    })
}

/// A worker's FTP records waiting for changes from data channels on other workers.
#[derive(Default)]
pub struct DataLinks {
    linked: bool,
    held: Vec<HeldRecord>,
}

struct HeldRecord {
    values: Vec<Value>,
    report: SharedReport,
    after: f64,
    until: f64,
}

impl DataLinks {
    /// Data channels may be analysed by other workers: new control sessions journal their reports and hold their
    /// records until [`DataLinks::release`].
    pub fn link(&mut self, on: bool) {
        self.linked = on;
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The held records logged before packet time `before`, with what their data channels reported: the caller
    /// knows every change before it has arrived (`+inf`: the input ended and everything has).
    pub fn release(&mut self, before: f64) -> Vec<LogRecord> {
        let fuid_at = FTP_LOG.field_index("fuid");
        let mime_at = FTP_LOG.field_index("mime_type");
        let (ready, waiting) = std::mem::take(&mut self.held).into_iter().partition(|h| h.until < before);
        self.held = waiting;
        ready
            .into_iter()
            .map(|HeldRecord { mut values, report, after, until }| {
                let (fuid, mime_type) = with_report(&report, |r| {
                    r.holds -= 1;
                    let taken = r.resolve(after, until);
                    if r.holds == 0 {
                        let upto = r.taken_until;
                        r.forget_until(upto);
                    }
                    taken
                });
                for (at, v) in [(mime_at, mime_type), (fuid_at, fuid)] {
                    if let Some(slot) = at.and_then(|i| values.get_mut(i)) {
                        *slot = Value::opt_str(v);
                    }
                }
                LogRecord::new(&FTP_LOG, values)
            })
            .collect()
    }

    fn hold(&mut self, values: Vec<Value>, report: SharedReport, after: f64, until: f64) {
        with_report(&report, |r| r.holds += 1);
        self.held.push(HeldRecord { values, report, after, until });
    }
}

// ---------------------------------------------------------------------------------------------------
// Control channel
// ---------------------------------------------------------------------------------------------------

/// Zeek's `FTP::ExpectedDataChannel`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DataChannel {
    passive: bool,
    orig_h: IpAddr,
    resp_h: IpAddr,
    resp_p: u16,
}

/// Zeek's `FTP::CmdArg`: one command waiting for (or matched with) a reply.
#[derive(Debug, Clone, PartialEq)]
struct CmdArg {
    ts: f64,
    cmd: String,
    arg: String,
    seq: u64,
    cwd_consumed: bool,
}

/// Zeek's `FTP::Info` for one control session.
#[derive(Debug)]
struct Session {
    user: String,
    password: Option<String>,
    reply_code: Option<u64>,
    reply_msg: Option<String>,
    file_size: Option<u64>,
    data_channel: Option<DataChannel>,
    cwd: String,
    cmdarg: Option<CmdArg>,
    pending: BTreeMap<u64, CmdArg>,
    command_seq: u64,
    capture_password: bool,
    report: SharedReport,
}

impl Session {
    fn new(ts: f64, linked: bool) -> Self {
        let report = if linked { TransferReport::journaled(false) } else { TransferReport::default() };
        let mut s = Session {
            user: "<unknown>".into(),
            password: None,
            reply_code: None,
            reply_msg: None,
            file_size: None,
            data_channel: None,
            cwd: ".".into(),
            cmdarg: None,
            pending: BTreeMap::new(),
            command_seq: 0,
            capture_password: false,
            report: Arc::new(Mutex::new(report)),
        };
        // A shim command so the server's greeting has something to answer.
        s.add_pending(ts, "<init>".into(), String::new());
        s
    }

    fn add_pending(&mut self, ts: f64, cmd: String, arg: String) {
        self.command_seq += 1;
        let seq = self.command_seq;
        self.pending.insert(seq, CmdArg { ts, cmd, arg, seq, cwd_consumed: false });
    }

    /// Zeek's `get_pending_cmd`: the pending command that best explains this reply.
    fn best_pending(&self, code: u64, msg: &str) -> Option<CmdArg> {
        let mut best: Option<(i32, &CmdArg)> = None;
        for ca in self.pending.values() {
            let mut score = 0;
            if code == 500 || reply_code_expected(&ca.cmd, code) {
                score += 100;
            }
            if msg.contains(ca.cmd.as_str()) {
                score += 20;
            }
            if msg.contains(ca.arg.as_str()) {
                score += 10;
            }
            // Iteration is in sequence order, so a tie keeps the older command.
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, ca));
            }
        }
        best.map(|(_, ca)| ca.clone())
    }

    fn should_hide_password(&self) -> bool {
        !self.capture_password && !GUEST_IDS.contains(&self.user.to_lowercase().as_str())
    }

    fn set_expected_channel(&mut self, ctx: &mut Ctx, chan: DataChannel) {
        self.data_channel = Some(chan);
        FTP_DATA_EXPECTED.insert(chan.resp_h, chan.resp_p, self.report.clone(), ctx.ts);
        ctx.expect(Expectation {
            orig_h: Some(chan.orig_h),
            resp_h: chan.resp_h,
            resp_p: chan.resp_p,
            analyzer: Some(DATA_SPEC.name),
            service: "ftp-data",
            expires: ctx.ts + DATA_CHANNEL_EXPIRY,
        });
    }
}

pub struct FtpAnalyzer {
    logged: Arc<BTreeSet<String>>,
    /// Zeek's FTP analyzer reads both directions through NVT analyzers.
    lines: [Nvt; 2],
    session: Option<Session>,
    /// The reply code of a multi-line reply still in progress.
    pending_reply: u64,
    auth_requested: Option<Vec<u8>>,
    tls_active: bool,
    /// The ADAT exchange after `AUTH GSSAPI` was answered 334 (Zeek's SSL child with its ADAT support analyzers).
    adat: Option<Box<Adat>>,
    confirmed: bool,
    seen: StreamBytes,
    /// The originator's stream ended (FIN or RST), for `partial_ftp_request`.
    orig_ended: bool,
}

impl Default for FtpAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl FtpAnalyzer {
    pub fn new() -> Self {
        FtpAnalyzer {
            logged: logged_commands(),
            lines: Default::default(),
            session: None,
            pending_reply: 0,
            auth_requested: None,
            tls_active: false,
            adat: None,
            confirmed: false,
            seen: StreamBytes::default(),
            orig_ended: false,
        }
    }

    /// Uses a specific set of logged commands instead of the process-wide configuration.
    pub fn with_logged_commands(logged: Arc<BTreeSet<String>>) -> Self {
        FtpAnalyzer { logged, ..Self::new() }
    }

    fn session(&mut self, ctx: &Ctx) -> &mut Session {
        self.session.get_or_insert_with(|| Session::new(ctx.ts, ctx.shared.ftp.linked))
    }

    fn process_line(&mut self, ctx: &mut Ctx, is_orig: bool, line: &[u8]) {
        if self.tls_active || line.is_empty() {
            return;
        }
        let forwarded = if is_orig { self.process_request(ctx, line) } else { self.process_reply_line(ctx, line) };
        // FTP.cc's `ForwardStream` at the end of `DeliverStream`: the ADAT exchange sees the line as it came.
        if forwarded
            && !self.tls_active
            && let Some(adat) = self.adat.as_deref_mut()
        {
            adat.line(ctx, is_orig, line);
        }
    }

    /// Returns whether the line reaches the end of Zeek's `DeliverStream` (and is passed on to child analyzers).
    fn process_request(&mut self, ctx: &mut Ctx, line: &[u8]) -> bool {
        let line = trim_start(line);
        let cmd_len = line.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(line.len());
        let (cmd, rest) = line.split_at(cmd_len);
        let arg = trim_start(rest);
        if !is_ftp_cmd(cmd) {
            if self.confirmed {
                ctx.weird("FTP_invalid_command", None, "FTP");
            }
            return false;
        }
        if cmd.len() > MAX_COMMAND_LENGTH {
            if self.confirmed {
                ctx.weird(
                    "FTP_max_command_length_exceeded",
                    Some(format!("{} > {MAX_COMMAND_LENGTH}", cmd.len())),
                    "FTP",
                );
            }
            return false;
        }
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm(SPEC.name);
        }
        let cmd = bytes_to_log_string(cmd).to_ascii_uppercase();
        // Zeek compares with strncmp over the command's length, so "AUT" counts as well.
        if "AUTH".starts_with(cmd.as_str()) {
            self.auth_requested = Some(arg.to_vec());
        }
        self.on_request(ctx, cmd, bytes_to_log_string(arg));
        true
    }

    /// Zeek's `ftp_request` event handler.
    fn on_request(&mut self, ctx: &mut Ctx, cmd: String, mut arg: String) {
        if let Some(s) = &self.session
            && let (Some(ca), Some(_)) = (&s.cmdarg, s.reply_code)
        {
            let seq = ca.seq;
            if self.session.as_mut().is_some_and(|s| s.pending.remove(&seq).is_some()) {
                self.log_message(ctx);
            }
        }
        let id_resp_h = ctx.id.resp_h;
        let s = self.session(ctx);
        if s.pending.len() < MAX_PENDING_COMMANDS {
            s.add_pending(ctx.ts, cmd.clone(), arg.clone());
        } else {
            let n = s.pending.len().to_string();
            ctx.weird("FTP_too_many_pending_commands", Some(n), "FTP");
        }
        match cmd.as_str() {
            "USER" => {
                truncate_logged(ctx, &mut arg, MAX_USER_LENGTH, "FTP_user_too_long");
                self.session(ctx).user = arg;
            }
            "PASS" => {
                truncate_logged(ctx, &mut arg, MAX_PASSWORD_LENGTH, "FTP_password_too_long");
                self.session(ctx).password = Some(arg);
            }
            "PORT" | "EPRT" => {
                let parsed =
                    if cmd == "PORT" { parse_ftp_port(arg.as_bytes()) } else { parse_eftp(Some(arg.as_bytes())) };
                if let Some((h, p)) = parsed {
                    let chan = DataChannel { passive: false, orig_h: id_resp_h, resp_h: h, resp_p: p };
                    self.session(ctx).set_expected_channel(ctx, chan);
                }
            }
            _ => {}
        }
    }

    /// Returns whether the line reaches the end of Zeek's `DeliverStream` (and is passed on to child analyzers).
    fn process_reply_line(&mut self, ctx: &mut Ctx, line: &[u8]) -> bool {
        let mut code = reply_code(line);
        let cont_resp;
        let msg: &[u8];
        if self.pending_reply != 0 {
            if code == self.pending_reply && line.get(3) == Some(&b' ') {
                msg = trim_start(&line[3..]);
                self.pending_reply = 0;
                cont_resp = false;
            } else {
                // An intermediate line: its text is passed on whole, without a reply code.
                msg = line;
                code = 0;
                cont_resp = true;
            }
        } else {
            cont_resp = line.get(3) == Some(&b'-');
            if let Some(reason) = reply_line_violation(code, line) {
                if self.seen.violation_counts() {
                    // FTP.cc passes the whole reply line along.
                    ctx.violation_with_data(reason, line);
                }
                return false;
            }
            if cont_resp {
                self.pending_reply = code;
                msg = trim_start(&line[4..]);
            } else {
                msg = trim_start(line.get(3..).unwrap_or_default());
            }
        }

        let starts_tls = code == 234 && self.auth_requested.as_deref() == Some(b"TLS".as_slice());
        if starts_tls {
            self.tls_active = true;
            ctx.start_tls();
        }
        if code == 334 && self.auth_requested.as_deref() == Some(b"GSSAPI".as_slice()) {
            // Zeek adds another SSL child each time; here a new exchange replaces the one before, whose TLS session
            // is logged first.
            if let Some(mut earlier) = self.adat.replace(Box::default()) {
                earlier.finish(ctx);
            }
        }
        self.on_reply(ctx, code, bytes_to_log_string(msg), cont_resp);
        if starts_tls {
            // Nothing after this is FTP; what Zeek logs at the end of the connection is final now, and the
            // engine may hand the stream to TLS without finishing this analyzer.
            self.log_pending(ctx);
        }
        true
    }

    /// Zeek's `ftp_reply` event handler.
    fn on_reply(&mut self, ctx: &mut Ctx, code: u64, msg: String, cont_resp: bool) {
        let id = *ctx.id;
        let s = self.session(ctx);
        // Intermediate lines of a multi-line reply are only paired with a command when they look like a
        // reply of their own (a server that never closed an earlier multi-line reply).
        if cont_resp && code == 0 && s.reply_code.is_some() && !looks_like_reply_line(msg.as_bytes()) {
            return;
        }
        let Some(mut cmdarg) = s.best_pending(code, &msg) else { return };
        s.reply_code = Some(code);
        s.reply_msg = Some(msg.clone());
        s.cmdarg = Some(cmdarg.clone());
        // Policy scripts' `ftp_reply` handlers (priority 3, after main.zeek's) see every reply line that carries a
        // code, the first line of a multi-line reply included.
        if code != 0 {
            report_reply(ctx, &cmdarg, code);
        }
        if cont_resp {
            return;
        }

        match (code, cmdarg.cmd.as_str()) {
            (150, "RETR") | (213, "SIZE") => s.file_size = Some(extract_last_count(&msg)),
            (227 | 229, "PASV" | "EPSV") => {
                let parsed = if code == 227 { parse_ftp_pasv(msg.as_bytes()) } else { parse_ftp_epsv(msg.as_bytes()) };
                if let Some((mut h, p)) = parsed {
                    if code == 229 && h == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
                        h = id.resp_h;
                    }
                    let chan = DataChannel { passive: true, orig_h: id.orig_h, resp_h: h, resp_p: p };
                    s.set_expected_channel(ctx, chan);
                }
            }
            _ => {}
        }

        if is_directory_reply(&cmdarg.cmd, code) && !cmdarg.cwd_consumed {
            cmdarg.cwd_consumed = true;
            if let Some(p) = s.pending.get_mut(&cmdarg.seq) {
                p.cwd_consumed = true;
            }
            s.cwd = match cmdarg.cmd.as_str() {
                "CWD" => build_path_compressed(&s.cwd, &cmdarg.arg),
                "CDUP" => build_path_compressed(&s.cwd, "/.."),
                _ => extract_path(&msg),
            };
            s.cmdarg = Some(cmdarg.clone());
        }

        // With several commands queued, log this pair now instead of waiting for the next command.
        if s.pending.len() > 1 {
            s.pending.remove(&cmdarg.seq);
            self.log_message(ctx);
        }
    }

    /// Zeek's `ftp_message`: logs the current command/reply pair (if its command is logged) and resets
    /// the per-transfer fields.
    fn log_message(&mut self, ctx: &mut Ctx) {
        let Some(s) = self.session.as_mut() else { return };
        let Some(ca) = s.cmdarg.clone() else { return };
        let mut arg = if FILE_CMDS.contains(&ca.cmd.as_str()) {
            build_url_ftp(ctx.id.resp_h, &s.cwd, &ca.arg)
        } else {
            ca.arg.clone()
        };
        truncate_logged(ctx, &mut arg, MAX_ARG_LENGTH, "FTP_arg_too_long");
        if let Some(msg) = s.reply_msg.as_mut() {
            truncate_logged(ctx, msg, MAX_REPLY_MSG_LENGTH, "FTP_reply_msg_too_long");
        }
        if ca.cmd == "PASS" && s.should_hide_password() {
            arg = "<hidden>".into();
        }
        if s.password.is_some() && s.should_hide_password() {
            s.password = Some("<hidden>".into());
        }
        let taken = with_report(&s.report, |r| r.take(ctx.ts));
        let file_size = s.file_size.take();
        let data_channel = s.data_channel.take();
        if !self.logged.contains(&ca.cmd) {
            return;
        }
        let mut v = ctx.conn_columns(ca.ts);
        v.push(Value::str(s.user.clone()));
        v.push(Value::opt_str(s.password.clone()));
        v.push(Value::str(ca.cmd));
        v.push(if arg.is_empty() { Value::Unset } else { Value::Str(arg) });
        let (fuid, mime_type) = match &taken {
            Taken::Now { fuid, mime_type } => (fuid.clone(), mime_type.clone()),
            Taken::Later { .. } => (None, None),
        };
        v.push(Value::opt_str(mime_type));
        v.push(Value::opt_count(file_size));
        v.push(Value::opt_count(s.reply_code));
        v.push(Value::opt_str(s.reply_msg.clone()));
        match data_channel {
            Some(c) => {
                v.extend([Value::Bool(c.passive), Value::Addr(c.orig_h), Value::Addr(c.resp_h), Value::Port(c.resp_p)])
            }
            None => v.extend([Value::Unset, Value::Unset, Value::Unset, Value::Unset]),
        }
        v.push(Value::opt_str(fuid));
        match taken {
            Taken::Now { .. } => ctx.log(&FTP_LOG, v),
            Taken::Later { after } => ctx.shared.ftp.hold(v, s.report.clone(), after, ctx.ts),
        }
    }
}

impl Analyzer for FtpAnalyzer {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.tls_active {
            return;
        }
        self.seen.add(data.len() as u64);
        self.split_lines(ctx, is_orig, data);
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, is_orig: bool, len: u64) {
        self.seen.add(len);
        self.lines[usize::from(is_orig)].clear_partial_line();
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        // The NVT's `EndpointEOF`: a last line without LF is delivered as a line.
        if self.lines[usize::from(is_orig)].has_partial_line() && !self.tls_active {
            self.split_lines(ctx, is_orig, b"\n");
        }
        self.orig_ended |= is_orig;
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        // `FTP_Analyzer::Done`: a request line still partial once the originator closed.
        if self.lines[1].has_partial_line() && self.orig_ended && !self.tls_active {
            ctx.weird("partial_ftp_request", None, "FTP");
        }
        self.log_pending(ctx);
        if let Some(adat) = self.adat.as_deref_mut() {
            adat.finish(ctx);
        }
    }
}

impl FtpAnalyzer {
    /// The direction's lines through its NVT, with the NVT's weirds.
    fn split_lines(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        let mut lines = std::mem::take(&mut self.lines[usize::from(is_orig)]);
        lines.feed(data, |event| match event {
            NvtEvent::Line(line) => self.process_line(ctx, is_orig, line),
            NvtEvent::Weird(name) => ctx.weird(name, None, "NVT"),
            NvtEvent::LimitWeird(name, limit) => {
                ctx.weird(name, Some(limit.to_string()), "NVT");
                ctx.partial(is_orig);
            }
        });
        self.lines[usize::from(is_orig)] = lines;
    }

    /// Zeek's `finalize_ftp`: whatever is still pending is logged with the last reply seen.
    fn log_pending(&mut self, ctx: &mut Ctx) {
        let pending: Vec<CmdArg> =
            self.session.as_ref().map(|s| s.pending.values().cloned().collect()).unwrap_or_default();
        for ca in pending {
            if let Some(s) = self.session.as_mut() {
                s.cmdarg = Some(ca);
            }
            self.log_message(ctx);
        }
        if let Some(s) = self.session.as_mut() {
            s.pending.clear();
        }
    }
}

fn truncate_logged(ctx: &mut Ctx, s: &mut String, max: usize, weird: &'static str) {
    if s.len() > max {
        ctx.weird(weird, Some(s.len().to_string()), "FTP");
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// At least three printable, non-space bytes, like Zeek's `is_ftp_cmd`.
fn is_ftp_cmd(cmd: &[u8]) -> bool {
    cmd.len() >= 3 && cmd.iter().all(|&b| b.is_ascii_graphic())
}

fn reply_code(line: &[u8]) -> u64 {
    match line {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            u64::from(a - b'0') * 100 + u64::from(b - b'0') * 10 + u64::from(c - b'0')
        }
        _ => 0,
    }
}

/// Why a reply line that starts a reply is not FTP (Zeek's analyzer reports these as violations): no code, a code
/// below 100, or a code followed by something else than a space or a dash.
fn reply_line_violation(code: u64, line: &[u8]) -> Option<&'static str> {
    match code {
        0 => Some("non-numeric reply code"),
        1..100 => Some("invalid reply code"),
        _ if line.len() > 3 && !matches!(line[3], b' ' | b'-') => Some("invalid reply line"),
        _ => None,
    }
}

/// `/^[1-9][0-9]{2} [[:print:]]{10}.*/`
fn looks_like_reply_line(msg: &[u8]) -> bool {
    msg.len() >= 14
        && (b'1'..=b'9').contains(&msg[0])
        && msg[1].is_ascii_digit()
        && msg[2].is_ascii_digit()
        && msg[3] == b' '
        && msg[4..14].iter().all(|b| (0x20..0x7f).contains(b))
}

fn is_directory_reply(cmd: &str, code: u64) -> bool {
    matches!((cmd, code), ("CWD", 250) | ("CDUP", 200 | 250) | ("PWD" | "XPWD", 257))
}

/// Zeek's `FTP::cmd_reply_code`: which reply codes each command can get.
fn reply_code_expected(cmd: &str, code: u64) -> bool {
    let codes: &[u64] = match cmd {
        "<init>" => &[0, 120, 220, 421],
        "USER" => &[230, 331, 332, 421, 530, 500, 501],
        "PASS" => &[230, 202, 332, 421, 530, 500, 501, 503],
        "ACCT" => &[230, 202, 421, 530, 500, 501, 503],
        "CWD" => &[250, 421, 500, 501, 502, 530, 550],
        "CDUP" => &[200, 250, 421, 500, 501, 502, 530, 550],
        "SMNT" => &[202, 250, 421, 500, 501, 502, 530, 550],
        "REIN" => &[120, 220, 421, 500, 502],
        "QUIT" => &[0, 221, 500],
        "PORT" => &[200, 421, 500, 501, 530],
        "PASV" => &[227, 421, 500, 501, 502, 530],
        "MODE" => &[200, 421, 500, 501, 502, 504, 530],
        "STRU" => &[200, 421, 500, 501, 504, 530],
        "TYPE" => &[200, 421, 500, 501, 504, 530],
        "ALLO" => &[200, 202, 421, 500, 501, 504, 530],
        "REST" => &[200, 350, 421, 500, 501, 502, 530],
        "STOR" | "STOU" => {
            &[110, 125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 452, 553, 500, 501, 530, 550]
        }
        "RETR" => &[110, 125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 530, 550],
        "LIST" | "NLST" => &[125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 502, 530, 550],
        "APPE" => &[125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 550, 452, 553, 500, 501, 502, 530],
        "RNFR" => &[350, 421, 450, 550, 500, 501, 502, 530],
        "RNTO" => &[250, 421, 532, 553, 500, 501, 502, 503, 530],
        "DELE" => &[250, 421, 450, 550, 500, 501, 502, 530],
        "RMD" => &[250, 421, 500, 501, 502, 530, 550],
        "MKD" => &[257, 421, 500, 501, 502, 530, 550],
        "PWD" => &[257, 421, 500, 501, 502, 550],
        "ABOR" => &[225, 226, 421, 500, 501, 502],
        "SYST" => &[215, 421, 500, 501, 502, 530],
        "STAT" => &[211, 212, 213, 421, 450, 500, 501, 502, 530],
        "HELP" => &[200, 211, 214, 421, 500, 501, 502],
        "SITE" => &[200, 202, 214, 500, 501, 502, 530],
        "NOOP" => &[200, 421, 500],
        "LPRT" => &[500, 501, 521],
        "FEAT" => &[211, 500, 502],
        "OPTS" => &[200, 451, 501],
        "EPSV" => &[229, 500, 501],
        "EPRT" => &[200, 500, 501, 522],
        "SIZE" | "MDTM" => &[213, 500, 501, 550],
        "MLST" | "MLSD" => &[150, 226, 250, 500, 501, 550],
        "CLNT" => &[200, 500],
        "MACB" => &[200, 500, 550],
        "<missing>" => &[0],
        _ => &[],
    };
    codes.contains(&code)
}

/// Zeek's `extract_count(s, F)`: the last run of digits in `s`, or 0.
fn extract_last_count(s: &str) -> u64 {
    s.split(|c: char| !c.is_ascii_digit()).rfind(|run| !run.is_empty()).and_then(|run| run.parse().ok()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------------
// PORT / PASV / EPRT / EPSV (Zeek's functions.bif)
// ---------------------------------------------------------------------------------------------------

/// C's `strtol` on a byte string: skips leading whitespace, reads an optional sign and digits. Returns the
/// value and how many bytes were consumed (0 when there are no digits).
fn strtol(s: &[u8]) -> (i64, usize) {
    let ws = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let mut i = ws;
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = s[i.min(s.len())..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return (0, 0);
    }
    let value = s[i..i + digits].iter().fold(0i64, |acc, d| acc.saturating_mul(10).saturating_add(i64::from(d - b'0')));
    (if negative { -value } else { value }, i + digits)
}

/// `h1,h2,h3,h4,p1,p2` as `sscanf("%d,%d,%d,%d,%d,%d")` reads it.
fn parse_ftp_port(s: &[u8]) -> Option<(IpAddr, u16)> {
    if s.len() < 11 {
        return None;
    }
    let mut rest = s;
    let mut nums = [0i64; 6];
    for (i, n) in nums.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(b",")?;
        }
        let (v, used) = strtol(rest);
        if used == 0 {
            return None;
        }
        *n = v;
        rest = &rest[used..];
    }
    if nums.iter().any(|n| !(0..=255).contains(n)) {
        return None;
    }
    let b = nums.map(|n| n as u8);
    Some((IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])), u16::from_be_bytes([b[4], b[5]])))
}

/// Zeek's `parse_ftp_pasv`: the six numbers after `(`, after `PORT`, or around the first comma.
fn parse_ftp_pasv(msg: &[u8]) -> Option<(IpAddr, u16)> {
    let start = if let Some(p) = msg.iter().position(|&b| b == b'(') {
        p + 1
    } else if let Some(p) = msg.windows(4).position(|w| w == b"PORT") {
        p + 5
    } else if let Some(p) = msg.iter().position(|&b| b == b',') {
        p - msg[..p].iter().rev().take_while(|b| b.is_ascii_digit()).count()
    } else {
        return None;
    };
    parse_ftp_port(msg.get(start..)?)
}

fn parse_ftp_epsv(msg: &[u8]) -> Option<(IpAddr, u16)> {
    let start = msg.iter().position(|&b| b == b'(')?;
    parse_eftp(Some(&msg[start + 1..]))
}

/// `<d><net-prt><d><net-addr><d><tcp-port><d>` (RFC 2428), with the quirks of Zeek's `parse_eftp`: an empty
/// address is the unspecified IPv6 address, and a missing port delimiter leaves port 0 but valid.
fn parse_eftp(line: Option<&[u8]>) -> Option<(IpAddr, u16)> {
    let line = trim_start(line?);
    let (&delim, mut rest) = line.split_first()?;
    let mut good = true;
    let mut addr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let (_, used) = strtol(rest);
    if rest.get(used) != Some(&delim) {
        good = false;
    }
    rest = &rest[used..];
    if !rest.is_empty() {
        rest = &rest[1..];
    }
    if let Some(&first) = rest.first()
        && first != delim
    {
        let end = rest.iter().position(|&b| b == delim).unwrap_or(rest.len());
        match std::str::from_utf8(&rest[..end]).ok().and_then(|s| s.parse::<IpAddr>().ok()) {
            Some(a) => {
                addr = a;
                good = true;
            }
            None => good = false,
        }
    }
    let mut port = 0u16;
    if let Some(p) = rest.iter().position(|&b| b == delim) {
        let after = &rest[p + 1..];
        let (v, used) = strtol(after);
        if after.get(used) != Some(&delim) {
            good = false;
        }
        match u16::try_from(v) {
            Ok(v) => port = v,
            Err(_) => good = false,
        }
    }
    good.then_some((addr, port))
}

// ---------------------------------------------------------------------------------------------------
// Paths and URLs (Zeek's base/utils/paths.zeek and ftp/utils.zeek)
// ---------------------------------------------------------------------------------------------------

/// `absolute_path_pat`: `/…` or a drive letter followed by a slash or backslash.
fn is_absolute_path(p: &str) -> bool {
    let b = p.as_bytes();
    b.first() == Some(&b'/')
        || (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'/' | b'\\'))
}

fn build_path(dir: &str, file_name: &str) -> String {
    if is_absolute_path(file_name) || dir.is_empty() {
        return file_name.to_string();
    }
    let sep = if dir.ends_with('/') { "" } else { "/" };
    format!("{dir}{sep}{file_name}")
}

pub fn build_path_compressed(dir: &str, file_name: &str) -> String {
    compress_path(&build_path(dir, file_name))
}

/// Zeek's `compress_path`: removes `.` components and `..` with the component they cancel, and repeated
/// or trailing slashes. A leading `.` or `~…` component is kept, as are `..` that cannot be resolved.
pub fn compress_path(path: &str) -> String {
    if !path.contains("/.") && !path.contains("//") {
        return match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p.to_string(),
            _ => path.to_string(),
        };
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for (i, comp) in path.split('/').enumerate() {
        match comp {
            "" => {}
            "." if i == 0 => parts.push("."),
            "." => {}
            ".." => match parts.last() {
                Some(&".") => *parts.last_mut().expect("checked non-empty") = "..",
                Some(&"..") | None => parts.push(".."),
                Some(last) if parts.len() == 1 && last.starts_with('~') => parts.push(".."),
                Some(_) => {
                    parts.pop();
                }
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute { format!("/{joined}") } else { joined }
}

/// Zeek's `extract_path`: the first quoted absolute path in `input`, else the first unquoted one.
pub fn extract_path(input: &str) -> String {
    let b = input.as_bytes();
    let starts_abs = |i: usize| is_absolute_path(&input[i..]);
    // Quoted form: "…" whose content is an absolute path.
    let mut i = 0;
    while let Some(off) = input[i..].find('"') {
        let open = i + off;
        if open + 1 < b.len()
            && starts_abs(open + 1)
            && let Some(close) = input[open + 1..].find('"')
        {
            return input[open + 1..open + 1 + close].to_string();
        }
        i = open + 1;
    }
    // Unquoted: an absolute path up to a quote or an unescaped space.
    for start in 0..b.len() {
        if !input.is_char_boundary(start) || !starts_abs(start) {
            continue;
        }
        let mut end = start + 1;
        while end < b.len() {
            match b[end] {
                b'"' => break,
                b' ' if b[end - 1] != b'\\' => break,
                _ => end += 1,
            }
        }
        return input[start..end].to_string();
    }
    String::new()
}

/// `addr_to_uri`: IPv6 addresses in brackets.
fn addr_to_uri(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `FTP::build_url_ftp`: `ftp://<server>/<cwd>/<arg>`.
pub fn build_url_ftp(server: IpAddr, cwd: &str, arg: &str) -> String {
    let path = build_path_compressed(cwd, arg);
    let sep = if path.starts_with('/') { "" } else { "/" };
    format!("ftp://{}{sep}{path}", addr_to_uri(server))
}

// ---------------------------------------------------------------------------------------------------
// Data channel
// ---------------------------------------------------------------------------------------------------

/// An FTP data connection: its bytes are one file per direction (`FTP_DATA` in files.log), reported back
/// to the control session that announced the connection.
#[derive(Default)]
pub struct FtpDataAnalyzer {
    confirmed: bool,
    report: Option<Option<SharedReport>>,
    files: [Option<FileTransfer>; 2],
}

impl FtpDataAnalyzer {
    fn report(&mut self, ctx: &Ctx) -> Option<SharedReport> {
        self.report.get_or_insert_with(|| FTP_DATA_EXPECTED.lookup(ctx.id.resp_h, ctx.id.resp_p, ctx.ts)).clone()
    }

    /// The file for this direction, created on its first byte (only for announced data channels, as
    /// Zeek's `FTP::get_file_handle` returns no handle otherwise).
    fn file(&mut self, ctx: &mut Ctx, is_orig: bool) -> Option<&mut FileTransfer> {
        let report = self.report(ctx)?;
        let slot = &mut self.files[usize::from(is_orig)];
        if slot.is_none() {
            let file = FileTransfer::new(ctx, "FTP_DATA", is_orig);
            with_report(&report, |r| r.set_fuid(ctx.ts, file.fuid.clone()));
            *slot = Some(file);
        }
        slot.as_mut()
    }

    /// Sniffs what has arrived so far and tells the control session (Zeek identifies a short file when
    /// its data ends).
    fn report_mime(&mut self, ctx: &mut Ctx, is_orig: bool) {
        let Some(file) = self.files[usize::from(is_orig)].as_mut() else { return };
        let mime = file.mime_type();
        if let Some(report) = self.report(ctx) {
            with_report(&report, |r| r.set_mime_type(ctx.ts, mime));
        }
    }

    fn end_file(&mut self, ctx: &mut Ctx, is_orig: bool) {
        self.report_mime(ctx, is_orig);
        if let Some(file) = self.files[usize::from(is_orig)].take() {
            file.finish(ctx);
        }
    }
}

impl Analyzer for FtpDataAnalyzer {
    fn spec(&self) -> &'static AnalyzerSpec {
        &DATA_SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm(DATA_SPEC.name);
        }
        if data.is_empty() {
            return;
        }
        let ts = ctx.ts;
        let Some(file) = self.file(ctx, is_orig) else { return };
        let was_sniffed = file.sniffed().is_some();
        file.data(ts, data);
        // Zeek's `file_sniff` sets the control session's mime_type as soon as the BOF buffer is full.
        if let (false, Some(mime)) = (was_sniffed, file.sniffed())
            && let Some(report) = self.report(ctx)
        {
            with_report(&report, |r| r.set_mime_type(ts, mime));
        }
    }

    fn undelivered(&mut self, ctx: &mut Ctx, is_orig: bool, len: u64) {
        let ts = ctx.ts;
        if let Some(file) = self.files[usize::from(is_orig)].as_mut() {
            file.gap(ts, len);
        }
    }

    /// The file itself ends only with the connection (Zeek's `File_Analyzer::Done`): data may still follow
    /// a FIN the reassembler saw early.
    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        self.report_mime(ctx, is_orig);
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.end_file(ctx, true);
        self.end_file(ctx, false);
        if self.report.as_ref().is_some_and(Option::is_some) {
            FTP_DATA_EXPECTED.remove(ctx.id.resp_h, ctx.id.resp_p);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Fuzzing
// ---------------------------------------------------------------------------------------------------

/// A reply line with a code and the command it answers (Zeek's `ftp_reply` with `c$ftp$cmdarg` as main.zeek's
/// handler set it), which no log carries for commands outside `FTP::logged_commands` (`SITE`).
#[derive(Debug, Clone, PartialEq)]
pub struct FtpReply {
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub cmd: String,
    pub arg: String,
    pub code: u64,
}

/// Where [`FtpReply`]s go; unset by default (nothing is collected).
static REPLY_SINK: RwLock<Option<fn(FtpReply)>> = RwLock::new(None);

/// Registers the consumer of command/reply pairs (the detections' `FTP::Site_Exec_Success`).
pub fn set_reply_sink(sink: fn(FtpReply)) {
    *REPLY_SINK.write().unwrap_or_else(PoisonError::into_inner) = Some(sink);
}

fn report_reply(ctx: &Ctx, cmdarg: &CmdArg, code: u64) {
    let sink = *REPLY_SINK.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(sink) = sink {
        let (cmd, arg) = (cmdarg.cmd.clone(), cmdarg.arg.clone());
        sink(FtpReply { ts: ctx.ts, uid: ctx.uid.to_string(), id: *ctx.id, cmd, arg, code });
    }
}

/// Drives the control and data analyzers over arbitrary bytes: the first byte picks split points, the
/// rest alternates between directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut FtpAnalyzer::new(), Proto::Tcp, 21, data);
    super::fuzzing::drive(&mut FtpDataAnalyzer::default(), Proto::Tcp, 20, data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Action;
    use crate::analyzers::testing::Harness;

    fn col(r: &crate::logs::LogRecord, name: &str) -> String {
        r.get(name).expect("column exists").to_tsv()
    }

    /// The control session of the ftp-ipv4 oracle trace, up to the active-mode LIST.
    const IPV4_SESSION: &[(bool, &[u8])] = &[
        (false, b"220 ftp.NetBSD.org FTP server (NetBSD-ftpd 20100320) ready.\r\n"),
        (true, b"USER anonymous\r\n"),
        (false, b"331 Guest login ok, type your name as password.\r\n"),
        (true, b"PASS test\r\n"),
        (false, b"230-\r\n    The NetBSD Project FTP Server\r\n230-\r\n    EXPORT NOTICE\r\n230 Guest login ok, access restrictions apply.\r\n"),
        (true, b"SYST\r\n"),
        (false, b"215 UNIX Type: L8 Version: NetBSD-ftpd 20100320\r\n"),
        (true, b"PASV\r\n"),
        (false, b"227 Entering Passive Mode (199,233,217,249,221,90)\r\n"),
        (true, b"LIST\r\n"),
        (false, b"150 Opening ASCII mode data connection for '/bin/ls'.\r\n226 Transfer complete.\r\n"),
        (true, b"TYPE I\r\n"),
        (false, b"200 Type set to I.\r\n"),
        (true, b"PASV\r\n"),
        (false, b"227 Entering Passive Mode (199,233,217,249,221,91)\r\n"),
        (true, b"RETR robots.txt\r\n"),
        (false, b"150 Opening BINARY mode data connection for 'robots.txt' (77 bytes).\r\n"),
        (false, b"226 Transfer complete.\r\n"),
        (true, b"PORT 141,142,220,235,131,46\r\n"),
        (false, b"200 PORT command successful.\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 Goodbye.\r\n"),
    ];

    fn run_session(h: &mut Harness, a: &mut FtpAnalyzer, script: &[(bool, &[u8])]) {
        for (i, (is_orig, bytes)) in script.iter().enumerate() {
            h.run(100.0 + i as f64, |ctx| a.deliver(ctx, *is_orig, bytes));
        }
        h.finish(a);
    }

    #[test]
    fn logs_ftp_ipv4_commands_like_zeek() {
        let mut h = Harness::new(Proto::Tcp, 21);
        h.id.resp_h = "199.233.217.249".parse().unwrap();
        h.id.orig_h = "141.142.220.235".parse().unwrap();
        let mut a = FtpAnalyzer::with_logged_commands(logged_commands());
        run_session(&mut h, &mut a, IPV4_SESSION);
        let logged = h.logged("ftp");
        let summary: Vec<String> = logged
            .iter()
            .map(|r| {
                [
                    "command",
                    "arg",
                    "user",
                    "password",
                    "file_size",
                    "reply_code",
                    "data_channel.passive",
                    "data_channel.resp_p",
                ]
                .iter()
                .map(|c| col(r, c))
                .collect::<Vec<_>>()
                .join(" ")
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                "PASV - anonymous test - 227 T 56666",
                "PASV - anonymous test - 227 T 56667",
                "RETR ftp://199.233.217.249/./robots.txt anonymous test 77 226 - -",
                "PORT 141,142,220,235,131,46 anonymous test - 200 F 33582",
            ]
        );
        assert_eq!(col(logged[0], "reply_msg"), "Entering Passive Mode (199,233,217,249,221,90)");
        assert_eq!(col(logged[0], "data_channel.orig_h"), "141.142.220.235");
        assert_eq!(col(logged[3], "data_channel.orig_h"), "199.233.217.249");
        assert_eq!(col(logged[0], "ts"), "107.000000");
        assert!(h.actions.contains(&Action::Confirm("ftp")));
        let expects = h.actions.iter().filter(|a| matches!(a, Action::Expect(e) if e.service == "ftp-data")).count();
        assert_eq!(expects, 3);
    }

    #[test]
    fn auth_tls_switches_to_tls_and_logs_init_when_configured() {
        let mut h = Harness::new(Proto::Tcp, 21);
        let logged: BTreeSet<String> =
            ["<init>", "AUTH"].into_iter().chain(DEFAULT_LOGGED_COMMANDS.iter().copied()).map(String::from).collect();
        let mut a = FtpAnalyzer::with_logged_commands(Arc::new(logged));
        let script: &[(bool, &[u8])] = &[
            (false, b"220 (vsFTPd 3.0.5)\r\n"),
            (true, b"AUTH TLS\r\n"),
            (false, b"234 Proceed with negotiation.\r\n"),
            (true, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n"),
        ];
        run_session(&mut h, &mut a, script);
        let rows: Vec<String> = h
            .logged("ftp")
            .iter()
            .map(|r| format!("{} {} {} {}", col(r, "user"), col(r, "command"), col(r, "arg"), col(r, "reply_msg")))
            .collect();
        assert_eq!(rows, vec!["<unknown> <init> - (vsFTPd 3.0.5)", "<unknown> AUTH TLS Proceed with negotiation."]);
        assert!(h.actions.contains(&Action::StartTls));
    }

    #[test]
    fn cwd_tracking_builds_urls() {
        let mut h = Harness::new(Proto::Tcp, 21);
        let mut a = FtpAnalyzer::new();
        let script: &[(bool, &[u8])] = &[
            (false, b"220 FTP ready\r\n"),
            (true, b"USER bob\r\n"),
            (false, b"331 Password required\r\n"),
            (true, b"PASS secret\r\n"),
            (false, b"230 Logged in\r\n"),
            (true, b"CWD pub/data\r\n"),
            (false, b"250 CWD command successful\r\n"),
            (true, b"CDUP\r\n"),
            (false, b"250 CDUP ok\r\n"),
            (true, b"DELE old.txt\r\n"),
            (false, b"250 Deleted\r\n"),
            (true, b"PWD\r\n"),
            (false, b"257 \"/home/bob\" is current directory\r\n"),
            (true, b"STOR new.txt\r\n"),
            (false, b"226 Transfer complete\r\n"),
        ];
        run_session(&mut h, &mut a, script);
        let rows: Vec<String> = h
            .logged("ftp")
            .iter()
            .map(|r| format!("{} {} {}", col(r, "command"), col(r, "arg"), col(r, "password")))
            .collect();
        assert_eq!(
            rows,
            vec!["DELE ftp://192.0.2.1/../old.txt <hidden>", "STOR ftp://192.0.2.1/home/bob/new.txt <hidden>"]
        );
    }

    #[test]
    fn epsv_and_multiline_150_like_bigtransfer() {
        let mut h = Harness::new(Proto::Tcp, 21);
        let mut a = FtpAnalyzer::new();
        let script: &[(bool, &[u8])] = &[
            (false, b"220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n220 You will be disconnected.\r\n"),
            (true, b"USER ftp\r\n"),
            (false, b"230 Anonymous user logged in\r\n"),
            (true, b"PWD\r\n"),
            (false, b"257 \"/\" is your current location\r\n"),
            (true, b"SIZE rand.txt\r\n"),
            (false, b"213 5416666670\r\n"),
            (true, b"EPSV\r\n"),
            (false, b"229 Extended Passive mode OK (|||37150|)\r\n"),
            (true, b"RETR rand.txt\r\n"),
            (false, b"150-Accepted data connection\r\n150 5289713.5 kbytes to download\r\n"),
            (false, b"226-File successfully transferred\r\n226 150.492 seconds (measured here), 34.33 Mbytes per second\r\n"),
            (true, b"QUIT\r\n"),
        ];
        run_session(&mut h, &mut a, script);
        let rows: Vec<String> = h
            .logged("ftp")
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    col(r, "command"),
                    col(r, "arg"),
                    col(r, "file_size"),
                    col(r, "data_channel.resp_h"),
                    col(r, "reply_msg")
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                "EPSV - - 192.0.2.1 Extended Passive mode OK (|||37150|)",
                "RETR ftp://192.0.2.1/rand.txt 5 - 150.492 seconds (measured here), 34.33 Mbytes per second",
            ]
        );
    }

    #[test]
    fn data_channel_reports_file_to_control_session() {
        let mut h = Harness::new(Proto::Tcp, 21);
        h.id.resp_h = "192.0.2.77".parse().unwrap();
        let mut a = FtpAnalyzer::new();
        let head: &[(bool, &[u8])] = &[
            (false, b"220 FTP\r\n"),
            (true, b"USER anonymous\r\n"),
            (false, b"230 ok\r\n"),
            (true, b"PASV\r\n"),
            (false, b"227 Entering Passive Mode (192,0,2,77,200,1)\r\n"),
            (true, b"RETR robots.txt\r\n"),
            (false, b"150 Opening BINARY mode data connection for 'robots.txt' (29 bytes).\r\n"),
        ];
        for (is_orig, bytes) in head {
            h.deliver(&mut a, *is_orig, bytes);
        }
        let mut data_h = Harness::new(Proto::Tcp, 51201);
        data_h.id.resp_h = "192.0.2.77".parse().unwrap();
        let mut d = FtpDataAnalyzer::default();
        data_h.deliver(&mut d, false, b"User-agent: *\nDisallow: /x\n");
        data_h.finish(&mut d);
        let files = data_h.logged("files");
        assert_eq!(files.len(), 1);
        assert_eq!(col(files[0], "source"), "FTP_DATA");
        assert_eq!(col(files[0], "mime_type"), "text/plain");
        assert_eq!(col(files[0], "is_orig"), "F");
        assert_eq!(col(files[0], "seen_bytes"), "27");
        h.deliver(&mut a, false, b"226 Transfer complete.\r\n");
        h.deliver(&mut a, true, b"QUIT\r\n");
        let retr = h.logged("ftp").into_iter().find(|r| col(r, "command") == "RETR").expect("RETR logged");
        assert_eq!(col(retr, "mime_type"), "text/plain");
        assert_eq!(col(retr, "fuid"), col(files[0], "fuid"));
        assert!(data_h.actions.contains(&Action::Confirm("ftp-data")));
    }

    /// A cluster worker: the RETR record waits for the report of a data channel analysed on another worker, and
    /// takes only what that channel reported before the record was logged.
    #[test]
    fn records_wait_for_data_channels_on_other_workers() {
        let mut control = Harness::new(Proto::Tcp, 21);
        control.id.resp_h = "192.0.2.88".parse().unwrap();
        control.shared.ftp.link(true);
        let mut a = FtpAnalyzer::new();
        let script: &[(bool, &[u8])] = &[
            (false, b"220 FTP\r\n"),
            (true, b"USER anonymous\r\n"),
            (false, b"230 ok\r\n"),
            (true, b"PASV\r\n"),
            (false, b"227 Entering Passive Mode (192,0,2,88,200,1)\r\n"),
            (true, b"RETR robots.txt\r\n"),
            (false, b"150 Opening BINARY mode data connection for 'robots.txt' (29 bytes).\r\n"),
            (false, b"226 Transfer complete.\r\n"),
            (true, b"QUIT\r\n"),
        ];
        for (i, (is_orig, bytes)) in script.iter().enumerate() {
            control.run(100.0 + i as f64, |ctx| a.deliver(ctx, *is_orig, bytes));
        }
        assert!(control.logged("ftp").is_empty(), "records wait for the data channel's reports");
        assert!(control.shared.ftp.held() > 0);

        // The other worker: the expectation made it register the channel; its data connection reports.
        let (data_h, data_p) = ("192.0.2.89".parse().unwrap(), 51202);
        let channel = expect_remote_channel(data_h, data_p, 104.0).expect("no control session here");
        let mut data = Harness::new(Proto::Tcp, data_p);
        data.id.resp_h = data_h;
        let mut d = FtpDataAnalyzer::default();
        data.run(106.5, |ctx| d.deliver(ctx, false, b"User-agent: *\nDisallow: /x\n"));
        data.run(106.6, |ctx| d.finish(ctx));
        let updates = channel.take_updates();
        assert!(updates.iter().any(|u| matches!(u.change, ReportChange::Fuid(_))), "{updates:?}");
        assert!(!channel.is_done(106.6), "its analyzer may still report");
        drop(d);
        assert!(channel.is_done(106.6), "the data connection ended");

        // Its reports reach the control worker, with one that came after the RETR was logged (at the QUIT, 108).
        let (resp_h, resp_p) = ("192.0.2.88".parse().unwrap(), 51201);
        for u in updates {
            assert!(apply_remote_update(resp_h, resp_p, u));
        }
        let late = ReportUpdate { ts: 108.5, change: ReportChange::MimeType(Some("image/png".into())) };
        assert!(apply_remote_update(resp_h, resp_p, late));
        let settled_before_quit = control.shared.ftp.release(108.0);
        assert!(settled_before_quit.iter().all(|r| col(r, "command") != "RETR"), "not settled past the QUIT yet");
        let released = control.shared.ftp.release(f64::INFINITY);
        let retr = released.iter().find(|r| col(r, "command") == "RETR").expect("RETR logged");
        assert_eq!(col(retr, "mime_type"), "text/plain");
        let files = data.logged("files");
        assert_eq!(col(retr, "fuid"), col(files[0], "fuid"));
        assert_eq!(control.shared.ftp.held(), 0);
    }

    /// Feeds `script` as the engine would: a violation detaches the analyzer, so nothing after it is delivered; the
    /// connection's end still finishes it. Returns the violation's reason and data.
    fn run_until_violation(
        h: &mut Harness,
        a: &mut FtpAnalyzer,
        script: &[(bool, &[u8])],
    ) -> Option<(String, Option<Box<[u8]>>)> {
        let violation = |h: &Harness| {
            h.actions.iter().find_map(|a| match a {
                Action::Violation(r, data) => Some((r.clone(), data.clone())),
                _ => None,
            })
        };
        for (i, (is_orig, bytes)) in script.iter().enumerate() {
            if violation(h).is_some() {
                break;
            }
            h.run(100.0 + i as f64, |ctx| a.deliver(ctx, *is_orig, bytes));
        }
        h.finish(a);
        violation(h)
    }

    fn with_extra_logged(extra: &[&str]) -> FtpAnalyzer {
        let logged = extra.iter().copied().chain(DEFAULT_LOGGED_COMMANDS.iter().copied()).map(String::from).collect();
        FtpAnalyzer::with_logged_commands(Arc::new(logged))
    }

    fn rows(h: &Harness, cols: &[&str]) -> Vec<String> {
        h.logged("ftp").iter().map(|r| cols.iter().map(|c| col(r, c)).collect::<Vec<_>>().join(" ")).collect()
    }

    /// Zeek's ftp-missing-reply-code, ftp-invalid-reply-code and ftp-missing-space-after-reply-code tests: a reply
    /// line that is not FTP is a violation (the analyzer goes away, the pending command is logged at the end with
    /// the last reply seen). The violation's data is the reply line without its end (analyzer.log's `failure_data`:
    /// `SYST not supported`, `99 PASV invalid` in the baselines).
    #[test]
    fn malformed_reply_lines_are_violations_like_zeek() {
        for (command, bad_reply, reason, logged_arg) in [
            ("SYST", &b"SYST not supported\r\n"[..], "non-numeric reply code", "-"),
            ("PASV", b"99 PASV invalid\r\n", "non-numeric reply code", "-"),
            ("PASV", b"099 not a reply\r\n", "invalid reply code", "-"),
            ("RETR", b"150Opening BINARY mode\r\n", "invalid reply line", "ftp://127.0.0.1/."),
        ] {
            let mut h = Harness::new(Proto::Tcp, 21);
            h.id.resp_h = "127.0.0.1".parse().unwrap();
            let mut a = with_extra_logged(&["USER", "PASS", "SYST", "QUIT"]);
            let request = format!("{command}\r\n");
            let script: &[(bool, &[u8])] = &[
                (false, b"220 ready\r\n"),
                (true, b"USER zeek\r\n"),
                (false, b"230 USER OK\r\n"),
                (true, b"PASS zeek\r\n"),
                (false, b"230 PASS OK\r\n"),
                (true, request.as_bytes()),
                (false, bad_reply),
                (true, b"QUIT\r\n"),
                (false, b"221 bye\r\n"),
            ];
            let line = bad_reply.strip_suffix(b"\r\n").unwrap();
            assert_eq!(
                run_until_violation(&mut h, &mut a, script),
                Some((reason.to_string(), Some(line.into()))),
                "{command}"
            );
            assert_eq!(
                rows(&h, &["user", "password", "command", "arg", "reply_code", "reply_msg"]),
                vec![
                    "zeek - USER zeek 230 USER OK".to_string(),
                    "zeek <hidden> PASS <hidden> 230 PASS OK".to_string(),
                    format!("zeek <hidden> {command} {logged_arg} 230 PASS OK"),
                ],
                "{command}"
            );
        }
    }

    /// Through the engine, Zeek's ftp-invalid-reply-code baseline row: the confirmed FTP analyzer fails on a
    /// two-digit reply and analyzer.log carries the line as `failure_data`; a line with raw bytes is cut to 40
    /// bytes and escaped as Zeek's TSV writer escapes them.
    #[test]
    fn analyzer_log_carries_the_failing_reply_line() {
        use crate::analyzers::testing::{engine_records, field};
        use crate::decode::test_frames::tcp_conversation;

        let row = |bad_reply: &[u8]| {
            let messages: Vec<(bool, &[u8])> = vec![
                (false, b"220 ready\r\n"),
                (true, b"USER zeek\r\n"),
                (false, b"331 password\r\n"),
                (true, b"PASS zeek\r\n"),
                (false, b"230 logged in\r\n"),
                (true, b"PASV\r\n"),
                (false, bad_reply),
            ];
            let frames = tcp_conversation(([127, 0, 0, 1], 51354), ([127, 0, 0, 1], 21), &messages);
            let records = engine_records(&frames);
            let failed: Vec<_> = records.iter().filter(|r| r.schema.path == "analyzer").collect();
            assert_eq!(failed.len(), 1);
            let columns = ["analyzer_kind", "analyzer_name", "fuid", "id.orig_h", "id.orig_p", "id.resp_h"];
            let columns = columns.iter().chain(&["id.resp_p", "proto", "failure_reason", "failure_data"]);
            columns.map(|c| field(failed[0], c)).collect::<Vec<_>>().join("\t")
        };
        assert_eq!(
            row(b"99 PASV invalid\r\n"),
            "protocol\tFTP\t-\t127.0.0.1\t51354\t127.0.0.1\t21\ttcp\tnon-numeric reply code\t99 PASV invalid"
        );
        // (0xFE: a 0xFF would start a Telnet command, which the NVT takes out of the line.)
        let mut raw = b"2x\t\xfe\\".to_vec();
        raw.extend_from_slice(&[b'z'; 40]);
        raw.extend_from_slice(b"\r\n");
        let expected = format!("2x\\x09\\xfe\\\\{}", "z".repeat(35));
        assert!(row(&raw).ends_with(&format!("\tnon-numeric reply code\t{expected}")), "{}", row(&raw));
    }

    /// Zeek's FTP analyzer reads through NVT analyzers: a NUL or a lone CR in a command is the NVT's weird, and
    /// Telnet commands are not part of the line (`FTP.cc`, `NVT.cc`).
    #[test]
    fn lines_come_through_the_nvt() {
        let mut h = Harness::new(Proto::Tcp, 21);
        let mut a = FtpAnalyzer::new();
        h.deliver(&mut a, false, b"220 ready\r\n");
        h.deliver(&mut a, true, b"US\0ER a\xff\xf1\rx\r\n");
        let weirds: Vec<_> = h.weirds.iter().map(|w| format!("{} {}", w.name, w.source)).collect();
        assert_eq!(weirds, ["NUL_in_line NVT", "line_terminated_with_single_CR NVT"]);
    }

    /// The NVT's `EndpointEOF` delivers a last command without its line end when the client closes, and
    /// `partial_ftp_request` is only for a line still partial once the originator closed: a peer that sends half
    /// a line and vanishes (a scanner) raises nothing.
    #[test]
    fn a_last_line_without_its_end_is_delivered_at_the_close() {
        let mut h = Harness::new(Proto::Tcp, 21);
        let mut a = FtpAnalyzer::new();
        h.deliver(&mut a, false, b"220 ready\r\n");
        h.deliver(&mut a, true, b"RETR file");
        h.run(2.0, |ctx| a.end_of_data(ctx, true));
        h.finish(&mut a);
        let commands: Vec<_> = h.logged("ftp").iter().map(|r| r.get("command").unwrap().to_tsv()).collect();
        assert_eq!(commands, ["RETR"]);
        assert!(h.weirds.is_empty());

        let mut h = Harness::new(Proto::Tcp, 21);
        let mut a = FtpAnalyzer::new();
        h.deliver(&mut a, false, b"220 ready\r\n");
        h.deliver(&mut a, true, b"RETR fi");
        h.finish(&mut a);
        assert!(h.weirds.is_empty() && h.logged("ftp").is_empty());
    }

    /// Deep into a connection a violation is ignored (`DPD::ignore_violations_after`): the line is skipped.
    #[test]
    fn late_malformed_reply_is_skipped() {
        let mut h = Harness::new(Proto::Tcp, 21);
        let mut a = FtpAnalyzer::new();
        let padding = b"NOOP\r\n".repeat(2000);
        h.deliver(&mut a, false, b"220 ready\r\n");
        h.deliver(&mut a, true, &padding);
        h.deliver(&mut a, false, b"not a reply\r\n");
        assert!(!h.actions.iter().any(|a| matches!(a, Action::Violation(..))));
    }

    /// Zeek's ftp-max-pending-commands test (with the default limit of 20 pending commands): a client that sends
    /// everything before the server's greeting gets each reply matched by code and text.
    #[test]
    fn pipelined_commands_before_the_greeting() {
        let mut h = Harness::new(Proto::Tcp, 21);
        let mut a = with_extra_logged(&["USER", "SYST"]);
        let script: &[(bool, &[u8])] = &[
            (true, b"USER anonymous\r\nPASS anonymous@zeek.org\r\nSYST\r\nTYPE I\r\nPASV\r\nRETR robots.txt\r\nPORT 114,115\r\nQUIT\r\n"),
            (false, b"220 py.fake ready\r\n230 Fake response USER anonymous\r\n230 Fake response PASS anonymous@zeek.org\r\n215 Fake response SYST\r\n200 Fake response TYPE I\r\n227 Fake response PASV\r\n225 Fake response RETR robots.txt\r\n200 Fake response PORT 114,115\r\n221 Fake response QUIT\r\n"),
        ];
        run_session(&mut h, &mut a, script);
        assert_eq!(
            rows(&h, &["user", "password", "command", "arg", "reply_code"]),
            vec![
                "anonymous anonymous@zeek.org USER anonymous 230",
                "anonymous anonymous@zeek.org SYST - 215",
                "anonymous anonymous@zeek.org PASV - 227",
                "anonymous anonymous@zeek.org RETR ftp://192.0.2.1/./robots.txt 225",
                "anonymous anonymous@zeek.org PORT 114,115 200",
            ]
        );
        assert!(h.weirds.is_empty());
    }

    #[test]
    fn compress_path_matches_zeek_tests() {
        let cases = [
            ("./../foo", "../foo"),
            ("././../foo", "../foo"),
            ("/1/2/3", "/1/2/3"),
            ("/1/./2/3", "/1/2/3"),
            ("/1/2/../3", "/1/3"),
            ("1/2/3/", "1/2/3"),
            ("1/2//3///", "1/2/3"),
            ("~/zeek/testing", "~/zeek/testing"),
            ("~jon/./zeek/testing", "~jon/zeek/testing"),
            ("~/zeek/testing/../././.", "~/zeek"),
            ("./zeek", "./zeek"),
            ("../zeek/testing/..", "../zeek"),
            ("./zeek/..", "."),
            ("./zeek/../..", ".."),
            ("./zeek/../../..", "../.."),
            ("./..", ".."),
            ("../..", "../.."),
            ("/..", "/.."),
            ("~/..", "~/.."),
            ("/../..", "/../.."),
            ("~/../..", "~/../.."),
            ("zeek/..", ""),
            ("zeek/../..", ".."),
        ];
        for (input, want) in cases {
            assert_eq!(compress_path(input), want, "{input}");
        }
    }

    #[test]
    fn port_parsers_follow_zeek() {
        let v4 = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(parse_ftp_port(b"10,0,0,1,4,31"), Some((v4("10.0.0.1"), 1055)));
        assert_eq!(parse_ftp_port(b"10,0,0,1,4,256"), None);
        assert_eq!(
            parse_ftp_pasv(b"Entering Passive Mode (205,167,25,101,243,251)."),
            Some((v4("205.167.25.101"), 62459))
        );
        assert_eq!(parse_ftp_pasv(b"Entering Passive Mode 10,0,0,1,4,31"), Some((v4("10.0.0.1"), 1055)));
        assert_eq!(parse_eftp(Some(b"|1|10.0.0.1|1055|")), Some((v4("10.0.0.1"), 1055)));
        assert_eq!(parse_eftp(Some(b"|2|::1|1055|")), Some((v4("::1"), 1055)));
        assert_eq!(parse_ftp_epsv(b"Extended Passive mode OK (|||63988|)"), Some((v4("::"), 63988)));
        assert_eq!(parse_eftp(Some(b"|x|")), None);
        assert_eq!(extract_path("\"/pub\" is current directory"), "/pub");
        assert_eq!(extract_path("current directory is /a/b now"), "/a/b");
        assert_eq!(extract_last_count("Opening BINARY mode data connection for 'robots.txt' (77 bytes)."), 77);
    }

    #[test]
    fn detects_a_greeting_answered_login_and_user() {
        assert!(detect(Proto::Tcp, false, b"220 ftp.NetBSD.org FTP server ready.\r\n331 Guest login ok\r\n"));
        assert!(!detect(Proto::Tcp, false, b"220 ftp.NetBSD.org FTP server ready.\r\n"), "a greeting alone");
        assert!(!detect(Proto::Tcp, false, b"220 mail.example.com ESMTP\r\n250 ok\r\n"));
        assert!(detect(Proto::Tcp, true, b"USER anonymous\r\n"));
        assert!(!detect(Proto::Udp, true, b"USER anonymous\r\n"));
    }

    /// The client side of `detect` as first written (every line split off byte by byte): the reference for the
    /// word-at-a-time line search.
    fn detect_user_line_reference(payload: &[u8]) -> bool {
        payload.split(|&b| b == b'\n').any(|line| {
            let line = trim_start(line);
            line.len() > 5 && line[..5].eq_ignore_ascii_case(b"USER ")
        })
    }

    #[test]
    fn user_line_detection_edges() {
        for (stream, want) in [
            (&b"USER a"[..], true),
            (b"USER ", false),
            (b"USER \n", false),
            (b"\x16\x03\x01 binary\n \t\rUSER x", true),
            (b"\n\n\nuser bob\r\n", true),
            (b"NOOP\nUSER\nUSER \nUSE R x", false),
            (b"0123456\nUSER x", true),
        ] {
            assert_eq!(detect(Proto::Tcp, true, stream), want, "{:?}", String::from_utf8_lossy(stream));
            assert_eq!(detect_user_line_reference(stream), want);
        }
    }

    proptest::proptest! {
        #[test]
        fn fuzz_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            fuzz(&data);
        }

        #[test]
        fn user_line_detection_matches_the_reference(
            text in "([\n\r\t\x0b\x0c ]{0,2}(USER|user|UsEr|USE|x|\x00)[ \n]{0,2}[a-z]{0,2}){0,20}",
            binary in proptest::collection::vec(proptest::num::u8::ANY, 0..1100),
        ) {
            let text = text.as_bytes();
            proptest::prop_assert_eq!(detect(Proto::Tcp, true, text), detect_user_line_reference(text));
            proptest::prop_assert_eq!(detect(Proto::Tcp, true, &binary), detect_user_line_reference(&binary));
        }

        #[test]
        fn fuzz_never_panics_on_ftp_like_text(lines in proptest::collection::vec("(220|227|229|150|250|257|234)[ -][ -~]{0,40}|(USER|PASS|PORT|EPRT|CWD|RETR|PASV|EPSV|AUTH) [ -~]{0,40}", 0..30)) {
            let mut data = vec![7u8];
            for l in lines {
                data.extend_from_slice(l.as_bytes());
                data.extend_from_slice(b"\r\n");
            }
            fuzz(&data);
        }
    }
}
