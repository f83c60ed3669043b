//! The CRD's CEL rules, evaluated client-side with kube's CEL engine (the Kubernetes CEL libraries:
//! regex, quantity, IP/CIDR). The integration tests in zeek-operator check the same messages against a
//! real API server.

use kube::core::cel::Validator;
use serde_json::{Value, json};
use zeek_crds::v1alpha1::rules;

fn schema() -> Value {
    let crd = zeek_crds::crd();
    serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap()
}

fn object(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "zeek.io/v1alpha1",
        "kind": "ZeekCluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    })
}

/// The messages of every rule that fails for `spec` (after the schema's defaults are applied).
fn failures(spec: Value) -> Vec<String> {
    failures_on_update(spec, None)
}

fn failures_on_update(spec: Value, old_spec: Option<Value>) -> Vec<String> {
    let old = old_spec.map(|s| object("demo", s));
    match Validator::new().validate(&schema(), &object("demo", spec), old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn assert_rejected(spec: Value, message: &str) {
    let failures = failures(spec.clone());
    assert!(failures.iter().any(|f| f == message), "spec {spec} should fail with {message:?}; failures: {failures:?}");
}

#[test]
fn minimal_spec_is_valid() {
    assert_eq!(failures(json!({"image": "zeek-node:dev"})), Vec::<String>::new());
}

#[test]
fn full_spec_is_valid() {
    let spec = json!({
        "image": "registry.example/zeek-node:1.0",
        "loggers": {"replicas": 2, "storage": {"size": "50Gi", "storageClassName": "fast"}},
        "proxies": {"replicas": 4},
        "workers": {
            "interface": "af_packet::eth0",
            "interfaceOverrides": [{"nodeName": "capture-1.example", "interface": "ens5"}],
            "threads": 4,
            "bpfFilter": "not (port 22 or port 443) and tcp",
            "port": 48000,
            "metricsPort": 48001,
            "bufferMiB": 256,
            "pinCpus": "2-5,8"
        },
        "site": {"localNetworks": ["10.0.0.0/8", "2001:db8::/32"]},
        "logging": {"format": "json", "rotationInterval": "30m", "retention": "14d"},
        "analyzers": ["conn", "dns", "http"],
        "intel": [{"configMap": "intel-feed", "key": "feed.dat"}],
        "thresholds": {"Scan::port_threshold": 25, "SSH::guessing_timeout": "30m"}
    });
    assert_eq!(failures(spec), Vec::<String>::new());
}

#[test]
fn replicas_out_of_range_are_rejected() {
    assert_rejected(json!({"image": "x", "proxies": {"replicas": 65}}), rules::PROXY_REPLICAS_MESSAGE);
    assert_rejected(json!({"image": "x", "proxies": {"replicas": -1}}), rules::PROXY_REPLICAS_MESSAGE);
    assert_rejected(json!({"image": "x", "loggers": {"replicas": 17}}), rules::LOGGER_REPLICAS_MESSAGE);
    assert_rejected(json!({"image": "x", "workers": {"threads": 0}}), rules::WORKER_THREADS_MESSAGE);
    assert_rejected(json!({"image": "x", "workers": {"port": 80}}), rules::WORKER_PORT_MESSAGE);
    assert_rejected(json!({"image": "x", "workers": {"metricsPort": 80}}), rules::WORKER_METRICS_PORT_MESSAGE);
    assert_rejected(json!({"image": "x", "workers": {"bufferMiB": 0}}), rules::WORKER_BUFFER_MESSAGE);
    for bad in ["all", "2,", "2-", "1;2", "12345"] {
        assert_rejected(json!({"image": "x", "workers": {"pinCpus": bad}}), rules::WORKER_PIN_CPUS_MESSAGE);
    }
}

#[test]
fn worker_metrics_port_must_not_be_the_cluster_port() {
    assert_rejected(
        json!({"image": "x", "workers": {"port": 48000, "metricsPort": 48000}}),
        rules::WORKER_PORTS_DISTINCT_MESSAGE,
    );
    // Without metricsPort the metrics go to port + 1, which 65535 does not have.
    assert_rejected(json!({"image": "x", "workers": {"port": 65535}}), rules::WORKER_PORTS_DISTINCT_MESSAGE);
    assert_eq!(failures(json!({"image": "x", "workers": {"port": 65535, "metricsPort": 9100}})), Vec::<String>::new());
    assert_eq!(failures(json!({"image": "x", "workers": {"port": 48000}})), Vec::<String>::new());
}

#[test]
fn malformed_networks_are_rejected() {
    assert_rejected(
        json!({"image": "x", "site": {"localNetworks": ["10.0.0.0/33"]}}),
        rules::LOCAL_NETWORKS_CIDR_MESSAGE,
    );
    assert_rejected(json!({"image": "x", "site": {"localNetworks": ["intranet"]}}), rules::LOCAL_NETWORKS_CIDR_MESSAGE);
    assert_rejected(
        json!({"image": "x", "site": {"localNetworks": ["10.0.0.1/8"]}}),
        rules::LOCAL_NETWORKS_MASKED_MESSAGE,
    );
}

#[test]
fn malformed_interfaces_are_rejected() {
    assert_rejected(
        json!({"image": "x", "workers": {"interface": "a-very-long-interface-name"}}),
        rules::INTERFACE_MESSAGE,
    );
    assert_rejected(json!({"image": "x", "workers": {"interface": "eth0/1"}}), rules::INTERFACE_MESSAGE);
    assert_rejected(
        json!({"image": "x", "workers": {"interfaceOverrides": [{"nodeName": "n1", "interface": "eth 1"}]}}),
        rules::INTERFACE_MESSAGE,
    );
    assert_rejected(
        json!({"image": "x", "workers": {"interfaceOverrides": [{"nodeName": "Node_1", "interface": "eth1"}]}}),
        rules::NODE_NAME_MESSAGE,
    );
}

#[test]
fn malformed_filters_are_rejected() {
    assert_rejected(json!({"image": "x", "workers": {"bpfFilter": "(port 22"}}), rules::BPF_BALANCED_MESSAGE);
    assert_rejected(json!({"image": "x", "workers": {"bpfFilter": "port 22 and"}}), rules::BPF_OPERATOR_EDGES_MESSAGE);
    assert_rejected(json!({"image": "x", "workers": {"bpfFilter": "or port 22"}}), rules::BPF_OPERATOR_EDGES_MESSAGE);
    assert_rejected(json!({"image": "x", "workers": {"bpfFilter": "port 22\nport 23"}}), rules::BPF_ONE_LINE_MESSAGE);
    assert_eq!(failures(json!({"image": "x", "workers": {"bpfFilter": "not port 22"}})), Vec::<String>::new());
    assert_eq!(failures(json!({"image": "x", "workers": {"bpfFilter": "host orange"}})), Vec::<String>::new());
}

#[test]
fn other_malformed_fields_are_rejected() {
    assert_rejected(json!({"image": "zeek node"}), rules::IMAGE_MESSAGE);
    assert_rejected(json!({"image": ""}), rules::IMAGE_MESSAGE);
    assert_rejected(json!({"image": "x", "loggers": {"storage": {"size": "lots"}}}), rules::STORAGE_SIZE_MESSAGE);
    assert_rejected(json!({"image": "x", "loggers": {"storage": {"size": "0"}}}), rules::STORAGE_SIZE_MESSAGE);
    assert_rejected(json!({"image": "x", "logging": {"rotationInterval": "1 hour"}}), rules::ROTATION_MESSAGE);
    assert_rejected(json!({"image": "x", "logging": {"rotationInterval": "0h"}}), rules::ROTATION_MESSAGE);
    assert_rejected(json!({"image": "x", "logging": {"retention": "1w"}}), rules::RETENTION_MESSAGE);
    assert_rejected(json!({"image": "x", "analyzers": ["HTTP"]}), rules::ANALYZER_NAMES_MESSAGE);
    assert_rejected(
        json!({"image": "x", "intel": [{"configMap": "Feed", "key": "a"}]}),
        rules::CONFIG_MAP_NAME_MESSAGE,
    );
    assert_rejected(
        json!({"image": "x", "intel": [{"configMap": "feed", "key": "a/b"}]}),
        rules::CONFIG_MAP_KEY_MESSAGE,
    );
    assert_rejected(json!({"image": "x", "thresholds": {"9lives": 1}}), rules::THRESHOLD_NAMES_MESSAGE);
    assert_rejected(json!({"image": "x", "detections": ["local", "sqli-guess"]}), rules::DETECTION_NAMES_MESSAGE);
}

#[test]
fn detections_default_to_zeekctls_local_and_may_be_empty() {
    assert_eq!(failures(json!({"image": "x", "detections": []})), Vec::<String>::new());
    assert_eq!(failures(json!({"image": "x", "detections": ["all"]})), Vec::<String>::new());
    assert_eq!(failures(json!({"image": "x", "detections": ["scan", "capture-loss"]})), Vec::<String>::new());
    let spec: zeek_crds::v1alpha1::ZeekClusterSpec = serde_json::from_value(json!({"image": "x"})).unwrap();
    assert_eq!(spec.detections, ["local"]);
    let default = &schema()["properties"]["spec"]["properties"]["detections"]["default"];
    assert_eq!(default, &json!(["local"]), "the API server fills in the default");
}

#[test]
fn long_names_are_rejected() {
    let name = "a".repeat(41);
    let errors = Validator::new()
        .validate(&schema(), &object(&name, json!({"image": "x"})), None)
        .expect_err("a 41-character name must be refused");
    assert!(errors.iter().any(|e| e.message == rules::NAME_LENGTH_MESSAGE), "{errors:?}");
}

#[test]
fn log_storage_is_immutable() {
    let old = json!({"image": "x", "loggers": {"storage": {"size": "10Gi"}}});
    let resized = json!({"image": "x", "loggers": {"storage": {"size": "20Gi"}}});
    let reclassed = json!({"image": "x", "loggers": {"storage": {"size": "10Gi", "storageClassName": "fast"}}});
    let retention_changed = json!({"image": "x", "loggers": {"storage": {"size": "10Gi", "retainOnDelete": false}}});
    for changed in [resized, reclassed] {
        let failures = failures_on_update(changed, Some(old.clone()));
        assert!(failures.iter().any(|f| f == rules::STORAGE_IMMUTABLE_MESSAGE), "{failures:?}");
    }
    assert_eq!(failures_on_update(retention_changed, Some(old)), Vec::<String>::new());
}
