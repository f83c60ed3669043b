//! Zeek's NVT analyzer (`login/NVT.cc`) as the FTP analyzer configures it for both directions: LF ends a line
//! (a CR right before it is dropped; a CR alone is line content), NUL-sensitive, and Telnet commands (IAC ...)
//! taken out of the line. FTP's control connection is a Telnet NVT stream (RFC 959), so a client's or scanner's
//! 0xFF bytes are commands to Zeek, not text. No Telnet option is negotiated for FTP: option commands are removed
//! and otherwise ignored.

/// What [`Nvt::feed`] hands the FTP analyzer, in stream order.
pub(crate) enum NvtEvent<'a> {
    /// A line without its terminator and without Telnet commands.
    Line(&'a [u8]),
    /// A weird of the NVT analyzer.
    Weird(&'static str),
    /// A limit reached (`LimitReachedWeird`): the weird with the limit as addl, and the analysis marked partial.
    LimitWeird(&'static str, usize),
}

/// Zeek's `DEFAULT_MAX_LINE_LENGTH`, which the NVT analyzer keeps.
const MAX_LINE: usize = 16 * 1024 * 1024 - 100;

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;

/// Where the splitter is inside a Telnet command.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Command {
    #[default]
    None,
    /// An IAC was the last byte (held at `at` in the line): the next byte says which command.
    Started { at: usize },
    /// WILL, WONT, DO or DONT: one option byte follows.
    Option { at: usize },
    /// A suboption (IAC SB ... IAC SE), held from `at` until its end.
    Sub { at: usize, last_was_iac: bool },
}

/// One direction of an FTP control connection split as Zeek's NVT analyzer splits it.
#[derive(Debug, Clone)]
pub(crate) struct Nvt {
    buf: Vec<u8>,
    last_char: u8,
    /// Zeek's `flag_NULs`: the first NUL not after a CR is dropped and reported, later ones are line content.
    nul_sensitive: bool,
    command: Command,
}

impl Default for Nvt {
    fn default() -> Self {
        Nvt { buf: Vec::new(), last_char: 0, nul_sensitive: true, command: Command::None }
    }
}

impl Nvt {
    pub(crate) fn has_partial_line(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Forgets the line in progress (its rest was lost in a content gap).
    pub(crate) fn clear_partial_line(&mut self) {
        self.buf.clear();
        self.command = Command::None;
    }

    /// Splits `data`, handing `on` each line and weird in stream order (Zeek's `DeliverChunk` and `ScanOption`).
    /// Weirds come from the NVT analyzer (source `NVT`); the caller raises each once per connection.
    pub(crate) fn feed(&mut self, data: &[u8], mut on: impl FnMut(NvtEvent)) {
        for &c in data {
            if self.command != Command::None {
                self.command(c, &mut on);
                continue;
            }
            if self.buf.len() >= MAX_LINE {
                // The line goes out one byte short, and this byte is lost (`LimitReachedWeird`).
                on(NvtEvent::LimitWeird("nvt_line_size_exceeded", MAX_LINE));
                self.buf.pop();
                on(NvtEvent::Line(&self.buf));
                self.buf.clear();
                continue;
            }
            match c {
                b'\n' => {
                    if self.last_char == b'\r' {
                        self.buf.pop();
                    }
                    on(NvtEvent::Line(&self.buf));
                    self.buf.clear();
                }
                // CR NUL is a CR (RFC 854).
                0 if self.last_char == b'\r' => {}
                0 if self.nul_sensitive => {
                    self.nul_sensitive = false;
                    on(NvtEvent::Weird("NUL_in_line"));
                }
                IAC => {
                    self.command = Command::Started { at: self.buf.len() };
                    self.buf.push(IAC);
                    // The command's bytes leave `last_char` as it was.
                    continue;
                }
                _ => self.buf.push(c),
            }
            if self.last_char == b'\r' && c != b'\n' && c != 0 {
                on(NvtEvent::Weird("line_terminated_with_single_CR"));
            }
            self.last_char = c;
        }
    }

    /// One byte inside a Telnet command (`ScanOption`).
    fn command(&mut self, code: u8, on: &mut impl FnMut(NvtEvent)) {
        match self.command {
            Command::None => {}
            Command::Started { at } => match code {
                // IAC IAC is a data byte 255: the first stays in the line.
                IAC => {
                    self.command = Command::None;
                    self.last_char = code;
                }
                SB => {
                    self.buf.push(code);
                    self.command = Command::Sub { at, last_was_iac: false };
                }
                251..=254 => {
                    self.buf.push(code);
                    self.command = Command::Option { at };
                }
                _ => {
                    self.buf.truncate(at);
                    self.command = Command::None;
                }
            },
            Command::Option { at } => {
                self.buf.truncate(at);
                self.command = Command::None;
            }
            Command::Sub { at, last_was_iac } => {
                if self.buf.len() >= MAX_LINE {
                    on(NvtEvent::LimitWeird("nvt_option_size_exceeded", MAX_LINE));
                    self.buf.clear();
                    self.command = Command::None;
                } else if !last_was_iac {
                    self.buf.push(code);
                    self.command = Command::Sub { at, last_was_iac: code == IAC };
                } else if code == IAC {
                    // IAC IAC inside a suboption: one data byte, the IAC already held.
                    self.command = Command::Sub { at, last_was_iac: false };
                } else {
                    self.buf.truncate(at);
                    if code == SE {
                        self.command = Command::None;
                    } else {
                        // A suboption ended by another command: that command starts here.
                        self.command = Command::Started { at };
                        self.buf.push(IAC);
                        self.command(code, on);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut nvt = Nvt::default();
        let mut out = vec![];
        for chunk in chunks {
            nvt.feed(chunk, |event| {
                out.push(match event {
                    NvtEvent::Line(line) => String::from_utf8_lossy(line).into_owned(),
                    NvtEvent::Weird(name) => format!("weird {name}"),
                    NvtEvent::LimitWeird(name, limit) => format!("weird {name} {limit}"),
                })
            });
        }
        out
    }

    /// NVT.cc with FTP's settings: LF ends lines (CR LF too, the CR dropped, even across deliveries), a CR alone
    /// stays in the line and the byte after it is `line_terminated_with_single_CR`, CR NUL is a CR, and the first
    /// other NUL is dropped as `NUL_in_line`.
    #[test]
    fn lines_end_at_lf_and_nuls_and_lone_crs_are_weirds() {
        assert_eq!(split(&[b"USER a\r\nPASS b\n"]), ["USER a", "PASS b"]);
        assert_eq!(split(&[b"USER a\r", b"\nPASS b\r\n"]), ["USER a", "PASS b"]);
        assert_eq!(split(&[b"US\rER a\r\n"]), ["weird line_terminated_with_single_CR", "US\rER a"]);
        assert_eq!(split(&[b"US\r\0ER a\r\n"]), ["US\rER a"]);
        assert_eq!(split(&[b"US\0ER a\0\r\n"]), ["weird NUL_in_line", "USER a\0"]);
    }

    /// Telnet commands are taken out of the line: IAC IAC is one 0xFF, a two-byte command and an option
    /// negotiation vanish, and so does a suboption up to IAC SE.
    #[test]
    fn telnet_commands_leave_the_line() {
        let line = |bytes: &[u8]| split(&[bytes]).pop().unwrap().into_bytes();
        assert_eq!(line(b"AB\xff\xffCD\r\n"), "AB\u{fffd}CD".as_bytes());
        assert_eq!(line(b"AB\xff\xf1CD\r\n"), b"ABCD");
        assert_eq!(line(b"AB\xff\xfb\x01CD\r\n"), b"ABCD");
        assert_eq!(line(b"AB\xff\xfa\x18\x01\xff\xf0CD\r\n"), b"ABCD");
        assert_eq!(split(&[b"AB\xff", b"\xfb", b"\x01CD\r\n"]), ["ABCD"]);
    }
}
