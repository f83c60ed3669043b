//! Validate: everything the API server's CEL rules cannot check, because it needs other objects or the
//! operator's settings. The result is the [`ValidatedCluster`] the builders work from.

use kube::{Resource, ResourceExt};
use zeek_crds::v1alpha1::ZeekCluster;

use super::dereference::Observed;
use crate::cluster::{IntelFile, ValidatedCluster, worker_groups};
use crate::error::{Error, Result};

pub fn validate(zc: &ZeekCluster, observed: &Observed, cluster_domain: &str) -> Result<ValidatedCluster> {
    let namespace = zc.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let owner = zc.controller_owner_ref(&()).ok_or(Error::MissingMetadata("name or uid"))?;

    let mut problems = Vec::new();
    for source in &zc.spec.intel {
        match observed.intel_config_maps.get(&source.config_map) {
            None => {
                problems.push(format!("intel ConfigMap {} does not exist in namespace {namespace}", source.config_map))
            }
            Some(keys) if !keys.contains(&source.key) => {
                problems.push(format!("intel ConfigMap {} has no key {}", source.config_map, source.key))
            }
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(Error::InvalidSpec(problems));
    }

    Ok(ValidatedCluster {
        name: zc.name_any(),
        namespace,
        owner,
        spec: zc.spec.clone(),
        cluster_domain: cluster_domain.to_string(),
        worker_groups: worker_groups(&zc.spec),
        intel_files: zc
            .spec
            .intel
            .iter()
            .map(|s| IntelFile { config_map: s.config_map.clone(), key: s.key.clone() })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn cluster(spec: serde_json::Value) -> ZeekCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "zeek.io/v1alpha1", "kind": "ZeekCluster",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "1234"},
            "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn a_cluster_without_references_is_valid() {
        let validated =
            validate(&cluster(serde_json::json!({"image": "x"})), &Observed::default(), "cluster.local").unwrap();
        assert_eq!(validated.owner.uid, "1234");
        assert_eq!(validated.owner.controller, Some(true));
        assert_eq!(validated.worker_groups.len(), 1);
    }

    #[test]
    fn missing_intel_config_maps_and_keys_are_reported_together() {
        let zc = cluster(serde_json::json!({"image": "x", "intel": [
            {"configMap": "absent", "key": "feed.dat"},
            {"configMap": "present", "key": "other.dat"},
            {"configMap": "present", "key": "feed.dat"}
        ]}));
        let observed = Observed {
            intel_config_maps: BTreeMap::from([("present".to_string(), BTreeSet::from(["feed.dat".to_string()]))]),
            ..Default::default()
        };
        match validate(&zc, &observed, "cluster.local") {
            Err(Error::InvalidSpec(problems)) => assert_eq!(
                problems,
                [
                    "intel ConfigMap absent does not exist in namespace ns",
                    "intel ConfigMap present has no key other.dat"
                ]
            ),
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }
}
