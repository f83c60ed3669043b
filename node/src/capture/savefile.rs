//! A reader for classic pcap savefiles (`-r`): records are parsed in place from a large read buffer, so a packet
//! costs one kernel copy and no per-packet library call (libpcap's reader goes through stdio: small reads and a
//! second copy into its own buffer). It reproduces what libpcap hands out for the same file: microsecond
//! timestamps (nanosecond files scaled down), records longer than the snapshot length cut to it, libpcap's
//! limits and its messages for truncated files. pcapng, other pcap variants, filters and live captures stay
//! with libpcap ([`super::PcapSource`] decides).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

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

pub(super) struct Savefile<R = File> {
    input: R,
    format: Format,
    /// libpcap's `snapshot`: the header's snaplen, or the maximum when it is 0 or larger.
    snapshot: u32,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl Savefile<File> {
    /// Opens `path` when it is a classic pcap file this reader handles; `Ok(None)` for other formats.
    pub(super) fn open(path: &Path) -> io::Result<Option<Self>> {
        Self::from_reader(File::open(path)?)
    }
}

impl<R: Read> Savefile<R> {
    pub(super) fn from_reader(mut input: R) -> io::Result<Option<Self>> {
        let mut header = [0u8; FILE_HEADER_LEN];
        if read_full(&mut input, &mut header)? < FILE_HEADER_LEN {
            return Ok(None);
        }
        let Some(format) = Format::of_header(&header) else { return Ok(None) };
        let snaplen = format.u32_at(&header, 16);
        let snapshot = if snaplen == 0 || snaplen > MAXIMUM_SNAPLEN { MAXIMUM_SNAPLEN } else { snaplen };
        Ok(Some(Savefile { input, format, snapshot, buf: vec![0; BUFFER_SIZE], start: 0, end: 0, eof: false }))
    }

    /// Makes at least `want` unread bytes available unless the file ends first; returns how many are. Inlined:
    /// twice per packet, and nearly always the bytes are already there.
    #[inline]
    fn fill(&mut self, want: usize) -> io::Result<usize> {
        if self.end - self.start >= want || self.eof {
            return Ok(self.end - self.start);
        }
        self.refill(want)
    }

    /// [`Self::fill`] when the buffer holds fewer than `want` bytes: moves them to the front and reads more.
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

    pub(super) fn next(&mut self) -> io::Result<Record<'_>> {
        let available = self.fill(RECORD_HEADER_LEN)?;
        if available == 0 {
            return Ok(Record::End);
        }
        if available < RECORD_HEADER_LEN {
            self.start = self.end;
            return Ok(Record::Truncated(format!(
                "truncated dump file; tried to read {RECORD_HEADER_LEN} header bytes, only got {available}"
            )));
        }
        let f = self.format;
        let h = &self.buf[self.start..self.start + RECORD_HEADER_LEN];
        let (sec, frac, caplen) = (f.u32_at(h, 0) as i32, f.u32_at(h, 4) as i32, f.u32_at(h, 8));
        let wire_len = f.u32_at(h, 12) as usize;
        if caplen > MAXIMUM_SNAPLEN {
            return Ok(Record::Invalid(format!(
                "invalid packet capture length {caplen}, bigger than maximum of {MAXIMUM_SNAPLEN}"
            )));
        }
        let record_len = RECORD_HEADER_LEN + caplen as usize;
        let available = self.fill(record_len)?;
        if available < record_len {
            let got = available - RECORD_HEADER_LEN;
            self.start = self.end;
            return Ok(Record::Truncated(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {got}"
            )));
        }
        let data_start = self.start + RECORD_HEADER_LEN;
        self.start += record_len;
        // libpcap hands out at most the snapshot length and skips the rest of the record.
        let kept = caplen.min(self.snapshot) as usize;
        let micros = if f.nanoseconds { frac / 1000 } else { frac };
        let ts = f64::from(sec) + f64::from(micros) / 1e6;
        let data = &self.buf[data_start..data_start + kept];
        Ok(Record::Packet { ts, data, wire_len, file_bytes: record_len as u64 })
    }
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
    use super::*;

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
        let mut reader = Savefile::from_reader(bytes).unwrap().expect("classic pcap");
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
        assert!(Savefile::from_reader(&[&pcapng[..], &[0; 12]].concat()[..]).unwrap().is_none());
        let mut old_version = savefile(false, false, 65535, &[]);
        old_version[6] = 3;
        assert!(Savefile::from_reader(&old_version[..]).unwrap().is_none());
        assert!(Savefile::from_reader(&[0u8; 3][..]).unwrap().is_none());
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

    /// Compares every record; false when the file is not one this reader takes.
    fn same_as_libpcap(path: &Path) -> bool {
        let Some(mut ours) = Savefile::open(path).unwrap() else { return false };
        let mut theirs = pcap::Capture::from_file(path).unwrap();
        loop {
            match (ours.next().unwrap(), theirs.next_packet()) {
                (Record::Packet { ts, data, wire_len, .. }, Ok(p)) => {
                    let their_ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
                    let theirs = (their_ts, p.data, p.header.len as usize);
                    assert_eq!((ts, data, wire_len), theirs, "{}", path.display());
                }
                (Record::End, Err(pcap::Error::NoMorePackets)) => return true,
                (Record::Truncated(m), Err(pcap::Error::PcapError(theirs))) => {
                    assert_eq!(m, theirs);
                    return true;
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
