//! TCP stream reassembly for one direction: in-order delivery, out-of-order buffering, and content gaps when
//! the peer acknowledges data that was never seen. What is held is bounded as Zeek's `TCP_Reassembler` bounds it
//! (`DataSent`): a direction whose data nobody acked gives up past 16 KiB above a hole, and any direction past
//! 10 MiB not yet acked; from then on nothing more of it reaches the analyzers ([`Stream::check_limits`]).

use std::collections::BTreeMap;

/// What the stream hands to analyzers.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    Data(&'a [u8]),
    /// `n` bytes that were never captured.
    Gap(u64),
}

/// Reassembles one direction of a TCP stream in relative sequence space (the first data byte is 1).
#[derive(Debug, Clone)]
pub struct Stream {
    next_seq: u64,
    /// Where the stream ends (the FIN's sequence number); `u64::MAX` until known.
    fin_seq: u64,
    /// Segments held behind a hole; allocated only while there are some (most streams arrive in order), and
    /// for good once the stream gave up.
    held: Option<Box<Held>>,
}

/// Out-of-order segments of one direction.
#[derive(Debug, Clone, Default)]
struct Held {
    /// Segments by start sequence: (length, bytes). The bytes are kept only when `keep_data` is set.
    segments: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Bytes kept in `segments`.
    bytes: usize,
    /// Sequence space the segments hold (their lengths, kept bytes or not), for Zeek's `DataSize`.
    len: u64,
    /// The highest end of a held segment (Zeek's last block's `upper`).
    end: u64,
    /// Zeek's `skip_deliveries`: the stream gave up; nothing more is delivered, and acks report no gaps. Kept
    /// here, out of line, as it is rare (every open connection pays for what `Stream` holds inline).
    skipping: bool,
}

/// Zeek's `tcp_max_initial_window`: a side that sent more than this with none of it acked is taken for one whose
/// acks the capture misses, and its delivered bytes are not kept for acks that will not come.
pub const MAX_INITIAL_WINDOW: u64 = 16384;
/// Zeek's `tcp_max_above_hole_without_any_acks`.
pub const MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS: u64 = 16384;
/// Zeek's `tcp_excessive_data_without_further_acks`.
pub const EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS: u64 = 10 << 20;

impl Default for Stream {
    fn default() -> Self {
        Stream { next_seq: 1, fin_seq: u64::MAX, held: None }
    }
}

impl Stream {
    /// Bytes held behind a hole (Zeek's TCP reassembly size for this direction).
    pub fn held_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.bytes)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether the stream gave up (Zeek's `skip_deliveries`).
    pub fn skipping(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.skipping)
    }

    /// Whether [`Stream::check_limits`] can find anything: only with segments held, or past 10 MiB delivered. Most
    /// streams are neither, and skip the endpoint arithmetic behind the check.
    #[inline]
    pub fn may_exceed_limits(&self) -> bool {
        self.held.is_some() || self.next_seq > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
    }

    /// Zeek's checks after `DataSent` hands a segment to the reassembler (`TCP_Reassembler::DataSent`), given
    /// whether any of this side's data was acked (`NoDataAcked`) and how many delivered bytes the peer has not
    /// acked yet (delivered data Zeek still holds, [`super::TcpSession::unacked`]). Returns the
    /// weird to raise when the stream gives up: it drops what it holds and delivers nothing more.
    pub fn check_limits(&mut self, no_data_acked: bool, delivered_unacked: u64) -> Option<&'static str> {
        let (held_len, held_end) = match self.held.as_deref() {
            Some(held) if held.skipping => return None,
            Some(held) => (held.len, held.end),
            None => (0, 0),
        };
        let reason = if no_data_acked && held_end.saturating_sub(self.next_seq) > MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS {
            "above_hole_data_without_any_acks"
        } else if delivered_unacked + held_len > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS {
            "excessive_data_without_further_acks"
        } else {
            return None;
        };
        self.give_up();
        Some(reason)
    }

    /// Zeek's `ClearBlocks` and `skip_deliveries`.
    fn give_up(&mut self) {
        self.held = Some(Box::new(Held { skipping: true, ..Held::default() }));
    }

    /// How far an ack of `ack` trims this stream: the FIN takes a sequence number that carries no data.
    pub fn trim_point(&self, ack: u64) -> u64 {
        ack.min(self.fin_seq)
    }

    /// The stream ends at `seq` (the latest FIN's, as Zeek keeps it).
    pub fn set_fin(&mut self, seq: u64) {
        self.fin_seq = seq;
    }

    /// The common case, without copying: a segment that continues the stream while nothing is buffered.
    /// Returns the new bytes (empty for a retransmission), or `None` when the segment must go through
    /// [`Stream::segment`].
    pub fn in_order<'d>(&mut self, seq: u64, data: &'d [u8]) -> Option<&'d [u8]> {
        if self.held.is_some() || seq > self.next_seq {
            return None;
        }
        let end = seq.saturating_add(data.len() as u64);
        if end <= self.next_seq {
            return Some(&[]);
        }
        let skip = (self.next_seq - seq) as usize;
        self.next_seq = end;
        Some(&data[skip..])
    }

    /// Adds a segment. Delivers every byte that is now in order.
    pub fn segment(&mut self, seq: u64, data: &[u8], keep_data: bool, deliver: &mut impl FnMut(Chunk)) {
        let end = seq.saturating_add(data.len() as u64);
        if end <= self.next_seq || data.is_empty() || self.skipping() {
            return; // old data (a retransmission), or a stream that gave up
        }
        if seq <= self.next_seq {
            let skip = (self.next_seq - seq) as usize;
            deliver(Chunk::Data(&data[skip..]));
            self.next_seq = end;
            self.drain(deliver);
            return;
        }
        let kept = if keep_data { data.to_vec() } else { Vec::new() };
        let held = self.held.get_or_insert_with(Box::default);
        held.bytes += kept.len();
        held.end = held.end.max(end);
        let slot = held.segments.entry(seq).or_insert((0, Vec::new()));
        if end > seq + slot.0 {
            held.bytes -= slot.1.len();
            held.len += end - seq - slot.0;
            *slot = (end - seq, kept);
        } else {
            held.bytes -= kept.len();
        }
    }

    /// The start sequence of the first held segment.
    fn first_held(&self) -> Option<u64> {
        self.held.as_ref().and_then(|h| h.segments.keys().next().copied())
    }

    /// Takes the first held segment out, freeing the holder once it is empty.
    fn pop_held(&mut self) -> Option<(u64, u64, Vec<u8>)> {
        let held = self.held.as_mut()?;
        let (seq, (len, bytes)) = held.segments.pop_first()?;
        held.bytes -= bytes.len();
        held.len -= len;
        if held.segments.is_empty() {
            self.held = None;
        }
        Some((seq, len, bytes))
    }

    fn drain(&mut self, deliver: &mut impl FnMut(Chunk)) {
        while let Some(seq) = self.first_held() {
            if seq > self.next_seq {
                break;
            }
            let (seq, len, bytes) = self.pop_held().expect("present");
            let end = seq + len;
            if end > self.next_seq {
                let skip = (self.next_seq - seq) as usize;
                if bytes.len() >= len as usize {
                    deliver(Chunk::Data(&bytes[skip..]));
                } else {
                    deliver(Chunk::Gap(end - self.next_seq));
                }
                self.next_seq = end;
            }
        }
    }

    /// The peer acknowledged everything below `ack`. Bytes below it that never arrived are a gap.
    /// Returns the number of missing bytes.
    pub fn acked(&mut self, ack: u64, deliver: &mut impl FnMut(Chunk)) -> u64 {
        // (An unset FIN, `u64::MAX`, limits nothing.)
        let limit = self.trim_point(ack);
        if self.skipping() {
            // Zeek's `Undelivered` reports no gap for a stream that skips its deliveries.
            self.next_seq = self.next_seq.max(limit);
            return 0;
        }
        let mut missing = 0;
        while limit > self.next_seq {
            let hole_end = self.first_held().map_or(limit, |s| s.min(limit));
            if hole_end > self.next_seq {
                let n = hole_end - self.next_seq;
                missing += n;
                deliver(Chunk::Gap(n));
                self.next_seq = hole_end;
            }
            let before = self.next_seq;
            self.drain(deliver);
            if self.next_seq == before {
                break;
            }
        }
        missing
    }

    /// End of connection: deliver whatever is buffered, gaps included.
    pub fn flush(&mut self, deliver: &mut impl FnMut(Chunk)) -> u64 {
        let mut missing = 0;
        while let Some(seq) = self.first_held() {
            if seq > self.next_seq {
                missing += seq - self.next_seq;
                deliver(Chunk::Gap(seq - self.next_seq));
                self.next_seq = seq;
            }
            self.drain(deliver);
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &mut Stream, seq: u64, d: &[u8]) -> Vec<String> {
        let mut out = vec![];
        s.segment(seq, d, true, &mut |c| out.push(format!("{c:?}")));
        out
    }

    #[test]
    fn in_order_and_out_of_order() {
        let mut s = Stream::default();
        assert_eq!(collect(&mut s, 1, b"ab"), vec!["Data([97, 98])"]);
        assert!(collect(&mut s, 5, b"ef").is_empty());
        assert_eq!(collect(&mut s, 3, b"cd"), vec!["Data([99, 100])", "Data([101, 102])"]);
        assert!(collect(&mut s, 1, b"abcdef").is_empty(), "retransmission is not delivered again");
    }

    #[test]
    fn in_order_fast_path_agrees_with_segment() {
        let mut s = Stream::default();
        assert_eq!(s.in_order(1, b"abc"), Some(&b"abc"[..]));
        assert_eq!(s.in_order(2, b"bcde"), Some(&b"de"[..]));
        assert_eq!(s.in_order(1, b"ab"), Some(&b""[..]));
        assert_eq!(s.in_order(9, b"x"), None, "a hole goes the slow way");
        collect(&mut s, 9, b"x");
        assert_eq!(s.in_order(6, b"yyy"), None, "buffered data goes the slow way");
    }

    #[test]
    fn ack_above_hole_is_a_gap() {
        let mut s = Stream::default();
        collect(&mut s, 1, b"ab");
        collect(&mut s, 10, b"xy");
        let mut out = vec![];
        let missing = s.acked(12, &mut |c| out.push(format!("{c:?}")));
        assert_eq!(missing, 7);
        assert_eq!(out, vec!["Gap(7)", "Data([120, 121])"]);
    }

    #[test]
    fn fin_is_not_a_gap() {
        let mut s = Stream::default();
        collect(&mut s, 1, b"ab");
        s.set_fin(3);
        assert_eq!(s.acked(4, &mut |_| {}), 0);
    }

    #[test]
    fn a_stream_that_gave_up_delivers_nothing_and_reports_no_gap() {
        let mut s = Stream::default();
        collect(&mut s, 1, b"ab");
        collect(&mut s, 100, &[0; 16_287]);
        assert_eq!(s.check_limits(false, 0), None, "acked before: the hole rule does not apply");
        assert_eq!(s.check_limits(true, 0), None, "16 KiB from the hole on, not more");
        collect(&mut s, 16_387, b"c");
        assert_eq!(s.check_limits(true, 0), Some("above_hole_data_without_any_acks"));
        assert_eq!((s.held_bytes(), s.skipping()), (0, true));
        assert!(collect(&mut s, 3, b"de").is_empty());
        let mut out = vec![];
        assert_eq!(s.acked(20_000, &mut |c| out.push(format!("{c:?}"))), 0);
        assert!(out.is_empty());
        assert_eq!(s.check_limits(true, u64::MAX), None, "gave up once");

        let mut s = Stream::default();
        collect(&mut s, 1, b"ab");
        assert_eq!(s.check_limits(false, EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS), None);
        assert_eq!(
            s.check_limits(false, EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS + 1),
            Some("excessive_data_without_further_acks")
        );
    }
}
