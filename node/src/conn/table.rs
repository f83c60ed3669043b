//! The session table: connections by key, and a small handle per connection for timers.
//!
//! Memory per connection is what this layout is for (docs/BENCHMARKS.md, "Where the memory goes"): the key is not
//! stored (it is computed from the connection's own addresses, ports and protocol), the hash index holds 4-byte
//! slot numbers, and a timer names its connection by slot and serial (16 bytes a timer instead of a whole key).
//! A `HashMap<ConnKey, Box<Conn>>` cost 57 bytes a bucket, twice over at the load factor's low point.

use hashbrown::HashTable;
use std::hash::BuildHasher;

use super::{Conn, ConnKey};

/// Where a connection lives in a [`ConnTable`], valid while that connection does (slots are reused).
pub type Slot = u32;

/// How much room a full vector of per-connection entries (slots, timers) takes next: an eighth more, not the
/// doubling of `push`. These vectors grow with the open connections, and at the peak doubling left up to as many
/// unused entries as used ones (bytes per connection, docs/BENCHMARKS.md); growing by an eighth copies each entry
/// about eight times over the vector's life instead of once or twice, a few hundred KiB on the benchmark mix.
pub(crate) fn growth_when_full(len: usize, capacity: usize) -> Option<usize> {
    (len == capacity).then_some(len / 8 + 256)
}

pub struct ConnTable {
    /// Slots, found by the key's hash.
    index: HashTable<Slot>,
    /// The connections; `None` for a free slot.
    slots: Vec<Option<Box<Conn>>>,
    free: Vec<Slot>,
    /// Keys are attacker-controlled: the hasher is randomly seeded (foldhash).
    hasher: foldhash::fast::RandomState,
}

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

fn hash_key(hasher: &foldhash::fast::RandomState, key: &ConnKey) -> u64 {
    hasher.hash_one(key.table_words())
}

impl ConnTable {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn hash(&self, key: &ConnKey) -> u64 {
        hash_key(&self.hasher, key)
    }

    fn conn(slots: &[Option<Box<Conn>>], slot: Slot) -> &Conn {
        slots[slot as usize].as_deref().expect("the index names occupied slots")
    }

    /// The slot of the connection under `key`. Always inlined (as is [`Self::get_or_insert_with`], its one caller
    /// on the packet path): LLVM's own choice flips as the crate grows, and an outlined lookup costs ~1% of the
    /// instructions of the benchmark mix (docs/BENCHMARKS.md).
    #[inline(always)]
    pub fn find(&self, key: &ConnKey) -> Option<Slot> {
        let slots = &self.slots;
        self.index.find(self.hash(key), |&s| Self::conn(slots, s).has_key(key)).copied()
    }

    pub fn get(&self, key: &ConnKey) -> Option<&Conn> {
        self.find(key).map(|s| Self::conn(&self.slots, s))
    }

    /// The connection in `slot`, if any.
    pub fn slot(&self, slot: Slot) -> Option<&Conn> {
        self.slots.get(slot as usize).and_then(|c| c.as_deref())
    }

    /// The connection in `slot`, if any.
    pub fn slot_mut(&mut self, slot: Slot) -> Option<&mut Conn> {
        self.slots.get_mut(slot as usize).and_then(|c| c.as_deref_mut())
    }

    /// The connection under `key` and its slot, made by `make` when there is none. Inlined like [`Self::find`]:
    /// both are on every packet's path, and whether LLVM inlined them on its own flipped with unrelated changes
    /// (±1.5% of the instructions over the benchmark mix).
    #[inline(always)]
    pub fn get_or_insert_with(&mut self, key: ConnKey, make: impl FnOnce() -> Box<Conn>) -> (Slot, &mut Conn, bool) {
        let (slot, inserted) = match self.find(&key) {
            Some(slot) => (slot, false),
            None => (self.insert(key, make()), true),
        };
        let conn = self.slots[slot as usize].as_deref_mut().expect("just found or inserted");
        (slot, conn, inserted)
    }

    /// Adds a connection under `key` (which must be `conn.key()` and not in the table).
    fn insert(&mut self, key: ConnKey, conn: Box<Conn>) -> Slot {
        debug_assert!(conn.key() == key);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(conn);
                slot
            }
            None => {
                if let Some(more) = growth_when_full(self.slots.len(), self.slots.capacity()) {
                    self.slots.reserve_exact(more);
                }
                self.slots.push(Some(conn));
                Slot::try_from(self.slots.len() - 1).expect("fewer than 2^32 connections at once")
            }
        };
        let hash = self.hash(&key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| hash_key(hasher, &Self::conn(slots, s).key()));
        slot
    }

    /// Takes the connection under `key` out of the table.
    pub fn remove(&mut self, key: &ConnKey) -> Option<Box<Conn>> {
        let slot = self.find(key)?;
        self.remove_slot(slot)
    }

    /// Takes the connection in `slot` out of the table.
    pub fn remove_slot(&mut self, slot: Slot) -> Option<Box<Conn>> {
        let key = self.slots.get(slot as usize)?.as_deref()?.key();
        let hash = self.hash(&key);
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.free.push(slot);
        self.slots[slot as usize].take()
    }

    /// Takes every connection out of the table.
    pub fn take_all(&mut self) -> Vec<Box<Conn>> {
        self.index.clear();
        self.free.clear();
        self.slots.drain(..).flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::{ConnId, Proto};
    use crate::conn::UidGenerator;

    fn conn(ids: &mut UidGenerator, orig_p: u16) -> Box<Conn> {
        let (orig_h, resp_h) = ("10.0.0.1".parse().unwrap(), "192.0.2.1".parse().unwrap());
        let id = ConnId { orig_h, orig_p, resp_h, resp_p: 80, proto: Proto::Tcp };
        Box::new(Conn::new(ids.next_uid(), id, 6, 1.0))
    }

    #[test]
    fn finds_by_either_direction_and_reuses_freed_slots() {
        let mut ids = UidGenerator::new(1);
        let mut table = ConnTable::default();
        let first = conn(&mut ids, 1000);
        let (key, uid) = (first.key(), first.uid);
        let (slot, _, created) = table.get_or_insert_with(key, || first);
        assert!(created);
        let id = table.get(&key).unwrap().id;
        let reverse = ConnKey::new(id.resp_h, id.resp_p, id.orig_h, id.orig_p, 6);
        assert_eq!(table.find(&reverse), Some(slot), "both directions name one connection");
        let (again, found, created) = table.get_or_insert_with(key, || panic!("must not make a second one"));
        assert_eq!((again, found.uid, created), (slot, uid, false));

        let second = conn(&mut ids, 2000);
        let second_key = second.key();
        let (other, _, _) = table.get_or_insert_with(second_key, || second);
        assert_ne!(other, slot);
        assert_eq!(table.len(), 2);

        assert_eq!(table.remove(&key).map(|c| c.uid), Some(uid));
        assert!(table.get(&key).is_none() && table.slot_mut(slot).is_none());
        let third = conn(&mut ids, 3000);
        let third_key = third.key();
        let (reused, _, _) = table.get_or_insert_with(third_key, || third);
        assert_eq!(reused, slot, "a freed slot is taken again");
        assert!(table.get(&second_key).is_some() && table.get(&third_key).is_some());

        assert!(table.remove_slot(other).is_some());
        assert_eq!(table.take_all().len(), 1);
        assert!(table.is_empty() && table.get(&third_key).is_none());
    }

    #[test]
    fn slots_grow_by_an_eighth() {
        assert_eq!(growth_when_full(10, 20), None);
        assert_eq!(growth_when_full(8000, 8000), Some(1256));
        let mut ids = UidGenerator::new(3);
        let mut table = ConnTable::default();
        for p in 0..20_000 {
            let c = conn(&mut ids, p);
            table.get_or_insert_with(c.key(), || c);
        }
        let (len, capacity) = (table.slots.len(), table.slots.capacity());
        assert!(capacity <= len + len / 8 + 256, "{len} slots in room for {capacity}");
    }

    #[test]
    fn survives_growth() {
        let mut ids = UidGenerator::new(2);
        let mut table = ConnTable::default();
        let keys: Vec<ConnKey> = (0..5000)
            .map(|p| {
                let c = conn(&mut ids, p);
                let key = c.key();
                table.get_or_insert_with(key, || c);
                key
            })
            .collect();
        assert_eq!(table.len(), keys.len());
        for (port, key) in keys.iter().enumerate() {
            assert_eq!(table.get(key).map(|c| c.id.orig_p), Some(port as u16));
        }
        for key in keys.iter().step_by(2) {
            assert!(table.remove(key).is_some());
        }
        assert_eq!(table.len(), keys.len() / 2);
        assert!(keys.iter().skip(1).step_by(2).all(|k| table.get(k).is_some()));
    }
}
