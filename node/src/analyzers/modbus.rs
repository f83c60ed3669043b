//! Modbus/TCP (tcp 502) to modbus.log, as Zeek's binpac analyzer (src/analyzer/protocol/modbus/
//! modbus-protocol.pac, modbus-analyzer.pac, Modbus.cc) and base/protocols/modbus/main.zeek and consts.zeek do it.
//!
//! Each direction is a run of PDUs: the MBAP header (transaction id, protocol id, length, unit id) and the function
//! code, then `length - 2` body bytes (binpac's `&length=header.len+6`). binpac parses the header as soon as its
//! eight bytes are there (it needs `len` to size the frame), so the header's `&let` (the `modbus_message` event) and
//! its `&enforce(pid == 0)` come before the body is buffered; the body is parsed when the whole frame is. What the
//! originator sends is a request, what the responder sends a response; a response whose function code has the high
//! bit set is an exception response (one exception code byte, the `modbus_exception` event). The body of each
//! function the grammar knows is parsed to the end of its fields: a field past the frame is binpac's `out_of_bound`
//! exception, a violation after which nothing more is parsed (Zeek's DPD removes the analyzer). The handlers'
//! own checks (an odd register byte count) are violations too. The first PDU parsed whole confirms
//! (`deliver_ModbusTCP_PDU`: `IsConfirmed` needs both sides, but the first call already confirms).
//!
//! The script keeps one `c$modbus` per connection: every message sets its `ts`, `tid`, `unit`, `func` and
//! `pdu_type` and writes it unless the function code has the high bit set; an exception response's record is
//! written by `modbus_exception`, with the exception's name. So each request and each response is a row.

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};
use crate::logs::{Schema, Value, conn_fields, f};

pub static MODBUS_LOG: Schema = Schema {
    path: "modbus",
    fields: conn_fields![
        f("tid", "count"),
        f("unit", "count"),
        f("func", "string"),
        f("pdu_type", "string"),
        f("exception", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "modbus",
    tcp_ports: &[502],
    udp_ports: &[],
    detect: None,
    new: |_| Box::<Modbus>::default(),
    schemas: &[&MODBUS_LOG],
};

/// The MBAP header and the function code: what binpac parses before it sizes the frame.
const HEADER_LEN: usize = 8;
/// The header's bytes the `len` field does not count (transaction id, protocol id, the length itself).
const UNCOUNTED: usize = 6;
/// A response with this bit in its function code is an exception response.
const EXCEPTION_BIT: u8 = 0x80;

/// Where binpac throws (`Binpac exception: ...`, as Zeek's analyzer catches it) and where the handlers of
/// modbus-analyzer.pac raise a violation themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModbusError {
    #[error("Binpac exception: binpac exception: &enforce violation : ModbusTCP_TransportHeader:pid")]
    ProtocolId,
    #[error("Binpac exception: binpac exception: out_of_bound: {0}")]
    OutOfBound(&'static str),
    /// An odd byte count for 16-bit registers (`deliver_*` handlers; no exception, but a violation).
    #[error("invalid value for modbus {0} byte count {1}")]
    OddByteCount(&'static str, u16),
}

/// `ModbusTCP_TransportHeader`, with the function code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub tid: u16,
    pub len: u16,
    pub unit: u8,
    pub fc: u8,
}

impl Header {
    /// The whole PDU's size as binpac frames it (`len + 6`, never less than the header it already holds).
    fn frame_len(&self) -> usize {
        (usize::from(self.len) + UNCOUNTED).max(HEADER_LEN)
    }
}

/// The header from its eight bytes, refused unless the protocol identifier is zero (`&enforce(pid == 0)`).
pub fn parse_header(b: &[u8; HEADER_LEN]) -> Result<Header, ModbusError> {
    if u16::from_be_bytes([b[2], b[3]]) != 0 {
        return Err(ModbusError::ProtocolId);
    }
    Ok(Header { tid: u16::from_be_bytes([b[0], b[1]]), len: u16::from_be_bytes([b[4], b[5]]), unit: b[6], fc: b[7] })
}

/// What a parsed body raises for the log: only an exception response's code matters to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Message,
    Exception(u8),
}

/// binpac's parsing of one body: fields taken in order, each one past the end an `out_of_bound` at `at`.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize, at: &'static str) -> Result<&'a [u8], ModbusError> {
        let (taken, rest) = self.rest.split_at_checked(n).ok_or(ModbusError::OutOfBound(at))?;
        self.rest = rest;
        Ok(taken)
    }

    fn u8(&mut self, at: &'static str) -> Result<u8, ModbusError> {
        Ok(self.take(1, at)?[0])
    }

    fn u16(&mut self, at: &'static str) -> Result<u16, ModbusError> {
        let b = self.take(2, at)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// `uint16[count] &length=len`: `len` bytes, which must hold the `count` registers.
    fn registers(&mut self, count: usize, len: usize, at: &'static str) -> Result<(), ModbusError> {
        let area = self.take(len, at)?;
        if count * 2 > area.len() {
            return Err(ModbusError::OutOfBound(at));
        }
        Ok(())
    }

    /// `T[] &length=len`: elements parsed by `element` until the `len` bytes are used up.
    fn elements(
        &mut self,
        len: usize,
        at: &'static str,
        element: fn(&mut Fields<'a>) -> Result<(), ModbusError>,
    ) -> Result<(), ModbusError> {
        let mut area = Fields { rest: self.take(len, at)? };
        while !area.rest.is_empty() {
            element(&mut area)?;
        }
        Ok(())
    }
}

/// `FileRecordRequest`: reference type, file number, record number, record length.
fn file_record_request(f: &mut Fields) -> Result<(), ModbusError> {
    f.take(7, "FileRecordRequest").map(drop)
}

/// `FileRecordResponse`: its length, reference type and `uint16[file_len/2] &length=file_len`.
fn file_record_response(f: &mut Fields) -> Result<(), ModbusError> {
    let file_len = usize::from(f.u8("FileRecordResponse")?);
    f.u8("FileRecordResponse")?;
    f.registers(file_len / 2, file_len, "FileRecordResponse:record_data")
}

/// `ReferenceWithData`: reference type, file and record numbers, then `word_count` registers.
fn reference_with_data(f: &mut Fields) -> Result<(), ModbusError> {
    f.take(5, "ReferenceWithData")?;
    let words = usize::from(f.u16("ReferenceWithData")?);
    f.registers(words, words * 2, "ReferenceWithData:register_value")
}

/// The handlers' check of a byte count that must cover whole registers.
fn even(count: u16, what: &'static str) -> Result<(), ModbusError> {
    if count.is_multiple_of(2) { Ok(()) } else { Err(ModbusError::OddByteCount(what, count)) }
}

/// `ModbusTCP_Request` or `ModbusTCP_Response` for function code `fc` over the frame's `body` (what follows the
/// header). A function the grammar does not know takes the rest of the frame as it is.
pub fn parse_body(is_orig: bool, fc: u8, body: &[u8]) -> Result<Body, ModbusError> {
    let mut f = Fields { rest: body };
    if is_orig {
        match fc {
            0x01 => f.take(4, "ReadCoilsRequest").map(drop)?,
            0x02 => f.take(4, "ReadDiscreteInputsRequest").map(drop)?,
            0x03 => f.take(4, "ReadHoldingRegistersRequest").map(drop)?,
            0x04 => f.take(4, "ReadInputRegistersRequest").map(drop)?,
            0x05 => f.take(4, "WriteSingleCoilRequest").map(drop)?,
            0x06 => f.take(4, "WriteSingleRegisterRequest").map(drop)?,
            0x08 => f.take(2, "DiagnosticsRequest").map(drop)?,
            0x0F => {
                f.take(4, "WriteMultipleCoilsRequest")?;
                let byte_count = f.u8("WriteMultipleCoilsRequest")?;
                f.take(usize::from(byte_count), "WriteMultipleCoilsRequest:coils")?;
            }
            0x10 => {
                f.u16("WriteMultipleRegistersRequest")?;
                let quantity = f.u16("WriteMultipleRegistersRequest")?;
                let byte_count = f.u8("WriteMultipleRegistersRequest")?;
                let at = "WriteMultipleRegistersRequest:registers";
                f.registers(usize::from(quantity), usize::from(byte_count), at)?;
                even(u16::from(byte_count), "write multiple registers request")?;
            }
            0x14 => {
                let byte_count = f.u8("ReadFileRecordRequest")?;
                f.elements(usize::from(byte_count), "ReadFileRecordRequest:references", file_record_request)?;
            }
            0x15 => {
                let byte_count = f.u8("WriteFileRecordRequest")?;
                f.elements(usize::from(byte_count), "WriteFileRecordRequest:references", reference_with_data)?;
            }
            0x16 => f.take(6, "MaskWriteRegisterRequest").map(drop)?,
            0x17 => {
                f.take(6, "ReadWriteMultipleRegistersRequest")?;
                let write_quantity = f.u16("ReadWriteMultipleRegistersRequest")?;
                let write_byte_count = f.u8("ReadWriteMultipleRegistersRequest")?;
                let at = "ReadWriteMultipleRegistersRequest:write_register_values";
                f.registers(usize::from(write_quantity), usize::from(write_byte_count), at)?;
                even(u16::from(write_byte_count), "read write multiple registers request write")?;
            }
            0x18 => f.take(2, "ReadFIFOQueueRequest").map(drop)?,
            0x2B => f.take(1, "EncapInterfaceTransportRequest").map(drop)?,
            _ => {}
        }
        return Ok(Body::Message);
    }
    if fc & EXCEPTION_BIT != 0 {
        return Ok(Body::Exception(f.u8("ModbusTCP_ExceptResponse")?));
    }
    match fc {
        0x01 | 0x02 => {
            let at = if fc == 0x01 { "ReadCoilsResponse" } else { "ReadDiscreteInputsResponse" };
            let byte_count = f.u8(at)?;
            f.take(usize::from(byte_count), at)?;
        }
        0x03 | 0x04 | 0x17 => {
            let (at, what) = match fc {
                0x03 => ("ReadHoldingRegistersResponse", "read holding register response"),
                0x04 => ("ReadInputRegistersResponse", "read input register response"),
                _ => ("ReadWriteMultipleRegistersResponse", "read write multiple registers response"),
            };
            let byte_count = f.u8(at)?;
            f.registers(usize::from(byte_count / 2), usize::from(byte_count), at)?;
            even(u16::from(byte_count), what)?;
        }
        0x05 => f.take(4, "WriteSingleCoilResponse").map(drop)?,
        0x06 => f.take(4, "WriteSingleRegisterResponse").map(drop)?,
        0x08 => f.take(2, "DiagnosticsResponse").map(drop)?,
        0x0F => f.take(4, "WriteMultipleCoilsResponse").map(drop)?,
        0x10 => f.take(4, "WriteMultipleRegistersResponse").map(drop)?,
        0x14 => {
            let byte_count = f.u8("ReadFileRecordResponse")?;
            f.elements(usize::from(byte_count), "ReadFileRecordResponse:references", file_record_response)?;
        }
        0x15 => {
            let byte_count = f.u8("WriteFileRecordResponse")?;
            f.elements(usize::from(byte_count), "WriteFileRecordResponse:references", reference_with_data)?;
        }
        0x16 => f.take(6, "MaskWriteRegisterResponse").map(drop)?,
        0x18 => {
            let byte_count = f.u16("ReadFIFOQueueResponse")?;
            let fifo_count = usize::from(f.u16("ReadFIFOQueueResponse")?);
            f.registers(fifo_count, fifo_count * 2, "ReadFIFOQueueResponse:register_data")?;
            even(byte_count, "read FIFO queue response")?;
        }
        0x2B => f.take(1, "EncapInterfaceTransportResponse").map(drop)?,
        _ => {}
    }
    Ok(Body::Message)
}

/// consts.zeek's `function_codes`, without its `&default`.
fn function_name(fc: u8) -> Option<&'static str> {
    Some(match fc {
        0x01 => "READ_COILS",
        0x02 => "READ_DISCRETE_INPUTS",
        0x03 => "READ_HOLDING_REGISTERS",
        0x04 => "READ_INPUT_REGISTERS",
        0x05 => "WRITE_SINGLE_COIL",
        0x06 => "WRITE_SINGLE_REGISTER",
        0x07 => "READ_EXCEPTION_STATUS",
        0x08 => "DIAGNOSTICS",
        0x0B => "GET_COMM_EVENT_COUNTER",
        0x0C => "GET_COMM_EVENT_LOG",
        0x0F => "WRITE_MULTIPLE_COILS",
        0x10 => "WRITE_MULTIPLE_REGISTERS",
        0x11 => "REPORT_SLAVE_ID",
        0x14 => "READ_FILE_RECORD",
        0x15 => "WRITE_FILE_RECORD",
        0x16 => "MASK_WRITE_REGISTER",
        0x17 => "READ_WRITE_MULTIPLE_REGISTERS",
        0x18 => "READ_FIFO_QUEUE",
        0x2B => "ENCAP_INTERFACE_TRANSPORT",
        0x5B => "OBJECT_MESSAGING",
        0x09 => "PROGRAM_484",
        0x0A => "POLL_484",
        0x0D => "PROGRAM_584_984",
        0x0E => "POLL_584_984",
        0x12 => "PROGRAM_884_U84",
        0x13 => "RESET_COMM_LINK_884_U84",
        0x28 => "PROGRAM_CONCEPT",
        0x29 => "MULTIPLE_FUNCTION_CODES",
        0x5A => "PROGRAM_UNITY",
        0x7D => "FIRMWARE_REPLACEMENT",
        0x7E => "PROGRAM_584_984_2",
        0x7F => "REPORT_LOCAL_ADDRESS",
        _ => return None,
    })
}

/// main.zeek's `build_func`: the function's name, an exception's with `_EXCEPTION`, else `unknown-<code>`.
pub fn build_func(fc: u8) -> String {
    match (function_name(fc), function_name(fc & !EXCEPTION_BIT)) {
        (Some(name), _) => name.to_string(),
        // The masked code is known, so the high bit is set.
        (None, Some(name)) => format!("{name}_EXCEPTION"),
        (None, None) => format!("unknown-{fc}"),
    }
}

/// consts.zeek's `exception_codes`, with its `&default`.
pub fn exception_name(code: u8) -> String {
    let name = match code {
        0x01 => "ILLEGAL_FUNCTION",
        0x02 => "ILLEGAL_DATA_ADDRESS",
        0x03 => "ILLEGAL_DATA_VALUE",
        0x04 => "SLAVE_DEVICE_FAILURE",
        0x05 => "ACKNOWLEDGE",
        0x06 => "SLAVE_DEVICE_BUSY",
        0x08 => "MEMORY_PARITY_ERROR",
        0x0A => "GATEWAY_PATH_UNAVAILABLE",
        0x0B => "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
        _ => return format!("unknown-{code}"),
    };
    name.to_string()
}

/// The connection's `c$modbus` as the last message left it (both directions share it).
#[derive(Debug, Clone, PartialEq)]
struct Info {
    ts: f64,
    tid: u16,
    unit: u8,
    func: String,
    pdu_type: &'static str,
}

impl Info {
    fn record(&self, ctx: &Ctx, exception: Option<String>) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::Count(u64::from(self.tid)),
            Value::Count(u64::from(self.unit)),
            Value::str(self.func.as_str()),
            Value::str(self.pdu_type),
            Value::opt_str(exception),
        ]);
        v
    }
}

/// One direction's PDU in progress: its bytes so far (at most a 65,541-byte frame) and its header once parsed.
#[derive(Debug, Default)]
struct Flow {
    frame: Vec<u8>,
    header: Option<Header>,
}

#[derive(Default)]
pub struct Modbus {
    /// Originator, then responder.
    flows: [Flow; 2],
    info: Option<Info>,
    confirmed: bool,
    /// A violation ended the analysis.
    stopped: bool,
}

impl Modbus {
    /// Parses what `data` completes of side `is_orig`'s PDUs.
    fn feed(&mut self, ctx: &mut Ctx, is_orig: bool, mut data: &[u8]) -> Result<(), ModbusError> {
        let side = usize::from(!is_orig);
        // Not `while` there is data: a frame of only the header is complete as soon as its header is.
        loop {
            let flow = &mut self.flows[side];
            let need = flow.header.map_or(HEADER_LEN, |h| h.frame_len());
            let take = need.saturating_sub(flow.frame.len()).min(data.len());
            flow.frame.extend_from_slice(&data[..take]);
            data = &data[take..];
            if flow.frame.len() < need {
                return Ok(());
            }
            let Some(header) = flow.header else {
                let bytes: &[u8; HEADER_LEN] =
                    flow.frame[..].try_into().map_err(|_| ModbusError::OutOfBound("ModbusTCP_TransportHeader"))?;
                let header = parse_header(bytes)?;
                flow.header = Some(header);
                self.message(ctx, is_orig, header);
                continue;
            };
            let frame = std::mem::take(&mut flow.frame);
            flow.header = None;
            // binpac's record `&length` ends the body at `len + 6`: a `len` below 2 leaves it no room at all.
            let body = frame
                .get(HEADER_LEN..usize::from(header.len) + UNCOUNTED)
                .ok_or(ModbusError::OutOfBound("ModbusTCP_PDU:body"))?;
            if let Body::Exception(code) = parse_body(is_orig, header.fc, body)? {
                // `modbus_exception`: the record as the last message left it, with the exception.
                if let Some(info) = &self.info {
                    ctx.log(&MODBUS_LOG, info.record(ctx, Some(exception_name(code))));
                }
            }
            if !self.confirmed {
                self.confirmed = true;
                ctx.confirm("modbus");
            }
            // Reuse the frame's allocation for the next PDU.
            let flow = &mut self.flows[side];
            flow.frame = frame;
            flow.frame.clear();
        }
    }

    /// `modbus_message`: the record takes the message's values and is written unless an exception will write it.
    fn message(&mut self, ctx: &mut Ctx, is_orig: bool, header: Header) {
        let info = Info {
            ts: ctx.ts,
            tid: header.tid,
            unit: header.unit,
            func: build_func(header.fc),
            pdu_type: if is_orig { "REQ" } else { "RESP" },
        };
        if header.fc & EXCEPTION_BIT == 0 {
            ctx.log(&MODBUS_LOG, info.record(ctx, None));
        }
        self.info = Some(info);
    }
}

impl Analyzer for Modbus {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.stopped {
            return;
        }
        if let Err(e) = self.feed(ctx, is_orig, data) {
            self.stopped = true;
            self.flows = Default::default();
            ctx.violation(e.to_string());
        }
    }

    // A content gap is passed to binpac's flow buffer, which keeps filling the frame in progress with what follows
    // (`FlowBuffer::NewGap` only shortens chunked frames): nothing to do here.

    fn is_done(&self) -> bool {
        self.stopped
    }
}

/// Fuzz entry point: arbitrary bytes as both directions of a stream.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Modbus::default(), Proto::Tcp, 502, data);
}

#[cfg(test)]
mod tests;
