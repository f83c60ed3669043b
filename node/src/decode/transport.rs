//! TCP, UDP and ICMP headers, and the Internet checksum.

use std::net::IpAddr;

use super::{DecodeError, IpDatagram};

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
    Tcp {
        hdr: TcpHeader,
        payload: &'a [u8],
        payload_len: usize,
    },
    /// A TCP segment whose data offset Zeek's TCP analyzer refuses: below five words (`bad_TCP_header_len`), or
    /// options the datagram or the capture cut (`truncated_header`). Zeek finds or creates the connection from
    /// the fixed header before it reads the offset, so the weird is the connection's and the segment goes no
    /// further (no packet counted, no state changed; `hdr.window_scale` is not read).
    TcpRefused {
        hdr: TcpHeader,
        reason: DecodeError,
    },
    Udp {
        hdr: UdpHeader,
        payload: &'a [u8],
    },
    Icmp {
        hdr: IcmpHeader,
        payload: &'a [u8],
        payload_len: usize,
        v6: bool,
    },
    Other {
        proto: u8,
    },
}

/// A TCP header without options.
const TCP_MIN_HEADER: usize = 20;

/// Decodes the transport header of an unfragmented (or reassembled) datagram, with the length checks of Zeek's
/// TCP, UDP and ICMP analyzers.
pub fn decode_transport<'a>(ip: &IpDatagram<'a>) -> Result<Transport<'a>, DecodeError> {
    const UDP_HEADER: usize = 8;
    const ICMP_MIN_HEADER: usize = 8;
    let p = ip.payload;
    match ip.proto {
        6 => {
            check_header_length(ip, TCP_MIN_HEADER)?;
            let hdr_len = usize::from(p[12] >> 4) * 4;
            // A data offset below the fixed header, or options the datagram does not hold or the capture did not
            // keep.
            if hdr_len < TCP_MIN_HEADER || hdr_len > ip.payload_len || hdr_len > p.len() {
                return Ok(refused_tcp(p, hdr_len, ip.proto));
            }
            let flags = TcpFlags(p[13]);
            let window_scale = if flags.syn() { tcp_window_scale(&p[20..hdr_len]) } else { None };
            let hdr = tcp_fixed_header(p, hdr_len, window_scale);
            Ok(Transport::Tcp { hdr, payload: &p[hdr_len..], payload_len: ip.payload_len.saturating_sub(hdr_len) })
        }
        17 => {
            check_header_length(ip, UDP_HEADER)?;
            let hdr = UdpHeader {
                src_port: u16::from_be_bytes([p[0], p[1]]),
                dst_port: u16::from_be_bytes([p[2], p[3]]),
                len: u16::from_be_bytes([p[4], p[5]]),
            };
            // Zeek hands on the IP payload, not the UDP length's worth of it (the engine counts that length and
            // reports a mismatch).
            Ok(Transport::Udp { hdr, payload: &p[UDP_HEADER..] })
        }
        1 | 58 => {
            check_header_length(ip, ICMP_MIN_HEADER)?;
            let hdr = IcmpHeader { icmp_type: p[0], code: p[1] };
            Ok(Transport::Icmp {
                hdr,
                payload: &p[ICMP_MIN_HEADER..],
                payload_len: ip.payload_len.saturating_sub(ICMP_MIN_HEADER),
                v6: ip.proto == 58,
            })
        }
        proto => Ok(Transport::Other { proto }),
    }
}

/// The fields of a TCP header's first 20 bytes (`p` holds at least those).
#[inline(always)]
fn tcp_fixed_header(p: &[u8], hdr_len: usize, window_scale: Option<u8>) -> TcpHeader {
    TcpHeader {
        src_port: u16::from_be_bytes([p[0], p[1]]),
        dst_port: u16::from_be_bytes([p[2], p[3]]),
        seq: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ack: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        flags: TcpFlags(p[13]),
        window: u16::from_be_bytes([p[14], p[15]]),
        hdr_len,
        window_scale,
    }
}

/// A TCP segment whose data offset (`hdr_len` bytes) Zeek's TCP analyzer refuses ([`Transport::TcpRefused`]).
#[cold]
fn refused_tcp(p: &[u8], hdr_len: usize, proto: u8) -> Transport<'_> {
    let reason =
        if hdr_len < TCP_MIN_HEADER { DecodeError::BadTcpHeaderLen } else { DecodeError::TruncatedHeader(proto) };
    Transport::TcpRefused { hdr: tcp_fixed_header(p, hdr_len, None), reason }
}

/// Zeek's `CheckHeaderTrunc`: the datagram must claim the transport's minimal header (a claimed length of zero,
/// from segmentation offload, passes) and the capture must hold it. On success `ip.payload` has `min` bytes.
fn check_header_length(ip: &IpDatagram<'_>, min: usize) -> Result<(), DecodeError> {
    if ip.payload_len != 0 && ip.payload_len < min {
        return Err(DecodeError::TruncatedHeader(ip.proto));
    }
    if ip.payload.len() < min {
        return Err(DecodeError::InternallyTruncatedHeader(ip.proto));
    }
    Ok(())
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

/// [`internet_checksum`] of an IPv4 header (initial sum 0). The usual header, 20 bytes without options, is summed
/// as five words without the general loop's steps: every IPv4 packet pays this.
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    match <&[u8; 20]>::try_from(header) {
        Ok(words) => {
            let sum = words.as_chunks::<4>().0.iter().map(|&w| u64::from(u32::from_ne_bytes(w))).sum();
            !u16::from_be(fold16(sum))
        }
        Err(_) => internet_checksum(header, 0),
    }
}

/// The 16-bit one's-complement sum of `data` read as big-endian words (an odd last byte padded with zero).
///
/// Checksums over full-size segments are a large share of the per-packet time, so long buffers take the AVX2
/// build of the same loop where the CPU has it (the baseline x86-64 target only allows SSE2).
fn ones_complement_sum(data: &[u8]) -> u16 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= WIDE_SUM_MIN_LEN && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above; std caches the detection after its first call).
        return unsafe { ones_complement_sum_avx2(data) };
    }
    ones_complement_sum_portable(data)
}

/// Below this length the block loop runs once at most: the AVX2 build would gain less than the feature check costs.
#[cfg(target_arch = "x86_64")]
const WIDE_SUM_MIN_LEN: usize = 2 * SUM_BLOCK;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn ones_complement_sum_avx2(data: &[u8]) -> u16 {
    let (wide, rest) = sum_blocks::<WIDE_SUM_LANES>(data);
    ones_complement_sum_onto(wide, rest)
}

/// 32-bit words summed per block: one independent 64-bit accumulator each, so the loop vectorizes.
const SUM_LANES: usize = 8;
const SUM_BLOCK: usize = 4 * SUM_LANES;
/// Full-size segments are summed in blocks four times as large first: with AVX2 a turn of that loop takes 128
/// bytes into eight accumulators, its counter and branch paid once per 128 bytes instead of per 32 (a third fewer
/// instructions per byte).
const WIDE_SUM_LANES: usize = 4 * SUM_LANES;

/// The sum of `data`'s whole blocks of `LANES` 32-bit words, native-endian, unfolded; and what is left after them.
#[inline(always)]
fn sum_blocks<const LANES: usize>(data: &[u8]) -> (u64, &[u8]) {
    let mut lanes = [0u64; LANES];
    let mut blocks = data.chunks_exact(4 * LANES);
    for block in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(4)) {
            *lane += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    (lanes.iter().sum(), blocks.remainder())
}

/// The one's-complement sum commutes with byte swapping, so the bytes are summed as native-endian 32-bit words
/// into 64-bit lanes (a lane overflows only after 2^32 blocks) and the folded result is swapped back once.
#[inline(always)]
fn ones_complement_sum_portable(data: &[u8]) -> u16 {
    ones_complement_sum_onto(0, data)
}

/// The folded sum of `data` added to `acc` (an unfolded native-endian partial sum).
#[inline(always)]
fn ones_complement_sum_onto(acc: u64, data: &[u8]) -> u16 {
    let (blocks, mut rest) = sum_blocks::<SUM_LANES>(data);
    let mut acc = acc + blocks;
    // Less than a block is left: taken in 16, 8, 4 and 2 byte steps, each at most once (no loop to set up for the
    // many short buffers: IP headers, bare TCP headers). Every step starts at an even offset, as the words do.
    if let Some((words, tail)) = rest.split_first_chunk::<16>() {
        acc += words.as_chunks::<8>().0.iter().map(|&word| sum_u32_halves(u64::from_ne_bytes(word))).sum::<u64>();
        rest = tail;
    }
    if let Some((&word, tail)) = rest.split_first_chunk::<8>() {
        acc += sum_u32_halves(u64::from_ne_bytes(word));
        rest = tail;
    }
    if let Some((&word, tail)) = rest.split_first_chunk::<4>() {
        acc += u64::from(u32::from_ne_bytes(word));
        rest = tail;
    }
    if let Some((&word, tail)) = rest.split_first_chunk::<2>() {
        acc += u64::from(u16::from_ne_bytes(word));
        rest = tail;
    }
    if let [last] = rest {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    u16::from_be(fold16(acc))
}

/// The pseudo-header's address part: both addresses summed as big-endian 16-bit words, not yet folded (at most
/// sixteen words, so no overflow). Fixed-size arrays: the compiler unrolls this, every packet needs it.
#[inline(always)]
fn pair_sum<const N: usize>(src: &[u8; N], dst: &[u8; N]) -> u32 {
    let words = |a: &[u8; N]| -> u32 { a.as_chunks::<2>().0.iter().map(|&w| u32::from(u16::from_be_bytes(w))).sum() };
    words(src) + words(dst)
}

/// The two 32-bit halves of a 64-bit word added (the sum of its four 16-bit words, up to carries kept above).
fn sum_u32_halves(v: u64) -> u64 {
    (v & 0xffff_ffff) + (v >> 32)
}

/// Folds the carries of a one's-complement accumulator into 16 bits, in a fixed number of steps: below 2^33
/// after the first, below 2^18 after the second, at most 0x10002 after the third and 0xffff after the last.
fn fold16(sum: u64) -> u16 {
    let sum = sum_u32_halves(sum);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    ((sum & 0xffff) + (sum >> 16)) as u16
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
        // Carries folded back one at a time, independently of `fold16`.
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
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
    fn ipv4_header_checksum_matches_the_definition() {
        // 20-byte headers (the five-word path) with carries in every word, and a header with options (the loop).
        for seed in 0..64u32 {
            let header: Vec<u8> =
                (0..24u32).map(|i| (i.wrapping_mul(97).wrapping_add(seed * 31) ^ 0x5a) as u8).collect();
            for len in [20, 24] {
                let h = &header[..len];
                assert_eq!(ipv4_header_checksum(h), reference_checksum(h, 0), "seed {seed} len {len}");
            }
        }
        assert_eq!(ipv4_header_checksum(&[0xff; 20]), reference_checksum(&[0xff; 20], 0));
        assert_eq!(ipv4_header_checksum(&[0; 20]), reference_checksum(&[0; 20], 0));
    }

    #[test]
    fn fixed_step_fold_matches_folding_until_no_carry_is_left() {
        for sum in [0, 1, 0xffff, 0x1_0000, 0x1_fffe, 0x2_fffd, 0xffff_ffff, 0x1_ffff_fffe, u64::MAX, u64::MAX - 0xffff]
        {
            let mut folded = sum;
            while folded > 0xffff {
                folded = (folded & 0xffff) + (folded >> 16);
            }
            assert_eq!(u64::from(fold16(sum)), folded, "{sum:#x}");
        }
    }

    /// Bytes from a fixed linear congruential sequence, with the high bit set often enough for many carries.
    fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect()
    }

    /// Both builds of the sum (the dispatched one and the portable one) against the definition.
    fn assert_sums_match(slice: &[u8], what: &str) {
        let want = reference_checksum(slice, 0);
        assert_eq!(!ones_complement_sum(slice), want, "{what}");
        assert_eq!(!ones_complement_sum_portable(slice), want, "{what} (portable)");
    }

    #[test]
    fn long_buffers_match_the_definition_at_every_alignment() {
        let random = pseudo_random_bytes(9000 + SUM_BLOCK, 0x5eed);
        let saturated = vec![0xffu8; 9000 + SUM_BLOCK];
        // Every start offset within a block, every length up to two wide blocks (all tails of both block loops,
        // odd and even), then lengths spread up to a 9000-byte jumbo frame (including the usual 1500-byte MTU and
        // its odd neighbours).
        let long_lengths = (0..=9000).step_by(97).chain([1499, 1500, 1501, 8999, 9000]);
        let lengths: Vec<usize> = (0..=8 * WIDE_SUM_LANES + 1).chain(long_lengths).collect();
        for data in [&random, &saturated] {
            for start in 0..SUM_BLOCK {
                for &len in &lengths {
                    assert_sums_match(&data[start..start + len], &format!("start {start} len {len}"));
                }
            }
        }
    }

    #[test]
    fn transport_checksums_include_the_pseudo_header() {
        /// RFC 793 / RFC 8200 pseudo-header: addresses, zero, protocol, upper-layer length.
        fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
            let mut pseudo = Vec::new();
            for addr in [src, dst] {
                match addr {
                    IpAddr::V4(a) => pseudo.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => pseudo.extend_from_slice(&a.octets()),
                }
            }
            pseudo.extend_from_slice(&(len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
            pseudo
        }
        let v4 = ("10.1.2.3".parse().unwrap(), "192.168.200.254".parse().unwrap());
        let v6 = ("2001:db8::1".parse().unwrap(), "fe80::ffff:1234:abcd".parse().unwrap());
        for (src, dst) in [v4, v6] {
            for (proto, at) in [(6u8, 16usize), (17, 6), (58, 2)] {
                for len in [20usize, 21, 64, 1480, 8999] {
                    let mut segment = pseudo_random_bytes(len, len as u64);
                    segment[at..at + 2].fill(0);
                    let mut covered = pseudo_header(src, dst, proto, len);
                    covered.extend_from_slice(&segment);
                    let sum = reference_checksum(&covered, 0);
                    // A computed UDP checksum of zero is sent as all ones.
                    let sum = if proto == 17 && sum == 0 { 0xffff } else { sum };
                    segment[at..at + 2].copy_from_slice(&sum.to_be_bytes());
                    assert!(transport_checksum_ok(src, dst, proto, &segment), "proto {proto} len {len} {src}");
                    segment[len / 2] ^= 0x10;
                    assert!(!transport_checksum_ok(src, dst, proto, &segment), "corrupt proto {proto} len {len}");
                }
            }
        }
    }

    #[test]
    fn window_scale_option() {
        assert_eq!(tcp_window_scale(&[1, 3, 3, 7, 0]), Some(7));
        assert_eq!(tcp_window_scale(&[2, 4, 5, 0xb4]), None);
        assert_eq!(tcp_window_scale(&[2, 0]), None);
        assert_eq!(tcp_window_scale(&[8, 200]), None);
    }

    /// An IPv4 datagram (checksum left zero) of `proto` claiming `claimed` transport bytes, of which `segment`
    /// was captured.
    fn ipv4(proto: u8, claimed: usize, segment: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + claimed).unwrap().to_be_bytes();
        let mut p = vec![0x45, 0, total[0], total[1], 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p.extend_from_slice(segment);
        p
    }

    fn transport_error(packet: &[u8]) -> DecodeError {
        let ip = super::super::decode_ip(packet, false).expect("a valid IP header");
        decode_transport(&ip).expect_err("a transport weird")
    }

    /// Zeek's `CheckHeaderTrunc`: the datagram claims less than the minimal header (`truncated_header`), or the
    /// capture kept less of it (`internally_truncated_header`); a flow weird from the transport's analyzer.
    #[test]
    fn transport_headers_are_checked_as_zeeks_analyzers_do() {
        for (proto, min, analyzer) in [(6, 20, "TCP"), (17, 8, "UDP"), (1, 8, "ICMP"), (58, 8, "ICMP")] {
            let claims_less = transport_error(&ipv4(proto, min - 1, &vec![0x50; min - 1]));
            assert_eq!(claims_less, DecodeError::TruncatedHeader(proto), "{analyzer}");
            assert_eq!((claims_less.to_string().as_str(), claims_less.source()), ("truncated_header", Some(analyzer)));
            let cut = transport_error(&ipv4(proto, min + 10, &vec![0x50; min - 1]));
            assert_eq!(cut, DecodeError::InternallyTruncatedHeader(proto), "{analyzer}");
            assert_eq!((cut.to_string().as_str(), cut.source()), ("internally_truncated_header", Some(analyzer)));
            assert!(claims_less.names_hosts() && cut.names_hosts(), "the IP header is known: flow weirds");
        }
        // A zero claimed length (segmentation offload) is not held against the header.
        let offloaded = ipv4(17, 0, &[0, 1, 0, 2, 0, 8, 0, 0]);
        let mut offloaded_ip = super::super::decode_ip(&offloaded, false).unwrap();
        offloaded_ip.payload = &offloaded[20..];
        assert!(matches!(decode_transport(&offloaded_ip), Ok(Transport::Udp { .. })));
    }

    #[test]
    fn tcp_data_offsets_are_checked() {
        let refused = |packet: &[u8]| {
            let ip = super::super::decode_ip(packet, false).expect("a valid IP header");
            match decode_transport(&ip) {
                Ok(Transport::TcpRefused { hdr, reason }) => (hdr.src_port, hdr.dst_port, hdr.flags, reason),
                other => panic!("not refused: {other:?}"),
            }
        };
        let mut segment = vec![0, 80, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 4 << 4, 0x12, 0, 0, 0, 0, 0, 0];
        let short = refused(&ipv4(6, 20, &segment));
        assert_eq!(short, (80, 40000, TcpFlags(0x12), DecodeError::BadTcpHeaderLen), "the fixed header is read");
        assert_eq!((short.3.to_string().as_str(), short.3.source()), ("bad_TCP_header_len", Some("TCP")));
        segment[12] = 8 << 4; // 12 bytes of options the segment does not have
        assert_eq!(refused(&ipv4(6, 20, &segment)).3, DecodeError::TruncatedHeader(6));
        segment.resize(32, 1);
        assert_eq!(refused(&ipv4(6, 40, &segment[..28])).3, DecodeError::TruncatedHeader(6), "options not captured");
        let ip_bytes = ipv4(6, 32, &segment);
        let ip = super::super::decode_ip(&ip_bytes, false).unwrap();
        assert!(matches!(decode_transport(&ip), Ok(Transport::Tcp { hdr, .. }) if hdr.hdr_len == 32));
    }
}
