//! Decompression of `Content-Encoding: gzip`/`deflate` bodies as Zeek's ZIP analyzer does it: the header decides
//! between gzip and zlib whatever the encoding said (zlib's `MAX_WBITS + 32`), a stream that is neither is retried
//! as raw deflate (servers that send no zlib header), and the first error or the end of the stream ends
//! decompression for good (corrupt data is the `inflate_failed` weird).

use flate2::{Decompress, FlushDecompress, Status};

/// Output is produced in steps of this size (Zeek's `unzip_size`).
const STEP: usize = 4096;

pub(super) struct Inflater {
    state: State,
}

enum State {
    /// The first bytes, until two tell gzip from zlib.
    Start(Vec<u8>),
    /// A gzip header, until it is complete.
    GzipHeader(Vec<u8>),
    Inflating(Box<Decompress>),
    /// The stream ended or failed: zlib's status is no longer `Z_OK`, later data is ignored.
    Over,
}

/// What one delivery decompressed to.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Inflated {
    pub out: Vec<u8>,
    /// The data was corrupt (Zeek's `inflate_failed`).
    pub failed: bool,
}

impl Inflater {
    pub(super) fn new() -> Self {
        Inflater { state: State::Start(Vec::new()) }
    }

    /// `ZIP_Analyzer::DeliverStream`.
    pub(super) fn feed(&mut self, data: &[u8]) -> Inflated {
        let mut result = Inflated::default();
        if data.is_empty() {
            return result;
        }
        let input = match &mut self.state {
            State::Over => return result,
            State::Inflating(_) => data.to_vec(),
            State::Start(buf) | State::GzipHeader(buf) => {
                buf.extend_from_slice(data);
                std::mem::take(buf)
            }
        };
        let mut input = input.as_slice();
        if let State::Start(_) = self.state {
            if input.len() < 2 {
                self.state = State::Start(input.to_vec());
                return result;
            }
            self.state = if input.starts_with(b"\x1f\x8b") {
                State::GzipHeader(Vec::new())
            } else {
                State::Inflating(Box::new(Decompress::new(true)))
            };
        }
        if let State::GzipHeader(_) = self.state {
            match gzip_header_len(input) {
                Some(Ok(len)) => {
                    input = &input[len..];
                    self.state = State::Inflating(Box::new(Decompress::new(false)));
                }
                Some(Err(())) => {
                    self.state = State::Over;
                    result.failed = true;
                    return result;
                }
                None => {
                    self.state = State::GzipHeader(input.to_vec());
                    return result;
                }
            }
        }
        self.inflate(input, &mut result);
        result
    }

    fn inflate(&mut self, input: &[u8], result: &mut Inflated) {
        // A failure before anything of this delivery inflated restarts it as raw deflate, once.
        let mut allow_restart = true;
        let mut rest = input;
        loop {
            let State::Inflating(d) = &mut self.state else { return };
            let (in_before, out_before) = (d.total_in(), d.total_out());
            result.out.reserve(STEP);
            let room = result.out.capacity() - result.out.len();
            let status = d.decompress_vec(rest, &mut result.out, FlushDecompress::Sync);
            let consumed = usize::try_from(d.total_in() - in_before).unwrap_or(rest.len()).min(rest.len());
            let produced = d.total_out() - out_before;
            match status {
                Ok(Status::StreamEnd) => {
                    self.state = State::Over;
                    return;
                }
                Ok(_) => {
                    allow_restart = false;
                    rest = &rest[consumed..];
                    // Output that did not fit waits inside the decompressor: go on until it is all out.
                    let drained = usize::try_from(produced).unwrap_or(usize::MAX) < room;
                    if (rest.is_empty() && drained) || (consumed == 0 && produced == 0) {
                        return;
                    }
                }
                Err(_) if allow_restart => {
                    allow_restart = false;
                    self.state = State::Inflating(Box::new(Decompress::new(false)));
                    rest = input;
                }
                Err(_) => {
                    self.state = State::Over;
                    result.failed = true;
                    return;
                }
            }
        }
    }
}

/// The length of the gzip header at the start of `data`: `None` while incomplete, an error for a compression
/// method other than deflate.
fn gzip_header_len(data: &[u8]) -> Option<Result<usize, ()>> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if data.len() < 10 {
        return None;
    }
    if data[2] != 8 {
        return Some(Err(()));
    }
    let flags = data[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let extra = usize::from(u16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]));
        at += 2 + extra;
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            at += data.get(at..)?.iter().position(|c| *c == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at <= data.len()).then_some(Ok(at))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
        let level = flate2::Compression::default();
        match kind {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zlib" => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            _ => {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), level);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    fn inflate_in_pieces(stream: &[u8], piece: usize) -> Inflated {
        let mut inflater = Inflater::new();
        let mut all = Inflated::default();
        for chunk in stream.chunks(piece) {
            let part = inflater.feed(chunk);
            all.out.extend(part.out);
            all.failed |= part.failed;
        }
        all
    }

    /// missing-zlib-header: a `deflate` body without its zlib header still decompresses (the baseline's two
    /// responses have `response_body_len 13249` and text/plain); gzip and zlib are told apart by their header.
    #[test]
    fn gzip_zlib_and_raw_deflate() {
        let text = b"var dap = function() { return 'ads'; };\n".repeat(300);
        for kind in ["gzip", "zlib", "raw"] {
            for piece in [1, 7, 1500, usize::MAX] {
                let got = inflate_in_pieces(&compress(kind, &text), piece);
                assert!(!got.failed, "{kind} in pieces of {piece}");
                assert_eq!(got.out.len(), text.len(), "{kind} in pieces of {piece}");
                assert!(got.out == text, "{kind} in pieces of {piece}");
            }
        }
    }

    #[test]
    fn corrupt_data_fails_once_and_ends_decompression() {
        let mut gz = compress("gzip", &b"hello world ".repeat(100));
        let middle = gz.len() / 2;
        gz[middle..].iter_mut().for_each(|b| *b = 0xff);
        let mut inflater = Inflater::new();
        let first = inflater.feed(&gz);
        assert!(first.failed);
        assert_eq!(inflater.feed(b"more"), Inflated::default(), "nothing after a failure");
        // A second gzip member is not read: zlib stops at the end of the first stream.
        let two = [compress("gzip", b"first member"), compress("gzip", b"second member")].concat();
        assert_eq!(inflate_in_pieces(&two, usize::MAX).out, b"first member");
    }
}
