//! Diagnostics shared by `zeek-node` and `zeek-operator`: `tracing` events to stderr (text or JSON lines) and,
//! when an endpoint is given, spans to an OpenTelemetry collector over OTLP/gRPC. Off unless asked for: a sensor
//! must not depend on a collector being up.

use std::time::Duration;

#[cfg(feature = "collector")]
pub mod collector;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Why diagnostics could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid log filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    #[error("cannot start the OTLP export runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot create the OTLP exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("cannot install the tracing subscriber: {0}")]
    Subscriber(String),
}

/// How events are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What to set up. `filter` uses tracing's env-filter syntax (`info,kube=warn`).
#[derive(Clone, Debug)]
pub struct Options<'a> {
    /// `service.name` of the exported spans.
    pub service: &'static str,
    pub format: LogFormat,
    pub filter: &'a str,
    /// Colours on stderr (only when it is a terminal).
    pub ansi: bool,
    /// OTLP/gRPC collector, e.g. `http://otel-collector:4317`. No export when `None`.
    pub otlp_endpoint: Option<&'a str>,
}

/// Keeps the span export alive; dropping it flushes the spans still queued and stops the exporter.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("cannot flush traces: {error}");
        }
        // Not a blocking drop: the operator drops this guard inside its own async runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Installs the global subscriber. Call once per process, before anything logs.
pub fn init(options: &Options<'_>) -> Result<Telemetry, Error> {
    let filter = EnvFilter::try_new(options.filter)
        .map_err(|e| Error::Filter { filter: options.filter.to_string(), message: e.to_string() })?;
    let stderr = match options.format {
        LogFormat::Text => {
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(options.ansi).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    let (provider, runtime) = match options.otlp_endpoint {
        Some(endpoint) => {
            let (provider, runtime) = tracer_provider(options.service, endpoint)?;
            (Some(provider), Some(runtime))
        }
        None => (None, None),
    };
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(options.service)));
    tracing_subscriber::registry()
        .with(stderr)
        .with(otel)
        .with(filter)
        .try_init()
        .map_err(|e| Error::Subscriber(e.to_string()))?;
    Ok(Telemetry { provider, runtime })
}

fn tracer_provider(
    service: &'static str,
    endpoint: &str,
) -> Result<(SdkTracerProvider, tokio::runtime::Runtime), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    // tonic spawns its channel's worker on the runtime current at build time. The SDK's batch processor exports
    // from its own OS thread through that channel, so the worker needs a runtime that lives as long as the
    // exporter: ours, not the caller's (the node has none at start-up; the operator's may be busy or gone first).
    let exporter = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Exporter { endpoint: endpoint.to_string(), message: e.to_string() })?
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    Ok((provider, runtime))
}
