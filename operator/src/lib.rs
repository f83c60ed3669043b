//! The ZeekCluster operator.
//!
//! Layout of the crate, following the reconcile pipeline (dereference → validate → build → apply →
//! status):
//! - [`reconcile`]: one reconciliation; its `dereference` and `apply` steps are the only API I/O.
//! - [`cluster`]: the validated cluster every builder works from; [`role`], [`labels`]: shared vocabulary.
//! - [`build`]: pure builders of the owned objects (layout ConfigMap, TLS Secret, Services, StatefulSets,
//!   worker DaemonSets, PodDisruptionBudgets); [`tls`]: the certificates; [`rollout`]: role-ordered
//!   updates; [`status`]: conditions and counts.
//! - Process plumbing: [`app`] (wiring), [`controller`], [`leader`], [`crd_install`], [`http`],
//!   [`metrics`], [`cli`], [`membership`] (the manager's view epoch for the status); [`rbac`]: the API
//!   permissions all of this needs (the Helm chart's
//!   RBAC is checked against it).

pub mod app;
pub mod build;
pub mod cli;
pub mod cluster;
pub mod context;
pub mod controller;
pub mod crd_install;
pub mod error;
pub mod http;
pub mod labels;
pub mod leader;
pub mod membership;
pub mod metrics;
pub mod rbac;
pub mod reconcile;
pub mod role;
pub mod rollout;
pub mod status;
pub mod tls;

pub use error::{Error, Result};
