//! One reconciliation of one ZeekCluster: dereference → validate → build → apply → status.
//!
//! Only [`dereference`] and [`apply`] talk to the API server; everything between is pure. The controller
//! watches ZeekClusters as untyped objects and parses each one here, so an object that cannot be read
//! (for instance one stored under an older schema) fails alone and does not stop the watch for the
//! others.

mod apply;
mod dereference;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use time::OffsetDateTime;
use tracing::{info, instrument, warn};
use zeek_crds::v1alpha1::{ConditionType, ZeekCluster, ZeekClusterStatus};

pub use self::apply::FIELD_MANAGER;
use self::apply::{Applied, CurrentWorkloads};
use self::dereference::Observed;
use crate::build::{self, ClusterResources, WorkloadObject};
use crate::cluster::ValidatedCluster;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::role::Role;
use crate::rollout::{self, ObservedWorkload, RolloutPlan};
use crate::status::{self, Outcome, RoleStatuses};
use crate::tls::{self, TlsBundle, TlsChange};
use crate::{labels, membership};

/// How often a settled cluster is looked at again (drift, certificate renewal).
const RESYNC: Duration = Duration::from_secs(10 * 60);
/// How often a cluster that is still moving is looked at, on top of the watch events of its objects.
const PROGRESS_RECHECK: Duration = Duration::from_secs(30);
/// Retry delay after an error that retrying may fix (API errors).
const RETRY: Duration = Duration::from_secs(15);
/// Retry delay after an error that needs a change elsewhere (a missing ConfigMap).
const RETRY_INVALID: Duration = Duration::from_secs(60);

/// Entry point for the controller.
#[instrument(skip_all, fields(namespace = object.namespace().unwrap_or_default(), name = object.name_any()))]
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_object(&object, &ctx).await;
    ctx.metrics.record_reconciliation(started.elapsed(), result.as_ref().map(|_| ()));
    result
}

/// What the controller does after a failed reconciliation.
pub fn error_policy(_object: Arc<DynamicObject>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "reconciliation failed");
    Action::requeue(if error.is_retryable() { RETRY } else { RETRY_INVALID })
}

async fn reconcile_object(object: &DynamicObject, ctx: &Context) -> Result<Action> {
    let zc: ZeekCluster = match object.clone().try_parse() {
        Ok(zc) => zc,
        Err(error) => {
            let error = Error::Malformed(error);
            report_malformed(object, ctx, &error).await;
            return Err(error);
        }
    };
    if zc.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove everything; there is nothing to clean up.
        return Ok(Action::await_change());
    }
    let previous = zc.status.clone().unwrap_or_default();
    if zc.spec.paused {
        return pause(&zc, &previous, ctx).await;
    }
    match converge(&zc, &previous, ctx).await {
        Ok(action) => Ok(action),
        Err(error) => {
            record_failure(&zc, &previous, ctx, &error).await;
            Err(error)
        }
    }
}

/// Moves the cluster one step towards its spec and reports where it stands.
async fn converge(zc: &ZeekCluster, previous: &ZeekClusterStatus, ctx: &Context) -> Result<Action> {
    let reference = zc.object_ref(&());
    if previous.is(ConditionType::Paused) {
        ctx.publish(
            &reference,
            EventType::Normal,
            "Resumed",
            "Reconcile",
            "spec.paused is false: reconciling again".into(),
        )
        .await;
    }

    let observed = dereference::observe(&ctx.client, zc).await?;
    let cluster = validate::validate(zc, &observed, &ctx.cluster_domain)?;
    let (tls, tls_change) =
        tls::ensure(&observed.tls_data, &cluster.name, &tls::identities(&cluster), OffsetDateTime::now_utc())?;
    let resources = build::build(&cluster, &tls)?;
    let plan = rollout::plan(&resources.workloads, &observed_workloads(&observed));
    let applied = apply::apply_all(&ctx.client, &cluster.namespace, &resources, &plan, &observed).await?;

    publish_changes(ctx, &reference, previous, &resources, &plan, &applied, &tls_change).await;

    let roles = role_statuses(&cluster, &resources, &applied.workloads);
    let now = now();
    let status = ZeekClusterStatus {
        observed_generation: zc.meta().generation,
        conditions: status::conditions(
            &previous.conditions,
            zc.meta().generation,
            &Outcome::Reconciled { roles: &roles, plan: &plan, stopped: cluster.spec.stopped },
            &now,
        ),
        manager: roles.manager.clone(),
        loggers: roles.loggers.clone(),
        proxies: roles.proxies.clone(),
        workers: roles.workers.clone(),
        proxy_selector: Some(labels::selector_string(&labels::role_selector(&cluster.name, Role::Proxy))),
        membership_epoch: membership_epoch(&cluster, &tls, &roles, previous).await,
        captures: status::captures(&observed.worker_pods),
        config_hash: Some(resources.hashes.config.clone()),
        certificates_not_after: Some(to_time(tls.not_after)),
    };
    apply::apply_status(&ctx.client, zc, &status).await?;

    let settled = status.is(ConditionType::Ready) || (cluster.spec.stopped && !status.is(ConditionType::Progressing));
    Ok(Action::requeue(if settled { RESYNC.min(until(tls::next_renewal(&tls))) } else { PROGRESS_RECHECK }))
}

/// The manager's view epoch when it has a ready pod (the last known one if it does not answer this time); none
/// while no manager runs.
async fn membership_epoch(
    cluster: &ValidatedCluster,
    tls: &TlsBundle,
    roles: &RoleStatuses,
    previous: &ZeekClusterStatus,
) -> Option<i64> {
    if roles.manager.ready == 0 {
        return None;
    }
    match membership::view_epoch(&cluster.manager_address(), tls).await {
        Ok(epoch) => i64::try_from(epoch).ok(),
        Err(error) => {
            tracing::debug!(cluster = %cluster.name, %error, "keeping the last known membership epoch");
            previous.membership_epoch
        }
    }
}

fn observed_workloads(observed: &Observed) -> BTreeMap<String, ObservedWorkload> {
    let stateful_sets = observed.stateful_sets.iter().map(|(n, s)| (n.clone(), ObservedWorkload::of_stateful_set(s)));
    let daemon_sets = observed.daemon_sets.iter().map(|(n, d)| (n.clone(), ObservedWorkload::of_daemon_set(d)));
    stateful_sets.chain(daemon_sets).collect()
}

fn role_statuses(cluster: &ValidatedCluster, resources: &ClusterResources, current: &CurrentWorkloads) -> RoleStatuses {
    let mut roles = RoleStatuses::default();
    let mut workers = Vec::new();
    for workload in &resources.workloads {
        match current.get(&workload.name) {
            Some(WorkloadObject::DaemonSet(ds)) => workers.push((ds.as_ref(), workload.template_hash.as_str())),
            Some(WorkloadObject::StatefulSet(sts)) => {
                *roles.get_mut(workload.role) =
                    status::stateful_set_status(Some(sts), cluster.replicas(workload.role), &workload.template_hash)
            }
            None if workload.role != Role::Worker => {
                *roles.get_mut(workload.role) =
                    status::stateful_set_status(None, cluster.replicas(workload.role), &workload.template_hash)
            }
            None => {}
        }
    }
    roles.workers = status::daemon_sets_status(workers);
    roles
}

/// Events for what this reconciliation changed.
async fn publish_changes(
    ctx: &Context,
    reference: &ObjectReference,
    previous: &ZeekClusterStatus,
    resources: &ClusterResources,
    plan: &RolloutPlan,
    applied: &Applied,
    tls_change: &TlsChange,
) {
    if previous.config_hash.as_ref().is_some_and(|h| *h != resources.hashes.config) {
        let note =
            format!("the layout changed (config hash {}); rolling the nodes in role order", resources.hashes.config);
        ctx.publish(reference, EventType::Normal, "ConfigChanged", "Reconcile", note).await;
    }
    match tls_change {
        TlsChange::Unchanged => {}
        TlsChange::Issued => {
            ctx.publish(
                reference,
                EventType::Normal,
                "CertificatesIssued",
                "IssueCertificates",
                "issued the cluster CA and node certificates".into(),
            )
            .await
        }
        TlsChange::Renewed(reasons) => {
            let note = truncate(format!("renewed certificates: {}", reasons.join("; ")));
            ctx.publish(reference, EventType::Normal, "CertificatesRenewed", "IssueCertificates", note).await
        }
    }
    for role in Role::ROLLOUT_ORDER.iter().filter(|r| plan.updating.contains(r)) {
        let note = format!("updating the {} to the current configuration", role.plural());
        info!(%role, "rolling out");
        // One action per role: the recorder folds events with the same action and reason into one series.
        let action = format!("Update{}", capitalized(role.plural()));
        ctx.publish(reference, EventType::Normal, "RollingOut", &action, note).await;
    }
    for name in &applied.deleted {
        ctx.publish(
            reference,
            EventType::Normal,
            "Deleted",
            "Reconcile",
            format!("deleted worker DaemonSet {name}, no longer needed"),
        )
        .await;
    }
}

async fn pause(zc: &ZeekCluster, previous: &ZeekClusterStatus, ctx: &Context) -> Result<Action> {
    if !previous.is(ConditionType::Paused) {
        ctx.publish(
            &zc.object_ref(&()),
            EventType::Normal,
            "Paused",
            "Reconcile",
            "spec.paused is true: the operator changes nothing".into(),
        )
        .await;
    }
    let status = ZeekClusterStatus {
        conditions: status::conditions(&previous.conditions, zc.meta().generation, &Outcome::Paused, &now()),
        observed_generation: zc.meta().generation,
        ..previous.clone()
    };
    apply::apply_status(&ctx.client, zc, &status).await?;
    Ok(Action::await_change())
}

/// Reports a failed reconciliation on the object: a Degraded condition and a Warning event.
async fn record_failure(zc: &ZeekCluster, previous: &ZeekClusterStatus, ctx: &Context, error: &Error) {
    let message = truncate(error.to_string());
    let (outcome, reason) = match error {
        Error::InvalidSpec(_) => (Outcome::Invalid(&message), "InvalidSpec"),
        _ => (Outcome::Failed(&message), "ReconcileError"),
    };
    let status = ZeekClusterStatus {
        conditions: status::conditions(&previous.conditions, zc.meta().generation, &outcome, &now()),
        observed_generation: zc.meta().generation,
        ..previous.clone()
    };
    if let Err(status_error) = apply::apply_status(&ctx.client, zc, &status).await {
        warn!(error = %status_error, "cannot record the failure in the status");
    }
    ctx.publish(&zc.object_ref(&()), EventType::Warning, reason, "Reconcile", message).await;
}

/// An object that is not a readable ZeekCluster gets a Warning event and a Degraded condition (merged
/// into its status as raw JSON, since it cannot be parsed).
async fn report_malformed(object: &DynamicObject, ctx: &Context, error: &Error) {
    let Some(namespace) = object.namespace() else { return };
    let resource = kube::api::ApiResource::erase::<ZeekCluster>(&());
    let message = truncate(error.to_string());
    ctx.publish(&object.object_ref(&resource), EventType::Warning, "Malformed", "Reconcile", message.clone()).await;
    let condition = status::conditions(&[], object.meta().generation, &Outcome::Invalid(&message), &now());
    let patch = serde_json::json!({"status": {"conditions": condition}});
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    if let Err(status_error) = api.patch_status(&object.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await
    {
        warn!(error = %status_error, "cannot record the malformed object in its status");
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn to_time(t: OffsetDateTime) -> Time {
    Time(Timestamp::from_second(t.unix_timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Time until `deadline`, at least a minute.
fn until(deadline: OffsetDateTime) -> Duration {
    let seconds = (deadline - OffsetDateTime::now_utc()).whole_seconds().max(60);
    Duration::from_secs(seconds.unsigned_abs())
}

/// Event notes and condition messages are bounded (1 kB for events).
fn truncate(message: String) -> String {
    status::truncate(message, 1000)
}
