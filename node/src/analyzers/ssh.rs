//! SSH analyzer: ssh.log as Zeek 9.1 writes it.
//!
//! Follows Zeek's binpac SSH analyzer (`src/analyzer/protocol/ssh`) for framing, key-exchange parsing and
//! the packet-size inference of authentication results, and `base/protocols/ssh/main.zeek` for every
//! logged field: banners, the negotiated algorithms (the client's first choice the server also offers),
//! the server host key fingerprint, and when the record is written.

use sha2::{Digest, Sha256};

use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::conn_fields;
use crate::logs::{Schema, Value, bytes_to_log_string, f, push_log_bytes};

pub static SSH_LOG: Schema = Schema {
    path: "ssh",
    fields: conn_fields![
        f("version", "count"),
        f("auth_success", "bool"),
        f("auth_attempts", "count"),
        f("direction", "enum"),
        f("client", "string"),
        f("server", "string"),
        f("cipher_alg", "string"),
        f("mac_alg", "string"),
        f("compression_alg", "string"),
        f("kex_alg", "string"),
        f("host_key_alg", "string"),
        f("host_key_fingerprint", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "ssh",
    tcp_ports: &[22],
    udp_ports: &[],
    detect: Some(Signature::both_sides(detect)),
    new: |_| Box::new(SshAnalyzer::default()),
    schemas: &[&SSH_LOG],
};

/// Zeek's `dpd_ssh_client` and `dpd_ssh_server` signatures: a version banner `SSH-1.` or `SSH-2.` (any case); the
/// client's requires the server's, so SSH on another port starts with the second banner.
fn detect(proto: Proto, _is_orig: bool, payload: &[u8]) -> bool {
    proto == Proto::Tcp
        && payload.len() >= 6
        && payload[..4].eq_ignore_ascii_case(b"SSH-")
        && matches!(payload[4], b'1' | b'2')
        && payload[5] == b'.'
}

/// `SSH::compression_algorithms`: with these, packet sizes say nothing about authentication.
const COMPRESSION_ALGORITHMS: &[&str] = &["zlib", "zlib@openssh.com"];
/// Longest banner line or key-exchange packet buffered before giving up on the stream.
const MAX_LINE: usize = 64 * 1024;
const MAX_PACKET: usize = 1 << 20;

const MSG_KEXINIT: u8 = 20;
const MSG_NEWKEYS: u8 = 21;
/// SSH1 `SSH_CMSG_SESSION_KEY`: the client's last cleartext message.
const SSH1_CMSG_SESSION_KEY: u8 = 3;

/// Protocol version as one banner announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum BannerVersion {
    #[default]
    Unknown,
    V1,
    V199,
    V2,
}

fn banner_version(banner: &[u8]) -> BannerVersion {
    match banner.get(4) {
        Some(b'2') => BannerVersion::V2,
        Some(b'1') if banner.get(6..8) == Some(b"99") => BannerVersion::V199,
        Some(b'1') => BannerVersion::V1,
        _ => BannerVersion::Unknown,
    }
}

/// `update_version` of the binpac analyzer: the version the packets are framed with.
fn framing_version(client: BannerVersion, server: BannerVersion) -> BannerVersion {
    use BannerVersion::*;
    match (client, server) {
        (c, s) if c == s => {
            if s == V199 {
                V2
            } else {
                s
            }
        }
        (V199, V2) | (V2, V199) => V2,
        (V1, V199) | (V199, V1) => V1,
        _ => Unknown,
    }
}

/// What `set_version` of main.zeek makes of the two banner strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionVerdict {
    /// The logged version.
    Known(u8),
    /// A banner is still missing (or empty): nothing to say yet.
    Pending,
    /// A banner too short to hold a version: the version is unset and `SSH_cannot_determine_version` raised.
    Undetermined,
    /// Versions that do not go together (1 against 2, neither 1.99): unset, and `SSH_version_mismatch` raised.
    Mismatch,
}

impl VersionVerdict {
    /// The conn weird Zeek raises for this verdict.
    fn weird(self) -> Option<&'static str> {
        match self {
            VersionVerdict::Undetermined => Some("SSH_cannot_determine_version"),
            VersionVerdict::Mismatch => Some("SSH_version_mismatch"),
            VersionVerdict::Known(_) | VersionVerdict::Pending => None,
        }
    }
}

/// `set_version` of main.zeek: 1.99 goes with either major version, otherwise both sides must agree.
fn logged_version(client: &str, server: &str) -> VersionVerdict {
    let (c, s) = (client.as_bytes(), server.as_bytes());
    if c.is_empty() || s.is_empty() {
        return VersionVerdict::Pending;
    }
    if c.len() <= 4 || s.len() <= 4 {
        return VersionVerdict::Undetermined;
    }
    let is_199 = |b: &[u8]| b.len() > 7 && b[6] == b'9' && b[7] == b'9';
    match (c[4], s[4]) {
        (b'1', b'2') if is_199(c) => VersionVerdict::Known(2),
        (b'2', b'1') if is_199(s) => VersionVerdict::Known(2),
        (b'1', b'1') => VersionVerdict::Known(if is_199(s) && is_199(c) { 2 } else { 1 }),
        (b'2', b'2') => VersionVerdict::Known(2),
        _ => VersionVerdict::Mismatch,
    }
}

/// Where one direction's byte stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum StreamState {
    #[default]
    VersionExchange,
    KeyExchange,
    Encrypted,
}

#[derive(Default)]
struct Direction {
    buf: Vec<u8>,
    state: StreamState,
}

/// Key-exchange families, which decide the message carrying the server host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KexKind {
    Dh,
    DhGex,
    Ecc,
    Gss,
    Rsa,
}

impl KexKind {
    /// `update_kex`: Zeek's table of algorithm names, extended by the hybrid post-quantum ones 9.1 knows.
    fn of(alg: &str) -> Option<KexKind> {
        let starts = |p: &str| alg.starts_with(p);
        if alg == "rsa1024-sha1" || alg == "rsa2048-sha256" {
            Some(KexKind::Rsa)
        } else if starts("diffie-hellman-group-exchange-") {
            Some(KexKind::DhGex)
        } else if starts("diffie-hellman-group") {
            Some(KexKind::Dh)
        } else if starts("gss-") {
            Some(KexKind::Gss)
        } else if starts("ecdh-sha2-")
            || alg == "ecmqv-sha2"
            || starts("curve25519-sha256")
            || starts("curve448-sha512")
            || starts("sntrup761x25519-sha512")
            || starts("mlkem768x25519-sha256")
            || starts("mlkem768nistp256-sha256")
            || starts("mlkem1024nistp384-sha384")
        {
            Some(KexKind::Ecc)
        } else {
            None
        }
    }

    /// The message type whose payload starts with the server host key (`k_s`).
    fn host_key_message(self) -> u8 {
        match self {
            KexKind::Dh | KexKind::Ecc => 31,
            KexKind::DhGex | KexKind::Gss => 33,
            KexKind::Rsa => 30,
        }
    }
}

/// `SSH::Capabilities` from one KEXINIT.
#[derive(Debug, Clone, Default, PartialEq)]
struct Capabilities {
    is_server: bool,
    kex: NameList,
    host_key: NameList,
    /// Client-to-server and server-to-client preference lists.
    encryption: [NameList; 2],
    mac: [NameList; 2],
    compression: [NameList; 2],
}

/// An SSH name-list kept as one comma-joined string: the lists live until ssh.log is written, and a string per
/// name cost several times the names' own bytes. Names are never empty and hold no comma (the wire list is split
/// at commas before each name is decoded).
#[derive(Debug, Clone, Default, PartialEq)]
struct NameList(Box<str>);

impl NameList {
    /// `name_list_to_vector`: comma-separated names, empty ones dropped.
    fn parse(raw: &[u8]) -> Self {
        let mut joined = String::with_capacity(raw.len());
        for name in raw.split(|&b| b == b',').filter(|n| !n.is_empty()) {
            if !joined.is_empty() {
                joined.push(',');
            }
            push_log_bytes(&mut joined, name);
        }
        NameList(joined.into_boxed_str())
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').filter(|n| !n.is_empty())
    }

    fn contains(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }
}

/// The script-level `SSH::Info`.
#[derive(Default)]
struct Info {
    ts: f64,
    /// 1 or 2.
    version: Option<u8>,
    auth_success: Option<bool>,
    auth_attempts: u64,
    direction: Option<&'static str>,
    /// The logged strings, set once each: boxed `str`s are a word smaller than `String`s (eight words in every
    /// SSH connection's state).
    client: Option<Box<str>>,
    server: Option<Box<str>>,
    cipher_alg: Option<Box<str>>,
    mac_alg: Option<Box<str>>,
    compression_alg: Option<Box<str>>,
    kex_alg: Option<Box<str>>,
    host_key_alg: Option<Box<str>>,
    host_key_fingerprint: Option<Box<str>>,
    logged: bool,
    /// The first side's KEXINIT, boxed: nine name lists, kept only until both sides encrypt.
    capabilities: Option<Box<Capabilities>>,
}

/// The packet-size heuristics of `SSH_Analyzer::ProcessEncrypted`.
#[derive(Default)]
struct AuthInference {
    decided: bool,
    skipped_banner: bool,
    saw_encrypted_client_data: bool,
    service_accept_size: Option<usize>,
    userauth_failure_size: Option<usize>,
}

#[derive(Default)]
pub struct SshAnalyzer {
    dirs: [Direction; 2],
    client_banner: BannerVersion,
    server_banner: BannerVersion,
    /// The first KEXINIT's kex list and which side sent it (`kex_algs_cache_`).
    first_kex: Option<(bool, NameList)>,
    kex_kind: Option<KexKind>,
    auth: AuthInference,
    confirmed: bool,
    /// Parsing stopped: a gap, a violation, or the analyzer was disabled after a successful login.
    stopped: bool,
    info: Option<Info>,
}

fn dir_index(is_orig: bool) -> usize {
    usize::from(!is_orig)
}

impl SshAnalyzer {
    fn framing(&self) -> BannerVersion {
        framing_version(self.client_banner, self.server_banner)
    }

    /// `set_session`.
    fn info(&mut self, ctx: &Ctx) -> &mut Info {
        self.info.get_or_insert_with(|| Info { ts: ctx.ts, direction: direction(ctx), ..Default::default() })
    }

    fn violation(&mut self, ctx: &mut Ctx, reason: String) {
        self.stopped = true;
        ctx.violation(reason);
    }

    fn confirm(&mut self, ctx: &mut Ctx) {
        if !self.confirmed {
            self.confirmed = true;
            self.info(ctx);
            ctx.confirm("ssh");
        }
    }

    fn process(&mut self, ctx: &mut Ctx, is_orig: bool) {
        let d = dir_index(is_orig);
        while !self.stopped {
            let progressed = match self.dirs[d].state {
                StreamState::VersionExchange => self.version_line(ctx, is_orig),
                StreamState::KeyExchange => self.kex_packet(ctx, is_orig),
                StreamState::Encrypted => {
                    // Bytes after NEWKEYS in the segment that carried it count as one encrypted segment.
                    let len = std::mem::take(&mut self.dirs[d].buf).len();
                    if len > 0 {
                        self.encrypted_segment(ctx, is_orig, len);
                    }
                    false
                }
            };
            if !progressed {
                break;
            }
        }
    }

    /// One banner line (or a server's pre-banner line). Returns whether a line was consumed.
    fn version_line(&mut self, ctx: &mut Ctx, is_orig: bool) -> bool {
        let d = dir_index(is_orig);
        let Some(nl) = self.dirs[d].buf.iter().position(|&b| b == b'\n') else {
            if self.dirs[d].buf.len() > MAX_LINE {
                self.violation(ctx, "SSH banner line too long".to_string());
            }
            return false;
        };
        let line: Vec<u8> = self.dirs[d].buf.drain(..=nl).collect();
        let mut text = &line[..line.len() - 1];
        if let [rest @ .., b'\r'] = text {
            text = rest;
        }
        if !text.starts_with(b"SSH-") {
            // `ssh_server_pre_banner_data`: the server may talk before its banner. A client line that is
            // not a banner means we joined mid-stream, where Zeek (`IsPartial`) analyses nothing.
            return true;
        }
        let banner = bytes_to_log_string(text);
        if is_orig {
            self.client_banner = banner_version(text);
        } else {
            self.server_banner = banner_version(text);
        }
        self.dirs[d].state = StreamState::KeyExchange;
        let info = self.info(ctx);
        if is_orig {
            info.client = Some(banner.into());
        } else {
            info.server = Some(banner.into());
        }
        let verdict = logged_version(info.client.as_deref().unwrap_or(""), info.server.as_deref().unwrap_or(""));
        info.version = match verdict {
            VersionVerdict::Known(v) => Some(v),
            _ => None,
        };
        if let Some(name) = verdict.weird() {
            let addl = format!("{} vs {}", info.server.as_deref().unwrap_or(""), info.client.as_deref().unwrap_or(""));
            ctx.weird(name, Some(addl), "");
        }
        true
    }

    /// Side `is_orig` switches to encrypted packets. Once both have, no KEXINIT can be read any more: the first
    /// side's capabilities, kept to pair with the other side's (`ssh_capabilities` keeps them in `c$ssh`, which a
    /// later KEXINIT of the other side is compared with), and the first kex list are dropped instead of living
    /// until ssh.log is written (with ten name lists, they are most of an SSH connection's state).
    fn encrypt(&mut self, is_orig: bool) {
        self.dirs[dir_index(is_orig)].state = StreamState::Encrypted;
        if self.dirs.iter().all(|d| d.state == StreamState::Encrypted) {
            self.first_kex = None;
            if let Some(info) = &mut self.info {
                info.capabilities = None;
            }
        }
    }

    /// One key-exchange packet. Returns whether a packet was consumed.
    fn kex_packet(&mut self, ctx: &mut Ctx, is_orig: bool) -> bool {
        let d = dir_index(is_orig);
        let buf = &self.dirs[d].buf;
        let Some(len_bytes) = buf.get(..4) else { return false };
        let packet_length = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let total = match self.framing() {
            BannerVersion::V2 => packet_length + 4,
            BannerVersion::V1 => packet_length + 4 + 8 - packet_length % 8,
            // Zeek cannot frame packets before it knows the version; the bytes are lost to it.
            BannerVersion::V199 | BannerVersion::Unknown => {
                self.dirs[d].buf.clear();
                return false;
            }
        };
        if packet_length > MAX_PACKET {
            self.violation(ctx, format!("SSH packet too long ({packet_length})"));
            return false;
        }
        if buf.len() < total {
            return false;
        }
        let packet: Vec<u8> = self.dirs[d].buf.drain(..total).collect();
        match self.framing() {
            BannerVersion::V1 => self.ssh1_packet(ctx, is_orig, packet_length, &packet[4..]),
            _ => self.ssh2_packet(ctx, is_orig, &packet[4..]),
        }
        true
    }

    /// An SSH1 packet after its length field: `8 - length % 8` bytes of padding, then type, data, crc.
    fn ssh1_packet(&mut self, ctx: &mut Ctx, is_orig: bool, packet_length: usize, rest: &[u8]) {
        let Some(&msg_type) = rest.get(8 - packet_length % 8) else {
            self.violation(ctx, "truncated SSH1 packet".to_string());
            return;
        };
        if msg_type == SSH1_CMSG_SESSION_KEY {
            self.confirm(ctx);
        }
        // Any SSH1 message ends that side's cleartext (`SSH1_Message::detach`).
        self.encrypt(is_orig);
    }

    fn ssh2_packet(&mut self, ctx: &mut Ctx, is_orig: bool, packet: &[u8]) {
        let (Some(&padding), Some(&msg_type)) = (packet.first(), packet.get(1)) else {
            self.violation(ctx, "truncated SSH2 packet".to_string());
            return;
        };
        let Some(payload_end) = packet.len().checked_sub(usize::from(padding)).filter(|&e| e >= 2) else {
            self.violation(ctx, "SSH2 padding longer than packet".to_string());
            return;
        };
        let payload = &packet[2..payload_end];
        if msg_type == MSG_NEWKEYS {
            self.encrypt(is_orig);
            self.confirm(ctx);
            return;
        }
        if msg_type == MSG_KEXINIT {
            match parse_kexinit(payload, !is_orig) {
                Some(caps) => self.kexinit(ctx, is_orig, caps),
                None => self.violation(ctx, "malformed SSH KEXINIT".to_string()),
            }
            return;
        }
        if self.kex_kind.is_some_and(|k| k.host_key_message() == msg_type)
            && let Some((host_key, _)) = ssh_string(payload)
        {
            self.info(ctx).host_key_fingerprint = Some(host_key_fingerprint(host_key).into());
        }
    }

    /// A KEXINIT: the analyzer's key-exchange choice (`update_kex`) and the script's `ssh_capabilities`.
    fn kexinit(&mut self, ctx: &Ctx, is_orig: bool, caps: Capabilities) {
        match &self.first_kex {
            None => self.first_kex = Some((is_orig, caps.kex.clone())),
            Some((first_orig, first_list)) if *first_orig != is_orig && self.kex_kind.is_none() => {
                let (client, server) = if is_orig { (&caps.kex, first_list) } else { (first_list, &caps.kex) };
                if let Some(alg) = client.names().find(|a| server.contains(a)) {
                    self.kex_kind = KexKind::of(alg);
                }
            }
            _ => {}
        }
        let info = self.info(ctx);
        let Some(seen) = &info.capabilities else {
            info.capabilities = Some(Box::new(caps));
            return;
        };
        if seen.is_server == caps.is_server {
            return;
        }
        let (client, server) = if caps.is_server { (&**seen, &caps) } else { (&caps, &**seen) };
        let cipher = bidirectional_alg(&client.encryption, &server.encryption);
        let mac = bidirectional_alg(&client.mac, &server.mac);
        let compression = bidirectional_alg(&client.compression, &server.compression);
        let kex = negotiated_alg(&client.kex, &server.kex);
        let host_key = negotiated_alg(&client.host_key, &server.host_key);
        info.cipher_alg = Some(cipher.into());
        info.mac_alg = Some(mac.into());
        info.compression_alg = Some(compression.into());
        info.kex_alg = Some(kex.into());
        info.host_key_alg = Some(host_key.into());
    }

    /// `ProcessEncrypted`: guesses authentication results from the sizes of encrypted segments.
    fn encrypted_segment(&mut self, ctx: &mut Ctx, is_orig: bool, len: usize) {
        if self.auth.decided || self.framing() != BannerVersion::V2 {
            return;
        }
        let a = &mut self.auth;
        if is_orig {
            a.saw_encrypted_client_data = true;
            return;
        }
        if !a.saw_encrypted_client_data {
            return;
        }
        let Some(service_accept) = a.service_accept_size else {
            a.service_accept_size = Some(len);
            return;
        };
        // A USERAUTH_SUCCESS is 16 bytes shorter than the SERVICE_ACCEPT that came before it.
        let is_success = len + 16 == service_accept;
        match a.userauth_failure_size {
            None if is_success => {
                a.decided = true;
                self.auth_attempted(ctx, true);
            }
            None => {
                // A first "failure" much larger than the service accept is probably a pre-auth banner.
                if !a.skipped_banner && len > service_accept + 256 {
                    a.skipped_banner = true;
                } else {
                    a.userauth_failure_size = Some(len);
                }
            }
            Some(failure) if len == failure => self.auth_attempted(ctx, false),
            Some(_) if is_success => {
                a.decided = true;
                self.auth_attempted(ctx, true);
            }
            Some(_) => {}
        }
    }

    /// `ssh_auth_attempted` in main.zeek: counts attempts; a success is logged at once and ends analysis.
    fn auth_attempted(&mut self, ctx: &mut Ctx, authenticated: bool) {
        let Some(info) = self.info.as_mut() else { return };
        if info.auth_success == Some(true) {
            return;
        }
        if info.compression_alg.as_deref().is_some_and(|c| COMPRESSION_ALGORITHMS.contains(&c)) {
            return;
        }
        info.auth_success = Some(authenticated);
        info.auth_attempts += 1;
        if authenticated {
            self.stopped = true;
            self.write_log(ctx);
        }
    }

    fn write_log(&mut self, ctx: &mut Ctx) {
        let Some(info) = self.info.as_mut() else { return };
        if info.logged {
            return;
        }
        info.logged = true;
        let mut values = ctx.conn_columns(info.ts);
        values.extend([
            Value::opt_count(info.version.map(u64::from)),
            info.auth_success.map_or(Value::Unset, Value::Bool),
            Value::Count(info.auth_attempts),
            info.direction.map_or(Value::Unset, Value::Enum),
            Value::opt_str(info.client.clone()),
            Value::opt_str(info.server.clone()),
            Value::opt_str(info.cipher_alg.clone()),
            Value::opt_str(info.mac_alg.clone()),
            Value::opt_str(info.compression_alg.clone()),
            Value::opt_str(info.kex_alg.clone()),
            Value::opt_str(info.host_key_alg.clone()),
            Value::opt_str(info.host_key_fingerprint.clone()),
        ]);
        ctx.log(&SSH_LOG, values);
    }
}

impl Analyzer for SshAnalyzer {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.stopped || data.is_empty() {
            return;
        }
        let d = dir_index(is_orig);
        if self.dirs[d].state == StreamState::Encrypted {
            self.encrypted_segment(ctx, is_orig, data.len());
            return;
        }
        self.dirs[d].buf.extend_from_slice(data);
        self.process(ctx, is_orig);
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        // Zeek's SSH analyzer ignores everything after a content gap.
        self.stopped = true;
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        // `finalize_ssh`: whatever was not logged yet (failures, unknown results) is logged now.
        self.write_log(ctx);
    }

    fn is_done(&self) -> bool {
        // Stopped (a login, a gap, a violation) ignores all data; `finish` only writes a record not yet written.
        self.stopped && self.info.as_ref().is_none_or(|i| i.logged)
    }
}

/// An SSH `string`: u32 length and bytes. Returns the bytes and the rest.
fn ssh_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let value = data.get(4..4 + len)?;
    Some((value, &data[4 + len..]))
}

fn parse_kexinit(payload: &[u8], is_server: bool) -> Option<Capabilities> {
    let mut rest = payload.get(16..)?; // cookie
    let mut lists: Vec<NameList> = Vec::with_capacity(10);
    for _ in 0..10 {
        let (raw, r) = ssh_string(rest)?;
        lists.push(NameList::parse(raw));
        rest = r;
    }
    let mut it = lists.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Some(Capabilities {
        is_server,
        kex: next(),
        host_key: next(),
        encryption: [next(), next()],
        mac: [next(), next()],
        compression: [next(), next()],
    })
}

/// `find_alg`: the client's first algorithm the server also supports.
fn negotiated_alg(client: &NameList, server: &NameList) -> String {
    client
        .names()
        .find(|c| server.contains(c))
        .map_or_else(|| "Algorithm negotiation failed".to_string(), str::to_string)
}

/// `find_bidirectional_alg`: one name when both directions agree.
fn bidirectional_alg(client: &[NameList; 2], server: &[NameList; 2]) -> String {
    let to_server = negotiated_alg(&client[0], &server[0]);
    let to_client = negotiated_alg(&client[1], &server[1]);
    if to_server == to_client { to_server } else { format!("To server: {to_server}, to client: {to_client}") }
}

/// The host key fingerprint as Zeek 9.1 logs it: `SHA256:` and the first 32 characters of the
/// base64-encoded SHA-256 of the key blob.
fn host_key_fingerprint(key: &[u8]) -> String {
    let b64 = base64(&Sha256::digest(key));
    format!("SHA256:{}", b64.get(..32).unwrap_or(&b64))
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `direction`: OUTBOUND from a local client to a remote server, INBOUND the other way, else unset.
fn direction(ctx: &Ctx) -> Option<&'static str> {
    match (ctx.is_local(ctx.id.orig_h), ctx.is_local(ctx.id.resp_h)) {
        (true, false) => Some("OUTBOUND"),
        (false, true) => Some("INBOUND"),
        _ => None,
    }
}

/// Fuzzing entry point: drives the analyzer over arbitrary bytes in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut SshAnalyzer::default(), Proto::Tcp, 22, data);
}

#[cfg(test)]
mod tests;
