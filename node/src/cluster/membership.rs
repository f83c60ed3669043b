//! Membership views: the manager orders joins and leaves into numbered views (epochs) and pushes each new view to
//! every node; nodes route with the newest view they have (DESIGN.md §2).

use std::collections::{BTreeMap, BTreeSet};

use super::proto::pb;
use super::role::Role;
use super::topic;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: Role,
    /// `host:port` to dial, empty when the node takes no connections.
    pub advertise: String,
    pub subscriptions: Vec<String>,
}

impl Member {
    pub fn to_pb(&self) -> pb::Member {
        pb::Member {
            name: self.name.clone(),
            role: self.role.to_pb() as i32,
            advertise: self.advertise.clone(),
            subscriptions: self.subscriptions.clone(),
        }
    }

    pub fn from_pb(m: pb::Member) -> Option<Member> {
        Some(Member {
            role: Role::from_pb(m.role)?,
            name: m.name,
            advertise: m.advertise,
            subscriptions: m.subscriptions,
        })
    }

    pub fn subscribed(&self, topic_name: &str) -> bool {
        topic::matches_any(&self.subscriptions, topic_name)
    }
}

/// One numbered membership view. Members are sorted by name, so pools built from a view are the same everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub epoch: u64,
    pub members: Vec<Member>,
    pub ready: bool,
}

impl View {
    pub fn to_pb(&self) -> pb::View {
        pb::View { epoch: self.epoch, members: self.members.iter().map(Member::to_pb).collect(), ready: self.ready }
    }

    pub fn from_pb(v: pb::View) -> View {
        let mut members: Vec<Member> = v.members.into_iter().filter_map(Member::from_pb).collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members.dedup_by(|a, b| a.name == b.name);
        View { epoch: v.epoch, members, ready: v.ready }
    }

    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The names of a role's pool, sorted.
    pub fn pool(&self, role: Role) -> Vec<&str> {
        self.members.iter().filter(|m| m.role == role).map(|m| m.name.as_str()).collect()
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.members.iter().any(|m| m.role == role)
    }
}

/// The manager's side: the one authority that numbers views.
#[derive(Debug)]
pub struct Authority {
    epoch: u64,
    members: BTreeMap<String, Member>,
    /// The nodes the layout lists: the readiness barrier waits until each has joined once.
    expected: BTreeSet<String>,
    joined_once: BTreeSet<String>,
    ready: bool,
}

impl Authority {
    pub fn new(manager: Member, expected: impl IntoIterator<Item = String>) -> Authority {
        let mut a = Authority {
            epoch: 0,
            members: BTreeMap::new(),
            expected: expected.into_iter().filter(|n| *n != manager.name).collect(),
            joined_once: BTreeSet::new(),
            ready: false,
        };
        a.members.insert(manager.name.clone(), manager);
        a.update_ready();
        a
    }

    fn update_ready(&mut self) {
        if !self.ready && self.expected.iter().all(|n| self.joined_once.contains(n)) {
            self.ready = true;
        }
    }

    /// A restarted manager continues numbering after the newest epoch any node reports, so views only go forward.
    pub fn observe_epoch(&mut self, epoch: u64) {
        self.epoch = self.epoch.max(epoch);
    }

    /// A cluster that ran before this manager started is past its barrier already.
    pub fn mark_ready(&mut self) {
        self.ready = true;
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// A node joined (or re-joined with new details). Returns the next view.
    pub fn join(&mut self, member: Member) -> View {
        self.joined_once.insert(member.name.clone());
        self.members.insert(member.name.clone(), member);
        self.update_ready();
        self.next_view()
    }

    /// A node left or died. Returns the next view, or `None` if it was not a member.
    pub fn leave(&mut self, name: &str) -> Option<View> {
        self.members.remove(name)?;
        Some(self.next_view())
    }

    /// A member changed its subscriptions. Returns the next view if anything changed.
    pub fn resubscribe(&mut self, name: &str, subscriptions: Vec<String>) -> Option<View> {
        let m = self.members.get_mut(name)?;
        if m.subscriptions == subscriptions {
            return None;
        }
        m.subscriptions = subscriptions;
        Some(self.next_view())
    }

    pub fn is_member(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// A new number for the current membership.
    pub fn next_view(&mut self) -> View {
        self.epoch += 1;
        self.current()
    }

    /// The current view, without a new number.
    pub fn current(&self) -> View {
        View { epoch: self.epoch, members: self.members.values().cloned().collect(), ready: self.ready }
    }

    /// Nodes the layout lists that have not joined yet.
    pub fn missing(&self) -> Vec<String> {
        self.expected.iter().filter(|n| !self.members.contains_key(*n)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: Role) -> Member {
        Member {
            name: name.into(),
            role,
            advertise: format!("127.0.0.1:{}", name.len()),
            subscriptions: topic::default_subscriptions(name, role),
        }
    }

    #[test]
    fn views_are_numbered_and_sorted() {
        let mut a = Authority::new(member("manager", Role::Manager), ["proxy-2".into(), "proxy-1".into()]);
        assert!(!a.is_ready());
        let v1 = a.join(member("proxy-2", Role::Proxy));
        assert_eq!(v1.epoch, 1);
        assert!(!v1.ready);
        let v2 = a.join(member("proxy-1", Role::Proxy));
        assert_eq!(v2.epoch, 2);
        assert!(v2.ready);
        assert_eq!(v2.pool(Role::Proxy), ["proxy-1", "proxy-2"]);
        let v3 = a.leave("proxy-2").unwrap();
        assert_eq!(v3.epoch, 3);
        assert!(v3.ready, "the barrier latches");
        assert!(a.leave("proxy-2").is_none());
        assert_eq!(a.missing(), ["proxy-2"]);
        assert_eq!(View::from_pb(v3.to_pb()), v3);
    }

    #[test]
    fn a_restarted_manager_continues_the_numbering() {
        let mut a = Authority::new(member("manager", Role::Manager), []);
        assert!(a.is_ready());
        a.observe_epoch(41);
        assert_eq!(a.join(member("worker-1", Role::Worker)).epoch, 42);
        a.observe_epoch(7);
        assert_eq!(a.join(member("worker-2", Role::Worker)).epoch, 43);
        assert!(a.resubscribe("worker-2", vec!["x".into()]).is_some());
        assert!(a.resubscribe("worker-2", vec!["x".into()]).is_none());
    }
}
