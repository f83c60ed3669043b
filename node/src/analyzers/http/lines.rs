//! Zeek's ContentLine support analyzer: splits one direction of the stream into lines, or hands over
//! "plain" byte runs when the HTTP parser asks for a body of known length.

/// Zeek's default `max_line_length` for content lines.
const MAX_LINE_LENGTH: usize = 16 * 1024 * 1024;

/// What one step of the splitter produced.
#[derive(Debug, PartialEq)]
pub(super) enum Piece<'a> {
    /// A complete line without its terminator.
    Line(Vec<u8>),
    /// Raw body bytes delivered in plain mode.
    Plain(&'a [u8]),
}

#[derive(Debug)]
pub(super) struct ContentLine {
    buf: Vec<u8>,
    last_char: u8,
    plain_remaining: i64,
    /// Bytes left until the declared message end (`SetDeliverySize`), or -1.
    delivery_length: i64,
    /// CR and LF alone end a line (Zeek's `CR_as_EOL | LF_as_EOL`); off inside multipart parts.
    bare_eol: bool,
    /// A weird raised while splitting, for the caller to report.
    pub(super) pending_weird: Option<&'static str>,
}

impl Default for ContentLine {
    fn default() -> Self {
        ContentLine {
            buf: Vec::new(),
            last_char: 0,
            plain_remaining: 0,
            delivery_length: -1,
            bare_eol: true,
            pending_weird: None,
        }
    }
}

impl ContentLine {
    pub(super) fn set_plain_delivery(&mut self, len: i64) {
        self.plain_remaining = len.max(0);
    }

    pub(super) fn set_delivery_size(&mut self, len: i64) {
        self.delivery_length = len.max(-1);
    }

    pub(super) fn set_bare_eol(&mut self, on: bool) {
        self.bare_eol = on;
    }

    pub(super) fn has_partial_line(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Accounts a stream delivery against the declared message size (before splitting it).
    pub(super) fn count_delivery(&mut self, len: usize) {
        if self.delivery_length > 0 {
            self.delivery_length -= i64::try_from(len).unwrap_or(i64::MAX);
        }
    }

    /// After a delivery: true when the declared message end was reached exactly; Zeek then terminates a
    /// pending partial line itself.
    pub(super) fn reached_delivery_end(&mut self) -> bool {
        if self.delivery_length == 0 {
            self.delivery_length = -1;
            return true;
        }
        false
    }

    /// One step over `data`: how many bytes were consumed and what (if anything) came out.
    pub(super) fn next<'a>(&mut self, data: &'a [u8]) -> (usize, Option<Piece<'a>>) {
        let mut start = 0;
        if self.bare_eol && self.last_char == b'\r' && data.first() == Some(&b'\n') {
            // The CR already ended the line; swallow the LF.
            self.last_char = b'\n';
            start = 1;
        }
        let rest = &data[start..];
        if self.plain_remaining > 0 && !rest.is_empty() {
            let n = usize::try_from(self.plain_remaining).unwrap_or(usize::MAX).min(rest.len());
            self.last_char = 0;
            self.plain_remaining -= n as i64;
            return (start + n, Some(Piece::Plain(&rest[..n])));
        }
        for (i, &c) in rest.iter().enumerate() {
            if self.buf.len() >= MAX_LINE_LENGTH {
                self.pending_weird = Some("contentline_size_exceeded");
                return (start + i, Some(self.emit(c)));
            }
            match c {
                b'\r' if rest.get(i + 1) == Some(&b'\n') => return (start + i + 2, Some(self.emit(b'\n'))),
                b'\r' if self.bare_eol => return (start + i + 1, Some(self.emit(c))),
                b'\n' if self.last_char == b'\r' => {
                    if self.buf.is_empty() {
                        self.last_char = c;
                        continue;
                    }
                    self.buf.pop();
                    return (start + i + 1, Some(self.emit(c)));
                }
                b'\n' if self.bare_eol => return (start + i + 1, Some(self.emit(c))),
                _ => self.buf.push(c),
            }
            self.last_char = c;
        }
        (data.len(), None)
    }

    fn emit(&mut self, terminator: u8) -> Piece<'static> {
        self.last_char = terminator;
        Piece::Line(std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(cl: &mut ContentLine, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = vec![];
        while !data.is_empty() {
            let (n, piece) = cl.next(data);
            match piece {
                Some(Piece::Line(l)) => out.push(l),
                Some(Piece::Plain(p)) => out.push(p.to_vec()),
                None => {}
            }
            data = &data[n..];
        }
        out
    }

    #[test]
    fn splits_crlf_lf_and_cr() {
        let mut cl = ContentLine::default();
        assert_eq!(split(&mut cl, b"a\r\nb\nc\rd"), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(cl.has_partial_line());
        // A CR at the end of one segment and its LF in the next make one terminator.
        let mut cl = ContentLine::default();
        assert_eq!(split(&mut cl, b"x\r"), vec![b"x".to_vec()]);
        assert_eq!(split(&mut cl, b"\ny\n"), vec![b"y".to_vec()]);
    }

    #[test]
    fn plain_delivery_hands_over_raw_bytes() {
        let mut cl = ContentLine::default();
        cl.set_plain_delivery(3);
        assert_eq!(split(&mut cl, b"a\nbc\n"), vec![b"a\nb".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn multipart_mode_only_breaks_on_crlf() {
        let mut cl = ContentLine::default();
        cl.set_bare_eol(false);
        assert_eq!(split(&mut cl, b"1\n2\r3\r\n"), vec![b"1\n2\r3".to_vec()]);
    }
}
