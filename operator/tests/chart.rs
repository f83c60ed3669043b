//! The Helm chart (charts/zeek-operator) against the operator itself: the chart's CRD is the generated one,
//! and the roles bound to the operator's ServiceAccount grant exactly `zeek_operator::rbac::RBAC`, in the
//! right scope, and nothing more, for each shape of the chart (cluster-wide or one namespace, with and without
//! leader election and CRD installation).
//!
//! Rendering needs `helm` (on PATH, or the HELM variable; e2e/controlplane.sh builds one into its cache bin
//! directory). Without it the RBAC tests print a SKIPPED banner and pass, unless ZEEK_E2E_REQUIRED=1.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use zeek_operator::rbac::{RBAC, Scope};

const RELEASE: &str = "zeek-operator";
const RELEASE_NAMESPACE: &str = "zeek-system";

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/zeek-operator")
}

/// Fails when the chart's copy of the CRD differs from the generated one; `ZEEK_UPDATE_CRD=1` rewrites it
/// (as it rewrites crds/zeekcluster.yaml in the zeek-crds tests).
#[test]
fn chart_crd_is_the_generated_crd() {
    let path = chart_dir().join("crds/zeekcluster.yaml");
    let generated = zeek_crds::crd_yaml().expect("CRD serializes to YAML");
    if std::env::var_os("ZEEK_UPDATE_CRD").is_some() {
        std::fs::write(&path, &generated).expect("write the chart's CRD");
        return;
    }
    let in_chart = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        in_chart == generated,
        "{} differs from the generated CRD; regenerate it with `ZEEK_UPDATE_CRD=1 cargo test -p zeek-operator \
         --test chart` (or `zeek-operator crd > charts/zeek-operator/crds/zeekcluster.yaml`)",
        path.display()
    );
}

/// One permission as RBAC evaluates it: `namespace` None is cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    namespace: Option<String>,
    group: String,
    resource: String,
    verb: String,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        let scope = self.namespace.as_deref().map_or("cluster-wide".to_string(), |ns| format!("in {ns}"));
        write!(f, "{} {group}/{} {scope}", self.verb, self.resource)
    }
}

/// A shape of the chart: the `--set` values and what the operator then does.
struct Shape {
    name: &'static str,
    set: &'static [&'static str],
    watch_namespace: Option<&'static str>,
    install_crd: bool,
    leader_election: bool,
}

const SHAPES: &[Shape] = &[
    Shape { name: "defaults", set: &[], watch_namespace: None, install_crd: true, leader_election: false },
    Shape {
        name: "two replicas",
        set: &["replicaCount=2"],
        watch_namespace: None,
        install_crd: true,
        leader_election: true,
    },
    Shape {
        name: "one namespace with leader election",
        set: &["watchNamespace=team-a", "leaderElection.enabled=true"],
        watch_namespace: Some("team-a"),
        install_crd: true,
        leader_election: true,
    },
    Shape {
        name: "CRD managed elsewhere, two replicas without leader election",
        set: &["installCRD=false", "replicaCount=2", "leaderElection.enabled=false"],
        watch_namespace: None,
        install_crd: false,
        leader_election: false,
    },
];

/// What `RBAC` says the operator needs in this shape.
fn needed(shape: &Shape) -> BTreeSet<Grant> {
    let mut grants = BTreeSet::new();
    for permission in RBAC {
        let namespace = match permission.scope {
            Scope::Watched => shape.watch_namespace.map(str::to_string),
            Scope::CrdInstall if shape.install_crd => None,
            Scope::LeaderLease if shape.leader_election => Some(RELEASE_NAMESPACE.to_string()),
            Scope::CrdInstall | Scope::LeaderLease => continue,
        };
        for verb in permission.verbs {
            grants.insert(Grant {
                namespace: namespace.clone(),
                group: permission.group.into(),
                resource: permission.resource.into(),
                verb: (*verb).into(),
            });
        }
    }
    grants
}

/// Every grant the rendered roles give the operator's ServiceAccount through the rendered bindings.
fn granted(objects: &[Value], service_account: &str) -> BTreeSet<Grant> {
    let of_kind = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind);
    let name = |o: &Value| o["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let namespace = |o: &Value| o["metadata"]["namespace"].as_str().map(str::to_string);
    let cluster_roles: BTreeMap<String, &Value> = of_kind("ClusterRole").map(|r| (name(r), &r["rules"])).collect();
    let roles: BTreeMap<(Option<String>, String), &Value> =
        of_kind("Role").map(|r| ((namespace(r), name(r)), &r["rules"])).collect();

    let mut grants = BTreeSet::new();
    for binding in of_kind("ClusterRoleBinding").chain(of_kind("RoleBinding")) {
        let binds_operator = binding["subjects"].as_array().into_iter().flatten().any(|s| {
            s["kind"] == "ServiceAccount" && s["name"] == service_account && s["namespace"] == RELEASE_NAMESPACE
        });
        if !binds_operator {
            continue;
        }
        let scope = if binding["kind"] == "RoleBinding" { namespace(binding) } else { None };
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default().to_string();
        let rules = match binding["roleRef"]["kind"].as_str() {
            Some("ClusterRole") => cluster_roles.get(&role_name),
            Some("Role") => roles.get(&(scope.clone(), role_name.clone())),
            other => panic!("binding {} refers to a {other:?}", name(binding)),
        };
        let rules =
            rules.unwrap_or_else(|| panic!("binding {} refers to {role_name}, not in the chart", name(binding)));
        for rule in rules.as_array().into_iter().flatten() {
            assert!(rule.get("nonResourceURLs").is_none(), "{role_name}: the operator calls no non-resource URL");
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        assert!(
                            ![&group, &resource, &verb].contains(&&"*".to_string()),
                            "{role_name}: wildcards grant more than the operator uses"
                        );
                        grants.insert(Grant {
                            namespace: scope.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                        });
                    }
                }
            }
        }
    }
    grants
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect()
}

/// The helm binary, or `None` (tests skip) when there is none and ZEEK_E2E_REQUIRED is not 1.
fn helm(test: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("HELM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("helm"));
    if Command::new(&candidate).arg("version").output().is_ok_and(|o| o.status.success()) {
        return Some(candidate);
    }
    assert!(
        !std::env::var("ZEEK_E2E_REQUIRED").is_ok_and(|v| v == "1"),
        "ZEEK_E2E_REQUIRED=1 but there is no helm: put e2e/controlplane.sh's bin directory on PATH \
         (`eval \"$(e2e/controlplane.sh env DIR)\"`) or set HELM"
    );
    let banner = format!(
        "\n##########\n## SKIPPED {test}: no helm on PATH (and HELM unset).\n## `eval \"$(e2e/controlplane.sh env \
         DIR)\"` puts the cached helm on PATH; ZEEK_E2E_REQUIRED=1 makes this a failure.\n##########\n\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
    None
}

/// `helm template` of the chart with `set` values, as a list of objects.
fn render(helm: &Path, set: &[&str]) -> Vec<Value> {
    let mut command = Command::new(helm);
    command.args(["template", RELEASE]).arg(chart_dir()).args(["--namespace", RELEASE_NAMESPACE]);
    for value in set {
        command.args(["--set", value]);
    }
    let output = command.output().expect("run helm template");
    assert!(output.status.success(), "helm template {set:?}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("helm prints UTF-8");
    let documents: Vec<Option<Value>> = serde_saphyr::from_multiple(&text).expect("helm prints YAML");
    documents.into_iter().flatten().filter(|d| d.is_object()).collect()
}

fn deployment(objects: &[Value]) -> &Value {
    let mut deployments = objects.iter().filter(|o| o["kind"] == "Deployment");
    let deployment = deployments.next().expect("the chart has a Deployment");
    assert!(deployments.next().is_none(), "the chart has one Deployment");
    deployment
}

fn operator_container(objects: &[Value]) -> &Value {
    &deployment(objects)["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn chart_rbac_grants_exactly_what_the_operator_uses() {
    let Some(helm) = helm("chart_rbac_grants_exactly_what_the_operator_uses") else { return };
    for shape in SHAPES {
        let objects = render(&helm, shape.set);
        let service_account = deployment(&objects)["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .expect("the Deployment names its ServiceAccount")
            .to_string();
        let needed = needed(shape);
        let granted = granted(&objects, &service_account);
        let missing: Vec<String> = needed.difference(&granted).map(Grant::to_string).collect();
        let extra: Vec<String> = granted.difference(&needed).map(Grant::to_string).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "chart shape `{}`: the roles bound to ServiceAccount {service_account} differ from \
             zeek_operator::rbac::RBAC.\n  missing: {missing:#?}\n  not used by the operator: {extra:#?}",
            shape.name
        );
    }
}

/// The RBAC above holds only if the Deployment runs the operator in the same shape: its flags must agree.
#[test]
fn deployment_flags_match_the_rbac_shape() {
    let Some(helm) = helm("deployment_flags_match_the_rbac_shape") else { return };
    for shape in SHAPES {
        let objects = render(&helm, shape.set);
        let container = operator_container(&objects);
        let args = strings(&container["args"]);
        let has = |flag: String| assert!(args.contains(&flag), "shape `{}`: {flag} not in {args:?}", shape.name);
        has(format!("--leader-election={}", shape.leader_election));
        has(format!("--install-crd={}", shape.install_crd));
        let watch_env = container["env"].as_array().into_iter().flatten().find(|e| e["name"] == "WATCH_NAMESPACE");
        assert_eq!(watch_env.and_then(|e| e["value"].as_str()), shape.watch_namespace, "shape `{}`", shape.name);

        if shape.leader_election {
            let lease = objects.iter().find(|o| o["kind"] == "Lease").expect("the chart owns the Lease");
            let lease_name = lease["metadata"]["name"].as_str().unwrap_or_default();
            has(format!("--lease-name={lease_name}"));
            let role = objects.iter().find(|o| o["kind"] == "Role").expect("a Role for the Lease");
            let named: Vec<String> =
                role["rules"].as_array().into_iter().flatten().flat_map(|r| strings(&r["resourceNames"])).collect();
            assert_eq!(named, [lease_name], "the Lease Role names the Lease the operator uses");
        } else {
            assert!(!objects.iter().any(|o| o["kind"] == "Lease"), "shape `{}`: no Lease without election", shape.name);
            assert_eq!(deployment(&objects)["spec"]["strategy"]["type"], "Recreate", "one operator at a time");
        }
    }
}

#[test]
fn operator_pod_runs_locked_down() {
    let Some(helm) = helm("operator_pod_runs_locked_down") else { return };
    let objects = render(&helm, &[]);
    let pod = &deployment(&objects)["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let security = &operator_container(&objects)["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(security["capabilities"].get("add").is_none(), "no capability is added");
}

/// The chart's PodMonitor scrapes what the operator builds: its selector matches the labels of every role's pods
/// (`zeek_operator::labels`), its endpoint is their metrics port by name, and it looks in the namespaces the
/// operator watches.
#[test]
fn pod_monitor_selects_the_nodes_the_operator_builds() {
    use zeek_operator::build::pod::METRICS_PORT_NAME;
    use zeek_operator::role::Role;
    let Some(helm) = helm("pod_monitor_selects_the_nodes_the_operator_builds") else { return };
    assert!(
        render(&helm, &[]).iter().all(|o| o["kind"] != "PodMonitor"),
        "no PodMonitor unless asked for (it needs the prometheus-operator's CRDs)"
    );
    for (set, namespaces) in [
        (&["metrics.podMonitor.enabled=true"][..], serde_json::json!({"any": true})),
        (
            &["metrics.podMonitor.enabled=true", "watchNamespace=team-a"][..],
            serde_json::json!({"matchNames": ["team-a"]}),
        ),
    ] {
        let objects = render(&helm, set);
        let monitor = objects.iter().find(|o| o["kind"] == "PodMonitor").expect("a PodMonitor");
        let spec = &monitor["spec"];
        assert_eq!(spec["namespaceSelector"], namespaces, "{set:?}");
        assert_eq!(spec["podMetricsEndpoints"][0]["port"], METRICS_PORT_NAME);
        let selector = spec["selector"]["matchLabels"].as_object().expect("matchLabels");
        for role in Role::ROLLOUT_ORDER {
            let pod_labels = zeek_operator::labels::role_labels("demo", role);
            for (key, value) in selector {
                assert_eq!(
                    pod_labels.get(key).map(String::as_str),
                    value.as_str(),
                    "the {role} pods carry {key}={value}"
                );
            }
        }
    }
}

/// The chart's alerts render only when asked for, each with an expression, a severity and a summary, and the
/// capture-loss threshold is the value given (zeek-node's tests check the metric names they use).
#[test]
fn prometheus_rule_renders_the_alerts() {
    let Some(helm) = helm("prometheus_rule_renders_the_alerts") else { return };
    assert!(render(&helm, &[]).iter().all(|o| o["kind"] != "PrometheusRule"), "no PrometheusRule unless asked for");
    let objects =
        render(&helm, &["metrics.prometheusRule.enabled=true", "metrics.prometheusRule.captureLossPercent=2.5"]);
    let rule = objects.iter().find(|o| o["kind"] == "PrometheusRule").expect("a PrometheusRule");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().expect("rules");
    let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for wanted in
        ["ZeekCaptureDrops", "ZeekCaptureLoss", "ZeekNotCapturing", "ZeekAnalysisStalled", "ZeekLogRecordsDropped"]
    {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    for r in rules {
        assert!(r["expr"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
        assert!(["warning", "critical"].contains(&r["labels"]["severity"].as_str().unwrap_or("")), "{r}");
        assert!(r["annotations"]["summary"].as_str().is_some_and(|s| s.contains("{{ $labels.node }}")), "{r}");
    }
    let loss = rules.iter().find(|r| r["alert"] == "ZeekCaptureLoss").expect("ZeekCaptureLoss");
    assert!(loss["expr"].as_str().unwrap_or("").ends_with("> 2.5"), "{loss}");
}
