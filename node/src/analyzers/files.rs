//! One file seen in a protocol stream (an SMTP or POP3 MIME entity, an FTP data transfer, an SMB file, a stapled
//! OCSP response) and the files.log record of every file ([`log_file`], HTTP's too).
//!
//! This mirrors the part of Zeek's file analysis framework the protocol scripts rely on: a file gets a
//! `fuid` when its first byte arrives, its MIME type is sniffed from the first [`BOF_BUFFER_SIZE`] bytes,
//! and the files.log record is written when the file ends. A file sniffed as an executable gets the PE analysis
//! ([`crate::analyzers::pe`]) and, when it ends, a pe.log record.
//!
//! Most protocols hand a file its bytes in order ([`FileTransfer::data`]); SMB hands them with their offsets in
//! the file ([`FileTransfer::data_at`]), which Zeek's `File::DataIn` puts in order with a reassembler of at most
//! `Files::reassembly_buffer_size` bytes, counting what is never filled as missing.

use std::collections::BTreeMap;

use crate::analyzers::Ctx;
use crate::analyzers::magic::{BOF_BUFFER_SIZE, sniff_mime};
use crate::analyzers::pe::{self, PeAnalysis};
use crate::logs::{FILES, Value};

/// `Files::reassembly_buffer_size`: bytes a file holds out of order.
pub const REASSEMBLY_BUFFER_SIZE: usize = 524_288;

#[derive(Debug, Clone)]
pub struct FileTransfer {
    pub fuid: String,
    /// files.log `source`: `SMTP`, `FTP_DATA`.
    source: &'static str,
    is_orig: bool,
    /// files.log `depth` (the MIME depth for SMTP, 0 otherwise).
    pub depth: u64,
    pub filename: Option<String>,
    first_ts: f64,
    last_ts: f64,
    seen_bytes: u64,
    missing_bytes: u64,
    /// files.log `total_bytes`, when the protocol announces the size.
    pub total_bytes: Option<u64>,
    /// files.log `timedout`: the file ended by the file framework's timeout rather than by its protocol.
    pub timedout: bool,
    /// The offset of the next byte in order (`stream_offset`), for data handed with offsets.
    stream_offset: u64,
    /// Blocks past `stream_offset` waiting for what comes before them, and their bytes.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    bof: Vec<u8>,
    mime_type: Option<&'static str>,
    sniffed: bool,
    /// The PE analysis, attached when the file was sniffed as an executable.
    pe: Option<Box<PeAnalysis>>,
}

impl FileTransfer {
    /// A file whose first data arrives now (Zeek's `file_new` / `file_over_new_connection`).
    pub fn new(ctx: &mut Ctx, source: &'static str, is_orig: bool) -> Self {
        FileTransfer {
            fuid: ctx.new_fuid(),
            source,
            is_orig,
            depth: 0,
            filename: None,
            first_ts: ctx.ts,
            last_ts: ctx.ts,
            seen_bytes: 0,
            missing_bytes: 0,
            total_bytes: None,
            timedout: false,
            stream_offset: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            bof: Vec::new(),
            mime_type: None,
            sniffed: false,
            pe: None,
        }
    }

    /// `data` at `offset` in the file: delivered when it is the next in order (with any pending blocks it makes
    /// contiguous), kept for later when it comes early, cut to what is new when it overlaps what was delivered.
    /// When the pending blocks pass [`REASSEMBLY_BUFFER_SIZE`], the stream skips to the first of them, the bytes
    /// skipped counted as missing (Zeek's reassembly overflow flush).
    pub fn data_at(&mut self, ts: f64, offset: u64, data: &[u8]) {
        self.last_ts = ts;
        let end = offset.saturating_add(data.len() as u64);
        if end <= self.stream_offset {
            return;
        }
        if offset > self.stream_offset {
            if self.pending.get(&offset).is_none_or(|b| b.len() < data.len()) {
                let replaced = self.pending.insert(offset, data.to_vec()).map_or(0, |b| b.len());
                self.pending_bytes = self.pending_bytes + data.len() - replaced;
            }
            while self.pending_bytes > REASSEMBLY_BUFFER_SIZE
                && let Some((&first, _)) = self.pending.first_key_value()
            {
                self.gap(ts, first.saturating_sub(self.stream_offset));
                self.drain_pending(ts);
            }
            return;
        }
        let skip = usize::try_from(self.stream_offset - offset).unwrap_or(usize::MAX).min(data.len());
        self.data(ts, &data[skip..]);
        self.drain_pending(ts);
    }

    /// Delivers the pending blocks that now start at or before `stream_offset`.
    fn drain_pending(&mut self, ts: f64) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > self.stream_offset {
                break;
            }
            let (offset, block) = entry.remove_entry();
            self.pending_bytes -= block.len();
            let skip = usize::try_from(self.stream_offset - offset).unwrap_or(usize::MAX).min(block.len());
            self.data(ts, &block[skip..]);
        }
    }

    /// Whether the bytes in order reached `total_bytes` (Zeek's `File::IsComplete`: the file manager then removes
    /// the file).
    pub fn is_complete(&self) -> bool {
        self.total_bytes.is_some_and(|total| self.stream_offset >= total)
    }

    pub fn data(&mut self, ts: f64, data: &[u8]) {
        self.last_ts = ts;
        self.seen_bytes += data.len() as u64;
        self.stream_offset = self.stream_offset.saturating_add(data.len() as u64);
        let mut rest = data;
        if !self.sniffed {
            let buffered = data.len().min(BOF_BUFFER_SIZE - self.bof.len());
            self.bof.extend_from_slice(&data[..buffered]);
            if self.bof.len() < BOF_BUFFER_SIZE {
                return;
            }
            // Zeek hands an analyzer added at the sniff the buffered chunks, then this one whole.
            self.sniff();
            rest = &data[buffered..];
        }
        if let Some(pe) = self.pe.as_mut() {
            pe.data(rest, 0);
            pe.stamp(ts);
        }
    }

    /// `len` bytes of the file were never seen; like Zeek, a gap ends the BOF buffer.
    pub fn gap(&mut self, ts: f64, len: u64) {
        self.last_ts = ts;
        self.missing_bytes += len;
        self.stream_offset = self.stream_offset.saturating_add(len);
        if !self.sniffed {
            self.sniff();
        }
        if let Some(pe) = self.pe.as_mut() {
            pe.stamp(ts);
        }
    }

    /// The sniffed MIME type; sniffs what has been buffered if the buffer is not full yet.
    pub fn mime_type(&mut self) -> Option<&'static str> {
        if !self.sniffed {
            self.sniff();
        }
        self.mime_type
    }

    /// A MIME type the protocol analyzer hands the file framework with the data (`file_mgr->DataIn` with a type, as
    /// TLS's stapled OCSP responses): the file is not sniffed then (`File::SetMime`). Call before the first data.
    pub fn set_mime_type(&mut self, mime: &'static str) {
        if self.sniffed || !self.bof.is_empty() {
            return;
        }
        self.mime_type = Some(mime);
        self.sniffed = true;
    }

    /// `Some(mime type)` once the file has been sniffed.
    pub fn sniffed(&self) -> Option<Option<&'static str>> {
        self.sniffed.then_some(self.mime_type)
    }

    fn sniff(&mut self) {
        self.mime_type = sniff_mime(&self.bof);
        self.sniffed = true;
        self.pe = PeAnalysis::attach(self.mime_type, &self.bof);
        self.bof = Vec::new();
    }

    /// Writes the files.log record (full column set; the lead trims it for bare mode).
    pub fn finish(mut self, ctx: &mut Ctx) {
        // What still waits for earlier bytes is delivered with the holes before it missing.
        while let Some((&first, _)) = self.pending.first_key_value() {
            self.gap(self.last_ts, first.saturating_sub(self.stream_offset));
            self.drain_pending(self.last_ts);
        }
        let mime_type = self.mime_type();
        let analyzers = pe::file_removed(ctx, self.pe.take(), &self.fuid);
        log_file(
            ctx,
            FileSummary {
                fuid: self.fuid,
                source: self.source,
                depth: self.depth,
                analyzers,
                mime_type,
                filename: self.filename,
                first_ts: self.first_ts,
                last_ts: self.last_ts,
                is_orig: self.is_orig,
                seen_bytes: self.seen_bytes,
                total_bytes: self.total_bytes,
                missing_bytes: self.missing_bytes,
                timedout: self.timedout,
            },
        );
    }
}

/// What files.log says of a file when the file framework removes it (`Files::Info`), from whichever layer carried
/// it: [`FileTransfer`] or HTTP's entities.
pub struct FileSummary {
    pub fuid: String,
    /// `SMTP`, `FTP_DATA`, `HTTP`, `SMB`, ...
    pub source: &'static str,
    pub depth: u64,
    /// `analyzers`, as [`pe::file_removed`] gives it.
    pub analyzers: Value,
    pub mime_type: Option<&'static str>,
    pub filename: Option<String>,
    pub first_ts: f64,
    pub last_ts: f64,
    pub is_orig: bool,
    pub seen_bytes: u64,
    pub total_bytes: Option<u64>,
    pub missing_bytes: u64,
    pub timedout: bool,
}

/// Writes the files.log record with the full default scripts' columns (the engine trims it for bare mode). The
/// columns no protocol fills here (`overflow_bytes`, `parent_fuid`, the hashes and extraction) are Zeek's values
/// for a file without those analyses.
pub fn log_file(ctx: &mut Ctx, f: FileSummary) {
    let tx_host = if f.is_orig { ctx.id.orig_h } else { ctx.id.resp_h };
    let mut v = Vec::with_capacity(FILES.fields.len());
    v.extend([Value::Time(f.first_ts), Value::str(f.fuid), Value::str(ctx.uid)]);
    v.extend(ctx.id.log_values());
    v.extend([
        Value::str(f.source),
        Value::Count(f.depth),
        f.analyzers,
        Value::opt_str(f.mime_type),
        Value::opt_str(f.filename),
        Value::Interval(f.last_ts - f.first_ts),
        Value::Bool(ctx.cfg.is_local(tx_host)),
        Value::Bool(f.is_orig),
        Value::Count(f.seen_bytes),
        Value::opt_count(f.total_bytes),
        Value::Count(f.missing_bytes),
        Value::Count(0), // overflow_bytes
        Value::Bool(f.timedout),
    ]);
    v.resize(FILES.fields.len(), Value::Unset); // parent_fuid md5 sha1 sha256 extracted extracted_cutoff extracted_size
    ctx.log(&FILES, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::Proto;
    use crate::analyzers::pe::testing::Image;
    use crate::analyzers::testing::Harness;

    /// A file of `content` in 1000-byte deliveries at t=1, 2, ..., ended at t=10.
    fn transfer(source: &'static str, content: &[u8]) -> Harness {
        let mut h = Harness::new(Proto::Tcp, 20);
        let mut file = None;
        for (i, chunk) in content.chunks(1000).enumerate() {
            h.run(1.0 + i as f64, |ctx| {
                file.get_or_insert_with(|| FileTransfer::new(ctx, source, false)).data(ctx.ts, chunk)
            });
        }
        h.run(10.0, |ctx| file.take().expect("a file").finish(ctx));
        h
    }

    /// Bytes handed with offsets (SMB): out of order, overlapping and past the reassembly buffer.
    #[test]
    fn data_with_offsets_is_put_in_order() {
        let mut h = Harness::new(Proto::Tcp, 445);
        let content: Vec<u8> = (0..4000u32).map(|i| b"abcdefghij"[i as usize % 10]).collect();
        let mut file = None;
        for (ts, from, to) in [(1.0, 1000, 2000), (2.0, 0, 1000), (3.0, 500, 1500), (4.0, 3000, 4000)] {
            h.run(ts, |ctx| {
                file.get_or_insert_with(|| FileTransfer::new(ctx, "SMB", false)).data_at(
                    ts,
                    from,
                    &content[from as usize..to as usize],
                )
            });
        }
        let mut file = file.unwrap();
        assert!(!file.is_complete());
        file.total_bytes = Some(4000);
        assert!(!file.is_complete(), "3000..4000 waits for 2000..3000");
        h.run(5.0, |ctx| file.finish(ctx));
        let f = h.logged("files")[0];
        assert_eq!(
            ["seen_bytes", "missing_bytes", "total_bytes", "mime_type"].map(|n| f.get(n).unwrap().to_tsv()),
            ["3000", "1000", "4000", "text/plain"]
        );

        // More than Files::reassembly_buffer_size out of order: the stream skips to the first waiting block.
        let mut file = None;
        let block = vec![b'z'; 200_000];
        for i in 0..3u64 {
            h.run(1.0, |ctx| {
                file.get_or_insert_with(|| FileTransfer::new(ctx, "SMB", true)).data_at(1.0, 1000 + i * 200_000, &block)
            });
        }
        let mut file = file.unwrap();
        // Two blocks wait; the third passes the limit, so the stream skips the 1000 bytes before them.
        assert_eq!((file.seen_bytes, file.missing_bytes), (600_000, 1000));
        h.run(1.0, |_| file.data_at(1.0, 1000 + 3 * 200_000, &block));
        assert_eq!((file.seen_bytes, file.missing_bytes, file.stream_offset), (800_000, 1000, 801_000));
        assert!(file.pending.is_empty());
    }

    #[test]
    fn an_executable_gets_the_pe_analyzer_and_a_pe_record() {
        let exe = Image { e_lfanew: 4500, ..Image::pe32() }.bytes();
        let h = transfer("FTP_DATA", &exe);
        let files = h.logged("files");
        assert_eq!(files[0].get("analyzers"), Some(&Value::str_set(["PE"])));
        let pe = h.logged("pe");
        assert_eq!(pe.len(), 1);
        // Sniffed when the fifth delivery filled the BOF buffer.
        assert_eq!(pe[0].get("ts"), Some(&Value::Time(5.0)));
        assert_eq!(pe[0].get("id"), files[0].get("fuid"));
        assert_eq!(pe[0].get("section_names"), Some(&Value::str_vec([".text", ".data", ".rsrc"])));
    }

    #[test]
    fn a_small_executable_is_analysed_when_it_ends_and_other_files_are_not() {
        let h = transfer("SMTP", &Image::pe32().bytes());
        assert_eq!(h.logged("pe")[0].get("ts"), Some(&Value::Time(10.0)));
        assert_eq!(h.logged("files")[0].get("analyzers"), Some(&Value::str_set(["PE"])));

        // An MZ file too short for a file header: the analyzer ran, no record.
        let h = transfer("SMTP", b"MZ\x90\x00 not much more");
        assert_eq!(h.logged("files")[0].get("analyzers"), Some(&Value::str_set(["PE"])));
        assert!(h.logged("pe").is_empty());

        let h = transfer("SMTP", b"just text\r\n");
        assert_eq!(h.logged("files")[0].get("analyzers"), Some(&Value::Set(vec![])));
        assert!(h.logged("pe").is_empty());
    }
}
