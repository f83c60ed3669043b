//! SQL injection attacks in HTTP URIs (Zeek 9.1's policy/protocols/http/detect-sql-injection.zeek, the script the
//! default local.zeek loads; it replaced detect-sqli.zeek).
//!
//! The HTTP analyzer matches each request's unescaped URI against `match_sql_injection_uri`
//! ([`is_sql_injection_bytes`]) and tags a match `HTTP::URI_SQLI` in http.log ([`Analysis::configure_engine`]);
//! workers observe each tagged request twice, as the script's two SumStats streams do: keyed on the client
//! (`http.sqli.attacker`) and on the server (`http.sqli.victim`), each sent by `publish_hrw` to the proxy that owns
//! the key. That proxy sums the observations per SumStats epoch (`http.sqli_requests_interval`) and raises
//! `HTTP::SQL_Injection_Attacker` / `HTTP::SQL_Injection_Victim` once per key and epoch when the sum reaches
//! `http.sqli_requests_threshold`, with the sample's uid and other endpoint (the script keeps one sample).

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::bytes::Regex;

use super::{Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Notice, Role, StateValue};
use crate::config::{AnalysisConfig, UriTag};

pub const SQLI_OBSERVED: &str = "HTTP::sqli_observed";
/// The http.log tag of a request the script counts (`add c$http$tags[URI_SQLI]`).
pub const URI_SQLI: &str = "HTTP::URI_SQLI";
pub const ATTACKER: &str = "HTTP::SQL_Injection_Attacker";
pub const VICTIM: &str = "HTTP::SQL_Injection_Victim";

/// Observations per (stream, host, epoch).
const SUMS: &str = "HTTP::sqli_sums";
/// The sample of each (stream, host, epoch): the observation that came last.
const SAMPLES: &str = "HTTP::sqli_samples";
/// The (stream, host, epoch) keys whose threshold was crossed.
const CROSSED: &str = "HTTP::sqli_crossed";

/// The script's SumStats streams.
const STREAM_ATTACKER: &str = "http.sqli.attacker";
const STREAM_VICTIM: &str = "http.sqli.victim";

/// One of the script's separators: blanks, control characters and `+` (an encoded space), or a `/*...*/` comment.
macro_rules! sep {
    () => {
        r"(?:[[:blank:]\x00-\x1f+]|/\*.*?\*/)"
    };
}

/// The SQL keywords of the first and fourth alternatives.
macro_rules! statements {
    () => {
        "having|union|exec|select|delete|drop|declare|create"
    };
}

/// `HTTP::match_sql_injection_uri`, alternative by alternative, in the regex crate's syntax. Zeek's patterns are
/// matched on bytes (`(?-u)`: `.` is any byte but a newline, classes are byte classes), anywhere in the URI (`in`),
/// and every alternative but the last is case-insensitive (`/.../i`); Zeek's lazy `+?`/`*?` do not change whether a
/// pattern matches somewhere. `\/` is written `/`, which needs no escape here.
static SQL_INJECTION_URI: LazyLock<Regex> = LazyLock::new(|| {
    let alternatives = [
        concat!(
            r"(?i)[?&][^[:blank:]\x00-\x1f|+]+?=[\-[:alnum:]%]+",
            sep!(),
            r"*'?(?:[[:blank:]\x00-\x1f+]|/\*.*?\*/|\)?;)+.*?(?:",
            statements!(),
            "|insert)",
            sep!(),
            "+"
        ),
        concat!(
            r"(?i)[?&][^[:blank:]\x00-\x1f|+]+?=[\-0-9%]+",
            sep!(),
            r"*'?(?:[[:blank:]\x00-\x1f+]|/\*.*?\*/|\)?;)+(?:x?or|n?and)",
            sep!(),
            r"+'?(?:(?:[^a-zA-Z&]+)?=|exists)"
        ),
        concat!(
            r"(?i)[?&][^[:blank:]\x00-\x1f+]+?=[\-0-9%]*",
            sep!(),
            r"*'(?:[[:blank:]\x00-\x1f]|/\*.*?\*/)*(?:-|=|\+|\|\|)",
            sep!(),
            r"*(?:[0-9]|\(?convert|cast)"
        ),
        concat!(
            r"(?i)[?&][^[:blank:]\x00-\x1f|+]+?=",
            sep!(),
            r"*'(?:[[:blank:]\x00-\x1f+]|/\*.*?\*/|;)*(?:x?or|n?and|",
            statements!(),
            r"|regexp|insert)(?:[[:blank:]\x00-\x1f+]|/\*.*?\*/|[\[(])+[a-zA-Z&]{2,}"
        ),
        r"(?i)[?&][^[:blank:]\x00-\x1f+]+?=[^.]*?(?:char|ascii|substring|truncate|version|length)\(",
        r"/\*![[:digit:]]{5}.*?\*/",
    ];
    let pattern = alternatives.map(|a| format!("(?:{a})")).join("|");
    // The pattern is a constant: a failure here is a programming error caught by the unit tests.
    Regex::new(&format!("(?-u){pattern}")).expect("match_sql_injection_uri compiles")
});

/// `match_sql_injection_uri in unescaped_URI`, for the URI's bytes (the HTTP analyzer's request line).
pub fn is_sql_injection_bytes(unescaped_uri: &[u8]) -> bool {
    SQL_INJECTION_URI.is_match(unescaped_uri)
}

/// The SumStats epoch an observation at `ts` falls in: epochs are `interval` long, counted from the Unix epoch.
fn epoch_of(ts: f64, interval: f64) -> u64 {
    let e = (ts / interval).floor();
    if e.is_finite() && e > 0.0 { e as u64 } else { 0 }
}

pub struct SqlInjection;

impl Analysis for SqlInjection {
    fn name(&self) -> &'static str {
        "sqli"
    }

    fn events(&self) -> &'static [&'static str] {
        &[SQLI_OBSERVED]
    }

    /// What loading the script changes in the engine: the HTTP analyzer tags each request whose URI matches with
    /// `HTTP::URI_SQLI` (http.log's `tags`), as the script's `http_request` handler does. The workers' handlers see
    /// a request only once its record is written, too late to add to it.
    fn configure_engine(&self, engine: &mut AnalysisConfig) {
        let tag: UriTag = (URI_SQLI, is_sql_injection_bytes);
        if !engine.http_uri_tags.iter().any(|t| t.0 == URI_SQLI) {
            engine.http_uri_tags.push(tag);
        }
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(SqliWorker)),
            Role::Proxy => Some(Box::new(SqliProxy::default())),
            _ => None,
        }
    }
}

/// A (stream, host, epoch) key: the HRW key and the proxy's state key.
fn sum_key(stream: &str, host: IpAddr, epoch: u64) -> Data {
    Data::Record(vec![Data::Str(stream.to_string()), Data::Addr(host), Data::Count(epoch)])
}

struct SqliWorker;

impl Handler for SqliWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        // The HTTP analyzer matched the URI when it saw the request and tagged it (`configure_engine`), as the
        // script's `http_request` handler does before it observes: the tag is the match.
        let EngineEvent::HttpRequest(h) = ev else { return };
        if !h.tags.contains(&URI_SQLI) {
            return;
        }
        let epoch = epoch_of(h.ts, cx.config().http.sqli_requests_interval);
        let (orig, resp) = (h.id.orig_h, h.id.resp_h);
        for (stream, host, other) in [(STREAM_ATTACKER, orig, resp), (STREAM_VICTIM, resp, orig)] {
            let key = sum_key(stream, host, epoch);
            let args = vec![key.clone(), Data::Time(h.ts), Data::Addr(other), Data::Str(h.uid.clone())];
            cx.publish_hrw(Role::Proxy, &key, SQLI_OBSERVED, args);
        }
    }
}

#[derive(Default)]
struct SqliProxy {
    /// `StateStore::merges` when the sums were last checked (state moved in can cross a threshold).
    merges_checked: u64,
}

impl SqliProxy {
    /// Raises the key's notice if its sum reached the threshold and it was not raised in this epoch yet.
    fn check(cx: &mut Cx, key: &Data) {
        let sum = cx.state().get(SUMS, key).and_then(StateValue::count).unwrap_or(0);
        if (sum as f64) < cx.config().http.sqli_requests_threshold || cx.state().get(CROSSED, key).is_some() {
            return;
        }
        let Data::Record(parts) = key else { return };
        let (Some(Data::Str(stream)), Some(Data::Addr(host))) = (parts.first(), parts.get(1)) else { return };
        let Some(StateValue::Value(Data::Record(sample))) = cx.state().get(SAMPLES, key) else { return };
        let (Some(Data::Time(ts)), Some(Data::Addr(other)), Some(Data::Str(uid))) =
            (sample.first(), sample.get(1), sample.get(2))
        else {
            return;
        };
        let (ts, host, other, uid) = (*ts, *host, *other, uid.clone());
        let notice = if stream == STREAM_ATTACKER {
            Notice::new(ATTACKER, "An SQL injection attacker was discovered!").src(host).dst(other)
        } else {
            Notice::new(VICTIM, "An SQL injection victim was discovered!").src(other).dst(host)
        };
        let now = cx.now();
        cx.state().put(CROSSED, key, Data::Bool(true), now);
        cx.notice(Notice { ts: Some(ts), uid: Some(uid), ..notice.identifier(host.to_string()) });
    }
}

impl Handler for SqliProxy {
    fn init(&mut self, cx: &mut Cx) {
        // A key names its epoch, so its entries are of no use once the epoch is over: at the latest `interval`
        // after the last observation in it.
        let interval = cx.config().http.sqli_requests_interval;
        for table in [SUMS, SAMPLES, CROSSED] {
            cx.state().define(table, interval);
        }
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != SQLI_OBSERVED {
            return;
        }
        let (Some(key @ Data::Record(_)), Some(Data::Time(ts)), Some(Data::Addr(other)), Some(Data::Str(uid))) =
            (ev.args.first(), ev.args.get(1), ev.args.get(2), ev.args.get(3))
        else {
            return;
        };
        let now = cx.now();
        cx.state().incr(SUMS, key, 1, now);
        let sample = Data::Record(vec![Data::Time(*ts), Data::Addr(*other), Data::Str(uid.clone())]);
        cx.state().put(SAMPLES, key, sample, now);
        Self::check(cx, key);
    }

    fn tick(&mut self, cx: &mut Cx) {
        let merges = cx.state().merges();
        if merges == self.merges_checked {
            return;
        }
        self.merges_checked = merges;
        let keys: Vec<Data> = cx.state().entries(SUMS).into_iter().map(|e| e.key.clone()).collect();
        for key in keys {
            Self::check(cx, &key);
        }
    }
}

#[cfg(test)]
mod tests;
