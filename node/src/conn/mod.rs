//! Connection tracking: Zeek's session table, TCP endpoint state machine and history, UDP and ICMP
//! sessions, stream reassembly, and the conn.log record each connection ends with.

#[cfg(test)]
mod baselines;
mod history;
mod reassembly;
mod services;
mod table;
mod tcp;
mod uid;

use std::collections::BTreeSet;
use std::net::IpAddr;

pub use history::History;
pub use reassembly::{Chunk, Stream};
pub use services::ServiceList;
pub(crate) use table::growth_when_full;
pub use table::{ConnTable, Slot};
pub use tcp::{EndpointState, TcpOutcome, TcpSession};
pub use uid::{Uid, UidGenerator};

use crate::analyzers::{Analyzer, AnalyzerSpec, ConnId, Proto};
use crate::logs::{CONN, LogRecord, Value};

/// A connection's key in the session table: both directions map to the same key, except for one-way ICMP
/// messages (Zeek's `is_one_way`: an unreachable from A to B is another connection than one from B to A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnKey {
    a: (IpAddr, u16),
    b: (IpAddr, u16),
    proto: u8,
    /// `a` is the sender: the key is not ordered.
    one_way: bool,
}

/// The derived hash of the endpoints and protocol, as before one-way keys existed: [`ConnKey::symmetric_hash`] shards
/// flows and must not change. (Keys that differ only in `one_way` hash alike; they are never equal.)
impl std::hash::Hash for ConnKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.a.hash(state);
        self.b.hash(state);
        self.proto.hash(state);
    }
}

impl ConnKey {
    /// The key of a one-way ICMP message from `src`: not ordered, so the reverse direction is another key.
    pub fn one_way(src: IpAddr, sp: u16, dst: IpAddr, dp: u16, proto: u8) -> Self {
        ConnKey { a: (src, sp), b: (dst, dp), proto, one_way: true }
    }

    pub fn new(src: IpAddr, sp: u16, dst: IpAddr, dp: u16, proto: u8) -> Self {
        let src_first = match (src, dst) {
            // The same order as the tuples' (an IPv4 address orders as its number), in one comparison of two words:
            // every packet builds a key.
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                (u64::from(s.to_bits()) << 16 | u64::from(sp)) <= (u64::from(d.to_bits()) << 16 | u64::from(dp))
            }
            _ => (src, sp) <= (dst, dp),
        };
        let (a, b) = if src_first { ((src, sp), (dst, dp)) } else { ((dst, dp), (src, sp)) };
        ConnKey { a, b, proto, one_way: false }
    }

    /// The key as the session table hashes it: two addresses as 128-bit numbers and the ports and protocol in one
    /// word. Three multiplies of the hasher, where the derived `Hash` (kept: [`Self::symmetric_hash`] shards flows
    /// by it and must not change) feeds it discriminants, addresses and ports one at a time.
    pub(crate) fn table_words(&self) -> (u128, u128, u64) {
        let ports_proto = u64::from(self.a.1) | (u64::from(self.b.1) << 16) | (u64::from(self.proto) << 32);
        (addr_bits(self.a.0), addr_bits(self.b.0), ports_proto)
    }

    /// A hash of the key that is the same for both directions: what shards flows over threads and workers.
    pub fn symmetric_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// An address as a number (IPv4 in the low 32 bits; it shares hashes, never equality, with some IPv6 addresses).
fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(a.to_bits()),
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// Per-protocol session state.
#[derive(Debug)]
pub enum Session {
    Tcp(Box<TcpSession>),
    /// UDP: whether each side has sent, and payload bytes per side (low words, see [`Tally`]).
    Udp {
        active: [bool; 2],
        bytes: [u32; 2],
    },
    /// ICMP: payload bytes per side (low words, see [`Tally`]).
    Icmp {
        bytes: [u32; 2],
    },
    Other,
}

/// An analyzer attached to a connection. Whether it was detached is a bit in [`Conn`] (a flag here would pad the
/// entry to 24 bytes).
///
/// Built at its first call, not when attached: a port's analyzers are attached at the first packet, and a connection
/// that never carries anything (a scan's SYN, a refused or unanswered attempt) then holds no analyzer state (HTTP's
/// is 224 bytes) for the seconds it lives. An analyzer is built from its spec and the transport alone, so building it
/// later changes nothing it does. Two words: a built analyzer gives its spec ([`Analyzer::spec`]), so the entry keeps
/// the spec only until then, and again once the analyzer is done ([`Conn::retire_analyzer_if_done`]); the spec
/// beside the analyzer made every entry, about one per connection, three words.
pub enum Attached {
    NotBuilt(&'static AnalyzerSpec),
    Built(Box<dyn Analyzer>),
}

impl Attached {
    fn new(spec: &'static AnalyzerSpec) -> Self {
        Attached::NotBuilt(spec)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Attached::NotBuilt(spec) => spec.name,
            Attached::Built(analyzer) => analyzer.spec().name,
        }
    }

    /// The analyzer, built now if this is its first call.
    pub fn analyzer(&mut self, proto: Proto) -> &mut dyn Analyzer {
        if let Attached::NotBuilt(spec) = self {
            *self = Attached::Built((spec.new)(proto));
        }
        match self {
            Attached::Built(analyzer) => analyzer.as_mut(),
            Attached::NotBuilt(_) => unreachable!("built above"),
        }
    }

    /// Whether the analyzer was built (it has been called).
    pub fn is_started(&self) -> bool {
        matches!(self, Attached::Built(_))
    }

    /// The analyzer if it was built and says it is done ([`Analyzer::is_done`]).
    fn done_analyzer(&self) -> Option<&dyn Analyzer> {
        match self {
            Attached::Built(analyzer) if analyzer.is_done() => Some(analyzer.as_ref()),
            _ => None,
        }
    }
}

/// The parts of a connection that only tunnels and connections with weirds use.
#[derive(Debug, Default)]
pub struct Rare {
    /// Uids of the tunnels the connection arrived in.
    pub tunnel_parents: BTreeSet<Uid>,
    /// The innermost tunnel of the connection's last packet (Zeek's `Connection::encapsulation`, which it compares
    /// with each packet's), and how many changes of it were reported (`Tunnel::max_changes_per_connection`).
    pub encapsulation: Option<Uid>,
    pub tunnel_changes: u8,
    /// The connection is a UDP tunnel (Teredo, VXLAN, Geneve, GTP-U, AYIYA) whose payload is decapsulated.
    pub tunnel: Option<crate::decode::UdpTunnel>,
    /// Tunnel packets decapsulated per direction (Teredo is confirmed once both carried one).
    pub tunnel_seen: [bool; 2],
    /// tunnel.log has this tunnel's DISCOVER line (and will get its CLOSE): Zeek logs it when a packet inside first
    /// makes a connection, not at a packet that carries none (a Teredo bubble).
    pub tunnel_discovered: bool,
    /// The tunnel's packet analyzer reported a violation: Zeek tries no later packet of the connection as that
    /// tunnel (the session's analyzer state is `VIOLATED`).
    pub tunnel_violated: bool,
    /// Weird names already logged for this connection.
    pub weirds_logged: Vec<String>,
    /// UDP datagrams with bad checksums per direction (originator first), for the scaled `C`/`c` letters.
    pub udp_bad_checksums: [history::Scaled; 2],
    /// The high words of each [`Tally`] per side (originator first): how often its 32-bit word wrapped.
    carries: [[u32; 2]; TALLIES],
    /// The connection's services when they do not pack into [`Conn`]'s word (flag `SERVICES_SPILLED`).
    services: Vec<&'static str>,
    /// Content detection's buffers while it runs. Every TCP connection with payload has them, but only for its
    /// first packets (at the benchmark mix's peak, 3 of 15,704 connections did): here they cost a connection a
    /// word only while they exist, and [`Conn::end_content_detection`] frees this box with them when nothing else
    /// is in it.
    dpd: Option<DpdBuffer>,
}

impl Rare {
    /// Holds nothing a new one does not, so the box can go. Every field is named (a new one must be added here
    /// before this compiles) so that freeing the box can never lose state.
    fn is_unused(&self) -> bool {
        let Rare {
            tunnel_parents,
            encapsulation,
            tunnel_changes,
            tunnel,
            tunnel_seen,
            tunnel_discovered,
            tunnel_violated,
            weirds_logged,
            udp_bad_checksums,
            carries,
            services,
            dpd,
        } = self;
        tunnel_parents.is_empty()
            && encapsulation.is_none()
            && *tunnel_changes == 0
            && tunnel.is_none()
            && *tunnel_seen == [false; 2]
            && !tunnel_discovered
            && !tunnel_violated
            && weirds_logged.is_empty()
            && *udp_bad_checksums == [history::Scaled::default(); 2]
            && *carries == [[0; 2]; TALLIES]
            && services.is_empty()
            && dpd.is_none()
    }
}

/// What content detection has seen of a TCP connection, while it runs ([`Conn::end_content_detection`] frees it).
#[derive(Debug, Default)]
pub struct DpdBuffer {
    /// The first bytes of each direction (originator first), contiguous, for signature matching.
    pub streams: [Vec<u8>; 2],
    /// Arrival order across directions: (originator?, length), to replay the streams as they came.
    pub order: Vec<(bool, u32)>,
    pub seen: [usize; 2],
    /// The first analyzer of the detection's scope: detection started afresh after a hand-over is Zeek's PIA under
    /// the handing analyzer, which attaches its own children even where the connection already has an analyzer of
    /// the same kind (an HTTP analyzer attached by port 1080 to a SOCKS connection does not keep the tunnelled HTTP
    /// from being analysed).
    pub first_analyzer: usize,
}

impl DpdBuffer {
    /// The buffered bytes in arrival order.
    pub fn replay(&self) -> Vec<(bool, &[u8])> {
        let mut at = [0usize; 2];
        self.order
            .iter()
            .map(|&(is_orig, len)| {
                let side = usize::from(!is_orig);
                let start = at[side];
                at[side] += len as usize;
                (is_orig, &self.streams[side][start..at[side]])
            })
            .collect()
    }
}

/// The most analyzers one connection holds: the bits of [`Conn`]'s detached set.
pub const MAX_ANALYZERS: usize = u32::BITS as usize;

/// A per-side total a connection keeps as a 32-bit word: 4 bytes a side less in every connection than a `u64`, and
/// only a flow of four billion packets or 4 GiB ever wraps one; the high words are kept in [`Rare`] (`carries`).
#[derive(Debug, Clone, Copy)]
enum Tally {
    Packets,
    IpBytes,
    /// UDP and ICMP payload bytes (TCP's come from sequence numbers).
    PayloadBytes,
}

const TALLIES: usize = 3;

/// One packet's share of a tally (IP lengths are 16 bits, 32 with IPv6's jumbograms).
fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Adds `n` to a tally's low word; whether it wrapped.
fn add_low(low: &mut u32, n: u32) -> bool {
    let (sum, wrapped) = low.overflowing_add(n);
    *low = sum;
    wrapped
}

/// A connection's yes/no facts, one bit each of [`Conn`]'s `flags` (as six `bool`s they were six bytes).
mod flag {
    /// First payload seen from the originator (content detection runs once per side).
    pub const SAW_ORIG_PAYLOAD: u8 = 1 << 0;
    /// First payload seen from the responder; one place left of [`SAW_ORIG_PAYLOAD`].
    pub const SAW_RESP_PAYLOAD: u8 = 1 << 1;
    /// The scheduled removal is a close (not the attempt timer).
    pub const CLOSE_SCHEDULED: u8 = 1 << 2;
    /// A UDP DNS session: it ends after Zeek's shorter DNS session timeout.
    pub const UDP_DNS: u8 = 1 << 3;
    /// Content detection is over (a protocol was confirmed, or both buffers filled up).
    pub const DPD_DONE: u8 = 1 << 4;
    /// Some weird was raised on this connection (logged or not): Zeek's `DidWeird`.
    pub const DID_WEIRD: u8 = 1 << 5;
    /// The services are in [`super::Rare`], not packed in `Conn::services`.
    pub const SERVICES_SPILLED: u8 = 1 << 6;
    /// A one-way ICMP message's connection: its key is not ordered.
    pub const ONE_WAY: u8 = 1 << 7;
}

/// Appends to a boxed slice (reallocated to exactly the new length).
fn push_exact<T>(slice: &mut Box<[T]>, item: T) {
    let mut items = std::mem::take(slice).into_vec();
    items.reserve_exact(1);
    items.push(item);
    *slice = items.into_boxed_slice();
}

/// One tracked connection.
pub struct Conn {
    pub uid: Uid,
    pub id: ConnId,
    pub ip_proto: u8,
    pub start: f64,
    pub last: f64,
    pub session: Session,
    pub history: History,
    /// Packets and IP bytes per side, modulo 2^32 ([`Tally`]; [`Conn::pkts`] and [`Conn::ip_bytes`] add the
    /// high words).
    pkts: [u32; 2],
    ip_bytes: [u32; 2],
    /// Confirmed services in confirmation order, packed ([`Conn::services`] reads them).
    services: u64,
    /// Boxed slices, not vectors: they change a few times per connection at most, and a slice is a word smaller
    /// with no spare room.
    pub analyzers: Box<[Attached]>,
    /// Bit `i` set: `analyzers[i]` stops receiving data (violation, or handed over to TLS).
    detached_analyzers: u32,
    /// Bits of [`flag`].
    flags: u8,
    /// When the engine should remove this connection, if scheduled (close, attempt, reset); infinite when not
    /// (a plain `f64` is half an `Option<f64>`). Read and written through [`Conn::removal_at`].
    remove_at: f64,
    pub local_orig: Option<bool>,
    pub local_resp: Option<bool>,
    /// What few connections need (tunnels, weirds), out of line so the common connection stays small.
    pub rare: Option<Box<Rare>>,
    /// Tells a timer of this connection from one of an earlier connection in the same slot: the low 32 bits of
    /// the connection's number in its engine (all a timer carries; 32 more bits here were padding's worth).
    pub serial: u32,
    /// The deadline of this connection's armed timer (infinite while none is armed).
    pub timer_due: f64,
}

impl Conn {
    pub fn new(uid: Uid, id: ConnId, ip_proto: u8, ts: f64) -> Self {
        let session = match id.proto {
            Proto::Tcp => Session::Tcp(Box::default()),
            Proto::Udp => Session::Udp { active: [false; 2], bytes: [0; 2] },
            Proto::Icmp => Session::Icmp { bytes: [0; 2] },
            Proto::Unknown => Session::Other,
        };
        Conn {
            uid,
            id,
            ip_proto,
            start: ts,
            last: ts,
            session,
            history: History::default(),
            pkts: [0; 2],
            ip_bytes: [0; 2],
            services: 0,
            analyzers: Box::default(),
            detached_analyzers: 0,
            flags: 0,
            remove_at: f64::INFINITY,
            local_orig: None,
            local_resp: None,
            rare: None,
            serial: 0,
            timer_due: f64::INFINITY,
        }
    }

    /// When the engine should remove this connection, if scheduled.
    pub fn removal_at(&self) -> Option<f64> {
        self.remove_at.is_finite().then_some(self.remove_at)
    }

    /// Schedules (a finite time) or unschedules (`None`) the removal.
    pub fn set_removal_at(&mut self, at: Option<f64>) {
        self.remove_at = at.unwrap_or(f64::INFINITY);
    }

    /// The key of this connection in the session table (the same for both directions).
    pub fn key(&self) -> ConnKey {
        let id = &self.id;
        if self.is_one_way() {
            return ConnKey::one_way(id.orig_h, id.orig_p, id.resp_h, id.resp_p, self.ip_proto);
        }
        ConnKey::new(id.orig_h, id.orig_p, id.resp_h, id.resp_p, self.ip_proto)
    }

    /// A one-way ICMP message's connection (see [`ConnKey::one_way`]).
    pub fn is_one_way(&self) -> bool {
        self.flags & flag::ONE_WAY != 0
    }

    pub fn set_one_way(&mut self) {
        self.flags |= flag::ONE_WAY;
    }

    /// Whether `key` names this connection: [`Self::key`] compared without ordering the endpoints first (on every
    /// probe of the session table).
    #[inline]
    pub fn has_key(&self, key: &ConnKey) -> bool {
        let id = &self.id;
        let (orig, resp) = ((id.orig_h, id.orig_p), (id.resp_h, id.resp_p));
        self.ip_proto == key.proto
            && ((orig == key.a && resp == key.b) || (!key.one_way && orig == key.b && resp == key.a))
    }

    /// Swaps the originator's and responder's addresses and ports (and whether each is local).
    pub fn flip_addresses(&mut self) {
        let id = self.id;
        self.id =
            ConnId { orig_h: id.resp_h, orig_p: id.resp_p, resp_h: id.orig_h, resp_p: id.orig_p, proto: id.proto };
        std::mem::swap(&mut self.local_orig, &mut self.local_resp);
    }

    /// Swaps originator and responder, with everything counted per side.
    pub fn flip(&mut self) {
        self.flip_addresses();
        self.pkts.swap(0, 1);
        self.ip_bytes.swap(0, 1);
        let saw = self.flags & (flag::SAW_ORIG_PAYLOAD | flag::SAW_RESP_PAYLOAD);
        self.flags ^= saw;
        self.flags |= ((saw & flag::SAW_ORIG_PAYLOAD) << 1) | ((saw & flag::SAW_RESP_PAYLOAD) >> 1);
        if let Some(rare) = &mut self.rare {
            rare.tunnel_seen.swap(0, 1);
            rare.carries.iter_mut().for_each(|sides| sides.swap(0, 1));
        }
        match &mut self.session {
            Session::Udp { active, bytes } => {
                active.swap(0, 1);
                bytes.swap(0, 1);
            }
            Session::Icmp { bytes } => bytes.swap(0, 1),
            Session::Tcp(tcp) => tcp.streams.swap(0, 1),
            Session::Other => {}
        }
    }

    /// Bytes of TCP content gaps (always 0 for other protocols).
    pub fn missed_bytes(&self) -> u64 {
        match &self.session {
            Session::Tcp(tcp) => tcp.missed_bytes(),
            _ => 0,
        }
    }

    /// The reassembly of one TCP direction (0: the originator's); `None` for other protocols.
    pub fn stream(&self, side: usize) -> Option<&Stream> {
        match &self.session {
            Session::Tcp(tcp) => tcp.streams.get(side),
            _ => None,
        }
    }

    /// The reassembly of one TCP direction (0: the originator's); `None` for other protocols.
    pub fn stream_mut(&mut self, side: usize) -> Option<&mut Stream> {
        match &mut self.session {
            Session::Tcp(tcp) => Some(&mut tcp.streams[side]),
            _ => None,
        }
    }

    /// Counts one packet of `ip_len` IP bytes from side `side` (0: the originator).
    pub fn count_packet(&mut self, side: usize, ip_len: usize) {
        if add_low(&mut self.pkts[side], 1) {
            self.carry(Tally::Packets, side);
        }
        if add_low(&mut self.ip_bytes[side], saturating_u32(ip_len)) {
            self.carry(Tally::IpBytes, side);
        }
    }

    /// Counts a UDP datagram or ICMP message of `payload_len` bytes from side `side` (a UDP side that sent one is
    /// active); nothing for other protocols.
    pub fn count_payload(&mut self, side: usize, payload_len: usize) {
        let low = match &mut self.session {
            Session::Udp { active, bytes } => {
                active[side] = true;
                &mut bytes[side]
            }
            Session::Icmp { bytes } => &mut bytes[side],
            Session::Tcp(_) | Session::Other => return,
        };
        if add_low(low, saturating_u32(payload_len)) {
            self.carry(Tally::PayloadBytes, side);
        }
    }

    #[cold]
    fn carry(&mut self, tally: Tally, side: usize) {
        self.rare().carries[tally as usize][side] += 1;
    }

    /// A tally's whole value per side, from its low words.
    fn total(&self, tally: Tally, low: [u32; 2]) -> [u64; 2] {
        let high = self.rare.as_ref().map_or([0; 2], |r| r.carries[tally as usize]);
        [0, 1].map(|side| u64::from(high[side]) << 32 | u64::from(low[side]))
    }

    /// Packets per side (originator first).
    pub fn pkts(&self) -> [u64; 2] {
        self.total(Tally::Packets, self.pkts)
    }

    /// IP bytes per side (originator first), as Zeek counts them: each packet's IP total length.
    pub fn ip_bytes(&self) -> [u64; 2] {
        self.total(Tally::IpBytes, self.ip_bytes)
    }

    /// The out-of-line part, created on first use.
    pub fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The tunnel this connection carries, once its payload was decapsulated.
    pub fn tunnel(&self) -> Option<crate::decode::UdpTunnel> {
        self.rare.as_ref().and_then(|r| r.tunnel)
    }

    /// Whether the tunnel's packet analyzer reported a violation on this connection (see [`Rare::tunnel_violated`]).
    pub fn tunnel_violated(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.tunnel_violated)
    }

    /// Whether tunnel.log has this tunnel's DISCOVER line.
    pub fn tunnel_discovered(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.tunnel_discovered)
    }

    /// Confirmed services in confirmation order.
    pub fn services(&self) -> ServiceList<'_> {
        match &self.rare {
            Some(rare) if self.flags & flag::SERVICES_SPILLED != 0 => ServiceList::Spilled(&rare.services),
            _ => ServiceList::Packed(self.services),
        }
    }

    pub fn add_service(&mut self, s: &'static str) {
        // Confirmations repeat (a tunnel confirms on every packet): a known service costs no allocation.
        if self.services().iter().any(|known| known == s) {
            return;
        }
        if self.flags & flag::SERVICES_SPILLED == 0
            && let Some(word) = services::push_packed(self.services, s)
        {
            self.services = word;
            return;
        }
        let mut names: Vec<&'static str> = self.services().iter().collect();
        names.push(s);
        self.set_services(names);
    }

    /// Drops service `name` (its analyzer failed after confirming it); whether the connection had it.
    pub fn remove_service(&mut self, name: &str) -> bool {
        let mut names: Vec<&'static str> = self.services().iter().collect();
        let Some(index) = names.iter().position(|s| *s == name) else { return false };
        names.remove(index);
        self.set_services(names);
        true
    }

    fn set_services(&mut self, names: Vec<&'static str>) {
        match services::pack(&names) {
            Some(word) => {
                self.services = word;
                self.flags &= !flag::SERVICES_SPILLED;
                if let Some(rare) = &mut self.rare {
                    rare.services = Vec::new();
                }
            }
            None => {
                self.services = 0;
                self.flags |= flag::SERVICES_SPILLED;
                self.rare().services = names;
            }
        }
    }

    /// Attaches a new analyzer built by `spec`. A connection holds at most [`MAX_ANALYZERS`] (one per detached
    /// bit); there are fewer specs than that, and each is attached once at most but for the TLS hand-over.
    pub fn attach(&mut self, spec: &'static AnalyzerSpec) {
        if self.analyzers.len() >= MAX_ANALYZERS {
            return;
        }
        push_exact(&mut self.analyzers, Attached::new(spec));
    }

    /// Whether `analyzers[index]` was detached.
    pub fn is_detached(&self, index: usize) -> bool {
        self.detached_analyzers & (1 << index) != 0
    }

    /// `analyzers[index]` receives no more data (it is still finished with the connection).
    pub fn detach(&mut self, index: usize) {
        self.detached_analyzers |= 1 << index;
    }

    /// Frees the state of `analyzers[index]` if it says it is done ([`Analyzer::is_done`]): the entry goes back to
    /// the analyzer's spec, detached, so nothing reaches it and, never built as far as finishing goes, it has
    /// nothing to finish. An established TLS or logged-in SSH connection idles for minutes with nothing to log.
    pub fn retire_analyzer_if_done(&mut self, index: usize) {
        if let Some(spec) = self.analyzers[index].done_analyzer().map(|done| done.spec()) {
            self.analyzers[index] = Attached::NotBuilt(spec);
            self.detach(index);
        }
    }

    /// Some analyzer still receives data.
    pub fn has_attached_analyzer(&self) -> bool {
        (0..self.analyzers.len()).any(|i| !self.is_detached(i))
    }

    /// Content detection is over: its buffers are freed (with the out-of-line part if nothing else is in it).
    pub fn end_content_detection(&mut self) {
        if let Some(rare) = &mut self.rare {
            rare.dpd = None;
            if rare.is_unused() {
                self.rare = None;
            }
        }
        self.flags |= flag::DPD_DONE;
    }

    /// Content detection goes on with what it buffered so far.
    pub fn resume_content_detection(&mut self, dpd: DpdBuffer) {
        self.rare().dpd = Some(dpd);
        self.flags &= !flag::DPD_DONE;
    }

    /// Content detection starts afresh on the rest of the stream ([`crate::analyzers::Action::HandOver`]), with a
    /// scope of its own: the analyzers attached so far do not keep their kind from being attached again.
    pub fn restart_content_detection(&mut self) {
        let first_analyzer = self.analyzers.len();
        self.resume_content_detection(DpdBuffer { first_analyzer, ..DpdBuffer::default() });
    }

    /// The start of each TCP direction kept for content detection (created empty on first use), and the
    /// analyzers attached in its scope so far, which detection must not attach again.
    pub fn content_detection_state(&mut self) -> (&mut DpdBuffer, &[Attached]) {
        let rare = self.rare.get_or_insert_with(Box::default);
        let dpd = rare.dpd.get_or_insert_with(DpdBuffer::default);
        let scope = self.analyzers.get(dpd.first_analyzer..).unwrap_or_default();
        (dpd, scope)
    }

    /// Takes content detection's buffers out (to replay them), if there are any.
    pub fn take_content_detection_buffers(&mut self) -> Option<DpdBuffer> {
        self.rare.as_mut().and_then(|rare| rare.dpd.take())
    }

    /// Content detection holds buffers.
    pub fn has_content_detection_buffers(&self) -> bool {
        self.rare.as_ref().is_some_and(|rare| rare.dpd.is_some())
    }

    /// Content detection is over (a protocol was confirmed, or both buffers filled up).
    pub fn content_detection_done(&self) -> bool {
        self.flags & flag::DPD_DONE != 0
    }

    /// Whether side `side` (0: the originator) sent payload already; notes that it did.
    pub fn note_payload(&mut self, side: usize) -> bool {
        let bit = flag::SAW_ORIG_PAYLOAD << side;
        let seen = self.flags & bit != 0;
        self.flags |= bit;
        seen
    }

    /// The scheduled removal is a close (not the attempt timer).
    pub fn close_scheduled(&self) -> bool {
        self.flags & flag::CLOSE_SCHEDULED != 0
    }

    pub fn set_close_scheduled(&mut self) {
        self.flags |= flag::CLOSE_SCHEDULED;
    }

    /// A UDP DNS session: it ends after Zeek's shorter DNS session timeout.
    pub fn is_udp_dns(&self) -> bool {
        self.flags & flag::UDP_DNS != 0
    }

    pub fn set_udp_dns(&mut self) {
        self.flags |= flag::UDP_DNS;
    }

    /// Notes that a weird was raised on this connection; whether one was before (Zeek's `DidWeird`).
    pub fn note_weird(&mut self) -> bool {
        let had = self.flags & flag::DID_WEIRD != 0;
        self.flags |= flag::DID_WEIRD;
        had
    }

    /// conn_state, orig_bytes and resp_bytes as Zeek's conn.zeek computes them.
    fn state_and_sizes(&self) -> (&'static str, u64, u64) {
        match &self.session {
            Session::Tcp(t) => (t.conn_state(self.history.letters()), t.orig_size(), t.resp_size()),
            Session::Udp { active, bytes } => {
                let state = match (active[0], active[1]) {
                    (true, true) => "SF",
                    (true, false) => "S0",
                    (false, true) => "SHR",
                    (false, false) => "OTH",
                };
                let [orig, resp] = self.total(Tally::PayloadBytes, *bytes);
                (state, orig, resp)
            }
            Session::Icmp { bytes } => {
                let [orig, resp] = self.total(Tally::PayloadBytes, *bytes);
                ("OTH", orig, resp)
            }
            Session::Other => ("OTH", 0, 0),
        }
    }

    /// The conn.log record for this connection.
    pub fn log_record(&self) -> LogRecord {
        let (state, orig_bytes, resp_bytes) = self.state_and_sizes();
        let duration = self.last - self.start;
        // Zeek leaves duration and byte counts unset for a connection with no duration.
        let (dur, ob, rb) = if duration > 0.0 {
            (Value::Interval(duration), Value::Count(orig_bytes), Value::Count(resp_bytes))
        } else {
            (Value::Unset, Value::Unset, Value::Unset)
        };
        let services = self.services();
        let service = if services.is_empty() { Value::Unset } else { Value::str(services.joined()) };
        let history = if self.history.letters().is_empty() { Value::Unset } else { Value::str(self.history.letters()) };
        let parents = match &self.rare {
            Some(rare) if !rare.tunnel_parents.is_empty() => Value::str_set(rare.tunnel_parents.iter().copied()),
            _ => Value::Unset,
        };
        let (pkts, ip_bytes) = (self.pkts(), self.ip_bytes());
        let values = vec![
            Value::Time(self.start),
            Value::str(self.uid),
            Value::Addr(self.id.orig_h),
            Value::Port(self.id.orig_p),
            Value::Addr(self.id.resp_h),
            Value::Port(self.id.resp_p),
            Value::Enum(self.id.proto.as_enum()),
            service,
            dur,
            ob,
            rb,
            Value::str(state),
            self.local_orig.map_or(Value::Unset, Value::Bool),
            self.local_resp.map_or(Value::Unset, Value::Bool),
            Value::Count(self.missed_bytes()),
            history,
            Value::Count(pkts[0]),
            Value::Count(ip_bytes[0]),
            Value::Count(pkts[1]),
            Value::Count(ip_bytes[1]),
            parents,
            Value::Count(u64::from(self.ip_proto)),
        ];
        LogRecord::new(&CONN, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Content detection's buffers share the out-of-line box: it goes with them when nothing else is in it (most
    /// connections), and stays, keeping what else it holds, when something is.
    #[test]
    fn content_detection_frees_the_box_it_alone_used() {
        let mut conn = test_conn(80, Proto::Tcp, 6);
        conn.content_detection_state().0.streams[0].extend_from_slice(b"GET / HTTP/1.1");
        assert!(conn.has_content_detection_buffers());
        conn.end_content_detection();
        assert!(conn.rare.is_none() && conn.content_detection_done());

        conn.resume_content_detection(DpdBuffer::default());
        conn.rare().weirds_logged.push("possible_split_routing".to_string());
        conn.end_content_detection();
        assert!(!conn.has_content_detection_buffers());
        assert_eq!(conn.rare.as_ref().map(|rare| rare.weirds_logged.len()), Some(1));
    }

    /// Detection started afresh by a hand-over has a scope of its own: the analyzers attached before it (HTTP by
    /// port under SOCKS) are not among those it must not attach again; a resumed detection keeps its scope.
    #[test]
    fn content_detection_after_a_hand_over_has_its_own_scope() {
        let mut conn = test_conn(1080, Proto::Tcp, 6);
        for name in ["http", "socks"] {
            conn.attach(crate::analyzers::spec_by_name(name).unwrap());
        }
        assert_eq!(conn.content_detection_state().1.len(), 2);
        conn.restart_content_detection();
        assert!(conn.content_detection_state().1.is_empty());
        conn.attach(crate::analyzers::spec_by_name("http").unwrap());
        let dpd = conn.take_content_detection_buffers().unwrap();
        conn.resume_content_detection(dpd);
        let names: Vec<_> = conn.content_detection_state().1.iter().map(Attached::name).collect();
        assert_eq!(names, ["http"]);
    }

    /// Packet, IP byte and payload byte counters are 32 bits in the connection; a wrap is carried out of line, and
    /// the log and a flip see the whole count.
    #[test]
    fn tallies_carry_past_32_bits() {
        let mut conn = test_conn(53, Proto::Udp, 17);
        conn.pkts = [u32::MAX - 1, 5];
        conn.ip_bytes = [u32::MAX - 100, 0];
        for _ in 0..3 {
            conn.count_packet(0, 60);
            conn.count_payload(0, (u32::MAX / 2) as usize);
        }
        conn.count_packet(1, 28);
        conn.count_payload(1, 8);
        assert_eq!(conn.pkts(), [(1 << 32) + 1, 6]);
        assert_eq!(conn.ip_bytes(), [u64::from(u32::MAX) + 80, 28]);
        conn.flip();
        assert_eq!(conn.pkts(), [6, (1 << 32) + 1]);
        let record = conn.log_record();
        let field = |name: &str| record.values[CONN.fields.iter().position(|f| f.name == name).expect(name)].clone();
        assert_eq!((field("orig_pkts"), field("resp_pkts")), (Value::Count(6), Value::Count((1 << 32) + 1)));
        assert_eq!(
            (field("orig_ip_bytes"), field("resp_ip_bytes")),
            (Value::Count(28), Value::Count(u64::from(u32::MAX) + 80))
        );
        // A UDP connection's sizes are its payload bytes; it needs a duration to log them.
        conn.last = conn.start + 1.0;
        let record = conn.log_record();
        let field = |name: &str| record.values[CONN.fields.iter().position(|f| f.name == name).expect(name)].clone();
        assert_eq!(
            (field("orig_bytes"), field("resp_bytes")),
            (Value::Count(8), Value::Count(3 * u64::from(u32::MAX / 2)))
        );
    }

    /// Every tracked connection pays these sizes (docs/BENCHMARKS.md, "Where the memory goes"): a field that
    /// grows them should be a decision, not an accident.
    #[test]
    fn per_connection_state_stays_small() {
        assert!(std::mem::size_of::<Conn>() <= 184, "Conn is {} bytes", std::mem::size_of::<Conn>());
        let tcp = std::mem::size_of::<TcpSession>();
        assert!(tcp <= 144, "TcpSession is {tcp} bytes");
        assert_eq!(std::mem::size_of::<Attached>(), 16, "an analyzer entry, about one per connection");
    }

    /// The key's endpoint order decides [`ConnKey::symmetric_hash`], which shards flows: the IPv4 shortcut must
    /// order endpoints exactly as comparing the (address, port) tuples does.
    #[test]
    fn key_orders_endpoints_as_the_tuples_do() {
        let addrs: Vec<IpAddr> =
            ["10.0.0.1", "10.0.0.2", "9.255.255.255", "192.168.1.1", "0.0.0.0", "255.255.255.255", "::1", "fe80::1"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        for &src in &addrs {
            for &dst in &addrs {
                for (sp, dp) in [(1000, 80), (80, 1000), (53, 53), (0, 65535)] {
                    let key = ConnKey::new(src, sp, dst, dp, 6);
                    let expected = if (src, sp) <= (dst, dp) { ((src, sp), (dst, dp)) } else { ((dst, dp), (src, sp)) };
                    assert_eq!((key.a, key.b), expected, "{src}:{sp} {dst}:{dp}");
                    assert_eq!(key, ConnKey::new(dst, dp, src, sp, 6), "both directions");
                }
            }
        }
    }

    #[test]
    fn a_connection_has_its_key_from_either_direction_only() {
        let conn = test_conn(80, Proto::Tcp, 6);
        let (orig, resp) = (conn.id.orig_h, conn.id.resp_h);
        assert!(conn.has_key(&conn.key()));
        assert!(conn.has_key(&ConnKey::new(resp, 80, orig, 1000, 6)));
        assert!(!conn.has_key(&ConnKey::new(orig, 1000, resp, 80, 17)), "another protocol");
        assert!(!conn.has_key(&ConnKey::new(orig, 80, resp, 1000, 6)), "ports swapped between hosts");
        assert!(!conn.has_key(&ConnKey::new(orig, 1000, orig, 80, 6)), "another responder");
        let mut unreachable = test_conn(1, Proto::Icmp, 1);
        unreachable.id.orig_p = 3;
        unreachable.set_one_way();
        assert!(unreachable.has_key(&unreachable.key()));
        assert!(!unreachable.has_key(&ConnKey::one_way(resp, 3, orig, 1, 1)), "the other direction");
        assert!(!unreachable.has_key(&ConnKey::one_way(resp, 1, orig, 3, 1)), "ports reversed too");
        assert_eq!(unreachable.key().symmetric_hash(), ConnKey::new(orig, 3, resp, 1, 1).symmetric_hash());
    }

    /// A connection from 10.0.0.1:1000 to 10.0.0.2:`resp_p`.
    fn test_conn(resp_p: u16, proto: Proto, ip_proto: u8) -> Conn {
        let id = ConnId {
            orig_h: "10.0.0.1".parse().unwrap(),
            orig_p: 1000,
            resp_h: "10.0.0.2".parse().unwrap(),
            resp_p,
            proto,
        };
        Conn::new(UidGenerator::new(1).next_uid(), id, ip_proto, 1.0)
    }

    #[test]
    fn flip_swaps_which_side_sent_payload() {
        let mut conn = test_conn(53, Proto::Udp, 17);
        assert!(!conn.note_payload(0), "nothing seen yet");
        assert!(conn.note_payload(0));
        conn.flip();
        assert!(!conn.note_payload(0), "the old originator's payload is now the responder's");
        assert!(conn.note_payload(1));
        conn.set_udp_dns();
        assert!(conn.is_udp_dns() && !conn.close_scheduled() && !conn.note_weird() && conn.note_weird());
    }

    #[test]
    fn services_keep_confirmation_order_packed_or_spilled() {
        let mut conn = test_conn(80, Proto::Tcp, 6);
        assert!(conn.services().is_empty());
        for name in ["http", "ssl", "http"] {
            conn.add_service(name);
        }
        assert_eq!(conn.services().joined(), "http,ssl");
        assert!(matches!(conn.services(), ServiceList::Packed(_)));
        let many = ["s1", "s2", "s3", "s4", "s5", "s6", "s7"];
        for name in many {
            conn.add_service(name);
        }
        assert!(matches!(conn.services(), ServiceList::Spilled(_)), "nine services do not fit a word");
        assert_eq!(conn.services().joined(), "http,ssl,s1,s2,s3,s4,s5,s6,s7");
        assert!(conn.remove_service("ssl") && !conn.remove_service("ssl"));
        assert!(matches!(conn.services(), ServiceList::Packed(_)), "eight fit again");
        assert_eq!(conn.services().joined(), "http,s1,s2,s3,s4,s5,s6,s7");
    }
}
