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
    entries: Mutex<BTreeMap<(IpAddr, u16), Entry<T>>>,
    read_expire: f64,
}

struct Entry<T> {
    value: T,
    last_access: f64,
}

impl<T: Clone> ExpectedData<T> {
    pub const fn new(read_expire: f64) -> Self {
        ExpectedData { entries: Mutex::new(BTreeMap::new()), read_expire }
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<(IpAddr, u16), Entry<T>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `table[resp_h, resp_p] = value` at network time `now`; what lapsed by then goes first.
    pub fn insert(&self, resp_h: IpAddr, resp_p: u16, value: T, now: f64) {
        let mut entries = self.entries();
        entries.retain(|_, e| now - e.last_access <= self.read_expire);
        entries.insert((resp_h, resp_p), Entry { value, last_access: now });
    }

    /// `table[resp_h, resp_p]` at network time `now`, which refreshes the entry. Lapsed entries go when the table
    /// is written or counted ([`Self::insert`], [`Self::len`]), not here: a data connection's analyzer reads its
    /// entry at its first delivery, which may come after the expiry although the connection started before it (Zeek
    /// reads the entry when the scheduled analyzer is applied).
    pub fn lookup(&self, resp_h: IpAddr, resp_p: u16, now: f64) -> Option<T> {
        let mut entries = self.entries();
        let entry = entries.get_mut(&(resp_h, resp_p))?;
        entry.last_access = now;
        Some(entry.value.clone())
    }

    /// The entry without reading it in the script's sense (no refresh, no lapse).
    pub fn peek(&self, resp_h: IpAddr, resp_p: u16) -> Option<T> {
        self.entries().get(&(resp_h, resp_p)).map(|e| e.value.clone())
    }

    /// `delete table[resp_h, resp_p]`.
    pub fn remove(&self, resp_h: IpAddr, resp_p: u16) -> Option<T> {
        self.entries().remove(&(resp_h, resp_p)).map(|e| e.value)
    }

    /// How many entries there are at network time `now` (`|table|`), what lapsed by then left out.
    pub fn len(&self, now: f64) -> usize {
        let mut entries = self.entries();
        entries.retain(|_, e| now - e.last_access <= self.read_expire);
        entries.len()
    }

    /// Whether any entry's value satisfies `f`.
    pub fn any(&self, f: impl Fn(&T) -> bool) -> bool {
        self.entries().values().any(|e| f(&e.value))
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
}
