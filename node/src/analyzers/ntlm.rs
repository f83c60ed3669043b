//! NTLMSSP messages to ntlm.log, as Zeek's binpac analyzer (src/analyzer/protocol/ntlm/: ntlm.pac,
//! ntlm-protocol.pac, ntlm-analyzer.pac, NTLM.cc) and base/protocols/ntlm/main.zeek do it.
//!
//! The NTLM analyzer is never attached by port or signature: the analyzers that carry authentication blobs
//! instantiate it (GSSAPI's NTLMSSP mechanism tokens, SMB's raw NTLMSSP security blobs, DCE-RPC's NTLM auth
//! verifiers; see [`super::gssapi::Auth`]). Each delivery is one `NTLM_SSP_Token` (binpac's datagram): an 8-byte
//! signature (not checked), a message type and, for NEGOTIATE (1), CHALLENGE (2) and AUTHENTICATE (3), the
//! message's fixed fields and its payload. The payload's strings are placed by their fields' offsets, which count
//! from the token's start: binpac reads each as `padding to offset - absolute_offset` within the payload and the
//! string's length after it, so an offset before the payload wraps past its end (unsigned arithmetic) and is
//! binpac's out-of-bound exception, as is a string that runs past the token. Strings are always converted from
//! UTF-16 (`utf16_to_utf8_val`, whatever the unicode flag says), with the weird `utf16_conversion_failed` where that
//! fails. A CHALLENGE's target info is a run of AV pairs from its offset to the first MsvAvEOL or the end of the
//! token (an AV pair id past 10 is binpac's invalid-case exception; a pair's value is read by its id's type, not by
//! its length). A message's event is raised by its `&let proc`, evaluated last, so a message that throws raises
//! nothing; one that parses confirms the analyzer (`ntlm` in conn.log's service). Violations are ignored
//! (`DPD::ignore_violations += { Analyzer::ANALYZER_NTLM }`).
//!
//! The script keeps one record per connection (`c$ntlm`, started by the first NTLM event with its `ts`): a
//! CHALLENGE's target info gives the server's NetBIOS and DNS computer names and DNS tree name, an AUTHENTICATE
//! the client's domain, workstation and user names. GSSAPI's `gssapi_neg_result` other than 1 (accept-incomplete)
//! sets `success` (state 0) and writes the record once; a record not written is written when the connection ends
//! (`finalize_ntlm`).

use super::Ctx;
use super::rdp::utf16_to_utf8;
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};

pub static NTLM_LOG: Schema = Schema {
    path: "ntlm",
    fields: conn_fields![
        f("username", "string"),
        f("hostname", "string"),
        f("domainname", "string"),
        f("server_nb_computer_name", "string"),
        f("server_dns_computer_name", "string"),
        f("server_tree_name", "string"),
        f("success", "bool"),
    ],
};

/// What stops the parse of a token: binpac's exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    #[error("Binpac exception: binpac exception: out_of_bound: {0}")]
    OutOfBound(&'static str),
    #[error("Binpac exception: binpac exception: invalid index for case: NTLM_AV_Pair: {0}")]
    InvalidAvPair(u16),
}

type R<T> = Result<T, NtlmError>;

/// `NTLM_Negotiate_Flags` that the grammar reads.
mod flag {
    pub const NEGOTIATE_VERSION: u32 = 0x0200_0000;
    pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
    pub const NEGOTIATE_OEM_WORKSTATION_SUPPLIED: u32 = 0x0000_2000;
    pub const NEGOTIATE_OEM_DOMAIN_SUPPLIED: u32 = 0x0000_1000;
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
}

/// Where each message's payload starts in the token (`offsetof(payload) + offset`, the signature and type being
/// the 12 bytes before the message).
const NEGOTIATE_PAYLOAD: u32 = 32;
const CHALLENGE_PAYLOAD: u32 = 48;
const AUTHENTICATE_PAYLOAD: u32 = 64;

/// The strings of the messages as raw bytes (UTF-16 by the grammar), converted by the analyzer in the order
/// `proc_ntlm_*` converts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Negotiate {
    pub flags: u32,
    pub domain_name: Option<Vec<u8>>,
    pub workstation: Option<Vec<u8>>,
}

/// `NTLM::AVs`' strings, as `build_av_record` assigns them (a later pair of the same id overwrites).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvPairs {
    pub nb_computer_name: Option<Vec<u8>>,
    pub nb_domain_name: Option<Vec<u8>>,
    pub dns_computer_name: Option<Vec<u8>>,
    pub dns_domain_name: Option<Vec<u8>>,
    pub dns_tree_name: Option<Vec<u8>>,
    pub target_name: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    pub flags: u32,
    pub target_name: Option<Vec<u8>>,
    pub target_info: Option<AvPairs>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authenticate {
    pub flags: u32,
    pub domain_name: Option<Vec<u8>>,
    pub user_name: Option<Vec<u8>>,
    pub workstation: Option<Vec<u8>>,
}

/// One token's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Negotiate(Negotiate),
    Challenge(Challenge),
    Authenticate(Authenticate),
    /// Another message type: `&restofdata`, no event.
    Other(u32),
}

/// A little-endian reader over one token.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, what: &'static str) -> R<&'a [u8]> {
        if n > self.data.len() {
            return Err(NtlmError::OutOfBound(what));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u16(&mut self, what: &'static str) -> R<u16> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> R<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string_data(&mut self) -> R<StringData> {
        Ok(StringData {
            length: self.u16("NTLM_StringData")?,
            _max_length: self.u16("NTLM_StringData")?,
            offset: self.u32("NTLM_StringData")?,
        })
    }
}

/// `NTLM_StringData`: where a string lies in the token.
#[derive(Debug, Clone, Copy)]
struct StringData {
    length: u16,
    _max_length: u16,
    offset: u32,
}

/// `NTLM_String(fields, absolute_offset) withinput payload`: `padding to fields.offset - offset` (unsigned, so an
/// offset before the payload wraps past it), then `fields.length` bytes.
fn string_at(payload: &[u8], fields: StringData, absolute_offset: u32) -> R<&[u8]> {
    let start = usize::try_from(fields.offset.wrapping_sub(absolute_offset)).unwrap_or(usize::MAX);
    let end = start.checked_add(usize::from(fields.length)).ok_or(NtlmError::OutOfBound("NTLM_String"))?;
    payload.get(start..end).ok_or(NtlmError::OutOfBound("NTLM_String"))
}

/// `NTLM_Version withinput payload`: eight bytes the log does not use, which must be there.
fn version(payload: &[u8], flags: u32, absolute_offset: u32, first_offset: u32) -> R<()> {
    if flags & flag::NEGOTIATE_VERSION != 0 && absolute_offset < first_offset && payload.len() < 8 {
        return Err(NtlmError::OutOfBound("NTLM_Version"));
    }
    Ok(())
}

/// `NTLM_SSP_Token`: one delivery.
pub fn parse(token: &[u8]) -> R<Message> {
    let mut r = Reader { data: token };
    r.bytes(8, "NTLM_SSP_Token")?;
    let msg_type = r.u32("NTLM_SSP_Token")?;
    match msg_type {
        1 => negotiate(r).map(Message::Negotiate),
        2 => challenge(r).map(Message::Challenge),
        3 => authenticate(r).map(Message::Authenticate),
        other => Ok(Message::Other(other)),
    }
}

fn negotiate(mut r: Reader) -> R<Negotiate> {
    let flags = r.u32("NTLM_Negotiate")?;
    let domain = r.string_data()?;
    let workstation = r.string_data()?;
    let payload = r.data;
    version(payload, flags, NEGOTIATE_PAYLOAD, domain.offset.min(workstation.offset))?;
    let mut m = Negotiate { flags, ..Negotiate::default() };
    if flags & flag::NEGOTIATE_OEM_DOMAIN_SUPPLIED != 0 {
        m.domain_name = Some(string_at(payload, domain, NEGOTIATE_PAYLOAD)?.to_vec());
    }
    if flags & flag::NEGOTIATE_OEM_WORKSTATION_SUPPLIED != 0 {
        m.workstation = Some(string_at(payload, workstation, NEGOTIATE_PAYLOAD)?.to_vec());
    }
    Ok(m)
}

fn challenge(mut r: Reader) -> R<Challenge> {
    let target_name = r.string_data()?;
    let flags = r.u32("NTLM_Challenge")?;
    r.bytes(16, "NTLM_Challenge")?; // challenge, reserved
    let target_info = r.string_data()?;
    let payload = r.data;
    version(payload, flags, CHALLENGE_PAYLOAD, target_name.offset.min(target_info.offset))?;
    let mut m = Challenge { flags, ..Challenge::default() };
    if flags & flag::REQUEST_TARGET != 0 {
        m.target_name = Some(string_at(payload, target_name, CHALLENGE_PAYLOAD)?.to_vec());
    }
    if flags & flag::NEGOTIATE_TARGET_INFO != 0 {
        // `NTLM_AV_Pair_Sequence(offset: uint16)`: the difference is cut to 16 bits.
        let pad = target_info.offset.wrapping_sub(CHALLENGE_PAYLOAD) as u16;
        let pairs = payload.get(usize::from(pad)..).ok_or(NtlmError::OutOfBound("NTLM_AV_Pair_Sequence"))?;
        m.target_info = Some(av_pairs(pairs)?);
    }
    Ok(m)
}

fn authenticate(mut r: Reader) -> R<Authenticate> {
    let _lm_response = r.string_data()?;
    let nt_response = r.string_data()?;
    let domain = r.string_data()?;
    let user = r.string_data()?;
    let workstation = r.string_data()?;
    let session_key = r.string_data()?;
    let flags = r.u32("NTLM_Authenticate")?;
    let payload = r.data;
    let first = domain.offset.min(user.offset).min(workstation.offset).min(session_key.offset);
    version(payload, flags, AUTHENTICATE_PAYLOAD, first)?;
    let mut m = Authenticate { flags, ..Authenticate::default() };
    // The `&let`s in the grammar's order: response, domain, user, workstation, session key.
    let present = |fields: StringData| fields.length > 0;
    if present(nt_response) {
        string_at(payload, nt_response, AUTHENTICATE_PAYLOAD)?;
    }
    if present(domain) {
        m.domain_name = Some(string_at(payload, domain, AUTHENTICATE_PAYLOAD)?.to_vec());
    }
    if present(user) {
        m.user_name = Some(string_at(payload, user, AUTHENTICATE_PAYLOAD)?.to_vec());
    }
    if present(workstation) {
        m.workstation = Some(string_at(payload, workstation, AUTHENTICATE_PAYLOAD)?.to_vec());
    }
    if present(session_key) {
        string_at(payload, session_key, AUTHENTICATE_PAYLOAD)?;
    }
    Ok(m)
}

/// `NTLM_AV_Pair[] &until($element.last)` from the padding on, and `build_av_record` over the pairs. The array
/// also ends with the data; the underflow violation `build_av_record` then reports is one DPD ignores.
fn av_pairs(data: &[u8]) -> R<AvPairs> {
    let mut r = Reader { data };
    let mut avs = AvPairs::default();
    while !r.data.is_empty() {
        let id = r.u16("NTLM_AV_Pair")?;
        let length = usize::from(r.u16("NTLM_AV_Pair")?);
        let slot = match id {
            0x0000 => return Ok(avs),
            0x0001 => &mut avs.nb_computer_name,
            0x0002 => &mut avs.nb_domain_name,
            0x0003 => &mut avs.dns_computer_name,
            0x0004 => &mut avs.dns_domain_name,
            0x0005 => &mut avs.dns_tree_name,
            0x0009 => &mut avs.target_name,
            0x0006 => {
                r.bytes(4, "NTLM_AV_Pair")?;
                continue;
            }
            0x0007 => {
                r.bytes(8, "NTLM_AV_Pair")?;
                continue;
            }
            0x0008 => {
                // `NTLM_Single_Host`: size, padding, data_present, custom data when flagged, machine id.
                r.bytes(8, "NTLM_Single_Host")?;
                let data_present = r.u32("NTLM_Single_Host")?;
                if data_present & 1 != 0 {
                    r.bytes(4, "NTLM_Single_Host")?;
                }
                r.bytes(4, "NTLM_Single_Host")?;
                continue;
            }
            0x000a => {
                r.bytes(2, "NTLM_AV_Pair")?;
                continue;
            }
            other => return Err(NtlmError::InvalidAvPair(other)),
        };
        *slot = Some(r.bytes(length, "Fixed_Length_String")?.to_vec());
    }
    Ok(avs)
}

/// `utf16_to_utf8_val` for the log, with its weird where the conversion fails (the raw bytes are kept then).
fn utf16(ctx: &mut Ctx, raw: &[u8]) -> String {
    match utf16_to_utf8(raw) {
        Some(utf8) => bytes_to_log_string(&utf8),
        None => {
            ctx.weird("utf16_conversion_failed", Some("utf16 conversion failed in utf16_to_utf8_val".into()), "");
            bytes_to_log_string(raw)
        }
    }
}

/// `NTLM::Info`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Info {
    ts: f64,
    username: Option<String>,
    hostname: Option<String>,
    domainname: Option<String>,
    server_nb_computer_name: Option<String>,
    server_dns_computer_name: Option<String>,
    server_tree_name: Option<String>,
    success: Option<bool>,
    done: bool,
}

impl Info {
    fn values(&self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::opt_str(self.username.clone()),
            Value::opt_str(self.hostname.clone()),
            Value::opt_str(self.domainname.clone()),
            Value::opt_str(self.server_nb_computer_name.clone()),
            Value::opt_str(self.server_dns_computer_name.clone()),
            Value::opt_str(self.server_tree_name.clone()),
            self.success.map_or(Value::Unset, Value::Bool),
        ]);
        v
    }
}

/// base/protocols/ntlm/main.zeek over the connection's `c$ntlm`, shared by every NTLM analyzer instance on it.
#[derive(Debug, Default)]
pub struct Script {
    ntlm: Option<Info>,
}

impl Script {
    /// `set_session`.
    fn set_session(&mut self, ts: f64) -> &mut Info {
        self.ntlm.get_or_insert_with(|| Info { ts, ..Info::default() })
    }

    /// One parsed token: `proc_ntlm_*`'s conversions (and their weirds) and the script's handler.
    pub fn message(&mut self, ctx: &mut Ctx, message: Message) {
        match message {
            Message::Negotiate(m) => {
                for raw in [m.domain_name, m.workstation].into_iter().flatten() {
                    utf16(ctx, &raw);
                }
                self.set_session(ctx.ts);
            }
            Message::Challenge(m) => {
                if let Some(raw) = &m.target_name {
                    utf16(ctx, raw);
                }
                let mut names = [None, None, None];
                if let Some(ti) = &m.target_info {
                    // `build_av_record` converts every string pair, in the record's field order.
                    let fields = [
                        &ti.nb_computer_name,
                        &ti.nb_domain_name,
                        &ti.dns_computer_name,
                        &ti.dns_domain_name,
                        &ti.dns_tree_name,
                        &ti.target_name,
                    ];
                    let converted: Vec<Option<String>> =
                        fields.iter().map(|raw| raw.as_deref().map(|raw| utf16(ctx, raw))).collect();
                    names = [converted[0].clone(), converted[2].clone(), converted[4].clone()];
                }
                let info = self.set_session(ctx.ts);
                if m.target_info.is_some() {
                    let [nb, dns, tree] = names;
                    if nb.is_some() {
                        info.server_nb_computer_name = nb;
                    }
                    if dns.is_some() {
                        info.server_dns_computer_name = dns;
                    }
                    if tree.is_some() {
                        info.server_tree_name = tree;
                    }
                }
            }
            Message::Authenticate(m) => {
                let domain = m.domain_name.map(|raw| utf16(ctx, &raw));
                let user = m.user_name.map(|raw| utf16(ctx, &raw));
                let workstation = m.workstation.map(|raw| utf16(ctx, &raw));
                let info = self.set_session(ctx.ts);
                if domain.is_some() {
                    info.domainname = domain;
                }
                if workstation.is_some() {
                    info.hostname = workstation;
                }
                if user.is_some() {
                    info.username = user;
                }
            }
            Message::Other(_) => {}
        }
    }

    /// `gssapi_neg_result`'s two handlers (priorities 3 and -3).
    pub fn neg_result(&mut self, ctx: &mut Ctx, state: u64) {
        let Some(info) = self.ntlm.as_mut() else { return };
        // "Ignore incomplete replies (state==1)".
        if state != 1 {
            info.success = Some(state == 0);
        }
        if !info.done && info.success.is_some() {
            info.done = true;
            let values = info.values(ctx);
            ctx.log(&NTLM_LOG, values);
        }
    }

    /// The removal hook `finalize_ntlm`.
    pub fn finish(&mut self, ctx: &mut Ctx) {
        if let Some(info) = self.ntlm.as_mut().filter(|i| !i.done) {
            info.done = true;
            let values = info.values(ctx);
            ctx.log(&NTLM_LOG, values);
        }
    }
}

/// Fuzz entry point: the input as one token, and its halves as two, through the parser and the script.
pub fn fuzz(data: &[u8]) {
    let (first, second) = data.split_at(data.len() / 2);
    super::fuzzing::with_ctx(|ctx| {
        let mut script = Script::default();
        for token in [data, first, second] {
            if let Ok(message) = parse(token) {
                script.message(ctx, message);
            }
        }
        script.neg_result(ctx, u64::from(data.first().copied().unwrap_or(0) % 3));
        script.finish(ctx);
    });
}

#[cfg(test)]
pub(crate) mod build;

#[cfg(test)]
mod tests;
