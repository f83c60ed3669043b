//! The fanout program run by a classic BPF interpreter of the instructions it uses, with the kernel's rules for
//! them (loads relative to the network header, a load outside the packet returns 0, scratch memory must be
//! written before it is read). `tests/live_capture.rs` runs it in the kernel.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

/// What the program returns for a packet whose network header starts `net` and whose ethertype (after the tag the
/// kernel takes off) is `protocol`: the socket index before the kernel's modulo.
fn run(program: &[sock_filter], protocol: u16, net: &[u8]) -> u32 {
    execute(program, protocol, net).0
}

/// [`run`]'s result, and how many instructions it took.
fn execute(program: &[sock_filter], protocol: u16, net: &[u8]) -> (u32, usize) {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [None::<u32>; 16];
    let load = |k: i32, size: usize| -> Option<u32> {
        let value = if k == SKF_AD_PROTOCOL {
            u32::from(protocol)
        } else {
            assert!((SKF_NET_OFF..SKF_AD_PROTOCOL).contains(&k), "unsupported load at {k}");
            let off = usize::try_from(k - SKF_NET_OFF).ok()?;
            let bytes = net.get(off..off + size)?;
            bytes.iter().fold(0, |v, &b| (v << 8) | u32::from(b))
        };
        Some(value)
    };
    let size = |code: u16| match code & 0x18 {
        W => 4,
        H => 2,
        B => 1,
        other => panic!("size {other:#x}"),
    };
    let (mut pc, mut steps) = (0, 0);
    loop {
        let insn = program[pc];
        pc += 1;
        steps += 1;
        let (code, k) = (insn.code, insn.k);
        match code & 0x07 {
            LD => {
                a = match code & 0xe0 {
                    IMM => k,
                    MEM => mem[k as usize].expect("memory read before written"),
                    ABS => match load(k as i32, size(code)) {
                        Some(v) => v,
                        None => return (0, steps),
                    },
                    IND => match load((x as i32).wrapping_add(k as i32), size(code)) {
                        Some(v) => v,
                        None => return (0, steps),
                    },
                    mode => panic!("ld mode {mode:#x}"),
                }
            }
            LDX => {
                x = match code & 0xe0 {
                    IMM => k,
                    MEM => mem[k as usize].expect("memory read before written"),
                    mode => panic!("ldx mode {mode:#x}"),
                }
            }
            ST => mem[k as usize] = Some(a),
            STX => mem[k as usize] = Some(x),
            ALU => {
                let operand = if code & SRC_X != 0 { x } else { k };
                a = match code & 0xf0 {
                    ADD => a.wrapping_add(operand),
                    MUL => a.wrapping_mul(operand),
                    AND => a & operand,
                    LSH => a << operand,
                    RSH => a >> operand,
                    XOR => a ^ operand,
                    op => panic!("alu op {op:#x}"),
                }
            }
            JMP => {
                let operand = if code & SRC_X != 0 { x } else { k };
                pc += match code & 0xf0 {
                    JA => k as usize,
                    JEQ if a == operand => usize::from(insn.jt),
                    JGT if a > operand => usize::from(insn.jt),
                    JSET if a & operand != 0 => usize::from(insn.jt),
                    JEQ | JGT | JSET => usize::from(insn.jf),
                    op => panic!("jmp op {op:#x}"),
                };
            }
            RET => return (if code & RET_A != 0 { a } else { k }, steps),
            MISC => {
                if code & TXA != 0 {
                    a = x;
                } else {
                    x = a;
                }
            }
            class => panic!("class {class:#x}"),
        }
    }
}

fn be(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

/// An IP datagram from `src` to `dst` of protocol `proto` with `payload` (no checksums: the program reads none).
fn ip(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = be(u16::try_from(20 + payload.len()).unwrap());
            let mut p = vec![0x45, 0, total[0], total[1], 0, 1, 0x40, 0, 64, proto, 0, 0];
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(payload);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = be(u16::try_from(payload.len()).unwrap());
            let mut p = vec![0x60, 0, 0, 0, len[0], len[1], proto, 64];
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(payload);
            p
        }
        _ => unreachable!("one family per datagram"),
    }
}

/// A transport header's first 8 bytes with its ports, then `payload`.
fn ports(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    [&be(sp)[..], &be(dp), &[0, 8, 0, 0], payload].concat()
}

fn ethertype_of(ip: &[u8]) -> u16 {
    if ip[0] >> 4 == 6 { 0x86dd } else { 0x0800 }
}

/// An Ethernet frame around `ip` with `tags` 802.1Q tags.
fn ethernet(ip: &[u8], tags: usize) -> Vec<u8> {
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for _ in 0..tags {
        frame.extend_from_slice(&[0x81, 0x00, 0, 7]);
    }
    frame.extend_from_slice(&be(ethertype_of(ip)));
    frame.extend_from_slice(ip);
    frame
}

/// The outer IPv4 packet from a mirror or tunnel endpoint.
fn outer(proto: u8, payload: &[u8]) -> Vec<u8> {
    ip([10, 77, 0, 1].into(), [10, 77, 0, 2].into(), proto, payload)
}

/// Every way the program follows to `inner` (an IP datagram), as (what, ethertype, network-layer bytes).
fn encapsulations(inner: &[u8], source_port: u16) -> Vec<(&'static str, u16, Vec<u8>)> {
    let frame = ethernet(inner, 0);
    let tagged = ethernet(inner, 2);
    let gre = |flags: u16, proto: u16, extra: &[u8], payload: &[u8]| {
        let optional = [0x8000u16, 0x2000, 0x1000].iter().filter(|&&f| flags & f != 0).count() * 4;
        outer(47, &[&be(flags)[..], &be(proto), &vec![0xaa; optional], extra, payload].concat())
    };
    let udp = |port: u16, payload: &[u8]| outer(17, &ports(source_port, port, payload));
    let vxlan = [&[0x08, 0, 0, 0, 0, 0, 7, 0][..], &frame].concat();
    let vxlan_tagged = [&[0x08, 0, 0, 0, 0, 0, 7, 0][..], &tagged].concat();
    let geneve = |words: u8, proto: u16, payload: &[u8]| {
        [&[words, 0][..], &be(proto), &[0, 0, 42, 0], &vec![0xbb; usize::from(words) * 4], payload].concat()
    };
    let gtp = |flags: u8, extra: &[u8]| [&[flags, 255, 0, 0, 0, 0, 0, 1][..], extra, inner].concat();
    let ip_in_ip = if inner[0] >> 4 == 6 { 41 } else { 4 };
    vec![
        ("plain", ethertype_of(inner), inner.to_vec()),
        // The kernel takes the outer tag off; the second stays in the data, and the ethertype names it.
        ("a tag left in the data", 0x8100, tagged[18..].to_vec()),
        ("VXLAN", 0x0800, udp(4789, &vxlan)),
        ("VXLAN, tagged frame", 0x0800, udp(4789, &vxlan_tagged)),
        ("GRE", 0x0800, gre(0, ethertype_of(inner), &[], inner)),
        ("GRE with checksum, key and sequence", 0x0800, gre(0xb000, ethertype_of(inner), &[], inner)),
        ("GRE, transparent Ethernet", 0x0800, gre(0x2000, 0x6558, &[], &frame)),
        ("ERSPAN I", 0x0800, gre(0, 0x88be, &[], &frame)),
        ("ERSPAN II", 0x0800, gre(0x1000, 0x88be, &[0x10; 8], &frame)),
        ("ERSPAN III", 0x0800, gre(0x1000, 0x22eb, &[0; 12], &frame)),
        ("ERSPAN III, optional subheader", 0x0800, gre(0x1000, 0x22eb, &[&[0u8; 11][..], &[1u8; 9]].concat(), &tagged)),
        ("Geneve, Ethernet", 0x0800, udp(6081, &geneve(2, 0x6558, &frame))),
        ("Geneve, IP", 0x0800, udp(6081, &geneve(0, ethertype_of(inner), inner))),
        ("GTP-U", 0x0800, udp(2152, &gtp(0x30, &[]))),
        ("GTP-U, sequence number", 0x0800, udp(2152, &gtp(0x32, &[0, 1, 0, 0]))),
        (
            "GTP-U, two extension headers",
            0x0800,
            udp(2152, &gtp(0x34, &[0, 0, 0, 0x85, 1, 0x00, 0x09, 0x85, 2, 1, 2, 3, 4, 5, 6, 0])),
        ),
        ("IP in IP", 0x0800, outer(ip_in_ip, inner)),
    ]
}

fn addresses() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
    ]
}

proptest! {
    /// Both directions of a flow go to one socket, whichever way it arrives, with a VXLAN source port per
    /// direction, and inside every tunnel followed it goes where it goes on its own.
    #[test]
    fn a_flow_goes_to_one_socket_however_it_arrives(
        (a, b) in addresses(),
        (sp, dp) in (any::<u16>(), any::<u16>()),
        proto in prop_oneof![Just(6u8), Just(17u8), Just(132u8), Just(1u8)],
    ) {
        let program = program();
        let forward = ip(a, b, proto, &ports(sp, dp, b"data"));
        let reverse = ip(b, a, proto, &ports(dp, sp, b"data"));
        let alone = run(&program, ethertype_of(&forward), &forward);
        for (inner, source_port) in [(&forward, 50_001), (&reverse, 50_002)] {
            for (what, protocol, packet) in encapsulations(inner, source_port) {
                prop_assert_eq!(run(&program, protocol, &packet), alone, "{}", what);
            }
        }
    }
}

/// A mirror's flows all come from one outer flow; the program spreads them over the sockets.
#[test]
fn a_mirrors_flows_spread_over_the_sockets() {
    let program = program();
    for what in ["plain", "VXLAN", "GRE", "GTP-U"] {
        let mut used = [false; 4];
        for port in 40000..40064u16 {
            let inner = ip([10, 0, 0, (port % 7) as u8].into(), [198, 18, 0, 1].into(), 6, &ports(port, 443, &[]));
            let (_, protocol, packet) =
                encapsulations(&inner, 4242).into_iter().find(|(w, _, _)| *w == what).expect("encapsulation");
            used[(run(&program, protocol, &packet) % 4) as usize] = true;
        }
        assert!(used.iter().all(|&u| u), "{what}: 64 flows should reach all 4 sockets: {used:?}");
    }
}

/// What is not followed is hashed as the packet it is: UDP on other ports, an unknown GRE payload or non-IP Ethernet
/// inside a tunnel by the outer addresses, non-IP and cut packets to socket 0.
#[test]
fn what_is_not_followed_is_hashed_as_itself() {
    let program = program();
    let inner = ip([192, 0, 2, 1].into(), [192, 0, 2, 2].into(), 17, &ports(5353, 53, b"q"));
    let outer_addresses = run(&program, 0x0800, &outer(1, b"icmp"));
    assert_eq!(run(&program, 0x0800, &outer(17, &ports(1111, 53, &inner))), outer_addresses);
    assert_eq!(run(&program, 0x0800, &outer(17, &ports(1111, 3544, &inner))), outer_addresses, "Teredo");
    assert_ne!(outer_addresses, run(&program, 0x0800, &inner));
    let gre_mpls = outer(47, &[&[0, 0, 0x88, 0x47][..], &inner].concat());
    let arp_in_vxlan = outer(17, &ports(1, 4789, &[&[0x08, 0, 0, 0, 0, 0, 7, 0][..], &[0; 12], &[8, 6]].concat()));
    assert_eq!(run(&program, 0x0800, &gre_mpls), outer_addresses);
    assert_eq!(run(&program, 0x0800, &arp_in_vxlan), outer_addresses);
    assert_eq!(run(&program, 0x0806, &[0; 28]), 0, "ARP");
    assert_eq!(run(&program, 0x0800, &inner[..12]), 0, "an IPv4 header cut short");
    let vxlan = encapsulations(&inner, 1).into_iter().find(|(w, _, _)| *w == "VXLAN").expect("VXLAN").2;
    assert_eq!(run(&program, 0x0800, &vxlan[..vxlan.len() - inner.len() + 4]), 0, "inner header cut short");
}

/// Host pairs that differ in the same bits (.1 and .2 of each subnet) still spread: the IPv4 addresses are mixed
/// in order, not XORed.
#[test]
fn host_pairs_alike_in_their_differing_bits_spread() {
    let program = program();
    let mut used = [false; 4];
    for subnet in 0..64u8 {
        let pair = ip([10, 0, subnet, 1].into(), [10, 0, subnet, 2].into(), 17, &ports(53, 53, b""));
        used[(run(&program, 0x0800, &pair) % 4) as usize] = true;
    }
    assert!(used.iter().all(|&u| u), "64 host pairs should reach all 4 sockets: {used:?}");
}

/// TCP goes by its ports too; UDP by its addresses only, so that its fragments (here IPv6's, which the kernel does
/// not reassemble for the program) go with it.
#[test]
fn udp_and_its_fragments_go_by_their_addresses() {
    let program = program();
    let (a, b): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::53".parse().unwrap());
    let query = ip(a, b, 17, &ports(40000, 53, b"q"));
    let fragment = ip(b, a, 44, &[17, 0, 0, 1, 0, 0, 0, 9]);
    assert_eq!(run(&program, 0x86dd, &query), run(&program, 0x86dd, &fragment));
    let spread =
        (40000..40064u16).map(|p| run(&program, 0x86dd, &ip(a, b, 6, &ports(p, 443, b"")))).collect::<Vec<_>>();
    assert!(spread.iter().any(|&h| h % 4 != spread[0] % 4), "TCP flows between two hosts spread by their ports");
}

/// Fragments are hashed by their addresses (IPv4's are reassembled by the kernel first; these are the rest).
#[test]
fn fragments_are_hashed_by_their_addresses() {
    let program = program();
    let mut fragment = ip([192, 0, 2, 1].into(), [192, 0, 2, 2].into(), 17, &ports(1, 2, b"x"));
    fragment[6] = 0x20; // more fragments
    let mut other_ports = ip([192, 0, 2, 1].into(), [192, 0, 2, 2].into(), 17, &ports(3, 4, b"x"));
    other_ports[6] = 0x20;
    assert_eq!(run(&program, 0x0800, &fragment), run(&program, 0x0800, &other_ports));
}

/// Within the kernel's limits (4,096 instructions), every jump forward and in range (`assemble` checks).
#[test]
fn the_program_fits_the_kernel() {
    let program = program();
    assert!(program.len() < 4096, "{} instructions", program.len());
    assert_eq!(program.last().map(|i| i.code), Some(RET | RET_A));
}

/// The program runs in the kernel for every packet: its paths stay short. Printed for docs/BENCHMARKS.md.
#[test]
fn the_paths_are_short() {
    let program = program();
    let v4 = ip([192, 0, 2, 1].into(), [192, 0, 2, 2].into(), 6, &ports(1, 2, b""));
    let plain = execute(&program, 0x0800, &v4).1;
    let v6 = ip("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap(), 6, &ports(1, 2, b""));
    let (what, longest) = encapsulations(&v6, 1)
        .into_iter()
        .map(|(what, protocol, packet)| (what, execute(&program, protocol, &packet).1))
        .max_by_key(|(_, steps)| *steps)
        .expect("encapsulations");
    println!("paths: {plain} instructions for IPv4 TCP; {longest} at most ({what}, IPv6 inside)");
    assert!(plain < 60, "IPv4 TCP: {plain} instructions");
    assert!(longest < 170, "{what}: {longest} instructions");
}
