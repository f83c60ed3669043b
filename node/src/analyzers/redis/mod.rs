//! Redis (tcp 6379, and on any port by Zeek's `dpd.sig`) to redis.log, as Zeek's Spicy analyzer
//! (src/analyzer/protocol/redis: resp.spicy, redis.spicy, redis.evt) and base/protocols/redis/main.zeek do it
//! (base since Zeek 8).
//!
//! Each direction is parsed as resp.spicy has it ([`parse`]): the client's commands, the server's replies with
//! Spicy's synchronization after an error. The events follow redis.evt: a client unit raises `hello_command` (for
//! HELLO) and `command`; a server unit is classified as an error (simple or bulk error), a push (RESP3 `>`) or a
//! reply, and confirms the protocol (`accept_input`). The server side may only start once the client has sent
//! something (`ServerMessages`' `%init`, through the units' shared context), else that is a violation.
//!
//! A violation (a client parse error, a server that spoke first, the end of a direction inside a unit, or trial
//! mode never left) stops the analysis, as Zeek's DPD removes the analyzer, and marks the script's state so that
//! nothing pending is written at the end. A content gap ends its direction silently.
//!
//! What the script does with the events is in [`script`].

pub mod parse;
pub mod script;

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::{Schema, conn_fields, f};
use parse::{ClientEvent, ClientParser, Command, Known, Limits, Reply, ReplyType, ServerParser};
use script::Script;

pub static REDIS_LOG: Schema = Schema {
    path: "redis",
    fields: conn_fields![
        f("cmd.name", "string"),
        f("cmd.key", "string"),
        f("cmd.value", "string"),
        f("success", "bool"),
        f("reply.value", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "redis",
    // main.zeek's `ports`.
    tcp_ports: &[6379],
    udp_ports: &[],
    // dpd.sig: `resp-serialized-server` enables the analyzer by itself (its client counterpart requires it).
    detect: Some(Signature::either_side(|proto, is_orig, payload| {
        proto == Proto::Tcp && !is_orig && server_signature(payload)
    })),
    new: |_| Box::<Redis>::default(),
    schemas: &[&REDIS_LOG],
};

/// dpd.sig's `resp-serialized-server` payload:
/// `^([-+_,].*\r\n|[:$*#(!=%`~>][+-]?[0-9]+(\.[0-9]*)?\r\n)` (`.` is any byte but a newline).
pub fn server_signature(payload: &[u8]) -> bool {
    let Some((&first, rest)) = payload.split_first() else { return false };
    match first {
        b'-' | b'+' | b'_' | b',' => {
            // The first newline must end a CRLF (none may come before it).
            rest.iter().position(|&b| b == b'\n').is_some_and(|at| at > 0 && rest.get(at - 1) == Some(&b'\r'))
        }
        b':' | b'$' | b'*' | b'#' | b'(' | b'!' | b'=' | b'%' | b'`' | b'~' | b'>' => {
            let mut at = usize::from(matches!(rest.first(), Some(b'+' | b'-')));
            let digits =
                |from: usize| rest.get(from..).map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count());
            let whole = digits(at);
            if whole == 0 {
                return false;
            }
            at += whole;
            if rest.get(at) == Some(&b'.') {
                at += 1;
                at += digits(at);
            }
            rest.get(at..).is_some_and(|r| r.starts_with(b"\r\n"))
        }
        _ => false,
    }
}

/// One direction's parser: not started until its first bytes, and ended by its end or a gap.
#[derive(Debug)]
enum Side<P> {
    NotStarted,
    Parsing(P),
    Ended,
}

pub struct Redis {
    limits: Limits,
    client: Side<ClientParser>,
    server: Side<ServerParser>,
    script: Script,
    confirmed: bool,
    /// A violation ended the analysis.
    stopped: bool,
}

impl Default for Redis {
    fn default() -> Self {
        Redis::with_limits(Limits::default(), script::MAX_PENDING_COMMANDS)
    }
}

impl Redis {
    /// An analyzer with `Redis::max_value_size`, `Redis::max_aggregate_elements` and `Redis::max_pending_commands`
    /// redefined.
    pub fn with_limits(limits: Limits, max_pending_commands: u64) -> Self {
        Redis {
            limits,
            client: Side::NotStarted,
            server: Side::NotStarted,
            script: Script::new(max_pending_commands),
            confirmed: false,
            stopped: false,
        }
    }

    /// A violation: Zeek's DPD removes the analyzer, and main.zeek marks its state. A parse error inside a
    /// delivery carries it as analyzer.log's `failure_data` (Spicy's `Process` passes the data it was given); one at
    /// the end of a direction has none (`Finish` passes none).
    fn stop(&mut self, ctx: &mut Ctx, reason: String, delivery: Option<&[u8]>) {
        self.stopped = true;
        self.client = Side::Ended;
        self.server = Side::Ended;
        self.script.violation();
        match delivery {
            Some(data) => ctx.violation_with_data(reason, data),
            None => ctx.violation(reason),
        }
    }

    /// The events of one client unit, in redis.evt's order.
    fn command(&mut self, ctx: &mut Ctx, cmd: &Command) {
        if cmd.known == Some(Known::Hello) {
            self.script.hello(cmd.raw.get(1).map(Vec::as_slice));
        }
        self.script.command(ctx, cmd);
    }

    /// One server unit: `accept_input`, then its event.
    fn reply(&mut self, ctx: &mut Ctx, reply: &Reply) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("redis");
        }
        match reply.kind {
            ReplyType::Reply => self.script.reply(ctx, &reply.value, reply.min_protocol_version),
            ReplyType::Error => self.script.error(ctx, &reply.value),
            // `server_push`: nothing in the base scripts handles it.
            ReplyType::Push => {}
        }
    }

    fn client_data(&mut self, ctx: &mut Ctx, data: &[u8]) {
        let parser = match &mut self.client {
            Side::Ended => return,
            // `ClientMessages`' `%init` sets the shared context: the server may speak from now on.
            Side::NotStarted => {
                self.client = Side::Parsing(ClientParser::new(self.limits));
                match &mut self.client {
                    Side::Parsing(p) => p,
                    _ => return,
                }
            }
            Side::Parsing(p) => p,
        };
        let mut events = Vec::new();
        parser.feed(data, &mut events);
        self.client_events(ctx, events, data);
    }

    fn client_events(&mut self, ctx: &mut Ctx, events: Vec<ClientEvent>, delivery: &[u8]) {
        for event in events {
            match event {
                ClientEvent::Command(cmd) => self.command(ctx, &cmd),
                ClientEvent::Error(e) => {
                    self.stop(ctx, e, Some(delivery));
                    return;
                }
            }
        }
    }

    fn server_data(&mut self, ctx: &mut Ctx, data: &[u8]) {
        let parser = match &mut self.server {
            Side::Ended => return,
            Side::NotStarted => {
                if matches!(self.client, Side::NotStarted) {
                    self.stop(ctx, "Server responses must come after a client request is seen".into(), Some(data));
                    return;
                }
                self.server = Side::Parsing(ServerParser::new(self.limits));
                match &mut self.server {
                    Side::Parsing(p) => p,
                    _ => return,
                }
            }
            Side::Parsing(p) => p,
        };
        let mut replies = Vec::new();
        parser.feed(data, &mut replies);
        for reply in &replies {
            self.reply(ctx, reply);
        }
    }

    /// The end of a direction: Spicy finishes its parser.
    fn end_side(&mut self, ctx: &mut Ctx, is_orig: bool) {
        if self.stopped {
            return;
        }
        if is_orig {
            if let Side::Parsing(p) = &mut self.client
                && let Some(e) = p.finish()
            {
                self.stop(ctx, e, None);
                return;
            }
            self.client = Side::Ended;
        } else {
            let mut replies = Vec::new();
            let failure = match &mut self.server {
                Side::Parsing(p) => p.finish(&mut replies),
                _ => None,
            };
            self.server = Side::Ended;
            for reply in &replies {
                self.reply(ctx, reply);
            }
            if let Some(e) = failure {
                self.stop(ctx, e, None);
            }
        }
    }
}

impl Analyzer for Redis {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.stopped || data.is_empty() {
            return;
        }
        if is_orig {
            self.client_data(ctx, data);
        } else {
            self.server_data(ctx, data);
        }
    }

    /// Zeek's Spicy analyzers stop parsing a direction at a content gap, without a violation.
    fn undelivered(&mut self, _ctx: &mut Ctx, is_orig: bool, _len: u64) {
        if is_orig {
            self.client = Side::Ended;
        } else {
            self.server = Side::Ended;
        }
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        self.end_side(ctx, is_orig);
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        // The analyzer's `Done` finishes both parsers (their violations come first), then the removal hook runs.
        self.end_side(ctx, true);
        self.end_side(ctx, false);
        self.script.finalize(ctx);
    }

    fn is_done(&self) -> bool {
        // After a violation the script writes nothing more (its state is marked, or there is none).
        self.stopped && !self.script.has_pending()
    }
}

/// Fuzz entry point: arbitrary deliveries in both directions, with small limits so that they are reached too.
pub fn fuzz(data: &[u8]) {
    let (first, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let analyzer = &mut if first & 1 == 0 {
        Redis::default()
    } else {
        Redis::with_limits(
            Limits { max_value_size: usize::from(first >> 4), max_aggregate_elements: u64::from(first >> 1 & 7) },
            u64::from(first >> 4),
        )
    };
    super::fuzzing::drive(analyzer, Proto::Tcp, 6379, rest);
}

#[cfg(test)]
mod tests;
