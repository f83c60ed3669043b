//! A reader for classic pcap savefiles (`-r`): records are parsed in place where the [`Input`] holds them (a
//! mapped window of the file, or a large read buffer when it cannot be mapped), so a packet costs no copy at all
//! (or one kernel copy) and no per-packet library call (libpcap's reader goes through stdio: small reads and a
//! second copy into its own buffer). It reproduces what libpcap hands out for the same file: microsecond
//! timestamps (nanosecond files scaled down), records longer than the snapshot length cut to it, libpcap's
//! limits and its messages for truncated files. pcapng, other pcap variants, filters and live captures stay
//! with libpcap ([`super::PcapSource`] decides).

use std::io::{self, Read};

/// libpcap's `MAXIMUM_SNAPLEN`: a record claiming more is an error.
const MAXIMUM_SNAPLEN: u32 = 262_144;
/// The read buffer; a multiple of the page size, several times the largest record.
const BUFFER_SIZE: usize = 512 << 10;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// How the file stores its numbers and timestamps (from the magic number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    swapped: bool,
    nanoseconds: bool,
}

impl Format {
    /// The classic magics libpcap reads as version 2.4 files; `None` for anything else (pcapng, the
    /// modified/Kuznetzov format, other versions), which stays with libpcap.
    fn of_header(header: &[u8; FILE_HEADER_LEN]) -> Option<Format> {
        let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let (swapped_le, nanoseconds) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xd4c3_b2a1 => (true, false),
            0xa1b2_3c4d => (false, true),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        // The magic read as little-endian matched unswapped: the file is little-endian.
        let format = Format { swapped: swapped_le, nanoseconds };
        let major = format.u16_at(header, 4);
        let minor = format.u16_at(header, 6);
        (major == 2 && minor == 4).then_some(format)
    }

    fn u16_at(self, b: &[u8], at: usize) -> u16 {
        let raw = [b[at], b[at + 1]];
        if self.swapped { u16::from_be_bytes(raw) } else { u16::from_le_bytes(raw) }
    }

    fn u32_at(self, b: &[u8], at: usize) -> u32 {
        let raw = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.swapped { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) }
    }

    /// A record header's four fields (seconds, fraction, captured length, wire length), read with one test of the
    /// byte order instead of one per field: every packet pays this.
    fn record_header(self, h: &[u8; RECORD_HEADER_LEN]) -> [u32; 4] {
        let w = h.as_chunks::<4>().0;
        if self.swapped {
            [w[0], w[1], w[2], w[3]].map(u32::from_be_bytes)
        } else {
            [w[0], w[1], w[2], w[3]].map(u32::from_le_bytes)
        }
    }
}

/// One record as read.
#[derive(Debug, PartialEq)]
pub(super) enum Record<'a> {
    Packet {
        ts: f64,
        data: &'a [u8],
        /// The packet's length on the wire (the record's original length).
        wire_len: usize,
        file_bytes: u64,
    },
    End,
    /// The file ends inside a record; libpcap's message.
    Truncated(String),
    /// A record libpcap refuses; libpcap's message.
    Invalid(String),
}

/// Where a savefile's bytes come from: a memory-mapped file ([`super::mapped::MappedFile`]) or any reader through
/// a buffer ([`Buffered`]).
pub(super) trait Input {
    /// Makes at least `want` unread bytes available unless the input ends first; returns how many are.
    fn fill(&mut self, want: usize) -> io::Result<usize>;
    /// The bytes available (after [`Self::fill`]).
    fn unread(&self) -> &[u8];
    /// Marks `n` available bytes read and returns them.
    fn take(&mut self, n: usize) -> &[u8];
    /// The size the file shrank to while it was being read, when the input can tell; `suspicious` asks it to
    /// look now rather than when it next would.
    fn shrank_to(&mut self, _suspicious: bool) -> Option<u64> {
        None
    }
}

/// Any reader through a large buffer (pipes are libpcap's; this serves files that cannot be mapped, and tests).
pub(super) struct Buffered<R> {
    input: R,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Buffered<R> {
    pub(super) fn new(input: R) -> Self {
        Buffered { input, buf: vec![0; BUFFER_SIZE], start: 0, end: 0, eof: false }
    }

    /// [`Input::fill`] when the buffer holds fewer than `want` bytes: moves them to the front and reads more.
    #[inline(never)]
    fn refill(&mut self, want: usize) -> io::Result<usize> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < want && !self.eof {
            let n = read_full(&mut self.input, &mut self.buf[self.end..])?;
            self.eof = n == 0 || self.end + n < self.buf.len();
            self.end += n;
        }
        Ok(self.end)
    }
}

impl<R: Read> Input for Buffered<R> {
    /// Inlined: twice per packet, and nearly always the bytes are already there.
    #[inline]
    fn fill(&mut self, want: usize) -> io::Result<usize> {
        if self.end - self.start >= want || self.eof {
            return Ok(self.end - self.start);
        }
        self.refill(want)
    }

    #[inline]
    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline]
    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.start;
        self.start += n;
        &self.buf[start..self.start]
    }
}

pub(super) struct Savefile<I> {
    input: I,
    format: Format,
    /// libpcap's `snapshot`: the header's snaplen, or the maximum when it is 0 or larger.
    snapshot: u32,
}

impl<I: Input> Savefile<I> {
    /// Reads the file header; `Ok(None)` when the input is not a classic pcap file this reader handles.
    pub(super) fn new(mut input: I) -> io::Result<Option<Self>> {
        if input.fill(FILE_HEADER_LEN)? < FILE_HEADER_LEN {
            return Ok(None);
        }
        let header: &[u8; FILE_HEADER_LEN] = input.unread()[..FILE_HEADER_LEN].try_into().expect("filled");
        let Some(format) = Format::of_header(header) else { return Ok(None) };
        let snaplen = format.u32_at(header, 16);
        let snapshot = if snaplen == 0 || snaplen > MAXIMUM_SNAPLEN { MAXIMUM_SNAPLEN } else { snaplen };
        input.take(FILE_HEADER_LEN);
        Ok(Some(Savefile { input, format, snapshot }))
    }

    pub(super) fn next(&mut self) -> io::Result<Record<'_>> {
        if let Some(size) = self.input.shrank_to(false) {
            return Ok(shrank(size));
        }
        let available = self.input.fill(RECORD_HEADER_LEN)?;
        if available == 0 {
            return Ok(Record::End);
        }
        if available < RECORD_HEADER_LEN {
            self.input.take(available);
            return Ok(Record::Truncated(format!(
                "truncated dump file; tried to read {RECORD_HEADER_LEN} header bytes, only got {available}"
            )));
        }
        let f = self.format;
        let h: [u8; RECORD_HEADER_LEN] = self.input.unread()[..RECORD_HEADER_LEN].try_into().expect("filled");
        // A mapped file's last page reads as zeros past a new, shorter end: no writer stores such a header.
        if h == [0; RECORD_HEADER_LEN]
            && let Some(size) = self.input.shrank_to(true)
        {
            return Ok(shrank(size));
        }
        let [sec, frac, caplen, wire_len] = f.record_header(&h);
        let (sec, frac, wire_len) = (sec as i32, frac as i32, wire_len as usize);
        if caplen > MAXIMUM_SNAPLEN {
            return Ok(Record::Invalid(format!(
                "invalid packet capture length {caplen}, bigger than maximum of {MAXIMUM_SNAPLEN}"
            )));
        }
        let record_len = RECORD_HEADER_LEN + caplen as usize;
        let available = self.input.fill(record_len)?;
        if available < record_len {
            let got = available - RECORD_HEADER_LEN;
            self.input.take(available);
            return Ok(Record::Truncated(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {got}"
            )));
        }
        // libpcap hands out at most the snapshot length and skips the rest of the record.
        let kept = caplen.min(self.snapshot) as usize;
        let micros = if f.nanoseconds { frac / 1000 } else { frac };
        let ts = f64::from(sec) + f64::from(micros) / 1e6;
        let data = &self.input.take(record_len)[RECORD_HEADER_LEN..RECORD_HEADER_LEN + kept];
        Ok(Record::Packet { ts, data, wire_len, file_bytes: record_len as u64 })
    }
}

fn shrank(size: u64) -> Record<'static> {
    Record::Truncated(format!("the file shrank to {size} bytes while it was being read"))
}

/// Reads until `buf` is full or the input ends (retrying interrupted reads); returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::super::mapped::{MappedFile, page_size};
    use super::*;
    use std::path::Path;

    /// A savefile in the given byte order and precision with one record per `(sec, frac, data)`.
    fn savefile(big_endian: bool, nanos: bool, snaplen: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let u32b = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let u16b = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut out = vec![];
        out.extend(u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        out.extend(u16b(2));
        out.extend(u16b(4));
        out.extend([0; 8]);
        out.extend(u32b(snaplen));
        out.extend(u32b(1));
        for (sec, frac, data) in records {
            out.extend(u32b(*sec));
            out.extend(u32b(*frac));
            out.extend(u32b(data.len() as u32));
            out.extend(u32b(data.len() as u32));
            out.extend_from_slice(data);
        }
        out
    }

    fn read_all(bytes: &[u8]) -> Vec<String> {
        let mut reader = Savefile::new(Buffered::new(bytes)).unwrap().expect("classic pcap");
        let mut out = vec![];
        loop {
            match reader.next().unwrap() {
                Record::Packet { ts, data, .. } => out.push(format!("{ts:.6} {data:?}")),
                Record::End => return out,
                other => {
                    out.push(format!("{other:?}"));
                    return out;
                }
            }
        }
    }

    #[test]
    fn both_byte_orders_and_precisions_read_alike() {
        let records: &[(u32, u32, &[u8])] = &[(1_300_000_000, 96535, b"abc"), (1_300_000_001, 0, b"")];
        let micro = read_all(&savefile(false, false, 65535, records));
        assert_eq!(micro, ["1300000000.096535 [97, 98, 99]", "1300000001.000000 []"]);
        assert_eq!(read_all(&savefile(true, false, 65535, records)), micro);
        let nano_records: &[(u32, u32, &[u8])] = &[(1_300_000_000, 96_535_999, b"abc"), (1_300_000_001, 999, b"")];
        assert_eq!(read_all(&savefile(false, true, 65535, nano_records)), micro);
        assert_eq!(read_all(&savefile(true, true, 65535, nano_records)), micro);
    }

    #[test]
    fn records_are_cut_to_the_snapshot_length() {
        assert_eq!(
            read_all(&savefile(false, false, 2, &[(1, 0, b"abcd"), (2, 0, b"x")])),
            ["1.000000 [97, 98]", "2.000000 [120]"]
        );
    }

    #[test]
    fn truncated_files_end_with_libpcaps_messages() {
        let whole = savefile(false, false, 65535, &[(1, 0, b"abcd")]);
        let cut_data = read_all(&whole[..whole.len() - 1]);
        assert_eq!(cut_data, ["Truncated(\"truncated dump file; tried to read 4 captured bytes, only got 3\")"]);
        let cut_header = read_all(&whole[..FILE_HEADER_LEN + 5]);
        assert_eq!(cut_header, ["Truncated(\"truncated dump file; tried to read 16 header bytes, only got 5\")"]);
    }

    #[test]
    fn oversized_records_are_refused() {
        let mut bytes = savefile(false, false, 65535, &[(1, 0, b"ab")]);
        bytes[FILE_HEADER_LEN + 8..FILE_HEADER_LEN + 12].copy_from_slice(&(MAXIMUM_SNAPLEN + 1).to_le_bytes());
        assert_eq!(
            read_all(&bytes),
            ["Invalid(\"invalid packet capture length 262145, bigger than maximum of 262144\")"]
        );
    }

    #[test]
    fn other_formats_are_left_to_libpcap() {
        let pcapng = [0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a];
        assert!(Savefile::new(Buffered::new(&[&pcapng[..], &[0; 12]].concat()[..])).unwrap().is_none());
        let mut old_version = savefile(false, false, 65535, &[]);
        old_version[6] = 3;
        assert!(Savefile::new(Buffered::new(&old_version[..])).unwrap().is_none());
        assert!(Savefile::new(Buffered::new(&[0u8; 3][..])).unwrap().is_none());
    }

    /// Every oracle trace reads the same through this reader as through libpcap, and so does one cut short.
    #[test]
    fn oracle_traces_read_as_libpcap_reads_them() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle");
        let mut traces = vec![];
        collect_pcaps(&dir, &mut traces);
        traces.sort();
        let compared = traces.iter().filter(|path| same_as_libpcap(path)).count();
        if let Some(first) = traces.first() {
            assert!(compared > 0, "no classic pcap under {}", dir.display());
            let bytes = std::fs::read(first).unwrap();
            let tmp = tempfile::tempdir().unwrap();
            let cut = tmp.path().join("cut.pcap");
            std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
            assert!(same_as_libpcap(&cut));
        }
    }

    /// Compares every record, read through `read` and through mappings of two pages (so that records cross
    /// windows) and of the default size; false when the file is not one this reader takes.
    fn same_as_libpcap(path: &Path) -> bool {
        let file = || std::fs::File::open(path).unwrap();
        let Some(buffered) = Savefile::new(Buffered::new(file())).unwrap() else { return false };
        same_records(path, buffered);
        let small = MappedFile::with_window(file(), 2 * page_size()).unwrap().expect("a guard slot");
        same_records(path, Savefile::new(small).unwrap().expect("classic pcap"));
        let default = MappedFile::open(file()).unwrap().expect("a guard slot");
        same_records(path, Savefile::new(default).unwrap().expect("classic pcap"));
        true
    }

    fn same_records(path: &Path, mut ours: Savefile<impl Input>) {
        let mut theirs = pcap::Capture::from_file(path).unwrap();
        loop {
            match (ours.next().unwrap(), theirs.next_packet()) {
                (Record::Packet { ts, data, wire_len, .. }, Ok(p)) => {
                    let their_ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
                    let theirs = (their_ts, p.data, p.header.len as usize);
                    assert_eq!((ts, data, wire_len), theirs, "{}", path.display());
                }
                (Record::End, Err(pcap::Error::NoMorePackets)) => return,
                (Record::Truncated(m), Err(pcap::Error::PcapError(theirs))) => {
                    assert_eq!(m, theirs);
                    return;
                }
                (mine, theirs) => panic!("{}: {mine:?} vs {theirs:?}", path.display()),
            }
        }
    }

    fn collect_pcaps(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect_pcaps(&path, out);
            } else if path.extension().is_some_and(|e| e == "pcap") {
                out.push(path);
            }
        }
    }
}
