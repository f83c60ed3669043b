//! Live capture with Linux AF_PACKET: one TPACKET_V3 memory-mapped receive ring per socket, and one socket per
//! analysis thread, all joined in one fanout group whose program ([`super::fanout`]) spreads flows over the
//! threads by a symmetric hash of the flow, inside the tunnels a traffic mirror uses, so both directions of a
//! connection land on the same socket.
//!
//! Written on the `libc` crate rather than a capture crate: of the TPACKET_V3 crates on crates.io, `af_packet` is
//! GPL-3.0 (this project is BSD-3-Clause) and dormant since 2020, and `netring` (MIT/Apache) is a 0.x API that
//! broke in some thirty minor releases within a year and always pulls its own flow-analysis stack (`flowscope`)
//! in. The receive path needed here (ring setup, block walk, fanout, filter, statistics) is small and stable
//! kernel ABI (Documentation/networking/packet_mmap.rst), so owning it costs less than either dependency.
//!
//! Memory model: the kernel hands a whole block to user space by setting `TP_STATUS_USER` in the block header;
//! every packet slice returned points into that block, which is given back (`TP_STATUS_KERNEL`) only on the
//! next call, i.e. after the borrow of the previous packet has ended.

use std::ffi::CString;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{CaptureError, CaptureStats, Next, RawPacket, fanout};
use crate::decode::LinkType;

/// Ring geometry per socket: blocks of 1 MiB, [`DEFAULT_RING_MIB`] of them unless asked. A block is handed over
/// when full or after `BLOCK_RETIRE_MS`, so a quiet link still delivers within that delay.
const BLOCK_SIZE: u32 = 1 << 20;
/// Each socket's ring when none is asked for: 32 blocks of 1 MiB.
pub const DEFAULT_RING_MIB: u32 = 32;
/// The smallest ring, in MiB (blocks): fewer leave the kernel too few blocks to fill while the reader holds one.
pub const MIN_RING_MIB: u32 = 4;
/// Only used by the kernel to size its frame bookkeeping in V3 (frames are variable-sized).
const FRAME_SIZE: u32 = 2048;
const BLOCK_RETIRE_MS: u32 = 20;
/// How long one `next_packet` call waits for traffic before returning `Next::Idle`.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Offsets inside a block descriptor (`struct tpacket_block_desc` → `struct tpacket_hdr_v1`).
const BLOCK_HDR: usize = offset_of!(libc::tpacket_block_desc, hdr);
const BLOCK_STATUS: usize = BLOCK_HDR + offset_of!(libc::tpacket_hdr_v1, block_status);
const BLOCK_NUM_PKTS: usize = BLOCK_HDR + offset_of!(libc::tpacket_hdr_v1, num_pkts);
const BLOCK_FIRST_PKT: usize = BLOCK_HDR + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);

/// What one capture group (all the sockets of one run) is asked for.
#[derive(Debug, Clone)]
pub struct AfPacketConfig {
    pub iface: String,
    /// The PACKET_FANOUT group id (16 bits, per network namespace).
    pub fanout_id: u16,
    /// A BPF filter in libpcap syntax, compiled with libpcap and attached in the kernel.
    pub filter: Option<String>,
    /// Each socket's ring, in MiB (1 MiB blocks; at least [`MIN_RING_MIB`]): what absorbs a burst while the socket's
    /// analysis thread is busy.
    pub ring_mib: u32,
}

/// The default fanout group: derived from the pid, so two captures on one host do not join each other's group.
pub fn default_fanout_id() -> u16 {
    (std::process::id() & 0xffff) as u16
}

/// Opens `sockets` AF_PACKET sockets on one interface, joined in one PACKET_FANOUT_CBPF group that runs
/// [`fanout::program`].
///
/// Every socket starts with a drop-all filter and gets the real one only once the whole group is formed: until
/// the last socket joins, the kernel would send every flow to the sockets already in the group, so a flow's first
/// packets and its later ones could end up on different threads.
pub fn open_group(cfg: &AfPacketConfig, sockets: usize) -> Result<Vec<AfPacketSource>, CaptureError> {
    let hardware = hardware_of(&cfg.iface)?;
    let link = hardware.link;
    let filter = match cfg.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(compile_filter(f, link)?),
        None => None,
    };
    let mut group: Vec<AfPacketSource> = Vec::with_capacity(sockets.max(1));
    for _ in 0..sockets.max(1) {
        let source = AfPacketSource::open(&cfg.iface, hardware, cfg.ring_mib.max(MIN_RING_MIB))?;
        source.join_fanout(cfg.fanout_id, hardware.loopback)?;
        if group.is_empty() {
            // The program belongs to the group; any member sets it.
            source.set_fanout_program(&fanout::program())?;
        }
        group.push(source);
    }
    for source in &group {
        match &filter {
            Some(program) => source.attach_filter(program)?,
            None => source.attach_filter(&[ACCEPT_ALL])?,
        }
    }
    Ok(group)
}

const DROP_ALL: libc::sock_filter = libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: 0 };
const ACCEPT_ALL: libc::sock_filter = libc::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: u32::MAX };
/// `BPF_RET | BPF_K`: return the constant as the number of bytes to keep.
const BPF_RET_K: u16 = 0x06;

/// Compiles a libpcap filter expression into classic BPF for SO_ATTACH_FILTER.
pub fn compile_filter(expr: &str, link: LinkType) -> Result<Vec<libc::sock_filter>, CaptureError> {
    let filter_err = |cause| CaptureError::Filter { filter: expr.to_string(), cause };
    let dlt = match link {
        LinkType::Raw => pcap::Linktype(12),
        _ => pcap::Linktype::ETHERNET,
    };
    let dead = pcap::Capture::dead(dlt).map_err(filter_err)?;
    let program = dead.compile(expr, true).map_err(filter_err)?;
    // pcap::BpfInstruction keeps its fields private but prints them as "code jt jf k".
    program
        .get_instructions()
        .iter()
        .map(|insn| parse_insn(&insn.to_string()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| filter_err(pcap::Error::PcapError("unexpected BPF instruction format".into())))
}

fn parse_insn(text: &str) -> Option<libc::sock_filter> {
    let mut parts = text.split_ascii_whitespace();
    let insn = libc::sock_filter {
        code: parts.next()?.parse().ok()?,
        jt: parts.next()?.parse().ok()?,
        jf: parts.next()?.parse().ok()?,
        k: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(insn)
}

/// What the interface's ARPHRD hardware type says about capturing on it.
#[derive(Debug, Clone, Copy)]
struct Hardware {
    /// The link layer AF_PACKET delivers.
    link: LinkType,
    /// Loopback delivers every packet twice to packet sockets (outgoing, then incoming).
    loopback: bool,
}

fn hardware_of(iface: &str) -> Result<Hardware, CaptureError> {
    let name = interface_name(iface)?;
    let fd = socket(iface)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes_with_nul()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the name and writes the hardware address into `req`, which outlives the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(os_error(iface, "SIOCGIFHWADDR", io::Error::last_os_error()));
    }
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let hw_type = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    match hw_type {
        libc::ARPHRD_ETHER => Ok(Hardware { link: LinkType::Ethernet, loopback: false }),
        libc::ARPHRD_LOOPBACK => Ok(Hardware { link: LinkType::Ethernet, loopback: true }),
        libc::ARPHRD_NONE => Ok(Hardware { link: LinkType::Raw, loopback: false }),
        other => Err(CaptureError::UnsupportedHardware { iface: iface.to_string(), arphrd: other }),
    }
}

fn interface_name(iface: &str) -> Result<CString, CaptureError> {
    match CString::new(iface) {
        Ok(name) if !iface.is_empty() && iface.len() < libc::IFNAMSIZ => Ok(name),
        _ => Err(CaptureError::NoSuchInterface(iface.to_string())),
    }
}

/// Maps the errors a user can act on to their own messages.
fn os_error(iface: &str, what: &'static str, source: io::Error) -> CaptureError {
    match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => CaptureError::NotPermitted(iface.to_string()),
        Some(libc::ENODEV | libc::ENXIO) => CaptureError::NoSuchInterface(iface.to_string()),
        _ => CaptureError::Os { iface: iface.to_string(), what, cause: source },
    }
}

/// An AF_PACKET socket that is not yet bound (protocol 0), so it receives nothing until `bind`.
fn socket(iface: &str) -> Result<OwnedFd, CaptureError> {
    // SAFETY: plain syscall; the returned descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_error(iface, "socket(AF_PACKET)", io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_option<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The mmap'd receive ring.
struct Ring {
    base: NonNull<u8>,
    len: usize,
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: base/len come from a successful mmap and nothing borrows the ring once its owner is dropped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Where the reader is inside a block the kernel has handed over.
#[derive(Debug, Clone, Copy)]
struct BlockCursor {
    remaining: u32,
    /// Offset of the next packet header from the block start.
    offset: usize,
}

/// One packet located in the ring (offsets are absolute in the ring).
struct Located {
    ts: f64,
    start: usize,
    len: usize,
    /// A VLAN tag the kernel stripped (TPID, TCI): it goes back into the frame before analysis.
    vlan: Option<(u16, u16)>,
}

/// One AF_PACKET socket with its TPACKET_V3 ring.
pub struct AfPacketSource {
    iface: String,
    link: LinkType,
    // The ring is unmapped before the socket is closed (field order = drop order).
    ring: Ring,
    fd: OwnedFd,
    block: usize,
    /// Blocks in the ring.
    blocks: usize,
    cursor: Option<BlockCursor>,
    /// Scratch for frames whose VLAN tag is put back.
    vlan_frame: Vec<u8>,
    /// PACKET_STATISTICS resets on every read, so the totals are kept here.
    totals: CaptureStats,
    link_watch: super::LinkWatch,
}

// SAFETY: the ring is private to this value (no aliasing across threads); the raw pointer is the only
// non-Send part and it is only dereferenced through &mut self / &self of the one owner.
unsafe impl Send for AfPacketSource {}

impl AfPacketSource {
    fn open(iface: &str, hardware: Hardware, blocks: u32) -> Result<Self, CaptureError> {
        let name = interface_name(iface)?;
        let fd = socket(iface)?;
        let err = |what, e| os_error(iface, what, e);
        set_option(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog(&[DROP_ALL]))
            .map_err(|e| err("SO_ATTACH_FILTER", e))?;
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &(libc::tpacket_versions::TPACKET_V3 as libc::c_int))
            .map_err(|e| err("PACKET_VERSION", e))?;
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: blocks,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * blocks,
            tp_retire_blk_tov: BLOCK_RETIRE_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req).map_err(|e| err("PACKET_RX_RING", e))?;
        let ring = map_ring(&fd, BLOCK_SIZE as usize * blocks as usize).map_err(|e| err("mmap", e))?;

        // SAFETY: if_nametoindex only reads the NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(CaptureError::NoSuchInterface(iface.to_string()));
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: addr is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(err("bind", io::Error::last_os_error()));
        }
        let promisc = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &promisc)
            .map_err(|e| err("PACKET_ADD_MEMBERSHIP (promiscuous mode)", e))?;
        Ok(AfPacketSource {
            iface: iface.to_string(),
            link: hardware.link,
            ring,
            fd,
            block: 0,
            blocks: blocks as usize,
            cursor: None,
            vlan_frame: Vec::new(),
            totals: CaptureStats::default(),
            link_watch: super::LinkWatch::default(),
        })
    }

    fn join_fanout(&self, group: u16, loopback: bool) -> Result<(), CaptureError> {
        // DEFRAG: the kernel reassembles IPv4 fragments before the program runs, so they follow their flow.
        let mut mode: u32 = libc::PACKET_FANOUT_CBPF | libc::PACKET_FANOUT_FLAG_DEFRAG;
        if loopback {
            // Keep only the incoming copy, as libpcap does. In a fanout group the group's hook receives the
            // packets, so this is a group flag (PACKET_IGNORE_OUTGOING on the socket would not apply).
            mode |= libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        }
        let arg: u32 = u32::from(group) | (mode << 16);
        set_option(&self.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg).map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL | libc::EALREADY | libc::EEXIST) => CaptureError::FanoutInUse(group),
            _ => os_error(&self.iface, "PACKET_FANOUT", e),
        })
    }

    fn set_fanout_program(&self, program: &[libc::sock_filter]) -> Result<(), CaptureError> {
        set_option(&self.fd, libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &fprog(program))
            .map_err(|e| os_error(&self.iface, "PACKET_FANOUT_DATA", e))
    }

    fn attach_filter(&self, program: &[libc::sock_filter]) -> Result<(), CaptureError> {
        set_option(&self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog(program))
            .map_err(|e| os_error(&self.iface, "SO_ATTACH_FILTER", e))
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The next captured packet, or `Idle` after waiting `POLL_TIMEOUT` (or a signal) without traffic.
    pub fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        self.next(true)
    }

    /// The next packet the kernel has already handed over, `Idle` if there is none (never waits): for draining
    /// the ring when the capture stops.
    pub fn next_ready_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        self.next(false)
    }

    /// How long after the last packet the kernel hands over a partly filled block.
    pub fn block_retire_delay() -> Duration {
        Duration::from_millis(u64::from(BLOCK_RETIRE_MS))
    }

    fn next(&mut self, wait: bool) -> Result<Next<'_>, CaptureError> {
        let Some(found) = self.locate_next(wait)? else { return Ok(Next::Idle) };
        self.link_watch.traffic(&self.iface);
        // SAFETY: `locate_next` checked start+len against the ring, and the block stays user-owned until the
        // next call on &mut self, which cannot happen while the returned borrow lives.
        let frame = unsafe { std::slice::from_raw_parts(self.ring.base.as_ptr().add(found.start), found.len) };
        let data = match found.vlan {
            Some((tpid, tci)) if self.link == LinkType::Ethernet && frame.len() >= 12 => {
                self.vlan_frame.clear();
                self.vlan_frame.extend_from_slice(&frame[..12]);
                self.vlan_frame.extend_from_slice(&tpid.to_be_bytes());
                self.vlan_frame.extend_from_slice(&tci.to_be_bytes());
                self.vlan_frame.extend_from_slice(&frame[12..]);
                &self.vlan_frame[..]
            }
            _ => frame,
        };
        Ok(Next::Packet(RawPacket { ts: found.ts, data, wire_len: None }))
    }

    fn locate_next(&mut self, wait: bool) -> Result<Option<Located>, CaptureError> {
        let mut waited = !wait;
        loop {
            if let Some(cursor) = self.cursor {
                if cursor.remaining > 0
                    && let Some(found) = self.read_packet(cursor)
                {
                    return Ok(Some(found));
                }
                self.release_block();
                continue;
            }
            if self.block_status().load(Ordering::Acquire) & libc::TP_STATUS_USER != 0 {
                let base = self.block_offset();
                self.cursor = Some(BlockCursor {
                    remaining: self.read_u32(base + BLOCK_NUM_PKTS),
                    offset: self.read_u32(base + BLOCK_FIRST_PKT) as usize,
                });
                continue;
            }
            if waited {
                return Ok(None);
            }
            self.wait_readable()?;
            waited = true;
        }
    }

    /// Reads the packet header under `cursor` and advances it; None ends the block (done or malformed).
    fn read_packet(&mut self, cursor: BlockCursor) -> Option<Located> {
        let block_size = BLOCK_SIZE as usize;
        let header_end = cursor.offset.checked_add(size_of::<libc::tpacket3_hdr>())?;
        if header_end > block_size {
            return None;
        }
        let block = self.block_offset();
        // SAFETY: the header lies inside this block (checked above), which the kernel has handed to us.
        let hdr: libc::tpacket3_hdr = unsafe {
            std::ptr::read_unaligned(self.ring.base.as_ptr().add(block + cursor.offset).cast::<libc::tpacket3_hdr>())
        };
        let start = cursor.offset.checked_add(usize::from(hdr.tp_mac))?;
        let len = hdr.tp_snaplen as usize;
        if start.checked_add(len)? > block_size {
            return None;
        }
        let next = match hdr.tp_next_offset {
            0 => block_size, // last packet of the block
            n => cursor.offset + n as usize,
        };
        self.cursor = Some(BlockCursor { remaining: cursor.remaining - 1, offset: next });
        let vlan = (hdr.tp_status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if hdr.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { hdr.hv1.tp_vlan_tpid } else { 0x8100 };
            (tpid, hdr.hv1.tp_vlan_tci as u16)
        });
        Some(Located { ts: f64::from(hdr.tp_sec) + f64::from(hdr.tp_nsec) / 1e9, start: block + start, len, vlan })
    }

    fn block_offset(&self) -> usize {
        self.block * BLOCK_SIZE as usize
    }

    /// The block's status word, shared with the kernel.
    fn block_status(&self) -> &AtomicU32 {
        // SAFETY: the status word is 4-byte aligned (blocks are page aligned) and inside the ring; the kernel
        // and we only access it atomically.
        unsafe { &*self.ring.base.as_ptr().add(self.block_offset() + BLOCK_STATUS).cast::<AtomicU32>() }
    }

    fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: callers pass offsets of block-header fields, which lie inside the ring.
        unsafe { std::ptr::read_unaligned(self.ring.base.as_ptr().add(offset).cast::<u32>()) }
    }

    /// Gives the current block back to the kernel and moves on to the next one.
    fn release_block(&mut self) {
        self.block_status().store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.cursor = None;
        self.block = (self.block + 1) % self.blocks;
    }

    fn wait_readable(&mut self) -> Result<(), CaptureError> {
        let ready =
            super::wait_readable(self.fd.as_raw_fd(), POLL_TIMEOUT).map_err(|e| os_error(&self.iface, "poll", e))?;
        if ready == super::Readiness::LinkDown {
            self.link_watch.went_down(&self.iface);
        }
        Ok(())
    }

    /// The kernel's counters for this socket since it was opened: packets that reached the socket (including
    /// those dropped) and packets dropped because the ring was full.
    pub fn stats(&mut self) -> CaptureStats {
        // SAFETY: plain old data.
        let mut raw: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `raw` and `len` are valid for the kernel to write.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut raw as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.totals.received += u64::from(raw.tp_packets);
            self.totals.dropped += u64::from(raw.tp_drops);
        }
        self.totals
    }
}

fn fprog(program: &[libc::sock_filter]) -> libc::sock_fprog {
    libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() }
}

fn map_ring(fd: &OwnedFd, len: usize) -> io::Result<Ring> {
    // SAFETY: maps the ring the kernel allocated for PACKET_RX_RING; the mapping is owned by the returned Ring.
    let ptr = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0)
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast::<u8>()).map(|base| Ring { base, len }).ok_or_else(|| io::Error::other("mmap returned null"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_filter_has_kernel_layout() {
        let program = compile_filter("tcp port 80", LinkType::Ethernet).expect("compiles");
        assert!(program.len() > 4);
        // Classic BPF programs end in a return.
        assert_eq!(program.last().map(|i| i.code & 0x07), Some(0x06));
    }

    #[test]
    fn bad_filter_is_an_error() {
        assert!(matches!(compile_filter("tcp port", LinkType::Ethernet), Err(CaptureError::Filter { .. })));
    }

    #[test]
    fn instruction_text_round_trips() {
        let insn = parse_insn("21 0 5 34525").expect("parses");
        assert_eq!((insn.code, insn.jt, insn.jf, insn.k), (21, 0, 5, 34525));
        assert!(parse_insn("21 0 5").is_none());
        assert!(parse_insn("21 0 5 1 9").is_none());
    }

    #[test]
    fn missing_interface_is_reported() {
        let cfg =
            AfPacketConfig { iface: "zn-no-such0".into(), fanout_id: 1, filter: None, ring_mib: DEFAULT_RING_MIB };
        match open_group(&cfg, 1) {
            Err(CaptureError::NoSuchInterface(i)) | Err(CaptureError::NotPermitted(i)) => assert_eq!(i, "zn-no-such0"),
            other => panic!("unexpected: {:?}", other.err()),
        }
    }
}
