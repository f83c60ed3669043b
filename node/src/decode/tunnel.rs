//! Tunnel headers, as Zeek's packet analyzers read them: GRE (with PPTP's enhanced GRE and ERSPAN), and the
//! tunnels that ride on UDP (Teredo, VXLAN, Geneve, GTPv1-U, AYIYA): which one a datagram belongs to, and what
//! its header says. Pure functions over the payload; the engine keeps the outer connection, tunnel.log and the
//! inner packet's encapsulation chain.

use super::link::{LinkType, decode_link};

/// What a GRE packet carries, after its header (and PPTP's or ERSPAN's), as Zeek's GRE analyzer of the 2026-08-21
/// build hands it to the IP tunnel analyzer (`gre_link_type`; GRE's dispatch table is empty, its default analyzer
/// IPTUNNEL).
#[derive(Debug, PartialEq, Eq)]
pub enum GrePayload<'a> {
    /// A raw IP packet (`DLT_RAW`): what every protocol type GRE does not handle itself carries, so the IP analyzer
    /// reads the version from the packet (MPLS, ARP and the like become its `unknown_ip_version`).
    Ip(&'a [u8]),
    /// PPTP's IP packet, IPv4 (protocol 4) or IPv6 (41) by the PPP protocol, which the IP tunnel analyzer checks
    /// (`IP::ParsePacket`) before it registers the tunnel.
    Pptp { packet: &'a [u8], proto: u8 },
    /// An Ethernet frame (transparent Ethernet bridging, ERSPAN).
    Ethernet(&'a [u8]),
    /// An IEEE 802.11 frame (Aruba access points' GRE).
    Ieee80211(&'a [u8]),
}

/// Why Zeek's GRE analyzer drops a packet: the weird it raises, and its `addl`.
#[derive(Debug, PartialEq, Eq)]
pub struct GreWeird {
    pub name: &'static str,
    pub addl: Option<String>,
}

impl GreWeird {
    fn new(name: &'static str) -> GreWeird {
        GreWeird { name, addl: None }
    }
}

const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_ACK: u16 = 0x0080;
const GRE_RESERVED_FLAGS: u16 = 0x0078;
const GRE_TRANSPARENT_ETHERNET: u16 = 0x6558;
const GRE_ERSPAN_1_2: u16 = 0x88be;
const GRE_ERSPAN_3: u16 = 0x22eb;
const GRE_PPP: u16 = 0x880b;
const ETHERNET_HEADER_LEN: usize = 14;

/// Parses a GRE header as Zeek's GRE analyzer of the 2026-08-21 build does (GRE.cc before zeek/zeek#5847: RFC
/// 2784/2890, RFC 2637's enhanced GRE for PPTP, ERSPAN types I-III read by GRE itself).
pub fn parse_gre(p: &[u8]) -> Result<GrePayload<'_>, GreWeird> {
    let Some(&[f0, f1, t0, t1]) = p.first_chunk::<4>() else { return Err(GreWeird::new("truncated_GRE")) };
    let flags = u16::from_be_bytes([f0, f1]);
    let proto = u16::from_be_bytes([t0, t1]);
    let version = flags & 0x0007;
    let gre_len = 4 + [GRE_CHECKSUM, GRE_KEY, GRE_SEQUENCE, GRE_ACK].iter().filter(|&&f| flags & f != 0).count() * 4;
    let truncated = || GreWeird::new("truncated_GRE");
    // What the payload is, the header before it (PPTP's or ERSPAN's), and the link header GRE wants after that.
    let (link, extra_len, link_len) = match version {
        0 => match proto {
            GRE_TRANSPARENT_ETHERNET if p.len() > gre_len + ETHERNET_HEADER_LEN => {
                (Inner::Ethernet, 0, ETHERNET_HEADER_LEN)
            }
            // ERSPAN type II carries an 8-byte header (type I, without the sequence flag, none).
            GRE_ERSPAN_1_2 if p.len() > gre_len + ETHERNET_HEADER_LEN => {
                let erspan_len = if flags & GRE_SEQUENCE != 0 { 8 } else { 0 };
                if p.len() < gre_len + ETHERNET_HEADER_LEN + erspan_len {
                    return Err(truncated());
                }
                (Inner::Ethernet, erspan_len, ETHERNET_HEADER_LEN)
            }
            // ERSPAN type III: 12 bytes, and 8 more when its last byte's O bit says an optional subheader follows.
            GRE_ERSPAN_3 if p.len() > gre_len + 12 + ETHERNET_HEADER_LEN => {
                let optional = p[gre_len + 11] & 0x01 != 0;
                if optional && p.len() <= gre_len + 20 + ETHERNET_HEADER_LEN {
                    return Err(truncated());
                }
                (Inner::Ethernet, if optional { 20 } else { 12 }, ETHERNET_HEADER_LEN)
            }
            GRE_TRANSPARENT_ETHERNET | GRE_ERSPAN_1_2 | GRE_ERSPAN_3 => return Err(truncated()),
            aruba if is_aruba_type(aruba) && p.len() > gre_len => (Inner::Ieee80211, 0, 0),
            aruba if is_aruba_type(aruba) => return Err(truncated()),
            // Any other protocol type (IPv4, IPv6, MPLS, ...) is a raw IP packet to the IP tunnel analyzer.
            _ => (Inner::Ip, 0, 0),
        },
        1 if proto != GRE_PPP => {
            return Err(GreWeird { name: "egre_protocol_type", addl: Some(format!("proto={proto}")) });
        }
        1 => (Inner::Pptp, 4, 0),
        _ => return Err(GreWeird { name: "unknown_gre_version", addl: Some(format!("version={version}")) }),
    };
    if flags & GRE_ROUTING != 0 {
        return Err(GreWeird::new("gre_routing"));
    }
    if flags & GRE_RESERVED_FLAGS != 0 {
        return Err(GreWeird::new("unknown_gre_flags"));
    }
    if p.len() < gre_len + extra_len + link_len {
        return Err(truncated());
    }
    let payload = p.get(gre_len + extra_len..).ok_or_else(truncated)?;
    Ok(match link {
        Inner::Ip => GrePayload::Ip(payload),
        Inner::Ethernet => GrePayload::Ethernet(payload),
        Inner::Ieee80211 => GrePayload::Ieee80211(payload),
        // PPTP: the PPP protocol after the enhanced header's 2 bytes of address and control.
        Inner::Pptp => match u16::from_be_bytes([p[gre_len + 2], p[gre_len + 3]]) {
            0x0021 => GrePayload::Pptp { packet: payload, proto: 4 },
            0x0057 => GrePayload::Pptp { packet: payload, proto: 41 },
            _ => return Err(GreWeird::new("non_ip_packet_in_encap")),
        },
    })
}

/// The link layer of a GRE payload.
enum Inner {
    Ip,
    Pptp,
    Ethernet,
    Ieee80211,
}

/// The protocol types Aruba access points send 802.11 frames under (as Zeek's GRE analyzer tells them).
fn is_aruba_type(proto: u16) -> bool {
    (proto & 0x8200 == 0x8200 && proto & 0x0f == 0)
        || (proto & 0x8300 == 0x8300 && proto & 0x0f == 0 && proto <= 0x8370)
        || proto == 0x9000
}

/// A UDP tunnel protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpTunnel {
    Teredo,
    Vxlan,
    Geneve,
    Gtpv1,
    Ayiya,
}

/// What a tunnel header says about one datagram, in the terms of Zeek's packet analyzers.
#[derive(Debug, PartialEq, Eq)]
pub enum TunnelPayload<'a> {
    /// Not a packet of this tunnel, or one Zeek's analyzer passes over without confirming (a violation, an AYIYA
    /// message other than "forward").
    Refused,
    /// A valid header, so the analyzer confirms, but nothing Zeek analyses inside: no packet at all (then `weird`
    /// names Zeek's `*_empty_packet`), or a next header it does not forward.
    Confirmed { weird: Option<&'static str> },
    /// A valid header and the IP packet inside.
    Inner(&'a [u8]),
    /// Passed over with a weird (`addl` its detail), neither confirmed nor a violation.
    Ignored { weird: &'static str, addl: String },
    /// The analyzer reports a violation (`AnalyzerViolation(reason, session, data, len)` with the whole datagram
    /// as its data): analyzer.log's packet-analyzer line, and the connection is not tried as this tunnel again.
    /// `weird` is what the header parser raised on the way, which Zeek reports only once the tunnel confirmed.
    Violation { reason: &'static str, weird: Option<&'static str> },
}

/// Geneve's protocol types Zeek forwards (base/packet-protocols/geneve): Ethernet, and IP as 0x0800 or 0x86DD
/// (zeek/zeek#5538, merged 2026-06, fixed the registration of IPv6, which was 0x08DD: core.tunnels.geneve-ipv6).
const GENEVE_ETHERNET: u16 = 0x6558;
const GENEVE_IP: [u16; 2] = [0x0800, 0x86DD];
/// AYIYA's next header values Zeek forwards: IP-in-IP and IPv6.
const AYIYA_IP: [u8; 2] = [4, 41];

impl UdpTunnel {
    pub const ALL: [UdpTunnel; 5] =
        [UdpTunnel::Teredo, UdpTunnel::Vxlan, UdpTunnel::Geneve, UdpTunnel::Gtpv1, UdpTunnel::Ayiya];

    /// The tunnel of a datagram on a connection whose responder port is `resp_port`: by Zeek's registered ports
    /// first (Zeek's UDP analyzer forwards by the responder's port only), then by the protocol detection it runs
    /// when no port matches (Teredo's and AYIYA's `DetectProtocol`).
    pub fn classify(resp_port: u16, payload: &[u8]) -> Option<UdpTunnel> {
        if let Some((_, tunnel)) = Self::BY_PORT.iter().find(|(port, _)| *port == resp_port) {
            return Some(*tunnel);
        }
        if looks_like_teredo(payload) {
            Some(UdpTunnel::Teredo)
        } else if looks_like_ayiya(payload) {
            Some(UdpTunnel::Ayiya)
        } else {
            None
        }
    }

    /// The UDP ports Zeek registers for these tunnels (they also make a port the server side).
    pub const BY_PORT: [(u16, UdpTunnel); 6] = [
        (3544, UdpTunnel::Teredo),
        (4789, UdpTunnel::Vxlan),
        (6081, UdpTunnel::Geneve),
        (2152, UdpTunnel::Gtpv1),
        (2123, UdpTunnel::Gtpv1),
        (5072, UdpTunnel::Ayiya),
    ];

    /// tunnel.log's `tunnel_type`.
    pub fn kind(self) -> &'static str {
        match self {
            UdpTunnel::Teredo => "Tunnel::TEREDO",
            UdpTunnel::Vxlan => "Tunnel::VXLAN",
            UdpTunnel::Geneve => "Tunnel::GENEVE",
            UdpTunnel::Gtpv1 => "Tunnel::GTPv1",
            UdpTunnel::Ayiya => "Tunnel::AYIYA",
        }
    }

    /// The packet analyzer's name, the `source` of its weirds.
    pub fn analyzer_name(self) -> &'static str {
        match self {
            UdpTunnel::Teredo => "TEREDO",
            UdpTunnel::Vxlan => "VXLAN",
            UdpTunnel::Geneve => "GENEVE",
            UdpTunnel::Gtpv1 => "GTPV1",
            UdpTunnel::Ayiya => "AYIYA",
        }
    }

    /// The service a confirmation adds to the outer connection (the analyzer's name, lower-cased).
    pub fn service(self) -> &'static str {
        match self {
            UdpTunnel::Teredo => "teredo",
            UdpTunnel::Vxlan => "vxlan",
            UdpTunnel::Geneve => "geneve",
            UdpTunnel::Gtpv1 => "gtpv1",
            UdpTunnel::Ayiya => "ayiya",
        }
    }

    /// Whether Zeek confirms only once both directions carried valid packets (`Tunnel::delay_teredo_confirmation`;
    /// `delay_gtp_confirmation` is off by default).
    pub fn confirms_on_both_sides(self) -> bool {
        self == UdpTunnel::Teredo
    }

    /// Whether the analyzer's violations carry the datagram as their data (analyzer.log's `failure_data`): Teredo's,
    /// VXLAN's and Geneve's `AnalyzerViolation` calls pass it, AYIYA's and GTPv1's do not.
    pub fn violation_carries_data(self) -> bool {
        matches!(self, UdpTunnel::Teredo | UdpTunnel::Vxlan | UdpTunnel::Geneve)
    }

    /// Parses the tunnel header of `payload`.
    pub fn parse(self, payload: &[u8]) -> TunnelPayload<'_> {
        match self {
            UdpTunnel::Teredo => match teredo_inner(payload) {
                Ok(inner) => TunnelPayload::Inner(inner),
                Err(TeredoFailure { reason, weird }) => TunnelPayload::Violation { reason, weird },
            },
            UdpTunnel::Gtpv1 => gtpv1(payload),
            UdpTunnel::Vxlan => vxlan(payload),
            UdpTunnel::Geneve => geneve(payload),
            UdpTunnel::Ayiya => ayiya(payload),
        }
    }
}

/// The IP packet inside `ip` when `ip` belongs to a tunnel that carries many hosts' flows at once: a traffic
/// mirror's VXLAN or GRE (ERSPAN, transparent Ethernet bridging), a Geneve overlay, GTP-U between a base station and
/// the core, IP-in-IP. Analysis threads shard such packets by the flow inside (`runner::shard_of`): the outer
/// header is the same for every flow a mirror copies, and a VXLAN endpoint picks the outer source port per
/// direction, so sharding by it would put all flows on one thread, or the two directions of one flow on two.
/// Teredo and AYIYA carry one host's traffic, which its outer flow already spreads, and are not followed: their
/// outer connection stays whole on one thread. UDP tunnels are recognised by their destination port alone (the
/// side a mirror or tunnel endpoint sends to), without the checks the engine makes.
pub fn aggregating_tunnel_inner<'a>(ip: &super::IpDatagram<'a>) -> Option<&'a [u8]> {
    const UDP_HEADER: usize = 8;
    match ip.proto {
        4 | 41 => Some(ip.payload),
        47 => match parse_gre(ip.payload).ok()? {
            GrePayload::Ip(inner) | GrePayload::Pptp { packet: inner, .. } => Some(inner),
            GrePayload::Ethernet(frame) => decode_link(LinkType::Ethernet, frame).ok(),
            GrePayload::Ieee80211(frame) => decode_link(LinkType::Ieee80211, frame).ok(),
        },
        17 => {
            let dst_port = u16::from_be_bytes([*ip.payload.get(2)?, *ip.payload.get(3)?]);
            let tunnel = match UdpTunnel::BY_PORT.iter().find(|(port, _)| *port == dst_port)?.1 {
                tunnel @ (UdpTunnel::Vxlan | UdpTunnel::Geneve | UdpTunnel::Gtpv1) => tunnel,
                UdpTunnel::Teredo | UdpTunnel::Ayiya => return None,
            };
            match tunnel.parse(ip.payload.get(UDP_HEADER..)?) {
                TunnelPayload::Inner(inner) => Some(inner),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An inner Ethernet frame's IP packet, or a confirmed header whose frame Zeek cannot take further.
fn ethernet_inner(frame: &[u8]) -> TunnelPayload<'_> {
    decode_link(LinkType::Ethernet, frame).map_or(TunnelPayload::Confirmed { weird: None }, TunnelPayload::Inner)
}

/// A packet analyzer's violation without a weird.
fn violation(reason: &'static str) -> TunnelPayload<'static> {
    TunnelPayload::Violation { reason, weird: None }
}

/// VXLAN (RFC 7348): 8 bytes with the 'I' flag, then an Ethernet frame.
fn vxlan(p: &[u8]) -> TunnelPayload<'_> {
    match p.split_at_checked(8) {
        Some((header, _)) if header[0] & 0x08 == 0 => violation("VXLAN 'I' flag not set"),
        Some((_, [])) => TunnelPayload::Confirmed { weird: Some("vxlan_empty_packet") },
        Some((_, frame)) => ethernet_inner(frame),
        None => violation("VXLAN header truncation"),
    }
}

/// Geneve (RFC 8926): version 0, 8 bytes plus the options' length, then the packet of the protocol type.
fn geneve(p: &[u8]) -> TunnelPayload<'_> {
    let Some(header) = p.first_chunk::<8>() else { return violation("Geneve header truncation") };
    let version = header[0] >> 6;
    if version != 0 {
        return TunnelPayload::Ignored { weird: "geneve_invalid_version", addl: version.to_string() };
    }
    let Some(inner) = p.get(8 + usize::from(header[0] & 0x3f) * 4..) else {
        return violation("Geneve option header truncation");
    };
    if inner.is_empty() {
        return TunnelPayload::Confirmed { weird: Some("geneve_empty_packet") };
    }
    match u16::from_be_bytes([header[2], header[3]]) {
        GENEVE_ETHERNET => ethernet_inner(inner),
        ip if GENEVE_IP.contains(&ip) => TunnelPayload::Inner(inner),
        _ => TunnelPayload::Confirmed { weird: None },
    }
}

/// AYIYA (Anything In Anything): 8 bytes plus the identity and signature, then, for a "forward" message, the
/// packet of the next header.
fn ayiya(p: &[u8]) -> TunnelPayload<'_> {
    let Some(header) = p.first_chunk::<8>() else { return violation("Truncated AYIYA") };
    let identity_len = 1usize << (header[0] >> 4);
    let signature_len = usize::from(header[1] >> 4) * 4;
    let Some(inner) = p.get(8 + identity_len + signature_len..) else { return violation("Truncated AYIYA") };
    const FORWARD: u8 = 1;
    if header[2] & 0x0f != FORWARD {
        return TunnelPayload::Refused;
    }
    if inner.is_empty() {
        TunnelPayload::Confirmed { weird: Some("ayiya_empty_packet") }
    } else if AYIYA_IP.contains(&header[3]) {
        TunnelPayload::Inner(inner)
    } else {
        TunnelPayload::Confirmed { weird: None }
    }
}

/// Zeek's AYIYA detection on other ports (the old DPD signature's bytes).
fn looks_like_ayiya(payload: &[u8]) -> bool {
    payload.len() >= 3 && payload[1] == 0x52 && payload[2] == 0x11
}

/// Teredo.cc's `DetectProtocol`, which Zeek's UDP analyzer asks of every datagram on a port no analyzer registers:
/// an IPv6 header from or to the Teredo prefix 2001:0::/32 at the start (the old DPD signature, whose `.` matches
/// any byte but a newline), or an origin indication, after an authentication header or not, followed by what
/// looks like an IPv6 header. The datagram need not parse: one that does not is the Teredo analyzer's violation.
fn looks_like_teredo(data: &[u8]) -> bool {
    let [b0, b1, b2, b3] = match data.first_chunk::<4>() {
        Some(&head) if data.len() >= 40 => head,
        _ => return false,
    };
    if b0 >> 4 != 6 && (b0 != 0 || (b1 != 0 && b1 != 1)) {
        return false;
    }
    if teredo_signature(data) {
        return true;
    }
    let mut rest = data;
    let mut tag = u16::from(b1);
    if tag == 1 {
        // An authentication header: the client id and value, the nonce and the confirmation byte.
        let Some(after_auth) = data.get(13 + usize::from(b2) + usize::from(b3)..) else { return false };
        if after_auth.len() < 40 {
            return false;
        }
        rest = after_auth;
        tag = u16::from_be_bytes([rest[0], rest[1]]);
    }
    if tag != 0 {
        return false;
    }
    // An origin indication, then at least an IPv6 header's worth of bytes starting with version 6.
    rest.get(8..).is_some_and(|ipv6| ipv6.len() >= 40 && ipv6[0] >> 4 == 6)
}

/// The old DPD signature `/^([\x60-\x6f].{7}\x20\x01\x00\x00.{28})|([\x60-\x6f].{23}\x20\x01\x00\x00).{12}/`
/// over the first 40 bytes (Zeek's `.` matches any byte but `\n`).
fn teredo_signature(data: &[u8]) -> bool {
    const TEREDO_PREFIX: [u8; 4] = [0x20, 0x01, 0x00, 0x00];
    let Some(h) = data.first_chunk::<40>() else { return false };
    let no_newline = |r: std::ops::Range<usize>| h[r].iter().all(|&b| b != b'\n');
    (0x60..=0x6f).contains(&h[0])
        && ((h[8..12] == TEREDO_PREFIX && no_newline(1..8) && no_newline(12..40))
            || (h[24..28] == TEREDO_PREFIX && no_newline(1..24) && no_newline(28..40)))
}

/// Why Teredo.cc refuses a datagram: its violation's reason, and the weird its header parser raised, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct TeredoFailure {
    pub reason: &'static str,
    pub weird: Option<&'static str>,
}

/// The IPv6 packet inside a Teredo datagram, read as Teredo.cc's `TeredoEncapsulation::DoParse` and
/// `IP::ParsePacket` read it: any order of at most one authentication header and one origin indication (not an
/// authentication after an origin), then an IPv6 header whose length the rest of the datagram must match.
fn teredo_inner(datagram: &[u8]) -> Result<&[u8], TeredoFailure> {
    let bad = |weird| TeredoFailure { reason: "Bad Teredo encapsulation", weird };
    let (mut p, mut found_origin, mut found_auth) = (datagram, false, false);
    let ipv6 = loop {
        let Some(tag) = p.first_chunk::<2>().map(|t| u16::from_be_bytes(*t)) else {
            return Err(bad(Some("truncated_Teredo")));
        };
        match tag {
            0 if found_origin => return Err(bad(None)),
            0 => {
                p = p.get(8..).ok_or(bad(Some("truncated_Teredo_origin_indication")))?;
                found_origin = true;
            }
            1 if found_origin || found_auth => return Err(bad(None)),
            1 => {
                let truncated = bad(Some("truncated_Teredo_authentication"));
                let [_, _, id_len, au_len] = *p.first_chunk::<4>().ok_or(truncated)?;
                // The client identifier and authentication value, then an 8-byte nonce and the confirmation byte.
                let header_len = 4 + usize::from(id_len) + usize::from(au_len) + 8 + 1;
                p = p.get(header_len..).ok_or(bad(Some("truncated_Teredo_authentication")))?;
                found_auth = true;
            }
            tag if tag >> 12 == 6 => {
                if p.len() < 40 {
                    return Err(bad(Some("truncated_IPv6_in_Teredo")));
                }
                break p;
            }
            _ => return Err(bad(None)),
        }
    };
    // `IP::ParsePacket`: the datagram must end with the IPv6 packet, except that a bubble may carry bytes after
    // its header (the weird `Teredo_bubble_with_payload`).
    let total = 40 + usize::from(u16::from_be_bytes([ipv6[4], ipv6[5]]));
    if ipv6.len() < total {
        Err(TeredoFailure { reason: "Truncated Teredo or invalid inner IP version", weird: None })
    } else if ipv6.len() > total && !is_teredo_bubble_with_payload(ipv6) {
        Err(TeredoFailure { reason: "Teredo payload length", weird: None })
    } else {
        Ok(ipv6)
    }
}

/// A bubble (No Next Header, payload length 0) with bytes after its IPv6 header: Teredo.cc lets it through with
/// the connection weird `Teredo_bubble_with_payload`.
pub fn is_teredo_bubble_with_payload(inner_ipv6: &[u8]) -> bool {
    is_teredo_bubble(inner_ipv6) && inner_ipv6.get(4..6) == Some(&[0, 0]) && inner_ipv6.len() > 40
}

/// A Teredo bubble: an IPv6 header with nothing after it (No Next Header), sent to open NAT mappings. It makes no
/// connection inside the tunnel, so Zeek's tunnel framework (which logs DISCOVER on a new inner connection) does not
/// see the tunnel yet.
pub fn is_teredo_bubble(inner_ipv6: &[u8]) -> bool {
    const NO_NEXT_HEADER: u8 = 59;
    inner_ipv6.get(6) == Some(&NO_NEXT_HEADER)
}

/// The length of a GTPv1 header with `flags`: 8 bytes, 12 with the optional fields, and the extension headers the
/// optional fields' next type starts (each `4 * length` bytes, its last byte the next type).
fn gtpv1_header_len(flags: u8, p: &[u8]) -> Option<usize> {
    const EXTENSION_HEADERS: u8 = 0x04;
    if flags & 0x07 == 0 {
        return Some(8);
    }
    let mut off = 12;
    let mut next_ext = if flags & EXTENSION_HEADERS != 0 { *p.get(11)? } else { 0 };
    while next_ext != 0 {
        let len = usize::from(*p.get(off)?) * 4;
        if len == 0 {
            return None;
        }
        next_ext = *p.get(off + len - 1)?;
        off += len;
    }
    Some(off)
}

/// A GTPv1 message as Zeek's GTPv1 analyzer takes it (gtpv1-protocol.pac, gtpv1-analyzer.pac, GTPv1.cc): the
/// 8-byte header, the optional fields when any of E, S and PN is set, extension headers only when E is; a version
/// other than 1 is a violation, GTP' (no PT flag) and messages other than G-PDU (255) are passed over, and a G-PDU
/// must carry one whole IPv4 or IPv6 packet (`IP::ParsePacket`). A header binpac could not parse (cut short, an
/// extension of length 0) is passed over too: Zeek's violation there carries binpac's exception text.
fn gtpv1(p: &[u8]) -> TunnelPayload<'_> {
    const PROTOCOL_TYPE_GTP: u8 = 0x10;
    const G_PDU: u8 = 255;
    let Some(&[flags, msg_type, ..]) = p.first_chunk::<8>() else { return TunnelPayload::Refused };
    let Some(packet) = gtpv1_header_len(flags, p).and_then(|len| p.get(len..)) else {
        return TunnelPayload::Refused;
    };
    // The information elements of messages 16-21 are parsed before the version is looked at.
    if flags >> 5 != 1 {
        return if (16..=21).contains(&msg_type) { TunnelPayload::Refused } else { violation("GTPv1 bad Version") };
    }
    if flags & PROTOCOL_TYPE_GTP == 0 || msg_type != G_PDU {
        return TunnelPayload::Refused;
    }
    // `process_g_pdu`: at least an IPv4 header's worth, of IP version 4 or 6.
    if packet.len() < 20 {
        return violation("Truncated GTPv1");
    }
    let total = match packet[0] >> 4 {
        4 => usize::from(u16::from_be_bytes([packet[2], packet[3]])),
        6 if packet.len() < 40 => return violation("Truncated GTPv1"),
        6 => 40 + usize::from(u16::from_be_bytes([packet[4], packet[5]])),
        _ => return violation("non-IP packet in GTPv1"),
    };
    match packet.len().cmp(&total) {
        std::cmp::Ordering::Less => violation("Truncated GTPv1"),
        std::cmp::Ordering::Greater => violation("GTPv1 payload length"),
        std::cmp::Ordering::Equal => TunnelPayload::Inner(packet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPV4_PACKET: [u8; 20] = [0x45, 0, 0, 20, 0, 1, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];

    fn ethernet_ipv4() -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend_from_slice(&IPV4_PACKET);
        frame
    }

    fn geneve_header(options_words: u8, protocol: u16) -> Vec<u8> {
        let mut h = vec![options_words & 0x3f, 0];
        h.extend_from_slice(&protocol.to_be_bytes());
        h.extend_from_slice(&[0, 0, 42, 0]);
        h.extend(std::iter::repeat_n(0xaa, usize::from(options_words) * 4));
        h
    }

    #[test]
    fn geneve_carries_ethernet_or_ip_after_its_options() {
        let with_options = [geneve_header(2, GENEVE_ETHERNET), ethernet_ipv4()].concat();
        assert_eq!(UdpTunnel::Geneve.parse(&with_options), TunnelPayload::Inner(&IPV4_PACKET[..]));
        let raw_ip = [geneve_header(0, 0x0800), IPV4_PACKET.to_vec()].concat();
        assert_eq!(UdpTunnel::Geneve.parse(&raw_ip), TunnelPayload::Inner(&IPV4_PACKET[..]));
        let ipv6_type = [geneve_header(0, 0x86DD), IPV4_PACKET.to_vec()].concat();
        assert_eq!(UdpTunnel::Geneve.parse(&ipv6_type), TunnelPayload::Inner(&IPV4_PACKET[..]));
        // The old registration's typo is no protocol type Zeek maps: confirmed, not analysed.
        let typo = [geneve_header(0, 0x08DD), IPV4_PACKET.to_vec()].concat();
        assert_eq!(UdpTunnel::Geneve.parse(&typo), TunnelPayload::Confirmed { weird: None });
    }

    /// Geneve.cc: other versions are passed over with the weird `geneve_invalid_version`; a header or options cut
    /// short are violations.
    #[test]
    fn geneve_refuses_other_versions_and_short_options_and_flags_empty_packets() {
        let mut version1 = [geneve_header(0, 0x0800), IPV4_PACKET.to_vec()].concat();
        version1[0] |= 0x40;
        let invalid_version = TunnelPayload::Ignored { weird: "geneve_invalid_version", addl: "1".into() };
        assert_eq!(UdpTunnel::Geneve.parse(&version1), invalid_version);
        let cut_options = &geneve_header(3, GENEVE_ETHERNET)[..15];
        assert_eq!(UdpTunnel::Geneve.parse(cut_options), violation("Geneve option header truncation"));
        assert_eq!(
            UdpTunnel::Geneve.parse(&geneve_header(1, 0x0800)),
            TunnelPayload::Confirmed { weird: Some("geneve_empty_packet") }
        );
        assert_eq!(UdpTunnel::Geneve.parse(&[0; 7]), violation("Geneve header truncation"));
    }

    /// An outer IPv4 datagram of protocol `proto` from 192.0.2.1 to 192.0.2.2 around `payload`.
    fn outer(proto: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
        let header = [0x45, 0, len[0], len[1], 0, 0, 0, 0, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
        [&header[..], payload].concat()
    }

    fn udp_to(port: u16, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(8 + payload.len()).unwrap().to_be_bytes();
        let [p0, p1] = port.to_be_bytes();
        [&[0xc3, 0x50, p0, p1, len[0], len[1], 0, 0][..], payload].concat()
    }

    fn inner_of(datagram: &[u8]) -> Option<&[u8]> {
        aggregating_tunnel_inner(&super::super::decode_ip(datagram, false).unwrap())
    }

    /// Sharding looks inside the tunnels that carry many hosts' flows, by the destination port for UDP ones, and
    /// not inside Teredo and AYIYA (one host's traffic).
    #[test]
    fn aggregating_tunnels_give_their_inner_packet() {
        let vxlan = [&[0x08, 0, 0, 0, 0, 0, 7, 0][..], &ethernet_ipv4()].concat();
        let geneve = [geneve_header(1, 0x0800), IPV4_PACKET.to_vec()].concat();
        let gtpu = [&[0x30, 255, 0, 20, 0, 0, 0, 1][..], &IPV4_PACKET].concat();
        let gre_teb = [&[0, 0, 0x65, 0x58][..], &ethernet_ipv4()].concat();
        for datagram in [
            outer(17, &udp_to(4789, &vxlan)),
            outer(17, &udp_to(6081, &geneve)),
            outer(17, &udp_to(2152, &gtpu)),
            outer(47, &gre_teb),
            outer(4, &IPV4_PACKET),
        ] {
            assert_eq!(inner_of(&datagram), Some(&IPV4_PACKET[..]), "{datagram:02x?}");
        }
        let ayiya = [ayiya_header(4, 5, 1, 4), IPV4_PACKET.to_vec()].concat();
        assert_eq!(inner_of(&outer(17, &udp_to(5072, &ayiya))), None);
        assert_eq!(inner_of(&outer(17, &udp_to(3544, &IPV4_PACKET))), None, "Teredo");
        assert_eq!(inner_of(&outer(17, &udp_to(53, &vxlan))), None, "another port");
        assert_eq!(inner_of(&outer(17, &udp_to(4789, &vxlan[..6]))), None, "a VXLAN header cut short");
        assert_eq!(inner_of(&outer(6, &udp_to(4789, &vxlan))), None, "TCP");
    }

    fn ayiya_header(identity_shift: u8, signature_words: u8, opcode: u8, next_header: u8) -> Vec<u8> {
        let mut h = vec![identity_shift << 4 | 1, signature_words << 4 | 2, 0x10 | opcode, next_header, 0, 0, 0, 0];
        h.extend(std::iter::repeat_n(0x11, (1 << identity_shift) + usize::from(signature_words) * 4));
        h
    }

    #[test]
    fn ayiya_forwards_ip_after_identity_and_signature() {
        let forward = [ayiya_header(4, 5, 1, 4), IPV4_PACKET.to_vec()].concat();
        assert_eq!(UdpTunnel::Ayiya.parse(&forward), TunnelPayload::Inner(&IPV4_PACKET[..]));
        let other_next_header = [ayiya_header(4, 5, 1, 17), IPV4_PACKET.to_vec()].concat();
        assert_eq!(UdpTunnel::Ayiya.parse(&other_next_header), TunnelPayload::Confirmed { weird: None });
        assert_eq!(
            UdpTunnel::Ayiya.parse(&ayiya_header(4, 5, 1, 41)),
            TunnelPayload::Confirmed { weird: Some("ayiya_empty_packet") }
        );
    }

    /// AYIYA.cc: other opcodes are passed over; a header cut short, before or within the identity and signature,
    /// is the violation `Truncated AYIYA`.
    #[test]
    fn ayiya_passes_over_other_opcodes_and_cut_headers() {
        let echo = [ayiya_header(4, 5, 0, 41), IPV4_PACKET.to_vec()].concat();
        assert_eq!(UdpTunnel::Ayiya.parse(&echo), TunnelPayload::Refused);
        assert_eq!(UdpTunnel::Ayiya.parse(&ayiya_header(4, 5, 1, 41)[..20]), violation("Truncated AYIYA"));
        assert_eq!(UdpTunnel::Ayiya.parse(&ayiya_header(4, 5, 1, 41)[..7]), violation("Truncated AYIYA"));
    }

    #[test]
    fn vxlan_needs_its_flag_and_flags_an_empty_packet() {
        let frame = [vec![0x08, 0, 0, 0, 0, 0, 42, 0], ethernet_ipv4()].concat();
        assert_eq!(UdpTunnel::Vxlan.parse(&frame), TunnelPayload::Inner(&IPV4_PACKET[..]));
        let mut no_flag = frame.clone();
        no_flag[0] = 0;
        assert_eq!(UdpTunnel::Vxlan.parse(&no_flag), violation("VXLAN 'I' flag not set"));
        assert_eq!(UdpTunnel::Vxlan.parse(&frame[..8]), TunnelPayload::Confirmed { weird: Some("vxlan_empty_packet") });
        assert_eq!(UdpTunnel::Vxlan.parse(&frame[..7]), violation("VXLAN header truncation"));
    }

    #[test]
    fn gtpu_follows_extension_headers_only_with_the_e_flag() {
        let g_pdu = |flags: u8, optional: [u8; 4], ext: &[u8]| {
            let mut g = vec![flags, 255, 0, 0, 0, 0, 0, 1];
            g.extend_from_slice(&optional);
            g.extend_from_slice(ext);
            g.extend_from_slice(&IPV4_PACKET);
            g
        };
        // S only: the optional fields' last byte is not an extension type to follow.
        let sequence_only = g_pdu(0x32, [0, 7, 0, 0x85], &[]);
        assert_eq!(UdpTunnel::Gtpv1.parse(&sequence_only), TunnelPayload::Inner(&IPV4_PACKET[..]));
        let with_extension = g_pdu(0x34, [0, 0, 0, 0x85], &[1, 0x00, 0x09, 0]);
        assert_eq!(UdpTunnel::Gtpv1.parse(&with_extension), TunnelPayload::Inner(&IPV4_PACKET[..]));
        let gtp_prime = g_pdu(0x22, [0, 7, 0, 0], &[]);
        assert_eq!(UdpTunnel::Gtpv1.parse(&gtp_prime), TunnelPayload::Refused);
        assert_eq!(UdpTunnel::classify(2123, &[]), Some(UdpTunnel::Gtpv1));
    }

    /// GTPv1.cc and gtpv1-analyzer.pac: a version other than 1 (for a message whose body is not parsed into
    /// information elements), a G-PDU shorter than an IPv4 header or not IP, and an inner packet the datagram cuts
    /// or pads are violations; other messages are passed over.
    #[test]
    fn gtpv1_violations_are_zeeks() {
        let g_pdu = |flags: u8, msg_type: u8, inner: &[u8]| [&[flags, msg_type, 0, 0, 0, 0, 0, 1][..], inner].concat();
        assert_eq!(UdpTunnel::Gtpv1.parse(&g_pdu(0x50, 255, &IPV4_PACKET)), violation("GTPv1 bad Version"));
        // A create PDP context request of version 2: its elements come first (not followed here).
        assert_eq!(UdpTunnel::Gtpv1.parse(&g_pdu(0x50, 16, &[])), TunnelPayload::Refused);
        assert_eq!(UdpTunnel::Gtpv1.parse(&g_pdu(0x30, 1, &IPV4_PACKET)), TunnelPayload::Refused);
        assert_eq!(UdpTunnel::Gtpv1.parse(&g_pdu(0x30, 255, &IPV4_PACKET[..19])), violation("Truncated GTPv1"));
        let mut not_ip = IPV4_PACKET;
        not_ip[0] = 0x55;
        assert_eq!(UdpTunnel::Gtpv1.parse(&g_pdu(0x30, 255, &not_ip)), violation("non-IP packet in GTPv1"));
        let mut cut = IPV4_PACKET;
        cut[3] = 21;
        assert_eq!(UdpTunnel::Gtpv1.parse(&g_pdu(0x30, 255, &cut)), violation("Truncated GTPv1"));
        let padded = [&IPV4_PACKET[..], &[0]].concat();
        assert_eq!(UdpTunnel::Gtpv1.parse(&g_pdu(0x30, 255, &padded)), violation("GTPv1 payload length"));
        let ipv6_header_only = [&[0x60, 0, 0, 0, 0, 0, 59, 64][..], &[0; 32]].concat();
        assert_eq!(
            UdpTunnel::Gtpv1.parse(&g_pdu(0x30, 255, &ipv6_header_only)),
            TunnelPayload::Inner(&ipv6_header_only[..])
        );
        assert_eq!(UdpTunnel::Gtpv1.parse(&g_pdu(0x30, 255, &ipv6_header_only[..39])), violation("Truncated GTPv1"));
    }

    /// Teredo.cc's `DetectProtocol`: the signature (an IPv6 header with the Teredo prefix as source or destination,
    /// no newline where the signature has `.`), or an origin indication (after an authentication header or not) and
    /// an IPv6 version nibble; nothing shorter than 40 bytes. A datagram it finds need not parse.
    #[test]
    fn teredo_is_detected_as_teredo_cc_detects_it() {
        let teredo_address = [0x20, 0x01, 0, 0, 0x41, 0x37, 0x9e, 0x50, 0x80, 0, 0xf1, 0x2a, 0xb9, 0xc8, 0x28, 0x15];
        let other_address = [0x20, 0x01, 0x48, 0x60, 0, 0, 0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x68];
        let packet =
            |src: [u8; 16], dst: [u8; 16]| [&[0x60, 0, 0, 0, 0, 8, 17, 64][..], &src, &dst, &[0x61; 8]].concat();
        let from_teredo_client = packet(teredo_address, other_address);
        assert!(looks_like_teredo(&from_teredo_client));
        assert!(looks_like_teredo(&packet(other_address, teredo_address)), "the prefix as destination");
        let mut newline = from_teredo_client.clone();
        newline[30] = b'\n';
        assert!(!looks_like_teredo(&newline), "a newline where the signature has `.`, and no origin indication");
        // The header parser's test packet has a newline (byte 10) in its source address.
        assert!(!looks_like_teredo(&ipv6(8, &[0x61; 8])));
        let mut neither = from_teredo_client.clone();
        neither[8..12].copy_from_slice(&[0x20, 0x02, 0, 0]);
        neither[24..28].copy_from_slice(&[0x20, 0x02, 0, 0]);
        assert!(!looks_like_teredo(&neither), "no Teredo address");
        // An origin indication before any IPv6 header, and an authentication header before that.
        let origin = [0, 0, 0x12, 0x34, 1, 2, 3, 4];
        let link_local = [&[0x60, 0, 0, 0, 0, 0, 59, 255][..], &[0xfe, 0x80], &[0; 30]].concat();
        assert!(looks_like_teredo(&[&origin[..], &link_local].concat()));
        let auth = [&[0, 1, 2, 1][..], b"id", b"v", &[0; 8], &[0]].concat();
        assert!(looks_like_teredo(&[&auth[..], &origin, &link_local].concat()));
        assert!(!looks_like_teredo(&[&auth[..], &link_local].concat()), "authentication without an origin");
        // Detection only: an origin indication before 40 bytes that are no valid IPv6 packet still counts.
        let mut not_ipv6 = [&origin[..], &[0x6f; 40]].concat();
        assert!(looks_like_teredo(&not_ipv6));
        assert!(matches!(UdpTunnel::Teredo.parse(&not_ipv6), TunnelPayload::Violation { .. }));
        not_ipv6.truncate(47);
        assert!(!looks_like_teredo(&not_ipv6), "fewer than 40 bytes after the origin indication");
        assert!(!looks_like_teredo(&from_teredo_client[..39]));
    }

    #[test]
    fn registered_ports_come_before_detection() {
        let ayiya_bytes = [0x41, 0x52, 0x11, 41, 0, 0, 0, 0];
        assert_eq!(UdpTunnel::classify(6081, &ayiya_bytes), Some(UdpTunnel::Geneve));
        assert_eq!(UdpTunnel::classify(9999, &ayiya_bytes), Some(UdpTunnel::Ayiya));
        assert_eq!(UdpTunnel::classify(53, &[0; 12]), None);
        // Only the responder's port counts: a DNS query from port 5072 is no AYIYA packet.
        assert_eq!(UdpTunnel::classify(53, &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0]), None);
    }

    fn gre(flags: u16, proto: u16, extra: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut g = flags.to_be_bytes().to_vec();
        g.extend_from_slice(&proto.to_be_bytes());
        for flag in [GRE_CHECKSUM, GRE_KEY, GRE_SEQUENCE, GRE_ACK] {
            if flags & flag != 0 {
                g.extend_from_slice(&[0xee; 4]);
            }
        }
        g.extend_from_slice(extra);
        g.extend_from_slice(payload);
        g
    }

    #[test]
    fn gre_carries_ip_ethernet_and_pptp() {
        let frame = ethernet_ipv4();
        assert_eq!(parse_gre(&gre(GRE_KEY, 0x0800, &[], &IPV4_PACKET)), Ok(GrePayload::Ip(&IPV4_PACKET[..])));
        assert_eq!(parse_gre(&gre(0, GRE_TRANSPARENT_ETHERNET, &[], &frame)), Ok(GrePayload::Ethernet(&frame[..])));
        let pptp = gre(0x3081 | GRE_ACK, GRE_PPP, &[0xff, 0x03, 0x00, 0x21], &IPV4_PACKET);
        assert_eq!(parse_gre(&pptp), Ok(GrePayload::Pptp { packet: &IPV4_PACKET[..], proto: 4 }));
        let pptp_v6 = gre(0x3001, GRE_PPP, &[0xff, 0x03, 0x00, 0x57], &IPV4_PACKET);
        assert_eq!(parse_gre(&pptp_v6), Ok(GrePayload::Pptp { packet: &IPV4_PACKET[..], proto: 41 }));
        let pptp_lcp = gre(0x3001, GRE_PPP, &[0xff, 0x03, 0xc0, 0x21], &IPV4_PACKET);
        assert_eq!(parse_gre(&pptp_lcp), Err(GreWeird::new("non_ip_packet_in_encap")));
    }

    /// GRE.cc of the 2026-08-21 build reads ERSPAN itself (no ERSPAN analyzer, no ERSPAN weirds: zeek/zeek#5847
    /// came later): type I without the sequence flag, type II's 8 bytes with it, type III's 12 bytes and its
    /// optional 8; its lengths are checked with the Ethernet header's 14 bytes (`truncated_GRE`).
    #[test]
    fn gre_carries_erspan_types_one_to_three() {
        let frame = ethernet_ipv4();
        let type1 = gre(0, GRE_ERSPAN_1_2, &[], &frame);
        assert_eq!(parse_gre(&type1), Ok(GrePayload::Ethernet(&frame[..])));
        let type2 = gre(GRE_SEQUENCE, GRE_ERSPAN_1_2, &[0x10, 0, 0, 1, 0, 0, 0, 0], &frame);
        assert_eq!(parse_gre(&type2), Ok(GrePayload::Ethernet(&frame[..])));
        // The version in the header is not read: a type III header under 0x88BE is 8 bytes of type II's.
        let type2_odd_version = gre(GRE_SEQUENCE, GRE_ERSPAN_1_2, &[0x30, 0, 0, 1, 0, 0, 0, 0], &frame);
        assert_eq!(parse_gre(&type2_odd_version), Ok(GrePayload::Ethernet(&frame[..])));
        // Type II with more than 14 bytes after GRE but fewer than its header and an Ethernet header.
        let type2_short = gre(GRE_SEQUENCE, GRE_ERSPAN_1_2, &[0x10, 0, 0, 1, 0, 0, 0, 0], &frame[..10]);
        assert_eq!(parse_gre(&type2_short), Err(GreWeird::new("truncated_GRE")));
        let type3 = gre(GRE_SEQUENCE, GRE_ERSPAN_3, &[0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], &frame);
        assert_eq!(parse_gre(&type3), Ok(GrePayload::Ethernet(&frame[..])));
        let mut with_subheader = [0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1].to_vec();
        with_subheader.extend_from_slice(&[0x77; 8]);
        let type3_optional = gre(GRE_SEQUENCE, GRE_ERSPAN_3, &with_subheader, &frame);
        assert_eq!(parse_gre(&type3_optional), Ok(GrePayload::Ethernet(&frame[..])));
        assert_eq!(parse_gre(&gre(0, GRE_ERSPAN_3, &[0; 12], &frame[..2])), Err(GreWeird::new("truncated_GRE")));
    }

    /// The Aruba types by GRE.cc's masks (0x8200-style with a zero low nibble, 0x8300-style up to 0x8370, 0x9000),
    /// with GRE's own length check.
    #[test]
    fn gre_from_aruba_carries_wifi_frames() {
        let frame = [0x08, 0x01, 0, 0, 1, 2, 3];
        assert_eq!(parse_gre(&gre(0, 0x8210, &[], &frame)), Ok(GrePayload::Ieee80211(&frame[..])));
        assert_eq!(parse_gre(&gre(0, 0x9000, &[], &frame)), Ok(GrePayload::Ieee80211(&frame[..])));
        assert_eq!(parse_gre(&gre(0, 0x8a00, &[], &frame)), Ok(GrePayload::Ieee80211(&frame[..])));
        assert_eq!(parse_gre(&gre(0, 0x8381, &[], &frame)), Ok(GrePayload::Ip(&frame[..])));
        assert_eq!(parse_gre(&gre(0, 0x8200, &[], &[])), Err(GreWeird::new("truncated_GRE")));
    }

    #[test]
    fn gre_weirds_are_zeeks() {
        let weird = |p: Vec<u8>| parse_gre(&p).unwrap_err();
        assert_eq!(
            weird(gre(0x0002, 0x0800, &[], &IPV4_PACKET)),
            GreWeird { name: "unknown_gre_version", addl: Some("version=2".into()) }
        );
        assert_eq!(
            weird(gre(0x0001, 0x0800, &[0; 4], &IPV4_PACKET)),
            GreWeird { name: "egre_protocol_type", addl: Some("proto=2048".into()) }
        );
        assert_eq!(weird(gre(GRE_ROUTING, 0x0800, &[], &IPV4_PACKET)).name, "gre_routing");
        assert_eq!(weird(gre(0x0008, 0x0800, &[], &IPV4_PACKET)).name, "unknown_gre_flags");
        assert_eq!(weird(vec![0, 0, 8]).name, "truncated_GRE");
        assert_eq!(weird(gre(GRE_KEY, 0x0800, &[], &[])[..6].to_vec()).name, "truncated_GRE");
        // Any other protocol type (ARP, MPLS) is no GRE weird: its payload goes on as a raw IP packet.
        assert_eq!(parse_gre(&gre(0, 0x0806, &[], &IPV4_PACKET)), Ok(GrePayload::Ip(&IPV4_PACKET[..])));
        assert_eq!(parse_gre(&gre(0, 0x8847, &[], &[0, 1, 0x11, 64])), Ok(GrePayload::Ip(&[0, 1, 0x11, 64][..])));
    }

    /// An IPv6 header (version 6, `payload_len`, next header UDP) and `body`.
    fn ipv6(payload_len: u16, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend(payload_len.to_be_bytes());
        p.extend([17, 64]);
        p.extend([0x20, 0x01, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        p.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(body);
        p
    }

    fn teredo_failure(reason: &'static str, weird: Option<&'static str>) -> TunnelPayload<'static> {
        TunnelPayload::Violation { reason, weird }
    }

    /// Teredo.cc's `DoParse`: an authentication header (tag 1: id and value lengths, the id, the value, an 8-byte
    /// nonce, a confirmation byte), an origin indication (tag 0, 8 bytes), then the IPv6 packet.
    #[test]
    fn teredo_reads_its_headers_as_zeek_does() {
        let inner = ipv6(4, &[1, 2, 3, 4]);
        let origin = [0, 0, 0x12, 0x34, 1, 2, 3, 4];
        let auth = [&[0, 1, 2, 1][..], b"id", b"v", &[0; 8], &[0]].concat();
        for headers in [vec![], origin.to_vec(), auth.clone(), [auth.clone(), origin.to_vec()].concat()] {
            let datagram = [headers.clone(), inner.clone()].concat();
            assert_eq!(UdpTunnel::Teredo.parse(&datagram), TunnelPayload::Inner(&inner), "{headers:02x?}");
        }
        let bad = "Bad Teredo encapsulation";
        // Nothing, or one byte: no tag.
        assert_eq!(UdpTunnel::Teredo.parse(&[]), teredo_failure(bad, Some("truncated_Teredo")));
        assert_eq!(UdpTunnel::Teredo.parse(&[0x60]), teredo_failure(bad, Some("truncated_Teredo")));
        // An origin indication cut short; an authentication header without its lengths, or cut in its nonce.
        let cut_origin = [0, 0, 0x12, 0x34, 1];
        assert_eq!(
            UdpTunnel::Teredo.parse(&cut_origin),
            teredo_failure(bad, Some("truncated_Teredo_origin_indication"))
        );
        let cut_auth = [0, 1, 2];
        assert_eq!(UdpTunnel::Teredo.parse(&cut_auth), teredo_failure(bad, Some("truncated_Teredo_authentication")));
        let cut_nonce = &auth[..auth.len() - 2];
        assert_eq!(UdpTunnel::Teredo.parse(cut_nonce), teredo_failure(bad, Some("truncated_Teredo_authentication")));
        // An IPv6 header shorter than 40 bytes (after an origin indication: the weird comes from the IPv6 tag).
        let short_ipv6 = [&origin[..], &inner[..39]].concat();
        assert_eq!(UdpTunnel::Teredo.parse(&short_ipv6), teredo_failure(bad, Some("truncated_IPv6_in_Teredo")));
        // Two origin indications, an authentication after an origin, or an unknown tag: no weird.
        for datagram in [
            [&origin[..], &origin, &inner].concat(),
            [&origin[..], &auth, &inner].concat(),
            [&auth[..], &auth, &inner].concat(),
            [&[0x45, 0][..], &inner].concat(),
        ] {
            assert_eq!(UdpTunnel::Teredo.parse(&datagram), teredo_failure(bad, None), "{datagram:02x?}");
        }
        // `IP::ParsePacket`: fewer bytes than the IPv6 payload length says, or more (not a bubble).
        let truncated = ipv6(5, &[1, 2, 3, 4]);
        let reason = "Truncated Teredo or invalid inner IP version";
        assert_eq!(UdpTunnel::Teredo.parse(&truncated), teredo_failure(reason, None));
        let padded = ipv6(3, &[1, 2, 3, 4]);
        assert_eq!(UdpTunnel::Teredo.parse(&padded), teredo_failure("Teredo payload length", None));
        // A bubble (No Next Header, payload length 0) may carry bytes.
        let mut bubble = ipv6(0, &[0; 8]);
        bubble[6] = 59;
        assert_eq!(UdpTunnel::Teredo.parse(&bubble), TunnelPayload::Inner(&bubble));
    }

    #[test]
    fn no_header_bytes_make_a_panic() {
        for len in 0..64 {
            for fill in [0x00, 0x3f, 0x41, 0xff] {
                let bytes = vec![fill; len];
                let _ = parse_gre(&bytes);
                for t in UdpTunnel::ALL {
                    let _ = t.parse(&bytes);
                }
            }
        }
    }
}
