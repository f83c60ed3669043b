//! Software, known hosts, known services and known certificates, deduplicated on proxies (HRW).
//!
//! Workers report software (HTTP User-Agent and Server, SSH client and server versions, TLS versions), hosts that completed a
//! TCP handshake and services that answered, for local hosts (Zeek's `LOCAL_HOSTS` tracking). The proxy that owns
//! the host logs each once: software.log per (host, type, version), known_hosts.log and known_services.log once
//! per host / service per `known.expiry` (one day), cluster-wide.
//!
//! Known certificates are Zeek's policy/protocols/ssl/known-certs.zeek (its proxy-pool variant, `use_cert_store`
//! F): at `ssl_established` a worker sends the server's host certificate, for servers `known.cert_tracking`
//! selects, to the proxy that owns `cat(host, hash)` (the script's HRW key); that proxy writes known_certs.log
//! once per (host, certificate) per `known.cert_store_expiry` (`&create_expire`: counted from the first time).

use std::net::IpAddr;

use super::sent::SentKeys;
use super::{
    Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Role, arg_addr, arg_count, arg_str, arg_time,
};
use crate::analyzers::Proto;
use crate::analyzers::ssl::HostCertificate;
use crate::logs::{LogRecord, Schema, Value, f};

pub const SOFTWARE_FOUND: &str = "Software::found";
pub const KNOWN_HOST: &str = "Known::host";
pub const KNOWN_SERVICE: &str = "Known::service";
/// known-certs.zeek's `known_cert_add`.
pub const KNOWN_CERT: &str = "Known::cert_add";

const SOFTWARE_SEEN: &str = "Software::seen";
const HOSTS_SEEN: &str = "Known::hosts";
const SERVICES_SEEN: &str = "Known::services";
const CERTS_SEEN: &str = "Known::certs";
/// The counter of certificates a worker did not send because it had sent them before.
pub const CERT_MESSAGES_SAVED: &str = "known_cert_messages_saved";
/// Counters of the hosts and services a worker did not send again (its [`SentKeys`]).
pub const HOST_MESSAGES_SAVED: &str = "known_host_messages_saved";
pub const SERVICE_MESSAGES_SAVED: &str = "known_service_messages_saved";

/// software.log (base/frameworks/software/main.zeek).
pub static SOFTWARE_LOG: Schema = Schema {
    path: "software",
    fields: &[
        f("ts", "time"),
        f("host", "addr"),
        f("host_p", "port"),
        f("software_type", "enum"),
        f("name", "string"),
        f("version.major", "count"),
        f("version.minor", "count"),
        f("version.minor2", "count"),
        f("version.minor3", "count"),
        f("version.addl", "string"),
        f("unparsed_version", "string"),
    ],
};

/// known_hosts.log (policy/protocols/conn/known-hosts.zeek).
pub static KNOWN_HOSTS_LOG: Schema = Schema { path: "known_hosts", fields: &[f("ts", "time"), f("host", "addr")] };

/// known_services.log (policy/protocols/conn/known-services.zeek).
pub static KNOWN_SERVICES_LOG: Schema = Schema {
    path: "known_services",
    fields: &[
        f("ts", "time"),
        f("host", "addr"),
        f("port_num", "port"),
        f("port_proto", "enum"),
        f("service", "set[string]"),
    ],
};

/// known_certs.log (policy/protocols/ssl/known-certs.zeek, `Known::CertsInfo`).
pub static KNOWN_CERTS_LOG: Schema = Schema {
    path: "known_certs",
    fields: &[
        f("ts", "time"),
        f("host", "addr"),
        f("port_num", "port"),
        f("subject", "string"),
        f("issuer_subject", "string"),
        f("serial", "string"),
    ],
};

/// The software types reported.
const SOFTWARE_TYPES: &[&str] = &["HTTP::BROWSER", "HTTP::SERVER", "SSH::CLIENT", "SSH::SERVER", "TLS::SERVER"];

/// A version string split the way Zeek's `Software::parse` does for the common `Name/1.2.3 extra` and
/// `Name_1.2p1` forms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Version {
    pub name: String,
    pub numbers: Vec<u64>,
    pub addl: Option<String>,
}

pub fn parse_version(unparsed: &str) -> Version {
    // SSH banners carry the protocol first: `SSH-2.0-OpenSSH_6.7p1 Debian-3`.
    let s = match unparsed.strip_prefix("SSH-") {
        Some(rest) => rest.split_once('-').map_or(rest, |(_, sw)| sw),
        None => unparsed,
    };
    let bytes = s.as_bytes();
    let version_at = (0..bytes.len()).find(|&i| {
        bytes[i].is_ascii_digit() && (i == 0 || matches!(bytes[i - 1], b'/' | b' ' | b'_' | b'-' | b'v' | b'V'))
    });
    let Some(at) = version_at else {
        return Version { name: s.trim().to_string(), ..Version::default() };
    };
    let name = s[..at].trim_end_matches(['/', ' ', '_', '-']);
    let name = if name.len() > 1 { name.trim_end_matches(['v', 'V']) } else { name };
    let rest = &s[at..];
    let digits_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let numbers = rest[..digits_end].split('.').filter_map(|p| p.parse().ok()).take(4).collect();
    let addl = rest[digits_end..]
        .split_whitespace()
        .next()
        .map(|a| a.trim_start_matches(['-', '_', '.']))
        .filter(|a| !a.is_empty());
    Version { name: name.to_string(), numbers, addl: addl.map(str::to_string) }
}

/// TLS versions as software: `TLSv12` → TLS 1.2, `SSLv3` → SSL 3.
fn tls_version(v: &str) -> Option<String> {
    let (name, digits) = v.split_once('v')?;
    let mut d = digits.chars().filter(char::is_ascii_digit);
    let major = d.next()?;
    Some(match d.next() {
        Some(minor) => format!("{name}/{major}.{minor}"),
        None => format!("{name}/{major}"),
    })
}

pub struct Software;

impl Analysis for Software {
    fn name(&self) -> &'static str {
        "software"
    }

    fn events(&self) -> &'static [&'static str] {
        &[SOFTWARE_FOUND]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(SoftwareWorker)),
            Role::Proxy => Some(Box::new(SoftwareProxy)),
            _ => None,
        }
    }
}

struct SoftwareWorker;

impl SoftwareWorker {
    /// `Software::found` with the worker's time of the sighting (`ev`'s), which the proxy logs as Zeek's proxy logs
    /// the `ts` of the info record a worker built.
    fn found(cx: &mut Cx, ev: &EngineEvent, host: IpAddr, port: Option<u16>, kind: &'static str, unparsed: &str) {
        if !cx.is_local(host) || unparsed.is_empty() {
            return;
        }
        let port = port.map_or(Data::Unset, |p| Data::Count(u64::from(p)));
        let args =
            vec![Data::Addr(host), port, Data::Enum(kind.into()), Data::Str(unparsed.to_string()), Data::Time(ev.ts())];
        cx.publish_hrw(Role::Proxy, &Data::Addr(host), SOFTWARE_FOUND, args);
    }
}

impl Handler for SoftwareWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        match ev {
            EngineEvent::HttpRequest(h) => {
                if let Some(ua) = &h.user_agent {
                    Self::found(cx, ev, h.id.orig_h, None, "HTTP::BROWSER", ua);
                }
            }
            EngineEvent::HttpServer(h) => {
                Self::found(cx, ev, h.id.resp_h, Some(h.id.resp_p), "HTTP::SERVER", &h.server)
            }
            EngineEvent::SshSession(s) => {
                if let Some(c) = &s.client {
                    Self::found(cx, ev, s.id.orig_h, None, "SSH::CLIENT", c);
                }
                if let Some(srv) = &s.server {
                    Self::found(cx, ev, s.id.resp_h, Some(s.id.resp_p), "SSH::SERVER", srv);
                }
            }
            EngineEvent::TlsSession(t) => {
                if let Some(v) = t.version.as_deref().and_then(tls_version) {
                    Self::found(cx, ev, t.id.resp_h, Some(t.id.resp_p), "TLS::SERVER", &v);
                }
            }
            _ => {}
        }
    }
}

struct SoftwareProxy;

impl Handler for SoftwareProxy {
    fn init(&mut self, cx: &mut Cx) {
        let expiry = cx.config().known.expiry;
        cx.state().define_created(SOFTWARE_SEEN, expiry);
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != SOFTWARE_FOUND {
            return;
        }
        let (Some(host), Some(kind), Some(unparsed)) = (arg_addr(ev, 0), arg_str(ev, 2), arg_str(ev, 3)) else {
            return;
        };
        let Some(kind) = SOFTWARE_TYPES.iter().copied().find(|k| *k == kind) else { return };
        let port = arg_count(ev, 1).and_then(|p| u16::try_from(p).ok());
        let now = cx.now();
        let item = Data::Record(vec![Data::Enum(kind.into()), Data::Str(unparsed.to_string())]);
        let (new, _) = cx.state().insert(SOFTWARE_SEEN, &Data::Addr(host), item, now);
        if new {
            cx.log(software_record(arg_time(ev, 4).unwrap_or(now), host, port, kind, unparsed));
        }
    }
}

fn software_record(ts: f64, host: IpAddr, port: Option<u16>, kind: &'static str, unparsed: &str) -> LogRecord {
    let v = parse_version(unparsed);
    let n = |i: usize| Value::opt_count(v.numbers.get(i).copied());
    LogRecord::new(
        &SOFTWARE_LOG,
        vec![
            Value::Time(ts),
            Value::Addr(host),
            port.map_or(Value::Unset, Value::Port),
            Value::Enum(kind),
            Value::str(&v.name),
            n(0),
            n(1),
            n(2),
            n(3),
            Value::opt_str(v.addl.clone()),
            Value::str(unparsed),
        ],
    )
}

pub struct Known;

impl Analysis for Known {
    fn name(&self) -> &'static str {
        "known"
    }

    fn events(&self) -> &'static [&'static str] {
        &[KNOWN_HOST, KNOWN_SERVICE, KNOWN_CERT]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(KnownWorker::default())),
            Role::Proxy => Some(Box::new(KnownProxy)),
            _ => None,
        }
    }
}

#[derive(Default)]
struct KnownWorker {
    /// The hosts this worker sent (known-hosts.zeek's `Known::hosts` on a worker): each once per `known.expiry`.
    hosts_sent: SentKeys<IpAddr>,
    /// The (host, port, transport) services sent (known-services.zeek's `Known::services` on a worker).
    services_sent: SentKeys<(IpAddr, u16, Proto)>,
    /// The (host, certificate) keys sent (known-certs.zeek's `Known::certs` on a worker): each once per
    /// `known.cert_store_expiry`.
    certs_sent: SentKeys<String>,
}

/// known-certs.zeek's key of a (host, certificate) pair, `cat(info$host, hash)`: the HRW key and the proxy's state
/// key. The hash is the certificate's fingerprint (SHA-256, ssl.log's `cert_chain_fps`) where the script takes its
/// SHA-1: either names one certificate.
fn cert_key(host: IpAddr, hash: &str) -> Data {
    Data::Str(format!("{host}{hash}"))
}

impl KnownWorker {
    /// known-certs.zeek's `ssl_established` handler: the server's host certificate, if the server is tracked.
    fn host_certificate(&mut self, cert: &HostCertificate, cx: &mut Cx) {
        let host = cert.id.resp_h;
        if !cx.config().known.cert_tracking.matches(cx.is_local(host)) {
            return;
        }
        let key = cert_key(host, &cert.fingerprint);
        let Data::Str(text) = &key else { return };
        if !self.certs_sent.first_send(text.clone(), cx.now(), cx.config().known.cert_store_expiry) {
            cx.count(CERT_MESSAGES_SAVED, 1);
            return;
        }
        let args = vec![
            Data::Time(cert.ts),
            Data::Addr(host),
            Data::Count(u64::from(cert.id.resp_p)),
            Data::Str(cert.subject.clone()),
            Data::Str(cert.issuer.clone()),
            Data::Str(cert.serial.clone()),
            Data::Str(cert.fingerprint.clone()),
        ];
        cx.publish_hrw(Role::Proxy, &key, KNOWN_CERT, args);
    }
}

impl Handler for KnownWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        if let EngineEvent::HostCertificate(cert) = ev {
            return self.host_certificate(cert, cx);
        }
        let EngineEvent::ConnectionFinished(c) = ev else { return };
        let (now, expiry) = (cx.now(), cx.config().known.expiry);
        if c.established() {
            for host in [c.id.orig_h, c.id.resp_h] {
                if !cx.is_local(host) {
                    continue;
                }
                if self.hosts_sent.first_send(host, now, expiry) {
                    // Zeek's worker stamps the host at `connection_established`: the connection's start is the
                    // nearest time the finished connection tells.
                    let args = vec![Data::Addr(host), Data::Time(c.ts)];
                    cx.publish_hrw(Role::Proxy, &Data::Addr(host), KNOWN_HOST, args);
                } else {
                    cx.count(HOST_MESSAGES_SAVED, 1);
                }
            }
        }
        let served = c.established() || (c.id.proto == Proto::Udp && c.answered());
        let services = known_services(&c.service, c.resp_bytes);
        if served && !services.is_empty() && cx.is_local(c.id.resp_h) {
            if !self.services_sent.first_send((c.id.resp_h, c.id.resp_p, c.id.proto), now, expiry) {
                cx.count(SERVICE_MESSAGES_SAVED, 1);
                return;
            }
            let services = services.into_iter().map(Data::Str).collect();
            let args = vec![
                Data::Addr(c.id.resp_h),
                Data::Count(u64::from(c.id.resp_p)),
                Data::Enum(c.id.proto.as_enum().into()),
                Data::Vector(services),
                Data::Time(ev.ts()),
            ];
            cx.publish_hrw(Role::Proxy, &Data::Addr(c.id.resp_h), KNOWN_SERVICE, args);
        }
    }
}

/// The services known-services.zeek logs for a finished connection, as its `c$service` names them: analyzer tags
/// upper-case (`HTTP`, `SSL`: conn.log lower-cases them, `to_lower` in conn/main.zeek) and the names scripts add
/// (`ftp-data`, `irc-dcc-data`) as they are. None when the script logs nothing: no service (`connection_state_remove`
/// logs no empty service), FTP data alone, or DNS alone from a server that sent no bytes.
fn known_services(conn_log_services: &[String], resp_bytes: u64) -> Vec<String> {
    let services: Vec<String> = conn_log_services
        .iter()
        .map(|s| s.strip_prefix('-').unwrap_or(s))
        .map(|s| if s.contains('-') { s.to_string() } else { s.to_ascii_uppercase() })
        .collect();
    match services.as_slice() {
        [only] if only == "ftp-data" => Vec::new(),
        [only] if only == "DNS" && resp_bytes == 0 => Vec::new(),
        _ => services,
    }
}

struct KnownProxy;

impl Handler for KnownProxy {
    fn init(&mut self, cx: &mut Cx) {
        let expiry = cx.config().known.expiry;
        cx.state().define_created(HOSTS_SEEN, expiry);
        cx.state().define_created(SERVICES_SEEN, expiry);
        let cert_expiry = cx.config().known.cert_store_expiry;
        cx.state().define_created(CERTS_SEEN, cert_expiry);
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        let now = cx.now();
        match ev.name.as_str() {
            KNOWN_HOST => {
                let Some(host) = arg_addr(ev, 0) else { return };
                if cx.state().get(HOSTS_SEEN, &Data::Addr(host)).is_none() {
                    cx.state().put(HOSTS_SEEN, &Data::Addr(host), Data::Bool(true), now);
                    let ts = arg_time(ev, 1).unwrap_or(now);
                    cx.log(LogRecord::new(&KNOWN_HOSTS_LOG, vec![Value::Time(ts), Value::Addr(host)]));
                }
            }
            KNOWN_SERVICE => {
                let (Some(host), Some(Ok(port)), Some(proto)) =
                    (arg_addr(ev, 0), arg_count(ev, 1).map(u16::try_from), arg_str(ev, 2))
                else {
                    return;
                };
                let proto =
                    [Proto::Tcp, Proto::Udp].into_iter().find(|p| p.as_enum() == proto).unwrap_or(Proto::Unknown);
                let item = Data::Record(vec![Data::Count(u64::from(port)), Data::Enum(proto.as_enum().into())]);
                let (new, _) = cx.state().insert(SERVICES_SEEN, &Data::Addr(host), item, now);
                if new {
                    let services = match ev.args.get(3) {
                        Some(Data::Vector(v)) => v.iter().filter_map(Data::as_str).map(str::to_string).collect(),
                        _ => Vec::new(),
                    };
                    let v = vec![
                        Value::Time(arg_time(ev, 4).unwrap_or(now)),
                        Value::Addr(host),
                        Value::Port(port),
                        Value::Enum(proto.as_enum()),
                        Value::str_set(services),
                    ];
                    cx.log(LogRecord::new(&KNOWN_SERVICES_LOG, v));
                }
            }
            KNOWN_CERT => Self::cert_add(ev, cx),
            _ => {}
        }
    }
}

impl KnownProxy {
    /// known-certs.zeek's `known_cert_add` on the proxy: the first report of a (host, certificate) pair is logged,
    /// with the worker's time and connection; the pair is not logged again until its entry expires. The entry is
    /// written once (`get`, then `put` only when absent), so it expires `cert_store_expiry` after it was created.
    fn cert_add(ev: &Event, cx: &mut Cx) {
        let (Some(Data::Time(ts)), Some(host), Some(Ok(port)), Some(hash)) =
            (ev.args.first(), arg_addr(ev, 1), arg_count(ev, 2).map(u16::try_from), arg_str(ev, 6))
        else {
            return;
        };
        let key = cert_key(host, hash);
        if cx.state().get(CERTS_SEEN, &key).is_some() {
            return;
        }
        let now = cx.now();
        cx.state().put(CERTS_SEEN, &key, Data::Bool(true), now);
        let text = |i| arg_str(ev, i).map_or(Value::Unset, Value::str);
        let values = vec![Value::Time(*ts), Value::Addr(host), Value::Port(port), text(3), text(4), text(5)];
        cx.log(LogRecord::new(&KNOWN_CERTS_LOG, values));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::ConnId;
    use crate::detect::local::{LocalHub, LocalLayout};

    /// The TCP connection `i` from `client` to `server:port`.
    fn tcp_id(i: u32, client: &str, server: &str, port: u16) -> ConnId {
        ConnId {
            orig_h: client.parse().unwrap(),
            orig_p: 40000 + i as u16,
            resp_h: server.parse().unwrap(),
            resp_p: port,
            proto: Proto::Tcp,
        }
    }

    fn host_cert(i: u32, client: &str, server: &str, port: u16, ts: f64, fingerprint: &str) -> EngineEvent {
        let id = tcp_id(i, client, server, port);
        EngineEvent::HostCertificate(HostCertificate {
            ts,
            uid: format!("C{i}"),
            id,
            fingerprint: fingerprint.into(),
            subject: format!("CN=cert-{fingerprint}"),
            issuer: "CN=Test CA".into(),
            serial: "0A".into(),
        })
    }

    /// known_certs.log rows as TSV, in the order written.
    fn known_certs(cfg: &DetectConfig, layout: LocalLayout, events: &[EngineEvent]) -> Vec<String> {
        let mut hub = LocalHub::new(vec![Box::new(Known)], cfg.clone(), layout);
        for (i, ev) in events.iter().enumerate() {
            hub.engine(i % layout.workers, ev);
        }
        hub.finish();
        let rows = hub.take_logs().into_iter().filter(|r| r.schema.path == "known_certs");
        let mut rows: Vec<String> =
            rows.map(|r| r.values.iter().map(Value::to_tsv).collect::<Vec<_>>().join("\t")).collect();
        rows.sort();
        rows
    }

    #[test]
    fn known_certs_once_per_host_and_certificate_until_the_entry_expires() {
        let t = 1_767_225_600.0;
        let events = [
            host_cert(1, "45.1.1.1", "10.0.0.5", 443, t, "aa"),
            // Another client, another port, the same server and certificate: already known.
            host_cert(2, "45.1.1.2", "10.0.0.5", 8443, t + 10.0, "aa"),
            // Another certificate of the same server, and the first one on another server.
            host_cert(3, "45.1.1.1", "10.0.0.5", 443, t + 20.0, "bb"),
            host_cert(4, "45.1.1.1", "10.0.0.6", 443, t + 30.0, "aa"),
            // A remote server is not tracked by default.
            host_cert(5, "10.0.0.9", "45.9.9.9", 443, t + 40.0, "cc"),
            // Seen again all day long: the entry still expires a day after it was created (`&create_expire`).
            host_cert(6, "45.1.1.1", "10.0.0.5", 443, t + 50_000.0, "aa"),
            host_cert(7, "45.1.1.1", "10.0.0.5", 443, t + 86_400.0 + 5.0, "aa"),
        ];
        let row =
            |ts: f64, host: &str, port: u16, fp: &str| format!("{ts:.6}\t{host}\t{port}\tCN=cert-{fp}\tCN=Test CA\t0A");
        let expected = vec![
            row(t, "10.0.0.5", 443, "aa"),
            row(t + 20.0, "10.0.0.5", 443, "bb"),
            row(t + 30.0, "10.0.0.6", 443, "aa"),
            row(t + 86_405.0, "10.0.0.5", 443, "aa"),
        ];
        let cfg = DetectConfig::default();
        assert_eq!(known_certs(&cfg, LocalLayout::default(), &events), expected);
        for (proxies, workers) in [(2, 3), (4, 1)] {
            assert_eq!(known_certs(&cfg, LocalLayout { proxies, workers }, &events), expected, "{proxies}/{workers}");
        }
        let remote = DetectConfig::from_yaml("known: { cert_tracking: REMOTE_HOSTS }").unwrap();
        assert_eq!(known_certs(&remote, LocalLayout::default(), &events), [row(t + 40.0, "45.9.9.9", 443, "cc")]);
        let all = DetectConfig::from_yaml("known: { cert_tracking: ALL_HOSTS }").unwrap();
        assert_eq!(known_certs(&all, LocalLayout::default(), &events).len(), 5);
        let none = DetectConfig::from_yaml("known: { cert_tracking: NO_HOSTS }").unwrap();
        assert!(known_certs(&none, LocalLayout::default(), &events).is_empty());
        let short = DetectConfig::from_yaml("known: { cert_store_expiry: 3600 }").unwrap();
        assert_eq!(known_certs(&short, LocalLayout::default(), &events).len(), 5, "logged again at t + 50000");
        assert!(DetectConfig::from_yaml("known: { cert_tracking: SOME_HOSTS }").is_err());
        // A worker sends a pair once per expiry: the repeat of (10.0.0.5, aa) at t + 10 and t + 50000 stays home.
        let mut hub = LocalHub::new(vec![Box::new(Known)], cfg.clone(), LocalLayout::default());
        for ev in &events {
            hub.engine(0, ev);
        }
        assert_eq!(hub.counters().get(CERT_MESSAGES_SAVED), Some(&2));
    }

    fn finished(i: u32, client: &str, server: &str, port: u16, ts: f64) -> EngineEvent {
        let id = tcp_id(i, client, server, port);
        EngineEvent::ConnectionFinished(crate::detect::events::ConnFinished {
            ts,
            uid: format!("C{i}"),
            id,
            duration: 1.0,
            service: vec!["http".into()],
            orig_bytes: 10,
            resp_bytes: 10,
            conn_state: "SF".into(),
            history: "ShADadFf".into(),
            orig_pkts: 5,
            resp_pkts: 5,
        })
    }

    /// A worker sends a host or a service once a day (known-hosts.zeek's and known-services.zeek's worker-side
    /// `&create_expire` sets), and the logs stay what the proxies' deduplication alone gives.
    #[test]
    fn workers_send_known_hosts_and_services_once_per_expiry() {
        let day = 86_400.0;
        let t = 1_600_000_000.0;
        let mut events: Vec<EngineEvent> =
            (0..100).map(|i| finished(i, "10.0.0.1", "10.0.0.2", 80, t + f64::from(i))).collect();
        events.push(finished(100, "10.0.0.1", "10.0.0.2", 8080, t + 200.0));
        events.push(finished(101, "10.0.0.1", "10.0.0.2", 80, t + day + 1.0));
        let mut hub = LocalHub::new(vec![Box::new(Known)], DetectConfig::default(), LocalLayout::default());
        for ev in &events {
            hub.engine(0, ev);
        }
        hub.finish();
        // Both hosts once at t and again after a day; port 80 at t and after a day, 8080 once.
        assert_eq!(hub.counters().get(HOST_MESSAGES_SAVED), Some(&(2 * 100)));
        assert_eq!(hub.counters().get(SERVICE_MESSAGES_SAVED), Some(&99));
        let logs = hub.take_logs();
        let rows = |path: &str| {
            let mut r: Vec<String> = logs
                .iter()
                .filter(|r| r.schema.path == path)
                .map(|r| r.values.iter().map(Value::to_tsv).collect::<Vec<_>>().join("\t"))
                .collect();
            r.sort();
            r
        };
        assert_eq!(
            rows("known_hosts"),
            // At the start of the connection that made them known (the worker's time, Zeek's establishment).
            [
                format!("{t:.6}\t10.0.0.1"),
                format!("{t:.6}\t10.0.0.2"),
                format!("{:.6}\t10.0.0.1", t + day + 1.0),
                format!("{:.6}\t10.0.0.2", t + day + 1.0)
            ]
        );
        assert_eq!(rows("known_services").len(), 3, "{:?}", rows("known_services"));
    }

    #[test]
    fn services_are_named_and_left_out_as_known_services_zeek_does() {
        let s = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(known_services(&s(&["http"]), 10), ["HTTP"]);
        assert_eq!(known_services(&s(&["ssl", "krb_tcp"]), 10), ["SSL", "KRB_TCP"]);
        assert_eq!(known_services(&s(&["ftp", "ftp-data"]), 10), ["FTP", "ftp-data"]);
        assert!(known_services(&s(&[]), 10).is_empty(), "no empty service");
        assert!(known_services(&s(&["ftp-data"]), 10).is_empty(), "no FTP data session");
        assert!(known_services(&s(&["dns"]), 0).is_empty(), "a DNS server must talk");
        assert_eq!(known_services(&s(&["dns"]), 40), ["DNS"]);
        assert_eq!(known_services(&s(&["-http"]), 10), ["HTTP"], "a violated analyzer's name loses its dash");
    }

    #[test]
    fn versions_split_like_zeek() {
        let v = parse_version("SSH-2.0-OpenSSH_6.7p1 Debian-3");
        assert_eq!((v.name.as_str(), v.numbers.as_slice(), v.addl.as_deref()), ("OpenSSH", &[6, 7][..], Some("p1")));
        let v = parse_version("curl/7.81.0");
        assert_eq!((v.name.as_str(), v.numbers.as_slice(), v.addl), ("curl", &[7, 81, 0][..], None));
        let v = parse_version("Wget");
        assert_eq!((v.name.as_str(), v.numbers.len()), ("Wget", 0));
        assert_eq!(tls_version("TLSv12").as_deref(), Some("TLS/1.2"));
        assert_eq!(tls_version("SSLv3").as_deref(), Some("SSL/3"));
    }
}
