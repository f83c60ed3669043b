//! Splits a fuzz input into frames: each frame is a 2-byte big-endian length and that many bytes (the last one
//! takes what is left), so one input can carry several packets, e.g. the fragments of one datagram.

pub fn frames(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = match data {
            [] => return None,
            [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            [_] => (0, &data[1..]),
        };
        let (frame, after) = rest.split_at(len.min(rest.len()));
        data = after;
        Some(frame)
    })
}

/// The link layers the decoder knows, picked by a selector byte.
pub const LINKS: &[zeek_node::decode::LinkType] = &[
    zeek_node::decode::LinkType::Ethernet,
    zeek_node::decode::LinkType::Raw,
    zeek_node::decode::LinkType::LinuxSll,
    zeek_node::decode::LinkType::LinuxSll2,
    zeek_node::decode::LinkType::Null,
    zeek_node::decode::LinkType::Loop,
    zeek_node::decode::LinkType::Ppp,
    zeek_node::decode::LinkType::PppSerial,
    zeek_node::decode::LinkType::Ieee80211,
    zeek_node::decode::LinkType::Radiotap,
    zeek_node::decode::LinkType::Nflog,
];
