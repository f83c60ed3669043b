//! One direction's CRYPTO stream, reassembled by offset up to the end of its first TLS handshake message (the
//! ClientHello or ServerHello), as QUIC.spicy's sink and `CryptoSinkUnit` do: data is delivered in order from
//! offset 0, the message's length comes from its first four bytes, and in-order data past the message is an error.
//! Out-of-order pieces wait, bounded: nothing past the largest message TLS allows is kept.

use std::collections::BTreeMap;

use super::QuicError;

/// RFC 8446's limit on a handshake message (2^14 + 256), counted with its 4-byte header as QUIC.spicy does.
const MAX_MESSAGE_LEN: usize = (1 << 14) + 256;
/// Out-of-order bytes kept at most (overlapping retransmissions included).
const MAX_PENDING: usize = 2 * MAX_MESSAGE_LEN;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the message.
    #[default]
    Open,
    /// The whole message was handed over.
    Finished,
    /// The message claims more than TLS allows: the parsing unit gave up (the stream still counts bytes).
    Refused,
}

#[derive(Debug, Default)]
pub struct CryptoStream {
    /// The in-order bytes from offset 0, while the message is incomplete.
    delivered: Vec<u8>,
    /// How many bytes were delivered in order (Spicy's `|sink|`).
    delivered_len: u64,
    /// Pieces past a hole, by offset.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    /// Header plus body, once the first four bytes are in.
    message_len: Option<usize>,
    state: State,
}

impl CryptoStream {
    /// Whether the handshake message was handed over: Zeek stops decrypting this direction then.
    pub fn finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Adds the CRYPTO frame data `data` at `offset`. Returns the handshake message if it became complete, and then
    /// an error too if in-order data went past its end (QUIC.spicy hands the message over before it complains).
    pub fn write(&mut self, offset: u64, data: &[u8]) -> (Option<Vec<u8>>, Result<(), QuicError>) {
        let end = offset.saturating_add(data.len() as u64);
        if self.state == State::Finished && offset <= self.delivered_len && end > self.delivered_len {
            // The parsing unit is done; Spicy's sink throws on more in-order data.
            return (None, Err(QuicError::TooMuchCrypto { have: end, expected: self.delivered_len }));
        }
        if self.state != State::Open {
            return (None, Ok(()));
        }
        self.insert(offset, data);
        let message = self.take_message();
        let result = match self.message_len {
            Some(len) if self.delivered_len > len as u64 => {
                Err(QuicError::TooMuchCrypto { have: self.delivered_len, expected: len as u64 })
            }
            _ => Ok(()),
        };
        (message, result)
    }

    /// Delivers what is in order now and keeps the rest (first data wins where pieces overlap).
    fn insert(&mut self, offset: u64, data: &[u8]) {
        let Some((offset, data)) = trim_before(self.delivered_len, offset, data) else { return };
        if offset == self.delivered_len {
            self.append(data);
            self.drain_pending();
            return;
        }
        let keep = data.len().min(MAX_MESSAGE_LEN + 1).min(MAX_PENDING.saturating_sub(self.pending_bytes));
        let in_bounds = offset <= MAX_MESSAGE_LEN as u64;
        if keep > 0 && in_bounds && !self.pending.contains_key(&offset) {
            self.pending_bytes += keep;
            self.pending.insert(offset, data[..keep].to_vec());
        }
    }

    fn drain_pending(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > self.delivered_len {
                break;
            }
            let (offset, piece) = entry.remove_entry();
            self.pending_bytes -= piece.len();
            if let Some((_, fresh)) = trim_before(self.delivered_len, offset, &piece) {
                let fresh = fresh.to_vec();
                self.append(&fresh);
            }
        }
    }

    fn append(&mut self, data: &[u8]) {
        self.delivered_len += data.len() as u64;
        // Only the message is kept; bytes past it are counted (they make the error above).
        let room = MAX_MESSAGE_LEN.saturating_sub(self.delivered.len());
        self.delivered.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The message, once all of it is in; the stream then keeps nothing but its counters.
    fn take_message(&mut self) -> Option<Vec<u8>> {
        if self.message_len.is_none()
            && let [_, a, b, c, ..] = self.delivered[..]
        {
            let len = (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)) + 4;
            self.message_len = Some(len);
            if len > MAX_MESSAGE_LEN {
                self.state = State::Refused;
                self.release();
                return None;
            }
        }
        let len = self.message_len?;
        if self.delivered.len() < len {
            return None;
        }
        self.state = State::Finished;
        let mut message = std::mem::take(&mut self.delivered);
        message.truncate(len);
        self.release();
        Some(message)
    }

    fn release(&mut self) {
        self.delivered = Vec::new();
        self.pending = BTreeMap::new();
        self.pending_bytes = 0;
    }
}

/// The part of `data` (at `offset`) at or after `from`, if any.
fn trim_before(from: u64, offset: u64, data: &[u8]) -> Option<(u64, &[u8])> {
    let end = offset.checked_add(data.len() as u64)?;
    if end <= from || data.is_empty() {
        return None;
    }
    let skip = usize::try_from(from.saturating_sub(offset)).ok()?;
    Some((offset.max(from), &data[skip..]))
}
