//! The four node roles and what the operator needs to know about each.

use std::fmt;

/// A node role of a Zeek cluster (DESIGN.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Manager,
    Logger,
    Proxy,
    Worker,
}

impl Role {
    /// The order in which a configuration or image change rolls through the roles: loggers first, so that
    /// nothing logs into a logger that is about to restart with an older configuration; then the manager,
    /// which orders membership; then proxies; workers, which capture, last.
    pub const ROLLOUT_ORDER: [Role; 4] = [Role::Logger, Role::Manager, Role::Proxy, Role::Worker];

    /// The role's name as the node's `--role` flag, the layout and the labels spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manager => "manager",
            Self::Logger => "logger",
            Self::Proxy => "proxy",
            Self::Worker => "worker",
        }
    }

    /// Plural, for messages.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Manager => "manager",
            Self::Logger => "loggers",
            Self::Proxy => "proxies",
            Self::Worker => "workers",
        }
    }

    /// The cluster port of pods of this role (workers have a configurable port: they share the host's
    /// network namespace).
    pub fn default_port(self) -> i32 {
        match self {
            Self::Manager => 47760,
            Self::Logger => 47761,
            Self::Proxy => 47762,
            Self::Worker => zeek_crds::v1alpha1::DEFAULT_WORKER_PORT,
        }
    }

    /// Roles that run as a StatefulSet behind a headless Service (stable DNS names).
    pub fn has_stable_identity(self) -> bool {
        !matches!(self, Self::Worker)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
