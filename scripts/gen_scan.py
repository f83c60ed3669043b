#!/usr/bin/env python3
"""A SYN scan as a sensor facing the internet sees one: SYNs from many sources to five service ports, none
answered. `scripts/bench.sh scan` runs the bench on it for bytes per tracked connection under a scan (every SYN
is a connection Zeek tracks until its attempt times out; docs/BENCHMARKS.md).

    gen_scan.py OUT.pcap [--syns N] [--rate PER_SECOND]

Addresses are from 10.0.0.0/16 (sources) and 192.0.2.0/24 (TEST-NET-1, targets); checksums are valid.
"""
import argparse
import struct

PORTS = (80, 443, 22, 25, 21)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def syn_frame(i: int) -> bytes:
    src = bytes([10, 0, (i >> 8) & 255, i & 255])
    dst = bytes([192, 0, 2, (i * 7) & 255])
    tcp = struct.pack("!HHIIBBHHH", 40000 + i % 20000, PORTS[i % len(PORTS)], 1000 + i, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    ethernet = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    return ethernet + ip + tcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--syns", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20_000.0, help="SYNs per second of trace time")
    args = parser.parse_args()
    with open(args.out, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(args.syns):
            frame = syn_frame(i)
            micros = 1_700_000_000_000_000 + int(i * 1e6 / args.rate)
            out.write(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame)


if __name__ == "__main__":
    main()
