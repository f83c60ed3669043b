//! The AF_PACKET fanout program: which socket of the group, and so which analysis thread, a packet goes to.
//!
//! The kernel's own `PACKET_FANOUT_HASH` hashes the outer headers of a UDP tunnel. A sensor fed by a traffic
//! mirror gets every packet in one VXLAN or GRE flow from the mirror, so all of them would go to one thread, and a
//! VXLAN endpoint that picks the outer source port from the inner flow (RFC 7348 §5; Linux does) sends the two
//! directions of one connection from two ports, so they would go to two threads and each would see half a
//! connection. This classic BPF program (`PACKET_FANOUT_CBPF`) picks the socket by the rule `runner::flow_shard`
//! picks a thread by: a symmetric hash of the addresses, and of the ports for TCP and SCTP, of the packet inside
//! VXLAN, Geneve, GTP-U, GRE (with transparent Ethernet bridging and ERSPAN I-III) and IP-in-IP, else of the packet
//! itself. UDP goes by its addresses, so its fragments (which carry no ports but in the first, and which the
//! kernel reassembles for IPv4 only) go where the rest of it goes. Classic BPF needs no privilege beyond the
//! socket's, and the kernel checks and JIT-compiles it.
//!
//! The program reads from the network header (`SKF_NET_OFF`), so whatever link header the interface has is
//! behind it; 802.1Q/802.1ad tags left in the data (the kernel takes the outer one off before packet sockets see
//! the packet) are skipped, up to two, also inside a tunnel's Ethernet frame. IPv4 fragments are reassembled by
//! the kernel first (`PACKET_FANOUT_FLAG_DEFRAG`); other fragments and IPv6 packets with extension headers are
//! hashed by their addresses only (a TCP flow whose packets carry extension headers only sometimes may be split). A packet it cannot read (cut short) goes to the first socket, as the kernel's
//! BPF returns 0 on a load outside the packet.

use std::collections::HashMap;

use libc::sock_filter;

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const ADD: u16 = 0x00;
const MUL: u16 = 0x20;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const XOR: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JSET: u16 = 0x40;
const SRC_X: u16 = 0x08;
const RET_A: u16 = 0x10;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// Loads at `SKF_NET_OFF + n` read byte `n` of the network header (linux/filter.h).
const SKF_NET_OFF: i32 = -0x10_0000;
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the packet's ethertype (`skb->protocol`, host order).
const SKF_AD_PROTOCOL: i32 = -0x1000;

// Scratch memory slots.
/// Offset of the IP header being read (from the network header).
const M_L3: u32 = 0;
/// Its addresses, mixed so that both directions give the same (IPv4's in order, IPv6's word by word XOR).
const M_ADDR: u32 = 1;
/// Offset of its transport header.
const M_L4: u32 = 2;
const M_TMP: u32 = 3;
/// A tunnel header's flags.
const M_FLAGS: u32 = 4;
/// Offset of what a tunnel header carries.
const M_NEXT: u32 = 5;
const SLOTS: u32 = 6;

/// An odd multiplier (a murmur3 constant) that spreads the lesser IPv4 address before the greater is mixed in.
const ADDRESS_MIX: u32 = 0xcc9e_2d51;

const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const ETHERTYPE_VLAN: u32 = 0x8100;
const ETHERTYPE_QINQ: u32 = 0x88a8;
const ETHERTYPE_TEB: u32 = 0x6558;
const ETHERTYPE_ERSPAN_1_2: u32 = 0x88be;
const ETHERTYPE_ERSPAN_3: u32 = 0x22eb;

/// The program, ready for `PACKET_FANOUT_DATA`. Classic BPF only jumps forward, so the code is laid out in the
/// order a packet is read: its own link and IP headers, the tunnels, then the hash of the outer packet and of the
/// packet a tunnel carried.
pub fn program() -> Vec<sock_filter> {
    let mut a = Asm::default();
    a.stmt(LD | IMM, 0);
    for slot in 0..SLOTS {
        a.stmt(ST, slot);
    }
    a.stmt(LD | H | ABS, SKF_AD_PROTOCOL as u32);
    a.stmt(LDX | IMM, 0);
    // Tags the kernel left in the data; A is the ethertype, X where the header it names starts.
    a.skip_tags("tag");
    a.switch("l3", &[(ETHERTYPE_IPV4, "v4_0"), (ETHERTYPE_IPV6, "v6_0")], "not_ip");
    a.label("not_ip");
    a.stmt(RET, 0);
    a.ip_header(0);
    a.tunnels();
    a.flow_hash(0);
    a.ip_header(1);
    a.flow_hash(1);
    a.label("finish");
    // Spread the symmetric hash's bits over the high half; the kernel takes the result modulo the sockets.
    a.stmt(ALU | MUL, 0x9e37_79b1);
    a.stmt(ALU | RSH, 16);
    a.stmt(RET | RET_A, 0);
    a.assemble()
}

/// Where a jump goes.
enum Jump {
    Next,
    To(String),
}

/// A classic BPF assembler with labels: the program is written top to bottom and jumps name their targets.
#[derive(Default)]
struct Asm {
    code: Vec<(u16, Jump, Jump, u32)>,
    labels: HashMap<String, usize>,
}

impl Asm {
    fn label(&mut self, name: &str) {
        let previous = self.labels.insert(name.to_string(), self.code.len());
        assert!(previous.is_none(), "label {name} defined twice");
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push((code, Jump::Next, Jump::Next, k));
    }

    /// A conditional jump on A == k, to labels within 255 instructions.
    fn jeq(&mut self, k: u32, yes: &str, no: &str) {
        self.code.push((JMP | JEQ, Jump::To(yes.into()), Jump::To(no.into()), k));
    }

    /// Goes on at the target of the first of `cases` whose value A equals, else at `otherwise`; targets may be
    /// any distance ahead.
    fn switch(&mut self, name: &str, cases: &[(u32, &str)], otherwise: &str) {
        for (i, (value, _)) in cases.iter().enumerate() {
            let miss = format!("{name}_miss{i}");
            self.jeq(*value, &format!("{name}_case{i}"), &miss);
            self.label(&miss);
        }
        self.ja(otherwise);
        for (i, (_, target)) in cases.iter().enumerate() {
            self.label(&format!("{name}_case{i}"));
            self.ja(target);
        }
    }

    /// A conditional jump on A > X.
    fn jgt_x(&mut self, yes: &str, no: &str) {
        self.code.push((JMP | JGT | SRC_X, Jump::To(yes.into()), Jump::To(no.into()), 0));
    }

    /// A conditional jump on A & k != 0.
    fn jset(&mut self, k: u32, yes: &str, no: &str) {
        self.code.push((JMP | JSET, Jump::To(yes.into()), Jump::To(no.into()), k));
    }

    /// An unconditional jump, any distance.
    fn ja(&mut self, to: &str) {
        // The target rides in the jump-if-true slot; `assemble` turns it into the offset in `k`.
        self.code.push((JMP | JA, Jump::To(to.into()), Jump::Next, 0));
    }

    /// A load of `size` bytes at `X + off` from the network header.
    fn ld_net(&mut self, size: u16, off: i32) {
        self.stmt(LD | size | IND, (SKF_NET_OFF + off) as u32);
    }

    /// A = A op M[slot] (X is restored from slot `restore_x` afterwards, when given).
    fn op_slot(&mut self, op: u16, slot: u32, restore_x: Option<u32>) {
        self.stmt(LDX | MEM, slot);
        self.stmt(ALU | op | SRC_X, 0);
        if let Some(x) = restore_x {
            self.stmt(LDX | MEM, x);
        }
    }

    /// X += n, keeping A.
    fn advance_x(&mut self, n: u32) {
        self.stmt(ST, M_TMP);
        self.stmt(MISC | TXA, 0);
        self.stmt(ALU | ADD, n);
        self.stmt(MISC | TAX, 0);
        self.stmt(LD | MEM, M_TMP);
    }

    /// With A an ethertype and X where its header starts: up to two VLAN or QinQ tags skipped, A the ethertype
    /// after them and X where that header starts.
    fn skip_tags(&mut self, name: &str) {
        for i in 0..2 {
            let (tag, other, after) = (format!("{name}{i}"), format!("{name}{i}_other"), format!("{name}{i}_after"));
            self.jeq(ETHERTYPE_VLAN, &tag, &other);
            self.label(&other);
            self.jeq(ETHERTYPE_QINQ, &tag, &after);
            self.label(&tag);
            self.ld_net(H, 2);
            self.advance_x(4);
            self.label(&after);
        }
    }

    /// An IPv4 or IPv6 header at X at tunnel depth `level` (labels `v4_L`, `v6_L`): its addresses mixed into
    /// M_ADDR, its transport header's offset in M_L4, then on by its protocol: TCP and SCTP to their ports, at
    /// level 0 the tunnels, anything else (UDP, fragments) to the addresses.
    fn ip_header(&mut self, level: u8) {
        let l = |name: &str| format!("{name}_{level}");
        // IPv4's addresses ordered (as the kernel's own flow hash does), then min * K ^ max: a plain XOR would
        // give every pair of hosts with the same differing bits (.1 and .2 of any subnet) the same socket.
        self.label(&l("v4"));
        self.stmt(STX, M_L3);
        self.ld_net(W, 12);
        self.stmt(ST, M_TMP);
        self.ld_net(W, 16);
        self.stmt(LDX | MEM, M_TMP);
        self.jgt_x(&l("v4_ordered"), &l("v4_swapped"));
        self.label(&l("v4_ordered"));
        // A is the greater address, X the other.
        self.stmt(ST, M_ADDR);
        self.stmt(MISC | TXA, 0);
        self.ja(&l("v4_mix"));
        self.label(&l("v4_swapped"));
        self.stmt(ST, M_TMP);
        self.stmt(MISC | TXA, 0);
        self.stmt(ST, M_ADDR);
        self.stmt(LD | MEM, M_TMP);
        // A is the lesser address, M_ADDR the greater.
        self.label(&l("v4_mix"));
        self.stmt(ALU | MUL, ADDRESS_MIX);
        self.op_slot(XOR, M_ADDR, Some(M_L3));
        self.stmt(ST, M_ADDR);
        self.ld_net(H, 6);
        self.jset(0x3fff, &l("fragment"), &l("whole"));
        self.label(&l("fragment"));
        self.ja(&l("addresses"));
        self.label(&l("whole"));
        self.ld_net(B, 0);
        self.stmt(ALU | AND, 0x0f);
        self.stmt(ALU | LSH, 2);
        self.stmt(ALU | ADD | SRC_X, 0);
        self.stmt(ST, M_L4);
        self.ld_net(B, 9);
        self.stmt(LDX | MEM, M_L4);
        self.ja(&l("l4"));

        self.label(&l("v6"));
        self.stmt(STX, M_L3);
        self.ld_net(W, 8);
        self.stmt(ST, M_ADDR);
        for word in (12..40).step_by(4) {
            self.ld_net(W, word);
            self.op_slot(XOR, M_ADDR, Some(M_L3));
            self.stmt(ST, M_ADDR);
        }
        self.stmt(MISC | TXA, 0);
        self.stmt(ALU | ADD, 40);
        self.stmt(ST, M_L4);
        self.ld_net(B, 6);
        self.stmt(LDX | MEM, M_L4);

        // A is the protocol, X where its header starts.
        self.label(&l("l4"));
        if level == 0 {
            let cases = [(6, "ports_0"), (132, "ports_0"), (17, "udp_0"), (47, "gre"), (4, "v4_1"), (41, "v6_1")];
            self.switch("l4_0", &cases, "addresses_0");
            self.label("udp_0");
            self.ld_net(H, 2);
            self.switch("udp_port", &[(4789, "vxlan"), (6081, "geneve"), (2152, "gtp")], "addresses_0");
        } else {
            self.switch("l4_1", &[(6, "ports_1"), (132, "ports_1")], "addresses_1");
        }
    }

    /// The hash of the flow at depth `level`: its addresses' mix and, from `ports_L` with X at the transport header,
    /// the XOR of its ports. Symmetric: both directions of a flow give the same.
    fn flow_hash(&mut self, level: u8) {
        let l = |name: &str| format!("{name}_{level}");
        self.label(&l("ports"));
        self.ld_net(H, 0);
        self.stmt(ST, M_TMP);
        self.ld_net(H, 2);
        self.op_slot(XOR, M_TMP, None);
        self.op_slot(XOR, M_ADDR, None);
        self.ja("finish");
        self.label(&l("addresses"));
        self.stmt(LD | MEM, M_ADDR);
        self.ja("finish");
    }

    /// The tunnels followed from level 0, each entered with X at its header (the transport header for UDP ones):
    /// what they carry goes on at level 1 (`v4_1`, `v6_1`), and a header that does not parse hashes the outer
    /// packet by its addresses (`addresses_0`).
    fn tunnels(&mut self) {
        // GRE version 0 without routing: 4 bytes, and 4 for each of checksum, key and sequence number.
        self.label("gre");
        self.ld_net(H, 0);
        self.stmt(ST, M_FLAGS);
        self.stmt(ALU | AND, 0x4007);
        self.jeq(0, "gre_v0", "gre_other");
        self.label("gre_other");
        self.ja("addresses_0");
        self.label("gre_v0");
        self.stmt(LD | MEM, M_FLAGS);
        self.stmt(ALU | AND, 0x8000);
        self.stmt(ALU | RSH, 13);
        self.stmt(ST, M_TMP);
        for (flag, shift) in [(0x2000, 11), (0x1000, 10)] {
            self.stmt(LD | MEM, M_FLAGS);
            self.stmt(ALU | AND, flag);
            self.stmt(ALU | RSH, shift);
            self.op_slot(ADD, M_TMP, None);
            self.stmt(ST, M_TMP);
        }
        self.stmt(ALU | ADD, 4);
        self.stmt(LDX | MEM, M_L4);
        self.stmt(ALU | ADD | SRC_X, 0);
        self.stmt(ST, M_NEXT);
        self.ld_net(H, 2);
        let cases = [
            (ETHERTYPE_IPV4, "next_ip4"),
            (ETHERTYPE_IPV6, "next_ip6"),
            (ETHERTYPE_TEB, "next_ethernet"),
            (ETHERTYPE_ERSPAN_1_2, "erspan_1_2"),
            (ETHERTYPE_ERSPAN_3, "erspan_3"),
        ];
        self.switch("gre_type", &cases, "addresses_0");
        // ERSPAN type II has an 8-byte header (type I, without GRE's sequence number, none); type III 12 bytes,
        // 20 when its last byte's O bit announces the optional subheader.
        self.label("erspan_1_2");
        self.stmt(LD | MEM, M_FLAGS);
        self.jset(0x1000, "erspan_2", "erspan_1");
        self.label("erspan_1");
        self.ja("next_ethernet");
        self.label("erspan_2");
        self.skip_next(8, "next_ethernet");
        self.label("erspan_3");
        self.stmt(LDX | MEM, M_NEXT);
        self.ld_net(B, 11);
        self.jset(0x01, "erspan_3_optional", "erspan_3_plain");
        self.label("erspan_3_optional");
        self.skip_next(20, "next_ethernet");
        self.label("erspan_3_plain");
        self.skip_next(12, "next_ethernet");

        // VXLAN: the I flag, then an Ethernet frame after its 8 bytes.
        self.label("vxlan");
        self.ld_net(B, 8);
        self.jset(0x08, "vxlan_valid", "vxlan_invalid");
        self.label("vxlan_valid");
        self.stmt(MISC | TXA, 0);
        self.stmt(ALU | ADD, 16);
        self.stmt(ST, M_NEXT);
        self.ja("next_ethernet");
        self.label("vxlan_invalid");
        self.ja("addresses_0");

        // Geneve: 8 bytes and the options' length in words; Ethernet, IPv4 or IPv6 by its protocol type.
        self.label("geneve");
        self.ld_net(B, 8);
        self.stmt(ALU | AND, 0x3f);
        self.stmt(ALU | LSH, 2);
        self.stmt(ALU | ADD, 16);
        self.stmt(ALU | ADD | SRC_X, 0);
        self.stmt(ST, M_NEXT);
        self.ld_net(H, 10);
        let cases = [(ETHERTYPE_TEB, "next_ethernet"), (ETHERTYPE_IPV4, "next_ip4"), (ETHERTYPE_IPV6, "next_ip6")];
        self.switch("geneve_type", &cases, "addresses_0");

        // GTPv1-U G-PDUs: 8 bytes, 12 with any of E, S and PN, and with E up to two extension headers; then IPv4
        // or IPv6 by the version.
        self.label("gtp");
        self.ld_net(B, 8);
        self.stmt(ST, M_FLAGS);
        self.stmt(ALU | AND, 0xf0);
        self.jeq(0x30, "gtp_v1", "gtp_invalid");
        self.label("gtp_v1");
        self.ld_net(B, 9);
        self.jeq(255, "gtp_g_pdu", "gtp_invalid");
        self.label("gtp_g_pdu");
        self.stmt(MISC | TXA, 0);
        self.stmt(ALU | ADD, 16);
        self.stmt(ST, M_NEXT);
        self.stmt(LD | MEM, M_FLAGS);
        self.jset(0x07, "gtp_optional", "gtp_ip");
        self.label("gtp_optional");
        self.stmt(LD | MEM, M_NEXT);
        self.stmt(ALU | ADD, 4);
        self.stmt(ST, M_NEXT);
        self.stmt(LD | MEM, M_FLAGS);
        self.jset(0x04, "gtp_extensions", "gtp_ip");
        self.label("gtp_extensions");
        self.ld_net(B, 8 + 11);
        for i in 0..2 {
            let (next, header) = (format!("gtp_extension_{i}"), format!("gtp_extension_{i}_length"));
            self.jeq(0, "gtp_ip", &next);
            self.label(&next);
            self.stmt(LDX | MEM, M_NEXT);
            self.ld_net(B, 0);
            self.jeq(0, "gtp_invalid", &header);
            self.label(&header);
            self.stmt(ALU | LSH, 2);
            self.stmt(ALU | ADD | SRC_X, 0);
            self.stmt(ST, M_NEXT);
            self.stmt(MISC | TAX, 0);
            self.ld_net(B, -1);
        }
        self.jeq(0, "gtp_ip", "gtp_invalid");
        self.label("gtp_ip");
        self.stmt(LDX | MEM, M_NEXT);
        self.ld_net(B, 0);
        self.stmt(ALU | RSH, 4);
        self.switch("gtp_version", &[(4, "next_ip4"), (6, "next_ip6")], "gtp_invalid");
        self.label("gtp_invalid");
        self.ja("addresses_0");

        // An Ethernet frame at M_NEXT: its tags skipped, then IPv4 or IPv6; anything else hashes the outer
        // addresses.
        self.label("next_ethernet");
        self.stmt(LDX | MEM, M_NEXT);
        self.ld_net(H, 12);
        self.advance_x(14);
        self.skip_tags("inner_tag");
        self.switch("inner_type", &[(ETHERTYPE_IPV4, "v4_1"), (ETHERTYPE_IPV6, "v6_1")], "addresses_0");
        // An IP packet at M_NEXT.
        self.label("next_ip4");
        self.stmt(LDX | MEM, M_NEXT);
        self.ja("v4_1");
        self.label("next_ip6");
        self.stmt(LDX | MEM, M_NEXT);
        self.ja("v6_1");
    }

    /// M_NEXT += n, then on at `then`.
    fn skip_next(&mut self, n: u32, then: &str) {
        self.stmt(LD | MEM, M_NEXT);
        self.stmt(ALU | ADD, n);
        self.stmt(ST, M_NEXT);
        self.ja(then);
    }

    /// Resolves the labels. A conditional jump further than 255 instructions cannot be encoded: a mistake in the
    /// program above, which its tests run into.
    fn assemble(self) -> Vec<sock_filter> {
        let target = |at: usize, jump: &Jump| -> u32 {
            match jump {
                Jump::Next => 0,
                Jump::To(label) => {
                    let to = *self.labels.get(label).unwrap_or_else(|| panic!("no label {label}"));
                    assert!(to > at, "jump backwards to {label}");
                    (to - at - 1) as u32
                }
            }
        };
        let short = |offset: u32, label: &Jump| -> u8 {
            u8::try_from(offset).unwrap_or_else(|_| match label {
                Jump::To(name) => panic!("conditional jump to {name} is {offset} instructions away"),
                Jump::Next => unreachable!(),
            })
        };
        self.code
            .iter()
            .enumerate()
            .map(|(at, (code, jt, jf, k))| {
                if *code == JMP | JA {
                    sock_filter { code: *code, jt: 0, jf: 0, k: target(at, jt) }
                } else {
                    let (t, f) = (target(at, jt), target(at, jf));
                    sock_filter { code: *code, jt: short(t, jt), jf: short(f, jf), k: *k }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
