//! A savefile read through a memory mapping, a window at a time: the records are handed out where the page cache
//! holds them, with no kernel copy into a read buffer (a 1 GB file costs 0.14 s of system time through `read`,
//! its windows mapped with `MAP_POPULATE` 0.01-0.02 s; net of the first touches that move into the analysis, 5%
//! less CPU per run on the benchmark mix).
//!
//! Only one window (`WINDOW` bytes, populated when mapped) is mapped at a time, so resident memory stays bounded
//! whatever the file's size. A file that shrinks while it is read would make the kernel raise SIGBUS on the first
//! touch of a vanished page; [`guard`] turns that into a zero-filled page and a flag, and the reader then ends with
//! an error naming the new size instead of the process dying.

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

use super::savefile::Input;

/// Bytes mapped at once: large enough that remapping is rare (256 times per GiB), small enough to keep the
/// resident size low, and far above a record's largest size (16 + 256 KiB).
const WINDOW: usize = 4 << 20;

/// A regular file mapped a window at a time.
pub(super) struct MappedFile {
    file: File,
    /// Where the file ends for this reader: its size at open, lowered if it shrinks while being read.
    len: u64,
    /// The mapped window (none once the file has ended) and the file offset of its first byte (a multiple of the
    /// page size).
    map: Option<Mmap>,
    map_offset: u64,
    /// Unread bytes are `map[pos..end]`; `end` is the window's length, or less where the file ends inside it.
    pos: usize,
    end: usize,
    window: usize,
    slot: guard::Slot,
    /// Set once the file was found shorter than when opened.
    shrank: Option<u64>,
}

impl MappedFile {
    /// Maps the start of `file`; `None` when no guard slot is free (too many files mapped at once), in which case
    /// the caller reads the file with `read` instead.
    pub(super) fn open(file: File) -> io::Result<Option<Self>> {
        Self::with_window(file, WINDOW)
    }

    pub(super) fn with_window(file: File, window: usize) -> io::Result<Option<Self>> {
        let Some(slot) = guard::Slot::claim() else { return Ok(None) };
        let len = file.metadata()?.len();
        let mut mapped = MappedFile { file, len, map: None, map_offset: 0, pos: 0, end: 0, window, slot, shrank: None };
        mapped.map_at(0, 0)?;
        Ok(Some(mapped))
    }

    /// Maps the next window so that it starts at the page holding the first unread byte.
    #[inline(never)]
    fn advance(&mut self, want: usize) -> io::Result<()> {
        let at = self.map_offset + self.pos as u64;
        if self.map_offset + self.end as u64 >= self.len && !self.slot.faulted() {
            return Ok(()); // the file ends in this window
        }
        self.check_size();
        let page = page_size() as u64;
        let start = at / page * page;
        self.map_at(start, want)?;
        debug_assert!(self.end - self.pos >= want || self.map_offset + self.end as u64 >= self.len);
        Ok(())
    }

    /// Lowers `len` when the file is now shorter (it is read as it was at open, never as it grows).
    fn check_size(&mut self) {
        let now = self.file.metadata().map_or(0, |m| m.len());
        if now < self.len || self.slot.faulted() {
            self.len = self.len.min(now);
            self.shrank = Some(self.len);
        }
    }

    /// Maps the window starting at file offset `start`, long enough for `want` bytes from the first unread one.
    fn map_at(&mut self, start: u64, want: usize) -> io::Result<()> {
        let at = self.map_offset + self.pos as u64;
        let wanted = (at - start + want as u64).max(self.window as u64);
        let length = self.len.saturating_sub(start).min(wanted) as usize;
        self.slot.release();
        self.map = None;
        if length > 0 {
            // SAFETY: the mapping is read-only and owned by this reader; a file truncated under it raises SIGBUS on
            // access, which the guard answers (see the module comment).
            let map = unsafe { MmapOptions::new().offset(start).len(length).populate().map(&self.file)? };
            self.slot.cover(map.as_ptr() as usize, map.len());
            self.map = Some(map);
        }
        self.map_offset = start;
        self.end = length;
        self.pos = at.saturating_sub(start).min(length as u64) as usize;
        Ok(())
    }
}

impl Input for MappedFile {
    #[inline]
    fn fill(&mut self, want: usize) -> io::Result<usize> {
        if self.end - self.pos < want {
            self.advance(want)?;
        }
        Ok(self.end - self.pos)
    }

    #[inline]
    fn unread(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |map| &map[self.pos..self.end])
    }

    #[inline]
    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.pos;
        self.pos += n;
        let Some(map) = self.map.as_ref() else { return &[] };
        prefetch_ahead(&map[..self.end], start, n);
        &map[start..self.pos]
    }

    /// Checked at every window, after a page vanished under the reader, and when the caller finds the bytes
    /// `suspicious`.
    #[inline]
    fn shrank_to(&mut self, suspicious: bool) -> Option<u64> {
        if self.shrank.is_none() && (suspicious || self.slot.faulted()) {
            self.check_size();
        }
        self.shrank
    }
}

/// How far ahead of the record being handed out the reader asks for the file's bytes: about six records of the
/// benchmark mix. The analysis reads a record's payload whole first in its checksum, and without this that loop
/// waited on memory for most of its time (11% of the samples of a `perf record` over the mix, 3% with it; 1024
/// to 16384 bytes ahead measured alike, docs/BENCHMARKS.md).
const PREFETCH_DISTANCE: usize = 4096;

/// Asks the CPU to load the bytes `PREFETCH_DISTANCE` past the `n` just taken at `start`, a cache line at a time,
/// within the mapped `window`: over a run of records every line of the file is asked for once, ahead of its first
/// use. A hint only: it cannot fault and changes nothing that is read.
#[inline(always)]
fn prefetch_ahead(window: &[u8], start: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        const CACHE_LINE: usize = 64;
        let from = start.saturating_add(PREFETCH_DISTANCE);
        let to = from.saturating_add(n).min(window.len());
        for at in (from..to).step_by(CACHE_LINE) {
            // SAFETY: `at` is inside `window`, so the pointer is in bounds; a prefetch reads nothing into the program.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(window.as_ptr().add(at).cast())
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (window, start, n);
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // Before the fields drop: the window is unregistered before it is unmapped, not after.
        self.slot.release();
    }
}

pub(super) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Keeps a file truncated under its mapping from killing the process: a SIGBUS inside a registered window is
/// answered by mapping a zero page over the faulting page and flagging the window's slot; any other SIGBUS goes
/// to the handler that was installed before (the standard library's, which ends the process as usual).
mod guard {
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// How many windows can be guarded at once (one per open reader; a reader finding none reads with `read`).
    const SLOTS: usize = 64;

    struct Window {
        claimed: AtomicBool,
        base: AtomicUsize,
        len: AtomicUsize,
        faulted: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)] // only used to initialise the array below
    const FREE: Window = Window {
        claimed: AtomicBool::new(false),
        base: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        faulted: AtomicBool::new(false),
    };
    static WINDOWS: [Window; SLOTS] = [FREE; SLOTS];

    static INSTALL: Once = Once::new();
    /// The page size, read before the handler is installed (the handler makes no library calls to learn it).
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    /// The action in place before ours, restored for a fault outside every window.
    static mut PREVIOUS: Option<libc::sigaction> = None;

    /// One reader's registration.
    pub(super) struct Slot(usize);

    impl Slot {
        pub(super) fn claim() -> Option<Slot> {
            INSTALL.call_once(install);
            let index = WINDOWS
                .iter()
                .position(|w| w.claimed.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok())?;
            WINDOWS[index].faulted.store(false, Ordering::Relaxed);
            Some(Slot(index))
        }

        /// Registers the mapped window `[base, base + len)`.
        pub(super) fn cover(&self, base: usize, len: usize) {
            let w = &WINDOWS[self.0];
            w.len.store(0, Ordering::Release);
            w.base.store(base, Ordering::Release);
            w.len.store(len, Ordering::Release);
        }

        /// Unregisters the window (before it is unmapped).
        pub(super) fn release(&self) {
            WINDOWS[self.0].len.store(0, Ordering::Release);
        }

        /// Whether a page of this slot's windows vanished under the reader.
        pub(super) fn faulted(&self) -> bool {
            WINDOWS[self.0].faulted.load(Ordering::Acquire)
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            let w = &WINDOWS[self.0];
            w.len.store(0, Ordering::Release);
            w.claimed.store(false, Ordering::Release);
        }
    }

    fn install() {
        PAGE.store(super::page_size(), Ordering::Relaxed);
        // SAFETY: PREVIOUS is written once, here, before our handler is installed (the only reader), and the
        // handler only touches atomics and calls mmap and sigaction, both async-signal-safe system calls.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
                return; // no guard: a file truncated under the reader ends the process, as with any mapping
            }
            PREVIOUS = Some(previous);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    }

    extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        for w in &WINDOWS {
            let (base, len) = (w.base.load(Ordering::Acquire), w.len.load(Ordering::Acquire));
            if len != 0 && (base..base + len).contains(&addr) {
                let page_size = PAGE.load(Ordering::Relaxed);
                let page = addr & !(page_size - 1);
                // SAFETY: replaces one page of this reader's own read-only window; the reader is told through the
                // flag and stops at the file's new end.
                unsafe {
                    libc::mmap(
                        page as *mut libc::c_void,
                        page_size,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    );
                }
                w.faulted.store(true, Ordering::Release);
                return;
            }
        }
        // Not ours: put the previous action back; the faulting access repeats and meets it.
        // SAFETY: PREVIOUS was set before this handler was installed and is never written again.
        unsafe {
            let previous = (*std::ptr::addr_of!(PREVIOUS)).unwrap_or_else(|| {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                default
            });
            libc::sigaction(signal, &previous, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::savefile::{Record, Savefile};
    use super::*;
    use std::io::Write;

    const RECORDS: usize = 40;
    const DATA_LEN: usize = 1000;
    const FIRST_RECORD: usize = 24;
    const RECORD_LEN: usize = 16 + DATA_LEN;

    /// A classic pcap of [`RECORDS`] records of [`DATA_LEN`] bytes, no byte of them zero.
    fn write_trace(path: &std::path::Path) -> Vec<Vec<u8>> {
        let mut out = vec![];
        out.extend(0xa1b2_c3d4u32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        let datas: Vec<Vec<u8>> = (0..RECORDS).map(|i| vec![(i % 250) as u8 + 1; DATA_LEN]).collect();
        for (i, data) in datas.iter().enumerate() {
            for field in [1_000 + i as u32, 5, DATA_LEN as u32, DATA_LEN as u32] {
                out.extend(field.to_le_bytes());
            }
            out.extend_from_slice(data);
        }
        std::fs::File::create(path).unwrap().write_all(&out).unwrap();
        datas
    }

    /// A fresh trace in a temporary directory: the directory (kept alive), the file and the records' data.
    fn trace() -> (tempfile::TempDir, std::path::PathBuf, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        let datas = write_trace(&path);
        (dir, path, datas)
    }

    /// Truncates the file under whoever reads it.
    fn cut_to(path: &std::path::Path, len: usize) {
        File::options().write(true).open(path).unwrap().set_len(len as u64).unwrap();
    }

    fn open(path: &std::path::Path) -> Savefile<MappedFile> {
        let file = File::open(path).unwrap();
        let mapped = MappedFile::with_window(file, 16 * page_size()).unwrap().expect("a guard slot");
        Savefile::new(mapped).unwrap().expect("classic pcap")
    }

    /// Reads records until something else comes; returns the packets' data and what ended them.
    fn read_rest(reader: &mut Savefile<MappedFile>) -> (Vec<Vec<u8>>, String) {
        let mut packets = vec![];
        loop {
            match reader.next().unwrap() {
                Record::Packet { data, .. } => packets.push(data.to_vec()),
                other => return (packets, format!("{other:?}")),
            }
        }
    }

    #[test]
    fn a_whole_file_reads_to_its_end() {
        let (_dir, path, datas) = trace();
        let (packets, end) = read_rest(&mut open(&path));
        assert_eq!((packets, end.as_str()), (datas, "End"));
    }

    /// Cut inside the last page still mapped: the bytes past the new end read as zeros without a fault, and the
    /// first all-zero record header sends the reader to look at the file's size.
    #[test]
    fn a_file_cut_while_read_ends_with_an_error_at_the_zeros_of_its_last_page() {
        let (_dir, path, datas) = trace();
        let mut reader = open(&path);
        for want in &datas[..5] {
            assert!(matches!(reader.next().unwrap(), Record::Packet { data, .. } if data == &want[..]));
        }
        let cut = FIRST_RECORD + 29 * RECORD_LEN + 16 + DATA_LEN / 2; // inside record 30's data
        cut_to(&path, cut);
        let (packets, end) = read_rest(&mut reader);
        assert_eq!(packets.len(), 25, "records 6 to 30");
        assert_eq!(packets[..24], datas[5..29]);
        assert_eq!(packets[24][..DATA_LEN / 2], datas[29][..DATA_LEN / 2]);
        assert_eq!(end, format!("Truncated(\"the file shrank to {cut} bytes while it was being read\")"));
    }

    /// Cut at a page boundary inside a record's data: touching the vanished page raises SIGBUS, which the guard
    /// answers with a zero page, and the reader stops with the error instead of the process dying.
    #[test]
    fn a_page_vanishing_under_the_reader_does_not_kill_the_process() {
        let (_dir, path, datas) = trace();
        let mut reader = open(&path);
        assert!(matches!(reader.next().unwrap(), Record::Packet { .. }));
        let page = page_size();
        let cut = 3 * page;
        let straddling = (cut - FIRST_RECORD) / RECORD_LEN; // its header before the cut, its data across it
        assert!(FIRST_RECORD + straddling * RECORD_LEN + 16 <= cut);
        cut_to(&path, cut);
        let (packets, end) = read_rest(&mut reader);
        assert_eq!(packets.len(), straddling, "records 2 to the straddling one");
        assert_eq!(packets[..straddling - 1], datas[1..straddling]);
        let last = &packets[straddling - 1];
        let kept = cut - (FIRST_RECORD + straddling * RECORD_LEN + 16);
        assert_eq!(last[..kept], datas[straddling][..kept]);
        assert!(last[kept..].iter().all(|&b| b == 0), "the vanished page reads as zeros");
        assert_eq!(end, format!("Truncated(\"the file shrank to {cut} bytes while it was being read\")"));
    }
}
