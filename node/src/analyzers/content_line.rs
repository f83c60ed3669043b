//! Zeek's ContentLine support analyzer: splits one direction of the stream into lines, or hands over
//! "plain" byte runs when the HTTP parser asks for a body of known length. HTTP, IRC, SMTP and POP3 split their
//! lines with it, IRC with the shorter maximum its analyzer gives the ContentLine analyzer, SMTP sensitive to
//! NULs as its analyzer makes it.

/// Zeek's default `max_line_length` for content lines (`DEFAULT_MAX_LINE_LENGTH`: "slightly smaller than 16MB so
/// that the buffer is not unnecessarily resized to 32M").
const MAX_LINE_LENGTH: usize = 16 * 1024 * 1024 - 100;

/// What one step of the splitter produced.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece<'a> {
    /// A complete line without its terminator, inside the delivered bytes.
    Line(&'a [u8]),
    /// A complete line that started in an earlier delivery (collected in the splitter's buffer).
    Buffered(Vec<u8>),
    /// Raw body bytes delivered in plain mode.
    Plain(&'a [u8]),
}

/// The start of a line that continues in a later delivery. Boxed: most lines come whole in one delivery and are
/// handed out in place, so the buffer is nearly always empty, and a `Vec` inline kept three words for it in each
/// direction of every HTTP connection (one here).
#[derive(Debug, Default)]
#[expect(clippy::box_collection, reason = "one word inline instead of three; the box exists only with a partial line")]
struct PartialLine(Option<Box<Vec<u8>>>);

impl PartialLine {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |line| line.len())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn bytes(&mut self) -> &mut Vec<u8> {
        self.0.get_or_insert_with(Box::default)
    }

    fn extend_from_slice(&mut self, more: &[u8]) {
        if !more.is_empty() {
            self.bytes().extend_from_slice(more);
        }
    }

    #[cfg(test)]
    fn push(&mut self, byte: u8) {
        self.bytes().push(byte);
    }

    fn pop(&mut self) {
        if let Some(line) = &mut self.0 {
            line.pop();
        }
    }

    /// The line so far, leaving the buffer empty (and unallocated).
    fn take(&mut self) -> Vec<u8> {
        self.0.take().map(|line| *line).unwrap_or_default()
    }
}

#[derive(Debug)]
/// `MAX_LINE` is the analyzer's `max_line_length`: a line that reaches it is handed out as it stands (a type
/// parameter, so HTTP's two splitters per connection stay as small as they were).
pub(crate) struct ContentLine<const MAX_LINE: usize = MAX_LINE_LENGTH> {
    buf: PartialLine,
    last_char: u8,
    plain_remaining: i64,
    /// Bytes left until the declared message end (`SetDeliverySize`), or -1.
    delivery_length: i64,
    /// CR and LF alone end a line (Zeek's `CR_as_EOL | LF_as_EOL`); off inside multipart parts.
    bare_eol: bool,
    /// A line reached the maximum length: a weird for the caller to report ([`ContentLine::take_weird`]). Flags,
    /// not an `Option<&str>`, which made the splitter (two per HTTP connection) 16 bytes larger.
    size_exceeded: bool,
    /// A CR ended a line and an ordinary byte followed it (Zeek's `line_terminated_with_single_CR`, raised while
    /// a bare CR ends lines; inside a multipart body Zeek turns both off together).
    single_cr: bool,
    /// Zeek's `flag_NULs` (`SetIsNULSensitive`): the first NUL of the direction is dropped and reported
    /// (`NUL_in_line`), later ones are line content.
    nul_sensitive: bool,
    /// A NUL was dropped: the weird for the caller.
    nul_in_line: bool,
}

/// What [`ContentLine::feed`] hands a text protocol's analyzer, in stream order.
pub(crate) enum LineEvent<'a> {
    /// A line without its terminator.
    Line(&'a [u8]),
    /// One of the splitter's weirds (its analyzer, `CONTENTLINE`, is the source).
    Weird(&'static str),
}

impl<const MAX_LINE: usize> Default for ContentLine<MAX_LINE> {
    fn default() -> Self {
        ContentLine {
            buf: PartialLine::default(),
            last_char: 0,
            plain_remaining: 0,
            delivery_length: -1,
            bare_eol: true,
            size_exceeded: false,
            single_cr: false,
            nul_sensitive: false,
            nul_in_line: false,
        }
    }
}

impl<const MAX_LINE: usize> ContentLine<MAX_LINE> {
    /// A weird raised by the last step, if any (taken: each is reported once; call until `None`).
    pub(crate) fn take_weird(&mut self) -> Option<&'static str> {
        if std::mem::take(&mut self.size_exceeded) {
            return Some("contentline_size_exceeded");
        }
        if std::mem::take(&mut self.nul_in_line) {
            return Some("NUL_in_line");
        }
        std::mem::take(&mut self.single_cr).then_some("line_terminated_with_single_CR")
    }

    /// Zeek's `SetIsNULSensitive(true)`.
    pub(crate) fn set_nul_sensitive(&mut self) {
        self.nul_sensitive = true;
    }

    /// Forgets the line in progress (its rest was lost in a content gap).
    pub(crate) fn clear_partial_line(&mut self) {
        self.buf.take();
    }

    /// Splits `data` for a text protocol: `on` gets each line and weird in stream order, with the bytes that
    /// follow it in `data`, and returns how many of those it consumed itself (SMTP's BDAT chunk data).
    pub(crate) fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(LineEvent, &[u8]) -> usize) {
        while !data.is_empty() {
            let (used, piece) = self.next(data);
            let rest = &data[used..];
            let mut consumed = 0;
            while let Some(name) = self.take_weird() {
                consumed = consumed.max(on(LineEvent::Weird(name), rest));
            }
            consumed = consumed.max(match piece {
                Some(Piece::Line(line) | Piece::Plain(line)) => on(LineEvent::Line(line), rest),
                Some(Piece::Buffered(line)) => on(LineEvent::Line(&line), rest),
                None => 0,
            });
            data = &rest[consumed.min(rest.len())..];
        }
    }

    pub(super) fn set_plain_delivery(&mut self, len: i64) {
        self.plain_remaining = len.max(0);
    }

    pub(super) fn set_delivery_size(&mut self, len: i64) {
        self.delivery_length = len.max(-1);
    }

    pub(super) fn set_bare_eol(&mut self, on: bool) {
        self.bare_eol = on;
    }

    pub(crate) fn has_partial_line(&self) -> bool {
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

    /// One step over `data`: how many bytes were consumed and what (if anything) came out. (Inlined into each
    /// splitting loop, HTTP's above all, where a call per line cost 0.4% of all instructions on the benchmark mix.)
    #[inline(always)]
    pub(crate) fn next<'a>(&mut self, data: &'a [u8]) -> (usize, Option<Piece<'a>>) {
        let mut start = 0;
        if self.bare_eol && self.last_char == b'\r' && data.first() == Some(&b'\n') {
            // The CR already ended the line; swallow the LF.
            self.last_char = b'\n';
            start = 1;
        }
        let mut rest = &data[start..];
        if self.plain_remaining > 0 && !rest.is_empty() {
            let n = usize::try_from(self.plain_remaining).unwrap_or(usize::MAX).min(rest.len());
            self.last_char = 0;
            self.plain_remaining -= n as i64;
            return (start + n, Some(Piece::Plain(&rest[..n])));
        }
        if self.bare_eol && self.last_char == b'\r' && rest.first().is_some_and(|&c| c != b'\r' && c != b'\n') {
            // A lone CR ended the last line (CR LF was swallowed above, and a CR ends a line of its own).
            self.single_cr = true;
        }
        // The line so far is `self.buf` followed by `rest[..i]`: runs of ordinary bytes are skipped in one
        // search and the line is handed out in place when it did not start in an earlier delivery.
        let mut i = 0;
        while i < rest.len() {
            let line_len = self.buf.len() + i;
            if line_len >= MAX_LINE {
                // Zeek's buffer is full: the line goes out one byte short, and the byte that found it full is
                // consumed (`offset = buf_len - 1; EMIT_LINE`).
                self.size_exceeded = true;
                let piece = if i > 0 {
                    self.emit(rest, i - 1, rest[i])
                } else {
                    self.buf.pop();
                    self.emit(rest, 0, rest[i])
                };
                return (start + i + 1, Some(piece));
            }
            let limit = rest.len().min(i + (MAX_LINE - line_len));
            let found = if self.nul_sensitive {
                memchr::memchr3(b'\r', b'\n', 0, &rest[i..limit])
            } else {
                memchr::memchr2(b'\r', b'\n', &rest[i..limit])
            };
            match found {
                Some(at) => i += at,
                None => {
                    i = limit;
                    continue;
                }
            }
            if rest[i] == 0 {
                // Zeek's `CheckNUL`: reported once, and the byte is not part of the line; the line so far moves
                // to the buffer, as it can no longer be handed out in place.
                self.nul_sensitive = false;
                self.nul_in_line = true;
                self.buf.extend_from_slice(&rest[..i]);
                self.last_char = 0;
                start += i + 1;
                rest = &rest[i + 1..];
                i = 0;
                continue;
            }
            match rest[i] {
                b'\r' if rest.get(i + 1) == Some(&b'\n') => return (start + i + 2, Some(self.emit(rest, i, b'\n'))),
                b'\r' if self.bare_eol => return (start + i + 1, Some(self.emit(rest, i, b'\r'))),
                // Only possible first (a CR followed by LF inside `rest` ended the line above): the CR came with
                // the previous delivery and was kept as line content.
                b'\n' if i == 0 && self.last_char == b'\r' => {
                    self.last_char = b'\n';
                    if self.buf.is_empty() {
                        // An empty line so far: the LF is dropped and the line starts after it.
                        start += 1;
                        rest = &rest[1..];
                        continue;
                    }
                    self.buf.pop();
                    return (start + 1, Some(Piece::Buffered(self.buf.take())));
                }
                b'\n' if self.bare_eol => return (start + i + 1, Some(self.emit(rest, i, b'\n'))),
                _ => i += 1,
            }
        }
        self.buf.extend_from_slice(rest);
        if let Some(&last) = rest.last() {
            self.last_char = last;
        }
        (data.len(), None)
    }

    /// Ends the line at `rest[..end]` (after whatever the buffer holds from earlier deliveries).
    fn emit<'a>(&mut self, rest: &'a [u8], end: usize, terminator: u8) -> Piece<'a> {
        self.last_char = terminator;
        if self.buf.is_empty() {
            return Piece::Line(&rest[..end]);
        }
        self.buf.extend_from_slice(&rest[..end]);
        Piece::Buffered(self.buf.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The splitter as Zeek's ContentLine analyzer defines it, one byte at a time: the reference the
    /// run-skipping splitter must match.
    fn reference_next(cl: &mut ContentLine, data: &[u8]) -> (usize, Option<Vec<u8>>) {
        let mut start = 0;
        if cl.bare_eol && cl.last_char == b'\r' && data.first() == Some(&b'\n') {
            cl.last_char = b'\n';
            start = 1;
        }
        let rest = &data[start..];
        if cl.plain_remaining > 0 && !rest.is_empty() {
            let n = usize::try_from(cl.plain_remaining).unwrap_or(usize::MAX).min(rest.len());
            cl.last_char = 0;
            cl.plain_remaining -= n as i64;
            return (start + n, Some(rest[..n].to_vec()));
        }
        let emit = |cl: &mut ContentLine, terminator: u8| {
            cl.last_char = terminator;
            Some(cl.buf.take())
        };
        for (i, &c) in rest.iter().enumerate() {
            if cl.buf.len() >= MAX_LINE_LENGTH {
                cl.size_exceeded = true;
                cl.buf.pop();
                return (start + i + 1, emit(cl, c));
            }
            match c {
                b'\r' if rest.get(i + 1) == Some(&b'\n') => return (start + i + 2, emit(cl, b'\n')),
                b'\r' if cl.bare_eol => return (start + i + 1, emit(cl, c)),
                b'\n' if cl.last_char == b'\r' => {
                    if cl.buf.is_empty() {
                        cl.last_char = c;
                        continue;
                    }
                    cl.buf.pop();
                    return (start + i + 1, emit(cl, c));
                }
                b'\n' if cl.bare_eol => return (start + i + 1, emit(cl, c)),
                0 if cl.nul_sensitive => {
                    cl.nul_sensitive = false;
                    cl.nul_in_line = true;
                }
                _ => cl.buf.push(c),
            }
            // Zeek checks after every byte that did not end a line; its weirds are suppressed when CR and LF
            // alone end no lines.
            if cl.last_char == b'\r' && cl.bare_eol {
                cl.single_cr = true;
            }
            cl.last_char = c;
        }
        (data.len(), None)
    }

    /// Everything both splitters produce over `chunks` (with plain runs and mode switches between deliveries),
    /// including weirds and the state left behind.
    fn both(chunks: &[Vec<u8>], bare_eol: bool, plain: i64, nul_sensitive: bool) -> (Vec<String>, Vec<String>) {
        let (mut fast, mut reference) = (ContentLine::default(), ContentLine::default());
        if nul_sensitive {
            fast.set_nul_sensitive();
            reference.set_nul_sensitive();
        }
        let (mut fast_out, mut ref_out) = (vec![], vec![]);
        for (n, chunk) in chunks.iter().enumerate() {
            for cl in [&mut fast, &mut reference] {
                cl.set_bare_eol(bare_eol ^ (n % 3 == 2));
                if n % 4 == 1 {
                    cl.set_plain_delivery(plain);
                }
            }
            let mut data = &chunk[..];
            while !data.is_empty() {
                let (used, piece) = fast.next(data);
                let piece = match piece {
                    Some(Piece::Line(l)) => Some(format!("line {l:?}")),
                    Some(Piece::Buffered(l)) => Some(format!("line {l:?}")),
                    Some(Piece::Plain(p)) => Some(format!("plain {p:?}")),
                    None => None,
                };
                fast_out.push(format!(
                    "{used} {piece:?} {:?}",
                    std::iter::from_fn(|| fast.take_weird()).collect::<Vec<_>>()
                ));
                data = &data[used..];
            }
            let mut data = &chunk[..];
            while !data.is_empty() {
                let (used, piece) = reference_next(&mut reference, data);
                let is_plain = reference.last_char == 0 && piece.is_some() && used > 0;
                let piece = piece.map(|p| if is_plain { format!("plain {p:?}") } else { format!("line {p:?}") });
                ref_out.push(format!(
                    "{used} {piece:?} {:?}",
                    std::iter::from_fn(|| reference.take_weird()).collect::<Vec<_>>()
                ));
                data = &data[used..];
            }
            fast_out.push(format!("state {:?} {} {}", fast.buf, fast.last_char, fast.plain_remaining));
            ref_out.push(format!("state {:?} {} {}", reference.buf, reference.last_char, reference.plain_remaining));
        }
        (fast_out, ref_out)
    }

    proptest! {
        #[test]
        fn run_skipping_matches_the_byte_wise_definition(
            chunks in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(0), any::<u8>()], 0..24),
                1..8,
            ),
            bare_eol in any::<bool>(),
            plain in 0i64..6,
            nul_sensitive in any::<bool>(),
        ) {
            let (fast, reference) = both(&chunks, bare_eol, plain, nul_sensitive);
            prop_assert_eq!(fast, reference);
        }
    }

    #[test]
    fn over_long_lines_are_cut_like_the_definition() {
        let mut long = vec![b'x'; MAX_LINE_LENGTH - 3];
        long.extend_from_slice(b"yyyyyy\r\nz\n");
        let chunks = [long[..1000].to_vec(), long[1000..].to_vec()];
        let (fast, reference) = both(&chunks, true, 0, false);
        assert_eq!(fast, reference);
        assert!(fast.iter().any(|l| l.contains("contentline_size_exceeded")));
    }

    fn split(cl: &mut ContentLine, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = vec![];
        while !data.is_empty() {
            let (n, piece) = cl.next(data);
            match piece {
                Some(Piece::Line(l)) => out.push(l.to_vec()),
                Some(Piece::Buffered(l)) => out.push(l),
                Some(Piece::Plain(p)) => out.push(p.to_vec()),
                None => {}
            }
            data = &data[n..];
        }
        out
    }

    /// ContentLine.cc: a lone CR ends a line, and the ordinary byte after it is `line_terminated_with_single_CR`;
    /// CR LF (even split between deliveries), CR CR LF and CR before LF are not; a bare CR inside a multipart body
    /// raises nothing (Zeek suppresses the splitter's weirds there).
    #[test]
    fn a_lone_cr_before_an_ordinary_byte_is_a_weird() {
        let weirds = |chunks: &[&[u8]], bare_eol: bool| {
            let mut cl: ContentLine = ContentLine::default();
            cl.set_bare_eol(bare_eol);
            let mut names = vec![];
            for chunk in chunks {
                let mut data = *chunk;
                while !data.is_empty() {
                    let (n, _) = cl.next(data);
                    data = &data[n..];
                    names.extend(std::iter::from_fn(|| cl.take_weird()));
                }
            }
            names
        };
        assert_eq!(weirds(&[b"GET / HTTP/1.1\rHost: a\r\n"], true), ["line_terminated_with_single_CR"]);
        assert_eq!(weirds(&[b"GET / HTTP/1.1\r", b"Host: a\r\n"], true), ["line_terminated_with_single_CR"]);
        assert!(weirds(&[b"a\r", b"\nb\r\n"], true).is_empty());
        assert!(weirds(&[b"a\r\r\nb\n\r\nc\r\n"], true).is_empty(), "CR CR LF, LF CR LF");
        assert_eq!(weirds(&[b"b\n\rc\r\n"], true), ["line_terminated_with_single_CR"], "LF CR c");
        assert_eq!(weirds(&[b"a\r\rb\r\n"], true), ["line_terminated_with_single_CR"]);
        assert!(weirds(&[b"a\rb\r\n"], false).is_empty());
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
