//! Keyed state held on proxies: small typed tables with expiry. When the membership view changes, each entry whose
//! HRW owner changed moves to the new owner and merges there, so counts and distinct sets survive scaling.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use prost::Message as _;

use super::data::{Data, DataError};
use super::hrw::PoolKey;

/// What a key holds. Each kind merges in its own way when state moves between proxies.
#[derive(Debug, Clone, PartialEq)]
pub enum StateValue {
    /// A counter: merging adds.
    Count(u64),
    /// A distinct set (scan targets, scanner addresses, a host's software): merging unites.
    Set(ItemSet),
    /// Any value: merging keeps the incoming one.
    Value(Data),
}

impl StateValue {
    fn merge(&mut self, other: StateValue) {
        match (self, other) {
            (StateValue::Count(a), StateValue::Count(b)) => *a = a.saturating_add(b),
            (StateValue::Set(a), StateValue::Set(b)) => a.extend(b),
            (slot, other) => *slot = other,
        }
    }

    pub fn count(&self) -> Option<u64> {
        match self {
            StateValue::Count(c) => Some(*c),
            _ => None,
        }
    }

    /// The number of distinct items of a set (0 for other kinds).
    pub fn set_len(&self) -> usize {
        match self {
            StateValue::Set(s) => s.len(),
            _ => 0,
        }
    }
}

/// The items of a distinct set, sorted by their wire encoding. Most sets hold a handful (a host's software and
/// services, a scanner's ports below the threshold), and a proxy holds one per host for a day: a sorted vector
/// takes what its items take, where a `BTreeMap`'s first node reserves room for eleven (about 0.5 kB a set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemSet(Vec<(Vec<u8>, Data)>);

impl ItemSet {
    /// Adds `item`; whether it was new.
    pub fn insert(&mut self, item: Data) -> bool {
        let key = item_key(&item);
        match self.0.binary_search_by(|(k, _)| k.as_slice().cmp(&key)) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, (key, item));
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The items, in the order of their wire encoding.
    pub fn values(&self) -> impl Iterator<Item = &Data> {
        self.0.iter().map(|(_, d)| d)
    }

    fn extend(&mut self, other: ItemSet) {
        for (_, item) in other.0 {
            self.insert(item);
        }
    }
}

impl FromIterator<Data> for ItemSet {
    fn from_iter<I: IntoIterator<Item = Data>>(items: I) -> Self {
        let mut set = ItemSet::default();
        for item in items {
            set.insert(item);
        }
        set
    }
}

/// One key of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: Data,
    pub value: StateValue,
    /// When the entry expires (the same clock the caller passes as `now`); infinity = never.
    pub expires: f64,
}

#[derive(Debug, Default)]
struct Table {
    /// Seconds after the last write (or, with `from_creation`, after the entry was made) that an entry expires;
    /// 0 = never.
    expiry: f64,
    /// Writes do not move the deadline (Zeek's `&create_expire`, where the default is `&write_expire`).
    from_creation: bool,
    entries: HashMap<PoolKey, Slot>,
    /// When entries are next due to be looked at, earliest first: one live element per entry that can expire
    /// ([`Slot::armed`]), so expiry costs a pop per due entry rather than a walk over the table every second (a
    /// proxy keeps a day of known hosts, services and software). Elements of removed entries, or whose deadline
    /// moved earlier, are stale and skipped.
    due: BinaryHeap<Reverse<Due>>,
}

/// An entry and the deadline its element in [`Table::due`] carries. A write moves `entry.expires` later without
/// touching the heap; when the element comes due, the entry is removed or its element re-armed at `expires`.
#[derive(Debug)]
struct Slot {
    entry: Entry,
    armed: f64,
}

#[derive(Debug, PartialEq)]
struct Due {
    at: f64,
    key: PoolKey,
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.total_cmp(&other.at).then_with(|| self.key.cmp(&other.key))
    }
}

impl Table {
    /// Stale elements the heap may hold beyond one per entry before it is rebuilt from the entries.
    const STALE_SLACK: usize = 1024;

    /// Puts `entry` under `key`, arming its element if it can expire.
    fn add(&mut self, key: PoolKey, entry: Entry) {
        let armed = entry.expires;
        if armed.is_finite() {
            self.arm(key.clone(), armed);
        }
        self.entries.insert(key, Slot { entry, armed });
    }

    fn arm(&mut self, key: PoolKey, at: f64) {
        self.due.push(Reverse(Due { at, key }));
        if self.due.len() > 2 * self.entries.len() + Self::STALE_SLACK {
            self.due = self
                .entries
                .iter()
                .filter(|(_, slot)| slot.armed.is_finite())
                .map(|(k, slot)| Reverse(Due { at: slot.armed, key: k.clone() }))
                .collect();
        }
    }

    /// A write set the entry of `key` to expire at `expires`: later needs nothing now (the element re-arms when it
    /// comes due); earlier (the clock went back, or a merge) needs a new element.
    fn moved(&mut self, key: &PoolKey, expires: f64) {
        let Some(slot) = self.entries.get_mut(key) else { return };
        slot.entry.expires = expires;
        if expires < slot.armed {
            slot.armed = expires;
            self.arm(key.clone(), expires);
        }
    }

    /// Removes the entries due by `now` into `out`.
    fn expire(&mut self, name: &str, now: f64, out: &mut Vec<(String, Entry)>) {
        while let Some(Reverse(due)) = self.due.peek() {
            if due.at > now {
                break;
            }
            let Some(Reverse(due)) = self.due.pop() else { break };
            let Some(slot) = self.entries.get_mut(&due.key) else { continue };
            if slot.armed != due.at {
                continue;
            }
            if slot.entry.expires <= now {
                if let Some(slot) = self.entries.remove(&due.key) {
                    out.push((name.to_string(), slot.entry));
                }
            } else {
                slot.armed = slot.entry.expires;
                let at = slot.armed;
                if at.is_finite() {
                    self.due.push(Reverse(Due { at, key: due.key }));
                }
            }
        }
    }
}

/// The state tables of one node.
#[derive(Debug, Default)]
pub struct StateStore {
    tables: BTreeMap<String, Table>,
    /// How many entries moved here from other proxies so far: a handler that derives something from its counts
    /// (a threshold crossed) re-checks them when this changes, as a merge can cross it without an update.
    merges: u64,
}

/// The HRW key of a state key: strings and counts hash as Zeek hashes them, other values by their wire encoding.
pub fn pool_key(key: &Data) -> PoolKey {
    match key {
        Data::Str(s) => PoolKey::string(s),
        Data::Count(c) => PoolKey::count(*c),
        Data::Addr(a) => PoolKey::addr(*a),
        other => PoolKey::bytes(other.to_pb().encode_to_vec()),
    }
}

fn item_key(d: &Data) -> Vec<u8> {
    d.to_pb().encode_to_vec()
}

impl StateStore {
    /// Sets a table's expiry (seconds after the last write; 0 = never). Tables exist on first use without this.
    pub fn define(&mut self, table: &str, expiry_secs: f64) {
        let t = self.table(table);
        (t.expiry, t.from_creation) = (expiry_secs.max(0.0), false);
    }

    /// Sets a table's expiry counted from each entry's creation, which writes do not move (Zeek's
    /// `&create_expire`: known services and software are logged again a day after they were first logged, however
    /// busy the host).
    pub fn define_created(&mut self, table: &str, expiry_secs: f64) {
        let t = self.table(table);
        (t.expiry, t.from_creation) = (expiry_secs.max(0.0), true);
    }

    fn table(&mut self, table: &str) -> &mut Table {
        // Looked up by `&str` first: `entry` would allocate the name on every write.
        if !self.tables.contains_key(table) {
            self.tables.insert(table.to_string(), Table::default());
        }
        self.tables.get_mut(table).expect("inserted above")
    }

    fn entry(&mut self, table: &str, key: &Data, now: f64, empty: impl FnOnce() -> StateValue) -> &mut Entry {
        let t = self.table(table);
        let expires = if t.expiry > 0.0 { now + t.expiry } else { f64::INFINITY };
        let k = pool_key(key);
        match t.entries.get(&k).map(|slot| slot.entry.expires) {
            // Lapsed but not yet swept: gone, as Zeek's table no longer holds it, and made afresh.
            Some(lapsed) if lapsed <= now => {
                t.entries.remove(&k);
                t.add(k.clone(), Entry { key: key.clone(), value: empty(), expires });
            }
            Some(_) if t.from_creation => {}
            Some(_) => t.moved(&k, expires),
            None => t.add(k.clone(), Entry { key: key.clone(), value: empty(), expires }),
        }
        &mut t.entries.get_mut(&k).expect("present or added above").entry
    }

    /// Adds `by` to a counter and returns the new count.
    pub fn incr(&mut self, table: &str, key: &Data, by: u64, now: f64) -> u64 {
        let e = self.entry(table, key, now, || StateValue::Count(0));
        if !matches!(e.value, StateValue::Count(_)) {
            e.value = StateValue::Count(0);
        }
        e.value.merge(StateValue::Count(by));
        e.value.count().unwrap_or(0)
    }

    /// Adds `item` to a distinct set; returns whether it was new and the set's size.
    pub fn insert(&mut self, table: &str, key: &Data, item: Data, now: f64) -> (bool, usize) {
        let e = self.entry(table, key, now, || StateValue::Set(ItemSet::default()));
        if !matches!(e.value, StateValue::Set(_)) {
            e.value = StateValue::Set(ItemSet::default());
        }
        match &mut e.value {
            StateValue::Set(s) => {
                let new = s.insert(item);
                (new, s.len())
            }
            _ => (false, 0),
        }
    }

    /// Stores a value, replacing what was there.
    pub fn put(&mut self, table: &str, key: &Data, value: Data, now: f64) {
        self.entry(table, key, now, || StateValue::Value(Data::Unset)).value = StateValue::Value(value);
    }

    /// The value of `key`; a lapsed entry the once-a-second sweep has not removed yet still shows here (handlers
    /// that need the lapse exact write through [`Self::incr`], [`Self::insert`] or [`Self::put`], which see it).
    pub fn get(&self, table: &str, key: &Data) -> Option<&StateValue> {
        self.tables.get(table)?.entries.get(&pool_key(key)).map(|slot| &slot.entry.value)
    }

    pub fn remove(&mut self, table: &str, key: &Data) -> Option<Entry> {
        self.tables.get_mut(table)?.entries.remove(&pool_key(key)).map(|slot| slot.entry)
    }

    /// Every entry of a table (for reports).
    pub fn entries(&self, table: &str) -> Vec<&Entry> {
        self.tables.get(table).map(|t| t.entries.values().map(|slot| &slot.entry).collect()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.tables.values().map(|t| t.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns the entries that expired by `now`, in the order they expired.
    pub fn expire(&mut self, now: f64) -> Vec<(String, Entry)> {
        let mut out = Vec::new();
        for (name, t) in &mut self.tables {
            t.expire(name, now, &mut out);
        }
        out
    }

    /// Takes out every entry that `owner` places elsewhere than `me`, grouped by new owner. `owner` returns `None`
    /// when the pool is empty: such entries stay (there is nowhere to send them).
    pub fn take_moved(&mut self, me: &str, owner: impl Fn(&PoolKey) -> Option<String>) -> Vec<(String, String, Entry)> {
        let mut out = Vec::new();
        for (name, t) in &mut self.tables {
            let moving: Vec<(PoolKey, String)> =
                t.entries.keys().filter_map(|k| owner(k).filter(|o| o != me).map(|o| (k.clone(), o))).collect();
            for (k, to) in moving {
                if let Some(slot) = t.entries.remove(&k) {
                    out.push((to, name.clone(), slot.entry));
                }
            }
        }
        out
    }

    /// The number of entries merged in from other proxies so far.
    pub fn merges(&self) -> u64 {
        self.merges
    }

    /// Merges an entry that moved here from another proxy.
    pub fn merge(&mut self, table: &str, incoming: Entry) {
        self.merges += 1;
        let t = self.table(table);
        let k = pool_key(&incoming.key);
        match t.entries.get_mut(&k) {
            Some(slot) => {
                slot.entry.value.merge(incoming.value);
                let expires = slot.entry.expires.max(incoming.expires);
                t.moved(&k, expires);
            }
            None => t.add(k, incoming),
        }
    }
}

/// An entry on the wire, as one record: `[table, key, kind, value, expires]`.
pub fn entry_to_data(table: &str, e: &Entry) -> Data {
    let (kind, value) = match &e.value {
        StateValue::Count(c) => ("count", Data::Count(*c)),
        StateValue::Set(s) => ("set", Data::Set(s.values().cloned().collect())),
        StateValue::Value(d) => ("value", d.clone()),
    };
    let expires = if e.expires.is_finite() { Data::Time(e.expires) } else { Data::Unset };
    Data::Record(vec![Data::Str(table.to_string()), e.key.clone(), Data::Enum(kind.into()), value, expires])
}

pub fn entry_from_data(d: Data) -> Result<(String, Entry), DataError> {
    let bad = || DataError("a state entry is [table, key, kind, value, expires]".into());
    let Data::Record(fields) = d else { return Err(bad()) };
    let [table, key, kind, value, expires]: [Data; 5] = fields.try_into().map_err(|_| bad())?;
    let table = table.as_str().ok_or_else(bad)?.to_string();
    let value = match (kind.as_str(), value) {
        (Some("count"), Data::Count(c)) => StateValue::Count(c),
        (Some("set"), Data::Set(items)) => StateValue::Set(items.into_iter().collect()),
        (Some("value"), v) => StateValue::Value(v),
        _ => return Err(bad()),
    };
    let expires = match expires {
        Data::Time(t) => t,
        _ => f64::INFINITY,
    };
    Ok((table, Entry { key, value, expires }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::hrw;

    #[test]
    fn counters_sets_values_and_expiry() {
        let mut s = StateStore::default();
        s.define("pairs", 10.0);
        let k = Data::Str("a->b".into());
        assert_eq!(s.incr("pairs", &k, 1, 0.0), 1);
        assert_eq!(s.incr("pairs", &k, 2, 5.0), 3);
        let scanner = Data::Addr("10.0.0.1".parse().unwrap());
        assert_eq!(s.insert("targets", &scanner, Data::Addr("1.1.1.1".parse().unwrap()), 0.0), (true, 1));
        assert_eq!(s.insert("targets", &scanner, Data::Addr("1.1.1.1".parse().unwrap()), 0.0), (false, 1));
        assert_eq!(s.insert("targets", &scanner, Data::Addr("1.1.1.2".parse().unwrap()), 0.0), (true, 2));
        s.put("seen", &Data::Count(7), Data::Bool(true), 0.0);
        assert_eq!(s.get("seen", &Data::Count(7)), Some(&StateValue::Value(Data::Bool(true))));
        assert_eq!(s.len(), 3);
        assert!(s.expire(14.9).is_empty(), "the second write pushed the expiry to 15");
        let gone = s.expire(15.0);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1.value, StateValue::Count(3));
        assert!(s.get("pairs", &k).is_none());
        assert!(s.expire(1e12).is_empty(), "tables without expiry keep their entries");
    }

    /// Expiry follows the entries' last writes whatever happened to them since they were armed: refreshed,
    /// removed and re-created, merged with a later or an earlier deadline.
    #[test]
    fn expiry_follows_writes_removals_and_merges() {
        let mut s = StateStore::default();
        s.define("t", 10.0);
        let (a, b, c) = (Data::Count(1), Data::Count(2), Data::Count(3));
        s.incr("t", &a, 1, 0.0);
        s.incr("t", &b, 1, 0.0);
        s.incr("t", &a, 1, 8.0); // a: 18
        s.remove("t", &b);
        s.incr("t", &b, 1, 9.0); // b again: 19, with the removed entry's element (10) still queued
        s.merge("t", Entry { key: c.clone(), value: StateValue::Count(5), expires: 30.0 });
        s.merge("t", Entry { key: c.clone(), value: StateValue::Count(1), expires: 12.0 }); // stays 30
        let keys = |gone: Vec<(String, Entry)>| gone.into_iter().map(|(_, e)| e.key).collect::<Vec<_>>();
        assert!(s.expire(17.9).is_empty());
        assert_eq!(keys(s.expire(18.0)), std::slice::from_ref(&a));
        assert_eq!(keys(s.expire(19.0)), [b]);
        assert!(s.expire(29.0).is_empty());
        assert_eq!(s.get("t", &c), Some(&StateValue::Count(6)));
        assert_eq!(keys(s.expire(30.0)), [c]);
        // An earlier deadline than the one armed (a write with an older clock) is honoured.
        s.incr("t", &a, 1, 100.0);
        s.incr("t", &a, 1, 50.0);
        assert_eq!(keys(s.expire(60.0)), [a]);
        assert!(s.is_empty());
    }

    /// `define_created`: the deadline is the entry's creation plus the expiry, whatever is written since, and a
    /// write after it (before the sweep) starts a new entry.
    #[test]
    fn created_expiry_ignores_writes_and_a_lapsed_entry_starts_afresh() {
        let mut s = StateStore::default();
        s.define_created("services", 100.0);
        let host = Data::Addr("10.0.0.2".parse().unwrap());
        assert_eq!(s.insert("services", &host, Data::Count(80), 0.0), (true, 1));
        assert_eq!(s.insert("services", &host, Data::Count(8080), 90.0), (true, 2));
        assert_eq!(s.insert("services", &host, Data::Count(80), 99.0), (false, 2));
        // Not swept yet at 100, but lapsed: 80 is new again.
        assert_eq!(s.insert("services", &host, Data::Count(80), 100.0), (true, 1));
        assert!(s.expire(199.0).is_empty());
        assert_eq!(s.expire(200.0).len(), 1);
        s.define("busy", 100.0);
        s.incr("busy", &host, 1, 0.0);
        assert_eq!(s.incr("busy", &host, 1, 90.0), 2, "a write moves a last-write deadline");
        assert!(s.expire(150.0).is_empty());
    }

    proptest::proptest! {
        /// Against a table that is walked in full at every expiry (what the store did before the heap): the same
        /// entries expire at the same calls, and the same ones stay.
        #[test]
        fn expiry_matches_a_full_walk(ops in proptest::collection::vec((0u8..5, 0u64..12, 0u32..40), 1..300)) {
            let mut s = StateStore::default();
            s.define("t", 7.0);
            let mut model: HashMap<u64, f64> = HashMap::new();
            let mut now = 0.0;
            for (op, key, step) in ops {
                let k = Data::Count(key);
                match op {
                    0 | 1 => {
                        s.incr("t", &k, 1, now);
                        model.insert(key, now + 7.0);
                    }
                    2 => {
                        s.remove("t", &k);
                        model.remove(&key);
                    }
                    3 => {
                        let expires = now + f64::from(step % 20);
                        s.merge("t", Entry { key: k, value: StateValue::Count(1), expires });
                        let e = model.entry(key).or_insert(expires);
                        *e = e.max(expires);
                    }
                    _ => {
                        now += f64::from(step) / 4.0;
                        let mut gone: Vec<u64> =
                            s.expire(now).into_iter().filter_map(|(_, e)| e.key.as_count()).collect();
                        gone.sort_unstable();
                        let mut want: Vec<u64> = model.iter().filter(|(_, t)| **t <= now).map(|(k, _)| *k).collect();
                        want.sort_unstable();
                        model.retain(|_, t| *t > now);
                        proptest::prop_assert_eq!(gone, want);
                    }
                }
            }
            proptest::prop_assert_eq!(s.len(), model.len());
        }
    }

    #[test]
    fn moved_entries_merge_at_the_new_owner() {
        let mut old = StateStore::default();
        let mut new = StateStore::default();
        for i in 0..100u64 {
            old.incr("c", &Data::Count(i % 10), 1, 0.0);
            old.insert("s", &Data::Count(i % 10), Data::Count(i), 0.0);
        }
        // Meanwhile the new owner already counted some of the same keys.
        new.incr("c", &Data::Count(3), 5, 0.0);
        let pool = ["proxy-1", "proxy-2"];
        let moved = old.take_moved("proxy-1", |k| hrw::owner(pool, k).map(str::to_string));
        assert!(!moved.is_empty());
        for (to, table, e) in moved {
            assert_eq!(to, "proxy-2");
            let (t, e) = entry_from_data(entry_to_data(&table, &e)).unwrap();
            new.merge(&t, e);
        }
        let total: u64 = (0..10)
            .map(|k| {
                let key = Data::Count(k);
                old.get("c", &key).or(new.get("c", &key)).and_then(StateValue::count).unwrap_or(0)
            })
            .sum();
        assert_eq!(total, 105);
        for k in 0..10u64 {
            let key = Data::Count(k);
            assert!(old.get("c", &key).is_some() != new.get("c", &key).is_some(), "key {k} lives on exactly one proxy");
            let set = old.get("s", &key).or(new.get("s", &key)).unwrap();
            assert_eq!(set.set_len(), 10);
        }
    }

    #[test]
    fn malformed_transfers_are_errors() {
        assert!(entry_from_data(Data::Count(1)).is_err());
        assert!(entry_from_data(Data::Record(vec![Data::Str("t".into())])).is_err());
        let wrong_kind = Data::Record(vec![
            Data::Str("t".into()),
            Data::Count(1),
            Data::Enum("count".into()),
            Data::Str("x".into()),
            Data::Unset,
        ]);
        assert!(entry_from_data(wrong_kind).is_err());
    }
}
