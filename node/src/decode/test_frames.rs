//! Packets built by hand for the engine's unit tests.

/// An IPv4 address and a port.
pub type Endpoint = ([u8; 4], u16);

/// A raw IPv4 datagram (`LinkType::Raw`) carrying a TCP segment, checksums left zero: the tests tell the engine to
/// ignore them.
pub fn ipv4_tcp(src: Endpoint, dst: Endpoint, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = ipv4_with_ports(6, src, dst, 20 + payload.len());
    frame.extend(seq.to_be_bytes());
    frame.extend(ack.to_be_bytes());
    frame.extend([5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    frame.extend(payload);
    frame
}

/// A raw IPv4 datagram (`LinkType::Raw`) carrying UDP, checksums left zero (the tests tell the engine to ignore
/// them).
pub fn ipv4_udp(src: Endpoint, dst: Endpoint, payload: &[u8]) -> Vec<u8> {
    let udp_len = u16::try_from(8 + payload.len()).expect("a test datagram fits");
    let mut frame = ipv4_with_ports(17, src, dst, usize::from(udp_len));
    frame.extend(udp_len.to_be_bytes());
    frame.extend([0, 0]);
    frame.extend(payload);
    frame
}

/// An IPv4 header for `transport_len` bytes of `proto`, followed by the transport header's two ports.
fn ipv4_with_ports(proto: u8, src: Endpoint, dst: Endpoint, transport_len: usize) -> Vec<u8> {
    let total = u16::try_from(20 + transport_len).expect("a test packet fits one datagram");
    let mut frame = vec![0x45, 0];
    frame.extend(total.to_be_bytes());
    frame.extend([0, 1, 0x40, 0, 64, proto, 0, 0]);
    frame.extend(src.0);
    frame.extend(dst.0);
    frame.extend(src.1.to_be_bytes());
    frame.extend(dst.1.to_be_bytes());
    frame
}
