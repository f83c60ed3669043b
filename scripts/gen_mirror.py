#!/usr/bin/env python3
"""A trace as a sensor fed by a traffic mirror receives it: each Ethernet frame of IN wrapped in VXLAN (UDP 4789,
as AWS VPC Traffic Mirroring and virtual switches send their copies) or in GRE (the copied frame's IP packet, as an
ERSPAN-less mirror session sends it), from one mirror source to the sensor. `scripts/bench.sh mirror` runs the
bench on the benchmark mix's head wrapped this way (docs/BENCHMARKS.md, "A sensor fed by a mirror").

    gen_mirror.py IN.pcap OUT.pcap [--encap vxlan|gre] [--packets N]

Outer addresses are 10.77.0.1 (the mirror) and 10.77.0.2 (the sensor); the outer IPv4 checksum is valid and the
VXLAN UDP checksum is zero, as mirrors send it. Frames GRE cannot carry as IP (no IPv4 or IPv6 ethertype) are
skipped. IN must be a classic little-endian Ethernet pcap (gen_mix.py writes one).
"""
import argparse
import struct

from gen_scan import checksum

MIRROR, SENSOR = bytes([10, 77, 0, 1]), bytes([10, 77, 0, 2])
ETHERNET = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"


def ipv4(proto: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, MIRROR, SENSOR)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def wrap(encap: str, frame: bytes):
    if encap == "vxlan":
        vxlan = struct.pack("!II", 0x08 << 24, 7 << 8) + frame
        return ETHERNET + ipv4(17, struct.pack("!HHHH", 40000, 4789, 8 + len(vxlan), 0) + vxlan)
    ethertype = frame[12:14]
    if ethertype not in (b"\x08\x00", b"\x86\xdd"):
        return None
    return ETHERNET + ipv4(47, b"\0\0" + ethertype + frame[14:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("out")
    parser.add_argument("--encap", choices=("vxlan", "gre"), default="vxlan")
    parser.add_argument("--packets", type=int, default=300_000, help="frames of IN to wrap (from its start)")
    args = parser.parse_args()
    with open(args.input, "rb") as src, open(args.out, "wb") as out:
        header = src.read(24)
        magic, _, _, _, _, snaplen, linktype = struct.unpack("<IHHiIII", header)
        if magic != 0xA1B2C3D4 or linktype != 1:
            raise SystemExit(f"{args.input}: not a little-endian microsecond Ethernet pcap")
        out.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, max(snaplen, 65535), 1))
        for _ in range(args.packets):
            record = src.read(16)
            if len(record) < 16:
                break
            secs, micros, caplen, wire = struct.unpack("<IIII", record)
            packet = wrap(args.encap, src.read(caplen))
            if packet is not None:
                added = len(packet) - caplen
                out.write(struct.pack("<IIII", secs, micros, len(packet), wire + added) + packet)


if __name__ == "__main__":
    main()
