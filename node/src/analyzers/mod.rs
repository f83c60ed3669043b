//! Application-layer analyzers and how they attach to connections.
//!
//! An analyzer sees one connection: in-order stream bytes for TCP (after reassembly), one datagram at a
//! time for UDP. It writes its own log through [`Ctx`], and tells the engine what it learned: a protocol
//! confirmation (which names the connection's `service`), a violation (which detaches it, as Zeek's DPD
//! does), an expected connection (FTP data channels), or a switch to TLS (STARTTLS, STLS).
//!
//! Which analyzers attach is decided as Zeek does it: by well-known port, or by a content signature on
//! the first payload of either direction ([`AnalyzerSpec::detect`]).

pub mod asn1;
pub mod content_line;
pub mod dce_rpc;
pub mod detect;
pub mod dhcp;
pub mod dnp3;
pub mod dns;
pub mod expected;
pub mod files;
pub mod finger;
pub mod ftp;
pub mod ftp_adat;
pub mod fuzzing;
pub mod gssapi;
pub mod http;
pub mod imap;
pub mod irc;
pub mod krb;
pub mod ldap;
pub mod magic;
pub mod mime;
pub mod modbus;
pub mod mqtt;
pub mod mysql;
pub mod ntlm;
pub mod ntp;
mod nvt;
pub mod pe;
pub mod pop3;
pub mod postgresql;
pub(crate) mod proxy_tunnels;
pub mod quic;
pub mod radius;
pub mod rdp;
pub mod redis;
pub mod rfb;
pub mod sip;
pub mod smb;
pub mod smtp;
pub mod snmp;
pub mod socks;
pub mod ssh;
pub mod ssl;
pub mod syslog;
pub mod websocket;

use std::net::IpAddr;

use crate::logs::{LogRecord, Schema, Value};

/// Transport protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Unknown,
}

impl Proto {
    pub fn as_enum(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Unknown => "unknown_transport",
        }
    }
}

/// A connection's identity as logged (`id.orig_h` ... `id.resp_p`), oriented originator → responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub orig_h: IpAddr,
    pub orig_p: u16,
    pub resp_h: IpAddr,
    pub resp_p: u16,
    pub proto: Proto,
}

impl ConnId {
    /// The four `id.*` values in log order.
    pub fn log_values(&self) -> [Value; 4] {
        [Value::Addr(self.orig_h), Value::Port(self.orig_p), Value::Addr(self.resp_h), Value::Port(self.resp_p)]
    }
}

/// The big-endian `u16` at `at` in `b`; 0 where `b` is too short (the parsers check lengths where it matters).
pub(crate) fn be_u16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

/// The big-endian `u32` at `at` in `b`; 0 where `b` is too short.
pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A connection some analyzer predicts (an FTP data channel announced by PORT/PASV).
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub orig_h: Option<IpAddr>,
    pub resp_h: IpAddr,
    pub resp_p: u16,
    /// The analyzer to attach (by [`AnalyzerSpec::name`]); `None` only marks the service.
    pub analyzer: Option<&'static str>,
    /// The service name given to the expected connection (`ftp-data`).
    pub service: &'static str,
    /// Network time after which the expectation lapses.
    pub expires: f64,
}

/// analyzer.log keeps at most this many bytes of a violation's data (`Analyzer::Logging::failure_data_max_size`).
pub const FAILURE_DATA_MAX_SIZE: usize = 40;

/// The part of a violation's data analyzer.log shows: its first [`FAILURE_DATA_MAX_SIZE`] bytes, none when it is
/// empty (Zeek sets the data only `if ( data && len )`).
pub fn failure_data(data: &[u8]) -> Option<Box<[u8]>> {
    let kept = data.get(..FAILURE_DATA_MAX_SIZE).unwrap_or(data);
    (!kept.is_empty()).then(|| kept.into())
}

/// What an analyzer asks of the engine, applied after the call returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The protocol is confirmed: add `service` to the connection's services.
    Confirm(&'static str),
    /// The traffic is not this protocol: detach this analyzer. The reason, and the bytes that caused it where
    /// Zeek's `AnalyzerViolation(reason, data, len)` passes them (at most [`FAILURE_DATA_MAX_SIZE`], never empty:
    /// analyzer.log's `failure_data`).
    Violation(String, Option<Box<[u8]>>),
    /// An analyzer this one embeds (QUIC's TLS) failed: Zeek removes that child analyzer, so a confirmed one leaves
    /// the connection's services and analyzer.log says why; this analyzer goes on.
    EmbeddedViolation {
        analyzer: &'static str,
        reason: String,
    },
    /// Attach the TLS analyzer to the rest of the stream (STARTTLS).
    StartTls,
    /// The side that spoke first is really the responder (a DNS reply seen before its query):
    /// swap originator and responder, as Zeek's `FlipRoles` does (history gets a `^`).
    FlipRoles,
    /// The analysis of this connection is partial because a limit was exceeded: conn.log's history gets `X` for
    /// the side whose data hit it (`x` for the responder), once per side.
    Partial {
        is_orig: bool,
    },
    Expect(Expectation),
    /// The rest of the stream is another protocol (after an HTTP CONNECT or upgrade): attach `analyzer` to it, or,
    /// with `None` (or the analyzer switched off), start content detection afresh there, as Zeek's PIA under the
    /// handing analyzer does. `rest` is what followed the handshake in the same delivery, from side `is_orig`.
    HandOver {
        analyzer: Option<&'static str>,
        is_orig: bool,
        rest: Vec<u8>,
    },
}

/// A weird (protocol anomaly), written to weird.log with the connection it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Weird {
    pub name: String,
    pub addl: Option<String>,
    pub source: &'static str,
}

/// The per-call context an analyzer works through.
pub struct Ctx<'a> {
    /// Network time of the packet being analysed.
    pub ts: f64,
    /// Start time of the connection.
    pub start_ts: f64,
    pub uid: &'a str,
    pub id: &'a ConnId,
    /// The TCP connection was joined mid-stream (no SYN seen from the originator): Zeek's `IsPartial`.
    pub partial: bool,
    pub(crate) cfg: &'a crate::config::AnalysisConfig,
    pub(crate) records: &'a mut Vec<LogRecord>,
    pub(crate) actions: &'a mut Vec<Action>,
    pub(crate) weirds: &'a mut Vec<Weird>,
    pub(crate) ids: &'a mut crate::conn::UidGenerator,
    pub(crate) shared: &'a mut SharedState,
}

/// What analyzers keep across connections of one engine: Zeek scripts that join messages of several
/// connections (DHCP transactions, which broadcasts spread over several "connections").
#[derive(Default)]
pub struct SharedState {
    pub(crate) dhcp: dhcp::Transactions,
    /// FTP records waiting for data channels analysed on other cluster workers.
    pub(crate) ftp: ftp::DataLinks,
    /// HTTP CONNECT and SOCKS proxies in tunnel.log (Zeek's `Tunnel::active`).
    pub(crate) proxy_tunnels: proxy_tunnels::ProxyTunnels,
}

impl SharedState {
    /// Writes what timed out by network time `now`, or everything when the input ended (`finishing`).
    pub fn expire(&mut self, now: f64, finishing: bool, records: &mut Vec<LogRecord>) {
        self.dhcp.expire(now, finishing, records);
        self.proxy_tunnels.expire(now, finishing, records);
    }
}

impl<'a> Ctx<'a> {
    /// Whether `addr` is in the site's local networks (`--local-nets`, Zeek's `Site::local_nets`).
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.cfg.is_local(addr)
    }

    /// Writes one record to a log stream.
    pub fn log(&mut self, schema: &'static Schema, values: Vec<Value>) {
        self.records.push(LogRecord::new(schema, values));
    }

    /// Reports a weird on this connection. Cold: a protocol's weird paths are rare, and out of line they leave the
    /// analyzers' hot paths denser in the instruction cache.
    #[cold]
    pub fn weird(&mut self, name: impl Into<String>, addl: Option<String>, source: &'static str) {
        self.weirds.push(Weird { name: name.into(), addl, source });
    }

    pub fn confirm(&mut self, service: &'static str) {
        self.actions.push(Action::Confirm(service));
    }

    #[cold]
    pub fn violation(&mut self, reason: impl Into<String>) {
        self.actions.push(Action::Violation(reason.into(), None));
    }

    /// A violation caused by `data`, as Zeek reports those of its analyzers that pass the offending bytes along
    /// (`AnalyzerViolation(reason, data, len)`): analyzer.log shows their first [`FAILURE_DATA_MAX_SIZE`] bytes.
    #[cold]
    pub fn violation_with_data(&mut self, reason: impl Into<String>, data: &[u8]) {
        self.actions.push(Action::Violation(reason.into(), failure_data(data)));
    }

    /// The embedded analyzer `analyzer` failed (see [`Action::EmbeddedViolation`]).
    pub fn embedded_violation(&mut self, analyzer: &'static str, reason: impl Into<String>) {
        self.actions.push(Action::EmbeddedViolation { analyzer, reason: reason.into() });
    }

    /// Swaps originator and responder for the rest of the connection (see [`Action::FlipRoles`]).
    pub fn flip_roles(&mut self) {
        self.actions.push(Action::FlipRoles);
    }

    /// A limit cut the analysis short (see [`Action::Partial`]).
    pub fn partial(&mut self, is_orig: bool) {
        self.actions.push(Action::Partial { is_orig });
    }

    pub fn start_tls(&mut self) {
        self.actions.push(Action::StartTls);
    }

    pub fn expect(&mut self, e: Expectation) {
        self.actions.push(Action::Expect(e));
    }

    /// Hands the rest of the stream to another protocol (see [`Action::HandOver`]).
    pub fn hand_over(&mut self, analyzer: Option<&'static str>, is_orig: bool, rest: &[u8]) {
        self.actions.push(Action::HandOver { analyzer, is_orig, rest: rest.to_vec() });
    }

    /// This context with the actions going to `actions` instead: an analyzer that embeds another (QUIC's TLS
    /// handshake) decides which of the inner one's actions apply to the connection.
    pub(crate) fn with_actions<'b>(&'b mut self, actions: &'b mut Vec<Action>) -> Ctx<'b> {
        Ctx {
            ts: self.ts,
            start_ts: self.start_ts,
            uid: self.uid,
            id: self.id,
            partial: self.partial,
            cfg: self.cfg,
            records: &mut *self.records,
            actions,
            weirds: &mut *self.weirds,
            ids: &mut *self.ids,
            shared: &mut *self.shared,
        }
    }

    /// A new file id (`F...`), for files.log.
    pub fn new_fuid(&mut self) -> String {
        self.ids.next_fuid()
    }

    /// `ts`, `uid` and the four `id.*` values: the first six columns of most protocol logs.
    pub fn conn_columns(&self, ts: f64) -> Vec<Value> {
        let mut v = Vec::with_capacity(32);
        v.push(Value::Time(ts));
        v.push(Value::str(self.uid));
        v.extend(self.id.log_values());
        v
    }
}

/// One protocol analyzer attached to one connection.
pub trait Analyzer: Send {
    /// The spec the analyzer is built from, whose name conn.log's services, analyzer.log and content detection
    /// know it by: a connection keeps an analyzer's spec only until it is built ([`crate::conn::Attached`]), and
    /// goes back to it when the analyzer is done.
    fn spec(&self) -> &'static AnalyzerSpec;

    /// Stream bytes (TCP, in order) or one datagram (UDP) from the originator (`is_orig`) or responder.
    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]);

    /// `len` bytes of the stream were never seen (a content gap).
    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {}

    /// One direction of the stream ended (FIN or RST).
    fn end_of_data(&mut self, _ctx: &mut Ctx, _is_orig: bool) {}

    /// The connection is done (closed, timed out or the trace ended): write what is pending.
    fn finish(&mut self, _ctx: &mut Ctx) {}

    /// Nothing this analyzer is given from now on can write a record, a weird or an action (it logged what it
    /// had and ignores the rest): the engine then frees its state and keeps only its spec, detached.
    fn is_done(&self) -> bool {
        false
    }
}

/// A detection signature's test of one direction: whether the start of that direction's payload looks right.
pub type DetectFn = fn(proto: Proto, is_orig: bool, payload: &[u8]) -> bool;

/// A test of both directions at once: whether the starts of the originator's and the responder's payloads, as far as
/// they came, make a match.
pub type PairFn = fn(proto: Proto, orig: &[u8], resp: &[u8]) -> bool;

/// A content signature (Zeek's DPD `signature`s): the analyzer starts on any port once the start of a stream looks
/// right.
#[derive(Clone, Copy)]
pub struct Signature(Test);

#[derive(Clone, Copy)]
enum Test {
    EitherSide(DetectFn),
    /// Zeek's `requires-reverse-signature`: the other direction must look right too. The analyzer then starts at
    /// the packet that completes the pair, and what it logs carries that packet's time (Zeek replays the buffered
    /// start of both directions to it then).
    BothSides(DetectFn),
    /// Several `requires-reverse-signature` pairs enabling one analyzer, which need not pair a client pattern with
    /// the originator (SOCKS's `dpd_socks4_reverse_*`): started as [`Test::BothSides`] is.
    Pairs(PairFn),
}

impl Signature {
    /// Either direction alone starts the analyzer.
    pub const fn either_side(looks_right: DetectFn) -> Signature {
        Signature(Test::EitherSide(looks_right))
    }

    /// Both directions must look right.
    pub const fn both_sides(looks_right: DetectFn) -> Signature {
        Signature(Test::BothSides(looks_right))
    }

    /// `matches` tells from both directions whether they make one of the analyzer's pairs.
    pub const fn pairs(matches: PairFn) -> Signature {
        Signature(Test::Pairs(matches))
    }

    /// Whether the analyzer starts now that the direction `is_orig` has grown to `this`; `other` is what the other
    /// direction has sent so far.
    pub fn matches(&self, proto: Proto, is_orig: bool, this: &[u8], other: &[u8]) -> bool {
        let (orig, resp) = if is_orig { (this, other) } else { (other, this) };
        match self.0 {
            Test::EitherSide(looks_right) => looks_right(proto, is_orig, this),
            // The responder's test first: servers' greetings are short prefixes that fail fast on other protocols,
            // while a client's test may look at every line it sent.
            Test::BothSides(looks_right) => looks_right(proto, false, resp) && looks_right(proto, true, orig),
            Test::Pairs(matches) => matches(proto, orig, resp),
        }
    }
}

/// How an analyzer is found and built.
pub struct AnalyzerSpec {
    /// Name used by `--analyzers` and, for most protocols, the `service` it confirms.
    pub name: &'static str,
    pub tcp_ports: &'static [u16],
    pub udp_ports: &'static [u16],
    /// Content signature (Zeek's DPD signatures); attaches the analyzer on any port.
    pub detect: Option<Signature>,
    pub new: fn(proto: Proto) -> Box<dyn Analyzer>,
    /// The logs this analyzer writes.
    pub schemas: &'static [&'static Schema],
}

/// Every analyzer the node has, in attach order.
pub static REGISTRY: &[&AnalyzerSpec] = &[
    &dns::SPEC,
    &http::SPEC,
    &ssl::SPEC,
    &ssl::dtls::SPEC,
    &ssh::SPEC,
    &ftp::SPEC,
    &ftp::DATA_SPEC,
    &smtp::SPEC,
    &pop3::SPEC,
    &imap::SPEC,
    &finger::SPEC,
    &detect::XMPP,
    &ntp::SPEC,
    &dhcp::SPEC,
    &quic::SPEC,
    &irc::SPEC,
    &irc::DATA_SPEC,
    &syslog::SPEC,
    &snmp::SPEC,
    &radius::SPEC,
    &rdp::SPEC,
    &sip::SPEC,
    &rfb::SPEC,
    &mysql::SPEC,
    &postgresql::SPEC,
    &websocket::SPEC,
    &socks::SPEC,
    &modbus::SPEC,
    &mqtt::SPEC,
    &redis::SPEC,
    &dnp3::SPEC,
    &ldap::SPEC,
    &ldap::UDP_SPEC,
    &krb::SPEC,
    &krb::TCP_SPEC,
    &dce_rpc::SPEC,
    &smb::SPEC,
];

pub fn spec_by_name(name: &str) -> Option<&'static AnalyzerSpec> {
    REGISTRY.iter().copied().find(|s| s.name == name)
}

/// Every protocol log schema, for [`crate::logs::schema_by_path`].
pub fn all_schemas() -> Vec<&'static Schema> {
    REGISTRY.iter().flat_map(|s| s.schemas.iter().copied()).collect()
}

/// Test support: runs an analyzer over scripted deliveries and collects what it wrote.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub struct Harness {
        pub id: ConnId,
        pub records: Vec<LogRecord>,
        pub actions: Vec<Action>,
        pub weirds: Vec<Weird>,
        pub partial: bool,
        pub shared: SharedState,
        cfg: crate::config::AnalysisConfig,
        ids: crate::conn::UidGenerator,
    }

    impl Harness {
        pub fn new(proto: Proto, resp_p: u16) -> Self {
            Harness {
                id: ConnId {
                    orig_h: "10.0.0.1".parse().unwrap(),
                    orig_p: 40000,
                    resp_h: "192.0.2.1".parse().unwrap(),
                    resp_p,
                    proto,
                },
                records: vec![],
                actions: vec![],
                weirds: vec![],
                partial: false,
                shared: SharedState::default(),
                cfg: crate::config::AnalysisConfig::default(),
                ids: crate::conn::UidGenerator::new(1),
            }
        }

        /// Only the named analyzers and log streams are on (`--analyzers`).
        pub fn enable_only(&mut self, names: &[&str]) {
            self.cfg = std::mem::take(&mut self.cfg).with_analyzers(names).expect("known analyzer names");
        }

        pub fn run(&mut self, ts: f64, f: impl FnOnce(&mut Ctx)) {
            let mut ctx = Ctx {
                ts,
                start_ts: 0.0,
                uid: "CTest",
                id: &self.id,
                partial: self.partial,
                cfg: &self.cfg,
                records: &mut self.records,
                actions: &mut self.actions,
                weirds: &mut self.weirds,
                ids: &mut self.ids,
                shared: &mut self.shared,
            };
            f(&mut ctx);
        }

        pub fn deliver(&mut self, a: &mut dyn Analyzer, is_orig: bool, data: &[u8]) {
            self.run(1.0, |ctx| a.deliver(ctx, is_orig, data));
        }

        pub fn finish(&mut self, a: &mut dyn Analyzer) {
            self.run(2.0, |ctx| a.finish(ctx));
        }

        /// The records written to `path`.
        pub fn logged(&self, path: &str) -> Vec<&LogRecord> {
            self.records.iter().filter(|r| r.schema.path == path).collect()
        }

        /// The reasons of the violations the analyzer reported, in order.
        pub fn violations(&self) -> Vec<&str> {
            self.actions
                .iter()
                .filter_map(|a| match a {
                    Action::Violation(reason, _) => Some(reason.as_str()),
                    _ => None,
                })
                .collect()
        }

        /// The columns after `id` of each record written to `path`, as TSV.
        pub fn columns(&self, path: &str) -> Vec<Vec<String>> {
            self.logged(path).iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect()
        }

        /// [`Self::columns`] with `ts` first.
        pub fn timed_columns(&self, path: &str) -> Vec<Vec<String>> {
            let timed = |r: &&LogRecord| r.values[..1].iter().chain(&r.values[6..]).map(Value::to_tsv).collect();
            self.logged(path).iter().map(timed).collect()
        }
    }

    /// An expected row of TSV columns.
    pub fn row<const N: usize>(fields: [&str; N]) -> Vec<String> {
        fields.map(String::from).to_vec()
    }

    /// xorshift64: the tests' small deterministic generator of arbitrary input.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Every record a fresh engine writes for `frames` (raw IP packets, 10 ms apart from t=1) with `cfg`'s
    /// analyzers, checksums ignored: the through-the-engine tests of the analyzers.
    pub fn engine_records_with(cfg: crate::config::AnalysisConfig, frames: &[Vec<u8>]) -> Vec<LogRecord> {
        let mut engine = crate::engine::Engine::new(crate::config::AnalysisConfig { ignore_checksums: true, ..cfg });
        for (i, frame) in frames.iter().enumerate() {
            engine.process_packet(1.0 + i as f64 * 0.01, crate::decode::LinkType::Raw, frame);
        }
        engine.finish();
        engine.drain_records().collect()
    }

    /// [`engine_records_with`] every analyzer on.
    pub fn engine_records(frames: &[Vec<u8>]) -> Vec<LogRecord> {
        engine_records_with(crate::config::AnalysisConfig::default(), frames)
    }

    /// A record's field as TSV (empty when its log has no such field).
    pub fn field(record: &LogRecord, name: &str) -> String {
        record.get(name).map(Value::to_tsv).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(spec: &AnalyzerSpec, is_orig: bool, this: &[u8], other: &[u8]) -> bool {
        spec.detect.is_some_and(|s| s.matches(Proto::Tcp, is_orig, this, other))
    }

    /// The engine does not build an analyzer that was never called only to finish it (a connection that carried
    /// nothing: a scan's SYN, a refused attempt): that is only right while finishing a new analyzer writes nothing.
    #[test]
    fn analyzers_never_called_write_nothing_when_finished() {
        for spec in REGISTRY {
            for proto in [Proto::Tcp, Proto::Udp] {
                let port = spec.tcp_ports.first().or(spec.udp_ports.first()).copied().unwrap_or(1);
                let written = fuzzing::drive((spec.new)(proto).as_mut(), proto, port, &[]);
                assert_eq!(written, 0, "{} ({proto:?}) wrote something when finished without a call", spec.name);
            }
        }
    }

    /// analyzer.log's `failure_data` is the data's first 40 bytes (`info$data[0:failure_data_max_size]`), and no
    /// data at all for an empty one.
    #[test]
    fn failure_data_is_cut_to_forty_bytes() {
        let line: Vec<u8> = (0..41u8).map(|i| b'a' + i % 26).collect();
        assert_eq!(failure_data(&line).as_deref(), Some(&line[..40]));
        assert_eq!(failure_data(&line[..40]).as_deref(), Some(&line[..40]));
        assert_eq!(failure_data(b"\xff\x00x").as_deref(), Some(b"\xff\x00x".as_slice()));
        assert_eq!(failure_data(b""), None);
    }

    /// A connection keeps an analyzer's spec only until the analyzer is built ([`crate::conn::Attached`]): after
    /// that, conn.log's services, analyzer.log and content detection know it by the spec it gives.
    #[test]
    fn built_analyzers_give_their_spec() {
        for spec in REGISTRY {
            for proto in [Proto::Tcp, Proto::Udp] {
                assert!(std::ptr::eq((spec.new)(proto).spec(), *spec), "{} built for {proto:?}", spec.name);
            }
        }
    }

    /// Through the engine: SNMP and RADIUS attach by port, SIP by its signature on a port nobody registered, their
    /// answers confirm `service`, and their records carry the connection's uid (the analyzers' own tests check the
    /// fields).
    #[test]
    fn datagram_protocol_logs_carry_their_connection() {
        use crate::decode::LinkType;
        use crate::decode::test_frames::ipv4_udp;
        use crate::engine::Engine;

        const CLIENT: [u8; 4] = [10, 0, 0, 1];
        const SERVER: [u8; 4] = [10, 0, 0, 2];
        // SNMPv1 get and response for no bindings, community "public"; a RADIUS Access-Request and its Accept.
        let snmp = |pdu: u8| {
            let mut m = vec![0x30, 0x18, 0x02, 0x01, 0x00, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c'];
            m.extend([pdu, 0x0b, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x00]);
            m
        };
        let radius = |code: u8| [&[code, 0x01, 0x00, 0x14][..], &[0x4c; 16]].concat();
        let mut engine = Engine::new(crate::config::AnalysisConfig { ignore_checksums: true, ..Default::default() });
        let sip = |first_line: &str| format!("{first_line}\r\nContent-Length: 0\r\n\r\n").into_bytes();
        let exchanges = [
            (161, snmp(0xa0), snmp(0xa2)),
            (1812, radius(1), radius(2)),
            (5080, sip("OPTIONS sip:carol@chicago.example.com SIP/2.0"), sip("SIP/2.0 200 OK")),
        ];
        for (i, (port, request, reply)) in exchanges.iter().enumerate() {
            let ts = 1.0 + i as f64;
            engine.process_packet(ts, LinkType::Raw, &ipv4_udp((CLIENT, 40000), (SERVER, *port), request));
            engine.process_packet(ts + 0.5, LinkType::Raw, &ipv4_udp((SERVER, *port), (CLIENT, 40000), reply));
        }
        engine.finish();
        let records: Vec<LogRecord> = engine.drain_records().collect();
        let field = |r: &LogRecord, name: &str| r.get(name).map(Value::to_tsv).unwrap_or_default();
        for (port, path, column, value) in [
            ("161", "snmp", "version", "1"),
            ("1812", "radius", "result", "success"),
            ("5080", "sip", "method", "OPTIONS"),
        ] {
            let conn = records.iter().find(|r| r.schema.path == "conn" && field(r, "id.resp_p") == port).unwrap();
            assert_eq!(field(conn, "service"), path);
            let logged: Vec<_> = records.iter().filter(|r| r.schema.path == path).collect();
            assert_eq!(logged.len(), 1, "{path}");
            assert_eq!((field(logged[0], "uid"), field(logged[0], column)), (field(conn, "uid"), value.to_string()));
        }
    }

    #[test]
    fn content_signatures_follow_zeeks_dpd_rules() {
        // SSH: both banners; the second one starts the analyzer.
        assert!(!starts(&ssh::SPEC, true, b"SSH-2.0-client\r\n", b""));
        assert!(starts(&ssh::SPEC, false, b"SSH-2.0-server\r\n", b"SSH-2.0-client\r\n"));
        // HTTP: either side alone, any registered method, a reply's version in any case.
        assert!(starts(&http::SPEC, true, b"  PROPFIND /x HTTP/1.1\r\n", b""));
        assert!(starts(&http::SPEC, false, b"http/1.1 200 OK\r\n", b""));
        assert!(!starts(&http::SPEC, true, b"FETCH / HTTP/1.1\r\n", b""));
        assert!(!starts(&http::SPEC, false, b"HTTP/x 200 OK\r\n", b""));
        // SMTP: a client HELO/EHLO line (not only the first) once the server greeted with 220.
        assert!(!starts(&smtp::SPEC, false, b"220 mx ESMTP\r\n", b""));
        assert!(!starts(&smtp::SPEC, true, b"EHLO me\r\n", b"554 go away\r\n"));
        assert!(starts(&smtp::SPEC, true, b"NOOP\r\n  helo me\r\n", b"220-mx\r\n220 ok\r\n"));
        // FTP: the server's answer to USER completes it.
        assert!(!starts(&ftp::SPEC, false, b"220 hello\r\n", b"USER anonymous\r\n"));
        assert!(starts(&ftp::SPEC, false, b"220 hello\r\n331 password?\r\n", b"USER anonymous\r\n"));
        assert!(!starts(&ftp::SPEC, false, b"220 hello\r\n331 password?\r\n", b"HELP\r\n"));
        // TLS: either hello alone.
        let client_hello = [0x16, 3, 1, 0, 0x40, 1, 0, 0, 0x3c, 3, 3];
        assert!(starts(&ssl::SPEC, true, &client_hello, b""));
    }
}
