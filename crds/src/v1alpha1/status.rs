//! `ZeekCluster.status`: what the operator observed, written only by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a ZeekCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZeekClusterStatus {
    /// The `metadata.generation` of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: Ready, Progressing, Degraded and Paused, each with the generation it was
    /// computed for.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The manager's pods.
    #[serde(default)]
    pub manager: RoleStatus,

    /// The loggers' pods.
    #[serde(default)]
    pub loggers: RoleStatus,

    /// The proxies' pods (`current` is the scale subresource's status replicas).
    #[serde(default)]
    pub proxies: RoleStatus,

    /// The workers' pods, one per selected node.
    #[serde(default)]
    pub workers: RoleStatus,

    /// Label selector of the proxy pods, for the scale subresource (and so for HorizontalPodAutoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_selector: Option<String>,

    /// Epoch of the newest membership view the manager has published (nodes route with the newest view
    /// they have). Absent until the manager reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_epoch: Option<i64>,

    /// What each worker captures on, by node.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["nodeName".into()]))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<WorkerCapture>,

    /// Hash of the current cluster layout. Pods carry it as the `zeek.io/config-hash` annotation; when it
    /// changes they are rolled role by role (loggers, manager, proxies, workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,

    /// When the node certificates expire; the operator renews them well before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_not_after: Option<Time>,
}

/// Pod counts of one role.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    /// Pods the spec asks for.
    #[serde(default)]
    pub desired: i32,
    /// Pods that exist.
    #[serde(default)]
    pub current: i32,
    /// Pods that are ready.
    #[serde(default)]
    pub ready: i32,
    /// Pods running the current configuration and image.
    #[serde(default)]
    pub updated: i32,
}

impl RoleStatus {
    /// Every desired pod exists, runs the current template and is ready.
    pub fn is_complete(&self) -> bool {
        self.current == self.desired && self.ready == self.desired && self.updated == self.desired
    }
}

/// The capture state of the worker on one node.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerCapture {
    /// The Kubernetes node.
    pub node_name: String,
    /// The worker pod on that node.
    pub pod: String,
    /// The interface it captures on.
    pub interface: String,
    /// Whether the worker is capturing.
    pub state: CaptureState,
    /// Why it is not capturing, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Whether a worker captures packets.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureState {
    /// The worker pod is ready: it has opened the interface and analyses packets.
    Capturing,
    /// The pod is starting or not ready yet.
    Pending,
    /// The pod failed.
    Failed,
}

/// The condition types the operator maintains (Kubernetes API conventions: positive polarity for Ready,
/// "abnormal-true" for the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConditionType {
    /// Every node runs the current spec and is ready.
    Ready,
    /// The operator is moving the cluster towards the spec (creating, rolling, scaling).
    Progressing,
    /// The cluster cannot reach the spec without help (invalid spec, missing references, API errors).
    Degraded,
    /// Reconciliation is paused by `spec.paused`.
    Paused,
}

impl ConditionType {
    pub const ALL: [ConditionType; 4] = [Self::Ready, Self::Progressing, Self::Degraded, Self::Paused];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Progressing => "Progressing",
            Self::Degraded => "Degraded",
            Self::Paused => "Paused",
        }
    }
}

impl ZeekClusterStatus {
    /// The condition of the given type, if set.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_.as_str())
    }

    /// Whether the condition of the given type is `True`.
    pub fn is(&self, type_: ConditionType) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }
}

/// Put `new` into `conditions`, replacing the condition of the same type. Its `lastTransitionTime` is
/// kept from the old condition when the status did not change, as the API conventions require.
pub fn upsert_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn condition(type_: &str, status: &str, at: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Test".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::from_second(at).unwrap()),
        }
    }

    #[test]
    fn upsert_keeps_transition_time_when_status_is_unchanged() {
        let mut conditions = vec![condition("Ready", "True", 100)];
        let mut newer = condition("Ready", "True", 200);
        newer.observed_generation = Some(2);
        upsert_condition(&mut conditions, newer);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time.0.as_second(), 100);
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn upsert_moves_transition_time_when_status_changes() {
        let mut conditions = vec![condition("Ready", "True", 100)];
        upsert_condition(&mut conditions, condition("Ready", "False", 200));
        assert_eq!(conditions[0].last_transition_time.0.as_second(), 200);
        assert_eq!(conditions[0].status, "False");
    }

    #[test]
    fn upsert_appends_new_types() {
        let mut conditions = vec![condition("Ready", "True", 100)];
        upsert_condition(&mut conditions, condition("Paused", "False", 200));
        assert_eq!(conditions.len(), 2);
    }

    #[test]
    fn role_is_complete_only_when_every_pod_is_current_and_ready() {
        let complete = RoleStatus { desired: 2, current: 2, ready: 2, updated: 2 };
        assert!(complete.is_complete());
        assert!(!RoleStatus { updated: 1, ..complete.clone() }.is_complete());
        assert!(!RoleStatus { ready: 1, ..complete }.is_complete());
    }
}
