//! Zeek's `base/protocols/dns/main.zeek`: pairing queries with replies by transaction id and filling
//! one `DNS::Info` (a dns.log record) per pair.
//!
//! The script keeps, per connection, one "fast path" pending query plus queues of pending queries and
//! pending replies keyed by transaction id; `c$dns` is the record the current message works on. Those
//! records are shared by reference in Zeek, so here they live in an arena and everything else holds
//! their ids. A record is written when both its query and its reply were seen (at once for multicast
//! DNS), when a queue overflows, or when the connection goes away.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::consts;
use super::wire::{
    CLASS_ANY, CLASS_NONE, Header, Message, OPCODE_DYNAMIC_UPDATE, OPCODE_NOTIFY, OPCODE_QUERY, QuestionKind, RData,
    Record, Section, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_SPF, TYPE_SRV,
};

/// `DNS::max_pending_msgs`: unmatched messages kept per transaction id.
const MAX_PENDING_MSGS: usize = 50;
/// `DNS::max_pending_query_ids`: transaction ids with unmatched messages.
const MAX_PENDING_QUERY_IDS: usize = 50;

/// One dns.log record in the making (`DNS::Info`).
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub ts: f64,
    pub trans_id: u16,
    pub rtt: Option<f64>,
    pub query: Option<Vec<u8>>,
    pub qclass: Option<u16>,
    pub qtype: Option<u16>,
    pub qtype_name: Option<String>,
    pub rcode: Option<u8>,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    pub z: u8,
    pub answers: Option<Vec<Vec<u8>>>,
    pub ttls: Option<Vec<u32>>,
    pub rejected: bool,
    pub opcode: Option<u8>,
    pub opcode_name: Option<String>,
    saw_query: bool,
    saw_reply: bool,
}

impl Info {
    fn new(ts: f64, trans_id: u16) -> Info {
        Info {
            ts,
            trans_id,
            rtt: None,
            query: None,
            qclass: None,
            qtype: None,
            qtype_name: None,
            rcode: None,
            aa: false,
            tc: false,
            rd: false,
            ra: false,
            z: 0,
            answers: None,
            ttls: None,
            rejected: false,
            opcode: None,
            opcode_name: None,
            saw_query: false,
            saw_reply: false,
        }
    }
}

/// What the script reads from the connection besides the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageContext {
    /// Network time of the message.
    pub ts: f64,
    /// The responder address is in `DNS::multicast_subnets` (mDNS, LLMNR): no pairing, log at once.
    pub resp_multicast: bool,
    /// The responder is UDP port 137: NetBIOS names are decoded and opcodes named the NetBIOS way.
    pub netbios: bool,
}

type InfoId = u64;

/// Unmatched messages by transaction id, in the order the ids first appeared.
#[derive(Debug, Default)]
struct PendingMessages {
    queues: Vec<(u16, VecDeque<InfoId>)>,
}

impl PendingMessages {
    fn pop(&mut self, trans_id: u16) -> Option<InfoId> {
        let i = self.queues.iter().position(|(id, q)| *id == trans_id && !q.is_empty())?;
        self.pop_at(i)
    }

    /// The head of the first non-empty queue (Zeek picks "an arbitrary" one).
    fn pop_any(&mut self) -> Option<InfoId> {
        let i = self.queues.iter().position(|(_, q)| !q.is_empty())?;
        self.pop_at(i)
    }

    fn pop_at(&mut self, i: usize) -> Option<InfoId> {
        let queue = &mut self.queues.get_mut(i)?.1;
        let head = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(i);
        }
        head
    }

    /// Queues `info`; overflowing queues are given up on and returned for logging.
    fn enqueue(&mut self, trans_id: u16, info: InfoId, given_up: &mut Vec<InfoId>) {
        match self.queues.iter().position(|(id, _)| *id == trans_id) {
            None => {
                if self.queues.len() > MAX_PENDING_QUERY_IDS {
                    given_up.extend(self.drain());
                }
                self.queues.push((trans_id, VecDeque::from([info])));
            }
            Some(i) => {
                let queue = &mut self.queues[i].1;
                if queue.len() > MAX_PENDING_MSGS {
                    given_up.extend(queue.drain(..));
                }
                queue.push_back(info);
            }
        }
    }

    fn drain(&mut self) -> Vec<InfoId> {
        self.queues.drain(..).flat_map(|(_, q)| q).collect()
    }
}

/// The records under construction, by id. Ids only grow, so the list stays sorted by pushing; most connections hold
/// one at a time, and a map's first insert would allocate room for several large records per DNS connection.
/// Bounded by the pending-message limits above.
#[derive(Debug, Default)]
struct PendingInfos(Vec<(InfoId, Info)>);

impl PendingInfos {
    fn index(&self, id: InfoId) -> Option<usize> {
        self.0.binary_search_by_key(&id, |(i, _)| *i).ok()
    }

    fn get(&self, id: &InfoId) -> Option<&Info> {
        self.index(*id).map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, id: &InfoId) -> Option<&mut Info> {
        self.index(*id).map(|i| &mut self.0[i].1)
    }

    /// `id` must be newer than every id held.
    fn insert(&mut self, id: InfoId, info: Info) {
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1);
        }
        self.0.push((id, info));
    }

    fn remove(&mut self, id: &InfoId) -> Option<Info> {
        let info = self.index(*id).map(|i| self.0.remove(i).1);
        if self.0.is_empty() {
            // Answered: the connection waits for its session timeout without a record's worth of room.
            self.0 = Vec::new();
        }
        info
    }
}

/// The per-connection DNS state of Zeek's script (`c$dns` and `c$dns_state`).
#[derive(Debug, Default)]
pub struct Tracker {
    infos: PendingInfos,
    next_id: InfoId,
    current: Option<InfoId>,
    pending_query: Option<InfoId>,
    pending_queries: PendingMessages,
    pending_replies: PendingMessages,
}

impl Tracker {
    /// Nothing is pending: the tracker acts as a fresh one would on whatever comes next (the id counter and the
    /// current record only matter while records are pending), so the analyzer can drop it.
    pub fn is_idle(&self) -> bool {
        self.infos.0.is_empty()
            && self.pending_query.is_none()
            && [&self.pending_queries, &self.pending_replies].iter().all(|p| p.queues.iter().all(|(_, q)| q.is_empty()))
    }

    /// Runs the script's event handlers for one message; records ready for dns.log go to `out`.
    pub fn message(&mut self, msg: &Message, ctx: &MessageContext, out: &mut Vec<Info>) {
        let header = &msg.header;
        if is_tracked(header) {
            self.set_session(header, ctx, out);
        }
        for q in &msg.questions {
            match q.kind {
                QuestionKind::Request if is_tracked(header) => {
                    let (name, qtype, qclass) = (&q.name, q.qtype, q.qclass);
                    self.with_current(|info| request(info, header, name, qtype, qclass, ctx.netbios));
                }
                QuestionKind::Rejected => self.with_current(|info| info.rejected = true),
                _ => {}
            }
        }
        for rr in &msg.records {
            self.reply(header, rr, ctx);
        }
        self.end(header, out);
    }

    /// The connection is going away: every unmatched query and reply is written.
    pub fn finish(&mut self, out: &mut Vec<Info>) {
        let mut ids: Vec<InfoId> = self.pending_query.take().into_iter().collect();
        ids.extend(self.pending_queries.drain());
        ids.extend(self.pending_replies.drain());
        self.write(ids, out);
        self.current = None;
    }

    fn with_current(&mut self, f: impl FnOnce(&mut Info)) {
        if let Some(info) = self.current.and_then(|id| self.infos.get_mut(&id)) {
            f(info);
        }
    }

    fn new_info(&mut self, ts: f64, trans_id: u16) -> InfoId {
        let id = self.next_id;
        self.next_id += 1;
        self.infos.insert(id, Info::new(ts, trans_id));
        id
    }

    fn write(&mut self, ids: Vec<InfoId>, out: &mut Vec<Info>) {
        out.extend(ids.into_iter().filter_map(|id| self.infos.remove(&id)));
    }

    /// `DNS::set_session`: finds or creates the record this message belongs to.
    fn set_session(&mut self, h: &Header, ctx: &MessageContext, out: &mut Vec<Info>) {
        let is_query = !h.qr;
        let mut given_up = Vec::new();
        let current = if ctx.resp_multicast {
            let id = self.new_info(ctx.ts, h.id);
            if let Some(info) = self.infos.get_mut(&id) {
                info.saw_query = true;
                info.saw_reply = true;
            }
            id
        } else if is_query {
            match self.pending_replies.pop(h.id) {
                Some(id) => id,
                None => {
                    let id = self.new_info(ctx.ts, h.id);
                    if self.pending_query.is_none() {
                        self.pending_query = Some(id);
                    } else {
                        self.pending_queries.enqueue(h.id, id, &mut given_up);
                    }
                    id
                }
            }
        } else if let Some(id) = self.pending_query.filter(|id| self.infos.get(id).is_some_and(|i| i.trans_id == h.id))
        {
            // Refill the fast path so queued queries keep their order.
            self.pending_query = self.pending_queries.pop(h.id).or_else(|| self.pending_queries.pop_any());
            id
        } else if let Some(id) = self.pending_queries.pop(h.id) {
            id
        } else {
            let id = self.new_info(ctx.ts, h.id);
            self.pending_replies.enqueue(h.id, id, &mut given_up);
            id
        };
        self.write(given_up, out);
        self.current = Some(current);
        self.with_current(|info| {
            if !is_query {
                info.rcode = Some(h.rcode);
                if h.rcode != 0 && h.qdcount == 0 {
                    info.rejected = true;
                }
            }
            info.opcode = Some(h.opcode);
            info.opcode_name = Some(consts::opcode_name(h.opcode, ctx.netbios));
        });
    }

    /// `DNS::do_reply`, called for each record whose event a base script handles.
    fn reply(&mut self, h: &Header, rr: &Record, ctx: &MessageContext) {
        if !is_tracked(h) || !h.qr || !matches!(rr.section, Section::Answer | Section::Prerequisite | Section::Update) {
            return;
        }
        let Some(mut text) = reply_text(rr, h, ctx.netbios) else { return };
        if h.opcode == OPCODE_DYNAMIC_UPDATE && rr.section == Section::Update && !text.starts_with(b"del:") {
            text.splice(0..0, b"add: ".iter().copied());
        }
        let ts = ctx.ts;
        self.with_current(|info| {
            if info.query.is_none() {
                info.query = Some(rr.name.clone());
            }
            info.aa = h.aa;
            info.ra = h.ra;
            if info.rtt.is_none() {
                // A zero rtt means only the reply was seen.
                let rtt = ts - info.ts;
                info.rtt = (rtt != 0.0).then_some(rtt);
            }
            if !text.is_empty() {
                info.answers.get_or_insert_with(Vec::new).push(text);
                info.ttls.get_or_insert_with(Vec::new).push(rr.ttl);
            }
        });
    }

    /// `dns_end`: marks what was seen and writes the record once it has both halves.
    fn end(&mut self, h: &Header, out: &mut Vec<Info>) {
        let Some(id) = self.current else { return };
        let Some(info) = self.infos.get_mut(&id) else { return };
        if h.qr {
            info.saw_reply = true;
        } else {
            info.saw_query = true;
        }
        if info.saw_query && info.saw_reply {
            self.write(vec![id], out);
            self.current = None;
        }
    }
}

/// The script follows standard queries, NOTIFY and dynamic updates only.
fn is_tracked(h: &Header) -> bool {
    matches!(h.opcode, OPCODE_QUERY | OPCODE_NOTIFY | OPCODE_DYNAMIC_UPDATE)
}

/// `dns_request`: the question of a query.
fn request(info: &mut Info, h: &Header, name: &[u8], qtype: u16, qclass: u16, netbios: bool) {
    info.rd = h.rd;
    info.tc = h.tc;
    info.qclass = Some(qclass);
    info.qtype = Some(qtype);
    info.z = h.z;
    let mut qtype_name = consts::query_type_name(qtype);
    let mut query = name.to_vec();
    if netbios {
        if let Some(decoded) = decode_netbios_name(name) {
            query = decoded;
        }
        // NetBIOS NBSTAT reuses the SRV code.
        if qtype == TYPE_SRV {
            qtype_name = "NBSTAT".to_string();
        }
    }
    info.qtype_name = Some(qtype_name);
    info.query = Some(query);
}

/// Zeek's `decode_netbios_name`: the 15-character name of a first-level encoded NetBIOS name, without
/// trailing spaces or NULs. `None` where Zeek returns an empty string.
pub fn decode_netbios_name(encoded: &[u8]) -> Option<Vec<u8>> {
    if encoded.len() != 32 {
        return None;
    }
    let mut decoded = Vec::with_capacity(16);
    for pair in encoded.chunks(2) {
        let nibble = |c: u8| {
            let c = c.to_ascii_uppercase();
            (b'A'..=b'P').contains(&c).then(|| c - b'A')
        };
        let byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        if byte.is_ascii_alphanumeric() || byte.is_ascii_punctuation() || byte == b' ' || byte < 3 {
            decoded.push(byte);
        } else {
            break;
        }
    }
    // The 16th byte is the name type, not part of the name.
    decoded.truncate(15);
    while decoded.last().is_some_and(|&c| c == b' ' || c == 0) {
        decoded.pop();
    }
    (!decoded.is_empty()).then_some(decoded)
}

/// How the script's reply handlers describe a record in `answers`; `None` for records no base script
/// handles (those leave no trace at all, not even `rtt`).
pub fn reply_text(rr: &Record, h: &Header, netbios: bool) -> Option<Vec<u8>> {
    let text = match &rr.data {
        RData::Addr(addr) => {
            let addr = format_addr(addr);
            if h.opcode == OPCODE_DYNAMIC_UPDATE && !netbios {
                let kind = match rr.rtype {
                    TYPE_A => "A",
                    TYPE_AAAA => "AAAA",
                    _ => "A6",
                };
                let mut s = format!("{kind} ").into_bytes();
                s.extend_from_slice(&rr.name);
                s.extend_from_slice(format!(" {addr}").as_bytes());
                s
            } else {
                addr.into_bytes()
            }
        }
        RData::Name(name) => name.clone(),
        RData::Strings(strings) => {
            let kind: &[u8] = if rr.rtype == TYPE_SPF { b"SPF" } else { b"TXT" };
            let mut s = Vec::new();
            for (i, string) in strings.iter().enumerate() {
                if i > 0 {
                    s.push(b' ');
                }
                s.extend_from_slice(kind);
                s.extend_from_slice(format!(" {} ", string.len()).as_bytes());
                s.extend_from_slice(string);
            }
            s
        }
        RData::Rrsig { type_covered, signer } => {
            let signer: &[u8] = if signer.is_empty() { b"<Root>" } else { signer };
            concat(&[format!("RRSIG {type_covered} ").as_bytes(), signer])
        }
        RData::Dnskey { algorithm } => format!("DNSKEY {algorithm}").into_bytes(),
        RData::Nsec { next } => concat(&[b"NSEC ", &rr.name, b" ", next]),
        RData::Nsec3 => b"NSEC3".to_vec(),
        RData::Nsec3Param => b"NSEC3PARAM".to_vec(),
        RData::Ds { algorithm, digest_type } => format!("DS {algorithm} {digest_type}").into_bytes(),
        RData::Binds => b"BIND9 signing signal".to_vec(),
        RData::Sshfp { fingerprint } => {
            let mut s = String::from("SSHFP: ");
            for b in fingerprint {
                let _ = write!(s, "{b:02x}");
            }
            s.into_bytes()
        }
        RData::Loc { size, horiz_pre, vert_pre } => format!("LOC:  {size} {horiz_pre} {vert_pre}").into_bytes(),
        RData::Naptr(n) => {
            let mut tail = n.regexp.clone();
            if !n.replacement.is_empty() {
                if !tail.is_empty() {
                    tail.push(b' ');
                }
                tail.extend_from_slice(&n.replacement);
            }
            let head = format!("NAPTR {} {} ", n.order, n.preference);
            concat(&[head.as_bytes(), &n.flags, b" ", &n.service, b" ", &tail])
        }
        RData::Wks => Vec::new(),
        RData::UpdatePrerequisite => update_prerequisite_text(rr),
        RData::UpdateDeletion => update_deletion_text(rr),
        RData::Unknown => format!("<unknown type={}>", rr.rtype).into_bytes(),
        RData::Unlogged => return None,
    };
    Some(text)
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `dns_dynamic_update_pre`.
fn update_prerequisite_text(rr: &Record) -> Vec<u8> {
    let type_name = consts::query_type_name(rr.rtype);
    let what: Vec<u8> = match (rr.rclass, rr.rtype) {
        (CLASS_NONE, TYPE_ANY) => concat(&[b"NameNotInUse ", &rr.name]),
        (CLASS_ANY, TYPE_ANY) => concat(&[b"NameInUse ", &rr.name]),
        (CLASS_NONE, _) => concat(&[b"NoRRSet ", type_name.as_bytes(), b" ", &rr.name]),
        _ => concat(&[b"RRSetExists ", type_name.as_bytes(), b" ", &rr.name]),
    };
    concat(&[b"pre: ", &what])
}

/// `dns_dynamic_update_del`.
fn update_deletion_text(rr: &Record) -> Vec<u8> {
    let type_name = consts::query_type_name(rr.rtype);
    let what: Vec<u8> = match (rr.rclass, rr.rtype) {
        (CLASS_ANY, TYPE_ANY) => concat(&[b"RRSet * ", &rr.name]),
        (CLASS_NONE, _) => concat(&[b"RR ", type_name.as_bytes(), b" ", &rr.name]),
        _ => concat(&[b"RRSet ", type_name.as_bytes()]),
    };
    concat(&[b"del: ", &what])
}

/// Zeek prints IPv4-mapped IPv6 addresses as IPv4.
pub fn format_addr(addr: &IpAddr) -> String {
    let shown = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*addr, IpAddr::V4),
        IpAddr::V4(_) => *addr,
    };
    let mut out = String::with_capacity(if shown.is_ipv4() { 15 } else { 39 });
    crate::logs::push_addr(&mut out, &shown);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netbios_names_decode_like_zeek() {
        // wikipedia.pcap: a browser election name, lower-cased as Zeek hands it to the script.
        assert_eq!(decode_netbios_name(b"ecfcfheddaedecdddiddeedbegdedcaa").as_deref(), Some(&b"BRWC0CB383D1F42"[..]));
        assert_eq!(decode_netbios_name(b"FEEIEFCAEOEFFEECEJEPFDCAEOEBENEF").as_deref(), Some(&b"THE NETBIOS NAM"[..]));
        assert_eq!(decode_netbios_name(b"short"), None);
        assert_eq!(decode_netbios_name(b"ZZEIEFCAEOEFFEECEJEPFDCAEOEBENEF"), None);
        assert_eq!(decode_netbios_name(b"CACACACACACACACACACACACACACACAAA"), None);
    }

    #[test]
    fn mapped_addresses_print_as_ipv4() {
        assert_eq!(format_addr(&"::ffff:1.2.3.4".parse().unwrap()), "1.2.3.4");
        assert_eq!(format_addr(&"fe80::1".parse().unwrap()), "fe80::1");
    }
}
