//! SMB1 (`\xffSMB`) as Zeek's binpac analyzer reads it (smb1-protocol.pac, smb1-com-*.pac, smb-strings.pac,
//! smb-common.pac) and as smb1-main.zeek handles its events.
//!
//! A message is the 32-byte header (with the protocol id), then, unless the NBSS message is 35 bytes long (an empty
//! response: three bytes, no event the scripts log), the command's request or response record; AndX commands end
//! with a chained command parsed right where the record ends (not at the AndX offset, which only decides whether
//! one or two padding bytes are skipped), its events raised before the outer command's (binpac evaluates a record's
//! `&let` fields once all its fields, the chained command included, have parsed). The chain stops, with a weird,
//! where an AndX offset does not advance past its record or the chain reaches [`MAX_ANDX_DEPTH`].
//!
//! Strings are `SMB_string`s: ASCII up to a NUL (the NUL dropped from the value), or, when the header's flags2 say
//! unicode, a pad byte where the field's offset from its record's start is odd, then UTF-16 up to a NUL pair at an
//! even position. `padding to X - SMB_Header_length` pads from the record's start, as binpac does whatever the
//! record's place in an AndX chain.
//!
//! Every pipe's data goes to DCE_RPC with file id 0 (`forward_dce_rpc(data, 0, ...)`): read and write AndX on a tree
//! marked a pipe (an `IPC` tree connect response, or a create of a name in `SMB::pipe_filenames`) and the data of
//! transactions named `\PIPE\...` (and their responses).

use std::collections::HashMap;

use super::parse::{MacTimes, Reader, SmbError, Text, filetime};
use super::{Action, Cmd, FileInfo, MAPPING_LOG, MAX_PENDING, PIPE_FILENAMES, Ref, State, TreeInfo, text};
use crate::analyzers::Ctx;

/// `SMB_Header_length`: the header with its protocol id; offsets in the messages count from its start.
pub const HEADER_LEN: usize = 32;

/// How deep an AndX chain is followed (the newest grammar's `andx_depth` bound, `smb_andx_depth_exceeded`).
pub const MAX_ANDX_DEPTH: u8 = 16;

/// An NBSS message of this length holds an empty response (`SMB_No_Message`).
const EMPTY_MESSAGE_LEN: usize = 35;

/// The `SMB_Command` codes the grammar parses.
pub mod com {
    pub const CLOSE: u8 = 0x04;
    pub const QUERY_INFORMATION: u8 = 0x08;
    pub const CHECK_DIRECTORY: u8 = 0x10;
    pub const LOCKING_ANDX: u8 = 0x24;
    pub const TRANSACTION_SECONDARY: u8 = 0x26;
    pub const ECHO: u8 = 0x2b;
    pub const TRANSACTION2: u8 = 0x32;
    pub const TRANSACTION2_SECONDARY: u8 = 0x33;
    pub const NT_TRANSACT: u8 = 0xa0;
    pub const NT_CANCEL: u8 = 0xa4;
    pub const TRANSACTION: u8 = 0x25;
    pub const READ_ANDX: u8 = 0x2e;
    pub const WRITE_ANDX: u8 = 0x2f;
    pub const TREE_DISCONNECT: u8 = 0x71;
    pub const NEGOTIATE: u8 = 0x72;
    pub const SESSION_SETUP_ANDX: u8 = 0x73;
    pub const LOGOFF_ANDX: u8 = 0x74;
    pub const TREE_CONNECT_ANDX: u8 = 0x75;
    pub const NT_CREATE_ANDX: u8 = 0xa2;
}

/// `SMB_Header` (after the protocol id), with what the analyzer and the scripts read of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command: u8,
    pub status: u32,
    pub flags2: u16,
    pub tid: u16,
    pub mid: u16,
}

impl Header {
    /// `unicode = (flags2 >> 15) & 1`.
    pub fn unicode(&self) -> bool {
        self.flags2 & 0x8000 != 0
    }
}

pub fn parse_header(msg: &[u8], end: usize) -> Result<Header, SmbError> {
    let mut r = Reader::new(msg, end, 4, "SMB_Header");
    r.check(HEADER_LEN - 4)?;
    let command = r.u8()?;
    let status = r.u32()?;
    let _flags = r.u8()?;
    let flags2 = r.u16()?;
    r.skip(2 + 8 + 2)?; // pid_high, security features, reserved
    let tid = r.u16()?;
    r.skip(2 + 2)?; // pid_low, uid
    let mid = r.u16()?;
    Ok(Header { command, status, flags2, tid, mid })
}

/// What one message raises, in binpac's order: the scripts' events, the data handed to GSSAPI and DCE_RPC, weirds.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// `forward_gssapi`: a negotiate response's or a session setup's security blob.
    SecurityBlob {
        blob: &'a [u8],
        is_orig: bool,
    },
    TreeConnectRequest {
        path: Text,
        service: Text,
    },
    /// The service and, when the byte count reaches past the service, the native file system.
    TreeConnectResponse {
        service: Text,
        native_file_system: Option<Text>,
    },
    NtCreateRequest {
        name: Text,
    },
    NtCreateResponse {
        fid: u16,
        size: u64,
        times: MacTimes,
    },
    ReadRequest {
        fid: u16,
        offset: u64,
    },
    ReadResponse {
        data: Option<&'a [u8]>,
    },
    WriteRequest {
        fid: u16,
        offset: u64,
        data: Option<&'a [u8]>,
    },
    CloseRequest {
        fid: u16,
    },
    /// `forward_dce_rpc(data, 0, is_orig)`.
    PipeData {
        data: Option<&'a [u8]>,
        is_orig: bool,
    },
    Weird(&'static str),
}

/// `SMB_andx`.
#[derive(Debug, Clone, Copy)]
struct AndX {
    command: u8,
    offset: u16,
}

/// One message's parse: the message, its header and where the events go.
pub struct Parser<'a, 'e> {
    msg: &'a [u8],
    end: usize,
    h: Header,
    /// The header's `is_pipe`: the tree of the header's tree id is a pipe.
    is_pipe: bool,
    /// binpac's `is_file_a_pipe`: whether a transaction request (by multiplex id) went to a pipe.
    file_a_pipe: &'e mut HashMap<u16, bool>,
    pub events: Vec<Event<'a>>,
}

impl<'a, 'e> Parser<'a, 'e> {
    pub fn new(msg: &'a [u8], end: usize, h: Header, is_pipe: bool, file_a_pipe: &'e mut HashMap<u16, bool>) -> Self {
        Parser { msg, end, h, is_pipe, file_a_pipe, events: Vec::new() }
    }

    /// `SMB_PDU` after the header.
    pub fn message(&mut self, is_orig: bool) -> Result<(), SmbError> {
        if self.end == EMPTY_MESSAGE_LEN {
            return self.record(HEADER_LEN, "SMB_No_Message").skip(3);
        }
        self.command(HEADER_LEN, self.h.command, HEADER_LEN, is_orig, 0)
    }

    fn record(&self, pos: usize, what: &'static str) -> Reader<'a> {
        Reader::new(self.msg, self.end, pos, what)
    }

    /// `SMB_Message`: the record of `command` at `pos`, `offset` being its offset as the grammar passes it on.
    fn command(&mut self, pos: usize, command: u8, offset: usize, is_orig: bool, depth: u8) -> Result<(), SmbError> {
        match (command, is_orig) {
            (com::NEGOTIATE, true) => self.negotiate_request(pos),
            (com::NEGOTIATE, false) => self.negotiate_response(pos),
            (com::SESSION_SETUP_ANDX, _) => self.session_setup(pos, offset, is_orig, depth),
            (com::TREE_CONNECT_ANDX, true) => self.tree_connect_request(pos, offset, depth),
            (com::TREE_CONNECT_ANDX, false) => self.tree_connect_response(pos, offset, depth),
            (com::NT_CREATE_ANDX, true) => self.nt_create_request(pos, offset, depth),
            (com::NT_CREATE_ANDX, false) => self.nt_create_response(pos, offset, depth),
            (com::READ_ANDX, true) => self.read_request(pos, offset, depth),
            (com::READ_ANDX, false) => self.read_response(pos, offset, depth),
            (com::WRITE_ANDX, true) => self.write_request(pos, offset, depth),
            (com::WRITE_ANDX, false) => self.write_response(pos, offset, depth),
            (com::CLOSE, true) => {
                let mut r = self.record(pos, "SMB1_close_request");
                r.skip(1)?;
                let fid = r.u16()?;
                r.skip(4 + 2)?;
                self.events.push(Event::CloseRequest { fid });
                Ok(())
            }
            // `SMB_empty_response` and `SMB1_tree_disconnect`: word count and byte count.
            (com::CLOSE, false) | (com::TREE_DISCONNECT, _) => self.record(pos, "SMB_empty_response").skip(3),
            (com::LOGOFF_ANDX, _) => {
                let mut r = self.record(pos, "SMB1_logoff_andx");
                r.skip(1)?;
                let andx = andx(&mut r)?;
                r.skip(2)?;
                // The grammar parses a logoff's chained command as a request whatever the direction.
                self.andx_tail(&mut r, andx, offset, true, depth)
            }
            (com::TRANSACTION, true) => self.transaction_request(pos),
            (com::TRANSACTION, false) => self.transaction_response(pos),
            // The commands below raise nothing the logs use: only their bounds matter.
            (com::TRANSACTION2, true) => self.transaction2_request(pos),
            (com::TRANSACTION2, false) => {
                let mut r = self.record(pos, "SMB1_transaction2_response");
                r.skip(1 + 2 * 9 + 1 + 1)?;
                let byte_count = usize::from(r.u16()?);
                r.skip(byte_count)
            }
            (com::LOCKING_ANDX, true) => {
                let mut r = self.record(pos, "SMB1_locking_andx_request");
                r.skip(1)?;
                let andx = andx(&mut r)?;
                r.skip(2 + 1 + 1 + 4)?;
                let unlocks = usize::from(r.u16()?);
                let locks = usize::from(r.u16()?);
                r.skip(2)?;
                // `get_offset_len()` is always 64: LOCKING_ANDX_RANGE64 entries of 20 bytes.
                r.skip((unlocks + locks) * 20)?;
                self.andx_tail(&mut r, andx, offset, true, depth)
            }
            // `SMB1_locking_andx_response` is an empty record.
            (com::LOCKING_ANDX, false) => Ok(()),
            (com::ECHO, _) => {
                let mut r = self.record(pos, if is_orig { "SMB1_echo_request" } else { "SMB1_echo_response" });
                r.skip(1 + 2)?;
                let byte_count = usize::from(r.u16()?);
                r.skip(byte_count)
            }
            (com::QUERY_INFORMATION | com::CHECK_DIRECTORY, true) => {
                let mut r = self.record(pos, "SMB1_query_information_request");
                r.skip(1 + 2 + 1)?;
                let at = r.at();
                self.string(&mut r, self.h.unicode(), at).map(|_| ())
            }
            // Word count, attributes, SMB_time (6 bytes in the grammar), size, five reserved words, byte count.
            (com::QUERY_INFORMATION, false) => self.record(pos, "SMB1_query_information_response").skip(25),
            (com::CHECK_DIRECTORY, false) | (com::NT_CANCEL, true) => {
                self.record(pos, "SMB1_check_directory_response").skip(3)
            }
            // The secondaries' data is never a pipe's (`SMB_UNKNOWN`): a transaction's runs to the message's end,
            // a transaction2's is `data_count` bytes.
            (com::TRANSACTION_SECONDARY | com::TRANSACTION2_SECONDARY, true) => {
                let (what, fid) = if command == com::TRANSACTION_SECONDARY {
                    ("SMB1_transaction_secondary_request", 0)
                } else {
                    ("SMB1_transaction2_secondary_request", 2)
                };
                let mut r = self.record(pos, what);
                r.skip(1 + 2 * 2)?;
                let param_count = usize::from(r.u16()?);
                let param_offset = r.u16()?;
                r.skip(2)?;
                let data_count = usize::from(r.u16()?);
                let data_offset = r.u16()?;
                r.skip(2 + fid + 2)?;
                r.pad_to(Some(u64::from(param_offset.saturating_sub(HEADER_LEN as u16))))?;
                r.skip(param_count)?;
                r.pad_to(Some(u64::from(data_offset.saturating_sub(HEADER_LEN as u16))))?;
                if command == com::TRANSACTION2_SECONDARY { r.skip(data_count) } else { Ok(()) }
            }
            // `SMB1_nt_transact_request` and `_response`: the word count only.
            (com::NT_TRANSACT, _) => self.record(pos, "SMB1_nt_transact_request").skip(1),
            // Commands the grammar leaves to `&restofdata`.
            _ => Ok(()),
        }
    }

    /// `extra_byte_parameters` and `andx_command`, the end of every AndX record, then its offset and depth checks.
    fn andx_tail(
        &mut self,
        r: &mut Reader<'a>,
        andx: AndX,
        offset: usize,
        chained_is_orig: bool,
        depth: u8,
    ) -> Result<(), SmbError> {
        let at = offset + r.at();
        let andx_offset = usize::from(andx.offset);
        if andx_offset != 0 && andx_offset < at + 2 {
            let len = andx_offset as i64 - at as i64;
            let len =
                usize::try_from(len).map_err(|_| SmbError::InvalidLength { what: "extra_byte_parameters", len })?;
            r.skip(len)?;
        }
        let too_deep = depth >= MAX_ANDX_DEPTH;
        let not_advancing = andx_offset <= offset;
        if !too_deep && !not_advancing && andx.command != 0xff {
            let next_offset = (offset + r.at()) & 0xffff;
            self.command(r.pos(), andx.command, next_offset, chained_is_orig, depth + 1)?;
        }
        if andx.command != 0xff && not_advancing {
            self.events.push(Event::Weird("smb_andx_offset_not_advancing"));
        }
        if andx.command != 0xff && too_deep {
            self.events.push(Event::Weird("smb_andx_depth_exceeded"));
        }
        Ok(())
    }

    /// `SMB_string(unicode, offset)`, `offset` being the field's offset from its record's start.
    fn string(&self, r: &mut Reader<'a>, unicode: bool, offset: usize) -> Result<Text, SmbError> {
        if unicode {
            r.skip(offset & 1)?;
            // `get_prev_elem`: a NUL ends the string where it completes a NUL pair at an even length.
            let s = r.until(|s| {
                let n = s.len();
                n > 1 && n % 2 == 0 && s[n - 1] == 0 && s[n - 2] == 0
            })?;
            Ok(Text::from_utf16(s))
        } else {
            let s = r.until(|s| s.last() == Some(&0))?;
            Ok(ascii(s))
        }
    }

    fn negotiate_request(&mut self, pos: usize) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_negotiate_request");
        r.skip(1)?;
        let byte_count = usize::from(r.u16()?);
        let end = r.check(byte_count)?;
        // `SMB_dialect[] &length=byte_count`: buffer format and an ASCII name, until the bytes are used.
        let mut dialects = Reader::new(self.msg, end, r.pos(), "SMB_dialect");
        while dialects.pos() < end {
            dialects.skip(1)?;
            dialects.until(|s| s.last() == Some(&0))?;
        }
        Ok(())
    }

    fn negotiate_response(&mut self, pos: usize) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_negotiate_response");
        let word_count = r.u8()?;
        r.skip(2)?; // dialect index
        let unicode = self.h.unicode();
        match word_count {
            0x01 => r.skip(2),
            0x0d => {
                // security flags, max buffer size, max mpx count, max vcs, raw mode, session key, server time and
                // date (16 bits each, as the newest grammar reads them: Zeek's `smb1-negotiate-lanman` baseline), time
                // zone.
                let mut lanman = self.record(r.pos(), "SMB1_negotiate_lanman_response");
                lanman.skip(2 * 5 + 4 + 2 + 2 + 2)?;
                let key_len = usize::from(lanman.u16()?);
                lanman.skip(2 + 2)?;
                lanman.skip(key_len)?;
                let at = lanman.at();
                self.string(&mut lanman, unicode, at).map(|_| ())
            }
            0x11 => {
                let mut ntlm = self.record(r.pos(), "SMB1_negotiate_ntlm_response");
                ntlm.skip(1 + 2 + 2 + 4 + 4 + 4)?;
                let capabilities = ntlm.u32()?;
                ntlm.skip(8 + 2)?;
                let key_len = usize::from(ntlm.u8()?);
                let byte_count = ntlm.u16()?;
                if capabilities & 0x8000_0000 == 0 {
                    ntlm.skip(key_len)?;
                    let at = ntlm.at();
                    self.string(&mut ntlm, unicode, at).map(|_| ())
                } else {
                    ntlm.skip(16)?;
                    let len = i64::from(byte_count) - 16;
                    let len =
                        usize::try_from(len).map_err(|_| SmbError::InvalidLength { what: "security_blob", len })?;
                    let blob = ntlm.bytes(len)?;
                    self.events.push(Event::SecurityBlob { blob, is_orig: false });
                    Ok(())
                }
            }
            n => Err(SmbError::InvalidCase { what: "SMB1_negotiate_response", index: i64::from(n) }),
        }
    }

    /// `SMB1_session_setup_andx_request` and `_response`: the variants by word count; the extended security ones
    /// forward their blob once the whole record, chained commands included, has parsed.
    fn session_setup(&mut self, pos: usize, offset: usize, is_orig: bool, depth: u8) -> Result<(), SmbError> {
        let what = if is_orig { "SMB1_session_setup_andx_request" } else { "SMB1_session_setup_andx_response" };
        let mut r = self.record(pos, what);
        let word_count = r.u8()?;
        let unicode = self.h.unicode();
        // The variants' strings are at their offset in the variant plus one (the word count).
        let sub = offset + 1;
        let mut v = self.record(r.pos(), what);
        let string = |p: &Self, v: &mut Reader<'a>| {
            let at = v.at() + 1;
            p.string(v, unicode, at)
        };
        match (is_orig, word_count) {
            (true, 0x0a) => {
                let andx = andx(&mut v)?;
                v.skip(2 + 2 + 2 + 4)?;
                let password_len = usize::from(v.u16()?);
                v.skip(4 + 2)?;
                v.skip(password_len)?;
                for _ in 0..4 {
                    string(self, &mut v)?; // account name, primary domain, native OS, native LAN manager
                }
                self.andx_tail(&mut v, andx, sub, true, depth)
            }
            (true, 0x0c) => {
                let andx = andx(&mut v)?;
                v.skip(2 + 2 + 2 + 4)?;
                let blob_len = usize::from(v.u16()?);
                v.skip(4 + 4 + 2)?;
                let blob = v.bytes(blob_len)?;
                string(self, &mut v)?;
                string(self, &mut v)?;
                self.andx_tail(&mut v, andx, sub, true, depth)?;
                self.events.push(Event::SecurityBlob { blob, is_orig: true });
                Ok(())
            }
            (true, 0x0d) => {
                let andx = andx(&mut v)?;
                v.skip(2 + 2 + 2 + 4)?;
                let insensitive = usize::from(v.u16()?);
                let sensitive = usize::from(v.u16()?);
                v.skip(4 + 4 + 2)?;
                v.skip(insensitive)?;
                v.skip(sensitive)?;
                for _ in 0..4 {
                    string(self, &mut v)?;
                }
                self.andx_tail(&mut v, andx, sub, true, depth)
            }
            (true, n) => Err(SmbError::InvalidCase { what, index: i64::from(n) }),
            (false, 0x03) => {
                let andx = andx(&mut v)?;
                v.skip(2)?;
                let byte_count = v.u16()?;
                if byte_count != 0 {
                    for _ in 0..3 {
                        string(self, &mut v)?;
                    }
                }
                self.andx_tail(&mut v, andx, sub, false, depth)
            }
            (false, 0x04) => {
                let andx = andx(&mut v)?;
                v.skip(2)?;
                let blob_len = usize::from(v.u16()?);
                v.skip(2)?;
                let blob = v.bytes(blob_len)?;
                string(self, &mut v)?;
                string(self, &mut v)?;
                self.andx_tail(&mut v, andx, sub, false, depth)?;
                self.events.push(Event::SecurityBlob { blob, is_orig: false });
                Ok(())
            }
            // `error: uint16`.
            (false, _) => v.skip(2),
        }
    }

    fn tree_connect_request(&mut self, pos: usize, offset: usize, depth: u8) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_tree_connect_andx_request");
        r.skip(1)?;
        let andx = andx(&mut r)?;
        r.skip(2)?; // flags
        let password_len = usize::from(r.u16()?);
        r.skip(2)?;
        r.skip(password_len)?;
        let at = r.at();
        let path = self.string(&mut r, self.h.unicode(), at)?;
        let service = self.string(&mut r, false, 0)?;
        self.andx_tail(&mut r, andx, offset, true, depth)?;
        self.events.push(Event::TreeConnectRequest { path, service });
        Ok(())
    }

    fn tree_connect_response(&mut self, pos: usize, offset: usize, depth: u8) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_tree_connect_andx_response");
        let word_count = usize::from(r.u8()?);
        let andx = andx(&mut r)?;
        if word_count >= 3 {
            // optional support, and the words past the third
            r.skip(2 + (word_count - 3) * 2)?;
        }
        let byte_count = usize::from(r.u16()?);
        let service_at = r.pos();
        let service = self.string(&mut r, false, 0)?;
        let service_len = r.pos() - service_at;
        let native_file_system = if byte_count > service_len {
            let at = r.at();
            Some(self.string(&mut r, self.h.unicode(), at)?)
        } else {
            None
        };
        self.andx_tail(&mut r, andx, offset, false, depth)?;
        self.events.push(Event::TreeConnectResponse { service, native_file_system });
        Ok(())
    }

    fn nt_create_request(&mut self, pos: usize, offset: usize, depth: u8) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_nt_create_andx_request");
        r.skip(1)?;
        let andx = andx(&mut r)?;
        // reserved, name length, flags, root directory, access, allocation size, attributes, share access,
        // disposition, options, impersonation, security flags, byte count
        r.skip(1 + 2 + 4 + 4 + 4 + 8 + 4 + 4 + 4 + 4 + 4 + 1 + 2)?;
        let at = r.at();
        let name = self.string(&mut r, self.h.unicode(), at)?;
        self.andx_tail(&mut r, andx, offset, true, depth)?;
        self.events.push(Event::NtCreateRequest { name });
        Ok(())
    }

    fn nt_create_response(&mut self, pos: usize, offset: usize, depth: u8) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_nt_create_andx_response");
        r.skip(1)?;
        let andx = andx(&mut r)?;
        r.skip(1)?; // oplock level
        let fid = r.u16()?;
        r.skip(4)?; // disposition
        let created = r.u64()?;
        let accessed = r.u64()?;
        let modified = r.u64()?;
        let changed = r.u64()?;
        r.skip(4 + 8)?; // attributes, allocation size
        let size = r.u64()?;
        r.skip(2 + 2 + 1 + 2)?; // resource type, pipe status, directory, byte count
        self.andx_tail(&mut r, andx, offset, false, depth)?;
        let times = MacTimes {
            modified: filetime(modified),
            accessed: filetime(accessed),
            created: filetime(created),
            changed: filetime(changed),
        };
        self.events.push(Event::NtCreateResponse { fid, size, times });
        Ok(())
    }

    fn read_request(&mut self, pos: usize, offset: usize, depth: u8) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_read_andx_request");
        let word_count = r.u8()?;
        let andx = andx(&mut r)?;
        let fid = r.u16()?;
        let offset_low = r.u32()?;
        r.skip(2 + 2 + 4 + 2)?; // max count low, min count, max count high, remaining
        let offset_high = if word_count == 0x0c { r.u32()? } else { 0 };
        r.skip(2)?;
        self.andx_tail(&mut r, andx, offset, true, depth)?;
        // `read_offset`: the high part times 0x10000 (not 2^32), as the grammar computes it.
        let high = if offset_high == 0xffff_ffff { 0 } else { u64::from(offset_high) };
        let read_offset = high.wrapping_mul(0x10000).wrapping_add(u64::from(offset_low));
        self.events.push(Event::ReadRequest { fid, offset: read_offset });
        Ok(())
    }

    fn read_response(&mut self, pos: usize, offset: usize, depth: u8) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_read_andx_response");
        r.skip(1)?;
        let andx = andx(&mut r)?;
        r.skip(2 + 2 + 2)?; // available, compaction mode, reserved
        let len_low = r.u16()?;
        let data_offset = r.u16()?;
        let len_high = r.u16()?;
        r.skip(8 + 2)?;
        r.pad_to(Some(u64::from(data_offset.saturating_sub(HEADER_LEN as u16))))?;
        let data =
            data_field(&mut r, usize::from(len_high) << 16 | usize::from(len_low), "SMB1_read_andx_response:data")?;
        self.andx_tail(&mut r, andx, offset, false, depth)?;
        if self.is_pipe {
            self.events.push(Event::PipeData { data, is_orig: false });
        }
        self.events.push(Event::ReadResponse { data });
        Ok(())
    }

    fn write_request(&mut self, pos: usize, offset: usize, depth: u8) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_write_andx_request");
        let word_count = r.u8()?;
        let andx = andx(&mut r)?;
        let fid = r.u16()?;
        let offset_low = r.u32()?;
        r.skip(4 + 2 + 2)?; // timeout, write mode, remaining
        let len_high = r.u16()?;
        let len_low = r.u16()?;
        let data_offset = r.u16()?;
        let offset_high = if word_count == 0x0e { r.u32()? } else { 0 };
        r.skip(2)?;
        r.pad_to(Some(u64::from(data_offset.saturating_sub(HEADER_LEN as u16))))?;
        let data =
            data_field(&mut r, usize::from(len_high) << 16 | usize::from(len_low), "SMB1_write_andx_request:data")?;
        self.andx_tail(&mut r, andx, offset, true, depth)?;
        if self.is_pipe {
            self.events.push(Event::PipeData { data, is_orig: true });
        }
        let write_offset = u64::from(offset_high).wrapping_mul(0x10000).wrapping_add(u64::from(offset_low));
        self.events.push(Event::WriteRequest { fid, offset: write_offset, data });
        Ok(())
    }

    fn write_response(&mut self, pos: usize, offset: usize, depth: u8) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_write_andx_response");
        r.skip(1)?;
        let andx = andx(&mut r)?;
        r.skip(2 * 4 + 2)?;
        self.andx_tail(&mut r, andx, offset, false, depth)
    }

    /// `SMB1_transaction_request`: its data runs to the end of the message and goes to DCE_RPC when the name is a
    /// `\PIPE\` one (not `\PIPE\LANMAN`); whether the transaction went to a pipe is kept for its response.
    fn transaction_request(&mut self, pos: usize) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_transaction_request");
        r.skip(1 + 2 * 4 + 1 + 1 + 2 + 4 + 2)?;
        let param_count = usize::from(r.u16()?);
        let param_offset = r.u16()?;
        r.skip(2)?; // data count
        let data_offset = r.u16()?;
        let setup_count = usize::from(r.u8()?);
        r.skip(1)?;
        r.skip(setup_count * 2)?;
        r.skip(2)?;
        let unicode = self.h.unicode();
        let at = r.at();
        let name_at = r.pos();
        self.string(&mut r, unicode, at)?;
        let raw_name = self.msg.get(name_at + if unicode { at & 1 } else { 0 }..r.pos()).unwrap_or_default();
        r.pad_to(Some(u64::from(param_offset.saturating_sub(HEADER_LEN as u16))))?;
        r.skip(param_count)?;
        r.pad_to(Some(u64::from(data_offset.saturating_sub(HEADER_LEN as u16))))?;
        let data = self.msg.get(r.pos()..self.end.max(r.pos()));
        let kind = transaction_type(raw_name, unicode);
        let is_pipe = kind == TransactionType::Pipe || (kind == TransactionType::Unknown && self.is_pipe);
        if self.file_a_pipe.len() >= MAX_PENDING {
            self.file_a_pipe.clear();
        }
        self.file_a_pipe.insert(self.h.mid, is_pipe);
        if kind == TransactionType::Pipe {
            self.events.push(Event::PipeData { data, is_orig: true });
        }
        Ok(())
    }

    /// `SMB1_transaction2_request`: the fixed fields with one setup word (the subcommand), then the parameters of
    /// the subcommands the grammar knows, read from the parameter offset.
    fn transaction2_request(&mut self, pos: usize) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_transaction2_request");
        r.skip(1 + 2 * 4 + 1 + 1 + 2 + 4 + 2 + 2)?;
        let param_offset = r.u16()?;
        r.skip(2 + 2 + 1 + 1)?;
        let sub_cmd = r.u16()?;
        r.skip(2)?;
        r.pad_to(Some(u64::from(param_offset.saturating_sub(HEADER_LEN as u16))))?;
        let unicode = self.h.unicode();
        // Each subcommand's parameters are a record of their own, the string's offset counted from its start.
        let mut params = self.record(r.pos(), "SMB1_transaction2_request:parameters");
        let before_name = match sub_cmd {
            0x0001 => 12,                    // FIND_FIRST2: attributes, count, flags, level, storage type
            0x0005 => 6,                     // QUERY_PATH_INFORMATION: level, reserved
            0x0010 => 2,                     // GET_DFS_REFERRAL: max referral level
            0x0007 => return params.skip(4), // QUERY_FILE_INFORMATION: file id, level
            _ => return Ok(()),
        };
        params.skip(before_name)?;
        self.string(&mut params, unicode, before_name).map(|_| ())
    }

    fn transaction_response(&mut self, pos: usize) -> Result<(), SmbError> {
        let mut r = self.record(pos, "SMB1_transaction_response");
        r.skip(1 + 2 * 3)?;
        let param_count = usize::from(r.u16()?);
        let param_offset = r.u16()?;
        r.skip(2)?;
        let data_count = r.u16()?;
        let data_offset = r.u16()?;
        r.skip(2)?;
        let setup_count = usize::from(r.u8()?);
        r.skip(1)?;
        r.skip(setup_count * 2)?;
        r.skip(2)?;
        // `get_is_file_a_pipe` forgets the request.
        let is_pipe = self.file_a_pipe.remove(&self.h.mid).unwrap_or(false);
        r.pad_to(Some(u64::from(param_offset.saturating_sub(HEADER_LEN as u16))))?;
        r.skip(param_count)?;
        r.pad_to(Some(u64::from(data_offset.saturating_sub(HEADER_LEN as u16))))?;
        if data_count > 0 && is_pipe {
            let data = self.msg.get(r.pos()..self.end.max(r.pos()));
            self.events.push(Event::PipeData { data, is_orig: false });
        }
        Ok(())
    }
}

/// A read's or write's `data: bytestring &length=data_len`, placed after a padding: binpac names the field and
/// counts what it needs and has from the field's start.
fn data_field<'a>(r: &mut Reader<'a>, len: usize, what: &'static str) -> Result<Option<&'a [u8]>, SmbError> {
    let field = Reader::new(r.message(), r.end(), r.pos(), what);
    field.check(len)?;
    r.data(len)
}

fn andx(r: &mut Reader) -> Result<AndX, SmbError> {
    let command = r.u8()?;
    r.skip(1)?;
    Ok(AndX { command, offset: r.u16()? })
}

/// `extract_string` of an ASCII string: its bytes less a final NUL.
fn ascii(s: &[u8]) -> Text {
    let bytes = s.strip_suffix(&[0]).unwrap_or(s);
    Text { bytes: bytes.to_vec(), failed: false }
}

/// smb-common.pac's `TransactionType`, as far as the analysis tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransactionType {
    Pipe,
    Rap,
    Unknown,
}

/// `determine_transaction_type`: `\PIPE\` starts a pipe's name (`\PIPE\LANMAN` is RAP); the UTF-16 form is checked
/// at every other byte, as the grammar does, and only where the string is long enough.
fn transaction_type(name: &[u8], unicode: bool) -> TransactionType {
    let (step, pipe_min, lanman_min) = if unicode { (2, 11, 23) } else { (1, 6, 12) };
    let matches =
        |from: usize, word: &[u8]| word.iter().enumerate().all(|(i, c)| name.get((from + i) * step) == Some(c));
    if name.len() < pipe_min || !matches(0, b"\\PIPE\\") {
        return TransactionType::Unknown;
    }
    if name.len() >= lanman_min && matches(6, b"LANMAN") { TransactionType::Rap } else { TransactionType::Pipe }
}

/// The record `c$smb_state$current_file` refers to: one filed under a file id (the filing's serial), or a command's
/// own (an NT create request's before its response files it, a closed file's), found through its multiplex id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CurrentFile {
    Filed { fid: u64, serial: u64 },
    OfCommand(u64),
}

impl State {
    /// A read response's data goes to `c$smb_state$current_file` (`get_file_handle`), which smb1_message does not
    /// set: the file of the last NT create, read, write or close handled, whichever command this response answers.
    fn smb1_current_file_data(&mut self, ctx: &mut Ctx, mid: u64, cmd: &mut Cmd, offset: u64, data: &[u8]) {
        match self.smb1_current_file {
            Some(CurrentFile::Filed { fid, serial }) => {
                let mut current = Cmd { file: Ref::Filed(fid), tree: None, create_options: 0, file_serial: serial };
                self.file_data(ctx, &mut current, offset, data, false);
            }
            Some(CurrentFile::OfCommand(of)) if of == mid => self.file_data(ctx, cmd, offset, data, false),
            Some(CurrentFile::OfCommand(of)) => {
                if let Some(mut other) = self.pending.remove(&of) {
                    self.file_data(ctx, &mut other, offset, data, false);
                    self.pending.insert(of, other);
                }
            }
            None => {}
        }
    }

    /// The command's file, filed under `fid` by `set_current_file`, becomes the current file.
    fn smb1_set_current_filed(&mut self, cmd: &Cmd, fid: u64) {
        self.smb1_current_file = Some(CurrentFile::Filed { fid, serial: cmd.file_serial });
    }

    /// smb1-main.zeek's `smb1_message` at priority 5: the header's tree filed if new, the command of the multiplex
    /// id (a new one refers to the header's tree and a fresh file).
    pub(super) fn begin_smb1(&mut self, ts: f64, h: &Header) -> Cmd {
        // Requests never answered are bounded as SMB2's are (`SMB::max_pending_messages`): the state is cleared.
        if self.pending.len() >= MAX_PENDING {
            self.clear();
        }
        let tid = u32::from(h.tid);
        if self.tid_map.len() >= MAX_PENDING && !self.tid_map.contains_key(&tid) {
            self.tid_map.clear();
        }
        self.tid_map.entry(tid).or_insert_with(|| TreeInfo::new(ts));
        self.pending.remove(&u64::from(h.mid)).unwrap_or_else(|| Cmd {
            file: Ref::Own(FileInfo::new(ts)),
            tree: Some(Ref::Filed(tid)),
            create_options: 0,
            file_serial: 0,
        })
    }

    /// At priority -5 a response forgets its command; a request's stays pending.
    pub(super) fn end_smb1(&mut self, h: &Header, is_orig: bool, cmd: Cmd) {
        if is_orig {
            self.pending.insert(u64::from(h.mid), cmd);
        }
    }

    /// The current tree's path (`c$smb_state$current_tree`, the header's tree).
    fn current_tree_path(&self, h: &Header) -> Option<String> {
        self.tid_map.get(&u32::from(h.tid)).and_then(|t| t.path.clone())
    }

    /// One event's handlers in smb1-main.zeek (and the analyzer's own work for it).
    /// `is_pipe` is the header's: whether its tree was a pipe when the message began.
    pub(super) fn smb1_event(&mut self, ctx: &mut Ctx, h: &Header, is_pipe: bool, cmd: &mut Cmd, event: Event) {
        let tid = u32::from(h.tid);
        match event {
            Event::SecurityBlob { blob, is_orig } => self.auth.smb_security_blob(ctx, blob, is_orig),
            Event::PipeData { data, is_orig } => self.forward_dce_rpc(ctx, data, 0, is_orig),
            Event::Weird(name) => ctx.weird(name, None, "SMB"),
            Event::TreeConnectRequest { path, service } => {
                let mut tree = TreeInfo::new(ctx.ts);
                tree.path = Some(text(ctx, path));
                tree.service = Some(text(ctx, service));
                cmd.tree = Some(Ref::Own(tree));
            }
            Event::TreeConnectResponse { service, native_file_system } => {
                if service.bytes.starts_with(b"IPC") {
                    self.mark_pipe(tid);
                }
                let service = text(ctx, service);
                let native_file_system = native_file_system.map(|t| text(ctx, t)).filter(|s| !s.is_empty());
                let update = |tree: &mut TreeInfo| {
                    if service == "IPC" {
                        tree.share_type = "PIPE".into();
                    }
                    tree.service = Some(service.clone());
                    if native_file_system.is_some() {
                        tree.native_file_system = native_file_system.clone();
                    }
                };
                let tree = match cmd.tree.take() {
                    Some(Ref::Own(mut tree)) => {
                        update(&mut tree);
                        tree
                    }
                    // The request was not seen: the command refers to the tree its own header's tree id filed,
                    // which the handler changes in place before filing it under the response's tree id too.
                    Some(Ref::Filed(other)) => match self.tid_map.get_mut(&other) {
                        Some(filed) => {
                            update(filed);
                            filed.clone()
                        }
                        None => {
                            let mut tree = TreeInfo::new(ctx.ts);
                            update(&mut tree);
                            tree
                        }
                    },
                    None => {
                        let mut tree = TreeInfo::new(ctx.ts);
                        update(&mut tree);
                        tree
                    }
                };
                ctx.log(&MAPPING_LOG, tree.record(ctx));
                self.tid_map.insert(tid, tree);
                cmd.tree = Some(Ref::Filed(tid));
            }
            Event::NtCreateRequest { name } => {
                let raw = name.bytes.clone();
                let name = text(ctx, name);
                if !self.pipes.contains(&tid) && PIPE_FILENAMES.contains(&raw.as_slice()) {
                    // `smb_pipe_connect_heuristic`, raised before the request's event.
                    self.mark_pipe(tid);
                    if let Some(tree) = self.tid_map.get_mut(&tid) {
                        tree.path = Some("<unknown>".into());
                        tree.share_type = "PIPE".into();
                    }
                }
                let mut file = FileInfo::new(ctx.ts);
                file.name = Some(name);
                file.action = Some(Action::FileOpen);
                cmd.file = Ref::Own(file);
                cmd.file_serial = 0;
                self.smb1_current_file = Some(CurrentFile::OfCommand(u64::from(h.mid)));
            }
            Event::NtCreateResponse { fid, size, times } => {
                let fid = u64::from(fid);
                let mut file = match std::mem::replace(&mut cmd.file, Ref::Filed(fid)) {
                    Ref::Own(file) => file,
                    Ref::Filed(other) => self.fid_map.get(&other).cloned().unwrap_or_else(|| FileInfo::new(ctx.ts)),
                };
                file.action = Some(Action::FileOpen);
                file.size = size;
                if times.modified > 0.0 {
                    file.times = Some(times);
                }
                if self.fid_map.len() >= MAX_PENDING && !self.fid_map.contains_key(&fid) {
                    self.fid_map.clear();
                }
                self.next_serial += 1;
                file.serial = self.next_serial;
                cmd.file_serial = file.serial;
                self.fid_map.insert(fid, file.clone());
                self.smb1_set_current_filed(cmd, fid);
                self.write_file_log(ctx, &file);
            }
            Event::ReadRequest { fid, offset } => {
                self.set_current_file(cmd, u64::from(fid), ctx.ts);
                self.smb1_set_current_filed(cmd, u64::from(fid));
                let path = self.current_tree_path(h);
                if let Some(file) = self.referenced_file_mut(cmd) {
                    file.action = Some(Action::FileRead);
                    if file.path.is_none() && path.is_some() {
                        file.path = path;
                    }
                    let file = file.clone();
                    self.write_file_log(ctx, &file);
                }
                if self.read_offsets.len() >= MAX_PENDING {
                    self.read_offsets.clear();
                }
                self.read_offsets.insert(u64::from(h.mid), offset);
            }
            Event::ReadResponse { data } => {
                let data = data.unwrap_or_default();
                if !is_pipe && !data.is_empty() {
                    let offset = self.read_offsets.remove(&u64::from(h.mid)).unwrap_or(0);
                    self.smb1_current_file_data(ctx, u64::from(h.mid), cmd, offset, data);
                }
            }
            Event::WriteRequest { fid, offset, data } => {
                self.set_current_file(cmd, u64::from(fid), ctx.ts);
                self.smb1_set_current_filed(cmd, u64::from(fid));
                let path = self.current_tree_path(h);
                if let Some(file) = self.referenced_file_mut(cmd) {
                    file.action = Some(Action::FileWrite);
                    if file.path.is_none() && path.is_some() {
                        file.path = path;
                    }
                }
                if !is_pipe && let Some(data) = data.filter(|d| !d.is_empty()) {
                    self.file_data(ctx, cmd, offset, data, true);
                }
            }
            Event::CloseRequest { fid } => {
                let fid = u64::from(fid);
                self.set_current_file(cmd, fid, ctx.ts);
                self.smb1_set_current_filed(cmd, fid);
                if let Some(file) = self.referenced_file_mut(cmd) {
                    file.action = Some(Action::FileClose);
                }
                let path = self.current_tree_path(h);
                if let Some(mut file) = self.fid_map.remove(&fid) {
                    if path.is_some() {
                        file.path = path;
                    }
                    self.write_file_log(ctx, &file);
                    // `file_mgr->EndOfFile`: the closed record is still the current file.
                    cmd.file = Ref::Own(file);
                    self.smb1_current_file = Some(CurrentFile::OfCommand(u64::from(h.mid)));
                }
                self.end_file(ctx, cmd, None);
            }
        }
    }
}
