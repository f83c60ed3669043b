//! Intel (Zeek's base/frameworks/intel with the policy/frameworks/intel/seen scripts).
//!
//! The manager reads intel files in Zeek's format and publishes the whole watch list to the workers
//! (`Intel::snapshot`, manager → workers): at start, to a worker that joins later (`Cluster::node_up`), and again
//! when a file changes. Workers match addresses of connections, DNS queries, HTTP hosts, URLs and user agents, TLS
//! server names, certificate SHA-1s and mail addresses, and write intel.log with Zeek's columns.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use ipnet::IpNet;

use super::events::EngineEvent;
use super::{Analysis, Cx, Data, DetectConfig, Event, Handler, Role};
use crate::analyzers::ConnId;
use crate::cluster::node::NODE_UP_EVENT;
use crate::cluster::topic;
use crate::logs::conn_fields;
use crate::logs::{LogRecord, Schema, Value, f};

pub const SNAPSHOT: &str = "Intel::snapshot";

/// intel.log as Zeek 9.1 writes it with the default scripts (base/frameworks/intel/main.zeek and files.zeek).
pub static INTEL_LOG: Schema = Schema {
    path: "intel",
    fields: conn_fields![
        f("seen.indicator", "string"),
        f("seen.indicator_type", "enum"),
        f("seen.where", "enum"),
        f("seen.node", "string"),
        f("matched", "set[enum]"),
        f("sources", "set[string]"),
        f("fuid", "string"),
        f("file_mime_type", "string"),
        f("file_desc", "string"),
    ],
};

/// The indicator types this node reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntelType {
    Addr,
    Subnet,
    Domain,
    Url,
    Software,
    Email,
    CertHash,
}

impl IntelType {
    pub const ALL: [IntelType; 7] = [
        IntelType::Addr,
        IntelType::Subnet,
        IntelType::Domain,
        IntelType::Url,
        IntelType::Software,
        IntelType::Email,
        IntelType::CertHash,
    ];

    pub fn as_enum(self) -> &'static str {
        match self {
            IntelType::Addr => "Intel::ADDR",
            IntelType::Subnet => "Intel::SUBNET",
            IntelType::Domain => "Intel::DOMAIN",
            IntelType::Url => "Intel::URL",
            IntelType::Software => "Intel::SOFTWARE",
            IntelType::Email => "Intel::EMAIL",
            IntelType::CertHash => "Intel::CERT_HASH",
        }
    }

    pub fn parse(s: &str) -> Option<IntelType> {
        IntelType::ALL.into_iter().find(|t| t.as_enum() == s)
    }
}

/// One line of an intel file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Item {
    pub indicator: String,
    pub kind: IntelType,
    pub source: String,
}

impl Item {
    fn to_data(&self) -> Data {
        Data::Record(vec![
            Data::Str(self.indicator.clone()),
            Data::Enum(self.kind.as_enum().to_string()),
            Data::Str(self.source.clone()),
        ])
    }

    fn from_data(d: &Data) -> Option<Item> {
        let Data::Record(f) = d else { return None };
        let [indicator, kind, source] = f.as_slice() else { return None };
        Some(Item {
            indicator: indicator.as_str()?.to_string(),
            kind: IntelType::parse(kind.as_str()?)?,
            source: source.as_str()?.to_string(),
        })
    }
}

/// A line of an intel file that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct IntelLineError {
    pub line: usize,
    pub reason: String,
}

/// Reads Zeek's intel format: a `#fields` header naming `indicator`, `indicator_type` and `meta.source` (other
/// columns are ignored), then tab-separated lines. Bad lines are reported and skipped, as Zeek's input framework
/// does.
pub fn parse_intel(text: &str) -> (Vec<Item>, Vec<IntelLineError>) {
    let mut columns: Option<(usize, usize, Option<usize>)> = None;
    let (mut items, mut errors) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut err = |reason: String| errors.push(IntelLineError { line: line_no, reason });
        if let Some(header) = line.strip_prefix("#fields") {
            let names: Vec<&str> = header.split('\t').filter(|s| !s.is_empty()).collect();
            let pos = |n: &str| names.iter().position(|c| *c == n);
            match (pos("indicator"), pos("indicator_type")) {
                (Some(a), Some(b)) => columns = Some((a, b, pos("meta.source"))),
                _ => err("#fields needs indicator and indicator_type".into()),
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((ind, ty, src)) = columns else {
            err("data before the #fields header".into());
            continue;
        };
        let cells: Vec<&str> = line.split('\t').collect();
        let (Some(indicator), Some(kind)) = (cells.get(ind), cells.get(ty)) else {
            err("too few columns".into());
            continue;
        };
        let Some(kind) = IntelType::parse(kind.trim()) else {
            err(format!("unknown indicator type '{kind}'"));
            continue;
        };
        let indicator = indicator.trim().to_string();
        let valid = match kind {
            IntelType::Addr => indicator.parse::<IpAddr>().is_ok(),
            IntelType::Subnet => indicator.parse::<IpNet>().is_ok(),
            _ => !indicator.is_empty(),
        };
        if !valid {
            err(format!("'{indicator}' is not a valid {}", kind.as_enum()));
            continue;
        }
        let source = src.and_then(|s| cells.get(s)).map_or(String::new(), |s| s.trim().to_string());
        items.push(Item { indicator, kind, source });
    }
    (items, errors)
}

/// The worker's watch list, indexed for matching.
#[derive(Debug, Default)]
struct WatchList {
    addrs: HashMap<IpAddr, BTreeSet<String>>,
    subnets: Vec<(IpNet, String)>,
    /// Lower-cased indicator and type → sources (Zeek's intel is case-insensitive).
    strings: HashMap<(String, IntelType), BTreeSet<String>>,
}

impl WatchList {
    fn from_items(items: &[Item]) -> Self {
        let mut w = WatchList::default();
        for it in items {
            match it.kind {
                IntelType::Addr => {
                    if let Ok(a) = it.indicator.parse() {
                        w.addrs.entry(a).or_default().insert(it.source.clone());
                    }
                }
                IntelType::Subnet => {
                    if let Ok(n) = it.indicator.parse::<IpNet>() {
                        w.subnets.push((n.trunc(), it.source.clone()));
                    }
                }
                kind => {
                    w.strings.entry((it.indicator.to_lowercase(), kind)).or_default().insert(it.source.clone());
                }
            }
        }
        w
    }

    /// The matched types and sources for an address.
    fn host(&self, a: IpAddr) -> Option<(BTreeSet<IntelType>, BTreeSet<String>)> {
        let mut types = BTreeSet::new();
        let mut sources = BTreeSet::new();
        if let Some(s) = self.addrs.get(&a) {
            types.insert(IntelType::Addr);
            sources.extend(s.iter().cloned());
        }
        for (_, src) in self.subnets.iter().filter(|(n, _)| n.contains(&a)) {
            types.insert(IntelType::Subnet);
            sources.insert(src.clone());
        }
        (!types.is_empty()).then_some((types, sources))
    }

    fn string(&self, s: &str, kind: IntelType) -> Option<&BTreeSet<String>> {
        self.strings.get(&(s.to_lowercase(), kind))
    }
}

/// Where an indicator was seen (Zeek's `Intel::Where` values).
struct Seen<'a> {
    ts: f64,
    uid: Option<&'a str>,
    id: Option<ConnId>,
    indicator: String,
    kind: IntelType,
    where_: &'static str,
    file: Option<(&'a str, Option<&'a str>)>,
}

impl<'a> Seen<'a> {
    fn in_conn(ts: f64, uid: &'a str, id: ConnId, indicator: String, kind: IntelType, where_: &'static str) -> Self {
        Seen { ts, uid: Some(uid), id: Some(id), indicator, kind, where_, file: None }
    }
}

pub struct Intel;

impl Analysis for Intel {
    fn name(&self) -> &'static str {
        "intel"
    }

    fn events(&self) -> &'static [&'static str] {
        &[SNAPSHOT, NODE_UP_EVENT]
    }

    fn handler(&self, role: Role, cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(IntelWorker::default())),
            Role::Manager => Some(Box::new(IntelManager::new(cfg.intel.files.clone()))),
            _ => None,
        }
    }
}

struct IntelManager {
    files: Vec<PathBuf>,
    /// Modification times at the last read, to notice changes.
    mtimes: Vec<Option<SystemTime>>,
    items: Vec<Item>,
    last_check: f64,
}

impl IntelManager {
    fn new(files: Vec<PathBuf>) -> Self {
        IntelManager { mtimes: vec![None; files.len()], files, items: Vec::new(), last_check: 0.0 }
    }

    fn mtime(p: &PathBuf) -> Option<SystemTime> {
        std::fs::metadata(p).and_then(|m| m.modified()).ok()
    }

    fn load(&mut self) {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for (i, path) in self.files.iter().enumerate() {
            self.mtimes[i] = Self::mtime(path);
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "intel file unreadable: {e}");
                    continue;
                }
            };
            let (file_items, errors) = parse_intel(&text);
            for e in errors {
                tracing::warn!(file = %path.display(), "intel: {e}");
            }
            items.extend(file_items.into_iter().filter(|it| seen.insert(it.clone())));
        }
        tracing::info!(items = items.len(), files = self.files.len(), "intel watch list loaded");
        self.items = items;
    }

    fn snapshot(&self) -> Vec<Data> {
        vec![Data::Vector(self.items.iter().map(Item::to_data).collect())]
    }
}

impl Handler for IntelManager {
    fn init(&mut self, cx: &mut Cx) {
        self.load();
        cx.publish_role(Role::Worker, SNAPSHOT, self.snapshot());
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        // A worker that joins later gets the current list on its own topic.
        if ev.name == NODE_UP_EVENT
            && let (Some(name), Some("worker")) =
                (ev.args.first().and_then(Data::as_str), ev.args.get(1).and_then(Data::as_str))
        {
            cx.publish(&topic::node_topic(name), SNAPSHOT, self.snapshot());
        }
    }

    fn tick(&mut self, cx: &mut Cx) {
        if cx.now() - self.last_check < cx.config().intel.reload_check {
            return;
        }
        self.last_check = cx.now();
        let changed = self.files.iter().zip(&self.mtimes).any(|(p, old)| Self::mtime(p) != *old);
        if changed {
            self.load();
            cx.publish_role(Role::Worker, SNAPSHOT, self.snapshot());
        }
    }
}

#[derive(Default)]
struct IntelWorker {
    watch: WatchList,
}

impl IntelWorker {
    fn match_host(&self, cx: &mut Cx, ts: f64, uid: &str, id: ConnId, host: IpAddr, where_: &'static str) {
        if let Some((types, sources)) = self.watch.host(host) {
            let seen = Seen {
                ts,
                uid: Some(uid),
                id: Some(id),
                indicator: host.to_string(),
                kind: IntelType::Addr,
                where_,
                file: None,
            };
            cx.log(intel_record(&seen, cx.node_name(), &types, &sources));
        }
    }

    fn match_string(&self, cx: &mut Cx, seen: Seen) {
        if let Some(sources) = self.watch.string(&seen.indicator, seen.kind) {
            let types = BTreeSet::from([seen.kind]);
            cx.log(intel_record(&seen, cx.node_name(), &types, sources));
        }
    }

    fn observe(&self, ev: &EngineEvent, cx: &mut Cx) {
        match ev {
            EngineEvent::ConnectionFinished(c) => {
                self.match_host(cx, c.ts, &c.uid, c.id, c.id.orig_h, "Conn::IN_ORIG");
                self.match_host(cx, c.ts, &c.uid, c.id, c.id.resp_h, "Conn::IN_RESP");
            }
            EngineEvent::DnsRequest(d) => self.match_string(
                cx,
                Seen::in_conn(d.ts, &d.uid, d.id, d.query.clone(), IntelType::Domain, "DNS::IN_REQUEST"),
            ),
            EngineEvent::HttpRequest(h) => {
                if let Some(host) = &h.host {
                    let host = host.split(':').next().unwrap_or(host).to_string();
                    self.match_string(
                        cx,
                        Seen::in_conn(h.ts, &h.uid, h.id, host, IntelType::Domain, "HTTP::IN_HOST_HEADER"),
                    );
                }
                if let Some(url) = h.url() {
                    self.match_string(cx, Seen::in_conn(h.ts, &h.uid, h.id, url, IntelType::Url, "HTTP::IN_URL"));
                }
                if let Some(ua) = &h.user_agent {
                    let where_ = "HTTP::IN_USER_AGENT_HEADER";
                    self.match_string(cx, Seen::in_conn(h.ts, &h.uid, h.id, ua.clone(), IntelType::Software, where_));
                }
            }
            EngineEvent::TlsSession(t) => {
                if let Some(sni) = &t.server_name {
                    let where_ = "SSL::IN_SERVER_NAME";
                    self.match_string(cx, Seen::in_conn(t.ts, &t.uid, t.id, sni.clone(), IntelType::Domain, where_));
                }
            }
            EngineEvent::Certificate(c) => self.match_string(
                cx,
                Seen {
                    file: Some((&c.fuid, c.mime_type.as_deref())),
                    ..Seen::in_conn(c.ts, &c.uid, c.id, c.sha1.clone(), IntelType::CertHash, "X509::IN_CERT")
                },
            ),
            EngineEvent::SmtpMessage(m) => {
                let headers: [(&'static str, Vec<&str>); 5] = [
                    ("SMTP::IN_MAIL_FROM", m.mailfrom.iter().map(String::as_str).collect()),
                    ("SMTP::IN_RCPT_TO", m.rcptto.iter().map(String::as_str).collect()),
                    ("SMTP::IN_FROM", m.from.iter().map(String::as_str).collect()),
                    ("SMTP::IN_TO", m.to.iter().map(String::as_str).collect()),
                    ("SMTP::IN_CC", m.cc.iter().map(String::as_str).collect()),
                ];
                for (where_, values) in headers {
                    for addr in values.into_iter().flat_map(email_addresses) {
                        self.match_string(cx, Seen::in_conn(m.ts, &m.uid, m.id, addr, IntelType::Email, where_));
                    }
                }
            }
            _ => {}
        }
    }
}

impl Handler for IntelWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        self.observe(ev, cx);
    }

    fn event(&mut self, ev: &Event, _cx: &mut Cx) {
        if ev.name != SNAPSHOT {
            return;
        }
        let Some(Data::Vector(items)) = ev.args.first() else { return };
        let items: Vec<Item> = items.iter().filter_map(Item::from_data).collect();
        tracing::info!(items = items.len(), "intel watch list received");
        self.watch = WatchList::from_items(&items);
    }
}

/// The mail addresses in a header value (Zeek's `extract_email_addrs_set`).
pub fn email_addresses(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for token in value.split(['<', '>', ',', ';', '"', ' ', '\t']) {
        let token = token.trim();
        if token.contains('@') && !token.starts_with('@') && !token.ends_with('@') && !out.iter().any(|t| t == token) {
            out.push(token.to_string());
        }
    }
    out
}

fn intel_record(s: &Seen, node: &str, types: &BTreeSet<IntelType>, sources: &BTreeSet<String>) -> LogRecord {
    let mut v = vec![Value::Time(s.ts), Value::opt_str(s.uid)];
    match &s.id {
        Some(id) => v.extend(id.log_values()),
        None => v.extend([Value::Unset, Value::Unset, Value::Unset, Value::Unset]),
    }
    v.extend([
        Value::str(&s.indicator),
        Value::Enum(s.kind.as_enum()),
        Value::Enum(s.where_),
        Value::str(node),
        Value::Set(types.iter().map(|t| Value::Enum(t.as_enum())).collect()),
        Value::str_set(sources.iter().cloned()),
        Value::opt_str(s.file.map(|(fuid, _)| fuid)),
        Value::opt_str(s.file.and_then(|(_, mime)| mime)),
        Value::Unset,
    ]);
    LogRecord::new(&INTEL_LOG, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zeeks_intel_format() {
        let text = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n\
                    10.1.1.1\tIntel::ADDR\tfeed-a\tbad host\n\
                    10.2.0.0/16\tIntel::SUBNET\tfeed-b\t-\n\
                    Evil.Example.com\tIntel::DOMAIN\tfeed-a\t-\n\
                    nope\tIntel::ADDR\tfeed-a\t-\n\
                    x\tIntel::BOGUS\tfeed-a\t-\n";
        let (items, errors) = parse_intel(text);
        assert_eq!(items.len(), 3);
        assert_eq!(errors.len(), 2);
        let w = WatchList::from_items(&items);
        let (types, sources) = w.host("10.2.3.4".parse().unwrap()).unwrap();
        assert_eq!(types, BTreeSet::from([IntelType::Subnet]));
        assert_eq!(sources, BTreeSet::from(["feed-b".to_string()]));
        assert!(w.string("evil.example.COM", IntelType::Domain).is_some());
        assert!(w.host("10.3.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn mail_addresses_from_headers() {
        assert_eq!(
            email_addresses("\"Bob\" <bob@example.com>, carol@example.org"),
            ["bob@example.com", "carol@example.org"]
        );
        assert!(email_addresses("undisclosed-recipients:;").is_empty());
    }
}
