//! Link layers: Ethernet with 802.1Q/QinQ, MPLS and PPPoE; Linux cooked capture v1 and v2; raw IP;
//! BSD loopback. Each peels headers until an IP datagram starts.

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
    }
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

    #[test]
    fn short_frames_are_errors() {
        for n in 0..20 {
            let _ = decode_link(LinkType::Ethernet, &vec![0x81; n]);
            let _ = decode_link(LinkType::LinuxSll2, &vec![0x88; n]);
        }
        assert_eq!(decode_link(LinkType::Ethernet, &[0; 5]), Err(DecodeError::TruncatedLink));
    }
}
