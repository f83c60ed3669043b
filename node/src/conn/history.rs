//! Zeek's connection history string: one letter per kind of event and direction (upper case for the
//! originator), most recorded once, some repeated when their sequence number changes, and the
//! "scaled" ones (checksum, retransmission, zero window, gap) recorded at 1, 10, 100, ... occurrences.

/// History bits; the responder's are shifted by 16, as in Zeek's `hist_seen`.
pub mod mask {
    pub const SYN: u32 = 0x1;
    pub const FIN: u32 = 0x2;
    pub const RST: u32 = 0x4;
    pub const FIN_RST: u32 = 0x8;
    pub const DATA: u32 = 0x10;
    pub const ACK: u32 = 0x20;
    pub const MULTI_FLAG: u32 = 0x40;
    /// Analysis partial: a limit was exceeded (`x`).
    pub const PARTIAL: u32 = 0x80;
    /// A tunnel one too deep, or too many tunnel changes, on the connection: `X` once for both directions (the
    /// UDP tunnel analyzers' `CheckHistory(HIST_UNKNOWN_PKT, 'X')` in the 2026-08-21 build).
    pub const ANALYZER_LIMIT: u32 = 0x100;
}

/// A connection's history: its letters and the bits of the events seen. Inline while it has at most
/// [`INLINE_LETTERS`] letters, which nearly every connection's has (`ShADadFf`; the longest of the benchmark mix
/// and the oracle traces has 10), in two words without an allocation; on the heap after. The bits live inside the
/// enum: a struct of the letters and the bits was three words, the last one mostly padding, in every connection.
#[derive(Clone)]
pub enum History {
    Inline { len: u8, bytes: [u8; INLINE_LETTERS], seen: u32 },
    Spilled(Box<Spilled>),
}

/// A history too long to hold inline.
#[derive(Clone)]
pub struct Spilled {
    letters: String,
    seen: u32,
}

/// Letters a history holds without a heap allocation: what fits two words beside the enum's tag, the length and
/// the 32 bits of events seen.
const INLINE_LETTERS: usize = 10;

impl Default for History {
    fn default() -> Self {
        History::Inline { len: 0, bytes: [0; INLINE_LETTERS], seen: 0 }
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.letters(), f)
    }
}

impl History {
    /// The letters so far.
    pub fn letters(&self) -> &str {
        match self {
            // Only ASCII is ever stored inline.
            History::Inline { len, bytes, .. } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            History::Spilled(spilled) => &spilled.letters,
        }
    }

    fn seen(&self) -> u32 {
        match self {
            History::Inline { seen, .. } => *seen,
            History::Spilled(spilled) => spilled.seen,
        }
    }

    fn seen_mut(&mut self) -> &mut u32 {
        match self {
            History::Inline { seen, .. } => seen,
            History::Spilled(spilled) => &mut spilled.seen,
        }
    }

    /// Appends one ASCII letter (history codes are all ASCII).
    fn push(&mut self, code: char) {
        match self {
            History::Inline { len, bytes, .. } if usize::from(*len) < INLINE_LETTERS && code.is_ascii() => {
                bytes[usize::from(*len)] = code as u8;
                *len += 1;
            }
            History::Inline { seen, .. } => {
                let mut letters = String::with_capacity(3 * INLINE_LETTERS);
                let seen = *seen;
                letters.push_str(self.letters());
                letters.push(code);
                *self = History::Spilled(Box::new(Spilled { letters, seen }));
            }
            History::Spilled(spilled) => spilled.letters.push(code),
        }
    }

    fn oriented(is_orig: bool, mask: u32, code: char) -> (u32, char) {
        if is_orig { (mask, code) } else { (mask << 16, code.to_ascii_lowercase()) }
    }

    /// Records `code` the first time this kind of event happens in this direction.
    /// Returns whether it had been seen before (Zeek's `CheckHistory`).
    pub fn check(&mut self, is_orig: bool, mask: u32, code: char) -> bool {
        let (mask, code) = Self::oriented(is_orig, mask, code);
        let seen = self.seen_mut();
        if *seen & mask == 0 {
            *seen |= mask;
            self.push(code);
            false
        } else {
            true
        }
    }

    /// Appends `code` unconditionally (a repeated SYN/FIN/RST with a new sequence number).
    pub fn add(&mut self, is_orig: bool, code: char) {
        self.push(if is_orig { code } else { code.to_ascii_lowercase() });
    }

    /// Rewrites the history as though the roles had been flipped before its first letter: `^`, then every letter
    /// so far with the other side's case (Zeek's flip on the packet after a lone SYN-ACK: `H` becomes `^h`).
    pub fn flip_from_start(&mut self) {
        let swapped: String = std::iter::once('^')
            .chain(
                self.letters()
                    .chars()
                    .map(|c| if c.is_ascii_uppercase() { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() }),
            )
            .collect();
        let seen = self.seen().rotate_left(16);
        *self = History::default();
        *self.seen_mut() = seen;
        for code in swapped.chars() {
            self.push(code);
        }
    }

    /// An analyzer's limit cut the analysis short (`x`, once per side).
    pub fn partial(&mut self, is_orig: bool) {
        self.check(is_orig, mask::PARTIAL, 'X');
    }

    /// A tunnel inside the connection was one too deep (the UDP tunnel analyzers' depth check, zeek/zeek#3480), or
    /// its tunnel changed too often: `X` once, whichever direction the packet went.
    pub fn analyzer_limit_reached(&mut self) {
        self.check(true, mask::ANALYZER_LIMIT, 'X');
    }

    /// Records the flip of originator and responder (`^`); seen bits swap sides with the roles.
    pub fn flip(&mut self) {
        let seen = self.seen_mut();
        *seen = seen.rotate_left(16);
        self.push('^');
    }
}

/// A counter whose history letter is written at 1, 10, 100, ... occurrences (and, as Zeek's saturating
/// threshold does, at every occurrence once the count saturates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scaled {
    count: u32,
}

impl Scaled {
    pub fn bump(&mut self, history: &mut History, is_orig: bool, code: char) {
        self.count = self.count.saturating_add(1);
        if self.count == u32::MAX || is_power_of_ten(self.count) {
            history.add(is_orig, code);
        }
    }
}

fn is_power_of_ten(mut n: u32) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_once_per_direction() {
        let mut h = History::default();
        h.check(true, mask::SYN, 'S');
        h.check(false, mask::SYN, 'H');
        h.check(true, mask::ACK, 'A');
        h.check(true, mask::ACK, 'A');
        h.check(true, mask::DATA, 'D');
        h.check(false, mask::DATA, 'D');
        assert_eq!(h.letters(), "ShADd");
    }

    #[test]
    fn scaled_letters_at_powers_of_ten() {
        let mut h = History::default();
        let mut s = Scaled::default();
        for _ in 0..100 {
            s.bump(&mut h, false, 'T');
        }
        assert_eq!(h.letters(), "ttt");
    }

    #[test]
    fn scaled_letters_keep_coming_once_saturated() {
        let mut h = History::default();
        let mut s = Scaled { count: u32::MAX - 2 };
        for _ in 0..3 {
            s.bump(&mut h, true, 'T');
        }
        assert_eq!(h.letters(), "TT", "at u32::MAX and every bump after");
        assert!((0..10).map(|e| 10u32.pow(e)).all(is_power_of_ten));
        assert!(![0, 2, 11, 20, 101, 1_000_001].into_iter().any(is_power_of_ten));
    }

    #[test]
    fn long_histories_move_to_the_heap_unchanged() {
        let mut h = History::default();
        assert!(!h.check(false, mask::SYN, 'S'));
        let mut expected = String::from("s");
        for i in 0..3 * INLINE_LETTERS {
            let code = if i % 2 == 0 { 'T' } else { 'G' };
            h.add(i % 3 == 0, code);
            expected.push(if i % 3 == 0 { code } else { code.to_ascii_lowercase() });
            assert_eq!(h.letters(), expected.as_str());
        }
        assert!(matches!(h, History::Spilled(_)));
        assert!(h.check(false, mask::SYN, 'S'), "the bits seen inline moved along");
        assert!(!h.check(true, mask::SYN, 'S'));
        assert!(h.letters().ends_with('S'));
        assert_eq!(std::mem::size_of::<History>(), 16);
    }

    #[test]
    fn flip_from_start_swaps_case_behind_the_mark() {
        let mut h = History::default();
        h.check(true, mask::SYN, 'H');
        h.flip_from_start();
        assert_eq!(h.letters(), "^h");
        assert!(h.check(false, mask::SYN, 'H'), "the SYN-ACK is now the responder's");
        assert!(!h.check(true, mask::ACK, 'A'));
        assert_eq!(h.letters(), "^hA");
    }

    #[test]
    fn flip_marks_and_swaps_sides() {
        let mut h = History::default();
        h.check(true, mask::DATA, 'D');
        h.flip();
        // The old originator is now the responder: its data was already seen.
        assert!(h.check(false, mask::DATA, 'D'));
        assert_eq!(h.letters(), "D^");
    }
}
