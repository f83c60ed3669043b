//! Cluster-aware analyses ("detections"), written the way Zeek scripts are (docs/ANALYSES.md).
//!
//! An [`Analysis`] has one [`Handler`] per role it runs on. Worker handlers receive [`EngineEvent`]s (a connection
//! finished, a DNS request, an HTTP request, ...); every handler receives the cluster [`Event`]s published to its
//! role; all of them work through a [`Cx`]: network time, `publish` to a topic, `publish_hrw` / `publish_rr` into a
//! pool, keyed state with expiry (on proxies, the same [`StateStore`] the cluster hands off when proxies come and
//! go), logs, and [`Cx::notice`] (the notice framework with cluster-wide suppression).
//!
//! Behind the handlers is a [`Transport`]: [`local::LocalHub`] runs every role in this process (standalone mode:
//! events are delivered synchronously, HRW picks among in-process proxies); a cluster node implements it over its
//! gRPC bus (see [`NodeRuntime`] and docs/ANALYSES.md, "Running in a cluster").

pub mod capture_loss;
pub mod cluster;
pub mod config;
pub mod dns_stats;
pub mod dos;
pub mod events;
pub mod intel;
pub mod local;
pub mod notice;
mod runtime;
pub mod scan;
pub mod smtp_urls;
pub mod software;
pub mod ssh_bruteforce;

use std::net::IpAddr;

pub use crate::cluster::state::{StateStore, StateValue};
pub use crate::cluster::{Data, Event, PublishError, Role};
pub use config::DetectConfig;
pub use events::{EngineEvent, GapStats};
pub use local::{DetectSink, LocalHub};
pub use notice::Notice;
pub use runtime::{Cx, NodeRuntime, Transport};

/// One cluster-aware analysis: its name and the handler it runs on each role.
pub trait Analysis: Send + Sync {
    /// The name used by `--detect` (`dos`, `scan`, ...).
    fn name(&self) -> &'static str;

    /// The names of the cluster events its handlers consume (a cluster node registers for these).
    fn events(&self) -> &'static [&'static str];

    /// The handler for `role`, or `None` when the analysis does nothing there. Each node builds its own, so a
    /// handler's fields are that node's state (a worker's list of known scanners, the manager's URL list).
    fn handler(&self, role: Role, cfg: &DetectConfig) -> Option<Box<dyn Handler>>;
}

/// What one analysis does on one node. Every method has an empty default: implement the ones the role needs.
pub trait Handler: Send {
    /// The node starts (Zeek's `zeek_init`): the manager loads files, sets timers.
    fn init(&mut self, _cx: &mut Cx) {}

    /// An engine event (workers only).
    fn engine(&mut self, _ev: &EngineEvent, _cx: &mut Cx) {}

    /// The network time from which this handler needs the next [`EngineEvent::GapStats`] (the engine's counters
    /// after a packet): the sinks send none before it, so a measurement every quarter hour does not cost a dispatch
    /// per packet. `f64::INFINITY` (the default): none; `f64::NEG_INFINITY`: the next packet's.
    fn gap_stats_due(&self) -> f64 {
        f64::INFINITY
    }

    /// A cluster event published to this node's role, pool or name. Events of other analyses arrive here too:
    /// match on the names you publish.
    fn event(&mut self, _ev: &Event, _cx: &mut Cx) {}

    /// Network time moved on (at most once per second of network time): periodic work such as reports.
    fn tick(&mut self, _cx: &mut Cx) {}

    /// End of input (Zeek's `zeek_done`). Nodes finish in the order workers, proxies, manager, each after the
    /// messages of the previous ones were delivered.
    fn done(&mut self, _cx: &mut Cx) {}
}

/// Every analysis the node has, in the order handlers run.
pub fn registry() -> Vec<Box<dyn Analysis>> {
    vec![
        Box::new(dos::DoS),
        Box::new(scan::Scan),
        Box::new(intel::Intel),
        Box::new(smtp_urls::MailUrlClicks),
        Box::new(software::Software),
        Box::new(software::Known),
        Box::new(dns_stats::DnsStats),
        Box::new(ssh_bruteforce::SshBruteforce),
        Box::new(capture_loss::CaptureLoss),
    ]
}

/// The names `--detect` accepts.
pub fn known_names() -> Vec<&'static str> {
    registry().iter().map(|a| a.name()).collect()
}

/// The analyses named in `names` (`all` = every one).
pub fn select(names: &[String]) -> Result<Vec<Box<dyn Analysis>>, UnknownDetection> {
    let all = registry();
    if names.iter().any(|n| n == "all") {
        return Ok(all);
    }
    for n in names {
        if !all.iter().any(|a| a.name() == n) {
            return Err(UnknownDetection(n.clone()));
        }
    }
    Ok(all.into_iter().filter(|a| names.iter().any(|n| n == a.name())).collect())
}

/// A `--detect` name the node does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown detection '{0}' (known: all, {known})", known = known_names().join(", "))]
pub struct UnknownDetection(pub String);

/// The network of `addr` with `v4`/`v6` prefix bits (`Scan::Subnet`'s key, 10.1.2.3 → 10.1.2.0/24).
pub fn masked(addr: IpAddr, v4: u8, v6: u8) -> ipnet::IpNet {
    let prefix = if addr.is_ipv4() { v4.min(32) } else { v6.min(128) };
    ipnet::IpNet::new(addr, prefix).map(|n| n.trunc()).unwrap_or_else(|_| ipnet::IpNet::from(addr))
}

/// Reads the `i`-th argument of an event as an address.
pub fn arg_addr(ev: &Event, i: usize) -> Option<IpAddr> {
    ev.args.get(i).and_then(Data::as_addr)
}

pub fn arg_count(ev: &Event, i: usize) -> Option<u64> {
    ev.args.get(i).and_then(Data::as_count)
}

pub fn arg_str(ev: &Event, i: usize) -> Option<&str> {
    ev.args.get(i).and_then(Data::as_str)
}
