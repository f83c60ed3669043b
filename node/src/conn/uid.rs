//! Connection and file identifiers in Zeek's shape: `C` or `F` followed by base62 of 96 random bits.

/// A deterministic identifier source: the same seed gives the same uids, like Zeek's seeded runs.
#[derive(Debug, Clone)]
pub struct UidGenerator {
    state: u64,
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl UidGenerator {
    pub fn new(seed: u64) -> Self {
        UidGenerator { state: seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    /// splitmix64: small, fast, and good enough for identifiers (these are not secrets).
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_id(&mut self, prefix: char) -> String {
        let mut bits = (u128::from(self.next_u64()) << 32) | u128::from(self.next_u64() >> 32);
        let mut out = String::with_capacity(18);
        out.push(prefix);
        let start = out.len();
        while bits > 0 {
            out.push(BASE62[(bits % 62) as usize] as char);
            bits /= 62;
        }
        if out.len() == start {
            out.push('0');
        }
        out
    }

    pub fn next_uid(&mut self) -> String {
        self.next_id('C')
    }

    pub fn next_fuid(&mut self) -> String {
        self.next_id('F')
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
}
