//! Splits SMTP BDAT chunk data into message lines: a line ends at LF, and a CR right before the LF is not part of
//! the line. (Zeek's `SMTP_BDAT_Analyzer` also delivers a lone CR's or LF's line with the terminator and its
//! own weirds, `smtp_bdat_line_cr_only` and `smtp_bdat_line_lf_only`; not reproduced. The command lines of SMTP
//! and POP3 go through [`super::super::content_line::ContentLine`], FTP's through [`super::super::nvt::Nvt`].)

/// A partial line longer than this is delivered as a line of its own, so a peer that never sends LF
/// cannot make the buffer grow without bound.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Default, Clone)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Appends `data` and calls `on_line` for every complete line (without its CRLF / LF).
    /// `on_line` returns how many bytes after that line it consumed itself (raw chunk data for SMTP BDAT),
    /// which are then skipped by the splitter.
    pub fn feed(&mut self, mut data: &[u8], mut on_line: impl FnMut(&[u8], &[u8]) -> usize) {
        while !data.is_empty() {
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                self.partial.extend_from_slice(data);
                if self.partial.len() > MAX_LINE {
                    let line = std::mem::take(&mut self.partial);
                    on_line(&line, &[]);
                }
                return;
            };
            let rest = &data[nl + 1..];
            let consumed = if self.partial.is_empty() {
                on_line(strip_cr(&data[..nl]), rest)
            } else {
                self.partial.extend_from_slice(&data[..nl]);
                let line = std::mem::take(&mut self.partial);
                on_line(strip_cr(&line), rest)
            };
            data = &rest[consumed.min(rest.len())..];
        }
    }

    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Drops a partial line (after a content gap the rest of it is unknown).
    pub fn clear(&mut self) {
        self.partial.clear();
    }
}

/// Zeek's `DPD::ignore_violations_after`: a protocol violation this many bytes into a connection no longer
/// removes the analyzer (`base/frameworks/analyzer/dpd.zeek`).
const IGNORE_VIOLATIONS_AFTER: u64 = 10 * 1024;

/// The bytes of a connection an analyzer has seen in both directions (delivered or lost in gaps), standing in for
/// `c$orig$size + c$resp$size` when deciding whether a violation still counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamBytes(u64);

impl StreamBytes {
    pub fn add(&mut self, n: u64) {
        self.0 = self.0.saturating_add(n);
    }

    /// A violation now would remove the analyzer (Zeek ignores the ones made deep into a connection).
    pub fn violation_counts(self) -> bool {
        self.0 <= IGNORE_VIOLATIONS_AFTER
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_deliveries() {
        let mut lb = LineBuffer::default();
        let mut got = vec![];
        lb.feed(b"USER a\r\nPA", |l, _| {
            got.push(l.to_vec());
            0
        });
        lb.feed(b"SS b\nrest", |l, _| {
            got.push(l.to_vec());
            0
        });
        assert_eq!(got, vec![b"USER a".to_vec(), b"PASS b".to_vec()]);
        assert!(lb.has_partial());
    }
}
