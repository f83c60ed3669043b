//! A connection's confirmed services, in confirmation order, held in one word: each service is a one-byte code of
//! a name interned once per process. A boxed slice cost a connection 16 bytes inline and 16 more on the heap per
//! service (docs/BENCHMARKS.md, "Where the memory goes"); a connection with more services than a word holds, or a
//! name that finds no code, keeps a plain list out of line instead ([`ServiceList::Spilled`]).

use std::sync::OnceLock;

/// How many distinct service names get a code. Names are the analyzers' and tunnels' literals (a few dozen); a
/// name past this still works, spilled.
const MAX_NAMES: usize = 254;

/// Interned names; code `c` is `NAMES[c - 1]`. Filled once per slot, read without locking.
static NAMES: [OnceLock<&'static str>; MAX_NAMES] = [const { OnceLock::new() }; MAX_NAMES];

/// Services a word holds: one byte each, `0` past the last one.
const PACKED_SERVICES: usize = 8;

/// The code of `name`, interning it on first use; `None` once every code is taken by other names.
fn code_of(name: &'static str) -> Option<u8> {
    NAMES.iter().zip(1u8..).find_map(|(slot, code)| (*slot.get_or_init(|| name) == name).then_some(code))
}

fn name_of(code: u8) -> &'static str {
    NAMES[usize::from(code) - 1].get().expect("codes are handed out only for interned names")
}

/// Where a connection's services are.
pub enum ServiceList<'a> {
    /// Codes, one byte each from the lowest, up to the first zero byte.
    Packed(u64),
    Spilled(&'a [&'static str]),
}

impl ServiceList<'_> {
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        let packed = match self {
            ServiceList::Packed(word) => word.to_le_bytes(),
            ServiceList::Spilled(_) => [0; PACKED_SERVICES],
        };
        let spilled = match self {
            ServiceList::Packed(_) => &[][..],
            ServiceList::Spilled(names) => names,
        };
        packed.into_iter().take_while(|&code| code != 0).map(name_of).chain(spilled.iter().copied())
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Comma-separated, as conn.log's `service` column (written straight into the string: every conn.log record
    /// asks).
    pub fn joined(&self) -> String {
        let mut out = String::new();
        for (i, name) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
        }
        out
    }
}

/// `word` with `name` added after its last service, when the word has room and `name` a code.
pub fn push_packed(word: u64, name: &'static str) -> Option<u64> {
    let used = (u64::BITS - word.leading_zeros()).div_ceil(8);
    if used as usize >= PACKED_SERVICES {
        return None;
    }
    Some(word | u64::from(code_of(name)?) << (8 * used))
}

/// The packed form, when it can hold `names`.
pub fn pack(names: &[&'static str]) -> Option<u64> {
    if names.len() > PACKED_SERVICES {
        return None;
    }
    let mut bytes = [0u8; PACKED_SERVICES];
    for (byte, name) in bytes.iter_mut().zip(names) {
        *byte = code_of(name)?;
    }
    Some(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pack_in_order_and_come_back() {
        let names = ["http", "ssl", "ftp-data"];
        let word = pack(&names).expect("three names fit");
        assert_eq!(ServiceList::Packed(word).iter().collect::<Vec<_>>(), names);
        assert_eq!(ServiceList::Packed(word).joined(), "http,ssl,ftp-data");
        assert_eq!(pack(&["ssl"]), pack(&["ssl"]), "one code per name");
        assert!(ServiceList::Packed(0).is_empty() && pack(&[]) == Some(0));
    }

    #[test]
    fn a_name_pushed_onto_a_word_packs_as_the_list_would() {
        let names = ["http", "ssl", "ftp-data", "dns", "smtp", "ssh", "ftp", "quic"];
        let mut word = 0;
        for (i, name) in names.iter().enumerate() {
            word = push_packed(word, name).expect("a word holds eight");
            assert_eq!(Some(word), pack(&names[..=i]));
        }
        assert_eq!(push_packed(word, "irc"), None, "a full word");
    }

    #[test]
    fn more_names_than_a_word_holds_do_not_pack() {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        assert!(pack(&names[..8]).is_some());
        assert_eq!(pack(&names), None);
        assert_eq!(ServiceList::Spilled(&names).joined(), "a,b,c,d,e,f,g,h,i");
    }
}
