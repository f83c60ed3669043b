//! Zeek's TCP endpoint state machine (TCPSessionAdapter and TCP_Endpoint), so that conn_state,
//! history and byte counts come out as Zeek computes them.

use super::history::{History, Scaled, mask};
use super::reassembly::{self, Stream};
use crate::decode::{TcpFlags, TcpHeader};

const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

/// Records a weird. Cold and out of line: weirds are rare, and their paths moved to the end of the packet path
/// keep its hot part dense in the instruction cache (the packet path spans more than the 32 KiB of it).
#[cold]
#[inline(never)]
fn raise(weirds: &mut Vec<&'static str>, name: &'static str) {
    weirds.push(name);
}

fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// One direction of a TCP connection.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub state: EndpointState,
    pub prev_state: EndpointState,
    /// The initial sequence number (a 32-bit wire value; arithmetic on it is done in 64 bits).
    start_seq: u32,
    last_seq: u32,
    ack_seq: u32,
    /// How often the sequence and ack numbers wrapped (4 GiB each; a `u16` counts to 256 TiB, where it stops).
    seq_wraps: u16,
    ack_wraps: u16,
    window: u32,
    /// The window scale shift (RFC 7323 caps it at 14).
    window_scale: u8,
    window_seq: u32,
    window_ack_seq: u32,
    /// Bits of [`endpoint_flag`]: the endpoint's yes/no facts, and on the originator's the session's partial flag
    /// (as `bool`s, with Zeek's FIN count, only ever compared with zero, they made the session two words larger).
    flags: u8,
    /// The low 32 bits of the relative sequence of the last SYN, FIN and RST, for the history's repeat
    /// letters: two of them only compare equal here, not in Zeek's 64 bits, when 4 GiB apart exactly.
    hist_last_syn: u32,
    hist_last_fin: u32,
    hist_last_rst: u32,
}

/// An [`Endpoint`]'s yes/no facts, one bit each of its `flags`.
mod endpoint_flag {
    /// A FIN was seen from this endpoint (it takes a sequence number, and so a byte off the size).
    pub const FIN_SEEN: u8 = 1 << 0;
    /// The endpoint closed (Zeek's `did_close`): FIN or RST handled.
    pub const DID_CLOSE: u8 = 1 << 1;
    /// A packet from this endpoint was seen (Zeek's `first_packet_seen` bit for its side).
    pub const FIRST_PACKET_SEEN: u8 = 1 << 2;
    /// The session was picked up mid-stream (Zeek's `is_partial`), set on the originator's endpoint only: the
    /// session's one flag of its own rides here, where a byte is free (the session's other fields fill 144 bytes
    /// exactly, and three `bool`s beside them padded it to 152; [`super::TcpSession::is_partial`]).
    pub const SESSION_PARTIAL: u8 = 1 << 3;
}

/// One endpoint's counters whose history letters come at 1, 10, 100, ... occurrences.
#[derive(Debug, Clone, Copy, Default)]
struct ScaledCounters {
    rxmit: Scaled,
    zero_window: Scaled,
    checksum_errors: Scaled,
    gaps: Scaled,
}

/// A session's out-of-line counters.
#[derive(Debug, Clone, Default)]
struct Counters {
    /// Both endpoints' scaled counters (originator first).
    scaled: [ScaledCounters; 2],
    /// Bytes of the content gaps reported (conn.log's `missed_bytes`): only a gap adds any, and a gap is counted
    /// here too, so they live together.
    missed_bytes: u64,
}

/// Which of an endpoint's [`ScaledCounters`] a bump counts.
#[derive(Debug, Clone, Copy)]
enum Counter {
    Rxmit,
    ZeroWindow,
    ChecksumError,
    Gap,
}

impl Endpoint {
    /// Whether bit `flag` of [`endpoint_flag`] is set.
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether the endpoint closed (FIN or RST handled): Zeek's `did_close`.
    pub fn did_close(&self) -> bool {
        self.has(endpoint_flag::DID_CLOSE)
    }

    fn set_state(&mut self, s: EndpointState) {
        if s != self.state {
            self.prev_state = self.state;
            self.state = s;
        }
    }

    fn init_start_seq(&mut self, seq: u32) {
        self.start_seq = seq;
    }

    fn start_seq64(&self) -> i64 {
        i64::from(self.start_seq)
    }

    fn update_last_seq(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps = self.seq_wraps.saturating_add(1);
        }
        self.last_seq = seq;
    }

    fn update_ack_seq(&mut self, seq: u32) {
        if seq < self.ack_seq {
            self.ack_wraps = self.ack_wraps.saturating_add(1);
        }
        self.ack_seq = seq;
    }

    fn full(seq: u32, wraps: u32) -> u64 {
        (u64::from(wraps) << 32) + u64::from(seq)
    }

    fn start_seq32(&self) -> u32 {
        self.start_seq
    }

    fn no_data_acked(&self) -> bool {
        let ack = Self::full(self.ack_seq, u32::from(self.ack_wraps)) as i64;
        ack == self.start_seq64() || ack == self.start_seq64() + 1
    }

    fn to_relative(&self, seq: u32, wraps: u32) -> u64 {
        (Self::full(seq, wraps) as i64).wrapping_sub(self.start_seq64()) as u64
    }

    /// Bytes this endpoint sent, from sequence numbers (Zeek's `TCP_Endpoint::Size`).
    pub fn size(&self, peer_state: EndpointState) -> u64 {
        if self.prev_state == EndpointState::SynSent
            && self.state == EndpointState::Reset
            && peer_state == EndpointState::Inactive
            && !self.no_data_acked()
        {
            return 0;
        }
        let last = Self::full(self.last_seq, u32::from(self.seq_wraps)) as i64;
        let ack = Self::full(self.ack_seq, u32::from(self.ack_wraps)) as i64;
        let mut size = if last > ack { last - self.start_seq64() } else { ack - self.start_seq64() } as u64;
        // The SYN (real or assumed) and the FIN take a sequence number each but carry no data.
        size = size.saturating_sub(1);
        if self.has(endpoint_flag::FIN_SEEN) {
            size = size.saturating_sub(1);
        }
        size
    }

    /// Established, or closed from established: a side whose sequence numbers are trusted for gaps.
    fn is_clean(&self) -> bool {
        self.state == EndpointState::Established
            || (self.state == EndpointState::Closed && self.prev_state == EndpointState::Established)
    }

    fn is_active(&self) -> bool {
        !matches!(self.state, EndpointState::Inactive | EndpointState::Closed | EndpointState::Reset)
    }

    fn init(&mut self, flags: TcpFlags, first_seq: u32, last_seq: u32, weirds: &mut Vec<&'static str>) {
        match self.state {
            EndpointState::Inactive => {
                let mut last = last_seq;
                if flags.syn() {
                    self.ack_seq = first_seq;
                    self.init_start_seq(first_seq);
                } else {
                    // A partial connection: number as though a SYN had been seen.
                    self.ack_seq = first_seq.wrapping_sub(1);
                    self.init_start_seq(first_seq.wrapping_sub(1));
                    last = first_seq;
                }
                self.last_seq = last;
            }
            EndpointState::SynSent | EndpointState::SynAckSent => {
                if flags.syn() && first_seq != self.start_seq32() {
                    raise(weirds, "SYN_seq_jump");
                    self.reinit(first_seq, last_seq);
                }
            }
            EndpointState::Established | EndpointState::Partial => {
                if flags.syn() {
                    if self.size(EndpointState::Inactive) > 0 {
                        raise(weirds, "SYN_inside_connection");
                    }
                    if first_seq != self.start_seq32() {
                        raise(weirds, "SYN_seq_jump");
                    }
                    self.reinit(first_seq, last_seq);
                }
            }
            EndpointState::Reset => {
                if flags.syn() && self.prev_state == EndpointState::Inactive {
                    self.reinit(first_seq, last_seq);
                }
            }
            EndpointState::Closed => {}
        }
    }

    fn reinit(&mut self, first_seq: u32, last_seq: u32) {
        self.init_start_seq(first_seq);
        self.ack_seq = first_seq;
        self.last_seq = last_seq;
    }

    /// Zeek's `get_relative_seq`: the 64-bit offset of `cur` from the start, and whether it underflowed.
    fn relative_seq(&self, cur: u32, last: u32, mut wraps: u32) -> (u64, bool) {
        let delta = seq_delta(cur, last);
        if delta < 0 {
            if wraps > 0 && cur > last {
                wraps -= 1;
            }
        } else if delta > 0 && cur < last {
            wraps += 1;
        }
        if wraps == 0 {
            let d = seq_delta(cur, self.start_seq32());
            return (d as i64 as u64, d < 0);
        }
        (self.to_relative(cur, wraps), false)
    }
}

/// What one TCP packet did, for the engine to act on.
#[derive(Debug, Default)]
pub struct TcpOutcome {
    pub weirds: Vec<&'static str>,
    /// The connection (or this side) closed: schedule removal.
    pub closed: bool,
    /// Relative stream offset of this packet's payload, when it should be reassembled.
    pub data_seq: Option<u64>,
    /// Relative ack the peer's stream may trim to.
    pub ack: Option<u64>,
    /// When this packet's ack is the peer's highest so far: the relative ack it replaces. An ack that moves the
    /// peer stream's trim point on is one of Zeek's "ack events", the denominator of its capture-loss estimate.
    pub prev_ack: Option<u64>,
    /// For a FIN: the relative sequence just past its data, where this side's stream ends (Zeek's `FIN_seq - 1`).
    pub fin_seq: Option<u64>,
    /// The roles flipped (SYN/SYN-ACK seen in reverse).
    pub flipped: bool,
    pub seq_underflow: bool,
}

/// Both endpoints of a TCP connection; index 0 is the originator.
#[derive(Debug, Clone, Default)]
pub struct TcpSession {
    pub ep: [Endpoint; 2],
    /// Reassembly of each direction (originator first).
    pub streams: [Stream; 2],
    /// What few sessions need, out of line: most connections never retransmit, see a zero window, a bad checksum
    /// or a gap, and inline the counters were a sixth of the session.
    counters: Option<Box<Counters>>,
}

impl TcpSession {
    pub fn orig(&self) -> &Endpoint {
        &self.ep[0]
    }
    pub fn resp(&self) -> &Endpoint {
        &self.ep[1]
    }

    pub fn is_partial(&self) -> bool {
        self.ep[0].has(endpoint_flag::SESSION_PARTIAL)
    }

    /// What Zeek's reassembly bounds need of side `me` after it handed a segment to its stream
    /// (`TCP_Reassembler::DataSent`): whether none of its data was acked (`NoDataAcked`), and how many of the bytes
    /// its stream delivered the peer has not acked yet, which Zeek still holds ([`Stream::check_limits`]).
    ///
    /// Zeek holds delivered bytes until the peer acks them (its `trim_seq`), which the 10 MiB bound counts. The
    /// ack is the endpoint's own highest one (held here already, clamped to the FIN as `AckReceived` clamps it);
    /// while nothing is acked, `BlockInserted` lets go of delivered bytes once the side sent more than an initial
    /// window, so a one-sided capture holds none. Zeek keeps that early trim point when the first acks come in
    /// below it; here the acks alone count from then on, which can only overstate the held bytes by the part of
    /// the first flight not yet acked, for a round trip.
    pub fn unacked(&self, me: usize) -> (bool, u64) {
        let (endpoint, stream) = (&self.ep[me], &self.streams[me]);
        let no_data_acked = endpoint.no_data_acked();
        let trim = if !no_data_acked {
            stream.trim_point(endpoint.to_relative(endpoint.ack_seq, u32::from(endpoint.ack_wraps)))
        } else if endpoint.size(self.ep[1 - me].state) > reassembly::MAX_INITIAL_WINDOW {
            stream.next_seq()
        } else {
            1
        };
        (no_data_acked, stream.next_seq().saturating_sub(trim))
    }

    /// Sets or clears the session's partial flag (see [`endpoint_flag::SESSION_PARTIAL`]).
    fn set_partial(&mut self, partial: bool) {
        for ep in &mut self.ep {
            ep.flags &= !endpoint_flag::SESSION_PARTIAL;
        }
        if partial {
            self.ep[0].flags |= endpoint_flag::SESSION_PARTIAL;
        }
    }

    fn first_packet_seen(&self, side: usize) -> bool {
        self.ep[side].has(endpoint_flag::FIRST_PACKET_SEEN)
    }

    /// Counts one occurrence on endpoint `me` (0: the originator), writing its letter at the scaled thresholds.
    fn bump(&mut self, history: &mut History, me: usize, counter: Counter) {
        let counters = &mut self.counters.get_or_insert_with(Box::default).scaled[me];
        let (scaled, code) = match counter {
            Counter::Rxmit => (&mut counters.rxmit, 'T'),
            Counter::ZeroWindow => (&mut counters.zero_window, 'W'),
            Counter::ChecksumError => (&mut counters.checksum_errors, 'C'),
            Counter::Gap => (&mut counters.gaps, 'G'),
        };
        scaled.bump(history, me == 0, code);
    }

    /// Whether a content gap in side `owner`'s stream (0: the originator's) is reported, in the history and
    /// `missed_bytes`: Zeek's `established_or_cleanly_closing` on both endpoints. Elsewhere (partial connections,
    /// data before the handshake, after a RST) gaps come from sequence numbers that cannot be trusted.
    pub fn reports_gaps(&self, owner: usize) -> bool {
        self.ep[owner].is_clean() && self.ep[1 - owner].is_clean()
    }

    pub fn both_established(&self) -> bool {
        self.ep[0].state == EndpointState::Established && self.ep[1].state == EndpointState::Established
    }

    pub fn both_closed(&self) -> bool {
        self.ep[0].did_close() && self.ep[1].did_close()
    }

    /// Zeek's `IsReuse`: a new SYN on this tuple starts a new connection.
    pub fn is_reuse(&self, hdr: &TcpHeader, last_time: f64, t: f64, weirds: &mut Vec<&'static str>) -> bool {
        let flags = hdr.flags;
        if !flags.syn() {
            return false;
        }
        let mut conn_orig = &self.ep[0];
        if flags.ack() {
            if self.ep[0].state != EndpointState::Inactive {
                return false;
            }
            conn_orig = &self.ep[1];
        }
        // Zeek's TCPSessionAdapter::IsClosed: either side has closed.
        let is_closed = self.ep[0].did_close() || self.ep[1].did_close();
        let any_reset = self.ep[0].state == EndpointState::Reset || self.ep[1].state == EndpointState::Reset;
        if !is_closed {
            if hdr.seq == conn_orig.start_seq32() {
                return false;
            }
            if !flags.ack()
                && conn_orig.state == EndpointState::SynAckSent
                && self.ep[1].state == EndpointState::Inactive
                && hdr.seq == self.ep[1].start_seq32()
            {
                return false;
            }
            raise(
                weirds,
                if conn_orig.state == EndpointState::SynSent { "SYN_seq_jump" } else { "active_connection_reuse" },
            );
        } else if (self.ep[0].is_active() || self.ep[1].is_active()) && !any_reset {
            raise(weirds, "active_connection_reuse");
        } else if t - last_time < 5.0 && !any_reset {
            raise(weirds, "premature_connection_reuse");
        }
        true
    }

    /// Processes one packet from `is_orig`'s side; `len` is the payload length the IP header claims.
    pub fn process(&mut self, history: &mut History, is_orig: bool, hdr: &TcpHeader, len: u32) -> TcpOutcome {
        let mut out = TcpOutcome::default();
        let flags = hdr.flags;
        let (me, other) = if is_orig { (0, 1) } else { (1, 0) };
        let base_seq = hdr.seq;
        let ack_seq = hdr.ack;

        self.set_partial_status(flags, is_orig);

        let mut seg_len = len as i64;
        if flags.syn() {
            seg_len += 1;
        }
        if flags.fin() {
            seg_len += 1;
        }
        if flags.rst() {
            seg_len -= i64::from(len);
        }
        let seq_one_past = base_seq.wrapping_add(seg_len as u32);
        self.ep[me].init(flags, base_seq, seq_one_past, &mut out.weirds);

        let ep = &self.ep[me];
        let (rel_seq, underflow) = ep.relative_seq(base_seq, ep.last_seq, u32::from(ep.seq_wraps));
        if underflow && !flags.rst() {
            raise(&mut out.weirds, "TCP_seq_underflow_or_misorder");
        }
        out.seq_underflow = underflow;

        self.update_history(history, is_orig, flags, rel_seq, len);
        self.update_window(history, me, other, u32::from(hdr.window), base_seq, ack_seq, flags, &mut out.weirds);

        if flags.syn() {
            if flags.rst() {
                raise(&mut out.weirds, "TCP_christmas");
            }
            if flags.urg() {
                raise(&mut out.weirds, "baroque_SYN");
            }
            if len > 0 {
                raise(&mut out.weirds, "SYN_with_data");
            }
            self.init_window(me, other, flags, hdr.window_scale, base_seq, ack_seq);
        }
        if flags.fin() {
            self.ep[me].flags |= endpoint_flag::FIN_SEEN;
        }

        let mut rel_ack = 0u64;
        if flags.ack() {
            if self.ep[other].state == EndpointState::Inactive {
                rel_ack = 1;
                self.init_peer(me, other, flags, ack_seq, &mut out.weirds);
            } else {
                let peer = &self.ep[other];
                let (ra, ack_underflow) = peer.relative_seq(ack_seq, peer.ack_seq, u32::from(peer.ack_wraps));
                if ack_underflow {
                    rel_ack = 0;
                    raise(&mut out.weirds, "TCP_ack_underflow_or_misorder");
                } else {
                    rel_ack = ra;
                    if !flags.rst() {
                        let peer = &mut self.ep[other];
                        let delta_ack = seq_delta(ack_seq, peer.ack_seq);
                        if !(ack_seq == 0 && delta_ack > TOO_LARGE_SEQ_DELTA) && delta_ack > 0 {
                            out.prev_ack = Some(peer.to_relative(peer.ack_seq, u32::from(peer.ack_wraps)));
                            peer.update_ack_seq(ack_seq);
                        }
                    }
                }
            }
        }

        let delta_last = self.update_last_seq(history, me, seq_one_past, flags, len, is_orig);

        let (do_close, flipped) =
            self.update_state_machine(me, other, base_seq, ack_seq, len, delta_last, is_orig, flags, &mut out.weirds);
        out.closed = do_close;
        out.flipped = flipped;
        if flipped {
            history.flip();
        }

        if flags.ack() {
            out.ack = Some(rel_ack);
        }
        let rel_data_seq = if flags.syn() { rel_seq.wrapping_add(1) } else { rel_seq };
        if flags.fin() {
            out.fin_seq = Some(rel_data_seq.wrapping_add(u64::from(len)));
        }
        if len > 0 && !flags.rst() && !underflow {
            out.data_seq = Some(rel_data_seq);
        }
        out
    }

    fn set_partial_status(&mut self, flags: TcpFlags, is_orig: bool) {
        if is_orig {
            if !self.first_packet_seen(0) {
                self.set_partial(!flags.syn() || flags.ack());
            }
        } else if !self.first_packet_seen(1) && !self.is_partial() {
            self.set_partial(!flags.syn());
        }
        self.ep[usize::from(!is_orig)].flags |= endpoint_flag::FIRST_PACKET_SEEN;
    }

    fn update_history(&mut self, h: &mut History, is_orig: bool, flags: TcpFlags, rel_seq: u64, len: u32) {
        let me = if is_orig { 0 } else { 1 };
        let bits = u8::from(flags.syn()) + u8::from(flags.fin()) + u8::from(flags.rst());
        let ep = &mut self.ep[me];
        if bits > 1 {
            if flags.fin() && flags.rst() {
                h.check(is_orig, mask::FIN_RST, 'I');
            } else {
                h.check(is_orig, mask::MULTI_FLAG, 'Q');
            }
        } else if bits == 1 {
            if flags.syn() {
                let code = if flags.ack() { 'H' } else { 'S' };
                if h.check(is_orig, mask::SYN, code) && rel_seq as u32 != ep.hist_last_syn {
                    h.add(is_orig, code);
                }
                ep.hist_last_syn = rel_seq as u32;
            }
            if flags.fin() {
                let fin_seq = rel_seq.wrapping_add(u64::from(len));
                if h.check(is_orig, mask::FIN, 'F') && fin_seq as u32 != ep.hist_last_fin {
                    h.add(is_orig, 'F');
                }
                ep.hist_last_fin = fin_seq as u32;
            }
            if flags.rst() {
                if h.check(is_orig, mask::RST, 'R') && rel_seq as u32 != ep.hist_last_rst {
                    h.add(is_orig, 'R');
                }
                ep.hist_last_rst = rel_seq as u32;
            }
        } else if len > 0 {
            h.check(is_orig, mask::DATA, 'D');
        } else if flags.ack() {
            h.check(is_orig, mask::ACK, 'A');
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn update_window(
        &mut self,
        h: &mut History,
        me: usize,
        other: usize,
        window: u32,
        base_seq: u32,
        ack_seq: u32,
        flags: TcpFlags,
        weirds: &mut Vec<&'static str>,
    ) {
        let peer_state = self.ep[other].state;
        let ep = &self.ep[me];
        let scale = ep.window_scale;
        let window = window << scale;
        if window == 0 && !flags.rst() && peer_state != EndpointState::Closed && ep.state != EndpointState::Reset {
            self.bump(h, me, Counter::ZeroWindow);
        }
        let ep = &mut self.ep[me];
        if !flags.syn()
            && !flags.fin()
            && !flags.rst()
            && ep.state != EndpointState::Closed
            && ep.state != EndpointState::Reset
            && seq_delta(base_seq, ep.window_seq) >= 0
            && seq_delta(ack_seq, ep.window_ack_seq) >= 0
        {
            let new_edge = ack_seq.wrapping_add(window);
            let old_edge = ep.window_ack_seq.wrapping_add(ep.window);
            let advance = seq_delta(new_edge, old_edge);
            if advance < 0 && (-advance) >= (1i32 << scale) {
                raise(weirds, "window_recision");
            }
            ep.window = window;
            ep.window_ack_seq = ack_seq;
            ep.window_seq = base_seq;
        }
    }

    fn init_window(
        &mut self,
        me: usize,
        other: usize,
        flags: TcpFlags,
        scale: Option<u8>,
        base_seq: u32,
        ack_seq: u32,
    ) {
        match scale {
            None => {
                self.ep[me].window_scale = 0;
                if flags.ack() {
                    self.ep[other].window_scale = 0;
                }
            }
            Some(s) => {
                let ep = &mut self.ep[me];
                ep.window_scale = s.min(14);
                ep.window_seq = base_seq;
                ep.window_ack_seq = ack_seq;
                let peer = &mut self.ep[other];
                peer.window_seq = ack_seq;
                peer.window_ack_seq = base_seq;
            }
        }
    }

    fn init_peer(&mut self, me: usize, other: usize, flags: TcpFlags, ack_seq: u32, weirds: &mut Vec<&'static str>) {
        if !flags.syn()
            && !flags.fin()
            && !flags.rst()
            && matches!(
                self.ep[me].state,
                EndpointState::SynSent | EndpointState::SynAckSent | EndpointState::Established
            )
        {
            raise(weirds, "possible_split_routing");
        }
        let peer = &mut self.ep[other];
        let start = ack_seq.wrapping_sub(1);
        peer.init_start_seq(start);
        peer.ack_seq = start;
        peer.last_seq = start;
    }

    fn update_last_seq(
        &mut self,
        h: &mut History,
        me: usize,
        last_seq: u32,
        flags: TcpFlags,
        len: u32,
        is_orig: bool,
    ) -> i32 {
        let ep = &mut self.ep[me];
        let delta_last = seq_delta(last_seq, ep.last_seq);
        if (flags.syn() || flags.rst()) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last) {
            // Untrusted jump.
        } else if flags.fin() && ep.last_seq == ep.start_seq32().wrapping_add(1) {
            ep.update_last_seq(last_seq);
        } else if ep.state == EndpointState::Reset {
            // Sequence numbers after a reset are not trusted.
        } else if delta_last > 0 {
            ep.update_last_seq(last_seq);
        } else if len > 0 {
            debug_assert_eq!(me == 0, is_orig);
            self.bump(h, me, Counter::Rxmit);
        }
        delta_last
    }

    #[allow(clippy::too_many_arguments)]
    fn update_state_machine(
        &mut self,
        me: usize,
        other: usize,
        base_seq: u32,
        ack_seq: u32,
        len: u32,
        delta_last: i32,
        is_orig: bool,
        flags: TcpFlags,
        weirds: &mut Vec<&'static str>,
    ) -> (bool, bool) {
        use EndpointState::*;
        let mut do_close = false;
        match self.ep[me].state {
            Inactive => {
                if flags.syn() {
                    if is_orig {
                        if flags.ack() {
                            raise(weirds, "connection_originator_SYN_ack");
                            self.ep[me].set_state(SynAckSent);
                        } else {
                            self.ep[me].set_state(SynSent);
                        }
                    } else {
                        let peer_state = self.ep[other].state;
                        if flags.ack() {
                            if peer_state != Inactive && peer_state != Partial {
                                let p = &self.ep[other];
                                let lo = p.start_seq32();
                                if ack_seq.wrapping_sub(lo) > p.last_seq.wrapping_sub(lo) {
                                    raise(weirds, "bad_SYN_ack");
                                }
                            }
                        } else if peer_state == SynAckSent && base_seq == self.ep[me].start_seq32() {
                            // SYN and SYN-ACK seen in reverse order: flip the roles.
                            self.ep.swap(0, 1);
                            self.set_partial(false);
                            // After the swap our endpoint is the originator.
                            self.ep[0].set_state(Established);
                            self.ep[1].set_state(Established);
                            return (false, true);
                        } else {
                            raise(weirds, "simultaneous_open");
                        }
                        if self.ep[other].state == SynSent {
                            self.ep[other].set_state(Established);
                        } else if self.ep[other].state == Inactive {
                            raise(weirds, "unsolicited_SYN_response");
                        }
                        self.ep[me].set_state(Established);
                    }
                }
                if flags.fin() {
                    self.ep[me].set_state(Closed);
                    do_close = true;
                    if self.ep[other].state != Partial && !flags.syn() {
                        raise(weirds, "spontaneous_FIN");
                    }
                }
                if flags.rst() {
                    self.ep[me].set_state(Reset);
                    let is_reject = if is_orig {
                        self.ep[other].state == Established
                    } else {
                        matches!(self.ep[other].state, SynSent | SynAckSent)
                    };
                    do_close = true;
                    if !is_reject && self.ep[other].state == Inactive {
                        raise(weirds, "spontaneous_RST");
                    }
                }
                if self.ep[me].state == Inactive {
                    if !is_orig && len == 0 && self.ep[0].state == SynSent {
                        // An ack of the SYN before the SYN-ACK: not a partial connection.
                    } else if flags.ack() && self.ep[other].state == Established {
                        self.ep[me].set_state(Established);
                        self.set_partial(false);
                    } else {
                        self.ep[me].set_state(Partial);
                    }
                }
            }
            SynSent | SynAckSent => {
                if flags.syn() {
                    if is_orig {
                        if flags.ack() && !flags.fin() && !flags.rst() && self.ep[me].state != SynAckSent {
                            raise(weirds, "repeated_SYN_with_ack");
                        }
                    } else if !flags.ack() && self.ep[me].state != SynSent {
                        raise(weirds, "repeated_SYN_reply_wo_ack");
                    }
                }
                if flags.fin() {
                    if matches!(self.ep[other].state, Inactive | SynSent) {
                        raise(weirds, "inappropriate_FIN");
                    }
                    self.ep[me].set_state(Closed);
                    do_close = true;
                }
                if flags.rst() {
                    self.ep[me].set_state(Reset);
                    do_close = true;
                } else if len > 0 {
                    raise(weirds, "data_before_established");
                }
            }
            Established | Partial => {
                if flags.syn() && self.ep[me].state == Partial && self.ep[other].state == Inactive && !flags.ack() {
                    raise(weirds, "SYN_after_partial");
                    self.ep[me].set_state(SynSent);
                }
                if flags.fin() && !flags.rst() {
                    self.ep[me].set_state(Closed);
                    if self.ep[other].state == Reset && self.ep[other].prev_state == Closed {
                        self.ep[other].set_state(Closed);
                    }
                    do_close = true;
                }
                if flags.rst() {
                    self.ep[me].set_state(Reset);
                    do_close = true;
                }
            }
            Closed => {
                if flags.syn() {
                    raise(weirds, "SYN_after_close");
                }
                if flags.fin() && delta_last > 0 {
                    raise(weirds, "FIN_advanced_last_seq");
                }
                if flags.rst() && self.ep[other].state != Closed {
                    self.ep[me].set_state(Reset);
                    if !self.ep[me].did_close() {
                        do_close = true;
                    }
                }
            }
            Reset => {
                if flags.syn() {
                    raise(weirds, "SYN_after_reset");
                }
                if flags.fin() {
                    raise(weirds, "FIN_after_reset");
                }
                if len > 0 && !flags.rst() {
                    raise(weirds, "data_after_reset");
                }
            }
        }
        if do_close {
            self.ep[me].flags |= endpoint_flag::DID_CLOSE;
        }
        (do_close, false)
    }

    /// Zeek flips a connection that began with its originator's SYN-ACK once an ack or a data segment follows, in
    /// either direction (a stealth scan's SYN-ACK draws a RST or nothing). The caller checks that the history holds
    /// that SYN-ACK alone (with a bad checksum, say, in between, the roles stay).
    pub fn flips_after_syn_ack(&self, flags: TcpFlags, len: u32) -> bool {
        self.ep[0].state == EndpointState::SynAckSent
            && self.ep[1].state == EndpointState::Inactive
            && !flags.syn()
            && !flags.rst()
            && (flags.ack() || len > 0)
    }

    /// The flip of [`Self::flips_after_syn_ack`]: the SYN-ACK's sender becomes the responder, established as a
    /// responder's SYN-ACK leaves it, so the connection is what it would have been had the roles been guessed at
    /// its first packet.
    pub fn flip_syn_ack_start(&mut self) {
        self.flip();
        let server = &mut self.ep[1];
        server.prev_state = EndpointState::Inactive;
        server.state = EndpointState::Established;
    }

    /// Flips originator and responder (the engine decided the first packet came from the server).
    pub fn flip(&mut self) {
        self.ep.swap(0, 1);
        if let Some(counters) = &mut self.counters {
            counters.scaled.swap(0, 1);
        }
        self.set_partial(false);
    }

    /// Zeek's conn_state for TCP (the history tells a reset SYN attempt from a stray RST).
    pub fn conn_state(&self, history: &str) -> &'static str {
        use EndpointState::*;
        let os = self.ep[0].state;
        let rs = self.ep[1].state;
        let o_inactive = matches!(os, Inactive | Partial);
        let r_inactive = matches!(rs, Inactive | Partial);
        if rs == Reset {
            if matches!(os, SynSent | SynAckSent) || (os == Reset && self.orig_size() == 0 && self.resp_size() == 0) {
                "REJ"
            } else if o_inactive {
                "RSTRH"
            } else {
                "RSTR"
            }
        } else if os == Reset {
            if !r_inactive {
                "RSTO"
            } else if syn_then_reset(history) {
                "RSTOS0"
            } else {
                "OTH"
            }
        } else if rs == Closed && os == Closed {
            "SF"
        } else if os == Closed {
            if r_inactive { "SH" } else { "S2" }
        } else if rs == Closed {
            if o_inactive { "SHR" } else { "S3" }
        } else if os == SynSent && rs == Inactive {
            "S0"
        } else if os == Established && rs == Established {
            "S1"
        } else {
            "OTH"
        }
    }

    pub fn orig_size(&self) -> u64 {
        self.ep[0].size(self.ep[1].state)
    }

    pub fn resp_size(&self) -> u64 {
        self.ep[1].size(self.ep[0].state)
    }

    /// Records a packet with a bad checksum (not otherwise processed).
    pub fn checksum_error(&mut self, history: &mut History, is_orig: bool) {
        let me = if is_orig { 0 } else { 1 };
        self.bump(history, me, Counter::ChecksumError);
    }

    /// Records a content gap of `missing` bytes in `is_orig`'s stream.
    pub fn gap(&mut self, history: &mut History, is_orig: bool, missing: u64) {
        let me = if is_orig { 0 } else { 1 };
        self.bump(history, me, Counter::Gap);
        self.counters.get_or_insert_with(Box::default).missed_bytes += missing;
    }

    /// Bytes of content gaps (conn.log's `missed_bytes`).
    pub fn missed_bytes(&self) -> u64 {
        self.counters.as_ref().map_or(0, |c| c.missed_bytes)
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/` on the history: the originator sent a SYN, then a RST, and nothing
/// in between showed a handshake.
fn syn_then_reset(history: &str) -> bool {
    let h = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = h.strip_prefix('S') else { return false };
    for c in rest.chars() {
        match c {
            'R' => return true,
            'H' | 'A' | 'F' | 'G' | 'I' | 'Q' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(flags: u8, seq: u32, ack: u32) -> TcpHeader {
        TcpHeader {
            src_port: 1,
            dst_port: 2,
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 1000,
            hdr_len: 20,
            window_scale: None,
        }
    }

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;
    const PSH: u8 = 0x08;

    #[test]
    fn full_session_is_sf_with_zeek_history() {
        let mut s = TcpSession::default();
        let mut h = History::default();
        s.process(&mut h, true, &hdr(SYN, 100, 0), 0);
        s.process(&mut h, false, &hdr(SYN | ACK, 500, 101), 0);
        s.process(&mut h, true, &hdr(ACK, 101, 501), 0);
        s.process(&mut h, true, &hdr(ACK | PSH, 101, 501), 10);
        s.process(&mut h, false, &hdr(ACK | PSH, 501, 111), 20);
        s.process(&mut h, true, &hdr(FIN | ACK, 111, 521), 0);
        s.process(&mut h, false, &hdr(FIN | ACK, 521, 112), 0);
        s.process(&mut h, true, &hdr(ACK, 112, 522), 0);
        assert_eq!(h.letters(), "ShADdFf");
        assert_eq!(s.conn_state(h.letters()), "SF");
        assert_eq!(s.orig_size(), 10);
        assert_eq!(s.resp_size(), 20);
    }

    #[test]
    fn rejected_syn_is_rej() {
        let mut s = TcpSession::default();
        let mut h = History::default();
        s.process(&mut h, true, &hdr(SYN, 100, 0), 0);
        s.process(&mut h, false, &hdr(RST | ACK, 0, 101), 0);
        assert_eq!(h.letters(), "Sr");
        assert_eq!(s.conn_state(h.letters()), "REJ");
    }

    #[test]
    fn lone_syn_is_s0_and_retransmitted_data_is_t() {
        let mut s = TcpSession::default();
        let mut h = History::default();
        s.process(&mut h, true, &hdr(SYN, 100, 0), 0);
        assert_eq!(s.conn_state(h.letters()), "S0");
        let mut s = TcpSession::default();
        let mut h = History::default();
        s.process(&mut h, true, &hdr(SYN, 100, 0), 0);
        s.process(&mut h, false, &hdr(SYN | ACK, 500, 101), 0);
        s.process(&mut h, true, &hdr(ACK | PSH, 101, 501), 10);
        s.process(&mut h, true, &hdr(ACK | PSH, 101, 501), 10);
        assert_eq!(h.letters(), "ShDT");
    }

    #[test]
    fn sequence_wrap_counts_bytes() {
        let mut s = TcpSession::default();
        let mut h = History::default();
        let isn = u32::MAX - 5;
        s.process(&mut h, true, &hdr(SYN, isn, 0), 0);
        s.process(&mut h, false, &hdr(SYN | ACK, 500, isn.wrapping_add(1)), 0);
        s.process(&mut h, true, &hdr(ACK, isn.wrapping_add(1), 501), 100);
        assert_eq!(s.orig_size(), 100);
    }
}
