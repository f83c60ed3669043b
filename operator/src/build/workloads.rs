//! StatefulSets (manager, loggers, proxies) and worker DaemonSets.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplateSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use super::object_meta;
use super::pod::{LOGS_VOLUME, RolloutHashes, node_pod_template};
use crate::cluster::{ValidatedCluster, WorkerGroup};
use crate::labels;
use crate::role::Role;

/// A workload of one role, with the hash of its pod template (what the rollout compares).
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub role: Role,
    pub name: String,
    pub template_hash: String,
    pub object: WorkloadObject,
}

#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadObject {
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
}

/// The StatefulSet of the manager, the loggers or the proxies.
pub fn stateful_set(cluster: &ValidatedCluster, role: Role, hashes: &RolloutHashes) -> Workload {
    let name = cluster.role_object_name(role);
    let template = node_pod_template(cluster, role, None, hashes);
    let template_hash = template_hash(&template);
    let mut spec = StatefulSetSpec {
        replicas: Some(cluster.replicas(role)),
        selector: selector(labels::role_selector(&cluster.name, role)),
        service_name: Some(name.clone()),
        template,
        // Nodes find each other through the manager; none needs its predecessor to start first.
        pod_management_policy: Some("Parallel".into()),
        update_strategy: Some(StatefulSetUpdateStrategy { type_: Some("RollingUpdate".into()), ..Default::default() }),
        revision_history_limit: Some(5),
        ..Default::default()
    };
    if role == Role::Logger {
        let storage = &cluster.spec.loggers.storage;
        spec.volume_claim_templates = Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(LOGS_VOLUME.into()),
                labels: Some(labels::role_labels(&cluster.name, role)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: (!storage.storage_class_name.is_empty())
                    .then(|| storage.storage_class_name.clone()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), Quantity(storage.size.clone()))])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        // Logs outlive the cluster unless the user opts out; scaling down never deletes a volume.
        spec.persistent_volume_claim_retention_policy = Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some(if storage.retain_on_delete { "Retain" } else { "Delete" }.into()),
            when_scaled: Some("Retain".into()),
        });
    }
    let object = StatefulSet {
        metadata: workload_meta(cluster, &name, labels::role_labels(&cluster.name, role), &template_hash),
        spec,
        status: None,
    };
    Workload { role, name, template_hash, object: WorkloadObject::StatefulSet(Box::new(object)) }
}

/// The DaemonSet of one worker capture group.
pub fn worker_daemon_set(cluster: &ValidatedCluster, group: &WorkerGroup, hashes: &RolloutHashes) -> Workload {
    let name = cluster.worker_daemonset_name(group);
    let template = node_pod_template(cluster, Role::Worker, Some(group), hashes);
    let template_hash = template_hash(&template);
    let mut selector_labels = labels::role_selector(&cluster.name, Role::Worker);
    selector_labels.insert(labels::CAPTURE_GROUP.into(), group.id.clone());
    let mut object_labels = labels::role_labels(&cluster.name, Role::Worker);
    object_labels.insert(labels::CAPTURE_GROUP.into(), group.id.clone());
    let object = DaemonSet {
        metadata: workload_meta(cluster, &name, object_labels, &template_hash),
        spec: DaemonSetSpec {
            selector: selector(selector_labels),
            template,
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                // One capture host at a time is blind during a rollout.
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    ..Default::default()
                }),
            }),
            revision_history_limit: Some(5),
            ..Default::default()
        },
        status: None,
    };
    Workload { role: Role::Worker, name, template_hash, object: WorkloadObject::DaemonSet(Box::new(object)) }
}

fn workload_meta(cluster: &ValidatedCluster, name: &str, labels: BTreeMap<String, String>, hash: &str) -> ObjectMeta {
    let annotations = BTreeMap::from([(labels::TEMPLATE_HASH.to_string(), hash.to_string())]);
    object_meta(cluster, name, labels, Some(annotations))
}

fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(labels), ..Default::default() }
}

/// A short hash of the pod template as built (before the API server adds its defaults).
fn template_hash(template: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(template).expect("a pod template always serialises");
    hex::encode(&Sha256::digest(bytes)[..8])
}
