//! Connection tracking: Zeek's session table, TCP endpoint state machine and history, UDP and ICMP
//! sessions, stream reassembly, and the conn.log record each connection ends with.

mod history;
mod reassembly;
mod table;
mod tcp;
mod uid;

use std::collections::BTreeSet;
use std::net::IpAddr;

pub use history::{History, Letters};
pub use reassembly::{Chunk, Stream};
pub use table::{ConnTable, Slot};
pub use tcp::{EndpointState, TcpOutcome, TcpSession};
pub use uid::{Uid, UidGenerator};

use crate::analyzers::{Analyzer, AnalyzerSpec, ConnId, Proto};
use crate::logs::{CONN, LogRecord, Value};

/// A connection's key in the session table: both directions map to the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    a: (IpAddr, u16),
    b: (IpAddr, u16),
    proto: u8,
}

impl ConnKey {
    pub fn new(src: IpAddr, sp: u16, dst: IpAddr, dp: u16, proto: u8) -> Self {
        let (a, b) = if (src, sp) <= (dst, dp) { ((src, sp), (dst, dp)) } else { ((dst, dp), (src, sp)) };
        ConnKey { a, b, proto }
    }

    /// A hash of the key that is the same for both directions: what shards flows over threads and workers.
    pub fn symmetric_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// Per-protocol session state.
#[derive(Debug)]
pub enum Session {
    Tcp(Box<TcpSession>),
    /// UDP: whether each side has sent, and payload bytes per side.
    Udp {
        active: [bool; 2],
        bytes: [u64; 2],
    },
    Icmp {
        bytes: [u64; 2],
    },
    Other,
}

/// An analyzer attached to a connection, with the spec it was built from. Whether it was detached is a bit in
/// [`Conn`] (a flag here would pad the entry from 24 to 32 bytes).
pub struct Attached {
    pub spec: &'static AnalyzerSpec,
    pub analyzer: Box<dyn Analyzer>,
}

impl Attached {
    pub fn name(&self) -> &'static str {
        self.spec.name
    }
}

/// The parts of a connection that only tunnels and connections with weirds use.
#[derive(Debug, Default)]
pub struct Rare {
    /// Uids of the tunnels the connection arrived in.
    pub tunnel_parents: BTreeSet<String>,
    /// The connection is a tunnel (Teredo, VXLAN, GTP-U) whose payload is decapsulated.
    pub tunnel: Option<&'static str>,
    /// Tunnel packets decapsulated per direction (Teredo is confirmed once both carried one).
    pub tunnel_seen: [bool; 2],
    /// Weird names already logged for this connection.
    pub weirds_logged: Vec<String>,
}

/// What content detection has seen of a TCP connection, while it runs ([`Conn::end_content_detection`] frees it).
#[derive(Debug, Default)]
pub struct DpdBuffer {
    /// The first bytes of each direction (originator first), contiguous, for signature matching.
    pub streams: [Vec<u8>; 2],
    /// Arrival order across directions: (originator?, length), to replay the streams as they came.
    pub order: Vec<(bool, u32)>,
    pub seen: [usize; 2],
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
    pub pkts: [u64; 2],
    pub ip_bytes: [u64; 2],
    pub missed_bytes: u64,
    /// Confirmed services in confirmation order. Boxed slices, not vectors: they change a few times per
    /// connection at most, and a slice is a word smaller with no spare room.
    pub services: Box<[&'static str]>,
    pub analyzers: Box<[Attached]>,
    /// Bit `i` set: `analyzers[i]` stops receiving data (violation, or handed over to TLS).
    detached_analyzers: u32,
    /// First payload seen per direction (content detection runs once per side).
    pub saw_payload: [bool; 2],
    /// When the engine should remove this connection, if scheduled (close, attempt, reset); infinite when not
    /// (a plain `f64` is half an `Option<f64>`). Read and written through [`Conn::removal_at`].
    remove_at: f64,
    pub local_orig: Option<bool>,
    pub local_resp: Option<bool>,
    /// `remove_at` is a close (not the attempt timer).
    pub close_scheduled: bool,
    /// A UDP DNS session: it ends after Zeek's shorter DNS session timeout.
    pub udp_dns: bool,
    /// The start of each TCP direction, kept for content detection and replayed to analyzers it finds.
    pub dpd: Option<Box<DpdBuffer>>,
    /// Content detection is over (a protocol was confirmed, or both buffers filled up).
    pub dpd_done: bool,
    /// What few connections need (tunnels, weirds), out of line so the common connection stays small.
    pub rare: Option<Box<Rare>>,
    /// Some weird was raised on this connection (logged or not): Zeek's `DidWeird`.
    pub did_weird: bool,
    /// Unique per connection in an engine: tells a timer of this connection from one of an earlier
    /// connection on the same tuple.
    pub serial: u64,
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
            missed_bytes: 0,
            services: Box::default(),
            analyzers: Box::default(),
            detached_analyzers: 0,
            saw_payload: [false; 2],
            remove_at: f64::INFINITY,
            local_orig: None,
            local_resp: None,
            close_scheduled: false,
            udp_dns: false,
            rare: None,
            did_weird: false,
            serial: 0,
            timer_due: f64::INFINITY,
            dpd: None,
            dpd_done: false,
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
        ConnKey::new(id.orig_h, id.orig_p, id.resp_h, id.resp_p, self.ip_proto)
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
        self.saw_payload.swap(0, 1);
        if let Some(rare) = &mut self.rare {
            rare.tunnel_seen.swap(0, 1);
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

    /// The reassembly of one TCP direction (0: the originator's); `None` for other protocols.
    pub fn stream_mut(&mut self, side: usize) -> Option<&mut Stream> {
        match &mut self.session {
            Session::Tcp(tcp) => Some(&mut tcp.streams[side]),
            _ => None,
        }
    }

    /// The out-of-line part, created on first use.
    pub fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The tunnel this connection carries, once its payload was decapsulated.
    pub fn tunnel(&self) -> Option<&'static str> {
        self.rare.as_ref().and_then(|r| r.tunnel)
    }

    pub fn add_service(&mut self, s: &'static str) {
        if !self.services.contains(&s) {
            push_exact(&mut self.services, s);
        }
    }

    /// Drops the service at `index` (its analyzer failed after confirming it).
    pub fn remove_service(&mut self, index: usize) {
        let mut services = std::mem::take(&mut self.services).into_vec();
        services.remove(index);
        self.services = services.into_boxed_slice();
    }

    /// Attaches a new analyzer built by `spec`. A connection holds at most [`MAX_ANALYZERS`] (one per detached
    /// bit); there are fewer specs than that, and each is attached once at most but for the TLS hand-over.
    pub fn attach(&mut self, spec: &'static AnalyzerSpec) {
        if self.analyzers.len() >= MAX_ANALYZERS {
            return;
        }
        let analyzer = (spec.new)(self.id.proto);
        push_exact(&mut self.analyzers, Attached { spec, analyzer });
    }

    /// Whether `analyzers[index]` was detached.
    pub fn is_detached(&self, index: usize) -> bool {
        self.detached_analyzers & (1 << index) != 0
    }

    /// `analyzers[index]` receives no more data (it is still finished with the connection).
    pub fn detach(&mut self, index: usize) {
        self.detached_analyzers |= 1 << index;
    }

    /// Some analyzer still receives data.
    pub fn has_attached_analyzer(&self) -> bool {
        (0..self.analyzers.len()).any(|i| !self.is_detached(i))
    }

    /// Content detection is over: its buffers are freed.
    pub fn end_content_detection(&mut self) {
        self.dpd = None;
        self.dpd_done = true;
    }

    /// conn_state, orig_bytes and resp_bytes as Zeek's conn.zeek computes them.
    fn state_and_sizes(&self) -> (&'static str, u64, u64) {
        match &self.session {
            Session::Tcp(t) => (t.conn_state(&self.history.letters), t.orig_size(), t.resp_size()),
            Session::Udp { active, bytes } => {
                let state = match (active[0], active[1]) {
                    (true, true) => "SF",
                    (true, false) => "S0",
                    (false, true) => "SHR",
                    (false, false) => "OTH",
                };
                (state, bytes[0], bytes[1])
            }
            Session::Icmp { bytes } => ("OTH", bytes[0], bytes[1]),
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
        let service = if self.services.is_empty() { Value::Unset } else { Value::str(self.services.join(",")) };
        let history =
            if self.history.letters.is_empty() { Value::Unset } else { Value::str(self.history.letters.as_str()) };
        let parents = match &self.rare {
            Some(rare) if !rare.tunnel_parents.is_empty() => Value::str_set(rare.tunnel_parents.iter().cloned()),
            _ => Value::Unset,
        };
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
            Value::Count(self.missed_bytes),
            history,
            Value::Count(self.pkts[0]),
            Value::Count(self.ip_bytes[0]),
            Value::Count(self.pkts[1]),
            Value::Count(self.ip_bytes[1]),
            parents,
            Value::Count(u64::from(self.ip_proto)),
        ];
        LogRecord::new(&CONN, values)
    }
}
