//! Wires the operator together: telemetry, HTTP endpoints, CRD installation, leader election and the
//! controller.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tracing::{error, info};

use crate::cli::RunArgs;
use crate::context::Context;
use crate::error::{Error, Result, kube_err};
use crate::http::{self, Readiness};
use crate::leader::{self, LeaseSettings};
use crate::metrics::Metrics;
use crate::{controller, crd_install};

pub const CONTROLLER_NAME: &str = "zeek-operator";

pub async fn run(args: RunArgs) -> Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,kube=warn".to_string());
    let _telemetry = zeek_telemetry::init(&zeek_telemetry::Options {
        service: CONTROLLER_NAME,
        format: args.log_format,
        filter: &filter,
        ansi: false,
        otlp_endpoint: args.otlp_endpoint.as_deref(),
    })
    .map_err(|e| Error::Setup(e.to_string()))?;
    let client = Client::try_default().await.map_err(kube_err("connect to the Kubernetes API"))?;
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();
    let server = tokio::spawn(http::serve(args.http_addr, metrics.clone(), readiness.clone()));

    if args.install_crd {
        crd_install::install(&client).await?;
    }
    let identity = identity();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: CONTROLLER_NAME.into(), instance: Some(identity.clone()) },
        ),
        metrics: metrics.clone(),
        cluster_domain: args.cluster_domain.clone(),
    });
    readiness.set(true);
    info!(namespace = args.watch_namespace.as_deref().unwrap_or("(all)"), "starting");

    let work = |stop| controller::run(ctx, args.watch_namespace.clone(), args.concurrency, stop);
    let result = tokio::select! {
        result = async {
            if args.leader_election {
                let lease = LeaseSettings { namespace: lease_namespace(&args), name: args.lease_name.clone(), identity };
                leader::run_as_leader(client, &lease, &metrics, shutdown_signal(), work).await
            } else {
                work(Box::pin(shutdown_signal())).await;
                Ok(())
            }
        } => result,
        served = server => Err(match served {
            Ok(Err(error)) => error,
            Ok(Ok(())) => Error::Setup("the HTTP server stopped".into()),
            Err(join) => Error::Setup(format!("the HTTP server failed: {join}")),
        }),
    };
    if let Err(error) = &result {
        error!(%error, "stopping");
    }
    result
}

fn lease_namespace(args: &RunArgs) -> String {
    args.lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .or_else(|| args.watch_namespace.clone())
        .unwrap_or_else(|| "default".into())
}

/// The pod name in a cluster; out of cluster the host name and process id.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "zeek-operator".into());
        format!("{host}-{}", std::process::id())
    })
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    info!("shutdown requested");
}
