//! Prometheus metrics of the operator, served on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciliations: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("zeek_operator");
        let reconciliations = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        // 5 ms to about 40 s.
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let leader = Gauge::default();
        registry.register("reconciliations", "ZeekCluster reconciliations by result", reconciliations.clone());
        registry.register("reconcile_errors", "Failed reconciliations by kind of error", errors.clone());
        registry.register("reconcile_duration_seconds", "Duration of one reconciliation", duration.clone());
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        Self { registry, reconciliations, errors, duration, leader }
    }

    pub fn record_reconciliation(&self, elapsed: Duration, outcome: Result<(), &Error>) {
        self.duration.observe(elapsed.as_secs_f64());
        let result = match outcome {
            Ok(()) => "success",
            Err(error) => {
                self.errors.get_or_create(&ErrorLabels { error: error.metric_label() }).inc();
                "error"
            }
        };
        self.reconciliations.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reconciliations_errors_and_durations() {
        let metrics = Metrics::new();
        metrics.record_reconciliation(Duration::from_millis(20), Ok(()));
        metrics.record_reconciliation(Duration::from_millis(30), Err(&Error::InvalidSpec(vec!["x".into()])));
        metrics.set_leader(true);
        let text = metrics.encode();
        assert!(text.contains("zeek_operator_reconciliations_total{result=\"success\"} 1"), "{text}");
        assert!(text.contains("zeek_operator_reconciliations_total{result=\"error\"} 1"), "{text}");
        assert!(text.contains("zeek_operator_reconcile_errors_total{error=\"invalid_spec\"} 1"), "{text}");
        assert!(text.contains("zeek_operator_reconcile_duration_seconds_count 2"), "{text}");
        assert!(text.contains("zeek_operator_leader 1"), "{text}");
    }
}
