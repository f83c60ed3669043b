//! One file seen in a protocol stream (an SMTP MIME entity, an FTP data transfer) and its files.log record.
//!
//! This mirrors the part of Zeek's file analysis framework the protocol scripts rely on: a file gets a
//! `fuid` when its first byte arrives, its MIME type is sniffed from the first [`BOF_BUFFER_SIZE`] bytes,
//! and the files.log record is written when the file ends.

use crate::analyzers::Ctx;
use crate::analyzers::magic::{BOF_BUFFER_SIZE, sniff_mime};
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
        }
    }

    pub fn data(&mut self, ts: f64, data: &[u8]) {
        self.last_ts = ts;
        self.seen_bytes += data.len() as u64;
        if !self.sniffed {
            let room = BOF_BUFFER_SIZE - self.bof.len();
            self.bof.extend_from_slice(&data[..data.len().min(room)]);
            if self.bof.len() >= BOF_BUFFER_SIZE {
                self.sniff();
            }
        }
    }

    /// `len` bytes of the file were never seen; like Zeek, a gap ends the BOF buffer.
    pub fn gap(&mut self, ts: f64, len: u64) {
        self.last_ts = ts;
        self.missing_bytes += len;
        if !self.sniffed {
            self.sniff();
        }
    }

    /// The sniffed MIME type; sniffs what has been buffered if the buffer is not full yet.
    pub fn mime_type(&mut self) -> Option<&'static str> {
        if !self.sniffed {
            self.sniff();
        }
        self.mime_type
    }

    /// `Some(mime type)` once the file has been sniffed.
    pub fn sniffed(&self) -> Option<Option<&'static str>> {
        self.sniffed.then_some(self.mime_type)
    }

    fn sniff(&mut self) {
        self.mime_type = sniff_mime(&self.bof);
        self.sniffed = true;
        self.bof = Vec::new();
    }

    /// Writes the files.log record (full column set; the lead trims it for bare mode).
    pub fn finish(mut self, ctx: &mut Ctx) {
        let mime = self.mime_type();
        let tx_host = if self.is_orig { ctx.id.orig_h } else { ctx.id.resp_h };
        let mut v = Vec::with_capacity(FILES.fields.len());
        v.push(Value::Time(self.first_ts));
        v.push(Value::str(self.fuid));
        v.push(Value::str(ctx.uid));
        v.extend(ctx.id.log_values());
        v.push(Value::str(self.source));
        v.push(Value::Count(self.depth));
        v.push(Value::Set(vec![]));
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
