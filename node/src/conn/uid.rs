//! Connection and file identifiers in Zeek's shape: `C` or `F` followed by base62 of 96 random bits.

/// A deterministic identifier source: the same seed gives the same uids, like Zeek's seeded runs.
#[derive(Debug, Clone)]
pub struct UidGenerator {
    state: u64,
    /// File ids handed out (Zeek's `FileAnalysisStats` `cumulative`).
    fuids: u64,
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl UidGenerator {
    pub fn new(seed: u64) -> Self {
        UidGenerator { state: seed ^ 0x9E37_79B9_7F4A_7C15, fuids: 0 }
    }

    /// splitmix64: small, fast, and good enough for identifiers (these are not secrets).
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_id(&mut self, prefix: u8) -> Uid {
        let bits = (u128::from(self.next_u64()) << 32) | u128::from(self.next_u64() >> 32);
        debug_assert!(prefix.is_ascii(), "`Uid::as_str` relies on ASCII bytes");
        let mut uid = Uid { len: 1, bytes: [0; UID_CAPACITY] };
        uid.bytes[0] = prefix;
        push_base62(&mut uid, bits);
        uid
    }

    pub fn next_uid(&mut self) -> Uid {
        self.next_id(b'C')
    }

    pub fn next_fuid(&mut self) -> String {
        self.fuids += 1;
        self.next_id(b'F').to_string()
    }

    /// How many file ids [`Self::next_fuid`] handed out.
    pub fn fuids_issued(&self) -> u64 {
        self.fuids
    }
}

const UID_CAPACITY: usize = 18;

/// Appends the base-62 digits of `bits` (at most 96 bits: 17 digits), least significant first, as Zeek writes them.
/// The number is cut into two base-62^10 pieces that fit 64 bits, so each digit is a 64-bit division by a constant
/// (a multiply) instead of a 128-bit division call: one 128-bit division per uid instead of seventeen.
fn push_base62(uid: &mut Uid, bits: u128) {
    debug_assert!(bits >> 96 == 0, "uids carry 96 bits");
    let (high, low) = ((bits / CHUNK) as u64, (bits % CHUNK) as u64);
    let mut push_digits = |mut piece: u64, min_digits: usize| {
        let mut written = 0;
        while written < min_digits || piece != 0 {
            uid.bytes[usize::from(uid.len)] = BASE62[(piece % 62) as usize];
            uid.len += 1;
            piece /= 62;
            written += 1;
        }
    };
    if high == 0 {
        push_digits(low, 1);
    } else {
        // The low piece's digits all count, zeros included, when a high piece follows.
        push_digits(low, CHUNK_DIGITS);
        push_digits(high, 0);
    }
}

/// Base-62 digits per piece of a uid's number, and the piece's modulus: 62^10 < 2^64.
const CHUNK_DIGITS: usize = 10;
const CHUNK: u128 = 62u128.pow(CHUNK_DIGITS as u32);

/// A uid held inline (no heap allocation per connection): ASCII, at most 18 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uid {
    len: u8,
    bytes: [u8; UID_CAPACITY],
}

impl Uid {
    /// Called for every delivery to every analyzer (the analyzer context carries the uid as text), where UTF-8
    /// validation of the same bytes again and again was a measurable share of the analysis time.
    pub fn as_str(&self) -> &str {
        let bytes = &self.bytes[..usize::from(self.len)];
        debug_assert!(bytes.is_ascii());
        // SAFETY: the fields are private to this module and only `UidGenerator::next_id` writes them: an ASCII
        // prefix letter and base62 digits, so the bytes are ASCII and therefore valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl std::ops::Deref for Uid {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&Uid> for String {
    fn from(uid: &Uid) -> String {
        uid.as_str().to_string()
    }
}

impl From<Uid> for String {
    fn from(uid: Uid) -> String {
        uid.as_str().to_string()
    }
}

/// Ordered as their text, as the sets of uids Zeek logs (`tunnel_parents`) are.
impl Ord for Uid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Uid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Uid {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Uid {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_zeeks_and_repeat_per_seed() {
        let mut a = UidGenerator::new(7);
        let mut b = UidGenerator::new(7);
        let ua = a.next_uid();
        assert_eq!(ua, b.next_uid());
        assert!(ua.starts_with('C') && ua.len() >= 12 && ua.len() <= 18, "{ua}");
        assert!(a.next_fuid().starts_with('F'));
        assert_ne!(a.next_uid(), ua);
    }

    /// The digit loop over 64-bit pieces writes what the plain one over the 128-bit number wrote (the uids of every
    /// seeded run, and so every log, stay the same).
    #[test]
    fn uids_are_the_base62_of_their_96_bits() {
        fn plain_base62(mut bits: u128) -> String {
            let mut text = String::from("C");
            loop {
                text.push(char::from(BASE62[(bits % 62) as usize]));
                bits /= 62;
                if bits == 0 {
                    return text;
                }
            }
        }
        let mut generator = UidGenerator::new(3);
        for _ in 0..20_000 {
            let mut twin = generator.clone();
            let bits = (u128::from(twin.next_u64()) << 32) | u128::from(twin.next_u64() >> 32);
            assert_eq!(generator.next_uid().as_str(), plain_base62(bits));
        }
        // A low piece of zeros, the edges of the pieces, the smallest and the largest numbers.
        for bits in [0, 1, 61, 62, CHUNK - 1, CHUNK, CHUNK + 1, CHUNK * 62, CHUNK * 7 + 5, (1 << 96) - 1] {
            let mut uid = Uid { len: 1, bytes: [b'C'; UID_CAPACITY] };
            push_base62(&mut uid, bits);
            assert_eq!(uid.as_str(), plain_base62(bits), "{bits}");
        }
    }

    #[test]
    fn uid_bytes_are_a_prefix_letter_and_base62_digits() {
        let mut generator = UidGenerator::new(0);
        for _ in 0..10_000 {
            let uid = generator.next_uid();
            let bytes = &uid.bytes[..usize::from(uid.len)];
            assert!(bytes[0] == b'C' && bytes[1..].iter().all(|b| BASE62.contains(b)), "{uid}");
            assert_eq!(std::str::from_utf8(bytes), Ok(uid.as_str()));
        }
    }
}
