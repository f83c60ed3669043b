//! The notice framework (Zeek's base/frameworks/notice): [`Notice`], notice.log in Zeek's 26 columns, and
//! suppression by `(note, identifier)` for `suppress_for`, shared by every node of the cluster.
//!
//! The flow is Zeek's: a node raising a notice checks its own suppression table and sends the notice to the
//! manager (`Notice::cluster_notice`); the manager checks its table, writes notice.log and publishes
//! `Notice::begin_suppression` to workers and proxies, so the same notice is not raised again anywhere until the
//! suppression ends.

use std::collections::HashMap;
use std::net::IpAddr;

use super::runtime::Cx;
use super::{Data, Event, Role};
use crate::analyzers::{ConnId, Proto};
use crate::cluster::data::Transport as PortProto;
use crate::logs::conn_fields;
use crate::logs::{LogRecord, Schema, Value, f};

pub const CLUSTER_NOTICE: &str = "Notice::cluster_notice";
pub const BEGIN_SUPPRESSION: &str = "Notice::begin_suppression";

/// notice.log as Zeek 9.1 writes it (base/frameworks/notice/main.zeek, with the geo columns of `remote_location`).
pub static NOTICE_LOG: Schema = Schema {
    path: "notice",
    fields: conn_fields![
        f("fuid", "string"),
        f("file_mime_type", "string"),
        f("file_desc", "string"),
        f("proto", "enum"),
        f("note", "enum"),
        f("msg", "string"),
        f("sub", "string"),
        f("src", "addr"),
        f("dst", "addr"),
        f("p", "port"),
        f("n", "count"),
        f("peer_descr", "string"),
        f("actions", "set[enum]"),
        f("email_dest", "set[string]"),
        f("suppress_for", "interval"),
        f("remote_location.country_code", "string"),
        f("remote_location.region", "string"),
        f("remote_location.city", "string"),
        f("remote_location.latitude", "double"),
        f("remote_location.longitude", "double"),
    ],
};

/// One notice (Zeek's `Notice::Info`, the fields a detection sets).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Notice {
    /// Set from network time when raised, if left empty.
    pub ts: Option<f64>,
    /// `DoS::Threshold`, `Scan::Port_Scan`, ...
    pub note: String,
    pub msg: String,
    pub sub: Option<String>,
    pub uid: Option<String>,
    pub id: Option<ConnId>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub p: Option<(u16, Proto)>,
    pub n: Option<u64>,
    /// Notices with the same note and identifier are suppressed for `suppress_for`; without one, never.
    pub identifier: Option<String>,
    /// Default: `notice.suppress_for` of the configuration (1 hour, Zeek's `default_suppression_interval`).
    pub suppress_for: Option<f64>,
}

impl Notice {
    pub fn new(note: &str, msg: impl Into<String>) -> Self {
        Notice { note: note.to_string(), msg: msg.into(), ..Notice::default() }
    }

    /// Zeek's `sub`: a second line of detail.
    pub fn sub_message(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    pub fn src(mut self, a: IpAddr) -> Self {
        self.src = Some(a);
        self
    }

    pub fn dst(mut self, a: IpAddr) -> Self {
        self.dst = Some(a);
        self
    }

    pub fn port(mut self, p: u16, proto: Proto) -> Self {
        self.p = Some((p, proto));
        self
    }

    pub fn n(mut self, n: u64) -> Self {
        self.n = Some(n);
        self
    }

    pub fn identifier(mut self, id: impl Into<String>) -> Self {
        self.identifier = Some(id.into());
        self
    }

    pub fn suppress_for(mut self, secs: f64) -> Self {
        self.suppress_for = Some(secs);
        self
    }

    /// The connection the notice is about; `src`, `dst` and `p` default to its endpoints, as in Zeek.
    pub fn conn(mut self, uid: &str, id: ConnId) -> Self {
        self.uid = Some(uid.to_string());
        self.id = Some(id);
        self
    }

    fn suppression_key(&self) -> Option<(String, String)> {
        self.identifier.as_ref().map(|i| (self.note.clone(), i.clone()))
    }

    /// The manager's part: drop if suppressed, else log, suppress, and tell workers and proxies to suppress.
    pub(super) fn raise_on_manager(self, cx: &mut Cx) {
        let now = cx.now();
        if cx.suppression().is_suppressed(&self, now) {
            return;
        }
        cx.suppression().begin(&self, now);
        if let Some((note, identifier)) = self.suppression_key() {
            let until = now + self.suppress_for.unwrap_or(0.0);
            let args = vec![Data::Str(note), Data::Str(identifier), Data::Time(until)];
            cx.publish_role(Role::Worker, BEGIN_SUPPRESSION, args.clone());
            cx.publish_role(Role::Proxy, BEGIN_SUPPRESSION, args);
        }
        cx.log(self.log_record());
    }

    /// The notice.log record, with Zeek's defaults applied (src/dst/p from the connection, `proto` from the port).
    pub fn log_record(&self) -> LogRecord {
        let src = self.src.or(self.id.map(|i| i.orig_h));
        let dst = self.dst.or(self.id.map(|i| i.resp_h));
        let p = self.p.or(self.id.map(|i| (i.resp_p, i.proto)));
        let id_values = match &self.id {
            Some(id) => id.log_values().to_vec(),
            None => vec![Value::Unset; 4],
        };
        let mut v = vec![Value::Time(self.ts.unwrap_or(0.0)), Value::opt_str(self.uid.clone())];
        v.extend(id_values);
        v.extend([Value::Unset, Value::Unset, Value::Unset]);
        v.push(p.map_or(Value::Unset, |(_, proto)| Value::Enum(proto.as_enum())));
        v.extend([
            Value::Enum(leak_note(&self.note)),
            Value::str(&self.msg),
            Value::opt_str(self.sub.clone()),
            src.map_or(Value::Unset, Value::Addr),
            dst.map_or(Value::Unset, Value::Addr),
            p.map_or(Value::Unset, |(port, _)| Value::Port(port)),
            Value::opt_count(self.n),
            Value::Unset,
            Value::Set(vec![Value::Enum("Notice::ACTION_LOG")]),
            Value::Set(vec![]),
            Value::Interval(self.suppress_for.unwrap_or(0.0)),
        ]);
        v.extend([Value::Unset, Value::Unset, Value::Unset, Value::Unset, Value::Unset]);
        LogRecord::new(&NOTICE_LOG, v)
    }

    /// The notice as one event argument.
    pub fn to_data(&self) -> Data {
        let opt_addr = |a: Option<IpAddr>| a.map_or(Data::Unset, Data::Addr);
        let port = |p: Option<(u16, Proto)>| p.map_or(Data::Unset, |(n, proto)| Data::Port(n, port_proto(proto)));
        let id = self.id.map_or(Data::Unset, |i| {
            Data::Record(vec![
                Data::Addr(i.orig_h),
                Data::Port(i.orig_p, port_proto(i.proto)),
                Data::Addr(i.resp_h),
                Data::Port(i.resp_p, port_proto(i.proto)),
            ])
        });
        let opt_str = |s: &Option<String>| s.clone().map_or(Data::Unset, Data::Str);
        Data::Record(vec![
            self.ts.map_or(Data::Unset, Data::Time),
            Data::Str(self.note.clone()),
            Data::Str(self.msg.clone()),
            opt_str(&self.sub),
            opt_str(&self.uid),
            id,
            opt_addr(self.src),
            opt_addr(self.dst),
            port(self.p),
            self.n.map_or(Data::Unset, Data::Count),
            opt_str(&self.identifier),
            self.suppress_for.map_or(Data::Unset, Data::Interval),
        ])
    }

    pub fn from_data(d: &Data) -> Option<Notice> {
        let Data::Record(fields) = d else { return None };
        let [ts, note, msg, sub, uid, id, src, dst, p, n, identifier, suppress_for] = fields.as_slice() else {
            return None;
        };
        let opt_str = |d: &Data| d.as_str().map(str::to_string);
        let port = |d: &Data| match d {
            Data::Port(n, t) => Some((*n, proto_of(*t))),
            _ => None,
        };
        let id = match id {
            Data::Record(parts) => match parts.as_slice() {
                [Data::Addr(oh), Data::Port(op, t), Data::Addr(rh), Data::Port(rp, _)] => {
                    Some(ConnId { orig_h: *oh, orig_p: *op, resp_h: *rh, resp_p: *rp, proto: proto_of(*t) })
                }
                _ => None,
            },
            _ => None,
        };
        let time = |d: &Data| match d {
            Data::Time(t) | Data::Interval(t) => Some(*t),
            _ => None,
        };
        Some(Notice {
            ts: time(ts),
            note: note.as_str()?.to_string(),
            msg: msg.as_str()?.to_string(),
            sub: opt_str(sub),
            uid: opt_str(uid),
            id,
            src: src.as_addr(),
            dst: dst.as_addr(),
            p: port(p),
            n: n.as_count(),
            identifier: opt_str(identifier),
            suppress_for: time(suppress_for),
        })
    }
}

fn port_proto(p: Proto) -> PortProto {
    match p {
        Proto::Tcp => PortProto::Tcp,
        Proto::Udp => PortProto::Udp,
        Proto::Icmp => PortProto::Icmp,
        Proto::Unknown => PortProto::Unknown,
    }
}

fn proto_of(t: PortProto) -> Proto {
    match t {
        PortProto::Tcp => Proto::Tcp,
        PortProto::Udp => Proto::Udp,
        PortProto::Icmp => Proto::Icmp,
        PortProto::Unknown => Proto::Unknown,
    }
}

/// Log enums are `&'static str`; notice types are few and fixed per analysis, so each distinct one is interned.
fn leak_note(note: &str) -> &'static str {
    use std::sync::Mutex;
    static NOTES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut notes = NOTES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(n) = notes.iter().find(|n| **n == note) {
        return n;
    }
    let interned: &'static str = Box::leak(note.to_string().into_boxed_str());
    notes.push(interned);
    interned
}

/// One node's suppression table: `(note, identifier)` → end of suppression (network time).
#[derive(Debug, Default)]
pub struct Suppression {
    until: HashMap<(String, String), f64>,
}

impl Suppression {
    pub fn is_suppressed(&self, n: &Notice, now: f64) -> bool {
        n.suppression_key().and_then(|k| self.until.get(&k)).is_some_and(|until| *until > now)
    }

    pub fn begin(&mut self, n: &Notice, now: f64) {
        if let Some(k) = n.suppression_key() {
            self.insert(k, now + n.suppress_for.unwrap_or(0.0));
        }
    }

    fn insert(&mut self, key: (String, String), until: f64) {
        let slot = self.until.entry(key).or_insert(until);
        *slot = slot.max(until);
    }

    pub fn expire(&mut self, now: f64) {
        self.until.retain(|_, until| *until > now);
    }
}

/// What the framework does with an incoming event.
pub(super) enum Framework {
    /// Not a notice-framework event: the analyses get it.
    NotMine,
    /// Applied (a suppression began).
    Handled,
    /// A notice for the manager to raise.
    Raise(Box<Notice>),
}

/// Handles `Notice::*` events: the manager raises cluster notices, the other nodes record suppressions.
pub(super) fn framework_event(ev: &Event, role: Role, suppression: &mut Suppression) -> Framework {
    match ev.name.as_str() {
        CLUSTER_NOTICE if role == Role::Manager => {
            ev.args.first().and_then(Notice::from_data).map_or(Framework::Handled, |n| Framework::Raise(Box::new(n)))
        }
        BEGIN_SUPPRESSION => {
            if let ([Data::Str(note), Data::Str(identifier), Data::Time(until)], true) =
                (ev.args.as_slice(), role != Role::Manager)
            {
                suppression.insert((note.clone(), identifier.clone()), *until);
            }
            Framework::Handled
        }
        CLUSTER_NOTICE => Framework::Handled,
        _ => Framework::NotMine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_round_trips_as_data() {
        let id = ConnId {
            orig_h: "10.0.0.1".parse().unwrap(),
            orig_p: 1234,
            resp_h: "10.0.0.2".parse().unwrap(),
            resp_p: 3389,
            proto: Proto::Udp,
        };
        let n = Notice::new("DoS::Victim", "m")
            .sub_message("s")
            .conn("C1", id)
            .n(3)
            .identifier("10.0.0.2")
            .suppress_for(60.0);
        let n = Notice { ts: Some(5.0), ..n };
        assert_eq!(Notice::from_data(&n.to_data()), Some(n));
    }

    #[test]
    fn log_record_has_zeeks_columns_and_defaults() {
        let n =
            Notice { ts: Some(1.0), ..Notice::new("SSH::Password_Guessing", "x").src("192.168.56.1".parse().unwrap()) }
                .identifier("192.168.56.1")
                .suppress_for(3600.0);
        let r = n.log_record();
        assert_eq!(r.values.len(), 26);
        let mut line = String::new();
        crate::logs::format_record_tsv(&mut line, &r);
        assert_eq!(
            line,
            "1.000000\t-\t-\t-\t-\t-\t-\t-\t-\t-\tSSH::Password_Guessing\tx\t-\t192.168.56.1\t-\t-\t-\t-\t\
             Notice::ACTION_LOG\t(empty)\t3600.000000\t-\t-\t-\t-\t-\n"
        );
    }

    #[test]
    fn suppression_needs_an_identifier_and_ends() {
        let mut s = Suppression::default();
        let n = Notice::new("A::B", "m").identifier("x").suppress_for(10.0);
        s.begin(&n, 100.0);
        assert!(s.is_suppressed(&n, 109.0));
        assert!(!s.is_suppressed(&n, 110.0));
        let anonymous = Notice::new("A::B", "m").suppress_for(10.0);
        s.begin(&anonymous, 100.0);
        assert!(!s.is_suppressed(&anonymous, 101.0));
    }
}
