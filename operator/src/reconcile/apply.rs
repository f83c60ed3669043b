//! Apply: server-side apply of the built objects, in dependency order, and removal of objects the spec
//! no longer asks for. Held workloads (see [`crate::rollout`]) are left untouched.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeek_crds::v1alpha1::{ZeekCluster, ZeekClusterStatus};

use super::dereference::Observed;
use crate::build::{ClusterResources, WorkloadObject};
use crate::error::{Result, kube_err};
use crate::rollout::{RolloutPlan, Step};

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "zeek-operator";

/// Workloads as they are after this reconciliation, by name: the API server's answer for applied ones,
/// the observed object for held ones.
pub type CurrentWorkloads = BTreeMap<String, WorkloadObject>;

/// What changed besides the applied objects.
#[derive(Debug, Default)]
pub struct Applied {
    pub workloads: CurrentWorkloads,
    /// Worker DaemonSets deleted because no capture group needs them any more.
    pub deleted: Vec<String>,
}

pub async fn apply_all(
    client: &Client,
    namespace: &str,
    resources: &ClusterResources,
    plan: &RolloutPlan,
    observed: &Observed,
) -> Result<Applied> {
    // Configuration first: pods cannot start without their layout and certificates.
    apply(client, namespace, &resources.layout).await?;
    apply(client, namespace, &resources.tls_secret).await?;
    for service in &resources.services {
        apply(client, namespace, service).await?;
    }
    for budget in &resources.disruption_budgets {
        apply(client, namespace, budget).await?;
    }

    let mut applied = Applied::default();
    for workload in &resources.workloads {
        let current = match (plan.step(&workload.name), &workload.object) {
            (Step::Apply, WorkloadObject::StatefulSet(sts)) => {
                WorkloadObject::StatefulSet(Box::new(apply(client, namespace, sts.as_ref()).await?))
            }
            (Step::Apply, WorkloadObject::DaemonSet(ds)) => {
                WorkloadObject::DaemonSet(Box::new(apply(client, namespace, ds.as_ref()).await?))
            }
            (Step::Hold { .. }, WorkloadObject::StatefulSet(_)) => match observed.stateful_sets.get(&workload.name) {
                Some(sts) => WorkloadObject::StatefulSet(Box::new(sts.clone())),
                None => continue,
            },
            (Step::Hold { .. }, WorkloadObject::DaemonSet(_)) => match observed.daemon_sets.get(&workload.name) {
                Some(ds) => WorkloadObject::DaemonSet(Box::new(ds.clone())),
                None => continue,
            },
        };
        applied.workloads.insert(workload.name.clone(), current);
    }

    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    for name in observed.daemon_sets.keys().filter(|name| !applied.workloads.contains_key(*name)) {
        daemon_sets
            .delete(name, &DeleteParams::background())
            .await
            .map_err(kube_err(format!("delete DaemonSet {name}")))?;
        applied.deleted.push(name.clone());
    }
    Ok(applied)
}

/// Server-side apply of one object, forcing ownership of the fields the operator sets.
pub async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.name_any();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await
        .map_err(kube_err(format!("apply {} {name}", K::kind(&()))))
}

/// Server-side apply of the status subresource.
pub async fn apply_status(client: &Client, zc: &ZeekCluster, status: &ZeekClusterStatus) -> Result<()> {
    let api: Api<ZeekCluster> = Api::namespaced(client.clone(), &zc.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": ZeekCluster::api_version(&()),
        "kind": ZeekCluster::kind(&()),
        "status": status,
    });
    api.patch_status(&zc.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch))
        .await
        .map_err(kube_err("update ZeekCluster status"))?;
    Ok(())
}
