//! Every Kubernetes API permission the operator needs, in one place.
//!
//! This list is the single source for the Helm chart's RBAC: `operator/tests/chart.rs` renders the chart
//! and fails unless the roles bound to the operator's ServiceAccount grant exactly these (group, resource,
//! verb) triples, in the right scope, and nothing more. The end-to-end scenario (`e2e/scenario.sh`) runs
//! the operator with that ServiceAccount's token, which proves the list is sufficient. A new API call in
//! the operator needs a line here first; each line names the code that makes the calls.

/// Where a permission must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Namespaces whose ZeekClusters are reconciled: every namespace, or only `--watch-namespace`.
    Watched,
    /// Cluster-scoped, and only with `--install-crd` (the operator applies its own CRD at start).
    CrdInstall,
    /// The leader Lease's namespace (the operator's own), and only with `--leader-election`.
    LeaderLease,
}

/// Verbs on one resource of one API group (`""` is the core group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
}

const fn permission(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    scope: Scope,
) -> Permission {
    Permission { group, resource, verbs, scope }
}

/// Verbs of a watched cache (`kube::runtime::watcher`): an initial list, then a watch.
const WATCH: &[&str] = &["list", "watch"];
/// An owned kind: watched by the controller, read on each reconciliation and server-side applied. An apply
/// patch that creates the object is authorized as a `create` too.
const OWNED: &[&str] = &["list", "watch", "create", "patch"];

pub const RBAC: &[Permission] = &[
    // crd_install.rs: server-side apply of the CRD, then wait (a watch) until it is Established. No `create`:
    // it cannot be limited to one CRD, and the chart installs the CRD before the operator starts, so the apply
    // only updates it (without the CRD the operator stops at start with a `forbidden` error that says so).
    permission("apiextensions.k8s.io", "customresourcedefinitions", &["list", "watch", "patch"], Scope::CrdInstall),
    // controller.rs: the ZeekCluster watch; reconcile/apply.rs and reconcile/mod.rs: status patches.
    permission("zeek.io", "zeekclusters", WATCH, Scope::Watched),
    permission("zeek.io", "zeekclusters/status", &["patch"], Scope::Watched),
    // controller.rs owns these; reconcile/dereference.rs lists them; reconcile/apply.rs applies them.
    permission("apps", "statefulsets", OWNED, Scope::Watched),
    // reconcile/apply.rs also deletes worker DaemonSets no capture group needs any more.
    permission("apps", "daemonsets", &["list", "watch", "create", "patch", "delete"], Scope::Watched),
    permission("", "services", OWNED, Scope::Watched),
    permission("policy", "poddisruptionbudgets", OWNED, Scope::Watched),
    // reconcile/dereference.rs reads the TLS Secret and the intel ConfigMaps by name.
    permission("", "configmaps", &["get", "list", "watch", "create", "patch"], Scope::Watched),
    permission("", "secrets", &["get", "list", "watch", "create", "patch"], Scope::Watched),
    // reconcile/dereference.rs: worker pods, for the capture state in the status.
    permission("", "pods", &["list"], Scope::Watched),
    // context.rs: kube's event Recorder creates an Event, then patches it when the same event repeats.
    permission("events.k8s.io", "events", &["create", "patch"], Scope::Watched),
    // leader.rs: kube-lease-manager reads the Lease, creates it when missing and patches it to take or renew it.
    permission("coordination.k8s.io", "leases", &["get", "create", "patch"], Scope::LeaderLease),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn each_resource_is_listed_once_with_distinct_verbs() {
        let mut resources = BTreeSet::new();
        for p in RBAC {
            assert!(resources.insert((p.group, p.resource)), "{}/{} listed twice", p.group, p.resource);
            let verbs: BTreeSet<_> = p.verbs.iter().collect();
            assert_eq!(verbs.len(), p.verbs.len(), "{}: repeated verb", p.resource);
            assert!(!p.verbs.contains(&"*"), "{}: wildcards are not least privilege", p.resource);
        }
    }
}
