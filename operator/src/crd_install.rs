//! The operator installs (server-side applies) its own CRD at start, so that `helm upgrade`, which never
//! updates CRDs in a chart's crds/ folder, still brings the schema up to date.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use tracing::info;

use crate::error::{Error, Result, kube_err};
use crate::reconcile::FIELD_MANAGER;

const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn install(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = zeek_crds::crd();
    let name = crd.name_any();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
        .await
        .map_err(kube_err(format!("apply CustomResourceDefinition {name}")))?;
    tokio::time::timeout(ESTABLISH_TIMEOUT, await_condition(api, &name, conditions::is_crd_established()))
        .await
        .map_err(|_| Error::CrdNotEstablished(ESTABLISH_TIMEOUT))?
        .map_err(|e| Error::Setup(format!("waiting for CustomResourceDefinition {name}: {e}")))?;
    info!(%name, "CRD installed");
    Ok(())
}
