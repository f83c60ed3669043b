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
    let mut sum = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
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
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            add(&s.octets());
            add(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            add(&s.octets());
            add(&d.octets());
        }
        _ => return false,
    }
    let len = segment.len() as u32;
    sum += u32::from(proto) + (len >> 16) + (len & 0xffff);
    internet_checksum(segment, sum) == 0
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

    #[test]
    fn window_scale_option() {
        assert_eq!(tcp_window_scale(&[1, 3, 3, 7, 0]), Some(7));
        assert_eq!(tcp_window_scale(&[2, 4, 5, 0xb4]), None);
        assert_eq!(tcp_window_scale(&[2, 0]), None);
        assert_eq!(tcp_window_scale(&[8, 200]), None);
    }
}
