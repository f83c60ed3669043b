//! Kerberos (udp 88: `KRB`, tcp 88: `KRB_TCP`) to kerberos.log, as Zeek's binpac analyzer
//! (src/analyzer/protocol/krb: `KRB.cc`, `KRB_TCP.cc`, `krb.pac`, `krb_TCP.pac`, `krb-protocol.pac`,
//! `krb-analyzer.pac`, `krb-types.pac`, `krb-padata.pac`, `krb-asn1.pac`) and base/protocols/krb (`main.zeek`,
//! `files.zeek`, `consts.zeek`, `dpd.sig`) do it.
//!
//! Over UDP each datagram is one message; over TCP each direction is a run of records, a 4-byte big-endian length
//! and that many bytes of message (`KRB_PDU_TCP`, binpac's flow unit). The grammar ([`parse`]) reads ASN.1 headers
//! at fixed places without checking tags, as binpac does; the analyzer confirms (`krb`, `krb_tcp`) at every message
//! that parsed whole, and anything binpac throws on is a violation (events the message raised before stand). The TCP
//! analyzer ignores connections joined mid-stream and stops at a content gap, as `KRB_TCP.cc` does.
//!
//! The script keeps one record per connection (`set_session` at the first event, `ts` then): an AS-REQ gives
//! `request_type` `AS`, `client` (`name/realm`, the realm being the request's), `service`, `from`, `till` and the
//! forwardable and renewable options; a TGS-REQ the same but the client; an AS-REP or TGS-REP the client (when
//! none) from its own name and realm, the ticket's service and cipher, `success` T, and writes the record; a
//! KRB-ERROR the client (when none: `name/` and realm), the service, `success` F and `error_msg` (the error text,
//! else the code's name), and writes it, but an error whose text is one of `KRB::ignored_errors` drops the record
//! (the next event starts a new one); a standalone AP-REQ `AP`, the ticket's service and cipher and `client`
//! `/realm` (one in a TGS-REQ's pre-authentication data only starts the record), an AP-REP `success` T, and writes
//! it. A written record takes nothing more; one still open is written when the connection ends (`finalize_krb`).
//! PKINIT certificates (PA-PK-AS-REQ, PA-PK-AS-REP) become files: `client_cert_fuid`/`server_cert_fuid`, their
//! subjects when the record is written, and x509.log as the X509 file analyzer logs them.

mod consts;
pub mod parse;

use self::parse::{ErrorMsg, Event, KdcRequest, KdcResponse, Ticket};
use super::ssl::x509::{self, KnownCerts, X509_LOG};
use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static KERBEROS_LOG: Schema = Schema {
    path: "kerberos",
    fields: conn_fields![
        f("request_type", "string"),
        f("client", "string"),
        f("service", "string"),
        f("success", "bool"),
        f("error_msg", "string"),
        f("from", "time"),
        f("till", "time"),
        f("cipher", "string"),
        f("forwardable", "bool"),
        f("renewable", "bool"),
        f("client_cert_subject", "string"),
        f("client_cert_fuid", "string"),
        f("server_cert_subject", "string"),
        f("server_cert_fuid", "string"),
    ],
};

/// `Analyzer::ANALYZER_KRB`: udp 88, and the `dpd_krb_udp` signature.
pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "krb",
    tcp_ports: &[],
    udp_ports: &[88],
    detect: Some(Signature::either_side(dpd_krb_udp)),
    new: |_| Box::new(KrbUdp::new(None)),
    schemas: &[&KERBEROS_LOG, &X509_LOG],
};

/// `Analyzer::ANALYZER_KRB_TCP`: tcp 88.
pub static TCP_SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "krb_tcp",
    tcp_ports: &[88],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(KrbTcp::new(None)),
    schemas: &[&KERBEROS_LOG, &X509_LOG],
};

/// `KRB::ignored_errors`: error texts whose error drops the record.
const IGNORED_ERRORS: [&[u8]; 2] = [b"NEEDED_PREAUTH", b"Need to use PA-ENC-TIMESTAMP/PA-PK-AS-REQ"];

/// A TCP record's message longer than this is not buffered: its bytes are skipped. Kerberos messages stay far
/// below it (Windows caps its tokens at 65535 bytes); binpac would buffer up to 10 MiB.
const MAX_MESSAGE: u64 = 64 << 10;

/// binpac's flow buffer limit (`BINPAC_DEFAULT_MAX_CAPACITY`): a record growing past it is its exception.
const BINPAC_MAX_CAPACITY: u64 = 10 << 20;

/// base/protocols/krb/dpd.sig's `dpd_krb_udp`: `/\x6c...\x30...\xa1\x03\x02\x05/` at the start of a datagram
/// (`.` short of a newline). As written it wants no `\x01` before the `\x05`, so a DER TGS-REQ's `a1 03 02 01 05`
/// does not match it.
fn dpd_krb_udp(proto: Proto, _is_orig: bool, data: &[u8]) -> bool {
    proto == Proto::Udp
        && matches!(data, [0x6c, a, b, c, 0x30, d, e, g, 0xa1, 0x03, 0x02, 0x05, ..]
            if [a, b, c, d, e, g].iter().all(|&&x| x != b'\n'))
}

/// A certificate handed to the files framework, as `c$krb$client_cert`/`server_cert` keep it.
#[derive(Debug, Clone, PartialEq)]
struct CertFile {
    fuid: String,
    /// The X509 analyzer's `certificate$subject`, when it parsed the certificate.
    subject: Option<String>,
}

/// The connection's `c$krb`.
#[derive(Debug, Default, Clone, PartialEq)]
struct Info {
    ts: f64,
    request_type: Option<&'static str>,
    client: Option<Vec<u8>>,
    service: Option<Vec<u8>>,
    success: Option<bool>,
    error_msg: Option<Vec<u8>>,
    from: Option<f64>,
    till: Option<f64>,
    cipher: Option<String>,
    forwardable: Option<bool>,
    renewable: Option<bool>,
    client_cert: Option<CertFile>,
    client_cert_subject: Option<String>,
    server_cert: Option<CertFile>,
    server_cert_subject: Option<String>,
    logged: bool,
}

impl Info {
    fn values(&self, ctx: &Ctx) -> Vec<Value> {
        let text = |v: &Option<Vec<u8>>| v.as_deref().map_or(Value::Unset, |b| Value::Str(bytes_to_log_string(b)));
        let fuid = |c: &Option<CertFile>| Value::opt_str(c.as_ref().map(|c| c.fuid.clone()));
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::opt_str(self.request_type),
            text(&self.client),
            text(&self.service),
            self.success.map_or(Value::Unset, Value::Bool),
            text(&self.error_msg),
            self.from.map_or(Value::Unset, Value::Time),
            self.till.map_or(Value::Unset, Value::Time),
            Value::opt_str(self.cipher.clone()),
            self.forwardable.map_or(Value::Unset, Value::Bool),
            self.renewable.map_or(Value::Unset, Value::Bool),
            Value::opt_str(self.client_cert_subject.clone()),
            fuid(&self.client_cert),
            Value::opt_str(self.server_cert_subject.clone()),
            fuid(&self.server_cert),
        ]);
        v
    }
}

/// `fmt("%s/%s", a, b)` of two optional byte strings (absent ones empty).
fn slash_joined(a: Option<&[u8]>, b: Option<&[u8]>) -> Vec<u8> {
    [a.unwrap_or_default(), b.unwrap_or_default()].join(&b'/')
}

/// base/protocols/krb's handlers over the connection's record, shared by both analyzers.
struct Script {
    krb: Option<Box<Info>>,
    /// The analyzer's name, the source of its weirds.
    source: &'static str,
    service: &'static str,
    confirmed: bool,
    /// x509.log deduplication: the process-wide table, or a private one (tests, fuzzing).
    known_certs: Option<KnownCerts>,
}

impl Script {
    fn new(source: &'static str, service: &'static str, known_certs: Option<KnownCerts>) -> Self {
        Script { krb: None, source, service, confirmed: false, known_certs }
    }

    /// `set_session`: the record, started now if there is none, and whether it was written already.
    fn set_session(&mut self, ts: f64) -> (&mut Info, bool) {
        let info = self.krb.get_or_insert_with(|| Box::new(Info { ts, ..Info::default() }));
        let logged = info.logged;
        (info, logged)
    }

    /// The record, unless it was written (the handlers' `if ( set_session(c) ) return;`).
    fn session(&mut self, ts: f64) -> Option<&mut Info> {
        match self.set_session(ts) {
            (info, false) => Some(info),
            (_, true) => None,
        }
    }

    fn do_log(&mut self, ctx: &mut Ctx) {
        if let Some(info) = self.krb.as_mut().filter(|i| !i.logged) {
            info.logged = true;
            ctx.log(&KERBEROS_LOG, info.values(ctx));
        }
    }

    /// files.zeek's `fill_in_subjects`.
    fn fill_in_subjects(&mut self) {
        let Some(info) = self.krb.as_mut() else { return };
        if let Some(subject) = info.client_cert.as_ref().and_then(|c| c.subject.clone()) {
            info.client_cert_subject = Some(subject);
        }
        if let Some(subject) = info.server_cert.as_ref().and_then(|c| c.subject.clone()) {
            info.server_cert_subject = Some(subject);
        }
    }

    /// Every handler of one event, by priority.
    fn apply(&mut self, ctx: &mut Ctx, event: Event) {
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm(self.service);
        }
        let ts = ctx.ts;
        match event {
            Event::Confirmed => {}
            Event::Weird(name) => ctx.weird(name, None, self.source),
            Event::AsRequest(req) => self.kdc_request(ts, "AS", req),
            Event::TgsRequest(req) => self.kdc_request(ts, "TGS", req),
            Event::AsResponse(rep) | Event::TgsResponse(rep) => {
                self.kdc_response(ts, rep);
                self.fill_in_subjects();
                self.do_log(ctx);
            }
            Event::Error(msg) => {
                self.error(ts, msg);
                self.fill_in_subjects();
                self.do_log(ctx);
            }
            Event::ApRequest { ticket, in_kdc_padata } => self.ap_request(ts, ticket, in_kdc_padata),
            Event::ApResponse => {
                if let Some(info) = self.session(ts) {
                    info.success = Some(true);
                }
                self.do_log(ctx);
            }
            Event::Certificate { is_orig, der } => self.certificate(ctx, is_orig, &der),
        }
    }

    fn kdc_request(&mut self, ts: f64, request_type: &'static str, req: KdcRequest) {
        let Some(info) = self.session(ts) else { return };
        info.request_type = Some(request_type);
        if request_type == "AS" {
            info.client = Some(slash_joined(req.client_name.as_deref(), req.service_realm.as_deref()));
        }
        if req.service_name.is_some() {
            info.service = req.service_name;
        }
        if req.from.is_some() {
            info.from = req.from;
        }
        if req.till.is_some() {
            info.till = req.till;
        }
        if let Some((forwardable, renewable)) = req.options {
            info.forwardable = Some(forwardable);
            info.renewable = Some(renewable);
        }
    }

    fn kdc_response(&mut self, ts: f64, rep: KdcResponse) {
        let Some(info) = self.session(ts) else { return };
        // The response always has both: `client` is set unless the request set it.
        if info.client.is_none() {
            info.client = Some(slash_joined(Some(&rep.client_name), Some(&rep.client_realm)));
        }
        info.service = Some(rep.ticket.service_name);
        info.cipher = Some(consts::cipher_name(rep.ticket.cipher));
        info.success = Some(true);
    }

    fn error(&mut self, ts: f64, msg: ErrorMsg) {
        if self.session(ts).is_none() {
            return;
        }
        if msg.error_text.as_deref().is_some_and(|t| IGNORED_ERRORS.contains(&t)) {
            self.krb = None;
            return;
        }
        let Some(info) = self.session(ts) else { return };
        if info.client.is_none() && (msg.client_name.is_some() || msg.client_realm.is_some()) {
            // `fmt("%s%s", name + "/", realm)`: no slash without a name.
            let name = msg.client_name.map(|n| [n, b"/".to_vec()].concat()).unwrap_or_default();
            info.client = Some([name, msg.client_realm.unwrap_or_default()].concat());
        }
        if msg.service_name.is_some() {
            info.service = msg.service_name;
        }
        info.success = Some(false);
        info.error_msg = msg.error_text.or_else(|| consts::error_msg(msg.error_code).map(|m| m.as_bytes().to_vec()));
    }

    fn ap_request(&mut self, ts: f64, ticket: Ticket, in_kdc_padata: bool) {
        let Some(info) = self.session(ts) else { return };
        if in_kdc_padata {
            return;
        }
        info.request_type = Some("AP");
        info.service = Some(ticket.service_name);
        info.cipher = Some(consts::cipher_name(ticket.cipher));
        info.client = Some([b"/", &ticket.realm[..]].concat());
    }

    /// `proc_padata`'s file, the X509 file analyzer on it, and files.zeek's `file_over_new_connection`.
    fn certificate(&mut self, ctx: &mut Ctx, is_orig: bool, der: &[u8]) {
        let cert = x509::parse(der);
        if let Some(cert) = &cert {
            let fp = x509::fingerprint(der);
            let log = match &mut self.known_certs {
                Some(known) => known.should_log(&fp, false, false, ctx.ts),
                None => x509::should_log_globally(&fp, false, false, ctx.ts),
            };
            if log {
                ctx.log(&X509_LOG, x509::log_values(ctx.ts, &fp, cert, false, false));
            }
        }
        let file = CertFile { fuid: ctx.new_fuid(), subject: cert.map(|c| c.subject) };
        let (info, _) = self.set_session(ctx.ts);
        if is_orig {
            info.client_cert = Some(file);
        } else {
            info.server_cert = Some(file);
        }
    }

    /// One message: its events, then its exception as a violation.
    fn message(&mut self, ctx: &mut Ctx, data: &[u8]) -> bool {
        let (events, error) = parse::parse(data);
        for event in events {
            self.apply(ctx, event);
        }
        match error {
            Some(e) => {
                ctx.violation(e.to_string());
                false
            }
            None => true,
        }
    }

    /// The removal hook `finalize_krb` (files.zeek's at priority 5 first).
    fn finish(&mut self, ctx: &mut Ctx) {
        self.fill_in_subjects();
        self.do_log(ctx);
    }
}

/// `KRB_Analyzer` (UDP): each datagram is a `KRB_PDU`.
pub struct KrbUdp {
    script: Script,
    /// A violation ended the analysis (the engine detaches the analyzer then).
    stopped: bool,
}

impl KrbUdp {
    fn new(known_certs: Option<KnownCerts>) -> Self {
        KrbUdp { script: Script::new("KRB", "krb", known_certs), stopped: false }
    }
}

impl Analyzer for KrbUdp {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, _is_orig: bool, data: &[u8]) {
        if self.stopped || data.is_empty() {
            return;
        }
        self.stopped = !self.script.message(ctx, data);
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.script.finish(ctx);
    }
}

/// The KRB analyzer another analyzer instantiates outside the connection's analyzer tree (GSSAPI's Kerberos
/// mechanism tokens): `DeliverPacket` on each message, and since no DPD can disable it, a violation does not stop
/// it.
pub struct Embedded {
    script: Script,
}

impl Default for Embedded {
    fn default() -> Self {
        Embedded { script: Script::new("KRB", "krb", None) }
    }
}

impl Embedded {
    pub fn deliver(&mut self, ctx: &mut Ctx, data: &[u8]) {
        if !data.is_empty() {
            self.script.message(ctx, data);
        }
    }

    pub fn finish(&mut self, ctx: &mut Ctx) {
        self.script.finish(ctx);
    }
}

/// One direction's `KRB_PDU_TCP` flow units.
#[derive(Default)]
struct Flow {
    /// The current record's bytes so far, its length prefix included.
    pending: Vec<u8>,
    /// A record longer than [`MAX_MESSAGE`]: bytes of it still to come, and how many came.
    skipping: Option<(u64, u64)>,
}

/// binpac's buffer outgrew its limit on a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Binpac exception: binpac exception: expand past max capacity")]
struct BufferFull;

impl Flow {
    /// Takes `data` in; the messages of the records it completes go to `out`, in order.
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), BufferFull> {
        loop {
            if let Some((left, seen)) = &mut self.skipping {
                let n = (data.len() as u64).min(*left);
                *left -= n;
                *seen += n;
                data = data.get(n as usize..).unwrap_or_default();
                if *seen + 4 > BINPAC_MAX_CAPACITY {
                    return Err(BufferFull);
                }
                if *left > 0 {
                    return Ok(());
                }
                self.skipping = None;
            }
            if self.pending.len() < 4 {
                let n = (4 - self.pending.len()).min(data.len());
                self.pending.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.pending.len() < 4 {
                    return Ok(());
                }
            }
            let size =
                u64::from(u32::from_be_bytes([self.pending[0], self.pending[1], self.pending[2], self.pending[3]]));
            if size > MAX_MESSAGE {
                self.pending.clear();
                self.skipping = Some((size, 0));
                continue;
            }
            let missing = (4 + size as usize).saturating_sub(self.pending.len());
            let n = missing.min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            if n < missing {
                return Ok(());
            }
            out.push(self.pending.split_off(4));
            self.pending.clear();
        }
    }
}

/// `KRB_TCP`'s `KRB_Analyzer`: each direction a run of length-prefixed records.
pub struct KrbTcp {
    script: Script,
    flows: [Flow; 2],
    /// A content gap was seen (`had_gap`): nothing more is parsed.
    had_gap: bool,
    stopped: bool,
}

impl KrbTcp {
    fn new(known_certs: Option<KnownCerts>) -> Self {
        KrbTcp {
            script: Script::new("KRB_TCP", "krb_tcp", known_certs),
            flows: Default::default(),
            had_gap: false,
            stopped: false,
        }
    }
}

impl Analyzer for KrbTcp {
    fn spec(&self) -> &'static AnalyzerSpec {
        &TCP_SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.stopped || self.had_gap || ctx.partial {
            return;
        }
        let mut messages = Vec::new();
        let fed = self.flows[usize::from(!is_orig)].feed(data, &mut messages);
        for message in messages {
            if !self.script.message(ctx, &message) {
                self.stopped = true;
                return;
            }
        }
        if let Err(e) = fed {
            self.stopped = true;
            ctx.violation(e.to_string());
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        self.had_gap = true;
    }

    /// binpac's `FlowEOF`: a record cut short is dropped.
    fn end_of_data(&mut self, _ctx: &mut Ctx, is_orig: bool) {
        self.flows[usize::from(!is_orig)] = Flow::default();
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.script.finish(ctx);
    }
}

/// Fuzz entry point: arbitrary deliveries to both analyzers.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut KrbUdp::new(Some(KnownCerts::default())), Proto::Udp, 88, data);
    super::fuzzing::drive(&mut KrbTcp::new(Some(KnownCerts::default())), Proto::Tcp, 88, data);
}

#[cfg(test)]
pub(crate) mod tests;
