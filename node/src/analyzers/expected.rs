//! The script tables that tie an expected data connection to the session that announced it: FTP's
//! `ftp_data_expected` and IRC's `dcc_expected_transfers`, both `table[addr, port] of Info &read_expire=5mins`.
//!
//! They are process-wide, as the expectations the engines of one process share are: a data connection analysed by
//! another analysis thread than its control connection still finds its entry.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A table keyed by a data connection's responder address and port, whose entries lapse when not read for
/// `read_expire` seconds of network time (Zeek's `&read_expire`: every lookup refreshes an entry).
pub struct ExpectedData<T> {
    table: Mutex<Table<T>>,
    read_expire: f64,
}

struct Table<T> {
    entries: BTreeMap<(IpAddr, u16), Entry<T>>,
    /// The latest network time the table was written or counted at: an entry unread for `read_expire` by then is
    /// gone, whether or not it was dropped from `entries` yet.
    written_at: f64,
    /// How many entries were left by the last purge: the next comes once the table has doubled, so a storm of
    /// expected connections costs a scan per doubling rather than one per insert.
    purged_len: usize,
    /// Purges so far (a measure of the scans).
    purges: usize,
}

struct Entry<T> {
    value: T,
    last_access: f64,
}

impl<T> Table<T> {
    fn lapsed(&self, e: &Entry<T>, read_expire: f64) -> bool {
        self.written_at - e.last_access > read_expire
    }

    fn purge(&mut self, read_expire: f64) {
        let written_at = self.written_at;
        self.entries.retain(|_, e| written_at - e.last_access <= read_expire);
        self.purged_len = self.entries.len();
        self.purges += 1;
    }

    /// The entry at `key`, unless it lapsed (then it goes now).
    fn live(&mut self, key: (IpAddr, u16), read_expire: f64) -> Option<&mut Entry<T>> {
        if self.entries.get(&key).is_some_and(|e| self.lapsed(e, read_expire)) {
            self.entries.remove(&key);
        }
        self.entries.get_mut(&key)
    }
}

impl<T: Clone> ExpectedData<T> {
    pub const fn new(read_expire: f64) -> Self {
        let table = Table { entries: BTreeMap::new(), written_at: f64::NEG_INFINITY, purged_len: 0, purges: 0 };
        ExpectedData { table: Mutex::new(table), read_expire }
    }

    fn table(&self) -> MutexGuard<'_, Table<T>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `table[resp_h, resp_p] = value` at network time `now`; what lapsed by then is gone.
    pub fn insert(&self, resp_h: IpAddr, resp_p: u16, value: T, now: f64) {
        let mut table = self.table();
        table.written_at = table.written_at.max(now);
        if table.entries.len() >= table.purged_len.saturating_mul(2).max(64) {
            table.purge(self.read_expire);
        }
        table.entries.insert((resp_h, resp_p), Entry { value, last_access: now });
    }

    /// `table[resp_h, resp_p]` at network time `now`, which refreshes the entry. Entries lapse when the table is
    /// written or counted ([`Self::insert`], [`Self::len`]), not here: a data connection's analyzer reads its entry
    /// at its first delivery, which may come after the expiry although the connection started before it (Zeek
    /// reads the entry when the scheduled analyzer is applied).
    pub fn lookup(&self, resp_h: IpAddr, resp_p: u16, now: f64) -> Option<T> {
        let mut table = self.table();
        let entry = table.live((resp_h, resp_p), self.read_expire)?;
        entry.last_access = now;
        Some(entry.value.clone())
    }

    /// The entry without reading it in the script's sense (no refresh).
    pub fn peek(&self, resp_h: IpAddr, resp_p: u16) -> Option<T> {
        self.table().live((resp_h, resp_p), self.read_expire).map(|e| e.value.clone())
    }

    /// `delete table[resp_h, resp_p]`.
    pub fn remove(&self, resp_h: IpAddr, resp_p: u16) -> Option<T> {
        let mut table = self.table();
        table.live((resp_h, resp_p), self.read_expire)?;
        table.entries.remove(&(resp_h, resp_p)).map(|e| e.value)
    }

    /// How many entries there are at network time `now` (`|table|`), what lapsed by then left out.
    pub fn len(&self, now: f64) -> usize {
        let mut table = self.table();
        table.written_at = table.written_at.max(now);
        table.purge(self.read_expire);
        table.entries.len()
    }

    /// Whether any entry's value satisfies `f`.
    pub fn any(&self, f: impl Fn(&T) -> bool) -> bool {
        let table = self.table();
        table.entries.values().any(|e| !table.lapsed(e, self.read_expire) && f(&e.value))
    }

    /// Entries held, lapsed or not.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.table().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_lapse_when_not_read_for_the_expiry() {
        let table: ExpectedData<u32> = ExpectedData::new(300.0);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        table.insert(a, 1024, 1, 10.0);
        assert_eq!(table.lookup(a, 1024, 300.0), Some(1), "read at 300 s: refreshed");
        assert_eq!(table.lookup(a, 1024, 600.0), Some(1), "300 s after the last read");
        assert_eq!(table.lookup(a, 1025, 600.0), None);
        assert_eq!(table.peek(a, 1024), Some(1));
        assert_eq!(table.len(900.5), 0, "more than 300 s unread");
        assert_eq!(table.peek(a, 1024), None, "a lapsed entry is gone");

        table.insert(a, 1024, 2, 1000.0);
        table.insert(a, 2000, 3, 1000.0);
        assert!(table.any(|v| *v == 3));
        assert_eq!(table.len(1000.0), 2);
        assert_eq!(table.remove(a, 1024), Some(2));
        assert_eq!(table.lookup(a, 1024, 1000.0), None);
        // A lookup refreshes; an insert purges what lapsed meanwhile.
        assert_eq!(table.lookup(a, 2000, 1200.0), Some(3));
        table.insert(a, 3000, 4, 1400.0);
        assert_eq!(table.peek(a, 2000), Some(3), "read at 1200");
        table.insert(a, 3000, 5, 1501.0);
        assert_eq!(table.peek(a, 2000), None);
        assert!(!table.any(|v| *v == 3));
        assert_eq!(table.len(1501.0), 1);
        assert_eq!(table.len(1801.5), 0, "what lapsed is not counted");
    }

    /// FTP's `ftp_data_expected` has no cap: a storm of PORT commands to distinct ports, 10 a second for two hours,
    /// keeps what was announced in the last five minutes (and at most as much again until the next purge), scans
    /// the table once per doubling rather than at every insert, and each entry still lapses 300 s after its last
    /// read.
    #[test]
    fn a_storm_of_expectations_keeps_what_is_live() {
        const RATE: u32 = 10;
        const SPAN: u32 = 7_200;
        let table: ExpectedData<u32> = ExpectedData::new(300.0);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let live = 300 * RATE as usize;
        let mut peak = 0;
        for i in 0..SPAN * RATE {
            let now = f64::from(i) / f64::from(RATE);
            table.insert(a, u16::try_from(i % 65_536).unwrap(), i, now);
            peak = peak.max(table.held());
        }
        assert!(peak <= 2 * live + 2, "{peak} held, {live} live");
        let purges = table.table().purges;
        assert!(purges <= (SPAN * RATE) as usize / live * 2 + 16, "{purges} scans of the table");
        let end = f64::from(SPAN);
        let last = SPAN * RATE - 1;
        let port = u16::try_from(last % 65_536).unwrap();
        assert_eq!(table.peek(a, port), Some(last));
        let port_lapsed = u16::try_from((last - 300 * RATE - 5) % 65_536).unwrap();
        table.insert(a, 1, 0, end);
        assert_eq!(table.peek(a, port_lapsed), None, "unread for more than 300 s at the last write");
    }
}
