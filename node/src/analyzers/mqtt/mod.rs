//! MQTT (tcp 1883) to mqtt_connect.log, mqtt_subscribe.log and mqtt_publish.log, as Zeek's binpac analyzer
//! (src/analyzer/protocol/mqtt: mqtt.pac, mqtt-protocol.pac, commands/*.pac, MQTT.cc) and
//! base/protocols/mqtt/main.zeek and consts.zeek do it (base since Zeek 6.0; policy/protocols/mqtt before).
//!
//! Each delivery is one PDU ([`parse`]: binpac's datagram flow). A CONNECT or a PUBLISH parsed whole confirms.
//! A violation (the remaining length's, or a binpac exception) ends the analysis, as Zeek's DPD disables the
//! analyzer; the remaining length's violation comes before the command is parsed with a length of 0, which for the
//! commands the logs use is an exception too.
//!
//! The script keeps per connection `c$mqtt` (the connect record, started with the time of the first MQTT event
//! that calls `set_session`) and two tables by message id: publishes not yet logged and subscriptions not yet
//! acknowledged. CONNECT fills the connect record and each CONNACK writes it. SUBSCRIBE and UNSUBSCRIBE wait in
//! the table for their SUBACK or UNSUBACK, which writes them acknowledged. A PUBLISH of QoS 0 is written at once
//! (`ok`); QoS 1 is written `ok` by a PUBACK with its id, QoS 2 by the PUBCOMP that completes PUBREC, PUBREL and
//! PUBCOMP with its id (in either direction). Both tables have `&write_expire=5secs` with an `&expire_func` that
//! writes the entry as it stands (a publish `incomplete_qos`, a subscription not acknowledged). Zeek checks a
//! table for expired entries right after it is created (`TableVal::CheckExpireAttr` sets its timer at time 1, due at
//! once) and then `table_expire_interval` (10 s) after each check (`TableVal::DoExpire`), only while the connection
//! exists. That schedule is kept here from the connection's own packets and its end ([`Tables::expire`]).

pub mod parse;

use std::collections::HashMap;

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};
use parse::{Connect, Message, Publish};

pub static CONNECT_LOG: Schema = Schema {
    path: "mqtt_connect",
    fields: conn_fields![
        f("proto_name", "string"),
        f("proto_version", "string"),
        f("client_id", "string"),
        f("connect_status", "string"),
        f("will_topic", "string"),
        f("will_payload", "string"),
    ],
};

pub static SUBSCRIBE_LOG: Schema = Schema {
    path: "mqtt_subscribe",
    fields: conn_fields![
        f("action", "enum"),
        f("topics", "vector[string]"),
        f("qos_levels", "vector[count]"),
        f("granted_qos_level", "count"),
        f("ack", "bool"),
    ],
};

pub static PUBLISH_LOG: Schema = Schema {
    path: "mqtt_publish",
    fields: conn_fields![
        f("from_client", "bool"),
        f("retain", "bool"),
        f("qos", "string"),
        f("status", "string"),
        f("topic", "string"),
        f("payload", "string"),
        f("payload_len", "count"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "mqtt",
    // main.zeek's `ports`; no signature (the `dpd_mqtt` one went with the Bro-era scripts).
    tcp_ports: &[1883],
    udp_ports: &[],
    detect: None,
    new: |_| Box::<Mqtt>::default(),
    schemas: &[&CONNECT_LOG, &SUBSCRIBE_LOG, &PUBLISH_LOG],
};

/// `MQTT::max_payload_size` (init-bare.zeek): how much of a payload the publish event, and so the log, carries.
pub const MAX_PAYLOAD_SIZE: usize = 100;
/// `&write_expire` of both tables.
const WRITE_EXPIRE: f64 = 5.0;
/// `table_expire_interval`: the time from one check of a table to the next. The first check, right after the table is
/// created, finds nothing old enough.
const TABLE_EXPIRE_INTERVAL: f64 = 10.0;
/// Bytes of topics, payloads and subscription topics one connection's tables hold at most (Zeek has no bound but
/// the expiry). An entry that would pass it is written at once, as its expiry would write it.
const MAX_PENDING_BYTES: usize = 4 << 20;

/// consts.zeek's `versions`, with its `&default`. The grammar's version is an `int8` assigned to a `count`, so a
/// byte from 0x80 up is a very large count.
pub fn version_name(version: i8) -> String {
    match version {
        3 => "3.1".into(),
        4 => "3.1.1".into(),
        5 => "5.0".into(),
        // Sign extension, then the bits read as unsigned: what the record's count holds.
        _ => format!("unknown-version-{}", i64::from(version).cast_unsigned()),
    }
}

/// consts.zeek's `qos_levels`, with its `&default`.
pub fn qos_name(qos: u8) -> String {
    match qos {
        0 => "at most once".into(),
        1 => "at least once".into(),
        2 => "exactly once".into(),
        _ => format!("unknown-qos-level-{qos}"),
    }
}

/// consts.zeek's `return_codes`, with its `&default`.
pub fn return_code_name(code: u8) -> String {
    match code {
        0 => "Connection Accepted".into(),
        1 => "Refused: unacceptable protocol version".into(),
        2 => "Refused: identifier rejected".into(),
        3 => "Refused: server unavailable".into(),
        4 => "Refused: bad user name or password".into(),
        5 => "Refused: not authorized".into(),
        _ => format!("unknown-return-code-{code}"),
    }
}

/// main.zeek's `ConnectInfo`, after its `ts`, `uid` and `id`.
#[derive(Debug, Clone, Default)]
struct ConnectInfo {
    ts: f64,
    proto_name: Option<String>,
    proto_version: Option<String>,
    client_id: Option<String>,
    connect_status: Option<String>,
    will_topic: Option<String>,
    will_payload: Option<String>,
}

impl ConnectInfo {
    fn record(&self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        for s in [
            &self.proto_name,
            &self.proto_version,
            &self.client_id,
            &self.connect_status,
            &self.will_topic,
            &self.will_payload,
        ] {
            v.push(Value::opt_str(s.clone()));
        }
        v
    }
}

/// main.zeek's `PublishInfo` (its unlogged `ack` is only ever set, so it is not kept).
#[derive(Debug, Clone)]
struct PublishInfo {
    ts: f64,
    from_client: bool,
    retain: bool,
    qos_level: u8,
    status: &'static str,
    topic: String,
    payload: String,
    payload_len: u64,
    rec: bool,
    rel: bool,
    comp: bool,
}

impl PublishInfo {
    fn new(ts: f64, is_orig: bool, msg: &Publish, max_payload: usize) -> Self {
        PublishInfo {
            ts,
            from_client: is_orig,
            retain: msg.retain,
            qos_level: msg.qos,
            status: if msg.qos == 0 { STATUS_OK } else { STATUS_INCOMPLETE },
            topic: bytes_to_log_string(msg.topic),
            payload: bytes_to_log_string(msg.payload.get(..max_payload).unwrap_or(msg.payload)),
            payload_len: msg.payload.len() as u64,
            rec: false,
            rel: false,
            comp: false,
        }
    }

    fn record(&self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::Bool(self.from_client),
            Value::Bool(self.retain),
            Value::Str(qos_name(self.qos_level)),
            Value::str(self.status),
            Value::str(self.topic.as_str()),
            Value::str(self.payload.as_str()),
            Value::Count(self.payload_len),
        ]);
        v
    }

    fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

const STATUS_OK: &str = "ok";
/// `PublishInfo$status`'s `&default`.
const STATUS_INCOMPLETE: &str = "incomplete_qos";

/// main.zeek's `SubscribeInfo`.
#[derive(Debug, Clone)]
struct SubscribeInfo {
    ts: f64,
    action: &'static str,
    topics: Vec<String>,
    qos_levels: Option<Vec<u8>>,
    granted_qos_level: Option<u8>,
    ack: bool,
}

impl SubscribeInfo {
    fn record(&self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::Enum(self.action),
            Value::Vector(self.topics.iter().map(|t| Value::str(t.as_str())).collect()),
            self.qos_levels
                .as_ref()
                .map_or(Value::Unset, |q| Value::Vector(q.iter().map(|&l| Value::Count(u64::from(l))).collect())),
            Value::opt_count(self.granted_qos_level.map(u64::from)),
            Value::Bool(self.ack),
        ]);
        v
    }

    fn size(&self) -> usize {
        self.topics.iter().map(|t| t.len() + 1).sum()
    }
}

/// A table by message id with `&write_expire`: each entry with the time it was written and a serial number for the
/// order of writes (Zeek's own order of expiring several entries at once is its hash table's).
#[derive(Debug)]
struct Pending<T> {
    entries: HashMap<u16, (f64, u64, T)>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending { entries: HashMap::new() }
    }
}

impl<T> Pending<T> {
    /// When the oldest entry was written.
    fn earliest(&self) -> Option<f64> {
        self.entries.values().map(|(written, _, _)| *written).reduce(f64::min)
    }

    /// The entries written before `now - WRITE_EXPIRE` (`TableVal::DoExpire`), removed, in the order written.
    fn take_expired(&mut self, now: f64) -> Vec<T> {
        let mut expired: Vec<(u64, u16)> = self
            .entries
            .iter()
            .filter(|(_, (written, _, _))| written + WRITE_EXPIRE < now)
            .map(|(id, (_, serial, _))| (*serial, *id))
            .collect();
        expired.sort_unstable();
        expired.into_iter().filter_map(|(_, id)| self.entries.remove(&id).map(|(_, _, e)| e)).collect()
    }
}

/// The first of the checks `from`, `from` + 10 s, ... that comes after `t`.
fn first_check_after(from: f64, t: f64) -> f64 {
    if from > t {
        return from;
    }
    let next = from + (((t - from) / TABLE_EXPIRE_INTERVAL).floor() + 1.0) * TABLE_EXPIRE_INTERVAL;
    // Rounding (or a time too large to add to) must not leave the check at or before `t`.
    if next > t { next } else { t + TABLE_EXPIRE_INTERVAL }
}

/// `c$mqtt_state`: the two tables and their expiry timer.
#[derive(Debug)]
struct Tables {
    next_check: f64,
    publish: Pending<PublishInfo>,
    subscribe: Pending<SubscribeInfo>,
    serial: u64,
    /// What the entries hold, against [`MAX_PENDING_BYTES`].
    bytes: usize,
}

impl Tables {
    fn new(now: f64) -> Self {
        Tables {
            next_check: now + TABLE_EXPIRE_INTERVAL,
            publish: Pending::default(),
            subscribe: Pending::default(),
            serial: 0,
            bytes: 0,
        }
    }

    /// Runs the checks due by `now` (the publish table's timer before the subscribe table's: it was created
    /// first), writing what expired. A check runs at its scheduled time, as in a trace dense enough that some packet
    /// comes right after it (Zeek runs a due timer before the next packet, and times the next check from that
    /// packet).
    fn expire(&mut self, ctx: &mut Ctx, now: f64) {
        if !now.is_finite() {
            return;
        }
        while self.next_check <= now {
            // Checks that would find nothing old enough are passed over at once (a capture's clock may jump
            // years): the next one that can expire the oldest entry, if it is due.
            let earliest = self.publish.earliest().into_iter().chain(self.subscribe.earliest()).reduce(f64::min);
            let useful =
                earliest.map_or(f64::INFINITY, |written| first_check_after(self.next_check, written + WRITE_EXPIRE));
            if useful > now {
                self.next_check = first_check_after(self.next_check, now);
                break;
            }
            let at = useful;
            for p in self.publish.take_expired(at) {
                self.bytes = self.bytes.saturating_sub(p.size());
                ctx.log(&PUBLISH_LOG, p.record(ctx));
            }
            for s in self.subscribe.take_expired(at) {
                self.bytes = self.bytes.saturating_sub(s.size());
                ctx.log(&SUBSCRIBE_LOG, s.record(ctx));
            }
            self.next_check = at + TABLE_EXPIRE_INTERVAL;
        }
    }

    /// `c$mqtt_state$publish[msg_id] = pi`: replaces any entry with that id (dropped unlogged, as in Zeek).
    fn put_publish(&mut self, ctx: &mut Ctx, msg_id: u16, p: PublishInfo) {
        if let Some((_, _, old)) = self.publish.entries.remove(&msg_id) {
            self.bytes = self.bytes.saturating_sub(old.size());
        }
        if self.bytes + p.size() > MAX_PENDING_BYTES {
            ctx.log(&PUBLISH_LOG, p.record(ctx));
            return;
        }
        self.bytes += p.size();
        self.serial += 1;
        self.publish.entries.insert(msg_id, (ctx.ts, self.serial, p));
    }

    fn put_subscribe(&mut self, ctx: &mut Ctx, msg_id: u16, s: SubscribeInfo) {
        if let Some((_, _, old)) = self.subscribe.entries.remove(&msg_id) {
            self.bytes = self.bytes.saturating_sub(old.size());
        }
        if self.bytes + s.size() > MAX_PENDING_BYTES {
            ctx.log(&SUBSCRIBE_LOG, s.record(ctx));
            return;
        }
        self.bytes += s.size();
        self.serial += 1;
        self.subscribe.entries.insert(msg_id, (ctx.ts, self.serial, s));
    }

    fn remove_publish(&mut self, msg_id: u16) -> Option<PublishInfo> {
        let (_, _, p) = self.publish.entries.remove(&msg_id)?;
        self.bytes = self.bytes.saturating_sub(p.size());
        Some(p)
    }

    fn remove_subscribe(&mut self, msg_id: u16) -> Option<SubscribeInfo> {
        let (_, _, s) = self.subscribe.entries.remove(&msg_id)?;
        self.bytes = self.bytes.saturating_sub(s.size());
        Some(s)
    }
}

pub struct Mqtt {
    /// `c$mqtt`, from the first event that calls `set_session`.
    info: Option<ConnectInfo>,
    /// `c$mqtt_state`, created with it.
    tables: Option<Tables>,
    /// `MQTT::max_payload_size`.
    max_payload: usize,
    confirmed: bool,
    /// A violation ended the analysis.
    stopped: bool,
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt::with_max_payload(MAX_PAYLOAD_SIZE)
    }
}

impl Mqtt {
    /// An analyzer with `MQTT::max_payload_size` redefined.
    pub fn with_max_payload(max_payload: usize) -> Self {
        Mqtt { info: None, tables: None, max_payload, confirmed: false, stopped: false }
    }

    /// main.zeek's `set_session`: the connect record and the tables, created at the first call.
    fn set_session(&mut self, ts: f64) -> (&mut ConnectInfo, &mut Tables) {
        let info = self.info.get_or_insert_with(|| ConnectInfo { ts, ..Default::default() });
        let tables = self.tables.get_or_insert_with(|| Tables::new(ts));
        (info, tables)
    }

    fn confirm(&mut self, ctx: &mut Ctx) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("mqtt");
        }
    }

    fn stop(&mut self, ctx: &mut Ctx, reason: String) {
        self.stopped = true;
        ctx.violation(reason);
    }

    /// The events of one message, each handler as main.zeek has it.
    fn message(&mut self, ctx: &mut Ctx, is_orig: bool, msg: Message) {
        let ts = ctx.ts;
        match msg {
            Message::Connect(c) => {
                self.connect(ts, &c);
                // connect.pac: "If a connect message was seen, let's say that confirms it."
                self.confirm(ctx);
            }
            Message::Connack { return_code, .. } => {
                let (info, _) = self.set_session(ts);
                info.connect_status = Some(return_code_name(return_code));
                let record = info.record(ctx);
                ctx.log(&CONNECT_LOG, record);
            }
            Message::Publish(p) => {
                let max_payload = self.max_payload;
                let (_, tables) = self.set_session(ts);
                let info = PublishInfo::new(ts, is_orig, &p, max_payload);
                // publish.pac raises the event with id 0 for QoS 0.
                let msg_id = p.msg_id.unwrap_or(0);
                if info.qos_level == 0 {
                    // The -5 handler writes and deletes the entry the 5 handler just put there (replacing another).
                    tables.remove_publish(msg_id);
                    ctx.log(&PUBLISH_LOG, info.record(ctx));
                } else {
                    tables.put_publish(ctx, msg_id, info);
                }
                self.confirm(ctx);
            }
            Message::Puback(msg_id) => {
                let (_, tables) = self.set_session(ts);
                if let Some((_, _, p)) = tables.publish.entries.get_mut(&msg_id)
                    && p.qos_level == 1
                {
                    p.status = STATUS_OK;
                }
                Self::write_if_ok(ctx, tables, msg_id);
            }
            Message::Pubrec(msg_id) => {
                let (_, tables) = self.set_session(ts);
                if let Some((_, _, p)) = tables.publish.entries.get_mut(&msg_id) {
                    p.rec = true;
                }
            }
            Message::Pubrel(msg_id) => {
                let (_, tables) = self.set_session(ts);
                if let Some((_, _, p)) = tables.publish.entries.get_mut(&msg_id) {
                    p.rel = true;
                }
            }
            Message::Pubcomp(msg_id) => {
                let (_, tables) = self.set_session(ts);
                if let Some((_, _, p)) = tables.publish.entries.get_mut(&msg_id) {
                    p.comp = true;
                    if p.qos_level == 2 && p.rec && p.rel && p.comp {
                        p.status = STATUS_OK;
                    }
                }
                Self::write_if_ok(ctx, tables, msg_id);
            }
            Message::Subscribe { msg_id, topics } => {
                let (_, tables) = self.set_session(ts);
                let info = SubscribeInfo {
                    ts,
                    action: "MQTT::SUBSCRIBE",
                    topics: topics.iter().map(|(t, _)| bytes_to_log_string(t)).collect(),
                    qos_levels: Some(topics.iter().map(|(_, q)| *q).collect()),
                    granted_qos_level: None,
                    ack: false,
                };
                tables.put_subscribe(ctx, msg_id, info);
            }
            Message::Suback { msg_id, granted_qos } => {
                let (_, tables) = self.set_session(ts);
                if let Some(mut s) = tables.remove_subscribe(msg_id) {
                    s.granted_qos_level = Some(granted_qos);
                    s.ack = true;
                    ctx.log(&SUBSCRIBE_LOG, s.record(ctx));
                }
            }
            Message::Unsubscribe { msg_id, topics } => {
                let (_, tables) = self.set_session(ts);
                let info = SubscribeInfo {
                    ts,
                    action: "MQTT::UNSUBSCRIBE",
                    topics: topics.iter().map(|t| bytes_to_log_string(t)).collect(),
                    qos_levels: None,
                    granted_qos_level: None,
                    ack: false,
                };
                tables.put_subscribe(ctx, msg_id, info);
            }
            Message::Unsuback(msg_id) => {
                let (_, tables) = self.set_session(ts);
                if let Some(mut s) = tables.remove_subscribe(msg_id) {
                    s.ack = true;
                    ctx.log(&SUBSCRIBE_LOG, s.record(ctx));
                }
            }
            // The base scripts handle no ping or disconnect events.
            Message::Pingreq | Message::Pingresp | Message::Disconnect | Message::Unknown(_) => {}
        }
    }

    /// `mqtt_connect`: the connect record takes the message's fields (a will only when there is one).
    fn connect(&mut self, ts: f64, c: &Connect) {
        let (info, _) = self.set_session(ts);
        info.proto_name = Some(bytes_to_log_string(c.protocol_name));
        info.proto_version = Some(version_name(c.protocol_version));
        info.client_id = Some(bytes_to_log_string(c.client_id));
        if let Some((topic, msg)) = c.will {
            info.will_topic = Some(bytes_to_log_string(topic));
            info.will_payload = Some(bytes_to_log_string(msg));
        }
    }

    /// The -5 handlers of `mqtt_puback` and `mqtt_pubcomp`: an entry now `ok` is written and deleted.
    fn write_if_ok(ctx: &mut Ctx, tables: &mut Tables, msg_id: u16) {
        if tables.publish.entries.get(&msg_id).is_some_and(|(_, _, p)| p.status == STATUS_OK)
            && let Some(p) = tables.remove_publish(msg_id)
        {
            ctx.log(&PUBLISH_LOG, p.record(ctx));
        }
    }
}

impl Analyzer for Mqtt {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        // Zeek's timers run before the packet (and the script's tables outlive a violation).
        if let Some(tables) = &mut self.tables {
            tables.expire(ctx, ctx.ts);
        }
        if self.stopped || data.is_empty() {
            return;
        }
        let pdu = parse::parse_pdu(data);
        if let Some(e) = pdu.length_violation {
            self.stop(ctx, e.to_string());
        }
        match pdu.message {
            // Nothing a command parsed with a length of 0 raises is logged, so the events after a length violation
            // (which Zeek's DPD handles only after this delivery) change nothing.
            Ok(msg) if !self.stopped => self.message(ctx, is_orig, msg),
            Ok(_) => {}
            Err(e) if !self.stopped => self.stop(ctx, e.to_string()),
            Err(_) => {}
        }
    }

    // A content gap is nothing to a datagram flow, nor is the end of a direction: no state spans deliveries.

    fn finish(&mut self, ctx: &mut Ctx) {
        // The checks due before the connection is removed; what is left goes with it, unlogged.
        if let Some(tables) = &mut self.tables {
            tables.expire(ctx, ctx.ts);
        }
        self.tables = None;
    }

    fn is_done(&self) -> bool {
        // After a violation, what is pending still expires while the connection lives (Zeek's script state
        // outlives the analyzer).
        self.stopped
            && self.tables.as_ref().is_none_or(|t| t.publish.entries.is_empty() && t.subscribe.entries.is_empty())
    }
}

/// Fuzz entry point: arbitrary deliveries in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Mqtt::default(), Proto::Tcp, 1883, data);
}

#[cfg(test)]
mod tests;
