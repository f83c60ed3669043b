//! Dereference: read everything a reconciliation depends on, before anything is decided.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use zeek_crds::v1alpha1::ZeekCluster;

use crate::cluster::names;
use crate::error::{Result, kube_err};
use crate::labels;
use crate::role::Role;

/// The state of the cluster's objects and of the objects its spec refers to.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Data of the TLS Secret, empty when it does not exist yet.
    pub tls_data: BTreeMap<String, Vec<u8>>,
    /// StatefulSets owned by this ZeekCluster, by name.
    pub stateful_sets: BTreeMap<String, StatefulSet>,
    /// Worker DaemonSets owned by this ZeekCluster, by name.
    pub daemon_sets: BTreeMap<String, DaemonSet>,
    pub worker_pods: Vec<Pod>,
    /// Referenced intel ConfigMaps that exist, with their keys.
    pub intel_config_maps: BTreeMap<String, BTreeSet<String>>,
}

pub async fn observe(client: &Client, zc: &ZeekCluster) -> Result<Observed> {
    let namespace = zc.namespace().unwrap_or_default();
    let name = zc.name_any();
    let uid = zc.uid();
    let owned_selector = labels::selector_string(&labels::cluster_labels(&name));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret_name = names::tls_secret(&name);
    let tls_data = secrets
        .get_opt(&secret_name)
        .await
        .map_err(kube_err(format!("get Secret {secret_name}")))?
        .and_then(|s| s.data)
        .map(|data| data.into_iter().map(|(k, v)| (k, v.0)).collect())
        .unwrap_or_default();

    let stateful_sets = list_owned::<StatefulSet>(client, &namespace, &owned_selector, uid.as_deref()).await?;
    let daemon_sets = list_owned::<DaemonSet>(client, &namespace, &owned_selector, uid.as_deref()).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let worker_selector = labels::selector_string(&labels::role_selector(&name, Role::Worker));
    let worker_pods =
        pods.list(&ListParams::default().labels(&worker_selector)).await.map_err(kube_err("list worker pods"))?.items;

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let mut intel_config_maps = BTreeMap::new();
    let referenced: BTreeSet<&str> = zc.spec.intel.iter().map(|i| i.config_map.as_str()).collect();
    for cm_name in referenced {
        let found = config_maps.get_opt(cm_name).await.map_err(kube_err(format!("get ConfigMap {cm_name}")))?;
        if let Some(cm) = found {
            let keys = cm.data.iter().flat_map(|d| d.keys()).chain(cm.binary_data.iter().flat_map(|d| d.keys()));
            intel_config_maps.insert(cm_name.to_string(), keys.cloned().collect());
        }
    }

    Ok(Observed { tls_data, stateful_sets, daemon_sets, worker_pods, intel_config_maps })
}

/// Objects of kind `K` with the cluster's labels whose controller is this ZeekCluster (a same-named
/// cluster deleted and created again must not inherit objects that are still being collected).
async fn list_owned<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
    owner_uid: Option<&str>,
) -> Result<BTreeMap<String, K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let list =
        api.list(&ListParams::default().labels(selector)).await.map_err(kube_err(format!("list {}s", K::kind(&()))))?;
    Ok(list
        .items
        .into_iter()
        .filter(|o| o.meta().owner_references.iter().flatten().any(|r| Some(r.uid.as_str()) == owner_uid))
        .map(|o| (o.name_any(), o))
        .collect())
}
