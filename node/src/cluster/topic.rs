//! Topics and prefix subscriptions, with Zeek's names (DESIGN.md §1) so the mental model carries over.
//!
//! A subscription is a string prefix; a publish reaches every subscriber with a matching prefix. Node topics end
//! in `/` so that subscribing to `logger-1`'s topic never matches `logger-10`'s.

use super::role::Role;

pub const MANAGER: &str = "zeek/cluster/manager";
pub const LOGGER: &str = "zeek/cluster/logger";
pub const PROXY: &str = "zeek/cluster/proxy";
pub const WORKER: &str = "zeek/cluster/worker";

/// The topic every node of `role` subscribes to.
pub fn role_topic(role: Role) -> &'static str {
    match role {
        Role::Manager => MANAGER,
        Role::Logger => LOGGER,
        Role::Proxy => PROXY,
        Role::Worker => WORKER,
    }
}

/// The topic of one node: `zeek/cluster/node/<name>/`.
pub fn node_topic(name: &str) -> String {
    format!("zeek/cluster/node/{name}/")
}

/// The topic of a role's pool: `zeek/cluster/pool/<role>`.
pub fn pool_topic(role: Role) -> String {
    format!("zeek/cluster/pool/{role}")
}

/// What a node subscribes to on its own: its role, its node topic and its pool.
pub fn default_subscriptions(name: &str, role: Role) -> Vec<String> {
    vec![role_topic(role).to_string(), node_topic(name), pool_topic(role)]
}

/// A set of topic prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    prefixes: Vec<String>,
}

impl Subscriptions {
    pub fn new<I, S>(prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut s = Subscriptions::default();
        for p in prefixes {
            s.add(p.into());
        }
        s
    }

    /// Adds a prefix; returns false if it was already there.
    pub fn add(&mut self, prefix: String) -> bool {
        if prefix.is_empty() || self.prefixes.contains(&prefix) {
            return false;
        }
        self.prefixes.push(prefix);
        true
    }

    pub fn remove(&mut self, prefix: &str) -> bool {
        let before = self.prefixes.len();
        self.prefixes.retain(|p| p != prefix);
        before != self.prefixes.len()
    }

    pub fn matches(&self, topic: &str) -> bool {
        matches_any(&self.prefixes, topic)
    }

    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }
}

/// Whether any prefix matches `topic`. An empty prefix matches nothing: there is no cluster-wide broadcast topic.
pub fn matches_any<S: AsRef<str>>(prefixes: &[S], topic: &str) -> bool {
    prefixes.iter().any(|p| !p.as_ref().is_empty() && topic.starts_with(p.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_topics_do_not_leak_between_similar_names() {
        let w1 = Subscriptions::new(default_subscriptions("worker-1", Role::Worker));
        assert!(w1.matches(&node_topic("worker-1")));
        assert!(!w1.matches(&node_topic("worker-10")));
        assert!(w1.matches("zeek/cluster/worker"));
        assert!(w1.matches("zeek/cluster/worker/intel"));
        assert!(!w1.matches("zeek/cluster/manager"));
    }

    #[test]
    fn empty_prefix_is_not_a_broadcast() {
        let mut s = Subscriptions::default();
        assert!(!s.add(String::new()));
        assert!(!s.matches("anything"));
        assert!(s.add("a/".into()));
        assert!(!s.add("a/".into()));
        assert!(s.remove("a/"));
        assert!(!s.matches("a/b"));
    }
}
