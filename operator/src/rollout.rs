//! Role-ordered rollouts.
//!
//! When a change touches the pod templates (configuration, certificates, image), the roles are updated
//! one after the other in [`Role::ROLLOUT_ORDER`] (loggers, manager, proxies, workers), and a role is only
//! updated once every role before it runs the new template and is ready. Until then its workload is left
//! exactly as it is: not even its replica count changes, so nothing restarts out of turn.
//!
//! Workloads that do not exist yet are always created: there is nothing to roll.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};

use crate::build::Workload;
use crate::labels;
use crate::role::Role;

/// What the operator saw of an existing workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedWorkload {
    /// The template hash annotation it was last applied with.
    pub template_hash: Option<String>,
    /// The workload controller has caught up with the spec and every pod is updated and ready.
    pub settled: bool,
}

impl ObservedWorkload {
    pub fn of_stateful_set(sts: &StatefulSet) -> Self {
        let replicas = sts.spec.replicas.unwrap_or(1);
        let settled = sts.status.as_ref().is_some_and(|status| {
            status.observed_generation >= sts.metadata.generation
                && status.replicas == replicas
                && status.ready_replicas.unwrap_or(0) == replicas
                && status.updated_replicas.unwrap_or(0) == replicas
        });
        Self { template_hash: template_hash(&sts.metadata), settled }
    }

    pub fn of_daemon_set(ds: &DaemonSet) -> Self {
        let settled = ds.status.as_ref().is_some_and(|status| {
            let desired = status.desired_number_scheduled;
            status.observed_generation >= ds.metadata.generation
                && status.updated_number_scheduled.unwrap_or(0) == desired
                && status.number_ready == desired
                && status.number_unavailable.unwrap_or(0) == 0
        });
        Self { template_hash: template_hash(&ds.metadata), settled }
    }
}

fn template_hash(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    meta.annotations.as_ref()?.get(labels::TEMPLATE_HASH).cloned()
}

/// Whether a workload is applied in this reconciliation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Apply,
    /// Left as it is until the given role is updated and ready.
    Hold {
        waiting_for: Role,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutPlan {
    /// By workload name.
    pub steps: BTreeMap<String, Step>,
    /// Roles with an existing workload whose template differs from the desired one.
    pub outdated: BTreeSet<Role>,
    /// Outdated roles whose workloads are updated in this reconciliation.
    pub updating: BTreeSet<Role>,
    /// The first role (in rollout order) that is not yet updated and ready.
    pub waiting_for: Option<Role>,
}

impl RolloutPlan {
    pub fn step(&self, workload: &str) -> Step {
        self.steps.get(workload).copied().unwrap_or(Step::Apply)
    }
}

/// Decides which workloads to apply now.
pub fn plan(desired: &[Workload], observed: &BTreeMap<String, ObservedWorkload>) -> RolloutPlan {
    let mut plan = RolloutPlan::default();
    for role in Role::ROLLOUT_ORDER {
        let mut role_done = true;
        for workload in desired.iter().filter(|w| w.role == role) {
            let current = observed.get(&workload.name);
            let outdated = current.is_some_and(|o| o.template_hash.as_deref() != Some(&workload.template_hash));
            if outdated {
                plan.outdated.insert(role);
            }
            let step = match plan.waiting_for {
                Some(waiting_for) if outdated => Step::Hold { waiting_for },
                _ => Step::Apply,
            };
            if outdated && step == Step::Apply {
                plan.updating.insert(role);
            }
            plan.steps.insert(workload.name.clone(), step);
            role_done &= current.is_some_and(|o| o.settled) && !outdated;
        }
        if !role_done && plan.waiting_for.is_none() {
            plan.waiting_for = Some(role);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::WorkloadObject;

    fn workload(role: Role, hash: &str) -> Workload {
        Workload {
            role,
            name: format!("demo-{role}"),
            template_hash: hash.into(),
            object: WorkloadObject::StatefulSet(Box::default()),
        }
    }

    fn desired(hash: &str) -> Vec<Workload> {
        Role::ROLLOUT_ORDER.iter().map(|&role| workload(role, hash)).collect()
    }

    fn observed(states: &[(Role, &str, bool)]) -> BTreeMap<String, ObservedWorkload> {
        states
            .iter()
            .map(|(role, hash, settled)| {
                (format!("demo-{role}"), ObservedWorkload { template_hash: Some(hash.to_string()), settled: *settled })
            })
            .collect()
    }

    #[test]
    fn a_new_cluster_creates_everything_at_once() {
        let plan = plan(&desired("v1"), &BTreeMap::new());
        assert!(plan.steps.values().all(|s| *s == Step::Apply));
        assert_eq!(plan.waiting_for, Some(Role::Logger));
        assert!(plan.outdated.is_empty());
    }

    #[test]
    fn a_settled_cluster_at_the_desired_template_is_done() {
        let all = Role::ROLLOUT_ORDER.map(|r| (r, "v1", true));
        let plan = plan(&desired("v1"), &observed(&all));
        assert_eq!(plan.waiting_for, None);
        assert!(plan.steps.values().all(|s| *s == Step::Apply));
    }

    #[test]
    fn a_change_updates_loggers_first_and_holds_the_rest() {
        let all = Role::ROLLOUT_ORDER.map(|r| (r, "v1", true));
        let plan = plan(&desired("v2"), &observed(&all));
        assert_eq!(plan.step("demo-logger"), Step::Apply);
        for role in [Role::Manager, Role::Proxy, Role::Worker] {
            assert_eq!(plan.step(&format!("demo-{role}")), Step::Hold { waiting_for: Role::Logger });
        }
        assert_eq!(plan.updating, BTreeSet::from([Role::Logger]));
    }

    #[test]
    fn the_next_role_waits_until_the_previous_one_is_ready() {
        let rolling = [
            (Role::Logger, "v2", false),
            (Role::Manager, "v1", true),
            (Role::Proxy, "v1", true),
            (Role::Worker, "v1", true),
        ];
        let plan = plan(&desired("v2"), &observed(&rolling));
        assert_eq!(plan.step("demo-manager"), Step::Hold { waiting_for: Role::Logger });

        let loggers_ready = [
            (Role::Logger, "v2", true),
            (Role::Manager, "v1", true),
            (Role::Proxy, "v1", true),
            (Role::Worker, "v1", true),
        ];
        let plan = super::plan(&desired("v2"), &observed(&loggers_ready));
        assert_eq!(plan.step("demo-manager"), Step::Apply);
        assert_eq!(plan.step("demo-proxy"), Step::Hold { waiting_for: Role::Manager });
        assert_eq!(plan.updating, BTreeSet::from([Role::Manager]));
    }

    #[test]
    fn an_unready_role_at_the_desired_template_still_gates_later_changes() {
        // Proxies are being scaled up (not ready) while the workers' template is outdated.
        let states = [
            (Role::Logger, "v1", true),
            (Role::Manager, "v1", true),
            (Role::Proxy, "v1", false),
            (Role::Worker, "v0", true),
        ];
        let mut wanted = desired("v1");
        wanted[3].template_hash = "v1".into();
        let plan = plan(&wanted, &observed(&states));
        assert_eq!(plan.step("demo-proxy"), Step::Apply, "scaling goes ahead");
        assert_eq!(plan.step("demo-worker"), Step::Hold { waiting_for: Role::Proxy });
    }

    #[test]
    fn observes_stateful_set_readiness() {
        let mut sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-proxy", "generation": 3, "annotations": {"zeek.io/template-hash": "v1"}},
            "spec": {"replicas": 2, "selector": {}, "serviceName": "demo-proxy", "template": {}},
            "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
        }))
        .unwrap();
        assert_eq!(
            ObservedWorkload::of_stateful_set(&sts),
            ObservedWorkload { template_hash: Some("v1".into()), settled: true }
        );
        sts.metadata.generation = Some(4);
        assert!(!ObservedWorkload::of_stateful_set(&sts).settled, "the controller has not seen generation 4");
    }

    #[test]
    fn observes_daemon_set_readiness() {
        let ds: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-worker", "generation": 1},
            "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                       "numberMisscheduled": 0, "numberReady": 2, "updatedNumberScheduled": 3, "numberUnavailable": 1}
        }))
        .unwrap();
        assert_eq!(ObservedWorkload::of_daemon_set(&ds), ObservedWorkload { template_hash: None, settled: false });
    }
}
