//! HTTP bodies as files: fuids, mime-type sniffing on the first bytes ([`crate::analyzers::magic`]), the PE
//! analysis of executables ([`crate::analyzers::pe`]), and the files.log (and pe.log) record written when the file
//! ends.

use crate::analyzers::Ctx;
use crate::analyzers::files::{FileSummary, log_file};
use crate::analyzers::magic::{BOF_BUFFER_SIZE, sniff_mime};
use crate::analyzers::pe::{self, PeAnalysis};

/// How much of an entity's start the message layer copies for the file layer: the BOF buffer the sniffer reads,
/// and beyond it the headers of an executable (a PE's headers rarely pass 4 KiB; past this window the PE
/// analysis ends as if the file did).
pub(super) const FILE_HEAD_SIZE: usize = 16 * 1024;

/// One open file (an entity with content).
#[derive(Debug)]
pub(super) struct OpenFile {
    pub fuid: String,
    /// `f$http`: the http.log record the file belongs to.
    pub record_key: Option<u64>,
    pub filename: Option<String>,
    first_ts: f64,
    last_ts: f64,
    seen_bytes: u64,
    /// Bytes lost in content gaps (files.log `missing_bytes`).
    missing_bytes: u64,
    bof: Vec<u8>,
    mime: Option<Option<&'static str>>,
    /// The PE analysis, attached when the file was sniffed as an executable.
    pe: Option<Box<PeAnalysis>>,
    /// Where the next content goes, and how far the file is contiguous from its start (`stream_offset`): they
    /// differ once a 206 reply delivered a part further on, which Zeek's file reassembler holds until the file
    /// ends (its holes are then missing bytes).
    offsets: Option<Box<Offsets>>,
}

#[derive(Debug, Default)]
struct Offsets {
    next: u64,
    contiguous: u64,
    /// The end of the furthest content.
    extent: u64,
}

impl OpenFile {
    pub(super) fn new(ts: f64, fuid: String, record_key: Option<u64>, filename: Option<String>) -> Self {
        OpenFile {
            fuid,
            record_key,
            filename,
            first_ts: ts,
            last_ts: ts,
            seen_bytes: 0,
            missing_bytes: 0,
            bof: vec![],
            mime: None,
            pe: None,
            offsets: None,
        }
    }

    /// Adds `len` bytes of content, of which `head` are the first (what is left of the file's first
    /// [`FILE_HEAD_SIZE`] bytes); returns the sniffed mime type when the sniff happens now (BOF buffer full).
    pub(super) fn data(&mut self, ts: f64, head: &[u8], len: u64) -> Option<Option<&'static str>> {
        self.last_ts = ts;
        let sniffed = self.add_content(head, len);
        if let Some(pe) = self.pe.as_mut() {
            pe.stamp(ts);
        }
        sniffed
    }

    fn add_content(&mut self, head: &[u8], len: u64) -> Option<Option<&'static str>> {
        self.seen_bytes += len;
        if let Some(offsets) = self.offsets.as_mut() {
            let in_order = offsets.next == offsets.contiguous;
            offsets.next += len;
            offsets.extent = offsets.extent.max(offsets.next);
            if in_order {
                offsets.contiguous = offsets.next;
            } else {
                // The reassembler holds this part: when the file ends, the hole before it is a gap, which
                // settles the metadata with the contiguous start alone (after the http.log record, so it is not
                // reported there).
                self.sniff();
                return None;
            }
        }
        let unseen = len.saturating_sub(head.len() as u64);
        if self.mime.is_some() {
            if let Some(pe) = self.pe.as_mut() {
                pe.data(head, unseen);
            }
            return None;
        }
        if self.bof.capacity() == 0 {
            // Growing by packets would reallocate three times on the way to a full buffer.
            self.bof.reserve_exact(BOF_BUFFER_SIZE);
        }
        let buffered = (BOF_BUFFER_SIZE - self.bof.len()).min(head.len());
        self.bof.extend_from_slice(&head[..buffered]);
        if self.bof.len() < BOF_BUFFER_SIZE {
            return None;
        }
        let mime = self.sniff();
        // Zeek hands an analyzer added at the sniff the buffered chunks, then this one whole.
        if let Some(pe) = self.pe.as_mut() {
            pe.data(&head[buffered..], unseen);
        }
        Some(mime)
    }

    /// `File::Gap`: `len` bytes of content were lost. A gap ends the file's contiguous beginning, so the metadata
    /// is inferred from what the buffer holds, once (returned as for [`OpenFile::data`]).
    pub(super) fn gap(&mut self, ts: f64, len: u64) -> Option<Option<&'static str>> {
        self.last_ts = ts;
        let sniffed = self.add_gap(len);
        if let Some(pe) = self.pe.as_mut() {
            pe.stamp(ts);
        }
        sniffed
    }

    fn add_gap(&mut self, len: u64) -> Option<Option<&'static str>> {
        if let Some(offsets) = self.offsets.as_mut() {
            let in_order = offsets.next == offsets.contiguous;
            offsets.next += len;
            offsets.extent = offsets.extent.max(offsets.next);
            if !in_order {
                return None;
            }
            offsets.contiguous = offsets.next;
        }
        self.missing_bytes += len;
        self.mime.is_none().then(|| self.sniff())
    }

    /// A 206 reply's part: what follows goes to `offset` in the file.
    pub(super) fn seek(&mut self, offset: u64) {
        let offsets = self.offsets.get_or_insert_with(|| {
            let contiguous = self.seen_bytes + self.missing_bytes;
            Box::new(Offsets { next: contiguous, contiguous, extent: contiguous })
        });
        offsets.next = offset;
    }

    /// `File::IsComplete`: the file is contiguous up to its announced size.
    pub(super) fn is_complete(&self, total_bytes: Option<u64>) -> bool {
        let contiguous = self.offsets.as_ref().map_or(self.seen_bytes + self.missing_bytes, |o| o.contiguous);
        total_bytes.is_some_and(|total| contiguous >= total)
    }

    /// Sniffs once (at the latest when the file ends), attaching the PE analysis to an executable; the buffer is
    /// not needed after that.
    pub(super) fn sniff(&mut self) -> Option<&'static str> {
        if let Some(mime) = self.mime {
            return mime;
        }
        let bof = std::mem::take(&mut self.bof);
        let mime = sniff_mime(&bof);
        self.mime = Some(mime);
        self.pe = PeAnalysis::attach(mime, &bof);
        mime
    }

    pub(super) fn was_sniffed(&self) -> bool {
        self.mime.is_some()
    }

    /// The files.log record.
    /// `timedout`: the file was never ended and goes when the connection does (Zeek's file timeout, or its
    /// termination, which times out every file left).
    pub(super) fn log(mut self, ctx: &mut Ctx, is_orig: bool, total_bytes: Option<u64>, timedout: bool) {
        let mime_type = self.sniff();
        let analyzers = pe::file_removed(ctx, self.pe.take(), &self.fuid);
        // The reassembler's holes up to the furthest part, found when it is flushed.
        let missing_bytes = match &self.offsets {
            Some(o) if o.extent > o.contiguous => o.extent.saturating_sub(self.seen_bytes),
            _ => self.missing_bytes,
        };
        log_file(
            ctx,
            FileSummary {
                fuid: self.fuid,
                source: "HTTP",
                depth: 0,
                analyzers,
                mime_type,
                filename: self.filename,
                first_ts: self.first_ts,
                last_ts: self.last_ts,
                is_orig,
                seen_bytes: self.seen_bytes,
                total_bytes,
                missing_bytes,
                timedout,
            },
        );
    }
}
