//! The operator against a real kube-apiserver with kube-controller-manager, kube-scheduler and kwok fake
//! nodes (e2e/controlplane.sh). Skipped without KUBECONFIG unless ZEEK_E2E_REQUIRED=1; see common/mod.rs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestEnv, is_controlled_by};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use zeek_crds::v1alpha1::{CaptureState, ConditionType, ZeekCluster, rules};

const READY_TIMEOUT: Duration = Duration::from_secs(120);

fn instance_selector(cluster: &str) -> ListParams {
    ListParams::default().labels(&format!("app.kubernetes.io/instance={cluster}"))
}

async fn names<K>(api: &Api<K>, params: &ListParams) -> BTreeSet<String>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(params).await.expect("list").items.iter().map(|o| o.name_any()).collect()
}

#[tokio::test]
async fn crd_is_installed_with_a_structural_schema() {
    let Some(env) = TestEnv::start("crd").await else { return };
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let crd = crds.get("zeekclusters.zeek.io").await.expect("the operator installed the CRD");
    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    let status_of = |type_: &str| conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.clone());
    assert_eq!(status_of("Established").as_deref(), Some("True"));
    assert_eq!(status_of("NamesAccepted").as_deref(), Some("True"));
    assert_ne!(status_of("NonStructuralSchema").as_deref(), Some("True"), "{conditions:?}");
    assert_eq!(crd.spec.names.short_names, Some(vec!["zc".to_string()]));

    // The committed manifest is what the operator installs.
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/zeekcluster.yaml")).unwrap();
    assert_eq!(committed, zeek_crds::crd_yaml().unwrap());
    env.teardown().await;
}

#[tokio::test]
async fn invalid_specs_are_rejected_with_readable_messages() {
    let Some(env) = TestEnv::start("invalid").await else { return };
    let cases = [
        (json!({"proxies": {"replicas": 65}}), rules::PROXY_REPLICAS_MESSAGE),
        (json!({"loggers": {"replicas": 17}}), rules::LOGGER_REPLICAS_MESSAGE),
        (json!({"workers": {"threads": 0}}), rules::WORKER_THREADS_MESSAGE),
        (json!({"workers": {"port": 48000, "metricsPort": 48000}}), rules::WORKER_PORTS_DISTINCT_MESSAGE),
        (json!({"workers": {"bufferMiB": 0}}), rules::WORKER_BUFFER_MESSAGE),
        (json!({"workers": {"pinCpus": "all"}}), rules::WORKER_PIN_CPUS_MESSAGE),
        (json!({"site": {"localNetworks": ["10.0.0.0/33"]}}), rules::LOCAL_NETWORKS_CIDR_MESSAGE),
        (json!({"site": {"localNetworks": ["10.1.2.3/8"]}}), rules::LOCAL_NETWORKS_MASKED_MESSAGE),
        (json!({"workers": {"interface": "eth0/1"}}), rules::INTERFACE_MESSAGE),
        (
            json!({"workers": {"interfaceOverrides": [{"nodeName": "n1", "interface": "a-very-long-interface"}]}}),
            rules::INTERFACE_MESSAGE,
        ),
        (json!({"workers": {"bpfFilter": "(port 22"}}), rules::BPF_BALANCED_MESSAGE),
        (json!({"workers": {"bpfFilter": "port 22 and"}}), rules::BPF_OPERATOR_EDGES_MESSAGE),
        (json!({"loggers": {"storage": {"size": "lots"}}}), rules::STORAGE_SIZE_MESSAGE),
        (json!({"logging": {"rotationInterval": "1 hour"}}), rules::ROTATION_MESSAGE),
        (json!({"image": "zeek node"}), rules::IMAGE_MESSAGE),
        (json!({"diagnostics": {"otlpEndpoint": "otel-collector:4317"}}), rules::OTLP_ENDPOINT_MESSAGE),
        (json!({"diagnostics": {"level": "info, debug"}}), rules::LOG_LEVEL_MESSAGE),
        (json!({"detections": ["local", "lokal"]}), rules::DETECTION_NAMES_MESSAGE),
    ];
    for (overrides, message) in cases {
        let spec = env.spec(overrides.clone());
        let object: ZeekCluster = serde_json::from_value(
            json!({"apiVersion": "zeek.io/v1alpha1", "kind": "ZeekCluster", "metadata": {"name": "bad"}, "spec": spec}),
        )
        .unwrap();
        match env.clusters().create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{overrides}: {status:?}");
                assert!(status.message.contains(message), "{overrides}: expected {message:?} in {:?}", status.message);
            }
            other => panic!("{overrides} should be refused, got {other:?}"),
        }
    }

    let long_name = "a".repeat(41);
    let object: ZeekCluster = serde_json::from_value(
        json!({"apiVersion": "zeek.io/v1alpha1", "kind": "ZeekCluster", "metadata": {"name": long_name}, "spec": env.spec(json!({}))}),
    )
    .unwrap();
    let refused =
        env.clusters().create(&PostParams::default(), &object).await.expect_err("a 41-character name is refused");
    assert!(refused.to_string().contains(rules::NAME_LENGTH_MESSAGE), "{refused}");

    // Immutable: the loggers' volume claims.
    env.create_cluster("storage", env.spec(json!({"paused": true}))).await;
    let resize = json!({"spec": {"loggers": {"storage": {"size": "20Gi"}}}});
    let refused = env
        .clusters()
        .patch("storage", &PatchParams::default(), &Patch::Merge(&resize))
        .await
        .expect_err("resizing log storage is refused");
    assert!(refused.to_string().contains(rules::STORAGE_IMMUTABLE_MESSAGE), "{refused}");
    env.teardown().await;
}

#[tokio::test]
async fn a_cluster_gets_every_owned_object_and_becomes_ready() {
    let Some(env) = TestEnv::start("create").await else { return };
    let feed = ConfigMap {
        metadata: kube::api::ObjectMeta { name: Some("intel".into()), ..Default::default() },
        data: Some(BTreeMap::from([(
            "feed.dat".to_string(),
            "#fields\tindicator\tindicator_type\tmeta.source\n".to_string(),
        )])),
        ..Default::default()
    };
    env.api::<ConfigMap>().create(&PostParams::default(), &feed).await.unwrap();
    let zc = env
        .create_cluster(
            "demo",
            env.spec(json!({"loggers": {"replicas": 1}, "proxies": {"replicas": 2}, "intel": [{"configMap": "intel", "key": "feed.dat"}]})),
        )
        .await;
    let zc_ready = env.wait_ready("demo", READY_TIMEOUT).await;
    let status = zc_ready.status.clone().unwrap();

    let selector = instance_selector("demo");
    let owned_names = |names: BTreeSet<String>| names.into_iter().collect::<Vec<_>>();
    assert_eq!(
        owned_names(names(&env.api::<StatefulSet>(), &selector).await),
        ["demo-logger", "demo-manager", "demo-proxy"]
    );
    assert_eq!(owned_names(names(&env.api::<DaemonSet>(), &selector).await), ["demo-worker"]);
    assert_eq!(
        owned_names(names(&env.api::<Service>(), &selector).await),
        ["demo-logger", "demo-manager", "demo-proxy"]
    );
    assert_eq!(owned_names(names(&env.api::<PodDisruptionBudget>(), &selector).await), ["demo-logger", "demo-proxy"]);
    assert_eq!(owned_names(names(&env.api::<ConfigMap>(), &selector).await), ["demo-layout"]);
    assert_eq!(owned_names(names(&env.api::<Secret>(), &selector).await), ["demo-tls"]);

    for sts in env.api::<StatefulSet>().list(&selector).await.unwrap() {
        assert!(is_controlled_by(&sts, &zc), "{}", sts.name_any());
    }
    for ds in env.api::<DaemonSet>().list(&selector).await.unwrap() {
        assert!(is_controlled_by(&ds, &zc));
    }
    for svc in env.api::<Service>().list(&selector).await.unwrap() {
        assert!(is_controlled_by(&svc, &zc));
    }
    for pdb in env.api::<PodDisruptionBudget>().list(&selector).await.unwrap() {
        assert!(is_controlled_by(&pdb, &zc));
    }
    let layout_map = env.api::<ConfigMap>().get("demo-layout").await.unwrap();
    assert!(is_controlled_by(&layout_map, &zc));
    // The API server filled in `spec.detections: [local]`; the nodes read it, with the feed, from the layout and
    // run zeekctl's default policies plus intel.
    let rendered = layout_map.data.as_ref().and_then(|d| d.get("layout.yaml")).expect("the layout");
    let layout = zeek_node::cluster::layout::Layout::parse(rendered).unwrap();
    assert_eq!(layout.analysis.detections, Some(vec!["local".to_string()]));
    let mut engine = layout.analysis_config().unwrap();
    let none = zeek_node::detect::cluster::DetectArgs::default();
    let (analyses, _) = none.build(&mut engine, &layout.analysis).unwrap().expect("detections run");
    let running: Vec<&str> = analyses.iter().map(|a| a.name()).collect();
    assert!(running.contains(&"intel") && running.contains(&"capture-loss"), "{running:?}");
    let secret = env.api::<Secret>().get("demo-tls").await.unwrap();
    assert!(is_controlled_by(&secret, &zc));
    let keys: BTreeSet<&str> = secret.data.as_ref().unwrap().keys().map(String::as_str).collect();
    assert!(keys.is_superset(&BTreeSet::from([
        "ca.crt",
        "ca.key",
        "manager.crt",
        "logger.key",
        "proxy.crt",
        "worker.key"
    ])));

    // Pods run on the kwok nodes.
    let pods = env.api::<Pod>().list(&selector).await.unwrap().items;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(env.client.clone());
    let node_count = nodes.list(&ListParams::default()).await.unwrap().items.len() as i32;
    assert_eq!(pods.len() as i32, 1 + 1 + 2 + node_count);
    for pod in &pods {
        assert_eq!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"), "{}", pod.name_any());
        assert!(pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some());
    }

    // Status.
    assert_eq!(status.observed_generation, zc_ready.metadata.generation);
    assert_eq!(
        (status.manager.ready, status.loggers.ready, status.proxies.ready, status.workers.ready),
        (1, 1, 2, node_count)
    );
    assert_eq!(status.captures.len() as i32, node_count);
    assert!(status.captures.iter().all(|c| c.state == CaptureState::Capturing && c.interface == "eth0"));
    assert!(status.certificates_not_after.is_some());
    for type_ in ConditionType::ALL {
        let condition = status.condition(type_).unwrap_or_else(|| panic!("{type_:?} condition"));
        assert_eq!(condition.observed_generation, zc_ready.metadata.generation);
    }
    assert!(!status.is(ConditionType::Degraded) && !status.is(ConditionType::Progressing));

    // `kubectl get zc` columns, as the API server renders them.
    let table = get_table(&env, "/apis/zeek.io/v1alpha1/namespaces/{ns}/zeekclusters").await;
    let columns: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        columns,
        ["Name", "Ready", "Manager", "Loggers", "Proxies", "Workers", "Epoch", "Paused", "Detections", "Age"]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[1], "True");
    assert_eq!(cells[4], 2);
    assert!(cells[8].as_str().is_some_and(|d| d.contains("local")), "{}", cells[8]);

    // Operator endpoints.
    let (code, metrics) = env.http_get("/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("zeek_operator_reconciliations_total{result=\"success\"}"), "{metrics}");
    assert!(metrics.contains("zeek_operator_leader 1"), "{metrics}");
    assert_eq!(env.http_get("/healthz").await.unwrap().0, 200);

    let events = event_reasons(&env, "demo").await;
    assert!(events.contains("CertificatesIssued"), "{events:?}");
    env.teardown().await;
}

#[tokio::test]
async fn scaling_proxies_with_the_scale_subresource_touches_nothing_else() {
    let Some(env) = TestEnv::start("scale").await else { return };
    env.create_cluster("demo", env.spec(json!({"loggers": {"replicas": 1}, "proxies": {"replicas": 2}}))).await;
    env.wait_ready("demo", READY_TIMEOUT).await;
    let before = Snapshot::take(&env, "demo").await;

    // What `kubectl scale zc/demo --replicas=4` sends.
    env.clusters()
        .patch_scale("demo", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}})))
        .await
        .expect("scale subresource");
    let scaled = env
        .eventually("four ready proxies", READY_TIMEOUT, || async {
            let zc = env.clusters().get("demo").await.ok()?;
            let status = zc.status.clone()?;
            (status.proxies.ready == 4
                && status.is(ConditionType::Ready)
                && status.observed_generation == zc.metadata.generation)
                .then_some(zc)
        })
        .await;
    assert_eq!(scaled.spec.proxies.replicas, 4);
    let scale = env.clusters().get_scale("demo").await.unwrap();
    assert_eq!(scale.status.as_ref().map(|s| s.replicas), Some(4));
    assert_eq!(scale.status.and_then(|s| s.selector), scaled.status.unwrap().proxy_selector);

    let after = Snapshot::take(&env, "demo").await;
    assert_eq!(after.proxy_replicas, 4);
    before.assert_same_except_proxies(&after);
    for (pod, uid) in &before.proxy_pods {
        assert_eq!(after.proxy_pods.get(pod), Some(uid), "proxy {pod} was restarted");
    }
    assert_eq!(after.proxy_pods.len(), 4);
    env.teardown().await;
}

#[tokio::test]
async fn a_config_change_rolls_pods_in_role_order() {
    let Some(env) = TestEnv::start("rollout").await else { return };
    env.create_cluster("demo", env.spec(json!({"loggers": {"replicas": 2}, "proxies": {"replicas": 2}}))).await;
    let ready = env.wait_ready("demo", READY_TIMEOUT).await;
    let old_hash = ready.status.unwrap().config_hash.unwrap();

    let recorder = RolloutRecorder::default();
    let watch = tokio::spawn(recorder.clone().watch(env.api::<Pod>(), old_hash.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let change = json!({"spec": {"workers": {"bpfFilter": "not port 22"}}});
    env.clusters().patch("demo", &PatchParams::default(), &Patch::Merge(&change)).await.unwrap();

    let done = env.wait_ready("demo", READY_TIMEOUT).await;
    let new_hash = done.status.unwrap().config_hash.unwrap();
    assert_ne!(new_hash, old_hash);
    watch.abort();

    let pods = env.api::<Pod>().list(&instance_selector("demo")).await.unwrap();
    for pod in &pods {
        assert_eq!(pod.annotations().get("zeek.io/config-hash"), Some(&new_hash), "{} was not rolled", pod.name_any());
    }
    {
        let recorded = recorder.0.lock().unwrap();
        assert_eq!(
            recorded.order,
            ["logger", "manager", "proxy", "worker"],
            "roles in the order their first new pod appeared"
        );
        assert!(
            recorded.violations.is_empty(),
            "roles started before the previous ones were ready: {:#?}",
            recorded.violations
        );
    }

    let events = event_reasons(&env, "demo").await;
    assert!(events.contains("ConfigChanged") && events.contains("RollingOut"), "{events:?}");
    env.teardown().await;
}

#[tokio::test]
async fn pause_stops_reconciliation() {
    let Some(env) = TestEnv::start("pause").await else { return };
    env.create_cluster("demo", env.spec(json!({"loggers": {"replicas": 0}, "proxies": {"replicas": 1}}))).await;
    env.wait_ready("demo", READY_TIMEOUT).await;
    let before = Snapshot::take(&env, "demo").await;

    let pause = json!({"spec": {"paused": true}});
    env.clusters().patch("demo", &PatchParams::default(), &Patch::Merge(&pause)).await.unwrap();
    env.eventually("the Paused condition", Duration::from_secs(30), || async {
        let zc = env.clusters().get("demo").await.ok()?;
        zc.status.as_ref().is_some_and(|s| s.is(ConditionType::Paused)).then_some(())
    })
    .await;

    // Changes while paused: a new proxy count, a new configuration, a deleted Service.
    let change = json!({"spec": {"proxies": {"replicas": 3}, "site": {"localNetworks": ["10.0.0.0/8"]}}});
    env.clusters().patch("demo", &PatchParams::default(), &Patch::Merge(&change)).await.unwrap();
    env.api::<Service>().delete("demo-proxy", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = Snapshot::take(&env, "demo").await;
    assert_eq!(during.proxy_replicas, before.proxy_replicas, "paused: the proxies were scaled");
    assert_eq!(during.config_maps, before.config_maps, "paused: the layout changed");
    assert!(env.api::<Service>().get_opt("demo-proxy").await.unwrap().is_none(), "paused: the Service was recreated");

    let resume = json!({"spec": {"paused": false}});
    env.clusters().patch("demo", &PatchParams::default(), &Patch::Merge(&resume)).await.unwrap();
    let resumed = env.wait_ready("demo", READY_TIMEOUT).await;
    assert_eq!(resumed.status.as_ref().unwrap().proxies.ready, 3);
    assert!(!resumed.status.unwrap().is(ConditionType::Paused));
    assert!(env.api::<Service>().get_opt("demo-proxy").await.unwrap().is_some());
    env.teardown().await;
}

#[tokio::test]
async fn deleting_a_cluster_collects_everything_but_the_log_volumes() {
    let Some(env) = TestEnv::start("delete").await else { return };
    env.create_cluster("demo", env.spec(json!({"loggers": {"replicas": 1}}))).await;
    env.wait_ready("demo", READY_TIMEOUT).await;
    let claims = env.api::<PersistentVolumeClaim>();
    assert!(claims.get_opt("logs-demo-logger-0").await.unwrap().is_some());

    env.clusters().delete("demo", &DeleteParams::background()).await.unwrap();
    let selector = instance_selector("demo");
    env.eventually("the garbage collector to remove the cluster's objects", READY_TIMEOUT, || async {
        let remaining = names(&env.api::<StatefulSet>(), &selector).await.len()
            + names(&env.api::<DaemonSet>(), &selector).await.len()
            + names(&env.api::<Service>(), &selector).await.len()
            + names(&env.api::<PodDisruptionBudget>(), &selector).await.len()
            + names(&env.api::<ConfigMap>(), &selector).await.len()
            + names(&env.api::<Secret>(), &selector).await.len()
            + names(&env.api::<Pod>(), &selector).await.len();
        (remaining == 0).then_some(())
    })
    .await;
    let claim = claims.get_opt("logs-demo-logger-0").await.unwrap().expect("the log volume claim is retained");
    assert!(claim.metadata.deletion_timestamp.is_none());
    env.teardown().await;
}

#[tokio::test]
async fn a_missing_intel_config_map_degrades_only_that_cluster() {
    let Some(env) = TestEnv::start("degraded").await else { return };
    env.create_cluster(
        "broken",
        env.spec(json!({"loggers": {"replicas": 0}, "intel": [{"configMap": "absent", "key": "feed.dat"}]})),
    )
    .await;
    // Another cluster in the same namespace is reconciled as usual (with a port of its own).
    let mut healthy_spec = env.spec(json!({"loggers": {"replicas": 0}}));
    healthy_spec["workers"]["port"] = json!(env.worker_port() + 1);
    env.create_cluster("healthy", healthy_spec).await;

    let degraded = env
        .eventually("the Degraded condition", Duration::from_secs(60), || async {
            let zc = env.clusters().get("broken").await.ok()?;
            let condition = zc.status?.condition(ConditionType::Degraded)?.clone();
            (condition.status == "True").then_some(condition)
        })
        .await;
    assert_eq!(degraded.reason, "InvalidSpec");
    assert!(degraded.message.contains("intel ConfigMap absent does not exist"), "{}", degraded.message);
    assert!(names(&env.api::<StatefulSet>(), &instance_selector("broken")).await.is_empty(), "nothing is created");
    env.wait_ready("healthy", READY_TIMEOUT).await;
    env.teardown().await;
}

#[tokio::test]
async fn a_standby_operator_takes_over_when_the_leader_stops() {
    let Some(mut env) = TestEnv::start("leader").await else { return };
    let standby = env.start_standby();
    env.eventually("the standby to be ready", Duration::from_secs(60), || async {
        standby.http_get("/readyz").await.filter(|(code, _)| *code == 200)
    })
    .await;
    let leads =
        |metrics: Option<(u16, String)>| metrics.is_some_and(|(_, m)| m.lines().any(|l| l == "zeek_operator_leader 1"));
    assert!(leads(env.http_get("/metrics").await), "the first operator leads");
    assert!(!leads(standby.http_get("/metrics").await), "the standby waits");

    env.stop_operator().await;
    env.eventually("the standby to take the lease", Duration::from_secs(40), || async {
        leads(standby.http_get("/metrics").await).then_some(())
    })
    .await;
    env.create_cluster("demo", env.spec(json!({"loggers": {"replicas": 0}}))).await;
    env.wait_ready("demo", READY_TIMEOUT).await;
    standby.stop().await;
    env.teardown().await;
}

/// What a change must not touch: pod identities and the owned objects' versions, by name.
#[derive(Debug, PartialEq)]
struct Snapshot {
    pods: BTreeMap<String, String>,
    proxy_pods: BTreeMap<String, String>,
    proxy_replicas: i32,
    /// Workload name → (generation, template hash) for all but the proxies.
    workloads: BTreeMap<String, (Option<i64>, Option<String>)>,
    config_maps: BTreeMap<String, Option<String>>,
    secrets: BTreeMap<String, Option<String>>,
    services: BTreeMap<String, Option<String>>,
}

impl Snapshot {
    async fn take(env: &TestEnv, cluster: &str) -> Self {
        let selector = instance_selector(cluster);
        let versions = |items: Vec<kube::api::ObjectMeta>| -> BTreeMap<String, Option<String>> {
            items.into_iter().map(|m| (m.name.unwrap_or_default(), m.resource_version)).collect()
        };
        let pods = env.api::<Pod>().list(&selector).await.unwrap().items;
        let (proxy_pods, pods): (Vec<Pod>, Vec<Pod>) = pods
            .into_iter()
            .partition(|p| p.labels().get("app.kubernetes.io/component").map(String::as_str) == Some("proxy"));
        let uid = |p: Pod| (p.name_any(), p.metadata.uid.unwrap_or_default());
        let mut workloads = BTreeMap::new();
        let mut proxy_replicas = 0;
        for sts in env.api::<StatefulSet>().list(&selector).await.unwrap() {
            if sts.name_any().ends_with("-proxy") {
                proxy_replicas = sts.spec.replicas.unwrap_or(0);
                continue;
            }
            workloads.insert(
                sts.name_any(),
                (sts.metadata.generation, sts.annotations().get("zeek.io/template-hash").cloned()),
            );
        }
        for ds in env.api::<DaemonSet>().list(&selector).await.unwrap() {
            workloads.insert(
                ds.name_any(),
                (ds.metadata.generation, ds.annotations().get("zeek.io/template-hash").cloned()),
            );
        }
        Self {
            pods: pods.into_iter().map(uid).collect(),
            proxy_pods: proxy_pods.into_iter().map(uid).collect(),
            proxy_replicas,
            workloads,
            config_maps: versions(
                env.api::<ConfigMap>().list(&selector).await.unwrap().items.into_iter().map(|o| o.metadata).collect(),
            ),
            secrets: versions(
                env.api::<Secret>().list(&selector).await.unwrap().items.into_iter().map(|o| o.metadata).collect(),
            ),
            services: versions(
                env.api::<Service>().list(&selector).await.unwrap().items.into_iter().map(|o| o.metadata).collect(),
            ),
        }
    }

    fn assert_same_except_proxies(&self, after: &Snapshot) {
        assert_eq!(self.pods, after.pods, "pods other than proxies were replaced");
        assert_eq!(self.workloads, after.workloads, "workloads other than the proxies' changed");
        assert_eq!(self.config_maps, after.config_maps, "the layout changed");
        assert_eq!(self.secrets, after.secrets, "the certificates changed");
        assert_eq!(self.services, after.services, "a Service changed");
    }
}

/// Follows pods during a rollout: the order in which each role's first pod with a new configuration
/// appears, and whether every earlier role was fully rolled and ready at that moment.
#[derive(Clone, Default)]
struct RolloutRecorder(Arc<Mutex<Recorded>>);

#[derive(Default)]
struct Recorded {
    order: Vec<String>,
    violations: Vec<String>,
    /// Pod name → (role, config hash, ready).
    pods: BTreeMap<String, (String, String, bool)>,
}

impl RolloutRecorder {
    async fn watch(self, pods: Api<Pod>, old_hash: String) {
        const ORDER: [&str; 4] = ["logger", "manager", "proxy", "worker"];
        let mut events =
            std::pin::pin!(watcher(pods, watcher::Config::default().labels("app.kubernetes.io/name=zeek")));
        while let Some(Ok(event)) = events.next().await {
            let mut recorded = self.0.lock().unwrap();
            let (pod, deleted) = match event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => (pod, false),
                watcher::Event::Delete(pod) => (pod, true),
                watcher::Event::Init | watcher::Event::InitDone => continue,
            };
            if deleted {
                recorded.pods.remove(&pod.name_any());
                continue;
            }
            let role = pod.labels().get("app.kubernetes.io/component").cloned().unwrap_or_default();
            let hash = pod.annotations().get("zeek.io/config-hash").cloned().unwrap_or_default();
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if hash != old_hash && !recorded.order.contains(&role) {
                let position = ORDER.iter().position(|r| *r == role).unwrap_or(0);
                for earlier in &ORDER[..position] {
                    let unfinished: Vec<String> = recorded
                        .pods
                        .iter()
                        .filter(|(_, (r, h, ready))| r == earlier && (*h == old_hash || !ready))
                        .map(|(name, _)| name.clone())
                        .collect();
                    if !unfinished.is_empty() {
                        recorded
                            .violations
                            .push(format!("{role} started while {earlier} pods {unfinished:?} were old or not ready"));
                    }
                }
                recorded.order.push(role.clone());
            }
            recorded.pods.insert(pod.name_any(), (role, hash, ready));
        }
    }
}

/// The API server's table view of a list (what `kubectl get` prints).
async fn get_table(env: &TestEnv, path: &str) -> serde_json::Value {
    let request = http::Request::get(path.replace("{ns}", &env.namespace))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    env.client.request::<serde_json::Value>(request).await.expect("table view")
}

async fn event_reasons(env: &TestEnv, cluster: &str) -> BTreeSet<String> {
    let events: Api<k8s_openapi::api::core::v1::Event> = env.api();
    let params =
        ListParams::default().fields(&format!("involvedObject.kind=ZeekCluster,involvedObject.name={cluster}"));
    events.list(&params).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect()
}
