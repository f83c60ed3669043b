//! The SMB2 grammar of Zeek's binpac analyzer (smb2-protocol.pac and smb2-com-*.pac), read from one NBSS message.
//!
//! binpac parses a record field by field and throws `out_of_bound` when a field runs past the end of the NBSS
//! message (its `&length`); the analyzer turns that into a violation. Here each record is read with a [`Reader`]
//! bounded the same way, and yields the values the scripts' events carry. A record's event is raised by its `&let
//! proc`, evaluated once the whole record has parsed: a record that ends out of bounds raises nothing.
//!
//! Offsets in the messages (`path_offset`, `filename_offset`, ...) count from the start of the SMB2 header; binpac
//! reads them as `padding to OFFSET - header.head_length` inside a record that starts after the 64-byte header. A
//! padding whose end is before the current position is empty (the scripts rely on that for `context_offset` 0).

use crate::analyzers::rdp::utf16_to_utf8;

/// The SMB2 header with its protocol id: where a command's record starts.
pub const HEADER_LEN: usize = 64;

/// `STATUS_PENDING`: a response that announces another one for the same message id.
pub const STATUS_PENDING: u32 = 0x0000_0103;
const STATUS_BUFFER_OVERFLOW: u32 = 0x8000_0005;
const STATUS_INVALID_PARAMETER: u32 = 0xc000_000d;
const STATUS_MORE_PROCESSING_REQUIRED: u32 = 0xc000_0016;
const STATUS_NOTIFY_ENUM_DIR: u32 = 0x0000_010c;

/// `smb2_commands`.
pub mod cmd {
    pub const NEGOTIATE: u16 = 0;
    pub const SESSION_SETUP: u16 = 1;
    pub const TREE_CONNECT: u16 = 3;
    pub const TREE_DISCONNECT: u16 = 4;
    pub const CREATE: u16 = 5;
    pub const CLOSE: u16 = 6;
    pub const FLUSH: u16 = 7;
    pub const READ: u16 = 8;
    pub const WRITE: u16 = 9;
    pub const LOCK: u16 = 10;
    pub const IOCTL: u16 = 11;
    pub const CANCEL: u16 = 12;
    pub const ECHO: u16 = 13;
    pub const QUERY_DIRECTORY: u16 = 14;
    pub const CHANGE_NOTIFY: u16 = 15;
    pub const QUERY_INFO: u16 = 16;
    pub const SET_INFO: u16 = 17;
    pub const OPLOCK_BREAK: u16 = 18;
}

/// What stops the parse of a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmbError {
    /// binpac's exception: a violation.
    #[error("Binpac exception: binpac exception: out_of_bound: {what}: {need} > {have}")]
    OutOfBound { what: &'static str, need: usize, have: usize },
    /// binpac's exception for a negative `&length`.
    #[error("Binpac exception: binpac exception: invalid length string: {what}, {len}")]
    InvalidLength { what: &'static str, len: i64 },
    /// A string the log needs lies past the part of an over-long message that is kept: the record is passed over
    /// without an event (binpac, which buffers the whole message, would have read it).
    #[error("string past the kept part of the message")]
    NotKept,
    /// A `case` without a `default` given another value (`ExceptionInvalidCaseIndex`).
    #[error("Binpac exception: binpac exception: invalid index for case: {what}: {index}")]
    InvalidCase { what: &'static str, index: i64 },
}

/// A bounded little-endian reader over one record of a message: `msg` is what is kept of the message (from the
/// protocol id on), `end` the message's whole length, `start` where the record begins.
pub struct Reader<'a> {
    msg: &'a [u8],
    end: usize,
    start: usize,
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(msg: &'a [u8], end: usize, start: usize, what: &'static str) -> Self {
        Reader { msg, end, start, pos: start, what }
    }

    /// The position `n` bytes on, or binpac's `out_of_bound` where that is past the record's end.
    pub fn check(&self, n: usize) -> Result<usize, SmbError> {
        let to = self.pos.saturating_add(n);
        if to > self.end {
            return Err(SmbError::OutOfBound {
                what: self.what,
                need: to - self.start,
                have: self.end.saturating_sub(self.start),
            });
        }
        Ok(to)
    }

    /// `n` bytes that must be at hand (a string the log shows, a fixed field).
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], SmbError> {
        let to = self.check(n)?;
        let got = self.msg.get(self.pos..to).ok_or(SmbError::NotKept)?;
        self.pos = to;
        Ok(got)
    }

    /// `n` bytes of data (read and write data, ioctl buffers): their bounds checked against the message, and the
    /// bytes themselves when they lie in its kept part (`None` past it).
    pub fn data(&mut self, n: usize) -> Result<Option<&'a [u8]>, SmbError> {
        let to = self.check(n)?;
        let got = self.msg.get(self.pos..to);
        self.pos = to;
        Ok(got)
    }

    /// `n` bytes binpac reads but nothing uses (blobs): only their bounds matter.
    pub fn skip(&mut self, n: usize) -> Result<(), SmbError> {
        self.pos = self.check(n)?;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SmbError> {
        let b = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, SmbError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, SmbError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, SmbError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, SmbError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// `padding to target` (`target` counts from the record's start); `None` is a negative target, which wraps to
    /// past any message's end.
    pub fn pad_to(&mut self, target: Option<u64>) -> Result<(), SmbError> {
        let Some(target) = target else {
            return self.skip(usize::MAX / 2);
        };
        let at = self.pos - self.start;
        let target = usize::try_from(target).unwrap_or(usize::MAX / 2);
        if target > at { self.skip(target - at) } else { Ok(()) }
    }

    /// `SMB2_guid` as the scripts key files: `persistent + volatile`.
    pub fn file_id(&mut self) -> Result<u64, SmbError> {
        Ok(self.u64()?.wrapping_add(self.u64()?))
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// What is kept of the message.
    pub fn message(&self) -> &'a [u8] {
        self.msg
    }

    /// Where the record must end.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The position from the record's start (binpac's `offsetof` of the next field).
    pub fn at(&self) -> usize {
        self.pos - self.start
    }

    /// Bytes up to and including the one at which `done` (given the bytes so far) holds: binpac's `&until` array of
    /// `uint8`, whose every element must be in bounds.
    pub fn until(&mut self, mut done: impl FnMut(&[u8]) -> bool) -> Result<&'a [u8], SmbError> {
        let from = self.pos;
        loop {
            self.bytes(1)?;
            let so_far = self.msg.get(from..self.pos).ok_or(SmbError::NotKept)?;
            if done(so_far) {
                return Ok(so_far);
            }
        }
    }
}

/// `padding to X - header.head_length` for a 16-bit X: C's int arithmetic, negative for an offset inside the header.
fn offset16(off: u16, head_length: u16) -> Option<u64> {
    Some(u64::from(off.saturating_sub(head_length)))
}

/// The same for a 32-bit X: unsigned arithmetic, so an offset below `head_length` wraps past the message.
fn offset32(off: u32, head_length: u16) -> Option<u64> {
    off.checked_sub(u32::from(head_length)).map(u64::from)
}

/// `SMB2_Header` (after the protocol id), with what the scripts read of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub head_length: u16,
    pub status: u32,
    pub command: u16,
    pub message_id: u64,
    pub tree_id: u32,
}

pub fn parse_header(msg: &[u8], end: usize) -> Result<Header, SmbError> {
    let mut r = Reader::new(msg, end, 4, "SMB2_Header");
    r.check(HEADER_LEN - 4)?;
    let head_length = r.u16()?;
    let _credit_charge = r.u16()?;
    let status = r.u32()?;
    let command = r.u16()?;
    let _credits = r.u16()?;
    let _flags = r.u32()?;
    let _next_command = r.u32()?;
    let message_id = r.u64()?;
    let _process_id = r.u32()?;
    let tree_id = r.u32()?;
    Ok(Header { head_length, status, command, message_id, tree_id })
}

/// `is_error_response`: whether a response's body is `SMB2_error_response` ([MS-SMB2] 3.3.4.4's exceptions).
pub fn is_error_response(h: &Header, is_orig: bool) -> bool {
    if is_orig {
        return false;
    }
    match h.status {
        0 => false,
        STATUS_BUFFER_OVERFLOW => !matches!(h.command, cmd::IOCTL | cmd::QUERY_INFO | cmd::READ),
        STATUS_INVALID_PARAMETER => h.command != cmd::IOCTL,
        STATUS_MORE_PROCESSING_REQUIRED => h.command != cmd::SESSION_SETUP,
        STATUS_NOTIFY_ENUM_DIR => h.command != cmd::CHANGE_NOTIFY,
        _ => true,
    }
}

/// A UTF-16 string as `smb2_string2stringval` makes it (UTF-8, cut at the first NUL); `failed` where the
/// conversion failed and the raw bytes are kept (`utf16_conversion_failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub bytes: Vec<u8>,
    pub failed: bool,
}

impl Text {
    pub fn from_utf16(raw: &[u8]) -> Text {
        match utf16_to_utf8(raw) {
            Some(bytes) => Text { bytes, failed: false },
            None => Text { bytes: raw.to_vec(), failed: true },
        }
    }
}

/// `SMB::MACTimes` from four FILETIMEs (`filetime2zeektime`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacTimes {
    pub modified: f64,
    pub accessed: f64,
    pub created: f64,
    pub changed: f64,
}

pub fn filetime(ts: u64) -> f64 {
    ts as f64 / 10_000_000.0 - 11_644_473_600.0
}

/// The events of one message's body that the scripts act on, and the data the analyzer hands on (`None` where it
/// lies past the kept part of the message).
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    /// A record without such an event (or an error response).
    Nothing,
    /// A negotiate response's or a session setup request's or response's security blob, which the analyzer
    /// forwards to GSSAPI (the records' `gssapi_proc`, smb-gssapi.pac's `forward_gssapi`); empty where it lies
    /// past the kept part of the message.
    SecurityBlob {
        blob: &'a [u8],
    },
    TreeConnectRequest {
        path: Text,
    },
    TreeConnectResponse {
        share_type: u8,
    },
    TreeDisconnectRequest,
    CreateRequest {
        name: Text,
        create_options: u32,
    },
    CreateResponse {
        fid: u64,
        size: u64,
        times: MacTimes,
    },
    ReadRequest {
        fid: u64,
        offset: u64,
    },
    /// A read response's data (the file id and offset are the request's).
    ReadResponse {
        data: Option<&'a [u8]>,
    },
    WriteRequest {
        fid: u64,
        offset: u64,
        data: Option<&'a [u8]>,
    },
    /// An ioctl request and its input buffer.
    IoctlRequest {
        ctl_code: u32,
        fid: u64,
        input: Option<&'a [u8]>,
    },
    /// An ioctl response and its output buffer (the file id is the request's).
    IoctlResponse {
        ctl_code: u32,
        output: Option<&'a [u8]>,
    },
    CloseRequest {
        fid: u64,
    },
    SetAttributes {
        fid: u64,
    },
    Rename {
        fid: u64,
        name: Text,
    },
    Delete {
        fid: u64,
        pending: bool,
    },
}

/// The record after the header: `SMB2_error_response` or the command's request or response.
pub fn parse_body<'a>(h: &Header, msg: &'a [u8], end: usize, is_orig: bool) -> Result<Body<'a>, SmbError> {
    let record = |what| Reader::new(msg, end, HEADER_LEN, what);
    if is_error_response(h, is_orig) {
        // structure_size, reserved, byte_count; the rest is `&restofdata`.
        record("SMB2_error_response").skip(8)?;
        return Ok(Body::Nothing);
    }
    let hl = h.head_length;
    if is_orig {
        match h.command {
            cmd::NEGOTIATE => negotiate_request(record("SMB2_negotiate_request")),
            cmd::SESSION_SETUP => session_setup(record("SMB2_session_setup_request"), hl, 12),
            cmd::TREE_CONNECT => {
                let mut r = record("SMB2_tree_connect_request");
                r.skip(4)?;
                let (offset, len) = (r.u16()?, r.u16()?);
                r.pad_to(offset16(offset, hl))?;
                Ok(Body::TreeConnectRequest { path: Text::from_utf16(r.bytes(len.into())?) })
            }
            cmd::TREE_DISCONNECT => record("SMB2_tree_disconnect_request").skip(4).map(|_| Body::TreeDisconnectRequest),
            cmd::CREATE => create_request(record("SMB2_create_request"), hl),
            cmd::CLOSE => {
                let mut r = record("SMB2_close_request");
                r.skip(8)?;
                Ok(Body::CloseRequest { fid: r.file_id()? })
            }
            cmd::FLUSH => fixed(record("SMB2_flush_request"), 24),
            cmd::READ => {
                let mut r = record("SMB2_read_request");
                r.skip(8)?;
                let offset = r.u64()?;
                let fid = r.file_id()?;
                r.skip(12)?;
                let (channel_offset, channel_len) = (r.u16()?, r.u16()?);
                r.pad_to(offset16(channel_offset, hl))?;
                r.skip(channel_len.into())?;
                Ok(Body::ReadRequest { fid, offset })
            }
            cmd::WRITE => {
                let mut r = record("SMB2_write_request");
                r.skip(2)?;
                let (data_offset, len) = (r.u16()?, r.u32()?);
                let offset = r.u64()?;
                let fid = r.file_id()?;
                r.skip(16)?;
                r.pad_to(offset16(data_offset, hl))?;
                let data = r.data(len as usize)?;
                Ok(Body::WriteRequest { fid, offset, data })
            }
            cmd::LOCK => {
                let mut r = record("SMB2_lock_request");
                r.skip(2)?;
                let count = r.u16()?;
                r.skip(20)?;
                r.skip(usize::from(count) * 20)?;
                Ok(Body::Nothing)
            }
            cmd::IOCTL => ioctl(record("SMB2_ioctl_request"), hl, true),
            cmd::CANCEL | cmd::ECHO => fixed(record("SMB2_echo_request"), 4),
            cmd::QUERY_DIRECTORY => buffer_at(record("SMB2_query_directory_request"), hl, 24, false, 4),
            cmd::CHANGE_NOTIFY => fixed(record("SMB2_change_notify_request"), 32),
            cmd::QUERY_INFO => {
                // input_buffer_offset, reserved, then input_buffer_len.
                let mut r = record("SMB2_query_info_request");
                r.skip(8)?;
                let offset = r.u16()?;
                r.skip(2)?;
                let len = r.u32()?;
                r.skip(24)?;
                r.pad_to(offset16(offset, hl))?;
                r.skip(len as usize)?;
                Ok(Body::Nothing)
            }
            cmd::SET_INFO => set_info_request(record("SMB2_set_info_request"), hl),
            cmd::OPLOCK_BREAK => fixed(record("SMB2_oplock_break"), 24),
            _ => Ok(Body::Nothing),
        }
    } else {
        match h.command {
            cmd::NEGOTIATE => negotiate_response(record("SMB2_negotiate_response"), hl),
            cmd::SESSION_SETUP => session_setup(record("SMB2_session_setup_response"), hl, 4),
            cmd::TREE_CONNECT => {
                let mut r = record("SMB2_tree_connect_response");
                r.check(16)?;
                r.skip(2)?;
                Ok(Body::TreeConnectResponse { share_type: r.u8()? })
            }
            cmd::TREE_DISCONNECT | cmd::FLUSH | cmd::LOCK | cmd::ECHO => fixed(record("SMB2_echo_response"), 4),
            cmd::CREATE => create_response(record("SMB2_create_response"), hl),
            cmd::CLOSE => fixed(record("SMB2_close_response"), 60),
            cmd::READ => {
                let mut r = record("SMB2_read_response");
                r.skip(2)?;
                let (data_offset, len) = (r.u16()?, r.u32()?);
                r.skip(8)?;
                r.pad_to(offset16(data_offset, hl))?;
                Ok(Body::ReadResponse { data: r.data(len as usize)? })
            }
            cmd::WRITE => fixed(record("SMB2_write_response"), 16),
            cmd::IOCTL => ioctl(record("SMB2_ioctl_response"), hl, false),
            cmd::QUERY_DIRECTORY | cmd::CHANGE_NOTIFY | cmd::QUERY_INFO => {
                buffer_at(record("SMB2_query_info_response"), hl, 2, true, 0)
            }
            cmd::SET_INFO => fixed(record("SMB2_set_info_response"), 2),
            cmd::OPLOCK_BREAK => fixed(record("SMB2_oplock_break"), 24),
            _ => Ok(Body::Nothing),
        }
    }
}

/// `SMB2_ioctl_request` and `SMB2_ioctl_response` (the request has `max_input_resp` and `max_output_resp` more).
/// The pads before the buffers are binpac's `&length` expressions as smb2-com-ioctl.pac writes them: 0 for an
/// offset of 0 (or, before the output, the input's offset), else the record's position from the header's start
/// minus the offset, which is 0 where the buffer follows directly and negative (an exception) where it starts
/// later.
fn ioctl<'a>(mut r: Reader<'a>, hl: u16, request: bool) -> Result<Body<'a>, SmbError> {
    r.skip(4)?;
    let ctl_code = r.u32()?;
    let fid = r.file_id()?;
    let (input_offset, input_count) = (r.u32()?, r.u32()?);
    if request {
        r.skip(4)?;
    }
    let (output_offset, output_count) = (r.u32()?, r.u32()?);
    if request {
        r.skip(4)?;
    }
    r.skip(8)?;
    let pad = |r: &Reader, field: &'static str, offset: u32| -> Result<usize, SmbError> {
        let at = (r.pos() - r.start) as i64 + i64::from(hl);
        let len = at - i64::from(offset);
        usize::try_from(len).map_err(|_| SmbError::InvalidLength { what: field, len })
    };
    if input_offset != 0 {
        let n = pad(&r, if request { "SMB2_ioctl_request:pad1" } else { "SMB2_ioctl_response:pad1" }, input_offset)?;
        r.skip(n)?;
    }
    let input = r.data(input_count as usize)?;
    if output_offset != 0 && output_offset != input_offset {
        let n = pad(&r, if request { "SMB2_ioctl_request:pad2" } else { "SMB2_ioctl_response:pad2" }, output_offset)?;
        r.skip(n)?;
    }
    let output = r.data(output_count as usize)?;
    Ok(if request { Body::IoctlRequest { ctl_code, fid, input } } else { Body::IoctlResponse { ctl_code, output } })
}

/// A record of fixed fields only.
fn fixed<'a>(mut r: Reader, len: usize) -> Result<Body<'a>, SmbError> {
    r.skip(len)?;
    Ok(Body::Nothing)
}

/// A record with a buffer placed by a 16-bit offset: `before` bytes, the offset, the length (16 or 32 bits wide),
/// `after` more bytes, the padding and the buffer.
fn buffer_at<'a>(mut r: Reader, hl: u16, before: usize, wide: bool, after: usize) -> Result<Body<'a>, SmbError> {
    r.skip(before)?;
    let offset = r.u16()?;
    let len = if wide { r.u32()? as usize } else { usize::from(r.u16()?) };
    r.skip(after)?;
    r.pad_to(offset16(offset, hl))?;
    r.skip(len)?;
    Ok(Body::Nothing)
}

/// `SMB2_session_setup_request` (`before` = 12) and `SMB2_session_setup_response` (4): fixed fields, the security
/// blob's offset and length, the padding and the blob.
fn session_setup<'a>(mut r: Reader<'a>, hl: u16, before: usize) -> Result<Body<'a>, SmbError> {
    r.skip(before)?;
    let (offset, len) = (r.u16()?, r.u16()?);
    r.pad_to(offset16(offset, hl))?;
    Ok(Body::SecurityBlob { blob: r.bytes(len.into())? })
}

fn negotiate_request<'a>(mut r: Reader) -> Result<Body<'a>, SmbError> {
    r.skip(2)?;
    let dialects = r.u16()?;
    r.skip(32)?;
    r.skip(usize::from(dialects) * 2)?;
    Ok(Body::Nothing)
}

fn negotiate_response<'a>(mut r: Reader<'a>, hl: u16) -> Result<Body<'a>, SmbError> {
    r.skip(4)?;
    let dialect = r.u16()?;
    let contexts = r.u16()?;
    r.skip(48)?;
    let _security_offset = r.u16()?;
    let security_len = r.u16()?;
    let context_offset = r.u32()?;
    // The blob is forwarded once the whole record has parsed (`gssapi_proc`, a `&let`).
    let blob = r.data(security_len.into())?.unwrap_or_default();
    if dialect != 0x0311 {
        return Ok(Body::SecurityBlob { blob });
    }
    r.pad_to(offset32(context_offset, hl))?;
    // `NegotiateContextList`: each value but the last padded to 8 bytes from its own start.
    for i in 0..contexts {
        let start = r.pos();
        negotiate_context(&mut r)?;
        if i + 1 < contexts {
            let len = r.pos() - start;
            r.skip((8 - len % 8) % 8)?;
        }
    }
    Ok(Body::SecurityBlob { blob })
}

/// `SMB3_negotiate_context_value`: the known types' data is parsed as its fields say, not by `data_length`.
fn negotiate_context(r: &mut Reader) -> Result<(), SmbError> {
    let context_type = r.u16()?;
    let data_len = r.u16()?;
    r.skip(4)?;
    match context_type {
        1 => {
            let (algs, salt) = (r.u16()?, r.u16()?);
            r.skip(usize::from(algs) * 2 + usize::from(salt))
        }
        2 => {
            let ciphers = r.u16()?;
            r.skip(usize::from(ciphers) * 2)
        }
        3 => {
            let algs = r.u16()?;
            r.skip(6)?;
            r.skip(usize::from(algs) * 2)
        }
        _ => r.skip(data_len.into()),
    }
}

fn create_request<'a>(mut r: Reader, hl: u16) -> Result<Body<'a>, SmbError> {
    r.skip(40)?;
    let create_options = r.u32()?;
    let (name_offset, name_len) = (r.u16()?, r.u16()?);
    let (context_offset, context_len) = (r.u32()?, r.u32()?);
    r.pad_to(offset16(name_offset, hl))?;
    let name = Text::from_utf16(r.bytes(name_len.into())?);
    r.pad_to(if context_offset == 0 { Some(0) } else { offset32(context_offset, hl) })?;
    r.skip(context_len as usize)?;
    Ok(Body::CreateRequest { name, create_options })
}

fn create_response<'a>(mut r: Reader, hl: u16) -> Result<Body<'a>, SmbError> {
    r.skip(8)?;
    let created = r.u64()?;
    let accessed = r.u64()?;
    let modified = r.u64()?;
    let changed = r.u64()?;
    let _alloc_size = r.u64()?;
    let size = r.u64()?;
    r.skip(8)?;
    let fid = r.file_id()?;
    let (context_offset, context_len) = (r.u32()?, r.u32()?);
    r.pad_to(if context_offset == 0 { Some(0) } else { offset32(context_offset, hl) })?;
    r.skip(context_len as usize)?;
    let times = MacTimes {
        modified: filetime(modified),
        accessed: filetime(accessed),
        created: filetime(created),
        changed: filetime(changed),
    };
    Ok(Body::CreateResponse { fid, size, times })
}

/// `SMB2_set_info_request`: file information of the classes the scripts log (basic, rename, disposition) raise
/// their events; the other classes are parsed for their bounds.
fn set_info_request<'a>(mut r: Reader, hl: u16) -> Result<Body<'a>, SmbError> {
    r.skip(2)?;
    let (info_class, info_level) = (r.u8()?, r.u8()?);
    let _len = r.u32()?;
    let offset = r.u16()?;
    r.skip(6)?;
    let fid = r.file_id()?;
    r.pad_to(offset16(offset, hl))?;
    match (info_class, info_level) {
        // SMB2_FILE_BASIC_INFO: four timestamps and the attributes.
        (1, 0x04) => r.skip(36).map(|_| Body::SetAttributes { fid }),
        (1, 0x0a) | (1, 0x0b) => {
            r.skip(16)?;
            let len = r.u32()?;
            let name = Text::from_utf16(r.bytes(len as usize)?);
            Ok(if info_level == 0x0a { Body::Rename { fid, name } } else { Body::Nothing })
        }
        (1, 0x0d) => Ok(Body::Delete { fid, pending: r.u8()? > 0 }),
        (1, 0x13 | 0x14 | 0x0e | 0x27) => fixed(r, 8),
        (1, 0x10) => fixed(r, 4),
        (1, 0x18) => fixed(r, 8),
        (1, 0x28) => {
            let len = r.u32()?;
            fixed(r, len as usize)
        }
        (1, 0x0f) => {
            // `SMB2_file_fullea_info_element`s until one's next offset is 0.
            loop {
                let start = r.pos();
                let next = r.u32()?;
                r.skip(1)?;
                let name_len = r.u8()?;
                let value_len = r.u16()?;
                r.skip(usize::from(name_len) + usize::from(value_len))?;
                let target = next as usize;
                let at = r.pos() - start;
                if target > at {
                    r.skip(target - at)?;
                }
                if next == 0 {
                    break Ok(Body::Nothing);
                }
            }
        }
        (2, 0x06) => fixed(r, 48),
        (2, 0x08) => fixed(r, 64),
        _ => Ok(Body::Nothing),
    }
}
