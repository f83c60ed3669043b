//! IPv4 and IPv6 fragment reassembly. Fragments are kept per (src, dst, id, proto) until the datagram
//! is whole, then rebuilt as one unfragmented datagram that decodes like any other.

use std::collections::HashMap;
use std::net::IpAddr;

use super::IpDatagram;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct Pending {
    /// The first fragment's header bytes (up to its data), once seen.
    header: Option<Vec<u8>>,
    /// The first fragment's IPv6 fragment header position and next-header pointer.
    v6: Option<((usize, usize), u8)>,
    pieces: Vec<(usize, Vec<u8>)>,
    /// Total payload length, known once the last fragment arrived.
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
    /// Datagrams dropped because they expired or memory ran out (exposed as a metric).
    pub dropped: u64,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler { pending: HashMap::new(), held_bytes: 0, max_bytes: 32 << 20, timeout: 60.0, dropped: 0 }
    }
}

impl Reassembler {
    /// Adds one fragment. Returns the whole datagram (header and payload, unfragmented) once complete.
    pub fn add(&mut self, now: f64, ip: &IpDatagram<'_>) -> Option<Vec<u8>> {
        let frag = ip.frag?;
        let key = FragKey { src: ip.src, dst: ip.dst, id: frag.id, proto: if ip.is_v6 { 0 } else { ip.proto } };
        let data = ip.bytes.get(frag.data_start..)?;
        if self.held_bytes + data.len() > self.max_bytes {
            self.expire(now, true);
            if self.held_bytes + data.len() > self.max_bytes {
                self.dropped += 1;
                return None;
            }
        }
        let entry = self.pending.entry(key).or_insert_with(|| Pending {
            header: None,
            v6: None,
            pieces: Vec::new(),
            total: None,
            last_seen: now,
            bytes: 0,
        });
        entry.last_seen = now;
        if frag.offset == 0 && entry.header.is_none() {
            entry.header = Some(ip.bytes[..frag.data_start].to_vec());
            entry.v6 = frag.v6_frag_hdr.map(|p| (p, frag.v6_next));
        }
        if !frag.more {
            entry.total = Some(frag.offset + data.len());
        }
        entry.bytes += data.len();
        self.held_bytes += data.len();
        entry.pieces.push((frag.offset, data.to_vec()));
        let whole = Self::try_complete(entry)?;
        let done = self.pending.remove(&key)?;
        self.held_bytes -= done.bytes;
        Some(whole)
    }

    fn try_complete(p: &mut Pending) -> Option<Vec<u8>> {
        let total = p.total?;
        let header = p.header.as_ref()?;
        p.pieces.sort_by_key(|(off, _)| *off);
        let mut covered = 0;
        for (off, d) in &p.pieces {
            if *off > covered {
                return None;
            }
            covered = covered.max(off + d.len());
        }
        if covered < total {
            return None;
        }
        let mut payload = vec![0u8; total];
        // Earlier pieces win on overlap, as the first data seen is what a host would keep.
        for (off, d) in p.pieces.iter().rev() {
            let end = (off + d.len()).min(total);
            if *off < end {
                payload[*off..end].copy_from_slice(&d[..end - off]);
            }
        }
        Some(match p.v6 {
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

#[cfg(test)]
mod tests {
    use super::super::decode_ip;
    use super::*;

    fn v4_fragment(offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let total = 20 + data.len();
        let off = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 7];
        p.extend_from_slice(&off.to_be_bytes());
        p.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(data);
        p
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

    #[test]
    fn incomplete_datagrams_expire() {
        let mut r = Reassembler::default();
        let first = v4_fragment(0, true, b"hello, w");
        assert!(r.add(0.0, &decode_ip(&first, false).unwrap()).is_none());
        r.expire(100.0, false);
        assert_eq!(r.dropped, 1);
        assert_eq!(r.held_bytes, 0);
    }
}
