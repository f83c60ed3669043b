//! Pools: publish_hrw (a key always lands on the same member of the newest view) and publish_rr (spread work, one
//! cursor per key, skipping members that are down).

use std::collections::HashMap;

use super::hrw::{self, PoolKey};
use super::role::Role;

/// Why a publish reached nobody. Every case is also counted in `zeek_publish_errors_total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the {0} pool has no live member")]
    EmptyPool(Role),
    #[error("{0} cannot be reached (no link to it or to the manager)")]
    Unreachable(String),
    #[error("the send queue to {0} is full")]
    QueueFull(String),
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl PublishError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::EmptyPool(_) => "empty_pool",
            PublishError::Unreachable(_) => "unreachable",
            PublishError::QueueFull(_) => "queue_full",
            PublishError::ShuttingDown => "shutting_down",
        }
    }
}

/// The member of a pool that owns `key`.
pub fn hrw_owner<'a>(members: Vec<&'a str>, pool: Role, key: &PoolKey) -> Result<&'a str, PublishError> {
    hrw::owner(members, key).ok_or(PublishError::EmptyPool(pool))
}

/// Round-robin cursors, one per key, so independent uses do not disturb each other's sequence.
#[derive(Debug, Default)]
pub struct RoundRobin {
    cursors: HashMap<String, usize>,
}

impl RoundRobin {
    /// The next member of `members` for `key`. Members for which `usable` is false are skipped; if none is usable,
    /// the next member is returned anyway (the caller can still reach it through the manager).
    pub fn next<'a>(&mut self, key: &str, members: &[&'a str], usable: impl Fn(&str) -> bool) -> Option<&'a str> {
        if members.is_empty() {
            return None;
        }
        let cursor = self.cursors.entry(key.to_string()).or_insert(0);
        let start = *cursor % members.len();
        let pick =
            (0..members.len()).map(|i| (start + i) % members.len()).find(|i| usable(members[*i])).unwrap_or(start);
        *cursor = pick + 1;
        Some(members[pick])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_per_key_and_skips_dead() {
        let mut rr = RoundRobin::default();
        let m = ["a", "b", "c"];
        let picks: Vec<_> = (0..4).map(|_| rr.next("k", &m, |_| true).unwrap()).collect();
        assert_eq!(picks, ["a", "b", "c", "a"]);
        assert_eq!(rr.next("other", &m, |_| true), Some("a"), "each key has its own cursor");
        let picks: Vec<_> = (0..3).map(|_| rr.next("k", &m, |n| n != "c").unwrap()).collect();
        assert_eq!(picks, ["b", "a", "b"]);
        assert_eq!(rr.next("k", &[], |_| true), None);
    }

    #[test]
    fn empty_pool_is_an_error() {
        assert_eq!(hrw_owner(vec![], Role::Proxy, &PoolKey::count(1)), Err(PublishError::EmptyPool(Role::Proxy)));
        assert_eq!(hrw_owner(vec!["proxy-1", "proxy-2"], Role::Proxy, &PoolKey::count(0)), Ok("proxy-2"));
    }
}
