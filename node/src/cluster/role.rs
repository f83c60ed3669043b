//! The four node roles (DESIGN.md §1).

use std::fmt;
use std::str::FromStr;

use super::proto::pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Logger,
    Proxy,
    Worker,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Manager, Role::Logger, Role::Proxy, Role::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Logger => "logger",
            Role::Proxy => "proxy",
            Role::Worker => "worker",
        }
    }

    pub fn to_pb(self) -> pb::Role {
        match self {
            Role::Manager => pb::Role::Manager,
            Role::Logger => pb::Role::Logger,
            Role::Proxy => pb::Role::Proxy,
            Role::Worker => pb::Role::Worker,
        }
    }

    pub fn from_pb(r: i32) -> Option<Role> {
        match pb::Role::try_from(r).ok()? {
            pb::Role::Manager => Some(Role::Manager),
            pb::Role::Logger => Some(Role::Logger),
            pb::Role::Proxy => Some(Role::Proxy),
            pb::Role::Worker => Some(Role::Worker),
            pb::Role::Unspecified | pb::Role::Control => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role '{0}' (manager, logger, proxy or worker)")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_string()))
    }
}
