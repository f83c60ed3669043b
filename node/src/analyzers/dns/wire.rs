//! One DNS message, read the way Zeek's `DNS_Interpreter` reads it.
//!
//! Zeek's reader is lenient in specific ways that decide what reaches dns.log, so they are kept here:
//! a short field reads as 0, a resource record's parser may end before or after its `rdlength` (the
//! next record starts wherever it ended), and a record type whose event no loaded script handles is
//! skipped by `rdlength` without being looked at. Zeek 9.1 is strict where 9.0 was not: a bad label
//! fails its name, and LOC, SVCB/HTTPS and OPT data are checked against their own `rdlength`. A failure
//! ends the message but keeps what was read so far. Everything is bounds-checked: no input panics, and
//! compression pointers may only point backwards, through at most [`MAX_COMPRESSION_DEPTH`] hops.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Size of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// Zeek's `dns_max_queries`: more questions than this is not DNS.
pub const MAX_QUERIES: u16 = 25;
/// Zeek's `dns_max_compression_chain_depth`.
pub const MAX_COMPRESSION_DEPTH: usize = 20;
/// Room for a name: Zeek decodes into a 513-byte buffer and keeps one byte for the terminator.
const NAME_CAPACITY: usize = 512;
/// TSIG algorithm names get a bigger buffer in Zeek.
const TSIG_ALG_NAME_CAPACITY: usize = 1023;
/// NetBIOS name service (UDP 137) allows labels longer than 63 bytes and reuses some type codes.
pub const NETBIOS_PORT: u16 = 137;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_WKS: u16 = 11;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_HINFO: u16 = 13;
pub const TYPE_MX: u16 = 15;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_LOC: u16 = 29;
/// NetBIOS `NB` records share the NIMLOC code.
pub const TYPE_NBS: u16 = 32;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_NAPTR: u16 = 35;
pub const TYPE_A6: u16 = 38;
pub const TYPE_EDNS: u16 = 41;
pub const TYPE_DS: u16 = 43;
pub const TYPE_SSHFP: u16 = 44;
pub const TYPE_RRSIG: u16 = 46;
pub const TYPE_NSEC: u16 = 47;
pub const TYPE_DNSKEY: u16 = 48;
pub const TYPE_NSEC3: u16 = 50;
pub const TYPE_NSEC3PARAM: u16 = 51;
pub const TYPE_SVCB: u16 = 64;
pub const TYPE_HTTPS: u16 = 65;
pub const TYPE_SPF: u16 = 99;
pub const TYPE_TKEY: u16 = 249;
pub const TYPE_TSIG: u16 = 250;
pub const TYPE_ANY: u16 = 255;
pub const TYPE_CAA: u16 = 257;
pub const TYPE_BINDS: u16 = 65534;

pub const CLASS_NONE: u16 = 254;
pub const CLASS_ANY: u16 = 255;

pub const OPCODE_QUERY: u8 = 0;
pub const OPCODE_NOTIFY: u8 = 4;
pub const OPCODE_DYNAMIC_UPDATE: u8 = 5;

/// LOC record data has one fixed size (RFC 1876).
const LOC_RDATA_LEN: usize = 16;
/// The smallest SVCB/HTTPS record data: a priority and the root name.
const SVCB_MIN_RDATA_LEN: usize = 3;
/// SvcParamKeys whose values Zeek checks (RFC 9460).
const SVC_PARAM_ALPN: u16 = 1;
const SVC_PARAM_PORT: u16 = 3;

/// EDNS option codes Zeek looks into.
const EDNS_OPTION_ECS: u16 = 8;
const EDNS_OPTION_TCP_KEEPALIVE: u16 = 11;

/// The fixed header (Zeek's `dns_msg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub id: u16,
    pub qr: bool,
    pub opcode: u8,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    /// The three bits between RA and RCODE, AD and CD included (Zeek logs them as one number).
    pub z: u8,
    pub rcode: u8,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn parse(data: &[u8]) -> Option<Header> {
        let h = data.get(..HEADER_LEN)?;
        let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let flags = word(2);
        Some(Header {
            id: word(0),
            qr: flags & 0x8000 != 0,
            opcode: ((flags >> 11) & 0xf) as u8,
            aa: flags & 0x0400 != 0,
            tc: flags & 0x0200 != 0,
            rd: flags & 0x0100 != 0,
            ra: flags & 0x0080 != 0,
            z: ((flags >> 4) & 0x7) as u8,
            rcode: (flags & 0xf) as u8,
            qdcount: word(4),
            ancount: word(6),
            nscount: word(8),
            arcount: word(10),
        })
    }
}

/// Which part of a message a record came from (Zeek's `answer_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Answer,
    Authority,
    Additional,
    /// The answer section of a dynamic update.
    Prerequisite,
    /// The authority section of a dynamic update.
    Update,
}

/// Which Zeek event a question raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionKind {
    /// `dns_request`: the question of a query.
    Request,
    /// `dns_rejected`: a response that carries no records at all.
    Rejected,
    /// `dns_query_reply`: the question echoed in a response (no base script handles it).
    Echo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub kind: QuestionKind,
    /// Lower-cased, as Zeek passes it to `dns_request`.
    pub name: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
}

/// What a record's data says, as far as dns.log cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// A, AAAA and A6.
    Addr(IpAddr),
    /// NS, CNAME, PTR, the MX exchange, the SRV target and the SOA primary server.
    Name(Vec<u8>),
    /// TXT and SPF character strings.
    Strings(Vec<Vec<u8>>),
    Rrsig {
        type_covered: u16,
        signer: Vec<u8>,
    },
    Dnskey {
        algorithm: u8,
    },
    Nsec {
        next: Vec<u8>,
    },
    Nsec3,
    Nsec3Param,
    Ds {
        algorithm: u8,
        digest_type: u8,
    },
    Binds,
    Sshfp {
        fingerprint: Vec<u8>,
    },
    Loc {
        size: u8,
        horiz_pre: u8,
        vert_pre: u8,
    },
    Naptr(Naptr),
    Wks,
    /// A prerequisite of a dynamic update (`dns_dynamic_update_pre`).
    UpdatePrerequisite,
    /// A deletion in a dynamic update (`dns_dynamic_update_del`).
    UpdateDeletion,
    /// A type Zeek has no parser for (`dns_unknown_reply`).
    Unknown,
    /// Parsed, but no base script handles its event (HINFO, CAA, EDNS, TSIG, TKEY, SVCB, NetBIOS ...).
    Unlogged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: Vec<u8>,
    pub service: Vec<u8>,
    pub regexp: Vec<u8>,
    pub replacement: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub section: Section,
    /// The owner name, lower-cased.
    pub name: Vec<u8>,
    pub rtype: u16,
    pub rclass: u16,
    pub ttl: u32,
    pub data: RData,
}

/// A protocol anomaly found while reading (a Zeek weird with its `addl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireWeird {
    pub name: &'static str,
    pub addl: Option<String>,
}

/// Settings that change how a message is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// The responder port is NetBIOS name service (137).
    pub netbios: bool,
    /// Zeek's `dns_skip_all_auth`.
    pub skip_all_auth: bool,
    /// Zeek's `dns_skip_all_addl`.
    pub skip_all_addl: bool,
    /// The transport is UDP (TCP keep-alive options are then a weird).
    pub udp: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { netbios: false, skip_all_auth: true, skip_all_addl: true, udp: true }
    }
}

/// What a message said, in the order Zeek raises its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    /// More than [`MAX_QUERIES`] questions: a protocol violation, nothing past the header was read.
    pub too_many_queries: bool,
    pub questions: Vec<Question>,
    /// Records whose events fire (records of skipped sections are read for their weirds only).
    pub records: Vec<Record>,
    /// The question and answer sections were read completely: Zeek confirms the protocol here.
    pub confirmed: bool,
    pub weirds: Vec<WireWeird>,
}

/// Reads one message. `Err` carries the weird for a message shorter than the header.
pub fn read_message(data: &[u8], opts: ReadOptions) -> Result<Message, WireWeird> {
    let header = Header::parse(data).ok_or(WireWeird { name: "DNS_truncated_len_lt_hdr_len", addl: None })?;
    let mut reader = Reader { msg: data, pos: HEADER_LEN, end: data.len(), opts, weirds: Vec::new() };
    let mut message = Message {
        header,
        too_many_queries: false,
        questions: Vec::new(),
        records: Vec::new(),
        confirmed: false,
        weirds: Vec::new(),
    };
    if header.qdcount > MAX_QUERIES {
        message.too_many_queries = true;
        // Zeek 9.1 names the count and the limit (the `max-queries` baseline: `10 > 3` for a limit of 3).
        let addl = Some(format!("{} > {MAX_QUERIES}", header.qdcount));
        message.weirds.push(WireWeird { name: "DNS_Conn_count_too_large", addl });
        return Ok(message);
    }
    reader.read_sections(&mut message);
    message.weirds.append(&mut reader.weirds);
    Ok(message)
}

/// A position inside the message. `end` bounds the current read (the message end, or the start of a
/// compression pointer while following it), like Zeek's `len`.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
    end: usize,
    opts: ReadOptions,
    weirds: Vec<WireWeird>,
}

/// How a label ended (Zeek's `LabelParseState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Continue,
    EndOfName,
    ParseError,
}

/// Most names fit; longer ones grow as needed.
const TYPICAL_NAME_LEN: usize = 64;

impl<'a> Reader<'a> {
    fn read_sections(&mut self, m: &mut Message) {
        let h = m.header;
        let update = h.opcode == OPCODE_DYNAMIC_UPDATE;
        for _ in 0..h.qdcount {
            match self.question(&h) {
                Some(q) => m.questions.push(q),
                None => return,
            }
        }
        let answer_section = if update { Section::Prerequisite } else { Section::Answer };
        if !self.records(h.ancount, answer_section, false, &mut m.records) {
            return;
        }
        m.confirmed = true;

        let (mut skip_auth, mut skip_addl) = (self.opts.skip_all_auth, self.opts.skip_all_addl);
        if h.ancount > 0 {
            // With an answer in hand the other sections may be skipped (Zeek's per-server skip sets are
            // empty by default).
            skip_auth = skip_auth || h.nscount == 0;
            skip_addl = skip_addl || h.arcount == 0;
        }
        if skip_auth && skip_addl {
            return;
        }
        let authority_section = if update { Section::Update } else { Section::Authority };
        if !self.records(h.nscount, authority_section, skip_auth, &mut m.records) || skip_addl {
            return;
        }
        self.records(h.arcount, Section::Additional, false, &mut m.records);
    }

    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn weird(&mut self, name: &'static str, addl: Option<String>) {
        self.weirds.push(WireWeird { name, addl });
    }

    fn u8(&mut self) -> Option<u8> {
        if self.remaining() == 0 {
            return None;
        }
        let b = self.msg.get(self.pos).copied();
        self.pos += 1;
        b
    }

    /// A 16-bit field; 0 without consuming anything when fewer than 2 bytes are left (Zeek's `ExtractShort`).
    fn u16(&mut self) -> u16 {
        match self.msg.get(self.pos..self.pos + 2) {
            Some(b) if self.remaining() >= 2 => {
                self.pos += 2;
                u16::from_be_bytes([b[0], b[1]])
            }
            _ => 0,
        }
    }

    /// A 32-bit field; 0 without consuming anything when fewer than 4 bytes are left.
    fn u32(&mut self) -> u32 {
        match self.msg.get(self.pos..self.pos + 4) {
            Some(b) if self.remaining() >= 4 => {
                self.pos += 4;
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            }
            _ => 0,
        }
    }

    /// Up to `n` bytes (fewer if the message ends first; none for a negative count), borrowed: names are copied
    /// label by label and most record data is skipped, where a vector per call was an allocation per label.
    fn take(&mut self, n: i64) -> &[u8] {
        let n = usize::try_from(n.max(0)).unwrap_or(0).min(self.remaining());
        let out = self.msg.get(self.pos..self.pos + n).unwrap_or_default();
        self.pos += n;
        out
    }

    /// [`Self::take`], owned.
    fn bytes(&mut self, n: i64) -> Vec<u8> {
        self.take(n).to_vec()
    }

    fn skip(&mut self, n: usize) {
        self.pos += n.min(self.remaining());
    }

    /// A 16-bit length followed by that many bytes (Zeek's `ExtractOctets`).
    fn octets(&mut self) -> Vec<u8> {
        let n = self.u16();
        self.bytes(i64::from(n))
    }

    /// A length-prefixed character string bounded by `rdlen`, which it decrements. `None` when the
    /// record data is used up or the string would run past it (the latter is a weird).
    fn char_string(&mut self, rdlen: &mut i64) -> Option<Vec<u8>> {
        if *rdlen <= 0 {
            return None;
        }
        let size = self.u8()?;
        *rdlen -= 1;
        if i64::from(size) > *rdlen {
            self.weird("DNS_TXT_char_str_past_rdlen", None);
            return None;
        }
        *rdlen -= i64::from(size);
        Some(self.bytes(i64::from(size)))
    }

    /// A domain name as Zeek's `ExtractName` reads it: labels joined with dots, the trailing dot removed,
    /// optionally lower-cased. `None` when a label is malformed or the message ends inside the name: since
    /// Zeek 9.1 (zeek/zeek#5358) that ends the message instead of keeping a partial name.
    fn name(&mut self, capacity: usize, downcase: bool) -> Option<Vec<u8>> {
        // Room for a typical name up front, rather than growing label by label.
        let mut out = Vec::with_capacity(TYPICAL_NAME_LEN);
        self.name_into(&mut out, capacity, downcase, 0)?;
        Some(out)
    }

    fn name_into(&mut self, out: &mut Vec<u8>, capacity: usize, downcase: bool, depth: usize) -> Option<()> {
        let start = out.len();
        loop {
            match self.label(out, capacity, depth) {
                Label::Continue => {}
                Label::EndOfName => break,
                Label::ParseError => return None,
            }
        }
        if out.len() - start >= 255 {
            self.weird("DNS_NAME_too_long", None);
        }
        if out.len() - start >= 2 && out.last() == Some(&b'.') {
            out.pop();
        }
        if downcase && let Some(part) = out.get_mut(start..) {
            part.make_ascii_lowercase();
        }
        Some(())
    }

    /// One label (Zeek's `ExtractLabel`). Errors with a weird of their own keep it; a name cut short by
    /// the end of the data is Zeek's `dns_invalid_name`.
    fn label(&mut self, out: &mut Vec<u8>, capacity: usize, depth: usize) -> Label {
        let label_start = self.pos;
        let Some(len_byte) = self.u8() else {
            return self.truncated_name();
        };
        if len_byte == 0 {
            return Label::EndOfName;
        }
        if self.remaining() == 0 {
            return self.truncated_name();
        }
        if len_byte & 0xc0 == 0xc0 {
            let low = self.u8().unwrap_or(0);
            let offset = (usize::from(len_byte & 0x3f) << 8) | usize::from(low);
            if offset >= label_start {
                self.weird("DNS_label_forward_compress_offset", None);
                return Label::ParseError;
            }
            if depth >= MAX_COMPRESSION_DEPTH {
                self.weird("DNS_max_compression_chain_depth_exceeded", None);
                return Label::ParseError;
            }
            // Follow the pointer, bounded by where it was found, then come back after it.
            let (resume, end) = (self.pos, self.end);
            self.pos = offset;
            self.end = label_start;
            let followed = self.name_into(out, capacity, true, depth + 1);
            self.pos = resume;
            self.end = end;
            return if followed.is_some() { Label::EndOfName } else { Label::ParseError };
        }
        let label_len = usize::from(len_byte);
        if label_len > self.remaining() {
            self.weird("DNS_label_len_gt_pkt", None);
            self.pos = self.end;
            return Label::ParseError;
        }
        if label_len > 63 && !self.opts.netbios {
            self.weird("DNS_label_too_long", None);
            return Label::ParseError;
        }
        if label_len >= capacity.saturating_sub(out.len()) {
            self.weird("DNS_label_len_gt_name_len", None);
            return Label::ParseError;
        }
        out.extend_from_slice(self.take(label_len as i64));
        out.push(b'.');
        Label::Continue
    }

    fn truncated_name(&mut self) -> Label {
        self.weird("dns_invalid_name", None);
        Label::ParseError
    }

    fn question(&mut self, h: &Header) -> Option<Question> {
        let mut name = self.name(NAME_CAPACITY, false)?;
        if self.remaining() < 4 {
            self.weird("DNS_truncated_quest_too_short", None);
            return None;
        }
        let kind = if !h.qr {
            QuestionKind::Request
        } else if h.ancount == 0 && h.nscount == 0 && h.arcount == 0 {
            QuestionKind::Rejected
        } else {
            QuestionKind::Echo
        };
        let qtype = self.u16();
        let qclass = self.u16();
        name.make_ascii_lowercase();
        Some(Question { kind, name, qtype, qclass })
    }

    /// Reads `count` records; `false` if one failed. Records of a skipped section are read (their weirds
    /// count) but not kept.
    fn records(&mut self, count: u16, section: Section, skipped: bool, out: &mut Vec<Record>) -> bool {
        for _ in 0..count {
            match self.record(section, skipped) {
                Some(Some(rr)) => out.push(rr),
                Some(None) => {}
                None => return false,
            }
        }
        true
    }

    /// One resource record: `None` on failure, `Some(None)` for a record that raises no event.
    fn record(&mut self, section: Section, skipped: bool) -> Option<Option<Record>> {
        let name = self.name(NAME_CAPACITY, true)?;
        if self.remaining() < 4 {
            self.weird("DNS_truncated_ans_too_short", None);
            return None;
        }
        let rtype = self.u16();
        let rclass = self.u16();
        let ttl = self.u32();
        let rdlength = usize::from(self.u16());
        if rdlength > self.remaining() {
            self.weird("DNS_truncated_RR_rdlength_lt_len", None);
            return None;
        }
        let update_semantics = matches!(section, Section::Prerequisite | Section::Update);
        let no_data_class = rclass == CLASS_ANY || rclass == CLASS_NONE;
        if rdlength == 0 && self.remaining() > 0 && !(update_semantics && no_data_class) {
            self.weird("DNS_zero_rdlength", None);
            return None;
        }
        let data = if section == Section::Prerequisite {
            self.skip(rdlength);
            Some(RData::UpdatePrerequisite)
        } else if section == Section::Update && no_data_class {
            self.skip(rdlength);
            Some(RData::UpdateDeletion)
        } else {
            self.rdata(rtype, rdlength, skipped)?
        };
        let record = data.filter(|_| !skipped).map(|data| Record { section, name, rtype, rclass, ttl, data });
        Some(record)
    }

    /// Reads record data of `rtype`. `None` on failure; `Some(None)` when the record raises no event
    /// (its type's event is gated on a handler and the section is skipped).
    fn rdata(&mut self, rtype: u16, rdlength: usize, skipped: bool) -> Option<Option<RData>> {
        let start = self.pos;
        let rdlen = rdlength as i64;
        // Types whose event has a handler in Zeek's base scripts are skipped unread when the section is.
        let gated = |r: &mut Self| {
            if skipped {
                r.skip(rdlength);
                true
            } else {
                false
            }
        };
        let data = match rtype {
            TYPE_A => {
                if rdlength != 4 {
                    self.weird("DNS_RR_bad_length", None);
                    return None;
                }
                RData::Addr(IpAddr::V4(Ipv4Addr::from(self.u32())))
            }
            TYPE_AAAA | TYPE_A6 => {
                // Zeek reads 16 bytes whatever rdlength says.
                let mut octets = [0u8; 16];
                for chunk in octets.chunks_mut(4) {
                    chunk.copy_from_slice(&self.u32().to_be_bytes());
                }
                RData::Addr(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            TYPE_NS | TYPE_CNAME | TYPE_PTR => {
                let name = self.name(NAME_CAPACITY, true)?;
                self.check_length(start, rdlength);
                RData::Name(name)
            }
            TYPE_SOA => {
                let mname = self.name(NAME_CAPACITY, true)?;
                let _rname = self.name(NAME_CAPACITY, true)?;
                if self.remaining() < 20 {
                    return None;
                }
                self.skip(20);
                self.check_length(start, rdlength);
                RData::Name(mname)
            }
            TYPE_MX => {
                let _preference = self.u16();
                let name = self.name(NAME_CAPACITY, true)?;
                self.check_length(start, rdlength);
                RData::Name(name)
            }
            TYPE_SRV if self.opts.netbios => {
                // NetBIOS NBSTAT shares the SRV code; Zeek neither parses nor skips it.
                RData::Unlogged
            }
            TYPE_SRV => {
                let (_priority, _weight, _port) = (self.u16(), self.u16(), self.u16());
                let target = self.name(NAME_CAPACITY, true)?;
                self.check_length(start, rdlength);
                RData::Name(target)
            }
            TYPE_WKS => {
                if gated(self) {
                    return Some(None);
                }
                // Zeek raises the event without consuming the data: the next record starts here.
                RData::Wks
            }
            TYPE_TXT | TYPE_SPF => {
                if gated(self) {
                    return Some(None);
                }
                let mut left = rdlen;
                let mut strings = Vec::new();
                while let Some(s) = self.char_string(&mut left) {
                    strings.push(s);
                }
                if left != 0 {
                    return None;
                }
                RData::Strings(strings)
            }
            TYPE_HINFO | TYPE_CAA | TYPE_NBS => {
                self.skip(rdlength);
                RData::Unlogged
            }
            TYPE_EDNS => {
                self.edns_options(rdlength)?;
                RData::Unlogged
            }
            TYPE_TSIG => {
                let _algorithm = self.name(TSIG_ALG_NAME_CAPACITY, true)?;
                let _time = (self.u32(), self.u16());
                let _fudge = self.u16();
                let _mac = self.octets();
                let _orig_id = self.u16();
                let _error = self.u16();
                let _other = self.octets();
                RData::Unlogged
            }
            TYPE_TKEY => {
                let _algorithm = self.name(NAME_CAPACITY, true)?;
                let _validity = (self.u32(), self.u32());
                let _mode_error = (self.u16(), self.u16());
                let _key = self.octets();
                let _other = self.octets();
                self.check_length(start, rdlength);
                RData::Unlogged
            }
            TYPE_SVCB | TYPE_HTTPS => {
                // A priority and at least the root name, counted within the record (zeek/zeek#5461).
                if rdlength < SVCB_MIN_RDATA_LEN {
                    self.weird("DNS_SVCB_wrong_length", None);
                    return None;
                }
                let _priority = self.u16();
                let _target = self.name(NAME_CAPACITY, false)?;
                let parsed = self.pos - start;
                if parsed < rdlength {
                    let params_end = start + rdlength;
                    self.svc_params(params_end);
                    self.pos = params_end;
                }
                RData::Unlogged
            }
            TYPE_RRSIG => {
                if gated(self) {
                    return Some(None);
                }
                if self.remaining() < 18 {
                    return None;
                }
                let type_covered = self.u16();
                let [algorithm, _labels] = self.u16().to_be_bytes();
                let _ttl_expiration_inception = (self.u32(), self.u32(), self.u32());
                let _key_tag = self.u16();
                let name_start = self.pos;
                let signer = self.name(NAME_CAPACITY, true)?;
                let signature_len = rdlen - ((self.pos - name_start) as i64 + 18);
                self.take(signature_len);
                self.algorithm_weird("RRSIG", algorithm);
                RData::Rrsig { type_covered, signer }
            }
            TYPE_DNSKEY => {
                if gated(self) {
                    return Some(None);
                }
                if self.remaining() < 4 {
                    return None;
                }
                let flags = self.u16();
                let [protocol, algorithm] = self.u16().to_be_bytes();
                self.take(rdlen - 4);
                if flags & 0xfe7e != 0 {
                    self.weird("DNSSEC_DNSKEY_Invalid_Flag", Some(flags.to_string()));
                }
                if flags & 0x0181 == 0x0181 {
                    self.weird("DNSSEC_DNSKEY_Revoked_KSK", Some(flags.to_string()));
                }
                if protocol != 3 {
                    self.weird("DNSSEC_DNSKEY_Invalid_Protocol", Some(protocol.to_string()));
                }
                self.algorithm_weird("DNSKEY", algorithm);
                RData::Dnskey { algorithm }
            }
            TYPE_NSEC => {
                if gated(self) {
                    return Some(None);
                }
                let next = self.name(NAME_CAPACITY, true)?;
                let bitmaps_len = rdlen - (self.pos - start) as i64;
                self.type_bitmaps(bitmaps_len, "DNSSEC_NSEC_bitmapLen0");
                RData::Nsec { next }
            }
            TYPE_NSEC3 => {
                if gated(self) {
                    return Some(None);
                }
                if self.remaining() < 6 {
                    return None;
                }
                let _hash_flags_iterations = (self.u16(), self.u16());
                let salt_len = self.u8().unwrap_or(0);
                self.take(i64::from(salt_len));
                let hash_len = self.u8().unwrap_or(0);
                self.take(i64::from(hash_len));
                let bitmaps_len = rdlen - (self.pos - start) as i64;
                self.type_bitmaps(bitmaps_len, "DNSSEC_NSEC3_bitmapLen0");
                RData::Nsec3
            }
            TYPE_NSEC3PARAM => {
                if gated(self) {
                    return Some(None);
                }
                if self.remaining() < 5 {
                    return None;
                }
                let _hash_flags_iterations = (self.u16(), self.u16());
                let salt_len = self.u8().unwrap_or(0);
                self.take(i64::from(salt_len));
                RData::Nsec3Param
            }
            TYPE_DS => {
                if gated(self) {
                    return Some(None);
                }
                if self.remaining() < 4 {
                    return None;
                }
                let _key_tag = self.u16();
                let [algorithm, digest_type] = self.u16().to_be_bytes();
                self.take(rdlen - 4);
                match digest_type {
                    1..=4 => {}
                    0 => self.weird("DNSSEC_DS_ReservedDigestType", Some(digest_type.to_string())),
                    _ => self.weird("DNSSEC_DS_unknown_DigestType", Some(digest_type.to_string())),
                }
                RData::Ds { algorithm, digest_type }
            }
            TYPE_BINDS => {
                if gated(self) {
                    return Some(None);
                }
                if self.remaining() < 5 {
                    return None;
                }
                let _algorithm_key_flag = self.u32();
                self.take(rdlen - 4);
                RData::Binds
            }
            TYPE_SSHFP => {
                if gated(self) {
                    return Some(None);
                }
                if self.remaining() < 2 {
                    return None;
                }
                let _algorithm_type = self.u16();
                RData::Sshfp { fingerprint: self.bytes(rdlen - 2) }
            }
            TYPE_LOC => {
                // Zeek 9.1 (zeek/zeek#5357) rejects any other size first, even in a skipped section.
                if rdlength != LOC_RDATA_LEN {
                    self.weird("dns_invalid_loc_length", None);
                    return None;
                }
                if gated(self) {
                    return Some(None);
                }
                let [version, size] = self.u16().to_be_bytes();
                let [horiz_pre, vert_pre] = self.u16().to_be_bytes();
                let _position = (self.u32(), self.u32(), self.u32());
                if version != 0 {
                    self.weird("DNS_LOC_version_unrecognized", Some(version.to_string()));
                }
                RData::Loc { size, horiz_pre, vert_pre }
            }
            TYPE_NAPTR => {
                if gated(self) {
                    return Some(None);
                }
                let order = self.u16();
                let preference = self.u16();
                let mut left = rdlen - 4;
                let mut field = |r: &mut Self| r.char_string(&mut left).unwrap_or_default();
                let (flags, service, regexp) = (field(self), field(self), field(self));
                let replacement = self.name(NAME_CAPACITY, true)?;
                self.check_length(start, rdlength);
                RData::Naptr(Naptr { order, preference, flags, service, regexp, replacement })
            }
            _ => {
                self.weird("DNS_RR_unknown_type", Some(rtype.to_string()));
                self.skip(rdlength);
                RData::Unknown
            }
        };
        Some(Some(data))
    }

    fn check_length(&mut self, start: usize, rdlength: usize) {
        if self.pos - start != rdlength {
            self.weird("DNS_RR_length_mismatch", None);
        }
    }

    /// The NSEC/NSEC3 type bitmaps: window, length, bitmap, until `len` bytes are used.
    fn type_bitmaps(&mut self, mut len: i64, zero_len_weird: &'static str) {
        while len > 0 && self.remaining() > 0 {
            let [window, bitmap_len] = self.u16().to_be_bytes();
            if bitmap_len == 0 {
                self.weird(zero_len_weird, Some(window.to_string()));
                break;
            }
            self.take(i64::from(bitmap_len));
            len -= 2 + i64::from(bitmap_len);
        }
    }

    /// Zeek's weirds for DNSSEC algorithms it considers unsafe, private or unknown.
    fn algorithm_weird(&mut self, rr: &str, algorithm: u8) {
        let kind = match algorithm {
            1 => "NotRecommended",
            2..=8 | 10 | 12..=16 => return,
            252 => "Indirect",
            253 => "PrivateDNS",
            254 => "PrivateOID",
            _ => "unknown",
        };
        let name = match (rr, kind) {
            ("RRSIG", "NotRecommended") => "DNSSEC_RRSIG_NotRecommended_ZoneSignAlgo",
            ("RRSIG", "Indirect") => "DNSSEC_RRSIG_Indirect_ZoneSignAlgo",
            ("RRSIG", "PrivateDNS") => "DNSSEC_RRSIG_PrivateDNS_ZoneSignAlgo",
            ("RRSIG", "PrivateOID") => "DNSSEC_RRSIG_PrivateOID_ZoneSignAlgo",
            ("RRSIG", _) => "DNSSEC_RRSIG_unknown_ZoneSignAlgo",
            (_, "NotRecommended") => "DNSSEC_DNSKEY_NotRecommended_ZoneSignAlgo",
            (_, "Indirect") => "DNSSEC_DNSKEY_Indirect_ZoneSignAlgo",
            (_, "PrivateDNS") => "DNSSEC_DNSKEY_PrivateDNS_ZoneSignAlgo",
            (_, "PrivateOID") => "DNSSEC_DNSKEY_PrivateOID_ZoneSignAlgo",
            _ => "DNSSEC_DNSKEY_unknown_ZoneSignAlgo",
        };
        self.weird(name, Some(algorithm.to_string()));
    }

    /// The SvcParams of an SVCB/HTTPS record up to `params_end`: key, length, value. Only their weirds
    /// matter (no base script handles the events); a value running past the record ends the list.
    fn svc_params(&mut self, params_end: usize) {
        while params_end.saturating_sub(self.pos) >= 4 && self.remaining() >= 4 {
            let key = self.u16();
            let len = usize::from(self.u16());
            if len > params_end.saturating_sub(self.pos) || len > self.remaining() {
                return;
            }
            let value = self.bytes(len as i64);
            match key {
                SVC_PARAM_ALPN if !alpn_ids_fit(&value) => self.weird("DNS_SVCB_alpn_length_invalid", None),
                SVC_PARAM_PORT if value.len() != 2 => self.weird("DNS_SVCB_port_length_invalid", None),
                _ => {}
            }
        }
    }

    /// EDNS options, bounded by the OPT record's own data since Zeek 9.1 (zeek/zeek#5359): an option
    /// running past it, or bytes left over, is `EDNS_truncated_option` and ends the message.
    fn edns_options(&mut self, rdlength: usize) -> Option<()> {
        let record_end = self.pos + rdlength;
        let left = |r: &Self| record_end.saturating_sub(r.pos);
        while left(self) >= 4 {
            let code = self.u16();
            let len = usize::from(self.u16());
            if len > left(self) {
                break;
            }
            let option_start = self.pos;
            match code {
                EDNS_OPTION_ECS => self.edns_client_subnet(len),
                EDNS_OPTION_TCP_KEEPALIVE if (len == 0 || len == 2) && self.opts.udp => {
                    self.weird("EDNS_TCP_Keepalive_In_UDP", None);
                }
                _ => {}
            }
            self.pos = option_start + len;
        }
        if left(self) > 0 {
            self.weird("EDNS_truncated_option", None);
            return None;
        }
        Some(())
    }

    /// The weirds of an EDNS client-subnet option (its data is not logged).
    fn edns_client_subnet(&mut self, len: usize) {
        if len <= 4 {
            self.weird("EDNS_ECS_invalid_option_len", None);
            return;
        }
        let family = self.u16();
        let [source_prefix, _scope_prefix] = self.u16().to_be_bytes();
        let address_bits = (len - 4) * 8;
        let (max_prefix, prefix_weird, addr_weird) = match family {
            1 => (32, "EDNS_ECS_invalid_addr_v4_prefix", "EDNS_ECS_invalid_addr_v4"),
            2 => (128, "EDNS_ECS_invalid_addr_v6_prefix", "EDNS_ECS_invalid_addr_v6"),
            _ => return,
        };
        if usize::from(source_prefix) > max_prefix {
            self.weird(prefix_weird, Some(format!("{source_prefix} bits")));
        } else if usize::from(source_prefix) > address_bits {
            self.weird(addr_weird, Some(format!("need {source_prefix} bits, have {address_bits} bits")));
        }
    }
}

/// Whether an `alpn` value is a whole sequence of length-prefixed protocol ids.
fn alpn_ids_fit(mut value: &[u8]) -> bool {
    while let Some((&len, rest)) = value.split_first() {
        let Some(tail) = rest.get(usize::from(len)..) else { return false };
        value = tail;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn header_fields() {
        // dns-dup-responses: the reply header (AA, no RD/RA) and the query's CD bit counted in Z.
        let h = Header::parse(&hex("529484100001000400020004")).unwrap();
        assert!(h.qr && h.aa && !h.rd && !h.ra);
        assert_eq!((h.id, h.z, h.rcode, h.ancount, h.nscount, h.arcount), (21140, 1, 0, 4, 2, 4));
        assert!(Header::parse(&[0; 11]).is_none());
    }

    #[test]
    fn compression_pointers_resolve_and_lowercase() {
        // dns-reply-first: eight A answers, all owned by a pointer to the question name.
        let reply = hex(concat!(
            "646584800001000800070007027573037632370b6469737472696275746564036e65740000010001",
            "c00c00010001000003840004ce6d40ba"
        ));
        let mut r = Reader { msg: &reply, pos: 12, end: reply.len(), opts: ReadOptions::default(), weirds: vec![] };
        assert_eq!(r.name(NAME_CAPACITY, false).as_deref(), Some(&b"us.v27.distributed.net"[..]));
        r.skip(4);
        assert_eq!(r.name(NAME_CAPACITY, true).as_deref(), Some(&b"us.v27.distributed.net"[..]));
        assert!(r.weirds.is_empty());
    }

    #[test]
    fn pointer_loops_and_forward_pointers_stop() {
        // A name that points at itself, and one pointing forward.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[0xc0, 12]);
        let mut r = Reader { msg: &msg, pos: 12, end: msg.len(), opts: ReadOptions::default(), weirds: vec![] };
        // Since Zeek 9.1 a bad pointer fails the name instead of ending it (zeek/zeek#5358).
        assert_eq!(r.name(NAME_CAPACITY, true), None);
        assert_eq!(r.weirds.len(), 1);
        assert_eq!(r.weirds[0].name, "DNS_label_forward_compress_offset");

        // A long backward chain: each pointer points two bytes back.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[1, b'a', 0]);
        for i in 0..200u16 {
            let target = if i == 0 { 12 } else { 15 + 2 * (i - 1) };
            msg.extend_from_slice(&(0xc000 | target).to_be_bytes());
        }
        let start = msg.len() - 2;
        let mut r = Reader { msg: &msg, pos: start, end: msg.len(), opts: ReadOptions::default(), weirds: vec![] };
        r.name(NAME_CAPACITY, true);
        // The name of the `scripts.base.protocols.dns.max-compression-depth` baseline, once, without addl.
        let weirds: Vec<(&str, Option<&str>)> = r.weirds.iter().map(|w| (w.name, w.addl.as_deref())).collect();
        assert_eq!(weirds, [("DNS_max_compression_chain_depth_exceeded", None)]);
    }

    #[test]
    fn too_many_questions_is_a_violation() {
        let m = read_message(&hex("00010000001a000000000000"), ReadOptions::default()).unwrap();
        assert!(m.too_many_queries && !m.confirmed);
        assert_eq!(m.weirds, [WireWeird { name: "DNS_Conn_count_too_large", addl: Some("26 > 25".to_string()) }]);
    }

    #[test]
    fn short_message_is_a_weird() {
        assert_eq!(read_message(b"abc", ReadOptions::default()).unwrap_err().name, "DNS_truncated_len_lt_hdr_len");
    }
}
