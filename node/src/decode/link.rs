//! Link layers: Ethernet with 802.1Q/QinQ, MPLS and PPPoE; Linux cooked capture v1 and v2; raw IP;
//! BSD loopback; PPP; IEEE 802.11 data frames, also behind a radiotap header. Each peels headers until an IP
//! datagram starts.

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
    Ppp,
    Ieee80211,
    Radiotap,
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
            9 | 50 => LinkType::Ppp,
            105 => LinkType::Ieee80211,
            127 => LinkType::Radiotap,
            _ => return None,
        })
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
const ETH_MPLS: [u16; 2] = [0x8847, 0x8848];
const ETH_PPPOE_SESSION: u16 = 0x8864;

/// Returns the bytes where the IP datagram starts.
pub fn decode_link(link: LinkType, data: &[u8]) -> Result<&[u8], DecodeError> {
    match link {
        LinkType::Ethernet => {
            let ethertype = be16(data, 12).ok_or(DecodeError::TruncatedLink)?;
            decode_ethertype(ethertype, data.get(14..).ok_or(DecodeError::TruncatedLink)?)
        }
        LinkType::Raw => Ok(data),
        LinkType::LinuxSll => {
            let proto = be16(data, 14).ok_or(DecodeError::TruncatedLink)?;
            decode_ethertype(proto, data.get(16..).ok_or(DecodeError::TruncatedLink)?)
        }
        LinkType::LinuxSll2 => {
            let proto = be16(data, 0).ok_or(DecodeError::TruncatedLink)?;
            decode_ethertype(proto, data.get(20..).ok_or(DecodeError::TruncatedLink)?)
        }
        LinkType::Null | LinkType::Loop => {
            let family = data.get(..4).ok_or(DecodeError::TruncatedLink)?;
            // The family is in host order of the capturing machine: accept both orders.
            let fam = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            let fam = if fam > 0xffff { fam.swap_bytes() } else { fam };
            match fam {
                2 | 24 | 28 | 30 => Ok(&data[4..]),
                _ => Err(DecodeError::NotIp),
            }
        }
        LinkType::Ppp => {
            let proto = be16(data, 2).ok_or(DecodeError::TruncatedLink)?;
            decode_ppp(proto, data.get(4..).ok_or(DecodeError::TruncatedLink)?)
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
    }
}

/// An IEEE 802.11 data frame as Zeek's analyzer reads it: management and control frames, subtypes without data,
/// protected (encrypted) frames and LLC frames other than SNAP-encapsulated Ethernet carry nothing to analyse.
/// Of an A-MSDU, the first subframe is taken.
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
    decode_ethertype(u16::from_be_bytes([llc[6], llc[7]]), &inner[8..])
}

fn decode_ppp(proto: u16, rest: &[u8]) -> Result<&[u8], DecodeError> {
    match proto {
        0x0021 | 0x0057 => Ok(rest),
        _ => Err(DecodeError::NotIp),
    }
}

/// Follows an EtherType through VLAN tags, MPLS label stacks and PPPoE to the IP datagram.
pub fn decode_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Result<&[u8], DecodeError> {
    // Bounded: each step consumes at least two bytes.
    loop {
        match ethertype {
            ETH_IPV4 | ETH_IPV6 => return Ok(rest),
            t if ETH_VLAN.contains(&t) => {
                ethertype = be16(rest, 2).ok_or(DecodeError::TruncatedLink)?;
                rest = rest.get(4..).ok_or(DecodeError::TruncatedLink)?;
            }
            t if ETH_MPLS.contains(&t) => {
                loop {
                    let label = rest.get(..4).ok_or(DecodeError::TruncatedLink)?;
                    rest = &rest[4..];
                    if label[2] & 0x01 != 0 {
                        break;
                    }
                }
                return match rest.first().map(|b| b >> 4) {
                    Some(4) | Some(6) => Ok(rest),
                    _ => Err(DecodeError::NotIp),
                };
            }
            ETH_PPPOE_SESSION => {
                let proto = be16(rest, 6).ok_or(DecodeError::TruncatedLink)?;
                return decode_ppp(proto, rest.get(8..).ok_or(DecodeError::TruncatedLink)?);
            }
            _ => return Err(DecodeError::NotIp),
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

    #[test]
    fn short_frames_are_errors() {
        for n in 0..20 {
            let _ = decode_link(LinkType::Ethernet, &vec![0x81; n]);
            let _ = decode_link(LinkType::LinuxSll2, &vec![0x88; n]);
        }
        assert_eq!(decode_link(LinkType::Ethernet, &[0; 5]), Err(DecodeError::TruncatedLink));
    }
}
