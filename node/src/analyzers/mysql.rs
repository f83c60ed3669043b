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
mod tests {
    use super::*;
    use crate::analyzers::Action;
    use crate::analyzers::testing::Harness;

    /// A PDU: the 3-byte little-endian length, the sequence id, the body.
    fn pdu(seq_id: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len().to_le_bytes();
        [&len[..3], &[seq_id], body].concat()
    }

    /// A MySQL 8 greeting (Protocol::HandshakeV10): version 10, the server version string, connection id, 8 bytes
    /// of scramble, filler, capability flags (low: 0xffff; high: 0xdfff, with CLIENT_PLUGIN_AUTH and
    /// CLIENT_QUERY_ATTRIBUTES), charset, status, auth-plugin-data length 21, 10 reserved bytes, 13 more scramble
    /// bytes, and the plugin name.
    fn greeting_v10() -> Vec<u8> {
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

    /// A HandshakeResponse41 for `user` with `cap_flags`: a 20-byte auth response, the database and plugin name
    /// when the flags say so, and one attribute pair with CLIENT_CONNECT_ATTRS.
    fn response_for(user: &[u8], cap_flags: u32) -> Vec<u8> {
        let mut body = cap_flags.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 1, 0x21]);
        body.extend_from_slice(&[0; 23]);
        body.extend_from_slice(user);
        body.push(0);
        body.push(20);
        body.extend_from_slice(&[0x5a; 20]);
        if cap_flags & CLIENT_CONNECT_WITH_DB != 0 {
            body.extend_from_slice(b"test\0");
        }
        if cap_flags & CLIENT_PLUGIN_AUTH != 0 {
            body.extend_from_slice(b"caching_sha2_password\0");
        }
        if cap_flags & CLIENT_CONNECT_ATTRS != 0 {
            body.extend_from_slice(b"\x0a\x04_pid\x041234");
        }
        pdu(1, &body)
    }

    fn response_v10(cap_flags: u32) -> Vec<u8> {
        response_for(b"root", cap_flags)
    }

    /// CLIENT_LONG_PASSWORD ... CLIENT_SECURE_CONNECTION with the database, plugin auth and attributes.
    const FULL: u32 = 0x0000_a20f | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS;

    /// An OK packet with `rows` affected rows (one-byte length-encoded), last insert id 0, status, no warnings.
    fn ok(seq_id: u8, rows: u8) -> Vec<u8> {
        pdu(seq_id, &[0x00, rows, 0x00, 0x02, 0x00, 0x00, 0x00])
    }

    /// The OK that ends a result set under CLIENT_DEPRECATE_EOF (0xfe marker).
    fn ok_eof(seq_id: u8) -> Vec<u8> {
        pdu(seq_id, &[0xfe, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00])
    }

    fn err(seq_id: u8, code: u16, msg: &[u8]) -> Vec<u8> {
        pdu(seq_id, &[&[0xff][..], &code.to_le_bytes(), b"#28000", msg].concat())
    }

    /// An EOF packet (5 bytes: the marker, warnings, status).
    fn eof(seq_id: u8) -> Vec<u8> {
        pdu(seq_id, &[0xfe, 0x00, 0x00, 0x02, 0x00])
    }

    fn lenenc(s: &[u8]) -> Vec<u8> {
        [&[s.len() as u8][..], s].concat()
    }

    /// A Protocol::ColumnDefinition41 for a VAR_STRING column `name`.
    fn column_def(seq_id: u8, name: &[u8]) -> Vec<u8> {
        let mut body = [lenenc(b"def"), lenenc(b""), lenenc(b""), lenenc(b""), lenenc(name), lenenc(b"")].concat();
        body.extend_from_slice(&[0x0c, 0x21, 0x00, 0x00, 0x01, 0x00, 0x00, 0xfd, 0x01, 0x00, 0x1f, 0x00, 0x00]);
        pdu(seq_id, &body)
    }

    fn row(seq_id: u8, fields: &[&[u8]]) -> Vec<u8> {
        pdu(seq_id, &fields.iter().flat_map(|f| lenenc(f)).collect::<Vec<u8>>())
    }

    fn command(command: u8, arg: &[u8]) -> Vec<u8> {
        pdu(0, &[&[command][..], arg].concat())
    }

    /// A one-column result set with `rows`, in the classic form (intermediate and final EOF) or, with
    /// `deprecate_eof`, ended by an OK.
    fn result_set(rows: &[&[u8]], deprecate_eof: bool) -> Vec<u8> {
        let mut out = [pdu(1, &[1]), column_def(2, b"c")].concat();
        let mut seq = 3;
        if !deprecate_eof {
            out.extend(eof(seq));
            seq += 1;
        }
        for r in rows {
            out.extend(row(seq, &[r]));
            seq += 1;
        }
        out.extend(if deprecate_eof { ok_eof(seq) } else { eof(seq) });
        out
    }

    /// mysql.log's columns after `id`, as TSV, and the actions, for `deliveries` at 100.0, 101.0, ...; the
    /// connection is finished at the end.
    fn session_log(deliveries: &[(bool, Vec<u8>)]) -> (Vec<Vec<String>>, Vec<Action>) {
        logged_with(deliveries, |h, mysql, ts, is_orig, data| h.run(ts, |ctx| mysql.deliver(ctx, is_orig, data)))
    }

    type Deliver = fn(&mut Harness, &mut MySql, f64, bool, &[u8]);

    fn logged_with(deliveries: &[(bool, Vec<u8>)], deliver: Deliver) -> (Vec<Vec<String>>, Vec<Action>) {
        let mut h = Harness::new(Proto::Tcp, 3306);
        let mut mysql = MySql::default();
        for (i, (is_orig, data)) in deliveries.iter().enumerate() {
            deliver(&mut h, &mut mysql, 100.0 + i as f64, *is_orig, data);
        }
        h.finish(&mut mysql);
        let rows = h.logged("mysql").iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect();
        (rows, h.actions)
    }

    fn rows(expected: &[[&str; 5]]) -> Vec<Vec<String>> {
        expected.iter().map(|r| r.map(String::from).to_vec()).collect()
    }

    /// A session like Zeek's wireshark and auth traces: login, queries with and without result sets, an error, a
    /// field list, statistics (never answered with a status) and quit.
    fn classic_session() -> Vec<(bool, Vec<u8>)> {
        vec![
            (false, greeting_v10()),
            (true, response_v10(FULL)),
            (false, ok(2, 0)),
            (true, command(COM_QUERY, b"select @@version_comment limit 1")),
            (false, result_set(&[b"MySQL Community Server - GPL"], false)),
            (true, command(0x02, b"test")),
            (false, ok(1, 0)),
            (true, command(COM_QUERY, b"insert into foo (animal) values (\"dog\")")),
            (false, ok(1, 1)),
            (true, command(COM_QUERY, b"select nope")),
            (false, err(1, 1054, b"Unknown column 'nope' in 'field list'")),
            (true, command(0x04, b"agent\0")),
            (false, [column_def(1, b"id"), column_def(2, b"animal"), eof(3)].concat()),
            (true, command(0x09, b"")),
            (false, pdu(1, b"Uptime: 5  Threads: 1  Questions: 9")),
            (true, command(COM_QUIT, b"")),
        ]
    }

    fn classic_rows() -> Vec<Vec<String>> {
        rows(&[
            ["login", "root", "T", "0", "-"],
            ["query", "select @@version_comment limit 1", "T", "0", "-"],
            ["init_db", "test", "T", "0", "-"],
            ["query", "insert into foo (animal) values (\"dog\")", "T", "1", "-"],
            ["query", "select nope", "F", "-", "Unknown column 'nope' in 'field list'"],
            ["field_list", "agent", "T", "0", "-"],
            ["statistics", "(empty)", "-", "-", "-"],
            ["quit", "(empty)", "-", "-", "-"],
        ])
    }

    #[test]
    fn a_session_logs_each_command_with_its_answer() {
        let (logged, actions) = session_log(&classic_session());
        assert_eq!(logged, classic_rows());
        assert_eq!(actions, [Action::Confirm("mysql")]);
    }

    #[test]
    fn records_carry_the_time_of_their_event() {
        let mut h = Harness::new(Proto::Tcp, 3306);
        let mut mysql = MySql::default();
        for (i, (is_orig, data)) in classic_session().iter().take(5).enumerate() {
            h.run(100.0 + i as f64, |ctx| mysql.deliver(ctx, *is_orig, data));
        }
        let times: Vec<String> = h.logged("mysql").iter().map(|r| r.values[0].to_tsv()).collect();
        // The login at the handshake response, the query at its request.
        assert_eq!(times, ["101.000000", "103.000000"]);
    }

    #[test]
    fn the_session_split_at_every_byte_logs_the_same() {
        let byte_at_a_time: Deliver = |h, mysql, ts, is_orig, data| {
            for b in data.chunks(1) {
                h.run(ts, |ctx| mysql.deliver(ctx, is_orig, b));
            }
        };
        assert_eq!(logged_with(&classic_session(), byte_at_a_time).0, classic_rows());
        // Every split point of a server answer holding five PDUs.
        let answer = result_set(&[b"a", b"bb"], false);
        for at in 0..=answer.len() {
            let (a, b) = answer.split_at(at);
            let session = [
                classic_session()[..4].to_vec(),
                vec![(false, a.to_vec()), (false, b.to_vec()), (true, command(COM_QUIT, b""))],
            ]
            .concat();
            let (logged, actions) = session_log(&session);
            assert_eq!(logged[1], ["query", "select @@version_comment limit 1", "T", "0", "-"], "split at {at}");
            assert_eq!(actions, [Action::Confirm("mysql")]);
        }
    }

    #[test]
    fn deprecate_eof_result_sets_end_with_an_ok() {
        let flags = FULL | CLIENT_DEPRECATE_EOF;
        let (logged, actions) = session_log(&[
            (false, greeting_v10()),
            (true, response_v10(flags)),
            (false, ok(2, 0)),
            (true, command(COM_QUERY, b"show databases")),
            (false, result_set(&[b"information_schema", b"mysql"], true)),
            (true, command(0x04, b"t\0")),
            (false, [column_def(1, b"a"), ok_eof(2)].concat()),
            (true, command(COM_QUERY, b"select 1 from dual where 0")),
            (false, result_set(&[], true)),
        ]);
        assert_eq!(
            logged,
            rows(&[
                ["login", "root", "T", "0", "-"],
                ["query", "show databases", "T", "0", "-"],
                ["field_list", "t", "T", "0", "-"],
                ["query", "select 1 from dual where 0", "T", "0", "-"],
            ])
        );
        assert_eq!(actions, [Action::Confirm("mysql")]);
        // Without the flag, a result set's 0xfe marker in a PDU longer than 9 bytes is an OK as well.
        let long_end = pdu(4, &[0xfe, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        let (logged, _) = session_log(&[
            (false, greeting_v10()),
            (true, response_v10(FULL)),
            (false, ok(2, 0)),
            (true, command(COM_QUERY, b"select 1")),
            (false, [pdu(1, &[1]), column_def(2, b"c"), eof(3), long_end].concat()),
        ]);
        assert_eq!(logged[1], ["query", "select 1", "T", "0", "-"]);
    }

    #[test]
    fn query_attributes_are_read_past() {
        let flags = FULL | CLIENT_DEPRECATE_EOF | CLIENT_QUERY_ATTRIBUTES;
        let session = |query: Vec<u8>| {
            session_log(&[
                (false, greeting_v10()),
                (true, response_v10(flags)),
                (false, ok(2, 0)),
                (true, command(COM_QUERY, &query)),
                (false, result_set(&[b"x"], true)),
            ])
        };
        // No attributes: a count of 0 and a set count of 1.
        let (logged, _) = session(b"\x00\x01select now()".to_vec());
        assert_eq!(logged[1], ["query", "select now()", "T", "0", "-"]);
        // Two attributes, a string and a LONGLONG, and a third that is NULL in the bitmap.
        let mut query = vec![3, 1, 0b100, 1];
        query.extend([0xfe, 0x00, 2, b'n', b'1', 0x08, 0x80, 2, b'n', b'2', 0x06, 0x00, 2, b'n', b'3']);
        query.extend([2, b'v', b'1', 7, 0, 0, 0, 0, 0, 0, 0]);
        query.extend(b"SELECT mysql_query_attribute_string('n1')");
        let (logged, actions) = session(query.clone());
        assert_eq!(logged[1], ["query", "SELECT mysql_query_attribute_string('n1')", "T", "0", "-"]);
        assert_eq!(actions, [Action::Confirm("mysql")]);
        // send_types_to_server must be 1, and a type binpac has no case for throws.
        for (at, byte) in [(3, 0), (4, 0x20)] {
            let mut bad = query.clone();
            bad[at] = byte;
            let (logged, actions) = session(bad);
            assert_eq!(logged.len(), 1, "the query is not logged");
            assert!(matches!(actions[..], [Action::Confirm(_), Action::Violation(_)]), "{actions:?}");
        }
        // Only when both sides announced them: the client alone does not make the count a count.
        let (logged, _) = session_log(&[
            (false, greeting_v10()),
            (true, response_v10(FULL | CLIENT_QUERY_ATTRIBUTES)),
            (false, ok(2, 0)),
        ]);
        assert_eq!(logged.len(), 1);
    }

    /// COM_CHANGE_USER as mysql-connector-python sends it: user, auth data, database, charset, plugin, attributes.
    fn change_user(user: &[u8]) -> Vec<u8> {
        let mut arg = [user, b"\0"].concat();
        arg.push(20);
        arg.extend([0x4e; 20]);
        arg.extend(b"\0\xff\x00caching_sha2_password\0\x0a\x04_pid\x041234");
        command(COM_CHANGE_USER, &arg)
    }

    /// An AuthSwitchRequest to mysql_native_password with its 20-byte scramble.
    fn auth_switch(seq_id: u8) -> Vec<u8> {
        pdu(seq_id, &[&b"\xfemysql_native_password\x00"[..], b"0123456789abcdefghij\x00"].concat())
    }

    #[test]
    fn change_user_logs_the_new_user_and_its_outcome() {
        let start = vec![
            (false, greeting_v10()),
            (true, response_v10(FULL)),
            // An auth switch during the login: the client's next packet is auth data.
            (false, auth_switch(2)),
            (true, pdu(3, &[0x42; 20])),
            (false, ok(4, 0)),
            (true, command(0x0e, b"")),
            (false, ok(1, 0)),
            (true, change_user(b"root2")),
            (false, auth_switch(1)),
            (true, pdu(2, &[0x43; 20])),
        ];
        let success = [
            start.clone(),
            vec![(false, ok(3, 0)), (true, command(COM_QUERY, b"SET NAMES 'utf8mb4'")), (false, ok(1, 0))],
        ]
        .concat();
        let (logged, actions) = session_log(&success);
        assert_eq!(
            logged,
            rows(&[
                ["login", "root", "T", "0", "-"],
                ["ping", "(empty)", "T", "0", "-"],
                ["change_user", "root2", "T", "0", "-"],
                ["query", "SET NAMES 'utf8mb4'", "T", "0", "-"],
            ])
        );
        assert_eq!(actions, [Action::Confirm("mysql")]);
        let denied = b"Access denied for user 'root2'@'127.0.0.1' (using password: YES)";
        let (logged, _) = session_log(&[start, vec![(false, err(3, 1045, denied))]].concat());
        assert_eq!(logged[2], ["change_user", "root2", "F", "-", std::str::from_utf8(denied).unwrap()]);
        // binpac looks for the plugin name after the charset even when the packet ends there.
        let (logged, actions) = session_log(&[
            (false, greeting_v10()),
            (true, response_v10(FULL)),
            (false, ok(2, 0)),
            (true, command(COM_CHANGE_USER, b"root2\0\0\0\x21\x00")),
        ]);
        assert_eq!(logged.len(), 1);
        assert!(matches!(actions[..], [Action::Confirm(_), Action::Violation(_)]));
    }

    #[test]
    fn failed_logins_and_unanswered_requests() {
        let denied = b"Access denied for user 'root_nope'@'lumberjack.home' (using password: NO)";
        let (logged, _) = session_log(&[
            (false, greeting_v10()),
            (true, response_for(b"root_nope", 0x0000_a20f)),
            (false, err(2, 1045, denied)),
        ]);
        assert_eq!(logged, rows(&[["login", "root_nope", "F", "-", std::str::from_utf8(denied).unwrap()]]));
        // What is open when the connection ends is written then. Before the server's OK a client packet is auth
        // data (the response announced plugin auth), not a command.
        let unanswered = [(false, greeting_v10()), (true, response_v10(FULL)), (true, command(0x20, b"x\0\0"))];
        let (logged, _) = session_log(&unanswered);
        assert_eq!(logged, rows(&[["login", "root", "-", "-", "-"]]));
        // An unknown command is named by its number; one trailing NUL of an argument is dropped.
        let (logged, _) = session_log(&[&unanswered[..2], &[(false, ok(2, 0)), unanswered[2].clone()]].concat());
        assert_eq!(logged, rows(&[["login", "root", "T", "0", "-"], ["unknown-32", r"x\x00", "-", "-", "-"]]));
        // Protocol 9 (Handshake_v9 and the v9 response).
        let v9 = pdu(0, b"\x093.22\0\x01\0\0\0scramble\0");
        let v9_response = pdu(1, b"\x05\x00\0\0\x01admin\0pw\0");
        let (logged, actions) = session_log(&[(false, v9), (true, v9_response), (false, ok(2, 0))]);
        assert_eq!(logged, rows(&[["login", "admin", "T", "0", "-"]]));
        assert_eq!(actions, [Action::Confirm("mysql")]);
    }

    fn run(deliveries: &[(bool, &[u8])]) -> Vec<Action> {
        let mut h = Harness::new(Proto::Tcp, 3306);
        let mut mysql = (SPEC.new)(Proto::Tcp);
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
        // The SSL request (32 bytes, CLIENT_SSL) confirms and hands the rest to TLS; nothing is logged.
        let ssl = pdu(1, &[&(FULL | CLIENT_SSL).to_le_bytes()[..], &[0; 28]].concat());
        assert_eq!(run(&[(false, &greeting), (true, &ssl)]), [Action::Confirm("mysql"), Action::StartTls]);
        let (logged, _) = session_log(&[(false, greeting.clone()), (true, ssl), (true, command(COM_QUERY, b"x"))]);
        assert!(logged.is_empty());
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
        // A connection-phase packet of a type binpac has no case for.
        assert!(violation(run(&[(false, &greeting), (false, &pdu(2, b"\x05"))])));
        // HTTP on port 3306 reads as the header of a PDU of megabytes: nothing is said.
        assert_eq!(run(&[(true, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]), []);
        // An error greeting (version 0xff) moves to the command phase: the response is read as a command.
        let refused = pdu(0, b"\xff\x6a\x04#HY000Host is blocked");
        assert_eq!(run(&[(false, &refused), (true, &response_v10(FULL))]), []);
        let (logged, _) = session_log(&[(false, refused), (true, command(COM_QUIT, b""))]);
        assert_eq!(logged, rows(&[["quit", "(empty)", "-", "-", "-"]]));
        // A row with fewer fields than the result set's columns: the violation ends the parsing, the open record
        // is written when the connection ends.
        let (logged, actions) = session_log(&[
            (false, greeting_v10()),
            (true, response_v10(FULL)),
            (false, ok(2, 0)),
            (true, command(COM_QUERY, b"select a, b")),
            (false, [pdu(1, &[2]), column_def(2, b"a"), column_def(3, b"b"), eof(4), row(5, &[b"1"])].concat()),
            (false, eof(6)),
        ]);
        assert_eq!(logged[1], ["query", "select a, b", "-", "-", "-"]);
        assert!(matches!(actions[..], [Action::Confirm(_), Action::Violation(_)]));
    }

    #[test]
    fn gaps_and_mid_stream_connections_stop_the_analysis() {
        let mut h = Harness::new(Proto::Tcp, 3306);
        h.partial = true;
        let mut mysql = MySql::default();
        h.deliver(&mut mysql, false, &greeting_v10());
        h.deliver(&mut mysql, true, &response_v10(FULL));
        assert!(mysql.is_done());
        h.finish(&mut mysql);
        assert_eq!((h.actions.len(), h.records.len()), (0, 0));
        // After a gap in either direction nothing is parsed; the open record is written at the end.
        let mut h = Harness::new(Proto::Tcp, 3306);
        let mut mysql = MySql::default();
        for (is_orig, data) in &classic_session()[..4] {
            h.deliver(&mut mysql, *is_orig, data);
        }
        h.run(1.0, |ctx| mysql.undelivered(ctx, false, 10));
        h.deliver(&mut mysql, false, &ok(1, 0));
        assert!(!mysql.is_done(), "a record is still open");
        h.finish(&mut mysql);
        let logged: Vec<Vec<String>> =
            h.logged("mysql").iter().map(|r| r.values[6..].iter().map(Value::to_tsv).collect()).collect();
        assert_eq!(logged[1], ["query", "select @@version_comment limit 1", "-", "-", "-"]);
    }

    #[test]
    fn long_pdus_are_parsed_from_their_first_bytes() {
        // A 100 000-byte query: the argument is cut at MAX_PDU, and its answer still closes it.
        let long_query = vec![b'a'; 100_000];
        let query = command(COM_QUERY, &long_query);
        // A row longer than MAX_PDU (a 3-byte length-encoded field) is no violation.
        let long_row = pdu(4, &[&[0xfd, 0xa0, 0x86, 0x01][..], &[b'b'; 100_000]].concat());
        let answer = [pdu(1, &[1]), column_def(2, b"c"), eof(3), long_row, eof(5)].concat();
        let in_segments: Deliver = |h, mysql, ts, is_orig, data| {
            for segment in data.chunks(1448) {
                h.run(ts, |ctx| mysql.deliver(ctx, is_orig, segment));
            }
        };
        let session = [&classic_session()[..3], &[(true, query), (false, answer)]].concat();
        let (logged, actions) = logged_with(&session, in_segments);
        assert_eq!(logged.len(), 2);
        assert_eq!(logged[1][0], "query");
        assert_eq!(logged[1][1], "a".repeat(MAX_PDU - 1));
        assert_eq!(logged[1][2..], ["T", "0", "-"]);
        assert_eq!(actions, [Action::Confirm("mysql")]);
    }

    #[test]
    fn continuations_of_a_maximal_pdu_are_pdus_of_their_own() {
        // MySQL sends a payload of 16 MiB or more as a 0xffffff-long packet and continuations; binpac parses the
        // continuation as a command of its own, named by its first byte ('t', 116).
        let mut first = vec![0xff, 0xff, 0xff, 0x00, COM_QUERY];
        first.resize(HEADER_LEN + 0xff_ffff, b'q');
        let session = [&classic_session()[..3], &[(true, first), (true, pdu(1, b"tail"))]].concat();
        let (logged, _) = session_log(&session);
        let commands: Vec<(&str, usize)> = logged.iter().map(|r| (r[0].as_str(), r[1].len())).collect();
        assert_eq!(commands, [("login", 4), ("query", MAX_PDU - 1), ("unknown-116", 3)]);
    }

    #[test]
    fn command_names_follow_zeeks_table() {
        assert_eq!(command_name(0), "sleep");
        assert_eq!(command_name(0x1f), "reset_connection");
        assert_eq!(command_name(0x20), "unknown-32");
        assert_eq!(command_name(0xff), "unknown-255");
    }

    /// Through the engine: the analyzer attaches on 3306 (not on 3307), the handshake response confirms
    /// `service`, and mysql.log's records carry the connection's uid.
    #[test]
    fn mysql_log_through_the_engine() {
        use crate::config::AnalysisConfig;
        use crate::decode::LinkType;
        use crate::decode::test_frames::tcp_exchange;
        use crate::engine::Engine;
        use crate::logs::LogRecord;

        let run = |port: u16| {
            let session = classic_session();
            let messages: Vec<(bool, &[u8])> = session.iter().take(5).map(|(o, d)| (*o, d.as_slice())).collect();
            let frames = tcp_exchange(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], port), &messages);
            let mut engine = Engine::new(AnalysisConfig { ignore_checksums: true, ..AnalysisConfig::default() });
            for (i, frame) in frames.iter().enumerate() {
                engine.process_packet(1.0 + i as f64 * 0.01, LinkType::Raw, frame);
            }
            engine.finish();
            engine.drain_records().collect::<Vec<LogRecord>>()
        };
        let field = |r: &LogRecord, name: &str| r.get(name).map(Value::to_tsv).unwrap_or_default();
        let records = run(3306);
        let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
        assert_eq!(field(conn, "service"), "mysql");
        let logged: Vec<(String, String, String)> = records
            .iter()
            .filter(|r| r.schema.path == "mysql")
            .map(|r| (field(r, "uid"), field(r, "cmd"), field(r, "success")))
            .collect();
        let uid = field(conn, "uid");
        assert_eq!(logged, [(uid.clone(), "login".into(), "T".into()), (uid, "query".into(), "T".into())]);
        let records = run(3307);
        assert!(records.iter().all(|r| r.schema.path != "mysql"));
        let conn = records.iter().find(|r| r.schema.path == "conn").unwrap();
        assert_eq!(field(conn, "service"), "-");
    }

    #[test]
    fn fuzz_inputs_do_not_panic() {
        let mut session = Vec::new();
        for (is_orig, data) in classic_session() {
            for chunk in data.chunks(255) {
                session.extend([u8::from(!is_orig), chunk.len() as u8]);
                session.extend(chunk);
            }
        }
        fuzz(&session);
        for cut in 0..session.len() {
            fuzz(&session[..cut]);
            fuzz(&session[cut..]);
        }
        // Byte flips of the session (a fixed xorshift sequence), which reach the parsers' failure paths.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..3000 {
            let mut mutated = session.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % mutated.len() as u64) as usize;
                mutated[at] = (state >> 32) as u8;
            }
            fuzz(&mutated);
        }
    }
}
