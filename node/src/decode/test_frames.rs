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

/// One TCP connection as raw IPv4 frames: the handshake, then each `(from the client?, payload)` in its own segment
/// (borrowed or owned payloads alike); the connection is left open.
pub fn tcp_exchange(client: Endpoint, server: Endpoint, messages: &[(bool, impl AsRef<[u8]>)]) -> Vec<Vec<u8>> {
    exchange(client, server, messages).0
}

/// [`tcp_exchange`], then the client's FIN, the server's FIN and the last ACK.
pub fn tcp_conversation(client: Endpoint, server: Endpoint, messages: &[(bool, impl AsRef<[u8]>)]) -> Vec<Vec<u8>> {
    const FIN_ACK: u8 = 0x11;
    const ACK: u8 = 0x10;
    let (mut frames, client_seq, server_seq) = exchange(client, server, messages);
    frames.push(ipv4_tcp(client, server, client_seq, server_seq, FIN_ACK, b""));
    frames.push(ipv4_tcp(server, client, server_seq, client_seq + 1, FIN_ACK, b""));
    frames.push(ipv4_tcp(client, server, client_seq + 1, server_seq + 1, ACK, b""));
    frames
}

/// The frames of [`tcp_exchange`] and the next sequence number of each side.
fn exchange(client: Endpoint, server: Endpoint, messages: &[(bool, impl AsRef<[u8]>)]) -> (Vec<Vec<u8>>, u32, u32) {
    const SYN: u8 = 0x02;
    const SYN_ACK: u8 = 0x12;
    const ACK: u8 = 0x10;
    let (mut client_seq, mut server_seq) = (101u32, 501u32);
    let mut frames = vec![
        ipv4_tcp(client, server, client_seq - 1, 0, SYN, b""),
        ipv4_tcp(server, client, server_seq - 1, client_seq, SYN_ACK, b""),
        ipv4_tcp(client, server, client_seq, server_seq, ACK, b""),
    ];
    for (from_client, payload) in messages {
        let payload = payload.as_ref();
        let len = u32::try_from(payload.len()).expect("a test segment is small");
        if *from_client {
            frames.push(ipv4_tcp(client, server, client_seq, server_seq, ACK, payload));
            client_seq += len;
        } else {
            frames.push(ipv4_tcp(server, client, server_seq, client_seq, ACK, payload));
            server_seq += len;
        }
    }
    (frames, client_seq, server_seq)
}
