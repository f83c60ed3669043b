//! IPv4 and IPv6 fragment reassembly. Fragments are kept per (src, dst, id), as Zeek keys them, until the
//! datagram is whole, then rebuilt as one unfragmented datagram that decodes like any other. The checks and
//! weirds are those of Zeek's `FragReassembler` (`src/Frag.cc`), and the bytes are held as its `Reassembler`
//! holds them (`src/Reassem.cc`): non-overlapping blocks by offset, a fragment's bytes stored only where no earlier
//! fragment put any, each overlapped block compared once. Every step looks up only the blocks a fragment overlaps,
//! so a flood of overlapping fragments of one datagram costs time linear in its bytes (a list of whole pieces,
//! each new fragment compared with all of them, ran 100k tiny fragments at 68k packets/s).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::{IpDatagram, PacketWeird};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
}

/// Zeek's bounds on a fragment's size: smaller ones (but the last) and larger datagrams are weirds.
const MIN_ACCEPTABLE_FRAG_SIZE: usize = 64;
const MAX_ACCEPTABLE_FRAG_SIZE: usize = 64_000;
/// What one pending datagram costs beyond its bytes, for the memory bound: its map entry, the first fragment's
/// header and the block map's first node (measured under a flood of first fragments that never complete: about
/// 950 bytes each in peak resident memory).
const PENDING_COST: usize = 1024;

/// What the first fragment seen of a datagram says about all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unfragmentable {
    /// IPv4: the protocol and header length; IPv6: the header length before the fragment header and the
    /// protocol after it (of the first fragment once that arrives).
    proto: u8,
    hdr_len: usize,
}

impl Unfragmentable {
    fn of(ip: &IpDatagram<'_>) -> Unfragmentable {
        match ip.frag {
            Some(f) if ip.is_v6 => Unfragmentable { proto: f.v6_next, hdr_len: f.data_start - 8 },
            _ => Unfragmentable { proto: ip.proto, hdr_len: ip.hdr_len },
        }
    }
}

struct Pending {
    /// The first fragment's header bytes (up to its data), once seen.
    header: Option<Vec<u8>>,
    /// The first fragment's IPv6 fragment header position and next-header pointer.
    v6: Option<((usize, usize), u8)>,
    /// Of the fragment that opened the datagram.
    unfragmentable: Unfragmentable,
    /// Held bytes as non-overlapping blocks by offset (Zeek's `DataBlockList`): earlier bytes win on overlap.
    blocks: BTreeMap<usize, Vec<u8>>,
    /// End of the bytes held contiguously from offset 0.
    contiguous: usize,
    /// Payload length, known once a last fragment arrived (Zeek's `frag_size`).
    total: Option<usize>,
    last_seen: f64,
    bytes: usize,
}

/// Reassembles fragmented datagrams, bounded in memory and time.
pub struct Reassembler {
    pending: HashMap<FragKey, Pending>,
    held_bytes: usize,
    max_bytes: usize,
    timeout: f64,
    /// Datagrams dropped because they expired or memory ran out (a worker's `zeek_fragments_dropped_total`).
    pub dropped: u64,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler { pending: HashMap::new(), held_bytes: 0, max_bytes: 32 << 20, timeout: 60.0, dropped: 0 }
    }
}

impl Pending {
    /// Zeek's `CheckOverlap` and `DataBlockList::Insert`: compares `data` with every held block it overlaps (the same
    /// bytes again are an overlap, other bytes an inconsistency) and holds the parts no block covers. Returns the
    /// bytes newly held.
    fn add_block(&mut self, offset: usize, data: &[u8], report: &mut dyn FnMut(&'static str)) -> usize {
        let upper = offset + data.len();
        let mut gaps = Vec::new();
        let mut cursor = offset;
        // The block that starts at or before `offset` may reach into it; the others start inside it. (Zeek skips
        // the comparison for a fragment that starts where the last block ends: no block overlaps it here either.)
        let before = self.blocks.range(..=offset).next_back().filter(|(start, b)| *start + b.len() > offset);
        let inside = self.blocks.range(offset + 1..upper);
        for (&start, held) in before.into_iter().chain(inside) {
            let (from, to) = (offset.max(start), upper.min(start + held.len()));
            if start > cursor {
                gaps.push((cursor, start));
            }
            let same = held[from - start..to - start] == data[from - offset..to - offset];
            report(if same { "fragment_overlap" } else { "fragment_inconsistency" });
            cursor = cursor.max(start + held.len());
        }
        if cursor < upper {
            gaps.push((cursor, upper));
        }
        let mut added = 0;
        for (from, to) in gaps {
            added += to - from;
            self.blocks.insert(from, data[from - offset..to - offset].to_vec());
        }
        while let Some(block) = self.blocks.get(&self.contiguous) {
            self.contiguous += block.len();
        }
        added
    }

    /// Zeek's `FragReassembler::BlockInserted`: the whole datagram once the first block, the last fragment and
    /// everything between them are held.
    fn try_complete(&mut self, report: &mut dyn FnMut(&'static str)) -> Option<Vec<u8>> {
        let mut total = self.total?;
        let end = self.blocks.last_key_value().map(|(start, b)| start + b.len())?;
        if self.contiguous == 0 {
            return None;
        }
        let hole = self.contiguous < end;
        if hole && self.contiguous >= total {
            // Contiguous through the expected end with more beyond a hole: Zeek takes the contiguous part.
            report("fragment_size_inconsistency");
            total = self.contiguous;
        } else if hole {
            return None;
        } else if end > total {
            report("fragment_size_inconsistency");
            total = end;
        } else if end < total {
            return None;
        }
        let header = self.header.as_ref()?;
        let mut payload = Vec::with_capacity(total);
        for block in self.blocks.values() {
            let take = block.len().min(total - payload.len());
            payload.extend_from_slice(&block[..take]);
            if payload.len() == total {
                break;
            }
        }
        Some(match self.v6 {
            Some(((frag_hdr_at, nh_offset), next)) => {
                let mut out = header[..frag_hdr_at].to_vec();
                if let Some(b) = out.get_mut(nh_offset) {
                    *b = next;
                }
                out.extend_from_slice(&payload);
                let plen = (out.len().saturating_sub(40)).min(0xffff) as u16;
                out[4..6].copy_from_slice(&plen.to_be_bytes());
                out
            }
            None => {
                let mut out = header.clone();
                out.extend_from_slice(&payload);
                let tlen = out.len().min(0xffff) as u16;
                out[2..4].copy_from_slice(&tlen.to_be_bytes());
                out[6] = 0;
                out[7] = 0;
                out[10] = 0;
                out[11] = 0;
                let sum = super::internet_checksum(&out[..header.len()], 0);
                out[10..12].copy_from_slice(&sum.to_be_bytes());
                out
            }
        })
    }
}

impl Reassembler {
    /// What the pending datagrams cost, counted against the memory bound: their bytes and, for each, what holding
    /// one costs beyond them. A flood of tiny first fragments is mostly the latter: 8 bytes of payload, about 950 of
    /// map entry, header copy and block map.
    fn memory(&self) -> usize {
        self.held_bytes + self.pending.len() * PENDING_COST
    }

    /// Fragment bytes held for datagrams not yet complete (Zeek's `ReassemblerStats` `frag_size`).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Adds one fragment. Returns the whole datagram (header and payload, unfragmented) once complete.
    pub fn add(&mut self, now: f64, ip: &IpDatagram<'_>) -> Option<Vec<u8>> {
        self.add_reporting(now, ip, &mut |_| {})
    }

    /// [`Reassembler::add`], handing Zeek's fragment weirds (flow weirds between the datagram's hosts) to `weirds`.
    pub fn add_reporting(
        &mut self,
        now: f64,
        ip: &IpDatagram<'_>,
        weirds: &mut dyn FnMut(PacketWeird),
    ) -> Option<Vec<u8>> {
        let frag = ip.frag?;
        let key = FragKey { src: ip.src, dst: ip.dst, id: frag.id };
        let data = ip.bytes.get(frag.data_start..)?;
        if self.memory() + data.len() + PENDING_COST > self.max_bytes {
            self.expire(now, true);
            if self.memory() + data.len() + PENDING_COST > self.max_bytes {
                self.dropped += 1;
                return None;
            }
        }
        let mut report = |name| weirds(PacketWeird::flow(name, ip.src, ip.dst));
        let this = Unfragmentable::of(ip);
        let entry = self.pending.entry(key).or_insert_with(|| Pending {
            header: None,
            v6: None,
            unfragmentable: this,
            blocks: BTreeMap::new(),
            contiguous: 0,
            total: None,
            last_seen: now,
            bytes: 0,
        });
        if this != entry.unfragmentable {
            report("fragment_protocol_inconsistency");
        }
        if frag.dont_fragment {
            // Linux MTU discovery for UDP does this, for one.
            report("fragment_with_DF");
        }
        entry.last_seen = now;
        if frag.offset == 0 {
            entry.unfragmentable.proto = this.proto;
            if entry.header.is_none() {
                entry.header = Some(ip.bytes[..frag.data_start].to_vec());
                entry.v6 = frag.v6_frag_hdr.map(|p| (p, frag.v6_next));
            }
        }
        let claimed_len = ip.total_len.saturating_sub(frag.data_start);
        check_size(entry, frag.offset + claimed_len, frag.more, ip.total_len, &mut report);
        if data.is_empty() {
            // Zeek's `NewBlock` ignores it: no overlap check, no completion check.
            return None;
        }
        let added = entry.add_block(frag.offset, data, &mut report);
        entry.bytes += added;
        self.held_bytes += added;
        let whole = entry.try_complete(&mut report)?;
        let done = self.pending.remove(&key)?;
        self.held_bytes -= done.bytes;
        Some(whole)
    }

    /// Drops fragments older than the timeout (or everything, under memory pressure).
    pub fn expire(&mut self, now: f64, all: bool) {
        let timeout = self.timeout;
        let before = self.pending.len();
        let mut freed = 0;
        self.pending.retain(|_, p| {
            let keep = !all && now - p.last_seen < timeout;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.held_bytes -= freed;
        self.dropped += (before - self.pending.len()) as u64;
    }
}

/// Zeek's size checks of one fragment ending at `upper` (by its claimed length): the last fragment fixes the
/// datagram's size, later disagreement is an inconsistency, and unusually small or large fragments are weirds.
fn check_size(p: &mut Pending, upper: usize, more: bool, total_len: usize, report: &mut dyn FnMut(&'static str)) {
    if !more {
        match p.total {
            None => p.total = Some(upper),
            Some(size) if size != upper => {
                report("fragment_size_inconsistency");
                p.total = Some(size.max(upper));
            }
            Some(_) => {}
        }
    } else if total_len < MIN_ACCEPTABLE_FRAG_SIZE {
        report("excessively_small_fragment");
    }
    if upper > MAX_ACCEPTABLE_FRAG_SIZE {
        report("excessively_large_fragment");
    }
    if let Some(size) = p.total.filter(|&size| upper > size) {
        // A fragment that is not the last reaches past the end the last one set.
        report("fragment_size_inconsistency");
        p.total = Some(upper.max(size));
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_ip;
    use super::*;

    fn v4_fragment(offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        v4_fragment_of(17, offset, more, data)
    }

    fn v4_fragment_of(proto: u8, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let total = 20 + data.len();
        let off = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 7];
        p.extend_from_slice(&off.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(data);
        p
    }

    /// Adds the fragments in order; the weirds they raised, and whether the last one completed the datagram.
    fn add_all(r: &mut Reassembler, fragments: &[Vec<u8>]) -> (Vec<&'static str>, bool) {
        let mut names = Vec::new();
        let mut complete = false;
        for (i, f) in fragments.iter().enumerate() {
            let ip = decode_ip(f, false).unwrap();
            complete = r
                .add_reporting(i as f64, &ip, &mut |w| {
                    assert_eq!((w.source, w.hosts.map(|h| h.0)), (None, Some(ip.src)), "a flow weird from src/Frag.cc");
                    names.push(w.name);
                })
                .is_some();
        }
        (names, complete)
    }

    #[test]
    fn reassembles_out_of_order_ipv4() {
        let mut r = Reassembler::default();
        let second = v4_fragment(8, false, b"world!!!");
        let first = v4_fragment(0, true, b"hello, w");
        assert!(r.add(0.0, &decode_ip(&second, false).unwrap()).is_none());
        let whole = r.add(0.1, &decode_ip(&first, false).unwrap()).expect("complete");
        let ip = decode_ip(&whole, true).unwrap();
        assert!(ip.frag.is_none());
        assert_eq!(ip.payload, b"hello, wworld!!!");
    }

    /// A datagram whose first fragment is sent again and again (every 10 s, so it never times out) holds that
    /// fragment once, and still reassembles with the bytes seen first once its last fragment comes.
    #[test]
    fn a_retransmitted_fragment_is_held_once() {
        let mut r = Reassembler::default();
        let first = v4_fragment(0, true, b"hello, w");
        let empty = v4_fragment(8, true, b"");
        for i in 0..10_000u32 {
            assert!(r.add(f64::from(i) * 10.0, &decode_ip(&first, false).unwrap()).is_none());
            assert!(r.add(f64::from(i) * 10.0, &decode_ip(&empty, false).unwrap()).is_none());
            r.expire(f64::from(i) * 10.0, false);
        }
        let key = r.pending.keys().next().copied().expect("one datagram pending");
        assert_eq!(r.pending[&key].blocks.len(), 1, "the first fragment, once; the empty one at its end adds nothing");
        assert_eq!(r.held_bytes, 8);
        let overlapping = v4_fragment(0, true, b"HELLO, W");
        assert!(r.add(100_000.0, &decode_ip(&overlapping, false).unwrap()).is_none());
        let last = v4_fragment(8, false, b"world!!!");
        let whole = r.add(100_000.0, &decode_ip(&last, false).unwrap()).expect("complete");
        assert_eq!(decode_ip(&whole, true).unwrap().payload, b"hello, wworld!!!");
    }

    /// Zeek's `Reassembler::NewBlock` returns at once for an empty block: an empty last fragment sets the
    /// datagram's size but completes nothing, and the datagram waits for a fragment with bytes.
    #[test]
    fn an_empty_fragment_completes_nothing() {
        let mut r = Reassembler::default();
        let (names, complete) = add_all(&mut r, &[v4_fragment(0, true, DATA), v4_fragment(64, false, b"")]);
        assert_eq!((names, complete), (vec![], false));
        let (names, complete) = add_all(&mut r, &[v4_fragment(0, true, DATA)]);
        assert_eq!((names, complete), (vec!["fragment_overlap"], true), "the first fragment again completes it");
    }

    /// Each fragment is compared with the blocks it overlaps only, and holds only the bytes no earlier fragment
    /// put there (Zeek's block list), so a fragment that covers several held ones is checked against each of them.
    #[test]
    fn fragments_are_held_as_non_overlapping_blocks() {
        let mut r = Reassembler::default();
        let pieces =
            [v4_fragment(8, true, &DATA[..8]), v4_fragment(24, true, &DATA[..8]), v4_fragment(40, true, &[0xa5; 8])];
        let (names, _) = add_all(&mut r, &pieces);
        assert_eq!(names, ["excessively_small_fragment"; 3]);
        let (names, complete) =
            add_all(&mut r, &[v4_fragment(0, true, &DATA[..56]), v4_fragment(56, false, &DATA[..8])]);
        assert_eq!(names, ["fragment_overlap", "fragment_overlap", "fragment_inconsistency"]);
        assert!(complete);

        // Ten thousand overlapping tiny fragments of one datagram: a lookup each, not a walk over all of them.
        let mut r = Reassembler::default();
        for i in 0..10_000usize {
            let ip_bytes = v4_fragment((i * 8 * 7) % 60_000, true, &DATA[..16]);
            r.add(0.0, &decode_ip(&ip_bytes, false).unwrap());
        }
        let key = r.pending.keys().next().copied().expect("one datagram pending");
        let held: usize = r.pending[&key].blocks.values().map(Vec::len).sum();
        assert_eq!((held, r.held_bytes), (r.pending[&key].bytes, held));
        assert!(held <= 60_016, "no byte held twice");
    }

    /// A flood of datagrams that never complete is bounded by what they cost, not by their few bytes: past the
    /// bound everything pending is dropped (and counted) and holding starts afresh.
    #[test]
    fn a_flood_of_tiny_first_fragments_stays_within_the_bound() {
        let mut r = Reassembler::default();
        let mut most = 0;
        for id in 0..200_000u32 {
            let mut f = v4_fragment(0, true, &DATA[..8]);
            f[4..6].copy_from_slice(&(id as u16).to_be_bytes());
            f[12] = (id >> 16) as u8;
            r.add(0.0, &decode_ip(&f, false).unwrap());
            most = most.max(r.pending.len());
        }
        assert!(most * PENDING_COST <= r.max_bytes, "{most} pending at most");
        assert!(most > 25_000, "{most}: the bound is not hit early");
        assert!(r.dropped > 100_000);
    }

    #[test]
    fn incomplete_datagrams_expire() {
        let mut r = Reassembler::default();
        let first = v4_fragment(0, true, b"hello, w");
        assert!(r.add(0.0, &decode_ip(&first, false).unwrap()).is_none());
        r.expire(100.0, false);
        assert_eq!(r.dropped, 1);
        assert_eq!(r.held_bytes, 0);
    }

    const DATA: &[u8; 64] = &[0x5a; 64];

    #[test]
    fn overlapping_fragments_are_weirds_by_whether_their_bytes_agree() {
        let first = v4_fragment(0, true, DATA);
        let same_again = v4_fragment(32, true, &DATA[..48]);
        let last = v4_fragment(80, false, &DATA[..8]);
        let (names, complete) = add_all(&mut Reassembler::default(), &[first.clone(), same_again, last.clone()]);
        assert_eq!((names, complete), (vec!["fragment_overlap"], true));
        let other_bytes = v4_fragment(32, true, &[0xa5; 48]);
        let (names, _) = add_all(&mut Reassembler::default(), &[first, other_bytes, last]);
        assert_eq!(names, ["fragment_inconsistency"]);
    }

    #[test]
    fn sizes_that_disagree_are_inconsistencies() {
        let two_ends =
            [v4_fragment(64, false, &DATA[..8]), v4_fragment(64, false, &DATA[..16]), v4_fragment(0, true, DATA)];
        let (names, complete) = add_all(&mut Reassembler::default(), &two_ends);
        let expected = vec!["fragment_size_inconsistency", "fragment_overlap"];
        assert_eq!((names, complete), (expected, true), "completes at the larger size");
        let past_the_end = [v4_fragment(64, false, &DATA[..8]), v4_fragment(0, true, &[0x5a; 80])];
        let (names, complete) = add_all(&mut Reassembler::default(), &past_the_end);
        assert_eq!((names, complete), (vec!["fragment_size_inconsistency", "fragment_overlap"], true));
    }

    #[test]
    fn unusual_fragments_are_weirds() {
        let small = [v4_fragment(0, true, &DATA[..16]), v4_fragment(16, false, &DATA[..16])];
        let (names, complete) = add_all(&mut Reassembler::default(), &small);
        assert_eq!((names, complete), (vec!["excessively_small_fragment"], true), "the last fragment may be small");

        let (names, _) = add_all(&mut Reassembler::default(), &[v4_fragment(64_000, false, DATA)]);
        assert_eq!(names, ["excessively_large_fragment"]);

        let mut dont_fragment = v4_fragment(0, true, DATA);
        dont_fragment[6] |= 0x40;
        let (names, _) = add_all(&mut Reassembler::default(), &[dont_fragment]);
        assert_eq!(names, ["fragment_with_DF"]);

        let other_protocol = [v4_fragment(0, true, DATA), v4_fragment_of(6, 64, false, &DATA[..8])];
        let (names, complete) = add_all(&mut Reassembler::default(), &other_protocol);
        assert_eq!((names, complete), (vec!["fragment_protocol_inconsistency"], true), "keyed without the protocol");
    }
}
