//! Spans reach a real OTLP/gRPC receiver (the collector's service definition, served by tonic on loopback), also
//! when the guard is created and dropped inside an async runtime, as the operator does.

use zeek_telemetry::collector::Collector;
use zeek_telemetry::{LogFormat, Options};

#[test]
fn spans_reach_the_collector_from_inside_an_async_runtime() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let telemetry = zeek_telemetry::init(&Options {
            service: "telemetry-test",
            format: LogFormat::Text,
            filter: "info",
            ansi: false,
            otlp_endpoint: Some(&endpoint),
        })
        .expect("telemetry starts");
        {
            let span = tracing::info_span!("reconcile", cluster = "demo");
            let _entered = span.enter();
            tracing::info!("inside the span");
        }
        drop(telemetry);
    });
    let got = collector.spans();
    assert!(
        got.iter().any(|s| s.service == "telemetry-test" && s.name == "reconcile"),
        "the collector received no `reconcile` span from service telemetry-test: {got:?}"
    );
}
