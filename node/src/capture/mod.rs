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
    #[error("cannot open {what}: {source}")]
    Open { what: String, source: pcap::Error },
    #[error("unsupported link type {0} (DLT); supported: Ethernet, raw IP, Linux cooked v1/v2, loopback, PPP")]
    UnsupportedLink(i32),
    #[error("invalid BPF filter '{filter}': {source}")]
    Filter { filter: String, source: pcap::Error },
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
    #[error("AF_PACKET capture on {iface}: {what}: {source}")]
    Os { iface: String, what: &'static str, source: std::io::Error },
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

/// How long a live source waits for traffic before reporting `Next::Idle` (so the caller sees its stop flag).
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until `fd` is readable, `timeout` passes, or a signal arrives (all three are fine for the caller, who
/// simply asks for the next packet again).
pub(crate) fn wait_readable(fd: std::os::fd::RawFd, timeout: std::time::Duration) -> std::io::Result<()> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, millis) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    } else if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        return Err(std::io::Error::other("capture socket error (interface gone or down?)"));
    }
    Ok(())
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
    Live(pcap::Capture<pcap::Active>),
}

fn link_of(dlt: pcap::Linktype) -> Result<LinkType, CaptureError> {
    LinkType::from_dlt(dlt.0).ok_or(CaptureError::UnsupportedLink(dlt.0))
}

impl PcapSource {
    pub fn open_file(path: &Path, filter: Option<&str>) -> Result<Self, CaptureError> {
        let mut cap = pcap::Capture::from_file(path)
            .map_err(|source| CaptureError::Open { what: path.display().to_string(), source })?;
        if let Some(f) = filter.filter(|f| !f.is_empty()) {
            cap.filter(f, true).map_err(|source| CaptureError::Filter { filter: f.to_string(), source })?;
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

    pub fn open_live(iface: &str, filter: Option<&str>, snaplen: i32) -> Result<Self, CaptureError> {
        let open = |source| CaptureError::Open { what: format!("interface {iface}"), source };
        let cap = pcap::Capture::from_device(iface)
            .map_err(open)?
            .promisc(true)
            .snaplen(snaplen)
            .buffer_size(64 << 20)
            .timeout(100)
            .immediate_mode(true)
            .open()
            .and_then(pcap::Capture::setnonblock)
            .map_err(|source| CaptureError::Open { what: format!("interface {iface}"), source })?;
        let mut cap = cap;
        if let Some(f) = filter.filter(|f| !f.is_empty()) {
            cap.filter(f, true).map_err(|source| CaptureError::Filter { filter: f.to_string(), source })?;
        }
        let link = link_of(cap.get_datalink())?;
        Ok(PcapSource { inner: Handle::Live(cap), link, bytes_read: 0 })
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    pub fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        let bytes_read = &mut self.bytes_read;
        let (res, live_fd) = match &mut self.inner {
            Handle::Mapped(reader) => return savefile_next(reader, bytes_read),
            Handle::Savefile(reader) => return savefile_next(reader, bytes_read),
            Handle::Offline(c) => (c.next_packet(), None),
            Handle::Live(c) => {
                let fd = std::os::fd::AsRawFd::as_raw_fd(c);
                (c.next_packet(), Some(fd))
            }
        };
        match res {
            Ok(p) => {
                *bytes_read += 16 + u64::from(p.header.caplen);
                let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
                Ok(Next::Packet(RawPacket { ts, data: p.data, wire_len: Some(p.header.len as usize) }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(pcap::Error::TimeoutExpired) => {
                // Non-blocking live handle with nothing ready: wait here, where a signal ends the wait (libpcap's
                // own wait restarts on EINTR and, with TPACKET_V3, never times out on an idle link).
                if let Some(fd) = live_fd {
                    wait_readable(fd, LIVE_WAIT).map_err(CaptureError::Wait)?;
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
            Handle::Live(c) => c.stats().ok().map(|s| CaptureStats {
                received: u64::from(s.received),
                dropped: u64::from(s.dropped),
                if_dropped: u64::from(s.if_dropped),
            }),
            Handle::Offline(_) | Handle::Mapped(_) | Handle::Savefile(_) => None,
        }
    }
}
