//! Link layers: Ethernet with 802.1Q/QinQ, 802.1ah (PBB), VN-Tag, MPLS and PPPoE; Linux cooked capture v1 and
//! v2; Linux NFLOG; raw IP; BSD loopback; PPP; IEEE 802.11 data frames, also behind a radiotap header. Each peels
//! headers until an IP datagram starts.

use super::{DecodeError, be16};

/// The capture's link type (pcap DLT numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    Raw,
    LinuxSll,
    LinuxSll2,
    Null,
    Loop,
    /// DLT_PPP: PPP with or without HDLC-like framing.
    Ppp,
    /// DLT_PPP_SERIAL: always a four-byte HDLC head.
    PppSerial,
    Ieee80211,
    Radiotap,
    /// DLT_NFLOG: packets logged by Linux netfilter's NFLOG target, in TLVs.
    Nflog,
}

impl LinkType {
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            12 | 14 | 101 | 228 | 229 => LinkType::Raw,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            9 => LinkType::Ppp,
            50 => LinkType::PppSerial,
            105 => LinkType::Ieee80211,
            127 => LinkType::Radiotap,
            239 => LinkType::Nflog,
            _ => return None,
        })
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: [u16; 2] = [0x88a8, 0x9100];
const ETH_MPLS: u16 = 0x8847;
const ETH_PPPOE_SESSION: u16 = 0x8864;
const ETH_CISCO_FABRIC_PATH: u16 = 0x8903;
/// IEEE 802.1ah provider backbone bridging: a customer's Ethernet frame inside a backbone one.
const ETH_PBB: u16 = 0x88e7;
const ETH_VNTAG: u16 = 0x8926;
/// ARP and RARP: no IP, but Zeek's ARP analyzer checks their length.
const ETH_ARP: [u16; 2] = [0x0806, 0x8035];
/// EtherType values up to this are 802.3 lengths; from [`ETHERTYPE_MIN`] on they are types.
const ETH_MAX_LENGTH: u16 = 1500;
const ETHERTYPE_MIN: u16 = 1536;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PPP_MPLS: u16 = 0x0281;

/// The packet analyzer an EtherType is looked up in: each of Zeek's has its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EtherTypeTable {
    Ethernet,
    Vlan,
    /// Linux cooked captures and 802.11 frames: IP (and ARP) only.
    IpOnly,
    /// Behind a VN-Tag: VLAN tags only.
    Vntag,
}

/// Returns the bytes where the IP datagram starts. Each layer checks its length as Zeek's analyzer of it does
/// and fails with that analyzer's weird; a protocol Zeek does not analyse is [`DecodeError::NotIp`] (no weird).
#[inline]
pub fn decode_link(link: LinkType, data: &[u8]) -> Result<&[u8], DecodeError> {
    match link {
        LinkType::Ethernet => decode_ethernet(data),
        LinkType::Raw => Ok(data),
        LinkType::LinuxSll => {
            let rest = data.get(16..).filter(|r| !r.is_empty()).ok_or(DecodeError::TruncatedLinuxSll)?;
            decode_ethertype(EtherTypeTable::IpOnly, u16::from_be_bytes([data[14], data[15]]), rest).map(Inner::ip)
        }
        LinkType::LinuxSll2 => {
            let rest = data.get(20..).filter(|r| !r.is_empty()).ok_or(DecodeError::TruncatedLinuxSll2)?;
            decode_ethertype(EtherTypeTable::IpOnly, u16::from_be_bytes([data[0], data[1]]), rest).map(Inner::ip)
        }
        LinkType::Null => {
            // Zeek reads the address family in little-endian order, as the BSDs that write DLT_NULL store it.
            let rest = data.get(4..).filter(|r| !r.is_empty()).ok_or(DecodeError::TruncatedNull)?;
            match u32::from_le_bytes([data[0], data[1], data[2], data[3]]) {
                2 | 24 | 28 | 30 => Ok(rest),
                _ => Err(DecodeError::NotIp),
            }
        }
        LinkType::Loop => {
            // DLT_LOOP stores the family in network order. Zeek has no analyzer for it: no weird of its own.
            let family = data.get(..4).ok_or(DecodeError::NotIp)?;
            match u32::from_be_bytes([family[0], family[1], family[2], family[3]]) {
                2 | 24 | 28 | 30 => Ok(&data[4..]),
                _ => Err(DecodeError::NotIp),
            }
        }
        LinkType::Ppp => {
            if data.len() <= 2 {
                return Err(DecodeError::TruncatedPpp);
            }
            if data[..2] == [0xff, 0x03] {
                // HDLC-like framing: address and control before the protocol.
                let rest = data.get(4..).filter(|r| !r.is_empty()).ok_or(DecodeError::TruncatedPppHdlc)?;
                return decode_ppp(u16::from_be_bytes([data[2], data[3]]), rest);
            }
            decode_ppp(u16::from_be_bytes([data[0], data[1]]), &data[2..])
        }
        LinkType::PppSerial => {
            let rest = data.get(4..).filter(|r| !r.is_empty()).ok_or(DecodeError::TruncatedPppSerial)?;
            decode_ppp(u16::from_be_bytes([data[2], data[3]]), rest)
        }
        LinkType::Ieee80211 => decode_ieee80211(data),
        LinkType::Radiotap => {
            // The radiotap header's length is little-endian; Zeek wants a frame after it.
            let header_len = match data {
                [_, _, lo, hi, ..] => usize::from(u16::from_le_bytes([*lo, *hi])),
                _ => return Err(DecodeError::TruncatedRadiotap),
            };
            let frame = data.get(header_len..).filter(|f| !f.is_empty()).ok_or(DecodeError::TruncatedRadiotap)?;
            decode_ieee80211(frame)
        }
        LinkType::Nflog => decode_nflog(data),
    }
}

/// A Linux NFLOG record (Zeek's NFLOG analyzer): a four-byte header (address family, version, resource id), then
/// TLVs up to the one holding the packet (type 9). TLV lengths and types are in the capturing host's byte order,
/// read here as little-endian (the x86 and ARM hosts that write these files). Only IPv4 and IPv6 families are
/// analysed; a TLV length that runs past the record is `nflog_bad_tlv_len`, as in Zeek 9.1.
/// Out of line (not cold: on an NFLOG capture every packet comes here), so the Ethernet path stays compact.
#[inline(never)]
fn decode_nflog(data: &[u8]) -> Result<&[u8], DecodeError> {
    const PAYLOAD_TLV: u16 = 9;
    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;
    if data.len() <= 4 {
        return Err(DecodeError::TruncatedNflog);
    }
    let (family, version) = (data[0], data[1]);
    if version != 0 {
        return Err(DecodeError::UnknownNflogVersion);
    }
    let mut rest = &data[4..];
    loop {
        if rest.len() <= 4 {
            return Err(DecodeError::NflogNoPayload);
        }
        let tlv_len = u16::from_le_bytes([rest[0], rest[1]]);
        let tlv_type = u16::from_le_bytes([rest[2], rest[3]]);
        if tlv_type == PAYLOAD_TLV {
            rest = &rest[4..];
            break;
        }
        if tlv_len < 4 {
            return Err(DecodeError::NflogBadTlvLen { skip: None });
        }
        // The length counts the type and length fields; TLVs are padded to 32 bits beyond it.
        let skip = usize::from(tlv_len).next_multiple_of(4);
        if skip > rest.len() {
            return Err(DecodeError::NflogBadTlvLen { skip: Some((skip, rest.len())) });
        }
        rest = &rest[skip..];
    }
    match family {
        AF_INET | AF_INET6 => Ok(rest),
        _ => Err(DecodeError::NotIp),
    }
}

/// An Ethernet II frame (also behind Cisco FabricPath, and the customer frame of an 802.1ah backbone frame), or an
/// 802.3 frame (LLC, SNAP or Novell; IP only behind SNAP).
fn decode_ethernet(mut data: &[u8]) -> Result<&[u8], DecodeError> {
    // A loop, not recursion, for frames inside backbone frames: each level takes at least 18 bytes.
    loop {
        // Zeek wants more than the 14-byte header and two bytes after it.
        if data.len() <= 16 {
            return Err(DecodeError::TruncatedEthernet);
        }
        if be16(data, 12) == Some(ETH_CISCO_FABRIC_PATH) {
            const FABRIC_PATH_HEADER: usize = 16;
            if data.len() <= FABRIC_PATH_HEADER + 14 {
                return Err(DecodeError::TruncatedCiscoFabricPath);
            }
            data = &data[FABRIC_PATH_HEADER..];
        }
        let (ethertype, rest) = (u16::from_be_bytes([data[12], data[13]]), &data[14..]);
        let inner = match ethertype {
            ETHERTYPE_MIN.. => decode_ethertype(EtherTypeTable::Ethernet, ethertype, rest)?,
            ..=ETH_MAX_LENGTH => Inner::Ip(decode_8023(rest, ethertype, DecodeError::TruncatedEthernet)?),
            _ => return Err(DecodeError::UndefinedEtherType),
        };
        match inner {
            Inner::Ip(ip) => return Ok(ip),
            Inner::Ethernet(frame) => data = frame,
        }
    }
}

/// Where an EtherType chain ends: an IP datagram, or (802.1ah) another Ethernet frame.
enum Inner<'a> {
    Ip(&'a [u8]),
    Ethernet(&'a [u8]),
}

impl<'a> Inner<'a> {
    /// The datagram of a table that holds no backbone frames ([`EtherTypeTable::IpOnly`]).
    fn ip(self) -> &'a [u8] {
        match self {
            Inner::Ip(ip) | Inner::Ethernet(ip) => ip,
        }
    }
}

/// An IEEE 802.11 data frame as Zeek's analyzer reads it: management and control frames, subtypes without data,
/// protected (encrypted) frames and LLC frames other than SNAP-encapsulated Ethernet carry nothing to analyse.
/// Of an A-MSDU, the first subframe is taken.
/// Out of line, not cold, for the reason [`decode_nflog`] is.
#[inline(never)]
fn decode_ieee80211(data: &[u8]) -> Result<&[u8], DecodeError> {
    const DATA_TYPE: u8 = 0x08;
    const NO_DATA_SUBTYPES: u8 = 0x40;
    const QOS_SUBTYPES: u8 = 0x80;
    const PROTECTED: u8 = 0x40;
    const SNAP: [u8; 6] = [0xaa, 0xaa, 0x03, 0, 0, 0];
    let mut header_len = 24;
    let truncated = |len: usize| if data.len() <= len { Err(DecodeError::Truncated80211) } else { Ok(()) };
    truncated(header_len)?;
    let (frame_control, flags) = (data[0], data[1]);
    if frame_control & DATA_TYPE == 0 || frame_control & NO_DATA_SUBTYPES != 0 {
        return Err(DecodeError::NotIp);
    }
    if flags & 0x03 == 0x03 {
        header_len += 6; // to and from the distribution system: a fourth address
        truncated(header_len)?;
    }
    let mut amsdu = false;
    if frame_control & QOS_SUBTYPES != 0 {
        amsdu = data[header_len] & 0x80 != 0;
        if flags & PROTECTED != 0 {
            return Err(DecodeError::NotIp);
        }
        header_len += 2;
        truncated(header_len)?;
    }
    let mut inner = &data[header_len..];
    if amsdu {
        let subframe_len = usize::from(be16(inner, 12).ok_or(DecodeError::TruncatedAmsduHeader)?);
        inner = inner.get(14..14 + subframe_len).ok_or(DecodeError::TruncatedAmsduPacket)?;
    }
    let llc = inner.get(..8).ok_or(DecodeError::Truncated80211Llc)?;
    if llc[..6] != SNAP {
        return Err(DecodeError::NotIp);
    }
    // Zeek's 802.11 analyzer hands on IP (and ARP) only.
    decode_ethertype(EtherTypeTable::IpOnly, u16::from_be_bytes([llc[6], llc[7]]), &inner[8..]).map(Inner::ip)
}

fn decode_ppp(proto: u16, rest: &[u8]) -> Result<&[u8], DecodeError> {
    match proto {
        PPP_IPV4 | PPP_IPV6 => Ok(rest),
        PPP_MPLS => decode_mpls(rest),
        _ => Err(DecodeError::NotIp),
    }
}

/// Follows an EtherType through VLAN tags, VN-Tags, MPLS label stacks and PPPoE to the IP datagram (or to the
/// customer frame of a backbone frame), by the tables of Zeek's packet analyzers.
#[inline]
fn decode_ethertype(mut table: EtherTypeTable, mut ethertype: u16, mut rest: &[u8]) -> Result<Inner<'_>, DecodeError> {
    use EtherTypeTable::{Ethernet, IpOnly, Vlan, Vntag};
    // Bounded: each tag consumes four or six bytes.
    loop {
        match (table, ethertype) {
            (Ethernet | Vlan | IpOnly, ETH_IPV4 | ETH_IPV6) => return Ok(Inner::Ip(rest)),
            (Ethernet | Vlan | IpOnly, t) if ETH_ARP.contains(&t) => return Err(check_arp(rest)),
            (IpOnly, _) => return Err(DecodeError::NotIp),
            (Ethernet | Vntag, t) if t == ETH_VLAN || ETH_QINQ.contains(&t) => {}
            (Vlan, ETH_VLAN) => {}
            (Vntag, _) => return Err(DecodeError::NotIp),
            (Ethernet, ETH_VNTAG) => {
                if rest.len() <= 6 {
                    return Err(DecodeError::TruncatedVntag);
                }
                (ethertype, rest) = (u16::from_be_bytes([rest[4], rest[5]]), &rest[6..]);
                table = Vntag;
                continue;
            }
            (Ethernet | Vlan, ETH_PBB) => {
                // The backbone service tag (4 bytes), then the customer's whole Ethernet header.
                const PBB_HEADER: usize = 18;
                const CUSTOMER_FRAME: usize = 4;
                if rest.len() <= PBB_HEADER {
                    return Err(DecodeError::TruncatedPbb);
                }
                return Ok(Inner::Ethernet(&rest[CUSTOMER_FRAME..]));
            }
            (_, ETH_MPLS) => return decode_mpls(rest).map(Inner::Ip),
            (_, ETH_PPPOE_SESSION) => {
                if rest.len() <= 8 {
                    return Err(DecodeError::TruncatedPppoe);
                }
                return decode_ppp(u16::from_be_bytes([rest[6], rest[7]]), &rest[8..]).map(Inner::Ip);
            }
            _ => return Err(DecodeError::NotIp),
        }
        match vlan_tag(rest)? {
            Tagged::EtherType(next, after) => (ethertype, rest) = (next, after),
            Tagged::Datagram(ip) => return Ok(Inner::Ip(ip)),
        }
        table = Vlan;
    }
}

/// Zeek's ARP analyzer logs nothing by default but a message cut short of its addresses (`truncated_ARP`): the
/// 8-byte header, then sender and target hardware and protocol addresses of the lengths the header gives.
/// Cold: ARP is a host's few messages a minute among its traffic.
#[cold]
#[inline(never)]
fn check_arp(message: &[u8]) -> DecodeError {
    const HEADER: usize = 8;
    match message.get(..HEADER) {
        Some(h) if HEADER + 2 * (usize::from(h[4]) + usize::from(h[5])) <= message.len() => DecodeError::NotIp,
        _ => DecodeError::TruncatedArp,
    }
}

/// One 802.1Q tag: the EtherType it carries and what follows it, or (an 802.3 length instead of a type) the
/// datagram of the 802.3 frame it tags.
fn vlan_tag(data: &[u8]) -> Result<Tagged<'_>, DecodeError> {
    if data.len() <= 4 {
        return Err(DecodeError::TruncatedVlan);
    }
    let (protocol, rest) = (u16::from_be_bytes([data[2], data[3]]), &data[4..]);
    match protocol {
        ETHERTYPE_MIN.. => Ok(Tagged::EtherType(protocol, rest)),
        ..=ETH_MAX_LENGTH => decode_8023(rest, protocol, DecodeError::TruncatedVlan).map(Tagged::Datagram),
        _ => Err(DecodeError::UndefinedVlanProtocol),
    }
}

/// What a VLAN tag carries: a frame of an EtherType, or an 802.3 frame's datagram.
enum Tagged<'a> {
    EtherType(u16, &'a [u8]),
    Datagram(&'a [u8]),
}

/// The payload of an 802.3 frame (`length` bytes by its header; more were captured when the frame was padded):
/// Zeek 9.1 reads it as LLC, and of LLC frames only SNAP with a zero OUI carries an EtherType it follows (to IP);
/// Novell raw 802.3 and other LLC frames carry nothing it analyses.
/// Cold: 802.3 frames are spanning tree and discovery protocols next to the Ethernet II traffic.
#[cold]
#[inline(never)]
fn decode_8023(payload: &[u8], length: u16, truncated: DecodeError) -> Result<&[u8], DecodeError> {
    if payload.len() < 2 {
        return Err(truncated);
    }
    let is_snap = payload[..2] == [0xaa, 0xaa];
    let payload = &payload[..payload.len().min(usize::from(length))];
    if !is_snap {
        return Err(DecodeError::NotIp);
    }
    // The LLC header is three bytes, four when its control field is not an unnumbered PDU; SNAP adds an OUI and a
    // protocol (five bytes).
    let llc = match payload.get(2) {
        Some(control) if control & 0x03 == 0x03 => 3,
        Some(_) => 4,
        None => return Err(DecodeError::TruncatedSnapLlc),
    };
    let snap = payload.get(llc..llc + 5).ok_or(DecodeError::TruncatedSnap)?;
    if snap[..3] != [0, 0, 0] {
        return Err(DecodeError::NotIp);
    }
    decode_ethertype(EtherTypeTable::IpOnly, u16::from_be_bytes([snap[3], snap[4]]), &payload[llc + 5..]).map(Inner::ip)
}

/// An MPLS label stack; Zeek hands what follows it to the IP analyzer whatever it is.
fn decode_mpls(mut rest: &[u8]) -> Result<&[u8], DecodeError> {
    loop {
        if rest.len() <= 4 {
            return Err(DecodeError::TruncatedMpls);
        }
        let bottom_of_stack = rest[2] & 0x01 != 0;
        rest = &rest[4..];
        if bottom_of_stack {
            return Ok(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_and_mpls_are_peeled() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a, 0x88, 0x47]); // VLAN 10 → MPLS
        frame.extend_from_slice(&[0x00, 0x01, 0x01, 0x40]); // one label, bottom of stack
        frame.extend_from_slice(&[0x45, 0x00]);
        assert_eq!(decode_link(LinkType::Ethernet, &frame).unwrap(), &[0x45, 0x00]);
    }

    /// An 802.11 data frame from a station to the distribution system, QoS when `qos` is set, carrying `payload`
    /// behind LLC/SNAP with the IPv4 ethertype.
    fn wifi_data(qos: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if qos { 0x88 } else { 0x08 }, flags, 0, 0];
        f.extend_from_slice(&[0x11; 18]); // three addresses
        f.extend_from_slice(&[0, 0]); // sequence control
        if qos {
            f.extend_from_slice(&[0, 0]);
        }
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn wifi_data_frames_carry_ip_behind_snap() {
        let ip = [0x45, 0x00, 0x00, 0x14];
        assert_eq!(decode_link(LinkType::Ieee80211, &wifi_data(false, 0x01, &ip)).unwrap(), &ip);
        assert_eq!(decode_link(LinkType::Ieee80211, &wifi_data(true, 0x02, &ip)).unwrap(), &ip);
        let mut radiotap = vec![0, 0, 8, 0, 0, 0, 0, 0];
        radiotap.extend_from_slice(&wifi_data(true, 0x01, &ip));
        assert_eq!(decode_link(LinkType::Radiotap, &radiotap).unwrap(), &ip);
        let mut wds = wifi_data(false, 0x03, &ip);
        wds.splice(24..24, [0x22; 6]);
        assert_eq!(decode_link(LinkType::Ieee80211, &wds).unwrap(), &ip);
    }

    #[test]
    fn wifi_frames_without_ip_are_skipped_and_short_ones_are_weirds() {
        let ip = [0x45, 0x00];
        let mut beacon = wifi_data(false, 0, &ip);
        beacon[0] = 0x80;
        assert_eq!(decode_link(LinkType::Ieee80211, &beacon), Err(DecodeError::NotIp));
        assert_eq!(decode_link(LinkType::Ieee80211, &wifi_data(true, 0x41, &ip)), Err(DecodeError::NotIp));
        assert_eq!(decode_link(LinkType::Ieee80211, &[0x08; 24]), Err(DecodeError::Truncated80211));
        assert_eq!(
            decode_link(LinkType::Ieee80211, &wifi_data(false, 0, &[])[..28]),
            Err(DecodeError::Truncated80211Llc)
        );
        assert_eq!(decode_link(LinkType::Radiotap, &[0, 0, 40, 0, 1, 2]), Err(DecodeError::TruncatedRadiotap));
        for n in 0..40 {
            let _ = decode_link(LinkType::Radiotap, &vec![0x88; n]);
            let _ = decode_link(LinkType::Ieee80211, &vec![0x88; n]);
        }
    }

    /// An Ethernet header to 00:..:02 from 00:..:01 with `ethertype`, then `rest`.
    fn ethernet(ethertype: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(rest);
        f
    }

    const IP: [u8; 4] = [0x45, 0, 0, 20];

    /// 802.1ah: a backbone frame (service tag, then the customer's Ethernet header) carries the customer's frame,
    /// which the Ethernet analyzer reads again, VLAN tags included; a backbone frame inside a VLAN tag too.
    #[test]
    fn backbone_frames_carry_the_customer_frame() {
        let customer = ethernet(0x8100, &[0, 10, 0x08, 0x00, 0x45, 0, 0, 20]);
        let mut service_tag = vec![0, 0, 0x01, 0x00];
        service_tag.extend_from_slice(&customer);
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x88e7, &service_tag)).unwrap(), &IP);
        let mut tagged = vec![0, 20, 0x88, 0xe7];
        tagged.extend_from_slice(&service_tag);
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x8100, &tagged)).unwrap(), &IP);
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x88e7, &[0; 18])), Err(DecodeError::TruncatedPbb));
        // A customer frame too short for the Ethernet analyzer is its weird, not the backbone's.
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x88e7, &[0; 20])), Err(DecodeError::TruncatedEthernet));
        // Nested backbone frames are read in a loop, however deep.
        let mut nested = ethernet(0x0800, &IP);
        for _ in 0..2000 {
            let mut service_tag = vec![0, 0, 0x01, 0x00];
            service_tag.extend_from_slice(&nested);
            nested = ethernet(0x88e7, &service_tag);
        }
        assert_eq!(decode_link(LinkType::Ethernet, &nested).unwrap(), &IP);
    }

    #[test]
    fn arp_is_checked_for_its_length_only() {
        let mut request = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
        request.extend_from_slice(&[0x11; 20]);
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x0806, &request)), Err(DecodeError::NotIp));
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x0806, &request[..27])), Err(DecodeError::TruncatedArp));
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x8035, &request[..7])), Err(DecodeError::TruncatedArp));
    }

    /// 802.3 frames: IP behind LLC/SNAP with a zero OUI (three- or four-byte LLC header), read up to the frame's
    /// length field (padding after it ignored); other LLC frames and Novell's carry nothing to analyse.
    #[test]
    fn snap_frames_carry_ip() {
        let snap = |control: &[u8], oui: [u8; 3], padding: usize| {
            let mut llc = vec![0xaa, 0xaa];
            llc.extend_from_slice(control);
            llc.extend_from_slice(&oui);
            llc.extend_from_slice(&[0x08, 0x00]);
            llc.extend_from_slice(&IP);
            let length = llc.len() as u16;
            llc.resize(llc.len() + padding, 0xee);
            ethernet(length, &llc)
        };
        assert_eq!(decode_link(LinkType::Ethernet, &snap(&[0x03], [0; 3], 0)).unwrap(), &IP);
        assert_eq!(decode_link(LinkType::Ethernet, &snap(&[0x00, 0x01], [0; 3], 20)).unwrap(), &IP);
        assert_eq!(decode_link(LinkType::Ethernet, &snap(&[0x03], [0, 0, 0x0c], 0)), Err(DecodeError::NotIp));
        let mut tagged = vec![0, 10];
        tagged.extend_from_slice(&snap(&[0x03], [0; 3], 6)[12..]);
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x8100, &tagged)).unwrap(), &IP);
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x0020, &[0xff; 30])), Err(DecodeError::NotIp));
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x0020, &[0x42; 30])), Err(DecodeError::NotIp));
        // A length field shorter than the LLC header: the SNAP analyzer's own weird.
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x0002, &[0xaa; 30])), Err(DecodeError::TruncatedSnapLlc));
        for length in 0..40 {
            let _ = decode_link(LinkType::Ethernet, &ethernet(length, &[0xaa; 12]));
        }
    }

    /// A VN-Tag (six bytes, the last two an EtherType) is followed only by VLAN tags in Zeek's table.
    #[test]
    fn vn_tags_lead_to_vlan_tags_only() {
        let vntag = |ethertype: u16, rest: &[u8]| {
            let mut tag = vec![0x80, 0x01, 0x00, 0x02];
            tag.extend_from_slice(&ethertype.to_be_bytes());
            tag.extend_from_slice(rest);
            ethernet(0x8926, &tag)
        };
        assert_eq!(decode_link(LinkType::Ethernet, &vntag(0x8100, &[0, 10, 0x08, 0x00, 0x45, 0, 0, 20])).unwrap(), &IP);
        assert_eq!(decode_link(LinkType::Ethernet, &vntag(0x88a8, &[0, 10, 0x08, 0x00, 0x45, 0, 0, 20])).unwrap(), &IP);
        assert_eq!(decode_link(LinkType::Ethernet, &vntag(0x0800, &IP)), Err(DecodeError::NotIp));
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x8926, &[0; 6])), Err(DecodeError::TruncatedVntag));
    }

    /// NFLOG records: TLVs (little-endian length and type, padded to four bytes) up to the payload TLV.
    #[test]
    fn nflog_records_yield_their_payload_tlv() {
        let record = |family: u8, version: u8, tlvs: &[(u16, &[u8])]| {
            let mut r = vec![family, version, 0, 0];
            for &(kind, value) in tlvs {
                r.extend_from_slice(&(4 + value.len() as u16).to_le_bytes());
                r.extend_from_slice(&kind.to_le_bytes());
                r.extend_from_slice(value);
                r.resize(r.len().next_multiple_of(4), 0);
            }
            r
        };
        let prefix: &[u8] = b"DROP "; // padded to eight bytes
        assert_eq!(decode_link(LinkType::Nflog, &record(2, 0, &[(10, prefix), (9, &IP)])).unwrap(), &IP);
        assert_eq!(decode_link(LinkType::Nflog, &record(10, 0, &[(9, &IP)])).unwrap(), &IP);
        assert_eq!(decode_link(LinkType::Nflog, &record(7, 0, &[(9, &IP)])), Err(DecodeError::NotIp));
        assert_eq!(decode_link(LinkType::Nflog, &record(2, 1, &[(9, &IP)])), Err(DecodeError::UnknownNflogVersion));
        assert_eq!(decode_link(LinkType::Nflog, &record(2, 0, &[(10, prefix)])), Err(DecodeError::NflogNoPayload));
        assert_eq!(
            decode_link(LinkType::Nflog, &[2, 0, 0, 0, 2, 0, 1, 0, 0]),
            Err(DecodeError::NflogBadTlvLen { skip: None })
        );
        assert_eq!(
            decode_link(LinkType::Nflog, &[2, 0, 0, 0, 0x0d, 0, 1, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::NflogBadTlvLen { skip: Some((16, 9)) })
        );
        for n in 0..40 {
            let _ = decode_link(LinkType::Nflog, &vec![0; n]);
        }
    }

    /// Each layer's own truncation weird, from the analyzer Zeek names as its source.
    #[test]
    fn each_link_layer_reports_its_own_truncation() {
        let vlan_ip = |tpid: u16| ethernet(tpid, &[0, 10, 0x08, 0x00]);
        let cases: [(LinkType, Vec<u8>, DecodeError, &str, &str); 12] = [
            (LinkType::Ethernet, vec![0; 16], DecodeError::TruncatedEthernet, "truncated_ethernet_frame", "ETHERNET"),
            (
                LinkType::Ethernet,
                ethernet(0x0008, &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08]),
                DecodeError::TruncatedSnap,
                "truncated_snap_header",
                "SNAP",
            ),
            (
                LinkType::Ethernet,
                ethernet(0x8903, &[0; 16]),
                DecodeError::TruncatedCiscoFabricPath,
                "truncated_link_header_cfp",
                "ETHERNET",
            ),
            (
                LinkType::Ethernet,
                ethernet(1501, &IP),
                DecodeError::UndefinedEtherType,
                "undefined_ether_type",
                "ETHERNET",
            ),
            (LinkType::Ethernet, vlan_ip(0x8100), DecodeError::TruncatedVlan, "truncated_VLAN_header", "VLAN"),
            (
                LinkType::Ethernet,
                ethernet(0x8100, &[0, 10, 0x05, 0xdd, 1]),
                DecodeError::UndefinedVlanProtocol,
                "undefined_vlan_protocol",
                "VLAN",
            ),
            (
                LinkType::Ethernet,
                ethernet(0x8847, &[0, 0, 0, 0, 0, 1, 1]),
                DecodeError::TruncatedMpls,
                "truncated_link_header",
                "MPLS",
            ),
            (
                LinkType::Ethernet,
                ethernet(0x8864, &[0x11, 0, 0, 1, 0, 2, 0, 0x21]),
                DecodeError::TruncatedPppoe,
                "truncated_pppoe_header",
                "PPPOE",
            ),
            (LinkType::LinuxSll, vec![0; 16], DecodeError::TruncatedLinuxSll, "truncated_Linux_SLL_header", "LINUXSLL"),
            (
                LinkType::LinuxSll2,
                vec![0; 20],
                DecodeError::TruncatedLinuxSll2,
                "truncated_Linux_SLL2_header",
                "LINUXSLL2",
            ),
            (LinkType::Null, vec![2, 0, 0, 0], DecodeError::TruncatedNull, "null_analyzer_failed", "NULL"),
            (
                LinkType::PppSerial,
                vec![0xff, 3, 0, 0x21],
                DecodeError::TruncatedPppSerial,
                "truncated_ppp_serial_header",
                "PPPSERIAL",
            ),
        ];
        for (link, frame, error, name, source) in cases {
            let got = decode_link(link, &frame).unwrap_err();
            assert_eq!(
                (got, got.to_string().as_str(), got.source()),
                (error, name, Some(source)),
                "{link:?} {frame:?}"
            );
            assert!(!got.names_hosts(), "{name}: no IP header yet, a net weird");
        }
        assert_eq!(decode_link(LinkType::Ppp, &[0, 0x21]), Err(DecodeError::TruncatedPpp));
        assert_eq!(decode_link(LinkType::Ppp, &[0xff, 3, 0, 0x21]), Err(DecodeError::TruncatedPppHdlc));
        assert_eq!(DecodeError::TruncatedPppHdlc.source(), Some("PPP"));
    }

    #[test]
    fn one_byte_more_than_each_header_is_enough() {
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x0800, &IP[..3])).unwrap(), &IP[..3]);
        assert_eq!(decode_link(LinkType::Ethernet, &ethernet(0x8100, &[0, 10, 0x08, 0x00, 0x45])).unwrap(), [0x45]);
        let mut sll = vec![0; 14];
        sll.extend_from_slice(&[0x08, 0x00, 0x45]);
        assert_eq!(decode_link(LinkType::LinuxSll, &sll).unwrap(), [0x45]);
        assert_eq!(decode_link(LinkType::Null, &[2, 0, 0, 0, 0x45]).unwrap(), [0x45]);
        assert_eq!(decode_link(LinkType::Ppp, &[0, 0x21, 0x45]).unwrap(), [0x45], "PPP without framing");
        assert_eq!(decode_link(LinkType::Ppp, &[0xff, 3, 0, 0x57, 0x60]).unwrap(), [0x60], "HDLC-like framing");
        assert_eq!(decode_link(LinkType::PppSerial, &[0xff, 3, 0, 0x21, 0x45]).unwrap(), [0x45]);
    }

    /// Only what Zeek's packet analyzers register leads to IP; the rest is no weird, only not analysed.
    #[test]
    fn protocols_zeek_does_not_register_carry_nothing() {
        let cases: [(&str, LinkType, Vec<u8>); 6] = [
            (
                "802.1ad inside a VLAN tag",
                LinkType::Ethernet,
                ethernet(0x8100, &[0, 10, 0x88, 0xa8, 0, 20, 0x08, 0x00, 0x45]),
            ),
            ("multicast MPLS", LinkType::Ethernet, ethernet(0x8848, &[0, 0, 1, 64, 0x45])),
            ("an 802.3 length with LLC", LinkType::Ethernet, ethernet(0x0004, &[0x42, 0x42, 3, 0])),
            ("a VLAN tag in a cooked capture", LinkType::LinuxSll, {
                let mut f = vec![0; 14];
                f.extend_from_slice(&[0x81, 0x00, 0, 10, 0x08, 0x00, 0x45]);
                f
            }),
            ("a big-endian BSD loopback family", LinkType::Null, vec![0, 0, 0, 2, 0x45]),
            ("PPP's LCP", LinkType::Ppp, vec![0xc0, 0x21, 1]),
        ];
        for (what, link, frame) in cases {
            assert_eq!(decode_link(link, &frame), Err(DecodeError::NotIp), "{what}");
        }
        // QinQ at the outer tag, and MPLS behind PPP: analysed.
        let qinq = ethernet(0x88a8, &[0, 20, 0x81, 0x00, 0, 10, 0x08, 0x00, 0x45]);
        assert_eq!(decode_link(LinkType::Ethernet, &qinq).unwrap(), [0x45]);
        assert_eq!(decode_link(LinkType::PppSerial, &[0xff, 3, 0x02, 0x81, 0, 0, 1, 64, 0x45]).unwrap(), [0x45]);
    }

    #[test]
    fn what_follows_mpls_goes_to_ip_whatever_it_is() {
        let frame = ethernet(0x8847, &[0, 0, 1, 64, 0x75, 0]);
        assert_eq!(decode_link(LinkType::Ethernet, &frame).unwrap(), [0x75, 0], "the IP analyzer judges the version");
    }

    #[test]
    fn short_frames_are_errors() {
        for n in 0..40 {
            for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Ppp, LinkType::Null] {
                let _ = decode_link(link, &vec![0x81; n]);
                let _ = decode_link(link, &vec![0x88; n]);
            }
        }
    }
}
