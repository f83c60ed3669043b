//! Golden-object tests of the builders.
//!
//! `golden/` holds the objects built for two clusters; a test fails when a builder's output changes.
//! Review the diff and regenerate with `ZEEK_UPDATE_GOLDEN=1 cargo test -p zeek-operator --lib build::`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Serialize;
use time::OffsetDateTime;
use zeek_crds::v1alpha1::ZeekClusterSpec;

use super::*;
use crate::cluster::{IntelFile, worker_groups};
use crate::tls::KeyedCert;

fn cluster(spec: serde_json::Value) -> ValidatedCluster {
    let spec: ZeekClusterSpec = serde_json::from_value(spec).expect("valid spec");
    ValidatedCluster {
        name: "demo".into(),
        namespace: "monitoring".into(),
        owner: OwnerReference {
            api_version: "zeek.io/v1alpha1".into(),
            kind: "ZeekCluster".into(),
            name: "demo".into(),
            uid: "00000000-0000-0000-0000-000000000001".into(),
            controller: Some(true),
            block_owner_deletion: None,
        },
        cluster_domain: "cluster.local".into(),
        worker_groups: worker_groups(&spec),
        intel_files: spec
            .intel
            .iter()
            .map(|s| IntelFile { config_map: s.config_map.clone(), key: s.key.clone() })
            .collect(),
        spec,
    }
}

/// The shape of a production cluster: loggers with storage, proxies, per-node interfaces, intel.
fn production() -> ValidatedCluster {
    cluster(serde_json::json!({
        "image": "registry.example/zeek-node:1.0",
        "imagePullSecrets": [{"name": "registry"}],
        "loggers": {"replicas": 2, "storage": {"size": "50Gi", "storageClassName": "fast"}},
        "proxies": {"replicas": 2},
        "workers": {
            "nodeSelector": {"zeek.io/capture": "true"},
            "tolerations": [{"key": "capture", "operator": "Exists", "effect": "NoSchedule"}],
            "interface": "eth1",
            "interfaceOverrides": [{"nodeName": "capture-2", "interface": "ens5"}],
            "threads": 4,
            "bufferMiB": 128,
            "pinCpus": "auto",
            "bpfFilter": "not port 22",
            "resources": {"requests": {"cpu": "5"}, "limits": {"cpu": "5"}}
        },
        "site": {"localNetworks": ["10.0.0.0/8", "192.168.0.0/16"]},
        "logging": {"format": "json", "rotationInterval": "1h", "retention": "14d"},
        "analyzers": ["conn", "dns", "http", "ssl"],
        "intel": [{"configMap": "intel-feeds", "key": "bad-hosts.dat"}],
        "thresholds": {"Scan::port_threshold": 25, "SSH::guessing_timeout": "30m"}
    }))
}

fn minimal() -> ValidatedCluster {
    cluster(serde_json::json!({"image": "zeek-node:dev", "loggers": {"replicas": 0}}))
}

/// Fixed stand-ins for certificates: the builders only copy them.
fn tls_bundle() -> TlsBundle {
    let pem = |what: &str| KeyedCert { cert: format!("{what} certificate\n"), key: format!("{what} key\n") };
    TlsBundle {
        ca_bundle: "ca certificate\n".into(),
        ca: pem("ca"),
        nodes: Role::ROLLOUT_ORDER.iter().map(|&r| (r, pem(r.as_str()))).collect(),
        not_after: OffsetDateTime::UNIX_EPOCH,
    }
}

fn resources(cluster: &ValidatedCluster) -> ClusterResources {
    build(cluster, &tls_bundle()).expect("builds")
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/build/golden")
}

fn assert_golden(file: &str, actual: &str) {
    let path = golden_dir().join(file);
    if std::env::var_os("ZEEK_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the builders' output; review and regenerate with \
         `ZEEK_UPDATE_GOLDEN=1 cargo test -p zeek-operator --lib build::`\n--- actual ---\n{actual}",
        path.display()
    );
}

fn to_yaml_documents(resources: &ClusterResources) -> String {
    fn doc(out: &mut String, object: &impl Serialize) {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object).unwrap());
    }
    let mut out = String::new();
    doc(&mut out, &resources.layout);
    doc(&mut out, &resources.tls_secret);
    resources.services.iter().for_each(|s| doc(&mut out, s));
    resources.disruption_budgets.iter().for_each(|p| doc(&mut out, p));
    for workload in &resources.workloads {
        match &workload.object {
            WorkloadObject::StatefulSet(sts) => doc(&mut out, sts),
            WorkloadObject::DaemonSet(ds) => doc(&mut out, ds),
        }
    }
    out
}

#[test]
fn production_cluster_matches_golden_objects() {
    assert_golden("production.yaml", &to_yaml_documents(&resources(&production())));
}

#[test]
fn minimal_cluster_matches_golden_objects() {
    assert_golden("minimal.yaml", &to_yaml_documents(&resources(&minimal())));
}

#[test]
fn layout_matches_golden_file() {
    assert_golden("production-layout.yaml", &layout::render(&production()).unwrap());
}

fn stateful_set(resources: &ClusterResources, role: Role) -> &StatefulSet {
    resources
        .workloads
        .iter()
        .find_map(|w| match &w.object {
            WorkloadObject::StatefulSet(sts) if w.role == role => Some(sts.as_ref()),
            _ => None,
        })
        .expect("StatefulSet of the role")
}

fn daemon_sets(resources: &ClusterResources) -> Vec<&DaemonSet> {
    resources
        .workloads
        .iter()
        .filter_map(|w| match &w.object {
            WorkloadObject::DaemonSet(ds) => Some(ds.as_ref()),
            _ => None,
        })
        .collect()
}

fn pod_spec(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> &PodSpec {
    template.spec.as_ref().unwrap()
}

#[test]
fn every_object_is_owned_by_the_cluster() {
    let built = resources(&production());
    let owner = production().owner;
    let mut metas = vec![&built.layout.metadata, &built.tls_secret.metadata];
    metas.extend(built.services.iter().map(|s| &s.metadata));
    metas.extend(built.disruption_budgets.iter().map(|p| &p.metadata));
    for workload in &built.workloads {
        metas.push(match &workload.object {
            WorkloadObject::StatefulSet(sts) => &sts.metadata,
            WorkloadObject::DaemonSet(ds) => &ds.metadata,
        });
    }
    assert_eq!(metas.len(), 2 + 3 + 2 + 3 + 2);
    for meta in metas {
        assert_eq!(meta.owner_references.as_deref(), Some(std::slice::from_ref(&owner)), "{:?}", meta.name);
        assert_eq!(meta.namespace.as_deref(), Some("monitoring"));
    }
}

#[test]
fn workers_capture_on_the_host_network_with_only_two_capabilities() {
    let built = resources(&production());
    let workers = daemon_sets(&built);
    assert_eq!(workers.len(), 2, "default group and the ens5 override");
    for ds in workers {
        let pod = pod_spec(&ds.spec.template);
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
        let security = pod.containers[0].security_context.as_ref().unwrap();
        assert_eq!(security.privileged, Some(false));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        let capabilities = security.capabilities.as_ref().unwrap();
        assert_eq!(capabilities.add.as_deref(), Some(&["NET_RAW".to_string(), "NET_ADMIN".to_string()][..]));
        assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_string()][..]));
    }
}

#[test]
fn non_workers_run_unprivileged_and_without_extra_capabilities() {
    let built = resources(&production());
    for role in [Role::Manager, Role::Logger, Role::Proxy] {
        let pod = pod_spec(&stateful_set(&built, role).spec.template);
        assert_eq!(pod.host_network, None);
        assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
        let security = pod.containers[0].security_context.as_ref().unwrap();
        assert_eq!(security.capabilities.as_ref().unwrap().add, None);
        assert_eq!(security.read_only_root_filesystem, Some(true));
    }
}

#[test]
fn override_nodes_get_their_own_interface_and_leave_the_default_group() {
    let built = resources(&production());
    let args = |ds: &DaemonSet| pod_spec(&ds.spec.template).containers[0].args.clone().unwrap();
    let workers = daemon_sets(&built);
    let default = workers.iter().find(|ds| ds.metadata.name.as_deref() == Some("demo-worker")).unwrap();
    assert!(args(default).windows(2).any(|w| w == ["--interface", "eth1"]));
    let affinity = serde_json::to_value(&pod_spec(&default.spec.template).affinity).unwrap();
    assert_eq!(
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchFields"]
            [0],
        serde_json::json!({"key": "metadata.name", "operator": "NotIn", "values": ["capture-2"]})
    );
    let ens5 = workers.iter().find(|ds| ds.metadata.name.as_deref() != Some("demo-worker")).unwrap();
    assert!(args(ens5).windows(2).any(|w| w == ["--interface", "ens5"]));
}

#[test]
fn logger_volumes_are_retained_by_default() {
    let built = resources(&production());
    let spec = stateful_set(&built, Role::Logger).spec.clone();
    let policy = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(policy.when_scaled.as_deref(), Some("Retain"));
    let claim = &spec.volume_claim_templates.unwrap()[0];
    assert_eq!(claim.spec.as_ref().unwrap().storage_class_name.as_deref(), Some("fast"));

    let mut deleting = production();
    deleting.spec.loggers.storage.retain_on_delete = false;
    let policy = stateful_set(&resources(&deleting), Role::Logger)
        .spec
        .clone()
        .persistent_volume_claim_retention_policy
        .unwrap();
    assert_eq!(policy.when_deleted.as_deref(), Some("Delete"));
}

/// Scaling proxies must restart nobody: it changes the proxy StatefulSet's replicas and nothing else.
#[test]
fn scaling_proxies_changes_only_the_proxy_replica_count() {
    let before = resources(&production());
    let mut scaled = production();
    scaled.spec.proxies.replicas = 4;
    let after = resources(&scaled);

    assert_eq!(before.hashes, after.hashes);
    assert_eq!(before.layout, after.layout);
    for (b, a) in before.workloads.iter().zip(&after.workloads) {
        assert_eq!(b.template_hash, a.template_hash, "{}", b.name);
        if b.role != Role::Proxy {
            assert_eq!(b, a, "{}", b.name);
        }
    }
    assert_eq!(stateful_set(&after, Role::Proxy).spec.replicas, Some(4));
}

#[test]
fn a_configuration_change_changes_every_pod_template() {
    let before = resources(&production());
    let mut changed = production();
    changed.spec.site.local_networks.push("172.16.0.0/12".into());
    let after = resources(&changed);
    assert_ne!(before.hashes.config, after.hashes.config);
    for (b, a) in before.workloads.iter().zip(&after.workloads) {
        assert_ne!(b.template_hash, a.template_hash, "{}", b.name);
    }
}

#[test]
fn new_certificates_change_every_pod_template() {
    let cluster = production();
    let before = build(&cluster, &tls_bundle()).unwrap();
    let mut renewed = tls_bundle();
    renewed.nodes.insert(Role::Proxy, KeyedCert { cert: "renewed\n".into(), key: "renewed key\n".into() });
    let after = build(&cluster, &renewed).unwrap();
    assert_ne!(before.hashes.tls, after.hashes.tls);
    assert!(before.workloads.iter().zip(&after.workloads).all(|(b, a)| b.template_hash != a.template_hash));
}

#[test]
fn a_stopped_cluster_has_no_pods_but_keeps_its_configuration() {
    let mut stopped = production();
    stopped.spec.stopped = true;
    let built = resources(&stopped);
    assert!(daemon_sets(&built).is_empty());
    for role in [Role::Manager, Role::Logger, Role::Proxy] {
        assert_eq!(stateful_set(&built, role).spec.replicas, Some(0));
    }
    assert_eq!(built.hashes, resources(&production()).hashes, "stopping is not a configuration change");
}

#[test]
fn the_ca_key_never_reaches_a_pod() {
    let built = resources(&production());
    for workload in &built.workloads {
        let template = match &workload.object {
            WorkloadObject::StatefulSet(sts) => &sts.spec.template,
            WorkloadObject::DaemonSet(ds) => &ds.spec.template,
        };
        let volumes = pod_spec(template).volumes.clone().unwrap();
        let tls = volumes.iter().find(|v| v.name == "tls").unwrap().secret.clone().unwrap();
        let keys: BTreeMap<String, String> = tls.items.unwrap().into_iter().map(|i| (i.key, i.path)).collect();
        let role = workload.role;
        assert_eq!(
            keys,
            BTreeMap::from([
                ("ca.crt".to_string(), "ca.crt".to_string()),
                (format!("{role}.crt"), "tls.crt".to_string()),
                (format!("{role}.key"), "tls.key".to_string()),
            ])
        );
    }
}
