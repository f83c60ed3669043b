//! Packet decoding: link layers down to an IP datagram, then the transport header; tunnel headers (GRE, UDP tunnels).
//!
//! Decoding never allocates and never panics: every read is bounds-checked, and a malformed packet
//! becomes a [`DecodeError`] that the engine reports as a weird (Zeek's names where Zeek has one).

mod frag;
pub mod icmp6;
mod link;
#[cfg(test)]
pub(crate) mod test_frames;
mod transport;
mod tunnel;

pub use frag::{FragKey, Reassembler};
pub use link::{LinkType, decode_link};
pub use transport::{
    IcmpHeader, TcpFlags, TcpHeader, Transport, UdpHeader, decode_transport, internet_checksum, ipv4_header_checksum,
    transport_checksum_ok,
};
pub use tunnel::{GrePayload, GreWeird, TunnelPayload, UdpTunnel, is_teredo_bubble, parse_gre};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a packet could not be decoded; the text is the weird name Zeek uses for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated_link_header")]
    TruncatedLink,
    #[error("unknown_packet_type")]
    UnknownEtherType,
    #[error("truncated_IP")]
    TruncatedIp,
    #[error("truncated_header")]
    TruncatedHeader,
    #[error("bad_IP_checksum")]
    BadIpChecksum,
    #[error("unknown_protocol")]
    UnknownIpVersion,
    #[error("internally_truncated_header")]
    BadIpHeaderLength,
    #[error("invalid_inner_IP_version")]
    BadTunnel,
    #[error("ipv6_ext_truncated")]
    Ipv6ExtTruncated,
    /// The IP header (IPv6: with its extension headers) is longer than the datagram's total length.
    #[error("invalid_IP_header_size")]
    InvalidIpHeaderSize,
    #[error("non_ip_packet_in_ethernet")]
    NotIp,
    #[error("truncated_802_11_header")]
    Truncated80211,
    #[error("truncated_802_11_llc_header")]
    Truncated80211Llc,
    #[error("truncated_802_11_amsdu_header")]
    TruncatedAmsduHeader,
    #[error("truncated_802_11_amsdu_packet")]
    TruncatedAmsduPacket,
    #[error("truncated_radiotap_header")]
    TruncatedRadiotap,
}

impl DecodeError {
    /// The analyzer Zeek names as the weird's `source`: its IP analyzer reports the header checks.
    pub fn source(self) -> Option<&'static str> {
        match self {
            DecodeError::TruncatedIp
            | DecodeError::BadIpChecksum
            | DecodeError::BadIpHeaderLength
            | DecodeError::InvalidIpHeaderSize => Some("IP"),
            DecodeError::Truncated80211
            | DecodeError::Truncated80211Llc
            | DecodeError::TruncatedAmsduHeader
            | DecodeError::TruncatedAmsduPacket => Some("IEEE802_11"),
            DecodeError::TruncatedRadiotap => Some("IEEE802_11_RADIO"),
            _ => None,
        }
    }
}

/// An anomaly between two hosts found while decoding an IP header (Zeek's `flow_weird`): logged with the
/// addresses and port 0, no connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowWeird {
    pub name: &'static str,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// Fragment header fields of an IPv4 or IPv6 fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    pub id: u32,
    /// Byte offset of this fragment's payload.
    pub offset: usize,
    pub more: bool,
    /// Where the fragment's data starts in [`IpDatagram::bytes`].
    pub data_start: usize,
    /// IPv6: where the fragment header starts, and the offset of the next-header byte that points to it.
    pub v6_frag_hdr: Option<(usize, usize)>,
    /// IPv6: the protocol after the fragment header.
    pub v6_next: u8,
}

/// One IP datagram, its header decoded, borrowing the packet.
#[derive(Debug, Clone, Copy)]
pub struct IpDatagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub proto: u8,
    pub ttl: u8,
    /// Total length the header claims (IPv6: 40 + payload length); Zeek's ip_bytes count this.
    pub total_len: usize,
    /// Header length including IPv6 extension headers.
    pub hdr_len: usize,
    /// Transport bytes present: the claimed payload cut to what was captured.
    pub payload: &'a [u8],
    /// Transport length the header claims (can exceed `payload.len()` in a snapped capture).
    pub payload_len: usize,
    pub frag: Option<FragInfo>,
    /// The whole datagram as captured (header included), trimmed of link padding.
    pub bytes: &'a [u8],
    pub is_v6: bool,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

/// Decodes an IPv4 or IPv6 datagram at the start of `data`.
pub fn decode_ip(data: &[u8], check_ip_checksum: bool) -> Result<IpDatagram<'_>, DecodeError> {
    decode_ip_reporting(data, check_ip_checksum, &mut |_| {})
}

/// [`decode_ip`], handing the flow weirds of the header (IPv6 destination options) to `weirds`, also when
/// the datagram is then rejected.
pub fn decode_ip_reporting<'a>(
    data: &'a [u8],
    check_ip_checksum: bool,
    weirds: &mut dyn FnMut(FlowWeird),
) -> Result<IpDatagram<'a>, DecodeError> {
    match data.first().map(|b| b >> 4) {
        Some(4) => decode_ipv4(data, check_ip_checksum),
        Some(6) => decode_ipv6(data, weirds),
        Some(_) => Err(DecodeError::UnknownIpVersion),
        None => Err(DecodeError::TruncatedIp),
    }
}

fn decode_ipv4(data: &[u8], check_ip_checksum: bool) -> Result<IpDatagram<'_>, DecodeError> {
    if data.len() < 20 {
        return Err(DecodeError::TruncatedIp);
    }
    let hdr_len = usize::from(data[0] & 0x0f) * 4;
    if hdr_len < 20 {
        return Err(DecodeError::BadIpHeaderLength);
    }
    if data.len() < hdr_len {
        return Err(DecodeError::TruncatedIp);
    }
    let total_len = usize::from(be16(data, 2).ok_or(DecodeError::TruncatedIp)?);
    if total_len < hdr_len {
        return Err(DecodeError::BadIpHeaderLength);
    }
    if check_ip_checksum && ipv4_header_checksum(&data[..hdr_len]) != 0 {
        return Err(DecodeError::BadIpChecksum);
    }
    let flags_frag = be16(data, 6).ok_or(DecodeError::TruncatedIp)?;
    let offset = usize::from(flags_frag & 0x1fff) * 8;
    let more = flags_frag & 0x2000 != 0;
    let frag = (offset != 0 || more).then(|| FragInfo {
        id: u32::from(be16(data, 4).unwrap_or(0)),
        offset,
        more,
        data_start: hdr_len,
        v6_frag_hdr: None,
        v6_next: 0,
    });
    let src = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
    let dst = Ipv4Addr::new(data[16], data[17], data[18], data[19]);
    // Ethernet pads short frames: the datagram ends where its header says, not where the frame does.
    let end = total_len.min(data.len());
    Ok(IpDatagram {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        proto: data[9],
        ttl: data[8],
        total_len,
        hdr_len,
        payload: &data[hdr_len..end],
        payload_len: total_len - hdr_len,
        frag,
        bytes: &data[..end],
        is_v6: false,
    })
}

/// IPv6 extension headers that chain with a next-header byte and a length in 8-octet units.
fn is_ipv6_ext(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 60 | 51 | 135 | 139 | 140)
}

fn decode_ipv6<'a>(data: &'a [u8], weirds: &mut dyn FnMut(FlowWeird)) -> Result<IpDatagram<'a>, DecodeError> {
    if data.len() < 40 {
        return Err(DecodeError::TruncatedIp);
    }
    let payload_len = usize::from(be16(data, 4).ok_or(DecodeError::TruncatedIp)?);
    let total_len = 40 + payload_len;
    let end = total_len.min(data.len());
    let src: [u8; 16] = data[8..24].try_into().map_err(|_| DecodeError::TruncatedIp)?;
    let dst: [u8; 16] = data[24..40].try_into().map_err(|_| DecodeError::TruncatedIp)?;
    let mut nh = data[6];
    let mut nh_offset = 6;
    let mut at = 40;
    let mut frag = None;
    let mut dst_addr = Ipv6Addr::from(dst);
    let mut home_addr: Option<Ipv6Addr> = None;
    while is_ipv6_ext(nh) {
        let next = *data.get(at).ok_or(DecodeError::Ipv6ExtTruncated)?;
        let len = match nh {
            44 => 8,
            51 => (usize::from(*data.get(at + 1).ok_or(DecodeError::Ipv6ExtTruncated)?) + 2) * 4,
            _ => (usize::from(*data.get(at + 1).ok_or(DecodeError::Ipv6ExtTruncated)?) + 1) * 8,
        };
        // Like Zeek, the chain is walked over what was captured; a chain longer than the datagram claims
        // is rejected after the walk, once its options had their say.
        if at + len > data.len() {
            return Err(DecodeError::Ipv6ExtTruncated);
        }
        if nh == 44 {
            let off_flags = be16(data, at + 2).ok_or(DecodeError::Ipv6ExtTruncated)?;
            frag = Some(FragInfo {
                id: be32(data, at + 4).ok_or(DecodeError::Ipv6ExtTruncated)?,
                offset: usize::from(off_flags & 0xfff8),
                more: off_flags & 1 != 0,
                data_start: at + 8,
                v6_frag_hdr: Some((at, nh_offset)),
                v6_next: next,
            });
        }
        // A type 0/2 routing header names the final destination, which is what the conn is keyed on.
        if nh == 43
            && len >= 24
            && data.get(at + 3).copied().unwrap_or(0) == 0
            && data.get(at + 2) == Some(&2)
            && let Some(seg) = data.get(at + 8..at + 24).and_then(|s| <[u8; 16]>::try_from(s).ok())
        {
            dst_addr = Ipv6Addr::from(seg);
        }
        if nh == 60 {
            // Zeek names the home address as the source as soon as it is known, even in the weirds.
            let mut report = |name, home: Option<Ipv6Addr>| {
                let src = home.unwrap_or(Ipv6Addr::from(src));
                weirds(FlowWeird { name, src: src.into(), dst: dst_addr.into() })
            };
            home_addr = dest_options_home_addr(&data[at + 2..at + len], home_addr, &mut report);
        }
        nh_offset = at;
        at += len;
        nh = next;
        if frag.is_some_and(|f| f.offset != 0) {
            // Later fragments carry no upper-layer header; stop at the fragment header.
            break;
        }
    }
    if at > total_len {
        return Err(DecodeError::InvalidIpHeaderSize);
    }
    Ok(IpDatagram {
        // Mobile IPv6: a home address option names the host the connection belongs to.
        src: IpAddr::V6(home_addr.unwrap_or(Ipv6Addr::from(src))),
        dst: IpAddr::V6(dst_addr),
        proto: nh,
        ttl: data[7],
        total_len,
        hdr_len: at,
        payload: data.get(at..end).unwrap_or(&[]),
        payload_len: total_len.saturating_sub(at),
        frag,
        bytes: &data[..end],
        is_v6: true,
    })
}

/// Walks the options of a destination options header (after its two-byte head) as Zeek's
/// `ProcessDstOpts` does: returns the Mobile IPv6 home address (RFC 6275 6.3) known after it, and reports
/// malformed options.
fn dest_options_home_addr(
    mut opts: &[u8],
    mut home: Option<Ipv6Addr>,
    report: &mut dyn FnMut(&'static str, Option<Ipv6Addr>),
) -> Option<Ipv6Addr> {
    const HOME_ADDRESS: u8 = 201;
    while let Some(&kind) = opts.first() {
        if kind == 0 {
            opts = &opts[1..]; // Pad1
            continue;
        }
        let Some(len) = opts.get(1).map(|&l| usize::from(l)).filter(|l| 2 + l <= opts.len()) else {
            report("bad_ipv6_dest_opt_len", home);
            break;
        };
        if kind == HOME_ADDRESS {
            match <[u8; 16]>::try_from(&opts[2..2 + len]) {
                Ok(addr) if home.is_none() => home = Some(Ipv6Addr::from(addr)),
                Ok(_) => report("multiple_home_addr_opts", home),
                Err(_) => report("bad_home_addr_len", home),
            }
        }
        opts = &opts[2 + len..];
    }
    home
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // IPv4
            0x30, 0x39, 0, 53, 0, 8, 0, 0, // UDP
        ];
        let sum = internet_checksum(&p[..20], 0);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    #[test]
    fn decodes_ipv4_and_trims_padding() {
        let mut p = ipv4_udp();
        p.extend_from_slice(&[0; 18]); // Ethernet padding
        let ip = decode_ip(&p, true).unwrap();
        assert_eq!(ip.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(ip.proto, 17);
        assert_eq!(ip.payload.len(), 8);
        assert_eq!(ip.total_len, 28);
        assert!(ip.frag.is_none());
    }

    #[test]
    fn bad_ip_checksum_is_reported_unless_ignored() {
        let mut p = ipv4_udp();
        p[10] ^= 0xff;
        assert_eq!(decode_ip(&p, true).unwrap_err(), DecodeError::BadIpChecksum);
        assert!(decode_ip(&p, false).is_ok());
    }

    /// IPv6 from 2001:db8::1 to 2001:db8::2 with one destination options header (`opts`, padded by the caller
    /// to 6 + 8n bytes) before 8 bytes of UDP; `claimed_extra` is added to the payload length field.
    fn ipv6_dest_opts(opts: &[u8], claimed_extra: i32) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 60, 64];
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&[17, ((opts.len() + 2) / 8 - 1) as u8]);
        p.extend_from_slice(opts);
        p.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let claimed = (p.len() as i32 - 40 + claimed_extra) as u16;
        p[4..6].copy_from_slice(&claimed.to_be_bytes());
        p
    }

    fn decode_with_weirds(p: &[u8]) -> (Result<IpDatagram<'_>, DecodeError>, Vec<FlowWeird>) {
        let mut weirds = Vec::new();
        let r = decode_ip_reporting(p, true, &mut |w| weirds.push(w));
        (r, weirds)
    }

    fn home_addr_option(last_byte: u8) -> Vec<u8> {
        let mut o = vec![201, 16];
        o.extend_from_slice(&"2001:db8::99".parse::<Ipv6Addr>().unwrap().octets()[..15]);
        o.push(last_byte);
        o
    }

    #[test]
    fn home_address_option_becomes_the_source() {
        let mut opts = vec![1, 2, 0, 0]; // PadN
        opts.extend(home_addr_option(0x99));
        let p = ipv6_dest_opts(&opts, 0);
        let (r, weirds) = decode_with_weirds(&p);
        assert_eq!(r.unwrap().src, "2001:db8::99".parse::<IpAddr>().unwrap());
        assert!(weirds.is_empty());
    }

    #[test]
    fn malformed_destination_options_are_flow_weirds() {
        let mut opts = vec![1, 2, 0, 0, 202, 144]; // an option longer than its header
        opts.resize(14, 0);
        let p = ipv6_dest_opts(&opts, 0);
        let (r, weirds) = decode_with_weirds(&p);
        assert!(r.is_ok());
        assert_eq!(weirds.iter().map(|w| w.name).collect::<Vec<_>>(), ["bad_ipv6_dest_opt_len"]);

        let mut opts = vec![1, 0];
        opts.extend(home_addr_option(0x99));
        opts.extend(home_addr_option(0x98));
        opts.resize(38, 0);
        let p = ipv6_dest_opts(&opts, 0);
        let (_, weirds) = decode_with_weirds(&p);
        assert_eq!(weirds[0].name, "multiple_home_addr_opts");
        assert_eq!(weirds[0].src, "2001:db8::99".parse::<IpAddr>().unwrap(), "named after the home address");

        let opts = [1, 2, 0, 0, 201, 1, 0, 1, 0, 0, 0, 0, 0, 0];
        let p = ipv6_dest_opts(&opts, 0);
        let (_, weirds) = decode_with_weirds(&p);
        assert_eq!(weirds[0].name, "bad_home_addr_len");
    }

    #[test]
    fn extension_chain_longer_than_the_datagram_is_an_invalid_header_size() {
        let mut opts = vec![1, 0];
        opts.extend(home_addr_option(0x99));
        opts.resize(22, 0);
        let p = ipv6_dest_opts(&opts, -24);
        assert_eq!(decode_ip(&p, true).unwrap_err(), DecodeError::InvalidIpHeaderSize);
        assert_eq!(DecodeError::InvalidIpHeaderSize.source(), Some("IP"));
        assert_eq!(decode_ip(&p[..50], true).unwrap_err(), DecodeError::Ipv6ExtTruncated);
    }

    #[test]
    fn never_panics_on_short_input() {
        for n in 0..60 {
            let mut p = ipv4_udp();
            p.resize(n, 0);
            let _ = decode_ip(&p, true);
            let mut v6 = vec![0x60; n];
            v6.iter_mut().skip(6).take(1).for_each(|b| *b = 0);
            let _ = decode_ip(&v6, true);
        }
    }
}
