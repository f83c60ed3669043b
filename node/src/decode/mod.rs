//! Packet decoding: link layers down to an IP datagram, then the transport header; tunnel headers (GRE, UDP tunnels).
//!
//! Decoding never allocates and never panics: every read is bounds-checked, and a malformed packet
//! becomes a [`DecodeError`] that the engine reports as a weird with Zeek's name and source, in the order Zeek's
//! packet analyzers check (`src/packet_analysis/protocol/*`, `src/IP.cc`).

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
pub use tunnel::{
    GrePayload, GreWeird, TunnelPayload, UdpTunnel, aggregating_tunnel_inner, is_teredo_bubble,
    is_teredo_bubble_with_payload, parse_gre,
};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a packet could not be decoded; the text is the weird name Zeek uses for it, [`DecodeError::source`] the
/// packet analyzer that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// An Ethernet frame of 16 bytes or less.
    #[error("truncated_ethernet_frame")]
    TruncatedEthernet,
    #[error("truncated_link_header_cfp")]
    TruncatedCiscoFabricPath,
    /// An EtherType between 1500 and 1536: neither a length nor a type.
    #[error("undefined_ether_type")]
    UndefinedEtherType,
    #[error("truncated_VLAN_header")]
    TruncatedVlan,
    #[error("truncated_ARP")]
    TruncatedArp,
    #[error("truncated_snap_llc_header")]
    TruncatedSnapLlc,
    #[error("truncated_snap_header")]
    TruncatedSnap,
    #[error("truncated_PBB_header")]
    TruncatedPbb,
    #[error("truncated_vntag_header")]
    TruncatedVntag,
    #[error("truncated_nflog_header")]
    TruncatedNflog,
    #[error("unknown_nflog_version")]
    UnknownNflogVersion,
    /// No packet TLV before the record ends.
    #[error("nflog_no_pcap_payload")]
    NflogNoPayload,
    /// A TLV shorter than its own header, or (with the padded length and the bytes left) one running past the record.
    #[error("nflog_bad_tlv_len")]
    NflogBadTlvLen { skip: Option<(usize, usize)> },
    #[error("undefined_vlan_protocol")]
    UndefinedVlanProtocol,
    /// The label stack runs to the end of the frame (Zeek's MPLS analyzer keeps the generic name).
    #[error("truncated_link_header")]
    TruncatedMpls,
    #[error("truncated_pppoe_header")]
    TruncatedPppoe,
    #[error("truncated_ppp_header")]
    TruncatedPpp,
    #[error("truncated_ppp_hdlc_header")]
    TruncatedPppHdlc,
    #[error("truncated_ppp_serial_header")]
    TruncatedPppSerial,
    #[error("truncated_Linux_SLL_header")]
    TruncatedLinuxSll,
    #[error("truncated_Linux_SLL2_header")]
    TruncatedLinuxSll2,
    /// A BSD loopback frame of 4 bytes or less.
    #[error("null_analyzer_failed")]
    TruncatedNull,
    #[error("truncated_IP")]
    TruncatedIp,
    #[error("unknown_ip_version")]
    UnknownIpVersion,
    /// The IPv4 total length is zero (TCP segmentation offload); with checksums ignored Zeek goes on with the
    /// captured length instead, reporting it all the same.
    #[error("ip_hdr_len_zero")]
    IpHdrLenZero,
    /// The packet on the wire is shorter than the datagram's total length says.
    #[error("truncated_IP_len")]
    TruncatedIpLen,
    /// The IP header (IPv6: with its extension headers) is longer than the datagram's total length.
    #[error("invalid_IP_header_size")]
    InvalidIpHeaderSize,
    /// The IP header is longer than what was captured.
    #[error("internally_truncated_header")]
    InternallyTruncatedIpHeader,
    #[error("IPv4_min_header_size")]
    Ipv4MinHeaderSize,
    #[error("bad_IP_checksum")]
    BadIpChecksum,
    /// The datagram claims less than the transport's minimal header (protocol number inside).
    #[error("truncated_header")]
    TruncatedHeader(u8),
    /// The transport's minimal header was not captured whole (protocol number inside).
    #[error("internally_truncated_header")]
    InternallyTruncatedHeader(u8),
    /// A TCP data offset below five words (carried by `Transport::TcpRefused`: Zeek has the connection by then).
    #[error("bad_TCP_header_len")]
    BadTcpHeaderLen,
    /// IP in IP: the inner datagram is not of the version its protocol number says, or an IPv4 header is cut.
    #[error("invalid_inner_IP_version")]
    InvalidInnerIpVersion,
    #[error("truncated_inner_IP")]
    TruncatedInnerIp,
    #[error("inner_IP_payload_length_mismatch")]
    InnerIpPayloadLengthMismatch,
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
    /// The analyzer Zeek names as the weird's `source` (its canonical, upper-case name).
    pub fn source(self) -> Option<&'static str> {
        use DecodeError::*;
        Some(match self {
            TruncatedEthernet | TruncatedCiscoFabricPath | UndefinedEtherType => "ETHERNET",
            TruncatedVlan | UndefinedVlanProtocol => "VLAN",
            TruncatedPbb => "PBB",
            TruncatedSnapLlc | TruncatedSnap => "SNAP",
            TruncatedArp => "ARP",
            TruncatedVntag => "VNTAG",
            TruncatedNflog | UnknownNflogVersion | NflogNoPayload | NflogBadTlvLen { .. } => "NFLOG",
            TruncatedMpls => "MPLS",
            TruncatedPppoe => "PPPOE",
            TruncatedPpp | TruncatedPppHdlc => "PPP",
            TruncatedPppSerial => "PPPSERIAL",
            TruncatedLinuxSll => "LINUXSLL",
            TruncatedLinuxSll2 => "LINUXSLL2",
            TruncatedNull => "NULL",
            TruncatedIp
            | UnknownIpVersion
            | IpHdrLenZero
            | TruncatedIpLen
            | InvalidIpHeaderSize
            | InternallyTruncatedIpHeader
            | Ipv4MinHeaderSize
            | BadIpChecksum => "IP",
            TruncatedHeader(proto) | InternallyTruncatedHeader(proto) => transport_analyzer(proto)?,
            BadTcpHeaderLen => "TCP",
            InvalidInnerIpVersion | TruncatedInnerIp | InnerIpPayloadLengthMismatch => "IPTUNNEL",
            Truncated80211 | Truncated80211Llc | TruncatedAmsduHeader | TruncatedAmsduPacket => "IEEE802_11",
            TruncatedRadiotap => "IEEE802_11_RADIO",
            NotIp => return None,
        })
    }

    /// The weird's `addl`: what Zeek adds to a few of them.
    pub fn addl(self) -> Option<String> {
        match self {
            DecodeError::NflogBadTlvLen { skip: Some((skip, left)) } => Some(format!("({skip} > {left})")),
            _ => None,
        }
    }

    /// Whether Zeek knew the packet's IP header when it raised this weird: its session manager then logs the
    /// header's hosts (a flow weird, ports 0), before that nothing (a net weird). The IP analyzer's own length
    /// checks run before it takes the header; the checksum and everything after it come later.
    pub fn names_hosts(self) -> bool {
        use DecodeError::*;
        matches!(
            self,
            BadIpChecksum
                | TruncatedHeader(_)
                | InternallyTruncatedHeader(_)
                | InvalidInnerIpVersion
                | TruncatedInnerIp
                | InnerIpPayloadLengthMismatch
        )
    }
}

/// The packet analyzer Zeek hands an IP protocol to, by its canonical name.
fn transport_analyzer(proto: u8) -> Option<&'static str> {
    match proto {
        6 => Some("TCP"),
        17 => Some("UDP"),
        1 | 58 => Some("ICMP"),
        _ => None,
    }
}

/// An anomaly found while decoding that does not stop the packet: a weird with Zeek's name, the analyzer that
/// reports it (none for those `src/IP.cc` and `src/Frag.cc` report directly) and, once the IP header is known,
/// its two hosts (logged with port 0, no connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketWeird {
    pub name: &'static str,
    pub addl: Option<String>,
    pub source: Option<&'static str>,
    pub hosts: Option<(IpAddr, IpAddr)>,
}

impl PacketWeird {
    /// A weird between two hosts that `src/IP.cc` or `src/Frag.cc` report without naming an analyzer.
    pub fn flow(name: &'static str, src: IpAddr, dst: IpAddr) -> PacketWeird {
        PacketWeird { name, addl: None, source: None, hosts: Some((src, dst)) }
    }

    /// A weird the IP analyzer reports about a datagram between two hosts.
    pub fn from_ip_analyzer(name: &'static str, src: IpAddr, dst: IpAddr) -> PacketWeird {
        PacketWeird { source: Some("IP"), ..PacketWeird::flow(name, src, dst) }
    }
}

/// Fragment header fields of an IPv4 or IPv6 fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    pub id: u32,
    /// Byte offset of this fragment's payload.
    pub offset: usize,
    pub more: bool,
    /// IPv4's don't-fragment bit (never set for IPv6).
    pub dont_fragment: bool,
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
    /// The upper-layer protocol (after IPv6 extension headers). An IPv6 chain cut short by the capture ends at the
    /// header that is missing, and one ending in a Mobility header at that header (135): both carry nothing to
    /// analyse, as in Zeek.
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

impl IpDatagram<'_> {
    /// Whether the capture cut the datagram short of its total length.
    pub fn incompletely_captured(&self) -> bool {
        self.bytes.len() < self.total_len
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Decodes an IPv4 or IPv6 datagram at the start of `data`.
pub fn decode_ip(data: &[u8], check_ip_checksum: bool) -> Result<IpDatagram<'_>, DecodeError> {
    decode_ip_on_wire(data, None, check_ip_checksum, &mut |_| {})
}

/// [`decode_ip`], handing the weirds that do not stop the datagram (IPv6 extension headers, a zero total length
/// with checksums ignored) to `weirds`, also when the datagram is then rejected.
pub fn decode_ip_reporting<'a>(
    data: &'a [u8],
    check_ip_checksum: bool,
    weirds: &mut dyn FnMut(PacketWeird),
) -> Result<IpDatagram<'a>, DecodeError> {
    decode_ip_on_wire(data, None, check_ip_checksum, weirds)
}

/// [`decode_ip_reporting`] for a datagram that was `wire_len` bytes long on the wire (the packet's length less
/// its link headers), when the capture says: Zeek rejects a datagram whose total length the wire did not carry.
/// `check_ip_checksum` is false when checksums are ignored (Zeek's `-C`).
pub fn decode_ip_on_wire<'a>(
    data: &'a [u8],
    wire_len: Option<usize>,
    check_ip_checksum: bool,
    weirds: &mut dyn FnMut(PacketWeird),
) -> Result<IpDatagram<'a>, DecodeError> {
    const IPV4_MIN_HEADER: usize = 20;
    if data.len() < IPV4_MIN_HEADER {
        return Err(DecodeError::TruncatedIp);
    }
    let on_wire = |total_len: usize| match wire_len {
        Some(wire) if wire < total_len => Err(DecodeError::TruncatedIpLen),
        _ => Ok(()),
    };
    match data[0] >> 4 {
        4 => decode_ipv4(data, check_ip_checksum, on_wire, weirds),
        6 => decode_ipv6(data, check_ip_checksum, on_wire, weirds),
        _ => Err(DecodeError::UnknownIpVersion),
    }
}

/// The IPv4 checks of Zeek's IP analyzer, in its order.
fn decode_ipv4<'a>(
    data: &'a [u8],
    check_ip_checksum: bool,
    on_wire: impl Fn(usize) -> Result<(), DecodeError>,
    weirds: &mut dyn FnMut(PacketWeird),
) -> Result<IpDatagram<'a>, DecodeError> {
    let hdr_len = usize::from(data[0] & 0x0f) * 4;
    let mut total_len = usize::from(be16(data, 2).ok_or(DecodeError::TruncatedIp)?);
    if total_len == 0 {
        // TCP segmentation offload zeroes the length. Its checksum is then wrong too, so Zeek only goes on (with
        // the captured length) when checksums are ignored.
        if check_ip_checksum {
            return Err(DecodeError::IpHdrLenZero);
        }
        weirds(PacketWeird { name: "ip_hdr_len_zero", addl: None, source: Some("IP"), hosts: None });
        total_len = data.len();
    }
    on_wire(total_len)?;
    if hdr_len > total_len {
        return Err(DecodeError::InvalidIpHeaderSize);
    }
    if hdr_len > data.len() {
        return Err(DecodeError::InternallyTruncatedIpHeader);
    }
    if hdr_len < 20 {
        return Err(DecodeError::Ipv4MinHeaderSize);
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
        dont_fragment: flags_frag & 0x4000 != 0,
        data_start: hdr_len,
        v6_frag_hdr: None,
        v6_next: 0,
    });
    let (src, dst) = ipv4_header_hosts(data).ok_or(DecodeError::TruncatedIp)?;
    // Ethernet pads short frames: the datagram ends where its header says, not where the frame does.
    let end = total_len.min(data.len());
    Ok(IpDatagram {
        src,
        dst,
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

/// The two hosts of an IPv4 header that passed the IP analyzer's length checks (the hosts of a
/// [`DecodeError::BadIpChecksum`]).
pub fn ipv4_header_hosts(data: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let addrs: &[u8; 8] = data.get(12..20)?.try_into().ok()?;
    Some((
        IpAddr::V4(Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3])),
        IpAddr::V4(Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7])),
    ))
}

const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
const IPV6_MOBILITY: u8 = 135;
const IPV6_NO_NEXT: u8 = 59;

/// The IPv6 extension headers Zeek's header chain walks (ESP ends the chain where it stands: nothing after it
/// can be read).
fn is_ipv6_ext(nh: u8) -> bool {
    matches!(nh, IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_DEST_OPTS | IPV6_AUTH | IPV6_MOBILITY)
}

/// What the walk of an IPv6 header chain has learnt so far: the hosts Zeek names in its weirds.
struct Ipv6Hosts {
    src: Ipv6Addr,
    /// Mobile IPv6: the home address option names the host the connection belongs to.
    home: Option<Ipv6Addr>,
    dst: Ipv6Addr,
    /// A routing header names the final destination, which is what the connection is keyed on.
    final_dst: Option<Ipv6Addr>,
}

impl Ipv6Hosts {
    fn src(&self) -> Ipv6Addr {
        self.home.unwrap_or(self.src)
    }

    fn dst(&self) -> Ipv6Addr {
        self.final_dst.unwrap_or(self.dst)
    }

    fn weird(&self, name: &'static str) -> PacketWeird {
        PacketWeird::flow(name, self.src().into(), self.dst().into())
    }
}

/// The IPv6 checks of Zeek's IP analyzer and header chain (`IPv6_Hdr_Chain::Init`): the chain is walked over
/// what was captured and stops, without a weird, at a header the capture cut.
fn decode_ipv6<'a>(
    data: &'a [u8],
    check_checksums: bool,
    on_wire: impl Fn(usize) -> Result<(), DecodeError>,
    weirds: &mut dyn FnMut(PacketWeird),
) -> Result<IpDatagram<'a>, DecodeError> {
    let (Some(fixed), Some(payload_len)) = (data.get(..40), be16(data, 4)) else {
        return Err(DecodeError::TruncatedIp);
    };
    let total_len = 40 + usize::from(payload_len);
    on_wire(total_len)?;
    let end = total_len.min(data.len());
    let addr = |at: usize| <[u8; 16]>::try_from(&fixed[at..at + 16]).map(Ipv6Addr::from);
    let (Ok(src), Ok(dst)) = (addr(8), addr(24)) else { return Err(DecodeError::TruncatedIp) };
    let mut hosts = Ipv6Hosts { src, home: None, dst, final_dst: None };
    let mut nh = fixed[6];
    let mut nh_offset = 6;
    let mut at = 40;
    let mut frag = None;
    let mut mobility = None;
    while is_ipv6_ext(nh) {
        let (Some(&next), Some(&len_field)) = (data.get(at), data.get(at + 1)) else { break };
        let len = match nh {
            IPV6_FRAGMENT => 8,
            IPV6_AUTH => (usize::from(len_field) + 2) * 4,
            _ => (usize::from(len_field) + 1) * 8,
        };
        // Like Zeek, the chain is walked over what was captured; a chain longer than the datagram claims
        // is rejected after the walk, once its options had their say.
        let Some(header) = data.get(at..at + len) else { break };
        match nh {
            IPV6_FRAGMENT => {
                let off_flags = u16::from_be_bytes([header[2], header[3]]);
                frag = Some(FragInfo {
                    id: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
                    offset: usize::from(off_flags & 0xfff8),
                    more: off_flags & 1 != 0,
                    dont_fragment: false,
                    data_start: at + 8,
                    v6_frag_hdr: Some((at, nh_offset)),
                    v6_next: next,
                });
            }
            IPV6_ROUTING => routing_header(header, &mut hosts, weirds),
            IPV6_DEST_OPTS => dest_options(&header[2..], &mut hosts, weirds),
            IPV6_MOBILITY => mobility = Some((header, next)),
            _ => {}
        }
        nh_offset = at;
        at += len;
        // Zeek's chain ends with a fragment header (what follows is the fragment's data) and with a Mobility
        // header (nothing past it is analysed).
        if nh == IPV6_MOBILITY {
            break;
        }
        nh = next;
        if frag.is_some() {
            break;
        }
    }
    on_wire(total_len)?;
    if at > total_len {
        return Err(DecodeError::InvalidIpHeaderSize);
    }
    if let Some((header, next)) = mobility {
        let (src, dst) = (hosts.src().into(), hosts.dst().into());
        if check_checksums && !mobility_checksum_ok(src, dst, header) {
            weirds(PacketWeird::from_ip_analyzer("bad_MH_checksum", src, dst));
        } else if next != IPV6_NO_NEXT {
            weirds(PacketWeird::from_ip_analyzer("mobility_piggyback", src, dst));
        }
    }
    Ok(IpDatagram {
        src: IpAddr::V6(hosts.src()),
        dst: IpAddr::V6(hosts.dst()),
        proto: nh,
        ttl: fixed[7],
        total_len,
        hdr_len: at,
        payload: data.get(at..end).unwrap_or(&[]),
        payload_len: total_len.saturating_sub(at),
        frag,
        bytes: &data[..end],
        is_v6: true,
    })
}

/// The Mobility header's checksum as Zeek computes it: over a length kept in one byte, as Zeek keeps it.
fn mobility_checksum_ok(src: IpAddr, dst: IpAddr, header: &[u8]) -> bool {
    let summed_len = usize::from(8u8.wrapping_add(header[1].wrapping_mul(8)));
    transport_checksum_ok(src, dst, IPV6_MOBILITY, &header[..summed_len.min(header.len())])
}

/// A routing header as Zeek's `ProcessRoutingHeader` reads it: type 0 (deprecated) and type 2 (Mobile IPv6) name
/// the final destination in their last 16 bytes.
fn routing_header(header: &[u8], hosts: &mut Ipv6Hosts, weirds: &mut dyn FnMut(PacketWeird)) {
    if hosts.final_dst.is_some() {
        // RFC 8200 4.1: at most one routing header.
        return weirds(hosts.weird("multiple_routing_headers"));
    }
    let (len_field, routing_type, segments_left) = (header[1], header[2], header[3]);
    let last_address = header.len().checked_sub(16).and_then(|at| <[u8; 16]>::try_from(&header[at..]).ok());
    match routing_type {
        0 => {
            if segments_left > 0 && len_field >= 2 {
                if len_field % 2 == 0 {
                    hosts.final_dst = last_address.map(Ipv6Addr::from);
                } else {
                    weirds(hosts.weird("odd_routing0_len"));
                }
            }
            weirds(hosts.weird("routing0_hdr"));
        }
        2 if segments_left > 0 => {
            if len_field == 2 {
                hosts.final_dst = last_address.map(Ipv6Addr::from);
            } else {
                weirds(hosts.weird("bad_routing2_len"));
            }
        }
        2 => {}
        other => weirds(PacketWeird { addl: Some(other.to_string()), ..hosts.weird("unknown_routing_type") }),
    }
}

/// Walks the options of a destination options header (after its two-byte head) as Zeek's `ProcessDstOpts`
/// does: takes the Mobile IPv6 home address (RFC 6275 6.3) and reports malformed options.
fn dest_options(mut opts: &[u8], hosts: &mut Ipv6Hosts, weirds: &mut dyn FnMut(PacketWeird)) {
    const HOME_ADDRESS: u8 = 201;
    while let Some(&kind) = opts.first() {
        if kind == 0 {
            opts = &opts[1..]; // Pad1
            continue;
        }
        let Some(len) = opts.get(1).map(|&l| usize::from(l)).filter(|l| 2 + l <= opts.len()) else {
            weirds(hosts.weird("bad_ipv6_dest_opt_len"));
            break;
        };
        if kind == HOME_ADDRESS {
            match <[u8; 16]>::try_from(&opts[2..2 + len]) {
                Ok(addr) if hosts.home.is_none() => hosts.home = Some(Ipv6Addr::from(addr)),
                Ok(_) => weirds(hosts.weird("multiple_home_addr_opts")),
                Err(_) => weirds(hosts.weird("bad_home_addr_len")),
            }
        }
        opts = &opts[2 + len..];
    }
}

/// Zeek's check of an IP-in-IP tunnel's inner datagram (`packet_analysis::IP::ParsePacket`) before it is analysed:
/// its version must be the one `proto` (4 or 41) names, and what was captured of it must be exactly its total
/// length.
pub fn check_inner_ip(proto: u8, inner: &[u8]) -> Result<(), DecodeError> {
    const IPV4_IN_IP: u8 = 4;
    let total_len = if proto == IPV4_IN_IP {
        // To Zeek an IPv4 header that was cut is of the wrong version.
        if inner.len() < 20 || inner[0] >> 4 != 4 {
            return Err(DecodeError::InvalidInnerIpVersion);
        }
        usize::from(u16::from_be_bytes([inner[2], inner[3]]))
    } else {
        if inner.len() < 40 {
            return Err(DecodeError::TruncatedInnerIp);
        }
        if inner[0] >> 4 != 6 {
            return Err(DecodeError::InvalidInnerIpVersion);
        }
        40 + usize::from(u16::from_be_bytes([inner[4], inner[5]]))
    };
    match inner.len().cmp(&total_len) {
        std::cmp::Ordering::Less => Err(DecodeError::TruncatedInnerIp),
        std::cmp::Ordering::Greater => Err(DecodeError::InnerIpPayloadLengthMismatch),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // IPv4
            0x30, 0x39, 0, 53, 0, 8, 0, 0, // UDP
        ];
        set_ipv4_checksum(&mut p);
        p
    }

    fn set_ipv4_checksum(p: &mut [u8]) {
        let hdr_len = usize::from(p[0] & 0x0f) * 4;
        p[10..12].copy_from_slice(&[0, 0]);
        let sum = internet_checksum(&p[..hdr_len.min(p.len())], 0);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
    }

    /// `ipv4_udp` with its header edited by `edit`, the checksum fixed afterwards.
    fn ipv4_with(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut p = ipv4_udp();
        edit(&mut p);
        set_ipv4_checksum(&mut p);
        p
    }

    fn decode_with_weirds(
        p: &[u8],
        wire_len: Option<usize>,
        check: bool,
    ) -> (Result<IpDatagram<'_>, DecodeError>, Vec<PacketWeird>) {
        let mut weirds = Vec::new();
        let r = decode_ip_on_wire(p, wire_len, check, &mut |w| weirds.push(w));
        (r, weirds)
    }

    fn names(weirds: &[PacketWeird]) -> Vec<&'static str> {
        weirds.iter().map(|w| w.name).collect()
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
    fn bad_ip_checksum_is_reported_between_the_hosts_unless_ignored() {
        let mut p = ipv4_udp();
        p[10] ^= 0xff;
        let e = decode_ip(&p, true).unwrap_err();
        assert_eq!((e, e.to_string(), e.source()), (DecodeError::BadIpChecksum, "bad_IP_checksum".into(), Some("IP")));
        assert!(e.names_hosts(), "the IP analyzer holds the header when it checks the sum");
        let hosts = ipv4_header_hosts(&p).unwrap();
        assert_eq!(hosts, ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()));
        assert!(decode_ip(&p, false).is_ok());
    }

    /// Zeek's IP analyzer: each check and its weird, the IP header not yet taken (a net weird).
    #[test]
    fn ipv4_checks_run_in_zeeks_order_with_its_names() {
        let cases: [(&str, Vec<u8>, Option<usize>, DecodeError); 8] = [
            ("19 bytes", ipv4_udp()[..19].to_vec(), None, DecodeError::TruncatedIp),
            ("IPv6 under 20 bytes", vec![0x60; 19], None, DecodeError::TruncatedIp),
            ("version 5", ipv4_with(|p| p[0] = 0x55), None, DecodeError::UnknownIpVersion),
            ("total length 0", ipv4_with(|p| p[2..4].copy_from_slice(&[0, 0])), None, DecodeError::IpHdrLenZero),
            ("wire shorter than the total", ipv4_udp(), Some(27), DecodeError::TruncatedIpLen),
            ("header past the total", ipv4_with(|p| p[0] = 0x48), None, DecodeError::InvalidIpHeaderSize),
            (
                "header past the capture",
                ipv4_with(|p| {
                    p[0] = 0x46;
                    p[2..4].copy_from_slice(&[0, 40]);
                    p.truncate(22);
                }),
                None,
                DecodeError::InternallyTruncatedIpHeader,
            ),
            ("IHL of 4", ipv4_with(|p| p[0] = 0x44), None, DecodeError::Ipv4MinHeaderSize),
        ];
        for (what, packet, wire_len, expected) in cases {
            let (r, weirds) = decode_with_weirds(&packet, wire_len, true);
            assert_eq!(r.unwrap_err(), expected, "{what}");
            assert_eq!(expected.source(), Some("IP"), "{what}");
            assert!(!expected.names_hosts(), "{what}: a net weird");
            assert!(weirds.is_empty(), "{what}");
        }
        let names: Vec<String> = [
            DecodeError::UnknownIpVersion,
            DecodeError::IpHdrLenZero,
            DecodeError::TruncatedIpLen,
            DecodeError::InvalidIpHeaderSize,
            DecodeError::InternallyTruncatedIpHeader,
            DecodeError::Ipv4MinHeaderSize,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            [
                "unknown_ip_version",
                "ip_hdr_len_zero",
                "truncated_IP_len",
                "invalid_IP_header_size",
                "internally_truncated_header",
                "IPv4_min_header_size"
            ]
        );
        // The wire carried it whole: no truncated_IP_len, whatever the capture kept.
        assert!(decode_ip_on_wire(&ipv4_udp(), Some(28), true, &mut |_| {}).is_ok());
        // An IHL of 2 over a total length of 4: the size check comes before the minimum.
        let tiny = ipv4_with(|p| {
            p[0] = 0x42;
            p[2..4].copy_from_slice(&[0, 4]);
        });
        assert_eq!(decode_ip(&tiny, true).unwrap_err(), DecodeError::InvalidIpHeaderSize);
        // A bad checksum comes last: a wrong length is reported instead.
        let mut both = ipv4_with(|p| p[0] = 0x44);
        both[10] ^= 0xff;
        assert_eq!(decode_ip(&both, true).unwrap_err(), DecodeError::Ipv4MinHeaderSize);
    }

    #[test]
    fn zero_total_length_goes_on_with_the_captured_length_when_checksums_are_ignored() {
        let mut p = ipv4_with(|p| p[2..4].copy_from_slice(&[0, 0]));
        p.extend_from_slice(b"data");
        let (r, weirds) = decode_with_weirds(&p, Some(p.len()), false);
        let ip = r.unwrap();
        assert_eq!((ip.total_len, ip.payload.len()), (32, 12));
        assert_eq!(weirds, [PacketWeird { name: "ip_hdr_len_zero", addl: None, source: Some("IP"), hosts: None }]);
    }

    /// IPv6 from 2001:db8::1 to 2001:db8::2 with one extension header of type `ext` (`body` after its two-byte
    /// head, padded by the caller to 6 + 8n bytes) before 8 bytes of UDP; `claimed_extra` is added to the payload
    /// length field.
    fn ipv6_with_ext(ext: u8, body: &[u8], claimed_extra: i32) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, ext, 64];
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&[17, ((body.len() + 2) / 8 - 1) as u8]);
        p.extend_from_slice(body);
        p.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let claimed = (p.len() as i32 - 40 + claimed_extra) as u16;
        p[4..6].copy_from_slice(&claimed.to_be_bytes());
        p
    }

    fn ipv6_dest_opts(opts: &[u8], claimed_extra: i32) -> Vec<u8> {
        ipv6_with_ext(IPV6_DEST_OPTS, opts, claimed_extra)
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
        let (r, weirds) = decode_with_weirds(&p, None, true);
        assert_eq!(r.unwrap().src, "2001:db8::99".parse::<IpAddr>().unwrap());
        assert!(weirds.is_empty());
    }

    #[test]
    fn malformed_destination_options_are_flow_weirds() {
        let mut opts = vec![1, 2, 0, 0, 202, 144]; // an option longer than its header
        opts.resize(14, 0);
        let p = ipv6_dest_opts(&opts, 0);
        let (r, weirds) = decode_with_weirds(&p, None, true);
        assert!(r.is_ok());
        assert_eq!(names(&weirds), ["bad_ipv6_dest_opt_len"]);
        assert_eq!(weirds[0].source, None, "src/IP.cc names no analyzer");

        let mut opts = vec![1, 0];
        opts.extend(home_addr_option(0x99));
        opts.extend(home_addr_option(0x98));
        opts.resize(38, 0);
        let p = ipv6_dest_opts(&opts, 0);
        let (_, weirds) = decode_with_weirds(&p, None, true);
        assert_eq!(weirds[0].name, "multiple_home_addr_opts");
        let home: IpAddr = "2001:db8::99".parse().unwrap();
        assert_eq!(weirds[0].hosts.map(|h| h.0), Some(home), "named after the home address");

        let opts = [1, 2, 0, 0, 201, 1, 0, 1, 0, 0, 0, 0, 0, 0];
        let p = ipv6_dest_opts(&opts, 0);
        let (_, weirds) = decode_with_weirds(&p, None, true);
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
        assert_eq!(
            decode_ip_on_wire(&p, Some(p.len() - 8), true, &mut |_| {}).unwrap_err(),
            DecodeError::InvalidIpHeaderSize
        );
        assert_eq!(decode_ip_on_wire(&p, Some(40), true, &mut |_| {}).unwrap_err(), DecodeError::TruncatedIpLen);
    }

    #[test]
    fn an_extension_header_the_capture_cut_ends_the_chain_without_a_weird() {
        let mut opts = vec![1, 0];
        opts.extend(home_addr_option(0x99));
        opts.resize(22, 0);
        let p = ipv6_dest_opts(&opts, 0);
        let (r, weirds) = decode_with_weirds(&p[..50], None, true);
        let ip = r.unwrap();
        assert_eq!((ip.proto, ip.hdr_len, ip.src), (IPV6_DEST_OPTS, 40, "2001:db8::1".parse().unwrap()));
        assert!(weirds.is_empty());
        let (r, _) = decode_with_weirds(&p[..41], None, true);
        assert_eq!(r.unwrap().proto, IPV6_DEST_OPTS, "one byte of the header: its length is unknown");
    }

    #[test]
    fn routing_headers_are_checked_as_zeek_does() {
        let final_dst: IpAddr = "2001:db8::77".parse().unwrap();
        let type0 = |segments_left: u8| {
            let mut body = vec![0, segments_left, 0, 0, 0, 0];
            if let IpAddr::V6(a) = final_dst {
                body.extend_from_slice(&a.octets());
            }
            body
        };
        let p = ipv6_with_ext(IPV6_ROUTING, &type0(1), 0);
        let (r, weirds) = decode_with_weirds(&p, None, true);
        assert_eq!(r.unwrap().dst, final_dst);
        assert_eq!(names(&weirds), ["routing0_hdr"]);
        assert_eq!(weirds[0].hosts.map(|h| h.1), Some(final_dst), "named after the final destination");

        let no_detour = ipv6_with_ext(IPV6_ROUTING, &type0(0), 0);
        let (r, _) = decode_with_weirds(&no_detour, None, true);
        assert_eq!(r.unwrap().dst, "2001:db8::2".parse::<IpAddr>().unwrap(), "no segments left: no detour");

        let mut type7 = type0(1);
        type7[0] = 7;
        let (_, weirds) = decode_with_weirds(&ipv6_with_ext(IPV6_ROUTING, &type7, 0), None, true);
        assert_eq!(
            weirds.iter().map(|w| (w.name, w.addl.as_deref())).collect::<Vec<_>>(),
            [("unknown_routing_type", Some("7"))]
        );

        let mut type2_long = type0(1);
        type2_long[0] = 2;
        type2_long.extend([0; 8]);
        let (_, weirds) = decode_with_weirds(&ipv6_with_ext(IPV6_ROUTING, &type2_long, 0), None, true);
        assert_eq!(names(&weirds), ["bad_routing2_len"]);
    }

    /// An IPv6 datagram whose last extension header is a Mobility header with `payload_proto` and a checksum made
    /// right or wrong.
    fn ipv6_mobility(payload_proto: u8, checksum_right: bool) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 16, IPV6_MOBILITY, 64];
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&[payload_proto, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let (src, dst) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        for candidate in 0..=u16::MAX {
            p[44..46].copy_from_slice(&candidate.to_be_bytes());
            if transport_checksum_ok(src, dst, IPV6_MOBILITY, &p[40..]) == checksum_right {
                break;
            }
        }
        p
    }

    #[test]
    fn a_mobility_header_ends_the_chain() {
        let alone = ipv6_mobility(IPV6_NO_NEXT, true);
        let (r, weirds) = decode_with_weirds(&alone, None, true);
        assert_eq!(r.unwrap().proto, IPV6_MOBILITY, "nothing past it is analysed");
        assert!(weirds.is_empty());
        let (_, weirds) = decode_with_weirds(&ipv6_mobility(6, true), None, true);
        assert_eq!(names(&weirds), ["mobility_piggyback"]);
        assert_eq!(weirds[0].source, Some("IP"));
        let (_, weirds) = decode_with_weirds(&ipv6_mobility(IPV6_NO_NEXT, false), None, true);
        assert_eq!(names(&weirds), ["bad_MH_checksum"]);
        let (_, weirds) = decode_with_weirds(&ipv6_mobility(IPV6_NO_NEXT, false), None, false);
        assert!(weirds.is_empty(), "checksums ignored");
    }

    #[test]
    fn a_fragment_header_ends_the_chain() {
        let mut frag_then_opts = ipv6_with_ext(IPV6_FRAGMENT, &[0, 1, 0, 0, 0, 7], 0);
        frag_then_opts[40] = IPV6_DEST_OPTS;
        let ip = decode_ip(&frag_then_opts, true).unwrap();
        let frag = ip.frag.unwrap();
        assert_eq!((ip.hdr_len, frag.data_start, frag.v6_next, frag.more), (48, 48, IPV6_DEST_OPTS, true));
    }

    #[test]
    fn inner_ip_of_a_tunnel_is_checked_against_its_protocol_number() {
        let v4 = ipv4_udp();
        assert_eq!(check_inner_ip(4, &v4), Ok(()));
        assert_eq!(check_inner_ip(4, &v4[..19]), Err(DecodeError::InvalidInnerIpVersion), "cut IPv4 header");
        assert_eq!(check_inner_ip(4, &v4[..27]), Err(DecodeError::TruncatedInnerIp));
        let mut padded = v4.clone();
        padded.push(0);
        assert_eq!(check_inner_ip(4, &padded), Err(DecodeError::InnerIpPayloadLengthMismatch));
        let v6 = ipv6_dest_opts(&[1, 4, 0, 0, 0, 0], 0);
        assert_eq!(check_inner_ip(41, &v6), Ok(()));
        assert_eq!(check_inner_ip(41, &v6[..39]), Err(DecodeError::TruncatedInnerIp), "cut IPv6 header");
        let mut long_v4 = v4.clone();
        long_v4.resize(48, 0);
        assert_eq!(check_inner_ip(41, &long_v4), Err(DecodeError::InvalidInnerIpVersion));
        assert_eq!(check_inner_ip(4, &v6), Err(DecodeError::InvalidInnerIpVersion));
        for e in [
            DecodeError::InvalidInnerIpVersion,
            DecodeError::TruncatedInnerIp,
            DecodeError::InnerIpPayloadLengthMismatch,
        ] {
            assert_eq!(e.source(), Some("IPTUNNEL"));
            assert!(e.names_hosts(), "{e}: between the outer hosts");
        }
    }

    #[test]
    fn never_panics_on_short_input() {
        for n in 0..60 {
            let mut p = ipv4_udp();
            p.resize(n, 0);
            let _ = decode_ip_on_wire(&p, Some(n / 2), true, &mut |_| {});
            let mut v6 = vec![0x60; n];
            v6.iter_mut().skip(6).take(1).for_each(|b| *b = 0);
            let _ = decode_ip(&v6, true);
            let _ = check_inner_ip(4, &p);
            let _ = check_inner_ip(41, &v6);
        }
    }
}
