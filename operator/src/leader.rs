//! Leader election on a `coordination.k8s.io` Lease, so that two operator replicas never reconcile at
//! the same time: the standby waits, and takes over within the lease duration when the leader goes away.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Seconds a leader's lease stays valid without renewal; the standby takes over after this.
const LEASE_DURATION: u64 = 15;
/// The leader renews this long before the lease expires (the tolerated clock skew).
const LEASE_GRACE: u64 = 5;

pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
}

/// Future that completes when the leader must stop working.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Waits for the lease, then runs `work` until `shutdown` completes (returns `Ok`) or the lease is lost
/// (returns [`Error::LeadershipLost`]: the caller exits so that a restart begins from a clean state).
pub async fn run_as_leader<W, F>(
    client: Client,
    settings: &LeaseSettings,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    work: W,
) -> Result<()>
where
    W: FnOnce(StopSignal) -> F,
    F: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(LEASE_DURATION)
        .with_grace(LEASE_GRACE)
        .build()
        .await?;
    let (mut leader, lease_task) = manager.watch().await;
    let mut shutdown: StopSignal = Box::pin(shutdown);

    info!(lease = %settings.name, identity = %settings.identity, "waiting for leadership");
    while !*leader.borrow_and_update() {
        tokio::select! {
            () = &mut shutdown => return release(leader, lease_task).await,
            changed = leader.changed() => if changed.is_err() { return Err(Error::LeadershipLost) },
        }
    }
    info!("became leader");
    metrics.set_leader(true);

    let lost = Arc::new(AtomicBool::new(false));
    let stop: StopSignal = {
        let lost = lost.clone();
        let mut leader = leader.clone();
        Box::pin(async move {
            tokio::select! {
                () = shutdown => {}
                () = wait_until_not_leader(&mut leader) => lost.store(true, Ordering::Release),
            }
        })
    };
    work(stop).await;
    metrics.set_leader(false);
    release(leader, lease_task).await?;
    if lost.load(Ordering::Acquire) {
        warn!("lost leadership");
        return Err(Error::LeadershipLost);
    }
    Ok(())
}

async fn wait_until_not_leader(leader: &mut watch::Receiver<bool>) {
    while *leader.borrow_and_update() {
        if leader.changed().await.is_err() {
            return;
        }
    }
}

/// Dropping the last receiver makes the lease manager release the lease, so a standby takes it at its
/// next check instead of waiting for it to expire.
async fn release(
    leader: watch::Receiver<bool>,
    lease_task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
) -> Result<()> {
    drop(leader);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err(error))) => Err(error.into()),
        Ok(Err(join_error)) => Err(Error::Setup(format!("lease task: {join_error}"))),
        Err(_) => {
            warn!("the lease was not released in time; it expires on its own");
            Ok(())
        }
    }
}
