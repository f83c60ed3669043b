//! One file seen in a protocol stream (an SMTP MIME entity, an FTP data transfer) and its files.log record.
//!
//! This mirrors the part of Zeek's file analysis framework the protocol scripts rely on: a file gets a
//! `fuid` when its first byte arrives, its MIME type is sniffed from the first [`BOF_BUFFER_SIZE`] bytes,
//! and the files.log record is written when the file ends. A file sniffed as an executable gets the PE analysis
//! ([`crate::analyzers::pe`]) and, when it ends, a pe.log record.

use crate::analyzers::Ctx;
use crate::analyzers::magic::{BOF_BUFFER_SIZE, sniff_mime};
use crate::analyzers::pe::{self, PeAnalysis};
use crate::logs::{FILES, Value};

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
            bof: Vec::new(),
            mime_type: None,
            sniffed: false,
            pe: None,
        }
    }

    pub fn data(&mut self, ts: f64, data: &[u8]) {
        self.last_ts = ts;
        self.seen_bytes += data.len() as u64;
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
        let mime = self.mime_type();
        let analyzers = pe::file_removed(ctx, self.pe.take(), &self.fuid);
        let tx_host = if self.is_orig { ctx.id.orig_h } else { ctx.id.resp_h };
        let mut v = Vec::with_capacity(FILES.fields.len());
        v.push(Value::Time(self.first_ts));
        v.push(Value::str(self.fuid));
        v.push(Value::str(ctx.uid));
        v.extend(ctx.id.log_values());
        v.push(Value::str(self.source));
        v.push(Value::Count(self.depth));
        v.push(analyzers);
        v.push(Value::opt_str(mime));
        v.push(Value::opt_str(self.filename));
        v.push(Value::Interval(self.last_ts - self.first_ts));
        v.push(Value::Bool(ctx.cfg.is_local(tx_host)));
        v.push(Value::Bool(self.is_orig));
        v.push(Value::Count(self.seen_bytes));
        v.push(Value::Unset); // total_bytes: neither SMTP nor FTP announce it to the file framework
        v.push(Value::Count(self.missing_bytes));
        v.push(Value::Count(0)); // overflow_bytes
        v.push(Value::Bool(false)); // timedout
        v.push(Value::Unset); // parent_fuid
        v.resize(FILES.fields.len(), Value::Unset); // md5 sha1 sha256 extracted extracted_cutoff extracted_size
        ctx.log(&FILES, v);
    }
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
