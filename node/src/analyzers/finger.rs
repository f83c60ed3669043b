//! Finger (tcp 79) as Zeek 9.1's Spicy analyzer reads it (src/analyzer/protocol/finger: `finger.spicy`,
//! `finger.evt`; `base/protocols/finger/main.zeek` registers the port). Zeek writes no finger.log: what Finger
//! leaves in the logs is the service `finger` (Spicy's `accept_input`) and its violations.
//!
//! The originator's side is one `Request` (the first line: optional blanks, an optional `/W`, blanks, then the
//! argument, stripped and split at the first `@` into user and host, both decoded as UTF-8); it is accepted when the
//! user is not empty or `/W` was given. The responder's side is a run of `ReplyLine`s (text up to CR or LF, decoded,
//! then `\r?\n`); a line of more than ten characters is accepted. Both sides are read a byte at a time and keep
//! no more than a partial UTF-8 sequence, whatever the line's length.
//!
//! Zeek has no content signature for Finger: it is found on its port only.

use super::{Analyzer, AnalyzerSpec, Ctx, Proto};

pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "finger",
    tcp_ports: &[79],
    udp_ports: &[],
    detect: None,
    new: |_| Box::new(Finger::default()),
    schemas: &[],
};

/// hilti's `Bytes::decode` with the default `REPLACE` strategy failing anyway: utfcpp's `not_enough_room` (a
/// sequence cut by the end of the bytes) and `invalid_code_point` are not the `invalid_utf8` it catches.
const DECODE_ERROR: &str = "could not decode bytes";
/// A `RE/.../` field of finger.spicy that does not match (`NewLine` after a reply line's text).
const REGEX_ERROR: &str = "failed to match regular expression";

/// `strip()` without a set: hilti trims its whitespace characters.
fn is_strip_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// `OptionalWhiteSpace`: `/[ \t]*/`.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_newline_byte(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

/// What utfcpp's `utf8::next` makes of the bytes at the start of `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A code point of this many bytes.
    CodePoint(usize),
    /// A valid start that the bytes so far do not complete.
    NeedMore,
    /// `invalid_utf8` (bad lead, a missing continuation, an overlong form): one U+FFFD, one byte consumed.
    Replace,
    /// `invalid_code_point` (a surrogate or above U+10FFFF): the decoding fails.
    Fail,
}

/// utfcpp's `sequence_length`: the length a lead byte announces, 0 for one that cannot lead.
fn sequence_length(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        _ if lead >> 5 == 0x6 => 2,
        _ if lead >> 4 == 0xe => 3,
        _ if lead >> 3 == 0x1e => 4,
        _ => 0,
    }
}

/// utfcpp's `validate_next` on `pending` (the continuation bytes checked in order, then the code point's range,
/// then overlong forms).
fn step(pending: &[u8]) -> Step {
    let Some(&lead) = pending.first() else { return Step::NeedMore };
    let len = sequence_length(lead);
    let mut cp = match len {
        0 => return Step::Replace,
        1 => return Step::CodePoint(1),
        2 => u32::from(lead & 0x1f),
        3 => u32::from(lead & 0x0f),
        _ => u32::from(lead & 0x07),
    };
    for i in 1..len {
        let Some(&b) = pending.get(i) else { return Step::NeedMore };
        if b & 0xc0 != 0x80 {
            return Step::Replace;
        }
        cp = (cp << 6) | u32::from(b & 0x3f);
    }
    if cp > 0x10ffff || (0xd800..=0xdfff).contains(&cp) {
        return Step::Fail;
    }
    let overlong = (cp < 0x80 && len != 1) || (cp < 0x800 && len > 2) || (cp < 0x10000 && len > 3);
    if overlong { Step::Replace } else { Step::CodePoint(len) }
}

/// hilti's `Bytes::decode(UTF8, REPLACE)` fed a byte at a time: the length of the decoded string in code points
/// (what Spicy's `|string|` counts), or the error it throws.
#[derive(Debug, Default, Clone)]
struct Utf8Decode {
    /// The start of a sequence not yet complete (at most three bytes wait for a fourth).
    pending: [u8; 4],
    pending_len: usize,
    chars: usize,
    /// An invalid code point was met: the decoding throws whatever follows.
    failed: bool,
}

impl Utf8Decode {
    fn push(&mut self, b: u8) {
        if self.failed {
            return;
        }
        let Some(slot) = self.pending.get_mut(self.pending_len) else { return };
        *slot = b;
        self.pending_len += 1;
        loop {
            let pending = self.pending.get(..self.pending_len).unwrap_or_default();
            let consumed = match step(pending) {
                Step::NeedMore => return,
                Step::CodePoint(n) => n,
                Step::Replace => 1,
                Step::Fail => {
                    self.failed = true;
                    self.pending_len = 0;
                    return;
                }
            };
            self.chars = self.chars.saturating_add(1);
            self.pending.copy_within(consumed.min(4).., 0);
            self.pending_len = self.pending_len.saturating_sub(consumed);
            if self.pending_len == 0 {
                return;
            }
        }
    }

    /// The decoded length, or hilti's error: a sequence still incomplete at the end is utfcpp's `not_enough_room`.
    fn finish(&self) -> Result<usize, &'static str> {
        if self.failed || self.pending_len > 0 { Err(DECODE_ERROR) } else { Ok(self.chars) }
    }
}

/// Where the `Request` unit is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum RequestPhase {
    /// The first `OptionalWhiteSpace`.
    #[default]
    LeadingBlanks,
    /// A `/` after it: `/W` or (the switch's `void`) the argument's first byte.
    Slash,
    /// The `OptionalWhiteSpace` after `/W`.
    BlanksAfterW,
    /// `arg: /[^\r\n]*/`, read into its two halves as `strip().split1(b"@")` makes them.
    Arg,
    /// The unit is done (or failed): the rest of the direction is not parsed.
    Done,
}

/// The originator's `Request`.
#[derive(Debug, Default)]
struct Request {
    phase: RequestPhase,
    whois: bool,
    /// A byte other than strip's whitespace was seen in the argument: leading whitespace is behind.
    started: bool,
    /// Whitespace after the last other byte: kept only if another byte follows (strip's right side).
    held_spaces: usize,
    /// The first `@` was seen: what follows is the host.
    at_seen: bool,
    user_len: usize,
    user: Utf8Decode,
    host_len: usize,
    host: Utf8Decode,
}

/// What a side's parse came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accept,
    Error(&'static str),
}

impl Request {
    /// Reads `data`; the outcome of the unit once it is done in it (its `%done`, or the error in its hook).
    fn feed(&mut self, data: &[u8]) -> Option<Outcome> {
        for &b in data {
            if let Some(outcome) = self.byte(b) {
                return outcome;
            }
        }
        None
    }

    /// One byte; `Some` once the unit is done (with `Some(outcome)` when that is an acceptance or an error).
    fn byte(&mut self, b: u8) -> Option<Option<Outcome>> {
        match self.phase {
            RequestPhase::Done => Some(None),
            RequestPhase::LeadingBlanks if is_blank(b) => None,
            RequestPhase::LeadingBlanks if b == b'/' => {
                self.phase = RequestPhase::Slash;
                None
            }
            RequestPhase::Slash if b == b'W' => {
                self.whois = true;
                self.phase = RequestPhase::BlanksAfterW;
                None
            }
            RequestPhase::Slash => {
                // Not `/W`: the switch takes `void`, and the `/` is the argument's first byte.
                self.phase = RequestPhase::Arg;
                self.arg_byte(b'/');
                self.byte(b)
            }
            RequestPhase::BlanksAfterW if is_blank(b) => None,
            RequestPhase::LeadingBlanks | RequestPhase::BlanksAfterW | RequestPhase::Arg if is_newline_byte(b) => {
                Some(self.done())
            }
            RequestPhase::LeadingBlanks | RequestPhase::BlanksAfterW | RequestPhase::Arg => {
                self.phase = RequestPhase::Arg;
                self.arg_byte(b);
                None
            }
        }
    }

    fn arg_byte(&mut self, b: u8) {
        if is_strip_space(b) {
            if self.started {
                self.held_spaces = self.held_spaces.saturating_add(1);
            }
            return;
        }
        self.started = true;
        // Whitespace between other bytes stays in the half it is in.
        for _ in 0..std::mem::take(&mut self.held_spaces) {
            self.half_byte(b' ');
        }
        if b == b'@' && !self.at_seen {
            self.at_seen = true;
        } else {
            self.half_byte(b);
        }
    }

    fn half_byte(&mut self, b: u8) {
        if self.at_seen {
            self.host_len = self.host_len.saturating_add(1);
            self.host.push(b);
        } else {
            self.user_len = self.user_len.saturating_add(1);
            self.user.push(b);
        }
    }

    /// The argument is complete (a CR or LF, or the end of the direction): its hook decodes user and host, then
    /// `%done` accepts.
    fn done(&mut self) -> Option<Outcome> {
        if self.phase == RequestPhase::Done {
            return None;
        }
        if self.phase == RequestPhase::Slash {
            // A lone `/` at the end is the argument.
            self.arg_byte(b'/');
        }
        self.phase = RequestPhase::Done;
        if let Err(e) = self.user.finish() {
            return Some(Outcome::Error(e));
        }
        if self.host_len > 0
            && let Err(e) = self.host.finish()
        {
            return Some(Outcome::Error(e));
        }
        (self.user_len > 0 || self.whois).then_some(Outcome::Accept)
    }
}

/// The responder's `ReplyLine[]`: the line being read.
#[derive(Debug, Default)]
struct Reply {
    /// The current line has text (its `data` field) so far.
    in_line: bool,
    text: Utf8Decode,
    /// The text ended at a CR: `NewLine` needs the LF.
    after_cr: bool,
    stopped: bool,
}

impl Reply {
    /// Reads `data`: the acceptances and the first error, in order.
    fn feed(&mut self, data: &[u8], outcomes: &mut Vec<Outcome>) {
        for &b in data {
            if self.stopped {
                return;
            }
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    self.line_done(outcomes);
                } else {
                    self.fail(REGEX_ERROR, outcomes);
                }
            } else if is_newline_byte(b) {
                // The text is complete: `&convert=$$.decode()` runs now.
                match self.text.finish() {
                    Err(e) => self.fail(e, outcomes),
                    Ok(_) if b == b'\r' => self.after_cr = true,
                    Ok(_) => self.line_done(outcomes),
                }
            } else {
                self.in_line = true;
                self.text.push(b);
            }
        }
    }

    /// `ReplyLine`'s `%done`: more than ten characters accept.
    fn line_done(&mut self, outcomes: &mut Vec<Outcome>) {
        if self.text.finish().is_ok_and(|chars| chars > 10) {
            outcomes.push(Outcome::Accept);
        }
        self.text = Utf8Decode::default();
        self.in_line = false;
    }

    fn fail(&mut self, e: &'static str, outcomes: &mut Vec<Outcome>) {
        self.stopped = true;
        outcomes.push(Outcome::Error(e));
    }

    /// The end of the direction: a line begun and not ended is an error (its text's decoding first).
    fn end(&mut self) -> Option<Outcome> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        if self.after_cr {
            return Some(Outcome::Error(REGEX_ERROR));
        }
        if self.in_line {
            return Some(Outcome::Error(self.text.finish().err().unwrap_or(REGEX_ERROR)));
        }
        None
    }
}

/// One Finger connection.
#[derive(Default)]
pub struct Finger {
    request: Request,
    reply: Reply,
    confirmed: bool,
    /// A violation: Zeek's Spicy driver skips the whole analyzer.
    failed: bool,
    /// A content gap ended that direction (orig, resp).
    gap: [bool; 2],
}

impl Finger {
    /// Applies what a side's parse came to; `data` is the delivery it happened in (analyzer.log's `failure_data`),
    /// none at the end of a direction.
    fn outcome(&mut self, ctx: &mut Ctx, outcome: Outcome, data: Option<&[u8]>) {
        if self.failed {
            return;
        }
        match outcome {
            Outcome::Accept if !self.confirmed => {
                self.confirmed = true;
                ctx.confirm(SPEC.name);
            }
            Outcome::Accept => {}
            Outcome::Error(reason) => {
                self.failed = true;
                match data {
                    Some(data) => ctx.violation_with_data(reason, data),
                    None => ctx.violation(reason),
                }
            }
        }
    }

    /// `Finish`: the end of a direction.
    fn end_of(&mut self, ctx: &mut Ctx, is_orig: bool) {
        if self.failed || self.gap[usize::from(!is_orig)] {
            return;
        }
        let outcome = if is_orig { self.request.done() } else { self.reply.end() };
        if let Some(outcome) = outcome {
            self.outcome(ctx, outcome, None);
        }
    }
}

impl Analyzer for Finger {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if self.failed || self.gap[usize::from(!is_orig)] {
            return;
        }
        if is_orig {
            if let Some(outcome) = self.request.feed(data) {
                self.outcome(ctx, outcome, Some(data));
            }
        } else {
            let mut outcomes = Vec::new();
            self.reply.feed(data, &mut outcomes);
            for outcome in outcomes {
                self.outcome(ctx, outcome, Some(data));
            }
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, is_orig: bool, _len: u64) {
        self.gap[usize::from(!is_orig)] = true;
    }

    fn end_of_data(&mut self, ctx: &mut Ctx, is_orig: bool) {
        self.end_of(ctx, is_orig);
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.end_of(ctx, true);
        self.end_of(ctx, false);
    }

    fn is_done(&self) -> bool {
        self.failed
    }
}

/// Drives the Finger analyzer over arbitrary bytes (see [`super::fuzzing::drive`]).
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Finger::default(), Proto::Tcp, 79, data);
}

#[cfg(test)]
mod tests;
