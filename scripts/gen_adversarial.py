#!/usr/bin/env python3
"""Traces that push one part of the engine to its worst case: what a sensor facing hostile or broken traffic
sees. `scripts/bench-adversarial.sh` runs zeek-node over each and prints packets per second and peak memory,
to find work that grows faster than the traffic (docs/BENCHMARKS.md, "Adversarial traffic").

    gen_adversarial.py CASE OUT.pcap [--packets N]
    gen_adversarial.py --list

Addresses are from 10.0.0.0/8; checksums are valid; each case is about N packets (default 100,000).
"""
import argparse
import struct

from gen_scan import checksum

CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
ETHERNET = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
FIN, SYN, PSH_ACK, ACK = 0x01, 0x02, 0x18, 0x10


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 0, frag: int = 0) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, frag, 64, proto, 0, src, dst)
    return ETHERNET + ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + payload


def tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"") -> bytes:
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    segment += data
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    return ipv4(src, dst, 6, segment[:16] + struct.pack("!H", checksum(pseudo + segment)) + segment[18:])


def udp(src: bytes, dst: bytes, sport: int, dport: int, data: bytes) -> bytes:
    datagram = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    pseudo = src + dst + struct.pack("!BBH", 0, 17, len(datagram))
    return ipv4(src, dst, 17, datagram[:6] + struct.pack("!H", checksum(pseudo + datagram) or 0xFFFF) + datagram[8:])


def handshake(port: int, sport: int = 40000) -> list:
    """Client ISN 1000, server ISN 5000: the client's data starts at 1001, the server's at 5001."""
    return [
        tcp(CLIENT, SERVER, sport, port, 1000, 0, SYN),
        tcp(SERVER, CLIENT, port, sport, 5000, 1001, SYN | ACK),
        tcp(CLIENT, SERVER, sport, port, 1001, 5001, ACK),
    ]


def overlapping_fragments(n: int) -> list:
    """One datagram in n tiny fragments at offsets that overlap and repeat, never complete (a teardrop-like flood)."""
    return [ipv4(CLIENT, SERVER, 17, bytes(8), ident=7, frag=0x2000 | ((i * 7) % 8000)) for i in range(n)]


def fragment_flood(n: int) -> list:
    """n first fragments of n datagrams that never complete."""
    return [ipv4(bytes([10, 1, (i >> 8) & 255, i & 255]), SERVER, 17, bytes(64), ident=i, frag=0x2000) for i in range(n)]


def holes_never_acked(n: int) -> list:
    """Connections whose first data segment is lost and whose peer acks nothing: 1 MB held behind each hole."""
    frames = []
    for c in range(n // 1000):
        sport = 30000 + c
        frames += handshake(80, sport)
        frames += [tcp(CLIENT, SERVER, sport, 80, 1001 + i * 1000, 5001, PSH_ACK, bytes(1000)) for i in range(1, 998)]
    return frames


def overlapping_segments(n: int) -> list:
    """One connection: a hole, then n segments each overlapping the last with other bytes."""
    return handshake(80) + [
        tcp(CLIENT, SERVER, 40000, 80, 1001 + i * 100, 5001, PSH_ACK, bytes([i & 255]) * 300) for i in range(1, n)
    ]


def one_byte_segments(n: int) -> list:
    """An HTTP header line that never ends, one byte a segment."""
    head = b"GET / HTTP/1.1\r\nX-Long: "
    frames = handshake(80) + [tcp(CLIENT, SERVER, 40000, 80, 1001, 5001, PSH_ACK, head)]
    return frames + [tcp(CLIENT, SERVER, 40000, 80, 1001 + len(head) + i, 5001, PSH_ACK, b"a") for i in range(n)]


def unanswered_pipeline(n: int) -> list:
    """n pipelined HTTP requests, none answered."""
    request = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    return handshake(80) + [
        tcp(CLIENT, SERVER, 40000, 80, 1001 + i * len(request), 5001, PSH_ACK, request) for i in range(n)
    ]


def unanswered_dns(n: int) -> list:
    """n DNS queries on one 5-tuple, none answered."""
    question = b"\x03www\x07example\x03com\x00" + struct.pack("!HH", 1, 1)
    return [
        udp(CLIENT, bytes([10, 0, 0, 53]), 5354, 53, struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + question)
        for i in range(n)
    ]


def binary_on_text_ports(n: int) -> list:
    """A scanner's binary probes on the SMTP and FTP ports: NULs, lone CRs, Telnet commands."""
    probe = bytes(range(256)) * 4
    frames = []
    for c in range(n // 10):
        port = (25, 21)[c % 2]
        frames += handshake(port, 20000 + c % 40000)
        frames += [tcp(SERVER, CLIENT, port, 20000 + c % 40000, 5001, 1001, PSH_ACK, b"220 ready\r\n")]
        frames += [tcp(CLIENT, SERVER, 20000 + c % 40000, port, 1001 + i * 1024, 5012, PSH_ACK, probe) for i in range(6)]
    return frames


CASES = {
    "overlapping-fragments": overlapping_fragments,
    "fragment-flood": fragment_flood,
    "holes-never-acked": holes_never_acked,
    "overlapping-segments": overlapping_segments,
    "one-byte-segments": one_byte_segments,
    "unanswered-pipeline": unanswered_pipeline,
    "unanswered-dns": unanswered_dns,
    "binary-on-text-ports": binary_on_text_ports,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", choices=sorted(CASES))
    parser.add_argument("out", nargs="?")
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--list", action="store_true", help="print the case names and what each one is")
    args = parser.parse_args()
    if args.list or not args.case or not args.out:
        for name, make in CASES.items():
            print(f"{name:24} {make.__doc__}")
        return
    with open(args.out, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        micros = 1_700_000_000_000_000
        for frame in CASES[args.case](args.packets):
            micros += 10
            out.write(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame)


if __name__ == "__main__":
    main()
