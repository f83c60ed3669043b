//! What every reconciliation shares.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

use crate::metrics::Metrics;

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// DNS domain of the Kubernetes cluster, for the nodes' DNS names.
    pub cluster_domain: String,
}

impl Context {
    /// Publishes an Event on the object. A failure to publish is logged, never fatal: events are a
    /// courtesy to the user, not part of the reconciliation.
    pub async fn publish(
        &self,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            warn!(%error, reason, "cannot publish event");
        }
    }
}
