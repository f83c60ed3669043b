//! base/protocols/redis/main.zeek: the per-connection `redis_state` that pairs commands with replies, and
//! redis.log.
//!
//! Commands and replies are numbered as they come; a reply is matched to the next command that expects one, past
//! the ranges that `CLIENT REPLY OFF`/`ON`/`SKIP` silenced and the commands that never get a reply (the
//! subscription commands, and every known command sent in RESP2's subscribed mode, whose replies are out-of-band
//! pushes). When a reply arrives, the commands it passed over are written without a reply, then its own record.
//! At the connection's removal (`finalize_redis`) whatever is pending is written, unless the analyzer reported a
//! violation or no reply was ever counted.

use std::collections::{BTreeMap, BTreeSet};

use super::REDIS_LOG;
use super::parse::{Command, Known};
use crate::analyzers::Ctx;
use crate::logs::{Value, bytes_to_log_string};

/// main.zeek's `max_pending_commands`.
pub const MAX_PENDING_COMMANDS: u64 = 10_000;
/// Reply text held by pending entries without a command (which main.zeek keeps until the connection ends,
/// without a bound): past this, such an entry is written at once, as the connection's end would write it.
const REPLY_ONLY_BUDGET: usize = 4 << 20;

/// The logged part of redis.spicy's `Command` (`cmd.name`, `cmd.key`, `cmd.value`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoggedCommand {
    name: Vec<u8>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// main.zeek's `Info`, after `ts`, `uid` and `id`.
#[derive(Debug, Clone)]
struct Info {
    ts: f64,
    cmd: Option<LoggedCommand>,
    success: Option<bool>,
    reply: Option<Vec<u8>>,
}

impl Info {
    fn new(ts: f64) -> Self {
        Info { ts, cmd: None, success: None, reply: None }
    }

    fn reply_len(&self) -> usize {
        self.reply.as_ref().map_or(0, Vec::len)
    }

    fn write(&self, ctx: &mut Ctx) {
        let text = |b: &Option<Vec<u8>>| Value::opt_str(b.as_deref().map(bytes_to_log_string));
        let mut v = ctx.conn_columns(self.ts);
        match &self.cmd {
            Some(c) => {
                v.push(Value::Str(bytes_to_log_string(&c.name)));
                v.push(text(&c.key));
                v.push(text(&c.value));
            }
            None => v.extend([Value::Unset, Value::Unset, Value::Unset]),
        }
        v.push(self.success.map_or(Value::Unset, Value::Bool));
        v.push(text(&self.reply));
        ctx.log(&REDIS_LOG, v);
    }
}

/// main.zeek's `State`.
#[derive(Debug, Default)]
struct State {
    pending: BTreeMap<u64, Info>,
    current_command: u64,
    current_reply: u64,
    /// `no_reply_ranges`: from a command on, up to (not including) an end if one is known.
    no_reply_ranges: Vec<(u64, Option<u64>)>,
    skip_commands: BTreeSet<u64>,
    violation: bool,
    subscribed_mode: bool,
    resp3: bool,
    /// Reply text of the pending entries without a command, against [`REPLY_ONLY_BUDGET`].
    reply_only_bytes: usize,
}

impl State {
    /// `is_last_interval_closed`.
    fn last_interval_closed(&self) -> bool {
        self.no_reply_ranges.last().is_none_or(|(_, end)| end.is_some())
    }

    /// `reply_num`: the number of the command the next reply answers.
    fn reply_num(&mut self) -> u64 {
        let resp_num = self.current_reply.saturating_add(1);
        let mut result = resp_num;
        for &(begin, end) in &self.no_reply_ranges {
            if let Some(end) = end
                && resp_num >= begin
                && resp_num < end
            {
                result = end;
            }
        }
        while self.skip_commands.remove(&result) {
            result = result.saturating_add(1);
        }
        // Replies only move forward: a closed range that ends by the next reply's number can never match again.
        // Dropping it (not the last, which the CLIENT handling looks at) keeps the scan short.
        let next = result.saturating_add(1);
        let last = self.no_reply_ranges.len().saturating_sub(1);
        let mut i = 0;
        self.no_reply_ranges.retain(|&(_, end)| {
            let keep = i == last || end.is_none_or(|end| end > next);
            i += 1;
            keep
        });
        result
    }

    /// `log_from`: writes the commands a reply passed over, then the entry it answered if it has its command.
    fn log_from(&mut self, ctx: &mut Ctx, previous_reply_num: u64) {
        let mut n = previous_reply_num;
        while n < self.current_reply {
            if n != 0
                && self.pending.get(&n).is_some_and(|i| i.cmd.is_some())
                && let Some(info) = self.pending.remove(&n)
            {
                info.write(ctx);
            }
            n += 1;
        }
        let current = self.current_reply;
        if self.pending.get(&current).is_some_and(|i| i.cmd.is_some())
            && let Some(info) = self.pending.remove(&current)
        {
            info.write(ctx);
        }
    }
}

/// The connection's `c$redis_state` and the handlers of main.zeek.
#[derive(Debug)]
pub struct Script {
    state: Option<State>,
    /// `Redis::max_pending_commands`.
    pub max_pending_commands: u64,
}

impl Default for Script {
    fn default() -> Self {
        Script::new(MAX_PENDING_COMMANDS)
    }
}

impl Script {
    pub fn new(max_pending_commands: u64) -> Self {
        Script { state: None, max_pending_commands }
    }

    /// `make_new_state` when there is none.
    fn state(&mut self) -> &mut State {
        self.state.get_or_insert_with(State::default)
    }

    /// Whether the connection's end would write something.
    pub fn has_pending(&self) -> bool {
        self.state.as_ref().is_some_and(|s| !s.violation && s.current_reply != 0 && !s.pending.is_empty())
    }

    /// `hello_command`: HELLO 3 switches to RESP3.
    pub fn hello(&mut self, requested_resp_version: Option<&[u8]>) {
        let s = self.state();
        if requested_resp_version == Some(b"3") {
            s.resp3 = true;
        }
    }

    /// `command`.
    pub fn command(&mut self, ctx: &mut Ctx, cmd: &Command) {
        let max = self.max_pending_commands;
        let s = self.state();
        let pending = s.pending.len() as u64;
        if max > 0 && pending > max {
            // `Reporter::limit_reached_weird`: the weird, and the analysis marked partial. The state starts afresh.
            ctx.weird("Redis_excessive_pipelining", Some(format!("{pending} > {max}")), "REDIS");
            ctx.partial(true);
            self.state = None;
            return;
        }
        s.current_command += 1;
        let current = s.current_command;
        if let Some(known) = cmd.known {
            if !s.resp3 {
                let enter = matches!(known, Known::Psubscribe | Known::Ssubscribe | Known::Subscribe);
                let exit = matches!(known, Known::Reset | Known::Quit);
                s.subscribed_mode = enter && !exit;
            }
            let no_response = matches!(
                known,
                Known::Psubscribe
                    | Known::Punsubscribe
                    | Known::Ssubscribe
                    | Known::Subscribe
                    | Known::Sunsubscribe
                    | Known::Unsubscribe
            );
            if no_response || s.subscribed_mode {
                s.skip_commands.insert(current);
            }
            if known == Known::Client
                && let [_, _, mode] = cmd.raw.as_slice()
            {
                match mode.to_ascii_lowercase().as_slice() {
                    b"on" => {
                        if let Some((_, end @ None)) = s.no_reply_ranges.last_mut() {
                            *end = Some(current);
                        }
                    }
                    // A new range only when the last one is closed.
                    b"off" if s.last_interval_closed() => s.no_reply_ranges.push((current, None)),
                    // This one and the next one.
                    b"skip" if s.last_interval_closed() => {
                        s.no_reply_ranges.push((current, Some(current.saturating_add(2))))
                    }
                    _ => {}
                }
            }
        }
        let ts = ctx.ts;
        let info = s.pending.entry(current).or_insert_with(|| Info::new(ts));
        if info.cmd.is_none() {
            s.reply_only_bytes = s.reply_only_bytes.saturating_sub(info.reply_len());
        }
        info.cmd = Some(LoggedCommand {
            name: cmd.name().to_vec(),
            key: cmd.key().map(<[u8]>::to_vec),
            value: cmd.value().map(<[u8]>::to_vec),
        });
    }

    /// `reply`: a successful reply (a RESP3 type marks the connection RESP3; in subscribed mode it is a push).
    pub fn reply(&mut self, ctx: &mut Ctx, value: &[u8], min_protocol_version: u8) {
        let s = self.state();
        if min_protocol_version == 3 {
            s.resp3 = true;
            s.subscribed_mode = false;
        }
        if s.subscribed_mode {
            // `server_push`, which nothing logs.
            return;
        }
        self.answer(ctx, value, true);
        let s = self.state();
        if s.current_command == s.current_reply {
            s.skip_commands.clear();
        }
    }

    /// `error`: an error reply.
    pub fn error(&mut self, ctx: &mut Ctx, value: &[u8]) {
        self.answer(ctx, value, false);
    }

    fn answer(&mut self, ctx: &mut Ctx, value: &[u8], success: bool) {
        let s = self.state();
        let previous = s.current_reply;
        s.current_reply = s.reply_num();
        let current = s.current_reply;
        let ts = ctx.ts;
        let info = s.pending.entry(current).or_insert_with(|| Info::new(ts));
        info.reply = Some(value.to_vec());
        info.success = Some(success);
        s.log_from(ctx, previous);
        if let Some(info) = s.pending.get(&current)
            && info.cmd.is_none()
        {
            // An answer to no command stays until the connection's end, within a budget.
            let len = info.reply_len();
            if s.reply_only_bytes.saturating_add(len) > REPLY_ONLY_BUDGET {
                if let Some(info) = s.pending.remove(&current) {
                    info.write(ctx);
                }
            } else {
                s.reply_only_bytes += len;
            }
        }
    }

    /// `analyzer_violation_info`: nothing pending is written any more.
    pub fn violation(&mut self) {
        if let Some(s) = self.state.as_mut() {
            s.violation = true;
        }
    }

    /// `finalize_redis`, at the connection's removal.
    pub fn finalize(&mut self, ctx: &mut Ctx) {
        let Some(s) = self.state.take() else { return };
        if s.violation || s.current_reply == 0 {
            return;
        }
        // Zeek writes them in its table's order; here by number.
        for (n, info) in s.pending {
            if n != 0 {
                info.write(ctx);
            }
        }
    }
}
