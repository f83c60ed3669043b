//! TCP, UDP and ICMP headers, and the Internet checksum.

use std::net::IpAddr;

use super::{DecodeError, IpDatagram, be16, be32};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub fn fin(self) -> bool {
        self.0 & 0x01 != 0
    }
    pub fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }
    pub fn rst(self) -> bool {
        self.0 & 0x04 != 0
    }
    pub fn ack(self) -> bool {
        self.0 & 0x10 != 0
    }
    pub fn urg(self) -> bool {
        self.0 & 0x20 != 0
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub hdr_len: usize,
    /// Window scale option (SYN only), `None` without the option.
    pub window_scale: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
pub struct UdpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub len: u16,
}

#[derive(Debug, Clone, Copy)]
pub struct IcmpHeader {
    pub icmp_type: u8,
    pub code: u8,
}

/// The transport layer of one datagram: its header and its payload as captured.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    Tcp { hdr: TcpHeader, payload: &'a [u8], payload_len: usize },
    Udp { hdr: UdpHeader, payload: &'a [u8] },
    Icmp { hdr: IcmpHeader, payload: &'a [u8], payload_len: usize, v6: bool },
    Other { proto: u8 },
}

/// Decodes the transport header of an unfragmented (or reassembled) datagram.
pub fn decode_transport<'a>(ip: &IpDatagram<'a>) -> Result<Transport<'a>, DecodeError> {
    let p = ip.payload;
    match ip.proto {
        6 => {
            let hdr_len = usize::from(*p.get(12).ok_or(DecodeError::TruncatedHeader)? >> 4) * 4;
            if hdr_len < 20 || p.len() < hdr_len {
                return Err(DecodeError::TruncatedHeader);
            }
            let flags = TcpFlags(p[13]);
            let window_scale = if flags.syn() { tcp_window_scale(&p[20..hdr_len]) } else { None };
            let hdr = TcpHeader {
                src_port: be16(p, 0).ok_or(DecodeError::TruncatedHeader)?,
                dst_port: be16(p, 2).ok_or(DecodeError::TruncatedHeader)?,
                seq: be32(p, 4).ok_or(DecodeError::TruncatedHeader)?,
                ack: be32(p, 8).ok_or(DecodeError::TruncatedHeader)?,
                flags,
                window: be16(p, 14).ok_or(DecodeError::TruncatedHeader)?,
                hdr_len,
                window_scale,
            };
            Ok(Transport::Tcp { hdr, payload: &p[hdr_len..], payload_len: ip.payload_len.saturating_sub(hdr_len) })
        }
        17 => {
            if p.len() < 8 {
                return Err(DecodeError::TruncatedHeader);
            }
            let hdr = UdpHeader {
                src_port: be16(p, 0).unwrap_or(0),
                dst_port: be16(p, 2).unwrap_or(0),
                len: be16(p, 4).unwrap_or(0),
            };
            // The UDP length bounds the payload when it is shorter than the IP payload.
            let udp_end = usize::from(hdr.len).clamp(8, p.len());
            Ok(Transport::Udp { hdr, payload: &p[8..udp_end] })
        }
        1 | 58 => {
            if p.len() < 4 {
                return Err(DecodeError::TruncatedHeader);
            }
            let hdr = IcmpHeader { icmp_type: p[0], code: p[1] };
            let body = p.get(8..).unwrap_or(&[]);
            Ok(Transport::Icmp {
                hdr,
                payload: body,
                payload_len: ip.payload_len.saturating_sub(8),
                v6: ip.proto == 58,
            })
        }
        proto => Ok(Transport::Other { proto }),
    }
}

fn tcp_window_scale(mut opts: &[u8]) -> Option<u8> {
    while let Some(&kind) = opts.first() {
        match kind {
            0 => return None,
            1 => opts = &opts[1..],
            _ => {
                let len = usize::from(*opts.get(1)?);
                if len < 2 || len > opts.len() {
                    return None;
                }
                if kind == 3 && len >= 3 {
                    return Some(opts[2]);
                }
                opts = &opts[len..];
            }
        }
    }
    None
}

/// RFC 1071 checksum over `data`, folded into `initial` (a partial sum): 0 means "valid".
pub fn internet_checksum(data: &[u8], initial: u32) -> u16 {
    let sum = u64::from(ones_complement_sum(data)) + u64::from(initial);
    !fold16(sum)
}

/// The 16-bit one's-complement sum of `data` read as big-endian words (an odd last byte padded with zero).
///
/// The one's-complement sum commutes with byte swapping, so the bytes are summed as native-endian 32-bit halves
/// of 64-bit words (eight bytes per step instead of two) and the folded result is swapped back once.
fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        acc += (v & 0xffff_ffff) + (v >> 32);
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_ne_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    u16::from_be(fold16(acc))
}

/// The pseudo-header's address part: both addresses summed, not yet folded.
fn pair_sum(src: &[u8], dst: &[u8]) -> u32 {
    u32::from(ones_complement_sum(src)) + u32::from(ones_complement_sum(dst))
}

/// Folds the carries of a one's-complement accumulator into 16 bits.
fn fold16(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether a TCP, UDP or ICMPv6 checksum over the full segment is valid (pseudo-header included).
/// ICMPv4 has no pseudo-header. A zero UDP checksum over IPv4 means "not computed".
pub fn transport_checksum_ok(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> bool {
    if proto == 17 && segment.get(6..8) == Some(&[0, 0]) && src.is_ipv4() {
        return true;
    }
    if proto == 1 {
        return internet_checksum(segment, 0) == 0;
    }
    let addresses = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pair_sum(&s.octets(), &d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => pair_sum(&s.octets(), &d.octets()),
        _ => return false,
    };
    let len = segment.len() as u32;
    let pseudo = addresses + u32::from(proto) + (len >> 16) + (len & 0xffff);
    internet_checksum(segment, pseudo) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_valid_header_is_zero() {
        let mut h = [0x45u8, 0, 0, 0x1c, 0, 0, 0, 0, 0x40, 0x11, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let s = internet_checksum(&h, 0);
        h[10..12].copy_from_slice(&s.to_be_bytes());
        assert_eq!(internet_checksum(&h, 0), 0);
    }

    /// The RFC 1071 definition, two bytes at a time, as the reference for the word-wise sum.
    fn reference_checksum(data: &[u8], initial: u32) -> u16 {
        let mut sum = u64::from(initial);
        for c in data.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        !fold16(sum)
    }

    #[test]
    fn word_wise_sum_matches_the_definition() {
        // Every length from 0 to 70 (all alignments and odd tails), with bytes that produce many carries.
        let data: Vec<u8> = (0..70u32).map(|i| (i.wrapping_mul(151) ^ 0xa5) as u8 | 0x80).collect();
        for len in 0..=data.len() {
            for start in 0..3.min(len + 1) {
                let slice = &data[start..len];
                for initial in [0, 1, 0xffff, 0x3_fffe] {
                    assert_eq!(internet_checksum(slice, initial), reference_checksum(slice, initial), "len {len}");
                }
            }
        }
        assert_eq!(internet_checksum(&[0xff; 4096], 0), reference_checksum(&[0xff; 4096], 0));
    }

    #[test]
    fn window_scale_option() {
        assert_eq!(tcp_window_scale(&[1, 3, 3, 7, 0]), Some(7));
        assert_eq!(tcp_window_scale(&[2, 4, 5, 0xb4]), None);
        assert_eq!(tcp_window_scale(&[2, 0]), None);
        assert_eq!(tcp_window_scale(&[8, 200]), None);
    }
}
