//! DNP3 over TCP (tcp 20000) to dnp3.log, as Zeek's analyzer (src/analyzer/protocol/dnp3/DNP3.cc with its binpac
//! grammar dnp3-protocol.pac and dnp3-analyzer.pac) and base/protocols/dnp3/main.zeek and consts.zeek do it.
//!
//! DNP3.cc undoes the serial framing itself, per direction. A frame starts with a 10-byte link header (`05 64`, a
//! length counting the control, addresses and user data, control, destination, source, CRC) and the transport byte;
//! the user data follows in blocks of at most 16 bytes, each with its CRC. The start bytes are checked first (a
//! weird, `dnp3_header_lacks_magic`, and the analyzer skips the rest of the connection), then the header's CRC (a
//! weird and a violation, `broken_checksum`); a good header confirms. A frame without user data (length 5) is passed
//! over, and so is the rest of that delivery (DNP3.cc returns there). A block whose CRC is wrong, a length of 0 or
//! one below 5, or a continuation without the fragment's first frame end the analysis with a weird at most (no
//! violation). The transport byte's FIR and FIN flags join frames into one application fragment: the first frame's
//! link header and the blocks' data without the transport bytes go to binpac, which parses the fragment when its
//! FIN frame arrives. The log needs only the application header: control and function code for a request
//! (originator), control, function code and the 16-bit internal indications for a response (responder). A fragment
//! too short for its header is binpac's `out_of_bound`, a violation after which nothing more is parsed.
//!
//! The script keeps one `c$dnp3` per connection: a request sets its `ts` and `fc_request`; a response sets `ts`,
//! `fc_reply` and `iin` and writes it; what is left when the connection ends is written then.

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};
use crate::logs::{Schema, Value, conn_fields, f};

pub static DNP3_LOG: Schema = Schema {
    path: "dnp3",
    fields: conn_fields![f("fc_request", "string"), f("fc_reply", "string"), f("iin", "count")],
};

/// Zeek's `DNP3_TCP` analyzer: conn.log's service is its name, lowercased. main.zeek also lists 20000/udp, but hands
/// it to this TCP analyzer, which does nothing with datagrams: UDP is not analysed.
pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "dnp3_tcp",
    tcp_ports: &[20000],
    udp_ports: &[],
    detect: None,
    new: |_| Box::<Dnp3>::default(),
    schemas: &[&DNP3_LOG],
};

/// The link header with its CRC, and the transport byte: what DNP3.cc buffers before it looks at a frame.
const HEADER_AND_TRANSPORT: usize = 11;
/// The link header without its CRC: what binpac gets of a fragment's first frame.
const LINK_HEADER: usize = 8;
/// User data comes in blocks of this many bytes, each followed by its CRC.
const BLOCK: usize = 16;
/// The link length of a frame without transport and application layers.
const LINK_ONLY: u8 = 5;
/// The application header's bytes binpac reads for a response (a request's are the first two).
const RESPONSE_HEADER: usize = 4;

/// weird.log's `source`: the analyzer's name.
const WEIRD_SOURCE: &str = "DNP3_TCP";

const FIR: u8 = 0x40;
const FIN: u8 = 0x80;
/// The control byte's direction bit: set in frames from the master (the originator, as DNP3.cc expects).
const DIR: u8 = 0x80;

/// What ends the analysis: a violation (binpac's exceptions, a broken header CRC) or DNP3.cc's giving up with a weird
/// or an analyzer error only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dnp3Error {
    #[error("broken_checksum")]
    BrokenChecksum,
    #[error("Binpac exception: binpac exception: out_of_bound: {0}")]
    OutOfBound(&'static str),
    /// DNP3.cc returns false (`SetSkip`) with this weird, or with an analyzer error (`None`): no violation.
    #[error("analysis skipped")]
    Skip(Option<&'static str>),
}

/// The DNP3 CRC (polynomial 0x3D65 reflected, as DNP3.cc's table), complemented.
const CRC_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA6BC } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

pub fn crc(data: &[u8]) -> u16 {
    !data.iter().fold(0u16, |crc, &b| CRC_TABLE[usize::from((crc ^ u16::from(b)) as u8)] ^ (crc >> 8))
}

/// Whether the two bytes after `data` are its CRC, low byte first.
fn crc_ok(data: &[u8], stored: &[u8]) -> bool {
    stored == crc(data).to_le_bytes()
}

/// DNP3.cc's size of a whole frame from its link length: the header, the user data (transport byte included) and a
/// CRC for each started block. `None` where DNP3.cc's signed arithmetic yields less than it already buffered (an
/// analyzer error there).
fn frame_len(link_len: u8) -> Option<usize> {
    let user = i32::from(link_len) - 5;
    let n = HEADER_AND_TRANSPORT as i32 + user + (user / 16) * 2 + if user % 16 == 0 { 0 } else { 2 } - 1;
    usize::try_from(n).ok().filter(|&n| n >= HEADER_AND_TRANSPORT)
}

/// consts.zeek's `function_codes`, with its `&default`.
pub fn function_name(fc: u8) -> String {
    let name = match fc {
        0x00 => "CONFIRM",
        0x01 => "READ",
        0x02 => "WRITE",
        0x03 => "SELECT",
        0x04 => "OPERATE",
        0x05 => "DIRECT_OPERATE",
        0x06 => "DIRECT_OPERATE_NR",
        0x07 => "IMMED_FREEZE",
        0x08 => "IMMED_FREEZE_NR",
        0x09 => "FREEZE_CLEAR",
        0x0a => "FREEZE_CLEAR_NR",
        0x0b => "FREEZE_AT_TIME",
        0x0c => "FREEZE_AT_TIME_NR",
        0x0d => "COLD_RESTART",
        0x0e => "WARM_RESTART",
        0x0f => "INITIALIZE_DATA",
        0x10 => "INITIALIZE_APPL",
        0x11 => "START_APPL",
        0x12 => "STOP_APPL",
        0x13 => "SAVE_CONFIG",
        0x14 => "ENABLE_UNSOLICITED",
        0x15 => "DISABLE_UNSOLICITED",
        0x16 => "ASSIGN_CLASS",
        0x17 => "DELAY_MEASURE",
        0x18 => "RECORD_CURRENT_TIME",
        0x19 => "OPEN_FILE",
        0x1a => "CLOSE_FILE",
        0x1b => "DELETE_FILE",
        0x1c => "GET_FILE_INFO",
        0x1d => "AUTHENTICATE_FILE",
        0x1e => "ABORT_FILE",
        0x1f => "ACTIVATE_CONFIG",
        0x20 => "AUTHENTICATE_REQ",
        0x21 => "AUTHENTICATE_REQ_NR",
        0x81 => "RESPONSE",
        0x82 => "UNSOLICITED_RESPONSE",
        0x83 => "AUTHENTICATE_RESPONSE",
        _ => return format!("unknown-{fc}"),
    };
    name.to_string()
}

/// An application header as binpac reads it from a fragment's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppHeader {
    Request { fc: u8 },
    Response { fc: u8, iin: u16 },
}

/// `DNP3_Application_Request_Header` or `DNP3_Application_Response_Header` at the start of `app` (the objects after
/// it are not parsed: the log does not need them).
pub fn parse_app_header(is_orig: bool, app: &[u8]) -> Result<AppHeader, Dnp3Error> {
    match (is_orig, app) {
        (true, [_control, fc, ..]) => Ok(AppHeader::Request { fc: *fc }),
        (false, [_control, fc, iin1, iin2, ..]) => {
            Ok(AppHeader::Response { fc: *fc, iin: u16::from_be_bytes([*iin1, *iin2]) })
        }
        (true, _) => Err(Dnp3Error::OutOfBound("DNP3_Application_Request_Header")),
        (false, _) => Err(Dnp3Error::OutOfBound("DNP3_Application_Response_Header")),
    }
}

/// One direction: DNP3.cc's `Endpoint`, and the fragment binpac collects (only its first bytes are kept: the
/// application header is all the log reads).
#[derive(Debug, Default)]
struct Endpoint {
    /// The frame so far: at most a whole frame's 292 bytes.
    frame: Vec<u8>,
    /// The header is parsed and the frame's user data is being buffered (`! in_hdr`).
    in_data: bool,
    link_len: u8,
    tpflags: u8,
    /// Frames of the fragment so far (`pkt_cnt`).
    frames: u32,
    encountered_first_chunk: bool,
    /// The fragment's first application bytes, up to a response header's four.
    app_head: Vec<u8>,
}

impl Endpoint {
    /// `ClearEndpointState`: a new fragment starts with the next frame.
    fn clear(&mut self) {
        let frame = std::mem::take(&mut self.frame);
        *self = Endpoint { frame, ..Endpoint::default() };
        self.frame.clear();
    }
}

/// main.zeek's `DNP3::Info`, open between a request and its response.
#[derive(Debug, Default, Clone, PartialEq)]
struct Info {
    ts: f64,
    fc_request: Option<String>,
    fc_reply: Option<String>,
    iin: Option<u16>,
}

impl Info {
    fn record(&self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::opt_str(self.fc_request.clone()),
            Value::opt_str(self.fc_reply.clone()),
            Value::opt_count(self.iin.map(u64::from)),
        ]);
        v
    }
}

#[derive(Default)]
pub struct Dnp3 {
    /// Originator, then responder.
    endpoints: [Endpoint; 2],
    info: Option<Info>,
    confirmed: bool,
    /// DNP3.cc's `SetSkip(true)`: nothing more is analysed.
    skipped: bool,
}

impl Dnp3 {
    /// `ProcessData`: what `data` completes of side `is_orig`'s frames.
    fn process(&mut self, ctx: &mut Ctx, is_orig: bool, mut data: &[u8]) -> Result<(), Dnp3Error> {
        let side = usize::from(!is_orig);
        while !data.is_empty() {
            let endp = &mut self.endpoints[side];
            if !endp.in_data {
                if !fill(&mut endp.frame, HEADER_AND_TRANSPORT, &mut data) {
                    return Ok(());
                }
                let header = &endp.frame[..HEADER_AND_TRANSPORT];
                if header[..2] != [0x05, 0x64] {
                    return Err(Dnp3Error::Skip(Some("dnp3_header_lacks_magic")));
                }
                if !crc_ok(&header[..LINK_HEADER], &header[LINK_HEADER..LINK_HEADER + 2]) {
                    ctx.weird("dnp3_corrupt_header_checksum", None, WEIRD_SOURCE);
                    return Err(Dnp3Error::BrokenChecksum);
                }
                let (link_len, ctrl, tpflags) = (header[2], header[3], header[10]);
                if !self.confirmed {
                    self.confirmed = true;
                    ctx.confirm(SPEC.name);
                }
                if link_len == LINK_ONLY {
                    // DNP3.cc returns here: the rest of this delivery is not looked at.
                    endp.clear();
                    return Ok(());
                }
                if is_orig != (ctrl & DIR != 0) {
                    ctx.weird("dnp3_unexpected_flow_direction", None, WEIRD_SOURCE);
                }
                endp.link_len = link_len;
                endp.tpflags = tpflags;
                endp.in_data = true;
                endp.frames += 1;
            }
            if endp.link_len == 0 {
                return Err(Dnp3Error::Skip(Some("dnp3_negative_or_zero_length_link_layer")));
            }
            let whole = frame_len(endp.link_len).ok_or(Dnp3Error::Skip(None))?;
            if !fill(&mut endp.frame, whole, &mut data) {
                return Ok(());
            }
            if let Some(header) = self.app_layer(is_orig)? {
                self.app_header(ctx, header);
            }
            let endp = &mut self.endpoints[side];
            endp.frame.clear();
            endp.in_data = false;
        }
        Ok(())
    }

    /// `ParseAppLayer` on a whole frame: its blocks' CRCs, their data added to the fragment, and the fragment's
    /// application header once its last frame is in.
    fn app_layer(&mut self, is_orig: bool) -> Result<Option<AppHeader>, Dnp3Error> {
        let endp = &mut self.endpoints[usize::from(!is_orig)];
        // The transport byte leads the user data; blocks are `BLOCK` bytes and a CRC.
        let user = usize::from(endp.link_len).saturating_sub(usize::from(LINK_ONLY));
        let mut blocks = endp.frame.get(HEADER_AND_TRANSPORT - 1..).unwrap_or_default();
        let mut left = user;
        let mut transport = 1;
        while left > 0 {
            let n = left.min(BLOCK);
            let (Some(block), Some(stored)) = (blocks.get(..n), blocks.get(n..n + 2)) else {
                return Err(Dnp3Error::Skip(None));
            };
            if !crc_ok(block, stored) {
                return Err(Dnp3Error::Skip(Some("dnp3_corrupt_app_chunk_checksum")));
            }
            let wanted = RESPONSE_HEADER.saturating_sub(endp.app_head.len());
            let app = block.get(transport..).unwrap_or_default();
            endp.app_head.extend_from_slice(&app[..wanted.min(app.len())]);
            transport = 0;
            blocks = &blocks[n + 2..];
            left -= n;
        }
        if endp.tpflags & FIR != 0 {
            endp.encountered_first_chunk = true;
        }
        if !endp.encountered_first_chunk {
            return Err(Dnp3Error::Skip(Some("dnp3_first_application_layer_chunk_missing")));
        }
        if endp.tpflags & FIN == 0 {
            return Ok(None);
        }
        let header = parse_app_header(is_orig, &endp.app_head);
        endp.clear();
        header.map(Some)
    }

    /// The script's handlers of `dnp3_application_request_header` and `dnp3_application_response_header`.
    fn app_header(&mut self, ctx: &mut Ctx, header: AppHeader) {
        let info = self.info.get_or_insert_with(Info::default);
        info.ts = ctx.ts;
        match header {
            AppHeader::Request { fc } => info.fc_request = Some(function_name(fc)),
            AppHeader::Response { fc, iin } => {
                info.fc_reply = Some(function_name(fc));
                info.iin = Some(iin);
                if let Some(info) = self.info.take() {
                    ctx.log(&DNP3_LOG, info.record(ctx));
                }
            }
        }
    }
}

/// DNP3.cc's `AddToBuffer`: moves bytes from `data` until `frame` holds `target`; whether it does.
fn fill(frame: &mut Vec<u8>, target: usize, data: &mut &[u8]) -> bool {
    let take = target.saturating_sub(frame.len()).min(data.len());
    frame.extend_from_slice(&data[..take]);
    *data = &data[take..];
    frame.len() >= target
}

impl Analyzer for Dnp3 {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.skipped {
            return;
        }
        if let Err(e) = self.process(ctx, is_orig, data) {
            self.skipped = true;
            self.endpoints = Default::default();
            match e {
                Dnp3Error::Skip(weird) => {
                    if let Some(name) = weird {
                        ctx.weird(name, None, WEIRD_SOURCE);
                    }
                }
                violation => ctx.violation(violation.to_string()),
            }
        }
    }

    // A content gap goes to binpac's flow buffer (`NewGap`), not to DNP3.cc's framing, which goes on with what
    // follows: nothing to do here.

    /// The removal hook `finalize_dnp3`.
    fn finish(&mut self, ctx: &mut Ctx) {
        if let Some(info) = self.info.take() {
            ctx.log(&DNP3_LOG, info.record(ctx));
        }
    }

    fn is_done(&self) -> bool {
        self.skipped && self.info.is_none()
    }
}

/// Fuzz entry point: arbitrary bytes as both directions of a stream.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Dnp3::default(), Proto::Tcp, 20000, data);
}

#[cfg(test)]
mod tests;
