//! MySQL (tcp 1434, 3306; base/protocols/mysql/main.zeek registers the ports, there is no dpd.sig) to mysql.log, as
//! Zeek's binpac analyzer (src/analyzer/protocol/mysql/mysql-protocol.pac, mysql-analyzer.pac, MySQL.cc) and
//! base/protocols/mysql/main.zeek do it.
//!
//! **PDUs.** Each direction is a run of PDUs (`MySQL_PDU`, a binpac flowunit): a 3-byte little-endian length and a
//! sequence id, then that many bytes. A PDU is parsed once all of it is there, by the state the two directions share
//! (binpac's `MySQL_Conn`): the phase (connection or command), what the server's next packet is expected to be, the
//! protocol version the greeting set, the column count of the result set under way, and the client's capability
//! flags (`CLIENT_DEPRECATE_EOF`, query attributes, plugin auth).
//! * Server, connection phase: a PDU with sequence id 0 (unless the previous server PDU's was 255) is the greeting
//!   (`Initial_Handshake_Packet`): version 10 (`Handshake_v10`) or 9 must parse; any other version is an
//!   `ERR_Packet`, which moves the connection to the command phase. Other PDUs are OK, auth-more-data, an auth
//!   switch request or ERR; another first byte is a violation.
//! * Client, connection phase: the handshake response for the greeting's version (before a greeting the version is
//!   0, for which binpac has no case: a violation), or, once the response asked for plugin auth or the server
//!   switched plugins, opaque auth data.
//! * Client, command phase: `Command_Request_Packet`: the command byte, the query attributes of a `COM_QUERY` when
//!   both sides announced `CLIENT_QUERY_ATTRIBUTES` (count, set count, null bitmap, names and types, binary values),
//!   the user, auth data, database, charset, plugin and attributes of a `COM_CHANGE_USER` (which moves back to the
//!   connection phase), and the rest of the PDU as the argument. The command sets what the server's answer is
//!   expected to be (`set_next_expected_from_command`).
//! * Server, command phase, by that expectation: a status (OK, EOF, ERR, anything else ignored); a result set's
//!   column count (or OK/ERR in its place), `count` column definitions, then (without `CLIENT_DEPRECATE_EOF`) an
//!   intermediate EOF, rows (each `count` length-encoded strings) up to a `0xfe` marker, which is an EOF, or an OK
//!   when `CLIENT_DEPRECATE_EOF` is on or the PDU is longer than 9 bytes; a field list's definitions up to such a
//!   marker; `COM_STATISTICS`' text.
//!
//! Length-encoded integers are read as binpac's `to_int` reads them, into a C `int` (an 8-byte value keeps its low
//! 32 bits; `0xfb` and `0xff` read as 0). Whatever binpac would throw on (a field past the PDU's end, a string
//! without its NUL, a failed `&enforce`, a case with no arm) is a violation, after which nothing more is parsed.
//!
//! **Confirmation** is where `proc_mysql_handshake_response_packet` calls it: once the client's handshake response
//! parsed for a v9 or v10 greeting. A v10 response with `CLIENT_SSL` is the SSL request: the rest of the stream is
//! handed to the SSL analyzer (`StartTLS`). Connections joined mid-stream are not analysed (MySQL.cc,
//! `TCP()->IsPartial()`), nor is anything after a content gap in either direction (`had_gap`).
//!
//! **mysql.log** follows main.zeek's handlers. The client's handshake response (`mysql_handshake`) opens a `login`
//! record with the user name, unless one is open. Each command (`mysql_command_request`) writes the open record and
//! opens one with the command's name (`MySQL::commands`, `unknown-N` past it) and its argument less one trailing
//! NUL; a `quit` is written at once (no answer comes), a `change_user`'s argument becomes the new user name
//! (`mysql_change_user`). An ERR (`mysql_error`) writes the open record with `success` F and `response` the
//! message; an OK (`mysql_ok`) with `success` T and `rows` the affected rows; a final EOF (`mysql_eof`, not the
//! intermediate one) with `success` T and `rows` 0 unless set. Result rows (`mysql_result_row`) and the server's
//! version (`mysql_server_version`) have no handler there and change no record. A record still open when the
//! connection ends is written then (`finalize_mysql`).
//!
//! **Bounds.** binpac buffers a PDU of up to 16 MiB; here at most [`MAX_PDU`] bytes of a body are kept. A longer PDU
//! is parsed, once its last byte has passed, from those bytes: a command's argument is cut there, and a field that
//! runs past them (a long row) is not a violation. binpac does not join a `0xffffff`-long PDU with the ones that
//! continue it into one payload, and neither does this: each continuation is parsed as a PDU of its own.

use std::borrow::Cow;

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static MYSQL_LOG: Schema = Schema {
    path: "mysql",
    fields: conn_fields![
        f("cmd", "string"),
        f("arg", "string"),
        f("success", "bool"),
        f("rows", "count"),
        f("response", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "mysql",
    tcp_ports: &[1434, 3306],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(MySql::default()),
    schemas: &[&MYSQL_LOG],
};

// binpac's `Client_Capabilities`.
const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
const CLIENT_CONNECT_ATTRS: u32 = 0x0010_0000;
const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;
const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u32 = 0x0400_0000;
const CLIENT_QUERY_ATTRIBUTES: u32 = 0x0800_0000;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_CHANGE_USER: u8 = 0x11;

/// `MySQL::commands` (consts.zeek), by command byte.
const COMMANDS: [&str; 32] = [
    "sleep",
    "quit",
    "init_db",
    "query",
    "field_list",
    "create_db",
    "drop_db",
    "refresh",
    "shutdown",
    "statistics",
    "process_info",
    "connect",
    "process_kill",
    "debug",
    "ping",
    "time",
    "delayed_insert",
    "change_user",
    "binlog_dump",
    "table_dump",
    "connect_out",
    "register_slave",
    "stmt_prepare",
    "stmt_execute",
    "stmt_send_long_data",
    "stmt_close",
    "stmt_reset",
    "set_option",
    "stmt_fetch",
    "daemon",
    "binlog_dump_gtid",
    "reset_connection",
];

const HEADER_LEN: usize = 4;
/// The most of one PDU's body that is buffered (binpac would buffer up to 16 MiB): every greeting, handshake,
/// status packet and column definition, and all but the longest queries and rows, fit.
const MAX_PDU: usize = 64 << 10;
/// A direction's buffer keeps its allocation for the next PDU up to this size; a larger one is freed.
const KEPT_CAPACITY: usize = 2 << 10;

/// Where binpac would throw: the analyzer reports a violation and parses nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Binpac exception: malformed MySQL PDU")]
pub struct Malformed;

type Parse<T> = Result<T, Malformed>;

/// The connection's phase (binpac's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Connection,
    Command,
}

/// What the client's next connection-phase packet is (`ConnectionExpected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ConnExpected {
    #[default]
    Handshake,
    AuthData,
}

/// What the server's next command-phase packet is (`Expected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Expected {
    NoExpectation,
    #[default]
    Status,
    ColumnDefinition,
    ColumnDefinitionOrEof,
    ColumnCount,
    EofThenResultset,
    Resultset,
    RestOfPacket,
}

/// What a parsed PDU tells the script layer (the events main.zeek handles, and the analyzer's own calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event<'a> {
    /// `AnalyzerConfirmation`.
    Confirm,
    /// The SSL request: `StartTLS`.
    SslRequest,
    /// `mysql_handshake`: the user name.
    Handshake(&'a [u8]),
    /// `mysql_command_request`.
    Command { command: u8, arg: &'a [u8] },
    /// `mysql_change_user`: the new user name.
    ChangeUser(&'a [u8]),
    /// `mysql_error`: the message.
    Error(&'a [u8]),
    /// `mysql_ok`: the affected rows.
    Ok(u32),
    /// `mysql_eof`.
    Eof { intermediate: bool },
}

/// binpac's reads from one PDU body (`&byteorder=littleendian`); `Err` where binpac throws.
struct Reader<'a> {
    data: &'a [u8],
    len: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, len: data.len() }
    }

    /// Bytes read so far.
    fn consumed(&self) -> usize {
        self.len - self.data.len()
    }

    fn take(&mut self, n: usize) -> Parse<&'a [u8]> {
        let (taken, rest) = self.data.split_at_checked(n).ok_or(Malformed)?;
        self.data = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Parse<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Parse<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Parse<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `&restofdata`.
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// `NUL_String` (`RE/[^\0]*\0/`): up to and including the first NUL.
    fn nul_string(&mut self) -> Parse<&'a [u8]> {
        let nul = memchr::memchr(0, self.data).ok_or(Malformed)?;
        self.take(nul + 1)
    }

    /// `EmptyOrNUL_String` (`RE/([^\0]*\0)?/`): a NUL-terminated string if there is one, else nothing.
    fn empty_or_nul_string(&mut self) {
        let _ = self.nul_string();
    }

    /// `LengthEncodedInteger` as `to_int()` reads it.
    fn lenenc_int(&mut self) -> Parse<i32> {
        let first = self.u8()?;
        self.lenenc_int_after(first)
    }

    /// `LengthEncodedIntegerLookahead(first)`: the bytes after a first byte already read, and the value as a C
    /// `int` (an 8-byte value keeps its low 32 bits).
    fn lenenc_int_after(&mut self, first: u8) -> Parse<i32> {
        Ok(match first {
            0xfc => i32::from(self.u16()?),
            0xfd => self.take(3).map(|b| i32::from(b[0]) | i32::from(b[1]) << 8 | i32::from(b[2]) << 16)?,
            0xfe => self.take(8).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i32)?,
            0xfb | 0xff => 0,
            one => i32::from(one),
        })
    }

    /// `LengthEncodedString`; a negative length fails binpac's bounds check.
    fn lenenc_string(&mut self) -> Parse<&'a [u8]> {
        let first = self.u8()?;
        self.lenenc_string_after(first)
    }

    /// `LengthEncodedStringArg(first)`.
    fn lenenc_string_after(&mut self, first: u8) -> Parse<&'a [u8]> {
        let len = usize::try_from(self.lenenc_int_after(first)?).map_err(|_| Malformed)?;
        self.take(len)
    }
}

/// A `NUL_String` as `c_str()` hands it to a script: up to its NUL.
fn c_str(s: &[u8]) -> &[u8] {
    &s[..memchr::memchr(0, s).unwrap_or(s.len())]
}

/// binpac's `MySQL_Conn` state and the grammar over it.
#[derive(Debug, Default)]
struct Protocol {
    /// The greeting's protocol version (0 before one).
    version: u8,
    previous_seq_id: u8,
    phase: Phase,
    expected: Expected,
    conn_expected: ConnExpected,
    col_count: u32,
    remaining_cols: u32,
    deprecate_eof: bool,
    server_query_attrs: bool,
    client_query_attrs: bool,
    client_capabilities: u32,
}

impl Protocol {
    /// One `MySQL_PDU`: `len` is its header's length, `body` that many bytes (or the first [`MAX_PDU`] of them).
    fn pdu<'a>(
        &mut self,
        is_orig: bool,
        seq_id: u8,
        len: usize,
        body: &'a [u8],
        events: &mut Vec<Event<'a>>,
    ) -> Parse<()> {
        // `Header`'s `len` counts the header too.
        let pkt_len = len + HEADER_LEN;
        let r = &mut Reader::new(body);
        if is_orig { self.client_message(pkt_len, r, events) } else { self.server_message(seq_id, pkt_len, r, events) }
    }

    /// `update_state`: entering the command phase resets the connection-phase expectation.
    fn update_state(&mut self, phase: Phase) {
        self.phase = phase;
        if phase == Phase::Command {
            self.conn_expected = ConnExpected::Handshake;
        }
    }

    /// `Server_Message`.
    fn server_message<'a>(
        &mut self,
        seq_id: u8,
        pkt_len: usize,
        r: &mut Reader<'a>,
        events: &mut Vec<Event<'a>>,
    ) -> Parse<()> {
        let is_initial = seq_id == 0 && self.previous_seq_id != 255;
        self.previous_seq_id = seq_id;
        match self.phase {
            Phase::Connection if is_initial => self.initial_handshake(r, events),
            Phase::Connection => self.connection_phase_packet(r, events),
            Phase::Command => self.command_response(pkt_len, r, events),
        }
    }

    /// `Initial_Handshake_Packet`.
    fn initial_handshake<'a>(&mut self, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        let version = r.u8()?;
        match version {
            10 => self.handshake_v10(r)?,
            9 => {
                // `Handshake_v9`: server version, connection id, scramble.
                r.nul_string()?;
                r.take(4)?;
                r.nul_string()?;
            }
            _ => self.err_packet(r, events)?,
        }
        self.version = version;
        Ok(())
    }

    /// `Handshake_v10`.
    fn handshake_v10(&mut self, r: &mut Reader) -> Parse<()> {
        r.nul_string()?;
        r.take(4 + 8 + 1)?; // connection_id, auth_plugin_data_part_1, filler_1
        r.take(2 + 1 + 2)?; // capability_flag_1, character_set, status_flags
        let capability_flags_2 = u32::from(r.u16()?) << 16;
        let auth_plugin_data_len = r.u8()?;
        if auth_plugin_data_len != 0 && auth_plugin_data_len < 21 {
            return Err(Malformed);
        }
        r.take(10)?;
        r.take(if auth_plugin_data_len > 21 { usize::from(auth_plugin_data_len) - 8 } else { 13 })?;
        if capability_flags_2 & CLIENT_PLUGIN_AUTH != 0 {
            r.nul_string()?;
        }
        self.server_query_attrs = capability_flags_2 & CLIENT_QUERY_ATTRIBUTES != 0;
        Ok(())
    }

    /// `Server_Connection_Phase_Packets`.
    fn connection_phase_packet<'a>(&mut self, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        match r.u8()? {
            0x00 => self.ok_packet(r, events),
            // `AuthMoreData`.
            0x01 => Ok(()),
            // `AuthSwitchRequest`: the plugin name, then its data; the client answers with auth data, the server
            // with a status.
            0xfe => {
                r.nul_string()?;
                self.conn_expected = ConnExpected::AuthData;
                self.expected = Expected::Status;
                Ok(())
            }
            0xff => self.err_packet(r, events),
            _ => Err(Malformed),
        }
    }

    /// `Command_Response`. State changes that do not depend on a packet's content are made before it is read, so a
    /// PDU cut at [`MAX_PDU`] still makes them.
    fn command_response<'a>(&mut self, pkt_len: usize, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        match self.expected {
            // `ColumnCountMeta`.
            Expected::ColumnCount => match r.u8()? {
                0x00 => self.ok_packet(r, events),
                0xff => self.err_packet(r, events),
                first => {
                    let count = r.lenenc_int_after(first)? as u32;
                    self.col_count = count;
                    self.remaining_cols = count;
                    self.expected = Expected::ColumnDefinition;
                    Ok(())
                }
            },
            Expected::ColumnDefinition => {
                self.remaining_cols = self.remaining_cols.wrapping_sub(1);
                self.expected =
                    if self.remaining_cols > 0 { Expected::ColumnDefinition } else { Expected::EofThenResultset };
                let first = r.u8()?;
                column_definition(r, first)
            }
            // `ColumnDefinitionOrEOF`: a field list's definitions, up to a 0xfe marker.
            Expected::ColumnDefinitionOrEof => match r.u8()? {
                0xfe => self.eof_or_ok(pkt_len, r, events),
                first => column_definition(r, first),
            },
            Expected::Resultset => self.resultset(pkt_len, r, events),
            Expected::Status => match r.u8()? {
                0x00 => self.ok_packet(r, events),
                0xfe => eof_packet(r, false, events),
                0xff => self.err_packet(r, events),
                _ => Ok(()),
            },
            // `EOFIfLegacyThenResultset`: the intermediate EOF (its marker is not checked), or with
            // `CLIENT_DEPRECATE_EOF` straight to the rows.
            Expected::EofThenResultset if self.deprecate_eof => self.resultset(pkt_len, r, events),
            Expected::EofThenResultset => {
                self.expected = Expected::Resultset;
                r.u8()?;
                eof_packet(r, true, events)?;
                self.update_state(Phase::Command);
                Ok(())
            }
            Expected::RestOfPacket | Expected::NoExpectation => Ok(()),
        }
    }

    /// `Resultset`: a row, or at a 0xfe marker the end of the result set.
    fn resultset<'a>(&mut self, pkt_len: usize, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        let marker = r.u8()?;
        let end = marker == 0xfe;
        self.expected = if end { Expected::NoExpectation } else { Expected::Resultset };
        if end {
            return self.eof_or_ok(pkt_len, r, events);
        }
        // `ResultsetRow`: the first field's length starts with the marker, then `col_count - 1` more fields
        // (binpac's array length is an `int`: a negative one throws).
        r.lenenc_string_after(marker)?;
        let more = i32::try_from(self.col_count.wrapping_sub(1)).map_err(|_| Malformed)?;
        for _ in 0..more {
            r.lenenc_string()?;
        }
        Ok(())
    }

    /// `EOFOrOK`: an OK when `CLIENT_DEPRECATE_EOF` is on or the PDU is longer than 9 bytes, else an EOF.
    fn eof_or_ok<'a>(&mut self, pkt_len: usize, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        if self.deprecate_eof || pkt_len > 13 { self.ok_packet(r, events) } else { eof_packet(r, false, events) }
    }

    /// `OK_Packet` (after its type byte).
    fn ok_packet<'a>(&mut self, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        let rows = r.lenenc_int()? as u32;
        self.update_state(Phase::Command);
        events.push(Event::Ok(rows));
        Ok(())
    }

    /// `ERR_Packet` (after its type byte): code, SQL state, message.
    fn err_packet<'a>(&mut self, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        r.take(2 + 6)?;
        let msg = r.rest();
        self.update_state(Phase::Command);
        events.push(Event::Error(msg));
        Ok(())
    }

    /// `Client_Message`.
    fn client_message<'a>(&mut self, pkt_len: usize, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        match (self.phase, self.conn_expected) {
            (Phase::Connection, ConnExpected::Handshake) => match self.version {
                10 => self.response_v10(r, events),
                9 => response_v9(r, events),
                _ => Err(Malformed),
            },
            // `AuthMoreData(true)`.
            (Phase::Connection, ConnExpected::AuthData) => Ok(()),
            (Phase::Command, _) => self.command_request(pkt_len, r, events),
        }
    }

    /// `Handshake_Response_Packet_v10`.
    fn response_v10<'a>(&mut self, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        let cap_flags = r.u32()?;
        r.take(4 + 1 + 23)?; // max_pkt_size, char_set, pad
        let username = if cap_flags & CLIENT_SSL != 0 { None } else { Some(self.plain_v10(cap_flags, r)?) };
        self.deprecate_eof = cap_flags & CLIENT_DEPRECATE_EOF != 0;
        self.client_query_attrs = cap_flags & CLIENT_QUERY_ATTRIBUTES != 0;
        self.client_capabilities = cap_flags;
        events.push(Event::Confirm);
        events.push(match username {
            Some(username) => Event::Handshake(c_str(username)),
            None => Event::SslRequest,
        });
        Ok(())
    }

    /// `Handshake_Plain_v10`; the user name.
    fn plain_v10<'a>(&mut self, cap_flags: u32, r: &mut Reader<'a>) -> Parse<&'a [u8]> {
        let username = r.nul_string()?;
        r.lenenc_string()?; // password
        if cap_flags & CLIENT_CONNECT_WITH_DB != 0 {
            r.nul_string()?;
        }
        if cap_flags & CLIENT_PLUGIN_AUTH != 0 {
            r.empty_or_nul_string();
        }
        if cap_flags & CLIENT_CONNECT_ATTRS != 0 {
            connection_attributes(r)?;
        }
        if cap_flags & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0 {
            r.u8()?;
        }
        if cap_flags & CLIENT_PLUGIN_AUTH != 0 {
            self.conn_expected = ConnExpected::AuthData;
        }
        Ok(username)
    }

    /// `Command_Request_Packet`.
    fn command_request<'a>(&mut self, pkt_len: usize, r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
        let command = r.u8()?;
        if command == COM_QUERY && self.client_query_attrs && self.server_query_attrs {
            query_attributes(r)?;
        }
        let change_user = if command == COM_CHANGE_USER { Some(self.change_user(pkt_len, r)?) } else { None };
        let arg = r.rest();
        self.expect_from_command(command);
        events.push(Event::Command { command, arg });
        if let Some(username) = change_user {
            events.push(Event::ChangeUser(c_str(username)));
        }
        Ok(())
    }

    /// `Change_User_Packet`; the user name. binpac looks for the plugin name and attributes while the offset into
    /// this packet is below the PDU's length with its header (`have_more_data`), which it always is once the
    /// charset has been read: a packet that ends there is read past its end when the client announced plugin auth.
    fn change_user<'a>(&mut self, pkt_len: usize, r: &mut Reader<'a>) -> Parse<&'a [u8]> {
        let start = r.consumed();
        let username = r.nul_string()?;
        let auth_plugin_data_len = r.u8()?;
        r.take(usize::from(auth_plugin_data_len))?;
        r.nul_string()?; // database
        r.u16()?; // charset
        let have_more_data = r.consumed() - start < pkt_len;
        let has = |flag: u32| have_more_data && self.client_capabilities & flag == flag;
        if has(CLIENT_PLUGIN_AUTH) {
            r.nul_string()?;
        }
        if has(CLIENT_CONNECT_ATTRS) {
            connection_attributes(r)?;
        }
        Ok(username)
    }

    /// `set_next_expected_from_command`.
    fn expect_from_command(&mut self, command: u8) {
        self.expected = match command {
            0x00..=0x02 | 0x05..=0x08 | 0x0b..=0x10 | 0x1d | 0x1f => Expected::Status,
            0x03 | 0x0a => Expected::ColumnCount,
            0x04 => Expected::ColumnDefinitionOrEof,
            0x09 => Expected::RestOfPacket,
            COM_CHANGE_USER => return self.update_state(Phase::Connection),
            _ => Expected::NoExpectation,
        };
    }
}

/// `Handshake_Response_Packet_v9`.
fn response_v9<'a>(r: &mut Reader<'a>, events: &mut Vec<Event<'a>>) -> Parse<()> {
    let cap_flags = r.u16()?;
    r.take(3)?; // max_pkt_size
    let username = r.nul_string()?;
    r.nul_string()?; // auth_response
    if u32::from(cap_flags) & CLIENT_CONNECT_WITH_DB != 0 {
        r.nul_string()?;
    }
    events.push(Event::Confirm);
    events.push(Event::Handshake(c_str(username)));
    Ok(())
}

/// `EOF_Packet` (after its marker): warnings, status.
fn eof_packet(r: &mut Reader, intermediate: bool, events: &mut Vec<Event>) -> Parse<()> {
    r.take(2 + 2)?;
    events.push(Event::Eof { intermediate });
    Ok(())
}

/// `ColumnDefinition41(first)`: six length-encoded strings (the first's length starts with `first`), the length of
/// the fixed fields, charset, column length, type, flags, decimals and two bytes of filler.
fn column_definition(r: &mut Reader, first: u8) -> Parse<()> {
    r.lenenc_string_after(first)?;
    for _ in 0..5 {
        r.lenenc_string()?;
    }
    r.lenenc_int()?;
    r.take(2 + 4 + 1 + 2 + 1 + 2)?;
    Ok(())
}

/// `Handshake_Connection_Attributes`: a one-byte length, then name/value pairs filling exactly that many bytes.
fn connection_attributes(r: &mut Reader) -> Parse<()> {
    let length = r.u8()?;
    let mut attrs = Reader::new(r.take(usize::from(length))?);
    while !attrs.data.is_empty() {
        attrs.lenenc_string()?;
        attrs.lenenc_string()?;
    }
    Ok(())
}

/// `Query_Attributes`: the count, the set count, and for a positive count the null bitmap, `send_types_to_server`
/// (which must be 1), the names with their types, and the values that are not null, until the count or the PDU
/// runs out.
fn query_attributes(r: &mut Reader) -> Parse<()> {
    let count = r.lenenc_int()?;
    r.lenenc_int()?;
    let Ok(count @ 1..) = usize::try_from(count) else { return Ok(()) };
    let null_bitmap = r.take(count.div_ceil(8))?;
    if r.u8()? != 1 {
        return Err(Malformed);
    }
    // binpac refuses an array longer than the bytes left before reading it.
    if count > r.data.len() {
        return Err(Malformed);
    }
    let mut types = Vec::with_capacity(count);
    for _ in 0..count {
        types.push(r.u8()?);
        r.u8()?; // unsigned_flag
        r.lenenc_string()?;
    }
    for (i, kind) in types.into_iter().enumerate() {
        if r.data.is_empty() {
            break;
        }
        let is_null = null_bitmap.get(i / 8).is_some_and(|byte| byte >> (i % 8) & 1 != 0);
        if !is_null {
            binary_value(r, kind)?;
        }
    }
    Ok(())
}

/// `BinaryValue(type)`: a value of the binary protocol; a type binpac has no case for throws.
fn binary_value(r: &mut Reader, kind: u8) -> Parse<()> {
    match kind {
        0x00 => r.lenenc_int().map(drop),          // DECIMAL
        0x06 => Ok(()),                            // NULL
        0x01 => r.take(1).map(drop),               // TINY
        0x02 | 0x0d => r.take(2).map(drop),        // SHORT, YEAR
        0x03 | 0x04 | 0x09 => r.take(4).map(drop), // LONG, FLOAT, INT24
        0x05 | 0x08 => r.take(8).map(drop),        // DOUBLE, LONGLONG
        0x07 | 0x0a | 0x0c | 0x11 => {
            // `BinaryDate` (TIMESTAMP, DATE, DATETIME, TIMESTAMP2): a length of 0, 4, 7 or 11, then that many bytes.
            let len = r.u8()?;
            if !matches!(len, 0 | 4 | 7 | 11) {
                return Err(Malformed);
            }
            r.take(usize::from(len)).map(drop)
        }
        0x0b => {
            // `BinaryTime`: a length of 0, 8 or 12; the sign byte must be 0 or 1.
            let len = r.u8()?;
            if !matches!(len, 0 | 8 | 12) {
                return Err(Malformed);
            }
            if len > 0 && r.u8()? > 1 {
                return Err(Malformed);
            }
            r.take(usize::from(len.saturating_sub(1))).map(drop)
        }
        0x0f | 0x10 | 0xf5..=0xff => r.lenenc_string().map(drop),
        _ => Err(Malformed),
    }
}

/// The command's name in `MySQL::commands`, or its `&default`.
fn command_name(command: u8) -> Cow<'static, str> {
    match COMMANDS.get(usize::from(command)) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("unknown-{command}")),
    }
}

/// The connection's open mysql.log record (`c$mysql`).
#[derive(Debug, Clone, PartialEq)]
struct Info {
    ts: f64,
    cmd: Cow<'static, str>,
    arg: Vec<u8>,
    success: Option<bool>,
    rows: Option<u64>,
    response: Option<Vec<u8>>,
}

impl Info {
    fn new(ts: f64, cmd: Cow<'static, str>, arg: &[u8]) -> Box<Info> {
        Box::new(Info { ts, cmd, arg: arg.to_vec(), success: None, rows: None, response: None })
    }

    fn into_record(self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::Str(self.cmd.into_owned()),
            Value::Str(bytes_to_log_string(&self.arg)),
            self.success.map_or(Value::Unset, Value::Bool),
            self.rows.map_or(Value::Unset, Value::Count),
            self.response.map_or(Value::Unset, |r| Value::Str(bytes_to_log_string(&r))),
        ]);
        v
    }
}

/// One direction's PDU being gathered.
#[derive(Default)]
struct Direction {
    /// The header and as much of the body as is kept (up to [`MAX_PDU`] bytes).
    buf: Vec<u8>,
    /// Bytes of an over-long PDU's body still to pass unkept; the PDU is parsed when they have.
    skip: usize,
}

/// The body length a PDU's header announces.
fn body_len(header: &[u8]) -> usize {
    match header {
        [b0, b1, b2, ..] => usize::from(*b0) | usize::from(*b1) << 8 | usize::from(*b2) << 16,
        _ => 0,
    }
}

/// A whole PDU of at most [`MAX_PDU`] bytes at the start of `data`: its sequence id, its body and what follows.
fn whole_pdu(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let [_, _, _, seq_id, rest @ ..] = data else { return None };
    let len = body_len(data);
    if len > MAX_PDU {
        return None;
    }
    let (body, tail) = rest.split_at_checked(len)?;
    Some((*seq_id, body, tail))
}

#[derive(Default)]
pub struct MySql {
    dirs: [Direction; 2],
    protocol: Protocol,
    info: Option<Box<Info>>,
    confirmed: bool,
    /// Nothing more is parsed: a violation, the hand-over to TLS, a content gap, or a connection joined mid-stream.
    stopped: bool,
}

impl MySql {
    /// Parses one whole PDU (`body` possibly cut at [`MAX_PDU`]) and runs what it raised.
    fn pdu(&mut self, ctx: &mut Ctx, is_orig: bool, seq_id: u8, len: usize, body: &[u8]) {
        let mut events = Vec::new();
        let parsed = self.protocol.pdu(is_orig, seq_id, len, body, &mut events);
        for event in events {
            self.event(ctx, event);
        }
        // In a PDU cut at MAX_PDU, a field past the kept bytes is the cut, not the sender's error.
        let cut = body.len() < len;
        if parsed.is_err() && !cut && !self.stopped {
            self.stop();
            ctx.violation(Malformed.to_string());
        }
    }

    /// The PDU gathered in side `side`'s buffer is complete: parse it.
    fn buffered_pdu(&mut self, ctx: &mut Ctx, is_orig: bool) {
        let side = usize::from(!is_orig);
        let mut buf = std::mem::take(&mut self.dirs[side].buf);
        if let [b0, b1, b2, seq_id, body @ ..] = &buf[..] {
            self.pdu(ctx, is_orig, *seq_id, body_len(&[*b0, *b1, *b2]), body);
        }
        if buf.capacity() <= KEPT_CAPACITY && !self.stopped {
            buf.clear();
            self.dirs[side].buf = buf;
        }
    }

    /// main.zeek's handlers for one event.
    fn event(&mut self, ctx: &mut Ctx, event: Event) {
        match event {
            Event::Confirm => {
                if !self.confirmed {
                    self.confirmed = true;
                    ctx.confirm("mysql");
                }
            }
            Event::SslRequest => {
                self.stop();
                ctx.start_tls();
            }
            Event::Handshake(username) => {
                if self.info.is_none() {
                    self.info = Some(Info::new(ctx.ts, Cow::Borrowed("login"), username));
                }
            }
            Event::Command { command, arg } => {
                // The previous request got no answer: it is written now.
                self.write(ctx);
                let arg = arg.strip_suffix(&[0]).unwrap_or(arg);
                self.info = Some(Info::new(ctx.ts, command_name(command), arg));
                if command == COM_QUIT {
                    // No answer comes to a quit.
                    self.write(ctx);
                }
            }
            Event::ChangeUser(username) => {
                if let Some(info) = &mut self.info {
                    info.arg = username.to_vec();
                }
            }
            Event::Error(msg) => {
                if let Some(info) = &mut self.info {
                    info.success = Some(false);
                    info.response = Some(msg.to_vec());
                }
                self.write(ctx);
            }
            Event::Ok(rows) => {
                if let Some(info) = &mut self.info {
                    info.success = Some(true);
                    info.rows = Some(u64::from(rows));
                }
                self.write(ctx);
            }
            Event::Eof { intermediate: true } => {}
            Event::Eof { intermediate: false } => {
                if let Some(info) = &mut self.info {
                    info.success.get_or_insert(true);
                    info.rows.get_or_insert(0);
                }
                self.write(ctx);
            }
        }
    }

    /// Writes the open record, if any (`Log::write` and `delete c$mysql`).
    fn write(&mut self, ctx: &mut Ctx) {
        if let Some(info) = self.info.take() {
            ctx.log(&MYSQL_LOG, info.into_record(ctx));
        }
    }

    fn stop(&mut self) {
        self.stopped = true;
        self.dirs = Default::default();
    }
}

impl Analyzer for MySql {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if ctx.partial {
            self.stop();
        }
        let side = usize::from(!is_orig);
        let mut rest = data;
        while !rest.is_empty() && !self.stopped {
            let dir = &mut self.dirs[side];
            if dir.skip > 0 {
                let n = dir.skip.min(rest.len());
                dir.skip -= n;
                rest = &rest[n..];
                if dir.skip == 0 {
                    self.buffered_pdu(ctx, is_orig);
                }
                continue;
            }
            if dir.buf.is_empty()
                && let Some((seq_id, body, tail)) = whole_pdu(rest)
            {
                // Whole PDUs straight from the delivery, without copying.
                rest = tail;
                self.pdu(ctx, is_orig, seq_id, body.len(), body);
                continue;
            }
            if dir.buf.len() < HEADER_LEN {
                let n = (HEADER_LEN - dir.buf.len()).min(rest.len());
                dir.buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if dir.buf.len() < HEADER_LEN {
                    break;
                }
            }
            let len = body_len(&dir.buf);
            let kept = len.min(MAX_PDU);
            let n = (HEADER_LEN + kept - dir.buf.len()).min(rest.len());
            dir.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if dir.buf.len() < HEADER_LEN + kept {
                break;
            }
            if len > kept {
                dir.skip = len - kept;
            } else {
                self.buffered_pdu(ctx, is_orig);
            }
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        // MySQL.cc's `had_gap`: neither direction is parsed again.
        self.stop();
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        // `finalize_mysql`.
        self.write(ctx);
        self.stop();
    }

    fn is_done(&self) -> bool {
        self.stopped && self.info.is_none()
    }
}

/// Fuzz entry point: arbitrary stream bytes in both directions.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut MySql::default(), Proto::Tcp, 3306, data);
}

#[cfg(test)]
mod tests;
