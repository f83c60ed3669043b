//! The cluster runtime (docs/CLUSTER.md, DESIGN.md §1–2): the same binary runs as manager, logger, proxy or worker;
//! nodes talk over long-lived gRPC streams with Zeek's topics, pools and roles, plus numbered membership views,
//! state hand-off, acknowledged log shipping and mTLS.
//!
//! Analyses use a [`Node`] handle: [`Node::publish`], [`Node::publish_hrw`], [`Node::publish_rr`], [`Node::on`] for
//! handlers, [`Node::state`] for keyed state on proxies, and [`Node::log`] for log records.

pub mod certs;
pub mod cli;
pub mod ctl;
pub mod data;
pub mod datawire;
pub mod envelope;
pub mod hrw;
pub mod inabox;
pub mod layout;
pub mod link;
pub mod local;
pub mod logger;
pub mod logship;
pub mod logwire;
pub mod membership;
pub mod node;
pub mod nodecfg;
pub mod pool;
pub mod proto;
pub mod role;
pub mod routing;
pub mod service;
pub mod state;
pub mod sync;
pub mod testkit;
pub mod tls;
pub mod topic;
pub mod worker;

pub use data::{Data, Event, Transport};
pub use envelope::Header;
pub use hrw::PoolKey;
pub use node::{Handler, Node, NodeConfig, Received};
pub use pool::PublishError;
pub use role::Role;
