//! Harness for tests against a real control plane (e2e/controlplane.sh).
//!
//! Each test gets its own namespace and its own operator process (the real binary, watching only that
//! namespace and electing its leader there), so tests run in parallel without seeing each other.
//!
//! The control plane comes from the environment: `eval "$(e2e/controlplane.sh env STATE_DIR)"` sets
//! KUBECONFIG. Without it the tests are skipped with a loud message, unless ZEEK_E2E_REQUIRED=1, in which
//! case they fail.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::future::Future;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use zeek_crds::v1alpha1::{ConditionType, ZeekCluster};

pub const REQUIRED_VAR: &str = "ZEEK_E2E_REQUIRED";

/// A client for the control plane named by KUBECONFIG, or `None` (the test is skipped) when there is
/// none and ZEEK_E2E_REQUIRED is not set.
pub async fn control_plane(test: &str) -> Option<Client> {
    let required = std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "1");
    if std::env::var_os("KUBECONFIG").is_none() {
        assert!(
            !required,
            "{REQUIRED_VAR}=1 but KUBECONFIG is not set: start a control plane with \
             `e2e/controlplane.sh up DIR` and `eval \"$(e2e/controlplane.sh env DIR)\"`"
        );
        // Written to the process's stderr in one piece: the test harness captures `eprintln!` of passing
        // tests, and a skip must be seen.
        let banner = format!(
            "\n##########\n## SKIPPED {test}: no control plane (KUBECONFIG unset).\n## Run \
             `e2e/controlplane.sh up DIR && eval \"$(e2e/controlplane.sh env DIR)\"`, or set {REQUIRED_VAR}=1 \
             to make this a failure.\n##########\n\n"
        );
        let _ = std::io::stderr().write_all(banner.as_bytes());
        return None;
    }
    Some(Client::try_default().await.expect("KUBECONFIG is set but no client can be built from it"))
}

/// One test's namespace with an operator running for it.
pub struct TestEnv {
    pub client: Client,
    pub namespace: String,
    pub http_port: u16,
    operator: tokio::process::Child,
    pub operator_log: PathBuf,
}

impl TestEnv {
    /// Creates the namespace and starts the operator. `None` when the test is skipped.
    pub async fn start(test: &str) -> Option<Self> {
        let client = control_plane(test).await?;
        let namespace = format!("zeek-{}-{}", test.replace('_', "-"), unique_suffix());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(namespace.clone()), ..Default::default() },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &ns).await.expect("create the test namespace");
        wait_for_default_service_account(&client, &namespace).await;

        let (operator, http_port, operator_log) = spawn_operator(&namespace, "first");
        let env = Self { client, namespace, http_port, operator, operator_log };
        env.eventually("the operator to be ready", Duration::from_secs(60), || async {
            env.http_get("/readyz").await.filter(|(status, _)| *status == 200)
        })
        .await;
        Some(env)
    }

    /// Starts another operator replica for the same namespace (same Lease), for leader-election tests.
    pub fn start_standby(&self) -> Operator {
        let (process, http_port, log) = spawn_operator(&self.namespace, "standby");
        Operator { process, http_port, log }
    }

    /// Stops the first operator (SIGTERM, like Kubernetes stopping its pod) and waits for it to exit.
    pub async fn stop_operator(&mut self) {
        terminate(&mut self.operator).await;
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn clusters(&self) -> Api<ZeekCluster> {
        self.api()
    }

    /// A worker port of this test's own: workers use the host network, and the scheduler refuses two
    /// worker pods with the same port on one node, so parallel tests must not share it.
    pub fn worker_port(&self) -> i32 {
        let hash = self.namespace.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        40000 + (hash % 20000) as i32
    }

    /// A minimal valid spec with this test's worker port, merged with `overrides` (top-level keys).
    pub fn spec(&self, overrides: serde_json::Value) -> serde_json::Value {
        let mut spec = json!({"image": "zeek-node:test", "workers": {"port": self.worker_port()}});
        for (key, value) in overrides.as_object().into_iter().flatten() {
            match (spec.get_mut(key), value) {
                (Some(serde_json::Value::Object(base)), serde_json::Value::Object(extra)) => {
                    base.extend(extra.clone());
                }
                _ => {
                    spec[key] = value.clone();
                }
            }
        }
        spec
    }

    /// Creates a ZeekCluster from a JSON spec.
    pub async fn create_cluster(&self, name: &str, spec: serde_json::Value) -> ZeekCluster {
        let object: ZeekCluster = serde_json::from_value(json!({
            "apiVersion": "zeek.io/v1alpha1",
            "kind": "ZeekCluster",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("a well-formed ZeekCluster");
        self.clusters().create(&PostParams::default(), &object).await.expect("create the ZeekCluster")
    }

    /// Waits until the cluster's Ready condition is True for its current generation.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> ZeekCluster {
        self.eventually(&format!("ZeekCluster {name} to be Ready"), timeout, || async {
            let zc = self.clusters().get(name).await.ok()?;
            let status = zc.status.as_ref()?;
            let ready = status.condition(ConditionType::Ready)?;
            (ready.status == "True" && ready.observed_generation == zc.metadata.generation).then_some(zc)
        })
        .await
    }

    /// Polls `check` every 250 ms until it returns `Some`, or fails the test after `timeout` (showing the
    /// operator's log).
    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// GET on the operator's HTTP endpoint: status code and body.
    pub async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path).await
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.operator_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- last lines of {} ---\n{tail}", self.operator_log.display())
    }

    /// Stops the operator and deletes the namespace (the control plane's garbage collector and namespace
    /// controller remove the rest).
    pub async fn teardown(mut self) {
        let _ = self.operator.kill().await;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.namespace, &DeleteParams::background()).await;
    }
}

/// Another operator process (see [`TestEnv::start_standby`]).
pub struct Operator {
    process: tokio::process::Child,
    pub http_port: u16,
    pub log: PathBuf,
}

impl Operator {
    pub async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path).await
    }

    pub async fn stop(mut self) {
        terminate(&mut self.process).await;
    }
}

/// Starts the real operator binary for one namespace, logging to a file in the temp directory.
fn spawn_operator(namespace: &str, instance: &str) -> (tokio::process::Child, u16, PathBuf) {
    let http_port = free_port();
    let log_path = std::env::temp_dir().join(format!("{namespace}-operator-{instance}.log"));
    let log = std::fs::File::create(&log_path).expect("operator log file");
    let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_zeek-operator"))
        .args(["--watch-namespace", namespace, "--lease-namespace", namespace])
        .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
        .env("RUST_LOG", "info,zeek_operator=debug,kube=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start zeek-operator");
    (process, http_port, log_path)
}

async fn terminate(process: &mut tokio::process::Child) {
    if let Some(pid) = process.id() {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    }
    if tokio::time::timeout(Duration::from_secs(15), process.wait()).await.is_err() {
        let _ = process.kill().await;
    }
}

async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

async fn wait_for_default_service_account(client: &Client, namespace: &str) {
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(30);
    while accounts.get_opt("default").await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "the default ServiceAccount of {namespace} did not appear");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{:x}", (nanos ^ std::process::id().rotate_left(16)) & 0xfffff)
}

/// Name and owner-reference check shared by tests: whether `object` is controlled by `owner`.
pub fn is_controlled_by(object: &impl ResourceExt, owner: &ZeekCluster) -> bool {
    object
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.kind == "ZeekCluster" && Some(&r.uid) == owner.metadata.uid.as_ref())
}
