//! Packet sources: savefiles (pcap and pcapng) and live interfaces through libpcap, and on Linux through
//! AF_PACKET rings ([`af_packet`]).

use std::path::Path;

#[cfg(target_os = "linux")]
pub mod af_packet;
mod fanout;
mod mapped;
mod savefile;

use crate::decode::LinkType;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    // Not named `source`: the message carries the cause, and a `source` would print it twice in an error chain.
    #[error("cannot open {what}: {cause}")]
    Open { what: String, cause: pcap::Error },
    #[error("unsupported link type {0} (DLT); supported: Ethernet, raw IP, Linux cooked v1/v2, loopback, PPP")]
    UnsupportedLink(i32),
    #[error("invalid BPF filter '{filter}': {cause}")]
    Filter { filter: String, cause: pcap::Error },
    #[error("capture failed: {0}")]
    Read(pcap::Error),
    #[error("reading the savefile: {0}")]
    ReadFile(std::io::Error),
    #[error("waiting for packets: {0}")]
    Wait(std::io::Error),
    #[error("capturing on {0} needs root (or the CAP_NET_RAW capability)")]
    NotPermitted(String),
    #[error("no such network interface: {0}")]
    NoSuchInterface(String),
    #[error("interface {iface} has hardware type {arphrd} (ARPHRD); AF_PACKET capture supports Ethernet and raw IP")]
    UnsupportedHardware { iface: String, arphrd: u16 },
    #[error(
        "AF_PACKET fanout group {0} is already used by another capture with other settings; pick another --fanout-id"
    )]
    FanoutInUse(u16),
    #[error("AF_PACKET capture on {iface}: {what}: {cause}")]
    Os { iface: String, what: &'static str, cause: std::io::Error },
    #[error("AF_PACKET capture (-i af_packet::IFACE) is only available on Linux")]
    AfPacketUnsupported,
}

/// Packets counted by the capture layer (libpcap's stats, or the kernel's PACKET_STATISTICS summed over the
/// AF_PACKET sockets).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

impl CaptureStats {
    /// Adds another socket's counters (the AF_PACKET sockets of one fanout group).
    pub fn add(&mut self, o: &CaptureStats) {
        self.received = self.received.saturating_add(o.received);
        self.dropped = self.dropped.saturating_add(o.dropped);
        self.if_dropped = self.if_dropped.saturating_add(o.if_dropped);
    }
}

/// One packet as captured.
pub struct RawPacket<'a> {
    pub ts: f64,
    pub data: &'a [u8],
    /// The packet's length on the wire, when the source says (`data` may be cut to the snap length).
    pub wire_len: Option<usize>,
}

/// The outcome of asking a source for the next packet.
pub enum Next<'a> {
    Packet(RawPacket<'a>),
    /// Nothing yet (live capture timeout); try again.
    Idle,
    End,
    /// The savefile ends in the middle of a record: everything before it was read.
    Truncated(String),
}

/// libpcap's kernel buffer when none is asked for.
pub const DEFAULT_PCAP_BUFFER_MIB: u32 = 64;

/// How long a live source waits for traffic before reporting `Next::Idle` (so the caller sees its stop flag).
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// What a wait for a live capture's socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Readable, the timeout passed, or a signal came: the caller asks for the next packet again.
    Ready,
    /// The interface went down (`ENETDOWN`). The socket stays bound to it, and the kernel hooks it up again when the
    /// link comes back: the capture waits instead of ending.
    LinkDown,
}

/// Waits until `fd` is readable, `timeout` passes, or a signal arrives.
pub(crate) fn wait_readable(fd: std::os::fd::RawFd, timeout: std::time::Duration) -> std::io::Result<Readiness> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, millis) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    } else if pfd.revents & libc::POLLNVAL != 0 {
        return Err(std::io::Error::other("capture socket closed"));
    } else if pfd.revents & libc::POLLERR != 0 {
        // Reading the socket's pending error clears it, so the next poll waits again.
        return match take_socket_error(fd) {
            Some(libc::ENETDOWN) => {
                // A down link's socket is not readable: wait out the timeout as an idle link would.
                std::thread::sleep(timeout);
                Ok(Readiness::LinkDown)
            }
            Some(libc::ENODEV | libc::ENXIO) => Err(std::io::Error::other("the capture interface is gone")),
            Some(code) => Err(std::io::Error::from_raw_os_error(code)),
            None => Err(std::io::Error::other("capture socket error")),
        };
    }
    Ok(Readiness::Ready)
}

/// The socket's pending error (`SO_ERROR`, which reading clears), if any.
fn take_socket_error(fd: std::os::fd::RawFd) -> Option<libc::c_int> {
    let mut code: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `code` and `len` are valid for the kernel to write.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut code).cast(), &mut len) };
    (rc == 0 && code != 0).then_some(code)
}

/// A live interface's link, as its capture sees it: says when it went down and when traffic came back.
#[derive(Debug, Default)]
pub(crate) struct LinkWatch {
    down_since: Option<std::time::Instant>,
}

impl LinkWatch {
    pub(crate) fn went_down(&mut self, iface: &str) {
        if self.down_since.is_none() {
            tracing::warn!(iface, "the capture interface went down; capturing again when it comes back");
            self.down_since = Some(std::time::Instant::now());
        }
    }

    /// A packet arrived.
    #[inline]
    pub(crate) fn traffic(&mut self, iface: &str) {
        if let Some(since) = self.down_since.take() {
            tracing::info!(iface, down_for = ?since.elapsed(), "the capture interface is back up: capturing again");
        }
    }
}

/// The next record of a savefile, as libpcap's path reports it.
fn savefile_next<'a, I: savefile::Input>(
    reader: &'a mut savefile::Savefile<I>,
    bytes_read: &mut u64,
) -> Result<Next<'a>, CaptureError> {
    Ok(match reader.next().map_err(CaptureError::ReadFile)? {
        savefile::Record::Packet { ts, data, wire_len, file_bytes } => {
            *bytes_read += file_bytes;
            Next::Packet(RawPacket { ts, data, wire_len: Some(wire_len) })
        }
        savefile::Record::End => Next::End,
        savefile::Record::Truncated(msg) => Next::Truncated(msg),
        savefile::Record::Invalid(msg) => return Err(CaptureError::Read(pcap::Error::PcapError(msg))),
    })
}

/// Opens a classic pcap file for [`savefile::Savefile`], mapped when it can be (a file system without mappings, or
/// every guard slot taken, falls back to `read`); `None` for other formats.
fn open_savefile(path: &Path) -> std::io::Result<Option<Handle>> {
    let file = std::fs::File::open(path)?;
    match mapped::MappedFile::open(file.try_clone()?) {
        Ok(Some(mapped)) => return Ok(savefile::Savefile::new(mapped)?.map(|reader| Handle::Mapped(Box::new(reader)))),
        Ok(None) => {}
        Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot map the savefile; reading it instead"),
    }
    Ok(savefile::Savefile::new(savefile::Buffered::new(file))?.map(|reader| Handle::Savefile(Box::new(reader))))
}

/// A packet source: a savefile (classic pcap through [`savefile`], pcapng and filtered reads through libpcap)
/// or a live libpcap handle.
pub struct PcapSource {
    inner: Handle,
    link: LinkType,
    /// Savefile bytes consumed so far (approximate for pcapng), for the progress bar.
    pub bytes_read: u64,
}

enum Handle {
    /// A classic pcap file without a filter, read by [`savefile::Savefile`] through a mapping ...
    Mapped(Box<savefile::Savefile<mapped::MappedFile>>),
    /// ... or through `read` when it cannot be mapped.
    Savefile(Box<savefile::Savefile<savefile::Buffered<std::fs::File>>>),
    Offline(pcap::Capture<pcap::Offline>),
    Live {
        cap: pcap::Capture<pcap::Active>,
        iface: String,
        link: LinkWatch,
    },
}

fn link_of(dlt: pcap::Linktype) -> Result<LinkType, CaptureError> {
    LinkType::from_dlt(dlt.0).ok_or(CaptureError::UnsupportedLink(dlt.0))
}

impl PcapSource {
    pub fn open_file(path: &Path, filter: Option<&str>) -> Result<Self, CaptureError> {
        let mut cap = pcap::Capture::from_file(path)
            .map_err(|cause| CaptureError::Open { what: path.display().to_string(), cause })?;
        if let Some(f) = filter.filter(|f| !f.is_empty()) {
            cap.filter(f, true).map_err(|cause| CaptureError::Filter { filter: f.to_string(), cause })?;
        }
        let link = link_of(cap.get_datalink())?;
        // libpcap has validated the file; classic pcap without a filter is read by the faster reader. Only a
        // regular file can be opened a second time from its start (libpcap has already read from a pipe).
        let regular_file = std::fs::metadata(path).is_ok_and(|m| m.is_file());
        let fast = if regular_file && filter.is_none_or(str::is_empty) {
            open_savefile(path).map_err(CaptureError::ReadFile)?
        } else {
            None
        };
        let inner = fast.unwrap_or(Handle::Offline(cap));
        Ok(PcapSource { inner, link, bytes_read: 24 })
    }

    /// A live capture through libpcap, with a kernel buffer of `buffer_mib` MiB.
    pub fn open_live(iface: &str, filter: Option<&str>, snaplen: i32, buffer_mib: u32) -> Result<Self, CaptureError> {
        let open = |cause| CaptureError::Open { what: format!("interface {iface}"), cause };
        let buffer_bytes = i32::try_from(u64::from(buffer_mib.max(1)) << 20).unwrap_or(i32::MAX);
        let cap = pcap::Capture::from_device(iface)
            .map_err(open)?
            .promisc(true)
            .snaplen(snaplen)
            .buffer_size(buffer_bytes)
            .timeout(100)
            .immediate_mode(true)
            .open()
            .and_then(pcap::Capture::setnonblock)
            .map_err(open)?;
        let mut cap = cap;
        if let Some(f) = filter.filter(|f| !f.is_empty()) {
            cap.filter(f, true).map_err(|cause| CaptureError::Filter { filter: f.to_string(), cause })?;
        }
        let link = link_of(cap.get_datalink())?;
        let inner = Handle::Live { cap, iface: iface.to_string(), link: LinkWatch::default() };
        Ok(PcapSource { inner, link, bytes_read: 0 })
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    pub fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        let bytes_read = &mut self.bytes_read;
        let (res, mut live) = match &mut self.inner {
            Handle::Mapped(reader) => return savefile_next(reader, bytes_read),
            Handle::Savefile(reader) => return savefile_next(reader, bytes_read),
            Handle::Offline(c) => (c.next_packet(), None),
            Handle::Live { cap, iface, link } => {
                let fd = std::os::fd::AsRawFd::as_raw_fd(cap);
                (cap.next_packet(), Some((fd, iface.as_str(), link)))
            }
        };
        match res {
            Ok(p) => {
                if let Some((_, iface, link)) = live.as_mut() {
                    link.traffic(iface);
                }
                *bytes_read += 16 + u64::from(p.header.caplen);
                let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
                Ok(Next::Packet(RawPacket { ts, data: p.data, wire_len: Some(p.header.len as usize) }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(pcap::Error::TimeoutExpired) => {
                // Non-blocking live handle with nothing ready: wait here, where a signal ends the wait (libpcap's
                // own wait restarts on EINTR and, with TPACKET_V3, never times out on an idle link).
                if let Some((fd, iface, link)) = live
                    && wait_readable(fd, LIVE_WAIT).map_err(CaptureError::Wait)? == Readiness::LinkDown
                {
                    link.went_down(iface);
                }
                Ok(Next::Idle)
            }
            Err(pcap::Error::PcapError(msg)) if msg.contains("truncated") => Ok(Next::Truncated(msg)),
            Err(e) => Err(CaptureError::Read(e)),
        }
    }

    /// libpcap's counters (live captures only).
    pub fn stats(&mut self) -> Option<CaptureStats> {
        match &mut self.inner {
            Handle::Live { cap: c, .. } => c.stats().ok().map(|s| CaptureStats {
                received: u64::from(s.received),
                dropped: u64::from(s.dropped),
                if_dropped: u64::from(s.if_dropped),
            }),
            Handle::Offline(_) | Handle::Mapped(_) | Handle::Savefile(_) => None,
        }
    }
}
