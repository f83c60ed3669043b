//! Engine events: what a worker's analyses learn from the traffic.
//!
//! They are read from the log records the engine writes anyway (the conn.log record is the "connection finished"
//! event, the dns.log record the DNS request, ...), so the engine needs no second output path; the URLs of mail
//! bodies, the HTTP responses' `Server` headers, TLS host certificates and FTP replies, which no log carries
//! (whole), come from the analyzers' hooks ([`crate::analyzers::smtp::set_url_sink`],
//! [`crate::analyzers::http::set_server_sink`], [`crate::analyzers::ssl::set_host_cert_sink`],
//! [`crate::analyzers::ftp::set_reply_sink`]).

use std::net::IpAddr;
use std::sync::Mutex;

use crate::analyzers::ftp::{self, FtpReply};
use crate::analyzers::http::{self, ServerHeader};
use crate::analyzers::smtp::{self, MailUrls};
use crate::analyzers::ssl::{self, HostCertificate};
use crate::analyzers::{ConnId, Proto};
use crate::logs::{LogRecord, Value};

/// A connection ended (its conn.log record).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnFinished {
    /// Start of the connection.
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub duration: f64,
    pub service: Vec<String>,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub conn_state: String,
    pub history: String,
    pub orig_pkts: u64,
    pub resp_pkts: u64,
}

impl ConnFinished {
    /// The TCP three-way handshake completed (Zeek's `connection_established`).
    pub fn established(&self) -> bool {
        self.id.proto == Proto::Tcp && self.history.contains('S') && self.history.contains('h')
    }

    /// The responder sent something back.
    pub fn answered(&self) -> bool {
        self.resp_pkts > 0
    }
}

/// A DNS request (a dns.log record with a query).
#[derive(Debug, Clone, PartialEq)]
pub struct DnsRequest {
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub query: String,
    pub qtype: Option<u64>,
    pub qtype_name: Option<String>,
}

/// An HTTP request (an http.log record).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub method: Option<String>,
    pub host: Option<String>,
    pub uri: Option<String>,
    pub user_agent: Option<String>,
    /// http.log's `tags`: what policy scripts added (`HTTP::URI_SQLI`, by the engine when sqli runs).
    pub tags: Vec<&'static str>,
}

impl HttpRequest {
    /// Zeek's `HTTP::build_url`: host (or the responder's address) and URI, without the scheme.
    pub fn url(&self) -> Option<String> {
        let uri = self.uri.as_deref()?;
        let host = self.host.clone().unwrap_or_else(|| self.id.resp_h.to_string());
        Some(format!("{host}{uri}"))
    }
}

/// A TLS session (an ssl.log record).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSession {
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub version: Option<String>,
    pub server_name: Option<String>,
}

/// A certificate seen in TLS, with its SHA-1 (a files.log record of source SSL).
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateSeen {
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub fuid: String,
    pub sha1: String,
    pub mime_type: Option<String>,
}

/// An SSH session (an ssh.log record).
#[derive(Debug, Clone, PartialEq)]
pub struct SshSession {
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub auth_success: Option<bool>,
    pub client: Option<String>,
    pub server: Option<String>,
}

/// A mail message's envelope and headers (an smtp.log record).
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpMessage {
    pub ts: f64,
    pub uid: String,
    pub id: ConnId,
    pub mailfrom: Option<String>,
    pub rcptto: Vec<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
}

/// A snapshot of the engine's statistics at a network time, which no log carries: what Zeek's `get_gap_stats`,
/// `get_net_stats`, `get_conn_stats`, `get_timer_stats`, ... return. Sent after a packet to the workers whose
/// handlers ask for it at that time ([`super::Handler::counters_due`]), and once more at the end of input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counters {
    /// The engine's network time (the latest packet time; it never goes back).
    pub ts: f64,
    /// The engine's counters (summed over the analysis threads that split one capture).
    pub engine: crate::engine::EngineStats,
    /// The capture's own counters (drops, packets on the link) when reading live and the capture has published
    /// some; `None` reading a trace (Zeek's `reading_live_traffic()` is false).
    pub capture: Option<CaptureCounters>,
    /// The input ended: Zeek's termination, when pending scheduled events run with `zeek_is_terminating()` true.
    pub at_end: bool,
}

/// What the packet source counts, as Zeek's `NetStats` reads it from the capture.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CaptureCounters {
    /// Packets the link delivered to the capture (`pkts_link`).
    pub link: u64,
    /// Packets the capture dropped (`pkts_dropped`).
    pub dropped: u64,
}

impl CaptureCounters {
    /// As Zeek's `PcapSource::Statistics` reads libpcap's: `link` is `ps_recv`, `dropped` is `ps_drop` (the
    /// interface's drops, `ps_ifdrop`, are not counted).
    pub fn new(c: &crate::capture::CaptureStats) -> Self {
        CaptureCounters { link: c.received, dropped: c.dropped }
    }
}

impl Counters {
    pub fn new(network_time: f64, engine: &crate::engine::EngineStats) -> Self {
        Counters { ts: network_time, engine: *engine, capture: None, at_end: false }
    }
}

/// What a worker's log sink (standalone [`super::DetectSink`], in a cluster [`super::cluster::WorkerTap`]) keeps to
/// hand its analyses the engine's counters: whether they want them at all, the network time the next report is due
/// from ([`super::Handler::counters_due`], so there is no dispatch per packet), and the capture's latest counters.
#[derive(Debug)]
pub struct CountersReport {
    wanted: bool,
    due: f64,
    capture: Option<CaptureCounters>,
}

impl CountersReport {
    /// `wanted`: some handler of the worker measures the engine (asked once, before the first packet).
    pub fn new(wanted: bool) -> Self {
        CountersReport { wanted, due: f64::NEG_INFINITY, capture: None }
    }

    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// Reading live: the capture's counters the next reports carry.
    pub fn capture(&mut self, stats: &crate::capture::CaptureStats) {
        self.capture = Some(CaptureCounters::new(stats));
    }

    /// The report after a packet at `network_time`, if one is due; then [`Self::next_due`] with the handlers' answer.
    pub fn after_packet(&self, network_time: f64, stats: &crate::engine::EngineStats) -> Option<Counters> {
        (self.wanted && network_time >= self.due)
            .then(|| Counters { capture: self.capture, ..Counters::new(network_time, stats) })
    }

    /// The report at the end of input (none reading nothing); no report follows it.
    pub fn at_end(&mut self, network_time: f64, stats: &crate::engine::EngineStats) -> Option<Counters> {
        if !self.wanted || network_time <= 0.0 {
            return None;
        }
        self.due = f64::INFINITY;
        Some(Counters { capture: self.capture, at_end: true, ..Counters::new(network_time, stats) })
    }

    pub fn next_due(&mut self, due: f64) {
        self.due = due;
    }
}

/// What a worker's analyses receive.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    ConnectionFinished(ConnFinished),
    DnsRequest(DnsRequest),
    HttpRequest(HttpRequest),
    TlsSession(TlsSession),
    Certificate(CertificateSeen),
    SshSession(SshSession),
    SmtpMessage(SmtpMessage),
    /// URLs found in the text of a mail (the SMTP analyzer's hook).
    MailUrls(MailUrls),
    /// An HTTP response's `Server` header (the HTTP analyzer's hook).
    HttpServer(ServerHeader),
    /// The engine's counters after a packet (the runner's report, [`crate::logs::LogSink::packet_analysed`]) or at
    /// the end of input ([`crate::logs::LogSink::input_ended`]).
    Counters(Counters),
    /// A TLS session was established with this host certificate (the SSL analyzer's hook).
    HostCertificate(HostCertificate),
    /// An FTP reply and the command it answers (the FTP analyzer's hook).
    FtpReply(FtpReply),
}

impl EngineEvent {
    /// Network time of the event: when a connection ended, else when the record was written.
    pub fn ts(&self) -> f64 {
        match self {
            EngineEvent::ConnectionFinished(c) => c.ts + c.duration,
            EngineEvent::DnsRequest(e) => e.ts,
            EngineEvent::HttpRequest(e) => e.ts,
            EngineEvent::TlsSession(e) => e.ts,
            EngineEvent::Certificate(e) => e.ts,
            EngineEvent::SshSession(e) => e.ts,
            EngineEvent::SmtpMessage(e) => e.ts,
            EngineEvent::MailUrls(e) => e.ts,
            EngineEvent::HttpServer(e) => e.ts,
            EngineEvent::Counters(e) => e.ts,
            EngineEvent::HostCertificate(e) => e.ts,
            EngineEvent::FtpReply(e) => e.ts,
        }
    }

    /// The event a log record stands for, if analyses care about it.
    pub fn from_record(r: &LogRecord) -> Option<EngineEvent> {
        let f = Fields(r);
        Some(match r.schema.path {
            "conn" => EngineEvent::ConnectionFinished(ConnFinished {
                ts: r.ts(),
                uid: f.string("uid")?,
                id: f.conn_id()?,
                duration: f.float("duration").unwrap_or(0.0),
                service: f.strings("service"),
                orig_bytes: f.count("orig_bytes").unwrap_or(0),
                resp_bytes: f.count("resp_bytes").unwrap_or(0),
                conn_state: f.string("conn_state").unwrap_or_default(),
                history: f.string("history").unwrap_or_default(),
                orig_pkts: f.count("orig_pkts").unwrap_or(0),
                resp_pkts: f.count("resp_pkts").unwrap_or(0),
            }),
            "dns" => EngineEvent::DnsRequest(DnsRequest {
                ts: r.ts(),
                uid: f.string("uid")?,
                id: f.conn_id()?,
                query: f.string("query")?,
                qtype: f.count("qtype"),
                qtype_name: f.string("qtype_name"),
            }),
            "http" => EngineEvent::HttpRequest(HttpRequest {
                ts: r.ts(),
                uid: f.string("uid")?,
                id: f.conn_id()?,
                method: f.string("method"),
                host: f.string("host"),
                uri: f.string("uri"),
                user_agent: f.string("user_agent"),
                tags: match r.get("tags") {
                    Some(Value::Set(items)) => items
                        .iter()
                        .filter_map(|v| match v {
                            Value::Enum(tag) => Some(*tag),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                },
            }),
            "ssl" => EngineEvent::TlsSession(TlsSession {
                ts: r.ts(),
                uid: f.string("uid")?,
                id: f.conn_id()?,
                version: f.string("version"),
                server_name: f.string("server_name"),
            }),
            "files" if f.string("source").as_deref() == Some("SSL") => EngineEvent::Certificate(CertificateSeen {
                ts: r.ts(),
                uid: f.string("uid")?,
                id: f.conn_id()?,
                fuid: f.string("fuid")?,
                sha1: f.string("sha1")?,
                mime_type: f.string("mime_type"),
            }),
            "ssh" => EngineEvent::SshSession(SshSession {
                ts: r.ts(),
                uid: f.string("uid")?,
                id: f.conn_id()?,
                auth_success: match r.get("auth_success") {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                },
                client: f.string("client"),
                server: f.string("server"),
            }),
            "smtp" => EngineEvent::SmtpMessage(SmtpMessage {
                ts: r.ts(),
                uid: f.string("uid")?,
                id: f.conn_id()?,
                mailfrom: f.string("mailfrom"),
                rcptto: f.strings("rcptto"),
                from: f.string("from"),
                to: f.strings("to"),
                cc: f.strings("cc"),
            }),
            _ => return None,
        })
    }
}

/// Typed reads of a record's columns by name.
struct Fields<'a>(&'a LogRecord);

impl Fields<'_> {
    fn string(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::Str(s) => Some(s.clone()),
            Value::Enum(e) => Some((*e).to_string()),
            _ => None,
        }
    }

    fn count(&self, name: &str) -> Option<u64> {
        match self.0.get(name)? {
            Value::Count(c) => Some(*c),
            _ => None,
        }
    }

    fn float(&self, name: &str) -> Option<f64> {
        match self.0.get(name)? {
            Value::Interval(d) | Value::Double(d) | Value::Time(d) => Some(*d),
            _ => None,
        }
    }

    fn addr(&self, name: &str) -> Option<IpAddr> {
        match self.0.get(name)? {
            Value::Addr(a) => Some(*a),
            _ => None,
        }
    }

    fn port(&self, name: &str) -> Option<u16> {
        match self.0.get(name)? {
            Value::Port(p) => Some(*p),
            _ => None,
        }
    }

    /// A set or vector of strings, or a comma-separated string (conn.log's `service`).
    fn strings(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(Value::Set(items) | Value::Vector(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            Some(Value::Str(s)) => s.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect(),
            _ => Vec::new(),
        }
    }

    /// The connection's endpoints; the transport comes from `proto` where the log has it, else from the stream.
    fn conn_id(&self) -> Option<ConnId> {
        let proto = match self.string("proto").as_deref() {
            Some("tcp") => Proto::Tcp,
            Some("udp") => Proto::Udp,
            Some("icmp") => Proto::Icmp,
            Some(_) => Proto::Unknown,
            None => match self.0.schema.path {
                "dns" => Proto::Udp,
                _ => Proto::Tcp,
            },
        };
        Some(ConnId {
            orig_h: self.addr("id.orig_h")?,
            orig_p: self.port("id.orig_p")?,
            resp_h: self.addr("id.resp_h")?,
            resp_p: self.port("id.resp_p")?,
            proto,
        })
    }
}

/// Events the analyzers' hooks reported (mail URLs, HTTP `Server` headers), waiting for the analyses of this
/// process.
static HOOKED: Mutex<Vec<EngineEvent>> = Mutex::new(Vec::new());

fn queue_hooked(ev: EngineEvent) {
    HOOKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(ev);
}

/// Starts collecting what no log carries: the URLs the SMTP analyzer finds in mail bodies, the HTTP responses'
/// `Server` headers, established TLS sessions' host certificates and FTP replies (idempotent).
pub fn collect_hook_events() {
    smtp::set_url_sink(|urls| queue_hooked(EngineEvent::MailUrls(urls)));
    http::set_server_sink(|server| queue_hooked(EngineEvent::HttpServer(server)));
    ssl::set_host_cert_sink(|cert| queue_hooked(EngineEvent::HostCertificate(cert)));
    ftp::set_reply_sink(|reply| queue_hooked(EngineEvent::FtpReply(reply)));
}

/// The hook events collected since the last call.
pub fn take_hook_events() -> Vec<EngineEvent> {
    std::mem::take(&mut *HOOKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::CONN;

    #[test]
    fn conn_record_becomes_connection_finished() {
        let mut v = vec![Value::Time(10.0), Value::str("C1")];
        v.extend([
            Value::Addr("10.0.0.1".parse().unwrap()),
            Value::Port(5000),
            Value::Addr("10.0.0.2".parse().unwrap()),
            Value::Port(3389),
            Value::Enum("udp"),
            Value::Unset,
            Value::Interval(2.5),
            Value::Count(10),
            Value::Count(0),
            Value::str("S0"),
            Value::Bool(true),
            Value::Bool(true),
            Value::Count(0),
            Value::str("D"),
            Value::Count(1),
            Value::Count(38),
            Value::Count(0),
            Value::Count(0),
            Value::Set(vec![]),
            Value::Count(17),
        ]);
        let ev = EngineEvent::from_record(&LogRecord::new(&CONN, v)).unwrap();
        let EngineEvent::ConnectionFinished(c) = &ev else { panic!("{ev:?}") };
        assert_eq!(c.id.proto, Proto::Udp);
        assert_eq!(c.id.resp_p, 3389);
        assert!(!c.answered());
        assert_eq!(ev.ts(), 12.5);
    }
}
