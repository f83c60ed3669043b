//! DCE/RPC over TCP (tcp 135 and the `dpd_dce_rpc` signature) to dce_rpc.log, as Zeek's binpac analyzer
//! (src/analyzer/protocol/dce-rpc/: dce_rpc-protocol.pac, dce_rpc-analyzer.pac, dce_rpc-auth.pac, DCE_RPC.cc) and
//! base/protocols/dce-rpc/main.zeek and consts.zeek do it.
//!
//! Each direction is a run of connection-oriented PDUs: a 16-byte header (version 5 enforced, the packed data
//! representation whose high nibble picks little or big endian for the rest, `frag_length`, `auth_length`,
//! `call_id`), then `frag_length - 16` bytes holding the fragment and, when `auth_length` is set, an 8-byte auth
//! header and the auth blob. Fragments are put back together per call id as the flow's `reassemble_fragment` does:
//! a first fragment that is not also the last opens a buffer, later ones append, the last one hands the whole body
//! to the parser; a fragment for a call with no buffer that is not a first one is dropped. The body is parsed by
//! the PDU type: bind and alter_context (each context element an event with the abstract syntax's uuid),
//! bind_ack and alter_context_resp (the secondary address), request (context id, opnum) and response (context id,
//! the opnum the last request on that context had). Every PDU parsed whole confirms (`proc_dce_rpc_pdu`). An auth
//! verifier goes by its type (`forward_auth`): SPNEGO to GSSAPI, NTLMSSP to NTLM ([`super::gssapi::Auth`]: over TCP
//! the analyzer's own, over SMB the SMB connection's, shared by its session setup and all its pipes), TLS, Netlogon
//! and unknown types are weirds.
//!
//! What does not parse is binpac's exception, a protocol violation; main.zeek puts the analyzer in
//! `DPD::ignore_violations`, so in Zeek it stays on: here a violation before the confirmation detaches it (DPD
//! tasting), and one after it only skips the PDU, keeping the service. A content gap stops it, as `had_gap` does.
//!
//! The script keeps a backing record per file id (fid 0 over TCP, where there is no named pipe; over SMB each pipe
//! has its own analyzer and file id, [`NamedPipes`]): a bind sets its endpoint from the uuid, a bind_ack its named
//! pipe (the secondary address), a request its `ts`, and a response its operation and `rtt` and writes it unless
//! the operation is in `ignored_operations`. At the connection's end every backing record is written once more if
//! an event came after the last response (the removal hook), with what it still holds from that response.

mod consts;

use std::collections::HashMap;

use super::gssapi::Auth;
use super::krb::KERBEROS_LOG;
use super::ntlm::NTLM_LOG;
use super::{Analyzer, AnalyzerSpec, Ctx, Proto, Signature};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static DCE_RPC_LOG: Schema = Schema {
    path: "dce_rpc",
    fields: conn_fields![
        f("rtt", "interval"),
        f("named_pipe", "string"),
        f("endpoint", "string"),
        f("operation", "string"),
    ],
};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "dce_rpc",
    tcp_ports: &[135],
    udp_ports: &[],
    detect: Some(Signature::either_side(detect)),
    new: |_| Box::<DceRpc>::default(),
    schemas: &[&DCE_RPC_LOG, &NTLM_LOG, &KERBEROS_LOG],
};

/// dpd.sig's `dpd_dce_rpc`: `/^\x05[\x00\x01][\x00-\x13]\x03/` on TCP: version 5.0 or 5.1, a known PDU type, and
/// the first and last fragment flags.
fn detect(proto: Proto, _is_orig: bool, payload: &[u8]) -> bool {
    proto == Proto::Tcp && matches!(payload, [0x05, 0x00 | 0x01, 0x00..=0x13, 0x03, ..])
}

const WEIRD_SOURCE: &str = "DCE_RPC";
/// The common header every PDU starts with.
pub const HEADER_LEN: usize = 16;
/// The auth verifier's header (type, level, pad length, reserved, context id) before its blob.
const AUTH_HEADER_LEN: usize = 8;
/// `DCE_RPC::max_cmd_reassembly`: calls being reassembled at once in one direction.
const MAX_CMD_REASSEMBLY: usize = 20;
/// `DCE_RPC::max_frag_data`: bytes buffered for one call's fragments.
const MAX_FRAG_DATA: usize = 30000;

/// PDU types (`dce_rpc_ptype`) the body parser knows.
pub(crate) mod ptype {
    pub const REQUEST: u8 = 0;
    pub const RESPONSE: u8 = 2;
    pub const BIND: u8 = 11;
    pub const BIND_ACK: u8 = 12;
    pub const ALTER_CONTEXT: u8 = 14;
    pub const ALTER_CONTEXT_RESP: u8 = 15;
}

/// binpac's exceptions, as Zeek's analyzer reports them (`Binpac exception: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DceRpcError {
    #[error("Binpac exception: binpac exception: &enforce violation : DCE_RPC_Header:rpc_vers")]
    Version,
    #[error("Binpac exception: binpac exception: invalid length string: DCE_RPC_PDU:frag, {0}")]
    FragLength(i64),
    #[error("Binpac exception: binpac exception: out_of_bound: {0}")]
    OutOfBound(&'static str),
}

/// The common PDU header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ptype: u8,
    pub flags: u8,
    /// The packed drep says little endian (its high nibble set).
    pub little_endian: bool,
    pub frag_length: u16,
    pub auth_length: u16,
    pub call_id: u32,
}

impl Header {
    fn first_frag(&self) -> bool {
        self.flags & 0x01 != 0
    }

    fn last_frag(&self) -> bool {
        self.flags & 0x02 != 0
    }

    /// A request carries an object uuid (`PFC_OBJECT_UUID`).
    fn object(&self) -> bool {
        self.flags & 0x80 != 0
    }

    /// `body_length`: the fragment's bytes, without the header and the auth trailer.
    fn body_length(&self) -> i64 {
        let auth = i64::from(self.auth_length);
        i64::from(self.frag_length) - HEADER_LEN as i64 - auth - if auth > 0 { AUTH_HEADER_LEN as i64 } else { 0 }
    }
}

/// The header from its 16 bytes: the version must be 5 (`&enforce`), the drep picks the byte order of the rest.
pub fn parse_header(b: &[u8; HEADER_LEN]) -> Result<Header, DceRpcError> {
    if b[0] != 5 {
        return Err(DceRpcError::Version);
    }
    let little_endian = b[4] >> 4 != 0;
    let u16_at = |i: usize| {
        let v = [b[i], b[i + 1]];
        if little_endian { u16::from_le_bytes(v) } else { u16::from_be_bytes(v) }
    };
    let v = [b[12], b[13], b[14], b[15]];
    let call_id = if little_endian { u32::from_le_bytes(v) } else { u32::from_be_bytes(v) };
    Ok(Header { ptype: b[2], flags: b[3], little_endian, frag_length: u16_at(8), auth_length: u16_at(10), call_id })
}

/// What a body tells the script, in the order binpac raises the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `dce_rpc_bind` or, with `alter`, `dce_rpc_alter_context`: one per context element.
    Bind {
        alter: bool,
        ctx_id: u16,
        uuid: [u8; 16],
    },
    /// `dce_rpc_bind_ack` with its secondary address (an alter_context_resp is `None`).
    BindAck {
        sec_addr: Option<Vec<u8>>,
    },
    Request {
        ctx_id: u16,
        opnum: u16,
    },
    /// The opnum is filled in by the connection from its last request on the context.
    Response {
        ctx_id: u16,
    },
}

/// binpac's parse of one body: fields taken in order, one past the end an `out_of_bound` at `at`.
struct Fields<'a> {
    body: &'a [u8],
    at: usize,
    little_endian: bool,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize, at: &'static str) -> Result<&'a [u8], DceRpcError> {
        let taken = self.body.get(self.at..).and_then(|rest| rest.get(..n)).ok_or(DceRpcError::OutOfBound(at))?;
        self.at += n;
        Ok(taken)
    }

    fn u8(&mut self, at: &'static str) -> Result<u8, DceRpcError> {
        Ok(self.take(1, at)?[0])
    }

    fn u16(&mut self, at: &'static str) -> Result<u16, DceRpcError> {
        let b = self.take(2, at)?;
        let v = [b[0], b[1]];
        Ok(if self.little_endian { u16::from_le_bytes(v) } else { u16::from_be_bytes(v) })
    }

    /// `padding align n`, relative to the start of the body.
    fn align(&mut self, n: usize, at: &'static str) -> Result<(), DceRpcError> {
        let pad = (n - self.at % n) % n;
        self.take(pad, at).map(drop)
    }
}

/// The `ContextList` of a bind or alter_context: an event per `ContextRequest` parsed, pushed before a later element
/// fails (binpac raises each element's event as it completes).
fn context_requests(f: &mut Fields, alter: bool, events: &mut Vec<Event>) -> Result<(), DceRpcError> {
    f.take(8, "DCE_RPC_Bind")?;
    let count = f.u8("ContextList")?;
    f.take(3, "ContextList")?;
    for _ in 0..count {
        let ctx_id = f.u16("ContextRequest")?;
        let syntaxes = f.u8("ContextRequest")?;
        f.take(1, "ContextRequest")?;
        let uuid: [u8; 16] = f.take(16, "Syntax")?.try_into().map_err(|_| DceRpcError::OutOfBound("Syntax"))?;
        f.take(4, "Syntax")?;
        f.take(usize::from(syntaxes) * 20, "ContextRequest:transfer_syntaxes")?;
        events.push(Event::Bind { alter, ctx_id, uuid });
    }
    Ok(())
}

/// A bind_ack or alter_context_resp: its secondary address, and the result list it must hold whole.
fn context_reply(f: &mut Fields, at: &'static str) -> Result<Vec<u8>, DceRpcError> {
    f.take(8, at)?;
    let len = f.u16(at)?;
    let sec_addr = f.take(usize::from(len), at)?.to_vec();
    f.align(4, at)?;
    let count = f.u8("ContextList")?;
    f.take(3, "ContextList")?;
    f.take(usize::from(count) * 24, "ContextList:reply_contexts")?;
    Ok(sec_addr)
}

/// `DCE_RPC_Body` for a whole (reassembled) body of the PDU `h`: the events it raises, in order. A type the grammar
/// does not parse takes the body as it is.
pub fn parse_body(h: &Header, body: &[u8], events: &mut Vec<Event>) -> Result<(), DceRpcError> {
    let mut f = Fields { body, at: 0, little_endian: h.little_endian };
    match h.ptype {
        ptype::BIND => context_requests(&mut f, false, events)?,
        ptype::ALTER_CONTEXT => context_requests(&mut f, true, events)?,
        ptype::BIND_ACK => {
            let mut sec_addr = context_reply(&mut f, "DCE_RPC_Bind_Ack")?;
            // The handler drops a terminating NUL.
            if sec_addr.last() == Some(&0) {
                sec_addr.pop();
            }
            events.push(Event::BindAck { sec_addr: Some(sec_addr) });
        }
        ptype::ALTER_CONTEXT_RESP => {
            context_reply(&mut f, "DCE_RPC_AlterContext_Resp")?;
            events.push(Event::BindAck { sec_addr: None });
        }
        ptype::REQUEST => {
            f.take(4, "DCE_RPC_Request")?;
            let ctx_id = f.u16("DCE_RPC_Request")?;
            let opnum = f.u16("DCE_RPC_Request")?;
            if h.object() {
                f.take(16, "DCE_RPC_Request:uuid")?;
            }
            f.align(8, "DCE_RPC_Request:stub_pad")?;
            events.push(Event::Request { ctx_id, opnum });
        }
        ptype::RESPONSE => {
            f.take(4, "DCE_RPC_Response")?;
            let ctx_id = f.u16("DCE_RPC_Response")?;
            f.take(2, "DCE_RPC_Response")?;
            f.align(8, "DCE_RPC_Response:stub_pad")?;
            events.push(Event::Response { ctx_id });
        }
        _ => {}
    }
    Ok(())
}

/// Zeek's `uuid_to_string`: the first three fields little endian, as DCE/RPC puts them on the wire.
pub fn uuid_to_string(u: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]
    )
}

/// `uuid_endpoint_map[uuid]`, with its `&default` (`unknown-<uuid>`).
pub fn endpoint_name(uuid: &str) -> String {
    consts::ENDPOINTS
        .iter()
        .find(|(u, _)| *u == uuid)
        .map_or_else(|| format!("unknown-{uuid}"), |(_, name)| (*name).to_string())
}

/// `operations[uuid, opnum]`, with its `&default` (`unknown-<opnum>`).
pub fn operation_name(uuid: &str, opnum: u16) -> String {
    consts::OPERATIONS
        .iter()
        .filter(|(u, _, _)| *u == uuid)
        .find_map(|(_, first, names)| names.get(usize::from(opnum.checked_sub(*first)?)))
        .map_or_else(|| format!("unknown-{opnum}"), |name| (*name).to_string())
}

/// main.zeek's `normalize_named_pipe_name`: what follows `\pipe\` (any case), lower-cased.
fn normalize_named_pipe_name(pipe: &str) -> String {
    let lower = pipe.to_ascii_lowercase();
    match lower.find("\\pipe\\") {
        // split_string's second piece: up to a further `\pipe\`, if any.
        Some(at) => {
            let rest = &lower[at + 6..];
            rest.find("\\pipe\\").map_or(rest, |end| &rest[..end]).to_string()
        }
        None => lower,
    }
}

/// `ignored_operations`' default: noisy, low-value calls per endpoint.
fn ignored(endpoint: &str, operation: &str) -> bool {
    let ops: &[&str] = match endpoint {
        "winreg" => &[
            "BaseRegCloseKey",
            "BaseRegGetVersion",
            "BaseRegOpenKey",
            "BaseRegQueryValue",
            "BaseRegDeleteKeyEx",
            "OpenLocalMachine",
            "BaseRegEnumKey",
            "OpenClassesRoot",
        ],
        "spoolss" => &["RpcSplOpenPrinter", "RpcClosePrinter"],
        "wkssvc" => &["NetrWkstaGetInfo"],
        _ => return false,
    };
    ops.contains(&operation) || ops.contains(&"*")
}

/// `DCE_RPC::Info`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Info {
    ts: f64,
    rtt: Option<f64>,
    named_pipe: Option<String>,
    endpoint: Option<String>,
    operation: Option<String>,
}

/// `DCE_RPC::State`.
#[derive(Debug, Clone, Default)]
struct State {
    uuid: Option<String>,
    named_pipe: Option<String>,
    ctx_to_uuid: HashMap<u16, String>,
}

/// `DCE_RPC::BackingState`, with its place in the table's insertion order (the removal hook writes the backings
/// in that order).
#[derive(Debug, Clone)]
struct Backing {
    seq: u64,
    info: Info,
    state: State,
}

/// The script's view of the connection, shared by all of its DCE_RPC analyzers (one over TCP, one per named pipe
/// over SMB): the backing records by file id and whether `c$dce_rpc` is set.
#[derive(Debug, Default)]
struct Script {
    /// `c$dce_rpc_backing`, unset (`None`) until the first event and after `smb_discarded_dce_rpc_analyzers`.
    /// Records are references in Zeek, so `c$dce_rpc` is the backing record of the last event's fid.
    backing: Option<HashMap<u64, Backing>>,
    next_seq: u64,
    /// `c?$dce_rpc`: set by every event, deleted after a response.
    current: bool,
}

impl Script {
    /// `set_session` then `set_state`: the backing record for `fid`, made at its first event.
    fn session(&mut self, now: f64, fid: u64) -> (&mut Info, &mut State) {
        self.current = true;
        let seq = self.next_seq;
        let backing = self.backing.get_or_insert_with(HashMap::new).entry(fid).or_insert_with(|| Backing {
            seq,
            info: Info { ts: now, ..Info::default() },
            state: State::default(),
        });
        if backing.seq == seq {
            self.next_seq += 1;
        }
        let Backing { info, state, .. } = backing;
        Self::set_state(info, state);
        (info, state)
    }

    /// `set_state`: the record takes the endpoint of the state's uuid and its named pipe.
    fn set_state(info: &mut Info, state: &State) {
        if let Some(uuid) = &state.uuid {
            info.endpoint = Some(endpoint_name(uuid));
        }
        if let Some(pipe) = &state.named_pipe {
            info.named_pipe = Some(pipe.clone());
        }
    }

    /// Without an endpoint but with a pipe name, the pipe's usual interface (`pipe_name_to_common_uuid`).
    fn guess_uuid_from_pipe(info: &Info, state: &mut State) {
        if info.endpoint.is_some() {
            return;
        }
        let Some(pipe) = &info.named_pipe else { return };
        let npn = normalize_named_pipe_name(pipe);
        if let Some((_, uuid)) = consts::PIPES.iter().find(|(p, _)| *p == npn) {
            state.uuid = Some((*uuid).to_string());
        }
    }

    fn event(&mut self, ctx: &mut Ctx, fid: u64, event: Event, opnum_of: impl FnOnce(u16) -> u16) {
        let now = ctx.ts;
        match event {
            Event::Bind { ctx_id, uuid, .. } => {
                let (info, state) = self.session(now, fid);
                let uuid = uuid_to_string(&uuid);
                info.endpoint = Some(endpoint_name(&uuid));
                state.ctx_to_uuid.insert(ctx_id, uuid.clone());
                state.uuid = Some(uuid);
            }
            Event::BindAck { sec_addr } => {
                let (info, state) = self.session(now, fid);
                if let Some(sec_addr) = sec_addr.filter(|s| !s.is_empty()) {
                    let pipe = bytes_to_log_string(&sec_addr);
                    state.named_pipe = Some(pipe.clone());
                    info.named_pipe = Some(pipe);
                }
            }
            Event::Request { .. } => {
                let (info, _) = self.session(now, fid);
                info.ts = now;
            }
            Event::Response { ctx_id } => {
                let opnum = opnum_of(ctx_id);
                let (info, state) = self.session(now, fid);
                Self::guess_uuid_from_pipe(info, state);
                if info.endpoint.is_some()
                    && let Some(uuid) = &state.uuid
                {
                    info.operation = Some(operation_name(uuid, opnum));
                    if info.ts != now {
                        info.rtt = Some(now - info.ts);
                    }
                }
                if let Some(uuid) = state.ctx_to_uuid.get(&ctx_id) {
                    info.endpoint = Some(endpoint_name(uuid));
                    info.operation = Some(operation_name(uuid, opnum));
                }
                let info = info.clone();
                Self::write(ctx, &info);
                self.current = false;
            }
        }
    }

    /// The log condition of both writers: an endpoint and an operation, not in `ignored_operations`.
    fn write(ctx: &mut Ctx, info: &Info) {
        let (Some(endpoint), Some(operation)) = (&info.endpoint, &info.operation) else { return };
        if ignored(endpoint, operation) {
            return;
        }
        let mut v = ctx.conn_columns(info.ts);
        v.extend([
            info.rtt.map_or(Value::Unset, Value::Interval),
            Value::opt_str(info.named_pipe.clone()),
            Value::str(endpoint.as_str()),
            Value::str(operation.as_str()),
        ]);
        ctx.log(&DCE_RPC_LOG, v);
    }

    /// The `smb2_close_request` handler: a closed pipe's backing goes.
    fn close(&mut self, fid: u64) {
        if let Some(backing) = &mut self.backing {
            backing.remove(&fid);
        }
    }

    /// The removal hook `finalize_dce_rpc`: when `c$dce_rpc` is set, every backing record is written once more.
    fn finish(&mut self, ctx: &mut Ctx) {
        if !self.current {
            return;
        }
        self.current = false;
        let Some(backing) = &mut self.backing else { return };
        let mut records: Vec<&mut Backing> = backing.values_mut().collect();
        records.sort_by_key(|b| b.seq);
        for Backing { info, state, .. } in records {
            Self::set_state(info, state);
            Self::guess_uuid_from_pipe(info, state);
            Self::write(ctx, info);
        }
    }
}

/// One direction: the PDU being gathered and the calls being reassembled (`DCE_RPC_Flow`'s `fb`).
#[derive(Debug, Default)]
struct Flow {
    pdu: Vec<u8>,
    header: Option<Header>,
    fragments: HashMap<u32, Vec<u8>>,
}

/// One instance of Zeek's DCE_RPC analyzer: the binpac connection of a TCP connection, or of one named pipe over
/// SMB (`SetFileID`).
#[derive(Debug, Default)]
struct Analysis {
    /// The SMB file id the events carry (0 over TCP).
    fid: u64,
    /// Fed by the SMB analyzer (`forward_dce_rpc`) rather than by the connection's stream.
    over_smb: bool,
    /// Originator, then responder.
    flows: [Flow; 2],
    /// `cont_id_opnum_map`: the last request's opnum per context id (shared by both directions).
    opnums: HashMap<u16, u16>,
    confirmed: bool,
    /// A content gap, a violation before the confirmation or a reassembly limit: nothing more is parsed.
    stopped: bool,
}

impl Analysis {
    fn pipe(fid: u64) -> Self {
        Analysis { fid, over_smb: true, ..Analysis::default() }
    }

    /// Parses what `data` completes of side `is_orig`'s PDUs.
    fn feed(&mut self, ctx: &mut Ctx, script: &mut Script, auth: &mut Auth, is_orig: bool, mut data: &[u8]) {
        let side = usize::from(!is_orig);
        while !data.is_empty() && !self.stopped {
            let flow = &mut self.flows[side];
            let need = flow.header.map_or(HEADER_LEN, |h| usize::from(h.frag_length).max(HEADER_LEN));
            let take = need.saturating_sub(flow.pdu.len()).min(data.len());
            flow.pdu.extend_from_slice(&data[..take]);
            data = &data[take..];
            if flow.pdu.len() < need {
                return;
            }
            if flow.header.is_none() {
                let parsed = <&[u8; HEADER_LEN]>::try_from(&flow.pdu[..])
                    .map_err(|_| DceRpcError::OutOfBound("DCE_RPC_Header"))
                    .and_then(parse_header);
                match parsed {
                    Ok(h) if h.body_length() >= 0 => {
                        flow.header = Some(h);
                        // A PDU of only its header is complete now.
                        if usize::from(h.frag_length) > HEADER_LEN {
                            continue;
                        }
                    }
                    Ok(h) => {
                        flow.pdu.clear();
                        self.error(ctx, DceRpcError::FragLength(h.body_length()));
                        continue;
                    }
                    Err(e) => {
                        flow.pdu.clear();
                        self.error(ctx, e);
                        continue;
                    }
                }
            }
            let Some(header) = flow.header.take() else { continue };
            let pdu = std::mem::take(&mut flow.pdu);
            let result = self.pdu(ctx, script, auth, is_orig, &header, &pdu);
            // Reuse the allocation for the next PDU.
            self.flows[side].pdu = pdu;
            self.flows[side].pdu.clear();
            if let Err(e) = result {
                self.error(ctx, e);
            }
        }
    }

    /// One whole PDU of `header.frag_length` bytes.
    fn pdu(
        &mut self,
        ctx: &mut Ctx,
        script: &mut Script,
        auth: &mut Auth,
        is_orig: bool,
        header: &Header,
        pdu: &[u8],
    ) -> Result<(), DceRpcError> {
        let body_len = usize::try_from(header.body_length()).map_err(|_| DceRpcError::FragLength(-1))?;
        let frag = pdu.get(HEADER_LEN..HEADER_LEN + body_len).ok_or(DceRpcError::OutOfBound("DCE_RPC_PDU:frag"))?;
        if header.auth_length > 0 {
            let verifier = pdu.get(HEADER_LEN + body_len..).ok_or(DceRpcError::OutOfBound("DCE_RPC_Auth"))?;
            let (Some(&auth_type), Some(blob)) =
                (verifier.first(), verifier.get(AUTH_HEADER_LEN..AUTH_HEADER_LEN + usize::from(header.auth_length)))
            else {
                return Err(DceRpcError::OutOfBound("DCE_RPC_Auth"));
            };
            forward_auth(ctx, auth, auth_type, blob);
        }
        // The body is parsed only once its call's last fragment is in; the PDU confirms either way.
        if let Some(body) = self.reassemble(ctx, is_orig, header, frag) {
            let mut events = Vec::new();
            let parsed = parse_body(header, &body, &mut events);
            for event in events {
                if let Event::Request { ctx_id, opnum } = event {
                    self.opnums.insert(ctx_id, opnum);
                }
                let opnums = &self.opnums;
                script.event(ctx, self.fid, event, |ctx_id| opnums.get(&ctx_id).copied().unwrap_or(0));
            }
            parsed?;
        }
        if !self.confirmed {
            self.confirmed = true;
            ctx.confirm("dce_rpc");
        }
        Ok(())
    }

    /// `reassemble_fragment` and `reassembled_body`: the whole body once the call's last fragment is in.
    fn reassemble(&mut self, ctx: &mut Ctx, is_orig: bool, h: &Header, frag: &[u8]) -> Option<Vec<u8>> {
        let fragments = &mut self.flows[usize::from(!is_orig)].fragments;
        if h.first_frag() {
            if fragments.contains_key(&h.call_id) {
                ctx.weird("multiple_first_fragments_in_dce_rpc_reassembly", None, WEIRD_SOURCE);
                self.skip();
                return None;
            }
            if h.last_frag() {
                return Some(frag.to_vec());
            }
            fragments.insert(h.call_id, frag.to_vec());
            if fragments.len() > MAX_CMD_REASSEMBLY {
                ctx.weird("too_many_dce_rpc_msgs_in_reassembly", None, WEIRD_SOURCE);
                self.skip();
            }
            if frag.len() > MAX_FRAG_DATA {
                ctx.weird("too_much_dce_rpc_fragment_data", None, WEIRD_SOURCE);
                self.skip();
            }
            return None;
        }
        let buffered = fragments.get_mut(&h.call_id)?;
        buffered.extend_from_slice(frag);
        if buffered.len() > MAX_FRAG_DATA {
            ctx.weird("too_much_dce_rpc_fragment_data", None, WEIRD_SOURCE);
            self.skip();
            return None;
        }
        if h.last_frag() { fragments.remove(&h.call_id) } else { None }
    }

    /// `SetSkip(true)`: the analyzer sees no more data; its buffers go. A pipe's analyzer stops the same way: the
    /// newest `forward_dce_rpc` honours the skip flag (Zeek's `named-pipe-fragment` baseline has a single
    /// `too_many_dce_rpc_msgs_in_reassembly`).
    fn skip(&mut self) {
        self.stopped = true;
        self.flows = Default::default();
    }

    /// A binpac exception. Over TCP, before the confirmation, a violation that ends the analysis; after it, and
    /// always over SMB (where the violation reaches no parent to remove the analyzer), one that
    /// `DPD::ignore_violations` ignores, and the next PDU is parsed.
    fn error(&mut self, ctx: &mut Ctx, e: DceRpcError) {
        if !self.confirmed && !self.over_smb {
            self.skip();
            ctx.violation(e.to_string());
        }
    }
}

#[derive(Default)]
pub struct DceRpc {
    analysis: Analysis,
    script: Script,
    /// dce_rpc-auth.pac's GSSAPI and NTLM analyzers.
    auth: Auth,
}

/// `SMB::max_dce_rpc_analyzers`: pipes with a DCE_RPC analyzer at once on one SMB connection.
pub const MAX_DCE_RPC_ANALYZERS: usize = 1000;

/// DCE/RPC carried in an SMB connection's named pipes, as smb-pipe.pac's `forward_dce_rpc` does it: one DCE_RPC
/// analyzer per file id, made at the pipe's first data, all of them sharing the connection's script state (so
/// dce_rpc.log's rows carry the SMB connection). The pipe's name is not taken from SMB: main.zeek's `named_pipe`
/// is the bind_ack's secondary address, as over TCP.
#[derive(Debug, Default)]
pub struct NamedPipes {
    analyzers: HashMap<u64, Analysis>,
    script: Script,
}

impl NamedPipes {
    /// `forward_dce_rpc`: `data` written to (`is_orig`) or read from pipe `fid`. At `SMB::max_dce_rpc_analyzers`
    /// a new pipe first discards every analyzer (`smb_discarded_dce_rpc_analyzers`, on which main.zeek drops the
    /// backing table and raises a weird). `auth` is the SMB analyzer's GSSAPI and NTLM: in Zeek a connection has
    /// one `c$ntlm` (and one `c$krb`), so the verifiers of DCE/RPC in its pipes reach the record of its session
    /// setup, not one of their own.
    pub fn deliver(&mut self, ctx: &mut Ctx, fid: u64, is_orig: bool, data: &[u8], auth: &mut Auth) {
        if !self.analyzers.contains_key(&fid) && self.analyzers.len() >= MAX_DCE_RPC_ANALYZERS {
            self.analyzers.clear();
            self.script.backing = None;
            ctx.weird("SMB_discarded_dce_rpc_analyzers", None, "SMB");
        }
        let analysis = self.analyzers.entry(fid).or_insert_with(|| Analysis::pipe(fid));
        if !analysis.stopped {
            analysis.feed(ctx, &mut self.script, auth, is_orig, data);
        }
    }

    /// A close request for `fid`: its analyzer is done and main.zeek's `smb2_close_request` handler drops its
    /// backing record.
    pub fn close(&mut self, fid: u64) {
        self.analyzers.remove(&fid);
        self.script.close(fid);
    }

    /// The connection's removal hook.
    pub fn finish(&mut self, ctx: &mut Ctx) {
        self.script.finish(ctx);
    }

    /// How many pipes have an analyzer.
    pub fn len(&self) -> usize {
        self.analyzers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.analyzers.is_empty()
    }
}

/// dce_rpc-auth.pac's `forward_auth` (always with `is_orig` T): the verifier's type picks where its blob goes.
/// SPNEGO to GSSAPI, NTLMSSP to NTLM; Kerberos is handed to the KRB analyzer's `DeliverStream`, which that
/// datagram analyzer does not implement, so it goes nowhere; the others are weirds.
fn forward_auth(ctx: &mut Ctx, auth: &mut Auth, auth_type: u8, blob: &[u8]) {
    let weird = match auth_type {
        0x09 => {
            auth.gssapi(ctx, blob, true);
            return;
        }
        0x0a => {
            auth.ntlm(ctx, blob);
            return;
        }
        0x10 => return,
        0x0e => "tls_dce_rpc_auth_type",
        0x44 => "netlogon_dce_rpc_auth_type",
        _ => "unknown_dce_rpc_auth_type",
    };
    ctx.weird(weird, Some(auth_type.to_string()), WEIRD_SOURCE);
}

impl Analyzer for DceRpc {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if !self.analysis.stopped {
            self.analysis.feed(ctx, &mut self.script, &mut self.auth, is_orig, data);
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        // `had_gap`: nothing after a gap is parsed, in either direction.
        self.analysis.skip();
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.script.finish(ctx);
        self.auth.finish(ctx);
    }
}

/// Fuzz entry point: arbitrary bytes as both directions of a stream, and as the signature's input.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut DceRpc::default(), Proto::Tcp, 135, data);
    detect(Proto::Tcp, true, data);
}

/// Shared with the SMB tests, which carry these PDUs in named pipes.
#[cfg(test)]
pub(crate) mod tests;
