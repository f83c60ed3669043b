//! What the operator reports in `ZeekCluster.status`: pod counts per role, worker capture state and the
//! four standard conditions. Pure functions of what was observed.

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use zeek_crds::v1alpha1::{CaptureState, ConditionType, RoleStatus, WorkerCapture, upsert_condition};

use crate::labels;
use crate::role::Role;
use crate::rollout::RolloutPlan;

/// Pod counts of the four roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleStatuses {
    pub manager: RoleStatus,
    pub loggers: RoleStatus,
    pub proxies: RoleStatus,
    pub workers: RoleStatus,
}

impl RoleStatuses {
    pub fn get(&self, role: Role) -> &RoleStatus {
        match role {
            Role::Manager => &self.manager,
            Role::Logger => &self.loggers,
            Role::Proxy => &self.proxies,
            Role::Worker => &self.workers,
        }
    }

    pub fn get_mut(&mut self, role: Role) -> &mut RoleStatus {
        match role {
            Role::Manager => &mut self.manager,
            Role::Logger => &mut self.loggers,
            Role::Proxy => &mut self.proxies,
            Role::Worker => &mut self.workers,
        }
    }

    fn all_complete(&self) -> bool {
        Role::ROLLOUT_ORDER.iter().all(|&role| self.get(role).is_complete())
    }

    fn any_pods(&self) -> bool {
        Role::ROLLOUT_ORDER.iter().any(|&role| self.get(role).current > 0)
    }

    /// e.g. `manager 1/1, loggers 2/2, proxies 3/4, workers 5/5 ready`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [Role::Manager, Role::Logger, Role::Proxy, Role::Worker]
            .iter()
            .map(|&role| {
                let s = self.get(role);
                format!("{} {}/{}", role.plural(), s.ready, s.desired)
            })
            .collect();
        format!("{} ready", parts.join(", "))
    }
}

/// Counts of a StatefulSet role. `desired` comes from the spec (the StatefulSet may be held back by a
/// rollout); pods count as updated only when the StatefulSet runs the desired template.
pub fn stateful_set_status(sts: Option<&StatefulSet>, desired: i32, desired_template: &str) -> RoleStatus {
    let Some(sts) = sts else {
        return RoleStatus { desired, ..Default::default() };
    };
    let status = sts.status.clone().unwrap_or_default();
    let current_template = runs_template(&sts.metadata, desired_template);
    RoleStatus {
        desired,
        current: status.replicas,
        ready: status.ready_replicas.unwrap_or(0),
        updated: if current_template { status.updated_replicas.unwrap_or(0) } else { 0 },
    }
}

/// Counts of the workers over all their DaemonSets, each with its desired template hash.
pub fn daemon_sets_status<'a>(daemon_sets: impl IntoIterator<Item = (&'a DaemonSet, &'a str)>) -> RoleStatus {
    let mut total = RoleStatus::default();
    for (ds, desired_template) in daemon_sets {
        let status = ds.status.clone().unwrap_or_default();
        total.desired += status.desired_number_scheduled;
        total.current += status.current_number_scheduled;
        total.ready += status.number_ready;
        if runs_template(&ds.metadata, desired_template) {
            total.updated += status.updated_number_scheduled.unwrap_or(0);
        }
    }
    total
}

fn runs_template(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, hash: &str) -> bool {
    meta.annotations.as_ref().and_then(|a| a.get(labels::TEMPLATE_HASH)).is_some_and(|h| h == hash)
}

/// What each worker pod captures on, sorted by node:
/// - `Capturing` once the pod is ready (the worker joined the cluster and opened its capture);
/// - `Failed` when the node stopped on an error, with its last words (a wrong interface name, a CPU list for
///   another machine), also while the kubelet backs off restarting it;
/// - `Pending` otherwise: not scheduled yet (with the scheduler's reason, e.g. its ports taken on that node), or
///   starting (the image being pulled, the container created).
pub fn captures(worker_pods: &[Pod]) -> Vec<WorkerCapture> {
    let mut captures: Vec<WorkerCapture> = worker_pods
        .iter()
        .filter_map(|pod| {
            let spec = pod.spec.as_ref()?;
            let node_name = spec.node_name.clone().or_else(|| daemon_set_node(pod))?;
            let interface = pod.metadata.annotations.as_ref()?.get(labels::CAPTURE_INTERFACE)?.clone();
            let status = pod.status.as_ref();
            let condition = |type_: &str| {
                status.and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == type_))
            };
            let ready = condition("Ready").is_some_and(|c| c.status == "True");
            let unscheduled = condition("PodScheduled").filter(|c| c.status == "False");
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
            let (state, message) = if ready {
                (CaptureState::Capturing, None)
            } else if phase == "Failed" {
                (CaptureState::Failed, status.and_then(|s| s.message.clone()))
            } else if let Some(stopped) = last_failure(pod) {
                (CaptureState::Failed, Some(stopped))
            } else if let Some(c) = unscheduled {
                (CaptureState::Pending, Some(format!("not scheduled: {}", c.message.as_deref().unwrap_or("-"))))
            } else {
                (CaptureState::Pending, waiting_reason(pod))
            };
            Some(WorkerCapture { node_name, pod: pod.metadata.name.clone()?, interface, state, message })
        })
        .collect();
    captures.sort_by(|a, b| a.node_name.cmp(&b.node_name));
    captures
}

/// The node a DaemonSet pod is meant for before it is scheduled: the DaemonSet controller pins each pod to its
/// node by a required node affinity on `metadata.name`.
fn daemon_set_node(pod: &Pod) -> Option<String> {
    let required = pod.spec.as_ref()?.affinity.as_ref()?.node_affinity.as_ref()?;
    let terms = &required.required_during_scheduling_ignored_during_execution.as_ref()?.node_selector_terms;
    terms.iter().flat_map(|t| t.match_fields.iter().flatten()).find_map(|r| {
        (r.key == "metadata.name" && r.operator == "In").then(|| r.values.as_ref()?.first().cloned()).flatten()
    })
}

/// Why the node's container last stopped with an error, while it is not running: its termination message (the
/// node's error, or its last log lines), else its exit code.
fn last_failure(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|cs| {
        if cs.state.as_ref().is_some_and(|s| s.running.is_some()) {
            return None;
        }
        let stopped = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
        let stopped = stopped.or_else(|| cs.last_state.as_ref()?.terminated.as_ref())?;
        if stopped.exit_code == 0 {
            return None;
        }
        let said = stopped.message.as_deref().and_then(|m| m.lines().rev().find(|l| !l.trim().is_empty()));
        Some(match said {
            Some(line) => truncate(line.trim().to_string(), MAX_CAPTURE_MESSAGE),
            None => {
                format!("exited with code {} ({})", stopped.exit_code, stopped.reason.as_deref().unwrap_or("Error"))
            }
        })
    })
}

/// A capture's message stays readable in `kubectl get -o yaml`: the termination message may be a page of logs.
const MAX_CAPTURE_MESSAGE: usize = 512;

/// `message` cut to at most `limit` bytes (at a character boundary) and marked as cut.
pub fn truncate(mut message: String, limit: usize) -> String {
    if message.len() > limit {
        let mut end = limit;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|cs| {
        let waiting = cs.state.as_ref()?.waiting.as_ref()?;
        Some(match &waiting.message {
            Some(message) => format!("{}: {message}", waiting.reason.as_deref().unwrap_or("Waiting")),
            None => waiting.reason.clone().unwrap_or_else(|| "Waiting".into()),
        })
    })
}

/// How a reconciliation ended, as far as the conditions are concerned.
#[derive(Clone, Debug)]
pub enum Outcome<'a> {
    /// `spec.paused`: nothing was touched.
    Paused,
    /// The spec cannot be realised; nothing was touched.
    Invalid(&'a str),
    /// An API call or certificate operation failed midway.
    Failed(&'a str),
    /// Everything the rollout allows was applied.
    Reconciled { roles: &'a RoleStatuses, plan: &'a RolloutPlan, stopped: bool },
}

/// The conditions after `outcome`, starting from the previous ones (transition times are kept for
/// conditions whose status did not change).
pub fn conditions(
    previous: &[Condition],
    generation: Option<i64>,
    outcome: &Outcome<'_>,
    now: &Time,
) -> Vec<Condition> {
    let mut conditions = previous.to_vec();
    let mut set = |type_: ConditionType, status: bool, reason: &str, message: String| {
        let condition = Condition {
            type_: type_.as_str().into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        };
        upsert_condition(&mut conditions, condition);
    };
    match outcome {
        Outcome::Paused => {
            set(ConditionType::Paused, true, "Paused", "spec.paused is true: the operator changes nothing".into());
        }
        Outcome::Invalid(message) => {
            set(ConditionType::Ready, false, "InvalidSpec", message.to_string());
            set(ConditionType::Progressing, false, "InvalidSpec", "nothing is changed until the spec is fixed".into());
            set(ConditionType::Degraded, true, "InvalidSpec", message.to_string());
            set(ConditionType::Paused, false, "Reconciling", String::new());
        }
        Outcome::Failed(message) => {
            set(ConditionType::Degraded, true, "ReconcileError", message.to_string());
            set(ConditionType::Paused, false, "Reconciling", String::new());
        }
        Outcome::Reconciled { roles, stopped: true, .. } => {
            let stopping = roles.any_pods();
            set(ConditionType::Ready, false, "Stopped", "spec.stopped is true".into());
            set(ConditionType::Progressing, stopping, if stopping { "Stopping" } else { "Stopped" }, roles.summary());
            set(ConditionType::Degraded, false, "AsExpected", String::new());
            set(ConditionType::Paused, false, "Reconciling", String::new());
        }
        Outcome::Reconciled { roles, plan, stopped: false } => {
            let done = roles.all_complete() && plan.waiting_for.is_none();
            let summary = roles.summary();
            set(ConditionType::Ready, done, if done { "AllNodesReady" } else { "NodesNotReady" }, summary.clone());
            let (reason, message) = match (done, plan.outdated.is_empty(), plan.waiting_for) {
                (true, _, _) => ("Complete", summary),
                (false, false, Some(waiting_for)) => {
                    let outdated: Vec<&str> =
                        Role::ROLLOUT_ORDER.iter().filter(|r| plan.outdated.contains(r)).map(|r| r.plural()).collect();
                    (
                        "RollingOut",
                        format!(
                            "updating {} in role order; waiting for {} to be updated and ready",
                            outdated.join(", "),
                            waiting_for.plural()
                        ),
                    )
                }
                (false, _, _) => ("WaitingForPods", summary),
            };
            set(ConditionType::Progressing, !done, reason, message);
            set(ConditionType::Degraded, false, "AsExpected", String::new());
            set(ConditionType::Paused, false, "Reconciling", String::new());
        }
    }
    conditions.sort_by_key(|c| ConditionType::ALL.iter().position(|t| t.as_str() == c.type_));
    conditions
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    fn complete(n: i32) -> RoleStatus {
        RoleStatus { desired: n, current: n, ready: n, updated: n }
    }

    fn healthy() -> RoleStatuses {
        RoleStatuses { manager: complete(1), loggers: complete(2), proxies: complete(3), workers: complete(4) }
    }

    fn find(conditions: &[Condition], type_: ConditionType) -> &Condition {
        conditions.iter().find(|c| c.type_ == type_.as_str()).expect("condition present")
    }

    #[test]
    fn a_complete_cluster_is_ready_and_not_progressing() {
        let roles = healthy();
        let plan = RolloutPlan::default();
        let conditions =
            conditions(&[], Some(3), &Outcome::Reconciled { roles: &roles, plan: &plan, stopped: false }, &at(10));
        assert_eq!(
            conditions.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Ready", "Progressing", "Degraded", "Paused"]
        );
        assert_eq!(find(&conditions, ConditionType::Ready).status, "True");
        assert_eq!(
            find(&conditions, ConditionType::Ready).message,
            "manager 1/1, loggers 2/2, proxies 3/3, workers 4/4 ready"
        );
        assert_eq!(find(&conditions, ConditionType::Progressing).status, "False");
        assert_eq!(find(&conditions, ConditionType::Degraded).status, "False");
        assert!(conditions.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn a_rollout_is_progressing_with_the_role_it_waits_for() {
        let mut roles = healthy();
        roles.loggers.updated = 1;
        let plan = RolloutPlan {
            outdated: BTreeSet::from([Role::Logger, Role::Worker]),
            waiting_for: Some(Role::Logger),
            ..Default::default()
        };
        let conditions =
            conditions(&[], Some(4), &Outcome::Reconciled { roles: &roles, plan: &plan, stopped: false }, &at(10));
        assert_eq!(find(&conditions, ConditionType::Ready).status, "False");
        let progressing = find(&conditions, ConditionType::Progressing);
        assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "RollingOut"));
        assert_eq!(
            progressing.message,
            "updating loggers, workers in role order; waiting for loggers to be updated and ready"
        );
    }

    #[test]
    fn an_invalid_spec_is_degraded_and_keeps_transition_times_while_it_stays_invalid() {
        let first = conditions(&[], Some(1), &Outcome::Invalid("intel ConfigMap feed not found"), &at(10));
        assert_eq!(find(&first, ConditionType::Degraded).status, "True");
        assert_eq!(find(&first, ConditionType::Degraded).reason, "InvalidSpec");
        let second = conditions(&first, Some(2), &Outcome::Invalid("still missing"), &at(20));
        assert_eq!(find(&second, ConditionType::Degraded).last_transition_time, at(10));
        assert_eq!(find(&second, ConditionType::Degraded).message, "still missing");
        assert_eq!(find(&second, ConditionType::Degraded).observed_generation, Some(2));
    }

    #[test]
    fn pausing_only_sets_paused() {
        let roles = healthy();
        let plan = RolloutPlan::default();
        let before =
            conditions(&[], Some(1), &Outcome::Reconciled { roles: &roles, plan: &plan, stopped: false }, &at(10));
        let paused = conditions(&before, Some(2), &Outcome::Paused, &at(20));
        assert_eq!(find(&paused, ConditionType::Paused).status, "True");
        assert_eq!(find(&paused, ConditionType::Ready), find(&before, ConditionType::Ready));
    }

    #[test]
    fn a_stopped_cluster_is_not_ready_and_progresses_until_pods_are_gone() {
        let mut roles = RoleStatuses::default();
        roles.proxies.current = 1;
        let plan = RolloutPlan::default();
        let stopping =
            conditions(&[], Some(1), &Outcome::Reconciled { roles: &roles, plan: &plan, stopped: true }, &at(10));
        assert_eq!(find(&stopping, ConditionType::Ready).reason, "Stopped");
        assert_eq!(find(&stopping, ConditionType::Progressing).reason, "Stopping");
        let stopped = conditions(
            &stopping,
            Some(1),
            &Outcome::Reconciled { roles: &RoleStatuses::default(), plan: &plan, stopped: true },
            &at(20),
        );
        assert_eq!(find(&stopped, ConditionType::Progressing).status, "False");
    }

    #[test]
    fn an_api_failure_marks_degraded_without_touching_readiness() {
        let roles = healthy();
        let plan = RolloutPlan::default();
        let before =
            conditions(&[], Some(1), &Outcome::Reconciled { roles: &roles, plan: &plan, stopped: false }, &at(10));
        let failed = conditions(&before, Some(1), &Outcome::Failed("apply StatefulSet demo-proxy: forbidden"), &at(20));
        assert_eq!(find(&failed, ConditionType::Degraded).status, "True");
        assert_eq!(find(&failed, ConditionType::Ready).status, "True");
    }

    #[test]
    fn stateful_set_pods_count_as_updated_only_at_the_desired_template() {
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-proxy", "annotations": {"zeek.io/template-hash": "old"}},
            "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
        }))
        .unwrap();
        assert_eq!(
            stateful_set_status(Some(&sts), 4, "old"),
            RoleStatus { desired: 4, current: 2, ready: 2, updated: 2 }
        );
        assert_eq!(stateful_set_status(Some(&sts), 4, "new").updated, 0);
        assert_eq!(stateful_set_status(None, 1, "new"), RoleStatus { desired: 1, ..Default::default() });
    }

    #[test]
    fn captures_report_each_worker() {
        let pod = |name: &str, node: &str, ready: bool| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "annotations": {"zeek.io/capture-interface": "eth0"}},
                "spec": {"nodeName": node, "containers": []},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "containerStatuses": [{"name": "zeek-node", "image": "x", "imageID": "", "ready": ready, "restartCount": 0,
                        "state": if ready { serde_json::json!({"running": {}}) } else { serde_json::json!({"waiting": {"reason": "CrashLoopBackOff", "message": "no such device eth0"}}) }}]
                }
            }))
            .unwrap()
        };
        let captures = captures(&[pod("w-b", "node-b", false), pod("w-a", "node-a", true)]);
        assert_eq!(captures.len(), 2);
        assert_eq!((captures[0].node_name.as_str(), captures[0].state), ("node-a", CaptureState::Capturing));
        assert_eq!(captures[1].state, CaptureState::Pending);
        assert_eq!(captures[1].message.as_deref(), Some("CrashLoopBackOff: no such device eth0"));
    }

    /// A worker pod as the DaemonSet controller makes it: pinned to `node` by affinity, and with `status`.
    fn worker_pod(node: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("w-{node}"), "annotations": {"zeek.io/capture-interface": "eth9"}},
            "spec": {
                "containers": [],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]}}}
            },
            "status": status
        }))
        .unwrap()
    }

    /// A worker pod scheduled on `node`, running but not ready, its container in `state` after `last_state`.
    fn scheduled_worker(node: &str, state: serde_json::Value, last_state: serde_json::Value) -> Pod {
        let mut pod = worker_pod(
            node,
            serde_json::json!({
                "phase": "Running",
                "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "zeek-node", "image": "x", "imageID": "", "ready": false, "restartCount": 1,
                    "state": state, "lastState": last_state}]
            }),
        );
        pod.spec.as_mut().unwrap().node_name = Some(node.into());
        pod
    }

    /// A worker that stopped on an error is `Failed` with the node's own words, also while the kubelet backs off
    /// restarting it; its last log line when it left no message; its exit code when it said nothing.
    #[test]
    fn a_worker_that_stops_on_an_error_is_failed_with_its_last_words() {
        let crash_looping = |message: Option<&str>| {
            let state = serde_json::json!({
                "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}
            });
            let last = serde_json::json!({"terminated": {"exitCode": 1, "reason": "Error", "message": message}});
            captures(&[scheduled_worker("node-a", state, last)]).remove(0)
        };
        let words = "cannot open interface eth9: libpcap error: No such device exists";
        let c = crash_looping(Some(words));
        assert_eq!(
            (c.node_name.as_str(), c.state, c.message.as_deref()),
            ("node-a", CaptureState::Failed, Some(words))
        );
        let logs = "{\"level\":\"INFO\",\"message\":\"node started\"}\nzeek-node: cannot open interface eth9\n";
        assert_eq!(crash_looping(Some(logs)).message.as_deref(), Some("zeek-node: cannot open interface eth9"));
        assert_eq!(crash_looping(None).message.as_deref(), Some("exited with code 1 (Error)"));
        let long = "x".repeat(2000);
        assert_eq!(crash_looping(Some(&long)).message.unwrap().len(), MAX_CAPTURE_MESSAGE + '…'.len_utf8());
    }

    /// A worker the scheduler cannot place (its ports taken on that node) is listed under the node the DaemonSet
    /// meant it for, `Pending` with the scheduler's reason.
    #[test]
    fn an_unscheduled_worker_is_pending_with_the_schedulers_reason() {
        let reason = "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.";
        let pod = worker_pod(
            "node-b",
            serde_json::json!({
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": reason}]
            }),
        );
        let c = captures(&[pod]).remove(0);
        assert_eq!((c.node_name.as_str(), c.state), ("node-b", CaptureState::Pending));
        assert_eq!(c.message, Some(format!("not scheduled: {reason}")));
    }

    /// A worker that restarted after an error and runs again is not `Failed`: it is starting (or capturing).
    #[test]
    fn a_worker_running_again_after_an_error_is_not_failed() {
        let last = serde_json::json!({"terminated": {"exitCode": 1, "message": "cannot open interface eth9"}});
        let pod = scheduled_worker("node-c", serde_json::json!({"running": {}}), last);
        assert_eq!(captures(&[pod])[0].state, CaptureState::Pending);
    }
}
