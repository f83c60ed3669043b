//! DNS analyzer: Zeek's dns.log for DNS over UDP (one message per datagram) and TCP (messages framed by a
//! 2-byte length), including mDNS, LLMNR and NetBIOS name service, which Zeek reads with the same
//! analyzer.
//!
//! The work is split the way Zeek splits it: [`wire`] reads a message like Zeek's C++ `DNS_Interpreter`
//! (and reports its weirds), [`session`] does what `base/protocols/dns/main.zeek` does with the events
//! (pairing queries and replies into dns.log records), and this file frames messages, orients the
//! connection and writes the log.
//!
//! Configuration: [`set_skip_all_addl`] and [`set_skip_all_auth`] are Zeek's `dns_skip_all_addl` and
//! `dns_skip_all_auth` (both `T` by default); they are process-wide and read when an analyzer is created.

mod consts;
mod session;
mod wire;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Analyzer, AnalyzerSpec, ConnId, Ctx, Proto};
use crate::logs::conn_fields;
use crate::logs::{Schema, Value, bytes_to_log_string, f};
use session::{Info, MessageContext, Tracker};
use wire::{NETBIOS_PORT, ReadOptions};

/// Zeek's `DNS::ports` (the `dns` service name is the analyzer's).
pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "dns",
    tcp_ports: &[53],
    udp_ports: &[53, 137, 5353, 5355],
    detect: None,
    new: |proto| Box::new(DnsAnalyzer::new(proto)),
    schemas: &[&SCHEMA],
};

/// `DNS::Info`, in Zeek 9.1's column order.
pub static SCHEMA: Schema = Schema {
    path: "dns",
    fields: conn_fields![
        f("proto", "enum"),
        f("trans_id", "count"),
        f("rtt", "interval"),
        f("query", "string"),
        f("qclass", "count"),
        f("qclass_name", "string"),
        f("qtype", "count"),
        f("qtype_name", "string"),
        f("rcode", "count"),
        f("rcode_name", "string"),
        f("AA", "bool"),
        f("TC", "bool"),
        f("RD", "bool"),
        f("RA", "bool"),
        f("Z", "count"),
        f("answers", "vector[string]"),
        f("TTLs", "vector[interval]"),
        f("rejected", "bool"),
        f("opcode", "count"),
        f("opcode_name", "string"),
    ],
};

/// The `source` of this analyzer's weirds.
const WEIRD_SOURCE: &str = "DNS";

static SKIP_ALL_ADDL: AtomicBool = AtomicBool::new(true);
static SKIP_ALL_AUTH: AtomicBool = AtomicBool::new(true);

/// Zeek's `dns_skip_all_addl`: when `false`, additional records are parsed (for their weirds; they never
/// reach dns.log). The `dns-tkey-tcp` oracle case runs with `false`.
pub fn set_skip_all_addl(skip: bool) {
    SKIP_ALL_ADDL.store(skip, Ordering::Relaxed);
}

/// Zeek's `dns_skip_all_auth`: when `false`, authority records are parsed.
pub fn set_skip_all_auth(skip: bool) {
    SKIP_ALL_AUTH.store(skip, Ordering::Relaxed);
}

/// The configuration an analyzer was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    skip_all_auth: bool,
    skip_all_addl: bool,
}

impl Settings {
    fn current() -> Self {
        Settings {
            skip_all_auth: SKIP_ALL_AUTH.load(Ordering::Relaxed),
            skip_all_addl: SKIP_ALL_ADDL.load(Ordering::Relaxed),
        }
    }
}

/// DNS on one connection.
struct DnsAnalyzer {
    proto: Proto,
    /// The script's pending records: most DNS connections sit idle for a minute after their answer (the UDP
    /// inactivity timeout), so a tracker with nothing pending is dropped (104 bytes of every such connection).
    tracker: Option<Box<Tracker>>,
    /// No message has been read yet (a reply first from the originator flips the connection).
    first_message: bool,
    /// Roles were flipped during the current call: the engine applies [`Ctx::flip_roles`] when the call
    /// returns, so until then `ctx` still shows the old orientation.
    flipped_this_call: bool,
    confirmed: bool,
    settings: Settings,
    /// TCP message framing, indexed by the engine's `is_orig`: created by the first TCP delivery, so that UDP
    /// connections (nearly all of DNS) carry none.
    framers: Option<Box<[TcpFramer; 2]>>,
}

impl DnsAnalyzer {
    fn new(proto: Proto) -> Self {
        Self::with_settings(proto, Settings::current())
    }

    fn with_settings(proto: Proto, settings: Settings) -> Self {
        DnsAnalyzer {
            proto,
            settings,
            tracker: None,
            first_message: true,
            flipped_this_call: false,
            confirmed: false,
            framers: None,
        }
    }

    /// The connection as Zeek sees it, including a flip requested during this call.
    fn conn_id(&self, ctx: &Ctx) -> ConnId {
        let id = *ctx.id;
        if self.flipped_this_call {
            ConnId { orig_h: id.resp_h, orig_p: id.resp_p, resp_h: id.orig_h, resp_p: id.orig_p, proto: id.proto }
        } else {
            id
        }
    }

    /// Zeek flips the roles when the first message is a reply sent by the originator, unless the responder
    /// is a multicast group.
    fn flip_roles(&mut self, ctx: &mut Ctx) {
        if is_multicast(&self.conn_id(ctx).resp_h) {
            return;
        }
        ctx.flip_roles();
        self.flipped_this_call = true;
        // The framers follow the endpoints, whose `is_orig` the flip inverts.
        if let Some(framers) = &mut self.framers {
            framers.swap(0, 1);
        }
    }

    /// One DNS message. `from_orig` is the sender as the engine sees it, `None` when unknown (a partial
    /// TCP message flushed at close).
    fn message(&mut self, ctx: &mut Ctx, from_orig: Option<bool>, data: &[u8]) {
        let opts = ReadOptions {
            netbios: self.conn_id(ctx).resp_p == NETBIOS_PORT,
            skip_all_auth: self.settings.skip_all_auth,
            skip_all_addl: self.settings.skip_all_addl,
            udp: self.proto == Proto::Udp,
        };
        let msg = match wire::read_message(data, opts) {
            Ok(msg) => msg,
            Err(weird) => {
                ctx.weird(weird.name, weird.addl, WEIRD_SOURCE);
                return;
            }
        };
        let sent_by_orig = from_orig.map(|orig| orig != self.flipped_this_call);
        if self.first_message && msg.header.qr && sent_by_orig == Some(true) {
            self.flip_roles(ctx);
        }
        self.first_message = false;

        for weird in &msg.weirds {
            ctx.weird(weird.name, weird.addl.clone(), WEIRD_SOURCE);
        }
        // Zeek 9.1 marks the connection's analysis partial (history `x`) when a message exceeds `dns_max_queries`
        // or `dns_max_compression_chain_depth`, on the side the message came from as it was delivered, before a
        // flip (the max-queries baseline's `DX`, max-compression-depth's reply-first `D^X`).
        let limit_hit = msg.weirds.iter().any(|w| LIMIT_WEIRDS.contains(&w.name));
        if let (true, Some(delivered_by_orig)) = (limit_hit, from_orig) {
            ctx.partial(delivered_by_orig);
        }
        if msg.too_many_queries {
            ctx.violation("DNS_Conn_count_too_large");
        }
        if msg.confirmed && !self.confirmed {
            self.confirmed = true;
            ctx.confirm("dns");
        }

        let id = self.conn_id(ctx);
        let session_ctx = MessageContext {
            ts: ctx.ts,
            resp_multicast: is_multicast(&id.resp_h),
            netbios: id.resp_p == NETBIOS_PORT && id.proto == Proto::Udp,
        };
        let mut done = Vec::new();
        let tracker = self.tracker.get_or_insert_default();
        tracker.message(&msg, &session_ctx, &mut done);
        if msg.too_many_queries {
            // The engine detaches a violating analyzer and never finishes it, while Zeek's removal hook
            // still writes what is pending: write it now rather than lose it.
            tracker.finish(&mut done);
        }
        if tracker.is_idle() {
            self.tracker = None;
        }
        self.write(ctx, done);
    }

    fn write(&self, ctx: &mut Ctx, infos: Vec<Info>) {
        let id = self.conn_id(ctx);
        for info in infos {
            let values = log_values(ctx.uid, &id, &info);
            ctx.log(&SCHEMA, values);
        }
    }

    /// Parses whatever partial message each direction holds (Zeek's `Contents_DNS::Flush`).
    fn flush_partial_messages(&mut self, ctx: &mut Ctx) {
        for side in 0..2 {
            if let Some(partial) = self.framers.as_mut().and_then(|framers| framers[side].flush()) {
                self.message(ctx, None, &partial);
            }
        }
    }
}

impl Analyzer for DnsAnalyzer {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        self.flipped_this_call = false;
        if self.proto != Proto::Tcp {
            self.message(ctx, Some(is_orig), data);
            return;
        }
        let framers = self.framers.get_or_insert_with(Box::default);
        let messages = framers[usize::from(is_orig)].push(data);
        for msg in messages {
            self.message(ctx, Some(is_orig), &msg);
        }
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, _is_orig: bool) {
        self.flipped_this_call = false;
        if self.proto == Proto::Tcp {
            self.flush_partial_messages(ctx);
        }
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.flipped_this_call = false;
        let mut done = Vec::new();
        if let Some(mut tracker) = self.tracker.take() {
            tracker.finish(&mut done);
        }
        self.write(ctx, done);
    }
}

/// The weirds of the analyzer's limits, which make the analysis partial.
const LIMIT_WEIRDS: &[&str] = &["DNS_Conn_count_too_large", "DNS_max_compression_chain_depth_exceeded"];

/// Zeek's `DNS::multicast_subnets` (224.0.0.0/4 and ff00::/8).
fn is_multicast(addr: &IpAddr) -> bool {
    addr.is_multicast()
}

/// A dns.log record from a finished `DNS::Info`.
fn log_values(uid: &str, id: &ConnId, info: &Info) -> Vec<Value> {
    let text = |b: &[u8]| Value::Str(bytes_to_log_string(b));
    let count = |c: Option<u64>| Value::opt_count(c);
    let mut v = Vec::with_capacity(SCHEMA.fields.len());
    v.push(Value::Time(info.ts));
    v.push(Value::str(uid));
    v.extend(id.log_values());
    v.push(Value::Enum(id.proto.as_enum()));
    v.push(Value::Count(u64::from(info.trans_id)));
    v.push(info.rtt.map_or(Value::Unset, Value::Interval));
    v.push(info.query.as_deref().map_or(Value::Unset, text));
    v.push(count(info.qclass.map(u64::from)));
    v.push(Value::opt_str(info.qclass.map(consts::class_name)));
    v.push(count(info.qtype.map(u64::from)));
    v.push(Value::opt_str(info.qtype_name.clone()));
    v.push(count(info.rcode.map(u64::from)));
    v.push(Value::opt_str(info.rcode.map(|r| consts::rcode_name(u16::from(r)))));
    v.extend([info.aa, info.tc, info.rd, info.ra].map(Value::Bool));
    v.push(Value::Count(u64::from(info.z)));
    v.push(info.answers.as_ref().map_or(Value::Unset, |a| Value::Vector(a.iter().map(|s| text(s)).collect())));
    v.push(
        info.ttls
            .as_ref()
            .map_or(Value::Unset, |t| Value::Vector(t.iter().map(|&ttl| Value::Interval(f64::from(ttl))).collect())),
    );
    v.push(Value::Bool(info.rejected));
    v.push(count(info.opcode.map(u64::from)));
    v.push(Value::opt_str(info.opcode_name.clone()));
    v
}

/// Where a TCP direction is in its current message (Zeek's `Contents_DNS`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FrameState {
    #[default]
    LengthHigh,
    LengthLow,
    Body,
}

/// Splits one TCP direction into DNS messages.
#[derive(Debug, Default)]
struct TcpFramer {
    state: FrameState,
    size: usize,
    buf: Vec<u8>,
}

impl TcpFramer {
    /// Feeds stream bytes; returns the messages they complete.
    fn push(&mut self, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut messages = Vec::new();
        while let Some((&first, rest)) = data.split_first() {
            match self.state {
                FrameState::LengthHigh => {
                    self.size = usize::from(first) << 8;
                    self.state = FrameState::LengthLow;
                    data = rest;
                }
                FrameState::LengthLow => {
                    self.size |= usize::from(first);
                    self.state = FrameState::Body;
                    self.buf.clear();
                    data = rest;
                }
                FrameState::Body => {
                    let take = self.size.saturating_sub(self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.buf.len() >= self.size {
                        messages.push(self.buf[..self.size].to_vec());
                        self.buf.clear();
                        self.state = FrameState::LengthHigh;
                    }
                }
            }
        }
        messages
    }

    /// The partial message, if any. Like Zeek, this forgets the expected size but keeps the bytes.
    fn flush(&mut self) -> Option<Vec<u8>> {
        if self.buf.is_empty() {
            return None;
        }
        self.size = 0;
        Some(self.buf.clone())
    }
}

/// Drives the analyzer over arbitrary bytes for fuzzing: the input is used as UDP datagrams and as a TCP
/// stream in both directions, split at a point taken from the input itself. Must never panic.
pub fn fuzz(data: &[u8]) {
    for proto in [Proto::Udp, Proto::Tcp] {
        for resp_p in [53, NETBIOS_PORT, 5353] {
            super::fuzzing::drive(&mut DnsAnalyzer::new(proto), proto, resp_p, data);
        }
    }
}

#[cfg(test)]
mod tests;
