//! MySQL (tcp 1434, 3306; base/protocols/mysql/main.zeek registers the ports, there is no dpd.sig): Zeek's binpac
//! analyzer (src/analyzer/protocol/mysql/mysql-protocol.pac, mysql-analyzer.pac) confirms in
//! `proc_mysql_handshake_response_packet`, once the client's `Handshake_Response_Packet` has parsed while the
//! protocol version that the server's `Initial_Handshake_Packet` set is 9 or 10.
//!
//! Each side's first PDU (`Header`: a 3-byte little-endian length and a sequence id, then that many bytes) is checked
//! once it is whole, as binpac's flowunit buffers it:
//! * the server's, with sequence id 0, is the greeting: version 10 (`Handshake_v10`) or 9 (`Handshake_v9`) must
//!   parse; any other version is an `ERR_Packet`, which moves the connection to the command phase, where nothing
//!   confirms. A first server PDU with another sequence id is a `Server_Connection_Phase_Packets`, after which the
//!   version stays 0; the check stops there.
//! * the client's is the handshake response for that version; before a greeting the version is 0, a case binpac's
//!   `Handshake_Response_Packet` has no arm for (a violation). A v10 response with `CLIENT_SSL` is the SSL request:
//!   Zeek confirms and hands the rest of the stream to the SSL analyzer (`StartTLS`).
//!
//! A binpac exception (a field past the PDU's end, a string without its NUL, a failed `&enforce`) is a violation;
//! the analyzer ignores connections joined mid-stream (MySQL.cc, `TCP()->IsPartial()`). Later PDUs are not
//! checked: a violation after the confirmation is not reproduced.

use super::{AnalyzerSpec, HEAD_LIMIT, gather};
use crate::analyzers::{Analyzer, Ctx};

pub static MYSQL: AnalyzerSpec = AnalyzerSpec {
    name: "mysql",
    tcp_ports: &[1434, 3306],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(MySql::default()),
    schemas: &[],
};

const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
const CLIENT_CONNECT_ATTRS: u32 = 0x0010_0000;
const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u32 = 0x0400_0000;

#[derive(Default)]
struct MySql {
    heads: [Vec<u8>; 2],
    /// The protocol version of a greeting that parsed (9 or 10).
    version: Option<u8>,
    done: bool,
}

/// What one side's first PDU says.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// The PDU is not whole yet.
    Undecided,
    /// A greeting of this version parsed.
    Greeting(u8),
    /// The client's handshake response parsed; `ssl`: it asks for TLS.
    Response { ssl: bool },
    /// It parsed, but nothing on this connection can confirm any more.
    Never,
    /// binpac would throw.
    Violation,
}

impl Analyzer for MySql {
    fn spec(&self) -> &'static AnalyzerSpec {
        &MYSQL
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.done || data.is_empty() || ctx.partial {
            return;
        }
        let side = usize::from(!is_orig);
        gather(&mut self.heads[side], data);
        let head = &self.heads[side];
        let verdict = if is_orig { client_verdict(self.version, head) } else { server_verdict(head) };
        match verdict {
            Verdict::Undecided if head.len() >= HEAD_LIMIT => self.done = true,
            Verdict::Undecided => {}
            Verdict::Greeting(version) => {
                self.version = Some(version);
                self.heads[side] = Vec::new();
            }
            Verdict::Response { ssl } => {
                self.done = true;
                ctx.confirm("mysql");
                if ssl {
                    ctx.start_tls();
                }
            }
            Verdict::Never => self.done = true,
            Verdict::Violation => {
                self.done = true;
                ctx.violation("not mysql");
            }
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// The first PDU's sequence id and body, once all of it is there.
fn first_pdu(head: &[u8]) -> Option<(u8, &[u8])> {
    let [b0, b1, b2, seq_id, rest @ ..] = head else { return None };
    let len = usize::from(*b0) | usize::from(*b1) << 8 | usize::from(*b2) << 16;
    rest.get(..len).map(|body| (*seq_id, body))
}

fn server_verdict(head: &[u8]) -> Verdict {
    let Some((seq_id, body)) = first_pdu(head) else { return Verdict::Undecided };
    let parsed = if seq_id == 0 { greeting(body) } else { connection_phase_packet(body).map(|()| Verdict::Never) };
    parsed.unwrap_or(Verdict::Violation)
}

fn client_verdict(version: Option<u8>, head: &[u8]) -> Verdict {
    let Some((_, body)) = first_pdu(head) else { return Verdict::Undecided };
    let parsed = match version {
        Some(10) => response_v10(body),
        Some(9) => response_v9(body).map(|()| Verdict::Response { ssl: false }),
        _ => None,
    };
    parsed.unwrap_or(Verdict::Violation)
}

/// `Initial_Handshake_Packet`.
fn greeting(body: &[u8]) -> Option<Verdict> {
    let mut r = Fields(body);
    match r.u8()? {
        10 => {
            r.nul_string()?;
            r.take(4 + 8 + 1)?; // connection_id, auth_plugin_data_part_1, filler_1
            r.take(2 + 1 + 2)?; // capability_flag_1, character_set, status_flags
            let capability_flags_2 = r.u16()?;
            let auth_plugin_data_len = r.u8()?;
            if auth_plugin_data_len != 0 && auth_plugin_data_len < 21 {
                return None;
            }
            r.take(10)?;
            r.take(if auth_plugin_data_len > 21 { usize::from(auth_plugin_data_len) - 8 } else { 13 })?;
            if (u32::from(capability_flags_2) << 16) & CLIENT_PLUGIN_AUTH != 0 {
                r.nul_string()?;
            }
            Some(Verdict::Greeting(10))
        }
        9 => {
            r.nul_string()?;
            r.take(4)?;
            r.nul_string()?;
            Some(Verdict::Greeting(9))
        }
        // `ERR_Packet`: code, SQL state, message; it sets the command phase.
        _ => r.take(2 + 6).map(|_| Verdict::Never),
    }
}

/// `Server_Connection_Phase_Packets`.
fn connection_phase_packet(body: &[u8]) -> Option<()> {
    let mut r = Fields(body);
    match r.u8()? {
        0x00 => r.length_encoded_int().map(drop),
        0x01 => Some(()),
        0xfe => r.nul_string().map(drop),
        0xff => r.take(2 + 6).map(drop),
        _ => None,
    }
}

/// `Handshake_Response_Packet_v10`.
fn response_v10(body: &[u8]) -> Option<Verdict> {
    let mut r = Fields(body);
    let cap_flags = r.u32()?;
    r.take(4 + 1 + 23)?; // max_pkt_size, char_set, pad
    if cap_flags & CLIENT_SSL != 0 {
        return Some(Verdict::Response { ssl: true });
    }
    r.nul_string()?;
    r.length_encoded_string()?;
    if cap_flags & CLIENT_CONNECT_WITH_DB != 0 {
        r.nul_string()?;
    }
    if cap_flags & CLIENT_PLUGIN_AUTH != 0 {
        // `EmptyOrNUL_String`: a NUL-terminated string if there is one.
        let _ = r.nul_string();
    }
    if cap_flags & CLIENT_CONNECT_ATTRS != 0 {
        // `Handshake_Connection_Attributes`: a one-byte length, then name/value pairs filling exactly that many bytes.
        let length = r.u8()?;
        let mut attrs = Fields(r.take(usize::from(length))?);
        while !attrs.0.is_empty() {
            attrs.length_encoded_string()?;
            attrs.length_encoded_string()?;
        }
    }
    if cap_flags & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0 {
        r.u8()?;
    }
    Some(Verdict::Response { ssl: false })
}

/// `Handshake_Response_Packet_v9`.
fn response_v9(body: &[u8]) -> Option<()> {
    let mut r = Fields(body);
    let cap_flags = r.u16()?;
    r.take(3)?;
    r.nul_string()?;
    r.nul_string()?;
    if u32::from(cap_flags) & CLIENT_CONNECT_WITH_DB != 0 {
        r.nul_string()?;
    }
    Some(())
}

/// binpac's reads from a PDU body (little-endian, `&byteorder=littleendian`); `None` where binpac throws.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `NUL_String` (`RE/[^\0]*\0/`): up to and including the first NUL.
    fn nul_string(&mut self) -> Option<&'a [u8]> {
        let nul = memchr::memchr(0, self.0)?;
        self.take(nul + 1)
    }

    /// `LengthEncodedInteger` as `to_int()` reads it: a C `int`, so an 8-byte value keeps its low 32 bits.
    fn length_encoded_int(&mut self) -> Option<i32> {
        Some(match self.u8()? {
            0xfc => i32::from(self.u16()?),
            0xfd => self.take(3).map(|b| i32::from(b[0]) | i32::from(b[1]) << 8 | i32::from(b[2]) << 16)?,
            0xfe => self.take(8).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i32)?,
            0xfb | 0xff => 0,
            one => i32::from(one),
        })
    }

    /// `LengthEncodedString`; a negative length fails binpac's bounds check.
    fn length_encoded_string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.length_encoded_int()?).ok()?;
        self.take(len)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::analyzers::Action;
    use crate::analyzers::testing::Harness;

    /// A PDU: the 3-byte little-endian length, the sequence id, the body.
    pub(crate) fn pdu(seq_id: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len().to_le_bytes();
        [&len[..3], &[seq_id], body].concat()
    }

    /// A MySQL 8 greeting (Protocol::HandshakeV10 in the MySQL internals documentation): version 10, the server
    /// version string, connection id, 8 bytes of scramble, filler, capability flags (low: 0xffff; high: 0xdfff,
    /// with CLIENT_PLUGIN_AUTH), charset, status, auth-plugin-data length 21, 10 reserved bytes, 13 more scramble
    /// bytes, and the plugin name.
    pub(crate) fn greeting_v10() -> Vec<u8> {
        let mut body = vec![10];
        body.extend_from_slice(b"8.0.36\0");
        body.extend_from_slice(&[8, 0, 0, 0]);
        body.extend_from_slice(b"abcdefgh\0");
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0x02, 0x00, 0xff, 0xdf, 21]);
        body.extend_from_slice(&[0; 10]);
        body.extend_from_slice(b"ijklmnopqrst\0");
        body.extend_from_slice(b"caching_sha2_password\0");
        pdu(0, &body)
    }

    /// A HandshakeResponse41 with CLIENT_PLUGIN_AUTH, CLIENT_CONNECT_WITH_DB and CLIENT_CONNECT_ATTRS: user, a
    /// 20-byte auth response, database, plugin name, and one attribute pair.
    pub(crate) fn response_v10(cap_flags: u32) -> Vec<u8> {
        let mut body = cap_flags.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 1, 0x21]);
        body.extend_from_slice(&[0; 23]);
        body.extend_from_slice(b"root\0");
        body.push(20);
        body.extend_from_slice(&[0x5a; 20]);
        body.extend_from_slice(b"test\0caching_sha2_password\0");
        body.extend_from_slice(b"\x0a\x04_pid\x041234");
        pdu(1, &body)
    }

    const FULL: u32 = 0x0000_a20f | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS;

    fn run(deliveries: &[(bool, &[u8])]) -> Vec<Action> {
        let mut h = Harness::new(crate::analyzers::Proto::Tcp, 3306);
        let mut mysql = (MYSQL.new)(crate::analyzers::Proto::Tcp);
        for (is_orig, data) in deliveries {
            h.deliver(mysql.as_mut(), *is_orig, data);
        }
        h.actions
    }

    #[test]
    fn mysql_confirms_on_the_clients_handshake_response() {
        let (greeting, response) = (greeting_v10(), response_v10(FULL));
        assert_eq!(run(&[(false, &greeting), (true, &response)]), [Action::Confirm("mysql")]);
        // Split across segments, and the greeting alone.
        let (a, b) = response.split_at(30);
        assert_eq!(
            run(&[(false, &greeting[..9]), (false, &greeting[9..]), (true, a), (true, b)]),
            [Action::Confirm("mysql")]
        );
        assert_eq!(run(&[(false, &greeting)]), []);
        // The SSL request (32 bytes, CLIENT_SSL) confirms and hands the rest to TLS.
        let ssl = pdu(1, &[&(FULL | CLIENT_SSL).to_le_bytes()[..], &[0; 28]].concat());
        assert_eq!(run(&[(false, &greeting), (true, &ssl)]), [Action::Confirm("mysql"), Action::StartTls]);
        // Protocol 9 (Handshake_v9 and the v9 response).
        let v9 = pdu(0, b"\x093.22\0\x01\0\0\0scramble\0");
        let v9_response = pdu(1, b"\x05\x00\0\0\x01root\0pw\0");
        assert_eq!(run(&[(false, &v9), (true, &v9_response)]), [Action::Confirm("mysql")]);
    }

    #[test]
    fn mysql_rejects_what_binpac_cannot_parse() {
        let greeting = greeting_v10();
        let violation = |actions: Vec<Action>| matches!(actions[..], [Action::Violation(_)]);
        // An auth_plugin_data_len of 20 fails `&enforce`.
        let mut bad = greeting.clone();
        bad[4 + 1 + 7 + 4 + 9 + 7] = 20;
        assert!(violation(run(&[(false, &bad)])));
        // A server version without its NUL.
        assert!(violation(run(&[(false, &pdu(0, b"\x0a8.0.36"))])));
        // The attributes claim more bytes than the PDU holds.
        let mut response = response_v10(FULL);
        let len = response.len();
        response[len - 11] = 40;
        assert!(violation(run(&[(false, &greeting), (true, &response)])));
        // A response before any greeting: version 0 has no case.
        assert!(violation(run(&[(true, &response_v10(FULL))])));
        // HTTP on port 3306 reads as the header of a PDU of megabytes: undecided, nothing is said.
        assert_eq!(run(&[(true, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]), []);
        // An error greeting (version 0xff) leaves the connection in the command phase: no confirmation.
        let refused = pdu(0, b"\xff\x6a\x04#HY000Host is blocked");
        assert_eq!(run(&[(false, &refused), (true, &response_v10(FULL))]), []);
    }

    #[test]
    fn mysql_ignores_mid_stream_connections() {
        let mut h = Harness::new(crate::analyzers::Proto::Tcp, 3306);
        h.partial = true;
        let mut mysql = (MYSQL.new)(crate::analyzers::Proto::Tcp);
        h.deliver(mysql.as_mut(), false, &greeting_v10());
        h.deliver(mysql.as_mut(), true, &response_v10(FULL));
        assert_eq!(h.actions, []);
    }
}
