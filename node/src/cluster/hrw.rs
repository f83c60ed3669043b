//! Rendezvous (highest random weight) hashing, bit-compatible with Zeek's `HashHRW` (base/utils/hash_hrw.zeek):
//! the same key picks the same pool member as a Zeek cluster would.

/// FNV-1a, 32 bits (Zeek's `fnv1a32`).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    const OFFSET: u32 = 2_166_136_261;
    const PRIME: u32 = 16_777_619;
    bytes.iter().fold(OFFSET, |h, b| (h ^ u32::from(*b)).wrapping_mul(PRIME))
}

/// Zeek's type tag for `count`, which its hashing of a `count` key writes before the value.
const ZEEK_TYPE_COUNT: i32 = 3;

/// The bytes a pool key hashes, encoded the way Zeek hashes the same script value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey(pub Vec<u8>);

impl PoolKey {
    /// A `string` key: its raw bytes.
    pub fn string(s: &str) -> Self {
        PoolKey(s.as_bytes().to_vec())
    }

    /// A `count` key: the little-endian type tag, then the little-endian value.
    pub fn count(n: u64) -> Self {
        let mut b = Vec::with_capacity(12);
        b.extend_from_slice(&ZEEK_TYPE_COUNT.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        PoolKey(b)
    }

    /// Any other key, by its canonical bytes (an address's octets, a subnet's octets and prefix length, a pair's
    /// parts joined). Only string and count keys are checked against Zeek; other encodings are this cluster's own.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Self {
        PoolKey(b.into())
    }

    pub fn addr(a: std::net::IpAddr) -> Self {
        match a {
            std::net::IpAddr::V4(v4) => PoolKey(v4.octets().to_vec()),
            std::net::IpAddr::V6(v6) => PoolKey(v6.octets().to_vec()),
        }
    }

    pub fn digest(&self) -> u32 {
        fnv1a32(&self.0)
    }
}

/// A pool member's HRW site id: Zeek hashes the node name with the alias suffix `.0`.
pub fn site_id(name: &str) -> u32 {
    let mut alias = String::with_capacity(name.len() + 2);
    alias.push_str(name);
    alias.push_str(".0");
    fnv1a32(alias.as_bytes())
}

/// Zeek's rendezvous weight of a site for a key digest (a 31-bit linear congruential mix).
pub fn weight(site: u32, digest: u32) -> u32 {
    const A: u32 = 1_103_515_245;
    const B: u32 = 12_345;
    let inner = A.wrapping_mul(site).wrapping_add(B) ^ (digest & 0x7fff_ffff);
    A.wrapping_mul(inner).wrapping_add(B) & 0x7fff_ffff
}

/// The member that owns `key`: the highest weight, ties to the larger site id. `None` for an empty pool.
pub fn owner<'a, I>(members: I, key: &PoolKey) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let d = key.digest();
    members
        .into_iter()
        .map(|name| {
            let site = site_id(name);
            ((weight(site, d), site), name)
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_reference_values() {
        assert_eq!(fnv1a32(b""), 2_166_136_261);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    /// Zeek's own test (testing/btest/scripts/base/frameworks/cluster/hrw): pool {proxy-1, proxy-2}.
    #[test]
    fn golden_vector_matches_zeek() {
        let pool = ["proxy-1", "proxy-2"];
        let expected = [(0, "proxy-2"), (1, "proxy-1"), (2, "proxy-2"), (3, "proxy-2")];
        let more = [(13, "proxy-1"), (37, "proxy-1"), (42, "proxy-1"), (101, "proxy-1")];
        for (key, node) in expected.into_iter().chain(more) {
            assert_eq!(owner(pool, &PoolKey::count(key)), Some(node), "count key {key}");
        }
    }

    #[test]
    fn order_of_members_does_not_matter() {
        let a = ["proxy-1", "proxy-2", "proxy-3"];
        let b = ["proxy-3", "proxy-1", "proxy-2"];
        for k in 0..200 {
            assert_eq!(owner(a, &PoolKey::count(k)), owner(b, &PoolKey::count(k)));
        }
        assert_eq!(owner([], &PoolKey::string("x")), None);
    }

    #[test]
    fn removing_a_member_only_moves_its_keys() {
        let three = ["proxy-1", "proxy-2", "proxy-3"];
        let two = ["proxy-1", "proxy-2"];
        for k in 0..500 {
            let key = PoolKey::count(k);
            let before = owner(three, &key).unwrap();
            if before != "proxy-3" {
                assert_eq!(owner(two, &key), Some(before));
            }
        }
    }
}
