//! The requests of an HTTP connection not answered yet, oldest first, and of each only whether it was a HEAD (all a
//! reply needs of its request: the reply to a HEAD has no body). Bits of one word hold the few requests usually in
//! flight; a longer pipeline waits out of line.

use std::collections::VecDeque;

/// The word's low bits count the requests it holds; each request is one bit above them, the oldest lowest.
const LEN_BITS: u32 = 6;
const INLINE: u32 = u64::BITS - LEN_BITS;
const LEN_MASK: u64 = (1 << LEN_BITS) - 1;

/// A queue of request flags: 16 bytes where a `VecDeque` was 32 in every HTTP connection.
#[derive(Debug, Default)]
pub(super) struct Unanswered {
    word: u64,
    /// Requests after the word's [`INLINE`] oldest, oldest first; only while the word is full. Boxed: a pointer
    /// where the deque itself would be 32 bytes, which is what this type saves.
    #[allow(clippy::box_collection)]
    more: Option<Box<VecDeque<bool>>>,
}

impl Unanswered {
    fn inline_len(&self) -> u32 {
        (self.word & LEN_MASK) as u32
    }

    pub fn len(&self) -> usize {
        self.inline_len() as usize + self.more.as_ref().map_or(0, |more| more.len())
    }

    pub fn is_empty(&self) -> bool {
        self.inline_len() == 0
    }

    pub fn push_back(&mut self, head: bool) {
        let len = self.inline_len();
        match &mut self.more {
            None if len < INLINE => self.word = (self.word | u64::from(head) << (LEN_BITS + len)) + 1,
            more => more.get_or_insert_default().push_back(head),
        }
    }

    pub fn front(&self) -> Option<bool> {
        (!self.is_empty()).then_some(self.word >> LEN_BITS & 1 == 1)
    }

    pub fn pop_front(&mut self) -> Option<bool> {
        let head = self.front()?;
        let len = self.inline_len() - 1;
        self.word = (self.word >> (LEN_BITS + 1)) << LEN_BITS | u64::from(len);
        if let Some(more) = &mut self.more {
            // The word stays full while requests wait out of line: the oldest of them moves in.
            if let Some(next) = more.pop_front() {
                self.word = (self.word | u64::from(next) << (LEN_BITS + len)) + 1;
            }
            if more.is_empty() {
                self.more = None;
            }
        }
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a `VecDeque` over long runs of pipelined requests, past the word's capacity and back to empty.
    #[test]
    fn behaves_as_a_queue() {
        let (mut queue, mut model) = (Unanswered::default(), VecDeque::new());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..200_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Phases that mostly push (pipelines of up to ~150 requests) and that mostly pop.
            let pushing = (step / 500) % 2 == 0;
            if (state % 8 < 5) == pushing {
                let head = state >> 32 & 1 == 1;
                queue.push_back(head);
                model.push_back(head);
            } else {
                assert_eq!(queue.pop_front(), model.pop_front(), "step {step}");
            }
            assert_eq!(queue.front(), model.front().copied(), "step {step}");
            assert_eq!((queue.len(), queue.is_empty()), (model.len(), model.is_empty()), "step {step}");
            if model.is_empty() {
                assert!(queue.more.is_none(), "an empty queue keeps nothing out of line");
            }
        }
        assert!(std::mem::size_of::<Unanswered>() <= 16);
    }
}
