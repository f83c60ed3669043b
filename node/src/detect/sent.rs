//! A worker's memory of what it already sent to the proxies, as Zeek's known-* scripts keep one on each worker in
//! cluster mode (`Known::hosts`, `Known::services`, `Known::certs` with `&create_expire`): a key found again before
//! its entry lapses is not sent again, so a host seen in a million connections costs one message a day, not a
//! million. The proxies' state moves with its keys when proxies come and go, so the memory need not be dropped then,
//! as Zeek's workers drop theirs.

use std::collections::HashMap;
use std::hash::Hash;

/// Keys with the time their suppression lapses (fixed when the key is put in: create-expiry). Lapsed keys are
/// purged when the table has doubled since the last purge, so neither a lookup nor a second of network time walks
/// the table.
#[derive(Debug)]
pub struct SentKeys<K> {
    until: HashMap<K, f64>,
    purge_at: usize,
}

impl<K: Eq + Hash> Default for SentKeys<K> {
    fn default() -> Self {
        SentKeys { until: HashMap::new(), purge_at: Self::MIN_PURGE }
    }
}

impl<K: Eq + Hash> SentKeys<K> {
    /// No purge below this many keys.
    const MIN_PURGE: usize = 1024;

    /// Whether `key` must be sent at `now`: true (and remembered until `now + expiry`) unless it was sent and its
    /// entry has not lapsed.
    pub fn first_send(&mut self, key: K, now: f64, expiry: f64) -> bool {
        if self.until.get(&key).is_some_and(|until| *until > now) {
            return false;
        }
        self.until.insert(key, now + expiry);
        if self.until.len() >= self.purge_at {
            self.until.retain(|_, until| *until > now);
            self.purge_at = (2 * self.until.len()).max(Self::MIN_PURGE);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_sent_once_per_expiry_from_its_first_send() {
        let mut sent = SentKeys::default();
        assert!(sent.first_send("10.0.0.1", 0.0, 100.0));
        assert!(!sent.first_send("10.0.0.1", 50.0, 100.0));
        assert!(!sent.first_send("10.0.0.1", 99.9, 100.0), "create-expiry: the resend at 50 did not extend it");
        assert!(sent.first_send("10.0.0.1", 100.0, 100.0));
        assert!(!sent.first_send("10.0.0.1", 150.0, 100.0));
        assert!(sent.first_send("10.0.0.2", 150.0, 100.0));
    }

    #[test]
    fn lapsed_keys_are_purged_when_the_table_doubles() {
        let mut sent = SentKeys::default();
        for k in 0..1023u32 {
            assert!(sent.first_send(k, f64::from(k), 10.0));
        }
        assert_eq!(sent.len(), 1023);
        // The 1024th key triggers a purge at its time: only the ten keys of the last ten seconds are still held.
        assert!(sent.first_send(5000, 1023.0, 10.0));
        assert_eq!(sent.len(), 10);
        for k in 0..2000u32 {
            sent.first_send(10_000 + k, 2000.0, 1e9);
        }
        assert!(sent.len() <= 2010 && sent.len() >= 2000, "{}", sent.len());
    }
}
